//! `plantmeter check --config FILE`: validate and print the poll plan.

use std::path::PathBuf;

use plantmeter_common::config;

use crate::exit::{load_plan, BadInput, Needs};

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The agent's TOML configuration.
    #[arg(long)]
    pub config: PathBuf,
    /// Validate the file alone, not the files it names (password, certificates): for a config written
    /// for another machine.
    #[arg(long)]
    pub skip_files: bool,
    /// A DL/T 645 bus with one meter on it: print that meter's address (read-address command 13H).
    #[arg(long, value_name = "BUS")]
    pub scan: Option<String>,
}

/// Print the poll plan and return Ok, or return every error of the file as `BadInput` (exit code 2).
/// The files the config names (MQTT password, CA, client certificate and key) are read as `run` reads
/// them, so that `check` fails where `run` would; warnings about them go to stderr.
pub fn main(args: CheckArgs) -> anyhow::Result<()> {
    let plan = load_plan(&args.config, Needs::Polling)?;
    if !args.skip_files {
        let warnings = config::files::check_files(&plan)
            .map_err(|errors| anyhow::Error::new(BadInput(errors.to_string())))?;
        for w in warnings {
            eprintln!("{}: {w}", args.config.display());
        }
        if let Some(f) = &plan.sign_key_file {
            crate::audit::integrity::load_key(f).map_err(|e| {
                anyhow::Error::new(BadInput(format!("{}: {e:#}", args.config.display())))
            })?;
        }
    }
    print!("{}", config::describe(&plan));
    if let Some(bus) = &args.scan {
        crate::poller::meter_link::scan(&plan, bus)?;
    }
    Ok(())
}
