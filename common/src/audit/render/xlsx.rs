//! The report as an Excel workbook (`report --format xlsx`): one sheet per table, numbers as numbers with
//! formats, frozen header rows, sheet names and headers in the report's language. Figures without data are
//! empty cells, never 0.

use crate::audit::report::{BaselineMethod, Report};
use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};

use super::engine_text::{engine_text, savings_basis_text, variable_label, variables_label};
use super::format::{inclusive_end, shown_total_unit};
use super::i18n::{
    carrier_label, granularity_label, indicator_label, level_label, method_label, period_label,
    source_label, yes_no, Lang,
};

/// English or Chinese text for a header the HTML labels do not have.
fn t(lang: Lang, en: &'static str, zh: &'static str) -> &'static str {
    match lang {
        Lang::En => en,
        Lang::Zh => zh,
    }
}

struct Formats {
    head: Format,
    num: Format,
    pct: Format,
    int: Format,
}

/// One sheet being written row by row.
struct Sheet<'a> {
    ws: &'a mut Worksheet,
    row: u32,
    f: &'a Formats,
}

/// A cell's value.
enum Cell {
    Text(String),
    Num(Option<f64>),
    /// A fraction 0..1 shown as a percentage.
    Pct(Option<f64>),
    Int(u64),
}

impl<'a> Sheet<'a> {
    /// A new sheet named `name`, at the end of the workbook.
    fn add(wb: &'a mut Workbook, name: &str, f: &'a Formats) -> Result<Sheet<'a>, XlsxError> {
        let ws = wb.add_worksheet();
        ws.set_name(name)?;
        Ok(Sheet { ws, row: 0, f })
    }

    fn header(&mut self, cells: &[&str]) -> Result<(), XlsxError> {
        for (c, h) in cells.iter().enumerate() {
            self.ws
                .write_string_with_format(self.row, c as u16, *h, &self.f.head)?;
            self.ws
                .set_column_width(c as u16, (h.chars().count() as f64 * 1.3).clamp(10.0, 40.0))?;
        }
        self.ws.set_freeze_panes(self.row + 1, 0)?;
        self.row += 1;
        Ok(())
    }

    fn line(&mut self, cells: Vec<Cell>) -> Result<(), XlsxError> {
        for (c, cell) in cells.into_iter().enumerate() {
            let c = c as u16;
            match cell {
                Cell::Text(s) => {
                    self.ws.write_string(self.row, c, s)?;
                }
                Cell::Num(Some(v)) if v.is_finite() => {
                    self.ws
                        .write_number_with_format(self.row, c, v, &self.f.num)?;
                }
                Cell::Pct(Some(v)) if v.is_finite() => {
                    self.ws
                        .write_number_with_format(self.row, c, v, &self.f.pct)?;
                }
                Cell::Int(v) => {
                    self.ws
                        .write_number_with_format(self.row, c, v as f64, &self.f.int)?;
                }
                // No data: an empty cell (never 0).
                Cell::Num(_) | Cell::Pct(_) => {}
            }
        }
        self.row += 1;
        Ok(())
    }
}

fn text(s: impl Into<String>) -> Cell {
    Cell::Text(s.into())
}

/// The workbook's bytes.
pub fn xlsx(report: &Report, lang: Lang) -> Result<Vec<u8>, XlsxError> {
    let l = lang.labels();
    let f = Formats {
        head: Format::new().set_bold().set_text_wrap(),
        num: Format::new().set_num_format("#,##0.00"),
        pct: Format::new().set_num_format("0.0%"),
        int: Format::new().set_num_format("0"),
    };
    let mut wb = Workbook::new();

    // Summary.
    {
        let mut s = Sheet::add(&mut wb, t(lang, "Summary", "概要"), &f)?;
        s.header(&[t(lang, "Item", "项目"), t(lang, "Value", "数值")])?;
        for (k, v) in [
            (
                t(lang, "Enterprise", "企业"),
                report.enterprise.clone().unwrap_or_default(),
            ),
            (
                t(lang, "Industry", "行业"),
                report.industry.clone().unwrap_or_default(),
            ),
            (l.site, report.site.clone()),
            (l.gateway, report.gateway.clone()),
            (
                l.generated_at,
                super::html::local_time(&report.generated_at, &report.method.timezone),
            ),
            (
                t(lang, "Production unit", "产品单位"),
                report.production_unit.clone(),
            ),
            (
                l.overall_grade,
                report
                    .grade
                    .as_ref()
                    .map(|g| level_label(lang, g.level))
                    .unwrap_or_default(),
            ),
            (
                t(lang, "SHA-256 of the report", "报告 SHA-256"),
                report
                    .integrity
                    .as_ref()
                    .map(|i| i.sha256.clone())
                    .unwrap_or_default(),
            ),
        ] {
            s.line(vec![text(k), text(v)])?;
        }
        s.row += 1;
        s.header(&[
            l.period,
            l.from,
            l.to_inclusive,
            l.production,
            l.completeness,
        ])?;
        let p = &report.periods;
        for (name, ps) in std::iter::once((l.baseline, &p.baseline))
            .chain(p.reporting.as_ref().map(|r| (l.reporting, r)))
        {
            s.line(vec![
                text(name),
                text(ps.from.clone()),
                text(inclusive_end(&ps.to)),
                Cell::Num(Some(ps.production)),
                Cell::Pct(Some(ps.completeness)),
            ])?;
        }
        s.ws.set_column_width(0, 28)?;
        s.ws.set_column_width(1, 30)?;
    }

    // Indicators.
    {
        let mut s = Sheet::add(&mut wb, t(lang, "Indicators", "指标"), &f)?;
        s.header(&[
            l.indicator,
            t(lang, "Key", "键"),
            l.unit,
            t(lang, "Per-unit unit", "单位产品单位"),
            l.baseline_total,
            l.baseline_per_unit,
            t(lang, "Baseline completeness", "基准期数据完整率"),
            l.reporting_total,
            l.reporting_per_unit,
            t(lang, "Reporting completeness", "报告期数据完整率"),
            l.expected,
            l.savings,
            l.savings_pct,
            t(lang, "Savings uncertainty (90 %)", "节约量不确定度（90%）"),
            t(lang, "Why no savings", "未计节约量的原因"),
            l.level,
            t(lang, "Savings basis", "节能量依据"),
            t(lang, "Days without data", "无数据天数"),
        ])?;
        for (key, ind) in &report.indicators {
            let r = ind.reporting.as_ref();
            // energy totals in tce, as audits give them (per unit in kgce)
            let (k, unit) = shown_total_unit(&ind.total_unit);
            let scaled = |x: Option<f64>| x.map(|v| v * k);
            s.line(vec![
                text(indicator_label(lang, key)),
                text(key.clone()),
                text(unit),
                text(ind.per_unit_unit.clone()),
                Cell::Num(scaled(ind.baseline.total)),
                Cell::Num(ind.baseline.per_unit),
                Cell::Pct(Some(ind.baseline.completeness)),
                Cell::Num(scaled(r.and_then(|r| r.total))),
                Cell::Num(r.and_then(|r| r.per_unit)),
                Cell::Pct(r.map(|r| r.completeness)),
                Cell::Num(scaled(r.and_then(|r| r.expected))),
                Cell::Num(scaled(r.and_then(|r| r.savings))),
                Cell::Pct(r.and_then(|r| r.savings_pct).map(|v| v / 100.0)),
                Cell::Pct(r.and_then(|r| r.savings_uncertainty_pct).map(|v| v / 100.0)),
                text(engine_text(
                    lang,
                    r.and_then(|r| r.savings_reason.as_deref()).unwrap_or(""),
                )),
                text(ind.level.map(|v| level_label(lang, v)).unwrap_or_default()),
                text(savings_basis_text(
                    lang,
                    r.and_then(|r| r.savings_basis),
                    r.and_then(|r| r.savings_note.as_deref()),
                )),
                Cell::Num(r.map(|r| r.days_without_data as f64)),
            ])?;
        }
    }

    // Models and their candidates.
    {
        let mut s = Sheet::add(&mut wb, t(lang, "Models", "基准模型"), &f)?;
        s.header(&[
            l.indicator,
            l.model_method,
            l.granularity,
            l.n,
            t(lang, "Variables", "变量"),
            t(lang, "Coefficients", "系数"),
            l.r2,
            l.r2_adj,
            l.p_value,
            l.cv_rmse_pct,
            l.nmbe_pct,
            l.meets_ashrae14,
            t(lang, "Valid", "有效"),
            l.reason,
        ])?;
        for (key, ind) in &report.indicators {
            let m = &ind.model;
            // The ratio model's intercept is 0 by construction, not a fitted figure: not shown.
            let coef: Vec<String> = m
                .coefficients
                .iter()
                .filter(|(k, _)| m.method == BaselineMethod::Regression || k != "intercept")
                .map(|(k, v)| format!("{} = {v:.6}", variable_label(lang, k)))
                .collect();
            s.line(vec![
                text(indicator_label(lang, key)),
                text(method_label(lang, m.method)),
                text(granularity_label(lang, &m.granularity)),
                Cell::Int(m.n as u64),
                text(variables_label(lang, &m.variables)),
                text(coef.join("; ")),
                Cell::Num(m.r2),
                Cell::Num(m.r2_adj),
                Cell::Num(m.p_value),
                Cell::Num(m.cv_rmse_pct),
                Cell::Num(m.nmbe_pct),
                text(yes_no(lang, m.meets_ashrae14)),
                text(yes_no(lang, m.valid)),
                text(engine_text(lang, m.reason.as_deref().unwrap_or(""))),
            ])?;
        }
        s.row += 1;
        s.header(&[
            l.indicator,
            t(lang, "Candidate variables", "候选变量"),
            l.r2_adj,
            l.p_value,
            t(lang, "Valid", "有效"),
            l.reason,
        ])?;
        for (key, ind) in &report.indicators {
            for c in &ind.model.candidates {
                s.line(vec![
                    text(indicator_label(lang, key)),
                    text(variables_label(lang, &c.variables)),
                    Cell::Num(c.r2_adj),
                    Cell::Num(c.p_value),
                    text(yes_no(lang, c.valid)),
                    text(engine_text(lang, c.reason.as_deref().unwrap_or(""))),
                ])?;
            }
        }
    }

    // Model buckets of energy.
    {
        let mut s = Sheet::add(&mut wb, t(lang, "Buckets", "模型时段"), &f)?;
        // Comprehensive energy per bucket, in tce like the other energy totals.
        let energy_unit = report
            .indicator("energy")
            .map_or("kgce", |i| i.total_unit.as_str());
        let (k, unit) = shown_total_unit(energy_unit);
        let production = format!("{} ({})", l.production, report.production_unit);
        let actual = format!("{} ({unit})", t(lang, "Actual", "实际值"));
        let model = format!("{} ({unit})", t(lang, "Model", "模型值"));
        s.header(&[
            t(lang, "Bucket", "时段"),
            l.period,
            &production,
            &actual,
            &model,
            t(lang, "Complete", "数据完整"),
        ])?;
        for b in &report.series.energy_buckets {
            s.line(vec![
                text(b.label.clone()),
                text(period_label(lang, b.period)),
                Cell::Num(Some(b.production)),
                Cell::Num(Some(b.actual * k)),
                Cell::Num(Some(b.fitted * k)),
                text(yes_no(lang, b.complete)),
            ])?;
        }
    }

    // Limits and triggers.
    {
        let mut s = Sheet::add(&mut wb, t(lang, "Compliance", "限值与触发"), &f)?;
        let c = &report.compliance;
        s.header(&[l.over_standard, l.over_total, l.over_energy_quota])?;
        s.line(vec![
            text(yes_no(lang, c.triggers.over_standard)),
            text(yes_no(lang, c.triggers.over_total)),
            text(yes_no(lang, c.triggers.over_energy_quota)),
        ])?;
        s.row += 1;
        s.header(&[
            l.indicator,
            l.emission_source,
            l.limit,
            l.valid_hours,
            l.exceedance_hours,
            l.max_converted,
        ])?;
        for x in &c.sources {
            s.line(vec![
                text(indicator_label(lang, &x.pollutant)),
                text(source_label(lang, &x.source)),
                Cell::Num(Some(x.limit)),
                Cell::Int(x.valid_hours),
                Cell::Int(x.exceedance_hours),
                Cell::Num(x.max_converted),
            ])?;
        }
        s.row += 1;
        s.header(&[l.indicator, l.year, l.permit_t, l.emitted_t, l.share])?;
        for p in &c.permits {
            s.line(vec![
                text(indicator_label(lang, &p.pollutant)),
                Cell::Int(u64::try_from(p.year).unwrap_or(0)),
                Cell::Num(Some(p.t_per_year)),
                Cell::Num(Some(p.total_t)),
                Cell::Pct(Some(p.share)),
            ])?;
        }
    }

    // Measures and money.
    {
        let mut s = Sheet::add(&mut wb, t(lang, "Measures", "方案"), &f)?;
        s.header(&[
            l.measure,
            l.in_service,
            l.investment_yuan,
            l.indicator,
            l.savings,
            l.savings_yuan,
            l.payback_years,
            l.reason,
            t(lang, "Savings basis", "节能量依据"),
            t(lang, "Counted from", "计入起始日"),
            t(lang, "Days without data", "无数据天数"),
        ])?;
        for m in &report.measures {
            s.line(vec![
                text(m.name.clone()),
                text(m.in_service.clone()),
                Cell::Num(Some(m.investment_yuan)),
                text(
                    m.indicator
                        .as_deref()
                        .map(|k| indicator_label(lang, k))
                        .unwrap_or_default(),
                ),
                Cell::Num(m.savings),
                Cell::Num(m.savings_yuan),
                Cell::Num(m.payback_years),
                text(engine_text(lang, m.reason.as_deref().unwrap_or(""))),
                text(savings_basis_text(
                    lang,
                    m.savings_basis,
                    m.savings_note.as_deref(),
                )),
                text(m.counted_from.clone().unwrap_or_default()),
                Cell::Num(m.counted_from.as_ref().map(|_| m.days_without_data as f64)),
            ])?;
        }
    }

    // Data quality per point.
    {
        let mut s = Sheet::add(&mut wb, t(lang, "Data quality", "数据质量"), &f)?;
        s.header(&[
            t(lang, "Point", "测点"),
            t(lang, "Completeness, baseline", "基准期完整率"),
            t(lang, "Completeness, reporting", "报告期完整率"),
            t(lang, "Rollovers", "翻转次数"),
            t(lang, "Replacements", "换表次数"),
            t(lang, "Step backs", "回退次数"),
            t(lang, "Apportioned hours", "分摊小时数"),
            t(lang, "Manual", "人工录入"),
        ])?;
        for p in &report.method.points {
            s.line(vec![
                text(p.point.clone()),
                Cell::Pct(Some(p.completeness_baseline)),
                Cell::Pct(p.completeness_reporting),
                Cell::Int(p.rollovers),
                Cell::Int(p.replacements),
                Cell::Int(p.step_backs),
                Cell::Int(p.apportioned_hours),
                text(yes_no(lang, p.manual)),
            ])?;
        }
    }

    // Method: factors and notes.
    {
        let mut s = Sheet::add(&mut wb, t(lang, "Method", "方法说明"), &f)?;
        let m = &report.method;
        s.header(&[
            t(lang, "Point", "测点"),
            t(lang, "Carrier", "能源/介质"),
            l.unit,
            t(lang, "kgce per unit", "折标系数 kgce/单位"),
            t(lang, "kg CO2 per unit", "CO2 排放因子 kg/单位"),
            t(lang, "Source of the factor", "系数来源"),
        ])?;
        for x in &m.factors {
            s.line(vec![
                text(x.point.clone()),
                text(carrier_label(lang, &x.carrier)),
                text(x.unit.clone()),
                Cell::Num(Some(x.kgce_per_unit)),
                Cell::Num(Some(x.co2_kg_per_unit)),
                text(source_label(lang, &x.source)),
            ])?;
        }
        s.row += 1;
        s.header(&[t(lang, "Notes", "备注")])?;
        for n in &m.notes {
            s.line(vec![text(engine_text(lang, n))])?;
        }
        s.ws.set_column_width(0, 60)?;
    }

    wb.save_to_buffer()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Read;

    fn part(bytes: &[u8], name: &str) -> String {
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut s = String::new();
        z.by_name(name).unwrap().read_to_string(&mut s).unwrap();
        s
    }

    #[test]
    fn a_workbook_with_a_sheet_per_table_in_the_reports_language() {
        let r = super::super::fixture::report();
        let b = xlsx(&r, Lang::En).unwrap();
        assert!(b.starts_with(b"PK"), "a zip container");
        let wb = part(&b, "xl/workbook.xml");
        for name in [
            "Summary",
            "Indicators",
            "Models",
            "Buckets",
            "Compliance",
            "Data quality",
            "Method",
        ] {
            assert!(
                wb.contains(&format!("name=\"{name}\"")),
                "sheet {name}: {wb}"
            );
        }
        // Indicators: the energy baseline total is a number cell (tce) with the thousands format.
        let total = r.indicators[0].1.baseline.total.unwrap() * 0.001;
        let sheet = part(&b, "xl/worksheets/sheet2.xml");
        assert!(
            sheet.contains(&format!("<v>{total}</v>")),
            "{total} as a number"
        );
        assert!(part(&b, "xl/styles.xml").contains("#,##0.00"));
        assert!(sheet.contains("<pane ySplit=\"1\""), "frozen header row");
        let strings = part(&b, "xl/sharedStrings.xml");
        assert!(
            strings.contains("Actual (tce)") && strings.contains(">tce<"),
            "energy in tce"
        );
        let z = xlsx(&r, Lang::Zh).unwrap();
        let wb = part(&z, "xl/workbook.xml");
        assert!(
            wb.contains("name=\"指标\"") && wb.contains("name=\"数据质量\""),
            "{wb}"
        );
    }

    #[test]
    fn no_data_is_an_empty_cell_not_zero() {
        let r = super::super::fixture::empty();
        let b = xlsx(&r, Lang::En).unwrap();
        let sheet = part(&b, "xl/worksheets/sheet2.xml");
        // Baseline total and per-unit (columns E, F) of the first indicator: no cell at all.
        assert!(
            !sheet.contains("r=\"E2\"") && !sheet.contains("r=\"F2\""),
            "{sheet}"
        );
        // Its completeness is a real 0 %.
        assert!(
            sheet.contains("<c r=\"G2\" s=\"3\"><v>0</v></c>"),
            "{sheet}"
        );
    }
}
