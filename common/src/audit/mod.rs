//! Audit maths: intervals (counter deltas, rollover, gaps), indicators, regression baselines, savings, grades.

pub mod balance;
pub mod baseline;
pub mod canonical;
pub mod compute;
pub mod coverage;
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
pub mod waste;

/// The points the balances and waste read (loaded with the audit's other points).
pub fn depth_points(audit: &crate::plan::AuditPlan) -> Vec<&crate::plan::PointRef> {
    let mut out = audit.balance.points();
    out.extend(audit.waste.iter().map(|w| &w.point));
    out
}

/// What [`depth`] gives: balances, coverage and waste, each null when the config does not ask for it.
pub type Depth = (
    Option<balance::Balances>,
    Option<coverage::Coverage>,
    Option<waste::Waste>,
);

/// Balances, coverage and waste of a report over the baseline and reporting windows of hours.
pub fn depth<'a>(
    audit: &crate::plan::AuditPlan,
    base_range: (usize, usize),
    rep_range: Option<(usize, usize)>,
    hours_of: &dyn Fn(&crate::plan::PointRef) -> Option<balance::Hours<'a>>,
    production: &[f64],
) -> Depth {
    let mut ranges = vec![balance::PeriodRange {
        name: "baseline",
        range: base_range,
    }];
    if let Some(r) = rep_range {
        ranges.push(balance::PeriodRange {
            name: "reporting",
            range: r,
        });
    }
    let check = ranges[ranges.len() - 1];
    (
        (!audit.balance.is_empty()).then(|| balance::balances(&audit.balance, &ranges, hours_of)),
        (!audit.ledger.is_empty()).then(|| coverage::coverage(&audit.ledger)),
        (!audit.waste.is_empty()).then(|| {
            waste::waste(
                &audit.waste,
                &ranges,
                &check,
                hours_of,
                production,
                &audit.production_unit,
            )
        }),
    )
}
