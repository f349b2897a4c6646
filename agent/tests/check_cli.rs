//! `plantmeter check` as a user runs it: the real binary, its exit codes, stdout and stderr.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn plantmeter(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_plantmeter"))
        .args(args)
        .output()
        .unwrap()
}

fn configs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../common/tests/configs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_valid_config_prints_the_plan_and_exits_0() {
    let path = configs().join("serial.toml");
    let out = plantmeter(&["check", "--config", path.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert!(stdout.contains("is valid"), "{stdout}");
    assert!(
        stdout
            .contains("    fc03 holding  start 0x0064 (100)   count    5  -> volume, temperature"),
        "{stdout}"
    );
    assert!(
        stdout.contains("total     2 buses, 2 meters, 4 points, 3 requests per poll cycle"),
        "{stdout}"
    );
    assert!(
        stdout
            .contains("    boiler-gas.volume  natural_gas     1.2143 kgce/m3      2.1622 kgCO2/m3"),
        "{stdout}"
    );
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn errors_go_to_stderr_one_per_line_with_exit_2() {
    let path = configs().join("many_errors.toml");
    let out = plantmeter(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out.stdout), "");
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 14, "{stderr}");
    let prefix = format!("{}:", path.display());
    for line in &lines {
        assert!(line.starts_with(&prefix), "{line}");
    }
    assert_eq!(
        lines[0],
        format!(
            "{}:3:6: gateway id \"gw 01\" must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -",
            path.display()
        )
    );
    assert_eq!(
        lines[4],
        format!(
            "{}:19:7: unknown bus \"line-9\"; did you mean \"line-1\"?",
            path.display()
        )
    );
}

#[test]
fn a_missing_file_exits_2_naming_it() {
    let out = plantmeter(&["check", "--config", "/nonexistent/plantmeter.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "/nonexistent/plantmeter.toml:1:1: cannot read the config file: no such file\n"
    );
}

#[test]
fn a_syntax_error_exits_2_with_its_position() {
    let dir = std::env::temp_dir().join(format!("pm-check-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("broken.toml");
    std::fs::write(&path, "[gateway]\nid = \"gw-01\"\nsite = plant\n").unwrap();
    let out = plantmeter(&["check", "--config", path.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!(
            "{}:3:8: TOML syntax error: string values must be quoted, expected literal string\n",
            path.display()
        )
    );
}

#[test]
fn check_without_config_is_a_usage_error() {
    let out = plantmeter(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--config"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn help_and_version_exit_0() {
    let out = plantmeter(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for cmd in ["run", "check", "demo", "import", "report", "status"] {
        assert!(help.contains(cmd), "{help}");
    }
    let out = plantmeter(&["check", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("--config"));

    let out = plantmeter(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        format!("plantmeter {}\n", env!("CARGO_PKG_VERSION"))
    );
}
