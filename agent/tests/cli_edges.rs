//! Commands at their edges: piped into a reader that went away (`plantmeter report ... 2>&1 | head`):
//! no abort (exit 134), no panic message, a quiet exit 1; the instants they echo in the plant's local
//! time; a report period asked far beyond the data refused before memory is spent on it.
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

/// Two days of the water meter (2025-02-01 and 02) imported into the store of `cfg`; the CSV's path.
fn import_two_days(dir: &Path, cfg: &Path) -> std::path::PathBuf {
    let csv = dir.join("water.csv");
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
    let c = cfg.to_str().unwrap();
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
    csv
}

#[test]
fn commands_writing_into_a_closed_pipe_end_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let c = cfg.to_str().unwrap();
    let csv = import_two_days(dir.path(), &cfg);
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

/// `report --from 1970-01-01 --to 2030-01-01` sized its computation by the 60 years asked (234 MB on a
/// plant's store) before finding nothing in them: now refused from the data's extent, before computing.
#[test]
fn a_report_period_far_beyond_the_data_is_refused_before_computing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let c = cfg.to_str().unwrap();
    import_two_days(dir.path(), &cfg);
    let report = |extra: &[&str]| {
        let out = Command::new(BIN)
            .args(["report", "--config", c, "--format", "json"])
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(report(&[]).0, Some(0));
    // serial.toml has no reporting period: --from/--to replace the baseline.
    let (code, err) = report(&["--from", "1970-01-01", "--to", "2030-01-01"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(
            "the baseline period 1970-01-01 .. 2030-01-01 reaches far beyond the readings in"
        ) && err.contains("(2025-02-01 .. 2025-02-09, by whole 8-day blocks)"),
        "{err}"
    );
    // A baseline without a reading: exit 1 naming the store, as before, but before computing.
    let (code, err) = report(&["--from", "2024-01-01", "--to", "2025-01-01"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("holds no reading in the baseline period 2024-01-01 .. 2025-01-01"),
        "{err}"
    );
}
