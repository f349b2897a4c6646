//! `plantmeter check --config FILE`: validate and print the poll plan.

use std::path::PathBuf;

use plantmeter_common::{config, Plan};

use crate::exit::{load_plan, BadInput, Needs};

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The agent's TOML configuration.
    #[arg(long)]
    pub config: PathBuf,
    /// Validate the file alone, not the files it names (password, certificates) nor its serial
    /// devices: for a config written for another machine.
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
    // Wiring mistakes (a unit id twice on a bus, 40001-style addresses; the serial devices only on
    // the machine itself).
    config::wiring::check_wiring(&plan, !args.skip_files)
        .map_err(|errors| anyhow::Error::new(BadInput(errors.to_string())))?;
    if !args.skip_files {
        for w in named_files(&plan)? {
            eprintln!("{}: {}", args.config.display(), config::cut_echo(&w));
        }
    }
    print!("{}", config::describe(&plan));
    if let Some(bus) = &args.scan {
        crate::poller::meter_link::scan(&plan, bus)?;
    }
    Ok(())
}

/// Read every file the config names (MQTT password, CA, client certificate and key, the HJ 212
/// password, the report signing key) as `run` will: Ok with warnings, or `BadInput` (exit 2) naming each
/// file that cannot serve (missing, a folder, empty, not PEM). `run` calls it before it starts, so that
/// systemd's `RestartPreventExitStatus=2` stops restarting an agent that can never connect.
pub fn named_files(plan: &Plan) -> anyhow::Result<Vec<String>> {
    let warnings = config::files::check_files(plan)
        .map_err(|errors| anyhow::Error::new(BadInput(errors.to_string())))?;
    if let Some(f) = &plan.sign_key_file {
        crate::audit::integrity::load_key(f).map_err(|e| {
            anyhow::Error::new(BadInput(format!("{}: {e:#}", plan.source.display())))
        })?;
    }
    Ok(warnings)
}
