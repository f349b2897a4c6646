//! Number and date formatting shared by the renderers.

use chrono::NaiveDate;

/// A number for machines (CSV): `.` decimal, no exponent, no thousands separator, at most 12 significant
/// digits (so `0.1 + 0.2` prints `0.3`); empty for NaN and infinities.
pub fn plain(x: f64) -> String {
    if !x.is_finite() {
        return String::new();
    }
    if x == 0.0 {
        return "0".to_string();
    }
    let magnitude = x.abs().log10().floor() as i32;
    let decimals = (11 - magnitude).clamp(0, 17) as usize;
    let s = format!("{x:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" {
        "0".to_string()
    } else {
        s
    }
}

/// A measured figure for a file a script reads (CSV): [`plain`] rounded to 7 significant digits (never
/// rounding the integer part), so sums of floats do not show as `1221000.4000000001`.
pub fn figure(x: f64) -> String {
    if !x.is_finite() {
        return String::new();
    }
    if x == 0.0 {
        return "0".to_string();
    }
    let magnitude = x.abs().log10().floor() as i32;
    let decimals = (6 - magnitude).clamp(0, 12) as usize;
    plain(format!("{x:.decimals$}").parse().unwrap_or(x))
}

/// [`figure`] of an optional value; empty for `None`.
pub fn figure_opt(x: Option<f64>) -> String {
    x.map(figure).unwrap_or_default()
}

/// How an indicator's totals are shown: energy totals in tonnes of standard coal (tce), as audits give
/// them (DOMAIN.md); the JSON keeps kgce. Returns the factor from `total_unit` and the unit shown.
/// Per-unit figures keep their unit (kgce/t).
pub fn shown_total_unit(total_unit: &str) -> (f64, &str) {
    match total_unit {
        "kgce" => (0.001, "tce"),
        other => (1.0, other),
    }
}

/// A number for people: thousands separated by `,`, decimals by magnitude (0 from 1000 up, 1 from 100,
/// 2 from 1, 3 significant digits below 1); `–` for NaN and infinities.
pub fn display(x: f64) -> String {
    if !x.is_finite() {
        return "–".to_string();
    }
    let a = x.abs();
    let decimals = if a >= 1000.0 {
        0
    } else if a >= 100.0 {
        1
    } else if a >= 1.0 || a == 0.0 {
        2
    } else {
        // three significant digits, at most 6 decimals
        let m = a.log10().floor() as i32;
        (2 - m).clamp(3, 6) as usize
    };
    group(&format!("{x:.decimals$}"))
}

/// [`display`] of an optional value; `–` for `None`.
pub fn display_opt(x: Option<f64>) -> String {
    x.map_or_else(|| "–".to_string(), display)
}

/// A percentage for people, one decimal, without the `%` sign; `–` for NaN, infinities and `None`.
pub fn pct_opt(x: Option<f64>) -> String {
    match x {
        Some(v) if v.is_finite() => {
            let s = format!("{v:.1}");
            if s == "-0.0" {
                "0.0".to_string()
            } else {
                s
            }
        }
        _ => "–".to_string(),
    }
}

/// A fraction (0..=1) as a percentage for people, one decimal, with the `%` sign.
pub fn fraction_pct(x: f64) -> String {
    format!("{}%", pct_opt(Some(x * 100.0)))
}

/// Escape text for HTML and SVG (element content and quoted attributes): `& < > " '`. Control
/// characters other than tab and newline are dropped (they are invalid in XML).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' => out.push(ch),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Insert `,` every three digits of the integer part of a formatted number (a negative zero loses its sign).
pub(super) fn group(s: &str) -> String {
    let (sign, rest) = match s.strip_prefix('-') {
        Some(r) => ("-", r),
        None => ("", s),
    };
    let (int, frac) = match rest.find('.') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let mut out = String::with_capacity(s.len() + int.len() / 3);
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    let sign =
        if out.chars().all(|c| c == '0' || c == ',') && frac.chars().skip(1).all(|c| c == '0') {
            ""
        } else {
            sign
        };
    format!("{sign}{out}{frac}")
}

/// The inclusive last day of a half-open period ending at `to` (`YYYY-MM-DD`); `to` as it is when it does
/// not parse.
pub fn inclusive_end(to: &str) -> String {
    NaiveDate::parse_from_str(to, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.pred_opt())
        .map_or_else(|| to.to_string(), |d| d.format("%Y-%m-%d").to_string())
}

/// Number of days of the half-open period `[from, to)`, when both parse.
pub fn days_between(from: &str, to: &str) -> Option<i64> {
    let f = NaiveDate::parse_from_str(from, "%Y-%m-%d").ok()?;
    let t = NaiveDate::parse_from_str(to, "%Y-%m-%d").ok()?;
    Some((t - f).num_days())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_numbers_for_excel() {
        assert_eq!(plain(0.1 + 0.2), "0.3");
        assert_eq!(plain(2_400_000.0), "2400000");
        assert_eq!(plain(-99_000.5), "-99000.5");
        assert_eq!(plain(1e21), "1000000000000000000000");
        assert_eq!(plain(0.000_012_3), "0.0000123");
        assert_eq!(plain(37.0), "37");
        assert_eq!(plain(-0.0), "0");
        assert_eq!(plain(f64::NAN), "");
        assert_eq!(plain(f64::INFINITY), "");
    }

    #[test]
    fn figures_have_seven_significant_digits_at_most() {
        assert_eq!(figure(1_221_000.400_000_000_1), "1221000");
        assert_eq!(figure(37.012_345_678), "37.01235");
        assert_eq!(figure(0.000_123_456_789), "0.0001234568");
        assert_eq!(figure(-99_000.5), "-99000.5");
        assert_eq!(figure(123_456_789_012.7), "123456789013");
        assert_eq!(figure(0.1 + 0.2), "0.3");
        assert_eq!(figure(f64::NAN), "");
        assert_eq!(figure_opt(None), "");
        assert_eq!(shown_total_unit("kgce"), (0.001, "tce"));
        assert_eq!(shown_total_unit("m3"), (1.0, "m3"));
    }

    #[test]
    fn display_numbers_for_people() {
        assert_eq!(display(2_400_000.0), "2,400,000");
        assert_eq!(display(-1_221_000.4), "-1,221,000");
        assert_eq!(display(123.456), "123.5");
        assert_eq!(display(40.0), "40.00");
        assert_eq!(display(0.1229), "0.123");
        assert_eq!(display(0.000_123_4), "0.000123");
        assert_eq!(display(0.0), "0.00");
        assert_eq!(display(-0.0001), "-0.000100");
        assert_eq!(display(-0.0), "0.00");
        assert_eq!(display(f64::NAN), "–");
        assert_eq!(pct_opt(Some(7.4999)), "7.5");
        assert_eq!(pct_opt(Some(-0.01)), "0.0");
        assert_eq!(pct_opt(None), "–");
        assert_eq!(fraction_pct(0.998), "99.8%");
    }

    #[test]
    fn escapes_markup_and_drops_control_characters() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\"\x1b[31m"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;[31m"
        );
        assert_eq!(escape("单位产品综合能耗"), "单位产品综合能耗");
    }

    #[test]
    fn dates() {
        assert_eq!(inclusive_end("2026-01-01"), "2025-12-31");
        assert_eq!(inclusive_end("2024-03-01"), "2024-02-29");
        assert_eq!(inclusive_end("garbage"), "garbage");
        assert_eq!(days_between("2025-01-01", "2026-01-01"), Some(365));
        assert_eq!(days_between("x", "2026-01-01"), None);
    }
}
