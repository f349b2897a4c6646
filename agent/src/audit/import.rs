//! `plantmeter import --config FILE --csv FILE`

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ImportArgs {
    #[arg(long)]
    pub config: PathBuf,
    /// Header `ts,meter,point,value`.
    #[arg(long)]
    pub csv: PathBuf,
}

pub fn main(_args: ImportArgs) -> anyhow::Result<()> {
    anyhow::bail!("import: not built yet (issue audit)")
}
