//! The balances, metering coverage and waste tables of a report, built once as plain tables and written
//! by each renderer (HTML sections, XLSX sheets, CSV rows of the one tidy table, console text).

use std::fmt::Write as _;

use crate::audit::balance::BalanceStatus;
use crate::audit::report::Report;
use crate::audit::waste::WasteKind;

use super::engine_text::engine_text;
use super::format::{display, escape, pct_opt, plain};
use super::i18n::{carrier_label, depth_labels, DepthLabels, Lang};

/// A cell of a table.
#[derive(Debug, Clone)]
pub(super) enum Cell {
    Text(String),
    /// A figure; null shows as a dash (HTML, text) or an empty cell.
    Num(Option<f64>),
    /// Percent points (75.0 = 75 %).
    Pct(Option<f64>),
    /// A count (meters, hours).
    Int(u64),
    /// A short text that must not wrap (a carrier, a period, a unit).
    Short(String),
    /// A verdict: text and whether it is bad (a fault, below a threshold, over a trigger).
    Flag(String, bool),
}

impl Cell {
    fn shown(&self) -> String {
        match self {
            Cell::Text(s) | Cell::Short(s) | Cell::Flag(s, _) => s.clone(),
            Cell::Int(n) => n.to_string(),
            Cell::Num(v) => v.map_or_else(|| "–".to_string(), display),
            Cell::Pct(v) => match v {
                Some(_) => format!("{} %", pct_opt(*v)),
                None => "–".to_string(),
            },
        }
    }
}

/// One table: a title, the header and rows; `period` and `unit` columns tell the CSV where those are.
pub(super) struct Table {
    pub id: &'static str,
    pub title: &'static str,
    pub head: Vec<&'static str>,
    pub rows: Vec<Vec<Cell>>,
    /// Column of the period (baseline / reporting), if any.
    pub period: Option<usize>,
    /// Column of the unit of the row's figures, if any.
    pub unit: Option<usize>,
    /// Reasons for null figures and verdicts, one line each.
    pub notes: Vec<String>,
}

fn period_label(lang: Lang, p: &str) -> String {
    let l = lang.labels();
    match p {
        "baseline" => l.baseline.to_string(),
        "reporting" => l.reporting.to_string(),
        other => other.to_string(),
    }
}

fn level_label(d: &DepthLabels, level: &str) -> String {
    match level {
        "site" => d.level_site.to_string(),
        "sub_unit" => d.level_sub_unit.to_string(),
        "equipment" => d.level_equipment.to_string(),
        other => other.to_string(),
    }
}

fn status_cell(d: &DepthLabels, s: BalanceStatus) -> Cell {
    match s {
        BalanceStatus::Balanced => Cell::Flag(d.balanced.to_string(), false),
        BalanceStatus::Unmetered => Cell::Flag(d.unmetered_beyond.to_string(), true),
        BalanceStatus::MeterFault => Cell::Flag(d.meter_fault.to_string(), true),
        BalanceStatus::NoData => Cell::Flag(d.no_data.to_string(), true),
    }
}

/// Every table of the report's balances, coverage and waste that has rows.
pub(super) fn tables(report: &Report, lang: Lang) -> Vec<Table> {
    let d = depth_labels(lang);
    let l = lang.labels();
    let mut out = Vec::new();
    if let Some(b) = &report.balances {
        let mut t = Table {
            id: "balances",
            title: d.balances,
            head: vec![
                d.carrier,
                l.period,
                d.parent,
                d.children,
                d.parent_total,
                d.children_total,
                d.unmetered,
                d.unmetered_pct,
                d.tolerance_pct,
                d.status,
                l.unit,
                d.hours,
            ],
            rows: Vec::new(),
            period: Some(1),
            unit: Some(10),
            notes: Vec::new(),
        };
        for r in &b.tree {
            let mut status = status_cell(d, r.status);
            if !r.faulty.is_empty() {
                if let Cell::Flag(s, _) = &mut status {
                    let _ = write!(s, ": {}", r.faulty.join(", "));
                }
            }
            t.rows.push(vec![
                Cell::Short(carrier_label(lang, &r.carrier)),
                Cell::Short(period_label(lang, &r.period)),
                Cell::Text(r.parent.clone()),
                Cell::Text(r.children.join(", ")),
                Cell::Num(r.parent_total),
                Cell::Num(r.children_total),
                Cell::Num(r.unmetered),
                Cell::Pct(r.unmetered_pct),
                Cell::Pct(Some(r.tolerance_pct)),
                status,
                Cell::Short(r.unit.clone()),
                Cell::Short(format!("{} / {}", r.hours, r.period_hours)),
            ]);
            if let Some(why) = &r.reason {
                t.notes.push(format!(
                    "{} ({}): {}",
                    r.parent,
                    period_label(lang, &r.period),
                    engine_text(lang, why)
                ));
            }
        }
        if !t.rows.is_empty() {
            out.push(t);
        }
        let mut w = Table {
            id: "water-balance",
            title: d.water_balance,
            head: vec![
                l.period,
                d.intake,
                d.reuse,
                d.total_use,
                d.discharge,
                d.consumption,
                d.losses,
                d.losses_pct,
                d.reuse_rate,
                l.unit,
                d.hours,
            ],
            rows: Vec::new(),
            period: Some(0),
            unit: Some(9),
            notes: Vec::new(),
        };
        for r in &b.water {
            w.rows.push(vec![
                Cell::Short(period_label(lang, &r.period)),
                Cell::Num(r.intake),
                Cell::Num(r.reuse),
                Cell::Num(r.total_use),
                Cell::Num(r.discharge),
                Cell::Num(r.consumption),
                Cell::Num(r.losses),
                Cell::Pct(r.losses_pct),
                Cell::Pct(r.reuse_rate_pct),
                Cell::Short("m3".to_string()),
                Cell::Short(format!("{} / {}", r.hours, r.period_hours)),
            ]);
            for why in &r.reasons {
                let line = format!(
                    "{}: {}",
                    period_label(lang, &r.period),
                    engine_text(lang, why)
                );
                if !w.notes.contains(&line) {
                    w.notes.push(line);
                }
            }
        }
        if !w.rows.is_empty() {
            out.push(w);
        }
    }
    if let Some(c) = &report.coverage {
        let mut t = Table {
            id: "coverage",
            title: d.coverage,
            head: vec![
                d.carrier,
                d.level,
                d.required,
                d.installed,
                d.rate,
                d.min_pct,
                d.meets,
            ],
            rows: Vec::new(),
            period: None,
            unit: None,
            notes: Vec::new(),
        };
        for r in &c.rates {
            t.rows.push(vec![
                Cell::Short(carrier_label(lang, &r.carrier)),
                Cell::Text(level_label(d, &r.level)),
                Cell::Int(u64::from(r.required)),
                Cell::Int(u64::from(r.installed)),
                Cell::Pct(r.rate_pct),
                Cell::Pct(r.min_pct),
                match r.meets {
                    Some(m) => Cell::Flag(super::i18n::yes_no(lang, m).to_string(), !m),
                    None => Cell::Text("–".to_string()),
                },
            ]);
            if let Some(why) = &r.reason {
                t.notes.push(format!(
                    "{} / {}: {}",
                    carrier_label(lang, &r.carrier),
                    level_label(d, &r.level),
                    engine_text(lang, why)
                ));
            }
        }
        out.push(t);
        let mut t = Table {
            id: "ledger",
            title: d.ledger,
            head: vec![
                d.item,
                d.level,
                d.carrier,
                d.required,
                d.installed,
                d.meters,
            ],
            rows: Vec::new(),
            period: None,
            unit: None,
            notes: Vec::new(),
        };
        for e in &c.ledger {
            let meters: Vec<String> = e
                .meters
                .iter()
                .map(|m| {
                    let mut s = m.point.clone();
                    let mut parts = Vec::new();
                    if let Some(c) = m.accuracy_class {
                        parts.push(format!("{} {}", d.class, plain(c)));
                    }
                    if let Some(k) = m.multiplier {
                        parts.push(format!("{} {}", d.multiplier, plain(k)));
                    }
                    if !parts.is_empty() {
                        let _ = write!(s, " ({})", parts.join(", "));
                    }
                    s
                })
                .collect();
            t.rows.push(vec![
                Cell::Text(e.name.clone()),
                Cell::Text(level_label(d, &e.level)),
                Cell::Short(carrier_label(lang, &e.carrier)),
                Cell::Int(u64::from(e.required)),
                Cell::Int(u64::from(e.installed)),
                Cell::Text(meters.join("; ")),
            ]);
        }
        if !t.rows.is_empty() {
            out.push(t);
        }
    }
    if let Some(w) = &report.waste {
        let mut t = Table {
            id: "waste",
            title: d.waste,
            head: vec![
                d.waste_name,
                d.kind,
                l.period,
                d.total_t,
                l.unit,
                d.per_unit,
                l.per_unit_unit,
                l.completeness,
            ],
            rows: Vec::new(),
            period: Some(2),
            unit: Some(4),
            notes: Vec::new(),
        };
        for r in &w.rows {
            t.rows.push(vec![
                Cell::Text(r.name.clone()),
                Cell::Text(
                    match r.kind {
                        WasteKind::Solid => d.solid,
                        WasteKind::Hazardous => d.hazardous,
                    }
                    .to_string(),
                ),
                Cell::Short(period_label(lang, &r.period)),
                Cell::Num(r.total_t),
                Cell::Short("t".to_string()),
                Cell::Num(r.per_unit),
                Cell::Text(r.per_unit_unit.clone()),
                Cell::Pct(Some(r.completeness * 100.0)),
            ]);
            if let Some(why) = &r.reason {
                t.notes.push(format!(
                    "{} ({}): {}",
                    r.name,
                    period_label(lang, &r.period),
                    engine_text(lang, why)
                ));
            }
        }
        if let Some(h) = &w.hazardous {
            t.rows.push(vec![
                Cell::Text(d.hazardous_per_year.to_string()),
                Cell::Text(d.hazardous.to_string()),
                Cell::Short(period_label(lang, &h.period)),
                Cell::Num(h.t_per_year),
                Cell::Short("t/a".to_string()),
                Cell::Num(None),
                Cell::Text(String::new()),
                match h.over {
                    Some(o) => Cell::Flag(
                        format!("{}: {}", d.trigger, super::i18n::yes_no(lang, o)),
                        o,
                    ),
                    None => Cell::Text("–".to_string()),
                },
            ]);
            if let Some(why) = &h.reason {
                t.notes.push(format!(
                    "{}: {}",
                    d.hazardous_per_year,
                    engine_text(lang, why)
                ));
            }
        }
        out.push(t);
    }
    out
}

/// The tables as HTML sections.
pub(super) fn html(report: &Report, lang: Lang, out: &mut String) {
    for t in tables(report, lang) {
        let _ = write!(
            out,
            r#"<section id="{}"><h2>{}</h2><div class="tw"><table><thead><tr>"#,
            t.id,
            escape(t.title)
        );
        for h in &t.head {
            let _ = write!(out, "<th>{}</th>", escape(h));
        }
        out.push_str("</tr></thead><tbody>");
        for row in &t.rows {
            out.push_str("<tr>");
            for c in row {
                let text = escape(&c.shown());
                let _ = match c {
                    Cell::Text(_) => write!(out, "<td>{text}</td>"),
                    Cell::Short(_) => write!(out, r#"<td class="nw">{text}</td>"#),
                    Cell::Num(_) | Cell::Pct(_) | Cell::Int(_) => {
                        write!(out, r#"<td class="num">{text}</td>"#)
                    }
                    Cell::Flag(_, bad) => write!(
                        out,
                        r#"<td class="{}">{text}</td>"#,
                        if *bad { "bad" } else { "good" }
                    ),
                };
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table></div>");
        for n in &t.notes {
            let _ = write!(out, r#"<p class="meta">{}</p>"#, escape(n));
        }
        out.push_str("</section>");
    }
}

/// The tables as console text: a title, then one line per row, columns separated by ` | `.
pub(super) fn text(report: &Report, lang: Lang, out: &mut String) {
    for t in tables(report, lang) {
        let _ = writeln!(out, "\n{}", t.title);
        let _ = writeln!(out, "{}", t.head.join(" | "));
        for row in &t.rows {
            let cells: Vec<String> = row.iter().map(Cell::shown).collect();
            let _ = writeln!(out, "{}", cells.join(" | "));
        }
        for n in &t.notes {
            let _ = writeln!(out, "  {n}");
        }
    }
}

/// One row of the CSV's tidy table: a figure of a depth table.
pub(super) struct CsvFigure {
    /// The table's title (the CSV's indicator column).
    pub table: &'static str,
    /// The table's id (the key column).
    pub key: String,
    pub period: String,
    /// The row's first column and the figure's header: `main-water.volume: Unmetered`.
    pub row: String,
    pub value: Option<f64>,
    pub unit: String,
}

/// Every figure of the tables, one per CSV row; a percentage has unit `%`.
pub(super) fn csv_figures(report: &Report, lang: Lang) -> Vec<CsvFigure> {
    let mut out = Vec::new();
    for t in tables(report, lang) {
        for row in &t.rows {
            // The row's name: its leading text cells but the period (coverage: carrier / level); the
            // balance table's row by its parent meter.
            let name = if t.id == "balances" {
                row.get(2).map(Cell::shown).unwrap_or_default()
            } else {
                row.iter()
                    .enumerate()
                    .take_while(|(_, c)| matches!(c, Cell::Text(_) | Cell::Short(_)))
                    .filter(|(i, _)| Some(*i) != t.period)
                    .map(|(_, c)| c.shown())
                    .collect::<Vec<_>>()
                    .join(" / ")
            };
            let period = t
                .period
                .and_then(|p| row.get(p))
                .map(Cell::shown)
                .unwrap_or_default();
            let unit = t
                .unit
                .and_then(|u| row.get(u))
                .map(Cell::shown)
                .unwrap_or_default();
            for (c, cell) in row.iter().enumerate() {
                let (value, unit) = match cell {
                    Cell::Num(v) => (*v, unit.clone()),
                    Cell::Int(n) => (Some(*n as f64), String::new()),
                    Cell::Pct(v) => (*v, "%".to_string()),
                    _ => continue,
                };
                out.push(CsvFigure {
                    table: t.title,
                    key: t.id.to_string(),
                    period: period.clone(),
                    row: format!("{name}: {}", t.head.get(c).copied().unwrap_or("")),
                    value,
                    unit,
                });
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::audit::balance::{Balances, TreeBalance, WaterBalance};

    pub(crate) fn with_depth() -> Report {
        let mut r = super::super::fixture::report();
        r.balances = Some(Balances {
            tree: vec![TreeBalance {
                carrier: "water".into(),
                period: "reporting".into(),
                parent: "main-water.volume".into(),
                children: vec!["dyeing-water.volume".into()],
                unit: "m3".into(),
                hours: 10,
                period_hours: 10,
                parent_total: Some(1000.0),
                children_total: Some(1050.0),
                unmetered: Some(-50.0),
                unmetered_pct: Some(-5.0),
                tolerance_pct: 2.0,
                tolerance_basis: "default".into(),
                status: BalanceStatus::MeterFault,
                faulty: vec!["dyeing-water.volume".into()],
                reason: None,
            }],
            water: vec![WaterBalance {
                period: "reporting".into(),
                hours: 10,
                period_hours: 10,
                intake: Some(1000.0),
                reuse: Some(3000.0),
                total_use: Some(4000.0),
                discharge: Some(780.0),
                consumption: None,
                losses: None,
                losses_pct: None,
                reuse_rate_pct: Some(75.0),
                reasons: vec!["no consumption point ([audit.water] consumption)".into()],
            }],
        });
        r
    }

    #[test]
    fn every_rendering_shows_the_fault_and_the_reuse_rate_in_both_languages() {
        let r = with_depth();
        for (lang, fault, rate) in [
            (Lang::En, "meter fault", "Water reuse rate"),
            (Lang::Zh, "表计故障", "水重复利用率"),
        ] {
            let h = super::super::html(&r, lang);
            assert!(h.contains(fault) && h.contains(rate), "{lang:?} html");
            assert!(h.contains("75.0 %"), "{lang:?} html reuse rate");
            let t = super::super::text_table(&r, lang);
            assert!(
                t.contains(fault) && t.contains("75.0 %"),
                "{lang:?} text: {t}"
            );
            let c = String::from_utf8(super::super::csv(&r, lang)).unwrap();
            assert!(c.contains(rate), "{lang:?} csv");
            assert!(
                c.contains(",75,%,") || c.contains(",75,%"),
                "{lang:?} csv rate: {c}"
            );
        }
        let zh = super::super::html(&r, Lang::Zh);
        assert!(zh.contains("无耗水量测点"), "the reason in Chinese");
        // No English left in the Chinese tables but the config's names and units.
        let allowed = super::super::fixture::config_names(&r, true);
        let mut text = String::new();
        super::text(&r, Lang::Zh, &mut text);
        let left = super::super::fixture::english(&text, &allowed);
        assert!(left.is_empty(), "{left:?} in\n{text}");
    }
}
