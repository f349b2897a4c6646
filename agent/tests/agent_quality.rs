//! Misbehaving meters: a meter that times out, one that answers Modbus exceptions and one that
//! answers garbage get the right quality on every point; the other meters go on unaffected.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use plantmeter_sim::Fault;
use support::*;

fn qualities(sub: &Subscriber, meter: &str) -> Vec<Vec<(String, serde_json::Value)>> {
    let got = sub.got.lock().unwrap();
    got.data
        .iter()
        .filter_map(|(_, p)| {
            let v: serde_json::Value = serde_json::from_slice(p).unwrap();
            (v["meter"] == meter).then(|| {
                v["points"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|pt| {
                        (
                            pt["quality"].as_str().unwrap().to_string(),
                            pt["value"].clone(),
                        )
                    })
                    .collect()
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_meters_get_their_quality_and_do_not_slow_the_others() {
    faulty_meters(Broker::start()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_meters_get_their_quality_and_do_not_slow_the_others_mosquitto() {
    if let Some(broker) = Broker::mosquitto("faulty_meters") {
        faulty_meters(broker).await;
    }
}

async fn faulty_meters(broker: Broker) {
    let sim = sim().await;
    let day = Duration::from_secs(86_400);
    sim.inject("power-b", Fault::Timeout, day).unwrap();
    sim.inject("dyehouse", Fault::Exception(2), day).unwrap();
    sim.inject("compressors", Fault::Garbage, day).unwrap();

    let sub = Subscriber::start(broker.addr).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Every meter every 0.5 virtual s at 4x: 8 polls per real second per healthy meter.
    let cfg = write_config(dir.path(), &config(&sim, broker.addr, &data, 0.5, 300));
    let agent = Agent::start(&cfg, 4.0);

    wait_for(
        "polls of the faulty meters",
        Duration::from_secs(20),
        || {
            qualities(&sub, "power-b").len() >= 2
                && qualities(&sub, "dyehouse").len() >= 2
                && qualities(&sub, "compressors").len() >= 2
        },
    )
    .await;
    let healthy_before = qualities(&sub, "main-power").len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let healthy_after = qualities(&sub, "main-power").len();

    for (meter, want) in [
        ("power-b", "comm_error"),
        ("dyehouse", "device_error"),
        ("compressors", "comm_error"),
    ] {
        for poll in qualities(&sub, meter) {
            for (q, v) in poll {
                assert_eq!(q, want, "{meter}");
                assert!(v.is_null(), "{meter}: a value with quality {q}");
            }
        }
    }
    for poll in qualities(&sub, "main-power") {
        for (q, v) in poll {
            assert_eq!(q, "good");
            assert!(v.is_number());
        }
    }
    // 8 polls per second for 2 s, while power-b times out on every poll: the healthy meter keeps pace.
    assert!(
        healthy_after - healthy_before >= 12,
        "main-power polled only {} times in 2 s next to a timing-out meter",
        healthy_after - healthy_before
    );

    // Retained health says which meter fails, and why.
    let h = sub.last("health/power-b").unwrap();
    assert_eq!(h["state"], "failing");
    assert!(h["last_error"].as_str().unwrap().contains("timeout"), "{h}");
    assert!(h["errors"].as_u64().unwrap() >= 1);
    let h = sub.last("health/dyehouse").unwrap();
    assert_eq!(h["state"], "failing");
    assert!(
        h["last_error"].as_str().unwrap().contains("exception"),
        "{h}"
    );
    assert_eq!(sub.last("health/main-power").unwrap()["state"], "ok");

    // Faults cleared: the meter recovers and says so.
    sim.clear_faults("dyehouse").unwrap();
    wait_for("dyehouse healthy again", Duration::from_secs(10), || {
        sub.last("health/dyehouse")
            .is_some_and(|h| h["state"] == "ok")
    })
    .await;
    assert!(agent.sigterm(Duration::from_secs(8)).success());
}

/// A meter that refuses reads over unmapped registers (exception 02, as many real meters answer):
/// the agent's requests bridge gaps between its points (Modbus TCP default `max_gap` 64), so the
/// first poll is refused; the agent reads the points again in contiguous groups within that same
/// poll, says so once, and the meter's points are good from the first message on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meter_refusing_unmapped_registers_is_read_in_contiguous_groups() {
    let sim = sim().await;
    sim.inject("main-power", Fault::StrictMap, Duration::from_secs(86_400))
        .unwrap();
    let broker = Broker::start();
    let sub = Subscriber::start(broker.addr).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = write_config(dir.path(), &config(&sim, broker.addr, &data, 0.5, 300));
    let log = dir.path().join("agent.log");
    let agent = Agent::start_logging_to(&cfg, 4.0, &log);

    wait_for("polls of main-power", Duration::from_secs(20), || {
        qualities(&sub, "main-power").len() >= 4
    })
    .await;
    assert!(agent.sigterm(Duration::from_secs(8)).success());
    for poll in qualities(&sub, "main-power") {
        for (q, v) in poll {
            assert_eq!(q, "good", "main-power");
            assert!(v.is_number());
        }
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let warnings = text
        .matches("refuses reads over unmapped registers")
        .count();
    assert_eq!(warnings, 1, "said once:\n{text}");
    assert!(text.contains("main-power"), "{text}");
}
