//! The multiplier (倍率) in the audit (DOMAIN.md): published energy values are the register times
//! the multiplier in force at the reading. When a transformer is changed, the multiplier changes
//! and the published total jumps although nothing was consumed. The change is a discontinuity
//! handled like a recorded replacement whose old final reading is the last reading before it and
//! whose new start is that reading on the new multiplier's footing: the next delta counts the
//! register's advance at the new multiplier, the jump counts nothing, history is never rescaled.

use crate::audit::intervals::Tracker;
use crate::audit::report::MultiplierEvent;
use crate::model::format_ts_ms;
use crate::plan::{Multiplier, Plan};

/// Before a reading at `ts_ms` goes to `tracker`: when a multiplier change lies between the
/// tracker's latest reading and `ts_ms`, that reading (and a held one) is put on the new
/// multiplier's footing. Returns whether it was. Only for points the energy multiplier scales.
pub fn rescale_across(tracker: &mut Tracker, m: &Multiplier, unit: &str, ts_ms: i64) -> bool {
    if !Multiplier::scales_energy(unit) {
        return false;
    }
    let Some(last) = tracker.last.as_mut() else {
        return false;
    };
    let (before, after) = (m.energy_at(last.latest_ts()), m.energy_at(ts_ms));
    if before == after || before <= 0.0 {
        return false;
    }
    let ratio = after / before;
    last.value *= ratio;
    if let Some(h) = last.held.as_mut() {
        h.value *= ratio;
    }
    true
}

/// Every dated multiplier change of the plan's meters in `[from_ms, to_ms)`, for the report's
/// events (listed with the replacements).
pub fn events(plan: &Plan, from_ms: i64, to_ms: i64) -> Vec<MultiplierEvent> {
    let mut out = Vec::new();
    for meter in plan.meters() {
        let Some(m) = &meter.multiplier else { continue };
        let mut before = m.energy;
        for c in &m.changes {
            if (from_ms..to_ms).contains(&c.at_ms) {
                out.push(MultiplierEvent {
                    meter: meter.name.clone(),
                    at: format_ts_ms(c.at_ms),
                    from: before,
                    to: c.value,
                });
            }
            before = c.value;
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::audit::hourly::HourGrid;
    use crate::plan::MultiplierChange;
    use crate::types::PointKind;

    /// Register 100.00, 101.00 at x6000; the transformer changes (x8000); register 101.00 again,
    /// then 102.50: 6 000 + 0 + 12 000 = 18 000 kWh, not the 202 000 kWh of the jump.
    #[test]
    fn a_multiplier_change_counts_no_phantom_consumption() {
        let m = Multiplier {
            energy: 6000.0,
            pt: 60.0,
            ct: 100.0,
            changes: vec![MultiplierChange {
                at_ms: 2 * 3_600_000,
                at: String::new(),
                value: 8000.0,
            }],
        };
        let grid = HourGrid::new(chrono::FixedOffset::east_opt(0).unwrap());
        let mut t = Tracker::new(PointKind::Counter, None, 10 * 3_600_000);
        let mut total = 0.0;
        for (h, raw) in [(0, 100.0), (1, 101.0), (3, 101.0), (4, 102.5)] {
            let ts = h * 3_600_000;
            let published = raw * m.factor("kWh", ts);
            rescale_across(&mut t, &m, "kWh", ts);
            t.push(ts, Some(published), &grid, &mut |_, a| total += a.sum);
        }
        assert!((total - 18_000.0).abs() < 1e-6, "{total}");
    }
}
