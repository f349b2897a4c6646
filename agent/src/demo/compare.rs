//! The agent's audit figures beside the simulator's ground truth, per period, with the difference in %.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use plantmeter_common::audit::report::{BaselineMethod, Report};
use plantmeter_sim::Amounts;

use crate::audit::render::{
    display_width, engine_text, indicator_label, variable_label, variables_label, Lang,
};

/// Key of one source of a pollutant in [`truth_totals`] and [`rows`]: `SO2 @ flue_gas`.
pub fn source_key(pollutant: &str, source: &str) -> String {
    format!("{pollutant} @ {source}")
}

/// Key of one product's quantity in [`truth_totals`] and [`rows`]: `product knit`.
pub fn product_key(product: &str) -> String {
    format!("product {product}")
}

/// True totals of every indicator of `report` over one period, in the indicator's `total_unit`: carriers as
/// metered, `energy` and `co2` with the factors the report says it used, pollutant loads in kg; also each
/// pollutant's sources ([`source_key`]) and each product's quantity ([`product_key`]).
pub fn truth_totals(report: &Report, truth: &Amounts) -> BTreeMap<String, f64> {
    let mut kgce: BTreeMap<&str, f64> = BTreeMap::new();
    let mut co2: BTreeMap<&str, f64> = BTreeMap::new();
    for f in &report.method.factors {
        kgce.insert(f.carrier.as_str(), f.kgce_per_unit);
        co2.insert(f.carrier.as_str(), f.co2_kg_per_unit);
    }
    let mut out = BTreeMap::new();
    let mut energy = 0.0;
    let mut carbon = 0.0;
    for (carrier, amount) in &truth.carriers {
        out.insert(carrier.clone(), *amount);
        energy += amount * kgce.get(carrier.as_str()).copied().unwrap_or(0.0);
        carbon += amount * co2.get(carrier.as_str()).copied().unwrap_or(0.0);
    }
    out.insert("energy".into(), energy);
    out.insert("co2".into(), carbon);
    for (p, kg) in &truth.pollutants_kg {
        out.insert(p.clone(), *kg);
    }
    for (p, sources) in &truth.sources_kg {
        for (source, kg) in sources {
            out.insert(source_key(p, source), *kg);
        }
    }
    for (name, q) in &truth.products {
        out.insert(product_key(name), *q);
    }
    out
}

/// 100 x (measured - truth) / truth; `None` when the truth is zero.
pub fn diff_pct(measured: f64, truth: f64) -> Option<f64> {
    (truth != 0.0 && truth.is_finite() && measured.is_finite())
        .then(|| 100.0 * (measured - truth) / truth)
}

/// One row of the comparison: (key, unit, [(measured, truth) per period]).
pub struct Row {
    pub key: String,
    pub unit: String,
    pub periods: Vec<Option<(f64, f64)>>,
}

/// Rows for production, each product (with two or more), every indicator of the report and each source of a
/// pollutant with several, for the baseline and (when present) reporting periods; `truth` holds (production,
/// totals) per period in the same order.
pub fn rows(report: &Report, truth: &[(f64, BTreeMap<String, f64>)]) -> Vec<Row> {
    let baseline = &report.periods.baseline;
    let reporting = report.periods.reporting.as_ref();
    let mut out = vec![row(
        "production",
        &report.production_unit,
        [Some(baseline.production), reporting.map(|p| p.production)],
        truth,
        |p, _| Some(p),
    )];
    let measured_products = [
        baseline.products.as_ref(),
        reporting.and_then(|p| p.products.as_ref()),
    ];
    let names: Vec<&String> = measured_products
        .iter()
        .flatten()
        .flat_map(|m| m.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for name in names {
        let key = product_key(name);
        let measured = measured_products.map(|m| m.and_then(|m| m.get(name)).copied());
        out.push(row(&key, "", measured, truth, |_, t| t.get(&key).copied()));
    }
    for (key, ind) in &report.indicators {
        let reporting = ind.reporting.as_ref();
        let measured = [ind.baseline.total, reporting.and_then(|r| r.total)];
        out.push(row(key, &ind.total_unit, measured, truth, |_, t| {
            t.get(key).copied()
        }));
        for (source, totals) in ind.sources.iter().flatten() {
            let measured = [
                totals.baseline.total,
                totals.reporting.as_ref().and_then(|r| r.total),
            ];
            let skey = source_key(key, source);
            out.push(row(&skey, &ind.total_unit, measured, truth, |_, t| {
                t.get(&skey).copied()
            }));
        }
        let per_unit = [ind.baseline.per_unit, reporting.and_then(|r| r.per_unit)];
        out.push(row(
            &format!("{key} / {}", report.production_unit),
            &ind.per_unit_unit,
            per_unit,
            truth,
            |p, t| (p > 0.0).then(|| t.get(key).map(|v| v / p)).flatten(),
        ));
    }
    out
}

/// One row: period i's measured figure against `truth_of` its (production, totals), where both exist.
fn row(
    key: &str,
    unit: &str,
    measured: [Option<f64>; 2],
    truth: &[(f64, BTreeMap<String, f64>)],
    truth_of: impl Fn(f64, &BTreeMap<String, f64>) -> Option<f64>,
) -> Row {
    Row {
        key: key.to_string(),
        unit: unit.to_string(),
        periods: truth
            .iter()
            .enumerate()
            .map(|(i, (p, t))| Some((measured.get(i).copied().flatten()?, truth_of(*p, t)?)))
            .collect(),
    }
}

/// The largest absolute difference in % over all rows and periods, with its row key and period index.
pub fn largest_diff(rows: &[Row]) -> Option<(f64, String, usize)> {
    let mut best: Option<(f64, String, usize)> = None;
    for r in rows {
        for (i, p) in r.periods.iter().enumerate() {
            if let Some(d) = p.and_then(|(m, t)| diff_pct(m, t)) {
                if best.as_ref().is_none_or(|b| d.abs() > b.0.abs()) {
                    best = Some((d, r.key.clone(), i));
                }
            }
        }
    }
    best
}

/// The baseline model of each indicator with a regression variable besides production (and of energy): the
/// chosen variables, the method and every candidate tried with its adjusted R2 and whether it was valid.
pub fn models(report: &Report, lang: Lang) -> String {
    let zh = lang == Lang::Zh;
    let (chosen, ratio, valid, invalid, r2_adj) = if zh {
        ("模型", "比值法", "有效", "无效", "调整 R2")
    } else {
        ("model", "ratio method", "valid", "invalid", "adj. R2")
    };
    let mut out = String::new();
    for (key, ind) in &report.indicators {
        let m = &ind.model;
        let interesting = key == "energy"
            || m.variables.iter().any(|v| v != "production")
            || m.candidates.len() > 1 && m.method == BaselineMethod::Regression;
        if !interesting {
            continue;
        }
        // In Chinese, the indicator's and the variables' names as the report prints them.
        let name = if zh {
            indicator_label(lang, key)
        } else {
            key.clone()
        };
        let head = if m.method == BaselineMethod::Regression {
            let coefs: Vec<String> = m
                .coefficients
                .iter()
                .map(|(k, v)| format!("{} {}", variable_label(lang, k), num(*v)))
                .collect();
            format!(
                "{name}: {chosen} [{}] (n {}, {r2_adj} {}, CV(RMSE) {}%): {}",
                variables_label(lang, &m.variables),
                m.n,
                m.r2_adj.map_or("–".into(), |r| format!("{r:.4}")),
                m.cv_rmse_pct.map_or("–".into(), |c| format!("{c:.2}")),
                coefs.join(", ")
            )
        } else {
            let why = m.reason.as_deref().map_or_else(
                || {
                    if zh {
                        "无有效候选模型"
                    } else {
                        "no valid candidate"
                    }
                    .to_string()
                },
                |r| engine_text(lang, r),
            );
            format!("{name}: {ratio} ({why})")
        };
        let _ = writeln!(out, "{head}");
        for c in &m.candidates {
            let _ = writeln!(
                out,
                "    [{}] {r2_adj} {}, p {}: {}",
                variables_label(lang, &c.variables),
                c.r2_adj.map_or("–".into(), |r| format!("{r:.4}")),
                c.p_value.map_or("–".into(), |p| format!("{p:.2e}")),
                if c.valid {
                    valid.to_string()
                } else {
                    format!(
                        "{invalid} ({})",
                        engine_text(lang, c.reason.as_deref().unwrap_or("?"))
                    )
                }
            );
        }
    }
    out
}

/// A comparison row's name in `lang`: `production`, `product knit`, `energy`, `COD @ outfall`,
/// `energy / t` as the report names them in Chinese (产量, 产品 knit, 综合能耗 ...).
pub fn row_label(lang: Lang, key: &str) -> String {
    if lang == Lang::En {
        return key.to_string();
    }
    if key == "production" {
        return variable_label(lang, key);
    }
    if let Some(p) = key.strip_prefix("product ") {
        return format!("产品 {p}");
    }
    if let Some((k, unit)) = key.split_once(" / ") {
        return format!("{} / {unit}", indicator_label(lang, k));
    }
    if let Some((k, source)) = key.split_once(" @ ") {
        return format!("{} @ {source}", indicator_label(lang, k));
    }
    indicator_label(lang, key)
}

fn num(x: f64) -> String {
    let a = x.abs();
    if a >= 1e6 {
        format!("{x:.0}")
    } else if a >= 100.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.3}")
    } else {
        format!("{x:.5}")
    }
}

/// The comparison as an aligned text table.
pub fn table(rows: &[Row], period_names: &[&str], lang: Lang) -> String {
    let (indicator, unit, agent, truth, diff) = match lang {
        Lang::En => ("indicator", "unit", "agent", "truth", "diff %"),
        Lang::Zh => ("指标", "单位", "代理实测", "模拟真值", "差异 %"),
    };
    let mut header = vec![indicator.to_string(), unit.to_string()];
    for p in period_names {
        header.push(format!("{p}: {agent}"));
        header.push(format!("{p}: {truth}"));
        header.push(diff.to_string());
    }
    let mut lines = vec![header];
    for r in rows {
        let mut cells = vec![row_label(lang, &r.key), r.unit.clone()];
        for p in r.periods.iter().take(period_names.len()) {
            match p {
                Some((m, t)) => {
                    cells.push(num(*m));
                    cells.push(num(*t));
                    cells.push(diff_pct(*m, *t).map_or("–".into(), |d| format!("{d:+.3}")));
                }
                None => cells.extend(["–".to_string(), "–".to_string(), "–".to_string()]),
            }
        }
        lines.push(cells);
    }
    let cols = lines.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            lines
                .iter()
                .filter_map(|l| l.get(c))
                .map(|s| display_width(s))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (n, l) in lines.iter().enumerate() {
        let mut line = String::new();
        for (c, cell) in l.iter().enumerate() {
            let pad = " ".repeat(widths[c].saturating_sub(display_width(cell)));
            if c > 0 {
                line.push_str("  ");
            }
            if c < 2 {
                line.push_str(cell);
                line.push_str(&pad);
            } else {
                line.push_str(&pad);
                line.push_str(cell);
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
        if n == 0 {
            let total: usize = widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
            let _ = writeln!(out, "{}", "-".repeat(total));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_and_alignment() {
        assert_eq!(diff_pct(101.0, 100.0), Some(1.0));
        assert_eq!(diff_pct(1.0, 0.0), None);
        let rows = vec![
            Row {
                key: "energy".into(),
                unit: "kgce".into(),
                periods: vec![Some((99.0, 100.0)), None],
            },
            Row {
                key: "COD".into(),
                unit: "kg".into(),
                periods: vec![Some((10.0, 10.0)), Some((10.2, 10.0))],
            },
        ];
        let (d, key, period) = largest_diff(&rows).unwrap();
        assert!((d - 2.0).abs() < 1e-9);
        assert_eq!((key.as_str(), period), ("COD", 1));
        let t = table(&rows, &["baseline", "reporting"], Lang::En);
        assert!(t.contains("-1.000"), "{t}");
        assert!(t.contains("+2.000"), "{t}");
        let widths: Vec<usize> = t.lines().map(display_width).collect();
        assert!(widths[1] >= widths[0] && widths[1] >= widths[2], "{t}");
    }

    #[test]
    fn products_and_sources_are_compared_and_the_model_choice_is_listed() {
        use plantmeter_common::audit::report::{ModelCandidate, PeriodTotal, SourceTotals};
        let mut r = crate::audit::render::fixture::report();
        let products =
            |k: f64, w: f64| Some([("knit".to_string(), k), ("woven".to_string(), w)].into());
        r.periods.baseline.products = products(700.0, 375.0);
        if let Some(p) = r.periods.reporting.as_mut() {
            p.products = products(350.0, 180.0);
        }
        let so2 = r.indicator_mut("SO2").unwrap();
        let source = |b: f64, rep: f64| SourceTotals {
            baseline: PeriodTotal { total: Some(b) },
            reporting: Some(PeriodTotal { total: Some(rep) }),
        };
        so2.sources = Some(
            [
                ("flue_gas".to_string(), source(30.0, 14.0)),
                ("flue_gas_2".to_string(), source(10.0, 6.0)),
            ]
            .into(),
        );
        let energy = r.indicator_mut("energy").unwrap();
        energy.model.variables = vec!["production".into(), "hdd".into()];
        energy.model.candidates = vec![
            ModelCandidate {
                variables: vec!["production".into()],
                r2_adj: Some(0.81),
                p_value: Some(1e-9),
                valid: true,
                reason: None,
            },
            ModelCandidate {
                variables: vec!["production".into(), "hdd".into()],
                r2_adj: Some(0.97),
                p_value: Some(1e-30),
                valid: true,
                reason: None,
            },
        ];
        let truth = Amounts {
            products: [("knit".to_string(), 700.0), ("woven".to_string(), 380.0)].into(),
            sources_kg: [(
                "SO2".to_string(),
                [
                    ("flue_gas".to_string(), 30.0),
                    ("flue_gas_2".to_string(), 10.5),
                ]
                .into(),
            )]
            .into(),
            ..Amounts::default()
        };
        let totals = truth_totals(&r, &truth);
        let rows = rows(&r, &[(1000.0, totals.clone()), (500.0, totals)]);
        let row = |k: &str| rows.iter().find(|x| x.key == k).unwrap();
        assert_eq!(row("product knit").periods[0], Some((700.0, 700.0)));
        assert_eq!(row("product woven").periods[0], Some((375.0, 380.0)));
        assert_eq!(row("SO2 @ flue_gas").periods[0], Some((30.0, 30.0)));
        assert_eq!(row("SO2 @ flue_gas_2").periods[0], Some((10.0, 10.5)));
        let (d, key, _) = largest_diff(&rows).unwrap();
        assert!(d.abs() > 1.0, "{d} {key}");
        let m = models(&r, Lang::En);
        assert!(m.contains("energy: model [production + hdd]"), "{m}");
        assert!(m.contains("[production] adj. R2 0.8100"), "{m}");
        assert!(m.contains("[production + hdd] adj. R2 0.9700"), "{m}");
    }
}
