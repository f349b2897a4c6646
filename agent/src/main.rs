//! `plantmeter`: the edge agent. Polls Modbus meters, buffers every reading in sled, publishes to MQTT
//! at least once, and computes the cleaner-production audit baseline at the edge.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod audit;
#[cfg(feature = "demo")]
mod bench;
#[cfg(feature = "demo")]
mod broker;
mod check;
#[cfg(feature = "demo")]
mod demo;
mod exit;
#[cfg(not(feature = "demo"))]
mod gateway_build;
mod hj212;
mod local_time;
mod logging;
mod meta;
mod metrics;
mod notify;
mod poller;
mod progress;
mod publisher;
mod read;
mod run;
mod state;
mod status;
mod store;

use exit::BadInput;

// The gateway build (without the `demo` feature) still knows the commands, to say how to get them.
#[cfg(not(feature = "demo"))]
use gateway_build::{
    NotInThisBuild as DemoArgs, NotInThisBuild as BenchArgs, NotInThisBuild as BrokerArgs,
};
#[cfg(feature = "demo")]
use {bench::BenchArgs, broker::BrokerArgs, demo::DemoArgs};

#[derive(Parser)]
#[command(name = "plantmeter", version, about, long_about = None)]
struct Cli {
    /// Log format: `text` for a terminal, `json` for journald/ELK.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent until SIGINT/SIGTERM.
    Run(run::RunArgs),
    /// Validate a config and print the poll plan.
    Check(check::CheckArgs),
    /// The whole system on this machine: simulated plant, embedded broker, agent, audit report.
    #[cfg_attr(
        not(feature = "demo"),
        command(about = "Not in this gateway build (the demo)")
    )]
    Demo(DemoArgs),
    /// Load historical readings from CSV into the store.
    Import(audit::import::ImportArgs),
    /// The audit report from the store.
    Report(audit::report::ReportArgs),
    /// Record a meter replacement (old meter's final, new meter's start reading).
    Replace(audit::replace::ReplaceArgs),
    /// Check a report's seal (sha256, signature) and, with --config, every figure against the store.
    Verify(audit::verify::VerifyArgs),
    /// Print the public key (PEM) of a report signing key, for whoever verifies the reports.
    Key(audit::key::KeyArgs),
    /// The store: backlog, oldest unsent, evictions, per-meter state.
    Status(status::StatusArgs),
    /// Poll one meter now and print raw registers, decoded values, quality and timing (stores nothing).
    Read(read::ReadArgs),
    /// Benchmarks that print figures.
    #[cfg_attr(
        not(feature = "demo"),
        command(about = "Not in this gateway build (the benchmarks)")
    )]
    Bench(BenchArgs),
    /// Run an embedded MQTT broker (rumqttd) until killed: for the demo and tests.
    #[command(hide = true)]
    Broker(BrokerArgs),
}

/// `plantmeter report ... | head`: Rust ignores SIGPIPE, so a write into a closed pipe is an error, and
/// std's print macros panic on it; the release build aborts on a panic (exit 134, "Aborted"). A
/// command whose reader went away has nothing left to do: it ends quietly with exit 1 (the hook runs
/// before the abort). What a command commits (an import) is committed before it prints its summary.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let p = info.payload();
        let msg = p
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| p.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to std") && msg.contains("Broken pipe") {
            std::process::exit(1);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    quiet_on_closed_pipe();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // Benchmarks print figures; the embedded broker's connection chatter would bury them.
    let default_filter = match cli.command {
        Command::Bench(_) => "warn,rumqttd=off",
        _ => "info",
    };
    logging::init(&cli.log_format, default_filter);
    let result = match cli.command {
        Command::Run(a) => run::main(a),
        Command::Check(a) => check::main(a),
        #[cfg(feature = "demo")]
        Command::Demo(a) => demo::main(a),
        Command::Import(a) => audit::import::main(a),
        Command::Report(a) => audit::report::main(a),
        Command::Verify(a) => audit::verify::main(a),
        Command::Replace(a) => audit::replace::main(a),
        Command::Key(a) => audit::key::main(a),
        Command::Status(a) => status::main(a),
        Command::Read(a) => read::main(a),
        #[cfg(feature = "demo")]
        Command::Bench(a) => bench::main(a),
        #[cfg(feature = "demo")]
        Command::Broker(a) => broker::main(a),
        #[cfg(not(feature = "demo"))]
        Command::Demo(_) => gateway_build::main("demo"),
        #[cfg(not(feature = "demo"))]
        Command::Bench(_) => gateway_build::main("bench"),
        #[cfg(not(feature = "demo"))]
        Command::Broker(_) => gateway_build::main("broker"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of the output went away (`| head`): nothing to say, and nowhere to say it.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::from(1)
        }
        Err(e) => {
            if let Some(bad) = e.downcast_ref::<BadInput>() {
                exit::print_error(&bad.to_string());
                ExitCode::from(2)
            } else {
                exit::print_error(&format!("plantmeter: error: {e:#}"));
                ExitCode::from(1)
            }
        }
    }
}
