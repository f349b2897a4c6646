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
        // The files are the point here, whatever the load on the machine running the tests.
        "--min-completeness",
        "0",
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
    // The meter tree and the reuse loop against the simulator's shares: the power room's sub-meters carry
    // 0.45 of main-power's 0.6 (25 % unmetered), the dyehouse 0.7 of the intake, the cooling loop three
    // times the intake (R = 3 / (3 + 1) = 75 %), whatever the polling kept up with (common hours).
    let balances = report.balances.as_ref().unwrap();
    for (parent, unmetered) in [
        ("main-power.energy_import", 25.0),
        ("water.totalizer", 30.0),
    ] {
        for row in balances.tree.iter().filter(|r| r.parent == parent) {
            let pct = row.unmetered_pct.unwrap();
            assert!(
                (pct - unmetered).abs() < 1.0,
                "{parent} {}: {pct}",
                row.period
            );
        }
    }
    for w in &balances.water {
        let r = w.reuse_rate_pct.unwrap();
        assert!((r - 75.0).abs() < 1.0, "reuse rate {}: {r}", w.period);
    }
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
        // The standards' names and the DL/T 645 / CJ/T 188 meters' names (not in the report).
        "DL",
        "CJ",
        "power-b-645",
        "water-188",
        "heat-188",
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
            "--min-completeness",
            "0",
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

/// The README's demo run twice in one folder: the second run starts a fresh store with its seq floor
/// (they go together), so it reports no loss; a first run's floor left beside a removed store made the
/// second say "store was lost or replaced", 10,000 seqs evicted and missing.
#[test]
fn the_demo_runs_twice_in_one_folder_without_a_false_loss() {
    let dir = tempfile::tempdir().unwrap();
    let demo = || {
        let out = Command::new(BIN)
            .args(["demo", "--out", dir.path().to_str().unwrap()])
            .args(["--baseline-months", "1", "--reporting-months", "1"])
            .args([
                "--duration-s",
                "4",
                "--no-faults",
                "--min-completeness",
                "0",
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    demo();
    let second = demo();
    assert!(
        second.contains("missing seqs: 0; evicted from the store: 0;"),
        "{second}"
    );
    let log = std::fs::read_to_string(dir.path().join("agent.log")).unwrap();
    assert!(!log.contains("ERROR"), "{log}");
}

/// A demo whose machine cannot keep up with the virtual clock (here: a clock far too fast for any
/// machine) says so and exits 1, without the figures it knows are poor.
#[test]
fn a_demo_that_cannot_keep_up_says_so_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["demo", "--out", dir.path().to_str().unwrap()])
        .args(["--baseline-months", "2", "--reporting-months", "1"])
        .args(["--speed", "100000000", "--no-faults"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("this machine could not keep up with the virtual clock"),
        "{err}"
    );
    assert!(err.contains("Give it more time (--duration-s "), "{err}");
    assert!(!dir.path().join("report.json").exists());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Data completeness"));
}
