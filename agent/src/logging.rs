//! tracing setup: text for a terminal, JSON for journald/ELK. `RUST_LOG` overrides the level (default info).
//!
//! `RUST_LOG` takes a level and `target=level` directives (`warn,plantmeter=debug,rumqttc=off`):
//! tracing-subscriber's `Targets`. Its `EnvFilter` (span and field filters as well) would link a
//! regex engine, about 0.5 MB of the gateway binary (measured), for nothing the agent needs.

use std::str::FromStr as _;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// `default`: the filter when `RUST_LOG` is not set (or not understood).
pub fn init(format: &str, default: &str) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| Targets::from_str(&v).ok())
        .or_else(|| Targets::from_str(default).ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
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
