//! The park's own audit against an independent computation in this test: a central boiler's steam
//! allocated to two plants by their sub-meters (losses pro rata), a utility whose sub-meter is
//! missing (no allocation for anyone, with the reason), each plant with and without its
//! allocation, the benchmark of one industry, intensity per 10^4 yuan; and the plant audit's
//! recorded replacement and multiplier change (from the gateways' `P/meta`), counted as the agent
//! counts them. Readings are published as gateways would publish them, hour by hour.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use plantmeter_tests::{format_ts_ms, parse_ts_ms, run_ok};
use serde_json::{json, Value};
use support::*;

/// 2026-01-01T00:00 at +08:00: hour 0. Baseline is hours 0..48, reporting 48..96; the last reading
/// is at hour 96.
fn at(h: i64) -> i64 {
    parse_ts_ms("2026-01-01T00:00:00+08:00").unwrap() + h * 3_600_000
}

/// Steam (t/h) of the boiler and the two plants' sub-meters, per period (baseline, reporting).
const BOILER: [f64; 2] = [10.0, 10.0];
const SUNRISE_STEAM: [f64; 2] = [6.0, 5.0];
const MOON_STEAM: [f64; 2] = [3.0, 4.0];
const KGCE_PER_T: f64 = 128.6;

/// A counter growing `rate[period]` per hour: its reading at hour `h`.
fn counter(start: f64, rate: [f64; 2], h: i64) -> f64 {
    let first = h.min(48) as f64;
    let second = (h - 48).max(0) as f64;
    start + rate[0] * first + rate[1] * second
}

fn meter(name: &str, points: &[(&str, &str)], multiplier: Value) -> Value {
    let pts: Vec<Value> = points
        .iter()
        .map(|(n, u)| json!({"name": n, "unit": u, "kind": "counter", "rollover": null}))
        .collect();
    json!({"name": name, "manual": false, "poll_interval_s": 3600.0, "multiplier": multiplier,
           "points": pts})
}

fn data(seq: u64, h: i64, meter: &str, points: &[(&str, &str, f64)]) -> String {
    let pts: Vec<Value> = points
        .iter()
        .map(|(n, u, v)| json!({"name": n, "value": v, "unit": u, "quality": "good"}))
        .collect();
    json!({"seq": seq, "ts": format_ts_ms(at(h)), "meter": meter, "points": pts}).to_string()
}

fn close(got: &Value, want: f64, what: &str) {
    let g = got
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {got} is not a number"));
    assert!(
        (g - want).abs() <= 1e-9 * want.abs().max(1.0),
        "{what}: {g} vs {want}"
    );
}

const AUDIT: &str = r#"  [plant.audit]
  timezone = "+08:00"
  baseline = ["2026-01-01", "2026-01-03"]
  reporting = ["2026-01-03", "2026-01-05"]
  granularity = "hour"
  grid_co2_t_per_mwh = 0.5703
  production = { point = "GW/packer.output", unit = "t" }
  [[plant.audit.input]]
  point = "GW/main.energy"
  carrier = "electricity"
  [[plant.audit.level]]
  indicator = "energy"
  I = 300.0
  II = 500.0
  III = 800.0
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_utilities_are_allocated_by_sub_meters_and_plants_benchmarked() {
    let test = "shared_utilities_are_allocated_by_sub_meters";
    let (Some(pg), Some(mq)) = (Pg::start(test), Mosquitto::start(test)) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = park_config(dir.path(), &pg.url(), &mq.url(), &[]);
    let text = std::fs::read_to_string(&cfg).unwrap()
        + "[[plant]]\nname = \"utilities\"\ngateways = [\"park/gw-00\"]\n"
        + "[[plant]]\nname = \"sunrise\"\nindustry = \"dyeing\"\ngateways = [\"plant-a/gw-01\"]\n\
           output_value = { baseline = 100.0, reporting = 110.0 }\n\
           value_added = { baseline = 30.0, reporting = 33.0 }\n"
        + &AUDIT.replace("GW", "plant-a/gw-01")
        + "[[plant]]\nname = \"moon\"\nindustry = \"dyeing\"\ngateways = [\"plant-b/gw-02\"]\n\
           output_value = { baseline = 200.0 }\nvalue_added = { baseline = 50.0 }\n"
        + &AUDIT.replace("GW", "plant-b/gw-02")
        + r#"
[[utility]]
name = "steam"
point = "park/gw-00/boiler.steam"
kgce_per_unit = 128.6
  [[utility.share]]
  plant = "sunrise"
  point = "plant-a/gw-01/steam.in"
  [[utility.share]]
  plant = "moon"
  point = "plant-b/gw-02/steam.in"
[[utility]]
name = "wwtp"
indicator = "wwtp_electricity"
point = "park/gw-00/wwtp.power"
  [[utility.share]]
  plant = "sunrise"
  point = "plant-a/gw-01/ww.out"
  [[utility.share]]
  plant = "moon"
  point = "plant-b/gw-02/ww.out"
"#;
    std::fs::write(&cfg, text).unwrap();
    run_ok(Command::new(PARK).args(["check", "--config"]).arg(&cfg));
    let mut park = start_park(&cfg, "a");
    wait_subscribed(&pg, 1).await;

    // plant-a's main meter was replaced at hour 30 (old final 4 000 kWh, new meter from 50): 100 kWh
    // an hour throughout; a 4 000 -> 150 drop counted as a new meter from 0 would add 50.
    let replaced = format_ts_ms(at(30));
    let sunrise_energy = |h: i64| {
        if h <= 30 {
            1000.0 + 100.0 * h as f64
        } else {
            50.0 + 100.0 * (h - 30) as f64
        }
    };
    // plant-b's main meter: register 100.00 + 0.01 an hour, published x6000, x8000 from hour 59.5:
    // 60 kWh an hour, then 80; the jump (100.59 x 2 000 kWh) is no consumption.
    let change = at(59) + 1_800_000;
    let moon_mult = |h: i64| if at(h) >= change { 8000.0 } else { 6000.0 };
    let moon_energy = |h: i64| (100.0 + 0.01 * h as f64) * moon_mult(h);
    let metas = [
        (
            "park/gw-00",
            json!({"gateway": "gw-00", "site": "park", "meters": [
                meter("boiler", &[("steam", "t")], Value::Null),
                meter("wwtp", &[("power", "kWh")], Value::Null)]}),
        ),
        (
            "plant-a/gw-01",
            json!({"gateway": "gw-01", "site": "plant-a", "meters": [
                meter("main", &[("energy", "kWh")], Value::Null),
                meter("steam", &[("in", "t")], Value::Null),
                meter("ww", &[("out", "m3")], Value::Null),
                meter("packer", &[("output", "t")], Value::Null)],
                "replacements": [{"point": "main.energy", "at": replaced, "old_final": 4000.0, "new_start": 50.0}]}),
        ),
        (
            "plant-b/gw-02",
            json!({"gateway": "gw-02", "site": "plant-b", "meters": [
                meter("main", &[("energy", "kWh")],
                      json!({"energy": 6000.0, "pt": 60.0, "ct": 100.0,
                             "changes": [{"at": format_ts_ms(change), "value": 8000.0}]})),
                meter("steam", &[("in", "t")], Value::Null),
                meter("ww", &[("out", "m3")], Value::Null),
                meter("packer", &[("output", "t")], Value::Null)],
                "replacements": []}),
        ),
    ];
    let mut msgs: Vec<(String, String, bool)> = metas
        .iter()
        .map(|(gw, m)| (format!("plantmeter/{gw}/meta"), m.to_string(), true))
        .collect();
    let mut seqs = [0u64; 3];
    for h in 0..=96 {
        let mut put = |i: usize, gw: &str, meter: &str, points: &[(&str, &str, f64)]| {
            seqs[i] += 1;
            msgs.push((
                format!("plantmeter/{gw}/data/{meter}"),
                data(seqs[i], h, meter, points),
                false,
            ));
        };
        put(
            0,
            "park/gw-00",
            "boiler",
            &[("steam", "t", counter(5000.0, BOILER, h))],
        );
        put(
            0,
            "park/gw-00",
            "wwtp",
            &[("power", "kWh", 20.0 * h as f64)],
        );
        put(
            1,
            "plant-a/gw-01",
            "main",
            &[("energy", "kWh", sunrise_energy(h))],
        );
        put(
            1,
            "plant-a/gw-01",
            "steam",
            &[("in", "t", counter(300.0, SUNRISE_STEAM, h))],
        );
        put(1, "plant-a/gw-01", "ww", &[("out", "m3", 2.0 * h as f64)]);
        put(1, "plant-a/gw-01", "packer", &[("output", "t", h as f64)]);
        put(
            2,
            "plant-b/gw-02",
            "main",
            &[("energy", "kWh", moon_energy(h))],
        );
        put(
            2,
            "plant-b/gw-02",
            "steam",
            &[("in", "t", counter(10.0, MOON_STEAM, h))],
        );
        // moon's waste-water sub-meter is never read.
        put(
            2,
            "plant-b/gw-02",
            "packer",
            &[("output", "t", 2.0 * h as f64)],
        );
    }
    let published = msgs.iter().filter(|(t, _, _)| t.contains("/data/")).count() as i64;
    publish_all(mq.port, &msgs).await;
    let c = pg.client().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        park.assert_running();
        let stored: i64 = c
            .query_one("SELECT count(*) FROM readings", &[])
            .await
            .unwrap()
            .get(0);
        let metas: i64 = c
            .query_one("SELECT count(*) FROM gateways WHERE meta IS NOT NULL", &[])
            .await
            .unwrap()
            .get(0);
        if stored == published && metas == 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{stored} of {published} stored, {metas} metas"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let report = |args: &[&str]| -> Value {
        let out = run_ok(
            Command::new(PARK)
                .args(["report", "--format", "json", "--config"])
                .arg(&cfg)
                .args(args),
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let p = report(&[]);
    let plant = |name: &str| {
        p["plants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .unwrap()
            .clone()
    };
    let (sunrise, moon) = (plant("sunrise"), plant("moon"));

    // The recorded replacement and the multiplier change, counted exactly.
    let el =
        |r: &Value, period: &str| r["report"]["indicators"]["electricity"][period]["total"].clone();
    close(
        &el(&sunrise, "baseline"),
        48.0 * 100.0,
        "sunrise baseline kWh",
    );
    close(
        &el(&sunrise, "reporting"),
        48.0 * 100.0,
        "sunrise reporting kWh",
    );
    close(&el(&moon, "baseline"), 48.0 * 60.0, "moon baseline kWh");
    close(
        &el(&moon, "reporting"),
        11.0 * 60.0 + 37.0 * 80.0,
        "moon reporting kWh",
    );
    let ev = &sunrise["report"]["events"]["replacements"];
    assert_eq!(
        ev,
        &json!([{"point": "plant-a/gw-01/main.energy", "at": replaced, "recorded": true, "applied": true}]),
        "{ev}"
    );
    let mc = &moon["report"]["events"]["multiplier_changes"];
    assert_eq!(mc[0]["meter"], "plant-b/gw-02/main", "{mc}");
    assert_eq!(mc[0]["to"], 8000.0, "{mc}");

    // The steam, allocated by sub-meter shares: an independent computation from the rates.
    let steam = p["utilities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "steam")
        .unwrap()
        .clone();
    assert_eq!(steam["unit"], "t");
    let mut allocated = [[0.0; 2]; 2];
    for (j, period) in ["baseline", "reporting"].iter().enumerate() {
        let a = &steam["periods"][*period];
        assert!(a["reason"].is_null(), "{a}");
        let u = 48.0 * BOILER[j];
        let s = [48.0 * SUNRISE_STEAM[j], 48.0 * MOON_STEAM[j]];
        let sum = s[0] + s[1];
        close(&a["utility"]["total"], u, "boiler");
        close(&a["sub_metered"], sum, "sub-metered");
        close(&a["losses"], u - sum, "losses");
        close(&a["losses_pct"], 100.0 * (u - sum) / u, "losses %");
        for (i, name) in ["sunrise", "moon"].iter().enumerate() {
            let part = &a["parts"][i];
            assert_eq!(part["plant"], *name);
            close(&part["sub_meter"]["total"], s[i], "sub-meter");
            close(&part["share"], s[i] / sum, "share");
            close(&part["allocated"], u * s[i] / sum, "allocated");
            close(&part["losses"], (u - sum) * s[i] / sum, "its losses");
            close(&part["allocated_kgce"], u * s[i] / sum * KGCE_PER_T, "kgce");
            allocated[i][j] = u * s[i] / sum;
        }
    }
    // A sub-meter without readings: nobody gets an allocation, and the report says why.
    let wwtp = p["utilities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "wwtp")
        .unwrap()
        .clone();
    for period in ["baseline", "reporting"] {
        let a = &wwtp["periods"][period];
        let why = a["reason"].as_str().unwrap();
        assert!(
            why.contains("plant-b/gw-02/ww.out") && why.contains("no reading"),
            "{why}"
        );
        assert!(
            a["parts"][0]["allocated"].is_null() && a["parts"][1]["allocated"].is_null(),
            "{a}"
        );
        close(
            &a["parts"][0]["sub_meter"]["total"],
            96.0,
            "sunrise waste water",
        );
        let w = &sunrise["with_allocation"]["wwtp_electricity"][period];
        assert!(
            w["with"].is_null() && w["reason"].as_str().unwrap().contains("ww.out"),
            "{w}"
        );
    }

    // Each plant with and without its allocation.
    let mut per_unit_with = [0.0; 2];
    for (i, (r, rate)) in [(&sunrise, 1.0), (&moon, 2.0)].iter().enumerate() {
        for (j, period) in ["baseline", "reporting"].iter().enumerate() {
            let own = r["report"]["indicators"]["energy"][*period]["total"]
                .as_f64()
                .unwrap();
            let w = &r["with_allocation"]["energy"][*period];
            let with = own + allocated[i][j] * KGCE_PER_T;
            close(&w["without"], own, "energy without");
            close(
                &w["allocated"],
                allocated[i][j] * KGCE_PER_T,
                "energy allocated",
            );
            close(&w["with"], with, "energy with");
            close(&w["per_unit_with"], with / (48.0 * rate), "per unit with");
            let s = &r["with_allocation"]["steam"][*period];
            // No steam meter of its own: its steam is its allocation.
            assert!(s["without"].is_null(), "{s}");
            close(&s["with"], allocated[i][j], "steam with");
            if j == 1 {
                per_unit_with[i] = with / (48.0 * rate);
            }
        }
    }
    // The benchmark of the industry: reporting period, ranked on the figure with allocation.
    let b = p["benchmarks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["industry"] == "dyeing" && b["indicator"] == "energy")
        .unwrap()
        .clone();
    assert_eq!(b["period"], "reporting");
    let best = if per_unit_with[0] < per_unit_with[1] {
        0
    } else {
        1
    };
    let names = ["sunrise", "moon"];
    assert_eq!(b["rows"][0]["plant"], names[best], "{b}");
    assert_eq!(b["rows"][0]["rank"], 1);
    assert_eq!(b["rows"][1]["rank"], 2);
    for row in b["rows"].as_array().unwrap() {
        let i = names.iter().position(|n| row["plant"] == *n).unwrap();
        close(
            &row["per_unit_with_allocation"],
            per_unit_with[i],
            "benchmark figure",
        );
        close(&row["advanced"], 500.0, "advanced level");
        close(&row["distance"], per_unit_with[i] - 500.0, "distance");
    }
    // Intensity per 10^4 yuan: sunrise has both periods' values, moon only the baseline's.
    let e_with = |r: &Value, period: &str| {
        r["with_allocation"]["energy"][period]["with"]
            .as_f64()
            .unwrap()
    };
    close(
        &sunrise["intensity"]["reporting"]["tce_per_10k_yuan_output"],
        e_with(&sunrise, "reporting") / 1000.0 / 110.0,
        "sunrise tce/10^4 yuan",
    );
    close(
        &sunrise["intensity"]["reporting"]["tce_per_10k_yuan_value_added"],
        e_with(&sunrise, "reporting") / 1000.0 / 33.0,
        "sunrise tce/10^4 yuan value added",
    );
    close(
        &p["intensity"]["baseline"]["tce_per_10k_yuan_output"],
        (e_with(&sunrise, "baseline") + e_with(&moon, "baseline")) / 1000.0 / 300.0,
        "park tce/10^4 yuan",
    );
    assert!(p["intensity"]["reporting"]["tce_per_10k_yuan_output"].is_null());
    assert_eq!(p["intensity"]["reporting"]["lacking"], json!(["moon"]));

    // The renderings carry the same figures.
    let rendered = |format: &str| {
        let out = run_ok(
            Command::new(PARK)
                .args(["report", "--format", format, "--config"])
                .arg(&cfg),
        );
        out.stdout
    };
    let html = String::from_utf8(rendered("html")).unwrap();
    assert!(
        html.contains("<h2>Shared utilities allocated by sub-meter shares</h2>"),
        "{html}"
    );
    assert!(
        html.contains(&format!(">{:.2}<", allocated[0][0])),
        "{html}"
    );
    assert!(
        html.contains("<h2>Benchmarks (plants of one industry)</h2>"),
        "{html}"
    );
    let csv = String::from_utf8(rendered("csv")).unwrap();
    let line = csv
        .lines()
        .find(|l| l.starts_with("steam,reporting,t,") && l.contains(",moon,"))
        .unwrap_or_else(|| panic!("{csv}"));
    let cell: f64 = line.split(',').nth(10).unwrap().parse().unwrap();
    close(&json!(cell), allocated[1][1], "CSV allocated");
    assert!(rendered("xlsx").starts_with(b"PK"));

    // The page marks savings that do not rest on a valid model, as the agent's report does.
    // (Production is the same every hour: no regression, the ratio method.)
    let basis = sunrise["report"]["indicators"]["energy"]["reporting"]["savings_basis"].clone();
    assert_eq!(basis, "ratio");
    {
        if let Some(browser) = chromium() {
            let dom = dump_dom(browser, &format!("{}/plant/sunrise", web_url(&cfg)));
            let energy = row(&dom, "data-indicator", "energy");
            assert!(
                energy.contains(&format!("data-caveat=\"{}\"", basis.as_str().unwrap())),
                "{energy}"
            );
        } else {
            skip(
                &plantmeter_tests::this_test(),
                "its check of the weak-model mark on the page: chromium is not installed",
            );
        }
    }

    // A plant's report is sealed as the agent's: `plantmeter verify` checks its digest; a changed figure breaks it.
    let file = dir.path().join("moon.json");
    run_ok(
        Command::new(PARK)
            .args(["report", "--format", "json", "--plant", "moon", "--out"])
            .arg(&file)
            .arg("--config")
            .arg(&cfg),
    );
    let sealed: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert!(
        sealed["integrity"]["sha256"].is_string(),
        "{}",
        sealed["integrity"]
    );
    let verify = |f: &std::path::Path| {
        Command::new(plantmeter_tests::bin("plantmeter"))
            .args(["verify", "--report"])
            .arg(f)
            .output()
            .unwrap()
    };
    let ok = verify(&file);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let changed = text.replacen("\"production\": 96.0", "\"production\": 97.0", 1);
    assert_ne!(text, changed);
    std::fs::write(&file, changed).unwrap();
    let bad = verify(&file);
    assert_eq!(
        bad.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&bad.stdout)
    );

    // --to is the last day included: the reporting period as configured.
    let r = report(&[
        "--plant",
        "moon",
        "--from",
        "2026-01-03",
        "--to",
        "2026-01-04",
    ]);
    assert_eq!(r["periods"]["reporting"]["to"], "2026-01-05");
    close(
        &r["indicators"]["electricity"]["reporting"]["total"],
        11.0 * 60.0 + 37.0 * 80.0,
        "moon reporting kWh, --to inclusive",
    );
    assert!(park.sigterm(Duration::from_secs(10)).success());
}
