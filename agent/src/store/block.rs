//! A block: the records of consecutive seqs stored as one sled value (under the first seq).
//!
//! Why blocks: sled's cost is per key. A round of 50 polls stored as 50 keys meant 50 inserts, 50
//! deletes, node rewrites as the keys came and went and several log buffers written per flush
//! (about 170 KB written to disk per second for 24 KB of data, and 30% of the agent's CPU). One key
//! per round of polls is one insert, one delete and one log write.
//!
//! Layout: the byte [`MAGIC`], then per record its payload's length (u32, little endian), its
//! payload (the published JSON), its meter's name's length (u16, little endian) and that name (the
//! publisher's topic, so that it need not look inside the JSON). Seqs are implied: the i-th record
//! of the block under seq `s` is seq `s + i`.
//!
//! Older stores are read as they are: a block starting with [`MAGIC_V1`] has records without the
//! meter (length and payload only), and a value that starts with `{` is a lone record (a block of
//! one). Their meter is read from the JSON by whoever needs it.

/// First byte of a block (never `{`, the first byte of a lone JSON record).
pub const MAGIC: u8 = 0xB2;
/// First byte of a block written before records carried their meter.
pub const MAGIC_V1: u8 = 0xB1;

/// Most records in one block: what a crash can make the publisher send twice is one block per
/// partially acknowledged block, so blocks stay small.
pub const MAX_RECORDS: usize = 256;
/// A block is closed once its payloads reach this many bytes.
pub const MAX_BYTES: usize = 64 * 1024;

/// Where a record lies in a block value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The payload: offset and length.
    pub payload: (usize, usize),
    /// The meter's name: offset and length (None in the blocks of older stores).
    pub meter: Option<(usize, usize)>,
}

impl Span {
    /// Bytes the record takes in its block beyond its length field.
    pub fn len(&self) -> usize {
        self.payload.1 + self.meter.map_or(0, |(_, n)| 2 + n)
    }
}

/// Where each record lies in a block value, in order.
pub type Spans = Vec<Span>;

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
    let with_meter = match value.first() {
        None => return Err(BadBlock::Empty),
        Some(b'{') => {
            return Ok(vec![Span {
                payload: (0, value.len()),
                meter: None,
            }])
        }
        Some(&MAGIC) => true,
        Some(&MAGIC_V1) => false,
        Some(&other) => return Err(BadBlock::Format(other)),
    };
    let mut out = Vec::new();
    let mut at = 1;
    while at < value.len() {
        let index = out.len();
        let (payload, next) = field(value, at, 4, index)?;
        let meter = if with_meter {
            let (meter, after) = field(value, next, 2, index)?;
            at = after;
            Some(meter)
        } else {
            at = next;
            None
        };
        out.push(Span { payload, meter });
    }
    Ok(out)
}

/// The field at `at` of the `index`-th record: a little-endian length of `width` bytes, then that
/// many bytes. Returns (offset, length) of the bytes and where the next field starts.
fn field(
    value: &[u8],
    at: usize,
    width: usize,
    index: usize,
) -> Result<((usize, usize), usize), BadBlock> {
    let truncated = |at, len| BadBlock::Truncated {
        index,
        at,
        len,
        total: value.len(),
    };
    let len_bytes = value.get(at..at + width).ok_or(truncated(at, width))?;
    let len = len_bytes
        .iter()
        .rev()
        .fold(0usize, |n, &b| (n << 8) | usize::from(b));
    let start = at + width;
    if value.len() - start < len {
        return Err(truncated(start, len));
    }
    Ok(((start, len), start + len))
}

/// Builds one block in a reused buffer.
pub struct Builder {
    buf: Vec<u8>,
    /// The meter of the record begun last (reused).
    meter: String,
    records: usize,
    open: Option<usize>,
}

impl Builder {
    pub fn new() -> Builder {
        let mut buf = Vec::with_capacity(MAX_BYTES / 2);
        buf.push(MAGIC);
        Builder {
            buf,
            meter: String::new(),
            records: 0,
            open: None,
        }
    }

    /// Start a record: write its meter's name and its payload into the returned buffers, then
    /// [`Builder::end_record`] (or [`Builder::abandon_record`]).
    pub fn begin_record(&mut self) -> (&mut String, &mut Vec<u8>) {
        self.open = Some(self.buf.len());
        self.buf.extend_from_slice(&[0; 4]);
        self.meter.clear();
        (&mut self.meter, &mut self.buf)
    }

    /// Close the record begun last; returns the bytes it takes beyond its length field (see
    /// [`Span::len`]).
    pub fn end_record(&mut self) -> usize {
        let Some(at) = self.open.take() else {
            return 0;
        };
        let len = self.buf.len() - at - 4;
        let le = (len as u32).to_le_bytes();
        if let Some(slot) = self.buf.get_mut(at..at + 4) {
            slot.copy_from_slice(&le);
        }
        // Meter names are short (`[a-z0-9_-]`); one longer than a u16 is not carried (the
        // publisher then reads it from the JSON).
        let meter = if self.meter.len() <= usize::from(u16::MAX) {
            self.meter.as_bytes()
        } else {
            &[]
        };
        self.buf
            .extend_from_slice(&(meter.len() as u16).to_le_bytes());
        self.buf.extend_from_slice(meter);
        self.records += 1;
        len + 2 + meter.len()
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
            let (meter, payload) = b.begin_record();
            meter.push_str("m1");
            payload.extend_from_slice(r);
            b.end_record();
        }
        b.take()
    }

    fn payloads<'a>(v: &'a [u8], s: &[Span]) -> Vec<&'a [u8]> {
        s.iter()
            .map(|sp| &v[sp.payload.0..sp.payload.0 + sp.payload.1])
            .collect()
    }

    #[test]
    fn records_come_back_in_order() {
        let v = build(&[b"{\"a\":1}", b"", b"{\"b\":22}"]);
        let s = spans(&v).unwrap();
        assert_eq!(
            payloads(&v, &s),
            vec![&b"{\"a\":1}"[..], b"", b"{\"b\":22}"]
        );
        for sp in &s {
            let (at, len) = sp.meter.unwrap();
            assert_eq!(&v[at..at + len], b"m1", "each record carries its meter");
        }
    }

    #[test]
    fn an_abandoned_record_leaves_no_trace() {
        let mut b = Builder::new();
        b.begin_record().1.extend_from_slice(b"{\"x\":1}");
        b.end_record();
        let (meter, payload) = b.begin_record();
        meter.push_str("half");
        payload.extend_from_slice(b"half");
        b.abandon_record();
        assert_eq!(b.records(), 1);
        let v = b.take();
        assert_eq!(
            spans(&v).unwrap(),
            vec![Span {
                payload: (5, 7),
                meter: Some((14, 0))
            }]
        );
    }

    #[test]
    fn a_lone_json_record_of_an_older_store_is_a_block_of_one() {
        let v = br#"{"seq":1}"#;
        assert_eq!(
            spans(v).unwrap(),
            vec![Span {
                payload: (0, v.len()),
                meter: None
            }]
        );
    }

    #[test]
    fn a_block_of_an_older_store_has_records_without_their_meter() {
        let mut v = vec![MAGIC_V1];
        for r in [&b"{\"a\":1}"[..], b"{\"b\":22}"] {
            v.extend_from_slice(&(r.len() as u32).to_le_bytes());
            v.extend_from_slice(r);
        }
        let s = spans(&v).unwrap();
        assert_eq!(payloads(&v, &s), vec![&b"{\"a\":1}"[..], b"{\"b\":22}"]);
        assert!(s.iter().all(|sp| sp.meter.is_none()));
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
        // A payload whole but its meter cut short.
        assert!(matches!(
            spans(&[MAGIC, 1, 0, 0, 0, b'{', 3, 0, b'a']),
            Err(BadBlock::Truncated { index: 0, .. })
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
            b.begin_record().1.push(b'{');
            b.end_record();
        }
        assert!(!b.full());
        b.begin_record().1.push(b'{');
        b.end_record();
        assert!(b.full());
        let mut b = Builder::new();
        b.begin_record()
            .1
            .extend(std::iter::repeat_n(b'x', MAX_BYTES));
        b.end_record();
        assert!(b.full());
    }
}
