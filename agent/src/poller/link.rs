//! The transport seam: "a bus that answers read requests". TCP, RTU on a serial line and RTU over
//! TCP are chosen once, at construction; the poller only sees [`Link::read`].
//!
//! A link connects lazily and drops its connection after any transport failure (timeout,
//! disconnect, garbled reply), so the next read reconnects: a late reply can never be taken for
//! the answer to a later request.
//!
//! Replies are believed only when they answer the request exactly. tokio-modbus 0.17 checks the
//! MBAP protocol id, the transaction and unit id (RTU: the slave id and CRC), the function code,
//! an odd byte count and a byte count longer than the data; it does not check that the number of
//! registers or bits is the number asked for (only a `debug_assert`, a panic in debug builds), so
//! [`check_reply`] does. Anything else is a `comm_error` and drops the connection.

use std::pin::Pin;
use std::time::Duration;

use plantmeter_common::plan::{Parity, ReadRequest, SerialSettings, Transport};
use plantmeter_common::RegisterKind;
use tokio::time::Instant;
use tokio_modbus::client::{Client, Context};
use tokio_modbus::slave::{Slave, SlaveContext};
use tokio_modbus::{ExceptionResponse, ProtocolError, Request, Response};

/// Why a read failed, as it maps to a point's quality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The meter answered with an exception (code, description: a Modbus exception, a DL/T 645
    /// error byte, a CJ/T 188 status): `device_error`.
    Exception(u8, String),
    /// Timeout, refused or broken connection, garbled or short reply: `comm_error`.
    Comm(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Exception(_, e) => f.write_str(e),
            ReadError::Comm(e) => f.write_str(e),
        }
    }
}

/// One reply: registers or bits, in the order of the request.
#[derive(Debug, PartialEq, Eq)]
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
        let request = match req.register {
            RegisterKind::Holding => Request::ReadHoldingRegisters(start, count),
            RegisterKind::Input => Request::ReadInputRegisters(start, count),
            RegisterKind::Coil => Request::ReadCoils(start, count),
            RegisterKind::Discrete => Request::ReadDiscreteInputs(start, count),
        };
        let call = ctx.call(request);
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
                Err(ReadError::Comm(format!(
                    "{} reading {}",
                    describe(&e),
                    what()
                )))
            }
            Ok(Ok(Err(exc))) => Err(ReadError::Exception(
                u8::from(exc),
                format!("Modbus exception {exc} reading {}", what()),
            )),
            Ok(Ok(Ok(response))) => match check_reply(req.register, count, response) {
                Ok(reply) => {
                    self.failures = 0;
                    Ok(reply)
                }
                Err(why) => {
                    self.fail();
                    Err(ReadError::Comm(format!("{why} reading {}", what())))
                }
            },
        }
    }

    fn fail(&mut self) {
        self.failures += 1;
        self.ctx = None;
    }
}

/// The reply to a read of `count` registers or bits of `kind`, if `response` is exactly that;
/// otherwise why not. Bits come back as whole bytes: the byte count must be `ceil(count / 8)`,
/// and the padding is cut off.
pub fn check_reply(kind: RegisterKind, count: u16, response: Response) -> Result<Reply, String> {
    let count = usize::from(count);
    let (words, bits) = match (kind, response) {
        (RegisterKind::Holding, Response::ReadHoldingRegisters(w))
        | (RegisterKind::Input, Response::ReadInputRegisters(w)) => (Some(w), None),
        (RegisterKind::Coil, Response::ReadCoils(b))
        | (RegisterKind::Discrete, Response::ReadDiscreteInputs(b)) => (None, Some(b)),
        (_, other) => {
            return Err(format!(
                "reply of function {} to a read of {kind}",
                other.function_code()
            ))
        }
    };
    if let Some(w) = words {
        if w.len() != count {
            return Err(format!(
                "{} registers in the reply to a read of {count}",
                w.len()
            ));
        }
        return Ok(Reply::Words(w));
    }
    let mut b = bits.unwrap_or_default();
    let bytes = b.len() / 8;
    if bytes != count.div_ceil(8) {
        return Err(format!(
            "{bytes} bytes of bits in the reply to a read of {count} bits ({} expected)",
            count.div_ceil(8)
        ));
    }
    b.truncate(count);
    Ok(Reply::Bits(b))
}

/// A tokio-modbus error in a few words (its own text repeats the whole reply).
fn describe(e: &tokio_modbus::Error) -> String {
    let function = |r: &Result<Response, ExceptionResponse>| match r {
        Ok(r) => r.function_code(),
        Err(x) => x.function,
    };
    match e {
        tokio_modbus::Error::Protocol(ProtocolError::HeaderMismatch { message, .. }) => {
            format!("reply to another request (header mismatch: {message})")
        }
        tokio_modbus::Error::Protocol(ProtocolError::FunctionCodeMismatch { request, result }) => {
            format!(
                "reply of function {} to a request of function {request}",
                function(result)
            )
        }
        tokio_modbus::Error::Transport(e) => e.to_string(),
    }
}

pub(crate) fn open_serial(s: &SerialSettings) -> tokio_serial::Result<tokio_serial::SerialStream> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_believed_only_with_the_registers_asked_for() {
        let ok = check_reply(
            RegisterKind::Holding,
            3,
            Response::ReadHoldingRegisters(vec![1, 2, 3]),
        );
        assert_eq!(ok, Ok(Reply::Words(vec![1, 2, 3])));
        // 5 registers for a read of 3: shifted values (6666 where the meter holds 1) not believed.
        let extra = check_reply(
            RegisterKind::Holding,
            3,
            Response::ReadHoldingRegisters(vec![6666, 6666, 1, 2, 3]),
        );
        assert_eq!(
            extra,
            Err("5 registers in the reply to a read of 3".to_string())
        );
        let short = check_reply(
            RegisterKind::Input,
            3,
            Response::ReadInputRegisters(vec![1, 2]),
        );
        assert!(short.is_err());
        // Input registers asked, holding registers answered.
        let wrong = check_reply(
            RegisterKind::Input,
            2,
            Response::ReadHoldingRegisters(vec![1, 2]),
        );
        assert_eq!(
            wrong,
            Err("reply of function 3 to a read of input".to_string())
        );
    }

    #[test]
    fn bits_come_in_whole_bytes_and_no_more() {
        let byte = |v: u8| (0..8).map(|i| v & (1 << i) != 0).collect::<Vec<bool>>();
        let ok = check_reply(RegisterKind::Coil, 3, Response::ReadCoils(byte(0b101)));
        assert_eq!(ok, Ok(Reply::Bits(vec![true, false, true])));
        let mut two = byte(0xFF);
        two.extend(byte(0xFF));
        assert!(check_reply(RegisterKind::Coil, 3, Response::ReadCoils(two.clone())).is_err());
        assert!(check_reply(RegisterKind::Discrete, 9, Response::ReadDiscreteInputs(two)).is_ok());
        assert!(check_reply(
            RegisterKind::Discrete,
            9,
            Response::ReadDiscreteInputs(byte(1))
        )
        .is_err());
    }
}
