//! The `plantmeter-sim` binary: arguments, exit codes, the agent config, the truth file.
#![allow(clippy::unwrap_used)]

mod wait;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use wait::wait_until;

const BIN: &str = env!("CARGO_BIN_EXE_plantmeter-sim");

#[test]
fn bad_arguments_and_scenarios_exit_2_with_a_clear_message() {
    let out = Command::new(BIN).arg("--no-such-flag").output().unwrap();
    assert_eq!(out.status.code(), Some(2));

    let out = Command::new(BIN)
        .args(["--clock-start", "yesterday"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--clock-start"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    let text =
        plantmeter_sim::scenario::BUILTIN.replace("template = \"adw300\"", "template = \"adw999\"");
    std::fs::write(&bad, text).unwrap();
    let out = Command::new(BIN)
        .arg("--scenario")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("power-b") && err.contains("adw999"),
        "{err}"
    );

    let missing = dir.path().join("missing.toml");
    let out = Command::new(BIN)
        .arg("--scenario")
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

#[test]
fn print_agent_config_names_every_meter_and_the_audit() {
    let out = Command::new(BIN)
        .args(["--print-agent-config", "--listen", "127.0.0.1:15020"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let doc: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(doc["bus"][0]["address"].as_str(), Some("127.0.0.1:15020"));
    assert_eq!(doc["meter"].as_array().unwrap().len(), 16);
    let audit = &doc["audit"];
    assert_eq!(audit["production_unit"].as_str(), Some("t"));
    let products: Vec<_> = audit["product"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["point"].as_str().unwrap().to_string(),
                p["factor"].as_float().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        products,
        [
            ("knit".into(), "packer.count_total".into(), 1.0),
            ("woven".into(), "packer-woven.count_total".into(), 0.8)
        ]
    );
    let driver = &audit["driver"][0];
    assert_eq!(driver["point"].as_str(), Some("weather.temperature"));
    assert_eq!(driver["transform"].as_str(), Some("hdd"));
    assert_eq!(driver["base"].as_float(), Some(18.0));
    let carriers: Vec<_> = audit["input"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["carrier"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        carriers,
        ["electricity", "electricity", "natural_gas", "water"]
    );
    let pollutants = audit["pollutant"].as_array().unwrap();
    assert_eq!(pollutants.len(), 10);
    let so2: Vec<_> = pollutants
        .iter()
        .filter(|p| p["name"].as_str() == Some("SO2"))
        .map(|p| (p["source"].as_str().unwrap(), p["o2"].as_str().unwrap()))
        .collect();
    assert_eq!(
        so2,
        [("flue_gas", "stack.o2"), ("flue_gas_2", "stack-2.o2")]
    );
}

#[test]
fn serves_and_writes_the_truth_at_exit() {
    let dir = tempfile::tempdir().unwrap();
    let truth = dir.path().join("truth.json");
    let mut child = Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--clock-start",
            "2025-03-03T00:00:00+08:00",
            "--clock-speed",
            "86400",
            "--truth-interval-s",
            "0.1",
            "--truth",
        ])
        .arg(&truth)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let _banner = lines.next().unwrap().unwrap();
    let addr = lines.next().unwrap().unwrap();
    assert!(addr.starts_with("modbus-tcp 127.0.0.1:"), "{addr}");
    // The truth file, rewritten every 0.1 s, covers a second virtual day.
    let days = || {
        std::fs::read(&truth)
            .ok()
            .and_then(|b| serde_json::from_slice::<plantmeter_sim::Truth>(&b).ok())
            .map_or(0, |t| t.days.len())
    };
    wait_until(
        "the truth of two virtual days",
        Duration::from_secs(20),
        || days() >= 2,
    );
    // SIGTERM, as a test harness or systemd would.
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let t: plantmeter_sim::Truth = serde_json::from_slice(&std::fs::read(&truth).unwrap()).unwrap();
    assert_eq!(t.days[0].date, "2025-03-03");
    assert!(t.days.len() >= 2, "a virtual day per real second");
    assert!(t.totals.production > 100.0);
    let sum: f64 = t
        .days
        .iter()
        .map(|d| d.amounts.carriers["natural_gas"])
        .sum();
    assert!((sum - t.totals.carriers["natural_gas"]).abs() < 1e-6 * sum);
}
