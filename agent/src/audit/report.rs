//! `plantmeter report --config FILE [--from --to] --format json|csv|html [--out FILE] [--lang en|zh]`
//!
//! `--from/--to` (local dates, both included: `--to 2026-06-30` is the period's last day) replace the
//! reporting period, or the baseline period when the config has no reporting period; `--baseline-from/
//! --baseline-to` likewise the baseline. Inside, periods are half-open like the config's arrays: `--to D`
//! becomes the end D + 1 day. While a running agent holds the store, the report is the one the agent last
//! wrote (`data_dir/audit-report.json`), said so on stderr.
//!
//! `--out-dir DIR` writes the sealed JSON and its HTML, XLSX and CSV renderings of that one computation;
//! `--from-json FILE --format html|xlsx|csv` renders a sealed JSON as it is (no config, no store).
//! The gateway build has no Excel writer (feature `xlsx`): `--format xlsx` exits 2 before any work,
//! saying how to get the workbook, and `--out-dir` writes the other files and says report.xlsx is not there.

use std::io::Write;
use std::path::{Path, PathBuf};

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
    #[arg(long, required_unless_present = "from_json")]
    pub config: Option<PathBuf>,
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
    #[arg(long, value_parser = ["json", "csv", "html", "xlsx"], required_unless_present = "out_dir")]
    pub format: Option<String>,
    /// Write here instead of stdout.
    #[arg(long, conflicts_with = "out_dir")]
    pub out: Option<PathBuf>,
    /// Write the report JSON and its renderings of that one computation into this folder:
    /// report.json, report.html, report.xlsx, report.csv and report.csv.sha256.
    #[arg(long, conflicts_with = "format")]
    pub out_dir: Option<PathBuf>,
    /// Render this report JSON as it is (no store, no configuration, no recomputation).
    #[arg(long, conflicts_with_all = ["config", "from", "to", "baseline_from", "baseline_to"])]
    pub from_json: Option<PathBuf>,
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
    let lang = render::Lang::parse(&args.lang)
        .ok_or_else(|| bad_input(format!("--lang {}: en or zh", args.lang)))?;
    // Before the store is opened and a long period computed for nothing.
    if args.format.as_deref() == Some("xlsx") && !WORKBOOK {
        return Err(no_workbook("plantmeter report --format xlsx"));
    }
    if let Some(json) = &args.from_json {
        return from_json(json, &args, lang);
    }
    let Some(config) = args.config.clone() else {
        return Err(bad_input(
            "--config FILE (or --from-json FILE) is required".to_string(),
        ));
    };
    let mut plan = load_plan(&config, Needs::Audit)?;
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
    let dir = &plan.gateway.data_dir;
    // sled writes `db` (and `conf`) in its folder: without them there is no store, and opening one would
    // create an empty store and report zeros.
    if !dir.join("db").is_file() {
        anyhow::bail!(
            "no store at {} (gateway.data_dir of {}): nothing to report; run the agent or import readings first",
            dir.display(),
            config.display()
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
    if let Some(dir) = &args.out_dir {
        for p in write_all(dir, &report, lang)? {
            eprintln!("wrote {}", p.display());
        }
        if !WORKBOOK {
            let what = format!("{} not written", dir.join("report.xlsx").display());
            eprintln!("plantmeter: {:#}", no_workbook(&what));
        }
        return Ok(());
    }
    let format = args.format.as_deref().unwrap_or("json");
    let bytes = render_one(&report, format, lang)?;
    write_out(args.out.as_deref(), &bytes, &report)
}

/// `report --from-json FILE --format html|xlsx|csv`: a sealed report rendered as it is. Its digest is
/// checked first: a rendering shows the digest, and must not show one its content does not have.
fn from_json(file: &Path, args: &ReportArgs, lang: render::Lang) -> anyhow::Result<()> {
    let format = match args.format.as_deref() {
        Some(f @ ("html" | "xlsx" | "csv")) => f,
        Some(f) => {
            return Err(bad_input(format!(
                "--from-json with --format {f}: html, xlsx or csv (the JSON is the report itself)"
            )))
        }
        None if args.out_dir.is_some() => {
            return Err(bad_input(
                "--from-json with --out-dir: give --format html|xlsx|csv and --out FILE"
                    .to_string(),
            ))
        }
        None => {
            return Err(bad_input(
                "--from-json needs --format html|xlsx|csv".to_string(),
            ))
        }
    };
    let text = std::fs::read(file)
        .map_err(|e| bad_input(format!("--from-json {}: cannot read: {e}", file.display())))?;
    let value: serde_json::Value = serde_json::from_slice(&text).map_err(|e| {
        bad_input(format!(
            "--from-json {}: not a report JSON: {e}",
            file.display()
        ))
    })?;
    if let super::integrity::Seal::Broken(why) = super::integrity::check_seal(&value, None) {
        anyhow::bail!("{}: {why}; not rendered", file.display());
    }
    // From the text, not the `Value`: its map sorts keys, and the indicators' order is the file's.
    let report: Report = serde_json::from_slice(&text).map_err(|e| {
        bad_input(format!(
            "--from-json {}: not an audit report: {e}",
            file.display()
        ))
    })?;
    let bytes = render_one(&report, format, lang)?;
    write_out(args.out.as_deref(), &bytes, &report)
}

/// One format's bytes of a sealed report.
fn render_one(report: &Report, format: &str, lang: render::Lang) -> anyhow::Result<Vec<u8>> {
    Ok(match format {
        "json" => {
            let mut v = serde_json::to_vec_pretty(report).context("serializing the report")?;
            v.push(b'\n');
            v
        }
        "csv" => render::csv(report, lang),
        "xlsx" => workbook(report, lang)?,
        _ => render::html(report, lang).into_bytes(),
    })
}

/// Whether this build writes Excel workbooks (feature `xlsx`: the desk build and the demo). The gateway
/// build leaves the writer out (rust_xlsxwriter and its zip crates, 618,920 B of the 5 MB budget,
/// measured).
pub const WORKBOOK: bool = cfg!(feature = "xlsx");

/// `what` is not possible without the Excel writer (exit 2): what to do instead.
pub fn no_workbook(what: &str) -> anyhow::Error {
    bad_input(format!(
        "{what}: not in this build: the gateway build (cargo build --release -p plantmeter-agent) has no \
         Excel writer. Render the workbook from the report JSON on a desk build (`cargo build --release` \
         at the repository root, or --features desk): `plantmeter report --from-json FILE --format xlsx`."
    ))
}

/// The report's Excel workbook.
#[cfg(feature = "xlsx")]
fn workbook(report: &Report, lang: render::Lang) -> anyhow::Result<Vec<u8>> {
    render::xlsx(report, lang).context("writing the Excel workbook")
}

#[cfg(not(feature = "xlsx"))]
fn workbook(_: &Report, _: render::Lang) -> anyhow::Result<Vec<u8>> {
    Err(no_workbook("plantmeter report --format xlsx"))
}

/// `--out FILE` (a CSV gets its `FILE.sha256` sidecar) or stdout.
fn write_out(out: Option<&Path>, bytes: &[u8], report: &Report) -> anyhow::Result<()> {
    match out {
        Some(path) => {
            write_atomic(path, bytes)?;
            eprintln!("wrote {}", path.display());
            if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
            {
                let side = sidecar_path(path);
                let name = path
                    .file_name()
                    .map_or_else(|| "report.csv".into(), |n| n.to_string_lossy().into_owned());
                write_atomic(
                    &side,
                    super::integrity::csv_sidecar(bytes, &name, report).as_bytes(),
                )?;
                eprintln!("wrote {}", side.display());
            }
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes)
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
            // The last day included, as typed (half-open inside).
            baseline.1.pred_opt().unwrap_or(baseline.1)
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
            // The last day included, as the user typed it (the period is half-open inside).
            let last = to.pred_opt().unwrap_or(to);
            return Err(bad_input(format!(
                "the {what} period {from} .. {last} reaches far beyond the readings in {dir} ({first} .. {end}, \
                 by whole 8-day blocks): a period may start or end at most {BEYOND_DATA_DAYS} days beyond them"
            )));
        }
    }
    Ok(())
}

/// `report.csv` -> `report.csv.sha256`.
pub fn sidecar_path(csv: &Path) -> PathBuf {
    let mut s = csv.as_os_str().to_owned();
    s.push(".sha256");
    PathBuf::from(s)
}

/// The report JSON and its renderings of this one sealed report in `dir` (created when missing):
/// report.json, report.html, report.xlsx (in a build with the Excel writer), report.csv,
/// report.csv.sha256. Returns the files written.
pub fn write_all(dir: &Path, report: &Report, lang: render::Lang) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let csv = render::csv(report, lang);
    let mut files = vec![
        ("report.json", render_one(report, "json", lang)?),
        ("report.html", render::html(report, lang).into_bytes()),
    ];
    if WORKBOOK {
        files.push(("report.xlsx", workbook(report, lang)?));
    }
    files.extend([
        (
            "report.csv.sha256",
            super::integrity::csv_sidecar(&csv, "report.csv", report).into_bytes(),
        ),
        ("report.csv", csv),
    ]);
    let mut written = Vec::with_capacity(files.len());
    for (name, bytes) in &files {
        let p = dir.join(name);
        write_atomic(&p, bytes)?;
        written.push(p);
    }
    Ok(written)
}
