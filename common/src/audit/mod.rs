//! Audit maths: intervals (counter deltas, rollover, gaps), indicators, regression baselines, savings, grades.

pub mod hourly;
pub mod intervals;
pub mod report;
