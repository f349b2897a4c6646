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

/// `serial.toml` with its serial device one that exists on every machine (`check` looks for it).
fn serial_here(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(configs().join("serial.toml")).unwrap();
    let path = dir.join("serial.toml");
    std::fs::write(&path, text.replace("/dev/ttyUSB0", "/dev/null")).unwrap();
    path
}

#[test]
fn a_valid_config_prints_the_plan_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let path = serial_here(dir.path());
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

const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIBAAAA\n-----END PRIVATE KEY-----\n";

/// A TLS config naming a password file, a CA, a client certificate and key in `dir`, all valid; returns
/// the config's path.
fn tls_setup(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let w = |name: &str, body: &str| std::fs::write(dir.join(name), body).unwrap();
    w("password", "s3cret\n");
    std::fs::set_permissions(dir.join("password"), std::fs::Permissions::from_mode(0o600)).unwrap();
    w("ca.pem", CERT);
    w("gw.crt", CERT);
    w("gw.key", KEY);
    let base = std::fs::read_to_string(serial_here(dir)).unwrap();
    let mqtt = format!(
        "[mqtt]\nurl = \"mqtts://broker.example:8883\"\nusername = \"gw\"\npassword_file = \"{d}/password\"\n\
         ca_file = \"{d}/ca.pem\"\nclient_cert_file = \"{d}/gw.crt\"\nclient_key_file = \"{d}/gw.key\"\n",
        d = dir.display()
    );
    let i = base.find("[mqtt]").unwrap();
    let j = i + base[i..].find("\n[").unwrap() + 1;
    let cfg = dir.join("plant.toml");
    std::fs::write(&cfg, format!("{}{mqtt}{}", &base[..i], &base[j..])).unwrap();
    cfg
}

/// The line and column of `key` in the config, as `check` reports them (at the value).
fn at(cfg: &Path, key: &str) -> String {
    let text = std::fs::read_to_string(cfg).unwrap();
    let (n, _) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.starts_with(&format!("{key} = ")))
        .unwrap();
    format!("{}:{}:{}", cfg.display(), n + 1, key.len() + 4)
}

#[test]
fn check_reads_every_file_the_config_names() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tls_setup(dir.path());
    let c = cfg.to_str().unwrap();
    let out = plantmeter(&["check", "--config", c]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");

    // Each file broken in turn: exit 2, one line naming the key, the file and what is wrong.
    let d = dir.path();
    for (file, body, key, problem) in [
        ("password", None, "password_file", "no such file"),
        (
            "ca.pem",
            Some("garbage\n"),
            "ca_file",
            "no PEM certificate in it",
        ),
        (
            "gw.crt",
            Some(KEY),
            "client_cert_file",
            "no PEM certificate in it",
        ),
        (
            "gw.key",
            Some(CERT),
            "client_key_file",
            "no PEM private key in it",
        ),
    ] {
        let path = d.join(file);
        let saved = std::fs::read(&path).unwrap();
        match body {
            None => std::fs::remove_file(&path).unwrap(),
            Some(b) => std::fs::write(&path, b).unwrap(),
        }
        let out = plantmeter(&["check", "--config", c]);
        assert_eq!(out.status.code(), Some(2), "{file}: {}", text(&out.stdout));
        assert_eq!(text(&out.stdout), "");
        assert_eq!(
            text(&out.stderr),
            format!(
                "{}: mqtt.{key} {}: {problem}{}\n",
                at(&cfg, key),
                path.display(),
                match key {
                    "client_key_file" => " (-----BEGIN PRIVATE KEY-----, RSA or EC)",
                    "password_file" => "",
                    _ => " (-----BEGIN CERTIFICATE-----)",
                }
            )
        );
        std::fs::write(&path, saved).unwrap();
        // `--skip-files` validates the file alone (a config written for another machine).
        let out = plantmeter(&["check", "--skip-files", "--config", c]);
        assert_eq!(out.status.code(), Some(0));
    }
}

#[test]
fn check_warns_about_a_password_file_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let cfg = tls_setup(dir.path());
    let pw = dir.path().join("password");
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = plantmeter(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("is valid"));
    assert_eq!(
        text(&out.stderr),
        format!(
            "{}: warning: mqtt.password_file {} is readable by any user (mode 0644): \
             chmod 640 with the agent's group, or 600 owned by the agent's user\n",
            cfg.display(),
            pw.display()
        )
    );
    // Group read (root:plantmeter 0640, as deploy/README.md sets it up) is fine.
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = plantmeter(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stderr), "");
}

/// `run` refuses what `check` refuses among the files the config names, with exit 2 (bad input), so that
/// systemd's `RestartPreventExitStatus=2` stops restarting an agent that can never connect: a password
/// file missing or a folder, a CA file empty or garbage, a signing key missing.
#[test]
fn run_exits_2_on_every_named_file_that_cannot_serve() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tls_setup(dir.path());
    let d = dir.path();
    let c = cfg.to_str().unwrap();
    type Break<'a> = &'a dyn Fn(&Path);
    let cases: [(&str, Break<'_>, &str); 5] = [
        (
            "password",
            &|p| std::fs::remove_file(p).unwrap(),
            "no such file",
        ),
        (
            "password",
            &|p| {
                std::fs::remove_file(p).unwrap();
                std::fs::create_dir(p).unwrap();
            },
            "is a folder, not a file",
        ),
        (
            "ca.pem",
            &|p| std::fs::write(p, "").unwrap(),
            "no PEM certificate",
        ),
        (
            "ca.pem",
            &|p| std::fs::write(p, [0xffu8, 0, 7, 1].repeat(1000)).unwrap(),
            "no PEM certificate",
        ),
        (
            "report-key.pem",
            &|_| {
                let mut t = std::fs::read_to_string(&cfg).unwrap();
                t.push_str(&format!(
                    "\n[report]\nsign_key_file = \"{}/none.pem\"\n",
                    d.display()
                ));
                std::fs::write(&cfg, t).unwrap();
            },
            "none.pem",
        ),
    ];
    for (file, break_it, problem) in cases {
        let path = d.join(file);
        let saved_cfg = std::fs::read(&cfg).unwrap();
        let saved = std::fs::read(&path).ok();
        break_it(&path);
        for cmd in ["check", "run"] {
            let mut child = Command::new(env!("CARGO_BIN_EXE_plantmeter"))
                .args([cmd, "--config", c])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            let err = text(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{cmd} with {file} broken: {err}"
            );
            assert!(err.contains(problem), "{cmd} with {file} broken: {err}");
        }
        if path.is_dir() {
            std::fs::remove_dir(&path).unwrap();
        }
        if let Some(b) = saved {
            std::fs::write(&path, b).unwrap();
        }
        std::fs::write(&cfg, saved_cfg).unwrap();
    }
}

/// A huge value in the config is echoed by its start, its end and its length, not whole (it was
/// 100 MB of output for a 100 MB value).
#[test]
fn a_huge_bad_value_is_echoed_cut_with_its_length() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(configs().join("serial.toml")).unwrap();
    for (key, value) in [
        ("id", "é".repeat(1_000_000)),
        ("site", "s".repeat(2_000_000)),
    ] {
        let i = base.find(&format!("\n{key} = \"")).unwrap() + key.len() + 5;
        let cfg = dir.path().join(format!("{key}.toml"));
        std::fs::write(&cfg, format!("{}{value}{}", &base[..i], &base[i..])).unwrap();
        let out = plantmeter(&["check", "--skip-files", "--config", cfg.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{key}");
        let err = text(&out.stderr);
        assert!(err.len() < 1_000, "{key}: {} bytes echoed", err.len());
        assert!(err.contains("bytes in all"), "{key}: {err}");
        assert!(
            err.contains(&format!("{key} ")) || err.contains(&format!("gateway {key}")),
            "{err}"
        );
    }
}

/// The wiring mistakes a technician makes, caught by `check` at their key: a unit id twice on one bus,
/// a serial device that is not there, a register address in the manuals' 1-based 4xxxx notation.
#[test]
fn check_catches_wiring_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(serial_here(dir.path())).unwrap();
    let cfg = dir.path().join("plant.toml");
    let check = |config: &str, skip_files: bool| {
        std::fs::write(&cfg, config).unwrap();
        let mut args = vec!["check", "--config", cfg.to_str().unwrap()];
        if skip_files {
            args.insert(1, "--skip-files");
        }
        let out = plantmeter(&args);
        (out.status.code(), text(&out.stderr))
    };
    assert_eq!(check(&good, false), (Some(0), String::new()));
    let line_of =
        |text: &str, needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;

    // A second meter on unit 247 of the bus that has one there already.
    let second = "\n[[meter]]\nname = \"twin\"\nbus = \"converter\"\nunit_id = 247\npoll_interval_s = 60\n  [[meter.point]]\n  name = \"level\"\n  register = \"holding\"\n  address = 0\n  type = \"u16\"\n  unit = \"m\"\n  kind = \"gauge\"\n";
    let text = format!("{good}{second}");
    let (code, err) = check(&text, false);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.starts_with(&format!("{}:{}:", cfg.display(), text.lines().count() - 8)),
        "{err}"
    );
    assert!(
        err.contains("meter twin: unit_id 247 is also meter water's"),
        "{err}"
    );
    assert!(err.contains("on bus converter"), "{err}");

    // A serial device that does not exist (`--skip-files`: a config for another machine, not checked).
    let text = good.replace("/dev/null", "/dev/ttyUSB9-not-here");
    let (code, err) = check(&text, false);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(
        err,
        format!(
            "{}:{}:10: bus rs485-1: serial device /dev/ttyUSB9-not-here does not exist on this machine (a USB adapter unplugged, or another name: ls /dev/ttyUSB* /dev/ttyS* /dev/ttyAMA* /dev/serial/by-id/)\n",
            cfg.display(),
            line_of(&text, "device =")
        )
    );
    assert_eq!(check(&text, true).0, Some(0));

    // 40001: holding register 0 in the manuals' notation.
    let text = good.replacen("  address = 100\n", "  address = 40101\n", 1);
    let (code, err) = check(&text, true);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("address 40101 looks like the manuals' 1-based notation: did you mean address 100 of the holding registers?"),
        "{err}"
    );
    assert!(
        err.starts_with(&format!(
            "{}:{}:",
            cfg.display(),
            line_of(&text, "address = 40101")
        )),
        "{err}"
    );
}
