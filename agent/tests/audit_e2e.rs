//! End to end: months of readings generated from known formulas go through the real binary
//! (`plantmeter import`, then `plantmeter report --format json`), and the report is checked against figures
//! computed here independently.

#![allow(clippy::unwrap_used)]

mod support;

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output};

use chrono::Duration;
use support::BIN;
const MODULUS: f64 = 1_000_000.0;

fn config(dir: &Path) -> String {
    format!(
        r#"[gateway]
id = "gw-01"
site = "plant-a"
data_dir = "{}"

[mqtt]
url = "mqtt://127.0.0.1:1883"

[[bus]]
name = "line-1"
transport = "tcp"
address = "127.0.0.1:5020"

[[meter]]
name = "main-power"
bus = "line-1"
unit_id = 1
poll_interval_s = 60

  [[meter.point]]
  name = "energy_import"
  register = "holding"
  address = 62
  type = "u32"
  scale = 0.01
  unit = "kWh"
  kind = "counter"
  rollover = 1000000.0

[[meter]]
name = "packer"
bus = "line-1"
unit_id = 2
poll_interval_s = 60

  [[meter.point]]
  name = "output"
  register = "holding"
  address = 0
  type = "f32"
  unit = "t"
  kind = "counter"

[audit]
timezone = "+08:00"
baseline = ["2024-01-01", "2024-04-01"]
reporting = ["2024-04-01", "2024-06-01"]
granularity = "day"
grid_co2_t_per_mwh = 0.5703
production = {{ point = "packer.output", unit = "t" }}

  [[audit.input]]
  point = "main-power.energy_import"
  carrier = "electricity"

  [[audit.level]]
  indicator = "energy"
  I = 10.0
  II = 12.0
  III = 14.0
"#,
        dir.join("store").display()
    )
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Days of the generated data: per day, production and electricity as metered (from the printed values).
struct Truth {
    days: Vec<(f64, f64)>,
    /// Times the energy totalizer wrapped at its modulus.
    wraps: u64,
}

/// 152 days from 2024-01-01 local (+08:00), a reading every 15 minutes: production P_d varies, electricity
/// E_d = 1500 + 80 P_d (+-2 % noise), 8 % less from April. The energy totalizer starts near its modulus so it
/// rolls over; on 2024-02-10 two hours of electricity readings are missing (empty values).
fn generate(path: &Path) -> Truth {
    let start = support::local_midnight(2024, 1, 1);
    let mut csv = String::from("ts,meter,point,value\n");
    let (mut e, mut p) = (995_000.0f64, 0.0f64);
    let mut seed: u64 = 42;
    let mut rnd = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    };
    let mut printed = Vec::new();
    for day in 0..152i64 {
        let pd = 200.0 + 60.0 * ((day as f64) * 0.7).sin() + 30.0 * rnd();
        let mut ed = (1500.0 + 80.0 * pd) * (1.0 + 0.02 * rnd());
        if day >= 91 {
            ed *= 0.92;
        }
        for s in 0..96 {
            let ts = start + Duration::minutes(15 * (day * 96 + s));
            let ts = ts.to_rfc3339();
            let ev = format!("{:.2}", e % MODULUS);
            let pv = format!("{:.3}", p);
            if s == 0 {
                printed.push((pv.parse::<f64>().unwrap(), ev.parse::<f64>().unwrap()));
            }
            let missing = day == 40 && (40..48).contains(&s);
            writeln!(
                csv,
                "{ts},main-power,energy_import,{}",
                if missing { "" } else { &ev }
            )
            .unwrap();
            writeln!(csv, "{ts},packer,output,{pv}").unwrap();
            e += ed / 96.0;
            p += pd / 96.0;
        }
    }
    let ts = (start + Duration::days(152)).to_rfc3339();
    let ev = format!("{:.2}", e % MODULUS);
    let pv = format!("{:.3}", p);
    printed.push((pv.parse().unwrap(), ev.parse().unwrap()));
    writeln!(csv, "{ts},main-power,energy_import,{ev}").unwrap();
    writeln!(csv, "{ts},packer,output,{pv}").unwrap();
    std::fs::write(path, csv).unwrap();
    let mut wraps = 0;
    let days = printed
        .windows(2)
        .map(|w| {
            let mut de = w[1].1 - w[0].1;
            if de < 0.0 {
                de += MODULUS;
                wraps += 1;
            }
            (w[1].0 - w[0].0, de)
        })
        .collect();
    Truth { days, wraps }
}

fn ols(d: &[(f64, f64)]) -> (f64, f64, f64) {
    let n = d.len() as f64;
    let mx = d.iter().map(|x| x.0).sum::<f64>() / n;
    let my = d.iter().map(|x| x.1).sum::<f64>() / n;
    let sxx: f64 = d.iter().map(|x| (x.0 - mx).powi(2)).sum();
    let sxy: f64 = d.iter().map(|x| (x.0 - mx) * (x.1 - my)).sum();
    let b = sxy / sxx;
    let a = my - b * mx;
    let sse: f64 = d.iter().map(|x| (x.1 - a - b * x.0).powi(2)).sum();
    let cv = 100.0 * (sse / (n - 2.0)).sqrt() / my;
    (a, b, cv)
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1.0)
}

#[test]
fn import_then_report_matches_independent_figures() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("plant.toml");
    std::fs::write(&cfg, config(dir.path())).unwrap();
    let csv = dir.path().join("history.csv");
    let truth = generate(&csv);
    let (cfg_s, csv_s) = (cfg.to_str().unwrap(), csv.to_str().unwrap());

    let out = run(&["import", "--config", cfg_s, "--csv", csv_s]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("imported 29186 rows (8 missing values) of 2 points"),
        "{}",
        text(&out.stdout)
    );

    let out = run(&["report", "--config", cfg_s, "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    let (base, rep) = truth.days.split_at(91);
    let bp: f64 = base.iter().map(|x| x.0).sum();
    let be: f64 = base.iter().map(|x| x.1).sum();
    let rp: f64 = rep.iter().map(|x| x.0).sum();
    let re: f64 = rep.iter().map(|x| x.1).sum();
    assert_eq!(r["production_unit"], "t");
    assert_eq!(r["periods"]["baseline"]["from"], "2024-01-01");
    assert!(close(
        r["periods"]["baseline"]["production"].as_f64().unwrap(),
        bp,
        1e-9
    ));
    assert!(close(
        r["periods"]["reporting"]["production"].as_f64().unwrap(),
        rp,
        1e-9
    ));
    let c = r["periods"]["baseline"]["completeness"].as_f64().unwrap();
    assert!(c < 1.0 && c > 0.99, "two hours of one meter missing: {c}");

    let el = &r["indicators"]["electricity"];
    assert_eq!(el["total_unit"], "kWh");
    assert!(close(el["baseline"]["total"].as_f64().unwrap(), be, 1e-9));
    assert!(close(
        el["baseline"]["per_unit"].as_f64().unwrap(),
        be / bp,
        1e-9
    ));
    let (a, b, cv) = ols(base);
    let m = &el["model"];
    assert_eq!(m["method"], "regression");
    assert_eq!(m["n"], 91);
    assert!(close(m["slope"].as_f64().unwrap(), b, 1e-6), "{m}");
    assert!(close(m["intercept"].as_f64().unwrap(), a, 1e-6), "{m}");
    assert!(close(m["cv_rmse_pct"].as_f64().unwrap(), cv, 1e-6));
    assert_eq!(m["meets_ashrae14"], cv <= 15.0);
    let expected: f64 = rep.iter().map(|x| a + b * x.0).sum();
    let rv = &el["reporting"];
    assert!(close(rv["total"].as_f64().unwrap(), re, 1e-9));
    assert!(close(rv["expected"].as_f64().unwrap(), expected, 1e-6));
    assert!(close(rv["savings"].as_f64().unwrap(), expected - re, 1e-5));
    let pct = rv["savings_pct"].as_f64().unwrap();
    assert!(pct > 5.0 && pct < 11.0, "8 % less energy per unit: {pct}");

    let en = &r["indicators"]["energy"];
    assert_eq!(en["per_unit_unit"], "kgce/t");
    assert!(close(
        en["baseline"]["total"].as_f64().unwrap(),
        be * 0.1229,
        1e-9
    ));
    assert!(close(
        en["model"]["slope"].as_f64().unwrap(),
        b * 0.1229,
        1e-6
    ));
    let pu = re * 0.1229 / rp;
    assert!(close(
        en["reporting"]["per_unit"].as_f64().unwrap(),
        pu,
        1e-9
    ));
    let level = if pu <= 10.0 {
        "I"
    } else if pu <= 12.0 {
        "II"
    } else if pu <= 14.0 {
        "III"
    } else {
        "below III"
    };
    assert_eq!(en["level"], level);
    assert!(close(
        r["indicators"]["co2"]["baseline"]["total"]
            .as_f64()
            .unwrap(),
        be * 0.5703,
        1e-9
    ));

    let q = r["method"]["points"].as_array().unwrap();
    let power = q
        .iter()
        .find(|p| p["point"] == "main-power.energy_import")
        .unwrap();
    assert!(truth.wraps >= 2);
    assert_eq!(power["rollovers"], truth.wraps);
    assert_eq!(power["replacements"], 0);

    // Importing the same file again changes nothing (exit 0); the same span with one value changed
    // conflicts with what the store holds: refused, nothing changes.
    let out = run(&["import", "--config", cfg_s, "--csv", csv_s]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("nothing to import: the 29186 rows"),
        "{}",
        text(&out.stdout)
    );
    let body = std::fs::read_to_string(&csv).unwrap();
    let changed = dir.path().join("changed.csv");
    std::fs::write(
        &changed,
        body.replacen(",packer,output,0.000", ",packer,output,0.001", 1),
    )
    .unwrap();
    let out = run(&[
        "import",
        "--config",
        cfg_s,
        "--csv",
        changed.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains(":3: packer.output: 2024-01-01T00:00:00+08:00 overlaps")
            && text(&out.stderr).contains("the readings the store already holds"),
        "{}",
        text(&out.stderr)
    );
    let again = run(&["report", "--config", cfg_s, "--format", "json"]);
    let r2: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(r2["indicators"], r["indicators"]);

    // --baseline-from/--baseline-to replace [audit] baseline: February and March only.
    let out = run(&[
        "report",
        "--config",
        cfg_s,
        "--format",
        "json",
        "--baseline-from",
        "2024-02-01",
        "--baseline-to",
        "2024-03-31",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r3: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r3["periods"]["baseline"]["from"], "2024-02-01");
    // --baseline-to names the last day included; the JSON's `to` stays half-open like the config's arrays.
    assert_eq!(r3["periods"]["baseline"]["to"], "2024-04-01");
    assert_eq!(r3["periods"]["baseline"]["last_day"], "2024-03-31");
    let bp3: f64 = truth.days[31..91].iter().map(|x| x.0).sum();
    assert!(close(
        r3["periods"]["baseline"]["production"].as_f64().unwrap(),
        bp3,
        1e-9
    ));
    let out = run(&[
        "report",
        "--config",
        cfg_s,
        "--format",
        "json",
        "--baseline-from",
        "2024-02-01",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--baseline-from and --baseline-to go together"));

    // CSV (Excel: UTF-8 with BOM) and HTML through the renderer, to --out files.
    let out_csv = dir.path().join("report.csv");
    let out = run(&[
        "report",
        "--config",
        cfg_s,
        "--format",
        "csv",
        "--lang",
        "zh",
        "--out",
        out_csv.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bytes = std::fs::read(&out_csv).unwrap();
    assert!(bytes.starts_with(&[0xEF, 0xBB, 0xBF]));
    assert!(
        text(&bytes).contains("2024-05-31"),
        "daily rows reach the end of the reporting period"
    );
    let out_html = dir.path().join("report.html");
    let out = run(&[
        "report",
        "--config",
        cfg_s,
        "--format",
        "html",
        "--out",
        out_html.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let html = std::fs::read_to_string(&out_html).unwrap();
    assert!(html.contains("<svg") && html.contains("main-power.energy_import"));

    // --from/--to replace the reporting period.
    let out = run(&[
        "report",
        "--config",
        cfg_s,
        "--format",
        "json",
        "--from",
        "2024-05-01",
        "--to",
        "2024-05-07",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r3: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let may: f64 = truth.days[121..128].iter().map(|x| x.0).sum();
    assert!(close(
        r3["periods"]["reporting"]["production"].as_f64().unwrap(),
        may,
        1e-9
    ));
}

#[test]
fn bad_rows_are_all_reported_with_line_numbers_and_nothing_is_imported() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("plant.toml");
    std::fs::write(&cfg, config(dir.path())).unwrap();
    let csv = dir.path().join("bad.csv");
    std::fs::write(
        &csv,
        "ts,meter,point,value\n\
         2024-01-01T00:00:00+08:00,packer,output,1.0\n\
         2024-01-01T00:15:00+08:00,boiler,output,1.0\n\
         2024-01-01T00:15:00+08:00,packer,speed,1.0\n\
         yesterday,packer,output,2.0\n\
         2024-01-01T00:30:00+08:00,packer,output,lots\n\
         2024-01-01T00:00:00+08:00,packer,output,1.5\n\
         2024-01-01T00:45:00+08:00,packer\n\
         2024-01-01T01:00:00+08:00,packer,output,3.0\n",
    )
    .unwrap();
    let out = run(&[
        "import",
        "--config",
        cfg.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    let f = csv.display().to_string();
    for want in [
        format!("{f}:3: unknown meter `boiler`"),
        format!("{f}:4: unknown point `packer.speed`"),
        format!("{f}:5: bad timestamp `yesterday`"),
        format!("{f}:6: bad number `lots` for packer.output"),
        format!("{f}:7: packer.output has another reading at 2024-01-01T00:00:00+08:00 (line 2)"),
        format!("{f}:8: expected 4 fields"),
        "6 bad rows; nothing was imported".to_string(),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
    // Lines are listed in order.
    assert!(err.find(":3:").unwrap() < err.find(":8:").unwrap());

    // Nothing reached the store: no report of zeros, exit 1 naming the store.
    let out = run(&[
        "report",
        "--config",
        cfg.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("no store at") || err.contains("holds no reading in the baseline"),
        "{err}"
    );

    // A header without a time column is refused at line 1 (`time`, `时间` and the other names of the
    // header map are a time column).
    std::fs::write(&csv, "when,meter,point,value\n").unwrap();
    let out = run(&[
        "import",
        "--config",
        cfg.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(":1: the header has no `ts` column: name one ts, time"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn report_arguments_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("plant.toml");
    std::fs::write(&cfg, config(dir.path())).unwrap();
    let c = cfg.to_str().unwrap();
    let out = run(&[
        "report",
        "--config",
        c,
        "--format",
        "json",
        "--from",
        "2024-05-01",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--from and --to go together"));
    let out = run(&[
        "report",
        "--config",
        c,
        "--format",
        "json",
        "--from",
        "2024-05-08",
        "--to",
        "2024-05-01",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&[
        "report",
        "--config",
        c,
        "--format",
        "json",
        "--from",
        "May",
        "--to",
        "2024-05-01",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--from May: not a date"));
}

#[test]
fn a_running_agent_holding_the_store_gets_a_clear_error_and_report_falls_back_to_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("plant.toml");
    std::fs::write(&cfg, config(dir.path())).unwrap();
    let c = cfg.to_str().unwrap();
    // A report as the agent would have written it.
    let written: serde_json::Value = serde_json::from_str(include_str!(
        "../../common/tests/fixtures/report_minimal.json"
    ))
    .unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(
        store.join("audit-report.json"),
        serde_json::to_vec(&written).unwrap(),
    )
    .unwrap();

    // Another process (standing in for `plantmeter run`) holds the store.
    // (Same segment size as the agent's store, or sled refuses to open it.)
    let held = sled::Config::new()
        .path(dir.path().join("store"))
        .segment_size(256 * 1024)
        .open()
        .unwrap();
    let out = run(&["report", "--config", c, "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("held by the running agent"));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The agent's file, as written (fields added since then come with their defaults).
    for k in ["generated_at", "periods", "gateway"] {
        assert_eq!(r[k], written[k], "{k}");
    }
    assert_eq!(
        r["indicators"]["energy"]["reporting"]["savings"],
        written["indicators"]["energy"]["reporting"]["savings"]
    );

    let csv = dir.path().join("h.csv");
    std::fs::write(
        &csv,
        "ts,meter,point,value\n2024-01-01T00:00:00+08:00,packer,output,1\n",
    )
    .unwrap();
    let out = run(&["import", "--config", c, "--csv", csv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("in use by another process"),
        "{}",
        text(&out.stderr)
    );
    drop(held);
}

/// Imports `body` into a fresh store; returns the output and whether the store was created.
fn import_text(body: &[u8]) -> (Output, bool) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("plant.toml");
    std::fs::write(&cfg, config(dir.path())).unwrap();
    let csv = dir.path().join("in.csv");
    std::fs::write(&csv, body).unwrap();
    let out = run(&[
        "import",
        "--config",
        cfg.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
    ]);
    (out, dir.path().join("store").exists())
}

/// The absurd rows that once cost gigabytes or gave a total of 1.2e307 kgce: each refused with its line,
/// nothing imported.
#[test]
fn implausible_timestamps_and_values_are_refused_by_line() {
    let (out, stored) = import_text(
        b"ts,meter,point,value\n\
          2024-01-01T00:00:00+08:00,packer,output,1.0\n\
          0205-03-03T00:00:00+08:00,main-power,energy_import,5.0\n\
          9999-12-31T00:00:00Z,main-power,energy_import,6.0\n\
          2024-01-01T00:15:00+08:00,packer,output,1e308\n\
          2024-01-01T00:30:00+08:00,packer,output,-inf\n\
          1970-01-01T00:00:00Z,packer,output,1\n\
          2024-01-01T00:45:00+08:00,packer,output,2.0\n",
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    for want in [
        ":3: main-power.energy_import: timestamp `0205-03-03T00:00:00+08:00` is before 2000-01-01",
        ":4: main-power.energy_import: timestamp `9999-12-31T00:00:00Z` is more than a day ahead of now",
        ":5: packer.output: value `1e308` is not finite or beyond ±1e12",
        ":6: packer.output: value `-inf` is not finite",
        ":7: packer.output: timestamp `1970-01-01T00:00:00Z` is before 2000-01-01",
        "5 bad rows; nothing was imported",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(!stored, "nothing reached a store");
}

/// RFC 4180 as spreadsheets write it: a BOM, CRLF, quoted header and fields, local timestamps in the
/// audit's timezone; a row repeated exactly is skipped.
#[test]
fn quoted_crlf_bom_files_with_local_times_import() {
    let (out, _) = import_text(
        "\u{feff}\"ts\",\"meter\",\"point\",\"value\"\r\n\
         \"2024-01-01 00:00\",\"packer\",\"output\",\"1.5\"\r\n\
         2024-01-01T00:15,packer,output,2.5\r\n\
         \"2024-01-01 00:15:00\",packer,\"output\",2.5\r\n\
         2024-01-01T00:30:00+08:00,packer,output,3.5\r\n"
            .as_bytes(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("imported 3 rows (0 missing values) of 1 points from 2024-01-01T00:00:00+08:00 to 2024-01-01T00:30:00+08:00"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 rows equal to the row before them"),
        "{stdout}"
    );
}

/// A million bad rows: the first 20 listed, the rest counted; stderr stays small.
#[test]
fn a_million_bad_rows_give_a_bounded_error_list() {
    let mut body = String::with_capacity(40 << 20);
    body.push_str("ts,meter,point,value\n");
    for i in 0..1_000_000 {
        writeln!(body, "2024-01-01T00:00:00+08:00,boiler,gas,{i}").unwrap();
    }
    let (out, stored) = import_text(body.as_bytes());
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 21, "{err}");
    assert!(err
        .lines()
        .next()
        .unwrap()
        .contains(":2: unknown meter `boiler` in column B `meter`: the config's meters are "));
    assert!(err.contains("... and 999980 more bad rows (1000000 in all); nothing was imported"));
    assert!(err.len() < 4096, "{} bytes of stderr", err.len());
    assert!(!stored);
}

/// A 50 MB line is reported by its number, never echoed; an unclosed quote does not swallow the file; rows
/// out of time order are named.
#[test]
fn a_long_line_an_open_quote_and_disorder_are_reported_by_line() {
    let mut body = b"ts,meter,point,value\n2024-01-01T00:00:00+08:00,packer,output,1\n".to_vec();
    body.extend_from_slice(b"2024-01-01T00:15:00+08:00,packer,output,");
    body.extend(std::iter::repeat_n(b'7', 50 << 20));
    body.extend_from_slice(
        b"\n2024-01-01T00:30:00+08:00,packer,\"output,3\n\
          2024-01-01T00:45:00+08:00,packer,output,4\n\
          2024-01-01T00:40:00+08:00,packer,output,5\n",
    );
    let (out, stored) = import_text(&body);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.len() < 2048,
        "{} bytes of stderr:\n{}",
        err.len(),
        &err[..2048]
    );
    for want in [
        ":3: line longer than 4096 bytes (not shown)",
        ":4: a quoted field is not closed on its line",
        ":6: packer.output: 2024-01-01T00:40:00+08:00 is before the row of line 5 (2024-01-01T00:45:00+08:00); \
         the rows of a point must come in time order",
        "3 bad rows; nothing was imported",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(!stored);
}

/// A long line right after the header is that line's error, not the header's.
#[test]
fn a_long_line_after_the_header_is_its_own_error() {
    let mut body = b"ts,meter,point,value\n".to_vec();
    body.extend(std::iter::repeat_n(b'x', 10_000));
    body.extend_from_slice(b"\n2024-01-01T00:00:00+08:00,packer,output,1\n");
    let (out, _) = import_text(&body);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr)
            .lines()
            .map(|l| l.rsplit_once(".csv").map_or(l, |x| x.1))
            .collect::<Vec<_>>(),
        [
            ":2: line longer than 4096 bytes (not shown)",
            "1 bad row; nothing was imported"
        ]
    );
}
