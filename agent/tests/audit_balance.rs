//! Meter-tree and water balances, metering coverage and waste end to end (issue #29 items 1-3): the
//! example config deploy/examples/water-balance.toml, a logbook imported as a consultant would, and
//! `plantmeter report` held to figures computed by hand from the logbook's daily rates.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::BIN;

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/water-balance.toml")
}

/// Per point, its reading on day 0 and its daily increase in January and in February.
const RATES: &[(&str, &str, f64, f64, f64)] = &[
    ("main-water", "volume", 5_000.0, 100.0, 100.0),
    ("dyeing-water", "volume", 200.0, 60.0, 60.0),
    ("boiler-water", "volume", 300.0, 30.0, 30.0),
    ("cooling-loop", "volume", 0.0, 300.0, 300.0),
    ("outfall", "flow", 1_000.0, 78.0, 78.0),
    ("logbook", "evaporation", 0.0, 18.0, 18.0),
    ("main-power", "energy", 10_000.0, 1_000.0, 1_000.0),
    // In February the sub-meter reads 3 % more than its parent: a meter fault.
    ("line1-power", "energy", 2_000.0, 900.0, 1_030.0),
    ("packer", "output", 100.0, 20.0, 20.0),
    ("logbook", "hazardous_waste", 0.0, 0.3, 0.3),
    ("logbook", "sludge", 0.0, 0.5, 0.5),
];

/// Daily readings at 08:00 local from 2025-01-01 to 2025-03-01.
fn logbook() -> String {
    let d0 = chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
    let mut s = String::from("ts,meter,point,value\n");
    for (m, p, start, jan, feb) in RATES {
        let mut v = *start;
        for i in 0..=59 {
            let d = d0 + chrono::Duration::days(i);
            s += &format!("{d} 08:00,{m},{p},{v}\n");
            // The increase to the next morning: January's rate through 31 January's reading.
            v += if i < 31 { jan } else { feb };
        }
    }
    s
}

fn close(a: &Value, b: f64, what: &str) {
    let a = a
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: not a number: {a}"));
    assert!(
        (a - b).abs() <= 1e-6 * b.abs().max(1.0),
        "{what}: {a} != {b}"
    );
}

fn find(rows: &Value, f: impl Fn(&Value) -> bool) -> &Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| f(r))
        .unwrap_or_else(|| panic!("no such row in {rows}"))
}

#[test]
fn report_of_an_imported_logbook_balances_the_tree_and_the_water_and_counts_coverage_and_waste() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("plant.toml");
    std::fs::copy(example(), &cfg).unwrap();
    let csv = dir.path().join("logbook.csv");
    std::fs::write(&csv, logbook()).unwrap();
    let cfg_s = cfg.to_str().unwrap();
    let out = run(&["import", "--config", cfg_s, "--csv", csv.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = run(&["report", "--config", cfg_s, "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();

    // Hours with data: the baseline from 1 January 08:00 (the first reading) to 1 February 00:00,
    // the reporting period all 28 days of February.
    let hours = |period: &str| {
        if period == "baseline" {
            31.0 * 24.0 - 8.0
        } else {
            28.0 * 24.0
        }
    };
    let days = |period: &str| hours(period) / 24.0;

    // Water tree: 100 m3/day in, 60 + 30 m3/day in the sub-meters: 10 % unmetered, beyond 1 % + 1 %.
    let tree = &r["balances"]["tree"];
    for period in ["baseline", "reporting"] {
        let w = find(tree, |x| {
            x["parent"] == "main-water.volume" && x["period"] == period
        });
        assert_eq!(w["hours"].as_f64(), Some(hours(period)), "{period}");
        close(&w["parent_total"], 100.0 * days(period), "water parent");
        close(&w["children_total"], 90.0 * days(period), "water children");
        close(&w["unmetered"], 10.0 * days(period), "water unmetered");
        close(&w["unmetered_pct"], 10.0, "water unmetered %");
        close(&w["tolerance_pct"], 2.0, "class 1 + class 1");
        assert_eq!(w["tolerance_basis"], "accuracy");
        assert_eq!(w["status"], "unmetered", "{w}");
        assert_eq!(w["unit"], "m3");
    }
    // Electricity: class 0.5 + class 1 = 1.5 %; the sub-meter 3 % above its parent in February.
    // The rate changes at the 1 February 08:00 reading: the first 8 hours of February are January's.
    let child = 900.0 * 8.0 / 24.0 + 1_030.0 * (28.0 - 8.0 / 24.0);
    let e = find(tree, |x| {
        x["parent"] == "main-power.energy" && x["period"] == "reporting"
    });
    close(&e["unmetered"], 28_000.0 - child, "electricity unmetered");
    close(
        &e["unmetered_pct"],
        (28_000.0 - child) / 28_000.0 * 100.0,
        "electricity unmetered %",
    );
    close(&e["tolerance_pct"], 1.5, "tolerance");
    assert_eq!(e["status"], "meter_fault");
    assert_eq!(e["faulty"], serde_json::json!(["line1-power.energy"]));
    let e = find(tree, |x| {
        x["parent"] == "main-power.energy" && x["period"] == "baseline"
    });
    assert_eq!(e["status"], "unmetered");

    // Water balance: DOMAIN.md example 16 per day (Vf 100, Vr 300, Vd 78, Vc 18 -> R 75 %, losses 4 %).
    let water = &r["balances"]["water"];
    let w = find(water, |x| x["period"] == "reporting");
    close(&w["intake"], 2_800.0, "intake");
    close(&w["reuse"], 8_400.0, "reuse");
    close(&w["total_use"], 11_200.0, "total use");
    close(&w["discharge"], 2_184.0, "discharge");
    close(&w["consumption"], 504.0, "consumption");
    close(&w["losses"], 112.0, "losses");
    close(&w["losses_pct"], 4.0, "losses %");
    close(&w["reuse_rate_pct"], 75.0, "reuse rate");
    assert_eq!(w["reasons"], serde_json::json!([]));
    // The water indicator counts the intake only, never the reused water.
    close(
        &r["indicators"]["water"]["reporting"]["total"],
        2_800.0,
        "water indicator",
    );

    // Coverage: electricity sub-units 1 of 2 metered (50 % < 100 %); water sub-units 2 of 2.
    let rates = &r["coverage"]["rates"];
    let rate = |c: &str, l: &str| find(rates, |x| x["carrier"] == c && x["level"] == l).clone();
    let es = rate("electricity", "sub_unit");
    assert_eq!(
        (es["installed"].as_u64(), es["required"].as_u64()),
        (Some(1), Some(2))
    );
    close(&es["rate_pct"], 50.0, "electricity sub-unit coverage");
    assert_eq!(es["meets"], false);
    assert_eq!(rate("electricity", "site")["meets"], true);
    assert_eq!(rate("water", "sub_unit")["meets"], true);
    let ee = rate("electricity", "equipment");
    assert!(ee["rate_pct"].is_null() && ee["meets"].is_null() && ee["reason"].is_string());
    let ledger = &r["coverage"]["ledger"];
    let dyeing = find(ledger, |x| x["name"] == "dyeing workshop, water");
    assert_eq!(dyeing["meters"][1]["accuracy_class"], 1.0);

    // Waste: 0.3 t/day of hazardous waste, 20 t/day of product -> 0.015 t/t, 109.5 t a year >= 100.
    let rows = &r["waste"]["rows"];
    let h = find(rows, |x| {
        x["name"] == "hazardous" && x["period"] == "reporting"
    });
    close(&h["total_t"], 0.3 * 28.0, "hazardous t");
    close(&h["per_unit"], 0.015, "hazardous per unit");
    let s = find(rows, |x| {
        x["name"] == "sludge" && x["period"] == "reporting"
    });
    close(&s["per_unit"], 0.025, "sludge per unit");
    close(
        &r["waste"]["hazardous"]["t_per_year"],
        109.5,
        "hazardous a year",
    );
    assert_eq!(r["waste"]["hazardous"]["over"], true);
    assert_eq!(r["compliance"]["triggers"]["over_hazardous_waste"], true);

    // Every rendering carries the tables, in both languages; `verify` recomputes the same figures.
    let out_dir = dir.path().join("report");
    for (lang, want) in [("en", "Water reuse rate"), ("zh", "水重复利用率")] {
        let out = run(&[
            "report",
            "--config",
            cfg_s,
            "--out-dir",
            out_dir.to_str().unwrap(),
            "--lang",
            lang,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
        assert!(
            html.contains(want) && html.contains("75.0 %"),
            "{lang} html"
        );
        let csv = std::fs::read_to_string(out_dir.join("report.csv")).unwrap();
        assert!(csv.contains(want), "{lang} csv");
        let xlsx = std::fs::read(out_dir.join("report.xlsx")).unwrap();
        assert!(xlsx.len() > 1000, "{lang} xlsx");
    }
    let out = run(&[
        "verify",
        "--config",
        cfg_s,
        "--report",
        out_dir.join("report.json").to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}
