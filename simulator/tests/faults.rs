//! Each fault shows on the wire as a real meter's would, seen by a real Modbus client.
#![allow(clippy::unwrap_used)]

mod common;
mod modbus_client;
mod wait;

use std::time::{Duration, Instant};

use common::frozen;
use modbus_client::read_point;
use plantmeter_common::codec::decode_point;
use plantmeter_common::model::{parse_ts_ms, Quality};
use plantmeter_common::Clock;
use plantmeter_sim::{start, Fault, Scenario, SimOptions};
use tokio_modbus::prelude::*;
use wait::wait_until;

const T: &str = "2025-06-11T10:30:00+08:00";
const DAY: Duration = Duration::from_secs(86_400);

async fn plant(clock: Clock, rtu: bool) -> plantmeter_sim::SimHandle {
    start(
        Scenario::builtin(),
        SimOptions {
            rtu_over_tcp_listen: rtu.then(|| "127.0.0.1:0".to_string()),
            clock,
            ..SimOptions::default()
        },
    )
    .await
    .unwrap()
}

/// main-power (SDM630, unit 1), energy_import at input 0x48.
async fn read_energy(ctx: &mut tokio_modbus::client::Context) -> tokio_modbus::Result<Vec<u16>> {
    ctx.set_slave(Slave(1));
    ctx.read_input_registers(0x48, 2).await
}

#[tokio::test]
async fn timeout_means_no_reply_and_other_meters_still_answer() {
    let sim = plant(frozen(T), false).await;
    sim.inject("main-power", Fault::Timeout, DAY).unwrap();
    let mut ctx = tcp::connect(sim.addr()).await.unwrap();
    let r = tokio::time::timeout(Duration::from_millis(300), read_energy(&mut ctx)).await;
    assert!(r.is_err(), "expected no reply, got {r:?}");
    // Another meter on the same gateway answers on a fresh connection.
    let mut ctx2 = tcp::connect_slave(sim.addr(), Slave(2)).await.unwrap();
    assert!(ctx2.read_holding_registers(62, 2).await.unwrap().is_ok());
    assert_eq!(sim.stats("main-power").unwrap().timeouts, 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn exceptions_device_failure_unknown_register_and_unknown_unit() {
    let sim = plant(frozen(T), false).await;
    let mut ctx = tcp::connect(sim.addr()).await.unwrap();
    // Outside the SDM630's map: illegal data address.
    ctx.set_slave(Slave(1));
    assert_eq!(
        ctx.read_input_registers(0x7000, 2).await.unwrap(),
        Err(ExceptionCode::IllegalDataAddress)
    );
    // The SDM630 has no holding registers here.
    assert_eq!(
        ctx.read_holding_registers(0x48, 2).await.unwrap(),
        Err(ExceptionCode::IllegalDataAddress)
    );
    // Writes are refused: the meters are read-only.
    assert_eq!(
        ctx.write_single_register(0x48, 1).await.unwrap(),
        Err(ExceptionCode::IllegalFunction)
    );
    // A unit id without a meter behind the gateway.
    ctx.set_slave(Slave(99));
    assert_eq!(
        ctx.read_holding_registers(0, 2).await.unwrap(),
        Err(ExceptionCode::GatewayTargetDevice)
    );
    sim.inject("main-power", Fault::Exception(4), DAY).unwrap();
    assert_eq!(
        read_energy(&mut ctx).await.unwrap(),
        Err(ExceptionCode::ServerDeviceFailure)
    );
    sim.clear_faults("main-power").unwrap();
    assert!(read_energy(&mut ctx).await.unwrap().is_ok());
    sim.shutdown().await;
}

#[tokio::test]
async fn slow_replies_arrive_late_but_right() {
    let sim = plant(frozen(T), false).await;
    sim.inject("main-power", Fault::Slow(Duration::from_millis(250)), DAY)
        .unwrap();
    let mut ctx = tcp::connect(sim.addr()).await.unwrap();
    let t0 = Instant::now();
    let words = read_energy(&mut ctx).await.unwrap().unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(250));
    let p = &sim.sim().meter("main-power").unwrap().template.points[9];
    assert_eq!(p.name, "energy_import");
    let want = sim
        .sim()
        .point_value("main-power", "energy_import", sim.now_ms())
        .unwrap();
    assert!(modbus_client::close(
        p,
        decode_point(p, &words).0.unwrap(),
        want
    ));
    sim.shutdown().await;
}

#[tokio::test]
async fn dropped_connection_and_garbage_are_errors_over_tcp_and_rtu() {
    let sim = plant(frozen(T), true).await;
    sim.inject("main-power", Fault::Drop, DAY).unwrap();
    let mut ctx = tcp::connect(sim.addr()).await.unwrap();
    assert!(
        read_energy(&mut ctx).await.is_err(),
        "drop must break the connection"
    );
    let stream = tokio::net::TcpStream::connect(sim.rtu_over_tcp_addr().unwrap())
        .await
        .unwrap();
    let mut rtu_ctx = rtu::attach_slave(stream, Slave(1));
    assert!(read_energy(&mut rtu_ctx).await.is_err());

    sim.clear_faults("main-power").unwrap();
    sim.inject("main-power", Fault::Garbage, DAY).unwrap();
    let mut ctx = tcp::connect(sim.addr()).await.unwrap();
    let r = tokio::time::timeout(Duration::from_millis(500), read_energy(&mut ctx)).await;
    assert!(
        !matches!(r, Ok(Ok(Ok(_)))),
        "garbage must not decode: {r:?}"
    );
    let stream = tokio::net::TcpStream::connect(sim.rtu_over_tcp_addr().unwrap())
        .await
        .unwrap();
    let mut rtu_ctx = rtu::attach_slave(stream, Slave(1));
    let r = tokio::time::timeout(Duration::from_millis(500), read_energy(&mut rtu_ctx)).await;
    assert!(
        !matches!(r, Ok(Ok(Ok(_)))),
        "bad CRC must not decode: {r:?}"
    );
    let c = sim.stats("main-power").unwrap();
    assert_eq!((c.drops, c.garbage), (2, 2));
    sim.shutdown().await;
}

#[tokio::test]
async fn nan_makes_float_points_invalid_and_stuck_freezes_values() {
    // 1 real second = 1 virtual hour: values change from one slot to the next.
    let clock = Clock::virtual_from(parse_ts_ms(T).unwrap(), 3600.0);
    let sim = plant(clock, false).await;
    let meter = sim.sim().meter("main-power").unwrap();
    let power = meter
        .template
        .points
        .iter()
        .find(|p| p.name == "total_power")
        .unwrap()
        .clone();
    let mut ctx = tcp::connect_slave(sim.addr(), Slave(1)).await.unwrap();

    sim.inject("main-power", Fault::Nan, DAY).unwrap();
    let words = ctx
        .read_input_registers(power.address, 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(decode_point(&power, &words), (None, Quality::Invalid));
    sim.clear_faults("main-power").unwrap();

    // The ADW300's counter keeps moving; the stuck SDM630 shows the same registers.
    sim.inject("main-power", Fault::Stuck, DAY).unwrap();
    let a = ctx.read_input_registers(0x34, 0x18).await.unwrap().unwrap();
    ctx.set_slave(Slave(2));
    let b1 = ctx.read_holding_registers(62, 2).await.unwrap().unwrap();
    // Into the next hour's slot (where every rate changes), and the healthy meter's counter moved.
    let t1 = sim.now_ms() + 3_600_000;
    wait_until("the next slot", Duration::from_secs(10), || {
        sim.now_ms() >= t1
    });
    ctx.set_slave(Slave(1));
    let a2 = ctx.read_input_registers(0x34, 0x18).await.unwrap().unwrap();
    ctx.set_slave(Slave(2));
    let b2 = ctx.read_holding_registers(62, 2).await.unwrap().unwrap();
    assert_eq!(a, a2, "a stuck meter repeats itself");
    assert_ne!(b1, b2, "the healthy meter's counter advances");
    sim.shutdown().await;
}

#[tokio::test]
async fn rollover_happens_at_the_meters_modulus_when_scheduled() {
    let mut sc = Scenario::builtin();
    let at = parse_ts_ms("2025-06-11T10:31:00+08:00").unwrap();
    sc.meter_mut("power-b").unwrap().rollover_at = Some(at);
    // Start 20 virtual seconds before the wrap; 60x real time.
    let clock = Clock::virtual_from(at - 20_000, 60.0);
    let sim = start(
        sc,
        SimOptions {
            clock,
            ..SimOptions::default()
        },
    )
    .await
    .unwrap();
    let p = sim.sim().meter("power-b").unwrap().template.points[1].clone();
    assert_eq!(
        (p.name.as_str(), p.rollover),
        ("energy_import", Some(10_000_000.0))
    );
    let mut ctx = tcp::connect_slave(sim.addr(), Slave(2)).await.unwrap();
    let before = read_point(&mut ctx, &p).await.unwrap().unwrap();
    assert!(before > 9_999_990.0 && before < 10_000_000.0, "{before}");
    // Past the wrap (20 virtual seconds ahead of the start).
    wait_until("the rollover instant", Duration::from_secs(10), || {
        sim.now_ms() >= at + 1_000
    });
    let after = read_point(&mut ctx, &p).await.unwrap().unwrap();
    assert!(after < 10.0, "{after}");
    // Rollover rule of DOMAIN.md: delta = (modulus - previous) + current = true consumption.
    let delta = (10_000_000.0 - before) + after;
    assert!(delta > 0.0 && delta < 20.0, "{delta}");
    sim.shutdown().await;
}

#[tokio::test]
async fn replaced_meter_restarts_near_zero_while_the_truth_goes_on() {
    let clock = Clock::virtual_from(parse_ts_ms(T).unwrap(), 60.0);
    let sim = plant(clock, false).await;
    let p = sim.sim().meter("water").unwrap().template.points[2].clone();
    assert_eq!(p.name, "totalizer");
    let mut ctx = tcp::connect_slave(sim.addr(), Slave(7)).await.unwrap();
    let old = read_point(&mut ctx, &p).await.unwrap().unwrap();
    assert!(old > 45_000.0, "{old}");
    let t_replace = sim.replace_meter("water").unwrap();
    wait_until(
        "the replacement instant passed",
        Duration::from_secs(10),
        || sim.now_ms() > t_replace,
    );
    let new = read_point(&mut ctx, &p).await.unwrap().unwrap();
    assert!((0.0..5.0).contains(&new), "{new}");
    // The truth is the consumption, replacement or not.
    let t = sim.now_ms();
    let truth = sim.truth(t_replace, t);
    let adv = truth.totals.points["water.totalizer"];
    let shown = sim.sim().point_value("water", "totalizer", t).unwrap();
    assert!((adv - shown).abs() < 1e-6, "{adv} vs {shown}");
    sim.shutdown().await;
}

#[tokio::test]
async fn random_faults_hit_about_their_rate_and_scheduled_windows_end() {
    let text = plantmeter_sim::scenario::BUILTIN.replace(
        "counter_start = 34567.89",
        "counter_start = 34567.89\n\n  [[meter.fault]]\n  kind = \"exception\"\n  code = 4\n  rate = 0.3\n\n  [[meter.fault]]\n  kind = \"timeout\"\n  from = \"2025-06-11T10:00:00+08:00\"\n  to = \"2025-06-11T10:20:00+08:00\"",
    );
    let mut sc = Scenario::from_toml(&text).unwrap();
    assert_eq!(sc.meter_mut("packer").unwrap().faults.windows.len(), 1);
    let sim = start(
        sc,
        SimOptions {
            clock: frozen(T),
            ..SimOptions::default()
        },
    )
    .await
    .unwrap();
    let mut ctx = tcp::connect_slave(sim.addr(), Slave(11)).await.unwrap();
    let mut failed = 0;
    for _ in 0..400 {
        if ctx.read_holding_registers(0, 3).await.unwrap().is_err() {
            failed += 1;
        }
    }
    // The timeout window ended at 10:20; only the random exceptions remain.
    assert!((80..160).contains(&failed), "{failed} of 400");
    sim.shutdown().await;
}

/// One raw Modbus TCP exchange: read 2 input registers at 0x48 from unit 1 with transaction 7;
/// the reply's (transaction, unit, PDU).
async fn raw_read(addr: std::net::SocketAddr) -> (u16, u8, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(&[0, 7, 0, 0, 0, 6, 1, 4, 0, 0x48, 0, 2])
        .await
        .unwrap();
    let mut header = [0u8; 7];
    s.read_exact(&mut header).await.unwrap();
    let len = usize::from(u16::from_be_bytes([header[4], header[5]]));
    let mut pdu = vec![0u8; len - 1];
    s.read_exact(&mut pdu).await.unwrap();
    (u16::from_be_bytes([header[0], header[1]]), header[6], pdu)
}

#[tokio::test]
async fn hostile_replies_are_well_framed_but_answer_another_question() {
    let sim = plant(frozen(T), false).await;
    let (tid, unit, good) = raw_read(sim.addr()).await;
    assert_eq!((tid, unit, good[0], good[1]), (7, 1, 4, 4));
    // Each check gets the reply's (transaction, unit, PDU) and the good reply's PDU.
    type Check = fn(u16, u8, &[u8], &[u8]);
    let cases: [(Fault, Check); 5] = [
        (Fault::ExtraRegisters, |tid, unit, pdu, good| {
            assert_eq!((tid, unit, pdu[0], pdu[1]), (7, 1, 4, 8));
            assert_eq!(&pdu[2..6], &[0x1A, 0x0A, 0x1A, 0x0A], "6666 twice in front");
            assert_eq!(&pdu[6..], &good[2..]);
        }),
        (Fault::ShortReply, |tid, unit, pdu, good| {
            assert_eq!((tid, unit), (7, 1));
            assert_eq!(pdu, &[4, 2, good[2], good[3]]);
        }),
        (Fault::WrongUnit, |tid, unit, pdu, good| {
            assert_eq!((tid, unit, pdu), (7, 2, good));
        }),
        (Fault::WrongFunction, |tid, unit, pdu, good| {
            assert_eq!((tid, unit, pdu[0], &pdu[1..]), (7, 1, 3, &good[1..]));
        }),
        (Fault::WrongTransaction, |tid, unit, pdu, good| {
            assert_eq!((tid, unit, pdu), (8, 1, good));
        }),
    ];
    for (fault, check) in cases {
        sim.clear_faults("main-power").unwrap();
        sim.inject("main-power", fault, DAY).unwrap();
        let (tid, unit, pdu) = raw_read(sim.addr()).await;
        check(tid, unit, &pdu, &good);
    }
    sim.shutdown().await;
}

/// 分表计电's fault: the blowers switched off over a window of a working day answer with power 0 and
/// an energy counter that stands still, then run on from where it stood (no jump); the line's
/// meter is untouched. The built-in plant with wwtp.toml pairs them as `[[audit.facility]]`.
#[test]
fn blowers_switched_off_read_zero_power_and_a_still_counter() {
    let sim =
        plantmeter_sim::Simulation::new(Scenario::builtin_with_wwtp(), None, frozen(T)).unwrap();
    let t0 = parse_ts_ms(T).unwrap();
    let h = 3_600_000;
    let power = |t: i64| sim.point_value("blowers", "total_power", t).unwrap();
    let energy = |t: i64| sim.point_value("blowers", "energy_import", t).unwrap();
    let before = (power(t0), energy(t0), energy(t0 + 3 * h));
    assert!(
        before.0 > 10_000.0,
        "the blowers run with the line: {} W",
        before.0
    );
    sim.switch_off("blowers", t0 + h, t0 + 2 * h).unwrap();
    assert_eq!(power(t0 + h + 1), 0.0);
    assert_eq!(energy(t0 + h + 1_800_000), energy(t0 + h));
    assert!(
        power(t0 + 2 * h) > 10_000.0,
        "running again at the window's end"
    );
    let skipped = before.2 - energy(t0 + 3 * h);
    let hour_on = energy(t0 + h) - energy(t0);
    assert!(
        (skipped - hour_on).abs() / hour_on < 0.2,
        "the hour off is missing from the counter: {skipped} kWh against {hour_on} kWh an hour"
    );
    assert!(
        sim.point_value("dyehouse", "total_power", t0 + h + 1)
            .unwrap()
            > 150_000.0
    );
    let cfg = sim.agent_config(&plantmeter_sim::AgentConfigOptions::tcp("127.0.0.1:5020"));
    assert!(
        cfg.contains("[[audit.facility]]\nname = \"wwtp\"\nproduction = \"dyehouse.energy_import\"\ntreatment = \"blowers.energy_import\""),
        "{cfg}"
    );
}
