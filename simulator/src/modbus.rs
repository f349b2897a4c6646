//! Modbus framing and PDUs, without I/O: what a meter receives and what it answers.
//! The transports in `server.rs` only move the bytes these functions produce.

/// Exception 01: function code not supported by the meter.
pub const ILLEGAL_FUNCTION: u8 = 0x01;
/// Exception 02: the requested registers are not in the meter's map.
pub const ILLEGAL_DATA_ADDRESS: u8 = 0x02;
/// Exception 03: quantity out of range (0, or above 125 registers / 2000 bits).
pub const ILLEGAL_DATA_VALUE: u8 = 0x03;
/// Exception 04: the device failed while answering.
pub const SERVER_DEVICE_FAILURE: u8 = 0x04;
/// Exception 0B: a gateway found no device at that unit id.
pub const GATEWAY_TARGET_FAILED: u8 = 0x0B;

/// A decoded request PDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Functions 01-04: read `count` bits or registers from `start`.
    Read {
        function: u8,
        start: u16,
        count: u16,
    },
    /// Anything else (writes, diagnostics): meters here are read-only.
    Other { function: u8 },
}

/// Decode a request PDU (function code first). Err carries the exception code to answer.
pub fn parse_request(pdu: &[u8]) -> Result<Request, (u8, u8)> {
    let function = *pdu.first().ok_or((0, ILLEGAL_FUNCTION))?;
    match function {
        1..=4 => {
            if pdu.len() < 5 {
                return Err((function, ILLEGAL_DATA_VALUE));
            }
            let start = u16::from_be_bytes([pdu[1], pdu[2]]);
            let count = u16::from_be_bytes([pdu[3], pdu[4]]);
            let max = if function <= 2 { 2000 } else { 125 };
            if count == 0 || count > max {
                return Err((function, ILLEGAL_DATA_VALUE));
            }
            Ok(Request::Read {
                function,
                start,
                count,
            })
        }
        _ => Ok(Request::Other { function }),
    }
}

/// The exception response PDU.
pub fn exception_pdu(function: u8, code: u8) -> Vec<u8> {
    vec![function | 0x80, code]
}

/// Response PDU of function 03/04.
pub fn registers_pdu(function: u8, words: &[u16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + words.len() * 2);
    out.push(function);
    out.push((words.len() * 2) as u8);
    for w in words {
        out.extend_from_slice(&w.to_be_bytes());
    }
    out
}

/// Response PDU of function 01/02 (bits packed LSB first).
pub fn bits_pdu(function: u8, bits: &[bool]) -> Vec<u8> {
    let n = bits.len().div_ceil(8);
    let mut out = vec![0u8; 2 + n];
    out[0] = function;
    out[1] = n as u8;
    for (i, b) in bits.iter().enumerate() {
        if *b {
            out[2 + i / 8] |= 1 << (i % 8);
        }
    }
    out
}

/// The registers (6666 each) or the byte of bits a hostile meter puts in front of a read reply's
/// data, byte count adjusted; other PDUs (exceptions) unchanged.
pub fn with_extra_data(pdu: &[u8]) -> Vec<u8> {
    let (Some(&function), Some(&n)) = (pdu.first(), pdu.get(1)) else {
        return pdu.to_vec();
    };
    let extra: &[u8] = match function {
        1 | 2 => &[0xFF],
        3 | 4 => &[0x1A, 0x0A, 0x1A, 0x0A],
        _ => return pdu.to_vec(),
    };
    let mut out = vec![function, n.saturating_add(extra.len() as u8)];
    out.extend_from_slice(extra);
    out.extend_from_slice(pdu.get(2..).unwrap_or_default());
    out
}

/// A read reply one register (bits: one byte) short, byte count adjusted; other PDUs unchanged.
pub fn with_short_data(pdu: &[u8]) -> Vec<u8> {
    let (Some(&function), Some(&n)) = (pdu.first(), pdu.get(1)) else {
        return pdu.to_vec();
    };
    let cut: u8 = match function {
        1 | 2 => 1,
        3 | 4 => 2,
        _ => return pdu.to_vec(),
    };
    let keep = n.saturating_sub(cut);
    let mut out = vec![function, keep];
    out.extend_from_slice(pdu.get(2..2 + usize::from(keep)).unwrap_or_default());
    out
}

/// The PDU with the function code of the other read of the same width (03 <-> 04, 01 <-> 02),
/// exception bit kept.
pub fn with_wrong_function(pdu: &[u8]) -> Vec<u8> {
    let mut out = pdu.to_vec();
    if let Some(f) = out.first_mut() {
        let swapped = match *f & 0x7F {
            1 => 2,
            2 => 1,
            3 => 4,
            4 => 3,
            other => other ^ 0x10,
        };
        *f = (*f & 0x80) | swapped;
    }
    out
}

/// Another unit id than `unit` (never the broadcast 0).
pub fn other_unit(unit: u8) -> u8 {
    if unit >= 247 {
        1
    } else {
        unit + 1
    }
}

/// CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF); sent low byte first.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in data {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xA001
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// An RTU frame: unit id + PDU + CRC.
pub fn rtu_frame(unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(pdu.len() + 3);
    f.push(unit);
    f.extend_from_slice(pdu);
    let crc = crc16(&f);
    f.extend_from_slice(&crc.to_le_bytes());
    f
}

/// A Modbus TCP frame: MBAP header + PDU.
pub fn tcp_frame(transaction: u16, unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(pdu.len() + 7);
    f.extend_from_slice(&transaction.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&((pdu.len() + 1) as u16).to_be_bytes());
    f.push(unit);
    f.extend_from_slice(pdu);
    f
}

/// What the RTU receive buffer holds.
#[derive(Debug, PartialEq, Eq)]
pub enum RtuScan {
    /// Not a whole frame yet.
    Incomplete,
    /// A frame with a good CRC: unit, PDU, bytes consumed.
    Frame { unit: u8, pdu: Vec<u8>, len: usize },
    /// Bytes that cannot start a request (or a bad CRC): drop this many bytes, as a meter that
    /// waits for the line to fall silent does.
    Discard(usize),
}

/// Find the request at the start of `buf` (a slave knows each request's length from its function).
pub fn scan_rtu_request(buf: &[u8]) -> RtuScan {
    if buf.len() < 2 {
        return RtuScan::Incomplete;
    }
    let len = match buf[1] {
        1..=6 => 8,
        15 | 16 => {
            if buf.len() < 7 {
                return RtuScan::Incomplete;
            }
            9 + usize::from(buf[6])
        }
        _ => return RtuScan::Discard(buf.len()),
    };
    if buf.len() < len {
        return RtuScan::Incomplete;
    }
    let crc = crc16(&buf[..len - 2]);
    if crc.to_le_bytes() != [buf[len - 2], buf[len - 1]] {
        return RtuScan::Discard(buf.len());
    }
    RtuScan::Frame {
        unit: buf[0],
        pdu: buf[1..len - 2].to_vec(),
        len,
    }
}

/// Take the next request addressed to one unit from the front of an RTU receive buffer: noise and
/// bad frames are dropped, broadcasts (unit 0) are consumed unanswered, as a slave does. `None` while
/// no whole request is there (the rest stays in `buf`).
pub fn take_rtu_request(buf: &mut Vec<u8>) -> Option<(u8, Vec<u8>)> {
    loop {
        match scan_rtu_request(buf) {
            RtuScan::Incomplete => return None,
            RtuScan::Discard(k) => {
                buf.drain(..k);
            }
            RtuScan::Frame { unit, pdu, len } => {
                buf.drain(..len);
                if unit != 0 {
                    return Some((unit, pdu));
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn take_skips_broadcasts_and_noise_and_keeps_a_partial_frame() {
        let mut buf = rtu_frame(0, &[3, 0, 0, 0, 2]);
        buf.extend(rtu_frame(7, &[4, 0, 0x48, 0, 4]));
        let next = rtu_frame(9, &[3, 0, 1, 0, 1]);
        buf.extend_from_slice(&next[..3]);
        assert_eq!(
            take_rtu_request(&mut buf),
            Some((7, vec![4, 0, 0x48, 0, 4]))
        );
        assert_eq!(take_rtu_request(&mut buf), None);
        assert_eq!(buf, next[..3].to_vec());
        let mut noise = vec![0x11, 0xFF, 0x00];
        assert_eq!(take_rtu_request(&mut noise), None);
        assert!(noise.is_empty());
    }

    #[test]
    fn crc_matches_the_spec_example() {
        // Read 2 holding registers at 0 from unit 1: 01 03 00 00 00 02 C4 0B.
        let f = rtu_frame(1, &[3, 0, 0, 0, 2]);
        assert_eq!(f, vec![1, 3, 0, 0, 0, 2, 0xC4, 0x0B]);
        assert_eq!(
            scan_rtu_request(&f),
            RtuScan::Frame {
                unit: 1,
                pdu: vec![3, 0, 0, 0, 2],
                len: 8
            }
        );
        let mut bad = f.clone();
        bad[7] ^= 1;
        assert_eq!(scan_rtu_request(&bad), RtuScan::Discard(8));
        assert_eq!(scan_rtu_request(&f[..5]), RtuScan::Incomplete);
    }

    #[test]
    fn requests_out_of_range_are_exceptions() {
        assert_eq!(
            parse_request(&[3, 0, 0, 0, 0]),
            Err((3, ILLEGAL_DATA_VALUE))
        );
        assert_eq!(
            parse_request(&[4, 0, 0, 0, 126]),
            Err((4, ILLEGAL_DATA_VALUE))
        );
        assert_eq!(
            parse_request(&[2, 0, 0, 0x07, 0xD0]),
            Ok(Request::Read {
                function: 2,
                start: 0,
                count: 2000
            })
        );
        assert_eq!(
            parse_request(&[6, 0, 1, 0, 1]),
            Ok(Request::Other { function: 6 })
        );
    }

    #[test]
    fn hostile_replies_stay_well_framed_but_answer_something_else() {
        let ok = registers_pdu(3, &[1, 2, 3]);
        assert_eq!(
            with_extra_data(&ok),
            vec![3, 10, 0x1A, 0x0A, 0x1A, 0x0A, 0, 1, 0, 2, 0, 3]
        );
        assert_eq!(with_short_data(&ok), vec![3, 4, 0, 1, 0, 2]);
        assert_eq!(with_wrong_function(&ok)[0], 4);
        assert_eq!(with_wrong_function(&exception_pdu(4, 2)), vec![0x83, 2]);
        let bits = bits_pdu(1, &[true, true]);
        assert_eq!(with_extra_data(&bits), vec![1, 2, 0xFF, 0b11]);
        assert_eq!(with_short_data(&bits), vec![1, 0]);
        let exc = exception_pdu(3, 2);
        assert_eq!(with_extra_data(&exc), exc);
        assert_eq!(with_short_data(&exc), exc);
        assert_eq!(other_unit(1), 2);
        assert_eq!(other_unit(247), 1);
    }

    #[test]
    fn bits_pack_lsb_first() {
        assert_eq!(bits_pdu(2, &[true, false, true]), vec![2, 1, 0b101]);
        assert_eq!(
            registers_pdu(3, &[0x4640, 0xE6AE]),
            vec![3, 4, 0x46, 0x40, 0xE6, 0xAE]
        );
    }
}
