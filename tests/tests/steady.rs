//! Steady polling through the whole system: simulator, broker and agent as separate processes. Data
//! arrives for every meter with seq +1, payloads have the contract's shape, health and status are
//! retained, and SIGTERM leaves a retained offline status and exit 0.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use plantmeter_sim::AgentBus;
use plantmeter_tests::*;

const METERS: [&str; 11] = [
    "main-power",
    "power-b",
    "dyehouse",
    "compressors",
    "lighting",
    "gas",
    "water",
    "stack",
    "stack-so2",
    "outfall",
    "packer",
];

async fn steady(kind: BrokerKind) {
    let broker = Broker::start(kind);
    let sim = Sim::start(None, None, &[]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = agent_config(
        None,
        AgentBus::Tcp(sim.addr.to_string()),
        &broker.url(),
        &data,
        0.5,
        500,
    );
    let cfg = write(dir.path(), "agent.toml", &cfg);
    let col = Collector::start(broker.addr, PREFIX).await;
    let mut agent = start_agent(&cfg, None);

    // 11 meters every 0.5 s: a few rounds.
    wait_until("data from every meter", Duration::from_secs(15), || {
        let d = col.data();
        METERS.iter().all(|m| {
            d.iter()
                .filter(|x| x.topic == format!("{PREFIX}/data/{m}"))
                .count()
                >= 3
        })
    })
    .await;
    agent.assert_running();

    // Payload shape and seq +1 in arrival order (no reconnect happened).
    let d = col.data();
    let mut prev = None;
    for m in &d {
        let v = m.json();
        let obj = v.as_object().unwrap();
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        for k in ["seq", "ts", "meter", "points"] {
            assert!(keys.contains(&k), "{k} missing in {v}");
        }
        let seq = v["seq"].as_u64().unwrap();
        if let Some(p) = prev {
            assert_eq!(seq, p + 1, "seq not +1 in arrival order");
        }
        prev = Some(seq);
        let ts = v["ts"].as_str().unwrap();
        assert_eq!(ts.len(), 24, "ts {ts:?} is not YYYY-MM-DDTHH:MM:SS.mmmZ");
        assert!(ts.ends_with('Z') && parse_ts_ms(ts).is_some(), "{ts}");
        assert_eq!(
            m.topic,
            format!("{PREFIX}/data/{}", v["meter"].as_str().unwrap())
        );
        assert!(!m.retain, "data must not be retained");
        for p in v["points"].as_array().unwrap() {
            assert!(p["name"].is_string() && p["unit"].is_string(), "{p}");
            let q = p["quality"].as_str().unwrap();
            assert_eq!(q, "good", "steady polling of a healthy plant: {p} in {v}");
            assert!(p["value"].is_number(), "{p}");
        }
    }
    assert_eq!(d[0].json()["seq"], 1, "a fresh store starts at seq 1");

    // Retained status and health, as a newcomer sees them.
    let late = Collector::start(broker.addr, PREFIX).await;
    wait_until(
        "retained health of every meter",
        Duration::from_secs(5),
        || {
            METERS
                .iter()
                .all(|m| !late.on(&format!("{PREFIX}/health/{m}")).is_empty())
                && !late.on(&format!("{PREFIX}/status")).is_empty()
        },
    )
    .await;
    for m in METERS {
        let h = &late.on(&format!("{PREFIX}/health/{m}"))[0];
        assert!(h.retain, "health/{m} not retained");
        assert_eq!(h.json()["state"], "ok", "{m}: {}", h.json());
    }
    let st = &late.on(&format!("{PREFIX}/status"))[0];
    assert!(st.retain);
    let v = st.json();
    assert_eq!(v["state"], "online");
    assert!(v["version"].is_string() && v["since"].is_string(), "{v}");

    let status = agent.sigterm(Duration::from_secs(10));
    assert!(status.success(), "agent exit after SIGTERM: {status}");
    wait_until("offline status", Duration::from_secs(5), || {
        col.last(&format!("{PREFIX}/status"))
            .is_some_and(|v| v["state"] == "offline")
    })
    .await;
    // Everything polled was delivered before the exit.
    let st = status_file(&data).unwrap();
    assert_eq!(st["store"]["backlog"], 0, "{st}");
    let next = st["store"]["next_seq"].as_u64().unwrap();
    col.wait_distinct(next - 1, Duration::from_secs(10)).await;
    let (distinct, dups) = check_delivery(&col.data(), next, 0);
    assert_eq!((distinct as u64, dups), (next - 1, 0));
    // And a newcomer sees the offline status retained.
    let after = Collector::start(broker.addr, PREFIX).await;
    wait_until("retained offline status", Duration::from_secs(5), || {
        after
            .last(&format!("{PREFIX}/status"))
            .is_some_and(|v| v["state"] == "offline")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_polling_rumqttd() {
    steady(BrokerKind::Rumqttd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_polling_mosquitto() {
    if brokers().contains(&BrokerKind::Mosquitto) {
        steady(BrokerKind::Mosquitto).await;
    }
}
