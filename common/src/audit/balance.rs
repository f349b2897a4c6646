//! Meter-tree balances and the water balance (审核 stage: 水平衡测试, 能量平衡; DOMAIN.md "Balances").
//!
//! Pure: hourly amounts of the points in, one table per carrier and period out. Figures are summed over
//! the hours in which every point of a balance has data, so a meter that was offline for a week does not
//! pass for a week of losses; the hours used are in the row, and a balance without any such hour has
//! null figures and a reason, never a plausible number.

use serde::{Deserialize, Serialize};

use crate::plan::{Carrier, PointRef};

/// Tolerance when neither `[audit.balance] tolerance_pct` nor the meters' accuracy classes are given:
/// two class-1 meters (DOMAIN.md: class 1 + class 1 -> 2 %).
pub const DEFAULT_TOLERANCE_PCT: f64 = 2.0;

/// One point of a meter tree, validated (`parent = "meter.point"` on a point, or `[[audit.tree]]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TreeNode {
    pub point: PointRef,
    pub parent: Option<PointRef>,
    pub carrier: Carrier,
    /// Point unit -> the carrier's unit.
    pub factor: f64,
}

/// A point of the water balance with its factor to m3 (a counter in m3 or L, or a flow gauge in m3/h,
/// whose hourly amount is its mean x 1 h).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaterPoint {
    pub point: PointRef,
    pub factor: f64,
}

/// What the balances need, from the config.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct BalancePlan {
    /// Whether the config asks for balances (a tree, a reuse point or `[audit.water]`): a plant with only
    /// a water input and an outfall gets no water balance it did not ask for.
    pub configured: bool,
    /// Every point of every tree, parents before their children.
    pub nodes: Vec<TreeNode>,
    /// Accuracy class (%) per point (`accuracy_class` on a point or a ledger meter).
    pub accuracy: Vec<(PointRef, f64)>,
    /// `[audit.balance] tolerance_pct`: overrides the accuracy classes.
    pub tolerance_pct: Option<f64>,
    /// Water taken in (取水量): the `[[audit.input]]` points of carrier water.
    pub intake: Vec<WaterPoint>,
    /// Water used again (重复利用水量): points with `reuse = true`.
    pub reuse: Vec<WaterPoint>,
    /// Water discharged: `[audit.water] discharge`, else the flows of the water pollutants.
    pub discharge: Vec<WaterPoint>,
    /// Water consumed (in product, evaporated): `[audit.water] consumption`.
    pub consumption: Vec<WaterPoint>,
}

impl BalancePlan {
    pub fn is_empty(&self) -> bool {
        !self.configured
    }

    /// Every point the balances read.
    pub fn points(&self) -> Vec<&PointRef> {
        let mut out: Vec<&PointRef> = self.nodes.iter().map(|n| &n.point).collect();
        for w in [
            &self.intake,
            &self.reuse,
            &self.discharge,
            &self.consumption,
        ] {
            out.extend(w.iter().map(|w| &w.point));
        }
        out
    }

    fn class_of(&self, p: &PointRef) -> Option<f64> {
        self.accuracy.iter().find(|(r, _)| r == p).map(|(_, c)| *c)
    }
}

/// The hours of one point over the report's window.
#[derive(Clone, Copy)]
pub struct Hours<'a> {
    /// Per hour: consumption of a counter, mean x 1 h of a gauge; in the point's unit.
    pub amount: &'a [f64],
    /// Whether anything was recorded in the hour (a reading, covered time, apportioned consumption).
    pub data: &'a [bool],
}

/// A period of the report: its name (`baseline` | `reporting`) and its window of hours [a, b).
#[derive(Clone, Copy)]
pub struct PeriodRange<'a> {
    pub name: &'a str,
    pub range: (usize, usize),
}

/// The balances of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Balances {
    /// One row per parent meter and period.
    pub tree: Vec<TreeBalance>,
    /// One row per period, when the plant has water intake, reuse or discharge points.
    pub water: Vec<WaterBalance>,
}

/// How a parent meter and the sum of its children compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BalanceStatus {
    /// Unmetered within the tolerance.
    Balanced,
    /// Unmetered use or losses beyond the tolerance.
    Unmetered,
    /// The children read more than the parent beyond the tolerance: a meter fault.
    MeterFault,
    /// No hour with data of the parent and all its children.
    NoData,
}

/// A parent meter against its children over one period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeBalance {
    pub carrier: String,
    pub period: String,
    pub parent: String,
    pub children: Vec<String>,
    /// The carrier's unit (kWh, m3, ...).
    pub unit: String,
    /// Hours in which the parent and every child have data, and the period's hours.
    pub hours: u64,
    pub period_hours: u64,
    pub parent_total: Option<f64>,
    pub children_total: Option<f64>,
    /// parent - sum of children: losses and unmetered use (negative: the children read more).
    pub unmetered: Option<f64>,
    /// `unmetered` as a percentage of the parent; null when the parent reads 0.
    pub unmetered_pct: Option<f64>,
    pub tolerance_pct: f64,
    /// `configured` (`[audit.balance] tolerance_pct`), `accuracy` (parent class + worst child class)
    /// or `default` (2 %).
    pub tolerance_basis: String,
    pub status: BalanceStatus,
    /// Children that alone read more than the parent beyond the tolerance (a meter fault).
    pub faulty: Vec<String>,
    /// Why figures are null.
    pub reason: Option<String>,
}

/// The water balance (GB/T 12452) of one period, in m3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaterBalance {
    pub period: String,
    pub hours: u64,
    pub period_hours: u64,
    /// 取水量 Vf.
    pub intake: Option<f64>,
    /// 重复利用水量 Vr.
    pub reuse: Option<f64>,
    /// Vf + Vr.
    pub total_use: Option<f64>,
    pub discharge: Option<f64>,
    pub consumption: Option<f64>,
    /// Vf - Vd - Vc.
    pub losses: Option<f64>,
    /// Losses as a percentage of the intake.
    pub losses_pct: Option<f64>,
    /// 水重复利用率 R = Vr / (Vr + Vf) x 100 %.
    pub reuse_rate_pct: Option<f64>,
    /// Why figures are null, one line each.
    pub reasons: Vec<String>,
}

/// 水重复利用率 in percent: R = Vr / (Vr + Vf) x 100; null when nothing was used.
pub fn reuse_rate_pct(intake: f64, reuse: f64) -> Option<f64> {
    let total = intake + reuse;
    (total > 0.0).then(|| reuse / total * 100.0)
}

/// The hours of `range` in which every series has data.
fn common_hours(series: &[Hours<'_>], range: (usize, usize)) -> Vec<usize> {
    (range.0..range.1)
        .filter(|&h| {
            series
                .iter()
                .all(|s| s.data.get(h).copied().unwrap_or(false))
        })
        .collect()
}

fn total(s: Hours<'_>, hours: &[usize], factor: f64) -> f64 {
    hours
        .iter()
        .map(|&h| s.amount.get(h).copied().unwrap_or(0.0))
        .sum::<f64>()
        * factor
}

/// The balances of `plan` over `periods`; `hours_of` gives a point's hours (None: not loaded).
pub fn balances<'a>(
    plan: &BalancePlan,
    periods: &[PeriodRange<'_>],
    hours_of: &dyn Fn(&PointRef) -> Option<Hours<'a>>,
) -> Balances {
    let mut out = Balances::default();
    for p in periods {
        for parent in plan.nodes.iter() {
            let children: Vec<&TreeNode> = plan
                .nodes
                .iter()
                .filter(|n| n.parent.as_ref() == Some(&parent.point))
                .collect();
            if children.is_empty() {
                continue;
            }
            out.tree
                .push(tree_row(plan, parent, &children, p, hours_of));
        }
    }
    let any_water = !(plan.intake.is_empty() && plan.reuse.is_empty() && plan.discharge.is_empty());
    if any_water {
        for p in periods {
            out.water.push(water_row(plan, p, hours_of));
        }
    }
    out
}

fn tree_row<'a>(
    plan: &BalancePlan,
    parent: &TreeNode,
    children: &[&TreeNode],
    p: &PeriodRange<'_>,
    hours_of: &dyn Fn(&PointRef) -> Option<Hours<'a>>,
) -> TreeBalance {
    let (tolerance_pct, basis) = tolerance(plan, parent, children);
    let mut row = TreeBalance {
        carrier: parent.carrier.as_str().to_string(),
        period: p.name.to_string(),
        parent: parent.point.qualified(),
        children: children.iter().map(|c| c.point.qualified()).collect(),
        unit: parent.carrier.unit().to_string(),
        hours: 0,
        period_hours: (p.range.1.saturating_sub(p.range.0)) as u64,
        parent_total: None,
        children_total: None,
        unmetered: None,
        unmetered_pct: None,
        tolerance_pct,
        tolerance_basis: basis.to_string(),
        status: BalanceStatus::NoData,
        faulty: Vec::new(),
        reason: None,
    };
    let nodes: Vec<&TreeNode> = std::iter::once(parent)
        .chain(children.iter().copied())
        .collect();
    let mut series = Vec::with_capacity(nodes.len());
    for n in &nodes {
        match hours_of(&n.point) {
            Some(s) => series.push(s),
            None => {
                row.reason = Some(format!("{} was not read", n.point));
                return row;
            }
        }
    }
    let hours = common_hours(&series, p.range);
    if hours.is_empty() {
        let without: Vec<String> = nodes
            .iter()
            .zip(&series)
            .filter(|(_, s)| {
                !(p.range.0..p.range.1).any(|h| s.data.get(h).copied().unwrap_or(false))
            })
            .map(|(n, _)| n.point.qualified())
            .collect();
        row.reason = Some(if without.is_empty() {
            format!(
                "no hour in which {} and all its sub-meters have data",
                parent.point
            )
        } else {
            format!("no data in the period from {}", without.join(", "))
        });
        return row;
    }
    row.hours = hours.len() as u64;
    let parent_total = total(series[0], &hours, parent.factor);
    let child_totals: Vec<f64> = children
        .iter()
        .zip(&series[1..])
        .map(|(c, s)| total(*s, &hours, c.factor))
        .collect();
    let children_total: f64 = child_totals.iter().sum();
    let unmetered = parent_total - children_total;
    let limit = parent_total.abs() * tolerance_pct / 100.0;
    row.parent_total = Some(parent_total);
    row.children_total = Some(children_total);
    row.unmetered = Some(unmetered);
    row.unmetered_pct = (parent_total > 0.0).then(|| unmetered / parent_total * 100.0);
    row.faulty = children
        .iter()
        .zip(&child_totals)
        .filter(|(_, &t)| t - parent_total > limit)
        .map(|(c, _)| c.point.qualified())
        .collect();
    row.status = if -unmetered > limit || !row.faulty.is_empty() {
        BalanceStatus::MeterFault
    } else if unmetered > limit {
        BalanceStatus::Unmetered
    } else {
        BalanceStatus::Balanced
    };
    row
}

/// The tolerance of a balance and what it rests on.
fn tolerance(plan: &BalancePlan, parent: &TreeNode, children: &[&TreeNode]) -> (f64, &'static str) {
    if let Some(t) = plan.tolerance_pct {
        return (t, "configured");
    }
    let parent_class = plan.class_of(&parent.point);
    let child_classes: Option<Vec<f64>> =
        children.iter().map(|c| plan.class_of(&c.point)).collect();
    match (parent_class, child_classes) {
        // The children's relative errors add up to at most the worst class of them over their sum.
        (Some(p), Some(c)) => (p + c.into_iter().fold(0.0, f64::max), "accuracy"),
        _ => (DEFAULT_TOLERANCE_PCT, "default"),
    }
}

fn water_row<'a>(
    plan: &BalancePlan,
    p: &PeriodRange<'_>,
    hours_of: &dyn Fn(&PointRef) -> Option<Hours<'a>>,
) -> WaterBalance {
    let mut row = WaterBalance {
        period: p.name.to_string(),
        hours: 0,
        period_hours: (p.range.1.saturating_sub(p.range.0)) as u64,
        intake: None,
        reuse: None,
        total_use: None,
        discharge: None,
        consumption: None,
        losses: None,
        losses_pct: None,
        reuse_rate_pct: None,
        reasons: Vec::new(),
    };
    let groups = [
        (&plan.intake, "no [[audit.input]] of carrier water (取水量)"),
        (&plan.reuse, "no point marked reuse = true (重复利用水量)"),
        (
            &plan.discharge,
            "no discharge point ([audit.water] discharge or a water pollutant's flow)",
        ),
        (
            &plan.consumption,
            "no consumption point ([audit.water] consumption)",
        ),
    ];
    let mut series: Vec<Hours<'a>> = Vec::new();
    for (g, _) in &groups {
        for w in g.iter() {
            match hours_of(&w.point) {
                Some(s) => series.push(s),
                None => {
                    row.reasons.push(format!("{} was not read", w.point));
                    return row;
                }
            }
        }
    }
    let hours = common_hours(&series, p.range);
    if hours.is_empty() {
        row.reasons
            .push("no hour in which every water balance point has data".to_string());
        return row;
    }
    row.hours = hours.len() as u64;
    let mut at = 0;
    let mut sums: [Option<f64>; 4] = [None; 4];
    for (k, (g, why)) in groups.iter().enumerate() {
        if g.is_empty() {
            row.reasons.push((*why).to_string());
            continue;
        }
        let mut s = 0.0;
        for w in g.iter() {
            s += total(series[at], &hours, w.factor);
            at += 1;
        }
        sums[k] = Some(s);
    }
    let [intake, reuse, discharge, consumption] = sums;
    row.intake = intake;
    row.reuse = reuse;
    row.discharge = discharge;
    row.consumption = consumption;
    row.total_use = intake.zip(reuse).map(|(f, r)| f + r);
    row.reuse_rate_pct = intake.zip(reuse).and_then(|(f, r)| reuse_rate_pct(f, r));
    row.losses = match (intake, discharge, consumption) {
        (Some(f), Some(d), Some(c)) => Some(f - d - c),
        _ => None,
    };
    row.losses_pct = row
        .losses
        .zip(intake)
        .and_then(|(l, f)| (f > 0.0).then(|| l / f * 100.0));
    row
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn r(s: &str) -> PointRef {
        let (m, p) = s.split_once('.').unwrap();
        PointRef {
            meter: m.into(),
            point: p.into(),
        }
    }

    fn node(p: &str, parent: Option<&str>) -> TreeNode {
        TreeNode {
            point: r(p),
            parent: parent.map(r),
            carrier: Carrier::Water,
            factor: 1.0,
        }
    }

    fn wp(p: &str) -> WaterPoint {
        WaterPoint {
            point: r(p),
            factor: 1.0,
        }
    }

    /// Series of 10 hours per point: a constant hourly amount, data where `data` says.
    struct Data(Vec<(PointRef, Vec<f64>, Vec<bool>)>);

    impl Data {
        fn add(mut self, p: &str, per_hour: f64, data: &[bool]) -> Data {
            self.0
                .push((r(p), vec![per_hour; data.len()], data.to_vec()));
            self
        }
        fn get(&self, p: &PointRef) -> Option<Hours<'_>> {
            self.0
                .iter()
                .find(|(r, _, _)| r == p)
                .map(|(_, a, d)| Hours { amount: a, data: d })
        }
    }

    const ALL: [bool; 10] = [true; 10];
    const P: [PeriodRange<'static>; 1] = [PeriodRange {
        name: "reporting",
        range: (0, 10),
    }];

    #[test]
    fn domain_example_16_water_balance() {
        // Vf 1 000 m3, Vr 3 000 m3 -> R = 75 %; Vd 780, Vc 180 -> losses 40 m3 (4 % of intake).
        let plan = BalancePlan {
            intake: vec![wp("main.v")],
            reuse: vec![wp("loop.v")],
            discharge: vec![wp("out.v")],
            consumption: vec![wp("log.c")],
            ..Default::default()
        };
        let data = Data(Vec::new())
            .add("main.v", 100.0, &ALL)
            .add("loop.v", 300.0, &ALL)
            .add("out.v", 78.0, &ALL)
            .add("log.c", 18.0, &ALL);
        let b = balances(&plan, &P, &|p| data.get(p));
        let w = &b.water[0];
        assert_eq!(w.intake, Some(1000.0));
        assert_eq!(w.reuse, Some(3000.0));
        assert_eq!(w.total_use, Some(4000.0));
        assert!((w.reuse_rate_pct.unwrap() - 75.0).abs() < 1e-9);
        assert!((w.losses.unwrap() - 40.0).abs() < 1e-9);
        assert!((w.losses_pct.unwrap() - 4.0).abs() < 1e-9);
        assert!(w.reasons.is_empty(), "{:?}", w.reasons);
    }

    #[test]
    fn without_reuse_or_consumption_points_those_figures_are_null_with_a_reason() {
        let plan = BalancePlan {
            intake: vec![wp("main.v")],
            discharge: vec![wp("out.v")],
            ..Default::default()
        };
        let data = Data(Vec::new())
            .add("main.v", 100.0, &ALL)
            .add("out.v", 78.0, &ALL);
        let w = &balances(&plan, &P, &|p| data.get(p)).water[0];
        assert_eq!(w.intake, Some(1000.0));
        assert_eq!(w.reuse, None);
        assert_eq!(w.reuse_rate_pct, None);
        assert_eq!(w.losses, None);
        assert_eq!(w.reasons.len(), 2, "{:?}", w.reasons);
        assert!(w.reasons[0].contains("reuse = true"));
    }

    /// A second, independent computation of one balance: the hours where every point has data, the sums,
    /// and the status from the definitions in DOMAIN.md.
    fn reference(
        parent: (f64, &[bool]),
        children: &[(f64, &[bool])],
        tol: f64,
    ) -> (f64, f64, &'static str) {
        let mut p = 0.0;
        let mut c = 0.0;
        for h in 0..parent.1.len() {
            if parent.1[h] && children.iter().all(|x| x.1[h]) {
                p += parent.0;
                c += children.iter().map(|x| x.0).sum::<f64>();
            }
        }
        let status = if c > p * (1.0 + tol / 100.0) {
            "fault"
        } else if p - c > p * tol / 100.0 {
            "unmetered"
        } else {
            "balanced"
        };
        (p, c, status)
    }

    #[test]
    fn tree_balances_match_an_independent_computation() {
        let gap: [bool; 10] = [true, true, false, false, true, true, true, true, true, true];
        let cases: [(f64, f64, f64, &[bool]); 4] = [
            (100.0, 60.0, 39.0, &ALL), // 1 % unmetered: balanced
            (100.0, 60.0, 30.0, &ALL), // 10 %: unmetered
            (100.0, 60.0, 41.5, &ALL), // children 1.5 % above: within 2 %
            (100.0, 70.0, 40.0, &gap), // 10 % above the parent: fault, over 8 hours
        ];
        for (pv, c1, c2, d) in cases {
            let plan = BalancePlan {
                nodes: vec![
                    node("main.v", None),
                    node("a.v", Some("main.v")),
                    node("b.v", Some("main.v")),
                ],
                ..Default::default()
            };
            let data = Data(Vec::new())
                .add("main.v", pv, &ALL)
                .add("a.v", c1, d)
                .add("b.v", c2, &ALL);
            let row = &balances(&plan, &P, &|p| data.get(p)).tree[0];
            let (p, c, status) = reference((pv, &ALL), &[(c1, d), (c2, &ALL)], 2.0);
            assert_eq!(row.parent_total, Some(p));
            assert!((row.children_total.unwrap() - c).abs() < 1e-9);
            assert!((row.unmetered.unwrap() - (p - c)).abs() < 1e-9);
            assert_eq!(row.hours, d.iter().filter(|x| **x).count() as u64);
            let ours = match row.status {
                BalanceStatus::Balanced => "balanced",
                BalanceStatus::Unmetered => "unmetered",
                BalanceStatus::MeterFault => "fault",
                BalanceStatus::NoData => "none",
            };
            assert_eq!(ours, status, "{pv} {c1} {c2}");
            assert_eq!(row.tolerance_basis, "default");
        }
    }

    #[test]
    fn a_child_above_its_parent_is_a_meter_fault_named() {
        let plan = BalancePlan {
            nodes: vec![node("main.v", None), node("a.v", Some("main.v"))],
            accuracy: vec![(r("main.v"), 0.5), (r("a.v"), 1.0)],
            ..Default::default()
        };
        let data = Data(Vec::new())
            .add("main.v", 100.0, &ALL)
            .add("a.v", 102.0, &ALL);
        let row = &balances(&plan, &P, &|p| data.get(p)).tree[0];
        assert_eq!(row.tolerance_pct, 1.5);
        assert_eq!(row.tolerance_basis, "accuracy");
        assert_eq!(row.status, BalanceStatus::MeterFault);
        assert_eq!(row.faulty, vec!["a.v".to_string()]);
        assert!((row.unmetered_pct.unwrap() + 2.0).abs() < 1e-9);
    }

    #[test]
    fn a_child_without_data_gives_null_figures_and_names_it() {
        let plan = BalancePlan {
            nodes: vec![node("main.v", None), node("a.v", Some("main.v"))],
            tolerance_pct: Some(5.0),
            ..Default::default()
        };
        let data = Data(Vec::new())
            .add("main.v", 100.0, &ALL)
            .add("a.v", 50.0, &[false; 10]);
        let row = &balances(&plan, &P, &|p| data.get(p)).tree[0];
        assert_eq!(row.status, BalanceStatus::NoData);
        assert_eq!(row.parent_total, None);
        assert_eq!(row.unmetered, None);
        assert!(row.reason.as_deref().unwrap().contains("a.v"));
        assert_eq!(row.tolerance_basis, "configured");
    }

    #[test]
    fn nested_trees_give_a_row_per_parent() {
        let plan = BalancePlan {
            nodes: vec![
                node("main.v", None),
                node("a.v", Some("main.v")),
                node("a1.v", Some("a.v")),
            ],
            ..Default::default()
        };
        let data = Data(Vec::new())
            .add("main.v", 100.0, &ALL)
            .add("a.v", 90.0, &ALL)
            .add("a1.v", 45.0, &ALL);
        let b = balances(&plan, &P, &|p| data.get(p));
        assert_eq!(b.tree.len(), 2);
        assert_eq!(b.tree[1].parent, "a.v");
        assert_eq!(b.tree[1].unmetered, Some(450.0));
        assert!(b.water.is_empty());
    }
}
