//! Polling: one task per serial bus (one request in flight, inter-frame gap), one task per meter on
//! TCP buses (meters polled concurrently, each on its own connection). Each task owns a [`Link`]
//! and schedules its meters on absolute deadlines in the clock's time (no drift: the next poll is
//! the next multiple of the interval, never "now + interval"), backs off exponentially (capped) on a
//! failing meter, and turns every poll into one data message with per-point quality.

pub mod clock_watch;
pub mod link;

use std::sync::Arc;
use std::time::Duration;

use plantmeter_common::batching::batch;
use plantmeter_common::codec::{decode_bits, decode_registers};
use plantmeter_common::plan::{Bus, Meter, ReadRequest, Transport};
use plantmeter_common::{Clock, Plan, Quality};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use crate::state::{Health, Shared};
use clock_watch::ClockWatch;
use link::{Link, ReadError, Reply};

/// The longest pause between two polls of a failing meter, in the clock's time (or its interval, if longer).
pub const BACKOFF_CAP: Duration = Duration::from_secs(60);

/// Where polls go.
#[derive(Clone)]
pub struct Sink {
    /// To the store writer, in polling order.
    pub data: mpsc::Sender<crate::run::ToWriter>,
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
    next_due_ms: i64,
    fails: u32,
    /// The meter's requests split into contiguous groups, once it refused a read over unmapped
    /// registers (see [`split_requests`]).
    split: Option<Vec<ReadRequest>>,
    span: tracing::Span,
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
    let mut link = Link::new(bus.transport.clone(), bus.timeout);
    // Scheduling runs on the clock's monotonic time base; readings are stamped with `now_ms`.
    let now = clock.schedule_ms();
    let mut sched: Vec<Sched> = members
        .iter()
        .filter_map(|&(global, local)| {
            let m = bus.meters.get(local)?;
            let interval_ms = (m.poll_interval.as_millis() as i64).max(1);
            Some(Sched {
                global,
                local,
                interval_ms,
                next_due_ms: grid_after(now, interval_ms),
                fails: 0,
                split: None,
                span: tracing::info_span!("meter", meter = %m.name, unit = m.unit_id),
            })
        })
        .collect();
    let mut values: Vec<(Option<f64>, Quality)> = Vec::new();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let Some(due) = sched.iter().map(|s| s.next_due_ms).min() else {
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
                s.next_due_ms = grid_after(now, s.interval_ms);
            }
            continue;
        }
        let Some(s) = sched.iter_mut().find(|s| s.next_due_ms == due) else {
            return;
        };
        let Some(meter) = bus.meters.get(s.local) else {
            return;
        };
        let ts = clock.now_ms();
        let started = tokio::time::Instant::now();
        let requests = s.split.as_deref().unwrap_or(&meter.requests);
        let mut poll = poll_meter(&mut link, bus, meter, requests, &mut values)
            .instrument(s.span.clone())
            .await;
        if s.split.is_none() && refused_a_gap(meter, &poll) {
            let split = split_requests(meter);
            poll = poll_meter(&mut link, bus, meter, &split, &mut values)
                .instrument(s.span.clone())
                .await;
            // Kept only if the points read alone: a meter refusing them too is failing, not strict.
            if poll.is_ok() {
                tracing::warn!(
                    meter = %meter.name,
                    requests = meter.requests.len(),
                    split = split.len(),
                    "the meter refuses reads over unmapped registers (exception 02): reading its points in contiguous groups from now on (max_gap = 0 for this meter says so in the config)"
                );
                s.split = Some(split);
            }
        }
        let latency_s = started.elapsed().as_secs_f64();
        let msg = crate::run::Polled {
            plan: plan.clone(),
            bus: bus_idx,
            meter: s.local,
            ts,
            values: values.clone(),
        };
        if sink
            .data
            .send(crate::run::ToWriter::Poll(msg))
            .await
            .is_err()
        {
            return; // the store writer has stopped: shutting down
        }
        record(&sink, s.global, meter, ts, latency_s, poll.as_ref().err());
        s.fails = if poll.is_ok() {
            0
        } else {
            s.fails.saturating_add(1)
        };
        s.next_due_ms = next_due(due, clock.schedule_ms(), s.interval_ms, s.fails);
    }
}

/// Poll every request of `meter`, leaving one (value, quality) per point in `values`. Returns the
/// first error (the meter is then failing), after which requests are not tried further when the
/// error is a transport one (the meter or line does not answer: don't pile up timeouts).
async fn poll_meter(
    link: &mut Link,
    bus: &Bus,
    meter: &Meter,
    requests: &[ReadRequest],
    values: &mut Vec<(Option<f64>, Quality)>,
) -> Result<(), ReadError> {
    values.clear();
    values.resize(meter.points.len(), (None, Quality::CommError));
    let mut first_err: Option<ReadError> = None;
    for req in requests {
        let mut attempt = 0;
        let result = loop {
            match link.read(meter.unit_id, req).await {
                Err(ReadError::Comm(e)) if attempt < bus.retries => {
                    tracing::debug!(error = %e, attempt, "retrying");
                    attempt += 1;
                }
                other => break other,
            }
        };
        let mut set = |idx: usize, v: Option<f64>, q: Quality| {
            if let Some(slot) = values.get_mut(idx) {
                *slot = (v, q);
            }
        };
        match result {
            Ok(Reply::Words(w)) => decode_registers(meter, req, &w, &mut set),
            Ok(Reply::Bits(b)) => decode_bits(meter, req, &b, &mut set),
            Err(e) => {
                let q = match e {
                    ReadError::Exception(..) => Quality::DeviceError,
                    ReadError::Comm(_) => Quality::CommError,
                };
                for &idx in &req.points {
                    set(idx, None, q);
                }
                let stop = matches!(e, ReadError::Comm(_));
                first_err.get_or_insert(e);
                if stop {
                    break; // the rest stay comm_error
                }
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Modbus exception 02, illegal data address.
const ILLEGAL_DATA_ADDRESS: u8 = 0x02;

/// True when the poll failed with "illegal data address" and some request of the meter reads over
/// registers none of its points occupies: the meter may refuse unmapped registers (many do), not
/// the points themselves.
fn refused_a_gap(meter: &Meter, poll: &Result<(), ReadError>) -> bool {
    matches!(poll, Err(ReadError::Exception(ILLEGAL_DATA_ADDRESS, _)))
        && split_requests(meter).len() > meter.requests.len()
}

/// The meter's requests with no gap bridged: each request split into runs of adjacent points.
fn split_requests(meter: &Meter) -> Vec<ReadRequest> {
    let mut out = Vec::new();
    for req in &meter.requests {
        let subset: Vec<_> = req
            .points
            .iter()
            .filter_map(|&i| meter.points.get(i).cloned())
            .collect();
        for mut part in batch(&subset, 0) {
            part.points = part
                .points
                .iter()
                .filter_map(|&j| req.points.get(j).copied())
                .collect();
            out.push(part);
        }
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
) {
    let changed = {
        let mut st = sink.shared.lock();
        let Some(m) = st.meters.get_mut(global) else {
            return;
        };
        let before = m.state;
        m.polls += 1;
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
        let exc = |code| Err(ReadError::Exception(code, String::new()));
        assert!(refused_a_gap(m, &exc(2)));
        assert!(
            !refused_a_gap(m, &exc(4)),
            "another exception is not about gaps"
        );
        assert!(!refused_a_gap(m, &Ok(())));
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
