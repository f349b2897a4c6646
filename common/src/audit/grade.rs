//! Grades against an industry's indicator system: level I (international leading), II (domestic advanced),
//! III (domestic basic). Thresholds are per unit of product; lower is better.

use crate::plan::AuditLevel;

/// The level a per-unit figure reaches: `I`, `II`, `III` or `below III` (at or below a threshold reaches it).
pub fn grade(per_unit: f64, level: &AuditLevel) -> &'static str {
    if per_unit <= level.level_i {
        "I"
    } else if per_unit <= level.level_ii {
        "II"
    } else if per_unit <= level.level_iii {
        "III"
    } else {
        "below III"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lower_is_better_and_thresholds_are_inclusive() {
        let l = AuditLevel {
            indicator: "energy".into(),
            level_i: 100.0,
            level_ii: 110.0,
            level_iii: 120.0,
        };
        assert_eq!(grade(95.0, &l), "I");
        assert_eq!(grade(100.0, &l), "I");
        assert_eq!(grade(101.161, &l), "II");
        assert_eq!(grade(120.0, &l), "III");
        assert_eq!(grade(120.5, &l), "below III");
    }
}
