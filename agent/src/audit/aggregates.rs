//! The audit's data in sled: hourly aggregates per point, the last reading per point, point ids.
//!
//! One tree, `audit`, so that a flush (aggregates + last readings) is one atomic batch:
//! - `I` + `meter.point` -> point id (u32 BE)
//! - `S` + id (u32 BE) -> `PointState` (first and last good reading, for continuing intervals across restarts
//!   and for placing an import before or after what the store holds)
//! - `C` + id (u32 BE) + chunk number (i64 BE, sign bit flipped so keys sort by time) -> `Chunk`: 8 local
//!   days x 24 hours, about 3.6 kB (few values to read for a report, and small enough for sled to keep inline)
//! - `R` + id (u32 BE) -> `ImportRecord`: span and digest of the rows an import gave the point, so the
//!   same file imported again changes nothing
//! - `N` + id + ts (i64, sign flipped) -> a replacement inferred from a drop (readings around it), so that one
//!   recorded later with `plantmeter replace` can correct it
//! - `A` + id + at (i64, sign flipped) -> the recorded replacement at `at` is counted: the readings around it
//!   (prev_ts, next_ts: i64 LE; empty in stores written before they were kept)
//! - `G` + id + t_a (i64, sign flipped) -> a polling gap the engine counted (`Gap`: t_b, v_a, v_b, the
//!   delta apportioned across it), so that `import` can fill it later; at most [`MAX_GAPS_PER_POINT`] per
//!   point, the oldest dropped first (a gap dropped can no longer be filled: its rows are refused as overlap)
//! - `F` + id + t_a + t_b (i64, sign flipped) -> digest (u64 LE) of the rows an import filled that gap with:
//!   their hours are imported, and the same rows imported again are recognised; bounded like `G`
//! - `Mtz` -> the timezone offset (seconds, i32 LE) the hour grid was built for
//! - `Mfmt` -> the chunk format (u8, 3); older stores are converted on open, newer ones refused
//! - `Mnext` -> the live audit's cursor (u64 BE): every stored record below this seq is in the
//!   aggregates; written in the same batch as them
//! - `Mimp` -> empty: an import is under way (it writes in bounded batches, so that its memory does not
//!   grow with the file); `U` + chunk key -> the chunk as it was before the import (empty: there was none).
//!   An import that does not finish is rolled back from these when the tree is opened again
//!   ([`Aggregates::roll_back_import`]); one that finishes removes `Mimp` with its last batch.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::{bail, Context};
use plantmeter_common::audit::hourly::{
    Chunk, DayBlock, HourAgg, HourGrid, CHUNK_DAYS, CHUNK_FORMAT,
};
use plantmeter_common::audit::intervals::{Applied, Gap, Held, InferredReplacement, LastReading};

/// Gaps (and filled gaps) kept per point: 10 000, at about 50 bytes each half a megabyte, years of a meter
/// that drops out daily.
pub const MAX_GAPS_PER_POINT: usize = 10_000;

/// A polling gap filled by an import: its span (UTC ms) and the digest of the rows inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filled {
    pub t_a: i64,
    pub t_b: i64,
    pub digest: u64,
}

fn flip(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

fn unflip(b: &[u8]) -> Option<i64> {
    Some((u64::from_be_bytes(b.try_into().ok()?) ^ (1 << 63)) as i64)
}

fn gap_key(id: u32, t_a: i64) -> [u8; 13] {
    let mut k = [0u8; 13];
    k[0] = b'G';
    k[1..5].copy_from_slice(&id.to_be_bytes());
    k[5..13].copy_from_slice(&flip(t_a));
    k
}

fn filled_key(id: u32, t_a: i64, t_b: i64) -> [u8; 21] {
    let mut k = [0u8; 21];
    k[0] = b'F';
    k[1..5].copy_from_slice(&id.to_be_bytes());
    k[5..13].copy_from_slice(&flip(t_a));
    k[13..21].copy_from_slice(&flip(t_b));
    k
}

fn point_prefix(tag: u8, id: u32) -> [u8; 5] {
    let mut p = [0u8; 5];
    p[0] = tag;
    p[1..5].copy_from_slice(&id.to_be_bytes());
    p
}

/// The sled tree holding the audit's data.
pub const TREE: &str = "audit";

/// First and last good reading the store has seen of one point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointState {
    /// UTC ms and value of the earliest reading counted.
    pub first_ts: i64,
    pub first_value: f64,
    pub last: LastReading,
}

/// The state as the first version stored it: no held reading.
const STATE_V1_BYTES: usize = 8 + 8 + 8 + 8 + 1;
/// With a held counter drop: flag byte, ts i64, value f64, gap byte.
const STATE_BYTES: usize = STATE_V1_BYTES + 1 + 8 + 8 + 1;

impl PointState {
    fn encode(&self) -> [u8; STATE_BYTES] {
        let mut b = [0u8; STATE_BYTES];
        b[0..8].copy_from_slice(&self.first_ts.to_le_bytes());
        b[8..16].copy_from_slice(&self.first_value.to_le_bytes());
        b[16..24].copy_from_slice(&self.last.ts_ms.to_le_bytes());
        b[24..32].copy_from_slice(&self.last.value.to_le_bytes());
        b[32] = u8::from(self.last.broken);
        if let Some(h) = self.last.held {
            b[33] = 1;
            b[34..42].copy_from_slice(&h.ts_ms.to_le_bytes());
            b[42..50].copy_from_slice(&h.value.to_le_bytes());
            b[50] = u8::from(h.gap);
        }
        b
    }

    /// Decode the current form or the first version's (33 bytes, nothing held).
    fn decode(b: &[u8]) -> Option<PointState> {
        if b.len() != STATE_BYTES && b.len() != STATE_V1_BYTES {
            return None;
        }
        let f = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            a
        };
        let held = (b.len() == STATE_BYTES && b[33] == 1).then(|| Held {
            ts_ms: i64::from_le_bytes(f(34)),
            value: f64::from_le_bytes(f(42)),
            gap: b[50] != 0,
        });
        Some(PointState {
            first_ts: i64::from_le_bytes(f(0)),
            first_value: f64::from_le_bytes(f(8)),
            last: LastReading {
                ts_ms: i64::from_le_bytes(f(16)),
                value: f64::from_le_bytes(f(24)),
                broken: b[32] != 0,
                held,
            },
        })
    }
}

/// What the last import gave one point: its rows' span (UTC ms) and a digest of them (ts and value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportRecord {
    pub first_ts: i64,
    pub last_ts: i64,
    pub digest: u64,
}

impl ImportRecord {
    fn encode(&self) -> [u8; 24] {
        let mut b = [0u8; 24];
        b[0..8].copy_from_slice(&self.first_ts.to_le_bytes());
        b[8..16].copy_from_slice(&self.last_ts.to_le_bytes());
        b[16..24].copy_from_slice(&self.digest.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<ImportRecord> {
        let f = |i: usize| -> Option<[u8; 8]> { b.get(i..i + 8)?.try_into().ok() };
        (b.len() == 24).then_some(())?;
        Some(ImportRecord {
            first_ts: i64::from_le_bytes(f(0)?),
            last_ts: i64::from_le_bytes(f(8)?),
            digest: u64::from_le_bytes(f(16)?),
        })
    }
}

fn import_key(id: u32) -> [u8; 5] {
    let mut k = state_key(id);
    k[0] = b'R';
    k
}

/// Access to the `audit` tree.
pub struct Aggregates {
    tree: sled::Tree,
    ids: HashMap<String, u32>,
    next_id: u32,
}

fn chunk_key(id: u32, chunk: i64) -> [u8; 13] {
    let mut k = [0u8; 13];
    k[0] = b'C';
    k[1..5].copy_from_slice(&id.to_be_bytes());
    k[5..13].copy_from_slice(&((chunk as u64) ^ (1 << 63)).to_be_bytes());
    k
}

/// The marker of an import under way.
const IMPORT_KEY: &[u8] = b"Mimp";
/// Undo records of an import under way are kept in at most this many per batch when removed or restored.
const UNDO_BATCH: usize = 256;

fn undo_key(chunk_key: &[u8; 13]) -> [u8; 14] {
    let mut k = [0u8; 14];
    k[0] = b'U';
    k[1..].copy_from_slice(chunk_key);
    k
}

fn state_key(id: u32) -> [u8; 5] {
    let mut k = [0u8; 5];
    k[0] = b'S';
    k[1..5].copy_from_slice(&id.to_be_bytes());
    k
}

impl Aggregates {
    /// Open the tree; refuse when its hour grid was built for another timezone.
    pub fn open(db: &sled::Db, grid: &HourGrid) -> anyhow::Result<Aggregates> {
        let tree = db
            .open_tree(TREE)
            .context("cannot open the audit tree of the store")?;
        let tz = (grid.offset_ms() / 1000) as i32;
        match tree.get(b"Mtz")? {
            Some(v) if v.len() == 4 => {
                let stored = i32::from_le_bytes([v[0], v[1], v[2], v[3]]);
                if stored != tz {
                    bail!(
                        "the store's hourly audit aggregates are on local hours of UTC{} but [audit] timezone is UTC{}: \
                         put the timezone back, or start from an empty store (a new data_dir) and import again",
                        fmt_offset(stored),
                        fmt_offset(tz)
                    );
                }
            }
            _ => {
                tree.insert(b"Mtz", &tz.to_le_bytes())?;
            }
        }
        migrate(&tree)?;
        roll_back(&tree)?;
        let mut ids = HashMap::new();
        let mut next_id = 0;
        for kv in tree.scan_prefix(b"I") {
            let (k, v) = kv?;
            if v.len() == 4 {
                let id = u32::from_be_bytes([v[0], v[1], v[2], v[3]]);
                next_id = next_id.max(id + 1);
                ids.insert(String::from_utf8_lossy(&k[1..]).into_owned(), id);
            }
        }
        Ok(Aggregates { tree, ids, next_id })
    }

    /// The id of a point (`meter.point`), allocating one (written with `batch`) when new.
    pub fn id(&mut self, name: &str, batch: &mut sled::Batch) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.ids.insert(name.to_string(), id);
        let mut k = Vec::with_capacity(1 + name.len());
        k.push(b'I');
        k.extend_from_slice(name.as_bytes());
        batch.insert(k, &id.to_be_bytes());
        id
    }

    /// The id of a point if it has one.
    pub fn existing_id(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// The stored state of a point; an unreadable one is an error, not a fresh start (which would lose or
    /// double-count the interval across it).
    pub fn state(&self, id: u32) -> anyhow::Result<Option<PointState>> {
        match self.tree.get(state_key(id))? {
            None => Ok(None),
            Some(v) => PointState::decode(&v).map(Some).ok_or_else(|| {
                anyhow::anyhow!(
                    "audit store: the last reading of point id {id} is {} bytes, not a state this version reads \
                     ({STATE_V1_BYTES} or {STATE_BYTES}); was the store written by a newer plantmeter?",
                    v.len()
                )
            }),
        }
    }

    pub fn put_state(batch: &mut sled::Batch, id: u32, s: &PointState) {
        batch.insert(&state_key(id), &s.encode()[..]);
    }

    /// The span (UTC ms) of the rows the last import gave the point named `name`.
    pub fn import_span(&self, name: &str) -> Option<(i64, i64)> {
        let id = *self.ids.get(name)?;
        self.import_record(id)
            .ok()
            .flatten()
            .map(|r| (r.first_ts, r.last_ts))
    }

    /// The live audit's cursor: the next seq of the store to ingest (None: never written).
    pub fn cursor(&self) -> anyhow::Result<Option<u64>> {
        Ok(self
            .tree
            .get(CURSOR_KEY)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes))
    }

    pub fn put_cursor(batch: &mut sled::Batch, next: u64) {
        batch.insert(CURSOR_KEY, &next.to_be_bytes());
    }

    /// What the last import gave a point (None when never imported, or unreadable: then the rows are
    /// judged against the stored readings as new ones).
    pub fn import_record(&self, id: u32) -> anyhow::Result<Option<ImportRecord>> {
        Ok(self
            .tree
            .get(import_key(id))?
            .and_then(|v| ImportRecord::decode(&v)))
    }

    pub fn put_import_record(batch: &mut sled::Batch, id: u32, r: &ImportRecord) {
        batch.insert(&import_key(id), &r.encode()[..]);
    }

    /// The stored chunk of a point.
    pub fn chunk(&self, id: u32, chunk: i64) -> anyhow::Result<Option<Chunk>> {
        match self.tree.get(chunk_key(id, chunk))? {
            Some(v) => Ok(Some(Chunk::decode(&v).with_context(|| {
                format!(
                    "audit store: point id {id}, days from {}",
                    HourGrid::date_of_day(chunk * CHUNK_DAYS)
                )
            })?)),
            None => Ok(None),
        }
    }

    /// Add day blocks of one point to what is stored (read, merge, put in `batch`; one write per chunk).
    pub fn merge_days<'a>(
        &self,
        batch: &mut sled::Batch,
        id: u32,
        days: impl IntoIterator<Item = (i64, &'a DayBlock)>,
    ) -> anyhow::Result<()> {
        let mut chunks: BTreeMap<i64, Chunk> = BTreeMap::new();
        for (day, block) in days {
            let (c, i) = Chunk::locate(day);
            let chunk = match chunks.entry(c) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(self.chunk(id, c)?.unwrap_or_default())
                }
            };
            chunk.0[i].merge(block);
        }
        for (c, chunk) in chunks {
            batch.insert(&chunk_key(id, c)[..], chunk.encode());
        }
        Ok(())
    }

    /// As [`Aggregates::merge_days`] for an import that writes in several batches: the first time it
    /// writes a chunk, the chunk as it was (or its absence) goes into `batch` as an undo record, so that an
    /// import that does not finish can be rolled back. `journaled` holds the chunk keys already recorded.
    /// Returns the number of chunks written.
    pub fn merge_days_undoable<'a>(
        &self,
        batch: &mut sled::Batch,
        id: u32,
        days: impl IntoIterator<Item = (i64, &'a DayBlock)>,
        journaled: &mut HashSet<[u8; 13]>,
    ) -> anyhow::Result<usize> {
        self.merge_days_undoable_minus(batch, id, days, &HashMap::new(), journaled)
    }

    /// As [`Aggregates::merge_days_undoable`], first taking back `minus` from the stored days (a gap's
    /// apportioned share that an import replaces); `minus` holds only days that `days` has too.
    pub fn merge_days_undoable_minus<'a>(
        &self,
        batch: &mut sled::Batch,
        id: u32,
        days: impl IntoIterator<Item = (i64, &'a DayBlock)>,
        minus: &HashMap<i64, DayBlock>,
        journaled: &mut HashSet<[u8; 13]>,
    ) -> anyhow::Result<usize> {
        let days: Vec<(i64, DayBlock)> = days.into_iter().map(|(d, b)| (d, *b)).collect();
        // Each day block goes in once: taking back first, then merging, needs one combined block.
        let mut stored: BTreeMap<i64, Chunk> = BTreeMap::new();
        for (d, _) in &days {
            let c = Chunk::locate(*d).0;
            if let std::collections::btree_map::Entry::Vacant(e) = stored.entry(c) {
                let key = chunk_key(id, c);
                let v = self.tree.get(key)?;
                if journaled.insert(key) {
                    batch.insert(&undo_key(&key)[..], v.as_deref().unwrap_or(&[]));
                }
                e.insert(match v {
                    Some(v) => Chunk::decode(&v).with_context(|| {
                        format!(
                            "audit store: point id {id}, days from {}",
                            HourGrid::date_of_day(c * CHUNK_DAYS)
                        )
                    })?,
                    None => Chunk::default(),
                });
            }
        }
        for (d, b) in &days {
            let (c, i) = Chunk::locate(*d);
            if let Some(chunk) = stored.get_mut(&c) {
                if let Some(m) = minus.get(d) {
                    chunk.0[i].remove(m);
                }
                chunk.0[i].merge(b);
            }
        }
        let n = stored.len();
        for (c, chunk) in stored {
            batch.insert(&chunk_key(id, c)[..], chunk.encode());
        }
        Ok(n)
    }

    /// Record a polling gap of point `id` (see the module's layout).
    pub fn put_gap(batch: &mut sled::Batch, id: u32, g: &Gap) {
        let mut v = [0u8; 32];
        v[0..8].copy_from_slice(&g.t_b.to_le_bytes());
        v[8..16].copy_from_slice(&g.v_a.to_le_bytes());
        v[16..24].copy_from_slice(&g.v_b.to_le_bytes());
        v[24..32].copy_from_slice(&g.delta.to_le_bytes());
        batch.insert(&gap_key(id, g.t_a)[..], &v[..]);
    }

    pub fn remove_gap(batch: &mut sled::Batch, id: u32, t_a: i64) {
        batch.remove(&gap_key(id, t_a)[..]);
    }

    /// The recorded gaps of point `id`, by time (at most [`MAX_GAPS_PER_POINT`]).
    pub fn gaps(&self, id: u32) -> anyhow::Result<Vec<Gap>> {
        let f = |b: &[u8], i: usize| b.get(i..i + 8).and_then(|s| <[u8; 8]>::try_from(s).ok());
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(point_prefix(b'G', id)) {
            let (k, v) = kv?;
            let (Some(t_a), Some(tb), Some(va), Some(vb), Some(d)) = (
                k.get(5..13).and_then(unflip),
                f(&v, 0),
                f(&v, 8),
                f(&v, 16),
                f(&v, 24),
            ) else {
                continue;
            };
            out.push(Gap {
                t_a,
                v_a: f64::from_le_bytes(va),
                t_b: i64::from_le_bytes(tb),
                v_b: f64::from_le_bytes(vb),
                delta: f64::from_le_bytes(d),
            });
        }
        Ok(out)
    }

    /// Record a gap filled by an import.
    pub fn put_filled(batch: &mut sled::Batch, id: u32, f: &Filled) {
        batch.insert(
            &filled_key(id, f.t_a, f.t_b)[..],
            &f.digest.to_le_bytes()[..],
        );
    }

    /// The filled gaps of point `id`, by start.
    pub fn filled(&self, id: u32) -> anyhow::Result<Vec<Filled>> {
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(point_prefix(b'F', id)) {
            let (k, v) = kv?;
            let (Some(t_a), Some(t_b), Ok(d)) = (
                k.get(5..13).and_then(unflip),
                k.get(13..21).and_then(unflip),
                <[u8; 8]>::try_from(v.as_ref()),
            ) else {
                continue;
            };
            out.push(Filled {
                t_a,
                t_b,
                digest: u64::from_le_bytes(d),
            });
        }
        Ok(out)
    }

    /// The spans of the gaps of `name` filled by imports, by start.
    pub fn filled_spans(&self, name: &str) -> Vec<(i64, i64)> {
        let Some(id) = self.existing_id(name) else {
            return Vec::new();
        };
        self.filled(id)
            .unwrap_or_default()
            .iter()
            .map(|f| (f.t_a, f.t_b))
            .collect()
    }

    /// Keep at most [`MAX_GAPS_PER_POINT`] gaps and filled gaps of point `id` once `adding` more are
    /// written with `batch`: the oldest go.
    pub fn prune_gaps(
        &self,
        batch: &mut sled::Batch,
        id: u32,
        adding: usize,
    ) -> anyhow::Result<()> {
        for tag in [b'G', b'F'] {
            let n = self.tree.scan_prefix(point_prefix(tag, id)).count();
            let over = (n + adding).saturating_sub(MAX_GAPS_PER_POINT);
            for kv in self.tree.scan_prefix(point_prefix(tag, id)).take(over) {
                batch.remove(kv?.0);
            }
        }
        Ok(())
    }

    /// Mark an import as under way (in its first batch).
    pub fn put_import_started(batch: &mut sled::Batch) {
        batch.insert(IMPORT_KEY, &[][..]);
    }

    /// Mark the import as finished (in its last batch); its undo records are removed after it.
    pub fn put_import_finished(batch: &mut sled::Batch) {
        batch.remove(IMPORT_KEY);
    }

    /// Remove the undo records of a finished import, in bounded batches.
    pub fn forget_undo(&self) -> anyhow::Result<()> {
        remove_undo(&self.tree, false)
    }

    /// Fill `out` with the dense hourly aggregates of a point for local hours `first_hour ..`.
    pub fn hours(&self, name: &str, first_hour: i64, out: &mut [HourAgg]) -> anyhow::Result<()> {
        out.fill(HourAgg::default());
        let n = out.len();
        let Some(id) = self.existing_id(name) else {
            return Ok(());
        };
        if n == 0 {
            return Ok(());
        }
        let end_hour = first_hour + n as i64;
        let c0 = Chunk::locate(HourGrid::day_of_hour(first_hour)).0;
        let c1 = Chunk::locate(HourGrid::day_of_hour(end_hour - 1)).0 + 1;
        for kv in self.tree.range(chunk_key(id, c0)..chunk_key(id, c1)) {
            let (k, v) = kv?;
            let mut d = [0u8; 8];
            d.copy_from_slice(&k[5..13]);
            let c = (u64::from_be_bytes(d) ^ (1 << 63)) as i64;
            let chunk = Chunk::decode(&v).with_context(|| {
                format!(
                    "audit store: {name}, days from {}",
                    HourGrid::date_of_day(c * CHUNK_DAYS)
                )
            })?;
            for (i, a) in chunk.0.iter().flat_map(|d| d.0.iter()).enumerate() {
                let h = c * CHUNK_DAYS * 24 + i as i64;
                if h >= first_hour && h < end_hour {
                    out[(h - first_hour) as usize] = *a;
                }
            }
        }
        Ok(())
    }

    /// Stored chunks of all points (a measure of the store's growth).
    #[cfg(test)]
    pub fn chunk_count(&self) -> usize {
        self.tree.scan_prefix(b"C").count()
    }

    /// A replacement inferred from a drop of point `id`, kept so that one recorded later can correct it.
    pub fn put_inferred(batch: &mut sled::Batch, id: u32, r: &InferredReplacement) {
        let mut k = [0u8; 13];
        k[0] = b'N';
        k[1..5].copy_from_slice(&id.to_be_bytes());
        k[5..13].copy_from_slice(&((r.ts as u64) ^ (1 << 63)).to_be_bytes());
        let mut v = [0u8; 32];
        v[0..8].copy_from_slice(&r.prev_ts.to_le_bytes());
        v[8..16].copy_from_slice(&r.prev.to_le_bytes());
        v[16..24].copy_from_slice(&r.ts.to_le_bytes());
        v[24..32].copy_from_slice(&r.cur.to_le_bytes());
        batch.insert(&k[..], &v[..]);
    }

    /// The inferred replacements of point `id`.
    pub fn inferred(&self, id: u32) -> Vec<InferredReplacement> {
        let mut p = [0u8; 5];
        p[0] = b'N';
        p[1..5].copy_from_slice(&id.to_be_bytes());
        let f = |b: &[u8], i: usize| b.get(i..i + 8).and_then(|s| <[u8; 8]>::try_from(s).ok());
        self.tree
            .scan_prefix(p)
            .filter_map(|kv| kv.ok())
            .filter_map(|(_, v)| {
                Some(InferredReplacement {
                    prev_ts: i64::from_le_bytes(f(&v, 0)?),
                    prev: f64::from_le_bytes(f(&v, 8)?),
                    ts: i64::from_le_bytes(f(&v, 16)?),
                    cur: f64::from_le_bytes(f(&v, 24)?),
                })
            })
            .collect()
    }

    fn applied_key(id: u32, at_ms: i64) -> [u8; 13] {
        let mut k = [0u8; 13];
        k[0] = b'A';
        k[1..5].copy_from_slice(&id.to_be_bytes());
        k[5..13].copy_from_slice(&((at_ms as u64) ^ (1 << 63)).to_be_bytes());
        k
    }

    /// Mark a recorded replacement of point `id` as counted (exactly, or by correcting an inferred one), with
    /// the readings around it (so that the report can tell which replacement event it is).
    pub fn put_applied(batch: &mut sled::Batch, id: u32, a: &Applied) {
        let mut v = [0u8; 16];
        v[0..8].copy_from_slice(&a.prev_ts.to_le_bytes());
        v[8..16].copy_from_slice(&a.next_ts.to_le_bytes());
        batch.insert(&Self::applied_key(id, a.at_ms)[..], &v[..]);
    }

    pub fn is_applied(&self, id: u32, at_ms: i64) -> bool {
        matches!(
            self.tree.contains_key(Self::applied_key(id, at_ms)),
            Ok(true)
        )
    }

    /// The recorded replacements of point `id` that are counted. A mark written before the readings around
    /// it were kept (empty value) is taken as bracketed by its own instant, where the engine of that version
    /// put its event.
    pub fn applied(&self, id: u32) -> Vec<Applied> {
        let f = |b: &[u8], i: usize| {
            b.get(i..i + 8)
                .and_then(|s| <[u8; 8]>::try_from(s).ok())
                .map(i64::from_le_bytes)
        };
        self.tree
            .scan_prefix(point_prefix(b'A', id))
            .filter_map(|kv| kv.ok())
            .filter_map(|(k, v)| {
                let at_ms = unflip(k.get(5..13)?)?;
                Some(Applied {
                    at_ms,
                    prev_ts: f(&v, 0).unwrap_or(at_ms),
                    next_ts: f(&v, 8).unwrap_or(at_ms),
                })
            })
            .collect()
    }

    /// Whether an import is under way (its marker is stored).
    #[cfg(test)]
    pub fn import_under_way(&self) -> anyhow::Result<bool> {
        Ok(self.tree.contains_key(IMPORT_KEY)?)
    }

    pub fn apply(&self, batch: sled::Batch) -> anyhow::Result<()> {
        self.tree
            .apply_batch(batch)
            .context("cannot write audit aggregates to the store")
    }

    pub fn flush(&self) -> anyhow::Result<()> {
        self.tree
            .flush()
            .context("cannot flush audit aggregates to disk")?;
        Ok(())
    }
}

/// Key of the audit tree's format (u8): the chunk format its hours are stored in.
const FORMAT_KEY: &[u8] = b"Mfmt";
/// Key of the live audit's cursor (see the module's layout).
const CURSOR_KEY: &[u8] = b"Mnext";

/// Bring the audit tree to the current chunk format on open: a tree written by a newer version is refused
/// with a clear error; one written before the format key existed (format 2: gauge hours as interpolated
/// integrals) has its chunks rewritten as format 3 in one atomic batch, their values unchanged.
fn migrate(tree: &sled::Tree) -> anyhow::Result<()> {
    let stored = tree
        .get(FORMAT_KEY)?
        .map(|v| v.first().copied().unwrap_or(0));
    match stored {
        Some(f) if f == CHUNK_FORMAT => return Ok(()),
        Some(f) if f > CHUNK_FORMAT => bail!(
            "the store's audit aggregates are in format {f}, written by a newer plantmeter; this version reads \
             formats up to {CHUNK_FORMAT}: run the newer version, or start from an empty store (a new data_dir) and import again"
        ),
        _ => {}
    }
    let mut batch = sled::Batch::default();
    let mut n = 0usize;
    for kv in tree.scan_prefix(b"C") {
        let (k, v) = kv?;
        if v.first() == Some(&CHUNK_FORMAT) {
            continue;
        }
        let c = Chunk::decode(&v).with_context(|| {
            format!(
                "audit store: converting the hourly aggregates of point id {} to format {CHUNK_FORMAT}",
                k.get(1..5)
                    .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            )
        })?;
        batch.insert(k, c.encode());
        n += 1;
    }
    batch.insert(FORMAT_KEY, &[CHUNK_FORMAT][..]);
    tree.apply_batch(batch)
        .context("cannot write converted audit aggregates to the store")?;
    if n > 0 {
        tracing::info!(
            chunks = n,
            "audit store: hourly aggregates converted to format {CHUNK_FORMAT}"
        );
    }
    Ok(())
}

fn fmt_offset(secs: i32) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let a = secs.unsigned_abs();
    format!("{sign}{:02}:{:02}", a / 3600, (a % 3600) / 60)
}

/// Remove the undo records (`U...`), restoring each chunk first with `restore`, in batches of at most
/// [`UNDO_BATCH`]: a stop half-way leaves the rest for the next run, and restoring is idempotent.
fn remove_undo(tree: &sled::Tree, restore: bool) -> anyhow::Result<()> {
    loop {
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for kv in tree.scan_prefix(b"U").take(UNDO_BATCH) {
            let (k, v) = kv?;
            if restore {
                let chunk = &k[1..];
                if v.is_empty() {
                    batch.remove(chunk);
                } else {
                    batch.insert(chunk, v);
                }
            }
            batch.remove(k);
            n += 1;
        }
        if n == 0 {
            return Ok(());
        }
        tree.apply_batch(batch)
            .context("cannot remove an import's undo records from the audit store")?;
    }
}

/// Put back what an unfinished import changed (the chunks as they were) and remove its marker.
pub fn roll_back_unfinished_import(db: &sled::Db) -> anyhow::Result<()> {
    let tree = db
        .open_tree(TREE)
        .context("cannot open the audit tree of the store")?;
    roll_back(&tree)
}

/// An import that did not finish (its marker is still there): its chunks put back as they were. Undo
/// records without a marker (a finished import stopped while removing them) are removed.
fn roll_back(tree: &sled::Tree) -> anyhow::Result<()> {
    let under_way = tree.contains_key(IMPORT_KEY)?;
    if under_way {
        tracing::warn!(
            "audit store: an import did not finish; the aggregates it changed are put back as they were"
        );
    }
    remove_undo(tree, under_way)?;
    if under_way {
        tree.remove(IMPORT_KEY)?;
        tree.flush()?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// An import stopped after some of its batches (a crash, a full disk): the next open puts back every
    /// chunk it changed and forgets what it added, so nothing of it stays; a finished import stays.
    #[test]
    fn an_import_that_did_not_finish_is_rolled_back_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::open_db(dir.path()).unwrap();
        let grid = HourGrid::utc();
        let hour = |sum: f64| HourAgg {
            sum,
            covered_ms: 3_600_000,
            ..HourAgg::default()
        };
        let day = |sum: f64| {
            let mut d = DayBlock::default();
            d.0[5] = hour(sum);
            d
        };
        let mut agg = Aggregates::open(&db, &grid).unwrap();
        let mut batch = sled::Batch::default();
        let id = agg.id("power.kwh", &mut batch);
        // what the store held: day 0 (chunk 0)
        agg.merge_days(&mut batch, id, [(0, &day(10.0))]).unwrap();
        agg.apply(batch).unwrap();
        let before = agg.tree.get(chunk_key(id, 0)).unwrap().unwrap();

        // an import: a batch adding to chunk 0 and creating chunk 1, then a crash before its last batch
        let mut journaled = HashSet::new();
        let mut batch = sled::Batch::default();
        Aggregates::put_import_started(&mut batch);
        let n = agg
            .merge_days_undoable(
                &mut batch,
                id,
                [(1, &day(5.0)), (9, &day(7.0))],
                &mut journaled,
            )
            .unwrap();
        assert_eq!(n, 2);
        agg.apply(batch).unwrap();
        let mut batch = sled::Batch::default();
        agg.merge_days_undoable(&mut batch, id, [(2, &day(1.0))], &mut journaled)
            .unwrap();
        agg.apply(batch).unwrap();
        assert!(agg.import_under_way().unwrap());
        assert_ne!(agg.tree.get(chunk_key(id, 0)).unwrap().unwrap(), before);
        drop(agg);

        let agg = Aggregates::open(&db, &grid).unwrap();
        assert!(!agg.import_under_way().unwrap());
        assert_eq!(agg.tree.get(chunk_key(id, 0)).unwrap().unwrap(), before);
        assert!(
            agg.chunk(id, 1).unwrap().is_none(),
            "the chunk the import made is gone"
        );
        assert_eq!(
            agg.tree.scan_prefix(b"U").count(),
            0,
            "no undo records left"
        );

        // the same import finished: it stays, and its undo records are gone
        let mut journaled = HashSet::new();
        let mut batch = sled::Batch::default();
        Aggregates::put_import_started(&mut batch);
        agg.merge_days_undoable(&mut batch, id, [(1, &day(5.0))], &mut journaled)
            .unwrap();
        Aggregates::put_import_finished(&mut batch);
        agg.apply(batch).unwrap();
        agg.forget_undo().unwrap();
        drop(agg);
        let agg = Aggregates::open(&db, &grid).unwrap();
        let mut out = vec![HourAgg::default(); 48];
        agg.hours("power.kwh", 0, &mut out).unwrap();
        assert_eq!((out[5].sum, out[29].sum), (10.0, 5.0));
        assert_eq!(agg.tree.scan_prefix(b"U").count(), 0);
    }

    /// Gaps round-trip, and a point keeps at most [`MAX_GAPS_PER_POINT`] of them: the oldest go first.
    #[test]
    fn gaps_round_trip_and_are_bounded_per_point() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::open_db(dir.path()).unwrap();
        let grid = HourGrid::utc();
        let mut agg = Aggregates::open(&db, &grid).unwrap();
        let mut batch = sled::Batch::default();
        let id = agg.id("power.kwh", &mut batch);
        let other = agg.id("water.m3", &mut batch);
        let gap = |i: i64| Gap {
            t_a: -5 + i * 10,
            v_a: i as f64,
            t_b: i * 10,
            v_b: i as f64 + 0.5,
            delta: 0.5,
        };
        for i in 0..MAX_GAPS_PER_POINT as i64 {
            Aggregates::put_gap(&mut batch, id, &gap(i));
        }
        Aggregates::put_gap(&mut batch, other, &gap(0));
        agg.apply(batch).unwrap();
        assert_eq!(agg.gaps(id).unwrap()[1], gap(1));
        let mut batch = sled::Batch::default();
        let more = 3;
        agg.prune_gaps(&mut batch, id, more).unwrap();
        for i in 0..more as i64 {
            Aggregates::put_gap(&mut batch, id, &gap(MAX_GAPS_PER_POINT as i64 + i));
        }
        agg.apply(batch).unwrap();
        let kept = agg.gaps(id).unwrap();
        assert_eq!(kept.len(), MAX_GAPS_PER_POINT);
        assert_eq!(kept[0], gap(more as i64), "the oldest went");
        assert_eq!(
            agg.gaps(other).unwrap(),
            [gap(0)],
            "other points keep theirs"
        );
    }

    #[test]
    fn state_round_trips_with_a_held_drop_and_reads_the_first_version() {
        let mut s = PointState {
            first_ts: 1,
            first_value: 2.0,
            last: LastReading::new(10, 1_000.0),
        };
        s.last.held = Some(Held {
            ts_ms: 15,
            value: 0.0,
            gap: true,
        });
        s.last.broken = true;
        assert_eq!(PointState::decode(&s.encode()), Some(s));
        // The 33 bytes of the first version: nothing held.
        let v1 = &s.encode()[..STATE_V1_BYTES];
        let back = PointState::decode(v1).unwrap();
        assert_eq!(back.last.held, None);
        assert_eq!(back.last.value, 1_000.0);
        assert_eq!(PointState::decode(&[0u8; 20]), None);
    }

    /// A store written before format 3 (format-2 chunks, no format key) is converted on open and reads the
    /// same; a store marked with a newer format is refused with a message that says so.
    #[test]
    fn old_stores_are_converted_and_newer_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::open_db(dir.path()).unwrap();
        let grid = HourGrid::utc();
        {
            let tree = db.open_tree(TREE).unwrap();
            tree.insert(b"Ipower.kw", &7u32.to_be_bytes()).unwrap();
            // Format 2: 16 bytes per hour; hour 3 of day 0 holds a gauge integral of 50 over 30 minutes.
            let mut v = vec![2u8];
            for i in 0..(CHUNK_DAYS as usize * 24) {
                let (sum, covered) = if i == 3 {
                    (50.0f64, 1_800_000u32)
                } else {
                    (0.0, 0)
                };
                v.extend_from_slice(&sum.to_le_bytes());
                v.extend_from_slice(&covered.to_le_bytes());
                v.extend_from_slice(&[0, 0, 0, 0]);
            }
            tree.insert(chunk_key(7, 0), v).unwrap();
        }
        let agg = Aggregates::open(&db, &grid).unwrap();
        let raw = agg.tree.get(chunk_key(7, 0)).unwrap().unwrap();
        assert_eq!(raw[0], CHUNK_FORMAT);
        assert_eq!(
            agg.tree.get(FORMAT_KEY).unwrap().unwrap().as_ref(),
            &[CHUNK_FORMAT]
        );
        let mut out = vec![HourAgg::default(); 24];
        agg.hours("power.kw", 0, &mut out).unwrap();
        assert_eq!(out[3].gauge_mean(), Some(100.0));
        // Opening again changes nothing.
        drop(agg);
        let agg = Aggregates::open(&db, &grid).unwrap();
        assert_eq!(agg.tree.get(chunk_key(7, 0)).unwrap().unwrap(), raw);

        agg.tree.insert(FORMAT_KEY, &[4u8]).unwrap();
        drop(agg);
        let e = format!("{:#}", Aggregates::open(&db, &grid).err().unwrap());
        assert!(e.contains("format 4, written by a newer plantmeter"), "{e}");

        // An unreadable last-reading state is an error naming the point id, not a silent fresh start.
        let tree = db.open_tree(TREE).unwrap();
        tree.insert(FORMAT_KEY, &[CHUNK_FORMAT]).unwrap();
        tree.insert(state_key(7), &[1u8, 2, 3][..]).unwrap();
        let agg = Aggregates::open(&db, &grid).unwrap();
        let e = format!("{:#}", agg.state(7).unwrap_err());
        assert!(e.contains("point id 7 is 3 bytes"), "{e}");
    }
}
