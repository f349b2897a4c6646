//! 分表计电 (`compliance.facilities`): one table, written by each rendering (HTML, XLSX, text, CSV
//! has its own rows), with its English and Chinese labels here.

use crate::audit::report::Report;

use super::format::display_opt;
use super::i18n::{period_label, Lang};
use crate::audit::report::PeriodKind;

/// The section's title.
pub(super) fn title(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "Electricity of production and treatment facilities (分表计电)",
        Lang::Zh => "生产设施与治污设施用电（分表计电）",
    }
}

/// The short name of the XLSX sheet.
#[cfg(feature = "xlsx")]
pub(super) fn sheet(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "Facilities",
        Lang::Zh => "分表计电",
    }
}

/// Column headers; the fourth (treatment off) is the finding.
pub(super) fn header(lang: Lang) -> [&'static str; 6] {
    match lang {
        Lang::En => [
            "Facility",
            "Period",
            "Production running (h)",
            "Treatment off while production runs (h)",
            "Treatment far below usual (h)",
            "Power unknown (h)",
        ],
        Lang::Zh => [
            "设施",
            "时段",
            "生产设施运行（小时）",
            "生产运行而治污设施停运（小时）",
            "治污设施低于正常水平（小时）",
            "用电数据缺失（小时）",
        ],
    }
}

/// One row per facility and period: name, period, then the hours (None: not checked).
pub(super) struct Row {
    pub name: String,
    pub period: String,
    pub hours: [Option<f64>; 4],
}

impl Row {
    /// The cells as text, hours with the report's number format ("–" where not checked).
    pub(super) fn texts(&self) -> Vec<String> {
        let mut v = vec![self.name.clone(), self.period.clone()];
        v.extend(self.hours.iter().map(|h| display_opt(*h)));
        v
    }

    /// Whether treatment was found off or low.
    pub(super) fn finding(&self) -> bool {
        self.hours[1].is_some_and(|h| h > 0.0) || self.hours[2].is_some_and(|h| h > 0.0)
    }
}

/// The rows of the report; empty without `[[audit.facility]]`.
pub(super) fn rows(report: &Report, lang: Lang) -> Vec<Row> {
    report
        .compliance
        .facilities
        .iter()
        .map(|f| Row {
            name: f.name.clone(),
            period: match f.period.as_str() {
                "baseline" => period_label(lang, PeriodKind::Baseline),
                "reporting" => period_label(lang, PeriodKind::Reporting),
                other => other.to_string(),
            },
            hours: [
                Some(f.production_hours),
                Some(f.treatment_off_hours),
                f.treatment_low_hours,
                Some(f.unknown_hours),
            ],
        })
        .collect()
}

/// The hours' method in one sentence.
pub(super) fn note(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "Counted per local hour from the hourly mean power of each facility; a stop of treatment counts after the grace time; an hour without valid readings of either is unknown, never off.",
        Lang::Zh => "按本地整点小时的平均功率统计；治污设施停运超过宽限时间后计入；任一设施该小时无有效数据时计为数据缺失，不计为停运。",
    }
}

/// The section in HTML (after the limits and triggers); nothing without facilities.
pub(super) fn html(report: &Report, lang: Lang, out: &mut String) {
    use super::format::escape;
    use super::html::{head_row, num_td, text_td};
    use std::fmt::Write as _;
    let rows = rows(report, lang);
    if rows.is_empty() {
        return;
    }
    let _ = write!(
        out,
        r#"<section id="facilities"><h2>{}</h2><div class="tw"><table>"#,
        escape(title(lang))
    );
    head_row(out, &header(lang));
    out.push_str("<tbody>");
    for r in &rows {
        let cells = r.texts();
        out.push_str("<tr>");
        text_td(out, &cells[0]);
        text_td(out, &cells[1]);
        num_td(out, &cells[2]);
        let class = if r.finding() { "bad" } else { "good" };
        for c in &cells[3..5] {
            let _ = write!(out, r#"<td class="num {class}">{}</td>"#, escape(c));
        }
        num_td(out, &cells[5]);
        out.push_str("</tr>");
    }
    let _ = write!(
        out,
        "</tbody></table></div><p>{}</p></section>",
        escape(note(lang))
    );
}

/// The section for a terminal.
pub(super) fn text(report: &Report, lang: Lang, out: &mut String) {
    let rows = rows(report, lang);
    if rows.is_empty() {
        return;
    }
    let h = header(lang);
    let mut t = super::text::Table::new(&[
        (h[0], false),
        (h[1], false),
        (h[2], true),
        (h[3], true),
        (h[4], true),
        (h[5], true),
    ]);
    for r in &rows {
        t.push(r.texts());
    }
    out.push('\n');
    out.push_str(title(lang));
    out.push('\n');
    t.render(out);
}

/// The CSV rows of the one table: (indicator, key, period label, period key, hours) per figure.
pub(super) fn csv_rows(report: &Report, lang: Lang) -> Vec<[String; 4]> {
    let h = header(lang);
    let mut out = Vec::new();
    for (f, r) in report.compliance.facilities.iter().zip(rows(report, lang)) {
        let figures = [
            ("production_hours", h[2], r.hours[0]),
            ("treatment_off_hours", h[3], r.hours[1]),
            ("treatment_low_hours", h[4], r.hours[2]),
            ("unknown_hours", h[5], r.hours[3]),
        ];
        for (key, label, v) in figures {
            let Some(v) = v else { continue };
            out.push([
                format!("{} {}: {label}", title(lang), f.name),
                format!("facility.{}.{key}", f.name),
                r.period.clone(),
                format!("{v}"),
            ]);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::audit::report::FacilityCompliance;

    pub(crate) fn with_facility(mut r: Report) -> Report {
        r.compliance.facilities.push(FacilityCompliance {
            name: "wwtp".into(),
            period: "reporting".into(),
            production_hours: 12.0,
            treatment_off_hours: 2.75,
            treatment_low_hours: None,
            unknown_hours: 1.0,
        });
        r
    }

    #[test]
    fn every_rendering_shows_the_hours_in_both_languages() {
        let r = with_facility(crate::audit::render::fixture::report());
        for lang in [Lang::En, Lang::Zh] {
            let h = crate::audit::render::html(&r, lang);
            assert!(h.contains(title(lang)), "{lang:?}");
            assert!(h.contains(header(lang)[3]));
            assert!(h.contains(r#"<td class="num bad">2.75</td>"#), "{h}");
            let t = crate::audit::render::text_table(&r, lang);
            assert!(t.contains(title(lang)), "{t}");
            assert!(t.contains("2.75") && t.contains("wwtp"), "{t}");
            let c = String::from_utf8(crate::audit::render::csv(&r, lang)).unwrap();
            assert!(c.contains("wwtp") && c.contains("2.75"), "{c}");
        }
        let zh = crate::audit::render::html(&r, Lang::Zh);
        assert!(zh.contains("报告期"), "the period in Chinese");
    }
}
