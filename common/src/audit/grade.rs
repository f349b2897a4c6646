//! Grades against an industry's indicator system (清洁生产评价指标体系): level I (international leading), II
//! (domestic advanced), III (domestic basic), per indicator and for the enterprise overall (DOMAIN.md
//! "Overall grade"). Thresholds are per unit of product.

use crate::audit::report::Level;
use crate::plan::AuditLevel;

/// The three levels, best first, as the keys of the scores.
pub const LEVELS: [&str; 3] = ["I", "II", "III"];

/// Whether a per-unit figure reaches a threshold (at the threshold reaches it).
fn reaches(per_unit: f64, threshold: f64, higher_is_better: bool) -> bool {
    if higher_is_better {
        per_unit >= threshold
    } else {
        per_unit <= threshold
    }
}

/// Whether a figure reaches level `g` (0 = I, 1 = II, 2 = III) of `level`'s thresholds.
fn meets(per_unit: f64, level: &AuditLevel, g: usize) -> bool {
    let t = [level.level_i, level.level_ii, level.level_iii][g];
    reaches(per_unit, t, level.higher_is_better)
}

/// The level a per-unit figure reaches: `I`, `II`, `III` or `below III`.
pub fn grade(per_unit: f64, level: &AuditLevel) -> Level {
    (0..3)
        .find(|&g| meets(per_unit, level, g))
        .map_or(Level::BelowIII, |g| Level::ALL[g])
}

/// The enterprise's overall grade: the level and the scores Y_I, Y_II, Y_III.
#[derive(Debug, Clone, PartialEq)]
pub struct Overall {
    pub level: Level,
    pub scores: [f64; 3],
}

/// Y_g = sum of w_i x 100 x [indicator i meets level g]; level I when Y_I >= 85 and every limiting indicator
/// meets I, else II likewise, else III when Y_III = 100, else below III. An indicator without a figure (no
/// data) meets no level. None without graded indicators.
pub fn overall(graded: &[(&AuditLevel, Option<f64>)]) -> Option<Overall> {
    if graded.is_empty() {
        return None;
    }
    let meets_g = |(l, f): &(&AuditLevel, Option<f64>), g: usize| f.is_some_and(|v| meets(v, l, g));
    let mut scores = [0.0; 3];
    for (g, score) in scores.iter_mut().enumerate() {
        *score = graded
            .iter()
            .filter(|x| meets_g(x, g))
            .map(|(l, _)| l.weight * 100.0)
            .sum::<f64>()
            // An empty sum is -0.0; a score of none is 0.
            + 0.0;
    }
    let limiting_meet = |g: usize| {
        graded
            .iter()
            .filter(|(l, _)| l.limiting)
            .all(|x| meets_g(x, g))
    };
    // Weights sum to 1 up to rounding: compare with a small tolerance.
    const EPS: f64 = 1e-9;
    let level = if scores[0] >= 85.0 - EPS && limiting_meet(0) {
        Level::I
    } else if scores[1] >= 85.0 - EPS && limiting_meet(1) {
        Level::II
    } else if scores[2] >= 100.0 - EPS {
        Level::III
    } else {
        Level::BelowIII
    };
    Some(Overall { level, scores })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn level(ind: &str, t: [f64; 3], weight: f64, limiting: bool) -> AuditLevel {
        AuditLevel {
            indicator: ind.into(),
            level_i: t[0],
            level_ii: t[1],
            level_iii: t[2],
            higher_is_better: false,
            weight,
            limiting,
        }
    }

    #[test]
    fn lower_is_better_and_thresholds_are_inclusive() {
        let l = level("energy", [100.0, 110.0, 120.0], 1.0, false);
        assert_eq!(grade(95.0, &l), Level::I);
        assert_eq!(grade(100.0, &l), Level::I);
        assert_eq!(grade(101.161, &l), Level::II);
        assert_eq!(grade(120.0, &l), Level::III);
        assert_eq!(grade(120.5, &l), Level::BelowIII);
    }

    #[test]
    fn higher_is_better_reverses_the_comparison() {
        let mut l = level("reuse", [90.0, 80.0, 70.0], 1.0, false);
        l.higher_is_better = true;
        assert_eq!(grade(95.0, &l), Level::I);
        assert_eq!(grade(80.0, &l), Level::II);
        assert_eq!(grade(60.0, &l), Level::BelowIII);
    }

    #[test]
    fn domain_example_12_overall_level_ii() {
        let e = level("energy", [60.0, 70.0, 80.0], 0.3, true);
        let w = level("water", [6.0, 7.0, 8.0], 0.2, false);
        let c = level("COD", [0.2, 0.3, 0.4], 0.3, true);
        let co2 = level("co2", [140.0, 160.0, 180.0], 0.2, false);
        let o = overall(&[
            (&e, Some(63.65)),
            (&w, Some(5.31)),
            (&c, Some(0.261)),
            (&co2, Some(150.2)),
        ])
        .unwrap();
        assert!((o.scores[0] - 20.0).abs() < 1e-9, "{o:?}");
        assert!((o.scores[1] - 100.0).abs() < 1e-9);
        assert!((o.scores[2] - 100.0).abs() < 1e-9);
        assert_eq!(o.level, Level::II);
        // A limiting indicator below II pulls the enterprise down even with Y_II = 70.
        let o = overall(&[
            (&e, Some(75.0)),
            (&w, Some(5.31)),
            (&c, Some(0.261)),
            (&co2, Some(150.2)),
        ])
        .unwrap();
        assert_eq!(o.level, Level::III);
        // No data meets no level.
        let o = overall(&[
            (&e, None),
            (&w, Some(5.31)),
            (&c, Some(0.261)),
            (&co2, Some(150.2)),
        ])
        .unwrap();
        assert_eq!(o.level, Level::BelowIII);
        assert!(overall(&[]).is_none());
        let o = overall(&[(&e, Some(90.0))]).unwrap();
        assert!(o.scores[0].is_sign_positive(), "no -0 score: {o:?}");
    }
}
