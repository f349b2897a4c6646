//! The audit engine's I/O shell: hourly aggregates in sled, CSV import, reports.

pub mod aggregates;
pub mod alarm;
pub mod engine;
pub mod import;
pub mod integrity;
pub mod live;
// The text tables (`text_table`, `display_width`) are the demo's: the gateway build does not use them.
// (render/ is also compiled into plantmeter-park, which has no `demo` feature: no cfg in there.)
#[cfg_attr(not(feature = "demo"), allow(dead_code, unused_imports))]
pub mod render;
pub mod replace;
pub mod report;
pub mod verify;

pub use engine::AuditEngine;
