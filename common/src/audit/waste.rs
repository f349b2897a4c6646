//! Solid and hazardous waste (t, and per unit of product) and the 100 t/a hazardous-waste trigger
//! (004: plants producing 100 t or more of hazardous waste a year are listed for a mandatory audit).
//!
//! Pure: a waste point's hourly tonnes (manual shipments apportioned between readings, or a polled
//! counter) and the production in, one row per waste and period out.

use serde::{Deserialize, Serialize};

use crate::plan::PointRef;

use super::balance::{Hours, PeriodRange};

/// 004's threshold: t of hazardous waste a year.
pub const HAZARDOUS_T_PER_YEAR: f64 = 100.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WasteKind {
    /// 一般工业固体废物.
    Solid,
    /// 危险废物.
    Hazardous,
}

impl WasteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WasteKind::Solid => "solid",
            WasteKind::Hazardous => "hazardous",
        }
    }
}

/// `[[audit.waste]]`: a counter of one waste, in t (or kg).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WastePlan {
    pub name: String,
    pub kind: WasteKind,
    pub point: PointRef,
    /// Point unit -> t.
    pub factor: f64,
}

/// The report's waste block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Waste {
    pub rows: Vec<WasteRow>,
    /// The hazardous waste of the checked period (reporting, else baseline) a year; null without a
    /// hazardous waste point.
    pub hazardous: Option<HazardousCheck>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WasteRow {
    pub name: String,
    pub kind: WasteKind,
    pub point: String,
    pub period: String,
    /// Tonnes over the hours with data.
    pub total_t: Option<f64>,
    /// t per production unit, over the same hours.
    pub per_unit: Option<f64>,
    pub per_unit_unit: String,
    /// Hours with data / hours of the period.
    pub completeness: f64,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HazardousCheck {
    pub period: String,
    /// All hazardous wastes over the hours each has data (t).
    pub total_t: Option<f64>,
    /// Scaled to a year (8 760 h) from the hours with data; null without any.
    pub t_per_year: Option<f64>,
    pub threshold_t_per_year: f64,
    /// t_per_year >= 100; null without a figure.
    pub over: Option<bool>,
    pub reason: Option<String>,
}

/// One waste over one period.
fn row(
    w: &WastePlan,
    p: &PeriodRange<'_>,
    s: Option<Hours<'_>>,
    production: &[f64],
    unit: &str,
) -> WasteRow {
    let mut out = WasteRow {
        name: w.name.clone(),
        kind: w.kind,
        point: w.point.qualified(),
        period: p.name.to_string(),
        total_t: None,
        per_unit: None,
        per_unit_unit: format!("t/{unit}"),
        completeness: 0.0,
        reason: None,
    };
    let Some(s) = s else {
        out.reason = Some(format!("{} was not read", w.point));
        return out;
    };
    let hours: Vec<usize> = (p.range.0..p.range.1)
        .filter(|&h| s.data.get(h).copied().unwrap_or(false))
        .collect();
    let period_hours = p.range.1.saturating_sub(p.range.0);
    if hours.is_empty() || period_hours == 0 {
        out.reason = Some(format!("no reading of {} in the period", w.point));
        return out;
    }
    out.completeness = hours.len() as f64 / period_hours as f64;
    let t: f64 = hours.iter().map(|&h| s.amount[h]).sum::<f64>() * w.factor;
    // Per unit over the same hours: waste of a month with data against that month's production only.
    let prod: f64 = hours
        .iter()
        .map(|&h| production.get(h).copied().unwrap_or(0.0))
        .sum();
    out.total_t = Some(t);
    out.per_unit = (prod > 0.0).then(|| t / prod);
    if out.per_unit.is_none() {
        out.reason = Some("no production in the hours with waste data".to_string());
    }
    out
}

/// Rows per waste and period, and the hazardous-waste check over `check` (the reporting period, else
/// the baseline).
pub fn waste<'a>(
    plans: &[WastePlan],
    periods: &[PeriodRange<'_>],
    check: &PeriodRange<'_>,
    hours_of: &dyn Fn(&PointRef) -> Option<Hours<'a>>,
    production: &[f64],
    production_unit: &str,
) -> Waste {
    let mut out = Waste::default();
    for w in plans {
        for p in periods {
            out.rows
                .push(row(w, p, hours_of(&w.point), production, production_unit));
        }
    }
    let hazardous: Vec<&WastePlan> = plans
        .iter()
        .filter(|w| w.kind == WasteKind::Hazardous)
        .collect();
    if hazardous.is_empty() {
        return out;
    }
    let mut check_out = HazardousCheck {
        period: check.name.to_string(),
        total_t: None,
        t_per_year: None,
        threshold_t_per_year: HAZARDOUS_T_PER_YEAR,
        over: None,
        reason: None,
    };
    // Each waste scaled to a year from its own hours with data, then added: a logbook that starts in
    // March does not make the year's rate look smaller.
    let (mut total, mut per_year) = (0.0, 0.0);
    for w in &hazardous {
        let r = row(w, check, hours_of(&w.point), production, production_unit);
        match r.total_t {
            Some(t) => {
                let hours = r.completeness * check.range.1.saturating_sub(check.range.0) as f64;
                total += t;
                per_year += t / hours * 8760.0;
            }
            None => {
                check_out.reason = r.reason;
                out.hazardous = Some(check_out);
                return out;
            }
        }
    }
    check_out.total_t = Some(total);
    check_out.t_per_year = Some(per_year);
    check_out.over = Some(per_year >= HAZARDOUS_T_PER_YEAR);
    out.hazardous = Some(check_out);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn plan(name: &str, kind: WasteKind, factor: f64) -> WastePlan {
        WastePlan {
            name: name.into(),
            kind,
            point: PointRef {
                meter: "log".into(),
                point: name.into(),
            },
            factor,
        }
    }

    #[test]
    fn totals_per_unit_and_the_100_t_trigger_by_hand() {
        // 30 days; sludge 0.01 t an hour for the first 20 days only (480 h): 4.8 t; production 2 t/h.
        let hours = 720;
        let amount = vec![0.01; hours];
        let data: Vec<bool> = (0..hours).map(|h| h < 480).collect();
        let slag_amount = vec![5.0; hours]; // kg an hour
        let all = vec![true; hours];
        let production = vec![2.0; hours];
        let plans = [
            plan("sludge", WasteKind::Hazardous, 1.0),
            plan("slag", WasteKind::Solid, 1e-3),
        ];
        let get = |p: &PointRef| -> Option<Hours<'_>> {
            match p.point.as_str() {
                "sludge" => Some(Hours {
                    amount: &amount,
                    data: &data,
                }),
                "slag" => Some(Hours {
                    amount: &slag_amount,
                    data: &all,
                }),
                _ => None,
            }
        };
        let period = PeriodRange {
            name: "reporting",
            range: (0, hours),
        };
        let w = waste(&plans, &[period], &period, &get, &production, "t");
        let sludge = &w.rows[0];
        assert!((sludge.total_t.unwrap() - 4.8).abs() < 1e-9);
        assert!((sludge.completeness - 480.0 / 720.0).abs() < 1e-12);
        // 4.8 t over 960 t produced in the same 480 hours.
        assert!((sludge.per_unit.unwrap() - 0.005).abs() < 1e-12);
        let slag = &w.rows[1];
        assert!((slag.total_t.unwrap() - 3.6).abs() < 1e-9);
        assert!((slag.per_unit.unwrap() - 3.6 / 1440.0).abs() < 1e-12);
        // 4.8 t in 480 h -> 87.6 t/a: under 100.
        let h = w.hazardous.as_ref().unwrap();
        assert!((h.t_per_year.unwrap() - 87.6).abs() < 1e-9);
        assert_eq!(h.over, Some(false));

        let more = vec![0.012; hours];
        let get = |p: &PointRef| -> Option<Hours<'_>> {
            (p.point == "sludge").then_some(Hours {
                amount: &more,
                data: &all,
            })
        };
        let w = waste(&plans[..1], &[period], &period, &get, &production, "t");
        // 0.012 t/h x 8 760 = 105.12 t/a.
        let h = w.hazardous.unwrap();
        assert!((h.t_per_year.unwrap() - 105.12).abs() < 1e-9);
        assert_eq!(h.over, Some(true));
    }

    #[test]
    fn no_data_is_null_with_a_reason_and_no_verdict() {
        let amount = vec![0.0; 24];
        let data = vec![false; 24];
        let get = |_: &PointRef| {
            Some(Hours {
                amount: &amount,
                data: &data,
            })
        };
        let period = PeriodRange {
            name: "baseline",
            range: (0, 24),
        };
        let w = waste(
            &[plan("oil", WasteKind::Hazardous, 1.0)],
            &[period],
            &period,
            &get,
            &[1.0; 24],
            "t",
        );
        assert_eq!(w.rows[0].total_t, None);
        assert!(w.rows[0].reason.as_deref().unwrap().contains("log.oil"));
        let h = w.hazardous.unwrap();
        assert_eq!((h.t_per_year, h.over), (None, None));
        assert!(h.reason.is_some());
    }
}
