//! `plantmeter run --config FILE`: the agent.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The agent's TOML configuration.
    #[arg(long)]
    pub config: PathBuf,
    /// Testing and demo: a virtual clock starting at this instant (RFC 3339).
    #[arg(long)]
    pub clock_start: Option<String>,
    /// Testing and demo: the virtual clock runs this many times faster than real time.
    #[arg(long)]
    pub clock_speed: Option<f64>,
}

pub fn main(_args: RunArgs) -> anyhow::Result<()> {
    anyhow::bail!("run: not built yet (issue agent-core)")
}
