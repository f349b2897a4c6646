//! `plantmeter-park bench ingest`: data messages/s and points/s into PostgreSQL with one and with two
//! instances (child processes of this binary, `run --instance bench-N`), on the config's broker and
//! database. G fake gateways (`bench/{pid}-{instances}-{g}`, each its own MQTT client and seqs)
//! publish N messages of P points between them at QoS 1, concurrently, as fast as the broker takes
//! them; the clock stops when the database holds all N. Also the end-to-end lag (row inserted minus
//! the message's ts, stamped when published), p50 and p99. Prints figures; asserts nothing.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};

use crate::config::Config;
use crate::db;

/// Publishes per round (at most the client's in-flight window).
const ROUND: u64 = 500;

struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
        for c in &mut self.0 {
            let deadline = Instant::now() + Duration::from_secs(10);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn payload(seq: u64, points: usize) -> Vec<u8> {
    let ts = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
    let pts: Vec<String> = (0..points)
        .map(|i| format!(r#"{{"name":"p{i}","value":{seq}.{i},"unit":"kWh","quality":"good"}}"#))
        .collect();
    format!(
        r#"{{"seq":{seq},"ts":"{ts}","meter":"bench","points":[{}]}}"#,
        pts.join(",")
    )
    .into_bytes()
}

/// What one run measured.
struct Figures {
    published_s: f64,
    stored_s: f64,
    lag_p50_s: f64,
    lag_p99_s: f64,
    /// CPU seconds of the park instances (user + system), and of the whole machine (every process:
    /// broker, PostgreSQL, the publishing gateways, others), from the first publish to the last row.
    park_cpu_s: Option<f64>,
    machine_cpu_s: Option<f64>,
}

/// Linux clock ticks per second of /proc's CPU times (USER_HZ, 100 on every common architecture).
const TICKS: f64 = 100.0;

/// Busy CPU seconds of the machine so far (all cores: /proc/stat's `cpu` line less idle and iowait).
fn machine_cpu() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<f64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: f64 = v.iter().take(8).sum();
    Some((total - v.get(3)? - v.get(4)?) / TICKS)
}

/// CPU seconds (user + system) of a process so far.
fn process_cpu(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command's closing parenthesis: state is field 3, utime 14, stime 15.
    let rest = text.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let (u, s): (f64, f64) = (f.get(11)?.parse().ok()?, f.get(12)?.parse().ok()?);
    Some((u + s) / TICKS)
}

/// One gateway publishing `messages` in rounds of at most its in-flight window.
async fn gateway(
    cfg: Config,
    id: String,
    topic: String,
    messages: u64,
    points: usize,
) -> anyhow::Result<()> {
    let round = messages.clamp(1, ROUND);
    let mut o = MqttOptions::new(id, cfg.mqtt.host.clone(), cfg.mqtt.port);
    o.set_inflight(round as u16 + 1)
        .set_keep_alive(Duration::from_secs(30));
    let (mqtt, mut ev) = AsyncClient::new(o, round as usize + 16);
    // In rounds of at most the in-flight window, each acknowledged before the next: a window of
    // packet ids never collides (rumqttc stalls when a new publish would reuse an id still in flight).
    let mut seq = 0;
    while seq < messages {
        let n = (messages - seq).min(round);
        for _ in 0..n {
            seq += 1;
            mqtt.try_publish(topic.clone(), QoS::AtLeastOnce, false, payload(seq, points))
                .context("queueing a publish")?;
        }
        let mut acked = 0;
        while acked < n {
            match ev.poll().await {
                Ok(Event::Incoming(Incoming::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(e) => anyhow::bail!("broker: {e}"),
            }
        }
    }
    let _ = mqtt.disconnect().await;
    // Let the DISCONNECT go out.
    let _ = tokio::time::timeout(Duration::from_millis(200), ev.poll()).await;
    Ok(())
}

/// One run: `instances` consumers, `gateways` publishers, `messages` messages of `points` points.
async fn one(
    config: &Path,
    cfg: &Config,
    instances: usize,
    gateways: u64,
    messages: u64,
    points: usize,
) -> anyhow::Result<Figures> {
    let client = db::connect(&cfg.database).await?;
    let started = chrono::Utc::now();
    // A share group of its own, so that no other instance (or a session it left) takes a share; the
    // sessions are discarded at the end (clean session), so the broker keeps nothing for them.
    let group = format!("bench-{}", std::process::id());
    let text = std::fs::read_to_string(config)
        .with_context(|| format!("cannot read {}", config.display()))?;
    let mut doc: toml::Table = toml::from_str(&text).context("the config")?;
    if let Some(toml::Value::Table(m)) = doc.get_mut("mqtt") {
        m.insert("share_group".into(), toml::Value::String(group));
    }
    let tag = format!("{}-{instances}", std::process::id());
    // The fake gateway in a plant of its own: data of a gateway in no plant is refused.
    let mut plant = toml::Table::new();
    plant.insert("name".into(), toml::Value::String("bench".into()));
    plant.insert(
        "gateways".into(),
        toml::Value::Array(
            (0..gateways)
                .map(|g| toml::Value::String(format!("bench/{tag}-{g}")))
                .collect(),
        ),
    );
    doc.insert(
        "plant".into(),
        toml::Value::Array(vec![toml::Value::Table(plant)]),
    );
    let dir = std::env::temp_dir().join(format!("plantmeter-park-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("a temp folder")?;
    let config = dir.join("park.toml");
    std::fs::write(&config, toml::to_string(&doc).context("the config")?)
        .context("writing the bench config")?;
    let exe = std::env::current_exe().context("this program's path")?;
    let mut children = Children(Vec::new());
    for i in 0..instances {
        children.0.push(
            Command::new(&exe)
                .args(["run", "--instance", &format!("bench-{i}"), "--config"])
                .arg(&config)
                .env("RUST_LOG", "error")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .context("starting an instance")?,
        );
    }
    // Wait until every instance has (re)subscribed since this run started.
    let ids: Vec<String> = (0..instances)
        .map(|i| format!("{}-bench-{i}", cfg.mqtt.client_id))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM instances WHERE client_id = ANY($1) AND subscribed_at >= $2",
                &[&ids, &started],
            )
            .await
            .map(|r| r.get(0))
            .unwrap_or(0);
        if n as usize == instances {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the instances did not subscribe within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let cpu0 = (
        children
            .0
            .iter()
            .map(|c| process_cpu(c.id()))
            .sum::<Option<f64>>(),
        machine_cpu(),
    );
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for g in 0..gateways {
        // The messages split as evenly as they go.
        let n = messages / gateways + u64::from(g < messages % gateways);
        tasks.push(tokio::spawn(gateway(
            cfg.clone(),
            format!("plantmeter-park-bench-{tag}-{g}"),
            format!("{}/bench/{tag}-{g}/data/bench", cfg.mqtt.topic_prefix),
            n,
            points,
        )));
    }
    for t in tasks {
        t.await.context("a publishing gateway")??;
    }
    let published = t0.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM readings WHERE site = 'bench' AND gateway LIKE $1",
                &[&format!("{tag}-%")],
            )
            .await
            .map(|r| r.get(0))
            .map_err(|e| anyhow::anyhow!(db::explain(&e)))?;
        if n as u64 >= messages {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {n} of {messages} stored after 600 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stored = t0.elapsed().as_secs_f64();
    let cpu1 = (
        children
            .0
            .iter()
            .map(|c| process_cpu(c.id()))
            .sum::<Option<f64>>(),
        machine_cpu(),
    );
    let lag = client
        .query_one(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM received_at - ts)), \
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM received_at - ts)) \
             FROM readings WHERE site = 'bench' AND gateway LIKE $1",
            &[&format!("{tag}-%")],
        )
        .await
        .map_err(|e| anyhow::anyhow!(db::explain(&e)))?;
    drop(children);
    for id in &ids {
        discard_session(cfg, id).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Figures {
        published_s: published,
        stored_s: stored,
        lag_p50_s: lag.get::<_, Option<f64>>(0).unwrap_or(f64::NAN),
        lag_p99_s: lag.get::<_, Option<f64>>(1).unwrap_or(f64::NAN),
        park_cpu_s: cpu0.0.zip(cpu1.0).map(|(a, b)| b - a),
        machine_cpu_s: cpu0.1.zip(cpu1.1).map(|(a, b)| b - a),
    })
}

/// Connect as `client_id` with a clean session: the broker drops that client's session and subscriptions.
async fn discard_session(cfg: &Config, client_id: &str) {
    let mut o = MqttOptions::new(client_id, cfg.mqtt.host.clone(), cfg.mqtt.port);
    o.set_clean_session(true);
    let (c, mut ev) = AsyncClient::new(o, 4);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), ev.poll()).await {
            Ok(Ok(Event::Incoming(Incoming::ConnAck(_)))) => {
                let _ = c.disconnect().await;
            }
            Ok(Ok(_)) => {}
            _ => return,
        }
    }
}

/// Run the benchmark and print its figures.
pub async fn ingest(
    config: &Path,
    cfg: &Config,
    gateways: u64,
    messages: u64,
    points: usize,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=10_000).contains(&gateways),
        "--gateways must be 1..10000"
    );
    println!(
        "bench ingest: {messages} data messages of {points} points from {gateways} gateway(s), broker {}, database {}",
        cfg.mqtt.url,
        cfg.database.url.split('@').next_back().unwrap_or("")
    );
    for instances in [1, 2] {
        let f = one(config, cfg, instances, gateways, messages, points).await?;
        let rate = messages as f64 / f.stored_s;
        println!(
            "{instances} instance(s): published in {:.2} s, all stored in {:.2} s: {rate:.0} rows (messages)/s, {:.0} points/s; lag from publish to row p50 {:.3} s, p99 {:.3} s",
            f.published_s,
            f.stored_s,
            rate * points as f64,
            f.lag_p50_s,
            f.lag_p99_s
        );
        let per = |cpu: Option<f64>| {
            cpu.map_or("-".to_string(), |c| {
                format!("{:.2} s", c * 100_000.0 / (messages as f64 * points as f64))
            })
        };
        println!(
            "  CPU per 100 k points: park instance(s) {}, whole machine {} (broker, PostgreSQL, publishers and anything else running)",
            per(f.park_cpu_s),
            per(f.machine_cpu_s)
        );
    }
    Ok(())
}
