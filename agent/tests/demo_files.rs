//! `plantmeter demo` writes its report in every format beside each other: report.json, report.html,
//! report.csv and report.xlsx (a real workbook).

#![allow(clippy::unwrap_used)]

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_plantmeter");

#[test]
fn the_demo_writes_the_workbook_beside_the_other_reports() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
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
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
}

/// CONTRACT.md: `P/audit` is the report without its per-bucket series, at most 64 KiB, also after the
/// demo's 18 months (12 baseline, 6 reporting) of the enlarged plant: the demo's subscriber reports the
/// size of the last one it received.
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
    // "... audit reports: N (last X bytes) ..."
    let line = stdout
        .lines()
        .find(|l| l.contains("audit reports: "))
        .unwrap_or_else(|| panic!("no audit line in the demo's output:\n{stdout}"));
    let after = line.split("audit reports: ").nth(1).unwrap();
    let count: u64 = after.split(' ').next().unwrap().parse().unwrap();
    let bytes: usize = after
        .split("(last ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no size in {line:?}"));
    assert!(count >= 1, "no P/audit received: {line}");
    assert!(
        bytes > 1000 && bytes <= 64 * 1024,
        "P/audit is {bytes} bytes: {line}"
    );
    // The full report (with its daily series) is the file; P/audit is much smaller than it.
    let full = std::fs::metadata(dir.path().join("report.json"))
        .unwrap()
        .len() as usize;
    assert!(full > bytes, "report.json {full} bytes vs P/audit {bytes}");
}
