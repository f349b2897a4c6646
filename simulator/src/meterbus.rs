//! DL/T 645 and CJ/T 188 meters on a "serial server" TCP port or a pseudo-terminal: a DL/T 645-2007
//! electricity meter that mirrors the plant's `power-b` meter, a CJ/T 188 cold-water meter that
//! mirrors `water`, and a CJ/T 188 heat meter with a constant 5 kW load. Frames are built and
//! parsed by `plantmeter_common::{dlt645, cjt188}`; faults act below the protocol: silence, a bad
//! checksum, a reply from another address, garbage before the frame, an exception reply.
//!
//! The ground truth is [`LinkSim::value`]: what a point shows at an instant.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use plantmeter_common::cjt188::{self, Field, MeterKind};
use plantmeter_common::dlt645::{self, Version};
use plantmeter_common::frame68::{Layout, Piece, Splitter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::engine::Simulation;

/// A fault of a DL/T 645 / CJ/T 188 meter, until cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkFault {
    /// No answer (the master times out).
    Silence,
    /// The reply's checksum is off by one.
    BadChecksum,
    /// The reply carries another meter's address.
    WrongAddress,
    /// Noise before a good reply (the master must resync on 68..68).
    GarbageBefore,
    /// An exception reply: DL/T 645 error byte 02H (no data), CJ/T 188 status 04 00.
    Exception,
    /// DL/T 645: data block reads (DI1 = FFH) refused with error byte 02H, as many meters do;
    /// single reads answered.
    NoBlocks,
}

impl LinkFault {
    pub fn parse(s: &str) -> Option<LinkFault> {
        Some(match s {
            "silence" => LinkFault::Silence,
            "bad_checksum" => LinkFault::BadChecksum,
            "wrong_address" => LinkFault::WrongAddress,
            "garbage" => LinkFault::GarbageBefore,
            "exception" => LinkFault::Exception,
            "no_blocks" => LinkFault::NoBlocks,
            _ => return None,
        })
    }
}

/// Which protocol a simulated meter speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimKind {
    Dlt645,
    Water,
    Heat,
}

/// One simulated DL/T 645 / CJ/T 188 meter.
pub struct LinkMeter {
    pub name: &'static str,
    pub kind: SimKind,
    /// As printed on the nameplate.
    pub address: &'static str,
    fault: Mutex<Option<LinkFault>>,
    /// Requests answered (or refused).
    pub requests: AtomicU64,
    /// DL/T 645: the most value bytes per reply frame (0: whole); a longer answer says "more
    /// frames" and the rest goes out on 12H, as a meter's long blocks do.
    split: AtomicUsize,
    /// DL/T 645: what an answer split over frames still has to send: (DI, next SEQ, bytes).
    pending: Mutex<Option<(u32, u8, Vec<u8>)>>,
}

/// The simulated DL/T 645 meter's tariffs (its energy blocks: the total, then these).
const TARIFFS: usize = 4;

/// The heat meter's constant load, kW, and its supply and return temperatures, °C.
const HEAT_KW: f64 = 5.0;
const SUPPLY_C: f64 = 70.0;
const RETURN_C: f64 = 50.0;
/// Water's heat capacity, kWh per m3 and K: the heat meter's flow follows from its load.
const KWH_PER_M3_K: f64 = 1.163;
/// The heat meter's counters start at 2020-01-01T00:00Z.
const HEAT_EPOCH_MS: i64 = 1_577_836_800_000;

/// The DL/T 645 and CJ/T 188 meters of a plant.
pub struct LinkSim {
    sim: Arc<Simulation>,
    pub meters: Vec<LinkMeter>,
}

fn meter(name: &'static str, kind: SimKind, address: &'static str) -> LinkMeter {
    LinkMeter {
        name,
        kind,
        address,
        fault: Mutex::new(None),
        requests: AtomicU64::new(0),
        split: AtomicUsize::new(0),
        pending: Mutex::new(None),
    }
}

impl LinkSim {
    pub fn new(sim: Arc<Simulation>) -> LinkSim {
        LinkSim {
            sim,
            meters: vec![
                meter("power-b-645", SimKind::Dlt645, "000000000001"),
                meter("water-188", SimKind::Water, "00000000000001"),
                meter("heat-188", SimKind::Heat, "00000000000002"),
            ],
        }
    }

    /// Set (or clear) a meter's fault.
    pub fn set_fault(&self, meter: &str, fault: Option<LinkFault>) -> Result<(), String> {
        let m = self
            .meters
            .iter()
            .find(|m| m.name == meter)
            .ok_or_else(|| format!("no DL/T 645 / CJ/T 188 meter named {meter:?}"))?;
        if let Ok(mut f) = m.fault.lock() {
            *f = fault;
        }
        Ok(())
    }

    /// DL/T 645: send at most `bytes` value bytes per reply frame (0: whole answers), the rest as
    /// follow-up frames.
    pub fn set_split(&self, meter: &str, bytes: usize) -> Result<(), String> {
        let m = self
            .meters
            .iter()
            .find(|m| m.name == meter)
            .ok_or_else(|| format!("no DL/T 645 / CJ/T 188 meter named {meter:?}"))?;
        m.split.store(bytes, Ordering::Relaxed);
        Ok(())
    }

    /// What `point` of `meter` shows at `t_ms` (the ground truth), in the agent template's unit.
    pub fn value(&self, meter: &str, point: &str, t_ms: i64) -> Option<f64> {
        let m = self.meters.iter().find(|m| m.name == meter)?;
        let hours = (t_ms - HEAT_EPOCH_MS) as f64 / 3_600_000.0;
        let flow = HEAT_KW / (KWH_PER_M3_K * (SUPPLY_C - RETURN_C));
        match (m.kind, point) {
            (SimKind::Dlt645, "energy_import" | "energy_combined") => {
                self.sim.point_value("power-b", "energy_import", t_ms)
            }
            (SimKind::Dlt645, "energy_export") => Some(0.0),
            (SimKind::Dlt645, "voltage_a" | "voltage_b" | "voltage_c") => Some(230.0),
            (SimKind::Dlt645, "current_a" | "current_b" | "current_c") => Some(12.5),
            (SimKind::Dlt645, "power") => Some(8.625),
            (SimKind::Dlt645, "power_factor") => Some(0.95),
            (SimKind::Water, "volume") => self.sim.point_value("water", "totalizer", t_ms),
            (SimKind::Heat, "heat") => Some(HEAT_KW * hours),
            (SimKind::Heat, "power") => Some(HEAT_KW),
            (SimKind::Heat, "flow_rate") => Some(flow),
            (SimKind::Heat, "volume") => Some(flow * hours),
            (SimKind::Heat, "supply_temp") => Some(SUPPLY_C),
            (SimKind::Heat, "return_temp") => Some(RETURN_C),
            _ => None,
        }
    }

    /// The answer to one frame from the master at `t_ms`, or None (not for us, or silence).
    pub fn answer(&self, layout: Layout, raw: &[u8], t_ms: i64) -> Option<Vec<u8>> {
        match layout {
            Layout::Dlt645 => self.answer_dlt645(raw, t_ms),
            Layout::Cjt188 => self.answer_cjt188(raw, t_ms),
        }
    }

    fn find(&self, kind: &[SimKind], address: &[u8]) -> Option<&LinkMeter> {
        self.meters.iter().find(|m| {
            kind.contains(&m.kind)
                && match m.kind {
                    SimKind::Dlt645 => plantmeter_common::frame68::parse_address::<6>(m.address)
                        .is_some_and(|a| a == address),
                    _ => plantmeter_common::frame68::parse_address::<7>(m.address)
                        .is_some_and(|a| a == address),
                }
        })
    }

    fn fault_of(m: &LinkMeter) -> Option<LinkFault> {
        m.fault.lock().ok().and_then(|f| *f)
    }

    fn answer_dlt645(&self, raw: &[u8], t_ms: i64) -> Option<Vec<u8>> {
        let f = dlt645::Frame::parse(raw)?;
        let pre = [0xFE; 4];
        if f.function() == 0x13 && f.address == dlt645::WILDCARD {
            // Read address: the one DL/T 645 meter of this bus answers.
            let m = self.meters.iter().find(|m| m.kind == SimKind::Dlt645)?;
            let a = plantmeter_common::frame68::parse_address::<6>(m.address)?;
            return Some(dlt645::encode_address_reply(&pre, &a).to_vec());
        }
        let v = Version::V2007;
        if let Some((di, seq)) = dlt645::follow_request(v, &f) {
            let m = self.find(&[SimKind::Dlt645], &f.address)?;
            m.requests.fetch_add(1, Ordering::Relaxed);
            return Some(match Self::next_part(m, di, seq) {
                Some((part, more)) => {
                    dlt645::encode_reply_part(v, &pre, &f.address, di, &part, Some(seq), more)
                        .to_vec()
                }
                // Nothing pending for that DI and SEQ.
                None => dlt645::encode_exception(v, &pre, &f.address, 0x01).to_vec(),
            });
        }
        let di = dlt645::read_request_di(v, &f)?;
        let m = self.find(&[SimKind::Dlt645], &f.address)?;
        m.requests.fetch_add(1, Ordering::Relaxed);
        let fault = Self::fault_of(m);
        let mut address = f.address;
        let is_block = di.to_be_bytes()[2] == 0xFF;
        let reply = match fault {
            Some(LinkFault::Silence) => return None,
            Some(LinkFault::Exception) => dlt645::encode_exception(v, &pre, &address, 0x02),
            Some(LinkFault::NoBlocks) if is_block => {
                dlt645::encode_exception(v, &pre, &address, 0x02)
            }
            _ => {
                if fault == Some(LinkFault::WrongAddress) {
                    address[0] ^= 0x01;
                }
                let value = if is_block {
                    self.dlt645_block(m, di, t_ms)
                } else {
                    self.dlt645_value(m, di, t_ms)
                };
                match value {
                    Some(bytes) => {
                        let split = m.split.load(Ordering::Relaxed);
                        let cut = if split == 0 { bytes.len() } else { split };
                        if bytes.len() > cut {
                            if let Ok(mut p) = m.pending.lock() {
                                *p = Some((di, 1, bytes[cut..].to_vec()));
                            }
                        }
                        dlt645::encode_reply_part(
                            v,
                            &pre,
                            &address,
                            di,
                            &bytes[..cut.min(bytes.len())],
                            None,
                            bytes.len() > cut,
                        )
                    }
                    None => dlt645::encode_exception(v, &pre, &address, 0x02),
                }
            }
        };
        Some(apply_fault(fault, reply.to_vec()))
    }

    /// The next frame's bytes of a split answer, and whether more follow.
    fn next_part(m: &LinkMeter, di: u32, seq: u8) -> Option<(Vec<u8>, bool)> {
        let mut p = m.pending.lock().ok()?;
        let (pdi, pseq, rest) = p.as_mut()?;
        if *pdi != di || *pseq != seq {
            return None;
        }
        let split = m.split.load(Ordering::Relaxed).max(1);
        if rest.len() > split {
            let part: Vec<u8> = rest.drain(..split).collect();
            *pseq = pseq.wrapping_add(1);
            Some((part, true))
        } else {
            let part = std::mem::take(rest);
            *p = None;
            Some((part, false))
        }
    }

    /// The value bytes of one DI, or None (an exception reply: no such data).
    fn dlt645_value(&self, m: &LinkMeter, di: u32, t_ms: i64) -> Option<Vec<u8>> {
        let spec = dlt645::spec_of(Version::V2007, di)?;
        let [_, d2, d1, _] = di.to_be_bytes();
        let v = match di {
            0x0000_0000 => self.value(m.name, "energy_combined", t_ms),
            0x0001_0000 => self.value(m.name, "energy_import", t_ms),
            0x0002_0000 => self.value(m.name, "energy_export", t_ms),
            0x0201_0100 => self.value(m.name, "voltage_a", t_ms),
            0x0201_0200 => self.value(m.name, "voltage_b", t_ms),
            0x0201_0300 => self.value(m.name, "voltage_c", t_ms),
            0x0202_0100 => self.value(m.name, "current_a", t_ms),
            0x0202_0200 => self.value(m.name, "current_b", t_ms),
            0x0202_0300 => self.value(m.name, "current_c", t_ms),
            0x0203_0000 => self.value(m.name, "power", t_ms),
            // Each phase a third of the total.
            0x0203_0100..=0x0203_0300 if d1 <= 3 => {
                self.value(m.name, "power", t_ms).map(|p| p / 3.0)
            }
            0x0206_0000..=0x0206_0300 if d1 <= 3 => self.value(m.name, "power_factor", t_ms),
            // Tariffs: a quarter of the total each.
            _ if di >> 24 == 0
                && d2 <= 2
                && (1..=TARIFFS as u8).contains(&d1)
                && di & 0xFF == 0 =>
            {
                let total = match d2 {
                    0 => "energy_combined",
                    1 => "energy_import",
                    _ => "energy_export",
                };
                self.value(m.name, total, t_ms).map(|v| v / TARIFFS as f64)
            }
            _ => None,
        }?;
        // The register wraps at its modulus, as a real meter's does.
        let v = if spec.counter {
            v.rem_euclid(1_000_000.0)
        } else {
            v
        };
        dlt645::encode_value(&spec, v).map(|b| b.to_vec())
    }

    /// A data block (DI1 = FFH): its items in order, as far as the meter has them (energy: the
    /// total and 4 tariffs; voltage, current: phases A..C; power, power factor: total, A..C).
    fn dlt645_block(&self, m: &LinkMeter, di: u32, t_ms: i64) -> Option<Vec<u8>> {
        let [d3, d2, _, d0] = di.to_be_bytes();
        let items: Vec<u8> = match (d3, d2) {
            (0x00, _) => (0..=TARIFFS as u8).collect(),
            (0x02, 0x01 | 0x02) => vec![1, 2, 3],
            (0x02, _) => vec![0, 1, 2, 3],
            _ => return None,
        };
        let mut out = Vec::new();
        for d1 in items {
            out.extend(self.dlt645_value(m, u32::from_be_bytes([d3, d2, d1, d0]), t_ms)?);
        }
        Some(out)
    }

    fn answer_cjt188(&self, raw: &[u8], t_ms: i64) -> Option<Vec<u8>> {
        let f = cjt188::Frame::parse(raw)?;
        if f.control != 0x01 {
            return None;
        }
        let m = self.find(&[SimKind::Water, SimKind::Heat], &f.address)?;
        m.requests.fetch_add(1, Ordering::Relaxed);
        let di_sent = [*f.data.first()?, *f.data.get(1)?];
        let ser = f.data.get(2).copied().unwrap_or(0);
        let (kind, ty) = match m.kind {
            SimKind::Heat => (MeterKind::Heat, 0x20),
            _ => (MeterKind::Water, 0x10),
        };
        let fault = Self::fault_of(m);
        let mut address = f.address;
        let pre = [0xFE; 2];
        let reply = match fault {
            Some(LinkFault::Silence) => return None,
            Some(LinkFault::Exception) => {
                cjt188::encode_exception(&pre, ty, &address, di_sent, ser, [0x04, 0x00])
            }
            _ => {
                if fault == Some(LinkFault::WrongAddress) {
                    address[0] ^= 0x01;
                }
                let mut payload = [0u8; 43];
                let payload = &mut payload[..kind.payload_len()];
                let put = |field, point: &str, unit: u8, payload: &mut [u8]| {
                    let v = self.value(m.name, point, t_ms).unwrap_or(0.0);
                    let v = if field == Field::Flow || field == Field::Heat {
                        v.rem_euclid(1_000_000.0)
                    } else {
                        v
                    };
                    let _ = cjt188::put_field(kind, field, v, unit, payload);
                };
                match kind {
                    MeterKind::Heat => {
                        put(Field::Heat, "heat", 0x05, payload);
                        put(Field::Power, "power", 0x17, payload);
                        put(Field::FlowRate, "flow_rate", 0x35, payload);
                        put(Field::Flow, "volume", 0x2C, payload);
                        put(Field::SupplyTemp, "supply_temp", 0, payload);
                        put(Field::ReturnTemp, "return_temp", 0, payload);
                        // The settlement-day heat's unit byte.
                        payload[4] = 0x05;
                    }
                    _ => {
                        put(Field::Flow, "volume", 0x2C, payload);
                        payload[9] = 0x2C;
                    }
                }
                cjt188::encode_read_reply(&pre, ty, &address, di_sent, ser, payload)
            }
        };
        Some(apply_fault(fault, reply.to_vec()))
    }
}

/// Faults that damage a good reply's bytes.
fn apply_fault(fault: Option<LinkFault>, mut reply: Vec<u8>) -> Vec<u8> {
    match fault {
        Some(LinkFault::BadChecksum) => {
            let n = reply.len();
            if n >= 2 {
                reply[n - 2] = reply[n - 2].wrapping_add(1);
            }
            reply
        }
        Some(LinkFault::GarbageBefore) => {
            // Noise with a false start: 68H and a claimed length.
            let mut out = vec![0x00, 0x68, 0x13, 0xFF, 0x68, 0x68, 0x42, 0x16];
            out.extend(reply);
            out
        }
        _ => reply,
    }
}

/// Serve one protocol on a TCP listener, as a serial server in transparent mode would.
pub async fn serve_tcp(
    listener: TcpListener,
    links: Arc<LinkSim>,
    layout: Layout,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => {
                let Ok((mut stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let links = links.clone();
                let mut stop = stop.clone();
                tokio::spawn(async move {
                    let mut splitter = Splitter::new(layout);
                    let mut buf = [0u8; 256];
                    loop {
                        let n = tokio::select! {
                            _ = stop.changed() => return,
                            r = stream.read(&mut buf) => match r {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            },
                        };
                        let mut rest = &buf[..n];
                        while !rest.is_empty() {
                            let took = splitter.push(rest);
                            rest = &rest[took..];
                            while let Some(p) = splitter.next_piece() {
                                if let Piece::Frame(raw) = p {
                                    let now = links.sim.clock().now_ms();
                                    if let Some(out) = links.answer(layout, &raw, now) {
                                        if stream.write_all(&out).await.is_err() {
                                            return;
                                        }
                                    }
                                }
                            }
                        }
                    }
                });
            }
        }
    }
}

/// One protocol on a pseudo-terminal (an RS-485 line as the agent's serial port sees it).
pub struct LinkPty {
    pub path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LinkPty {
    pub fn open(links: Arc<LinkSim>, layout: Layout) -> Result<LinkPty, String> {
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
        let mut master = std::fs::File::from(pty.master);
        // The slave stays open for the pty's life (else the master reads EIO between opens).
        let slave = pty.slave;
        let thread = std::thread::Builder::new()
            .name("sim-link-pty".into())
            .spawn(move || {
                use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
                let _slave = slave;
                let mut splitter = Splitter::new(layout);
                let mut chunk = [0u8; 256];
                while !stop2.load(Ordering::Relaxed) {
                    let ready = {
                        let mut fds = [PollFd::new(master.as_fd(), PollFlags::POLLIN)];
                        poll(&mut fds, PollTimeout::from(50u16)).is_ok_and(|n| n > 0)
                    };
                    if !ready {
                        continue;
                    }
                    let n = match master.read(&mut chunk) {
                        Ok(n) if n > 0 => n,
                        _ => {
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        }
                    };
                    let mut rest = &chunk[..n];
                    while !rest.is_empty() {
                        let took = splitter.push(rest);
                        rest = &rest[took..];
                        while let Some(p) = splitter.next_piece() {
                            if let Piece::Frame(raw) = p {
                                let now = links.sim.clock().now_ms();
                                if let Some(out) = links.answer(layout, &raw, now) {
                                    let _ = master.write_all(&out);
                                }
                            }
                        }
                    }
                }
            })
            .map_err(|e| format!("spawning the pty thread: {e}"))?;
        Ok(LinkPty {
            path,
            stop,
            thread: Some(thread),
        })
    }

    pub fn close(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for LinkPty {
    fn drop(&mut self) {
        self.close();
    }
}

/// Where the agent reaches the DL/T 645 and CJ/T 188 buses.
#[derive(Debug, Clone)]
pub enum LinkAt {
    /// A serial server at `host:port`.
    Tcp(String),
    /// A serial device (the pty).
    Serial(String),
}

fn bus_toml(name: &str, protocol: &str, at: &LinkAt) -> String {
    match at {
        LinkAt::Tcp(a) => format!(
            "[[bus]]\nname = \"{name}\"\nprotocol = \"{protocol}\"\ntransport = \"tcp\"\naddress = \"{a}\"\ngap_ms = 20\ntimeout_ms = 1000\nretries = 1\n\n"
        ),
        LinkAt::Serial(d) => format!(
            "[[bus]]\nname = \"{name}\"\nprotocol = \"{protocol}\"\ntransport = \"serial\"\ndevice = \"{d}\"\ngap_ms = 20\ntimeout_ms = 1000\nretries = 1\n\n"
        ),
    }
}

/// The `[[bus]]` and `[[meter]]` tables reading these meters (appended to an agent config).
pub fn agent_config(dlt645: &LinkAt, cjt188: &LinkAt, poll_interval_s: f64) -> String {
    let mut s = String::from("# DL/T 645 and CJ/T 188 meters of the simulated plant\n");
    s += &bus_toml("rs485-645", "dlt645-2007", dlt645);
    s += &format!(
        "[[meter]]\nname = \"power-b-645\"\nbus = \"rs485-645\"\naddress = \"000000000001\"\npoll_interval_s = {poll_interval_s:?}\ntemplate = \"dlt645-meter\"\npoints = [\"energy_import\", \"voltage_a\", \"current_a\", \"power_factor\"]\n\n"
    );
    s += &bus_toml("rs485-188", "cjt188", cjt188);
    s += &format!(
        "[[meter]]\nname = \"water-188\"\nbus = \"rs485-188\"\naddress = \"00000000000001\"\npoll_interval_s = {poll_interval_s:?}\ntemplate = \"cjt188-water\"\n\n\
         [[meter]]\nname = \"heat-188\"\nbus = \"rs485-188\"\naddress = \"00000000000002\"\npoll_interval_s = {poll_interval_s:?}\ntemplate = \"cjt188-heat\"\n\n"
    );
    s
}

/// Running DL/T 645 and CJ/T 188 servers.
pub struct LinkHandle {
    pub links: Arc<LinkSim>,
    pub dlt645_addr: std::net::SocketAddr,
    pub cjt188_addr: std::net::SocketAddr,
    pub ptys: Vec<LinkPty>,
    stop: watch::Sender<bool>,
}

impl LinkHandle {
    /// The agent's `[[bus]]`/`[[meter]]` tables for the TCP listeners.
    pub fn agent_config(&self, poll_interval_s: f64) -> String {
        agent_config(
            &LinkAt::Tcp(self.dlt645_addr.to_string()),
            &LinkAt::Tcp(self.cjt188_addr.to_string()),
            poll_interval_s,
        )
    }
}

impl Drop for LinkHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Serve the plant's DL/T 645 and CJ/T 188 meters on two TCP listeners (`127.0.0.1:0` picks free
/// ports), and on two ptys when `pty` (DL/T 645 first).
pub async fn start(
    sim: Arc<Simulation>,
    dlt645_listen: &str,
    cjt188_listen: &str,
    pty: bool,
) -> Result<LinkHandle, crate::SimError> {
    let links = Arc::new(LinkSim::new(sim));
    let (stop, rx) = watch::channel(false);
    let mut addrs = Vec::new();
    for (listen, layout) in [
        (dlt645_listen, Layout::Dlt645),
        (cjt188_listen, Layout::Cjt188),
    ] {
        let l = TcpListener::bind(listen)
            .await
            .map_err(|source| crate::SimError::Listen {
                addr: listen.to_string(),
                source,
            })?;
        addrs.push(l.local_addr().map_err(|source| crate::SimError::Listen {
            addr: listen.to_string(),
            source,
        })?);
        tokio::spawn(serve_tcp(l, links.clone(), layout, rx.clone()));
    }
    let mut ptys = Vec::new();
    if pty {
        for layout in [Layout::Dlt645, Layout::Cjt188] {
            ptys.push(LinkPty::open(links.clone(), layout).map_err(crate::SimError::Pty)?);
        }
    }
    Ok(LinkHandle {
        links,
        dlt645_addr: addrs[0],
        cjt188_addr: addrs[1],
        ptys,
        stop,
    })
}
