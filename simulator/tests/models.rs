//! Every meter model of the built-in plant, read with a real Modbus client (tokio-modbus) over
//! Modbus TCP, RTU over TCP and RTU on a pseudo-terminal, checked against the plant model.
#![allow(clippy::unwrap_used)]

mod common;
mod modbus_client;

use common::frozen;
use modbus_client::{close, read_point};
use plantmeter_sim::Simulation;
use plantmeter_sim::{start, Scenario, SimOptions};
use tokio_modbus::client::Context;
use tokio_modbus::prelude::*;

// A Wednesday during the morning shift: production runs, every gauge is non-zero.
const T: &str = "2025-06-11T10:30:00+08:00";

fn opts(rtu: bool, pty: bool) -> SimOptions {
    SimOptions {
        listen: "127.0.0.1:0".into(),
        rtu_over_tcp_listen: rtu.then(|| "127.0.0.1:0".to_string()),
        pty,
        seed: None,
        clock: frozen(T),
    }
}

#[tokio::test]
async fn every_model_over_modbus_tcp_matches_the_model() {
    let sim = start(Scenario::builtin(), opts(false, false))
        .await
        .unwrap();
    let mut ctx = tcp::connect(sim.addr()).await.unwrap();
    let t = sim.now_ms();
    let n = check_all_meters(&mut ctx, sim.sim(), t).await;
    assert!(n >= 40, "only {n} points");
    // Templates cover every model named in the issue.
    let models: Vec<_> = sim
        .sim()
        .meters
        .iter()
        .map(|m| m.template.name.as_str())
        .collect();
    for want in [
        "sdm630",
        "adw300",
        "dtsd1352",
        "dtsu666",
        "iem3000",
        "magflow",
        "gasflow",
        "cems",
        "thermo43i",
        "wastewater",
        "counter",
    ] {
        assert!(
            models.contains(&want),
            "{want} is not in the built-in plant"
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn every_model_over_rtu_over_tcp_matches_the_model() {
    let sim = start(Scenario::builtin(), opts(true, false)).await.unwrap();
    let stream = tokio::net::TcpStream::connect(sim.rtu_over_tcp_addr().unwrap())
        .await
        .unwrap();
    let mut ctx = rtu::attach_slave(stream, Slave(1));
    let t = sim.now_ms();
    assert!(check_all_meters(&mut ctx, sim.sim(), t).await >= 40);
    sim.shutdown().await;
}

#[tokio::test]
async fn every_model_over_a_pseudo_terminal_matches_the_model() {
    let sim = start(Scenario::builtin(), opts(false, true)).await.unwrap();
    let path = sim.pty_path().unwrap().to_path_buf();
    assert!(path.exists(), "{}", path.display());
    let port =
        tokio_serial::SerialStream::open(&tokio_serial::new(path.to_string_lossy(), 9600)).unwrap();
    let mut ctx = rtu::attach_slave(port, Slave(1));
    let t = sim.now_ms();
    assert!(check_all_meters(&mut ctx, sim.sim(), t).await >= 40);
    sim.shutdown().await;
}

#[tokio::test]
async fn known_values_of_the_dyeing_plant_are_plausible() {
    let sim = start(Scenario::builtin(), opts(false, false))
        .await
        .unwrap();
    let s = sim.sim();
    let t = sim.now_ms();
    let v = |m: &str, p: &str| s.point_value(m, p, t).unwrap();
    // Running line: ~12 t/h of standard product (knit ~70 %, woven at 0.8 t standard each), ~1.2 MW
    // of electricity split 60/40, ~540 m3/h gas and the heating load.
    let standard = v("packer", "rate") + 0.8 * v("packer-woven", "rate");
    assert!((9.0..15.0).contains(&standard), "{standard}");
    assert!(v("packer", "rate") > v("packer-woven", "rate"));
    assert_eq!(v("packer", "running"), 1.0);
    let p_main = v("main-power", "total_power");
    let p_b = v("power-b", "total_power");
    assert!((p_main / p_b - 1.5).abs() < 1e-9, "{p_main} {p_b}");
    assert!((900_000.0..1_500_000.0).contains(&(p_main + p_b)));
    let gas = v("gas", "flow_std");
    assert!((400.0..1000.0).contains(&gas), "{gas}");
    // The 43i shows the CEMS's SO2 in ppb: mg/m3 x 22.4 / 64.06 x 1000.
    let so2 = v("stack", "so2");
    assert!((v("stack-so2", "so2") - so2 * 22.4 / 64.06 * 1000.0).abs() < 1e-6);
    // A counter only goes up between two instants an hour apart.
    assert!(s.point_value("water", "totalizer", t + 3_600_000).unwrap() > v("water", "totalizer"));
    sim.shutdown().await;
}

/// Read every point of every meter through `ctx` and compare with the model at `t_ms`.
/// Returns the number of points checked.
async fn check_all_meters(ctx: &mut Context, sim: &Simulation, t_ms: i64) -> usize {
    let mut checked = 0;
    for m in &sim.meters {
        ctx.set_slave(Slave(m.unit_id));
        for p in &m.template.points {
            let want = sim.point_value(&m.name, &p.name, t_ms).unwrap();
            let got = read_point(ctx, p)
                .await
                .unwrap_or_else(|e| panic!("{}.{}: {e}", m.name, p.name))
                .unwrap_or_else(|| panic!("{}.{}: not a valid value", m.name, p.name));
            assert!(
                close(p, got, want),
                "{}.{} ({} {} at {:#06x}): read {got}, model says {want}",
                m.name,
                p.name,
                m.template.name,
                p.data_type,
                p.address
            );
            checked += 1;
        }
    }
    checked
}
