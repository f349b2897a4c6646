//! Test helpers: a broker in its own process (`plantmeter broker`), a TCP proxy that can cut the
//! agent off the broker, an MQTT subscriber that records everything, and the agent as a child process.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use tokio::net::{TcpListener, TcpStream};

pub const BIN: &str = env!("CARGO_BIN_EXE_plantmeter");
pub const PREFIX: &str = "plantmeter/plant-a/gw-01";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A broker as a child process, killed on drop: `plantmeter broker` (rumqttd) or mosquitto.
pub struct Broker {
    pub addr: SocketAddr,
    /// "rumqttd" or "mosquitto", for messages.
    pub kind: &'static str,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Broker {
    /// The embedded broker (`plantmeter broker`, rumqttd).
    pub fn start() -> Broker {
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        let child = Command::new(BIN)
            .args(["broker", "--listen", &addr.to_string(), "--ready-file"])
            .arg(&ready)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready.exists() {
            assert!(Instant::now() < deadline, "broker did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Broker {
            addr,
            kind: "rumqttd",
            child,
            _dir: dir,
        }
    }

    /// mosquitto on a free loopback port, or None, after printing a skip line, when `mosquitto`
    /// is not installed (`.ci/run` installs it). Queues are unbounded so that a subscriber that
    /// lags behind a backlog drain loses nothing (mosquitto's default drops past 1000 queued).
    pub fn mosquitto(test: &str) -> Option<Broker> {
        let Some(exe) = find_tool("mosquitto") else {
            eprintln!("skip: {test} against mosquitto: mosquitto is not installed on this machine");
            return None;
        };
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 max_queued_messages 0\nmax_inflight_messages 0\n"
            ),
        )
        .unwrap();
        let child = Command::new(exe)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not start on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Broker {
            addr,
            kind: "mosquitto",
            child,
            _dir: dir,
        })
    }
}

/// The path of `name` on PATH (also /usr/sbin, where Debian puts mosquitto).
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP proxy in front of the broker. `set_down(true)` cuts every connection and refuses new ones
/// (accepted and closed at once) until `set_down(false)`: a network outage as the agent sees it.
#[derive(Clone)]
pub struct Proxy {
    pub addr: SocketAddr,
    down: Arc<AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let down = Arc::new(AtomicBool::new(false));
        let (gen_tx, _) = tokio::sync::watch::channel(0u64);
        let generation = Arc::new(gen_tx);
        let p = Proxy {
            addr,
            down: down.clone(),
            generation: generation.clone(),
        };
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if down.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut cut = generation.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        p
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            self.generation.send_modify(|g| *g += 1);
        }
    }
}

/// Everything received on `PREFIX/#`: data payloads by arrival, and the last retained payload per topic.
#[derive(Default)]
pub struct Received {
    /// (seq, raw payload) in arrival order.
    pub data: Vec<(u64, Vec<u8>)>,
    pub last: BTreeMap<String, Vec<u8>>,
}

#[derive(Clone)]
pub struct Subscriber {
    pub got: Arc<Mutex<Received>>,
}

impl Subscriber {
    /// Connect to the broker directly, subscribe to everything under the prefix at QoS 1, and wait
    /// for the subscription to be acknowledged.
    pub async fn start(broker: SocketAddr) -> Subscriber {
        let mut o = MqttOptions::new(
            format!("test-sub-{}", free_port()),
            broker.ip().to_string(),
            broker.port(),
        );
        o.set_max_packet_size(1 << 20, 1 << 20);
        o.set_keep_alive(Duration::from_secs(30));
        let (client, mut ev) = AsyncClient::new(o, 100);
        let got = Arc::new(Mutex::new(Received::default()));
        let g = got.clone();
        let (subbed_tx, subbed_rx) = tokio::sync::oneshot::channel();
        let mut subbed_tx = Some(subbed_tx);
        client
            .subscribe(format!("{PREFIX}/#"), QoS::AtLeastOnce)
            .await
            .unwrap();
        tokio::spawn(async move {
            let _client = client;
            loop {
                match ev.poll().await {
                    Ok(Event::Incoming(Incoming::SubAck(_))) => {
                        if let Some(tx) = subbed_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        let mut g = g.lock().unwrap();
                        if p.topic.contains("/data/") {
                            let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
                            g.data
                                .push((v["seq"].as_u64().unwrap(), p.payload.to_vec()));
                        }
                        g.last.insert(p.topic.clone(), p.payload.to_vec());
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), subbed_rx)
            .await
            .unwrap()
            .unwrap();
        Subscriber { got }
    }

    pub fn data_len(&self) -> usize {
        self.got.lock().unwrap().data.len()
    }

    pub fn last(&self, topic_suffix: &str) -> Option<serde_json::Value> {
        let g = self.got.lock().unwrap();
        g.last
            .get(&format!("{PREFIX}/{topic_suffix}"))
            .and_then(|p| serde_json::from_slice(p).ok())
    }

    /// Distinct seqs among the data messages received.
    pub fn distinct_seqs(&self) -> usize {
        let g = self.got.lock().unwrap();
        g.data
            .iter()
            .map(|(seq, _)| *seq)
            .collect::<std::collections::BTreeSet<u64>>()
            .len()
    }

    /// Wait until `n` distinct seqs have arrived (after the agent's exit: everything it delivered).
    pub async fn wait_distinct(&self, n: u64, within: Duration) {
        wait_for(&format!("{n} distinct seqs"), within, || {
            self.distinct_seqs() as u64 >= n
        })
        .await;
    }

    /// Poll times (`ts`, ms) of the data messages of `meter`, in arrival order.
    pub fn poll_times(&self, meter: &str) -> Vec<i64> {
        let g = self.got.lock().unwrap();
        g.data
            .iter()
            .filter_map(|(_, p)| {
                let v: serde_json::Value = serde_json::from_slice(p).ok()?;
                (v["meter"] == meter)
                    .then(|| plantmeter_common::model::parse_ts_ms(v["ts"].as_str()?))
                    .flatten()
            })
            .collect()
    }
}

/// The median gap (ms) between consecutive poll times: the interval a meter is polled at, as its
/// readings are stamped, whatever the machine's speed.
pub fn median_gap(times: &[i64]) -> i64 {
    let mut gaps: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(!gaps.is_empty(), "fewer than two polls");
    gaps.sort_unstable();
    gaps[gaps.len() / 2]
}

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

/// The status file written by the agent with process id `pid` (not one a killed predecessor left).
pub fn status_of(data_dir: &Path, pid: u32) -> Option<serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data_dir.join("status.json")).ok()?).ok()?;
    (v["pid"].as_u64() == Some(u64::from(pid))).then_some(v)
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

/// Wait until `cond` holds, polling every 50 ms; panics with `what` after `within`.
pub async fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Check the delivery contract on what the subscriber saw (`plantmeter_common::delivery`): every
/// seq in `1..next_seq` arrived, duplicates are byte-identical, and seq goes backwards at most
/// `max_restarts` times (once per reconnect). Returns (distinct, duplicates).
pub fn check_delivery(got: &Received, next_seq: u64, max_restarts: usize) -> (usize, usize) {
    let mut check = plantmeter_common::delivery::DeliveryCheck::default();
    for (seq, payload) in &got.data {
        check.record(*seq, payload);
    }
    if let Err(e) = check.verify(next_seq, max_restarts as u64) {
        panic!("delivery contract: {e}");
    }
    (check.distinct as usize, check.duplicates as usize)
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
