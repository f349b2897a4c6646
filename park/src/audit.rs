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
use plantmeter_common::audit::report::{Integrity, Report};
use plantmeter_common::model::parse_ts_ms;
use plantmeter_common::plan::{self, Meter, Multiplier, MultiplierChange, Plan, Point, PointRef};
use plantmeter_common::{PointKind, PointValue, Quality};
use serde_json::Value;
use tokio_postgres::Client;

use crate::allocation::{self, Metered};
use crate::config::{Config, Plant, Utility};

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
    seal(&mut report);
    Ok(report)
}

/// Seal a plant's report as the agent seals its own: the SHA-256 of its canonical JSON, which every
/// rendering shows and `plantmeter verify --report FILE` checks (unsigned: the park has no key).
fn seal(report: &mut Report) {
    report.integrity = None;
    if let Ok(v) = serde_json::to_value(&*report) {
        report.integrity = Some(Integrity {
            sha256: plantmeter_common::audit::canonical::digest_of_value(&v),
            signature: None,
            public_key: None,
        });
    }
}

/// A point's total and completeness over the local dates `[from, to)` from hourly aggregates.
fn metered(
    src: &mut DbHours,
    meters: &[Meter],
    point: &str,
    (from, to): (NaiveDate, NaiveDate),
) -> Metered {
    let (meter, name) = point.rsplit_once('.').unwrap_or((point, ""));
    let p = meters
        .iter()
        .find(|m| m.name == meter)
        .and_then(|m| m.points.iter().find(|p| p.name == name));
    let (h0, h1) = (
        HourGrid::day_of_date(from) * 24,
        HourGrid::day_of_date(to) * 24,
    );
    let n = usize::try_from(h1 - h0).unwrap_or(0);
    let mut buf = vec![HourAgg::default(); n];
    let r = PointRef {
        meter: meter.to_string(),
        point: name.to_string(),
    };
    let _ = src.hours(&r, h0, &mut buf);
    // A counter's hours only: a gauge has no total to share.
    let counted = p.is_some_and(|p| p.kind == PointKind::Counter)
        && buf
            .iter()
            .any(|h| h.covered_ms > 0 || h.apportioned_ms > 0 || h.sum != 0.0);
    let valid = buf.iter().filter(|h| h.covered_ms >= 45 * 60_000).count();
    Metered {
        point: point.to_string(),
        unit: p.map(|p| p.unit.clone()),
        total: counted.then(|| buf.iter().map(|h| h.sum).sum()),
        completeness: if n == 0 { 0.0 } else { valid as f64 / n as f64 },
    }
}

/// A report period's `[from, to)` as dates.
fn dates((from, to): &(String, String)) -> Option<(NaiveDate, NaiveDate)> {
    Some((
        NaiveDate::parse_from_str(from, "%Y-%m-%d").ok()?,
        NaiveDate::parse_from_str(to, "%Y-%m-%d").ok()?,
    ))
}

/// Every `[[utility]]` allocated over the periods of the plants sharing it (see `allocation`).
async fn utilities(
    client: &Client,
    cfg: &Config,
    reports: &[(String, Value)],
) -> Result<Vec<(Utility, Value)>, AuditError> {
    let mut out = Vec::new();
    for u in &cfg.utilities {
        let points: Vec<&str> = std::iter::once(u.point.as_str())
            .chain(u.shares.iter().map(|s| s.point.as_str()))
            .collect();
        let mut gateways: Vec<String> = Vec::new();
        for p in &points {
            if let Some(g) = p.rsplit_once('/').map(|(g, _)| g.to_string()) {
                if !gateways.contains(&g) {
                    gateways.push(g);
                }
            }
        }
        let (meters, recorded) = gateway_meters(client, &gateways).await?;
        // Only the meters read here, so that a utility does not replay every reading of a plant.
        let meters: Vec<Meter> = meters
            .into_iter()
            .filter(|m| {
                points
                    .iter()
                    .any(|p| p.rsplit_once('.').is_some_and(|(x, _)| x == m.name))
            })
            .collect();
        let grid = HourGrid::new(cfg.timezone);
        let (mut src, _) = hours(client, &meters, &recorded, &grid).await?;
        let unit = meters
            .iter()
            .flat_map(|m| m.points.iter().map(move |p| (m, p)))
            .find(|(m, p)| format!("{}.{}", m.name, p.name) == u.point)
            .map(|(_, p)| p.unit.clone());
        let mut periods = serde_json::Map::new();
        for period in allocation::PERIODS {
            // The plants sharing it must agree on the period: one interval for every share.
            let spans: Vec<(String, Option<(String, String)>)> = u
                .shares
                .iter()
                .map(|s| {
                    let r = reports.iter().find(|(n, _)| *n == s.plant).map(|(_, r)| r);
                    (
                        s.plant.clone(),
                        r.and_then(|r| allocation::period_of(r, period)),
                    )
                })
                .collect();
            let first = spans.iter().find_map(|(_, s)| s.clone());
            let Some(span) = first else {
                periods.insert(period.to_string(), Value::Null);
                continue;
            };
            let differ: Vec<&str> = spans
                .iter()
                .filter(|(_, s)| s.as_ref() != Some(&span))
                .map(|(n, _)| n.as_str())
                .collect();
            let Some(ds) = dates(&span) else {
                periods.insert(period.to_string(), Value::Null);
                continue;
            };
            let mut a = allocation::allocate(
                u,
                (&span.0, &span.1),
                metered(&mut src, &meters, &u.point, ds),
                u.shares
                    .iter()
                    .map(|s| (s.plant.clone(), metered(&mut src, &meters, &s.point, ds)))
                    .collect(),
            );
            if !differ.is_empty() {
                for p in &mut a.parts {
                    (p.share, p.allocated, p.losses, p.allocated_kgce) = (None, None, None, None);
                }
                a.reason = Some(format!(
                    "no allocation: plant(s) {} have no report or another {period} period than {} .. {} (one interval for every share)",
                    differ.join(", "),
                    span.0,
                    span.1
                ));
            }
            periods.insert(
                period.to_string(),
                serde_json::to_value(&a).unwrap_or(Value::Null),
            );
        }
        out.push((
            u.clone(),
            serde_json::json!({"name": u.name, "indicator": u.indicator, "point": u.point,
                "unit": unit, "kgce_per_unit": u.kgce_per_unit,
                "min_completeness": u.min_completeness, "periods": periods}),
        ));
    }
    Ok(out)
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
    // The park's own audit: shared utilities, each plant with and without its allocation,
    // benchmarks per industry, intensity per 10^4 yuan.
    let reports: Vec<(String, Value)> = plants
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or("").to_string(),
                p["report"].clone(),
            )
        })
        .collect();
    let utilities = utilities(client, cfg, &reports).await?;
    let shared: Vec<(&Utility, Value)> = utilities.iter().map(|(u, v)| (u, v.clone())).collect();
    let withs: Vec<Value> = cfg
        .plants
        .iter()
        .zip(&reports)
        .map(|(p, (_, r))| allocation::with_and_without(&p.name, r, &shared))
        .collect();
    let rows: Vec<(&Plant, &Value, &Value)> = cfg
        .plants
        .iter()
        .zip(&reports)
        .zip(&withs)
        .map(|((p, (_, r)), w)| (p, r, w))
        .collect();
    for (entry, (p, r, w)) in plants.iter_mut().zip(&rows) {
        entry["industry"] = serde_json::json!(p.industry);
        entry["with_allocation"] = (*w).clone();
        entry["intensity"] = if r.is_null() {
            Value::Null
        } else {
            allocation::plant_intensity(p, r, w)
        };
    }
    Ok(serde_json::json!({
        "park": cfg.park, "plants": plants, "totals": t,
        "utilities": utilities.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
        "benchmarks": allocation::benchmarks(&rows),
        "intensity": allocation::park_intensity(&rows),
    }))
}
