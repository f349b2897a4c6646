//! The report as aligned tables for a terminal (`plantmeter demo`, report summaries). Widths are display
//! widths: CJK characters take two columns. Control characters from the report (names from the config)
//! are removed so they cannot drive the terminal.

use std::fmt::Write as _;

use crate::audit::report::Report;

use super::format::{
    display, display_opt, fraction_pct, inclusive_end, pct_opt, plain, shown_total_unit,
};
use super::i18n::{
    granularity_label, indicator_label, level_label, method_label, savings_caveat, yes_no, Lang,
};

/// Columns a character takes on a terminal (`unicode-width`, UAX #11): 2 for East Asian wide and
/// fullwidth characters (CJK ideographs, kana, hangul, fullwidth forms, most emoji), 0 for combining
/// marks, zero-width characters and controls (which [`clean`] removes anyway), else 1.
#[cfg(test)]
pub(super) fn char_width(c: char) -> usize {
    if c.is_control() {
        0
    } else {
        unicode_width::UnicodeWidthChar::width(c).unwrap_or(0)
    }
}

/// Display width of `s` on a terminal, in columns (CJK characters count 2; controls 0).
pub fn display_width(s: &str) -> usize {
    use unicode_width::UnicodeWidthStr as _;
    if s.chars().any(char::is_control) {
        clean(s).width()
    } else {
        s.width()
    }
}

/// Remove control characters (ESC sequences from a hostile name would otherwise reach the terminal).
pub(super) fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

/// A table of text cells; `right[i]` right-aligns column i (numbers).
pub(super) struct Table {
    header: Vec<String>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(super) fn new(header: &[(&str, bool)]) -> Table {
        Table {
            header: header.iter().map(|(h, _)| clean(h)).collect(),
            right: header.iter().map(|(_, r)| *r).collect(),
            rows: Vec::new(),
        }
    }

    pub(super) fn push(&mut self, row: Vec<String>) {
        self.rows.push(row.iter().map(|c| clean(c)).collect());
    }

    pub(super) fn render(&self, out: &mut String) {
        let n = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| display_width(h)).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                widths[i] = widths[i].max(display_width(c));
            }
        }
        let line = |out: &mut String, cells: &[String]| {
            let mut s = String::new();
            for (i, (width, right)) in widths.iter().zip(&self.right).enumerate() {
                let cell = cells.get(i).map_or("", String::as_str);
                let pad = width.saturating_sub(display_width(cell));
                if i > 0 {
                    s.push_str("  ");
                }
                if *right {
                    s.extend(std::iter::repeat_n(' ', pad));
                    s.push_str(cell);
                } else {
                    s.push_str(cell);
                    if i + 1 < n {
                        s.extend(std::iter::repeat_n(' ', pad));
                    }
                }
            }
            out.push_str(s.trim_end());
            out.push('\n');
        };
        line(out, &self.header);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(out, &rule);
        for r in &self.rows {
            line(out, r);
        }
    }
}

/// Title and the periods: dates (inclusive), production, completeness.
pub(super) fn summary(report: &Report, lang: Lang, out: &mut String) {
    let l = lang.labels();
    let _ = writeln!(
        out,
        "{}: {} {} / {} {}",
        l.title,
        l.gateway,
        clean(&report.gateway),
        l.site,
        clean(&report.site)
    );
    let unit = clean(&report.production_unit);
    let mut t = Table::new(&[
        (l.period, false),
        (l.from, false),
        (l.to_inclusive, false),
        (l.production, true),
        (l.completeness, true),
    ]);
    let b = &report.periods.baseline;
    t.push(vec![
        l.baseline.to_string(),
        b.from.clone(),
        inclusive_end(&b.to),
        format!("{} {unit}", display(b.production)),
        fraction_pct(b.completeness),
    ]);
    match &report.periods.reporting {
        Some(r) => t.push(vec![
            l.reporting.to_string(),
            r.from.clone(),
            inclusive_end(&r.to),
            format!("{} {unit}", display(r.production)),
            fraction_pct(r.completeness),
        ]),
        None => t.push(vec![l.reporting.to_string(), l.no_reporting.to_string()]),
    }
    t.render(out);
}

/// Per indicator: per-unit figures of both periods, savings and grade.
pub(super) fn indicator_table(report: &Report, lang: Lang, out: &mut String) {
    let l = lang.labels();
    let mut t = Table::new(&[
        (l.indicator, false),
        (l.per_unit_unit, false),
        (l.baseline_per_unit, true),
        (l.reporting_per_unit, true),
        (l.savings, true),
        (l.savings_pct, true),
        (l.level, false),
    ]);
    for (key, ind) in &report.indicators {
        let r = ind.reporting.as_ref();
        t.push(vec![
            indicator_label(lang, key),
            ind.per_unit_unit.clone(),
            display_opt(ind.baseline.per_unit),
            display_opt(r.and_then(|r| r.per_unit)),
            r.and_then(|r| r.savings).map_or_else(
                || "–".to_string(),
                |s| {
                    let (k, unit) = shown_total_unit(&ind.total_unit);
                    // Savings from a weak model or the ratio method: marked, explained under the table.
                    let weak = r.and_then(|r| savings_caveat(lang, r.savings_basis));
                    format!(
                        "{} {unit}{}",
                        display(s * k),
                        if weak.is_some() { " ⚠" } else { "" }
                    )
                },
            ),
            pct_opt(r.and_then(|r| r.savings_pct)),
            ind.level
                .map_or_else(|| "–".to_string(), |v| level_label(lang, v)),
        ]);
    }
    t.render(out);
    for (key, ind) in &report.indicators {
        let r = ind.reporting.as_ref().filter(|r| r.savings.is_some());
        if let Some(c) = r.and_then(|r| savings_caveat(lang, r.savings_basis)) {
            let _ = writeln!(out, "{}: {c}", indicator_label(lang, key));
        }
    }
}

/// Per indicator: the baseline model and its ASHRAE Guideline 14 statistics.
pub(super) fn model_table(report: &Report, lang: Lang, out: &mut String) {
    let l = lang.labels();
    let _ = writeln!(
        out,
        "{} ({}: CV(RMSE) <= {}%, |NMBE| <= {}%)",
        l.model_statistics,
        l.thresholds,
        plain(report.method.ashrae14_cv_rmse_max_pct),
        plain(report.method.ashrae14_nmbe_max_pct)
    );
    let mut t = Table::new(&[
        (l.indicator, false),
        (l.model_method, false),
        (l.granularity, false),
        (l.n, true),
        (l.r2, true),
        (l.cv_rmse_pct, true),
        (l.nmbe_pct, true),
        (l.meets_ashrae14, false),
    ]);
    for (key, ind) in &report.indicators {
        let m = &ind.model;
        t.push(vec![
            indicator_label(lang, key),
            method_label(lang, m.method),
            granularity_label(lang, &m.granularity),
            m.n.to_string(),
            m.r2.filter(|v| v.is_finite())
                .map_or_else(|| "–".to_string(), |v| format!("{v:.3}")),
            pct_opt(m.cv_rmse_pct),
            pct_opt(m.nmbe_pct),
            yes_no(lang, m.meets_ashrae14).to_string(),
        ]);
    }
    t.render(out);
}

/// The report for a terminal: title, periods, the indicator table (per unit, savings, grade) and the
/// model statistics, columns aligned by display width.
pub fn text_table(report: &Report, lang: Lang) -> String {
    let mut out = String::new();
    summary(report, lang, &mut out);
    out.push('\n');
    indicator_table(report, lang, &mut out);
    out.push('\n');
    model_table(report, lang, &mut out);
    super::facility::text(report, lang, &mut out);
    super::depth::text(report, lang, &mut out);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(super) mod tests {
    use super::*;
    use crate::audit::render::fixture;

    #[test]
    fn widths_count_cjk_double() {
        assert_eq!(display_width("abc"), 3);
        assert_eq!(display_width("单位产品综合能耗"), 16);
        assert_eq!(display_width("烟(粉)尘"), 8);
        assert_eq!(display_width("决定系数 R²"), 11);
        assert_eq!(display_width("ｋｇ"), 4);
        assert_eq!(display_width("e\u{301}"), 1);
        assert_eq!(display_width("a\x1bb"), 2);
    }

    /// Every line of a table has its columns starting at the same display column.
    pub(in crate::audit::render) fn assert_aligned(block: &str, anchor: &str) {
        let lines: Vec<&str> = block.lines().collect();
        let header = lines.iter().position(|l| l.contains(anchor)).unwrap();
        let rule = lines[header + 1];
        assert!(rule.starts_with('-'), "no rule under the header: {rule:?}");
        // column starts from the rule: a '-' after a space
        let starts: Vec<usize> = rule
            .char_indices()
            .filter(|(i, c)| *c == '-' && (*i == 0 || rule.as_bytes()[i - 1] == b' '))
            .map(|(i, _)| i)
            .collect();
        let rule_width = display_width(rule);
        for line in lines[header..].iter().take_while(|l| !l.is_empty()) {
            assert!(
                display_width(line) <= rule_width,
                "line wider than the rule: {line:?}"
            );
            // the character at each column start (by display width) is not in the middle of a cell gap
            let mut col = 0;
            let mut at = Vec::new();
            for ch in line.chars() {
                at.push((col, ch));
                col += char_width(ch);
            }
            for s in &starts[1..] {
                // the column before a start is a space (two-space separator), on every line
                let before = at.iter().find(|(c, _)| *c == s - 1).map(|(_, ch)| *ch);
                assert!(
                    before == Some(' ') || before.is_none(),
                    "column {s} not preceded by a gap in {line:?}"
                );
            }
        }
    }

    #[test]
    fn english_table_is_aligned() {
        let s = text_table(&fixture::report(), Lang::En);
        assert!(s.contains("Comprehensive energy consumption"));
        assert!(s.contains("Level II"));
        assert_aligned(&s, "Baseline per unit");
        assert_aligned(&s, "Meets ASHRAE 14");
        assert!(!s.contains("NaN"));
    }

    #[test]
    fn chinese_table_is_aligned_by_display_width() {
        let s = text_table(&fixture::report(), Lang::Zh);
        for term in [
            "综合能耗",
            "基准期单位产品值",
            "节能量",
            "Ⅱ级",
            "回归模型",
            "决定系数 R²",
            "化学需氧量 COD",
        ] {
            assert!(s.contains(term), "missing {term}");
        }
        assert_aligned(&s, "基准期单位产品值");
        assert_aligned(&s, "决定系数");
        // right-aligned numbers end at the same display column in every row of the indicator table
        let lines: Vec<&str> = s.lines().collect();
        let h = lines
            .iter()
            .position(|l| l.contains("基准期单位产品值"))
            .unwrap();
        let header = lines[h];
        let end_of = |line: &str, pat: &str| -> usize {
            let i = line.find(pat).unwrap();
            display_width(&line[..i]) + display_width(pat)
        };
        let col_end = end_of(header, "基准期单位产品值");
        let energy = lines.iter().find(|l| l.starts_with("综合能耗")).unwrap();
        let value = display_opt(fixture::report().indicators[0].1.baseline.per_unit);
        assert_eq!(end_of(energy, &value), col_end, "{energy:?}");
    }

    #[test]
    fn control_characters_from_names_do_not_reach_the_terminal() {
        let mut r = fixture::report();
        r.gateway = "gw\x1b[2J-01".to_string();
        r.indicators[1].0 = "evil\x1b]0;title\x07".to_string();
        let s = text_table(&r, Lang::En);
        assert!(!s.contains('\x1b') && !s.contains('\x07'));
        assert!(s.contains("gw[2J-01"));
    }

    #[test]
    fn without_reporting_period() {
        let s = text_table(&fixture::no_reporting(), Lang::Zh);
        assert!(s.contains("未设置报告期"));
        assert!(!s.contains("NaN"));
        let s = text_table(&fixture::empty(), Lang::En);
        assert!(s.contains("No reporting period configured"));
        assert!(!s.contains("NaN"));
    }

    #[test]
    fn ratio_savings_are_marked_and_explained_under_the_table() {
        use crate::audit::report::SavingsBasis;
        let mut r = fixture::report();
        let ratio = ["energy", "water"];
        for (k, i) in r.indicators.iter_mut() {
            if let Some(rep) = i.reporting.as_mut() {
                rep.savings_basis = Some(if ratio.contains(&k.as_str()) {
                    SavingsBasis::Ratio
                } else {
                    SavingsBasis::ValidModel
                });
            }
        }
        let s = text_table(&r, Lang::En);
        // Beside the figure, and in the line that explains it under the table.
        assert_eq!(s.matches('⚠').count(), 2 * ratio.len(), "{s}");
        assert_eq!(
            s.matches("⚠ ratio method, no valid model").count(),
            ratio.len()
        );
        let z = text_table(&r, Lang::Zh);
        assert_eq!(z.matches("⚠ 比值法，无有效模型").count(), ratio.len());
    }
}
