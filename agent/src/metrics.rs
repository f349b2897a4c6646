//! Opt-in Prometheus endpoint: `GET /metrics` in the text exposition format (version 0.0.4).
//!
//! Only started when the config has `[metrics] listen = "127.0.0.1:9898"` (`Plan::metrics_listen`);
//! without it the agent opens no listening port at all. The metrics are `prometheus-client` types
//! (a counter can only go up) encoded by its Prometheus text encoder. A tiny hand-written HTTP/1.1
//! server, so the release binary carries no HTTP stack: GET only, one request per connection
//! (`Connection: close`), request head at most [`MAX_REQUEST_BYTES`], read within [`READ_TIMEOUT`],
//! at most [`MAX_CONNECTIONS`] at once (more are closed at once). A slow or malicious client
//! therefore costs one small task for a few seconds and never blocks polling or publishing.
//!
//! `run` hands [`MetricsServer::serve`] a closure that takes a [`MetricsSnapshot`] of its counters;
//! it is called once per scrape, on the runtime: keep it cheap (copy counters; no store scan).
//! Metric names and types are listed in [`Metrics`].

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Largest accepted request head (request line + headers), in bytes.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// Time a client has to send its request head, and to receive the response.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at the same time; further ones are closed without a response.
pub const MAX_CONNECTIONS: usize = 16;

/// Per-meter figures of one scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeterMetrics {
    /// The meter's name from the config.
    pub name: String,
    /// Polls attempted since start.
    pub polls_total: u64,
    /// Polls that failed (timeout, disconnect, Modbus exception) since start.
    pub errors_total: u64,
    /// Duration of the last poll (all its requests), in seconds; None before the first poll.
    pub last_latency_seconds: Option<f64>,
    /// True while the meter's health is `ok` (as on `P/health/{meter}`).
    pub state_ok: bool,
    /// Point values refused as implausible (quality `invalid`) since start.
    pub invalid_values_total: u64,
}

/// Everything `/metrics` shows, taken at the moment of the scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    pub meters: Vec<MeterMetrics>,
    /// Records in the store not yet acknowledged by the broker.
    pub backlog: u64,
    /// Age of the oldest unsent record, in seconds (wall time); None when the backlog is empty.
    pub oldest_unsent_age_seconds: Option<f64>,
    /// Records the store counts as evicted or lost, since it was created. It can go down: records
    /// counted lost after a failed write that a reopen finds on disk after all are taken off it.
    pub evicted: u64,
    /// Data messages acknowledged by the broker since start.
    pub published_total: u64,
    /// Acknowledged data messages per second, over the agent's recent window.
    pub publish_rate: f64,
    /// True while connected to the broker.
    pub mqtt_connected: bool,
    /// The store's estimate of the size of the records it keeps (key + payload + overhead), in
    /// bytes: what `store_max_mb` bounds. Not the size of its files on disk.
    pub store_bytes_estimate: u64,
    /// Time since the agent started, in seconds.
    pub uptime_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MeterLabel {
    meter: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

type GaugeF64 = Gauge<f64, AtomicU64>;
type GaugeU64 = Gauge<u64, AtomicU64>;

/// The metrics of the agent, all prefixed `plantmeter_`: `build_info{version}`, `uptime_seconds`,
/// `meter_polls_total{meter}`, `meter_errors_total{meter}`, `meter_last_poll_latency_seconds{meter}`,
/// `meter_up{meter}` (1 ok, 0 failing), `store_backlog_records`, `store_oldest_unsent_age_seconds`,
/// `store_evictions_total`, `store_bytes_estimate`, `mqtt_published_total`,
/// `mqtt_publish_rate_per_second`, `mqtt_connected`. Updated from a [`MetricsSnapshot`] at each
/// scrape: counters only ever advance.
pub struct Metrics {
    registry: Registry,
    uptime: GaugeF64,
    polls: Family<MeterLabel, Counter>,
    errors: Family<MeterLabel, Counter>,
    invalid: Family<MeterLabel, Counter>,
    latency: Family<MeterLabel, GaugeF64>,
    up: Family<MeterLabel, GaugeU64>,
    backlog: GaugeU64,
    oldest_unsent_age: GaugeF64,
    evictions: Counter,
    store_bytes_estimate: GaugeU64,
    published: Counter,
    publish_rate: GaugeF64,
    mqtt_connected: GaugeU64,
    /// The meters of the last update (a reload may remove some: their series go).
    meters: BTreeSet<String>,
    /// The store's eviction count at the last update.
    evicted_seen: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("plantmeter");
        registry.register(
            "build",
            "Always 1; the version of the running agent",
            Info::new(VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        let m = Metrics {
            registry,
            uptime: GaugeF64::default(),
            polls: Family::default(),
            errors: Family::default(),
            invalid: Family::default(),
            latency: Family::default(),
            up: Family::default(),
            backlog: GaugeU64::default(),
            oldest_unsent_age: GaugeF64::default(),
            evictions: Counter::default(),
            store_bytes_estimate: GaugeU64::default(),
            published: Counter::default(),
            publish_rate: GaugeF64::default(),
            mqtt_connected: GaugeU64::default(),
            meters: BTreeSet::new(),
            evicted_seen: 0,
        };
        let mut m = m;
        let r = &mut m.registry;
        r.register(
            "uptime_seconds",
            "Seconds since the agent started",
            m.uptime.clone(),
        );
        // Counters are registered without `_total`: the encoder appends it.
        r.register("meter_polls", "Polls attempted per meter", m.polls.clone());
        r.register(
            "meter_errors",
            "Failed polls per meter (timeout, disconnect, Modbus exception)",
            m.errors.clone(),
        );
        r.register(
            "meter_invalid_values",
            "Point values refused as implausible per meter (quality invalid: NaN, outside the point's min/max, \
             or beyond any meter's scale)",
            m.invalid.clone(),
        );
        r.register(
            "meter_last_poll_latency_seconds",
            "Duration of the last poll of each meter, in seconds",
            m.latency.clone(),
        );
        r.register(
            "meter_up",
            "1 while the meter's health is ok, 0 while failing",
            m.up.clone(),
        );
        r.register(
            "store_backlog_records",
            "Records in the store not yet acknowledged by the broker",
            m.backlog.clone(),
        );
        r.register(
            "store_oldest_unsent_age_seconds",
            "Age of the oldest unsent record in seconds (0 when the backlog is empty)",
            m.oldest_unsent_age.clone(),
        );
        r.register(
            "store_evictions",
            "Records the store gave up (evicted from a full store, or lost to a failed write; each \
             leaves a seq gap); records a reopen finds on disk after all are not taken off",
            m.evictions.clone(),
        );
        r.register(
            "store_bytes_estimate",
            "Estimated size of the records kept in the store (key + payload + overhead) in bytes, \
             what store_max_mb bounds; not the size of its files on disk",
            m.store_bytes_estimate.clone(),
        );
        r.register(
            "mqtt_published",
            "Data messages acknowledged by the broker",
            m.published.clone(),
        );
        r.register(
            "mqtt_publish_rate_per_second",
            "Acknowledged data messages per second over the recent window",
            m.publish_rate.clone(),
        );
        r.register(
            "mqtt_connected",
            "1 while connected to the broker",
            m.mqtt_connected.clone(),
        );
        m
    }

    /// Bring every metric to `s`. A counter advances to the snapshot's figure and never goes back;
    /// the eviction counter advances by every rise of the store's count (which can fall: see
    /// [`MetricsSnapshot::evicted`]).
    pub fn update(&mut self, s: &MetricsSnapshot) {
        self.uptime.set(s.uptime_seconds);
        let now: BTreeSet<String> = s.meters.iter().map(|m| m.name.clone()).collect();
        for gone in self.meters.difference(&now) {
            let label = MeterLabel {
                meter: gone.clone(),
            };
            self.polls.remove(&label);
            self.errors.remove(&label);
            self.invalid.remove(&label);
            self.latency.remove(&label);
            self.up.remove(&label);
        }
        for m in &s.meters {
            let label = MeterLabel {
                meter: m.name.clone(),
            };
            advance(&self.polls.get_or_create(&label), m.polls_total);
            advance(&self.errors.get_or_create(&label), m.errors_total);
            advance(&self.invalid.get_or_create(&label), m.invalid_values_total);
            match m.last_latency_seconds {
                Some(v) => {
                    self.latency.get_or_create(&label).set(v);
                }
                None => {
                    self.latency.remove(&label);
                }
            }
            self.up.get_or_create(&label).set(u64::from(m.state_ok));
        }
        self.meters = now;
        self.backlog.set(s.backlog);
        self.oldest_unsent_age
            .set(s.oldest_unsent_age_seconds.unwrap_or(0.0));
        if s.evicted > self.evicted_seen {
            self.evictions.inc_by(s.evicted - self.evicted_seen);
        }
        self.evicted_seen = s.evicted;
        self.store_bytes_estimate.set(s.store_bytes_estimate);
        advance(&self.published, s.published_total);
        self.publish_rate.set(s.publish_rate);
        self.mqtt_connected.set(u64::from(s.mqtt_connected));
    }

    /// The text exposition (Prometheus 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        // Writing to a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

/// Advance `counter` to `to` if that is ahead of it (a counter never goes back).
fn advance(counter: &Counter, to: u64) {
    let at = counter.get();
    if to > at {
        counter.inc_by(to - at);
    }
}

/// The exposition of one snapshot, as a fresh agent would show it.
#[cfg(test)]
fn render(s: &MetricsSnapshot) -> String {
    let mut m = Metrics::new();
    m.update(s);
    m.render()
}

/// A bound, not yet serving, metrics listener.
pub struct MetricsServer {
    listener: TcpListener,
}

impl MetricsServer {
    /// Bind the listener (`host:port`; `127.0.0.1:0` picks a free port). Warns when the address is not
    /// loopback, since the endpoint has no authentication.
    pub async fn bind(listen: &str) -> anyhow::Result<MetricsServer> {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("metrics: cannot listen on {listen}"))?;
        if let Ok(addr) = listener.local_addr() {
            if !addr.ip().is_loopback() {
                tracing::warn!(
                    "metrics: /metrics is reachable from the network on {addr} without authentication"
                );
            }
        }
        Ok(MetricsServer { listener })
    }

    /// The address actually bound.
    #[cfg(test)]
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve until `shutdown` completes. `snapshot` is called once per `GET /metrics`.
    pub async fn serve<F>(
        self,
        snapshot: F,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()>
    where
        F: Fn() -> MetricsSnapshot + Send + Sync + 'static,
    {
        let snapshot = Arc::new(snapshot);
        // One set of metrics for the life of the server: its counters only advance.
        let metrics = Arc::new(Mutex::new(Metrics::new()));
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        if let Ok(addr) = self.listener.local_addr() {
            tracing::info!("metrics: serving http://{addr}/metrics");
        }
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                a = self.listener.accept() => a,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off briefly rather than spin.
                    tracing::warn!("metrics: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                tracing::debug!("metrics: too many connections, closing {peer}");
                drop(stream);
                continue;
            };
            let snapshot = Arc::clone(&snapshot);
            let metrics = Arc::clone(&metrics);
            tokio::spawn(async move {
                let _permit = permit;
                let body = move || {
                    let s = snapshot();
                    // A scrape that panicked cannot leave the metrics half-updated in a way that
                    // matters: the next update sets every gauge and advances every counter again.
                    let mut m = metrics.lock().unwrap_or_else(|p| p.into_inner());
                    m.update(&s);
                    m.render()
                };
                let served = tokio::time::timeout(READ_TIMEOUT * 2, handle(stream, body)).await;
                match served {
                    Ok(Err(e)) => tracing::debug!("metrics: {peer}: {e}"),
                    Err(_) => tracing::debug!("metrics: {peer}: timed out"),
                    Ok(Ok(())) => {}
                }
            });
        }
    }
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    MethodNotAllowed,
    NotFound,
    BadRequest,
}

/// Route a complete request head (everything before the blank line).
fn route(head: &[u8]) -> Route {
    let Ok(text) = std::str::from_utf8(head) else {
        return Route::BadRequest;
    };
    let line = text.split("\r\n").next().unwrap_or("");
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if parts.next().is_some() || !version.starts_with("HTTP/1.") {
        return Route::BadRequest;
    }
    let path = target.split('?').next().unwrap_or("");
    if path != "/metrics" {
        Route::NotFound
    } else if method != "GET" {
        Route::MethodNotAllowed
    } else {
        Route::Metrics
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

async fn handle(mut stream: TcpStream, body: impl FnOnce() -> String) -> std::io::Result<()> {
    let mut buf = vec![0u8; MAX_REQUEST_BYTES + 1];
    let mut filled = 0;
    let head_end = loop {
        let n = match tokio::time::timeout(READ_TIMEOUT, stream.read(&mut buf[filled..])).await {
            Ok(r) => r?,
            Err(_) => {
                return respond(&mut stream, "408 Request Timeout", "request timeout\n").await;
            }
        };
        if n == 0 {
            return Ok(()); // the client went away before finishing its request
        }
        filled += n;
        if let Some(end) = find_head_end(&buf[..filled]) {
            break end;
        }
        if filled > MAX_REQUEST_BYTES {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "request too large\n",
            )
            .await;
        }
    };
    match route(&buf[..head_end]) {
        Route::Metrics => {
            let text = body();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n",
                prometheus_text::CONTENT_TYPE,
                text.len()
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(text.as_bytes()).await?;
            stream.shutdown().await
        }
        Route::MethodNotAllowed => {
            respond(&mut stream, "405 Method Not Allowed", "only GET\n").await
        }
        Route::NotFound => respond(&mut stream, "404 Not Found", "not found; try /metrics\n").await,
        Route::BadRequest => respond(&mut stream, "400 Bad Request", "bad request\n").await,
    }
}

async fn respond(stream: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let allow = if status.starts_with("405") {
        "Allow: GET\r\n"
    } else {
        ""
    };
    let msg = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n{allow}Content-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(msg.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn snapshot() -> MetricsSnapshot {
        MetricsSnapshot {
            meters: vec![
                MeterMetrics {
                    name: "main-power".into(),
                    polls_total: 120,
                    errors_total: 3,
                    last_latency_seconds: Some(0.042),
                    state_ok: true,
                    invalid_values_total: 4,
                },
                MeterMetrics {
                    name: "odd\"name\\x\n".into(),
                    polls_total: 5,
                    errors_total: 5,
                    last_latency_seconds: None,
                    state_ok: false,
                    invalid_values_total: 0,
                },
            ],
            backlog: 17,
            oldest_unsent_age_seconds: Some(12.5),
            evicted: 2,
            published_total: 1000,
            publish_rate: 3.25,
            mqtt_connected: true,
            store_bytes_estimate: 65536,
            uptime_seconds: 3600.0,
        }
    }

    #[test]
    fn render_has_help_type_and_values() {
        let text = render(&snapshot());
        assert!(text.contains("# HELP plantmeter_meter_polls_total "));
        assert!(text.contains("# TYPE plantmeter_meter_polls_total counter\n"));
        assert!(text.contains("plantmeter_meter_polls_total{meter=\"main-power\"} 120\n"));
        assert!(text.contains("plantmeter_meter_errors_total{meter=\"main-power\"} 3\n"));
        assert!(text.contains("plantmeter_meter_invalid_values_total{meter=\"main-power\"} 4\n"));
        assert!(text
            .contains("plantmeter_meter_last_poll_latency_seconds{meter=\"main-power\"} 0.042\n"));
        assert!(text.contains("plantmeter_meter_up{meter=\"main-power\"} 1\n"));
        assert!(text.contains("plantmeter_store_backlog_records 17\n"));
        assert!(text.contains("plantmeter_store_oldest_unsent_age_seconds 12.5\n"));
        assert!(text.contains("plantmeter_store_evictions_total 2\n"));
        assert!(text.contains("plantmeter_store_bytes_estimate 65536\n"));
        assert!(!text.contains("size_bytes"), "an estimate is named as one");
        assert!(text.contains("plantmeter_mqtt_published_total 1000\n"));
        assert!(text.contains("plantmeter_mqtt_publish_rate_per_second 3.25\n"));
        assert!(text.contains("plantmeter_mqtt_connected 1\n"));
        assert!(text.contains("plantmeter_uptime_seconds 3600.0\n"));
        assert!(text.contains("# TYPE plantmeter_store_evictions_total counter\n"));
        assert!(text.contains("plantmeter_build_info{version=\""));
        // A meter never polled has no latency sample (absent, not 0).
        assert!(!text.contains("plantmeter_meter_last_poll_latency_seconds{meter=\"odd"));
        // Every sample line has exactly one TYPE line for its family.
        let types = text.lines().filter(|l| l.starts_with("# TYPE")).count();
        let helps = text.lines().filter(|l| l.starts_with("# HELP")).count();
        assert_eq!(types, helps);
        assert_eq!(types, 14);
    }

    #[test]
    fn labels_are_escaped() {
        let text = render(&snapshot());
        assert!(text.contains("plantmeter_meter_up{meter=\"odd\\\"name\\\\x\\n\"} 0\n"));
        // No raw newline inside any label: every line is a comment or `name{...} value` / `name value`.
        for line in text.lines() {
            assert!(
                line.starts_with('#') || line.split(' ').count() == 2,
                "malformed line: {line:?}"
            );
        }
    }

    #[test]
    fn counters_never_go_back() {
        let mut m = Metrics::new();
        let mut s = snapshot();
        s.evicted = 10;
        m.update(&s);
        assert!(m.render().contains("plantmeter_store_evictions_total 10\n"));
        // A reopen finds 4 records counted lost on disk after all: the store's count falls to 6;
        // the counter stays.
        s.evicted = 6;
        m.update(&s);
        assert!(m.render().contains("plantmeter_store_evictions_total 10\n"));
        // Three more evicted: the counter rises by three.
        s.evicted = 9;
        m.update(&s);
        assert!(m.render().contains("plantmeter_store_evictions_total 13\n"));
        // A per-meter counter that came back lower (it cannot in the agent) does not go back either.
        s.meters[0].polls_total = 100;
        m.update(&s);
        assert!(m
            .render()
            .contains("plantmeter_meter_polls_total{meter=\"main-power\"} 120\n"));
    }

    #[test]
    fn a_meter_removed_by_a_reload_loses_its_series() {
        let mut m = Metrics::new();
        let mut s = snapshot();
        m.update(&s);
        assert!(m.render().contains("{meter=\"main-power\"}"));
        s.meters.remove(0);
        m.update(&s);
        let text = m.render();
        assert!(!text.contains("main-power"), "{text}");
        assert!(text.contains("plantmeter_meter_up{meter=\"odd"), "{text}");
    }

    #[test]
    fn routing() {
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\nHost: x"), Route::Metrics);
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0"), Route::Metrics);
        assert_eq!(route(b"POST /metrics HTTP/1.1"), Route::MethodNotAllowed);
        assert_eq!(route(b"GET / HTTP/1.1"), Route::NotFound);
        assert_eq!(route(b"GET /metrics"), Route::BadRequest);
        assert_eq!(route(b"\xff\xfe"), Route::BadRequest);
    }

    /// Start a server on a free loopback port; returns its address and a shutdown trigger.
    async fn start() -> (
        SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let server = MetricsServer::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .serve(snapshot, async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        (addr, tx, task)
    }

    async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        // The server may answer (and close) before reading everything of an oversized request.
        let _ = s.write_all(request).await;
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn serves_metrics_over_http() {
        let (addr, stop, task) = start().await;
        let resp = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
        assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
        assert!(resp.contains("Content-Type: text/plain; version=0.0.4"));
        let (head, body) = resp.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert!(body.contains("plantmeter_meter_polls_total{meter=\"main-power\"} 120\n"));
        assert!(body.contains("plantmeter_store_backlog_records 17\n"));
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn unknown_path_is_404_and_other_methods_405() {
        let (addr, _stop, _task) = start().await;
        let resp = exchange(addr, b"GET /admin HTTP/1.1\r\n\r\n").await;
        assert!(resp.starts_with("HTTP/1.1 404 Not Found\r\n"), "{resp}");
        assert!(!resp.contains("plantmeter_"));
        let resp = exchange(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").await;
        assert!(
            resp.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{resp}"
        );
        assert!(resp.contains("Allow: GET\r\n"));
        let resp = exchange(addr, b"garbage\r\n\r\n").await;
        assert!(resp.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{resp}");
    }

    #[tokio::test]
    async fn oversized_request_is_refused() {
        let (addr, _stop, _task) = start().await;
        let mut req = b"GET /metrics HTTP/1.1\r\nX-Junk: ".to_vec();
        req.extend(std::iter::repeat_n(b'a', MAX_REQUEST_BYTES * 4));
        req.extend_from_slice(b"\r\n\r\n");
        let resp = exchange(addr, &req).await;
        assert!(resp.starts_with("HTTP/1.1 431 "), "{resp}");
        assert!(!resp.contains("plantmeter_"));
    }

    #[tokio::test]
    async fn slow_clients_do_not_block_others() {
        let (addr, _stop, _task) = start().await;
        // Clients that connect and send half a request, then stall, fill all connection slots.
        let mut stalled = Vec::new();
        for _ in 0..MAX_CONNECTIONS + 4 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /metr").await.unwrap();
            stalled.push(s);
        }
        // While they stall, a good scrape is refused (closed) rather than queued forever...
        let started = std::time::Instant::now();
        let resp = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
        assert!(
            resp.is_empty() || resp.starts_with("HTTP/1.1 200"),
            "{resp}"
        );
        assert!(
            started.elapsed() < READ_TIMEOUT,
            "a refused client returns at once"
        );
        // ...and once they drop, scrapes succeed again.
        drop(stalled);
        let mut ok = false;
        for _ in 0..50 {
            let resp = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
            if resp.starts_with("HTTP/1.1 200 OK") {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ok, "server recovered after slow clients went away");
    }

    #[tokio::test]
    async fn bind_error_names_the_address() {
        let first = MetricsServer::bind("127.0.0.1:0").await.unwrap();
        let addr = first.local_addr().unwrap().to_string();
        let err = MetricsServer::bind(&addr).await.err().unwrap();
        assert!(format!("{err:#}").contains(&addr), "{err:#}");
    }
}
