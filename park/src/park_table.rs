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

/// The park report `v` (its JSON) as `csv`, `html` or `xlsx` bytes.
pub fn render(v: &Value, format: &str) -> anyhow::Result<Vec<u8>> {
    let rows = rows(v);
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
            h.push_str("</table></body></html>\n");
            Ok(h.into_bytes())
        }
        "xlsx" => {
            let mut wb = rust_xlsxwriter::Workbook::new();
            let ws = wb.add_worksheet();
            ws.set_name("Park")?;
            let bold = rust_xlsxwriter::Format::new().set_bold();
            let fmt = rust_xlsxwriter::Format::new().set_num_format("#,##0.00");
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
