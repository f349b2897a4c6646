//! The report as CSV that Excel opens correctly in any locale: UTF-8 with BOM, CRLF, RFC 4180 quoting,
//! `.` decimals without thousands separators, nulls as empty cells, and text cells guarded against
//! formula injection. One table of indicators, an empty line, one table of the daily series.

use plantmeter_common::audit::report::Report;

use super::format::plain_opt;
use super::i18n::{
    granularity_label, indicator_label, level_label, method_label, period_label, yes_no, Lang,
};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One cell: text (quoted when needed, guarded against formulas) or a number (written plain).
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

fn write_row(out: &mut Vec<u8>, cells: &[Cell]) {
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match c {
            Cell::Text(s) => out.extend_from_slice(escape_text(s).as_bytes()),
            Cell::Num(x) => out.extend_from_slice(plain_opt(*x).as_bytes()),
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// The header of the indicator table, in `lang`.
pub fn indicator_header(lang: Lang) -> Vec<&'static str> {
    let l = lang.labels();
    vec![
        l.indicator,
        l.key,
        l.unit,
        l.per_unit_unit,
        l.baseline_total,
        l.baseline_per_unit,
        l.reporting_total,
        l.reporting_per_unit,
        l.expected,
        l.savings,
        l.savings_pct,
        l.model_method,
        l.granularity,
        l.n,
        l.r2,
        l.cv_rmse_pct,
        l.nmbe_pct,
        l.meets_ashrae14,
        l.level,
    ]
}

/// The header of the daily table, in `lang`: date, period, production (unit), one column per indicator
/// (label and unit), completeness (%).
pub fn daily_header(report: &Report, lang: Lang) -> Vec<String> {
    let l = lang.labels();
    let mut h = vec![
        l.date.to_string(),
        l.period.to_string(),
        format!("{} ({})", l.production, report.production_unit),
    ];
    for key in &report.series.columns {
        let label = indicator_label(lang, key);
        match report.indicators.iter().find(|(k, _)| k == key) {
            Some((_, ind)) => h.push(format!("{label} ({})", ind.total_unit)),
            None => h.push(label),
        }
    }
    h.push(format!("{} (%)", l.completeness));
    h
}

/// The report as CSV bytes: UTF-8 with BOM, CRLF line ends; the indicator table, an empty line, the
/// daily series (one row per day). Totals in each indicator's `total_unit`, completeness in percent.
pub fn csv(report: &Report, lang: Lang) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096 + report.series.daily.len() * 96);
    out.extend_from_slice(BOM);

    let header: Vec<Cell> = indicator_header(lang).into_iter().map(text).collect();
    write_row(&mut out, &header);
    for (key, ind) in &report.indicators {
        let r = ind.reporting.as_ref();
        let m = &ind.model;
        let row = [
            text(indicator_label(lang, key)),
            text(key.as_str()),
            text(ind.total_unit.as_str()),
            text(ind.per_unit_unit.as_str()),
            num_opt(ind.baseline.total),
            num_opt(ind.baseline.per_unit),
            num_opt(r.and_then(|r| r.total)),
            num_opt(r.and_then(|r| r.per_unit)),
            num_opt(r.and_then(|r| r.expected)),
            num_opt(r.and_then(|r| r.savings)),
            num_opt(r.and_then(|r| r.savings_pct)),
            text(method_label(lang, &m.method)),
            text(granularity_label(lang, &m.granularity)),
            num(m.n as f64),
            num_opt(m.r2),
            num_opt(m.cv_rmse_pct),
            num_opt(m.nmbe_pct),
            text(yes_no(lang, m.meets_ashrae14)),
            text(
                ind.level
                    .as_deref()
                    .map(|v| level_label(lang, v))
                    .unwrap_or_default(),
            ),
        ];
        write_row(&mut out, &row);
    }

    out.extend_from_slice(b"\r\n");

    let header: Vec<Cell> = daily_header(report, lang).into_iter().map(text).collect();
    write_row(&mut out, &header);
    let ncols = report.series.columns.len();
    for d in &report.series.daily {
        let mut row = Vec::with_capacity(ncols + 4);
        row.push(text(d.date.as_str()));
        row.push(text(period_label(lang, &d.period)));
        row.push(num(d.production));
        for i in 0..ncols {
            row.push(num_opt(d.values.get(i).copied()));
        }
        row.push(num(d.completeness * 100.0));
        write_row(&mut out, &row);
    }
    out
}

/// Parse CSV text produced by [`csv`] back into rows of cells (for tests: RFC 4180 with quotes).
#[cfg(test)]
pub fn parse_rows(s: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    cell.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                cell.push(c);
            }
        } else if c == '"' {
            quoted = true;
        } else if c == ',' {
            row.push(std::mem::take(&mut cell));
        } else if c == '\r' && chars.peek() == Some(&'\n') {
            chars.next();
            row.push(std::mem::take(&mut cell));
            rows.push(std::mem::take(&mut row));
        } else {
            cell.push(c);
        }
    }
    if !cell.is_empty() || !row.is_empty() {
        row.push(cell);
        rows.push(row);
    }
    rows
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::audit::render::fixture;

    fn csv_text(report: &Report, lang: Lang) -> String {
        let bytes = csv(report, lang);
        assert!(bytes.starts_with(BOM), "CSV must start with the UTF-8 BOM");
        String::from_utf8(bytes[3..].to_vec()).unwrap()
    }

    #[test]
    fn starts_with_bom_and_uses_crlf_only() {
        let s = csv_text(&fixture::report(), Lang::En);
        assert!(s.contains("\r\n"));
        // every LF is preceded by CR, outside quoted cells too
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
        let rows = parse_rows(&s);
        let keys: Vec<&str> = rows
            .iter()
            .filter_map(|r| r.get(1))
            .map(String::as_str)
            .collect();
        assert!(keys.contains(&"'=cmd|' /C calc'!A0"), "{keys:?}");
        assert!(!s.contains(",=cmd"));
        // the quoted key with comma and newline survives as one cell
        assert!(keys.contains(&"bad,\"key\"\nx"), "{keys:?}");
    }

    #[test]
    fn english_headers_and_values() {
        let r = fixture::report();
        let s = csv_text(&r, Lang::En);
        let rows = parse_rows(&s);
        assert_eq!(
            rows[0],
            [
                "Indicator",
                "Key",
                "Unit",
                "Per-unit unit",
                "Baseline total",
                "Baseline per unit",
                "Reporting total",
                "Reporting per unit",
                "Expected (baseline model)",
                "Savings",
                "Savings %",
                "Model method",
                "Granularity",
                "n",
                "R²",
                "CV(RMSE) %",
                "NMBE %",
                "Meets ASHRAE 14",
                "Cleaner-production level"
            ]
        );
        let energy = &rows[1];
        assert_eq!(energy[0], "Comprehensive energy consumption");
        assert_eq!(energy[1], "energy");
        assert_eq!(energy[2], "kgce");
        let (_, ind) = &r.indicators[0];
        let rep = ind.reporting.as_ref().unwrap();
        let close =
            |cell: &str, v: f64| (cell.parse::<f64>().unwrap() - v).abs() <= v.abs() * 1e-11;
        assert!(
            close(&energy[4], ind.baseline.total.unwrap()),
            "{}",
            energy[4]
        );
        assert!(close(&energy[9], rep.savings.unwrap()), "{}", energy[9]);
        assert!(!energy[4].contains(','));
        assert_eq!(energy[11], "Regression");
        assert_eq!(energy[17], "yes");
        assert_eq!(energy[18], "Level II");
        // the indicator table ends with an empty line, then the daily table
        let blank = rows.iter().position(|r| r == &[""]).unwrap();
        assert_eq!(blank, 1 + r.indicators.len());
        assert_eq!(rows[blank + 1][0], "Date");
        assert_eq!(rows[blank + 1][2], "Production (t)");
        assert_eq!(
            rows[blank + 1][3],
            "Comprehensive energy consumption (kgce)"
        );
        assert_eq!(rows[blank + 1].last().unwrap(), "Data completeness (%)");
    }

    #[test]
    fn chinese_headers() {
        let s = csv_text(&fixture::report(), Lang::Zh);
        let rows = parse_rows(&s);
        assert_eq!(rows[0][0], "指标");
        assert_eq!(rows[0][4], "基准期总量");
        assert_eq!(rows[0][9], "节能量/节水量/减排量");
        assert_eq!(rows[0][14], "决定系数 R²");
        assert_eq!(rows[0][18], "清洁生产等级");
        assert_eq!(rows[1][0], "综合能耗");
        assert_eq!(rows[1][11], "回归模型");
        assert_eq!(rows[1][18], "Ⅱ级");
        let blank = rows.iter().position(|r| r == &[""]).unwrap();
        assert_eq!(rows[blank + 1][0], "日期");
        assert_eq!(rows[blank + 1][2], "产量 (t)");
        assert_eq!(rows[blank + 2][1], "基准期");
    }

    #[test]
    fn daily_table_has_one_row_per_day() {
        let r = fixture::report();
        let s = csv_text(&r, Lang::En);
        let rows = parse_rows(&s);
        let blank = rows.iter().position(|r| r == &[""]).unwrap();
        let daily = &rows[blank + 2..];
        assert_eq!(daily.len(), r.series.daily.len());
        assert_eq!(daily.len(), 365 + 181);
        let width = 3 + r.series.columns.len() + 1;
        assert!(daily.iter().all(|row| row.len() == width));
        assert_eq!(daily[0][0], "2025-01-01");
        assert_eq!(daily[0][1], "Baseline period");
        assert_eq!(daily.last().unwrap()[0], "2026-06-30");
        assert_eq!(daily.last().unwrap()[1], "Reporting period");
        // day values read back as the numbers they are
        let d0 = &r.series.daily[0];
        let p: f64 = daily[0][2].parse().unwrap();
        assert!((p - d0.production).abs() <= d0.production * 1e-11);
        for (i, v) in d0.values.iter().enumerate() {
            let back: f64 = daily[0][3 + i].parse().unwrap();
            assert!(
                (back - v).abs() <= v.abs() * 1e-11,
                "column {i}: {back} vs {v}"
            );
        }
    }

    #[test]
    fn non_finite_numbers_are_empty_cells() {
        let mut r = fixture::report();
        r.series.daily[0].values[0] = f64::NAN;
        r.series.daily[0].values[1] = f64::INFINITY;
        r.indicators[0].1.model.r2 = Some(f64::NAN);
        let s = csv_text(&r, Lang::En);
        assert!(!s.contains("NaN") && !s.contains("inf"));
        let rows = parse_rows(&s);
        assert_eq!(rows[1][14], "");
        let day = rows.iter().find(|row| row[0] == "2025-01-01").unwrap();
        assert_eq!((day[3].as_str(), day[4].as_str()), ("", ""));
    }

    #[test]
    fn report_without_reporting_period_has_empty_cells() {
        let r = fixture::no_reporting();
        let s = csv_text(&r, Lang::En);
        let rows = parse_rows(&s);
        assert_eq!(rows[1][6], "");
        assert_eq!(rows[1][9], "");
        assert!(!s.contains("NaN"));
    }
}
