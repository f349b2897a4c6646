//! `[[audit.facility]]` (分表计电): parsed into the plan with its defaults; every mistake named.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use plantmeter_common::config;

const BASE: &str = r#"[gateway]
id = "gw-01"
site = "plant-a"
data_dir = "/tmp/pm"

[mqtt]
url = "mqtt://127.0.0.1:1883"

[[bus]]
name = "line-1"
transport = "tcp"
address = "127.0.0.1:5020"

[[meter]]
name = "line1"
unit_id = 1
poll_interval_s = 60
  [[meter.point]]
  name = "power"
  address = 0
  type = "f32"
  unit = "kW"
  kind = "gauge"
  [[meter.point]]
  name = "energy"
  address = 2
  type = "f32"
  unit = "kWh"
  kind = "counter"
  [[meter.point]]
  name = "flow"
  address = 4
  type = "f32"
  unit = "m3"
  kind = "counter"

[[meter]]
name = "blowers"
unit_id = 2
poll_interval_s = 60
  [[meter.point]]
  name = "energy"
  address = 0
  type = "f32"
  unit = "kWh"
  kind = "counter"

[audit]
timezone = "+08:00"
baseline = ["2025-01-01", "2026-01-01"]
grid_co2_t_per_mwh = 0.5703
production = { point = "line1.flow", unit = "m3" }
  [[audit.input]]
  point = "line1.energy"
  carrier = "electricity"
"#;

fn errors(text: &str) -> String {
    match config::parse(text, Path::new("/etc/pm/bad.toml")) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_facility_gets_its_defaults() {
    let text = format!(
        "{BASE}  [[audit.facility]]\n  name = \"wwtp\"\n  production = \"line1.power\"\n  treatment = \"blowers.energy\"\n  running_kw = 5.0\n"
    );
    let plan = config::parse(&text, Path::new("a.toml")).unwrap();
    let f = &plan.audit.as_ref().unwrap().facilities[0];
    assert_eq!(f.name, "wwtp");
    assert_eq!(f.production.qualified(), "line1.power");
    assert_eq!(f.treatment.qualified(), "blowers.energy");
    assert_eq!((f.running_kw, f.treatment_running_kw), (5.0, 5.0));
    assert_eq!(f.grace, Duration::from_secs(15 * 60));
    assert_eq!(f.low_ratio, None);

    let text = format!(
        "{BASE}  [[audit.facility]]\n  name = \"wwtp\"\n  production = \"line1.energy\"\n  treatment = \"blowers.energy\"\n  running_kw = 50.0\n  treatment_running_kw = 3.0\n  grace_min = 30\n  low_ratio = 0.4\n"
    );
    let plan = config::parse(&text, Path::new("a.toml")).unwrap();
    let f = &plan.audit.as_ref().unwrap().facilities[0];
    assert_eq!(
        (f.running_kw, f.treatment_running_kw, f.grace, f.low_ratio),
        (50.0, 3.0, Duration::from_secs(1800), Some(0.4))
    );
}

#[test]
fn every_mistake_is_named() {
    for (body, want) in [
        (
            "name = \"WWTP 1\"\nproduction = \"line1.power\"\ntreatment = \"blowers.energy\"\nrunning_kw = 5.0",
            "facility name \"WWTP 1\" must be 1..64 of [a-z0-9_-]",
        ),
        (
            "name = \"w\"\nproduction = \"line1.flow\"\ntreatment = \"blowers.energy\"\nrunning_kw = 5.0",
            "facility production \"line1.flow\" must be a power gauge in kW (or W) or an energy counter in kWh",
        ),
        (
            "name = \"w\"\nproduction = \"line1.power\"\ntreatment = \"blowers.nothing\"\nrunning_kw = 5.0",
            "meter \"blowers\" has no point \"nothing\"",
        ),
        (
            "name = \"w\"\nproduction = \"line1.power\"\ntreatment = \"blowers.energy\"",
            "running_kw",
        ),
        (
            "name = \"w\"\nproduction = \"line1.power\"\ntreatment = \"blowers.energy\"\nrunning_kw = 5.0\nlow_ratio = 1.5",
            "low_ratio must be between 0 and 1",
        ),
        (
            "name = \"w\"\nproduction = \"line1.energy\"\ntreatment = \"line1.energy\"\nrunning_kw = 5.0",
            "treatment must be another point than production",
        ),
        (
            "name = \"w\"\nproduction = \"line1.power\"\ntreatment = \"blowers.energy\"\nrunning_kw = 5.0\nrunnig = 1",
            "runnig",
        ),
    ] {
        let e = errors(&format!("{BASE}  [[audit.facility]]\n{body}\n"));
        assert!(e.contains(want), "{want:?} not in {e}");
        assert!(e.contains("/etc/pm/bad.toml:"), "{e}");
    }
    let two = "[[audit.facility]]\nname = \"w\"\nproduction = \"line1.power\"\ntreatment = \"blowers.energy\"\nrunning_kw = 5.0\n";
    let e = errors(&format!("{BASE}{two}{two}"));
    assert!(e.contains("duplicate facility \"w\""), "{e}");
}
