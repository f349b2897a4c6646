//! Baseline models of consumption against production: OLS regression `E = a + b*P` with the fit statistics of
//! ASHRAE Guideline 14, and the ratio method `E = SEC_b * P` when the data cannot support a regression.

use crate::audit::regression::{self, Candidate, OlsFit, Tried};
use crate::plan::Granularity;

/// Fewer complete buckets than this and no regression is attempted.
pub const MIN_REGRESSION_BUCKETS: usize = 6;

/// ASHRAE Guideline 14 calibration thresholds (CV(RMSE) %, |NMBE| %) for a model granularity.
/// The guideline defines monthly (15 %, 5 %) and hourly (30 %, 10 %) criteria; daily and weekly models use
/// the monthly ones (the stricter reading, as IPMVP practice does for billing-period-like data).
pub fn ashrae14_thresholds(g: Granularity) -> (f64, f64) {
    match g {
        Granularity::Hour => (30.0, 10.0),
        Granularity::Day | Granularity::Week | Granularity::Month => (15.0, 5.0),
    }
}

/// Fit statistics of a model over n buckets with p parameters (e = actual - predicted).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitStats {
    pub n: usize,
    pub r2: Option<f64>,
    /// 100 * sqrt(SSE / (n - p)) / mean(actual)
    pub cv_rmse_pct: Option<f64>,
    /// 100 * sum(e) / ((n - p) * mean(actual))
    pub nmbe_pct: Option<f64>,
}

/// Statistics of predictions `pred` against `actual` for a model with `p` parameters.
pub fn fit_stats(actual: &[f64], pred: &[f64], p: usize) -> FitStats {
    let n = actual.len();
    if n == 0 {
        return FitStats {
            n,
            r2: None,
            cv_rmse_pct: None,
            nmbe_pct: None,
        };
    }
    let mean = actual.iter().sum::<f64>() / n as f64;
    let mut sse = 0.0;
    let mut se = 0.0;
    let mut sst = 0.0;
    for (a, f) in actual.iter().zip(pred) {
        let e = a - f;
        sse += e * e;
        se += e;
        sst += (a - mean) * (a - mean);
    }
    let dof = n.saturating_sub(p);
    let (cv, nmbe) = if dof > 0 && mean != 0.0 {
        (
            Some(100.0 * (sse / dof as f64).sqrt() / mean),
            Some(100.0 * se / (dof as f64 * mean)),
        )
    } else {
        (None, None)
    };
    FitStats {
        n,
        r2: if sst > 0.0 {
            Some(1.0 - sse / sst)
        } else {
            None
        },
        cv_rmse_pct: cv,
        nmbe_pct: nmbe,
    }
}

/// The result of ordinary least squares `y = a + b*x`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ols {
    pub intercept: f64,
    pub slope: f64,
}

/// OLS of y on x; None when x does not vary (relative spread below 1e-9) or fewer than two points.
pub fn ols(x: &[f64], y: &[f64]) -> Option<Ols> {
    let n = x.len();
    if n < 2 || y.len() != n {
        return None;
    }
    let mx = x.iter().sum::<f64>() / n as f64;
    let my = y.iter().sum::<f64>() / n as f64;
    let mut sxx = 0.0;
    let mut sxy = 0.0;
    for (a, b) in x.iter().zip(y) {
        sxx += (a - mx) * (a - mx);
        sxy += (a - mx) * (b - my);
    }
    let scale = x.iter().map(|v| v * v).sum::<f64>().max(f64::MIN_POSITIVE);
    if sxx <= 1e-9 * scale {
        return None;
    }
    let slope = sxy / sxx;
    Some(Ols {
        intercept: my - slope * mx,
        slope,
    })
}

/// Which model a baseline uses.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    Regression,
    /// With the reason no regression was used.
    Ratio(String),
}

/// The regression variables of an audit, as columns of one row per bucket: `production` first, then each
/// product's quantity (only with two or more products), then each driver.
#[derive(Debug, Clone, PartialEq)]
pub struct Variables {
    pub names: Vec<String>,
    /// Number of product columns after `production` (0 with a single product).
    pub products: usize,
    /// Number of driver columns after the products.
    pub drivers: usize,
}

impl Variables {
    /// `production`, the products' names when there are two or more, the drivers' names.
    pub fn new(products: &[String], drivers: &[String]) -> Variables {
        let products: Vec<String> = if products.len() >= 2 {
            products.to_vec()
        } else {
            Vec::new()
        };
        let names = std::iter::once("production".to_string())
            .chain(products.iter().cloned())
            .chain(drivers.iter().cloned())
            .collect();
        Variables {
            names,
            products: products.len(),
            drivers: drivers.len(),
        }
    }

    /// The candidate models of DOMAIN.md "Selection", in order, as column indices: (1) production alone;
    /// (2) the products' quantities (two or more products); (3) production and every driver; (4) the
    /// products' quantities and every driver.
    pub fn candidates(&self) -> Vec<Vec<usize>> {
        let products: Vec<usize> = (1..=self.products).collect();
        let drivers: Vec<usize> = (1 + self.products..1 + self.products + self.drivers).collect();
        let mut out = vec![vec![0]];
        if self.products >= 2 {
            out.push(products.clone());
        }
        if self.drivers > 0 {
            out.push(std::iter::once(0).chain(drivers.iter().copied()).collect());
            if self.products >= 2 {
                out.push(products.into_iter().chain(drivers).collect());
            }
        }
        out
    }
}

/// A fitted baseline model: `E = b0 * fraction + sum_j b_j x_j` per bucket, where `fraction` is the share of
/// a full bucket the bucket covers and `x_j` the bucket's value of each of the model's variables.
#[derive(Debug, Clone, PartialEq)]
pub struct Baseline {
    pub method: Method,
    /// The model's variables (names) and their columns in a bucket's row of [`Variables`].
    pub variables: Vec<String>,
    pub columns: Vec<usize>,
    /// `b0`, then one per variable. With the ratio method: 0 and the baseline's per-unit figure.
    pub coefficients: Vec<f64>,
    pub stats: FitStats,
    pub meets_ashrae14: bool,
    /// The chosen regression (p-values, F test, residuals); None with the ratio method.
    pub fit: Option<OlsFit>,
    /// Every regression candidate tried, in order.
    pub candidates: Vec<Tried>,
}

impl Baseline {
    pub fn intercept(&self) -> f64 {
        self.coefficients.first().copied().unwrap_or(0.0)
    }

    /// The coefficient of a single-variable model.
    pub fn slope(&self) -> Option<f64> {
        match self.coefficients.as_slice() {
            [_, b] => Some(*b),
            _ => None,
        }
    }

    /// The model's value for a bucket whose row of variables is `row`, covering `fraction` of a full bucket.
    pub fn predict(&self, row: &[f64], fraction: f64) -> f64 {
        self.intercept() * fraction
            + self
                .columns
                .iter()
                .zip(self.coefficients.iter().skip(1))
                .map(|(&c, b)| b * row.get(c).copied().unwrap_or(0.0))
                .sum::<f64>()
    }
}

/// Fit the baseline on complete buckets (`rows` of [`Variables`], `y` consumption), with the period totals
/// for the ratio method: the valid candidate with the highest adjusted R2 (DOMAIN.md), or the ratio method
/// saying why.
pub fn fit(
    vars: &Variables,
    rows: &[Vec<f64>],
    y: &[f64],
    total_production: f64,
    total_consumption: f64,
    g: Granularity,
) -> Baseline {
    let (cv_max, nmbe_max) = ashrae14_thresholds(g);
    let meets = |s: &FitStats| match (s.cv_rmse_pct, s.nmbe_pct) {
        (Some(cv), Some(nmbe)) => cv <= cv_max && nmbe.abs() <= nmbe_max,
        _ => false,
    };
    let column = |c: usize| -> Vec<f64> {
        rows.iter()
            .map(|r| r.get(c).copied().unwrap_or(0.0))
            .collect()
    };
    let cand_cols = vars.candidates();
    let candidates: Vec<Candidate> = cand_cols
        .iter()
        .map(|cols| Candidate {
            variables: cols.iter().map(|&c| vars.names[c].clone()).collect(),
            columns: cols.iter().map(|&c| column(c)).collect(),
        })
        .collect();
    let selection = regression::select(&candidates, y);
    let production = column(0);
    let reason = if y.len() < MIN_REGRESSION_BUCKETS {
        format!(
            "only {} complete {} buckets in the baseline (a regression needs at least {})",
            y.len(),
            g.as_str(),
            MIN_REGRESSION_BUCKETS
        )
    } else if cand_cols.len() == 1 && ols(&production, y).is_none() {
        "production does not vary between baseline buckets".to_string()
    } else if let Some((i, chosen)) = selection
        .chosen
        .and_then(|i| selection.tried[i].fit.clone().map(|f| (i, f)))
    {
        let pred: Vec<f64> = rows
            .iter()
            .map(|r| {
                let x: Vec<f64> = cand_cols[i].iter().map(|&c| r[c]).collect();
                chosen.predict(&x, 1.0)
            })
            .collect();
        let stats = fit_stats(y, &pred, chosen.p());
        return Baseline {
            method: Method::Regression,
            variables: selection.tried[i].variables.clone(),
            columns: cand_cols[i].clone(),
            coefficients: chosen.coefficients.clone(),
            meets_ashrae14: meets(&stats),
            stats,
            fit: Some(chosen),
            candidates: selection.tried,
        };
    } else {
        selection
            .reason()
            .unwrap_or_else(|| "no valid regression model".to_string())
    };
    let sec = if total_production > 0.0 {
        total_consumption / total_production
    } else {
        0.0
    };
    let pred: Vec<f64> = production.iter().map(|p| sec * p).collect();
    // R2 is a regression's statistic: over a ratio model it can be negative and reads as a fit; null.
    let stats = FitStats {
        r2: None,
        ..fit_stats(y, &pred, 1)
    };
    let reason = if total_production > 0.0 {
        reason
    } else {
        format!("{reason}; no baseline production, so no per-unit baseline either")
    };
    Baseline {
        method: Method::Ratio(reason),
        variables: vec!["production".to_string()],
        columns: vec![0],
        coefficients: vec![0.0, sec],
        // The ratio method is the fallback when no regression is valid: saying "meets ASHRAE 14" beside
        // "valid: no" would read as a calibrated model. Its CV(RMSE) and NMBE stay in the stats.
        meets_ashrae14: false,
        stats,
        fit: None,
        candidates: selection.tried,
    }
}

/// Reporting-period figures of a model: expected consumption, savings and the CUSUM per bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Savings {
    pub expected: f64,
    /// expected - actual
    pub savings: f64,
    /// 100 * savings / expected; None when expected is zero.
    pub savings_pct: Option<f64>,
    /// S_k = sum over i <= k of (predicted_i - actual_i)
    pub cusum: Vec<f64>,
}

/// Savings of the reporting buckets: `(row of variables, fraction of a full bucket, actual)` each.
pub fn savings(model: &Baseline, buckets: &[(Vec<f64>, f64, f64)]) -> Savings {
    let mut expected = 0.0;
    let mut actual = 0.0;
    let mut s = 0.0;
    let mut cusum = Vec::with_capacity(buckets.len());
    for (row, frac, a) in buckets {
        let e = model.predict(row, *frac);
        expected += e;
        actual += a;
        s += e - a;
        cusum.push(s);
    }
    let savings = expected - actual;
    Savings {
        expected,
        savings,
        savings_pct: if expected != 0.0 {
            Some(100.0 * savings / expected)
        } else {
            None
        },
        cusum,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn one(x: &[f64]) -> Vec<Vec<f64>> {
        x.iter().map(|v| vec![*v]).collect()
    }

    fn production_only() -> Variables {
        Variables::new(&["production".to_string()], &[])
    }

    #[test]
    fn ols_recovers_an_exact_line() {
        let x = [10.0, 20.0, 30.0, 45.0, 50.0, 70.0];
        let y: Vec<f64> = x.iter().map(|p| 100.0 + 3.5 * p).collect();
        let f = ols(&x, &y).unwrap();
        assert!((f.intercept - 100.0).abs() < 1e-9);
        assert!((f.slope - 3.5).abs() < 1e-12);
        let b = fit(&production_only(), &one(&x), &y, 0.0, 0.0, Granularity::Day);
        assert_eq!(b.method, Method::Regression);
        assert!((b.stats.r2.unwrap() - 1.0).abs() < 1e-12);
        assert!(b.stats.cv_rmse_pct.unwrap().abs() < 1e-9);
        assert!(b.meets_ashrae14);
    }

    #[test]
    fn ashrae14_statistics_by_hand() {
        // actual 10, 12, 14, 20; predicted 11, 12, 13, 18: e = -1, 0, 1, 2; SSE 6; sum 2; mean 14; n-p = 2.
        let s = fit_stats(&[10.0, 12.0, 14.0, 20.0], &[11.0, 12.0, 13.0, 18.0], 2);
        assert!((s.cv_rmse_pct.unwrap() - 100.0 * 3f64.sqrt() / 14.0).abs() < 1e-12);
        assert!((s.nmbe_pct.unwrap() - 100.0 * 2.0 / (2.0 * 14.0)).abs() < 1e-12);
        // SST = 16 + 4 + 0 + 36 = 56
        assert!((s.r2.unwrap() - (1.0 - 6.0 / 56.0)).abs() < 1e-12);
    }

    #[test]
    fn ratio_when_too_few_buckets_or_flat_production() {
        let b = fit(
            &production_only(),
            &one(&[1.0, 2.0]),
            &[3.0, 4.0],
            60_000.0,
            2_400_000.0,
            Granularity::Month,
        );
        match &b.method {
            Method::Ratio(r) => assert!(r.contains("only 2 complete month buckets"), "{r}"),
            m => panic!("{m:?}"),
        }
        assert!((b.slope().unwrap() - 40.0).abs() < 1e-12);
        let x = [5.0; 8];
        let y = [10.0, 11.0, 9.0, 10.0, 10.5, 9.5, 10.0, 10.0];
        let b = fit(
            &production_only(),
            &one(&x),
            &y,
            40.0,
            80.0,
            Granularity::Day,
        );
        match &b.method {
            Method::Ratio(r) => assert!(r.contains("does not vary"), "{r}"),
            m => panic!("{m:?}"),
        }
    }

    #[test]
    fn domain_example_4_ratio_savings() {
        // Base 2 400 tce / 60 000 t = 40 kgce/t; reporting 2 442 tce over 66 000 t.
        let b = fit(
            &production_only(),
            &[],
            &[],
            60_000.0,
            2_400_000.0,
            Granularity::Month,
        );
        assert!((b.slope().unwrap() - 40.0).abs() < 1e-12);
        let s = savings(&b, &[(vec![66_000.0], 1.0, 2_442_000.0)]);
        assert!((s.expected - 2_640_000.0).abs() < 1e-6);
        assert!((s.savings - 198_000.0).abs() < 1e-6);
        assert!((s.savings_pct.unwrap() - 7.5).abs() < 1e-9);
    }

    #[test]
    fn cusum_accumulates_expected_minus_actual() {
        let b = Baseline {
            method: Method::Regression,
            variables: vec!["production".to_string()],
            columns: vec![0],
            coefficients: vec![10.0, 2.0],
            stats: fit_stats(&[], &[], 2),
            meets_ashrae14: true,
            fit: None,
            candidates: Vec::new(),
        };
        let s = savings(
            &b,
            &[
                (vec![5.0], 1.0, 18.0),
                (vec![5.0], 0.5, 16.0),
                (vec![0.0], 1.0, 10.0),
            ],
        );
        // expected 20, 15, 10; e - a = 2, -1, 0
        assert_eq!(s.cusum, vec![2.0, 1.0, 1.0]);
        assert!((s.expected - 45.0).abs() < 1e-12);
        assert!((s.savings - 1.0).abs() < 1e-12);
    }
}
