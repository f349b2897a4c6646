//! The delivery contract as a subscriber checks it (CONTRACT.md): every seq arrives, a duplicate
//! is byte-identical to the first copy, and seq goes backwards only where the agent resends after
//! a reconnect. Sans-I/O: the demo's subscriber and the end-to-end tests feed it what they receive.

use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// What a subscriber received, as far as the contract goes.
#[derive(Debug, Default, Clone)]
pub struct DeliveryCheck {
    /// Data messages received, duplicates included.
    pub data: u64,
    /// Distinct seqs received.
    pub distinct: u64,
    /// Data messages whose seq had been received before (resent after a reconnect).
    pub duplicates: u64,
    /// Duplicates whose payload differs from the first copy (a contract violation; should stay 0).
    pub duplicates_differing: u64,
    /// How often seq went backwards (a resend after a reconnect starts again from the oldest
    /// unacknowledged).
    pub backwards: u64,
    pub max_seq: u64,
    last_seq: u64,
    /// Payload hash per seq received (memory grows with what was received, whatever the seqs).
    seen: HashMap<u64, u64>,
}

/// A breach of the delivery contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("{count} of {of} seqs missing, first: {first:?}")]
    Missing {
        count: usize,
        of: u64,
        first: Vec<u64>,
    },
    #[error("{0} duplicates differ from the first copy of their seq")]
    DuplicateDiffers(u64),
    #[error("seq went backwards {times} times, more than the {allowed} resends allowed")]
    Backwards { times: u64, allowed: u64 },
}

impl DeliveryCheck {
    /// Note a data message numbered `seq`; true if it is the first copy of its seq.
    pub fn record(&mut self, seq: u64, payload: &[u8]) -> bool {
        self.data += 1;
        let mut h = DefaultHasher::new();
        payload.hash(&mut h);
        let hash = h.finish();
        let first = match self.seen.entry(seq) {
            Entry::Vacant(slot) => {
                slot.insert(hash);
                self.distinct += 1;
                true
            }
            Entry::Occupied(slot) => {
                self.duplicates += 1;
                if *slot.get() != hash {
                    self.duplicates_differing += 1;
                }
                false
            }
        };
        if seq < self.last_seq {
            self.backwards += 1;
        }
        self.last_seq = seq;
        self.max_seq = self.max_seq.max(seq);
        first
    }

    /// Seqs in `1..next_seq` never received.
    pub fn missing(&self, next_seq: u64) -> Vec<u64> {
        (1..next_seq)
            .filter(|s| !self.seen.contains_key(s))
            .collect()
    }

    /// The contract over everything received, for an agent whose next seq is `next_seq` and that
    /// resent after at most `resends` reconnects.
    pub fn verify(&self, next_seq: u64, resends: u64) -> Result<(), DeliveryError> {
        let missing = self.missing(next_seq);
        if !missing.is_empty() {
            return Err(DeliveryError::Missing {
                count: missing.len(),
                of: next_seq.saturating_sub(1),
                first: missing.into_iter().take(10).collect(),
            });
        }
        if self.duplicates_differing > 0 {
            return Err(DeliveryError::DuplicateDiffers(self.duplicates_differing));
        }
        if self.backwards > resends {
            return Err(DeliveryError::Backwards {
                times: self.backwards,
                allowed: resends,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_duplicates_gaps_and_resends() {
        let mut d = DeliveryCheck::default();
        for s in [1, 2, 3, 5, 3, 4, 5] {
            d.record(s, format!("m{s}").as_bytes());
        }
        assert!(!d.record(2, b"other"), "a second copy");
        assert_eq!(
            (d.data, d.distinct, d.duplicates, d.duplicates_differing),
            (8, 5, 3, 1)
        );
        assert_eq!(d.backwards, 2);
        assert!(d.missing(6).is_empty());
        assert_eq!(d.missing(8), vec![6, 7]);
        assert_eq!(
            d.verify(8, 2),
            Err(DeliveryError::Missing {
                count: 2,
                of: 7,
                first: vec![6, 7]
            })
        );
        assert_eq!(d.verify(6, 2), Err(DeliveryError::DuplicateDiffers(1)));
    }

    #[test]
    fn seq_going_back_more_often_than_the_resends_is_a_breach() {
        let mut d = DeliveryCheck::default();
        for s in [1, 2, 1, 2, 1, 2] {
            d.record(s, b"same");
        }
        assert_eq!(d.verify(3, 2), Ok(()));
        assert_eq!(
            d.verify(3, 1),
            Err(DeliveryError::Backwards {
                times: 2,
                allowed: 1
            })
        );
    }
}
