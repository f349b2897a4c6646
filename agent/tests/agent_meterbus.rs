//! DL/T 645 on a serial line (the simulator's pty) and CJ/T 188 through a serial server (TCP):
//! the agent reads an electricity meter, a water meter and a heat meter, publishes what they show,
//! and marks each fault as a user would see it: an exception reply is `device_error` with its error
//! byte named, a bad checksum, a reply from another address or silence are `comm_error`, garbage
//! before a frame is skipped and the reading stays good.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use plantmeter_common::Clock;
use plantmeter_sim::meterbus::{self, LinkAt, LinkFault};
use plantmeter_sim::{start, Scenario, SimOptions};
use support::*;

/// The last poll of each meter: point -> (quality, value).
fn last_polls(sub: &Collector) -> BTreeMap<String, BTreeMap<String, (String, serde_json::Value)>> {
    let mut out = BTreeMap::new();
    for (_, p) in sub.seqs() {
        let v: serde_json::Value = serde_json::from_slice(&p).unwrap();
        let points = v["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pt| {
                (
                    pt["name"].as_str().unwrap().to_string(),
                    (
                        pt["quality"].as_str().unwrap().to_string(),
                        pt["value"].clone(),
                    ),
                )
            })
            .collect();
        out.insert(v["meter"].as_str().unwrap().to_string(), points);
    }
    out
}

fn quality_of(sub: &Collector, meter: &str, point: &str) -> Option<String> {
    last_polls(sub)
        .get(meter)
        .and_then(|m| m.get(point))
        .map(|(q, _)| q.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlt645_on_a_pty_and_cjt188_on_a_serial_server() {
    let sim = start(
        Scenario::builtin(),
        SimOptions {
            clock: Clock::wall(),
            ..SimOptions::default()
        },
    )
    .await
    .unwrap();
    let links = meterbus::start(sim.sim_arc(), "127.0.0.1:0", "127.0.0.1:0", true)
        .await
        .unwrap();
    let pty = links.ptys[0].path.display().to_string();
    let broker = Broker::start(BrokerKind::Rumqttd);
    let sub = Collector::start(broker.addr, PREFIX).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let text = format!(
        "[gateway]\nid = \"gw-01\"\nsite = \"plant-a\"\ndata_dir = \"{}\"\n\n[mqtt]\nurl = \"mqtt://{}\"\n\n{}",
        data.display(),
        broker.addr,
        meterbus::agent_config(
            &LinkAt::Serial(pty),
            &LinkAt::Tcp(links.cjt188_addr.to_string()),
            1.0
        )
    );
    let cfg = write_config(dir.path(), &text);
    let check = std::process::Command::new(BIN)
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    // The lone DL/T 645 meter's address, found with the read-address command.
    let scan = std::process::Command::new(BIN)
        .args(["check", "--scan", "rs485-645", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&scan.stdout).contains(
            "bus \"rs485-645\": the meter answering the read-address command is 000000000001"
        ),
        "{}{}",
        String::from_utf8_lossy(&scan.stdout),
        String::from_utf8_lossy(&scan.stderr)
    );
    // `plantmeter read`: a technician's look at each meter before the agent runs, frames and values.
    for (meter, point, unit) in [
        ("power-b-645", "energy_import", "kWh"),
        ("water-188", "volume", "m3"),
    ] {
        let read = std::process::Command::new(BIN)
            .args(["read", "--meter", meter, "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&read.stdout);
        assert!(
            read.status.success(),
            "{out}{}",
            String::from_utf8_lossy(&read.stderr)
        );
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(point) && l.contains(unit))
            .unwrap_or_else(|| panic!("{meter}: no value line for {point}: {out}"));
        assert!(line.contains("good"), "{meter}: {line}\n{out}");
        assert!(
            out.contains(&format!("  {point}: sent ")) && out.contains("| got "),
            "{meter}: the frames on the line: {out}"
        );
    }
    let agent = Agent::start(&cfg, 1.0);

    wait_until(
        "good readings of all three meters",
        Duration::from_secs(20),
        || {
            let p = last_polls(&sub);
            ["power-b-645", "water-188", "heat-188"].iter().all(|m| {
                p.get(*m)
                    .is_some_and(|pts| pts.values().all(|(q, _)| q == "good"))
            })
        },
    )
    .await;
    let p = last_polls(&sub);
    let num = |m: &str, pt: &str| p[m][pt].1.as_f64().unwrap();
    assert_eq!(num("power-b-645", "voltage_a"), 230.0);
    assert_eq!(num("power-b-645", "current_a"), 12.5);
    assert_eq!(num("power-b-645", "power_factor"), 0.95);
    assert_eq!(num("heat-188", "supply_temp"), 70.0);
    assert_eq!(num("heat-188", "return_temp"), 50.0);
    assert_eq!(num("heat-188", "power"), 5.0);
    // Counters: what the simulated meter showed around the poll (they advance slowly).
    let now = sim.now_ms();
    for (m, pt) in [
        ("power-b-645", "energy_import"),
        ("water-188", "volume"),
        ("heat-188", "heat"),
    ] {
        let truth = links
            .links
            .value(m, pt, now)
            .unwrap()
            .rem_euclid(1_000_000.0);
        let got = num(m, pt);
        assert!(
            (got - truth).abs() <= 0.01 * truth.abs().max(1.0),
            "{m}.{pt}: published {got}, the meter shows {truth}"
        );
    }

    // Faults, one at a time, each seen as a user would.
    let l = &links.links;
    l.set_fault("power-b-645", Some(LinkFault::Exception))
        .unwrap();
    wait_until(
        "device_error on an exception reply",
        Duration::from_secs(20),
        || quality_of(&sub, "power-b-645", "voltage_a").as_deref() == Some("device_error"),
    )
    .await;
    wait_until(
        "the error byte named in health",
        Duration::from_secs(10),
        || {
            sub.last_at("health/power-b-645").is_some_and(|h| {
                h["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("error byte 02H (no data requested)"))
            })
        },
    )
    .await;
    l.set_fault("power-b-645", None).unwrap();
    for fault in [
        LinkFault::BadChecksum,
        LinkFault::WrongAddress,
        LinkFault::Silence,
    ] {
        l.set_fault("water-188", Some(fault)).unwrap();
        wait_until(
            &format!("comm_error under {fault:?}"),
            Duration::from_secs(30),
            || quality_of(&sub, "water-188", "volume").as_deref() == Some("comm_error"),
        )
        .await;
        l.set_fault("water-188", None).unwrap();
        wait_until(
            &format!("good again after {fault:?}"),
            Duration::from_secs(90),
            || quality_of(&sub, "water-188", "volume").as_deref() == Some("good"),
        )
        .await;
    }
    // Garbage before the frame: the link resyncs, readings stay good.
    l.set_fault("power-b-645", Some(LinkFault::GarbageBefore))
        .unwrap();
    let before = l.meters[0]
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    wait_until(
        "good readings through garbage",
        Duration::from_secs(90),
        || {
            l.meters[0]
                .requests
                .load(std::sync::atomic::Ordering::Relaxed)
                > before + 8
                && quality_of(&sub, "power-b-645", "voltage_a").as_deref() == Some("good")
        },
    )
    .await;
    assert!(agent.sigterm(Duration::from_secs(8)).success());
}
