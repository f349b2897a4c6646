//! The transport seam: "a bus that answers read requests". TCP, RTU on a serial line and RTU over
//! TCP are chosen once, at construction; the poller only sees [`Link::read`].
//!
//! A link connects lazily and drops its connection after any transport failure (timeout,
//! disconnect, garbled reply), so the next read reconnects: a late reply can never be taken for
//! the answer to a later request.

use std::pin::Pin;
use std::time::Duration;

use plantmeter_common::plan::{Parity, ReadRequest, SerialSettings, Transport};
use plantmeter_common::RegisterKind;
use tokio::time::Instant;
use tokio_modbus::client::{Context, Reader};
use tokio_modbus::slave::{Slave, SlaveContext};

/// Why a read failed, as it maps to a point's quality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The meter answered with a Modbus exception (code, description): `device_error`.
    Exception(u8, String),
    /// Timeout, refused or broken connection, garbled or short reply: `comm_error`.
    Comm(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Exception(_, e) => write!(f, "Modbus exception {e}"),
            ReadError::Comm(e) => f.write_str(e),
        }
    }
}

/// One reply: registers or bits, in the order of the request.
pub enum Reply {
    Words(Vec<u16>),
    Bits(Vec<bool>),
}

/// A connection (or serial line) to one or more meters.
pub struct Link {
    transport: Transport,
    timeout: Duration,
    ctx: Option<Context>,
    /// Serial lines: silence required between frames, and when the last frame ended.
    gap: Option<Duration>,
    last_io: Option<Instant>,
    /// The request timeout, one timer for the life of the link: reset per request, and between
    /// polls parked just after the next poll is due ([`Link::idle_until`]). A fresh timer per
    /// request would be registered earlier than anything else the runtime waits for and make it
    /// wake its I/O driver (an eventfd write) every time.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Transport failures since the link last worked (for logging only state changes).
    pub failures: u64,
}

impl Link {
    /// A link over `transport`; every request (and connect) is bounded by `timeout`.
    pub fn new(transport: Transport, timeout: Duration) -> Link {
        let gap = match &transport {
            Transport::Rtu(s) => Some(s.inter_frame_gap()),
            _ => None,
        };
        Link {
            transport,
            timeout,
            ctx: None,
            gap,
            last_io: None,
            deadline: None,
            failures: 0,
        }
    }

    async fn connect(transport: &Transport, timeout: Duration) -> Result<Context, ReadError> {
        match transport {
            Transport::Tcp { address } => {
                let stream = Self::tcp(address, timeout).await?;
                Ok(tokio_modbus::client::tcp::attach_slave(stream, Slave(0)))
            }
            Transport::RtuOverTcp { address } => {
                let stream = Self::tcp(address, timeout).await?;
                Ok(tokio_modbus::client::rtu::attach_slave(stream, Slave(0)))
            }
            Transport::Rtu(s) => {
                let port = open_serial(s).map_err(|e| {
                    ReadError::Comm(format!(
                        "cannot open serial port {}: {e}",
                        s.device.display()
                    ))
                })?;
                Ok(tokio_modbus::client::rtu::attach_slave(port, Slave(0)))
            }
        }
    }

    async fn tcp(address: &str, timeout: Duration) -> Result<tokio::net::TcpStream, ReadError> {
        let stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address))
            .await
            .map_err(|_| {
                ReadError::Comm(format!(
                    "connect to {address} timed out after {} ms",
                    timeout.as_millis()
                ))
            })?
            .map_err(|e| ReadError::Comm(format!("cannot connect to {address}: {e}")))?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// Nothing will be read before `at`: park the request timer after it (no wake-up meanwhile).
    pub fn idle_until(&mut self, at: Instant) {
        if let Some(d) = self.deadline.as_mut() {
            d.as_mut().reset(at + self.timeout);
        }
    }

    /// Read `req` from the meter at `unit`.
    pub async fn read(&mut self, unit: u8, req: &ReadRequest) -> Result<Reply, ReadError> {
        if self.ctx.is_none() {
            let ctx = Self::connect(&self.transport, self.timeout)
                .await
                .inspect_err(|_| self.failures += 1)?;
            self.ctx = Some(ctx);
        }
        if let (Some(gap), Some(last)) = (self.gap, self.last_io) {
            tokio::time::sleep_until(last + gap).await;
        }
        let Some(ctx) = self.ctx.as_mut() else {
            return Err(ReadError::Comm("not connected".into()));
        };
        ctx.set_slave(Slave(unit));
        let (start, count) = (req.start, req.count);
        let call = async {
            match req.register {
                RegisterKind::Holding => ctx
                    .read_holding_registers(start, count)
                    .await
                    .map(|r| r.map(Reply::Words)),
                RegisterKind::Input => ctx
                    .read_input_registers(start, count)
                    .await
                    .map(|r| r.map(Reply::Words)),
                RegisterKind::Coil => ctx
                    .read_coils(start, count)
                    .await
                    .map(|r| r.map(Reply::Bits)),
                RegisterKind::Discrete => ctx
                    .read_discrete_inputs(start, count)
                    .await
                    .map(|r| r.map(Reply::Bits)),
            }
        };
        let until = Instant::now() + self.timeout;
        let deadline = match self.deadline.as_mut() {
            Some(d) => {
                d.as_mut().reset(until);
                d
            }
            None => self
                .deadline
                .insert(Box::pin(tokio::time::sleep_until(until))),
        };
        let result = tokio::select! {
            biased;
            r = call => Ok(r),
            _ = deadline.as_mut() => Err(()),
        };
        self.last_io = Some(Instant::now());
        let what = || {
            format!(
                "{} {}..{} (unit {unit})",
                req.register,
                start,
                u32::from(start) + u32::from(count)
            )
        };
        match result {
            Err(_) => {
                self.fail();
                Err(ReadError::Comm(format!(
                    "timeout after {} ms reading {}",
                    self.timeout.as_millis(),
                    what()
                )))
            }
            Ok(Err(e)) => {
                self.fail();
                Err(ReadError::Comm(format!("{e} reading {}", what())))
            }
            Ok(Ok(Err(exc))) => Err(ReadError::Exception(
                u8::from(exc),
                format!("{exc} reading {}", what()),
            )),
            Ok(Ok(Ok(reply))) => {
                let got = match &reply {
                    Reply::Words(w) => w.len(),
                    // Bits come back rounded up to whole bytes.
                    Reply::Bits(b) => b.len().min(usize::from(count)),
                };
                if got < usize::from(count) {
                    self.fail();
                    return Err(ReadError::Comm(format!(
                        "short reply: {got} of {count} reading {}",
                        what()
                    )));
                }
                self.failures = 0;
                Ok(reply)
            }
        }
    }

    fn fail(&mut self) {
        self.failures += 1;
        self.ctx = None;
    }
}

fn open_serial(s: &SerialSettings) -> tokio_serial::Result<tokio_serial::SerialStream> {
    use tokio_serial::SerialPortBuilderExt;
    let parity = match s.parity {
        Parity::None => tokio_serial::Parity::None,
        Parity::Even => tokio_serial::Parity::Even,
        Parity::Odd => tokio_serial::Parity::Odd,
    };
    let data_bits = match s.data_bits {
        5 => tokio_serial::DataBits::Five,
        6 => tokio_serial::DataBits::Six,
        7 => tokio_serial::DataBits::Seven,
        _ => tokio_serial::DataBits::Eight,
    };
    let stop_bits = if s.stop_bits == 2 {
        tokio_serial::StopBits::Two
    } else {
        tokio_serial::StopBits::One
    };
    tokio_serial::new(s.device.to_string_lossy(), s.baud)
        .parity(parity)
        .data_bits(data_bits)
        .stop_bits(stop_bits)
        .open_native_async()
}
