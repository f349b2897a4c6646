//! Data messages as stored and as published.
//!
//! Stored: a compact binary record ([`record`], tag byte [`RECORD_V1`]; its seq is the key), about
//! half the size of the JSON, because sled rewrites whole tree nodes as records come and go (a
//! queue of 50 polls a second moved ~140 KB/s through its log with JSON values). Published: the
//! JSON rendered from the record by [`json_of_record`], deterministic, so every resend of a seq is
//! byte-identical. Records written as JSON by earlier versions (first byte `{`) are published as
//! they are.
//!
//! The JSON payload of a data message is written directly into a buffer.
//!
//! The bytes are exactly those of [`DataMessage::to_json`] (serde_json, compact): same key order,
//! same number formatting (numbers go through serde_json itself), same string escaping (strings
//! that need escaping go through serde_json too), same timestamp text. Only the generic
//! serializer's per-field work and the timestamp's strftime are skipped: at 50 polls a second it
//! was the store writer's largest cost. Tests compare both encodings byte for byte.

use plantmeter_common::{DataMessage, PointValue, Quality};

/// First byte of a binary record (version 1).
pub const RECORD_V1: u8 = 1;

/// The stored record of `m` (everything but its seq, which is the key): tag, ts (i64 LE), meter,
/// point count (u16 LE), then per point quality (u8), has-value (u8), value (f64 LE, if any),
/// name and unit. Strings are a u16 LE length and UTF-8 bytes.
pub fn record(m: &DataMessage) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + m.meter.len() + m.points.len() * 40);
    out.push(RECORD_V1);
    out.extend_from_slice(&m.ts.to_le_bytes());
    put_str(&mut out, &m.meter);
    put_u16(&mut out, m.points.len());
    for p in &m.points {
        out.push(match p.quality {
            Quality::Good => 0,
            Quality::CommError => 1,
            Quality::DeviceError => 2,
            Quality::Invalid => 3,
        });
        match p.value {
            Some(v) => {
                out.push(1);
                out.extend_from_slice(&v.to_le_bytes());
            }
            None => out.push(0),
        }
        put_str(&mut out, &p.name);
        put_str(&mut out, &p.unit);
    }
    out
}

fn put_u16(out: &mut Vec<u8>, n: usize) {
    // Names, units and point lists are far below 64 Ki (config validation); clamp regardless.
    out.extend_from_slice(&(n.min(usize::from(u16::MAX)) as u16).to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let b = b.get(..usize::from(u16::MAX)).unwrap_or(b);
    put_u16(out, b.len());
    out.extend_from_slice(b);
}

/// Reads a binary record.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn u16(&mut self) -> Option<usize> {
        Some(usize::from(u16::from_le_bytes(
            self.take(2)?.try_into().ok()?,
        )))
    }
    fn u64(&mut self) -> Option<[u8; 8]> {
        self.take(8)?.try_into().ok()
    }
    fn str(&mut self) -> Option<&'a str> {
        let n = self.u16()?;
        std::str::from_utf8(self.take(n)?).ok()
    }
}

/// The data message of a stored value (binary record or JSON), with its seq.
pub fn decode(seq: u64, stored: &[u8]) -> Option<DataMessage> {
    if stored.first() != Some(&RECORD_V1) {
        let mut m: DataMessage = serde_json::from_slice(stored).ok()?;
        m.seq = seq;
        return Some(m);
    }
    let mut r = Reader(stored.get(1..)?);
    let ts = i64::from_le_bytes(r.u64()?);
    let meter = r.str()?.to_string();
    let n = r.u16()?;
    let mut points = Vec::with_capacity(n);
    for _ in 0..n {
        let quality = match r.u8()? {
            0 => Quality::Good,
            1 => Quality::CommError,
            2 => Quality::DeviceError,
            3 => Quality::Invalid,
            _ => return None,
        };
        let value = match r.u8()? {
            0 => None,
            1 => Some(f64::from_le_bytes(r.u64()?)),
            _ => return None,
        };
        points.push(PointValue {
            name: r.str()?.to_string(),
            value,
            unit: r.str()?.to_string(),
            quality,
        });
    }
    if !r.0.is_empty() {
        return None;
    }
    Some(DataMessage {
        seq,
        ts,
        meter,
        points,
    })
}

/// The poll time of a stored value, ms since the epoch.
pub fn ts_of(stored: &[u8]) -> Option<i64> {
    if stored.first() == Some(&RECORD_V1) {
        let b: [u8; 8] = stored.get(1..9)?.try_into().ok()?;
        return Some(i64::from_le_bytes(b));
    }
    serde_json::from_slice::<DataMessage>(stored)
        .ok()
        .map(|m| m.ts)
}

/// The JSON payload to publish for a stored value: rendered from a binary record; a JSON record
/// (or, should one ever be unreadable, the value itself) as it is.
pub fn json_of_record(seq: u64, stored: &[u8]) -> Vec<u8> {
    if stored.first() == Some(&RECORD_V1) {
        if let Some(m) = decode(seq, stored) {
            return to_vec(&m);
        }
    }
    stored.to_vec()
}

/// Append the JSON payload of `m` to `out`.
pub fn encode(m: &DataMessage, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"seq\":");
    number(out, m.seq);
    out.extend_from_slice(b",\"ts\":\"");
    timestamp(out, m.ts);
    out.extend_from_slice(b"\",\"meter\":");
    string(out, &m.meter);
    out.extend_from_slice(b",\"points\":[");
    for (i, p) in m.points.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"name\":");
        string(out, &p.name);
        out.extend_from_slice(b",\"value\":");
        match p.value {
            // serde_json writes non-finite floats as null, like None.
            Some(v) => {
                let _ = serde_json::to_writer(&mut *out, &v);
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"unit\":");
        string(out, &p.unit);
        out.extend_from_slice(b",\"quality\":\"");
        out.extend_from_slice(p.quality.as_str().as_bytes());
        out.extend_from_slice(b"\"}");
    }
    out.extend_from_slice(b"]}");
}

/// The payload of `m` in a new buffer.
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
            let rec = record(&m);
            assert_eq!(
                String::from_utf8(json_of_record(m.seq, &rec)).unwrap(),
                String::from_utf8(m.to_json()).unwrap()
            );
        }
    }

    #[test]
    fn json_records_of_earlier_versions_are_published_as_they_are() {
        let m = msg(
            9,
            1_795_248_005_000,
            "m",
            vec![point("p", Some(1.5), "kW", Quality::Good)],
        );
        let json = m.to_json();
        assert_eq!(json_of_record(9, &json), json);
        assert_eq!(ts_of(&json), Some(m.ts));
        assert_eq!(decode(9, &json), Some(m));
        // A truncated record is not misread.
        let rec = record(&msg(
            1,
            0,
            "m",
            vec![point("p", None, "kW", Quality::CommError)],
        ));
        assert_eq!(decode(1, &rec[..rec.len() - 1]), None);
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
            // Stored as a binary record, published as the same JSON; the ts and message come back.
            let rec = record(&m);
            prop_assert_eq!(json_of_record(seq, &rec), m.to_json());
            prop_assert_eq!(ts_of(&rec), Some(ts));
            prop_assert_eq!(decode(seq, &rec), Some(m.clone()));
            prop_assert!(rec.len() < m.to_json().len());
        }
    }
}
