//! Inline SVG charts drawn without scripts: scatter with a fitted line, bars by category, a line over
//! categories. Axes with "nice" ticks (1, 2, 5 x 10^k) and labels. Non-finite values are dropped, never
//! written: the output never contains `NaN`. An empty chart says so in its own frame.

use std::fmt::Write as _;

use chrono::{Datelike, Months, NaiveDate};

use super::format::{escape, group};

/// Chart size in SVG user units; the CSS scales it to the page width.
const W: f64 = 760.0;
const H: f64 = 340.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 58.0;

/// Colours of the baseline period, the reporting period and the model line.
pub const BASELINE: &str = "#2b6cb0";
pub const REPORTING: &str = "#dd6b20";
pub const MODEL: &str = "#2d3748";

/// A coordinate for the SVG: one decimal, `0` for anything non-finite (never reached: callers filter).
fn c(x: f64) -> String {
    if x.is_finite() {
        let s = format!("{x:.1}");
        s.strip_suffix(".0").map_or(s.clone(), str::to_string)
    } else {
        "0".to_string()
    }
}

/// Ticks 1, 2 or 5 x 10^k covering `[lo, hi]` with about `target` intervals; the first and last tick
/// bound the axis. A degenerate range is widened so there are always at least two ticks.
pub fn nice_ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    let (mut lo, mut hi) = if lo.is_finite() && hi.is_finite() {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    if hi < lo {
        std::mem::swap(&mut lo, &mut hi);
    }
    if hi - lo < f64::EPSILON * hi.abs().max(1.0) {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        lo -= pad;
        hi += pad;
    }
    let raw = (hi - lo) / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).floor() as i64;
    let last = (hi / step).ceil() as i64;
    (first..=last.max(first + 1))
        .map(|i| i as f64 * step)
        .collect()
}

/// Tick label: decimals from the step, thousands separated.
fn tick_label(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    group(&format!("{v:.decimals$}"))
}

/// A linear mapping from data to the plot area.
struct Axis {
    lo: f64,
    hi: f64,
    from: f64,
    to: f64,
}

impl Axis {
    fn map(&self, v: f64) -> f64 {
        self.from + (v - self.lo) / (self.hi - self.lo) * (self.to - self.from)
    }
}

fn open(out: &mut String, id: &str, title: &str) {
    let _ = write!(
        out,
        r#"<svg id="{}" class="chart" viewBox="0 0 {} {}" role="img" aria-label="{}"><title>{}</title>"#,
        escape(id),
        c(W),
        c(H),
        escape(title),
        escape(title)
    );
    let _ = write!(
        out,
        r#"<rect x="0" y="0" width="{}" height="{}" class="bg"/>"#,
        c(W),
        c(H)
    );
}

fn no_data(out: &mut String, message: &str) {
    let _ = write!(
        out,
        r#"<rect x="{}" y="{}" width="{}" height="{}" class="frame"/><text x="{}" y="{}" class="nodata" text-anchor="middle">{}</text></svg>"#,
        c(LEFT),
        c(TOP),
        c(W - LEFT - RIGHT),
        c(H - TOP - BOTTOM),
        c(W / 2.0),
        c(H / 2.0),
        escape(message)
    );
}

/// Y axis: grid lines, tick labels and the rotated title.
fn y_axis(out: &mut String, ticks: &[f64], y: &Axis, title: &str) {
    let step = if ticks.len() > 1 {
        ticks[1] - ticks[0]
    } else {
        1.0
    };
    for t in ticks {
        let py = y.map(*t);
        let _ = write!(
            out,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" class="grid"/><text x="{}" y="{}" class="tick" text-anchor="end">{}</text>"#,
            c(LEFT),
            c(py),
            c(W - RIGHT),
            c(py),
            c(LEFT - 6.0),
            c(py + 4.0),
            escape(&tick_label(*t, step))
        );
    }
    let cy = (TOP + H - BOTTOM) / 2.0;
    let _ = write!(
        out,
        r#"<text x="14" y="{}" class="axis-title" text-anchor="middle" transform="rotate(-90 14 {})">{}</text>"#,
        c(cy),
        c(cy),
        escape(title)
    );
}

/// X axis title, and the plot frame.
fn x_title_and_frame(out: &mut String, title: &str) {
    let _ = write!(
        out,
        r#"<text x="{}" y="{}" class="axis-title" text-anchor="middle">{}</text><rect x="{}" y="{}" width="{}" height="{}" class="frame"/>"#,
        c((LEFT + W - RIGHT) / 2.0),
        c(H - 10.0),
        escape(title),
        c(LEFT),
        c(TOP),
        c(W - LEFT - RIGHT),
        c(H - TOP - BOTTOM)
    );
}

/// A legend entry. The page draws the legend beside the chart, in HTML, so that it wraps instead of being
/// clipped whatever the language and the length of the labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Legend {
    pub label: String,
    pub color: String,
    /// A line (the model, a reference) rather than a swatch of dots or bars.
    pub line: bool,
}

fn entry(label: &str, color: &str, line: bool) -> Legend {
    Legend {
        label: label.to_string(),
        color: color.to_string(),
        line,
    }
}

/// A chart: its SVG and the legend entries of what it drew.
pub struct Chart {
    pub svg: String,
    pub legend: Vec<Legend>,
}

impl Chart {
    fn bare(svg: String) -> Chart {
        Chart {
            svg,
            legend: Vec::new(),
        }
    }
}

/// The texts of a chart: its element id, title (also its accessible name), axis titles, and what to say
/// when there is nothing to draw.
pub struct ChartText<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub x_title: &'a str,
    pub y_title: &'a str,
    pub no_data: &'a str,
}

/// One series of points of a scatter chart.
pub struct ScatterSeries<'a> {
    pub label: &'a str,
    pub color: &'a str,
    pub points: Vec<(f64, f64)>,
}

/// A scatter chart with an optional fitted line through `line` (drawn in x order).
pub fn scatter(
    text: &ChartText<'_>,
    series: &[ScatterSeries<'_>],
    line: Option<(&str, Vec<(f64, f64)>)>,
) -> Chart {
    let mut out = String::new();
    open(&mut out, text.id, text.title);
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter())
        .chain(line.iter().flat_map(|(_, l)| l.iter()))
        .filter(finite)
        .copied()
        .collect();
    if series.iter().all(|s| !s.points.iter().any(|p| finite(&p))) {
        no_data(&mut out, text.no_data);
        return Chart::bare(out);
    }
    let (xmin, xmax) = min_max(all.iter().map(|p| p.0));
    let (ymin, ymax) = min_max(all.iter().map(|p| p.1));
    // axes include zero when the data is near it: consumption against production reads best from the origin
    let xt = nice_ticks(xmin.min(0.0), xmax, 8);
    let yt = nice_ticks(ymin.min(0.0), ymax, 6);
    let x = Axis {
        lo: xt[0],
        hi: xt[xt.len() - 1],
        from: LEFT,
        to: W - RIGHT,
    };
    let y = Axis {
        lo: yt[0],
        hi: yt[yt.len() - 1],
        from: H - BOTTOM,
        to: TOP,
    };
    y_axis(&mut out, &yt, &y, text.y_title);
    let xstep = xt[1] - xt[0];
    for t in &xt {
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" class="tick" text-anchor="middle">{}</text>"#,
            c(x.map(*t)),
            c(H - BOTTOM + 16.0),
            escape(&tick_label(*t, xstep))
        );
    }
    x_title_and_frame(&mut out, text.x_title);
    for s in series {
        let _ = write!(out, r#"<g fill="{}" fill-opacity="0.55">"#, s.color);
        for p in s.points.iter().filter(finite) {
            let _ = write!(
                out,
                r#"<circle cx="{}" cy="{}" r="2.6"/>"#,
                c(x.map(p.0)),
                c(y.map(p.1))
            );
        }
        out.push_str("</g>");
    }
    let mut entries: Vec<Legend> = series
        .iter()
        .filter(|s| s.points.iter().any(|p| finite(&p)))
        .map(|s| entry(s.label, s.color, false))
        .collect();
    if let Some((label, pts)) = &line {
        let mut pts: Vec<(f64, f64)> = pts.iter().filter(finite).copied().collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        if pts.len() >= 2 {
            let path: Vec<String> = pts
                .iter()
                .map(|p| format!("{},{}", c(x.map(p.0)), c(y.map(p.1))))
                .collect();
            let _ = write!(
                out,
                r#"<polyline points="{}" fill="none" stroke="{MODEL}" stroke-width="2.5"/>"#,
                path.join(" ")
            );
            entries.push(entry(label, MODEL, true));
        }
    }
    out.push_str("</svg>");
    Chart {
        svg: out,
        legend: entries,
    }
}

/// Measured (y) against predicted (x) per model bucket, with the 1:1 line: how a model of several variables
/// reads on paper. Its fitted values drawn against production alone would be a cloud joined by a line (the
/// other variables move them), not a model a reader can check. Both axes span the same values, so the 1:1
/// line runs corner to corner and a point above it consumed more than the model expected.
pub fn measured_vs_predicted(
    text: &ChartText<'_>,
    series: &[ScatterSeries<'_>],
    line_label: &str,
) -> Chart {
    let (lo, hi) = min_max(
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .flat_map(|p| [p.0, p.1]),
    );
    let lo = lo.min(0.0);
    let line = (hi > lo).then(|| (line_label, vec![(lo, lo), (hi, hi)]));
    scatter(text, series, line)
}

/// A bar chart over categories (months): one bar per category in its colour, an optional dashed
/// reference line (value, label).
pub fn bars(
    text: &ChartText<'_>,
    categories: &[(String, Option<f64>, &str)],
    reference: Option<(f64, &str)>,
    legend_entries: &[(&str, &str)],
) -> Chart {
    let mut out = String::new();
    open(&mut out, text.id, text.title);
    let values: Vec<f64> = categories
        .iter()
        .filter_map(|(_, v, _)| *v)
        .filter(|v| v.is_finite())
        .collect();
    if values.is_empty() {
        no_data(&mut out, text.no_data);
        return Chart::bare(out);
    }
    let reference = reference.filter(|(v, _)| v.is_finite());
    let (lo, hi) = min_max(values.iter().copied().chain(reference.map(|r| r.0)));
    let yt = nice_ticks(lo.min(0.0), hi, 6);
    let y = Axis {
        lo: yt[0],
        hi: yt[yt.len() - 1],
        from: H - BOTTOM,
        to: TOP,
    };
    y_axis(&mut out, &yt, &y, text.y_title);
    let n = categories.len().max(1) as f64;
    let band = (W - LEFT - RIGHT) / n;
    let every = label_every(categories.len(), 12);
    for (i, (label, v, color)) in categories.iter().enumerate() {
        let x0 = LEFT + band * i as f64;
        if let Some(v) = v.filter(|v| v.is_finite()) {
            let (top, bottom) = (y.map(v.max(0.0)), y.map(v.min(0.0)));
            let _ = write!(
                out,
                r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}</title></rect>"#,
                c(x0 + band * 0.15),
                c(top),
                c(band * 0.7),
                c((bottom - top).max(0.0)),
                color,
                escape(&format!("{label}: {}", super::format::display(v)))
            );
        }
        if i % every == 0 {
            let _ = write!(
                out,
                r#"<text x="{}" y="{}" class="tick" text-anchor="middle">{}</text>"#,
                c(x0 + band / 2.0),
                c(H - BOTTOM + 16.0),
                escape(label)
            );
        }
    }
    x_title_and_frame(&mut out, text.x_title);
    let mut entries: Vec<Legend> = legend_entries
        .iter()
        .map(|(l, col)| entry(l, col, false))
        .collect();
    if let Some((v, label)) = reference {
        let py = y.map(v);
        let _ = write!(
            out,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{MODEL}" stroke-width="1.5" stroke-dasharray="6 4"/>"#,
            c(LEFT),
            c(py),
            c(W - RIGHT),
            c(py)
        );
        entries.push(entry(label, MODEL, true));
    }
    out.push_str("</svg>");
    Chart {
        svg: out,
        legend: entries,
    }
}

/// A bucket label as days since 1970-01-01 (`YYYY-MM-DD`, `YYYY-MM-DDTHH` with the hour as a fraction,
/// `YYYY-MM` as the month's first day); None for anything else.
fn label_days(label: &str) -> Option<f64> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    let day = |d: NaiveDate| (d - epoch).num_days() as f64;
    match label.len() {
        7 => NaiveDate::parse_from_str(&format!("{label}-01"), "%Y-%m-%d")
            .ok()
            .map(day),
        10 => NaiveDate::parse_from_str(label, "%Y-%m-%d").ok().map(day),
        13 if label.as_bytes()[10] == b'T' => {
            let d = NaiveDate::parse_from_str(label.get(..10)?, "%Y-%m-%d").ok()?;
            let h: u32 = label.get(11..)?.parse().ok().filter(|h| *h < 24)?;
            Some(day(d) + f64::from(h) / 24.0)
        }
        _ => None,
    }
}

/// Ticks of a time axis over `[lo, hi]` days since the epoch: (position, label). The first of each month
/// (`YYYY-MM`), labelled every k-th month so that at most about 8 labels show (None: a tick without a
/// label); with fewer than two month starts in the range, days at a round step (`YYYY-MM-DD`).
pub fn time_ticks(lo: f64, hi: f64) -> Vec<(f64, Option<String>)> {
    let Some(epoch) = NaiveDate::from_ymd_opt(1970, 1, 1) else {
        return Vec::new();
    };
    let date = |d: f64| epoch + chrono::Duration::days(d.floor() as i64);
    let (first, last) = (date(lo), date(hi));
    let mut months = Vec::new();
    let mut m = NaiveDate::from_ymd_opt(first.year(), first.month(), 1).unwrap_or(first);
    if m < first || ((m - epoch).num_days() as f64) < lo {
        m = m.checked_add_months(Months::new(1)).unwrap_or(m);
    }
    while m <= last && months.len() < 10_000 {
        months.push(m);
        m = match m.checked_add_months(Months::new(1)) {
            Some(n) => n,
            None => break,
        };
    }
    if months.len() >= 2 {
        let every = [1, 2, 3, 6, 12, 24, 60]
            .into_iter()
            .find(|k| months.len().div_ceil(*k) <= 8)
            .unwrap_or(120);
        return months
            .iter()
            .map(|m| {
                let label = ((m.year() * 12 + m.month() as i32 - 1) as usize)
                    .is_multiple_of(every)
                    .then(|| m.format("%Y-%m").to_string());
                ((*m - epoch).num_days() as f64, label)
            })
            .collect();
    }
    let span = (hi - lo).max(1.0);
    let step = [1.0, 2.0, 5.0, 7.0, 14.0]
        .into_iter()
        .find(|k| span / k <= 7.0)
        .unwrap_or(14.0);
    let mut out = Vec::new();
    let mut d = lo.ceil();
    while d <= hi && out.len() < 64 {
        out.push((d, Some(date(d).format("%Y-%m-%d").to_string())));
        d += step;
    }
    out
}

/// A line over time (CUSUM per model bucket), with the zero line emphasised. Bucket labels that are dates
/// place the points in time, with ticks at the first of each month; other labels are spread evenly.
pub fn line(text: &ChartText<'_>, points: &[(String, f64)], color: &str) -> Chart {
    let mut out = String::new();
    open(&mut out, text.id, text.title);
    let times: Option<Vec<f64>> = points.iter().map(|(l, _)| label_days(l)).collect();
    let xs: Vec<f64> = match &times {
        Some(t) => t.clone(),
        None => (0..points.len()).map(|i| i as f64).collect(),
    };
    let pts: Vec<(f64, f64)> = points
        .iter()
        .zip(&xs)
        .filter(|((_, v), _)| v.is_finite())
        .map(|((_, v), x)| (*x, *v))
        .collect();
    if pts.is_empty() {
        no_data(&mut out, text.no_data);
        return Chart::bare(out);
    }
    let (lo, hi) = min_max(pts.iter().map(|p| p.1).chain([0.0]));
    let yt = nice_ticks(lo, hi, 6);
    let y = Axis {
        lo: yt[0],
        hi: yt[yt.len() - 1],
        from: H - BOTTOM,
        to: TOP,
    };
    y_axis(&mut out, &yt, &y, text.y_title);
    let (xmin, xmax) = min_max(xs.iter().copied());
    let x = Axis {
        lo: xmin,
        hi: if xmax > xmin { xmax } else { xmin + 1.0 },
        from: LEFT + 6.0,
        to: W - RIGHT - 6.0,
    };
    let ticks: Vec<(f64, Option<String>)> = match &times {
        Some(_) => time_ticks(xmin, xmax),
        None => {
            let every = label_every(points.len(), 7);
            points
                .iter()
                .enumerate()
                .filter(|(i, _)| i % every == 0)
                .map(|(i, (l, _))| (i as f64, Some(l.clone())))
                .collect()
        }
    };
    for (t, label) in &ticks {
        let px = x.map(*t);
        let _ = write!(
            out,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" class="grid"/>"#,
            c(px),
            c(H - BOTTOM),
            c(px),
            c(H - BOTTOM + if label.is_some() { 5.0 } else { 3.0 })
        );
        if let Some(label) = label {
            let _ = write!(
                out,
                r#"<text x="{}" y="{}" class="tick" text-anchor="middle">{}</text>"#,
                c(px),
                c(H - BOTTOM + 17.0),
                escape(label)
            );
        }
    }
    x_title_and_frame(&mut out, text.x_title);
    let zero = y.map(0.0);
    let _ = write!(
        out,
        r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{MODEL}" stroke-width="1.2"/>"#,
        c(LEFT),
        c(zero),
        c(W - RIGHT),
        c(zero)
    );
    if pts.len() == 1 {
        let _ = write!(
            out,
            r#"<circle cx="{}" cy="{}" r="3" fill="{color}"/>"#,
            c(x.map(pts[0].0)),
            c(y.map(pts[0].1))
        );
    } else {
        let path: Vec<String> = pts
            .iter()
            .map(|(t, v)| format!("{},{}", c(x.map(*t)), c(y.map(*v))))
            .collect();
        let _ = write!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2.2"/>"#,
            path.join(" ")
        );
    }
    out.push_str("</svg>");
    Chart::bare(out)
}

/// Show every k-th category label so at most about `max` labels appear.
fn label_every(n: usize, max: usize) -> usize {
    n.div_ceil(max.max(1)).max(1)
}

fn min_max(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values
        .filter(|v| v.is_finite())
        .fold(None, |acc: Option<(f64, f64)>, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
        .unwrap_or((0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_range() {
        assert_eq!(
            nice_ticks(0.0, 100.0, 5),
            vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        let t = nice_ticks(3.2, 47.9, 6);
        assert!(t[0] <= 3.2 && *t.last().unwrap_or(&0.0) >= 47.9);
        assert_eq!(t[1] - t[0], 10.0);
        // degenerate and hostile ranges still give two ticks
        assert!(nice_ticks(5.0, 5.0, 6).len() >= 2);
        assert!(nice_ticks(0.0, 0.0, 6).len() >= 2);
        assert!(nice_ticks(f64::NAN, 1.0, 6).len() >= 2);
        assert_eq!(tick_label(40_000.0, 10_000.0), "40,000");
        assert_eq!(tick_label(0.25, 0.05), "0.25");
        assert_eq!(tick_label(-0.0, 1.0), "0");
    }

    #[test]
    fn empty_and_non_finite_inputs_say_no_data_without_nan() {
        let text = |no_data| ChartText {
            id: "c",
            title: "t",
            x_title: "x",
            y_title: "y",
            no_data,
        };
        let s = scatter(&text("no data"), &[], None).svg;
        assert!(s.contains("no data"));
        let nan = [ScatterSeries {
            label: "a",
            color: BASELINE,
            points: vec![(f64::NAN, 1.0)],
        }];
        let s = scatter(
            &text("no data"),
            &nan,
            Some(("m", vec![(f64::INFINITY, 0.0)])),
        )
        .svg;
        assert!(s.contains("no data") && !s.contains("NaN") && !s.contains("inf"));
        let b = bars(
            &text("nothing"),
            &[("2025-01".to_string(), None, BASELINE)],
            None,
            &[],
        )
        .svg;
        assert!(b.contains("nothing"));
        let l = line(&text("nothing"), &[("d".to_string(), f64::NAN)], REPORTING).svg;
        assert!(l.contains("nothing") && !l.contains("NaN"));
        // one point is drawn as a dot, not a degenerate axis
        let l = line(&text("nothing"), &[("d".to_string(), 5.0)], REPORTING).svg;
        assert!(l.contains("<circle") && !l.contains("NaN"));
        // text from the report is escaped in titles
        let hostile = ChartText {
            id: "c",
            title: "<b>",
            x_title: "&",
            y_title: "\"",
            no_data: "<i>",
        };
        let s = scatter(&hostile, &[], None).svg;
        assert!(!s.contains("<b>") && !s.contains("<i>") && s.contains("&lt;i&gt;"));
    }

    #[test]
    fn time_axes_tick_the_first_of_each_month() {
        let days = |s: &str| label_days(s).unwrap();
        // half a year of days: six month starts, each labelled YYYY-MM
        let t = time_ticks(days("2026-01-01"), days("2026-06-30"));
        let labels: Vec<&str> = t.iter().filter_map(|(_, l)| l.as_deref()).collect();
        assert_eq!(
            labels,
            ["2026-01", "2026-02", "2026-03", "2026-04", "2026-05", "2026-06"]
        );
        assert_eq!(t[1].0, days("2026-02-01"));
        // a start mid-month: the first tick is the next month's first
        let t = time_ticks(days("2026-01-17"), days("2026-04-02"));
        assert_eq!(t[0], (days("2026-02-01"), Some("2026-02".to_string())));
        // two years: a tick every month, a label every third month at most 8 labels
        let t = time_ticks(days("2024-01-01"), days("2025-12-31"));
        assert_eq!(t.len(), 24);
        let labels: Vec<&str> = t.iter().filter_map(|(_, l)| l.as_deref()).collect();
        assert_eq!(labels.len(), 8);
        assert_eq!(labels[0], "2024-01");
        assert_eq!(labels[1], "2024-04");
        // a week: days
        let t = time_ticks(days("2026-05-01"), days("2026-05-07"));
        assert_eq!(t[0].1.as_deref(), Some("2026-05-01"));
        assert!(t.len() >= 4);
        // hours and months parse; other labels do not
        assert_eq!(days("2026-01-01T12") - days("2026-01-01"), 0.5);
        assert_eq!(days("2026-02"), days("2026-02-01"));
        assert_eq!(label_days("week 3"), None);
    }

    #[test]
    fn the_cusum_line_has_month_ticks_and_no_odd_days() {
        let text = ChartText {
            id: "c",
            title: "t",
            x_title: "x",
            y_title: "y",
            no_data: "-",
        };
        let mut pts = Vec::new();
        let mut d = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        while d < NaiveDate::from_ymd_opt(2026, 7, 1).unwrap() {
            pts.push((d.format("%Y-%m-%d").to_string(), 10.0 * pts.len() as f64));
            d = d.succ_opt().unwrap();
        }
        let svg = line(&text, &pts, REPORTING).svg;
        assert!(svg.contains(">2026-03<"));
        assert!(!svg.contains(">2026-01-08<"), "no day labels");
    }

    #[test]
    fn legends_are_returned_not_drawn_so_long_labels_are_never_clipped() {
        let text = ChartText {
            id: "c",
            title: "t",
            x_title: "x",
            y_title: "y",
            no_data: "-",
        };
        let long = "Baseline model: Regression on production and heating degree days";
        let s = [ScatterSeries {
            label: "Baseline period",
            color: BASELINE,
            points: vec![(1.0, 2.0), (2.0, 4.0)],
        }];
        let c = scatter(&text, &s, Some((long, vec![(1.0, 2.0), (2.0, 4.0)])));
        assert_eq!(c.legend.len(), 2);
        assert_eq!(c.legend[1].label, long);
        assert!(c.legend[1].line);
        assert!(!c.svg.contains(long), "the legend is not inside the SVG");
    }
}
