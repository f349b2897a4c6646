//! `plantmeter status --config FILE`: backlog, oldest unsent, evictions, per-meter state.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct StatusArgs {
    /// The agent's TOML configuration.
    #[arg(long)]
    pub config: PathBuf,
}

pub fn main(_args: StatusArgs) -> anyhow::Result<()> {
    anyhow::bail!("status: not built yet (issue agent-core)")
}
