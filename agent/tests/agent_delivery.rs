//! At-least-once delivery with a real broker: through a broker outage, and through the agent being
//! SIGKILLed while polling and draining.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_loses_nothing_and_resends_in_order() {
    broker_outage(Broker::start(BrokerKind::Rumqttd)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_loses_nothing_and_resends_in_order_mosquitto() {
    if let Some(broker) = Broker::mosquitto("broker_outage") {
        broker_outage(broker).await;
    }
}

/// The broker unreachable while 11 meters are polled, then back: every seq arrives,
/// duplicates are identical, seq goes backwards at most once per reconnect. `/metrics` shows the
/// backlog ageing during the outage and the publish rate once it drains.
async fn broker_outage(broker: Broker) {
    let sim = sim().await;
    let gate = Gate::start(broker.addr).await;
    let sub = Collector::start(broker.addr, PREFIX).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let metrics: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let text = config(&sim, gate.addr, &data, 1.0, 500)
        + &format!("\n[metrics]\nlisten = \"{metrics}\"\n");
    let cfg = write_config(dir.path(), &text);
    // 11 meters, a poll each per virtual second, 10x: ~110 messages per real second.
    let agent = Agent::start(&cfg, 10.0);

    wait_until("first data", Duration::from_secs(10), || {
        sub.data_len() > 50
    })
    .await;
    gate.close();
    let before = sub.data_len();
    // Down until the oldest unsent poll is 15 virtual seconds old.
    let pid = agent.child.id();
    wait_until(
        "a backlog 15 virtual seconds old",
        Duration::from_secs(30),
        || {
            status_of(&data, pid).is_some_and(|st| st["mqtt_connected"] == false)
                && scrape(metrics)
                    .and_then(|b| metric(&b, "plantmeter_store_oldest_unsent_age_seconds"))
                    .is_some_and(|age| age >= 15.0)
        },
    )
    .await;
    // While the broker is unreachable the agent buffers: status shows a growing backlog.
    let st = status_file(&data);
    assert!(
        st["store"]["backlog"].as_u64().unwrap() > 0,
        "no backlog while the broker ({}) is down: {st}",
        broker.kind
    );
    assert!(!st["mqtt_connected"].as_bool().unwrap());
    // ...and so does /metrics: the oldest unsent poll is about 30 virtual seconds old, every
    // meter has a poll latency.
    let body = scrape(metrics).expect("/metrics answers");
    let age = metric(&body, "plantmeter_store_oldest_unsent_age_seconds").unwrap();
    assert!(
        (15.0..120.0).contains(&age),
        "oldest unsent age {age} s\n{body}"
    );
    let latency = metric(
        &body,
        "plantmeter_meter_last_poll_latency_seconds{meter=\"main-power\"}",
    )
    .unwrap();
    assert!(latency > 0.0, "latency {latency} s");
    assert_eq!(metric(&body, "plantmeter_mqtt_connected"), Some(0.0));
    gate.open();
    wait_until("backlog drained", Duration::from_secs(20), || {
        let st = status_file(&data);
        st["mqtt_connected"].as_bool().unwrap_or(false)
            && st["store"]["backlog"].as_u64().unwrap_or(1) < 20
    })
    .await;
    assert!(
        sub.data_len() > before + 200,
        "the backlog was not delivered by {}",
        broker.kind
    );
    // The backlog went out within the rate's 10 s window: the rate shows it (how high depends on
    // the machine).
    let body = scrape(metrics).expect("/metrics answers");
    let rate = metric(&body, "plantmeter_mqtt_publish_rate_per_second").unwrap();
    assert!(rate > 0.0, "publish rate {rate}/s after a drain\n{body}");

    let status = agent.sigterm(Duration::from_secs(8));
    assert!(status.success(), "agent exit status {status:?}");
    let st = status_file(&data);
    assert_eq!(st["running"], false);
    let next_seq = st["store"]["next_seq"].as_u64().unwrap();
    assert_eq!(
        st["store"]["backlog"].as_u64().unwrap(),
        0,
        "clean shutdown left a backlog"
    );
    sub.wait_distinct(next_seq - 1, Duration::from_secs(10))
        .await;
    wait_until("the offline status", Duration::from_secs(10), || {
        sub.last_at("status")
            .is_some_and(|s| s["state"] == "offline")
    })
    .await;
    let (distinct, _dups) = check_delivery(&sub.data(), next_seq, 2);
    assert_eq!(distinct as u64, next_seq - 1);
    drop(data);
    // The graceful shutdown leaves a retained offline status.
    assert_eq!(sub.last_at("status").unwrap()["state"], "offline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_polling_and_draining_loses_no_seq() {
    sigkill_rounds(Broker::start(BrokerKind::Rumqttd)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_polling_and_draining_loses_no_seq_mosquitto() {
    if let Some(broker) = Broker::mosquitto("sigkill_while_polling_and_draining") {
        sigkill_rounds(broker).await;
    }
}

/// The agent SIGKILLed four times, twice while draining a backlog: after a last clean run no seq
/// is missing and every duplicate is identical.
async fn sigkill_rounds(broker: Broker) {
    let sim = sim().await;
    let gate = Gate::start(broker.addr).await;
    let sub = Collector::start(broker.addr, PREFIX).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = write_config(dir.path(), &config(&sim, gate.addr, &data, 1.0, 500));

    let mut restarts = 0;
    for round in 0..4u64 {
        let agent = Agent::start(&cfg, 20.0);
        let pid = agent.child.id();
        if round % 2 == 1 {
            // Build a backlog, then kill while it drains.
            gate.close();
            wait_until("a backlog", Duration::from_secs(20), || {
                status_of(&data, pid).is_some_and(|s| {
                    s["mqtt_connected"] == false
                        && s["store"]["backlog"].as_u64().unwrap_or(0) >= 200
                })
            })
            .await;
            gate.open();
            let before = sub.data_len();
            wait_until("draining", Duration::from_secs(20), || {
                sub.data_len() as u64 > before as u64 + 50 + 20 * round
            })
            .await;
        } else {
            // Polling and publishing for a while.
            let before = sub.data_len();
            wait_until("polls published", Duration::from_secs(20), || {
                sub.data_len() as u64 > before as u64 + 150 + 40 * round
            })
            .await;
        }
        agent.sigkill();
        restarts += 2;
    }
    // A last run drains everything and stops cleanly.
    let agent = Agent::start(&cfg, 20.0);
    let pid = agent.child.id();
    wait_until("backlog drained", Duration::from_secs(20), || {
        status_of(&data, pid).is_some_and(|s| s["store"]["backlog"].as_u64().unwrap_or(1) < 50)
    })
    .await;
    assert!(agent.sigterm(Duration::from_secs(8)).success());
    let st = status_file(&data);
    let next_seq = st["store"]["next_seq"].as_u64().unwrap();
    assert!(next_seq > 500, "too few polls to mean anything: {next_seq}");
    assert_eq!(st["store"]["evicted"].as_u64().unwrap(), 0);
    sub.wait_distinct(next_seq - 1, Duration::from_secs(10))
        .await;
    let (distinct, dups) = check_delivery(&sub.data(), next_seq, restarts + 1);
    eprintln!(
        "{}: {distinct} distinct seqs, {dups} duplicates after 4 SIGKILLs",
        broker.kind
    );
}
