//! Embeds the build date (`PLANTMETER_BUILD_DATE_MS`, ms since the epoch): the agent does not poll
//! while the system clock reads earlier than that (a gateway without a battery clock, not set yet).
//!
//! `SOURCE_DATE_EPOCH` (seconds) gives it when set, as reproducible builds do; otherwise the start
//! of the UTC day the build script first ran. The script reruns only when that variable changes,
//! so the date may be older than the binary: an error on the safe side (the point is to catch a
//! clock at 1970 or at an image's date, not to be exact).

use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let secs = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => {
            match v.trim().parse::<u64>() {
                Ok(s) => s,
                Err(_) => {
                    println!("cargo:warning=SOURCE_DATE_EPOCH={v:?} is not a number of seconds; using today");
                    today()
                }
            }
        }
        Err(_) => today(),
    };
    println!(
        "cargo:rustc-env=PLANTMETER_BUILD_DATE_MS={}",
        secs.saturating_mul(1000)
    );
}

/// The start of the current UTC day, in seconds since the epoch.
fn today() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    now - now % 86_400
}
