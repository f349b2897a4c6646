//! `plantmeter bench killloop`: the agent SIGKILLed at random moments and restarted, many times,
//! while it polls the simulated plant and a subscriber listens throughout; then what a platform and
//! an auditor would check.
//!
//! - The built-in plant on a virtual clock, so that one simulated day (the audit's baseline period)
//!   passes during the loop, polled every `--poll-s` real seconds.
//! - Two agents on the same plant and clock: one SIGKILLed `--cycles` times (each run lasts a random
//!   time, then SIGKILL, then a restart at once), one left alone (the uninterrupted run). Both stop
//!   with SIGTERM after the simulated day is over.
//! - The broker: the embedded rumqttd, in this process, or a stock mosquitto (`--mosquitto`).
//! - Checked: every seq of the killed agent's store received by the demo's subscriber, duplicates
//!   byte-identical; its audit totals (`plantmeter report --format json` over the day) against (a)
//!   a replay of exactly the readings it delivered into a fresh audit engine (equal if a crash never
//!   loses or doubles an audit update), and (b) the uninterrupted agent's (its own poll instants:
//!   equal up to how the counters are interpolated at the day's edges).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::NaiveDate;
use plantmeter_common::{Clock, DataMessage};
use plantmeter_sim::scenario::local_midnight_ms;
use plantmeter_sim::{AgentConfigOptions, Scenario, SimOptions};

use super::agent::tempfile_dir;
use super::mosquitto::Mosquitto;
use crate::demo::subscriber::Subscriber;

#[derive(clap::Args)]
pub struct KillLoopArgs {
    /// SIGKILL-and-restart cycles.
    #[arg(long, default_value_t = 100)]
    pub cycles: u32,
    /// Poll interval of every meter, real seconds.
    #[arg(long, default_value_t = 0.2)]
    pub poll_s: f64,
    /// Longest run of the agent between two kills, real seconds (each run: uniformly random, from 50 ms).
    #[arg(long, default_value_t = 1.2)]
    pub max_up_s: f64,
    /// Use a stock mosquitto started here (Debian package mosquitto) instead of the embedded broker.
    #[arg(long)]
    pub mosquitto: bool,
    /// Seed of the kill moments (default: from the clock; printed either way).
    #[arg(long)]
    pub seed: Option<u64>,
}

const HOUR_MS: i64 = 3_600_000;
/// Real time between starting the agents and the start of the virtual clock.
const CLOCK_LEAD: Duration = Duration::from_millis(1500);
/// What a restart of the agent costs, real seconds (for the clock speed; measured ~0.1 s).
const RESTART_S: f64 = 0.15;

/// A child process killed (SIGKILL) and reaped when dropped.
struct Agent {
    child: Child,
}

impl Agent {
    fn start(
        exe: &Path,
        config: &Path,
        clock_args: &[String],
        log: &Path,
    ) -> anyhow::Result<Agent> {
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open {}", log.display()))?;
        let child = Command::new(exe)
            .arg("run")
            .arg("--config")
            .arg(config)
            .args(clock_args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {} run", exe.display()))?;
        Ok(Agent { child })
    }

    fn sigkill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and wait up to 20 s for the exit (then SIGKILL).
    fn sigterm(mut self) -> anyhow::Result<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                anyhow::bail!("the agent (pid {pid}) did not exit within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// xorshift64*: random kill moments without a dependency; the seed is printed to repeat a run.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The figures of a report the bench compares.
#[derive(Debug, Clone, PartialEq)]
struct Totals {
    energy_kgce: f64,
    electricity_kwh: f64,
    completeness: f64,
}

impl Totals {
    /// The same totals, up to floating-point summation order (the agent persists its hours in
    /// several merges, a replay in one): within 1e-9 relative. A lost or doubled poll moves a
    /// total by far more (a poll of the loop spans minutes of the simulated day).
    fn same(&self, other: &Totals) -> bool {
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * x.abs().max(y.abs());
        close(self.energy_kgce, other.energy_kgce)
            && close(self.electricity_kwh, other.electricity_kwh)
            && close(self.completeness, other.completeness)
    }

    fn from_json(v: &serde_json::Value) -> anyhow::Result<Totals> {
        let total = |k: &str| {
            v["indicators"][k]["baseline"]["total"]
                .as_f64()
                .with_context(|| format!("the report has no baseline total for {k}"))
        };
        Ok(Totals {
            energy_kgce: total("energy")?,
            electricity_kwh: total("electricity")?,
            completeness: v["periods"]["baseline"]["completeness"]
                .as_f64()
                .unwrap_or(f64::NAN),
        })
    }
}

pub fn killloop(a: KillLoopArgs) -> anyhow::Result<()> {
    if a.cycles == 0 || !(a.poll_s.is_finite() && a.poll_s >= 0.01) {
        anyhow::bail!("--cycles must be at least 1 and --poll-s at least 0.01");
    }
    if !(a.max_up_s.is_finite() && a.max_up_s >= 0.1) {
        anyhow::bail!("--max-up-s must be at least 0.1");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let dir = tempfile_dir("plantmeter-bench-killloop")?;
    let result = rt.block_on(run(&a, &dir));
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("killloop: files kept in {}", dir.display());
    }
    result
}

async fn run(a: &KillLoopArgs, dir: &Path) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find this program's own path")?;
    let seed = a
        .seed
        .unwrap_or_else(|| plantmeter_common::clock::system_ms() as u64)
        | 1;
    let mut rng = Rng(seed);

    // One simulated day, the audit's baseline, with an hour on either side.
    let mut scenario = Scenario::builtin();
    let tz = scenario.plant.timezone;
    let day: NaiveDate = scenario.audit.baseline.0;
    let next_day = day.succ_opt().context("date out of range")?;
    scenario.audit.baseline = (day, next_day);
    scenario.audit.reporting = None;
    scenario.plant.measure_ms = None;
    for m in &mut scenario.meters {
        m.rollover_at = None;
    }
    let from_ms = local_midnight_ms(day, tz).context("no local midnight")?;
    let to_ms = local_midnight_ms(next_day, tz).context("no local midnight")?;
    let start_ms = from_ms - HOUR_MS;
    let end_ms = to_ms + HOUR_MS;
    let planned_s = f64::from(a.cycles) * (a.max_up_s / 2.0 + RESTART_S) + 2.0;
    let speed = (end_ms - start_ms) as f64 / (planned_s * 1000.0);
    let anchor_ms = plantmeter_common::clock::system_ms() + CLOCK_LEAD.as_millis() as i64;
    let clock = Clock::virtual_at_wall(anchor_ms, start_ms, speed);
    let clock_args = vec![
        "--clock-start".to_string(),
        plantmeter_common::model::format_ts_ms(start_ms),
        "--clock-speed".to_string(),
        format!("{speed}"),
        "--clock-anchor".to_string(),
        anchor_ms.to_string(),
    ];
    let sim = plantmeter_sim::start(
        scenario,
        SimOptions {
            listen: "127.0.0.1:0".into(),
            rtu_over_tcp_listen: None,
            pty: false,
            seed: None,
            clock,
        },
    )
    .await
    .context("cannot start the simulated plant")?;

    let mut _mosquitto = None;
    let (broker, broker_name) = if a.mosquitto {
        let m = Mosquitto::start(dir)?;
        let addr = m.addr();
        _mosquitto = Some(m);
        (addr, "mosquitto")
    } else {
        (
            crate::broker::start("127.0.0.1:0".parse()?)?,
            "embedded rumqttd",
        )
    };

    let config = |id: &str| -> anyhow::Result<(PathBuf, PathBuf)> {
        let data = dir.join(id);
        let mut o = AgentConfigOptions::tcp(sim.addr().to_string());
        o.mqtt_url = format!("mqtt://{broker}");
        o.data_dir = data.display().to_string();
        o.gateway_id = id.to_string();
        o.poll_interval_s = Some(a.poll_s * speed);
        o.timeout_ms = 200;
        let path = dir.join(format!("{id}.toml"));
        std::fs::write(&path, sim.agent_config_with(&o))
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok((path, data))
    };
    let (killed_cfg, killed_data) = config("gw-killed")?;
    let (ref_cfg, _) = config("gw-ref")?;
    let plan = crate::exit::load_plan(&killed_cfg, crate::exit::Needs::Polling)?;
    let sub = Subscriber::start(broker, &plan.mqtt.topic_prefix).await?;
    sub.keep_payloads();

    println!(
        "killloop: {} SIGKILLs at random moments (runs of 0.05..{} s, seed {seed}); polls every {} s real ({:.0} s simulated); \
         {broker_name}; the demo's subscriber throughout; simulated {day} 00:00..24:00 (+-1 h) at {speed:.0}x",
        a.cycles, a.max_up_s, a.poll_s, a.poll_s * speed
    );
    let reference = Agent::start(&exe, &ref_cfg, &clock_args, &dir.join("gw-ref.log"))?;
    let log = dir.join("gw-killed.log");
    let started = Instant::now();
    let mut up_total = 0.0;
    for _ in 0..a.cycles {
        let agent = Agent::start(&exe, &killed_cfg, &clock_args, &log)?;
        let up = 0.05 + rng.next_f64() * (a.max_up_s - 0.05);
        up_total += up;
        tokio::time::sleep(Duration::from_secs_f64(up)).await;
        agent.sigkill();
    }
    let loop_s = started.elapsed().as_secs_f64();
    let last = Agent::start(&exe, &killed_cfg, &clock_args, &log)?;
    let behind_ms = (end_ms - sim.now_ms()).max(0);
    if behind_ms > 0 {
        tokio::time::sleep(Duration::from_secs_f64(behind_ms as f64 / speed / 1000.0)).await;
    }
    // Both stop cleanly: the killed agent drains what is left to the broker.
    let s1 = tokio::task::block_in_place(|| last.sigterm())?;
    let s2 = tokio::task::block_in_place(|| reference.sigterm())?;
    println!(
        "  loop: {loop_s:.1} s real for {} cycles (mean run {:.2} s); the simulated day ended {:.1} s after the loop; exit codes {} and {} (killed, uninterrupted)",
        a.cycles,
        up_total / f64::from(a.cycles),
        behind_ms as f64 / speed / 1000.0,
        code(s1),
        code(s2)
    );

    // Delivery, as the platform sees it.
    tokio::task::block_in_place(|| super::drain::settled_count(&sub));
    let status = crate::state::read_status_file(&killed_data)
        .context("the killed agent left no status.json after its clean stop")?;
    let next_seq = status.store.next_seq;
    let (missing, distinct, duplicates, differing, malformed) = {
        let d = sub.lock();
        (
            d.missing(next_seq),
            d.distinct,
            d.duplicates,
            d.duplicates_differing,
            d.malformed,
        )
    };
    println!(
        "  seqs 1..{}: received {distinct} distinct, missing {}{}, duplicates {duplicates} (differing {differing}), malformed {malformed}, evicted {}, backlog left {}",
        next_seq.saturating_sub(1),
        missing.len(),
        if missing.is_empty() {
            String::new()
        } else {
            format!(" (first {:?})", &missing[..missing.len().min(10)])
        },
        status.store.evicted,
        status.store.backlog
    );

    // The audit: the killed agent's report, a replay of what it delivered, the uninterrupted run's.
    // `--to` names the last day included: the one day `day .. next_day` of the replay.
    let (f, t) = (day.to_string(), day.to_string());
    let killed = Totals::from_json(&report_json(&exe, &killed_cfg, &f, &t)?)?;
    let reference = Totals::from_json(&report_json(&exe, &ref_cfg, &f, &t)?)?;
    let replay = replay(&plan, &sub, dir, (day, next_day))?;
    let show = |name: &str, t: &Totals| {
        println!(
            "    {name:<34} energy {:>14.6} kgce  electricity {:>14.6} kWh  completeness {:.4}",
            t.energy_kgce, t.electricity_kwh, t.completeness
        )
    };
    println!("  audit totals over {f}..{t} (plantmeter report --format json):");
    show("killed agent", &killed);
    show("replay of what it delivered", &replay);
    show("uninterrupted agent", &reference);
    let rel = |x: f64, y: f64| (x - y).abs() / y.abs().max(1e-12) * 100.0;
    println!(
        "  killed vs replay: {} (energy {:+.3e} kgce, electricity {:+.3e} kWh)",
        if killed.same(&replay) {
            "equal"
        } else {
            "DIFFERENT"
        },
        killed.energy_kgce - replay.energy_kgce,
        killed.electricity_kwh - replay.electricity_kwh
    );
    println!(
        "  killed vs uninterrupted: energy {:.4}%, electricity {:.4}% apart (different poll instants; not expected to be exact)",
        rel(killed.energy_kgce, reference.energy_kgce),
        rel(killed.electricity_kwh, reference.electricity_kwh)
    );
    let ok = missing.is_empty() && differing == 0 && malformed == 0;
    println!(
        "  verdict: delivery {}, audit {}",
        if ok { "OK" } else { "FAILED" },
        if killed.same(&replay) {
            "OK"
        } else {
            "lost or doubled updates"
        }
    );
    Ok(())
}

fn code(s: std::process::ExitStatus) -> String {
    s.code().map_or_else(|| s.to_string(), |c| c.to_string())
}

/// `plantmeter report --config C --format json --from F --to T`, parsed.
fn report_json(
    exe: &Path,
    config: &Path,
    from: &str,
    to: &str,
) -> anyhow::Result<serde_json::Value> {
    let out = Command::new(exe)
        .args(["report", "--config"])
        .arg(config)
        .args(["--format", "json", "--from", from, "--to", to])
        .output()
        .with_context(|| format!("cannot run {} report", exe.display()))?;
    if !out.status.success() {
        anyhow::bail!(
            "plantmeter report --config {} failed ({}): {}",
            config.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).context("plantmeter report: not JSON")
}

/// The audit the killed agent should have: every reading it delivered, once, in seq order, fed to
/// a fresh audit engine with the same plan.
fn replay(
    plan: &plantmeter_common::Plan,
    sub: &Subscriber,
    dir: &Path,
    period: (NaiveDate, NaiveDate),
) -> anyhow::Result<Totals> {
    let db = crate::store::open_db(&dir.join("replay"))?;
    let mut engine = crate::audit::AuditEngine::open(&db, plan)?;
    for (seq, payload) in sub.take_payloads() {
        let m: DataMessage = serde_json::from_slice(&payload)
            .with_context(|| format!("seq {seq}: not a data message"))?;
        engine.ingest(&m)?;
    }
    engine.flush()?;
    let report = engine.report_for(plantmeter_common::clock::system_ms(), Some(period))?;
    Totals::from_json(&serde_json::to_value(&report)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_read_from_a_report_as_the_contract_lays_it_out() {
        let v = serde_json::json!({
            "periods": {"baseline": {"from": "2025-01-01", "to": "2025-01-02", "production": 1.0, "completeness": 0.5}},
            "indicators": {
                "energy": {"baseline": {"total": 12.5}},
                "electricity": {"baseline": {"total": 100.25}}
            }
        });
        let t = Totals::from_json(&v).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(
            t,
            Totals {
                energy_kgce: 12.5,
                electricity_kwh: 100.25,
                completeness: 0.5
            }
        );
        let err = Totals::from_json(&serde_json::json!({"indicators": {}}))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("energy"), "{err}");
    }

    #[test]
    fn totals_are_the_same_up_to_summation_order_not_up_to_a_poll() {
        let t = |e: f64| Totals {
            energy_kgce: e,
            electricity_kwh: 21_043.1,
            completeness: 1.0,
        };
        assert!(t(13_149.126503).same(&t(13_149.126503 - 3.638e-12)));
        assert!(!t(13_149.126503).same(&t(13_149.126503 - 1e-3)));
    }

    #[test]
    fn kill_moments_are_spread_over_the_unit_interval() {
        let mut r = Rng(7);
        let xs: Vec<f64> = (0..1000).map(|_| r.next_f64()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let low = xs.iter().filter(|&&x| x < 0.5).count();
        assert!((400..600).contains(&low), "{low} of 1000 below 0.5");
    }
}
