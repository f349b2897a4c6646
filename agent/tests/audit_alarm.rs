//! Limit alarms end to end: the agent binary polls the simulated stack and outfall on a virtual clock;
//! the SO2 limit is set below what the stack emits, the COD limit far above the outfall's. Once an
//! hour closed, `P/alarm/SO2/SO2` says exceeded and `P/alarm/COD/COD` ok, retained (a subscriber
//! arriving later gets them), published again after the broker lost them, and a reload that raises
//! the SO2 limit turns its alarm to ok.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use support::{
    stack_and_outfall_config, wait_until, Agent, Broker, BrokerKind, Collector, VClock, PREFIX,
};

/// 2026-03-02 08:00 +08:00 (the plant works by day).
const START_MS: i64 = 1_772_409_600_000;
const HOUR: i64 = 3_600_000;
/// Virtual seconds per real second: an hour in 2.4 s.
const SPEED: f64 = 1500.0;

/// SO2's limit (mg/m3) and whether COD has one (far above what the outfall carries).
fn config(dir: &Path, sim: SocketAddr, broker: SocketAddr, so2: f64, cod_limited: bool) -> String {
    let cod_limit = if cod_limited { "limit = 100000" } else { "" };
    stack_and_outfall_config(
        &dir.join("data"),
        sim,
        broker,
        &format!("limit = {so2}"),
        cod_limit,
        "",
    )
}

fn ms(rfc3339: &serde_json::Value) -> i64 {
    plantmeter_common::model::parse_ts_ms(rfc3339.as_str().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_over_the_limit_raises_a_retained_alarm_and_a_raised_limit_clears_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = VClock {
        start_ms: START_MS,
        speed: SPEED,
        anchor_ms: plantmeter_tests::wall_ms() + 300,
    };
    let sim = support::sim_on(clock.clock()).await;
    let mut broker = Broker::start(BrokerKind::Rumqttd);
    let cfg = dir.path().join("agent.toml");
    std::fs::write(&cfg, config(dir.path(), sim.addr(), broker.addr, 1.0, true)).unwrap();
    let so2 = format!("{PREFIX}/alarm/SO2/SO2");
    let cod = format!("{PREFIX}/alarm/COD/COD");
    let live = Collector::start(broker.addr, PREFIX).await;
    let agent = Agent::start_on(&cfg, &clock);

    wait_until("the SO2 and COD alarms", Duration::from_secs(60), || {
        live.last(&so2).is_some() && live.last(&cod).is_some()
    })
    .await;
    let now = clock.now_ms();
    let a = live.last(&so2).unwrap();
    eprintln!("{so2}: {a}\n{cod}: {}", live.last(&cod).unwrap());
    assert_eq!(a["state"], "exceeded", "{a}");
    assert_eq!(a["pollutant"], "SO2");
    assert_eq!(a["source"], "SO2");
    assert_eq!(a["unit"], "mg/m3");
    assert_eq!(a["limit"], 1.0);
    assert_eq!(a["o2_reference"], 9.0);
    let hour = ms(&a["hour"]);
    assert!(a["hour"].as_str().unwrap().ends_with(":00:00+08:00"), "{a}");
    assert!(
        hour >= START_MS && hour + HOUR <= now,
        "a closed hour of the run: {a}"
    );
    let converted = a["converted"].as_f64().unwrap();
    assert!(converted > 1.0 && converted < 100.0, "{a}");
    assert_eq!(a["last_exceeded"], a["hour"]);
    let hours_run = (hour - START_MS) / HOUR + 1;
    for k in ["exceedance_hours_today", "exceedance_hours_this_year"] {
        let n = a[k].as_i64().unwrap();
        assert!(n >= 1 && n <= hours_run, "{k}: {a}");
    }
    let c = live.last(&cod).unwrap();
    assert_eq!(c["state"], "ok", "{c}");
    assert_eq!(c["unit"], "mg/L");
    assert_eq!(c["o2_reference"], serde_json::Value::Null);
    assert_eq!(c["exceedance_hours_this_year"], 0);
    assert_eq!(c["last_exceeded"], serde_json::Value::Null);

    // Further hours over the limit say nothing new: one message per state change.
    let later = ms(&a["hour"]) + 3 * HOUR;
    wait_until("three more virtual hours", Duration::from_secs(30), || {
        clock.now_ms() >= later
    })
    .await;
    assert_eq!(live.on(&so2).len(), 1, "the exceedance was said once");

    // Retained: a dashboard subscribing now gets the current state.
    let dashboard = Collector::start(broker.addr, PREFIX).await;
    wait_until("the retained alarms", Duration::from_secs(10), || {
        dashboard.on(&so2).iter().any(|m| m.retain) && dashboard.on(&cod).iter().any(|m| m.retain)
    })
    .await;
    assert_eq!(dashboard.last(&so2).unwrap()["state"], "exceeded");

    // A broker that lost its retained messages gets them again when the agent reconnects.
    broker.restart();
    let after_restart = Collector::start(broker.addr, PREFIX).await;
    wait_until(
        "the alarms after the broker restart",
        Duration::from_secs(30),
        || after_restart.last(&so2).is_some() && after_restart.last(&cod).is_some(),
    )
    .await;
    assert_eq!(after_restart.last(&so2).unwrap()["state"], "exceeded");

    // A reload raising the limit: the next evaluation finds SO2 within it.
    std::fs::write(
        &cfg,
        config(dir.path(), sim.addr(), broker.addr, 100_000.0, true),
    )
    .unwrap();
    agent.sighup();
    wait_until("the SO2 alarm back to ok", Duration::from_secs(60), || {
        after_restart.last(&so2).is_some_and(|v| v["state"] == "ok")
    })
    .await;
    let ok = after_restart.last(&so2).unwrap();
    assert_eq!(ok["limit"], 100_000.0);
    assert_eq!(ok["exceedance_hours_this_year"], 0, "{ok}");
    assert!(ms(&ok["hour"]) >= hour, "{ok}");

    // A reload without COD's limit: its retained alarm is cleared (an empty retained message), so a
    // dashboard no longer shows a source that is not checked.
    std::fs::write(
        &cfg,
        config(dir.path(), sim.addr(), broker.addr, 100_000.0, false),
    )
    .unwrap();
    agent.sighup();
    wait_until("COD's alarm cleared", Duration::from_secs(60), || {
        after_restart
            .on(&cod)
            .last()
            .is_some_and(|m| m.payload.is_empty())
    })
    .await;
    let late = Collector::start(broker.addr, PREFIX).await;
    wait_until("SO2's retained alarm", Duration::from_secs(10), || {
        late.last(&so2).is_some()
    })
    .await;
    assert!(
        late.on(&cod).iter().all(|m| m.payload.is_empty()),
        "a subscriber after the reload gets no COD alarm"
    );
    drop(agent);
}
