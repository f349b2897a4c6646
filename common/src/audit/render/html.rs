//! The report as one self-contained HTML file: inline CSS, inline SVG charts, no scripts, no fonts or
//! anything else loaded from elsewhere, printable on A4. Every text from the report is escaped.

use std::fmt::Write as _;

use crate::audit::report::{Bucket, Indicator, PeriodKind, Report, SavingsBasis};

use super::engine_text::{coefficient_unit, engine_text, variable_label, variables_label};
use super::format::{
    days_between, display, display_opt, escape, fraction_pct, inclusive_end, pct_opt, plain,
    shown_total_unit,
};
use super::i18n::{
    carrier_label, days_left_out, electricity_method_label, granularity_label, indicator_label,
    level_label, method_label, per_unit_label, predicted_chart_text, savings_caveat, source_label,
    yes_no, Lang,
};
use super::seal::{seal_line, seal_view};
use super::svg::{self, ChartText, ScatterSeries, BASELINE, REPORTING};

/// Grey: model buckets with incomplete data.
const INCOMPLETE: &str = "#9aa0a6";

const CSS: &str = r#"
:root { --fg: #1a202c; --muted: #4a5568; --line: #cbd5e0; --base: #2b6cb0; --rep: #dd6b20; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1100px; padding: 24px 28px; color: var(--fg); background: #fff;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "PingFang SC",
  "Hiragino Sans GB", "Microsoft YaHei", "Noto Sans CJK SC", "Source Han Sans SC",
  "WenQuanYi Micro Hei", sans-serif; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--fg); }
h3 { font-size: 15px; margin: 18px 0 8px; }
h2, h3, figcaption { break-after: avoid; page-break-after: avoid; }
p.meta { color: var(--muted); margin: 0; }
p.seal { font-size: 11px; overflow-wrap: anywhere; }
.tw { overflow-x: auto; margin: 6px 0 12px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 4px 7px; vertical-align: top; }
th { background: #edf2f7; text-align: left; font-weight: 600; }
td { overflow-wrap: break-word; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.level, td.unit, td.nw { white-space: nowrap; }
p.lead { break-after: avoid; page-break-after: avoid; }
td.why { color: var(--muted); font-size: 0.9em; }
tr.reason td { color: var(--muted); font-size: 0.9em; border-top: none; padding-top: 0; }
td.num small { display: block; font-weight: 400; color: var(--muted); }
footer { break-before: avoid; page-break-before: avoid; }
td .key { display: block; color: var(--muted); font-size: 11px; }
thead { display: table-header-group; }
tr { break-inside: avoid; page-break-inside: avoid; }
.good { color: #276749; font-weight: 600; }
.bad { color: #c53030; font-weight: 600; }
.weak { color: #975a16; font-weight: 600; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0; }
.card { flex: 1 1 230px; border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; break-inside: avoid; }
.card .label { color: var(--muted); font-size: 12px; }
.card .value { font-size: 20px; font-weight: 600; }
.card .sub { font-size: 12px; color: var(--muted); }
figure { margin: 10px 0 22px; break-inside: avoid; page-break-inside: avoid; }
figcaption { font-weight: 600; margin-bottom: 4px; }
figure p.note { color: var(--muted); font-size: 12px; margin: 2px 0 0; }
ul.legend { list-style: none; margin: 0 0 4px; padding: 0; display: flex; flex-wrap: wrap; gap: 2px 16px; font-size: 12px; }
ul.legend li { display: inline-flex; align-items: center; gap: 6px; }
ul.legend .swatch { display: inline-block; width: 12px; height: 12px; opacity: 0.8; }
ul.legend .swatch.line { width: 20px; height: 3px; opacity: 1; }
svg.chart { width: 100%; height: auto; display: block; border: 1px solid #e2e8f0; }
svg .bg { fill: #fff; }
svg .frame { fill: none; stroke: #718096; stroke-width: 1; }
svg .grid { stroke: #e2e8f0; stroke-width: 1; }
svg text { font-family: inherit; fill: #2d3748; }
svg .tick { font-size: 11px; }
svg .axis-title { font-size: 12px; font-weight: 600; }
svg .nodata { font-size: 18px; fill: #a0aec0; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 8px 0; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; }
footer { margin-top: 32px; color: var(--muted); font-size: 12px; border-top: 1px solid var(--line); padding-top: 6px; }
@media screen and (max-width: 820px) {
  body { padding: 14px 12px; }
  table { font-size: 12px; }
  th, td { padding: 3px 5px; }
  dl.facts { grid-template-columns: 1fr; }
  dl.facts dd { margin-bottom: 6px; }
}
@page { size: A4; margin: 14mm 12mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 9.5pt; }
  h1 { font-size: 16pt; }
  h2 { font-size: 12.5pt; margin: 14pt 0 6pt; }
  h3 { font-size: 10.5pt; margin: 10pt 0 4pt; }
  .tw { overflow: visible; }
  table { font-size: 8pt; }
  th, td { padding: 2pt 3pt; }
  .card .value { font-size: 13pt; }
  svg.chart { border: none; }
  figure { margin: 4pt 0 10pt; }
  section.keep, div.keep { break-inside: avoid; page-break-inside: avoid; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"#;

/// An RFC 3339 instant shown in the plant's timezone (`+08:00`), to the minute: `2026-11-30 18:04 (+08:00)`.
/// Unparseable input is shown as it is.
pub(super) fn local_time(rfc3339: &str, tz: &str) -> String {
    let (Ok(t), Ok(off)) = (
        chrono::DateTime::parse_from_rfc3339(rfc3339),
        tz.parse::<chrono::FixedOffset>(),
    ) else {
        return rfc3339.to_string();
    };
    format!("{} ({tz})", t.with_timezone(&off).format("%Y-%m-%d %H:%M"))
}

/// `s` as a quoted CSS string: quotes, backslashes, line breaks and `<` (which could end the `<style>`
/// element) escaped as CSS hex escapes.
fn css_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' | '\\' | '<' | '>' | '&' => {
                let _ = write!(out, "\\{:x} ", ch as u32);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `<td class="num">` with an already formatted number.
pub(super) fn num_td(out: &mut String, text: &str) {
    let _ = write!(out, r#"<td class="num">{}</td>"#, escape(text));
}

pub(super) fn text_td(out: &mut String, text: &str) {
    let _ = write!(out, "<td>{}</td>", escape(text));
}

/// A short text cell that must not wrap (a date, a method, a carrier).
fn nowrap_td(out: &mut String, text: &str) {
    let _ = write!(out, r#"<td class="nw">{}</td>"#, escape(text));
}

pub(super) fn head_row(out: &mut String, cells: &[&str]) {
    out.push_str("<thead><tr>");
    for c in cells {
        let _ = write!(out, "<th>{}</th>", escape(c));
    }
    out.push_str("</tr></thead>");
}

/// The report as a self-contained HTML document (UTF-8): summary, indicator table, three charts
/// (consumption vs production with the model line, per unit by month, CUSUM) and the method section.
pub fn html(report: &Report, lang: Lang) -> String {
    let l = lang.labels();
    let mut out = String::with_capacity(64 * 1024 + report.series.energy_buckets.len() * 64);
    let title = format!("{} — {} / {}", l.title, report.site, report.gateway);
    let _ = write!(
        out,
        r#"<!DOCTYPE html><html lang="{}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{}</title>"#,
        lang.html_tag(),
        escape(&title)
    );
    let seal = seal_view(report);
    // For `plantmeter verify --json` and any script: which JSON this page was rendered from.
    let _ = write!(
        out,
        r#"<meta name="plantmeter-report-id" content="{}"><meta name="plantmeter-report-sha256" content="{}"><meta name="plantmeter-report-signed" content="{}"><style>{CSS}</style>"#,
        escape(&seal.id),
        escape(seal.sha256.unwrap_or("")),
        seal.signed
    );
    // Every printed page names the JSON (id, digest, signed) and its number "n / N": the page-margin
    // boxes of CSS paged media (Chromium 131+, Prince, WeasyPrint).
    let _ = write!(
        out,
        r#"<style>@page {{ @bottom-left {{ content: {}; font-size: 6.5pt; color: #4a5568; }} @bottom-right {{ content: counter(page) " / " counter(pages); font-size: 8pt; color: #4a5568; }} }}</style></head><body>"#,
        css_string(&seal_line(lang, &seal))
    );
    let _ = write!(
        out,
        r#"<header><h1>{}</h1><p class="meta">{}: <b>{}</b> · {}: <b>{}</b> · {}: {}</p></header>"#,
        escape(l.title),
        escape(l.site),
        escape(&report.site),
        escape(l.gateway),
        escape(&report.gateway),
        escape(l.generated_at),
        escape(&local_time(&report.generated_at, &report.method.timezone))
    );
    let _ = write!(
        out,
        r#"<p class="meta seal">{}</p>"#,
        escape(&seal_line(lang, &seal))
    );
    if let Some(e) = &report.enterprise {
        let industry = report
            .industry
            .as_deref()
            .map_or(String::new(), |i| format!(" · {}", escape(i)));
        let _ = write!(
            out,
            r#"<p class="meta enterprise"><b>{}</b>{industry}</p>"#,
            escape(e)
        );
    }
    summary(report, lang, &mut out);
    indicators(report, lang, &mut out);
    compliance(report, lang, &mut out);
    super::facility::html(report, lang, &mut out);
    super::depth::html(report, lang, &mut out);
    measures(report, lang, &mut out);
    charts(report, lang, &mut out);
    method(report, lang, &mut out);
    let _ = writeln!(
        out,
        "<footer>plantmeter {} · {} {}</footer></body></html>",
        env!("CARGO_PKG_VERSION"),
        escape(l.generated_at),
        escape(&local_time(&report.generated_at, &report.method.timezone))
    );
    out
}

/// Measures (方案): savings from their sub-meters, money, payback.
fn measures(report: &Report, lang: Lang, out: &mut String) {
    if report.measures.is_empty() {
        return;
    }
    let l = lang.labels();
    section(out, "measures", l.measures);
    out.push_str(r#"<div class="tw"><table>"#);
    head_row(
        out,
        &[
            l.measure,
            l.in_service,
            l.investment_yuan,
            l.indicator,
            l.savings,
            l.savings_yuan,
            l.payback_years,
            l.reason,
        ],
    );
    out.push_str("<tbody>");
    for m in &report.measures {
        out.push_str("<tr>");
        text_td(out, &m.name);
        nowrap_td(out, &m.in_service);
        let yuan = t(lang, "yuan", "元");
        num_td(out, &format!("{} {yuan}", display(m.investment_yuan)));
        nowrap_td(
            out,
            &m.indicator
                .as_deref()
                .map_or_else(|| "–".to_string(), |k| indicator_label(lang, k)),
        );
        // In the indicator's unit as the other tables show it (energy in tce).
        let (k, unit) = m
            .indicator
            .as_deref()
            .and_then(|k| report.indicator(k))
            .map_or((1.0, ""), |i| shown_total_unit(&i.total_unit));
        let _ = write!(
            out,
            r#"<td class="num">{}{}</td>"#,
            escape(
                &m.savings
                    .map_or_else(|| "–".to_string(), |v| format!("{} {unit}", display(v * k)))
            ),
            caveat(lang, m.savings_basis, m.savings_note.as_deref())
        );
        num_td(
            out,
            &m.savings_yuan
                .map_or_else(|| "–".to_string(), |v| format!("{} {yuan}", display(v))),
        );
        num_td(
            out,
            &m.payback_years.filter(|v| v.is_finite()).map_or_else(
                || "–".to_string(),
                |v| format!("{v:.1} {}", t(lang, "years", "年")),
            ),
        );
        text_td(out, &engine_text(lang, m.reason.as_deref().unwrap_or("")));
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div></section>");
}

/// Limits and triggers (双超): per source against its limit, permitted totals per year, the energy quota.
fn compliance(report: &Report, lang: Lang, out: &mut String) {
    let c = &report.compliance;
    if c.sources.is_empty() && c.permits.is_empty() && c.quota.is_none() {
        return;
    }
    let l = lang.labels();
    section(out, "compliance", l.compliance);
    let flag = |b: bool| if b { ("bad", l.yes) } else { ("good", l.no) };
    let _ = write!(out, r#"<p class="lead">"#);
    for (i, (label, on)) in [
        (l.over_standard, c.triggers.over_standard),
        (l.over_total, c.triggers.over_total),
        (l.over_energy_quota, c.triggers.over_energy_quota),
    ]
    .into_iter()
    .enumerate()
    {
        let (class, word) = flag(on);
        let _ = write!(
            out,
            r#"{}{}: <b class="{class}">{}</b>"#,
            if i > 0 { " · " } else { "" },
            escape(label),
            escape(word)
        );
    }
    if let Some(on) = c.triggers.over_hazardous_waste {
        let (class, word) = flag(on);
        let _ = write!(
            out,
            r#" · {}: <b class="{class}">{}</b>"#,
            escape(super::i18n::depth_labels(lang).hazardous_per_year),
            escape(word)
        );
    }
    out.push_str("</p>");
    if !c.sources.is_empty() {
        out.push_str(r#"<div class="tw"><table>"#);
        head_row(
            out,
            &[
                l.indicator,
                l.emission_source,
                l.limit,
                l.valid_hours,
                l.exceedance_hours,
                l.max_converted,
            ],
        );
        out.push_str("<tbody>");
        for s in &c.sources {
            out.push_str("<tr>");
            text_td(out, &indicator_label(lang, &s.pollutant));
            text_td(out, &s.source);
            let unit = concentration_unit(&s.pollutant);
            num_td(out, &format!("{} {unit}", display(s.limit)));
            num_td(out, &s.valid_hours.to_string());
            let class = if s.exceedance_hours > 0 {
                "bad"
            } else {
                "good"
            };
            let _ = write!(
                out,
                r#"<td class="num {class}">{}</td>"#,
                s.exceedance_hours
            );
            num_td(
                out,
                &s.max_converted
                    .map_or_else(|| "–".to_string(), |v| format!("{} {unit}", display(v))),
            );
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table></div>");
    }
    if !c.permits.is_empty() {
        out.push_str(r#"<div class="tw"><table>"#);
        head_row(
            out,
            &[l.indicator, l.year, l.permit_t, l.emitted_t, l.share],
        );
        out.push_str("<tbody>");
        for p in &c.permits {
            out.push_str("<tr>");
            text_td(out, &indicator_label(lang, &p.pollutant));
            num_td(out, &p.year.to_string());
            num_td(out, &format!("{} t", display(p.t_per_year)));
            num_td(out, &format!("{} t", display(p.total_t)));
            let class = if p.share > 1.0 { "bad" } else { "good" };
            let _ = write!(
                out,
                r#"<td class="num {class}">{:.1}%</td>"#,
                p.share * 100.0
            );
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table></div>");
    }
    if let Some(q) = &c.quota {
        let over = |v: Option<bool>| match v {
            Some(true) => l.yes,
            Some(false) => l.no,
            None => "–",
        };
        let _ = write!(
            out,
            "<p>{}: {} kgce/{} · {}: {} · {}: {}</p>",
            escape(l.energy_quota),
            escape(&display(q.energy_kgce_per_unit)),
            escape(&report.production_unit),
            escape(l.baseline),
            escape(over(q.baseline_over)),
            escape(l.reporting),
            escape(over(q.reporting_over))
        );
    }
    out.push_str("</section>");
}

/// Opens `<section id=…>` with its heading.
fn section(out: &mut String, id: &str, title: &str) {
    let _ = write!(out, r#"<section id="{id}"><h2>{}</h2>"#, escape(title));
}

fn summary(report: &Report, lang: Lang, out: &mut String) {
    let l = lang.labels();
    section(out, "summary", l.summary);
    // headline cards: energy, water and CO2 per unit of product, when present
    let cards: Vec<(&str, &Indicator)> = ["energy", "water", "co2"]
        .iter()
        .filter_map(|k| report.indicator(k).map(|i| (*k, i)))
        .collect();
    if !cards.is_empty() {
        out.push_str(r#"<div class="cards">"#);
        for (key, ind) in cards {
            let unit = escape(&ind.per_unit_unit);
            let (k, total_unit) = shown_total_unit(&ind.total_unit);
            let _ = write!(
                out,
                r#"<div class="card"><div class="label">{}</div><div class="value">{} {unit}</div>"#,
                escape(&per_unit_label(lang, key)),
                escape(&display_opt(
                    ind.reporting
                        .as_ref()
                        .and_then(|r| r.per_unit)
                        .or(ind.baseline.per_unit)
                ))
            );
            match ind.reporting.as_ref().map(|r| (r, r.savings)) {
                Some((r, Some(savings))) => {
                    let class = savings_class(savings, r.savings_basis);
                    let _ = write!(
                        out,
                        r#"<div class="sub">{}: {} {unit} · {}: <span class="{class}">{} {} ({}%)</span>{}</div>"#,
                        escape(l.baseline),
                        escape(&display_opt(ind.baseline.per_unit)),
                        escape(l.savings),
                        escape(&display(savings * k)),
                        escape(total_unit),
                        escape(&pct_opt(r.savings_pct)),
                        caveat(lang, r.savings_basis, r.savings_note.as_deref())
                    );
                }
                Some((r, None)) => {
                    let _ = write!(
                        out,
                        r#"<div class="sub">{}: {} {unit} · {}: – ({})</div>"#,
                        escape(l.baseline),
                        escape(&display_opt(ind.baseline.per_unit)),
                        escape(l.savings),
                        escape(&engine_text(
                            lang,
                            r.savings_reason.as_deref().unwrap_or("")
                        ))
                    );
                }
                None => {
                    let _ = write!(out, r#"<div class="sub">{}</div>"#, escape(l.baseline));
                }
            }
            if let Some(level) = ind.level {
                let _ = write!(
                    out,
                    r#"<div class="sub">{}: <b>{}</b></div>"#,
                    escape(l.level),
                    escape(&level_label(lang, level))
                );
            }
            out.push_str("</div>");
        }
        out.push_str("</div>");
    }
    if let Some(g) = &report.grade {
        let score = |k: &str| {
            g.scores
                .get(k)
                .map_or_else(|| "–".to_string(), |v| format!("{v:.0}"))
        };
        let _ = write!(
            out,
            r#"<p class="grade">{}: <b>{}</b> (Y<sub>I</sub> {}, Y<sub>II</sub> {}, Y<sub>III</sub> {})</p>"#,
            escape(l.overall_grade),
            escape(&level_label(lang, g.level)),
            score("I"),
            score("II"),
            score("III")
        );
    }
    out.push_str(r#"<div class="tw"><table>"#);
    head_row(
        out,
        &[
            l.period,
            l.from,
            l.to_inclusive,
            l.days,
            l.production,
            l.completeness,
        ],
    );
    out.push_str("<tbody>");
    let unit = &report.production_unit;
    let mut period_row = |name: &str, p: &crate::audit::report::PeriodSummary| {
        out.push_str("<tr>");
        text_td(out, name);
        nowrap_td(out, &p.from);
        nowrap_td(out, &inclusive_end(&p.to));
        num_td(
            out,
            &days_between(&p.from, &p.to).map_or_else(|| "–".to_string(), |d| d.to_string()),
        );
        num_td(out, &format!("{} {unit}", display(p.production)));
        num_td(out, &fraction_pct(p.completeness));
        out.push_str("</tr>");
    };
    period_row(l.baseline, &report.periods.baseline);
    match &report.periods.reporting {
        Some(r) => period_row(l.reporting, r),
        None => {
            let _ = write!(
                out,
                r#"<tr><td>{}</td><td colspan="5">{}</td></tr>"#,
                escape(l.reporting),
                escape(l.no_reporting)
            );
        }
    }
    out.push_str("</tbody></table></div></section>");
}

fn indicators(report: &Report, lang: Lang, out: &mut String) {
    let l = lang.labels();
    section(out, "indicators", l.indicators);
    if report.indicators.is_empty() {
        let _ = write!(out, "<p>{}</p></section>", escape(l.no_data));
        return;
    }
    out.push_str(r#"<div class="tw"><table>"#);
    head_row(
        out,
        &[
            l.indicator,
            l.unit,
            l.baseline_total,
            l.baseline_per_unit,
            l.reporting_total,
            l.reporting_per_unit,
            l.expected,
            l.savings,
            l.savings_pct,
            l.level,
        ],
    );
    out.push_str("<tbody>");
    for (key, ind) in &report.indicators {
        let r = ind.reporting.as_ref();
        let label = indicator_label(lang, key);
        let (k, total_unit) = shown_total_unit(&ind.total_unit);
        let scaled = |x: Option<f64>| x.map(|v| v * k);
        out.push_str("<tr>");
        // The key beside an English label; a Chinese report shows the label only (the CSV and the
        // workbook carry the keys).
        if label == *key || lang == Lang::Zh {
            text_td(out, &label);
        } else {
            let _ = write!(
                out,
                r#"<td>{}<span class="key">{}</span></td>"#,
                escape(&label),
                escape(key)
            );
        }
        let _ = write!(
            out,
            r#"<td class="unit">{}<br>{}</td>"#,
            escape(total_unit),
            escape(&ind.per_unit_unit)
        );
        num_td(out, &display_opt(scaled(ind.baseline.total)));
        num_td(out, &display_opt(ind.baseline.per_unit));
        num_td(out, &display_opt(scaled(r.and_then(|r| r.total))));
        num_td(out, &display_opt(r.and_then(|r| r.per_unit)));
        num_td(out, &display_opt(scaled(r.and_then(|r| r.expected))));
        match r.and_then(|r| r.savings.map(|s| (r, s))) {
            Some((r, savings)) => {
                let class = savings_class(savings, r.savings_basis);
                let left_out = if r.days_without_data > 0 {
                    format!(
                        r#"<br><span class="why">{}</span>"#,
                        escape(&days_left_out(lang, r.days_without_data))
                    )
                } else {
                    String::new()
                };
                let _ = write!(
                    out,
                    r#"<td class="num {class}">{}{}{left_out}</td><td class="num {class}">{}{}</td>"#,
                    escape(&display(savings * k)),
                    caveat(lang, r.savings_basis, r.savings_note.as_deref()),
                    escape(&pct_opt(r.savings_pct)),
                    uncertainty(r.savings_uncertainty_pct)
                );
            }
            None => match r.and_then(|r| r.savings_reason.as_deref()) {
                // Why no savings are claimed, across both savings columns.
                Some(why) => {
                    let _ = write!(
                        out,
                        r#"<td colspan="2" class="why">{}</td>"#,
                        escape(&engine_text(lang, why))
                    );
                }
                None => {
                    num_td(out, "–");
                    num_td(out, "–");
                }
            },
        }
        let _ = write!(
            out,
            r#"<td class="level">{}</td>"#,
            escape(
                &ind.level
                    .map_or_else(|| "–".to_string(), |v| level_label(lang, v))
            )
        );
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div></section>");
}

fn charts(report: &Report, lang: Lang, out: &mut String) {
    let l = lang.labels();
    section(out, "charts", l.charts);
    let energy = report.indicator("energy");
    let (k, energy_unit) = shown_total_unit(energy.map_or("kgce", |i| i.total_unit.as_str()));
    let prod_unit = &report.production_unit;
    let buckets = &report.series.energy_buckets;
    let granularity = energy.map(|e| granularity_label(lang, &e.model.granularity));

    // (1) consumption vs production per model bucket, with the baseline model; a model of several
    // variables as measured against predicted with the 1:1 line (against production alone its fitted
    // values are a cloud, not a line).
    let several = energy.is_some_and(|e| e.model.variables.len() > 1);
    let xy = |b: &Bucket| {
        if several {
            (b.fitted * k, b.actual * k)
        } else {
            (b.production, b.actual * k)
        }
    };
    let pick = |period: PeriodKind| -> Vec<(f64, f64)> {
        buckets
            .iter()
            .filter(|b| b.period == period && b.complete)
            .map(xy)
            .collect()
    };
    // Days of an outage carry apportioned consumption: shown apart, as the model leaves them out.
    let incomplete: Vec<(f64, f64)> = buckets.iter().filter(|b| !b.complete).map(xy).collect();
    let mut series = vec![
        ScatterSeries {
            label: l.baseline,
            color: BASELINE,
            points: pick(PeriodKind::Baseline),
        },
        ScatterSeries {
            label: l.reporting,
            color: REPORTING,
            points: pick(PeriodKind::Reporting),
        },
    ];
    if !incomplete.is_empty() {
        series.push(ScatterSeries {
            label: l.incomplete_buckets,
            color: INCOMPLETE,
            points: incomplete,
        });
    }
    let with_granularity = |title: &str| match &granularity {
        Some(g) => format!("{title} ({}: {g})", l.granularity),
        None => title.to_string(),
    };
    if several {
        let [title, x_title, y_title, line] = predicted_chart_text(lang);
        let caption = with_granularity(title);
        figure(
            out,
            &caption,
            &svg::measured_vs_predicted(
                &ChartText {
                    id: "chart-scatter",
                    title: &caption,
                    x_title: &format!("{x_title} ({energy_unit})"),
                    y_title: &format!("{y_title} ({energy_unit})"),
                    no_data: l.no_data,
                },
                &series,
                line,
            ),
            None,
        );
    } else {
        let fitted: Vec<(f64, f64)> = buckets
            .iter()
            .map(|b| (b.production, b.fitted * k))
            .collect();
        let caption = with_granularity(l.chart_scatter);
        let model_label = match energy {
            Some(e) => format!("{}: {}", l.fitted_line, method_label(lang, e.model.method)),
            None => l.fitted_line.to_string(),
        };
        figure(
            out,
            &caption,
            &svg::scatter(
                &ChartText {
                    id: "chart-scatter",
                    title: &caption,
                    x_title: &format!("{} ({prod_unit})", l.chart_scatter_x),
                    y_title: &format!("{} ({energy_unit})", l.chart_scatter_y),
                    no_data: l.no_data,
                },
                &series,
                Some((&model_label, fitted)),
            ),
            None,
        );
    }

    // (2) per unit by month, energy and water
    let reporting_from = report
        .periods
        .reporting
        .as_ref()
        .map(|r| r.from.get(..7).unwrap_or(&r.from));
    for key in ["energy", "water"] {
        let col = report.series.columns.iter().position(|c| c == key);
        if key == "water" && col.is_none() {
            continue;
        }
        let ind = report.indicator(key);
        let cats: Vec<(String, Option<f64>, &str)> = match col {
            Some(c) => report
                .series
                .monthly_per_unit
                .iter()
                .map(|m| {
                    let color = match reporting_from {
                        Some(f) if m.month.as_str() >= f => REPORTING,
                        _ => BASELINE,
                    };
                    (m.month.clone(), m.per_unit.get(c).copied().flatten(), color)
                })
                .collect(),
            None => Vec::new(),
        };
        let caption = format!("{}: {}", l.chart_monthly, per_unit_label(lang, key));
        let reference = ind
            .and_then(|i| i.baseline.per_unit)
            .map(|v| (v, l.baseline_average));
        let legend = [(l.baseline, BASELINE), (l.reporting, REPORTING)];
        let legend: &[(&str, &str)] = if reporting_from.is_some() {
            &legend
        } else {
            &legend[..1]
        };
        figure(
            out,
            &caption,
            &svg::bars(
                &ChartText {
                    id: &format!("chart-monthly-{key}"),
                    title: &caption,
                    x_title: l.month,
                    y_title: &ind
                        .map_or_else(|| l.per_unit.to_string(), |i| i.per_unit_unit.clone()),
                    no_data: l.no_data,
                },
                &cats,
                reference,
                legend,
            ),
            None,
        );
    }

    // (3) CUSUM over the reporting period
    let cusum: Vec<(String, f64)> = report
        .series
        .energy_cusum
        .iter()
        .map(|p| (p.label.clone(), p.cusum * k))
        .collect();
    let empty_label = if report.periods.reporting.is_none() {
        l.no_reporting
    } else {
        l.no_data
    };
    figure(
        out,
        l.chart_cusum,
        &svg::line(
            &ChartText {
                id: "chart-cusum",
                title: l.chart_cusum,
                x_title: l.date,
                y_title: &format!("{} ({energy_unit})", l.cusum_axis),
                no_data: empty_label,
            },
            &cusum,
            REPORTING,
        ),
        Some(l.chart_cusum_note),
    );
    out.push_str("</section>");
}

/// A chart with its caption, its legend in HTML (it wraps, never clipped) and an optional note.
fn figure(out: &mut String, caption: &str, chart: &svg::Chart, note: Option<&str>) {
    let _ = write!(out, "<figure><figcaption>{}</figcaption>", escape(caption));
    if !chart.legend.is_empty() {
        out.push_str(r#"<ul class="legend">"#);
        for e in &chart.legend {
            let _ = write!(
                out,
                r#"<li><span class="{}" style="background:{}"></span>{}</li>"#,
                if e.line { "swatch line" } else { "swatch" },
                escape(&e.color),
                escape(&e.label)
            );
        }
        out.push_str("</ul>");
    }
    out.push_str(&chart.svg);
    if let Some(n) = note {
        let _ = write!(out, r#"<p class="note">{}</p>"#, escape(n));
    }
    out.push_str("</figure>");
}

fn method(report: &Report, lang: Lang, out: &mut String) {
    let l = lang.labels();
    let m = &report.method;
    let _ = write!(
        out,
        r#"<section id="method"><h2>{}</h2><p>{}</p><dl class="facts">"#,
        escape(l.method),
        escape(l.method_intro)
    );
    let grid = match m.grid_factor_year {
        Some(y) => format!(
            "{} tCO2/MWh ({} {y})",
            plain(m.grid_co2_t_per_mwh),
            l.grid_factor_year
        ),
        None => format!("{} tCO2/MWh", plain(m.grid_co2_t_per_mwh)),
    };
    for (k, v) in [
        (
            l.electricity_method,
            electricity_method_label(lang, &m.electricity_method),
        ),
        (l.grid_factor, grid),
        (l.timezone, m.timezone.clone()),
        (
            l.thresholds,
            format!(
                "CV(RMSE) ≤ {}%, |NMBE| ≤ {}%",
                plain(m.ashrae14_cv_rmse_max_pct),
                plain(m.ashrae14_nmbe_max_pct)
            ),
        ),
    ] {
        let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", escape(k), escape(&v));
    }
    out.push_str("</dl>");

    // factors
    let _ = write!(out, "<h3>{}</h3>", escape(l.factors));
    if m.factors.is_empty() {
        let _ = write!(out, "<p>{}</p>", escape(l.no_data));
    } else {
        out.push_str(r#"<div class="tw"><table>"#);
        head_row(
            out,
            &[
                l.point,
                l.carrier,
                l.unit,
                l.kgce_per_unit,
                l.co2_kg_per_unit,
                l.source,
            ],
        );
        out.push_str("<tbody>");
        for f in &m.factors {
            out.push_str("<tr>");
            text_td(out, &f.point);
            text_td(out, &carrier_label(lang, &f.carrier));
            text_td(out, &f.unit);
            num_td(out, &plain(f.kgce_per_unit));
            num_td(out, &plain(f.co2_kg_per_unit));
            text_td(out, &source_label(lang, &f.source));
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table></div>");
    }

    super::diagnostics::html_sufficiency(report, lang, out);
    // model statistics
    let _ = write!(out, "<h3>{}</h3>", escape(l.model_statistics));
    if !report.indicators.is_empty() {
        out.push_str(r#"<div class="tw"><table>"#);
        head_row(
            out,
            &[
                l.indicator,
                l.model_method,
                l.granularity,
                l.n,
                l.r2,
                l.r2_adj,
                l.p_value,
                l.cv_rmse_pct,
                l.nmbe_pct,
                l.meets_ashrae14,
            ],
        );
        out.push_str("<tbody>");
        for (key, ind) in &report.indicators {
            let md = &ind.model;
            out.push_str("<tr>");
            text_td(out, &indicator_label(lang, key));
            nowrap_td(out, &method_label(lang, md.method));
            nowrap_td(out, &granularity_label(lang, &md.granularity));
            num_td(out, &md.n.to_string());
            num_td(
                out,
                &md.r2
                    .filter(|v| v.is_finite())
                    .map_or_else(|| "–".to_string(), |v| format!("{v:.3}")),
            );
            num_td(
                out,
                &md.r2_adj
                    .filter(|v| v.is_finite())
                    .map_or_else(|| "–".to_string(), |v| format!("{v:.3}")),
            );
            num_td(out, &p_value(md.p_value));
            num_td(out, &pct_opt(md.cv_rmse_pct));
            num_td(out, &pct_opt(md.nmbe_pct));
            let class = if md.meets_ashrae14 { "good" } else { "bad" };
            let _ = write!(
                out,
                r#"<td class="{class}">{}</td>"#,
                escape(yes_no(lang, md.meets_ashrae14))
            );
            // A ratio model says why (on a row of its own, across the table: the longest text); a
            // regression names its variables.
            let (what, text) = match &md.reason {
                Some(r) => (l.reason, engine_text(lang, r)),
                None => (l.variables, variables_label(lang, &md.variables)),
            };
            out.push_str("</tr>");
            let _ = write!(
                out,
                r#"<tr class="reason"><td colspan="10">{}: {}</td></tr>"#,
                escape(what),
                escape(&text)
            );
        }
        out.push_str("</tbody></table></div>");
        model_detail(report, lang, out);
        super::diagnostics::html_validation(report, lang, out);
    }

    // data completeness per point
    let _ = write!(out, "<h3>{}</h3>", escape(l.data_quality));
    if m.points.is_empty() {
        let _ = write!(out, "<p>{}</p>", escape(l.no_data));
    } else {
        out.push_str(r#"<div class="tw"><table>"#);
        let base = format!("{} — {}", l.completeness, l.baseline);
        let rep = format!("{} — {}", l.completeness, l.reporting);
        head_row(
            out,
            &[
                l.point,
                &base,
                &rep,
                l.rollovers,
                l.replacements,
                l.apportioned_hours,
            ],
        );
        out.push_str("<tbody>");
        for p in &m.points {
            out.push_str("<tr>");
            text_td(out, &p.point);
            num_td(out, &fraction_pct(p.completeness_baseline));
            num_td(
                out,
                &p.completeness_reporting
                    .map_or_else(|| "–".to_string(), fraction_pct),
            );
            num_td(out, &p.rollovers.to_string());
            num_td(out, &p.replacements.to_string());
            num_td(out, &p.apportioned_hours.to_string());
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table></div>");
    }
    multiplier_changes(report, lang, out);

    if !m.notes.is_empty() {
        let _ = write!(out, "<h3>{}</h3><ul>", escape(l.notes));
        for n in &m.notes {
            let _ = write!(out, "<li>{}</li>", escape(&engine_text(lang, n)));
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>");
}

/// The multiplier (倍率) changes, after the replacements (`render/multiplier.rs`).
fn multiplier_changes(report: &Report, lang: Lang, out: &mut String) {
    let mut rows = super::multiplier::rows(report).peekable();
    if rows.peek().is_none() {
        return;
    }
    let (title, head) = super::multiplier::labels(lang);
    let _ = write!(out, r#"<h3>{}</h3><div class="tw"><table>"#, escape(title));
    head_row(out, &head);
    out.push_str("<tbody>");
    for (meter, at, from, to) in rows {
        out.push_str("<tr>");
        text_td(out, meter);
        nowrap_td(out, at);
        num_td(out, &display(from));
        num_td(out, &display(to));
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
}

/// Each model complete: every coefficient with its unit and p-value, then every candidate tried with its
/// statistics and why it was not chosen.
fn model_detail(report: &Report, lang: Lang, out: &mut String) {
    let l = lang.labels();
    let _ = write!(
        out,
        "<h3>{}</h3>",
        escape(t(lang, "Model coefficients", "模型系数"))
    );
    out.push_str(r#"<div class="tw"><table>"#);
    head_row(
        out,
        &[
            l.indicator,
            t(lang, "Variable", "变量"),
            t(lang, "Coefficient", "系数"),
            l.unit,
            t(lang, "p-value (t test)", "p 值（t 检验）"),
        ],
    );
    out.push_str("<tbody>");
    for (key, ind) in &report.indicators {
        let md = &ind.model;
        for (var, c) in &md.coefficients {
            let p = md
                .p_values
                .iter()
                .find(|(k, _)| k == var)
                .and_then(|(_, p)| *p);
            out.push_str("<tr>");
            text_td(out, &indicator_label(lang, key));
            text_td(out, &variable_label(lang, var));
            num_td(out, &display(*c));
            nowrap_td(
                out,
                &coefficient_unit(
                    lang,
                    var,
                    &ind.total_unit,
                    &md.granularity,
                    &report.production_unit,
                ),
            );
            num_td(out, &p_value(p));
            out.push_str("</tr>");
        }
    }
    out.push_str("</tbody></table></div>");
    if report
        .indicators
        .iter()
        .all(|(_, i)| i.model.candidates.is_empty())
    {
        return;
    }
    let _ = write!(
        out,
        "<h3>{}</h3>",
        escape(t(lang, "Candidate models tried", "已比较的候选模型"))
    );
    out.push_str(r#"<div class="tw"><table>"#);
    head_row(
        out,
        &[
            l.indicator,
            t(lang, "Variables", "变量"),
            l.r2_adj,
            l.p_value,
            t(lang, "Valid", "有效"),
            t(lang, "Chosen, or why not", "是否采用及原因"),
        ],
    );
    out.push_str("<tbody>");
    for (key, ind) in &report.indicators {
        let md = &ind.model;
        for c in &md.candidates {
            out.push_str("<tr>");
            text_td(out, &indicator_label(lang, key));
            text_td(out, &variables_label(lang, &c.variables));
            num_td(
                out,
                &c.r2_adj
                    .filter(|v| v.is_finite())
                    .map_or_else(|| "–".to_string(), |v| format!("{v:.4}")),
            );
            num_td(out, &p_value(c.p_value));
            text_td(out, yes_no(lang, c.valid));
            let why = match &c.reason {
                Some(r) => engine_text(lang, r),
                None if md.method == crate::audit::report::BaselineMethod::Regression
                    && c.variables == md.variables =>
                {
                    t(lang, "chosen", "采用").to_string()
                }
                None if md.method == crate::audit::report::BaselineMethod::Ratio => t(
                    lang,
                    "valid; not used (the model's reason above)",
                    "有效；未采用（见上方模型的原因）",
                )
                .to_string(),
                None => t(
                    lang,
                    "valid, not the best adjusted R2",
                    "有效，但调整 R2 不是最高",
                )
                .to_string(),
            };
            text_td(out, &why);
            out.push_str("</tr>");
        }
    }
    out.push_str("</tbody></table></div>");
}

/// mg/L for a water pollutant, mg/m3 for flue gas (the concentration limits' unit).
fn concentration_unit(pollutant: &str) -> &'static str {
    match crate::plan::PollutantName::parse(pollutant).map(crate::plan::PollutantName::medium) {
        Some(crate::plan::Medium::Water) => "mg/L",
        _ => "mg/m3",
    }
}

/// English or Chinese text for a label [`Labels`](super::i18n::Labels) does not have.
fn t(lang: Lang, en: &'static str, zh: &'static str) -> &'static str {
    match lang {
        Lang::En => en,
        Lang::Zh => zh,
    }
}

/// The class of a savings figure: red when negative, amber when it rests on a weak model or the ratio
/// method, green otherwise.
fn savings_class(savings: f64, basis: Option<SavingsBasis>) -> &'static str {
    if savings < 0.0 {
        "bad"
    } else if basis.is_some_and(SavingsBasis::is_weak) {
        "weak"
    } else {
        "good"
    }
}

/// The caveat line under savings from a weak model or the ratio method, with the reason as its tooltip;
/// empty for a valid model.
fn caveat(lang: Lang, basis: Option<SavingsBasis>, note: Option<&str>) -> String {
    savings_caveat(lang, basis).map_or_else(String::new, |c| {
        format!(
            r#"<br><span class="weak" title="{}">{}</span>"#,
            escape(&engine_text(lang, note.unwrap_or(""))),
            escape(c)
        )
    })
}

/// " ± x %" after a savings percentage: the savings uncertainty at 90 % confidence, when there is one.
fn uncertainty(fsu_pct: Option<f64>) -> String {
    match fsu_pct.filter(|v| v.is_finite()) {
        Some(v) => format!("<small>± {v:.1}% (90%)</small>"),
        None => String::new(),
    }
}

/// A p-value with the digits that matter ("< 0.0001" below that).
fn p_value(p: Option<f64>) -> String {
    match p.filter(|v| v.is_finite()) {
        Some(v) if v < 1e-4 => "< 0.0001".to_string(),
        Some(v) => format!("{v:.4}"),
        None => "–".to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::audit::render::fixture;

    /// No external resource: no script, link, img, iframe, object or embed element, and no tag with a
    /// src or href attribute or a url() (escaped text holds no '<', so every '<' opens a real tag).
    fn assert_self_contained(h: &str) {
        let lower = h.to_ascii_lowercase();
        assert!(!lower.contains("@import"));
        for piece in lower.split('<').skip(1) {
            let tag = piece.split('>').next().unwrap_or("");
            let name = tag.split_whitespace().next().unwrap_or("");
            assert!(
                !["script", "link", "img", "iframe", "object", "embed", "image", "use"]
                    .contains(&name),
                "<{tag}>"
            );
            for attr in ["src=", "href=", "url("] {
                assert!(!tag.contains(attr), "{attr} in <{tag}>");
            }
        }
        assert!(!lower.contains("url("));
    }

    #[test]
    fn incomplete_buckets_are_drawn_apart_and_only_when_present() {
        let mut r = fixture::report();
        let h = html(&r, Lang::En);
        assert!(!h.contains("Incomplete data (not in the model)"));
        r.series.energy_buckets[10].complete = false;
        r.series.energy_buckets[11].complete = false;
        let h = html(&r, Lang::En);
        assert!(h.contains("Incomplete data (not in the model)"));
        assert!(h.contains(INCOMPLETE), "the grey series is drawn");
        // Still one dot per bucket.
        assert_eq!(h.matches("<circle").count(), 365 + 181);
        assert!(html(&r, Lang::Zh).contains("数据不完整"));
    }

    #[test]
    fn english_report_has_everything() {
        let h = html(&fixture::report(), Lang::En);
        assert!(h.starts_with("<!DOCTYPE html>"));
        assert_self_contained(&h);
        assert!(!h.contains("http://") && !h.contains("https://"));
        for id in [
            "chart-scatter",
            "chart-monthly-energy",
            "chart-monthly-water",
            "chart-cusum",
        ] {
            assert!(h.contains(&format!(r#"<svg id="{id}""#)), "missing {id}");
        }
        assert_eq!(h.matches("<svg").count(), h.matches("</svg>").count());
        // data drawn: one dot per day bucket, a model line, monthly bars, the CUSUM line
        assert_eq!(h.matches("<circle").count(), 365 + 181);
        assert!(h.contains("<polyline"));
        assert!(h.matches("<rect x=").count() > 18);
        for text in [
            "Comprehensive energy consumption per unit of product",
            "Conversion factors",
            "main-power.energy_import",
            "0.1229",
            "0.5703 tCO2/MWh (year 2022)",
            "CV(RMSE) ≤ 30%, |NMBE| ≤ 10%",
            "Data completeness per point",
            "Meter replacements",
            "Spring Festival shutdown",
            "Level II",
        ] {
            assert!(h.contains(text), "missing {text:?}");
        }
        assert!(!h.contains("NaN") && !h.contains("inf"));
    }

    #[test]
    fn model_table_shows_adjusted_r2_the_f_test_and_the_savings_uncertainty() {
        let r = fixture::report();
        let energy = &r.indicators[0].1;
        assert!(
            energy.model.valid,
            "the fixture's energy model is a valid regression"
        );
        let h = html(&r, Lang::En);
        assert!(h.contains("Adjusted R²") && h.contains("p-value (F test)"));
        assert!(
            h.contains("&lt; 0.0001"),
            "the fixture's F-test p-value is 1e-6"
        );
        assert!(
            h.contains("± 12.5% (90%)"),
            "savings uncertainty beside the savings"
        );
        let z = html(&r, Lang::Zh);
        assert!(z.contains("调整后 R²") && z.contains("p 值（F 检验）"));
    }

    #[test]
    fn overall_grade_is_shown_with_its_scores() {
        let h = html(&fixture::report(), Lang::En);
        assert!(h.contains("Overall grade: <b>"), "grade line");
        assert!(h.contains("Y<sub>II</sub> 100"), "scores");
        let z = html(&fixture::report(), Lang::Zh);
        assert!(z.contains("综合评价等级: <b>Ⅱ级</b>"), "{}", &z[..200]);
    }

    #[test]
    fn compliance_section_shows_triggers_sources_and_permits() {
        use crate::audit::report::{PermitUse, SourceCompliance};
        let mut r = fixture::report();
        let h = html(&r, Lang::En);
        assert!(
            !h.contains(r#"id="compliance""#),
            "nothing configured, no section"
        );
        r.compliance.sources.push(SourceCompliance {
            pollutant: "SO2".into(),
            source: "stack-1".into(),
            limit: 50.0,
            valid_hours: 3,
            exceedance_hours: 1,
            max_converted: Some(69.474),
            period: "reporting".into(),
        });
        r.compliance.permits.push(PermitUse {
            pollutant: "SO2".into(),
            year: 2026,
            t_per_year: 12.5,
            total_t: 6.0,
            share: 0.96,
        });
        r.compliance.triggers.over_standard = true;
        let h = html(&r, Lang::En);
        assert!(h.contains(r#"id="compliance""#));
        assert!(h.contains("stack-1") && h.contains("69.47"), "source row");
        assert!(h.contains("96.0%"), "permit share");
        let z = html(&r, Lang::Zh);
        assert!(z.contains("超标排放"), "zh trigger label");
    }

    /// A4 print: page size, headings kept with what follows, rows not cut, header rows repeated; narrow
    /// screens: every table in a scroll wrapper; legends in HTML (they wrap, never clipped); the CUSUM on a
    /// time axis with month ticks.
    #[test]
    fn prints_on_a4_reads_at_800_px_and_never_clips_a_legend() {
        let h = html(&fixture::rich(), Lang::En);
        for rule in [
            "@page { size: A4",
            "h2, h3, figcaption { break-after: avoid",
            "thead { display: table-header-group; }",
            "tr { break-inside: avoid",
            "figure { margin: 10px 0 22px; break-inside: avoid",
            ".tw { overflow-x: auto",
            "td.level, td.unit, td.nw { white-space: nowrap; }",
        ] {
            assert!(h.contains(rule), "missing {rule:?}");
        }
        assert_eq!(
            h.matches("<table>").count(),
            h.matches(r#"<div class="tw"><table>"#).count(),
            "every table scrolls inside its wrapper"
        );
        // the scatter's legend, long labels included, is HTML before the SVG
        let scatter = h.find(r#"<svg id="chart-scatter""#).unwrap();
        let legend = h[..scatter].rfind(r#"<ul class="legend">"#).unwrap();
        assert!(h[legend..scatter].contains("Baseline model: Regression"));
        assert!(!h[scatter..]
            .split("</svg>")
            .next()
            .unwrap()
            .contains("Baseline model"));
        // CUSUM ticks: months
        let cusum = &h[h.find(r#"<svg id="chart-cusum""#).unwrap()..];
        let cusum = cusum.split("</svg>").next().unwrap();
        assert!(cusum.contains(">2026-01<") && cusum.contains(">2026-06<"));
        assert!(!cusum.contains(">2026-01-08<"));
    }

    #[test]
    fn enterprise_and_industry_head_the_report() {
        let h = html(&fixture::report(), Lang::En);
        assert!(h.contains("<b>Sunrise Dyeing &amp; Finishing Co.</b> · dyeing"));
    }

    #[test]
    fn measures_are_listed_with_money_and_payback() {
        use crate::audit::report::MeasureResult;
        let mut r = fixture::report();
        r.measures.push(MeasureResult {
            name: "dye-bath heat recovery".into(),
            in_service: "2026-01-01".into(),
            investment_yuan: 1_200_000.0,
            indicator: Some("natural_gas".into()),
            savings: Some(85_000.0),
            savings_yuan: Some(272_000.0),
            payback_years: Some(2.2),
            reason: None,
            ..MeasureResult::default()
        });
        let h = html(&r, Lang::En);
        assert!(h.contains(r#"id="measures""#) && h.contains("dye-bath heat recovery"));
        assert!(
            h.contains("1,200,000 yuan") && h.contains("272,000 yuan") && h.contains(">2.2 years<"),
            "money and payback, with units"
        );
    }

    /// Each model complete: every coefficient with its unit and p-value, every candidate with why it was
    /// not chosen; the variables labelled as variables, not as a reason.
    #[test]
    fn each_model_shows_every_coefficient_and_candidate() {
        let r = fixture::rich();
        for lang in [Lang::En, Lang::Zh] {
            let h = html(&r, lang);
            for (key, ind) in &r.indicators {
                let m = &ind.model;
                for (var, c) in &m.coefficients {
                    let unit = coefficient_unit(
                        lang,
                        var,
                        &ind.total_unit,
                        &m.granularity,
                        &r.production_unit,
                    );
                    let row = format!(
                        r#"<td>{}</td><td class="num">{}</td><td class="nw">{}</td>"#,
                        escape(&variable_label(lang, var)),
                        escape(&display(*c)),
                        escape(&unit)
                    );
                    assert!(h.contains(&row), "{lang:?} {key}: {row}");
                }
                for c in &m.candidates {
                    if let Some(why) = &c.reason {
                        assert!(
                            h.contains(&escape(&engine_text(lang, why))),
                            "{lang:?} {key}: candidate {:?} without its reason",
                            c.variables
                        );
                    }
                }
            }
        }
        let h = html(&r, Lang::En);
        assert!(h.contains("Candidate models tried") && h.contains(">chosen<"));
        assert!(
            !h.contains(">Slope<"),
            "every coefficient, not a slope column"
        );
        assert!(h.contains("Variables: production"), "{h}");
    }

    #[test]
    fn the_generated_time_is_shown_in_the_plants_timezone() {
        let mut r = fixture::report();
        r.generated_at = "2026-11-30T10:04:37.577Z".into();
        r.method.timezone = "+08:00".into();
        let h = html(&r, Lang::En);
        assert!(
            h.contains("2026-11-30 18:04 (+08:00)"),
            "local time in the header"
        );
        assert_eq!(local_time("garbage", "+08:00"), "garbage");
    }

    #[test]
    fn chinese_labels() {
        let h = html(&fixture::report(), Lang::Zh);
        assert!(h.contains(r#"<html lang="zh-CN">"#));
        for term in [
            "清洁生产审核数据附件（基础数据与绩效核算）",
            "单位产品综合能耗",
            "单位产品取水量",
            "节能量",
            "节能率",
            "清洁生产等级",
            "Ⅱ级",
            "Ⅰ级",
            "基准期",
            "报告期",
            "产量",
            "回归模型",
            "决定系数 R²",
            "数据完整率",
            "折标系数",
            "当量值",
            "电网排放因子",
            "方法说明",
            "累积和 (CUSUM)",
            "二氧化碳排放量",
            "化学需氧量 COD",
            "天然气",
            "换表次数",
        ] {
            assert!(h.contains(term), "missing {term}");
        }
        assert!(!h.contains("Comprehensive energy"));
        assert!(!h.contains("NaN"));
    }

    #[test]
    fn names_from_config_are_escaped() {
        let h = html(&fixture::malicious(), Lang::En);
        assert!(!h.contains("<script>alert"));
        assert!(!h.contains("<img src=x"));
        assert!(!h.contains("<a href"));
        assert!(!h.contains("<u>kg</u>"));
        assert!(h.contains("gw&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(h.contains("&lt;img src=x onerror=alert(1)&gt;.energy"));
        assert!(h.contains("&quot;plant&quot; &amp; &lt;b&gt;co&lt;/b&gt;"));
        assert!(!h.contains('\x1b'));
        assert_self_contained(&h);
    }

    #[test]
    fn without_reporting_period() {
        let h = html(&fixture::no_reporting(), Lang::En);
        assert!(h.contains("No reporting period configured"));
        assert!(h.contains(r#"<svg id="chart-cusum""#));
        assert_eq!(h.matches("<circle").count(), 365);
        assert!(!h.contains("NaN") && !h.contains("inf"));
        assert_self_contained(&h);
    }

    #[test]
    fn empty_report_says_no_data() {
        for lang in [Lang::En, Lang::Zh] {
            let h = html(&fixture::empty(), lang);
            assert!(!h.contains("NaN") && !h.contains("inf"));
            for id in ["chart-scatter", "chart-monthly-energy", "chart-cusum"] {
                assert!(h.contains(&format!(r#"<svg id="{id}""#)), "missing {id}");
            }
            let no_data = lang.labels().no_data;
            assert!(h.matches(no_data).count() >= 2, "{lang:?}");
        }
    }

    #[test]
    fn non_finite_values_never_reach_the_svg() {
        let mut r = fixture::report();
        r.series.energy_buckets[3].actual = f64::NAN;
        r.series.energy_buckets[4].production = f64::INFINITY;
        r.series.energy_cusum[2].cusum = f64::NEG_INFINITY;
        r.series.monthly_per_unit[0].per_unit[0] = Some(f64::NAN);
        r.indicators[0].1.model.r2 = Some(f64::NAN);
        r.indicators[0].1.baseline.total = Some(f64::NAN);
        let h = html(&r, Lang::En);
        assert!(!h.contains("NaN") && !h.contains("inf"));
        assert_eq!(h.matches("<circle").count(), 365 + 181 - 2);
    }

    #[test]
    fn json_fixture_renders() {
        let r: Report =
            serde_json::from_str(include_str!("../../../tests/fixtures/report_minimal.json"))
                .unwrap();
        assert_eq!(r.gateway, "gw-01");
        let h = html(&r, Lang::Zh);
        assert!(h.contains("单位产品综合能耗") && !h.contains("NaN"));
        let c = super::super::csv(&r, Lang::En);
        assert!(c.starts_with(b"\xEF\xBB\xBF"));
    }

    /// Writes the rich fixture's renderings to `target/render-preview/` for a look (deploy/screenshots.sh).
    #[test]
    fn preview_files_are_written() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/render-preview");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, r) in [
            ("report", fixture::rich()),
            ("no_reporting", fixture::no_reporting()),
        ] {
            for (tag, lang) in [("en", Lang::En), ("zh", Lang::Zh)] {
                let path = dir.join(format!("{name}_{tag}.html"));
                let h = html(&r, lang);
                std::fs::write(&path, &h).unwrap();
                assert_eq!(std::fs::read_to_string(&path).unwrap(), h);
            }
        }
        let r = fixture::rich();
        for (tag, lang) in [("en", Lang::En), ("zh", Lang::Zh)] {
            let t = super::super::text_table(&r, lang);
            std::fs::write(dir.join(format!("report_{tag}.txt")), t).unwrap();
            std::fs::write(
                dir.join(format!("report_{tag}.csv")),
                super::super::csv(&r, lang),
            )
            .unwrap();
            #[cfg(feature = "xlsx")]
            std::fs::write(
                dir.join(format!("report_{tag}.xlsx")),
                super::super::xlsx(&r, lang).unwrap(),
            )
            .unwrap();
            std::fs::write(
                dir.join(format!("report_{tag}.json")),
                serde_json::to_vec_pretty(&r).unwrap(),
            )
            .unwrap();
        }
    }

    /// A report whose energy model has two variables: fitted values that production alone does not explain.
    fn two_variable_report() -> Report {
        let mut r = fixture::report();
        if let Some(e) = r.indicator_mut("energy") {
            e.model.variables = vec!["production".into(), "hdd".into()];
            e.model.slope = None;
        }
        for (i, b) in r.series.energy_buckets.iter_mut().enumerate() {
            // A heating term the production axis cannot show: the fitted value swings by day.
            b.fitted = b.actual * (1.0 + 0.04 * ((i as f64) * 0.9).sin());
        }
        r
    }

    /// Issue #21: a two-variable model's fitted values drawn as a line against production alone were a
    /// black blob. Measured against predicted instead: both axes in the energy unit, labelled, and the 1:1
    /// line (two points, corner to corner), one dot per bucket.
    #[test]
    fn a_model_of_several_variables_is_drawn_measured_against_predicted() {
        let r = two_variable_report();
        for (lang, x, y, line) in [
            (
                Lang::En,
                "Predicted by the baseline model (tce)",
                "Measured (tce)",
                "1:1 (measured = predicted)",
            ),
            (
                Lang::Zh,
                "基准模型预测值 (tce)",
                "实测值 (tce)",
                "1:1 线（实测值 = 预测值）",
            ),
        ] {
            let h = html(&r, lang);
            let at = h.find(r#"<svg id="chart-scatter""#).unwrap();
            let chart = &h[at..at + h[at..].find("</svg>").unwrap()];
            assert!(
                chart.contains(x) && chart.contains(y),
                "{lang:?}: axis titles"
            );
            let polyline = chart.split("<polyline points=\"").nth(1).unwrap();
            let points = &polyline[..polyline.find('"').unwrap()];
            assert_eq!(
                points.split(' ').count(),
                2,
                "the 1:1 line, not a line through every bucket"
            );
            assert_eq!(
                chart.matches("<circle").count(),
                r.series.energy_buckets.len(),
                "one dot per bucket"
            );
            assert!(h.contains(line), "{lang:?}: the 1:1 line in the legend");
        }
        // One variable: still consumption against production with the model's line.
        let h = html(&fixture::report(), Lang::En);
        assert!(!h.contains("Predicted by the baseline model"));
    }

    /// Days of the reporting period without data are named beside the savings they were left out of.
    #[test]
    fn days_left_out_of_the_savings_are_named() {
        let mut r = fixture::report();
        if let Some(rep) = r.indicator_mut("energy").and_then(|e| e.reporting.as_mut()) {
            rep.days_without_data = 19;
        }
        assert!(html(&r, Lang::En).contains("19 days without data left out"));
        assert!(html(&r, Lang::Zh).contains("19 天无数据，未计入"));
        assert!(!html(&fixture::report(), Lang::En).contains("without data left out"));
    }
}
