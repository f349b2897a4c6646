//! `[import]`: how `plantmeter import` reads a plant's spreadsheets (all keys optional).
//!
//! ```toml
//! [import]
//! daily_at = "08:00"                               # a date-only row: the day's reading at this local time
//! headers = { "抄表时间" = "ts", "表号" = "meter" }  # headers besides the built-in map: ts | meter | point | value
//! columns = { "1#电表" = "main-power.energy" }      # --wide: a column header -> meter.point
//! ```

use crate::plan::{ImportField, ImportPlan};

use super::audit::Points;
use super::diag::Diag;
use super::reader::Section;

const IMPORT_KEYS: &[&str] = &["daily_at", "headers", "columns"];

pub(crate) fn parse(d: &mut Diag<'_>, root: &Section<'_>, points: &Points<'_>) -> ImportPlan {
    let mut plan = ImportPlan::default();
    let Some(item) = root.item("import") else {
        return plan;
    };
    let Some(t) = Section::of_item(d, item, "import", "[import]") else {
        return plan;
    };
    t.check_keys(d, IMPORT_KEYS);
    if let Some(v) = t.str(d, "daily_at") {
        match chrono::NaiveTime::parse_from_str(v.v.trim(), "%H:%M") {
            Ok(time) => {
                use chrono::Timelike;
                plan.daily_at_s = time.num_seconds_from_midnight();
            }
            Err(_) => d.error(
                &v.span,
                format!(
                    "daily_at \"{}\" must be a local time HH:MM, e.g. \"08:00\"",
                    v.v
                ),
            ),
        }
    }
    if let Some(h) = t.table(d, "headers", "[import] headers") {
        for (key, value, span) in h.entries() {
            match value.as_str().and_then(ImportField::parse) {
                Some(f) => plan.headers.push((key.trim().to_string(), f)),
                None => d.error(
                    &span,
                    format!(
                        "header \"{key}\" must map to \"ts\", \"meter\", \"point\" or \"value\""
                    ),
                ),
            }
        }
    }
    if let Some(c) = t.table(d, "columns", "[import] columns") {
        for (key, value, span) in c.entries() {
            let Some(r) = value.as_str() else {
                d.error(
                    &span,
                    format!("column \"{key}\" must map to a point written \"meter.point\""),
                );
                continue;
            };
            match points.resolve(r) {
                Ok(_) => plan.columns.push((key.trim().to_string(), r.to_string())),
                Err(Some(msg)) => d.error(&span, format!("column \"{key}\": {msg}")),
                Err(None) => {}
            }
        }
    }
    plan
}
