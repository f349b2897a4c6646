//! Audit maths: intervals (counter deltas, rollover, gaps), indicators, regression baselines, savings, grades.

pub mod baseline;
pub mod canonical;
pub mod compute;
pub mod diagnostics;
pub mod facility;
pub mod grade;
pub mod hourly;
pub mod indicators;
pub mod intervals;
pub mod multiplier;
pub mod recorded;
pub mod regression;
// The report's renderings (text, CSV, HTML with SVG charts, XLSX; English and Chinese): the agent's
// `report` and plantmeter-park's use them; behind a feature so the simulator does not compile them.
#[cfg(feature = "render")]
pub mod render;
pub mod report;
