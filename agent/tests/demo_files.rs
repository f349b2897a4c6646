//! `plantmeter demo` writes its report in every format beside each other: report.json, report.html,
//! report.csv and report.xlsx (a real workbook).

#![allow(clippy::unwrap_used)]

use std::process::Command;

use plantmeter_tests::run_ok;

const BIN: &str = env!("CARGO_BIN_EXE_plantmeter");

#[test]
fn the_demo_writes_the_workbook_beside_the_other_reports() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(Command::new(BIN).args([
        "demo",
        "--out",
        dir.path().to_str().unwrap(),
        "--baseline-months",
        "1",
        "--reporting-months",
        "1",
        "--duration-s",
        "4",
        "--no-faults",
        "--lang",
        "zh",
    ]));
    for name in ["report.json", "report.html", "report.csv", "report.xlsx"] {
        let p = dir.path().join(name);
        assert!(p.exists(), "{name} missing");
    }
    let xlsx = std::fs::read(dir.path().join("report.xlsx")).unwrap();
    assert!(xlsx.starts_with(b"PK"), "a zip container");
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(xlsx)).unwrap();
    let mut wb = String::new();
    std::io::Read::read_to_string(&mut z.by_name("xl/workbook.xml").unwrap(), &mut wb).unwrap();
    assert!(
        wb.contains("name=\"指标\""),
        "sheets in the report's language: {wb}"
    );
    // The terminal output in Chinese too: every sentence, the model listing, the comparison.
    let report: plantmeter_common::audit::report::Report =
        serde_json::from_slice(&std::fs::read(dir.path().join("report.json")).unwrap()).unwrap();
    use plantmeter_common::audit::render::fixture::{config_names, english};
    let mut allowed = config_names(&report, true);
    // Protocols and the scenario's name stay as they are.
    for t in [
        "Modbus",
        "TCP",
        "MQTT",
        "SIGTERM",
        "simulated",
        "Sunrise",
        "Dyeing",
        "Finishing",
        "kWh",
    ] {
        allowed.insert(t.to_string());
    }
    // File names and the folder are not sentences.
    let mut text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text = text.replace(&dir.path().display().to_string(), "");
    for f in [
        "report.html",
        "report.json",
        "report.csv.sha256",
        "report.csv",
        "report.xlsx",
        "truth.json",
        "agent.toml",
        "agent.log",
        "broker.log",
        "data/",
        "--no-faults",
    ] {
        text = text.replace(f, "");
    }
    assert!(
        text.contains("基准模型") && text.contains("采集代理实测与模拟真值对比"),
        "{text}"
    );
    let left = english(&text, &allowed);
    assert!(
        left.is_empty(),
        "English left in `demo --lang zh`: {left:?}\n{text}"
    );
}

/// CONTRACT.md: `P/audit` is the report without its per-bucket series, at most 64 KiB, also after the
/// demo's 18 months (12 baseline, 6 reporting) of the enlarged plant. The demo's report.json is the whole
/// report; P/audit is the same report with its series emptied (`AuditEngine::report_json`), computed here
/// from the file so the test does not depend on how many periodic P/audit refreshes a fast or slow
/// machine fits into the run. Any P/audit the demo's subscriber did receive is checked too.
#[test]
fn p_audit_stays_under_64_kib_after_the_demos_18_months() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "demo",
            "--out",
            dir.path().to_str().unwrap(),
            "--baseline-months",
            "12",
            "--reporting-months",
            "6",
            "--duration-s",
            "8",
            "--no-faults",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let full = std::fs::read(dir.path().join("report.json")).unwrap();
    let mut r: plantmeter_common::audit::report::Report = serde_json::from_slice(&full).unwrap();
    assert_eq!(
        r.periods.reporting.as_ref().map(|p| p.to.as_str()),
        Some("2026-07-01")
    );
    assert!(
        !r.series.daily.is_empty(),
        "the file holds the daily series"
    );
    r.series = Default::default();
    let slim = serde_json::to_vec(&r).unwrap();
    assert!(
        slim.len() <= 64 * 1024,
        "the report without its series is {} bytes",
        slim.len()
    );
    assert!(full.len() > slim.len());
    // "... audit reports: N (last X bytes) ...": when one arrived, it is within the bound too.
    let line = stdout
        .lines()
        .find(|l| l.contains("audit reports: "))
        .unwrap_or_else(|| panic!("no audit line in the demo's output:\n{stdout}"));
    let bytes: usize = line
        .split("(last ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no size in {line:?}"));
    assert!(bytes <= 64 * 1024, "P/audit was {bytes} bytes: {line}");
}
