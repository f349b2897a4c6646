//! plantmeter-common: the pure core of plantmeter. Register codec, data model, configuration and its
//! validation, audit maths. No I/O beyond reading a config file's text, no async runtime.

pub mod audit;
pub mod batching;
mod builtin_templates;
pub mod cjt188;
pub mod clock;
pub mod codec;
pub mod config;
pub mod delivery;
pub mod dlt645;
pub mod frame68;
pub mod hj212;
pub mod meter_read;
pub mod model;
pub mod outbox;
pub mod plan;
pub mod templates;
pub mod types;
pub mod units;

pub use clock::Clock;
pub use model::{DataMessage, PointValue, Quality};
pub use plan::Plan;
pub use types::{ByteOrder, DataType, PointKind, RegisterKind};
