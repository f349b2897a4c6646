//! Agent benchmarks: steady polling, Modbus transactions/s, backlog drain.

#[derive(clap::Args)]
pub struct SteadyArgs {}
#[derive(clap::Args)]
pub struct ModbusArgs {}
#[derive(clap::Args)]
pub struct DrainArgs {}

pub fn steady(_a: SteadyArgs) -> anyhow::Result<()> {
    anyhow::bail!("bench steady: not built yet")
}
pub fn modbus(_a: ModbusArgs) -> anyhow::Result<()> {
    anyhow::bail!("bench modbus: not built yet")
}
pub fn drain(_a: DrainArgs) -> anyhow::Result<()> {
    anyhow::bail!("bench drain: not built yet")
}
