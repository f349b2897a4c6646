//! Data packets of HJ 212-2017 (CN 2011 real-time, 2051 minute, 2061 hour, 2031 day), the header
//! `Flag`, times (QN, DataTime, BeginTime/EndTime) and the splitting of long packets (PNUM/PNO).
//!
//! Times are local (the plant's timezone; China Standard Time +08:00 by default): QN is
//! `yyyyMMddHHmmsszzz` (to the millisecond), DataTime `yyyyMMddHHmmss`, the start of the interval.
//! `Flag` is a bit field: bits 7..2 the protocol version (000001 = HJ 212-2017), bit 1 `D` (the packet
//! is split, PNUM/PNO follow), bit 0 `A` (the receiver must answer, CN 9014 for data).

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone};

use super::{CpPair, Hj212Error, Packet};

/// The protocol version in `Flag` bits 7..2 for HJ 212-2017.
pub const VERSION_2017: u8 = 1;
/// The protocol version in `Flag` bits 7..2 for HJ 212-2025 (000010).
pub const VERSION_2025: u8 = 2;
/// Longest data segment of one packet in HJ 212-2017 (bytes); longer data is split (PNUM/PNO).
pub const MAX_SEGMENT_2017: usize = 1024;
/// HJ 212-2025: the CP of one packet holds at most this many characters (and a segment at most
/// [`MAX_SEGMENT_2017`] bytes); longer data is split.
pub const MAX_CP_2025: usize = 950;

/// `Flag` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag {
    /// Protocol version, 0..=63 (1: HJ 212-2017).
    pub version: u8,
    /// `D`: the packet is one of several (PNUM/PNO).
    pub split: bool,
    /// `A`: the receiver must answer.
    pub ack: bool,
}

impl Flag {
    /// HJ 212-2017, not split.
    pub fn v2017(ack: bool) -> Flag {
        Flag {
            version: VERSION_2017,
            split: false,
            ack,
        }
    }

    /// HJ 212-2025, not split (8; 9 with the acknowledge bit).
    pub fn v2025(ack: bool) -> Flag {
        Flag {
            version: VERSION_2025,
            split: false,
            ack,
        }
    }

    /// The version's flag: `version` 2025, else 2017.
    pub fn of(version: u16, ack: bool) -> Flag {
        if version == 2025 {
            Flag::v2025(ack)
        } else {
            Flag::v2017(ack)
        }
    }

    pub fn to_u8(self) -> u8 {
        ((self.version & 0x3F) << 2) | (u8::from(self.split) << 1) | u8::from(self.ack)
    }

    pub fn from_u8(v: u8) -> Flag {
        Flag {
            version: v >> 2,
            split: v & 2 != 0,
            ack: v & 1 != 0,
        }
    }
}

/// The data commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataCn {
    /// 2011: real-time data.
    Realtime,
    /// 2051: minute data (every N minutes).
    Minute,
    /// 2061: hourly data.
    Hour,
    /// 2031: daily data.
    Day,
}

impl DataCn {
    pub const ALL: [DataCn; 4] = [DataCn::Realtime, DataCn::Minute, DataCn::Hour, DataCn::Day];

    pub fn code(self) -> &'static str {
        match self {
            DataCn::Realtime => "2011",
            DataCn::Minute => "2051",
            DataCn::Hour => "2061",
            DataCn::Day => "2031",
        }
    }

    pub fn parse(cn: &str) -> Option<DataCn> {
        DataCn::ALL.into_iter().find(|c| c.code() == cn)
    }
}

/// A value's data flag (HJ 212-2017 -Flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFlag {
    /// N: normal.
    Normal,
    /// F: stopped.
    Stopped,
    /// M: maintenance.
    Maintenance,
    /// S: set by hand.
    Manual,
    /// D: device fault.
    Fault,
    /// C: calibration.
    Calibration,
    /// T: over range.
    OverRange,
    /// B: communication fault.
    CommError,
}

impl DataFlag {
    pub fn as_char(self) -> char {
        match self {
            DataFlag::Normal => 'N',
            DataFlag::Stopped => 'F',
            DataFlag::Maintenance => 'M',
            DataFlag::Manual => 'S',
            DataFlag::Fault => 'D',
            DataFlag::Calibration => 'C',
            DataFlag::OverRange => 'T',
            DataFlag::CommError => 'B',
        }
    }

    pub fn parse(s: &str) -> Option<DataFlag> {
        Some(match s {
            "N" => DataFlag::Normal,
            "F" => DataFlag::Stopped,
            "M" => DataFlag::Maintenance,
            "S" => DataFlag::Manual,
            "D" => DataFlag::Fault,
            "C" => DataFlag::Calibration,
            "T" => DataFlag::OverRange,
            "B" => DataFlag::CommError,
            _ => return None,
        })
    }
}

/// One factor's values in one packet; absent values are left out of CP.
#[derive(Debug, Clone, PartialEq)]
pub struct FactorValues {
    /// The pollutant code (`w01018`).
    pub code: String,
    pub rtd: Option<f64>,
    pub min: Option<f64>,
    pub avg: Option<f64>,
    pub max: Option<f64>,
    /// O2-corrected average (折算浓度).
    pub zs_avg: Option<f64>,
    /// O2-corrected real-time value (CN 2011 `-ZsRtd`).
    pub zs_rtd: Option<f64>,
    /// Load (kg) or volume of the interval.
    pub cou: Option<f64>,
    pub flag: DataFlag,
}

/// A value as CP writes it: at most 4 decimals, no trailing zeros, no exponent.
pub fn fmt_value(v: f64) -> String {
    if !v.is_finite() {
        return "0".to_string();
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" || s.is_empty() {
        "0".to_string()
    } else {
        s.to_string()
    }
}

impl FactorValues {
    /// The CP group of this factor: `code-Rtd`, `-ZsRtd`, `-Min`, `-Avg`, `-Max`, `-ZsAvg`, `-Cou`, `-Flag`.
    pub fn cp_group(&self) -> Vec<CpPair> {
        let mut g = Vec::new();
        for (suffix, v) in [
            ("Rtd", self.rtd),
            ("ZsRtd", self.zs_rtd),
            ("Min", self.min),
            ("Avg", self.avg),
            ("Max", self.max),
            ("ZsAvg", self.zs_avg),
            ("Cou", self.cou),
        ] {
            if let Some(v) = v {
                g.push((format!("{}-{suffix}", self.code), fmt_value(v)));
            }
        }
        g.push((
            format!("{}-Flag", self.code),
            self.flag.as_char().to_string(),
        ));
        g
    }
}

/// The fixed part of every packet a data logger sends: ST, PW, MN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Station {
    /// System code, two digits (31 flue gas, 32 waste water).
    pub st: String,
    pub pw: String,
    pub mn: String,
}

/// `yyyyMMddHHmmsszzz` of a UTC instant in `tz`.
pub fn qn(utc_ms: i64, tz: FixedOffset) -> String {
    match local(utc_ms, tz) {
        Some(t) => t.format("%Y%m%d%H%M%S%3f").to_string(),
        None => "00000000000000000".to_string(),
    }
}

/// `yyyyMMddHHmmss` of a UTC instant in `tz`.
pub fn data_time(utc_ms: i64, tz: FixedOffset) -> String {
    match local(utc_ms, tz) {
        Some(t) => t.format("%Y%m%d%H%M%S").to_string(),
        None => "00000000000000".to_string(),
    }
}

fn local(utc_ms: i64, tz: FixedOffset) -> Option<DateTime<FixedOffset>> {
    DateTime::from_timestamp_millis(utc_ms).map(|t| t.with_timezone(&tz))
}

/// A local `yyyyMMddHHmmss` (DataTime, BeginTime, EndTime) as a UTC instant in ms.
pub fn parse_time(s: &str, tz: FixedOffset) -> Option<i64> {
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let naive = NaiveDateTime::parse_from_str(s, "%Y%m%d%H%M%S").ok()?;
    tz.from_local_datetime(&naive)
        .single()
        .map(|t| t.timestamp_millis())
}

/// A data packet (CN 2011/2051/2061/2031): `DataTime` then one group per factor.
pub fn data_packet(
    station: &Station,
    cn: DataCn,
    qn: &str,
    flag: Flag,
    data_time: &str,
    values: &[FactorValues],
) -> Packet {
    let mut cp = vec![vec![("DataTime".to_string(), data_time.to_string())]];
    cp.extend(values.iter().map(FactorValues::cp_group));
    Packet {
        qn: Some(qn.to_string()),
        st: station.st.clone(),
        cn: cn.code().to_string(),
        pw: station.pw.clone(),
        mn: station.mn.clone(),
        flag: Some(flag.to_u8()),
        extra: Vec::new(),
        cp,
    }
}

/// Split `p` so that no data segment is longer than `max_segment` bytes: each part keeps the header
/// (same QN), gets `PNUM` (parts) and `PNO` (1-based) and the `D` bit, repeats the first CP group
/// (`DataTime`) and carries as many of the other groups as fit. A packet that fits is returned as is.
/// A single group too long for any part is an error.
pub fn split(p: &Packet, max_segment: usize) -> Result<Vec<Packet>, Hj212Error> {
    split_limits(p, max_segment, usize::MAX)
}

/// Split as the protocol `version` says: 2017 segments of at most 1024 bytes; 2025 also a CP
/// (the text between `CP=&&` and `&&`) of at most [`MAX_CP_2025`] characters.
pub fn split_for(p: &Packet, version: u16) -> Result<Vec<Packet>, Hj212Error> {
    let max_cp = if version == 2025 {
        MAX_CP_2025
    } else {
        usize::MAX
    };
    split_limits(p, MAX_SEGMENT_2017, max_cp)
}

/// The length of the data region (between `CP=&&` and the closing `&&`) of a segment.
pub fn cp_len(segment: &str) -> usize {
    segment
        .find("CP=&&")
        .map_or(0, |at| segment.len().saturating_sub(at + 5 + 2))
}

/// [`split`] with a bound on the data region's length too.
pub fn split_limits(
    p: &Packet,
    max_segment: usize,
    max_cp: usize,
) -> Result<Vec<Packet>, Hj212Error> {
    let fits = |q: &Packet| -> Result<bool, Hj212Error> {
        let seg = q.data_segment()?;
        Ok(seg.len() <= max_segment && cp_len(&seg) <= max_cp)
    };
    if fits(p)? {
        return Ok(vec![p.clone()]);
    }
    let (lead, groups) = match p.cp.split_first() {
        Some((first, rest)) if first.iter().any(|(k, _)| k == "DataTime") => {
            (Some(first.clone()), rest)
        }
        _ => (None, p.cp.as_slice()),
    };
    let mut flag = Flag::from_u8(p.flag.unwrap_or(0));
    flag.split = true;
    let part = |cp: Vec<Vec<CpPair>>, pnum: usize, pno: usize| {
        let mut q = p.clone();
        q.flag = Some(flag.to_u8());
        q.extra.retain(|(k, _)| k != "PNUM" && k != "PNO");
        q.extra.push(("PNUM".to_string(), pnum.to_string()));
        q.extra.push(("PNO".to_string(), pno.to_string()));
        q.cp = cp;
        q
    };
    // Pack with the widest PNUM/PNO the result may need (4 digits each), then number the parts.
    let mut parts: Vec<Vec<Vec<CpPair>>> = Vec::new();
    let mut current: Vec<Vec<CpPair>> = lead.iter().cloned().collect();
    let base = lead.is_some() as usize;
    for g in groups {
        let mut trial = current.clone();
        trial.push(g.clone());
        if fits(&part(trial.clone(), 9999, 9999))? {
            current = trial;
            continue;
        }
        if current.len() == base {
            return Err(Hj212Error::TooLong {
                len: part(trial, 9999, 9999).data_segment()?.len(),
            });
        }
        parts.push(std::mem::replace(
            &mut current,
            lead.iter().cloned().chain([g.clone()]).collect(),
        ));
        if !fits(&part(current.clone(), 9999, 9999))? {
            return Err(Hj212Error::TooLong {
                len: part(current, 9999, 9999).data_segment()?.len(),
            });
        }
    }
    if current.len() > base || parts.is_empty() {
        parts.push(current);
    }
    let n = parts.len();
    Ok(parts
        .into_iter()
        .enumerate()
        .map(|(i, cp)| part(cp, n, i + 1))
        .collect())
}

/// `PNUM` and `PNO` of a packet, when it is a part.
pub fn part_of(p: &Packet) -> Option<(usize, usize)> {
    let get = |k: &str| {
        p.extra
            .iter()
            .find(|(ek, _)| ek == k)
            .and_then(|(_, v)| v.parse().ok())
    };
    Some((get("PNUM")?, get("PNO")?))
}
