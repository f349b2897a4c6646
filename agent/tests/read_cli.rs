//! `plantmeter read`: one meter polled now against the simulator, as a technician runs it.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::{Command, Output};

use support::*;

fn read(cfg: &std::path::Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["read", "--config"])
        .arg(cfg)
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_prints_raw_registers_decoded_values_quality_and_timing_and_stores_nothing() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A broker nobody listens on: `read` publishes nothing.
    let mqtt: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut text_cfg = config(&sim, mqtt, &data, 1.0, 500);
    // A meter whose only point is a register the simulated meter does not have: exception 02.
    text_cfg.push_str(
        "\n[[meter]]\nname = \"probe\"\nunit_id = 1\npoll_interval_s = 1\n  [[meter.point]]\n  name = \"nothing\"\n  register = \"holding\"\n  address = 65000\n  type = \"u16\"\n  unit = \"V\"\n  kind = \"gauge\"\n",
    );
    let cfg = write_config(dir.path(), &text_cfg);

    let out = read(&cfg, &["--meter", "main-power", "--count", "3"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.starts_with("meter main-power (unit 1 on bus"),
        "{stdout}"
    );
    for n in 1..=3 {
        assert!(stdout.contains(&format!("poll {n} of 3 at ")), "{stdout}");
    }
    // A request line: register range, then the raw words in hex and the time taken.
    let req = stdout
        .lines()
        .find(|l| l.starts_with("  holding ") || l.starts_with("  input "))
        .unwrap();
    assert!(req.contains(" ms)"), "{req}");
    let raw = req.split(": ").nth(1).unwrap();
    assert!(raw.split(' ').next().unwrap().len() == 4, "{req}");
    // Point lines: name, address, a number, unit, quality good.
    let good: Vec<&str> = stdout.lines().filter(|l| l.ends_with(" good")).collect();
    assert!(!good.is_empty(), "{stdout}");
    assert!(good.iter().any(|l| l.contains(" kWh ")), "{stdout}");
    assert!(stdout.contains("requests in "), "{stdout}");
    assert!(!data.exists(), "read stored something");

    // An exception reply is an answer: device_error, exit 0.
    let out = read(&cfg, &["--meter", "probe"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("Modbus exception"), "{stdout}");
    let line = stdout.lines().find(|l| l.contains("nothing")).unwrap();
    assert!(
        line.contains("null") && line.ends_with("device_error"),
        "{line}"
    );

    // No such meter: bad input, naming the meters there are.
    let out = read(&cfg, &["--meter", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("no meter nope") && err.contains("main-power"),
        "{err}"
    );

    // Nobody answering: comm_error, exit 1.
    drop(sim);
    let out = read(&cfg, &["--meter", "main-power"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("comm_error") && stdout.contains("NO ANSWER"),
        "{stdout}"
    );
    assert!(text(&out.stderr).contains("1 of 1 polls of meter main-power got no answer"));
}
