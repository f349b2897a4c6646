//! `plantmeter run --config FILE`: the agent's supervisor. It starts the parts, feeds the watchdog,
//! and stops or reloads them on signals; the parts live beside it: `writer` (the store writer
//! thread), `status_file` (`status.json`), and the top-level modules `poller`, `store`,
//! `publisher`, `audit`.
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
use std::time::{Duration, Instant};

use anyhow::Context as _;
use plantmeter_common::{Clock, Plan};
use tokio::sync::{mpsc, watch, Notify};

use crate::audit::live::{Audit, Link};
use crate::exit::BadInput;
use crate::poller;
use crate::publisher;
use crate::state::{self, Shared};
use crate::store::{Store, ToWriter};

mod status_file;
mod writer;

use status_file::{initial_status, meter_states, write_status, StatusKey};
use status_file::{STATUS_EVERY, STATUS_STEADY_EVERY};
use writer::{writer_loop, MAX_BATCH};

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

/// Pollers get this long to finish the poll in progress at shutdown.
const STOP_POLLERS: Duration = Duration::from_secs(3);
/// The publisher gets this long for acks (at a shutdown: draining the backlog, up to 5 s), the
/// offline status (1 s) and the disconnect (0.5 s); it is aborted after that.
const STOP_PUBLISHER: Duration = Duration::from_secs(7);
/// The audit gets this long (after the publisher) to ingest and persist what is stored.
const STOP_AUDIT: Duration = Duration::from_secs(5);

pub fn main(args: RunArgs) -> anyhow::Result<()> {
    let plan = crate::exit::load_plan(&args.config, crate::exit::Needs::Polling)?;
    if plan.desk {
        return Err(anyhow::Error::new(BadInput(format!(
            "{}: a desk audit (no [[bus]], no [mqtt]) polls and publishes nothing: `run` needs [gateway], \
             [mqtt] and a [[bus]] with its meters; a desk audit uses import, report and verify",
            args.config.display()
        ))));
    }
    // Files the config names that cannot serve: exit 2 now, as `check` would, not an agent that
    // starts, fails to connect and is restarted forever.
    for w in crate::check::named_files(&plan)? {
        tracing::warn!("{}", plantmeter_common::config::cut_echo(&w));
    }
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
    let now = plantmeter_common::clock::system_ms();
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
                invalid_values_total: m.invalid_values,
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
    audit_rx: Arc<tokio::sync::Mutex<mpsc::Receiver<crate::audit::live::ToPublish>>>,
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
    if new.hj212 != old.hj212 {
        tracing::warn!("[hj212] changed; the HJ 212 uplink keeps its settings until a restart");
    }
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
    store.set_retain_mb(plan.gateway.retain_delivered_mb);
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
    // `[hj212]`: also before the publisher, the store keeps records for the uplink from now on.
    let uplink = crate::hj212::start(&plan, store.clone(), clock)
        .context("cannot start the HJ 212 uplink")?;
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
                    store.set_retain_mb(new.gateway.retain_delivered_mb);
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
    if let Some(uplink) = uplink {
        uplink.stop().await;
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

    pub(super) fn config(data_dir: &std::path::Path, meters: &[&str]) -> String {
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
}
