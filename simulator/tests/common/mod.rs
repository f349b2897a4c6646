//! Helpers shared by the simulator's tests: a frozen clock, a real Modbus client, value checks.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use plantmeter_common::codec::{decode_point, decode_point_bit};
use plantmeter_common::model::parse_ts_ms;
use plantmeter_common::plan::Point;
use plantmeter_common::types::{DataType, RegisterKind};
use plantmeter_common::Clock;
use plantmeter_sim::Simulation;
use tokio_modbus::client::Context;
use tokio_modbus::prelude::*;

/// A clock that stands (practically) still at `t`: what the test computes is what the meter shows.
pub fn frozen(t: &str) -> Clock {
    Clock::virtual_from(parse_ts_ms(t).unwrap(), 1e-9)
}

/// Read one point with a real Modbus client; None on an exception.
pub async fn read_point(ctx: &mut Context, p: &Point) -> Result<Option<f64>, String> {
    let n = p.data_type.words();
    match p.register {
        RegisterKind::Holding | RegisterKind::Input => {
            let r = if p.register == RegisterKind::Holding {
                ctx.read_holding_registers(p.address, n).await
            } else {
                ctx.read_input_registers(p.address, n).await
            };
            match r {
                Ok(Ok(words)) => Ok(decode_point(p, &words).0),
                Ok(Err(code)) => Err(format!("exception {code:?}")),
                Err(e) => Err(e.to_string()),
            }
        }
        RegisterKind::Discrete | RegisterKind::Coil => {
            let r = if p.register == RegisterKind::Discrete {
                ctx.read_discrete_inputs(p.address, 1).await
            } else {
                ctx.read_coils(p.address, 1).await
            };
            match r {
                Ok(Ok(bits)) => Ok(decode_point_bit(p, bits[0]).0),
                Ok(Err(code)) => Err(format!("exception {code:?}")),
                Err(e) => Err(e.to_string()),
            }
        }
    }
}

/// True when `got` is what the meter should show for `want`, within the point's resolution.
pub fn close(p: &Point, got: f64, want: f64) -> bool {
    match p.data_type {
        DataType::F32 => (got - want).abs() <= want.abs() * 1e-6 + 1e-6,
        DataType::F64 => (got - want).abs() <= want.abs() * 1e-12 + 1e-12,
        DataType::Bool => (got != 0.0) == (want != 0.0),
        _ => (got - want).abs() <= p.scale.abs() / 2.0 + 1e-9,
    }
}

/// Read every point of every meter through `ctx` and compare with the model at `t_ms`.
/// Returns the number of points checked.
pub async fn check_all_meters(ctx: &mut Context, sim: &Simulation, t_ms: i64) -> usize {
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
