//! A consultant's desk audit from a plant's spreadsheets (issue #28): a config of manual meters without
//! [gateway] or [mqtt], files as Chinese Excel writes them (GBK with Chinese headers in another order,
//! a BOM and CRLF, workbooks with date cells and formulas' cached values, a wide logbook), each imported
//! or refused with its documented message, and the same report from every form as from the long UTF-8
//! CSV of the same data.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rust_xlsxwriter::{Format, Formula, Workbook};
use support::BIN;

const CONFIG: &str = r#"
[import]
daily_at = "08:00"
columns = { "1#包装机" = "packer.output" }

[[meter]]
name = "power"
manual = true
  [[meter.point]]
  name = "energy"
  unit = "kWh"
  kind = "counter"

[[meter]]
name = "packer"
manual = true
  [[meter.point]]
  name = "output"
  unit = "t"
  kind = "counter"

[audit]
timezone = "+08:00"
baseline = ["2025-01-01", "2025-02-01"]
reporting = ["2025-02-01", "2025-03-01"]
granularity = "day"
grid_co2_t_per_mwh = 0.5703
production = { point = "packer.output", unit = "t" }
  [[audit.input]]
  point = "power.energy"
  carrier = "electricity"
"#;

/// Days of the logbook (2025-01-01 onwards), read at 08:00.
const DAYS: usize = 60;

/// The logbook: per day, the electricity totalizer (kWh, past 10 000: thousands separators) and the
/// packer's output (t).
fn logbook() -> Vec<(chrono::NaiveDate, f64, f64)> {
    let d0 = chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
    let (mut e, mut o) = (10_000.5, 500.25);
    (0..DAYS)
        .map(|i| {
            let row = (d0 + chrono::Duration::days(i as i64), e, o);
            e += 1000.0 + 37.0 * (i % 7) as f64 + i as f64 + 0.25;
            o += 20.0 + (i % 5) as f64 + 0.5;
            row
        })
        .collect()
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A fresh desk: its config (no [gateway], no [mqtt]) in a folder of its own.
fn desk() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("desk.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    (dir, cfg)
}

fn import(cfg: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["import", "--config", cfg.to_str().unwrap()];
    args.extend_from_slice(extra);
    run(&args)
}

/// The report's figures (periods and indicators): what must not depend on the file's form.
fn figures(cfg: &Path) -> serde_json::Value {
    let out = run(&[
        "report",
        "--config",
        cfg.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    serde_json::json!({"periods": r["periods"], "indicators": r["indicators"]})
}

/// The long UTF-8 CSV: the canonical form.
fn canonical_csv() -> String {
    let mut s = String::from("ts,meter,point,value\n");
    for (d, e, o) in logbook() {
        s += &format!("{d}T08:00:00+08:00,power,energy,{e}\n");
        s += &format!("{d}T08:00:00+08:00,packer,output,{o}\n");
    }
    s
}

fn thousands(v: f64) -> String {
    let int = v.trunc() as i64;
    let frac = format!("{v}");
    let frac = frac
        .split_once('.')
        .map_or(String::new(), |(_, f)| format!(".{f}"));
    let digits = int.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out + &frac
}

fn canonical_figures() -> serde_json::Value {
    let (dir, cfg) = desk();
    let csv = dir.path().join("logbook.csv");
    std::fs::write(&csv, canonical_csv()).unwrap();
    let out = import(&cfg, &["--csv", csv.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("imported {} rows", 2 * DAYS)),
        "{}",
        text(&out.stdout)
    );
    let f = figures(&cfg);
    // Sanity: a report with figures, not nulls.
    assert!(
        f["indicators"]["electricity"]["baseline"]["total"]
            .as_f64()
            .unwrap()
            > 30_000.0,
        "{f}"
    );
    f
}

/// Excel's plain "CSV" on Chinese Windows: GBK, CRLF, Chinese headers in another order, a remarks
/// column and trailing empty columns, dates alone (`2025/1/1`: the day's reading at daily_at 08:00),
/// thousands separators in quotes.
#[test]
fn a_gbk_csv_as_chinese_excel_writes_it_gives_the_same_report() {
    let want = canonical_figures();
    let (dir, cfg) = desk();
    let mut s = String::from("数值,时间,表计,测点,备注,,\r\n");
    for (d, e, o) in logbook() {
        let day = d.format("%Y/%-m/%-d");
        s += &format!("\"{}\",{day},power,energy,早班,,\r\n", thousands(e));
        s += &format!("{o},{day},packer,output,,,\r\n");
    }
    let (gbk, _, unmappable) = encoding_rs::GBK.encode(&s);
    assert!(!unmappable);
    assert!(std::str::from_utf8(&gbk).is_err(), "really GBK, not UTF-8");
    let csv = dir.path().join("抄表.csv");
    std::fs::write(&csv, &gbk).unwrap();
    let out = import(&cfg, &["--csv", csv.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("read as GBK (GB18030) text"), "{stdout}");
    assert!(
        stdout.contains("columns left out (not ts, meter, point or value): E `备注`"),
        "{stdout}"
    );
    assert_eq!(figures(&cfg), want);
}

/// A BOM and CRLF (Excel's "CSV UTF-8"): bad values on lines 7 and 11 are reported on lines 7 and 11,
/// with the column, what was expected and an example; in Chinese with --lang zh. Nothing is imported.
#[test]
fn bom_crlf_errors_name_the_line_excel_shows() {
    let (dir, cfg) = desk();
    let mut s = String::from("\u{feff}ts,meter,point,value\r\n");
    for (i, (d, e, _)) in logbook().into_iter().take(11).enumerate() {
        let line = i + 2;
        let v = match line {
            7 => "12x".to_string(),
            11 => "\"1.234,5\"".to_string(),
            _ => e.to_string(),
        };
        s += &format!("{d} 08:00,power,energy,{v}\r\n");
    }
    let csv = dir.path().join("bad.csv");
    std::fs::write(&csv, &s).unwrap();
    let f = csv.display().to_string();
    let out = import(&cfg, &["--csv", csv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    for want in [
        format!("{f}:7: bad number `12x` for power.energy in column D `value`: write a number like 1234.5 or \"1,234.5\""),
        format!("{f}:11: bad number `1.234,5` for power.energy"),
        "2 bad rows; nothing was imported".to_string(),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
    assert!(!err.contains(":6:") && !err.contains(":10:"), "{err}");
    assert!(
        !dir.path().join("plantmeter-data").exists(),
        "nothing stored"
    );

    let out = import(&cfg, &["--csv", csv.to_str().unwrap(), "--lang", "zh"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    for want in [
        format!("{f}:7: power.energy 的数值 `12x`（第D列“value”）不是数字：请写成 1234.5 或 \"1,234.5\""),
        "共 2 行有误；未导入任何数据".to_string(),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
}

/// Headers and encodings that cannot be read: what to do, by line and column.
#[test]
fn unreadable_files_say_what_to_do() {
    let (dir, cfg) = desk();
    let csv = dir.path().join("x.csv");
    let f = csv.display().to_string();
    let cases: [(&[u8], &[&str], String); 4] = [
        (
            b"ts,meter,point,value\r\n2025-01-01 08:00,power,energy,1\r\n\xFF\xFE\xFF,power,energy,2\r\n",
            &[],
            format!("{f}:3: the text is neither UTF-8 nor GBK: save the file from Excel as \"CSV UTF-8"),
        ),
        (
            b"\xFF\xFEt\0s\0",
            &[],
            format!("{f}:1: the file is UTF-16 (Excel's \"Unicode text\")"),
        ),
        (
            "时间,表计,读数X\n".as_bytes(),
            &[],
            format!("{f}:1: the header has no `point` column: name one point, 测点"),
        ),
        (
            "时间,表计,测点,数值\n2025-01-01 08:00,power,energy,1\n".as_bytes(),
            &["--encoding", "latin1"],
            "--encoding latin1: auto, utf-8 or gbk (gb18030)".to_string(),
        ),
    ];
    for (body, extra, want) in cases {
        std::fs::write(&csv, body).unwrap();
        let mut args = vec!["--csv", csv.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = import(&cfg, &args);
        assert_eq!(out.status.code(), Some(2), "{want}");
        let err = text(&out.stderr);
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
    // A GBK file forced through as UTF-8: the cell says so, with the way out.
    let (gbk, _, _) =
        encoding_rs::GBK.encode("ts,meter,point,value\n2025-01-01 08:00,电表,energy,1\n");
    std::fs::write(&csv, &gbk).unwrap();
    let out = import(
        &cfg,
        &["--csv", csv.to_str().unwrap(), "--encoding", "utf-8"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{f}:2: `")) && err.contains("is not UTF-8 text: if Excel saved the file as plain CSV on Chinese Windows (GBK), add --encoding gbk"),
        "{err}"
    );
}

fn date_format() -> Format {
    Format::new().set_num_format("yyyy/m/d")
}

/// Excel's serial of a local date (1900 date system).
fn serial(d: chrono::NaiveDate) -> f64 {
    (d - chrono::NaiveDate::from_ymd_opt(1899, 12, 30).unwrap()).num_days() as f64
}

/// A workbook in the long layout (Chinese headers, date-time cells at 08:00, the electricity values as
/// formulas with their cached results), and a wide logbook (a date per row, a column per point, one
/// headed by a name mapped in [import] columns): both give the canonical report.
#[test]
fn workbooks_long_and_wide_give_the_same_report() {
    let want = canonical_figures();

    let (dir, cfg) = desk();
    let book = dir.path().join("long.xlsx");
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("抄表记录").unwrap();
    let dt = Format::new().set_num_format("yyyy-mm-dd hh:mm");
    for (c, h) in ["时间", "表计", "测点", "数值"].iter().enumerate() {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    let mut row = 1u32;
    for (d, e, o) in logbook() {
        let t = serial(d) + 8.0 / 24.0;
        ws.write_number_with_format(row, 0, t, &dt).unwrap();
        ws.write_string(row, 1, "power").unwrap();
        ws.write_string(row, 2, "energy").unwrap();
        // What the plant's sheet computes (yesterday + consumption), as Excel cached it.
        ws.write_formula(
            row,
            3,
            Formula::new(format!("={e}+0")).set_result(e.to_string()),
        )
        .unwrap();
        row += 1;
        ws.write_number_with_format(row, 0, t, &dt).unwrap();
        ws.write_string(row, 1, "packer").unwrap();
        ws.write_string(row, 2, "output").unwrap();
        ws.write_number(row, 3, o).unwrap();
        row += 1;
    }
    wb.save(&book).unwrap();
    let out = import(&cfg, &["--xlsx", book.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("imported {} rows", 2 * DAYS)),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(figures(&cfg), want, "long workbook");

    let (dir, cfg) = desk();
    let book = dir.path().join("wide.xlsx");
    let mut wb = Workbook::new();
    wb.add_worksheet().set_name("说明").unwrap();
    let ws = wb.add_worksheet();
    ws.set_name("日报").unwrap();
    for (c, h) in ["日期", "power.energy", "1#包装机", ""].iter().enumerate() {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    for (i, (d, e, o)) in logbook().into_iter().enumerate() {
        let r = i as u32 + 1;
        // A date alone: the day's reading at [import] daily_at (08:00).
        ws.write_number_with_format(r, 0, serial(d), &date_format())
            .unwrap();
        ws.write_number(r, 1, e).unwrap();
        ws.write_formula(
            r,
            2,
            Formula::new(format!("={o}*1")).set_result(o.to_string()),
        )
        .unwrap();
    }
    wb.save(&book).unwrap();
    let out = import(
        &cfg,
        &[
            "--xlsx",
            book.to_str().unwrap(),
            "--sheet",
            "日报",
            "--wide",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(figures(&cfg), want, "wide workbook");
}

/// A workbook's errors name the sheet and the cell, and say what to do.
#[test]
fn workbook_errors_name_the_sheet_and_cell() {
    let (dir, cfg) = desk();
    let book = dir.path().join("bad.xlsx");
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("日报").unwrap();
    for (c, h) in ["日期", "power.energy", "1#包装机", "2#电表"]
        .iter()
        .enumerate()
    {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    wb.save(&book).unwrap();
    let f = book.display().to_string();
    let out = import(&cfg, &["--xlsx", book.to_str().unwrap(), "--wide"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    let want = format!("{f}:日报!D1: column D `2#电表` is not a point: head each column after the time with meter.point");
    assert!(err.contains(&want), "missing {want:?} in:\n{err}");

    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("日报").unwrap();
    for (c, h) in ["日期", "power.energy", "1#包装机"].iter().enumerate() {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    for (i, (d, e, o)) in logbook().into_iter().take(20).enumerate() {
        let r = i as u32 + 1;
        ws.write_number_with_format(r, 0, serial(d), &date_format())
            .unwrap();
        match r + 1 {
            17 => ws.write_string(r, 1, "坏表").unwrap(),
            _ => ws.write_number(r, 1, e).unwrap(),
        };
        match r + 1 {
            9 => ws
                .write_formula(r, 2, Formula::new("=1/0").set_result("#DIV/0!"))
                .unwrap(),
            _ => ws.write_number(r, 2, o).unwrap(),
        };
    }
    wb.save(&book).unwrap();
    let out = import(&cfg, &["--xlsx", book.to_str().unwrap(), "--wide"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    for want in [
        format!("{f}:日报!C9: packer.output: the cell shows Excel's error #DIV/0! in column C `1#包装机`"),
        format!("{f}:日报!B17: bad number `坏表` for power.energy in column B `power.energy`"),
        "2 bad rows; nothing was imported".to_string(),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
    // A value under a column without a header is not dropped silently.
    let csv = dir.path().join("wide.csv");
    std::fs::write(&csv, "日期,power.energy,,\n2025/1/1,10,,\n2025/1/2,20,5,\n").unwrap();
    let out = import(&cfg, &["--csv", csv.to_str().unwrap(), "--wide"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    let want = format!("{}:3: `5` in column C, which has no header", csv.display());
    assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    let out = import(
        &cfg,
        &[
            "--xlsx",
            book.to_str().unwrap(),
            "--wide",
            "--sheet",
            "Sheet9",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("no sheet `Sheet9` in the workbook; its sheets: 日报"),
        "{}",
        text(&out.stderr)
    );
}

/// A desk config (manual meters, no [gateway], no [mqtt]) passes `check`; `run` refuses it, saying why.
#[test]
fn a_desk_config_needs_no_gateway_or_broker() {
    let (_dir, cfg) = desk();
    let out = run(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("mqtt      none: a desk audit"),
        "{}",
        text(&out.stdout)
    );
    let out = run(&["run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .contains("a desk audit (no [[bus]], no [mqtt]) polls and publishes nothing"),
        "{}",
        text(&out.stderr)
    );
}

/// Rows out of order and two readings at one instant: refused by line, in Chinese with --lang zh.
#[test]
fn disorder_is_refused_in_chinese() {
    let (dir, cfg) = desk();
    let csv = dir.path().join("乱序.csv");
    std::fs::write(
        &csv,
        "时间,表计,测点,数值\n2025-01-02 08:00,power,energy,20\n2025-01-01 08:00,power,energy,10\n\
         2025-01-02 08:00,power,energy,21\n",
    )
    .unwrap();
    let out = import(&cfg, &["--csv", csv.to_str().unwrap(), "--lang", "zh"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    let f = csv.display().to_string();
    for want in [
        format!("{f}:3: power.energy：2025-01-01T08:00:00+08:00 早于第 2 行（2025-01-02T08:00:00+08:00）：同一测点的各行须按时间先后排列"),
        format!("{f}:4: power.energy 在 2025-01-02T08:00:00+08:00 已有另一个读数（第 2 行）"),
        "共 2 行有误；未导入任何数据".to_string(),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
}
