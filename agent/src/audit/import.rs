//! `plantmeter import --config FILE --csv FILE`: historical readings into the audit's hourly aggregates.
//!
//! Two streaming passes over the file, so that memory does not grow with it and nothing is half-imported:
//! 1. **validate**: every row is read (CSV as RFC 4180 through the `csv` crate: quoted fields, CRLF, a
//!    BOM) and checked: known `meter.point`, a timestamp (RFC 3339, or local `YYYY-MM-DD HH:MM[:SS]` /
//!    `YYYY-MM-DDTHH:MM[:SS]` in `[audit] timezone`) from 2000-01-01 to a day ahead of now, a finite value
//!    of magnitude at most 1e12, rows of one point in time order. Only a few numbers per point are kept.
//!    Any bad row: the first [`MAX_ERRORS_SHOWN`] are listed as `FILE:LINE: message`, the rest counted,
//!    nothing is imported (exit 2). A line longer than [`MAX_LINE_BYTES`] is reported by its number, never
//!    echoed, and never held in memory whole.
//! 2. **import**: the file is read again and each point's rows go through the same interval engine as live
//!    readings; finished chunks of hourly aggregates are encoded as they complete and written in batches of
//!    a few hundred, each with undo records of the chunks it changes; the last batch (last readings, import
//!    records) ends the import. An import that fails, or is stopped, is rolled back from the undo records
//!    (at once, or when the audit store is next opened): all or nothing, and the import's own buffers do
//!    not grow with the file.
//!
//! A point's rows lie entirely before or entirely after what the store already holds of it (history before
//! the agent started, or a continuation), or among its readings: then each row must lie strictly inside a
//! polling gap the store recorded (the last good reading before it and the first after, see
//! [`Gap`]), and it **fills** it: a counter's share apportioned across the gap is taken out of its hours
//! (recomputed exactly as the engine added it) and the interval counted again through the rows, from the
//! reading before the gap to the one after, with the live engine's gap threshold; a gauge's rows add their
//! samples (and the interpolation between them where they are close enough). The rows of a counter must rise
//! from the reading before the gap to the one after, so its total is unchanged. The filled span's hours are
//! imported in the report's provenance; what remains of the gap between the rows is recorded as smaller
//! gaps. A row at a gap's edge equal to the stored reading, or one of the rows that filled a gap before (the
//! same rows: checked by digest), is skipped; any other row among the stored readings is refused by line.
//! Never a period counted twice. Rows equal to the previous row of their point are skipped; the same instant
//! with another value is a conflict. A file imported again changes nothing: each point remembers the span
//! and a digest of the rows it was given. A file grown since (the same rows, then new ones, and nothing
//! polled after them) adds only its new rows.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::FixedOffset;
use plantmeter_common::audit::hourly::{Chunk, DayBlock, HourAgg, HourGrid};
use plantmeter_common::audit::intervals::{
    admit_ts, admit_value, gap_threshold_ms, Gap, LastReading, Tracker,
};
use plantmeter_common::model::format_ts_ms;
use plantmeter_common::plan::Plan;
use plantmeter_common::types::PointKind;

use super::aggregates::{Aggregates, Filled, ImportRecord, PointState};
use crate::exit::BadInput;
use crate::progress::Progress;

#[derive(clap::Args)]
pub struct ImportArgs {
    #[arg(long)]
    pub config: PathBuf,
    /// Header `ts,meter,point,value`.
    #[arg(long)]
    pub csv: PathBuf,
}

/// The exact header of an import file.
pub const HEADER: &str = "ts,meter,point,value";
/// At most this many bad rows are listed; the rest are counted.
pub const MAX_ERRORS_SHOWN: usize = 20;
/// A physical line longer than this (bytes) is an error by itself: no row of `ts,meter,point,value` is
/// near it, and it is neither echoed nor read into memory whole.
pub const MAX_LINE_BYTES: usize = 4096;
/// A bad cell is quoted in an error up to this many characters.
const MAX_ECHO_CHARS: usize = 40;
/// Intervals kept per point to judge its cadence (median) in the validating pass.
const CADENCE_SAMPLES: usize = 1024;

pub fn main(args: ImportArgs) -> anyhow::Result<()> {
    let plan = crate::exit::load_plan(&args.config, crate::exit::Needs::Audit)?;
    let progress = std::io::stderr().is_terminal();
    let now = plantmeter_common::clock::system_ms();
    let checked = validate(&plan, &args.csv, now, progress)?;
    let db = open_store(&plan.gateway.data_dir)?;
    let s = import(&db, &plan, &args.csv, checked, now, progress)?;
    if s.rows == 0 {
        println!(
            "nothing to import: the {} rows of {} were imported before; the store is unchanged",
            s.already,
            args.csv.display()
        );
        return Ok(());
    }
    println!(
        "imported {} rows ({} missing values) of {} points from {} to {}: {} hourly aggregates in {}",
        s.rows,
        s.missing,
        s.points,
        format_ts_ms(s.first_ts),
        format_ts_ms(s.last_ts),
        s.hours,
        plan.gateway.data_dir.display()
    );
    if s.repeated > 0 {
        println!(
            "{} rows equal to the row before them of their point were skipped",
            s.repeated
        );
    }
    if s.already > 0 {
        println!(
            "{} rows of points imported before from the same rows were skipped",
            s.already
        );
    }
    Ok(())
}

/// Open the store, saying clearly when a running agent holds it.
pub fn open_store(dir: &Path) -> anyhow::Result<sled::Db> {
    crate::store::open_db(dir).map_err(|e| match e {
        crate::store::OpenError::Locked(_) => anyhow::anyhow!(
            "the store at {} is in use by another process (is `plantmeter run` running with this config?); stop it first",
            dir.display()
        ),
        e => e.into(),
    })
}

/// The first bad rows of a file, and how many more.
struct Errors {
    file: String,
    shown: Vec<String>,
    more: u64,
}

impl Errors {
    fn new(file: &Path) -> Errors {
        Errors {
            file: file.display().to_string(),
            shown: Vec::new(),
            more: 0,
        }
    }

    fn push(&mut self, line: u64, msg: impl std::fmt::Display) {
        if self.shown.len() < MAX_ERRORS_SHOWN {
            self.shown.push(format!("{}:{line}: {msg}", self.file));
        } else {
            self.more += 1;
        }
    }

    fn is_empty(&self) -> bool {
        self.shown.is_empty()
    }

    fn into_error(self) -> anyhow::Error {
        let total = self.shown.len() as u64 + self.more;
        let mut msg = self.shown;
        if self.more > 0 {
            msg.push(format!(
                "... and {} more bad rows ({total} in all); nothing was imported",
                self.more
            ));
        } else {
            msg.push(format!(
                "{total} bad row{}; nothing was imported",
                if total == 1 { "" } else { "s" }
            ));
        }
        anyhow::Error::new(BadInput(msg.join("\n")))
    }
}

/// A cell quoted in an error: at most [`MAX_ECHO_CHARS`] characters, control characters escaped.
fn echo(cell: &[u8]) -> String {
    let s = String::from_utf8_lossy(cell);
    let mut out: String = s
        .chars()
        .take(MAX_ECHO_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if s.chars().nth(MAX_ECHO_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// Why the guard flagged a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flag {
    /// Longer than [`MAX_LINE_BYTES`]: cut.
    Long,
    /// A quote still open at its end: closed there, since no field of an import file spans lines (an
    /// unclosed quote would otherwise swallow the rest of the file into one record).
    OpenQuote,
}

impl Flag {
    fn message(self) -> String {
        match self {
            Flag::Long => format!("line longer than {MAX_LINE_BYTES} bytes (not shown)"),
            Flag::OpenQuote => "a quoted field is not closed on its line".to_string(),
        }
    }
}

/// The reader under the CSV parser: drops a leading UTF-8 BOM, cuts every physical line longer than
/// [`MAX_LINE_BYTES`] down to that length and closes a quote left open at the end of a line, noting the
/// line's number, so that no record is longer than a line of 4 KiB (a 50 MB line costs no memory).
struct Guard<R> {
    inner: R,
    buf: Vec<u8>,
    start: bool,
    /// Bytes of the current line passed on so far.
    col: usize,
    /// 1-based number of the current line.
    line: u64,
    /// Inside a line that is too long: dropping bytes up to its newline.
    cutting: bool,
    quoted: bool,
    /// A byte that did not fit the caller's buffer.
    carry: Option<u8>,
    /// Lines flagged, not yet taken by the parser's consumer (a few at most: the parser reads ahead by one
    /// buffer only, and each flagged line passes on at least a byte).
    flagged: std::collections::VecDeque<(u64, Flag)>,
}

impl<R: Read> Guard<R> {
    fn new(inner: R) -> Guard<R> {
        Guard {
            inner,
            buf: vec![0; 64 * 1024],
            start: true,
            col: 0,
            line: 1,
            cutting: false,
            quoted: false,
            carry: None,
            flagged: std::collections::VecDeque::new(),
        }
    }
}

impl<R: Read> Read for Guard<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if let Some(b) = self.carry.take() {
            out[0] = b;
            return Ok(1);
        }
        loop {
            // Closing a quote adds a byte per newline: read at most half of what fits (a byte that does
            // not fit all the same, when `out` is one byte, waits in `carry`).
            let want = (out.len() / 2).clamp(1, self.buf.len());
            let n = self.inner.read(&mut self.buf[..want])?;
            if n == 0 {
                return Ok(0);
            }
            let mut input = &self.buf[..n];
            if self.start {
                // A BOM split over two reads is not worth handling: the first read is kilobytes.
                if let Some(rest) = input.strip_prefix(b"\xEF\xBB\xBF") {
                    input = rest;
                }
                self.start = false;
            }
            let mut w = 0;
            let put = |out: &mut [u8], w: &mut usize, b: u8, carry: &mut Option<u8>| {
                if *w < out.len() {
                    out[*w] = b;
                    *w += 1;
                } else {
                    *carry = Some(b);
                }
            };
            for seg in input.split_inclusive(|&b| b == b'\n') {
                let (body, newline) = match seg.split_last() {
                    Some((b'\n', body)) => (body, true),
                    _ => (seg, false),
                };
                if !self.cutting {
                    let room = MAX_LINE_BYTES - self.col;
                    let part = &body[..body.len().min(room)];
                    // Fits: at most half of `out` was read, and every newline adds at most one byte.
                    out[w..w + part.len()].copy_from_slice(part);
                    w += part.len();
                    self.col += part.len();
                    self.quoted ^= part.iter().filter(|&&b| b == b'"').count() % 2 == 1;
                    if body.len() > room {
                        self.cutting = true;
                        self.flagged.push_back((self.line, Flag::Long));
                    }
                }
                if newline {
                    if self.quoted {
                        put(out, &mut w, b'"', &mut self.carry);
                        if !self.cutting {
                            self.flagged.push_back((self.line, Flag::OpenQuote));
                        }
                    }
                    self.line += 1;
                    self.col = 0;
                    self.cutting = false;
                    self.quoted = false;
                    put(out, &mut w, b'\n', &mut self.carry);
                }
            }
            if w > 0 {
                return Ok(w);
            }
        }
    }
}

/// Timestamps of a file: RFC 3339, or local date and time in the audit's timezone (the same formats as
/// `replace --at`).
fn parse_ts(s: &str, tz: FixedOffset) -> Option<i64> {
    plantmeter_common::model::parse_ts_in(s, tz)
}

/// One good row.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Row {
    /// Index of the point in `plan.meters()` / points order.
    point: usize,
    ts: i64,
    /// None when the value cell is empty (a missing reading).
    value: Option<f64>,
    line: u64,
}

/// What one pass sees of a row.
enum Seen {
    Row(Row),
    /// An empty line.
    Blank,
    Bad(u64, String),
}

/// Reads the rows of a file, each checked on its own (the checks across rows are the caller's).
struct Rows<'p> {
    csv: csv::Reader<Guard<File>>,
    record: csv::ByteRecord,
    index: HashMap<&'p str, HashMap<&'p str, usize>>,
    names: Vec<String>,
    tz: FixedOffset,
    now_ms: i64,
    cache: (Vec<u8>, i64),
    /// Bytes read so far (for progress).
    done: u64,
    eof: bool,
}

impl<'p> Rows<'p> {
    /// Open a file and check its header.
    fn open(plan: &'p Plan, file: &Path, now_ms: i64) -> anyhow::Result<Rows<'p>> {
        let f = File::open(file).map_err(|e| {
            anyhow::Error::new(BadInput(format!("{}: cannot read: {e}", file.display())))
        })?;
        let tz = plan
            .audit
            .as_ref()
            .map(|a| a.timezone)
            .ok_or_else(|| anyhow::anyhow!("no [audit] section"))?;
        let mut index: HashMap<&str, HashMap<&str, usize>> = HashMap::new();
        let mut names = Vec::new();
        for m in plan.meters() {
            let e = index.entry(m.name.as_str()).or_default();
            for p in &m.points {
                e.insert(p.name.as_str(), names.len());
                names.push(format!("{}.{}", m.name, p.name));
            }
        }
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(Guard::new(f));
        let mut record = csv::ByteRecord::new();
        let header_ok = match csv.read_byte_record(&mut record) {
            Ok(true) => {
                record.trim();
                record.len() == 4 && record.iter().eq(HEADER.split(',').map(str::as_bytes))
            }
            _ => false,
        };
        let header_flagged = csv.get_ref().flagged.front().is_some_and(|f| f.0 == 1);
        if !header_ok || header_flagged {
            let found = if header_flagged {
                format!("a line over {MAX_LINE_BYTES} bytes or with an open quote")
            } else {
                format!(
                    "`{}`",
                    echo(&record.iter().collect::<Vec<_>>().join(&b","[..]))
                )
            };
            return Err(anyhow::Error::new(BadInput(format!(
                "{}:1: the header must be exactly `{HEADER}`, found {found}; nothing was imported",
                file.display()
            ))));
        }
        Ok(Rows {
            csv,
            record,
            index,
            names,
            tz,
            now_ms,
            cache: (Vec::new(), 0),
            done: 0,
            eof: false,
        })
    }

    /// The next row, blank line or bad row; None at the end of the file.
    fn next(&mut self) -> Option<Seen> {
        // Lines found too long before the record about to be read are reported first, by number.
        let next_line = self.csv.position().line();
        if let Some(&(l, flag)) = self.csv.get_ref().flagged.front() {
            if l < next_line || self.eof {
                self.csv.get_mut().flagged.pop_front();
                return Some(Seen::Bad(l, flag.message()));
            }
        }
        if self.eof {
            return None;
        }
        let ok = match self.csv.read_byte_record(&mut self.record) {
            Ok(ok) => ok,
            Err(e) => {
                let line = e.position().map_or(next_line, csv::Position::line);
                self.eof = true;
                let why = match e.kind() {
                    csv::ErrorKind::Io(e) => format!("cannot read: {e}"),
                    _ => "not a CSV row".to_string(),
                };
                return Some(Seen::Bad(line, why));
            }
        };
        self.done = self.csv.position().byte();
        if !ok {
            self.eof = true;
            return self.next();
        }
        let line = self
            .record
            .position()
            .map_or(next_line, csv::Position::line);
        if let Some(&(l, flag)) = self.csv.get_ref().flagged.front() {
            if l == line {
                self.csv.get_mut().flagged.pop_front();
                return Some(Seen::Bad(line, flag.message()));
            }
        }
        Some(match self.row(line) {
            Ok(Some(r)) => Seen::Row(r),
            Ok(None) => Seen::Blank,
            Err(msg) => Seen::Bad(line, msg),
        })
    }

    fn row(&mut self, line: u64) -> Result<Option<Row>, String> {
        let r = &self.record;
        // Fields trimmed in place (`ByteRecord::trim` allocates a new record for every row).
        let field = |i: usize| r.get(i).unwrap_or_default().trim_ascii();
        if r.is_empty() || (r.len() == 1 && field(0).is_empty()) {
            return Ok(None);
        }
        if r.len() != 4 {
            return Err(format!("expected 4 fields `{HEADER}`, found {}", r.len()));
        }
        let text = utf8;
        let ts_cell = field(0);
        let ts = if ts_cell == self.cache.0.as_slice() {
            self.cache.1
        } else {
            let t = parse_ts(text(ts_cell)?, self.tz).ok_or_else(|| {
                format!(
                    "bad timestamp `{}` (RFC 3339, e.g. 2025-01-01T08:00:00+08:00, or local 2025-01-01 08:00[:00])",
                    echo(ts_cell)
                )
            })?;
            self.cache.0.clear();
            self.cache.0.extend_from_slice(ts_cell);
            self.cache.1 = t;
            t
        };
        let (meter, point) = (text(field(1))?, text(field(2))?);
        let points = self
            .index
            .get(meter)
            .ok_or_else(|| format!("unknown meter `{}`", echo(meter.as_bytes())))?;
        let &pi = points.get(point).ok_or_else(|| {
            format!(
                "unknown point `{}.{}`",
                echo(meter.as_bytes()),
                echo(point.as_bytes())
            )
        })?;
        let name = &self.names[pi];
        if let Err(why) = admit_ts(ts, self.now_ms) {
            return Err(format!("{name}: timestamp `{}` {why}", echo(ts_cell)));
        }
        let value_cell = field(3);
        let value = if value_cell.is_empty() {
            None
        } else {
            let v: f64 = text(value_cell)?
                .parse()
                .map_err(|_| format!("bad number `{}` for {name}", echo(value_cell)))?;
            match admit_value(v) {
                Ok(v) => Some(v),
                Err(_) => {
                    return Err(format!(
                        "{name}: value `{}` is not finite or beyond ±1e12",
                        echo(value_cell)
                    ))
                }
            }
        };
        Ok(Some(Row {
            point: pi,
            ts,
            value,
            line,
        }))
    }
}

fn utf8(b: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(b).map_err(|_| format!("`{}` is not UTF-8 text", echo(b)))
}

/// What the validating pass keeps of a point: a few numbers, whatever the file's size.
#[derive(Debug, Clone, Default)]
struct PointScan {
    first: Option<(i64, u64)>,
    last: Option<Row>,
    rows: u64,
    intervals: Vec<i64>,
    /// FNV-1a of the point's rows (ts, value), to recognise a file imported again.
    digest: u64,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// How one row relates to the previous row of its point (both passes judge alike).
enum Order {
    New,
    /// Equal to the previous row: skipped.
    Repeated,
    Bad(String),
}

fn order(prev: Option<&Row>, r: &Row, name: &str) -> Order {
    let Some(p) = prev else {
        return Order::New;
    };
    if r.ts > p.ts {
        Order::New
    } else if r.ts == p.ts && r.value.map(f64::to_bits) == p.value.map(f64::to_bits) {
        Order::Repeated
    } else if r.ts == p.ts {
        Order::Bad(format!(
            "{name} has another reading at {} (line {})",
            format_ts_ms(r.ts),
            p.line
        ))
    } else {
        Order::Bad(format!(
            "{name}: {} is before the row of line {} ({}); the rows of a point must come in time order",
            format_ts_ms(r.ts),
            p.line,
            format_ts_ms(p.ts)
        ))
    }
}

/// A file that validated: what the import needs of it per point.
pub struct Checked {
    points: Vec<PointScan>,
    rows: u64,
    repeated: u64,
}

/// The validating pass: every row of the file checked against the plan, in bounded memory.
pub fn validate(plan: &Plan, file: &Path, now_ms: i64, progress: bool) -> anyhow::Result<Checked> {
    let mut rows = Rows::open(plan, file, now_ms)?;
    let size = std::fs::metadata(file).map_or(0, |m| m.len());
    let bar = Progress::bytes(progress, size, "checking");
    let mut points = vec![PointScan::default(); rows.names.len()];
    let mut errors = Errors::new(file);
    let (mut count, mut repeated) = (0u64, 0u64);
    let mut n = 0u64;
    while let Some(seen) = rows.next() {
        n += 1;
        if let (Some(b), true) = (&bar, n.is_multiple_of(65_536)) {
            b.set_position(rows.done);
        }
        let r = match seen {
            Seen::Row(r) => r,
            Seen::Blank => continue,
            Seen::Bad(line, msg) => {
                errors.push(line, msg);
                continue;
            }
        };
        let p = &mut points[r.point];
        match order(p.last.as_ref(), &r, &rows.names[r.point]) {
            Order::New => {}
            Order::Repeated => {
                repeated += 1;
                continue;
            }
            Order::Bad(msg) => {
                errors.push(r.line, msg);
                continue;
            }
        }
        if let Some(l) = &p.last {
            if p.intervals.len() < CADENCE_SAMPLES {
                p.intervals.push(r.ts - l.ts);
            }
        }
        p.first.get_or_insert((r.ts, r.line));
        p.last = Some(r);
        if p.rows == 0 {
            p.digest = FNV_OFFSET;
        }
        p.rows += 1;
        p.digest = fnv(
            fnv(p.digest, &r.ts.to_le_bytes()),
            &r.value.map_or([0xff; 8], |v| v.to_bits().to_le_bytes()),
        );
        count += 1;
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if !errors.is_empty() {
        return Err(errors.into_error());
    }
    if count == 0 {
        return Err(anyhow::Error::new(BadInput(format!(
            "{}: no rows after the header; nothing was imported",
            file.display()
        ))));
    }
    Ok(Checked {
        points,
        rows: count,
        repeated,
    })
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Rows imported.
    pub rows: u64,
    pub missing: u64,
    /// Rows equal to the previous row of their point, skipped.
    pub repeated: u64,
    /// Rows of points whose very rows had been imported before, skipped.
    pub already: u64,
    pub points: usize,
    pub first_ts: i64,
    pub last_ts: i64,
    /// Point-hours with data written.
    pub hours: usize,
}

/// The median of a point's sampled intervals (ms), the cadence its gaps are judged by.
fn median(d: &mut [i64]) -> i64 {
    if d.is_empty() {
        return 0;
    }
    let mid = d.len() / 2;
    *d.select_nth_unstable(mid).1
}

/// Hourly contributions of one point not yet encoded: chunks still open, keyed by chunk number.
#[derive(Default)]
struct Open {
    chunks: BTreeMap<i64, Chunk>,
    /// What to take back from the stored days before merging (gaps an import fills), by local day.
    minus: HashMap<i64, DayBlock>,
    hours: usize,
}

impl Open {
    fn add(&mut self, h: i64, a: &HourAgg) {
        let (c, d) = Chunk::locate(HourGrid::day_of_hour(h));
        self.chunks.entry(c).or_default().0[d].0[h.rem_euclid(24) as usize].merge(a);
    }

    /// Take `a` back from the stored hour `h` when these chunks are closed.
    fn sub(&mut self, h: i64, a: &HourAgg) {
        let day = HourGrid::day_of_hour(h);
        self.minus.entry(day).or_default().0[h.rem_euclid(24) as usize].merge(a);
        let (c, _) = Chunk::locate(day);
        self.chunks.entry(c).or_default();
    }

    /// Merge the chunks before `keep_from` (all with None) with what the store holds, into `batch`, with
    /// undo records of the chunks written for the first time; returns the number of chunks written.
    fn close(
        &mut self,
        agg: &Aggregates,
        batch: &mut sled::Batch,
        id: u32,
        keep_from: Option<i64>,
        journaled: &mut HashSet<[u8; 13]>,
    ) -> anyhow::Result<usize> {
        let rest = match keep_from {
            Some(c) => self.chunks.split_off(&c),
            None => BTreeMap::new(),
        };
        let done = std::mem::replace(&mut self.chunks, rest);
        let mut written = 0;
        for (c, chunk) in &done {
            self.hours += chunk
                .0
                .iter()
                .flat_map(|d| d.0.iter())
                .filter(|h| !h.is_empty())
                .count();
            let days = chunk
                .0
                .iter()
                .enumerate()
                .map(|(i, d): (usize, &DayBlock)| {
                    (
                        c * plantmeter_common::audit::hourly::CHUNK_DAYS + i as i64,
                        d,
                    )
                });
            written += if self.minus.is_empty() {
                agg.merge_days_undoable(batch, id, days, journaled)?
            } else {
                agg.merge_days_undoable_minus(batch, id, days, &self.minus, journaled)?
            };
        }
        Ok(written)
    }
}

/// The rows of one point that lie among the readings the store holds: each fills a recorded polling gap
/// (strictly inside it), or is a reading the store holds already (a gap's edge, or a row that filled a gap
/// before), or is refused. Memory: the point's recorded gaps (bounded), not the file.
struct Fill {
    /// Recorded gaps, by start.
    gaps: Vec<Gap>,
    /// Gaps filled before, by start then longest first (so that the innermost holding an instant is the
    /// last one starting before it that holds it).
    filled: Vec<Filled>,
    /// The span of the stored readings.
    span: (i64, i64),
    /// The gap being filled.
    cur: Option<Filling>,
    /// Rows met inside gaps filled before, per gap (its index in `filled`): digest, whether some row was
    /// not also a gap's edge, and the first row's line.
    seen: BTreeMap<usize, (u64, bool, u64)>,
    /// Gaps filled by this import and the digest of their rows.
    done: Vec<(Gap, u64)>,
    /// The gaps that remain within them.
    new_gaps: Vec<Gap>,
}

struct Filling {
    gap: Gap,
    tracker: Tracker,
    /// The last value of a counter's rows (they must rise from the gap's first edge to its second).
    prev: f64,
    digest: u64,
}

fn row_digest(h: u64, r: &Row) -> u64 {
    fnv(
        fnv(h, &r.ts.to_le_bytes()),
        &r.value.map_or([0xff; 8], |v| v.to_bits().to_le_bytes()),
    )
}

impl Fill {
    fn new(gaps: Vec<Gap>, mut filled: Vec<Filled>, span: (i64, i64)) -> Fill {
        filled.sort_by_key(|f| (f.t_a, std::cmp::Reverse(f.t_b)));
        Fill {
            gaps,
            filled,
            span,
            cur: None,
            seen: BTreeMap::new(),
            done: Vec::new(),
            new_gaps: Vec::new(),
        }
    }

    /// Judge one row (rows come in time order): Ok(true) when it fills a gap, Ok(false) when the store
    /// holds it already.
    #[allow(clippy::too_many_arguments)]
    fn row(
        &mut self,
        r: &Row,
        kind: PointKind,
        modulus: Option<f64>,
        gap_ms: i64,
        grid: &HourGrid,
        open: &mut Open,
        name: &str,
    ) -> Result<bool, String> {
        if self.cur.as_ref().is_some_and(|c| r.ts >= c.gap.t_b) {
            self.finish(kind, grid, open);
        }
        let k = self.gaps.partition_point(|g| g.t_a < r.ts);
        if let Some(&g) = k.checked_sub(1).and_then(|i| self.gaps.get(i)) {
            if r.ts < g.t_b {
                let cur = self.cur.get_or_insert_with(|| {
                    let mut tracker = Tracker::new(kind, modulus, gap_ms);
                    tracker.last = Some(LastReading::new(g.t_a, g.v_a));
                    Filling {
                        gap: g,
                        tracker,
                        prev: g.v_a,
                        digest: FNV_OFFSET,
                    }
                });
                if let (PointKind::Counter, Some(v)) = (kind, r.value) {
                    let (lo, hi) = (g.v_a.min(g.v_b), g.v_a.max(g.v_b));
                    if v < cur.prev || v < lo || v > hi {
                        return Err(format!(
                            "{name}: {v} at {} does not fit the gap it falls in (polled {} at {}, then {} at {}): \
                             a counter's readings across a gap must rise from the one before to the one after",
                            format_ts_ms(r.ts),
                            g.v_a,
                            format_ts_ms(g.t_a),
                            g.v_b,
                            format_ts_ms(g.t_b)
                        ));
                    }
                    cur.prev = v;
                }
                cur.digest = row_digest(cur.digest, r);
                cur.tracker
                    .push(r.ts, r.value, grid, &mut |h, a| open.add(h, &a));
                return Ok(true);
            }
        }
        // At a gap's edge: a reading the store holds.
        let edge = [
            self.gaps.get(k).filter(|g| g.t_a == r.ts).map(|g| g.v_a),
            k.checked_sub(1)
                .and_then(|i| self.gaps.get(i))
                .filter(|g| g.t_b == r.ts)
                .map(|g| g.v_b),
        ]
        .into_iter()
        .flatten()
        .next();
        if let Some(stored) = edge {
            if r.value.map(f64::to_bits) != Some(stored.to_bits()) {
                return Err(format!(
                    "{name} has another reading at {} in the store ({stored})",
                    format_ts_ms(r.ts)
                ));
            }
        }
        // Inside a gap filled before: one of the rows that filled it (checked against their digest).
        let j = self.filled.partition_point(|f| f.t_a < r.ts);
        let inner = self.filled[..j].iter().rposition(|f| r.ts < f.t_b);
        match (inner, edge) {
            (Some(i), _) => {
                let e = self.seen.entry(i).or_insert((FNV_OFFSET, false, r.line));
                e.0 = row_digest(e.0, r);
                e.1 |= edge.is_none();
                Ok(false)
            }
            (None, Some(_)) => Ok(false),
            (None, None) if r.ts < self.span.0 || r.ts > self.span.1 => Err(format!(
                "{name}: {} is outside the readings the store holds ({} to {}) while other rows of this point \
                 lie among them: import rows before the first or after the last in a file of their own",
                format_ts_ms(r.ts),
                format_ts_ms(self.span.0),
                format_ts_ms(self.span.1)
            )),
            (None, None) => Err(format!(
                "{name}: {} overlaps the readings the store already holds ({} to {}) outside any gap of \
                 them; import only readings before the first, after the last, or inside a polling gap",
                format_ts_ms(r.ts),
                format_ts_ms(self.span.0),
                format_ts_ms(self.span.1)
            )),
        }
    }

    /// Close the gap being filled: the reading after it ends the readings (a gauge's sample there is in
    /// the store already), the gap's apportioned share is taken back, and what remains of it is recorded.
    fn finish(&mut self, kind: PointKind, grid: &HourGrid, open: &mut Open) {
        let Some(mut c) = self.cur.take() else {
            return;
        };
        let g = c.gap;
        c.tracker.push(g.t_b, Some(g.v_b), grid, &mut |h, a| {
            if a.samples == 0 {
                open.add(h, &a);
            }
        });
        g.contribution(kind, grid, &mut |h, a| open.sub(h, &a));
        self.new_gaps.append(&mut c.tracker.gaps);
        self.done.push((g, c.digest));
    }

    /// Rows inside gaps filled before must be the rows that filled them (unless every one of them is a
    /// reading the store holds at a gap's edge).
    fn check_filled(&self, name: &str) -> Result<(), (u64, String)> {
        for (&i, &(digest, unverified, line)) in &self.seen {
            let f = self.filled[i];
            if unverified && digest != f.digest {
                return Err((
                    line,
                    format!(
                        "{name}: the rows from {} to {} differ from those that filled this gap before; \
                         a reading the store holds cannot be changed by an import",
                        format_ts_ms(f.t_a),
                        format_ts_ms(f.t_b)
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Chunks written per batch of the importing pass (about 3.6 kB each, and an undo record): the import's
/// memory is bounded by this, not by the file.
const CHUNKS_PER_BATCH: usize = 256;

/// The importing pass: the file read again, each point's rows through the interval engine. Points whose
/// rows were imported before (same span and digest) are left as they are. The aggregates go to the store
/// in batches of [`CHUNKS_PER_BATCH`] chunks, each with the chunks as they were before; the last batch
/// (states, import records) ends the import. On any error, and at the next open after a crash, what the
/// import wrote is put back: all or nothing, with flat memory.
pub fn import(
    db: &sled::Db,
    plan: &Plan,
    file: &Path,
    checked: Checked,
    now_ms: i64,
    progress: bool,
) -> anyhow::Result<Summary> {
    let r = import_batches(db, plan, file, checked, now_ms, progress);
    if r.is_err() {
        if let Err(e) = super::aggregates::roll_back_unfinished_import(db) {
            tracing::error!("import: could not put back what the failed import wrote: {e:#}");
        }
    }
    r
}

fn import_batches(
    db: &sled::Db,
    plan: &Plan,
    file: &Path,
    checked: Checked,
    now_ms: i64,
    progress: bool,
) -> anyhow::Result<Summary> {
    let audit = plan
        .audit
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no [audit] section"))?;
    let grid = HourGrid::new(audit.timezone);
    let mut agg = Aggregates::open(db, &grid)?;
    let mut batch = sled::Batch::default();
    let mut rows = Rows::open(plan, file, now_ms)?;
    let ids: Vec<u32> = rows.names.iter().map(|n| agg.id(n, &mut batch)).collect();

    // Where each point's rows go relative to what the store holds; overlaps are refused before writing.
    let mut errors = Errors::new(file);
    let mut states = Vec::with_capacity(ids.len());
    let mut skip = vec![false; ids.len()];
    // A file imported before and grown since (a logbook exported again with new rows at its end): its rows
    // up to the last imported one must be those rows (same digest) and are skipped; the rest continue.
    let mut resume: Vec<Option<ImportRecord>> = vec![None; ids.len()];
    // Points whose rows lie among the readings the store holds: they fill its recorded gaps.
    let mut fills: Vec<Option<Fill>> = (0..ids.len()).map(|_| None).collect();
    let mut summary = Summary {
        rows: 0,
        missing: 0,
        repeated: checked.repeated,
        already: 0,
        points: 0,
        first_ts: i64::MAX,
        last_ts: i64::MIN,
        hours: 0,
    };
    for (i, (&id, p)) in ids.iter().zip(&checked.points).enumerate() {
        let st = agg.state(id)?;
        states.push(st);
        let (Some((first, _)), Some(last)) = (p.first, p.last) else {
            continue;
        };
        let record = ImportRecord {
            first_ts: first,
            last_ts: last.ts,
            digest: p.digest,
        };
        let before = agg.import_record(id)?;
        if before == Some(record) {
            skip[i] = true;
            summary.already += p.rows;
            continue;
        }
        if let (Some(b), Some(s)) = (before, st) {
            if b.first_ts == first && b.last_ts < last.ts && b.last_ts == s.last.latest_ts() {
                resume[i] = Some(b);
                continue;
            }
        }
        if let Some(s) = st {
            if !(first > s.last.latest_ts() || last.ts < s.first_ts) {
                // Rows among the readings the store holds: each must fill a recorded gap (or be one of the
                // readings stored already); judged row by row below.
                fills[i] = Some(Fill::new(
                    agg.gaps(id)?,
                    agg.filled(id)?,
                    (s.first_ts, s.last.latest_ts()),
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors.into_error());
    }

    struct Point {
        tracker: Tracker,
        open: Open,
        prev: Option<Row>,
        first_good: Option<(i64, f64)>,
        /// With a resumed import: the digest of the rows so far, and whether they passed the last row
        /// imported before.
        digest: u64,
        resumed: bool,
    }
    // Replacements recorded with `plantmeter replace` that these readings may cross: counted exactly.
    let recorded = super::replace::load(&plan.gateway.data_dir);
    // The live engine's gap threshold of each point: the one a fill is judged by.
    let kinds: Vec<(plantmeter_common::types::PointKind, Option<f64>, i64)> = plan
        .meters()
        .flat_map(|m| {
            let gap = gap_threshold_ms(m.poll_interval.as_millis() as i64);
            m.points.iter().map(move |p| (p.kind, p.rollover, gap))
        })
        .collect();
    let mut pts: Vec<Point> = plan
        .meters()
        .flat_map(|m| m.points.iter().map(move |p| (m, p)))
        .zip(checked.points.iter().zip(&states))
        .zip(ids.iter().zip(&resume))
        .map(|(((meter, point), (scan, st)), (&id, resumed))| {
            let mut intervals = scan.intervals.clone();
            let mut tracker = Tracker::new(
                point.kind,
                point.rollover,
                gap_threshold_ms(median(&mut intervals)),
            );
            tracker.last = st
                .filter(|s| {
                    resumed.is_some() || scan.first.is_some_and(|(f, _)| f > s.last.latest_ts())
                })
                .map(|s| s.last);
            let name = format!("{}.{}", meter.name, point.name);
            tracker.recorded = recorded
                .iter()
                .filter(|r| r.point == name)
                .filter_map(|r| r.replacement())
                .filter(|r| !agg.is_applied(id, r.at_ms))
                .collect();
            tracker.recorded.sort_by_key(|r| r.at_ms);
            Point {
                tracker,
                open: Open::default(),
                prev: None,
                first_good: None,
                digest: FNV_OFFSET,
                resumed: false,
            }
        })
        .collect();

    let size = std::fs::metadata(file).map_or(0, |m| m.len());
    let bar = Progress::bytes(progress, size, "importing");
    let mut n = 0u64;
    let mut journaled: HashSet<[u8; 13]> = HashSet::new();
    let (mut pending, mut started) = (0usize, false);
    while let Some(seen) = rows.next() {
        n += 1;
        if let (Some(b), true) = (&bar, n.is_multiple_of(65_536)) {
            b.set_position(rows.done);
        }
        let r = match seen {
            Seen::Row(r) => r,
            Seen::Blank => continue,
            Seen::Bad(line, msg) => {
                // The file changed since it was checked.
                errors.push(line, msg);
                return Err(errors.into_error());
            }
        };
        if skip[r.point] {
            continue;
        }
        let p = &mut pts[r.point];
        match order(p.prev.as_ref(), &r, &rows.names[r.point]) {
            Order::New => {}
            Order::Repeated => continue,
            Order::Bad(msg) => {
                errors.push(r.line, msg);
                return Err(errors.into_error());
            }
        }
        p.prev = Some(r);
        if let Some(f) = fills[r.point].as_mut() {
            let (kind, modulus, gap_ms) = kinds[r.point];
            let open = &mut p.open;
            match f.row(&r, kind, modulus, gap_ms, &grid, open, &rows.names[r.point]) {
                Ok(true) => {
                    summary.rows += 1;
                    summary.missing += u64::from(r.value.is_none());
                }
                Ok(false) => summary.already += 1,
                Err(msg) => {
                    errors.push(r.line, msg);
                    return Err(errors.into_error());
                }
            }
            continue;
        }
        if let Some(b) = resume[r.point] {
            if !p.resumed {
                if r.ts <= b.last_ts {
                    // One of the rows imported before: it is in the store already.
                    p.digest = fnv(
                        fnv(p.digest, &r.ts.to_le_bytes()),
                        &r.value.map_or([0xff; 8], |v| v.to_bits().to_le_bytes()),
                    );
                    summary.already += 1;
                    continue;
                }
                // The first new row: the rows before it must be the ones imported before.
                if p.digest != b.digest {
                    errors.push(
                        r.line,
                        format!(
                            "{}: the rows up to {} differ from the rows imported before from {} to {}; \
                             import only readings after {}",
                            rows.names[r.point],
                            format_ts_ms(r.ts),
                            format_ts_ms(b.first_ts),
                            format_ts_ms(b.last_ts),
                            format_ts_ms(b.last_ts)
                        ),
                    );
                    return Err(errors.into_error());
                }
                p.resumed = true;
            }
        }
        let open = &mut p.open;
        p.tracker
            .push(r.ts, r.value, &grid, &mut |h, a| open.add(h, &a));
        if p.first_good.is_none() {
            p.first_good = r.value.map(|v| (r.ts, v));
        }
        summary.rows += 1;
        summary.missing += u64::from(r.value.is_none());
        // Nothing is added before the tracker's last reading any more: chunks before it are final.
        if let Some(l) = p.tracker.last {
            let c = Chunk::locate(HourGrid::day_of_hour(grid.hour_index(l.ts_ms))).0;
            if p.open.chunks.first_key_value().is_some_and(|(&k, _)| k < c) {
                pending += p
                    .open
                    .close(&agg, &mut batch, ids[r.point], Some(c), &mut journaled)?;
                if pending >= CHUNKS_PER_BATCH {
                    if !started {
                        Aggregates::put_import_started(&mut batch);
                        started = true;
                    }
                    agg.apply(std::mem::take(&mut batch))?;
                    pending = 0;
                }
            }
        }
    }
    if summary.rows != checked.rows - summary.already {
        return Err(anyhow::Error::new(BadInput(format!(
            "{}: the file changed while it was imported; nothing was imported, run the import again",
            file.display()
        ))));
    }

    for (i, p) in pts.iter_mut().enumerate() {
        let scan = &checked.points[i];
        let (Some((first, _)), Some(last)) = (scan.first, scan.last) else {
            continue;
        };
        if skip[i] {
            continue;
        }
        if let Some(f) = fills[i].as_mut() {
            let (kind, _, _) = kinds[i];
            f.finish(kind, &grid, &mut p.open);
            if let Err((line, msg)) = f.check_filled(&rows.names[i]) {
                errors.push(line, msg);
                return Err(errors.into_error());
            }
            if f.done.is_empty() {
                continue;
            }
            summary.points += 1;
            summary.first_ts = summary.first_ts.min(first);
            summary.last_ts = summary.last_ts.max(last.ts);
            for (g, digest) in &f.done {
                Aggregates::remove_gap(&mut batch, ids[i], g.t_a);
                Aggregates::put_filled(
                    &mut batch,
                    ids[i],
                    &Filled {
                        t_a: g.t_a,
                        t_b: g.t_b,
                        digest: *digest,
                    },
                );
            }
            for g in &f.new_gaps {
                Aggregates::put_gap(&mut batch, ids[i], g);
            }
            agg.prune_gaps(&mut batch, ids[i], f.new_gaps.len() + f.done.len())?;
            p.open
                .close(&agg, &mut batch, ids[i], None, &mut journaled)?;
            summary.hours += p.open.hours;
            continue;
        }
        summary.points += 1;
        summary.first_ts = summary.first_ts.min(first);
        summary.last_ts = summary.last_ts.max(last.ts);
        let st = states[i];
        // A resumed import continues after what the store holds.
        let after = st.filter(|s| resume[i].is_some() || first > s.last.latest_ts());
        let before = st.filter(|s| resume[i].is_none() && last.ts < s.first_ts);
        let open = &mut p.open;
        if let Some(s) = before {
            // Bridge to the first reading the store already counted from.
            p.tracker
                .push(s.first_ts, Some(s.first_value), &grid, &mut |h, a| {
                    open.add(h, &a)
                });
            // A drop onto the store's first reading has no further reading here to decide it (the store
            // counted on from that reading already): take it as the rollover or replacement it looks like.
            p.tracker.commit_held(&grid, &mut |h, a| open.add(h, &a));
        }
        let new_state = match (st, p.tracker.last, p.first_good) {
            (Some(s), Some(l), _) if after.is_some() => Some(PointState { last: l, ..s }),
            (Some(s), _, Some((ft, fv))) => Some(PointState {
                first_ts: ft,
                first_value: fv,
                last: s.last,
            }),
            (None, Some(l), Some((ft, fv))) => Some(PointState {
                first_ts: ft,
                first_value: fv,
                last: l,
            }),
            _ => None,
        };
        if let Some(s) = new_state {
            Aggregates::put_state(&mut batch, ids[i], &s);
        }
        for a in p.tracker.applied.drain(..) {
            Aggregates::put_applied(&mut batch, ids[i], &a);
        }
        for inf in p.tracker.inferred.drain(..) {
            Aggregates::put_inferred(&mut batch, ids[i], &inf);
        }
        let gaps = p.tracker.gaps.len();
        for g in p.tracker.gaps.drain(..) {
            Aggregates::put_gap(&mut batch, ids[i], &g);
        }
        agg.prune_gaps(&mut batch, ids[i], gaps)?;
        p.open
            .close(&agg, &mut batch, ids[i], None, &mut journaled)?;
        summary.hours += p.open.hours;
        Aggregates::put_import_record(
            &mut batch,
            ids[i],
            &ImportRecord {
                first_ts: first,
                last_ts: last.ts,
                digest: scan.digest,
            },
        );
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if summary.rows == 0 {
        return Ok(summary);
    }
    Aggregates::put_import_finished(&mut batch);
    agg.apply(batch)?;
    agg.forget_undo()?;
    agg.flush()
        .with_context(|| format!("importing {}", file.display()))?;
    Ok(summary)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A counter polled every minute with an outage from 02:00 to 08:00 (100 -> 160 kWh, apportioned
    /// 10 kWh/h) and a gauge with the same outage; a logbook row of each inside the outage fills it.
    #[test]
    fn a_logbook_row_fills_a_polling_gap() {
        use crate::audit::engine::tests::{msg, plan};
        use crate::audit::AuditEngine;
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(dir.path());
        let t0 = plantmeter_common::model::parse_ts_ms("2026-01-01T00:00:00+08:00").unwrap();
        let now = t0 + 3 * 86_400_000;
        let store = dir.path().join("store");
        let energy = |i: i64| {
            if i <= 120 {
                40.0 + 0.5 * i as f64
            } else {
                160.0 + 0.5 * (i - 480) as f64
            }
        };
        {
            let db = crate::store::open_db(&store).unwrap();
            let mut e = AuditEngine::open(&db, &plan).unwrap();
            let minutes = (0..=120).chain(480..=600);
            for (seq, i) in minutes.enumerate() {
                let pts = [("energy", Some(energy(i))), ("power", Some(50.0))];
                e.ingest(&msg(seq as u64, t0 + i * 60_000, "power", &pts))
                    .unwrap();
            }
            e.flush().unwrap();
        }
        let grid = HourGrid::new(plan.audit.as_ref().unwrap().timezone);
        let h0 = grid.hour_index(t0);
        let hours = |db: &sled::Db| {
            let agg = Aggregates::open(db, &grid).unwrap();
            let mut e = vec![HourAgg::default(); 24];
            let mut g = vec![HourAgg::default(); 24];
            agg.hours("power.energy", h0, &mut e).unwrap();
            agg.hours("power.power", h0, &mut g).unwrap();
            (e, g)
        };
        let db = crate::store::open_db(&store).unwrap();
        let (e, g) = hours(&db);
        for (h, a) in e.iter().enumerate().take(8).skip(2) {
            assert!((a.sum - 10.0).abs() < 1e-9, "hour {h}: {a:?}");
        }
        assert_eq!(g[5].gauge_mean(), None);
        let id = Aggregates::open(&db, &grid)
            .unwrap()
            .existing_id("power.energy")
            .unwrap();
        assert_eq!(
            Aggregates::open(&db, &grid)
                .unwrap()
                .gaps(id)
                .unwrap()
                .len(),
            1
        );

        let csv = dir.path().join("logbook.csv");
        std::fs::write(
            &csv,
            "ts,meter,point,value\n2026-01-01 04:00,power,energy,130\n2026-01-01 05:30,power,power,80\n",
        )
        .unwrap();
        let run = |db: &sled::Db, file: &Path| -> anyhow::Result<Summary> {
            let checked = validate(&plan, file, now, false)?;
            import(db, &plan, file, checked, now, false)
        };
        let s = run(&db, &csv).unwrap();
        assert_eq!((s.rows, s.points), (2, 2), "{s:?}");
        let (e, g) = hours(&db);
        // Independently: 100 -> 130 over 02:00-04:00, 130 -> 160 over 04:00-08:00.
        let want = [
            30.0 / 2.0,
            30.0 / 2.0,
            30.0 / 4.0,
            30.0 / 4.0,
            30.0 / 4.0,
            30.0 / 4.0,
        ];
        for (h, w) in (2..8).zip(want) {
            assert!((e[h].sum - w).abs() < 1e-9, "hour {h}: {:?}", e[h]);
            assert_eq!(e[h].apportioned_ms, 3_600_000, "hour {h}");
        }
        let total: f64 = e.iter().map(|a| a.sum).sum();
        assert!((total - (energy(600) - energy(0))).abs() < 1e-9, "{total}");
        assert_eq!(g[5].gauge_mean(), Some(80.0));
        assert_eq!((g[4].gauge_mean(), g[6].gauge_mean()), (None, None));
        assert_eq!(
            g[2].gauge_mean(),
            Some(50.0),
            "the sample at 02:00 is kept once"
        );
        assert_eq!(
            g[8].gauge_mean(),
            Some(50.0),
            "the sample at 08:00 is kept once"
        );
        let gaps = Aggregates::open(&db, &grid).unwrap().gaps(id).unwrap();
        let spans: Vec<(i64, i64)> = gaps.iter().map(|g| (g.t_a, g.t_b)).collect();
        let at = |m: i64| t0 + m * 60_000;
        assert_eq!(spans, [(at(120), at(240)), (at(240), at(480))]);

        // The report: the same total, a third of it (the filled gap's 60 of 180 kWh) imported.
        drop(db);
        let db = crate::store::open_db(&store).unwrap();
        let mut engine = AuditEngine::open(&db, &plan).unwrap();
        let r = engine.report(now).unwrap();
        let el = r.indicator("electricity").unwrap();
        assert!((el.baseline.total.unwrap() - 180.0).abs() < 1e-6, "{el:?}");
        let prov = el.baseline.provenance.as_ref().unwrap();
        assert!((prov.imported - 60.0 / 180.0).abs() < 1e-9, "{prov:?}");
        assert!((prov.polled - 120.0 / 180.0).abs() < 1e-9, "{prov:?}");
        assert_eq!(prov.apportioned, 0.0, "{prov:?}");
        drop(engine);

        // The same file again changes nothing.
        let s = run(&db, &csv).unwrap();
        assert_eq!((s.rows, s.already), (0, 2), "{s:?}");
        assert_eq!(hours(&db), (e.clone(), g.clone()));

        // A row among polled readings outside any gap, and one that contradicts a stored reading: refused
        // by line, nothing imported.
        for (body, line, what) in [
            ("2026-01-01 01:00,power,energy,70\n", 2, "outside any gap"),
            ("2026-01-01 04:00,power,energy,131\n", 2, "another reading"),
            ("2026-01-01 03:00,power,energy,140\n", 2, "must rise"),
        ] {
            // A good row of the gauge first: it is not imported either.
            let text = format!("ts,meter,point,value\n2026-01-01 06:00,power,power,70\n{body}");
            std::fs::write(&csv, text).unwrap();
            let err = format!("{:#}", run(&db, &csv).unwrap_err());
            assert!(
                err.contains(&format!(":{}:", line + 1)) && err.contains(what),
                "{err}"
            );
            assert_eq!(hours(&db), (e.clone(), g.clone()), "{body}");
        }

        // The logbook again with a row found later: the row imported before is skipped (a stored reading
        // now), the new one fills what remained of the gap (130 -> 150 -> 160 over 04:00-06:00-08:00).
        std::fs::write(
            &csv,
            "ts,meter,point,value\n2026-01-01 04:00,power,energy,130\n2026-01-01 06:00,power,energy,150\n",
        )
        .unwrap();
        let s = run(&db, &csv).unwrap();
        assert_eq!((s.rows, s.already), (1, 1), "{s:?}");
        let (e2, _) = hours(&db);
        let want = [15.0, 15.0, 10.0, 10.0, 5.0, 5.0];
        for (h, w) in (2..8).zip(want) {
            assert!((e2[h].sum - w).abs() < 1e-9, "hour {h}: {:?}", e2[h]);
        }
        let total: f64 = e2.iter().map(|a| a.sum).sum();
        assert!((total - 180.0).abs() < 1e-9, "{total}");
        // And a row after the last polled reading cannot ride along with rows that fill gaps.
        std::fs::write(
            &csv,
            "ts,meter,point,value\n2026-01-01 07:00,power,energy,155\n2026-01-01 12:00,power,energy,300\n",
        )
        .unwrap();
        let err = format!("{:#}", run(&db, &csv).unwrap_err());
        assert!(
            err.contains(":3:") && err.contains("in a file of their own"),
            "{err}"
        );
        assert_eq!(hours(&db).0, e2);
    }

    #[test]
    fn local_and_rfc3339_timestamps() {
        let tz = FixedOffset::east_opt(8 * 3600).unwrap();
        let t = parse_ts("2025-01-01T08:00:00+08:00", tz).unwrap();
        for s in [
            "2025-01-01 08:00",
            "2025-01-01 08:00:00",
            "2025-01-01T08:00",
            "2025-01-01T08:00:00",
            "2025-01-01T00:00:00Z",
            "2025-01-01 08:00:00.000",
        ] {
            assert_eq!(parse_ts(s, tz), Some(t), "{s}");
        }
        assert_eq!(parse_ts("2025-01-01", tz), None);
        assert_eq!(parse_ts("yesterday", tz), None);
    }

    #[test]
    fn the_guard_strips_a_bom_and_cuts_long_lines() {
        let mut input = b"\xEF\xBB\xBFa,b\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 3 * MAX_LINE_BYTES));
        input.extend_from_slice(b"\nc,d\r\n");
        let mut g = Guard::new(&input[..]);
        let mut out = Vec::new();
        g.read_to_end(&mut out).unwrap();
        assert!(out.starts_with(b"a,b\n"));
        assert!(out.ends_with(b"\nc,d\r\n"));
        assert_eq!(out.len(), 4 + MAX_LINE_BYTES + 6);
        assert_eq!(g.flagged, [(2, Flag::Long)]);
        // A quote left open is closed at its line's end, so it cannot swallow the following lines.
        let mut g = Guard::new(&b"a,\"b\nc,d\n"[..]);
        let mut out = Vec::new();
        g.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"a,\"b\"\nc,d\n");
        assert_eq!(g.flagged, [(1, Flag::OpenQuote)]);
    }

    /// The guard byte by byte, as specified.
    fn reference(input: &[u8]) -> (Vec<u8>, Vec<(u64, Flag)>) {
        let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
        let (mut out, mut flags) = (Vec::new(), Vec::new());
        let (mut line, mut col, mut cutting, mut quoted) = (1u64, 0usize, false, false);
        for &b in input {
            if b == b'\n' {
                if quoted {
                    out.push(b'"');
                    if !cutting {
                        flags.push((line, Flag::OpenQuote));
                    }
                }
                out.push(b);
                (line, col, cutting, quoted) = (line + 1, 0, false, false);
            } else if !cutting {
                if col == MAX_LINE_BYTES {
                    cutting = true;
                    flags.push((line, Flag::Long));
                } else {
                    col += 1;
                    quoted ^= b == b'"';
                    out.push(b);
                }
            }
        }
        (out, flags)
    }

    proptest::proptest! {
        #[test]
        fn the_guard_reads_alike_whatever_the_buffer_sizes(
            lines in proptest::collection::vec((0usize..5000, 0u8..4), 0..12),
            sizes in proptest::collection::vec(1usize..9000, 1..8),
        ) {
            let mut input = Vec::new();
            for (len, kind) in &lines {
                let fill = match kind { 0 => b'a', 1 => b'"', 2 => b',', _ => b'\r' };
                input.extend(std::iter::repeat_n(fill, *len));
                input.push(b'\n');
            }
            let mut g = Guard::new(&input[..]);
            let mut out = Vec::new();
            for i in 0.. {
                let mut buf = vec![0u8; sizes[i % sizes.len()]];
                let n = g.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            let (want, flags) = reference(&input);
            proptest::prop_assert_eq!(out, want);
            proptest::prop_assert_eq!(Vec::from(g.flagged), flags);
        }
    }

    #[test]
    fn errors_are_bounded() {
        let mut e = Errors::new(Path::new("f.csv"));
        for i in 0..1_000_000 {
            e.push(i, "bad");
        }
        let msg = e.into_error().to_string();
        assert_eq!(msg.lines().count(), MAX_ERRORS_SHOWN + 1);
        assert!(
            msg.ends_with("... and 999980 more bad rows (1000000 in all); nothing was imported")
        );
    }

    #[test]
    fn echo_is_short_and_escaped() {
        assert_eq!(echo(b"abc"), "abc");
        assert_eq!(echo(&[b'y'; 100]).chars().count(), MAX_ECHO_CHARS + 1);
        assert_eq!(echo(b"a\x1b[2J"), "a\\u{1b}[2J");
    }
}
