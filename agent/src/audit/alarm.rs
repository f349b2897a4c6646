//! Limit alarms (sans-I/O): the state of each pollutant source with a `limit`, as of its latest valid
//! closed hour, and the retained message that says it on `P/alarm/{pollutant}/{source}`.
//!
//! The live audit hands this module the hourly aggregates of a source's concentration (and O2) points
//! over the last year each time a local hour closes; it says whether the latest valid hour's converted
//! concentration is over the limit, how many hours were over today and this year, and, only when the
//! state changed since the last message (or none was made since start), the message to publish. Many
//! hours closed at once (catch-up after a restart, an import) give one message per source: the latest
//! state. The rules for a valid hour and its converted concentration are the report's (`compliance`).

use chrono::{Datelike, FixedOffset};
use plantmeter_common::audit::compute::converted_hour;
use plantmeter_common::audit::facility;
use plantmeter_common::audit::hourly::{HourAgg, HourGrid, HOUR_MS};
use plantmeter_common::plan::{AuditPollutant, Medium};
use serde::Serialize;
use std::collections::HashMap;

/// Hours looked back at each evaluation: this year's count and the last exceeded hour need up to a
/// leap year.
pub const LOOKBACK_HOURS: usize = 366 * 24;

/// A source's state as of its latest valid hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Exceeded,
    Ok,
}

/// What a source's alarm is about: from the `[[audit.pollutant]]` with a `limit`.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub pollutant: String,
    /// The `source` name, or the pollutant's when it has one source (as in the report).
    pub source: String,
    pub limit: f64,
    pub unit: &'static str,
    pub o2_reference: Option<f64>,
}

impl Source {
    /// The alarm of `p`, None when it has no limit.
    pub fn of(p: &AuditPollutant) -> Option<Source> {
        let limit = p.limit?;
        Some(Source {
            pollutant: p.name.as_str().to_string(),
            source: p.source_name(),
            limit,
            unit: match p.name.medium() {
                Medium::Water => "mg/L",
                Medium::FlueGas => "mg/m3",
            },
            o2_reference: p.o2.as_ref().map(|(_, r)| *r),
        })
    }

    /// `P/alarm/{pollutant}/{source}`. Both are topic-safe: pollutant keys are fixed, and the config
    /// allows a source name only of `[A-Za-z0-9_-]`.
    pub fn topic(&self, prefix: &str) -> String {
        format!("{prefix}/alarm/{}/{}", self.pollutant, self.source)
    }
}

/// The converted concentration of each hour; None for an hour that is not valid (the concentration,
/// or the O2 when the source has one, under 45 min covered; O2 at 21 % or more).
pub fn converted(conc: &[HourAgg], o2: Option<(&[HourAgg], f64)>) -> Vec<Option<f64>> {
    conc.iter()
        .enumerate()
        .map(|(i, c)| {
            if !c.is_valid() {
                return None;
            }
            let o2_hour = o2.map(|(o2, reference)| {
                let o = o2
                    .get(i)
                    .filter(|o| o.is_valid())
                    .and_then(|o| o.gauge_mean());
                (o, reference)
            });
            converted_hour(c.gauge_mean()?, o2_hour)
        })
        .collect()
}

/// A source's figures as of the latest closed hour.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub state: State,
    /// Local hour index of the latest valid hour (the one the state is of).
    pub hour: i64,
    pub converted: f64,
    /// Hours over the limit on the local day and in the local year of the latest closed hour.
    pub today: u32,
    pub this_year: u32,
    /// The latest hour over the limit within the hours looked at.
    pub last_exceeded: Option<i64>,
}

/// The status of a source whose hour `first + i` has the converted concentration `hours[i]`, the
/// last being the latest closed hour; None when none of them is valid.
pub fn evaluate(first: i64, hours: &[Option<f64>], limit: f64) -> Option<Status> {
    let closed = first + hours.len() as i64 - 1;
    let day = HourGrid::day_of_hour(closed);
    let year = HourGrid::date_of_day(day).year();
    let (mut latest, mut last_exceeded, mut today, mut this_year) = (None, None, 0, 0);
    for (i, v) in hours.iter().enumerate() {
        let Some(v) = *v else { continue };
        let h = first + i as i64;
        latest = Some((h, v));
        if v > limit {
            last_exceeded = Some(h);
            let d = HourGrid::day_of_hour(h);
            today += u32::from(d == day);
            this_year += u32::from(HourGrid::date_of_day(d).year() == year);
        }
    }
    let (hour, converted) = latest?;
    Some(Status {
        state: if converted > limit {
            State::Exceeded
        } else {
            State::Ok
        },
        hour,
        converted,
        today,
        this_year,
        last_exceeded,
    })
}

/// The retained payload of a source's status.
pub fn payload(src: &Source, st: &Status, tz: FixedOffset) -> Vec<u8> {
    let local = |h: i64| {
        chrono::DateTime::from_timestamp_millis(HourGrid::new(tz).hour_start(h))
            .map(|t| t.with_timezone(&tz).to_rfc3339())
    };
    let v = serde_json::json!({
        "state": st.state,
        "pollutant": src.pollutant,
        "source": src.source,
        "hour": local(st.hour),
        "converted": st.converted,
        "limit": src.limit,
        "unit": src.unit,
        "o2_reference": src.o2_reference,
        "exceedance_hours_today": st.today,
        "exceedance_hours_this_year": st.this_year,
        "last_exceeded": st.last_exceeded.and_then(local),
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

/// What was last said per topic, and the hours already evaluated.
#[derive(Debug, Default)]
pub struct Alarms {
    said: HashMap<String, State>,
    /// The latest closed hour evaluated (exclusive end of the evaluated hours).
    evaluated_to: Option<i64>,
}

impl Alarms {
    /// The end (exclusive hour index) of the hours closed at `now_ms` when an hour counts as closed
    /// `grace_ms` after its end (its last readings in); Some only when it moved since the last call.
    pub fn due(&mut self, grid: &HourGrid, now_ms: i64, grace_ms: i64) -> Option<i64> {
        let end = grid.hour_index(now_ms.saturating_sub(grace_ms));
        if self.evaluated_to.is_some_and(|e| e >= end) {
            return None;
        }
        self.evaluated_to = Some(end);
        Some(end)
    }

    /// A config reload (its sources and limits may have changed, and the next publisher knows no
    /// alarm): evaluate again at the next [`Alarms::due`] and say every source's state once more.
    pub fn reset(&mut self) {
        self.evaluated_to = None;
        self.said.clear();
    }

    /// A reload whose plan has the alarm topics `keep`: forget what was said (as [`Alarms::reset`]) and
    /// return the topics said before that the new plan no longer has (a source, its limit or the topic
    /// prefix gone), sorted: their retained alarm is cleared with an empty retained message, so that a
    /// dashboard does not show the alarm of a source that is no longer checked.
    pub fn reset_for(&mut self, keep: &[String]) -> Vec<String> {
        let mut gone: Vec<String> = self
            .said
            .keys()
            .filter(|t| !keep.contains(t))
            .cloned()
            .collect();
        gone.sort();
        self.reset();
        gone
    }

    /// The message for `src` in `status`: `(topic, payload)` when its state changed since the last
    /// message on that topic (or there was none), else None.
    pub fn update(
        &mut self,
        prefix: &str,
        src: &Source,
        status: &Status,
        tz: FixedOffset,
    ) -> Option<(String, Vec<u8>)> {
        let topic = src.topic(prefix);
        if self.said.get(&topic) == Some(&status.state) {
            return None;
        }
        self.said.insert(topic.clone(), status.state);
        Some((topic, payload(src, status, tz)))
    }
}

/// Hours looked back for a facility's alarm (分表计电): a week gives the treatment's usual power and
/// the day's counts.
pub const FACILITY_LOOKBACK_HOURS: usize = 7 * 24;

/// `P/alarm/facility/{name}` (facility names are `[a-z0-9_-]`, checked by the config).
pub fn facility_topic(prefix: &str, name: &str) -> String {
    format!("{prefix}/alarm/facility/{name}")
}

/// The retained payload of a facility's alarm.
pub fn facility_payload(
    f: &plantmeter_common::plan::AuditFacility,
    st: &facility::AlarmStatus,
    tz: FixedOffset,
) -> Vec<u8> {
    let hour = chrono::DateTime::from_timestamp_millis(st.hour_start_ms)
        .map(|t| t.with_timezone(&tz).to_rfc3339());
    let v = serde_json::json!({
        "state": st.state,
        "facility": f.name,
        "finding": st.finding,
        "hour": hour,
        "production": f.production.qualified(),
        "treatment": f.treatment.qualified(),
        "production_kw": st.production_kw,
        "treatment_kw": st.treatment_kw,
        "running_kw": f.running_kw,
        "treatment_running_kw": f.treatment_running_kw,
        "treatment_off_hours_today": st.treatment_off_hours_today,
        "treatment_low_hours_today": f.low_ratio.map(|_| st.treatment_low_hours_today),
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

impl Alarms {
    /// The message for facility `f` in `st`, as [`Alarms::update`]: only when its state changed.
    pub fn update_facility(
        &mut self,
        prefix: &str,
        f: &plantmeter_common::plan::AuditFacility,
        st: &facility::AlarmStatus,
        tz: FixedOffset,
    ) -> Option<(String, Vec<u8>)> {
        let topic = facility_topic(prefix, &f.name);
        let state = match st.state {
            facility::AlarmState::Alarm => State::Exceeded,
            facility::AlarmState::Ok => State::Ok,
        };
        if self.said.get(&topic) == Some(&state) {
            return None;
        }
        self.said.insert(topic.clone(), state);
        Some((topic, facility_payload(f, st, tz)))
    }
}

/// One evaluation hour's grace: an hour is closed this long after its end (its closing readings are
/// in by then, the agent's writer flushing within seconds).
pub fn grace_ms(max_poll_interval_ms: i64) -> i64 {
    max_poll_interval_ms.clamp(0, HOUR_MS / 2) + 5_000
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const PREFIX: &str = "plantmeter/plant-a/gw-01";

    fn tz() -> FixedOffset {
        FixedOffset::east_opt(8 * 3600).unwrap()
    }

    /// Local hour index of `rfc3339`.
    fn hour(rfc3339: &str) -> i64 {
        HourGrid::new(tz()).hour_index(plantmeter_common::model::parse_ts_ms(rfc3339).unwrap())
    }

    fn so2() -> Source {
        Source {
            pollutant: "SO2".into(),
            source: "stack-1".into(),
            limit: 50.0,
            unit: "mg/m3",
            o2_reference: Some(9.0),
        }
    }

    /// The message after evaluating `hours` (from `first`), as JSON.
    fn step(a: &mut Alarms, first: i64, hours: &[Option<f64>]) -> Option<serde_json::Value> {
        let st = evaluate(first, hours, so2().limit)?;
        a.update(PREFIX, &so2(), &st, tz()).map(|(topic, p)| {
            assert_eq!(topic, "plantmeter/plant-a/gw-01/alarm/SO2/stack-1");
            serde_json::from_slice(&p).unwrap()
        })
    }

    #[test]
    fn an_hour_over_the_limit_raises_the_alarm_with_its_figures() {
        let mut a = Alarms::default();
        let first = hour("2026-03-02T08:00:00+08:00");
        let m = step(&mut a, first, &[Some(20.0), Some(30.0), Some(62.5)]).unwrap();
        assert_eq!(m["state"], "exceeded");
        assert_eq!(m["pollutant"], "SO2");
        assert_eq!(m["source"], "stack-1");
        assert_eq!(m["hour"], "2026-03-02T10:00:00+08:00");
        assert_eq!(m["converted"], 62.5);
        assert_eq!(m["limit"], 50.0);
        assert_eq!(m["unit"], "mg/m3");
        assert_eq!(m["o2_reference"], 9.0);
        assert_eq!(m["exceedance_hours_today"], 1);
        assert_eq!(m["exceedance_hours_this_year"], 1);
        assert_eq!(m["last_exceeded"], "2026-03-02T10:00:00+08:00");
    }

    #[test]
    fn back_within_the_limit_says_ok_with_the_last_exceeded_hour() {
        let mut a = Alarms::default();
        let first = hour("2026-03-02T08:00:00+08:00");
        let mut hours = vec![Some(20.0), Some(62.5)];
        assert_eq!(step(&mut a, first, &hours).unwrap()["state"], "exceeded");
        hours.push(Some(49.0));
        let m = step(&mut a, first, &hours).unwrap();
        assert_eq!(m["state"], "ok");
        assert_eq!(m["hour"], "2026-03-02T10:00:00+08:00");
        assert_eq!(m["converted"], 49.0);
        assert_eq!(m["last_exceeded"], "2026-03-02T09:00:00+08:00");
        assert_eq!(m["exceedance_hours_today"], 1);
    }

    #[test]
    fn a_repeated_exceedance_is_not_said_again() {
        let mut a = Alarms::default();
        let first = hour("2026-03-02T08:00:00+08:00");
        let mut hours = vec![Some(60.0)];
        assert!(step(&mut a, first, &hours).is_some());
        for _ in 0..5 {
            hours.push(Some(70.0));
            assert_eq!(step(&mut a, first, &hours), None, "still exceeded");
        }
        // An hour without valid data changes nothing either.
        hours.push(None);
        assert_eq!(step(&mut a, first, &hours), None);
    }

    /// Two days closed at once (a restart, an import): one message, the latest state, with the counts
    /// of every hour.
    #[test]
    fn many_hours_closed_at_once_give_one_message_of_the_latest_state() {
        let mut a = Alarms::default();
        let first = hour("2026-03-01T00:00:00+08:00");
        let hours: Vec<Option<f64>> = (0..48)
            .map(|i| Some(if i % 5 == 0 { 80.0 } else { 10.0 }))
            .collect();
        let m = step(&mut a, first, &hours).unwrap();
        assert_eq!(m["state"], "ok");
        assert_eq!(m["hour"], "2026-03-02T23:00:00+08:00");
        assert_eq!(m["exceedance_hours_today"], 5, "hours 25, 30, 35, 40, 45");
        assert_eq!(m["exceedance_hours_this_year"], 10);
        assert_eq!(m["last_exceeded"], "2026-03-02T21:00:00+08:00");
        assert_eq!(step(&mut a, first, &hours), None);
    }

    #[test]
    fn after_a_reload_the_current_state_is_said_once_more() {
        let grid = HourGrid::new(tz());
        let mut a = Alarms::default();
        let first = hour("2026-03-02T08:00:00+08:00");
        let t = plantmeter_common::model::parse_ts_ms("2026-03-02T10:30:00+08:00").unwrap();
        assert!(a.due(&grid, t, 0).is_some());
        assert!(step(&mut a, first, &[Some(60.0)]).is_some());
        a.reset();
        assert!(a.due(&grid, t, 0).is_some(), "evaluated again at once");
        assert_eq!(
            step(&mut a, first, &[Some(60.0)]).unwrap()["state"],
            "exceeded"
        );
    }

    #[test]
    fn this_year_counts_only_the_local_year_of_the_latest_hour() {
        let first = hour("2025-12-31T22:00:00+08:00");
        let st = evaluate(first, &[Some(60.0), Some(60.0), Some(60.0)], 50.0).unwrap();
        assert_eq!((st.today, st.this_year), (1, 1));
        assert_eq!(st.last_exceeded, Some(first + 2));
    }

    #[test]
    fn no_valid_hour_no_status() {
        assert_eq!(evaluate(0, &[None, None], 50.0), None);
    }

    #[test]
    fn converted_concentration_follows_the_reports_validity_rules() {
        let valid = |mean: f64| HourAgg {
            sum: mean * 60.0,
            samples: 60,
            covered_ms: 3_600_000,
            ..HourAgg::default()
        };
        let short = HourAgg {
            covered_ms: 30 * 60_000,
            ..valid(40.0)
        };
        let conc = [valid(40.0), valid(40.0), short, valid(40.0)];
        let o2 = [valid(15.0), short, valid(15.0), valid(21.0)];
        let got = converted(&conc, Some((&o2, 9.0)));
        // 40 x (21 - 9) / (21 - 15) = 80
        assert_eq!(got, vec![Some(80.0), None, None, None]);
        assert_eq!(converted(&conc, None)[0], Some(40.0));
    }

    #[test]
    fn an_hour_is_evaluated_once_it_closed_and_its_grace_passed() {
        let grid = HourGrid::new(tz());
        let mut a = Alarms::default();
        let t = plantmeter_common::model::parse_ts_ms("2026-03-02T10:00:30+08:00").unwrap();
        let end = a.due(&grid, t, 65_000).unwrap();
        assert_eq!(
            end,
            hour("2026-03-02T09:00:00+08:00"),
            "the 09:00 hour closes at 10:01:05"
        );
        assert_eq!(a.due(&grid, t + 30_000, 65_000), None);
        assert_eq!(
            a.due(&grid, t + 40_000, 65_000),
            Some(hour("2026-03-02T10:00:00+08:00"))
        );
    }

    #[test]
    fn a_reload_without_a_source_clears_its_retained_alarm() {
        let mut a = Alarms::default();
        let st = Status {
            state: State::Exceeded,
            hour: 0,
            converted: 60.0,
            today: 1,
            this_year: 1,
            last_exceeded: Some(0),
        };
        let cod = Source {
            pollutant: "COD".into(),
            source: "outfall".into(),
            ..so2()
        };
        let so2 = so2();
        assert!(a.update("p", &so2, &st, tz()).is_some());
        assert!(a.update("p", &cod, &st, tz()).is_some());
        // The new plan keeps SO2 only: COD's topic is cleared, SO2's state is said again.
        let gone = a.reset_for(&[so2.topic("p")]);
        assert_eq!(gone, vec![cod.topic("p")]);
        assert!(a.update("p", &so2, &st, tz()).is_some());
        // A reload keeping everything clears nothing.
        assert!(a.reset_for(&[so2.topic("p")]).is_empty());
    }
}
