//! The interval engine: turns successive readings of one point into hourly contributions.
//!
//! Conventions (also stated in every report's method notes):
//! - Counters: consumption of an interval is the difference of two successive good readings. A drop is a
//!   **rollover** when the wrapped delta `modulus - previous + current` is at most 10 % of the modulus;
//!   otherwise it is a **meter replacement**: the new meter is taken to have started at zero, so the interval's
//!   consumption is the new reading itself (never negative, never lost). A drop of at most one millionth of the
//!   reading is float jitter: nothing is counted and the higher reading is kept.
//! - Every interval's consumption is spread linearly over its time into local hours. An interval longer than
//!   the gap threshold, or following a non-good reading, is a **gap**: its consumption is still counted
//!   (apportioned and flagged) but its time is not covered, so it lowers data completeness.
//! - Gauges are integrated with the trapezoid rule between consecutive good readings; a gap contributes nothing.

use crate::audit::hourly::{HourAgg, HourGrid, HOUR_MS};
use crate::types::PointKind;

/// A drop is a rollover when the wrapped delta is at most this fraction of the modulus.
pub const ROLLOVER_MAX_FRACTION: f64 = 0.1;
/// Relative drop of a counter treated as float jitter rather than a replacement.
pub const JITTER_FRACTION: f64 = 1e-6;

/// How an interval's counter delta came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterEvent {
    /// The counter rose (or did not move).
    Normal,
    /// The counter wrapped at its modulus.
    Rollover,
    /// The counter dropped and it is not a rollover: a new meter, taken to start at zero.
    Replacement,
}

/// Consumption between two counter readings `prev` then `cur` (same unit), with the point's modulus.
/// Never negative.
pub fn counter_delta(prev: f64, cur: f64, modulus: Option<f64>) -> (f64, CounterEvent) {
    if cur >= prev {
        return (cur - prev, CounterEvent::Normal);
    }
    if prev - cur <= JITTER_FRACTION * prev.abs() {
        return (0.0, CounterEvent::Normal);
    }
    if let Some(m) = modulus.filter(|m| m.is_finite() && *m > 0.0) {
        let wrapped = m - prev + cur;
        if wrapped >= 0.0 && wrapped <= ROLLOVER_MAX_FRACTION * m {
            return (wrapped, CounterEvent::Rollover);
        }
    }
    (cur.max(0.0), CounterEvent::Replacement)
}

/// The last good reading of a point, persisted so that intervals continue across restarts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LastReading {
    /// UTC milliseconds.
    pub ts_ms: i64,
    /// The value as read (counters: the totalizer).
    pub value: f64,
    /// A non-good reading came after it: the next interval is a gap.
    pub broken: bool,
}

/// What `Tracker::push` did with a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// The first good reading: nothing to count yet.
    First,
    /// An interval was counted.
    Interval { gap: bool, event: CounterEvent },
    /// A non-good reading: coverage breaks here.
    NotGood,
    /// Not after the last reading (duplicate or out of order): ignored.
    Stale,
}

/// Per-point interval state.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracker {
    pub kind: PointKind,
    /// Counter modulus in the point's unit.
    pub modulus: Option<f64>,
    /// Intervals longer than this (ms) are gaps.
    pub gap_ms: i64,
    pub last: Option<LastReading>,
}

/// The gap threshold for a poll interval: more than twice the interval (and at least one second more).
pub fn gap_threshold_ms(poll_interval_ms: i64) -> i64 {
    (poll_interval_ms.max(1) * 2).max(poll_interval_ms + 1000)
}

impl Tracker {
    pub fn new(kind: PointKind, modulus: Option<f64>, gap_ms: i64) -> Tracker {
        Tracker {
            kind,
            modulus,
            gap_ms: gap_ms.max(1),
            last: None,
        }
    }

    /// Feed one reading (`value` None when its quality is not good). Hourly contributions go to `out`
    /// as (local hour index, contribution); several may go to the same hour.
    pub fn push(
        &mut self,
        ts_ms: i64,
        value: Option<f64>,
        grid: &HourGrid,
        out: &mut impl FnMut(i64, HourAgg),
    ) -> Pushed {
        let Some(last) = self.last.as_mut() else {
            return match value.filter(|v| v.is_finite()) {
                Some(v) => {
                    self.last = Some(LastReading {
                        ts_ms,
                        value: v,
                        broken: false,
                    });
                    Pushed::First
                }
                None => Pushed::NotGood,
            };
        };
        if ts_ms <= last.ts_ms {
            return Pushed::Stale;
        }
        let Some(v) = value.filter(|v| v.is_finite()) else {
            last.broken = true;
            return Pushed::NotGood;
        };
        let t0 = last.ts_ms;
        let gap = last.broken || ts_ms - t0 > self.gap_ms;
        let prev = last.value;
        let mut event = CounterEvent::Normal;
        match self.kind {
            PointKind::Counter => {
                let (delta, ev) = counter_delta(prev, v, self.modulus);
                event = ev;
                spread(grid, t0, ts_ms, delta, gap, out);
                if ev != CounterEvent::Normal {
                    let mut e = HourAgg::default();
                    match ev {
                        CounterEvent::Rollover => e.rollovers = 1,
                        _ => e.replacements = 1,
                    }
                    out(grid.hour_index(ts_ms - 1), e);
                }
                // Jitter keeps the higher reading so that it is not counted twice.
                let keep = if ev == CounterEvent::Normal && v < prev {
                    prev
                } else {
                    v
                };
                *last = LastReading {
                    ts_ms,
                    value: keep,
                    broken: false,
                };
            }
            PointKind::Gauge => {
                if !gap {
                    trapezoid(grid, t0, ts_ms, prev, v, out);
                }
                *last = LastReading {
                    ts_ms,
                    value: v,
                    broken: false,
                };
            }
        }
        Pushed::Interval { gap, event }
    }
}

/// Spread a counter delta linearly over [t0, t1) into local hours. Covered time is credited unless `gap`,
/// in which case the time is flagged as apportioned.
fn spread(
    grid: &HourGrid,
    t0: i64,
    t1: i64,
    delta: f64,
    gap: bool,
    out: &mut impl FnMut(i64, HourAgg),
) {
    let dt = (t1 - t0) as f64;
    let h0 = grid.hour_index(t0);
    let h1 = grid.hour_index(t1 - 1);
    if h0 == h1 {
        out(h0, piece(delta, (t1 - t0) as u32, gap));
        return;
    }
    // Several hours: give each its share of the time; the last piece takes the remainder so the sum is exact.
    let mut given = 0.0;
    let mut a = t0;
    for h in h0..=h1 {
        let b = if h == h1 { t1 } else { grid.hour_start(h + 1) };
        let len = b - a;
        let share = if h == h1 {
            delta - given
        } else {
            delta * (len as f64 / dt)
        };
        given += share;
        out(h, piece(share, len as u32, gap));
        a = b;
    }
}

fn piece(amount: f64, len_ms: u32, gap: bool) -> HourAgg {
    HourAgg {
        sum: amount,
        covered_ms: if gap { 0 } else { len_ms },
        apportioned_ms: if gap { len_ms } else { 0 },
        rollovers: 0,
        replacements: 0,
    }
}

/// Trapezoid integral of a gauge going linearly from `v0` at `t0` to `v1` at `t1`, per hour (value x hours).
fn trapezoid(
    grid: &HourGrid,
    t0: i64,
    t1: i64,
    v0: f64,
    v1: f64,
    out: &mut impl FnMut(i64, HourAgg),
) {
    let dt = (t1 - t0) as f64;
    let h0 = grid.hour_index(t0);
    let h1 = grid.hour_index(t1 - 1);
    let mut a = t0;
    let mut va = v0;
    for h in h0..=h1 {
        let b = if h == h1 { t1 } else { grid.hour_start(h + 1) };
        let vb = if h == h1 {
            v1
        } else {
            v0 + (v1 - v0) * ((b - t0) as f64 / dt)
        };
        let len = b - a;
        out(
            h,
            HourAgg {
                sum: (va + vb) * 0.5 * (len as f64 / HOUR_MS as f64),
                covered_ms: len as u32,
                ..HourAgg::default()
            },
        );
        a = b;
        va = vb;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn run(t: &mut Tracker, readings: &[(i64, Option<f64>)]) -> BTreeMap<i64, HourAgg> {
        let g = HourGrid::utc();
        let mut m: BTreeMap<i64, HourAgg> = BTreeMap::new();
        for &(ts, v) in readings {
            t.push(ts, v, &g, &mut |h, a| m.entry(h).or_default().merge(&a));
        }
        m
    }

    #[test]
    fn domain_example_8_rollover() {
        let (d, ev) = counter_delta(999_990.00, 15.50, Some(1_000_000.00));
        assert!((d - 25.50).abs() < 1e-9);
        assert_eq!(ev, CounterEvent::Rollover);
        let mut t = Tracker::new(PointKind::Counter, Some(1_000_000.0), 20_000);
        let m = run(&mut t, &[(0, Some(999_990.0)), (5_000, Some(15.5))]);
        assert!((m[&0].sum - 25.5).abs() < 1e-9);
        assert_eq!(m[&0].rollovers, 1);
    }

    #[test]
    fn replacement_counts_the_new_reading_never_negative() {
        // No modulus (float counter): a drop is a replacement.
        assert_eq!(
            counter_delta(50_000.0, 12.0, None),
            (12.0, CounterEvent::Replacement)
        );
        // Far from the modulus: a replacement too.
        assert_eq!(
            counter_delta(100_000.0, 3.0, Some(42_949_672.96)),
            (3.0, CounterEvent::Replacement)
        );
        // Jitter of a float totalizer is not a replacement.
        assert_eq!(
            counter_delta(123_456.78, 123_456.75, None),
            (0.0, CounterEvent::Normal)
        );
    }

    #[test]
    fn jitter_keeps_the_higher_reading() {
        let mut t = Tracker::new(PointKind::Counter, None, 20_000);
        let m = run(
            &mut t,
            &[
                (0, Some(1_000_000.0)),
                (5_000, Some(999_999.5)),
                (10_000, Some(1_000_001.0)),
            ],
        );
        assert!((m[&0].sum - 1.0).abs() < 1e-9);
    }

    #[test]
    fn gap_is_apportioned_over_hours_and_not_covered() {
        let mut t = Tracker::new(PointKind::Counter, None, 20_000);
        // 10:30 -> 13:30 with 300 consumed: 50 / 100 / 100 / 50.
        let h = HOUR_MS;
        let m = run(
            &mut t,
            &[(10 * h + h / 2, Some(0.0)), (13 * h + h / 2, Some(300.0))],
        );
        assert!((m[&10].sum - 50.0).abs() < 1e-9);
        assert!((m[&11].sum - 100.0).abs() < 1e-9);
        assert!((m[&12].sum - 100.0).abs() < 1e-9);
        assert!((m[&13].sum - 50.0).abs() < 1e-9);
        assert_eq!(m[&11].covered_ms, 0);
        assert_eq!(m[&11].apportioned_ms, HOUR_MS as u32);
    }

    #[test]
    fn bad_quality_breaks_coverage_but_keeps_consumption() {
        let mut t = Tracker::new(PointKind::Counter, None, 20_000);
        let m = run(
            &mut t,
            &[
                (0, Some(10.0)),
                (5_000, None),
                (10_000, Some(12.0)),
                (15_000, Some(13.0)),
            ],
        );
        assert!((m[&0].sum - 3.0).abs() < 1e-9);
        assert_eq!(m[&0].covered_ms, 5_000);
        assert_eq!(m[&0].apportioned_ms, 10_000);
    }

    #[test]
    fn gauge_is_time_weighted_by_trapezoid() {
        let mut t = Tracker::new(PointKind::Gauge, None, 2 * HOUR_MS);
        // 100 kW at 00:00 rising to 200 kW at 02:00 -> 125 kWh then 175 kWh.
        let m = run(&mut t, &[(0, Some(100.0)), (2 * HOUR_MS, Some(200.0))]);
        assert!((m[&0].sum - 125.0).abs() < 1e-9);
        assert!((m[&1].sum - 175.0).abs() < 1e-9);
        assert_eq!(m[&0].covered_ms, HOUR_MS as u32);
    }

    #[test]
    fn stale_and_duplicate_readings_are_ignored() {
        let mut t = Tracker::new(PointKind::Counter, None, 20_000);
        let g = HourGrid::utc();
        let mut sink = |_h: i64, _a: HourAgg| {};
        assert_eq!(t.push(1000, Some(1.0), &g, &mut sink), Pushed::First);
        assert_eq!(t.push(1000, Some(2.0), &g, &mut sink), Pushed::Stale);
        assert_eq!(t.push(500, Some(2.0), &g, &mut sink), Pushed::Stale);
    }
}
