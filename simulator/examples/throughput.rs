//! How fast the simulator answers: Modbus TCP transactions per second on one connection.
//!
//! `cargo run --release -p plantmeter-sim --example throughput [-- SECONDS]`
//! Reads the SDM630's 76-register block (input 0x00..0x4C) back to back, one request in flight.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use plantmeter_sim::{start, Scenario, SimOptions};
use tokio_modbus::prelude::*;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secs: f64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(3.0);
    let sim = start(Scenario::builtin(), SimOptions::default()).await?;
    for (label, unit, input, start_reg, count) in [
        ("SDM630 76 input registers", 1u8, true, 0u16, 76u16),
        ("ADW300 2 holding registers", 2, false, 62, 2),
    ] {
        let mut ctx = tcp::connect_slave(sim.addr(), Slave(unit)).await?;
        let t0 = Instant::now();
        let mut n = 0u64;
        while t0.elapsed() < Duration::from_secs_f64(secs) {
            let r = if input {
                ctx.read_input_registers(start_reg, count).await?
            } else {
                ctx.read_holding_registers(start_reg, count).await?
            };
            r.map_err(|e| format!("exception {e:?}"))?;
            n += 1;
        }
        let el = t0.elapsed().as_secs_f64();
        println!(
            "{label}: {n} transactions in {el:.2} s = {:.0} transactions/s on one connection ({:.1} us each)",
            n as f64 / el,
            el * 1e6 / n as f64
        );
    }
    sim.shutdown().await;
    Ok(())
}
