//! `[hj212]`: the contract's example parses into the plan; every mistake is named at its place.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use plantmeter_common::config;
use plantmeter_common::PointKind;

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
name = "outfall"
unit_id = 3
poll_interval_s = 60
  [[meter.point]]
  name = "flow"
  address = 0
  type = "f32"
  unit = "m3"
  kind = "counter"
  [[meter.point]]
  name = "cod"
  address = 2
  type = "f32"
  unit = "mg/L"
  kind = "gauge"
  [[meter.point]]
  name = "ph"
  address = 4
  type = "f32"
  unit = "pH"
  kind = "gauge"
"#;

const HJ: &str = r#"
[hj212]
address = "10.0.0.5:9000"
mn = "010000A8900016F000169DC0"
password_file = "hj212-password"
st = 32
"#;

const FACTORS: &str = r#"
  [[hj212.factor]]
  code = "w01018"
  point = "outfall.cod"
  flow = "outfall.flow"
  [[hj212.factor]]
  code = "w00000"
  point = "outfall.flow"
"#;

fn errors(text: &str) -> String {
    match config::parse(text, Path::new("/etc/pm/bad.toml")) {
        Ok(_) => panic!("expected errors, the config is valid:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_minimal_section_gets_the_defaults_and_its_factors() {
    let plan = config::parse(&format!("{BASE}{HJ}{FACTORS}"), Path::new("/etc/pm/a.toml")).unwrap();
    let described = config::describe(&plan);
    assert!(
        described
            .contains("hj212     HJ 212-2017 to 10.0.0.5:9000, MN 010000A8900016F000169DC0, ST 32")
            && described.contains(
                "CN 2051 every 10 min, CN 2061 hourly, CN 2031 daily; each re-sent until CN 9014"
            )
            && described.contains(
                "w01018      outfall.cod: -Min -Avg -Max, -Cou load in kg with outfall.flow"
            ),
        "{described}"
    );
    let h = plan.hj212.unwrap();
    assert_eq!(h.address, "10.0.0.5:9000");
    assert_eq!(h.st, 32);
    assert_eq!(
        (h.minute, h.hour, h.day, h.realtime, h.ack),
        (10, true, true, None, true)
    );
    assert_eq!(
        h.password_file,
        Path::new("/etc/pm/hj212-password"),
        "relative to the config's folder"
    );
    assert_eq!(h.timezone.local_minus_utc(), 8 * 3600, "China by default");
    assert_eq!(h.factors.len(), 2);
    let cod = &h.factors[0];
    assert_eq!(cod.code, "w01018");
    assert_eq!(cod.kind, PointKind::Gauge);
    let flow = cod.flow.as_ref().unwrap();
    assert_eq!(flow.kind, PointKind::Counter);
    assert_eq!(flow.kg_per_unit_m3, 1e-3);
    assert_eq!(h.factors[1].kind, PointKind::Counter);
    assert!(h.factors[1].flow.is_none());
}

#[test]
fn the_audit_timezone_and_o2_reference_are_used() {
    let text = format!(
        r#"{BASE}
[[meter]]
name = "stack"
unit_id = 4
poll_interval_s = 60
  [[meter.point]]
  name = "so2"
  address = 0
  type = "f32"
  unit = "mg/m3"
  kind = "gauge"
  [[meter.point]]
  name = "o2"
  address = 2
  type = "f32"
  unit = "%"
  kind = "gauge"
  [[meter.point]]
  name = "flow"
  address = 4
  type = "f32"
  unit = "m3/h"
  kind = "gauge"

[audit]
timezone = "+07:00"
baseline = ["2025-01-01", "2026-01-01"]
production = {{ point = "outfall.flow", unit = "m3" }}
  [[audit.pollutant]]
  name = "SO2"
  concentration = "stack.so2"
  flow = "stack.flow"
  o2 = "stack.o2"
  o2_reference = 9.0
{HJ}
realtime_s = 30
minute = 0
  [[hj212.factor]]
  code = "a21026"
  point = "stack.so2"
  flow = "stack.flow"
"#
    );
    let plan = config::parse(&text, Path::new("a.toml")).unwrap();
    let h = plan.hj212.unwrap();
    assert_eq!(h.timezone.local_minus_utc(), 7 * 3600);
    assert_eq!(h.minute, 0);
    assert_eq!(h.realtime, Some(std::time::Duration::from_secs(30)));
    let so2 = &h.factors[0];
    assert_eq!(so2.o2.as_ref().unwrap().0.qualified(), "stack.o2");
    assert_eq!(so2.o2.as_ref().unwrap().1, 9.0);
    let flow = so2.flow.as_ref().unwrap();
    assert_eq!((flow.kind, flow.kg_per_unit_m3), (PointKind::Gauge, 1e-6));
}

#[test]
fn every_mistake_is_named_at_its_line() {
    let text = format!(
        r#"{BASE}
[hj212]
address = "10.0.0.5"
mn = "MN;1"
password = "secret"
password_file = "pw"
st = 7
minute = 7
ack = "yes"
colour = 1
  [[hj212.factor]]
  code = "w01018"
  point = "outfall.cdo"
  [[hj212.factor]]
  code = "w00000"
  point = "outfall.flow"
  flow = "outfall.flow"
  [[hj212.factor]]
  code = "w00000"
  point = "outfall.ph"
  [[hj212.factor]]
  code = "w01001"
  point = "outfall.ph"
  flow = "outfall.flow"
  [[hj212.factor]]
  code = "w01002"
  point = "outfall.cod"
  flow = "outfall.cod"
  wrong = 1
"#
    );
    let got = errors(&text);
    let want = [
        "bad.toml:38:11: address \"10.0.0.5\" must be host:port, e.g. \"10.0.0.5:9000\"",
        "bad.toml:39:6: mn \"MN;1\" must be 1 to 24 letters and digits (the monitoring point's MN)",
        "bad.toml:40:1: a password is never written in the config: use password_file",
        "bad.toml:42:6: st 7 is out of range 10..=99",
        "bad.toml:43:10: minute 7 must be 0 (off) or a divisor of 60: 1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60",
        "bad.toml:44:7: expected true or false for ack",
        "bad.toml:45:1: unknown key \"colour\" in [hj212]",
        "bad.toml:48:11: meter \"outfall\" has no point \"cdo\"; did you mean \"outfall.cod\"?",
        "bad.toml:52:10: flow applies to a concentration (a gauge); \"outfall.flow\" is a counter, whose -Cou is its own increase",
        "bad.toml:54:10: duplicate factor code \"w00000\" (first at line 50)",
        "bad.toml:59:10: a load needs the concentration \"outfall.ph\" in mg/L (water) or mg/m3 (flue gas), its unit is \"pH\"",
        "bad.toml:63:10: flow \"outfall.cod\" must be a counter in m3 or a gauge in m3/h; it is a gauge in \"mg/L\"",
        "bad.toml:64:3: unknown key \"wrong\" in [[hj212.factor]]",
    ];
    for w in want {
        assert!(got.contains(w), "missing {w:?} in:\n{got}");
    }
}

#[test]
fn a_section_without_factors_is_refused() {
    let got = errors(&format!("{BASE}{HJ}"));
    assert!(
        got.contains("[hj212] needs at least one [[hj212.factor]] (code, point)"),
        "{got}"
    );
}

#[test]
fn the_password_file_is_read_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("a.toml");
    std::fs::write(&cfg, format!("{BASE}{HJ}{FACTORS}")).unwrap();
    let plan = config::load(&cfg).unwrap();
    let err = config::files::check_files(&plan).unwrap_err().to_string();
    assert!(
        err.contains("a.toml:40:17: hj212.password_file")
            && err.contains("hj212-password: no such file"),
        "{err}"
    );
    std::fs::write(dir.path().join("hj212-password"), "a;b\n").unwrap();
    let err = config::files::check_files(&plan).unwrap_err().to_string();
    assert!(err.contains("must not contain ; , = &"), "{err}");
    std::fs::write(dir.path().join("hj212-password"), "123456\n").unwrap();
    config::files::check_files(&plan).unwrap();
    assert_eq!(
        config::files::read_hj212_password(plan.hj212.as_ref().unwrap()).unwrap(),
        "123456"
    );
}

/// 分表计电 over HJ 212-2025: a factor with `st = 44` (a facility's electricity, in packets of
/// their own); refused with 2017, with another ST, or on a point that is not electricity.
#[test]
fn a_facility_factor_goes_under_st_44_with_2025_only() {
    let meter = r#"
[[meter]]
name = "blowers"
unit_id = 4
poll_interval_s = 60
  [[meter.point]]
  name = "energy"
  address = 0
  type = "f32"
  unit = "kWh"
  kind = "counter"
"#;
    let hj25 = format!("{HJ}version = \"2025\"\n");
    let fac = "  [[hj212.factor]]\n  code = \"TW0001\"\n  point = \"blowers.energy\"\n  st = 44\n";
    let plan = config::parse(
        &format!("{BASE}{meter}{hj25}{FACTORS}{fac}"),
        Path::new("/etc/pm/a.toml"),
    )
    .unwrap();
    let h = plan.hj212.as_ref().unwrap();
    assert_eq!(h.factors[2].st, Some(44));
    assert_eq!(h.factors[0].st, None);
    let described = config::describe(&plan);
    assert!(
        described.contains("TW0001      blowers.energy: -Cou increase in kWh (ST 44: facility electricity, 分表计电)"),
        "{described}"
    );
    let e = errors(&format!("{BASE}{meter}{HJ}{FACTORS}{fac}"));
    assert!(e.contains("st 44 on a factor: only 44"), "2017: {e}");
    let e = errors(&format!(
        "{BASE}{meter}{hj25}{FACTORS}{}",
        fac.replace("44", "45")
    ));
    assert!(e.contains("st 45 on a factor"), "{e}");
    let e = errors(&format!(
        "{BASE}{meter}{hj25}{FACTORS}{}",
        fac.replace("blowers.energy", "outfall.flow")
    ));
    assert!(
        e.contains(
            "st = 44 sends a facility's electricity: \"outfall.flow\" must be a power gauge"
        ),
        "{e}"
    );
}
