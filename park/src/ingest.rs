//! `run`: consume the gateways' topics and store them. Two tasks:
//! - the MQTT task polls the event loop (reconnecting after any error, the broker keeping the
//!   persistent session's messages) and hands every PUBLISH to the writer, in order;
//! - the writer stores a batch in one transaction and only then acknowledges its messages
//!   (rumqttc manual acks), so a killed instance leaves its unacknowledged messages in the broker.
//!
//! A database outage stops the writer, not the process: it keeps the batch, reconnects with a
//! growing delay, and stores it then; meanwhile nothing is acknowledged, so the broker holds the rest.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rumqttc::{AsyncClient, Event, EventLoop, Incoming, MqttOptions, Publish, QoS};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::bounds::{self, Bounds};
use crate::config::Config;
use crate::db::{self, Rejection, Row, StateUpdate, Store};
use crate::topic::{self, Kind};

const RETRY_MIN: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Messages between the MQTT task and the writer; bounded (the broker's in-flight window bounds it
/// in practice, since nothing is acknowledged before it is stored).
const QUEUE: usize = 20_000;

/// What one incoming PUBLISH becomes.
#[derive(Debug)]
pub enum Decoded {
    Data(Row),
    State(StateUpdate),
    /// Malformed or oversized: kept in `rejected` with why.
    Rejected(Rejection),
    /// Not a topic of ours (acknowledged, not stored).
    Ignored,
}

/// Decode one message (pure): a data message into a row, state messages into updates, anything
/// malformed into a `rejected` record naming the topic and why.
pub fn decode(prefix: &str, topic: &str, payload: &[u8]) -> Decoded {
    let Some(src) = topic::classify(prefix, topic) else {
        return Decoded::Ignored;
    };
    let reject = |reason: String| {
        Decoded::Rejected(Rejection {
            topic: topic.to_string(),
            payload: payload[..payload.len().min(db::REJECTED_PAYLOAD_MAX)].to_vec(),
            reason,
            site: Some(src.site.to_string()),
            gateway: Some(src.gateway.to_string()),
            seq: None,
        })
    };
    let (site, gateway) = (src.site.to_string(), src.gateway.to_string());
    if payload.len() > bounds::MAX_PAYLOAD {
        return reject(format!(
            "{} bytes (at most {}; the first {} kept here)",
            payload.len(),
            bounds::MAX_PAYLOAD,
            db::REJECTED_PAYLOAD_MAX
        ));
    }
    match src.kind {
        Kind::Data { meter } => {
            let msg: plantmeter_common::DataMessage = match serde_json::from_slice(payload) {
                Ok(m) => m,
                Err(e) => return reject(format!("not a data message: {e}")),
            };
            if msg.meter != meter {
                return reject(format!(
                    "the payload names meter \"{}\" on the topic of meter \"{meter}\"",
                    msg.meter
                ));
            }
            let Ok(seq) = i64::try_from(msg.seq) else {
                return reject(format!("seq {} is out of range", msg.seq));
            };
            let Some(ts) = chrono::DateTime::from_timestamp_millis(msg.ts) else {
                return reject(format!("ts {} ms is out of range", msg.ts));
            };
            let points = serde_json::to_value(&msg.points).unwrap_or(Value::Null);
            Decoded::Data(Row {
                topic: topic.to_string(),
                site,
                gateway,
                seq,
                ts,
                meter: msg.meter,
                points,
            })
        }
        Kind::Replay => {
            #[derive(serde::Deserialize)]
            struct Answer {
                gone: Vec<[i64; 2]>,
            }
            match serde_json::from_slice::<Answer>(payload) {
                Ok(a) => Decoded::State(StateUpdate::Gone {
                    site,
                    gateway,
                    ranges: a
                        .gone
                        .into_iter()
                        .filter(|[a, b]| a <= b)
                        .take(10_000)
                        .collect(),
                }),
                Err(e) => reject(format!(
                    "not a replay answer {{\"from\",\"to\",\"gone\"}}: {e}"
                )),
            }
        }
        Kind::Status | Kind::Health { .. } | Kind::Meta | Kind::Alarm { .. } => {
            // An empty retained message clears the topic (an alarm no longer configured).
            if payload.is_empty() {
                return match src.kind {
                    Kind::Alarm { name } => Decoded::State(StateUpdate::Alarm {
                        site,
                        gateway,
                        name: name.to_string(),
                        payload: None,
                    }),
                    _ => Decoded::Ignored,
                };
            }
            let payload: Value = match serde_json::from_slice(payload) {
                Ok(v @ Value::Object(_)) => v,
                Ok(_) => return reject("not a JSON object".into()),
                Err(e) => return reject(format!("not JSON: {e}")),
            };
            Decoded::State(match src.kind {
                Kind::Status => StateUpdate::Status {
                    site,
                    gateway,
                    payload,
                },
                Kind::Alarm { name } => StateUpdate::Alarm {
                    site,
                    gateway,
                    name: name.to_string(),
                    payload: Some(payload),
                },
                Kind::Health { meter } => StateUpdate::Health {
                    site,
                    gateway,
                    meter: meter.to_string(),
                    payload,
                },
                _ => StateUpdate::Meta {
                    site,
                    gateway,
                    payload,
                },
            })
        }
    }
}

fn mqtt_options(cfg: &Config, client_id: &str) -> anyhow::Result<MqttOptions> {
    let m = &cfg.mqtt;
    let mut o = MqttOptions::new(client_id, m.host.clone(), m.port);
    o.set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(Duration::from_secs(m.keep_alive_s))
        .set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024);
    if let Some(user) = &m.username {
        let pw = match &m.password_file {
            Some(f) => std::fs::read_to_string(f)
                .with_context(|| format!("cannot read [mqtt] password_file {}", f.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
            None => String::new(),
        };
        o.set_credentials(user.clone(), pw);
    }
    Ok(o)
}

/// What the MQTT task hands the writer, in arrival order.
#[derive(Debug)]
enum Input {
    Publish(Publish),
    /// The broker acknowledged this connection's subscriptions.
    Subscribed,
}

/// Consume and store until `stop` turns true; then finish the batch in hand and disconnect.
pub async fn run(
    cfg: Config,
    client_id: String,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let options = mqtt_options(&cfg, &client_id)?;
    let (client, eventloop) = AsyncClient::new(options, 1024);
    let (tx, rx) = mpsc::channel::<Input>(QUEUE);
    tracing::info!(client_id, broker = %cfg.mqtt.url, "plantmeter-park starting");
    let mqtt = tokio::spawn(mqtt_task(
        cfg.clone(),
        client.clone(),
        eventloop,
        tx,
        stop.clone(),
    ));
    let replay = tokio::spawn(crate::replay::run(
        cfg.clone(),
        client.clone(),
        stop.clone(),
    ));
    let writer = writer_task(cfg, client_id, client.clone(), rx, stop.clone());
    tokio::pin!(writer);
    let result = tokio::select! {
        r = &mut writer => r,
        _ = stop.wait_for(|s| *s) => {
            // Let the writer finish what it holds (it checks stop between batches), briefly.
            tokio::time::timeout(Duration::from_secs(5), &mut writer)
                .await
                .unwrap_or(Ok(()))
        }
    };
    replay.abort();
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_secs(1), mqtt).await;
    result
}

async fn mqtt_task(
    cfg: Config,
    client: AsyncClient,
    mut eventloop: EventLoop,
    tx: mpsc::Sender<Input>,
    stop: watch::Receiver<bool>,
) {
    let filters = topic::filters(&cfg.mqtt.topic_prefix, &cfg.mqtt.share_group);
    let mut delay = RETRY_MIN;
    let mut down_logged = false;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                delay = RETRY_MIN;
                down_logged = false;
                tracing::info!(
                    session_present = ack.session_present,
                    "connected to the broker"
                );
                let subs = filters
                    .iter()
                    .map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
                if let Err(e) = client.try_subscribe_many(subs) {
                    tracing::error!(error = %e, "cannot subscribe");
                }
            }
            Ok(Event::Incoming(Incoming::Publish(p))) => {
                if tx.send(Input::Publish(p)).await.is_err() {
                    return; // the writer ended
                }
            }
            Ok(Event::Incoming(Incoming::SubAck(s))) => {
                if s.return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                {
                    tracing::error!(
                        "the broker refused a subscription (shared subscriptions $share/… need mosquitto 2, EMQX, HiveMQ or TBMQ)"
                    );
                } else if tx.send(Input::Subscribed).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                if *stop.borrow() {
                    return;
                }
                if !down_logged {
                    tracing::warn!(broker = %cfg.mqtt.url, error = %e, "broker unreachable; retrying");
                    down_logged = true;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(RETRY_MAX);
            }
        }
    }
}

/// Sleep `delay`, or less when stopping; true when stopping.
async fn pause(delay: Duration, stop: &watch::Receiver<bool>) -> bool {
    let mut waiting = stop.clone();
    tokio::select! {
        _ = tokio::time::sleep(delay) => *stop.borrow(),
        _ = waiting.wait_for(|s| *s) => true,
    }
}

/// Logs refused messages, at most one line per gateway and reason every `every` (a flood of forged
/// messages must not flood the log); the line says how many were not logged since.
struct RateLog {
    every: Duration,
    last: HashMap<String, (Instant, u64)>,
}

impl RateLog {
    fn new(every: Duration) -> RateLog {
        RateLog {
            every,
            last: HashMap::new(),
        }
    }

    fn refused(&mut self, r: &Rejection) {
        // The reason without its numbers: "seq 12 jumps…" and "seq 13 jumps…" are one kind.
        let kind: String = r
            .reason
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .take(48)
            .collect();
        let key = format!(
            "{}/{} {kind}",
            r.site.as_deref().unwrap_or("-"),
            r.gateway.as_deref().unwrap_or("-")
        );
        if self.last.len() > 10_000 {
            self.last.clear();
        }
        match self.last.get_mut(&key) {
            Some((at, suppressed)) if at.elapsed() < self.every => *suppressed += 1,
            Some((at, suppressed)) => {
                tracing::warn!(
                    topic = r.topic,
                    reason = r.reason,
                    not_logged_since = *suppressed,
                    "message refused (kept in table rejected)"
                );
                (*at, *suppressed) = (Instant::now(), 0);
            }
            None => {
                tracing::warn!(
                    topic = r.topic,
                    reason = r.reason,
                    "message refused (kept in table rejected)"
                );
                self.last.insert(key, (Instant::now(), 0));
            }
        }
    }
}

/// How often one instance updates a gateway's `last_message` (a row both instances write).
const LAST_MESSAGE_EVERY: Duration = Duration::from_secs(1);

/// Connect and migrate, and read what the bounds need: each configured gateway's last stored seq
/// and reported evictions.
async fn open_store(cfg: &Config, bounds: &mut Bounds) -> Result<Store, String> {
    let mut c = db::connect(&cfg.database)
        .await
        .map_err(|e| e.to_string())?;
    let v = db::migrate(&mut c)
        .await
        .map_err(|e| format!("migration: {}", db::explain(&e)))?;
    let known: Vec<(String, String)> = bounds
        .known()
        .map(|(s, g)| (s.to_string(), g.to_string()))
        .collect();
    for (site, gw) in known {
        let r = c
            .query_one(
                "SELECT (SELECT max(seq) FROM seqs WHERE site = $1 AND gateway = $2), \
                        (SELECT evictions FROM gateways WHERE site = $1 AND gateway = $2)",
                &[&site, &gw],
            )
            .await
            .map_err(|e| db::explain(&e))?;
        if let Some(last) = r.get::<_, Option<i64>>(0) {
            bounds.stored(&site, &gw, last);
        }
        if let Some(n) = r.get::<_, Option<i64>>(1) {
            bounds.evictions(&site, &gw, n);
        }
    }
    tracing::info!(schema = v, "connected to the database");
    Ok(Store::new(c))
}

async fn writer_task(
    cfg: Config,
    client_id: String,
    client: AsyncClient,
    mut rx: mpsc::Receiver<Input>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut store: Option<Store> = None;
    let mut delay = RETRY_MIN;
    let mut db_down_logged = false;
    let mut batch: Vec<Input> = Vec::with_capacity(cfg.database.batch);
    // The batch in hand has its data stored (a retry then stores only its state).
    let mut data_done = false;
    let mut stored: u64 = 0;
    let mut bounds = Bounds::new(&cfg);
    let mut log = RateLog::new(Duration::from_secs(10));
    let mut last_message: HashMap<(String, String), Instant> = HashMap::new();
    loop {
        if store.is_none() {
            match open_store(&cfg, &mut bounds).await {
                Ok(s) => {
                    store = Some(s);
                    db_down_logged = false;
                    delay = RETRY_MIN;
                }
                Err(e) => {
                    if !db_down_logged {
                        tracing::warn!(error = %e, "database unreachable; holding messages (unacknowledged) and retrying");
                        db_down_logged = true;
                    }
                }
            }
            if store.is_none() {
                // Nothing held is acknowledged: when stopping, the broker keeps it for the session.
                if pause(delay, &stop).await {
                    return Ok(());
                }
                delay = (delay * 2).min(RETRY_MAX);
                continue;
            }
        }
        if batch.is_empty() {
            if *stop.borrow() {
                return Ok(());
            }
            let mut stop_rx = stop.clone();
            tokio::select! {
                p = rx.recv() => match p {
                    Some(p) => batch.push(p),
                    None => return Ok(()),
                },
                _ = stop_rx.wait_for(|s| *s) => return Ok(()),
            }
            while batch.len() < cfg.database.batch {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            data_done = false;
        }
        let Some(s) = store.as_mut() else { continue };
        let mut rows = Vec::new();
        let mut refused = Vec::new();
        let mut updates = Vec::new();
        let now = chrono::Utc::now();
        for input in &batch {
            let p = match input {
                Input::Publish(p) => p,
                Input::Subscribed => {
                    updates.push(StateUpdate::Subscribed {
                        client_id: client_id.clone(),
                    });
                    continue;
                }
            };
            match decode(&cfg.mqtt.topic_prefix, &p.topic, &p.payload) {
                Decoded::Data(r) => match bounds.check(&r, now) {
                    Ok(()) => rows.push(r),
                    Err(reason) => refused.push(Rejection::of_row(&r, reason)),
                },
                Decoded::State(u) => {
                    if let StateUpdate::Status {
                        site,
                        gateway,
                        payload,
                    } = &u
                    {
                        if let Some(n) = payload.get("evicted").and_then(Value::as_i64) {
                            bounds.evictions(site, gateway, n);
                        }
                    }
                    updates.push(u)
                }
                Decoded::Rejected(r) => refused.push(r),
                Decoded::Ignored => {}
            }
        }
        let mut seen = BTreeSet::new();
        for r in &rows {
            let key = (r.site.clone(), r.gateway.clone());
            if last_message
                .get(&key)
                .is_none_or(|at| at.elapsed() >= LAST_MESSAGE_EVERY)
            {
                seen.insert(key);
            }
        }
        updates.extend(seen.iter().map(|(site, gateway)| StateUpdate::LastMessage {
            site: site.clone(),
            gateway: gateway.clone(),
        }));
        let result = async {
            if !data_done {
                let written = s.write_data(&rows, &refused).await?;
                data_done = true;
                stored += written.inserted;
                for r in refused.iter().chain(&written.rejected) {
                    log.refused(r);
                }
                for r in &rows {
                    bounds.stored(&r.site, &r.gateway, r.seq);
                }
                tracing::debug!(
                    messages = batch.len(),
                    new = written.inserted,
                    stored,
                    "batch stored"
                );
            }
            s.write_state(&updates).await?;
            for key in seen {
                last_message.insert(key, Instant::now());
            }
            Ok::<(), db::WriteError>(())
        }
        .await;
        match result {
            Ok(()) => {
                for input in batch.drain(..) {
                    if let Input::Publish(p) = input {
                        if let Err(e) = client.ack(&p).await {
                            tracing::warn!(error = %e, "cannot acknowledge (the broker will redeliver)");
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "database write failed; reconnecting and retrying the batch");
                store = None;
                db_down_logged = true;
                if pause(delay, &stop).await {
                    return Ok(());
                }
                delay = (delay * 2).min(RETRY_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_message_becomes_a_row() {
        let p = br#"{"seq": 1042, "ts": "2026-11-21T08:00:05.000Z", "meter": "main-power",
            "points": [{"name": "energy_import", "value": 1234.56, "unit": "kWh", "quality": "good"}]}"#;
        let Decoded::Data(r) = decode("plantmeter", "plantmeter/plant-a/gw-01/data/main-power", p)
        else {
            panic!("not data")
        };
        assert_eq!(
            (r.site.as_str(), r.gateway.as_str(), r.seq),
            ("plant-a", "gw-01", 1042)
        );
        assert_eq!(
            r.ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "2026-11-21T08:00:05.000Z"
        );
        assert_eq!(r.points[0]["value"], 1234.56);
    }

    #[test]
    fn malformed_messages_are_rejected_with_the_reason() {
        for (topic, payload, why) in [
            ("p/s/g/data/m", &b"{nope"[..], "not a data message"),
            (
                "p/s/g/data/other",
                &br#"{"seq":1,"ts":"2026-01-01T00:00:00.000Z","meter":"m","points":[]}"#[..],
                "names meter \"m\"",
            ),
            ("p/s/g/status", &b"[1]"[..], "not a JSON object"),
        ] {
            match decode("p", topic, payload) {
                Decoded::Rejected(Rejection { reason, .. }) => {
                    assert!(reason.contains(why), "{reason}")
                }
                other => panic!("{topic}: {other:?}"),
            }
        }
        assert!(matches!(
            decode("p", "p/s/g/audit", b"{}"),
            Decoded::Ignored
        ));
        assert!(matches!(decode("p", "p/s/g/status", b""), Decoded::Ignored));
    }
}
