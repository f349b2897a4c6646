//! Helpers shared by the simulator's tests: a frozen clock (the Modbus client helpers are in
//! `modbus_client`, the wait for a condition in `wait`, for the tests that use them).
#![allow(clippy::unwrap_used)]

use plantmeter_common::model::parse_ts_ms;
use plantmeter_common::Clock;

/// A clock that stands (practically) still at `t`: what the test computes is what the meter shows.
pub fn frozen(t: &str) -> Clock {
    Clock::virtual_from(parse_ts_ms(t).unwrap(), 1e-9)
}
