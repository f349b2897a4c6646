//! The system clock as the pollers see it: steps are detected and logged (with their size), and
//! polling waits while the clock reads earlier than the agent's build date (a gateway without a
//! battery clock boots at 1970 or at its image's date; readings stamped then would be wrong by
//! years). `status` and the MQTT status say so; polling starts by itself once the clock is set.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use plantmeter_common::clock::{
    clock_is_set, format_step, system_ms, StepDetector, STEP_TOLERANCE,
};
use plantmeter_common::model::format_ts_ms;

use crate::state::{ClockState, Shared};

/// The date this binary was built, ms since the epoch (see `agent/build.rs`).
pub const BUILD_DATE_MS: &str = env!("PLANTMETER_BUILD_DATE_MS");

/// Test-only: replaces the build date, to show a clock "before the build": an RFC 3339 instant, or
/// `+Ns`, N seconds after the agent starts (the clock then becomes "set" N seconds in).
pub const BUILD_DATE_OVERRIDE_ENV: &str = "PLANTMETER_TEST_BUILD_DATE";

/// How often a poller looks at the system clock again while it is not set.
pub const RECHECK_UNSET: Duration = Duration::from_secs(1);

/// The build date in force: the override's, else the embedded one.
pub fn build_date_ms() -> i64 {
    if let Ok(v) = std::env::var(BUILD_DATE_OVERRIDE_ENV) {
        let from_now = v
            .strip_prefix('+')
            .and_then(|r| r.strip_suffix('s'))
            .and_then(|n| n.parse::<f64>().ok())
            .filter(|n| n.is_finite() && *n >= 0.0)
            .map(|n| system_ms().saturating_add((n * 1000.0) as i64));
        match from_now.or_else(|| plantmeter_common::model::parse_ts_ms(&v)) {
            Some(ms) => return ms,
            None => tracing::warn!(
                value = %v,
                "{BUILD_DATE_OVERRIDE_ENV} is not an RFC 3339 instant; using the build date"
            ),
        }
    }
    BUILD_DATE_MS.parse().unwrap_or(0)
}

/// One per generation of pollers, shared by all of them.
pub struct ClockWatch {
    build_ms: i64,
    origin: Instant,
    inner: Mutex<Inner>,
    shared: Shared,
}

struct Inner {
    detector: StepDetector,
    /// The clock was last seen unset (transitions are logged once, whichever poller sees them).
    unset: bool,
}

impl ClockWatch {
    /// Look at the system clock now (so that `status` tells an unset clock from the start).
    pub fn new(build_ms: i64, shared: Shared) -> ClockWatch {
        let w = ClockWatch {
            build_ms,
            origin: Instant::now(),
            inner: Mutex::new(Inner {
                detector: StepDetector::new(STEP_TOLERANCE),
                unset: false,
            }),
            shared,
        };
        w.check();
        w
    }

    /// Read the system clock: log a step since the last look, note whether the clock is set.
    /// True when readings may be taken.
    pub fn check(&self) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mono = i64::try_from(self.origin.elapsed().as_millis()).unwrap_or(i64::MAX);
        let wall = system_ms();
        if let Some(step) = inner.detector.observe(mono, wall) {
            tracing::warn!(
                step = %format_step(step),
                step_ms = step,
                now = %format_ts_ms(wall),
                "the system clock was stepped; readings are stamped with the new time, polls stay on schedule"
            );
        }
        let set = clock_is_set(wall, self.build_ms);
        let was_set = !inner.unset;
        if set == was_set {
            return set;
        }
        inner.unset = !set;
        if set {
            tracing::info!(now = %format_ts_ms(wall), "the system clock is set: polling starts");
            self.shared.lock().clock = ClockState::Ok;
        } else {
            tracing::warn!(
                now = %format_ts_ms(wall),
                build_date = %format_ts_ms(self.build_ms),
                "the system clock reads earlier than this agent's build date (not set yet: no NTP, no battery clock?): not polling until it is set"
            );
            self.shared.lock().clock = ClockState::Unset;
        }
        set
    }
}
