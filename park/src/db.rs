//! PostgreSQL: connection, versioned migrations, monthly partitions, the batched idempotent insert of
//! data messages, and the gateway state (status, health, meta).
//!
//! Readings are one row per data message (`points` as JSONB, as published), in `readings`, partitioned
//! by month of `ts`. Its key is (site, gateway, seq, ts): PostgreSQL needs the partition key in every
//! unique index, and a duplicate of a message carries the same seq and the same ts, so a copy changes
//! nothing (`ON CONFLICT DO NOTHING`).

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde_json::Value;
use tokio_postgres::{Client, NoTls};

use crate::config::Database;

/// What can go wrong with the database, naming it.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot read [database] password_file {path}: {source}")]
    PasswordFile {
        path: String,
        source: std::io::Error,
    },
    #[error("bad [database] url: {0}")]
    Url(tokio_postgres::Error),
    #[error("PostgreSQL at {target}: {}", explain(source))]
    Postgres {
        target: String,
        source: tokio_postgres::Error,
    },
}

/// Every schema change, in order; the `schema_migrations` table records which ran.
const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    r#"
CREATE TABLE gateways (
    site text NOT NULL,
    gateway text NOT NULL,
    online boolean,
    status jsonb,
    status_at timestamptz,
    meta jsonb,
    meta_at timestamptz,
    evictions bigint,
    last_message timestamptz,
    PRIMARY KEY (site, gateway)
);
CREATE TABLE health (
    site text NOT NULL,
    gateway text NOT NULL,
    meter text NOT NULL,
    state text,
    payload jsonb NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (site, gateway, meter)
);
CREATE TABLE readings (
    site text NOT NULL,
    gateway text NOT NULL,
    seq bigint NOT NULL,
    ts timestamptz NOT NULL,
    meter text NOT NULL,
    points jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, gateway, seq, ts)
) PARTITION BY RANGE (ts);
CREATE TABLE instances (
    client_id text PRIMARY KEY,
    subscribed_at timestamptz NOT NULL
);
CREATE TABLE rejected (
    topic text NOT NULL,
    payload bytea NOT NULL,
    reason text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
"#,
)];

/// Advisory lock keys, so that instances starting together migrate and partition one at a time.
const LOCK_MIGRATE: i64 = 0x0070_6c61_6e74_6d01;
const LOCK_PARTITION: i64 = 0x0070_6c61_6e74_6d02;

/// Connect (the connection task runs in the background until the client is dropped or the link fails).
pub async fn connect(cfg: &Database) -> Result<Client, DbError> {
    let mut pg: tokio_postgres::Config = cfg.url.parse().map_err(DbError::Url)?;
    if let Some(path) = &cfg.password_file {
        let pw = std::fs::read_to_string(path).map_err(|source| DbError::PasswordFile {
            path: path.display().to_string(),
            source,
        })?;
        pg.password(pw.trim_end_matches(['\r', '\n']));
    } else if pg.get_password().is_none() {
        if let Ok(pw) = std::env::var("PGPASSWORD") {
            pg.password(pw);
        }
    }
    if pg.get_application_name().is_none() {
        pg.application_name("plantmeter-park");
    }
    let target = describe(&pg);
    let (client, conn) = pg
        .connect(NoTls)
        .await
        .map_err(|source| DbError::Postgres {
            target: target.clone(),
            source,
        })?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!(database = %target, error = %explain(&e), "database connection closed");
        }
    });
    Ok(client)
}

/// A PostgreSQL error with its cause (tokio-postgres displays only "db error" on its own).
pub fn explain(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => match std::error::Error::source(e) {
            Some(s) => format!("{e}: {s}"),
            None => e.to_string(),
        },
    }
}

/// `host:port/dbname` for messages (never the password).
pub fn describe(pg: &tokio_postgres::Config) -> String {
    let host = pg
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(s) => s.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{host}:{port}/{}",
        pg.get_dbname()
            .unwrap_or(pg.get_user().unwrap_or("postgres"))
    )
}

/// Run the migrations that have not run yet; returns the schema version.
pub async fn migrate(client: &mut Client) -> Result<i32, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_MIGRATE])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version integer PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    let done: Option<i32> = tx
        .query_one("SELECT max(version) FROM schema_migrations", &[])
        .await?
        .get(0);
    let done = done.unwrap_or(0);
    let mut version = done;
    for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > done) {
        tx.batch_execute(sql).await?;
        tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[v])
            .await?;
        tracing::info!(version = v, "database schema migrated");
        version = *v;
    }
    tx.commit().await?;
    Ok(version)
}

/// The first day of the month holding `ts` (UTC).
fn month_of(ts: DateTime<Utc>) -> NaiveDate {
    NaiveDate::from_ymd_opt(ts.year(), ts.month(), 1).unwrap_or(NaiveDate::MIN)
}

fn next_month(m: NaiveDate) -> NaiveDate {
    m.checked_add_months(chrono::Months::new(1))
        .unwrap_or(NaiveDate::MAX)
}

/// One data message, decoded, for the insert.
#[derive(Debug, Clone)]
pub struct Row {
    pub site: String,
    pub gateway: String,
    pub seq: i64,
    pub ts: DateTime<Utc>,
    pub meter: String,
    pub points: Value,
}

/// A change to a gateway's state.
#[derive(Debug, Clone)]
pub enum StateUpdate {
    Status {
        site: String,
        gateway: String,
        payload: Value,
    },
    Health {
        site: String,
        gateway: String,
        meter: String,
        payload: Value,
    },
    Meta {
        site: String,
        gateway: String,
        payload: Value,
    },
    /// This instance (re)subscribed.
    Subscribed { client_id: String },
    Rejected {
        topic: String,
        payload: Vec<u8>,
        reason: String,
    },
}

/// The writer's database side: a client and the months whose partition is known to exist.
pub struct Store {
    pub client: Client,
    months: BTreeSet<NaiveDate>,
}

impl Store {
    pub fn new(client: Client) -> Store {
        Store {
            client,
            months: BTreeSet::new(),
        }
    }

    /// Store one batch in one transaction: data rows (copies ignored), state updates in order.
    /// Returns how many data rows were new.
    pub async fn write(
        &mut self,
        rows: &[Row],
        updates: &[StateUpdate],
    ) -> Result<u64, tokio_postgres::Error> {
        let months: BTreeSet<NaiveDate> = rows
            .iter()
            .map(|r| month_of(r.ts))
            .filter(|m| !self.months.contains(m))
            .collect();
        let tx = self.client.transaction().await?;
        if !months.is_empty() {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_PARTITION])
                .await?;
            for m in &months {
                let name = format!("readings_y{:04}m{:02}", m.year(), m.month());
                let to = next_month(*m);
                tx.batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS {name} PARTITION OF readings \
                     FOR VALUES FROM ('{m}T00:00:00Z') TO ('{to}T00:00:00Z')"
                ))
                .await?;
            }
        }
        let mut inserted = 0;
        if !rows.is_empty() {
            let sites: Vec<&str> = rows.iter().map(|r| r.site.as_str()).collect();
            let gws: Vec<&str> = rows.iter().map(|r| r.gateway.as_str()).collect();
            let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
            let tss: Vec<DateTime<Utc>> = rows.iter().map(|r| r.ts).collect();
            let meters: Vec<&str> = rows.iter().map(|r| r.meter.as_str()).collect();
            let points: Vec<&Value> = rows.iter().map(|r| &r.points).collect();
            inserted = tx
                .execute(
                    "INSERT INTO readings (site, gateway, seq, ts, meter, points) \
                     SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::timestamptz[], $5::text[], $6::jsonb[]) \
                     ON CONFLICT DO NOTHING",
                    &[&sites, &gws, &seqs, &tss, &meters, &points],
                )
                .await?;
            let mut seen = BTreeSet::new();
            for r in rows {
                if seen.insert((&r.site, &r.gateway)) {
                    tx.execute(
                        "INSERT INTO gateways (site, gateway, last_message) VALUES ($1, $2, now()) \
                         ON CONFLICT (site, gateway) DO UPDATE SET last_message = now()",
                        &[&r.site, &r.gateway],
                    )
                    .await?;
                }
            }
        }
        for u in updates {
            match u {
                StateUpdate::Status {
                    site,
                    gateway,
                    payload,
                } => {
                    let online = payload.get("state").and_then(Value::as_str) == Some("online");
                    let evicted = payload.get("evicted").and_then(Value::as_i64);
                    tx.execute(
                        "INSERT INTO gateways (site, gateway, online, status, status_at, evictions) \
                         VALUES ($1, $2, $3, $4, now(), $5) \
                         ON CONFLICT (site, gateway) DO UPDATE SET online = $3, status = $4, \
                         status_at = now(), evictions = coalesce($5, gateways.evictions)",
                        &[site, gateway, &online, payload, &evicted],
                    )
                    .await?;
                }
                StateUpdate::Health {
                    site,
                    gateway,
                    meter,
                    payload,
                } => {
                    let state = payload.get("state").and_then(Value::as_str);
                    tx.execute(
                        "INSERT INTO health (site, gateway, meter, state, payload, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, now()) \
                         ON CONFLICT (site, gateway, meter) DO UPDATE SET state = $4, payload = $5, updated_at = now()",
                        &[site, gateway, meter, &state, payload],
                    )
                    .await?;
                }
                StateUpdate::Meta {
                    site,
                    gateway,
                    payload,
                } => {
                    tx.execute(
                        "INSERT INTO gateways (site, gateway, meta, meta_at) VALUES ($1, $2, $3, now()) \
                         ON CONFLICT (site, gateway) DO UPDATE SET meta = $3, meta_at = now()",
                        &[site, gateway, payload],
                    )
                    .await?;
                }
                StateUpdate::Subscribed { client_id } => {
                    tx.execute(
                        "INSERT INTO instances (client_id, subscribed_at) VALUES ($1, now()) \
                         ON CONFLICT (client_id) DO UPDATE SET subscribed_at = now()",
                        &[client_id],
                    )
                    .await?;
                }
                StateUpdate::Rejected {
                    topic,
                    payload,
                    reason,
                } => {
                    tx.execute(
                        "INSERT INTO rejected (topic, payload, reason) VALUES ($1, $2, $3)",
                        &[topic, payload, reason],
                    )
                    .await?;
                }
            }
        }
        tx.commit().await?;
        self.months.extend(months);
        Ok(inserted)
    }
}

/// One gateway's line in `status` (CONTRACT.md).
#[derive(Debug, Clone, serde::Serialize)]
pub struct GatewayStatus {
    pub gateway: String,
    pub site: String,
    pub online: bool,
    pub last_message: Option<String>,
    pub messages: i64,
    pub seq_first: Option<i64>,
    pub seq_last: Option<i64>,
    pub missing: Vec<[i64; 2]>,
    pub evictions: Option<i64>,
}

/// Every known gateway with its counts and the seq ranges missing between the first and last stored.
pub async fn status(client: &Client) -> Result<Vec<GatewayStatus>, tokio_postgres::Error> {
    let mut out: Vec<GatewayStatus> = Vec::new();
    let rows = client
        .query(
            "SELECT g.site, g.gateway, coalesce(g.online, false), g.last_message, g.evictions, \
                    coalesce(r.n, 0), r.first, r.last \
             FROM gateways g LEFT JOIN ( \
                 SELECT site, gateway, count(DISTINCT seq) AS n, min(seq) AS first, max(seq) AS last \
                 FROM readings GROUP BY site, gateway) r \
             ON r.site = g.site AND r.gateway = g.gateway \
             ORDER BY g.site, g.gateway",
            &[],
        )
        .await?;
    for r in rows {
        let last: Option<DateTime<Utc>> = r.get(3);
        out.push(GatewayStatus {
            site: r.get(0),
            gateway: r.get(1),
            online: r.get(2),
            last_message: last.map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
            evictions: r.get(4),
            messages: r.get(5),
            seq_first: r.get(6),
            seq_last: r.get(7),
            missing: Vec::new(),
        });
    }
    let gaps = client
        .query(
            "SELECT site, gateway, prev + 1, seq - 1 FROM ( \
                 SELECT site, gateway, seq, lag(seq) OVER (PARTITION BY site, gateway ORDER BY seq) AS prev \
                 FROM (SELECT DISTINCT site, gateway, seq FROM readings) d) t \
             WHERE seq > prev + 1 ORDER BY site, gateway, seq",
            &[],
        )
        .await?;
    for g in gaps {
        let (site, gateway): (String, String) = (g.get(0), g.get(1));
        if let Some(s) = out
            .iter_mut()
            .find(|s| s.site == site && s.gateway == gateway)
        {
            s.missing.push([g.get(2), g.get(3)]);
        }
    }
    Ok(out)
}
