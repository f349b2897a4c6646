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

use crate::config::Config;
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
    Ok(json!({"park": cfg.park, "plants": plants, "other_gateways": others}))
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
    Ok(Json(
        w.with_db(async move |c| park_json(&cfg, c).await).await?,
    ))
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
    let cached = w
        .reports
        .lock()
        .await
        .get(&name)
        .filter(|(at, _)| at.elapsed() < REPORT_TTL)
        .map(|(_, v)| v.clone());
    let report = match cached {
        Some(r) => r,
        None if plant.audit.is_none() => json!({"report": null, "error": "no [plant.audit]"}),
        None => {
            let cfg = w.cfg.clone();
            let r = w
                .with_db(async move |c| {
                    Ok(
                        match crate::audit::plant_report(c, &cfg, &plant, None).await {
                            Ok(r) => json!({"report": r, "error": null}),
                            Err(e) => json!({"report": null, "error": e.to_string()}),
                        },
                    )
                })
                .await?;
            w.reports
                .lock()
                .await
                .insert(name.clone(), (Instant::now(), r.clone()));
            r
        }
    };
    Ok(Json(json!({
        "name": name, "enterprise": w.cfg.plants.iter().find(|p| p.name == name).and_then(|p| p.enterprise.clone()),
        "gateways": gateways, "latest": latest,
        "report": report["report"], "report_error": report["error"],
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
