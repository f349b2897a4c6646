//! A full disk under the agent's store (a small tmpfs, root only: skipped with a note otherwise):
//! the polls it cannot store are counted as evicted and reported on MQTT, the agent neither exits
//! nor fails to restart, and it stores and publishes again by itself once space returns.
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

    // A restart while the disk is still full: the agent starts and keeps counting.
    let status = agent.sigterm(Duration::from_secs(10));
    assert!(status.success(), "{status}");
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
    assert_eq!(
        seen.len() as u64 + evicted,
        next - 1,
        "seqs seen + evicted vs seqs given (evicted {evicted})"
    );
    assert_eq!(evicted_on_mqtt(&col), evicted, "the last status on MQTT");
}
