//! A store outage as the store writer lives it (sans I/O: instants in, decisions out): when to
//! log (the first failure, then a summary a minute with the count, then the recovery) and when
//! to try reopening the store (backoff from 1 s to 30 s).
//!
//! Why: on a full disk every round of polls fails; an ERROR line per round (ten a second on a
//! fast job) floods the journal, which is on the same full disk.

use std::time::{Duration, Instant};

/// A summary of the polls lost is logged this often while the outage lasts.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(60);
/// First and longest wait between two attempts at reopening the store.
pub const RETRY_MIN: Duration = Duration::from_secs(1);
pub const RETRY_MAX: Duration = Duration::from_secs(30);

/// What to log after polls were lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Log {
    /// The first loss of an outage: log it with its error.
    Started,
    /// Polls lost since the last line (at most one a [`SUMMARY_EVERY`]), and since the outage began.
    Summary {
        lost: u64,
        total: u64,
    },
    Nothing,
}

#[derive(Debug)]
struct Down {
    since: Instant,
    total: u64,
    unreported: u64,
    reported_at: Instant,
    retry_at: Instant,
    backoff: Duration,
}

/// The writer's view of the store's health.
#[derive(Debug, Default)]
pub struct Outage {
    down: Option<Down>,
}

/// The end of an outage: how long it lasted and how many polls were lost in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    pub lasted: Duration,
    pub lost: u64,
}

impl Outage {
    /// `n` polls could not be stored at `now`.
    pub fn lost(&mut self, now: Instant, n: u64) -> Log {
        match &mut self.down {
            None => {
                self.down = Some(Down {
                    since: now,
                    total: n,
                    unreported: 0,
                    reported_at: now,
                    retry_at: now + RETRY_MIN,
                    backoff: RETRY_MIN,
                });
                Log::Started
            }
            Some(d) => {
                d.total += n;
                d.unreported += n;
                if now.duration_since(d.reported_at) >= SUMMARY_EVERY {
                    let lost = std::mem::take(&mut d.unreported);
                    d.reported_at = now;
                    Log::Summary {
                        lost,
                        total: d.total,
                    }
                } else {
                    Log::Nothing
                }
            }
        }
    }

    /// Whether reopening the store is due at `now` (the store is broken and the backoff passed).
    pub fn retry_due(&self, now: Instant) -> bool {
        self.down.as_ref().is_none_or(|d| now >= d.retry_at)
    }

    /// A reopen failed at `now`: wait twice as long before the next one.
    pub fn retry_failed(&mut self, now: Instant) {
        let d = self.down.get_or_insert(Down {
            since: now,
            total: 0,
            unreported: 0,
            reported_at: now,
            retry_at: now,
            backoff: RETRY_MIN / 2,
        });
        d.backoff = (d.backoff * 2).min(RETRY_MAX);
        d.retry_at = now + d.backoff;
    }

    /// The store works again at `now`: the outage, if there was one.
    pub fn recovered(&mut self, now: Instant) -> Option<Ended> {
        self.down.take().map(|d| Ended {
            lasted: now.duration_since(d.since),
            lost: d.total,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ten_failures_a_second_for_three_minutes_log_one_line_then_one_a_minute() {
        let t0 = Instant::now();
        let mut o = Outage::default();
        let mut lines = Vec::new();
        for i in 0..1800u64 {
            let now = t0 + Duration::from_millis(100 * i);
            match o.lost(now, 50) {
                Log::Nothing => {}
                l => lines.push(l),
            }
        }
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0], Log::Started);
        assert_eq!(
            lines[1],
            Log::Summary {
                lost: 600 * 50,
                total: 601 * 50
            }
        );
        let end = o.recovered(t0 + Duration::from_secs(180)).unwrap();
        assert_eq!(end.lost, 1800 * 50);
        assert_eq!(end.lasted, Duration::from_secs(180));
        assert!(o.recovered(t0).is_none(), "one outage, ended once");
    }

    #[test]
    fn reopening_backs_off_to_thirty_seconds() {
        let t0 = Instant::now();
        let mut o = Outage::default();
        assert!(o.retry_due(t0), "nothing failed yet");
        o.lost(t0, 1);
        assert!(!o.retry_due(t0));
        assert!(o.retry_due(t0 + RETRY_MIN));
        let mut now = t0 + RETRY_MIN;
        let mut waits = Vec::new();
        for _ in 0..8 {
            o.retry_failed(now);
            let mut wait = Duration::ZERO;
            while !o.retry_due(now + wait) {
                wait += Duration::from_millis(500);
            }
            waits.push(wait.as_secs());
            now += wait;
        }
        assert_eq!(waits, vec![2, 4, 8, 16, 30, 30, 30, 30]);
    }
}
