//! PostgreSQL: connection, versioned migrations, monthly partitions, the batched idempotent insert of
//! data messages, and the gateway state (status, health, meta).
//!
//! Readings are one row per data message (`points` as JSONB, as published), in `readings`, partitioned
//! by month of `ts`. PostgreSQL needs the partition key in every unique index of a partitioned table,
//! so readings' own key is (site, gateway, seq, ts); what makes a seq unique per gateway is `seqs`, an
//! unpartitioned index table keyed (site, gateway, seq) holding each stored message's ts, meter and an
//! md5 of its points. A message whose seq is new goes into both; a copy with the same ts, meter and
//! points changes nothing (or puts back a readings row that was deleted, which is how a replayed
//! message refills a gap); a different message under a stored seq is rejected, into `rejected` with
//! the reason, and never reaches `readings` (so never an audit figure).

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
const MIGRATIONS: &[(i32, &str)] = &[
    (
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
    ),
    (
        2,
        r#"
CREATE TABLE seqs (
    site text NOT NULL,
    gateway text NOT NULL,
    seq bigint NOT NULL,
    ts timestamptz NOT NULL,
    meter text NOT NULL,
    digest text NOT NULL,
    PRIMARY KEY (site, gateway, seq)
);
ALTER TABLE rejected ADD COLUMN site text, ADD COLUMN gateway text, ADD COLUMN seq bigint;
CREATE INDEX rejected_gateway ON rejected (site, gateway);
-- Readings stored under the old key (site, gateway, seq, ts) may hold several messages under one seq:
-- the first received is kept, the others move to rejected.
INSERT INTO seqs (site, gateway, seq, ts, meter, digest)
    SELECT DISTINCT ON (site, gateway, seq) site, gateway, seq, ts, meter, md5(points::text)
    FROM readings ORDER BY site, gateway, seq, received_at, ts;
INSERT INTO rejected (topic, payload, reason, received_at, site, gateway, seq)
    SELECT r.site || '/' || r.gateway || '/data/' || r.meter,
           convert_to(json_build_object('seq', r.seq, 'ts', r.ts, 'meter', r.meter, 'points', r.points)::text, 'UTF8'),
           'another message was stored under seq ' || r.seq || ' first (moved here by schema version 2)',
           r.received_at, r.site, r.gateway, r.seq
    FROM readings r JOIN seqs s USING (site, gateway, seq) WHERE r.ts <> s.ts;
DELETE FROM readings r USING seqs s
    WHERE r.site = s.site AND r.gateway = s.gateway AND r.seq = s.seq AND r.ts <> s.ts;
"#,
    ),
    (
        3,
        r#"
CREATE TABLE gone (
    site text NOT NULL,
    gateway text NOT NULL,
    seq_from bigint NOT NULL,
    seq_to bigint NOT NULL,
    reported_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (site, gateway, seq_from, seq_to)
);
"#,
    ),
    (
        4,
        r#"
CREATE TABLE alarms (
    site text NOT NULL,
    gateway text NOT NULL,
    name text NOT NULL,
    state text,
    payload jsonb NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (site, gateway, name)
);
"#,
    ),
    (
        5,
        r#"
-- Where finding gaps starts per gateway: every seq up to `upto` is stored or reported gone, so a
-- look reads only the readings from there on (an index range scan), not every stored seq.
CREATE TABLE seq_checked (
    site text NOT NULL,
    gateway text NOT NULL,
    upto bigint NOT NULL,
    PRIMARY KEY (site, gateway)
);
-- Rows deleted from readings are missing again (and asked for again): the mark goes back below them.
CREATE FUNCTION plantmeter_readings_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE seq_checked SET upto = OLD.seq - 1
        WHERE site = OLD.site AND gateway = OLD.gateway AND upto >= OLD.seq;
    RETURN NULL;
END $$;
CREATE TRIGGER readings_deleted AFTER DELETE ON readings
    FOR EACH ROW EXECUTE FUNCTION plantmeter_readings_deleted();
"#,
    ),
];

/// The most missing ranges found per gateway and look (the oldest first): memory stays bounded
/// whatever a gateway lost; the rest are found once these are filled or gone.
pub const MISSING_MAX: i64 = 1000;

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
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub topic: String,
    pub site: String,
    pub gateway: String,
    pub seq: i64,
    pub ts: DateTime<Utc>,
    pub meter: String,
    pub points: Value,
}

impl Row {
    /// The message as JSON (for `rejected`, when the row itself is refused).
    pub fn payload(&self) -> Vec<u8> {
        serde_json::json!({
            "seq": self.seq,
            "ts": self.ts.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            "meter": self.meter,
            "points": self.points,
        })
        .to_string()
        .into_bytes()
    }

    /// Same message: the seq is the key, the rest must match for a copy.
    fn same_message(&self, other: &Row) -> bool {
        self.ts == other.ts && self.meter == other.meter && self.points == other.points
    }

    fn key(&self) -> (&str, &str, i64) {
        (&self.site, &self.gateway, self.seq)
    }
}

/// A message refused, kept in `rejected` with why; site, gateway and seq when known.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub topic: String,
    pub payload: Vec<u8>,
    pub reason: String,
    pub site: Option<String>,
    pub gateway: Option<String>,
    pub seq: Option<i64>,
}

/// The most of a refused payload kept in `rejected` (an oversized message is cut there).
pub const REJECTED_PAYLOAD_MAX: usize = 16 * 1024;

impl Rejection {
    pub fn of_row(row: &Row, reason: String) -> Rejection {
        Rejection {
            topic: row.topic.clone(),
            payload: row.payload(),
            reason,
            site: Some(row.site.clone()),
            gateway: Some(row.gateway.clone()),
            seq: Some(row.seq),
        }
    }
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
    /// Data of the gateway arrived (its `last_message`).
    LastMessage { site: String, gateway: String },
    /// A retained limit alarm (None: cleared).
    Alarm {
        site: String,
        gateway: String,
        name: String,
        payload: Option<Value>,
    },
    /// A gateway answered a replay: these seq ranges (inclusive) it no longer holds.
    Gone {
        site: String,
        gateway: String,
        ranges: Vec<[i64; 2]>,
    },
}

/// Why a data batch was not stored (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{}", explain(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("seq {seq} of {site}/{gateway} was neither new nor stored (its row in seqs deleted meanwhile?)")]
    Raced {
        site: String,
        gateway: String,
        seq: i64,
    },
}

/// What a data batch did.
#[derive(Debug, Default)]
pub struct Written {
    /// Rows new in `readings` (a copy of a stored message is not; a refilled deleted row is).
    pub inserted: u64,
    /// Messages refused by the store: another message under a stored seq (besides the ones given).
    pub rejected: Vec<Rejection>,
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

    /// Store a batch of data messages and the messages already refused, in one transaction.
    /// Exactly once on (site, gateway, seq): see the module's comment.
    pub async fn write_data(
        &mut self,
        rows: &[Row],
        refused: &[Rejection],
    ) -> Result<Written, WriteError> {
        let mut out = Written::default();
        // Copies inside the batch first: the database compares with what it stored before.
        let mut first: std::collections::HashMap<(&str, &str, i64), usize> = Default::default();
        let mut unique: Vec<&Row> = Vec::with_capacity(rows.len());
        for r in rows {
            match first.get(&r.key()) {
                None => {
                    first.insert(r.key(), unique.len());
                    unique.push(r);
                }
                Some(&i) if unique[i].same_message(r) => {}
                Some(_) => out.rejected.push(Rejection::of_row(
                    r,
                    format!(
                        "another message under seq {} arrived first (a different ts, meter or points)",
                        r.seq
                    ),
                )),
            }
        }
        let months: BTreeSet<NaiveDate> = unique
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
        if !unique.is_empty() {
            // New seqs: into seqs and readings in one statement (the common case: one round trip).
            let new: std::collections::HashSet<(String, String, i64)> = tx
                .query(
                    "WITH input AS (SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], \
                         $4::timestamptz[], $5::text[], $6::jsonb[]) AS t(site, gateway, seq, ts, meter, points)), \
                     new AS (INSERT INTO seqs (site, gateway, seq, ts, meter, digest) \
                         SELECT site, gateway, seq, ts, meter, md5(points::text) FROM input \
                         ON CONFLICT DO NOTHING RETURNING site, gateway, seq) \
                     INSERT INTO readings (site, gateway, seq, ts, meter, points) \
                     SELECT i.site, i.gateway, i.seq, i.ts, i.meter, i.points \
                     FROM input i JOIN new n USING (site, gateway, seq) \
                     ON CONFLICT DO NOTHING RETURNING site, gateway, seq",
                    &columns(&unique).params(),
                )
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
            out.inserted = new.len() as u64;
            let rest: Vec<&Row> = unique
                .iter()
                .copied()
                .filter(|r| !new.contains(&(r.site.clone(), r.gateway.clone(), r.seq)))
                .collect();
            if !rest.is_empty() {
                // Seqs stored before (by this instance or another, which committed since): a copy
                // of the same message puts back its readings row if that was deleted; another
                // message under the seq is refused.
                let same: std::collections::HashMap<(String, String, i64), bool> = tx
                    .query(
                        "SELECT i.site, i.gateway, i.seq, \
                             s.ts = i.ts AND s.meter = i.meter AND s.digest = md5(i.points::text) \
                         FROM unnest($1::text[], $2::text[], $3::int8[], $4::timestamptz[], $5::text[], $6::jsonb[]) \
                             AS i(site, gateway, seq, ts, meter, points) \
                         JOIN seqs s USING (site, gateway, seq)",
                        &columns(&rest).params(),
                    )
                    .await?
                    .iter()
                    .map(|r| ((r.get(0), r.get(1), r.get(2)), r.get(3)))
                    .collect();
                let mut copies = Vec::new();
                for r in rest {
                    match same.get(&(r.site.clone(), r.gateway.clone(), r.seq)) {
                        Some(true) => copies.push(r),
                        Some(false) => out.rejected.push(Rejection::of_row(
                            r,
                            format!(
                                "another message is stored under seq {} (a different ts, meter or points)",
                                r.seq
                            ),
                        )),
                        // Not new and not stored: only if a row of seqs was deleted meanwhile;
                        // the batch is retried.
                        None => {
                            return Err(WriteError::Raced {
                                site: r.site.clone(),
                                gateway: r.gateway.clone(),
                                seq: r.seq,
                            })
                        }
                    }
                }
                if !copies.is_empty() {
                    out.inserted += tx
                        .execute(
                            "INSERT INTO readings (site, gateway, seq, ts, meter, points) \
                             SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::timestamptz[], $5::text[], $6::jsonb[]) \
                             ON CONFLICT DO NOTHING",
                            &columns(&copies).params(),
                        )
                        .await?;
                }
            }
        }
        for r in refused.iter().chain(&out.rejected) {
            let payload = &r.payload[..r.payload.len().min(REJECTED_PAYLOAD_MAX)];
            tx.execute(
                "INSERT INTO rejected (topic, payload, reason, site, gateway, seq) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&r.topic, &payload, &r.reason, &r.site, &r.gateway, &r.seq],
            )
            .await?;
        }
        tx.commit().await?;
        self.months.extend(months);
        Ok(out)
    }

    /// Gateway state, apart from the data (so that two instances never hold a gateway's row and
    /// the data's locks at once). Every instance receives every status, health and alarm, in an
    /// order of its own: the rows are locked in one order (table, then key; a stable sort, so the
    /// last update of a row still wins), else two instances deadlock.
    pub async fn write_state(
        &mut self,
        updates: &[StateUpdate],
    ) -> Result<(), tokio_postgres::Error> {
        if updates.is_empty() {
            return Ok(());
        }
        let mut ordered: Vec<&StateUpdate> = updates.iter().collect();
        ordered.sort_by(|a, b| lock_order(a).cmp(&lock_order(b)));
        let tx = self.client.transaction().await?;
        for u in ordered {
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
                StateUpdate::Alarm {
                    site,
                    gateway,
                    name,
                    payload,
                } => {
                    let state = payload
                        .as_ref()
                        .and_then(|p| p.get("state"))
                        .and_then(Value::as_str);
                    match payload {
                        Some(p) => {
                            tx.execute(
                            "INSERT INTO alarms (site, gateway, name, state, payload, updated_at) \
                             VALUES ($1, $2, $3, $4, $5, now()) ON CONFLICT (site, gateway, name) \
                             DO UPDATE SET state = $4, payload = $5, updated_at = now()",
                            &[site, gateway, name, &state, p],
                        )
                        .await?
                        }
                        None => {
                            tx.execute(
                            "DELETE FROM alarms WHERE site = $1 AND gateway = $2 AND name = $3",
                            &[site, gateway, name],
                        )
                        .await?
                        }
                    };
                }
                StateUpdate::Gone {
                    site,
                    gateway,
                    ranges,
                } => {
                    let from: Vec<i64> = ranges.iter().map(|r| r[0]).collect();
                    let to: Vec<i64> = ranges.iter().map(|r| r[1]).collect();
                    tx.execute(
                        "INSERT INTO gone (site, gateway, seq_from, seq_to) \
                         SELECT $1, $2, f, t FROM unnest($3::int8[], $4::int8[]) AS u(f, t) \
                         ON CONFLICT DO NOTHING",
                        &[site, gateway, &from, &to],
                    )
                    .await?;
                }
                StateUpdate::LastMessage { site, gateway } => {
                    tx.execute(
                        "INSERT INTO gateways (site, gateway, last_message) VALUES ($1, $2, now()) \
                         ON CONFLICT (site, gateway) DO UPDATE SET last_message = now()",
                        &[site, gateway],
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
            }
        }
        tx.commit().await
    }
}

/// The order in which state updates lock rows: table, then the row's key.
fn lock_order(u: &StateUpdate) -> (u8, &str, &str, &str) {
    match u {
        StateUpdate::Status { site, gateway, .. }
        | StateUpdate::Meta { site, gateway, .. }
        | StateUpdate::LastMessage { site, gateway } => (0, site, gateway, ""),
        StateUpdate::Health {
            site,
            gateway,
            meter,
            ..
        } => (1, site, gateway, meter),
        StateUpdate::Alarm {
            site,
            gateway,
            name,
            ..
        } => (2, site, gateway, name),
        StateUpdate::Gone { site, gateway, .. } => (3, site, gateway, ""),
        StateUpdate::Subscribed { client_id } => (4, client_id, "", ""),
    }
}

/// A batch's rows as the column arrays of an `unnest`.
struct Columns<'r> {
    sites: Vec<&'r str>,
    gws: Vec<&'r str>,
    seqs: Vec<i64>,
    tss: Vec<DateTime<Utc>>,
    meters: Vec<&'r str>,
    points: Vec<&'r Value>,
}

fn columns<'r>(rows: &[&'r Row]) -> Columns<'r> {
    Columns {
        sites: rows.iter().map(|&r| r.site.as_str()).collect(),
        gws: rows.iter().map(|&r| r.gateway.as_str()).collect(),
        seqs: rows.iter().map(|r| r.seq).collect(),
        tss: rows.iter().map(|r| r.ts).collect(),
        meters: rows.iter().map(|&r| r.meter.as_str()).collect(),
        points: rows.iter().map(|&r| &r.points).collect(),
    }
}

impl Columns<'_> {
    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 6] {
        [
            &self.sites,
            &self.gws,
            &self.seqs,
            &self.tss,
            &self.meters,
            &self.points,
        ]
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
    /// Seq ranges the gateway answered it no longer holds (evicted there before delivery, or
    /// past its retention): not stored, and not missing any more (nothing will fill them).
    pub gone: Vec<[i64; 2]>,
    pub evictions: Option<i64>,
    /// Messages refused (kept in table `rejected`): malformed, out of bounds, unknown gateway, or
    /// another message under a stored seq. Counted, never stored as readings.
    pub rejected: i64,
}

/// Every known gateway with its counts and the seq ranges missing between the first and last stored.
pub async fn status(client: &Client) -> Result<Vec<GatewayStatus>, tokio_postgres::Error> {
    let mut out: Vec<GatewayStatus> = Vec::new();
    let rows = client
        .query(
            "SELECT k.site, k.gateway, coalesce(g.online, false), g.last_message, g.evictions, \
                    coalesce(r.n, 0), r.first, r.last, coalesce(x.n, 0) \
             FROM (SELECT site, gateway FROM gateways \
                   UNION SELECT site, gateway FROM rejected WHERE site IS NOT NULL AND gateway IS NOT NULL) k \
             LEFT JOIN gateways g ON g.site = k.site AND g.gateway = k.gateway \
             LEFT JOIN (SELECT site, gateway, count(*) AS n, min(seq) AS first, max(seq) AS last \
                 FROM readings GROUP BY site, gateway) r ON r.site = k.site AND r.gateway = k.gateway \
             LEFT JOIN (SELECT site, gateway, count(*) AS n FROM rejected GROUP BY site, gateway) x \
                 ON x.site = k.site AND x.gateway = k.gateway \
             ORDER BY k.site, k.gateway",
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
            gone: Vec::new(),
            rejected: r.get(8),
        });
    }
    for m in missing(client, None).await? {
        if let Some(s) = out
            .iter_mut()
            .find(|s| s.site == m.site && s.gateway == m.gateway)
        {
            (s.missing, s.gone) = (m.missing, m.gone);
        }
    }
    Ok(out)
}

/// A gateway's missing seq ranges (not stored, between its first and last stored seq, at most
/// [`MISSING_MAX`]) and the ranges it answered gone.
#[derive(Debug, Clone, PartialEq)]
pub struct Missing {
    pub site: String,
    pub gateway: String,
    pub missing: Vec<[i64; 2]>,
    pub gone: Vec<[i64; 2]>,
}

/// Every gateway's missing ranges. Bounded: each gateway's look starts at its mark in `seq_checked`
/// (every seq below it stored or reported gone) and reads the readings from there by the primary
/// key's index; the mark then moves up to the first range still missing (or the last seq). A row
/// deleted from `readings` moves its gateway's mark back below it (trigger), so it is found again.
/// `only`: these gateways (`site/id`), else every one.
pub async fn missing(
    client: &Client,
    only: Option<&[String]>,
) -> Result<Vec<Missing>, tokio_postgres::Error> {
    let gateways = client
        .query(
            "SELECT g.site, g.gateway, c.upto FROM gateways g \
             LEFT JOIN seq_checked c ON c.site = g.site AND c.gateway = g.gateway \
             WHERE $1::text[] IS NULL OR g.site || '/' || g.gateway = ANY($1) \
             ORDER BY g.site, g.gateway",
            &[&only],
        )
        .await?;
    let mut out = Vec::new();
    for g in gateways {
        let (site, gateway, mark): (String, String, Option<i64>) = (g.get(0), g.get(1), g.get(2));
        let from = mark.unwrap_or(i64::MIN);
        // The mark stands for a stored seq (everything up to it is stored or gone), so a gap right
        // after it is found even when the seq at the mark itself was reported gone.
        let anchor = if mark.is_some() {
            "SELECT $3::int8 AS seq UNION ALL "
        } else {
            ""
        };
        let gaps = client
            .query(
                &format!(
                    "SELECT prev + 1, seq - 1 FROM ( \
                         SELECT seq, lag(seq) OVER (ORDER BY seq) AS prev FROM ( \
                             {anchor}SELECT seq FROM readings \
                             WHERE site = $1 AND gateway = $2 AND seq > $3) u) t \
                     WHERE seq > prev + 1 ORDER BY seq LIMIT $4"
                ),
                &[&site, &gateway, &from, &MISSING_MAX],
            )
            .await?;
        let found: Vec<[i64; 2]> = gaps.iter().map(|r| [r.get(0), r.get(1)]).collect();
        let reported: Vec<[i64; 2]> = client
            .query(
                "SELECT seq_from, seq_to FROM gone WHERE site = $1 AND gateway = $2 ORDER BY 1, 2",
                &[&site, &gateway],
            )
            .await?
            .iter()
            .map(|r| [r.get(0), r.get(1)])
            .collect();
        let (still, mut gone) = split(&found, &reported);
        // Below the mark every seq not stored was reported gone: those ranges, as reported.
        if let Some(m) = mark {
            let below: Vec<[i64; 2]> = reported
                .iter()
                .filter(|r| r[0] <= m)
                .map(|r| [r[0], r[1].min(m)])
                .collect();
            gone = merge(below.into_iter().chain(gone).collect());
        }
        let next = match still.first() {
            Some(r) => Some(r[0] - 1),
            None => client
                .query_one(
                    "SELECT max(seq) FROM readings WHERE site = $1 AND gateway = $2 AND seq >= $3",
                    &[&site, &gateway, &from],
                )
                .await?
                .get::<_, Option<i64>>(0),
        };
        if let Some(next) = next.filter(|n| Some(*n) != mark) {
            // Only from the mark read: a delete meanwhile (the trigger lowered it) wins.
            client
                .execute(
                    "INSERT INTO seq_checked (site, gateway, upto) VALUES ($1, $2, $3) \
                     ON CONFLICT (site, gateway) DO UPDATE SET upto = $3 \
                     WHERE seq_checked.upto IS NOT DISTINCT FROM $4",
                    &[&site, &gateway, &next, &mark],
                )
                .await?;
        }
        out.push(Missing {
            site,
            gateway,
            missing: still,
            gone,
        });
    }
    Ok(out)
}

/// Sorted inclusive ranges with overlapping or adjacent ones joined.
fn merge(mut ranges: Vec<[i64; 2]>) -> Vec<[i64; 2]> {
    ranges.sort_unstable();
    let mut out: Vec<[i64; 2]> = Vec::new();
    for [a, b] in ranges {
        match out.last_mut() {
            Some([_, e]) if *e + 1 >= a => *e = (*e).max(b),
            _ => out.push([a, b]),
        }
    }
    out
}

/// The parts of `missing` not in any `gone` range, and the parts that are (ranges inclusive).
pub fn split(missing: &[[i64; 2]], gone: &[[i64; 2]]) -> (Vec<[i64; 2]>, Vec<[i64; 2]>) {
    let mut still = Vec::new();
    let mut lost: Vec<[i64; 2]> = Vec::new();
    for &[a, b] in missing {
        let mut at = a;
        let mut cuts: Vec<[i64; 2]> = gone
            .iter()
            .filter(|g| g[0] <= b && g[1] >= a)
            .map(|g| [g[0].max(a), g[1].min(b)])
            .collect();
        cuts.sort_unstable();
        for [c, d] in cuts {
            if c > at {
                still.push([at, c - 1]);
            }
            if d >= at {
                match lost.last_mut() {
                    Some([_, e]) if *e + 1 >= c.max(at) => *e = (*e).max(d),
                    _ => lost.push([c.max(at), d]),
                }
                at = d + 1;
            }
        }
        if at <= b {
            still.push([at, b]);
        }
    }
    (still, lost)
}

#[cfg(test)]
mod tests {
    #[test]
    fn gone_ranges_are_taken_out_of_the_missing_ones() {
        let (still, gone) = super::split(
            &[[4, 10], [20, 20], [30, 40]],
            &[[1, 5], [8, 8], [7, 9], [30, 40]],
        );
        assert_eq!(still, vec![[6, 6], [10, 10], [20, 20]]);
        assert_eq!(gone, vec![[4, 5], [7, 9], [30, 40]]);
        assert_eq!(super::split(&[[1, 3]], &[]), (vec![[1, 3]], vec![]));
    }
}
