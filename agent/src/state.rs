//! The running agent's shared state: per-meter health, MQTT connection, store counters. Pollers and
//! the publisher update it; a small task writes it to `data_dir/status.json` every few seconds so
//! that `plantmeter status` can read it while sled's lock keeps the store itself closed to others.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::store::StoreStats;
pub use crate::store::STATUS_FILE;

/// Health of one meter, as published retained on `P/health/{meter}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Not polled yet.
    #[default]
    Unknown,
    Ok,
    Failing,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Ok => "ok",
            Health::Failing => "failing",
        }
    }
}

/// Whether the system clock can stamp readings (`"clock"` in `status.json` and on `P/status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClockState {
    #[default]
    Ok,
    /// Earlier than the agent's build date: not set yet, nothing is polled.
    Unset,
}

impl ClockState {
    pub fn as_str(self) -> &'static str {
        match self {
            ClockState::Ok => "ok",
            ClockState::Unset => "unset",
        }
    }
}

/// What the agent knows about one meter.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct MeterState {
    pub name: String,
    pub bus: String,
    pub state: Health,
    /// Clock time (ms since the epoch) of the last poll, good or not.
    pub last_poll_ms: Option<i64>,
    /// Clock time of the last poll in which every request was answered.
    pub last_ok_ms: Option<i64>,
    /// Failed polls since the last good one (0 while ok).
    pub errors: u64,
    /// Failed polls since the agent started.
    pub total_errors: u64,
    /// Polls since the agent started.
    pub polls: u64,
    /// The last error, naming the request (`timeout reading holding 0..20`).
    pub last_error: Option<String>,
    /// How long the last poll took (all its requests, retries included), in seconds.
    #[serde(default)]
    pub last_latency_s: Option<f64>,
    /// Point values refused as implausible (quality `invalid`) since the agent started.
    #[serde(default)]
    pub invalid_values: u64,
}

impl MeterState {
    /// The retained health payload: `{"state":"ok"|"failing","last_ok":…,"errors":N,"last_error":"…"}`.
    pub fn health_json(&self) -> Vec<u8> {
        let v = serde_json::json!({
            "state": self.state.as_str(),
            "last_ok": self.last_ok_ms.map(plantmeter_common::model::format_ts_ms),
            "errors": self.errors,
            "last_error": self.last_error,
        });
        serde_json::to_vec(&v).unwrap_or_default()
    }
}

/// Everything `status` shows; also the content of `status.json`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct AgentStatus {
    /// Process id of the agent that wrote it.
    pub pid: u32,
    pub version: String,
    /// Wall time (ms) the agent started and last wrote this.
    pub started_ms: i64,
    pub updated_ms: i64,
    /// False once the agent has shut down cleanly.
    pub running: bool,
    pub mqtt_connected: bool,
    /// Data messages acknowledged by the broker since the agent started.
    pub acked: u64,
    pub store: StoreStats,
    /// Where an unreadable store was moved aside at start, if it was.
    pub store_moved_aside: Option<PathBuf>,
    /// The system clock: `unset` while it reads earlier than the build date (no polling then).
    #[serde(default)]
    pub clock: ClockState,
    pub meters: Vec<MeterState>,
    /// Acknowledgements over time, for the publish rate (not written to `status.json`).
    #[serde(skip)]
    pub ack_rate: AckRate,
}

/// The window over which the publish rate is computed (wall time).
pub const ACK_RATE_WINDOW_MS: i64 = 10_000;

/// Acknowledged data messages per second over a sliding window: samples of the running total,
/// at most one per second, enough of them to cover [`ACK_RATE_WINDOW_MS`].
#[derive(Debug, Clone, Default)]
pub struct AckRate {
    /// (wall ms, acknowledged total at that instant), oldest first.
    samples: std::collections::VecDeque<(i64, u64)>,
}

impl AckRate {
    /// Note that `total` messages have been acknowledged since start, at wall time `now_ms`.
    pub fn record(&mut self, now_ms: i64, total: u64) {
        // Samples stay about a second apart: while the one before the newest is less than a second
        // old, the newest moves forward instead of a new one being added.
        let n = self.samples.len();
        let recent = n >= 2 && self.samples.get(n - 2).is_some_and(|s| now_ms - s.0 < 1000);
        match self.samples.back_mut() {
            Some(last) if recent => *last = (now_ms, total),
            _ => self.samples.push_back((now_ms, total)),
        }
        self.trim(now_ms);
    }

    /// Drop samples older than needed: keep one at or before the window's start.
    fn trim(&mut self, now_ms: i64) {
        let start = now_ms - ACK_RATE_WINDOW_MS;
        while self.samples.len() > 1 && self.samples.get(1).is_some_and(|s| s.0 <= start) {
            self.samples.pop_front();
        }
    }

    /// Acknowledgements per second over the last [`ACK_RATE_WINDOW_MS`] (or since the first
    /// sample, if that is more recent), given the total now. 0 without history.
    pub fn per_second(&self, now_ms: i64, total: u64) -> f64 {
        let start = now_ms - ACK_RATE_WINDOW_MS;
        // The running total at the window's start: the last sample at or before it.
        let base = self
            .samples
            .iter()
            .rev()
            .find(|s| s.0 <= start)
            .map(|s| (start, s.1))
            .or_else(|| self.samples.front().copied());
        match base {
            Some((t, n)) if now_ms > t => {
                total.saturating_sub(n) as f64 * 1000.0 / (now_ms - t) as f64
            }
            _ => 0.0,
        }
    }
}

/// Shared, cheaply clonable handle on the agent's status.
#[derive(Clone, Default)]
pub struct Shared(Arc<Mutex<AgentStatus>>);

impl Shared {
    pub fn new(status: AgentStatus) -> Shared {
        Shared(Arc::new(Mutex::new(status)))
    }

    /// Lock it; a poisoned lock still holds consistent plain data, so it is used anyway.
    pub fn lock(&self) -> MutexGuard<'_, AgentStatus> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Read `dir/status.json`, if it is there and readable.
pub fn read_status_file(dir: &Path) -> Option<AgentStatus> {
    let bytes = std::fs::read(dir.join(STATUS_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Write an already serialised status to `dir/status.json` atomically (temporary file, then rename).
pub fn write_status_bytes(dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{STATUS_FILE}.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, dir.join(STATUS_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_rate_is_acks_per_second_over_the_window() {
        let mut r = AckRate::default();
        assert_eq!(r.per_second(0, 0), 0.0, "no history, no rate");
        // 100 acks per second for 30 s.
        for s in 0..=30i64 {
            r.record(s * 1000, s as u64 * 100);
        }
        assert!((r.per_second(30_000, 3000) - 100.0).abs() < 1e-9);
        // Then nothing for 5 s: half the window saw no acks.
        assert!((r.per_second(35_000, 3000) - 50.0).abs() < 1e-9);
        // And nothing for a whole window: 0.
        assert_eq!(r.per_second(41_000, 3000), 0.0);
        // Samples are bounded whatever the uptime.
        for ms in (41_000..1_000_000).step_by(100) {
            r.record(ms, 3000 + ms as u64);
        }
        assert!(r.samples.len() <= 13, "{} samples kept", r.samples.len());
    }

    #[test]
    fn publish_rate_right_after_start_uses_the_time_since_the_first_sample() {
        let mut r = AckRate::default();
        r.record(1_000, 0);
        r.record(3_000, 40);
        assert!((r.per_second(3_000, 40) - 20.0).abs() < 1e-9);
    }
}

/// Whether the agent's loops make progress, for the systemd watchdog: every meter's poll count and the
/// store's next seq must move within a stall window (real time). A failing meter still counts as
/// progress (its poller keeps trying, with capped backoff); a poller or store writer that hangs does not.
#[derive(Debug, Default)]
pub struct Progress {
    meters: std::collections::HashMap<String, (u64, std::time::Instant)>,
    seq: Option<(u64, std::time::Instant)>,
}

impl Progress {
    /// Nothing is expected to move (the system clock is not set: nothing is polled). Forgets what
    /// it saw, so that the window starts afresh when polling does.
    pub fn pause(&mut self) {
        self.meters.clear();
        self.seq = None;
    }

    /// Record what is seen at `now`; Err names what has not moved for longer than `window`.
    pub fn check(
        &mut self,
        now: std::time::Instant,
        meters: &[MeterState],
        next_seq: u64,
        window: std::time::Duration,
    ) -> Result<(), String> {
        let mut stalled = Vec::new();
        // Forget meters that a reload removed.
        self.meters
            .retain(|name, _| meters.iter().any(|m| &m.name == name));
        for m in meters {
            let e = self.meters.entry(m.name.clone()).or_insert((m.polls, now));
            if e.0 != m.polls {
                *e = (m.polls, now);
            } else if now.duration_since(e.1) > window {
                stalled.push(format!("meter {}", m.name));
            }
        }
        let s = self.seq.get_or_insert((next_seq, now));
        if s.0 != next_seq {
            *s = (next_seq, now);
        } else if !meters.is_empty() && now.duration_since(s.1) > window {
            stalled.push("the store writer".to_string());
        }
        if stalled.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "no progress for over {} s: {}",
                window.as_secs(),
                stalled.join(", ")
            ))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod progress_tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn meter(name: &str, polls: u64) -> MeterState {
        MeterState {
            name: name.into(),
            polls,
            ..Default::default()
        }
    }

    #[test]
    fn a_meter_whose_polls_stop_is_named_after_the_window() {
        let w = Duration::from_secs(120);
        let t0 = Instant::now();
        let mut p = Progress::default();
        assert!(p.check(t0, &[meter("a", 1), meter("b", 1)], 3, w).is_ok());
        let t1 = t0 + Duration::from_secs(100);
        assert!(p.check(t1, &[meter("a", 2), meter("b", 1)], 4, w).is_ok());
        let t2 = t0 + Duration::from_secs(121);
        let err = p
            .check(t2, &[meter("a", 3), meter("b", 1)], 5, w)
            .unwrap_err();
        assert!(err.contains("meter b") && !err.contains("meter a"), "{err}");
        // b polls again: healthy again.
        assert!(p.check(t2, &[meter("a", 3), meter("b", 2)], 6, w).is_ok());
    }

    #[test]
    fn a_pause_while_the_clock_is_unset_is_not_a_stall() {
        let w = Duration::from_secs(120);
        let t0 = Instant::now();
        let mut p = Progress::default();
        assert!(p.check(t0, &[meter("a", 0)], 1, w).is_ok());
        // Ten minutes without polls, waiting for NTP: the status task pauses it at every tick.
        p.pause();
        let t1 = t0 + Duration::from_secs(600);
        assert!(
            p.check(t1, &[meter("a", 0)], 1, w).is_ok(),
            "a fresh window once polling starts"
        );
        let t2 = t1 + Duration::from_secs(121);
        assert!(
            p.check(t2, &[meter("a", 0)], 1, w).is_err(),
            "and a stall after it"
        );
    }

    #[test]
    fn a_stuck_store_writer_is_named() {
        let w = Duration::from_secs(120);
        let t0 = Instant::now();
        let mut p = Progress::default();
        assert!(p.check(t0, &[meter("a", 1)], 7, w).is_ok());
        let t1 = t0 + Duration::from_secs(200);
        let err = p.check(t1, &[meter("a", 9)], 7, w).unwrap_err();
        assert!(err.contains("store writer"), "{err}");
    }

    #[test]
    fn meters_removed_by_a_reload_are_forgotten() {
        let w = Duration::from_secs(120);
        let t0 = Instant::now();
        let mut p = Progress::default();
        assert!(p.check(t0, &[meter("old", 1)], 1, w).is_ok());
        let t1 = t0 + Duration::from_secs(500);
        assert!(p.check(t1, &[meter("new", 1)], 2, w).is_ok());
    }
}
