//! `plantmeter-sim`: serve a simulated plant's meters over Modbus TCP (and RTU over TCP, and a pty).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use plantmeter_common::Clock;
use plantmeter_sim::scenario::local_midnight_ms;
use plantmeter_sim::{start, AgentConfigOptions, Scenario, SimOptions, Simulation};

#[derive(Parser)]
#[command(
    name = "plantmeter-sim",
    version,
    about = "Simulated plant: meters with real register maps, faults, a virtual clock and ground truth"
)]
struct Args {
    /// Modbus TCP listener; each meter answers under its own unit id.
    #[arg(long, default_value = "127.0.0.1:5020")]
    listen: String,
    /// Scenario file (TOML); the built-in plant when absent.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Seed of the plant model (overrides the scenario's).
    #[arg(long)]
    seed: Option<u64>,
    /// Write the ground truth (JSON) here, every few seconds and at exit.
    #[arg(long)]
    truth: Option<PathBuf>,
    /// How often the truth file is rewritten, in real seconds.
    #[arg(long, default_value_t = 5.0)]
    truth_interval_s: f64,
    /// Virtual clock start (RFC 3339); default now.
    #[arg(long)]
    clock_start: Option<String>,
    /// Virtual clock speed (x real time); default 1.
    #[arg(long)]
    clock_speed: Option<f64>,
    /// Wall instant (ms since the Unix epoch) at which the virtual clock reads --clock-start: processes
    /// given the same three options share one time base.
    #[arg(long)]
    clock_anchor: Option<i64>,
    /// Also serve RTU frames over TCP on this address.
    #[arg(long)]
    rtu_over_tcp: Option<String>,
    /// Also serve RTU on a pseudo-terminal; its path is printed (`pty /dev/pts/N`).
    #[arg(long)]
    pty: bool,
    /// Also serve the plant's DL/T 645-2007 meter on this TCP address (a serial server).
    #[arg(long)]
    dlt645_listen: Option<String>,
    /// Also serve the plant's CJ/T 188 water and heat meters on this TCP address.
    #[arg(long)]
    cjt188_listen: Option<String>,
    /// Also serve the DL/T 645 and CJ/T 188 meters on a pseudo-terminal each (`pty-dlt645
    /// /dev/pts/N`, `pty-cjt188 /dev/pts/M`); needs --dlt645-listen and --cjt188-listen.
    #[arg(long)]
    link_pty: bool,
    /// Print an agent config for the scenario (bus at --listen) and exit.
    #[arg(long)]
    print_agent_config: bool,
    /// MQTT URL written into --print-agent-config.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    mqtt: String,
}

struct BadInput(String);

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Bad(BadInput(m))) => {
            eprintln!("plantmeter-sim: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Other(m)) => {
            eprintln!("plantmeter-sim: error: {m}");
            ExitCode::from(1)
        }
    }
}

enum Failure {
    Bad(BadInput),
    Other(String),
}

fn bad(m: String) -> Failure {
    Failure::Bad(BadInput(m))
}

fn load_scenario(path: Option<&Path>) -> Result<Scenario, Failure> {
    match path {
        None => Ok(Scenario::builtin()),
        Some(p) => Scenario::load(p).map_err(|e| bad(e.to_string())),
    }
}

fn clock_of(args: &Args) -> Result<Clock, Failure> {
    Clock::from_options(
        args.clock_start.as_deref(),
        args.clock_speed,
        args.clock_anchor,
    )
    .map_err(bad)
}

/// Truth from the local midnight of the clock's start (not before the plant's start) to now.
fn truth_from(sim: &Simulation) -> i64 {
    let tz = sim.scenario.plant.timezone;
    let start = sim.clock().start_ms();
    let day = chrono::DateTime::from_timestamp_millis(start)
        .map(|t| t.with_timezone(&tz).date_naive())
        .and_then(|d| local_midnight_ms(d, tz))
        .unwrap_or(start);
    day.max(sim.scenario.plant.start_ms)
}

fn write_truth(path: &Path, sim: &Simulation) -> Result<(), String> {
    let truth = sim.truth(truth_from(sim), sim.clock().now_ms());
    let json = serde_json::to_vec_pretty(&truth).map_err(|e| e.to_string())?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, json)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: cannot write the truth: {e}", path.display()))
}

fn run(args: Args) -> Result<(), Failure> {
    let scenario = load_scenario(args.scenario.as_deref())?;
    let clock = clock_of(&args)?;
    if !args.truth_interval_s.is_finite() || args.truth_interval_s <= 0.0 {
        return Err(bad("--truth-interval-s must be > 0".into()));
    }
    if args.print_agent_config {
        let sim = Simulation::new(scenario, args.seed, clock).map_err(|e| bad(e.to_string()))?;
        let mut o = AgentConfigOptions::tcp(args.listen.clone());
        o.mqtt_url = args.mqtt.clone();
        print!("{}", sim.agent_config(&o));
        if let (Some(d), Some(c)) = (&args.dlt645_listen, &args.cjt188_listen) {
            use plantmeter_sim::meterbus::{agent_config, LinkAt};
            print!(
                "\n{}",
                agent_config(&LinkAt::Tcp(d.clone()), &LinkAt::Tcp(c.clone()), 60.0)
            );
        }
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::Other(format!("tokio runtime: {e}")))?;
    rt.block_on(serve(args, scenario, clock))
}

async fn serve(args: Args, scenario: Scenario, clock: Clock) -> Result<(), Failure> {
    let opts = SimOptions {
        listen: args.listen.clone(),
        rtu_over_tcp_listen: args.rtu_over_tcp.clone(),
        pty: args.pty,
        seed: args.seed,
        clock,
    };
    let name = scenario.name.clone();
    let n = scenario.meters.len();
    let handle = start(scenario, opts).await.map_err(|e| match e {
        plantmeter_sim::SimError::Scenario(s) => bad(s.to_string()),
        other => Failure::Other(other.to_string()),
    })?;
    println!("plantmeter-sim: {name}: {n} meters");
    println!("modbus-tcp {}", handle.addr());
    if let Some(a) = handle.rtu_over_tcp_addr() {
        println!("rtu-over-tcp {a}");
    }
    if let Some(p) = handle.pty_path() {
        println!("pty {}", p.display());
        tracing::info!(device = %p.display(), "RTU on a pseudo-terminal");
    }
    let _links = match (&args.dlt645_listen, &args.cjt188_listen) {
        (Some(d), Some(c)) => {
            let l = plantmeter_sim::meterbus::start(handle.sim_arc(), d, c, args.link_pty)
                .await
                .map_err(|e| Failure::Other(e.to_string()))?;
            println!("dlt645-tcp {}", l.dlt645_addr);
            println!("cjt188-tcp {}", l.cjt188_addr);
            for (p, what) in l.ptys.iter().zip(["dlt645", "cjt188"]) {
                println!("pty-{what} {}", p.path.display());
            }
            Some(l)
        }
        (None, None) => None,
        _ => return Err(bad("--dlt645-listen and --cjt188-listen go together".into())),
    };
    use std::io::Write;
    let _ = std::io::stdout().flush();

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Failure::Other(format!("installing the SIGTERM handler: {e}")))?;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(args.truth_interval_s));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = tick.tick() => {
                if let Some(p) = &args.truth {
                    if let Err(e) = write_truth(p, handle.sim()) {
                        tracing::warn!("{e}");
                    }
                }
            }
        }
    }
    let result = match &args.truth {
        Some(p) => write_truth(p, handle.sim()).map_err(Failure::Other),
        None => Ok(()),
    };
    handle.shutdown().await;
    result
}
