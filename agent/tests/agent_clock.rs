//! The system clock as a gateway without a battery clock meets it: while it reads earlier than the
//! agent's build date nothing is polled, and the log, `plantmeter status`, `status.json` and
//! `P/status` say so; once it is set, polling starts by itself. The build date is moved with the
//! test-only `PLANTMETER_TEST_BUILD_DATE` (the system clock of the test machine cannot be).
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

/// The agent on the system clock (no virtual clock), with the build date overridden.
fn start_on_wall_clock(config: &Path, build_date: &str, log: &Path) -> Agent {
    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .env("PLANTMETER_TEST_BUILD_DATE", build_date)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    Agent { child }
}

fn requests_to_meters(sim: &plantmeter_sim::SimHandle) -> u64 {
    sim.sim()
        .meters
        .iter()
        .map(|m| sim.stats(&m.name).unwrap().requests)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_before_the_build_date_stops_polling_and_says_so() {
    let sim = sim().await;
    let broker = Broker::start(BrokerKind::Rumqttd);
    let sub = Collector::start(broker.addr, PREFIX).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = write_config(dir.path(), &config(&sim, broker.addr, &data, 0.2, 300));
    let log = dir.path().join("agent.log");
    // Built "in 2999": today's system clock is not set yet, as far as the agent can tell.
    let agent = start_on_wall_clock(&cfg, "2999-01-01T00:00:00Z", &log);

    wait_until(
        "P/status online with clock unset",
        Duration::from_secs(15),
        || {
            sub.last_at("status")
                .is_some_and(|s| s["state"] == "online" && s["clock"] == "unset")
        },
    )
    .await;
    // Ten poll intervals of 0.2 s at least (the status file is rewritten every 2 s while unsteady).
    wait_until(
        "status.json after 2 s of running",
        Duration::from_secs(15),
        || {
            std::fs::read(data.join("status.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some_and(|s| {
                    s["clock"] == "unset"
                        && s["updated_ms"].as_i64().unwrap_or(0)
                            - s["started_ms"].as_i64().unwrap_or(0)
                            >= 2_000
                })
        },
    )
    .await;
    let out = Command::new(BIN)
        .args(["status", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("clock     UNSET"), "{text}");

    assert_eq!(
        sub.data_len(),
        0,
        "readings published while the clock is unset"
    );
    assert_eq!(
        requests_to_meters(&sim),
        0,
        "meters polled while the clock is unset"
    );
    assert!(agent.sigterm(Duration::from_secs(8)).success());
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("earlier than this agent's build date")
            && log.contains("2999-01-01T00:00:00.000Z"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_starts_by_itself_once_the_clock_is_set() {
    let sim = sim().await;
    let broker = Broker::start(BrokerKind::Rumqttd);
    let sub = Collector::start(broker.addr, PREFIX).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = write_config(dir.path(), &config(&sim, broker.addr, &data, 0.2, 300));
    let log = dir.path().join("agent.log");
    // The clock counts as set 3 s after the agent starts.
    let before = plantmeter_common::clock::system_ms();
    let agent = start_on_wall_clock(&cfg, "+3s", &log);

    wait_until(
        "readings once the clock is set",
        Duration::from_secs(20),
        || sub.data_len() >= 5,
    )
    .await;
    wait_until("P/status clock ok", Duration::from_secs(10), || {
        sub.last_at("status").is_some_and(|s| s["clock"] == "ok")
    })
    .await;
    assert!(agent.sigterm(Duration::from_secs(8)).success());
    // Every reading was taken after the "build date", on the system clock.
    let set_at = before + 3_000;
    for (seq, p) in &sub.seqs() {
        let v: serde_json::Value = serde_json::from_slice(p).unwrap();
        let ts = plantmeter_common::model::parse_ts_ms(v["ts"].as_str().unwrap()).unwrap();
        assert!(
            ts >= set_at,
            "seq {seq} stamped {} ms before the clock was set",
            set_at - ts
        );
    }
    let log = std::fs::read_to_string(&log).unwrap();
    let unset = log
        .find("earlier than this agent's build date")
        .expect(&log);
    let set = log
        .find("the system clock is set: polling starts")
        .expect(&log);
    assert!(unset < set, "{log}");
}

/// libfaketime's preload library, if installed (Debian: `libfaketime`).
fn libfaketime() -> Option<std::path::PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
        "/usr/local/lib/faketime/libfaketime.so.1",
    ]
    .iter()
    .map(std::path::PathBuf::from)
    .find(|p| p.is_file())
}

/// The agent on a system clock faked by libfaketime: the offset (or `@instant`) is read from
/// `offset` at every call, the monotonic clock is left alone.
fn start_faked(faketime: &Path, offset: &Path, config: &Path, log: &Path) -> Agent {
    Agent {
        child: Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .env("LD_PRELOAD", faketime)
            .env("FAKETIME_TIMESTAMP_FILE", offset)
            .env("FAKETIME_NO_CACHE", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    }
}

/// A gateway without a battery clock boots in 2000 (libfaketime), with the real build date:
/// nothing is polled and `P/status` says `"clock":"unset"`; NTP sets the clock: polling starts by
/// itself and every reading carries the true time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_booting_in_2000_polls_only_once_its_clock_is_set() {
    let Some(faketime) = libfaketime() else {
        skip(
            "a_gateway_booting_in_2000_polls_only_once_its_clock_is_set",
            "libfaketime is not installed (.ci/run installs it)",
        );
        return;
    };
    let sim = sim().await;
    let broker = Broker::start(BrokerKind::Rumqttd);
    let sub = Collector::start(broker.addr, PREFIX).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = write_config(dir.path(), &config(&sim, broker.addr, &data, 0.2, 300));
    let log = dir.path().join("agent.log");
    let offset = dir.path().join("faketime");
    std::fs::write(&offset, "@2000-01-01 00:00:00\n").unwrap();
    let agent = start_faked(&faketime, &offset, &cfg, &log);

    wait_until("P/status clock unset", Duration::from_secs(15), || {
        sub.last_at("status").is_some_and(|s| s["clock"] == "unset")
    })
    .await;
    wait_until(
        "the unset clock in the log",
        Duration::from_secs(10),
        || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("earlier than this agent's build date")
        },
    )
    .await;
    assert_eq!(sub.data_len(), 0, "readings published with a clock in 2000");
    assert_eq!(requests_to_meters(&sim), 0);

    // NTP sets the clock.
    std::fs::write(&offset, "+0\n").unwrap();
    wait_until(
        "readings once the clock is set",
        Duration::from_secs(20),
        || sub.data_len() >= 5,
    )
    .await;
    wait_until("P/status clock ok", Duration::from_secs(10), || {
        sub.last_at("status").is_some_and(|s| s["clock"] == "ok")
    })
    .await;
    assert!(agent.sigterm(Duration::from_secs(8)).success());
    let t = plantmeter_common::clock::system_ms();
    for ts in stamps(&sub) {
        assert!(
            (t - ts).abs() < 120_000,
            "a reading stamped {ts}, now is {t}"
        );
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("the system clock is set: polling starts"),
        "{text}"
    );
}

fn stamps(sub: &Collector) -> Vec<i64> {
    sub.seqs()
        .iter()
        .map(|(_, p)| {
            let v: serde_json::Value = serde_json::from_slice(p).unwrap();
            plantmeter_common::model::parse_ts_ms(v["ts"].as_str().unwrap()).unwrap()
        })
        .collect()
}

/// The agent's system clock is stepped (libfaketime, the offset re-read from a file at every
/// call; the monotonic clock left alone) 3 h forward, then to 1 h behind: the next readings carry
/// the new time each time, polling goes on (no hour-long sleep after the step back), and the log
/// names both steps with their size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_follow_a_step_of_the_system_clock_and_the_step_is_logged() {
    let Some(faketime) = libfaketime() else {
        skip(
            "readings_follow_a_step_of_the_system_clock_and_the_step_is_logged",
            "libfaketime is not installed (.ci/run installs it)",
        );
        return;
    };
    let sim = sim().await;
    let broker = Broker::start(BrokerKind::Rumqttd);
    let sub = Collector::start(broker.addr, PREFIX).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = write_config(dir.path(), &config(&sim, broker.addr, &data, 0.5, 300));
    let log = dir.path().join("agent.log");
    let offset = dir.path().join("faketime");
    std::fs::write(&offset, "+0\n").unwrap();
    let agent = start_faked(&faketime, &offset, &cfg, &log);
    let hour = 3_600_000;
    let now = plantmeter_common::clock::system_ms;

    wait_until("readings on the true time", Duration::from_secs(20), || {
        sub.data_len() >= 5
    })
    .await;
    let t = now();
    assert!(stamps(&sub).iter().all(|ts| (ts - t).abs() < 60_000));

    std::fs::write(&offset, "+3h\n").unwrap();
    wait_until("readings 3 h ahead", Duration::from_secs(20), || {
        stamps(&sub)
            .iter()
            .filter(|&&ts| ts > now() + 3 * hour - 60_000)
            .count()
            >= 5
    })
    .await;

    std::fs::write(&offset, "-1h\n").unwrap();
    wait_until("readings 1 h behind", Duration::from_secs(20), || {
        stamps(&sub)
            .iter()
            .filter(|&&ts| ts < now() - hour + 60_000)
            .count()
            >= 5
    })
    .await;
    assert!(agent.sigterm(Duration::from_secs(8)).success());
    let text = std::fs::read_to_string(&log).unwrap();
    let steps: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("the system clock was stepped"))
        .collect();
    assert!(
        steps
            .iter()
            .any(|l| l.contains("+2h 59m") || l.contains("+3h 0m")),
        "{text}"
    );
    assert!(
        steps
            .iter()
            .any(|l| l.contains("-4h 0m") || l.contains("-3h 59m")),
        "{text}"
    );
}
