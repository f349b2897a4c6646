//! `plantmeter status --config FILE`: backlog, oldest unsent, evictions, per-meter state.
//!
//! Works while the agent runs: sled locks the store, so the running agent keeps
//! `data_dir/status.json` up to date (every 2 s) and this reads it. Without a running agent the
//! store is opened and the figures computed from it; per-meter state then comes from the last
//! status file the agent wrote.

use std::fmt::Write as _;
use std::path::PathBuf;

use chrono::{FixedOffset, TimeZone};
use plantmeter_common::model::format_ts_ms;

use crate::state::{self, AgentStatus};
use crate::store::{OpenError, Store, StoreStats};

#[derive(clap::Args)]
pub struct StatusArgs {
    /// The agent's TOML configuration.
    #[arg(long)]
    pub config: PathBuf,
    /// Print the status as JSON (the content of `status.json`, with the store's figures).
    #[arg(long)]
    pub json: bool,
}

/// Where the figures came from.
enum Source {
    /// The running agent's status file (the store is locked by it).
    Running(Option<AgentStatus>),
    /// The store itself (no agent running), with the last status file, if any.
    Store(StoreStats, Option<AgentStatus>),
    /// No store yet.
    Empty,
}

pub fn main(args: StatusArgs) -> anyhow::Result<()> {
    let plan = crate::exit::load_plan(&args.config, crate::exit::Needs::Polling)?;
    let dir = &plan.gateway.data_dir;
    let source = if !dir.exists() {
        Source::Empty
    } else {
        match Store::open_existing(dir, plan.gateway.store_max_mb) {
            Ok(store) => Source::Store(store.stats(), state::read_status_file(dir)),
            Err(OpenError::Locked(_)) => Source::Running(state::read_status_file(dir)),
            Err(e) => return Err(e.into()),
        }
    };
    let now = plantmeter_common::clock::system_ms();
    if args.json {
        let value = match &source {
            Source::Running(s) => serde_json::json!({"agent_running": true, "status": s}),
            Source::Store(stats, s) => {
                serde_json::json!({"agent_running": false, "store": stats, "last_status": s})
            }
            Source::Empty => serde_json::json!({"agent_running": false, "store": null}),
        };
        let mut value = value;
        if plan.hj212.is_some() {
            value["hj212"] = serde_json::json!(crate::hj212::read_status(&plan));
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let tz = crate::local_time::plant_tz(&plan);
    print!("{}", render(&dir.display().to_string(), &source, now, tz));
    if let Some(line) = crate::hj212::status_line(&plan) {
        print!("{line}");
    }
    Ok(())
}

fn ago(now: i64, then: i64) -> String {
    let s = (now - then).max(0) / 1000;
    match s {
        0..=119 => format!("{s} s ago"),
        120..=7199 => format!("{} min ago", s / 60),
        _ => format!("{} h ago", s / 3600),
    }
}

/// An instant (ms since the epoch) in the plant's timezone, to the second: `2026-11-30 18:04:05`.
fn local(ms: i64, tz: FixedOffset) -> String {
    match tz.timestamp_millis_opt(ms).single() {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => format_ts_ms(ms),
    }
}

fn render(dir: &str, source: &Source, now: i64, tz: FixedOffset) -> String {
    let mut out = String::new();
    let (stats, status) = match source {
        Source::Empty => {
            let _ = writeln!(out, "store     {dir}: none yet (the agent has not run)");
            return out;
        }
        Source::Running(Some(s)) => {
            let _ = writeln!(
                out,
                "store     {dir} (agent running, pid {}, figures of {})",
                s.pid,
                ago(now, s.updated_ms)
            );
            (s.store.clone(), Some(s))
        }
        Source::Running(None) => {
            let _ = writeln!(
                out,
                "store     {dir} is in use by another process, which wrote no status.json (not plantmeter run?)"
            );
            return out;
        }
        Source::Store(stats, s) => {
            let _ = writeln!(out, "store     {dir} (agent not running)");
            (stats.clone(), s.as_ref())
        }
    };
    let _ = writeln!(
        out,
        "backlog   {} unsent records ({:.1} KiB)",
        stats.backlog,
        stats.backlog_bytes as f64 / 1024.0
    );
    match (stats.oldest_seq, stats.oldest_ts_ms) {
        (Some(seq), Some(ts)) => {
            let _ = writeln!(
                out,
                "oldest    seq {seq}, polled {} ({tz}, {})",
                local(ts, tz),
                ago(now, ts)
            );
        }
        (Some(seq), None) => {
            let _ = writeln!(out, "oldest    seq {seq}");
        }
        _ => {
            let _ = writeln!(out, "oldest    none (everything delivered)");
        }
    }
    let _ = writeln!(out, "next seq  {}", stats.next_seq);
    let _ = writeln!(
        out,
        "evicted   {} records (store full; each is a seq gap)",
        stats.evicted
    );
    let Some(st) = status else {
        let _ = writeln!(out, "meters    no status recorded yet");
        return out;
    };
    if let Some(aside) = &st.store_moved_aside {
        let _ = writeln!(
            out,
            "WARNING   the store was unreadable at start and was moved aside to {}",
            aside.display()
        );
    }
    if st.running && st.clock == state::ClockState::Unset {
        let _ = writeln!(
            out,
            "clock     UNSET: the system clock reads earlier than the agent's build date; nothing is polled until it is set (NTP)"
        );
    }
    if st.running {
        let _ = writeln!(
            out,
            "mqtt      {} ({} acknowledged since start)",
            if st.mqtt_connected {
                "connected"
            } else {
                "disconnected"
            },
            st.acked
        );
    } else {
        let _ = writeln!(
            out,
            "agent     stopped {}; meter states below are from then",
            ago(now, st.updated_ms)
        );
    }
    let w = st
        .meters
        .iter()
        .map(|m| m.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    // The counts are status.json's: `errors` failed polls since the last good one, `total_errors` and
    // `polls` since the agent started.
    let poll_head = format!("last poll ({tz})");
    let _ = writeln!(
        out,
        "{:<w$}  {:<8}  {:<19}  {:>6}  {:>12}  {:>8}  last error",
        "meter", "state", poll_head, "errors", "total_errors", "polls"
    );
    for m in &st.meters {
        let _ = writeln!(
            out,
            "{:<w$}  {:<8}  {:<19}  {:>6}  {:>12}  {:>8}  {}",
            m.name,
            m.state.as_str(),
            m.last_poll_ms
                .map(|t| local(t, tz))
                .unwrap_or_else(|| "-".into()),
            m.errors,
            m.total_errors,
            m.polls,
            m.last_error.as_deref().unwrap_or("-")
        );
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::state::MeterState;

    fn status() -> AgentStatus {
        AgentStatus {
            pid: 42,
            running: true,
            mqtt_connected: true,
            updated_ms: 1_764_496_000_000,
            meters: vec![MeterState {
                name: "main-power".into(),
                bus: "line-1".into(),
                // 2025-11-30T10:00:00Z
                last_poll_ms: Some(1_764_496_800_000),
                errors: 2,
                total_errors: 17,
                polls: 5000,
                last_error: Some("timeout reading holding 0..20".into()),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn times_are_local_and_counts_are_those_of_status_json() {
        let tz = FixedOffset::east_opt(8 * 3600).unwrap();
        let st = status();
        let text = render(
            "/var/lib/plantmeter",
            &Source::Running(Some(st.clone())),
            st.updated_ms,
            tz,
        );
        assert!(text.contains("last poll (+08:00)"), "{text}");
        assert!(text.contains("2025-11-30 18:00:00"), "local time: {text}");
        assert!(!text.contains("2025-11-30T10:00"), "no UTC instant: {text}");
        // the JSON's counts under the JSON's names
        let json = serde_json::to_value(&st).unwrap();
        let m = &json["meters"][0];
        let line = text.lines().find(|l| l.starts_with("main-power")).unwrap();
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[4], m["errors"].to_string(), "{line}");
        assert_eq!(cells[5], m["total_errors"].to_string(), "{line}");
        assert_eq!(cells[6], m["polls"].to_string(), "{line}");
        let head = text.lines().find(|l| l.starts_with("meter")).unwrap();
        assert!(head.contains("errors") && head.contains("total_errors") && head.contains("polls"));
    }
}
