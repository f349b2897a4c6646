//! Frames out of a byte stream (a TCP connection): bytes go in as they arrive, whole frames or
//! pieces of garbage come out. It resynchronises on the next `##` after anything that is not a
//! valid frame, and holds at most one frame's worth of bytes (a half frame waits for the rest).

use super::sm4::{Form, LengthOf, Wire};
use super::{decode_frame, Hj212Error, Packet, MAX_DATA_LEN};

/// `##` + length + segment + CRC + CRLF: the most bytes one frame may take.
pub const MAX_FRAME_LEN: usize = 2 + 4 + MAX_DATA_LEN + 4 + 2;

/// What came out of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// A frame whose length and CRC are right, with its data segment parsed.
    Frame(Packet),
    /// Bytes that are not a valid frame (skipped), and why.
    Garbage { bytes: usize, why: Hj212Error },
}

/// Splits a byte stream into frames.
#[derive(Debug, Default)]
pub struct FrameSplitter {
    buf: Vec<u8>,
    /// HJ 212-2025 with SM4: data regions of the encrypted CNs are decrypted before the CRC check.
    wire: Option<Wire>,
}

fn find_header(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"##")
}

/// Whether `b` starts with a whole frame whose length and CRC are right.
fn whole_frame_at(b: &[u8]) -> bool {
    let Some(len_field) = b.get(2..6) else {
        return false;
    };
    if !len_field.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let declared = len_field
        .iter()
        .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
    b.get(..6 + declared + 6)
        .and_then(|f| std::str::from_utf8(f).ok())
        .is_some_and(|f| decode_frame(f).is_ok())
}

impl FrameSplitter {
    pub fn new() -> FrameSplitter {
        FrameSplitter::default()
    }

    /// Bytes received.
    /// A splitter for a link whose platform encrypts (HJ 212-2025, SM4).
    pub fn with_wire(wire: Option<Wire>) -> FrameSplitter {
        FrameSplitter {
            buf: Vec::new(),
            wire,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that are not yet a whole frame (a half frame at the end of a connection).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The next frame or piece of garbage, or None until more bytes arrive.
    pub fn next_piece(&mut self) -> Option<Piece> {
        // Anything before the first `##` is garbage (a lone trailing `#` may start one: kept).
        match find_header(&self.buf) {
            Some(0) => {}
            Some(at) => return Some(self.skip(at, Hj212Error::MissingHeader)),
            None => {
                let keep = usize::from(self.buf.last() == Some(&b'#'));
                let n = self.buf.len() - keep;
                if n == 0 {
                    return None;
                }
                return Some(self.skip(n, Hj212Error::MissingHeader));
            }
        }
        if self.buf.len() < 6 {
            return None;
        }
        let len_field = &self.buf[2..6];
        if !len_field.iter().all(u8::is_ascii_digit) {
            let found = String::from_utf8_lossy(len_field).into_owned();
            return Some(self.skip(2, Hj212Error::BadLengthField { found }));
        }
        let declared = len_field
            .iter()
            .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
        let mut total = 6 + declared + 4 + 2;
        if self
            .wire
            .as_ref()
            .is_some_and(|w| w.form == Form::Text && w.length == LengthOf::Plain)
        {
            // The length field counts the plain text, the text form is longer: the segment ends at the
            // `&&` after `CP=&&` (neither plain CP text nor `{0x..}` holds `&&`).
            let end = self
                .buf
                .windows(5)
                .position(|x| x == b"CP=&&")
                .and_then(|cp| {
                    let from = cp + 5;
                    self.buf[from..]
                        .windows(2)
                        .position(|x| x == b"&&")
                        .map(|e| from + e + 2)
                });
            match end {
                Some(e) => total = e + 6,
                None if self.buf.len() < MAX_FRAME_LEN * 6 => return None,
                None => return Some(self.skip(2, Hj212Error::BadCp)),
            }
        }
        if self.buf.len() < total {
            // A half frame, or a garbage length: when a whole valid frame starts at a later `##`,
            // the length was garbage and that frame is taken (a platform's answer is not held up
            // until a bogus length's worth of bytes has arrived).
            let mut from = 2;
            while let Some(at) = find_header(&self.buf[from..]) {
                let k = from + at;
                if whole_frame_at(&self.buf[k..]) {
                    return Some(self.skip(
                        k,
                        Hj212Error::LengthMismatch {
                            declared,
                            actual: k.saturating_sub(6),
                        },
                    ));
                }
                from = k + 1;
            }
            return None;
        }
        let decrypted;
        let mut frame = &self.buf[..total];
        if let Some(w) = &self.wire {
            let seg = &frame[6..total - 6];
            match w.decode_segment(seg) {
                Some(plain) => {
                    let mut f = format!("##{:04}", plain.len()).into_bytes();
                    f.extend_from_slice(&plain);
                    f.extend_from_slice(&frame[total - 6..]);
                    decrypted = f;
                    frame = &decrypted;
                }
                None => return Some(self.skip(2, Hj212Error::NotText)),
            }
        }
        let result = match std::str::from_utf8(frame) {
            Ok(text) => decode_frame(text).and_then(Packet::parse),
            Err(_) => Err(Hj212Error::NotText),
        };
        match result {
            Ok(p) => {
                self.buf.drain(..total);
                Some(Piece::Frame(p))
            }
            // Not a frame: skip its `##` only, a real frame may start inside it.
            Err(why) => {
                let next = find_header(&self.buf[2..total])
                    .map_or(total, |at| 2 + at)
                    .max(2);
                Some(self.skip(next, why))
            }
        }
    }

    fn skip(&mut self, n: usize, why: Hj212Error) -> Piece {
        let n = n.min(self.buf.len());
        self.buf.drain(..n);
        Piece::Garbage { bytes: n, why }
    }
}
