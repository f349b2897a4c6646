//! Helpers shared by the simulator's tests: a frozen clock and a wait for a condition (the Modbus
//! client helpers are in `modbus_client`, for the tests that read the meters over the wire).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use plantmeter_common::model::parse_ts_ms;
use plantmeter_common::Clock;

/// Wait until `cond` holds, looking every 10 ms; panics naming `what` after `within`.
pub fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out ({within:?}) waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A clock that stands (practically) still at `t`: what the test computes is what the meter shows.
pub fn frozen(t: &str) -> Clock {
    Clock::virtual_from(parse_ts_ms(t).unwrap(), 1e-9)
}
