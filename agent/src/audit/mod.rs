//! The audit engine's I/O shell: hourly aggregates in sled, CSV import, reports.

pub mod aggregates;
pub mod alarm;
pub mod engine;
pub mod import;
pub mod integrity;
pub mod key;
pub mod live;
pub use plantmeter_common::audit::render;
pub mod replace;
pub mod report;
pub mod verify;

pub use engine::AuditEngine;
