//! A plant's audit from the database: the plant's meters come from its gateways' `P/meta`, named
//! `site/id/meter`; the `[plant.audit]` is validated by plantmeter-common exactly as the agent's
//! `[audit]`; the stored readings go through common's interval engine (`Tracker`) into hourly
//! aggregates, and common's `compute` makes the report. The audit maths exist once, in common.

// The report's renderings are plantmeter-common's (feature `render`), the same as the agent's.
pub use plantmeter_common::audit::render;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveDate;
use futures::StreamExt as _;
use plantmeter_common::audit::compute::{self, HourlySource, ReportRequest};
use plantmeter_common::audit::hourly::{HourAgg, HourGrid};
use plantmeter_common::audit::intervals::{
    gap_threshold_ms, Applied, RecordedReplacement, Tracker,
};
use plantmeter_common::audit::multiplier::rescale_across;
use plantmeter_common::model::parse_ts_ms;
use plantmeter_common::audit::report::Report;
use plantmeter_common::plan::{
    self, Meter, Multiplier, MultiplierChange, Plan, Point, PointRef,
};
use plantmeter_common::{PointKind, PointValue, Quality};
use serde_json::Value;
use tokio_postgres::Client;

use crate::config::{Config, Plant};

/// Why a plant's report cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("plant \"{0}\" has no [plant.audit]")]
    NoAudit(String),
    #[error("no plant \"{name}\" in {file}; plants: {known}")]
    UnknownPlant {
        name: String,
        file: String,
        known: String,
    },
    /// The `[plant.audit]` does not validate against the meters the gateways described (`P/meta`).
    #[error("{0}")]
    Config(plantmeter_common::config::ConfigErrors),
    #[error("reading the database: {0}")]
    Db(String),
    #[error(transparent)]
    Compute(#[from] compute::ComputeError),
}

fn db_err(e: tokio_postgres::Error) -> AuditError {
    AuditError::Db(crate::db::explain(&e))
}

/// Replacements recorded at the gateways (`plantmeter replace`, in their `P/meta`), per point
/// `site/id/meter.point`, in time order.
pub type Recorded = HashMap<String, Vec<RecordedReplacement>>;

/// A meter's multiplier as its gateway's `P/meta` gives it (`{"energy","pt","ct","changes"}`).
fn multiplier(v: &Value) -> Option<Multiplier> {
    let energy = v["energy"].as_f64().filter(|x| x.is_finite() && *x > 0.0)?;
    let mut changes: Vec<MultiplierChange> = v["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let at = c["at"].as_str()?;
            Some(MultiplierChange {
                at_ms: parse_ts_ms(at)?,
                at: at.to_string(),
                value: c["value"].as_f64().filter(|x| x.is_finite() && *x > 0.0)?,
            })
        })
        .collect();
    changes.sort_by_key(|c| c.at_ms);
    Some(Multiplier {
        energy,
        pt: v["pt"].as_f64().unwrap_or(1.0),
        ct: v["ct"].as_f64().unwrap_or(1.0),
        changes,
    })
}

/// The meters of gateways (`site/id`) as their `P/meta` describes them, named `site/id/meter`, and
/// the replacements recorded there.
pub(crate) async fn gateway_meters(
    client: &Client,
    gateways: &[String],
) -> Result<(Vec<Meter>, Recorded), AuditError> {
    let rows = client
        .query(
            "SELECT site, gateway, meta FROM gateways WHERE site || '/' || gateway = ANY($1) \
             AND meta IS NOT NULL ORDER BY site, gateway",
            &[&gateways],
        )
        .await
        .map_err(db_err)?;
    let mut meters = Vec::new();
    let mut recorded = Recorded::new();
    for r in rows {
        let (site, gw, meta): (String, String, Value) = (r.get(0), r.get(1), r.get(2));
        for rec in meta["replacements"].as_array().into_iter().flatten() {
            let (Some(point), Some(at_ms), Some(old_final), Some(new_start)) = (
                rec["point"].as_str(),
                rec["at"].as_str().and_then(parse_ts_ms),
                rec["old_final"].as_f64(),
                rec["new_start"].as_f64(),
            ) else {
                tracing::warn!(gateway = %format!("{site}/{gw}"), "a recorded replacement in P/meta is not {{point, at, old_final, new_start}}: ignored");
                continue;
            };
            let list = recorded.entry(format!("{site}/{gw}/{point}")).or_default();
            list.push(RecordedReplacement {
                at_ms,
                old_final,
                new_start,
            });
            list.sort_by_key(|x| x.at_ms);
        }
        for m in meta["meters"].as_array().into_iter().flatten() {
            let Some(name) = m["name"].as_str() else {
                continue;
            };
            let points = m["points"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    let kind = match p["kind"].as_str()? {
                        "counter" => PointKind::Counter,
                        "gauge" => PointKind::Gauge,
                        _ => return None,
                    };
                    Some(Point::unregistered(
                        p["name"].as_str()?.to_string(),
                        p["unit"].as_str().unwrap_or("").to_string(),
                        kind,
                        p["rollover"].as_f64(),
                    ))
                })
                .collect();
            let poll = m["poll_interval_s"]
                .as_f64()
                .filter(|s| s.is_finite() && *s > 0.0)
                .map(Duration::from_secs_f64);
            let poll = match poll {
                Some(p) => p,
                None => estimate_poll_interval(client, &site, &gw, name).await?,
            };
            meters.push(Meter {
                name: format!("{site}/{gw}/{name}"),
                unit_id: 0,
                poll_interval: poll,
                template: None,
                points,
                requests: Vec::new(),
                manual: false,
                link: None,
                multiplier: multiplier(&m["multiplier"]),
            });
        }
    }
    Ok((meters, recorded))
}

/// For a gateway whose meta does not say it: the median interval between the first stored polls.
async fn estimate_poll_interval(
    client: &Client,
    site: &str,
    gw: &str,
    meter: &str,
) -> Result<Duration, AuditError> {
    let row = client
        .query_one(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d) FROM ( \
               SELECT extract(epoch FROM ts - lag(ts) OVER (ORDER BY ts)) AS d FROM ( \
                 SELECT ts FROM readings WHERE site = $1 AND gateway = $2 AND meter = $3 \
                 ORDER BY ts LIMIT 1000) f) g WHERE d > 0",
            &[&site, &gw, &meter],
        )
        .await
        .map_err(db_err)?;
    let s: Option<f64> = row.get(0);
    Ok(Duration::from_secs_f64(
        s.filter(|s| s.is_finite() && *s > 0.0).unwrap_or(60.0),
    ))
}

/// Hourly aggregates of every point, from the stored readings.
pub(crate) struct DbHours(HashMap<PointRef, HashMap<i64, HourAgg>>);

impl HourlySource for DbHours {
    fn hours(&mut self, p: &PointRef, first_hour: i64, out: &mut [HourAgg]) -> Result<(), String> {
        let m = self.0.get(p);
        for (i, o) in out.iter_mut().enumerate() {
            *o = m
                .and_then(|m| m.get(&(first_hour + i as i64)))
                .copied()
                .unwrap_or_default();
        }
        Ok(())
    }
}

/// What the interval engine did with the recorded replacements: applied ones per `meter.point`, and
/// every recorded one (point, instant), for the report's events.
#[derive(Default)]
pub(crate) struct Replacements {
    pub applied: HashMap<String, Vec<Applied>>,
    pub recorded: Vec<(String, i64)>,
}

/// Feed each meter's readings, in time order, through the interval engine, as the agent does: a
/// recorded replacement is counted exactly where the readings cross it, and a multiplier change
/// is a discontinuity (the readings before it are put on the new multiplier's footing).
pub(crate) async fn hours(
    client: &Client,
    meters: &[Meter],
    recorded: &Recorded,
    grid: &HourGrid,
) -> Result<(DbHours, Replacements), AuditError> {
    let mut out: HashMap<PointRef, HashMap<i64, HourAgg>> = HashMap::new();
    let mut done = Replacements::default();
    for m in meters {
        let mut parts = m.name.splitn(3, '/');
        let (Some(site), Some(gw), Some(meter)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let gap = gap_threshold_ms(m.poll_interval.as_millis() as i64);
        let mut trackers: Vec<(Tracker, HashMap<i64, HourAgg>)> = m
            .points
            .iter()
            .map(|p| {
                let mut t = Tracker::new(p.kind, p.rollover, gap);
                if p.kind == PointKind::Counter {
                    if let Some(r) = recorded.get(&format!("{}.{}", m.name, p.name)) {
                        t.recorded = r.clone();
                    }
                }
                (t, HashMap::new())
            })
            .collect();
        // Streamed: a year of readings is never held in memory at once.
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&site, &gw, &meter];
        let rows = client
            .query_raw(
                "SELECT ts, points FROM readings WHERE site = $1 AND gateway = $2 AND meter = $3 \
                 ORDER BY ts, seq",
                params,
            )
            .await
            .map_err(db_err)?;
        futures::pin_mut!(rows);
        while let Some(r) = rows.next().await {
            let r = r.map_err(db_err)?;
            let ts: chrono::DateTime<chrono::Utc> = r.get(0);
            let pts: Value = r.get(1);
            let Ok(pts) = serde_json::from_value::<Vec<PointValue>>(pts) else {
                continue;
            };
            for pv in pts {
                let Some(i) = m.points.iter().position(|p| p.name == pv.name) else {
                    continue;
                };
                let value = if pv.quality == Quality::Good {
                    pv.value
                } else {
                    None
                };
                let (tracker, agg) = &mut trackers[i];
                if let Some(mult) = &m.multiplier {
                    rescale_across(tracker, mult, &m.points[i].unit, ts.timestamp_millis());
                }
                tracker.push(ts.timestamp_millis(), value, grid, &mut |h, a| {
                    agg.entry(h).or_default().merge(&a)
                });
            }
        }
        for (p, (tracker, agg)) in m.points.iter().zip(trackers) {
            let name = format!("{}.{}", m.name, p.name);
            for r in recorded.get(&name).into_iter().flatten() {
                done.recorded.push((name.clone(), r.at_ms));
            }
            if !tracker.applied.is_empty() {
                done.applied.insert(name, tracker.applied);
            }
            out.insert(
                PointRef {
                    meter: m.name.clone(),
                    point: p.name.clone(),
                },
                agg,
            );
        }
    }
    Ok((DbHours(out), done))
}

/// The report of one plant (the agent's report format), as of now.
pub async fn plant_report(
    client: &Client,
    cfg: &Config,
    plant: &Plant,
    period: Option<(NaiveDate, NaiveDate)>,
) -> Result<Report, AuditError> {
    let Some(index) = cfg.plants.iter().position(|p| p.name == plant.name) else {
        return Err(AuditError::NoAudit(plant.name.clone()));
    };
    let (meters, recorded) = gateway_meters(client, &plant.gateways).await?;
    let text = std::fs::read_to_string(&cfg.source)
        .map_err(|e| AuditError::Db(format!("cannot read {}: {e}", cfg.source.display())))?;
    let audit =
        plantmeter_common::config::parse_nested_audit(&text, &cfg.source, "plant", index, &meters)
            .map_err(AuditError::Config)?
            .ok_or_else(|| AuditError::NoAudit(plant.name.clone()))?;
    let grid = HourGrid::new(audit.timezone);
    let (mut src, replacements) = hours(client, &meters, &recorded, &grid).await?;
    let site = plant
        .gateways
        .first()
        .and_then(|g| g.split_once('/'))
        .map_or(String::new(), |(s, _)| s.to_string());
    let plan = Plan {
        source: cfg.source.clone(),
        gateway: plan::Gateway {
            id: plant.name.clone(),
            site,
            data_dir: PathBuf::new(),
            store_max_mb: 0,
            retain_delivered_mb: 0,
            enterprise: plant.enterprise.clone(),
            industry: None,
        },
        mqtt: plan::Mqtt {
            url: cfg.mqtt.url.clone(),
            host: cfg.mqtt.host.clone(),
            port: cfg.mqtt.port,
            tls: false,
            client_id: String::new(),
            topic_prefix: cfg.mqtt.topic_prefix.clone(),
            username: None,
            password_file: None,
            password_env: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            keep_alive: Duration::from_secs(30),
            max_inflight: 1,
        },
        buses: vec![plan::Bus {
            name: "park".into(),
            transport: plan::Transport::Tcp {
                address: String::new(),
            },
            timeout: Duration::from_secs(1),
            retries: 0,
            meters,
            protocol: plan::Protocol::Modbus,
        }],
        manual_meters: Vec::new(),
        audit: Some(audit),
        metrics_listen: None,
        sign_key_file: None,
        hj212: None,
        import: Default::default(),
        desk: false,
    };
    let req = ReportRequest {
        now_ms: chrono::Utc::now().timestamp_millis(),
        period_override: period,
    };
    let mut report = compute::compute(&plan, &req, &mut src)?;
    plantmeter_common::audit::recorded::mark(
        &mut report,
        &grid,
        &replacements.applied,
        &replacements.recorded,
        |_, _| None,
    );
    Ok(report)
}

/// The park report: every plant's report and the totals of each indicator over the plants.
pub async fn park_report(
    client: &Client,
    cfg: &Config,
    period: Option<(NaiveDate, NaiveDate)>,
) -> Result<Value, AuditError> {
    let mut plants = Vec::new();
    let mut totals: Vec<(String, [Option<f64>; 2])> = Vec::new();
    for p in &cfg.plants {
        let report = match p.audit {
            None => Value::Null,
            Some(_) => serde_json::to_value(plant_report(client, cfg, p, period).await?)
                .unwrap_or(Value::Null),
        };
        if let Some(ind) = report["indicators"].as_object() {
            for (key, v) in ind {
                let at = match totals.iter().position(|(k, _)| k == key) {
                    Some(i) => i,
                    None => {
                        totals.push((key.clone(), [None, None]));
                        totals.len() - 1
                    }
                };
                for (j, period) in ["baseline", "reporting"].iter().enumerate() {
                    if let Some(t) = v[period]["total"].as_f64() {
                        let slot = &mut totals[at].1[j];
                        *slot = Some(slot.unwrap_or(0.0) + t);
                    }
                }
            }
        }
        plants.push(
            serde_json::json!({"name": p.name, "enterprise": p.enterprise, "report": report}),
        );
    }
    let mut t = serde_json::Map::new();
    for (key, [b, r]) in totals {
        t.insert(
            key,
            serde_json::json!({"baseline": {"total": b}, "reporting": {"total": r}}),
        );
    }
    Ok(serde_json::json!({"park": cfg.park, "plants": plants, "totals": t}))
}
