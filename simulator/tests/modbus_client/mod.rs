//! A real Modbus client reading the simulator's points, and the check of a value against the model.

use plantmeter_common::codec::{decode_point, decode_point_bit};
use plantmeter_common::plan::Point;
use plantmeter_common::types::{DataType, RegisterKind};
use tokio_modbus::client::Context;
use tokio_modbus::prelude::*;

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
