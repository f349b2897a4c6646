//! The audit figures against the simulator's ground truth: three simulated months (two baseline, one
//! reporting) through simulator, broker and agent processes on one virtual clock, with a meter outage, a
//! totalizer rollover and a meter replacement; then `plantmeter report --format json` after a clean
//! shutdown, compared with the truth over the same local-date periods.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use plantmeter_sim::AgentBus;
use plantmeter_tests::*;

const TZ: &str = "+08:00";

fn midnight(date: &str) -> i64 {
    parse_ts_ms(&format!("{date}T00:00:00{TZ}")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_report_matches_the_truth_through_faults() {
    let text = scenario(
        &[("packer", "replace_at = [\"2025-03-15T10:00:00+08:00\"]")],
        &[(
            "gas",
            "[[meter.fault]]\nkind = \"timeout\"\nfrom = \"2025-02-12T09:00:00+08:00\"\nto = \"2025-02-14T09:00:00+08:00\"",
        )],
        &[
            (
                "rollover_at = \"2025-09-10T12:00:00+08:00\"",
                "rollover_at = \"2025-02-10T12:00:00+08:00\"",
            ),
            (
                "baseline = [\"2025-01-01\", \"2026-01-01\"]\nreporting = [\"2026-01-01\", \"2026-07-01\"]",
                "baseline = [\"2025-01-01\", \"2025-03-01\"]\nreporting = [\"2025-03-01\", \"2025-04-01\"]",
            ),
            ("measure_date = \"2026-01-01\"", "measure_date = \"2025-03-01\""),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let scenario_file = write(dir.path(), "scenario.toml", &text);
    let broker = Broker::start(BrokerKind::Rumqttd);
    let (start, end) = (
        midnight("2025-01-01") - 3_600_000,
        midnight("2025-04-01") + 3 * 3_600_000,
    );
    // About 20 real seconds for the three months.
    let speed = (end - start) as f64 / 20_000.0;
    let clock = VClock::new(&format_ts_ms(start), speed, Duration::from_millis(800));
    let sim = Sim::start(Some(&scenario_file), Some(&clock), &[]);
    let data = dir.path().join("data");
    let cfg = agent_config(
        Some(&text),
        AgentBus::Tcp(sim.addr.to_string()),
        &broker.url(),
        &data,
        3600.0,
        100,
    );
    let cfg = write(dir.path(), "agent.toml", &cfg);
    let agent = start_agent(&cfg, Some(&clock));
    clock.sleep_until(end);
    assert!(agent.sigterm(Duration::from_secs(15)).success());

    let report = report_json(&bin("plantmeter"), &cfg);

    // The truth, from the same plant model (a pure function of seed and time).
    let sim_model = plantmeter_sim::Simulation::new(
        plantmeter_sim::Scenario::from_toml(&text).unwrap(),
        None,
        plantmeter_common::Clock::wall(),
    )
    .unwrap();
    let mut kgce = BTreeMap::new();
    let mut co2 = BTreeMap::new();
    for f in report["method"]["factors"].as_array().unwrap() {
        let c = f["carrier"].as_str().unwrap().to_string();
        kgce.insert(c.clone(), f["kgce_per_unit"].as_f64().unwrap());
        co2.insert(c, f["co2_kg_per_unit"].as_f64().unwrap());
    }
    let mut worst: Vec<(f64, String, f64)> = Vec::new();
    for (period, from, to) in [
        ("baseline", "2025-01-01", "2025-03-01"),
        ("reporting", "2025-03-01", "2025-04-01"),
    ] {
        let t = sim_model.truth(midnight(from), midnight(to)).totals;
        let mut truth: BTreeMap<String, f64> = t.carriers.clone();
        truth.insert(
            "energy".into(),
            t.carriers
                .iter()
                .map(|(c, v)| v * kgce.get(c).copied().unwrap_or(0.0))
                .sum(),
        );
        truth.insert(
            "co2".into(),
            t.carriers
                .iter()
                .map(|(c, v)| v * co2.get(c).copied().unwrap_or(0.0))
                .sum(),
        );
        let p = &report["periods"][period];
        assert_eq!(p["from"], from);
        let measured_production = p["production"].as_f64().unwrap();
        let d = 100.0 * (measured_production - t.production) / t.production;
        eprintln!(
            "{period} production: {measured_production:.2} vs {:.2} ({d:+.3}%)",
            t.production
        );
        // A replacement between two polls loses the old meter's advance since its last reading (up to
        // one poll interval of production: -0.23 % of the reporting month here).
        worst.push((d, format!("{period} production"), 0.5));
        for (key, true_total) in truth.iter().chain(t.pollutants_kg.iter()) {
            let ind = &report["indicators"][key];
            let Some(total) = ind[period]["total"].as_f64() else {
                panic!("{key}: no {period} total in the report");
            };
            let d = 100.0 * (total - true_total) / true_total;
            eprintln!("{period} {key}: {total:.3} vs {true_total:.3} ({d:+.3}%)");
            // Pollutant loads too: each hour's concentration is the mean of the polls taken within it (HJ 75),
            // so the analysers' steps at line start/stop are not smeared (within 0.1 % here).
            worst.push((d, format!("{period} {key}"), 0.5));
        }
    }
    for (d, what, bound) in &worst {
        assert!(
            d.abs() <= *bound,
            "{what}: {d:+.3}% from the truth (bound {bound}%)"
        );
    }
    // The faults are visible in the method section.
    let points = report["method"]["points"].as_array().unwrap();
    let find = |name: &str| {
        points
            .iter()
            .find(|p| p["point"].as_str().unwrap().starts_with(name))
            .unwrap()
    };
    assert_eq!(find("power-b.")["rollovers"], 1);
    assert_eq!(find("packer.")["replacements"], 1);
    assert!(find("gas.")["apportioned_hours"].as_u64().unwrap() >= 40);
}
