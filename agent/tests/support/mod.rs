//! The agent crate's end-to-end helpers on the shared harness (`plantmeter-tests`: brokers, the gate
//! that cuts the agent off the broker, the collector, waits with deadlines, the delivery check): here
//! only what is the agent's own, the agent as a child process on the in-process simulator, its
//! config and its `/metrics`.
// Each test binary uses a part of this module and of the re-exports.
#![allow(dead_code, unused_imports, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use plantmeter_tests::{
    check_delivery, free_port, median_gap, status_of, wait_until, Broker, BrokerKind, Collector,
    Gate, PREFIX,
};

pub const BIN: &str = env!("CARGO_BIN_EXE_plantmeter");

/// The agent as a child process.
pub struct Agent {
    pub child: Child,
}

impl Agent {
    pub fn start(config: &Path, clock_speed: f64) -> Agent {
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .args(["--clock-speed", &clock_speed.to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Agent { child }
    }

    /// Like [`Agent::start`], with the agent's log (stderr) written to `log`.
    pub fn start_logging_to(config: &Path, clock_speed: f64, log: &Path) -> Agent {
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .args(["--clock-speed", &clock_speed.to_string()])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        Agent { child }
    }

    /// Send SIGHUP (reload the config).
    pub fn sighup(&self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success());
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn sigkill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then the exit status within `within`.
    pub fn sigterm(mut self, within: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "agent did not exit within {within:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The agent's status file (written every 2 s and at shutdown).
pub fn status_file(data_dir: &Path) -> serde_json::Value {
    let p = data_dir.join("status.json");
    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
}

/// A config for the simulator's plant: every meter polled every `interval_s` (virtual), TCP to
/// the simulator, MQTT to `mqtt`, store in `data_dir`.
pub fn config(
    sim: &plantmeter_sim::SimHandle,
    mqtt: SocketAddr,
    data_dir: &Path,
    interval_s: f64,
    timeout_ms: u64,
) -> String {
    let mut o = plantmeter_sim::AgentConfigOptions::tcp(sim.addr().to_string());
    o.mqtt_url = format!("mqtt://{mqtt}");
    o.data_dir = data_dir.display().to_string();
    o.poll_interval_s = Some(interval_s);
    o.timeout_ms = timeout_ms;
    sim.agent_config_with(&o)
}

pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("agent.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// `GET /metrics` from the agent's endpoint: the body, or None when it does not answer.
pub fn scrape(addr: SocketAddr) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, body)| body.to_string())
}

/// The value of the sample `name` (the whole series name with labels, e.g.
/// `plantmeter_meter_up{meter="x"}`) in a scrape.
pub fn metric(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// The built-in simulated plant on wall time.
pub async fn sim() -> plantmeter_sim::SimHandle {
    plantmeter_sim::start(
        plantmeter_sim::Scenario::builtin(),
        plantmeter_sim::SimOptions {
            clock: plantmeter_common::Clock::wall(),
            ..plantmeter_sim::SimOptions::default()
        },
    )
    .await
    .unwrap()
}
