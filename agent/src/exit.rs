//! Exit codes: 0 ok, 2 bad input (config, CSV, arguments), 1 anything else.

use std::fmt;

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
