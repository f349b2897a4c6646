//! SIGHUP reloads the config: pollers and publisher restart with the new plan on the open store, so
//! buffered data is kept and seq continues without a gap. A config with errors is logged and the
//! agent runs on with the previous one.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use plantmeter_common::Clock;
use plantmeter_sim::{start, Scenario, SimOptions};
use support::*;

/// A config polling `meters` (name, interval s): each reads two f32 input registers of the
/// simulator's unit 1 (an SDM630).
fn config(
    sim: std::net::SocketAddr,
    mqtt: std::net::SocketAddr,
    data: &Path,
    meters: &[(&str, f64)],
) -> String {
    let mut s = format!(
        "[gateway]\nid = \"gw-01\"\nsite = \"plant-a\"\ndata_dir = \"{}\"\nstore_max_mb = 64\n\n\
         [mqtt]\nurl = \"mqtt://{mqtt}\"\n\n\
         [[bus]]\nname = \"sim\"\ntransport = \"tcp\"\naddress = \"{sim}\"\ntimeout_ms = 500\nretries = 0\n\n",
        data.display()
    );
    for (name, interval) in meters {
        s += &format!(
            "[[meter]]\nname = \"{name}\"\nbus = \"sim\"\nunit_id = 1\npoll_interval_s = {interval:?}\n\n\
             [[meter.point]]\nname = \"voltage_l1\"\nregister = \"input\"\naddress = 0\ntype = \"f32\"\nunit = \"V\"\nkind = \"gauge\"\n\n\
             [[meter.point]]\nname = \"current_l1\"\nregister = \"input\"\naddress = 6\ntype = \"f32\"\nunit = \"A\"\nkind = \"gauge\"\n\n"
        );
    }
    s
}

/// Data messages received so far from `meter`.
fn count(sub: &Collector, meter: &str) -> usize {
    let data = sub.seqs();
    data.iter()
        .filter(|(_, p)| serde_json::from_slice::<serde_json::Value>(p).unwrap()["meter"] == meter)
        .count()
}

/// The interval (ms) `meter` is polled at, from the poll times of its next `polls` messages.
async fn interval(sub: &Collector, meter: &str, polls: usize) -> i64 {
    let before = count(sub, meter);
    wait_until(
        &format!("{polls} more polls of {meter}"),
        Duration::from_secs(20),
        || count(sub, meter) >= before + polls,
    )
    .await;
    median_gap(&sub.poll_times(meter)[before..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_new_plan_without_losing_data_and_keeps_running_on_a_bad_one() {
    let sim = start(
        Scenario::builtin(),
        SimOptions {
            clock: Clock::wall(),
            ..SimOptions::default()
        },
    )
    .await
    .unwrap();
    let broker = Broker::start(BrokerKind::Rumqttd);
    let sub = Collector::start(broker.addr, PREFIX).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("agent.log");
    let cfg = write_config(
        dir.path(),
        &config(sim.addr(), broker.addr, &data, &[("m000", 1.0)]),
    );
    let mut agent = Agent::start_logging_to(&cfg, 1.0, &log);

    wait_until("first polls", Duration::from_secs(10), || {
        count(&sub, "m000") >= 2
    })
    .await;
    let slow = interval(&sub, "m000", 3).await;
    assert!(
        (900..=1100).contains(&slow),
        "polled every {slow} ms at 1 s"
    );

    // A faster interval and a second meter.
    write_config(
        dir.path(),
        &config(
            sim.addr(),
            broker.addr,
            &data,
            &[("m000", 0.2), ("m001", 0.2)],
        ),
    );
    agent.sighup();
    wait_until("the new meter's data", Duration::from_secs(10), || {
        count(&sub, "m001") > 0
    })
    .await;
    // The polls after the reload.
    let fast = interval(&sub, "m000", 8).await;
    assert!(
        (150..=250).contains(&fast),
        "polled every {fast} ms after reloading to 0.2 s"
    );
    assert!(agent.is_running());
    wait_until(
        "online again after the reload",
        Duration::from_secs(5),
        || {
            sub.last_at("status")
                .is_some_and(|s| s["state"] == "online")
        },
    )
    .await;

    // A config with an error: logged with its location, the agent runs on with the previous plan.
    std::fs::write(
        &cfg,
        config(sim.addr(), broker.addr, &data, &[("m000", 5.0)])
            .replace("retries = 0", "retries = 0\nbogus = 1"),
    )
    .unwrap();
    agent.sighup();
    wait_until(
        "the rejected config in the log",
        Duration::from_secs(10),
        || std::fs::read_to_string(&log).is_ok_and(|t| t.contains("bogus")),
    )
    .await;
    assert!(
        agent.is_running(),
        "a bad config on SIGHUP stopped the agent"
    );
    let still_fast = interval(&sub, "m001", 8).await;
    assert!(
        (150..=250).contains(&still_fast),
        "polled every {still_fast} ms: the previous plan stopped"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("SIGHUP") && text.contains("agent.toml:") && text.contains("bogus"),
        "the rejected config's errors are not in the log:\n{text}"
    );

    let status = agent.sigterm(Duration::from_secs(8));
    assert!(status.success(), "agent exit status {status:?}");
    let st = status_file(&data);
    let next_seq = st["store"]["next_seq"].as_u64().unwrap();
    assert_eq!(st["store"]["backlog"].as_u64().unwrap(), 0);
    let names: Vec<&str> = st["meters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["m000", "m001"], "status lists the reloaded meters");
    sub.wait_distinct(next_seq - 1, Duration::from_secs(10))
        .await;
    // Every seq of both plans arrived: the reload lost nothing and seq went on without a gap.
    let (distinct, _) = check_delivery(&sub.data(), next_seq, 2);
    assert!(distinct > 20, "{distinct}");
}
