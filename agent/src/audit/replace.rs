//! `plantmeter replace --config F --point METER.POINT --at RFC3339 --old-final X --new-start Y`: record a meter
//! replacement. Records go to `data_dir/replacements.jsonl` (one JSON object per line, appended and synced),
//! beside the store, so that they can be written while the agent holds the store; the audit engine reads the
//! file when it opens and when it changes. A replacement the readings have not reached yet is counted exactly
//! when they do; one recorded after its readings were counted corrects the replacement inferred there.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use plantmeter_common::audit::intervals::{admit_ts, Placement, RecordedReplacement};
use plantmeter_common::model::{format_ts_local, format_ts_ms, parse_ts_in, parse_ts_ms};
use plantmeter_common::types::PointKind;
use serde::{Deserialize, Serialize};

use crate::exit::BadInput;
use crate::exit::{load_plan, Needs};

/// The file of recorded replacements, in `data_dir`.
pub const FILE: &str = "replacements.jsonl";

#[derive(clap::Args)]
pub struct ReplaceArgs {
    #[arg(long)]
    pub config: PathBuf,
    /// The counter, `meter.point`.
    #[arg(long)]
    pub point: String,
    /// When the meter was replaced: RFC 3339, or local `YYYY-MM-DD HH:MM[:SS]` in `[audit] timezone`. A
    /// reading stamped at this instant is the old meter's.
    #[arg(long)]
    pub at: String,
    /// The old meter's final reading.
    #[arg(long)]
    pub old_final: f64,
    /// The new meter's start reading.
    #[arg(long)]
    pub new_start: f64,
}

/// One line of the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub point: String,
    pub at: String,
    pub old_final: f64,
    pub new_start: f64,
}

impl Record {
    pub fn replacement(&self) -> Option<RecordedReplacement> {
        Some(RecordedReplacement {
            at_ms: parse_ts_ms(&self.at)?,
            old_final: self.old_final,
            new_start: self.new_start,
        })
    }
}

/// The recorded replacements of a store folder; unreadable lines are logged and skipped.
pub fn load(dir: &Path) -> Vec<Record> {
    let path = dir.join(FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(line) {
            Ok(r) if r.replacement().is_some() => out.push(r),
            _ => {
                tracing::warn!(file = %path.display(), line = i + 1, "not a recorded replacement; skipped")
            }
        }
    }
    out
}

/// The file's modification time, to notice new records.
pub fn stamp(dir: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(dir.join(FILE))
        .and_then(|m| m.modified())
        .ok()
}

fn bad(msg: String) -> anyhow::Error {
    anyhow::Error::new(BadInput(msg))
}

pub fn main(a: ReplaceArgs) -> anyhow::Result<()> {
    let plan = load_plan(&a.config, Needs::Audit)?;
    // Needs::Audit: the audit is what a replacement is for, and its timezone reads a local --at.
    let tz = plan
        .audit
        .as_ref()
        .map_or_else(
            || chrono::FixedOffset::east_opt(8 * 3600),
            |x| Some(x.timezone),
        )
        .ok_or_else(|| anyhow::anyhow!("no timezone"))?;
    let Some((meter, point)) = a.point.split_once('.') else {
        return Err(bad(format!("--point {}: write it meter.point", a.point)));
    };
    let p = plan
        .meters()
        .find(|m| m.name == meter)
        .and_then(|m| m.points.iter().find(|p| p.name == point))
        .ok_or_else(|| {
            bad(format!(
                "--point {}: no such point in {}",
                a.point,
                a.config.display()
            ))
        })?;
    if p.kind != PointKind::Counter {
        return Err(bad(format!(
            "--point {}: a replacement is for a counter (a totalizer); this point is a gauge",
            a.point
        )));
    }
    // The same formats as `import`: a consultant copies the instant from the logbook or the CSV.
    let at = parse_ts_in(&a.at, tz).ok_or_else(|| {
        bad(format!(
            "--at {}: not a time: write RFC 3339 (2026-03-15T08:00:00+08:00) or the plant's local time \
             YYYY-MM-DD HH:MM[:SS] ([audit] timezone {tz})",
            a.at
        ))
    })?;
    admit_ts(at, plantmeter_common::Clock::wall().now_ms())
        .map_err(|why| bad(format!("--at {}: {why}", a.at)))?;
    for (flag, v) in [("--old-final", a.old_final), ("--new-start", a.new_start)] {
        if !(0.0..=plantmeter_common::audit::intervals::MAX_ABS_VALUE).contains(&v) {
            return Err(bad(format!("{flag} {v}: a meter reading (finite, >= 0)")));
        }
    }
    let dir = &plan.gateway.data_dir;
    let rec = Record {
        point: a.point.clone(),
        at: format_ts_ms(at),
        old_final: a.old_final,
        new_start: a.new_start,
    };
    let local = format_ts_local(at, tz);
    if load(dir)
        .iter()
        .any(|r| r.point == rec.point && r.at == rec.at)
    {
        return Err(bad(format!(
            "a replacement of {} at {local} is already recorded in {}",
            rec.point,
            dir.join(FILE).display()
        )));
    }
    let r = RecordedReplacement {
        at_ms: at,
        old_final: a.old_final,
        new_start: a.new_start,
    };
    // Judged against what the store counted, when no running agent holds it: a replacement that cannot be
    // applied is refused here, not found out in a report.
    let mut engine = None;
    let placement = if !dir.join("db").is_file() {
        // No store yet: nothing counted to contradict it.
        Some(Placement::Pending)
    } else {
        match super::live::open_offline(&plan) {
            Ok((store, e)) => {
                let p = e.judge_replacement(&rec.point, &r).map_err(|why| {
                    bad(format!(
                        "--at {}: the replacement of {} at {local} cannot be applied: {why}",
                        a.at, rec.point
                    ))
                })?;
                engine = Some((store, e));
                Some(p)
            }
            Err(e) if matches!(e.downcast_ref(), Some(crate::store::OpenError::Locked(_))) => None,
            Err(e) => return Err(e),
        }
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(FILE);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let mut line = serde_json::to_vec(&rec).context("serializing the record")?;
    line.push(b'\n');
    f.write_all(&line)
        .and_then(|()| f.sync_data())
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "recorded: {} replaced at {local} ({}; old meter's final reading {}, new meter's start reading {}) in {}",
        rec.point,
        rec.at,
        rec.old_final,
        rec.new_start,
        path.display()
    );
    let state = match placement {
        None => "the running agent holds the store: it applies the replacement when it next reads the file, \
                 and names it in its log if it cannot"
            .to_string(),
        Some(Placement::Pending) => {
            "no reading counted yet reaches across it: it is applied when readings do".to_string()
        }
        Some(_) => "applied to the readings counted before it".to_string(),
    };
    if let Some((_store, mut e)) = engine {
        // Apply it now, so that the store says what this command said.
        e.flush()?;
    }
    println!("{state}");
    Ok(())
}
