//! `plantmeter report --config FILE [--from --to] --format json|csv|html [--out FILE] [--lang en|zh]`

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ReportArgs {
    #[arg(long)]
    pub config: PathBuf,
    #[arg(long)]
    pub from: Option<String>,
    #[arg(long)]
    pub to: Option<String>,
    #[arg(long, value_parser = ["json", "csv", "html"])]
    pub format: String,
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, default_value = "en", value_parser = ["en", "zh"])]
    pub lang: String,
}

pub fn main(_args: ReportArgs) -> anyhow::Result<()> {
    anyhow::bail!("report: not built yet (issue audit)")
}
