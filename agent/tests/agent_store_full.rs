//! A full store: the oldest unsent records are evicted, counted durably, shown by `status` and in
//! the retained status payload, and appear as exactly that seq gap at the subscriber.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_store_evicts_oldest_counts_and_reports() {
    full_store(Broker::start(BrokerKind::Rumqttd)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_store_evicts_oldest_counts_and_reports_mosquitto() {
    if let Some(broker) = Broker::mosquitto("full_store") {
        full_store(broker).await;
    }
}

async fn full_store(broker: Broker) {
    let sim = sim().await;
    let gate = Gate::start(broker.addr).await;
    gate.close();
    let sub = Collector::start(broker.addr, PREFIX).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let text =
        config(&sim, gate.addr, &data, 0.25, 500).replace("store_max_mb = 512", "store_max_mb = 1");
    let cfg = write_config(dir.path(), &text);
    let agent = Agent::start(&cfg, 10.0);

    wait_until("evictions", Duration::from_secs(30), || {
        data.join("status.json").exists()
            && status_file(&data)["store"]["evicted"].as_u64().unwrap_or(0) > 0
    })
    .await;
    // `status` works while the agent runs and shows the evictions.
    let out = Command::new(BIN)
        .args(["status", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("agent running"), "{text}");
    let evicted_line = text.lines().find(|l| l.starts_with("evicted")).unwrap();
    assert!(!evicted_line.contains(" 0 records"), "{text}");

    gate.open();
    wait_until(
        "retained status with evictions",
        Duration::from_secs(20),
        || {
            sub.last_at("status")
                .is_some_and(|s| s["state"] == "online" && s["evicted"].as_u64().unwrap_or(0) > 0)
        },
    )
    .await;
    wait_until("backlog drained", Duration::from_secs(30), || {
        status_file(&data)["store"]["backlog"].as_u64().unwrap_or(1) < 50
    })
    .await;
    assert!(agent.sigterm(Duration::from_secs(8)).success());
    let st = status_file(&data);
    let evicted = st["store"]["evicted"].as_u64().unwrap();
    let next_seq = st["store"]["next_seq"].as_u64().unwrap();
    assert!(evicted > 0);
    sub.wait_distinct(next_seq - 1 - evicted, Duration::from_secs(10))
        .await;
    let data = sub.seqs();
    let seen: std::collections::BTreeSet<u64> = data.iter().map(|d| d.0).collect();
    // The evicted ones are exactly the oldest: 1..=evicted never arrive, everything after does.
    let missing: Vec<u64> = (1..next_seq).filter(|s| !seen.contains(s)).collect();
    assert_eq!(missing.len() as u64, evicted, "missing seqs vs evictions");
    assert_eq!(missing.first().copied(), Some(1));
    assert_eq!(missing.last().copied(), Some(evicted));
}
