//! `[audit.sufficiency]`: the rules a baseline's daily data is judged on before each model (issue #29 item 4).
//! Every key is optional; the defaults are `SufficiencyRules::default()` (README "Model diagnostics").

use crate::audit::diagnostics::SufficiencyRules;

use super::diag::Diag;
use super::reader::Section;

const KEYS: &[&str] = &[
    "min_coverage",
    "max_gap_days",
    "max_zero_days_share",
    "max_outlier_days_share",
    "outlier_iqr_factor",
];

/// The section's rules over the defaults; the defaults without the section.
pub(crate) fn parse(d: &mut Diag<'_>, audit: &Section<'_>) -> SufficiencyRules {
    let mut r = SufficiencyRules::default();
    let Some(t) = audit.table(d, "sufficiency", "[audit.sufficiency]") else {
        return r;
    };
    t.check_keys(d, KEYS);
    let share = |d: &mut Diag<'_>, key: &str, into: &mut f64| {
        if let Some(v) = t.number(d, key) {
            if (0.0..=1.0).contains(&v.v) {
                *into = v.v;
            } else {
                d.error(&v.span, format!("{key} {} is outside 0..=1", v.v));
            }
        }
    };
    share(d, "min_coverage", &mut r.min_coverage);
    share(d, "max_zero_days_share", &mut r.max_zero_days_share);
    share(d, "max_outlier_days_share", &mut r.max_outlier_days_share);
    if let Some(v) = t.int_in(d, "max_gap_days", 0, 3660) {
        r.max_gap_days = v.v as u64;
    }
    if let Some(v) = t.positive(d, "outlier_iqr_factor") {
        r.outlier_iqr_factor = v.v;
    }
    r
}
