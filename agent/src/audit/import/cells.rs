//! What the cells of an import file say, whatever wrote it (a CSV from Excel or a script, a workbook):
//! the header map, the long and wide layouts, times and numbers as spreadsheets write them, and the
//! messages that tell a consultant what to change (English, or Chinese with `--lang zh`).
//!
//! Header map (case and surrounding spaces ignored; `[import] headers` adds more):
//! - time: `ts`, `time`, `timestamp`, `datetime`, `date`, 时间, 日期, 日期时间, 抄表时间, 记录时间, 时间戳
//! - meter: `meter`, 表计, 仪表, 表, 表名, 表计名称, 计量器具
//! - point: `point`, 测点, 点位, 参数, 测点名称 (`meter.point` when there is no meter column)
//! - value: `value`, `reading`, 数值, 读数, 示数, 值
//!
//! Columns with another header (remarks, 备注) are left out and named in the summary. `--wide`: the first
//! column is the time, every other column a point, headed `meter.point` or a name `[import] columns` maps.
//!
//! Times: RFC 3339, or local (in `[audit] timezone`) `YYYY-M-D H:MM[:SS]`, `YYYY/M/D H:MM[:SS]` (with a
//! `T` or a space), a date alone (`YYYY-M-D`, `YYYY/M/D`, `YYYY年M月D日`: the day's reading at
//! `[import] daily_at`, default midnight); in a workbook also a date cell or an Excel serial number (a
//! whole day is a date alone). Numbers: `1234.5`, `-3`, `1e3`, thousands separated by commas
//! (`"1,234.5"`: groups of three digits); an empty cell is a missing reading.

use chrono::{Duration, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use plantmeter_common::audit::intervals::{admit_ts, admit_value, Implausible};
use plantmeter_common::audit::render::Lang;
use plantmeter_common::plan::{ImportField, ImportPlan, Plan};
use std::collections::HashMap;

/// One cell, as the file gives it (a CSV's are text; typed cells come from workbooks).
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(not(feature = "desk"), allow(dead_code))]
pub enum Cell<'a> {
    Empty,
    Text(&'a str),
    /// Bytes that are not UTF-8 (a CSV read in the wrong encoding).
    NotText(&'a [u8]),
    Number(f64),
    /// A workbook's date cell, local time.
    Date(NaiveDateTime),
    Bool(bool),
    /// A workbook's error value (`#N/A`, `#DIV/0!`).
    Error(&'a str),
}

/// A row of cells.
pub trait Record {
    fn len(&self) -> usize;
    /// The cell at a 0-based column; `Cell::Empty` past the end.
    fn cell(&self, i: usize) -> Cell<'_>;
    /// Whether the cell is empty or blank (cheaper than `cell` for text).
    fn blank(&self, i: usize) -> bool {
        is_blank(self.cell(i))
    }
}

/// A bad cell quoted in a message: at most this many characters.
const MAX_ECHO_CHARS: usize = 40;

/// A cell quoted in an error: at most [`MAX_ECHO_CHARS`] characters, control characters escaped.
pub fn echo(cell: &[u8]) -> String {
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

fn echo_cell(c: Cell<'_>) -> String {
    match c {
        Cell::Empty => String::new(),
        Cell::Text(s) => echo(s.as_bytes()),
        Cell::NotText(b) => echo(b),
        Cell::Number(v) => v.to_string(),
        Cell::Date(d) => d.to_string(),
        Cell::Bool(b) => b.to_string(),
        Cell::Error(e) => echo(e.as_bytes()),
    }
}

/// The message in the chosen language.
pub fn tr(lang: Lang, en: impl FnOnce() -> String, zh: impl FnOnce() -> String) -> String {
    match lang {
        Lang::En => en(),
        Lang::Zh => zh(),
    }
}

/// `A`, `B`, ... `Z`, `AA`: a 0-based column as Excel names it.
pub fn column_name(mut i: usize) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'A' + (i % 26) as u8);
        if i < 26 {
            break;
        }
        i = i / 26 - 1;
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}

const TS_NAMES: &[&str] = &[
    "ts",
    "time",
    "timestamp",
    "datetime",
    "date",
    "时间",
    "日期",
    "日期时间",
    "抄表时间",
    "记录时间",
    "时间戳",
];
const METER_NAMES: &[&str] = &[
    "meter",
    "表计",
    "仪表",
    "表",
    "表名",
    "表计名称",
    "计量器具",
];
const POINT_NAMES: &[&str] = &["point", "测点", "点位", "参数", "测点名称"];
const VALUE_NAMES: &[&str] = &["value", "reading", "数值", "读数", "示数", "值"];

fn field_name(f: ImportField, lang: Lang) -> &'static str {
    match (f, lang) {
        (ImportField::Ts, Lang::En) => "ts",
        (ImportField::Meter, Lang::En) => "meter",
        (ImportField::Point, Lang::En) => "point",
        (ImportField::Value, Lang::En) => "value",
        (ImportField::Ts, Lang::Zh) => "时间",
        (ImportField::Meter, Lang::Zh) => "表计",
        (ImportField::Point, Lang::Zh) => "测点",
        (ImportField::Value, Lang::Zh) => "数值",
    }
}

fn norm(h: &str) -> String {
    h.trim()
        .trim_start_matches('\u{feff}')
        .trim()
        .to_lowercase()
}

/// Which field a header names: the config's map first, then the built-in one.
fn header_field(h: &str, extra: &[(String, ImportField)]) -> Option<ImportField> {
    let n = norm(h);
    if let Some((_, f)) = extra.iter().find(|(k, _)| norm(k) == n) {
        return Some(*f);
    }
    [
        (TS_NAMES, ImportField::Ts),
        (METER_NAMES, ImportField::Meter),
        (POINT_NAMES, ImportField::Point),
        (VALUE_NAMES, ImportField::Value),
    ]
    .into_iter()
    .find(|(names, _)| names.contains(&n.as_str()))
    .map(|(_, f)| f)
}

/// How rows are laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// One reading per row.
    Long {
        ts: usize,
        meter: Option<usize>,
        point: usize,
        value: usize,
    },
    /// A row per time, a column per point: (column, point index).
    Wide {
        ts: usize,
        /// Shared (`Rc`): a row's readings are made without copying it.
        columns: std::rc::Rc<[(usize, usize)]>,
    },
}

/// The points of a plan by name, and the rules of `[import]`.
pub struct Points<'p> {
    index: HashMap<&'p str, HashMap<&'p str, usize>>,
    /// `meter.point` of each point index.
    pub names: Vec<String>,
    meters: Vec<&'p str>,
    pub rules: &'p ImportPlan,
}

impl<'p> Points<'p> {
    pub fn new(plan: &'p Plan) -> Points<'p> {
        let mut index: HashMap<&str, HashMap<&str, usize>> = HashMap::new();
        let mut names = Vec::new();
        let mut meters = Vec::new();
        for m in plan.meters() {
            meters.push(m.name.as_str());
            let e = index.entry(m.name.as_str()).or_default();
            for p in &m.points {
                e.insert(p.name.as_str(), names.len());
                names.push(format!("{}.{}", m.name, p.name));
            }
        }
        Points {
            index,
            names,
            meters,
            rules: &plan.import,
        }
    }

    fn find(&self, meter: &str, point: &str) -> Option<usize> {
        self.index.get(meter)?.get(point).copied()
    }

    fn meter_list(&self) -> String {
        self.meters.join(", ")
    }

    fn point_list(&self, meter: &str) -> String {
        let mut v: Vec<&str> = self
            .index
            .get(meter)
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default();
        v.sort_unstable();
        v.join(", ")
    }
}

/// A header that cannot be read: every problem of it, and the columns left out otherwise.
pub struct HeaderError(pub Vec<(Option<usize>, String)>);

/// Read the header row into a layout; also the columns left out (header text), for the summary.
pub fn layout(
    header: &dyn Record,
    wide: bool,
    points: &Points<'_>,
    lang: Lang,
) -> Result<(Layout, Vec<String>), HeaderError> {
    let texts: Vec<String> = (0..header.len())
        .map(|i| match header.cell(i) {
            Cell::Text(s) => s.trim().to_string(),
            Cell::Empty => String::new(),
            c => echo_cell(c),
        })
        .collect();
    let mut problems = Vec::new();
    let mut ignored = Vec::new();
    if wide {
        let mut columns = Vec::new();
        for (i, h) in texts.iter().enumerate().skip(1) {
            if h.is_empty() {
                continue;
            }
            let mapped = points
                .rules
                .columns
                .iter()
                .find(|(k, _)| norm(k) == norm(h))
                .map_or(h.as_str(), |(_, p)| p.as_str());
            let found = mapped
                .split_once('.')
                .and_then(|(m, p)| points.find(m.trim(), p.trim()));
            match found {
                Some(p) => columns.push((i, p)),
                None => problems.push((
                    Some(i),
                    tr(
                        lang,
                        || format!(
                            "column {} `{}` is not a point: head each column after the time with meter.point \
                             (e.g. {}), or map the header in the config's [import] columns",
                            column_name(i),
                            echo(h.as_bytes()),
                            points.names.first().map_or("main-power.energy", String::as_str)
                        ),
                        || format!(
                            "第{}列的表头 `{}` 不是测点：时间列之后的每一列表头应写成 表计.测点（例如 {}），\
                             或在配置文件的 [import] columns 中为该表头指定测点",
                            column_name(i),
                            echo(h.as_bytes()),
                            points.names.first().map_or("main-power.energy", String::as_str)
                        ),
                    ),
                )),
            }
        }
        if columns.is_empty() && problems.is_empty() {
            problems.push((
                None,
                tr(
                    lang,
                    || "no point column: a wide sheet has the time in its first column and one column per meter.point".to_string(),
                    || "没有测点列：宽表的第一列为时间，其后每列一个 表计.测点".to_string(),
                ),
            ));
        }
        return if problems.is_empty() {
            Ok((
                Layout::Wide {
                    ts: 0,
                    columns: columns.into(),
                },
                ignored,
            ))
        } else {
            Err(HeaderError(problems))
        };
    }
    let mut at: [Option<usize>; 4] = [None; 4];
    let slot = |f: ImportField| match f {
        ImportField::Ts => 0,
        ImportField::Meter => 1,
        ImportField::Point => 2,
        ImportField::Value => 3,
    };
    for (i, h) in texts.iter().enumerate() {
        if h.is_empty() {
            continue;
        }
        match header_field(h, &points.rules.headers) {
            Some(f) => {
                if let Some(j) = at[slot(f)] {
                    problems.push((
                        Some(i),
                        tr(
                            lang,
                            || {
                                format!(
                                    "columns {} and {} are both `{}`: keep one of them",
                                    column_name(j),
                                    column_name(i),
                                    field_name(f, Lang::En)
                                )
                            },
                            || {
                                format!(
                                    "第{}列和第{}列都是“{}”：请只保留一列",
                                    column_name(j),
                                    column_name(i),
                                    field_name(f, Lang::Zh)
                                )
                            },
                        ),
                    ));
                } else {
                    at[slot(f)] = Some(i);
                }
            }
            None => ignored.push(format!("{} `{}`", column_name(i), echo(h.as_bytes()))),
        }
    }
    for (f, names) in [
        (ImportField::Ts, TS_NAMES),
        (ImportField::Point, POINT_NAMES),
        (ImportField::Value, VALUE_NAMES),
    ] {
        if at[slot(f)].is_none() {
            let list = names.join(", ");
            problems.push((
                None,
                tr(
                    lang,
                    || format!(
                        "the header has no `{}` column: name one {list} (or map yours in the config's \
                         [import] headers); a good header is `ts,meter,point,value` or `时间,表计,测点,数值`",
                        field_name(f, Lang::En)
                    ),
                    || format!(
                        "表头缺少“{}”列：请将该列命名为 {list} 之一（或在配置文件的 [import] headers 中映射）；\
                         例如表头 `时间,表计,测点,数值`",
                        field_name(f, Lang::Zh)
                    ),
                ),
            ));
        }
    }
    match (at[0], at[1], at[2], at[3]) {
        (Some(ts), meter, Some(point), Some(value)) if problems.is_empty() => Ok((
            Layout::Long {
                ts,
                meter,
                point,
                value,
            },
            ignored,
        )),
        _ => Err(HeaderError(problems)),
    }
}

/// One good reading of a row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub point: usize,
    pub ts: i64,
    pub value: Option<f64>,
    /// The 0-based column it came from (the value's; a long row's time column for a row-wide problem).
    pub col: usize,
}

/// What one cell or row was refused for: the column (0-based) where known, and the message.
pub type Refused = (Option<usize>, String);

/// Turns records into readings, checking each on its own.
pub struct Reader<'p> {
    pub points: Points<'p>,
    pub layout: Layout,
    /// Header texts, for messages.
    headers: Vec<String>,
    tz: FixedOffset,
    now_ms: i64,
    lang: Lang,
    /// The last time text parsed and its instant (rows of one time come together).
    cache: (String, i64),
    /// A workbook uses the 1904 date system.
    pub epoch_1904: bool,
}

impl<'p> Reader<'p> {
    pub fn new(
        points: Points<'p>,
        layout: Layout,
        header: &dyn Record,
        tz: FixedOffset,
        now_ms: i64,
        lang: Lang,
    ) -> Reader<'p> {
        let headers = (0..header.len())
            .map(|i| match header.cell(i) {
                Cell::Text(s) => s.trim().to_string(),
                c => echo_cell(c),
            })
            .collect();
        Reader {
            points,
            layout,
            headers,
            tz,
            now_ms,
            lang,
            cache: (String::new(), 0),
            epoch_1904: false,
        }
    }

    /// "column D `value`" / "第D列（数值）".
    fn col(&self, i: usize) -> String {
        let h = self.headers.get(i).map_or("", String::as_str);
        match self.lang {
            Lang::En => format!("column {} `{}`", column_name(i), echo(h.as_bytes())),
            Lang::Zh => format!("第{}列“{}”", column_name(i), echo(h.as_bytes())),
        }
    }

    /// The readings of one record into `out`; Err for the first problem of the row.
    pub fn readings(&mut self, r: &dyn Record, out: &mut Vec<Reading>) -> Result<(), Refused> {
        out.clear();
        // One look at each cell (the import's hot path): a blank row is skipped, and a value under no
        // header (past the header, or under an empty one) would be lost, so it is refused.
        let (mut blank, mut unheaded) = (true, None);
        for i in 0..r.len() {
            if !r.blank(i) {
                blank = false;
                if unheaded.is_none() && self.headers.get(i).is_none_or(|h| h.is_empty()) {
                    unheaded = Some(i);
                }
            }
        }
        if blank {
            return Ok(());
        }
        if let Some(i) = unheaded {
            let v = echo_cell(r.cell(i));
            return Err((
                Some(i),
                tr(
                    self.lang,
                    || {
                        format!(
                        "`{v}` in column {}, which has no header: put it under its column, or give the column a \
                         header; a number written with a comma must be in quotes (\"1,234.5\")",
                        column_name(i)
                    )
                    },
                    || {
                        format!(
                            "第{}列没有表头，却有内容 `{v}`：请移到对应的列下，或为该列加上表头；带逗号的数字须加引号（\"1,234.5\"）",
                            column_name(i)
                        )
                    },
                ),
            ));
        }
        match self.layout.clone() {
            Layout::Long {
                ts,
                meter,
                point,
                value,
            } => {
                let need = [Some(ts), meter, Some(point), Some(value)]
                    .into_iter()
                    .flatten()
                    .max()
                    .unwrap_or(0)
                    + 1;
                if r.len() < need {
                    let header = self.headers.join(",");
                    let found = r.len();
                    return Err((
                        None,
                        tr(
                            self.lang,
                            || {
                                format!("expected {need} fields `{header}`, found {found}: a row needs a cell under each of these headers")
                            },
                            || {
                                format!("应有 {need} 个字段（{header}），实际 {found} 个：每行都要有这些列")
                            },
                        ),
                    ));
                }
                let t = self.ts(r.cell(ts), ts)?;
                let pi = self.point(r, meter, point)?;
                let v = self.value(r.cell(value), value, pi)?;
                let name = &self.points.names[pi];
                self.admit(t, r.cell(ts), ts, name)?;
                out.push(Reading {
                    point: pi,
                    ts: t,
                    value: v,
                    col: value,
                });
            }
            Layout::Wide { ts, columns } => {
                let t = self.ts(r.cell(ts), ts)?;
                for &(c, pi) in columns.iter() {
                    let cell = r.cell(c);
                    if is_blank(cell) {
                        continue;
                    }
                    let v = self.value(cell, c, pi)?;
                    self.admit(t, r.cell(ts), ts, &self.points.names[pi])?;
                    out.push(Reading {
                        point: pi,
                        ts: t,
                        value: v,
                        col: c,
                    });
                }
            }
        }
        Ok(())
    }

    fn admit(&self, t: i64, cell: Cell<'_>, col: usize, name: &str) -> Result<(), Refused> {
        admit_ts(t, self.now_ms).map_err(|why| {
            let x = echo_cell(cell);
            let en_why = why.to_string();
            (
                Some(col),
                tr(
                    self.lang,
                    || format!("{name}: timestamp `{x}` {en_why}: readings from 2000-01-01 to today are imported"),
                    || {
                        let w = match why {
                            Implausible::TooEarly => "早于 2000-01-01",
                            _ => "晚于当前时间一天以上",
                        };
                        format!("{name}：时间 `{x}` {w}：只导入 2000-01-01 至今的读数")
                    },
                ),
            )
        })
    }

    fn text<'c>(&self, c: Cell<'c>, col: usize) -> Result<&'c str, Refused> {
        match c {
            Cell::Text(s) => Ok(s.trim()),
            Cell::NotText(b) => Err((Some(col), not_text(b, self.lang))),
            other => Err((
                Some(col),
                tr(
                    self.lang,
                    || {
                        format!(
                            "{}: expected a name, found `{}`",
                            self.col(col),
                            echo_cell(other)
                        )
                    },
                    || format!("{}：应为名称，实际为 `{}`", self.col(col), echo_cell(other)),
                ),
            )),
        }
    }

    fn point(&self, r: &dyn Record, meter: Option<usize>, point: usize) -> Result<usize, Refused> {
        let pcell = match r.cell(point) {
            Cell::Number(v) => return self.point_named(r, meter, point, &v.to_string()),
            c => self.text(c, point)?,
        };
        self.point_named(r, meter, point, pcell)
    }

    fn point_named(
        &self,
        r: &dyn Record,
        meter: Option<usize>,
        pcol: usize,
        p: &str,
    ) -> Result<usize, Refused> {
        // Borrowed, not copied: this runs for every row of a file.
        let number;
        let (m, mcol, p): (&str, usize, &str) = match meter {
            Some(mc) => {
                let m = match r.cell(mc) {
                    Cell::Number(v) => {
                        number = v.to_string();
                        number.as_str()
                    }
                    c => self.text(c, mc)?,
                };
                (m, mc, p)
            }
            None => match p.split_once('.') {
                Some((m, p)) => (m.trim(), pcol, p.trim()),
                None => {
                    return Err((
                        Some(pcol),
                        tr(
                            self.lang,
                            || {
                                format!("{}: `{}` must be written meter.point when there is no meter column (e.g. {})", self.col(pcol), echo(p.as_bytes()), self.points.names.first().map_or("", String::as_str))
                            },
                            || {
                                format!(
                                    "{}：没有表计列时，`{}` 应写成 表计.测点（例如 {}）",
                                    self.col(pcol),
                                    echo(p.as_bytes()),
                                    self.points.names.first().map_or("", String::as_str)
                                )
                            },
                        ),
                    ))
                }
            },
        };
        if !self.points.index.contains_key(m) {
            let list = self.points.meter_list();
            return Err((
                Some(mcol),
                tr(
                    self.lang,
                    || {
                        format!(
                            "unknown meter `{}` in {}: the config's meters are {list}",
                            echo(m.as_bytes()),
                            self.col(mcol)
                        )
                    },
                    || {
                        format!(
                            "{}的表计 `{}` 不在配置文件中：配置的表计有 {list}",
                            self.col(mcol),
                            echo(m.as_bytes())
                        )
                    },
                ),
            ));
        }
        self.points.find(m, p).ok_or_else(|| {
            let list = self.points.point_list(m);
            (
                Some(pcol),
                tr(
                    self.lang,
                    || {
                        format!(
                            "unknown point `{}.{}` in {}: the points of {} are {list}",
                            echo(m.as_bytes()),
                            echo(p.as_bytes()),
                            self.col(pcol),
                            echo(m.as_bytes())
                        )
                    },
                    || {
                        format!(
                            "{}的测点 `{}.{}` 不在配置文件中：表计 {} 的测点有 {list}",
                            self.col(pcol),
                            echo(m.as_bytes()),
                            echo(p.as_bytes()),
                            echo(m.as_bytes())
                        )
                    },
                ),
            )
        })
    }

    fn ts(&mut self, c: Cell<'_>, col: usize) -> Result<i64, Refused> {
        let daily = self.points.rules.daily_at_s;
        let local = |d: NaiveDateTime| {
            self.tz
                .from_local_datetime(&d)
                .single()
                .map(|t| t.timestamp_millis())
        };
        let found = match c {
            Cell::Text(s) => {
                let s = s.trim();
                if s == self.cache.0 && !s.is_empty() {
                    return Ok(self.cache.1);
                }
                let t = parse_ts(s, self.tz, daily);
                if let Some(t) = t {
                    self.cache.0.clear();
                    self.cache.0.push_str(s);
                    self.cache.1 = t;
                }
                t
            }
            Cell::Date(d) => local(date_only_at(d, daily)),
            Cell::Number(v) => excel_serial(v, self.epoch_1904)
                .map(|d| date_only_at(d, daily))
                .and_then(local),
            Cell::NotText(b) => return Err((Some(col), not_text(b, self.lang))),
            _ => None,
        };
        found.ok_or_else(|| {
            let x = echo_cell(c);
            let at = format!("{:02}:{:02}", daily / 3600, daily / 60 % 60);
            (
                Some(col),
                tr(
                    self.lang,
                    || format!(
                        "bad timestamp `{x}` in {}: write the date and time like 2025-03-01 08:00, 2025/3/1 8:00 \
                         or 2025-03-01T08:00:00+08:00, or the date alone, 2025-03-01 (the day's reading at {at})",
                        self.col(col)
                    ),
                    || format!(
                        "{}的时间 `{x}` 无法识别：请写成 2025-03-01 08:00、2025/3/1 8:00 或 2025-03-01T08:00:00+08:00，\
                         或只写日期 2025-03-01（记为当天 {at} 的读数）",
                        self.col(col)
                    ),
                ),
            )
        })
    }

    fn value(&self, c: Cell<'_>, col: usize, pi: usize) -> Result<Option<f64>, Refused> {
        let name = &self.points.names[pi];
        let v = match c {
            Cell::Empty => return Ok(None),
            Cell::Text(s) if s.trim().is_empty() => return Ok(None),
            Cell::Number(v) => Some(v),
            Cell::Text(s) => parse_number(s.trim()),
            Cell::NotText(b) => return Err((Some(col), not_text(b, self.lang))),
            Cell::Error(e) => {
                return Err((
                    Some(col),
                    tr(
                        self.lang,
                        || {
                            format!("{name}: the cell shows Excel's error {e} in {}: enter the reading (e.g. 1234.5) or leave the cell empty", self.col(col))
                        },
                        || {
                            format!(
                                "{name}：{}显示 Excel 错误 {e}：请填入读数（例如 1234.5）或留空",
                                self.col(col)
                            )
                        },
                    ),
                ))
            }
            Cell::Bool(_) | Cell::Date(_) => None,
        };
        let Some(v) = v else {
            let x = echo_cell(c);
            return Err((
                Some(col),
                tr(
                    self.lang,
                    || {
                        format!(
                        "bad number `{x}` for {name} in {}: write a number like 1234.5 or \"1,234.5\"; leave the cell empty for a missing reading",
                        self.col(col)
                    )
                    },
                    || {
                        format!(
                        "{name} 的数值 `{x}`（{}）不是数字：请写成 1234.5 或 \"1,234.5\" 这样的数；缺少读数时留空",
                        self.col(col)
                    )
                    },
                ),
            ));
        };
        admit_value(v).map(Some).map_err(|_| {
            let x = echo_cell(c);
            (
                Some(col),
                tr(
                    self.lang,
                    || format!("{name}: value `{x}` is not finite or beyond ±1e12: check the cell in {}", self.col(col)),
                    || format!("{name}：数值 `{x}` 不是有限数或超出 ±1e12：请检查{}", self.col(col)),
                ),
            )
        })
    }
}

fn is_blank(c: Cell<'_>) -> bool {
    match c {
        Cell::Empty => true,
        Cell::Text(s) => s.trim().is_empty(),
        _ => false,
    }
}

fn not_text(b: &[u8], lang: Lang) -> String {
    let x = echo(b);
    // The gateway build has no GBK decoder (feature `desk`).
    let fix_en = if cfg!(feature = "desk") {
        "add --encoding gbk, or save it as \"CSV UTF-8\""
    } else {
        "save it as \"CSV UTF-8\" (or import it with the desk build, which reads GBK)"
    };
    let fix_zh = if cfg!(feature = "desk") {
        "请加 --encoding gbk，或另存为“CSV UTF-8”"
    } else {
        "请另存为“CSV UTF-8”（或用可读 GBK 的桌面版导入）"
    };
    tr(
        lang,
        || {
            format!(
            "`{x}` is not UTF-8 text: if Excel saved the file as plain CSV on Chinese Windows (GBK), {fix_en}"
        )
        },
        || {
            format!("`{x}` 不是 UTF-8 文本：若文件由中文 Windows 的 Excel 另存为普通 CSV（GBK），{fix_zh}")
        },
    )
}

/// A date alone (midnight) is the day's reading at `daily_s` seconds after midnight.
fn date_only_at(d: NaiveDateTime, daily_s: u32) -> NaiveDateTime {
    if d.time() == NaiveTime::MIN {
        d + Duration::seconds(i64::from(daily_s))
    } else {
        d
    }
}

/// An Excel serial date (days since 1899-12-30, or 1904-01-01 in the 1904 system), to the second.
pub fn excel_serial(v: f64, epoch_1904: bool) -> Option<NaiveDateTime> {
    // 1900-01-01 .. 9999-12-31
    if !(1.0..2_958_466.0).contains(&v) {
        return None;
    }
    let base = if epoch_1904 {
        NaiveDate::from_ymd_opt(1904, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(1899, 12, 30)?
    };
    let secs = (v * 86_400.0).round() as i64;
    base.and_hms_opt(0, 0, 0)?
        .checked_add_signed(Duration::seconds(secs))
}

/// Timestamps of a file: RFC 3339, local date and time, or a local date alone (at `daily_s`).
pub fn parse_ts(s: &str, tz: FixedOffset, daily_s: u32) -> Option<i64> {
    // What `replace --at` reads too (RFC 3339, `YYYY-MM-DD HH:MM[:SS]`), then what spreadsheets add.
    if let Some(t) = plantmeter_common::model::parse_ts_in(s, tz) {
        return Some(t);
    }
    // chrono's %m %d %H take one or two digits: 2025/3/1 8:00 and 2025-3-1 8:00 read as written.
    const LOCAL: [&str; 4] = [
        "%Y/%m/%d %H:%M:%S%.f",
        "%Y/%m/%dT%H:%M:%S%.f",
        "%Y/%m/%d %H:%M",
        "%Y/%m/%dT%H:%M",
    ];
    const DATES: [&str; 3] = ["%Y-%m-%d", "%Y/%m/%d", "%Y年%m月%d日"];
    let naive = LOCAL
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .or_else(|| {
            DATES.iter().find_map(|f| {
                let d = NaiveDate::parse_from_str(s, f).ok()?;
                Some(d.and_time(NaiveTime::MIN) + Duration::seconds(i64::from(daily_s)))
            })
        })?;
    tz.from_local_datetime(&naive)
        .single()
        .map(|t| t.timestamp_millis())
}

/// A number as spreadsheets write it: plain (`1234.5`, `-3`, `1e3`) or with thousands separated by
/// commas in groups of three (`1,234.5`); anything else (a decimal comma `1234,5`, `1,23`) is None.
pub fn parse_number(s: &str) -> Option<f64> {
    if let Ok(v) = s.parse::<f64>() {
        return Some(v);
    }
    if !s.contains(',') {
        return None;
    }
    let (sign, body) = match s.strip_prefix('-') {
        Some(b) => ("-", b),
        None => ("", s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let mut groups = int.split(',');
    let first = groups.next()?;
    let ok = (1..=3).contains(&first.len())
        && first.bytes().all(|b| b.is_ascii_digit())
        && groups.all(|g| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit()))
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
    if !ok {
        return None;
    }
    let mut plain = String::with_capacity(s.len());
    plain.push_str(sign);
    plain.extend(int.chars().filter(|&c| c != ','));
    if let Some(f) = frac {
        plain.push('.');
        plain.push_str(f);
    }
    plain.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_spreadsheets_write_them() {
        for (s, v) in [
            ("1234.5", Some(1234.5)),
            ("1,234.5", Some(1234.5)),
            ("-1,234,567", Some(-1_234_567.0)),
            ("12,345", Some(12_345.0)),
            ("1e3", Some(1000.0)),
            ("1234,5", None),
            ("1,23", None),
            ("1,,234", None),
            (",123", None),
            ("1,234.", None),
            ("lots", None),
        ] {
            assert_eq!(parse_number(s), v, "{s}");
        }
    }

    #[test]
    fn times_as_spreadsheets_write_them() {
        let tz = FixedOffset::east_opt(8 * 3600).unwrap();
        let t = parse_ts("2025-03-01T08:00:00+08:00", tz, 0).unwrap();
        for s in [
            "2025-03-01 08:00",
            "2025-3-1 8:00",
            "2025/3/1 8:00",
            "2025/03/01 08:00:00",
            "2025-03-01T08:00",
            "2025-03-01T00:00:00Z",
            "2025-03-01 08:00:00.000",
        ] {
            assert_eq!(parse_ts(s, tz, 0), Some(t), "{s}");
        }
        for s in ["2025-03-01", "2025-3-1", "2025/3/1", "2025年3月1日"] {
            assert_eq!(parse_ts(s, tz, 8 * 3600), Some(t), "{s}");
            assert_eq!(parse_ts(s, tz, 0), Some(t - 8 * 3_600_000), "{s}");
        }
        assert_eq!(parse_ts("yesterday", tz, 0), None);
        assert_eq!(parse_ts("2025-02-30", tz, 0), None);
        // Excel serials: 45717 is 2025-03-01; a third of a day is 08:00.
        let d = excel_serial(45717.0 + 1.0 / 3.0, false).unwrap();
        assert_eq!(d.to_string(), "2025-03-01 08:00:00");
        assert_eq!(
            excel_serial(45717.0 - 1462.0, true).unwrap().to_string(),
            "2025-03-01 00:00:00"
        );
    }

    #[test]
    fn column_names_as_excel_shows_them() {
        assert_eq!(column_name(0), "A");
        assert_eq!(column_name(25), "Z");
        assert_eq!(column_name(26), "AA");
        assert_eq!(column_name(27), "AB");
        assert_eq!(column_name(701), "ZZ");
        assert_eq!(column_name(702), "AAA");
    }
}
