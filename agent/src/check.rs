//! `plantmeter check --config FILE`: validate and print the poll plan.

use std::path::PathBuf;

use plantmeter_common::config;

use crate::exit::BadInput;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The agent's TOML configuration.
    #[arg(long)]
    pub config: PathBuf,
}

/// Print the poll plan and return Ok, or return every error of the file as `BadInput` (exit code 2).
pub fn main(args: CheckArgs) -> anyhow::Result<()> {
    match config::load(&args.config) {
        Ok(plan) => {
            print!("{}", config::describe(&plan));
            Ok(())
        }
        Err(errors) => Err(anyhow::Error::new(BadInput(errors.to_string()))),
    }
}
