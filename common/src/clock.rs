//! Wall clock or virtual clock (`--clock-start T --clock-speed X`): months pass in seconds for tests and the demo.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A clock reading milliseconds since the Unix epoch (UTC).
///
/// The virtual clock starts at `start_ms` when created and runs `speed` times faster than real time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    anchor: Instant,
    start_ms: i64,
    speed: f64,
}

impl Clock {
    /// The system clock.
    pub fn wall() -> Clock {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Clock {
            anchor: Instant::now(),
            start_ms: now,
            speed: 1.0,
        }
    }

    /// A virtual clock starting now at `start_ms`, running `speed` (> 0) times real time.
    pub fn virtual_from(start_ms: i64, speed: f64) -> Clock {
        Clock {
            anchor: Instant::now(),
            start_ms,
            speed: if speed.is_finite() && speed > 0.0 {
                speed
            } else {
                1.0
            },
        }
    }

    /// A virtual clock anchored at an earlier instant (to share one time base between threads or processes).
    pub fn virtual_anchored(anchor: Instant, start_ms: i64, speed: f64) -> Clock {
        Clock {
            anchor,
            ..Clock::virtual_from(start_ms, speed)
        }
    }

    /// A virtual clock that read `start_ms` at the wall-clock instant `anchor_unix_ms` (ms since the Unix
    /// epoch). Processes given the same three numbers share one time base to the millisecond, whenever
    /// each of them starts (the demo and the end-to-end tests run simulator and agent this way).
    pub fn virtual_at_wall(anchor_unix_ms: i64, start_ms: i64, speed: f64) -> Clock {
        let now_instant = Instant::now();
        // Microseconds: at a virtual speed of 1e6, one real millisecond is a quarter of an hour.
        let now_wall_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0);
        let behind_us = now_wall_us - anchor_unix_ms * 1000;
        let anchor = if behind_us >= 0 {
            now_instant
                .checked_sub(Duration::from_micros(behind_us as u64))
                .unwrap_or(now_instant)
        } else {
            now_instant + Duration::from_micros(behind_us.unsigned_abs())
        };
        Clock::virtual_anchored(anchor, start_ms, speed)
    }

    /// The clock chosen by the command-line options `--clock-start RFC3339`, `--clock-speed X` and
    /// `--clock-anchor UNIX_MS`: the wall clock when none is given.
    pub fn from_options(
        start: Option<&str>,
        speed: Option<f64>,
        anchor_unix_ms: Option<i64>,
    ) -> Result<Clock, String> {
        if let Some(x) = speed {
            if !(x.is_finite() && x > 0.0) {
                return Err(format!("--clock-speed must be a positive number, got {x}"));
            }
        }
        let start_ms = match start {
            Some(s) => Some(crate::model::parse_ts_ms(s).ok_or_else(|| {
                format!("--clock-start must be an RFC 3339 timestamp (2025-01-01T00:00:00+08:00), got {s:?}")
            })?),
            None => None,
        };
        Ok(match (start_ms, speed, anchor_unix_ms) {
            (None, None, None) => Clock::wall(),
            (None, _, _) => {
                let wall = Clock::wall();
                let speed = speed.unwrap_or(1.0);
                match anchor_unix_ms {
                    Some(a) => Clock::virtual_at_wall(a, a, speed),
                    None => Clock::virtual_from(wall.start_ms, speed),
                }
            }
            (Some(t), _, Some(a)) => Clock::virtual_at_wall(a, t, speed.unwrap_or(1.0)),
            (Some(t), _, None) => Clock::virtual_from(t, speed.unwrap_or(1.0)),
        })
    }

    /// Milliseconds since the Unix epoch, in this clock's time.
    pub fn now_ms(&self) -> i64 {
        self.at(Instant::now())
    }

    /// This clock's time at a given real instant.
    pub fn at(&self, instant: Instant) -> i64 {
        let real = instant.saturating_duration_since(self.anchor).as_secs_f64();
        self.start_ms + (real * self.speed * 1000.0) as i64
    }

    /// The real instant at which this clock reads `ms` (never earlier than the anchor).
    pub fn instant_of(&self, ms: i64) -> Instant {
        let virt = (ms - self.start_ms).max(0) as f64 / 1000.0;
        self.anchor + Duration::from_secs_f64(virt / self.speed)
    }

    /// How long a span of this clock's time lasts in real time.
    pub fn real(&self, virtual_span: Duration) -> Duration {
        Duration::from_secs_f64(virtual_span.as_secs_f64() / self.speed)
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }

    pub fn start_ms(&self) -> i64 {
        self.start_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_clock_runs_faster() {
        let anchor = Instant::now();
        let c = Clock::virtual_anchored(anchor, 1_000_000, 3600.0);
        assert_eq!(c.at(anchor), 1_000_000);
        assert_eq!(c.at(anchor + Duration::from_secs(1)), 1_000_000 + 3_600_000);
        assert_eq!(
            c.instant_of(1_000_000 + 3_600_000),
            anchor + Duration::from_secs(1)
        );
        assert_eq!(c.real(Duration::from_secs(3600)), Duration::from_secs(1));
    }

    #[test]
    fn clocks_with_the_same_wall_anchor_agree() {
        let anchor = Clock::wall().now_ms() - 5_000;
        let a = Clock::virtual_at_wall(anchor, 0, 1000.0);
        std::thread::sleep(Duration::from_millis(20));
        let b = Clock::virtual_at_wall(anchor, 0, 1000.0);
        let (ta, tb) = (a.now_ms(), b.now_ms());
        assert!((ta - tb).abs() < 50, "{ta} vs {tb}");
        assert!(ta >= 5_000_000, "{ta}");
    }

    #[test]
    fn options_are_checked() {
        assert!(Clock::from_options(None, Some(0.0), None).is_err());
        assert!(Clock::from_options(Some("yesterday"), Some(2.0), None).is_err());
        let c = Clock::from_options(Some("2025-01-01T00:00:00Z"), Some(10.0), None).unwrap();
        assert!(c.now_ms() >= 1_735_689_600_000);
        assert_eq!(c.speed(), 10.0);
    }
}
