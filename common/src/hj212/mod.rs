//! HJ 212-2017 (pollutant online monitoring data transmission) frames: encode and decode.
//!
//! A frame is `##` + the data segment's length as 4 decimal digits + the data segment + its CRC as 4
//! upper-case hex digits + CRLF. The data segment is `QN=..;ST=..;CN=..;PW=..;MN=..;Flag=..;CP=&&..&&`;
//! inside `CP` the groups are separated by `;` and the `key=value` pairs of a group by `,`
//! (`DataTime=20160801085857;a21026-Rtd=12.3,a21026-Flag=N`).
//!
//! [`data`] builds the data packets (CN 2011/2051/2061/2031), `Flag`, QN and DataTime and splits long
//! packets (PNUM/PNO); [`command`] reads a platform's packets (CN 9014, history requests) and writes
//! the answers (CN 9011, 9012); [`splitter`] cuts a byte stream into frames, resynchronising on `##`.
//!
//! The CRC is the one DOMAIN.md gives (reflected 0xA001 polynomial, but the byte is XORed into the
//! *shifted* register: `crc = (crc >> 8) ^ b`), which is not CRC-16/MODBUS.

use std::fmt;

pub mod command;
pub mod data;
pub mod sm4;
pub mod splitter;

/// Largest data segment the 4-digit length field can announce, in bytes.
pub const MAX_DATA_LEN: usize = 9_999;

/// What is wrong with a frame or a packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Hj212Error {
    #[error("HJ 212 frame does not start with \"##\"")]
    MissingHeader,
    #[error("HJ 212 frame is {len} bytes, too short for header and length")]
    TooShort { len: usize },
    #[error("HJ 212 length field {found:?} is not 4 decimal digits")]
    BadLengthField { found: String },
    #[error(
        "HJ 212 length field says {declared} bytes of data segment, the frame carries {actual}"
    )]
    LengthMismatch { declared: usize, actual: usize },
    #[error("HJ 212 CRC field {found:?} is not 4 hex digits")]
    BadCrcField { found: String },
    #[error("HJ 212 CRC mismatch: computed {expected:04X}, frame says {found:04X}")]
    BadCrc { expected: u16, found: u16 },
    #[error("HJ 212 frame must end with CRLF after the CRC, found {found:?}")]
    BadTerminator { found: String },
    #[error("HJ 212 data segment is not ASCII/UTF-8 text")]
    NotText,
    #[error("HJ 212 data segment of {len} bytes is longer than {MAX_DATA_LEN}")]
    TooLong { len: usize },
    #[error("HJ 212 data segment lacks field {0}")]
    MissingField(&'static str),
    #[error("HJ 212 data segment has field {0} twice")]
    DuplicateField(String),
    #[error("HJ 212 field {found:?} is not KEY=VALUE")]
    BadField { found: String },
    #[error("HJ 212 field {field} has a bad value {value:?}: {why}")]
    BadValue {
        field: String,
        value: String,
        why: &'static str,
    },
    #[error("HJ 212 CP must be the last field, written CP=&&...&&")]
    BadCp,
}

/// The HJ 212 CRC of `data` (DOMAIN.md): start 0xFFFF; per byte `crc = (crc >> 8) ^ b`, then 8
/// shifts right, XORing 0xA001 after each shift that dropped a 1.
pub fn crc(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in data {
        crc = (crc >> 8) ^ u16::from(b);
        for _ in 0..8 {
            let lsb = crc & 1;
            crc >>= 1;
            if lsb != 0 {
                crc ^= 0xA001;
            }
        }
    }
    crc
}

/// One `key=value` pair of `CP`.
pub type CpPair = (String, String);

/// A parsed data segment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Packet {
    /// Request number, `yyyyMMddHHmmsszzz` local time with milliseconds; optional in uploads.
    pub qn: Option<String>,
    /// System code: 31 air (flue gas), 32 surface/waste water, 91 system interaction, ...
    pub st: String,
    /// Command code: 2011 real-time data, 2051 minute, 2061 hour, 2031 day, ...
    pub cn: String,
    /// Access password.
    pub pw: String,
    /// Device (monitoring point) identifier, up to 24 characters.
    pub mn: String,
    /// Flag bits as a decimal number (protocol version and "answer required"); optional.
    pub flag: Option<u8>,
    /// Fields other than the above (e.g. `PNUM`, `PNO` of split packets), in order, before `CP`.
    pub extra: Vec<(String, String)>,
    /// `CP`: groups separated by `;`, each a list of `key=value` pairs separated by `,`.
    pub cp: Vec<Vec<CpPair>>,
}

impl Packet {
    /// The first value of `key` in `CP` (`"a21026-Rtd"`, `"DataTime"`, ...).
    pub fn cp_get(&self, key: &str) -> Option<&str> {
        self.cp
            .iter()
            .flatten()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The data segment text (`QN=...;...;CP=&&...&&`), checking that no key or value contains a
    /// separator (`;` `,` `=` `&`), which would make the segment ambiguous.
    pub fn data_segment(&self) -> Result<String, Hj212Error> {
        let mut s = String::new();
        let mut field = |k: &str, v: &str| -> Result<(), Hj212Error> {
            check_token(k, k)?;
            check_token(k, v)?;
            s.push_str(k);
            s.push('=');
            s.push_str(v);
            s.push(';');
            Ok(())
        };
        if let Some(qn) = &self.qn {
            field("QN", qn)?;
        }
        field("ST", &self.st)?;
        field("CN", &self.cn)?;
        field("PW", &self.pw)?;
        field("MN", &self.mn)?;
        if let Some(flag) = self.flag {
            field("Flag", &flag.to_string())?;
        }
        for (k, v) in &self.extra {
            field(k, v)?;
        }
        s.push_str("CP=&&");
        for (gi, group) in self.cp.iter().enumerate() {
            if gi > 0 {
                s.push(';');
            }
            for (pi, (k, v)) in group.iter().enumerate() {
                check_token(k, k)?;
                check_token(k, v)?;
                if pi > 0 {
                    s.push(',');
                }
                s.push_str(k);
                s.push('=');
                s.push_str(v);
            }
        }
        s.push_str("&&");
        Ok(s)
    }

    /// The whole frame: `##` + length + data segment + CRC + CRLF.
    pub fn encode(&self) -> Result<String, Hj212Error> {
        encode_frame(&self.data_segment()?)
    }

    /// Parse a data segment (the text between the length field and the CRC).
    pub fn parse(segment: &str) -> Result<Packet, Hj212Error> {
        let cp_at = segment
            .find("CP=&&")
            .ok_or(Hj212Error::MissingField("CP"))?;
        let (head, cp) = segment.split_at(cp_at);
        let body = cp["CP=&&".len()..]
            .strip_suffix("&&")
            .ok_or(Hj212Error::BadCp)?;

        let mut p = Packet::default();
        let (mut st, mut cn, mut pw, mut mn) = (None, None, None, None);
        for item in head.split(';').filter(|f| !f.is_empty()) {
            let (k, v) = item.split_once('=').ok_or_else(|| Hj212Error::BadField {
                found: item.to_string(),
            })?;
            let slot = match k {
                "QN" => &mut p.qn,
                "ST" => &mut st,
                "CN" => &mut cn,
                "PW" => &mut pw,
                "MN" => &mut mn,
                "Flag" => {
                    if p.flag.is_some() {
                        return Err(Hj212Error::DuplicateField(k.to_string()));
                    }
                    p.flag = Some(v.parse().map_err(|_| Hj212Error::BadValue {
                        field: k.to_string(),
                        value: v.to_string(),
                        why: "not a number 0..=255",
                    })?);
                    continue;
                }
                _ => {
                    if p.extra.iter().any(|(ek, _)| ek == k) {
                        return Err(Hj212Error::DuplicateField(k.to_string()));
                    }
                    p.extra.push((k.to_string(), v.to_string()));
                    continue;
                }
            };
            if slot.is_some() {
                return Err(Hj212Error::DuplicateField(k.to_string()));
            }
            *slot = Some(v.to_string());
        }
        p.st = st.ok_or(Hj212Error::MissingField("ST"))?;
        p.cn = cn.ok_or(Hj212Error::MissingField("CN"))?;
        p.pw = pw.ok_or(Hj212Error::MissingField("PW"))?;
        p.mn = mn.ok_or(Hj212Error::MissingField("MN"))?;

        for group in body.split(';').filter(|g| !g.is_empty()) {
            let mut pairs = Vec::new();
            for pair in group.split(',').filter(|f| !f.is_empty()) {
                let (k, v) = pair.split_once('=').ok_or_else(|| Hj212Error::BadField {
                    found: pair.to_string(),
                })?;
                pairs.push((k.to_string(), v.to_string()));
            }
            p.cp.push(pairs);
        }
        Ok(p)
    }

    /// Decode a whole frame (see [`decode_frame`]) and parse its data segment.
    pub fn decode(frame: &str) -> Result<Packet, Hj212Error> {
        Packet::parse(decode_frame(frame)?)
    }
}

impl fmt::Display for Packet {
    /// The data segment, or the error if the packet cannot be written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.data_segment() {
            Ok(s) => f.write_str(&s),
            Err(e) => write!(f, "<{e}>"),
        }
    }
}

fn check_token(field: &str, v: &str) -> Result<(), Hj212Error> {
    if let Some(c) = v
        .chars()
        .find(|c| matches!(c, ';' | ',' | '=' | '&' | '\r' | '\n'))
    {
        return Err(Hj212Error::BadValue {
            field: field.to_string(),
            value: v.to_string(),
            why: match c {
                ';' | ',' | '=' | '&' => "contains an HJ 212 separator (; , = &)",
                _ => "contains a line break",
            },
        });
    }
    Ok(())
}

/// Wrap a data segment in a frame: `##` + 4-digit length + segment + 4 upper-case hex CRC + CRLF.
pub fn encode_frame(segment: &str) -> Result<String, Hj212Error> {
    let len = segment.len();
    if len > MAX_DATA_LEN {
        return Err(Hj212Error::TooLong { len });
    }
    Ok(format!(
        "##{len:04}{segment}{:04X}\r\n",
        crc(segment.as_bytes())
    ))
}

/// Four hex digits (either case), or None.
fn parse_crc(field: &str) -> Option<u16> {
    if field.len() == 4 && field.bytes().all(|b| b.is_ascii_hexdigit()) {
        u16::from_str_radix(field, 16).ok()
    } else {
        None
    }
}

/// Check a frame's header, length and CRC and return its data segment. The trailing CRLF may be
/// missing (a line reader may have stripped it); anything else after the CRC is an error.
pub fn decode_frame(frame: &str) -> Result<&str, Hj212Error> {
    let rest = frame.strip_prefix("##").ok_or(Hj212Error::MissingHeader)?;
    if rest.len() < 4 {
        return Err(Hj212Error::TooShort { len: frame.len() });
    }
    let len_field = rest.get(..4).ok_or_else(|| Hj212Error::BadLengthField {
        found: rest.chars().take(4).collect(),
    })?;
    if !len_field.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Hj212Error::BadLengthField {
            found: len_field.to_string(),
        });
    }
    let declared: usize = len_field.parse().map_err(|_| Hj212Error::BadLengthField {
        found: len_field.to_string(),
    })?;
    let body = &rest[4..];
    // body = segment + 4 CRC characters + CRLF (or nothing, if a line reader stripped it).
    let stripped = body
        .strip_suffix("\r\n")
        .or_else(|| body.strip_suffix('\n'))
        .unwrap_or(body);
    let mismatch = Hj212Error::LengthMismatch {
        declared,
        actual: stripped.len().saturating_sub(4),
    };
    let crc_end = declared + 4;
    let (Some(segment), Some(crc_field), Some(after)) = (
        body.get(..declared),
        body.get(declared..crc_end),
        body.get(crc_end..),
    ) else {
        return Err(mismatch);
    };
    let found = parse_crc(crc_field);
    if !matches!(after, "" | "\r\n" | "\n") {
        // Junk after a valid CRC is a bad terminator; otherwise the length field is wrong.
        return Err(match found {
            Some(f) if f == crc(segment.as_bytes()) => Hj212Error::BadTerminator {
                found: after.chars().take(16).collect(),
            },
            _ => mismatch,
        });
    }
    let found = found.ok_or_else(|| Hj212Error::BadCrcField {
        found: crc_field.to_string(),
    })?;
    let expected = crc(segment.as_bytes());
    if expected != found {
        return Err(Hj212Error::BadCrc { expected, found });
    }
    Ok(segment)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE_7: &str = "##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80\r\n";

    #[test]
    fn crc_of_example_7_is_1c80() {
        let seg = &EXAMPLE_7[6..EXAMPLE_7.len() - 6];
        assert_eq!(seg.len(), 101);
        assert_eq!(crc(seg.as_bytes()), 0x1C80);
    }

    #[test]
    fn crc_is_not_crc16_modbus() {
        // CRC-16/MODBUS of "123456789" is 0x4B37.
        assert_ne!(crc(b"123456789"), 0x4B37);
        assert_eq!(crc(b""), 0xFFFF);
    }
}
