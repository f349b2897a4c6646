//! `plantmeter verify --report FILE [--public-key FILE] [--json FILE] [--config FILE]`: is this report
//! what it claims to be?
//!
//! A panel's check needs only the file and the signer's public key: the report's SHA-256 (README
//! "Report integrity") and its ed25519 signature. With `--config` the periods are also recomputed from the
//! store as of the instant the report was generated, figure by figure. An HTML, XLSX or CSV rendering is
//! checked through the JSON it names (`--json`): the digest it shows must be that JSON's, and its bytes
//! those of a fresh rendering of that JSON. Exit 0 when everything holds, 1 listing what does not, 2 for
//! input that is not a report (or a rendering without its JSON).

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::NaiveDate;
use plantmeter_common::audit::render::{self, Lang};
use plantmeter_common::audit::report::Report;
use serde_json::Value;

use super::integrity::{check_seal, file_sha256, load_key, load_public_key, Seal};
use crate::exit::BadInput;
use crate::exit::{load_plan, Needs};

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Also recompute every figure from this configuration's store (and check the signature with its
    /// `[report] sign_key_file` unless `--public-key` is given).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The report to check: its JSON (`report --format json`, `report.json` of `--out-dir`, the agent's
    /// `audit-report.json`), or an HTML, XLSX or CSV rendering of it (then with `--json`).
    #[arg(long)]
    pub report: PathBuf,
    /// The signer's public key (PEM, as `plantmeter key` prints it): the signature must verify with it.
    #[arg(long)]
    pub public_key: Option<PathBuf>,
    /// With a rendering as `--report`: the report JSON it was rendered from.
    #[arg(long)]
    pub json: Option<PathBuf>,
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

/// What kind of file `--report` is, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Json,
    Html,
    Xlsx,
    Csv,
}

impl Kind {
    fn of(bytes: &[u8], path: &Path) -> Kind {
        let start = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let start = &start[start
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(start.len())..];
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        if start.starts_with(b"PK") {
            Kind::Xlsx
        } else if start.starts_with(b"<") {
            Kind::Html
        } else if start.starts_with(b"{") || ext.as_deref() == Some("json") {
            Kind::Json
        } else {
            Kind::Csv
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Json => "JSON",
            Kind::Html => "HTML",
            Kind::Xlsx => "XLSX",
            Kind::Csv => "CSV",
        }
    }

    /// The rendering of `report` in this format and `lang`.
    fn render(self, report: &Report, lang: Lang) -> Option<Vec<u8>> {
        match self {
            Kind::Json => None,
            Kind::Html => Some(render::html(report, lang).into_bytes()),
            Kind::Csv => Some(render::csv(report, lang)),
            #[cfg(feature = "xlsx")]
            Kind::Xlsx => render::xlsx(report, lang).ok(),
            // Refused before this in a build without the writer (`main`).
            #[cfg(not(feature = "xlsx"))]
            Kind::Xlsx => None,
        }
    }
}

/// The report digest a rendering shows where it can be read without unpacking: the HTML's
/// `plantmeter-report-sha256` meta tag, the CSV's sidecar comment line. `None` when not found.
fn shown_digest(kind: Kind, bytes: &[u8], path: &Path) -> Option<String> {
    let hex64 = |s: &str| {
        let h: String = s.chars().take_while(char::is_ascii_hexdigit).collect();
        (h.len() == 64).then_some(h)
    };
    match kind {
        Kind::Html => {
            let text = String::from_utf8_lossy(bytes);
            let at = text.find(r#"name="plantmeter-report-sha256" content=""#)?;
            hex64(&text[at + r#"name="plantmeter-report-sha256" content=""#.len()..])
        }
        Kind::Csv => {
            let side = std::fs::read_to_string(super::report::sidecar_path(path)).ok()?;
            let at = side.find("report.json sha256=")?;
            hex64(&side[at + "report.json sha256=".len()..])
        }
        Kind::Json | Kind::Xlsx => None,
    }
}

/// A CSV's sidecar (`FILE.sha256`): does its first line's digest match the CSV's bytes? `None` without one.
fn csv_sidecar_problem(bytes: &[u8], path: &Path) -> Option<String> {
    let side_path = super::report::sidecar_path(path);
    let side = std::fs::read_to_string(&side_path).ok()?;
    let claimed: String = side.chars().take_while(char::is_ascii_hexdigit).collect();
    let actual = file_sha256(bytes);
    (claimed != actual).then(|| {
        format!(
            "{}: the CSV's sha256 is {actual}, its sidecar {} says {claimed}: the CSV was changed after it was written",
            path.display(),
            side_path.display()
        )
    })
}

pub fn main(args: VerifyArgs) -> anyhow::Result<()> {
    let plan = args
        .config
        .as_deref()
        .map(|c| load_plan(c, Needs::Audit))
        .transpose()?;
    let given = std::fs::read(&args.report)
        .map_err(|e| bad(format!("{}: cannot read: {e}", args.report.display())))?;
    let kind = Kind::of(&given, &args.report);
    if kind == Kind::Xlsx && !super::report::WORKBOOK {
        // Its bytes can be compared only with a fresh workbook: not "differs", but "cannot check here".
        return Err(super::report::no_workbook(
            "plantmeter verify of an XLSX rendering",
        ));
    }
    // A rendering is checked through its JSON; the JSON is the evidence.
    let (file, text) = match (kind, &args.json) {
        (Kind::Json, None) => (args.report.clone(), given.clone()),
        (Kind::Json, Some(_)) => {
            return Err(bad(format!(
                "{} is a report JSON: --json is for an HTML, XLSX or CSV rendering",
                args.report.display()
            )))
        }
        (_, None) => {
            let shows = shown_digest(kind, &given, &args.report).map_or_else(
                || "the report JSON it was rendered from".to_string(),
                |d| format!("the report JSON with sha256 {d}"),
            );
            return Err(bad(format!(
                "{} is a rendering ({}) of a report; its evidence is {shows} (report.json beside it): give it with --json FILE",
                args.report.display(),
                kind.name()
            )));
        }
        (_, Some(j)) => (
            j.clone(),
            std::fs::read(j)
                .map_err(|e| bad(format!("--json {}: cannot read: {e}", j.display())))?,
        ),
    };
    let claimed: Value = serde_json::from_slice(&text)
        .map_err(|e| bad(format!("{}: not JSON: {e}", file.display())))?;
    let mut problems: Vec<String> = Vec::new();

    let key = match (&args.public_key, &plan) {
        (Some(p), _) => Some((
            load_public_key(p).map_err(|e| bad(format!("{e:#}")))?,
            format!("--public-key {}", p.display()),
        )),
        (None, Some(plan)) => match plan.sign_key_file.as_deref() {
            Some(f) => Some((
                load_key(f)?.verifying_key(),
                format!("[report] sign_key_file {}", f.display()),
            )),
            None => None,
        },
        (None, None) => None,
    };
    let seal = check_seal(&claimed, key.as_ref().map(|(k, _)| k));
    match (&seal, &key) {
        (Seal::Broken(why), _) => problems.push(why.clone()),
        (Seal::Unsealed | Seal::Intact { signed: false }, Some((_, from))) => problems.push(format!(
            "{}: the report is not signed, but a key is given to check its signature with ({from})",
            file.display()
        )),
        (Seal::SignedUnchecked, None) => problems.push(format!(
            "{}: the report is signed; give the signer's public key with --public-key FILE (`plantmeter key` prints it) to check the signature",
            file.display()
        )),
        (Seal::Unsealed, None) => eprintln!(
            "note: {} has no integrity field (written before reports were sealed); figures only",
            file.display()
        ),
        _ => {}
    }

    if kind != Kind::Json {
        problems.extend(rendering_problems(
            kind,
            &given,
            &args.report,
            &claimed,
            &text,
            &file,
        ));
    }

    let mut recomputed = None;
    if let (Some(mut plan), Some(config)) = (plan, args.config.as_deref()) {
        let (n, dir) = recompute(&mut plan, config, &claimed, &file, &mut problems)?;
        recomputed = Some((n, dir));
    }

    if problems.is_empty() {
        let seal_text = match seal {
            Seal::Intact { signed: true } => "sha256 and ed25519 signature verified",
            Seal::Intact { signed: false } => "sha256 verified (not signed)",
            _ => "no seal to check",
        };
        let rendering = if kind == Kind::Json {
            String::new()
        } else {
            format!(
                "; {} is the {} rendering of it",
                args.report.display(),
                kind.name()
            )
        };
        match recomputed {
            Some((_, dir)) => println!(
                "{}: {seal_text}; every figure matches the store at {}{rendering}",
                file.display(),
                dir.display()
            ),
            None => println!("{}: {seal_text}{rendering}", file.display()),
        }
        return Ok(());
    }
    for p in &problems {
        println!("{p}");
    }
    anyhow::bail!(
        "{}: {} problem{} found{}",
        args.report.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        match &recomputed {
            Some((_, dir)) => format!(" (figures compared with the store at {})", dir.display()),
            None => String::new(),
        }
    )
}

/// A rendering against its JSON: the digest it shows is the JSON's, and its bytes are a rendering of
/// that JSON (in English or Chinese) by this version of plantmeter.
fn rendering_problems(
    kind: Kind,
    given: &[u8],
    path: &Path,
    json: &Value,
    json_text: &[u8],
    json_path: &Path,
) -> Vec<String> {
    let mut out = Vec::new();
    let json_sha = json["integrity"]["sha256"].as_str().unwrap_or("");
    if let Some(shown) = shown_digest(kind, given, path) {
        if shown != json_sha {
            out.push(format!(
                "{} shows the report sha256 {shown}, but {} has {}: it is not a rendering of that JSON",
                path.display(),
                json_path.display(),
                if json_sha.is_empty() { "none" } else { json_sha }
            ));
            return out;
        }
    }
    if kind == Kind::Csv {
        out.extend(csv_sidecar_problem(given, path));
    }
    // From the text, not the `Value`: its map sorts keys, and the indicators' order is the file's.
    let report: Report = match serde_json::from_slice(json_text) {
        Ok(r) => r,
        Err(e) => {
            out.push(format!("{}: not an audit report: {e}", json_path.display()));
            return out;
        }
    };
    let same = [Lang::En, Lang::Zh]
        .into_iter()
        .any(|lang| kind.render(&report, lang).as_deref() == Some(given));
    if !same {
        out.push(format!(
            "{} is not what {} renders to ({}, English or Chinese): changed after it was written, or written by another version of plantmeter",
            path.display(),
            json_path.display(),
            kind.name()
        ));
    }
    out
}

/// Recompute the report's periods from the store and list each figure that differs. Returns the number
/// of differences and the store's folder.
fn recompute(
    plan: &mut plantmeter_common::Plan,
    config: &Path,
    claimed: &Value,
    file: &Path,
    problems: &mut Vec<String>,
) -> anyhow::Result<(usize, PathBuf)> {
    let p = &claimed["periods"];
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
        .ok_or_else(|| bad(format!("{}: no [audit] section", config.display())))?;
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
    let (_store, mut engine) = super::live::open_offline(plan)?;
    let fresh = engine
        .report_for(now_ms, over)
        .context("recomputing the report from the store")?;
    let fresh = serde_json::to_value(&fresh).context("serializing the recomputed report")?;
    let mut diffs = Vec::new();
    compare("", claimed, &fresh, &mut diffs);
    let n_diffs = diffs.len();
    problems.extend(diffs.into_iter().take(MAX_LISTED));
    if n_diffs > MAX_LISTED {
        problems.push(format!("… and {} more differences", n_diffs - MAX_LISTED));
    }
    Ok((n_diffs, dir))
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
