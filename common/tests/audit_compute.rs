//! The report computed from readings fed through the interval engine, against figures computed here
//! independently from the formulas that generated the readings.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use chrono::{FixedOffset, NaiveDate};
use plantmeter_common::audit::compute::{compute, HourlySource, ReportRequest};
use plantmeter_common::audit::hourly::{HourAgg, HourGrid};
use plantmeter_common::audit::intervals::Tracker;
use plantmeter_common::audit::report::{BaselineMethod, Level, PeriodKind, SavingsBasis};
use plantmeter_common::plan::*;
use plantmeter_common::types::{ByteOrder, DataType, PointKind, RegisterKind};

fn point(name: &str, kind: PointKind, unit: &str) -> Point {
    Point {
        name: name.into(),
        register: RegisterKind::Holding,
        address: 0,
        data_type: DataType::F64,
        byte_order: ByteOrder::BIG,
        scale: 1.0,
        offset: 0.0,
        unit: unit.into(),
        kind,
        rollover: None,
        min: None,
        max: None,
    }
}

fn meter(name: &str, points: Vec<Point>) -> Meter {
    Meter {
        name: name.into(),
        unit_id: 1,
        poll_interval: Duration::from_secs(900),
        template: None,
        points,
        requests: vec![],
        manual: false,
        link: None,
        multiplier: None,
    }
}

fn pref(s: &str) -> PointRef {
    let (m, p) = s.split_once('.').unwrap();
    PointRef {
        meter: m.into(),
        point: p.into(),
    }
}

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn plan(granularity: Granularity) -> Plan {
    Plan {
        source: PathBuf::from("test.toml"),
        gateway: Gateway {
            id: "gw-01".into(),
            site: "plant-a".into(),
            data_dir: PathBuf::from("/tmp/x"),
            store_max_mb: 64,
            retain_delivered_mb: 0,
            enterprise: None,
            industry: None,
        },
        mqtt: Mqtt {
            url: "mqtt://127.0.0.1:1883".into(),
            host: "127.0.0.1".into(),
            port: 1883,
            tls: false,
            client_id: "c".into(),
            topic_prefix: "p".into(),
            username: None,
            password_file: None,
            password_env: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            keep_alive: Duration::from_secs(30),
            max_inflight: 100,
        },
        manual_meters: Vec::new(),
        buses: vec![Bus {
            name: "b".into(),
            transport: Transport::Tcp {
                address: "127.0.0.1:5020".into(),
            },
            timeout: Duration::from_secs(1),
            retries: 0,
            meters: vec![
                meter("power", vec![point("energy", PointKind::Counter, "kWh")]),
                meter("gas", vec![point("volume", PointKind::Counter, "m3")]),
                meter("packer", vec![point("output", PointKind::Counter, "t")]),
                meter(
                    "outfall",
                    vec![
                        point("cod", PointKind::Gauge, "mg/L"),
                        point("flow", PointKind::Gauge, "m3/h"),
                    ],
                ),
            ],
            protocol: Protocol::Modbus,
        }],
        audit: Some(AuditPlan {
            timezone: FixedOffset::east_opt(8 * 3600).unwrap(),
            baseline: (d("2025-01-01"), d("2025-03-01")),
            reporting: Some((d("2025-03-01"), d("2025-04-01"))),
            granularity,
            grid_co2_t_per_mwh: 0.5703,
            grid_factor_year: Some(2022),
            electricity_method: ElectricityMethod::Equivalent,
            products: vec![AuditProduct {
                name: "production".to_string(),
                point: pref("packer.output"),
                factor: 1.0,
            }],
            drivers: Vec::new(),
            min_completeness: 0.75,
            sufficiency: Default::default(),
            permits: Vec::new(),
            energy_quota_kgce_per_unit: None,
            measures: Vec::new(),
            facilities: Vec::new(),
            balance: Default::default(),
            ledger: Default::default(),
            waste: Vec::new(),
            prices: Vec::new(),
            production_unit: "t".into(),
            inputs: vec![
                AuditInput {
                    material: None,
                    point: pref("power.energy"),
                    carrier: Carrier::Electricity,
                    kgce_per_unit: 0.1229,
                    co2_kg_per_unit: 0.5703,
                },
                AuditInput {
                    material: None,
                    point: pref("gas.volume"),
                    carrier: Carrier::NaturalGas,
                    kgce_per_unit: 1.2143,
                    co2_kg_per_unit: 2.1622,
                },
            ],
            pollutants: vec![AuditPollutant {
                name: PollutantName::COD,
                concentration: pref("outfall.cod"),
                flow: pref("outfall.flow"),
                flow_kind: PointKind::Gauge,
                source: None,
                o2: None,
                limit: None,
            }],
            levels: vec![AuditLevel {
                indicator: "energy".into(),
                level_i: 30.0,
                level_ii: 40.0,
                level_iii: 50.0,
                higher_is_better: false,
                weight: 1.0,
                limiting: false,
            }],
            publish_interval: Duration::from_secs(3600),
        }),
        metrics_listen: None,
        sign_key_file: None,
        hj212: None,
        import: Default::default(),
        desk: false,
    }
}

#[derive(Default)]
struct Mem {
    grid: Option<HourGrid>,
    hours: HashMap<PointRef, BTreeMap<i64, HourAgg>>,
    trackers: HashMap<PointRef, Tracker>,
}

impl Mem {
    fn push(&mut self, r: &str, kind: PointKind, ts: i64, v: Option<f64>) {
        let r = pref(r);
        let grid = self.grid.unwrap();
        let t = self
            .trackers
            .entry(r.clone())
            .or_insert_with(|| Tracker::new(kind, None, 1_800_000 + 1000));
        let m = self.hours.entry(r).or_default();
        t.push(ts, v, &grid, &mut |h, a| m.entry(h).or_default().merge(&a));
    }
}

impl HourlySource for Mem {
    fn hours(&mut self, p: &PointRef, first: i64, out: &mut [HourAgg]) -> Result<(), String> {
        out.fill(HourAgg::default());
        if let Some(m) = self.hours.get(p) {
            for (h, a) in m.range(first..first + out.len() as i64) {
                out[(h - first) as usize] = *a;
            }
        }
        Ok(())
    }
}

const E_A: f64 = 2_000.0; // kWh per day at zero production
const E_B: f64 = 85.0; // kWh per t
const GAS: f64 = 300.0; // m3 per day
const STEP: i64 = 900_000; // 15 min

fn production(day: i64) -> f64 {
    120.0 + ((day * 37) % 23) as f64 * 4.0
}

/// Feed 90 days (Jan 1 .. Apr 1 2025 local): energy = E_A + E_B * P per day, 10 % less in the reporting period.
/// `drop_hours` of day 10 are lost (comm errors) for the electricity meter.
fn feed(drop_hours: std::ops::Range<i64>) -> (Mem, Vec<(f64, f64)>) {
    let tz = FixedOffset::east_opt(8 * 3600).unwrap();
    let grid = HourGrid::new(tz);
    let mut m = Mem {
        grid: Some(grid),
        ..Mem::default()
    };
    let start = grid.hour_start(HourGrid::day_of_date(d("2025-01-01")) * 24);
    let days = 90;
    let (mut e, mut g, mut p) = (5_000.0, 100.0, 0.0);
    let mut truth = Vec::new();
    for day in 0..days {
        let pd = production(day);
        let factor = if day >= 59 { 0.9 } else { 1.0 };
        let ed = (E_A + E_B * pd) * factor;
        truth.push((pd, ed));
        for s in 0..96 {
            let ts = start + (day * 96 + s) * STEP;
            let hour = s / 4;
            let lost = day == 10 && drop_hours.contains(&hour);
            m.push("power.energy", PointKind::Counter, ts, (!lost).then_some(e));
            m.push("gas.volume", PointKind::Counter, ts, Some(g));
            m.push("packer.output", PointKind::Counter, ts, Some(p));
            m.push("outfall.cod", PointKind::Gauge, ts, Some(48.0));
            m.push("outfall.flow", PointKind::Gauge, ts, Some(100.0));
            e += ed / 96.0;
            g += GAS / 96.0;
            p += pd / 96.0;
        }
    }
    let end = start + days * 96 * STEP;
    m.push("power.energy", PointKind::Counter, end, Some(e));
    m.push("gas.volume", PointKind::Counter, end, Some(g));
    m.push("packer.output", PointKind::Counter, end, Some(p));
    m.push("outfall.cod", PointKind::Gauge, end, Some(48.0));
    m.push("outfall.flow", PointKind::Gauge, end, Some(100.0));
    (m, truth)
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1.0)
}

fn now() -> i64 {
    chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .timestamp_millis()
}

#[test]
fn daily_regression_savings_and_grade_match_the_generating_formulas() {
    let (mut src, truth) = feed(0..0);
    let plan = plan(Granularity::Day);
    let req = ReportRequest {
        now_ms: now(),
        period_override: None,
    };
    let r = compute(&plan, &req, &mut src).unwrap();
    let keys: Vec<&str> = r.indicators.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["energy", "electricity", "natural_gas", "co2", "COD"]);

    let base: Vec<_> = truth[..59].to_vec();
    let rep: Vec<_> = truth[59..].to_vec();
    let bp: f64 = base.iter().map(|x| x.0).sum();
    let be: f64 = base.iter().map(|x| x.1).sum();
    let rp: f64 = rep.iter().map(|x| x.0).sum();
    let re: f64 = rep.iter().map(|x| x.1).sum();
    assert!(close(r.periods.baseline.production, bp, 1e-9));
    assert!(close(
        r.periods.reporting.as_ref().unwrap().production,
        rp,
        1e-9
    ));
    assert!(close(r.periods.baseline.completeness, 1.0, 1e-12));

    let ind = |k: &str| r.indicator(k).unwrap();
    let el = ind("electricity");
    assert!(close(el.baseline.total.unwrap(), be, 1e-9));
    assert!(close(el.baseline.per_unit.unwrap(), be / bp, 1e-9));
    assert_eq!(el.model.method, BaselineMethod::Regression);
    assert_eq!(el.model.n, 59);
    assert!(close(el.model.slope.unwrap(), E_B, 1e-6));
    assert!(close(el.model.intercept, E_A, 1e-6));
    assert!(el.model.meets_ashrae14);
    // DOMAIN.md selection: the one candidate (production) is valid and listed with its statistics.
    assert!(el.model.valid);
    assert_eq!(el.model.variables, ["production"]);
    let keys: Vec<&str> = el
        .model
        .coefficients
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(keys, ["intercept", "production"]);
    assert!(el.model.p_value.unwrap() < 0.10);
    assert!(el.model.r2_adj.unwrap() > 0.5);
    assert_eq!(el.model.candidates.len(), 1);
    assert!(el.model.candidates[0].valid);
    let rv = el.reporting.as_ref().unwrap();
    let fsu = rv.savings_uncertainty_pct.unwrap();
    assert!(fsu.is_finite() && fsu >= 0.0, "{fsu}");
    let expected: f64 = rep.iter().map(|x| E_A + E_B * x.0).sum();
    assert!(close(rv.total.unwrap(), re, 1e-9));
    assert!(close(rv.expected.unwrap(), expected, 1e-6));
    assert!(close(rv.savings.unwrap(), expected - re, 1e-6));
    assert!(close(rv.savings_pct.unwrap(), 10.0, 1e-6));

    // Comprehensive energy: electricity x 0.1229 + gas x 1.2143 (a constant per day: part of the intercept).
    let en = ind("energy");
    assert_eq!(en.total_unit, "kgce");
    assert_eq!(en.per_unit_unit, "kgce/t");
    let kgce_b = be * 0.1229 + 59.0 * GAS * 1.2143;
    assert!(close(en.baseline.total.unwrap(), kgce_b, 1e-9));
    assert!(close(en.model.slope.unwrap(), E_B * 0.1229, 1e-6));
    assert!(close(en.model.intercept, E_A * 0.1229 + GAS * 1.2143, 1e-6));
    let kgce_r = re * 0.1229 + 31.0 * GAS * 1.2143;
    let pu = kgce_r / rp;
    assert!(close(
        en.reporting.as_ref().unwrap().per_unit.unwrap(),
        pu,
        1e-9
    ));
    let want = if pu <= 30.0 {
        "I"
    } else if pu <= 40.0 {
        "II"
    } else if pu <= 50.0 {
        "III"
    } else {
        "below III"
    };
    assert_eq!(en.level.map(Level::as_str), Some(want));

    // CO2 and COD (48 mg/L x 2 400 m3/day = 115.2 kg/day: DOMAIN example 5).
    assert!(close(
        ind("co2").baseline.total.unwrap(),
        be * 0.5703 + 59.0 * GAS * 2.1622,
        1e-9
    ));
    assert!(close(
        ind("COD").baseline.total.unwrap(),
        59.0 * 115.2,
        1e-9
    ));
    assert_eq!(ind("COD").level, None);

    // CUSUM ends at the savings; daily series covers both periods.
    let last = r.series.energy_cusum.last().unwrap().cusum;
    assert!(close(
        last,
        en.reporting.as_ref().unwrap().savings.unwrap(),
        1e-6
    ));
    assert_eq!(r.series.daily.len(), 90);
    assert_eq!(r.series.monthly_per_unit.len(), 3);
    assert_eq!(r.series.daily[0].date, "2025-01-01");

    // The JSON has the contract's shape.
    let v = serde_json::to_value(&r).unwrap();
    assert!(v["indicators"]["energy"]["model"]["r2"].as_f64().unwrap() > 0.999);
    assert_eq!(v["indicators"]["energy"]["model"]["granularity"], "day");
    assert!(v["periods"]["reporting"]["completeness"].as_f64().is_some());
}

#[test]
fn lost_hours_lower_completeness_and_leave_the_day_out_of_the_fit_without_losing_energy() {
    let (mut src, truth) = feed(2..8);
    let r = compute(
        &plan(Granularity::Day),
        &ReportRequest {
            now_ms: now(),
            period_override: None,
        },
        &mut src,
    )
    .unwrap();
    let el = r.indicator("electricity").unwrap();
    // 6 hours lost (plus the interval that closes them): day 10 keeps < 20 valid hours for electricity.
    assert_eq!(el.model.n, 58);
    let be: f64 = truth[..59].iter().map(|x| x.1).sum();
    assert!(
        close(el.baseline.total.unwrap(), be, 1e-9),
        "consumption across the gap is kept"
    );
    assert!(r.periods.baseline.completeness < 1.0);
    let q = r
        .method
        .points
        .iter()
        .find(|p| p.point == "power.energy")
        .unwrap();
    assert_eq!(q.apportioned_hours, 7);
    assert!(r
        .method
        .notes
        .iter()
        .any(|n| n.contains("1 of 59 baseline day buckets")));
    // The chart series says which bucket the model left out (the energy buckets follow `energy`,
    // whose inputs include the same meter).
    let incomplete: Vec<&str> = r
        .series
        .energy_buckets
        .iter()
        .filter(|b| !b.complete)
        .map(|b| b.label.as_str())
        .collect();
    assert_eq!(incomplete.len(), 1, "{incomplete:?}");
}

#[test]
fn monthly_model_with_too_few_buckets_uses_the_ratio_method() {
    let (mut src, truth) = feed(0..0);
    let r = compute(
        &plan(Granularity::Month),
        &ReportRequest {
            now_ms: now(),
            period_override: None,
        },
        &mut src,
    )
    .unwrap();
    let el = r.indicator("electricity").unwrap();
    assert_eq!(el.model.method, BaselineMethod::Ratio);
    assert!(el
        .model
        .reason
        .as_deref()
        .unwrap()
        .contains("only 2 complete month"));
    assert!(!el.model.valid);
    assert!(!el.model.candidates[0].valid);
    assert_eq!(el.reporting.as_ref().unwrap().savings_uncertainty_pct, None);
    let bp: f64 = truth[..59].iter().map(|x| x.0).sum();
    let be: f64 = truth[..59].iter().map(|x| x.1).sum();
    let rp: f64 = truth[59..].iter().map(|x| x.0).sum();
    assert!(close(el.model.slope.unwrap(), be / bp, 1e-9));
    assert!(close(
        el.reporting.as_ref().unwrap().expected.unwrap(),
        be / bp * rp,
        1e-9
    ));
}

#[test]
fn report_as_of_now_counts_only_completed_hours_and_override_moves_the_reporting_period() {
    let (mut src, truth) = feed(0..0);
    // Noon local on 2025-03-11: 10 reporting days and 12 hours have elapsed.
    let now = chrono::DateTime::parse_from_rfc3339("2025-03-11T12:00:00+08:00")
        .unwrap()
        .timestamp_millis();
    let r = compute(
        &plan(Granularity::Day),
        &ReportRequest {
            now_ms: now,
            period_override: Some((d("2025-03-01"), d("2025-03-08"))),
        },
        &mut src,
    )
    .unwrap();
    let rep = r.periods.reporting.as_ref().unwrap();
    assert_eq!(rep.to, "2025-03-08");
    let rp: f64 = truth[59..66].iter().map(|x| x.0).sum();
    assert!(close(rep.production, rp, 1e-9));
    let r2 = compute(
        &plan(Granularity::Day),
        &ReportRequest {
            now_ms: now,
            period_override: None,
        },
        &mut src,
    )
    .unwrap();
    let rp: f64 = truth[59..69].iter().map(|x| x.0).sum::<f64>() + truth[69].0 / 2.0;
    assert!(close(
        r2.periods.reporting.as_ref().unwrap().production,
        rp,
        1e-9
    ));
    assert_eq!(r2.series.daily.len(), 59 + 11);
}

/// Concentration and flow stepping together at the hour (line start/stop), polled hourly 7 minutes late, with
/// a 4-hour analyser outage: each hour's load is its own concentration x flow, and the outage hours take the
/// mean of the valid hours around them (HJ 75), flagged as apportioned hours of the analyser.
#[test]
fn pollutant_loads_follow_hourly_steps_and_substitute_an_outage() {
    let tz = FixedOffset::east_opt(8 * 3600).unwrap();
    let grid = HourGrid::new(tz);
    let mut m = Mem {
        grid: Some(grid),
        ..Mem::default()
    };
    let h0 = HourGrid::day_of_date(d("2025-01-01")) * 24;
    let level = |h: i64| {
        if (8..16).contains(&h.rem_euclid(24)) {
            (40.0, 300.0)
        } else {
            (20.0, 50.0)
        }
    };
    let outage = 30..34;
    let hours = 48;
    let mut expected = 0.0;
    for h in 0..hours {
        let ts = grid.hour_start(h0 + h) + 7 * 60_000;
        let (c, q) = level(h);
        let lost = outage.contains(&h);
        m.push("outfall.cod", PointKind::Gauge, ts, (!lost).then_some(c));
        m.push("outfall.flow", PointKind::Gauge, ts, Some(q));
        m.push("packer.output", PointKind::Counter, ts, Some(h as f64));
        // The substituted concentration: the mean of hour 29 (idle, 20) and hour 34 (running, 40).
        let c_used = if lost { 30.0 } else { c };
        expected += c_used * q * 1e-3;
    }
    let p = plan(Granularity::Day);
    let req = ReportRequest {
        now_ms: now(),
        period_override: None,
    };
    let r = compute(&p, &req, &mut m).unwrap();
    let cod = r.indicator("COD").unwrap();
    assert!(
        close(cod.baseline.total.unwrap(), expected, 1e-12),
        "{} vs {expected}",
        cod.baseline.total.unwrap()
    );
    let q = r
        .method
        .points
        .iter()
        .find(|q| q.point == "outfall.cod")
        .unwrap();
    assert_eq!(q.apportioned_hours, 4);
    assert!(
        r.method
            .notes
            .iter()
            .any(|n| n.starts_with("outfall.cod: 4 hours without a reading")),
        "{:?}",
        r.method.notes
    );
    // Hours after the last reading are not invented.
    let flow = r
        .method
        .points
        .iter()
        .find(|q| q.point == "outfall.flow")
        .unwrap();
    assert_eq!(flow.apportioned_hours, 0);
}

/// DOMAIN.md example 9 through the whole report: two products (A factor 1.0, B factor 0.8) and an HDD
/// driver from an outdoor temperature gauge, at month granularity, fed as 15-minute readings.
#[test]
fn example_9_through_the_report_two_products_and_a_degree_day_driver() {
    const A: [f64; 18] = [
        410.0, 380.0, 450.0, 470.0, 500.0, 520.0, 510.0, 530.0, 490.0, 470.0, 440.0, 420.0, 430.0,
        400.0, 470.0, 480.0, 510.0, 530.0,
    ];
    const B: [f64; 18] = [
        200.0, 210.0, 190.0, 230.0, 220.0, 250.0, 240.0, 260.0, 230.0, 210.0, 220.0, 200.0, 210.0,
        205.0, 200.0, 240.0, 230.0, 255.0,
    ];
    const HDD: [f64; 18] = [
        520.0, 430.0, 300.0, 150.0, 40.0, 0.0, 0.0, 0.0, 30.0, 160.0, 330.0, 480.0, 510.0, 420.0,
        310.0, 140.0, 30.0, 0.0,
    ];
    const Y: [f64; 18] = [
        30510.0, 28490.0, 30060.0, 29600.0, 29100.0, 30610.0, 29980.0, 31410.0, 29850.0, 29700.0,
        30250.0, 31050.0, 29050.0, 27400.0, 28500.0, 28010.0, 27720.0, 29100.0,
    ];
    let mut plan = plan(Granularity::Month);
    plan.buses[0].meters.push(meter(
        "line",
        vec![
            point("knit", PointKind::Counter, "t"),
            point("woven", PointKind::Counter, "t"),
        ],
    ));
    plan.buses[0]
        .meters
        .push(meter("weather", vec![point("temp", PointKind::Gauge, "C")]));
    {
        let a = plan.audit.as_mut().unwrap();
        a.baseline = (d("2025-01-01"), d("2026-01-01"));
        a.reporting = Some((d("2026-01-01"), d("2026-07-01")));
        a.products = vec![
            AuditProduct {
                name: "A".into(),
                point: pref("line.knit"),
                factor: 1.0,
            },
            AuditProduct {
                name: "B".into(),
                point: pref("line.woven"),
                factor: 0.8,
            },
        ];
        a.drivers = vec![AuditDriver {
            name: "hdd".into(),
            point: pref("weather.temp"),
            transform: DriverTransform::Hdd { base: 18.0 },
        }];
        a.inputs.truncate(1); // electricity only: y is its kWh
        a.pollutants.clear();
        a.levels.clear();
    }
    let tz = FixedOffset::east_opt(8 * 3600).unwrap();
    let grid = HourGrid::new(tz);
    let mut m = Mem {
        grid: Some(grid),
        ..Mem::default()
    };
    let (mut e, mut qa, mut qb) = (1_000.0, 0.0, 0.0);
    let mut ts = grid.hour_start(HourGrid::day_of_date(d("2025-01-01")) * 24);
    for k in 0..18 {
        let first = d("2025-01-01")
            .checked_add_months(chrono::Months::new(k as u32))
            .unwrap();
        let next = first.checked_add_months(chrono::Months::new(1)).unwrap();
        let days = (next - first).num_days() as f64;
        let steps = (next - first).num_days() * 96;
        // A constant temperature whose degree-hours over the month give exactly HDD[k] degree-days.
        let temp = 18.0 - HDD[k] / days;
        for _ in 0..steps {
            m.push("power.energy", PointKind::Counter, ts, Some(e));
            m.push("line.knit", PointKind::Counter, ts, Some(qa));
            m.push("line.woven", PointKind::Counter, ts, Some(qb));
            m.push("weather.temp", PointKind::Gauge, ts, Some(temp));
            e += Y[k] / steps as f64;
            qa += A[k] / steps as f64;
            qb += B[k] / steps as f64;
            ts += STEP;
        }
    }
    m.push("power.energy", PointKind::Counter, ts, Some(e));
    m.push("line.knit", PointKind::Counter, ts, Some(qa));
    m.push("line.woven", PointKind::Counter, ts, Some(qb));
    m.push("weather.temp", PointKind::Gauge, ts, Some(18.0));
    let req = ReportRequest {
        now_ms: ts + 86_400_000,
        period_override: None,
    };
    let r = compute(&plan, &req, &mut m).unwrap();
    let base = &r.periods.baseline;
    let products = base.products.as_ref().unwrap();
    let sum_a: f64 = A[..12].iter().sum();
    let sum_b: f64 = B[..12].iter().sum();
    assert!(close(products["A"], sum_a, 1e-9), "{products:?}");
    assert!(close(products["B"], sum_b, 1e-9), "{products:?}");
    // DOMAIN.md example 13: production is the standard product, sum of factor x quantity.
    assert!(close(base.production, sum_a + 0.8 * sum_b, 1e-9));

    let el = r.indicator("electricity").unwrap();
    let md = &el.model;
    assert_eq!(md.method, BaselineMethod::Regression, "{:?}", md.reason);
    assert_eq!(md.variables, ["A", "B", "hdd"]);
    assert_eq!(md.slope, None, "no single slope with several variables");
    let valid: Vec<bool> = md.candidates.iter().map(|c| c.valid).collect();
    assert_eq!(valid, [false, false, true, true]);
    let coef = |k: &str| md.coefficients.iter().find(|(n, _)| n == k).unwrap().1;
    assert!(
        close(coef("intercept"), 2997.9337, 1e-7),
        "{:?}",
        md.coefficients
    );
    assert!(close(coef("A"), 45.192693, 1e-7));
    assert!(close(coef("B"), 16.649607, 1e-7));
    assert!(close(coef("hdd"), 11.360527, 1e-7));
    assert!(close(md.r2_adj.unwrap(), 0.823307, 1e-6));
    let rv = el.reporting.as_ref().unwrap();
    assert!(
        close(rv.expected.unwrap(), 183_759.814, 1e-8),
        "{}",
        rv.expected.unwrap()
    );
    assert!(
        close(rv.savings.unwrap(), 13_979.814, 1e-7),
        "{}",
        rv.savings.unwrap()
    );
    let fsu = rv.savings_uncertainty_pct.unwrap();
    assert!((fsu - 20.02).abs() < 0.005, "FSU {fsu}");
    // CUSUM per indicator: electricity's ends at its savings (DOMAIN example 9: 13 979.814).
    let cusum = &r
        .series
        .cusum
        .iter()
        .find(|(k, _)| k == "electricity")
        .unwrap()
        .1;
    assert_eq!(cusum.len(), 6);
    assert!(
        close(cusum[5].cusum, 13_979.814, 1e-7),
        "{}",
        cusum[5].cusum
    );
}

/// DOMAIN.md "Honest figures": a point never measured has no total (null, not 0.00); a reporting period
/// without data claims no savings and says why; a thin reporting period (below min_completeness) neither.
#[test]
fn no_data_is_null_and_savings_need_data_and_completeness() {
    let (mut src, _) = feed(0..0);
    src.hours.remove(&pref("outfall.cod"));
    let rep_start = HourGrid::day_of_date(d("2025-03-01")) * 24;
    src.hours
        .get_mut(&pref("power.energy"))
        .unwrap()
        .retain(|h, _| *h < rep_start);
    let plan = plan(Granularity::Day);
    let req = ReportRequest {
        now_ms: now(),
        period_override: None,
    };
    let r = compute(&plan, &req, &mut src).unwrap();
    let ind = |k: &str| r.indicator(k).unwrap();
    let cod = ind("COD");
    assert_eq!(cod.baseline.total, None, "COD was never measured");
    assert_eq!(cod.baseline.per_unit, None);
    assert_eq!(cod.baseline.completeness, 0.0);
    let el = ind("electricity");
    assert!(el.baseline.total.is_some());
    assert!(el.baseline.completeness > 0.99);
    let rv = el.reporting.as_ref().unwrap();
    assert_eq!(rv.total, None);
    assert_eq!(rv.savings, None);
    assert_eq!(rv.savings_pct, None);
    assert_eq!(rv.completeness, 0.0);
    // Nothing to expect over days without data (DOMAIN.md, checked example 14): the whole of March is
    // left out, so there is no expected figure either.
    assert_eq!(rv.expected, None);
    assert_eq!(rv.days_without_data, 31);
    assert_eq!(rv.savings_basis, None);
    assert_eq!(
        rv.savings_reason.as_deref(),
        Some("no data of this indicator in the reporting period")
    );
    let json = serde_json::to_value(&r).unwrap();
    assert!(json["indicators"]["COD"]["baseline"]["total"].is_null());

    // Half of the reporting period's hours lost: completeness ~0.5 < 0.75, so no savings claimed.
    let (mut src, _) = feed(0..0);
    let mid = HourGrid::day_of_date(d("2025-03-16")) * 24;
    src.hours
        .get_mut(&pref("power.energy"))
        .unwrap()
        .retain(|h, _| *h < rep_start || *h >= mid);
    let r = compute(&plan, &req, &mut src).unwrap();
    let el = r.indicator("electricity").unwrap();
    let rv = el.reporting.as_ref().unwrap();
    assert!(rv.total.is_some());
    assert!(rv.completeness < 0.75, "{}", rv.completeness);
    assert_eq!(rv.savings, None);
    assert!(
        rv.savings_reason
            .as_deref()
            .unwrap()
            .contains("below min_completeness 75.0 %"),
        "{:?}",
        rv.savings_reason
    );
}

/// DOMAIN.md "Several sources add up": two outfalls of COD, each with its own figures, the indicator their sum.
#[test]
fn several_sources_of_one_pollutant_add_up_and_keep_their_own_figures() {
    let mut plan = plan(Granularity::Day);
    plan.buses[0].meters.push(meter(
        "outfall2",
        vec![
            point("cod", PointKind::Gauge, "mg/L"),
            point("flow", PointKind::Gauge, "m3/h"),
        ],
    ));
    {
        let a = plan.audit.as_mut().unwrap();
        a.pollutants[0].source = Some("outfall-1".into());
        let mut second = a.pollutants[0].clone();
        second.source = Some("outfall-2".into());
        second.concentration = pref("outfall2.cod");
        second.flow = pref("outfall2.flow");
        a.pollutants.push(second);
    }
    let (mut src, _) = feed(0..0);
    let grid = src.grid.unwrap();
    let start = grid.hour_start(HourGrid::day_of_date(d("2025-01-01")) * 24);
    for s in 0..=(90 * 96) {
        let ts = start + s * STEP;
        src.push("outfall2.cod", PointKind::Gauge, ts, Some(30.0));
        src.push("outfall2.flow", PointKind::Gauge, ts, Some(50.0));
    }
    let req = ReportRequest {
        now_ms: now(),
        period_override: None,
    };
    let r = compute(&plan, &req, &mut src).unwrap();
    let keys: Vec<&str> = r.indicators.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys.iter().filter(|k| **k == "COD").count(), 1, "{keys:?}");
    let cod = r.indicator("COD").unwrap();
    let sources = cod.sources.as_ref().unwrap();
    // 59 baseline days: outfall 1 at 48 mg/L x 100 m3/h, outfall 2 at 30 mg/L x 50 m3/h.
    let one = 59.0 * 24.0 * 48.0 * 100.0 * 1e-3;
    let two = 59.0 * 24.0 * 30.0 * 50.0 * 1e-3;
    assert!(close(
        sources["outfall-1"].baseline.total.unwrap(),
        one,
        1e-9
    ));
    assert!(close(
        sources["outfall-2"].baseline.total.unwrap(),
        two,
        1e-9
    ));
    assert!(close(cod.baseline.total.unwrap(), one + two, 1e-9));
}

/// DOMAIN.md example 11: hourly SO2 means 40, 55, 48 mg/m3 at O2 10, 11.5, 9 %, reference 9 %.
#[test]
fn example_11_converted_concentrations() {
    use plantmeter_common::audit::compute::converted_concentration as conv;
    let got: Vec<f64> = [(40.0, 10.0), (55.0, 11.5), (48.0, 9.0)]
        .iter()
        .map(|&(c, o)| conv(c, o, 9.0))
        .collect();
    for (g, w) in got.iter().zip([43.636, 69.474, 48.000]) {
        assert!((g - w).abs() < 5e-4, "{g} vs {w}");
    }
    assert_eq!(got.iter().filter(|c| **c > 50.0).count(), 1);
    // DOMAIN example 6: 120 at 11.5 % with reference 9 %; 30 at 8 % with reference 3.5 %.
    assert!((conv(120.0, 11.5, 9.0) - 151.579).abs() < 5e-4);
    assert!((conv(30.0, 8.0, 3.5) - 40.385).abs() < 5e-4);
}

/// Limits through the report: a COD limit crossed in the running hours, a permit exceeded pro rata, an
/// energy quota, and the three triggers.
#[test]
fn limits_permits_quota_and_triggers() {
    let mut plan = plan(Granularity::Day);
    {
        let a = plan.audit.as_mut().unwrap();
        a.pollutants[0].limit = Some(45.0);
        // COD: 48 mg/L x 100 m3/h all day = 115.2 kg/day, 42 t/year; a permit of 30 t/year is exceeded.
        a.permits = vec![AuditPermit {
            pollutant: PollutantName::COD,
            t_per_year: 30.0,
        }];
        a.energy_quota_kgce_per_unit = Some(1.0);
    }
    let (mut src, _) = feed(0..0);
    let req = ReportRequest {
        now_ms: now(),
        period_override: None,
    };
    let r = compute(&plan, &req, &mut src).unwrap();
    let c = &r.compliance;
    assert_eq!(c.sources.len(), 1);
    let s = &c.sources[0];
    assert_eq!((s.pollutant.as_str(), s.source.as_str()), ("COD", "COD"));
    assert_eq!(s.period, "reporting");
    assert_eq!(s.valid_hours, 31 * 24);
    assert_eq!(s.exceedance_hours, 31 * 24, "48 > 45 every hour");
    assert!((s.max_converted.unwrap() - 48.0).abs() < 1e-9);
    assert_eq!(c.permits.len(), 1, "one calendar year");
    let p = &c.permits[0];
    assert_eq!(p.year, 2025);
    let days = 90.0;
    assert!(
        close(p.total_t, days * 115.2 / 1000.0, 1e-9),
        "{}",
        p.total_t
    );
    assert!(
        close(p.share, (days * 0.1152) / (30.0 * days / 365.0), 1e-9),
        "{}",
        p.share
    );
    let q = c.quota.as_ref().unwrap();
    assert_eq!(
        (q.baseline_over, q.reporting_over),
        (Some(true), Some(true))
    );
    assert!(c.triggers.over_standard && c.triggers.over_total && c.triggers.over_energy_quota);
    // Below the limit: no exceedance, no trigger.
    plan.audit.as_mut().unwrap().pollutants[0].limit = Some(50.0);
    let (mut src, _) = feed(0..0);
    let r = compute(&plan, &req, &mut src).unwrap();
    assert_eq!(r.compliance.sources[0].exceedance_hours, 0);
    assert!(!r.compliance.triggers.over_standard);
}

/// Measures and money: a sub-metered measure's savings from its own baseline model, in yuan, with its simple
/// payback; a measure without a sub-meter is listed without savings; priced carriers get savings in yuan.
#[test]
fn measures_savings_money_and_payback() {
    let mut plan = plan(Granularity::Day);
    {
        let a = plan.audit.as_mut().unwrap();
        a.prices = vec![(Carrier::Electricity, 0.68)];
        a.measures = vec![
            AuditMeasure {
                name: "VSD on the main fan".into(),
                in_service: d("2025-03-01"),
                investment_yuan: 50_000.0,
                point: Some((pref("power.energy"), Carrier::Electricity)),
            },
            AuditMeasure {
                name: "training".into(),
                in_service: d("2025-03-01"),
                investment_yuan: 2_000.0,
                point: None,
            },
        ];
    }
    let (mut src, truth) = feed(0..0);
    let req = ReportRequest {
        now_ms: now(),
        period_override: None,
    };
    let r = compute(&plan, &req, &mut src).unwrap();
    let el = r.indicator("electricity").unwrap();
    let rv = el.reporting.as_ref().unwrap();
    let savings = rv.savings.unwrap();
    assert!(close(rv.savings_yuan.unwrap(), savings * 0.68, 1e-12));
    let rep: f64 = truth[59..].iter().map(|x| E_A + E_B * x.0).sum::<f64>() * 0.1;
    assert!(close(savings, rep, 1e-6), "{savings} vs {rep}");
    let m = &r.measures[0];
    assert_eq!(m.indicator.as_deref(), Some("electricity"));
    assert!(
        close(m.savings.unwrap(), savings, 1e-9),
        "the sub-meter is the main meter here"
    );
    assert!(close(m.savings_yuan.unwrap(), savings * 0.68, 1e-9));
    // Its own model's diagnostics: the same meter, so the same figures as the indicator's model.
    let (md, ed) = (
        m.diagnostics.as_ref().unwrap(),
        el.model.diagnostics.as_ref().unwrap(),
    );
    assert_eq!(md.sufficiency, ed.sufficiency);
    assert_eq!(md.cv_rmse_loo_pct, ed.cv_rmse_loo_pct);
    assert!(md.cv_rmse_loo_pct.is_some());
    assert_eq!(md.autocorrelation, ed.autocorrelation);
    assert_eq!(md.extrapolation, ed.extrapolation);
    let per_year = savings * 0.68 * 365.0 / 31.0;
    assert!(close(m.payback_years.unwrap(), 50_000.0 / per_year, 1e-9));
    let t = &r.measures[1];
    assert_eq!(
        (t.savings, t.savings_yuan, t.payback_years),
        (None, None, None)
    );
    assert!(t.reason.as_deref().unwrap().contains("no sub-meter"));
    let co2 = r.indicator("co2").unwrap();
    assert_eq!(
        co2.reporting.as_ref().unwrap().savings_yuan,
        None,
        "no price"
    );
}

/// Every figure says where its data came from: an outage's apportioned hours are their share of the total.
#[test]
fn provenance_shares_add_up_and_show_the_apportioned_part() {
    let (mut src, _) = feed(8..14);
    let req = ReportRequest {
        now_ms: now(),
        period_override: None,
    };
    let r = compute(&plan(Granularity::Day), &req, &mut src).unwrap();
    let el = r.indicator("electricity").unwrap();
    let p = el.baseline.provenance.as_ref().unwrap();
    assert!(p.apportioned > 0.0 && p.apportioned < 0.01, "{p:?}");
    assert!((p.polled + p.apportioned - 1.0).abs() < 1e-12, "{p:?}");
    assert_eq!((p.imported, p.manual), (0.0, 0.0));
    let rp = el.reporting.as_ref().unwrap().provenance.as_ref().unwrap();
    assert_eq!(rp.polled, 1.0, "no outage in the reporting period");
}

/// Carrier "material" inputs are indicators by their material's name (物耗), never part of energy or CO2.
#[test]
fn material_inputs_are_indicators_by_name() {
    let mut plan = plan(Granularity::Day);
    {
        let a = plan.audit.as_mut().unwrap();
        a.inputs[1] = AuditInput {
            material: Some("dyes".into()),
            point: pref("gas.volume"),
            carrier: Carrier::Material,
            kgce_per_unit: 0.0,
            co2_kg_per_unit: 0.0,
        };
    }
    let (mut src, _) = feed(0..0);
    let req = ReportRequest {
        now_ms: now(),
        period_override: None,
    };
    let r = compute(&plan, &req, &mut src).unwrap();
    let keys: Vec<&str> = r.indicators.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        keys.contains(&"dyes") && !keys.contains(&"material"),
        "{keys:?}"
    );
    let dyes = r.indicator("dyes").unwrap();
    assert!(close(dyes.baseline.total.unwrap(), 59.0 * GAS, 1e-9));
    assert_eq!(dyes.total_unit, "t");
}

/// A day of 24 whole, valid hours of a counter point, `amount` spread evenly.
fn whole_day(m: &mut Mem, point: &str, date: NaiveDate, amount: f64) {
    let first = HourGrid::day_of_date(date) * 24;
    let hours = m.hours.entry(pref(point)).or_default();
    for h in first..first + 24 {
        hours.insert(
            h,
            HourAgg {
                sum: amount / 24.0,
                covered_ms: 3_600_000,
                ..HourAgg::default()
            },
        );
    }
}

/// Electricity only, a daily model, baseline `base`, reporting `rep`: the plant of checked example 14.
fn plan_14(base: (&str, &str), rep: (&str, &str)) -> Plan {
    let mut plan = plan(Granularity::Day);
    let a = plan.audit.as_mut().unwrap();
    a.baseline = (d(base.0), d(base.1));
    a.reporting = Some((d(rep.0), d(rep.1)));
    a.inputs.retain(|i| i.carrier == Carrier::Electricity);
    a.pollutants.clear();
    a.levels.clear();
    plan
}

/// A baseline of `days` days from 2025-01-01 following E = 100 + 2 P exactly in the least-squares sense:
/// production alternates 40, 60 and the residuals +r, +r, -r, -r are orthogonal to both columns, so OLS gives
/// back b0 = 100 and b1 = 2 whatever `r` (with `r` > 0 the fit has an error, and so p-values).
fn baseline_14(m: &mut Mem, days: i64, r: f64, low: f64, high: f64) {
    let day0 = d("2025-01-01");
    for i in 0..days {
        let p = if i % 2 == 0 { low } else { high };
        let e = if i % 4 < 2 { r } else { -r };
        let date = day0 + chrono::Duration::days(i);
        whole_day(m, "packer.output", date, p);
        whole_day(m, "power.energy", date, 100.0 + 2.0 * p + e);
    }
}

fn mem() -> Mem {
    Mem {
        grid: Some(HourGrid::new(FixedOffset::east_opt(8 * 3600).unwrap())),
        ..Mem::default()
    }
}

/// Checked example 14 (DOMAIN.md "Honest figures"): the model's expected is summed over the days with data
/// only: 8 x 200 = 1 600, savings 80 (5.0 %), 2 days left out; not 10 x 200 - 1 520 = 480. A measure on the
/// same meter follows the same days, and so does its money; one in service mid-period counts from its day.
#[test]
fn example_14_savings_only_where_data() {
    let mut plan = plan_14(("2025-01-01", "2025-01-29"), ("2025-03-01", "2025-03-11"));
    {
        let a = plan.audit.as_mut().unwrap();
        a.prices = vec![(Carrier::Electricity, 0.68)];
        a.measures = vec![
            AuditMeasure {
                name: "whole period".into(),
                in_service: d("2025-02-01"),
                investment_yuan: 10_000.0,
                point: Some((pref("power.energy"), Carrier::Electricity)),
            },
            AuditMeasure {
                name: "mid period".into(),
                in_service: d("2025-03-03"),
                investment_yuan: 10_000.0,
                point: Some((pref("power.energy"), Carrier::Electricity)),
            },
        ];
    }
    let mut m = mem();
    baseline_14(&mut m, 28, 1.0, 40.0, 60.0);
    for i in 0..8 {
        let date = d("2025-03-01") + chrono::Duration::days(i);
        whole_day(&mut m, "packer.output", date, 50.0);
        whole_day(&mut m, "power.energy", date, 190.0);
    }
    let req = ReportRequest {
        now_ms: now(),
        period_override: None,
    };
    let r = compute(&plan, &req, &mut m).unwrap();
    let el = r.indicator("electricity").unwrap();
    assert!(close(el.model.intercept, 100.0, 1e-9), "{:?}", el.model);
    assert!(close(el.model.slope.unwrap(), 2.0, 1e-9));
    let rv = el.reporting.as_ref().unwrap();
    assert!(close(rv.total.unwrap(), 1_520.0, 1e-12));
    assert!(close(rv.expected.unwrap(), 1_600.0, 1e-9), "{rv:?}");
    assert!(close(rv.savings.unwrap(), 80.0, 1e-9), "{rv:?}");
    assert!(close(rv.savings_pct.unwrap(), 5.0, 1e-9));
    assert_eq!(rv.days_without_data, 2);
    assert!(close(rv.savings_yuan.unwrap(), 80.0 * 0.68, 1e-9));
    assert_eq!(rv.savings_basis, Some(SavingsBasis::ValidModel));
    assert_eq!(rv.savings_note, None);
    // The CUSUM ends where the savings do, and stays flat over the two empty days.
    let cusum = &r
        .series
        .cusum
        .iter()
        .find(|(k, _)| k == "electricity")
        .unwrap()
        .1;
    assert_eq!(cusum.len(), 10);
    assert!(close(cusum[7].cusum, 80.0, 1e-9) && close(cusum[9].cusum, 80.0, 1e-9));
    // The chart's reporting buckets are the days that count.
    let rep_buckets = r
        .series
        .energy_buckets
        .iter()
        .filter(|b| b.period == PeriodKind::Reporting)
        .count();
    assert_eq!(rep_buckets, 8);

    let whole = &r.measures[0];
    assert_eq!(whole.counted_from.as_deref(), Some("2025-03-01"));
    assert!(close(whole.savings.unwrap(), 80.0, 1e-9), "{whole:?}");
    assert_eq!(whole.days_without_data, 2);
    // A year's money scaled from the 8 days counted, not the 10 of the period.
    let per_year = 80.0 * 0.68 * 365.0 / 8.0;
    assert!(close(
        whole.payback_years.unwrap(),
        10_000.0 / per_year,
        1e-9
    ));
    let mid = &r.measures[1];
    // In service on the 3rd: 6 of its 8 days have data (completeness 0.75, just enough).
    assert_eq!(mid.counted_from.as_deref(), Some("2025-03-03"));
    assert!(
        close(mid.savings.unwrap(), 60.0, 1e-9),
        "6 days x 10: {mid:?}"
    );
    assert_eq!(mid.days_without_data, 2);
    assert_eq!(mid.savings_basis, Some(SavingsBasis::ValidModel));

    // Above min_completeness (8 of 10 days = 0.8) savings are claimed; at 0.9 neither the indicator nor a
    // measure on its meter claims any, and both say why.
    plan.audit.as_mut().unwrap().min_completeness = 0.9;
    let r = compute(&plan, &req, &mut m).unwrap();
    let rv = r
        .indicator("electricity")
        .unwrap()
        .reporting
        .clone()
        .unwrap();
    assert_eq!(rv.savings, None);
    for mr in &r.measures {
        assert_eq!(
            (mr.savings, mr.savings_yuan, mr.payback_years),
            (None, None, None)
        );
        assert!(
            mr.reason
                .as_deref()
                .unwrap()
                .contains("below min_completeness 90.0 %"),
            "{mr:?}"
        );
    }
}

/// A day with production but no reading of the meter counts on neither side (the old sum gave it the model's
/// 100 + 2 x 50 of expected consumption against nothing measured); with a weekly model a week with data on
/// some days has the intercept pro rata and the production of those days.
#[test]
fn production_without_consumption_data_and_partial_weeks_count_only_days_with_data() {
    let req = ReportRequest {
        now_ms: now(),
        period_override: None,
    };
    let mut plan = plan_14(("2025-01-01", "2025-01-29"), ("2025-03-01", "2025-03-11"));
    plan.audit.as_mut().unwrap().min_completeness = 0.0;
    let mut m = mem();
    baseline_14(&mut m, 28, 1.0, 40.0, 60.0);
    for i in 0..10 {
        let date = d("2025-03-01") + chrono::Duration::days(i);
        whole_day(&mut m, "packer.output", date, 50.0);
        if i < 8 {
            whole_day(&mut m, "power.energy", date, 190.0);
        }
    }
    let r = compute(&plan, &req, &mut m).unwrap();
    let rv = r
        .indicator("electricity")
        .unwrap()
        .reporting
        .clone()
        .unwrap();
    assert!(close(rv.expected.unwrap(), 1_600.0, 1e-9), "{rv:?}");
    assert!(close(rv.savings.unwrap(), 80.0, 1e-9));
    assert_eq!(rv.days_without_data, 2);

    // Weekly: 8 weeks of baseline, a reporting fortnight with data on its first 10 days.
    let mut plan = plan_14(("2025-01-01", "2025-02-26"), ("2025-03-01", "2025-03-15"));
    {
        let a = plan.audit.as_mut().unwrap();
        a.granularity = Granularity::Week;
        a.min_completeness = 0.0;
    }
    let mut m = mem();
    baseline_14(&mut m, 56, 30.0, 20.0, 180.0);
    let mut p_days = Vec::new();
    for i in 0..10 {
        let date = d("2025-03-01") + chrono::Duration::days(i);
        let p = 40.0 + 3.0 * i as f64;
        p_days.push(p);
        whole_day(&mut m, "packer.output", date, p);
        whole_day(&mut m, "power.energy", date, 90.0 + 2.0 * p);
    }
    let r = compute(&plan, &req, &mut m).unwrap();
    let el = r.indicator("electricity").unwrap();
    assert_eq!(
        el.model.method,
        BaselineMethod::Regression,
        "{:?}",
        el.model
    );
    let (b0, b1) = (el.model.intercept, el.model.slope.unwrap());
    let rv = el.reporting.as_ref().unwrap();
    let week1: f64 = p_days[..7].iter().sum();
    let week2: f64 = p_days[7..].iter().sum();
    let expected = (b0 + b1 * week1) + (b0 * 3.0 / 7.0 + b1 * week2);
    assert!(
        close(rv.expected.unwrap(), expected, 1e-9),
        "{} vs {expected}",
        rv.expected.unwrap()
    );
    assert_eq!(rv.days_without_data, 4);
}

/// A reporting period that runs past the last reading earns nothing for its empty days: appending them
/// leaves expected and savings as they were and counts them as left out (with min_completeness 0: the
/// completeness rule would rightly withhold savings of a period 8 days in 27 covered).
#[test]
fn empty_days_appended_to_the_reporting_period_change_no_savings() {
    let mut m = mem();
    baseline_14(&mut m, 28, 1.0, 40.0, 60.0);
    for i in 0..8 {
        let date = d("2025-03-01") + chrono::Duration::days(i);
        whole_day(&mut m, "packer.output", date, 45.0 + i as f64);
        whole_day(&mut m, "power.energy", date, 185.0 + i as f64);
    }
    let req = ReportRequest {
        now_ms: now(),
        period_override: None,
    };
    let plan = |to: &str| {
        let mut p = plan_14(("2025-01-01", "2025-01-29"), ("2025-03-01", to));
        p.audit.as_mut().unwrap().min_completeness = 0.0;
        p
    };
    let short = compute(&plan("2025-03-09"), &req, &mut m).unwrap();
    let long = compute(&plan("2025-03-28"), &req, &mut m).unwrap();
    let rv = |r: &plantmeter_common::audit::report::Report| {
        r.indicator("electricity")
            .unwrap()
            .reporting
            .clone()
            .unwrap()
    };
    let (s, l) = (rv(&short), rv(&long));
    assert_eq!(s.days_without_data, 0);
    assert_eq!(l.days_without_data, 19);
    assert!(close(s.expected.unwrap(), l.expected.unwrap(), 1e-12));
    assert!(close(s.savings.unwrap(), l.savings.unwrap(), 1e-12));
    assert!(close(s.savings_pct.unwrap(), l.savings_pct.unwrap(), 1e-12));
    assert!(close(
        s.savings_uncertainty_pct.unwrap(),
        l.savings_uncertainty_pct.unwrap(),
        1e-12
    ));
}

/// Savings from a weak model (valid regression outside ASHRAE Guideline 14) and from the ratio method are
/// marked as such with the reason; the ratio method has no R2 and never "meets ASHRAE 14".
#[test]
fn weak_and_ratio_savings_are_marked_with_their_reason() {
    let req = ReportRequest {
        now_ms: now(),
        period_override: None,
    };
    let rep = |m: &mut Mem| {
        for i in 0..8 {
            let date = d("2025-03-01") + chrono::Duration::days(i);
            whole_day(m, "packer.output", date, 100.0);
            whole_day(m, "power.energy", date, 280.0);
        }
    };
    let plan = plan_14(("2025-01-01", "2025-01-29"), ("2025-03-01", "2025-03-09"));
    // Production 20 / 180 and residuals of ±50: a valid regression (R2 ~0.7) with CV(RMSE) ~17 % > 15 %.
    let mut m = mem();
    baseline_14(&mut m, 28, 50.0, 20.0, 180.0);
    rep(&mut m);
    let r = compute(&plan, &req, &mut m).unwrap();
    let el = r.indicator("electricity").unwrap();
    assert_eq!(el.model.method, BaselineMethod::Regression);
    assert!(el.model.valid);
    let cv = el.model.cv_rmse_pct.unwrap();
    assert!(cv > 15.0, "{cv}");
    assert!(!el.model.meets_ashrae14);
    let rv = el.reporting.as_ref().unwrap();
    assert!(close(rv.savings.unwrap(), 8.0 * (300.0 - 280.0), 1e-9));
    assert_eq!(rv.savings_basis, Some(SavingsBasis::WeakModel));
    let note = rv.savings_note.as_deref().unwrap();
    assert!(
        note.contains("does not meet ASHRAE Guideline 14")
            && note.contains(&format!("CV(RMSE) {cv:.1} % against 15 %")),
        "{note}"
    );
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(
        json["indicators"]["electricity"]["reporting"]["savings_basis"],
        "weak_model"
    );

    // Production that does not vary: the ratio method, marked, no R2, not "meets ASHRAE 14".
    let mut m = mem();
    baseline_14(&mut m, 28, 1.0, 50.0, 50.0);
    rep(&mut m);
    let r = compute(&plan, &req, &mut m).unwrap();
    let el = r.indicator("electricity").unwrap();
    assert_eq!(el.model.method, BaselineMethod::Ratio);
    assert_eq!(el.model.r2, None);
    assert!(!el.model.meets_ashrae14 && !el.model.valid);
    let rv = el.reporting.as_ref().unwrap();
    assert_eq!(rv.savings_basis, Some(SavingsBasis::Ratio));
    assert!(
        close(rv.expected.unwrap(), 8.0 * 100.0 * 4.0, 1e-9),
        "{rv:?}"
    );
    let note = rv.savings_note.as_deref().unwrap();
    assert!(
        note.starts_with("ratio method, no valid regression (production does not vary"),
        "{note}"
    );
    assert_eq!(rv.savings_uncertainty_pct, None);
}

mod savings_props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Whatever days of the reporting period have data, `expected` is the daily model summed over exactly
        /// those days (so never more), and appending empty days to the period changes no figure of savings.
        #[test]
        fn expected_is_the_model_over_days_with_data(
            days in prop::collection::vec(prop::option::weighted(0.7, (10.0f64..90.0, 0.8f64..1.1)), 1..20),
            extra in 1i64..15,
        ) {
            let mut m = mem();
            baseline_14(&mut m, 28, 1.0, 40.0, 60.0);
            let start = d("2025-03-01");
            let mut model_sum = 0.0;
            for (i, day) in days.iter().enumerate() {
                let date = start + chrono::Duration::days(i as i64);
                if let Some((p, k)) = day {
                    whole_day(&mut m, "packer.output", date, *p);
                    whole_day(&mut m, "power.energy", date, (100.0 + 2.0 * p) * k);
                    model_sum += 100.0 + 2.0 * p;
                }
            }
            let with_data = days.iter().filter(|x| x.is_some()).count() as u64;
            let end = start + chrono::Duration::days(days.len() as i64);
            let req = ReportRequest { now_ms: now(), period_override: None };
            let report = |to: NaiveDate, m: &mut Mem| {
                let mut plan = plan_14(("2025-01-01", "2025-01-29"), ("2025-03-01", "2025-03-02"));
                let a = plan.audit.as_mut().unwrap();
                a.reporting = Some((start, to));
                // The sum alone: appended empty days lower the completeness, which is another rule.
                a.min_completeness = 0.0;
                compute(&plan, &req, m).unwrap().indicator("electricity").unwrap().reporting.clone().unwrap()
            };
            let a = report(end, &mut m);
            let b = report(end + chrono::Duration::days(extra), &mut m);
            prop_assert_eq!(a.days_without_data, days.len() as u64 - with_data);
            prop_assert_eq!(b.days_without_data, a.days_without_data + extra as u64);
            if with_data == 0 {
                prop_assert_eq!(a.expected, None);
                prop_assert_eq!(b.expected, None);
            } else {
                let e = a.expected.unwrap();
                prop_assert!(e <= model_sum * (1.0 + 1e-9) + 1e-9, "{} > {}", e, model_sum);
                prop_assert!((e - model_sum).abs() <= 1e-9 * model_sum, "{} vs {}", e, model_sum);
                prop_assert_eq!(a.expected, b.expected);
                prop_assert_eq!(a.savings, b.savings);
                prop_assert_eq!(a.savings_pct, b.savings_pct);
            }
        }
    }
}
