//! Opt-in Prometheus endpoint: `GET /metrics` in the text exposition format (version 0.0.4).
//!
//! Only started when the config has `[metrics] listen = "127.0.0.1:9898"` (`Plan::metrics_listen`);
//! without it the agent opens no listening port at all. A tiny hand-written HTTP/1.1 server, so the
//! release binary carries no HTTP stack: GET only, one request per connection (`Connection: close`),
//! request head at most [`MAX_REQUEST_BYTES`], read within [`READ_TIMEOUT`], at most
//! [`MAX_CONNECTIONS`] at once (more are closed at once). A slow or malicious client therefore costs
//! one small task for a few seconds and never blocks polling or publishing.
//!
//! How `run` uses it (for the agent-core engineer):
//! ```ignore
//! if let Some(listen) = &plan.metrics_listen {
//!     let server = metrics::MetricsServer::bind(listen).await?;   // error names the address
//!     let shared = shared_state.clone();                          // whatever run keeps its counters in
//!     tokio::spawn(server.serve(move || shared.metrics_snapshot(), shutdown_signal()));
//! }
//! ```
//! The snapshot closure is called once per scrape, on the runtime: keep it cheap (copy counters; no
//! store scan). Metric names and types are listed in [`render`].
// Items are wired into `run` by the agent-core issue; until then only the tests use some of them.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
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
}

/// Everything `/metrics` shows, taken at the moment of the scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    pub meters: Vec<MeterMetrics>,
    /// Records in the store not yet acknowledged by the broker.
    pub backlog: u64,
    /// Age of the oldest unsent record, in seconds (wall time); None when the backlog is empty.
    pub oldest_unsent_age_seconds: Option<f64>,
    /// Records evicted from a full store since start (each one is a `seq` gap).
    pub evictions_total: u64,
    /// Data messages acknowledged by the broker since start.
    pub published_total: u64,
    /// Acknowledged data messages per second, over the agent's recent window.
    pub publish_rate: f64,
    /// True while connected to the broker.
    pub mqtt_connected: bool,
    /// Size of the store on disk, in bytes.
    pub store_bytes: u64,
    /// Time since the agent started, in seconds.
    pub uptime_seconds: f64,
}

/// Escape a label value: backslash, double quote and newline, per the exposition format.
fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A sample value as Prometheus reads it (`NaN`, `+Inf`, `-Inf` spelled out).
fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, v: f64) {
    let _ = writeln!(out, "{name} {}", fmt_value(v));
}

/// One per-meter metric family: name, type, help, and the sample of a meter (None: no sample).
type MeterFamily = (
    &'static str,
    &'static str,
    &'static str,
    fn(&MeterMetrics) -> Option<f64>,
);

/// The text exposition of a snapshot. Metrics (all prefixed `plantmeter_`):
/// `build_info{version}`, `uptime_seconds`, `meter_polls_total{meter}`, `meter_errors_total{meter}`,
/// `meter_last_poll_latency_seconds{meter}`, `meter_up{meter}` (1 ok, 0 failing),
/// `store_backlog_records`, `store_oldest_unsent_age_seconds`, `store_evictions_total`,
/// `store_size_bytes`, `mqtt_published_total`, `mqtt_publish_rate_per_second`, `mqtt_connected`.
pub fn render(s: &MetricsSnapshot) -> String {
    let mut out = String::with_capacity(1024 + 400 * s.meters.len());
    header(
        &mut out,
        "plantmeter_build_info",
        "gauge",
        "Always 1; the version of the running agent.",
    );
    let _ = writeln!(
        out,
        "plantmeter_build_info{{version=\"{}\"}} 1",
        escape_label(env!("CARGO_PKG_VERSION"))
    );
    header(
        &mut out,
        "plantmeter_uptime_seconds",
        "gauge",
        "Seconds since the agent started.",
    );
    sample(&mut out, "plantmeter_uptime_seconds", s.uptime_seconds);

    let per_meter: [MeterFamily; 4] = [
        (
            "plantmeter_meter_polls_total",
            "counter",
            "Polls attempted per meter.",
            |m| Some(m.polls_total as f64),
        ),
        (
            "plantmeter_meter_errors_total",
            "counter",
            "Failed polls per meter (timeout, disconnect, Modbus exception).",
            |m| Some(m.errors_total as f64),
        ),
        (
            "plantmeter_meter_last_poll_latency_seconds",
            "gauge",
            "Duration of the last poll of each meter, in seconds.",
            |m| m.last_latency_seconds,
        ),
        (
            "plantmeter_meter_up",
            "gauge",
            "1 while the meter's health is ok, 0 while failing.",
            |m| Some(if m.state_ok { 1.0 } else { 0.0 }),
        ),
    ];
    for (name, kind, help, get) in per_meter {
        header(&mut out, name, kind, help);
        for m in &s.meters {
            if let Some(v) = get(m) {
                let _ = writeln!(
                    out,
                    "{name}{{meter=\"{}\"}} {}",
                    escape_label(&m.name),
                    fmt_value(v)
                );
            }
        }
    }

    header(
        &mut out,
        "plantmeter_store_backlog_records",
        "gauge",
        "Records in the store not yet acknowledged by the broker.",
    );
    sample(
        &mut out,
        "plantmeter_store_backlog_records",
        s.backlog as f64,
    );
    header(
        &mut out,
        "plantmeter_store_oldest_unsent_age_seconds",
        "gauge",
        "Age of the oldest unsent record in seconds (0 when the backlog is empty).",
    );
    sample(
        &mut out,
        "plantmeter_store_oldest_unsent_age_seconds",
        s.oldest_unsent_age_seconds.unwrap_or(0.0),
    );
    header(
        &mut out,
        "plantmeter_store_evictions_total",
        "counter",
        "Unsent records evicted from the full store (each leaves a seq gap).",
    );
    sample(
        &mut out,
        "plantmeter_store_evictions_total",
        s.evictions_total as f64,
    );
    header(
        &mut out,
        "plantmeter_store_size_bytes",
        "gauge",
        "Size of the store on disk in bytes.",
    );
    sample(
        &mut out,
        "plantmeter_store_size_bytes",
        s.store_bytes as f64,
    );
    header(
        &mut out,
        "plantmeter_mqtt_published_total",
        "counter",
        "Data messages acknowledged by the broker.",
    );
    sample(
        &mut out,
        "plantmeter_mqtt_published_total",
        s.published_total as f64,
    );
    header(
        &mut out,
        "plantmeter_mqtt_publish_rate_per_second",
        "gauge",
        "Acknowledged data messages per second over the recent window.",
    );
    sample(
        &mut out,
        "plantmeter_mqtt_publish_rate_per_second",
        s.publish_rate,
    );
    header(
        &mut out,
        "plantmeter_mqtt_connected",
        "gauge",
        "1 while connected to the broker.",
    );
    sample(
        &mut out,
        "plantmeter_mqtt_connected",
        if s.mqtt_connected { 1.0 } else { 0.0 },
    );
    out
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
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
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
            tokio::spawn(async move {
                let _permit = permit;
                let served = tokio::time::timeout(
                    READ_TIMEOUT * 2,
                    handle(stream, move || render(&snapshot())),
                )
                .await;
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
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
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

    fn snapshot() -> MetricsSnapshot {
        MetricsSnapshot {
            meters: vec![
                MeterMetrics {
                    name: "main-power".into(),
                    polls_total: 120,
                    errors_total: 3,
                    last_latency_seconds: Some(0.042),
                    state_ok: true,
                },
                MeterMetrics {
                    name: "odd\"name\\x\n".into(),
                    polls_total: 5,
                    errors_total: 5,
                    last_latency_seconds: None,
                    state_ok: false,
                },
            ],
            backlog: 17,
            oldest_unsent_age_seconds: Some(12.5),
            evictions_total: 2,
            published_total: 1000,
            publish_rate: 3.25,
            mqtt_connected: true,
            store_bytes: 65536,
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
        assert!(text
            .contains("plantmeter_meter_last_poll_latency_seconds{meter=\"main-power\"} 0.042\n"));
        assert!(text.contains("plantmeter_meter_up{meter=\"main-power\"} 1\n"));
        assert!(text.contains("plantmeter_store_backlog_records 17\n"));
        assert!(text.contains("plantmeter_store_oldest_unsent_age_seconds 12.5\n"));
        assert!(text.contains("plantmeter_store_evictions_total 2\n"));
        assert!(text.contains("plantmeter_store_size_bytes 65536\n"));
        assert!(text.contains("plantmeter_mqtt_published_total 1000\n"));
        assert!(text.contains("plantmeter_mqtt_publish_rate_per_second 3.25\n"));
        assert!(text.contains("plantmeter_mqtt_connected 1\n"));
        assert!(text.contains("plantmeter_uptime_seconds 3600\n"));
        // A meter never polled has no latency sample (absent, not 0).
        assert!(!text.contains("plantmeter_meter_last_poll_latency_seconds{meter=\"odd"));
        // Every sample line has exactly one TYPE line for its family.
        let types = text.lines().filter(|l| l.starts_with("# TYPE")).count();
        let helps = text.lines().filter(|l| l.starts_with("# HELP")).count();
        assert_eq!(types, helps);
        assert_eq!(types, 13);
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
    fn special_float_values() {
        assert_eq!(fmt_value(f64::NAN), "NaN");
        assert_eq!(fmt_value(f64::INFINITY), "+Inf");
        assert_eq!(fmt_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(fmt_value(1e-3), "0.001");
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
