//! `plantmeter demo`: simulated plant, embedded broker and agent on this machine.

#[derive(clap::Args)]
pub struct DemoArgs {}

pub fn main(_args: DemoArgs) -> anyhow::Result<()> {
    anyhow::bail!("demo: not built yet (issue demo-e2e)")
}
