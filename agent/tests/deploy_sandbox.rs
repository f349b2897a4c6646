//! A correct install is silent: the agent started the way the documentation installs it logs no
//! warning. systemd cannot run units here (no systemd as PID 1 in CI containers), so the unit's
//! restrictions that matter to the agent's files are emulated: an unprivileged user (`User=`, here
//! `nobody` through `setpriv`, root only) whose only writable folder is the store
//! (`StateDirectory=plantmeter` under a `/var/lib` it may not write, as `ProtectSystem=strict` leaves
//! it), and `RUST_LOG=info` as the unit sets it. Also a relative `data_dir` with `--config gw.toml`.
#![allow(clippy::unwrap_used)]

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use plantmeter_tests::Proc;
use support::*;

const NOBODY: u32 = 65534;

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The lines of the agent's log at WARN or ERROR.
fn warnings(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_installed_layout_under_the_units_user_starts_without_a_warning() {
    if !is_root() {
        skip(
            "the_installed_layout_under_the_units_user_starts_without_a_warning",
            "switching to an unprivileged user needs root",
        );
        return;
    }
    let sim = sim().await;
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::set_permissions(r, std::fs::Permissions::from_mode(0o755)).unwrap();
    // /var/lib (root's, read-only to the agent) and /var/lib/plantmeter (the StateDirectory, 0750).
    let lib = r.join("var/lib");
    let state = lib.join("plantmeter");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(r.join("var"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::chown(&state, Some(NOBODY), Some(NOBODY)).unwrap();
    let broker = Broker::start(BrokerKind::Rumqttd);
    let cfg = r.join("plantmeter.toml");
    std::fs::write(&cfg, config(&sim, broker.addr, &state, 0.2, 500)).unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let log = r.join("agent.log");

    let sub = Collector::start(broker.addr, PREFIX).await;
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_plantmeter"))
        .args(["run", "--config"])
        .arg(&cfg)
        .current_dir(&state)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
    let agent = Proc::spawn("plantmeter run as nobody", &mut cmd);
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until("10 data messages", Duration::from_secs(60), || {
        sub.data_len() >= 10
    })
    .await;
    let status = agent.sigterm(Duration::from_secs(20));
    assert!(status.success(), "{status}: {}", logged());
    assert_eq!(warnings(&log), Vec::<String>::new(), "{}", logged());
    // The seq floor lives where the unit lets the agent write: inside the store's folder.
    let floor = std::fs::read_to_string(state.join("next-seq")).unwrap();
    assert!(floor.trim().parse::<u64>().unwrap() > 10, "{floor}");
    assert!(!lib.join("plantmeter.next-seq").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_data_dir_with_a_relative_config_path_starts_without_a_warning() {
    let sim = sim().await;
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let broker = Broker::start(BrokerKind::Rumqttd);
    let text = config(&sim, broker.addr, Path::new("data"), 0.2, 500);
    std::fs::write(r.join("gw.toml"), &text).unwrap();

    // `check` names the store as the agent will use it: in the config's folder.
    let out = Command::new(env!("CARGO_BIN_EXE_plantmeter"))
        .args(["check", "--config", "gw.toml"])
        .current_dir(r)
        .output()
        .unwrap();
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{plan}");
    let store_line = plan.lines().find(|l| l.starts_with("store")).unwrap();
    assert!(
        store_line.contains(&r.join("data").display().to_string()),
        "{store_line}"
    );
    assert!(!store_line.contains("working directory"), "{store_line}");

    let log = r.join("agent.log");
    let sub = Collector::start(broker.addr, PREFIX).await;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_plantmeter"));
    cmd.args(["run", "--config", "gw.toml"])
        .current_dir(r)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
    let agent = Proc::spawn("plantmeter run", &mut cmd);
    wait_until("10 data messages", Duration::from_secs(60), || {
        sub.data_len() >= 10
    })
    .await;
    let status = agent.sigterm(Duration::from_secs(20));
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "{status}: {logged}");
    assert_eq!(warnings(&log), Vec::<String>::new(), "{logged}");
    assert!(r.join("data.next-seq").exists(), "{logged}");
}
