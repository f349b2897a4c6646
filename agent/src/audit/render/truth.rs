//! The audit beside a known truth (the simulator's): per indicator, measured and true figures and their
//! difference, for `plantmeter demo` and tests that want to show how close the audit came.

// Offered to the demo; `plantmeter demo` currently prints its own comparison (agent/src/demo/compare.rs).
#![allow(dead_code)]

use std::fmt::Write as _;

use plantmeter_common::audit::report::Report;

use super::format::{display, display_opt};
use super::i18n::{indicator_label, Lang};
use super::text::{indicator_table, model_table, summary, Table};

/// Which period of the report a set of true figures refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TruthPeriod {
    Baseline,
    Reporting,
}

/// The true value of one indicator over a period (from the simulator's ground truth), in the indicator's
/// `total_unit` and `per_unit_unit`.
#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    /// Indicator key (`energy`, `electricity`, `COD`, ...).
    pub indicator: String,
    pub total: f64,
    /// `None` when the truth has no production for the period.
    pub per_unit: Option<f64>,
}

fn diff_pct(measured: Option<f64>, truth: Option<f64>) -> String {
    match (measured, truth) {
        (Some(m), Some(t)) if t != 0.0 && m.is_finite() && t.is_finite() => {
            let d = 100.0 * (m - t) / t;
            if d.abs() < 0.005 {
                "0.00".to_string()
            } else {
                format!("{d:+.2}")
            }
        }
        _ => "–".to_string(),
    }
}

/// [`text_table`] preceded by a comparison of the measured figures of `period` with the true ones:
/// per indicator, measured and true total and per unit, and their difference in percent of the truth.
/// Truth rows for indicators the report lacks show `–` as measured.
pub fn text_table_with_truth(
    report: &Report,
    lang: Lang,
    period: TruthPeriod,
    truth: &[Truth],
) -> String {
    let l = lang.labels();
    let mut out = String::new();
    summary(report, lang, &mut out);
    out.push('\n');
    let period_label = match period {
        TruthPeriod::Baseline => l.baseline,
        TruthPeriod::Reporting => l.reporting,
    };
    let _ = writeln!(out, "{} / {}: {period_label}", l.measured, l.truth);
    let mut t = Table::new(&[
        (l.indicator, false),
        (l.unit, false),
        (&format!("{} ({})", l.measured, l.total), true),
        (&format!("{} ({})", l.truth, l.total), true),
        (l.difference_pct, true),
        (&format!("{} ({})", l.measured, l.per_unit), true),
        (&format!("{} ({})", l.truth, l.per_unit), true),
        (l.difference_pct, true),
    ]);
    for tr in truth {
        let ind = report
            .indicators
            .iter()
            .find(|(k, _)| *k == tr.indicator)
            .map(|(_, i)| i);
        let (total, per_unit) = match (ind, period) {
            (Some(i), TruthPeriod::Baseline) => (Some(i.baseline.total), i.baseline.per_unit),
            (Some(i), TruthPeriod::Reporting) => (
                i.reporting.as_ref().map(|r| r.total),
                i.reporting.as_ref().and_then(|r| r.per_unit),
            ),
            (None, _) => (None, None),
        };
        let unit = ind.map_or_else(String::new, |i| {
            format!("{} | {}", i.total_unit, i.per_unit_unit)
        });
        t.push(vec![
            indicator_label(lang, &tr.indicator),
            unit,
            display_opt(total),
            display(tr.total),
            diff_pct(total, Some(tr.total)),
            display_opt(per_unit),
            display_opt(tr.per_unit),
            diff_pct(per_unit, tr.per_unit),
        ]);
    }
    t.render(&mut out);
    out.push('\n');
    indicator_table(report, lang, &mut out);
    out.push('\n');
    model_table(report, lang, &mut out);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::audit::render::fixture;
    use crate::audit::render::text::tests::assert_aligned;

    #[test]
    fn truth_comparison_shows_differences() {
        let r = fixture::report();
        let e = &r.indicators[0].1;
        let truth = vec![
            Truth {
                indicator: "energy".to_string(),
                total: e.baseline.total * 1.01,
                per_unit: e.baseline.per_unit,
            },
            Truth {
                indicator: "NOx".to_string(),
                total: 10.0,
                per_unit: None,
            },
        ];
        let s = text_table_with_truth(&r, Lang::En, TruthPeriod::Baseline, &truth);
        let line = s
            .lines()
            .find(|l| l.starts_with("Comprehensive energy") && l.contains("0.00"))
            .unwrap();
        // measured is 1% below the truth: -0.99 %
        assert!(line.contains("-0.99"), "{line}");
        let nox = s
            .lines()
            .find(|l| l.starts_with("Nitrogen oxides"))
            .unwrap();
        assert!(nox.contains('–'));
        assert_aligned(&s, "Truth (Total)");
        let z = text_table_with_truth(&r, Lang::Zh, TruthPeriod::Reporting, &truth);
        assert!(z.contains("真值") && z.contains("报告期"));
        assert_aligned(&z, "真值 (总量)");
    }
}
