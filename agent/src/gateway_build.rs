//! What the gateway build says in place of the demo, the benchmarks and the embedded broker.
//!
//! `cargo build --release -p plantmeter-agent` (what `deploy/install.sh` and the container build) is
//! the binary installed on gateways: it polls, stores, publishes and audits, and leaves out the
//! `demo` feature (the demo, the benchmarks, the embedded MQTT broker rumqttd and the simulator).
//! A workspace build (`cargo build --release` at the root, `cargo run --release --bin plantmeter --
//! demo`, `cargo test`) has them: the end-to-end tests' crate turns the feature on.

use crate::exit::BadInput;

/// Whatever follows `plantmeter demo|bench|broker` in the gateway build, `--help` included: the
/// answer is the same.
#[derive(clap::Args, Debug)]
#[command(disable_help_flag = true)]
pub struct NotInThisBuild {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    _args: Vec<String>,
}

/// `plantmeter <command>` in the gateway build: exit 2 with how to get a binary that has it.
pub fn main(command: &str) -> anyhow::Result<()> {
    Err(BadInput(format!(
        "plantmeter {command}: not in this build. The gateway build (cargo build --release -p \
         plantmeter-agent) leaves out the demo, the benchmarks and the embedded MQTT broker. Build \
         the full binary from the repository root with `cargo build --release` (or run `cargo run \
         --release --bin plantmeter -- demo`), or add `--features demo` to the -p build."
    ))
    .into())
}
