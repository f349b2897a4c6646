//! The interval engine: turns successive readings of one point into hourly contributions.
//!
//! Conventions (also stated in every report's method notes):
//! - Counters: consumption of an interval is the difference of two successive good readings. A drop is a
//!   **rollover** when the wrapped delta `modulus - previous + current` is at most 10 % of the modulus;
//!   otherwise it is a **meter replacement**: the new meter is taken to have started at zero, so the interval's
//!   consumption is the new reading itself (never negative, never lost). A drop of at most one millionth of the
//!   reading is float jitter: nothing is counted and the higher reading is kept.
//! - A drop is not decided at once: it is **held** until the next good reading. If that reading continues the
//!   old sequence (see [`is_glitch`]), the low reading was a **glitch** (a bad value the meter flagged good): it
//!   is discarded and counted as such, and the consumption runs from the reading before it. Otherwise the drop
//!   is the rollover or replacement it looked like. The held reading is part of the persisted state.
//! - A **recorded replacement** (`plantmeter replace`) at instant T is exact: the reading stamped at T is the
//!   old meter's, consumption = (final - previous) + (next - start). Recorded before the readings it is
//!   applied when they cross it; recorded after, it corrects the replacement inferred from the drop hour by
//!   hour ([`Tracker::record`]), so that either order gives the same figures; where the readings show no
//!   such drop it is refused ([`place`]).
//! - Every interval's consumption is spread linearly over its time into local hours. An interval longer than
//!   the gap threshold, or following a non-good reading, is a **gap**: its consumption is still counted
//!   (apportioned and flagged) but its time is not covered, so it lowers data completeness.
//! - Gauges: every good reading is a **sample** of the hour it was taken in; an hour's value is the mean of its
//!   samples (HJ 75). Between consecutive good readings that are not a gap the value is also interpolated
//!   linearly (trapezoid rule), which gives the covered time and the value of a covered hour without a sample.
//!   A gap contributes nothing: the report substitutes hours without data.
//! - Bounds: the audit accepts readings from 2000-01-01 to a day ahead of now ([`admit_ts`]) with values of
//!   at most [`MAX_ABS_VALUE`] ([`admit_value`]); an interval longer than [`MAX_SPREAD_MS`] is not spread
//!   hour by hour but put whole, flagged apportioned, in its last hour (an **unapportioned gap**), so memory
//!   and store stay bounded whatever the gap between two readings (a gateway that booted at 1970, a
//!   meter read once in years).

use crate::audit::hourly::{HourAgg, HourGrid, HOUR_MS};
use crate::types::PointKind;

/// A drop is a rollover when the wrapped delta is at most this fraction of the modulus.
pub const ROLLOVER_MAX_FRACTION: f64 = 0.1;
/// Relative drop of a counter treated as float jitter rather than a replacement.
pub const JITTER_FRACTION: f64 = 1e-6;
/// A drop to at least this fraction of the previous reading is a **step back** (DOMAIN.md "Counter drops"):
/// a correction, reverse flow or glitch; nothing is counted and the higher reading stays the reference.
pub const STEP_BACK_MIN_FRACTION: f64 = 0.5;

/// Earliest instant the audit accepts, 2000-01-01T00:00:00Z in UTC ms: anything before is a clock that
/// was never set (a gateway without a battery clock boots at 1970) or a mistyped date.
pub const MIN_TS_MS: i64 = 946_684_800_000;
/// How far ahead of now a reading may be (ms): one day, more than any timezone mix-up.
pub const MAX_AHEAD_MS: i64 = 86_400_000;
/// Largest magnitude of a value the audit accepts, in the point's unit. 1e12 kWh is 1 000 TWh, more than
/// any plant meters in its life (and 1e12 m3, t or mg/L is absurd too); it keeps every sum of a year of
/// hours far from overflow and exact to well under a unit at the magnitudes real meters show.
pub const MAX_ABS_VALUE: f64 = 1e12;
/// Longest interval spread hour by hour (ms): 92 days, so that a manual meter read monthly or quarterly is
/// still apportioned; a longer one is recorded whole in its last hour. One reading thus touches at most
/// 93 local days (12 stored chunks of one point).
pub const MAX_SPREAD_MS: i64 = 92 * 86_400_000;

/// Why the audit refuses a reading.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum Implausible {
    /// Before [`MIN_TS_MS`].
    #[error("is before 2000-01-01 (a clock that was not set?)")]
    TooEarly,
    /// More than [`MAX_AHEAD_MS`] after now.
    #[error("is more than a day ahead of now")]
    TooLate,
    /// Not finite, or beyond [`MAX_ABS_VALUE`].
    #[error("value {0:e} is not finite or beyond ±1e12")]
    Value(f64),
}

/// Check a reading's timestamp (UTC ms) against the plausible window as of `now_ms`.
pub fn admit_ts(ts_ms: i64, now_ms: i64) -> Result<(), Implausible> {
    if ts_ms < MIN_TS_MS {
        Err(Implausible::TooEarly)
    } else if ts_ms > now_ms.saturating_add(MAX_AHEAD_MS) {
        Err(Implausible::TooLate)
    } else {
        Ok(())
    }
}

/// Check a value: finite and of magnitude at most [`MAX_ABS_VALUE`].
pub fn admit_value(v: f64) -> Result<f64, Implausible> {
    if v.is_finite() && v.abs() <= MAX_ABS_VALUE {
        Ok(v)
    } else {
        Err(Implausible::Value(v))
    }
}

/// How an interval's counter delta came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterEvent {
    /// The counter rose (or did not move).
    Normal,
    /// The counter wrapped at its modulus.
    Rollover,
    /// The counter dropped and it is not a rollover: a new meter, taken to start at zero.
    Replacement,
    /// The counter dropped to at least half its previous reading: nothing counted, the higher reading kept.
    StepBack,
}

/// Consumption between two counter readings `prev` then `cur` (same unit), with the point's modulus.
/// Never negative.
pub fn counter_delta(prev: f64, cur: f64, modulus: Option<f64>) -> (f64, CounterEvent) {
    if cur >= prev {
        return (cur - prev, CounterEvent::Normal);
    }
    if prev - cur <= JITTER_FRACTION * prev.abs() {
        return (0.0, CounterEvent::Normal);
    }
    if prev > 0.0 && cur >= STEP_BACK_MIN_FRACTION * prev {
        return (0.0, CounterEvent::StepBack);
    }
    if let Some(m) = modulus.filter(|m| m.is_finite() && *m > 0.0) {
        let wrapped = m - prev + cur;
        if wrapped >= 0.0 && wrapped <= ROLLOVER_MAX_FRACTION * m {
            return (wrapped, CounterEvent::Rollover);
        }
    }
    (cur.max(0.0), CounterEvent::Replacement)
}

/// A counter drop held until the next good reading decides whether it was a glitch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Held {
    /// UTC milliseconds of the low reading.
    pub ts_ms: i64,
    /// The low reading.
    pub value: f64,
    /// The interval from the last reading to the low one was a gap.
    pub gap: bool,
}

/// The last good reading of a point, persisted so that intervals continue across restarts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LastReading {
    /// UTC milliseconds.
    pub ts_ms: i64,
    /// The value as read (counters: the totalizer).
    pub value: f64,
    /// A non-good reading came after the latest reading (`held` if any): the next interval is a gap.
    pub broken: bool,
    /// A counter drop after `value` waiting for the next reading (glitch or rollover/replacement).
    pub held: Option<Held>,
}

impl LastReading {
    /// A reading with nothing held.
    pub fn new(ts_ms: i64, value: f64) -> LastReading {
        LastReading {
            ts_ms,
            value,
            broken: false,
            held: None,
        }
    }

    /// UTC ms of the latest good reading seen (the held one if any).
    pub fn latest_ts(&self) -> i64 {
        self.held.map_or(self.ts_ms, |h| h.ts_ms)
    }
}

/// True when `next` shows that the low reading `low` after `prev` was a glitch: it continues the old sequence
/// (at least `prev`) and advanced less past `prev` than the drop was deep, where a new meter starting at
/// `low` would have had to count more than the whole drop in one interval.
pub fn is_glitch(prev: f64, low: f64, next: f64) -> bool {
    next >= prev && next - prev <= prev - low
}

/// What `Tracker::push` did with a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// The first good reading: nothing to count yet.
    First,
    /// An interval was counted.
    Interval { gap: bool, event: CounterEvent },
    /// A counter dropped: the decision (glitch, rollover, replacement) waits for the next good reading.
    Held,
    /// The held low reading was a glitch: discarded, and the interval from the reading before it counted.
    Glitch { gap: bool },
    /// A non-good reading: coverage breaks here.
    NotGood,
    /// Not after the last reading (duplicate or out of order): ignored.
    Stale,
}

/// A meter replacement recorded by hand (`plantmeter replace`): exact, unlike an inferred one.
///
/// It is a **discontinuity** of the counter at `at_ms` (DOMAIN.md "Counter drops"): a reading stamped exactly
/// at `at_ms` is still the old meter's (its final reading, or one before it), every reading after `at_ms` is
/// the new meter's. Its interval is therefore the one from the last reading at or before `at_ms` to the
/// first reading after it ([`RecordedReplacement::brackets`]). Anything that restarts a counter's sequence
/// at a known instant with a known offset (a multiplier change, a register reset by hand) can be expressed
/// as one: what the old sequence counted up to `at_ms`, and where the new one starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecordedReplacement {
    /// UTC ms of the replacement.
    pub at_ms: i64,
    /// The old meter's final reading and the new meter's start reading.
    pub old_final: f64,
    pub new_start: f64,
}

impl RecordedReplacement {
    /// The consumption from `prev` (old meter) to `cur` (new meter) across this replacement:
    /// (final - previous) + (current - start), never negative.
    pub fn consumption(&self, prev: f64, cur: f64) -> (f64, f64) {
        (
            (self.old_final - prev).max(0.0),
            (cur - self.new_start).max(0.0),
        )
    }

    /// True when this replacement lies in the interval from a reading at `prev_ts` to the next at `next_ts`:
    /// `prev_ts <= at < next_ts` (the reading at the instant itself is the old meter's).
    pub fn brackets(&self, prev_ts: i64, next_ts: i64) -> bool {
        prev_ts <= self.at_ms && self.at_ms < next_ts
    }

    /// The hourly contributions of the interval from `prev` at `prev_ts` (old meter) to `cur` at `next_ts`
    /// (new meter) across this replacement: (final - previous) spread over `[prev_ts, at)` (into the hour
    /// of `at` when the reading is at the instant itself), (current - start) over `[at, next_ts)`. Returns
    /// true when a piece was longer than [`MAX_SPREAD_MS`] (recorded whole in its last hour).
    pub fn spread_exact(
        &self,
        (prev_ts, prev): (i64, f64),
        (next_ts, cur): (i64, f64),
        gap: bool,
        grid: &HourGrid,
        out: &mut impl FnMut(i64, HourAgg),
    ) -> bool {
        let (before, after) = self.consumption(prev, cur);
        let at = self.at_ms.clamp(prev_ts, next_ts.saturating_sub(1));
        let mut long = false;
        if at > prev_ts {
            long |= spread(grid, prev_ts, at, before, gap, out);
        } else {
            out(grid.hour_index(at), piece(before, 0, gap));
        }
        long | spread(grid, at, next_ts, after, gap, out)
    }

    /// What the old meter's final reading and the new meter's start reading contradict: the old meter's
    /// reading `prev` at or before the instant above its final one, or the new meter's `cur` after it below
    /// its start (beyond float jitter). None when they agree.
    pub fn contradiction(&self, prev: Option<f64>, cur: Option<f64>) -> Option<Contradiction> {
        let tol = |v: f64| JITTER_FRACTION * v.abs();
        if let Some(p) = prev.filter(|p| self.old_final < p - tol(*p)) {
            return Some(Contradiction::OldFinalBelow(p));
        }
        cur.filter(|c| self.new_start > c + tol(*c))
            .map(Contradiction::NewStartAbove)
    }
}

/// A recorded replacement that disagrees with the readings around it.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum Contradiction {
    /// The old meter read more than its final reading.
    #[error("the old meter read {0} at or before that instant, more than the final reading given")]
    OldFinalBelow(f64),
    /// The new meter read less than its start reading.
    #[error("the new meter's first reading after that instant is {0}, less than the start reading given")]
    NewStartAbove(f64),
}

/// Where a recorded replacement falls among what a point's readings have counted so far
/// ([`place`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Placement {
    /// No counted reading after it yet (or none before it): applied when the readings cross it.
    Pending,
    /// Between the last counted reading and a held drop: applied now ([`Tracker::settle`]).
    Settles,
    /// Inside readings already counted, where this replacement was inferred from the drop: corrected by
    /// [`InferredReplacement::correction_hours`].
    Corrects(InferredReplacement),
}

/// Why a recorded replacement cannot be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Inapplicable {
    /// It falls among readings counted before, where the counter did not drop.
    #[error(
        "it falls among readings counted before ({first} to {last}) where the counter did not drop deep \
         enough to be taken as a replacement{near}; check --at, or record the replacement before importing \
         those readings"
    )]
    NoDrop {
        first: String,
        last: String,
        /// The inferred replacements of the point, as a hint (", it dropped between ... and ...").
        near: String,
    },
    /// The readings around it contradict it.
    #[error("{0}")]
    Contradicts(Contradiction),
    /// Another recorded replacement is counted between the same two readings.
    #[error("the replacement recorded at {0} is counted between the same two readings already")]
    Taken(String),
}

/// Where the replacement `r` falls for a point whose readings span `first_ts` to `last` (the last counted
/// reading and any held drop), with the replacements inferred from its drops and the recorded ones counted
/// (`taken`): pending, settling a held drop, correcting an inferred replacement, or inapplicable (counted
/// without a drop there, another replacement counted there, or contradicted by the readings around it).
pub fn place(
    r: &RecordedReplacement,
    first_ts: i64,
    last: &LastReading,
    inferred: &[InferredReplacement],
    taken: &[Applied],
) -> Result<Placement, Inapplicable> {
    let contradicted = |prev, cur| match r.contradiction(prev, cur) {
        Some(c) => Err(Inapplicable::Contradicts(c)),
        None => Ok(()),
    };
    if r.at_ms >= last.ts_ms {
        return match last.held {
            Some(h) if r.at_ms < h.ts_ms => {
                contradicted(Some(last.value), Some(h.value))?;
                Ok(Placement::Settles)
            }
            Some(_) => Ok(Placement::Pending),
            None => {
                contradicted(Some(last.value), None)?;
                Ok(Placement::Pending)
            }
        };
    }
    if r.at_ms < first_ts {
        // Before every reading: readings imported before it later will cross it.
        return Ok(Placement::Pending);
    }
    if let Some(a) = taken
        .iter()
        .find(|a| a.at_ms != r.at_ms && r.brackets(a.prev_ts, a.next_ts))
    {
        return Err(Inapplicable::Taken(crate::model::format_ts_ms(a.at_ms)));
    }
    if let Some(x) = inferred.iter().find(|x| r.brackets(x.prev_ts, x.ts)) {
        contradicted(Some(x.prev), Some(x.cur))?;
        return Ok(Placement::Corrects(*x));
    }
    let near: Vec<String> = inferred
        .iter()
        .take(5)
        .map(|x| {
            format!(
                "{} to {}",
                crate::model::format_ts_ms(x.prev_ts),
                crate::model::format_ts_ms(x.ts)
            )
        })
        .collect();
    Err(Inapplicable::NoDrop {
        first: crate::model::format_ts_ms(first_ts),
        last: crate::model::format_ts_ms(last.ts_ms),
        near: if near.is_empty() {
            String::new()
        } else {
            format!(
                " (it dropped like a replacement between {})",
                near.join(", ")
            )
        },
    })
}

/// A recorded replacement the readings crossed: its instant and the readings around it, so that the report
/// can tell which replacement event it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub at_ms: i64,
    /// The last reading at or before it and the first after it (UTC ms).
    pub prev_ts: i64,
    pub next_ts: i64,
}

impl Applied {
    /// The instant whose hour carries the replacement event: the first reading after it (as for an inferred
    /// replacement, where the drop is seen).
    pub fn event_ts(&self) -> i64 {
        self.next_ts - 1
    }
}

/// A replacement inferred from a deep drop: the readings around it, so that a replacement recorded later
/// can correct what was counted (the new reading itself) to the exact consumption.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InferredReplacement {
    pub prev_ts: i64,
    pub prev: f64,
    pub ts: i64,
    pub cur: f64,
}

impl InferredReplacement {
    /// What to add in total so that the interval counts exactly: the exact consumption minus what the
    /// inference counted (the new meter from zero).
    pub fn correction(&self, r: &RecordedReplacement) -> f64 {
        let (a, b) = r.consumption(self.prev, self.cur);
        a + b - self.cur.max(0.0)
    }

    /// The same per hour: what the inference spread is taken back and the exact pieces spread as the engine
    /// would have spread them had `r` been recorded first, so that hours and days come out the same in
    /// either order. Only sums: the interval's covered or apportioned time is the same either way.
    pub fn correction_hours(
        &self,
        r: &RecordedReplacement,
        grid: &HourGrid,
        out: &mut impl FnMut(i64, HourAgg),
    ) {
        let mut sum_only = |h: i64, a: HourAgg, sign: f64| {
            out(
                h,
                HourAgg {
                    sum: sign * a.sum,
                    ..HourAgg::default()
                },
            )
        };
        spread(
            grid,
            self.prev_ts,
            self.ts,
            self.cur.max(0.0),
            false,
            &mut |h, a| sum_only(h, a, -1.0),
        );
        r.spread_exact(
            (self.prev_ts, self.prev),
            (self.ts, self.cur),
            false,
            grid,
            &mut |h, a| sum_only(h, a, 1.0),
        );
    }
}

/// A polling gap the engine counted: the last good reading before it and the first good one after it.
/// Kept so that readings found later (a logbook kept while the meter was offline) can fill it: a counter's
/// apportioned `delta` is taken out of its hours ([`Gap::contribution`]) and the interval counted again
/// through the readings. Only gaps over which a counter simply rose (no rollover, replacement, step back or
/// glitch) are recorded, so that filling one leaves its total unchanged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gap {
    pub t_a: i64,
    pub v_a: f64,
    pub t_b: i64,
    pub v_b: f64,
    /// What was counted across the gap (counters; 0 for a gauge, whose gap contributes nothing).
    pub delta: f64,
}

impl Gap {
    /// The hourly pieces the engine added for this gap, exactly as it added them (a gauge's: none).
    pub fn contribution(
        &self,
        kind: PointKind,
        grid: &HourGrid,
        out: &mut impl FnMut(i64, HourAgg),
    ) {
        if kind == PointKind::Counter {
            spread(grid, self.t_a, self.t_b, self.delta, true, out);
        }
    }
}

/// Per-point interval state.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracker {
    pub kind: PointKind,
    /// Counter modulus in the point's unit.
    pub modulus: Option<f64>,
    /// Intervals longer than this (ms) are gaps.
    pub gap_ms: i64,
    pub last: Option<LastReading>,
    /// Intervals longer than [`MAX_SPREAD_MS`] recorded whole in their last hour since this tracker was
    /// created (not persisted: for warnings).
    pub unapportioned: u64,
    /// Replacements recorded by hand not yet reached by the readings, sorted by time.
    pub recorded: Vec<RecordedReplacement>,
    /// Recorded replacements the readings crossed, for the caller to persist and drain.
    pub applied: Vec<Applied>,
    /// Replacements inferred from a drop since the caller last drained this.
    pub inferred: Vec<InferredReplacement>,
    /// Gaps counted since the caller last drained this (see [`Gap`]).
    pub gaps: Vec<Gap>,
}

/// The gap threshold for a poll interval: more than twice the interval (and at least one second more).
pub fn gap_threshold_ms(poll_interval_ms: i64) -> i64 {
    (poll_interval_ms.max(1) * 2).max(poll_interval_ms + 1000)
}

impl Tracker {
    pub fn new(kind: PointKind, modulus: Option<f64>, gap_ms: i64) -> Tracker {
        Tracker {
            kind,
            modulus,
            gap_ms: gap_ms.max(1),
            last: None,
            unapportioned: 0,
            recorded: Vec::new(),
            applied: Vec::new(),
            inferred: Vec::new(),
            gaps: Vec::new(),
        }
    }

    /// Feed one reading (`value` None when its quality is not good). Hourly contributions go to `out`
    /// as (local hour index, contribution); several may go to the same hour.
    pub fn push(
        &mut self,
        ts_ms: i64,
        value: Option<f64>,
        grid: &HourGrid,
        out: &mut impl FnMut(i64, HourAgg),
    ) -> Pushed {
        // Out-of-bounds values never reach the sums, whichever caller forgot to check them.
        let value = value.filter(|v| admit_value(*v).is_ok());
        let Some(last) = self.last.as_mut() else {
            return match value {
                Some(v) => {
                    self.last = Some(LastReading::new(ts_ms, v));
                    if self.kind == PointKind::Gauge {
                        out(grid.hour_index(ts_ms), sample(v));
                    }
                    Pushed::First
                }
                None => Pushed::NotGood,
            };
        };
        if ts_ms <= last.latest_ts() {
            return Pushed::Stale;
        }
        let Some(v) = value else {
            last.broken = true;
            return Pushed::NotGood;
        };
        let gap = last.broken || ts_ms - last.latest_ts() > self.gap_ms;
        let (t0, prev) = (last.ts_ms, last.value);
        // A recorded replacement between the last counted reading and the next one decides exactly:
        // (final - previous) before it, (next - start) after it.
        if self.kind == PointKind::Counter {
            let (held, broken) = (last.held.is_some(), last.broken);
            // A held drop's own interval is a gap by its own flag (as [`Tracker::commit_held`] counts it).
            let (next_ts, next_v, next_gap) = match last.held {
                Some(h) => (h.ts_ms, h.value, h.gap),
                None => (ts_ms, v, gap),
            };
            if self.apply_recorded(next_ts, next_v, next_gap, grid, out) {
                if held {
                    if let Some(l) = self.last.as_mut() {
                        l.broken = broken;
                    }
                    return self.push(ts_ms, Some(v), grid, out);
                }
                return Pushed::Interval {
                    gap,
                    event: CounterEvent::Replacement,
                };
            }
        }
        // Borrowed again after `apply_recorded` (which did not apply): the reading is still there.
        let Some(last) = self.last.as_mut() else {
            return Pushed::Stale;
        };
        match self.kind {
            PointKind::Counter => match last.held {
                None => {
                    let (delta, ev) = counter_delta(prev, v, self.modulus);
                    if ev == CounterEvent::StepBack {
                        // Counted with the glitches (the stored hour's `glitches`): readings not counted.
                        out(
                            grid.hour_index(ts_ms),
                            HourAgg {
                                glitches: 1,
                                ..HourAgg::default()
                            },
                        );
                    } else if ev != CounterEvent::Normal {
                        last.held = Some(Held {
                            ts_ms,
                            value: v,
                            gap,
                        });
                        last.broken = false;
                        return Pushed::Held;
                    }
                    self.unapportioned += u64::from(spread(grid, t0, ts_ms, delta, gap, out));
                    if gap && ev == CounterEvent::Normal {
                        self.gaps.push(Gap {
                            t_a: t0,
                            v_a: prev,
                            t_b: ts_ms,
                            v_b: v,
                            delta,
                        });
                    }
                    // Jitter and a step back keep the higher reading so that it is not counted twice.
                    *last = LastReading::new(ts_ms, v.max(prev));
                    Pushed::Interval { gap, event: ev }
                }
                Some(h) if is_glitch(prev, h.value, v) => {
                    let gap = gap || h.gap;
                    self.unapportioned += u64::from(spread(grid, t0, ts_ms, v - prev, gap, out));
                    out(
                        grid.hour_index(h.ts_ms),
                        HourAgg {
                            glitches: 1,
                            ..HourAgg::default()
                        },
                    );
                    *last = LastReading::new(ts_ms, v);
                    Pushed::Glitch { gap }
                }
                Some(_) => {
                    // A real drop: count it, then this reading from the low one.
                    let broken = last.broken;
                    self.commit_held(grid, out);
                    if let Some(l) = self.last.as_mut() {
                        l.broken = broken;
                    }
                    self.push(ts_ms, Some(v), grid, out)
                }
            },
            PointKind::Gauge => {
                if gap {
                    self.gaps.push(Gap {
                        t_a: t0,
                        v_a: prev,
                        t_b: ts_ms,
                        v_b: v,
                        delta: 0.0,
                    });
                } else {
                    trapezoid(grid, t0, ts_ms, prev, v, out);
                }
                out(grid.hour_index(ts_ms), sample(v));
                *last = LastReading::new(ts_ms, v);
                Pushed::Interval {
                    gap,
                    event: CounterEvent::Normal,
                }
            }
        }
    }

    /// Take in a replacement recorded by hand, whenever it is recorded: one the readings have not crossed
    /// yet waits for them (or settles a held drop now); one among readings counted before corrects the
    /// replacement inferred there, hour by hour, so that the figures are those of recording it first.
    /// `first_ts` is the point's first counted reading, `inferred` the replacements inferred from its drops
    /// (the caller keeps them). Applied replacements go to `applied` for the caller to persist.
    pub fn record(
        &mut self,
        r: RecordedReplacement,
        first_ts: i64,
        (inferred, taken): (&[InferredReplacement], &[Applied]),
        grid: &HourGrid,
        out: &mut impl FnMut(i64, HourAgg),
    ) -> Result<Placement, Inapplicable> {
        let placement = match (self.kind, self.last) {
            (PointKind::Counter, Some(last)) => place(&r, first_ts, &last, inferred, taken)?,
            _ => Placement::Pending,
        };
        match placement {
            Placement::Pending | Placement::Settles => {
                if !self.recorded.contains(&r) {
                    self.recorded.push(r);
                    self.recorded.sort_by_key(|x| x.at_ms);
                }
                if placement == Placement::Settles {
                    self.settle(grid, out);
                }
            }
            Placement::Corrects(x) => {
                x.correction_hours(&r, grid, out);
                self.applied.push(Applied {
                    at_ms: r.at_ms,
                    prev_ts: x.prev_ts,
                    next_ts: x.ts,
                });
            }
        }
        Ok(placement)
    }

    /// Count the interval from the last reading to the reading `next_v` at `next_ts` exactly across the
    /// recorded replacement it brackets, if any; the reading becomes the last one. True when one was applied.
    fn apply_recorded(
        &mut self,
        next_ts: i64,
        next_v: f64,
        gap: bool,
        grid: &HourGrid,
        out: &mut impl FnMut(i64, HourAgg),
    ) -> bool {
        let Some(last) = self.last.as_mut() else {
            return false;
        };
        let (t0, prev) = (last.ts_ms, last.value);
        let Some(i) = self.recorded.iter().position(|r| r.brackets(t0, next_ts)) else {
            return false;
        };
        let r = self.recorded.remove(i);
        let long = r.spread_exact((t0, prev), (next_ts, next_v), gap, grid, out);
        self.unapportioned += u64::from(long);
        out(
            grid.hour_index(next_ts - 1),
            HourAgg {
                replacements: 1,
                ..HourAgg::default()
            },
        );
        self.applied.push(Applied {
            at_ms: r.at_ms,
            prev_ts: t0,
            next_ts,
        });
        *last = LastReading::new(next_ts, next_v);
        true
    }

    /// Apply now a recorded replacement that lies between the last counted reading and a held drop (a
    /// replacement recorded after the readings up to the drop were counted): the drop is the replacement,
    /// and needs no further reading to be decided. True when one was applied.
    pub fn settle(&mut self, grid: &HourGrid, out: &mut impl FnMut(i64, HourAgg)) -> bool {
        let Some(l) = self.last else {
            return false;
        };
        let Some(h) = l.held else {
            return false;
        };
        if self.kind != PointKind::Counter {
            return false;
        }
        let applied = self.apply_recorded(h.ts_ms, h.value, h.gap, grid, out);
        if applied {
            if let Some(last) = self.last.as_mut() {
                // A bad reading after the held one still breaks the next interval.
                last.broken = l.broken;
            }
        }
        applied
    }

    /// Decide a held counter drop now, as the rollover or replacement it looks like (used where no further
    /// reading will come to decide it, e.g. bridging an import to the store's first reading). Returns the
    /// event, or None when nothing was held.
    pub fn commit_held(
        &mut self,
        grid: &HourGrid,
        out: &mut impl FnMut(i64, HourAgg),
    ) -> Option<CounterEvent> {
        let last = self.last.as_mut()?;
        let h = last.held?;
        let (delta, ev) = counter_delta(last.value, h.value, self.modulus);
        self.unapportioned += u64::from(spread(grid, last.ts_ms, h.ts_ms, delta, h.gap, out));
        if ev == CounterEvent::Replacement {
            self.inferred.push(InferredReplacement {
                prev_ts: last.ts_ms,
                prev: last.value,
                ts: h.ts_ms,
                cur: h.value,
            });
        }
        let mut e = HourAgg::default();
        match ev {
            CounterEvent::Rollover => e.rollovers = 1,
            CounterEvent::Replacement => e.replacements = 1,
            CounterEvent::Normal | CounterEvent::StepBack => {}
        }
        if !e.is_empty() {
            out(grid.hour_index(h.ts_ms - 1), e);
        }
        *last = LastReading::new(h.ts_ms, h.value);
        Some(ev)
    }
}

fn sample(v: f64) -> HourAgg {
    HourAgg {
        sum: v,
        samples: 1,
        ..HourAgg::default()
    }
}

/// Spread a counter delta linearly over [t0, t1) into local hours. Covered time is credited unless `gap`,
/// in which case the time is flagged as apportioned. An interval longer than [`MAX_SPREAD_MS`] is not
/// spread: its whole delta goes to its last hour, flagged apportioned (returns true then).
fn spread(
    grid: &HourGrid,
    t0: i64,
    t1: i64,
    delta: f64,
    gap: bool,
    out: &mut impl FnMut(i64, HourAgg),
) -> bool {
    apportion(
        t0,
        t1,
        delta,
        HOUR_MS,
        grid.offset_ms(),
        &mut |start, share, len_ms, long| {
            out(
                grid.hour_index(start),
                piece(
                    share,
                    u32::try_from(len_ms).unwrap_or(u32::MAX),
                    gap || long,
                ),
            )
        },
    )
}

/// The one apportioning rule of the audit and of the HJ 212 uplink: `amount` accrued over [t0, t1) (UTC ms,
/// t1 > t0) is shared linearly by time among the intervals of `len_ms` (aligned at local midnight: local =
/// UTC + `offset_ms`) it touches; the last piece takes the remainder, so the pieces add up to `amount`
/// exactly. `out` gets (interval start in UTC ms, share, ms of [t0, t1) in that interval, unapportioned).
/// Longer than [`MAX_SPREAD_MS`], the whole amount goes to the interval holding t1 - 1, with the time from
/// that interval's start, marked unapportioned (returns true then).
pub fn apportion(
    t0: i64,
    t1: i64,
    amount: f64,
    len_ms: i64,
    offset_ms: i64,
    out: &mut impl FnMut(i64, f64, i64, bool),
) -> bool {
    let len_ms = len_ms.max(1);
    let t1 = t1.max(t0.saturating_add(1));
    let start_of = |ts: i64| (ts + offset_ms).div_euclid(len_ms) * len_ms - offset_ms;
    let last = start_of(t1 - 1);
    if t1 - t0 > MAX_SPREAD_MS {
        out(last, amount, t1 - last, true);
        return true;
    }
    let dt = (t1 - t0) as f64;
    let mut given = 0.0;
    let mut a = t0;
    let mut start = start_of(t0);
    loop {
        let end = start + len_ms;
        if start >= last {
            out(start, amount - given, t1 - a, false);
            return false;
        }
        let share = amount * ((end - a) as f64 / dt);
        given += share;
        out(start, share, end - a, false);
        a = end;
        start = end;
    }
}

fn piece(amount: f64, len_ms: u32, gap: bool) -> HourAgg {
    HourAgg {
        sum: amount,
        covered_ms: if gap { 0 } else { len_ms },
        apportioned_ms: if gap { len_ms } else { 0 },
        ..HourAgg::default()
    }
}

/// Trapezoid integral of a gauge going linearly from `v0` at `t0` to `v1` at `t1`, per hour (value x hours).
fn trapezoid(
    grid: &HourGrid,
    t0: i64,
    t1: i64,
    v0: f64,
    v1: f64,
    out: &mut impl FnMut(i64, HourAgg),
) {
    // Interpolating a gauge over months says nothing; the samples at both ends still count.
    if t1 - t0 > MAX_SPREAD_MS {
        return;
    }
    let dt = (t1 - t0) as f64;
    let h0 = grid.hour_index(t0);
    let h1 = grid.hour_index(t1 - 1);
    let mut a = t0;
    let mut va = v0;
    for h in h0..=h1 {
        let b = if h == h1 { t1 } else { grid.hour_start(h + 1) };
        let vb = if h == h1 {
            v1
        } else {
            v0 + (v1 - v0) * ((b - t0) as f64 / dt)
        };
        let len = b - a;
        out(
            h,
            HourAgg {
                sum: (va + vb) * 0.5 * (len as f64 / HOUR_MS as f64),
                covered_ms: len as u32,
                ..HourAgg::default()
            },
        );
        a = b;
        va = vb;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn run(t: &mut Tracker, readings: &[(i64, Option<f64>)]) -> BTreeMap<i64, HourAgg> {
        let g = HourGrid::utc();
        let mut m: BTreeMap<i64, HourAgg> = BTreeMap::new();
        for &(ts, v) in readings {
            t.push(ts, v, &g, &mut |h, a| m.entry(h).or_default().merge(&a));
        }
        m
    }

    #[test]
    fn apportion_shares_by_time_and_adds_up_exactly() {
        let ten = 600_000;
        let mut got = Vec::new();
        // 07:24 to 07:55 (UTC grid) of 31 m3 over 10-minute intervals: 6, 10, 10, 5.
        let t0 = 7 * HOUR_MS + 24 * 60_000;
        let t1 = 7 * HOUR_MS + 55 * 60_000;
        let long = apportion(t0, t1, 31.0, ten, 0, &mut |s, a, l, _| got.push((s, a, l)));
        assert!(!long);
        let starts: Vec<i64> = got.iter().map(|g| (g.0 - 7 * HOUR_MS) / 60_000).collect();
        assert_eq!(starts, [20, 30, 40, 50]);
        let shares: Vec<f64> = got.iter().map(|g| g.1).collect();
        for (s, w) in shares.iter().zip([6.0, 10.0, 10.0, 5.0]) {
            assert!((s - w).abs() < 1e-9, "{shares:?}");
        }
        assert_eq!(shares.iter().sum::<f64>(), 31.0);
        assert_eq!(got.iter().map(|g| g.2).sum::<i64>(), t1 - t0);
        // Past 92 days: whole, in the last interval.
        let mut got = Vec::new();
        assert!(apportion(
            0,
            MAX_SPREAD_MS + ten + 1,
            5.0,
            ten,
            0,
            &mut |s, a, l, u| got.push((s, a, l, u))
        ));
        assert_eq!(got, [(MAX_SPREAD_MS + ten, 5.0, 1, true)]);
    }

    #[test]
    fn domain_example_8_rollover() {
        let (d, ev) = counter_delta(999_990.00, 15.50, Some(1_000_000.00));
        assert!((d - 25.50).abs() < 1e-9);
        assert_eq!(ev, CounterEvent::Rollover);
        let mut t = Tracker::new(PointKind::Counter, Some(1_000_000.0), 20_000);
        // The drop is decided by the next reading, which continues from 15.50.
        let m = run(
            &mut t,
            &[
                (0, Some(999_990.0)),
                (5_000, Some(15.5)),
                (10_000, Some(15.5)),
            ],
        );
        assert!((m[&0].sum - 25.5).abs() < 1e-9);
        assert_eq!(m[&0].rollovers, 1);
    }

    #[test]
    fn replacement_counts_the_new_reading_never_negative() {
        // No modulus (float counter): a drop is a replacement.
        assert_eq!(
            counter_delta(50_000.0, 12.0, None),
            (12.0, CounterEvent::Replacement)
        );
        // Far from the modulus: a replacement too.
        assert_eq!(
            counter_delta(100_000.0, 3.0, Some(42_949_672.96)),
            (3.0, CounterEvent::Replacement)
        );
        // Jitter of a float totalizer is not a replacement.
        assert_eq!(
            counter_delta(123_456.78, 123_456.75, None),
            (0.0, CounterEvent::Normal)
        );
    }

    #[test]
    fn jitter_keeps_the_higher_reading() {
        let mut t = Tracker::new(PointKind::Counter, None, 20_000);
        let m = run(
            &mut t,
            &[
                (0, Some(1_000_000.0)),
                (5_000, Some(999_999.5)),
                (10_000, Some(1_000_001.0)),
            ],
        );
        assert!((m[&0].sum - 1.0).abs() < 1e-9);
    }

    #[test]
    fn gap_is_apportioned_over_hours_and_not_covered() {
        let mut t = Tracker::new(PointKind::Counter, None, 20_000);
        // 10:30 -> 13:30 with 300 consumed: 50 / 100 / 100 / 50.
        let h = HOUR_MS;
        let m = run(
            &mut t,
            &[(10 * h + h / 2, Some(0.0)), (13 * h + h / 2, Some(300.0))],
        );
        assert!((m[&10].sum - 50.0).abs() < 1e-9);
        assert!((m[&11].sum - 100.0).abs() < 1e-9);
        assert!((m[&12].sum - 100.0).abs() < 1e-9);
        assert!((m[&13].sum - 50.0).abs() < 1e-9);
        assert_eq!(m[&11].covered_ms, 0);
        assert_eq!(m[&11].apportioned_ms, HOUR_MS as u32);
    }

    /// A gap is recorded with what was counted across it, and its contribution is exactly what was added.
    #[test]
    fn a_gap_is_recorded_and_its_contribution_is_what_was_added() {
        let mut t = Tracker::new(PointKind::Counter, None, 20_000);
        let h = HOUR_MS;
        let m = run(&mut t, &[(0, Some(100.0)), (6 * h, Some(160.0))]);
        assert_eq!(
            t.gaps,
            [Gap {
                t_a: 0,
                v_a: 100.0,
                t_b: 6 * h,
                v_b: 160.0,
                delta: 60.0
            }]
        );
        let mut back: BTreeMap<i64, HourAgg> = BTreeMap::new();
        t.gaps[0].contribution(PointKind::Counter, &HourGrid::utc(), &mut |i, a| {
            back.entry(i).or_default().merge(&a)
        });
        assert_eq!(back, m);
        // A rollover across a gap is not recorded (filling it could not keep its total).
        let mut t = Tracker::new(PointKind::Counter, Some(1000.0), 20_000);
        run(
            &mut t,
            &[(0, Some(990.0)), (h, Some(5.0)), (h + 1000, Some(6.0))],
        );
        assert!(t.gaps.is_empty(), "{:?}", t.gaps);
        // A gauge's gap is recorded too.
        let mut t = Tracker::new(PointKind::Gauge, None, 20_000);
        run(&mut t, &[(0, Some(1.0)), (h, Some(2.0))]);
        assert_eq!(t.gaps.len(), 1);
    }

    #[test]
    fn bad_quality_breaks_coverage_but_keeps_consumption() {
        let mut t = Tracker::new(PointKind::Counter, None, 20_000);
        let m = run(
            &mut t,
            &[
                (0, Some(10.0)),
                (5_000, None),
                (10_000, Some(12.0)),
                (15_000, Some(13.0)),
            ],
        );
        assert!((m[&0].sum - 3.0).abs() < 1e-9);
        assert_eq!(m[&0].covered_ms, 5_000);
        assert_eq!(m[&0].apportioned_ms, 10_000);
    }

    #[test]
    fn gauge_hours_are_sample_means_and_interpolated_without_a_sample() {
        let mut t = Tracker::new(PointKind::Gauge, None, 2 * HOUR_MS);
        // 100 kW at 00:00 rising to 200 kW at 02:00: hour 0 has its sample (100), hour 1 none, so its
        // value is interpolated (trapezoid: 175 kWh over the full hour).
        let m = run(&mut t, &[(0, Some(100.0)), (2 * HOUR_MS, Some(200.0))]);
        assert_eq!(m[&0].gauge_mean(), Some(100.0));
        assert_eq!(m[&0].covered_ms, HOUR_MS as u32);
        assert_eq!(m[&1].samples, 0);
        assert!((m[&1].gauge_mean().unwrap() - 175.0).abs() < 1e-9);
        assert_eq!(m[&2].gauge_mean(), Some(200.0));
    }

    /// The simulator's (and many real) signals step at the hour: hourly polls a few minutes late must give
    /// each hour its own level, not a mix of two hours' levels as the trapezoid rule would.
    #[test]
    fn hourly_samples_give_each_hour_its_own_level() {
        let mut t = Tracker::new(PointKind::Gauge, None, 2 * HOUR_MS + 1000);
        let levels = [50.0, 50.0, 120.0, 120.0, 50.0];
        let r: Vec<(i64, Option<f64>)> = levels
            .iter()
            .enumerate()
            .map(|(h, &c)| (h as i64 * HOUR_MS + 7 * 60_000, Some(c)))
            .collect();
        let m = run(&mut t, &r);
        for (h, &c) in levels.iter().enumerate() {
            assert_eq!(m[&(h as i64)].gauge_mean(), Some(c), "hour {h}");
        }
    }

    #[test]
    fn a_gauge_gap_covers_nothing_but_keeps_its_samples() {
        let mut t = Tracker::new(PointKind::Gauge, None, 2 * HOUR_MS);
        let m = run(
            &mut t,
            &[(0, Some(10.0)), (5 * HOUR_MS + 60_000, Some(30.0))],
        );
        assert_eq!(m.len(), 2);
        assert_eq!(m[&5].gauge_mean(), Some(30.0));
        assert_eq!(m[&5].covered_ms, 0);
    }

    /// DOMAIN.md example 10 (the parts without a recorded replacement).
    #[test]
    fn domain_example_10_step_back_and_inferred_replacement() {
        let total = |m: &BTreeMap<i64, HourAgg>| m.values().map(|a| a.sum).sum::<f64>();
        let ts = |i: i64| i * 600_000;
        // 500, 506, 505, 601.5: 505 is at least half of 506, a step back; 506 stays the reference.
        let mut t = Tracker::new(PointKind::Counter, None, 3_600_000);
        let m = run(
            &mut t,
            &[
                (ts(0), Some(500.0)),
                (ts(1), Some(506.0)),
                (ts(2), Some(505.0)),
                (ts(3), Some(601.5)),
            ],
        );
        assert!((total(&m) - 101.5).abs() < 1e-9, "{}", total(&m));
        assert_eq!(
            m.values().map(|a| a.glitches).sum::<u16>(),
            1,
            "one step back counted"
        );
        assert_eq!(m.values().map(|a| a.replacements).sum::<u16>(), 0);
        // 9 800, 9 950, 40, 130 without a modulus: a deep drop, an inferred replacement from 0.
        let mut t = Tracker::new(PointKind::Counter, None, 3_600_000);
        let m = run(
            &mut t,
            &[
                (ts(0), Some(9800.0)),
                (ts(1), Some(9950.0)),
                (ts(2), Some(40.0)),
                (ts(3), Some(130.0)),
            ],
        );
        assert!((total(&m) - 280.0).abs() < 1e-9, "{}", total(&m));
        assert_eq!(m.values().map(|a| a.replacements).sum::<u16>(), 1);
    }

    /// DOMAIN.md example 10 with a recorded replacement: 150 + (9 990 - 9 950) + (40 - 0) + 90 = 320; the same
    /// readings counted first with an inferred replacement (280) are corrected to it.
    #[test]
    fn domain_example_10_recorded_replacement() {
        let total = |m: &BTreeMap<i64, HourAgg>| m.values().map(|a| a.sum).sum::<f64>();
        let ts = |i: i64| i * 600_000;
        let readings = [
            (ts(0), Some(9800.0)),
            (ts(1), Some(9950.0)),
            (ts(2), Some(40.0)),
            (ts(3), Some(130.0)),
        ];
        let r = RecordedReplacement {
            at_ms: ts(1) + 300_000,
            old_final: 9990.0,
            new_start: 0.0,
        };
        let mut t = Tracker::new(PointKind::Counter, None, 3_600_000);
        t.recorded.push(r);
        let m = run(&mut t, &readings);
        assert!((total(&m) - 320.0).abs() < 1e-9, "{}", total(&m));
        assert_eq!(m.values().map(|a| a.replacements).sum::<u16>(), 1);
        assert_eq!(
            t.applied,
            [Applied {
                at_ms: r.at_ms,
                prev_ts: ts(1),
                next_ts: ts(2)
            }]
        );
        assert!(t.inferred.is_empty());
        // Recorded after the fact: the inferred replacement's correction makes up the difference.
        let mut t = Tracker::new(PointKind::Counter, None, 3_600_000);
        let m = run(&mut t, &readings);
        assert!((total(&m) - 280.0).abs() < 1e-9);
        let inferred = t.inferred[0];
        assert_eq!((inferred.prev, inferred.cur), (9950.0, 40.0));
        assert!((total(&m) + inferred.correction(&r) - 320.0).abs() < 1e-9);
    }

    /// Readings counted with `r` recorded first, and recorded after them (through [`Tracker::record`]).
    fn both_orders(
        readings: &[(i64, Option<f64>)],
        r: RecordedReplacement,
    ) -> (BTreeMap<i64, HourAgg>, BTreeMap<i64, HourAgg>) {
        let g = HourGrid::new(chrono::FixedOffset::east_opt(8 * 3600).unwrap());
        let mut first = Tracker::new(PointKind::Counter, None, 2 * 86_400_000);
        first
            .record(r, i64::MIN, (&[], &[]), &g, &mut |_, _| {})
            .unwrap();
        let mut a: BTreeMap<i64, HourAgg> = BTreeMap::new();
        for &(ts, v) in readings {
            first.push(ts, v, &g, &mut |h, x| a.entry(h).or_default().merge(&x));
        }
        let mut after = Tracker::new(PointKind::Counter, None, 2 * 86_400_000);
        let mut b: BTreeMap<i64, HourAgg> = BTreeMap::new();
        for &(ts, v) in readings {
            after.push(ts, v, &g, &mut |h, x| b.entry(h).or_default().merge(&x));
        }
        let inferred = after.inferred.clone();
        after
            .record(r, readings[0].0, (&inferred, &[]), &g, &mut |h, x| {
                b.entry(h).or_default().merge(&x)
            })
            .unwrap();
        (a, b)
    }

    fn total(m: &BTreeMap<i64, HourAgg>) -> f64 {
        m.values().map(|a| a.sum).sum()
    }

    /// DOMAIN.md example 15: daily readings at 08:00, 1 000, 1 100, 1 200, then 90 and 200 on a new meter
    /// recorded as replaced at the third reading's instant (old final 1 200, new start 0): 400 in either
    /// order, and the same hours; at 09:00 the same.
    #[test]
    fn domain_example_15_replacement_at_a_reading() {
        let day = 86_400_000;
        let t0 = crate::model::parse_ts_ms("2026-03-13T08:00:00+08:00").unwrap();
        let readings: Vec<(i64, Option<f64>)> = [1000.0, 1100.0, 1200.0, 90.0, 200.0]
            .iter()
            .enumerate()
            .map(|(i, &v)| (t0 + i as i64 * day, Some(v)))
            .collect();
        for at in [t0 + 2 * day, t0 + 2 * day + 3_600_000] {
            let r = RecordedReplacement {
                at_ms: at,
                old_final: 1200.0,
                new_start: 0.0,
            };
            let (first, after) = both_orders(&readings, r);
            assert!((total(&first) - 400.0).abs() < 1e-9, "{}", total(&first));
            assert!((total(&after) - 400.0).abs() < 1e-9, "{}", total(&after));
            for (h, a) in &first {
                let b = after.get(h).copied().unwrap_or_default();
                assert!((a.sum - b.sum).abs() < 1e-9, "hour {h}: {a:?} {b:?}");
                assert_eq!(
                    (a.covered_ms, a.replacements),
                    (b.covered_ms, b.replacements)
                );
            }
            assert_eq!(first.values().map(|a| a.replacements).sum::<u16>(), 1);
        }
    }

    /// A replacement recorded after the readings up to a held drop were counted settles the drop at once;
    /// one among counted readings without a drop, or contradicted by them, is refused with the reason.
    #[test]
    fn a_late_record_settles_a_held_drop_or_is_refused() {
        let g = HourGrid::utc();
        let h = HOUR_MS;
        let mut t = Tracker::new(PointKind::Counter, None, 2 * h);
        let mut m: BTreeMap<i64, HourAgg> = BTreeMap::new();
        for (ts, v) in [(0, 100.0), (h, 110.0), (2 * h, 3.0)] {
            t.push(ts, Some(v), &g, &mut |i, a| {
                m.entry(i).or_default().merge(&a)
            });
        }
        assert!(t.last.unwrap().held.is_some());
        let r = |at_ms, old_final, new_start| RecordedReplacement {
            at_ms,
            old_final,
            new_start,
        };
        // Contradicted: the old meter read 110 at 01:00, the new one 3 at 02:00.
        for (bad, why) in [
            (r(h, 105.0, 0.0), Contradiction::OldFinalBelow(110.0)),
            (r(h, 112.0, 4.0), Contradiction::NewStartAbove(3.0)),
        ] {
            assert_eq!(
                t.record(bad, 0, (&[], &[]), &g, &mut |_, _| {}),
                Err(Inapplicable::Contradicts(why))
            );
        }
        // Between 00:00 and 01:00 the counter rose: no replacement can be placed there any more.
        let e = t
            .record(r(h / 2, 105.0, 0.0), 0, (&[], &[]), &g, &mut |_, _| {})
            .unwrap_err();
        assert!(matches!(e, Inapplicable::NoDrop { .. }), "{e}");
        let ok = r(h, 112.0, 1.0);
        assert_eq!(
            t.record(ok, 0, (&[], &[]), &g, &mut |i, a| m
                .entry(i)
                .or_default()
                .merge(&a)),
            Ok(Placement::Settles)
        );
        // 10 + (112 - 110) + (3 - 1).
        assert!((total(&m) - 14.0).abs() < 1e-9, "{}", total(&m));
        assert_eq!(t.last, Some(LastReading::new(2 * h, 3.0)));
    }

    #[test]
    fn a_single_low_reading_is_a_glitch_not_a_replacement() {
        let mut t = Tracker::new(PointKind::Counter, None, 20_000);
        let g = HourGrid::utc();
        let mut m: BTreeMap<i64, HourAgg> = BTreeMap::new();
        let mut push = |t: &mut Tracker, ts: i64, v: f64| {
            t.push(ts, Some(v), &g, &mut |h, a| {
                m.entry(h).or_default().merge(&a)
            })
        };
        assert_eq!(push(&mut t, 0, 1_000.0), Pushed::First);
        assert_eq!(push(&mut t, 5_000, 0.0), Pushed::Held);
        // The held state is what a restart persists.
        assert_eq!(t.last.unwrap().held.unwrap().value, 0.0);
        assert_eq!(t.last.unwrap().latest_ts(), 5_000);
        assert_eq!(push(&mut t, 10_000, 1_002.0), Pushed::Glitch { gap: false });
        assert_eq!(
            push(&mut t, 15_000, 1_003.0),
            Pushed::Interval {
                gap: false,
                event: CounterEvent::Normal
            }
        );
        assert!((m[&0].sum - 3.0).abs() < 1e-9);
        assert_eq!((m[&0].glitches, m[&0].replacements), (1, 0));
        assert_eq!(m[&0].covered_ms, 15_000);
    }

    #[test]
    fn a_drop_confirmed_by_the_next_reading_is_a_replacement() {
        let mut t = Tracker::new(PointKind::Counter, None, 20_000);
        let m = run(
            &mut t,
            &[(0, Some(1_000.0)), (5_000, Some(2.0)), (10_000, Some(5.0))],
        );
        // The new meter's 2 since zero, then 3 more.
        assert!((m[&0].sum - 5.0).abs() < 1e-9);
        assert_eq!((m[&0].glitches, m[&0].replacements), (0, 1));
    }

    #[test]
    fn a_held_drop_survives_a_bad_reading_and_is_decided_at_the_next_good_one() {
        let mut t = Tracker::new(PointKind::Counter, Some(1_000_000.0), 20_000);
        let m = run(
            &mut t,
            &[
                (0, Some(999_990.0)),
                (5_000, Some(15.5)),
                (10_000, None),
                (15_000, Some(20.0)),
            ],
        );
        assert!((m[&0].sum - 30.0).abs() < 1e-9);
        assert_eq!(m[&0].rollovers, 1);
        // 0..5 s covered; 5..15 s follows the bad reading: apportioned.
        assert_eq!((m[&0].covered_ms, m[&0].apportioned_ms), (5_000, 10_000));
    }

    #[test]
    fn commit_held_decides_a_drop_without_a_next_reading() {
        let mut t = Tracker::new(PointKind::Counter, None, 20_000);
        let mut m = run(&mut t, &[(0, Some(1_000.0)), (5_000, Some(4.0))]);
        assert!(m.is_empty());
        let g = HourGrid::utc();
        let ev = t.commit_held(&g, &mut |h, a| m.entry(h).or_default().merge(&a));
        assert_eq!(ev, Some(CounterEvent::Replacement));
        assert!((m[&0].sum - 4.0).abs() < 1e-9);
        assert_eq!(t.last, Some(LastReading::new(5_000, 4.0)));
        assert_eq!(t.commit_held(&g, &mut |_, _| {}), None);
    }

    #[test]
    fn stale_and_duplicate_readings_are_ignored() {
        let mut t = Tracker::new(PointKind::Counter, None, 20_000);
        let g = HourGrid::utc();
        let mut sink = |_h: i64, _a: HourAgg| {};
        assert_eq!(t.push(1000, Some(1.0), &g, &mut sink), Pushed::First);
        assert_eq!(t.push(1000, Some(2.0), &g, &mut sink), Pushed::Stale);
        assert_eq!(t.push(500, Some(2.0), &g, &mut sink), Pushed::Stale);
    }

    /// A counter read at 2000-01-02 and next today (26 years later): the delta is kept whole but lands in
    /// one hour, flagged apportioned, instead of 230 000 hours of memory and store.
    #[test]
    fn a_gap_of_years_is_recorded_whole_in_its_last_hour() {
        let mut t = Tracker::new(PointKind::Counter, None, 20_000);
        let t0 = MIN_TS_MS + 86_400_000;
        let t1 = t0 + 26 * 365 * 86_400_000 + 30 * 60_000;
        let m = run(&mut t, &[(t0, Some(10.0)), (t1, Some(510.0))]);
        assert_eq!(m.len(), 1, "{m:?}");
        let (h, a) = m.iter().next().unwrap();
        assert_eq!(*h, HourGrid::utc().hour_index(t1 - 1));
        assert_eq!(a.sum, 500.0);
        assert_eq!((a.covered_ms, a.apportioned_ms), (0, 30 * 60_000));
        assert_eq!(t.unapportioned, 1);
        // A quarter is still apportioned hour by hour.
        let mut t = Tracker::new(PointKind::Counter, None, 20_000);
        let m = run(&mut t, &[(0, Some(0.0)), (MAX_SPREAD_MS, Some(1.0))]);
        assert_eq!(m.len() as i64, MAX_SPREAD_MS / HOUR_MS);
        assert_eq!(t.unapportioned, 0);
        // A gauge is not interpolated over years either.
        let mut t = Tracker::new(PointKind::Gauge, None, i64::MAX / 2);
        let m = run(&mut t, &[(t0, Some(1.0)), (t1, Some(2.0))]);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn values_beyond_the_bound_never_reach_the_sums() {
        let mut t = Tracker::new(PointKind::Counter, None, 20_000);
        let m = run(
            &mut t,
            &[
                (0, Some(1.0)),
                (5_000, Some(1e308)),
                (10_000, Some(f64::INFINITY)),
                (15_000, Some(3.0)),
            ],
        );
        assert!((m[&0].sum - 2.0).abs() < 1e-12);
        assert_eq!(admit_value(-1e12), Ok(-1e12));
        assert_eq!(admit_value(1e308), Err(Implausible::Value(1e308)));
        assert!(admit_value(f64::NAN).is_err());
    }

    #[test]
    fn timestamps_outside_2000_to_a_day_ahead_are_implausible() {
        let now = MIN_TS_MS + 30 * 365 * 86_400_000;
        assert_eq!(admit_ts(0, now), Err(Implausible::TooEarly));
        assert_eq!(admit_ts(MIN_TS_MS - 1, now), Err(Implausible::TooEarly));
        assert_eq!(admit_ts(MIN_TS_MS, now), Ok(()));
        assert_eq!(admit_ts(now + MAX_AHEAD_MS, now), Ok(()));
        assert_eq!(
            admit_ts(now + MAX_AHEAD_MS + 1, now),
            Err(Implausible::TooLate)
        );
        assert_eq!(admit_ts(i64::MAX, i64::MAX), Ok(()));
    }
}
