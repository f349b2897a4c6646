//! Baseline regression with several variables (ISO 50006, GB/T 36713-2018): ordinary least squares with the
//! statistics an M&V reviewer asks for (coefficients' p-values, the model's F test, adjusted R2), the validity
//! rules after the US DOE EnPI tool, the choice among candidate models, and the fractional savings
//! uncertainty of ASHRAE Guideline 14-2014 Annex B. DOMAIN.md "Regression with several variables" gives
//! every formula; its example 9 is the test.

use statrs::distribution::{ContinuousCDF, FisherSnedecor, StudentsT};

/// A model is valid only with at least this many buckets per coefficient (n >= 3p).
pub const MIN_BUCKETS_PER_COEFFICIENT: usize = 3;
/// Largest model p-value (F test) of a valid model.
pub const MAX_MODEL_P_VALUE: f64 = 0.10;
/// Largest p-value of any variable of a valid model (the intercept's is not judged).
pub const MAX_VARIABLE_P_VALUE: f64 = 0.20;
/// At least one variable of a valid model has a p-value below this.
pub const STRONG_VARIABLE_P_VALUE: f64 = 0.10;
/// Smallest R2 of a valid model.
pub const MIN_R2: f64 = 0.5;

/// An ordinary least-squares fit `y = b0 + sum_j b_j x_j`.
#[derive(Debug, Clone, PartialEq)]
pub struct OlsFit {
    /// Number of observations (buckets).
    pub n: usize,
    /// `b0` first, then one per variable in the order given.
    pub coefficients: Vec<f64>,
    /// Two-sided p-values of the coefficients' t statistics, same order; None without degrees of freedom.
    pub p_values: Vec<Option<f64>>,
    /// p-value of the model's F test; None without degrees of freedom or with no variable.
    pub p_value: Option<f64>,
    pub r2: Option<f64>,
    pub r2_adj: Option<f64>,
    /// 100 * sqrt(SSE / (n - p)) / mean(y)
    pub cv_rmse_pct: Option<f64>,
    /// 100 * sum(e) / ((n - p) * mean(y))
    pub nmbe_pct: Option<f64>,
    /// `y - Xb`, in the order of the observations.
    pub residuals: Vec<f64>,
}

impl OlsFit {
    /// Number of coefficients including the intercept.
    pub fn p(&self) -> usize {
        self.coefficients.len()
    }

    /// Degrees of freedom of the residuals, `n - p`.
    pub fn dof(&self) -> usize {
        self.n.saturating_sub(self.p())
    }

    /// The model's value for variables `x` (one per variable) and an intercept weight (1 for a full bucket,
    /// the covered share of a bucket otherwise).
    pub fn predict(&self, x: &[f64], intercept_weight: f64) -> f64 {
        let b0 = self.coefficients.first().copied().unwrap_or(0.0);
        b0 * intercept_weight
            + self
                .coefficients
                .iter()
                .skip(1)
                .zip(x)
                .map(|(b, v)| b * v)
                .sum::<f64>()
    }

    /// Why this fit is not a valid baseline model (DOMAIN.md), or None when it is.
    pub fn invalid_because(&self) -> Option<String> {
        let p = self.p();
        if self.n < MIN_BUCKETS_PER_COEFFICIENT * p {
            return Some(format!(
                "{} buckets for {p} coefficients (at least {} needed)",
                self.n,
                MIN_BUCKETS_PER_COEFFICIENT * p
            ));
        }
        match self.p_value {
            Some(pv) if pv < MAX_MODEL_P_VALUE => {}
            Some(pv) => {
                return Some(format!(
                    "model p-value {pv:.4} is not below {MAX_MODEL_P_VALUE}"
                ))
            }
            None => return Some("model p-value undefined".to_string()),
        }
        let vars: Vec<Option<f64>> = self.p_values.iter().skip(1).copied().collect();
        if vars.iter().any(|v| v.is_none()) {
            return Some("a variable's p-value is undefined".to_string());
        }
        let vars: Vec<f64> = vars.into_iter().flatten().collect();
        if let Some(worst) = vars.iter().copied().reduce(f64::max) {
            if worst >= MAX_VARIABLE_P_VALUE {
                return Some(format!(
                    "a variable's p-value {worst:.4} is not below {MAX_VARIABLE_P_VALUE}"
                ));
            }
        }
        if !vars.iter().any(|v| *v < STRONG_VARIABLE_P_VALUE) {
            return Some(format!(
                "no variable's p-value is below {STRONG_VARIABLE_P_VALUE}"
            ));
        }
        match self.r2 {
            Some(r2) if r2 >= MIN_R2 => None,
            Some(r2) => Some(format!("R2 {r2:.4} is below {MIN_R2}")),
            None => Some("R2 undefined (consumption does not vary)".to_string()),
        }
    }

    /// Whether this fit is a valid baseline model.
    pub fn valid(&self) -> bool {
        self.invalid_because().is_none()
    }

    /// Lag-1 autocorrelation of the residuals in time order, `sum_{i>=2} e_i e_{i-1} / sum e_i^2`.
    pub fn residual_autocorrelation(&self) -> Option<f64> {
        lag1_autocorrelation(&self.residuals)
    }
}

/// Lag-1 autocorrelation of residuals `e` in time order, `sum_{i>=2} e_i e_{i-1} / sum e_i^2` (ASHRAE
/// Guideline 14 Annex B; not demeaned, unlike eemeter's); None when every residual is zero.
pub fn lag1_autocorrelation(e: &[f64]) -> Option<f64> {
    let sse: f64 = e.iter().map(|v| v * v).sum();
    if sse <= 0.0 {
        return None;
    }
    let lag: f64 = e.windows(2).map(|w| w[0] * w[1]).sum();
    Some(lag / sse)
}

/// OLS of `y` on the columns `x` (each as long as `y`) with an intercept. None when there are fewer
/// observations than coefficients, a column has the wrong length, a value is not finite, or the columns
/// are collinear (X^T X singular).
pub fn ols(x: &[&[f64]], y: &[f64]) -> Option<OlsFit> {
    let n = y.len();
    let p = x.len() + 1;
    if n < p || x.iter().any(|c| c.len() != n) {
        return None;
    }
    if y.iter()
        .chain(x.iter().flat_map(|c| c.iter()))
        .any(|v| !v.is_finite())
    {
        return None;
    }
    // The design matrix, one row per observation: 1 (the intercept), then the variables.
    let design: Vec<Vec<f64>> = (0..n)
        .map(|i| std::iter::once(1.0).chain(x.iter().map(|c| c[i])).collect())
        .collect();
    // Normal equations on columns scaled to unit size, so that production in tonnes and degree-days in
    // hundreds meet a well-conditioned matrix; the scale is undone on the coefficients.
    let scale: Vec<f64> = (0..p)
        .map(|j| {
            let s = design.iter().map(|r| r[j].powi(2)).sum::<f64>().sqrt();
            if s > 0.0 {
                s
            } else {
                1.0
            }
        })
        .collect();
    let mut xtx = vec![vec![0.0; p]; p];
    let mut xty = vec![0.0; p];
    for (row, yi) in design.iter().zip(y) {
        let r: Vec<f64> = row.iter().zip(&scale).map(|(v, s)| v / s).collect();
        for a in 0..p {
            xty[a] += r[a] * yi;
            for b in 0..p {
                xtx[a][b] += r[a] * r[b];
            }
        }
    }
    let inv = invert(&xtx)?;
    let coefficients: Vec<f64> = (0..p)
        .map(|a| (0..p).map(|b| inv[a][b] * xty[b]).sum::<f64>() / scale[a])
        .collect();
    let residuals: Vec<f64> = design
        .iter()
        .zip(y)
        .map(|(row, yi)| {
            yi - row
                .iter()
                .zip(&coefficients)
                .map(|(v, b)| v * b)
                .sum::<f64>()
        })
        .collect();
    let mean = y.iter().sum::<f64>() / n as f64;
    let sse: f64 = residuals.iter().map(|e| e * e).sum();
    let sum_e: f64 = residuals.iter().sum();
    let sst: f64 = y.iter().map(|v| (v - mean).powi(2)).sum();
    let dof = n - p;
    let r2 = (sst > 0.0).then(|| 1.0 - sse / sst);
    let r2_adj = r2
        .filter(|_| dof > 0)
        .map(|r2| 1.0 - (1.0 - r2) * (n as f64 - 1.0) / dof as f64);
    let s2 = (dof > 0).then(|| sse / dof as f64);
    let t_dist = s2.and_then(|_| StudentsT::new(0.0, 1.0, dof as f64).ok());
    let p_values = (0..p)
        .map(|j| {
            let (s2, t_dist) = (s2?, t_dist.as_ref()?);
            let se = (s2 * inv[j][j]).sqrt() / scale[j];
            if se > 0.0 {
                let t = coefficients[j] / se;
                // The survival function keeps tiny p-values (1 - cdf rounds them to 0).
                Some((2.0 * t_dist.sf(t.abs())).clamp(0.0, 1.0))
            } else {
                // A perfect fit: the coefficient is certain.
                Some(0.0)
            }
        })
        .collect();
    let p_value = match s2 {
        Some(s2) if p > 1 && sst > 0.0 => {
            if s2 > 0.0 {
                let f = ((sst - sse) / (p - 1) as f64) / s2;
                FisherSnedecor::new((p - 1) as f64, dof as f64)
                    .ok()
                    .map(|d| d.sf(f.max(0.0)).clamp(0.0, 1.0))
            } else {
                Some(0.0)
            }
        }
        _ => None,
    };
    let (cv_rmse_pct, nmbe_pct) = match s2 {
        Some(s2) if mean != 0.0 => (
            Some(100.0 * s2.sqrt() / mean),
            Some(100.0 * sum_e / (dof as f64 * mean)),
        ),
        _ => (None, None),
    };
    Some(OlsFit {
        n,
        coefficients,
        p_values,
        p_value,
        r2,
        r2_adj,
        cv_rmse_pct,
        nmbe_pct,
        residuals,
    })
}

/// The inverse of a small square matrix by Gauss-Jordan elimination with partial pivoting; None when it
/// is singular (a pivot below 1e-12 of the largest diagonal entry: the matrix is scaled beforehand).
fn invert(m: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let p = m.len();
    let mut a: Vec<Vec<f64>> = m.to_vec();
    let mut inv: Vec<Vec<f64>> = (0..p)
        .map(|i| (0..p).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
        .collect();
    let tiny = 1e-12
        * (0..p)
            .map(|i| a[i][i].abs())
            .fold(0.0, f64::max)
            .max(f64::MIN_POSITIVE);
    for col in 0..p {
        let pivot = (col..p).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() <= tiny {
            return None;
        }
        a.swap(col, pivot);
        inv.swap(col, pivot);
        let d = a[col][col];
        for j in 0..p {
            a[col][j] /= d;
            inv[col][j] /= d;
        }
        for i in 0..p {
            if i != col {
                let f = a[i][col];
                if f != 0.0 {
                    for j in 0..p {
                        a[i][j] -= f * a[col][j];
                        inv[i][j] -= f * inv[col][j];
                    }
                }
            }
        }
    }
    Some(inv)
}

/// A candidate model: the names of its variables and their columns over the baseline buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub variables: Vec<String>,
    pub columns: Vec<Vec<f64>>,
}

/// A candidate with its fit (None when it cannot be fitted: collinear or too few buckets).
#[derive(Debug, Clone, PartialEq)]
pub struct Tried {
    pub variables: Vec<String>,
    pub fit: Option<OlsFit>,
    /// Why it is not valid; None when it is.
    pub invalid_because: Option<String>,
}

impl Tried {
    pub fn valid(&self) -> bool {
        self.fit.is_some() && self.invalid_because.is_none()
    }
}

/// The outcome of model selection: every candidate tried, in order, and the index of the one chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    pub tried: Vec<Tried>,
    /// Index into `tried` of the valid candidate with the highest adjusted R2 (the earlier on a tie).
    pub chosen: Option<usize>,
}

impl Selection {
    pub fn chosen(&self) -> Option<&Tried> {
        self.chosen.and_then(|i| self.tried.get(i))
    }

    /// Why no candidate was chosen (for the ratio method), naming each candidate's failure.
    pub fn reason(&self) -> Option<String> {
        if self.chosen.is_some() {
            return None;
        }
        if self.tried.is_empty() {
            return Some("no regression candidate (no variable)".to_string());
        }
        let parts: Vec<String> = self
            .tried
            .iter()
            .map(|t| {
                let why = t
                    .invalid_because
                    .clone()
                    .unwrap_or_else(|| "not valid".to_string());
                format!("{}: {why}", t.variables.join(" + "))
            })
            .collect();
        Some(format!("no valid regression model ({})", parts.join("; ")))
    }
}

/// Fit every candidate on `y` and choose the valid one with the highest adjusted R2.
pub fn select(candidates: &[Candidate], y: &[f64]) -> Selection {
    let tried: Vec<Tried> = candidates
        .iter()
        .map(|c| {
            let cols: Vec<&[f64]> = c.columns.iter().map(|v| v.as_slice()).collect();
            let fit = ols(&cols, y);
            let invalid_because = match &fit {
                None => Some(if y.len() < c.columns.len() + 1 {
                    format!(
                        "{} buckets for {} coefficients",
                        y.len(),
                        c.columns.len() + 1
                    )
                } else {
                    "the variables are collinear or do not vary".to_string()
                }),
                Some(f) => f.invalid_because(),
            };
            Tried {
                variables: c.variables.clone(),
                fit,
                invalid_because,
            }
        })
        .collect();
    let mut chosen: Option<usize> = None;
    for (i, t) in tried.iter().enumerate() {
        if !t.valid() {
            continue;
        }
        let r2a = t.fit.as_ref().and_then(|f| f.r2_adj).unwrap_or(f64::MIN);
        let better = match chosen.and_then(|c| tried[c].fit.as_ref()) {
            None => true,
            Some(best) => r2a > best.r2_adj.unwrap_or(f64::MIN),
        };
        if better {
            chosen = Some(i);
        }
    }
    Selection { tried, chosen }
}

/// The autocorrelation-corrected number of observations of ASHRAE Guideline 14 Annex B (and eemeter):
/// `n' = n (1 - rho) / (1 + rho)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EffectiveN {
    /// The formula's value, unclamped; None when it is undefined (rho <= -1).
    pub formula: Option<f64>,
    /// What the savings uncertainty uses: the formula when 0 < rho < 1; n itself when rho <= 0 (the
    /// formula would exceed n: negatively correlated residuals do not make more data than there is);
    /// None when rho >= 1 (n' <= 0: no independent information left).
    pub used: Option<f64>,
    /// True when the formula exceeded n and `used` is n.
    pub clamped: bool,
}

/// [`EffectiveN`] of `n` residuals with lag-1 autocorrelation `rho`.
pub fn effective_n(n: usize, rho: f64) -> EffectiveN {
    let n = n as f64;
    let formula = (rho > -1.0 && rho.is_finite()).then(|| n * (1.0 - rho) / (1.0 + rho));
    let (used, clamped) = if !rho.is_finite() || rho >= 1.0 {
        (None, false)
    } else if rho > 0.0 {
        (formula.filter(|v| *v > 0.0), false)
    } else {
        (Some(n), formula.is_none_or(|f| f > n))
    };
    EffectiveN {
        formula,
        used,
        clamped,
    }
}

/// The leverages `h_ii = x_i^T (X^T X)^-1 x_i` of the rows of the design matrix (an intercept, then the
/// columns `x`), computed on unit-scaled columns as [`ols`] does; None when [`ols`] would have no fit.
/// The leave-one-out residual of row i is `e_i / (1 - h_ii)` (the PRESS residual), without refitting.
pub fn leverages(x: &[&[f64]], n: usize) -> Option<Vec<f64>> {
    let p = x.len() + 1;
    if n < p
        || x.iter()
            .any(|c| c.len() != n || c.iter().any(|v| !v.is_finite()))
    {
        return None;
    }
    let value = |i: usize, j: usize| if j == 0 { 1.0 } else { x[j - 1][i] };
    let scale: Vec<f64> = (0..p)
        .map(|j| {
            let s = (0..n).map(|i| value(i, j).powi(2)).sum::<f64>().sqrt();
            if s > 0.0 {
                s
            } else {
                1.0
            }
        })
        .collect();
    let mut xtx = vec![vec![0.0; p]; p];
    for i in 0..n {
        for a in 0..p {
            for b in 0..p {
                xtx[a][b] += value(i, a) / scale[a] * value(i, b) / scale[b];
            }
        }
    }
    let inv = invert(&xtx)?;
    Some(
        (0..n)
            .map(|i| {
                let r: Vec<f64> = (0..p).map(|j| value(i, j) / scale[j]).collect();
                (0..p)
                    .map(|a| r[a] * (0..p).map(|b| inv[a][b] * r[b]).sum::<f64>())
                    .sum()
            })
            .collect(),
    )
}

/// Confidence of a savings uncertainty.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Confidence {
    Pct68,
    Pct90,
}

impl Confidence {
    /// The one-sided quantile of Student's t that gives this two-sided confidence.
    fn quantile(self) -> f64 {
        match self {
            Confidence::Pct68 => 0.84,
            Confidence::Pct90 => 0.95,
        }
    }
}

/// Fractional savings uncertainty (ASHRAE Guideline 14-2014 Annex B), in % of the savings:
/// `FSU = 1.26 t (CV / F) sqrt((n / n') (1 + 2/n) (1/m))` with the baseline fit's CV(RMSE), its residuals'
/// autocorrelation for n', `F = savings / expected` and `m` reporting buckets. None when undefined (no
/// savings, no degrees of freedom, no reporting bucket).
pub fn savings_uncertainty_pct(
    fit: &OlsFit,
    savings: f64,
    expected: f64,
    m: usize,
    confidence: Confidence,
) -> Option<f64> {
    let n = fit.n;
    let dof = fit.dof();
    if m == 0 || n == 0 || dof == 0 || expected == 0.0 || savings == 0.0 {
        return None;
    }
    let cv = fit.cv_rmse_pct? / 100.0;
    let f = savings / expected;
    let rho = fit.residual_autocorrelation().unwrap_or(0.0);
    let n_eff = effective_n(n, rho).used?;
    let t = StudentsT::new(0.0, 1.0, dof as f64)
        .ok()?
        .inverse_cdf(confidence.quantile());
    let fsu = 1.26
        * t
        * (cv / f).abs()
        * ((n as f64 / n_eff) * (1.0 + 2.0 / n as f64) * (1.0 / m as f64)).sqrt();
    fsu.is_finite().then_some(100.0 * fsu)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn an_exact_plane_is_recovered_with_certain_coefficients() {
        let x1 = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
        let x2 = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0];
        let y: Vec<f64> = x1
            .iter()
            .zip(&x2)
            .map(|(a, b)| 10.0 + 2.0 * a - 3.0 * b)
            .collect();
        let f = ols(&[&x1, &x2], &y).unwrap();
        assert!(close(f.coefficients[0], 10.0, 1e-9));
        assert!(close(f.coefficients[1], 2.0, 1e-9));
        assert!(close(f.coefficients[2], -3.0, 1e-9));
        assert!(close(f.r2.unwrap(), 1.0, 1e-12));
    }

    #[test]
    fn collinear_columns_have_no_fit() {
        let x1 = [1.0, 2.0, 3.0, 4.0];
        let x2 = [2.0, 4.0, 6.0, 8.0];
        assert!(ols(&[&x1, &x2], &[1.0, 2.0, 3.0, 5.0]).is_none());
        assert!(ols(&[&x1], &[1.0]).is_none());
        assert!(ols(&[&x1], &[1.0, f64::NAN, 2.0, 3.0]).is_none());
    }

    #[test]
    fn single_variable_matches_the_textbook_line() {
        // y = 1 + 2x plus residuals orthogonal to 1 and x: slope 2 and intercept 1 exactly.
        let x = [1.0, 2.0, 3.0, 4.0];
        let y = [3.5, 4.5, 6.5, 9.5];
        let f = ols(&[&x], &y).unwrap();
        assert!(close(f.coefficients[1], 2.0, 1e-12), "{f:?}");
        assert!(close(f.coefficients[0], 1.0, 1e-12), "{f:?}");
    }
}
