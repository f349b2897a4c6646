//! `plantmeter bench drain`: how fast the publisher empties a backlog, beside a bare QoS 1
//! publisher on the same broker.
//!
//! For each of "no subscriber" and "a subscriber on `P/#`" (the demo's subscriber, on its own
//! thread): N messages are written to a fresh store and the agent's publisher delivers them at
//! QoS 1 (messages/s until the store is empty); then a minimal rumqttc client publishes N messages
//! of the same size to the same topic at QoS 1 with the same window, from a task other than the
//! one polling its event loop (messages/s until the last PUBACK), with rumqttc's default socket
//! options and with TCP_NODELAY. The ratio is the agent over the faster bare run.
//!
//! The broker: the embedded rumqttd (default), a stock mosquitto started here (`--mosquitto`), or
//! any broker (`--broker host:port`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use plantmeter_common::{DataMessage, PointValue, Quality};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, NetworkOptions, QoS};

use super::agent::{bench_config, tempfile_dir, BenchJob, SDM630_F32};
use super::mosquitto::Mosquitto;
use crate::demo::subscriber::Subscriber;

#[derive(clap::Args)]
pub struct DrainArgs {
    /// Messages in the backlog (per run).
    #[arg(long, default_value_t = 200_000)]
    pub messages: u64,
    /// In-flight window (mqtt max_inflight; the agent's default is 100).
    #[arg(long, default_value_t = 100)]
    pub window: u16,
    /// Run against a stock mosquitto started here (`mosquitto -p PORT`; Debian package mosquitto).
    #[arg(long, conflicts_with = "broker")]
    pub mosquitto: bool,
    /// Run against this broker (host:port; plain MQTT, anonymous) instead of the embedded one.
    #[arg(long)]
    pub broker: Option<SocketAddr>,
    /// Runs of each publisher, interleaved; the best of each is shown (the machine's other load
    /// only ever slows a run down).
    #[arg(long, default_value_t = 3)]
    pub runs: u32,
}

/// One publisher run.
struct Run {
    acked: u64,
    secs: f64,
    /// CPU time of the thread that ran the publisher, ns.
    cpu_ns: u64,
    /// CPU time of the broker process over the run (mosquitto started here), ns.
    broker_cpu_ns: Option<u64>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.acked as f64 / self.secs.max(1e-9)
    }

    fn us_per_msg(&self, ns: u64) -> f64 {
        ns as f64 / 1e3 / self.acked.max(1) as f64
    }
}

/// Run time of a thread or process (first field of `schedstat`), ns.
fn schedstat_ns(path: &str) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU of the calling thread and of the broker process, measured around `f`.
fn measured<T>(
    broker_pid: Option<u32>,
    f: impl FnOnce() -> anyhow::Result<(u64, f64, T)>,
) -> anyhow::Result<(Run, T)> {
    let broker = || broker_pid.map(|p| schedstat_ns(&format!("/proc/{p}/schedstat")));
    let (t0, b0) = (schedstat_ns("/proc/thread-self/schedstat"), broker());
    let (acked, secs, out) = f()?;
    let (t1, b1) = (schedstat_ns("/proc/thread-self/schedstat"), broker());
    Ok((
        Run {
            acked,
            secs,
            cpu_ns: t1.saturating_sub(t0),
            broker_cpu_ns: b0.zip(b1).map(|(b0, b1)| b1.saturating_sub(b0)),
        },
        out,
    ))
}

pub fn drain(a: DrainArgs) -> anyhow::Result<()> {
    if a.messages == 0 || a.window == 0 || a.runs == 0 {
        anyhow::bail!("--messages, --window and --runs must be at least 1");
    }
    let dir = tempfile_dir("plantmeter-bench-drain")?;
    let mut _mosquitto = None;
    let mut broker_pid = None;
    let (broker, name) = match (a.mosquitto, a.broker) {
        (true, _) => {
            let m = Mosquitto::start(&dir)?;
            let addr = m.addr();
            broker_pid = Some(m.pid());
            _mosquitto = Some(m);
            (addr, format!("mosquitto on {addr}"))
        }
        (false, Some(addr)) => (addr, format!("broker {addr}")),
        (false, None) => {
            let addr = crate::broker::start("127.0.0.1:0".parse()?)?;
            (addr, format!("embedded rumqttd on {addr}"))
        }
    };
    // The subscriber lives on its own runtime thread, as a platform would in its own process.
    let sub_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the subscriber's runtime")?;
    println!(
        "drain: {name}, window {}, {} messages per run",
        a.window, a.messages
    );
    for with_subscriber in [false, true] {
        let label = if with_subscriber {
            "a subscriber on P/#"
        } else {
            "no subscriber"
        };
        let mut sub = None;
        let mut best = [None::<Run>, None, None];
        let mut received = [0u64; 3];
        let mut size = 0;
        for run in 0..a.runs {
            let run_dir = dir.join(format!("{label}-{run}").replace([' ', '/', '#'], "_"));
            std::fs::create_dir_all(&run_dir)?;
            let plan = Arc::new(drain_plan(&run_dir, broker, a.window)?);
            let prefix = plan.mqtt.topic_prefix.clone();
            if with_subscriber && sub.is_none() {
                sub = Some(sub_rt.block_on(Subscriber::start(broker, &prefix))?);
            }
            let topic = format!("{prefix}/data/m000");
            // What the subscriber has received so far, once the broker is done forwarding.
            let count = || sub.as_ref().map_or(0, settled_count);
            let mut seen = count();
            let (agent, payload) = drain_agent(plan, a.messages, broker_pid)?;
            size = payload.len();
            let mut runs = vec![agent];
            let now = count();
            received[0] += now - seen;
            seen = now;
            for (i, nodelay) in [(1, false), (2, true)] {
                let (run, ()) = measured(broker_pid, || {
                    bare_publisher(broker, &topic, &payload, a.messages, a.window, nodelay)
                })?;
                runs.push(run);
                let now = count();
                received[i] += now - seen;
                seen = now;
            }
            for (i, r) in runs.into_iter().enumerate() {
                if best[i].as_ref().is_none_or(|b| r.rate() > b.rate()) {
                    best[i] = Some(r);
                }
            }
            let _ = std::fs::remove_dir_all(&run_dir);
        }
        let [Some(agent), Some(bare), Some(bare_nd)] = best else {
            anyhow::bail!("--runs must be at least 1");
        };
        println!(
            "drain: {label} ({size} bytes per message; best of {} runs)",
            a.runs
        );
        let line = |name: &str, r: &Run| {
            println!(
                "  {name:<24} {:>8.0} messages/s ({} acknowledged in {:.2} s; CPU per message: publisher thread {:.1} us{})",
                r.rate(),
                r.acked,
                r.secs,
                r.us_per_msg(r.cpu_ns),
                r.broker_cpu_ns
                    .map(|b| format!(", broker {:.1} us", r.us_per_msg(b)))
                    .unwrap_or_default()
            )
        };
        line("agent publisher:", &agent);
        line("bare rumqttc (defaults):", &bare);
        line("bare rumqttc (nodelay):", &bare_nd);
        let best_bare = bare.rate().max(bare_nd.rate());
        println!(
            "  ratio agent / best bare: {:.2} (target >= 0.8)",
            agent.rate() / best_bare.max(1e-9)
        );
        if with_subscriber {
            let sent = a.messages * u64::from(a.runs);
            println!(
                "  subscriber received {}, {} and {} of {sent} each (the broker drops QoS 1 messages for a subscriber more than 1000 behind)",
                received[0], received[1], received[2]
            );
        }
    }
    drop(sub_rt);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn drain_plan(
    dir: &std::path::Path,
    broker: SocketAddr,
    window: u16,
) -> anyhow::Result<plantmeter_common::Plan> {
    let cfg = dir.join("agent.toml");
    // The bus is never polled here; it only makes the config complete.
    std::fs::write(
        &cfg,
        bench_config(
            dir,
            "127.0.0.1:9".parse()?,
            broker,
            &BenchJob {
                meters: 1,
                points: 10,
                interval: 1.0,
                window,
                max_gap: None,
            },
        ),
    )?;
    crate::exit::load_plan(&cfg, crate::exit::Needs::Polling)
}

/// Data messages the subscriber received so far, once it has stopped receiving (the broker may
/// still be forwarding what it acknowledged): no new message for 300 ms, or 30 s at most.
pub(super) fn settled_count(sub: &Subscriber) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = sub.lock().data;
    let mut since = Instant::now();
    while Instant::now() < deadline && since.elapsed() < Duration::from_millis(300) {
        std::thread::sleep(Duration::from_millis(20));
        let now = sub.lock().data;
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
    last
}

/// Fill a fresh store with `messages` and let the agent's publisher deliver them. Returns the run
/// and one stored payload (for the bare publisher: same size).
fn drain_agent(
    plan: Arc<plantmeter_common::Plan>,
    messages: u64,
    broker_pid: Option<u32>,
) -> anyhow::Result<(Run, Vec<u8>)> {
    let store = Arc::new(crate::store::Store::open_or_recover(
        &plan.gateway.data_dir,
        plan.gateway.store_max_mb.max(4096),
    )?);
    let template = DataMessage {
        seq: 0,
        ts: 1_790_000_000_000,
        meter: "m000".into(),
        points: SDM630_F32
            .iter()
            .map(|(n, _)| PointValue {
                name: (*n).into(),
                value: Some(230.125),
                unit: "x".into(),
                quality: Quality::Good,
            })
            .collect(),
    };
    let mut left = messages;
    while left > 0 {
        let n = left.min(10_000);
        let mut batch: Vec<DataMessage> = (0..n).map(|_| template.clone()).collect();
        store.append(&mut batch)?;
        left -= n;
    }
    store.flush()?;
    let payload = store
        .read_from(0, 1)?
        .into_iter()
        .next()
        .map(|r| r.payload.to_vec())
        .context("the store lost the messages just written")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let shared = crate::state::Shared::new(crate::state::AgentStatus::default());
    let (_health_tx, health_rx) = tokio::sync::mpsc::unbounded_channel();
    let (_audit_tx, audit_rx) = tokio::sync::mpsc::channel(1);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(None);
    let store2 = store.clone();
    let (run, ()) = measured(broker_pid, || {
        let secs = rt.block_on(async move {
            let start = Instant::now();
            let publisher = tokio::spawn(crate::publisher::run(crate::publisher::Inputs {
                plan,
                store: store2.clone(),
                shared,
                wake: Arc::new(tokio::sync::Notify::new()),
                health: health_rx,
                audit: Arc::new(tokio::sync::Mutex::new(audit_rx)),
                shutdown: stop_rx,
                started_ms: plantmeter_common::clock::system_ms(),
            }));
            while store2.backlog() > 0 && !publisher.is_finished() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let secs = start.elapsed().as_secs_f64();
            let _ = stop_tx.send(Some(crate::publisher::Stop::Shutdown));
            let _ = tokio::time::timeout(Duration::from_secs(8), publisher).await;
            secs
        });
        Ok((messages - store.backlog(), secs, ()))
    })?;
    Ok((run, payload))
}

/// A minimal rumqttc QoS 1 publisher: `n` copies of `payload` to `topic`, at most `window` in
/// flight, published from a task other than the one polling the event loop.
fn bare_publisher(
    broker: SocketAddr,
    topic: &str,
    payload: &[u8],
    n: u64,
    window: u16,
    nodelay: bool,
) -> anyhow::Result<(u64, f64, ())> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut o = MqttOptions::new(
            format!("plantmeter-bench-bare-{}", std::process::id()),
            broker.ip().to_string(),
            broker.port(),
        );
        o.set_clean_session(true)
            .set_keep_alive(Duration::from_secs(30))
            .set_inflight(window)
            .set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut ev) = AsyncClient::new(o, usize::from(window));
        let mut net = NetworkOptions::new();
        net.set_tcp_nodelay(nodelay);
        ev.set_network_options(net);
        loop {
            match ev.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => break,
                Ok(_) => {}
                Err(e) => anyhow::bail!("bare publisher: cannot connect to {broker}: {e}"),
            }
        }
        let start = Instant::now();
        let topic = topic.to_string();
        let payload = payload.to_vec();
        let producer = tokio::spawn(async move {
            for _ in 0..n {
                if client
                    .publish(topic.clone(), QoS::AtLeastOnce, false, payload.clone())
                    .await
                    .is_err()
                {
                    break;
                }
            }
            client
        });
        let mut acked = 0u64;
        while acked < n {
            match ev.poll().await {
                Ok(Event::Incoming(Incoming::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(e) => anyhow::bail!("bare publisher: connection lost after {acked} acks: {e}"),
            }
        }
        let secs = start.elapsed().as_secs_f64();
        if let Ok(client) = producer.await {
            let _ = client.try_disconnect();
            let _ = tokio::time::timeout(Duration::from_secs(1), ev.poll()).await;
        }
        Ok((acked, secs, ()))
    })
}
