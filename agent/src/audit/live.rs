//! The live audit: a thread that feeds the store's records, in seq order, to the audit engine.
//!
//! It is off the durability path. The store writer only tells it that more records are durable
//! ([`Link::kick`]); the audit reads them back from the store (a stored record is the published
//! JSON) from its cursor, the next seq to ingest, which the engine persists in the same batch as
//! its aggregates. The store keeps records the broker acknowledged until that persisted cursor
//! passes them (`Store::set_audit_gate`), so a crash anywhere between storing and auditing loses
//! nothing: the next run resumes from the persisted cursor, and what is below it is not counted
//! again. A slow audit lags behind and catches up; storing and publishing never wait for it. An
//! audit that fails is logged and switched off, and the store stops keeping records for it.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use plantmeter_common::{Clock, DataMessage, Plan};
use tokio::sync::mpsc;

use super::alarm::{self, Alarms};
use super::AuditEngine;
use crate::store::Store;
use plantmeter_common::audit::facility;

/// How often the aggregates (and the cursor) are persisted while records come in (wall time):
/// each persist rewrites the chunks of every point polled since.
pub const FLUSH_EVERY: Duration = Duration::from_secs(10);
/// Persisted sooner after this many records (catching up a backlog after a restart): bounds what
/// a crash makes the next run ingest again.
const FLUSH_AFTER_RECORDS: u64 = 4096;
/// Records read from the store at once.
const READ_CHUNK: usize = 256;
/// How often the thread looks at its timers when nothing comes in.
const TICK: Duration = Duration::from_secs(1);
/// Delay of the first audit report after start.
const FIRST_REPORT_AFTER: Duration = Duration::from_secs(10);

/// What the audit thread hands the publisher.
#[derive(Debug)]
pub enum ToPublish {
    /// The report for `P/audit`.
    Report(Vec<u8>),
    /// Limit alarms to publish retained, `(topic, payload)` (see [`alarm`]).
    Alarms(Vec<(String, Vec<u8>)>),
}

/// What the store writer tells the audit thread (flags: repeated kicks coalesce).
#[derive(Default)]
struct Inbox {
    /// More records are durable.
    kick: bool,
    /// Plans to switch to (config reload), each from the first seq of its polls.
    plans: VecDeque<(u64, Arc<Plan>)>,
    /// The store writer wants the database to itself (to recycle or reopen it).
    release: bool,
    /// The audit thread holds no handle on the database (its answer to `release`).
    released: bool,
    stop: bool,
}

/// The store writer's side of the audit thread. Every call returns at once.
#[derive(Default)]
pub struct Link {
    inbox: Mutex<Inbox>,
    cv: Condvar,
}

impl Link {
    pub fn new() -> Arc<Link> {
        Arc::new(Link::default())
    }

    fn lock(&self) -> MutexGuard<'_, Inbox> {
        // Plain flags: a panic cannot leave them half-written.
        self.inbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// More records are durable.
    pub fn kick(&self) {
        self.lock().kick = true;
        self.cv.notify_one();
    }

    /// Records from `from_seq` on were polled with `plan`.
    pub fn switch_plan(&self, from_seq: u64, plan: Arc<Plan>) {
        let mut ib = self.lock();
        ib.plans.push_back((from_seq, plan));
        ib.kick = true;
        drop(ib);
        self.cv.notify_one();
    }

    /// Ask the audit to let go of the database: true once it has (then call [`Link::resume`]
    /// after using it); false: it will soon, ask again later.
    pub fn try_release(&self) -> bool {
        let mut ib = self.lock();
        ib.release = true;
        let released = ib.released;
        drop(ib);
        self.cv.notify_one();
        released
    }

    /// The database may be used again (after [`Link::try_release`]).
    pub fn resume(&self) {
        let mut ib = self.lock();
        ib.release = false;
        ib.released = false;
        ib.kick = true;
        drop(ib);
        self.cv.notify_one();
    }

    /// The writer is done (everything it stored is durable): catch up, persist, end.
    pub fn stop(&self) {
        let mut ib = self.lock();
        ib.stop = true;
        ib.release = false;
        ib.released = false;
        drop(ib);
        self.cv.notify_one();
    }

    fn release_requested(&self) -> bool {
        self.lock().release
    }
}

/// Called with each seq before it is ingested (tests: a slow or stalled audit).
pub type Hook = Box<dyn FnMut(u64) + Send>;

enum Next {
    Work,
    LetGo,
    Stop,
}

/// The audit thread's state.
pub struct Audit {
    link: Arc<Link>,
    store: Arc<Store>,
    plan: Arc<Plan>,
    clock: Clock,
    reports: mpsc::Sender<ToPublish>,
    hook: Option<Hook>,
    engine: Option<AuditEngine>,
    /// No `[audit]` section, or the audit failed: nothing is ingested, nothing kept for it.
    off: bool,
    /// After a write error of the store: no engine before this instant.
    retry_at: Option<Instant>,
    last_flush: Instant,
    since_flush: u64,
    /// The engine was just opened: what it finds stored (the records a crash left it) is
    /// persisted as soon as it has caught up, so the store can let go of them.
    opened: bool,
    last_report: Instant,
    /// Limit alarms: what was said per source, and what the publisher's channel had no room for.
    alarms: Alarms,
    unsent_alarms: Vec<(String, Vec<u8>)>,
}

impl Audit {
    /// The audit of `plan` on `store`. Until it knows its cursor, the store keeps every
    /// acknowledged block: call this before anything is published.
    pub fn new(
        link: Arc<Link>,
        store: Arc<Store>,
        plan: Arc<Plan>,
        clock: Clock,
        reports: mpsc::Sender<ToPublish>,
    ) -> Audit {
        let off = plan.audit.is_none();
        store.set_audit_gate((!off).then_some(0));
        let now = Instant::now();
        // The first report goes out FIRST_REPORT_AFTER after start, not a whole interval later:
        // `P/audit` and the report file `plantmeter report` falls back to exist from the start.
        let last_report = plan
            .audit
            .as_ref()
            .and_then(|a| now.checked_sub(a.publish_interval.saturating_sub(FIRST_REPORT_AFTER)))
            .unwrap_or(now);
        Audit {
            link,
            store,
            plan,
            clock,
            reports,
            hook: None,
            engine: None,
            off,
            retry_at: None,
            last_flush: now,
            since_flush: 0,
            opened: false,
            last_report,
            alarms: Alarms::default(),
            unsent_alarms: Vec::new(),
        }
    }

    /// Call `hook` with each seq before it is ingested.
    #[cfg(test)]
    pub fn with_hook(mut self, hook: Hook) -> Audit {
        self.hook = Some(hook);
        self
    }

    /// Run until [`Link::stop`]: then everything durable is ingested and persisted.
    pub fn run(mut self) {
        loop {
            match self.wait() {
                Next::LetGo => {
                    self.flush();
                    self.engine = None;
                    self.link.lock().released = true;
                    self.link.cv.notify_all();
                }
                Next::Work => {
                    self.catch_up();
                    if self.last_flush.elapsed() >= FLUSH_EVERY {
                        self.flush();
                    }
                    self.report_if_due();
                    self.alarms_if_due();
                    self.send_alarms();
                }
                Next::Stop => {
                    self.catch_up();
                    self.flush();
                    return;
                }
            }
        }
    }

    fn wait(&self) -> Next {
        let mut ib = self.link.lock();
        loop {
            if ib.stop {
                return Next::Stop;
            }
            if ib.release {
                if !ib.released {
                    return Next::LetGo;
                }
            } else if ib.kick {
                ib.kick = false;
                return Next::Work;
            }
            let (guard, timeout) = self
                .link
                .cv
                .wait_timeout(ib, TICK)
                .unwrap_or_else(|p| p.into_inner());
            ib = guard;
            if timeout.timed_out() && !ib.release {
                return Next::Work;
            }
        }
    }

    /// The engine, opened on the store's database if need be; None when the audit is off or the
    /// store is unusable.
    fn engine(&mut self) -> Option<&mut AuditEngine> {
        if self.engine.is_none() && !self.off {
            if self.retry_at.is_some_and(|t| Instant::now() < t) {
                return None;
            }
            let db = self.store.db()?;
            match AuditEngine::open(&db, &self.plan) {
                Ok(e) => {
                    self.store.set_audit_gate(Some(e.persisted_cursor()));
                    self.retry_at = None;
                    self.opened = true;
                    self.engine = Some(e.with_clock(self.clock));
                }
                Err(e) => self.failed(e),
            }
        }
        self.engine.as_mut()
    }

    /// Ingest every durable record (stopping early if the writer wants the database).
    fn catch_up(&mut self) {
        loop {
            if self.link.release_requested() {
                return;
            }
            let switch_at = self.link.lock().plans.front().map(|(s, _)| *s);
            let Some(engine) = self.engine() else {
                // Off: a reload may switch it on again.
                if self.off && switch_at.is_some() {
                    self.switch_plan();
                    continue;
                }
                return;
            };
            let from = engine.cursor();
            let records = match self.store.read_for_audit(from, READ_CHUNK) {
                Ok(r) => r,
                // The store is unusable: the writer reopens it (and lets the audit go on).
                Err(_) => return,
            };
            let end = switch_at.unwrap_or(u64::MAX);
            let old = records.iter().take_while(|(seq, _)| *seq < end).count();
            if old == 0 {
                let passed = !records.is_empty() || self.store.durable_next() >= end;
                if switch_at.is_some() && passed {
                    self.switch_plan();
                    continue;
                }
                if std::mem::take(&mut self.opened) && self.since_flush > 0 {
                    // Acknowledged records kept since a crash are sent again (their acks were in
                    // memory); persisted now, they are deleted at their new acks, not kept (and
                    // sent again) until the next periodic flush.
                    self.flush();
                }
                return;
            }
            for (seq, payload) in records.into_iter().take(old) {
                if let Some(hook) = self.hook.as_mut() {
                    hook(seq);
                }
                let Some(engine) = self.engine.as_mut() else {
                    return;
                };
                match serde_json::from_slice::<DataMessage>(&payload) {
                    Ok(m) => {
                        if let Err(e) = engine.ingest(&m) {
                            self.failed(e);
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(seq, error = %e, "audit: a stored record is not a data message; not counted")
                    }
                }
                engine.skip(seq);
                self.since_flush += 1;
            }
            if self.since_flush >= FLUSH_AFTER_RECORDS {
                self.flush();
            }
        }
    }

    /// Records from here on were polled with the next plan: the old engine is persisted, the next
    /// one opened on the new plan.
    fn switch_plan(&mut self) {
        self.flush();
        self.engine = None;
        let Some((_, plan)) = self.link.lock().plans.pop_front() else {
            return;
        };
        self.off = plan.audit.is_none();
        // The alarm topics of the new plan; those said before and gone are cleared (empty retained).
        let keep: Vec<String> = plan
            .audit
            .iter()
            .flat_map(|a| a.pollutants.iter())
            .filter_map(alarm::Source::of)
            .map(|s| s.topic(&plan.mqtt.topic_prefix))
            .chain(
                plan.audit
                    .iter()
                    .flat_map(|a| a.facilities.iter())
                    .map(|f| alarm::facility_topic(&plan.mqtt.topic_prefix, &f.name)),
            )
            .collect();
        for topic in self.alarms.reset_for(&keep) {
            tracing::info!(topic = %topic, "limit alarm no longer configured: its retained message is cleared");
            self.unsent_alarms.retain(|(t, _)| *t != topic);
            self.unsent_alarms.push((topic, Vec::new()));
        }
        if self.off {
            self.store.set_audit_gate(None);
        }
        self.plan = plan;
    }

    /// Persist the aggregates and the cursor; the store may then delete what the cursor passed.
    fn flush(&mut self) {
        self.last_flush = Instant::now();
        self.since_flush = 0;
        let Some(engine) = self.engine.as_mut() else {
            return;
        };
        match engine.flush() {
            Ok(()) => self.store.set_audit_gate(Some(engine.persisted_cursor())),
            Err(e) => self.failed(e),
        }
    }

    fn report_if_due(&mut self) {
        let Some(interval) = self.plan.audit.as_ref().map(|a| a.publish_interval) else {
            return;
        };
        if self.last_report.elapsed() < interval {
            return;
        }
        let now_ms = self.clock.now_ms();
        let Some(engine) = self.engine() else {
            return;
        };
        let report = engine.report_json(now_ms);
        let cursor = engine.persisted_cursor();
        self.last_report = Instant::now();
        match report {
            Ok(json) => {
                // The report persisted the aggregates first.
                self.store.set_audit_gate(Some(cursor));
                let _ = self.reports.try_send(ToPublish::Report(json));
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot compute the audit report")
            }
        }
    }

    /// Once caught up with the store and a local hour closed: the limit alarms whose state changed
    /// (the first time: every source's current state), from the hours of the last year.
    fn alarms_if_due(&mut self) {
        let plan = self.plan.clone();
        let Some(audit) = plan.audit.as_ref() else {
            return;
        };
        // Called at every turn of the audit loop (each round of polls): nothing is allocated until an
        // hour has closed.
        if audit.pollutants.iter().all(|p| p.limit.is_none()) && audit.facilities.is_empty() {
            return;
        }
        let durable = self.store.durable_next();
        if self.engine().is_none_or(|e| e.cursor() < durable) {
            return; // not caught up: the hours are not complete yet
        }
        let max_poll = plan
            .meters()
            .map(|m| m.poll_interval.as_millis() as i64)
            .max()
            .unwrap_or(0);
        let grid = plantmeter_common::audit::hourly::HourGrid::new(audit.timezone);
        let grace = alarm::grace_ms(max_poll);
        let Some(end) = self.alarms.due(&grid, self.clock.now_ms(), grace) else {
            return;
        };
        self.flush();
        self.facility_alarms(&plan, end);
        let Some(engine) = self.engine.as_ref() else {
            return;
        };
        let n = alarm::LOOKBACK_HOURS;
        let first = end - n as i64;
        let sources = audit
            .pollutants
            .iter()
            .filter_map(|p| Some((p, alarm::Source::of(p)?)));
        for (p, src) in sources {
            let hours = engine
                .stored_hours(&p.concentration, first, n)
                .and_then(|c| {
                    let o2 = match &p.o2 {
                        Some((r, reference)) => {
                            Some((engine.stored_hours(r, first, n)?, *reference))
                        }
                        None => None,
                    };
                    Ok(alarm::converted(
                        &c,
                        o2.as_ref().map(|(h, r)| (h.as_slice(), *r)),
                    ))
                });
            let hours = match hours {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "audit: cannot read the hours of {} {} for its limit alarm", src.pollutant, src.source);
                    continue;
                }
            };
            let Some(status) = alarm::evaluate(first, &hours, src.limit) else {
                continue;
            };
            if let Some((topic, payload)) =
                self.alarms
                    .update(&plan.mqtt.topic_prefix, &src, &status, audit.timezone)
            {
                self.unsent_alarms.retain(|(t, _)| *t != topic);
                self.unsent_alarms.push((topic, payload));
            }
        }
    }

    /// 分表计电: each facility's alarm from the hourly mean powers of the last week.
    fn facility_alarms(&mut self, plan: &Plan, end: i64) {
        let (Some(audit), Some(engine)) = (plan.audit.as_ref(), self.engine.as_ref()) else {
            return;
        };
        let grid = plantmeter_common::audit::hourly::HourGrid::new(audit.timezone);
        let n = alarm::FACILITY_LOOKBACK_HOURS;
        let first = end - n as i64;
        for f in &audit.facilities {
            let kw = |r: &plantmeter_common::plan::PointRef| -> anyhow::Result<Vec<Option<f64>>> {
                let p = plan
                    .point(r)
                    .ok_or_else(|| anyhow::anyhow!("no point {}", r.qualified()))?;
                let hours = engine.stored_hours(r, first, n)?;
                Ok(hours
                    .iter()
                    .map(|a| facility::hour_kw(a, p.kind, &p.unit))
                    .collect())
            };
            let (prod, treat) = match (kw(&f.production), kw(&f.treatment)) {
                (Ok(p), Ok(t)) => (p, t),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(error = %format!("{e:#}"), "audit: cannot read the hours of facility {} for its alarm", f.name);
                    continue;
                }
            };
            let rule = facility::rule_of(f);
            let Some(st) = facility::alarm_status(
                &rule,
                grid.hour_start(first),
                &prod,
                &treat,
                grid.offset_ms(),
            ) else {
                continue;
            };
            if let Some((topic, payload)) =
                self.alarms
                    .update_facility(&plan.mqtt.topic_prefix, f, &st, audit.timezone)
            {
                self.unsent_alarms.retain(|(t, _)| *t != topic);
                self.unsent_alarms.push((topic, payload));
            }
        }
    }

    /// Hand the alarms to the publisher; kept for the next turn while its channel is full.
    fn send_alarms(&mut self) {
        if self.unsent_alarms.is_empty() {
            return;
        }
        let alarms = std::mem::take(&mut self.unsent_alarms);
        if let Err(mpsc::error::TrySendError::Full(ToPublish::Alarms(back))) =
            self.reports.try_send(ToPublish::Alarms(alarms))
        {
            self.unsent_alarms = back;
        }
    }

    /// The engine failed. A write error of the store (full disk): the engine is dropped and opened
    /// again later, resuming from its persisted cursor. Anything else: the audit is switched off
    /// for this run (until a reload), and the store no longer keeps records for it.
    fn failed(&mut self, e: anyhow::Error) {
        self.engine = None;
        let io = self.store.is_broken()
            || e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some()
                    || matches!(c.downcast_ref::<sled::Error>(), Some(sled::Error::Io(_)))
            });
        if io {
            tracing::error!(error = %format!("{e:#}"), "audit: cannot write to the store; retried in {} s, resuming where it stopped", FLUSH_EVERY.as_secs());
            self.retry_at = Some(Instant::now() + FLUSH_EVERY);
            return;
        }
        tracing::error!(error = %format!("{e:#}"), "audit engine failed: switched off until a reload; polling and publishing go on");
        self.off = true;
        self.store.set_audit_gate(None);
    }
}

/// The audit engine of a store no agent is running on, caught up with every stored record (see
/// [`catch_up_offline`]); the store is returned with it, as the engine reads through its database.
/// A store in use is `OpenError::Locked` inside the error.
pub fn open_offline(plan: &Plan) -> anyhow::Result<(Store, AuditEngine)> {
    let dir = &plan.gateway.data_dir;
    let store = Store::open_existing(dir, plan.gateway.store_max_mb)?;
    let db = store
        .db()
        .ok_or_else(|| anyhow::anyhow!("the store at {} is unusable", dir.display()))?;
    let mut engine = AuditEngine::open(&db, plan)?;
    catch_up_offline(&store, &mut engine)?;
    Ok((store, engine))
}

/// Ingest what the store holds past the engine's cursor (records a stopped agent stored but had not
/// audited yet) and persist it: `report` and `verify` see every stored reading. Returns the count.
pub fn catch_up_offline(store: &Store, engine: &mut AuditEngine) -> anyhow::Result<u64> {
    let mut n = 0u64;
    loop {
        let records = store.read_for_audit(engine.cursor(), READ_CHUNK)?;
        if records.is_empty() {
            break;
        }
        for (seq, payload) in records {
            if let Ok(m) = serde_json::from_slice::<DataMessage>(&payload) {
                engine.ingest(&m)?;
            }
            engine.skip(seq);
            n += 1;
        }
    }
    if n > 0 {
        engine.flush()?;
    }
    Ok(n)
}

/// Start the audit thread; `done` is sent when it ends.
pub fn spawn(
    audit: Audit,
    done: tokio::sync::oneshot::Sender<()>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("audit".into())
        .spawn(move || {
            audit.run();
            let _ = done.send(());
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::audit::engine::tests::{msg, plan};

    const MINUTE: i64 = 60_000;

    fn t0() -> i64 {
        plantmeter_common::model::parse_ts_ms("2026-01-01T00:00:00+08:00").unwrap()
    }

    /// Minute `i` of the plant: 100 kWh and 2 t an hour.
    fn round(i: i64) -> Vec<DataMessage> {
        let ts = t0() + i * MINUTE;
        vec![
            msg(
                0,
                ts,
                "power",
                &[
                    ("energy", Some(5_000.0 + 100.0 * i as f64 / 60.0)),
                    ("power", Some(100.0)),
                ],
            ),
            msg(0, ts, "packer", &[("output", Some(2.0 * i as f64 / 60.0))]),
        ]
    }

    fn clock() -> Clock {
        Clock::virtual_from(t0() + 3 * 86_400_000, 1.0)
    }

    /// Store rounds `range` durably, as the store writer does.
    fn store_rounds(store: &Store, range: std::ops::Range<i64>) {
        for i in range {
            store.append(&mut round(i)).unwrap();
        }
        store.flush().unwrap();
    }

    /// What the publisher does once the broker acknowledged everything sent.
    fn ack_all(store: &Store) {
        let sent: Vec<u64> = store
            .read_from(0, 100_000)
            .unwrap()
            .into_iter()
            .map(|r| r.seq)
            .collect();
        store.remove_acked(&sent).unwrap();
    }

    fn audit(store: &Arc<Store>, plan: &Arc<Plan>) -> Audit {
        let (tx, _rx) = mpsc::channel(1);
        Audit::new(Link::new(), store.clone(), plan.clone(), clock(), tx)
    }

    /// The indicators of the baseline report (two local days) of the engine on `db`.
    fn indicators(db: &sled::Db, plan: &Plan) -> serde_json::Value {
        let mut e = AuditEngine::open(db, plan).unwrap();
        let r = e.report(t0() + 3 * 86_400_000).unwrap();
        let v = serde_json::to_value(&r).unwrap();
        assert!(v["indicators"].is_array() || v["indicators"].is_object());
        v["indicators"].clone()
    }

    /// The audit of an uninterrupted run: every round fed once to an engine on its own store.
    fn uninterrupted(dir: &std::path::Path, plan: &Plan, rounds: i64) -> serde_json::Value {
        let db = crate::store::open_db(&dir.join("uninterrupted")).unwrap();
        let mut e = AuditEngine::open(&db, plan).unwrap();
        let mut seq = 0;
        for i in 0..rounds {
            for mut m in round(i) {
                seq += 1;
                m.seq = seq;
                e.ingest(&m).unwrap();
            }
        }
        e.flush().unwrap();
        drop(e);
        indicators(&db, plan)
    }

    /// A crash after the records were stored and acknowledged but before the audit persisted them:
    /// the acknowledged records stay in the store, and the next run counts them, once.
    #[test]
    fn report_counts_what_a_stopped_agent_stored_but_had_not_audited() {
        let dir = tempfile::tempdir().unwrap();
        let plan = Arc::new(plan(dir.path()));
        let data = plan.gateway.data_dir.clone();
        let rounds = 2 * 24 * 60 + 1;
        {
            // Stored, never audited (the agent stopped before its audit thread caught up).
            let store = Store::open_or_recover(&data, 64).unwrap();
            store_rounds(&store, 0..rounds);
        }
        let store = Store::open_existing(&data, 64).unwrap();
        let db = store.db().unwrap();
        let mut e = AuditEngine::open(&db, &plan).unwrap();
        assert_eq!(catch_up_offline(&store, &mut e).unwrap(), rounds as u64 * 2);
        drop(e);
        let got = indicators(&db, &plan);
        drop(db);
        drop(store);
        assert_eq!(got, uninterrupted(dir.path(), &plan, rounds));
    }

    #[test]
    fn a_crash_between_storing_and_auditing_loses_nothing_and_counts_nothing_twice() {
        let dir = tempfile::tempdir().unwrap();
        let plan = Arc::new(plan(dir.path()));
        let data = plan.gateway.data_dir.clone();
        let rounds = 2 * 24 * 60 + 1;
        {
            let store = Arc::new(Store::open_or_recover(&data, 64).unwrap());
            let mut a = audit(&store, &plan);
            store_rounds(&store, 0..1000);
            a.catch_up();
            a.flush();
            // Stored, acknowledged and ingested in memory, then a crash before the audit persists.
            store_rounds(&store, 1000..2000);
            ack_all(&store);
            a.catch_up();
            assert_eq!(store.backlog(), 0, "everything was delivered");
            assert_eq!(
                store.read_from(0, 10).unwrap().len(),
                0,
                "acknowledged records are not sent again"
            );
            // The crash: the engine's memory is gone, its aggregates and cursor as last persisted.
            drop(a);
        }
        let store = Arc::new(Store::open_or_recover(&data, 64).unwrap());
        let mut a = audit(&store, &plan);
        assert_eq!(store.backlog(), 0);
        assert!(
            store.read_from(0, 10).unwrap().is_empty(),
            "delivered records kept for the audit are not sent again after the crash"
        );
        assert!(store.stats().backlog_bytes > 0, "kept until audited");
        a.catch_up();
        assert_eq!(
            store.stats().backlog_bytes,
            0,
            "what a crash left is persisted once caught up, then deleted (not kept to be sent again)"
        );
        store_rounds(&store, 2000..rounds);
        ack_all(&store);
        a.catch_up();
        a.flush();
        assert!(
            store.read_for_audit(0, 10).unwrap().is_empty(),
            "every record is deleted once delivered and audited"
        );
        assert_eq!(store.stats().backlog_bytes, 0);
        drop(a);
        let db = store.db().unwrap();
        assert_eq!(
            indicators(&db, &plan),
            uninterrupted(dir.path(), &plan, rounds)
        );
    }

    /// A plan with an outfall whose COD has a limit of 50 mg/L.
    fn plan_with_limit(dir: &std::path::Path) -> Plan {
        let base = plan(dir);
        let text = std::fs::read_to_string(&base.source).unwrap();
        let (meters, audit) = text.split_once("[audit]").unwrap();
        let cfg = dir.join("limit.toml");
        std::fs::write(
            &cfg,
            format!(
                r#"{meters}
[[meter]]
name = "outfall"
bus = "line-1"
unit_id = 3
poll_interval_s = 60
  [[meter.point]]
  name = "cod"
  register = "holding"
  address = 0
  type = "f32"
  unit = "mg/L"
  kind = "gauge"
  [[meter.point]]
  name = "flow"
  register = "holding"
  address = 2
  type = "f32"
  unit = "m3"
  kind = "counter"
[audit]{audit}
  [[audit.pollutant]]
  name = "COD"
  concentration = "outfall.cod"
  flow = "outfall.flow"
  limit = 50
"#
            ),
        )
        .unwrap();
        plantmeter_common::config::load(&cfg).unwrap()
    }

    /// Two days of hours stored before the audit looks (a restart with a backlog): one message,
    /// the latest state with the counts of every hour, and none again until the state changes.
    #[test]
    fn hours_caught_up_at_once_give_one_alarm_of_the_latest_state() {
        let dir = tempfile::tempdir().unwrap();
        let plan = Arc::new(plan_with_limit(dir.path()));
        let store = Arc::new(Store::open_or_recover(&plan.gateway.data_dir, 64).unwrap());
        let (tx, mut rx) = mpsc::channel(4);
        // 2026-01-03 00:10 local: the hours of the two days are closed, the 2nd is "today".
        let now = Clock::virtual_from(t0() + 48 * 60 * MINUTE + 10 * MINUTE, 1.0);
        let mut a = Audit::new(Link::new(), store.clone(), plan.clone(), now, tx);
        // COD over the limit in every fifth hour, and in the last one.
        let cod = |i: i64| {
            let h = i / 60;
            if h % 5 == 0 || h == 47 {
                80.0
            } else {
                10.0
            }
        };
        for i in 0..2 * 24 * 60 + 1 {
            let mut msgs = round(i);
            msgs.push(msg(
                0,
                t0() + i * MINUTE,
                "outfall",
                &[("cod", Some(cod(i))), ("flow", Some(i as f64))],
            ));
            store.append(&mut msgs).unwrap();
        }
        store.flush().unwrap();
        a.catch_up();
        a.alarms_if_due();
        a.send_alarms();
        let Ok(ToPublish::Alarms(alarms)) = rx.try_recv() else {
            panic!("no alarm");
        };
        assert_eq!(alarms.len(), 1, "one message for the one source");
        let (topic, payload) = &alarms[0];
        assert_eq!(topic, "plantmeter/plant-a/gw-01/alarm/COD/COD");
        let v: serde_json::Value = serde_json::from_slice(payload).unwrap();
        assert_eq!(v["state"], "exceeded", "{v}");
        assert_eq!(v["hour"], "2026-01-02T23:00:00+08:00");
        assert_eq!(v["converted"], 80.0);
        assert_eq!(v["unit"], "mg/L");
        // Day 2: hours 25, 30, 35, 40, 45 and 47; the year: also 0, 5, 10, 15, 20.
        assert_eq!(v["exceedance_hours_today"], 6, "{v}");
        assert_eq!(v["exceedance_hours_this_year"], 11, "{v}");
        a.alarms_if_due();
        a.send_alarms();
        assert!(rx.try_recv().is_err(), "nothing new");
    }

    /// A reload: the records polled before it are counted with the old plan, the ones after with
    /// the new one (here without `[audit]`: not counted, and nothing is kept for the audit).
    #[test]
    fn a_reload_switches_plans_at_the_first_record_of_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let plan = Arc::new(plan(dir.path()));
        let store = Arc::new(Store::open_or_recover(&plan.gateway.data_dir, 64).unwrap());
        let mut a = audit(&store, &plan);
        store_rounds(&store, 0..61);
        let switch_at = store.next_seq();
        let mut without = (*plan).clone();
        without.audit = None;
        a.link.switch_plan(switch_at, Arc::new(without));
        store_rounds(&store, 61..121);
        ack_all(&store);
        assert!(store.stats().backlog_bytes > 0, "kept for the audit");
        a.catch_up();
        assert!(a.off);
        assert_eq!(store.stats().backlog_bytes, 0, "nothing kept any more");
        drop(a);
        let db = store.db().unwrap();
        let mut e = AuditEngine::open(&db, &plan).unwrap();
        assert_eq!(e.persisted_cursor(), switch_at);
        let r = e.report(t0() + 3 * 86_400_000).unwrap();
        let electricity = r
            .indicator("electricity")
            .and_then(|i| i.baseline.total)
            .unwrap();
        assert!(
            (electricity - 100.0).abs() < 1e-6,
            "the hour before the reload: {electricity}"
        );
    }

    /// An audit that fails (here: its aggregates are refused at open) is switched off, and the
    /// store deletes acknowledged records again rather than filling up.
    #[test]
    fn a_failed_audit_is_switched_off_and_no_longer_holds_records() {
        let dir = tempfile::tempdir().unwrap();
        let plan = Arc::new(plan(dir.path()));
        let store = Arc::new(Store::open_or_recover(&plan.gateway.data_dir, 64).unwrap());
        // An audit tree written for another timezone: the engine refuses to open.
        let db = store.db().unwrap();
        db.open_tree(crate::audit::aggregates::TREE)
            .unwrap()
            .insert(b"Mtz", &3600i32.to_le_bytes())
            .unwrap();
        drop(db);
        let mut a = audit(&store, &plan);
        store_rounds(&store, 0..10);
        ack_all(&store);
        assert!(store.stats().backlog_bytes > 0, "kept for the audit");
        a.catch_up();
        assert!(a.off);
        assert_eq!(
            store.stats().backlog_bytes,
            0,
            "a failed audit holds nothing back"
        );
        store_rounds(&store, 10..20);
        ack_all(&store);
        assert_eq!(store.stats().backlog_bytes, 0);
    }
}
