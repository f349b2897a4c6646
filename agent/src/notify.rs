//! systemd service notifications through the `sd-notify` crate, and the watchdog ping.
//!
//! Under systemd with `Type=notify`, systemd sets `$NOTIFY_SOCKET` and, with `WatchdogSec=`,
//! `$WATCHDOG_USEC` (and `$WATCHDOG_PID`). Outside systemd every function here is a no-op, so
//! `plantmeter run` behaves the same in a terminal or a container.
//!
//! There is one watchdog mechanism: `run`'s status task judges progress ([`crate::state::Progress`]:
//! every meter's poll count and the store's next seq must move within a stall window) and calls
//! [`Watchdog::feed`] only while everything moves, at least every half `WatchdogSec`
//! ([`Watchdog::check_every`]). A hung poller or store writer, or a hung status task, stops the
//! pings, and systemd restarts the service after `WatchdogSec`. Buffered data is durable in the
//! store, so such a restart loses nothing.

use std::time::Duration;

use sd_notify::NotifyState;

/// Send `state`; a failure is logged, never fatal (notifications never stop the agent).
fn send(what: &str, state: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!("sd_notify {what} to $NOTIFY_SOCKET failed: {e}");
    }
}

/// Tell systemd startup is complete (`READY=1`); no-op outside systemd.
pub fn ready() {
    send("READY", &[NotifyState::Ready]);
}

/// Tell systemd shutdown began (`STOPPING=1`); no-op outside systemd.
pub fn stopping() {
    send("STOPPING", &[NotifyState::Stopping]);
}

/// Tell systemd a reload began (`RELOADING=1`, with the `MONOTONIC_USEC` that `Type=notify-reload`
/// asks for); call [`ready`] when it is done.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send("RELOADING", &[NotifyState::Reloading, now]),
        Err(_) => send("RELOADING", &[NotifyState::Reloading]),
    }
}

/// The systemd watchdog of this process: whether pings are expected, and how often.
#[derive(Debug, Clone, Copy)]
pub struct Watchdog {
    /// `$WATCHDOG_USEC` when it is meant for this process and there is a socket to ping.
    timeout: Option<Duration>,
}

impl Watchdog {
    /// The watchdog systemd configured for this process (`$WATCHDOG_USEC`, `$WATCHDOG_PID`), or an
    /// inert one.
    pub fn from_env() -> Watchdog {
        let socket = std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty());
        Watchdog::new(socket, sd_notify::watchdog_enabled())
    }

    fn new(socket: bool, timeout: Option<Duration>) -> Watchdog {
        Watchdog {
            timeout: timeout.filter(|t| socket && !t.is_zero()),
        }
    }

    /// How often progress must be checked and the watchdog fed: `normal`, or half the systemd
    /// timeout when that is shorter, as sd_watchdog_enabled(3) recommends.
    pub fn check_every(&self, normal: Duration) -> Duration {
        match self.timeout {
            Some(t) => normal.min((t / 2).max(Duration::from_millis(10))),
            None => normal,
        }
    }

    /// Everything makes progress: ping systemd (`WATCHDOG=1`); no-op without a watchdog.
    pub fn feed(&self) {
        if self.timeout.is_some() {
            send("WATCHDOG", &[NotifyState::Watchdog]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_socket_or_a_timeout_the_watchdog_is_inert() {
        let s30 = Duration::from_secs(30);
        let normal = Duration::from_secs(2);
        assert_eq!(Watchdog::new(false, Some(s30)).timeout, None);
        assert_eq!(Watchdog::new(true, None).timeout, None);
        assert_eq!(Watchdog::new(true, Some(Duration::ZERO)).timeout, None);
        assert_eq!(Watchdog::new(false, Some(s30)).check_every(normal), normal);
    }

    #[test]
    fn progress_is_checked_at_least_every_half_timeout() {
        let normal = Duration::from_secs(2);
        let wd = |t| Watchdog::new(true, Some(t));
        assert_eq!(wd(Duration::from_secs(30)).check_every(normal), normal);
        assert_eq!(
            wd(Duration::from_secs(2)).check_every(normal),
            Duration::from_secs(1)
        );
        assert_eq!(
            wd(Duration::from_millis(4)).check_every(normal),
            Duration::from_millis(10)
        );
    }
}
