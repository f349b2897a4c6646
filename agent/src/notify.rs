//! systemd service notification (`sd_notify`) without a crate, and a watchdog fed only by healthy loops.
//!
//! Under systemd with `Type=notify`, systemd sets `$NOTIFY_SOCKET` (a path, or an abstract socket name
//! starting with `@`) and, with `WatchdogSec=`, `$WATCHDOG_USEC` (and `$WATCHDOG_PID`). Outside systemd
//! every function here is a no-op, so `plantmeter run` behaves the same in a terminal or a container.
//!
//! How `run` uses it (for the agent-core engineer):
//! ```ignore
//! let watchdog = notify::Watchdog::from_env();
//! let poll_beat = watchdog.register("poller:line-1", Duration::from_secs(60)); // one per loop
//! let pub_beat = watchdog.register("publisher", Duration::from_secs(60));
//! tokio::spawn(watchdog.clone().run(shutdown_signal()));  // pings WATCHDOG=1 only while all loops beat
//! notify::ready();                                        // after the store is open and loops started
//! // in each loop iteration that completed (a failing meter still counts: the loop itself is alive):
//! poll_beat.beat();
//! // on SIGTERM:
//! notify::stopping();
//! ```
//! A loop that hangs (a stuck await, a deadlocked store) stops beating; after its `max_silence` the
//! watchdog stops pinging and systemd restarts the service after `WatchdogSec`. Buffered data is
//! durable in the store, so such a restart loses nothing.
// Items are wired into `run` by the agent-core issue; until then only the tests use some of them.
#![allow(dead_code)]

use std::future::Future;
use std::io;
use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where to send notifications: `$NOTIFY_SOCKET`, or nowhere.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    /// The socket as systemd gave it: a filesystem path, or `@name` for an abstract socket.
    socket: Option<String>,
}

impl Notifier {
    /// A notifier for this socket (`None`: every call is a no-op).
    pub fn new(socket: Option<String>) -> Notifier {
        Notifier {
            socket: socket.filter(|s| !s.is_empty()),
        }
    }

    /// The notifier systemd set up for this process (`$NOTIFY_SOCKET`), or a no-op one.
    pub fn from_env() -> Notifier {
        Notifier::new(std::env::var("NOTIFY_SOCKET").ok())
    }

    /// True when there is a socket to notify.
    pub fn is_enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// Send one notification datagram (`KEY=value` lines). Ok(false) when not under systemd.
    pub fn send(&self, message: &str) -> io::Result<bool> {
        let Some(socket) = &self.socket else {
            return Ok(false);
        };
        let sock = UnixDatagram::unbound()?;
        if let Some(name) = socket.strip_prefix('@') {
            send_abstract(&sock, name, message.as_bytes())?;
        } else {
            sock.send_to(message.as_bytes(), socket)?;
        }
        Ok(true)
    }

    /// `READY=1`: startup finished (store open, loops running).
    pub fn ready(&self) -> io::Result<bool> {
        self.send("READY=1")
    }

    /// `STOPPING=1`: shutdown began (flushing the buffer).
    pub fn stopping(&self) -> io::Result<bool> {
        self.send("STOPPING=1")
    }

    /// `RELOADING=1`: a SIGHUP reload began; follow it with `ready()` when done.
    pub fn reloading(&self) -> io::Result<bool> {
        self.send("RELOADING=1")
    }

    /// `STATUS=...`: one line shown by `systemctl status`. Newlines are replaced by spaces.
    pub fn status(&self, text: &str) -> io::Result<bool> {
        self.send(&format!("STATUS={}", text.replace(['\n', '\r'], " ")))
    }

    /// `WATCHDOG=1`: keep-alive ping.
    pub fn watchdog(&self) -> io::Result<bool> {
        self.send("WATCHDOG=1")
    }
}

#[cfg(target_os = "linux")]
fn send_abstract(sock: &UnixDatagram, name: &str, msg: &[u8]) -> io::Result<usize> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    sock.send_to_addr(msg, &addr)
}

#[cfg(not(target_os = "linux"))]
fn send_abstract(_sock: &UnixDatagram, name: &str, _msg: &[u8]) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!("abstract socket @{name} is only supported on Linux"),
    ))
}

/// Log a failed notification once per call site; notifications never stop the agent.
fn log_err(what: &str, r: io::Result<bool>) {
    if let Err(e) = r {
        tracing::warn!("sd_notify {what} to $NOTIFY_SOCKET failed: {e}");
    }
}

/// Tell systemd startup is complete (`READY=1`); no-op outside systemd.
pub fn ready() {
    log_err("READY", Notifier::from_env().ready());
}

/// Tell systemd shutdown began (`STOPPING=1`); no-op outside systemd.
pub fn stopping() {
    log_err("STOPPING", Notifier::from_env().stopping());
}

/// Tell systemd a reload began (`RELOADING=1`); call `ready()` when it is done.
pub fn reloading() {
    log_err("RELOADING", Notifier::from_env().reloading());
}

/// Set the one-line status shown by `systemctl status`; no-op outside systemd.
pub fn status(text: &str) {
    log_err("STATUS", Notifier::from_env().status(text));
}

/// Send one watchdog ping (`WATCHDOG=1`) unconditionally. Prefer [`Watchdog`], which pings only
/// while every loop is healthy.
pub fn watchdog() {
    log_err("WATCHDOG", Notifier::from_env().watchdog());
}

/// The watchdog timeout systemd expects pings within (`$WATCHDOG_USEC`), if it is meant for this
/// process (`$WATCHDOG_PID` absent or equal to our pid).
pub fn watchdog_interval() -> Option<Duration> {
    parse_watchdog(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

/// `$WATCHDOG_USEC` / `$WATCHDOG_PID` as systemd sets them; None when absent, zero, malformed, or for
/// another process.
fn parse_watchdog(usec: Option<&str>, pid: Option<&str>, my_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(my_pid) {
            return None;
        }
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

#[derive(Debug)]
struct LoopState {
    name: String,
    last_beat: Instant,
    max_silence: Duration,
}

#[derive(Debug)]
struct Inner {
    notifier: Notifier,
    /// The systemd watchdog timeout; None: no watchdog configured, `run` only waits for shutdown.
    timeout: Option<Duration>,
    loops: Mutex<Vec<LoopState>>,
}

/// A liveness registry: each loop registers and beats; the watchdog pings systemd only while every
/// registered loop beat within its own `max_silence`. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Watchdog {
    inner: Arc<Inner>,
}

/// One loop's check-in handle, from [`Watchdog::register`].
#[derive(Debug, Clone)]
pub struct Beat {
    inner: Arc<Inner>,
    index: usize,
}

impl Beat {
    /// The loop completed an iteration and is alive. Call it also when the device failed: the loop is
    /// healthy, the meter is not (that is reported on `P/health`, not by restarting the agent).
    pub fn beat(&self) {
        if let Ok(mut loops) = self.inner.loops.lock() {
            if let Some(l) = loops.get_mut(self.index) {
                l.last_beat = Instant::now();
            }
        }
    }
}

impl Watchdog {
    /// A watchdog for this notifier and systemd timeout (`None`: pings are never sent).
    pub fn new(notifier: Notifier, timeout: Option<Duration>) -> Watchdog {
        Watchdog {
            inner: Arc::new(Inner {
                notifier,
                timeout,
                loops: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The watchdog systemd configured for this process, or an inert one.
    pub fn from_env() -> Watchdog {
        Watchdog::new(Notifier::from_env(), watchdog_interval())
    }

    /// True when systemd expects pings.
    pub fn is_enabled(&self) -> bool {
        self.inner.timeout.is_some() && self.inner.notifier.is_enabled()
    }

    /// Register a loop that must beat at least every `max_silence` (choose it above the loop's
    /// longest normal iteration, e.g. poll interval + timeouts x retries). Counts as beating now.
    pub fn register(&self, name: &str, max_silence: Duration) -> Beat {
        let mut loops = match self.inner.loops.lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        loops.push(LoopState {
            name: name.to_string(),
            last_beat: Instant::now(),
            max_silence,
        });
        Beat {
            inner: Arc::clone(&self.inner),
            index: loops.len() - 1,
        }
    }

    /// Names of the loops that have not beaten within their `max_silence` (empty: all healthy).
    pub fn stale_loops(&self) -> Vec<String> {
        let now = Instant::now();
        match self.inner.loops.lock() {
            Ok(loops) => loops
                .iter()
                .filter(|l| now.duration_since(l.last_beat) > l.max_silence)
                .map(|l| l.name.clone())
                .collect(),
            // A loop panicked while holding the lock: not healthy.
            Err(_) => vec!["watchdog registry (poisoned)".to_string()],
        }
    }

    /// Ping systemd if every loop is healthy. Returns true when a ping was sent.
    pub fn tick(&self) -> bool {
        let stale = self.stale_loops();
        if !stale.is_empty() {
            tracing::warn!(
                "watchdog: not pinging systemd, loops stalled: {}",
                stale.join(", ")
            );
            return false;
        }
        match self.inner.notifier.watchdog() {
            Ok(sent) => sent,
            Err(e) => {
                tracing::warn!("sd_notify WATCHDOG to $NOTIFY_SOCKET failed: {e}");
                false
            }
        }
    }

    /// How often `run` ticks: half the systemd timeout, as sd_watchdog_enabled(3) recommends.
    pub fn tick_period(&self) -> Option<Duration> {
        self.inner
            .timeout
            .map(|t| (t / 2).max(Duration::from_millis(10)))
    }

    /// Tick every half timeout until `shutdown` completes. Returns at once-ready (only awaiting
    /// `shutdown`) when no watchdog is configured.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Some(period) = self.tick_period().filter(|_| self.is_enabled()) else {
            shutdown.await;
            return;
        };
        tokio::pin!(shutdown);
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = interval.tick() => { self.tick(); }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiver() -> (tempfile::TempDir, UnixDatagram, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        (dir, sock, path.to_string_lossy().into_owned())
    }

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    fn nothing_pending(sock: &UnixDatagram) -> bool {
        sock.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 512];
        let r = sock.recv(&mut buf);
        sock.set_nonblocking(false).unwrap();
        matches!(r, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    #[test]
    fn sends_ready_status_stopping_watchdog_to_path_socket() {
        let (_dir, sock, path) = receiver();
        let n = Notifier::new(Some(path));
        assert!(n.ready().unwrap());
        assert_eq!(recv(&sock), "READY=1");
        assert!(n.status("polling 3 meters\nbacklog 0").unwrap());
        assert_eq!(recv(&sock), "STATUS=polling 3 meters backlog 0");
        assert!(n.watchdog().unwrap());
        assert_eq!(recv(&sock), "WATCHDOG=1");
        assert!(n.reloading().unwrap());
        assert_eq!(recv(&sock), "RELOADING=1");
        assert!(n.stopping().unwrap());
        assert_eq!(recv(&sock), "STOPPING=1");
    }

    #[test]
    fn sends_to_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!(
            "plantmeter-test-{}-{:?}",
            std::process::id(),
            Instant::now()
        );
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = UnixDatagram::bind_addr(&addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let n = Notifier::new(Some(format!("@{name}")));
        assert!(n.ready().unwrap());
        assert_eq!(recv(&sock), "READY=1");
    }

    #[test]
    fn no_socket_is_a_silent_no_op() {
        let n = Notifier::new(None);
        assert!(!n.is_enabled());
        assert!(!n.ready().unwrap());
        assert!(!Notifier::new(Some(String::new())).is_enabled());
    }

    #[test]
    fn missing_socket_is_an_error_not_a_panic() {
        let n = Notifier::new(Some("/nonexistent/plantmeter/notify.sock".into()));
        assert!(n.ready().is_err());
    }

    #[test]
    fn watchdog_env_parsing() {
        assert_eq!(
            parse_watchdog(Some("30000000"), None, 7),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_watchdog(Some("30000000"), Some("7"), 7),
            Some(Duration::from_secs(30))
        );
        assert_eq!(parse_watchdog(Some("30000000"), Some("8"), 7), None);
        assert_eq!(parse_watchdog(Some("0"), None, 7), None);
        assert_eq!(parse_watchdog(Some("soon"), None, 7), None);
        assert_eq!(parse_watchdog(None, Some("7"), 7), None);
    }

    #[test]
    fn watchdog_pings_only_while_every_loop_beats() {
        let (_dir, sock, path) = receiver();
        let wd = Watchdog::new(Notifier::new(Some(path)), Some(Duration::from_secs(30)));
        assert!(wd.is_enabled());
        assert_eq!(wd.tick_period(), Some(Duration::from_secs(15)));
        let poller = wd.register("poller:line-1", Duration::from_millis(50));
        let publisher = wd.register("publisher", Duration::from_secs(60));

        assert!(wd.tick(), "all loops fresh: ping");
        assert_eq!(recv(&sock), "WATCHDOG=1");

        std::thread::sleep(Duration::from_millis(80));
        publisher.beat();
        assert_eq!(wd.stale_loops(), vec!["poller:line-1".to_string()]);
        assert!(!wd.tick(), "stalled poller: no ping");
        assert!(nothing_pending(&sock));

        poller.beat();
        assert!(wd.tick(), "poller recovered: ping again");
        assert_eq!(recv(&sock), "WATCHDOG=1");
    }

    #[test]
    fn watchdog_without_systemd_never_pings() {
        let wd = Watchdog::new(Notifier::new(None), None);
        let b = wd.register("poller", Duration::from_secs(1));
        b.beat();
        assert!(!wd.is_enabled());
        assert!(!wd.tick());
    }

    #[tokio::test]
    async fn run_ticks_until_shutdown() {
        let (_dir, sock, path) = receiver();
        let wd = Watchdog::new(Notifier::new(Some(path)), Some(Duration::from_millis(40)));
        let _b = wd.register("poller", Duration::from_secs(10));
        let task = tokio::spawn(wd.run(tokio::time::sleep(Duration::from_millis(100))));
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        // Ticks every 20 ms over 100 ms: the first at once, then several more.
        let mut pings = 0;
        sock.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        while let Ok(n) = sock.recv(&mut buf) {
            assert_eq!(&buf[..n], b"WATCHDOG=1");
            pings += 1;
        }
        assert!(pings >= 3, "expected several pings, got {pings}");
    }
}
