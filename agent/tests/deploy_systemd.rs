//! What the systemd unit relies on, checked against the real binary without systemd:
//! `Type=notify` (READY=1 after start, STOPPING=1 on SIGTERM), `WatchdogSec=` (WATCHDOG=1 pings at
//! half the interval), and the opt-in `/metrics` endpoint of a running agent. No broker is needed:
//! the agent buffers while the broker is unreachable.
#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the assertion

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use plantmeter_sim::{AgentConfigOptions, Scenario, SimHandle, SimOptions};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Agent {
    child: Child,
    log: std::path::PathBuf,
}

impl Agent {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    fn term(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }
    fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The simulator's agent config with a broker nobody listens on, plus `extra` appended.
fn config(sim: &SimHandle, dir: &Path, extra: &str) -> std::path::PathBuf {
    let mut o = AgentConfigOptions::tcp(sim.addr().to_string());
    o.mqtt_url = format!("mqtt://127.0.0.1:{}", free_port());
    o.data_dir = dir.join("data").to_string_lossy().into_owned();
    o.poll_interval_s = Some(0.2);
    let text = format!("{}\n{extra}", sim.agent_config_with(&o));
    let path = dir.join("plantmeter.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn spawn(cfg: &Path, dir: &Path, envs: &[(&str, String)]) -> Agent {
    let log = dir.join("agent.log");
    let f = std::fs::File::create(&log).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_plantmeter"));
    cmd.args(["run", "--config"])
        .arg(cfg)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    Agent {
        child: cmd.spawn().unwrap(),
        log,
    }
}

fn recv_until(sock: &UnixDatagram, want: &str, within: Duration, seen: &mut Vec<String>) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let hit = msg.lines().any(|l| l == want);
            seen.push(msg);
            if hit {
                return true;
            }
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_ready_watchdog_and_stopping() {
    let sim = plantmeter_sim::start(Scenario::builtin(), SimOptions::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sock_path = d.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let cfg = config(&sim, d, "");
    let mut agent = spawn(
        &cfg,
        d,
        &[
            ("NOTIFY_SOCKET", sock_path.to_string_lossy().into_owned()),
            // 2 s watchdog: pings expected about every second.
            ("WATCHDOG_USEC", "2000000".into()),
        ],
    );
    let mut seen = Vec::new();
    assert!(
        recv_until(&sock, "READY=1", Duration::from_secs(20), &mut seen),
        "no READY=1: {seen:?}\n{}",
        agent.log()
    );
    let mut pings = 0;
    let started = Instant::now();
    while pings < 2 && started.elapsed() < Duration::from_secs(6) {
        if recv_until(&sock, "WATCHDOG=1", Duration::from_secs(3), &mut seen) {
            pings += 1;
        }
    }
    assert!(
        pings >= 2,
        "expected WATCHDOG=1 about every second: {seen:?}\n{}",
        agent.log()
    );
    agent.term();
    assert!(
        recv_until(&sock, "STOPPING=1", Duration::from_secs(10), &mut seen),
        "no STOPPING=1 after SIGTERM: {seen:?}\n{}",
        agent.log()
    );
    let code = agent.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(0), "exit after SIGTERM\n{}", agent.log());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_notifications_without_systemd() {
    // Without $NOTIFY_SOCKET the agent runs normally (a terminal, a container).
    let sim = plantmeter_sim::start(Scenario::builtin(), SimOptions::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&sim, dir.path(), "");
    let mut agent = spawn(&cfg, dir.path(), &[]);
    // Running normally: polling, as its status file shows.
    let status = dir.path().join("data").join("status.json");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            agent.child.try_wait().unwrap().is_none(),
            "agent exited:\n{}",
            agent.log()
        );
        let polled = std::fs::read(&status)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| {
                v["meters"]
                    .as_array()
                    .map(|m| m.iter().any(|m| m["polls"].as_u64() > Some(0)))
            })
            .unwrap_or(false);
        if polled {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no poll within 20 s:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    agent.term();
    assert_eq!(
        agent.wait_exit(Duration::from_secs(30)),
        Some(0),
        "{}",
        agent.log()
    );
    assert!(!agent.log().contains("sd_notify"), "{}", agent.log());
    sim.shutdown().await;
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// The value of an unlabelled or labelled sample line, e.g. `plantmeter_meter_polls_total{meter="x"}`.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_of_a_running_agent() {
    let sim = plantmeter_sim::start(Scenario::builtin(), SimOptions::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config(
        &sim,
        dir.path(),
        &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let meter = sim.sim().meters[0].name.clone();
    let mut agent = spawn(&cfg, dir.path(), &[]);
    let series = format!("plantmeter_meter_polls_total{{meter=\"{meter}\"}}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut body = String::new();
    let mut polls = 0.0;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            body = http_get(port, "/metrics");
            polls = sample(&body, &series).unwrap_or(0.0);
            if polls >= 3.0 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        polls >= 3.0,
        "{series} should count polls:\n{body}\n{}",
        agent.log()
    );
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    // No broker: readings accumulate in the store.
    assert!(
        sample(&body, "plantmeter_store_backlog_records").unwrap_or(0.0) > 0.0,
        "{body}"
    );
    assert_eq!(
        sample(&body, "plantmeter_mqtt_connected"),
        Some(0.0),
        "{body}"
    );
    assert!(http_get(port, "/").starts_with("HTTP/1.1 404"));
    agent.term();
    assert_eq!(
        agent.wait_exit(Duration::from_secs(30)),
        Some(0),
        "{}",
        agent.log()
    );
    sim.shutdown().await;
}
