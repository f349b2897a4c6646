//! The park's own audit (DOMAIN.md, "The park's own audit"): pure figures over what the database gave.
//!
//! - **Allocation** of a shared utility (`[[utility]]`): over one period, the utility's metered total U is
//!   shared among the plants in proportion to their sub-meters S_i: share_i = S_i / sum S, allocated_i =
//!   U x share_i. The utility's losses U - sum S (when the sub-meters count in the utility's unit) are thus
//!   allocated pro rata too, and shown per plant. When a sub-meter (or the utility's meter) has no data in
//!   the period, or covers less of it than `min_completeness`, nobody gets an allocation for that period:
//!   null with the reason. Sharing U among the other sub-meters would charge them the missing plant's use.
//! - **With and without**: a plant's figure of the utility's indicator without its allocation is its own
//!   audit's total (none when its audit has no such indicator); with = own + allocated; the same for
//!   `energy` with the allocation's standard coal (`kgce_per_unit`).
//! - **Benchmarks**: plants of one `industry` side by side per unit of product (reporting period when
//!   every one of them has one, else baseline), ranked on the figure with allocation (1 = best; lower is
//!   better unless the plant's `[[audit.level]]` says `better = "higher"`), with the distance to the
//!   advanced level (level II, 国内清洁生产先进水平, from the plant's `[[audit.level]]`).
//! - **Intensity** per 10^4 yuan of output value (万元产值) and of value added (万元工业增加值): energy with
//!   allocation in tce over the value entered for the plant and period; the park's = sum over sum, null
//!   (with the plants lacking) unless every audited plant has both.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};

use crate::config::{PerPeriod, Plant, Utility};

pub const PERIODS: [&str; 2] = ["baseline", "reporting"];

/// A point's figures over a period.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Metered {
    /// `site/id/meter.point`.
    pub point: String,
    /// As the gateway's `P/meta` gives it; None when the gateway never described the point.
    pub unit: Option<String>,
    /// Null without data in the period.
    pub total: Option<f64>,
    /// Valid hours (at least 45 minutes covered by good readings) over the period's hours.
    pub completeness: f64,
}

/// One plant's part of a utility in one period.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Part {
    pub plant: String,
    pub sub_meter: Metered,
    pub share: Option<f64>,
    pub allocated: Option<f64>,
    /// Its pro-rata part of the utility's losses (null when the units differ).
    pub losses: Option<f64>,
    /// `allocated` x `kgce_per_unit`.
    pub allocated_kgce: Option<f64>,
}

/// A utility's allocation over one period.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Allocation {
    /// Local dates, `to` exclusive (as the reports' periods).
    pub from: String,
    pub to: String,
    pub utility: Metered,
    /// Sum of the sub-meters (null when one has no data).
    pub sub_metered: Option<f64>,
    /// U - sum S, when the sub-meters count in the utility's unit.
    pub losses: Option<f64>,
    pub losses_pct: Option<f64>,
    pub parts: Vec<Part>,
    /// Why there is no allocation (null when there is), or what to look at (sub-meters above the
    /// utility's meter).
    pub reason: Option<String>,
}

/// Share `utility` (U) among `subs` (the plants' sub-meters) by the documented rule.
pub fn allocate(
    u: &Utility,
    (from, to): (&str, &str),
    utility: Metered,
    subs: Vec<(String, Metered)>,
) -> Allocation {
    let mut reason: Option<String> = None;
    let fails = |m: &Metered, who: &str| -> Option<String> {
        match m.total {
            None => Some(format!("{who} {} has no reading in the period", m.point)),
            Some(_) if m.completeness < u.min_completeness => Some(format!(
                "{who} {} covers {:.1} % of the period, below min_completeness {:.0} %",
                m.point,
                100.0 * m.completeness,
                100.0 * u.min_completeness
            )),
            Some(_) => None,
        }
    };
    if let Some(r) = fails(&utility, "the utility's meter") {
        reason = Some(format!("no allocation: {r}"));
    }
    for (plant, m) in &subs {
        if reason.is_none() {
            if let Some(r) = fails(m, &format!("plant {plant}'s sub-meter")) {
                reason = Some(format!(
                    "no allocation: {r} (shared among the other sub-meters, it would charge their plants that plant's use)"
                ));
            }
        }
    }
    let sum: Option<f64> = subs.iter().map(|(_, m)| m.total).sum();
    let same_unit = utility.unit.is_some() && subs.iter().all(|(_, m)| m.unit == utility.unit);
    let losses = match (utility.total, sum) {
        (Some(t), Some(s)) if same_unit => Some(t - s),
        _ => None,
    };
    let usable = match (reason.is_none(), utility.total, sum) {
        (true, Some(t), Some(s)) if s > 0.0 => Some((t, s)),
        (true, _, Some(_)) => {
            reason = Some("no allocation: the sub-meters read no consumption in the period".into());
            None
        }
        _ => None,
    };
    if let (Some(l), Some(t), true) = (losses, utility.total, usable.is_some()) {
        // Beyond float noise: the sub-meters read more than the utility delivered.
        if l < -1e-9 * t.abs().max(1.0) {
            reason = Some(format!(
                "the sub-meters read {:.3} more than the utility's meter: a meter fault? (allocated by share all the same)",
                -l
            ));
        }
    }
    let parts = subs
        .into_iter()
        .map(|(plant, m)| {
            let share = usable.and_then(|(_, s)| m.total.map(|x| x / s));
            let allocated = usable.and_then(|(t, _)| share.map(|sh| t * sh));
            Part {
                plant,
                share,
                allocated,
                losses: usable.and(losses).and_then(|l| share.map(|sh| l * sh)),
                allocated_kgce: allocated.and_then(|a| u.kgce_per_unit.map(|k| a * k)),
                sub_meter: m,
            }
        })
        .collect();
    Allocation {
        from: from.to_string(),
        to: to.to_string(),
        sub_metered: sum,
        losses,
        losses_pct: losses
            .zip(utility.total)
            .and_then(|(l, t)| (t != 0.0).then(|| 100.0 * l / t)),
        utility,
        parts,
        reason,
    }
}

/// The period `[from, to)` of `report` (a plant's report JSON), as strings.
pub fn period_of(report: &Value, period: &str) -> Option<(String, String)> {
    let p = &report["periods"][period];
    Some((
        p["from"].as_str()?.to_string(),
        p["to"].as_str()?.to_string(),
    ))
}

/// A plant's figures with and without its allocations: `{indicator: {"unit", period: {"without",
/// "allocated", "with", "per_unit_without", "per_unit_with", "reason"}}}` for every indicator an
/// allocation adds to (the utilities' indicators, and `energy` for those with `kgce_per_unit`).
pub fn with_and_without(plant: &str, report: &Value, utilities: &[(&Utility, Value)]) -> Value {
    let mut out = serde_json::Map::new();
    // indicator -> (unit, per period: allocated sum, or the reason there is none)
    let mut adds: BTreeMap<String, (String, [Result<f64, String>; 2])> = BTreeMap::new();
    for (u, alloc) in utilities {
        let Some(i) = u.shares.iter().position(|s| s.plant == plant) else {
            continue;
        };
        let mut targets = vec![(u.indicator.clone(), "allocated", alloc["unit"].clone())];
        if u.kgce_per_unit.is_some() {
            targets.push(("energy".into(), "allocated_kgce", json!("kgce")));
        }
        for (ind, field, unit) in targets {
            let e = adds
                .entry(ind)
                .or_insert_with(|| (unit.as_str().unwrap_or("").to_string(), [Ok(0.0), Ok(0.0)]));
            for (j, period) in PERIODS.iter().enumerate() {
                let a = &alloc["periods"][*period];
                if a.is_null() {
                    e.1[j] = Err("the plant has no such period".into());
                    continue;
                }
                let got = a["parts"][i][field]
                    .as_f64()
                    .ok_or_else(|| a["reason"].as_str().unwrap_or("no allocation").to_string());
                e.1[j] = match (&e.1[j], got) {
                    (Ok(s), Ok(x)) => Ok(s + x),
                    (Err(r), _) => Err(r.clone()),
                    (_, Err(r)) => Err(format!("{}: {r}", u.name)),
                };
            }
        }
    }
    for (ind, (unit, per)) in adds {
        let own = &report["indicators"][ind.as_str()];
        let mut o = json!({"unit": if own.is_null() { unit } else { own["total_unit"].as_str().unwrap_or("").to_string() }});
        for (j, period) in PERIODS.iter().enumerate() {
            if report["periods"][*period].is_null() {
                continue;
            }
            let production = report["periods"][*period]["production"].as_f64();
            // No own indicator: the plant meters none of it itself; its own part is none, not unknown.
            let without = if own.is_null() {
                Ok(None)
            } else {
                own[*period]["total"]
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| "the plant's own total is unknown (no valid data)".to_string())
            };
            let per_unit = |x: Option<f64>| {
                x.zip(production)
                    .and_then(|(x, p)| (p > 0.0).then(|| x / p))
            };
            let (allocated, with, reason) = match (&per[j], &without) {
                (Ok(a), Ok(w)) => (Some(*a), Some(w.unwrap_or(0.0) + a), None),
                (Ok(a), Err(r)) => (Some(*a), None, Some(r.clone())),
                (Err(r), _) => (None, None, Some(r.clone())),
            };
            let without = without.ok().flatten();
            o[*period] = json!({
                "without": without, "allocated": allocated, "with": with,
                "per_unit_without": per_unit(without), "per_unit_with": per_unit(with),
                "reason": reason,
            });
        }
        out.insert(ind, o);
    }
    Value::Object(out)
}

/// The `[[audit.level]]` of `indicator` in a plant's audit: (level II threshold, higher is better).
fn advanced(plant: &Plant, indicator: &str) -> (Option<f64>, bool) {
    let level = plant.level(indicator);
    let num = |v: Option<&toml::Value>| {
        v.and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)))
    };
    match level {
        Some(l) => (
            num(l.get("II")),
            l.get("better").and_then(|b| b.as_str()) == Some("higher"),
        ),
        None => (None, false),
    }
}

/// Benchmark tables: one per industry and indicator with per-unit figures (see the module's comment).
/// `plants`: (config, report JSON or null, with-and-without JSON).
pub fn benchmarks(plants: &[(&Plant, &Value, &Value)]) -> Vec<Value> {
    let mut industries: Vec<&str> = Vec::new();
    for (p, r, _) in plants {
        if let (Some(i), false) = (p.industry.as_deref(), r.is_null()) {
            if !industries.contains(&i) {
                industries.push(i);
            }
        }
    }
    let mut out = Vec::new();
    for industry in industries {
        let members: Vec<&(&Plant, &Value, &Value)> = plants
            .iter()
            .filter(|(p, r, _)| p.industry.as_deref() == Some(industry) && !r.is_null())
            .collect();
        let period = if members
            .iter()
            .all(|(_, r, _)| !r["periods"]["reporting"].is_null())
        {
            "reporting"
        } else {
            "baseline"
        };
        let mut indicators: Vec<String> = Vec::new();
        for (_, r, _) in &members {
            for (k, v) in r["indicators"].as_object().into_iter().flatten() {
                if !v["per_unit_unit"].is_null() && !indicators.contains(k) {
                    indicators.push(k.clone());
                }
            }
        }
        for ind in indicators {
            let mut unit = Value::Null;
            let mut rows: Vec<Value> = members
                .iter()
                .map(|(p, r, ww)| {
                    let i = &r["indicators"][ind.as_str()];
                    if unit.is_null() && !i.is_null() {
                        unit = i["per_unit_unit"].clone();
                    }
                    let own = i[period]["per_unit"].as_f64();
                    let with = if ww[ind.as_str()].is_null() {
                        own
                    } else {
                        ww[ind.as_str()][period]["per_unit_with"].as_f64()
                    };
                    let (adv, higher) = advanced(p, &ind);
                    let distance = with.zip(adv).map(|(w, a)| w - a);
                    json!({
                        "plant": p.name, "per_unit": own, "per_unit_with_allocation": with,
                        "advanced": adv, "better": if higher { "higher" } else { "lower" },
                        "distance": distance,
                        "distance_pct": distance.zip(adv).and_then(|(d, a)| (a != 0.0).then(|| 100.0 * d / a)),
                        "rank": Value::Null,
                    })
                })
                .collect();
            // Rank on the figure with allocation; plants without one are not ranked.
            let higher = rows.first().is_some_and(|r| r["better"] == "higher");
            let mut order: Vec<(usize, f64)> = rows
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r["per_unit_with_allocation"].as_f64().map(|v| (i, v)))
                .collect();
            order.sort_by(|a, b| {
                let o = a.1.total_cmp(&b.1);
                if higher {
                    o.reverse()
                } else {
                    o
                }
            });
            for (rank, (i, _)) in order.iter().enumerate() {
                rows[*i]["rank"] = json!(rank + 1);
            }
            rows.sort_by_key(|r| r["rank"].as_u64().unwrap_or(u64::MAX));
            out.push(json!({"industry": industry, "indicator": ind, "unit": unit,
                            "period": period, "rows": rows}));
        }
    }
    out
}

/// tce per 10^4 yuan from kgce and a value.
fn per_value(kgce: Option<f64>, value: Option<f64>) -> Option<f64> {
    kgce.zip(value)
        .and_then(|(e, v)| (v > 0.0).then(|| e / 1000.0 / v))
}

/// Energy (kgce) of a plant in a period, with its allocation where it has one.
fn energy_with(report: &Value, ww: &Value, period: &str) -> Option<f64> {
    if ww["energy"].is_null() {
        report["indicators"]["energy"][period]["total"].as_f64()
    } else {
        ww["energy"][period]["with"].as_f64()
    }
}

fn entered(v: &PerPeriod, period: &str) -> Option<f64> {
    match period {
        "baseline" => v.baseline,
        _ => v.reporting,
    }
}

/// A plant's intensity per period: `{period: {"energy_tce", "output_value", "value_added",
/// "tce_per_10k_yuan_output", "tce_per_10k_yuan_value_added"}}`.
pub fn plant_intensity(plant: &Plant, report: &Value, ww: &Value) -> Value {
    let mut o = json!({});
    for period in PERIODS {
        if report["periods"][period].is_null() {
            continue;
        }
        let e = energy_with(report, ww, period);
        let (ov, va) = (
            entered(&plant.output_value, period),
            entered(&plant.value_added, period),
        );
        o[period] = json!({
            "energy_tce": e.map(|e| e / 1000.0), "output_value": ov, "value_added": va,
            "tce_per_10k_yuan_output": per_value(e, ov),
            "tce_per_10k_yuan_value_added": per_value(e, va),
        });
    }
    o
}

/// The park's intensity: sums over the audited plants; null with the plants lacking a figure.
pub fn park_intensity(plants: &[(&Plant, &Value, &Value)]) -> Value {
    let mut o = json!({});
    for period in PERIODS {
        let (mut e, mut ov, mut va) = (Some(0.0), Some(0.0), Some(0.0));
        let mut lacking: Vec<String> = Vec::new();
        for (p, r, ww) in plants.iter().filter(|(_, r, _)| !r.is_null()) {
            let x = energy_with(r, ww, period);
            let (a, b) = (
                entered(&p.output_value, period),
                entered(&p.value_added, period),
            );
            if x.is_none() || a.is_none() || b.is_none() {
                lacking.push(p.name.clone());
            }
            e = e.zip(x).map(|(s, v)| s + v);
            ov = ov.zip(a).map(|(s, v)| s + v);
            va = va.zip(b).map(|(s, v)| s + v);
        }
        o[period] = json!({
            "energy_tce": e.map(|e| e / 1000.0), "output_value": ov, "value_added": va,
            "tce_per_10k_yuan_output": per_value(e, ov),
            "tce_per_10k_yuan_value_added": per_value(e, va),
            "lacking": lacking,
        });
    }
    o
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::Share;

    fn utility() -> Utility {
        Utility {
            name: "steam".into(),
            point: "park/gw/boiler.steam".into(),
            indicator: "steam".into(),
            kgce_per_unit: Some(128.6),
            min_completeness: 0.75,
            shares: vec![
                Share {
                    plant: "a".into(),
                    point: "a/gw/steam.in".into(),
                },
                Share {
                    plant: "b".into(),
                    point: "b/gw/steam.in".into(),
                },
            ],
        }
    }

    fn m(point: &str, total: Option<f64>, completeness: f64) -> Metered {
        Metered {
            point: point.into(),
            unit: Some("t".into()),
            total,
            completeness,
        }
    }

    /// Boiler 1 000 t, sub-meters 600 t and 300 t: shares 2/3 and 1/3, losses 100 t (10 %) shared 66.7
    /// and 33.3, allocations 666.7 t and 333.3 t (x 128.6 kgce/t).
    #[test]
    fn a_utility_is_allocated_by_sub_meter_shares_losses_pro_rata() {
        let a = allocate(
            &utility(),
            ("2026-01-01", "2026-02-01"),
            m("boiler", Some(1000.0), 1.0),
            vec![
                ("a".into(), m("a", Some(600.0), 1.0)),
                ("b".into(), m("b", Some(300.0), 0.9)),
            ],
        );
        assert_eq!(a.reason, None);
        assert_eq!(a.sub_metered, Some(900.0));
        assert!((a.losses.unwrap() - 100.0).abs() < 1e-9);
        assert!((a.losses_pct.unwrap() - 10.0).abs() < 1e-9);
        let got: Vec<f64> = a.parts.iter().map(|p| p.allocated.unwrap()).collect();
        assert!((got[0] - 2000.0 / 3.0).abs() < 1e-9 && (got[1] - 1000.0 / 3.0).abs() < 1e-9);
        assert!((got[0] + got[1] - 1000.0).abs() < 1e-9, "adds up to U");
        assert!((a.parts[1].losses.unwrap() - 100.0 / 3.0).abs() < 1e-9);
        assert!((a.parts[0].allocated_kgce.unwrap() - 2000.0 / 3.0 * 128.6).abs() < 1e-6);
    }

    #[test]
    fn a_missing_or_thin_sub_meter_gives_nobody_an_allocation() {
        for (b, why) in [
            (m("b", None, 0.0), "has no reading"),
            (m("b", Some(300.0), 0.5), "covers 50.0 %"),
        ] {
            let a = allocate(
                &utility(),
                ("2026-01-01", "2026-02-01"),
                m("boiler", Some(1000.0), 1.0),
                vec![("a".into(), m("a", Some(600.0), 1.0)), ("b".into(), b)],
            );
            let r = a.reason.clone().unwrap();
            assert!(r.contains("plant b's sub-meter") && r.contains(why), "{r}");
            assert!(a
                .parts
                .iter()
                .all(|p| p.allocated.is_none() && p.share.is_none()));
            // The plant with data keeps its sub-meter figure; it is not given all of U.
            assert_eq!(a.parts[0].sub_meter.total, Some(600.0));
        }
    }

    #[test]
    fn sub_meters_above_the_utility_are_said() {
        let a = allocate(
            &utility(),
            ("2026-01-01", "2026-02-01"),
            m("boiler", Some(800.0), 1.0),
            vec![
                ("a".into(), m("a", Some(600.0), 1.0)),
                ("b".into(), m("b", Some(300.0), 1.0)),
            ],
        );
        assert!(a.reason.unwrap().contains("meter fault"));
        assert!((a.losses.unwrap() + 100.0).abs() < 1e-9);
        assert!((a.parts[0].allocated.unwrap() - 1600.0 / 3.0).abs() < 1e-9);
    }
}
