//! `plantmeter bench backlog`: the agent's memory while the broker is unreachable and readings
//! pile up in the store, and after a restart on that store.
//!
//! The built-in simulated plant in this process, the agent (`plantmeter run`) as a child process
//! pointed at a broker address nothing listens on. Its resident memory (VmRSS, and the peak,
//! VmHWM) is read from /proc when the backlog `status.json` reports passes each mark, then the
//! agent is stopped, started again on the same store, and measured again.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use plantmeter_common::Clock;

use super::agent::{bench_config, runtime, tempfile_dir, BenchJob};

#[derive(clap::Args)]
pub struct BacklogArgs {
    /// Meters (each polls unit 1 of the simulator, an SDM630, on its own connection).
    #[arg(long, default_value_t = 100)]
    pub meters: usize,
    /// f32 points per meter (at most 10).
    #[arg(long, default_value_t = 10)]
    pub points: usize,
    /// Poll interval, seconds.
    #[arg(long, default_value_t = 0.05)]
    pub interval: f64,
    /// Backlogs (records waiting) at which memory is read.
    #[arg(long, value_delimiter = ',', default_value = "0,25000,50000,100000")]
    pub at: Vec<u64>,
    /// After the restart, how long the agent runs on the backlog before its memory is read again
    /// (seconds).
    #[arg(long, default_value_t = 10)]
    pub after_restart: u64,
    /// Extra environment for the agent, `KEY=VALUE` (e.g. what the systemd unit sets).
    #[arg(long)]
    pub env: Vec<String>,
}

/// Resident and peak resident memory of a process, kB.
fn rss_kb(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

fn start_agent(cfg: &Path, env: &[(String, String)]) -> anyhow::Result<std::process::Child> {
    std::process::Command::new(std::env::current_exe()?)
        .args(["run", "--config"])
        .arg(cfg)
        .env("RUST_LOG", "error")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .spawn()
        .context("cannot start the agent")
}

fn stop_agent(child: &mut std::process::Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// The backlog the agent `pid` last wrote to `status.json` (None: not written by it yet).
fn backlog_of(data: &Path, pid: u32) -> Option<u64> {
    crate::state::read_status_file(data)
        .filter(|s| s.pid == pid && s.running)
        .map(|s| s.store.backlog)
}

/// Wait until `pid` reports a backlog of at least `n` (or `deadline` passes: an error).
fn wait_backlog(
    data: &Path,
    child: &mut std::process::Child,
    n: u64,
    within: Duration,
) -> anyhow::Result<u64> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(b) = backlog_of(data, child.id()).filter(|&b| b >= n) {
            return Ok(b);
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("the agent exited ({status}) before a backlog of {n}");
        }
        if Instant::now() >= deadline {
            anyhow::bail!("no backlog of {n} within {} s", within.as_secs());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

pub fn backlog(a: BacklogArgs) -> anyhow::Result<()> {
    let env: Vec<(String, String)> = a
        .env
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--env {kv}: expected KEY=VALUE"))
        })
        .collect::<anyhow::Result<_>>()?;
    let rt = runtime()?;
    let dir = tempfile_dir("plantmeter-bench-backlog")?;
    let data = dir.join("data");
    let sim = rt.block_on(plantmeter_sim::start(
        plantmeter_sim::Scenario::builtin(),
        plantmeter_sim::SimOptions {
            clock: Clock::wall(),
            ..Default::default()
        },
    ))?;
    // A broker address nothing listens on: connections are refused, the backlog grows.
    let unreachable = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let cfg = dir.join("agent.toml");
    std::fs::write(
        &cfg,
        bench_config(
            &dir,
            sim.addr(),
            unreachable,
            &BenchJob {
                meters: a.meters,
                points: a.points,
                interval: a.interval,
                window: 100,
                max_gap: None,
            },
        ),
    )?;
    let rate = a.meters as f64 / a.interval;
    println!(
        "backlog: {} meters x {} f32 points every {} s ({rate:.0} records/s), broker unreachable{}",
        a.meters,
        a.points,
        a.interval,
        if env.is_empty() {
            String::new()
        } else {
            format!(", agent env {}", a.env.join(" "))
        }
    );
    println!(
        "  {:>16}  {:>9}  {:>9}",
        "records waiting", "RSS MB", "peak MB"
    );
    let mut child = start_agent(&cfg, &env)?;
    let mut last = 0u64;
    let result = (|| -> anyhow::Result<()> {
        for &mark in &a.at {
            let within = Duration::from_secs_f64(60.0 + 3.0 * mark as f64 / rate.max(1.0));
            let backlog = wait_backlog(&data, &mut child, mark.max(1), within)?;
            let (rss, hwm) = rss_kb(child.id())?;
            println!("  {backlog:>16}  {:>9.1}  {:>9.1}", mb(rss), mb(hwm));
            last = backlog;
        }
        stop_agent(&mut child);
        child = start_agent(&cfg, &env)?;
        let backlog = wait_backlog(&data, &mut child, last, Duration::from_secs(120))?;
        let (rss, hwm) = rss_kb(child.id())?;
        println!(
            "  {backlog:>16}  {:>9.1}  {:>9.1}  after a restart on that store",
            mb(rss),
            mb(hwm)
        );
        std::thread::sleep(Duration::from_secs(a.after_restart));
        let backlog = backlog_of(&data, child.id()).unwrap_or(backlog);
        let (rss, hwm) = rss_kb(child.id())?;
        println!(
            "  {backlog:>16}  {:>9.1}  {:>9.1}  {} s later",
            mb(rss),
            mb(hwm),
            a.after_restart
        );
        Ok(())
    })();
    stop_agent(&mut child);
    let _ = std::fs::remove_dir_all(&dir);
    result
}
