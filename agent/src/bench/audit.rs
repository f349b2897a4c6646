//! Audit benchmarks: report over a year of hourly aggregates, CSV import rows/s.

#[derive(clap::Args)]
pub struct ReportBenchArgs {}
#[derive(clap::Args)]
pub struct ImportBenchArgs {}

pub fn report(_a: ReportBenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("bench report: not built yet")
}
pub fn import(_a: ImportBenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("bench import: not built yet")
}
