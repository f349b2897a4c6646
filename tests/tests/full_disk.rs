//! A full disk under the agent's store (a small tmpfs, root only: skipped with a note otherwise):
//! the polls it cannot store go to the broker from memory while it takes them (only the round whose
//! write failed, and what neither took, are counted as evicted and reported on MQTT), the agent
//! neither exits nor fails to restart, and it stores and publishes again by itself once space returns.
#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use plantmeter_sim::AgentBus;
use plantmeter_tests::*;

/// Fill the file system holding `file` until a write fails.
fn fill(file: &Path) {
    let mut f = std::fs::File::create(file).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    while f.write_all(&chunk).and_then(|()| f.sync_data()).is_ok() {}
}

fn evicted_on_mqtt(col: &Collector) -> u64 {
    col.last(&format!("{PREFIX}/status"))
        .and_then(|s| s["evicted"].as_u64())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_counted_reported_and_survived() {
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&dir.path().join("mnt"), "4m") else {
        return;
    };
    let broker = Broker::start(BrokerKind::Rumqttd);
    let sim = Sim::start(None, None, &[]);
    let data = fs.path().join("data");
    let cfg = agent_config(
        None,
        AgentBus::Tcp(sim.addr.to_string()),
        &broker.url(),
        &data,
        0.2,
        500,
    );
    let cfg = write(dir.path(), "agent.toml", &cfg);
    let col = Collector::start(broker.addr, PREFIX).await;
    let mut agent = start_agent(&cfg, None);
    wait_until("first data", Duration::from_secs(10), || {
        col.data_len() > 20
    })
    .await;

    let ballast = fs.path().join("ballast");
    fill(&ballast);
    wait_until(
        "the lost polls reported on MQTT",
        Duration::from_secs(20),
        || evicted_on_mqtt(&col) > 0,
    )
    .await;
    agent.assert_running();
    // The broker works: polls the disk cannot take reach it from memory, and nothing more is
    // evicted (only the round whose write failed was).
    let (received, evicted_then) = (col.data_len(), evicted_on_mqtt(&col));
    let seen_at_fill = col.distinct_seqs() as u64;
    wait_until(
        "polls reaching the broker while the disk is full",
        Duration::from_secs(20),
        || col.data_len() > received + 100,
    )
    .await;
    assert_eq!(
        evicted_on_mqtt(&col),
        evicted_then,
        "evicted while the broker took them"
    );

    // A restart while the disk is still full: the agent starts; without a seq floor it can raise
    // on the full disk, it must not publish seqs a later restart would give again: it counts its
    // polls as lost.
    let status = agent.sigterm(Duration::from_secs(10));
    assert!(status.success(), "{status}");
    // What went out from memory before the restart: the restarted agent cannot know it (the disk
    // was full), so the seqs it jumps over count as evicted, these included.
    let delivered_before_restart = (col.distinct_seqs() as u64).saturating_sub(seen_at_fill);
    let before = evicted_on_mqtt(&col);
    let mut agent = start_agent(&cfg, None);
    wait_until(
        "the restarted agent reporting more lost polls",
        Duration::from_secs(20),
        || evicted_on_mqtt(&col) > before,
    )
    .await;
    agent.assert_running();

    // Space returns: the agent stores and publishes again by itself.
    std::fs::remove_file(&ballast).unwrap();
    let received = col.data_len();
    wait_until("data flowing again", Duration::from_secs(60), || {
        col.data_len() > received + 50
    })
    .await;
    agent.assert_running();
    let status = agent.sigterm(Duration::from_secs(10));
    assert!(status.success(), "{status}");

    // Every seq a subscriber did not see is counted as evicted.
    let st = status_file(&data).unwrap();
    let next = st["store"]["next_seq"].as_u64().unwrap();
    let evicted = st["store"]["evicted"].as_u64().unwrap();
    assert_eq!(st["store"]["backlog"], 0, "{st}");
    col.wait_distinct(next - 1 - evicted, Duration::from_secs(10))
        .await;
    let seen: std::collections::BTreeSet<u64> = col
        .data()
        .iter()
        .map(|m| m.json()["seq"].as_u64().unwrap())
        .collect();
    // Every seq not seen is counted; counted beyond that only what was delivered from memory
    // before the restart.
    let (counted, given) = (seen.len() as u64 + evicted, next - 1);
    assert!(
        counted >= given && counted <= given + delivered_before_restart,
        "seqs seen {} + evicted {evicted} vs seqs given {given} (delivered from memory before the restart: {delivered_before_restart})",
        seen.len()
    );
    assert_eq!(evicted_on_mqtt(&col), evicted, "the last status on MQTT");
}
