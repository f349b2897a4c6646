//! 分表计电: the electricity of a production line beside the electricity of the facility that treats
//! its pollution (`[[audit.facility]]`). Enforcement's most common finding is a treatment facility
//! stopped (or idling) while production runs; this finds the time it happened, per local hour.
//!
//! Sans I/O: the caller turns the two power points' readings into [`Segment`]s (the mean power of
//! each between two readings; None where a point was not read), this counts.

/// When a facility counts as running, and how long treatment may lag production.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    /// Production runs at or above this power (kW).
    pub running_kw: f64,
    /// Treatment runs at or above this power (kW).
    pub treatment_running_kw: f64,
    /// A stretch of "production runs, treatment does not" counts only beyond this (ms): treatment
    /// may start a little after production (blowers after the line).
    pub grace_ms: i64,
    /// Treatment "far below its usual level": running, but under this share of its usual power
    /// (the median of its power while both run). None: not checked.
    pub low_ratio: Option<f64>,
}

/// The mean power of both facilities over `[start_ms, end_ms)`; None where it is not known.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    pub start_ms: i64,
    pub end_ms: i64,
    pub production_kw: Option<f64>,
    pub treatment_kw: Option<f64>,
}

/// One local hour's counts (ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HourCount {
    pub start_ms: i64,
    /// Production ran.
    pub production_ms: i64,
    /// Production ran and treatment did not (beyond the grace time).
    pub treatment_off_ms: i64,
    /// Production ran and treatment ran far below its usual level (beyond the grace time).
    pub treatment_low_ms: i64,
    /// Either power unknown (not read): counted as nothing, never as off.
    pub unknown_ms: i64,
}

use crate::audit::hourly::{HourAgg, HOUR_MS};
use crate::types::PointKind;

/// The usual treatment power: the median of its power over the segments where both run.
pub fn usual_treatment_kw(rule: &Rule, segments: &[Segment]) -> Option<f64> {
    let mut v: Vec<f64> = segments
        .iter()
        .filter_map(|s| match (s.production_kw, s.treatment_kw) {
            (Some(p), Some(t))
                if p >= rule.running_kw && t >= rule.treatment_running_kw && t.is_finite() =>
            {
                Some(t)
            }
            _ => None,
        })
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    Unknown,
    Idle,
    Fine,
    Off,
    Low,
}

/// Count per local hour (`tz_offset_ms` east of UTC) over `segments` (sorted, not overlapping).
/// A stretch of Off or Low (adjacent segments, no gap, no unknown between) counts from `grace_ms`
/// after it began.
pub fn hours(rule: &Rule, segments: &[Segment], tz_offset_ms: i64) -> Vec<HourCount> {
    let usual = rule
        .low_ratio
        .and_then(|r| usual_treatment_kw(rule, segments).map(|u| u * r));
    let mut out: Vec<HourCount> = Vec::new();
    // Where the current Off/Low stretch began (and the end of the segment before, for adjacency).
    let mut streak: Option<i64> = None;
    let mut last_end: Option<i64> = None;
    for s in segments.iter().filter(|s| s.end_ms > s.start_ms) {
        let state = match (s.production_kw, s.treatment_kw) {
            (Some(p), _) if p.is_finite() && p < rule.running_kw => State::Idle,
            (Some(p), Some(t)) if p.is_finite() && t.is_finite() => {
                if t < rule.treatment_running_kw {
                    State::Off
                } else if usual.is_some_and(|u| t < u) {
                    State::Low
                } else {
                    State::Fine
                }
            }
            _ => State::Unknown,
        };
        let bad = matches!(state, State::Off | State::Low);
        if !bad || last_end != Some(s.start_ms) {
            streak = None;
        }
        if bad && streak.is_none() {
            streak = Some(s.start_ms);
        }
        last_end = Some(s.end_ms);
        let counts_from = streak.map_or(i64::MAX, |b| b.saturating_add(rule.grace_ms));
        // Split by local hours.
        let mut t = s.start_ms;
        while t < s.end_ms {
            let hour = (t + tz_offset_ms).div_euclid(HOUR_MS) * HOUR_MS - tz_offset_ms;
            let end = (hour + HOUR_MS).min(s.end_ms);
            let len = end - t;
            let counted = (end - t.max(counts_from)).clamp(0, len);
            if out.last().map(|h| h.start_ms) != Some(hour) {
                out.push(HourCount {
                    start_ms: hour,
                    ..Default::default()
                });
            }
            if let Some(h) = out.last_mut() {
                match state {
                    State::Unknown => h.unknown_ms += len,
                    State::Idle => {}
                    State::Fine => h.production_ms += len,
                    State::Off => {
                        h.production_ms += len;
                        h.treatment_off_ms += counted;
                    }
                    State::Low => {
                        h.production_ms += len;
                        h.treatment_low_ms += counted;
                    }
                }
            }
            t = end;
        }
    }
    out
}

/// The counts of a period in hours: (production, treatment off, treatment far below usual).
pub fn totals_h(hours: &[HourCount]) -> (f64, f64, f64) {
    let ms = |f: fn(&HourCount) -> i64| hours.iter().map(f).sum::<i64>() as f64 / HOUR_MS as f64;
    (
        ms(|h| h.production_ms),
        ms(|h| h.treatment_off_ms),
        ms(|h| h.treatment_low_ms),
    )
}

/// The mean power (kW) of a point over one local hour from the audit's hourly aggregate: a gauge's
/// hourly mean (W read as kW / 1000), a counter's kWh in the hour over one hour. None for an hour
/// that is not valid (under 45 min covered by good readings): unknown, never "off".
pub fn hour_kw(agg: &HourAgg, kind: PointKind, unit: &str) -> Option<f64> {
    if !agg.is_valid() {
        return None;
    }
    let v = match kind {
        PointKind::Counter => agg.sum,
        PointKind::Gauge => agg.gauge_mean()?,
    };
    let kw = if unit.trim() == "W" { v / 1000.0 } else { v };
    kw.is_finite().then_some(kw)
}

/// One segment per local hour from `first_start_ms` on, from the hourly mean powers (the report's and
/// the alarm's resolution: the audit keeps hours, so a stop shorter than an hour moves the hour's mean
/// and is judged by it).
pub fn hour_segments(
    first_start_ms: i64,
    production_kw: &[Option<f64>],
    treatment_kw: &[Option<f64>],
) -> Vec<Segment> {
    production_kw
        .iter()
        .zip(treatment_kw)
        .enumerate()
        .map(|(i, (p, t))| Segment {
            start_ms: first_start_ms + i as i64 * HOUR_MS,
            end_ms: first_start_ms + (i as i64 + 1) * HOUR_MS,
            production_kw: *p,
            treatment_kw: *t,
        })
        .collect()
}

/// Whether the facility's alarm is raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmState {
    Alarm,
    Ok,
}

/// Why an alarm is raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Finding {
    /// Production ran and treatment did not.
    TreatmentOff,
    /// Production ran and treatment ran far below its usual power.
    TreatmentLow,
}

/// A facility's state as of its latest hour with both powers known.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmStatus {
    pub state: AlarmState,
    pub finding: Option<Finding>,
    /// UTC ms of the start of the hour the state is of.
    pub hour_start_ms: i64,
    pub production_kw: f64,
    pub treatment_kw: f64,
    /// Hours counted off / low on the local day of that hour.
    pub treatment_off_hours_today: f64,
    pub treatment_low_hours_today: f64,
}

/// The alarm of a facility whose hours from `first_start_ms` have the mean powers given (the last
/// being the latest closed hour): raised when the latest hour with both powers known counted
/// treatment off or low (beyond the grace time). None when no hour is known.
pub fn alarm_status(
    rule: &Rule,
    first_start_ms: i64,
    production_kw: &[Option<f64>],
    treatment_kw: &[Option<f64>],
    tz_offset_ms: i64,
) -> Option<AlarmStatus> {
    let segs = hour_segments(first_start_ms, production_kw, treatment_kw);
    let counts = hours(rule, &segs, tz_offset_ms);
    let (i, seg) = segs
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, s)| Some((i, (s.production_kw?, s.treatment_kw?))))?;
    let start = first_start_ms + i as i64 * HOUR_MS;
    let h = counts
        .iter()
        .find(|h| h.start_ms == start)
        .copied()
        .unwrap_or_default();
    let finding = if h.treatment_off_ms > 0 {
        Some(Finding::TreatmentOff)
    } else if h.treatment_low_ms > 0 {
        Some(Finding::TreatmentLow)
    } else {
        None
    };
    let day = |t: i64| (t + tz_offset_ms).div_euclid(24 * HOUR_MS);
    let today: Vec<&HourCount> = counts
        .iter()
        .filter(|c| day(c.start_ms) == day(start))
        .collect();
    let h_of =
        |f: fn(&HourCount) -> i64| today.iter().map(|c| f(c)).sum::<i64>() as f64 / HOUR_MS as f64;
    Some(AlarmStatus {
        state: if finding.is_some() {
            AlarmState::Alarm
        } else {
            AlarmState::Ok
        },
        finding,
        hour_start_ms: start,
        production_kw: seg.0,
        treatment_kw: seg.1,
        treatment_off_hours_today: h_of(|c| c.treatment_off_ms),
        treatment_low_hours_today: h_of(|c| c.treatment_low_ms),
    })
}

/// A facility's figures over one period (the hours from `first_start_ms`, their mean powers).
pub fn compliance(
    f: &crate::plan::AuditFacility,
    period: &str,
    first_start_ms: i64,
    production_kw: &[Option<f64>],
    treatment_kw: &[Option<f64>],
    tz_offset_ms: i64,
) -> crate::audit::report::FacilityCompliance {
    let rule = rule_of(f);
    let h = hours(
        &rule,
        &hour_segments(first_start_ms, production_kw, treatment_kw),
        tz_offset_ms,
    );
    let (production, off, low) = totals_h(&h);
    let unknown = h.iter().map(|c| c.unknown_ms).sum::<i64>() as f64 / HOUR_MS as f64;
    crate::audit::report::FacilityCompliance {
        name: f.name.clone(),
        period: period.to_string(),
        production_hours: production,
        treatment_off_hours: off,
        treatment_low_hours: rule.low_ratio.map(|_| low),
        unknown_hours: unknown,
    }
}

/// The rule of a configured facility.
pub fn rule_of(f: &crate::plan::AuditFacility) -> Rule {
    Rule {
        running_kw: f.running_kw,
        treatment_running_kw: f.treatment_running_kw,
        grace_ms: i64::try_from(f.grace.as_millis()).unwrap_or(i64::MAX),
        low_ratio: f.low_ratio,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    /// 2026-01-01 08:00 +08:00.
    const T0: i64 = 1_767_225_600_000;
    const TZ: i64 = 8 * HOUR_MS;

    fn rule() -> Rule {
        Rule {
            running_kw: 5.0,
            treatment_running_kw: 5.0,
            grace_ms: 15 * MIN,
            low_ratio: Some(0.5),
        }
    }

    /// Ten-minute segments from T0: (production kW, treatment kW).
    fn segs(v: &[(Option<f64>, Option<f64>)]) -> Vec<Segment> {
        v.iter()
            .enumerate()
            .map(|(i, (p, t))| Segment {
                start_ms: T0 + i as i64 * 10 * MIN,
                end_ms: T0 + (i as i64 + 1) * 10 * MIN,
                production_kw: *p,
                treatment_kw: *t,
            })
            .collect()
    }

    /// Two hours. Hour 08: production runs all hour, treatment (blowers at 30 kW) stops at 08:20
    /// for 30 minutes: 30 - 15 grace = 15 minutes off. Hour 09: production stops at 09:30; the
    /// blowers idle at 10 kW (under half their usual 30) from 09:00 to 09:20: 5 minutes low
    /// after grace; a 10-minute unknown at 09:40 counts as nothing.
    #[test]
    fn treatment_off_and_low_while_production_runs_beyond_the_grace() {
        let (on, run, idle, off) = (Some(100.0), Some(30.0), Some(10.0), Some(0.5));
        let s = segs(&[
            (on, run),
            (on, run),
            (on, off),
            (on, off),
            (on, off),
            (on, run),
            (on, idle),
            (on, idle),
            (on, run),
            (Some(0.0), off),
            (None, off),
            (Some(0.0), Some(0.0)),
        ]);
        assert_eq!(usual_treatment_kw(&rule(), &s), Some(30.0));
        let h = hours(&rule(), &s, TZ);
        assert_eq!(
            h,
            vec![
                HourCount {
                    start_ms: T0,
                    production_ms: 60 * MIN,
                    treatment_off_ms: 15 * MIN,
                    treatment_low_ms: 0,
                    unknown_ms: 0,
                },
                HourCount {
                    start_ms: T0 + HOUR_MS,
                    production_ms: 30 * MIN,
                    treatment_off_ms: 0,
                    treatment_low_ms: 5 * MIN,
                    unknown_ms: 10 * MIN,
                },
            ]
        );
        let (p, off, low) = totals_h(&h);
        assert_eq!((p, off), (1.5, 0.25));
        assert!((low - 5.0 / 60.0).abs() < 1e-12, "{low}");
    }

    /// A stretch that crosses the hour counts from grace after its start, in both hours; a gap
    /// (no segment) or an unknown segment starts the grace again.
    #[test]
    fn a_stretch_crosses_the_hour_and_a_gap_restarts_the_grace() {
        let (on, off) = (Some(100.0), Some(0.0));
        let mut s = segs(&[(None, None); 9]);
        for (i, seg) in s.iter_mut().enumerate() {
            if i != 6 {
                seg.production_kw = on;
                seg.treatment_kw = off;
            }
        }
        // 08:00-09:00 off (45 counted), 09:00 unknown, 09:10-09:30 off (5 counted).
        let h = hours(&rule(), &s[..6], TZ);
        assert_eq!(h[0].treatment_off_ms, 45 * MIN);
        let h = hours(&rule(), &s, TZ);
        assert_eq!(h[1].treatment_off_ms, 5 * MIN);
        assert_eq!(h[1].unknown_ms, 10 * MIN);
        // A one-hour segment 08:30-09:30: 08:45-09:00 and 09:00-09:30 counted.
        let one = [Segment {
            start_ms: T0 + 30 * MIN,
            end_ms: T0 + 90 * MIN,
            production_kw: on,
            treatment_kw: off,
        }];
        let h = hours(&rule(), &one, TZ);
        assert_eq!(
            h.iter()
                .map(|h| h.treatment_off_ms / MIN)
                .collect::<Vec<_>>(),
            vec![15, 30]
        );
        // Without low_ratio nothing is low.
        let r = Rule {
            low_ratio: None,
            ..rule()
        };
        let (run, low) = (Some(30.0), Some(6.0));
        let idle = segs(&[
            (on, run),
            (on, run),
            (on, run),
            (on, low),
            (on, low),
            (on, low),
        ]);
        assert_eq!(totals_h(&hours(&r, &idle, TZ)).2, 0.0);
        // Usual 18 kW (median of 30 x 3 and 6 x 3), half of it 9: 08:30-09:00 low, 15 min counted.
        assert_eq!(hours(&rule(), &idle, TZ)[0].treatment_low_ms, 15 * MIN);
    }

    /// The alarm is of the latest hour with both powers known: raised when that hour counted
    /// treatment off (45 of its 60 minutes beyond a 15-minute grace), ok again when the blowers run.
    #[test]
    fn the_alarm_follows_the_latest_known_hour() {
        let (on, run, off) = (Some(100.0), Some(30.0), Some(0.0));
        let st = alarm_status(&rule(), T0, &[on, on, on], &[run, run, off], TZ).unwrap();
        assert_eq!(st.state, AlarmState::Alarm);
        assert_eq!(st.finding, Some(Finding::TreatmentOff));
        assert_eq!(st.hour_start_ms, T0 + 2 * HOUR_MS);
        assert_eq!((st.production_kw, st.treatment_kw), (100.0, 0.0));
        assert_eq!(st.treatment_off_hours_today, 0.75);
        // An unknown hour after it changes nothing; the blowers back on: ok, the day's hours kept.
        let st = alarm_status(&rule(), T0, &[on, on, on, None], &[run, run, off, run], TZ).unwrap();
        assert_eq!(st.state, AlarmState::Alarm);
        let st = alarm_status(&rule(), T0, &[on, on, on, on], &[run, run, off, run], TZ).unwrap();
        assert_eq!((st.state, st.finding), (AlarmState::Ok, None));
        assert_eq!(st.treatment_off_hours_today, 0.75);
        // Production stopped: treatment may stop too.
        let st = alarm_status(&rule(), T0, &[Some(0.0)], &[off], TZ).unwrap();
        assert_eq!(st.state, AlarmState::Ok);
        // Treatment idling at 10 kW, a third of its usual 30: low.
        let st = alarm_status(&rule(), T0, &[on, on, on], &[run, run, Some(10.0)], TZ).unwrap();
        assert_eq!(st.finding, Some(Finding::TreatmentLow));
        assert_eq!(alarm_status(&rule(), T0, &[None], &[run], TZ), None);
    }

    #[test]
    fn hourly_mean_power_of_gauges_and_counters() {
        let valid = |sum: f64, samples: u32| HourAgg {
            sum,
            samples,
            covered_ms: 3_600_000,
            ..HourAgg::default()
        };
        assert_eq!(
            hour_kw(&valid(120.0, 4), PointKind::Gauge, "kW"),
            Some(30.0)
        );
        assert_eq!(
            hour_kw(&valid(120_000.0, 4), PointKind::Gauge, "W"),
            Some(30.0)
        );
        assert_eq!(
            hour_kw(&valid(42.5, 0), PointKind::Counter, "kWh"),
            Some(42.5)
        );
        let short = HourAgg {
            covered_ms: 40 * 60_000,
            ..valid(120.0, 4)
        };
        assert_eq!(
            hour_kw(&short, PointKind::Gauge, "kW"),
            None,
            "not valid: unknown"
        );
    }

    /// The report's figures of a period: hours production ran, hours treatment was off beyond the
    /// grace, hours unknown; low hours null without `low_ratio`.
    #[test]
    fn a_periods_figures() {
        let f = crate::plan::AuditFacility {
            name: "wwtp".into(),
            production: crate::plan::PointRef {
                meter: "line".into(),
                point: "power".into(),
            },
            treatment: crate::plan::PointRef {
                meter: "blowers".into(),
                point: "power".into(),
            },
            running_kw: 50.0,
            treatment_running_kw: 5.0,
            grace: std::time::Duration::from_secs(15 * 60),
            low_ratio: None,
        };
        let (on, idle, run, off) = (Some(300.0), Some(20.0), Some(30.0), Some(0.5));
        let prod = [on, on, on, on, idle, None];
        let treat = [run, off, off, run, off, run];
        let c = compliance(&f, "reporting", T0, &prod, &treat, TZ);
        assert_eq!(c.name, "wwtp");
        assert_eq!(c.period, "reporting");
        assert_eq!(c.production_hours, 4.0);
        assert_eq!(
            c.treatment_off_hours, 1.75,
            "two hours off, the first 15 min grace"
        );
        assert_eq!(c.treatment_low_hours, None);
        assert_eq!(c.unknown_hours, 1.0);
    }
}
