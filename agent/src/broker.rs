//! An embedded MQTT broker (rumqttd) for `plantmeter demo` and the tests: `plantmeter broker --listen ADDR`
//! runs one as its own process, so a test or the demo can kill and restart it like a real broker outage.
//!
//! rumqttd's `Broker::start()` blocks forever and has no shutdown: it runs on its own thread, and a broker
//! that must stop runs in its own process.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

#[derive(clap::Args)]
pub struct BrokerArgs {
    /// Address to listen on (MQTT 3.1.1).
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub listen: SocketAddr,
    /// Write the bound address to this file once the broker accepts connections (for scripts and tests).
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
}

/// `plantmeter broker`: run an embedded broker until killed.
pub fn main(args: BrokerArgs) -> anyhow::Result<()> {
    let addr = start(args.listen)?;
    eprintln!("plantmeter broker: listening on {addr}");
    if let Some(f) = args.ready_file {
        std::fs::write(&f, addr.to_string())
            .with_context(|| format!("cannot write {}", f.display()))?;
    }
    loop {
        std::thread::park();
    }
}

/// A free TCP port on loopback (bound then released; the caller binds it right after).
pub fn free_loopback_addr() -> anyhow::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").context("cannot bind a loopback port")?;
    Ok(l.local_addr()?)
}

/// Start rumqttd on `listen` (port 0: a free loopback port) on its own thread; returns once it accepts
/// connections.
pub fn start(listen: SocketAddr) -> anyhow::Result<SocketAddr> {
    let addr = if listen.port() == 0 {
        let free = free_loopback_addr()?;
        SocketAddr::new(listen.ip(), free.port())
    } else {
        listen
    };
    let config: rumqttd::Config = toml::from_str(&config_toml(addr))
        .context("internal error: embedded broker configuration")?;
    let mut broker = rumqttd::Broker::new(config);
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!("embedded MQTT broker stopped: {e}");
            }
        })
        .context("cannot start the broker thread")?;
    wait_until_listening(addr, Duration::from_secs(5))?;
    Ok(addr)
}

fn wait_until_listening(addr: SocketAddr, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "the embedded MQTT broker did not start listening on {addr} (port in use?)"
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Small segments keep the broker's memory modest; payloads up to 4 MiB carry the audit report.
fn config_toml(addr: SocketAddr) -> String {
    format!(
        r#"id = 0
[router]
id = 0
max_connections = 1000
max_outgoing_packet_count = 1000
max_segment_size = 8388608
max_segment_count = 8

[v4.1]
name = "v4-1"
listen = "{addr}"
next_connection_delay_ms = 1
  [v4.1.connections]
  connection_timeout_ms = 60000
  max_payload_size = 4194304
  max_inflight_count = 1000
  dynamic_filters = true
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_broker_accepts_connections() {
        let addr = start("127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(TcpStream::connect(addr).is_ok());
    }
}
