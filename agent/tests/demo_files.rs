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
