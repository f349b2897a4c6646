//! Properties of the interval engine: apportioning conserves totals; rollovers and replacements never
//! create negative or lost consumption.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use chrono::FixedOffset;
use plantmeter_common::audit::hourly::{HourAgg, HourGrid, HOUR_MS};
use plantmeter_common::audit::intervals::{counter_delta, CounterEvent, Tracker};
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
