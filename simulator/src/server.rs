//! Transports: Modbus TCP (one listener, a unit id per meter, as behind a serial gateway), RTU frames
//! over a TCP stream, and RTU on a pseudo-terminal. They move bytes; `engine` decides the answers,
//! and faults that live below Modbus (silence, dropped connections, garbage) are acted out here.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::engine::{garbage_bytes, Outcome, Simulation};
use crate::modbus::{other_unit, rtu_frame, take_rtu_request, tcp_frame};

/// Accept Modbus TCP connections until shutdown.
pub async fn serve_tcp(listener: TcpListener, sim: Arc<Simulation>, stop: watch::Receiver<bool>) {
    serve(listener, sim, stop, false).await;
}

/// Accept RTU-over-TCP connections until shutdown.
pub async fn serve_rtu_over_tcp(
    listener: TcpListener,
    sim: Arc<Simulation>,
    stop: watch::Receiver<bool>,
) {
    serve(listener, sim, stop, true).await;
}

async fn serve(
    listener: TcpListener,
    sim: Arc<Simulation>,
    mut stop: watch::Receiver<bool>,
    rtu: bool,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let sim = sim.clone();
                    let stop = stop.clone();
                    tracing::debug!(%peer, rtu, "connection");
                    tokio::spawn(async move {
                        let r = if rtu {
                            rtu_conn(stream, sim, stop).await
                        } else {
                            tcp_conn(stream, sim, stop).await
                        };
                        if let Err(e) = r {
                            tracing::debug!(%peer, error = %e, "connection ended");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

async fn tcp_conn(
    mut s: TcpStream,
    sim: Arc<Simulation>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut header = [0u8; 7];
    let mut pdu = [0u8; 260];
    let mut n_garbage = 0u64;
    loop {
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            r = s.read_exact(&mut header) => { r?; }
        }
        let tid = u16::from_be_bytes([header[0], header[1]]);
        let len = usize::from(u16::from_be_bytes([header[4], header[5]]));
        if !(2..=254).contains(&len) || header[2] != 0 || header[3] != 0 {
            // Not Modbus: a real gateway drops such a connection.
            return Ok(());
        }
        s.read_exact(&mut pdu[..len - 1]).await?;
        let unit = header[6];
        match sim.handle(unit, &pdu[..len - 1], true) {
            Outcome::Reply(p) => s.write_all(&tcp_frame(tid, unit, &p)).await?,
            Outcome::Delayed(d, p) => {
                tokio::time::sleep(d).await;
                s.write_all(&tcp_frame(tid, unit, &p)).await?;
            }
            Outcome::WrongUnit(p) => s.write_all(&tcp_frame(tid, other_unit(unit), &p)).await?,
            Outcome::WrongTransaction(p) => {
                s.write_all(&tcp_frame(tid.wrapping_add(1), unit, &p))
                    .await?
            }
            Outcome::Silent => {}
            Outcome::Drop => return Ok(()),
            Outcome::Garbage => {
                // A header whose protocol id and length are wrong, then noise.
                n_garbage += 1;
                let mut g = tid.to_be_bytes().to_vec();
                g.extend_from_slice(&[0x5A, 0xA5, 0x00, 0x07, unit]);
                g.extend_from_slice(&garbage_bytes(u64::from(tid) ^ n_garbage, 6));
                s.write_all(&g).await?;
            }
        }
    }
}

async fn rtu_conn(
    mut s: TcpStream,
    sim: Arc<Simulation>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    let mut n_garbage = 0u64;
    loop {
        let n = tokio::select! {
            _ = stop.changed() => return Ok(()),
            r = s.read(&mut chunk) => r?,
        };
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some((unit, pdu)) = take_rtu_request(&mut buf) {
            match sim.handle(unit, &pdu, false) {
                Outcome::Reply(p) | Outcome::WrongTransaction(p) => {
                    s.write_all(&rtu_frame(unit, &p)).await?
                }
                Outcome::WrongUnit(p) => s.write_all(&rtu_frame(other_unit(unit), &p)).await?,
                Outcome::Delayed(d, p) => {
                    tokio::time::sleep(d).await;
                    s.write_all(&rtu_frame(unit, &p)).await?;
                }
                Outcome::Silent => {}
                Outcome::Drop => return Ok(()),
                Outcome::Garbage => {
                    n_garbage += 1;
                    s.write_all(&rtu_garbage(unit, &pdu, n_garbage)).await?;
                }
            }
        }
    }
}

/// A reply-shaped RTU frame with a wrong CRC and scrambled data.
fn rtu_garbage(unit: u8, pdu: &[u8], n: u64) -> Vec<u8> {
    let mut g = vec![unit, pdu.first().copied().unwrap_or(3)];
    g.extend_from_slice(&garbage_bytes(n, 7));
    let crc = crate::modbus::crc16(&g) ^ 0x5555;
    g.extend_from_slice(&crc.to_le_bytes());
    g
}

/// A pseudo-terminal serving RTU: the agent opens `path` as it would /dev/ttyUSB0.
pub struct Pty {
    pub path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Pty {
    /// Open a pty in raw mode and serve RTU on its master side on a thread.
    pub fn open(sim: Arc<Simulation>) -> Result<Pty, String> {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let pty = nix::pty::openpty(None, None).map_err(|e| format!("openpty: {e}"))?;
        let mut t = tcgetattr(pty.slave.as_fd()).map_err(|e| format!("tcgetattr on pty: {e}"))?;
        cfmakeraw(&mut t);
        tcsetattr(pty.slave.as_fd(), SetArg::TCSANOW, &t)
            .map_err(|e| format!("tcsetattr on pty: {e}"))?;
        let path =
            nix::unistd::ttyname(pty.slave.as_fd()).map_err(|e| format!("ttyname of pty: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let master = std::fs::File::from(pty.master);
        // Keep the slave open for the pty's life: without it the master reads EIO whenever the
        // agent closes and reopens the port.
        let slave = pty.slave;
        let thread = std::thread::Builder::new()
            .name("sim-pty".into())
            .spawn(move || {
                let _slave = slave;
                pty_loop(master, sim, stop2);
            })
            .map_err(|e| format!("spawning the pty thread: {e}"))?;
        Ok(Pty {
            path,
            stop,
            thread: Some(thread),
        })
    }

    /// Stop serving and close the pty.
    pub fn close(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        self.close();
    }
}

fn pty_loop(mut master: std::fs::File, sim: Arc<Simulation>, stop: Arc<AtomicBool>) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut buf: Vec<u8> = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    let mut n_garbage = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let ready = {
            let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(50u16)) {
                Ok(n) => n > 0,
                Err(_) => false,
            }
        };
        if !ready {
            // A pause on the line: a partial frame is abandoned, as a slave does after 3.5 chars.
            buf.clear();
            continue;
        }
        let n = match master.read(&mut chunk) {
            Ok(0) => continue,
            Ok(n) => n,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some((unit, pdu)) = take_rtu_request(&mut buf) {
            let out = match sim.handle(unit, &pdu, false) {
                Outcome::Reply(p) | Outcome::WrongTransaction(p) => Some(rtu_frame(unit, &p)),
                Outcome::WrongUnit(p) => Some(rtu_frame(other_unit(unit), &p)),
                Outcome::Delayed(d, p) => {
                    std::thread::sleep(d);
                    Some(rtu_frame(unit, &p))
                }
                // A serial line cannot be dropped: the meter just stays silent.
                Outcome::Silent | Outcome::Drop => None,
                Outcome::Garbage => {
                    n_garbage += 1;
                    Some(rtu_garbage(unit, &pdu, n_garbage))
                }
            };
            if let Some(out) = out {
                let _ = master.write_all(&out);
            }
        }
    }
}
