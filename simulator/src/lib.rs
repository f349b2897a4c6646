//! plantmeter-sim: simulated meters with the register maps of real models, a plant behind them,
//! faults, a virtual clock and the ground truth.
//!
//! ```no_run
//! # async fn demo() -> Result<(), plantmeter_sim::SimError> {
//! use plantmeter_sim::{start, Scenario, SimOptions};
//! let sim = start(Scenario::builtin(), SimOptions::default()).await?;
//! println!("Modbus TCP on {}", sim.addr());
//! let truth = sim.truth(sim.clock().start_ms(), sim.now_ms());
//! println!("{} t produced so far", truth.totals.production);
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Values are a pure function of (seed, virtual time), see [`plant`]: rates are constant within a
//! slot, counters are their exact integral, so the truth equals what the counters advanced.

pub mod agent_config;
pub mod engine;
pub mod fault;
pub mod meter;
pub mod meterbus;
pub mod modbus;
pub mod plant;
pub mod scenario;
pub mod server;
pub mod truth;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use plantmeter_common::Clock;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use agent_config::{AgentBus, AgentConfigOptions};
pub use engine::{Outcome, Simulation};
pub use fault::{Fault, FaultWindow, RandomFault};
pub use meter::MeterCounts;
pub use plantmeter_common::templates::Template;
pub use scenario::{MeterSpec, Scenario, ScenarioError};
pub use truth::{Amounts, Truth, TruthDay};

/// Why the simulator could not start or act.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("scenario: {0}")]
    Scenario(#[from] ScenarioError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("pseudo-terminal: {0}")]
    Pty(String),
    #[error("{0}")]
    Meter(String),
}

/// How to run a simulated plant.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Modbus TCP listener (`127.0.0.1:0` picks a free port).
    pub listen: String,
    /// Optional RTU-over-TCP listener.
    pub rtu_over_tcp_listen: Option<String>,
    /// Also serve RTU on a pseudo-terminal.
    pub pty: bool,
    /// Overrides the scenario's seed.
    pub seed: Option<u64>,
    /// The (virtual) clock the meters live in.
    pub clock: Clock,
}

impl Default for SimOptions {
    fn default() -> SimOptions {
        SimOptions {
            listen: "127.0.0.1:0".into(),
            rtu_over_tcp_listen: None,
            pty: false,
            seed: None,
            clock: Clock::wall(),
        }
    }
}

/// A running simulated plant. Dropping it without [`SimHandle::shutdown`] stops the listeners
/// as well (the tasks see the stop signal), but does not wait for them.
pub struct SimHandle {
    sim: Arc<Simulation>,
    addr: SocketAddr,
    rtu_addr: Option<SocketAddr>,
    pty: Option<server::Pty>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

async fn bind(addr: &str) -> Result<TcpListener, SimError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Listen {
            addr: addr.to_string(),
            source,
        })
}

/// Start serving a scenario: Modbus TCP, and optionally RTU over TCP and a pty.
pub async fn start(scenario: Scenario, opts: SimOptions) -> Result<SimHandle, SimError> {
    let sim = Arc::new(Simulation::new(scenario, opts.seed, opts.clock)?);
    let (stop, rx) = watch::channel(false);
    let listener = bind(&opts.listen).await?;
    let addr = listener.local_addr().map_err(|source| SimError::Listen {
        addr: opts.listen.clone(),
        source,
    })?;
    let mut tasks = vec![tokio::spawn(server::serve_tcp(
        listener,
        sim.clone(),
        rx.clone(),
    ))];
    let mut rtu_addr = None;
    if let Some(a) = &opts.rtu_over_tcp_listen {
        let l = bind(a).await?;
        rtu_addr = Some(l.local_addr().map_err(|source| SimError::Listen {
            addr: a.clone(),
            source,
        })?);
        tasks.push(tokio::spawn(server::serve_rtu_over_tcp(
            l,
            sim.clone(),
            rx.clone(),
        )));
    }
    let pty = if opts.pty {
        Some(server::Pty::open(sim.clone()).map_err(SimError::Pty)?)
    } else {
        None
    };
    Ok(SimHandle {
        sim,
        addr,
        rtu_addr,
        pty,
        stop,
        tasks,
    })
}

impl SimHandle {
    /// The Modbus TCP address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The RTU-over-TCP address, when enabled.
    pub fn rtu_over_tcp_addr(&self) -> Option<SocketAddr> {
        self.rtu_addr
    }

    /// The pty's slave device (`/dev/pts/N`), to open like `/dev/ttyUSB0`.
    pub fn pty_path(&self) -> Option<&Path> {
        self.pty.as_ref().map(|p| p.path.as_path())
    }

    /// The engine: plant, meters, truth.
    pub fn sim(&self) -> &Simulation {
        &self.sim
    }

    /// The engine, shared (for [`meterbus::start`]: DL/T 645 and CJ/T 188 meters of the plant).
    pub fn sim_arc(&self) -> Arc<Simulation> {
        self.sim.clone()
    }

    pub fn clock(&self) -> Clock {
        self.sim.clock()
    }

    /// Virtual now, UTC ms.
    pub fn now_ms(&self) -> i64 {
        self.sim.clock().now_ms()
    }

    /// The truth over `[from_ms, to_ms)`.
    pub fn truth(&self, from_ms: i64, to_ms: i64) -> Truth {
        self.sim.truth(from_ms, to_ms)
    }

    /// The agent config for this plant, pointing at this simulator's TCP listener.
    pub fn agent_config(&self, mqtt_url: &str, data_dir: &str) -> String {
        let mut o = AgentConfigOptions::tcp(self.addr.to_string());
        o.mqtt_url = mqtt_url.to_string();
        o.data_dir = data_dir.to_string();
        self.sim.agent_config(&o)
    }

    /// The agent config with every option chosen by the caller.
    pub fn agent_config_with(&self, o: &AgentConfigOptions) -> String {
        self.sim.agent_config(o)
    }

    /// A fault on `meter` from now for `duration` of virtual time.
    pub fn inject(&self, meter: &str, fault: Fault, duration: Duration) -> Result<(), SimError> {
        let now = self.now_ms();
        let span = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 2);
        self.sim
            .inject_window(meter, fault, now, now.saturating_add(span))
            .map_err(SimError::Meter)
    }

    /// A fault on `meter` over `[from_ms, to_ms)` of virtual time.
    pub fn inject_window(
        &self,
        meter: &str,
        fault: Fault,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<(), SimError> {
        self.sim
            .inject_window(meter, fault, from_ms, to_ms)
            .map_err(SimError::Meter)
    }

    /// Switch the equipment `meter` measures off over `[from_ms, to_ms)` of virtual time (a treatment
    /// facility stopped: its meter answers with power 0 and counters standing still).
    pub fn switch_off(&self, meter: &str, from_ms: i64, to_ms: i64) -> Result<(), SimError> {
        self.sim
            .switch_off(meter, from_ms, to_ms)
            .map_err(SimError::Meter)
    }

    /// End every fault window and random fault of `meter`.
    pub fn clear_faults(&self, meter: &str) -> Result<(), SimError> {
        self.sim.clear_faults(meter).map_err(SimError::Meter)
    }

    /// Replace `meter` now: its main counters restart at 0. Returns the virtual instant.
    pub fn replace_meter(&self, meter: &str) -> Result<i64, SimError> {
        let now = self.now_ms();
        self.sim
            .replace_meter_at(meter, now, 0.0)
            .map_err(SimError::Meter)?;
        Ok(now)
    }

    /// Wire counts of one meter.
    pub fn stats(&self, meter: &str) -> Option<MeterCounts> {
        self.sim.stats(meter)
    }

    /// Requests handled by all meters and transports.
    pub fn transactions(&self) -> u64 {
        self.sim.transactions()
    }

    /// Stop the listeners and the pty, and wait for them.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        if let Some(mut p) = self.pty.take() {
            p.close();
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
