//! Security of the broker link, against a real mosquitto:
//! - `mqtts://` with `ca_file` and a client certificate (mutual TLS): data arrives;
//! - a broker whose certificate the configured CA did not sign gets nothing;
//! - passwords from `password_file` or `password_env` are used, and never appear in the agent's logs;
//! - without `[metrics]` the agent has no listening socket.
//!
//! Certificates are generated at test time with the `openssl` CLI. Without `mosquitto` or `openssl`
//! on the machine, each test prints a skip note and returns (CI installs mosquitto).
#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the assertion

use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use plantmeter_sim::{AgentConfigOptions, Scenario, SimHandle, SimOptions};
use plantmeter_tests::run_ok;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};

const PASSWORD: &str = "s3cret-Pa55word-9f2c";

fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn tools() -> Option<(PathBuf, PathBuf)> {
    match (find_tool("mosquitto"), find_tool("openssl")) {
        (Some(m), Some(o)) => Some((m, o)),
        (m, o) => {
            plantmeter_tests::skip(
                &plantmeter_tests::this_test(),
                &format!(
                    "needs mosquitto ({}) and openssl ({}) (.ci/run installs them)",
                    if m.is_some() { "found" } else { "missing" },
                    if o.is_some() { "found" } else { "missing" }
                ),
            );
            None
        }
    }
}

/// A CA (`{name}.pem`, `{name}.key`) and, signed by it, a leaf `{leaf}.crt` / `{leaf}.key`.
fn make_ca(openssl: &Path, dir: &Path, name: &str) {
    run_ok(Command::new(openssl).current_dir(dir).args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "2",
        "-subj",
        &format!("/CN={name}"),
        "-keyout",
        &format!("{name}.key"),
        "-out",
        &format!("{name}.pem"),
    ]));
}

fn make_leaf(openssl: &Path, dir: &Path, ca: &str, leaf: &str, usage: &str) {
    run_ok(Command::new(openssl).current_dir(dir).args([
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-subj",
        &format!("/CN={leaf}"),
        "-keyout",
        &format!("{leaf}.key"),
        "-out",
        &format!("{leaf}.csr"),
    ]));
    std::fs::write(
        dir.join(format!("{leaf}.ext")),
        format!(
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage={usage}\n"
        ),
    )
    .unwrap();
    run_ok(Command::new(openssl).current_dir(dir).args([
        "x509",
        "-req",
        "-in",
        &format!("{leaf}.csr"),
        "-CA",
        &format!("{ca}.pem"),
        "-CAkey",
        &format!("{ca}.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &format!("{leaf}.ext"),
        "-out",
        &format!("{leaf}.crt"),
    ]));
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when the test ends, however it ends.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// SIGTERM, then wait (bounded), then SIGKILL.
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_logged(cmd: &mut Command, log: PathBuf) -> Proc {
    let f = std::fs::File::create(&log).unwrap();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap();
    Proc { child, log }
}

fn start_mosquitto(mosquitto: &Path, dir: &Path, listener_conf: &str) -> (Proc, u16) {
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    // `user root` keeps a root-run broker from dropping to the `mosquitto` user, which could not
    // read the test's private temporary directory; it is ignored when not run as root.
    std::fs::write(
        &conf,
        format!("user root\npersistence false\nlog_dest stderr\nlog_type all\nlistener {port} 127.0.0.1\n{listener_conf}"),
    )
    .unwrap();
    let mut p = spawn_logged(
        Command::new(mosquitto).arg("-c").arg(&conf),
        dir.join("mosquitto.log"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (p, port);
        }
        if let Ok(Some(status)) = p.child.try_wait() {
            panic!("mosquitto exited ({status}):\n{}", p.log());
        }
        assert!(
            Instant::now() < deadline,
            "mosquitto did not listen:\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The simulator's complete agent config, with extra `[mqtt]` keys after the url.
fn agent_config(sim: &SimHandle, url: &str, data_dir: &Path, mqtt_extra: &str) -> String {
    let mut o = AgentConfigOptions::tcp(sim.addr().to_string());
    o.mqtt_url = url.to_string();
    o.data_dir = data_dir.to_string_lossy().into_owned();
    o.gateway_id = "gw-tls".into();
    o.poll_interval_s = Some(0.5);
    let text = sim.agent_config_with(&o);
    let url_line = format!("url = \"{url}\"\n");
    assert!(
        text.contains(&url_line),
        "unexpected generated config:\n{text}"
    );
    text.replacen(&url_line, &format!("{url_line}{mqtt_extra}"), 1)
}

fn spawn_agent(dir: &Path, config: &str, envs: &[(&str, &str)]) -> Proc {
    let cfg = dir.join("plantmeter.toml");
    std::fs::write(&cfg, config).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_plantmeter"));
    cmd.args(["--log-format", "json", "run", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "debug")
        .env_remove("NOTIFY_SOCKET");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    spawn_logged(&mut cmd, dir.join("agent.log"))
}

/// Subscribe to `plantmeter/#` and return the first data message's topic and payload, or None
/// after `wait`.
async fn first_data_message(mut opts: MqttOptions, wait: Duration) -> Option<(String, String)> {
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut events) = AsyncClient::new(opts, 10);
    client
        .subscribe("plantmeter/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, events.poll()).await {
            Err(_) => return None,
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) if p.topic.contains("/data/") => {
                return Some((p.topic, String::from_utf8_lossy(&p.payload).into_owned()));
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("test subscriber: {e}"),
        }
    }
}

fn tls_subscriber(dir: &Path, port: u16) -> MqttOptions {
    let mut opts = MqttOptions::new("tls-test-sub", "127.0.0.1", port);
    opts.set_transport(Transport::Tls(TlsConfiguration::Simple {
        ca: std::fs::read(dir.join("ca.pem")).unwrap(),
        alpn: None,
        client_auth: Some((
            std::fs::read(dir.join("sub.crt")).unwrap(),
            std::fs::read(dir.join("sub.key")).unwrap(),
        )),
    }));
    opts
}

fn assert_data_payload(topic: &str, payload: &str) {
    assert!(topic.starts_with("plantmeter/"), "{topic}");
    let v: serde_json::Value = serde_json::from_str(payload).unwrap();
    assert!(v["seq"].is_u64(), "{payload}");
    assert!(
        v["points"].as_array().is_some_and(|p| !p.is_empty()),
        "{payload}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_test_ca_delivers_data() {
    let Some((mosquitto, openssl)) = tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_ca(&openssl, d, "ca");
    make_leaf(&openssl, d, "ca", "server", "serverAuth");
    make_leaf(&openssl, d, "ca", "agent", "clientAuth");
    make_leaf(&openssl, d, "ca", "sub", "clientAuth");
    let (mut broker, port) = start_mosquitto(
        &mosquitto,
        d,
        &format!(
            "cafile {0}/ca.pem\ncertfile {0}/server.crt\nkeyfile {0}/server.key\n\
             require_certificate true\nallow_anonymous true\n",
            d.display()
        ),
    );

    let sim = plantmeter_sim::start(Scenario::builtin(), SimOptions::default())
        .await
        .unwrap();
    let config = agent_config(
        &sim,
        &format!("mqtts://127.0.0.1:{port}"),
        &d.join("data"),
        &format!(
            "ca_file = \"{0}/ca.pem\"\nclient_cert_file = \"{0}/agent.crt\"\nclient_key_file = \"{0}/agent.key\"\n",
            d.display()
        ),
    );
    let mut agent = spawn_agent(d, &config, &[]);

    let got = first_data_message(tls_subscriber(d, port), Duration::from_secs(30)).await;
    agent.stop();
    broker.stop();
    let Some((topic, payload)) = got else {
        panic!(
            "no data over TLS within 30 s\n--- agent:\n{}\n--- mosquitto:\n{}",
            agent.log(),
            broker.log()
        );
    };
    assert_data_payload(&topic, &payload);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_certificate_from_another_ca_is_refused() {
    let Some((mosquitto, openssl)) = tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_ca(&openssl, d, "ca");
    make_ca(&openssl, d, "rogue");
    make_leaf(&openssl, d, "rogue", "server", "serverAuth");
    make_leaf(&openssl, d, "ca", "sub", "clientAuth");
    // The broker presents a certificate from `rogue`; subscribers are checked against `ca`...
    let (mut broker, port) = start_mosquitto(
        &mosquitto,
        d,
        &format!(
            "cafile {0}/ca.pem\ncertfile {0}/server.crt\nkeyfile {0}/server.key\nallow_anonymous true\n",
            d.display()
        ),
    );
    let sim = plantmeter_sim::start(Scenario::builtin(), SimOptions::default())
        .await
        .unwrap();
    // ...and the agent trusts only `ca`, so it must not connect.
    let config = agent_config(
        &sim,
        &format!("mqtts://127.0.0.1:{port}"),
        &d.join("data"),
        &format!("ca_file = \"{}/ca.pem\"\n", d.display()),
    );
    let mut agent = spawn_agent(d, &config, &[]);
    // The test's own subscriber trusts `rogue` so it can watch the broker.
    let mut opts = MqttOptions::new("tls-test-sub", "127.0.0.1", port);
    opts.set_transport(Transport::Tls(TlsConfiguration::Simple {
        ca: std::fs::read(d.join("rogue.pem")).unwrap(),
        alpn: None,
        client_auth: None,
    }));
    let got = first_data_message(opts, Duration::from_secs(5)).await;
    let still_running = agent.child.try_wait().unwrap().is_none();
    agent.stop();
    broker.stop();
    assert!(
        got.is_none(),
        "data reached a broker whose certificate the configured CA did not sign: {got:?}"
    );
    assert!(
        still_running,
        "an untrusted broker must not crash the agent (it keeps buffering):\n{}",
        agent.log()
    );
    assert!(
        !broker.log().contains("gw-tls"),
        "the agent completed an MQTT connect despite the certificate:\n{}",
        broker.log()
    );
    sim.shutdown().await;
}

/// Listening TCP sockets (IPv4 and IPv6) owned by a process, from /proc.
fn listening_sockets(pid: u32) -> Vec<String> {
    let mut inodes = std::collections::HashSet::new();
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                let t = target.to_string_lossy().into_owned();
                if let Some(inode) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                    inodes.insert(inode.to_string());
                }
            }
        }
    }
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // cols: sl local rem st ... inode at index 9; st 0A = LISTEN
            if cols.len() > 9 && cols[3] == "0A" && inodes.contains(cols[9]) {
                found.push(format!("{table} {}", cols[1]));
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_from_file_or_env_is_used_and_never_logged() {
    let Some((mosquitto, _)) = tools() else {
        return;
    };
    let Some(passwd_tool) = find_tool("mosquitto_passwd") else {
        plantmeter_tests::skip(
            "password_from_file_or_env_is_used_and_never_logged",
            "mosquitto_passwd is not installed (Debian package mosquitto)",
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let users = d.join("users");
    run_ok(
        Command::new(&passwd_tool)
            .args(["-b", "-c"])
            .arg(&users)
            .args(["gw-user", PASSWORD]),
    );
    run_ok(
        Command::new(&passwd_tool)
            .arg("-b")
            .arg(&users)
            .args(["sub", "sub-password"]),
    );
    let (mut broker, port) = start_mosquitto(
        &mosquitto,
        d,
        &format!("allow_anonymous false\npassword_file {}\n", users.display()),
    );
    let sim = plantmeter_sim::start(Scenario::builtin(), SimOptions::default())
        .await
        .unwrap();
    let url = format!("mqtt://127.0.0.1:{port}");
    let mut subscriber = MqttOptions::new("pw-test-sub", "127.0.0.1", port);
    subscriber.set_credentials("sub", "sub-password");

    // 1. password_file (with the trailing newline editors add).
    let pw_file = d.join("mqtt-password");
    std::fs::write(&pw_file, format!("{PASSWORD}\n")).unwrap();
    let config = agent_config(
        &sim,
        &url,
        &d.join("data-file"),
        &format!(
            "username = \"gw-user\"\npassword_file = \"{}\"\n",
            pw_file.display()
        ),
    );
    let mut agent = spawn_agent(d, &config, &[]);
    let got = first_data_message(subscriber.clone(), Duration::from_secs(30)).await;
    let listening = listening_sockets(agent.child.id());
    agent.stop();
    let log = agent.log();
    assert!(
        got.is_some(),
        "no data with password_file\n--- agent:\n{log}\n--- mosquitto:\n{}",
        broker.log()
    );
    assert!(
        !log.contains(PASSWORD),
        "the password appears in the agent's log:\n{log}"
    );
    assert!(
        listening.is_empty(),
        "without [metrics] the agent must not listen: {listening:?}"
    );

    // 2. password_env.
    let config = agent_config(
        &sim,
        &url,
        &d.join("data-env"),
        "username = \"gw-user\"\npassword_env = \"PLANTMETER_TEST_MQTT_PASSWORD\"\n",
    );
    let mut agent = spawn_agent(d, &config, &[("PLANTMETER_TEST_MQTT_PASSWORD", PASSWORD)]);
    let got = first_data_message(subscriber, Duration::from_secs(30)).await;
    agent.stop();
    broker.stop();
    let log = agent.log();
    assert!(
        got.is_some(),
        "no data with password_env\n--- agent:\n{log}\n--- mosquitto:\n{}",
        broker.log()
    );
    assert!(
        !log.contains(PASSWORD),
        "the password appears in the agent's log:\n{log}"
    );
    sim.shutdown().await;
}
