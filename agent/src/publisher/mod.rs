//! The publisher: durable data messages from the store to MQTT at QoS 1, in seq order, with a
//! bounded window; deletes a message only on its PUBACK. The bookkeeping is the sans-I/O
//! [`Outbox`]; this shell moves messages and events.
//!
//! rumqttc pitfalls handled here:
//! - `publish()` returns no packet id: the client reports `Outgoing::Publish(pkid)` for each QoS 1
//!   publish in submission order, which the outbox matches to what was submitted.
//! - rumqttc drops its queue when the broker has no session, and replays it when it has one: after
//!   any connection error its queue is cleared here and, on the next CONNACK, every unacknowledged
//!   message is sent again from the store, oldest first. One ordering, one source of truth.
//! - Publishing (`try_publish`) and polling the event loop happen in this one task, with the
//!   `poll()` future never dropped before it completes (no deadlock, no cancelled poll).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use plantmeter_common::outbox::{Outbox, Tag};
use plantmeter_common::Plan;
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, Incoming, LastWill, MqttOptions,
    NetworkOptions, Outgoing, QoS, TlsConfiguration, Transport,
};
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;

use crate::audit::live::ToPublish;
use crate::state::Shared;
use crate::store::Store;

#[cfg(test)]
mod fake_broker;

/// Publishes other than data a connection may have queued at once (status, health, audit).
const OTHER_SLOTS: usize = 512;
/// Reconnect delays: first, and the cap (real time).
const RECONNECT_MIN: Duration = Duration::from_millis(250);
const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// At shutdown: how long to wait for outstanding acks, then for the offline status.
/// At a shutdown (not a reload) the backlog keeps draining while connected until then: "buffer flushed".
const SHUTDOWN_ACKS: Duration = Duration::from_secs(5);
const SHUTDOWN_OFFLINE: Duration = Duration::from_secs(1);
/// Largest MQTT packet accepted and sent (bytes). The retained `P/audit` report can reach hundreds
/// of KB; this matches the embedded broker's `max_payload_size` (4 MiB, `broker.rs`) and is far below
/// mosquitto's default (256 MB). rumqttc allocates buffers as packets need them, not to this size.
pub const MAX_PACKET: usize = 4 * 1024 * 1024;
/// What a PUBLISH adds to topic and payload: fixed header (5), topic length (2), packet id (2).
const PUBLISH_OVERHEAD: usize = 9;
/// Acknowledged records deleted from the store at once.
const ACK_BATCH: usize = 64;
/// Replay requests (`P/cmd/replay`) held at once; more are refused with a warning.
const REPLAY_QUEUE: usize = 16;
/// Replayed messages submitted per turn, and in flight at most (beside the data window).
const REPLAY_TURN: usize = 64;
const REPLAY_INFLIGHT: usize = OTHER_SLOTS / 2;
/// Durable records read from the store at once, ahead of the window: the window is refilled on
/// every acknowledgement from this buffer, without a store scan per message.
const READ_AHEAD: usize = 256;

/// What the publisher consumes.
pub struct Inputs {
    pub plan: Arc<Plan>,
    pub store: Arc<Store>,
    pub shared: Shared,
    /// Notified by the store writer after each flush (new durable messages).
    pub wake: Arc<Notify>,
    /// Meters whose health changed (index in `Plan::meters()` order).
    pub health: mpsc::UnboundedReceiver<usize>,
    /// Audit report payloads to publish retained on `P/audit`, and limit alarms. Shared by the
    /// publishers of successive config reloads: each holds the lock while it runs.
    pub audit: Arc<tokio::sync::Mutex<mpsc::Receiver<ToPublish>>>,
    /// Set when the publisher should stop (pollers stopped, store flushed), with why.
    pub shutdown: watch::Receiver<Option<Stop>>,
    /// Agent start, ms since the epoch (wall time), for `since` in the status payload.
    pub started_ms: i64,
}

/// Why the publisher stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The agent exits: wait for acks, publish the retained offline status, disconnect.
    Shutdown,
    /// A config reload: wait for acks and disconnect cleanly (no last will, no offline status);
    /// the next publisher says online again.
    Reload,
}

/// Build the MQTT options from the plan: client id, persistent session, window, last will,
/// credentials (password from its file or environment variable, never logged) and TLS.
pub fn mqtt_options(plan: &Plan, started_ms: i64) -> anyhow::Result<MqttOptions> {
    let m = &plan.mqtt;
    let mut o = MqttOptions::new(m.client_id.clone(), m.host.clone(), m.port);
    o.set_keep_alive(m.keep_alive.max(Duration::from_secs(5)))
        .set_clean_session(false)
        .set_inflight(m.max_inflight.saturating_add(OTHER_SLOTS as u16).max(1))
        .set_max_packet_size(MAX_PACKET, MAX_PACKET)
        .set_last_will(LastWill::new(
            status_topic(plan),
            will_payload(started_ms),
            QoS::AtLeastOnce,
            true,
        ));
    // One reader for the files, shared with `check`: it fails naming the file that cannot serve.
    let files = plantmeter_common::config::files::read_mqtt_files(m).map_err(|errors| {
        let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("{}", all.join("; "))
    })?;
    if let Some(user) = &m.username {
        let password = match (files.password, &m.password_env) {
            (Some(p), _) => p,
            (None, Some(var)) => std::env::var(var).with_context(|| {
                format!("mqtt.password_env: environment variable {var} is not set")
            })?,
            (None, None) => String::new(),
        };
        o.set_credentials(user.clone(), password);
    }
    if let Some(ca) = files.ca {
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
            ca,
            alpn: None,
            client_auth: files.client_auth,
        }));
    }
    Ok(o)
}

/// `P/status`
pub fn status_topic(plan: &Plan) -> String {
    format!("{}/status", plan.mqtt.topic_prefix)
}

/// The retained status payload: `{"state":…,"version":…,"since":…}` plus `evicted` (records lost
/// to a full store since it was created), online the system `clock` (`"ok"`, or `"unset"`: nothing
/// is polled) and, offline, a `reason`.
pub fn status_payload(
    state: &str,
    since_ms: i64,
    evicted: Option<u64>,
    reason: Option<&str>,
    clock: Option<crate::state::ClockState>,
) -> Vec<u8> {
    let mut v = serde_json::json!({
        "state": state,
        "version": env!("CARGO_PKG_VERSION"),
        "since": plantmeter_common::model::format_ts_ms(since_ms),
    });
    if let Some(e) = evicted {
        v["evicted"] = e.into();
    }
    if let Some(r) = reason {
        v["reason"] = r.into();
    }
    if let Some(c) = clock {
        v["clock"] = c.as_str().into();
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

/// The last will: offline with `reason` "connection lost". Its `since` (the contract's field) is when the
/// agent came online, set when it connected, not when the connection was lost (the broker publishes
/// the will later): `online_since` says so by its name.
pub fn will_payload(started_ms: i64) -> Vec<u8> {
    let bytes = status_payload("offline", started_ms, None, Some("connection lost"), None);
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(mut v) => {
            v["online_since"] = plantmeter_common::model::format_ts_ms(started_ms).into();
            serde_json::to_vec(&v).unwrap_or(bytes)
        }
        Err(_) => bytes,
    }
}

struct Publisher {
    plan: Arc<Plan>,
    store: Arc<Store>,
    shared: Shared,
    client: AsyncClient,
    outbox: Outbox,
    started_ms: i64,
    status_dirty: bool,
    published_evicted: u64,
    published_clock: Option<crate::state::ClockState>,
    health_dirty: BTreeSet<usize>,
    audit_pending: Option<Vec<u8>>,
    /// The latest limit alarm per topic (retained; an empty payload clears a topic no longer configured,
    /// said again on each connect like the others in case the broker missed it), and the topics still
    /// to publish: all of them
    /// again on each connect, as a broker restart may have lost them.
    alarms: BTreeMap<String, Vec<u8>>,
    alarms_dirty: BTreeSet<String>,
    acked: Vec<u64>,
    /// Shutting down: no new data, then offline status.
    stopping: bool,
    /// Why, once stopping.
    stop: Stop,
    /// Stopping for good and still draining the backlog (until the offline status goes out).
    draining: bool,
    data_prefix: String,
    /// Records read from the store, not yet submitted (seq, payload), in seq order: the next ones
    /// after the outbox's cursor. Emptied whenever the outbox starts over (connect, disconnect).
    ahead: VecDeque<crate::store::Record>,
    /// `P/cmd/replay` requests being answered, oldest first.
    replays: VecDeque<ReplayJob>,
}

/// One `P/cmd/replay` request: `{"from": N, "to": M}`; `next` is the first seq not yet handled.
#[derive(Debug)]
struct ReplayJob {
    from: u64,
    to: u64,
    next: u64,
    gone: Vec<(u64, u64)>,
}

/// Read a replay request; None (logged) when it is not one.
fn replay_request(payload: &[u8]) -> Option<ReplayJob> {
    #[derive(serde::Deserialize)]
    struct Req {
        from: u64,
        to: u64,
    }
    match serde_json::from_slice::<Req>(payload) {
        Ok(r) if r.from <= r.to => Some(ReplayJob {
            from: r.from,
            to: r.to,
            next: r.from,
            gone: Vec::new(),
        }),
        Ok(r) => {
            tracing::warn!(
                from = r.from,
                to = r.to,
                "replay request with from after to; ignored"
            );
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "replay request is not {{\"from\": N, \"to\": M}}; ignored");
            None
        }
    }
}

impl Publisher {
    /// Hand the client whatever may go now. Never blocks.
    fn pump(&mut self) -> anyhow::Result<()> {
        // Deletes are batched (fewer lock round trips): a full batch, or whatever is acknowledged
        // once nothing is in flight (the end of a round of polls, a disconnect). A crash before
        // them only means duplicates.
        if self.acked.len() >= ACK_BATCH || (!self.acked.is_empty() && self.outbox.unacked() == 0) {
            self.store.remove_acked(&self.acked)?;
            let mut st = self.shared.lock();
            st.acked += self.acked.len() as u64;
            let total = st.acked;
            st.ack_rate
                .record(plantmeter_common::clock::system_ms(), total);
            drop(st);
            self.acked.clear();
        }
        if !self.outbox.is_connected() {
            return Ok(());
        }
        let evicted = self.store.evicted();
        let clock = self.shared.lock().clock;
        if evicted != self.published_evicted || Some(clock) != self.published_clock {
            self.status_dirty = true;
        }
        if self.status_dirty && !self.stopping {
            let payload =
                status_payload("online", self.started_ms, Some(evicted), None, Some(clock));
            if self.send_other(status_topic(&self.plan), payload, true) {
                self.status_dirty = false;
                self.published_evicted = evicted;
                self.published_clock = Some(clock);
            }
        }
        while let Some(&i) = self.health_dirty.first() {
            let Some((name, payload)) = self
                .shared
                .lock()
                .meters
                .get(i)
                .map(|m| (m.name.clone(), m.health_json()))
            else {
                self.health_dirty.remove(&i);
                continue;
            };
            let topic = format!("{}/health/{}", self.plan.mqtt.topic_prefix, name);
            if !self.send_other(topic, payload, true) {
                break;
            }
            self.health_dirty.remove(&i);
        }
        if let Some(report) = self.audit_pending.take() {
            let topic = format!("{}/audit", self.plan.mqtt.topic_prefix);
            if topic.len() + report.len() + PUBLISH_OVERHEAD > MAX_PACKET {
                // rumqttc would fail the whole connection on it: drop this report, keep the rest.
                tracing::error!(
                    bytes = report.len(),
                    max = MAX_PACKET,
                    "the audit report is larger than the largest MQTT packet; not published"
                );
            } else if !self.send_other(topic, report.clone(), true) {
                self.audit_pending = Some(report);
            }
        }
        while let Some(topic) = self.alarms_dirty.first().cloned() {
            let Some(payload) = self.alarms.get(&topic).cloned() else {
                self.alarms_dirty.remove(&topic);
                continue;
            };
            if !self.send_other(topic.clone(), payload, true) {
                break;
            }
            self.alarms_dirty.remove(&topic);
        }
        // A reload only waits for what is in flight (the next publisher sends the rest); a shutdown
        // drains the backlog while connected, up to the shutdown deadline.
        if self.stopping && !self.draining {
            return Ok(());
        }
        // The window is refilled on every acknowledgement, not in chunks: against a broker that
        // delays its PUBACKs (mosquitto: Nagle on its side, our delayed ACKs on ours), a publisher
        // that waits for room went at one window per ~40 ms (2,432 msg/s at window 100 where a
        // bare rumqttc client does 30-80 k; `plantmeter bench drain --mosquitto`).
        let mut room = self.outbox.room();
        while room > 0 {
            if self.ahead.is_empty() {
                if self.store.durable_next() <= self.outbox.cursor() {
                    break; // nothing new since the last read: no store scan
                }
                let batch = self.store.read_from(self.outbox.cursor(), READ_AHEAD)?;
                if batch.is_empty() {
                    break;
                }
                self.ahead.extend(batch);
            }
            let Some(record) = self.ahead.front() else {
                break;
            };
            // A record always names its meter; should one not, it still goes out (and is deleted
            // once acknowledged) rather than blocking the window forever.
            let meter = record.meter().unwrap_or("unknown");
            let topic = format!("{}{}", self.data_prefix, meter);
            let seq = record.seq;
            match self
                .client
                .try_publish(topic, QoS::AtLeastOnce, false, record.payload.to_vec())
            {
                Ok(()) => {
                    self.outbox.submitted_data(seq);
                    self.ahead.pop_front();
                    room -= 1;
                }
                Err(_) => break, // request channel full: the rest goes next turn
            }
        }
        self.pump_replays()?;
        Ok(())
    }

    /// Re-publish what replay requests ask for, unchanged on their data topics, a turn's worth at
    /// a time and never crowding out the data window; then the answer on `P/replay` with what the
    /// store no longer holds.
    fn pump_replays(&mut self) -> anyhow::Result<()> {
        let mut budget = REPLAY_TURN;
        while budget > 0 && self.outbox.pending() < self.outbox.unacked() + REPLAY_INFLIGHT {
            let Some(job) = self.replays.front_mut() else {
                return Ok(());
            };
            if job.next <= job.to {
                let r = self.store.replay(job.next, job.to, budget)?;
                job.gone.extend(r.gone);
                let mut sent_to = r.next.unwrap_or(job.to.saturating_add(1));
                for rec in r.records {
                    let topic = format!("{}{}", self.data_prefix, rec.meter().unwrap_or("unknown"));
                    if !self.send_other(topic, rec.payload.to_vec(), false) {
                        // The client's queue is full: this record and the rest next turn (a
                        // gone range found past it is found again then).
                        sent_to = rec.seq;
                        break;
                    }
                    budget -= 1;
                }
                let Some(job) = self.replays.front_mut() else {
                    return Ok(());
                };
                if sent_to < job.to.saturating_add(1) {
                    job.gone.retain(|&(a, _)| a < sent_to);
                }
                job.next = sent_to;
                if job.next <= job.to {
                    if budget > 0 {
                        // Cut by the queue: wait for room.
                        return Ok(());
                    }
                    continue;
                }
            }
            let Some(job) = self.replays.front() else {
                return Ok(());
            };
            let answer = serde_json::json!({"from": job.from, "to": job.to, "gone": job.gone});
            let topic = format!("{}/replay", self.plan.mqtt.topic_prefix);
            if !self.send_other(topic, answer.to_string().into_bytes(), false) {
                return Ok(());
            }
            self.replays.pop_front();
        }
        Ok(())
    }

    fn send_other(&mut self, topic: String, payload: Vec<u8>, retain: bool) -> bool {
        match self
            .client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
        {
            Ok(()) => {
                self.outbox.submitted_other();
                true
            }
            Err(_) => false,
        }
    }

    fn on_connected(&mut self, session_present: bool) {
        self.outbox.on_connected();
        self.ahead.clear();
        self.status_dirty = true;
        self.send_other(
            crate::meta::topic(&self.plan),
            crate::meta::payload(&self.plan),
            true,
        );
        let n = {
            let mut st = self.shared.lock();
            st.mqtt_connected = true;
            st.meters.len()
        };
        // Replay requests (the broker keeps the subscription in the session; asked again anyway).
        let cmd = format!("{}/cmd/replay", self.plan.mqtt.topic_prefix);
        if let Err(e) = self.client.try_subscribe(cmd, QoS::AtLeastOnce) {
            tracing::warn!(error = %e, "cannot subscribe to replay requests");
        }
        // Retained health may have been lost with a broker restart: publish every known state.
        self.health_dirty.extend(0..n);
        self.alarms_dirty.extend(self.alarms.keys().cloned());
        tracing::info!(
            broker = %self.plan.mqtt.url,
            session_present,
            backlog = self.store.backlog(),
            "connected to the broker"
        );
    }
}

/// The socket options: TCP_NODELAY, so that a publish or an ack the client flushes leaves at once
/// rather than waiting behind an unacknowledged segment (rumqttc's default leaves Nagle on).
/// Measured against mosquitto (`bench drain --mosquitto`, window 100, A/B on one build): alone it
/// is worth little (2,179 -> 2,432 msg/s with the old chunked refill); with the refill on every
/// ack, within noise without a subscriber (0.80-0.89 vs 0.81-0.83 of a bare publisher) and ahead
/// with one (46-47 k vs 32-41 k msg/s; the broker spends 11 us per message instead of 15-18).
/// It costs ~1 us of our CPU per message (one segment per publish).
fn network_options() -> NetworkOptions {
    let mut n = NetworkOptions::new();
    n.set_tcp_nodelay(true);
    n
}

/// After a connection error: forget everything rumqttc queued (the outbox resends from the store).
fn reset_eventloop(ev: &mut EventLoop) {
    ev.pending.clear();
    ev.state.events.clear();
    ev.state.collision = None;
}

/// Run the publisher until shutdown (then: wait briefly for acks, publish the offline status,
/// disconnect).
pub async fn run(mut inputs: Inputs) -> anyhow::Result<()> {
    let plan = inputs.plan.clone();
    let options = mqtt_options(&plan, inputs.started_ms)?;
    let window = usize::from(plan.mqtt.max_inflight.max(1));
    let (client, mut eventloop) = AsyncClient::new(options, window + OTHER_SLOTS);
    let mut p = Publisher {
        data_prefix: format!("{}/data/", plan.mqtt.topic_prefix),
        plan,
        store: inputs.store.clone(),
        shared: inputs.shared.clone(),
        client,
        outbox: Outbox::new(window),
        started_ms: inputs.started_ms,
        status_dirty: true,
        published_evicted: u64::MAX,
        published_clock: None,
        health_dirty: BTreeSet::new(),
        audit_pending: None,
        alarms: BTreeMap::new(),
        alarms_dirty: BTreeSet::new(),
        acked: Vec::new(),
        stopping: false,
        stop: Stop::Shutdown,
        draining: false,
        ahead: VecDeque::new(),
        replays: VecDeque::new(),
    };
    let replay_topic = format!("{}/cmd/replay", p.plan.mqtt.topic_prefix);
    eventloop.set_network_options(network_options());
    let mut audit = inputs.audit.clone().lock_owned().await;
    let mut reconnect_delay = RECONNECT_MIN;
    let mut was_down_logged = false;
    let mut phase = Phase::Running;
    let mut deadline = Instant::now();
    loop {
        let event = {
            let poll = eventloop.poll();
            tokio::pin!(poll);
            loop {
                p.pump()?;
                if p.stopping {
                    if !p.outbox.is_connected() {
                        return p.finish();
                    }
                    let now = Instant::now();
                    let settled = p.outbox.pending() == 0 || now >= deadline;
                    match phase {
                        Phase::Running => {}
                        Phase::Acks if settled && p.stop == Stop::Reload => {
                            let _ = p.client.try_disconnect();
                            phase = Phase::Disconnect;
                            deadline = now + Duration::from_millis(500);
                        }
                        Phase::Acks if settled => {
                            let payload = status_payload(
                                "offline",
                                plantmeter_common::clock::system_ms(),
                                Some(p.store.evicted()),
                                Some("shutdown"),
                                None,
                            );
                            p.draining = false;
                            if p.send_other(status_topic(&p.plan), payload, true) {
                                phase = Phase::Offline;
                                deadline = now + SHUTDOWN_OFFLINE;
                            }
                        }
                        Phase::Offline if settled => {
                            let _ = p.client.try_disconnect();
                            phase = Phase::Disconnect;
                            deadline = now + Duration::from_millis(500);
                        }
                        Phase::Disconnect if now >= deadline => return p.finish(),
                        _ => {}
                    }
                }
                tokio::select! {
                    ev = &mut poll => break ev,
                    _ = inputs.wake.notified() => {}
                    Some(i) = inputs.health.recv() => { p.health_dirty.insert(i); }
                    Some(r) = audit.recv() => match r {
                        ToPublish::Report(r) => p.audit_pending = Some(r),
                        ToPublish::Alarms(a) => {
                            for (topic, payload) in a {
                                p.alarms_dirty.insert(topic.clone());
                                p.alarms.insert(topic, payload);
                            }
                        }
                    },
                    _ = inputs.shutdown.changed(), if !p.stopping => {
                        let Some(stop) = *inputs.shutdown.borrow_and_update() else { continue };
                        p.stopping = true;
                        p.stop = stop;
                        p.draining = stop == Stop::Shutdown;
                        phase = Phase::Acks;
                        deadline = Instant::now() + SHUTDOWN_ACKS;
                    }
                    _ = tokio::time::sleep_until(deadline), if p.stopping => {}
                }
            }
        };
        match event {
            Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                reconnect_delay = RECONNECT_MIN;
                was_down_logged = false;
                p.on_connected(ack.session_present);
            }
            Ok(Event::Incoming(Incoming::PubAck(ack))) => {
                if let Some(Tag::Data(seq)) = p.outbox.on_puback(ack.pkid) {
                    p.acked.push(seq);
                }
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                if let Err(e) = p.outbox.on_outgoing(pkid) {
                    tracing::warn!(error = %e, "publisher out of step with the MQTT client: reconnecting");
                    eventloop.clean();
                    reset_eventloop(&mut eventloop);
                    p.outbox.on_disconnected();
                    p.ahead.clear();
                }
            }
            Ok(Event::Incoming(Incoming::Publish(msg))) if msg.topic == replay_topic => {
                if p.replays.len() >= REPLAY_QUEUE {
                    tracing::warn!("{REPLAY_QUEUE} replay requests pending; this one is ignored (asked again later)");
                } else if let Some(job) = replay_request(&msg.payload) {
                    tracing::info!(from = job.from, to = job.to, "replay requested");
                    p.replays.push_back(job);
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) if p.stopping => return p.finish(),
            Ok(_) => {}
            Err(e) => {
                reset_eventloop(&mut eventloop);
                let was_connected = p.outbox.is_connected();
                p.outbox.on_disconnected();
                p.ahead.clear();
                p.shared.lock().mqtt_connected = false;
                if p.stopping {
                    return p.finish();
                }
                if was_connected || !was_down_logged {
                    tracing::warn!(broker = %p.plan.mqtt.url, error = %describe(&e), "broker unreachable; buffering in the store");
                    was_down_logged = true;
                } else {
                    tracing::debug!(error = %describe(&e), "reconnect failed");
                }
                tokio::select! {
                    _ = tokio::time::sleep(reconnect_delay) => {}
                    _ = inputs.shutdown.changed() => return p.finish(),
                }
                reconnect_delay = (reconnect_delay * 2).min(RECONNECT_MAX);
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// Waiting for outstanding acks.
    Acks,
    /// Offline status submitted, waiting for its ack.
    Offline,
    /// DISCONNECT requested.
    Disconnect,
}

impl Publisher {
    fn finish(&mut self) -> anyhow::Result<()> {
        if !self.acked.is_empty() {
            self.store.remove_acked(&self.acked)?;
            self.acked.clear();
        }
        self.shared.lock().mqtt_connected = false;
        Ok(())
    }
}

fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ConnectionRefused(code) => {
            format!("connection refused by the broker: {code:?}")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fake_broker::FakeBroker;
    use plantmeter_common::{DataMessage, PointValue, Quality};

    /// A plan for a broker on `port` with `window`, and a store holding `records` data messages.
    fn setup(dir: &std::path::Path, port: u16, window: u16, records: usize) -> (Plan, Store) {
        let cfg = dir.join("agent.toml");
        let text = format!(
            "[gateway]\nid = \"gw-01\"\nsite = \"plant-a\"\ndata_dir = \"{}\"\n\n\
             [mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\nmax_inflight = {window}\n\n\
             [[bus]]\nname = \"sim\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:9\"\n\n\
             [[meter]]\nname = \"m1\"\nbus = \"sim\"\nunit_id = 1\npoll_interval_s = 1.0\n\n\
             [[meter.point]]\nname = \"p\"\nregister = \"input\"\naddress = 0\ntype = \"f32\"\nunit = \"x\"\nkind = \"gauge\"\n",
            dir.join("data").display()
        );
        std::fs::write(&cfg, text).expect("write the config");
        let plan =
            crate::exit::load_plan(&cfg, crate::exit::Needs::Polling).expect("a valid config");
        let store = Store::open_or_recover(&plan.gateway.data_dir, 64).expect("open the store");
        let mut msgs: Vec<DataMessage> = (0..records)
            .map(|i| DataMessage {
                seq: 0,
                ts: 1_790_000_000_000 + i as i64,
                meter: "m1".into(),
                points: vec![PointValue {
                    name: "p".into(),
                    value: Some(1.5),
                    unit: "x".into(),
                    quality: Quality::Good,
                }],
            })
            .collect();
        store.append(&mut msgs).expect("append");
        store.flush().expect("flush");
        (plan, store)
    }

    /// The publisher's input senders, kept open while a test runs (a closed shutdown channel
    /// would read as a stop).
    type Senders = (
        mpsc::UnboundedSender<usize>,
        mpsc::Sender<ToPublish>,
        watch::Sender<Option<Stop>>,
    );

    fn start(plan: Plan, store: Store) -> (tokio::task::JoinHandle<anyhow::Result<()>>, Senders) {
        let (health_tx, health) = mpsc::unbounded_channel();
        let (audit_tx, audit) = mpsc::channel(1);
        let (stop_tx, shutdown) = watch::channel(None);
        let task = tokio::spawn(run(Inputs {
            plan: Arc::new(plan),
            store: Arc::new(store),
            shared: Shared::new(crate::state::AgentStatus::default()),
            wake: Arc::new(Notify::new()),
            health,
            audit: Arc::new(tokio::sync::Mutex::new(audit)),
            shutdown,
            started_ms: 0,
        }));
        (task, (health_tx, audit_tx, stop_tx))
    }

    /// The next data message (status and health are acknowledged on the way), or None after `within`.
    async fn next_data(
        s: &mut fake_broker::Session,
        within: Duration,
    ) -> Option<fake_broker::Published> {
        loop {
            let p = s.next_publish(within).await?;
            if p.topic.contains("/data/") {
                return Some(p);
            }
            s.puback(p.pkid).await;
        }
    }

    fn seq_of(p: &fake_broker::Published) -> u64 {
        serde_json::from_slice::<serde_json::Value>(&p.payload).unwrap_or_default()["seq"]
            .as_u64()
            .unwrap_or(0)
    }

    /// A full window gets one new message per acknowledgement, at once: a publisher that waits
    /// for a chunk of room crawls against a broker that delays its PUBACKs (mosquitto).
    #[tokio::test]
    async fn the_window_is_refilled_on_every_ack() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let broker = FakeBroker::bind().await;
        let window = 100;
        let (plan, store) = setup(dir.path(), broker.port(), window, 150);
        let (task, _senders) = start(plan, store);
        let mut s = broker.accept(Duration::from_secs(10)).await;
        let mut data = Vec::new();
        while data.len() < usize::from(window) {
            data.push(
                next_data(&mut s, Duration::from_secs(10))
                    .await
                    .expect("the publisher fills its window"),
            );
        }
        for (i, acked) in data.iter().take(3).enumerate() {
            s.puback(acked.pkid).await;
            let next = next_data(&mut s, Duration::from_secs(5))
                .await
                .unwrap_or_else(|| panic!("no new message after ack {}", i + 1));
            assert_eq!(next.topic, "plantmeter/plant-a/gw-01/data/m1");
            assert_eq!(seq_of(&next), 101 + i as u64);
        }
        task.abort();
    }

    /// After a broken connection, sending starts again from the oldest unacknowledged record,
    /// not from what was read ahead of the window.
    #[tokio::test]
    async fn a_reconnect_resends_from_the_oldest_unacknowledged() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let broker = FakeBroker::bind().await;
        let (plan, store) = setup(dir.path(), broker.port(), 10, 40);
        let (task, _senders) = start(plan, store);
        let mut s = broker.accept(Duration::from_secs(10)).await;
        for expected in 1..=10 {
            let p = next_data(&mut s, Duration::from_secs(10))
                .await
                .expect("the publisher fills its window");
            assert_eq!(seq_of(&p), expected);
            if expected <= 3 {
                s.puback(p.pkid).await;
            }
        }
        // Seqs 11..13 went out after the three acks; nothing more is acknowledged.
        for expected in 11..=13 {
            let p = next_data(&mut s, Duration::from_secs(10)).await;
            assert_eq!(p.as_ref().map(seq_of), Some(expected));
        }
        drop(s);
        let mut s = broker.accept(Duration::from_secs(10)).await;
        let mut got = Vec::new();
        for _ in 0..10 {
            let p = next_data(&mut s, Duration::from_secs(10))
                .await
                .expect("the publisher resends after reconnecting");
            got.push(seq_of(&p));
        }
        assert_eq!(got, (4..=13).collect::<Vec<u64>>());
        task.abort();
    }

    #[test]
    fn the_last_will_says_its_time_is_when_the_agent_came_online() {
        let v: serde_json::Value =
            serde_json::from_slice(&will_payload(86_400_000)).unwrap_or_default();
        assert_eq!(v["state"], "offline");
        assert_eq!(v["reason"], "connection lost");
        assert_eq!(
            v["since"], "1970-01-02T00:00:00.000Z",
            "the contract's field stays"
        );
        assert_eq!(v["online_since"], "1970-01-02T00:00:00.000Z");
    }

    #[test]
    fn status_payload_matches_contract() {
        let v: serde_json::Value = serde_json::from_slice(&status_payload(
            "online",
            0,
            Some(3),
            None,
            Some(crate::state::ClockState::Unset),
        ))
        .unwrap_or_default();
        assert_eq!(v["state"], "online");
        assert_eq!(v["since"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["evicted"], 3);
        assert_eq!(v["clock"], "unset");
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    }
}
