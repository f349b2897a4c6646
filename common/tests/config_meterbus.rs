//! `[[bus]] protocol = "dlt645-2007" | "dlt645-1997" | "cjt188"`: meters by address, points by
//! data identifier, templates, the multiplier; and their errors with `FILE:LINE:COL`.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use plantmeter_common::cjt188::{DiOrder, Field, MeterKind};
use plantmeter_common::config;
use plantmeter_common::plan::{LinkPoint, MeterProtocol, Parity, Protocol, Transport};
use plantmeter_common::templates;
use plantmeter_common::types::PointKind;

const HEAD: &str = r#"[gateway]
id = "gw-01"
site = "plant-a"
data_dir = "/tmp/pm"

[mqtt]
url = "mqtt://127.0.0.1:1883"

"#;

const GOOD: &str = r#"[[bus]]
name = "rs485-1"
protocol = "dlt645-2007"
transport = "serial"
device = "/dev/ttyUSB0"
gap_ms = 80

[[bus]]
name = "water"
protocol = "cjt188"
transport = "tcp"
address = "10.0.0.7:4001"
preamble = "FE FE"

[[meter]]
name = "main-power"
bus = "rs485-1"
address = "000102030425"
poll_interval_s = 60
template = "dlt645-meter"
points = ["energy_import", "voltage_a", "current_a"]
pt_ratio = 60.0
ct_ratio = 100.0
  [[meter.multiplier_change]]
  at = "2026-03-01T00:00:00+08:00"
  value = 8000.0

[[meter]]
name = "old-power"
bus = "rs485-1"
address = "000000000003"
poll_interval_s = 60
  [[meter.point]]
  name = "reactive"
  di = "00030000"

[[meter]]
name = "main-water"
bus = "water"
address = "78330011223344"
poll_interval_s = 60
template = "cjt188-water"
di_order = "high_first"

[[meter]]
name = "heat"
bus = "water"
address = "00000000000001"
poll_interval_s = 60
meter_type = "20"
  [[meter.point]]
  name = "heat"
  field = "heat"
  unit = "GJ"
  [[meter.point]]
  name = "supply"
  field = "supply_temp"
"#;

fn errors(text: &str) -> String {
    match config::parse(&format!("{HEAD}{text}"), Path::new("bad.toml")) {
        Ok(_) => panic!("expected errors, the config is valid:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_plant_with_dlt645_and_cjt188_buses() {
    let plan = config::parse(&format!("{HEAD}{GOOD}"), Path::new("ok.toml")).unwrap();
    let bus = &plan.buses[0];
    let Transport::Rtu(serial) = &bus.transport else {
        panic!("{:?}", bus.transport)
    };
    assert_eq!((serial.baud, serial.parity), (2400, Parity::Even));
    let Protocol::Meter(link) = &bus.protocol else {
        panic!()
    };
    assert_eq!(link.preamble, vec![0xFE; 4]);
    assert_eq!(link.gap, Duration::from_millis(80));
    let m = &bus.meters[0];
    let names: Vec<_> = m.points.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["energy_import", "voltage_a", "current_a"]);
    assert_eq!(m.points[0].unit, "kWh");
    assert_eq!(m.points[0].kind, PointKind::Counter);
    // The register wraps at 1 000 000.00 kWh; published on the primary side (x 8000 since the
    // change), so does the counter's modulus.
    assert_eq!(m.points[0].rollover, Some(8_000_000_000.0));
    let l = m.link.as_ref().unwrap();
    assert_eq!(l.address, vec![0x25, 0x04, 0x03, 0x02, 0x01, 0x00]);
    assert!(matches!(
        l.points[0],
        LinkPoint::Dlt645 {
            di: 0x0001_0000,
            ..
        }
    ));
    let mult = m.multiplier.as_ref().unwrap();
    assert_eq!((mult.energy, mult.pt, mult.ct), (6000.0, 60.0, 100.0));
    assert_eq!(mult.factor("kWh", 0), 6000.0);
    assert_eq!(mult.factor("V", 0), 60.0);
    assert_eq!(mult.factor("A", 0), 100.0);
    // 2026-03-01T00:00+08:00 = 2026-02-28T16:00Z.
    assert_eq!(mult.factor("kWh", 1_772_294_400_000), 8000.0);
    assert_eq!(mult.factor("kWh", 1_772_294_399_999), 6000.0);
    // Combined reactive energy carries a sign: its modulus is 799 999.99 + 0.01.
    assert_eq!(bus.meters[1].points[0].rollover, Some(800_000.0));
    assert_eq!(bus.meters[1].points[0].unit, "kvarh");

    let water = &plan.buses[1];
    assert_eq!(
        water.transport,
        Transport::RtuOverTcp {
            address: "10.0.0.7:4001".into()
        }
    );
    let Protocol::Meter(link) = &water.protocol else {
        panic!()
    };
    assert_eq!(link.kind, MeterProtocol::Cjt188);
    assert_eq!(link.preamble, vec![0xFE; 2]);
    let w = water.meters[0].link.as_ref().unwrap();
    assert_eq!((w.meter_type, w.di_order), (0x10, DiOrder::HighFirst));
    assert_eq!(water.meters[0].points[0].unit, "m3");
    let h = &water.meters[1];
    assert_eq!(h.points[0].unit, "GJ");
    assert_eq!(h.points[1].unit, "°C");
    assert_eq!(h.points[1].kind, PointKind::Gauge);
    assert!(matches!(
        h.link.as_ref().unwrap().points[0],
        LinkPoint::Cjt188 {
            kind: MeterKind::Heat,
            field: Field::Heat,
            ..
        }
    ));
}

#[test]
fn every_link_template_reads_on_its_bus() {
    for name in templates::link_names() {
        let (protocol, address, extra) = match name {
            "dlt645-meter" => ("dlt645-2007", "000000000001", ""),
            "dlt645-1997-meter" => ("dlt645-1997", "000000000001", ""),
            _ => ("cjt188", "00000000000001", ""),
        };
        let text = format!(
            "[[bus]]\nname = \"b\"\nprotocol = \"{protocol}\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:4001\"\n\
             [[meter]]\nname = \"m\"\naddress = \"{address}\"\npoll_interval_s = 1\ntemplate = \"{name}\"\n{extra}"
        );
        let plan = config::parse(&format!("{HEAD}{text}"), Path::new("t.toml"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!plan.buses[0].meters[0].points.is_empty(), "{name}");
    }
}

#[test]
fn errors_name_file_line_and_column() {
    // Lines: HEAD is 8 lines; the bus starts at line 9.
    let bus = "[[bus]]\nname = \"b\"\nprotocol = \"dlt645\"\ntransport = \"serial\"\ndevice = \"/dev/x\"\n";
    assert_eq!(
        errors(bus),
        "bad.toml:1:1: nothing to poll: add at least one [[meter]] with its points\n\
         bad.toml:11:12: unknown protocol \"dlt645\"; use modbus, dlt645-2007, dlt645-1997 or cjt188"
    );
    let text = "[[bus]]\nname = \"b\"\nprotocol = \"dlt645-2007\"\ntransport = \"serial\"\ndevice = \"/dev/x\"\npreamble = \"FE FEE\"\n\
                [[meter]]\nname = \"m\"\naddress = \"12345\"\npoll_interval_s = 1\n\
                  [[meter.point]]\n  name = \"e\"\n  di = \"00010099\"\n\
                  [[meter.point]]\n  name = \"v\"\n  di = \"02010100\"\n  unit = \"kV\"\n  register = \"holding\"\n";
    let e = errors(text);
    assert!(
        e.contains("bad.toml:14:12: preamble \"FE FEE\" must be 0 to 8 hex bytes"),
        "{e}"
    );
    assert!(
        e.contains("bad.toml:17:11: address \"12345\" must be 12 digits for dlt645-2007"),
        "{e}"
    );
    assert!(
        e.contains("bad.toml:21:8: di \"00010099\" is not one the agent knows"),
        "{e}"
    );
    assert!(
        e.contains("bad.toml:25:10: unit \"kV\" does not fit this data identifier, which reads V"),
        "{e}"
    );
    assert!(e.contains("bad.toml:26:3: register is for Modbus points; a dlt645-2007 point reads a data identifier (di)"), "{e}");

    let cjt = "[[bus]]\nname = \"b\"\nprotocol = \"cjt188\"\ntransport = \"tcp\"\naddress = \"10.0.0.1\"\n\
               [[meter]]\nname = \"m\"\naddress = \"00000000000001\"\npoll_interval_s = 1\ntemplate = \"dlt645-meter\"\n";
    let e = errors(cjt);
    assert!(
        e.contains("bad.toml:13:11: address \"10.0.0.1\" needs the serial server's port"),
        "{e}"
    );
    assert!(
        e.contains("template \"dlt645-meter\" is for protocol dlt645-2007, the bus speaks cjt188"),
        "{e}"
    );

    let mult = "[[bus]]\nname = \"b\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:502\"\n\
                [[meter]]\nname = \"m\"\nunit_id = 1\npoll_interval_s = 1\nmultiplier = 100.0\npt_ratio = 10.0\n\
                  [[meter.multiplier_change]]\n  at = \"2026-03-01\"\n  value = 2.0\n\
                  [[meter.point]]\n  name = \"p\"\n  address = 0\n  type = \"u16\"\n";
    let e = errors(mult);
    assert!(
        e.contains("bad.toml:17:14: multiplier 100 differs from pt_ratio x ct_ratio = 10"),
        "{e}"
    );
    assert!(
        e.contains("bad.toml:20:8: at \"2026-03-01\" is not an RFC 3339 time"),
        "{e}"
    );
}

/// `check`'s plan: one request per point, the bytes they put on the line and the line's load:
/// main-power reads 3 points (20 + 24, 20 + 22, 20 + 23 bytes with 4 wake-up bytes each way),
/// old-power one (20 + 24): 173 bytes; at 2400 baud 8E1 (11 bits a byte) plus 80 ms gaps, every
/// 60 s: (129 x 11 / 2400 + 0.24 + 44 x 11 / 2400 + 0.08) / 60 = 1.85 %.
#[test]
fn check_shows_requests_bytes_and_line_load() {
    let plan = config::parse(&format!("{HEAD}{GOOD}"), Path::new("ok.toml")).unwrap();
    let text = config::describe(&plan);
    assert!(
        text.contains("bus \"rs485-1\": dlt645-2007 on /dev/ttyUSB0 at 2400 baud 8E1, preamble [FE FE FE FE], gap 80 ms"),
        "{text}"
    );
    assert!(
        text.contains("meter \"main-power\": address 000102030425, every 60 s, template dlt645-meter, multiplier 6000 (1 dated change), 3 points in 3 requests, 129 bytes per poll"),
        "{text}"
    );
    assert!(
        text.contains(
            "energy_import [kWh] -> DI 00010000 forward active energy (4 BCD bytes, 2 decimals)"
        ),
        "{text}"
    );
    assert!(
        text.contains("load: 4 requests per poll cycle, 173 bytes on the line, serial line busy about 1.9% of the time"),
        "{text}"
    );
    assert!(
        text.contains(
            "bus \"water\": cjt188 through the serial server 10.0.0.7:4001, preamble [FE FE]"
        ),
        "{text}"
    );
}

/// CJ/T 188 registers count to 999 999.99 in the meter's unit: a heat point in GJ of a meter
/// counting kWh rolls over at 1 000 000 kWh = 3 600 GJ. Across the wrap (999 900 kWh, then
/// 100 kWh) the consumption is 200 kWh = 0.72 GJ and one rollover, not a replacement found
/// against a modulus of 1 000 000 GJ. A meter counting in another unit than the modulus assumed
/// gets its reading refused, naming the rollover to set.
#[test]
fn cjt188_rollover_is_in_the_meters_unit() {
    use plantmeter_common::audit::hourly::{HourAgg, HourGrid};
    use plantmeter_common::audit::intervals::Tracker;
    use plantmeter_common::cjt188;
    use plantmeter_common::frame68::RawFrame;
    use plantmeter_common::meter_read::{Answer, Session};
    use plantmeter_common::Quality;

    let plan = config::parse(&format!("{HEAD}{GOOD}"), Path::new("ok.toml")).unwrap();
    let water = &plan.buses[1];
    let heat = &water.meters[1];
    let gj = heat.points[0].rollover.unwrap();
    assert!((gj - 3600.0).abs() < 1e-9, "{gj}");
    assert_eq!(water.meters[0].points[0].rollover, Some(1_000_000.0));
    // An explicit rollover is taken as written, unchecked against the unit byte.
    let own = config::parse(
        &format!(
            "{HEAD}{}",
            GOOD.replace(
                "  unit = \"GJ\"\n",
                "  unit = \"GJ\"\n  rollover = 3600000.0\n"
            )
        ),
        Path::new("ok.toml"),
    )
    .unwrap();
    assert_eq!(own.buses[1].meters[1].points[0].rollover, Some(3_600_000.0));
    assert!(matches!(
        own.buses[1].meters[1].link.as_ref().unwrap().points[0],
        LinkPoint::Cjt188 {
            modulus_unit: None,
            ..
        }
    ));

    let grid = HourGrid::new(chrono::FixedOffset::east_opt(8 * 3600).unwrap());
    let mut t = Tracker::new(PointKind::Counter, Some(gj), 3_600_000);
    let (mut total, mut rollovers) = (0.0, 0);
    let mut add = |_: i64, a: HourAgg| {
        total += a.sum;
        rollovers += a.rollovers;
    };
    let in_gj = |kwh: f64| cjt188::convert(kwh, 0x05, "GJ").unwrap();
    t.push(0, Some(in_gj(999_900.0)), &grid, &mut add);
    t.push(60_000, Some(in_gj(100.0)), &grid, &mut add);
    t.push(120_000, Some(in_gj(100.0)), &grid, &mut add);
    assert!((total - 0.72).abs() < 1e-9, "{total}");
    assert_eq!(rollovers, 1);

    // The unit byte checked against the unit the modulus assumed.
    let Protocol::Meter(mb) = &water.protocol else {
        panic!()
    };
    let link = heat.link.as_ref().unwrap();
    assert_eq!(link.reads.len(), 1, "heat and supply from one 901F read");
    let reply = |code: u8| {
        let mut payload = vec![0u8; MeterKind::Heat.payload_len()];
        cjt188::put_field(MeterKind::Heat, Field::Heat, 999.9, code, &mut payload).unwrap();
        cjt188::put_field(MeterKind::Heat, Field::SupplyTemp, 70.0, 0, &mut payload).unwrap();
        let a: [u8; 7] = link.address.clone().try_into().unwrap();
        let f = cjt188::encode_read_reply(&[], 0x20, &a, [0x1F, 0x90], 1, &payload);
        let mut s = Session::new(mb, link, &link.reads[0], &heat.points);
        let Answer::Values(v) = s.on_frame(&RawFrame::from_slice(&f).unwrap()) else {
            panic!("no values")
        };
        v
    };
    let kwh = reply(0x05);
    assert_eq!(kwh[0].quality, Quality::Good);
    assert!((kwh[0].value.unwrap() - in_gj(999.9)).abs() < 1e-9);
    let mwh = reply(0x08);
    assert_eq!(mwh[0].quality, Quality::Invalid);
    let why = mwh[0].why.as_deref().unwrap();
    assert!(
        why.contains("counts in MWh") && why.contains("= 3600000") && why.contains("set rollover"),
        "{why}"
    );
    assert_eq!(
        mwh[1].value,
        Some(70.0),
        "a gauge of the same reply is unaffected"
    );
}
