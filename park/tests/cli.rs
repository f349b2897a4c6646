//! `plantmeter-park` as a user runs it: config errors, and outages at start-up survived.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

#[test]
fn check_reports_every_error_at_its_place_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let good = park_config(
        dir.path(),
        "postgres://u@127.0.0.1:5432/p",
        "mqtt://127.0.0.1:1883",
        &[("sunrise", &["plant-a/gw-01"])],
    );
    let out = Command::new(PARK)
        .args(["check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(&good)
        .unwrap()
        .replace("share_group", "share_grp");
    std::fs::write(&bad, text).unwrap();
    let out = Command::new(PARK)
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!("{}:9:1: ", bad.display())),
        "{err}"
    );
    assert!(err.contains("share_grp"), "{err}");

    let text = std::fs::read_to_string(&good)
        .unwrap()
        .replace("\"plant-a/gw-01\"", "\"gw-01\"")
        .replace("name = \"Test Park\"", "name = \"\"");
    std::fs::write(&bad, text).unwrap();
    let out = Command::new(PARK)
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(
        err.lines().next().unwrap().contains(":2:8: [park] name"),
        "{err}"
    );
    assert!(
        err.lines()
            .nth(1)
            .unwrap()
            .contains("\"gw-01\" is not \"site/id\""),
        "{err}"
    );

    let out = Command::new(PARK)
        .args(["run", "--config"])
        .arg(dir.path().join("none.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn run_survives_a_missing_database_and_broker_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on these ports.
    let cfg = park_config(
        dir.path(),
        &format!("postgres://u@127.0.0.1:{}/p", free_port()),
        &format!("mqtt://127.0.0.1:{}", free_port()),
        &[],
    );
    let mut child = Command::new(PARK)
        .args(["run", "--instance", "t", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut db, mut broker) = (false, false);
    while !(db && broker) {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("both outages logged");
        db |= line.contains("database unreachable");
        broker |= line.contains("broker unreachable");
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "plantmeter-park exited during an outage"
    );
    let proc = Proc {
        child,
        what: "plantmeter-park run".into(),
    };
    let st = proc.sigterm(Duration::from_secs(10));
    assert_eq!(st.code(), Some(0));
}

#[test]
fn status_without_a_database_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = park_config(
        dir.path(),
        &format!("postgres://u@127.0.0.1:{port}/p"),
        "mqtt://127.0.0.1:1883",
        &[],
    );
    let out = Command::new(PARK)
        .args(["status", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("127.0.0.1:{port}/p")), "{err}");
}
