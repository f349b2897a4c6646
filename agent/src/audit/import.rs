//! `plantmeter import --config FILE --csv FILE`: historical readings into the audit's hourly aggregates.
//!
//! Every row is validated first; if any is bad nothing is imported and every bad row is reported as
//! `FILE:LINE: message` (exit 2). Then each point's rows, sorted by time, go through the same interval engine
//! as live readings, and the resulting day blocks and last readings are written in one atomic batch.
//! A point's rows must lie entirely before or entirely after what the store already holds of it, so an import
//! can fill history before the agent started, or continue after it, but never count a period twice.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use plantmeter_common::audit::hourly::{DayBlock, HourGrid};
use plantmeter_common::audit::intervals::{gap_threshold_ms, Tracker};
use plantmeter_common::model::{format_ts_ms, parse_ts_ms};
use plantmeter_common::plan::Plan;

use super::aggregates::{Aggregates, PointState};
use crate::exit::BadInput;

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
pub const MAX_ERRORS_SHOWN: usize = 50;

pub fn main(args: ImportArgs) -> anyhow::Result<()> {
    let plan = load_plan(&args.config)?;
    let bytes = std::fs::read(&args.csv).map_err(|e| {
        anyhow::Error::new(BadInput(format!(
            "{}: cannot read: {e}",
            args.csv.display()
        )))
    })?;
    let progress = std::io::stderr().is_terminal();
    let parsed = parse(&plan, &args.csv, &bytes, progress)?;
    let db = open_store(&plan.gateway.data_dir)?;
    let s = import(&db, &plan, &args.csv, parsed, progress)?;
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
    Ok(())
}

/// Load and validate the config; errors exit 2.
pub fn load_plan(path: &Path) -> anyhow::Result<Plan> {
    let plan = plantmeter_common::config::load(path)
        .map_err(|e| anyhow::Error::new(BadInput(e.to_string())))?;
    if plan.audit.is_none() {
        return Err(anyhow::Error::new(BadInput(format!(
            "{}: no [audit] section: the audit needs one (timezone, baseline, production, inputs)",
            path.display()
        ))));
    }
    Ok(plan)
}

/// Open the store, saying clearly when a running agent holds it.
pub fn open_store(dir: &Path) -> anyhow::Result<sled::Db> {
    crate::store::open_db(dir).map_err(|e| {
        let msg = format!("{e:#}");
        if msg.contains("could not acquire lock") || msg.contains("in use by another process") {
            anyhow::anyhow!(
                "the store at {} is in use by another process (is `plantmeter run` running with this config?); stop it first",
                dir.display()
            )
        } else {
            e
        }
    })
}

/// One row of one point.
#[derive(Debug, Clone, Copy)]
struct Row {
    ts: i64,
    /// None when the value cell is empty (a missing reading).
    value: Option<f64>,
    line: u32,
}

/// Validated rows, per point of the plan (in `plan.meters()` / points order).
pub struct Parsed {
    rows: Vec<Vec<Row>>,
    count: usize,
    missing: usize,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub rows: usize,
    pub missing: usize,
    pub points: usize,
    pub first_ts: i64,
    pub last_ts: i64,
    /// Point-hours with data written.
    pub hours: usize,
}

fn bad(errors: Vec<(u32, String)>) -> anyhow::Error {
    let mut errors = errors;
    errors.sort_by_key(|e| e.0);
    let total = errors.len();
    let mut msg: Vec<String> = errors
        .into_iter()
        .take(MAX_ERRORS_SHOWN)
        .map(|e| e.1)
        .collect();
    if total > MAX_ERRORS_SHOWN {
        msg.push(format!(
            "... and {} more bad rows ({total} in all); nothing was imported",
            total - MAX_ERRORS_SHOWN
        ));
    } else {
        msg.push(format!(
            "{total} bad row{}; nothing was imported",
            if total == 1 { "" } else { "s" }
        ));
    }
    anyhow::Error::new(BadInput(msg.join("\n")))
}

/// Validate every row of a CSV file against the plan.
pub fn parse(plan: &Plan, file: &Path, bytes: &[u8], progress: bool) -> anyhow::Result<Parsed> {
    let f = file.display();
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1;
            return Err(bad(vec![(
                line as u32,
                format!("{f}:{line}: not UTF-8 text"),
            )]));
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut index: HashMap<&str, HashMap<&str, usize>> = HashMap::new();
    let mut n_points = 0;
    for m in plan.meters() {
        let e = index.entry(m.name.as_str()).or_default();
        for p in &m.points {
            e.insert(p.name.as_str(), n_points);
            n_points += 1;
        }
    }
    let mut rows: Vec<Vec<Row>> = vec![Vec::new(); n_points];
    let mut errors: Vec<(u32, String)> = Vec::new();
    let mut lines = text.split('\n');
    let header = lines.next().unwrap_or("").trim_end_matches('\r').trim();
    if header != HEADER {
        return Err(bad(vec![(
            1,
            format!("{f}:1: the header must be exactly `{HEADER}`, found `{header}`"),
        )]));
    }
    let bar = progress.then(|| {
        let b = ProgressBar::new(text.len() as u64);
        b.set_style(
            ProgressStyle::with_template("checking {bar:40} {bytes}/{total_bytes} {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    });
    let (mut count, mut missing) = (0usize, 0usize);
    let mut last_ts_str = "";
    let mut last_ts = 0i64;
    let mut done_bytes = header.len() + 1;
    for (i, raw) in lines.enumerate() {
        let line_no = (i + 2) as u32;
        done_bytes += raw.len() + 1;
        if let Some(b) = &bar {
            if line_no.is_multiple_of(65_536) {
                b.set_position(done_bytes as u64);
            }
        }
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            continue;
        }
        let mut it = line.splitn(5, ',');
        let (Some(ts), Some(meter), Some(point), Some(value), None) =
            (it.next(), it.next(), it.next(), it.next(), it.next())
        else {
            let n = line.split(',').count();
            errors.push((
                line_no,
                format!("{f}:{line_no}: expected 4 fields `{HEADER}`, found {n}"),
            ));
            continue;
        };
        let ts = ts.trim();
        let t = if ts == last_ts_str {
            Some(last_ts)
        } else {
            parse_ts_ms(ts)
        };
        let Some(t) = t else {
            errors.push((
                line_no,
                format!("{f}:{line_no}: bad timestamp `{ts}` (RFC 3339, e.g. 2025-01-01T08:00:00+08:00)"),
            ));
            continue;
        };
        last_ts_str = ts;
        last_ts = t;
        let (meter, point) = (meter.trim(), point.trim());
        let Some(points) = index.get(meter) else {
            errors.push((line_no, format!("{f}:{line_no}: unknown meter `{meter}`")));
            continue;
        };
        let Some(&pi) = points.get(point) else {
            errors.push((
                line_no,
                format!("{f}:{line_no}: unknown point `{meter}.{point}`"),
            ));
            continue;
        };
        let value = value.trim();
        let v = if value.is_empty() {
            missing += 1;
            None
        } else {
            match value.parse::<f64>() {
                Ok(v) if v.is_finite() => Some(v),
                _ => {
                    errors.push((
                        line_no,
                        format!("{f}:{line_no}: bad number `{value}` for {meter}.{point}"),
                    ));
                    continue;
                }
            }
        };
        rows[pi].push(Row {
            ts: t,
            value: v,
            line: line_no,
        });
        count += 1;
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    // Per point: sort by time (files are usually sorted already), then no two readings at one instant.
    let names: Vec<String> = plan
        .meters()
        .flat_map(|m| {
            m.points
                .iter()
                .map(move |p| format!("{}.{}", m.name, p.name))
        })
        .collect();
    for (pi, r) in rows.iter_mut().enumerate() {
        if !r.windows(2).all(|w| w[0].ts <= w[1].ts) {
            r.sort_by_key(|x| (x.ts, x.line));
        }
        for w in r.windows(2) {
            if w[0].ts == w[1].ts {
                errors.push((
                    w[1].line,
                    format!(
                        "{f}:{}: {} has another reading at {} (line {})",
                        w[1].line,
                        names[pi],
                        format_ts_ms(w[1].ts),
                        w[0].line
                    ),
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(bad(errors));
    }
    if count == 0 {
        return Err(anyhow::Error::new(BadInput(format!(
            "{f}: no rows after the header; nothing was imported"
        ))));
    }
    Ok(Parsed {
        rows,
        count,
        missing,
    })
}

/// The median interval between a point's rows (ms), the cadence its gaps are judged by.
fn median_interval(rows: &[Row]) -> i64 {
    let mut d: Vec<i64> = rows.windows(2).map(|w| w[1].ts - w[0].ts).collect();
    if d.is_empty() {
        return 0;
    }
    let mid = d.len() / 2;
    *d.select_nth_unstable(mid).1
}

/// Import validated rows into the store (one atomic batch).
pub fn import(
    db: &sled::Db,
    plan: &Plan,
    file: &Path,
    parsed: Parsed,
    progress: bool,
) -> anyhow::Result<Summary> {
    let audit = plan
        .audit
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no [audit] section"))?;
    let grid = HourGrid::new(audit.timezone);
    let mut agg = Aggregates::open(db, &grid)?;
    let mut batch = sled::Batch::default();
    let points: Vec<(String, &plantmeter_common::plan::Point, u32)> = plan
        .meters()
        .flat_map(|m| {
            m.points
                .iter()
                .map(move |p| (format!("{}.{}", m.name, p.name), p))
        })
        .map(|(n, p)| {
            let id = agg.id(&n, &mut batch);
            (n, p, id)
        })
        .collect();

    // Where each point's rows go relative to what the store holds; overlaps are refused before writing.
    let mut states = Vec::with_capacity(points.len());
    let mut errors = Vec::new();
    for ((name, _, id), rows) in points.iter().zip(&parsed.rows) {
        let st = agg.state(*id)?;
        if let (Some(s), Some(first), Some(last)) = (st, rows.first(), rows.last()) {
            if !(first.ts > s.last.latest_ts() || last.ts < s.first_ts) {
                errors.push((
                    first.line,
                    format!(
                        "{}:{}: {name}: rows from {} to {} overlap the readings the store already holds ({} to {}); \
                         import only readings before the first or after the last",
                        file.display(),
                        first.line,
                        format_ts_ms(first.ts),
                        format_ts_ms(last.ts),
                        format_ts_ms(s.first_ts),
                        format_ts_ms(s.last.latest_ts())
                    ),
                ));
            }
        }
        states.push(st);
    }
    if !errors.is_empty() {
        return Err(bad(errors));
    }

    let bar = progress.then(|| {
        let b = ProgressBar::new(parsed.count as u64);
        b.set_style(
            ProgressStyle::with_template("importing {bar:40} {pos}/{len} rows {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    });
    let mut summary = Summary {
        rows: parsed.count,
        missing: parsed.missing,
        points: 0,
        first_ts: i64::MAX,
        last_ts: i64::MIN,
        hours: 0,
    };
    for (((_, point, id), rows), st) in points.iter().zip(&parsed.rows).zip(&states) {
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            continue;
        };
        summary.points += 1;
        summary.first_ts = summary.first_ts.min(first.ts);
        summary.last_ts = summary.last_ts.max(last.ts);
        let after = st.filter(|s| first.ts > s.last.latest_ts());
        let before = st.filter(|s| last.ts < s.first_ts);
        let mut tracker = Tracker::new(
            point.kind,
            point.rollover,
            gap_threshold_ms(median_interval(rows)),
        );
        tracker.last = after.map(|s| s.last);
        let lo = after.map_or(first.ts, |s| s.last.ts_ms);
        let hi = before.map_or(last.ts, |s| s.first_ts);
        let d0 = HourGrid::day_of_hour(grid.hour_index(lo));
        let d1 = HourGrid::day_of_hour(grid.hour_index(hi));
        let mut blocks = vec![DayBlock::default(); (d1 - d0 + 1) as usize];
        let mut add = |h: i64, a: plantmeter_common::audit::hourly::HourAgg| {
            let i = (HourGrid::day_of_hour(h) - d0) as usize;
            if let Some(b) = blocks.get_mut(i) {
                b.0[h.rem_euclid(24) as usize].merge(&a);
            }
        };
        let mut first_good: Option<(i64, f64)> = None;
        for r in rows {
            tracker.push(r.ts, r.value, &grid, &mut add);
            if first_good.is_none() {
                first_good = r.value.map(|v| (r.ts, v));
            }
        }
        if let Some(s) = before {
            // Bridge to the first reading the store already counted from.
            tracker.push(s.first_ts, Some(s.first_value), &grid, &mut add);
            // A drop onto the store's first reading has no further reading here to decide it (the store counted
            // on from that reading already): take it as the rollover or replacement it looks like.
            tracker.commit_held(&grid, &mut add);
        }
        let new_state = match (st, tracker.last, first_good) {
            (Some(s), Some(l), _) if after.is_some() => Some(PointState { last: l, ..*s }),
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
            Aggregates::put_state(&mut batch, *id, &s);
        }
        let mut days = Vec::with_capacity(blocks.len());
        for (i, b) in blocks.iter().enumerate() {
            let n = b.0.iter().filter(|h| !h.is_empty()).count();
            if n > 0 {
                summary.hours += n;
                days.push((d0 + i as i64, b));
            }
        }
        agg.merge_days(&mut batch, *id, days)?;
        if let Some(b) = &bar {
            b.inc(rows.len() as u64);
        }
    }
    agg.apply(batch)?;
    agg.flush()
        .with_context(|| format!("importing {}", file.display()))?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(summary)
}
