//! The DL/T 645 / CJ/T 188 link: one request at a time on an RS-485 line (tokio-serial) or a TCP
//! stream to a serial server in transparent mode. The bytes are built and judged by
//! `plantmeter_common::meter_read`; this file only moves them and keeps time.
//!
//! Like the Modbus link, it drops the connection after any transport failure (timeout, a reply for
//! another address or DI), so a late reply is never taken for the answer to the next request. What
//! it holds is bounded: the frame splitter's fixed buffer, and reads stop at the request's
//! deadline however much a device sends.

use std::time::Duration;

use plantmeter_common::frame68::{Piece, RawFrame, Splitter};
use plantmeter_common::meter_read::{self, Answer, PointValue, Session};
use plantmeter_common::plan::LinkRead;
use plantmeter_common::plan::{Meter, MeterBus, Transport};
use plantmeter_common::Quality;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::link::ReadError;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Stream for T {}

/// A DL/T 645 / CJ/T 188 bus.
pub struct MeterLink {
    transport: Transport,
    timeout: Duration,
    bus: MeterBus,
    stream: Option<Box<dyn Stream>>,
    splitter: Splitter,
    /// When the last exchange ended: the next request waits out the bus's gap.
    last_io: Option<Instant>,
    /// CJ/T 188's sequence byte.
    ser: u8,
    /// Transport failures since the link last worked.
    pub failures: u64,
    /// (meter, block DI) a meter refused: its points are read one by one from then on. Bounded by
    /// the plan's reads.
    refused_blocks: Vec<(String, u32)>,
}

/// What one read (one request of a poll, a block's points together) got, with the frames
/// exchanged (for `read`).
#[derive(Debug, Clone)]
pub struct ReadOut {
    /// One per point of the read. A point whose own read was refused (after a block was) is
    /// `device_error` with the error byte in `why`.
    pub values: Vec<PointValue>,
    /// (request, reply) of each exchange, follow-ups included.
    pub frames: Vec<(Vec<u8>, Vec<u8>)>,
}

impl MeterLink {
    pub fn new(transport: Transport, timeout: Duration, bus: MeterBus) -> MeterLink {
        MeterLink {
            splitter: Splitter::new(meter_read::layout(&bus)),
            transport,
            timeout,
            bus,
            stream: None,
            last_io: None,
            ser: 0,
            failures: 0,
            refused_blocks: Vec::new(),
        }
    }

    async fn connect(&self) -> Result<Box<dyn Stream>, ReadError> {
        match &self.transport {
            Transport::Rtu(s) => {
                let port = super::link::open_serial(s).map_err(|e| {
                    ReadError::Comm(format!(
                        "cannot open serial port {}: {e}",
                        s.device.display()
                    ))
                })?;
                Ok(Box::new(port))
            }
            Transport::RtuOverTcp { address } | Transport::Tcp { address } => {
                let stream = tokio::time::timeout(
                    self.timeout,
                    tokio::net::TcpStream::connect(address.as_str()),
                )
                .await
                .map_err(|_| {
                    ReadError::Comm(format!(
                        "connect to {address} timed out after {} ms",
                        self.timeout.as_millis()
                    ))
                })?
                .map_err(|e| ReadError::Comm(format!("cannot connect to {address}: {e}")))?;
                let _ = stream.set_nodelay(true);
                Ok(Box::new(stream))
            }
        }
    }

    /// Make read `index` of `meter`'s plan (`MeterLink::reads`): Ok with a value per point (an
    /// exception reply to a one-point read is `ReadError::Exception`), or a transport failure.
    /// A data block the meter refuses (an exception, or a reply without every item) is read
    /// point by point at once, and from then on.
    pub async fn read(&mut self, meter: &Meter, index: usize) -> Result<ReadOut, ReadError> {
        let Some(link) = meter.link.as_ref() else {
            return Err(ReadError::Comm(format!(
                "meter {} is not a DL/T 645 / CJ/T 188 meter",
                meter.name
            )));
        };
        let Some(read) = link.reads.get(index) else {
            return Err(ReadError::Comm(format!(
                "meter {} has no read {index}",
                meter.name
            )));
        };
        let refused = read.block
            && self
                .refused_blocks
                .iter()
                .any(|(m, di)| *m == meter.name && *di == read.di);
        let mut frames = Vec::new();
        let mut block_refusal = None;
        if !refused {
            match self.read_one(meter, read, &mut frames).await {
                Ok(Ok(values)) => return Ok(ReadOut { values, frames }),
                Ok(Err(why)) => block_refusal = Some(why),
                Err(e) => return Err(e),
            }
        }
        // The block's points, each by its own DI.
        let mut first_exception = None;
        let mut values = Vec::with_capacity(read.items.len());
        for &(pi, _) in &read.items {
            let Some(lp) = link.points.get(pi) else {
                continue;
            };
            let one = meter_read::single(pi, lp);
            match self.read_one(meter, &one, &mut frames).await {
                Ok(Ok(mut v)) => values.append(&mut v),
                Ok(Err(why)) => values.push(PointValue {
                    point: pi,
                    value: None,
                    quality: Quality::CommError,
                    why: Some(why),
                }),
                Err(ReadError::Exception(code, why)) => {
                    first_exception.get_or_insert((code, why.clone()));
                    values.push(PointValue {
                        point: pi,
                        value: None,
                        quality: Quality::DeviceError,
                        why: Some(why),
                    })
                }
                Err(e) => return Err(e),
            }
        }
        if values.iter().all(|v| v.quality == Quality::DeviceError) {
            // The meter says no to everything (not to the block alone): an exception as a one-point
            // read would be, the block tried again next time.
            if let Some((code, why)) = first_exception {
                return Err(ReadError::Exception(code, why));
            }
        }
        if let Some(why) = block_refusal {
            tracing::warn!(meter = %meter.name, %why, "data block refused: its points are read one by one");
            self.refused_blocks.push((meter.name.clone(), read.di));
        }
        Ok(ReadOut { values, frames })
    }

    /// One request and its follow-ups: Ok(Ok(values)), Ok(Err(why)) for a block to read point by
    /// point (refused or unfit), Err for a transport failure or an exception to a one-point read.
    async fn read_one(
        &mut self,
        meter: &Meter,
        read: &LinkRead,
        frames: &mut Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<Result<Vec<PointValue>, String>, ReadError> {
        let Some(link) = meter.link.as_ref() else {
            return Err(ReadError::Comm("not a DL/T 645 / CJ/T 188 meter".into()));
        };
        let what = || {
            let names: Vec<&str> = read
                .items
                .iter()
                .filter_map(|&(pi, _)| meter.points.get(pi).map(|p| p.name.as_str()))
                .collect();
            format!("{} at {}", names.join(", "), link.address_text)
        };
        if self.stream.is_none() {
            let s = self.connect().await.inspect_err(|_| self.failures += 1)?;
            self.stream = Some(s);
        }
        self.ser = self.ser.wrapping_add(1);
        let mut session = Session::new(&self.bus, link, read, &meter.points);
        let mut request = session.request(self.ser);
        loop {
            if let Some(last) = self.last_io {
                tokio::time::sleep_until(last + self.bus.gap).await;
            }
            let Some(stream) = self.stream.as_mut() else {
                return Err(ReadError::Comm("not connected".into()));
            };
            let deadline = Instant::now() + self.timeout;
            let result =
                exchange(
                    stream,
                    &mut self.splitter,
                    &request,
                    deadline,
                    |raw| match session.on_frame(raw) {
                        Answer::Ignore => None,
                        other => Some(other),
                    },
                );
            // A safety net: `exchange` keeps the deadline itself (to say what it skipped meanwhile).
            let result =
                tokio::time::timeout_at(deadline + Duration::from_millis(100), result).await;
            self.last_io = Some(Instant::now());
            let (answer, reply) = match result {
                Err(_) => {
                    self.fail();
                    return Err(ReadError::Comm(format!(
                        "timeout after {} ms reading {}",
                        self.timeout.as_millis(),
                        what()
                    )));
                }
                Ok((Err(e), _)) => {
                    self.fail();
                    return Err(ReadError::Comm(format!("{e} reading {}", what())));
                }
                Ok((Ok(a), reply)) => (a, reply),
            };
            frames.push((request.to_vec(), reply));
            match answer {
                Answer::Follow(next) => request = next,
                Answer::Values(v) => {
                    self.failures = 0;
                    return Ok(Ok(v));
                }
                Answer::Exception { why, .. } if read.block => {
                    return Ok(Err(format!("{why} reading {}", what())))
                }
                Answer::Exception { code, why } => {
                    return Err(ReadError::Exception(
                        code,
                        format!("{why} reading {}", what()),
                    ))
                }
                Answer::Unfit(why) => return Ok(Err(format!("{why} reading {}", what()))),
                Answer::Wrong(why) => {
                    self.fail();
                    return Err(ReadError::Comm(format!("{why} reading {}", what())));
                }
                Answer::Ignore => return Err(ReadError::Comm("no answer".into())),
            }
        }
    }

    /// DL/T 645's read-address command (13H to AA AA AA AA AA AA): the address of the one meter
    /// on the bus, as printed (12 digits). Two meters answering at once garble each other: a
    /// timeout or a checksum error then.
    pub async fn read_address(&mut self) -> Result<String, ReadError> {
        if self.stream.is_none() {
            let s = self.connect().await?;
            self.stream = Some(s);
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(ReadError::Comm("not connected".into()));
        };
        let request = plantmeter_common::dlt645::encode_read_address(&self.bus.preamble);
        let deadline = Instant::now() + self.timeout;
        let judge = |raw: &RawFrame| {
            let f = plantmeter_common::dlt645::Frame::parse(raw)?;
            (f.is_reply() && f.function() == 0x13)
                .then(|| plantmeter_common::dlt645::check_address_reply(&f))
        };
        let result = exchange(stream, &mut self.splitter, &request, deadline, judge);
        match tokio::time::timeout_at(deadline + Duration::from_millis(100), result).await {
            Ok((Ok(Ok(a)), _)) => Ok(plantmeter_common::frame68::format_address(&a)),
            Ok((Ok(Err(e)), _)) => Err(ReadError::Comm(e.to_string())),
            Ok((Err(e), _)) => Err(ReadError::Comm(e)),
            Err(_) => Err(ReadError::Comm(format!(
                "no answer to the read-address command within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }

    fn fail(&mut self) {
        self.failures += 1;
        self.stream = None;
    }
}

/// Send `request` and read frames until `judge` says something other than Ignore; returns that
/// and the answering frame's bytes. Runs under the caller's timeout.
async fn exchange<T>(
    stream: &mut Box<dyn Stream>,
    splitter: &mut Splitter,
    request: &[u8],
    deadline: Instant,
    mut judge: impl FnMut(&RawFrame) -> Option<T>,
) -> (Result<T, String>, Vec<u8>) {
    splitter.clear();
    if let Err(e) = stream.write_all(request).await {
        return (Err(format!("write failed: {e}")), Vec::new());
    }
    let mut buf = [0u8; 256];
    // What was skipped on the line, for the timeout's message (a bad checksum says more than
    // "timeout").
    let mut skipped: Option<(usize, plantmeter_common::frame68::Garbage)> = None;
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => {
                let why = skipped.map_or(String::new(), |(n, why)| {
                    format!(" (skipped {n} bytes, first: {why})")
                });
                return (Err(format!("no valid reply in time{why}")), Vec::new());
            }
            Ok(Ok(0)) => return (Err("connection closed".into()), Vec::new()),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return (Err(format!("read failed: {e}")), Vec::new()),
        };
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let took = splitter.push(rest);
            rest = &rest[took..];
            while let Some(piece) = splitter.next_piece() {
                match piece {
                    Piece::Frame(raw) => {
                        if let Some(answer) = judge(&raw) {
                            return (Ok(answer), raw.to_vec());
                        }
                    }
                    Piece::Garbage { bytes, why } => {
                        tracing::debug!(bytes, %why, "skipped bytes on the line");
                        // The first reason tells most (a checksum; what follows is its rest).
                        let (n, _) = skipped.get_or_insert((0, why));
                        *n += bytes;
                    }
                }
            }
        }
    }
}

/// `check --scan BUS`: the address of the lone DL/T 645 meter on `bus`, printed.
pub fn scan(plan: &plantmeter_common::Plan, bus: &str) -> anyhow::Result<()> {
    use plantmeter_common::plan::{MeterProtocol, Protocol};
    let b = plan.buses.iter().find(|b| b.name == bus).ok_or_else(|| {
        anyhow::Error::new(crate::exit::BadInput(format!(
            "--scan {bus}: no bus of that name"
        )))
    })?;
    let Protocol::Meter(mb) = &b.protocol else {
        return Err(anyhow::Error::new(crate::exit::BadInput(format!(
            "--scan {bus}: not a DL/T 645 bus"
        ))));
    };
    if !matches!(mb.kind, MeterProtocol::Dlt645(_)) {
        return Err(anyhow::Error::new(crate::exit::BadInput(format!(
            "--scan {bus}: the read-address command is DL/T 645's; this bus speaks {}",
            mb.kind.as_str()
        ))));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut link = MeterLink::new(b.transport.clone(), b.timeout, mb.clone());
    let address = rt
        .block_on(link.read_address())
        .map_err(|e| anyhow::anyhow!("bus \"{bus}\": {e}"))?;
    println!("bus \"{bus}\": the meter answering the read-address command is {address}");
    Ok(())
}
