//! Commands piped into a reader that went away (`plantmeter report ... 2>&1 | head`): no abort
//! (exit 134), no panic message; a quiet exit 1. And the instants they echo are the plant's local time.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_plantmeter");

/// `serial.toml` (audit timezone -03:30) with its store in `dir` and a serial device that exists.
fn config(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../common/tests/configs/serial.toml"),
    )
    .unwrap()
    .replace("/dev/ttyUSB0", "/dev/null")
    .replace(
        "/var/lib/plantmeter",
        &dir.join("data").display().to_string(),
    );
    let p = dir.join("plant.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Runs `args` with stdout and stderr both into a pipe whose reader is already closed.
fn into_closed_pipe(args: &[&str]) -> std::process::ExitStatus {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer.try_clone().unwrap())
        .stderr(writer)
        .status()
        .unwrap()
}

#[test]
fn commands_writing_into_a_closed_pipe_end_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let c = cfg.to_str().unwrap();
    // A few hours of the water meter in the baseline, so that report has something to print.
    let csv = dir.path().join("water.csv");
    let mut rows = String::from("ts,meter,point,value\n");
    for h in 0..48 {
        rows.push_str(&format!(
            "2025-02-{:02} {:02}:00,water,total,{}\n",
            1 + h / 24,
            h % 24,
            100 + h * 3
        ));
    }
    std::fs::write(&csv, rows).unwrap();
    // The summary echoes the first and last instants in the audit's timezone, as they were written.
    let out = Command::new(BIN)
        .args(["import", "--config", c, "--csv", csv.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("from 2025-02-01T00:00:00-03:30 to 2025-02-02T23:00:00-03:30"),
        "{stdout}"
    );

    for args in [
        vec!["check", "--config", c],
        vec!["status", "--config", c],
        vec!["report", "--config", c, "--format", "json"],
        vec!["report", "--config", c, "--format", "csv"],
        vec!["import", "--config", c, "--csv", csv.to_str().unwrap()],
        vec!["--help"],
    ] {
        let status = into_closed_pipe(&args);
        assert!(
            status.code() == Some(1) || status.code() == Some(0),
            "{args:?}: {status}"
        );
    }
}
