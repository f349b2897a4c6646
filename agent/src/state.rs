//! The running agent's shared state: per-meter health, MQTT connection, store counters. Pollers and
//! the publisher update it; a small task writes it to `data_dir/status.json` every few seconds so
//! that `plantmeter status` can read it while sled's lock keeps the store itself closed to others.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::store::StoreStats;

/// The file the running agent keeps up to date inside `data_dir`.
pub const STATUS_FILE: &str = "status.json";

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
    pub meters: Vec<MeterState>,
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

/// Write `dir/status.json` atomically (temporary file, then rename).
pub fn write_status_file(dir: &Path, status: &AgentStatus) -> std::io::Result<()> {
    let tmp = dir.join(format!("{STATUS_FILE}.tmp"));
    let bytes = serde_json::to_vec_pretty(status).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, dir.join(STATUS_FILE))
}
