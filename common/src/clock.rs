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
}
