//! What a reviewer who knows CalTRACK, DOE EnPI or eemeter asks of a baseline model before trusting it
//! (issue #29 item 4): is the baseline's data sufficient (days covered, the longest gap, zero and outlier
//! days, against stated rules); how does the model predict data it was not fitted on (leave-one-out
//! CV(RMSE) beside the fitted one); are the reporting period's variables outside the baseline's range
//! (extrapolation); the residuals' autocorrelation and the effective n' of the savings uncertainty; and
//! which conventions the figures use. A figure that cannot be computed honestly is null with a reason.
//!
//! eemeter's published metric vector (observed [1,3,4,1,6], predicted [2,3,3,2,4]) differs from ours by
//! convention, not by error: eemeter's r2 is the squared correlation of observed and predicted (0.972),
//! its CV(RMSE) divides by n (0.394), its autocorrelation is the correlation of the lagged residual pairs
//! (-0.674); ours are 1 - SSE/SST, n - p and `sum e_i e_(i-1) / sum e_i^2` (DOMAIN.md). The tests below
//! reproduce both side by side.

use serde::{Deserialize, Serialize};

use crate::audit::baseline::{Baseline, Method};
use crate::audit::regression::{self, EffectiveN, OlsFit};

/// The rules a baseline's daily data is judged on before a model is fitted (`[audit.sufficiency]`).
/// Defaults: CalTRACK's 90 % of days; a gap of at most 14 days (two weeks without data can hide a
/// seasonal swing or a shutdown); at most 10 % zero days and 5 % outlier days; outliers beyond Tukey's
/// far-out fences (3 x IQR).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SufficiencyRules {
    /// Smallest share (0..=1) of the baseline's days with data (a valid day: >= 20 valid hours).
    pub min_coverage: f64,
    /// Longest run of consecutive days without data.
    pub max_gap_days: u64,
    /// Largest share (0..=1) of the days with data whose total is zero.
    pub max_zero_days_share: f64,
    /// Largest share (0..=1) of the days with data that are outliers.
    pub max_outlier_days_share: f64,
    /// k of the fences `Q1 - k IQR`, `Q3 + k IQR` over the non-zero days with data.
    pub outlier_iqr_factor: f64,
}

impl Default for SufficiencyRules {
    fn default() -> Self {
        SufficiencyRules {
            min_coverage: 0.9,
            max_gap_days: 14,
            max_zero_days_share: 0.1,
            max_outlier_days_share: 0.05,
            outlier_iqr_factor: 3.0,
        }
    }
}

/// Fewer non-zero days with data than this and quartiles (so outliers) are not computed.
pub const MIN_DAYS_FOR_OUTLIERS: usize = 4;

/// The baseline's daily data against [`SufficiencyRules`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sufficiency {
    pub rules: SufficiencyRules,
    /// Elapsed days of the baseline period.
    pub days: u64,
    /// Days with data of every point of the indicator (>= 20 valid hours).
    pub days_with_data: u64,
    /// days_with_data / days; null without a day.
    pub coverage: Option<f64>,
    /// Longest run of consecutive days without data.
    pub longest_gap_days: u64,
    /// Days with data whose total is zero.
    pub zero_days: u64,
    /// Non-zero days with data beyond the fences; null with fewer than [`MIN_DAYS_FOR_OUTLIERS`] of them.
    pub outlier_days: Option<u64>,
    /// The fences (total units per day); null with `outlier_days`.
    pub outlier_low: Option<f64>,
    pub outlier_high: Option<f64>,
    /// Every rule met.
    pub pass: bool,
    /// Each rule not met, in words (empty when `pass`).
    pub failed: Vec<String>,
}

/// Lag-1 autocorrelation of the model's residuals and the effective n' of the savings uncertainty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Autocorrelation {
    /// `sum_{i>=2} e_i e_{i-1} / sum e_i^2`; null with the ratio method or all-zero residuals.
    pub rho: Option<f64>,
    pub n: usize,
    /// `n (1 - rho) / (1 + rho)` as computed, unclamped; null without rho or with rho <= -1.
    pub n_eff_formula: Option<f64>,
    /// The n' the savings uncertainty uses: the formula for 0 < rho < 1, n for rho <= 0 (clamped), null
    /// for rho >= 1.
    pub n_eff: Option<f64>,
    /// The formula exceeded n (rho < 0) and n' is n.
    pub clamped: bool,
    /// What a reader should know about n' (clamped, undefined), or null.
    pub note: Option<String>,
}

/// A model variable's reporting values against the baseline's range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Extrapolation {
    pub variable: String,
    /// Range over the buckets the model was fitted on.
    pub baseline_min: f64,
    pub baseline_max: f64,
    /// Whole reporting buckets compared with the range.
    pub buckets_checked: usize,
    /// Reporting buckets with data on only part of their days: their sums are not comparable with a whole
    /// bucket's, so they are not judged.
    pub buckets_unchecked: usize,
    pub buckets_below: usize,
    pub buckets_above: usize,
    /// Days of the buckets outside the range.
    pub days_outside: f64,
    /// Furthest below the minimum / above the maximum, in the variable's unit; null when none.
    pub max_below: Option<f64>,
    pub max_above: Option<f64>,
    /// The furthest of the two as a share (%) of the baseline's range; null when none or the range is 0.
    pub max_beyond_pct_of_range: Option<f64>,
}

/// How the model's figures are defined, so that a reviewer comparing with another tool knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conventions {
    pub r2: String,
    pub residual: String,
    /// Number of the model's coefficients, intercept included (1 for ratio).
    pub p: usize,
    pub cv_rmse_denominator: String,
    pub nmbe_denominator: String,
    pub cv_rmse_loo_denominator: String,
    pub rho: String,
    pub n_eff: String,
}

/// The diagnostics of one baseline model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelDiagnostics {
    pub sufficiency: Sufficiency,
    /// Leave-one-out CV(RMSE): each bucket predicted by the model fitted without it (PRESS residuals
    /// `e_i / (1 - h_ii)`), `100 sqrt(sum / n) / mean(actual)`; null with a reason when undefined.
    pub cv_rmse_loo_pct: Option<f64>,
    pub cv_rmse_loo_reason: Option<String>,
    pub autocorrelation: Autocorrelation,
    /// One per model variable; empty with a reason when there is nothing to compare.
    pub extrapolation: Vec<Extrapolation>,
    pub extrapolation_reason: Option<String>,
    pub conventions: Conventions,
}

/// Shares and counts are compared with a little slack so that 0.9 of 10 days meets 0.9.
const EPS: f64 = 1e-9;

/// The baseline's days in order: `Some(total)` for a day with data, None for a day without.
pub fn sufficiency(daily: &[Option<f64>], rules: &SufficiencyRules) -> Sufficiency {
    let days = daily.len() as u64;
    let with: Vec<f64> = daily.iter().flatten().copied().collect();
    let days_with_data = with.len() as u64;
    let coverage = (days > 0).then(|| days_with_data as f64 / days as f64);
    let mut longest_gap_days = 0u64;
    let mut run = 0u64;
    for d in daily {
        run = if d.is_some() { 0 } else { run + 1 };
        longest_gap_days = longest_gap_days.max(run);
    }
    let zero_days = with.iter().filter(|v| v.abs() < EPS).count() as u64;
    let mut nonzero: Vec<f64> = with.iter().copied().filter(|v| v.abs() >= EPS).collect();
    nonzero.sort_by(f64::total_cmp);
    let fences = (nonzero.len() >= MIN_DAYS_FOR_OUTLIERS).then(|| {
        let (q1, q3) = (quantile(&nonzero, 0.25), quantile(&nonzero, 0.75));
        let k = rules.outlier_iqr_factor * (q3 - q1);
        (q1 - k, q3 + k)
    });
    let outlier_days =
        fences.map(|(lo, hi)| nonzero.iter().filter(|v| **v < lo || **v > hi).count() as u64);
    let share = |k: u64| {
        if days_with_data > 0 {
            k as f64 / days_with_data as f64
        } else {
            0.0
        }
    };
    let mut failed = Vec::new();
    match coverage {
        Some(c) if c + EPS >= rules.min_coverage => {}
        Some(c) => failed.push(format!(
            "coverage {:.1} % of the baseline's days is below {:.1} %",
            100.0 * c,
            100.0 * rules.min_coverage
        )),
        None => failed.push("no elapsed day in the baseline period".to_string()),
    }
    if longest_gap_days > rules.max_gap_days {
        failed.push(format!(
            "longest gap {longest_gap_days} days exceeds {} days",
            rules.max_gap_days
        ));
    }
    if share(zero_days) > rules.max_zero_days_share + EPS {
        failed.push(format!(
            "zero days {:.1} % of the days with data exceed {:.1} %",
            100.0 * share(zero_days),
            100.0 * rules.max_zero_days_share
        ));
    }
    match outlier_days {
        Some(o) if share(o) > rules.max_outlier_days_share + EPS => failed.push(format!(
            "outlier days {:.1} % of the days with data exceed {:.1} %",
            100.0 * share(o),
            100.0 * rules.max_outlier_days_share
        )),
        Some(_) => {}
        None => failed.push(format!(
            "{} non-zero days with data: at least {MIN_DAYS_FOR_OUTLIERS} are needed to judge outliers",
            nonzero.len()
        )),
    }
    Sufficiency {
        rules: *rules,
        days,
        days_with_data,
        coverage,
        longest_gap_days,
        zero_days,
        outlier_days,
        outlier_low: fences.map(|f| f.0),
        outlier_high: fences.map(|f| f.1),
        pass: failed.is_empty(),
        failed,
    }
}

/// The q-quantile of sorted values by linear interpolation between order statistics (Hyndman-Fan type 7,
/// the default of numpy and R).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * q;
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// Leave-one-out CV(RMSE) in % of a regression of `y` on `columns` whose residuals are `residuals`.
pub fn cv_rmse_loo_pct(columns: &[&[f64]], y: &[f64], residuals: &[f64]) -> Result<f64, String> {
    let n = y.len();
    let p = columns.len() + 1;
    // Fitting on n - 1 buckets needs n - 1 > p to leave a residual degree of freedom in every fold.
    if n < p + 2 {
        return Err(format!(
            "{n} buckets for {p} coefficients: too few to leave one out"
        ));
    }
    let h = regression::leverages(columns, n)
        .ok_or_else(|| "the variables are collinear: no leave-one-out fit".to_string())?;
    let mean = y.iter().sum::<f64>() / n as f64;
    if mean == 0.0 {
        return Err("mean consumption is zero: CV(RMSE) undefined".to_string());
    }
    let mut press = 0.0;
    for (i, (e, hi)) in residuals.iter().zip(&h).enumerate() {
        // A bucket the model fits by itself alone (leverage 1) has no prediction without it.
        if 1.0 - hi < 1e-9 {
            return Err(format!(
                "bucket {} alone determines a coefficient (leverage 1): no prediction without it",
                i + 1
            ));
        }
        press += (e / (1.0 - hi)).powi(2);
    }
    let v = 100.0 * (press / n as f64).sqrt() / mean;
    if v.is_finite() {
        Ok(v)
    } else {
        Err("leave-one-out CV(RMSE) is not finite".to_string())
    }
}

/// rho and n' of a regression's residuals; with the ratio method (no fit) null and said.
pub fn autocorrelation(fit: Option<&OlsFit>, n: usize) -> Autocorrelation {
    let Some(f) = fit else {
        return Autocorrelation {
            rho: None,
            n,
            n_eff_formula: None,
            n_eff: None,
            clamped: false,
            note: Some("ratio method: no regression residuals, no savings uncertainty".to_string()),
        };
    };
    let Some(rho) = f.residual_autocorrelation() else {
        return Autocorrelation {
            rho: None,
            n: f.n,
            n_eff_formula: None,
            n_eff: Some(f.n as f64),
            clamped: false,
            note: Some("the residuals are all zero: rho undefined, n' = n".to_string()),
        };
    };
    let EffectiveN {
        formula,
        used,
        clamped,
    } = regression::effective_n(f.n, rho);
    let note = if clamped {
        Some(match formula {
            Some(v) => format!(
                "rho {rho:.3} < 0: n (1 - rho)/(1 + rho) = {v:.1} exceeds n = {}; n' = n is used",
                f.n
            ),
            None => format!("rho {rho:.3} <= -1: n' = n = {} is used", f.n),
        })
    } else if used.is_none() {
        Some(format!(
            "rho {rho:.3} >= 1: n' <= 0, no savings uncertainty"
        ))
    } else {
        None
    };
    Autocorrelation {
        rho: Some(rho),
        n: f.n,
        n_eff_formula: formula,
        n_eff: used,
        clamped,
        note,
    }
}

/// A reporting bucket as the savings count it: the model's row of variables (all of [`Variables`]
/// columns), the share of a whole bucket it covers, and its days.
///
/// [`Variables`]: crate::audit::baseline::Variables
#[derive(Debug, Clone, PartialEq)]
pub struct ReportingBucket<'a> {
    pub row: &'a [f64],
    pub fraction: f64,
    pub days: f64,
}

/// Each of the model's variables over the reporting buckets against its range over `baseline_rows`.
pub fn extrapolation(
    model: &Baseline,
    baseline_rows: &[Vec<f64>],
    reporting: &[ReportingBucket<'_>],
) -> Vec<Extrapolation> {
    model
        .variables
        .iter()
        .zip(&model.columns)
        .filter_map(|(name, &c)| {
            let base: Vec<f64> = baseline_rows
                .iter()
                .filter_map(|r| r.get(c).copied())
                .collect();
            let lo = base.iter().copied().reduce(f64::min)?;
            let hi = base.iter().copied().reduce(f64::max)?;
            let mut x = Extrapolation {
                variable: name.clone(),
                baseline_min: lo,
                baseline_max: hi,
                buckets_checked: 0,
                buckets_unchecked: 0,
                buckets_below: 0,
                buckets_above: 0,
                days_outside: 0.0,
                max_below: None,
                max_above: None,
                max_beyond_pct_of_range: None,
            };
            for b in reporting.iter().filter(|b| b.fraction > 0.0) {
                let Some(v) = b.row.get(c).copied() else {
                    continue;
                };
                if b.fraction < 1.0 - EPS {
                    x.buckets_unchecked += 1;
                    continue;
                }
                x.buckets_checked += 1;
                if v < lo {
                    x.buckets_below += 1;
                    x.days_outside += b.days;
                    x.max_below = Some(x.max_below.unwrap_or(0.0).max(lo - v));
                } else if v > hi {
                    x.buckets_above += 1;
                    x.days_outside += b.days;
                    x.max_above = Some(x.max_above.unwrap_or(0.0).max(v - hi));
                }
            }
            let beyond = x.max_below.into_iter().chain(x.max_above).reduce(f64::max);
            x.max_beyond_pct_of_range = beyond.filter(|_| hi > lo).map(|b| 100.0 * b / (hi - lo));
            Some(x)
        })
        .collect()
}

/// The conventions of our figures (DOMAIN.md "Regression with several variables", ASHRAE Guideline 14).
pub fn conventions(p: usize) -> Conventions {
    Conventions {
        r2: "1 - SSE/SST".to_string(),
        residual: "actual - predicted".to_string(),
        p,
        cv_rmse_denominator: "n - p".to_string(),
        nmbe_denominator: "n - p".to_string(),
        cv_rmse_loo_denominator: "n".to_string(),
        rho: "sum(e_i e_(i-1), i >= 2) / sum(e_i^2)".to_string(),
        n_eff: "n (1 - rho)/(1 + rho) when rho > 0, else n".to_string(),
    }
}

/// Everything above for one model: `x` and `y` the buckets it was fitted on (rows of all variables),
/// `daily` the baseline's days, `reporting` the reporting buckets (None without a reporting period).
pub fn diagnose(
    model: &Baseline,
    x: &[Vec<f64>],
    y: &[f64],
    daily: &[Option<f64>],
    reporting: Option<&[ReportingBucket<'_>]>,
    rules: &SufficiencyRules,
) -> ModelDiagnostics {
    let (cv_rmse_loo_pct, cv_rmse_loo_reason) = match (&model.method, &model.fit) {
        (Method::Regression, Some(f)) => {
            let cols: Vec<Vec<f64>> = model
                .columns
                .iter()
                .map(|&c| {
                    x.iter()
                        .map(|r| r.get(c).copied().unwrap_or(f64::NAN))
                        .collect()
                })
                .collect();
            let cols: Vec<&[f64]> = cols.iter().map(|c| c.as_slice()).collect();
            match cv_rmse_loo_pct(&cols, y, &f.residuals) {
                Ok(v) => (Some(v), None),
                Err(e) => (None, Some(e)),
            }
        }
        _ => (
            None,
            Some("ratio method: no regression to cross-validate".to_string()),
        ),
    };
    let (extrapolation, extrapolation_reason) = match reporting {
        None => (Vec::new(), Some("no reporting period".to_string())),
        Some(_) if y.is_empty() => (
            Vec::new(),
            Some("no baseline bucket in the model: no range to compare with".to_string()),
        ),
        Some(r) => (extrapolation(model, x, r), None),
    };
    ModelDiagnostics {
        sufficiency: sufficiency(daily, rules),
        cv_rmse_loo_pct,
        cv_rmse_loo_reason,
        autocorrelation: autocorrelation(model.fit.as_ref(), model.stats.n),
        extrapolation,
        extrapolation_reason,
        conventions: conventions(model.fit.as_ref().map_or(1, |f| f.p())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::audit::baseline::{self, fit_stats, Variables};
    use crate::plan::Granularity;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    /// eemeter's definitions, written out as eemeter's `ModelMetrics` documents them: r2 the squared
    /// Pearson correlation of observed and predicted; CV(RMSE) sqrt(SSE / n) / mean(observed); the
    /// autocorrelation of the residuals as pandas' `Series.autocorr(1)` (the Pearson correlation of the
    /// pairs (e_i, e_(i+1))); n' = n (1 - rho) / (1 + rho) unclamped.
    fn pearson(a: &[f64], b: &[f64]) -> f64 {
        let n = a.len() as f64;
        let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
        let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
        let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
        let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
        cov / (va * vb).sqrt()
    }

    #[test]
    fn eemeter_metric_vector_side_by_side_with_ours() {
        let observed = [1.0, 3.0, 4.0, 1.0, 6.0];
        let predicted = [2.0, 3.0, 3.0, 2.0, 4.0];
        let e: Vec<f64> = observed
            .iter()
            .zip(&predicted)
            .map(|(o, p)| o - p)
            .collect();
        let n = observed.len();
        let mean = observed.iter().sum::<f64>() / n as f64;
        let sse: f64 = e.iter().map(|v| v * v).sum();

        // eemeter's figures, as published.
        let r2_eemeter = pearson(&observed, &predicted).powi(2);
        let cv_eemeter = (sse / n as f64).sqrt() / mean;
        let rho_eemeter = pearson(&e[..n - 1], &e[1..]);
        assert!(close(r2_eemeter, 0.972, 5e-4), "{r2_eemeter}");
        assert!(close(cv_eemeter, 0.394, 5e-4), "{cv_eemeter}");
        assert!(close(rho_eemeter, -0.674, 5e-4), "{rho_eemeter}");
        // eemeter's n' with that rho exceeds n five times over: the case our n' clamps.
        let n_eff_eemeter = n as f64 * (1.0 - rho_eemeter) / (1.0 + rho_eemeter);
        assert!(close(n_eff_eemeter, 25.694, 5e-4), "{n_eff_eemeter}");

        // Ours on the same vector, with p = 2 (a line): e = [-1, 0, 1, -1, 2], SSE 7, SST 18.
        let ours = fit_stats(&observed, &predicted, 2);
        assert!(close(ours.r2.unwrap(), 1.0 - 7.0 / 18.0, 1e-12)); // 0.6111
        assert!(close(
            ours.cv_rmse_pct.unwrap(),
            100.0 * (7.0f64 / 3.0).sqrt() / 3.0,
            1e-9
        )); // 50.92 %
        assert!(close(
            ours.nmbe_pct.unwrap(),
            100.0 * 1.0 / (3.0 * 3.0),
            1e-9
        )); // 11.11 %
            // Our CV(RMSE) with eemeter's denominator n is eemeter's figure: the difference is the convention.
        let ours_n = fit_stats(&observed, &predicted, 0);
        assert!(close(
            ours_n.cv_rmse_pct.unwrap() / 100.0,
            cv_eemeter,
            1e-12
        ));
        // Our rho: (0 + 0 - 1 - 2) / 7.
        let rho = regression::lag1_autocorrelation(&e).unwrap();
        assert!(close(rho, -3.0 / 7.0, 1e-12), "{rho}");
        let ne = regression::effective_n(n, rho);
        assert!(close(
            ne.formula.unwrap(),
            5.0 * (10.0 / 7.0) / (4.0 / 7.0),
            1e-9
        )); // 12.5
        assert_eq!(ne.used, Some(5.0));
        assert!(ne.clamped);
        // eemeter's rho through our clamp gives n as well.
        let ne = regression::effective_n(n, rho_eemeter);
        assert!(ne.clamped && ne.used == Some(5.0));
    }

    #[test]
    fn effective_n_follows_domain_example_9_and_is_undefined_at_rho_one() {
        // DOMAIN.md example 9: rho 0.263543 over n = 12 -> n' 6.994206.
        let ne = regression::effective_n(12, 0.263543);
        assert!(close(ne.used.unwrap(), 6.994206, 1e-5), "{ne:?}");
        assert!(!ne.clamped);
        let ne = regression::effective_n(12, 1.0);
        assert_eq!(ne.used, None);
        let ne = regression::effective_n(12, 0.0);
        assert_eq!((ne.used, ne.clamped), (Some(12.0), false));
        let ne = regression::effective_n(12, -1.0);
        assert_eq!((ne.formula, ne.used, ne.clamped), (None, Some(12.0), true));
    }

    /// A second implementation: refit without each bucket and predict it.
    fn loo_by_refitting(x: &[Vec<f64>], y: &[f64]) -> f64 {
        let n = y.len();
        let mut press = 0.0;
        for i in 0..n {
            let cols: Vec<Vec<f64>> = (0..x.len())
                .map(|j| (0..n).filter(|&k| k != i).map(|k| x[j][k]).collect())
                .collect();
            let yy: Vec<f64> = (0..n).filter(|&k| k != i).map(|k| y[k]).collect();
            let refs: Vec<&[f64]> = cols.iter().map(|c| c.as_slice()).collect();
            let f = regression::ols(&refs, &yy).unwrap();
            let xi: Vec<f64> = x.iter().map(|c| c[i]).collect();
            press += (y[i] - f.predict(&xi, 1.0)).powi(2);
        }
        100.0 * (press / n as f64).sqrt() / (y.iter().sum::<f64>() / n as f64)
    }

    #[test]
    fn leave_one_out_matches_refitting_on_domain_example_9() {
        let a = [
            410., 380., 450., 470., 500., 520., 510., 530., 490., 470., 440., 420.,
        ];
        let b = [
            200., 210., 190., 230., 220., 250., 240., 260., 230., 210., 220., 200.,
        ];
        let hdd = [
            520., 430., 300., 150., 40., 0., 0., 0., 30., 160., 330., 480.,
        ];
        let y = [
            30510., 28490., 30060., 29600., 29100., 30610., 29980., 31410., 29850., 29700., 30250.,
            31050.,
        ];
        let f = regression::ols(&[&a, &b, &hdd], &y).unwrap();
        let loo = cv_rmse_loo_pct(&[&a, &b, &hdd], &y, &f.residuals).unwrap();
        let cols = vec![a.to_vec(), b.to_vec(), hdd.to_vec()];
        let want = loo_by_refitting(&cols, &y);
        assert!(close(loo, want, 1e-9 * want), "{loo} vs {want}");
        // Predicting unseen buckets is harder than fitting them: above the fitted 1.125443 %.
        assert!(loo > f.cv_rmse_pct.unwrap(), "{loo}");
        // And through diagnose, with the chosen model of `baseline::fit`.
        let vars = Variables::new(&["A".into(), "B".into()], &["hdd".into()]);
        let rows: Vec<Vec<f64>> = (0..12)
            .map(|i| vec![a[i] + 0.8 * b[i], a[i], b[i], hdd[i]])
            .collect();
        let m = baseline::fit(&vars, &rows, &y, 0.0, 0.0, Granularity::Month);
        assert_eq!(m.variables, vec!["A", "B", "hdd"]);
        let d = diagnose(&m, &rows, &y, &[], None, &SufficiencyRules::default());
        assert!(close(d.cv_rmse_loo_pct.unwrap(), want, 1e-9 * want));
        assert!(close(d.autocorrelation.rho.unwrap(), 0.263543, 1e-6));
        assert!(close(d.autocorrelation.n_eff.unwrap(), 6.994206, 1e-5));
        assert_eq!(d.conventions.p, 4);
        assert_eq!(
            d.extrapolation_reason.as_deref(),
            Some("no reporting period")
        );
    }

    #[test]
    fn leave_one_out_is_null_with_a_reason_when_a_bucket_decides_alone() {
        // The last bucket is the only one where x2 is not 0: without it x2 has no coefficient.
        let x1 = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let x2 = [0.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        let y = [3.0, 5.1, 6.9, 9.2, 11.0, 20.0];
        let f = regression::ols(&[&x1, &x2], &y).unwrap();
        let e = cv_rmse_loo_pct(&[&x1, &x2], &y, &f.residuals).unwrap_err();
        assert!(e.contains("bucket 6") && e.contains("leverage 1"), "{e}");
        let e = cv_rmse_loo_pct(&[&x1[..3]], &y[..3], &f.residuals[..3]).unwrap_err();
        assert!(e.contains("too few"), "{e}");
    }

    /// Type-7 quartiles by hand: sorted [8, 9, 10, 10, 11, 12, 30]: Q1 at 1.5 -> 9.5, Q3 at 4.5 -> 11.5,
    /// IQR 2, fences 3.5 and 17.5.
    #[test]
    fn sufficiency_counts_coverage_gaps_zeros_and_outliers() {
        let mut daily = vec![
            Some(10.0),
            Some(12.0),
            None,
            None,
            None,
            Some(0.0),
            Some(9.0),
            Some(11.0),
            Some(30.0),
            Some(8.0),
            None,
            Some(10.0),
        ];
        let rules = SufficiencyRules::default();
        let s = sufficiency(&daily, &rules);
        assert_eq!((s.days, s.days_with_data), (12, 8));
        assert!(close(s.coverage.unwrap(), 8.0 / 12.0, 1e-12));
        assert_eq!(s.longest_gap_days, 3);
        assert_eq!(s.zero_days, 1);
        assert_eq!(s.outlier_days, Some(1));
        assert!(close(s.outlier_low.unwrap(), 3.5, 1e-12));
        assert!(close(s.outlier_high.unwrap(), 17.5, 1e-12));
        assert!(!s.pass);
        // Coverage 66.7 %, 12.5 % zero days, 12.5 % outlier days fail; a 3-day gap does not.
        assert_eq!(s.failed.len(), 3, "{:?}", s.failed);
        assert!(s.failed[0].starts_with("coverage 66.7 %"), "{:?}", s.failed);
        // Loose rules: everything passes.
        let loose = SufficiencyRules {
            min_coverage: 0.6,
            max_gap_days: 3,
            max_zero_days_share: 0.125,
            max_outlier_days_share: 0.125,
            outlier_iqr_factor: 3.0,
        };
        assert!(sufficiency(&daily, &loose).pass);
        // Too few days to judge outliers: null, and the block does not pass.
        daily.truncate(3);
        let s = sufficiency(&daily, &loose);
        assert_eq!(s.outlier_days, None);
        assert!(!s.pass && s.failed.iter().any(|f| f.contains("to judge outliers")));
        let s = sufficiency(&[], &rules);
        assert_eq!(s.coverage, None);
        assert!(!s.pass);
    }

    #[test]
    fn extrapolation_counts_whole_buckets_outside_the_range() {
        const HDD: [f64; 10] = [0.0, 40.0, 5.0, 30.0, 10.0, 45.0, 20.0, 35.0, 15.0, 25.0];
        let vars = Variables::new(&["production".into()], &["hdd".into()]);
        let base: Vec<Vec<f64>> = (0..10)
            .map(|i| vec![100.0 + 10.0 * i as f64, HDD[i]])
            .collect();
        let y: Vec<f64> = base
            .iter()
            .map(|r| 50.0 + 2.0 * r[0] + 3.0 * r[1] + (r[0] * 7.0) % 3.0)
            .collect();
        let m = baseline::fit(&vars, &base, &y, 0.0, 0.0, Granularity::Day);
        assert_eq!(m.variables, vec!["production", "hdd"]);
        // production 100..190, hdd 0..45
        let rows = [
            vec![95.0, 10.0],
            vec![150.0, 50.0],
            vec![210.0, 60.0],
            vec![500.0, 100.0], // a partial bucket: not judged
        ];
        let rep: Vec<ReportingBucket<'_>> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| ReportingBucket {
                row: r,
                fraction: if i == 3 { 0.5 } else { 1.0 },
                days: if i == 3 { 0.5 } else { 1.0 },
            })
            .collect();
        let x = extrapolation(&m, &base, &rep);
        let p = &x[0];
        assert_eq!((p.baseline_min, p.baseline_max), (100.0, 190.0));
        assert_eq!((p.buckets_checked, p.buckets_unchecked), (3, 1));
        assert_eq!((p.buckets_below, p.buckets_above), (1, 1));
        assert!(close(p.days_outside, 2.0, 1e-12));
        assert_eq!((p.max_below, p.max_above), (Some(5.0), Some(20.0)));
        assert!(close(
            p.max_beyond_pct_of_range.unwrap(),
            100.0 * 20.0 / 90.0,
            1e-9
        ));
        let h = &x[1];
        assert_eq!((h.buckets_below, h.buckets_above), (0, 2));
        assert_eq!(h.max_above, Some(15.0));
        assert!(close(h.days_outside, 2.0, 1e-12));
    }

    #[test]
    fn the_ratio_method_has_no_cross_validation_and_no_rho_and_says_why() {
        let vars = Variables::new(&["production".into()], &[]);
        let m = baseline::fit(&vars, &[], &[], 100.0, 400.0, Granularity::Month);
        let d = diagnose(
            &m,
            &[],
            &[],
            &[Some(1.0)],
            Some(&[]),
            &SufficiencyRules::default(),
        );
        assert_eq!(d.cv_rmse_loo_pct, None);
        assert!(d.cv_rmse_loo_reason.unwrap().contains("ratio method"));
        assert_eq!(d.autocorrelation.n_eff, None);
        assert!(d.autocorrelation.note.unwrap().contains("ratio method"));
        assert!(d.extrapolation.is_empty());
        assert!(d
            .extrapolation_reason
            .unwrap()
            .contains("no baseline bucket"));
        assert_eq!(d.conventions.p, 1);
    }
}
