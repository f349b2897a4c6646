//! The ground truth adds up: days sum to totals, an interval's truth is the counters' advance,
//! carriers are the sum of their audit meters, loads are concentration x flow.
#![allow(clippy::unwrap_used)]

mod common;

use plantmeter_common::model::parse_ts_ms;
use plantmeter_common::Clock;
use plantmeter_sim::{Scenario, Simulation};

fn sim(seed: Option<u64>) -> Simulation {
    Simulation::new(
        Scenario::builtin(),
        seed,
        common::frozen("2025-01-01T00:00:00+08:00"),
    )
    .unwrap()
}

fn ms(s: &str) -> i64 {
    parse_ts_ms(s).unwrap()
}

#[test]
fn days_sum_to_totals_and_days_follow_local_midnight() {
    let s = sim(None);
    let from = ms("2025-01-01T00:00:00+08:00");
    let to = ms("2025-03-15T07:30:00+08:00");
    let t = s.truth(from, to);
    assert_eq!(t.days.len(), 74);
    assert_eq!(t.days[0].date, "2025-01-01");
    assert_eq!(t.days[0].from, "2024-12-31T16:00:00.000Z");
    assert!(t.days[0].complete);
    assert!(!t.days.last().unwrap().complete);
    let sum_p: f64 = t.days.iter().map(|d| d.amounts.production).sum();
    assert!((sum_p - t.totals.production).abs() <= 1e-9 * t.totals.production);
    for (k, total) in &t.totals.carriers {
        let sum: f64 = t.days.iter().map(|d| d.amounts.carriers[k]).sum();
        assert!((sum - total).abs() <= 1e-9 * total, "{k}");
    }
    for (k, total) in &t.totals.pollutants_kg {
        let sum: f64 = t.days.iter().map(|d| d.amounts.pollutants_kg[k]).sum();
        assert!((sum - total).abs() <= 1e-9 * total.abs().max(1.0), "{k}");
    }
    // Spring Festival stoppage: nothing produced on 2025-01-30, yet base load is consumed.
    let cny = t.days.iter().find(|d| d.date == "2025-01-30").unwrap();
    assert_eq!(cny.amounts.production, 0.0);
    assert!(cny.amounts.carriers["electricity"] > 150.0 * 24.0 * 0.9);
    // Sundays stand still too.
    let sunday = t.days.iter().find(|d| d.date == "2025-03-09").unwrap();
    assert_eq!(sunday.amounts.production, 0.0);
    let monday = t.days.iter().find(|d| d.date == "2025-03-10").unwrap();
    assert!(
        monday.amounts.production > 150.0,
        "{}",
        monday.amounts.production
    );
}

#[test]
fn truth_over_an_interval_is_the_counter_difference() {
    let s = sim(None);
    let (a, b) = (
        ms("2025-04-02T03:17:00+08:00"),
        ms("2025-05-20T18:45:30+08:00"),
    );
    let t = s.truth(a, b);
    for (point, adv) in &t.totals.points {
        let (m, p) = point.split_once('.').unwrap();
        let meter = s.meter(m).unwrap();
        let modulus = meter
            .template
            .points
            .iter()
            .find(|x| x.name == p)
            .unwrap()
            .rollover;
        let va = s.point_value(m, p, a).unwrap();
        let vb = s.point_value(m, p, b).unwrap();
        let diff = match modulus {
            Some(md) => (vb - va).rem_euclid(md),
            None => vb - va,
        };
        assert!(
            (diff - adv).abs() <= 1e-6 * adv.max(1.0),
            "{point}: counters {diff}, truth {adv}"
        );
    }
    // Electricity is what the two audit meters advanced (sub-meters are not added).
    let e = t.totals.points["main-power.energy_import"] + t.totals.points["power-b.energy_import"];
    assert!((t.totals.carriers["electricity"] - e).abs() < 1e-6 * e);
    // Production is in standard product: knit (factor 1) + 0.8 x woven.
    let knit = t.totals.points["packer.count_total"];
    let woven = t.totals.points["packer-woven.count_total"];
    assert!((t.totals.production - (knit + 0.8 * woven)).abs() < 1e-9 * e);
    assert_eq!(t.totals.products["knit"], knit);
    assert_eq!(t.totals.products["woven"], woven);
    assert!((t.totals.carriers["water"] - t.totals.points["water.totalizer"]).abs() < 1e-6);
}

#[test]
fn pollutant_load_is_concentration_times_flow() {
    let s = sim(None);
    let a = ms("2025-06-11T10:00:00+08:00");
    let b = a + 3_600_000;
    let t = s.truth(a, b);
    let load = |stack: &str| {
        let c = s.point_value(stack, "so2", a).unwrap();
        let q = s.point_value(stack, "flow_rate", a).unwrap();
        c * q * 1e-6
    };
    let (one, two) = (load("stack"), load("stack-2"));
    let so2 = &t.totals.sources_kg["SO2"];
    assert!((so2["flue_gas"] - one).abs() < 1e-9, "{one}");
    assert!((so2["flue_gas_2"] - two).abs() < 1e-9, "{two}");
    assert!(
        (t.totals.pollutants_kg["SO2"] - (one + two)).abs() < 1e-9,
        "{}",
        one + two
    );
    let cod = s.point_value("outfall", "cod", a).unwrap();
    let v = t.totals.points["outfall.flow_total"];
    assert!((t.totals.pollutants_kg["COD"] - cod * v * 1e-3).abs() < 1e-9);
}

#[test]
fn savings_exist_after_the_measure_and_the_seed_decides_everything() {
    let s = sim(None);
    let spec = |from: &str, to: &str| {
        let t = s.truth(ms(from), ms(to));
        t.totals.carriers["electricity"] / t.totals.production
    };
    let before = spec("2025-03-01T00:00:00+08:00", "2025-06-01T00:00:00+08:00");
    let after = spec("2026-03-01T00:00:00+08:00", "2026-06-01T00:00:00+08:00");
    assert!(after < before * 0.95, "{before} kWh/t -> {after} kWh/t");
    let (a, b) = (
        ms("2025-02-10T00:00:00+08:00"),
        ms("2025-02-17T00:00:00+08:00"),
    );
    assert_eq!(sim(None).truth(a, b), s.truth(a, b));
    assert_ne!(sim(Some(7)).truth(a, b).totals, s.truth(a, b).totals);
}

#[test]
fn reads_are_cheap_at_any_instant() {
    let s = Simulation::new(Scenario::builtin(), None, Clock::wall()).unwrap();
    let t0 = std::time::Instant::now();
    let mut t = ms("2025-01-01T00:00:00+08:00");
    for _ in 0..20_000 {
        t += 2_345_678;
        let _ = s.point_value("main-power", "energy_import", t).unwrap();
    }
    // 20 000 reads across 1.5 years; generous bound for a debug build on a loaded box.
    assert!(t0.elapsed().as_secs_f64() < 5.0, "{:?}", t0.elapsed());
}

#[test]
fn sources_add_up_to_the_pollutant_and_the_mix_changes_day_by_day() {
    let s = sim(None);
    let t = s.truth(
        ms("2025-03-01T00:00:00+08:00"),
        ms("2025-04-01T00:00:00+08:00"),
    );
    for (pollutant, total) in &t.totals.pollutants_kg {
        let sources = &t.totals.sources_kg[pollutant];
        let sum: f64 = sources.values().sum();
        assert!((sum - total).abs() <= 1e-9 * total, "{pollutant}");
    }
    let so2 = &t.totals.sources_kg["SO2"];
    assert_eq!(so2.len(), 2, "{so2:?}");
    assert!(so2["flue_gas"] > 0.0 && so2["flue_gas_2"] > 0.0, "{so2:?}");
    // The woven share of the standard output moves from day to day (orders), so the products are not
    // collinear with production in a regression.
    let shares: Vec<f64> = t
        .days
        .iter()
        .filter(|d| d.amounts.production > 0.0)
        .map(|d| 0.8 * d.amounts.products["woven"] / d.amounts.production)
        .collect();
    let (lo, hi) = shares
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    assert!(
        lo > 0.1 && hi < 0.5 && hi - lo > 0.1,
        "woven share {lo}..{hi}"
    );
}

#[test]
fn cold_days_burn_more_gas_by_the_heating_load() {
    let s = sim(None);
    // Sundays: no production, so gas = base + heating x K below 18 C (x noise).
    let sunday_gas = |date: &str| {
        let a = ms(&format!("{date}T00:00:00+08:00"));
        let t = s.truth(a, a + 86_400_000);
        assert_eq!(t.totals.production, 0.0, "{date}");
        (t.totals.carriers["natural_gas"], t.totals.hdd)
    };
    let (winter, hdd_w) = sunday_gas("2025-01-12");
    let (summer, hdd_s) = sunday_gas("2025-07-13");
    assert!(hdd_w > 5.0 && hdd_s < 0.5, "HDD {hdd_w} {hdd_s}");
    // 5 m3/h base, 12 m3/h per K: the difference is 12 x 24 x the HDD difference, within the 5 % noise.
    let expected = 12.0 * 24.0 * (hdd_w - hdd_s);
    assert!(
        ((winter - summer) - expected).abs() < 0.1 * expected,
        "gas {winter} vs {summer}, expected a difference of {expected}"
    );
    // The transmitter shows the temperature the heating load follows (i16 x 0.1 C).
    let noon = ms("2025-01-12T12:30:00+08:00");
    let shown = s.point_value("weather", "temperature", noon).unwrap();
    assert!((-10.0..20.0).contains(&shown), "{shown}");
}
