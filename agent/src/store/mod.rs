//! The sled store: outbox of data messages keyed by seq, durable seq counter, audit aggregates (own trees).
//!
//! Layout of the `outbox` tree: data messages in [`block`]s, each under the seq of its first record
//! as 8 big-endian bytes; a record is the exact JSON payload that is published (so a duplicate is
//! byte-identical). A round of polls is one block: one key to insert, one to delete once the broker
//! acknowledged all of it. Counters live in the same tree under keys that sort after every seq
//! (`[0xFF; 8]` + name). A round is written as its block, then the next seq (plain inserts: sled
//! recovers a prefix of its log, and at open the next seq is past the last stored record anyway);
//! when the store is full, the evictions, the eviction count and the round go in one atomic batch.
//!
//! Which records of a partly acknowledged block were acknowledged is kept in memory (the publisher
//! does not send them again); after a crash the whole block goes again (at-least-once).
//!
//! The live audit reads the records from the store too, behind the publisher or ahead of it (see
//! `audit::live`). While it is on, a block the broker acknowledged is deleted only once the audit
//! has persisted every record of it ([`Store::set_audit_gate`]): until then it stays, acknowledged
//! (not sent again, not in the backlog, but in the bytes counted against `store_max_mb`).
//!
//! Delivered blocks are kept besides, up to `[gateway] retain_delivered_mb` ([`Store::set_retain_mb`]),
//! for `P/cmd/replay` ([`Store::replay`]): a subscriber that lost messages (a broker restart ate a
//! shared subscription's queue) asks for them again. They are the oldest blocks, so a full store
//! evicts them first; past their own bound the oldest go.
//!
//! Memory: sled by default keeps a 1 GiB page cache that fills up to the data size, plus a
//! background flusher thread. See [`open_db`] for what is changed and why.

pub mod block;
pub mod fallback;
pub mod outage;
pub mod payload;
mod reading;
pub mod seq_floor;

pub use reading::{Polled, ToWriter};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::Context;
use plantmeter_common::DataMessage;

/// sled's page cache bound: small, so memory stays flat whatever the backlog (bytes).
pub const CACHE_CAPACITY: u64 = 1024 * 1024;

/// sled's log segment size (bytes). sled keeps a few segment-sized write buffers in memory; the
/// default 512 KiB is larger than a gateway needs.
const SEGMENT_SIZE: usize = 256 * 1024;

/// The database is closed and reopened after this many bytes of records were written while a
/// backlog this large waits (and once at open, after the scan, if it is): sled 0.34.7 keeps
/// every node it wrote or read in memory, whatever `cache_capacity` says. Its LRU is split in
/// 256 shards, and a shard applies its accesses (and evicts) only once 64 of them are queued:
/// the leaves of a backlog, written once and not touched again, sit in shards that never fill,
/// so sled held the whole backlog in memory (0.7 KiB of RSS per waiting record). Reopening
/// drops that cache; the leaves stay on disk until read. The scan at open reopens the same way
/// every this many bytes read.
pub const RECYCLE_BYTES: u64 = 2 * 1024 * 1024;

/// The tree holding data messages.
pub const OUTBOX_TREE: &str = "outbox";

const META_PREFIX: [u8; 8] = [0xFF; 8];

/// Per stored record, what sled spends besides key and value (node and log overhead, an estimate
/// used to turn `store_max_mb` into a logical budget).
const RECORD_OVERHEAD: u64 = 48;

/// sled is log-structured: disk use runs ahead of the live data (fragmentation before its GC
/// catches up). The live data may use this fraction of `store_max_mb`.
const LIVE_FRACTION: f64 = 0.5;

fn meta_key(name: &str) -> Vec<u8> {
    let mut k = META_PREFIX.to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// The stored seq key at or below `seq` that is greatest, with its value, found by reading
/// forward only.
///
/// sled 0.34.7 reads backward (`DoubleEndedIterator::next_back`, and through it its iterators'
/// `last` and `rev`, `Tree::last`, `get_lt`, `pop_max`) by comparing with a constant 1 MiB key of
/// 0xFF bytes: one backward read anywhere puts that megabyte in the binary, a fifth of the gateway
/// build (`deploy/ci-checks.sh --size`). Forward probes instead: from `seq` down in doubling steps
/// until a window `lo..=seq` holds a key, then halving between that key and the last empty window.
/// One probe (one seek) when `seq` starts a block, the usual case; O(log d) for a key d below.
fn last_at_or_below(
    tree: &sled::Tree,
    seq: u64,
) -> anyhow::Result<Option<(sled::IVec, sled::IVec)>> {
    // The first seq key in lo..=seq.
    let first_from = |lo: u64| -> anyhow::Result<Option<(u64, sled::IVec, sled::IVec)>> {
        let Some(kv) = tree.range(seq_key(lo)..=seq_key(seq)).next() else {
            return Ok(None);
        };
        let (k, v) = kv?;
        Ok(key_seq(&k).map(|s| (s, k, v)))
    };
    // Downward: `empty_from..=seq` holds no key.
    let mut empty_from = u128::from(seq) + 1;
    let mut step = 1u64;
    let mut found = loop {
        if empty_from == 0 {
            return Ok(None);
        }
        let lo = (empty_from - 1).saturating_sub(u128::from(step) - 1);
        let lo = u64::try_from(lo).unwrap_or(seq);
        match first_from(lo)? {
            Some(f) => break f,
            None => {
                empty_from = u128::from(lo);
                step = step.saturating_mul(2);
            }
        }
    };
    // Halving: the answer is in found.0..empty_from.
    while u128::from(found.0) + 1 < empty_from {
        let mid = found.0 + u64::try_from((empty_from - u128::from(found.0)) / 2).unwrap_or(1);
        match first_from(mid)? {
            Some(f) => found = f,
            None => empty_from = u128::from(mid),
        }
    }
    Ok(Some((found.1, found.2)))
}

fn key_seq(key: &[u8]) -> Option<u64> {
    let arr: [u8; 8] = key.try_into().ok()?;
    (arr != META_PREFIX).then(|| u64::from_be_bytes(arr))
}

fn read_u64(tree: &sled::Tree, name: &str) -> anyhow::Result<Option<u64>> {
    Ok(tree
        .get(meta_key(name))?
        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map(u64::from_be_bytes))
}

/// The block under key `k`. A value that is no block (a bug, or a store damaged beyond what sled
/// detects) can be read by no one: it is logged and removed, and None returned.
fn decode(tree: &sled::Tree, k: &[u8], v: sled::IVec) -> Option<Stored> {
    let first = key_seq(k)?;
    match block::spans(&v) {
        Ok(spans) if !spans.is_empty() => Some(Stored {
            first,
            value: v,
            spans,
        }),
        Ok(_) => {
            let _ = tree.remove(k);
            None
        }
        Err(e) => {
            tracing::error!(seq = first, error = %e, "unreadable block of records in the store: removed");
            let _ = tree.remove(k);
            None
        }
    }
}

fn config(dir: &Path, background_flush: bool) -> sled::Config {
    // Measured (a program opening sled 0.34.7 alone and reading /proc/self/status; see the
    // agent-core note): sled costs ~21.8 MB RSS right after `open`, whatever the settings here.
    // 21 MB of it are 41 metrics histograms of 64 Ki counters each (512 KiB), allocated by
    // `Db::open` even with the default `no_metrics` feature, and zeroed element by element, so
    // every page is touched. sled's `miri_optimizations` feature allocates them zeroed by the
    // allocator instead (untouched pages cost no RSS): 21.8 MB -> 0.8 MB after open. It changes
    // nothing else outside sled's own Miri/`lock_free_delays` test builds.
    // What these settings bound: the page cache (default 1 GiB, filled as data is touched) and
    // the segment-sized write buffers. The background flusher (`flush_every_ms`) is a thread
    // waking every interval; the agent flushes itself after each batch (durability before
    // publish), so it runs without one. `open_db` users (import, report, demo) keep a 1 s flusher.
    sled::Config::new()
        .path(dir)
        .cache_capacity(CACHE_CAPACITY)
        .segment_size(SEGMENT_SIZE)
        .mode(sled::Mode::LowSpace)
        .flush_every_ms(background_flush.then_some(1000))
}

/// Open (or create) the sled database in `dir`, for the commands that open the store without the
/// agent (import, report, the demo, benches); `OpenError::Locked` while a running agent holds it.
pub fn open_db(dir: &Path) -> Result<sled::Db, OpenError> {
    // A store of this process that was just dropped releases its lock when sled's threads let
    // go of it: wait for that, as the agent's own open does.
    open_classified(dir, LOCK_WAIT, Flusher::Background)
}

/// The file the running agent keeps up to date inside `data_dir` (`state::AgentStatus`).
pub const STATUS_FILE: &str = "status.json";

/// The store's figures in `dir/status.json`, if it is there and readable: where a store that was
/// lost or replaced continues its seq when no seq floor survived.
fn status_hint(dir: &Path) -> Option<StoreStats> {
    /// The part of the status file that is the store's.
    #[derive(serde::Deserialize)]
    struct Status {
        store: StoreStats,
    }
    let bytes = std::fs::read(dir.join(STATUS_FILE)).ok()?;
    serde_json::from_slice::<Status>(&bytes)
        .ok()
        .map(|s| s.store)
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another process (a running agent) holds the store's lock.
    #[error("the store at {0} is in use by another process (is `plantmeter run` running?)")]
    Locked(PathBuf),
    /// The store is unreadable (corrupt, or written by an incompatible version).
    #[error("the store at {dir} is unreadable: {source}")]
    Corrupt { dir: PathBuf, source: sled::Error },
    /// The directory cannot be read or written (permissions, missing mount, full disk).
    #[error("cannot open the store at {dir}: {source}")]
    Io { dir: PathBuf, source: sled::Error },
}

/// How long an open waits for a lock held by a store of this process that is closing (sled
/// releases its file lock when its last I/O thread lets go, shortly after the `Db` is dropped).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Who flushes the database: the agent itself after each batch, or sled's background thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flusher {
    Agent,
    Background,
}

fn open_classified(
    dir: &Path,
    wait: std::time::Duration,
    flusher: Flusher,
) -> Result<sled::Db, OpenError> {
    let start = std::time::Instant::now();
    loop {
        match open_once(dir, flusher) {
            Err(OpenError::Locked(_)) if start.elapsed() < wait => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Remove the snapshot files sled 0.34.7 left unfinished in `dir`. sled writes a snapshot to
/// `snap.<lsn>.generating`, fsyncs it and renames it to `snap.<lsn>`, removing older snapshots only
/// after the rename; but when it looks for snapshots at open it skips only files ending
/// `.in___motion`, so a `.generating` file left by a process killed while writing one sorts last, is
/// read as the newest snapshot, and the open fails as corrupt (seen under repeated SIGKILLs: a
/// healthy store moved aside). Such a file is never the valid snapshot: the previous one is still
/// there, so removing it is exactly what sled's own recovery would need.
pub fn remove_unfinished_snapshots(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => tracing::warn!(
                    store = %dir.display(),
                    file = %name,
                    "removed a snapshot file sled left unfinished (the process was stopped while writing it)"
                ),
                Err(e) => tracing::warn!(
                    store = %dir.display(),
                    file = %name,
                    error = %e,
                    "cannot remove a snapshot file sled left unfinished"
                ),
            }
        }
    }
}

fn open_once(dir: &Path, flusher: Flusher) -> Result<sled::Db, OpenError> {
    remove_unfinished_snapshots(dir);
    config(dir, flusher == Flusher::Background)
        .open()
        .map_err(|e| match &e {
            // sled 0.34.7 says that another process holds the lock only in the text of an
            // `io::Error` of kind `Other`: this is the one place that reads it; everything else
            // matches `OpenError::Locked`.
            sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
                OpenError::Locked(dir.to_path_buf())
            }
            sled::Error::Io(_) => OpenError::Io {
                dir: dir.to_path_buf(),
                source: e,
            },
            _ => OpenError::Corrupt {
                dir: dir.to_path_buf(),
                source: e,
            },
        })
}

/// The store cannot be used right now: a write failed (full disk, I/O error) and it has not been
/// reopened yet, or it could not be opened at start.
#[derive(Debug, thiserror::Error)]
#[error(
    "the store at {0} is unavailable after a write failure (it is reopened as soon as it can be)"
)]
pub struct Unavailable(pub PathBuf);

/// The file sled 0.34.7 writes its log (and the segments holding every update) to, in its folder.
const SLED_LOG_FILE: &str = "db";

/// An open sled database, its outbox tree and its log file.
#[derive(Clone)]
struct Handle {
    db: sled::Db,
    tree: sled::Tree,
    /// sled's log file, kept open to fdatasync it after each flush: sled 0.34.7 flushes with
    /// `sync_file_range` only, which writes the pages but neither the file's metadata (its size,
    /// as the log grows) nor the drive's write cache: on a power loss the round may not be there.
    log: Arc<std::fs::File>,
}

impl Handle {
    fn new(db: sled::Db, dir: &Path) -> anyhow::Result<Handle> {
        let tree = db.open_tree(OUTBOX_TREE)?;
        let path = dir.join(SLED_LOG_FILE);
        let log = std::fs::File::open(&path)
            .with_context(|| format!("cannot open the store's log {}", path.display()))?;
        Ok(Handle {
            db,
            tree,
            log: Arc::new(log),
        })
    }

    /// Everything written so far on stable storage: sled's flush, then an fdatasync of its log.
    fn sync(&self) -> anyhow::Result<()> {
        self.db.flush().context("cannot flush the store to disk")?;
        self.log
            .sync_data()
            .context("cannot sync the store's log to disk (fdatasync)")?;
        Ok(())
    }
}

/// What a scan of the outbox found.
#[derive(Default)]
struct Scan {
    backlog: u64,
    bytes: u64,
    /// The last stored seq (0: none).
    last: u64,
    /// Records stored with a seq at or after the scan's `from`.
    from_on: u64,
    /// First seqs of the stored blocks.
    blocks: std::collections::BTreeSet<u64>,
    /// Blocks below the stored `acked_below` (all delivered, kept for the audit): first seq,
    /// record count and bytes.
    acked: Vec<(u64, u64, u64)>,
}

/// Scan the outbox of the database in `dir`, in chunks of [`RECYCLE_BYTES`] with the database
/// reopened between two (a scan pages every record into sled's memory, which keeps it); returns
/// the handle to go on with.
fn scan(dir: &Path, mut hd: Handle, from: u64) -> anyhow::Result<(Scan, Handle)> {
    let mut out = Scan::default();
    let acked_below = read_u64(&hd.tree, "acked_below")?.unwrap_or(0);
    let mut cursor = 0u64;
    loop {
        let mut chunk = 0u64;
        let mut resume = None;
        for kv in hd.tree.range(seq_key(cursor)..META_PREFIX) {
            let (k, v) = kv?;
            if let Some(b) = decode(&hd.tree, &k, v) {
                out.backlog += b.count();
                out.bytes += b.bytes();
                out.last = b.end() - 1;
                out.from_on += b.end().saturating_sub(b.first.max(from));
                out.blocks.insert(b.first);
                if b.end() <= acked_below {
                    out.acked.push((b.first, b.count(), b.bytes()));
                }
                chunk += b.bytes();
                if chunk >= RECYCLE_BYTES {
                    resume = Some(b.first + 1);
                    break;
                }
            }
        }
        let Some(next) = resume else {
            return Ok((out, hd));
        };
        cursor = next;
        drop(hd);
        hd = Handle::new(open_classified(dir, LOCK_WAIT, Flusher::Agent)?, dir)?;
    }
}

/// After a reopen: how many records that were counted lost when the store failed were on disk
/// after all, and the eviction count since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reopened {
    pub survived: u64,
    /// Records evicted or lost since the store was created.
    pub evicted: u64,
}

/// A full disk (or quota) or a failing one: conditions that pass, unlike a wrong path or
/// permissions, which stop the agent with the error.
fn is_full_or_failing(e: &sled::Error) -> bool {
    const ENOSPC: i32 = 28;
    const EIO: i32 = 5;
    const EDQUOT: i32 = 122;
    match e {
        sled::Error::Io(io) => {
            io.kind() == std::io::ErrorKind::StorageFull
                || io
                    .raw_os_error()
                    .is_some_and(|c| [ENOSPC, EIO, EDQUOT].contains(&c))
                || io.to_string().contains("No space left on device")
        }
        _ => false,
    }
}

/// The data messages waiting for delivery, with their counters.
pub struct Store {
    /// The store's folder (`data_dir`).
    dir: PathBuf,
    /// None while the store is unusable (see [`Unavailable`]); only the store writer reopens it.
    handle: RwLock<Option<Handle>>,
    /// Serialises the writer's append/evict batch against deletes of acknowledged records.
    write_lock: Mutex<WriterState>,
    /// Every seq below this is flushed to disk and may be published.
    durable_next: AtomicU64,
    backlog: AtomicU64,
    bytes: AtomicU64,
    evicted: AtomicU64,
    /// The live data may use this many bytes (from `store_max_mb`; changed by a config reload).
    max_live_bytes: AtomicU64,
    /// Where an unreadable store was moved to when this one was created, if it was.
    pub moved_aside: Option<PathBuf>,
    /// fdatasyncs of sled's log so far (one per [`Store::flush`]).
    syncs: AtomicU64,
    /// Bytes of records written since the database was (re)opened.
    written_since_open: AtomicU64,
    /// Records evicted (store full) before the live audit had persisted them, since start.
    audit_evicted: AtomicU64,
    /// Polls numbered while the store could not write, kept in memory for the publisher (taken after
    /// `write_lock` when both are held).
    fallback: Mutex<fallback::Fallback>,
}

impl WriterState {
    /// Acknowledged blocks at or past this seq are kept for a reader that has not passed them.
    fn keep_gate(&self) -> Option<u64> {
        match (self.audit_gate, self.uplink_gate) {
            (Some(a), Some(u)) => Some(a.min(u)),
            (a, u) => a.or(u),
        }
    }
}

struct WriterState {
    next_seq: u64,
    /// Blocks some of whose records were acknowledged, by first seq.
    partial: BTreeMap<u64, Partial>,
    /// Every seq given is below it, on disk outside the store.
    floor: seq_floor::SeqFloor,
    /// While the store is unusable: the first seq counted as lost (every seq from here on was
    /// either written but not yet flushed, or never written).
    broken_from: Option<u64>,
    /// Whether a database was ever attached (false: the store could not be opened at start).
    attached: bool,
    /// The eviction count as last written to the store.
    evicted_stored: u64,
    /// While the live audit is on: the first seq it has not persisted. Acknowledged blocks at or
    /// past it are kept (for the audit to read) and deleted once it passes them.
    audit_gate: Option<u64>,
    /// The same for the HJ 212 uplink (`hj212`), which reads the records on its own too.
    uplink_gate: Option<u64>,
    /// Every stored record below this seq was delivered (as last written to the store): where the
    /// next look for the oldest block not delivered entirely starts.
    acked_below: u64,
    /// Delivered blocks kept for replays: their bytes, and the bound.
    retained: u64,
    retain_bytes: u64,
    /// Every block in `partial` below this first seq is retained already: where
    /// [`Store::release_kept`] starts, so that a gate move costs the blocks it can change, not every
    /// block kept for replays (a scan of them all at each move slowed the writer enough, with the
    /// default quarter of a 512 MB store, to lose 7 % of the polls in the e2e truth test).
    release_from: u64,
    /// While [`Store::recycle`] reopens the database (without this lock): acknowledgements that
    /// came in meanwhile, applied once it is open again.
    recycling: Option<Vec<u64>>,
}

/// The acknowledged records of a block (a bit per record).
struct Partial {
    count: u64,
    bytes: u64,
    acked: Vec<u64>,
    n_acked: u64,
    /// Delivered entirely and kept only for replays (counted in `WriterState::retained`).
    retained: bool,
}

impl Partial {
    fn new(count: u64, bytes: u64) -> Partial {
        Partial {
            count,
            bytes,
            acked: vec![0; count.div_ceil(64) as usize],
            n_acked: 0,
            retained: false,
        }
    }

    fn is_acked(&self, i: u64) -> bool {
        self.acked
            .get((i / 64) as usize)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Mark record `i`; true if it was not marked yet.
    fn ack(&mut self, i: u64) -> bool {
        let Some(w) = self.acked.get_mut((i / 64) as usize) else {
            return false;
        };
        let bit = 1u64 << (i % 64);
        if *w & bit != 0 {
            return false;
        }
        *w |= bit;
        self.n_acked += 1;
        true
    }
}

/// Mark the blocks a scan found below `acked_below` as delivered (all their records acknowledged),
/// unless known already; returns how many records were newly marked.
fn add_acked(partial: &mut BTreeMap<u64, Partial>, acked: &[(u64, u64, u64)]) -> u64 {
    let mut marked = 0;
    for &(first, count, bytes) in acked {
        let p = partial
            .entry(first)
            .or_insert_with(|| Partial::new(count, bytes));
        for i in 0..count {
            if p.ack(i) {
                marked += 1;
            }
        }
    }
    marked
}

/// A stored block: its first seq, its value and where its records are.
struct Stored {
    first: u64,
    value: sled::IVec,
    spans: block::Spans,
}

impl Stored {
    fn count(&self) -> u64 {
        self.spans.len() as u64
    }

    /// Past its last seq.
    fn end(&self) -> u64 {
        self.first + self.count()
    }

    fn bytes(&self) -> u64 {
        self.spans.iter().map(|s| record_size(s.len())).sum()
    }

    /// The `i`-th record: its payload, and its meter if the block carries it.
    fn record(&self, i: usize) -> Option<(sled::IVec, Option<sled::IVec>)> {
        let span = self.spans.get(i)?;
        let (off, len) = span.payload;
        let meter = span.meter.map(|(at, n)| self.value.subslice(at, n));
        Some((self.value.subslice(off, len), meter))
    }
}

/// One stored data message as the publisher reads it back.
#[derive(Debug, Clone)]
pub struct Record {
    pub seq: u64,
    /// The JSON payload, published as it is.
    pub payload: sled::IVec,
    /// The meter's name, as stored beside the payload (records of older stores: from the JSON).
    meter: Option<sled::IVec>,
}

impl Record {
    /// The meter the message is of: its topic. None only for a record that names none (a bug or
    /// a damaged store).
    pub fn meter(&self) -> Option<&str> {
        std::str::from_utf8(self.meter.as_deref()?).ok()
    }

    /// A record read from a block; without a stored meter (an older store's), the meter is read
    /// from its JSON.
    fn new(seq: u64, payload: sled::IVec, meter: Option<sled::IVec>) -> Record {
        let meter = meter.or_else(|| {
            #[derive(serde::Deserialize)]
            struct Named<'a> {
                #[serde(borrow)]
                meter: std::borrow::Cow<'a, str>,
            }
            let named = serde_json::from_slice::<Named<'_>>(&payload).ok()?;
            Some(sled::IVec::from(named.meter.as_bytes()))
        });
        Record {
            seq,
            payload,
            meter,
        }
    }
}

/// What [`Store::replay`] found.
#[derive(Debug, Default)]
pub struct Replay {
    pub records: Vec<Record>,
    /// Seq ranges (inclusive) of the span asked that the store no longer holds.
    pub gone: Vec<(u64, u64)>,
    /// The span was cut by the limit: the rest starts here.
    pub next: Option<u64>,
}

/// The outcome of one append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Appended {
    /// Seqs given to the messages: `first..first + count`.
    pub first: u64,
    pub count: u64,
    /// Oldest unsent records removed to stay within `store_max_mb`, and the seq range they had.
    pub evicted: u64,
    pub evicted_range: Option<(u64, u64)>,
    /// Records removed to make room that the live audit had not persisted (their readings are
    /// missing from the audit).
    pub audit_evicted: u64,
    /// The store could not write: the messages went to the in-memory queue for the publisher
    /// ([`fallback`]); `evicted` is then what the queue's bound pushed out.
    pub in_memory: u64,
}

/// What making room for an append removed: records never delivered, the bytes of the blocks
/// removed, and their seq range.
struct Evicted {
    records: u64,
    bytes: u64,
    range: Option<(u64, u64)>,
    /// Of the removed records, those the live audit had not persisted.
    unaudited: u64,
}

/// Summary of the store for `status` and health.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct StoreStats {
    /// Records not yet acknowledged by the broker.
    pub backlog: u64,
    /// Approximate size (key + payload + overhead) of the stored records, bytes: the backlog and
    /// the delivered records the live audit has not counted yet (what `store_max_mb` bounds).
    pub backlog_bytes: u64,
    /// The oldest unsent record: seq and poll time (ms since the epoch).
    pub oldest_seq: Option<u64>,
    pub oldest_ts_ms: Option<i64>,
    /// The seq the next poll will get.
    pub next_seq: u64,
    /// Records evicted because the store was full, since the store was created.
    pub evicted: u64,
}

impl Store {
    /// Open the store in `dir` for the running agent. A store that cannot be read is moved aside
    /// to `dir.corrupt-<UTC timestamp>` and a fresh one started (logged as an error, and visible
    /// in `moved_aside`). A store locked by another process is an error.
    pub fn open_or_recover(dir: &Path, store_max_mb: u64) -> anyhow::Result<Store> {
        let (db, aside) = match open_classified(dir, LOCK_WAIT, Flusher::Agent) {
            Ok(db) => (db, None),
            Err(OpenError::Corrupt { dir, source }) => {
                let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
                let mut aside = dir.clone().into_os_string();
                aside.push(format!(".corrupt-{stamp}"));
                let aside = PathBuf::from(aside);
                std::fs::rename(&dir, &aside).with_context(|| {
                    format!(
                        "the store at {} is unreadable ({source}) and cannot be moved aside to {}",
                        dir.display(),
                        aside.display()
                    )
                })?;
                tracing::error!(
                    store = %dir.display(),
                    moved_to = %aside.display(),
                    error = %source,
                    "the store was unreadable: moved it aside and started a fresh one; unsent records in it were not delivered"
                );
                (
                    open_classified(&dir, LOCK_WAIT, Flusher::Agent)?,
                    Some(aside),
                )
            }
            Err(OpenError::Io { dir, source }) if is_full_or_failing(&source) => {
                // A full disk or an I/O error must not stop the agent (systemd would restart it
                // into the same failure): it runs, counts the polls it cannot store as lost and
                // opens the store as soon as it can.
                tracing::error!(
                    store = %dir.display(),
                    error = %source,
                    "cannot open the store: polls are counted as lost until it can be opened (retried with backoff)"
                );
                return Ok(Store::unopened(&dir, store_max_mb));
            }
            Err(e) => return Err(e.into()),
        };
        let store = Store::from_db(dir, db, store_max_mb, aside)?;
        store.continue_seq()?;
        Ok(store)
    }

    /// A store with nothing in it that had a life before (a seq floor, a status file, a store
    /// moved aside): seqs continue above every seq given before, and what the subscriber will
    /// never see (the old store's unsent records, the seqs jumped over) counts as evicted.
    fn continue_seq(&self) -> anyhow::Result<()> {
        let hd = self.h()?;
        let fresh = hd.tree.range(seq_key(0)..META_PREFIX).next().is_none()
            && read_u64(&hd.tree, "next_seq")?.is_none();
        if !fresh {
            return Ok(());
        }
        let floor = seq_floor::read(&self.dir, self.moved_aside.as_deref());
        let hint = self
            .moved_aside
            .as_deref()
            .and_then(status_hint)
            .or_else(|| status_hint(&self.dir))
            .filter(|s| s.next_seq > 1);
        // The lowest seq the old store may have been at, and where to continue.
        let (lower, next) = match (floor, &hint) {
            (None, None) => return Ok(()),
            (Some(f), None) => (f.saturating_sub(seq_floor::STEP).max(1), f),
            (Some(f), Some(h)) => (h.next_seq, f.max(h.next_seq)),
            // An old agent's store without a floor: the status file is a few seconds old; a gap
            // is honest, a reuse is not.
            (None, Some(h)) => (h.next_seq, h.next_seq + 100_000),
        };
        if next <= 1 {
            return Ok(());
        }
        let unsent = hint.as_ref().map_or(0, |h| h.evicted + h.backlog);
        let lost = unsent + next.saturating_sub(lower);
        let mut w = self.lock();
        w.next_seq = next;
        w.floor.reserve(next)?;
        hd.tree.insert(meta_key("next_seq"), &next.to_be_bytes())?;
        hd.tree.insert(meta_key("evicted"), &lost.to_be_bytes())?;
        hd.sync()?;
        w.evicted_stored = lost;
        self.durable_next.store(next, Ordering::Release);
        self.evicted.store(lost, Ordering::Release);
        tracing::error!(
            store = %self.dir.display(),
            next_seq = next,
            evicted = lost,
            "the store was lost or replaced: seq continues above every seq given before; the old store's unsent records and the seqs jumped over are counted as evicted"
        );
        Ok(())
    }

    /// Open the store in `dir` as it is (for `status`); fails if another process holds it.
    pub fn open_existing(dir: &Path, store_max_mb: u64) -> Result<Store, OpenError> {
        let db = open_classified(dir, std::time::Duration::ZERO, Flusher::Agent)?;
        Store::from_db(dir, db, store_max_mb, None).map_err(|e| OpenError::Io {
            dir: dir.to_path_buf(),
            source: sled::Error::Unsupported(e.to_string()),
        })
    }

    fn from_db(
        dir: &Path,
        db: sled::Db,
        store_max_mb: u64,
        moved_aside: Option<PathBuf>,
    ) -> anyhow::Result<Store> {
        let (found, hd) = scan(dir, Handle::new(db, dir)?, u64::MAX)?;
        let next_seq = read_u64(&hd.tree, "next_seq")?
            .unwrap_or(1)
            .max(found.last + 1)
            .max(1);
        let evicted = read_u64(&hd.tree, "evicted")?.unwrap_or(0);
        let floor = seq_floor::read(dir, moved_aside.as_deref()).unwrap_or(0);
        let mut partial = BTreeMap::new();
        let acked = add_acked(&mut partial, &found.acked);
        Ok(Store {
            dir: dir.to_path_buf(),
            handle: RwLock::new(Some(hd)),
            write_lock: Mutex::new(WriterState {
                next_seq,
                partial,
                floor: seq_floor::SeqFloor::new(dir, floor),
                broken_from: None,
                attached: true,
                evicted_stored: evicted,
                audit_gate: None,
                uplink_gate: None,
                acked_below: 0,
                retained: 0,
                retain_bytes: 0,
                release_from: 0,
                recycling: None,
            }),
            durable_next: AtomicU64::new(next_seq),
            backlog: AtomicU64::new(found.backlog.saturating_sub(acked)),
            bytes: AtomicU64::new(found.bytes),
            evicted: AtomicU64::new(evicted),
            max_live_bytes: AtomicU64::new(live_budget(store_max_mb)),
            moved_aside,
            syncs: AtomicU64::new(0),
            written_since_open: AtomicU64::new(0),
            audit_evicted: AtomicU64::new(0),
            fallback: Default::default(),
        })
    }

    /// A store that could not be opened: every poll is counted as lost until [`Store::reopen`]
    /// succeeds. Seqs continue from the floor kept outside the store.
    fn unopened(dir: &Path, store_max_mb: u64) -> Store {
        let floor = seq_floor::read(dir, None).unwrap_or(0);
        let next_seq = floor.max(1);
        Store {
            dir: dir.to_path_buf(),
            handle: RwLock::new(None),
            write_lock: Mutex::new(WriterState {
                next_seq,
                partial: BTreeMap::new(),
                floor: seq_floor::SeqFloor::new(dir, floor),
                broken_from: Some(next_seq),
                attached: false,
                evicted_stored: 0,
                audit_gate: None,
                uplink_gate: None,
                acked_below: 0,
                retained: 0,
                retain_bytes: 0,
                release_from: 0,
                recycling: None,
            }),
            durable_next: AtomicU64::new(next_seq),
            backlog: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            max_live_bytes: AtomicU64::new(live_budget(store_max_mb)),
            moved_aside: None,
            syncs: AtomicU64::new(0),
            written_since_open: AtomicU64::new(0),
            audit_evicted: AtomicU64::new(0),
            fallback: Default::default(),
        }
    }

    /// The open database, or [`Unavailable`].
    fn h(&self) -> anyhow::Result<Handle> {
        self.handle
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| Unavailable(self.dir.clone()).into())
    }

    /// Whether the store is unusable (a write failed, or it could not be opened) and waits for
    /// [`Store::reopen`].
    pub fn is_broken(&self) -> bool {
        self.lock().broken_from.is_some()
    }

    /// A write or a flush failed: sled refuses everything after an I/O error, so the database is
    /// dropped, and every record not yet flushed counts as lost (evicted) until a reopen finds it
    /// on disk after all.
    fn fail_locked(&self, w: &mut WriterState) {
        if w.broken_from.is_none() {
            let from = self.durable_next.load(Ordering::Acquire).min(w.next_seq);
            w.broken_from = Some(from);
            self.evicted.fetch_add(w.next_seq - from, Ordering::AcqRel);
        }
        *self.handle.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Whether the database should be reopened to let go of the records it holds in memory:
    /// [`RECYCLE_BYTES`] written since it was opened, and a backlog at least that large (while
    /// the broker acknowledges, records are deleted and their memory goes with them).
    pub fn recycle_due(&self) -> bool {
        self.written_since_open.load(Ordering::Acquire) >= RECYCLE_BYTES
            && self.bytes.load(Ordering::Acquire) >= RECYCLE_BYTES
    }

    /// Flush, close and reopen the database (the caller has dropped every other handle on it,
    /// such as the audit engine's): memory flat whatever the backlog (see [`RECYCLE_BYTES`]).
    /// The counters stay; nothing is rescanned.
    ///
    /// The reopen itself runs without the writer's lock: it takes sled tens of milliseconds (more
    /// with a debug build or a busy machine), and the publisher and the status file take that lock
    /// on the async runtime's threads. Held across the reopen, it stalled both runtime threads and
    /// with them the poller: with delivered records kept for replays (which keep the store above
    /// [`RECYCLE_BYTES`], so a recycle every 2 MB written), audit_model's polls came late enough to
    /// miss hours (per-source loads 1-28 % off the truth). Meanwhile reads find the store
    /// [`Unavailable`] (the publisher goes on with what it has), and acknowledgements wait in
    /// `recycling` to be applied after the reopen.
    pub fn recycle(&self) -> anyhow::Result<()> {
        let mut w = self.lock();
        if w.broken_from.is_some() || w.recycling.is_some() {
            return Ok(());
        }
        let hd = self.h()?;
        if let Err(e) = hd.sync() {
            drop(hd);
            self.fail_locked(&mut w);
            return Err(e);
        }
        drop(hd);
        *self.handle.write().unwrap_or_else(|p| p.into_inner()) = None;
        w.recycling = Some(Vec::new());
        drop(w);
        let opened = open_classified(&self.dir, LOCK_WAIT, Flusher::Agent)
            .map_err(anyhow::Error::from)
            .and_then(|db| Handle::new(db, &self.dir));
        let mut w = self.lock();
        let mut acked = w.recycling.take().unwrap_or_default();
        acked.sort_unstable();
        acked.dedup();
        match opened {
            Ok(hd) => {
                *self.handle.write().unwrap_or_else(|p| p.into_inner()) = Some(hd.clone());
                self.written_since_open.store(0, Ordering::Release);
                if !acked.is_empty() {
                    if let Err(e) = self.remove_locked(&mut w, &hd, &acked) {
                        tracing::debug!(error = %format!("{e:#}"), "cannot delete acknowledged records");
                        drop(hd);
                        self.fail_locked(&mut w);
                    }
                }
                Ok(())
            }
            Err(e) => {
                // Everything was flushed: nothing is lost; the writer reopens it like after a
                // failure (the acknowledgements are lost with the memory of them: those records go
                // again, which at-least-once allows).
                self.fail_locked(&mut w);
                Err(e)
            }
        }
    }

    /// Open the database again after a failure (the caller has dropped every other handle on
    /// it, such as the audit engine's). Records counted lost that are on disk after all are taken
    /// off the eviction count and published. Ok(None) if the store was not broken.
    pub fn reopen(&self) -> anyhow::Result<Option<Reopened>> {
        let mut w = self.lock();
        let Some(from) = w.broken_from else {
            return Ok(None);
        };
        *self.handle.write().unwrap_or_else(|p| p.into_inner()) = None;
        let db = open_classified(&self.dir, LOCK_WAIT, Flusher::Agent)?;
        let (found, hd) = scan(&self.dir, Handle::new(db, &self.dir)?, from)?;
        let disk_next = read_u64(&hd.tree, "next_seq")?
            .unwrap_or(1)
            .max(found.last + 1);
        let mut evicted = self.evicted.load(Ordering::Acquire);
        if !w.attached {
            // Opened for the first time: its own count, and the seqs between its end and the
            // floor the agent continued from.
            evicted += read_u64(&hd.tree, "evicted")?.unwrap_or(0) + from.saturating_sub(disk_next);
        }
        let survived = found.from_on.min(evicted);
        evicted -= survived;
        w.next_seq = w.next_seq.max(disk_next);
        w.partial.retain(|first, _| found.blocks.contains(first));
        w.release_from = 0;
        add_acked(&mut w.partial, &found.acked);
        let acked: u64 = w.partial.values().map(|p| p.n_acked).sum();
        self.backlog
            .store(found.backlog.saturating_sub(acked), Ordering::Release);
        self.bytes.store(found.bytes, Ordering::Release);
        self.evicted.store(evicted, Ordering::Release);
        self.durable_next.store(w.next_seq, Ordering::Release);
        w.broken_from = None;
        w.attached = true;
        *self.handle.write().unwrap_or_else(|p| p.into_inner()) = Some(hd);
        Ok(Some(Reopened { survived, evicted }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WriterState> {
        // A panic while holding the lock cannot leave the counters half-written (they are plain
        // integers updated after the batch), so a poisoned lock is still usable.
        self.write_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The underlying database (for the audit engine's own trees), unless the store is
    /// unusable. Must be dropped before [`Store::reopen`].
    pub fn db(&self) -> Option<sled::Db> {
        self.h().ok().map(|hd| hd.db)
    }

    /// Give `msgs` their seqs (in order), serialise them and write them with the next seq in one
    /// atomic batch, evicting the oldest records first if the store would exceed its bound.
    /// Not yet durable: call [`Store::flush`] before publishing. (The agent appends through
    /// [`Store::append_with`]; this is for the tests and `bench drain`.)
    #[cfg(any(test, feature = "demo"))]
    pub fn append(&self, msgs: &mut [DataMessage]) -> anyhow::Result<Appended> {
        self.append_with(msgs.len(), |i, seq, meter, out| {
            let Some(m) = msgs.get_mut(i) else {
                return false;
            };
            m.seq = seq;
            meter.push_str(&m.meter);
            payload::encode(m, out);
            true
        })
    }

    /// [`Store::append`] of `count` messages written by `payload(i, seq, meter, out)`: writes the
    /// name of the i-th message's meter to `meter`, appends its JSON payload, numbered `seq`, to
    /// `out` and returns true (false: the message is left out and gets no seq). The messages go in
    /// blocks of consecutive seqs.
    ///
    /// On an error (full disk, I/O error, or the store unusable since one) the messages keep
    /// their seqs and count as lost (evicted): a subscriber sees the gap.
    pub fn append_with(
        &self,
        count: usize,
        mut payload: impl FnMut(usize, u64, &mut String, &mut Vec<u8>) -> bool,
    ) -> anyhow::Result<Appended> {
        if count == 0 {
            return Ok(Appended::default());
        }
        let mut w = self.lock();
        let first = w.next_seq;
        if w.broken_from.is_some() {
            // The disk cannot take them: numbered as ever and kept in memory for the publisher, so
            // that they reach the broker while it works; only what the memory bound pushes out is
            // evicted. A seq published must be below the floor on disk, which a restart continues
            // above: up to the floor reserved before the outage (10,000 seqs ahead), not past it
            // (a full disk cannot raise it; a store that could not be opened at start has none
            // reserved), where the polls keep their seqs but count as evicted, as before.
            let end = w.next_seq + count as u64;
            let publishable = end <= w.floor.value();
            let mut queue = self.fallback();
            let (mut n, mut dropped) = (0u64, 0u64);
            for i in 0..count {
                let (mut meter, mut out) = (String::new(), Vec::new());
                let seq = w.next_seq;
                if payload(i, seq, &mut meter, &mut out) {
                    w.next_seq += 1;
                    n += 1;
                    if publishable {
                        let r = Record::new(seq, out.into(), Some(meter.as_bytes().into()));
                        dropped += queue.push(r, fallback::MAX_BYTES);
                    } else {
                        dropped += 1;
                    }
                }
            }
            drop(queue);
            self.evicted.fetch_add(dropped, Ordering::AcqRel);
            // Below `durable_next` is what the publisher may send: these are as kept as they get.
            self.durable_next.fetch_max(w.next_seq, Ordering::AcqRel);
            return Ok(Appended {
                first,
                count: n,
                evicted: dropped,
                in_memory: n,
                ..Appended::default()
            });
        }
        let mut blocks: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut added = 0u64;
        let mut next = first;
        let mut block_first = first;
        let mut builder = block::Builder::new();
        for i in 0..count {
            let (meter, out) = builder.begin_record();
            if payload(i, next, meter, out) {
                added += record_size(builder.end_record());
                next += 1;
            } else {
                builder.abandon_record();
            }
            if builder.full() {
                blocks.push((block_first, builder.take()));
                block_first = next;
            }
        }
        if builder.records() > 0 {
            blocks.push((block_first, builder.take()));
        }
        let count = next - first;
        let written = w
            .floor
            .reserve(next)
            .map_err(anyhow::Error::from)
            .and_then(|()| self.write_blocks(&mut w, blocks, added, next));
        let Evicted {
            records: evicted,
            bytes: freed,
            range,
            unaudited,
        } = match written {
            Ok(r) => r,
            Err(e) => {
                w.next_seq = next;
                self.fail_locked(&mut w);
                return Err(e);
            }
        };
        w.next_seq = next;
        self.written_since_open.fetch_add(added, Ordering::AcqRel);
        self.bytes.fetch_add(added, Ordering::AcqRel);
        self.bytes.fetch_sub(
            freed.min(self.bytes.load(Ordering::Acquire)),
            Ordering::AcqRel,
        );
        self.backlog.fetch_add(count, Ordering::AcqRel);
        self.backlog.fetch_sub(
            evicted.min(self.backlog.load(Ordering::Acquire)),
            Ordering::AcqRel,
        );
        self.evicted.fetch_add(evicted, Ordering::AcqRel);
        w.evicted_stored = self.evicted.load(Ordering::Acquire);
        self.audit_evicted.fetch_add(unaudited, Ordering::AcqRel);
        Ok(Appended {
            first,
            count,
            evicted,
            evicted_range: range,
            audit_evicted: unaudited,
            in_memory: 0,
        })
    }

    /// Write new blocks and the next seq, evicting the oldest blocks first if the live data
    /// would exceed its bound.
    fn write_blocks(
        &self,
        w: &mut WriterState,
        blocks: Vec<(u64, Vec<u8>)>,
        added: u64,
        next: u64,
    ) -> anyhow::Result<Evicted> {
        let hd = self.h()?;
        let mut batch = sled::Batch::default();
        let mut evicted = 0u64;
        let mut freed = 0u64;
        let mut range: Option<(u64, u64)> = None;
        let mut unaudited = 0u64;
        let current = self.bytes.load(Ordering::Acquire);
        let max_live = self.max_live_bytes.load(Ordering::Acquire);
        if current + added > max_live {
            let need = current + added - max_live;
            for kv in hd.tree.range(seq_key(0)..META_PREFIX) {
                if freed >= need {
                    break;
                }
                let (k, v) = kv?;
                let Some(b) = decode(&hd.tree, &k, v) else {
                    continue;
                };
                batch.remove(k);
                freed += b.bytes();
                // Records already acknowledged were delivered: not lost.
                let acked = match w.partial.remove(&b.first) {
                    Some(p) if p.retained => {
                        w.retained = w.retained.saturating_sub(p.bytes);
                        p.n_acked
                    }
                    Some(p) => p.n_acked,
                    None => 0,
                };
                evicted += b.count() - acked;
                if let Some(gate) = w.audit_gate {
                    unaudited += b.end().saturating_sub(b.first.max(gate));
                }
                range = Some((range.map_or(b.first, |r| r.0), b.end() - 1));
            }
        }
        let total_evicted = self.evicted.load(Ordering::Acquire) + evicted;
        if freed > 0 {
            // Evicted blocks (some maybe all delivered, kept for the audit), the eviction count,
            // the new blocks and the next seq: all or nothing.
            batch.insert(meta_key("evicted"), &total_evicted.to_be_bytes());
            for (at, value) in blocks {
                batch.insert(&seq_key(at), value);
            }
            batch.insert(meta_key("next_seq"), &next.to_be_bytes());
            hd.tree.apply_batch(batch)?;
        } else {
            // No batch: a sled batch writes its log buffer out twice (before and after a
            // manifest), an fsync-free write each, at every round of polls. Single inserts in seq
            // order are enough: sled recovers a prefix of its log, and at open the next seq is
            // at least past the last stored record, whether or not `next_seq` made it.
            for (at, value) in blocks {
                hd.tree.insert(seq_key(at), value)?;
            }
            hd.tree.insert(meta_key("next_seq"), &next.to_be_bytes())?;
            if total_evicted != w.evicted_stored {
                // Polls lost while the store was unusable, or a correction: now on disk too.
                hd.tree
                    .insert(meta_key("evicted"), &total_evicted.to_be_bytes())?;
            }
        }
        Ok(Evicted {
            records: evicted,
            bytes: freed,
            range,
            unaudited,
        })
    }

    /// Make everything appended so far durable (fsync), then allow it to be published. On an
    /// error the store becomes unusable and what was not durable counts as lost (see
    /// [`Store::reopen`]).
    pub fn flush(&self) -> anyhow::Result<()> {
        let next = self.lock().next_seq;
        let hd = self.h()?;
        if let Err(e) = hd.sync() {
            drop(hd);
            self.fail_locked(&mut self.lock());
            return Err(e);
        }
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.durable_next.fetch_max(next, Ordering::AcqRel);
        Ok(())
    }

    /// fdatasyncs of the store's log since it was opened.
    #[cfg(test)]
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Every seq below this is durable and may be published.
    pub fn durable_next(&self) -> u64 {
        self.durable_next.load(Ordering::Acquire)
    }

    /// The stored block holding `seq`, if any.
    fn block_of(tree: &sled::Tree, seq: u64) -> anyhow::Result<Option<Stored>> {
        let Some((k, v)) = last_at_or_below(tree, seq)? else {
            return Ok(None);
        };
        Ok(decode(tree, &k, v).filter(|b| b.end() > seq))
    }

    /// Up to `limit` durable records with seq >= `from` not yet acknowledged, oldest first.
    ///
    /// While the store is unusable this is empty; a read error makes it unusable (the store
    /// writer reopens it): the publisher goes on with what it has in flight.
    pub fn read_from(&self, from: u64, limit: usize) -> anyhow::Result<Vec<Record>> {
        // Polls the disk could not take come from memory, in seq order with the stored ones.
        let memory = self.fallback().from(from, limit);
        match self.read_range(from, self.durable_next(), limit, true) {
            Ok(out) if memory.is_empty() => Ok(out),
            Ok(out) => {
                let mut all: Vec<Record> = out.into_iter().chain(memory).collect();
                all.sort_by_key(|r| r.seq);
                // A record of a failed write may have reached the disk after all: the same bytes.
                all.dedup_by_key(|r| r.seq);
                all.truncate(limit);
                Ok(all)
            }
            Err(e) => {
                if !e.is::<Unavailable>() {
                    tracing::debug!(error = %format!("{e:#}"), "cannot read the store");
                    self.fail_locked(&mut self.lock());
                }
                Ok(memory)
            }
        }
    }

    fn fallback(&self) -> std::sync::MutexGuard<'_, fallback::Fallback> {
        self.fallback.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// [`Store::read_from`] up to `end` (exclusive), durable or not.
    /// Records `from..end`, at most `limit`; with `skip_acked`, not those of partly acknowledged blocks
    /// already acknowledged (what the publisher must not send again).
    fn read_range(
        &self,
        from: u64,
        end: u64,
        limit: usize,
        skip_acked: bool,
    ) -> anyhow::Result<Vec<Record>> {
        let mut out = Vec::with_capacity(limit.min(256));
        if from >= end || limit == 0 {
            return Ok(out);
        }
        // Blocks are written whole under the writer's lock before `durable_next` passes them:
        // a block starting below `end` is durable entirely.
        let hd = self.h()?;
        let start = match Store::block_of(&hd.tree, from)? {
            Some(b) => b.first,
            None => from,
        };
        let w = skip_acked.then(|| self.lock());
        for kv in hd.tree.range(seq_key(start)..seq_key(end)) {
            let (k, v) = kv?;
            let Some(b) = decode(&hd.tree, &k, v) else {
                continue;
            };
            let partial = w.as_ref().and_then(|w| w.partial.get(&b.first));
            for i in 0..b.spans.len() {
                let seq = b.first + i as u64;
                if seq < from || partial.is_some_and(|p| p.is_acked(i as u64)) {
                    continue;
                }
                if let Some((payload, meter)) = b.record(i) {
                    out.push(Record::new(seq, payload, meter));
                }
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
        Ok(out)
    }

    /// The broker acknowledged these seqs: a block is deleted once all its records are (not
    /// fsynced; after a crash a deleted block may come back and be sent again, which
    /// at-least-once allows).
    ///
    /// A record evicted (store full) while it was in flight was delivered after all: it is taken
    /// off the eviction count, which thus counts exactly the seqs a subscriber never sees.
    ///
    /// While the store is unusable nothing is deleted (the records go again later); a write error
    /// makes it unusable (the store writer reopens it).
    pub fn remove_acked(&self, seqs: &[u64]) -> anyhow::Result<()> {
        if seqs.is_empty() {
            return Ok(());
        }
        let mut seqs = seqs.to_vec();
        seqs.sort_unstable();
        seqs.dedup();
        // Those sent from memory are done with; the rest are the store's.
        let seqs = self.fallback().remove_acked(&seqs);
        if seqs.is_empty() {
            return Ok(());
        }
        let mut w = self.lock();
        if let Some(later) = w.recycling.as_mut() {
            // The database is being reopened: applied once it is.
            later.extend_from_slice(&seqs);
            return Ok(());
        }
        let Ok(hd) = self.h() else {
            return Ok(());
        };
        if let Err(e) = self.remove_locked(&mut w, &hd, &seqs) {
            tracing::debug!(error = %format!("{e:#}"), "cannot delete acknowledged records");
            drop(hd);
            self.fail_locked(&mut w);
        }
        Ok(())
    }

    fn remove_locked(&self, w: &mut WriterState, hd: &Handle, seqs: &[u64]) -> anyhow::Result<()> {
        let mut acked = 0u64;
        let mut freed = 0u64;
        let mut delivered_evicted = 0u64;
        // A block was delivered entirely but is kept for the audit.
        let mut kept = false;
        // The block of the previous seq (seqs are sorted: consecutive ones share blocks).
        let mut current: Option<(u64, u64)> = None;
        let gate = w.keep_gate();
        for &seq in seqs {
            let first = match current {
                Some((f, e)) if (f..e).contains(&seq) => f,
                _ => match Store::block_of(&hd.tree, seq)? {
                    Some(b) => {
                        w.partial
                            .entry(b.first)
                            .or_insert_with(|| Partial::new(b.count(), b.bytes()));
                        w.release_from = w.release_from.min(b.first);
                        current = Some((b.first, b.end()));
                        b.first
                    }
                    None => {
                        delivered_evicted += 1;
                        continue;
                    }
                },
            };
            let Some(p) = w.partial.get_mut(&first) else {
                continue;
            };
            if p.ack(seq - first) {
                acked += 1;
            }
            let audited = gate.is_none_or(|gate| first + p.count <= gate);
            if p.n_acked >= p.count && !audited {
                kept = true;
            }
            if p.n_acked >= p.count && audited && !p.retained {
                // Delivered: kept for replays (trimmed below to its bound).
                p.retained = true;
                w.retained += p.bytes;
                kept |= w.retain_bytes > 0;
            }
        }
        freed += self.trim_retained(w, hd)?;
        if kept {
            // Remembered on disk, so that after a crash these blocks are not sent again: every
            // record below the oldest stored block not delivered entirely was delivered.
            let mut below = w.next_seq;
            for k in hd.tree.range(seq_key(w.acked_below)..META_PREFIX).keys() {
                let k = k?;
                let Some(first) = key_seq(&k) else { continue };
                if w.partial.get(&first).is_none_or(|p| p.n_acked < p.count) {
                    below = first;
                    break;
                }
            }
            if below > w.acked_below {
                hd.tree
                    .insert(meta_key("acked_below"), &below.to_be_bytes())?;
                w.acked_below = below;
            }
        }
        let evicted = self.evicted.load(Ordering::Acquire);
        let delivered_evicted = delivered_evicted.min(evicted);
        if delivered_evicted > 0 {
            let total = evicted - delivered_evicted;
            hd.tree.insert(meta_key("evicted"), &total.to_be_bytes())?;
            self.evicted.store(total, Ordering::Release);
            w.evicted_stored = total;
        }
        self.backlog.fetch_sub(
            acked.min(self.backlog.load(Ordering::Acquire)),
            Ordering::AcqRel,
        );
        self.bytes.fetch_sub(
            freed.min(self.bytes.load(Ordering::Acquire)),
            Ordering::AcqRel,
        );
        Ok(())
    }

    /// Gate the deletion of acknowledged blocks on the live audit: `Some(next)` once the audit has
    /// persisted every record below `next` (acknowledged blocks past it are kept until it passes
    /// them), None when there is no live audit (or it was switched off: nothing is kept for it).
    /// Acknowledged blocks the new gate lets go are deleted now.
    pub fn set_audit_gate(&self, gate: Option<u64>) {
        let mut w = self.lock();
        w.audit_gate = gate;
        self.release_kept(w);
    }

    /// Gate the deletion of acknowledged blocks on the HJ 212 uplink, as [`Store::set_audit_gate`]
    /// does on the audit: `Some(next)` once the uplink has persisted what it made of every record
    /// below `next`; None when there is no uplink.
    pub fn set_uplink_gate(&self, gate: Option<u64>) {
        let mut w = self.lock();
        w.uplink_gate = gate;
        self.release_kept(w);
    }

    /// Delete the acknowledged blocks that no reader keeps any longer.
    fn release_kept(&self, mut w: std::sync::MutexGuard<'_, WriterState>) {
        let gate = w.keep_gate();
        let mut added = 0;
        let end = gate.unwrap_or(u64::MAX);
        let from = w.release_from.min(end);
        let mut first_open = None;
        let mut after_last = from;
        for (&first, p) in w.partial.range_mut(from..end) {
            if p.n_acked >= p.count && !p.retained && gate.is_none_or(|g| first + p.count <= g) {
                p.retained = true;
                added += p.bytes;
            }
            if !p.retained && first_open.is_none() {
                first_open = Some(first);
            }
            after_last = first + 1;
        }
        w.release_from = first_open.unwrap_or(after_last);
        w.retained += added;
        if w.retained <= w.retain_bytes {
            return;
        }
        let Ok(hd) = self.h() else {
            // Unusable: the blocks stay acknowledged in memory and go at the next gate move or
            // come back (sent again) after a reopen scan drops them from memory.
            return;
        };
        let freed = match self.trim_retained(&mut w, &hd) {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(error = %format!("{e:#}"), "cannot delete acknowledged records");
                drop(hd);
                self.fail_locked(&mut w);
                0
            }
        };
        self.bytes.fetch_sub(
            freed.min(self.bytes.load(Ordering::Acquire)),
            Ordering::AcqRel,
        );
    }

    /// Delete the oldest delivered blocks kept for replays until they fit their bound; returns the
    /// bytes freed. A plain remove (no batch: see `append_with`); a block that comes back after a
    /// crash is below `acked_below`, so delivered, not sent again.
    fn trim_retained(&self, w: &mut WriterState, hd: &Handle) -> anyhow::Result<u64> {
        let mut freed = 0;
        while w.retained > w.retain_bytes {
            let Some((first, bytes)) = w
                .partial
                .iter()
                .find(|(_, p)| p.retained)
                .map(|(&f, p)| (f, p.bytes))
            else {
                w.retained = 0;
                break;
            };
            hd.tree.remove(seq_key(first))?;
            w.partial.remove(&first);
            w.retained = w.retained.saturating_sub(bytes);
            freed += bytes;
        }
        Ok(freed)
    }

    /// Apply `[gateway] retain_delivered_mb`: delivered records kept for replays, within the
    /// live budget as `store_max_mb` is. A smaller bound deletes the oldest now.
    pub fn set_retain_mb(&self, mb: u64) {
        let mut w = self.lock();
        w.retain_bytes = if mb == 0 { 0 } else { live_budget(mb) };
        self.release_kept(w);
    }

    /// `P/cmd/replay`: up to `limit` stored records with seq in `from..=to`, delivered or not,
    /// oldest first; the ranges of that span this store no longer holds (evicted, trimmed, never
    /// durable here); and where to go on when `limit` cut the span short. Seqs not yet given
    /// (at or past the durable end) are neither held nor gone.
    pub fn replay(&self, from: u64, to: u64, limit: usize) -> anyhow::Result<Replay> {
        let end = to.saturating_add(1).min(self.durable_next());
        let mut records = match self.read_range(from, end, limit, false) {
            Ok(r) => r,
            // Being reopened (a recycle) or waiting for a reopen: nothing is known gone; the
            // publisher asks again from `from` at its next turn.
            Err(e) if e.is::<Unavailable>() && from < end => {
                return Ok(Replay {
                    next: Some(from),
                    ..Replay::default()
                })
            }
            Err(e) => return Err(e),
        };
        // Whole blocks are read: the records of the last one past `to` are not asked for.
        let cut = records.len() >= limit && limit > 0;
        records.retain(|r| r.seq < end);
        let full = cut && records.len() >= limit;
        let covered_end = match records.last() {
            Some(r) if full => r.seq + 1,
            _ => end,
        };
        let mut gone = Vec::new();
        let mut next = from;
        for r in &records {
            if r.seq > next {
                gone.push((next, r.seq - 1));
            }
            next = r.seq + 1;
        }
        if covered_end > next {
            gone.push((next, covered_end - 1));
        }
        Ok(Replay {
            records,
            gone,
            next: (full && covered_end <= to).then_some(covered_end),
        })
    }

    /// Records evicted (store full) before the live audit had persisted them, since start.
    pub fn audit_evicted(&self) -> u64 {
        self.audit_evicted.load(Ordering::Acquire)
    }

    /// Up to `limit` durable records with seq >= `from`, acknowledged or not, oldest first, as
    /// (seq, payload): what the live audit reads. Err while the store is unusable.
    pub fn read_for_audit(
        &self,
        from: u64,
        limit: usize,
    ) -> anyhow::Result<Vec<(u64, sled::IVec)>> {
        // Acknowledged records too, and without the writer's lock: a slow audit never holds it.
        let records = self.read_range(from, self.durable_next(), limit, false)?;
        Ok(records.into_iter().map(|r| (r.seq, r.payload)).collect())
    }

    /// Backlog, oldest unsent, next seq, evictions.
    pub fn stats(&self) -> StoreStats {
        // From the first block not delivered entirely: below it are only delivered records kept for
        // replays or the audit. Read from 0, the scan went through all of them (decoding each block,
        // 1 MiB of sled cache) under the writer's lock at every status write: with the default
        // retention the publisher and the poller waited on it (audit_model's loads 1-28 % off).
        let from = self.lock().acked_below;
        let oldest = self
            .read_range(from, u64::MAX, 1, true)
            .ok()
            .and_then(|r| r.into_iter().next());
        let (oldest_seq, oldest_ts_ms) = match oldest {
            Some(r) => (
                Some(r.seq),
                serde_json::from_slice::<DataMessage>(&r.payload)
                    .ok()
                    .map(|m| m.ts),
            ),
            None => (None, None),
        };
        let (oldest_seq, oldest_ts_ms) = match (oldest_seq, self.fallback().oldest()) {
            (None, Some(r)) => (
                Some(r.seq),
                serde_json::from_slice::<DataMessage>(&r.payload)
                    .ok()
                    .map(|m| m.ts),
            ),
            (s, _) => (s, oldest_ts_ms),
        };
        StoreStats {
            backlog: self.backlog(),
            backlog_bytes: self.bytes.load(Ordering::Acquire),
            oldest_seq,
            oldest_ts_ms,
            next_seq: self.lock().next_seq,
            evicted: self.evicted.load(Ordering::Acquire),
        }
    }

    /// Apply a new `store_max_mb` (config reload); a smaller bound evicts at the next append.
    pub fn set_max_mb(&self, store_max_mb: u64) {
        self.max_live_bytes
            .store(live_budget(store_max_mb), Ordering::Release);
    }

    /// The seq the next poll will get (no store access).
    pub fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    /// Records evicted since the store was created.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Acquire)
    }

    /// Records not yet acknowledged (in the store, and in memory while it could not write).
    pub fn backlog(&self) -> u64 {
        self.backlog.load(Ordering::Acquire) + self.fallback().len()
    }
}

/// The live-data budget for `store_max_mb`, bytes.
fn live_budget(store_max_mb: u64) -> u64 {
    ((store_max_mb.max(1) * 1024 * 1024) as f64 * LIVE_FRACTION) as u64
}

fn record_size(payload: usize) -> u64 {
    8 + payload as u64 + RECORD_OVERHEAD
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use plantmeter_common::{PointValue, Quality};

    fn msg(meter: &str) -> DataMessage {
        DataMessage {
            seq: 0,
            ts: 1_700_000_000_000,
            meter: meter.into(),
            points: vec![PointValue {
                name: "p".into(),
                value: Some(1.5),
                unit: "kW".into(),
                quality: Quality::Good,
            }],
        }
    }

    /// The forward-only predecessor lookup agrees with a plain search for every seq: at a key,
    /// between keys, in long gaps, below the first key and past the last, with meta keys after.
    #[test]
    fn the_key_at_or_below_a_seq_is_found_reading_forward() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("t").unwrap();
        let keys: Vec<u64> = vec![3, 4, 5, 9, 10, 100, 101, 1_000, 1_025, 70_000, 70_001];
        for k in &keys {
            tree.insert(seq_key(*k), &k.to_be_bytes()).unwrap();
        }
        tree.insert(meta_key("next_seq"), b"x").unwrap();
        let mut probes: Vec<u64> = (0..1_100).chain(69_990..70_010).collect();
        probes.extend([u64::MAX / 2, u64::MAX - 1]);
        for seq in probes {
            let want = keys.iter().copied().filter(|k| *k <= seq).max();
            let got = last_at_or_below(&tree, seq).unwrap().map(|(k, v)| {
                assert_eq!(k.as_ref(), v.as_ref(), "the value is the key's own");
                key_seq(&k).unwrap()
            });
            assert_eq!(got, want, "at or below {seq}");
        }
        let empty = db.open_tree("empty").unwrap();
        assert!(last_at_or_below(&empty, 12).unwrap().is_none());
    }

    /// A store written before records carried their meter (blocks of the first format, lone
    /// JSON records) drains as it is: every record is read with its meter, in seq order, and the
    /// records appended after it carry theirs.
    #[test]
    fn a_store_of_the_previous_format_drains_with_each_record_s_meter() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let json = |seq: u64, meter: &str| {
            let mut m = msg(meter);
            m.seq = seq;
            payload::to_vec(&m)
        };
        {
            let db = open_db(&path).unwrap();
            let tree = db.open_tree(OUTBOX_TREE).unwrap();
            let mut v1 = vec![block::MAGIC_V1];
            for r in [json(1, "boiler"), json(2, "main-power")] {
                v1.extend_from_slice(&(r.len() as u32).to_le_bytes());
                v1.extend_from_slice(&r);
            }
            tree.insert(seq_key(1), v1).unwrap();
            tree.insert(seq_key(3), json(3, "water")).unwrap();
            tree.insert(meta_key("next_seq"), &4u64.to_be_bytes())
                .unwrap();
            db.flush().unwrap();
        }
        let s = Store::open_or_recover(&path, 16).unwrap();
        assert_eq!((s.backlog(), s.next_seq()), (3, 4));
        s.append(&mut [msg("chiller")]).unwrap();
        s.flush().unwrap();
        let records = s.read_from(0, 10).unwrap();
        let got: Vec<(u64, Option<&str>)> = records.iter().map(|r| (r.seq, r.meter())).collect();
        assert_eq!(
            got,
            vec![
                (1, Some("boiler")),
                (2, Some("main-power")),
                (3, Some("water")),
                (4, Some("chiller"))
            ]
        );
        assert_eq!(&records[0].payload[..], &json(1, "boiler")[..]);
        s.remove_acked(&[1, 2, 3, 4]).unwrap();
        assert_eq!(s.backlog(), 0);
        assert!(s.read_from(0, 10).unwrap().is_empty());
    }

    #[test]
    fn seq_is_gapless_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let s = Store::open_or_recover(&path, 16).unwrap();
            let mut m = vec![msg("a"), msg("b")];
            let a = s.append(&mut m).unwrap();
            assert_eq!((a.first, a.count), (1, 2));
            assert_eq!(s.read_from(0, 10).unwrap().len(), 0, "not durable yet");
            s.flush().unwrap();
            let got = s.read_from(0, 10).unwrap();
            assert_eq!(got.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2]);
            s.remove_acked(&[1, 2]).unwrap();
            assert_eq!(s.backlog(), 0);
        }
        let s = Store::open_or_recover(&path, 16).unwrap();
        let mut m = vec![msg("c")];
        assert_eq!(s.append(&mut m).unwrap().first, 3, "seq never reused");
        s.flush().unwrap();
        let Record { seq, payload, .. } = &s.read_from(0, 10).unwrap()[0];
        assert_eq!(*seq, 3);
        let back: DataMessage = serde_json::from_slice(payload).unwrap();
        assert_eq!(back.seq, 3);
        assert_eq!(back.meter, "c");
    }

    #[test]
    fn full_store_evicts_oldest_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let s = Store::open_or_recover(&path, 1).unwrap();
        for _ in 0..10_000 {
            s.append(&mut [msg("a")]).unwrap();
        }
        s.flush().unwrap();
        let st = s.stats();
        assert!(st.evicted > 0);
        assert_eq!(st.backlog + st.evicted, 10_000);
        assert!(st.backlog_bytes <= 512 * 1024);
        assert_eq!(st.oldest_seq, Some(st.evicted + 1), "the oldest went first");
        drop(s);
        let s = Store::open_or_recover(&path, 1).unwrap();
        assert_eq!(s.stats().evicted, st.evicted, "eviction count is durable");
    }

    /// Delivered records kept for a lagging audit count against `store_max_mb`; evicted, they are
    /// not lost for delivery but for the audit, and counted as such.
    #[test]
    fn records_kept_for_the_audit_are_bounded_and_their_eviction_counted() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_or_recover(&dir.path().join("db"), 1).unwrap();
        s.set_audit_gate(Some(0));
        let mut audit_evicted = 0;
        for _ in 0..100 {
            let mut round: Vec<DataMessage> = (0..100).map(|_| msg("a")).collect();
            audit_evicted += s.append(&mut round).unwrap().audit_evicted;
            s.flush().unwrap();
            let sent: Vec<u64> = s
                .read_from(0, 100_000)
                .unwrap()
                .iter()
                .map(|r| r.seq)
                .collect();
            s.remove_acked(&sent).unwrap();
        }
        let st = s.stats();
        assert_eq!((st.backlog, st.evicted), (0, 0), "all delivered");
        assert!(
            st.backlog_bytes <= 512 * 1024,
            "bounded: {}",
            st.backlog_bytes
        );
        assert!(audit_evicted > 0);
        assert_eq!(s.audit_evicted(), audit_evicted);
        let kept = s.read_for_audit(0, 100_000).unwrap();
        assert_eq!(
            kept.len() as u64 + audit_evicted,
            10_000,
            "each record is either kept for the audit or counted"
        );
        // The audit passes them: they go.
        s.set_audit_gate(Some(s.next_seq()));
        assert_eq!(s.stats().backlog_bytes, 0);
        assert!(s.read_for_audit(0, 10).unwrap().is_empty());
    }

    #[test]
    fn a_record_evicted_while_in_flight_and_then_acknowledged_is_not_counted_lost() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_or_recover(&dir.path().join("db"), 1).unwrap();
        for _ in 0..8_000 {
            s.append(&mut [msg("a")]).unwrap();
        }
        s.flush().unwrap();
        // The publisher reads the oldest ten and sends them...
        let inflight: Vec<u64> = s.read_from(0, 10).unwrap().iter().map(|r| r.seq).collect();
        let evicted_before = s.evicted();
        // ...while polls go on and evict them...
        for _ in 0..200 {
            s.append(&mut [msg("a")]).unwrap();
        }
        let evicted = s.evicted();
        assert!(evicted >= evicted_before + 10);
        // ...then the broker acknowledges them: delivered, so not lost.
        s.remove_acked(&inflight).unwrap();
        assert_eq!(s.evicted(), evicted - 10);
        drop(s);
        let s = Store::open_or_recover(&dir.path().join("db"), 1).unwrap();
        assert_eq!(s.evicted(), evicted - 10, "the correction is durable");
    }

    fn seq_keys(s: &Store) -> Vec<u64> {
        s.h()
            .unwrap()
            .tree
            .range(seq_key(0)..META_PREFIX)
            .keys()
            .filter_map(|k| key_seq(&k.unwrap()))
            .collect()
    }

    #[test]
    fn a_round_of_polls_is_one_block_deleted_once_all_of_it_is_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let s = Store::open_or_recover(&path, 16).unwrap();
            let mut round: Vec<DataMessage> = (0..50).map(|i| msg(&format!("m{i}"))).collect();
            s.append(&mut round).unwrap();
            s.flush().unwrap();
            assert_eq!(seq_keys(&s), vec![1], "one key for the round");
            let got = s.read_from(0, 1000).unwrap();
            assert_eq!(got.len(), 50);
            for (i, Record { seq, payload, .. }) in got.iter().enumerate() {
                let m: DataMessage = serde_json::from_slice(payload).unwrap();
                assert_eq!(
                    (*seq, m.seq, m.meter.clone()),
                    (i as u64 + 1, *seq, format!("m{i}"))
                );
            }
            // Part of it acknowledged: not sent again, the block stays.
            s.remove_acked(&(1..=20).collect::<Vec<_>>()).unwrap();
            assert_eq!(s.backlog(), 30);
            let rest: Vec<u64> = s
                .read_from(0, 1000)
                .unwrap()
                .iter()
                .map(|r| r.seq)
                .collect();
            assert_eq!(rest, (21..=50).collect::<Vec<_>>());
            assert_eq!(s.read_from(30, 5).unwrap()[0].seq, 30);
            assert_eq!(s.stats().oldest_seq, Some(21));
            assert_eq!(seq_keys(&s), vec![1]);
        }
        // A crash loses which records of the block were acknowledged: all of it goes again.
        let s = Store::open_or_recover(&path, 16).unwrap();
        assert_eq!(s.backlog(), 50);
        assert_eq!(s.read_from(0, 1000).unwrap().len(), 50);
        s.remove_acked(&(1..=50).collect::<Vec<_>>()).unwrap();
        assert_eq!((s.backlog(), s.stats().backlog_bytes), (0, 0));
        assert!(seq_keys(&s).is_empty(), "deleted once all acknowledged");
        assert!(s.read_from(0, 10).unwrap().is_empty());
    }

    #[test]
    fn delivered_records_are_kept_for_replays_within_their_bound_and_gaps_are_reported_gone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let s = Store::open_or_recover(&path, 16).unwrap();
        // Each round one block of 10 records of ~200 bytes; keep ~3 rounds.
        let round_bytes = {
            let mut r: Vec<DataMessage> = (0..10).map(|i| msg(&format!("m{i}"))).collect();
            s.append(&mut r).unwrap();
            s.stats().backlog_bytes
        };
        s.set_retain_mb(1);
        let budget = live_budget(1);
        s.lock().retain_bytes = 3 * round_bytes + round_bytes / 2;
        assert!(budget > 0);
        for _ in 1..10 {
            let mut r: Vec<DataMessage> = (0..10).map(|i| msg(&format!("m{i}"))).collect();
            s.append(&mut r).unwrap();
        }
        s.flush().unwrap();
        // Delivered: not sent again, not in the backlog, but held for a replay.
        s.remove_acked(&(1..=100).collect::<Vec<_>>()).unwrap();
        assert_eq!(s.backlog(), 0);
        assert!(s.read_from(0, 1000).unwrap().is_empty());
        assert_eq!(
            seq_keys(&s),
            vec![71, 81, 91],
            "the newest three rounds kept"
        );
        let r = s.replay(60, 95, 1000).unwrap();
        let seqs: Vec<u64> = r.records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (71..=95).collect::<Vec<_>>());
        assert_eq!(r.gone, vec![(60, 70)]);
        assert_eq!(r.next, None);
        // The payload is the message as first published.
        let m: DataMessage = serde_json::from_slice(&r.records[0].payload).unwrap();
        assert_eq!(m.seq, 71);
        // A limit cuts the span: the rest starts after the last record given.
        let r = s.replay(85, 200, 5).unwrap();
        assert_eq!(
            r.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![85, 86, 87, 88, 89]
        );
        assert_eq!((r.gone.clone(), r.next), (vec![], Some(90)));
        // Seqs not given yet are neither held nor gone.
        let r = s.replay(99, 500, 1000).unwrap();
        assert_eq!((r.records.len(), r.gone.clone(), r.next), (2, vec![], None));
        // No retention: delivered blocks go at once.
        s.set_retain_mb(0);
        assert!(seq_keys(&s).is_empty());
        assert_eq!(s.replay(1, 100, 1000).unwrap().gone, vec![(1, 100)]);
    }

    /// With delivered records kept for replays, `status` still names the oldest unsent record
    /// (read from the first block not delivered entirely), and a replay asked while the database is
    /// being reopened reports nothing gone: the publisher asks again.
    #[test]
    fn the_oldest_unsent_is_found_past_the_records_kept_for_replays() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_or_recover(&dir.path().join("db"), 64).unwrap();
        s.set_retain_mb(16);
        for _ in 0..20 {
            s.append(&mut round(10)).unwrap();
        }
        s.flush().unwrap();
        s.remove_acked(&(1..=150).collect::<Vec<_>>()).unwrap();
        assert_eq!(seq_keys(&s).len(), 20, "delivered rounds kept for replays");
        let st = s.stats();
        assert_eq!((st.backlog, st.oldest_seq), (50, Some(151)));
        assert!(st.oldest_ts_ms.is_some());
        let kept = s.handle.write().unwrap().take();
        let r = s.replay(1, 100, 1000).unwrap();
        assert_eq!((r.records.len(), r.gone, r.next), (0, vec![], Some(1)));
        *s.handle.write().unwrap() = kept;
        assert_eq!(s.replay(1, 100, 1000).unwrap().records.len(), 100);
    }

    /// A recycle reopens the database without the writer's lock: acknowledgements that arrive
    /// meanwhile are applied once it is open again, none lost, none applied twice.
    #[test]
    fn acknowledgements_during_a_recycle_are_applied_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(Store::open_or_recover(&dir.path().join("db"), 64).unwrap());
        s.set_retain_mb(1);
        for _ in 0..50 {
            s.append(&mut round(20)).unwrap();
        }
        s.flush().unwrap();
        let recycler = {
            let s = s.clone();
            std::thread::spawn(move || {
                for _ in 0..5 {
                    s.recycle().unwrap();
                }
            })
        };
        for first in (1..=1000u64).step_by(10) {
            s.remove_acked(&(first..first + 10).collect::<Vec<_>>())
                .unwrap();
        }
        recycler.join().unwrap();
        assert!(!s.is_broken());
        assert_eq!(s.backlog(), 0, "every acknowledgement applied");
        assert!(
            s.read_from(0, 2000).unwrap().is_empty(),
            "nothing sent again"
        );
        assert_eq!(s.stats().oldest_seq, None);
        assert_eq!(s.evicted(), 0);
    }

    #[test]
    fn large_batches_are_split_into_bounded_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_or_recover(&dir.path().join("db"), 64).unwrap();
        let mut many: Vec<DataMessage> = (0..1000).map(|_| msg("a")).collect();
        let a = s.append(&mut many).unwrap();
        assert_eq!((a.first, a.count), (1, 1000));
        s.flush().unwrap();
        let keys = seq_keys(&s);
        assert_eq!(keys, vec![1, 257, 513, 769]);
        let seqs: Vec<u64> = s
            .read_from(300, 2000)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(seqs, (300..=1000).collect::<Vec<_>>());
        let seqs: Vec<u64> = s.read_from(0, 300).unwrap().iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (1..=300).collect::<Vec<_>>());
    }

    #[test]
    fn evicting_a_partly_acknowledged_block_counts_only_what_was_never_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_or_recover(&dir.path().join("db"), 1).unwrap();
        let mut first: Vec<DataMessage> = (0..100).map(|_| msg("a")).collect();
        s.append(&mut first).unwrap();
        s.flush().unwrap();
        s.remove_acked(&(1..=40).collect::<Vec<_>>()).unwrap();
        // Fill the store until the first block goes.
        while s.evicted() == 0 {
            s.append(&mut [msg("a")]).unwrap();
        }
        assert_eq!(s.evicted(), 60, "40 of the block's 100 were delivered");
        assert_eq!(s.stats().oldest_seq, Some(101));
        // The 60 in flight are acknowledged after all.
        s.remove_acked(&(41..=100).collect::<Vec<_>>()).unwrap();
        assert_eq!(s.evicted(), 0);
    }

    #[test]
    fn records_of_an_older_store_one_json_per_key_are_read_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let s = Store::open_or_recover(&path, 16).unwrap();
            for seq in 1..=3u64 {
                let mut m = msg("old");
                m.seq = seq;
                s.h()
                    .unwrap()
                    .tree
                    .insert(seq_key(seq), payload::to_vec(&m))
                    .unwrap();
            }
            s.h()
                .unwrap()
                .tree
                .insert(meta_key("next_seq"), &4u64.to_be_bytes())
                .unwrap();
            s.flush().unwrap();
        }
        let s = Store::open_or_recover(&path, 16).unwrap();
        assert_eq!(s.backlog(), 3);
        s.append(&mut [msg("new")]).unwrap();
        s.flush().unwrap();
        let got = s.read_from(0, 10).unwrap();
        let seqs: Vec<u64> = got.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4]);
        let m: DataMessage = serde_json::from_slice(&got[1].payload).unwrap();
        assert_eq!((m.seq, m.meter.as_str()), (2, "old"));
        s.remove_acked(&[1, 2, 3, 4]).unwrap();
        assert!(seq_keys(&s).is_empty());
    }

    #[test]
    fn an_unreadable_block_is_removed_and_the_rest_still_flows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let s = Store::open_or_recover(&path, 16).unwrap();
        s.append(&mut [msg("a")]).unwrap();
        s.h()
            .unwrap()
            .tree
            .insert(seq_key(2), &[0x07u8, 1, 2][..])
            .unwrap();
        s.h()
            .unwrap()
            .tree
            .insert(meta_key("next_seq"), &3u64.to_be_bytes())
            .unwrap();
        drop(s);
        let s = Store::open_or_recover(&path, 16).unwrap();
        s.append(&mut [msg("b")]).unwrap();
        s.flush().unwrap();
        let seqs: Vec<u64> = s.read_from(0, 10).unwrap().iter().map(|r| r.seq).collect();
        assert_eq!(seqs, vec![1, 3]);
        assert_eq!(seq_keys(&s), vec![1, 3]);
    }

    #[test]
    fn unreadable_store_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("conf"), b"this is not a sled config\n").unwrap();
        std::fs::write(path.join("db"), vec![0xAB; 4096]).unwrap();
        let s = Store::open_or_recover(&path, 16).unwrap();
        let aside = s.moved_aside.clone().unwrap();
        assert!(aside.to_string_lossy().contains(".corrupt-"));
        assert!(aside.join("conf").exists());
        assert_eq!(s.stats().backlog, 0);
    }

    #[test]
    fn seq_continues_above_the_old_ones_after_losing_the_store_and_its_status_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let s = Store::open_or_recover(&path, 16).unwrap();
            for _ in 0..3 {
                let mut round: Vec<DataMessage> = (0..10).map(|_| msg("a")).collect();
                s.append(&mut round).unwrap();
            }
            s.flush().unwrap();
            s.remove_acked(&(1..=20).collect::<Vec<_>>()).unwrap();
            std::fs::write(path.join(STATUS_FILE), b"{}").unwrap();
        }
        // The whole data_dir goes: store and status.json.
        std::fs::remove_dir_all(&path).unwrap();
        let s = Store::open_or_recover(&path, 16).unwrap();
        let a = s.append(&mut [msg("b")]).unwrap();
        assert!(a.first > 30, "seq {} reused", a.first);
        // 10 records were unsent and the seqs between 31 and the new one never existed: a
        // subscriber sees a gap, reported as evictions.
        let evicted = s.evicted();
        assert!(evicted >= 10 && evicted >= a.first - 31, "{evicted}");
        s.flush().unwrap();
        drop(s);
        let s = Store::open_or_recover(&path, 16).unwrap();
        assert_eq!(s.evicted(), evicted, "durable");
        assert_eq!(s.next_seq(), a.first + 1);
    }

    /// A process killed while sled wrote a snapshot leaves `snap.<lsn>.generating`, which sled 0.34.7
    /// then reads as the newest snapshot and calls corrupt: the store opens as it was, nothing moved
    /// aside, nothing counted as evicted, no seq reused.
    #[test]
    fn a_snapshot_left_unfinished_by_a_kill_does_not_make_the_store_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let s = Store::open_or_recover(&path, 16).unwrap();
            let mut round: Vec<DataMessage> = (0..10).map(|_| msg("a")).collect();
            s.append(&mut round).unwrap();
            s.flush().unwrap();
        }
        std::fs::write(path.join("snap.7FFFFFFFFFFFFFFF.generating"), b"").unwrap();
        let s = Store::open_or_recover(&path, 16).unwrap();
        assert!(s.moved_aside.is_none(), "moved aside: {:?}", s.moved_aside);
        assert_eq!(s.backlog(), 10);
        assert_eq!(s.evicted(), 0);
        let a = s.append(&mut [msg("b")]).unwrap();
        assert_eq!(a.first, 11);
        assert!(!path.join("snap.7FFFFFFFFFFFFFFF.generating").exists());
    }

    #[test]
    fn a_corrupt_store_moved_aside_reports_its_unsent_records_and_the_jump_as_evicted() {
        for keep_floor in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("db");
            {
                let s = Store::open_or_recover(&path, 16).unwrap();
                let mut round: Vec<DataMessage> = (0..10).map(|_| msg("a")).collect();
                s.append(&mut round).unwrap();
                s.flush().unwrap();
                // What the running agent writes (`state::AgentStatus`), of which the store reads its own figures.
                let st = serde_json::json!({ "pid": 1, "store": s.stats() });
                std::fs::write(path.join(STATUS_FILE), serde_json::to_vec(&st).unwrap()).unwrap();
            }
            if !keep_floor {
                std::fs::remove_file(&seq_floor::candidates(&path)[0]).unwrap();
            }
            std::fs::write(path.join("conf"), b"this is not a sled config\n").unwrap();
            std::fs::write(path.join("db"), vec![0xAB; 4096]).unwrap();
            let s = Store::open_or_recover(&path, 16).unwrap();
            assert!(s.moved_aside.is_some());
            let a = s.append(&mut [msg("b")]).unwrap();
            assert!(a.first > 10, "seq {} reused", a.first);
            assert_eq!(
                s.evicted(),
                10 + (a.first - 11),
                "the 10 unsent records and the seqs jumped over (floor kept: {keep_floor})"
            );
        }
    }

    use plantmeter_tests::Tmpfs;

    fn round(n: usize) -> Vec<DataMessage> {
        (0..n).map(|i| msg(&format!("meter-{i}"))).collect()
    }

    #[test]
    fn a_full_disk_counts_lost_polls_as_evicted_and_the_store_recovers_when_space_returns() {
        let dir = tempfile::tempdir().unwrap();
        let Some(fs) = Tmpfs::mount(&dir.path().join("mnt"), "2m") else {
            return;
        };
        let ballast = fs.path().join("ballast");
        let path = fs.path().join("data");
        let s = Store::open_or_recover(&path, 64).unwrap();
        std::fs::write(&ballast, vec![0u8; 1024 * 1024]).unwrap();
        // Fill the disk: rounds of 50 polls until one cannot be stored.
        let mut stored = 0u64;
        let mut failed_rounds = 0u64;
        for _ in 0..10_000 {
            match s.append(&mut round(50)).and_then(|_| s.flush()) {
                Ok(()) => stored += 50,
                Err(_) => {
                    failed_rounds += 1;
                    break;
                }
            }
        }
        assert_eq!(failed_rounds, 1, "the disk never filled");
        assert!(s.is_broken());
        let lost_in_failed_write = s.evicted();
        assert!(lost_in_failed_write <= 50, "{lost_in_failed_write}");
        // Polls go on while the disk is full: numbered, kept in memory for the publisher (none
        // evicted while the memory bound holds them), nothing fatal.
        let mut in_memory = Vec::new();
        for _ in 0..20 {
            let a = s.append(&mut round(50)).unwrap();
            assert_eq!(a.in_memory, 50);
            in_memory.extend(a.first..a.first + 50);
        }
        assert_eq!(s.evicted(), lost_in_failed_write);
        let sent: Vec<u64> = s
            .read_from(in_memory[0], 100_000)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(sent, in_memory, "the publisher gets them, in seq order");
        assert!(s.remove_acked(&in_memory[..500]).is_ok());
        assert_eq!(s.read_from(0, 100_000).unwrap().len(), 500, "acked ones go");
        // Reopening on a full disk fails, or works until the next write.
        let _ = s.reopen();
        // A restart while the disk is full: the agent starts (degraded or not).
        drop(s);
        let s = Store::open_or_recover(&path, 64).unwrap();
        let before = s.next_seq();
        let _ = s.append(&mut round(50));
        // Space returns: the store recovers by itself.
        std::fs::remove_file(&ballast).unwrap();
        if s.is_broken() {
            s.reopen().unwrap();
        }
        assert!(!s.is_broken());
        let a = s.append(&mut round(50)).unwrap();
        s.flush().unwrap();
        assert!(
            a.first >= before,
            "seq {} reused (was at {before})",
            a.first
        );
        let seqs: Vec<u64> = s
            .read_from(0, 100_000)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        assert!(
            seqs.len() as u64 >= stored,
            "{} of {stored} kept",
            seqs.len()
        );
        assert_eq!(seqs.last(), Some(&(a.first + 49)));
        // Every seq a subscriber will never see is counted: gaps == evictions.
        let gaps = (seqs.last().unwrap() - seqs.first().unwrap() + 1) - seqs.len() as u64
            + (seqs.first().unwrap() - 1);
        assert_eq!(s.evicted(), gaps, "evicted vs seq gaps");
    }

    #[test]
    fn each_flush_fdatasyncs_the_file_sled_writes_its_log_to() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let s = Store::open_or_recover(&path, 16).unwrap();
        let log = path.join(SLED_LOG_FILE);
        let size0 = std::fs::metadata(&log).unwrap().len();
        let syncs0 = s.syncs();
        for i in 1..=3 {
            s.append(&mut round(50)).unwrap();
            s.flush().unwrap();
            assert_eq!(s.syncs(), syncs0 + i, "one fdatasync per round");
        }
        // The file synced is the one the rounds went to.
        assert!(std::fs::metadata(&log).unwrap().len() > size0);
        let held = s.h().unwrap().log;
        let same = std::fs::metadata(&log).unwrap();
        let open = held.metadata().unwrap();
        use std::os::unix::fs::MetadataExt as _;
        assert_eq!((open.dev(), open.ino()), (same.dev(), same.ino()));
    }

    #[test]
    fn a_growing_backlog_recycles_the_database_and_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let s = Store::open_or_recover(&path, 512).unwrap();
        let mut recycled = 0;
        let mut written = 0u64;
        while recycled < 2 {
            s.append(&mut round(200)).unwrap();
            s.flush().unwrap();
            written += 200;
            if s.recycle_due() {
                s.recycle().unwrap();
                recycled += 1;
                assert!(!s.recycle_due());
            }
        }
        let before = s.stats();
        assert!(before.backlog_bytes >= 2 * RECYCLE_BYTES);
        // The scan at open goes over the backlog in chunks, reopening in between.
        drop(s);
        let s = Store::open_or_recover(&path, 512).unwrap();
        let after = s.stats();
        assert_eq!(
            (after.backlog, after.backlog_bytes, after.next_seq),
            (before.backlog, before.backlog_bytes, before.next_seq)
        );
        let seqs: Vec<u64> = s
            .read_from(0, 1_000_000)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(seqs, (1..=written).collect::<Vec<_>>());
        // Acknowledged records stop the recycling: memory goes with deleted records.
        s.remove_acked(&seqs).unwrap();
        s.append(&mut round(200)).unwrap();
        assert!(!s.recycle_due());
        drop(s);
        let s = Store::open_or_recover(&path, 512).unwrap();
        assert_eq!(s.next_seq(), written + 201);
    }

    #[test]
    fn a_locked_store_is_reported_not_moved() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let _held = Store::open_or_recover(&path, 16).unwrap();
        match Store::open_existing(&path, 16) {
            Err(OpenError::Locked(p)) => assert_eq!(p, path),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("opened a locked store"),
        }
        // The audit commands' open says so by its type too (after waiting for the lock a while).
        match open_db(&path) {
            Err(OpenError::Locked(p)) => assert_eq!(p, path),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("opened a locked store"),
        }
    }
}
