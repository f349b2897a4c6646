//! The report as an Excel workbook (`report --format xlsx`), as a consultant would build it: one table per
//! sheet, a header row frozen above it, every figure in its own numeric cell (each model coefficient too)
//! with a number format chosen by its magnitude (never `0.00` for a figure that is not zero), dates as Excel
//! dates, period ends as the last day included (as the HTML prints them), sheet names and headers in the
//! report's language. Figures without data are empty cells, never 0. The first sheet names the JSON the
//! workbook renders (its SHA-256, signed or not, the report id).

use crate::audit::report::{BaselineMethod, Report};
use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, Workbook, Worksheet, XlsxError};

use super::engine_text::{
    coefficient_unit, engine_text, savings_basis_text, variable_label, variables_label,
};
use super::format::{inclusive_end, shown_total_unit};
use super::i18n::{
    carrier_label, granularity_label, indicator_label, level_label, method_label, period_label,
    source_label, yes_no, Lang,
};
use super::seal::{seal_view, signed_label};

// The models' diagnostics' sheets.
mod diagnostics;

/// English or Chinese text for a header the HTML labels do not have.
fn t(lang: Lang, en: &'static str, zh: &'static str) -> &'static str {
    match lang {
        Lang::En => en,
        Lang::Zh => zh,
    }
}

/// Most decimals a number format gets (a figure below 1e-10 shows in its cell's full value only).
const MAX_DECIMALS: usize = 10;

struct Formats {
    head: Format,
    /// `#,##0`, `#,##0.0`, ... by decimals.
    num: Vec<Format>,
    /// `0%`, `0.0%`, ... by decimals.
    pct: Vec<Format>,
    int: Format,
    date: Format,
}

impl Formats {
    fn new() -> Formats {
        let zeros = |d: usize| {
            if d == 0 {
                String::new()
            } else {
                format!(".{}", "0".repeat(d))
            }
        };
        Formats {
            head: Format::new().set_bold().set_text_wrap(),
            num: (0..=MAX_DECIMALS)
                .map(|d| Format::new().set_num_format(format!("#,##0{}", zeros(d))))
                .collect(),
            pct: (0..=MAX_DECIMALS)
                .map(|d| Format::new().set_num_format(format!("0{}%", zeros(d))))
                .collect(),
            int: Format::new().set_num_format("0"),
            date: Format::new().set_num_format("yyyy-mm-dd"),
        }
    }
}

/// Decimals that show `x` to about four significant digits: none from 1000 up, 1 from 100, 2 from 1;
/// below 1 the decimals of `x` rounded to 4 significant digits, trailing zeros dropped (dust 0.0034,
/// TP 0.00207, a factor 0.1229, R2 0.9987, p 0.0001), so a figure that is not zero never shows as 0.00.
pub(super) fn decimals(x: f64) -> usize {
    let a = x.abs();
    if !a.is_finite() || a == 0.0 {
        return 0;
    }
    if a >= 1000.0 {
        return 0;
    }
    if a >= 100.0 {
        return 1;
    }
    if a >= 1.0 {
        return 2;
    }
    let magnitude = a.log10().floor() as i32; // -1 for 0.1229, -3 for 0.0034
    let d = (3 - magnitude).clamp(1, MAX_DECIMALS as i32) as usize;
    let s = format!("{a:.d$}");
    let trimmed = s.trim_end_matches('0');
    trimmed
        .split_once('.')
        .map_or(0, |(_, f)| f.len())
        .clamp(1, MAX_DECIMALS)
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
    /// A local date `YYYY-MM-DD`, written as an Excel date (as text when it does not parse).
    Date(String),
}

/// `YYYY-MM-DD` as an Excel date.
fn excel_date(s: &str) -> Option<ExcelDateTime> {
    let d = chrono::NaiveDate::parse_from_str(s.get(..10)?, "%Y-%m-%d").ok()?;
    use chrono::Datelike;
    ExcelDateTime::from_ymd(
        u16::try_from(d.year()).ok()?,
        d.month() as u8,
        d.day() as u8,
    )
    .ok()
}

impl<'a> Sheet<'a> {
    /// A new sheet named `name`, at the end of the workbook, with its header row.
    fn add(
        wb: &'a mut Workbook,
        name: &str,
        f: &'a Formats,
        header: &[&str],
    ) -> Result<Sheet<'a>, XlsxError> {
        let ws = wb.add_worksheet();
        ws.set_name(name)?;
        let mut s = Sheet { ws, row: 0, f };
        for (c, h) in header.iter().enumerate() {
            s.ws.write_string_with_format(0, c as u16, *h, &s.f.head)?;
            s.ws.set_column_width(c as u16, (h.chars().count() as f64 * 1.3).clamp(11.0, 40.0))?;
        }
        s.ws.set_freeze_panes(1, 0)?;
        s.row = 1;
        Ok(s)
    }

    fn line(&mut self, cells: Vec<Cell>) -> Result<(), XlsxError> {
        let (ws, f, row) = (&mut *self.ws, self.f, self.row);
        for (c, cell) in cells.into_iter().enumerate() {
            let c = c as u16;
            match cell {
                Cell::Text(s) => {
                    ws.write_string(row, c, s)?;
                }
                Cell::Num(Some(v)) if v.is_finite() => {
                    ws.write_number_with_format(row, c, v, &f.num[decimals(v)])?;
                }
                Cell::Pct(Some(v)) if v.is_finite() => {
                    // Percent points: one decimal, more for a share below 1 %.
                    let d = if (v * 100.0).abs() >= 1.0 {
                        1
                    } else {
                        decimals(v * 100.0)
                    };
                    ws.write_number_with_format(row, c, v, &f.pct[d])?;
                }
                Cell::Int(v) => {
                    ws.write_number_with_format(row, c, v as f64, &f.int)?;
                }
                Cell::Date(s) => match excel_date(&s) {
                    Some(d) => {
                        ws.write_datetime_with_format(row, c, &d, &f.date)?;
                    }
                    None => {
                        ws.write_string(row, c, s)?;
                    }
                },
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
    let f = Formats::new();
    let mut wb = Workbook::new();
    // The file's creation time is the report's, so the same report always gives the same bytes (and
    // `plantmeter verify --json` can compare a workbook with a fresh rendering of its JSON).
    if let Some(t) = chrono::DateTime::parse_from_rfc3339(&report.generated_at)
        .ok()
        .and_then(|t| {
            let t = t.with_timezone(&chrono::Utc);
            use chrono::{Datelike, Timelike};
            ExcelDateTime::from_ymd(
                u16::try_from(t.year()).ok()?,
                t.month() as u8,
                t.day() as u8,
            )
            .and_then(|d| d.and_hms(t.hour() as u16, t.minute() as u8, t.second()))
            .ok()
        })
    {
        wb.set_properties(&DocProperties::new().set_creation_datetime(&t));
    }
    summary(&mut wb, &f, report, lang)?;
    periods(&mut wb, &f, report, lang)?;
    indicators(&mut wb, &f, report, lang)?;
    models(&mut wb, &f, report, lang)?;
    diagnostics::sheets(&mut wb, &f, report, lang)?;
    buckets(&mut wb, &f, report, lang)?;
    compliance(&mut wb, &f, report, lang)?;
    facilities(&mut wb, &f, report, lang)?;
    // Balances, coverage and waste: a sheet per table.
    for tb in super::depth::tables(report, lang) {
        let mut s = Sheet::add(&mut wb, tb.title, &f, &tb.head)?;
        let cells = |c: &super::depth::Cell| match c {
            super::depth::Cell::Text(x)
            | super::depth::Cell::Short(x)
            | super::depth::Cell::Flag(x, _) => text(x.clone()),
            super::depth::Cell::Int(n) => Cell::Int(*n),
            super::depth::Cell::Num(v) => Cell::Num(*v),
            super::depth::Cell::Pct(v) => Cell::Pct(v.map(|p| p / 100.0)),
        };
        for row in &tb.rows {
            s.line(row.iter().map(cells).collect())?;
        }
        for n in &tb.notes {
            s.line(vec![text(n.clone())])?;
        }
    }

    // Measures and money.
    {
        let mut s = Sheet::add(
            &mut wb,
            t(lang, "Measures", "方案"),
            &f,
            &[
                l.measure,
                l.in_service,
                l.investment_yuan,
                l.indicator,
                l.savings,
                l.unit,
                l.savings_yuan,
                l.payback_years,
                l.reason,
            ],
        )?;
        for m in &report.measures {
            let ind = m.indicator.as_deref();
            let (k, unit) =
                ind.and_then(|k| report.indicator(k))
                    .map_or((1.0, String::new()), |i| {
                        let (k, u) = shown_total_unit(&i.total_unit);
                        (k, u.to_string())
                    });
            s.line(vec![
                text(m.name.clone()),
                Cell::Date(m.in_service.clone()),
                Cell::Num(Some(m.investment_yuan)),
                text(ind.map(|k| indicator_label(lang, k)).unwrap_or_default()),
                Cell::Num(m.savings.map(|v| v * k)),
                text(unit),
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
        let mut s = Sheet::add(
            &mut wb,
            t(lang, "Data quality", "数据质量"),
            &f,
            &[
                t(lang, "Point", "测点"),
                t(lang, "Completeness, baseline", "基准期完整率"),
                t(lang, "Completeness, reporting", "报告期完整率"),
                t(lang, "Rollovers", "翻转次数"),
                t(lang, "Replacements", "换表次数"),
                t(lang, "Step backs", "回退次数"),
                t(lang, "Apportioned hours", "分摊小时数"),
                t(lang, "Manual", "人工录入"),
            ],
        )?;
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
    // Multiplier (倍率) changes, beside the replacements (`render/multiplier.rs`).
    if !report.events.multiplier_changes.is_empty() {
        let (_, head) = super::multiplier::labels(lang);
        let name = t(lang, "Multiplier changes", "倍率变更");
        let mut s = Sheet::add(&mut wb, name, &f, &head)?;
        for (meter, at, from, to) in super::multiplier::rows(report) {
            s.line(vec![
                text(meter.to_string()),
                text(at.to_string()),
                Cell::Num(Some(from)),
                Cell::Num(Some(to)),
            ])?;
        }
    }

    // Method: factors, then notes.
    {
        let mut s = Sheet::add(
            &mut wb,
            t(lang, "Factors", "折算系数"),
            &f,
            &[
                t(lang, "Point", "测点"),
                t(lang, "Carrier", "能源/介质"),
                l.unit,
                t(lang, "kgce per unit", "折标系数 kgce/单位"),
                t(lang, "kg CO2 per unit", "CO2 排放因子 kg/单位"),
                t(lang, "Source of the factor", "系数来源"),
            ],
        )?;
        for x in &report.method.factors {
            s.line(vec![
                text(x.point.clone()),
                text(carrier_label(lang, &x.carrier)),
                text(x.unit.clone()),
                Cell::Num(Some(x.kgce_per_unit)),
                Cell::Num(Some(x.co2_kg_per_unit)),
                text(source_label(lang, &x.source)),
            ])?;
        }
    }
    {
        let mut s = Sheet::add(
            &mut wb,
            t(lang, "Notes", "备注"),
            &f,
            &[t(lang, "Notes", "备注")],
        )?;
        for n in &report.method.notes {
            s.line(vec![text(engine_text(lang, n))])?;
        }
        s.ws.set_column_width(0, 100)?;
    }

    wb.save_to_buffer()
}

/// Item and value: the seal first (B2 id, B3 SHA-256 of the JSON, B4 signed), then who and when.
fn summary(wb: &mut Workbook, f: &Formats, report: &Report, lang: Lang) -> Result<(), XlsxError> {
    let l = lang.labels();
    let seal = seal_view(report);
    let mut s = Sheet::add(
        wb,
        t(lang, "Summary", "概要"),
        f,
        &[t(lang, "Item", "项目"), t(lang, "Value", "数值")],
    )?;
    for (k, v) in [
        (t(lang, "Report id", "报告编号"), seal.id.clone()),
        (
            t(lang, "SHA-256 of report.json", "报告 JSON 文件的 SHA-256"),
            seal.sha256.unwrap_or_default().to_string(),
        ),
        (
            t(lang, "Signature", "签名"),
            signed_label(lang, &seal).to_string(),
        ),
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
    ] {
        s.line(vec![text(k), text(v)])?;
    }
    s.ws.set_column_width(0, 28)?;
    s.ws.set_column_width(1, 68)?;
    Ok(())
}

/// The periods: first and last day included (dates), production, completeness.
fn periods(wb: &mut Workbook, f: &Formats, report: &Report, lang: Lang) -> Result<(), XlsxError> {
    let l = lang.labels();
    let unit = format!("{} ({})", l.production, report.production_unit);
    let mut s = Sheet::add(
        wb,
        t(lang, "Periods", "期间"),
        f,
        &[
            l.period,
            l.from,
            l.to_inclusive,
            l.days,
            &unit,
            l.completeness,
        ],
    )?;
    let p = &report.periods;
    for (name, ps) in std::iter::once((l.baseline, &p.baseline))
        .chain(p.reporting.as_ref().map(|r| (l.reporting, r)))
    {
        s.line(vec![
            text(name),
            Cell::Date(ps.from.clone()),
            Cell::Date(inclusive_end(&ps.to)),
            Cell::Int(
                super::format::days_between(&ps.from, &ps.to)
                    .and_then(|d| u64::try_from(d).ok())
                    .unwrap_or(0),
            ),
            Cell::Num(Some(ps.production)),
            Cell::Pct(Some(ps.completeness)),
        ])?;
    }
    Ok(())
}

fn indicators(
    wb: &mut Workbook,
    f: &Formats,
    report: &Report,
    lang: Lang,
) -> Result<(), XlsxError> {
    let l = lang.labels();
    let mut s = Sheet::add(
        wb,
        t(lang, "Indicators", "指标"),
        f,
        &[
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
            l.savings_yuan,
            t(lang, "Why no savings", "未计节约量的原因"),
            l.level,
            t(lang, "Savings basis", "节能量依据"),
            t(lang, "Days without data", "无数据天数"),
        ],
    )?;
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
            Cell::Num(r.and_then(|r| r.savings_yuan)),
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
    Ok(())
}

/// Three sheets: the models' statistics, every coefficient in its own cell with its unit and p-value,
/// and the candidates tried.
fn models(wb: &mut Workbook, f: &Formats, report: &Report, lang: Lang) -> Result<(), XlsxError> {
    let l = lang.labels();
    {
        let mut s = Sheet::add(
            wb,
            t(lang, "Models", "基准模型"),
            f,
            &[
                l.indicator,
                t(lang, "Key", "键"),
                l.model_method,
                l.granularity,
                l.n,
                t(lang, "Variables", "变量"),
                l.r2,
                l.r2_adj,
                l.p_value,
                l.cv_rmse_pct,
                l.nmbe_pct,
                l.meets_ashrae14,
                t(lang, "Valid", "有效"),
                l.reason,
            ],
        )?;
        for (key, ind) in &report.indicators {
            let m = &ind.model;
            s.line(vec![
                text(indicator_label(lang, key)),
                text(key.clone()),
                text(method_label(lang, m.method)),
                text(granularity_label(lang, &m.granularity)),
                Cell::Int(m.n as u64),
                text(variables_label(lang, &m.variables)),
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
    }
    {
        let mut s = Sheet::add(
            wb,
            t(lang, "Coefficients", "模型系数"),
            f,
            &[
                l.indicator,
                t(lang, "Key", "键"),
                t(lang, "Variable", "变量"),
                t(lang, "Coefficient", "系数"),
                l.unit,
                t(lang, "p-value (t test)", "p 值（t 检验）"),
            ],
        )?;
        for (key, ind) in &report.indicators {
            let m = &ind.model;
            // The ratio model's intercept is 0 by construction, not a fitted figure: not shown.
            let fitted = m
                .coefficients
                .iter()
                .filter(|(k, _)| m.method == BaselineMethod::Regression || k != "intercept");
            for (var, c) in fitted {
                let p = m
                    .p_values
                    .iter()
                    .find(|(k, _)| k == var)
                    .and_then(|(_, p)| *p);
                s.line(vec![
                    text(indicator_label(lang, key)),
                    text(key.clone()),
                    text(variable_label(lang, var)),
                    Cell::Num(Some(*c)),
                    text(coefficient_unit(
                        lang,
                        var,
                        &ind.total_unit,
                        &m.granularity,
                        &report.production_unit,
                    )),
                    Cell::Num(p),
                ])?;
            }
        }
    }
    {
        let mut s = Sheet::add(
            wb,
            t(lang, "Candidates", "候选模型"),
            f,
            &[
                l.indicator,
                t(lang, "Key", "键"),
                t(lang, "Candidate variables", "候选变量"),
                l.r2_adj,
                l.p_value,
                t(lang, "Valid", "有效"),
                l.reason,
            ],
        )?;
        for (key, ind) in &report.indicators {
            for c in &ind.model.candidates {
                s.line(vec![
                    text(indicator_label(lang, key)),
                    text(key.clone()),
                    text(variables_label(lang, &c.variables)),
                    Cell::Num(c.r2_adj),
                    Cell::Num(c.p_value),
                    text(yes_no(lang, c.valid)),
                    text(engine_text(lang, c.reason.as_deref().unwrap_or(""))),
                ])?;
            }
        }
    }
    Ok(())
}

/// The energy model's buckets: a date per day, week or month bucket (an hour's label stays text).
fn buckets(wb: &mut Workbook, f: &Formats, report: &Report, lang: Lang) -> Result<(), XlsxError> {
    let l = lang.labels();
    // Comprehensive energy per bucket, in tce like the other energy totals.
    let energy_unit = report
        .indicator("energy")
        .map_or("kgce", |i| i.total_unit.as_str());
    let (k, unit) = shown_total_unit(energy_unit);
    let production = format!("{} ({})", l.production, report.production_unit);
    let actual = format!("{} ({unit})", t(lang, "Actual", "实际值"));
    let model = format!("{} ({unit})", t(lang, "Model", "模型值"));
    let mut s = Sheet::add(
        wb,
        t(lang, "Buckets", "模型时段"),
        f,
        &[
            t(lang, "Bucket", "时段"),
            l.period,
            &production,
            &actual,
            &model,
            t(lang, "Complete", "数据完整"),
        ],
    )?;
    for b in &report.series.energy_buckets {
        let label = if b.label.len() == 10 {
            Cell::Date(b.label.clone())
        } else {
            text(b.label.clone())
        };
        s.line(vec![
            label,
            text(period_label(lang, b.period)),
            Cell::Num(Some(b.production)),
            Cell::Num(Some(b.actual * k)),
            Cell::Num(Some(b.fitted * k)),
            text(yes_no(lang, b.complete)),
        ])?;
    }
    Ok(())
}

/// Three sheets: the triggers, each source against its limit, each permit's use.
fn compliance(
    wb: &mut Workbook,
    f: &Formats,
    report: &Report,
    lang: Lang,
) -> Result<(), XlsxError> {
    let l = lang.labels();
    let c = &report.compliance;
    {
        let mut s = Sheet::add(
            wb,
            t(lang, "Triggers", "触发条件"),
            f,
            &[
                l.over_standard,
                l.over_total,
                l.over_energy_quota,
                super::i18n::depth_labels(lang).hazardous_per_year,
            ],
        )?;
        s.line(vec![
            text(yes_no(lang, c.triggers.over_standard)),
            text(yes_no(lang, c.triggers.over_total)),
            text(yes_no(lang, c.triggers.over_energy_quota)),
            text(
                c.triggers
                    .over_hazardous_waste
                    .map_or("–", |b| yes_no(lang, b)),
            ),
        ])?;
    }
    {
        let mut s = Sheet::add(
            wb,
            t(lang, "Limits", "排放限值"),
            f,
            &[
                l.indicator,
                l.emission_source,
                l.limit,
                l.valid_hours,
                l.exceedance_hours,
                l.max_converted,
            ],
        )?;
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
    }
    {
        let mut s = Sheet::add(
            wb,
            t(lang, "Permits", "排污许可"),
            f,
            &[l.indicator, l.year, l.permit_t, l.emitted_t, l.share],
        )?;
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
    Ok(())
}

/// 分表计电: one sheet when the audit has facilities (render/facility.rs).
fn facilities(
    wb: &mut Workbook,
    f: &Formats,
    report: &Report,
    lang: Lang,
) -> Result<(), XlsxError> {
    let rows = super::facility::rows(report, lang);
    if rows.is_empty() {
        return Ok(());
    }
    let head = super::facility::header(lang);
    let mut s = Sheet::add(wb, super::facility::sheet(lang), f, &head)?;
    for r in rows {
        let mut cells = vec![text(r.name), text(r.period)];
        cells.extend(r.hours.iter().map(|h| Cell::Num(*h)));
        s.line(cells)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use calamine::{open_workbook_from_rs, Data, Reader, Xlsx};
    use std::io::Read;

    fn part(bytes: &[u8], name: &str) -> String {
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut s = String::new();
        z.by_name(name).unwrap().read_to_string(&mut s).unwrap();
        s
    }

    type Book = Xlsx<std::io::Cursor<Vec<u8>>>;

    fn open(bytes: Vec<u8>) -> Book {
        open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap()
    }

    /// The rows of a sheet below its header.
    fn rows(wb: &mut Book, sheet: &str) -> Vec<Vec<Data>> {
        let range = wb.worksheet_range(sheet).unwrap();
        range.rows().skip(1).map(<[Data]>::to_vec).collect()
    }

    fn num(d: &Data) -> Option<f64> {
        match d {
            Data::Float(x) => Some(*x),
            Data::Int(i) => Some(*i as f64),
            Data::Empty => None,
            other => panic!("not a number: {other:?}"),
        }
    }

    fn string(d: &Data) -> String {
        match d {
            Data::String(s) => s.clone(),
            Data::Empty => String::new(),
            other => panic!("not text: {other:?}"),
        }
    }

    /// An Excel date cell as `YYYY-MM-DD`.
    fn date(d: &Data) -> String {
        match d {
            Data::DateTime(x) if x.is_datetime() => {
                let epoch = chrono::NaiveDate::from_ymd_opt(1899, 12, 30).unwrap();
                (epoch + chrono::Duration::days(x.as_f64() as i64))
                    .format("%Y-%m-%d")
                    .to_string()
            }
            other => panic!("not a date: {other:?}"),
        }
    }

    fn close(a: Option<f64>, b: Option<f64>) -> bool {
        match (a, b) {
            (Some(a), Some(b)) => (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0),
            (None, None) => true,
            _ => false,
        }
    }

    #[test]
    fn decimals_by_magnitude_never_show_zero_for_a_figure() {
        for (x, d) in [
            (0.0034, 4),
            (0.00207, 5),
            (0.1229, 4),
            (0.9987, 4),
            (0.0001, 4),
            (0.008, 3),
            (0.5, 1),
            (37.0, 2),
            (123.4, 1),
            (2_400_000.0, 0),
            (-0.00207, 5),
            (0.0, 0),
        ] {
            assert_eq!(decimals(x), d, "{x}");
        }
        // What the format shows of any figure from 1e-10 up is not zero.
        let mut x = 1e-10_f64;
        while x < 1e7 {
            let d = decimals(x);
            let shown: f64 = format!("{x:.d$}").parse().unwrap();
            assert!(shown != 0.0, "{x} shows as {shown}");
            // Four significant digits from 1e-6 up (below, the cell's full value holds them).
            assert!(
                x < 1e-6 || (shown - x).abs() <= x * 0.006,
                "{x} shows as {shown}"
            );
            x *= 1.37;
        }
    }

    /// The workbook read back by a reader: every figure equals the report's, each coefficient in its own
    /// numeric cell, dates as dates with the period's last day included, the seal on the first sheet.
    #[test]
    fn the_workbook_read_back_gives_the_reports_figures() {
        let mut r = super::super::fixture::rich();
        r.integrity = Some(crate::audit::report::Integrity {
            sha256: "ab".repeat(32),
            signature: Some("cd".repeat(64)),
            public_key: None,
        });
        let bytes = xlsx(&r, Lang::En).unwrap();
        let mut wb = open(bytes.clone());
        let names = wb.sheet_names();
        assert_eq!(names[0], "Summary");
        for name in [
            "Periods",
            "Indicators",
            "Models",
            "Coefficients",
            "Candidates",
            "Buckets",
            "Triggers",
            "Limits",
            "Permits",
            "Measures",
            "Data quality",
            "Factors",
            "Notes",
        ] {
            assert!(names.iter().any(|n| n == name), "sheet {name}: {names:?}");
        }
        // The seal: B2 id, B3 digest, B4 signed.
        let summary = rows(&mut wb, "Summary");
        assert_eq!(string(&summary[0][1]), super::super::report_id(&r));
        assert_eq!(string(&summary[1][1]), "ab".repeat(32));
        assert_eq!(string(&summary[2][1]), "signed (ed25519)");
        // Periods: Excel dates, the last day included.
        let periods = rows(&mut wb, "Periods");
        let b = &r.periods.baseline;
        assert_eq!(date(&periods[0][1]), b.from);
        assert_eq!(date(&periods[0][2]), inclusive_end(&b.to));
        assert!(close(num(&periods[0][4]), Some(b.production)));
        // Indicators: every total, per-unit figure and saving, energy totals in tce.
        let ind = rows(&mut wb, "Indicators");
        assert_eq!(ind.len(), r.indicators.len());
        for (row, (key, i)) in ind.iter().zip(&r.indicators) {
            assert_eq!(&string(&row[1]), key);
            let k = shown_total_unit(&i.total_unit).0;
            let rep = i.reporting.as_ref();
            for (col, want) in [
                (4, i.baseline.total.map(|v| v * k)),
                (5, i.baseline.per_unit),
                (6, Some(i.baseline.completeness)),
                (7, rep.and_then(|x| x.total).map(|v| v * k)),
                (8, rep.and_then(|x| x.per_unit)),
                (10, rep.and_then(|x| x.expected).map(|v| v * k)),
                (11, rep.and_then(|x| x.savings).map(|v| v * k)),
                (12, rep.and_then(|x| x.savings_pct).map(|v| v / 100.0)),
                (14, rep.and_then(|x| x.savings_yuan)),
            ] {
                assert!(
                    close(num(&row[col]), want),
                    "{key} column {col}: {:?} vs {want:?}",
                    row[col]
                );
            }
        }
        // Models: statistics as numbers.
        let models = rows(&mut wb, "Models");
        for (row, (key, i)) in models.iter().zip(&r.indicators) {
            assert_eq!(&string(&row[1]), key);
            assert!(close(num(&row[6]), i.model.r2), "{key} r2");
            assert!(close(num(&row[8]), i.model.p_value), "{key} p");
            assert!(close(num(&row[10]), i.model.nmbe_pct), "{key} nmbe");
        }
        // Coefficients: one numeric cell each, with its unit and p-value.
        let coef = rows(&mut wb, "Coefficients");
        let want: Vec<(&str, f64, Option<f64>)> = r
            .indicators
            .iter()
            .flat_map(|(k, i)| {
                // The ratio model's intercept (0 by construction) is not in the workbook.
                let fitted = i.model.coefficients.iter().filter(|(v, _)| {
                    i.model.method == BaselineMethod::Regression || v != "intercept"
                });
                fitted.map(move |(v, c)| {
                    let p = i
                        .model
                        .p_values
                        .iter()
                        .find(|(x, _)| x == v)
                        .and_then(|(_, p)| *p);
                    (k.as_str(), *c, p)
                })
            })
            .collect();
        assert_eq!(coef.len(), want.len());
        assert!(
            want.len() > r.indicators.len(),
            "a model with several variables"
        );
        for (row, (key, c, p)) in coef.iter().zip(&want) {
            assert_eq!(&string(&row[1]), key);
            assert!(close(num(&row[3]), Some(*c)), "{key}: {:?} vs {c}", row[3]);
            assert!(!string(&row[4]).is_empty(), "{key}: a unit");
            assert!(close(num(&row[5]), *p), "{key}: p {:?} vs {p:?}", row[5]);
        }
        // Factors: the grid factor's kgce to four digits, not 0.12.
        let factors = rows(&mut wb, "Factors");
        for (row, x) in factors.iter().zip(&r.method.factors) {
            assert!(close(num(&row[3]), Some(x.kgce_per_unit)));
            assert!(close(num(&row[4]), Some(x.co2_kg_per_unit)));
        }
        let styles = part(&bytes, "xl/styles.xml");
        assert!(styles.contains("#,##0.0000"), "four decimals below 1");
        assert!(styles.contains("yyyy-mm-dd"), "dates");
        // Measures: the in-service date is a date.
        let measures = rows(&mut wb, "Measures");
        if let Some(m) = r.measures.first() {
            assert_eq!(date(&measures[0][1]), m.in_service);
        }
    }

    #[test]
    fn chinese_sheets_and_frozen_headers() {
        let r = super::super::fixture::report();
        let b = xlsx(&r, Lang::Zh).unwrap();
        let wb = part(&b, "xl/workbook.xml");
        assert!(
            wb.contains("name=\"指标\"")
                && wb.contains("name=\"数据质量\"")
                && wb.contains("name=\"模型系数\""),
            "{wb}"
        );
        assert!(part(&b, "xl/worksheets/sheet3.xml").contains("<pane ySplit=\"1\""));
        let strings = part(&xlsx(&r, Lang::En).unwrap(), "xl/sharedStrings.xml");
        assert!(
            strings.contains("Actual (tce)") && strings.contains(">tce<"),
            "energy in tce"
        );
    }

    #[test]
    fn the_same_report_gives_the_same_bytes() {
        let r = super::super::fixture::report();
        assert!(xlsx(&r, Lang::En).unwrap() == xlsx(&r, Lang::En).unwrap());
    }

    #[test]
    fn no_data_is_an_empty_cell_not_zero() {
        let r = super::super::fixture::empty();
        let mut wb = open(xlsx(&r, Lang::En).unwrap());
        let ind = rows(&mut wb, "Indicators");
        // Baseline total and per-unit of the first indicator: empty; its completeness a real 0 %.
        assert_eq!((num(&ind[0][4]), num(&ind[0][5])), (None, None));
        assert_eq!(num(&ind[0][6]), Some(0.0));
    }
}
