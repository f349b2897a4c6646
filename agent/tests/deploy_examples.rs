//! The example configs in deploy/examples/ are what operators copy: `plantmeter check` must accept
//! every one of them and show every meter in the plan.
#![allow(clippy::unwrap_used)] // tests may unwrap: a failure is the assertion

use std::path::{Path, PathBuf};
use std::process::Command;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples")
}

fn examples() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    v
}

/// `name = "..."` values of `[[meter]]` tables, read without a TOML parser so the test checks the
/// binary's output against the file independently of the config code.
fn meter_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_meter = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_meter = t == "[[meter]]";
            continue;
        }
        if in_meter {
            if let Some(rest) = t.strip_prefix("name = \"") {
                names.push(rest.split('"').next().unwrap().to_string());
                in_meter = false;
            }
        }
    }
    names
}

#[test]
fn the_three_documented_examples_exist() {
    let names: Vec<String> = examples()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "power-room.toml",
        "boiler-house.toml",
        "wastewater-outfall.toml",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "missing {want} in {names:?}"
        );
    }
}

#[test]
fn plantmeter_check_accepts_every_example() {
    for path in examples() {
        let out = Command::new(env!("CARGO_BIN_EXE_plantmeter"))
            // The certificates and password files they name live on the gateway, not here.
            .args(["check", "--skip-files", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(0),
            "plantmeter check {} failed:\n{stdout}\n{stderr}",
            path.display()
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let meters = meter_names(&text);
        assert!(meters.len() >= 3, "{}: {meters:?}", path.display());
        for m in meters {
            assert!(
                stdout.contains(&m),
                "{}: plan output does not show meter {m}:\n{stdout}",
                path.display()
            );
        }
    }
}

#[test]
fn examples_keep_secrets_out_of_the_file_and_metrics_on_localhost() {
    for path in examples() {
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines().map(str::trim) {
            assert!(
                !line.starts_with("password ") && !line.starts_with("password="),
                "{}: a password in the config file: {line}",
                path.display()
            );
            if let Some(addr) = line.strip_prefix("listen = \"") {
                assert!(
                    addr.starts_with("127.0.0.1:") || addr.starts_with("[::1]:"),
                    "{}: metrics exposed beyond localhost: {line}",
                    path.display()
                );
            }
        }
    }
}
