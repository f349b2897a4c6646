//! The running agent's `data_dir/status.json`, read by `plantmeter status`: what it starts with, and
//! when it is worth rewriting (at once when something beyond counters changed, else every 10 s).

use std::time::Duration;

use plantmeter_common::Plan;

use crate::state::{self, AgentStatus, MeterState, Shared};
use crate::store::Store;
use plantmeter_common::clock::system_ms;

/// How often the status is looked at (watchdog progress; more often when half of systemd's
/// `WatchdogSec` is shorter) and, when something `status` shows beyond counters changed,
/// `status.json` rewritten.
pub(super) const STATUS_EVERY: Duration = Duration::from_secs(2);
/// In steady state (connected, no backlog beyond a round of polls, no health or eviction change)
/// `status.json` is rewritten this often only: each rewrite is a file creation and a rename.
pub(super) const STATUS_STEADY_EVERY: Duration = Duration::from_secs(10);

pub(super) fn initial_status(plan: &Plan, store: &Store) -> AgentStatus {
    let now = system_ms();
    AgentStatus {
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").into(),
        started_ms: now,
        updated_ms: now,
        running: true,
        mqtt_connected: false,
        acked: 0,
        store: store.stats(),
        store_moved_aside: store.moved_aside.clone(),
        clock: state::ClockState::Ok,
        ack_rate: state::AckRate::default(),
        meters: meter_states(plan, &[]),
    }
}

/// One state per meter of `plan`, in `Plan::meters()` order; a meter already known (by name, from
/// before a reload) keeps its counters and health.
pub(super) fn meter_states(plan: &Plan, before: &[MeterState]) -> Vec<MeterState> {
    plan.buses
        .iter()
        .flat_map(|b| {
            b.meters.iter().map(|m| {
                let mut st = before
                    .iter()
                    .find(|o| o.name == m.name)
                    .cloned()
                    .unwrap_or_else(|| MeterState {
                        name: m.name.clone(),
                        ..MeterState::default()
                    });
                st.bus = b.name.clone();
                st
            })
        })
        .collect()
}

/// What `status.json` shows beyond counters that advance every poll: when it changes, the file is
/// rewritten at the next status tick rather than at the next steady-state rewrite.
#[derive(PartialEq, Eq)]
pub(super) struct StatusKey {
    mqtt_connected: bool,
    evicted: u64,
    /// Meters ok and failing, and errors since start, over all meters.
    ok: usize,
    failing: usize,
    errors: u64,
    /// The backlog is more than a round of polls (a drain or an outage: its figure moves).
    backlog_growing: bool,
}

impl StatusKey {
    pub(super) fn of(shared: &Shared, store: &Store) -> StatusKey {
        let backlog = store.backlog();
        let st = shared.lock();
        StatusKey {
            mqtt_connected: st.mqtt_connected,
            evicted: store.evicted(),
            ok: st
                .meters
                .iter()
                .filter(|m| m.state == state::Health::Ok)
                .count(),
            failing: st
                .meters
                .iter()
                .filter(|m| m.state == state::Health::Failing)
                .count(),
            errors: st.meters.iter().map(|m| m.total_errors).sum(),
            backlog_growing: backlog > st.meters.len() as u64,
        }
    }

    /// Nothing worth an early rewrite: connected, no backlog beyond a round of polls.
    pub(super) fn steady(&self) -> bool {
        self.mqtt_connected && !self.backlog_growing
    }
}

pub(super) fn write_status(dir: &std::path::Path, shared: &Shared, store: &Store, running: bool) {
    // The store is read outside the shared lock; the state is serialised under it (no copy of
    // every meter's state) and written after.
    let stats = store.stats();
    let bytes = {
        let mut st = shared.lock();
        st.store = stats;
        st.updated_ms = system_ms();
        st.running = running;
        serde_json::to_vec(&*st)
    };
    let written = bytes
        .map_err(std::io::Error::other)
        .and_then(|b| state::write_status_bytes(dir, &b));
    if let Err(e) = written {
        tracing::debug!(error = %e, "cannot write status.json");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::run::tests::config;

    #[test]
    fn reloaded_meters_keep_their_state_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, config(&dir.path().join("data"), &["a", "b"])).unwrap();
        let plan = plantmeter_common::config::load(&path).unwrap();
        let before = vec![MeterState {
            name: "b".into(),
            bus: "old".into(),
            polls: 7,
            state: state::Health::Ok,
            ..MeterState::default()
        }];
        let after = meter_states(&plan, &before);
        assert_eq!(after.len(), 2);
        assert_eq!((after[0].name.as_str(), after[0].polls), ("a", 0));
        assert_eq!((after[1].name.as_str(), after[1].polls), ("b", 7));
        assert_eq!(after[1].bus, "b");
    }
}
