//! `plantmeter run --config FILE`: the agent.
//!
//! Readings flow one way: pollers (one task per serial bus, one per TCP meter) -> store writer (a
//! thread: numbers, batches, fsyncs) -> publisher (MQTT task). Acknowledgements flow back and
//! delete. The audit (a thread, `audit::live`) reads the durable records from the store on its own,
//! off that path; the store keeps delivered records until the audit has persisted them. A status
//! task writes `data_dir/status.json` for `plantmeter status`.
//!
//! Signals: SIGTERM/SIGINT stop polling, let the writer flush, wait for outstanding acks, publish
//! the retained offline status and exit 0. SIGHUP reads the config again: with errors (or a changed
//! `gateway.data_dir`, or unreadable credentials) they are logged and the agent runs on unchanged;
//! otherwise pollers and publisher stop cleanly (the poll in progress is stored, in-flight
//! messages acknowledged or resent later) and restart with the new plan on the same open store,
//! so nothing buffered is lost and seq continues. `[metrics] listen` keeps its address until a restart.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use plantmeter_common::{Clock, Plan};
use tokio::sync::{mpsc, watch, Notify};

use crate::audit::live::{Audit, Link};
use crate::exit::BadInput;
use crate::poller;
use crate::publisher;
use crate::state::{self, AgentStatus, MeterState, Shared};
use crate::store::Store;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The agent's TOML configuration.
    #[arg(long)]
    pub config: PathBuf,
    /// Testing and demo: a virtual clock starting at this instant (RFC 3339).
    #[arg(long)]
    pub clock_start: Option<String>,
    /// Testing and demo: the virtual clock runs this many times faster than real time.
    #[arg(long)]
    pub clock_speed: Option<f64>,
    /// Testing and demo: the wall instant (ms since the Unix epoch) at which the virtual clock reads
    /// `--clock-start`, so that processes given the same three options share one time base.
    #[arg(long)]
    pub clock_anchor: Option<i64>,
}

/// How long the store writer waits after a first message for others of the same round of polls,
/// so that a round costs one fsync (real time).
const COALESCE: Duration = Duration::from_millis(5);
/// Largest batch written (and fsynced) at once.
const MAX_BATCH: usize = 4096;
/// How often the status is looked at (watchdog progress; more often when half of systemd's
/// `WatchdogSec` is shorter) and, when something `status` shows beyond counters changed,
/// `status.json` rewritten.
const STATUS_EVERY: Duration = Duration::from_secs(2);
/// In steady state (connected, no backlog beyond a round of polls, no health or eviction change)
/// `status.json` is rewritten this often only: each rewrite is a file creation and a rename.
const STATUS_STEADY_EVERY: Duration = Duration::from_secs(10);
/// Pollers get this long to finish the poll in progress at shutdown.
const STOP_POLLERS: Duration = Duration::from_secs(3);
/// The publisher gets this long for acks (at a shutdown: draining the backlog, up to 5 s), the
/// offline status (1 s) and the disconnect (0.5 s); it is aborted after that.
const STOP_PUBLISHER: Duration = Duration::from_secs(7);
/// The audit gets this long (after the publisher) to ingest and persist what is stored.
const STOP_AUDIT: Duration = Duration::from_secs(5);

/// Milliseconds since the Unix epoch, wall time.
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Load and validate the config; errors exit 2 with `FILE:LINE:COL: message` lines.
pub fn load_plan(path: &std::path::Path) -> anyhow::Result<Plan> {
    plantmeter_common::config::load(path).map_err(|e| anyhow::Error::new(BadInput(e.to_string())))
}

pub fn main(args: RunArgs) -> anyhow::Result<()> {
    let plan = load_plan(&args.config)?;
    let clock = Clock::from_options(
        args.clock_start.as_deref(),
        args.clock_speed,
        args.clock_anchor,
    )
    .map_err(|e| anyhow::Error::new(BadInput(e)))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(run_agent(Arc::new(plan), clock, args.config))
}

/// What the store writer receives, in order: polls, and (after a config reload, once the old
/// pollers have stopped) the new plan for the audit engine.
pub enum ToWriter {
    Poll(Polled),
    Plan(Arc<Plan>),
}

/// One poll of one meter as the poller hands it over: the meter's names and units stay in the
/// plan (no copies per poll); the writer encodes the stored record from both.
pub struct Polled {
    pub plan: Arc<Plan>,
    /// Bus index in the plan, and meter index in its bus.
    pub bus: usize,
    pub meter: usize,
    /// Poll time, ms since the epoch (the agent's clock).
    pub ts: i64,
    /// Per point of the meter, in order: value and quality (the value counts only when good).
    pub values: Vec<(Option<f64>, plantmeter_common::Quality)>,
}

impl Polled {
    fn meter(&self) -> Option<&plantmeter_common::plan::Meter> {
        self.plan.buses.get(self.bus)?.meters.get(self.meter)
    }

    fn points<'a>(
        &'a self,
        meter: &'a plantmeter_common::plan::Meter,
    ) -> impl Iterator<Item = (&'a str, Option<f64>, &'a str, plantmeter_common::Quality)> + 'a
    {
        meter
            .points
            .iter()
            .zip(self.values.iter())
            .map(|(p, &(value, quality))| {
                let value = if quality == plantmeter_common::Quality::Good {
                    value
                } else {
                    None
                };
                (p.name.as_str(), value, p.unit.as_str(), quality)
            })
    }

    /// Append the JSON payload of this poll, numbered `seq`, to `out` (see `store::payload`);
    /// false if the poll names no meter of its plan.
    fn write_payload(&self, seq: u64, out: &mut Vec<u8>) -> bool {
        let Some(meter) = self.meter() else {
            return false;
        };
        crate::store::payload::encode_parts(seq, self.ts, &meter.name, self.points(meter), out);
        true
    }

    /// The data message of this poll, numbered `seq`.
    #[cfg(test)]
    fn message(&self, seq: u64) -> Option<plantmeter_common::DataMessage> {
        let meter = self.meter()?;
        Some(plantmeter_common::DataMessage {
            seq,
            ts: self.ts,
            meter: meter.name.clone(),
            points: self
                .points(meter)
                .map(
                    |(name, value, unit, quality)| plantmeter_common::PointValue {
                        name: name.to_string(),
                        value,
                        unit: unit.to_string(),
                        quality,
                    },
                )
                .collect(),
        })
    }
}

/// What the store writer works with besides the polls.
struct Writer {
    store: Arc<Store>,
    wake: Arc<Notify>,
    /// The audit thread: told when records are durable, never waited for.
    audit: Arc<Link>,
    /// The audit was asked to let go of the database for a recycle that has not happened yet.
    recycle_asked: bool,
    /// A full disk or an I/O error: when to log and to try reopening the store.
    outage: crate::store::outage::Outage,
}

/// The store writer (a thread: sled calls block): number, batch, fsync, then wake the publisher
/// and the audit.
fn writer_loop(
    store: Arc<Store>,
    mut rx: mpsc::Receiver<ToWriter>,
    wake: Arc<Notify>,
    audit: Arc<Link>,
) {
    let mut wr = Writer {
        store,
        wake,
        audit,
        recycle_asked: false,
        outage: Default::default(),
    };
    let mut batch: Vec<Polled> = Vec::with_capacity(256);
    let mut new_plan: Option<Arc<Plan>> = None;
    while let Some(first) = rx.blocking_recv() {
        match first {
            ToWriter::Poll(m) => batch.push(m),
            ToWriter::Plan(p) => new_plan = Some(p),
        }
        if new_plan.is_none() {
            std::thread::sleep(COALESCE);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(ToWriter::Poll(m)) => batch.push(m),
                    Ok(ToWriter::Plan(p)) => {
                        // Polls of the old plan end here: write them, then switch.
                        new_plan = Some(p);
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        if !batch.is_empty() {
            wr.write_batch(&mut batch);
        }
        if let Some(plan) = new_plan.take() {
            // The audit reads the records of the old plan with the old engine.
            wr.audit.switch_plan(wr.store.next_seq(), plan);
        }
    }
    if !wr.store.is_broken() {
        if let Err(e) = wr.store.flush() {
            tracing::error!(error = %format!("{e:#}"), "cannot flush the store at shutdown");
        }
    }
    wr.wake.notify_one();
    wr.audit.stop();
}

impl Writer {
    /// Store a batch of polls, make it durable and wake the publisher; a store that failed is
    /// reopened first when its backoff allows.
    fn write_batch(&mut self, batch: &mut Vec<Polled>) {
        if self.store.is_broken() && self.outage.retry_due(Instant::now()) {
            self.reopen();
        }
        let stored = write_batch(&self.store, batch);
        match stored {
            Ok(()) => {
                if self.store.recycle_due() {
                    self.recycle();
                } else if std::mem::take(&mut self.recycle_asked) {
                    // No longer due (acks freed the backlog): the audit goes on.
                    self.audit.resume();
                }
                if let Some(end) = self.outage.recovered(Instant::now()) {
                    tracing::info!(
                        lasted_s = end.lasted.as_secs(),
                        lost = end.lost,
                        total_evicted = self.store.evicted(),
                        "the store is writable again"
                    );
                }
                self.wake.notify_one();
                self.audit.kick();
            }
            Err((lost, e)) => {
                // The audit lets go of the failed database (until the store is reopened).
                let _ = self.audit.try_release();
                // The publisher reports the new eviction count.
                self.wake.notify_one();
                match self.outage.lost(Instant::now(), lost) {
                    crate::store::outage::Log::Started => tracing::error!(
                        error = %format!("{e:#}"),
                        lost,
                        total_evicted = self.store.evicted(),
                        "cannot store polls (full disk?): they are counted as evicted; the store is reopened as soon as it can be (a summary follows every minute)"
                    ),
                    crate::store::outage::Log::Summary { lost, total } => tracing::error!(
                        error = %format!("{e:#}"),
                        lost_last_minute = lost,
                        lost_in_outage = total,
                        total_evicted = self.store.evicted(),
                        "the store is still unwritable: polls lost"
                    ),
                    crate::store::outage::Log::Nothing => {}
                }
            }
        }
        batch.clear();
    }

    /// Reopen the database to let go of the backlog it holds in memory, once the audit has let
    /// go of it (its aggregates persisted); until then, at a later batch.
    fn recycle(&mut self) {
        if !self.audit.try_release() {
            self.recycle_asked = true;
            return;
        }
        self.recycle_asked = false;
        if let Err(e) = self.store.recycle() {
            tracing::warn!(error = %format!("{e:#}"), "cannot reopen the store; retried with backoff");
        }
        self.audit.resume();
    }

    /// Reopen the store after a failure, once the audit has let go of the database (until then,
    /// at a later batch).
    fn reopen(&mut self) {
        if !self.audit.try_release() {
            return;
        }
        let reopened = self.store.reopen();
        self.audit.resume();
        match reopened {
            Ok(Some(r)) => {
                tracing::info!(
                    survived = r.survived,
                    total_evicted = r.evicted,
                    "reopened the store"
                );
                // Records that survived are published.
                self.wake.notify_one();
            }
            Ok(None) => {}
            Err(e) => {
                self.outage.retry_failed(Instant::now());
                tracing::debug!(error = %format!("{e:#}"), "cannot reopen the store yet");
            }
        }
    }
}

/// Whether an eviction warning may be logged now (at most one a minute per process).
fn eviction_log_due() -> bool {
    use std::sync::atomic::{AtomicU64, Ordering};
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    // Seconds since START of the last line, plus one (0: never logged).
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = START.get_or_init(Instant::now).elapsed().as_secs() + 1;
    let last = LAST.load(Ordering::Relaxed);
    if last != 0 && now < last + 60 {
        return false;
    }
    LAST.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
        .is_ok()
}

/// Store a batch and make it durable; Err: how many polls were lost, and why.
fn write_batch(store: &Store, batch: &mut Vec<Polled>) -> Result<(), (u64, anyhow::Error)> {
    // A poll always names a meter of its own plan; should one not, it cannot be stored (it has
    // no seq yet, so nothing is skipped in the numbering).
    batch.retain(|p| {
        let known = p.meter().is_some();
        if !known {
            tracing::error!(
                bus = p.bus,
                meter = p.meter,
                "a poll names no meter of its plan; dropped"
            );
        }
        known
    });
    match store.append_with(batch.len(), |i, seq, out| {
        batch.get(i).is_some_and(|p| p.write_payload(seq, out))
    }) {
        Ok(a) => {
            // A full store evicts at every batch: one line a minute, the totals say the rest.
            let log_now = (a.evicted > 0 || a.audit_evicted > 0) && eviction_log_due();
            if a.evicted > 0 && log_now {
                let (from, to) = a.evicted_range.unwrap_or((0, 0));
                tracing::warn!(
                    evicted = a.evicted,
                    from_seq = from,
                    to_seq = to,
                    total_evicted = store.evicted(),
                    "store full (store_max_mb): evicted the oldest unsent records"
                );
            }
            if a.audit_evicted > 0 && log_now {
                tracing::warn!(
                    audit_evicted = a.audit_evicted,
                    total_audit_evicted = store.audit_evicted(),
                    "store full (store_max_mb): evicted records the audit had not counted yet (it lags behind); their readings are missing from the audit"
                );
            }
        }
        Err(e) => return Err((batch.len() as u64, e)),
    };
    store.flush().map_err(|e| (batch.len() as u64, e))?;
    Ok(())
}

fn initial_status(plan: &Plan, store: &Store) -> AgentStatus {
    let now = wall_ms();
    AgentStatus {
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").into(),
        started_ms: now,
        updated_ms: now,
        running: true,
        mqtt_connected: false,
        acked: 0,
        store: store.stats(),
        store_moved_aside: store.moved_aside.clone(),
        clock: state::ClockState::Ok,
        ack_rate: state::AckRate::default(),
        meters: meter_states(plan, &[]),
    }
}

/// One state per meter of `plan`, in `Plan::meters()` order; a meter already known (by name, from
/// before a reload) keeps its counters and health.
fn meter_states(plan: &Plan, before: &[MeterState]) -> Vec<MeterState> {
    plan.buses
        .iter()
        .flat_map(|b| {
            b.meters.iter().map(|m| {
                let mut st = before
                    .iter()
                    .find(|o| o.name == m.name)
                    .cloned()
                    .unwrap_or_else(|| MeterState {
                        name: m.name.clone(),
                        ..MeterState::default()
                    });
                st.bus = b.name.clone();
                st
            })
        })
        .collect()
}

/// What `status.json` shows beyond counters that advance every poll: when it changes, the file is
/// rewritten at the next status tick rather than at the next steady-state rewrite.
#[derive(PartialEq, Eq)]
struct StatusKey {
    mqtt_connected: bool,
    evicted: u64,
    /// Meters ok and failing, and errors since start, over all meters.
    ok: usize,
    failing: usize,
    errors: u64,
    /// The backlog is more than a round of polls (a drain or an outage: its figure moves).
    backlog_growing: bool,
}

impl StatusKey {
    fn of(shared: &Shared, store: &Store) -> StatusKey {
        let backlog = store.backlog();
        let st = shared.lock();
        StatusKey {
            mqtt_connected: st.mqtt_connected,
            evicted: store.evicted(),
            ok: st
                .meters
                .iter()
                .filter(|m| m.state == state::Health::Ok)
                .count(),
            failing: st
                .meters
                .iter()
                .filter(|m| m.state == state::Health::Failing)
                .count(),
            errors: st.meters.iter().map(|m| m.total_errors).sum(),
            backlog_growing: backlog > st.meters.len() as u64,
        }
    }

    /// Nothing worth an early rewrite: connected, no backlog beyond a round of polls.
    fn steady(&self) -> bool {
        self.mqtt_connected && !self.backlog_growing
    }
}

fn write_status(dir: &std::path::Path, shared: &Shared, store: &Store, running: bool) {
    // The store is read outside the shared lock; the state is serialised under it (no copy of
    // every meter's state) and written after.
    let stats = store.stats();
    let bytes = {
        let mut st = shared.lock();
        st.store = stats;
        st.updated_ms = wall_ms();
        st.running = running;
        serde_json::to_vec(&*st)
    };
    let written = bytes
        .map_err(std::io::Error::other)
        .and_then(|b| state::write_status_bytes(dir, &b));
    if let Err(e) = written {
        tracing::debug!(error = %e, "cannot write status.json");
    }
}

/// The figures of one `/metrics` scrape. The age of the oldest unsent record is its poll time
/// against the agent's clock (the one readings are stamped with).
fn metrics_snapshot(
    shared: &Shared,
    store: &Store,
    clock: &Clock,
) -> crate::metrics::MetricsSnapshot {
    // One seek in the store, outside the shared lock.
    let stats = store.stats();
    let oldest_unsent_age_seconds = stats
        .oldest_ts_ms
        .map(|ts| (clock.now_ms() - ts).max(0) as f64 / 1000.0);
    let st = shared.lock();
    let now = wall_ms();
    crate::metrics::MetricsSnapshot {
        meters: st
            .meters
            .iter()
            .map(|m| crate::metrics::MeterMetrics {
                name: m.name.clone(),
                polls_total: m.polls,
                errors_total: m.total_errors,
                last_latency_seconds: m.last_latency_s,
                state_ok: m.state == state::Health::Ok,
            })
            .collect(),
        backlog: stats.backlog,
        oldest_unsent_age_seconds,
        evicted: stats.evicted,
        published_total: st.acked,
        publish_rate: st.ack_rate.per_second(now, st.acked),
        mqtt_connected: st.mqtt_connected,
        store_bytes_estimate: stats.backlog_bytes,
        uptime_seconds: (now - st.started_ms).max(0) as f64 / 1000.0,
    }
}

/// The signals the agent acts on.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

enum Sig {
    /// SIGTERM or SIGINT: shut down.
    Stop(&'static str),
    /// SIGHUP: reload the config.
    Reload,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
            hup: signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?,
        })
    }

    async fn next(&mut self) -> Sig {
        tokio::select! {
            _ = self.term.recv() => Sig::Stop("SIGTERM"),
            _ = self.int.recv() => Sig::Stop("SIGINT"),
            _ = self.hup.recv() => Sig::Reload,
        }
    }
}

/// What every generation of pollers and publisher shares; lives as long as the agent.
struct Core {
    store: Arc<Store>,
    shared: Shared,
    wake: Arc<Notify>,
    audit_rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Vec<u8>>>>,
    data_tx: mpsc::Sender<ToWriter>,
    clock: Clock,
    started_ms: i64,
}

/// The pollers and the publisher of one plan. A config reload stops one generation and starts
/// the next; the store, the store writer, the status file and the metrics endpoint stay.
struct Generation {
    pollers: Vec<tokio::task::JoinHandle<()>>,
    publisher: tokio::task::JoinHandle<anyhow::Result<()>>,
    stop_polling: watch::Sender<bool>,
    stop_publishing: watch::Sender<Option<publisher::Stop>>,
}

impl Generation {
    fn start(plan: &Arc<Plan>, core: &Core) -> Generation {
        let (health_tx, health_rx) = mpsc::unbounded_channel();
        let (stop_polling, stop_polling_rx) = watch::channel(false);
        let (stop_publishing, stop_publishing_rx) = watch::channel(None);
        let publisher = tokio::spawn(publisher::run(publisher::Inputs {
            plan: plan.clone(),
            store: core.store.clone(),
            shared: core.shared.clone(),
            wake: core.wake.clone(),
            health: health_rx,
            audit: core.audit_rx.clone(),
            shutdown: stop_publishing_rx,
            started_ms: core.started_ms,
        }));
        let pollers = poller::spawn_all(
            plan.clone(),
            core.clock,
            poller::Sink {
                data: core.data_tx.clone(),
                health: health_tx,
                shared: core.shared.clone(),
            },
            stop_polling_rx,
        );
        Generation {
            pollers,
            publisher,
            stop_polling,
            stop_publishing,
        }
    }

    /// Stop polling: each poller finishes the poll in progress (its message goes to the store);
    /// one that does not stop in time is aborted (its unfinished poll has no seq yet: no gap).
    async fn stop_pollers(&mut self) {
        let _ = self.stop_polling.send(true);
        let pollers = std::mem::take(&mut self.pollers);
        let aborts: Vec<_> = pollers.iter().map(|h| h.abort_handle()).collect();
        if tokio::time::timeout(STOP_POLLERS, futures::future::join_all(pollers))
            .await
            .is_err()
        {
            tracing::warn!("pollers did not stop in time; aborted");
            for a in aborts {
                a.abort();
            }
        }
    }

    /// Stop the publisher (after the pollers): outstanding acks, then (at shutdown) the offline
    /// status, then a clean disconnect.
    async fn stop_publisher(&mut self, why: publisher::Stop) -> anyhow::Result<()> {
        let _ = self.stop_publishing.send(Some(why));
        match tokio::time::timeout(STOP_PUBLISHER, &mut self.publisher).await {
            Ok(r) => flatten(r),
            Err(_) => {
                tracing::warn!("the publisher did not stop in time");
                self.publisher.abort();
                Ok(())
            }
        }
    }
}

/// A config read again on SIGHUP, checked against what cannot change while running.
fn reload_plan(path: &std::path::Path, old: &Plan, started_ms: i64) -> Result<Plan, String> {
    let new = plantmeter_common::config::load(path).map_err(|e| e.to_string())?;
    if new.gateway.data_dir != old.gateway.data_dir {
        return Err(format!(
            "{}: gateway.data_dir changed ({} -> {}); moving the store needs a restart",
            path.display(),
            old.gateway.data_dir.display(),
            new.gateway.data_dir.display()
        ));
    }
    // Credentials and TLS files are read now, so that a bad path keeps the old publisher.
    publisher::mqtt_options(&new, started_ms).map_err(|e| format!("{}: {e:#}", path.display()))?;
    if new.metrics_listen != old.metrics_listen {
        tracing::warn!(
            "metrics.listen changed; the metrics endpoint keeps its address until a restart"
        );
    }
    Ok(new)
}

async fn run_agent(plan: Arc<Plan>, clock: Clock, config_path: PathBuf) -> anyhow::Result<()> {
    // Before anything else: an unhandled SIGHUP would end the process.
    let mut signals = Signals::new()?;
    let data_dir = plan.gateway.data_dir.clone();
    if let Some(parent) = data_dir.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let store = Arc::new(Store::open_or_recover(
        &data_dir,
        plan.gateway.store_max_mb,
    )?);
    let shared = Shared::new(initial_status(&plan, &store));
    let started_ms = shared.lock().started_ms;

    let (data_tx, data_rx) = mpsc::channel::<ToWriter>(MAX_BATCH);
    let (audit_tx, audit_rx) = mpsc::channel(2);
    let wake = Arc::new(Notify::new());
    // Stops the helpers that live as long as the agent (status file, metrics, watchdog).
    let (stop_all_tx, stop_all_rx) = watch::channel(false);

    // Before the publisher starts: the store keeps acknowledged records for the audit from now on.
    let link = Link::new();
    let audit = Audit::new(link.clone(), store.clone(), plan.clone(), clock, audit_tx);
    let (audit_done_tx, audit_done_rx) = tokio::sync::oneshot::channel::<()>();
    crate::audit::live::spawn(audit, audit_done_tx).context("cannot start the audit thread")?;
    let (writer_done_tx, writer_done_rx) = tokio::sync::oneshot::channel::<()>();
    {
        let (store, wake) = (store.clone(), wake.clone());
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                writer_loop(store, data_rx, wake, link);
                let _ = writer_done_tx.send(());
            })
            .context("cannot start the store writer thread")?;
    }
    let core = Core {
        store: store.clone(),
        shared: shared.clone(),
        wake,
        audit_rx: Arc::new(tokio::sync::Mutex::new(audit_rx)),
        data_tx,
        clock,
        started_ms,
    };
    let mut generation = Generation::start(&plan, &core);

    if let Some(listen) = &plan.metrics_listen {
        let server = crate::metrics::MetricsServer::bind(listen).await?;
        let (shared, store) = (shared.clone(), store.clone());
        let mut stop = stop_all_rx.clone();
        tokio::spawn(server.serve(
            move || metrics_snapshot(&shared, &store, &clock),
            async move {
                let _ = stop.changed().await;
            },
        ));
    }

    // The systemd watchdog is fed from the status task, only while every poller and the store
    // writer make progress.
    let watchdog = crate::notify::Watchdog::from_env();
    let stall_ms = Arc::new(std::sync::atomic::AtomicU64::new(stall_window(
        &plan, &clock,
    )));
    {
        let (shared, store, dir) = (shared.clone(), store.clone(), data_dir.clone());
        let stall_ms = stall_ms.clone();
        let mut stop = stop_all_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(watchdog.check_every(STATUS_EVERY));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut progress = crate::state::Progress::default();
            let mut stalled = false;
            let mut written: Option<(StatusKey, Instant)> = None;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.changed() => return,
                }
                let key = StatusKey::of(&shared, &store);
                let due = match &written {
                    None => true,
                    Some((last, at)) => {
                        *last != key || !key.steady() || at.elapsed() >= STATUS_STEADY_EVERY
                    }
                };
                if due {
                    write_status(&dir, &shared, &store, true);
                    written = Some((key, Instant::now()));
                }
                let window =
                    Duration::from_millis(stall_ms.load(std::sync::atomic::Ordering::Relaxed));
                let checked = {
                    let st = shared.lock();
                    if st.clock == state::ClockState::Unset {
                        // Nothing is polled until the system clock is set: not a stall.
                        progress.pause();
                        Ok(())
                    } else {
                        progress.check(Instant::now(), &st.meters, store.next_seq(), window)
                    }
                };
                match checked {
                    Ok(()) => {
                        if stalled {
                            tracing::info!("polling and storing make progress again; watchdog fed");
                            stalled = false;
                        }
                        watchdog.feed();
                    }
                    Err(why) => {
                        if !stalled {
                            tracing::error!("{why}; no longer feeding the watchdog");
                            stalled = true;
                        }
                    }
                }
            }
        });
    }
    crate::notify::ready();
    tracing::info!(
        gateway = %plan.gateway.id,
        meters = plan.polled_meters().count(),
        broker = %plan.mqtt.url,
        backlog = store.backlog(),
        next_seq = store.stats().next_seq,
        "agent running"
    );

    let mut plan = plan;
    let publisher_result: Option<anyhow::Result<()>> = loop {
        tokio::select! {
            sig = signals.next() => match sig {
                Sig::Stop(name) => {
                    tracing::info!(signal = name, "shutting down");
                    break None;
                }
                Sig::Reload => {
                    let new = match reload_plan(&config_path, &plan, started_ms) {
                        Ok(new) => Arc::new(new),
                        Err(errors) => {
                            tracing::error!("SIGHUP: the config cannot be applied; running on with the previous one");
                            for line in errors.lines() {
                                tracing::error!("{line}");
                            }
                            continue;
                        }
                    };
                    crate::notify::reloading();
                    generation.stop_pollers().await;
                    if let Err(e) = generation.stop_publisher(publisher::Stop::Reload).await {
                        tracing::warn!(error = %format!("{e:#}"), "the publisher ended with an error before the reload");
                    }
                    // Polls of the old plan are ahead of this in the writer's queue.
                    if core.data_tx.send(ToWriter::Plan(new.clone())).await.is_err() {
                        break Some(Err(anyhow::anyhow!("the store writer stopped")));
                    }
                    store.set_max_mb(new.gateway.store_max_mb);
                    {
                        let mut st = shared.lock();
                        st.meters = meter_states(&new, &st.meters);
                    }
                    plan = new;
                    stall_ms.store(stall_window(&plan, &clock), std::sync::atomic::Ordering::Relaxed);
                    generation = Generation::start(&plan, &core);
                    crate::notify::ready();
                    tracing::info!(
                        meters = plan.polled_meters().count(),
                        broker = %plan.mqtt.url,
                        next_seq = store.stats().next_seq,
                        "SIGHUP: configuration reloaded"
                    );
                }
            },
            r = &mut generation.publisher => {
                // The publisher only ends early on a fatal error (unreadable credentials; store failures are not: the writer reopens the store).
                break Some(flatten(r));
            }
        }
    };
    crate::notify::stopping();
    generation.stop_pollers().await;
    // The last sender goes: the writer drains, flushes and ends.
    drop(core.data_tx);
    let _ = tokio::time::timeout(STOP_POLLERS, writer_done_rx).await;
    let result = match publisher_result {
        Some(r) => r,
        None => generation.stop_publisher(publisher::Stop::Shutdown).await,
    };
    // The audit caught up with the publisher's drain meanwhile; what it has not persisted by now
    // stays in the store for the next run.
    if tokio::time::timeout(STOP_AUDIT, audit_done_rx)
        .await
        .is_err()
    {
        tracing::warn!("the audit did not catch up in time; the next run resumes it");
    }
    let _ = stop_all_tx.send(true);
    write_status(&data_dir, &shared, &store, false);
    if !store.is_broken() {
        if let Err(e) = store.flush() {
            tracing::error!(error = %format!("{e:#}"), "cannot flush the store at shutdown");
        }
    }
    tracing::info!(backlog = store.backlog(), "stopped");
    result
}

/// How long (real ms) a poller or the store writer may show no progress before the watchdog starves:
/// three of the longest poll intervals, and never under 120 s (a failing meter backs off up to 60 s,
/// plus its timeouts and retries).
fn stall_window(plan: &Plan, clock: &Clock) -> u64 {
    let longest = plan
        .polled_meters()
        .map(|m| clock.real(m.poll_interval))
        .max()
        .unwrap_or_default();
    (longest * 3).max(Duration::from_secs(120)).as_millis() as u64
}

fn flatten(r: Result<anyhow::Result<()>, tokio::task::JoinError>) -> anyhow::Result<()> {
    r.map_err(|e| anyhow::anyhow!("the publisher task failed: {e}"))
        .and_then(|r| r)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(data_dir: &std::path::Path, meters: &[&str]) -> String {
        let mut s = format!(
            "[gateway]\nid = \"gw-01\"\nsite = \"plant-a\"\ndata_dir = \"{}\"\n\n\
             [mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\n\n\
             [[bus]]\nname = \"b\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:5020\"\n\n",
            data_dir.display()
        );
        for m in meters {
            s += &format!(
                "[[meter]]\nname = \"{m}\"\nbus = \"b\"\nunit_id = 1\npoll_interval_s = 1\n\n\
                 [[meter.point]]\nname = \"p\"\nregister = \"holding\"\naddress = 0\ntype = \"u16\"\nunit = \"kW\"\nkind = \"gauge\"\n\n"
            );
        }
        s
    }

    #[test]
    fn reload_refuses_a_moved_store_and_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, config(&dir.path().join("data"), &["a"])).unwrap();
        let old = plantmeter_common::config::load(&path).unwrap();
        std::fs::write(&path, config(&dir.path().join("data"), &["a", "b"])).unwrap();
        let new = reload_plan(&path, &old, 0).unwrap();
        assert_eq!(new.meters().count(), 2);
        std::fs::write(&path, config(&dir.path().join("elsewhere"), &["a"])).unwrap();
        let err = reload_plan(&path, &old, 0).unwrap_err();
        assert!(
            err.contains("agent.toml") && err.contains("data_dir"),
            "{err}"
        );
        std::fs::write(&path, "[gateway]\nid = \"gw-01\"\nbogus = 1\n").unwrap();
        let err = reload_plan(&path, &old, 0).unwrap_err();
        assert!(err.contains("agent.toml:"), "{err}");
    }

    #[test]
    fn a_poll_is_stored_as_the_json_of_its_message_with_values_only_when_good() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, config(&dir.path().join("data"), &["a", "b"])).unwrap();
        let plan = Arc::new(plantmeter_common::config::load(&path).unwrap());
        let poll = |values| Polled {
            plan: plan.clone(),
            bus: 0,
            meter: 1,
            ts: 1_795_248_005_000,
            values,
        };
        let payload = |p: &Polled, seq| {
            let mut out = Vec::new();
            p.write_payload(seq, &mut out).then_some(out)
        };
        let good = poll(vec![(Some(1.5), plantmeter_common::Quality::Good)]);
        let m = good.message(42).unwrap();
        assert_eq!(
            (m.seq, m.meter.as_str(), m.points[0].value),
            (42, "b", Some(1.5))
        );
        assert_eq!(payload(&good, 42).unwrap(), m.to_json());
        let bad = poll(vec![(Some(1.5), plantmeter_common::Quality::Invalid)]);
        let m = bad.message(43).unwrap();
        assert_eq!(
            m.points[0].value, None,
            "a value that is not good is not published"
        );
        assert_eq!(payload(&bad, 43).unwrap(), m.to_json());
        let unknown = Polled {
            meter: 9,
            ..poll(vec![])
        };
        assert!(payload(&unknown, 1).is_none() && unknown.message(1).is_none());
    }

    /// Wait for `cond`, up to 30 s.
    fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The audit stalls on its first record: every poll is stored, durable and delivered all the
    /// same; once it goes on, it counts everything and the store lets go of what it kept for it.
    #[test]
    fn a_stalled_audit_delays_neither_storing_nor_publishing() {
        let dir = tempfile::tempdir().unwrap();
        let plan = Arc::new(crate::audit::engine::tests::plan(dir.path()));
        let store = Arc::new(Store::open_or_recover(&plan.gateway.data_dir, 64).unwrap());
        let t0 = plantmeter_common::model::parse_ts_ms("2026-01-01T00:00:00+08:00").unwrap();
        let clock = Clock::virtual_from(t0 + 3 * 86_400_000, 1.0);
        let (reports_tx, _reports_rx) = mpsc::channel(1);
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let ingested = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = ingested.clone();
        let link = Link::new();
        let audit = Audit::new(link.clone(), store.clone(), plan.clone(), clock, reports_tx)
            .with_hook(Box::new(move |_seq| {
                // Stalled until the test lets it go (the sender dropped).
                let _ = go_rx.recv();
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }));
        let (done_tx, _done_rx) = tokio::sync::oneshot::channel();
        let audit_thread = crate::audit::live::spawn(audit, done_tx).unwrap();
        let (data_tx, data_rx) = mpsc::channel(MAX_BATCH);
        let writer = {
            let (store, wake) = (store.clone(), Arc::new(Notify::new()));
            std::thread::spawn(move || writer_loop(store, data_rx, wake, link))
        };
        let rounds = 121i64;
        for i in 0..rounds {
            let ts = t0 + i * 60_000;
            let good = |v: f64| (Some(v), plantmeter_common::Quality::Good);
            let polls = [
                (
                    0,
                    vec![good(5_000.0 + 100.0 * i as f64 / 60.0), good(100.0)],
                ),
                (1, vec![good(2.0 * i as f64 / 60.0)]),
            ];
            for (meter, values) in polls {
                data_tx
                    .blocking_send(ToWriter::Poll(Polled {
                        plan: plan.clone(),
                        bus: 0,
                        meter,
                        ts,
                        values,
                    }))
                    .unwrap();
            }
        }
        let stored = 2 * rounds as u64;
        wait_for("every poll durable", || store.durable_next() > stored);
        // The publisher: the broker acknowledges everything sent.
        let sent: Vec<u64> = store
            .read_from(0, 10_000)
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(sent.len() as u64, stored, "every poll is published");
        store.remove_acked(&sent).unwrap();
        assert_eq!(store.backlog(), 0);
        assert_eq!(
            ingested.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "all of it while the audit had not counted a single record"
        );
        // The audit goes on; the writer stops (as at a shutdown): the audit catches up and persists.
        drop(go_tx);
        drop(data_tx);
        wait_for("the audit to end", || audit_thread.is_finished());
        writer.join().unwrap();
        assert_eq!(ingested.load(std::sync::atomic::Ordering::SeqCst), stored);
        assert_eq!(
            store.stats().backlog_bytes,
            0,
            "delivered and audited records are deleted"
        );
        let db = store.db().unwrap();
        let mut engine = crate::audit::AuditEngine::open(&db, &plan).unwrap();
        assert_eq!(engine.persisted_cursor(), stored + 1);
        let r = engine.report(t0 + 3 * 86_400_000).unwrap();
        let electricity = r
            .indicators
            .iter()
            .find(|(k, _)| k == "electricity")
            .and_then(|(_, i)| i.baseline.total)
            .unwrap();
        assert!(
            (electricity - 200.0).abs() < 1e-6,
            "two hours of 100 kWh: {electricity}"
        );
    }

    #[test]
    fn reloaded_meters_keep_their_state_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, config(&dir.path().join("data"), &["a", "b"])).unwrap();
        let plan = plantmeter_common::config::load(&path).unwrap();
        let before = vec![MeterState {
            name: "b".into(),
            bus: "old".into(),
            polls: 7,
            state: state::Health::Ok,
            ..MeterState::default()
        }];
        let after = meter_states(&plan, &before);
        assert_eq!(after.len(), 2);
        assert_eq!((after[0].name.as_str(), after[0].polls), ("a", 0));
        assert_eq!((after[1].name.as_str(), after[1].polls), ("b", 7));
        assert_eq!(after[1].bus, "b");
    }
}
