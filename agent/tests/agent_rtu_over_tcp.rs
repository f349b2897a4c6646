//! RTU frames over TCP (a serial-to-Ethernet converter): the agent polls every meter of the
//! simulated plant through the simulator's RTU-over-TCP listener, one request at a time on the
//! line, and publishes good readings for all of them.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use plantmeter_common::Clock;
use plantmeter_sim::{start, AgentBus, AgentConfigOptions, Scenario, SimOptions};
use support::*;

/// Meter name -> polls received, each as (quality, value) per point.
fn polls(
    sub: &Collector,
) -> std::collections::BTreeMap<String, Vec<Vec<(String, serde_json::Value)>>> {
    let data = sub.seqs();
    let mut out: std::collections::BTreeMap<String, Vec<_>> = Default::default();
    for (_, p) in &data {
        let v: serde_json::Value = serde_json::from_slice(p).unwrap();
        let points = v["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pt| {
                (
                    pt["quality"].as_str().unwrap().to_string(),
                    pt["value"].clone(),
                )
            })
            .collect();
        out.entry(v["meter"].as_str().unwrap().to_string())
            .or_default()
            .push(points);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_meter_is_polled_over_rtu_over_tcp() {
    let sim = start(
        Scenario::builtin(),
        SimOptions {
            clock: Clock::wall(),
            rtu_over_tcp_listen: Some("127.0.0.1:0".into()),
            ..SimOptions::default()
        },
    )
    .await
    .unwrap();
    let rtu = sim.rtu_over_tcp_addr().unwrap();
    let broker = Broker::start(BrokerKind::Rumqttd);
    let sub = Collector::start(broker.addr, PREFIX).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut o = AgentConfigOptions::tcp(sim.addr().to_string());
    o.bus = AgentBus::RtuOverTcp(rtu.to_string());
    o.mqtt_url = format!("mqtt://{}", broker.addr);
    o.data_dir = data.display().to_string();
    o.poll_interval_s = Some(1.0);
    o.timeout_ms = 500;
    let text = sim.agent_config_with(&o);
    assert!(text.contains("rtu-over-tcp"), "{text}");
    let cfg = write_config(dir.path(), &text);
    let meters = text.matches("[[meter]]").count();
    assert!(meters >= 5, "{meters} meters in the scenario");
    // 2x: every meter twice per real second, all on one line.
    let agent = Agent::start(&cfg, 2.0);

    wait_until(
        "three polls of every meter",
        Duration::from_secs(20),
        || {
            let p = polls(&sub);
            p.len() == meters && p.values().all(|v| v.len() >= 3)
        },
    )
    .await;
    for (meter, list) in polls(&sub) {
        for poll in list {
            assert!(!poll.is_empty(), "{meter}: a poll without points");
            for (q, v) in poll {
                assert_eq!(q, "good", "{meter} over RTU-over-TCP");
                assert!(v.is_number(), "{meter}: {v}");
            }
        }
        assert_eq!(
            sub.last_at(&format!("health/{meter}")).unwrap()["state"],
            "ok",
            "{meter}"
        );
    }
    assert!(agent.sigterm(Duration::from_secs(8)).success());
    let st = status_file(&data);
    let next_seq = st["store"]["next_seq"].as_u64().unwrap();
    sub.wait_distinct(next_seq - 1, Duration::from_secs(10))
        .await;
    check_delivery(&sub.data(), next_seq, 1);
}
