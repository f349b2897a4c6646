//! `plantmeter key --key-file FILE`: the public key (SPKI PEM) of a report signing key, to hand to whoever
//! verifies the reports (`plantmeter verify --public-key FILE`, deploy/verify-report.py, openssl).

use std::path::PathBuf;

use super::integrity::{load_key, public_key_pem};

#[derive(clap::Args)]
pub struct KeyArgs {
    /// The ed25519 private key (PKCS#8 PEM) of `[report] sign_key_file`.
    #[arg(long)]
    pub key_file: PathBuf,
}

pub fn main(args: KeyArgs) -> anyhow::Result<()> {
    let key = load_key(&args.key_file)
        .map_err(|e| anyhow::Error::new(crate::exit::BadInput(format!("{e:#}"))))?;
    print!("{}", public_key_pem(&key)?);
    Ok(())
}
