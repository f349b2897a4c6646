//! The link layer DL/T 645 and CJ/T 188 share (DOMAIN.md): a frame starts with 68H, carries its
//! data length L at a fixed offset, and ends with a checksum (sum of every byte from the first 68H
//! to the last data byte, mod 256) and 16H. Meters send 0..4 FEH wake-up bytes first, and an RS-485
//! line picks up noise, so the splitter skips anything before a 68H that starts a whole, checked
//! frame and resynchronises after anything that is not one.
//!
//! Memory is fixed: the buffer holds two frames' worth of bytes; `push` takes what fits and says how
//! much, so a device that talks without end cannot grow it.

use heapless::Vec as HVec;

/// The most data bytes any frame may carry: L is one byte.
pub const MAX_DATA: usize = 255;
/// The longest frame of either protocol: CJ/T 188's 11-byte header + 255 data + CS + 16H.
pub const MAX_FRAME: usize = 11 + MAX_DATA + 2;
/// What the splitter holds: a half frame waiting for its end plus a read's worth of new bytes.
pub const BUF_CAP: usize = 2 * MAX_FRAME;

/// The wake-up byte sent (and often echoed) before a frame.
pub const PREAMBLE_BYTE: u8 = 0xFE;

/// A whole frame (from its first 68H to its 16H), checksum and end byte checked.
pub type RawFrame = HVec<u8, MAX_FRAME>;

/// Where each protocol keeps its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `68 A0..A5 68 C L DATA CS 16`: a second 68H at offset 7, L at 9.
    Dlt645,
    /// `68 T A0..A6 C L DATA CS 16`: L at 10.
    Cjt188,
}

impl Layout {
    /// Bytes before the data: the header through L.
    pub fn header_len(self) -> usize {
        match self {
            Layout::Dlt645 => 10,
            Layout::Cjt188 => 11,
        }
    }

    /// Whether a header (at least `header_len` bytes, starting with 68H) is plausible.
    fn header_ok(self, h: &[u8]) -> bool {
        match self {
            Layout::Dlt645 => h[7] == 0x68,
            Layout::Cjt188 => true,
        }
    }

    /// The whole frame's length from its header.
    fn frame_len(self, h: &[u8]) -> usize {
        self.header_len() + usize::from(h[self.header_len() - 1]) + 2
    }
}

/// Sum of bytes mod 256: the checksum of both protocols.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |s, b| s.wrapping_add(*b))
}

/// Appends the checksum of `frame` (from its first 68H) and the end byte.
pub fn finish<const N: usize>(frame: &mut HVec<u8, N>, from: usize) {
    let cs = checksum(&frame[from..]);
    // The callers size N for the longest frame they build: a full vector is a bug in them, and the
    // frame would fail its checksum on the meter side rather than panic here.
    let _ = frame.push(cs);
    let _ = frame.push(0x16);
}

/// What came out of the stream.
// A frame held inline (280 bytes on the stack) rather than boxed: no allocation per reply.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// A frame whose checksum and end byte are right.
    Frame(RawFrame),
    /// Bytes that are not a frame (skipped), and why; wake-up FEH bytes alone are skipped silently.
    Garbage { bytes: usize, why: Garbage },
}

/// Why bytes were skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Garbage {
    #[error("bytes before the frame start 68H")]
    BeforeStart,
    #[error("68H not followed by a frame header")]
    BadHeader,
    #[error("checksum {got:02X}H, the frame's bytes sum to {want:02X}H")]
    Checksum { got: u8, want: u8 },
    #[error("frame does not end with 16H (found {0:02X}H)")]
    BadEnd(u8),
}

/// Splits a byte stream into checked frames of one layout.
#[derive(Debug)]
pub struct Splitter {
    layout: Layout,
    buf: HVec<u8, BUF_CAP>,
}

/// Whether a whole checked frame starts at `b[0]`: `Some(Ok(len))`, `Some(Err(why))` when it
/// cannot be one, `None` while bytes are missing.
fn frame_at(layout: Layout, b: &[u8]) -> Option<Result<usize, Garbage>> {
    let hl = layout.header_len();
    if b.len() < hl {
        return None;
    }
    if !layout.header_ok(b) {
        return Some(Err(Garbage::BadHeader));
    }
    let len = layout.frame_len(b);
    if b.len() < len {
        return None;
    }
    let want = checksum(&b[..len - 2]);
    if b[len - 2] != want {
        return Some(Err(Garbage::Checksum {
            got: b[len - 2],
            want,
        }));
    }
    if b[len - 1] != 0x16 {
        return Some(Err(Garbage::BadEnd(b[len - 1])));
    }
    Some(Ok(len))
}

impl Splitter {
    pub fn new(layout: Layout) -> Splitter {
        Splitter {
            layout,
            buf: HVec::new(),
        }
    }

    /// Takes as many of `bytes` as fit and returns how many; call `next_piece` until None, then
    /// push the rest.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(BUF_CAP - self.buf.len());
        // Cannot fail: n fits the room left.
        let _ = self.buf.extend_from_slice(&bytes[..n]);
        n
    }

    /// Bytes held that are not yet a whole frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Forgets everything held (a new request: a late half reply must not join the next one).
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// The next frame or piece of garbage, or None until more bytes arrive.
    pub fn next_piece(&mut self) -> Option<Piece> {
        loop {
            let Some(start) = self.buf.iter().position(|b| *b == 0x68) else {
                let n = self.buf.len();
                return self.skip(n, Garbage::BeforeStart);
            };
            if start > 0 {
                match self.skip(start, Garbage::BeforeStart) {
                    Some(p) => return Some(p),
                    None => continue,
                }
            }
            match frame_at(self.layout, &self.buf) {
                Some(Ok(len)) => {
                    let mut f = RawFrame::new();
                    // Cannot fail: len <= MAX_FRAME (L is one byte).
                    let _ = f.extend_from_slice(&self.buf[..len]);
                    self.drain(len);
                    return Some(Piece::Frame(f));
                }
                Some(Err(why)) => {
                    // Not a frame: drop its 68H and look for the next one.
                    return Some(self.garbage(1, why));
                }
                None => {
                    // Incomplete. A false 68H in noise may claim a long L and hide a real frame
                    // behind it: take a whole frame found later in the buffer instead of waiting.
                    let later = (1..self.buf.len()).find(|&i| {
                        self.buf[i] == 0x68
                            && matches!(frame_at(self.layout, &self.buf[i..]), Some(Ok(_)))
                    });
                    if let Some(i) = later {
                        return Some(self.garbage(i, Garbage::BadHeader));
                    }
                    if self.buf.len() == BUF_CAP {
                        // Full without a frame: cannot happen for a real frame (BUF_CAP holds
                        // two); drop the false start so the stream keeps moving.
                        return Some(self.garbage(1, Garbage::BadHeader));
                    }
                    return None;
                }
            }
        }
    }

    /// Drops `n` bytes; garbage unless they were all wake-up bytes.
    fn skip(&mut self, n: usize, why: Garbage) -> Option<Piece> {
        if n == 0 {
            return None;
        }
        let all_preamble = self.buf[..n].iter().all(|b| *b == PREAMBLE_BYTE);
        self.drain(n);
        if all_preamble {
            None
        } else {
            Some(Piece::Garbage { bytes: n, why })
        }
    }

    fn garbage(&mut self, n: usize, why: Garbage) -> Piece {
        self.drain(n);
        Piece::Garbage { bytes: n, why }
    }

    fn drain(&mut self, n: usize) {
        let rest = self.buf.len() - n;
        self.buf.copy_within(n.., 0);
        self.buf.truncate(rest);
    }
}

/// Why a BCD field could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BcdError {
    #[error("{0:02X}H is not a BCD byte")]
    NotBcd(u8),
    #[error("value field of {want} bytes, reply holds {got}")]
    Short { want: usize, got: usize },
}

/// A BCD number sent low byte first, with `decimals` decimal places; when `signed`, the top bit of
/// the highest byte is the sign (DL/T 645's currents, powers, power factors, combined energies).
pub fn bcd_value(bytes: &[u8], decimals: u8, signed: bool) -> Result<f64, BcdError> {
    let mut v: u64 = 0;
    let mut negative = false;
    for (i, &orig) in bytes.iter().rev().enumerate() {
        let mut b = orig;
        if signed && i == 0 {
            negative = b & 0x80 != 0;
            b &= 0x7F;
        }
        let (hi, lo) = (b >> 4, b & 0x0F);
        if hi > 9 || lo > 9 {
            return Err(BcdError::NotBcd(orig));
        }
        v = v * 100 + u64::from(hi) * 10 + u64::from(lo);
    }
    let v = v as f64 / 10f64.powi(i32::from(decimals));
    Ok(if negative { -v } else { v })
}

/// `n` BCD bytes, low first, of a non-negative whole number (what simulators and tests send).
/// None when it does not fit.
pub fn bcd_encode(mut v: u64, out: &mut [u8]) -> Option<()> {
    for b in out.iter_mut() {
        let lo = (v % 10) as u8;
        v /= 10;
        let hi = (v % 10) as u8;
        v /= 10;
        *b = hi << 4 | lo;
    }
    (v == 0).then_some(())
}

/// A meter address printed as decimal digits (DL/T 645: 12, CJ/T 188: 14) to its wire bytes, low
/// byte first. None when the text is not that many digits (DL/T 645 also allows AAH wildcard
/// digits, written "A").
pub fn parse_address<const N: usize>(s: &str) -> Option<[u8; N]> {
    let digits = s.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A' | b'a' => Some(0xA),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in digits.chunks(2).enumerate() {
        out[N - 1 - i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

/// Wire bytes (low first) of an address back to its printed digits.
pub fn format_address(a: &[u8]) -> String {
    a.iter().rev().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcd_reads_the_standard_examples() {
        assert_eq!(bcd_value(&[0x42, 0x06, 0x12, 0x00], 2, false), Ok(1206.42));
        assert_eq!(bcd_value(&[0x00, 0x01], 0, false), Ok(100.0));
        // Phase-A current -1.234 A: 3 bytes XXX.XXX, sign in the top bit.
        assert_eq!(bcd_value(&[0x34, 0x12, 0x80], 3, true), Ok(-1.234));
        assert_eq!(
            bcd_value(&[0x3A, 0x00], 1, false),
            Err(BcdError::NotBcd(0x3A))
        );
        let mut b = [0u8; 4];
        assert_eq!(bcd_encode(12345678, &mut b), Some(()));
        assert_eq!(b, [0x78, 0x56, 0x34, 0x12]);
        assert_eq!(bcd_encode(123456789, &mut b), None);
    }

    #[test]
    fn addresses_are_sent_low_byte_first() {
        assert_eq!(
            parse_address::<6>("000102030425"),
            Some([0x25, 0x04, 0x03, 0x02, 0x01, 0x00])
        );
        assert_eq!(parse_address::<6>("00010203042"), None);
        assert_eq!(parse_address::<6>("00010203042x"), None);
        assert_eq!(
            format_address(&[0x44, 0x33, 0x22, 0x11, 0x00, 0x33, 0x78]),
            "78330011223344"
        );
    }
}
