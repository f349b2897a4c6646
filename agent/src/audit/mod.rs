//! The audit engine's I/O shell: hourly aggregates in sled, CSV import, reports.

pub mod aggregates;
pub mod engine;
pub mod import;
pub mod render;
pub mod report;

pub use engine::AuditEngine;
