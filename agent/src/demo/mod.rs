//! `plantmeter demo`: the whole system on this machine, with nothing installed but this binary.
//!
//! The built-in simulated plant runs in this process (Modbus TCP on loopback), the embedded broker and the
//! agent run as child processes of this same binary (`plantmeter broker`, `plantmeter run`), all on one
//! virtual clock anchored at a wall instant, so that 18 months pass in about 40 s. Readings take the
//! real path: Modbus -> the agent's sled store -> MQTT, and the agent's audit engine is fed by its polls.
//! Faults are injected on the way; at the end the agent is stopped with SIGTERM, the audit report is
//! computed from its store and printed beside the simulator's ground truth.

mod compare;
pub(crate) mod subscriber;

use std::fs::File;
use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, FixedOffset, Months, NaiveDate};
use indicatif::{ProgressBar, ProgressStyle};
use plantmeter_common::model::format_ts_ms;
use plantmeter_common::Clock;
use plantmeter_sim::scenario::local_midnight_ms;
use plantmeter_sim::{AgentConfigOptions, Fault, Scenario, SimHandle, SimOptions};

use crate::audit::render::{self, Lang};
use crate::exit::BadInput;

use self::subscriber::Subscriber;

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Months of the baseline period (from 2025-01-01).
    #[arg(long, default_value_t = 12)]
    pub baseline_months: u32,
    /// Months of the reporting period after the baseline (0: none). The efficiency measure goes into
    /// service when it starts.
    #[arg(long, default_value_t = 6)]
    pub reporting_months: u32,
    /// Target real duration of the simulated months, in seconds (sets the clock speed).
    #[arg(long, default_value_t = 36.0)]
    pub duration_s: f64,
    /// Virtual clock speed (x real time); overrides --duration-s.
    #[arg(long)]
    pub speed: Option<f64>,
    /// Output directory: agent config, store, logs and the reports.
    #[arg(long, default_value = "plantmeter-demo")]
    pub out: PathBuf,
    /// Seed of the simulated plant.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Language of the reports and tables: en or zh.
    #[arg(long, default_value = "en")]
    pub lang: String,
    /// No injected faults, no totalizer rollover, no broker restart.
    #[arg(long)]
    pub no_faults: bool,
    /// Poll interval of the audit meters, in virtual minutes; sub-meters outside the audit are polled half
    /// as often. At the default speed 60 virtual minutes are about 2.7 real ms: shorter intervals come
    /// close to the agent's 1 ms timer resolution, and late polls leave gaps.
    #[arg(long, default_value_t = 60.0)]
    pub poll_minutes: f64,
    /// The report's data completeness (0..1, both periods) below which the demo says this machine could
    /// not keep up with the virtual clock and exits 1 without its figures (a run that keeps up has about
    /// 0.97 with the faults, 1.0 without).
    #[arg(long, default_value_t = 0.9)]
    pub min_completeness: f64,
}

/// How long the broker stays down in the restart fault (real time).
const BROKER_DOWN: Duration = Duration::from_millis(2000);
/// Real time between the agent's start and the instant its virtual clock starts running.
const CLOCK_LEAD: Duration = Duration::from_millis(1500);
/// Progress refresh (real time).
const TICK: Duration = Duration::from_millis(50);
/// How often the agent publishes the retained audit report during the demo (real seconds).
const AUDIT_PUBLISH_S: u32 = 10;
/// Meter that stops answering for a few virtual days.
const OUTAGE_METER: &str = "gas";
/// Meter replaced during the reporting period.
const REPLACED_METER: &str = "main-power";
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

fn bad(msg: String) -> anyhow::Error {
    anyhow::Error::new(BadInput(msg))
}

pub fn main(args: DemoArgs) -> anyhow::Result<()> {
    if !(1..=60).contains(&args.baseline_months) {
        return Err(bad(format!(
            "--baseline-months {}: 1 to 60",
            args.baseline_months
        )));
    }
    if args.reporting_months > 36 {
        return Err(bad(format!(
            "--reporting-months {}: 0 to 36",
            args.reporting_months
        )));
    }
    if !(0.0..=1.0).contains(&args.min_completeness) {
        return Err(bad(format!(
            "--min-completeness {}: 0 to 1",
            args.min_completeness
        )));
    }
    if !(args.duration_s.is_finite() && args.duration_s >= 1.0) {
        return Err(bad(format!(
            "--duration-s {}: at least 1 second",
            args.duration_s
        )));
    }
    if let Some(s) = args.speed {
        if !(s.is_finite() && s > 0.0) {
            return Err(bad(format!("--speed {s}: a positive number")));
        }
    }
    if !(args.poll_minutes.is_finite() && (1.0..=60.0).contains(&args.poll_minutes)) {
        return Err(bad(format!(
            "--poll-minutes {}: 1 to 60",
            args.poll_minutes
        )));
    }
    let lang =
        Lang::parse(&args.lang).ok_or_else(|| bad(format!("--lang {}: en or zh", args.lang)))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(run(args, lang))
}

/// A child process killed (and reaped) when dropped, so that no broker or agent outlives the demo.
struct Guard {
    child: Child,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn log_file(path: &Path) -> anyhow::Result<File> {
    File::options()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))
}

/// `plantmeter broker --listen addr` as a child; returns once it accepts connections.
async fn start_broker(exe: &Path, addr: SocketAddr, out: &Path) -> anyhow::Result<Guard> {
    let ready = out.join("broker.ready");
    let _ = std::fs::remove_file(&ready);
    let mut last_err = String::new();
    // After a kill the port can take a moment to be free again: a few attempts.
    for _ in 0..20 {
        let child = Command::new(exe)
            .args(["broker", "--listen", &addr.to_string(), "--ready-file"])
            .arg(&ready)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file(&out.join("broker.log"))?)
            .spawn()
            .with_context(|| format!("cannot start {} broker", exe.display()))?;
        let mut g = Guard { child };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if ready.exists() {
                return Ok(g);
            }
            if let Ok(Some(status)) = g.child.try_wait() {
                last_err = format!("the broker exited ({status})");
                break;
            }
            if Instant::now() > deadline {
                anyhow::bail!("the embedded broker did not start on {addr} within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!(
        "the embedded broker could not listen on {addr}: {last_err}; see {}",
        out.join("broker.log").display()
    )
}

/// Remove the store of an earlier demo run, refusing to delete anything that does not look like one.
fn fresh_data_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let looks_like_store = ["conf", "db", "status.json"]
        .iter()
        .any(|f| dir.join(f).exists())
        || std::fs::read_dir(dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
    if !looks_like_store {
        anyhow::bail!(
            "{} exists and is not a plantmeter store: choose another --out",
            dir.display()
        );
    }
    std::fs::remove_dir_all(dir)
        .with_context(|| format!("cannot remove the previous demo store {}", dir.display()))?;
    // The store and its seq floor go together: a floor left beside a removed store makes the next run's
    // agent continue above it and report the jump as lost data ("store was lost or replaced").
    let [beside, _inside] = crate::store::seq_floor::candidates(dir);
    for f in [beside.clone(), beside.with_extension("next-seq.tmp")] {
        match std::fs::remove_file(&f) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot remove {}", f.display()))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Local midnight of a date in the plant's zone, UTC ms.
fn midnight(d: NaiveDate, tz: FixedOffset) -> anyhow::Result<i64> {
    local_midnight_ms(d, tz).ok_or_else(|| anyhow::anyhow!("no local midnight on {d}"))
}

fn local_date(ms: i64, tz: FixedOffset) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.with_timezone(&tz).format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

fn local_time(ms: i64, tz: FixedOffset) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

/// The English or the Chinese line: the demo speaks the report's language (`--lang`).
fn tr(lang: Lang, en: String, zh: String) -> String {
    match lang {
        Lang::En => en,
        Lang::Zh => zh,
    }
}

/// Output lines: above the progress bar on a terminal, plain lines otherwise.
struct Out {
    bar: Option<ProgressBar>,
}

impl Out {
    fn line(&self, s: impl AsRef<str>) {
        match &self.bar {
            Some(b) => b.println(s.as_ref()),
            None => eprintln!("{}", s.as_ref()),
        }
    }
}

/// A scheduled announcement at a virtual instant.
struct Announce {
    at_ms: i64,
    text: String,
    done: bool,
}

enum BrokerPhase {
    /// Killed when the virtual clock reaches this.
    Waiting(i64),
    Down {
        since: Instant,
    },
    Restarted {
        killed: Instant,
        restarted: Instant,
        data_before: u64,
    },
    Over,
}

/// What happened during the run, for the summary.
#[derive(Default)]
struct Happened {
    outage: Option<(i64, i64)>,
    replaced_at: Option<i64>,
    rollover_at: Option<(String, i64)>,
    health: Vec<(i64, subscriber::HealthChange)>,
    broker: Option<BrokerNote>,
}

struct BrokerNote {
    virtual_at: i64,
    down: Duration,
    reconnected_after: Option<Duration>,
    duplicates_before: u64,
}

async fn run(args: DemoArgs, lang: Lang) -> anyhow::Result<()> {
    let t_total = Instant::now();
    let exe = std::env::current_exe().context("cannot find this program's own path")?;
    let out = args.out.clone();
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let data_dir = out.join("data");
    fresh_data_dir(&data_dir)?;
    for log in ["agent.log", "broker.log"] {
        let _ = std::fs::remove_file(out.join(log));
    }

    // The plant and its periods.
    let mut scenario = Scenario::builtin_with_wwtp();
    let tz = scenario.plant.timezone;
    let b0 = scenario.audit.baseline.0;
    let months = |d: NaiveDate, n: u32| {
        d.checked_add_months(Months::new(n))
            .ok_or_else(|| anyhow::anyhow!("date out of range"))
    };
    let b1 = months(b0, args.baseline_months)?;
    let r1 = months(b1, args.reporting_months)?;
    scenario.audit.baseline = (b0, b1);
    scenario.audit.reporting = (args.reporting_months > 0).then_some((b1, r1));
    scenario.plant.measure_ms = Some(midnight(b1, tz)?);
    for m in &mut scenario.meters {
        if args.no_faults {
            m.rollover_at = None;
        }
        m.poll_interval_s = args.poll_minutes * 60.0 * if m.audit { 1.0 } else { 2.0 };
    }
    let base_from = midnight(b0, tz)?;
    let base_to = midnight(b1, tz)?;
    let rep_to = midnight(r1, tz)?;
    let last_end = if args.reporting_months > 0 {
        rep_to
    } else {
        base_to
    };
    // One hour before the baseline, so that the first polls read the counters at its very start.
    let start_ms = base_from - HOUR_MS;
    // One poll past the end, so the last hour of the period is covered.
    let poll_ms = (args.poll_minutes * 60_000.0) as i64;
    let end_ms = last_end + HOUR_MS.max(2 * poll_ms);
    let speed = args
        .speed
        .unwrap_or((end_ms - start_ms) as f64 / (args.duration_s * 1000.0));
    let anchor_ms = plantmeter_common::clock::system_ms() + CLOCK_LEAD.as_millis() as i64;
    let clock = Clock::virtual_at_wall(anchor_ms, start_ms, speed);

    let sim = plantmeter_sim::start(
        scenario.clone(),
        SimOptions {
            listen: "127.0.0.1:0".into(),
            rtu_over_tcp_listen: None,
            pty: false,
            seed: args.seed,
            clock,
        },
    )
    .await
    .context("cannot start the simulated plant")?;

    let broker_addr = crate::broker::free_loopback_addr()?;
    let mut broker = Some(start_broker(&exe, broker_addr, &out).await?);

    let mut o = AgentConfigOptions::tcp(sim.addr().to_string());
    o.mqtt_url = format!("mqtt://{broker_addr}");
    // Absolute: a relative data_dir is read relative to the config file's folder (plantmeter-demo/), and
    // `plantmeter report --config plantmeter-demo/agent.toml` must find the same store as the demo.
    o.data_dir = std::path::absolute(&data_dir)
        .unwrap_or_else(|_| data_dir.clone())
        .display()
        .to_string();
    o.gateway_id = "gw-demo".into();
    // Real milliseconds: loopback answers in well under 1 ms; a silent meter costs 2 x 100 ms (one retry).
    o.timeout_ms = 100;
    let mut config = sim.agent_config_with(&o).replacen(
        "[audit]\n",
        &format!("[audit]\npublish_interval_s = {AUDIT_PUBLISH_S}\n"),
        1,
    );
    // A DL/T 645 electricity meter and CJ/T 188 water and heat meters behind a serial server,
    // read beside the audit (not audit inputs: they mirror Modbus meters of the plant).
    let links = plantmeter_sim::meterbus::start(sim.sim_arc(), "127.0.0.1:0", "127.0.0.1:0", false)
        .await
        .context("cannot start the DL/T 645 / CJ/T 188 meters")?;
    config.push_str(&links.agent_config(args.poll_minutes * 60.0 * 4.0));
    let config_path = out.join("agent.toml");
    std::fs::write(&config_path, &config)
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    let plan = crate::exit::load_plan(&config_path, crate::exit::Needs::Polling)?;
    let prefix = plan.mqtt.topic_prefix.clone();

    let sub = Subscriber::start(broker_addr, &prefix).await?;

    // Faults, scheduled in virtual time.
    let mut happened = Happened::default();
    let mut announce: Vec<Announce> = Vec::new();
    let mut say = |at_ms: i64, text: String| {
        announce.push(Announce {
            at_ms,
            text,
            done: false,
        })
    };
    let base_days = (base_to - base_from) / DAY_MS;
    if !args.no_faults {
        let from = base_from + (base_days * 45 / 100) * DAY_MS + 9 * HOUR_MS;
        let len = (base_days / 10).clamp(1, 7) * DAY_MS;
        sim.inject_window(OUTAGE_METER, Fault::Timeout, from, from + len)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        happened.outage = Some((from, from + len));
        say(
            from,
            tr(
                lang,
                format!(
                    "fault: meter {OUTAGE_METER:?} stops answering (Modbus timeout) for {} virtual days",
                    len / DAY_MS
                ),
                format!(
                    "故障：表计 {OUTAGE_METER:?} 停止应答（Modbus 超时），持续 {} 个虚拟日",
                    len / DAY_MS
                ),
            ),
        );
        say(
            from + len,
            tr(
                lang,
                format!("fault over: meter {OUTAGE_METER:?} answers again"),
                format!("故障结束：表计 {OUTAGE_METER:?} 恢复应答"),
            ),
        );
        // 分表计电: the outfall's aeration blowers switched off for three hours of a working morning
        // while the dyehouse runs (the report's facilities section counts them, the alarm
        // `P/alarm/facility/wwtp` is raised and cleared).
        let day0 = base_from + (base_days * 20 / 100) * DAY_MS + 9 * HOUR_MS;
        let runs = |t: i64| {
            sim.sim()
                .point_value("dyehouse", "total_power", t)
                .is_some_and(|w| w > 150_000.0)
        };
        if let Some(off_from) = (0..14)
            .map(|d| day0 + d * DAY_MS)
            .find(|&t| (0..3).all(|h| runs(t + h * HOUR_MS)))
        {
            let off_to = off_from + 3 * HOUR_MS;
            sim.switch_off("blowers", off_from, off_to)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            say(
                off_from,
                tr(
                    lang,
                    "fault: the outfall's aeration blowers are switched off for 3 hours while the dyehouse runs (分表计电)".to_string(),
                    "故障：染色车间生产期间，排口曝气风机停运 3 小时（分表计电）".to_string(),
                ),
            );
            say(
                off_to,
                tr(
                    lang,
                    "fault over: the blowers run again".to_string(),
                    "故障结束：曝气风机恢复运行".to_string(),
                ),
            );
        }
        let replace_at = if args.reporting_months > 0 {
            base_to + ((rep_to - base_to) / DAY_MS * 4 / 10) * DAY_MS + 10 * HOUR_MS + 17 * 60_000
        } else {
            base_from + (base_days * 8 / 10) * DAY_MS + 10 * HOUR_MS + 17 * 60_000
        };
        sim.sim()
            .replace_meter_at(REPLACED_METER, replace_at, 0.0)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        happened.replaced_at = Some(replace_at);
        say(
            replace_at,
            tr(
                lang,
                format!("meter {REPLACED_METER:?} replaced: the new meter's totalizer starts at 0"),
                format!("表计 {REPLACED_METER:?} 已更换：新表累计值从 0 开始"),
            ),
        );
        for m in &scenario.meters {
            if let Some(t) = m.rollover_at.filter(|t| (base_from..last_end).contains(t)) {
                happened.rollover_at = Some((m.name.clone(), t));
                say(
                    t,
                    tr(
                        lang,
                        format!(
                            "meter {:?} ({}): its totalizer wraps at its modulus and restarts near 0",
                            m.name, m.template
                        ),
                        format!(
                            "表计 {:?}（{}）：累计值达到量程上限后翻转，从接近 0 重新计数",
                            m.name, m.template
                        ),
                    ),
                );
            }
        }
    }
    if args.reporting_months > 0 {
        say(
            base_to,
            tr(
                lang,
                "baseline period over; the efficiency measure goes into service, reporting period starts".into(),
                "基准期结束；节能方案投入运行，报告期开始".into(),
            ),
        );
    }
    let mut broker_phase = if args.no_faults {
        BrokerPhase::Over
    } else {
        BrokerPhase::Waiting(base_from + (base_to - base_from) * 65 / 100)
    };

    // The agent, on the same virtual time base.
    let agent_child = Command::new(&exe)
        .arg("run")
        .arg("--config")
        .arg(&config_path)
        .args([
            "--clock-start",
            &format_ts_ms(start_ms),
            "--clock-speed",
            &format!("{speed}"),
            "--clock-anchor",
            &anchor_ms.to_string(),
        ])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file(&out.join("agent.log"))?)
        .spawn()
        .with_context(|| format!("cannot start {} run", exe.display()))?;
    let mut agent = Guard { child: agent_child };

    let terminal = std::io::stderr().is_terminal();
    let span_h = ((end_ms - start_ms) / HOUR_MS).max(1) as u64;
    let bar = terminal.then(|| {
        let b = ProgressBar::new(span_h);
        let style =
            ProgressStyle::with_template("{spinner} [{elapsed:>3}] {bar:32.cyan/blue} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        b.set_style(style);
        b
    });
    let ui = Out { bar };
    // Periods printed with their last day included, as the report prints them.
    let (b_last, r_last) = (b1.pred_opt().unwrap_or(b1), r1.pred_opt().unwrap_or(r1));
    ui.line(tr(
        lang,
        format!(
            "plantmeter demo: {} — {} meters on Modbus TCP {}, broker {broker_addr}, agent pid {}",
            scenario.name,
            scenario.meters.len(),
            sim.addr(),
            agent.child.id()
        ),
        format!(
            "plantmeter 演示：{} — {} 块表计，Modbus TCP {}，消息服务器 {broker_addr}，采集代理进程 {}",
            scenario.name,
            scenario.meters.len(),
            sim.addr(),
            agent.child.id()
        ),
    ));
    ui.line(tr(
        lang,
        format!(
            "virtual clock from {} at {speed:.0}x real time: baseline {b0} to {b_last}{}; audit meters polled every {} virtual minutes",
            local_time(start_ms, tz),
            if args.reporting_months > 0 { format!(", reporting {b1} to {r_last}") } else { String::new() },
            args.poll_minutes
        ),
        format!(
            "虚拟时钟自 {} 起，{speed:.0} 倍速运行：基准期 {b0} 至 {b_last}{}；审核表计每 {} 个虚拟分钟采集一次",
            local_time(start_ms, tz),
            if args.reporting_months > 0 { format!("，报告期 {b1} 至 {r_last}") } else { String::new() },
            args.poll_minutes
        ),
    ));
    ui.line(tr(
        lang,
        format!(
            "files in {}: agent.toml, data/ (the agent's store), agent.log, broker.log",
            out.display()
        ),
        format!(
            "文件目录 {}：agent.toml、data/（采集代理的存储）、agent.log、broker.log",
            out.display()
        ),
    ));

    let mut last_month = String::new();
    loop {
        tokio::time::sleep(TICK).await;
        let now = sim.now_ms();
        if let Ok(Some(status)) = agent.child.try_wait() {
            anyhow::bail!(
                "the agent exited early ({status}); see {}",
                out.join("agent.log").display()
            );
        }
        for a in announce.iter_mut().filter(|a| !a.done && a.at_ms <= now) {
            a.done = true;
            ui.line(format!("[{}] {}", local_time(a.at_ms, tz), a.text));
        }
        for h in sub.take_health_changes() {
            // The first states of each meter are not news; changes after its first `ok` are.
            let seen_ok = happened
                .health
                .iter()
                .any(|(_, x)| x.meter == h.meter && x.state == "ok");
            if seen_ok {
                ui.line(tr(
                    lang,
                    format!(
                        "[{}] health/{}: {}{}",
                        local_time(now, tz),
                        h.meter,
                        h.state,
                        h.last_error
                            .as_deref()
                            .map(|e| format!(" ({e})"))
                            .unwrap_or_default()
                    ),
                    // The agent's error text is English: the state says it in Chinese.
                    format!(
                        "[{}] 表计 {} 状态：{}",
                        local_time(now, tz),
                        h.meter,
                        if h.state == "ok" { "正常" } else { "故障" }
                    ),
                ));
            }
            happened.health.push((now, h));
        }
        broker_phase = match broker_phase {
            BrokerPhase::Waiting(at) if now >= at => {
                broker = None; // killed and reaped by the guard
                let (at, down, days) = (
                    local_time(now, tz),
                    BROKER_DOWN.as_secs_f64(),
                    (BROKER_DOWN.as_secs_f64() * speed / 86_400.0).round(),
                );
                ui.line(tr(
                    lang,
                    format!(
                        "[{at}] broker killed: down for {down:.1} real s (~{days} virtual days); the agent keeps polling into its store"
                    ),
                    format!(
                        "[{at}] 消息服务器被终止：停机 {down:.1} 实际秒（约 {days} 个虚拟日）；采集代理继续采集并存入本地存储"
                    ),
                ));
                happened.broker = Some(BrokerNote {
                    virtual_at: now,
                    down: BROKER_DOWN,
                    reconnected_after: None,
                    duplicates_before: sub.lock().duplicates,
                });
                BrokerPhase::Down {
                    since: Instant::now(),
                }
            }
            BrokerPhase::Down { since } if since.elapsed() >= BROKER_DOWN => {
                broker = Some(start_broker(&exe, broker_addr, &out).await?);
                let at = local_time(sim.now_ms(), tz);
                ui.line(tr(
                    lang,
                    format!(
                        "[{at}] broker restarted on {broker_addr} (empty: no sessions, no retained messages)"
                    ),
                    format!("[{at}] 消息服务器已在 {broker_addr} 重启（空：无会话、无保留消息）"),
                ));
                BrokerPhase::Restarted {
                    killed: since,
                    restarted: Instant::now(),
                    data_before: sub.lock().data,
                }
            }
            BrokerPhase::Restarted {
                killed,
                restarted,
                data_before,
            } => {
                if sub.lock().data > data_before {
                    let after = restarted.elapsed();
                    let (at, a, k) = (
                        local_time(sim.now_ms(), tz),
                        after.as_secs_f64(),
                        killed.elapsed().as_secs_f64(),
                    );
                    ui.line(tr(
                        lang,
                        format!(
                            "[{at}] agent reconnected {a:.1} s after the restart ({k:.1} s after the kill) and is re-sending its backlog in seq order"
                        ),
                        format!(
                            "[{at}] 采集代理在重启后 {a:.1} 秒（终止后 {k:.1} 秒）重新连接，正按序号补发积压数据"
                        ),
                    ));
                    if let Some(b) = happened.broker.as_mut() {
                        b.reconnected_after = Some(killed.elapsed());
                    }
                    BrokerPhase::Over
                } else if restarted.elapsed() > Duration::from_secs(15) {
                    ui.line(tr(
                        lang,
                        "the agent has not reconnected 15 s after the broker restart".into(),
                        "消息服务器重启 15 秒后采集代理仍未重新连接".into(),
                    ));
                    BrokerPhase::Over
                } else {
                    BrokerPhase::Restarted {
                        killed,
                        restarted,
                        data_before,
                    }
                }
            }
            other => other,
        };
        let received = {
            let d = sub.lock();
            (d.distinct, d.duplicates)
        };
        let date = local_date(now, tz);
        match &ui.bar {
            Some(b) => {
                b.set_position(((now - start_ms).max(0) / HOUR_MS) as u64);
                b.set_message(tr(
                    lang,
                    format!(
                        "{date}  {} msgs received ({} re-sent)",
                        received.0, received.1
                    ),
                    format!(
                        "{date}  已收到 {} 条消息（重发 {} 条）",
                        received.0, received.1
                    ),
                ));
            }
            None => {
                let month = date.get(..7).unwrap_or_default().to_string();
                if month != last_month {
                    eprintln!(
                        "{}",
                        tr(
                            lang,
                            format!("{date}: {} data messages received", received.0),
                            format!("{date}：已收到 {} 条数据消息", received.0),
                        )
                    );
                    last_month = month;
                }
            }
        }
        if now >= end_ms && matches!(broker_phase, BrokerPhase::Over | BrokerPhase::Waiting(_)) {
            // Stop once the subscriber has the polls past the end: every earlier seq came before them.
            let delivered = sub.lock().max_ts_ms >= last_end + HOUR_MS;
            let late = Duration::from_secs_f64((now - end_ms) as f64 / speed / 1000.0);
            if delivered || late > Duration::from_secs(30) {
                if !delivered {
                    ui.line(tr(
                        lang,
                        "the agent has not delivered the last polls 30 s after the end: stopping it anyway".into(),
                        "结束 30 秒后采集代理仍未送达最后的采集数据：仍然停止它".into(),
                    ));
                }
                break;
            }
        }
    }
    let t_sim = t_total.elapsed();

    // Stop the agent the way systemd does, and check that it exits 0 with its buffer flushed.
    let pid = agent.child.id().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .context("cannot run kill -TERM")?;
    if !sent.success() {
        anyhow::bail!("kill -TERM {pid} failed");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = agent.child.try_wait().context("waiting for the agent")? {
            break s;
        }
        if Instant::now() > deadline {
            anyhow::bail!("the agent did not exit within 20 s of SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let stop_took = t_total.elapsed() - t_sim;
    if let Some(b) = &ui.bar {
        b.finish_and_clear();
    }
    if !status.success() {
        anyhow::bail!(
            "the agent exited with {status} after SIGTERM; see {}",
            out.join("agent.log").display()
        );
    }
    // Let the last messages (offline status) arrive.
    let wait = Instant::now();
    while sub.lock().last_status.as_deref() != Some("offline")
        && wait.elapsed() < Duration::from_secs(2)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(broker);

    let status_json: serde_json::Value = std::fs::read(data_dir.join("status.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let next_seq = status_json["store"]["next_seq"].as_u64().unwrap_or(0);
    let evicted = status_json["store"]["evicted"].as_u64().unwrap_or(0);
    let backlog = status_json["store"]["backlog"].as_u64().unwrap_or(0);

    // The audit report from the agent's store.
    let report = {
        let (_store, mut engine) = crate::audit::live::open_offline(&plan)?;
        let mut r = engine.report(sim.now_ms())?;
        // Sealed like every report, so that `plantmeter verify` can check it against the store.
        crate::audit::integrity::seal(&mut r, None)?;
        r
    };
    // Figures it knows are poor are not shown: a machine that could not keep up with the virtual clock
    // (polls skipped as late) leaves hours without readings.
    let completeness = report
        .periods
        .reporting
        .as_ref()
        .map_or(report.periods.baseline.completeness, |r| {
            r.completeness.min(report.periods.baseline.completeness)
        });
    if completeness < args.min_completeness {
        let more = (t_sim.as_secs_f64() / completeness.max(0.05) * 1.2).ceil();
        anyhow::bail!(
            "this machine could not keep up with the virtual clock at {speed:.0}x real time: the report's \
             data completeness is {:.1} % (below {:.0} %), so its figures would be poor and are not shown. \
             Give it more time (--duration-s {more:.0}) or fewer other programs; the store and agent.log are in {}",
            completeness * 100.0,
            args.min_completeness * 100.0,
            out.display()
        );
    }
    // The JSON and its renderings of this one sealed report, as `report --out-dir` writes them.
    crate::audit::report::write_all(&out, &report, lang)?;
    let mut periods = vec![(base_from, base_to)];
    if args.reporting_months > 0 {
        periods.push((base_to, rep_to));
    }
    let truths: Vec<_> = periods.iter().map(|(f, t)| sim.truth(*f, *t)).collect();
    let truth_json = serde_json::to_vec_pretty(&truths).context("serializing the truth")?;
    std::fs::write(out.join("truth.json"), truth_json)
        .with_context(|| format!("cannot write {}", out.join("truth.json").display()))?;

    // The summary.
    let mut s = String::new();
    use std::fmt::Write as _;
    let answered = links
        .links
        .meters
        .iter()
        .map(|m| {
            format!(
                "{} {}",
                m.name,
                m.requests.load(std::sync::atomic::Ordering::Relaxed)
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        s,
        "{}",
        tr(
            lang,
            format!(
                "\n== DL/T 645 and CJ/T 188 meters (serial server): requests answered: {answered}"
            ),
            format!("\n== DL/T 645 与 CJ/T 188 表计（经串口服务器）：已应答的请求数：{answered}"),
        )
    );
    let (missing, dups_after) = {
        let d = sub.lock();
        // The unsent backlog (polls after the end) stays in the store for the next run: not missing.
        let acked_to = next_seq.saturating_sub(backlog);
        let missing = d.missing(acked_to);
        let published = next_seq.saturating_sub(1);
        let (data, distinct, dups, differing) =
            (d.data, d.distinct, d.duplicates, d.duplicates_differing);
        let first = if missing.is_empty() {
            String::new()
        } else {
            format!(" ({:?})", &missing[..missing.len().min(10)])
        };
        let (n_missing, backwards) = (missing.len(), d.backwards);
        let (health, status, audits, audit_bytes, reconnects) = (
            d.health_msgs,
            d.status_msgs,
            d.audit_msgs,
            d.audit_bytes,
            d.reconnects,
        );
        let last_status = d.last_status.as_deref().unwrap_or("–");
        let text = tr(
            lang,
            format!(
                "\n== Delivery over MQTT (what a subscriber to {prefix}/# saw)\n\
                 data messages published by the agent: {published} (seq 1..{published}); received: {data} ({distinct} distinct, {dups} duplicates re-sent after reconnects, {differing} differing from the first copy)\n\
                 missing seqs: {n_missing}{first}; evicted from the store: {evicted}; left in the store for the next run: {backlog}; seq restarts (resends): {backwards}\n\
                 health messages: {health}, status: {status} (last: {last_status}), audit reports: {audits} (last {audit_bytes} bytes), subscriber reconnects: {reconnects}"
            ),
            format!(
                "\n== MQTT 传输（订阅 {prefix}/# 所见）\n\
                 采集代理发布的数据消息：{published} 条（序号 1..{published}）；收到：{data} 条（不重复 {distinct} 条，重连后重发的重复消息 {dups} 条，其中与首次不同的 {differing} 条）\n\
                 缺失序号：{n_missing} 个{first}；存储满而淘汰：{evicted} 条；留在存储中待下次发送：{backlog} 条；序号回退（重发）：{backwards} 次\n\
                 健康消息 {health} 条，状态消息 {status} 条（最后：{}），审核报告 {audits} 份（最后一份 {audit_bytes} 字节），订阅端重连 {reconnects} 次",
                match last_status {
                    "offline" => "离线",
                    "online" => "在线",
                    other => other,
                }
            ),
        );
        let _ = writeln!(s, "{text}");
        (missing, d.duplicates)
    };

    let _ = writeln!(
        s,
        "{}",
        tr(
            lang,
            "\n== Faults and how they were handled".into(),
            "\n== 注入的故障及其处理".into()
        )
    );
    let point_notes = |meter: &str| {
        report
            .method
            .points
            .iter()
            .filter(|p| p.point.split('.').next() == Some(meter))
            .collect::<Vec<_>>()
    };
    if args.no_faults {
        let _ = writeln!(
            s,
            "{}",
            tr(
                lang,
                "none injected (--no-faults)".into(),
                "未注入故障（--no-faults）".into()
            )
        );
    }
    if let Some((from, to)) = happened.outage {
        let changes: Vec<String> = happened
            .health
            .iter()
            .filter(|(_, h)| h.meter == OUTAGE_METER)
            .skip_while(|(_, h)| h.state != "ok")
            .skip(1)
            .map(|(t, h)| match lang {
                Lang::En => format!("{} at ~{}", h.state, local_time(*t, tz)),
                Lang::Zh => format!(
                    "约 {} {}",
                    local_time(*t, tz),
                    if h.state == "ok" {
                        "恢复正常"
                    } else {
                        "故障"
                    }
                ),
            })
            .collect();
        let apportioned = point_notes(OUTAGE_METER)
            .iter()
            .map(|p| p.apportioned_hours)
            .max()
            .unwrap_or(0);
        let (f, t) = (local_time(from, tz), local_time(to, tz));
        let text = tr(
            lang,
            format!(
                "- meter outage: {OUTAGE_METER:?} timed out from {f} to {t}; health on MQTT: {}; its points got quality comm_error, and the counter's advance across the gap was apportioned over {apportioned} hours (kept in the totals, flagged, excluded from completeness)",
                if changes.is_empty() { "no change seen".into() } else { changes.join(", ") }
            ),
            format!(
                "- 表计停止应答：{OUTAGE_METER:?} 自 {f} 至 {t} 超时；MQTT 健康状态：{}；其测点质量为通信错误，累计值在中断期间的增量分摊到 {apportioned} 小时（计入总量、加标记、不计入完整率）",
                if changes.is_empty() { "未见变化".into() } else { changes.join("，") }
            ),
        );
        let _ = writeln!(s, "{text}");
    }
    if let Some((meter, t)) = &happened.rollover_at {
        let n: u64 = point_notes(meter).iter().map(|p| p.rollovers).sum();
        let at = local_time(*t, tz);
        let text = tr(
            lang,
            format!(
                "- totalizer rollover: {meter:?} wrapped at {at}; the audit counted {n} rollover(s): delta = (modulus - previous) + current, no negative consumption"
            ),
            format!(
                "- 累计值翻转：{meter:?} 于 {at} 翻转；审核计入 {n} 次翻转：增量 = （量程 − 上次读数）+ 本次读数，没有负消耗"
            ),
        );
        let _ = writeln!(s, "{text}");
    }
    if let Some(t) = happened.replaced_at {
        let n: u64 = point_notes(REPLACED_METER)
            .iter()
            .map(|p| p.replacements)
            .sum();
        let at = local_time(t, tz);
        let text = tr(
            lang,
            format!(
                "- meter replacement: {REPLACED_METER:?} replaced at {at}; the audit recorded {n} replacement event(s) instead of a negative consumption"
            ),
            format!(
                "- 换表：{REPLACED_METER:?} 于 {at} 更换；审核记录了 {n} 次换表事件，而不是负消耗"
            ),
        );
        let _ = writeln!(s, "{text}");
    }
    if let Some(b) = &happened.broker {
        let (at, down, resent, n_missing) = (
            local_time(b.virtual_at, tz),
            b.down.as_secs_f64(),
            dups_after.saturating_sub(b.duplicates_before),
            missing.len(),
        );
        let after = b.reconnected_after.map(|d| d.as_secs_f64());
        let text = tr(
            lang,
            format!(
                "- broker restart at {at}: down {down:.1} s real; the agent buffered in its store and reconnected {} later; {resent} messages were re-sent (duplicates, identical), {n_missing} missing",
                after.map_or_else(|| "(not seen)".into(), |a| format!("{a:.1} s"))
            ),
            format!(
                "- 消息服务器于 {at} 重启：实际停机 {down:.1} 秒；采集代理把数据缓存在本地存储，{}；重发 {resent} 条消息（重复且内容相同），缺失 {n_missing} 条",
                after.map_or_else(|| "未见重新连接".into(), |a| format!("{a:.1} 秒后重新连接"))
            ),
        );
        let _ = writeln!(s, "{text}");
    }

    let _ = writeln!(
        s,
        "{}",
        tr(
            lang,
            "\n== Audit report (computed by the agent from its polls)".into(),
            "\n== 审核报告（采集代理根据其采集数据计算）".into()
        )
    );
    s.push_str(&render::text_table(&report, lang));
    let _ = writeln!(
        s,
        "{}",
        tr(
            lang,
            "\n== Baseline models (DOMAIN.md selection: P; products; P + drivers; products + drivers)"
                .into(),
            "\n== 基准模型（依次比较：产量；各产品；产量 + 驱动变量；各产品 + 驱动变量）".into()
        )
    );
    s.push_str(&compare::models(&report, lang));

    let truth_totals: Vec<_> = truths
        .iter()
        .map(|t| {
            (
                t.totals.production,
                compare::truth_totals(&report, &t.totals),
            )
        })
        .collect();
    let rows = compare::rows(&report, &truth_totals);
    let names: Vec<&str> = match lang {
        Lang::En => vec!["baseline", "reporting"],
        Lang::Zh => vec!["基准期", "报告期"],
    };
    let _ = writeln!(
        s,
        "{}",
        tr(
            lang,
            "\n== Agent vs the simulator's ground truth (same local-date periods)".into(),
            "\n== 采集代理实测与模拟真值对比（相同的本地日期期间）".into()
        )
    );
    s.push_str(&compare::table(&rows, &names[..periods.len()], lang));
    if let Some((d, key, p)) = compare::largest_diff(&rows) {
        let period = names.get(p).copied().unwrap_or("?");
        let within = d.abs() <= 0.5;
        let text = tr(
            lang,
            format!(
                "largest difference: {d:+.3}% ({key}, {period}){}",
                if within { ": within 0.5%" } else { "" }
            ),
            format!(
                "最大差异：{d:+.3}%（{}，{period}）{}",
                compare::row_label(lang, &key),
                if within { "：在 0.5% 以内" } else { "" }
            ),
        );
        let _ = writeln!(s, "{text}");
        if !within {
            let text = tr(
                lang,
                "note: carriers and production come from totalizers: the advance across a polling gap is apportioned, \
                 so they match the truth through outages. A pollutant load needs the concentration of each hour: hours \
                 without covered time (gaps; see the data completeness) get no load, so loads fall short by about the \
                 uncovered share, and hourly means of 60-minute samples smooth the concentration steps at line start/stop."
                    .into(),
                "说明：能源介质和产量来自累计量表，采集中断期间的增量会被分摊，因此中断时也与真值一致。污染物排放量需要每小时的浓度：\
                 没有覆盖时间的小时（中断，见数据完整率）不计排放量，因此排放量约按未覆盖的比例偏低；60 分钟采样的小时均值也会平滑开停机时的浓度阶跃。"
                    .into(),
            );
            let _ = writeln!(s, "{text}");
        }
    }
    let files = [
        "report.html",
        "report.json",
        "report.csv",
        "report.csv.sha256",
        "report.xlsx",
    ]
    .map(|f| out.join(f).display().to_string())
    .join(", ");
    let (total, simulated, stop) = (
        t_total.elapsed().as_secs_f64(),
        t_sim.as_secs_f64(),
        stop_took.as_secs_f64(),
    );
    let text = tr(
        lang,
        format!(
            "\nwrote {files} (and truth.json)\n\
             {total:.1} s: {simulated:.1} s of simulated months, agent stopped in {stop:.1} s (SIGTERM, exit 0)"
        ),
        format!(
            "\n已写入 {files}（以及 truth.json）\n\
             共 {total:.1} 秒：模拟各月用时 {simulated:.1} 秒，采集代理在 {stop:.1} 秒内停止（SIGTERM，退出码 0）"
        ),
    );
    let _ = writeln!(s, "{text}");
    println!("{s}");
    sim_shutdown(sim).await;
    Ok(())
}

async fn sim_shutdown(sim: SimHandle) {
    let _ = tokio::time::timeout(Duration::from_secs(2), sim.shutdown()).await;
}
