//! `plantmeter bench <what>`: benchmarks that print figures (not timed tests).

mod agent;
mod audit;
mod backlog;
mod drain;
mod killloop;
mod meterbus;
mod mosquitto;

#[derive(clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: Bench,
}

#[derive(clap::Subcommand)]
pub enum Bench {
    /// Steady job: N meters x M f32 points polled against the simulator, publishing to a local broker; peak RSS, CPU.
    Steady(agent::SteadyArgs),
    /// Modbus TCP transactions/s on one connection against the simulator.
    Modbus(agent::ModbusArgs),
    /// DL/T 645 readings/s on one bus (the agent's link against the simulator) beside the line's limit at a baud rate.
    Dlt645(meterbus::Dlt645Args),
    /// Memory with the broker unreachable: RSS vs records waiting, and after a restart on them.
    Backlog(backlog::BacklogArgs),
    /// Backlog drain: N stored messages delivered at QoS 1 (embedded broker, --mosquitto or --broker), beside a bare rumqttc publisher, with and without a subscriber.
    Drain(drain::DrainArgs),
    /// The agent SIGKILLed at random moments and restarted (100 cycles) while polling, a subscriber throughout: seqs, duplicates, audit totals.
    Killloop(killloop::KillLoopArgs),
    /// Audit report over a year of hourly aggregates.
    Report(audit::ReportBenchArgs),
    /// CSV import rows/s.
    Import(audit::ImportBenchArgs),
}

pub fn main(args: BenchArgs) -> anyhow::Result<()> {
    match args.what {
        Bench::Steady(a) => agent::steady(a),
        Bench::Modbus(a) => agent::modbus(a),
        Bench::Dlt645(a) => meterbus::dlt645(a),
        Bench::Backlog(a) => backlog::backlog(a),
        Bench::Drain(a) => drain::drain(a),
        Bench::Killloop(a) => killloop::killloop(a),
        Bench::Report(a) => audit::report(a),
        Bench::Import(a) => audit::import(a),
    }
}
