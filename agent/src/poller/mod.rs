//! Polling: one task per serial bus (one request in flight, inter-frame gap), one task per meter on
//! TCP buses (meters polled concurrently, each on its own connection). Each task owns a [`Link`]
//! and schedules its meters on absolute deadlines in the clock's time (no drift: the next poll is
//! the next multiple of the interval, never "now + interval"), backs off exponentially (capped) on a
//! failing request group, and turns every poll into one data message with per-point quality.
//!
//! Back-off is per request (a group of points read together), not per meter: a meter refusing
//! one request (an unmapped register: exception 02) keeps its other points on their interval,
//! and the refused points carry `device_error` meanwhile. A transport failure (timeout, dropped
//! connection, a reply that does not answer the request) fails the requests not yet read in that
//! poll too: the meter or line stopped answering, and timeouts are not piled up.

pub mod clock_watch;
pub mod link;
pub mod meter_link;

use std::sync::Arc;
use std::time::Duration;

use plantmeter_common::batching::batch;
use plantmeter_common::codec::{decode_bits, decode_registers};
use plantmeter_common::plan::{Bus, Meter, Protocol, ReadRequest, Transport};
use plantmeter_common::{Clock, Plan, Quality};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use crate::state::{Health, Shared};
use clock_watch::ClockWatch;
use link::{Link, ReadError, Reply};
use meter_link::MeterLink;

/// The longest pause between two reads of a failing request group, in the clock's time (or the
/// meter's interval, if longer).
pub const BACKOFF_CAP: Duration = Duration::from_secs(60);

/// Where polls go.
#[derive(Clone)]
pub struct Sink {
    /// To the store writer, in polling order.
    pub data: mpsc::Sender<crate::store::ToWriter>,
    /// Index (in `Plan::meters()` order) of a meter whose health changed.
    pub health: mpsc::UnboundedSender<usize>,
    pub shared: Shared,
}

/// Start the polling tasks of every bus. They stop when `shutdown` turns true (after the poll in progress).
pub fn spawn_all(
    plan: Arc<Plan>,
    clock: Clock,
    sink: Sink,
    shutdown: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut handles = Vec::new();
    let watch = Arc::new(ClockWatch::new(
        clock_watch::build_date_ms(),
        sink.shared.clone(),
    ));
    let mut global = 0usize;
    for (b, bus) in plan.buses.iter().enumerate() {
        let members: Vec<(usize, usize)> = (0..bus.meters.len()).map(|m| (global + m, m)).collect();
        global += bus.meters.len();
        let groups: Vec<Vec<(usize, usize)>> = match bus.transport {
            // Modbus TCP: each meter on its own connection, polled concurrently.
            Transport::Tcp { .. } => members.into_iter().map(|m| vec![m]).collect(),
            // A serial line (local or behind a converter): one request at a time.
            Transport::Rtu(_) | Transport::RtuOverTcp { .. } => vec![members],
        };
        for g in groups {
            if g.is_empty() {
                continue;
            }
            let span = tracing::info_span!("bus", bus = %bus.name);
            let task = run_group(
                plan.clone(),
                b,
                g,
                (clock, watch.clone()),
                sink.clone(),
                shutdown.clone(),
            );
            handles.push(tokio::spawn(task.instrument(span)));
        }
    }
    handles
}

struct Sched {
    /// Index in `Plan::meters()` order.
    global: usize,
    /// Index in its bus.
    local: usize,
    interval_ms: i64,
    /// The meter's requests split into contiguous groups, once it refused a read over unmapped
    /// registers (see [`split_requests`]).
    split: Option<Vec<ReadRequest>>,
    /// One per request in force (the meter's, or `split`), in order.
    groups: Vec<Group>,
    /// Per point: its implausible value was named in the log already (once per point, not per poll).
    named_invalid: Vec<bool>,
    span: tracing::Span,
}

impl Sched {
    /// When the meter is polled next: when its first request group is due.
    fn next_due_ms(&self) -> i64 {
        self.groups
            .iter()
            .map(|g| g.next_due_ms)
            .min()
            .unwrap_or(i64::MAX)
    }
}

/// The schedule of one request of a meter, with its own back-off.
#[derive(Debug, Clone)]
struct Group {
    next_due_ms: i64,
    /// Failed reads in a row.
    fails: u32,
    /// The last failure, while failing.
    error: Option<ReadError>,
}

impl Group {
    fn due_at(next_due_ms: i64) -> Group {
        Group {
            next_due_ms,
            fails: 0,
            error: None,
        }
    }

    fn failed(&mut self, e: &ReadError) {
        self.fails = self.fails.saturating_add(1);
        self.error = Some(e.clone());
    }

    fn answered(&mut self) {
        self.fails = 0;
        self.error = None;
    }

    /// The quality its points carry while it waits out a back-off.
    fn quality(&self) -> Quality {
        match self.error {
            Some(ReadError::Exception(..)) => Quality::DeviceError,
            _ => Quality::CommError,
        }
    }
}

/// The smallest multiple of `interval_ms` strictly after `t`.
pub fn grid_after(t: i64, interval_ms: i64) -> i64 {
    (t.div_euclid(interval_ms) + 1) * interval_ms
}

/// When to poll next, in clock ms: the next grid point after the poll that was due at `due`, or
/// after an exponential backoff (`interval x 2^(fails-1)`, capped) while the meter fails.
pub fn next_due(due: i64, now: i64, interval_ms: i64, fails: u32) -> i64 {
    let base = if fails > 1 {
        let cap = interval_ms.max(BACKOFF_CAP.as_millis() as i64);
        let back = interval_ms
            .saturating_mul(1i64 << (fails - 1).min(20))
            .min(cap);
        now + back - interval_ms
    } else {
        due
    };
    grid_after(base.max(now), interval_ms)
}

async fn run_group(
    plan: Arc<Plan>,
    bus_idx: usize,
    members: Vec<(usize, usize)>,
    (mut clock, clock_watch): (Clock, Arc<ClockWatch>),
    sink: Sink,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(bus) = plan.buses.get(bus_idx) else {
        return;
    };
    let mut link = AnyLink::of(bus);
    // Scheduling runs on the clock's monotonic time base; readings are stamped with `now_ms`.
    let now = clock.schedule_ms();
    let mut sched: Vec<Sched> = members
        .iter()
        .filter_map(|&(global, local)| {
            let m = bus.meters.get(local)?;
            // DL/T 645 / CJ/T 188: one request per read of the plan, each with its own back-off.
            let split = m.link.as_ref().map(link_requests);
            let n = split.as_ref().map_or(m.requests.len(), Vec::len);
            // A meter always has a request (the config requires a point); one without would
            // have nothing to poll.
            if n == 0 {
                return None;
            }
            let interval_ms = (m.poll_interval.as_millis() as i64).max(1);
            let first = grid_after(now, interval_ms);
            Some(Sched {
                global,
                local,
                interval_ms,
                split,
                groups: vec![Group::due_at(first); n],
                named_invalid: vec![false; m.points.len()],
                span: tracing::info_span!("meter", meter = %m.name, unit = m.unit_id),
            })
        })
        .collect();
    let mut values: Vec<(Option<f64>, Quality)> = Vec::new();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let Some(due) = sched.iter().map(Sched::next_due_ms).min() else {
            return;
        };
        let wake = tokio::time::Instant::from_std(clock.instant_of(due));
        link.idle_until(wake);
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            _ = shutdown.changed() => continue,
        }
        if !clock_watch.check() {
            // The system clock is not set: no readings until it is (the watch says so), then
            // the schedule starts afresh on the set clock.
            while !clock_watch.check() {
                tokio::select! {
                    _ = tokio::time::sleep(clock_watch::RECHECK_UNSET) => {}
                    _ = shutdown.changed() => {}
                }
                if *shutdown.borrow() {
                    return;
                }
            }
            if clock.is_wall() {
                clock = Clock::wall();
            }
            let now = clock.schedule_ms();
            for s in &mut sched {
                let first = grid_after(now, s.interval_ms);
                for g in &mut s.groups {
                    g.next_due_ms = first;
                }
            }
            continue;
        }
        let Some(s) = sched.iter_mut().find(|s| s.next_due_ms() == due) else {
            return;
        };
        let Some(meter) = bus.meters.get(s.local) else {
            return;
        };
        let ts = clock.now_ms();
        let started = tokio::time::Instant::now();
        let requests = s.split.as_deref().unwrap_or(&meter.requests);
        let mut poll = poll_meter(
            &mut link,
            bus,
            meter,
            requests,
            &mut s.groups,
            due,
            (&mut values, &mut s.named_invalid),
        )
        .instrument(s.span.clone())
        .await;
        if s.split.is_none() && refused_a_gap(meter, requests, &s.groups, due) {
            let split = split_requests(meter);
            let mut groups = vec![Group::due_at(due); split.len()];
            let mut split_values = Vec::new();
            let split_poll = poll_meter(
                &mut link,
                bus,
                meter,
                &split,
                &mut groups,
                due,
                (&mut split_values, &mut s.named_invalid),
            )
            .instrument(s.span.clone())
            .await;
            // Kept when more points read: a meter refusing them alone too is failing, not strict.
            if good_points(&split_values) > good_points(&values) {
                tracing::warn!(
                    meter = %meter.name,
                    requests = meter.requests.len(),
                    split = split.len(),
                    still_refused = groups.iter().filter(|g| g.error.is_some()).count(),
                    "the meter refuses reads over unmapped registers (exception 02): reading its points in contiguous groups from now on (max_gap = 0 for this meter says so in the config)"
                );
                s.split = Some(split);
                s.groups = groups;
                values = split_values;
                poll = split_poll;
            }
        }
        if let Some(m) = &meter.multiplier {
            apply_multiplier(meter, m, ts, &mut values);
        }
        let latency_s = started.elapsed().as_secs_f64();
        let msg = crate::store::Polled {
            plan: plan.clone(),
            bus: bus_idx,
            meter: s.local,
            ts,
            values: values.clone(),
        };
        if sink
            .data
            .send(crate::store::ToWriter::Poll(msg))
            .await
            .is_err()
        {
            return; // the store writer has stopped: shutting down
        }
        // The meter is failing while any of its groups is, read in this poll or backing off.
        let failing = poll
            .err()
            .or_else(|| s.groups.iter().find_map(|g| g.error.clone()));
        let invalid = values
            .iter()
            .filter(|(_, q)| *q == Quality::Invalid)
            .count() as u64;
        record(
            &sink,
            s.global,
            meter,
            ts,
            latency_s,
            failing.as_ref(),
            invalid,
        );
        let now = clock.schedule_ms();
        for g in &mut s.groups {
            if g.next_due_ms <= due {
                g.next_due_ms = next_due(due, now, s.interval_ms, g.fails);
            }
        }
    }
}

fn good_points(values: &[(Option<f64>, Quality)]) -> usize {
    values.iter().filter(|(_, q)| *q == Quality::Good).count()
}

/// Poll the requests of `meter` whose group is due at `due`, leaving one (value, quality) per
/// point in `values` (the points of a group backing off carry its last failure's quality) and
/// each group's outcome in `groups` (one per request); a point first judged `invalid` is named in the log and marked in `named_invalid`. Returns the first error of the requests
/// read. After a transport error the remaining requests are not tried (the meter or line does
/// not answer: don't pile up timeouts) and fail with it.
async fn poll_meter(
    link: &mut AnyLink,
    bus: &Bus,
    meter: &Meter,
    requests: &[ReadRequest],
    groups: &mut [Group],
    due: i64,
    (values, named_invalid): (&mut Vec<(Option<f64>, Quality)>, &mut [bool]),
) -> Result<(), ReadError> {
    values.clear();
    values.resize(meter.points.len(), (None, Quality::CommError));
    let mut first_err: Option<ReadError> = None;
    // The transport error that stopped this poll, if one did.
    let mut stopped: Option<ReadError> = None;
    for (req, group) in requests.iter().zip(groups.iter_mut()) {
        let mut set = |idx: usize, v: Option<f64>, q: Quality| {
            if let Some(slot) = values.get_mut(idx) {
                *slot = (v, q);
            }
        };
        if group.next_due_ms > due {
            let q = group.quality();
            for &idx in &req.points {
                set(idx, None, q);
            }
            continue;
        }
        if let Some(e) = &stopped {
            group.failed(e);
            for &idx in &req.points {
                set(idx, None, Quality::CommError);
            }
            continue;
        }
        let mut attempt = 0;
        let result = loop {
            match link.read(meter, req).await {
                Err(ReadError::Comm(e)) if attempt < bus.retries => {
                    tracing::debug!(error = %e, attempt, "retrying");
                    attempt += 1;
                }
                other => break other,
            }
        };
        match result {
            Ok(Got::Modbus(Reply::Words(w))) => {
                decode_registers(meter, req, &w, &mut set);
                group.answered();
                name_invalid(meter, req, &w, values, named_invalid);
            }
            Ok(Got::Modbus(Reply::Bits(b))) => {
                decode_bits(meter, req, &b, &mut set);
                group.answered();
            }
            Ok(Got::Points(out)) => {
                tracing::debug!(frames = ?out.frames, "frames");
                for p in &out.values {
                    if let Some(why) = &p.why {
                        tracing::warn!(point = %meter.points.get(p.point).map_or("?", |p| p.name.as_str()), %why, "reading not usable");
                    }
                    set(p.point, p.value, p.quality);
                }
                group.answered();
            }
            Err(e) => {
                let q = match e {
                    ReadError::Exception(..) => Quality::DeviceError,
                    ReadError::Comm(_) => Quality::CommError,
                };
                for &idx in &req.points {
                    set(idx, None, q);
                }
                group.failed(&e);
                if matches!(e, ReadError::Comm(_)) {
                    stopped = Some(e.clone());
                }
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Name in the log, once per point, a value refused as implausible (quality `invalid`) and why: a wrong
/// byte order or type in the config shows at once, without a line per poll.
fn name_invalid(
    meter: &Meter,
    req: &ReadRequest,
    words: &[u16],
    values: &[(Option<f64>, Quality)],
    named: &mut [bool],
) {
    for &idx in &req.points {
        let invalid = values.get(idx).is_some_and(|(_, q)| *q == Quality::Invalid);
        let Some(done) = named.get_mut(idx).filter(|d| invalid && !**d) else {
            continue;
        };
        *done = true;
        let point = meter.points.get(idx).map_or("?", |p| p.name.as_str());
        let why = plantmeter_common::codec::why_invalid(meter, req, words, idx)
            .map_or_else(|| "not a plausible reading".to_string(), |w| w.to_string());
        tracing::warn!(
            meter = %meter.name,
            point,
            "{}.{point}: value refused, published as invalid: {why} (counted in meter_invalid_values; \
             not named again)",
            meter.name
        );
    }
}

/// A bus's link: Modbus, or DL/T 645 / CJ/T 188 (the poller's and `plantmeter read`'s).
pub(crate) enum AnyLink {
    Modbus(Link),
    Meter(Box<MeterLink>),
}

/// What a read returned.
enum Got {
    Modbus(Reply),
    Points(meter_link::ReadOut),
}

impl AnyLink {
    /// The link `bus` is read through.
    pub(crate) fn of(bus: &Bus) -> AnyLink {
        match &bus.protocol {
            Protocol::Modbus => AnyLink::Modbus(Link::new(bus.transport.clone(), bus.timeout)),
            Protocol::Meter(m) => AnyLink::Meter(Box::new(MeterLink::new(
                bus.transport.clone(),
                bus.timeout,
                m.clone(),
            ))),
        }
    }

    fn idle_until(&mut self, at: tokio::time::Instant) {
        if let AnyLink::Modbus(l) = self {
            l.idle_until(at);
        }
    }

    async fn read(&mut self, meter: &Meter, req: &ReadRequest) -> Result<Got, ReadError> {
        match self {
            AnyLink::Modbus(l) => l.read(meter.unit_id, req).await.map(Got::Modbus),
            // `start` is the index of the read in the meter's plan (`link_requests`).
            AnyLink::Meter(l) => l.read(meter, usize::from(req.start)).await.map(Got::Points),
        }
    }
}

/// One request per read of a DL/T 645 / CJ/T 188 meter's plan (a point, or a block's points):
/// the scheduler's unit of back-off. `start` carries the read's index in the plan.
fn link_requests(link: &plantmeter_common::plan::MeterLink) -> Vec<ReadRequest> {
    link.reads
        .iter()
        .enumerate()
        .map(|(i, r)| ReadRequest {
            register: plantmeter_common::RegisterKind::Holding,
            start: u16::try_from(i).unwrap_or(u16::MAX),
            count: 1,
            points: r.items.iter().map(|&(p, _)| p).collect(),
        })
        .collect()
}

/// The multiplier (倍率): energy and power on the primary side, with the value in force at the
/// poll's instant; voltage by the PT ratio, current by the CT ratio (DOMAIN.md).
pub fn apply_multiplier(
    meter: &Meter,
    m: &plantmeter_common::plan::Multiplier,
    ts: i64,
    values: &mut [(Option<f64>, Quality)],
) {
    for (p, (v, _)) in meter.points.iter().zip(values.iter_mut()) {
        if let Some(x) = v.as_mut() {
            *x *= m.factor(&p.unit, ts);
        }
    }
}

/// Modbus exception 02, illegal data address.
const ILLEGAL_DATA_ADDRESS: u8 = 0x02;

/// True when a request read in this poll (its group was due at `due`) was refused with "illegal
/// data address" and reads over registers none of its points occupies: the meter may refuse
/// unmapped registers (many do), not the points themselves.
fn refused_a_gap(meter: &Meter, requests: &[ReadRequest], groups: &[Group], due: i64) -> bool {
    requests.iter().zip(groups).any(|(req, g)| {
        g.next_due_ms <= due
            && matches!(g.error, Some(ReadError::Exception(ILLEGAL_DATA_ADDRESS, _)))
            && bridges_a_gap(meter, req)
    })
}

/// True when `req` reads registers between its points.
fn bridges_a_gap(meter: &Meter, req: &ReadRequest) -> bool {
    split_request(meter, req).len() > 1
}

/// The meter's requests with no gap bridged: each request split into runs of adjacent points.
fn split_requests(meter: &Meter) -> Vec<ReadRequest> {
    meter
        .requests
        .iter()
        .flat_map(|req| split_request(meter, req))
        .collect()
}

/// One request split into runs of adjacent points.
fn split_request(meter: &Meter, req: &ReadRequest) -> Vec<ReadRequest> {
    let subset: Vec<_> = req
        .points
        .iter()
        .filter_map(|&i| meter.points.get(i).cloned())
        .collect();
    let mut out = Vec::new();
    for mut part in batch(&subset, 0) {
        part.points = part
            .points
            .iter()
            .filter_map(|&j| req.points.get(j).copied())
            .collect();
        out.push(part);
    }
    out
}

/// Update the shared state after a poll; log and announce health changes only.
fn record(
    sink: &Sink,
    global: usize,
    meter: &Meter,
    ts: i64,
    latency_s: f64,
    err: Option<&ReadError>,
    invalid: u64,
) {
    let changed = {
        let mut st = sink.shared.lock();
        let Some(m) = st.meters.get_mut(global) else {
            return;
        };
        let before = m.state;
        m.polls += 1;
        m.invalid_values += invalid;
        m.last_poll_ms = Some(ts);
        m.last_latency_s = Some(latency_s);
        match err {
            None => {
                m.state = Health::Ok;
                m.last_ok_ms = Some(ts);
                m.errors = 0;
            }
            Some(e) => {
                m.state = Health::Failing;
                m.errors += 1;
                m.total_errors += 1;
                m.last_error = Some(e.to_string());
            }
        }
        match (before, m.state, err) {
            (Health::Failing, Health::Ok, _) => {
                tracing::info!(meter = %meter.name, "meter answers again");
                true
            }
            (Health::Ok | Health::Unknown, Health::Failing, Some(e)) => {
                tracing::warn!(meter = %meter.name, error = %e, "meter failing");
                true
            }
            (Health::Unknown, Health::Ok, _) => true,
            _ => false,
        }
    };
    if changed {
        let _ = sink.health.send(global);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_stay_on_the_grid_without_drift() {
        // Due at 10 000, poll took 37 ms: next at 11 000, not 11 037.
        assert_eq!(next_due(10_000, 10_037, 1_000, 0), 11_000);
        // Late by more than an interval: skip to the next grid point, no burst of catch-up polls.
        assert_eq!(next_due(10_000, 12_500, 1_000, 0), 13_000);
        // Fractional intervals (0.2 s).
        assert_eq!(next_due(10_000, 10_010, 200, 0), 10_200);
    }

    #[test]
    fn requests_bridging_gaps_split_into_runs_of_adjacent_points() {
        let text = r#"
[gateway]
id = "gw"
site = "s"
data_dir = "/tmp/x"
[mqtt]
url = "mqtt://127.0.0.1:1883"
[[bus]]
name = "b"
transport = "tcp"
address = "127.0.0.1:502"
[[meter]]
name = "m"
bus = "b"
unit_id = 1
poll_interval_s = 1
  [[meter.point]]
  name = "a"
  register = "input"
  address = 0
  type = "f32"
  unit = "V"
  [[meter.point]]
  name = "b"
  register = "input"
  address = 2
  type = "f32"
  unit = "V"
  [[meter.point]]
  name = "c"
  register = "input"
  address = 52
  type = "f32"
  unit = "kW"
  [[meter.point]]
  name = "d"
  register = "holding"
  address = 10
  type = "u16"
  unit = "x"
"#;
        let plan = plantmeter_common::config::parse(text, std::path::Path::new("t.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
        let (_, m) = plan.meter("m").unwrap_or_else(|| panic!("no meter"));
        // Modbus TCP default max_gap (64): the three input points in one request.
        assert_eq!(m.requests.len(), 2);
        let split = split_requests(m);
        let got: Vec<(u16, u16, Vec<usize>)> = split
            .iter()
            .map(|r| (r.start, r.count, r.points.clone()))
            .collect();
        assert_eq!(
            got,
            vec![(10, 1, vec![3]), (0, 4, vec![0, 1]), (52, 2, vec![2])]
        );
        assert!(!bridges_a_gap(m, &m.requests[0]));
        assert!(bridges_a_gap(m, &m.requests[1]));
        let failed = |code| {
            let mut g = Group::due_at(1_000);
            g.failed(&ReadError::Exception(code, String::new()));
            g
        };
        let ok = Group::due_at(1_000);
        let refused = |groups: &[Group], due| refused_a_gap(m, &m.requests, groups, due);
        assert!(refused(&[ok.clone(), failed(2)], 1_000));
        assert!(
            !refused(&[failed(2), ok.clone()], 1_000),
            "the refused request bridges no gap: its point itself is unmapped"
        );
        assert!(
            !refused(&[ok.clone(), failed(4)], 1_000),
            "another exception is not about gaps"
        );
        assert!(
            !refused(&[ok.clone(), failed(2)], 500),
            "a group backing off was not read in this poll"
        );
        assert!(!refused(&[ok.clone(), ok], 1_000));
    }

    #[test]
    fn failing_meter_backs_off_exponentially_with_a_cap() {
        let iv = 1_000;
        assert_eq!(next_due(10_000, 10_000, iv, 1), 11_000);
        assert_eq!(next_due(10_000, 10_000, iv, 2), 12_000);
        assert_eq!(next_due(10_000, 10_000, iv, 3), 14_000);
        assert_eq!(next_due(10_000, 10_000, iv, 4), 18_000);
        assert_eq!(next_due(10_000, 10_000, iv, 30), 10_000 + 60_000);
        // A slow meter (interval above the cap) is never polled more often than its interval.
        assert_eq!(next_due(0, 0, 300_000, 5), 300_000);
    }
}
