//! Polls the store cannot write (a full or failed disk) kept in memory for the publisher: while the
//! broker takes them they are delivered as usual (QoS 1, in seq order, each seq once given), and only
//! what neither the disk nor the broker could take is an eviction. Bounded by [`MAX_BYTES`]: past it
//! the oldest go, counted as evicted (the gap a subscriber sees). Not durable: a restart during the
//! outage loses what is here (counted as evicted then, by the seq floor's jump), and the gateway's own
//! audit and HJ 212 uplink, which read the store, do not see these polls (a subscriber does).

use std::collections::VecDeque;

use super::Record;

/// Memory the queue may hold (payload and meter bytes): some 10 000 polls of a dozen points, minutes
/// of a busy gateway; the broker usually takes them long before.
pub const MAX_BYTES: u64 = 4 * 1024 * 1024;

/// The queue, oldest first, seqs increasing.
#[derive(Default)]
pub struct Fallback {
    records: VecDeque<Record>,
    bytes: u64,
}

fn size(r: &Record) -> u64 {
    (r.payload.len() + r.meter().map_or(0, str::len) + 16) as u64
}

impl Fallback {
    /// Keep `r` (its seq above every seq kept); returns how many of the oldest went to make room.
    pub fn push(&mut self, r: Record, max_bytes: u64) -> u64 {
        self.bytes += size(&r);
        self.records.push_back(r);
        let mut dropped = 0;
        while self.bytes > max_bytes {
            let Some(old) = self.records.pop_front() else {
                break;
            };
            self.bytes -= size(&old);
            dropped += 1;
        }
        dropped
    }

    /// Up to `limit` records with seq >= `from`, oldest first.
    pub fn from(&self, from: u64, limit: usize) -> Vec<Record> {
        let start = self.records.partition_point(|r| r.seq < from);
        self.records
            .iter()
            .skip(start)
            .take(limit)
            .cloned()
            .collect()
    }

    /// Remove the acknowledged `seqs` (sorted) that are here; the others are returned, for the store.
    pub fn remove_acked(&mut self, seqs: &[u64]) -> Vec<u64> {
        if self.records.is_empty() {
            return seqs.to_vec();
        }
        let mut rest = Vec::new();
        for &s in seqs {
            match self.records.binary_search_by_key(&s, |r| r.seq) {
                Ok(i) => {
                    if let Some(r) = self.records.remove(i) {
                        self.bytes -= size(&r);
                    }
                }
                Err(_) => rest.push(s),
            }
        }
        rest
    }

    pub fn len(&self) -> u64 {
        self.records.len() as u64
    }

    pub fn oldest(&self) -> Option<&Record> {
        self.records.front()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rec(seq: u64) -> Record {
        Record::new(
            seq,
            sled::IVec::from(format!("{{\"seq\":{seq}}}").as_bytes()),
            Some(sled::IVec::from(&b"m"[..])),
        )
    }

    #[test]
    fn bounded_oldest_out_first_and_acks_remove_only_their_own() {
        let mut f = Fallback::default();
        let one = size(&rec(1));
        for s in 1..=5 {
            assert_eq!(f.push(rec(s), 3 * one + 2), u64::from(s > 3));
        }
        assert_eq!(f.len(), 3);
        assert_eq!(f.oldest().map(|r| r.seq), Some(3));
        let seqs: Vec<u64> = f.from(4, 10).iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [4, 5]);
        assert_eq!(f.remove_acked(&[1, 4, 9]), [1, 9]);
        let seqs: Vec<u64> = f.from(0, 10).iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [3, 5]);
    }
}
