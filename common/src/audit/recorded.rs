//! Recorded replacements in the report: which of the report's replacement events were recorded by
//! hand (and at which instant), and which recorded ones the figures do not hold, with why. One rule
//! for every audit over readings (the agent's store, the park's PostgreSQL): `recorded` and `applied`
//! say what the figures hold, not what the file of records says.

use std::collections::HashMap;

use crate::audit::hourly::HourGrid;
use crate::audit::intervals::Applied;
use crate::audit::report::{ReplacementEvent, Report};
use crate::model::{format_ts_ms, parse_ts_ms};

/// Why a recorded replacement is not applied when nothing more specific is known.
pub const NOT_REACHED: &str =
    "the readings counted so far do not reach across it (it is applied when they do)";

/// Mark the report's replacement events: an event in the hour where a recorded replacement of its point
/// was applied (`applied`, per `meter.point`) is that record (recorded, at its instant); every recorded
/// replacement (`recorded`: point and instant) that was not applied is listed as not applied, with the
/// reason from `why` (default [`NOT_REACHED`]) in the method notes.
pub fn mark(
    report: &mut Report,
    grid: &HourGrid,
    applied: &HashMap<String, Vec<Applied>>,
    recorded: &[(String, i64)],
    why: impl Fn(&str, i64) -> Option<String>,
) {
    for e in &mut report.events.replacements {
        let Some(ts) = parse_ts_ms(&e.at) else {
            continue;
        };
        let hour = grid.hour_index(ts);
        let Some(a) = applied
            .get(e.point.as_str())
            .and_then(|v| v.iter().find(|a| grid.hour_index(a.event_ts()) == hour))
        else {
            continue;
        };
        e.recorded = true;
        e.at = format_ts_ms(a.at_ms);
    }
    for (point, at) in recorded {
        if applied
            .get(point.as_str())
            .is_some_and(|v| v.iter().any(|a| a.at_ms == *at))
        {
            continue;
        }
        let why = why(point, *at).unwrap_or_else(|| NOT_REACHED.to_string());
        report.events.replacements.push(ReplacementEvent {
            point: point.clone(),
            at: format_ts_ms(*at),
            recorded: true,
            applied: false,
        });
        report.method.notes.push(format!(
            "{point}: the replacement recorded at {} is not applied: {why}",
            format_ts_ms(*at)
        ));
    }
}
