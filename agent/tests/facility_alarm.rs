//! 分表计电 end to end: the agent binary polls the simulated dyehouse line and the aeration blowers of
//! the outfall on a virtual clock; the blowers are switched off from 10:00 to 12:00 of a working day
//! while the line runs. `P/alarm/facility/wwtp` says alarm (treatment off) once the 10:00 hour closed,
//! retained, and ok once the blowers ran a whole hour again; the report counts the two hours off
//! (the first 15 minutes of grace aside: 1.75 h) among the hours the line ran.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::time::Duration;

use support::{wait_until, Agent, Broker, BrokerKind, Collector, VClock, BIN, PREFIX};

/// 2026-03-02 08:00 +08:00, a Monday: the line runs 06:00-22:00.
const START_MS: i64 = 1_772_409_600_000;
const HOUR: i64 = 3_600_000;
/// Virtual seconds per real second: an hour in 2.4 s.
const SPEED: f64 = 1500.0;

fn config(dir: &Path, sim: std::net::SocketAddr, broker: std::net::SocketAddr) -> String {
    format!(
        r#"[gateway]
id = "gw-01"
site = "plant-a"
data_dir = "{data}"

[mqtt]
url = "mqtt://{broker}"

[[bus]]
name = "sim"
transport = "tcp"
address = "{sim}"
timeout_ms = 2000

[[meter]]
name = "packer"
unit_id = 11
poll_interval_s = 60
template = "counter"

[[meter]]
name = "dyehouse"
unit_id = 3
poll_interval_s = 60
template = "dtsu666"

[[meter]]
name = "blowers"
unit_id = 17
poll_interval_s = 60
template = "dtsu666"

[audit]
timezone = "+08:00"
baseline = ["2026-03-02", "2026-03-03"]
grid_co2_t_per_mwh = 0.5703
production = {{ point = "packer.count_total", unit = "t" }}

  [[audit.input]]
  point = "dyehouse.energy_import"
  carrier = "electricity"

  [[audit.facility]]
  name = "wwtp"
  production = "dyehouse.energy_import"
  treatment = "blowers.total_power"
  running_kw = 150.0
  treatment_running_kw = 10.0
"#,
        data = dir.join("data").display(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blowers_off_while_the_line_runs_raise_the_alarm_and_count_in_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let clock = VClock {
        start_ms: START_MS,
        speed: SPEED,
        anchor_ms: plantmeter_tests::wall_ms() + 300,
    };
    let sim = support::sim_with_wwtp(clock.clock()).await;
    sim.switch_off("blowers", START_MS + 2 * HOUR, START_MS + 4 * HOUR)
        .unwrap();
    let broker = Broker::start(BrokerKind::Rumqttd);
    let cfg = dir.path().join("agent.toml");
    std::fs::write(&cfg, config(dir.path(), sim.addr(), broker.addr)).unwrap();
    let topic = format!("{PREFIX}/alarm/facility/wwtp");
    let live = Collector::start(broker.addr, PREFIX).await;
    let agent = Agent::start_on(&cfg, &clock);

    wait_until("the facility alarm", Duration::from_secs(60), || {
        live.last(&topic).is_some_and(|a| a["state"] == "alarm")
    })
    .await;
    let said = live.on(&topic);
    let a = live.last(&topic).unwrap();
    eprintln!("{topic}: {a}");
    // Before it, the hours with the blowers running said ok (at most once).
    assert!(said.len() <= 2, "{said:?}");
    assert_eq!(a["facility"], "wwtp");
    assert_eq!(a["finding"], "treatment_off");
    assert_eq!(a["production"], "dyehouse.energy_import");
    assert_eq!(a["treatment"], "blowers.total_power");
    let hour = a["hour"].as_str().unwrap();
    assert!(
        hour == "2026-03-02T10:00:00+08:00" || hour == "2026-03-02T11:00:00+08:00",
        "an hour the blowers stood: {a}"
    );
    assert!(a["production_kw"].as_f64().unwrap() > 150.0, "{a}");
    assert!(a["treatment_kw"].as_f64().unwrap() < 1.0, "{a}");
    let today = a["treatment_off_hours_today"].as_f64().unwrap();
    assert!(today == 0.75 || today == 1.75, "{a}");

    // Retained, as the limit alarms: a dashboard subscribing now gets it.
    let dashboard = Collector::start(broker.addr, PREFIX).await;
    wait_until(
        "the retained facility alarm",
        Duration::from_secs(10),
        || dashboard.on(&topic).iter().any(|m| m.retain),
    )
    .await;
    assert_eq!(dashboard.last(&topic).unwrap()["facility"], "wwtp");

    // The blowers run again from 12:00: ok once that hour closed, with the day's 1.75 h.
    wait_until(
        "the facility alarm back to ok",
        Duration::from_secs(60),
        || live.last(&topic).is_some_and(|a| a["state"] == "ok"),
    )
    .await;
    let ok = live.last(&topic).unwrap();
    assert_eq!(ok["finding"], serde_json::Value::Null);
    assert_eq!(ok["treatment_off_hours_today"], 1.75, "{ok}");
    assert!(ok["treatment_kw"].as_f64().unwrap() > 10.0, "{ok}");
    assert!(agent.sigterm(Duration::from_secs(20)).success());

    let out = std::process::Command::new(BIN)
        .args([
            "report",
            "--config",
            cfg.to_str().unwrap(),
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = &r["compliance"]["facilities"];
    eprintln!("compliance.facilities: {f}");
    assert_eq!(f.as_array().unwrap().len(), 1, "one period: {f}");
    let f = &f[0];
    assert_eq!(f["name"], "wwtp");
    assert_eq!(f["period"], "baseline");
    assert_eq!(f["treatment_off_hours"], 1.75, "{f}");
    assert_eq!(f["treatment_low_hours"], serde_json::Value::Null);
    // 08:00-13:00 at least (the 13:00 hour too if the agent covered 45 min of it before stopping);
    // every other hour of the day unknown, none counted as off.
    let production = f["production_hours"].as_f64().unwrap();
    assert!(production == 5.0 || production == 6.0, "{f}");
    assert_eq!(
        f["unknown_hours"].as_f64().unwrap() + production,
        24.0,
        "{f}"
    );

    // The rendered report shows it, in both languages.
    for (lang, label) in [
        ("en", "Treatment off while production runs"),
        ("zh", "生产运行而治污设施停运"),
    ] {
        let out = std::process::Command::new(BIN)
            .args([
                "report",
                "--config",
                cfg.to_str().unwrap(),
                "--format",
                "html",
                "--lang",
                lang,
            ])
            .output()
            .unwrap();
        let t = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && t.contains(label) && t.contains(">1.75</td>"),
            "{t}"
        );
    }
}
