//! `plantmeter verify --config FILE --report FILE`: is this report what the store says?
//!
//! Checks the report's own seal (its SHA-256, and its signature with `[report] sign_key_file`), then
//! recomputes the report's periods from the store as of the instant it was generated and compares every
//! figure. Exit 0 when everything matches; 1 listing each figure that differs (and a broken seal).

use std::path::PathBuf;

use anyhow::Context;
use chrono::NaiveDate;
use serde_json::Value;

use super::integrity::{check_seal, load_key, Seal};
use crate::exit::BadInput;
use crate::exit::{load_plan, Needs};

#[derive(clap::Args)]
pub struct VerifyArgs {
    #[arg(long)]
    pub config: PathBuf,
    /// The report to check (`report --format json`, or the agent's `audit-report.json`).
    #[arg(long)]
    pub report: PathBuf,
}

/// Numbers equal within this relative tolerance (float sums in another order).
const REL_TOL: f64 = 1e-9;
/// At most this many differences are listed, then a count.
const MAX_LISTED: usize = 50;

fn bad(msg: String) -> anyhow::Error {
    anyhow::Error::new(BadInput(msg))
}

fn date(v: &Value, what: &str, file: &std::path::Path) -> anyhow::Result<NaiveDate> {
    v.as_str()
        .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        .ok_or_else(|| bad(format!("{}: {what} is not a date", file.display())))
}

pub fn main(args: VerifyArgs) -> anyhow::Result<()> {
    let mut plan = load_plan(&args.config, Needs::Audit)?;
    let text = std::fs::read(&args.report)
        .map_err(|e| bad(format!("{}: cannot read: {e}", args.report.display())))?;
    let claimed: Value = serde_json::from_slice(&text)
        .map_err(|e| bad(format!("{}: not JSON: {e}", args.report.display())))?;
    let mut problems: Vec<String> = Vec::new();

    let key = plan
        .sign_key_file
        .as_deref()
        .map(load_key)
        .transpose()?
        .map(|k| k.verifying_key());
    let seal = check_seal(&claimed, key.as_ref());
    match &seal {
        Seal::Broken(why) => problems.push(why.clone()),
        Seal::Unsealed => eprintln!(
            "note: {} has no integrity field (written before reports were sealed); figures only",
            args.report.display()
        ),
        Seal::Intact { .. } => {}
    }

    let p = &claimed["periods"];
    let file = &args.report;
    let baseline = (
        date(&p["baseline"]["from"], "periods.baseline.from", file)?,
        date(&p["baseline"]["to"], "periods.baseline.to", file)?,
    );
    let reporting = match &p["reporting"] {
        Value::Null => None,
        r => Some((
            date(&r["from"], "periods.reporting.from", file)?,
            date(&r["to"], "periods.reporting.to", file)?,
        )),
    };
    let now_ms = claimed["generated_at"]
        .as_str()
        .and_then(plantmeter_common::model::parse_ts_ms)
        .ok_or_else(|| {
            bad(format!(
                "{}: generated_at is not a timestamp",
                file.display()
            ))
        })?;
    let audit = plan
        .audit
        .as_mut()
        .ok_or_else(|| bad(format!("{}: no [audit] section", args.config.display())))?;
    // The report's periods as `report` would have been asked for them: a reporting period through the
    // override (as `--from/--to`), so the report's note about it is recomputed too; without a configured
    // reporting period the override is the baseline's.
    let over = match (audit.reporting, reporting) {
        (Some(_), r) => {
            audit.baseline = baseline;
            r
        }
        (None, _) => Some(baseline),
    };
    let dir = plan.gateway.data_dir.clone();
    if !dir.join("db").is_file() {
        anyhow::bail!("no store at {}: nothing to verify against", dir.display());
    }
    let (_store, mut engine) = super::live::open_offline(&plan)?;
    let fresh = engine
        .report_for(now_ms, over)
        .context("recomputing the report from the store")?;
    let fresh = serde_json::to_value(&fresh).context("serializing the recomputed report")?;
    let mut diffs = Vec::new();
    compare("", &claimed, &fresh, &mut diffs);
    let n_diffs = diffs.len();
    problems.extend(diffs.into_iter().take(MAX_LISTED));
    if n_diffs > MAX_LISTED {
        problems.push(format!("… and {} more differences", n_diffs - MAX_LISTED));
    }
    if problems.is_empty() {
        println!(
            "{}: every figure matches the store at {}{}",
            file.display(),
            dir.display(),
            match seal {
                Seal::Intact { signed: true } => "; sha256 and signature verified",
                Seal::Intact { signed: false } => "; sha256 verified (not signed)",
                _ => "",
            }
        );
        return Ok(());
    }
    for p in &problems {
        println!("{p}");
    }
    anyhow::bail!(
        "{}: {} difference{} from the store at {}",
        file.display(),
        n_diffs + usize::from(matches!(seal, Seal::Broken(_))),
        if problems.len() == 1 { "" } else { "s" },
        dir.display()
    )
}

/// Fields that are not figures: how the report was written, not what it says.
fn ignored(path: &str) -> bool {
    matches!(path, "integrity")
}

/// Every leaf of `a` and `b` that differs, as `path: report X, store Y`.
fn compare(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    if ignored(path) {
        return;
    }
    let child = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                compare(&child(k), va, y.get(k).unwrap_or(&Value::Null), out);
            }
            for (k, vb) in y {
                if !x.contains_key(k) && !vb.is_null() && !ignored(&child(k)) {
                    out.push(format!("{}: missing from the report, store {vb}", child(k)));
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                out.push(format!(
                    "{path}: {} entries in the report, {} from the store",
                    x.len(),
                    y.len()
                ));
                return;
            }
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                compare(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            if (x - y).abs() > REL_TOL * x.abs().max(y.abs()).max(1.0) {
                out.push(format!("{path}: report {x}, store {y}"));
            }
        }
        _ if a == b => {}
        _ => out.push(format!("{path}: report {a}, store {b}")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_the_figure() {
        let a: Value = serde_json::from_str(
            r#"{"indicators":{"energy":{"baseline":{"total":100.0}}},"n":[1,2],"integrity":{"sha256":"x"}}"#,
        )
        .unwrap();
        let b: Value = serde_json::from_str(
            r#"{"indicators":{"energy":{"baseline":{"total":100.0000000001}}},"n":[1,3],"integrity":null}"#,
        )
        .unwrap();
        let mut d = Vec::new();
        compare("", &a, &b, &mut d);
        assert_eq!(d, ["n[1]: report 2, store 3"]);
    }
}
