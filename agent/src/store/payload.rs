//! The stored (and published) JSON payload of a data message, written directly into a buffer.
//!
//! The bytes are exactly those of [`DataMessage::to_json`] (serde_json, compact): same key order,
//! same number formatting (numbers go through serde_json itself), same string escaping (strings
//! that need escaping go through serde_json too), same timestamp text. Only the generic
//! serializer's per-field work and the timestamp's strftime are skipped: at 50 polls a second it
//! was the store writer's largest cost. Tests compare both encodings byte for byte.

#[cfg(any(test, feature = "demo"))]
use plantmeter_common::DataMessage;
use plantmeter_common::Quality;

/// Append the JSON payload of `m` to `out`.
#[cfg(any(test, feature = "demo"))]
pub fn encode(m: &DataMessage, out: &mut Vec<u8>) {
    encode_parts(
        m.seq,
        m.ts,
        &m.meter,
        m.points
            .iter()
            .map(|p| (p.name.as_str(), p.value, p.unit.as_str(), p.quality)),
        out,
    );
}

/// Append the JSON payload of a poll given by parts (seq, poll time, meter name and, per point,
/// name, value, unit and quality) to `out`: the same bytes as [`encode`] of the equivalent message.
pub fn encode_parts<'a>(
    seq: u64,
    ts: i64,
    meter: &str,
    points: impl Iterator<Item = (&'a str, Option<f64>, &'a str, Quality)>,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(b"{\"seq\":");
    number(out, seq);
    out.extend_from_slice(b",\"ts\":\"");
    timestamp(out, ts);
    out.extend_from_slice(b"\",\"meter\":");
    string(out, meter);
    out.extend_from_slice(b",\"points\":[");
    for (i, (name, value, unit, quality)) in points.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"name\":");
        string(out, name);
        out.extend_from_slice(b",\"value\":");
        match value {
            // serde_json writes non-finite floats as null, like None.
            Some(v) => {
                let _ = serde_json::to_writer(&mut *out, &v);
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"unit\":");
        string(out, unit);
        out.extend_from_slice(b",\"quality\":\"");
        out.extend_from_slice(quality.as_str().as_bytes());
        out.extend_from_slice(b"\"}");
    }
    out.extend_from_slice(b"]}");
}

/// The payload of `m` in a new buffer.
#[cfg(test)]
pub fn to_vec(m: &DataMessage) -> Vec<u8> {
    let mut out = Vec::with_capacity(96 + m.points.len() * 72);
    encode(m, &mut out);
    out
}

fn number(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// A JSON string: written as is when nothing in it needs escaping, else by serde_json.
fn string(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// The last ms of 9999-12-31 UTC: up to here the year has four digits.
const MAX_FAST_MS: i64 = 253_402_300_799_999;

/// `2026-11-21T08:00:05.000Z`, as `format_ts_ms` writes it.
fn timestamp(out: &mut Vec<u8>, ms: i64) {
    if !(0..=MAX_FAST_MS).contains(&ms) {
        out.extend_from_slice(plantmeter_common::model::format_ts_ms(ms).as_bytes());
        return;
    }
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, mo, d) = civil_from_days(days);
    let (h, mi, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    let digits = |out: &mut Vec<u8>, v: i64, width: u32| {
        for k in (0..width).rev() {
            out.push(b'0' + (v / 10i64.pow(k) % 10) as u8);
        }
    };
    digits(out, y, 4);
    out.push(b'-');
    digits(out, mo, 2);
    out.push(b'-');
    digits(out, d, 2);
    out.push(b'T');
    digits(out, h, 2);
    out.push(b':');
    digits(out, mi, 2);
    out.push(b':');
    digits(out, s, 2);
    out.push(b'.');
    digits(out, milli, 3);
    out.push(b'Z');
}

/// Year, month (1-12), day (1-31) of a day count since 1970-01-01 (proleptic Gregorian; Howard
/// Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use plantmeter_common::PointValue;
    use proptest::prelude::*;

    fn msg(seq: u64, ts: i64, meter: &str, points: Vec<PointValue>) -> DataMessage {
        DataMessage {
            seq,
            ts,
            meter: meter.into(),
            points,
        }
    }

    fn point(name: &str, value: Option<f64>, unit: &str, quality: Quality) -> PointValue {
        PointValue {
            name: name.into(),
            value,
            unit: unit.into(),
            quality,
        }
    }

    #[test]
    fn same_bytes_as_serde_for_the_contract_example_and_edge_cases() {
        let cases = vec![
            msg(
                1042,
                1_795_248_005_000,
                "main-power",
                vec![
                    point("energy_import", Some(1234.56), "kWh", Quality::Good),
                    point("power", None, "kW", Quality::CommError),
                ],
            ),
            msg(0, 0, "m", vec![]),
            msg(
                u64::MAX,
                MAX_FAST_MS,
                "quote\"and\\slash\u{1}",
                vec![
                    point("t", Some(f64::NAN), "°C", Quality::Invalid),
                    point("x", Some(-0.0), "m³/h", Quality::DeviceError),
                    point("y", Some(1e300), "", Quality::Good),
                    point("z", Some(12345.669921875), "\n", Quality::Good),
                ],
            ),
            // Outside the four-digit years: chrono's own text.
            msg(7, -1, "m", vec![]),
            msg(7, MAX_FAST_MS + 1, "m", vec![]),
            msg(7, i64::MIN, "m", vec![]),
        ];
        for m in cases {
            assert_eq!(
                String::from_utf8(to_vec(&m)).unwrap(),
                String::from_utf8(m.to_json()).unwrap()
            );
        }
    }

    proptest! {
        #[test]
        fn same_bytes_as_serde(
            seq in any::<u64>(),
            ts in 0i64..=MAX_FAST_MS,
            v in any::<f64>(),
            f in any::<f32>(),
            name in "[a-z0-9_-]{1,12}",
            unit in "\\PC{0,4}",
        ) {
            let m = msg(seq, ts, &name, vec![
                point(&name, Some(v), &unit, Quality::Good),
                point("f", Some(f64::from(f)), "kW", Quality::Good),
                point("n", None, &unit, Quality::CommError),
            ]);
            prop_assert_eq!(to_vec(&m), m.to_json());
        }
    }
}
