//! `plantmeter report --config FILE [--from --to] --format json|csv|html [--out FILE] [--lang en|zh]`
//!
//! `--from/--to` (local dates, both included: `--to 2026-06-30` is the period's last day) replace the
//! reporting period, or the baseline period when the config has no reporting period; `--baseline-from/
//! --baseline-to` likewise the baseline. Inside, periods are half-open like the config's arrays: `--to D`
//! becomes the end D + 1 day. While a running agent holds the store, the report is the one the agent last
//! wrote (`data_dir/audit-report.json`), said so on stderr.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use chrono::NaiveDate;
use plantmeter_common::audit::compute;
use plantmeter_common::audit::report::Report;

use super::engine::{write_atomic, REPORT_FILE};
use super::render;
use crate::exit::BadInput;
use crate::exit::{load_plan, Needs};

#[derive(clap::Args)]
pub struct ReportArgs {
    #[arg(long)]
    pub config: PathBuf,
    /// First local date of the period (inclusive), `YYYY-MM-DD`.
    #[arg(long)]
    pub from: Option<String>,
    /// Last local date of the period (inclusive), `YYYY-MM-DD`.
    #[arg(long)]
    pub to: Option<String>,
    /// First local date of the baseline period (inclusive), replacing `[audit] baseline`.
    #[arg(long)]
    pub baseline_from: Option<String>,
    /// Last local date of the baseline period (inclusive).
    #[arg(long)]
    pub baseline_to: Option<String>,
    #[arg(long, value_parser = ["json", "csv", "html", "xlsx"])]
    pub format: String,
    /// Write here instead of stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, default_value = "en", value_parser = ["en", "zh"])]
    pub lang: String,
}

fn bad_input(msg: String) -> anyhow::Error {
    anyhow::Error::new(BadInput(msg))
}

fn parse_date(flag: &str, s: &str) -> anyhow::Result<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| bad_input(format!("{flag} {s}: not a date (YYYY-MM-DD)")))
}

/// A period typed on the command line: `from_flag FROM to_flag TO`, both days included, as the half-open
/// `(FROM, TO + 1 day)` the audit computes with; None when neither is given.
pub fn typed_period(
    (from_flag, from): (&str, Option<&str>),
    (to_flag, to): (&str, Option<&str>),
) -> anyhow::Result<Option<(NaiveDate, NaiveDate)>> {
    match (from, to) {
        (None, None) => Ok(None),
        (Some(f), Some(t)) => {
            let (f, t) = (parse_date(from_flag, f)?, parse_date(to_flag, t)?);
            if t < f {
                return Err(bad_input(format!(
                    "{from_flag} {f} {to_flag} {t}: the period is empty ({to_flag} is the last day included and \
                     cannot be before {from_flag})"
                )));
            }
            let end = t
                .succ_opt()
                .ok_or_else(|| bad_input(format!("{to_flag} {t}: no day after it")))?;
            Ok(Some((f, end)))
        }
        _ => Err(bad_input(format!(
            "{from_flag} and {to_flag} go together (local dates, both included)"
        ))),
    }
}

/// The `--from/--to` override, checked, half-open.
pub fn period_override(
    from: Option<&str>,
    to: Option<&str>,
) -> anyhow::Result<Option<(NaiveDate, NaiveDate)>> {
    typed_period(("--from", from), ("--to", to))
}

pub fn main(args: ReportArgs) -> anyhow::Result<()> {
    let mut plan = load_plan(&args.config, Needs::Audit)?;
    let mut over = period_override(args.from.as_deref(), args.to.as_deref())?;
    let baseline = typed_period(
        ("--baseline-from", args.baseline_from.as_deref()),
        ("--baseline-to", args.baseline_to.as_deref()),
    )?;
    if let (Some(b), Some(audit)) = (baseline, plan.audit.as_mut()) {
        if audit.reporting.is_some() {
            audit.baseline = b;
        } else if over.is_some() {
            return Err(bad_input(
                "no reporting period configured: --from/--to set the baseline period, and so do --baseline-from/--baseline-to; give one of them"
                    .to_string(),
            ));
        } else {
            // Without a reporting period --from/--to set the baseline: one way, one note in the report.
            over = Some(b);
        }
    }
    // The report notes an overlap too; say it where the person who typed the dates is looking.
    if let Some(audit) = plan.audit.as_ref() {
        let (b, r) = compute::periods(audit, over);
        if let Some(w) = r.and_then(|r| compute::overlap_note(b, r)) {
            eprintln!("plantmeter: warning: {w}");
        }
    }
    let lang = render::Lang::parse(&args.lang)
        .ok_or_else(|| bad_input(format!("--lang {}: en or zh", args.lang)))?;
    let dir = &plan.gateway.data_dir;
    // sled writes `db` (and `conf`) in its folder: without them there is no store, and opening one would
    // create an empty store and report zeros.
    if !dir.join("db").is_file() {
        anyhow::bail!(
            "no store at {} (gateway.data_dir of {}): nothing to report; run the agent or import readings first",
            dir.display(),
            args.config.display()
        );
    }
    // What a stopped agent stored but had not audited yet counts too.
    let report = match super::live::open_offline(&plan) {
        Ok((_store, mut engine)) => {
            let r = engine.report_for(plantmeter_common::Clock::wall().now_ms(), over)?;
            if r.periods.baseline.completeness <= 0.0 {
                anyhow::bail!(
                    "the store at {} holds no reading in the baseline period {} .. {}: no report",
                    dir.display(),
                    r.periods.baseline.from,
                    r.periods.baseline.to
                );
            }
            r
        }
        Err(e) if matches!(e.downcast_ref(), Some(crate::store::OpenError::Locked(_))) => {
            let file = plan.gateway.data_dir.join(REPORT_FILE);
            if over.is_some() {
                anyhow::bail!("{e:#}; --from/--to need the store itself");
            }
            let bytes = std::fs::read(&file).with_context(|| {
                format!(
                    "{e:#}, and the agent has not written {} yet",
                    file.display()
                )
            })?;
            let r: Report = serde_json::from_slice(&bytes)
                .with_context(|| format!("{}: not an audit report", file.display()))?;
            eprintln!(
                "plantmeter: the store is held by the running agent; this is the report it computed at {}",
                r.generated_at
            );
            r
        }
        Err(e) => return Err(e),
    };
    let mut report = report;
    let key = plan
        .sign_key_file
        .as_deref()
        .map(super::integrity::load_key)
        .transpose()?;
    super::integrity::seal(&mut report, key.as_ref())?;
    let bytes: Vec<u8> = match args.format.as_str() {
        "json" => {
            let mut v = serde_json::to_vec_pretty(&report).context("serializing the report")?;
            v.push(b'\n');
            v
        }
        "csv" => render::csv(&report, lang),
        "xlsx" => render::xlsx(&report, lang).context("writing the Excel workbook")?,
        _ => render::html(&report, lang).into_bytes(),
    };
    match &args.out {
        Some(path) => {
            write_atomic(path, &bytes)?;
            eprintln!("wrote {}", path.display());
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)
                .and_then(|()| out.flush())
                .context("writing the report to stdout")?;
        }
    }
    Ok(())
}
