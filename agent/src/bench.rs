//! `plantmeter bench ...`: benchmarks that print figures.

#[derive(clap::Args)]
pub struct BenchArgs {}

pub fn main(_args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("bench: not built yet")
}
