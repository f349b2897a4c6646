//! `plantmeter check --config FILE`: validate and print the poll plan.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The agent's TOML configuration.
    #[arg(long)]
    pub config: PathBuf,
}

pub fn main(_args: CheckArgs) -> anyhow::Result<()> {
    anyhow::bail!("check: not built yet (issue foundation)")
}
