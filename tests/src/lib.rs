//! Helpers for the end-to-end tests: the simulator (`plantmeter-sim`), a broker (`plantmeter broker` or
//! mosquitto) and the agent (`plantmeter run`) as separate processes, killed when dropped; free ports,
//! scenario files with faults, an MQTT collector, a gate that cuts the agent off the broker, the
//! delivery check, and waits for conditions with deadlines. The agent crate's end-to-end tests
//! (`agent/tests`) use the same helpers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};

pub use plantmeter_common::model::{format_ts_ms, parse_ts_ms};

/// The built-in plant as a scenario file, to which tests add faults.
pub const BUILTIN_SCENARIO: &str = include_str!("../../simulator/scenarios/builtin.toml");

/// A binary of the workspace, next to the test executable (`target/<profile>/NAME`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>-<hash>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile> directory");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} not found: build the workspace binaries first (`cargo test --workspace` or `cargo build --workspace`)",
        p.display()
    );
    p
}

/// A test (or part of one) that cannot run on this machine: a tool is missing (mosquitto, PostgreSQL,
/// Chromium, openssl, libfaketime) or a right (mounting a tmpfs). `cargo test` hides the stderr of a
/// passing test, so a skip would otherwise read "ok": the note also goes to the list that `tests/run.sh`
/// (the README's test command) prints at the end, `$PLANTMETER_SKIPPED` or `target/<profile>/skipped-tests.txt`.
/// Under CI (`CI` set and not "false") it panics: `.ci/run` installs every tool, so a skip there is a
/// broken set-up, not a pass.
pub fn skip(test: &str, reason: &str) {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|e| e.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|s| {
            s.rsplit_once('-')
                .map_or(s.clone(), |(name, _hash)| name.to_owned())
        })
        .unwrap_or_default();
    let line = format!("{binary}: {test}: {reason}");
    if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0") {
        panic!("cannot run under CI: {line}");
    }
    eprintln!("skip: {line}");
    let list = std::env::var_os("PLANTMETER_SKIPPED")
        .map(PathBuf::from)
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            // target/<profile>/deps/<test>-<hash>
            Some(exe.parent()?.parent()?.join("skipped-tests.txt"))
        });
    if let Some(list) = list {
        use std::io::Write as _;
        // One write of one line with O_APPEND: parallel tests do not interleave their lines.
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(list)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
    }
}

/// The name of the running test: libtest names each test's thread after it.
pub fn this_test() -> String {
    std::thread::current().name().unwrap_or("a test").to_owned()
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Milliseconds since the Unix epoch, wall clock.
pub fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Runs `cmd` to its end; panics with its stderr unless it exited 0.
pub fn run_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A child process, killed (SIGKILL) and reaped when dropped.
pub struct Proc {
    pub child: Child,
    pub what: String,
}

impl Proc {
    pub fn spawn(what: &str, cmd: &mut Command) -> Proc {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Proc {
            child,
            what: what.to_string(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and wait.
    pub fn sigkill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then its exit status; panics if it has not exited within `within`.
    pub fn sigterm(mut self, within: Duration) -> ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {within:?} of SIGTERM",
                self.what
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Panics if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(s) = self.child.try_wait().unwrap() {
            panic!("{} exited unexpectedly: {s}", self.what);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which broker a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// `plantmeter broker` (rumqttd).
    Rumqttd,
    /// `mosquitto -p PORT`, when installed.
    Mosquitto,
}

impl std::fmt::Display for BrokerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BrokerKind::Rumqttd => "rumqttd",
            BrokerKind::Mosquitto => "mosquitto",
        })
    }
}

fn mosquitto_installed() -> bool {
    Command::new("which")
        .arg("mosquitto")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The brokers to test against: rumqttd always, mosquitto when `which mosquitto` finds it (a [`skip`]
/// otherwise).
pub fn brokers() -> Vec<BrokerKind> {
    let mut v = vec![BrokerKind::Rumqttd];
    if mosquitto_installed() {
        v.push(BrokerKind::Mosquitto);
    } else {
        skip(
            &this_test(),
            "its run against mosquitto: mosquitto is not installed (.ci/run installs it)",
        );
    }
    v
}

/// A broker process on a fixed loopback port, restartable on the same port.
pub struct Broker {
    pub kind: BrokerKind,
    pub addr: SocketAddr,
    proc: Option<Proc>,
    dir: tempfile::TempDir,
}

impl Broker {
    /// mosquitto, or None after a [`skip`] when it is not installed (`.ci/run` installs it).
    pub fn mosquitto(test: &str) -> Option<Broker> {
        if mosquitto_installed() {
            Some(Broker::start(BrokerKind::Mosquitto))
        } else {
            skip(
                test,
                "its run against mosquitto: mosquitto is not installed (.ci/run installs it)",
            );
            None
        }
    }

    pub fn start(kind: BrokerKind) -> Broker {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut b = Broker {
            kind,
            addr,
            proc: None,
            dir: tempfile::tempdir().unwrap(),
        };
        b.restart();
        b
    }

    /// The `mqtt://` URL of this broker.
    pub fn url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }

    /// Kill the broker (SIGKILL: sessions and retained messages are lost with it).
    pub fn kill(&mut self) {
        if let Some(p) = self.proc.take() {
            p.sigkill();
        }
    }

    /// Start (again) on the same port; returns once it accepts connections.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut p = match self.kind {
                BrokerKind::Rumqttd => Proc::spawn(
                    "plantmeter broker",
                    Command::new(bin("plantmeter"))
                        .args(["broker", "--listen", &self.addr.to_string()])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null()),
                ),
                BrokerKind::Mosquitto => {
                    let conf = self.dir.path().join("mosquitto.conf");
                    std::fs::write(
                        &conf,
                        format!(
                            // Unbounded queues: a subscriber that lags behind a backlog drain
                            // loses nothing (mosquitto's default drops past 1000 queued).
                            "listener {} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                             max_queued_messages 0\nmax_inflight_messages 0\n",
                            self.addr.port()
                        ),
                    )
                    .unwrap();
                    Proc::spawn(
                        "mosquitto",
                        Command::new("mosquitto")
                            .arg("-c")
                            .arg(&conf)
                            .stdout(Stdio::null())
                            .stderr(Stdio::null()),
                    )
                }
            };
            loop {
                if std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(50))
                    .is_ok()
                {
                    self.proc = Some(p);
                    return;
                }
                if p.child.try_wait().unwrap().is_some() {
                    break; // the port may still be held: retry
                }
                assert!(
                    Instant::now() < deadline,
                    "{:?} broker did not start on {}",
                    self.kind,
                    self.addr
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            assert!(
                Instant::now() < deadline,
                "{:?} broker could not listen on {}",
                self.kind,
                self.addr
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A scenario file: the built-in plant with `keys` added to meters (`(meter, "key = value")`, e.g.
/// `replace_at = [...]`) and `tables` appended to meters (`(meter, "[[meter.fault]] ...")`), and text
/// replacements of whole lines.
pub fn scenario(
    keys: &[(&str, &str)],
    tables: &[(&str, &str)],
    replace: &[(&str, &str)],
) -> String {
    let mut s = BUILTIN_SCENARIO.to_string();
    for (from, to) in replace {
        assert!(s.contains(from), "scenario has no {from:?}");
        s = s.replacen(from, to, 1);
    }
    for (meter, key) in keys {
        let at = s
            .find(&format!("name = \"{meter}\"\ntemplate"))
            .unwrap_or_else(|| panic!("no meter {meter:?} in the scenario"));
        let eol = at + s[at..].find('\n').unwrap() + 1;
        s.insert_str(eol, &format!("{key}\n"));
    }
    for (meter, table) in tables {
        let at = s
            .find(&format!("name = \"{meter}\"\ntemplate"))
            .unwrap_or_else(|| panic!("no meter {meter:?} in the scenario"));
        let end = ["\n[[meter]]", "\n[audit]"]
            .iter()
            .filter_map(|m| s[at..].find(m))
            .min()
            .unwrap()
            + at;
        s.insert_str(end, &format!("\n{table}\n"));
    }
    s
}

/// A virtual clock shared by simulator and agent: start instant (RFC 3339), speed, wall anchor.
#[derive(Debug, Clone)]
pub struct VClock {
    pub start_ms: i64,
    pub speed: f64,
    pub anchor_ms: i64,
}

impl VClock {
    /// Starts at `start` (RFC 3339) `lead` from now, running `speed` times real time.
    pub fn new(start: &str, speed: f64, lead: Duration) -> VClock {
        VClock {
            start_ms: parse_ts_ms(start).expect("RFC 3339 start"),
            speed,
            anchor_ms: wall_ms() + lead.as_millis() as i64,
        }
    }

    pub fn args(&self) -> Vec<String> {
        vec![
            "--clock-start".into(),
            format_ts_ms(self.start_ms),
            "--clock-speed".into(),
            format!("{}", self.speed),
            "--clock-anchor".into(),
            self.anchor_ms.to_string(),
        ]
    }

    /// The same clock for an in-process simulator.
    pub fn clock(&self) -> plantmeter_common::Clock {
        plantmeter_common::Clock::virtual_at_wall(self.anchor_ms, self.start_ms, self.speed)
    }

    /// Virtual now, UTC ms.
    pub fn now_ms(&self) -> i64 {
        let real = (wall_ms() - self.anchor_ms).max(0) as f64;
        self.start_ms + (real * self.speed) as i64
    }

    /// Sleep until the virtual clock reads `ms`.
    pub fn sleep_until(&self, ms: i64) {
        let real_ms = self.anchor_ms as f64 + (ms - self.start_ms) as f64 / self.speed;
        let wait = real_ms - wall_ms() as f64;
        if wait > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(wait / 1000.0));
        }
    }
}

/// `plantmeter-sim` as a process, with the addresses it printed.
pub struct Sim {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub pty: Option<PathBuf>,
}

impl Sim {
    /// Start `plantmeter-sim --listen 127.0.0.1:0` with `extra` arguments; waits for its addresses.
    pub fn start(scenario_file: Option<&Path>, clock: Option<&VClock>, extra: &[&str]) -> Sim {
        let mut cmd = Command::new(bin("plantmeter-sim"));
        cmd.args(["--listen", "127.0.0.1:0"]);
        if let Some(f) = scenario_file {
            cmd.arg("--scenario").arg(f);
        }
        if let Some(c) = clock {
            cmd.args(c.args());
        }
        cmd.args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut proc = Proc::spawn("plantmeter-sim", &mut cmd);
        let stdout = proc.child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let want_pty = extra.contains(&"--pty");
        let (mut addr, mut pty) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(10);
        while addr.is_none() || (want_pty && pty.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .expect("plantmeter-sim did not print its addresses within 10 s");
            if let Some(a) = line.strip_prefix("modbus-tcp ") {
                addr = Some(a.trim().parse().unwrap());
            } else if let Some(p) = line.strip_prefix("pty ") {
                pty = Some(PathBuf::from(p.trim()));
            }
        }
        Sim {
            proc,
            addr: addr.unwrap(),
            pty,
        }
    }
}

/// The agent's config for the built-in plant (or `scenario_text`), via the simulator library.
pub fn agent_config(
    scenario_text: Option<&str>,
    bus: plantmeter_sim::AgentBus,
    mqtt_url: &str,
    data_dir: &Path,
    poll_interval_s: f64,
    timeout_ms: u64,
) -> String {
    let scenario = match scenario_text {
        Some(t) => plantmeter_sim::Scenario::from_toml(t).unwrap(),
        None => plantmeter_sim::Scenario::builtin(),
    };
    let sim =
        plantmeter_sim::Simulation::new(scenario, None, plantmeter_common::Clock::wall()).unwrap();
    let mut o = plantmeter_sim::AgentConfigOptions::tcp("");
    o.bus = bus;
    o.mqtt_url = mqtt_url.to_string();
    o.data_dir = data_dir.display().to_string();
    o.poll_interval_s = Some(poll_interval_s);
    o.timeout_ms = timeout_ms;
    sim.agent_config(&o)
}

/// `plantmeter run --config FILE [clock args]`, logs to stderr at warn.
pub fn start_agent(config: &Path, clock: Option<&VClock>) -> Proc {
    let mut cmd = Command::new(bin("plantmeter"));
    cmd.arg("run").arg("--config").arg(config);
    if let Some(c) = clock {
        cmd.args(c.args());
    }
    cmd.env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    Proc::spawn("plantmeter run", &mut cmd)
}

/// The agent's status file (`data_dir/status.json`), if readable.
pub fn status_file(data_dir: &Path) -> Option<serde_json::Value> {
    serde_json::from_slice(&std::fs::read(data_dir.join("status.json")).ok()?).ok()
}

/// One message the collector received.
#[derive(Debug, Clone)]
pub struct Msg {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    /// Connection number of the collector when it arrived (0 = first).
    pub connection: u64,
}

impl Msg {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e})", self.topic))
    }
}

/// An MQTT subscriber that records everything under a prefix; reconnects and resubscribes by itself.
#[derive(Clone)]
pub struct Collector {
    pub msgs: Arc<Mutex<Vec<Msg>>>,
    subscribed: Arc<Mutex<bool>>,
    prefix: String,
    /// Distinct seqs of the data messages, kept as they arrive (waits ask for their count often).
    seqs_seen: Arc<Mutex<std::collections::HashSet<u64>>>,
}

impl Collector {
    /// Connect, subscribe to `prefix/#` at QoS 1, and wait for the subscription.
    pub async fn start(broker: SocketAddr, prefix: &str) -> Collector {
        let mut o = MqttOptions::new(
            format!("e2e-{}", free_port()),
            broker.ip().to_string(),
            broker.port(),
        );
        o.set_max_packet_size(16 << 20, 1 << 16)
            .set_keep_alive(Duration::from_secs(30));
        let (client, mut ev) = AsyncClient::new(o, 64);
        let c = Collector {
            msgs: Arc::default(),
            subscribed: Arc::default(),
            prefix: prefix.to_string(),
            seqs_seen: Arc::default(),
        };
        let (msgs, subscribed, seen) = (c.msgs.clone(), c.subscribed.clone(), c.seqs_seen.clone());
        let filter = format!("{prefix}/#");
        tokio::spawn(async move {
            let mut connection = 0u64;
            let mut connected_once = false;
            loop {
                match ev.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        if connected_once {
                            connection += 1;
                        }
                        connected_once = true;
                        let _ = client.try_subscribe(filter.clone(), QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => *subscribed.lock().unwrap() = true,
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        if p.topic.contains("/data/") {
                            let v = serde_json::from_slice::<serde_json::Value>(&p.payload);
                            if let Some(seq) = v.ok().and_then(|v| v["seq"].as_u64()) {
                                seen.lock().unwrap().insert(seq);
                            }
                        }
                        msgs.lock().unwrap().push(Msg {
                            topic: p.topic.clone(),
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                            connection,
                        });
                    }
                    Ok(_) => {}
                    Err(_) => {
                        *subscribed.lock().unwrap() = false;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
        });
        let s = c.subscribed.clone();
        wait_until(
            "the collector's subscription",
            Duration::from_secs(10),
            || *s.lock().unwrap(),
        )
        .await;
        c
    }

    pub fn subscribed(&self) -> bool {
        *self.subscribed.lock().unwrap()
    }

    /// Data messages (`/data/`) in arrival order.
    pub fn data(&self) -> Vec<Msg> {
        self.msgs
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.topic.contains("/data/"))
            .cloned()
            .collect()
    }

    pub fn data_len(&self) -> usize {
        self.msgs
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.topic.contains("/data/"))
            .count()
    }

    /// Every message on `topic`, in arrival order.
    pub fn on(&self, topic: &str) -> Vec<Msg> {
        self.msgs
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.topic == topic)
            .cloned()
            .collect()
    }

    /// The last payload on `topic`, as JSON.
    pub fn last(&self, topic: &str) -> Option<serde_json::Value> {
        self.on(topic).last().map(Msg::json)
    }

    /// The last payload on `suffix` under the collector's prefix (`status`, `health/gas`), as JSON.
    pub fn last_at(&self, suffix: &str) -> Option<serde_json::Value> {
        self.last(&format!("{}/{suffix}", self.prefix))
    }

    /// (seq, payload) of the data messages, in arrival order.
    pub fn seqs(&self) -> Vec<(u64, Vec<u8>)> {
        self.data()
            .into_iter()
            .map(|m| (m.json()["seq"].as_u64().expect("seq"), m.payload))
            .collect()
    }

    /// Poll times (`ts`, UTC ms) of the data messages of `meter`, in arrival order.
    pub fn poll_times(&self, meter: &str) -> Vec<i64> {
        self.data()
            .iter()
            .map(poll_of)
            .filter(|(m, _, _)| m == meter)
            .map(|(_, ts, _)| ts)
            .collect()
    }

    /// Distinct seqs among the data messages received.
    pub fn distinct_seqs(&self) -> usize {
        self.seqs_seen.lock().unwrap().len()
    }

    /// Wait until `n` distinct seqs have arrived (after the agent's exit: everything it delivered).
    pub async fn wait_distinct(&self, n: u64, within: Duration) {
        wait_until(&format!("{n} distinct seqs"), within, || {
            self.distinct_seqs() as u64 >= n
        })
        .await;
    }

    /// Wait until no message arrived for `quiet`: the broker forwarded what it had.
    pub async fn wait_quiet(&self, quiet: Duration, within: Duration) {
        let mut last = (self.msgs.lock().unwrap().len(), Instant::now());
        wait_until("the broker to go quiet", within, || {
            let n = self.msgs.lock().unwrap().len();
            if n != last.0 {
                last = (n, Instant::now());
            }
            last.1.elapsed() >= quiet
        })
        .await;
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

/// The status file of the agent with process id `pid` (not one a killed predecessor left), if
/// readable.
pub fn status_of(data_dir: &Path, pid: u32) -> Option<serde_json::Value> {
    status_file(data_dir).filter(|s| s["pid"].as_u64() == Some(u64::from(pid)))
}

/// Wait until `cond` holds, checking every 20 ms; panics naming `what` after `within`.
pub async fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out ({within:?}) waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The delivery contract over the data messages received (`plantmeter_common::delivery`): every seq in
/// `1..next_seq` arrived, duplicates are byte-identical, and seq goes backwards at most `resends` times
/// (once per reconnect of the agent). Returns (distinct, duplicates).
pub fn check_delivery(data: &[Msg], next_seq: u64, resends: usize) -> (usize, usize) {
    let mut check = plantmeter_common::delivery::DeliveryCheck::default();
    for m in data {
        check.record(m.json()["seq"].as_u64().expect("seq"), &m.payload);
    }
    if let Err(e) = check.verify(next_seq, resends as u64) {
        panic!("delivery contract: {e}");
    }
    (check.distinct as usize, check.duplicates as usize)
}

/// One point of a poll: name, value, quality.
pub type PointReading = (String, Option<f64>, String);
/// One poll: meter, ts (UTC ms), points.
pub type Poll = (String, i64, Vec<PointReading>);

/// Meter name and local-time ts (UTC ms) of a data message, with its points as (name, value, quality).
pub fn poll_of(m: &Msg) -> Poll {
    let v = m.json();
    let ts = parse_ts_ms(v["ts"].as_str().unwrap()).unwrap();
    let points = v["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["value"].as_f64(),
                p["quality"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (v["meter"].as_str().unwrap().to_string(), ts, points)
}

/// Topic prefix of the built-in plant's generated config.
pub const PREFIX: &str = "plantmeter/plant-a/gw-01";

/// Write `text` to `dir/name` and return the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A TCP gate between the agent and the broker. Closing it cuts the agent's connections and refuses new
/// ones; the test opens it again once its own subscriber is back on a restarted broker. Without it, an
/// agent that reconnects first drains its backlog into a broker with no subscriber yet, which (correctly,
/// per MQTT) acknowledges and drops those QoS 1 messages, and the test would blame the agent.
pub struct Gate {
    pub addr: SocketAddr,
    open: Arc<std::sync::atomic::AtomicBool>,
    cut: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Gate {
    /// Listen on a free loopback port and forward to `target` while open.
    pub async fn start(target: SocketAddr) -> Gate {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (cut_tx, _) = tokio::sync::watch::channel(0u64);
        let cut = Arc::new(cut_tx);
        let (o, c) = (open.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !o.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut cut_rx = c.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut_rx.changed() => {}
                    }
                });
            }
        });
        Gate { addr, open, cut }
    }

    /// The `mqtt://` URL the agent should use.
    pub fn url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }

    /// Cut every connection through the gate and refuse new ones.
    pub fn close(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        self.cut.send_modify(|g| *g += 1);
    }

    /// Let connections through again.
    pub fn open(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A small tmpfs mounted for a test (root only: None after a [`skip`] otherwise), unmounted when dropped.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            skip(
                &this_test(),
                "mounting a small tmpfs (a full disk) is not permitted here: run the tests as root",
            );
        }
        ok.then(|| Tmpfs(at.to_path_buf()))
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// `plantmeter report --format json --config CONFIG` run with the binary at `plantmeter`: the report,
/// parsed; panics with the command's stderr when it fails.
pub fn report_json(plantmeter: &Path, config: &Path) -> serde_json::Value {
    let out = Command::new(plantmeter)
        .args(["report", "--format", "json", "--config"])
        .arg(config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "report: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
