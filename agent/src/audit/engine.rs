//! The live audit engine: feeds every polled reading through the interval engine into hourly aggregates in
//! sled, and computes the report from them. The agent calls it from `run`; the demo uses it in-process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::NaiveDate;
use plantmeter_common::audit::compute::{self, HourlySource, ReportRequest};
use plantmeter_common::audit::hourly::{DayBlock, HourAgg, HourGrid};
use plantmeter_common::audit::intervals::{
    admit_ts, admit_value, gap_threshold_ms, place, Applied, Gap, Implausible, Inapplicable,
    InferredReplacement, Placement, Pushed, RecordedReplacement, Tracker,
};
use plantmeter_common::audit::report::Report;
use plantmeter_common::model::format_ts_ms;
use plantmeter_common::plan::{Plan, PointRef};
use plantmeter_common::{Clock, DataMessage, Quality};

use super::aggregates::{Aggregates, PointState};

/// Name of the report file the engine writes in `data_dir` each time `report_json` runs, so that
/// `plantmeter report` can fall back to it while a running agent holds the store.
pub const REPORT_FILE: &str = "audit-report.json";
/// Largest `P/audit` payload CONTRACT.md allows (bytes).
pub const MAX_AUDIT_MESSAGE: usize = 64 * 1024;

/// Flush on its own past this many pending day blocks, so memory stays bounded between flushes.
const MAX_PENDING_BLOCKS: usize = 20_000;
/// At most one warning about implausible readings per this long (the rest are counted in the next one).
const WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Rate-limited warnings about readings the engine refuses.
#[derive(Default)]
struct Refusals {
    last_warned: Option<std::time::Instant>,
    unreported: u64,
    /// Readings refused since the engine opened.
    total: u64,
}

impl Refusals {
    fn refuse(&mut self, point: &str, ts_ms: i64, why: &Implausible) {
        self.total += 1;
        let due = self.last_warned.is_none_or(|t| t.elapsed() >= WARN_EVERY);
        if !due {
            self.unreported += 1;
            return;
        }
        let ts = if ts_ms == i64::MIN || ts_ms == i64::MAX {
            ts_ms.to_string()
        } else {
            format_ts_ms(ts_ms)
        };
        tracing::warn!(
            point,
            ts,
            others = self.unreported,
            "audit: reading of {point} at {ts} refused: {why} (not counted; {} other refusals since the last warning)",
            self.unreported
        );
        self.last_warned = Some(std::time::Instant::now());
        self.unreported = 0;
    }
}

pub(crate) struct Slot {
    id: u32,
    /// `meter.point`, for warnings.
    name: String,
    tracker: Tracker,
    first: Option<(i64, f64)>,
    dirty: bool,
}

/// Hourly aggregates and the audit report of one agent.
pub struct AuditEngine {
    plan: Plan,
    grid: HourGrid,
    agg: Option<Aggregates>,
    meters: PointIndex,
    slots: Vec<Slot>,
    pending: HashMap<(u32, i64), DayBlock>,
    report_file: PathBuf,
    /// The clock readings are stamped with, for the plausible window; None: the system clock.
    clock: Option<Clock>,
    refusals: Refusals,
    /// Recorded replacements (`plantmeter replace`) as last read, and the file's stamp then.
    recorded: Vec<super::replace::Record>,
    recorded_stamp: Option<Option<std::time::SystemTime>>,
    /// Recorded replacements that cannot be applied ((point, at) -> why), for the report.
    not_applied: HashMap<(String, i64), String>,
    /// Replacement bookkeeping to persist with the next flush.
    marks: Vec<Mark>,
    /// The next seq of the store to ingest: every record below it is in the aggregates (in memory).
    next: u64,
    /// The same, as last persisted with the aggregates.
    persisted_next: u64,
}

/// Replacement bookkeeping written with the aggregates.
enum Mark {
    Inferred(u32, InferredReplacement),
    Applied(u32, Applied),
    /// A polling gap, kept so that an import can fill it.
    Gap(u32, Gap),
}

/// The replacements inferred from point `id`'s drops and the recorded ones counted, stored and pending.
fn discontinuities(
    agg: &Aggregates,
    marks: &[Mark],
    id: u32,
) -> (Vec<InferredReplacement>, Vec<Applied>) {
    let mut inferred = agg.inferred(id);
    let mut taken = agg.applied(id);
    for m in marks {
        match m {
            Mark::Inferred(x, inf) if *x == id => inferred.push(*inf),
            Mark::Applied(x, a) if *x == id => taken.push(*a),
            _ => {}
        }
    }
    (inferred, taken)
}

/// meter name -> point name -> index into the slots.
pub(crate) type PointIndex = HashMap<String, HashMap<String, usize>>;

/// Trackers for every point of the plan, continuing from the stored last readings.
pub(crate) fn slots_for(
    plan: &Plan,
    agg: &mut Aggregates,
    batch: &mut sled::Batch,
) -> anyhow::Result<(PointIndex, Vec<Slot>)> {
    let mut meters: PointIndex = HashMap::new();
    let mut slots = Vec::new();
    for m in plan.meters() {
        let gap = gap_threshold_ms(m.poll_interval.as_millis() as i64);
        let by_point = meters.entry(m.name.clone()).or_default();
        for p in &m.points {
            let name = format!("{}.{}", m.name, p.name);
            let id = agg.id(&name, batch);
            let mut tracker = Tracker::new(p.kind, p.rollover, gap);
            let state = agg.state(id)?;
            tracker.last = state.map(|s| s.last);
            by_point.insert(p.name.clone(), slots.len());
            slots.push(Slot {
                id,
                name,
                tracker,
                first: state.map(|s| (s.first_ts, s.first_value)),
                dirty: false,
            });
        }
    }
    Ok((meters, slots))
}

/// Add one hour's contribution to a map of pending day blocks.
pub(crate) fn add_hour(pending: &mut HashMap<(u32, i64), DayBlock>, id: u32, h: i64, a: &HourAgg) {
    pending.entry((id, h.div_euclid(24))).or_default().0[h.rem_euclid(24) as usize].merge(a);
}

impl AuditEngine {
    /// Open the engine on the agent's store. Without an `[audit]` section it is inert: it ingests nothing
    /// and `report` says there is nothing to report.
    pub fn open(db: &sled::Db, plan: &Plan) -> anyhow::Result<Self> {
        let report_file = plan.gateway.data_dir.join(REPORT_FILE);
        let Some(audit) = plan.audit.as_ref() else {
            return Ok(AuditEngine {
                plan: plan.clone(),
                grid: HourGrid::utc(),
                agg: None,
                meters: HashMap::new(),
                slots: Vec::new(),
                pending: HashMap::new(),
                report_file,
                clock: None,
                refusals: Refusals::default(),
                recorded: Vec::new(),
                recorded_stamp: None,
                not_applied: HashMap::new(),
                marks: Vec::new(),
                next: 0,
                persisted_next: 0,
            });
        };
        let grid = HourGrid::new(audit.timezone);
        let mut agg = Aggregates::open(db, &grid)?;
        let next = agg.cursor()?.unwrap_or(0);
        let mut batch = sled::Batch::default();
        let (meters, mut slots) = slots_for(plan, &mut agg, &mut batch)?;
        agg.apply(batch)?;
        // A store that took a reading from far in the future (before readings were bounded) would refuse
        // every later one as out of order: such a last reading is forgotten, the next one starts afresh.
        let now = plantmeter_common::clock::system_ms();
        for s in &mut slots {
            if let Some(l) = s
                .tracker
                .last
                .filter(|l| admit_ts(l.latest_ts(), now).is_err())
            {
                tracing::warn!(
                    point = %s.name,
                    "audit: the stored last reading of {} at {} is implausible; the next reading starts afresh",
                    s.name,
                    format_ts_ms(l.latest_ts())
                );
                s.tracker.last = None;
                s.dirty = true;
            }
        }
        let mut engine = AuditEngine {
            plan: plan.clone(),
            grid,
            agg: Some(agg),
            meters,
            slots,
            pending: HashMap::new(),
            report_file,
            clock: None,
            refusals: Refusals::default(),
            recorded: Vec::new(),
            recorded_stamp: None,
            not_applied: HashMap::new(),
            marks: Vec::new(),
            next,
            persisted_next: next,
        };
        engine.sync_recorded();
        Ok(engine)
    }

    /// Take in the recorded replacements (`data_dir/replacements.jsonl`) when the file changed, through
    /// [`Tracker::record`]: one the readings have not crossed yet waits for them (or settles a held drop
    /// now); one among counted readings corrects the replacement inferred there. One that cannot be applied
    /// (recorded while the agent held the store, so `replace` could not check it) is named in the log and
    /// listed in the report as not applied.
    fn sync_recorded(&mut self) {
        let dir = self.plan.gateway.data_dir.clone();
        let stamp = super::replace::stamp(&dir);
        if self.recorded_stamp == Some(stamp) {
            return;
        }
        self.recorded_stamp = Some(stamp);
        let recs = super::replace::load(&dir);
        let Some(agg) = self.agg.as_ref() else {
            return;
        };
        for rec in &recs {
            let Some(r) = rec.replacement() else { continue };
            let Some((m, p)) = rec.point.split_once('.') else {
                continue;
            };
            let Some(&i) = self.meters.get(m).and_then(|x| x.get(p)) else {
                continue;
            };
            let slot = &mut self.slots[i];
            let id = slot.id;
            let marked = self
                .marks
                .iter()
                .any(|k| matches!(k, Mark::Applied(x, a) if *x == id && a.at_ms == r.at_ms));
            if marked || agg.is_applied(id, r.at_ms) || slot.tracker.recorded.contains(&r) {
                continue;
            }
            let (inferred, taken) = discontinuities(agg, &self.marks, id);
            let first_ts = slot.first.map_or(i64::MIN, |f| f.0);
            let pending = &mut self.pending;
            let placed =
                slot.tracker
                    .record(r, first_ts, (&inferred, &taken), &self.grid, &mut |h, a| {
                        add_hour(pending, id, h, &a)
                    });
            for a in slot.tracker.applied.drain(..) {
                self.marks.push(Mark::Applied(id, a));
            }
            match placed {
                Ok(Placement::Pending) => {
                    self.not_applied.remove(&(rec.point.clone(), r.at_ms));
                }
                Ok(_) => {
                    self.not_applied.remove(&(rec.point.clone(), r.at_ms));
                    slot.dirty = true;
                    tracing::info!(
                        point = %slot.name,
                        "audit: the replacement of {} recorded at {} is counted exactly",
                        slot.name,
                        rec.at
                    );
                }
                Err(why) => {
                    tracing::warn!(
                        point = %slot.name,
                        "audit: the replacement of {} recorded at {} is not applied: {why}",
                        slot.name,
                        rec.at
                    );
                    self.not_applied
                        .insert((rec.point.clone(), r.at_ms), why.to_string());
                }
            }
        }
        self.recorded = recs;
    }

    /// Where a replacement of `point` recorded now would fall (see [`place`]), for `plantmeter replace` to
    /// refuse one that cannot be applied. A point never read: pending.
    pub fn judge_replacement(
        &self,
        point: &str,
        r: &RecordedReplacement,
    ) -> Result<Placement, Inapplicable> {
        let slot = point
            .split_once('.')
            .and_then(|(m, p)| self.meters.get(m).and_then(|x| x.get(p)))
            .map(|&i| &self.slots[i]);
        let (Some(slot), Some(agg)) = (slot, self.agg.as_ref()) else {
            return Ok(Placement::Pending);
        };
        let Some(last) = slot.tracker.last else {
            return Ok(Placement::Pending);
        };
        let (inferred, taken) = discontinuities(agg, &self.marks, slot.id);
        let first_ts = slot.first.map_or(i64::MIN, |f| f.0);
        place(r, first_ts, &last, &inferred, &taken)
    }

    /// The next seq of the store to ingest, as persisted with the aggregates: every record below it
    /// is counted on disk (0: a store never audited live, so every stored record is ingested).
    pub fn persisted_cursor(&self) -> u64 {
        self.persisted_next
    }

    /// The next seq of the store to ingest (in memory).
    pub fn cursor(&self) -> u64 {
        self.next
    }

    /// Record `seq` was seen but cannot be ingested (not a data message): the cursor passes it.
    pub fn skip(&mut self, seq: u64) {
        self.next = self.next.max(seq.saturating_add(1));
    }

    /// Judge timestamps against this clock (the one readings are stamped with: a virtual clock in tests and
    /// the demo) instead of the system clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Readings refused as implausible since the engine opened.
    #[cfg_attr(not(test), allow(dead_code, reason = "for status and metrics"))]
    pub fn refused(&self) -> u64 {
        self.refusals.total
    }

    /// Feed one data message (a poll of one meter). Called for every message once durable, in seq order.
    /// Readings not after the point's last reading (duplicates after a reconnect) are ignored.
    pub fn ingest(&mut self, msg: &DataMessage) -> anyhow::Result<()> {
        // Before any flush below: the message's effects and the cursor past it go in one batch.
        self.skip(msg.seq);
        let Some(points) = self.meters.get(&msg.meter) else {
            return Ok(());
        };
        let now = self
            .clock
            .map_or_else(plantmeter_common::clock::system_ms, |c| c.now_ms());
        for pv in &msg.points {
            let Some(&i) = points.get(&pv.name) else {
                continue;
            };
            let slot = &mut self.slots[i];
            if let Err(why) = admit_ts(msg.ts, now) {
                // Not placeable in time at all: dropped, and the point's intervals go on from its last
                // plausible reading.
                self.refusals.refuse(&slot.name, msg.ts, &why);
                continue;
            }
            let value = match pv.value.filter(|_| pv.quality == Quality::Good) {
                Some(v) => match admit_value(v) {
                    Ok(v) => Some(v),
                    Err(why) => {
                        // A reading was taken but its value cannot be believed: coverage breaks here.
                        self.refusals.refuse(&slot.name, msg.ts, &why);
                        None
                    }
                },
                None => None,
            };
            // 倍率 changed since the last reading: a discontinuity, not consumption.
            if let Some((m, unit)) = self.plan.meter(&msg.meter).and_then(|(_, m)| {
                let p = m.points.iter().find(|p| p.name == pv.name)?;
                Some((m.multiplier.as_ref()?, p.unit.as_str()))
            }) {
                plantmeter_common::audit::multiplier::rescale_across(
                    &mut slot.tracker,
                    m,
                    unit,
                    msg.ts,
                );
            }
            let id = slot.id;
            let pending = &mut self.pending;
            let long_gaps = slot.tracker.unapportioned;
            let r = slot.tracker.push(msg.ts, value, &self.grid, &mut |h, a| {
                add_hour(pending, id, h, &a)
            });
            for a in slot.tracker.applied.drain(..) {
                self.marks.push(Mark::Applied(id, a));
            }
            for inf in slot.tracker.inferred.drain(..) {
                self.marks.push(Mark::Inferred(id, inf));
            }
            for g in slot.tracker.gaps.drain(..) {
                self.marks.push(Mark::Gap(id, g));
            }
            if slot.tracker.unapportioned > long_gaps {
                tracing::warn!(
                    point = %slot.name,
                    "audit: {} read at {} after more than 92 days without a reading: the consumption in between \
                     is counted in this hour, not apportioned",
                    slot.name,
                    format_ts_ms(msg.ts)
                );
            }
            match r {
                Pushed::Stale => {}
                Pushed::First => {
                    if slot.first.is_none() {
                        slot.first = value.map(|v| (msg.ts, v));
                    }
                    slot.dirty = true;
                }
                _ => slot.dirty = true,
            }
        }
        if self.pending.len() > MAX_PENDING_BLOCKS {
            self.flush()?;
        }
        Ok(())
    }

    /// Persist pending aggregates and last readings, atomically (called periodically and at shutdown).
    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.sync_recorded();
        let Some(agg) = self.agg.as_ref() else {
            return Ok(());
        };
        if self.pending.is_empty()
            && self.marks.is_empty()
            && !self.slots.iter().any(|s| s.dirty)
            && self.next == self.persisted_next
        {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        Aggregates::put_cursor(&mut batch, self.next);
        let mut new_gaps: HashMap<u32, usize> = HashMap::new();
        for m in &self.marks {
            match m {
                Mark::Inferred(id, inf) => Aggregates::put_inferred(&mut batch, *id, inf),
                Mark::Applied(id, a) => Aggregates::put_applied(&mut batch, *id, a),
                Mark::Gap(id, g) => {
                    Aggregates::put_gap(&mut batch, *id, g);
                    *new_gaps.entry(*id).or_default() += 1;
                }
            }
        }
        for (id, n) in new_gaps {
            agg.prune_gaps(&mut batch, id, n)?;
        }
        let mut by_point: HashMap<u32, Vec<(i64, &DayBlock)>> = HashMap::new();
        for (&(id, day), block) in &self.pending {
            by_point.entry(id).or_default().push((day, block));
        }
        for (id, days) in by_point {
            agg.merge_days(&mut batch, id, days)?;
        }
        for s in self.slots.iter().filter(|s| s.dirty) {
            if let (Some(last), Some((first_ts, first_value))) = (s.tracker.last, s.first) {
                Aggregates::put_state(
                    &mut batch,
                    s.id,
                    &PointState {
                        first_ts,
                        first_value,
                        last,
                    },
                );
            }
        }
        agg.apply(batch)?;
        self.pending.clear();
        self.marks.clear();
        for s in &mut self.slots {
            s.dirty = false;
        }
        self.persisted_next = self.next;
        Ok(())
    }

    /// The hourly aggregates of `p` for `n` local hours from `first_hour`, as persisted (flush first
    /// for the latest); all empty without an `[audit]` section or for a point never read.
    pub fn stored_hours(
        &self,
        p: &PointRef,
        first_hour: i64,
        n: usize,
    ) -> anyhow::Result<Vec<HourAgg>> {
        let mut out = vec![HourAgg::default(); n];
        if let Some(agg) = self.agg.as_ref() {
            agg.hours(&p.qualified(), first_hour, &mut out)?;
        }
        Ok(out)
    }

    /// The local dates the persisted hourly data spans (whole chunks), None without data or audit.
    pub fn data_dates(&self) -> anyhow::Result<Option<(NaiveDate, NaiveDate)>> {
        match self.agg.as_ref() {
            Some(agg) => agg.data_dates(),
            None => Ok(None),
        }
    }

    /// The report over the configured periods as of `now_ms`.
    pub fn report(&mut self, now_ms: i64) -> anyhow::Result<Report> {
        self.report_for(now_ms, None)
    }

    /// The report as of `now_ms`, with `--from/--to` replacing the reporting period (or the baseline when
    /// no reporting period is configured).
    pub fn report_for(
        &mut self,
        now_ms: i64,
        period_override: Option<(NaiveDate, NaiveDate)>,
    ) -> anyhow::Result<Report> {
        self.flush()?;
        let agg = self.agg.as_ref().ok_or_else(|| {
            anyhow::anyhow!(
                "{}: no [audit] section, so there is no audit report",
                self.plan.source.display()
            )
        })?;
        let mut src = Source(agg);
        let req = ReportRequest {
            now_ms,
            period_override,
        };
        let mut report = compute::compute(&self.plan, &req, &mut src)?;
        self.mark_recorded(&mut report);
        Ok(report)
    }

    /// Tell the report's replacement events which were recorded (and give them the recorded instant), and
    /// list the recorded replacements not applied, with the reason in the notes: `recorded` and `applied`
    /// say what the figures hold, not what the file says.
    fn mark_recorded(&self, report: &mut Report) {
        let Some(agg) = self.agg.as_ref() else {
            return;
        };
        let mut applied: HashMap<String, Vec<Applied>> = HashMap::new();
        let mut recorded: Vec<(String, i64)> = Vec::new();
        for rec in &self.recorded {
            if let (false, Some(id)) = (
                applied.contains_key(rec.point.as_str()),
                agg.existing_id(&rec.point),
            ) {
                applied.insert(rec.point.clone(), agg.applied(id));
            }
            // A point no longer in the config is not the report's.
            let known = rec
                .point
                .split_once('.')
                .is_some_and(|(m, p)| self.meters.get(m).is_some_and(|x| x.contains_key(p)));
            if let (true, Some(r)) = (known, rec.replacement()) {
                recorded.push((rec.point.clone(), r.at_ms));
            }
        }
        plantmeter_common::audit::recorded::mark(
            report,
            &self.grid,
            &applied,
            &recorded,
            |point, at| self.not_applied.get(&(point.to_string(), at)).cloned(),
        );
    }

    /// The same, as the JSON published retained on `P/audit`. Also written to `data_dir/audit-report.json`
    /// (replaced atomically) for `plantmeter report` while the agent holds the store.
    /// The report for `P/audit`: sealed, without the per-bucket series (CONTRACT.md: at most 64 KiB). The
    /// whole sealed report goes to the report file beside the store.
    pub fn report_json(&mut self, now_ms: i64) -> anyhow::Result<Vec<u8>> {
        let mut r = self.report(now_ms)?;
        let key = match self
            .plan
            .sign_key_file
            .as_deref()
            .map(super::integrity::load_key)
        {
            Some(Ok(k)) => Some(k),
            Some(Err(e)) => {
                tracing::warn!("{e:#}; the report goes out unsigned");
                None
            }
            None => None,
        };
        super::integrity::seal(&mut r, key.as_ref())?;
        let json = serde_json::to_vec(&r).context("cannot serialize the audit report")?;
        if let Err(e) = write_atomic(&self.report_file, &json) {
            tracing::warn!(file = %self.report_file.display(), "cannot write the audit report file: {e:#}");
        }
        r.series = Default::default();
        super::integrity::seal(&mut r, key.as_ref())?;
        let slim = serde_json::to_vec(&r).context("cannot serialize the audit report")?;
        if slim.len() > MAX_AUDIT_MESSAGE {
            tracing::warn!(
                bytes = slim.len(),
                "the audit report for P/audit is over 64 KiB without its series; some brokers refuse it"
            );
        }
        Ok(slim)
    }
}

struct Source<'a>(&'a Aggregates);

impl HourlySource for Source<'_> {
    fn hours(&mut self, p: &PointRef, first_hour: i64, out: &mut [HourAgg]) -> Result<(), String> {
        self.0
            .hours(&p.qualified(), first_hour, out)
            .map_err(|e| format!("{e:#}"))
    }

    fn imported(&mut self, p: &PointRef) -> Vec<(i64, i64)> {
        self.0.import_span(&p.qualified()).into_iter().collect()
    }

    fn filled(&mut self, p: &PointRef) -> Vec<(i64, i64)> {
        self.0.filled_spans(&p.qualified())
    }
}

/// Write a file by writing a temporary beside it and renaming it over.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use plantmeter_common::PointValue;

    pub(crate) fn plan(dir: &Path) -> Plan {
        let cfg = dir.join("plant.toml");
        std::fs::write(
            &cfg,
            format!(
                r#"[gateway]
id = "gw-01"
site = "plant-a"
data_dir = "{}"
[mqtt]
url = "mqtt://127.0.0.1:1883"
[[bus]]
name = "line-1"
transport = "tcp"
address = "127.0.0.1:5020"
[[meter]]
name = "power"
bus = "line-1"
unit_id = 1
poll_interval_s = 60
  [[meter.point]]
  name = "energy"
  register = "holding"
  address = 0
  type = "u32"
  scale = 0.01
  unit = "kWh"
  kind = "counter"
  [[meter.point]]
  name = "power"
  register = "holding"
  address = 2
  type = "f32"
  unit = "kW"
  kind = "gauge"
[[meter]]
name = "packer"
bus = "line-1"
unit_id = 2
poll_interval_s = 60
  [[meter.point]]
  name = "output"
  register = "holding"
  address = 0
  type = "f32"
  unit = "t"
  kind = "counter"
[audit]
timezone = "+08:00"
baseline = ["2026-01-01", "2026-01-03"]
granularity = "day"
grid_co2_t_per_mwh = 0.5703
production = {{ point = "packer.output", unit = "t" }}
  [[audit.input]]
  point = "power.energy"
  carrier = "electricity"
"#,
                dir.join("store").display()
            ),
        )
        .unwrap();
        plantmeter_common::config::load(&cfg).unwrap()
    }

    pub(crate) fn msg(seq: u64, ts: i64, meter: &str, pts: &[(&str, Option<f64>)]) -> DataMessage {
        DataMessage {
            seq,
            ts,
            meter: meter.into(),
            points: pts
                .iter()
                .map(|(n, v)| PointValue {
                    name: n.to_string(),
                    value: *v,
                    unit: String::new(),
                    quality: if v.is_some() {
                        Quality::Good
                    } else {
                        Quality::CommError
                    },
                })
                .collect(),
        }
    }

    /// Replacements recorded while the agent holds the store (`replace` cannot check them then): one among
    /// counted readings where the counter rose is listed as recorded but not applied, with the reason; one
    /// after the last reading waits (not applied yet), then counts exactly when the readings cross it.
    #[test]
    fn replacements_recorded_while_running_are_reported_as_they_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(dir.path());
        let t0 = plantmeter_common::model::parse_ts_ms("2026-01-01T00:00:00+08:00").unwrap();
        let h = 3_600_000;
        let db = crate::store::open_db(&dir.path().join("store")).unwrap();
        let mut e = AuditEngine::open(&db, &plan).unwrap();
        let mut seq = 0;
        let mut feed = |e: &mut AuditEngine, i: i64, energy: f64| {
            seq += 1;
            e.ingest(&msg(seq, t0 + i * h, "power", &[("energy", Some(energy))]))
                .unwrap();
            e.ingest(&msg(
                seq,
                t0 + i * h,
                "packer",
                &[("output", Some(2.0 * i as f64))],
            ))
            .unwrap();
        };
        for i in 0..=40 {
            feed(&mut e, i, 5000.0 + 100.0 * i as f64);
        }
        e.flush().unwrap();
        let write = |recs: &[(i64, f64, f64)]| {
            let mut text = String::new();
            for &(at, old_final, new_start) in recs {
                let r = super::super::replace::Record {
                    point: "power.energy".into(),
                    at: format_ts_ms(at),
                    old_final,
                    new_start,
                };
                text += &serde_json::to_string(&r).unwrap();
                text.push('\n');
            }
            std::fs::write(dir.path().join("store").join("replacements.jsonl"), text).unwrap();
        };
        let (among, later) = (t0 + 10 * h, t0 + 40 * h + h / 2);
        write(&[(among, 6000.0, 0.0), (later, 9050.0, 0.0)]);
        let now = t0 + 3 * 86_400_000;
        let r = e.report(now).unwrap();
        let ev = &r.events.replacements;
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert!(ev.iter().all(|x| x.recorded && !x.applied), "{ev:?}");
        let notes = r.method.notes.join("\n");
        assert!(notes.contains("did not drop"), "{notes}");
        assert!(notes.contains("do not reach across it"), "{notes}");
        // The new meter from 0 after 40 h 30 min: 50 kWh at 41 h, then 100 kWh an hour.
        for i in 41..=47 {
            feed(&mut e, i, 50.0 + 100.0 * (i - 41) as f64);
        }
        let r = e.report(now).unwrap();
        let el = r.indicator("electricity").unwrap();
        assert!(
            (el.baseline.total.unwrap() - 4_700.0).abs() < 1e-6,
            "{:?}",
            el.baseline.total
        );
        let applied: Vec<_> = r.events.replacements.iter().filter(|x| x.applied).collect();
        assert_eq!(applied.len(), 1, "{:?}", r.events.replacements);
        assert_eq!(applied[0].at, format_ts_ms(later));
        assert!(applied[0].recorded);
    }

    /// Two local days of polls every minute: 100 kWh and 2 t per hour; the engine is dropped and reopened
    /// half-way (after a flush, and again with unflushed readings lost as in a crash) and loses nothing.
    #[test]
    fn restart_continues_intervals_and_counts_everything_once() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(dir.path());
        let t0 = plantmeter_common::model::parse_ts_ms("2026-01-01T00:00:00+08:00").unwrap();
        let minutes = 2 * 24 * 60;
        let mut seq = 0;
        let mut feed = |e: &mut AuditEngine, range: std::ops::Range<i64>| {
            for i in range {
                let ts = t0 + i * 60_000;
                seq += 1;
                let energy = 5_000.0 + 100.0 * i as f64 / 60.0;
                e.ingest(&msg(
                    seq,
                    ts,
                    "power",
                    &[("energy", Some(energy)), ("power", Some(100.0))],
                ))
                .unwrap();
                e.ingest(&msg(
                    seq,
                    ts,
                    "packer",
                    &[("output", Some(2.0 * i as f64 / 60.0))],
                ))
                .unwrap();
            }
        };
        {
            let db = crate::store::open_db(&dir.path().join("store")).unwrap();
            let mut e = AuditEngine::open(&db, &plan).unwrap();
            feed(&mut e, 0..1000);
            e.flush().unwrap();
            // A duplicate after a reconnect changes nothing.
            feed(&mut e, 999..1000);
            // Not flushed: lost as in a power cut; the next reading after restart spans the gap.
            feed(&mut e, 1000..1500);
        }
        let db = crate::store::open_db(&dir.path().join("store")).unwrap();
        let mut e = AuditEngine::open(&db, &plan).unwrap();
        feed(&mut e, 1500..minutes + 1);
        let now = t0 + 3 * 86_400_000;
        let r = e.report(now).unwrap();
        let el = r.indicator("electricity").unwrap();
        assert!(
            (el.baseline.total.unwrap() - 4_800.0).abs() < 1e-6,
            "{:?}",
            el.baseline.total
        );
        assert!((r.periods.baseline.production - 96.0).abs() < 1e-9);
        let q = r
            .method
            .points
            .iter()
            .find(|p| p.point == "power.energy")
            .unwrap();
        assert_eq!(
            q.apportioned_hours, 9,
            "the lost 500 minutes are apportioned"
        );
        assert!(r.periods.baseline.completeness < 1.0);

        // P/audit: sealed, without the series, under 64 KiB; the file beside the store has them.
        let json = e.report_json(now).unwrap();
        assert!(json.len() <= MAX_AUDIT_MESSAGE);
        let slim: Report = serde_json::from_slice(&json).unwrap();
        assert!(slim.series.daily.is_empty());
        assert_eq!(slim.integrity.as_ref().unwrap().sha256.len(), 64);
        let file = std::fs::read(dir.path().join("store").join(REPORT_FILE)).unwrap();
        let back: Report = serde_json::from_slice(&file).unwrap();
        assert_eq!(back.gateway, "gw-01");
        assert!(!back.series.daily.is_empty());
        assert_eq!(back.indicators, slim.indicators);
    }

    /// The live audit lets go of the database at every store recycle (flush, drop, reopen): that must
    /// change no figure. The same readings (a counter, a production counter, a flue-gas concentration
    /// and flow at two polls an hour) into one engine kept open and into one let go every 7 hours.
    #[test]
    fn letting_go_of_the_database_changes_no_figure() {
        let dir = tempfile::tempdir().unwrap();
        // The base config (written beside), with a stack and its NOx added.
        plan(dir.path());
        let text = std::fs::read_to_string(dir.path().join("plant.toml"))
            .unwrap()
            .replace(
                "[audit]",
                "[[meter]]\nname = \"stack\"\nbus = \"line-1\"\nunit_id = 3\npoll_interval_s = 60\n  [[meter.point]]\n  name = \"nox\"\n  register = \"holding\"\n  address = 0\n  type = \"f32\"\n  unit = \"mg/m3\"\n  kind = \"gauge\"\n  [[meter.point]]\n  name = \"flow\"\n  register = \"holding\"\n  address = 2\n  type = \"f32\"\n  unit = \"m3/h\"\n  kind = \"gauge\"\n[audit]",
            )
            + "  [[audit.pollutant]]\n  name = \"NOx\"\n  concentration = \"stack.nox\"\n  flow = \"stack.flow\"\n";
        std::fs::write(dir.path().join("plant.toml"), text).unwrap();
        let plan = plantmeter_common::config::load(&dir.path().join("plant.toml")).unwrap();
        let t0 = plantmeter_common::model::parse_ts_ms("2026-01-01T00:00:00+08:00").unwrap();
        let feed = |e: &mut AuditEngine, seq: &mut u64, i: i64| {
            let ts = t0 + i * 1_800_000;
            let h = i as f64 / 2.0;
            *seq += 1;
            e.ingest(&msg(
                *seq,
                ts,
                "power",
                &[
                    ("energy", Some(5_000.0 + 100.0 * h)),
                    ("power", Some(100.0)),
                ],
            ))
            .unwrap();
            *seq += 1;
            e.ingest(&msg(*seq, ts, "packer", &[("output", Some(2.0 * h))]))
                .unwrap();
            *seq += 1;
            let nox = 80.0 + 40.0 * (h / 5.0).sin();
            let flow = 20_000.0 + 5_000.0 * (h / 3.0).cos();
            e.ingest(&msg(
                *seq,
                ts,
                "stack",
                &[("nox", Some(nox)), ("flow", Some(flow))],
            ))
            .unwrap();
        };
        let halfhours = 3 * 48;
        let now = t0 + 4 * 86_400_000;
        let figures = |r: &Report| {
            serde_json::to_value((&r.indicators, &r.periods))
                .unwrap()
                .to_string()
        };
        let kept = {
            let db = crate::store::open_db(&dir.path().join("kept")).unwrap();
            let mut e = AuditEngine::open(&db, &plan).unwrap();
            let mut seq = 0;
            for i in 0..=halfhours {
                feed(&mut e, &mut seq, i);
            }
            let r = e.report(now).unwrap();
            assert!(
                r.indicator("NOx")
                    .and_then(|i| i.baseline.total)
                    .is_some_and(|t| t > 0.0),
                "the NOx load is among the figures compared"
            );
            figures(&r)
        };
        let db_dir = dir.path().join("let-go");
        let mut seq = 0;
        let mut db = crate::store::open_db(&db_dir).unwrap();
        let mut e = AuditEngine::open(&db, &plan).unwrap();
        for i in 0..=halfhours {
            feed(&mut e, &mut seq, i);
            if i % 14 == 13 {
                e.flush().unwrap();
                drop(e);
                db.flush().unwrap();
                drop(db);
                db = crate::store::open_db(&db_dir).unwrap();
                e = AuditEngine::open(&db, &plan).unwrap();
            }
        }
        assert_eq!(figures(&e.report(now).unwrap()), kept);
    }

    /// A single good-quality 0 from the energy meter just before a restart: held in the persisted state, and
    /// after the restart the next reading shows it was a glitch, so nothing is counted twice.
    #[test]
    fn a_glitch_just_before_a_restart_is_not_a_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(dir.path());
        let t0 = plantmeter_common::model::parse_ts_ms("2026-01-01T00:00:00+08:00").unwrap();
        let feed = |e: &mut AuditEngine, range: std::ops::Range<i64>| {
            for i in range {
                let ts = t0 + i * 60_000;
                let energy = if i == 700 {
                    0.0
                } else {
                    5_000.0 + 100.0 * i as f64 / 60.0
                };
                e.ingest(&msg(i as u64, ts, "power", &[("energy", Some(energy))]))
                    .unwrap();
                e.ingest(&msg(
                    i as u64,
                    ts,
                    "packer",
                    &[("output", Some(2.0 * i as f64 / 60.0))],
                ))
                .unwrap();
            }
        };
        {
            let db = crate::store::open_db(&dir.path().join("store")).unwrap();
            let mut e = AuditEngine::open(&db, &plan).unwrap();
            feed(&mut e, 0..701);
            e.flush().unwrap();
        }
        let db = crate::store::open_db(&dir.path().join("store")).unwrap();
        let mut e = AuditEngine::open(&db, &plan).unwrap();
        feed(&mut e, 701..2 * 24 * 60 + 1);
        let r = e.report(t0 + 3 * 86_400_000).unwrap();
        let el = r.indicator("electricity").unwrap();
        assert!(
            (el.baseline.total.unwrap() - 4_800.0).abs() < 1e-6,
            "{:?}",
            el.baseline.total
        );
        let q = r
            .method
            .points
            .iter()
            .find(|p| p.point == "power.energy")
            .unwrap();
        assert_eq!((q.replacements, q.apportioned_hours), (0, 0));
        assert!(
            r.method
                .notes
                .iter()
                .any(|n| n.starts_with("power.energy: 1 low reading not counted")),
            "{:?}",
            r.method.notes
        );
    }

    #[test]
    fn without_an_audit_section_the_engine_is_inert() {
        let dir = tempfile::tempdir().unwrap();
        let mut plan = plan(dir.path());
        plan.audit = None;
        let db = crate::store::open_db(&dir.path().join("store")).unwrap();
        let mut e = AuditEngine::open(&db, &plan).unwrap();
        e.ingest(&msg(1, 0, "packer", &[("output", Some(1.0))]))
            .unwrap();
        e.flush().unwrap();
        let err = e.report(0).unwrap_err().to_string();
        assert!(err.contains("no [audit] section"), "{err}");
    }

    /// A gateway that booted at 1970, a reading stamped 9999 and a value of 1e308: refused, each naming
    /// the point; the store grows by a few chunks, and the totals are those of the plausible readings.
    #[test]
    fn implausible_readings_are_refused_and_bound_memory_and_store() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(dir.path());
        let db = crate::store::open_db(&dir.path().join("store")).unwrap();
        let mut e = AuditEngine::open(&db, &plan).unwrap();
        let hour = 3_600_000;
        let now = plantmeter_common::clock::system_ms() / hour * hour;
        let feed = |e: &mut AuditEngine, ts: i64, v: f64| {
            e.ingest(&msg(1, ts, "power", &[("energy", Some(v))]))
                .unwrap();
        };
        feed(&mut e, 0, 100.0); // 1970
        feed(&mut e, now - 2 * hour, 5_000.0);
        feed(&mut e, now - hour, 5_100.0);
        feed(&mut e, 253_402_300_799_000, 6_000.0); // 9999-12-31
        feed(&mut e, now, 5_200.0);
        feed(&mut e, now + 60_000, 1e308);
        feed(&mut e, now + 120_000, 5_300.0);
        assert_eq!(e.refused(), 3);
        assert!(e.pending.len() <= 2, "{} day blocks", e.pending.len());
        e.flush().unwrap();
        let agg = e.agg.as_ref().unwrap();
        let chunks = agg.chunk_count();
        assert!(chunks <= 2, "{chunks} chunks stored");
        let first = e.grid.hour_index(now - 3 * hour);
        let mut out = vec![HourAgg::default(); 5];
        agg.hours("power.energy", first, &mut out).unwrap();
        let total: f64 = out.iter().map(|h| h.sum).sum();
        assert!((total - 300.0).abs() < 1e-9, "{total}");
        // Restarted, the engine continues from the last plausible reading.
        drop(e);
        let mut e = AuditEngine::open(&db, &plan).unwrap();
        feed(&mut e, now + hour, 5_400.0);
        e.flush().unwrap();
        e.agg
            .as_ref()
            .unwrap()
            .hours("power.energy", first, &mut out)
            .unwrap();
        let total: f64 = out.iter().map(|h| h.sum).sum();
        assert!((total - 400.0).abs() < 1e-9, "{total}");
    }

    /// Under a virtual clock (tests, the demo) the window follows that clock, not the system's.
    #[test]
    fn a_virtual_clock_sets_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(dir.path());
        let db = crate::store::open_db(&dir.path().join("store")).unwrap();
        let t = plantmeter_common::model::parse_ts_ms("2040-01-01T00:00:00Z").unwrap();
        let mut e = AuditEngine::open(&db, &plan)
            .unwrap()
            .with_clock(Clock::virtual_from(t, 1.0));
        e.ingest(&msg(1, t, "power", &[("energy", Some(1.0))]))
            .unwrap();
        assert_eq!(e.refused(), 0);
        let mut e = AuditEngine::open(&db, &plan).unwrap();
        e.ingest(&msg(2, t + 1000, "power", &[("energy", Some(2.0))]))
            .unwrap();
        assert_eq!(e.refused(), 1);
    }

    /// A store poisoned by a far-future reading (written before readings were bounded) does not refuse
    /// every later reading as out of order.
    #[test]
    fn a_stored_future_last_reading_is_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(dir.path());
        let db = crate::store::open_db(&dir.path().join("store")).unwrap();
        let future = plantmeter_common::model::parse_ts_ms("9999-01-01T00:00:00Z").unwrap();
        {
            let mut e = AuditEngine::open(&db, &plan)
                .unwrap()
                .with_clock(Clock::virtual_from(future, 1.0));
            e.ingest(&msg(1, future, "power", &[("energy", Some(1.0))]))
                .unwrap();
            e.flush().unwrap();
        }
        let mut e = AuditEngine::open(&db, &plan).unwrap();
        let now = plantmeter_common::clock::system_ms();
        e.ingest(&msg(2, now, "power", &[("energy", Some(10.0))]))
            .unwrap();
        e.ingest(&msg(3, now + 60_000, "power", &[("energy", Some(12.0))]))
            .unwrap();
        e.flush().unwrap();
        let mut out = vec![HourAgg::default(); 3];
        let h = e.grid.hour_index(now) - 1;
        e.agg
            .as_ref()
            .unwrap()
            .hours("power.energy", h, &mut out)
            .unwrap();
        let total: f64 = out.iter().map(|h| h.sum).sum();
        assert!((total - 2.0).abs() < 1e-9, "{total}");
    }
}
