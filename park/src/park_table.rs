//! The park report as one tidy table (CSV, HTML, XLSX): a row per plant and indicator with its baseline and
//! reporting totals, then the park's totals. Plants' own reports have the agent's layouts (`--plant`).

use serde_json::Value;

/// One row: plant ("" for the park total), enterprise, indicator, baseline total, reporting total.
type Row = (String, String, String, Option<f64>, Option<f64>);

fn rows(v: &Value) -> Vec<Row> {
    let total = |x: &Value, p: &str| x[p]["total"].as_f64();
    let mut out = Vec::new();
    for p in v["plants"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap_or_default().to_string();
        let ent = p["enterprise"].as_str().unwrap_or_default().to_string();
        if let Some(ind) = p["report"]["indicators"].as_object() {
            for (k, i) in ind {
                out.push((
                    name.clone(),
                    ent.clone(),
                    k.clone(),
                    total(i, "baseline"),
                    total(i, "reporting"),
                ));
            }
        }
    }
    if let Some(t) = v["totals"].as_object() {
        for (k, i) in t {
            out.push((
                String::new(),
                "(park total)".to_string(),
                k.clone(),
                total(i, "baseline"),
                total(i, "reporting"),
            ));
        }
    }
    out
}

const HEAD: [&str; 5] = [
    "plant",
    "enterprise",
    "indicator",
    "baseline_total",
    "reporting_total",
];

/// A cell of the park's tables.
enum Cell {
    Text(String),
    Num(Option<f64>),
}

/// A table: title (its sheet's name after the colon), header, rows.
type Table = (&'static str, Vec<&'static str>, Vec<Vec<Cell>>);

fn text(v: &Value) -> Cell {
    Cell::Text(match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

fn num(v: &Value) -> Cell {
    Cell::Num(v.as_f64())
}

/// The park's own audit (allocation, with and without, benchmarks, intensity) as tables.
fn park_tables(v: &Value) -> Vec<Table> {
    let mut alloc = Vec::new();
    for u in v["utilities"].as_array().into_iter().flatten() {
        for period in crate::allocation::PERIODS {
            let a = &u["periods"][period];
            if a.is_null() {
                continue;
            }
            for part in a["parts"].as_array().into_iter().flatten() {
                alloc.push(vec![
                    text(&u["name"]),
                    Cell::Text(period.into()),
                    text(&u["unit"]),
                    num(&a["utility"]["total"]),
                    num(&a["losses"]),
                    text(&part["plant"]),
                    text(&part["sub_meter"]["point"]),
                    num(&part["sub_meter"]["total"]),
                    num(&part["sub_meter"]["completeness"]),
                    num(&part["share"]),
                    num(&part["allocated"]),
                    num(&part["losses"]),
                    num(&part["allocated_kgce"]),
                    text(&a["reason"]),
                ]);
            }
        }
    }
    let mut with = Vec::new();
    let mut intensity = Vec::new();
    for p in v["plants"].as_array().into_iter().flatten() {
        for (ind, w) in p["with_allocation"].as_object().into_iter().flatten() {
            for period in crate::allocation::PERIODS {
                if w[period].is_null() {
                    continue;
                }
                let x = &w[period];
                with.push(vec![
                    text(&p["name"]),
                    Cell::Text(ind.clone()),
                    Cell::Text(period.into()),
                    text(&w["unit"]),
                    num(&x["without"]),
                    num(&x["allocated"]),
                    num(&x["with"]),
                    num(&x["per_unit_without"]),
                    num(&x["per_unit_with"]),
                    text(&x["reason"]),
                ]);
            }
        }
        for period in crate::allocation::PERIODS {
            let x = &p["intensity"][period];
            if !x.is_null() {
                intensity.push(vec![
                    text(&p["name"]),
                    Cell::Text(period.into()),
                    num(&x["energy_tce"]),
                    num(&x["output_value"]),
                    num(&x["tce_per_10k_yuan_output"]),
                    num(&x["value_added"]),
                    num(&x["tce_per_10k_yuan_value_added"]),
                ]);
            }
        }
    }
    for period in crate::allocation::PERIODS {
        let x = &v["intensity"][period];
        if !x.is_null() {
            intensity.push(vec![
                Cell::Text("(park)".into()),
                Cell::Text(period.into()),
                num(&x["energy_tce"]),
                num(&x["output_value"]),
                num(&x["tce_per_10k_yuan_output"]),
                num(&x["value_added"]),
                num(&x["tce_per_10k_yuan_value_added"]),
            ]);
        }
    }
    let mut bench = Vec::new();
    for b in v["benchmarks"].as_array().into_iter().flatten() {
        for r in b["rows"].as_array().into_iter().flatten() {
            bench.push(vec![
                text(&b["industry"]),
                text(&b["indicator"]),
                text(&b["period"]),
                text(&b["unit"]),
                text(&r["rank"]),
                text(&r["plant"]),
                num(&r["per_unit"]),
                num(&r["per_unit_with_allocation"]),
                num(&r["advanced"]),
                num(&r["distance"]),
                num(&r["distance_pct"]),
            ]);
        }
    }
    vec![
        (
            "Shared utilities allocated by sub-meter shares:Allocation",
            vec![
                "utility",
                "period",
                "unit",
                "utility_total",
                "losses",
                "plant",
                "sub_meter",
                "sub_meter_total",
                "sub_meter_completeness",
                "share",
                "allocated",
                "allocated_losses",
                "allocated_kgce",
                "reason",
            ],
            alloc,
        ),
        (
            "Plants with and without their allocation:With allocation",
            vec![
                "plant",
                "indicator",
                "period",
                "unit",
                "without",
                "allocated",
                "with",
                "per_unit_without",
                "per_unit_with",
                "reason",
            ],
            with,
        ),
        (
            "Benchmarks (plants of one industry):Benchmarks",
            vec![
                "industry",
                "indicator",
                "period",
                "unit",
                "rank",
                "plant",
                "per_unit",
                "per_unit_with_allocation",
                "advanced_level_II",
                "distance",
                "distance_pct",
            ],
            bench,
        ),
        (
            "Energy intensity per 10^4 yuan (tce):Intensity",
            vec![
                "plant",
                "period",
                "energy_tce",
                "output_value_10k_yuan",
                "tce_per_10k_yuan_output",
                "value_added_10k_yuan",
                "tce_per_10k_yuan_value_added",
            ],
            intensity,
        ),
    ]
}

/// The park report `v` (its JSON) as `csv`, `html` or `xlsx` bytes: the plants' totals, then the park's
/// own audit (CSV: each further table after an empty line, with its own header).
pub fn render(v: &Value, format: &str) -> anyhow::Result<Vec<u8>> {
    let rows = rows(v);
    let extra: Vec<Table> = park_tables(v)
        .into_iter()
        .filter(|(_, _, r)| !r.is_empty())
        .collect();
    let num = |x: Option<f64>| {
        x.filter(|v| v.is_finite())
            .map_or(String::new(), |v| format!("{v}"))
    };
    match format {
        "csv" => {
            // UTF-8 with a BOM, for Excel; fields quoted where needed.
            let mut w = csv_writer();
            w.push_str(&HEAD.join(","));
            w.push_str("\r\n");
            for (p, e, k, b, r) in &rows {
                let cells = [quote(p), quote(e), quote(k), num(*b), num(*r)];
                w.push_str(&cells.join(","));
                w.push_str("\r\n");
            }
            for (_, head, rows) in &extra {
                w.push_str("\r\n");
                w.push_str(&head.join(","));
                w.push_str("\r\n");
                for r in rows {
                    let cells: Vec<String> = r
                        .iter()
                        .map(|c| match c {
                            Cell::Text(t) => quote(t),
                            Cell::Num(x) => num(*x),
                        })
                        .collect();
                    w.push_str(&cells.join(","));
                    w.push_str("\r\n");
                }
            }
            Ok(w.into_bytes())
        }
        "html" => {
            let esc = |s: &str| {
                s.replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;")
            };
            let mut h = format!(
                "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{}</title><style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}td.n{{text-align:right}}</style></head><body><h1>{}</h1><table><tr>",
                esc(v["park"].as_str().unwrap_or("park")),
                esc(v["park"].as_str().unwrap_or("park"))
            );
            for c in HEAD {
                h.push_str(&format!("<th>{c}</th>"));
            }
            h.push_str("</tr>");
            for (p, e, k, b, r) in &rows {
                h.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                    esc(p),
                    esc(e),
                    esc(k),
                    b.map_or("–".to_string(), |v| format!("{v:.2}")),
                    r.map_or("–".to_string(), |v| format!("{v:.2}"))
                ));
            }
            h.push_str("</table>");
            for (title, head, rows) in &extra {
                let title = title.split_once(':').map_or(*title, |(t, _)| t);
                h.push_str(&format!("<h2>{}</h2><table><tr>", esc(title)));
                for c in head {
                    h.push_str(&format!("<th>{c}</th>"));
                }
                h.push_str("</tr>");
                for r in rows {
                    h.push_str("<tr>");
                    for c in r {
                        match c {
                            Cell::Text(t) => h.push_str(&format!("<td>{}</td>", esc(t))),
                            // Shares and completeness are fractions: more digits than totals.
                            Cell::Num(x) => h.push_str(&format!(
                                "<td class=\"n\">{}</td>",
                                x.filter(|v| v.is_finite()).map_or("–".to_string(), |v| {
                                    if v.abs() < 10.0 {
                                        format!("{v:.4}")
                                    } else {
                                        format!("{v:.2}")
                                    }
                                })
                            )),
                        }
                    }
                    h.push_str("</tr>");
                }
                h.push_str("</table>");
            }
            h.push_str("</body></html>\n");
            Ok(h.into_bytes())
        }
        "xlsx" => {
            let mut wb = rust_xlsxwriter::Workbook::new();
            let bold = rust_xlsxwriter::Format::new().set_bold();
            let fmt = rust_xlsxwriter::Format::new().set_num_format("#,##0.00");
            let fine = rust_xlsxwriter::Format::new().set_num_format("0.0000");
            let ws = wb.add_worksheet();
            ws.set_name("Park")?;
            for (c, h) in HEAD.iter().enumerate() {
                ws.write_string_with_format(0, c as u16, *h, &bold)?;
            }
            ws.set_freeze_panes(1, 0)?;
            for (i, (p, e, k, b, r)) in rows.iter().enumerate() {
                let row = i as u32 + 1;
                ws.write_string(row, 0, p)?;
                ws.write_string(row, 1, e)?;
                ws.write_string(row, 2, k)?;
                if let Some(b) = b.filter(|v| v.is_finite()) {
                    ws.write_number_with_format(row, 3, b, &fmt)?;
                }
                if let Some(r) = r.filter(|v| v.is_finite()) {
                    ws.write_number_with_format(row, 4, r, &fmt)?;
                }
            }
            for (title, head, rows) in &extra {
                let ws = wb.add_worksheet();
                ws.set_name(title.split_once(':').map_or("Park audit", |(_, n)| n))?;
                for (c, h) in head.iter().enumerate() {
                    ws.write_string_with_format(0, c as u16, *h, &bold)?;
                }
                ws.set_freeze_panes(1, 0)?;
                for (j, r) in rows.iter().enumerate() {
                    for (c, cell) in r.iter().enumerate() {
                        let (row, col) = (j as u32 + 1, c as u16);
                        match cell {
                            Cell::Text(t) => {
                                ws.write_string(row, col, t)?;
                            }
                            Cell::Num(Some(x)) if x.is_finite() => {
                                let f = if x.abs() < 10.0 { &fine } else { &fmt };
                                ws.write_number_with_format(row, col, *x, f)?;
                            }
                            Cell::Num(_) => {}
                        }
                    }
                }
            }
            Ok(wb.save_to_buffer()?)
        }
        other => anyhow::bail!("unknown format {other}"),
    }
}

fn csv_writer() -> String {
    String::from("\u{feff}")
}

/// A CSV field, quoted when it holds a comma, quote or line break, and guarded against formulas.
fn quote(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn one_tidy_table_in_each_format() {
        let v: Value = serde_json::from_str(
            r#"{"park":"Binhai","plants":[{"name":"a","enterprise":"A, Co.","report":{"indicators":{"energy":{"baseline":{"total":10.5},"reporting":{"total":null}}}}}],"totals":{"energy":{"baseline":{"total":10.5},"reporting":{"total":null}}}}"#,
        )
        .unwrap();
        let csv = String::from_utf8(render(&v, "csv").unwrap()).unwrap();
        let lines: Vec<&str> = csv.trim_start_matches('\u{feff}').lines().collect();
        assert_eq!(
            lines[0],
            "plant,enterprise,indicator,baseline_total,reporting_total"
        );
        assert_eq!(lines[1], "a,\"A, Co.\",energy,10.5,");
        assert_eq!(lines[2], ",(park total),energy,10.5,");
        let html = String::from_utf8(render(&v, "html").unwrap()).unwrap();
        assert!(html.contains("<td class=\"n\">10.50</td><td class=\"n\">–</td>"));
        assert!(render(&v, "xlsx").unwrap().starts_with(b"PK"));
    }
}
