//! The models' diagnostics (issue #29 item 4) in every rendering: the baseline's data sufficiency against
//! its rules, leave-one-out CV(RMSE) beside the fitted one, rho and n' (clamped and said), extrapolation
//! per model variable, and the conventions the figures use. Labels in English and Chinese; the engine's
//! reasons through `engine_text`.

use std::fmt::Write as _;

use crate::audit::diagnostics::{Conventions, Extrapolation, ModelDiagnostics};
use crate::audit::report::Report;

use super::engine_text::{engine_text, variable_label};
use super::format::{display, display_opt, escape, pct_opt, plain};
use super::i18n::{indicator_label, yes_no, Lang};

/// The labels of this section, English and Chinese.
pub(super) struct DiagLabels {
    pub sufficiency: &'static str,
    pub sufficiency_intro: &'static str,
    pub days_with_data: &'static str,
    pub coverage: &'static str,
    pub longest_gap: &'static str,
    pub zero_days: &'static str,
    pub outlier_days: &'static str,
    pub sufficient: &'static str,
    pub failed_rules: &'static str,
    pub validation: &'static str,
    pub cv_fitted: &'static str,
    pub cv_loo: &'static str,
    pub rho: &'static str,
    pub n_eff_formula: &'static str,
    pub n_eff: &'static str,
    pub note: &'static str,
    pub extrapolation: &'static str,
    pub variable: &'static str,
    pub baseline_range: &'static str,
    pub buckets_checked: &'static str,
    pub buckets_unchecked: &'static str,
    pub below: &'static str,
    pub above: &'static str,
    pub days_outside: &'static str,
    pub max_below: &'static str,
    pub max_above: &'static str,
    pub beyond_pct: &'static str,
    pub none_outside: &'static str,
    pub conventions: &'static str,
    pub r2_def: &'static str,
    pub residual_def: &'static str,
    pub cv_denominator: &'static str,
    pub nmbe_denominator: &'static str,
    pub loo_denominator: &'static str,
    pub rho_def: &'static str,
    pub n_eff_def: &'static str,
    pub eemeter: &'static str,
    pub indicator: &'static str,
    pub rules: &'static str,
}

const EN: DiagLabels = DiagLabels {
    sufficiency: "Baseline data sufficiency",
    sufficiency_intro: "Judged on the baseline's days before each model is fitted (a day with data has at least 20 valid hours of every point of the indicator).",
    days_with_data: "Days with data",
    coverage: "Coverage %",
    longest_gap: "Longest gap (days)",
    zero_days: "Zero days",
    outlier_days: "Outlier days",
    sufficient: "Sufficient",
    failed_rules: "Rules not met",
    validation: "Cross-validation and autocorrelation",
    cv_fitted: "CV(RMSE) % fitted",
    cv_loo: "CV(RMSE) % leave-one-out",
    rho: "Residual autocorrelation ρ",
    n_eff_formula: "n(1−ρ)/(1+ρ)",
    n_eff: "n′ used",
    note: "Note",
    extrapolation: "Extrapolation: reporting values outside the baseline's range",
    variable: "Variable",
    baseline_range: "Baseline range",
    buckets_checked: "Buckets compared",
    buckets_unchecked: "Partial buckets not compared",
    below: "Below",
    above: "Above",
    days_outside: "Days outside",
    max_below: "Furthest below",
    max_above: "Furthest above",
    beyond_pct: "Furthest beyond, % of range",
    none_outside: "within the range",
    conventions: "Conventions of the model figures",
    r2_def: "R²",
    residual_def: "Residual e",
    cv_denominator: "CV(RMSE) denominator",
    nmbe_denominator: "NMBE denominator",
    loo_denominator: "Leave-one-out CV(RMSE) denominator",
    rho_def: "ρ",
    n_eff_def: "n′ (savings uncertainty)",
    eemeter: "eemeter, for comparison: R2 = squared correlation of actual and predicted; CV(RMSE) over n; ρ = correlation of consecutive residuals; n′ not clamped.",
    indicator: "Indicator",
    rules: "Rules",
};

const ZH: DiagLabels = DiagLabels {
    sufficiency: "基准期数据充分性",
    sufficiency_intro: "在拟合每个模型之前按基准期逐日判定（有数据日：该指标所有测点的有效小时不少于 20 个）。",
    days_with_data: "有数据天数",
    coverage: "覆盖率 %",
    longest_gap: "最长缺数（天）",
    zero_days: "零值天数",
    outlier_days: "离群天数",
    sufficient: "充分",
    failed_rules: "未满足的规则",
    validation: "交叉验证与自相关",
    cv_fitted: "CV(RMSE) %（拟合）",
    cv_loo: "CV(RMSE) %（留一法）",
    rho: "残差自相关系数 ρ",
    n_eff_formula: "n(1−ρ)/(1+ρ)",
    n_eff: "采用的 n′",
    note: "说明",
    extrapolation: "外推：报告期变量超出基准期范围",
    variable: "变量",
    baseline_range: "基准期范围",
    buckets_checked: "比较的时段数",
    buckets_unchecked: "未比较的不完整时段",
    below: "低于范围",
    above: "高于范围",
    days_outside: "超出范围天数",
    max_below: "最多低于",
    max_above: "最多高于",
    beyond_pct: "最大超出占范围 %",
    none_outside: "均在范围内",
    conventions: "模型指标的约定",
    r2_def: "R²",
    residual_def: "残差 e",
    cv_denominator: "CV(RMSE) 分母",
    nmbe_denominator: "NMBE 分母",
    loo_denominator: "留一法 CV(RMSE) 分母",
    rho_def: "ρ",
    n_eff_def: "n′（节能量不确定度）",
    eemeter: "对照 eemeter：R² 为实测值与预测值相关系数的平方；CV(RMSE) 除以 n；ρ 为相邻残差的相关系数；n′ 不设上限。",
    indicator: "指标",
    rules: "规则",
};

pub(super) fn labels(lang: Lang) -> &'static DiagLabels {
    match lang {
        Lang::En => &EN,
        Lang::Zh => &ZH,
    }
}

/// A convention's formula as people read it in `lang` (the JSON keeps the ASCII form).
fn formula(lang: Lang, s: &str) -> String {
    let zh = lang == Lang::Zh;
    match s {
        "1 - SSE/SST" if zh => "1 − 残差平方和 / 总离差平方和".to_string(),
        "1 - SSE/SST" => "1 − SSE/SST".to_string(),
        "actual - predicted" if zh => "实测值 − 预测值".to_string(),
        "actual - predicted" => "actual − predicted".to_string(),
        "n - p" => "n − p".to_string(),
        "sum(e_i e_(i-1), i >= 2) / sum(e_i^2)" => "Σᵢ₌₂ eᵢ·eᵢ₋₁ / Σ eᵢ²".to_string(),
        "n (1 - rho)/(1 + rho) when rho > 0, else n" if zh => {
            "ρ > 0 时 n(1−ρ)/(1+ρ)，否则 n".to_string()
        }
        "n (1 - rho)/(1 + rho) when rho > 0, else n" => {
            "n(1−ρ)/(1+ρ) when ρ > 0, else n".to_string()
        }
        other => other.to_string(),
    }
}

/// The conventions as (label, formula) pairs.
pub(super) fn convention_rows(lang: Lang, c: &Conventions) -> Vec<(&'static str, String)> {
    let l = labels(lang);
    vec![
        (l.r2_def, formula(lang, &c.r2)),
        (l.residual_def, formula(lang, &c.residual)),
        (l.cv_denominator, formula(lang, &c.cv_rmse_denominator)),
        (l.nmbe_denominator, formula(lang, &c.nmbe_denominator)),
        (l.loo_denominator, formula(lang, &c.cv_rmse_loo_denominator)),
        (l.rho_def, formula(lang, &c.rho)),
        (l.n_eff_def, formula(lang, &c.n_eff)),
    ]
}

/// One variable's extrapolation in a few words: `production: 2 buckets above (2 days), up to 20 (22 %
/// of the range)`, or that it stays within the range.
pub(super) fn extrapolation_text(lang: Lang, x: &Extrapolation) -> String {
    let l = labels(lang);
    let var = variable_label(lang, &x.variable);
    if x.buckets_below + x.buckets_above == 0 {
        return format!("{var}: {}", l.none_outside);
    }
    let beyond = x
        .max_beyond_pct_of_range
        .map_or(String::new(), |p| format!(", {} {}", pct_opt(Some(p)), "%"));
    match lang {
        Lang::En => format!(
            "{var}: {} below, {} above ({} days){beyond} of range",
            x.buckets_below,
            x.buckets_above,
            days(x.days_outside)
        ),
        Lang::Zh => format!(
            "{var}：低于 {} 个、高于 {} 个时段（{} 天）{beyond}",
            x.buckets_below,
            x.buckets_above,
            days(x.days_outside)
        ),
    }
}

/// Days (or n′) as people count them: whole ones without decimals, part days (an hourly model's) with them.
fn days(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{}", x.round())
    } else {
        display(x)
    }
}

/// The sufficiency rules in words, for the table's header note.
fn rules_text(lang: Lang, d: &ModelDiagnostics) -> String {
    let r = &d.sufficiency.rules;
    match lang {
        Lang::En => format!(
            "coverage ≥ {} %, longest gap ≤ {} days, zero days ≤ {} %, outlier days ≤ {} % (beyond Q1 − {k}·IQR, Q3 + {k}·IQR of the non-zero days)",
            pct_opt(Some(100.0 * r.min_coverage)),
            r.max_gap_days,
            pct_opt(Some(100.0 * r.max_zero_days_share)),
            pct_opt(Some(100.0 * r.max_outlier_days_share)),
            k = plain(r.outlier_iqr_factor)
        ),
        Lang::Zh => format!(
            "覆盖率 ≥ {} %，最长缺数 ≤ {} 天，零值天数 ≤ {} %，离群天数 ≤ {} %（超出非零日的 Q1 − {k} × 四分位距、Q3 + {k} × 四分位距）",
            pct_opt(Some(100.0 * r.min_coverage)),
            r.max_gap_days,
            pct_opt(Some(100.0 * r.max_zero_days_share)),
            pct_opt(Some(100.0 * r.max_outlier_days_share)),
            k = plain(r.outlier_iqr_factor)
        ),
    }
}

/// Every model with diagnostics: (label, key, diagnostics, fitted CV(RMSE) %): the indicators', then the
/// measures' own (their key is the measure's name; their fitted statistics are not in the report).
pub(super) fn models(
    report: &Report,
    lang: Lang,
) -> Vec<(String, &str, &ModelDiagnostics, Option<f64>)> {
    let indicators = report.indicators.iter().filter_map(|(k, i)| {
        i.model
            .diagnostics
            .as_ref()
            .map(|d| (indicator_label(lang, k), k.as_str(), d, i.model.cv_rmse_pct))
    });
    let measures = report.measures.iter().filter_map(|m| {
        m.diagnostics.as_ref().map(|d| {
            let label = match lang {
                Lang::En => format!("measure {}", m.name),
                Lang::Zh => format!("方案 {}", m.name),
            };
            (label, m.name.as_str(), d, None)
        })
    });
    indicators.chain(measures).collect()
}

fn td(out: &mut String, text: &str, num: bool) {
    let class = if num { r#" class="num""# } else { "" };
    let _ = write!(out, "<td{class}>{}</td>", escape(text));
}

fn head(out: &mut String, cells: &[&str]) {
    out.push_str(r#"<div class="tw"><table><thead><tr>"#);
    for c in cells {
        let _ = write!(out, "<th>{}</th>", escape(c));
    }
    out.push_str("</tr></thead><tbody>");
}

/// The data-sufficiency table, shown before the models' statistics.
pub(super) fn html_sufficiency(report: &Report, lang: Lang, out: &mut String) {
    let Some((_, _, first, _)) = models(report, lang).into_iter().next() else {
        return;
    };
    let l = labels(lang);
    let colon = if lang == Lang::Zh { "：" } else { ": " };
    let _ = write!(
        out,
        r#"<h3 id="sufficiency">{}</h3><p class="note">{} {}{colon}{}</p>"#,
        escape(l.sufficiency),
        escape(l.sufficiency_intro),
        escape(l.rules),
        escape(&rules_text(lang, first))
    );
    head(
        out,
        &[
            l.indicator,
            l.days_with_data,
            l.coverage,
            l.longest_gap,
            l.zero_days,
            l.outlier_days,
            l.sufficient,
        ],
    );
    for (label, _, d, _) in models(report, lang) {
        let s = &d.sufficiency;
        out.push_str("<tr>");
        td(out, &label, false);
        td(out, &format!("{} / {}", s.days_with_data, s.days), true);
        td(out, &pct_opt(s.coverage.map(|c| 100.0 * c)), true);
        td(out, &s.longest_gap_days.to_string(), true);
        td(out, &s.zero_days.to_string(), true);
        td(
            out,
            &s.outlier_days.map_or("–".to_string(), |o| o.to_string()),
            true,
        );
        let class = if s.pass { "good" } else { "bad" };
        let _ = write!(
            out,
            r#"<td class="{class}">{}</td></tr>"#,
            escape(yes_no(lang, s.pass))
        );
        if !s.failed.is_empty() {
            let failed: Vec<String> = s.failed.iter().map(|f| engine_text(lang, f)).collect();
            let sep = if lang == Lang::Zh { "；" } else { "; " };
            let _ = write!(
                out,
                r#"<tr class="reason"><td colspan="7">{}{colon}{}</td></tr>"#,
                escape(l.failed_rules),
                escape(&failed.join(sep))
            );
        }
    }
    out.push_str("</tbody></table></div>");
}

/// Cross-validation, autocorrelation, extrapolation and conventions, after the models' coefficients.
pub(super) fn html_validation(report: &Report, lang: Lang, out: &mut String) {
    let Some((_, _, first, _)) = models(report, lang).into_iter().next() else {
        return;
    };
    let l = labels(lang);
    let _ = write!(out, r#"<h3 id="validation">{}</h3>"#, escape(l.validation));
    head(
        out,
        &[
            l.indicator,
            l.cv_fitted,
            l.cv_loo,
            l.rho,
            "n",
            l.n_eff_formula,
            l.n_eff,
            l.note,
        ],
    );
    for (label, _, d, cv) in models(report, lang) {
        let a = &d.autocorrelation;
        out.push_str("<tr>");
        td(out, &label, false);
        td(out, &pct_opt(cv), true);
        td(out, &pct_opt(d.cv_rmse_loo_pct), true);
        td(
            out,
            &a.rho
                .filter(|v| v.is_finite())
                .map_or("–".to_string(), |v| format!("{v:.3}")),
            true,
        );
        td(out, &a.n.to_string(), true);
        td(out, &display_opt(a.n_eff_formula), true);
        td(out, &a.n_eff.map_or("–".to_string(), days), true);
        let notes: Vec<String> = d
            .cv_rmse_loo_reason
            .iter()
            .chain(&a.note)
            .map(|n| engine_text(lang, n))
            .collect();
        let sep = if lang == Lang::Zh { "；" } else { "; " };
        td(out, &notes.join(sep), false);
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");

    let _ = write!(
        out,
        r#"<h3 id="extrapolation">{}</h3>"#,
        escape(l.extrapolation)
    );
    let rows: Vec<(String, &Extrapolation)> = models(report, lang)
        .into_iter()
        .flat_map(|(label, _, d, _)| d.extrapolation.iter().map(move |x| (label.clone(), x)))
        .collect();
    if rows.is_empty() {
        let why = models(report, lang)
            .into_iter()
            .find_map(|(_, _, d, _)| d.extrapolation_reason.clone())
            .unwrap_or_default();
        let _ = write!(
            out,
            r#"<p class="note">{}</p>"#,
            escape(&engine_text(lang, &why))
        );
    } else {
        head(
            out,
            &[
                l.indicator,
                l.variable,
                l.baseline_range,
                l.buckets_checked,
                l.buckets_unchecked,
                l.below,
                l.above,
                l.days_outside,
                l.max_below,
                l.max_above,
                l.beyond_pct,
            ],
        );
        for (label, x) in rows {
            let outside = x.buckets_below + x.buckets_above > 0;
            let _ = write!(out, "<tr{}>", if outside { r#" class="bad""# } else { "" });
            td(out, &label, false);
            td(out, &variable_label(lang, &x.variable), false);
            td(
                out,
                &format!("{} – {}", display(x.baseline_min), display(x.baseline_max)),
                true,
            );
            td(out, &x.buckets_checked.to_string(), true);
            td(out, &x.buckets_unchecked.to_string(), true);
            td(out, &x.buckets_below.to_string(), true);
            td(out, &x.buckets_above.to_string(), true);
            td(out, &days(x.days_outside), true);
            td(out, &display_opt(x.max_below), true);
            td(out, &display_opt(x.max_above), true);
            td(out, &pct_opt(x.max_beyond_pct_of_range), true);
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table></div>");
    }

    let _ = write!(
        out,
        r#"<h3 id="conventions">{}</h3><dl class="facts">"#,
        escape(l.conventions)
    );
    for (k, v) in convention_rows(lang, &first.conventions) {
        let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", escape(k), escape(&v));
    }
    let _ = write!(out, r#"</dl><p class="note">{}</p>"#, escape(l.eemeter));
}

/// CSV: the columns appended to the one table (README "Report CSV").
pub(super) fn csv_header(lang: Lang) -> [&'static str; CSV_COLUMNS] {
    let l = labels(lang);
    match lang {
        Lang::En => [
            "Baseline data sufficient",
            "Baseline days with data %",
            "Longest gap (days)",
            "Zero days",
            "Outlier days",
            "CV(RMSE) leave-one-out %",
            "Residual autocorrelation rho",
            "Effective n'",
            l.extrapolation,
        ],
        Lang::Zh => [
            "基准期数据充分",
            "基准期有数据天数 %",
            "最长缺数（天）",
            "零值天数",
            "离群天数",
            "CV(RMSE) 留一法 %",
            "残差自相关系数 ρ",
            "有效样本数 n′",
            l.extrapolation,
        ],
    }
}

/// Number of the columns of [`csv_header`].
pub(super) const CSV_COLUMNS: usize = 9;

/// A CSV cell of these columns: text or a number (None: empty).
pub(super) enum CsvCell {
    Text(String),
    Num(Option<f64>),
}

/// An indicator's cells of [`csv_header`]; all empty without diagnostics.
pub(super) fn csv_cells(lang: Lang, d: Option<&ModelDiagnostics>) -> Vec<CsvCell> {
    let Some(d) = d else {
        return (0..CSV_COLUMNS).map(|_| CsvCell::Num(None)).collect();
    };
    let s = &d.sufficiency;
    let sep = if lang == Lang::Zh { "；" } else { "; " };
    let extrapolation = if d.extrapolation.is_empty() {
        engine_text(lang, d.extrapolation_reason.as_deref().unwrap_or(""))
    } else {
        d.extrapolation
            .iter()
            .map(|x| extrapolation_text(lang, x))
            .collect::<Vec<_>>()
            .join(sep)
    };
    vec![
        CsvCell::Text(yes_no(lang, s.pass).to_string()),
        CsvCell::Num(s.coverage.map(|c| 100.0 * c)),
        CsvCell::Num(Some(s.longest_gap_days as f64)),
        CsvCell::Num(Some(s.zero_days as f64)),
        CsvCell::Num(s.outlier_days.map(|o| o as f64)),
        CsvCell::Num(d.cv_rmse_loo_pct),
        CsvCell::Num(d.autocorrelation.rho),
        CsvCell::Num(d.autocorrelation.n_eff),
        CsvCell::Text(extrapolation),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::{csv, fixture, html};
    use super::*;

    #[test]
    fn html_shows_sufficiency_before_the_models_and_validation_after() {
        let r = fixture::rich();
        let h = html(&r, Lang::En);
        let suff = h.find(r#"id="sufficiency""#).unwrap();
        let stats = h.find("Baseline model statistics").unwrap();
        let valid = h.find(r#"id="validation""#).unwrap();
        assert!(suff < stats && stats < valid, "{suff} {stats} {valid}");
        // The fixture's energy model: 361 of 365 days, 2 outliers, a 3-day gap; loo 5.4 % beside 4.1 %.
        assert!(h.contains("<td class=\"num\">361 / 365</td>"));
        assert!(h.contains("<td class=\"num\">5.4</td>"));
        // rho < 0: the formula's n' above n and the n' used, said.
        assert!(
            h.contains("exceeds n = 365; n&#39; = n is used"),
            "clamp said"
        );
        assert!(h.contains("<td class=\"num\">365</td>"));
        // The failing block names its rule.
        assert!(h.contains("coverage 49.3 % of the baseline&#39;s days is below 90.0 %"));
        // Extrapolation: production 2 days above.
        assert!(h.contains("Furthest above"));
        assert!(h.contains("1 − SSE/SST") && h.contains("actual − predicted"));
        // A measure's own model is diagnosed too, under its name.
        assert!(h.contains("<td>measure dye-bath heat recovery</td>"));
        let z = html(&r, Lang::Zh);
        assert!(z.contains("<td>方案 dye-bath heat recovery</td>"));
        assert!(z.contains("基准期数据充分性") && z.contains("覆盖率 49.3 % 低于 90.0 %"));
        assert!(z.contains("实测值 − 预测值"));
    }

    #[test]
    fn csv_carries_the_diagnostics_columns() {
        let r = fixture::rich();
        let text = String::from_utf8(csv(&r, Lang::En)).unwrap();
        let (head, rows) = super::super::csv::tests::read(&text);
        let col = |n: &str| head.iter().position(|h| h == n).unwrap();
        let energy = rows
            .iter()
            .find(|r| r[1] == "energy" && r[3] == "period total")
            .unwrap();
        assert_eq!(energy[col("Baseline data sufficient")], "yes");
        assert_eq!(energy[col("CV(RMSE) leave-one-out %")], "5.4");
        assert_eq!(energy[col("Effective n'")], "365");
        assert!(
            energy[col(labels(Lang::En).extrapolation)].contains("production: 0 below, 2 above")
        );
        let day = rows.iter().find(|r| r[3] == "day").unwrap();
        assert_eq!(day[col("CV(RMSE) leave-one-out %")], "");
    }
}
