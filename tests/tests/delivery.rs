//! At-least-once delivery through the whole system: the broker process killed and restarted on the same
//! port, and the agent process SIGKILLed while polling and while draining a backlog. (The agent crate has
//! the in-process versions with a TCP proxy; here every part is its own process and the broker really
//! goes away, sessions and retained messages with it.)
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use plantmeter_sim::AgentBus;
use plantmeter_tests::*;

fn setup(
    broker_url: &str,
    sim: &Sim,
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let data = dir.join("data");
    let cfg = agent_config(
        None,
        AgentBus::Tcp(sim.addr.to_string()),
        broker_url,
        &data,
        1.0,
        500,
    );
    (write(dir, "agent.toml", &cfg), data)
}

async fn outage(kind: BrokerKind) {
    let mut broker = Broker::start(kind);
    // 11 meters every virtual second at 20x: ~220 messages per real second.
    let clock = VClock::new(
        "2025-03-01T08:00:00+08:00",
        20.0,
        Duration::from_millis(300),
    );
    let sim = Sim::start(None, Some(&clock), &[]);
    let dir = tempfile::tempdir().unwrap();
    // The agent reaches the broker through a gate that stays closed until the collector has subscribed
    // again on the restarted broker (which lost every session): the agent must not drain its backlog into
    // a broker nobody listens to yet.
    let gate = Gate::start(broker.addr).await;
    let (cfg, data) = setup(&gate.url(), &sim, dir.path());
    let col = Collector::start(broker.addr, PREFIX).await;
    let mut agent = start_agent(&cfg, Some(&clock));
    wait_until("first data", Duration::from_secs(10), || {
        col.data_len() > 100
    })
    .await;

    for _round in 0..2 {
        gate.close();
        // What the broker already acknowledged to the agent must reach the collector before the broker
        // dies: the agent rightly deleted it on the PUBACK.
        col.wait_quiet(Duration::from_millis(100), Duration::from_secs(10))
            .await;
        broker.kill();
        let before = col.data_len();
        // Down until a backlog has built up.
        wait_until("a backlog", Duration::from_secs(20), || {
            status_of(&data, agent.pid()).is_some_and(|s| {
                s["mqtt_connected"] == false && s["store"]["backlog"].as_u64().unwrap_or(0) >= 200
            })
        })
        .await;
        agent.assert_running();
        broker.restart();
        wait_until("the collector back", Duration::from_secs(5), || {
            col.subscribed()
        })
        .await;
        gate.open();
        // The backlog (~250 polls) arrives after the agent reconnects.
        wait_until("the backlog delivered", Duration::from_secs(20), || {
            col.data_len() > before + 300
        })
        .await;
    }
    let status = agent.sigterm(Duration::from_secs(10));
    assert!(status.success(), "{status}");
    let st = status_file(&data).unwrap();
    assert_eq!(
        st["store"]["backlog"], 0,
        "clean shutdown left a backlog: {st}"
    );
    let next = st["store"]["next_seq"].as_u64().unwrap();
    col.wait_distinct(next - 1, Duration::from_secs(10)).await;
    let d = col.data();
    // In order per connection: seq goes backwards only where the agent re-sends after a reconnect.
    let (distinct, dups) = check_delivery(&d, next, 2);
    assert_eq!(distinct as u64, next - 1);
    eprintln!("{kind:?}: {distinct} seqs, {dups} duplicates over 2 broker restarts");
    // The agent published its retained status again on the new broker, then offline at exit.
    assert_eq!(
        col.last(&format!("{PREFIX}/status")).unwrap()["state"],
        "offline"
    );
    let states: Vec<String> = col
        .on(&format!("{PREFIX}/status"))
        .iter()
        .map(|m| m.json()["state"].as_str().unwrap().to_string())
        .collect();
    assert!(
        states.iter().filter(|s| *s == "online").count() >= 3,
        "online status not re-published after each restart: {states:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_loses_nothing_rumqttd() {
    outage(BrokerKind::Rumqttd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_loses_nothing_mosquitto() {
    if brokers().contains(&BrokerKind::Mosquitto) {
        outage(BrokerKind::Mosquitto).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_agent_loses_no_seq() {
    let mut broker = Broker::start(BrokerKind::Rumqttd);
    let clock = VClock::new(
        "2025-03-01T08:00:00+08:00",
        20.0,
        Duration::from_millis(300),
    );
    let sim = Sim::start(None, Some(&clock), &[]);
    let dir = tempfile::tempdir().unwrap();
    let (cfg, data) = setup(&broker.url(), &sim, dir.path());
    let col = Collector::start(broker.addr, PREFIX).await;
    let mut restarts = 0;
    for round in 0..4u64 {
        let agent = start_agent(&cfg, Some(&clock));
        if round % 2 == 1 {
            // Build a backlog with the broker gone, then kill the agent while it drains.
            broker.kill();
            wait_until("a backlog", Duration::from_secs(20), || {
                status_of(&data, agent.pid()).is_some_and(|s| {
                    s["mqtt_connected"] == false
                        && s["store"]["backlog"].as_u64().unwrap_or(0) >= 200
                })
            })
            .await;
            broker.restart();
            wait_until("the collector back", Duration::from_secs(5), || {
                col.subscribed()
            })
            .await;
            let before = col.data_len();
            wait_until("draining", Duration::from_secs(10), || {
                col.data_len() > before + 20
            })
            .await;
        } else {
            // Polling and publishing for a while.
            let before = col.data_len();
            wait_until("polls published", Duration::from_secs(20), || {
                col.data_len() as u64 > before as u64 + 150 + 30 * round
            })
            .await;
        }
        agent.sigkill();
        restarts += 2;
    }
    let agent = start_agent(&cfg, Some(&clock));
    wait_until("backlog drained", Duration::from_secs(20), || {
        status_of(&data, agent.pid())
            .is_some_and(|s| s["store"]["backlog"].as_u64().unwrap_or(1) < 30)
    })
    .await;
    assert!(agent.sigterm(Duration::from_secs(10)).success());
    let st = status_file(&data).unwrap();
    let next = st["store"]["next_seq"].as_u64().unwrap();
    assert!(next > 300, "too few polls to mean anything: {next}");
    assert_eq!(st["store"]["evicted"], 0);
    col.wait_distinct(next - 1, Duration::from_secs(10)).await;
    let (distinct, dups) = check_delivery(&col.data(), next, restarts + 2);
    eprintln!("{distinct} seqs, {dups} duplicates after 4 SIGKILLs");
}
