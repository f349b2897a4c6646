//! Waiting for a condition with a deadline, never for a fixed time.

use std::time::{Duration, Instant};

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
