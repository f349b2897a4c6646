//! The uplink's own durable state: a small sled database in `data_dir/hj212` (its own, so the main
//! store can be recycled and reopened without asking the uplink), one tree with:
//! - `s` the state: the next store seq to read, the statistics of the open intervals, the next
//!   packet id and the last QN's instant: written in the same batch as the packets those produced,
//!   so a crash anywhere rebuilds exactly the same packets from the same readings, once;
//! - `p` + id: the packets waiting to be sent (or acknowledged), as the frames built once (QN and
//!   all), in order;
//! - `h` + CN + interval start: the CP of every interval built, for the platform's history
//!   requests, kept for [`retention_ms`].

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use plantmeter_common::hj212::data::DataCn;
use plantmeter_common::hj212::CpPair;
use serde::{Deserialize, Serialize};

use super::stats::State;

/// sled's page cache: the uplink holds a few hundred small packets at most at a time.
const CACHE_CAPACITY: u64 = 256 * 1024;
/// Packets kept waiting at most; past it the oldest go (logged and counted): a platform away for
/// years must not fill the disk.
pub const MAX_PENDING: u64 = 200_000;
/// History entries returned for one request at most.
pub const MAX_HISTORY: usize = 50_000;

/// How long the CP of an interval is kept for history requests.
pub fn retention_ms(cn: DataCn) -> i64 {
    const DAY: i64 = 86_400_000;
    match cn {
        DataCn::Realtime => 0,
        DataCn::Minute => 14 * DAY,
        DataCn::Hour => 400 * DAY,
        DataCn::Day => 3_700 * DAY,
    }
}

/// What is persisted besides the packets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Persisted {
    /// The next store seq to take in.
    pub cursor: u64,
    pub stats: State,
    pub next_id: u64,
    /// The instant of the last QN given (QNs are unique and increasing).
    pub last_qn_ms: i64,
    /// Packets dropped because [`MAX_PENDING`] were waiting.
    pub dropped: u64,
}

/// A packet waiting for the platform: its frames (one, or its PNUM parts), built once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Queued {
    pub id: u64,
    pub cn: String,
    pub start_ms: i64,
    pub qn: String,
    pub frames: Vec<String>,
}

/// An interval's CP, kept for history requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub start_ms: i64,
    pub cp: Vec<Vec<CpPair>>,
}

pub struct Outbox {
    db: sled::Db,
    tree: sled::Tree,
    pending: AtomicU64,
}

const STATE_KEY: &[u8] = b"s";

fn packet_key(id: u64) -> [u8; 9] {
    let mut k = [b'p'; 9];
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

/// `h` + CN (4 ASCII digits) + start (i64 with the sign bit flipped: sorts as time).
fn history_key(cn: DataCn, start_ms: i64) -> [u8; 13] {
    let mut k = [0u8; 13];
    k[0] = b'h';
    k[1..5].copy_from_slice(cn.code().as_bytes());
    k[5..].copy_from_slice(&((start_ms as u64) ^ (1 << 63)).to_be_bytes());
    k
}

impl Outbox {
    /// Open (or create) the uplink's database in `dir`.
    pub fn open(dir: &Path) -> anyhow::Result<Outbox> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        crate::store::remove_unfinished_snapshots(dir);
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_CAPACITY)
            .segment_size(64 * 1024)
            .mode(sled::Mode::LowSpace)
            .flush_every_ms(None)
            .open()
            .with_context(|| format!("cannot open the HJ 212 uplink's store {}", dir.display()))?;
        let tree = db.open_tree("uplink")?;
        let pending = tree.scan_prefix(b"p").count() as u64;
        Ok(Outbox {
            db,
            tree,
            pending: AtomicU64::new(pending),
        })
    }

    /// The persisted state; None for a new uplink.
    pub fn load(&self) -> anyhow::Result<Option<Persisted>> {
        match self.tree.get(STATE_KEY)? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .context("the HJ 212 uplink's state is unreadable"),
        }
    }

    /// Write the state with the packets and history entries it produced, atomically, and make it
    /// durable. Past [`MAX_PENDING`] the oldest waiting packets go (their count is returned).
    pub fn commit(
        &self,
        state: &mut Persisted,
        packets: &[Queued],
        history: &[(DataCn, HistoryEntry)],
        now_ms: i64,
    ) -> anyhow::Result<u64> {
        let mut batch = sled::Batch::default();
        for q in packets {
            batch.insert(&packet_key(q.id), serde_json::to_vec(q)?);
        }
        for (cn, e) in history {
            batch.insert(&history_key(*cn, e.start_ms), serde_json::to_vec(&e.cp)?);
        }
        let waiting = self.pending.load(Ordering::Acquire) + packets.len() as u64;
        let mut dropped = 0;
        if waiting > MAX_PENDING {
            for kv in self
                .tree
                .scan_prefix(b"p")
                .take((waiting - MAX_PENDING) as usize)
            {
                let (k, _) = kv?;
                batch.remove(k);
                dropped += 1;
            }
        }
        if !history.is_empty() {
            for cn in [DataCn::Minute, DataCn::Hour, DataCn::Day] {
                let before = history_key(cn, now_ms.saturating_sub(retention_ms(cn)));
                for kv in self.tree.range(history_key(cn, i64::MIN)..before) {
                    let (k, _) = kv?;
                    batch.remove(k);
                }
            }
        }
        state.dropped += dropped;
        batch.insert(STATE_KEY, serde_json::to_vec(state)?);
        self.tree.apply_batch(batch)?;
        self.db.flush()?;
        self.pending.store(waiting - dropped, Ordering::Release);
        Ok(dropped)
    }

    /// The oldest waiting packet after `after` (exclusive; None: from the start).
    pub fn next(&self, after: Option<u64>) -> anyhow::Result<Option<Queued>> {
        let from = packet_key(after.map_or(0, |a| a.saturating_add(1)));
        for kv in self.tree.range(from..) {
            let (k, v) = kv?;
            if k.first() != Some(&b'p') {
                break;
            }
            match serde_json::from_slice::<Queued>(&v) {
                Ok(q) => return Ok(Some(q)),
                Err(e) => {
                    tracing::error!(error = %e, "HJ 212: an unreadable waiting packet in the uplink's store: removed");
                    self.tree.remove(k)?;
                    self.pending.fetch_sub(1, Ordering::AcqRel);
                }
            }
        }
        Ok(None)
    }

    /// The packet was delivered (acknowledged, or written without `ack`). Not flushed at once: after
    /// a crash it may go again (at least once), with the same QN.
    pub fn remove(&self, id: u64) -> anyhow::Result<()> {
        if self.tree.remove(packet_key(id))?.is_some() {
            self.pending.fetch_sub(1, Ordering::AcqRel);
        }
        Ok(())
    }

    /// The id of the newest waiting packet (read forward: see `store::last_at_or_below` on why
    /// not sled's `next_back`; this runs only when the uplink's state was unreadable).
    pub fn last_id(&self) -> anyhow::Result<Option<u64>> {
        let mut last = None;
        for kv in self.tree.scan_prefix(b"p") {
            let (k, _) = kv?;
            last = k.get(1..9).and_then(|b| <[u8; 8]>::try_from(b).ok());
        }
        Ok(last.map(u64::from_be_bytes))
    }

    /// Packets waiting.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Acquire)
    }

    /// Intervals of `cn` starting in [begin, end], oldest first, at most [`MAX_HISTORY`].
    pub fn history(
        &self,
        cn: DataCn,
        begin_ms: i64,
        end_ms: i64,
    ) -> anyhow::Result<Vec<HistoryEntry>> {
        let mut out = Vec::new();
        for kv in self
            .tree
            .range(history_key(cn, begin_ms)..=history_key(cn, end_ms))
            .take(MAX_HISTORY)
        {
            let (k, v) = kv?;
            let Some(raw) = k.get(5..13).and_then(|b| <[u8; 8]>::try_from(b).ok()) else {
                continue;
            };
            let start_ms = (u64::from_be_bytes(raw) ^ (1 << 63)) as i64;
            if let Ok(cp) = serde_json::from_slice(&v) {
                out.push(HistoryEntry { start_ms, cp });
            }
        }
        Ok(out)
    }

    /// Make removals durable (at a clean stop).
    pub fn flush(&self) -> anyhow::Result<()> {
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn q(id: u64) -> Queued {
        Queued {
            id,
            cn: "2061".into(),
            start_ms: id as i64 * 3_600_000,
            qn: format!("{id:017}"),
            frames: vec![format!("frame {id}")],
        }
    }

    #[test]
    fn packets_state_and_history_survive_a_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let o = Outbox::open(dir.path()).unwrap();
            assert_eq!(o.load().unwrap(), None);
            let mut st = Persisted {
                cursor: 42,
                next_id: 3,
                ..Default::default()
            };
            let h = |s: i64| {
                (
                    DataCn::Hour,
                    HistoryEntry {
                        start_ms: s,
                        cp: vec![vec![("DataTime".into(), s.to_string())]],
                    },
                )
            };
            o.commit(&mut st, &[q(1), q(2), q(3)], &[h(-5), h(10), h(20)], 30)
                .unwrap();
            o.remove(1).unwrap();
            o.flush().unwrap();
        }
        let o = Outbox::open(dir.path()).unwrap();
        assert_eq!(o.load().unwrap().unwrap().cursor, 42);
        assert_eq!(o.pending(), 2);
        assert_eq!(o.next(None).unwrap(), Some(q(2)));
        assert_eq!(o.next(Some(2)).unwrap(), Some(q(3)));
        assert_eq!(o.next(Some(3)).unwrap(), None);
        assert_eq!(o.last_id().unwrap(), Some(3));
        let got: Vec<i64> = o
            .history(DataCn::Hour, -10, 15)
            .unwrap()
            .iter()
            .map(|e| e.start_ms)
            .collect();
        assert_eq!(got, vec![-5, 10]);
        assert!(o.history(DataCn::Day, -10, 15).unwrap().is_empty());
    }
}
