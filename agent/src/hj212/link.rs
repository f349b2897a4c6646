//! The TCP session with the platform: stored packets go out in order, one at a time; with `ack`
//! the one in flight is re-sent (same frames, same QN) until the platform's CN 9014 with its QN
//! arrives, after 5 s, then 10, 20, 40 and every 60 s; a reconnect starts over with it. The
//! platform's requests are answered as HJ 212-2017 says: CN 9011 (QnRtn 1, or 3 for a wrong PW, 4
//! for a wrong MN), the data, CN 9012 (ExeRtn 1, or 100 without data). Garbage from the platform is
//! skipped with one log line per connection (then counted), never trusted.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use plantmeter_common::hj212::command::{self, Command, ExeRtn, QnRtn};
use plantmeter_common::hj212::data::{self, DataCn, Flag};
use plantmeter_common::hj212::splitter::{FrameSplitter, Piece};
use plantmeter_common::hj212::Packet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::outbox::Queued;
use super::Shared;

/// First wait for a CN 9014 before re-sending (the standard's default answer timeout is 5 s).
const FIRST_RESEND: Duration = Duration::from_secs(5);
/// Longest wait between re-sends and between connection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
const FIRST_RECONNECT: Duration = Duration::from_millis(500);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A write that takes longer ends the connection (the platform stopped reading).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// The wait after the `attempt`-th send (1-based) of a packet before sending it again.
pub fn resend_delay(attempt: u32) -> Duration {
    FIRST_RESEND
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(6))
        .min(MAX_BACKOFF)
}

/// Connect, run a session, reconnect with a capped backoff, until `stop`.
pub async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let addr = shared.plan.address.clone();
    let mut backoff = FIRST_RECONNECT;
    let mut failing_since: Option<std::time::Instant> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        let connect = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr));
        let stream = tokio::select! {
            r = connect => r,
            _ = stop.changed() => return,
        };
        match stream {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                if failing_since.is_none() {
                    tracing::info!(platform = %addr, waiting = shared.waiting(), "HJ 212: connected to the platform");
                }
                shared.counters.connected.store(true, Ordering::Release);
                let mut session = Session::new(&shared, stream);
                let end = session.run(&mut stop).await;
                shared.counters.connected.store(false, Ordering::Release);
                let why = match end {
                    Ok(()) => return,
                    Err(why) => why,
                };
                if session.heard {
                    // A working session: start over with short waits.
                    backoff = FIRST_RECONNECT;
                    if let Some(since) = failing_since.take() {
                        tracing::info!(platform = %addr, unreachable_s = since.elapsed().as_secs(), "HJ 212: the platform answers again");
                    }
                }
                if failing_since.is_none() {
                    failing_since = Some(std::time::Instant::now());
                    tracing::warn!(platform = %addr, waiting = shared.waiting(), error = %why, "HJ 212: connection to the platform lost; packets wait in the store");
                } else {
                    tracing::debug!(platform = %addr, error = %why, "HJ 212: connection to the platform lost again");
                }
            }
            Ok(Err(e)) => {
                if failing_since.is_none() {
                    failing_since = Some(std::time::Instant::now());
                    tracing::warn!(platform = %addr, waiting = shared.waiting(), error = %e, "HJ 212: cannot connect to the platform; packets wait in the store");
                }
            }
            Err(_) => {
                if failing_since.is_none() {
                    failing_since = Some(std::time::Instant::now());
                    tracing::warn!(platform = %addr, "HJ 212: connecting to the platform timed out; packets wait in the store");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// The packet in flight.
struct InFlight {
    q: Queued,
    attempts: u32,
    resend_at: Instant,
}

struct Session<'a> {
    shared: &'a Shared,
    stream: TcpStream,
    splitter: FrameSplitter,
    in_flight: Option<InFlight>,
    /// Garbage pieces from the platform on this connection (the first is logged).
    garbage: u64,
    /// A valid frame came from the platform on this connection.
    heard: bool,
    /// Packets with an id up to this were built before this connection came up: they waited for
    /// the platform (back-fill, or sent before without an acknowledgement) and carry `RF=1` (2025).
    backfill_upto: Option<u64>,
    /// Real-time data (`realtime_s`, or the platform's CN 2011), until the platform says stop
    /// (CN 2012).
    realtime_on: Option<tokio::time::Interval>,
}

impl<'a> Session<'a> {
    fn new(shared: &'a Shared, stream: TcpStream) -> Session<'a> {
        Session {
            shared,
            stream,
            splitter: FrameSplitter::with_wire(shared.wire.clone()),
            in_flight: None,
            garbage: 0,
            heard: false,
            backfill_upto: shared.outbox.last_id().ok().flatten(),
            realtime_on: None,
        }
    }

    fn addr(&self) -> &str {
        &self.shared.plan.address
    }

    async fn write(&mut self, frame: &[u8]) -> Result<(), String> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.stream.write_all(frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("write failed: {e}")),
            Err(_) => Err(format!(
                "the platform read nothing for {} s",
                WRITE_TIMEOUT.as_secs()
            )),
        }
    }

    async fn write_packet(&mut self, p: &Packet) -> Result<(), String> {
        let mut p = p.clone();
        // Answers and data follow the link's version (command.rs builds 2017 flags).
        if let Some(f) = p.flag {
            let f = Flag::from_u8(f);
            p.flag = Some(
                Flag {
                    version: self.shared.flag(false).version,
                    ..f
                }
                .to_u8(),
            );
        }
        let frame = p
            .data_segment()
            .map_err(|e| e.to_string())
            .and_then(|seg| self.shared.wire_segment(&seg));
        match frame {
            Ok(f) => self.write(&f).await,
            Err(e) => {
                tracing::error!(error = %e, "HJ 212: cannot encode an answer; not sent");
                Ok(())
            }
        }
    }

    /// Send the next waiting packet when none is in flight.
    async fn send_next(&mut self) -> Result<(), String> {
        while self.in_flight.is_none() {
            let next = self
                .shared
                .outbox
                .next(None)
                .map_err(|e| format!("cannot read the uplink's store: {e:#}"))?;
            let Some(q) = next else {
                return Ok(());
            };
            let resent = self.backfill_upto.is_some_and(|u| q.id <= u);
            for f in &q.frames {
                let bytes = self.shared.wire_frame(f, resent)?;
                self.write(&bytes).await?;
            }
            self.shared.counters.sent.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(platform = %self.addr(), cn = %q.cn, qn = %q.qn, "HJ 212: packet sent");
            if self.shared.plan.ack {
                self.in_flight = Some(InFlight {
                    q,
                    attempts: 1,
                    resend_at: Instant::now() + resend_delay(1),
                });
            } else if let Err(e) = self.shared.outbox.remove(q.id) {
                return Err(format!("cannot update the uplink's store: {e:#}"));
            }
        }
        Ok(())
    }

    async fn resend(&mut self) -> Result<(), String> {
        let Some(f) = self.in_flight.as_mut() else {
            return Ok(());
        };
        f.attempts += 1;
        f.resend_at = Instant::now() + resend_delay(f.attempts);
        let (frames, qn, attempts) = (f.q.frames.clone(), f.q.qn.clone(), f.attempts);
        if attempts == 4 {
            tracing::warn!(platform = %self.addr(), qn = %qn, "HJ 212: no CN 9014 for a packet after 3 sends; re-sending it every {} s at most", MAX_BACKOFF.as_secs());
        }
        for fr in &frames {
            // HJ 212-2025 marks data sent again with RF=1.
            let bytes = self.shared.wire_frame(fr, true)?;
            self.write(&bytes).await?;
        }
        self.shared.counters.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn run(&mut self, stop: &mut watch::Receiver<bool>) -> Result<(), String> {
        if self.shared.plan.realtime.is_some() {
            self.realtime_on = Some(self.realtime_interval());
        }
        let mut heartbeat_tick = self.shared.plan.heartbeat.map(|h| {
            tokio::time::interval(self.shared.clock.real(h).max(Duration::from_millis(10)))
        });
        let mut buf = vec![0u8; 4096];
        loop {
            self.send_next().await?;
            let resend_at = self.in_flight.as_ref().map(|f| f.resend_at);
            tokio::select! {
                r = self.stream.read(&mut buf) => match r {
                    Ok(0) => {
                        if self.splitter.pending() > 0 {
                            tracing::warn!(platform = %self.addr(), bytes = self.splitter.pending(), "HJ 212: the platform closed the connection in the middle of a frame");
                        }
                        return Err("closed by the platform".into());
                    }
                    Ok(n) => {
                        self.splitter.push(&buf[..n]);
                        while let Some(piece) = self.splitter.next_piece() {
                            self.handle(piece).await?;
                        }
                    }
                    Err(e) => return Err(format!("read failed: {e}")),
                },
                _ = self.shared.queued.notified(), if self.in_flight.is_none() => {}
                _ = tokio::time::sleep_until(resend_at.unwrap_or_else(Instant::now)), if resend_at.is_some() => {
                    self.resend().await?;
                }
                _ = async { match heartbeat_tick.as_mut() { Some(t) => { t.tick().await; } None => std::future::pending().await } } => {
                    self.send_heartbeat().await?;
                }
                Some(()) = async { match self.realtime_on.as_mut() { Some(t) => { t.tick().await; Some(()) } None => std::future::pending().await } } => {
                    self.send_realtime().await?;
                }
                _ = stop.changed() => return Ok(()),
            }
        }
    }

    fn realtime_interval(&self) -> tokio::time::Interval {
        tokio::time::interval(
            self.shared
                .clock
                .real(self.shared.rtd_interval())
                .max(Duration::from_millis(10)),
        )
    }

    /// 9011 QnRtn 1, the parameter's upload (same QN), 9012 ExeRtn 1: how a logger answers a
    /// read request (CN 1011, 1061, 1063).
    async fn answer_parameter(
        &mut self,
        qn: &str,
        cn: &str,
        key: &str,
        value: String,
    ) -> Result<(), String> {
        let s = self.shared.station();
        self.write_packet(&command::request_answer(qn, &s.pw, &s.mn, QnRtn::Ready))
            .await?;
        self.write_packet(&command::parameter(qn, &s.st, cn, &s.pw, &s.mn, key, value))
            .await?;
        self.write_packet(&command::execution_result(
            qn,
            &s.pw,
            &s.mn,
            ExeRtn::Success,
        ))
        .await
    }

    /// Store the platform's settings with `change` applied; false (logged) when they could not be
    /// written: the change is then not made (it would not survive a restart).
    fn save_settings(&self, change: impl FnOnce(&mut super::settings::Stored)) -> bool {
        let mut s = match self.shared.settings.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        let mut next = s.clone();
        change(&mut next);
        match next.save(&self.shared.dir) {
            Ok(()) => {
                *s = next;
                true
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "HJ 212: cannot store the platform's setting; not applied (ExeRtn 6)");
                false
            }
        }
    }

    /// CN 1062, 1064, 1072: 9011 QnRtn 1, carry it out, 9012 ExeRtn 1 (6 when it could not be
    /// stored). The password change answers 9012 with the new PW: the platform has it already, and
    /// from here on every frame carries it.
    async fn set_parameter(&mut self, cmd: Command) -> Result<(), String> {
        let s = self.shared.station();
        let Some(qn) = (match &cmd {
            Command::SetRtdInterval { qn, .. }
            | Command::SetMinInterval { qn, .. }
            | Command::SetPassword { qn, .. } => Some(qn.clone()),
            _ => None,
        }) else {
            return Ok(());
        };
        self.write_packet(&command::request_answer(&qn, &s.pw, &s.mn, QnRtn::Ready))
            .await?;
        let mut pw = s.pw.clone();
        let done = match cmd {
            Command::SetRtdInterval { secs, .. } => {
                let ok = self.save_settings(|st| st.rtd_interval_s = Some(secs));
                if ok {
                    if let Ok(mut d) = self.shared.rtd_interval.lock() {
                        *d = Duration::from_secs(u64::from(secs));
                    }
                    if self.realtime_on.is_some() {
                        self.realtime_on = Some(self.realtime_interval());
                    }
                    tracing::info!(platform = %self.addr(), secs, "HJ 212: the platform set the real-time data interval (CN 1062)");
                }
                ok
            }
            Command::SetMinInterval { minutes, .. } => {
                let ok = self.save_settings(|st| st.min_interval_min = Some(minutes));
                if ok {
                    self.shared.minute.store(minutes, Ordering::Release);
                    tracing::info!(platform = %self.addr(), minutes, "HJ 212: the platform set the minute data interval (CN 1064)");
                }
                ok
            }
            Command::SetPassword { new_pw, .. } => {
                let file = &self.shared.plan.password_file;
                match super::settings::write_durable(file, format!("{new_pw}\n").as_bytes()) {
                    Ok(()) => {
                        if let Ok(mut st) = self.shared.station.lock() {
                            st.pw = new_pw.clone();
                        }
                        pw = new_pw;
                        tracing::warn!(platform = %self.addr(), file = %file.display(), "HJ 212: the platform changed the access password (CN 1072); written to the password file");
                        true
                    }
                    Err(e) => {
                        tracing::error!(platform = %self.addr(), error = %format!("{e:#}"), "HJ 212: the platform changed the access password (CN 1072) but the password file cannot be written; the old one stays (ExeRtn 6)");
                        false
                    }
                }
            }
            _ => false,
        };
        let rtn = if done { ExeRtn::Success } else { ExeRtn::Fault };
        self.write_packet(&command::execution_result(&qn, &pw, &s.mn, rtn))
            .await
    }

    /// CN 9015 (HJ 212-2025): the link is alive.
    async fn send_heartbeat(&mut self) -> Result<(), String> {
        let now = self.shared.clock.now_ms();
        let p = Packet {
            qn: Some(data::qn(now, self.shared.plan.timezone)),
            st: command::ST_SYSTEM.to_string(),
            cn: "9015".to_string(),
            pw: self.shared.station().pw,
            mn: self.shared.station().mn,
            flag: Some(self.shared.flag(false).to_u8()),
            extra: Vec::new(),
            cp: Vec::new(),
        };
        self.write_packet(&p).await
    }

    async fn send_realtime(&mut self) -> Result<(), String> {
        let values = match self.shared.realtime.lock() {
            Ok(v) => v.clone(),
            Err(_) => return Ok(()),
        };
        if values.is_empty() {
            return Ok(());
        }
        let h = &self.shared.plan;
        let now = self.shared.clock.now_ms();
        // The pollutants under the station's ST, a facility's electricity under ST 44 (分表计电).
        for (station, values) in self.shared.by_st(&values) {
            let p = data::data_packet(
                &station,
                DataCn::Realtime,
                &data::qn(now, h.timezone),
                self.shared.flag(false),
                &data::data_time(now, h.timezone),
                &values,
            );
            self.write_split(&p).await?;
        }
        Ok(())
    }

    async fn write_split(&mut self, p: &Packet) -> Result<(), String> {
        match data::split_for(p, self.shared.plan.version) {
            Ok(parts) => {
                for part in &parts {
                    self.write_packet(part).await?;
                }
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "HJ 212: cannot build a packet; not sent");
                Ok(())
            }
        }
    }

    async fn handle(&mut self, piece: Piece) -> Result<(), String> {
        let p = match piece {
            Piece::Frame(p) => {
                if !self.heard {
                    self.heard = true;
                    tracing::info!(platform = %self.addr(), waiting = self.shared.waiting(), "HJ 212: the platform answers");
                }
                p
            }
            Piece::Garbage { bytes, why } => {
                self.garbage += 1;
                if self.garbage == 1 {
                    tracing::warn!(platform = %self.addr(), bytes, error = %why, "HJ 212: garbage from the platform skipped (further garbage on this connection is only counted)");
                } else {
                    tracing::debug!(platform = %self.addr(), bytes, error = %why, garbage = self.garbage, "HJ 212: garbage from the platform skipped");
                }
                return Ok(());
            }
        };
        let station = self.shared.station();
        let (pw, mn) = (station.pw.clone(), station.mn.clone());
        match command::interpret(&p, &pw, &mn, self.shared.plan.timezone) {
            Ok(Command::DataAck { qn }) => {
                if self.in_flight.as_ref().is_some_and(|f| f.q.qn == qn) {
                    if let Some(f) = self.in_flight.take() {
                        self.shared
                            .outbox
                            .remove(f.q.id)
                            .map_err(|e| format!("cannot update the uplink's store: {e:#}"))?;
                        self.shared.counters.acked.fetch_add(1, Ordering::Relaxed);
                    }
                } else {
                    tracing::debug!(platform = %self.addr(), qn = %qn, "HJ 212: CN 9014 for no packet in flight (a late duplicate)");
                }
                Ok(())
            }
            Ok(Command::History {
                qn,
                cn,
                begin_ms,
                end_ms,
            }) => {
                tracing::info!(platform = %self.addr(), cn = cn.code(), qn = %qn, "HJ 212: history request");
                self.write_packet(&command::request_answer(&qn, &pw, &mn, QnRtn::Ready))
                    .await?;
                let entries = match self.shared.outbox.history(cn, begin_ms, end_ms) {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "HJ 212: cannot read the stored intervals");
                        return self
                            .write_packet(&command::execution_result(&qn, &pw, &mn, ExeRtn::Fault))
                            .await;
                    }
                };
                for e in &entries {
                    let p = Packet {
                        qn: Some(qn.clone()),
                        st: station.st.clone(),
                        cn: cn.code().to_string(),
                        pw: pw.clone(),
                        mn: mn.clone(),
                        flag: Some(self.shared.flag(false).to_u8()),
                        extra: Vec::new(),
                        cp: e.cp.clone(),
                    };
                    self.write_split(&p).await?;
                }
                let rtn = if entries.is_empty() {
                    ExeRtn::NoData
                } else {
                    ExeRtn::Success
                };
                self.write_packet(&command::execution_result(&qn, &pw, &mn, rtn))
                    .await
            }
            Ok(Command::ReadTime { qn }) => {
                let now = data::data_time(self.shared.clock.now_ms(), self.shared.plan.timezone);
                self.answer_parameter(&qn, "1011", "SystemTime", now).await
            }
            Ok(Command::ReadRtdInterval { qn }) => {
                let secs = self.shared.rtd_interval().as_secs().to_string();
                self.answer_parameter(&qn, "1061", "RtdInterval", secs)
                    .await
            }
            Ok(Command::ReadMinInterval { qn }) => {
                let m = self.shared.minute.load(Ordering::Acquire).to_string();
                self.answer_parameter(&qn, "1063", "MinInterval", m).await
            }
            Ok(
                cmd @ (Command::SetRtdInterval { .. }
                | Command::SetMinInterval { .. }
                | Command::SetPassword { .. }),
            ) => self.set_parameter(cmd).await,
            Ok(Command::BadCondition { qn, cn, why }) => {
                tracing::warn!(platform = %self.addr(), cn = %cn, qn = %qn, why = %why, "HJ 212: a request with a wrong parameter; answered ExeRtn 3");
                self.write_packet(&command::request_answer(&qn, &pw, &mn, QnRtn::Ready))
                    .await?;
                self.write_packet(&command::execution_result(
                    &qn,
                    &pw,
                    &mn,
                    ExeRtn::BadCondition,
                ))
                .await
            }
            Ok(Command::SetTime { qn, time }) => {
                if !self.shared.plan.allow_set_time {
                    tracing::warn!(platform = %self.addr(), qn = %qn, time = %time, "HJ 212: the platform asked to set the time (CN 1012); refused (QnRtn 2): allow_set_time is false");
                    return self
                        .write_packet(&command::request_answer(&qn, &pw, &mn, QnRtn::Refused))
                        .await;
                }
                // The agent does not own the system clock (NTP or the OS does): it says so rather
                // than claim a time it did not set.
                tracing::warn!(platform = %self.addr(), qn = %qn, time = %time, "HJ 212: the platform asked to set the time (CN 1012); the system clock is set by NTP/the OS, not by the agent: answered ExeRtn 2");
                self.write_packet(&command::request_answer(&qn, &pw, &mn, QnRtn::Ready))
                    .await?;
                self.write_packet(&command::execution_result(&qn, &pw, &mn, ExeRtn::Failed))
                    .await
            }
            Ok(Command::StartRealtime { qn }) => {
                tracing::info!(platform = %self.addr(), qn = %qn, "HJ 212: the platform asked for real-time data (CN 2011)");
                self.realtime_on = Some(self.realtime_interval());
                self.write_packet(&command::request_answer(&qn, &pw, &mn, QnRtn::Ready))
                    .await
            }
            Ok(Command::StopRealtime { qn }) => {
                self.realtime_on = None;
                tracing::info!(platform = %self.addr(), qn = %qn, "HJ 212: the platform stopped real-time data (CN 2012)");
                self.write_packet(&command::notice_answer(&qn, &pw, &mn))
                    .await
            }
            Ok(Command::Unsupported { qn, cn, why }) => {
                if cn.starts_with("90") {
                    // An answer to something (9011/9012/9013 of the platform): nothing to do.
                    return Ok(());
                }
                tracing::info!(platform = %self.addr(), cn = %cn, why = %why, "HJ 212: request refused (QnRtn 2)");
                self.write_packet(&command::request_answer(&qn, &pw, &mn, QnRtn::Refused))
                    .await
            }
            Err(rtn) => {
                let what = match rtn {
                    QnRtn::PwError => "a wrong password (PW)",
                    QnRtn::MnError => "a wrong MN",
                    _ => "no QN",
                };
                tracing::warn!(platform = %self.addr(), cn = %p.cn, mn = %p.mn, qnrtn = rtn.code(), "HJ 212: a request with {what}; answered CN 9011 QnRtn {}", rtn.code());
                let qn = p.qn.clone().unwrap_or_else(|| {
                    data::qn(self.shared.clock.now_ms(), self.shared.plan.timezone)
                });
                self.write_packet(&command::request_answer(&qn, &pw, &mn, rtn))
                    .await
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::hj212::outbox::{Outbox, Persisted};
    use crate::hj212::Counters;
    use plantmeter_common::hj212::data::Station;
    use plantmeter_common::plan::Hj212Plan;
    use std::sync::Mutex;
    use tokio::io::AsyncBufReadExt;

    fn shared(dir: &std::path::Path, address: String) -> Arc<Shared> {
        shared_with(dir, address, true)
    }

    fn shared_with(dir: &std::path::Path, address: String, ack: bool) -> Arc<Shared> {
        shared_rt(dir, address, ack, None)
    }

    fn shared_rt(
        dir: &std::path::Path,
        address: String,
        ack: bool,
        realtime: Option<Duration>,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            plan: Hj212Plan {
                address,
                mn: "M1".into(),
                password_file: dir.join("pw"),
                st: 32,
                minute: 10,
                hour: true,
                day: true,
                realtime,
                ack,
                version: 2017,
                sm4_key_file: None,
                sm4_form: Default::default(),
                sm4_length: Default::default(),
                allow_set_time: false,
                heartbeat: None,
                timezone: chrono::FixedOffset::east_opt(8 * 3600).unwrap(),
                factors: Vec::new(),
            },
            station: Mutex::new(Station {
                st: "32".into(),
                pw: "1".into(),
                mn: "M1".into(),
            }),
            dir: dir.join("hj212"),
            settings: Mutex::new(Default::default()),
            rtd_interval: Mutex::new(realtime.unwrap_or(crate::hj212::DEFAULT_RTD_INTERVAL)),
            minute: std::sync::atomic::AtomicU32::new(10),
            outbox: Outbox::open(&dir.join("hj212")).unwrap(),
            counters: Counters::default(),
            queued: tokio::sync::Notify::new(),
            realtime: Mutex::new(Vec::new()),
            clock: plantmeter_common::Clock::wall(),
            wire: None,
        })
    }

    fn queued(id: u64) -> Queued {
        let p = Packet {
            qn: Some(format!("2026010100000000{id}")),
            st: "32".into(),
            cn: "2061".into(),
            pw: "1".into(),
            mn: "M1".into(),
            flag: Some(5),
            extra: vec![],
            cp: vec![vec![("DataTime".into(), format!("2026010100000{id}"))]],
        };
        Queued {
            id,
            cn: "2061".into(),
            start_ms: 0,
            qn: p.qn.clone().unwrap(),
            frames: vec![p.encode().unwrap()],
        }
    }

    /// The platform ignores the first send of packet 0 and closes the connection after the second
    /// (without acknowledging): the next connection gets packet 0 again first, same bytes; only its
    /// 9014 lets packet 1 go.
    #[tokio::test]
    async fn a_packet_is_resent_until_acknowledged_and_the_next_waits_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sh = shared(dir.path(), listener.local_addr().unwrap().to_string());
        sh.outbox
            .commit(&mut Persisted::default(), &[queued(0), queued(1)], &[], 0)
            .unwrap();
        let (stop_tx, stop_rx) = watch::channel(false);
        let link = tokio::spawn(run(sh.clone(), stop_rx));
        let mut lines_seen: Vec<String> = Vec::new();
        // First connection: two sends of packet 0 (the second after FIRST_RESEND), then closed.
        let (s, _) = listener.accept().await.unwrap();
        let mut r = tokio::io::BufReader::new(s);
        for _ in 0..2 {
            let mut line = String::new();
            r.read_line(&mut line).await.unwrap();
            lines_seen.push(line);
        }
        drop(r);
        // Second connection: packet 0 again; acknowledged; then packet 1.
        let (s, _) = listener.accept().await.unwrap();
        let (rd, mut wr) = s.into_split();
        let mut r = tokio::io::BufReader::new(rd);
        let mut line = String::new();
        r.read_line(&mut line).await.unwrap();
        lines_seen.push(line.clone());
        let ack = plantmeter_common::hj212::command::data_ack(&queued(0).qn, "1", "M1");
        wr.write_all(ack.encode().unwrap().as_bytes())
            .await
            .unwrap();
        let mut next = String::new();
        r.read_line(&mut next).await.unwrap();
        assert_eq!(lines_seen, vec![queued(0).frames[0].clone(); 3]);
        assert_eq!(next, queued(1).frames[0]);
        assert_eq!(sh.outbox.next(None).unwrap().map(|q| q.id), Some(1));
        assert_eq!(sh.counters.acked.load(Ordering::Relaxed), 1);
        let _ = stop_tx.send(true);
        link.await.unwrap();
    }

    /// HJ 212-2025 with SM4: data go out encrypted with Flag 8, heartbeats (9015) come, and the
    /// platform's commands are answered with 2025 flags: read time (9011, 1011 SystemTime, 9012),
    /// set time refused without allow_set_time (QnRtn 2), stop real-time (9013), wrong PW (QnRtn 3).
    #[tokio::test]
    async fn v2025_encrypts_data_beats_and_answers_commands() {
        use plantmeter_common::hj212::sm4::{Key, Wire};
        use plantmeter_common::hj212::splitter::{FrameSplitter, Piece};
        use tokio::io::AsyncReadExt;
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let wire = Wire {
            key: Key::parse("0000000000000000").unwrap(),
            form: Default::default(),
            length: Default::default(),
        };
        let mut sh = Arc::try_unwrap(shared_with(
            dir.path(),
            listener.local_addr().unwrap().to_string(),
            false,
        ))
        .ok()
        .unwrap();
        sh.plan.version = 2025;
        sh.plan.heartbeat = Some(Duration::from_millis(200));
        sh.wire = Some(wire.clone());
        let sh = Arc::new(sh);
        let mut q = queued(0);
        q.frames = vec![Packet {
            flag: Some(8),
            ..Packet::decode(&q.frames[0]).unwrap()
        }
        .encode()
        .unwrap()];
        sh.outbox
            .commit(&mut Persisted::default(), &[q], &[], 0)
            .unwrap();
        let (stop_tx, stop_rx) = watch::channel(false);
        let link = tokio::spawn(run(sh.clone(), stop_rx));
        let (s, _) = listener.accept().await.unwrap();
        let (mut rd, mut wr) = s.into_split();
        let req = |cn: &str, qn: &str, pw: &str, cp: Vec<Vec<(String, String)>>| Packet {
            qn: Some(qn.into()),
            st: "32".into(),
            cn: cn.into(),
            pw: pw.into(),
            mn: "M1".into(),
            flag: Some(8),
            extra: vec![],
            cp,
        };
        for r in [
            req("1011", "20260101000000001", "1", vec![]),
            req(
                "1012",
                "20260101000000002",
                "1",
                vec![vec![("SystemTime".into(), "20260101120000".into())]],
            ),
            req("2012", "20260101000000003", "1", vec![]),
            req("1011", "20260101000000004", "wrong", vec![]),
        ] {
            wr.write_all(r.encode().unwrap().as_bytes()).await.unwrap();
        }
        let mut raw = Vec::new();
        let mut sp = FrameSplitter::with_wire(Some(wire));
        let mut got: Vec<Packet> = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 4096];
        while !(got.iter().any(|p| p.cn == "9015")
            && got.iter().filter(|p| p.cn == "9011").count() >= 3
            && got.iter().any(|p| p.cn == "9013"))
        {
            assert!(tokio::time::Instant::now() < deadline, "{got:?}");
            let n = tokio::time::timeout(Duration::from_secs(5), rd.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            raw.extend_from_slice(&buf[..n]);
            sp.push(&buf[..n]);
            while let Some(piece) = sp.next_piece() {
                match piece {
                    Piece::Frame(p) => got.push(p),
                    Piece::Garbage { why, .. } => panic!("garbage from the agent: {why}"),
                }
            }
        }
        let data = got.iter().find(|p| p.cn == "2061").unwrap();
        assert_eq!(data.cp_get("DataTime"), Some("20260101000000"));
        assert!(
            !raw.windows(8).any(|w| w == b"DataTime"),
            "the data region went out encrypted"
        );
        assert!(
            got.iter().all(|p| p.flag.map(|f| f >> 2) == Some(2)),
            "{got:?}"
        );
        let rtn = |qn: &str| {
            got.iter()
                .find(|p| p.cn == "9011" && p.qn.as_deref() == Some(qn))
                .and_then(|p| p.cp_get("QnRtn").map(str::to_string))
        };
        assert_eq!(rtn("20260101000000001").as_deref(), Some("1"));
        assert!(got
            .iter()
            .any(|p| p.cn == "1011" && p.cp_get("SystemTime").is_some_and(|t| t.len() == 14)));
        assert!(got.iter().any(|p| p.cn == "9012"
            && p.qn.as_deref() == Some("20260101000000001")
            && p.cp_get("ExeRtn") == Some("1")));
        assert_eq!(
            rtn("20260101000000002").as_deref(),
            Some("2"),
            "set time refused"
        );
        assert!(got
            .iter()
            .any(|p| p.cn == "9013" && p.qn.as_deref() == Some("20260101000000003")));
        assert_eq!(rtn("20260101000000004").as_deref(), Some("3"), "wrong PW");
        let _ = stop_tx.send(true);
        link.await.unwrap();
    }

    /// CN 1061-1064 and 1072 in HJ 212-2017 and 2025 (SM4): reads answered 9011, the parameter,
    /// 9012; sets change the running link and are stored (settings.json, the password file);
    /// a wrong parameter gets ExeRtn 3, a wrong PW QnRtn 3 and a wrong MN QnRtn 4 with nothing
    /// changed; after 1072 the old password is refused and the frames carry the new one, also
    /// the stored packet sent after it.
    #[tokio::test]
    async fn interval_and_password_commands_change_the_link_and_persist() {
        use plantmeter_common::hj212::sm4::{Key, Wire};
        use plantmeter_common::hj212::splitter::{FrameSplitter, Piece};
        use tokio::io::AsyncReadExt;
        for version in [2017u16, 2025] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("pw"), "1\n").unwrap();
            std::fs::create_dir_all(dir.path().join("hj212")).unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let wire = (version == 2025).then(|| Wire {
                key: Key::parse("0000000000000000").unwrap(),
                form: Default::default(),
                length: Default::default(),
            });
            let mut sh = Arc::try_unwrap(shared_rt(
                dir.path(),
                listener.local_addr().unwrap().to_string(),
                false,
                Some(Duration::from_secs(3600)),
            ))
            .ok()
            .unwrap();
            sh.plan.version = version;
            sh.wire = wire.clone();
            let sh = Arc::new(sh);
            let (stop_tx, stop_rx) = watch::channel(false);
            let link = tokio::spawn(run(sh.clone(), stop_rx));
            let (s, _) = listener.accept().await.unwrap();
            let (mut rd, mut wr) = s.into_split();
            let flag = if version == 2025 { 9 } else { 5 };
            let req = |cn: &str, qn: u32, pw: &str, mn: &str, cp: &str| {
                let seg = format!(
                    "QN=20260101000000{qn:03};ST=32;CN={cn};PW={pw};MN={mn};Flag={flag};CP=&&{cp}&&"
                );
                plantmeter_common::hj212::encode_frame(&seg).unwrap()
            };
            let mut sp = FrameSplitter::with_wire(wire.clone());
            let mut got: Vec<Packet> = Vec::new();
            let mut buf = [0u8; 4096];
            // Sends `frames`, then reads until `done` holds of what came.
            macro_rules! exchange {
                ($frames:expr, $done:expr) => {{
                    for f in $frames {
                        wr.write_all(f.as_bytes()).await.unwrap();
                    }
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                    while !$done(&got) {
                        assert!(tokio::time::Instant::now() < deadline, "{version}: {got:?}");
                        let n = tokio::time::timeout(Duration::from_secs(5), rd.read(&mut buf))
                            .await
                            .unwrap()
                            .unwrap();
                        sp.push(&buf[..n]);
                        while let Some(piece) = sp.next_piece() {
                            match piece {
                                Piece::Frame(p) => got.push(p),
                                Piece::Garbage { why, .. } => panic!("garbage: {why}"),
                            }
                        }
                    }
                }};
            }
            let of = |got: &[Packet], qn: u32| -> Vec<Packet> {
                let qn = format!("20260101000000{qn:03}");
                got.iter()
                    .filter(|p| p.qn.as_deref() == Some(qn.as_str()))
                    .cloned()
                    .collect()
            };
            let ended = |qn: u32| {
                move |got: &Vec<Packet>| {
                    of(got, qn)
                        .iter()
                        .any(|p| p.cn == "9012" || p.cp_get("QnRtn").is_some_and(|r| r != "1"))
                }
            };
            // Reads.
            exchange!([req("1061", 1, "1", "M1", "")], ended(1));
            exchange!([req("1063", 2, "1", "M1", "")], ended(2));
            let a = of(&got, 1);
            assert_eq!(
                a.iter().map(|p| p.cn.as_str()).collect::<Vec<_>>(),
                vec!["9011", "1061", "9012"]
            );
            assert_eq!(a[1].cp_get("RtdInterval"), Some("3600"));
            assert_eq!(a[2].cp_get("ExeRtn"), Some("1"));
            assert_eq!(of(&got, 2)[1].cp_get("MinInterval"), Some("10"));
            // Wrong PW, wrong MN, wrong parameters: nothing changes.
            exchange!([req("1062", 3, "9", "M1", "RtdInterval=60")], ended(3));
            exchange!([req("1072", 4, "1", "M2", "NewPW=777777")], ended(4));
            exchange!([req("1064", 5, "1", "M1", "MinInterval=7")], ended(5));
            exchange!([req("1062", 6, "1", "M1", "RtdInterval=5")], ended(6));
            assert_eq!(of(&got, 3)[0].cp_get("QnRtn"), Some("3"), "wrong PW");
            assert_eq!(of(&got, 4)[0].cp_get("QnRtn"), Some("4"), "wrong MN");
            for qn in [5, 6] {
                let a = of(&got, qn);
                assert_eq!(a[0].cp_get("QnRtn"), Some("1"));
                assert_eq!(a[1].cp_get("ExeRtn"), Some("3"), "bad parameter {qn}");
            }
            assert_eq!(
                std::fs::read_to_string(dir.path().join("pw")).unwrap(),
                "1\n"
            );
            assert_eq!(sh.rtd_interval(), Duration::from_secs(3600));
            // Sets.
            exchange!([req("1062", 7, "1", "M1", "RtdInterval=60")], ended(7));
            exchange!([req("1064", 8, "1", "M1", "MinInterval=5")], ended(8));
            for qn in [7, 8] {
                assert_eq!(of(&got, qn)[1].cp_get("ExeRtn"), Some("1"), "set {qn}");
            }
            assert_eq!(sh.rtd_interval(), Duration::from_secs(60));
            assert_eq!(sh.minute.load(Ordering::Acquire), 5);
            let stored: crate::hj212::settings::Stored = serde_json::from_slice(
                &std::fs::read(dir.path().join("hj212/settings.json")).unwrap(),
            )
            .unwrap();
            assert_eq!(
                (stored.rtd_interval_s, stored.min_interval_min),
                (Some(60), Some(5))
            );
            exchange!([req("1061", 9, "1", "M1", "")], ended(9));
            assert_eq!(of(&got, 9)[1].cp_get("RtdInterval"), Some("60"));
            // The password.
            exchange!([req("1072", 10, "1", "M1", "NewPW=654321")], ended(10));
            let a = of(&got, 10);
            assert_eq!((a[0].pw.as_str(), a[1].cp_get("ExeRtn")), ("1", Some("1")));
            assert_eq!(a[1].pw, "654321", "9012 with the new PW");
            assert_eq!(
                std::fs::read_to_string(dir.path().join("pw")).unwrap(),
                "654321\n"
            );
            exchange!([req("1011", 11, "1", "M1", "")], ended(11));
            assert_eq!(of(&got, 11)[0].cp_get("QnRtn"), Some("3"), "old PW refused");
            // A packet built with the old password goes out with the new one.
            sh.outbox
                .commit(&mut Persisted::default(), &[queued(0)], &[], 0)
                .unwrap();
            sh.queued.notify_one();
            exchange!([req("1011", 12, "654321", "M1", "")], |got: &Vec<
                Packet,
            >| {
                got.iter().any(|p| p.cn == "2061") && ended(12)(got)
            });
            assert_eq!(of(&got, 12)[1].cn, "1011", "new PW accepted");
            let data = got.iter().find(|p| p.cn == "2061").unwrap();
            assert_eq!(data.pw, "654321");
            assert!(
                got.iter()
                    .filter(|p| p.cn != "2061") // the test's stored packet is a 2017 one
                    .all(|p| p.flag.map(|f| f >> 2) == Some(if version == 2025 { 2 } else { 1 })),
                "{got:?}"
            );
            let _ = stop_tx.send(true);
            link.await.unwrap();
        }
    }

    #[test]
    fn resends_back_off_to_a_minute() {
        let secs: Vec<u64> = (1..=9).map(|a| resend_delay(a).as_secs()).collect();
        assert_eq!(secs, vec![5, 10, 20, 40, 60, 60, 60, 60, 60]);
        assert_eq!(resend_delay(u32::MAX), MAX_BACKOFF);
    }

    /// Without `ack`, packets go one after the other and leave the store once written; CN 9014 is
    /// not waited for. Garbage and a bad request on the way change nothing.
    #[tokio::test]
    async fn without_ack_packets_go_in_order_and_leave_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sh = shared_with(
            dir.path(),
            listener.local_addr().unwrap().to_string(),
            false,
        );
        sh.outbox
            .commit(&mut Persisted::default(), &[queued(0), queued(1)], &[], 0)
            .unwrap();
        let (stop_tx, stop_rx) = watch::channel(false);
        let link = tokio::spawn(run(sh.clone(), stop_rx));
        let (s, _) = listener.accept().await.unwrap();
        let (rd, mut wr) = s.into_split();
        wr.write_all(b"garbage##00").await.unwrap();
        let mut r = tokio::io::BufReader::new(rd);
        let mut got = Vec::new();
        for _ in 0..2 {
            let mut line = String::new();
            r.read_line(&mut line).await.unwrap();
            got.push(line);
        }
        assert_eq!(
            got,
            vec![queued(0).frames[0].clone(), queued(1).frames[0].clone()]
        );
        // A request with a wrong MN is answered 9011 QnRtn=4.
        let bad = Packet {
            qn: Some("20260101000000999".into()),
            mn: "OTHER".into(),
            ..Packet::decode(&queued(0).frames[0]).unwrap()
        };
        wr.write_all(bad.encode().unwrap().as_bytes())
            .await
            .unwrap();
        let mut line = String::new();
        r.read_line(&mut line).await.unwrap();
        let answer = Packet::decode(&line).unwrap();
        assert_eq!(
            (answer.cn.as_str(), answer.cp_get("QnRtn")),
            ("9011", Some("4"))
        );
        assert_eq!(answer.qn.as_deref(), Some("20260101000000999"));
        assert_eq!(sh.outbox.next(None).unwrap(), None);
        assert_eq!(sh.counters.sent.load(Ordering::Relaxed), 2);
        let _ = stop_tx.send(true);
        link.await.unwrap();
    }

    /// `realtime_s`: CN 2011 with the latest values, `-Rtd` and `-Flag`, no ack asked, not stored.
    #[tokio::test]
    async fn real_time_data_goes_out_while_connected() {
        use plantmeter_common::hj212::data::{DataFlag, FactorValues};
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sh = shared_rt(
            dir.path(),
            listener.local_addr().unwrap().to_string(),
            true,
            Some(Duration::from_secs(30)),
        );
        *sh.realtime.lock().unwrap() = vec![FactorValues {
            code: "w01018".into(),
            rtd: Some(48.5),
            min: None,
            avg: None,
            max: None,
            zs_avg: None,
            zs_rtd: None,
            cou: None,
            flag: DataFlag::Normal,
        }];
        let (stop_tx, stop_rx) = watch::channel(false);
        let link = tokio::spawn(run(sh.clone(), stop_rx));
        let (s, _) = listener.accept().await.unwrap();
        let mut r = tokio::io::BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).await.unwrap();
        let p = Packet::decode(&line).unwrap();
        assert_eq!((p.cn.as_str(), p.flag), ("2011", Some(4)));
        assert_eq!(p.cp_get("w01018-Rtd"), Some("48.5"));
        assert_eq!(p.cp_get("w01018-Flag"), Some("N"));
        assert_eq!(p.cp_get("DataTime").map(str::len), Some(14));
        assert_eq!(sh.outbox.pending(), 0, "not stored");
        let _ = stop_tx.send(true);
        link.await.unwrap();
    }
}
