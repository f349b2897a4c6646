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
    assert_eq!(a.production.qualified(), "packer.output");
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

#[test]
fn scratch_describe() {
    println!("{}", config::describe(&contract_plan()));
}
