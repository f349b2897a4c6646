//! A block: the records of consecutive seqs stored as one sled value (under the first seq).
//!
//! Why blocks: sled's cost is per key. A round of 50 polls stored as 50 keys meant 50 inserts, 50
//! deletes, node rewrites as the keys came and went and several log buffers written per flush
//! (about 170 KB written to disk per second for 24 KB of data, and 30% of the agent's CPU). One key
//! per round of polls is one insert, one delete and one log write.
//!
//! Layout: the byte [`MAGIC`], then per record its length (u32, little endian) and its payload (the
//! published JSON). A value that starts with `{` is a record of an older store, stored alone: a
//! block of one. Seqs are implied: the i-th record of the block under seq `s` is seq `s + i`.

/// First byte of a block (never `{`, the first byte of a lone JSON record).
pub const MAGIC: u8 = 0xB1;

/// Most records in one block: what a crash can make the publisher send twice is one block per
/// partially acknowledged block, so blocks stay small.
pub const MAX_RECORDS: usize = 256;
/// A block is closed once its payloads reach this many bytes.
pub const MAX_BYTES: usize = 64 * 1024;

/// Where each record's payload lies in a block value: (offset, length).
pub type Spans = Vec<(usize, usize)>;

/// A stored value that is not a block (a bug or a corrupted store).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadBlock {
    #[error("empty value")]
    Empty,
    #[error("unknown block format (first byte 0x{0:02x})")]
    Format(u8),
    #[error(
        "record {index} runs past the end of the block ({len} bytes at offset {at} of {total})"
    )]
    Truncated {
        index: usize,
        at: usize,
        len: usize,
        total: usize,
    },
}

/// The records of a stored value, in order.
pub fn spans(value: &[u8]) -> Result<Spans, BadBlock> {
    match value.first() {
        None => Err(BadBlock::Empty),
        Some(b'{') => Ok(vec![(0, value.len())]),
        Some(&MAGIC) => {
            let mut out = Vec::new();
            let mut at = 1;
            while at < value.len() {
                let len_bytes = value.get(at..at + 4).ok_or(BadBlock::Truncated {
                    index: out.len(),
                    at,
                    len: 4,
                    total: value.len(),
                })?;
                let len =
                    u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]])
                        as usize;
                let start = at + 4;
                if value.len() - start < len {
                    return Err(BadBlock::Truncated {
                        index: out.len(),
                        at: start,
                        len,
                        total: value.len(),
                    });
                }
                out.push((start, len));
                at = start + len;
            }
            Ok(out)
        }
        Some(&other) => Err(BadBlock::Format(other)),
    }
}

/// Builds one block in a reused buffer.
pub struct Builder {
    buf: Vec<u8>,
    records: usize,
    open: Option<usize>,
}

impl Builder {
    pub fn new() -> Builder {
        let mut buf = Vec::with_capacity(MAX_BYTES / 2);
        buf.push(MAGIC);
        Builder {
            buf,
            records: 0,
            open: None,
        }
    }

    /// Start a record: write its payload into the returned buffer, then [`Builder::end_record`]
    /// (or [`Builder::abandon_record`]).
    pub fn begin_record(&mut self) -> &mut Vec<u8> {
        self.open = Some(self.buf.len());
        self.buf.extend_from_slice(&[0; 4]);
        &mut self.buf
    }

    /// Close the record begun last; returns its payload length.
    pub fn end_record(&mut self) -> usize {
        let Some(at) = self.open.take() else {
            return 0;
        };
        let len = self.buf.len() - at - 4;
        let le = (len as u32).to_le_bytes();
        if let Some(slot) = self.buf.get_mut(at..at + 4) {
            slot.copy_from_slice(&le);
        }
        self.records += 1;
        len
    }

    /// Drop the record begun last.
    pub fn abandon_record(&mut self) {
        if let Some(at) = self.open.take() {
            self.buf.truncate(at);
        }
    }

    pub fn records(&self) -> usize {
        self.records
    }

    /// True once the block should be closed.
    pub fn full(&self) -> bool {
        self.records >= MAX_RECORDS || self.buf.len() >= MAX_BYTES
    }

    /// The finished block; the builder starts a new one.
    pub fn take(&mut self) -> Vec<u8> {
        self.records = 0;
        self.open = None;
        let mut next = Vec::with_capacity(MAX_BYTES / 2);
        next.push(MAGIC);
        std::mem::replace(&mut self.buf, next)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn build(records: &[&[u8]]) -> Vec<u8> {
        let mut b = Builder::new();
        for r in records {
            b.begin_record().extend_from_slice(r);
            b.end_record();
        }
        b.take()
    }

    #[test]
    fn records_come_back_in_order() {
        let v = build(&[b"{\"a\":1}", b"", b"{\"b\":22}"]);
        let s = spans(&v).unwrap();
        let got: Vec<&[u8]> = s.iter().map(|&(o, l)| &v[o..o + l]).collect();
        assert_eq!(got, vec![&b"{\"a\":1}"[..], b"", b"{\"b\":22}"]);
    }

    #[test]
    fn an_abandoned_record_leaves_no_trace() {
        let mut b = Builder::new();
        b.begin_record().extend_from_slice(b"{\"x\":1}");
        b.end_record();
        b.begin_record().extend_from_slice(b"half");
        b.abandon_record();
        assert_eq!(b.records(), 1);
        let v = b.take();
        assert_eq!(spans(&v).unwrap(), vec![(5, 7)]);
    }

    #[test]
    fn a_lone_json_record_of_an_older_store_is_a_block_of_one() {
        let v = br#"{"seq":1}"#;
        assert_eq!(spans(v).unwrap(), vec![(0, v.len())]);
    }

    #[test]
    fn bad_values_are_errors_not_panics() {
        assert_eq!(spans(b""), Err(BadBlock::Empty));
        assert_eq!(spans(b"\x07abc"), Err(BadBlock::Format(7)));
        let mut v = build(&[b"{\"a\":1}"]);
        v.truncate(v.len() - 1);
        assert!(matches!(
            spans(&v),
            Err(BadBlock::Truncated { index: 0, .. })
        ));
        assert!(matches!(
            spans(&[MAGIC, 1, 0]),
            Err(BadBlock::Truncated { .. })
        ));
        // Any byte string: never a panic.
        for n in 0..64u32 {
            let v: Vec<u8> = (0..n).map(|i| (i.wrapping_mul(97) ^ n) as u8).collect();
            let _ = spans(&v);
        }
    }

    #[test]
    fn a_block_is_full_at_its_record_or_byte_limit() {
        let mut b = Builder::new();
        for _ in 0..MAX_RECORDS - 1 {
            b.begin_record().push(b'{');
            b.end_record();
        }
        assert!(!b.full());
        b.begin_record().push(b'{');
        b.end_record();
        assert!(b.full());
        let mut b = Builder::new();
        b.begin_record()
            .extend(std::iter::repeat_n(b'x', MAX_BYTES));
        b.end_record();
        assert!(b.full());
    }
}
