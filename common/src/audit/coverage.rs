//! The metering ledger and its coverage (配备率, GB 17167; DOMAIN.md "Metering coverage").
//!
//! Pure: the ledger the user declares (units and main equipment per level, the points metering them)
//! in, the ledger with each meter's accuracy class and multiplier and the coverage per carrier and level
//! out. Thresholds are the user's, from the edition of the standard the plant uses: nothing here knows
//! a figure of GB 17167.

use serde::{Deserialize, Serialize};

use crate::plan::{Carrier, PointRef};

/// GB 17167's three levels of metering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeteringLevel {
    /// 进出用能单位: the site boundary.
    Site,
    /// 进出主要次级用能单位: main sub-units (workshops, lines).
    SubUnit,
    /// 主要用能设备: main equipment.
    Equipment,
}

impl MeteringLevel {
    pub const ALL: [MeteringLevel; 3] = [
        MeteringLevel::Site,
        MeteringLevel::SubUnit,
        MeteringLevel::Equipment,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MeteringLevel::Site => "site",
            MeteringLevel::SubUnit => "sub_unit",
            MeteringLevel::Equipment => "equipment",
        }
    }

    pub fn parse(s: &str) -> Option<MeteringLevel> {
        MeteringLevel::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

/// One unit or piece of equipment of the ledger (`[[audit.ledger]]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LedgerItem {
    pub name: String,
    pub level: MeteringLevel,
    pub carrier: Carrier,
    /// Meters the item requires (default 1).
    pub required: u32,
    /// The meters installed, with their accuracy class (%) and multiplier (倍率) when known.
    pub meters: Vec<LedgerMeterPlan>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LedgerMeterPlan {
    pub point: PointRef,
    pub accuracy_class: Option<f64>,
    pub multiplier: Option<f64>,
}

/// A required coverage (`[[audit.coverage]]`): percent for a carrier at a level.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoverageThreshold {
    pub carrier: Carrier,
    pub level: MeteringLevel,
    pub min_pct: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct LedgerPlan {
    pub items: Vec<LedgerItem>,
    pub thresholds: Vec<CoverageThreshold>,
}

impl LedgerPlan {
    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.thresholds.is_empty()
    }
}

/// The report's ledger and coverage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Coverage {
    pub ledger: Vec<LedgerEntry>,
    /// One row per carrier and level that has ledger items or a threshold.
    pub rates: Vec<CoverageRate>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub name: String,
    pub level: String,
    pub carrier: String,
    pub required: u32,
    /// Meters counted toward `required` (at most `required`: a spare meter does not cover another item).
    pub installed: u32,
    pub meters: Vec<LedgerMeter>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerMeter {
    pub point: String,
    pub accuracy_class: Option<f64>,
    pub multiplier: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoverageRate {
    pub carrier: String,
    pub level: String,
    pub required: u32,
    pub installed: u32,
    /// 配备率 = installed / required x 100; null when nothing is required.
    pub rate_pct: Option<f64>,
    /// The threshold from `[[audit.coverage]]`; null without one.
    pub min_pct: Option<f64>,
    /// Whether the rate reaches the threshold; null without a threshold or a rate.
    pub meets: Option<bool>,
    pub reason: Option<String>,
}

/// The ledger and coverage table of `plan`.
pub fn coverage(plan: &LedgerPlan) -> Coverage {
    let ledger: Vec<LedgerEntry> = plan
        .items
        .iter()
        .map(|i| LedgerEntry {
            name: i.name.clone(),
            level: i.level.as_str().to_string(),
            carrier: i.carrier.as_str().to_string(),
            required: i.required,
            installed: u32::try_from(i.meters.len())
                .unwrap_or(u32::MAX)
                .min(i.required),
            meters: i
                .meters
                .iter()
                .map(|m| LedgerMeter {
                    point: m.point.qualified(),
                    accuracy_class: m.accuracy_class,
                    multiplier: m.multiplier,
                })
                .collect(),
        })
        .collect();
    let mut keys: Vec<(Carrier, MeteringLevel)> = plan
        .items
        .iter()
        .map(|i| (i.carrier, i.level))
        .chain(plan.thresholds.iter().map(|t| (t.carrier, t.level)))
        .collect();
    keys.sort();
    keys.dedup();
    let rates = keys
        .into_iter()
        .map(|(carrier, level)| {
            let (required, installed) = plan
                .items
                .iter()
                .zip(&ledger)
                .filter(|(i, _)| i.carrier == carrier && i.level == level)
                .fold((0u32, 0u32), |(r, n), (i, e)| {
                    (r.saturating_add(i.required), n.saturating_add(e.installed))
                });
            let rate_pct =
                (required > 0).then(|| f64::from(installed) / f64::from(required) * 100.0);
            let min_pct = plan
                .thresholds
                .iter()
                .find(|t| t.carrier == carrier && t.level == level)
                .map(|t| t.min_pct);
            CoverageRate {
                carrier: carrier.as_str().to_string(),
                level: level.as_str().to_string(),
                required,
                installed,
                rate_pct,
                min_pct,
                // A float rate against a percentage written with decimals: 199/200 x 100 is 99.5 exactly
                // enough, but 1/3 x 300 may land a hair under 100.
                meets: rate_pct.zip(min_pct).map(|(r, m)| r + 1e-9 >= m),
                reason: (required == 0)
                    .then(|| "no [[audit.ledger]] item of this carrier at this level".to_string()),
            }
        })
        .collect();
    Coverage { ledger, rates }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn item(
        name: &str,
        level: MeteringLevel,
        carrier: Carrier,
        required: u32,
        n: usize,
    ) -> LedgerItem {
        LedgerItem {
            name: name.into(),
            level,
            carrier,
            required,
            meters: (0..n)
                .map(|k| LedgerMeterPlan {
                    point: PointRef {
                        meter: format!("{name}-{k}"),
                        point: "e".into(),
                    },
                    accuracy_class: Some(1.0),
                    multiplier: None,
                })
                .collect(),
        }
    }

    #[test]
    fn rates_per_carrier_and_level_against_hand_counts() {
        use Carrier::*;
        use MeteringLevel::*;
        let plan = LedgerPlan {
            items: vec![
                item("boundary", Site, Electricity, 1, 1),
                item("dyeing", SubUnit, Electricity, 1, 1),
                item("finishing", SubUnit, Electricity, 1, 0),
                // Two meters on one required: counts one.
                item("boiler-room", SubUnit, Electricity, 1, 2),
                item("stenter-1", Equipment, Electricity, 2, 1),
                item("intake", Site, Water, 1, 1),
            ],
            thresholds: vec![
                CoverageThreshold {
                    carrier: Electricity,
                    level: Site,
                    min_pct: 100.0,
                },
                CoverageThreshold {
                    carrier: Electricity,
                    level: SubUnit,
                    min_pct: 100.0,
                },
                CoverageThreshold {
                    carrier: Electricity,
                    level: Equipment,
                    min_pct: 50.0,
                },
                CoverageThreshold {
                    carrier: Steam,
                    level: Site,
                    min_pct: 100.0,
                },
            ],
        };
        let c = coverage(&plan);
        assert_eq!(c.ledger[3].installed, 1);
        let rate = |carrier: &str, level: &str| {
            c.rates
                .iter()
                .find(|r| r.carrier == carrier && r.level == level)
                .unwrap()
        };
        let e_site = rate("electricity", "site");
        assert_eq!((e_site.installed, e_site.required), (1, 1));
        assert_eq!(e_site.meets, Some(true));
        // 2 of 3 main sub-units metered: 66.67 % < 100 %.
        let e_sub = rate("electricity", "sub_unit");
        assert_eq!((e_sub.installed, e_sub.required), (2, 3));
        assert!((e_sub.rate_pct.unwrap() - 200.0 / 3.0).abs() < 1e-9);
        assert_eq!(e_sub.meets, Some(false));
        let e_eq = rate("electricity", "equipment");
        assert_eq!(e_eq.rate_pct, Some(50.0));
        assert_eq!(e_eq.meets, Some(true));
        // Water has no threshold: a rate, no verdict.
        let w = rate("water", "site");
        assert_eq!((w.rate_pct, w.min_pct, w.meets), (Some(100.0), None, None));
        // Steam has a threshold but nothing declared: null with a reason.
        let s = rate("steam", "site");
        assert_eq!((s.rate_pct, s.meets), (None, None));
        assert!(s
            .reason
            .as_deref()
            .unwrap()
            .contains("no [[audit.ledger]] item"));
        assert_eq!(c.rates.len(), 5);
    }
}
