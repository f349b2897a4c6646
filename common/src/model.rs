//! The data model of readings as they flow poller -> store -> publisher (CONTRACT.md "Data payload").

use serde::{Deserialize, Serialize};

/// Quality of one point in one poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    Good,
    /// Timeout, disconnect, garbage frame: the meter could not be read.
    CommError,
    /// The meter answered with a Modbus exception.
    DeviceError,
    /// The meter answered, but the value is NaN, infinite or outside the configured range.
    Invalid,
}

impl Quality {
    pub fn as_str(self) -> &'static str {
        match self {
            Quality::Good => "good",
            Quality::CommError => "comm_error",
            Quality::DeviceError => "device_error",
            Quality::Invalid => "invalid",
        }
    }
}

/// One point of one poll. `value` is None unless `quality` is `Good`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointValue {
    pub name: String,
    pub value: Option<f64>,
    pub unit: String,
    pub quality: Quality,
}

/// One poll of one meter: the unit of storage and of publication (`P/data/{meter}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataMessage {
    /// Per gateway, +1 per message, durable across restarts.
    pub seq: u64,
    /// When the poll was taken, UTC, as an RFC 3339 string with milliseconds and `Z`.
    #[serde(with = "ts_millis")]
    pub ts: i64,
    pub meter: String,
    pub points: Vec<PointValue>,
}

impl DataMessage {
    /// The JSON payload exactly as the contract shows it.
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain structs of strings and numbers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Format milliseconds since the Unix epoch as `2026-11-21T08:00:05.000Z`.
pub fn format_ts_ms(ms: i64) -> String {
    match chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => String::from("1970-01-01T00:00:00.000Z"),
    }
}

/// Parse an RFC 3339 timestamp into milliseconds since the Unix epoch.
pub fn parse_ts_ms(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Parse a timestamp a person typed or a file holds: RFC 3339, or a local `YYYY-MM-DD HH:MM[:SS[.f]]` (also
/// with `T` between date and time) read in `tz` (the plant's `[audit] timezone`). UTC milliseconds.
pub fn parse_ts_in(s: &str, tz: chrono::FixedOffset) -> Option<i64> {
    use chrono::TimeZone;
    if let Some(ms) = parse_ts_ms(s) {
        return Some(ms);
    }
    const LOCAL: [&str; 4] = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ];
    LOCAL.iter().find_map(|f| {
        let naive = chrono::NaiveDateTime::parse_from_str(s, f).ok()?;
        tz.from_local_datetime(&naive)
            .single()
            .map(|t| t.timestamp_millis())
    })
}

/// An instant in the plant's timezone, to the second, with its offset: `2026-03-15 08:00:00 +08:00`.
pub fn format_ts_local(ms: i64, tz: chrono::FixedOffset) -> String {
    match chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms) {
        Some(t) => t
            .with_timezone(&tz)
            .format("%Y-%m-%d %H:%M:%S %:z")
            .to_string(),
        None => format_ts_ms(ms),
    }
}

mod ts_millis {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_ts_ms(*ms))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_ts_ms(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 timestamp: {s}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_message_json_matches_contract() {
        let m = DataMessage {
            seq: 1042,
            ts: parse_ts_ms("2026-11-21T08:00:05Z").unwrap(),
            meter: "main-power".into(),
            points: vec![
                PointValue {
                    name: "energy_import".into(),
                    value: Some(1234.56),
                    unit: "kWh".into(),
                    quality: Quality::Good,
                },
                PointValue {
                    name: "power".into(),
                    value: None,
                    unit: "kW".into(),
                    quality: Quality::CommError,
                },
            ],
        };
        let json = String::from_utf8(m.to_json()).unwrap();
        assert_eq!(
            json,
            r#"{"seq":1042,"ts":"2026-11-21T08:00:05.000Z","meter":"main-power","points":[{"name":"energy_import","value":1234.56,"unit":"kWh","quality":"good"},{"name":"power","value":null,"unit":"kW","quality":"comm_error"}]}"#
        );
        let back: DataMessage = serde_json::from_slice(json.as_bytes()).unwrap();
        assert_eq!(back, m);
    }
}
