//! The rows of an import CSV, as RFC 4180 through the `csv` crate (quoted fields, CRLF, a BOM), in the
//! file's encoding ([`super::text`]), under a [`Guard`] that keeps every record within a line of
//! [`MAX_LINE_BYTES`]. Records end at LF only, the CR of a CRLF trimmed with the last field: the `csv`
//! crate ends a record at the CR and counts its line at the LF, which made every line number after the
//! first one too low in a CRLF file (Excel's). Line numbers are the file's, as a text editor or Excel
//! shows them: the header is line 1.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::cells::{Cell, Record};
use super::text::{Decoded, Encoding, Undecided};

/// A physical line longer than this (bytes) is an error by itself: no row of `ts,meter,point,value` is
/// near it, and it is neither echoed nor read into memory whole.
pub const MAX_LINE_BYTES: usize = 4096;

/// Why the guard flagged a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// Longer than [`MAX_LINE_BYTES`]: cut.
    Long,
    /// A quote still open at its end: closed there, since no field of an import file spans lines (an
    /// unclosed quote would otherwise swallow the rest of the file into one record).
    OpenQuote,
}

impl Flag {
    pub fn message(self) -> String {
        match self {
            Flag::Long => format!("line longer than {MAX_LINE_BYTES} bytes (not shown)"),
            Flag::OpenQuote => "a quoted field is not closed on its line".to_string(),
        }
    }
}

/// The reader under the CSV parser: drops a leading UTF-8 BOM, cuts every physical line longer than
/// [`MAX_LINE_BYTES`] down to that length and closes a quote left open at the end of a line, noting the
/// line's number, so that no record is longer than a line of 4 KiB (a 50 MB line costs no memory).
pub struct Guard<R> {
    inner: R,
    buf: Vec<u8>,
    start: bool,
    /// Bytes of the current line passed on so far.
    col: usize,
    /// 1-based number of the current line.
    line: u64,
    /// Inside a line that is too long: dropping bytes up to its newline.
    cutting: bool,
    quoted: bool,
    /// A byte that did not fit the caller's buffer.
    carry: Option<u8>,
    /// Lines flagged, not yet taken by the parser's consumer (a few at most: the parser reads ahead by one
    /// buffer only, and each flagged line passes on at least a byte).
    pub flagged: std::collections::VecDeque<(u64, Flag)>,
}

impl<R: Read> Guard<R> {
    pub fn new(inner: R) -> Guard<R> {
        Guard {
            inner,
            buf: vec![0; 64 * 1024],
            start: true,
            col: 0,
            line: 1,
            cutting: false,
            quoted: false,
            carry: None,
            flagged: std::collections::VecDeque::new(),
        }
    }
}

impl<R: Read> Read for Guard<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if let Some(b) = self.carry.take() {
            out[0] = b;
            return Ok(1);
        }
        loop {
            // Closing a quote adds a byte per newline: read at most half of what fits (a byte that does
            // not fit all the same, when `out` is one byte, waits in `carry`).
            let want = (out.len() / 2).clamp(1, self.buf.len());
            let n = self.inner.read(&mut self.buf[..want])?;
            if n == 0 {
                return Ok(0);
            }
            let mut input = &self.buf[..n];
            if self.start {
                // A BOM split over two reads is not worth handling: the first read is kilobytes.
                if let Some(rest) = input.strip_prefix(b"\xEF\xBB\xBF") {
                    input = rest;
                }
                self.start = false;
            }
            let mut w = 0;
            let put = |out: &mut [u8], w: &mut usize, b: u8, carry: &mut Option<u8>| {
                if *w < out.len() {
                    out[*w] = b;
                    *w += 1;
                } else {
                    *carry = Some(b);
                }
            };
            for seg in input.split_inclusive(|&b| b == b'\n') {
                let (body, newline) = match seg.split_last() {
                    Some((b'\n', body)) => (body, true),
                    _ => (seg, false),
                };
                if !self.cutting {
                    let room = MAX_LINE_BYTES - self.col;
                    let part = &body[..body.len().min(room)];
                    // Fits: at most half of `out` was read, and every newline adds at most one byte.
                    out[w..w + part.len()].copy_from_slice(part);
                    w += part.len();
                    self.col += part.len();
                    self.quoted ^= part.iter().filter(|&&b| b == b'"').count() % 2 == 1;
                    if body.len() > room {
                        self.cutting = true;
                        self.flagged.push_back((self.line, Flag::Long));
                    }
                }
                if newline {
                    if self.quoted {
                        put(out, &mut w, b'"', &mut self.carry);
                        if !self.cutting {
                            self.flagged.push_back((self.line, Flag::OpenQuote));
                        }
                    }
                    self.line += 1;
                    self.col = 0;
                    self.cutting = false;
                    self.quoted = false;
                    put(out, &mut w, b'\n', &mut self.carry);
                }
            }
            if w > 0 {
                return Ok(w);
            }
        }
    }
}

impl Record for csv::ByteRecord {
    fn len(&self) -> usize {
        csv::ByteRecord::len(self)
    }

    fn blank(&self, i: usize) -> bool {
        self.get(i).unwrap_or_default().trim_ascii().is_empty()
    }

    fn cell(&self, i: usize) -> Cell<'_> {
        // Trimmed in place (`ByteRecord::trim` allocates a new record for every row); also the CR of CRLF.
        let b = self.get(i).unwrap_or_default().trim_ascii();
        if b.is_empty() {
            Cell::Empty
        } else {
            match std::str::from_utf8(b) {
                Ok(s) => Cell::Text(s),
                Err(_) => Cell::NotText(b),
            }
        }
    }
}

/// What one read of the CSV gives.
pub enum Next {
    /// A record, on this line.
    Record(u64),
    /// A line the guard cut or closed, or a record the parser could not read.
    Bad(u64, String),
    End,
}

/// The records of a CSV file, with the lines they start on.
pub struct CsvSource {
    csv: csv::Reader<Guard<Decoded<File>>>,
    pub record: csv::ByteRecord,
    eof: bool,
    /// The encoding read (told or given).
    pub encoding: Encoding,
}

impl CsvSource {
    pub fn open(file: &Path, encoding: Encoding) -> Result<CsvSource, OpenError> {
        let f = File::open(file).map_err(OpenError::Io)?;
        let (decoded, encoding) = Decoded::new(f, encoding).map_err(OpenError::Encoding)?;
        let csv = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_reader(Guard::new(decoded));
        Ok(CsvSource {
            csv,
            record: csv::ByteRecord::new(),
            eof: false,
            encoding,
        })
    }

    /// Bytes read so far (for progress).
    pub fn position(&self) -> u64 {
        self.csv.position().byte()
    }

    /// The next record (in `self.record`), a bad line, or the end.
    pub fn next(&mut self) -> Next {
        // Lines flagged before the record about to be read are reported first, by number.
        let next_line = self.csv.position().line();
        if let Some(&(l, flag)) = self.csv.get_ref().flagged.front() {
            if l < next_line || self.eof {
                self.csv.get_mut().flagged.pop_front();
                return Next::Bad(l, flag.message());
            }
        }
        if self.eof {
            return Next::End;
        }
        let ok = match self.csv.read_byte_record(&mut self.record) {
            Ok(ok) => ok,
            Err(e) => {
                let line = e.position().map_or(next_line, csv::Position::line);
                self.eof = true;
                let why = match e.kind() {
                    csv::ErrorKind::Io(e) => format!("cannot read: {e}"),
                    _ => "not a CSV row".to_string(),
                };
                return Next::Bad(line, why);
            }
        };
        if !ok {
            self.eof = true;
            return self.next();
        }
        let line = self
            .record
            .position()
            .map_or(next_line, csv::Position::line);
        if let Some(&(l, flag)) = self.csv.get_ref().flagged.front() {
            if l == line {
                self.csv.get_mut().flagged.pop_front();
                return Next::Bad(line, flag.message());
            }
        }
        Next::Record(line)
    }
}

/// Why a CSV could not be opened.
pub enum OpenError {
    Io(std::io::Error),
    Encoding(Undecided),
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_strips_a_bom_and_cuts_long_lines() {
        let mut input = b"\xEF\xBB\xBFa,b\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 3 * MAX_LINE_BYTES));
        input.extend_from_slice(b"\nc,d\r\n");
        let mut g = Guard::new(&input[..]);
        let mut out = Vec::new();
        g.read_to_end(&mut out).unwrap();
        assert!(out.starts_with(b"a,b\n"));
        assert!(out.ends_with(b"\nc,d\r\n"));
        assert_eq!(out.len(), 4 + MAX_LINE_BYTES + 6);
        assert_eq!(g.flagged, [(2, Flag::Long)]);
        // A quote left open is closed at its line's end, so it cannot swallow the following lines.
        let mut g = Guard::new(&b"a,\"b\nc,d\n"[..]);
        let mut out = Vec::new();
        g.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"a,\"b\"\nc,d\n");
        assert_eq!(g.flagged, [(1, Flag::OpenQuote)]);
    }

    /// The guard byte by byte, as specified.
    fn reference(input: &[u8]) -> (Vec<u8>, Vec<(u64, Flag)>) {
        let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
        let (mut out, mut flags) = (Vec::new(), Vec::new());
        let (mut line, mut col, mut cutting, mut quoted) = (1u64, 0usize, false, false);
        for &b in input {
            if b == b'\n' {
                if quoted {
                    out.push(b'"');
                    if !cutting {
                        flags.push((line, Flag::OpenQuote));
                    }
                }
                out.push(b);
                (line, col, cutting, quoted) = (line + 1, 0, false, false);
            } else if !cutting {
                if col == MAX_LINE_BYTES {
                    cutting = true;
                    flags.push((line, Flag::Long));
                } else {
                    col += 1;
                    quoted ^= b == b'"';
                    out.push(b);
                }
            }
        }
        (out, flags)
    }

    proptest::proptest! {
        #[test]
        fn the_guard_reads_alike_whatever_the_buffer_sizes(
            lines in proptest::collection::vec((0usize..5000, 0u8..4), 0..12),
            sizes in proptest::collection::vec(1usize..9000, 1..8),
        ) {
            let mut input = Vec::new();
            for (len, kind) in &lines {
                let fill = match kind { 0 => b'a', 1 => b'"', 2 => b',', _ => b'\r' };
                input.extend(std::iter::repeat_n(fill, *len));
                input.push(b'\n');
            }
            let mut g = Guard::new(&input[..]);
            let mut out = Vec::new();
            for i in 0.. {
                let mut buf = vec![0u8; sizes[i % sizes.len()]];
                let n = g.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            let (want, flags) = reference(&input);
            proptest::prop_assert_eq!(out, want);
            proptest::prop_assert_eq!(Vec::from(g.flagged), flags);
        }
    }
}
