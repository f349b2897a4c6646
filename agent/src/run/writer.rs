//! The store writer (a thread: sled calls block): numbers the polls, writes them in batches, makes
//! each batch durable (one fsync per round of polls), then wakes the publisher and the audit. After a
//! full disk or an I/O error (the round that failed counts as lost), polls go to the broker from a
//! bounded queue in memory (`store/fallback.rs`) until the store can be reopened; only what neither
//! took is evicted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use plantmeter_common::Plan;
use tokio::sync::{mpsc, Notify};

use crate::audit::live::Link;
use crate::store::{Polled, Store, ToWriter};

/// How long the store writer waits after a first message for others of the same round of polls,
/// so that a round costs one fsync (real time).
const COALESCE: Duration = Duration::from_millis(5);
/// Largest batch written (and fsynced) at once.
pub(super) const MAX_BATCH: usize = 4096;

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
pub(super) fn writer_loop(
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
            Ok(Some(a)) => {
                // The disk is still out: the polls went to memory, for the publisher.
                self.wake.notify_one();
                match self.outage.lost(Instant::now(), a.evicted) {
                    crate::store::outage::Log::Started => tracing::error!(
                        in_memory = a.in_memory,
                        "the store cannot write (full disk?): polls go to the broker from memory (up to 4 MiB); only what neither takes is evicted"
                    ),
                    crate::store::outage::Log::Summary { lost, total } => tracing::error!(
                        evicted_last_minute = lost,
                        evicted_in_outage = total,
                        total_evicted = self.store.evicted(),
                        backlog_in_memory_and_store = self.store.backlog(),
                        "the store is still unwritable: polls go to the broker from memory"
                    ),
                    crate::store::outage::Log::Nothing => {}
                }
            }
            Ok(None) => {
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
                        "cannot store polls (full disk?): this round is counted as evicted; the next go to the broker from memory (up to 4 MiB) until the store is reopened, as soon as it can be (a summary follows every minute)"
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

/// Store a batch and make it durable: Ok(None); Ok(Some) when the store could not write and the
/// polls went to memory for the publisher; Err: how many polls were lost, and why.
fn write_batch(
    store: &Store,
    batch: &mut Vec<Polled>,
) -> Result<Option<crate::store::Appended>, (u64, anyhow::Error)> {
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
    match store.append_with(batch.len(), |i, seq, meter, out| {
        batch
            .get(i)
            .is_some_and(|p| p.write_record(seq, meter, out))
    }) {
        Ok(a) if a.in_memory > 0 => return Ok(Some(a)),
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
    Ok(None)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::audit::live::Audit;
    use plantmeter_common::Clock;

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
            .map(|r| r.seq)
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
            .indicator("electricity")
            .and_then(|i| i.baseline.total)
            .unwrap();
        assert!(
            (electricity - 200.0).abs() < 1e-6,
            "two hours of 100 kWh: {electricity}"
        );
    }
}
