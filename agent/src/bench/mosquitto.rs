//! A stock mosquitto (Debian package `mosquitto`) as a child process on a free loopback port: the
//! broker a plant would run, for benches that measure against it rather than the embedded rumqttd.
//! Started as `mosquitto -p PORT` (no config file: mosquitto 2 then listens on loopback only and
//! accepts anonymous clients); killed and reaped when dropped.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// Where Debian installs the broker (`/usr/sbin` is not on every user's PATH).
const CANDIDATES: [&str; 2] = ["mosquitto", "/usr/sbin/mosquitto"];

/// A running mosquitto child.
pub struct Mosquitto {
    child: Child,
    addr: SocketAddr,
}

impl Mosquitto {
    /// Start mosquitto on a free loopback port, its log in `dir/mosquitto.log`; returns once it
    /// accepts connections (within 5 s).
    pub fn start(dir: &Path) -> anyhow::Result<Mosquitto> {
        let addr = crate::broker::free_loopback_addr()?;
        let log = dir.join("mosquitto.log");
        let mut last = None;
        for exe in CANDIDATES {
            let spawned = Command::new(exe)
                .args(["-p", &addr.port().to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(
                    std::fs::File::create(&log)
                        .with_context(|| format!("cannot create {}", log.display()))?,
                )
                .spawn();
            match spawned {
                Ok(child) => {
                    let mut m = Mosquitto { child, addr };
                    m.wait_listening(&log)?;
                    return Ok(m);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(anyhow::anyhow!(
            "cannot start mosquitto ({}): install the Debian package mosquitto (apt-get install -y mosquitto)",
            last.map_or_else(|| "not found".to_string(), |e| e.to_string())
        ))
    }

    fn wait_listening(&mut self, log: &Path) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(100)).is_ok() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                anyhow::bail!(
                    "mosquitto exited ({status}) before listening on {}; see {}",
                    self.addr,
                    log.display()
                );
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "mosquitto did not listen on {} within 5 s; see {}",
                    self.addr,
                    log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id (for CPU and RSS figures).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
