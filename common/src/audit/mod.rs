//! Audit maths: intervals (counter deltas, rollover, gaps), indicators, regression baselines, savings, grades.

pub mod baseline;
pub mod compute;
pub mod grade;
pub mod hourly;
pub mod indicators;
pub mod intervals;
pub mod regression;
pub mod report;
