//! The text of an import CSV: UTF-8 with or without a BOM (Excel's "CSV UTF-8"), or GB18030, the superset
//! of GBK (Excel's plain "CSV" on Chinese Windows, code page 936). `--encoding auto` (the default) tells
//! them apart from the file's first [`SNIFF_BYTES`]: a BOM or valid UTF-8 is UTF-8, text that is not
//! UTF-8 but valid GB18030 is GB18030, anything else is refused with a hint (save as "CSV UTF-8", or say
//! `--encoding`). GB18030 is decoded to UTF-8 as the file streams (no line break inside a GB18030
//! character, so line numbers stay those of the file).
//!
//! The GB18030 decoder (encoding_rs) is in the desk build only (feature `desk`): it added 156,544 bytes
//! to the stripped gateway binary (4,796,560 -> 4,953,104, measured), most of the 5 MB budget's margin.
//! The gateway build reads UTF-8 and says so when a file is not.

use std::io::{BufRead, BufReader, Read};

/// Bytes looked at to tell the encoding: a header and a few hundred rows.
pub const SNIFF_BYTES: usize = 64 * 1024;

/// `--encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    #[default]
    Auto,
    Utf8,
    Gb18030,
}

impl Encoding {
    /// `auto`, `utf-8` (`utf8`), `gbk`, `gb18030`, `gb2312`, `cp936` (all three decoded as GB18030, their
    /// superset).
    pub fn parse(s: &str) -> Option<Encoding> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Some(Encoding::Auto),
            "utf-8" | "utf8" => Some(Encoding::Utf8),
            "gbk" | "gb18030" | "gb2312" | "cp936" => Some(Encoding::Gb18030),
            _ => None,
        }
    }
}

/// Why the encoding could not be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undecided {
    /// A UTF-16 BOM: Excel's "Unicode text" (tab-separated), not a CSV.
    Utf16,
    /// Neither UTF-8 nor GB18030 on this 1-based line.
    Neither { line: u64 },
    /// Not UTF-8 (on this line), and this build has no GBK decoder (feature `desk`).
    #[cfg_attr(feature = "desk", allow(dead_code))]
    NotUtf8 { line: u64 },
}

/// The 1-based line of a byte offset.
fn line_of(head: &[u8], at: usize) -> u64 {
    1 + head[..at.min(head.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count() as u64
}

/// The encoding a file's first bytes show; `complete` when `head` is the whole file.
pub fn detect(head: &[u8], complete: bool) -> Result<Encoding, Undecided> {
    if head.starts_with(b"\xEF\xBB\xBF") {
        return Ok(Encoding::Utf8);
    }
    if head.starts_with(b"\xFF\xFE") || head.starts_with(b"\xFE\xFF") {
        return Err(Undecided::Utf16);
    }
    let not_utf8_at = match std::str::from_utf8(head) {
        Ok(_) => return Ok(Encoding::Utf8),
        // A character cut by the end of the sniffed bytes.
        Err(e) if e.error_len().is_none() && !complete => return Ok(Encoding::Utf8),
        Err(e) => e.valid_up_to(),
    };
    not_utf8(head, complete, not_utf8_at)
}

/// Text that is not UTF-8 from byte `at`: this build reads UTF-8 only.
#[cfg(not(feature = "desk"))]
fn not_utf8(head: &[u8], _complete: bool, at: usize) -> Result<Encoding, Undecided> {
    Err(Undecided::NotUtf8 {
        line: line_of(head, at),
    })
}

/// Text that is not UTF-8: GB18030 when it is valid GB18030.
#[cfg(feature = "desk")]
fn not_utf8(head: &[u8], complete: bool, _at: usize) -> Result<Encoding, Undecided> {
    gb18030(head, complete)
}

#[cfg(feature = "desk")]
fn gb18030(head: &[u8], complete: bool) -> Result<Encoding, Undecided> {
    let mut decoder = encoding_rs::GB18030.new_decoder_without_bom_handling();
    let mut out = String::with_capacity(head.len() * 3 + 16);
    let (result, read) = decoder.decode_to_string_without_replacement(head, &mut out, complete);
    match result {
        encoding_rs::DecoderResult::Malformed(bad, _) => {
            let at = read.saturating_sub(usize::from(bad));
            Err(Undecided::Neither {
                line: line_of(head, at),
            })
        }
        _ => Ok(Encoding::Gb18030),
    }
}

/// A file as UTF-8: opened with its encoding told (or given), and decoded while it is read.
pub struct Decoded<R> {
    inner: BufReader<R>,
    #[cfg(feature = "desk")]
    decoder: Option<encoding_rs::Decoder>,
    #[cfg(feature = "desk")]
    raw: Vec<u8>,
    #[cfg(feature = "desk")]
    pending: String,
    #[cfg(feature = "desk")]
    pos: usize,
    #[cfg(feature = "desk")]
    done: bool,
}

impl<R: Read> Decoded<R> {
    /// `Auto` looks at the first [`SNIFF_BYTES`]; the encoding used is returned beside the reader.
    pub fn new(inner: R, encoding: Encoding) -> Result<(Decoded<R>, Encoding), Undecided> {
        let mut inner = BufReader::with_capacity(SNIFF_BYTES, inner);
        let encoding = match encoding {
            Encoding::Auto => {
                // One read fills the buffer for a regular file; a short one is the whole file.
                let head = inner
                    .fill_buf()
                    .map_err(|_| Undecided::Neither { line: 1 })?;
                let complete = head.len() < SNIFF_BYTES;
                detect(head, complete)?
            }
            e => e,
        };
        #[cfg(feature = "desk")]
        let decoder = (encoding == Encoding::Gb18030)
            .then(|| encoding_rs::GB18030.new_decoder_without_bom_handling());
        #[cfg(not(feature = "desk"))]
        if encoding == Encoding::Gb18030 {
            return Err(Undecided::NotUtf8 { line: 1 });
        }
        Ok((
            Decoded {
                inner,
                #[cfg(feature = "desk")]
                decoder,
                #[cfg(feature = "desk")]
                raw: vec![0; 16 * 1024],
                #[cfg(feature = "desk")]
                pending: String::new(),
                #[cfg(feature = "desk")]
                pos: 0,
                #[cfg(feature = "desk")]
                done: false,
            },
            encoding,
        ))
    }
}

impl<R: Read> Read for Decoded<R> {
    #[cfg(not(feature = "desk"))]
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(out)
    }

    #[cfg(feature = "desk")]
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let Some(decoder) = self.decoder.as_mut() else {
            return self.inner.read(out);
        };
        loop {
            if self.pos < self.pending.len() {
                let rest = &self.pending.as_bytes()[self.pos..];
                let n = rest.len().min(out.len());
                out[..n].copy_from_slice(&rest[..n]);
                self.pos += n;
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            let n = self.inner.read(&mut self.raw)?;
            let last = n == 0;
            self.pending.clear();
            self.pos = 0;
            let need = decoder.max_utf8_buffer_length(n).unwrap_or(n * 3 + 16);
            self.pending.reserve(need);
            // Malformed bytes become U+FFFD: a cell holding one is refused as a bad value or name.
            let _ = decoder.decode_to_string(&self.raw[..n], &mut self.pending, last);
            self.done = last;
        }
    }
}

#[cfg(all(test, feature = "desk"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tells_utf8_from_gbk() {
        let (gbk, _, _) = encoding_rs::GBK.encode("时间,表计,测点,数值\r\n");
        assert_eq!(detect(&gbk, true), Ok(Encoding::Gb18030));
        assert_eq!(detect("时间,表计".as_bytes(), true), Ok(Encoding::Utf8));
        assert_eq!(detect(b"\xEF\xBB\xBFts", true), Ok(Encoding::Utf8));
        assert_eq!(detect(b"\xFF\xFEt\0s\0", true), Err(Undecided::Utf16));
        // Cut inside a character at the end of the sniffed bytes: still UTF-8.
        assert_eq!(detect(&"ts,时".as_bytes()[..4], false), Ok(Encoding::Utf8));
        assert_eq!(
            detect(b"ts\n\x80\xFF\xFF", true),
            Err(Undecided::Neither { line: 2 })
        );
    }

    #[test]
    fn decodes_gbk_whatever_the_buffer_sizes() {
        let text = "时间,表计,测点,数值\r\n2025/3/1 8:00,总表,电量,\"1,234.5\"\r\n".repeat(3000);
        let (gbk, _, _) = encoding_rs::GBK.encode(&text);
        for size in [1, 3, 7, 4096] {
            let (mut d, e) = Decoded::new(&gbk[..], Encoding::Auto).unwrap();
            assert_eq!(e, Encoding::Gb18030);
            let mut out = Vec::new();
            let mut buf = vec![0; size];
            loop {
                let n = d.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
            }
            assert_eq!(String::from_utf8(out).unwrap(), text);
        }
    }
}
