//! Properties of the interval engine: apportioning conserves totals; rollovers and replacements never
//! create negative or lost consumption.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use chrono::FixedOffset;
use plantmeter_common::audit::hourly::{HourAgg, HourGrid, HOUR_MS};
use plantmeter_common::audit::intervals::{
    counter_delta, CounterEvent, RecordedReplacement, Tracker,
};
use plantmeter_common::types::PointKind;
use proptest::prelude::*;

/// Feed readings, then decide a drop still held at the end (no further reading will come).
fn feed(t: &mut Tracker, grid: &HourGrid, r: &[(i64, Option<f64>)]) -> BTreeMap<i64, HourAgg> {
    let mut m: BTreeMap<i64, HourAgg> = BTreeMap::new();
    for &(ts, v) in r {
        t.push(ts, v, grid, &mut |h, a| m.entry(h).or_default().merge(&a));
    }
    t.commit_held(grid, &mut |h, a| m.entry(h).or_default().merge(&a));
    m
}

/// What happens just before a reading of the generated counter.
#[derive(Debug, Clone, Copy)]
enum Before {
    Nothing,
    /// A single low reading with good quality (fraction of the possible depth).
    Glitch(f64),
    /// The meter is replaced by a new one starting at zero, right after the previous reading.
    Replacement,
    /// A reading that is not good.
    Bad,
}

fn before() -> impl Strategy<Value = Before> {
    prop_oneof![
        6 => Just(Before::Nothing),
        2 => (0.0f64..0.99).prop_map(Before::Glitch),
        1 => Just(Before::Replacement),
        1 => Just(Before::Bad),
    ]
}

proptest! {
    /// Whatever the gaps, missing readings and timezone, the hourly sums add up to last - first
    /// of a counter that never wraps, every hourly amount is >= 0, and no hour is over-covered.
    #[test]
    fn apportioning_conserves_the_total(
        steps in prop::collection::vec((1i64..20_000_000, 0.0f64..500.0, any::<bool>()), 1..200),
        start in 0i64..10_000_000_000,
        first in 0.0f64..1e6,
        tz_min in -720i32..840,
    ) {
        let grid = HourGrid::new(FixedOffset::east_opt(tz_min * 60).unwrap());
        let mut t = Tracker::new(PointKind::Counter, None, 60_000);
        let mut r = vec![(start, Some(first))];
        let (mut ts, mut v, mut last_good) = (start, first, first);
        for (dt, inc, good) in steps {
            ts += dt;
            v += inc;
            if good { last_good = v; }
            r.push((ts, good.then_some(v)));
        }
        let m = feed(&mut t, &grid, &r);
        let total: f64 = m.values().map(|a| a.sum).sum();
        prop_assert!((total - (last_good - first)).abs() <= 1e-6 * last_good.max(1.0));
        for a in m.values() {
            prop_assert!(a.sum >= -1e-9);
            prop_assert!(a.covered_ms as i64 + a.apportioned_ms as i64 <= HOUR_MS);
        }
    }

    /// A counter wrapping at its modulus loses nothing: the counted total is the true consumption.
    #[test]
    fn rollover_loses_nothing(
        incs in prop::collection::vec(0.0f64..5_000.0, 1..300),
        start in 0.0f64..1_000_000.0,
    ) {
        let modulus = 1_000_000.0;
        let grid = HourGrid::utc();
        let mut t = Tracker::new(PointKind::Counter, Some(modulus), 10_000);
        let mut r = vec![(0i64, Some(start))];
        let mut true_total = 0.0;
        let mut v: f64 = start;
        for (i, inc) in incs.iter().enumerate() {
            true_total += inc;
            v = (v + inc) % modulus;
            r.push(((i as i64 + 1) * 5_000, Some(v)));
        }
        let m = feed(&mut t, &grid, &r);
        let total: f64 = m.values().map(|a| a.sum).sum();
        prop_assert!((total - true_total).abs() <= 1e-6 * true_total.max(1.0));
        prop_assert!(m.values().all(|a| a.sum >= -1e-9 && a.replacements == 0));
    }

    /// Any pair of readings gives a delta >= 0; a drop is a rollover or a replacement, and a replacement
    /// counts the new meter's reading (what it consumed since zero), so nothing it metered is lost.
    #[test]
    fn deltas_are_never_negative(prev in -1e9f64..1e12, cur in -1e9f64..1e12, m in prop::option::of(1.0f64..1e13)) {
        let (d, ev) = counter_delta(prev, cur, m);
        prop_assert!(d >= 0.0);
        match ev {
            CounterEvent::Normal => prop_assert!(cur >= prev - 1e-6 * prev.abs() - 1e-12),
            CounterEvent::Rollover => prop_assert!(m.is_some() && cur < prev),
            CounterEvent::Replacement => prop_assert_eq!(d, cur.max(0.0)),
            CounterEvent::StepBack => prop_assert!(d == 0.0 && cur < prev && cur >= prev / 2.0),
        }
    }

    /// Rollovers, replacements and single glitches together, with bad readings between, across restarts:
    /// the counted total is exactly the true consumption (nothing negative, nothing lost, nothing twice), every
    /// glitch and replacement is recognised as such, and apportioning conserves the total.
    #[test]
    fn glitches_replacements_and_rollovers_count_everything_once(
        steps in prop::collection::vec((0.0f64..500.0, before()), 1..200),
        start in 10_000.0f64..990_000.0,
        wraps in any::<bool>(),
        restart_at in 0usize..400,
    ) {
        let modulus = wraps.then_some(1_000_000.0);
        let grid = HourGrid::utc();
        let mut r = vec![(0i64, Some(start))];
        let (mut shown, mut true_total) = (start, 0.0);
        let (mut glitches, mut replacements) = (0u16, 0u16);
        let mut ts = 0i64;
        for (inc, b) in steps {
            ts += 600_000;
            match b {
                // A glitch just before the counter wraps looks like the rollover itself (still counted right,
                // as a rollover): not generated here.
                Before::Glitch(f) if shown - inc > 0.0 && modulus.is_none_or(|m| shown + inc < m) => {
                    r.push((ts - 300_000, Some(f * (shown - inc))));
                    glitches += 1;
                }
                Before::Replacement if shown < 500_000.0 && shown > 1_000.0 => {
                    shown = 0.0;
                    replacements += 1;
                }
                Before::Bad => r.push((ts - 300_000, None)),
                _ => {}
            }
            shown += inc;
            if let Some(m) = modulus {
                shown %= m;
            }
            true_total += inc;
            r.push((ts, Some(shown)));
        }
        // A restart anywhere: the tracker's state is all that carries over.
        let cut = restart_at.min(r.len());
        let mut t = Tracker::new(PointKind::Counter, modulus, 1_200_000);
        let mut m: BTreeMap<i64, HourAgg> = BTreeMap::new();
        for &(ts, v) in &r[..cut] {
            t.push(ts, v, &grid, &mut |h, a| m.entry(h).or_default().merge(&a));
        }
        let mut t2 = Tracker::new(PointKind::Counter, modulus, 1_200_000);
        t2.last = t.last;
        for (h, a) in feed(&mut t2, &grid, &r[cut..]) {
            m.entry(h).or_default().merge(&a);
        }
        let total: f64 = m.values().map(|a| a.sum).sum();
        prop_assert!((total - true_total).abs() <= 1e-6 * true_total.max(1.0), "{total} vs {true_total}");
        prop_assert!(m.values().all(|a| a.sum >= -1e-9));
        prop_assert_eq!(m.values().map(|a| a.glitches).sum::<u16>(), glitches);
        prop_assert_eq!(m.values().map(|a| a.replacements).sum::<u16>(), replacements);
    }
}

/// A counter series of a meter replaced at reading `k` (or `frac` of the way to the next reading, the old
/// meter counting `frac` of that interval's consumption first), then counted in the given order: with the
/// replacement recorded first, or after every reading was counted. Returns the hourly sums.
fn replaced_series(
    grid: &HourGrid,
    readings: &[(i64, f64)],
    k: usize,
    frac: f64,
    new_start: f64,
    recorded_first: bool,
) -> (BTreeMap<i64, HourAgg>, f64) {
    let (t_k, v_k) = readings[k];
    let (at, old_final) = match readings.get(k + 1) {
        Some(&(t_n, v_n)) if frac > 0.0 => (
            t_k + ((t_n - t_k) as f64 * frac) as i64,
            v_k + (v_n - v_k) * frac,
        ),
        _ => (t_k, v_k),
    };
    // Readings after the instant are the new meter's: its start plus what was consumed since.
    let shown: Vec<(i64, Option<f64>)> = readings
        .iter()
        .map(|&(t, v)| (t, Some(if t > at { new_start + v - old_final } else { v })))
        .collect();
    let r = RecordedReplacement {
        at_ms: at,
        old_final,
        new_start,
    };
    let mut t = Tracker::new(PointKind::Counter, None, 30 * 86_400_000);
    let mut m: BTreeMap<i64, HourAgg> = BTreeMap::new();
    if recorded_first {
        t.record(r, i64::MIN, (&[], &[]), grid, &mut |_, _| {})
            .unwrap();
    }
    for &(ts, v) in &shown {
        t.push(ts, v, grid, &mut |h, a| m.entry(h).or_default().merge(&a));
    }
    if !recorded_first {
        let inferred = t.inferred.clone();
        t.record(r, shown[0].0, (&inferred, &[]), grid, &mut |h, a| {
            m.entry(h).or_default().merge(&a)
        })
        .unwrap();
    }
    let total = m.values().map(|a| a.sum).sum();
    (m, total)
}

proptest! {
    // Each case counts every reading of its series as the replacement instant, twice: fewer cases suffice.
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// DOMAIN.md "Counter drops", example 15: a replacement recorded at every reading instant of a random
    /// series (and inside every interval) gives the true total, recorded before or after the readings were
    /// counted, with the same hourly figures either way.
    #[test]
    fn a_replacement_at_any_reading_gives_the_true_total_in_either_order(
        steps in prop::collection::vec((60_000i64..3 * 86_400_000, 0.0f64..100.0), 1..30),
        start in 1_000_000_000_000i64..1_900_000_000_000,
        first in 100_000.0f64..1e7,
        new_start in 0.0f64..1000.0,
        frac in prop_oneof![Just(0.0f64), 0.01f64..0.99],
        tz_min in -720i32..840,
    ) {
        let grid = HourGrid::new(FixedOffset::east_opt(tz_min * 60).unwrap());
        let mut readings = vec![(start, first)];
        for (dt, inc) in &steps {
            let &(t, v) = readings.last().unwrap();
            readings.push((t + dt, v + inc));
        }
        let truth: f64 = steps.iter().map(|s| s.1).sum();
        for k in 0..readings.len() {
            let (a, ta) = replaced_series(&grid, &readings, k, frac, new_start, true);
            let (b, tb) = replaced_series(&grid, &readings, k, frac, new_start, false);
            prop_assert!((ta - truth).abs() < 1e-6, "k {}: recorded first {} vs {}", k, ta, truth);
            prop_assert!((tb - truth).abs() < 1e-6, "k {}: recorded after {} vs {}", k, tb, truth);
            for (h, x) in &a {
                let y = b.get(h).copied().unwrap_or_default();
                prop_assert!((x.sum - y.sum).abs() < 1e-6, "k {}, hour {}: {:?} vs {:?}", k, h, x, y);
                prop_assert_eq!((x.covered_ms, x.replacements), (y.covered_ms, y.replacements));
            }
        }
    }
}

// ---- Properties of the report: sources add up, no data is null (never 0) ----

mod report {
    use std::collections::HashMap;
    use std::path::Path;

    use plantmeter_common::audit::compute::{compute, HourlySource, ReportRequest};
    use plantmeter_common::audit::hourly::{HourAgg, HourGrid};
    use plantmeter_common::audit::report::Report;
    use plantmeter_common::plan::{Plan, PointRef};
    use proptest::prelude::*;

    /// Two stacks of SO2 and NOx (own O2), an outfall of COD, two products, an HDD driver, two electricity
    /// incomers and a gas meter; January baseline, first half of February reporting.
    const CONFIG: &str = r#"
[gateway]
id = "gw-01"
site = "plant-a"
data_dir = "/tmp/plantmeter-props"
[mqtt]
url = "mqtt://127.0.0.1:1883"
[[bus]]
name = "b"
transport = "tcp"
address = "127.0.0.1:5020"
[[meter]]
name = "m"
bus = "b"
unit_id = 1
poll_interval_s = 60
  [[meter.point]]
  name = "e1"
  register = "holding"
  address = 0
  type = "f64"
  unit = "kWh"
  kind = "counter"
  [[meter.point]]
  name = "e2"
  register = "holding"
  address = 4
  type = "f64"
  unit = "kWh"
  kind = "counter"
  [[meter.point]]
  name = "gas"
  register = "holding"
  address = 8
  type = "f64"
  unit = "m3"
  kind = "counter"
  [[meter.point]]
  name = "knit"
  register = "holding"
  address = 12
  type = "f64"
  unit = "t"
  kind = "counter"
  [[meter.point]]
  name = "woven"
  register = "holding"
  address = 16
  type = "f64"
  unit = "t"
  kind = "counter"
  [[meter.point]]
  name = "temp"
  register = "holding"
  address = 20
  type = "f64"
  unit = "C"
  kind = "gauge"
  [[meter.point]]
  name = "so2_1"
  register = "holding"
  address = 24
  type = "f64"
  unit = "mg/m3"
  kind = "gauge"
  [[meter.point]]
  name = "nox_1"
  register = "holding"
  address = 28
  type = "f64"
  unit = "mg/m3"
  kind = "gauge"
  [[meter.point]]
  name = "flow_1"
  register = "holding"
  address = 32
  type = "f64"
  unit = "m3/h"
  kind = "gauge"
  [[meter.point]]
  name = "o2_1"
  register = "holding"
  address = 36
  type = "f64"
  unit = "%"
  kind = "gauge"
  [[meter.point]]
  name = "so2_2"
  register = "holding"
  address = 40
  type = "f64"
  unit = "mg/m3"
  kind = "gauge"
  [[meter.point]]
  name = "nox_2"
  register = "holding"
  address = 44
  type = "f64"
  unit = "mg/m3"
  kind = "gauge"
  [[meter.point]]
  name = "flow_2"
  register = "holding"
  address = 48
  type = "f64"
  unit = "m3/h"
  kind = "gauge"
  [[meter.point]]
  name = "o2_2"
  register = "holding"
  address = 52
  type = "f64"
  unit = "%"
  kind = "gauge"
  [[meter.point]]
  name = "cod"
  register = "holding"
  address = 56
  type = "f64"
  unit = "mg/L"
  kind = "gauge"
  [[meter.point]]
  name = "water_out"
  register = "holding"
  address = 60
  type = "f64"
  unit = "m3"
  kind = "counter"
[audit]
timezone = "+08:00"
baseline = ["2025-01-01", "2025-02-01"]
reporting = ["2025-02-01", "2025-02-15"]
granularity = "day"
grid_co2_t_per_mwh = 0.5703
production_unit = "t"
[[audit.product]]
name = "knit"
point = "m.knit"
factor = 1.0
[[audit.product]]
name = "woven"
point = "m.woven"
factor = 0.8
[[audit.driver]]
name = "hdd"
point = "m.temp"
transform = "hdd"
[[audit.input]]
point = "m.e1"
carrier = "electricity"
[[audit.input]]
point = "m.e2"
carrier = "electricity"
[[audit.input]]
point = "m.gas"
carrier = "natural_gas"
[[audit.pollutant]]
name = "SO2"
source = "boiler-1"
concentration = "m.so2_1"
flow = "m.flow_1"
o2 = "m.o2_1"
o2_reference = 3.5
[[audit.pollutant]]
name = "SO2"
source = "boiler-2"
concentration = "m.so2_2"
flow = "m.flow_2"
o2 = "m.o2_2"
o2_reference = 3.5
[[audit.pollutant]]
name = "NOx"
source = "boiler-1"
concentration = "m.nox_1"
flow = "m.flow_1"
[[audit.pollutant]]
name = "NOx"
source = "boiler-2"
concentration = "m.nox_2"
flow = "m.flow_2"
[[audit.pollutant]]
name = "COD"
concentration = "m.cod"
flow = "m.water_out"
"#;

    const POINTS: [&str; 16] = [
        "e1",
        "e2",
        "gas",
        "knit",
        "woven",
        "temp",
        "so2_1",
        "nox_1",
        "flow_1",
        "o2_1",
        "so2_2",
        "nox_2",
        "flow_2",
        "o2_2",
        "cod",
        "water_out",
    ];
    const GAUGES: [&str; 9] = [
        "temp", "so2_1", "nox_1", "flow_1", "o2_1", "so2_2", "nox_2", "flow_2", "o2_2",
    ];
    /// Hours of January and the first half of February.
    const HOURS: usize = (31 + 14) * 24;

    fn plan() -> Plan {
        plantmeter_common::config::parse(CONFIG, Path::new("props.toml")).unwrap()
    }

    /// Hourly aggregates per point, dense from 2025-01-01 00:00 local.
    struct Mem {
        first: i64,
        hours: HashMap<String, Vec<HourAgg>>,
    }

    impl HourlySource for Mem {
        fn hours(&mut self, p: &PointRef, first: i64, out: &mut [HourAgg]) -> Result<(), String> {
            out.fill(HourAgg::default());
            if let Some(v) = self.hours.get(&p.point) {
                for (i, o) in out.iter_mut().enumerate() {
                    let h = first + i as i64 - self.first;
                    if let Some(a) = usize::try_from(h).ok().and_then(|h| v.get(h)) {
                        *o = *a;
                    }
                }
            }
            Ok(())
        }
    }

    /// One point's hours: `present[h]` says whether hour h has data; values from `seed`.
    fn series(point: &str, present: &[bool], seed: u64) -> Vec<HourAgg> {
        let gauge = GAUGES.contains(&point);
        present
            .iter()
            .enumerate()
            .map(|(h, &p)| {
                if !p {
                    return HourAgg::default();
                }
                let x = ((seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add((h as u64).wrapping_mul(1442695040888963407)))
                    >> 33) as f64
                    / (1u64 << 31) as f64;
                let v = match point {
                    "temp" => -5.0 + 25.0 * x,
                    "o2_1" | "o2_2" => 2.0 + 6.0 * x,
                    "knit" | "woven" => 10.0 * x,
                    _ => 1.0 + 100.0 * x,
                };
                HourAgg {
                    sum: v,
                    samples: u32::from(gauge),
                    covered_ms: 3_600_000,
                    ..HourAgg::default()
                }
            })
            .collect()
    }

    /// Each point's series, with its own presence and seed.
    fn every_series(present: &[Vec<bool>], seed: u64) -> HashMap<String, Vec<HourAgg>> {
        POINTS
            .iter()
            .zip(present)
            .enumerate()
            .map(|(i, (p, pr))| (p.to_string(), series(p, pr, seed ^ i as u64)))
            .collect()
    }

    fn run(hours: HashMap<String, Vec<HourAgg>>) -> Report {
        let plan = plan();
        let grid = HourGrid::new(plan.audit.as_ref().unwrap().timezone);
        let d0 = HourGrid::day_of_date(chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap());
        let mut src = Mem {
            first: d0 * 24,
            hours,
        };
        let now = grid.hour_start(d0 * 24 + HOURS as i64 + 24);
        compute(
            &plan,
            &ReportRequest {
                now_ms: now,
                period_override: None,
            },
            &mut src,
        )
        .unwrap()
    }

    /// Which hours a point has data in: all, none, or runs of random gaps.
    fn presence() -> impl Strategy<Value = Vec<bool>> {
        prop_oneof![
            3 => Just(vec![true; HOURS]),
            1 => Just(vec![false; HOURS]),
            2 => prop::collection::vec((0..HOURS, 1..200usize), 1..6).prop_map(|gaps| {
                let mut v = vec![true; HOURS];
                for (a, len) in gaps {
                    v[a..(a + len).min(HOURS)].fill(false);
                }
                v
            }),
        ]
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// DOMAIN.md "Several sources add up": whenever a pollutant has a total, its sources have theirs and
        /// they sum to it, in each period; a source whose points never had data in a period is null, not 0.
        #[test]
        fn the_sources_add_up_to_the_pollutant(
            present in prop::collection::vec(presence(), POINTS.len()),
            seed in any::<u64>(),
        ) {
            let r = run(every_series(&present, seed));
            for key in ["SO2", "NOx"] {
                let ind = r.indicator(key).unwrap();
                let sources = ind.sources.as_ref().unwrap();
                prop_assert_eq!(sources.len(), 2);
                let periods = [
                    (
                        ind.baseline.total,
                        sources.values().map(|s| s.baseline.total).collect::<Vec<_>>(),
                        0..31 * 24,
                    ),
                    (
                        ind.reporting.as_ref().unwrap().total,
                        sources
                            .values()
                            .map(|s| s.reporting.as_ref().unwrap().total)
                            .collect(),
                        31 * 24..HOURS,
                    ),
                ];
                for (total, per_source, hours) in periods {
                    if let Some(t) = total {
                        let parts: Option<Vec<f64>> = per_source.iter().copied().collect();
                        let parts = parts.expect("an indicator with a total has every source's");
                        let sum: f64 = parts.iter().sum();
                        prop_assert!(close(sum, t), "{key}: sources {parts:?} sum {sum} != {t}");
                    }
                    for (n, (name, s)) in sources.iter().enumerate() {
                        let (c, f) = match (key, n) {
                            ("SO2", 0) => ("so2_1", "flow_1"),
                            ("SO2", _) => ("so2_2", "flow_2"),
                            (_, 0) => ("nox_1", "flow_1"),
                            _ => ("nox_2", "flow_2"),
                        };
                        let pc = &present[POINTS.iter().position(|p| *p == c).unwrap()];
                        let pf = &present[POINTS.iter().position(|p| *p == f).unwrap()];
                        let any = hours.clone().any(|h| pc[h] && pf[h]);
                        let figure = per_source[n];
                        prop_assert_eq!(
                            figure.is_some(),
                            any || total.is_some(),
                            "{} @ {}: {:?} {:?}", key, name, figure, s
                        );
                    }
                }
            }
        }

        /// DOMAIN.md "Honest figures": an indicator whose points had no data in a period has no total, no
        /// per-unit figure and no savings there (null, never 0); with data in every hour it has a total.
        #[test]
        fn no_data_is_null_never_zero(
            present in prop::collection::vec(presence(), POINTS.len()),
            seed in any::<u64>(),
        ) {
            let r = run(every_series(&present, seed));
            let has = |p: &str, hours: std::ops::Range<usize>| {
                let i = POINTS.iter().position(|x| *x == p).unwrap();
                hours.clone().any(|h| present[i][h])
            };
            let full = |p: &str, hours: std::ops::Range<usize>| {
                let i = POINTS.iter().position(|x| *x == p).unwrap();
                hours.clone().all(|h| present[i][h])
            };
            let points_of = |key: &str| -> Vec<&str> {
                match key {
                    "electricity" => vec!["e1", "e2"],
                    "natural_gas" => vec!["gas"],
                    "energy" | "co2" => vec!["e1", "e2", "gas"],
                    "SO2" => vec!["so2_1", "flow_1", "so2_2", "flow_2"],
                    "NOx" => vec!["nox_1", "flow_1", "nox_2", "flow_2"],
                    "COD" => vec!["cod", "water_out"],
                    other => panic!("unexpected indicator {other}"),
                }
            };
            for (key, ind) in &r.indicators {
                let pts = points_of(key);
                for (name, range, total, per_unit, savings) in [
                    ("baseline", 0..31 * 24, ind.baseline.total, ind.baseline.per_unit, None),
                    (
                        "reporting",
                        31 * 24..HOURS,
                        ind.reporting.as_ref().unwrap().total,
                        ind.reporting.as_ref().unwrap().per_unit,
                        ind.reporting.as_ref().unwrap().savings,
                    ),
                ] {
                    if pts.iter().any(|p| !has(p, range.clone())) {
                        prop_assert!(
                            total.is_none() && per_unit.is_none() && savings.is_none(),
                            "{key} {name}: a point without data, yet total {:?}, per unit {:?}, savings {:?}",
                            total, per_unit, savings
                        );
                    }
                    if pts.iter().all(|p| full(p, range.clone())) {
                        prop_assert!(total.is_some(), "{key} {name}: every hour has data, but no total");
                    }
                }
            }
        }
    }

    /// A plant whose gas follows the products and the heating degree-days exactly, with the temperature
    /// transmitter silent from hour `silent_from` on (or never).
    fn driver_plant(silent_from: Option<usize>) -> HashMap<String, Vec<HourAgg>> {
        let mut hours: HashMap<String, Vec<HourAgg>> = HashMap::new();
        for h in 0..HOURS {
            let d = h / 24;
            let working = d % 7 != 4 && (6..22).contains(&(h % 24));
            let mix = 0.6 + 0.3 * ((d * 7) % 5) as f64 / 4.0;
            let (knit, woven) = if working {
                (10.0 * mix, 10.0 * (1.0 - mix) / 0.8)
            } else {
                (0.0, 0.0)
            };
            // Winter days, then a steady 10 C in the reporting period.
            let temp = if h < 31 * 24 {
                2.0 + ((d * 13) % 9) as f64 + (h % 24) as f64 / 6.0
            } else {
                10.0
            };
            let wiggle = ((h * 7919) % 13) as f64 / 13.0 - 0.5;
            let gas =
                20.0 + 30.0 * knit + 55.0 * woven + 6.0 * (18.0 - temp).max(0.0) + 5.0 * wiggle;
            let counter = |v: f64| HourAgg {
                sum: v,
                covered_ms: 3_600_000,
                ..HourAgg::default()
            };
            let gauge = |v: f64| HourAgg {
                sum: v,
                samples: 1,
                covered_ms: 3_600_000,
                ..HourAgg::default()
            };
            let mut put = |p: &str, a: HourAgg| hours.entry(p.to_string()).or_default().push(a);
            put("knit", counter(knit));
            put("woven", counter(woven));
            put("gas", counter(gas));
            put("e1", counter(100.0 + 40.0 * (knit + 0.8 * woven)));
            put("e2", counter(50.0));
            let silent = silent_from.is_some_and(|s| h >= s);
            put(
                "temp",
                if silent {
                    HourAgg::default()
                } else {
                    gauge(temp)
                },
            );
        }
        hours
    }

    /// DOMAIN.md "Honest figures" for a driver: a transmitter that stops reporting is not 0 C (18 degree-days a
    /// day of invented heating in the expected gas); its last reading carries on, flagged, and when it covers
    /// less than min_completeness of the reporting period the savings of a model using it are not claimed.
    #[test]
    fn a_silent_driver_is_carried_not_zero_and_counts_against_the_savings() {
        let gas = |r: &Report| r.indicator("natural_gas").unwrap().clone();
        let full = gas(&run(driver_plant(None)));
        assert!(
            full.model.variables.contains(&"hdd".to_string()),
            "{:?}",
            full.model
        );
        let want = full.reporting.as_ref().unwrap().expected.unwrap();
        // Silent for the last two of the fourteen reporting days: the steady 10 C carries on.
        let late = gas(&run(driver_plant(Some(HOURS - 2 * 24))));
        let rep = late.reporting.as_ref().unwrap();
        assert_eq!(late.model.variables, full.model.variables);
        let got = rep.expected.unwrap();
        assert!(
            (got - want).abs() <= 1e-9 * want,
            "expected {got} vs {want} with every reading"
        );
        assert!(rep.savings.is_some(), "{:?}", rep.savings_reason);
        // Silent for the last six days: 57 % of the reporting hours, below min_completeness 75 %.
        let silent = gas(&run(driver_plant(Some(HOURS - 6 * 24))));
        let rep = silent.reporting.as_ref().unwrap();
        assert_eq!(rep.savings, None);
        let why = rep.savings_reason.as_deref().unwrap_or_default();
        assert!(
            why.contains("driver hdd") && why.contains("57.1 %"),
            "{why}"
        );
        // Electricity does not follow the weather: its savings stand.
        let r = run(driver_plant(Some(HOURS - 6 * 24)));
        let elec = r.indicator("electricity").unwrap();
        assert!(
            !elec.model.variables.contains(&"hdd".to_string()),
            "{:?}",
            elec.model.variables
        );
        assert!(elec.reporting.as_ref().unwrap().savings.is_some());
    }

    /// A temperature transmitter configured as a driver but never read in the baseline: the driver is left
    /// out of the candidates (named in the notes) and the products' model still fits, instead of every
    /// baseline bucket counting as incomplete and the report falling back to the ratio method.
    #[test]
    fn a_driver_never_read_is_left_out_not_a_ratio_fallback() {
        let r = run(driver_plant(Some(0)));
        let elec = r.indicator("electricity").unwrap();
        assert_eq!(
            elec.model.method,
            plantmeter_common::audit::report::BaselineMethod::Regression,
            "{:?}",
            elec.model
        );
        assert!(!elec.model.variables.contains(&"hdd".to_string()));
        assert!(elec
            .model
            .candidates
            .iter()
            .all(|c| !c.variables.contains(&"hdd".to_string())));
        assert!(
            r.method
                .notes
                .iter()
                .any(|n| n.contains("driver hdd") && n.contains("baseline")),
            "{:?}",
            r.method.notes
        );
    }
}
