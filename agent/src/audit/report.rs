//! `plantmeter report --config FILE [--from --to] --format json|csv|html [--out FILE] [--lang en|zh]`
//!
//! `--from/--to` (local dates, `to` exclusive) replace the reporting period, or the baseline period when
//! the config has no reporting period. While a running agent holds the store, the report is the one the agent
//! last wrote (`data_dir/audit-report.json`), said so on stderr.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use chrono::NaiveDate;
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
    /// Local date after the period (exclusive), `YYYY-MM-DD`.
    #[arg(long)]
    pub to: Option<String>,
    /// First local date of the baseline period (inclusive), replacing `[audit] baseline`.
    #[arg(long)]
    pub baseline_from: Option<String>,
    /// Local date after the baseline period (exclusive).
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

/// The `--from/--to` override, checked.
pub fn period_override(
    from: Option<&str>,
    to: Option<&str>,
) -> anyhow::Result<Option<(NaiveDate, NaiveDate)>> {
    match (from, to) {
        (None, None) => Ok(None),
        (Some(f), Some(t)) => {
            let (f, t) = (parse_date("--from", f)?, parse_date("--to", t)?);
            if t <= f {
                return Err(bad_input(format!(
                    "--from {f} --to {t}: the period is empty (--to is exclusive and must be after --from)"
                )));
            }
            Ok(Some((f, t)))
        }
        _ => Err(bad_input(
            "--from and --to go together (local dates, --to exclusive)".to_string(),
        )),
    }
}

pub fn main(args: ReportArgs) -> anyhow::Result<()> {
    let mut plan = load_plan(&args.config, Needs::Audit)?;
    let over = period_override(args.from.as_deref(), args.to.as_deref())?;
    let baseline = match (args.baseline_from.as_deref(), args.baseline_to.as_deref()) {
        (None, None) => None,
        (Some(f), Some(t)) => {
            let (f, t) = (
                parse_date("--baseline-from", f)?,
                parse_date("--baseline-to", t)?,
            );
            if t <= f {
                return Err(bad_input(format!(
                    "--baseline-from {f} --baseline-to {t}: the period is empty (--baseline-to is exclusive)"
                )));
            }
            Some((f, t))
        }
        _ => return Err(bad_input(
            "--baseline-from and --baseline-to go together (local dates, --baseline-to exclusive)"
                .to_string(),
        )),
    };
    if let (Some(b), Some(audit)) = (baseline, plan.audit.as_mut()) {
        audit.baseline = b;
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
            engine.flush()?;
            refuse_periods_far_from_the_data(&plan, over, engine.data_dates()?)?;
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

/// How far a period may reach beyond the stored data (a reporting period still under way, a baseline
/// begun before the meters were installed, a baseline gathered a year before the reporting period):
/// the report's memory grows with the period's days (about 1 MB a year for 2 points, measured), so it
/// is bounded by the data plus this, not by whatever span was asked.
const BEYOND_DATA_DAYS: i64 = 3 * 366;

/// Before computing anything: exit 1 when the baseline holds no reading (as the report would find
/// after sizing itself by the periods: 234 MB for `--from 1970-01-01 --to 2030-01-01`), and exit 2 for
/// a period reaching more than [`BEYOND_DATA_DAYS`] before or after the stored data.
fn refuse_periods_far_from_the_data(
    plan: &plantmeter_common::Plan,
    over: Option<(NaiveDate, NaiveDate)>,
    data: Option<(NaiveDate, NaiveDate)>,
) -> anyhow::Result<()> {
    let Some(audit) = plan.audit.as_ref() else {
        return Ok(());
    };
    // `--from/--to` replace the reporting period, or the baseline without one (as compute does).
    let (baseline, reporting) = match (over, audit.reporting) {
        (Some(o), Some(_)) => (audit.baseline, Some(o)),
        (Some(o), None) => (o, None),
        (None, r) => (audit.baseline, r),
    };
    let dir = plan.gateway.data_dir.display();
    let no_reading = || {
        anyhow::anyhow!(
            "the store at {dir} holds no reading in the baseline period {} .. {}: no report",
            baseline.0,
            baseline.1
        )
    };
    let Some((first, end)) = data else {
        return Err(no_reading());
    };
    if baseline.1 <= first || baseline.0 >= end {
        return Err(no_reading());
    }
    let margin = chrono::Duration::days(BEYOND_DATA_DAYS);
    for (what, (from, to)) in
        std::iter::once(("baseline", baseline)).chain(reporting.map(|r| ("reporting", r)))
    {
        if from < first - margin || to > end + margin {
            return Err(bad_input(format!(
                "the {what} period {from} .. {to} reaches far beyond the readings in {dir} ({first} .. {end}, \
                 by whole 8-day blocks): a period may start or end at most {BEYOND_DATA_DAYS} days beyond them"
            )));
        }
    }
    Ok(())
}
