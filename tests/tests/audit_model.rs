//! The enlarged simulated plant (two boiler stacks with their own O2, two products with a standard-product
//! factor, an outdoor temperature that moves the heating load) through simulator, broker and agent processes on
//! one virtual clock: two baseline months and one reporting month. Then `plantmeter report --format json`
//! against the simulator's own `--truth` file: each product and each source of a pollutant within 0.5 %, the
//! gas model chosen with the heating degree-days, and savings that carry their uncertainty.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use plantmeter_sim::{AgentBus, Truth};
use plantmeter_tests::*;

const TZ: &str = "+08:00";

fn midnight(date: &str) -> i64 {
    parse_ts_ms(&format!("{date}T00:00:00{TZ}")).unwrap()
}

/// The truth file's days within `[from, to)` (local dates), summed: production, products, loads per source.
struct PeriodTruth {
    production: f64,
    products: BTreeMap<String, f64>,
    sources: BTreeMap<(String, String), f64>,
    hdd: f64,
}

fn period_truth(t: &Truth, from: &str, to: &str) -> PeriodTruth {
    let mut out = PeriodTruth {
        production: 0.0,
        products: BTreeMap::new(),
        sources: BTreeMap::new(),
        hdd: 0.0,
    };
    let days: Vec<_> = t
        .days
        .iter()
        .filter(|d| d.date.as_str() >= from && d.date.as_str() < to)
        .collect();
    assert!(
        days.iter().all(|d| d.complete),
        "the truth file covers {from}..{to} in whole days"
    );
    for d in days {
        out.production += d.amounts.production;
        out.hdd += d.amounts.hdd;
        for (k, v) in &d.amounts.products {
            *out.products.entry(k.clone()).or_insert(0.0) += v;
        }
        for (p, sources) in &d.amounts.sources_kg {
            for (s, kg) in sources {
                *out.sources.entry((p.clone(), s.clone())).or_insert(0.0) += kg;
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_sources_and_the_weather_driven_model_match_the_truth() {
    let text = scenario(
        &[],
        &[],
        &[
            (
                "baseline = [\"2025-01-01\", \"2026-01-01\"]\nreporting = [\"2026-01-01\", \"2026-07-01\"]",
                "baseline = [\"2025-01-01\", \"2025-03-01\"]\nreporting = [\"2025-03-01\", \"2025-04-01\"]",
            ),
            ("measure_date = \"2026-01-01\"", "measure_date = \"2025-03-01\""),
            // No rollover inside these months: this test is about the model, not the counters.
            ("rollover_at = \"2025-09-10T12:00:00+08:00\"", "# no rollover"),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let scenario_file = write(dir.path(), "scenario.toml", &text);
    let truth_file = dir.path().join("truth.json");
    let broker = Broker::start(BrokerKind::Rumqttd);
    let (start, end) = (
        midnight("2025-01-01") - 3_600_000,
        midnight("2025-04-01") + 3 * 3_600_000,
    );
    // About 24 real seconds for the three months.
    let speed = (end - start) as f64 / 24_000.0;
    let clock = VClock::new(&format_ts_ms(start), speed, Duration::from_millis(800));
    let sim = Sim::start(
        Some(&scenario_file),
        Some(&clock),
        &["--truth", truth_file.to_str().unwrap()],
    );
    let data = dir.path().join("data");
    let cfg = agent_config(
        Some(&text),
        AgentBus::Tcp(sim.addr.to_string()),
        &broker.url(),
        &data,
        // Two polls an hour: a late poll still leaves the hour its concentration (loads per source).
        1800.0,
        100,
    );
    let cfg = write(dir.path(), "agent.toml", &cfg);
    let agent = start_agent(&cfg, Some(&clock));
    // Until every meter has been polled past the end of the reporting period.
    wait_until(
        "every meter polled past the reporting period",
        Duration::from_secs(60),
        || {
            status_file(&data).is_some_and(|s| {
                s["meters"].as_array().is_some_and(|ms| {
                    !ms.is_empty()
                        && ms.iter().all(|m| {
                            m["last_poll_ms"]
                                .as_i64()
                                .is_some_and(|t| t >= end - 3_600_000)
                        })
                })
            })
        },
    )
    .await;
    assert!(agent.sigterm(Duration::from_secs(15)).success());
    // The simulator writes its truth file at exit.
    assert!(sim.proc.sigterm(Duration::from_secs(10)).success());
    let truth: Truth = serde_json::from_slice(&std::fs::read(&truth_file).unwrap()).unwrap();

    let report = report_json(&bin("plantmeter"), &cfg);

    let mut worst: Vec<(f64, String)> = Vec::new();
    let mut diff = |what: String, measured: Option<f64>, truth: f64| {
        let Some(m) = measured else {
            panic!("{what}: no figure in the report (truth {truth:.3})");
        };
        let d = 100.0 * (m - truth) / truth;
        eprintln!("{what}: {m:.3} vs {truth:.3} ({d:+.3}%)");
        worst.push((d, what));
    };
    for (period, from, to) in [
        ("baseline", "2025-01-01", "2025-03-01"),
        ("reporting", "2025-03-01", "2025-04-01"),
    ] {
        let t = period_truth(&truth, from, to);
        let p = &report["periods"][period];
        assert_eq!(p["from"], from);
        assert!(
            t.hdd > 100.0,
            "{period}: a winter period has heating degree-days"
        );
        diff(
            format!("{period} production"),
            p["production"].as_f64(),
            t.production,
        );
        assert_eq!(t.products.len(), 2);
        for (name, q) in &t.products {
            diff(
                format!("{period} product {name}"),
                p["products"][name].as_f64(),
                *q,
            );
        }
        let so2_sources = t.sources.keys().filter(|(p, _)| p == "SO2").count();
        assert_eq!(so2_sources, 2, "two boiler stacks");
        for ((pollutant, source), kg) in &t.sources {
            let ind = &report["indicators"][pollutant];
            if ind["sources"].is_null() {
                // A pollutant with a single source (the outfall) has no per-source figures.
                assert!(
                    t.sources.keys().filter(|(p, _)| p == pollutant).count() == 1,
                    "{pollutant} has several sources but the report shows none"
                );
                continue;
            }
            diff(
                format!("{period} {pollutant} @ {source}"),
                ind["sources"][source][period]["total"].as_f64(),
                *kg,
            );
        }
    }
    for (d, what) in &worst {
        assert!(
            d.abs() <= 0.5,
            "{what}: {d:+.3}% from the truth (bound 0.5%)"
        );
    }

    // The heating load follows the weather: the gas model (and the energy model) use the degree-days.
    for key in ["natural_gas", "energy"] {
        let model = &report["indicators"][key]["model"];
        assert_eq!(model["method"], "regression", "{key}: {model}");
        let vars: Vec<&str> = model["variables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(vars.contains(&"hdd"), "{key}: model variables {vars:?}");
        assert!(model["coefficients"]["hdd"].as_f64().unwrap() > 0.0);
        assert_eq!(model["candidates"].as_array().unwrap().len(), 4, "{key}");
    }
    // Every regression saving carries its uncertainty (ASHRAE Guideline 14, 90 %).
    let mut with_savings = 0;
    for (key, ind) in report["indicators"].as_object().unwrap() {
        let r = &ind["reporting"];
        if ind["model"]["method"] == "regression" && r["savings"].is_number() {
            let u = r["savings_uncertainty_pct"].as_f64();
            assert!(
                u.is_some_and(|u| u.is_finite() && u > 0.0),
                "{key}: savings {} without an uncertainty",
                r["savings"]
            );
            with_savings += 1;
        }
    }
    assert!(
        with_savings >= 3,
        "{with_savings} regression savings; per indicator (model method, reporting period): {:#}",
        serde_json::Value::Object(
            report["indicators"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, i)| (
                    k.clone(),
                    serde_json::json!([i["model"]["method"], i["reporting"]])
                ))
                .collect()
        )
    );
    let gas = &report["indicators"]["natural_gas"]["reporting"];
    assert!(gas["savings"].as_f64().unwrap() > 0.0, "{gas}");
}
