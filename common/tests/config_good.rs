//! Valid configs and the Plan they produce.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use plantmeter_common::config;
use plantmeter_common::plan::{Carrier, ElectricityMethod, Granularity, Parity, Plan, Transport};
use plantmeter_common::types::{ByteOrder, DataType, PointKind, RegisterKind};

fn configs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs")
}

/// The meters the contract example's `[audit]` refers to but does not define.
const CONTRACT_EXTRA_METERS: &str = r#"
[[meter]]
name = "packer"
bus = "line-1"
unit_id = 2
poll_interval_s = 60
  [[meter.point]]
  name = "output"
  address = 0
  type = "u32"
  scale = 0.001
  unit = "t"
  kind = "counter"

[[meter]]
name = "outfall"
bus = "line-1"
unit_id = 3
poll_interval_s = 0.2
  [[meter.point]]
  name = "cod"
  register = "input"
  address = 0
  type = "f32"
  unit = "mg/L"
  [[meter.point]]
  name = "flow"
  register = "input"
  address = 2
  type = "f32"
  unit = "m3"
  kind = "counter"
"#;

fn contract_plan() -> Plan {
    let path = configs().join("contract_example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    config::parse(&format!("{text}{CONTRACT_EXTRA_METERS}"), &path).unwrap()
}

#[test]
fn contract_example_verbatim_only_lacks_the_meters_its_audit_names() {
    let path = configs().join("contract_example.toml");
    let err = config::load(&path).unwrap_err();
    let f = path.display();
    assert_eq!(
        err.to_string(),
        format!(
            "{f}:46:24: unknown meter \"packer\" in \"packer.output\"; meters: \"main-power\"\n\
             {f}:55:19: unknown meter \"outfall\" in \"outfall.cod\"; meters: \"main-power\"\n\
             {f}:56:10: unknown meter \"outfall\" in \"outfall.flow\"; meters: \"main-power\""
        )
    );
}

#[test]
fn contract_example_fills_every_field() {
    let plan = contract_plan();
    assert_eq!(plan.gateway.id, "gw-01");
    assert_eq!(plan.gateway.site, "plant-a");
    assert_eq!(plan.gateway.data_dir, PathBuf::from("/var/lib/plantmeter"));
    assert_eq!(plan.gateway.store_max_mb, 512);
    assert_eq!(plan.metrics_listen, None);

    let m = &plan.mqtt;
    assert_eq!(m.url, "mqtt://127.0.0.1:1883");
    assert_eq!((m.host.as_str(), m.port, m.tls), ("127.0.0.1", 1883, false));
    assert_eq!(m.client_id, "plantmeter-gw-01");
    assert_eq!(m.topic_prefix, "plantmeter/plant-a/gw-01");
    assert_eq!(m.username, None);
    assert_eq!(m.password_file, None);
    assert_eq!(m.keep_alive, Duration::from_secs(30));
    assert_eq!(m.max_inflight, 100);

    assert_eq!(plan.buses.len(), 1);
    let bus = &plan.buses[0];
    assert_eq!(bus.name, "line-1");
    assert_eq!(
        bus.transport,
        Transport::Tcp {
            address: "127.0.0.1:5020".into()
        }
    );
    assert_eq!(bus.timeout, Duration::from_millis(1000));
    assert_eq!(bus.retries, 1);
    let names: Vec<&str> = bus.meters.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["main-power", "packer", "outfall"]);

    let meter = &bus.meters[0];
    assert_eq!(meter.unit_id, 1);
    assert_eq!(meter.poll_interval, Duration::from_secs(5));
    assert_eq!(meter.template, None);
    let p = &meter.points[0];
    assert_eq!(p.name, "energy_import");
    assert_eq!(p.register, RegisterKind::Holding);
    assert_eq!(p.address, 62);
    assert_eq!(p.data_type, DataType::I32);
    assert_eq!(p.byte_order, ByteOrder::BIG);
    assert_eq!(p.scale, 0.01);
    assert_eq!(p.offset, 0.0);
    assert_eq!(p.unit, "kWh");
    assert_eq!(p.kind, PointKind::Counter);
    // the type's range times scale
    assert_eq!(p.rollover, Some(4_294_967_296.0 * 0.01));
    assert_eq!((p.min, p.max), (None, None));
    assert_eq!(meter.requests.len(), 1);
    assert_eq!((meter.requests[0].start, meter.requests[0].count), (62, 2));
    assert_eq!(bus.meters[2].poll_interval, Duration::from_millis(200));

    let a = plan.audit.as_ref().unwrap();
    assert_eq!(a.timezone.to_string(), "+08:00");
    assert_eq!(a.baseline.0.to_string(), "2025-01-01");
    assert_eq!(a.baseline.1.to_string(), "2026-01-01");
    assert_eq!(
        a.reporting.map(|r| (r.0.to_string(), r.1.to_string())),
        Some(("2026-01-01".into(), "2026-07-01".into()))
    );
    assert_eq!(a.granularity, Granularity::Day);
    assert_eq!(a.grid_co2_t_per_mwh, 0.5703);
    assert_eq!(a.grid_factor_year, None);
    assert_eq!(a.electricity_method, ElectricityMethod::Equivalent);
    assert_eq!(a.products.len(), 1);
    assert_eq!(a.products[0].point.qualified(), "packer.output");
    assert_eq!(a.products[0].factor, 1.0);
    assert_eq!(a.production_unit, "t");
    assert_eq!(a.inputs.len(), 1);
    assert_eq!(a.inputs[0].point.qualified(), "main-power.energy_import");
    assert_eq!(a.inputs[0].carrier, Carrier::Electricity);
    assert_eq!(a.inputs[0].kgce_per_unit, 0.1229);
    assert_eq!(a.inputs[0].co2_kg_per_unit, 0.5703);
    assert_eq!(a.pollutants.len(), 1);
    assert_eq!(a.pollutants[0].name.as_str(), "COD");
    assert_eq!(a.pollutants[0].concentration.qualified(), "outfall.cod");
    assert_eq!(a.pollutants[0].flow.qualified(), "outfall.flow");
    assert_eq!(a.pollutants[0].flow_kind, PointKind::Counter);
    assert_eq!(a.levels.len(), 1);
    assert_eq!(a.levels[0].indicator, "energy");
    assert_eq!(
        (
            a.levels[0].level_i,
            a.levels[0].level_ii,
            a.levels[0].level_iii
        ),
        (100.0, 110.0, 120.0)
    );
    assert_eq!(a.publish_interval, Duration::from_secs(3600));
}

fn load(name: &str) -> Plan {
    match config::load(&configs().join(name)) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn template_meters_select_override_and_extend_points() {
    let plan = load("template.toml");
    assert_eq!(plan.gateway.store_max_mb, 64);
    // A relative data_dir is relative to the config file's folder.
    assert_eq!(plan.gateway.data_dir, configs().join("./data"));
    let m = &plan.mqtt;
    assert_eq!(
        (m.host.as_str(), m.port, m.tls),
        ("broker.example.com", 8883, true)
    );
    assert_eq!(m.client_id, "edge-b");
    // a trailing slash is dropped
    assert_eq!(m.topic_prefix, "factory/b");
    assert_eq!(m.username.as_deref(), Some("edge"));
    assert_eq!(m.password_env.as_deref(), Some("PLANTMETER_MQTT_PASSWORD"));
    assert_eq!(m.ca_file, Some(PathBuf::from("/etc/plantmeter/ca.pem")));
    assert_eq!(m.keep_alive, Duration::from_secs(60));
    assert_eq!(m.max_inflight, 20);
    assert_eq!(plan.metrics_listen.as_deref(), Some("127.0.0.1:9898"));
    assert_eq!(
        plan.buses[0].transport,
        Transport::Tcp {
            address: "10.0.0.7:502".into()
        }
    );

    let (_, incomer) = plan.meter("incomer").unwrap();
    assert_eq!(incomer.template.as_deref(), Some("sdm630"));
    let names: Vec<&str> = incomer.points.iter().map(|p| p.name.as_str()).collect();
    // template order for the subset, the override in place, the extra point last
    assert_eq!(
        names,
        ["voltage_l1", "energy_import", "energy_export", "status"]
    );
    let word_swapped = ByteOrder {
        word_swap: true,
        byte_swap: false,
    };
    // the meter's byte order replaces the template's
    assert_eq!(incomer.points[0].byte_order, word_swapped);
    assert_eq!(incomer.points[0].register, RegisterKind::Input);
    assert_eq!(incomer.points[0].rollover, None);
    let import = &incomer.points[1];
    assert_eq!(import.rollover, Some(1_000_000.0));
    assert_eq!(import.min, Some(0.0));
    assert_eq!(import.byte_order, word_swapped);
    // float counter without a configured rollover has none
    assert_eq!(incomer.points[2].kind, PointKind::Counter);
    assert_eq!(incomer.points[2].rollover, None);
    // a 16-bit point takes the family of CDAB: AB
    assert_eq!(incomer.points[3].byte_order, ByteOrder::BIG);
    assert_eq!(incomer.points[3].address, 0xFC00);

    // bus max_gap 100 bridges 0x0002..0x0048: one input request, one holding request
    let reqs: Vec<(RegisterKind, u16, u16)> = incomer
        .requests
        .iter()
        .map(|r| (r.register, r.start, r.count))
        .collect();
    assert_eq!(
        reqs,
        [
            (RegisterKind::Holding, 0xFC00, 1),
            (RegisterKind::Input, 0, 0x4C)
        ]
    );
    // the meter's max_gap 0 wins over the bus's: no bridging
    let (_, feeder) = plan.meter("feeder").unwrap();
    assert_eq!(feeder.poll_interval, Duration::from_millis(500));
    assert_eq!(feeder.requests.len(), 2);
    assert_eq!(feeder.points[0].byte_order, ByteOrder::BIG);
}

#[test]
fn rtu_and_rtu_over_tcp_buses() {
    let plan = load("serial.toml");
    assert_eq!(plan.mqtt.host, "::1");
    assert_eq!(plan.mqtt.port, 1883);
    assert_eq!(plan.mqtt.client_id, "plantmeter-gw-03");
    assert_eq!(plan.mqtt.topic_prefix, "plantmeter/plant-c/gw-03");
    let rtu = &plan.buses[0];
    match &rtu.transport {
        Transport::Rtu(s) => {
            assert_eq!(s.device, PathBuf::from("/dev/ttyUSB0"));
            assert_eq!(s.baud, 19200);
            assert_eq!(s.parity, Parity::Even);
            assert_eq!((s.data_bits, s.stop_bits), (8, 1));
        }
        other => panic!("expected rtu, got {other:?}"),
    }
    assert_eq!(rtu.timeout, Duration::from_millis(300));
    assert_eq!(rtu.retries, 2);
    assert_eq!(
        plan.buses[1].transport,
        Transport::RtuOverTcp {
            address: "192.168.1.50:4001".into()
        }
    );
    assert_eq!(plan.buses[1].retries, 0);

    let gas = &rtu.meters[0];
    let vol = &gas.points[0];
    // DCBA as a meter default means both swaps: HGFEDCBA for a 64-bit point
    assert_eq!(vol.byte_order.name(64), "HGFEDCBA");
    assert_eq!(vol.rollover, Some(18_446_744_073_709_551_616.0 * 0.001));
    // and BA for a 16-bit one
    assert_eq!(gas.points[1].byte_order.name(16), "BA");
    assert_eq!(gas.points[1].data_type, DataType::I16);
    let alarm = &gas.points[2];
    assert_eq!(
        (alarm.register, alarm.data_type, alarm.kind),
        (RegisterKind::Coil, DataType::Bool, PointKind::Gauge)
    );
    let kinds: Vec<RegisterKind> = gas.requests.iter().map(|r| r.register).collect();
    assert_eq!(kinds, [RegisterKind::Coil, RegisterKind::Holding]);

    let water = &plan.buses[1].meters[0];
    assert_eq!(water.unit_id, 247);
    assert_eq!(water.points[0].offset, 12.5);
    assert_eq!(water.points[0].rollover, Some(4_294_967_296.0));

    let a = plan.audit.as_ref().unwrap();
    assert_eq!(a.timezone.local_minus_utc(), -(3 * 3600 + 30 * 60));
    assert_eq!(a.baseline.0.to_string(), "2025-01-01");
    assert_eq!(a.reporting, None);
    assert_eq!(a.granularity, Granularity::Week);
    assert_eq!(
        a.electricity_method,
        ElectricityMethod::Equal {
            kgce_per_kwh: 0.404,
            year: Some(2023)
        }
    );
    assert_eq!(a.grid_factor_year, Some(2022));
    assert_eq!(a.grid_co2_t_per_mwh, 0.0);
    assert_eq!(a.publish_interval, Duration::from_secs(600));
    assert_eq!(a.production_unit, "m3 treated");
    assert_eq!(a.inputs[0].carrier, Carrier::NaturalGas);
    assert_eq!(a.inputs[0].kgce_per_unit, 1.2143);
    assert_eq!(a.inputs[0].co2_kg_per_unit, 2.1622);
    assert_eq!(a.inputs[1].kgce_per_unit, 0.0);
    assert_eq!(a.inputs[1].co2_kg_per_unit, 0.3);
    assert_eq!(a.levels[0].indicator, "natural_gas");
}

#[test]
fn equal_value_electricity_uses_the_configured_rate() {
    let path = configs().join("contract_example.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "granularity = \"day\"",
        "granularity = \"day\"\nelectricity = \"equal\"\nelectricity_kgce_per_kwh = 0.404\nelectricity_year = 2022",
    );
    let plan = config::parse(&format!("{text}{CONTRACT_EXTRA_METERS}"), &path).unwrap();
    let a = plan.audit.unwrap();
    assert_eq!(a.inputs[0].kgce_per_unit, 0.404);
    assert_eq!(a.inputs[0].co2_kg_per_unit, 0.5703);
}

#[test]
fn every_built_in_template_expands() {
    for name in plantmeter_common::templates::names() {
        let text = format!(
            "[gateway]\nid = \"g\"\nsite = \"s\"\ndata_dir = \"d\"\n[mqtt]\nurl = \"mqtt://h\"\n\
             [[bus]]\nname = \"b\"\ntransport = \"tcp\"\naddress = \"h:502\"\n\
             [[meter]]\nname = \"m\"\nunit_id = 1\npoll_interval_s = 1\ntemplate = \"{name}\"\n"
        );
        let plan = config::parse(&text, Path::new("t.toml"))
            .unwrap_or_else(|e| panic!("template {name}:\n{e}"));
        let (_, m) = plan.meter("m").unwrap();
        assert!(!m.points.is_empty(), "template {name} has no points");
        let covered: usize = m.requests.iter().map(|r| r.points.len()).sum();
        assert_eq!(covered, m.points.len(), "template {name}");
    }
}

#[test]
fn describe_shows_requests_per_bus_and_the_audit() {
    let text = config::describe(&load("template.toml"));
    assert!(
        text.contains("bus \"panel\": Modbus TCP to 10.0.0.7:502, timeout 1000 ms, 1 retry"),
        "{text}"
    );
    assert!(
        text.contains("    fc04 input    start 0x0000 (0)     count   76  -> voltage_l1, energy_import, energy_export"),
        "{text}"
    );
    assert!(
        text.contains("    fc03 holding  start 0xFC00 (64512) count    1  -> status"),
        "{text}"
    );
    assert!(
        text.contains("metrics   http://127.0.0.1:9898/metrics"),
        "{text}"
    );
    assert!(
        text.contains(
            "total     1 bus, 2 meters, 6 points, 4 requests per poll cycle, 6 requests/s"
        ),
        "{text}"
    );

    let text = config::describe(&load("serial.toml"));
    assert!(
        text.contains("bus \"rs485-1\": Modbus RTU on /dev/ttyUSB0 at 19200 baud 8E1, timeout 300 ms, 2 retries"),
        "{text}"
    );
    assert!(text.contains("serial line busy about"), "{text}");
    assert!(
        text.contains("bus \"converter\": Modbus RTU over TCP to 192.168.1.50:4001"),
        "{text}"
    );
    assert!(
        text.contains("    boiler-gas.volume  natural_gas     1.2143 kgce/m3      2.1622 kgCO2/m3"),
        "{text}"
    );
    assert!(
        text.contains("  electricity equal value, 0.404 kgce/kWh (2023)"),
        "{text}"
    );
}

/// The configuration example of CONTRACT.md as it stands now (it defines the meters its audit names, and a
/// manual meter): valid verbatim.
#[test]
fn current_contract_example_is_valid_with_its_manual_meter() {
    let plan = load("contract_example_current.toml");
    let polled: Vec<&str> = plan.polled_meters().map(|m| m.name.as_str()).collect();
    assert_eq!(polled, ["main-power", "packer", "outfall"]);
    assert_eq!(plan.manual_meters.len(), 1);
    let logbook = &plan.manual_meters[0];
    assert!(logbook.manual && logbook.requests.is_empty());
    assert_eq!(logbook.name, "logbook");
    assert_eq!(logbook.points[0].name, "hazardous_waste");
    assert_eq!(logbook.points[0].kind, PointKind::Counter);
    assert_eq!(logbook.points[0].unit, "t");
    assert!(plan.meter("logbook").is_none(), "no bus polls it");
    assert!(plan
        .point(&plantmeter_common::plan::PointRef {
            meter: "logbook".into(),
            point: "hazardous_waste".into(),
        })
        .is_some());
}

#[test]
fn manual_meters_take_no_bus_or_register_keys() {
    let base = std::fs::read_to_string(configs().join("contract_example_current.toml")).unwrap();
    let bad = base.replace(
        "manual = true                     # no bus",
        "manual = true\nbus = \"line-1\"\n# no bus",
    );
    let e = config::parse(&bad, Path::new("bad.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown key \"bus\""), "{e}");
    let bad = base.replace(
        "  name = \"hazardous_waste\"\n",
        "  name = \"hazardous_waste\"\n  address = 3\n",
    );
    let e = config::parse(&bad, Path::new("bad.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown key \"address\""), "{e}");
}

/// `check` shows the model candidates of several products and a driver, and each pollutant's source and O2.
#[test]
fn describe_shows_the_model_candidates_sources_and_o2() {
    // A plant beside template.toml's meters (which has no [audit]).
    let mut text = std::fs::read_to_string("tests/configs/template.toml").unwrap();
    text.push_str(
        r#"
[[meter]]
name = "plant"
bus = "panel"
unit_id = 9
poll_interval_s = 60
  [[meter.point]]
  name = "knit"
  register = "holding"
  address = 0
  type = "f64"
  unit = "t"
  kind = "counter"
  [[meter.point]]
  name = "woven"
  register = "holding"
  address = 4
  type = "f64"
  unit = "t"
  kind = "counter"
  [[meter.point]]
  name = "temp"
  register = "holding"
  address = 8
  type = "f64"
  unit = "C"
  kind = "gauge"
  [[meter.point]]
  name = "so2"
  register = "holding"
  address = 12
  type = "f64"
  unit = "mg/m3"
  kind = "gauge"
  [[meter.point]]
  name = "o2"
  register = "holding"
  address = 16
  type = "f64"
  unit = "%"
  kind = "gauge"
  [[meter.point]]
  name = "flow"
  register = "holding"
  address = 20
  type = "f64"
  unit = "m3/h"
  kind = "gauge"

[audit]
timezone = "+08:00"
baseline = ["2025-01-01", "2026-01-01"]
production_unit = "t"
grid_co2_t_per_mwh = 0.5703
[[audit.product]]
name = "knit"
point = "plant.knit"
[[audit.product]]
name = "woven"
point = "plant.woven"
factor = 0.8
[[audit.driver]]
name = "hdd"
point = "plant.temp"
transform = "hdd"
[[audit.pollutant]]
name = "SO2"
source = "boiler-2"
concentration = "plant.so2"
flow = "plant.flow"
o2 = "plant.o2"
o2_reference = 3.5
"#,
    );
    let plan =
        config::parse(&text, std::path::Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"));
    let out = config::describe(&plan);
    assert!(
        out.contains(
            "candidates: production | knit + woven | production + hdd | knit + woven + hdd"
        ),
        "{out}"
    );
    assert!(
        out.contains("concentration plant.so2 mg/m3 x flow rate plant.flow m3/h, O2 plant.o2 (reference 3.5 %) (source boiler-2)"),
        "{out}"
    );
}

/// `check` prints the days the config's half-open periods include, both ends (DOMAIN.md "Honest figures"),
/// and warns when the reporting period overlaps the baseline.
#[test]
fn check_prints_the_inclusive_days_of_the_periods_and_warns_of_an_overlap() {
    let mut plan = load("contract_example_current.toml");
    let out = config::describe(&plan);
    assert!(
        out.contains("baseline    2025-01-01 .. 2025-12-31 (365 days, both included;"),
        "{out}"
    );
    assert!(
        out.contains("reporting   2026-01-01 .. 2026-06-30 (181 days, both included;"),
        "{out}"
    );
    assert!(!out.contains("overlaps"), "{out}");
    let a = plan.audit.as_mut().unwrap();
    a.reporting = Some((
        chrono::NaiveDate::from_ymd_opt(2025, 12, 1).unwrap(),
        chrono::NaiveDate::from_ymd_opt(2026, 2, 1).unwrap(),
    ));
    let out = config::describe(&plan);
    assert!(
        out.contains("warning     the reporting period 2025-12-01 .. 2026-01-31 overlaps the baseline period 2025-01-01 .. 2025-12-31"),
        "{out}"
    );
}
