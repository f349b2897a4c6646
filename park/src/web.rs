//! The read-only web page and its JSON API on `[http] listen`:
//! - `/` the park at a glance (plants, gateways online or not, last message, failing meters, missing seq);
//! - `/plant/{name}` a plant (indicators against baseline, latest value of every point, a daily chart);
//! - `/api/park`, `/api/plant/{name}`, `/api/status`: the same as JSON.
//!
//! With `[http] token_file`, every request needs the token (`Authorization: Bearer …` or `?token=…`,
//! which the page passes on to its API calls). The database connection is opened on demand and
//! reopened after an error; a plant's report is cached for a minute.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::Mutex;
use tokio_postgres::Client;

use crate::config::{Config, Plant};
use crate::db;

const PAGE: &str = include_str!("page.html");
const REPORT_TTL: Duration = Duration::from_secs(60);

struct Web {
    cfg: Config,
    token: Option<String>,
    client: Mutex<Option<Client>>,
    reports: Mutex<HashMap<String, (Instant, Value)>>,
}

/// Why a request failed.
enum ApiError {
    Unauthorized,
    NotFound(String),
    Db(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, msg) = match self {
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "a token is needed (?token=…)".to_string(),
            ),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::Db(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
        };
        (code, Json(json!({"error": msg}))).into_response()
    }
}

/// Read the token file (trimmed); an empty or unreadable file is an error naming it.
pub fn read_token(cfg: &Config) -> anyhow::Result<Option<String>> {
    let Some(path) = &cfg.http.token_file else {
        return Ok(None);
    };
    let t = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read [http] token_file {}: {e}", path.display()))?;
    let t = t.trim().to_string();
    if t.is_empty() {
        anyhow::bail!("[http] token_file {} is empty", path.display());
    }
    Ok(Some(t))
}

impl Web {
    /// A plant's report as JSON, `{"report", "error", "order"}` (`order`: the indicator keys in
    /// the report's order, which a JSON object loses), cached for `REPORT_TTL`.
    async fn report(&self, plant: &Plant) -> Result<Value, ApiError> {
        let cached = self
            .reports
            .lock()
            .await
            .get(&plant.name)
            .filter(|(at, _)| at.elapsed() < REPORT_TTL)
            .map(|(_, v)| v.clone());
        if let Some(r) = cached {
            return Ok(r);
        }
        if plant.audit.is_none() {
            return Ok(json!({"report": null, "error": "no [plant.audit]", "order": []}));
        }
        let cfg = self.cfg.clone();
        let p = plant.clone();
        let r = self
            .with_db(async move |c| {
                Ok(match crate::audit::plant_report(c, &cfg, &p, None).await {
                    Ok(r) => {
                        let order: Vec<&str> =
                            r.indicators.iter().map(|(k, _)| k.as_str()).collect();
                        json!({"report": r, "error": null, "order": order})
                    }
                    Err(e) => json!({"report": null, "error": e.to_string(), "order": []}),
                })
            })
            .await?;
        self.reports
            .lock()
            .await
            .insert(plant.name.clone(), (Instant::now(), r.clone()));
        Ok(r)
    }

    fn authorized(
        &self,
        headers: &HeaderMap,
        query: &HashMap<String, String>,
    ) -> Result<(), ApiError> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if bearer == Some(token.as_str()) || query.get("token") == Some(token) {
            Ok(())
        } else {
            Err(ApiError::Unauthorized)
        }
    }

    /// Run `f` with a connected client; on a database error the connection is dropped (reopened next time).
    async fn with_db<T>(
        &self,
        f: impl AsyncFnOnce(&Client) -> Result<T, String>,
    ) -> Result<T, ApiError> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(|c| c.is_closed()) {
            let mut c = db::connect(&self.cfg.database)
                .await
                .map_err(|e| ApiError::Db(e.to_string()))?;
            // The page may be asked before the writer's first connection: the schema is made here too.
            db::migrate(&mut c)
                .await
                .map_err(|e| ApiError::Db(db::explain(&e)))?;
            *guard = Some(c);
        }
        let Some(client) = guard.as_ref() else {
            return Err(ApiError::Db("no database connection".into()));
        };
        match f(client).await {
            Ok(v) => Ok(v),
            Err(e) => {
                *guard = None;
                Err(ApiError::Db(e))
            }
        }
    }
}

/// Gateway lines with their failing meters, in config order of plants.
async fn park_json(cfg: &Config, client: &Client) -> Result<Value, String> {
    let status = db::status(client).await.map_err(|e| db::explain(&e))?;
    let failing = client
        .query(
            "SELECT site, gateway, meter FROM health WHERE state = 'failing' ORDER BY 1, 2, 3",
            &[],
        )
        .await
        .map_err(|e| db::explain(&e))?;
    let line = |g: &db::GatewayStatus| {
        let key = format!("{}/{}", g.site, g.gateway);
        let f: Vec<String> = failing
            .iter()
            .filter(|r| r.get::<_, String>(0) == g.site && r.get::<_, String>(1) == g.gateway)
            .map(|r| r.get(2))
            .collect();
        let mut v = serde_json::to_value(g).unwrap_or(Value::Null);
        v["key"] = key.into();
        v["failing"] = f.into();
        v
    };
    let plants: Vec<Value> = cfg
        .plants
        .iter()
        .map(|p| {
            let gws: Vec<Value> = status
                .iter()
                .filter(|g| p.gateways.contains(&format!("{}/{}", g.site, g.gateway)))
                .map(line)
                .collect();
            json!({"name": p.name, "enterprise": p.enterprise, "gateways": gws,
                   "configured": p.gateways, "audit": p.audit.is_some()})
        })
        .collect();
    let others: Vec<Value> = status
        .iter()
        .filter(|g| {
            let k = format!("{}/{}", g.site, g.gateway);
            !cfg.plants.iter().any(|p| p.gateways.contains(&k))
        })
        .map(line)
        .collect();
    let alarms = client
        .query(
            "SELECT site, gateway, name, payload, updated_at FROM alarms WHERE state = 'alarm' ORDER BY 1, 2, 3",
            &[],
        )
        .await
        .map_err(|e| db::explain(&e))?;
    let plants = plants
        .into_iter()
        .zip(&cfg.plants)
        .map(|(mut v, p)| {
            let on: Vec<Value> = alarms
                .iter()
                .filter(|a| {
                    p.gateways
                        .contains(&format!("{}/{}", a.get::<_, &str>(0), a.get::<_, &str>(1)))
                })
                .map(|a| {
                    let at: chrono::DateTime<chrono::Utc> = a.get(4);
                    json!({"gateway": format!("{}/{}", a.get::<_, &str>(0), a.get::<_, &str>(1)),
                           "name": a.get::<_, &str>(2), "payload": a.get::<_, Value>(3),
                           "since": at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()})
                })
                .collect();
            v["alarms"] = on.into();
            v
        })
        .collect::<Vec<Value>>();
    Ok(
        json!({"park": cfg.park, "timezone": cfg.timezone.to_string(), "plants": plants,
              "other_gateways": others}),
    )
}

/// The `[[audit.level]]` thresholds of `indicator` in a plant's audit: {"I", "II", "III", "better"}.
fn levels(plant: &Plant, indicator: &str) -> Value {
    plant
        .level(indicator)
        .and_then(|x| serde_json::to_value(x).ok())
        .unwrap_or(Value::Null)
}

/// What the park page shows of a plant's report: per-unit energy against the baseline and the
/// advanced level (I), the reporting period's completeness, the triggers (双超, quota).
fn summary(plant: &Plant, report: &Value) -> Value {
    if report.is_null() {
        return Value::Null;
    }
    let e = &report["indicators"]["energy"];
    json!({
        "per_unit_unit": e["per_unit_unit"],
        "baseline_per_unit": e["baseline"]["per_unit"],
        "reporting_per_unit": e["reporting"]["per_unit"],
        "savings_pct": e["reporting"]["savings_pct"],
        // What the savings rest on (valid_model, weak_model, ratio): shown marked when not a valid model.
        "savings_basis": e["reporting"]["savings_basis"],
        "level": e["level"],
        "levels": levels(plant, "energy"),
        "completeness": report["periods"]["reporting"]["completeness"],
        "reporting": {"from": report["periods"]["reporting"]["from"], "to": report["periods"]["reporting"]["to"]},
        "triggers": report["compliance"]["triggers"],
        "exceedance_hours": report["compliance"]["sources"].as_array().map(|s| {
            s.iter().filter_map(|x| x["exceedance_hours"].as_f64()).sum::<f64>()
        }),
    })
}

/// Park totals per indicator over the plants' reports: a sum is null (with the plants lacking it)
/// when any plant with a report has no figure for it.
fn totals(reports: &[(String, Value)]) -> Value {
    let mut order: Vec<String> = Vec::new();
    for (_, r) in reports {
        for k in r["order"].as_array().into_iter().flatten() {
            if let Some(k) = k.as_str() {
                if !order.iter().any(|o| o == k) {
                    order.push(k.to_string());
                }
            }
        }
    }
    let rows: Vec<Value> = order
        .iter()
        .map(|k| {
            let mut out = json!({"indicator": k});
            for period in ["baseline", "reporting"] {
                let mut sum = Some(0.0);
                let mut lacking = Vec::new();
                for (name, r) in reports {
                    let ind = &r["report"]["indicators"][k.as_str()];
                    if ind.is_null() {
                        continue; // the plant has no such input: nothing to add
                    }
                    out["unit"] = ind["total_unit"].clone();
                    match ind[period]["total"].as_f64() {
                        Some(v) => sum = sum.map(|s| s + v),
                        None => {
                            sum = None;
                            lacking.push(name.clone());
                        }
                    }
                }
                out[period] = json!({"total": sum, "lacking": lacking});
            }
            out
        })
        .collect();
    Value::Array(rows)
}

async fn latest_json(client: &Client, gateways: &[String]) -> Result<Vec<Value>, String> {
    let rows = client
        .query(
            "SELECT DISTINCT ON (site, gateway, meter) site, gateway, meter, ts, points FROM readings \
             WHERE site || '/' || gateway = ANY($1) ORDER BY site, gateway, meter, ts DESC",
            &[&gateways],
        )
        .await
        .map_err(|e| db::explain(&e))?;
    let mut out = Vec::new();
    for r in rows {
        let (site, gw, meter): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        let ts: chrono::DateTime<chrono::Utc> = r.get(3);
        let points: Value = r.get(4);
        for p in points.as_array().into_iter().flatten() {
            out.push(
                json!({"gateway": format!("{site}/{gw}"), "meter": meter, "point": p["name"],
                "value": p["value"], "unit": p["unit"], "quality": p["quality"],
                "ts": ts.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()}),
            );
        }
    }
    Ok(out)
}

type Q = Query<HashMap<String, String>>;

async fn page(State(w): State<Arc<Web>>, headers: HeaderMap, Query(q): Q) -> Response {
    match w.authorized(&headers, &q) {
        Ok(()) => Html(PAGE).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn plant_page(
    State(w): State<Arc<Web>>,
    Path(_name): Path<String>,
    headers: HeaderMap,
    Query(q): Q,
) -> Response {
    page(State(w), headers, Query(q)).await
}

async fn api_park(
    State(w): State<Arc<Web>>,
    headers: HeaderMap,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
    w.authorized(&headers, &q)?;
    let cfg = w.cfg.clone();
    let mut park = w.with_db(async move |c| park_json(&cfg, c).await).await?;
    let mut reports = Vec::new();
    for (i, p) in w.cfg.plants.iter().enumerate() {
        let r = w.report(p).await?;
        park["plants"][i]["summary"] = summary(p, &r["report"]);
        park["plants"][i]["report_error"] = r["error"].clone();
        if !r["report"].is_null() {
            reports.push((p.name.clone(), r));
        }
    }
    park["totals"] = totals(&reports);
    Ok(Json(park))
}

async fn api_status(
    State(w): State<Arc<Web>>,
    headers: HeaderMap,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
    w.authorized(&headers, &q)?;
    let s = w
        .with_db(async |c| db::status(c).await.map_err(|e| db::explain(&e)))
        .await?;
    Ok(Json(serde_json::to_value(s).unwrap_or(Value::Null)))
}

async fn api_plant(
    State(w): State<Arc<Web>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Query(q): Q,
) -> Result<Json<Value>, ApiError> {
    w.authorized(&headers, &q)?;
    let Some(plant) = w.cfg.plants.iter().find(|p| p.name == name).cloned() else {
        return Err(ApiError::NotFound(format!("no plant \"{name}\"")));
    };
    let cfg = w.cfg.clone();
    let p = plant.clone();
    let (park, latest) = w
        .with_db(async move |c| {
            Ok((
                park_json(&cfg, c).await?,
                latest_json(c, &p.gateways).await?,
            ))
        })
        .await?;
    let gateways = park["plants"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == name.as_str()))
        .map_or(Value::Null, |x| x["gateways"].clone());
    let report = w.report(&plant).await?;
    Ok(Json(json!({
        "name": name, "enterprise": plant.enterprise, "timezone": w.cfg.timezone.to_string(),
        "gateways": gateways, "latest": latest,
        "report": report["report"], "report_error": report["error"], "order": report["order"],
        "alarms": park["plants"].as_array().and_then(|a| a.iter().find(|x| x["name"] == name.as_str()))
            .map_or(Value::Null, |x| x["alarms"].clone()),
        "summary": summary(&plant, &report["report"]),
    })))
}

/// Serve until `stop`.
pub async fn serve(
    cfg: Config,
    listener: tokio::net::TcpListener,
    token: Option<String>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let web = Arc::new(Web {
        cfg,
        token,
        client: Mutex::new(None),
        reports: Mutex::new(HashMap::new()),
    });
    let app = Router::new()
        .route("/", get(page))
        .route("/plant/:name", get(plant_page))
        .route("/api/park", get(api_park))
        .route("/api/status", get(api_status))
        .route("/api/plant/:name", get(api_plant))
        .with_state(web);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await?;
    Ok(())
}
