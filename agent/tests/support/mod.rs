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
    check_delivery, free_port, median_gap, run_ok, skip, status_of, wait_until, Broker, BrokerKind,
    Collector, Gate, VClock, PREFIX,
};

pub const BIN: &str = env!("CARGO_BIN_EXE_plantmeter");

/// The agent as a child process.
pub struct Agent {
    pub child: Child,
}

impl Agent {
    pub fn start(config: &Path, clock_speed: f64) -> Agent {
        Agent::spawn(
            config,
            &["--clock-speed".into(), clock_speed.to_string()],
            Stdio::inherit(),
        )
    }

    /// Like [`Agent::start`], with the agent's log (stderr) written to `log`.
    pub fn start_logging_to(config: &Path, clock_speed: f64, log: &Path) -> Agent {
        let log = std::fs::File::create(log).unwrap();
        Agent::spawn(
            config,
            &["--clock-speed".into(), clock_speed.to_string()],
            log.into(),
        )
    }

    /// On a virtual clock shared with the simulator (`--clock-start`, `--clock-speed`, `--clock-anchor`).
    pub fn start_on(config: &Path, clock: &VClock) -> Agent {
        Agent::spawn(config, &clock.args(), Stdio::inherit())
    }

    fn spawn(config: &Path, clock_args: &[String], stderr: Stdio) -> Agent {
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .args(clock_args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(stderr)
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
    sim_on(plantmeter_common::Clock::wall()).await
}

/// The built-in simulated plant on `clock`.
pub async fn sim_on(clock: plantmeter_common::Clock) -> plantmeter_sim::SimHandle {
    plantmeter_sim::start(
        plantmeter_sim::Scenario::builtin(),
        plantmeter_sim::SimOptions {
            clock,
            ..plantmeter_sim::SimOptions::default()
        },
    )
    .await
    .unwrap()
}

/// The built-in plant with the outfall's aeration blowers (`blowers`, unit 17; 分表计电) on `clock`.
pub async fn sim_with_wwtp(clock: plantmeter_common::Clock) -> plantmeter_sim::SimHandle {
    plantmeter_sim::start(
        plantmeter_sim::Scenario::builtin_with_wwtp(),
        plantmeter_sim::SimOptions {
            clock,
            ..plantmeter_sim::SimOptions::default()
        },
    )
    .await
    .unwrap()
}

/// The built-in plant's boiler stack (`cems`, unit 8) and outfall (`wastewater`, unit 10), polled
/// every virtual minute, audited with SO2 (O2-converted at 9 %) and COD as pollutants.
/// `so2_lines` and `cod_lines` are added to their `[[audit.pollutant]]` tables (a `limit`), `tail`
/// after the whole (an `[hj212]` section).
pub fn stack_and_outfall_config(
    data_dir: &Path,
    sim: SocketAddr,
    broker: SocketAddr,
    so2_lines: &str,
    cod_lines: &str,
    tail: &str,
) -> String {
    format!(
        r#"[gateway]
id = "gw-01"
site = "plant-a"
data_dir = "{data}"

[mqtt]
url = "mqtt://{broker}"

[[bus]]
name = "sim"
transport = "tcp"
address = "{sim}"
timeout_ms = 2000

[[meter]]
name = "stack"
unit_id = 8
poll_interval_s = 60
template = "cems"

[[meter]]
name = "outfall"
unit_id = 10
poll_interval_s = 60
template = "wastewater"

[audit]
timezone = "+08:00"
baseline = ["2026-01-01", "2026-03-01"]
grid_co2_t_per_mwh = 0.5703
production = {{ point = "outfall.flow_total", unit = "m3" }}

  [[audit.pollutant]]
  name = "SO2"
  concentration = "stack.so2"
  flow = "stack.flow_rate"
  o2 = "stack.o2"
  o2_reference = 9.0
  {so2_lines}

  [[audit.pollutant]]
  name = "COD"
  concentration = "outfall.cod"
  flow = "outfall.flow_total"
  {cod_lines}
{tail}"#,
        data = data_dir.display(),
    )
}

/// Midnight at the start of `y-m-d` in the plants' +08:00 (the audit configs' timezone).
pub fn local_midnight(y: i32, m: u32, d: u32) -> chrono::DateTime<chrono::FixedOffset> {
    use chrono::TimeZone as _;
    let tz = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    let day = chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
    tz.from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap())
        .unwrap()
}
