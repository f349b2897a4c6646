//! The canonical form of a report's JSON and its SHA-256 (README "Report integrity"): the report
//! without `integrity`, object keys sorted at every level, numbers as serde_json writes them. One rule
//! for every sealed report (the agent's, plantmeter-park's plant reports); signing stays with the agent.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Compact JSON of `v` with the keys of every object sorted, written key by key: independent of the map's
/// own order (serde_json keeps insertion order when another crate turns on its `preserve_order`).
pub fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                write_canonical(&m[*k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        Value::Number(n) => match n.as_f64().filter(|_| n.is_f64()) {
            Some(x) => write_float(x, out),
            None => out.push_str(&n.to_string()),
        },
        other => out.push_str(&other.to_string()),
    }
}

/// A float of the canonical form (README "Report integrity"): the shortest digits that read back to the
/// same double, laid out as serde_json 1.0.154 writes them (`37.0`, `1234.5`, `0.0001`, `1e-6`,
/// `1.2866050715614669e-8`, `1e+16`): written here, so that a change of serde_json's float printing can
/// never change the digest of a report already sealed.
pub fn write_float(x: f64, out: &mut String) {
    use std::fmt::Write as _;
    if x == 0.0 {
        out.push_str(if x.is_sign_negative() { "-0.0" } else { "0.0" });
        return;
    }
    if x.is_sign_negative() {
        out.push('-');
    }
    let (digits, exp) = shortest_digits(x.abs());
    let n = digits.len() as i32;
    if (-5..=15).contains(&exp) {
        if exp >= n - 1 {
            // 1234e7 -> 12340000000.0
            let _ = write!(out, "{digits}{}.0", "0".repeat((exp - (n - 1)) as usize));
        } else if exp >= 0 {
            // 1234e-2 -> 12.34
            let (int, frac) = digits.split_at(exp as usize + 1);
            let _ = write!(out, "{int}.{frac}");
        } else {
            // 1234e-6 -> 0.001234
            let _ = write!(out, "0.{}{digits}", "0".repeat((-exp - 1) as usize));
        }
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let _ = write!(out, "e{}{}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
}

/// The shortest digits that read back to `x` (positive, finite, not 0) and the decimal exponent of the
/// first one. From ryu (the digits serde_json and Python's `repr` give): Rust's `{:e}` rounds a tie the
/// other way (128841392999755.625 -> `...755.63`, where ryu and Python write `...755.62`), which would
/// make a report's digest differ from the independent script's.
fn shortest_digits(x: f64) -> (String, i32) {
    let mut buf = ryu::Buffer::new();
    let s = buf.format_finite(x);
    let (mantissa, e) = s.split_once('e').unwrap_or((s, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all = format!("{int}{frac}");
    let significant = all.trim_start_matches('0');
    let lead = (all.len() - significant.len()) as i32;
    let digits = significant.trim_end_matches('0');
    let exp = int.len() as i32 - 1 - lead + e;
    if digits.is_empty() {
        ("0".to_string(), 0)
    } else {
        (digits.to_string(), exp)
    }
}

/// SHA-256 (lower-case hex) of a report's JSON value without its `integrity` field.
pub fn digest_of_value(v: &Value) -> String {
    let mut text = String::new();
    match v {
        Value::Object(m) if m.contains_key("integrity") => {
            let mut m = m.clone();
            m.remove("integrity");
            write_canonical(&Value::Object(m), &mut text);
        }
        _ => write_canonical(v, &mut text),
    }
    hex(&Sha256::digest(text.as_bytes()))
}

/// Lower-case hex of bytes.
pub fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}
