//! Exit codes: 0 ok, 2 bad input (config, CSV, arguments), 1 anything else; and the config
//! loader of every command, whose errors are bad input.

use std::fmt;
use std::path::Path;

use plantmeter_common::{config, Plan};

/// An error caused by the user's input (config, CSV, arguments): exit code 2.
/// The message is printed as is, so it should already name the file, line and thing.
#[derive(Debug)]
pub struct BadInput(pub String);

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// What a command needs of the config beyond a valid file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// What every config has: the gateway, the broker, the buses and meters.
    Polling,
    /// An `[audit]` section too (import, report, verify, replace).
    Audit,
}

/// Load and validate the config; errors are `BadInput` (exit 2) with `FILE:LINE:COL: message` lines.
pub fn load_plan(path: &Path, needs: Needs) -> anyhow::Result<Plan> {
    let plan = config::load(path).map_err(|e| anyhow::Error::new(BadInput(e.to_string())))?;
    if needs == Needs::Audit && plan.audit.is_none() {
        return Err(anyhow::Error::new(BadInput(format!(
            "{}: no [audit] section: the audit needs one (timezone, baseline, production, inputs)",
            path.display()
        ))));
    }
    Ok(plan)
}

/// Print a command's error to stderr, each line cut to a few hundred bytes (`cut_echo`: a huge value
/// from a config or a CSV is echoed by its start, end and length); a closed stderr is not an error.
pub fn print_error(text: &str) {
    use std::io::Write as _;
    let mut err = std::io::stderr().lock();
    for line in text.lines() {
        if writeln!(err, "{}", config::cut_echo(line)).is_err() {
            return;
        }
    }
}
