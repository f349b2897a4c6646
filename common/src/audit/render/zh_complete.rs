//! The Chinese report holds no English: every string of the HTML, the XLSX, the CSV and the terminal
//! table of a report with everything in it (the engine's notes and reasons included) is Chinese, except
//! units, codes, standards, pollutant formulas, numbers and the names the config gave.

#![allow(clippy::unwrap_used)]

use std::io::Read;

use super::fixture::{config_names, english};
use super::{csv, fixture, html, text_table, xlsx, Lang};

/// The text of an HTML document: without the style sheet and the tags, entities decoded.
fn html_text(h: &str) -> String {
    // Without every style element (the style sheet, the printed pages' footer).
    let mut body = String::with_capacity(h.len());
    let mut rest = h;
    while let (Some(a), Some(b)) = (rest.find("<style>"), rest.find("</style>")) {
        body.push_str(&rest[..a]);
        rest = &rest[b + "</style>".len()..];
    }
    body.push_str(rest);
    let mut out = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
}

/// Every string of a workbook: shared strings, inline strings and sheet names.
fn xlsx_strings(bytes: &[u8]) -> String {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut out = String::new();
    for i in 0..z.len() {
        let mut f = z.by_index(i).unwrap();
        let name = f.name().unwrap().to_string();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        if name == "xl/workbook.xml" {
            for part in s.split("name=\"").skip(1) {
                out.push_str(part.split('"').next().unwrap_or(""));
                out.push('\n');
            }
        } else if name == "xl/sharedStrings.xml" || name.starts_with("xl/worksheets/") {
            for part in s.split("<t").skip(1) {
                let text = part.split_once('>').map_or("", |(_, t)| t);
                out.push_str(text.split("</t>").next().unwrap_or(""));
                out.push('\n');
            }
        }
    }
    html_text(&out)
}

#[test]
fn the_chinese_report_holds_no_english() {
    let r = fixture::rich();
    let (allowed, with_keys) = (config_names(&r, false), config_names(&r, true));
    let outputs = [
        ("html", html_text(&html(&r, Lang::Zh)), &allowed),
        (
            "xlsx",
            xlsx_strings(&xlsx(&r, Lang::Zh).unwrap()),
            &with_keys,
        ),
        (
            "csv",
            String::from_utf8(csv(&r, Lang::Zh)).unwrap(),
            &with_keys,
        ),
        ("text", text_table(&r, Lang::Zh), &allowed),
    ];
    for (what, text, allowed) in &outputs {
        let left = english(text, allowed);
        assert!(left.is_empty(), "{what}: English left: {left:?}");
    }
    // the check itself finds English: the same report in English is full of it
    let en = html_text(&html(&r, Lang::En));
    assert!(english(&en, &allowed).len() > 100);
    // and the engine's texts were rendered, in Chinese
    let h = &outputs[0].1;
    for zh in [
        "无有效回归模型",
        "报告期数据完整率 62.5 %",
        "未配置 电 的价格",
        "累计量表",
        "方案 LED lighting",
    ] {
        assert!(h.contains(zh), "html: missing {zh}");
    }
}

#[test]
fn energy_totals_are_in_tce_in_every_rendering() {
    let r = fixture::rich();
    let energy = &r.indicators[0].1;
    assert_eq!(energy.total_unit, "kgce", "the JSON keeps kgce");
    let tce = super::format::display(energy.baseline.total.unwrap() / 1000.0);
    for lang in [Lang::En, Lang::Zh] {
        let h = html(&r, lang);
        assert!(
            h.contains(&format!(">{tce}<")),
            "{lang:?}: html baseline total {tce} tce"
        );
        assert!(h.contains(r#"<td class="unit">tce<br>kgce/t</td>"#));
        let t = text_table(&r, lang);
        assert!(t.contains(" tce"), "{lang:?}: {t}");
    }
}
