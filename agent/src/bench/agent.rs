//! Agent benchmarks: steady polling, Modbus transactions/s. Each prints figures.
//!
//! - `steady`: the built-in simulated plant and an embedded broker in this process; the agent
//!   (`plantmeter run`) as a child process, measured alone: peak RSS (VmHWM) and CPU (utime+stime
//!   from /proc/<pid>/stat) over the measuring window, after a warm-up.
//! - `modbus`: read transactions per second on one Modbus TCP connection against the simulator,
//!   and the same with pymodbus (if `python3 -c "import pymodbus"` works) against the same server.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use plantmeter_common::Clock;
use tokio_modbus::client::Reader;

#[derive(clap::Args)]
pub struct SteadyArgs {
    /// Meters (each polls unit 1 of the simulator, an SDM630, on its own connection).
    #[arg(long, default_value_t = 50)]
    pub meters: usize,
    /// f32 points per meter (at most 10).
    #[arg(long, default_value_t = 10)]
    pub points: usize,
    /// Poll interval, seconds.
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    /// Warm-up before measuring, seconds.
    #[arg(long, default_value_t = 5)]
    pub warmup: u64,
    /// Measuring window, seconds.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// `max_gap` of the bus (registers read over between points). Unset: the agent's default for
    /// Modbus TCP (64), which reads the ten SDM630 points in one request; 8 (the serial-line
    /// default) takes two.
    #[arg(long)]
    pub max_gap: Option<u16>,
    /// Publish to a stock mosquitto started here (Debian package mosquitto) instead of the
    /// embedded broker.
    #[arg(long)]
    pub mosquitto: bool,
    /// Then measure this program doing the same job in C (built from agent/bench-c/steady.c; see
    /// its first lines) the same way, against the same simulator and broker.
    #[arg(long)]
    pub c_program: Option<std::path::PathBuf>,
}

#[derive(clap::Args)]
pub struct ModbusArgs {
    /// Measuring window per client, seconds.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Registers per read.
    #[arg(long, default_value_t = 10)]
    pub count: u16,
}

/// SDM630 f32 input registers (voltages, currents, power, pf, frequency, energy).
pub(super) const SDM630_F32: [(&str, u16); 10] = [
    ("voltage_l1", 0),
    ("voltage_l2", 2),
    ("voltage_l3", 4),
    ("current_l1", 6),
    ("current_l2", 8),
    ("current_l3", 10),
    ("total_power", 52),
    ("power_factor", 62),
    ("frequency", 70),
    ("energy_import", 72),
];

pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

#[derive(Clone, Copy)]
pub(super) struct BenchJob {
    pub meters: usize,
    pub points: usize,
    pub interval: f64,
    pub window: u16,
    pub max_gap: Option<u16>,
}

pub(super) fn bench_config(
    dir: &Path,
    sim: std::net::SocketAddr,
    broker: std::net::SocketAddr,
    job: &BenchJob,
) -> String {
    let BenchJob {
        meters,
        points,
        interval,
        window,
        max_gap,
    } = *job;
    let mut s = String::new();
    let _ = write!(
        s,
        "[gateway]\nid = \"gw-01\"\nsite = \"plant-a\"\ndata_dir = \"{}\"\nstore_max_mb = 512\n\n\
         [mqtt]\nurl = \"mqtt://{broker}\"\nmax_inflight = {window}\n\n\
         [[bus]]\nname = \"sim\"\ntransport = \"tcp\"\naddress = \"{sim}\"\ntimeout_ms = 1000\nretries = 1\n",
        dir.join("data").display()
    );
    if let Some(g) = max_gap {
        let _ = writeln!(s, "max_gap = {g}");
    }
    s.push('\n');
    for m in 0..meters {
        let _ = write!(
            s,
            "[[meter]]\nname = \"m{m:03}\"\nbus = \"sim\"\nunit_id = 1\npoll_interval_s = {interval:?}\n\n"
        );
        for (name, addr) in SDM630_F32.iter().take(points.clamp(1, 10)) {
            let _ = write!(
                s,
                "  [[meter.point]]\n  name = \"{name}\"\n  register = \"input\"\n  address = {addr}\n  type = \"f32\"\n  unit = \"x\"\n  kind = \"gauge\"\n\n"
            );
        }
    }
    s
}

/// What a process used so far.
struct Usage {
    /// utime + stime, clock ticks (10 ms).
    ticks: u64,
    /// CPU time of its live threads, ns (`/proc/<pid>/task/*/schedstat`): precise where ticks
    /// are coarse (a 0.3% process gets 3 ticks in 10 s).
    cpu_ns: u64,
    /// Peak RSS (VmHWM), kB.
    hwm_kb: u64,
    /// Bytes it caused to be written to storage (`write_bytes` of `/proc/<pid>/io`).
    disk_written: u64,
}

fn proc_usage(pid: u32) -> anyhow::Result<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("unexpected /proc/pid/stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime 15.
    let utime: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
    let stime: u64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let hwm_kb = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut cpu_ns = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))?.flatten() {
        let sched = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        cpu_ns += sched
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    let disk_written = std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Ok(Usage {
        ticks: utime + stime,
        cpu_ns,
        hwm_kb,
        disk_written,
    })
}

fn ticks_per_second() -> f64 {
    // Linux USER_HZ is 100 on every mainstream configuration.
    100.0
}

/// CPU and memory of a process over a measuring window.
struct Measured {
    secs: f64,
    /// Percent of one core, from thread run times.
    cpu: f64,
    /// Percent of one core, from clock ticks, and the ticks.
    cpu_ticks: f64,
    ticks: u64,
    hwm_kb: u64,
    disk_kib_s: f64,
}

/// Wait `warmup` s, then measure process `pid` for `seconds` s.
fn measure(pid: u32, warmup: u64, seconds: u64) -> anyhow::Result<Measured> {
    std::thread::sleep(Duration::from_secs(warmup));
    let u0 = proc_usage(pid)?;
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let u1 = proc_usage(pid)?;
    let secs = start.elapsed().as_secs_f64();
    let ticks = u1.ticks - u0.ticks;
    Ok(Measured {
        secs,
        cpu: u1.cpu_ns.saturating_sub(u0.cpu_ns) as f64 / 1e9 / secs * 100.0,
        cpu_ticks: ticks as f64 / ticks_per_second() / secs * 100.0,
        ticks,
        hwm_kb: u1.hwm_kb,
        disk_kib_s: u1.disk_written.saturating_sub(u0.disk_written) as f64 / 1024.0 / secs,
    })
}

fn sigterm(child: &mut std::process::Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

pub fn steady(a: SteadyArgs) -> anyhow::Result<()> {
    let rt = runtime()?;
    let dir = tempfile_dir("plantmeter-bench-steady")?;
    let sim = rt.block_on(plantmeter_sim::start(
        plantmeter_sim::Scenario::builtin(),
        plantmeter_sim::SimOptions {
            clock: Clock::wall(),
            ..Default::default()
        },
    ))?;
    let mut _mosquitto = None;
    let broker = if a.mosquitto {
        let m = super::mosquitto::Mosquitto::start(&dir)?;
        let addr = m.addr();
        _mosquitto = Some(m);
        addr
    } else {
        crate::broker::start("127.0.0.1:0".parse()?)?
    };
    let cfg = dir.join("agent.toml");
    std::fs::write(
        &cfg,
        bench_config(
            &dir,
            sim.addr(),
            broker,
            &BenchJob {
                meters: a.meters,
                points: a.points,
                interval: a.interval,
                window: 100,
                max_gap: a.max_gap,
            },
        ),
    )?;
    let exe = std::env::current_exe()?;
    let mut child = std::process::Command::new(exe)
        .args(["run", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "warn")
        .spawn()
        .context("cannot start the agent")?;
    let tx0 = sim.transactions();
    let m = measure(child.id(), a.warmup, a.seconds);
    let tx = sim.transactions() - tx0;
    sigterm(&mut child);
    let m = m?;
    // Read after the clean exit: the agent writes its final status then (in steady state the
    // file is rewritten only every few seconds).
    let status = crate::state::read_status_file(&dir.join("data"));
    let gap = a
        .max_gap
        .map_or("max_gap default".to_string(), |g| format!("max_gap {g}"));
    println!(
        "steady: {} meters x {} f32 points every {} s ({gap}) to {}, {:.0} s measured after {} s warm-up",
        a.meters,
        a.points,
        a.interval,
        if a.mosquitto { "mosquitto" } else { "the embedded broker" },
        m.secs,
        a.warmup
    );
    println!(
        "  modbus transactions {tx} ({:.1}/s, warm-up included); acked by the broker since start: {}",
        tx as f64 / (m.secs + a.warmup as f64),
        status.map(|s| s.acked).unwrap_or(0)
    );
    let show = |who: &str, m: &Measured| {
        println!(
            "  {who} peak RSS (VmHWM): {:.1} MB",
            m.hwm_kb as f64 / 1024.0
        );
        println!(
            "  {who} CPU: {:.3}% of one core (thread run time; from clock ticks: {:.2}%, {} ticks)",
            m.cpu, m.cpu_ticks, m.ticks
        );
        println!("  {who} disk writes: {:.1} KiB/s", m.disk_kib_s);
    };
    show("agent", &m);
    if let Some(c) = &a.c_program {
        let journal = dir.join("steady-c.journal");
        let mut child = std::process::Command::new(c)
            .arg(sim.addr().ip().to_string())
            .arg(sim.addr().port().to_string())
            .arg(broker.ip().to_string())
            .arg(broker.port().to_string())
            .arg(a.meters.to_string())
            .arg(a.interval.to_string())
            .arg(&journal)
            .spawn()
            .with_context(|| format!("cannot start {}", c.display()))?;
        let tx0 = sim.transactions();
        let cm = measure(child.id(), a.warmup, a.seconds);
        let ctx = sim.transactions() - tx0;
        sigterm(&mut child);
        let cm = cm?;
        println!(
            "  C program (libmodbus + libmosquitto, one fdatasync per round): modbus transactions {ctx}"
        );
        show("C", &cm);
        println!(
            "  agent / C: CPU {:.2}x, peak RSS {:.2}x",
            m.cpu / cm.cpu.max(1e-9),
            m.hwm_kb as f64 / cm.hwm_kb.max(1) as f64
        );
    }
    println!("  targets: RSS <= 24 MB, CPU <= 0.3%; against C: CPU <= 1.2x, RSS <= 8 MB");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

pub fn modbus(a: ModbusArgs) -> anyhow::Result<()> {
    let rt = runtime()?;
    let sim = rt.block_on(plantmeter_sim::start(
        plantmeter_sim::Scenario::builtin(),
        plantmeter_sim::SimOptions::default(),
    ))?;
    let addr = sim.addr();
    let window = Duration::from_secs(a.seconds);
    let ours: anyhow::Result<(u64, f64)> = rt.block_on(async {
        let mut ctx =
            tokio_modbus::client::tcp::connect_slave(addr, tokio_modbus::Slave(1)).await?;
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < window {
            ctx.read_input_registers(0, a.count)
                .await?
                .map_err(|e| anyhow::anyhow!("exception {e}"))?;
            n += 1;
        }
        Ok((n, start.elapsed().as_secs_f64()))
    });
    let (n, secs) = ours?;
    let ours_rate = n as f64 / secs;
    println!(
        "modbus: plantmeter (tokio-modbus) {ours_rate:.0} transactions/s on one connection ({n} reads of {} registers)",
        a.count
    );
    let script = format!(
        "import time\nfrom pymodbus.client import ModbusTcpClient\n\
         c = ModbusTcpClient('{}', port={})\nc.connect()\nn = 0\nt0 = time.perf_counter()\n\
         while time.perf_counter() - t0 < {}:\n    r = c.read_input_registers({}, count={}, device_id=1)\n    n += 1\n\
         print(n / (time.perf_counter() - t0))\n",
        addr.ip(),
        addr.port(),
        a.seconds,
        0,
        a.count
    );
    let py = std::thread::scope(|s| {
        s.spawn(|| {
            std::process::Command::new("python3")
                .args(["-c", &script])
                .output()
        })
        .join()
    });
    // Keep the simulator serving while pymodbus runs: it lives on the runtime's worker thread.
    match py {
        Ok(Ok(out)) if out.status.success() => {
            let rate: f64 = String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .unwrap_or(0.0);
            println!("modbus: pymodbus {rate:.0} transactions/s on one connection, same server");
            if rate > 0.0 {
                println!(
                    "modbus: ratio plantmeter / pymodbus = {:.1}x",
                    ours_rate / rate
                );
            }
        }
        Ok(Ok(out)) => println!(
            "modbus: pymodbus unavailable ({})",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("failed")
        ),
        _ => println!("modbus: pymodbus unavailable (no python3)"),
    }
    drop(rt);
    Ok(())
}

pub(super) fn tempfile_dir(prefix: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
