//! Test helpers: a PostgreSQL cluster of its own (initdb in a temp folder, a free loopback port,
//! run as the `postgres` user when the tests run as root), mosquitto with a config fit for
//! persistent sessions, and `plantmeter-park` as a child process. Agents and the simulator come
//! from plantmeter-tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};

pub use plantmeter_tests::{free_port, run_ok, Proc};

pub const PARK: &str = env!("CARGO_BIN_EXE_plantmeter-park");

/// A PostgreSQL binary: on PATH, or in Debian's /usr/lib/postgresql/N/bin.
fn pg_bin(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| rd.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs.reverse();
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.exists())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A PostgreSQL cluster in a temp folder on a free loopback port; stopped and removed on drop.
pub struct Pg {
    pub port: u16,
    dir: tempfile::TempDir,
    pg_ctl: PathBuf,
    as_postgres: bool,
}

impl Pg {
    /// A fresh cluster with a database `plantmeter` owned by user `plantmeter`, or None (after a
    /// printed note) when PostgreSQL is not installed.
    pub fn start(test: &str) -> Option<Pg> {
        let (Some(initdb), Some(pg_ctl)) = (pg_bin("initdb"), pg_bin("pg_ctl")) else {
            eprintln!("skip: {test}: PostgreSQL is not installed (.ci/run installs the Debian package postgresql)");
            return None;
        };
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("park-pg")
            .tempdir()
            .unwrap();
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                eprintln!("skip: {test}: running as root and there is no postgres user to run PostgreSQL as");
                return None;
            }
        }
        let pg = Pg {
            port: free_port(),
            dir,
            pg_ctl,
            as_postgres,
        };
        let data = pg.data();
        run_ok(
            pg.cmd(&initdb)
                .args([
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "-D",
                ])
                .arg(&data),
        );
        pg.start_server();
        let psql = pg_bin("psql").expect("psql");
        for sql in [
            "CREATE USER plantmeter",
            "CREATE DATABASE plantmeter OWNER plantmeter",
        ] {
            run_ok(Command::new(&psql).args([
                "-h",
                "127.0.0.1",
                "-p",
                &pg.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                sql,
            ]));
        }
        Some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn cmd(&self, exe: &Path) -> Command {
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    pub fn url(&self) -> String {
        format!("postgres://plantmeter@127.0.0.1:{}/plantmeter", self.port)
    }

    fn start_server(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        run_ok(
            self.cmd(&self.pg_ctl)
                .args(["-w", "-t", "30", "-l"])
                .arg(self.dir.path().join("log"))
                .arg("-D")
                .arg(self.data())
                .args(["-o", &opts, "start"])
                .stdout(Stdio::null()),
        );
    }

    /// Stop (fast: connections are cut) and start again on the same port.
    pub fn restart(&self) {
        self.stop();
        self.start_server();
    }

    pub fn stop(&self) {
        let _ = self
            .cmd(&self.pg_ctl)
            .args(["-w", "-m", "fast", "-D"])
            .arg(self.data())
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// PostgreSQL's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// A client for assertions.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (c, conn) = tokio_postgres::connect(&self.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        c
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = self
            .cmd(&self.pg_ctl)
            .args(["-m", "immediate", "-D"])
            .arg(self.data())
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// mosquitto on a free loopback port with unbounded queues and in-flight windows (a persistent
/// session's queue must not drop messages while its instance is down), or None after a note.
pub struct Mosquitto {
    pub port: u16,
    proc: Option<Proc>,
    dir: tempfile::TempDir,
}

impl Mosquitto {
    pub fn start(test: &str) -> Option<Mosquitto> {
        let found = Command::new("mosquitto")
            .arg("-h")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            eprintln!("skip: {test}: mosquitto is not installed (.ci/run installs it)");
            return None;
        }
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 max_queued_messages 0\nmax_inflight_messages 1000\n"
            ),
        )
        .unwrap();
        let mut m = Mosquitto {
            port,
            proc: None,
            dir,
        };
        m.spawn();
        Some(m)
    }

    fn spawn(&mut self) {
        let conf = self.dir.path().join("mosquitto.conf");
        self.proc = Some(Proc::spawn(
            "mosquitto",
            Command::new("mosquitto")
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        ));
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kill the broker (its sessions and queues are lost: no persistence) and start it again on
    /// the same port.
    pub fn restart(&mut self) {
        if let Some(p) = self.proc.take() {
            p.sigkill();
        }
        self.spawn();
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

/// A park config for `plants` (`(name, ["site/id", …])`).
pub fn park_config(dir: &Path, db: &str, mqtt: &str, plants: &[(&str, &[&str])]) -> PathBuf {
    let mut s = format!(
        "[park]\nname = \"Test Park\"\ntimezone = \"+08:00\"\n[database]\nurl = \"{db}\"\n\
         [mqtt]\nurl = \"{mqtt}\"\ntopic_prefix = \"plantmeter\"\nshare_group = \"park\"\n\
         [http]\nlisten = \"127.0.0.1:{}\"\n",
        free_port()
    );
    for (name, gws) in plants {
        let list: Vec<String> = gws.iter().map(|g| format!("\"{g}\"")).collect();
        s.push_str(&format!(
            "[[plant]]\nname = \"{name}\"\ngateways = [{}]\n",
            list.join(", ")
        ));
    }
    let p = dir.join("park.toml");
    std::fs::write(&p, s).unwrap();
    p
}

/// The page's base URL from a config written by `park_config`.
pub fn web_url(config: &Path) -> String {
    let text = std::fs::read_to_string(config).unwrap();
    let listen = text
        .lines()
        .find_map(|l| l.strip_prefix("listen = \""))
        .unwrap()
        .trim_end_matches('"');
    format!("http://{listen}")
}

/// `plantmeter-park run --config FILE --instance NAME`, logging to stderr.
pub fn start_park(config: &Path, instance: &str) -> Proc {
    Proc::spawn(
        "plantmeter-park run",
        Command::new(PARK)
            .args(["run", "--instance", instance, "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit()),
    )
}

/// `plantmeter-park status --format json`, parsed; None when it failed.
pub fn status(config: &Path) -> Option<serde_json::Value> {
    let out = Command::new(PARK)
        .args(["status", "--format", "json", "--config"])
        .arg(config)
        .output()
        .unwrap();
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// Wait until the park has subscribed `n` instances (its `instances` table), so that nothing
/// published from now on can miss the shared subscription.
pub async fn wait_subscribed(pg: &Pg, n: i64) {
    let c = loop {
        if let Ok((c, conn)) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await {
            tokio::spawn(conn);
            break c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got = c
            .query_one("SELECT count(*) FROM instances", &[])
            .await
            .map(|r| r.get::<_, i64>(0))
            .unwrap_or(0);
        if got >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{n} park instance(s) did not subscribe"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Publish `msgs` (topic, payload, retain) at QoS 1 and wait until the broker acknowledged them all.
pub async fn publish_all(port: u16, msgs: &[(String, String, bool)]) {
    let mut o = MqttOptions::new(format!("fake-gw-{}", free_port()), "127.0.0.1", port);
    // Oversized messages are part of what the tests send.
    o.set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(4 << 20, 4 << 20);
    let (client, mut ev) = AsyncClient::new(o, msgs.len() + 8);
    for (t, p, r) in msgs {
        client
            .publish(t.clone(), QoS::AtLeastOnce, *r, p.clone().into_bytes())
            .await
            .unwrap();
    }
    let mut acked = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while acked < msgs.len() {
        let ev = tokio::time::timeout_at(deadline, ev.poll())
            .await
            .expect("the broker acknowledges the publishes");
        if let Ok(Event::Incoming(Incoming::PubAck(_))) = ev {
            acked += 1;
        }
    }
}

pub fn data(seq: u64, meter: &str) -> String {
    format!(
        r#"{{"seq": {seq}, "ts": "2026-11-21T08:00:{:02}.000Z", "meter": "{meter}", "points": [{{"name": "energy", "value": {seq}.5, "unit": "kWh", "quality": "good"}}]}}"#,
        seq % 60
    )
}

/// A plain HTTP GET: (status code, body).
pub fn http_get(url: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let code = buf
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (code, body)
}

pub fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// The DOM once the page's script has rendered (`data-loaded` on the body), or a panic after 3 tries.
pub fn dump_dom(browser: &str, url: &str) -> String {
    let mut last = String::new();
    for _ in 0..3 {
        let out = Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--virtual-time-budget=15000",
                "--dump-dom",
                url,
            ])
            .stderr(Stdio::null())
            .output()
            .unwrap();
        last = String::from_utf8_lossy(&out.stdout).into_owned();
        if last.contains("data-loaded=\"yes\"") {
            return last;
        }
    }
    panic!("the page never rendered its data: {last}");
}

/// A PNG of `url` at `width` px (after the page's script ran) in `file`; false when chromium failed.
pub fn screenshot(browser: &str, url: &str, width: u32, file: &Path) -> bool {
    Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--virtual-time-budget=15000",
            &format!("--window-size={width},2200"),
        ])
        .arg(format!("--screenshot={}", file.display()))
        .arg(url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        && file.exists()
}

/// The `<tr>` of `attr="key"` in `dom`.
pub fn row<'d>(dom: &'d str, attr: &str, key: &str) -> &'d str {
    let at = dom
        .find(&format!("{attr}=\"{key}\""))
        .unwrap_or_else(|| panic!("no row {key} in {dom}"));
    let end = dom[at..].find("</tr>").unwrap() + at;
    &dom[at..end]
}
