//! tracing setup: text for a terminal, JSON for journald/ELK. `RUST_LOG` overrides the level (default info).
//!
//! `RUST_LOG` takes a level and `target=level` directives (`warn,plantmeter=debug,rumqttc=off`):
//! tracing-subscriber's `Targets`. Its `EnvFilter` (span and field filters as well) would link a
//! regex engine, about 0.5 MB of the gateway binary (measured), for nothing the agent needs.
//! In release builds the libraries that log through `log` keep only info and above (the `log`
//! dependency's `release_max_level_info` in Cargo.toml): `rumqttc=debug` shows nothing more there.

use std::str::FromStr as _;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// `default`: the filter when `RUST_LOG` is not set (or not understood).
pub fn init(format: &str, default: &str) {
    let filter = filter(std::env::var("RUST_LOG").ok().as_deref(), default);
    // Colour only on a terminal: journald, files and CI logs get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let layer = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    // A second init (tests) is harmless: try_init reports it and we ignore it.
    let _ = if format == "json" {
        registry.with(layer.json()).try_init()
    } else {
        registry.with(layer).try_init()
    };
}

/// The filter of `RUST_LOG` (`rust_log`), or of `default` when it is unset or not understood.
fn filter(rust_log: Option<&str>, default: &str) -> Targets {
    rust_log
        .and_then(|v| Targets::from_str(v).ok())
        .or_else(|| Targets::from_str(default).ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn rust_log_levels_and_targets() {
        let f = filter(Some("warn,plantmeter=debug,rumqttc=off"), "info");
        assert!(f.would_enable("plantmeter::run", &Level::DEBUG));
        assert!(!f.would_enable("plantmeter::run", &Level::TRACE));
        assert!(!f.would_enable("sled::tree", &Level::INFO));
        assert!(f.would_enable("sled::tree", &Level::WARN));
        assert!(!f.would_enable("rumqttc::state", &Level::ERROR));
    }

    #[test]
    fn without_rust_log_or_with_one_not_understood_the_default() {
        for rust_log in [None, Some("plantmeter=loud")] {
            let f = filter(rust_log, "warn,rumqttd=off");
            assert!(f.would_enable("plantmeter::run", &Level::WARN));
            assert!(!f.would_enable("plantmeter::run", &Level::INFO));
            assert!(!f.would_enable("rumqttd::server", &Level::ERROR));
        }
    }
}
