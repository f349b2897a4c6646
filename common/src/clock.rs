//! Wall clock or virtual clock (`--clock-start T --clock-speed X`): months pass in seconds for tests and the demo.
//!
//! Two readings, kept apart on purpose: [`Clock::now_ms`] is the time a reading is stamped with (the
//! wall clock is read afresh every time, so an NTP step shows in the next reading), and
//! [`Clock::schedule_ms`] is the monotonic time base polls are scheduled on (a step of the wall
//! clock never makes a poller sleep for hours or burst). A [`StepDetector`] compares the two.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A clock reading milliseconds since the Unix epoch (UTC).
///
/// The virtual clock starts at `start_ms` when created and runs `speed` times faster than real time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    anchor: Instant,
    start_ms: i64,
    speed: f64,
    /// The system clock: [`Clock::now_ms`] reads it afresh on every call.
    wall: bool,
}

/// The system clock, in ms since the Unix epoch (negative before 1970, as a clock can be).
pub fn system_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

impl Clock {
    /// The system clock.
    pub fn wall() -> Clock {
        Clock {
            anchor: Instant::now(),
            start_ms: system_ms(),
            speed: 1.0,
            wall: true,
        }
    }

    /// True for the system clock, false for a virtual one.
    pub fn is_wall(&self) -> bool {
        self.wall
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
            wall: false,
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

    /// Milliseconds since the Unix epoch, in this clock's time: what a reading is stamped with.
    /// The system clock is read afresh (it may have been stepped since the last call).
    pub fn now_ms(&self) -> i64 {
        if self.wall {
            system_ms()
        } else {
            self.at(Instant::now())
        }
    }

    /// Milliseconds since the Unix epoch on the monotonic time base polls are scheduled on: the
    /// clock's reading when it was created plus the monotonic time elapsed since (times the
    /// speed). For a virtual clock it is [`Clock::now_ms`]; for the system clock it does not
    /// follow steps of the system time.
    pub fn schedule_ms(&self) -> i64 {
        self.at(Instant::now())
    }

    /// This clock's time on the schedule's time base at a given real instant.
    pub fn at(&self, instant: Instant) -> i64 {
        let real = instant.saturating_duration_since(self.anchor).as_secs_f64();
        self.start_ms + (real * self.speed * 1000.0) as i64
    }

    /// The real instant at which the schedule's time base reads `ms` (never earlier than the anchor).
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

/// Compares the wall clock with the monotonic clock between two observations: when they disagree
/// by more than a tolerance, the wall clock was stepped (NTP, an operator, an RTC-less boot being set).
/// Pure: the caller reads both clocks and hands the numbers in.
#[derive(Debug, Clone)]
pub struct StepDetector {
    tolerance_ms: i64,
    /// (monotonic ms, wall ms) of the last observation.
    last: Option<(i64, i64)>,
}

/// The default tolerance of a [`StepDetector`]: NTP slews smaller offsets without a step.
pub const STEP_TOLERANCE: Duration = Duration::from_secs(2);

impl StepDetector {
    pub fn new(tolerance: Duration) -> StepDetector {
        StepDetector {
            tolerance_ms: i64::try_from(tolerance.as_millis()).unwrap_or(i64::MAX),
            last: None,
        }
    }

    /// Note both clocks read at one instant (`mono_ms` from any fixed origin, `wall_ms` since the
    /// epoch). Returns the step of the wall clock since the last observation, in ms (positive:
    /// forward), when it exceeds the tolerance.
    pub fn observe(&mut self, mono_ms: i64, wall_ms: i64) -> Option<i64> {
        let last = self.last.replace((mono_ms, wall_ms));
        let (mono0, wall0) = last?;
        let step = wall_ms
            .saturating_sub(wall0)
            .saturating_sub(mono_ms.saturating_sub(mono0));
        (step.saturating_abs() > self.tolerance_ms).then_some(step)
    }
}

/// Whether the system clock can be trusted to stamp readings: not before `build_ms`, the date the
/// agent was built (a gateway without a battery clock boots at 1970 or at its image's date).
pub fn clock_is_set(system_ms: i64, build_ms: i64) -> bool {
    system_ms >= build_ms
}

/// A clock step for a log line: `+3h 0m 0.000s`, `-0.250s`.
pub fn format_step(step_ms: i64) -> String {
    let sign = if step_ms < 0 { '-' } else { '+' };
    let a = step_ms.unsigned_abs();
    let (h, m, s, ms) = (a / 3_600_000, a / 60_000 % 60, a / 1000 % 60, a % 1000);
    match (h, m) {
        (0, 0) => format!("{sign}{s}.{ms:03}s"),
        (0, _) => format!("{sign}{m}m {s}.{ms:03}s"),
        _ => format!("{sign}{h}h {m}m {s}.{ms:03}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wall_step_beyond_the_tolerance_is_reported_with_its_size() {
        let mut d = StepDetector::new(STEP_TOLERANCE);
        let t0 = 1_795_000_000_000;
        assert_eq!(d.observe(0, t0), None, "nothing to compare with yet");
        // Both clocks advance together (1 ms of drift): no step.
        assert_eq!(d.observe(60_000, t0 + 60_001), None);
        // NTP steps the wall clock 3 h forward between two polls 1 s apart.
        assert_eq!(
            d.observe(61_000, t0 + 61_001 + 3 * 3_600_000),
            Some(3 * 3_600_000)
        );
        // Steady again on the new time.
        assert_eq!(d.observe(62_000, t0 + 62_001 + 3 * 3_600_000), None);
        // A step back of 5 s.
        assert_eq!(
            d.observe(63_000, t0 + 63_001 + 3 * 3_600_000 - 5_000),
            Some(-5_000)
        );
        // Within the tolerance (NTP slewing, scheduling jitter): not a step.
        assert_eq!(d.observe(64_000, t0 + 64_001 + 3 * 3_600_000 - 3_500), None);
        // An RTC-less gateway set from 1970 to now.
        let mut d = StepDetector::new(STEP_TOLERANCE);
        assert_eq!(d.observe(5_000, 5_000), None);
        assert_eq!(d.observe(6_000, t0), Some(t0 - 6_000));
    }

    #[test]
    fn steps_are_written_for_people() {
        assert_eq!(format_step(3 * 3_600_000), "+3h 0m 0.000s");
        assert_eq!(format_step(-250), "-0.250s");
        assert_eq!(format_step(61_500), "+1m 1.500s");
    }

    #[test]
    fn the_clock_is_unset_before_the_build_date() {
        let build = 1_790_000_000_000;
        assert!(!clock_is_set(0, build), "1970 boot");
        assert!(!clock_is_set(build - 1, build));
        assert!(clock_is_set(build, build));
        assert!(clock_is_set(system_ms(), 0));
    }

    #[test]
    fn the_wall_clock_stamps_system_time_and_schedules_on_monotonic_time() {
        let c = Clock::wall();
        assert!(c.is_wall());
        let before = system_ms();
        let now = c.now_ms();
        assert!(now >= before && now <= system_ms());
        // The schedule's base started at the system time and follows monotonic time.
        let anchor = c.anchor;
        assert_eq!(c.at(anchor), c.start_ms());
        assert_eq!(c.at(anchor + Duration::from_secs(2)), c.start_ms() + 2_000);
        assert!(!Clock::virtual_from(0, 2.0).is_wall());
    }

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
