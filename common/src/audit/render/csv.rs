//! The report as CSV that Excel opens correctly in any locale: UTF-8 with BOM, CRLF, RFC 4180 quoting,
//! `.` decimals without thousands separators, nulls as empty cells, and text cells guarded against
//! formula injection. One tidy table (one header, fixed columns): a row per indicator and period, and a
//! row per indicator and day, so a script reads it with any CSV reader.

use crate::audit::report::Report;

use super::engine_text::{engine_text, savings_basis_text};
use super::format::{figure_opt, inclusive_end, shown_total_unit};
use super::i18n::{indicator_label, level_label, method_label, period_label, yes_no, Lang};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One cell: text (quoted when needed, guarded against formulas) or a number (7 significant digits).
#[derive(Clone)]
enum Cell {
    Text(String),
    Num(Option<f64>),
}

fn text(s: impl Into<String>) -> Cell {
    Cell::Text(s.into())
}

fn num(x: f64) -> Cell {
    Cell::Num(Some(x))
}

fn num_opt(x: Option<f64>) -> Cell {
    Cell::Num(x)
}

/// Escape one text cell: a leading `= + - @` (or tab/CR, which Excel strips before looking) gets an
/// apostrophe so a name from the config cannot become a formula; quoted per RFC 4180 when it holds a
/// comma, quote, CR or LF, with quotes doubled.
fn escape_text(s: &str) -> String {
    let guarded;
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        guarded = format!("'{s}");
        guarded.as_str()
    } else {
        s
    };
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// A model statistic in percent (NMBE, CV(RMSE)) as the figure it is: an OLS fit's NMBE is zero by
/// construction, and its float remainder (`-1e-12`) is 0, not `-0.000000000001`; anything from 1e-7 %
/// keeps its 7 significant digits.
fn statistic_pct(x: f64) -> f64 {
    if x.abs() < 1e-7 {
        0.0
    } else {
        x
    }
}

fn write_row(out: &mut Vec<u8>, cells: &[Cell]) {
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match c {
            Cell::Text(s) => out.extend_from_slice(escape_text(s).as_bytes()),
            Cell::Num(x) => out.extend_from_slice(figure_opt(*x).as_bytes()),
        }
    }
    out.extend_from_slice(b"\r\n");
}

fn t(lang: Lang, en: &'static str, zh: &'static str) -> &'static str {
    match lang {
        Lang::En => en,
        Lang::Zh => zh,
    }
}

/// The header of the one table, in `lang` (README: "Report CSV").
pub fn header(lang: Lang) -> [&'static str; COLUMNS] {
    let l = lang.labels();
    [
        l.indicator,
        l.key,
        l.period,
        t(lang, "Row", "行类型"),
        l.from,
        l.to_inclusive,
        l.production,
        t(lang, "Production unit", "产品单位"),
        t(lang, "Total", "总量"),
        l.unit,
        l.per_unit,
        l.per_unit_unit,
        l.expected,
        l.savings,
        l.savings_pct,
        t(
            lang,
            "Savings uncertainty % (90 %)",
            "节能量不确定度 %（90% 置信度）",
        ),
        l.savings_yuan,
        t(lang, "Data completeness %", "数据完整率 %"),
        l.model_method,
        l.n,
        l.r2,
        l.cv_rmse_pct,
        l.nmbe_pct,
        l.meets_ashrae14,
        l.level,
        t(lang, "Why no savings", "未计节能量的原因"),
        t(lang, "Savings basis", "节能量依据"),
    ]
    .into_iter()
    .chain(super::diagnostics::csv_header(lang))
    .collect::<Vec<_>>()
    .try_into()
    .unwrap_or_else(|_| unreachable!("COLUMNS counts the model diagnostics' columns"))
}

/// Number of columns of [`header`]: 27, then the model diagnostics'.
pub const COLUMNS: usize = 27 + super::diagnostics::CSV_COLUMNS;

/// The report as CSV bytes: UTF-8 with BOM, CRLF line ends, ONE table with the columns of [`header`]:
/// per indicator, a row per period (`Row` = period total, with the model's statistics) and a row per day
/// of the series (`From` = `To`). Energy totals in tce (per-unit figures in kgce per unit), other totals in
/// their indicator's unit; figures to 7 significant digits; completeness in percent; no data is an empty
/// cell.
pub fn csv(report: &Report, lang: Lang) -> Vec<u8> {
    let l = lang.labels();
    let days = report.series.daily.len();
    let mut out = Vec::with_capacity(4096 + report.indicators.len() * (days + 2) * 120);
    out.extend_from_slice(BOM);
    let head: Vec<Cell> = header(lang).into_iter().map(text).collect();
    write_row(&mut out, &head);
    let prod_unit = report.production_unit.as_str();
    let total_row = t(lang, "period total", "全期合计");
    let day_row = t(lang, "day", "日");
    for (key, ind) in &report.indicators {
        let label = indicator_label(lang, key);
        let (k, unit) = shown_total_unit(&ind.total_unit);
        let scaled = |x: Option<f64>| x.map(|v| v * k);
        let m = &ind.model;
        let model = [
            text(method_label(lang, m.method)),
            num(m.n as f64),
            num_opt(m.r2),
            num_opt(m.cv_rmse_pct),
            num_opt(m.nmbe_pct.map(statistic_pct)),
            text(yes_no(lang, m.meets_ashrae14)),
            text(ind.level.map(|v| level_label(lang, v)).unwrap_or_default()),
        ];
        let diagnostics: Vec<Cell> = super::diagnostics::csv_cells(lang, m.diagnostics.as_ref())
            .into_iter()
            .map(|c| match c {
                super::diagnostics::CsvCell::Text(s) => text(s),
                super::diagnostics::CsvCell::Num(x) => num_opt(x),
            })
            .collect();
        let b = &report.periods.baseline;
        let mut row = vec![
            text(label.as_str()),
            text(key.as_str()),
            text(l.baseline),
            text(total_row),
            text(b.from.as_str()),
            text(inclusive_end(&b.to)),
            num(b.production),
            text(prod_unit),
            num_opt(scaled(ind.baseline.total)),
            text(unit),
            num_opt(ind.baseline.per_unit),
            text(ind.per_unit_unit.as_str()),
            Cell::Num(None),
            Cell::Num(None),
            Cell::Num(None),
            Cell::Num(None),
            Cell::Num(None),
            num(ind.baseline.completeness * 100.0),
        ];
        row.extend(model.iter().cloned());
        row.extend([text(""), text("")]);
        row.extend(diagnostics.iter().cloned());
        write_row(&mut out, &row);
        if let (Some(p), Some(r)) = (&report.periods.reporting, &ind.reporting) {
            let mut row = vec![
                text(label.as_str()),
                text(key.as_str()),
                text(l.reporting),
                text(total_row),
                text(p.from.as_str()),
                text(inclusive_end(&p.to)),
                num(p.production),
                text(prod_unit),
                num_opt(scaled(r.total)),
                text(unit),
                num_opt(r.per_unit),
                text(ind.per_unit_unit.as_str()),
                num_opt(scaled(r.expected)),
                num_opt(scaled(r.savings)),
                num_opt(r.savings_pct),
                num_opt(r.savings_uncertainty_pct),
                num_opt(r.savings_yuan),
                num(r.completeness * 100.0),
            ];
            row.extend(model.iter().cloned());
            row.push(text(engine_text(
                lang,
                r.savings_reason.as_deref().unwrap_or(""),
            )));
            // What the savings rest on, and with a weak model or the ratio method why.
            row.push(text(savings_basis_text(
                lang,
                r.savings_basis,
                r.savings_note.as_deref(),
            )));
            row.extend(diagnostics.iter().cloned());
            write_row(&mut out, &row);
        }
        let Some(col) = report.series.columns.iter().position(|c| c == key) else {
            continue;
        };
        for d in &report.series.daily {
            let v = d.values.get(col).copied().filter(|v| v.is_finite());
            let mut row = vec![
                text(label.as_str()),
                text(key.as_str()),
                text(period_label(lang, d.period)),
                text(day_row),
                text(d.date.as_str()),
                text(d.date.as_str()),
                num(d.production),
                text(prod_unit),
                num_opt(v.map(|v| v * k)),
                text(unit),
                num_opt(v.filter(|_| d.production > 0.0).map(|v| v / d.production)),
                text(ind.per_unit_unit.as_str()),
            ];
            row.extend((0..5).map(|_| Cell::Num(None)));
            row.push(num(d.completeness * 100.0));
            row.extend((0..9 + super::diagnostics::CSV_COLUMNS).map(|_| Cell::Num(None)));
            write_row(&mut out, &row);
        }
    }
    // 分表计电: one row per facility, period and figure, in hours.
    for [label, key, period, hours] in super::facility::csv_rows(report, lang) {
        let mut row = vec![text(label), text(key), text(period), text(total_row)];
        row.extend((0..4).map(|_| Cell::Num(None)));
        row.push(Cell::Num(hours.parse().ok()));
        row.push(text("h"));
        row.extend((0..COLUMNS - 10).map(|_| Cell::Num(None)));
        write_row(&mut out, &row);
    }
    // Balances, coverage and waste: one row per figure (row = the item and the figure's name).
    for f in super::depth::csv_figures(report, lang) {
        let mut row = vec![
            text(f.table),
            text(f.key),
            text(f.period),
            text(f.row),
            text(""),
            text(""),
            Cell::Num(None),
            text(""),
            num_opt(f.value),
            text(f.unit),
        ];
        row.resize(COLUMNS, Cell::Num(None));
        write_row(&mut out, &row);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(super) mod tests {
    use super::*;
    use crate::audit::render::fixture;

    fn csv_text(report: &Report, lang: Lang) -> String {
        let bytes = csv(report, lang);
        assert!(bytes.starts_with(BOM), "CSV must start with the UTF-8 BOM");
        String::from_utf8(bytes[3..].to_vec()).unwrap()
    }

    /// The CSV read as a script would: the csv crate, one header, every record as wide as it
    /// (`flexible(false)`: a second table or a blank line would fail here).
    pub(crate) fn read(s: &str) -> (Vec<String>, Vec<Vec<String>>) {
        let mut r = ::csv::ReaderBuilder::new()
            .flexible(false)
            .from_reader(s.as_bytes());
        let head: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
        let rows: Vec<Vec<String>> = r
            .records()
            .map(|rec| rec.unwrap().iter().map(str::to_string).collect())
            .collect();
        (head, rows)
    }

    fn col(head: &[String], name: &str) -> usize {
        head.iter().position(|h| h == name).unwrap()
    }

    #[test]
    fn an_ols_nmbe_remainder_is_zero_and_real_figures_keep_seven_digits() {
        let mut r = super::super::fixture::report();
        r.indicators[0].1.model.nmbe_pct = Some(-1.2e-12);
        let text = String::from_utf8(csv(&r, Lang::En)).unwrap();
        assert!(!text.contains("0.000000000001"), "{text}");
        let row = text.lines().nth(1).unwrap();
        assert!(row.contains(",0,"), "NMBE 0: {row}");
        r.indicators[0].1.model.nmbe_pct = Some(-0.012_345_678_9);
        let text = String::from_utf8(csv(&r, Lang::En)).unwrap();
        assert!(text.contains(",-0.01234568,"), "{text}");
    }

    #[test]
    fn starts_with_bom_and_uses_crlf_only() {
        let s = csv_text(&fixture::report(), Lang::En);
        assert!(s.contains("\r\n"));
        let bytes = s.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'\n' {
                assert_eq!(bytes[i - 1], b'\r', "bare LF at byte {i}");
            }
        }
    }

    #[test]
    fn quoting_per_rfc4180_and_formula_guard() {
        assert_eq!(escape_text("plain"), "plain");
        assert_eq!(escape_text("a,b"), "\"a,b\"");
        assert_eq!(escape_text("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(escape_text("two\r\nlines"), "\"two\r\nlines\"");
        assert_eq!(
            escape_text("=HYPERLINK(\"x\")"),
            "\"'=HYPERLINK(\"\"x\"\")\""
        );
        assert_eq!(escape_text("+1"), "'+1");
        assert_eq!(escape_text("-2"), "'-2");
        assert_eq!(escape_text("@SUM(A1)"), "'@SUM(A1)");
        // negative numbers stay numbers
        let mut out = Vec::new();
        write_row(&mut out, &[num(-12.5), text("x"), num_opt(None)]);
        assert_eq!(out, b"-12.5,x,\r\n");
    }

    #[test]
    fn malicious_names_from_config_are_guarded() {
        let s = csv_text(&fixture::malicious(), Lang::En);
        let (_, rows) = read(&s);
        let keys: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
        assert!(keys.contains(&"'=cmd|' /C calc'!A0"), "{keys:?}");
        assert!(!s.contains(",=cmd"));
        // the quoted key with comma and newline survives as one cell
        assert!(keys.contains(&"bad,\"key\"\nx"));
    }

    #[test]
    fn one_table_a_script_reads_with_a_csv_reader() {
        let r = fixture::report();
        let (head, rows) = read(&csv_text(&r, Lang::En));
        assert_eq!(head.len(), COLUMNS);
        assert_eq!(
            head[..12],
            [
                "Indicator",
                "Key",
                "Period",
                "Row",
                "From",
                "To (inclusive)",
                "Production",
                "Production unit",
                "Total",
                "Unit",
                "per unit",
                "Per-unit unit"
            ]
        );
        // per indicator: baseline and reporting totals, then one row per day of both periods
        let days = r.series.daily.len();
        assert_eq!(days, 365 + 181);
        assert_eq!(rows.len(), r.indicators.len() * (2 + days));
        let energy: Vec<&Vec<String>> = rows.iter().filter(|x| x[1] == "energy").collect();
        assert_eq!(
            energy[0][2..6],
            [
                "Baseline period",
                "period total",
                "2025-01-01",
                "2025-12-31"
            ]
        );
        assert_eq!(
            energy[1][2..6],
            [
                "Reporting period",
                "period total",
                "2026-01-01",
                "2026-06-30"
            ]
        );
        assert_eq!(
            energy[2][2..6],
            ["Baseline period", "day", "2025-01-01", "2025-01-01"]
        );
        assert_eq!(energy.last().unwrap()[4], "2026-06-30");
        // energy totals in tce, per unit in kgce/t
        let (_, ind) = &r.indicators[0];
        let rep = ind.reporting.as_ref().unwrap();
        assert_eq!(energy[1][col(&head, "Unit")], "tce");
        assert_eq!(energy[1][col(&head, "Per-unit unit")], "kgce/t");
        let close = |cell: &str, v: f64| {
            let x: f64 = cell.parse().unwrap();
            (x - v).abs() <= v.abs() * 1e-6
        };
        assert!(close(
            &energy[1][col(&head, "Total")],
            rep.total.unwrap() / 1000.0
        ));
        assert!(close(
            &energy[1][col(&head, "Savings")],
            rep.savings.unwrap() / 1000.0
        ));
        assert!(close(
            &energy[1][col(&head, "per unit")],
            rep.per_unit.unwrap()
        ));
        assert_eq!(energy[1][col(&head, "Model method")], "Regression");
        assert_eq!(
            energy[1][col(&head, "Cleaner-production level")],
            "Level II"
        );
        assert_eq!(
            energy[2][col(&head, "Model method")],
            "",
            "no model on day rows"
        );
        let water: Vec<&Vec<String>> = rows.iter().filter(|x| x[1] == "water").collect();
        assert_eq!(water[0][col(&head, "Unit")], "m3");
        // a day: production and the day's value per unit
        let d0 = &r.series.daily[0];
        assert!(close(&energy[2][col(&head, "Production")], d0.production));
        assert!(close(
            &energy[2][col(&head, "Total")],
            d0.values[0] / 1000.0
        ));
        assert!(close(
            &energy[2][col(&head, "per unit")],
            d0.values[0] / d0.production
        ));
        assert_eq!(energy[2][col(&head, "Data completeness %")], "100");
    }

    #[test]
    fn numbers_have_at_most_seven_significant_digits() {
        let (_, rows) = read(&csv_text(&fixture::report(), Lang::En));
        for row in &rows {
            for cell in row.iter().skip(6) {
                if cell.parse::<f64>().is_ok() {
                    let digits = cell.trim_start_matches('-').replace('.', "");
                    let sig = digits.trim_start_matches('0').trim_end_matches('0').len();
                    let int = cell
                        .trim_start_matches('-')
                        .split('.')
                        .next()
                        .unwrap()
                        .len();
                    assert!(sig <= 7.max(int), "{cell} in {row:?}");
                }
            }
        }
    }

    #[test]
    fn chinese_headers_and_labels() {
        let (head, rows) = read(&csv_text(&fixture::report(), Lang::Zh));
        assert_eq!(head[0], "指标");
        assert_eq!(head[2], "时期");
        assert_eq!(head[8], "总量");
        assert_eq!(head[13], "节能量/节水量/减排量");
        assert_eq!(head[20], "决定系数 R²");
        assert_eq!(head[24], "清洁生产等级");
        assert_eq!(rows[0][0], "综合能耗");
        assert_eq!(rows[0][2], "基准期");
        assert_eq!(rows[0][3], "全期合计");
        assert_eq!(rows[0][9], "tce");
        assert_eq!(rows[1][2], "报告期");
        assert_eq!(rows[1][18], "回归模型");
        assert_eq!(rows[1][24], "Ⅱ级");
        assert_eq!(rows[2][3], "日");
        let so2 = rows
            .iter()
            .find(|x| x[1] == "SO2" && x[2] == "报告期")
            .unwrap();
        assert_eq!(so2[25], "", "the plain fixture claims SO2 savings");
        let (_, rich) = read(&csv_text(&fixture::rich(), Lang::Zh));
        let so2 = rich
            .iter()
            .find(|x| x[1] == "SO2" && x[2] == "报告期")
            .unwrap();
        assert_eq!(so2[13], "", "no savings claimed");
        assert_eq!(
            so2[25],
            "报告期数据完整率 62.5 % 低于要求的最低完整率 90.0 %，不计节能量"
        );
    }

    #[test]
    fn non_finite_numbers_are_empty_cells() {
        let mut r = fixture::report();
        r.series.daily[0].values[0] = f64::NAN;
        r.series.daily[0].values[1] = f64::INFINITY;
        r.indicators[0].1.model.r2 = Some(f64::NAN);
        let s = csv_text(&r, Lang::En);
        assert!(!s.contains("NaN") && !s.contains("inf"));
        let (head, rows) = read(&s);
        assert_eq!(rows[0][col(&head, "R²")], "");
        let day = rows
            .iter()
            .find(|x| x[1] == "energy" && x[3] == "day")
            .unwrap();
        assert_eq!(day[col(&head, "Total")], "");
        assert_eq!(day[col(&head, "per unit")], "");
    }

    #[test]
    fn report_without_reporting_period_has_baseline_rows_only() {
        let r = fixture::no_reporting();
        let (_, rows) = read(&csv_text(&r, Lang::En));
        assert!(rows.iter().all(|x| x[2] == "Baseline period"));
        assert_eq!(rows.len(), r.indicators.len() * (1 + 365));
        let s = csv_text(&fixture::empty(), Lang::En);
        let (_, rows) = read(&s);
        assert_eq!(rows.len(), fixture::empty().indicators.len());
        assert!(!s.contains("NaN"));
    }
}
