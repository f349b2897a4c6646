//! `plantmeter import --config FILE --csv FILE`: historical readings into the audit's hourly aggregates.
//!
//! Two streaming passes over the file, so that memory does not grow with it and nothing is half-imported:
//! 1. **validate**: every row is read (CSV as RFC 4180 through the `csv` crate: quoted fields, CRLF, a
//!    BOM) and checked: known `meter.point`, a timestamp (RFC 3339, or local `YYYY-MM-DD HH:MM[:SS]` /
//!    `YYYY-MM-DDTHH:MM[:SS]` in `[audit] timezone`) from 2000-01-01 to a day ahead of now, a finite value
//!    of magnitude at most 1e12, rows of one point in time order. Only a few numbers per point are kept.
//!    Any bad row: the first [`MAX_ERRORS_SHOWN`] are listed as `FILE:LINE: message`, the rest counted,
//!    nothing is imported (exit 2). A line longer than [`csv_rows::MAX_LINE_BYTES`] is reported by its number, never
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
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use plantmeter_common::audit::hourly::{Chunk, DayBlock, HourAgg, HourGrid};
use plantmeter_common::audit::intervals::{gap_threshold_ms, Gap, LastReading, Tracker};
use plantmeter_common::audit::multiplier::rescale_across;
use plantmeter_common::plan::Multiplier;
// Instants in the messages in the plant's timezone (`[audit] timezone`, set in `main`).
use crate::local_time::format_ts_ms;
use plantmeter_common::audit::render::Lang;
use plantmeter_common::plan::Plan;
use plantmeter_common::types::PointKind;

use super::aggregates::{Aggregates, Filled, ImportRecord, PointState};
use crate::exit::BadInput;
use crate::progress::Progress;
use cells::tr;
pub use text::Encoding;

mod cells;
mod csv_rows;
mod text;
#[cfg(feature = "desk")]
mod xlsx;

#[derive(clap::Args)]
pub struct ImportArgs {
    #[arg(long)]
    pub config: PathBuf,
    /// A CSV file: header `ts,meter,point,value`, or its Chinese names `时间,表计,测点,数值`, in any
    /// order; UTF-8 (with or without a BOM) or GBK.
    #[arg(long, required_unless_present = "xlsx", conflicts_with = "xlsx")]
    pub csv: Option<PathBuf>,
    /// An Excel workbook (.xlsx), read directly: the same layouts and rules as a CSV.
    #[arg(long)]
    pub xlsx: Option<PathBuf>,
    /// The workbook's sheet to read (default: the first).
    #[arg(long, requires = "xlsx")]
    pub sheet: Option<String>,
    /// A row per time and a column per point: the first column the time, every other column headed
    /// `meter.point` (or a name mapped in `[import] columns`).
    #[arg(long)]
    pub wide: bool,
    /// The CSV's encoding: auto (UTF-8, or GBK when the text is not UTF-8), utf-8, gbk (gb18030).
    #[arg(long, default_value = "auto")]
    pub encoding: String,
    /// The language of the messages: en or zh.
    #[arg(long, default_value = "en")]
    pub lang: String,
}

/// The canonical header of an import file.
pub const HEADER: &str = "ts,meter,point,value";
/// At most this many bad rows are listed; the rest are counted.
pub const MAX_ERRORS_SHOWN: usize = 20;
/// Intervals kept per point to judge its cadence (median) in the validating pass.
const CADENCE_SAMPLES: usize = 1024;

/// What to read, and how.
#[derive(Debug, Clone)]
pub struct Input {
    pub path: PathBuf,
    pub format: Format,
    /// `--wide`: a row per time, a column per point.
    pub wide: bool,
    pub lang: Lang,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    Csv(Encoding),
    Xlsx { sheet: Option<String> },
}

impl Input {
    /// A long CSV in UTF-8 or GBK, messages in English.
    #[cfg(any(test, feature = "demo"))]
    pub fn csv(path: &Path) -> Input {
        Input {
            path: path.to_path_buf(),
            format: Format::Csv(Encoding::Auto),
            wide: false,
            lang: Lang::En,
        }
    }
}

fn bad(msg: String) -> anyhow::Error {
    anyhow::Error::new(BadInput(msg))
}

pub fn main(args: ImportArgs) -> anyhow::Result<()> {
    let lang =
        Lang::parse(&args.lang).ok_or_else(|| bad(format!("--lang {}: en or zh", args.lang)))?;
    let encoding = Encoding::parse(&args.encoding).ok_or_else(|| {
        bad(format!(
            "--encoding {}: auto, utf-8 or gbk (gb18030)",
            args.encoding
        ))
    })?;
    let (path, format) = match (args.csv, args.xlsx) {
        (Some(p), None) => (p, Format::Csv(encoding)),
        (None, Some(p)) => (p, Format::Xlsx { sheet: args.sheet }),
        _ => return Err(bad("give --csv FILE or --xlsx FILE".to_string())),
    };
    let input = Input {
        path,
        format,
        wide: args.wide,
        lang,
    };
    let plan = crate::exit::load_plan(&args.config, crate::exit::Needs::Audit)?;
    crate::local_time::set_display_tz(crate::local_time::plant_tz(&plan));
    let progress = std::io::stderr().is_terminal();
    let now = plantmeter_common::clock::system_ms();
    let checked = validate(&plan, &input, now, progress)?;
    for note in &checked.notes {
        println!("{note}");
    }
    let db = open_store(&plan.gateway.data_dir)?;
    let s = import(&db, &plan, &input, checked, now, progress)?;
    let file = input.path.display();
    let zh = lang == Lang::Zh;
    if s.rows == 0 {
        if zh {
            println!(
                "无需导入：{file} 的 {} 行此前已导入；数据库未改动",
                s.already
            );
        } else {
            println!(
                "nothing to import: the {} rows of {file} were imported before; the store is unchanged",
                s.already
            );
        }
        return Ok(());
    }
    if zh {
        println!(
            "已导入 {} 行（缺失值 {} 个），{} 个测点，自 {} 至 {}：{} 个小时汇总，存于 {}",
            s.rows,
            s.missing,
            s.points,
            format_ts_ms(s.first_ts),
            format_ts_ms(s.last_ts),
            s.hours,
            plan.gateway.data_dir.display()
        );
    } else {
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
    }
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
    /// A workbook's sheet: places are cells (`Sheet1!B17`) or rows.
    sheet: Option<String>,
    lang: Lang,
    shown: Vec<String>,
    more: u64,
}

impl Errors {
    fn new(file: &Path) -> Errors {
        Errors {
            file: file.display().to_string(),
            sheet: None,
            lang: Lang::En,
            shown: Vec::new(),
            more: 0,
        }
    }

    /// For the rows of `rows`: places in its sheet, messages in its language.
    fn of(rows: &Rows<'_>, file: &Path) -> Errors {
        Errors {
            sheet: rows.sheet().map(str::to_string),
            lang: rows.lang,
            ..Errors::new(file)
        }
    }

    fn push(&mut self, line: u64, msg: impl std::fmt::Display) {
        self.push_at(line, None, msg);
    }

    /// A problem of a row (`col` None) or of one of its cells.
    fn push_at(&mut self, line: u64, col: Option<usize>, msg: impl std::fmt::Display) {
        if self.shown.len() >= MAX_ERRORS_SHOWN {
            self.more += 1;
            return;
        }
        let place = match (&self.sheet, col, self.lang) {
            (None, _, _) => line.to_string(),
            (Some(s), Some(c), _) => format!("{s}!{}{line}", cells::column_name(c)),
            (Some(s), None, Lang::En) => format!("{s} row {line}"),
            (Some(s), None, Lang::Zh) => format!("{s} 第{line}行"),
        };
        self.shown.push(format!("{}:{place}: {msg}", self.file));
    }

    fn is_empty(&self) -> bool {
        self.shown.is_empty()
    }

    fn into_error(self) -> anyhow::Error {
        let total = self.shown.len() as u64 + self.more;
        let mut msg = self.shown;
        match (self.lang, self.more > 0) {
            (Lang::En, true) => msg.push(format!(
                "... and {} more bad rows ({total} in all); nothing was imported",
                self.more
            )),
            (Lang::En, false) => msg.push(format!(
                "{total} bad row{}; nothing was imported",
                if total == 1 { "" } else { "s" }
            )),
            (Lang::Zh, true) => msg.push(format!(
                "……另有 {} 行有误（共 {total} 行）；未导入任何数据",
                self.more
            )),
            (Lang::Zh, false) => msg.push(format!("共 {total} 行有误；未导入任何数据")),
        }
        anyhow::Error::new(BadInput(msg.join("\n")))
    }
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
    /// The 0-based column of its value (a wide sheet has several per line).
    col: usize,
}

/// What one pass sees of a row.
enum Seen {
    Row(Row),
    /// An empty line.
    Blank,
    /// A bad row or cell: line, column where known, message.
    Bad(u64, Option<usize>, String),
}

/// Where the rows come from.
// One per pass, never moved in a loop: the CSV reader's size costs nothing.
#[allow(clippy::large_enum_variant)]
enum Source {
    Csv(csv_rows::CsvSource),
    #[cfg(feature = "desk")]
    Xlsx(xlsx::XlsxSource),
}

/// What a source gives.
enum SourceNext {
    Record(u64),
    Bad(u64, String),
    End,
}

impl Source {
    fn next(&mut self) -> SourceNext {
        match self {
            Source::Csv(c) => match c.next() {
                csv_rows::Next::Record(l) => SourceNext::Record(l),
                csv_rows::Next::Bad(l, m) => SourceNext::Bad(l, m),
                csv_rows::Next::End => SourceNext::End,
            },
            #[cfg(feature = "desk")]
            Source::Xlsx(x) => match x.next() {
                xlsx::Next::Record(l) => SourceNext::Record(l),
                xlsx::Next::Bad(l, m) => SourceNext::Bad(l, m),
                xlsx::Next::End => SourceNext::End,
            },
        }
    }

    fn record(&self) -> &dyn cells::Record {
        match self {
            Source::Csv(c) => &c.record,
            #[cfg(feature = "desk")]
            Source::Xlsx(x) => &x.record,
        }
    }

    /// Bytes (CSV) or rows (workbook) read so far, for progress.
    fn position(&self) -> u64 {
        match self {
            Source::Csv(c) => c.position(),
            #[cfg(feature = "desk")]
            Source::Xlsx(x) => x.rows_read,
        }
    }
}

/// Reads the rows of a file, each checked on its own (the checks across rows are the caller's).
struct Rows<'p> {
    source: Source,
    reader: cells::Reader<'p>,
    names: Vec<String>,
    /// The readings of the current record not handed out yet (a wide row has several).
    pending: Vec<cells::Reading>,
    next_pending: usize,
    line: u64,
    lang: Lang,
    /// Header columns left out, for the summary.
    ignored: Vec<String>,
    /// Bytes (CSV) or rows (workbook) read so far, for progress.
    done: u64,
    /// The 倍率 of each point's meter and the point's unit (`multipliers`).
    multipliers: Vec<Option<(&'p Multiplier, &'p str)>>,
}

/// Per point (in `plan.meters()` order), its meter's multiplier (倍率) and the point's unit: a
/// file's values are what the meter shows, scaled like polled readings (`poller::apply_multiplier`)
/// by the multiplier in force at each row's time, so imported and polled readings agree.
fn multipliers(plan: &Plan) -> Vec<Option<(&Multiplier, &str)>> {
    plan.meters()
        .flat_map(|m| {
            m.points
                .iter()
                .map(move |p| m.multiplier.as_ref().map(|x| (x, p.unit.as_str())))
        })
        .collect()
}

impl<'p> Rows<'p> {
    /// Open a file and read its header.
    fn open(plan: &'p Plan, input: &Input, now_ms: i64) -> anyhow::Result<Rows<'p>> {
        let file = input.path.as_path();
        let lang = input.lang;
        let tz = plan
            .audit
            .as_ref()
            .map(|a| a.timezone)
            .ok_or_else(|| anyhow::anyhow!("no [audit] section"))?;
        let points = cells::Points::new(plan);
        let names = points.names.clone();
        let mut errors = Errors::new(file);
        errors.lang = lang;
        let (mut source, epoch_1904) = match &input.format {
            Format::Csv(encoding) => {
                let s = csv_rows::CsvSource::open(file, *encoding).map_err(|e| {
                    bad(match e {
                        csv_rows::OpenError::Io(e) => {
                            format!("{}: cannot read: {e}", file.display())
                        }
                        csv_rows::OpenError::Encoding(u) => undecided(file, &u, lang),
                    })
                })?;
                (Source::Csv(s), false)
            }
            #[cfg(feature = "desk")]
            Format::Xlsx { sheet } => {
                let s = xlsx::XlsxSource::open(file, sheet.as_deref())
                    .map_err(|e| bad(format!("{}: {e}", file.display())))?;
                errors.sheet = Some(s.sheet.clone());
                let e = s.epoch_1904;
                (Source::Xlsx(s), e)
            }
            #[cfg(not(feature = "desk"))]
            Format::Xlsx { .. } => {
                return Err(bad(
                    "plantmeter import --xlsx: not in this build. The gateway build (cargo build --release -p \
                     plantmeter-agent) leaves out the Excel reader; build the desk binary from the repository \
                     root with `cargo build --release` (or add `--features desk` to the -p build), or save the \
                     sheet as \"CSV UTF-8\" and import it with --csv."
                        .to_string(),
                ))
            }
        };
        // The header: the first record (a workbook's first row that has cells).
        let header_at = match source.next() {
            SourceNext::Record(line) => line,
            SourceNext::Bad(line, msg) => {
                errors.push(line, msg);
                return Err(errors.into_error());
            }
            SourceNext::End => {
                return Err(bad(tr(
                    lang,
                    || {
                        format!("{}: the file is empty: its first line must be the header `{HEADER}` (or 时间,表计,测点,数值)", file.display())
                    },
                    || {
                        format!(
                            "{}：文件为空：第一行应为表头 `{HEADER}`（或 时间,表计,测点,数值）",
                            file.display()
                        )
                    },
                )))
            }
        };
        let header = source.record();
        let (layout, ignored) = match cells::layout(header, input.wide, &points, lang) {
            Ok(l) => l,
            Err(cells::HeaderError(problems)) => {
                for (col, msg) in problems {
                    errors.push_at(header_at, col, msg);
                }
                return Err(errors.into_error());
            }
        };
        let mut reader = cells::Reader::new(points, layout, header, tz, now_ms, lang);
        reader.epoch_1904 = epoch_1904;
        Ok(Rows {
            source,
            reader,
            names,
            pending: Vec::new(),
            next_pending: 0,
            line: header_at,
            lang,
            ignored,
            done: 0,
            multipliers: multipliers(plan),
        })
    }

    /// The workbook's sheet, for places in messages.
    fn sheet(&self) -> Option<&str> {
        match &self.source {
            Source::Csv(_) => None,
            #[cfg(feature = "desk")]
            Source::Xlsx(x) => Some(&x.sheet),
        }
    }

    /// What the file was read as, and the columns left out: for the summary.
    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        #[allow(irrefutable_let_patterns)] // without the `xlsx` feature a CSV is all there is
        if let Source::Csv(c) = &self.source {
            if c.encoding == Encoding::Gb18030 {
                notes.push(tr(
                    self.lang,
                    || "read as GBK (GB18030) text".to_string(),
                    || "按 GBK（GB18030）编码读取".to_string(),
                ));
            }
        }
        if !self.ignored.is_empty() {
            let list = self.ignored.join(", ");
            notes.push(tr(
                self.lang,
                || format!("columns left out (not ts, meter, point or value): {list}"),
                || format!("未导入的列（不是时间、表计、测点或数值）：{list}"),
            ));
        }
        notes
    }

    /// The next row, blank line or bad row; None at the end of the file.
    fn next(&mut self) -> Option<Seen> {
        loop {
            if let Some(r) = self.pending.get(self.next_pending) {
                self.next_pending += 1;
                let factor = self
                    .multipliers
                    .get(r.point)
                    .copied()
                    .flatten()
                    .map_or(1.0, |(m, unit)| m.factor(unit, r.ts));
                return Some(Seen::Row(Row {
                    point: r.point,
                    ts: r.ts,
                    value: r.value.map(|v| v * factor),
                    line: self.line,
                    col: r.col,
                }));
            }
            let line = match self.source.next() {
                SourceNext::End => return None,
                SourceNext::Bad(line, msg) => return Some(Seen::Bad(line, None, msg)),
                SourceNext::Record(line) => line,
            };
            self.line = line;
            self.done = self.source.position();
            self.next_pending = 0;
            match self
                .reader
                .readings(self.source.record(), &mut self.pending)
            {
                Ok(()) if self.pending.is_empty() => return Some(Seen::Blank),
                Ok(()) => {}
                Err((col, msg)) => {
                    self.pending.clear();
                    return Some(Seen::Bad(line, col, msg));
                }
            }
        }
    }
}

/// The encoding could not be told: what to do.
fn undecided(file: &Path, u: &text::Undecided, lang: Lang) -> String {
    let f = file.display();
    match u {
        text::Undecided::Utf16 => tr(
            lang,
            || {
                format!("{f}:1: the file is UTF-16 (Excel's \"Unicode text\"): save it from Excel as \"CSV UTF-8 (comma delimited)\"")
            },
            || {
                format!("{f}:1: 该文件为 UTF-16（Excel 的“Unicode 文本”）：请在 Excel 中另存为“CSV UTF-8（逗号分隔）”")
            },
        ),
        text::Undecided::NotUtf8 { line } => tr(
            lang,
            || {
                format!(
                "{f}:{line}: the text is not UTF-8 (GBK, as Excel saves plain CSV on Chinese Windows?) and this \
                 gateway build reads UTF-8 only: save the file from Excel as \"CSV UTF-8 (comma delimited)\", or \
                 import it with the desk build (`cargo build --release` at the repository root), which reads GBK"
            )
            },
            || {
                format!(
                "{f}:{line}: 文本不是 UTF-8（可能是中文 Windows 的 Excel 另存的普通 CSV，即 GBK），而此网关版本只读 UTF-8：\
                 请在 Excel 中另存为“CSV UTF-8（逗号分隔）”，或用桌面版（在仓库根目录 `cargo build --release`）导入，它可读 GBK"
            )
            },
        ),
        text::Undecided::Neither { line } => tr(
            lang,
            || {
                format!(
                "{f}:{line}: the text is neither UTF-8 nor GBK: save the file from Excel as \"CSV UTF-8 (comma \
                 delimited)\", or name its encoding with --encoding utf-8 or --encoding gbk"
            )
            },
            || {
                format!(
                "{f}:{line}: 文本既不是 UTF-8 也不是 GBK：请在 Excel 中另存为“CSV UTF-8（逗号分隔）”，\
                 或用 --encoding utf-8 / --encoding gbk 指明编码"
            )
            },
        ),
    }
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

/// [`order`]'s refusal in Chinese.
fn disorder_zh(prev: &Row, r: &Row, name: &str) -> String {
    if r.ts == prev.ts {
        format!(
            "{name} 在 {} 已有另一个读数（第 {} 行）：同一测点同一时刻只能有一个读数",
            format_ts_ms(r.ts),
            prev.line
        )
    } else {
        format!(
            "{name}：{} 早于第 {} 行（{}）：同一测点的各行须按时间先后排列",
            format_ts_ms(r.ts),
            prev.line,
            format_ts_ms(prev.ts)
        )
    }
}

/// A file that validated: what the import needs of it per point.
pub struct Checked {
    points: Vec<PointScan>,
    rows: u64,
    repeated: u64,
    /// What the summary says of the file (its encoding, columns left out).
    pub notes: Vec<String>,
}

/// The validating pass: every row of the file checked against the plan, in bounded memory.
pub fn validate(
    plan: &Plan,
    input: &Input,
    now_ms: i64,
    progress: bool,
) -> anyhow::Result<Checked> {
    let file = input.path.as_path();
    let mut rows = Rows::open(plan, input, now_ms)?;
    let size = match input.format {
        Format::Csv(_) => std::fs::metadata(file).map_or(0, |m| m.len()),
        // Progress in rows of a sheet, whose count is not known ahead.
        Format::Xlsx { .. } => 0,
    };
    let bar = Progress::bytes(progress, size, "checking");
    let mut points = vec![PointScan::default(); rows.names.len()];
    let mut errors = Errors::of(&rows, file);
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
            Seen::Bad(line, col, msg) => {
                errors.push_at(line, col, msg);
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
                let msg = match (rows.lang, &p.last) {
                    (Lang::Zh, Some(prev)) => disorder_zh(prev, &r, &rows.names[r.point]),
                    _ => msg,
                };
                errors.push_at(r.line, Some(r.col), msg);
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
        return Err(bad(tr(
            rows.lang,
            || {
                format!(
                    "{}: no rows after the header; nothing was imported",
                    file.display()
                )
            },
            || format!("{}：表头之后没有数据行；未导入任何数据", file.display()),
        )));
    }
    Ok(Checked {
        points,
        rows: count,
        repeated,
        notes: rows.notes(),
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
    input: &Input,
    checked: Checked,
    now_ms: i64,
    progress: bool,
) -> anyhow::Result<Summary> {
    let r = import_batches(db, plan, input, checked, now_ms, progress);
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
    input: &Input,
    checked: Checked,
    now_ms: i64,
    progress: bool,
) -> anyhow::Result<Summary> {
    let file = input.path.as_path();
    let audit = plan
        .audit
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no [audit] section"))?;
    let grid = HourGrid::new(audit.timezone);
    let mut agg = Aggregates::open(db, &grid)?;
    let mut batch = sled::Batch::default();
    let mut rows = Rows::open(plan, input, now_ms)?;
    let ids: Vec<u32> = rows.names.iter().map(|n| agg.id(n, &mut batch)).collect();

    // Where each point's rows go relative to what the store holds; overlaps are refused before writing.
    let mut errors = Errors::of(&rows, file);
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

    let size = match input.format {
        Format::Csv(_) => std::fs::metadata(file).map_or(0, |m| m.len()),
        Format::Xlsx { .. } => 0,
    };
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
            Seen::Bad(line, col, msg) => {
                // The file changed since it was checked.
                errors.push_at(line, col, msg);
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
        // 倍率 changed since the point's last reading: a discontinuity, not consumption (as live).
        if let Some((m, unit)) = rows.multipliers.get(r.point).copied().flatten() {
            rescale_across(&mut p.tracker, m, unit, r.ts);
        }
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
            if let Some((m, unit)) = rows.multipliers.get(i).copied().flatten() {
                rescale_across(&mut p.tracker, m, unit, s.first_ts);
            }
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
            let input = Input::csv(file);
            let checked = validate(&plan, &input, now, false)?;
            import(db, &plan, &input, checked, now, false)
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

    /// A meter behind transformers (倍率 6 000, 8 000 from 02:00): the file holds what the meter
    /// shows; imported like polled readings, on the primary side. Register 100.00, 101.00, then
    /// after the change 101.00, 102.50: 6 000 + 0 + 12 000 = 18 000 kWh (DOMAIN.md), not the
    /// 202 000 kWh of the jump; a 1.5 kW register reads 9 000 kW.
    #[test]
    fn the_multiplier_applies_to_imported_readings_as_to_polled_ones() {
        use crate::audit::engine::tests::plan;
        let dir = tempfile::tempdir().unwrap();
        plan(dir.path());
        let cfg = dir.path().join("plant.toml");
        let text = std::fs::read_to_string(&cfg).unwrap().replace(
            "unit_id = 1\npoll_interval_s = 60\n",
            "unit_id = 1\npoll_interval_s = 60\nmultiplier = 6000.0\n  [[meter.multiplier_change]]\n  \
             at = \"2026-01-01T02:00:00+08:00\"\n  value = 8000.0\n",
        );
        std::fs::write(&cfg, text).unwrap();
        let plan = plantmeter_common::config::load(&cfg).unwrap();
        let t0 = plantmeter_common::model::parse_ts_ms("2026-01-01T00:00:00+08:00").unwrap();
        let csv = dir.path().join("ledger.csv");
        std::fs::write(
            &csv,
            "ts,meter,point,value\n2026-01-01 00:00,power,energy,100\n2026-01-01 00:00,power,power,1.5\n\
             2026-01-01 01:00,power,energy,101\n2026-01-01 03:00,power,energy,101\n2026-01-01 04:00,power,energy,102.5\n",
        )
        .unwrap();
        let db = crate::store::open_db(&dir.path().join("store")).unwrap();
        let input = Input::csv(&csv);
        let now = t0 + 3 * 86_400_000;
        let checked = validate(&plan, &input, now, false).unwrap();
        let s = import(&db, &plan, &input, checked, now, false).unwrap();
        assert_eq!(s.rows, 5, "{s:?}");
        let grid = HourGrid::new(plan.audit.as_ref().unwrap().timezone);
        let agg = Aggregates::open(&db, &grid).unwrap();
        let (mut e, mut g) = (vec![HourAgg::default(); 6], vec![HourAgg::default(); 6]);
        agg.hours("power.energy", grid.hour_index(t0), &mut e)
            .unwrap();
        agg.hours("power.power", grid.hour_index(t0), &mut g)
            .unwrap();
        let total: f64 = e.iter().map(|a| a.sum).sum();
        assert!((total - 18_000.0).abs() < 1e-6, "{total}: {e:?}");
        assert!((e[0].sum - 6_000.0).abs() < 1e-6, "{:?}", e[0]);
        assert_eq!(g[0].gauge_mean(), Some(9_000.0));
    }

    #[test]
    fn local_and_rfc3339_timestamps() {
        let tz = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
        let parse_ts = |s: &str, tz| cells::parse_ts(s, tz, 0);
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
        // A date alone is the day's reading at `[import] daily_at` (midnight by default).
        assert_eq!(parse_ts("2025-01-01", tz), Some(t - 8 * 3_600_000));
        assert_eq!(parse_ts("yesterday", tz), None);
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
        use cells::echo;
        const MAX_ECHO_CHARS: usize = 40;
        assert_eq!(echo(b"abc"), "abc");
        assert_eq!(echo(&[b'y'; 100]).chars().count(), MAX_ECHO_CHARS + 1);
        assert_eq!(echo(b"a\x1b[2J"), "a\\u{1b}[2J");
    }
}
