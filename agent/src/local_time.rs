//! Instants as the plant's people read them: in the plant's timezone (`[audit] timezone`, or this
//! machine's offset without an audit), never in UTC, which a +08:00 plant would have to convert.

use std::sync::OnceLock;

use chrono::{FixedOffset, Offset as _, TimeZone as _};
use plantmeter_common::Plan;

/// The timezone of the messages of a command that has no plan at hand where it formats (set once,
/// at the start of the command).
static DISPLAY_TZ: OnceLock<FixedOffset> = OnceLock::new();

/// The plant's timezone: `[audit] timezone`, or without an audit this machine's offset now (a gateway
/// set to the plant's time; UTC when it has no timezone set).
pub fn plant_tz(plan: &Plan) -> FixedOffset {
    plan.audit
        .as_ref()
        .map_or_else(|| chrono::Local::now().offset().fix(), |a| a.timezone)
}

/// Messages formatted with [`format_ts_ms`] from now on are in `tz`.
pub fn set_display_tz(tz: FixedOffset) {
    let _ = DISPLAY_TZ.set(tz);
}

/// RFC 3339 in the display timezone, milliseconds only when there are some:
/// `2024-01-01T00:00:00+08:00`. As `plantmeter_common::model::format_ts_ms` (UTC) until
/// [`set_display_tz`] was called.
pub fn format_ts_ms(ms: i64) -> String {
    let Some(tz) = DISPLAY_TZ.get() else {
        return plantmeter_common::model::format_ts_ms(ms);
    };
    match tz.timestamp_millis_opt(ms).single() {
        Some(t) if ms.rem_euclid(1000) != 0 => t.format("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string(),
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
        None => plantmeter_common::model::format_ts_ms(ms),
    }
}

/// An instant for a line read on its own, to the second with its offset: `2026-11-30 18:04:05 +08:00`.
pub fn local_time(ms: i64, tz: FixedOffset) -> String {
    match tz.timestamp_millis_opt(ms).single() {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S %:z").to_string(),
        None => plantmeter_common::model::format_ts_ms(ms),
    }
}
