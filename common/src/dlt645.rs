//! DL/T 645 (2007 and 1997) without I/O (DOMAIN.md): read requests and replies built and checked
//! here, bytes moved by the agent's link and the simulator. `68 A0..A5 68 C L DATA CS 16`, every
//! DATA byte +33H on the wire, address and values low byte first, values in BCD.
//!
//! Which data identifiers the agent knows, with their length, decimals and sign, is the table in
//! `spec`: a point names a DI from it, and `check` refuses the others, since a value read with the
//! wrong decimals would be a wrong figure rather than a missing one.

use heapless::Vec as HVec;

use crate::frame68::{self, bcd_encode, bcd_value, BcdError, RawFrame};

/// Address bytes.
pub const ADDRESS_LEN: usize = 6;
/// The wildcard address of the read-address command (a bus with one meter).
pub const WILDCARD: [u8; ADDRESS_LEN] = [0xAA; ADDRESS_LEN];
/// The most wake-up bytes the config may ask for.
pub const MAX_PREAMBLE: usize = 8;
/// A request: preamble + header + DI (+ a follow-up's SEQ) + CS + 16H.
pub type Request = HVec<u8, { MAX_PREAMBLE + 10 + 4 + 1 + 2 }>;
/// A reply as a meter sends it (simulator, tests).
pub type ReplyFrame = HVec<u8, { MAX_PREAMBLE + 12 + frame68::MAX_DATA }>;
/// The most data bytes (DI included) a 2007 frame carries; a longer answer comes in several
/// frames, the rest read with 12H.
pub const MAX_FRAME_DATA: usize = 200;
/// The most frames one read may take (a first reply and its follow-ups): a meter that always says
/// "more" cannot hold the bus.
pub const MAX_FRAMES: usize = 16;
/// The most value bytes one read gathers over its frames (a block of 64 four-byte tariffs is 256).
pub const MAX_VALUE: usize = 1024;
/// A read's value bytes, gathered over its frames.
pub type Value = HVec<u8, MAX_VALUE>;
/// A reply's data (DI included), +33H taken off.
pub type Data = HVec<u8, { frame68::MAX_DATA }>;

/// Which edition of the standard a bus speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Version {
    V2007,
    V1997,
}

impl Version {
    /// Read data: 2007 11H, 1997 01H.
    pub fn read_code(self) -> u8 {
        match self {
            Version::V2007 => 0x11,
            Version::V1997 => 0x01,
        }
    }

    /// Read follow-up data ("more frames"): 2007 12H (DI + SEQ), 1997 02H (DI).
    pub fn follow_code(self) -> u8 {
        match self {
            Version::V2007 => 0x12,
            Version::V1997 => 0x02,
        }
    }

    /// Bytes of a data identifier: 2007 four, 1997 two.
    pub fn di_len(self) -> usize {
        match self {
            Version::V2007 => 4,
            Version::V1997 => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Version::V2007 => "dlt645-2007",
            Version::V1997 => "dlt645-1997",
        }
    }

    /// A DI as the config writes it (2007: 8 hex digits "00010000"; 1997: 4, "9010").
    pub fn parse_di(self, s: &str) -> Option<u32> {
        if s.len() != 2 * self.di_len() || !s.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(s, 16).ok()
    }

    /// A DI written as the config writes it.
    pub fn format_di(self, di: u32) -> String {
        match self {
            Version::V2007 => format!("{di:08X}"),
            Version::V1997 => format!("{di:04X}"),
        }
    }
}

/// What a data identifier's value looks like on the wire and what it means.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Spec {
    /// Value bytes after the DI.
    pub len: u8,
    pub decimals: u8,
    /// Top bit of the highest byte is the sign.
    pub signed: bool,
    pub unit: &'static str,
    /// A totalizer (energy) rather than an instantaneous value.
    pub counter: bool,
    /// What it is, for `check` and the README.
    pub what: &'static str,
}

const fn spec(len: u8, decimals: u8, signed: bool, unit: &'static str, what: &'static str) -> Spec {
    Spec {
        len,
        decimals,
        signed,
        unit,
        counter: false,
        what,
    }
}

const fn energy(signed: bool, unit: &'static str, what: &'static str) -> Spec {
    Spec {
        len: 4,
        decimals: 2,
        signed,
        unit,
        counter: true,
        what,
    }
}

/// The value format of a data identifier the agent knows, or None.
pub fn spec_of(version: Version, di: u32) -> Option<Spec> {
    match version {
        Version::V2007 => spec_2007(di),
        Version::V1997 => spec_1997(di),
    }
}

fn spec_2007(di: u32) -> Option<Spec> {
    let [d3, d2, d1, d0] = di.to_be_bytes();
    match (d3, d2, d1, d0) {
        // Energy: DI2 the quantity, DI1 total (00) or tariff 1..63, DI0 now (00) or the previous
        // 1..12 settlement days. XXXXXX.XX; the combined ones carry a sign.
        (0x00, 0x00..=0x0A, 0x00..=0x3F, 0x00..=0x0C) => Some(match d2 {
            0x00 => energy(true, "kWh", "combined active energy"),
            0x01 => energy(false, "kWh", "forward active energy"),
            0x02 => energy(false, "kWh", "reverse active energy"),
            0x03 => energy(true, "kvarh", "combined reactive energy 1"),
            0x04 => energy(true, "kvarh", "combined reactive energy 2"),
            0x05..=0x08 => energy(false, "kvarh", "quadrant reactive energy"),
            0x09 => energy(false, "kVAh", "forward apparent energy"),
            _ => energy(false, "kVAh", "reverse apparent energy"),
        }),
        (0x02, 0x01, 0x01..=0x03, 0x00) => Some(spec(2, 1, false, "V", "phase voltage")),
        (0x02, 0x02, 0x01..=0x03, 0x00) => Some(spec(3, 3, true, "A", "phase current")),
        (0x02, 0x03, 0x00..=0x03, 0x00) => Some(spec(3, 4, true, "kW", "active power")),
        (0x02, 0x04, 0x00..=0x03, 0x00) => Some(spec(3, 4, true, "kvar", "reactive power")),
        (0x02, 0x05, 0x00..=0x03, 0x00) => Some(spec(3, 4, true, "kVA", "apparent power")),
        (0x02, 0x06, 0x00..=0x03, 0x00) => Some(spec(2, 3, true, "", "power factor")),
        (0x02, 0x80, 0x00, 0x01) => Some(spec(3, 3, true, "A", "neutral current")),
        (0x02, 0x80, 0x00, 0x02) => Some(spec(2, 2, false, "Hz", "grid frequency")),
        _ => None,
    }
}

fn spec_1997(di: u32) -> Option<Spec> {
    let [_, _, hi, lo] = di.to_be_bytes();
    match (hi, lo) {
        (0x90, 0x10..=0x14) => Some(energy(false, "kWh", "forward active energy")),
        (0x90, 0x20..=0x24) => Some(energy(false, "kWh", "reverse active energy")),
        (0x91, 0x10..=0x14) => Some(energy(false, "kvarh", "forward reactive energy")),
        (0x91, 0x20..=0x24) => Some(energy(false, "kvarh", "reverse reactive energy")),
        (0xB6, 0x11..=0x13) => Some(spec(2, 0, false, "V", "phase voltage")),
        (0xB6, 0x21..=0x23) => Some(spec(2, 2, false, "A", "phase current")),
        (0xB6, 0x30..=0x33) => Some(spec(3, 4, false, "kW", "active power")),
        (0xB6, 0x40..=0x43) => Some(spec(2, 2, false, "kvar", "reactive power")),
        (0xB6, 0x50..=0x53) => Some(spec(2, 3, false, "", "power factor")),
        _ => None,
    }
}

/// The DI bytes as sent: DI0 first.
fn di_bytes(version: Version, di: u32) -> HVec<u8, 4> {
    let all = di.to_le_bytes();
    let mut out = HVec::new();
    let _ = out.extend_from_slice(&all[..version.di_len()]);
    out
}

/// `[preamble] 68 A 68 C L DATA+33H CS 16`.
fn build<const N: usize>(
    preamble: &[u8],
    address: &[u8; ADDRESS_LEN],
    control: u8,
    data: &[u8],
) -> HVec<u8, N> {
    let mut f = HVec::new();
    let _ = f.extend_from_slice(&preamble[..preamble.len().min(MAX_PREAMBLE)]);
    let start = f.len();
    let _ = f.push(0x68);
    let _ = f.extend_from_slice(address);
    let _ = f.push(0x68);
    let _ = f.push(control);
    let _ = f.push(data.len() as u8);
    for b in data {
        let _ = f.push(b.wrapping_add(0x33));
    }
    frame68::finish(&mut f, start);
    f
}

/// A read of one data identifier (2007 11H, 1997 01H).
pub fn encode_read(version: Version, preamble: &[u8], address: &[u8; 6], di: u32) -> Request {
    build(
        preamble,
        address,
        version.read_code(),
        &di_bytes(version, di),
    )
}

/// The read of the next frame of an answer that said "more frames" (2007 12H with the frame's
/// sequence number SEQ, 1 for the first follow-up; 1997 02H with the DI).
pub fn encode_read_follow(
    version: Version,
    preamble: &[u8],
    address: &[u8; ADDRESS_LEN],
    di: u32,
    seq: u8,
) -> Request {
    let mut data: HVec<u8, 5> = HVec::new();
    let _ = data.extend_from_slice(&di_bytes(version, di));
    if version == Version::V2007 {
        let _ = data.push(seq);
    }
    build(preamble, address, version.follow_code(), &data)
}

/// The data block holding `di` (2007: DI1 = FFH) and the item's place in the block's reply, or
/// None when the standard has no block for it. Energy blocks start with the total (DI1 00) and
/// go on with the tariffs; phase blocks of voltage and current with phase A (DI1 01), those of
/// power and power factor with the total (DI1 00). 1997's blocks (DI ending in F) are left out
/// until checked against a meter.
pub fn block_of(version: Version, di: u32) -> Option<(u32, usize)> {
    if version != Version::V2007 {
        return None;
    }
    let [d3, d2, d1, d0] = di.to_be_bytes();
    let index = match (d3, d2, d1, d0) {
        (0x00, 0x00..=0x0A, 0x00..=0x3F, 0x00..=0x0C) => usize::from(d1),
        (0x02, 0x01 | 0x02, 0x01..=0x03, 0x00) => usize::from(d1) - 1,
        (0x02, 0x03..=0x06, 0x00..=0x03, 0x00) => usize::from(d1),
        _ => return None,
    };
    Some((u32::from_be_bytes([d3, d2, 0xFF, d0]), index))
}

/// Whether the answer is whole or the next frame is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Read the next frame: send `encode_read_follow` with this SEQ.
    More(u8),
    Done,
}

/// One read's answer gathered over its frames, without I/O: feed each reply frame, send the
/// follow-up it asks for, until `Done`. Bounded: at most `MAX_FRAMES` frames and `MAX_VALUE`
/// bytes, so a meter that never stops saying "more" gets an error, not the bus.
#[derive(Debug, Clone)]
pub struct Collect {
    version: Version,
    address: [u8; ADDRESS_LEN],
    di: u32,
    value: Value,
    frames: usize,
}

impl Collect {
    pub fn new(version: Version, address: [u8; ADDRESS_LEN], di: u32) -> Collect {
        Collect {
            version,
            address,
            di,
            value: Value::new(),
            frames: 0,
        }
    }

    /// Takes the next reply frame: Ok(More(seq)) to read the next one, Ok(Done) when the value is
    /// whole, Err when the frame does not answer (exception, other address, DI or SEQ).
    pub fn feed(&mut self, f: &Frame) -> Result<Progress, ReplyError> {
        let first = self.frames == 0;
        let code = if first {
            self.version.read_code()
        } else {
            self.version.follow_code()
        };
        let data = check_frame(self.version, &self.address, self.di, code, f)?;
        let data = if first || self.version == Version::V1997 {
            data
        } else {
            // 2007 follow-up replies end with the SEQ asked.
            let want = self.frames as u8;
            match data.split_last() {
                Some((&seq, rest)) if seq == want => rest,
                Some((&seq, _)) => return Err(ReplyError::WrongSeq { got: seq, want }),
                None => return Err(ReplyError::Short { got: 0, want: 1 }),
            }
        };
        if self.value.extend_from_slice(data).is_err() {
            return Err(ReplyError::TooLong(MAX_VALUE));
        }
        self.frames += 1;
        if !f.more_follows() {
            return Ok(Progress::Done);
        }
        if self.frames >= MAX_FRAMES {
            return Err(ReplyError::TooManyFrames(MAX_FRAMES));
        }
        Ok(Progress::More(self.frames as u8))
    }

    /// The next frame's request (after `More(seq)`).
    pub fn follow_request(&self, preamble: &[u8], seq: u8) -> Request {
        encode_read_follow(self.version, preamble, &self.address, self.di, seq)
    }

    /// The value bytes gathered so far (whole after `Done`).
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// Frames taken.
    pub fn frames(&self) -> usize {
        self.frames
    }
}

/// The read-address command 13H to the wildcard address: the one meter on the bus answers with
/// its address.
pub fn encode_read_address(preamble: &[u8]) -> Request {
    build(preamble, &WILDCARD, 0x13, &[])
}

/// A frame taken apart (from the splitter): data with +33H taken off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub address: [u8; ADDRESS_LEN],
    pub control: u8,
    pub data: Data,
}

impl Frame {
    /// From a checked frame of the DL/T 645 layout; None when it is not one (too short).
    pub fn parse(raw: &[u8]) -> Option<Frame> {
        let len = usize::from(*raw.get(9)?);
        let body = raw.get(10..10 + len)?;
        let mut address = [0u8; ADDRESS_LEN];
        address.copy_from_slice(raw.get(1..7)?);
        let mut data = Data::new();
        for b in body {
            let _ = data.push(b.wrapping_sub(0x33));
        }
        Some(Frame {
            address,
            control: raw[8],
            data,
        })
    }

    /// A reply (bit 7).
    pub fn is_reply(&self) -> bool {
        self.control & 0x80 != 0
    }

    /// An exception reply (bit 6): one error byte follows.
    pub fn is_exception(&self) -> bool {
        self.control & 0x40 != 0
    }

    /// "More frames" (bit 5): the rest is read with 12H.
    pub fn more_follows(&self) -> bool {
        self.control & 0x20 != 0
    }

    /// The function code (bits 0..4).
    pub fn function(&self) -> u8 {
        self.control & 0x1F
    }
}

/// A reply's error byte, named bit by bit as the edition defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorByte {
    pub version: Version,
    pub byte: u8,
}

impl std::fmt::Display for ErrorByte {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: [&str; 8] = match self.version {
            Version::V2007 => [
                "other error",
                "no data requested",
                "password wrong or not authorised",
                "baud rate cannot be changed",
                "too many yearly time zones",
                "too many daily time slots",
                "too many tariffs",
                "reserved bit 7",
            ],
            Version::V1997 => [
                "illegal data",
                "data identifier wrong",
                "password wrong",
                "reserved bit 3",
                "too many yearly time zones",
                "too many daily time slots",
                "too many tariffs",
                "reserved bit 7",
            ],
        };
        write!(f, "error byte {:02X}H", self.byte)?;
        let mut sep = " (";
        for (bit, name) in names.iter().enumerate() {
            if self.byte & (1 << bit) != 0 {
                write!(f, "{sep}{name}")?;
                sep = ", ";
            }
        }
        if sep == ", " {
            write!(f, ")")?;
        }
        Ok(())
    }
}

/// Why a frame is not the answer to a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("not a reply (control {0:02X}H)")]
    NotReply(u8),
    #[error("reply from address {got}, asked {want}")]
    WrongAddress { got: String, want: String },
    #[error("reply to function {got:02X}H, asked {want:02X}H")]
    WrongFunction { got: u8, want: u8 },
    #[error("reply for data identifier {got}, asked {want}")]
    WrongDi { got: String, want: String },
    #[error("exception reply: {0}")]
    Exception(ErrorByte),
    #[error("reply data of {got} bytes, the value needs {want}")]
    Short { got: usize, want: usize },
    #[error("follow-up frame number {got}, asked {want}")]
    WrongSeq { got: u8, want: u8 },
    #[error("the answer runs past {0} bytes")]
    TooLong(usize),
    #[error("the meter still says \"more frames\" after {0} frames")]
    TooManyFrames(usize),
}

impl ReplyError {
    /// An answer from the device that says no (`device_error`), rather than a transport fault.
    pub fn is_device_error(&self) -> bool {
        matches!(self, ReplyError::Exception(_))
    }
}

/// The data after the DI of a reply frame with function `code` to a read of `di` at `address`.
fn check_frame<'f>(
    version: Version,
    address: &[u8; ADDRESS_LEN],
    di: u32,
    code: u8,
    f: &'f Frame,
) -> Result<&'f [u8], ReplyError> {
    if !f.is_reply() {
        return Err(ReplyError::NotReply(f.control));
    }
    if f.address != *address {
        return Err(ReplyError::WrongAddress {
            got: frame68::format_address(&f.address),
            want: frame68::format_address(address),
        });
    }
    if f.function() != code {
        return Err(ReplyError::WrongFunction {
            got: f.function(),
            want: code,
        });
    }
    if f.is_exception() {
        return Err(ReplyError::Exception(ErrorByte {
            version,
            byte: f.data.first().copied().unwrap_or(0),
        }));
    }
    let n = version.di_len();
    let want_di = di_bytes(version, di);
    if f.data.get(..n) != Some(&want_di[..]) {
        let mut got = [0u8; 4];
        let have = &f.data[..f.data.len().min(n)];
        got[..have.len()].copy_from_slice(have);
        return Err(ReplyError::WrongDi {
            got: version.format_di(u32::from_le_bytes(got)),
            want: version.format_di(di),
        });
    }
    Ok(&f.data[n..])
}

/// The value bytes of a one-frame reply to a read of `di` at `address` (a reply saying "more
/// frames" is read with `Collect`; here its first frame is taken as it is).
pub fn check_read_reply<'f>(
    version: Version,
    address: &[u8; ADDRESS_LEN],
    di: u32,
    spec: &Spec,
    f: &'f Frame,
) -> Result<&'f [u8], ReplyError> {
    let value = check_frame(version, address, di, version.read_code(), f)?;
    let want = usize::from(spec.len);
    if value.len() < want {
        return Err(ReplyError::Short {
            got: value.len(),
            want,
        });
    }
    Ok(&value[..want])
}

/// The address a meter gave in reply to the read-address command.
pub fn check_address_reply(f: &Frame) -> Result<[u8; ADDRESS_LEN], ReplyError> {
    if !f.is_reply() || f.function() != 0x13 {
        return Err(ReplyError::WrongFunction {
            got: f.control,
            want: 0x93,
        });
    }
    if f.is_exception() {
        return Err(ReplyError::Exception(ErrorByte {
            version: Version::V2007,
            byte: f.data.first().copied().unwrap_or(0),
        }));
    }
    let mut a = [0u8; ADDRESS_LEN];
    match f.data.get(..ADDRESS_LEN) {
        Some(d) => a.copy_from_slice(d),
        None => {
            return Err(ReplyError::Short {
                got: f.data.len(),
                want: ADDRESS_LEN,
            })
        }
    }
    Ok(a)
}

/// The value of a reply's value bytes.
pub fn decode_value(spec: &Spec, bytes: &[u8]) -> Result<f64, BcdError> {
    if bytes.len() < usize::from(spec.len) {
        return Err(BcdError::Short {
            want: usize::from(spec.len),
            got: bytes.len(),
        });
    }
    bcd_value(&bytes[..usize::from(spec.len)], spec.decimals, spec.signed)
}

/// A value as a meter sends it (simulator, tests); None when it does not fit the field.
pub fn encode_value(spec: &Spec, value: f64) -> Option<HVec<u8, 8>> {
    let scaled = (value.abs() * 10f64.powi(i32::from(spec.decimals))).round();
    if !scaled.is_finite() || scaled >= 1e15 || (value < 0.0 && !spec.signed) {
        return None;
    }
    let mut out: HVec<u8, 8> = HVec::new();
    let _ = out.resize(usize::from(spec.len), 0);
    bcd_encode(scaled as u64, &mut out)?;
    if spec.signed {
        let top = out.len() - 1;
        if out[top] & 0x80 != 0 {
            return None;
        }
        if value < 0.0 && scaled > 0.0 {
            out[top] |= 0x80;
        }
    }
    Some(out)
}

/// A read request taken apart (the simulator's side): the DI asked, or None when the frame is not
/// a read of this edition.
pub fn read_request_di(version: Version, f: &Frame) -> Option<u32> {
    if f.is_reply() || f.function() != version.read_code() {
        return None;
    }
    let n = version.di_len();
    let mut b = [0u8; 4];
    b[..n].copy_from_slice(f.data.get(..n)?);
    Some(u32::from_le_bytes(b))
}

/// A normal reply to a read (simulator, tests).
pub fn encode_read_reply(
    version: Version,
    preamble: &[u8],
    address: &[u8; ADDRESS_LEN],
    di: u32,
    value: &[u8],
) -> ReplyFrame {
    encode_reply_part(version, preamble, address, di, value, None, false)
}

/// One frame of an answer (simulator, tests): the first (`follow` None, C 91H) or the follow-up
/// numbered `follow` (C 92H, 2007 with SEQ last), with the "more frames" bit when `more`. The
/// value is cut to what one frame holds.
pub fn encode_reply_part(
    version: Version,
    preamble: &[u8],
    address: &[u8; ADDRESS_LEN],
    di: u32,
    value: &[u8],
    follow: Option<u8>,
    more: bool,
) -> ReplyFrame {
    let mut data: HVec<u8, MAX_FRAME_DATA> = HVec::new();
    let _ = data.extend_from_slice(&di_bytes(version, di));
    let room = MAX_FRAME_DATA - data.len() - 1;
    let _ = data.extend_from_slice(&value[..value.len().min(room)]);
    let code = match follow {
        None => version.read_code(),
        Some(seq) => {
            if version == Version::V2007 {
                let _ = data.push(seq);
            }
            version.follow_code()
        }
    };
    let more = if more { 0x20 } else { 0 };
    build(preamble, address, 0x80 | more | code, &data)
}

/// A follow-up request taken apart (the simulator's side): the DI and SEQ asked (1997: SEQ 0).
pub fn follow_request(version: Version, f: &Frame) -> Option<(u32, u8)> {
    if f.is_reply() || f.function() != version.follow_code() {
        return None;
    }
    let n = version.di_len();
    let mut b = [0u8; 4];
    b[..n].copy_from_slice(f.data.get(..n)?);
    let seq = match version {
        Version::V2007 => *f.data.get(n)?,
        Version::V1997 => 0,
    };
    Some((u32::from_le_bytes(b), seq))
}

/// An exception reply (C = D1H for 2007, C1H for 1997) with its error byte.
pub fn encode_exception(
    version: Version,
    preamble: &[u8],
    address: &[u8; ADDRESS_LEN],
    error: u8,
) -> ReplyFrame {
    build(preamble, address, 0xC0 | version.read_code(), &[error])
}

/// The reply to the read-address command.
pub fn encode_address_reply(preamble: &[u8], address: &[u8; ADDRESS_LEN]) -> ReplyFrame {
    build(preamble, address, 0x93, address)
}

/// Parses a raw frame from the splitter (its layout is DL/T 645's, so it cannot be too short).
pub fn parse(raw: &RawFrame) -> Option<Frame> {
    Frame::parse(raw)
}
