//! The models' diagnostics (issue #29 item 4) through the real binary: `plantmeter import` of a baseline
//! month with a 3-day outage and a reporting month whose production goes beyond the baseline's on three
//! days, then `plantmeter report`: the sufficiency block against `[audit.sufficiency]`, leave-one-out
//! CV(RMSE), rho and n', the extrapolation, each held to a second computation from the report's own
//! buckets; and every rendering shows them.

#![allow(clippy::unwrap_used)]

mod support;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use chrono::Duration;
use serde_json::Value;
use support::{run_ok, BIN};

const DAYS: i64 = 61;
/// Days of the baseline (from 0) without any reading: an outage.
const OUTAGE: [i64; 3] = [10, 11, 12];
/// Reporting days (from the start) with production above anything in the baseline.
const HIGH: [(i64, f64); 3] = [(40, 300.0), (41, 310.0), (42, 330.0)];

fn config(dir: &Path, sufficiency: &str) -> String {
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
baseline = ["2024-01-01", "2024-02-01"]
reporting = ["2024-02-01", "2024-03-02"]
granularity = "day"
grid_co2_t_per_mwh = 0.5703
production = {{ point = "packer.output", unit = "t" }}
{sufficiency}
  [[audit.input]]
  point = "main-power.energy_import"
  carrier = "electricity"
"#,
        dir.join("store").display()
    )
}

/// Hourly readings: production 200 + 50 sin(0.7 day) t a day (the HIGH days more), electricity
/// 1500 + 80 P kWh a day plus a deterministic wobble, none during the OUTAGE days.
fn history(path: &Path) {
    let start = support::local_midnight(2024, 1, 1);
    let mut csv = String::from("ts,meter,point,value\n");
    let (mut e, mut p) = (1000.0f64, 0.0f64);
    for h in 0..=DAYS * 24 {
        let day = h / 24;
        // The readings at the outage's first and last instants stay: the counters span the gap.
        if !(OUTAGE.contains(&day) && h % 24 != 0) {
            let ts = (start + Duration::hours(h)).to_rfc3339();
            writeln!(csv, "{ts},main-power,energy_import,{e:.3}").unwrap();
            writeln!(csv, "{ts},packer,output,{p:.4}").unwrap();
        }
        let pd = HIGH
            .iter()
            .find(|(d, _)| *d == day)
            .map_or(200.0 + 50.0 * ((day as f64) * 0.7).sin(), |(_, v)| *v);
        let ed = 1500.0 + 80.0 * pd + 300.0 * ((day as f64) * 2.3).sin();
        e += ed / 24.0;
        p += pd / 24.0;
    }
    std::fs::write(path, csv).unwrap();
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// A second computation from the report's buckets: leave-one-out by refitting a line without each
/// bucket; rho of the fitted residuals in time order.
fn loo_and_rho(points: &[(f64, f64, f64)]) -> (f64, f64) {
    let line = |pts: &[(f64, f64)]| {
        let n = pts.len() as f64;
        let (mx, my) = (
            pts.iter().map(|p| p.0).sum::<f64>() / n,
            pts.iter().map(|p| p.1).sum::<f64>() / n,
        );
        let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
        let b = sxy / sxx;
        (my - b * mx, b)
    };
    let n = points.len();
    let mut press = 0.0;
    for i in 0..n {
        let rest: Vec<(f64, f64)> = points
            .iter()
            .enumerate()
            .filter(|(k, _)| *k != i)
            .map(|(_, p)| (p.0, p.1))
            .collect();
        let (a, b) = line(&rest);
        press += (points[i].1 - (a + b * points[i].0)).powi(2);
    }
    let mean = points.iter().map(|p| p.1).sum::<f64>() / n as f64;
    let e: Vec<f64> = points.iter().map(|p| p.1 - p.2).collect();
    let lag: f64 = e.windows(2).map(|w| w[0] * w[1]).sum();
    let sse: f64 = e.iter().map(|v| v * v).sum();
    (100.0 * (press / n as f64).sqrt() / mean, lag / sse)
}

#[test]
fn a_reviewer_sees_sufficiency_cross_validation_autocorrelation_and_extrapolation() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("plant.toml");
    std::fs::write(
        &cfg,
        config(
            dir.path(),
            "\n  [audit.sufficiency]\n  max_gap_days = 2\n  min_coverage = 0.8\n",
        ),
    )
    .unwrap();
    let csv = dir.path().join("history.csv");
    history(&csv);
    let cfg_s = cfg.to_str().unwrap();
    run_ok(Command::new(BIN).args(["import", "--config", cfg_s, "--csv", csv.to_str().unwrap()]));
    let out = run_ok(Command::new(BIN).args(["report", "--config", cfg_s, "--format", "json"]));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let m = &r["indicators"]["energy"]["model"];
    assert_eq!(m["method"], "regression", "{m}");
    let d = &m["diagnostics"];

    // Sufficiency: 31 days, the 3 outage days without data, against the configured rules.
    let s = &d["sufficiency"];
    assert_eq!(s["days"], 31, "{s}");
    assert_eq!(s["days_with_data"], 28, "{s}");
    assert!((f(&s["coverage"]) - 28.0 / 31.0).abs() < 1e-12);
    assert_eq!(s["longest_gap_days"], 3);
    assert_eq!(s["zero_days"], 0);
    assert_eq!(s["outlier_days"], 0);
    assert_eq!(s["rules"]["max_gap_days"], 2);
    assert_eq!(s["rules"]["min_coverage"], 0.8);
    assert_eq!(s["rules"]["max_zero_days_share"], 0.1, "a default");
    assert_eq!(s["pass"], false);
    assert_eq!(
        s["failed"],
        serde_json::json!(["longest gap 3 days exceeds 2 days"])
    );

    // Leave-one-out and rho against a second computation over the model's buckets.
    let buckets: Vec<(f64, f64, f64)> = r["series"]["energy_buckets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["period"] == "baseline" && b["complete"] == true)
        .map(|b| (f(&b["production"]), f(&b["actual"]), f(&b["fitted"])))
        .collect();
    assert_eq!(buckets.len(), 28);
    assert_eq!(m["n"], 28);
    let (loo, rho) = loo_and_rho(&buckets);
    let got = f(&d["cv_rmse_loo_pct"]);
    assert!((got - loo).abs() < 1e-6 * loo, "loo {got} vs {loo}");
    assert!(got > f(&m["cv_rmse_pct"]) * 0.9, "loo beside the fitted");
    let a = &d["autocorrelation"];
    assert!((f(&a["rho"]) - rho).abs() < 1e-9, "rho {a} vs {rho}");
    let formula = 28.0 * (1.0 - rho) / (1.0 + rho);
    assert!((f(&a["n_eff_formula"]) - formula).abs() < 1e-6);
    if rho < 0.0 {
        assert_eq!(a["clamped"], true);
        assert_eq!(f(&a["n_eff"]), 28.0);
        assert!(a["note"].as_str().unwrap().contains("n' = n is used"));
    } else {
        assert_eq!(a["clamped"], false);
        assert!((f(&a["n_eff"]) - formula).abs() < 1e-6);
    }

    // Extrapolation: the HIGH days (and any other) above the baseline's largest production, counted
    // again from the reporting buckets.
    let base_max = buckets.iter().map(|b| b.0).fold(f64::MIN, f64::max);
    let base_min = buckets.iter().map(|b| b.0).fold(f64::MAX, f64::min);
    let rep: Vec<f64> = r["series"]["energy_buckets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["period"] == "reporting")
        .map(|b| f(&b["production"]))
        .collect();
    assert_eq!(rep.len(), 30);
    let above = rep.iter().filter(|p| **p > base_max).count();
    assert!(above >= HIGH.len(), "{above}");
    let x = &d["extrapolation"][0];
    assert_eq!(x["variable"], "production");
    assert!((f(&x["baseline_max"]) - base_max).abs() < 1e-9);
    assert_eq!(x["buckets_checked"], 30, "{x}");
    assert_eq!(x["buckets_above"], above, "{x}");
    assert_eq!(
        x["buckets_below"],
        rep.iter().filter(|p| **p < base_min).count(),
        "{x}"
    );
    assert_eq!(
        f(&x["days_outside"]),
        (above + rep.iter().filter(|p| **p < base_min).count()) as f64
    );
    assert!(
        (f(&x["max_above"]) - (330.0 - base_max)).abs() < 1e-3,
        "{x}"
    );
    assert_eq!(d["conventions"]["r2"], "1 - SSE/SST");
    assert_eq!(d["conventions"]["p"], 2);
    // P/audit carries the report without its series under 64 KiB: a model's diagnostics stay small.
    let size = serde_json::to_string(d).unwrap().len();
    assert!(size < 2000, "diagnostics of one model: {size} bytes");

    // Every rendering shows them.
    let html = run_ok(Command::new(BIN).args(["report", "--config", cfg_s, "--format", "html"]));
    let h = String::from_utf8(html.stdout).unwrap();
    assert!(h.contains("Baseline data sufficiency"));
    assert!(h.contains("longest gap 3 days exceeds 2 days"));
    assert!(h.contains(&format!("{:.1}", got)), "loo in the page");
    let zh = run_ok(Command::new(BIN).args([
        "report", "--config", cfg_s, "--format", "html", "--lang", "zh",
    ]));
    let z = String::from_utf8(zh.stdout).unwrap();
    assert!(z.contains("基准期数据充分性") && z.contains("最长缺数 3 天，超过 2 天"));
    let c = run_ok(Command::new(BIN).args(["report", "--config", cfg_s, "--format", "csv"]));
    let c = String::from_utf8(c.stdout).unwrap();
    assert!(c.contains("CV(RMSE) leave-one-out %"));
    assert!(
        c.contains(&format!(
            "production: 0 below, {above} above ({above} days)"
        )),
        "{}",
        c.lines().nth(1).unwrap_or("")
    );
    let png_dir = std::env::var_os("PLANTMETER_DIAG_HTML");
    if let Some(p) = png_dir {
        std::fs::write(Path::new(&p), &h).unwrap();
        std::fs::write(Path::new(&p).with_extension("zh.html"), &z).unwrap();
    }
}

#[test]
fn check_names_a_bad_sufficiency_rule() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("plant.toml");
    std::fs::write(
        &cfg,
        config(
            dir.path(),
            "\n  [audit.sufficiency]\n  min_coverage = 2\n  max_gaps = 3\n",
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("min_coverage 2 is outside 0..=1"), "{err}");
    assert!(err.contains("max_gaps"), "{err}");
}
