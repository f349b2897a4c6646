//! The audit report from hourly aggregates: indicators, periods, baselines, savings, grades, series.
//!
//! Pure: the hourly aggregates come from a `HourlySource` (the agent reads them from sled), the time from
//! the caller. A report never sees raw readings.

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate};

use crate::audit::baseline::{self, Baseline, Method as ModelMethod, Variables};
use crate::audit::grade::{grade, overall};
use crate::audit::hourly::{HourAgg, HourGrid, VALID_DAY_HOURS};
use crate::audit::indicators::{medium_factor, unit_factor};
use crate::audit::regression;
use crate::audit::report::*;
use crate::model::format_ts_ms;
use crate::plan::{Carrier, DriverTransform, ElectricityMethod, Granularity, Plan, PointRef};
use crate::types::PointKind;

/// Where hourly aggregates come from.
pub trait HourlySource {
    /// Fill `out` with the dense hourly aggregates of `point` for local hours
    /// `first_hour .. first_hour + out.len()` (grid indices); hours without data become `HourAgg::default()`.
    fn hours(
        &mut self,
        point: &PointRef,
        first_hour: i64,
        out: &mut [HourAgg],
    ) -> Result<(), String>;

    /// Spans (UTC ms, inclusive) of `point`'s readings that came from `import` rather than polling.
    fn imported(&mut self, _point: &PointRef) -> Vec<(i64, i64)> {
        Vec::new()
    }

    /// Polling gaps of `point` filled by `import` (UTC ms, exclusive ends), sorted by start: their hours are
    /// imported even where the readings are still apportioned between them.
    fn filled(&mut self, _point: &PointRef) -> Vec<(i64, i64)> {
        Vec::new()
    }
}

/// Where an hour of a point's data came from, in order of precedence (a manual meter's hour is manual even
/// when apportioned).
const POLLED: u8 = 0;
const IMPORTED: u8 = 1;
const APPORTIONED: u8 = 2;
const MANUAL: u8 = 3;

/// What a report is asked for.
#[derive(Debug, Clone, Copy)]
pub struct ReportRequest {
    /// Figures are as of this instant (UTC ms): only completed local hours before it count.
    pub now_ms: i64,
    /// `--from/--to`: replaces the reporting period, or the baseline when no reporting period is configured.
    pub period_override: Option<(NaiveDate, NaiveDate)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    #[error("the configuration has no [audit] section")]
    NoAudit,
    #[error("audit point {0} is not a configured point")]
    UnknownPoint(String),
    #[error("period {from} .. {to} is empty (the end must be after the start)")]
    EmptyPeriod { from: NaiveDate, to: NaiveDate },
    #[error("reading hourly aggregates: {0}")]
    Source(String),
}

/// A valid week needs this many valid days (of 7).
pub const VALID_WEEK_DAYS: usize = 6;

/// The valid-day rule of a month: >= 25 valid days, February >= 23.
pub fn valid_month_days(month: u32) -> usize {
    if month == 2 {
        23
    } else {
        25
    }
}

struct Series1 {
    /// Per hour of the window: amount (counter: consumption; gauge: mean value x 1 h).
    amount: Vec<f64>,
    valid: Vec<bool>,
    /// Whether anything was recorded in the hour (a sample, covered time, apportioned consumption).
    data: Vec<bool>,
    /// `data`, or a gauge hour substituted inside a polling gap: the hours whose amount is part of a total.
    known: Vec<bool>,
    /// Where each hour's data came from (POLLED, IMPORTED, APPORTIONED, MANUAL).
    class: Vec<u8>,
}

struct IndicatorDef {
    key: String,
    total_unit: String,
    /// Indices of the points whose validity the indicator needs (production always included).
    points: Vec<usize>,
    hourly: Vec<f64>,
    /// Per source of a pollutant with several sources: its name, hourly load, and its own points
    /// (concentration, flow) whose data decide whether it has a figure.
    sources: Vec<(String, Vec<f64>, [usize; 2])>,
    /// Sums of `hourly` over the baseline [0] and reporting [1] periods, split by where the data came from
    /// (POLLED, IMPORTED, APPORTIONED, MANUAL): all that provenance needs, without a vector per class.
    by_class: ClassSums,
}

struct BucketDef {
    label: String,
    /// Window indices [a, b).
    a: usize,
    b: usize,
    fraction: f64,
    full: bool,
    /// Month number for the month valid-day rule.
    month: u32,
    /// Hours of the whole bucket (a month's days x 24, 168, 24 or 1), what `fraction` is a share of.
    nominal_hours: usize,
}

/// The baseline and reporting periods of a report (half-open local dates): `override` (`--from/--to`)
/// replaces the reporting period, or the baseline when no reporting period is configured.
pub fn periods(
    audit: &crate::plan::AuditPlan,
    over: Option<(NaiveDate, NaiveDate)>,
) -> ((NaiveDate, NaiveDate), Option<(NaiveDate, NaiveDate)>) {
    match (over, audit.reporting) {
        (Some(o), Some(_)) => (audit.baseline, Some(o)),
        (Some(o), None) => (o, None),
        (None, r) => (audit.baseline, r),
    }
}

/// The warning for a reporting period that shares days with the baseline (half-open periods), naming both
/// by their inclusive days; None when they do not overlap.
pub fn overlap_note(
    baseline: (NaiveDate, NaiveDate),
    reporting: (NaiveDate, NaiveDate),
) -> Option<String> {
    (reporting.0 < baseline.1 && baseline.0 < reporting.1).then(|| {
        format!(
            "the reporting period {} .. {} overlaps the baseline period {} .. {}: over the shared days the savings compare a period with itself",
            reporting.0,
            inclusive_last_day(reporting.1),
            baseline.0,
            inclusive_last_day(baseline.1)
        )
    })
}

/// The last day of a half-open period ending before `end`.
pub fn inclusive_last_day(end: NaiveDate) -> NaiveDate {
    end.pred_opt().unwrap_or(end)
}

/// Compute the report of `plan`'s `[audit]` from hourly aggregates.
pub fn compute(
    plan: &Plan,
    req: &ReportRequest,
    src: &mut dyn HourlySource,
) -> Result<Report, ComputeError> {
    let audit = plan.audit.as_ref().ok_or(ComputeError::NoAudit)?;
    let grid = HourGrid::new(audit.timezone);
    let (baseline_p, reporting_p) = periods(audit, req.period_override);
    let mut notes: Vec<String> = Vec::new();
    // Noted when it changes what the config says (so `verify`, which passes the report's own period, finds
    // the same notes).
    let changed = |o: (NaiveDate, NaiveDate)| match audit.reporting {
        Some(r) => r != o,
        None => audit.baseline != o,
    };
    if let Some(o) = req.period_override.filter(|o| changed(*o)) {
        notes.push(if audit.reporting.is_some() {
            format!(
                "reporting period set on the command line: {} .. {}",
                o.0,
                inclusive_last_day(o.1)
            )
        } else {
            format!(
                "no reporting period configured: the baseline period was set on the command line: {} .. {}",
                o.0,
                inclusive_last_day(o.1)
            )
        });
    }
    if let Some(w) = reporting_p.and_then(|r| overlap_note(baseline_p, r)) {
        notes.push(w);
    }
    for (from, to) in std::iter::once(baseline_p).chain(reporting_p) {
        if to <= from {
            return Err(ComputeError::EmptyPeriod { from, to });
        }
    }
    let day0 = HourGrid::day_of_date(reporting_p.map_or(baseline_p.0, |r| r.0.min(baseline_p.0)));
    let day1 = HourGrid::day_of_date(reporting_p.map_or(baseline_p.1, |r| r.1.max(baseline_p.1)));
    let h_start = day0 * 24;
    let h_end = day1 * 24;
    // Only completed hours count.
    let now_h = grid.hour_index(req.now_ms);
    let elapsed_end = h_end.min(now_h).max(h_start);
    let n = (elapsed_end - h_start) as usize;
    if now_h < h_end {
        notes.push(format!(
            "figures as of {} (the last completed local hour); later hours of the periods are not counted",
            format_ts_ms(grid.hour_start(now_h))
        ));
    }

    // Points of the audit, each loaded once.
    let mut refs: Vec<PointRef> = Vec::new();
    let mut index: HashMap<PointRef, usize> = HashMap::new();
    let mut add = |r: &PointRef, refs: &mut Vec<PointRef>| -> usize {
        *index.entry(r.clone()).or_insert_with(|| {
            refs.push(r.clone());
            refs.len() - 1
        })
    };
    let prod_is: Vec<usize> = audit
        .products
        .iter()
        .map(|p| add(&p.point, &mut refs))
        .collect();
    let driver_is: Vec<usize> = audit
        .drivers
        .iter()
        .map(|d| add(&d.point, &mut refs))
        .collect();
    let input_i: Vec<usize> = audit
        .inputs
        .iter()
        .map(|i| add(&i.point, &mut refs))
        .collect();
    let poll_i: Vec<(usize, usize)> = audit
        .pollutants
        .iter()
        .map(|p| (add(&p.concentration, &mut refs), add(&p.flow, &mut refs)))
        .collect();
    let o2_i: Vec<Option<usize>> = audit
        .pollutants
        .iter()
        .map(|p| p.o2.as_ref().map(|(r, _)| add(r, &mut refs)))
        .collect();
    let measure_i: Vec<Option<usize>> = audit
        .measures
        .iter()
        .map(|m| m.point.as_ref().map(|(r, _)| add(r, &mut refs)))
        .collect();
    let facility_i: Vec<[usize; 2]> = audit
        .facilities
        .iter()
        .map(|f| [add(&f.production, &mut refs), add(&f.treatment, &mut refs)])
        .collect();
    for r in crate::audit::depth_points(audit) {
        add(r, &mut refs);
    }

    let mut series: Vec<Series1> = Vec::with_capacity(refs.len());
    let mut events = Events::default();
    let mut quality: Vec<PointQuality> = Vec::with_capacity(refs.len());
    let base_range = window(baseline_p, h_start, elapsed_end);
    let rep_range = reporting_p.map(|r| window(r, h_start, elapsed_end));
    let periods_of_sums = [Some(base_range), rep_range];
    // One buffer for every point: a year of hours is 200 kB, not worth allocating per point.
    let mut aggs = vec![HourAgg::default(); n];
    for (ri, r) in refs.iter().enumerate() {
        let point = plan
            .point(r)
            .ok_or_else(|| ComputeError::UnknownPoint(r.qualified()))?;
        src.hours(r, h_start, &mut aggs)
            .map_err(ComputeError::Source)?;
        let mut amount = vec![0.0; n];
        let mut valid = vec![false; n];
        let mut data = vec![false; n];
        let mut known = vec![false; n];
        let manual = plan.meters().any(|m| m.manual && m.name == r.meter);
        let imported = src.imported(r);
        let filled = src.filled(r);
        // Spans sorted by start; the latest end among those starting before the hour ends tells whether
        // one of them overlaps the hour.
        let reach: Vec<i64> = filled
            .iter()
            .scan(i64::MIN, |m, &(_, b)| {
                *m = (*m).max(b);
                Some(*m)
            })
            .collect();
        let in_filled = |t: i64| {
            let k = filled.partition_point(|&(a, _)| a < t + 3_600_000);
            k > 0 && reach[k - 1] > t
        };
        let mut class = vec![if manual { MANUAL } else { POLLED }; n];
        let (mut rollovers, mut replacements, mut apportioned, mut glitches) =
            (0u64, 0u64, 0u64, 0u64);
        for (i, a) in aggs.iter().enumerate().take(n) {
            amount[i] = match point.kind {
                PointKind::Counter => a.sum,
                // Mean value x 1 h; NaN marks an hour without data, substituted below.
                PointKind::Gauge => a.gauge_mean().unwrap_or(f64::NAN),
            };
            valid[i] = a.is_valid();
            data[i] = !a.is_empty();
            known[i] = data[i];
            if !manual {
                let t = grid.hour_start(h_start + i as i64);
                if in_filled(t) {
                    class[i] = IMPORTED;
                } else if a.apportioned_ms > 0 {
                    class[i] = APPORTIONED;
                } else if imported.iter().any(|&(f, l)| t + 3_600_000 > f && t <= l) {
                    class[i] = IMPORTED;
                }
            }
            let in_periods = in_range(i, base_range) || rep_range.is_some_and(|rr| in_range(i, rr));
            if in_periods {
                rollovers += u64::from(a.rollovers);
                replacements += u64::from(a.replacements);
                glitches += u64::from(a.glitches);
                if a.replacements > 0 {
                    events.replacements.push(ReplacementEvent {
                        point: r.qualified(),
                        at: format_ts_ms(grid.hour_start(h_start + i as i64)),
                        recorded: false,
                        applied: true,
                    });
                }
                apportioned += u64::from(a.apportioned_ms > 0);
            }
        }
        if point.kind == PointKind::Gauge {
            let had_value: Vec<bool> = amount.iter().map(|v| !v.is_nan()).collect();
            let mut substituted = substitute_gaps(&mut amount);
            if driver_is.contains(&ri) {
                // A driver is a value, not a flow: before its first or after its last reading it is not 0
                // (0 C would be 18 degree-days a day), it takes the nearest hour with data (flagged, and
                // counted against the savings' completeness below).
                substituted.extend(carry_to_the_ends(&mut amount, &had_value));
            }
            for &i in &substituted {
                known[i] = true;
                if !manual {
                    class[i] = APPORTIONED;
                }
            }
            let k = substituted
                .iter()
                .filter(|&&i| {
                    in_range(i, base_range) || rep_range.is_some_and(|rr| in_range(i, rr))
                })
                .count() as u64;
            if k > 0 {
                notes.push(format!(
                    "{}: {k} hours without a reading inside polling gaps were substituted with the mean of the valid \
                     hourly values before and after the gap{} (counted as its apportioned hours)",
                    r.qualified(),
                    if driver_is.contains(&ri) {
                        "; as a regression driver, its hours before its first or after its last reading take the nearest reading"
                    } else {
                        ""
                    }
                ));
            }
            apportioned += k;
        }
        if glitches > 0 {
            notes.push(format!(
                "{}: {glitches} low reading{} not counted (step backs: a drop to at least half the reading before, or a single low reading the next one contradicted); the higher reading stayed the reference",
                r.qualified(),
                if glitches == 1 { "" } else { "s" }
            ));
        }
        events.rollovers += rollovers;
        events.step_backs += glitches;
        quality.push(PointQuality {
            point: r.qualified(),
            completeness_baseline: fraction_valid(&valid, base_range),
            completeness_reporting: rep_range.map(|rr| fraction_valid(&valid, rr)),
            rollovers,
            replacements,
            apportioned_hours: apportioned,
            step_backs: glitches,
            manual: plan.meters().any(|m| m.manual && m.name == r.meter),
        });
        series.push(Series1 {
            amount,
            valid,
            data,
            known,
            class,
        });
    }

    // Indicators.
    let mut factors = Vec::new();
    let mut energy = IndicatorDef::new("energy", "kgce", n, &prod_is);
    let mut co2 = IndicatorDef::new("co2", "kg", n, &prod_is);
    let mut carriers: Vec<(Carrier, IndicatorDef)> = Vec::new();
    for (inp, &pi) in audit.inputs.iter().zip(&input_i) {
        let unit = plan
            .point(&inp.point)
            .map(|p| p.unit.clone())
            .unwrap_or_default();
        let conv = match unit_factor(&unit, inp.carrier) {
            Some(f) => {
                if f != 1.0 {
                    notes.push(format!(
                        "{}: read in {unit}, converted to {} (x {f})",
                        inp.point,
                        inp.carrier.unit()
                    ));
                }
                f
            }
            None => {
                notes.push(format!(
                    "{}: unit {unit:?} is not a known multiple of {}; values taken as {}",
                    inp.point,
                    inp.carrier.unit(),
                    inp.carrier.unit()
                ));
                1.0
            }
        };
        // One indicator per carrier, and per material for carrier "material" (keyed by its name).
        let key = inp
            .material
            .clone()
            .unwrap_or_else(|| inp.carrier.as_str().to_string());
        let c = match carriers
            .iter_mut()
            .position(|(c, d)| *c == inp.carrier && d.key == key)
        {
            Some(k) => k,
            None => {
                carriers.push((
                    inp.carrier,
                    IndicatorDef::new(&key, inp.carrier.unit(), n, &prod_is),
                ));
                carriers.len() - 1
            }
        };
        let amount = &series[pi].amount;
        let car = &mut carriers[c].1;
        car.points.push(pi);
        let is_energy = inp.carrier.is_energy() && inp.kgce_per_unit != 0.0;
        let has_co2 = inp.co2_kg_per_unit != 0.0;
        if is_energy {
            energy.points.push(pi);
        }
        if has_co2 {
            co2.points.push(pi);
        }
        let class = &series[pi].class;
        let (k_energy, k_co2) = (inp.kgce_per_unit, inp.co2_kg_per_unit);
        for (h, &a) in amount.iter().enumerate() {
            let q = a * conv;
            car.hourly[h] += q;
            if is_energy {
                energy.hourly[h] += q * k_energy;
            }
            if has_co2 {
                co2.hourly[h] += q * k_co2;
            }
        }
        let sums = class_sums(amount, class, &periods_of_sums);
        car.by_class.add(&sums, conv);
        if is_energy {
            energy.by_class.add(&sums, conv * k_energy);
        }
        if has_co2 {
            co2.by_class.add(&sums, conv * k_co2);
        }
        factors.push(Factor {
            point: inp.point.qualified(),
            carrier: inp.carrier.as_str().to_string(),
            unit: inp.carrier.unit().to_string(),
            kgce_per_unit: inp.kgce_per_unit,
            co2_kg_per_unit: inp.co2_kg_per_unit,
            source: factor_source(inp.carrier, inp.kgce_per_unit, audit.electricity_method),
        });
    }
    carriers.sort_by(|(a, x), (b, y)| a.cmp(b).then_with(|| x.key.cmp(&y.key)));
    let mut defs: Vec<IndicatorDef> = Vec::new();
    // With at least one input besides the product counters.
    if energy.points.len() > prod_is.len() {
        defs.push(energy);
    }
    defs.extend(carriers.into_iter().map(|(_, d)| d));
    if co2.points.len() > prod_is.len() {
        defs.push(co2);
    }
    // One indicator per pollutant: the sum of its sources (stacks, outfalls), each kept for the report.
    let first_pollutant = defs.len();
    for (p, &(ci, fi)) in audit.pollutants.iter().zip(&poll_i) {
        let k = medium_factor(p.name.medium());
        let load: Vec<f64> = (0..n)
            .map(|h| series[ci].amount[h] * series[fi].amount[h] * k)
            .collect();
        let at = match defs[first_pollutant..]
            .iter()
            .position(|d| d.key == p.name.as_str())
        {
            Some(i) => first_pollutant + i,
            None => {
                defs.push(IndicatorDef::new(p.name.as_str(), "kg", n, &prod_is));
                defs.len() - 1
            }
        };
        let d = &mut defs[at];
        d.points.extend([ci, fi]);
        for (acc, l) in d.hourly.iter_mut().zip(&load) {
            *acc += l;
        }
        // An hour's load is as good as the worse of its two points.
        let class: Vec<u8> = series[ci]
            .class
            .iter()
            .zip(&series[fi].class)
            .map(|(a, b)| *a.max(b))
            .collect();
        d.by_class
            .add(&class_sums(&load, &class, &periods_of_sums), 1.0);
        if let Some(source) = &p.source {
            d.sources.push((source.clone(), load, [ci, fi]));
        }
    }

    // Periods.
    // Production = sum of factor x quantity over the products (DOMAIN.md, standard product).
    let production: Vec<f64> = (0..n)
        .map(|h| {
            audit
                .products
                .iter()
                .zip(&prod_is)
                .map(|(p, &i)| p.factor * series[i].amount[h])
                .sum()
        })
        .collect();
    let production = &production;
    let products_of = |r: (usize, usize)| -> Option<std::collections::BTreeMap<String, f64>> {
        (audit.products.len() >= 2).then(|| {
            audit
                .products
                .iter()
                .zip(&prod_is)
                .map(|(p, &i)| (p.name.clone(), sum(&series[i].amount, r)))
                .collect()
        })
    };
    let completeness = |r: (usize, usize)| -> f64 {
        if quality.is_empty() {
            return 0.0;
        }
        series
            .iter()
            .map(|s| fraction_valid(&s.valid, r))
            .sum::<f64>()
            / series.len() as f64
    };
    let periods = Periods {
        baseline: PeriodSummary {
            from: baseline_p.0.to_string(),
            to: baseline_p.1.to_string(),
            last_day: last_day(baseline_p.1),
            production: sum(production, base_range),
            completeness: completeness(base_range),
            products: products_of(base_range),
        },
        reporting: reporting_p.zip(rep_range).map(|(p, r)| PeriodSummary {
            from: p.0.to_string(),
            to: p.1.to_string(),
            last_day: last_day(p.1),
            production: sum(production, r),
            completeness: completeness(r),
            products: products_of(r),
        }),
    };

    // Models, savings, grades.
    let g = audit.granularity;
    let base_buckets = buckets(g, baseline_p, h_start, elapsed_end);
    let rep_buckets = reporting_p
        .map(|r| buckets(g, r, h_start, elapsed_end))
        .unwrap_or_default();
    let product_names: Vec<String> = audit.products.iter().map(|p| p.name.clone()).collect();
    // A driver without a single reading in the baseline cannot be a regression variable: left out of every
    // candidate (named in the notes) instead of making every baseline bucket incomplete.
    let drivers: Vec<(&crate::plan::AuditDriver, usize)> = audit
        .drivers
        .iter()
        .zip(driver_is.iter().copied())
        .filter(|(d, i)| {
            let seen = series[*i]
                .data
                .get(base_range.0..base_range.1)
                .is_some_and(|s| s.contains(&true));
            if !seen {
                notes.push(format!(
                    "driver {}: no reading of {} in the baseline period; left out of the model's candidates",
                    d.name, d.point
                ));
            }
            seen
        })
        .collect();
    let driver_names: Vec<String> = drivers.iter().map(|(d, _)| d.name.clone()).collect();
    let vars = Variables::new(&product_names, &driver_names);
    let mut drivers_valid = vec![true; n];
    for &(_, p) in &drivers {
        and_into(&mut drivers_valid, &series[p].valid);
    }
    let w = Modelling {
        series: &series,
        production,
        prod_is: &prod_is,
        drivers: &drivers,
        drivers_valid: &drivers_valid,
        vars: &vars,
        g,
        base_buckets: &base_buckets,
        rep_buckets: &rep_buckets,
        min_completeness: audit.min_completeness,
        sufficiency: &audit.sufficiency,
    };
    let mut indicators = Vec::with_capacity(defs.len());
    let mut cusum_all: Vec<(String, Vec<CusumPoint>)> = Vec::new();
    // Graded indicators with the figure they are graded on (reporting period, else baseline).
    let mut graded_figures: Vec<(&crate::plan::AuditLevel, Option<f64>)> = Vec::new();
    let mut energy_series: Option<(Vec<Bucket>, Vec<CusumPoint>)> = None;
    for d in &defs {
        // Point by point over whole vectors (not hour by hour across points): a year of 200 points stays
        // in cache order.
        let mut valid = vec![true; n];
        for &p in &d.points {
            and_into(&mut valid, &series[p].valid);
        }
        // No data is not zero: a period has a total only if some hour has data of every input.
        let mut inputs_valid = vec![true; n];
        for &p in d.points.iter().filter(|p| !prod_is.contains(p)) {
            and_into(&mut inputs_valid, &series[p].data);
        }
        let has_data = |r: (usize, usize)| {
            inputs_valid
                .get(r.0..r.1)
                .is_some_and(|s| s.contains(&true))
        };
        // The hours that carry the total: some input has data (or a substituted gauge value) there. Every
        // hour outside them adds nothing to the total, so the model's expected leaves them out too.
        let mut carried = vec![false; n];
        for &p in d.points.iter().filter(|p| !prod_is.contains(p)) {
            for (c, k) in carried.iter_mut().zip(&series[p].known) {
                *c |= *k;
            }
        }
        // The fit takes complete buckets whose drivers are complete too.
        let fit_valid: Vec<bool> = valid
            .iter()
            .zip(&drivers_valid)
            .map(|(a, b)| *a && *b)
            .collect();
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for b in &base_buckets {
            if bucket_valid(g, b, &fit_valid) {
                x.push(w.row(b));
                y.push(sum(&d.hourly, (b.a, b.b)));
            }
        }
        let excluded = base_buckets.len() - x.len();
        if excluded > 0 {
            notes.push(format!(
                "{}: {excluded} of {} baseline {} buckets left out of the model (incomplete data or partial bucket)",
                d.key,
                base_buckets.len(),
                g.as_str()
            ));
        }
        let b_total = has_data(base_range).then(|| sum(&d.hourly, base_range));
        let b_prod = periods.baseline.production;
        let model = baseline::fit(&vars, &x, &y, b_prod, b_total.unwrap_or(0.0), g);
        let rep = rep_range.map(|rr| {
            let counted = w.rep_rows(&carried, &d.hourly, rr.0);
            let s = baseline::savings(&model, &counted.rows);
            let days_without_data = days_without(&carried, rr);
            let total = has_data(rr).then(|| sum(&d.hourly, rr));
            let prod = sum(production, rr);
            let completeness = fraction_valid(&valid, rr);
            let driver_short = w.driver_shortfall(&model, rr);
            // Nothing to expect over no data: null, not the model's 0 over no hours.
            let expected = b_total.and(total).map(|_| s.expected);
            let (basis, note) = savings_basis(&model, g);
            let (savings, savings_reason) = match (total, expected) {
                (None, _) => (
                    None,
                    Some("no data of this indicator in the reporting period".to_string()),
                ),
                (_, None) => (
                    None,
                    Some("no data of this indicator in the baseline period".to_string()),
                ),
                _ if prod <= 0.0 => (
                    None,
                    Some("no production in the reporting period".to_string()),
                ),
                _ if completeness < audit.min_completeness => (
                    None,
                    Some(format!(
                        "reporting completeness {:.1} % is below min_completeness {:.1} %",
                        completeness * 100.0,
                        audit.min_completeness * 100.0
                    )),
                ),
                _ if driver_short.is_some() => (None, driver_short),
                (Some(t), Some(e)) => (Some(e - t), None),
            };
            (
                ReportingValues {
                    total,
                    per_unit: total.and_then(|t| per_unit(t, prod)),
                    expected,
                    savings,
                    savings_pct: savings
                        .zip(expected)
                        .filter(|(_, e)| *e != 0.0)
                        .map(|(s, e)| 100.0 * s / e),
                    savings_uncertainty_pct: model
                        .fit
                        .as_ref()
                        .zip(savings.zip(expected))
                        .and_then(|(f, (sv, e))| {
                            regression::savings_uncertainty_pct(
                                f,
                                sv,
                                e,
                                counted.with_data,
                                regression::Confidence::Pct90,
                            )
                        }),
                    completeness,
                    savings_reason,
                    savings_yuan: None,
                    provenance: total.and_then(|_| provenance(d, 1)),
                    days_without_data,
                    savings_basis: expected.map(|_| basis),
                    savings_note: expected.and(note),
                },
                s.cusum,
                counted,
            )
        });
        if energy_series.is_none() {
            let mut bs = Vec::new();
            for b in &base_buckets {
                let r = w.row(b);
                bs.push(Bucket {
                    label: b.label.clone(),
                    period: PeriodKind::Baseline,
                    production: r[0],
                    actual: sum(&d.hourly, (b.a, b.b)),
                    fitted: model.predict(&r, b.fraction),
                    complete: bucket_valid(g, b, &valid),
                });
            }
            // Reporting buckets as the savings count them: over their hours with data, none without.
            if let Some((_, _, counted)) = rep.as_ref() {
                for (b, (r, fraction, actual)) in rep_buckets.iter().zip(&counted.rows) {
                    if *fraction > 0.0 {
                        bs.push(Bucket {
                            label: b.label.clone(),
                            period: PeriodKind::Reporting,
                            production: r[0],
                            actual: *actual,
                            fitted: model.predict(r, *fraction),
                            complete: bucket_valid(g, b, &valid),
                        });
                    }
                }
            }
            let cus = rep
                .as_ref()
                .map(|(_, c, _)| {
                    rep_buckets
                        .iter()
                        .zip(c)
                        .map(|(b, &v)| CusumPoint {
                            label: b.label.clone(),
                            cusum: v,
                        })
                        .collect()
                })
                .unwrap_or_default();
            energy_series = Some((bs, cus));
        }
        let base_vals = BaselineValues {
            total: b_total,
            per_unit: b_total.and_then(|t| per_unit(t, b_prod)),
            completeness: fraction_valid(&valid, base_range),
            provenance: b_total.and_then(|_| provenance(d, 0)),
        };
        let figure = match &rep {
            Some((r, _, _)) => r.per_unit,
            None => base_vals.per_unit,
        };
        let graded = audit.levels.iter().find(|l| l.indicator == d.key);
        if let Some(l) = graded {
            graded_figures.push((l, figure));
        }
        let level = graded.and_then(|l| figure.map(|f| grade(f, l)));
        let diagnostics = diagnose(
            &model,
            (&x, &y),
            (&valid, &d.hourly),
            base_range,
            &rep_buckets,
            rep.as_ref().map(|r| &r.2),
            &audit.sufficiency,
        );
        indicators.push((
            d.key.clone(),
            Indicator {
                total_unit: d.total_unit.clone(),
                per_unit_unit: format!("{}/{}", d.total_unit, audit.production_unit),
                baseline: base_vals,
                reporting: rep.map(|(r, c, _)| {
                    cusum_all.push((
                        d.key.clone(),
                        rep_buckets
                            .iter()
                            .zip(&c)
                            .map(|(b, &v)| CusumPoint {
                                label: b.label.clone(),
                                cusum: v,
                            })
                            .collect(),
                    ));
                    r
                }),
                model: Model {
                    diagnostics: Some(diagnostics),
                    ..model_json(&model, g)
                },
                level,
                sources: (!d.sources.is_empty()).then(|| {
                    d.sources
                        .iter()
                        .map(|(name, load, own)| {
                            // A source has a figure when the indicator has one (then the sources add up to
                            // it), or on its own when some hour has data of both its points: a stack never
                            // measured is null, not 0, even when the other stack was.
                            let total = |r: (usize, usize)| {
                                let own_data =
                                    (r.0..r.1).any(|h| own.iter().all(|&p| series[p].data[h]));
                                (has_data(r) || own_data).then(|| sum(load, r))
                            };
                            (
                                name.clone(),
                                SourceTotals {
                                    baseline: PeriodTotal {
                                        total: total(base_range),
                                    },
                                    reporting: rep_range.map(|rr| PeriodTotal { total: total(rr) }),
                                },
                            )
                        })
                        .collect()
                }),
            },
        ));
    }
    for l in &audit.levels {
        if !defs.iter().any(|d| d.key == l.indicator) {
            notes.push(format!(
                "grade thresholds for {:?}: no such indicator in this audit",
                l.indicator
            ));
        }
    }

    // Daily and monthly series.
    let columns: Vec<String> = defs.iter().map(|d| d.key.clone()).collect();
    let mut daily = Vec::new();
    for (period, p, r) in std::iter::once((PeriodKind::Baseline, baseline_p, base_range)).chain(
        reporting_p
            .zip(rep_range)
            .map(|(p, r)| (PeriodKind::Reporting, p, r)),
    ) {
        let mut day = HourGrid::day_of_date(p.0);
        loop {
            let a = (day * 24 - h_start).max(0) as usize;
            let b = (((day + 1) * 24 - h_start) as usize).min(r.1);
            if a >= r.1 {
                break;
            }
            let hours = b - a;
            daily.push(DailyRow {
                date: HourGrid::date_of_day(day).to_string(),
                period,
                production: sum(production, (a, b)),
                values: defs.iter().map(|d| sum(&d.hourly, (a, b))).collect(),
                completeness: if series.is_empty() || hours == 0 {
                    0.0
                } else {
                    series
                        .iter()
                        .map(|s| s.valid[a..b].iter().filter(|v| **v).count() as f64 / hours as f64)
                        .sum::<f64>()
                        / series.len() as f64
                },
            });
            day += 1;
        }
    }
    let mut monthly_per_unit: Vec<MonthlyRow> = Vec::new();
    let mut month_totals: Vec<(String, f64, Vec<f64>)> = Vec::new();
    for row in &daily {
        let m = row.date[..7].to_string();
        match month_totals.last_mut() {
            Some((lm, p, v)) if *lm == m => {
                *p += row.production;
                for (t, x) in v.iter_mut().zip(&row.values) {
                    *t += x;
                }
            }
            _ => month_totals.push((m, row.production, row.values.clone())),
        }
    }
    for (month, p, v) in month_totals {
        monthly_per_unit.push(MonthlyRow {
            per_unit: v.iter().map(|t| per_unit(*t, p)).collect(),
            month,
            production: p,
        });
    }
    let (energy_buckets, energy_cusum) = energy_series.unwrap_or_default();

    // Money: savings of each priced carrier in yuan.
    let price_of = |c: Carrier| audit.prices.iter().find(|(x, _)| *x == c).map(|(_, p)| *p);
    for (key, ind) in indicators.iter_mut() {
        let Some(price) = Carrier::parse(key).and_then(price_of) else {
            continue;
        };
        if let Some(r) = ind.reporting.as_mut() {
            r.savings_yuan = r.savings.map(|s| s * price);
        }
    }

    // Measures: a sub-meter's own baseline model (IPMVP Option B), its savings and their money.
    let mut measures = Vec::with_capacity(audit.measures.len());
    for (m, mi) in audit.measures.iter().zip(&measure_i) {
        let periods = MeasurePeriods {
            base_range,
            rep_range,
            h_start,
            base_production: periods.baseline.production,
        };
        let (out, note) = measure_result(&w, plan, m, *mi, &periods);
        notes.extend(note);
        measures.push(out);
    }

    // Limits and triggers.
    let check_range = rep_range.unwrap_or(base_range);
    let check_period = if rep_range.is_some() {
        "reporting"
    } else {
        "baseline"
    };
    let mut compliance = Compliance::default();
    for ((p, &(ci, _)), o2) in audit.pollutants.iter().zip(&poll_i).zip(&o2_i) {
        let Some(limit) = p.limit else { continue };
        let (mut valid_hours, mut over, mut max) = (0u64, 0u64, None::<f64>);
        for h in check_range.0..check_range.1 {
            let c = &series[ci];
            if !c.valid[h] {
                continue;
            }
            let o2_hour = match (o2, &p.o2) {
                (Some(oi), Some((_, reference))) => {
                    let o = &series[*oi];
                    Some((o.valid[h].then_some(o.amount[h]), *reference))
                }
                _ => None,
            };
            let Some(conv) = converted_hour(c.amount[h], o2_hour) else {
                continue;
            };
            valid_hours += 1;
            if conv > limit {
                over += 1;
            }
            max = Some(max.map_or(conv, |m: f64| m.max(conv)));
        }
        compliance.sources.push(SourceCompliance {
            pollutant: p.name.as_str().to_string(),
            source: p.source_name(),
            limit,
            valid_hours,
            exceedance_hours: over,
            max_converted: max,
            period: check_period.to_string(),
        });
    }
    for permit in &audit.permits {
        let Some(d) = defs.iter().find(|d| d.key == permit.pollutant.as_str()) else {
            continue;
        };
        // Hours of the audit's periods, by local calendar year.
        let mut years: Vec<(i32, f64, i64)> = Vec::new();
        let in_periods =
            |i: usize| in_range(i, base_range) || rep_range.is_some_and(|r| in_range(i, r));
        for i in 0..n {
            if !in_periods(i) {
                continue;
            }
            let year = HourGrid::date_of_day(HourGrid::day_of_hour(h_start + i as i64)).year();
            match years.iter_mut().find(|(y, _, _)| *y == year) {
                Some(e) => {
                    e.1 += d.hourly[i];
                    e.2 += 1;
                }
                None => years.push((year, d.hourly[i], 1)),
            }
        }
        for (year, kg, hours) in years {
            let days_of_year = if NaiveDate::from_ymd_opt(year, 2, 29).is_some() {
                366.0
            } else {
                365.0
            };
            let allowed = permit.t_per_year * (hours as f64 / 24.0) / days_of_year;
            compliance.permits.push(PermitUse {
                pollutant: permit.pollutant.as_str().to_string(),
                year,
                t_per_year: permit.t_per_year,
                total_t: kg / 1000.0,
                share: if allowed > 0.0 {
                    kg / 1000.0 / allowed
                } else {
                    0.0
                },
            });
        }
    }
    if let Some(q) = audit.energy_quota_kgce_per_unit {
        let energy = indicators
            .iter()
            .find(|(k, _)| k == "energy")
            .map(|(_, i)| i);
        compliance.quota = Some(QuotaCheck {
            energy_kgce_per_unit: q,
            baseline_over: energy.and_then(|e| e.baseline.per_unit).map(|v| v > q),
            reporting_over: energy
                .and_then(|e| e.reporting.as_ref())
                .and_then(|r| r.per_unit)
                .map(|v| v > q),
        });
        if energy.is_none() {
            notes.push(
                "energy quota: the audit has no comprehensive energy indicator (no energy input)"
                    .to_string(),
            );
        }
    }
    // 分表计电: per facility and period, from the hourly mean powers.
    for (f, pts) in audit.facilities.iter().zip(&facility_i) {
        let ranges = [("baseline", Some(base_range)), ("reporting", rep_range)];
        for (period, r) in ranges.into_iter().filter_map(|(p, r)| Some((p, r?))) {
            let [prod, treat] =
                [(pts[0], &f.production), (pts[1], &f.treatment)].map(|(si, pr)| {
                    let w = if plan.point(pr).is_some_and(|p| p.unit.trim() == "W") {
                        1e-3
                    } else {
                        1.0
                    };
                    (r.0..r.1)
                        .map(|h| series[si].valid[h].then(|| series[si].amount[h] * w))
                        .collect::<Vec<_>>()
                });
            let first = grid.hour_start(h_start + r.0 as i64);
            compliance
                .facilities
                .push(crate::audit::facility::compliance(
                    f,
                    period,
                    first,
                    &prod,
                    &treat,
                    grid.offset_ms(),
                ));
        }
    }
    compliance.triggers = Triggers {
        over_standard: compliance.sources.iter().any(|s| s.exceedance_hours > 0),
        over_total: compliance.permits.iter().any(|p| p.share > 1.0),
        over_energy_quota: compliance
            .quota
            .as_ref()
            .is_some_and(|q| q.baseline_over == Some(true) || q.reporting_over == Some(true)),
        over_hazardous_waste: None,
    };

    let hours_of = |r: &PointRef| {
        index.get(r).map(|&i| crate::audit::balance::Hours {
            amount: &series[i].amount,
            data: &series[i].data,
        })
    };
    let depth = crate::audit::depth(audit, base_range, rep_range, &hours_of, production);
    compliance.triggers.over_hazardous_waste =
        depth.2.as_ref().and_then(|w| w.hazardous.as_ref()?.over);

    let (cv_max, nmbe_max) = baseline::ashrae14_thresholds(g);
    notes.extend(conventions());
    events.multiplier_changes = crate::audit::multiplier::events(
        plan,
        grid.hour_start(h_start + base_range.0 as i64),
        grid.hour_start(h_start + rep_range.unwrap_or(base_range).1 as i64),
    );
    Ok(Report {
        integrity: None,
        gateway: plan.gateway.id.clone(),
        site: plan.gateway.site.clone(),
        enterprise: plan.gateway.enterprise.clone(),
        industry: plan.gateway.industry.clone(),
        production_unit: audit.production_unit.clone(),
        periods,
        indicators,
        compliance,
        events,
        measures,
        balances: depth.0,
        coverage: depth.1,
        waste: depth.2,
        grade: overall(&graded_figures).map(|o| Grade {
            level: o.level,
            scores: crate::audit::grade::LEVELS
                .iter()
                .zip(o.scores)
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }),
        generated_at: format_ts_ms(req.now_ms),
        method: Method {
            timezone: audit.timezone.to_string(),
            electricity_method: match audit.electricity_method {
                ElectricityMethod::Equivalent => "equivalent".to_string(),
                ElectricityMethod::Equal { .. } => "equal".to_string(),
            },
            grid_co2_t_per_mwh: audit.grid_co2_t_per_mwh,
            grid_factor_year: audit.grid_factor_year,
            factors,
            ashrae14_cv_rmse_max_pct: cv_max,
            ashrae14_nmbe_max_pct: nmbe_max,
            points: quality,
            notes,
        },
        series: Series {
            columns,
            daily,
            monthly_per_unit,
            energy_buckets,
            energy_cusum,
            cusum: cusum_all,
        },
    })
}

/// The conventions every report states.
pub fn conventions() -> Vec<String> {
    vec![
        "counters: a drop to at least half the reading before is a step back (nothing counted, the higher reading stays the reference until the counter passes it); a deeper drop is a rollover when the wrapped delta is at most 10 % of the modulus, otherwise an inferred meter replacement whose new meter is taken to start at zero (never negative consumption)".to_string(),
        "a delta across a polling gap or a non-good reading is apportioned linearly over the gap's hours and does not count as covered time".to_string(),
        "a counter drop is decided at the next good reading: if that reading continues the old sequence (at least the reading before the drop, and less above it than the drop was deep) the low reading was a glitch and is discarded (counted per point), otherwise it is the rollover or replacement it looked like".to_string(),
        "gauges: an hour's value is the mean of the good readings taken within it (HJ 75 hourly average); a covered hour without a reading takes the linear interpolation between the readings around it; an hour without any reading inside a polling gap is substituted with the mean of the valid hourly values before and after the gap (HJ 75-2017 convention for missing hours), flagged as apportioned hours of the point; hours before a point's first or after its last reading are not substituted".to_string(),
        "pollutant load per hour = the hour's mean concentration x the hour's flow volume (a flow counter's apportioned advance, or a flow gauge's hourly mean x 1 h); water mg/L x m3 x 1e-3, flue gas mg/m3 x m3 x 1e-6".to_string(),
        format!("valid hour >= 45 min covered; valid day >= {VALID_DAY_HOURS} valid hours; valid week >= {VALID_WEEK_DAYS} valid days; valid month >= 25 valid days (February 23)"),
        "ASHRAE Guideline 14: monthly thresholds (CV(RMSE) 15 %, NMBE 5 %) also apply to daily and weekly models; hourly 30 % and 10 %; p = the number of the model's coefficients, intercept included (2 for production alone, one more per product or driver of the model), 1 for ratio".to_string(),
        "savings: the model's expected consumption is summed over the days (hours with an hourly model) that carry the indicator's measured total; a day without data adds to neither expected nor actual and is counted as left out".to_string(),
    ]
}

impl IndicatorDef {
    fn new(key: &str, unit: &str, n: usize, prod_is: &[usize]) -> IndicatorDef {
        IndicatorDef {
            key: key.to_string(),
            total_unit: unit.to_string(),
            points: prod_is.to_vec(),
            sources: Vec::new(),
            by_class: ClassSums::default(),
            hourly: vec![0.0; n],
        }
    }
}

fn factor_source(c: Carrier, k: f64, m: ElectricityMethod) -> String {
    let default = match (c, m) {
        (Carrier::Electricity, ElectricityMethod::Equal { .. }) => false,
        _ => (k - c.default_kgce_per_unit()).abs() < 1e-12,
    };
    if default {
        "default (GB/T 2589-2020)".to_string()
    } else {
        "configured".to_string()
    }
}

fn model_json(m: &Baseline, g: Granularity) -> Model {
    let (method, reason) = match &m.method {
        ModelMethod::Regression => (BaselineMethod::Regression, None),
        ModelMethod::Ratio(r) => (BaselineMethod::Ratio, Some(r.clone())),
    };
    let names: Vec<String> = std::iter::once("intercept".to_string())
        .chain(m.variables.iter().cloned())
        .collect();
    let (p_values, p_value, r2_adj) = match &m.fit {
        Some(f) => (
            names
                .iter()
                .cloned()
                .zip(f.p_values.iter().copied())
                .collect(),
            f.p_value,
            f.r2_adj,
        ),
        None => (Vec::new(), None, None),
    };
    Model {
        granularity: g.as_str().to_string(),
        method,
        reason,
        n: m.stats.n,
        intercept: m.intercept(),
        slope: m.slope(),
        r2: m.stats.r2,
        cv_rmse_pct: m.stats.cv_rmse_pct,
        nmbe_pct: m.stats.nmbe_pct,
        meets_ashrae14: m.meets_ashrae14,
        coefficients: names
            .into_iter()
            .zip(m.coefficients.iter().copied())
            .collect(),
        variables: m.variables.clone(),
        p_values,
        p_value,
        r2_adj,
        valid: m.fit.is_some(),
        diagnostics: None,
        candidates: m
            .candidates
            .iter()
            .map(|t| ModelCandidate {
                variables: t.variables.clone(),
                r2_adj: t.fit.as_ref().and_then(|f| f.r2_adj),
                p_value: t.fit.as_ref().and_then(|f| f.p_value),
                valid: t.valid(),
                reason: t.invalid_because.clone(),
            })
            .collect(),
    }
}

/// The model's diagnostics (issue #29 item 4): the baseline's whole days (with data when >= VALID_DAY_HOURS
/// valid hours), the reporting buckets as the savings count them.
fn diagnose(
    model: &Baseline,
    (x, y): (&[Vec<f64>], &[f64]),
    (valid, hourly): (&[bool], &[f64]),
    base_range: (usize, usize),
    rep_buckets: &[BucketDef],
    counted: Option<&RepRows>,
    rules: &crate::audit::diagnostics::SufficiencyRules,
) -> crate::audit::diagnostics::ModelDiagnostics {
    use crate::audit::diagnostics::{self, ReportingBucket};
    let r = base_range.0..base_range.1;
    let daily: Vec<Option<f64>> = valid[r.clone()]
        .chunks_exact(24)
        .zip(hourly[r].chunks_exact(24))
        .map(|(v, h)| {
            (v.iter().filter(|b| **b).count() >= VALID_DAY_HOURS).then(|| h.iter().sum::<f64>())
        })
        .collect();
    let rep: Option<Vec<ReportingBucket<'_>>> = counted.map(|c| {
        rep_buckets
            .iter()
            .zip(&c.rows)
            .map(|(b, (row, fraction, _))| ReportingBucket {
                row,
                fraction: *fraction,
                days: fraction * b.nominal_hours as f64 / 24.0,
            })
            .collect()
    });
    diagnostics::diagnose(model, x, y, &daily, rep.as_deref(), rules)
}

/// Per period (baseline, reporting), the sum of an hourly series by the class of each hour.
#[derive(Debug, Default, Clone, Copy)]
struct ClassSums([[f64; 4]; 2]);

impl ClassSums {
    fn add(&mut self, o: &ClassSums, k: f64) {
        for (a, b) in self.0.iter_mut().zip(&o.0) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y * k;
            }
        }
    }
}

/// Sums of `v` over each period's hours, by the class of each hour.
fn class_sums(v: &[f64], class: &[u8], periods: &[Option<(usize, usize)>; 2]) -> ClassSums {
    let mut out = ClassSums::default();
    for (acc, r) in out.0.iter_mut().zip(periods) {
        let Some((a, b)) = *r else { continue };
        let (v, class) = (&v[a..b], &class[a..b]);
        match class.first() {
            // Usually every hour of a point has one class (all polled): a plain sum.
            Some(&c0) if class.iter().all(|c| *c == c0) => {
                acc[usize::from(c0)] += v.iter().sum::<f64>()
            }
            _ => {
                for (x, c) in v.iter().zip(class) {
                    acc[usize::from(*c)] += x;
                }
            }
        }
    }
    out
}

/// Shares of an indicator's total over a period (0 baseline, 1 reporting) by where its data came from; None
/// when the total is zero.
fn provenance(d: &IndicatorDef, period: usize) -> Option<Provenance> {
    let parts: Vec<f64> = d.by_class.0[period].iter().map(|c| c.abs()).collect();
    let total: f64 = parts.iter().sum();
    (total > 0.0).then(|| Provenance {
        polled: parts[usize::from(POLLED)] / total,
        imported: parts[usize::from(IMPORTED)] / total,
        apportioned: parts[usize::from(APPORTIONED)] / total,
        manual: parts[usize::from(MANUAL)] / total,
    })
}

/// The converted concentration of one valid hour of a source (DOMAIN.md "Limits and triggers"): with
/// O2 `(its hour's mean when valid, the reference %)`, None when that hour is not valid or at 21 % or
/// more; None when the result is not finite. The report's limits and the agent's alarms both use it.
pub fn converted_hour(conc: f64, o2: Option<(Option<f64>, f64)>) -> Option<f64> {
    let v = match o2 {
        Some((o2, reference)) => crate::units::o2_corrected(conc, o2?, reference)?,
        None => conc,
    };
    v.is_finite().then_some(v)
}

/// The converted concentration (折算浓度) at a reference O2: C x (21 - O2_ref) / (21 - O2)
/// ([`crate::units::o2_corrected`]); NaN where that has none (O2 at 21 % or more).
pub fn converted_concentration(c: f64, o2: f64, o2_reference: f64) -> f64 {
    crate::units::o2_corrected(c, o2, o2_reference).unwrap_or(f64::NAN)
}

/// A driver's value over a bucket's hours (`amounts`: a gauge's hourly means or a counter's hourly sums).
/// Degree-days per DOMAIN.md: sum over hours of max(0, base - T) / 24 (HDD) or max(0, T - base) / 24 (CDD).
fn driver_value(t: DriverTransform, amounts: &[f64]) -> f64 {
    let known = amounts.iter().copied().filter(|v| v.is_finite());
    match t {
        DriverTransform::Hdd { base } => known.map(|v| (base - v).max(0.0)).sum::<f64>() / 24.0,
        DriverTransform::Cdd { base } => known.map(|v| (v - base).max(0.0)).sum::<f64>() / 24.0,
        DriverTransform::Sum => known.sum(),
        DriverTransform::Mean => {
            let (s, k) = known.fold((0.0, 0usize), |(s, k), v| (s + v, k + 1));
            if k > 0 {
                s / k as f64
            } else {
                0.0
            }
        }
    }
}

fn per_unit(total: f64, production: f64) -> Option<f64> {
    if production > 0.0 {
        Some(total / production)
    } else {
        None
    }
}

/// Window indices [a, b) of a period, clipped to the elapsed window.
fn window(p: (NaiveDate, NaiveDate), h_start: i64, elapsed_end: i64) -> (usize, usize) {
    let a = (HourGrid::day_of_date(p.0) * 24).clamp(h_start, elapsed_end);
    let b = (HourGrid::day_of_date(p.1) * 24).clamp(h_start, elapsed_end);
    ((a - h_start) as usize, (b - h_start) as usize)
}

/// Fill each run of NaN hours that has a value on both sides with the mean of those two values (HJ 75-2017:
/// a missing hour takes the mean of the valid hours before and after the gap); runs at either end become 0
/// (before a point's first reading or after its last, nothing is known). Returns the substituted indices.
pub fn substitute_gaps(v: &mut [f64]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut before: Option<f64> = None;
    let mut i = 0;
    while i < v.len() {
        if !v[i].is_nan() {
            before = Some(v[i]);
            i += 1;
            continue;
        }
        let start = i;
        while i < v.len() && v[i].is_nan() {
            i += 1;
        }
        let fill = match (before, v.get(i)) {
            (Some(b), Some(&a)) => {
                out.extend(start..i);
                (a + b) / 2.0
            }
            _ => 0.0,
        };
        v[start..i].fill(fill);
    }
    out
}

/// `acc[h] &= v[h]` for every hour.
fn and_into(acc: &mut [bool], v: &[bool]) {
    for (a, b) in acc.iter_mut().zip(v) {
        *a &= *b;
    }
}

/// Fill the hours before the first and after the last hour with data with the value of that hour (a gauge
/// that is a regression driver: its value goes on, unlike a flow). Returns the filled indices.
fn carry_to_the_ends(v: &mut [f64], data: &[bool]) -> Vec<usize> {
    let (Some(first), Some(last)) = (data.iter().position(|d| *d), data.iter().rposition(|d| *d))
    else {
        return Vec::new();
    };
    let (a, b) = (v[first], v[last]);
    v[..first].fill(a);
    v[last + 1..].fill(b);
    (0..first).chain(last + 1..v.len()).collect()
}

/// What the model stages share, indicators and measures alike: the window's hourly series, production, the
/// regression's variables and drivers, and the model buckets of both periods.
struct Modelling<'a> {
    series: &'a [Series1],
    production: &'a [f64],
    prod_is: &'a [usize],
    drivers: &'a [(&'a crate::plan::AuditDriver, usize)],
    /// Per hour: every driver valid.
    drivers_valid: &'a [bool],
    vars: &'a Variables,
    g: Granularity,
    base_buckets: &'a [BucketDef],
    rep_buckets: &'a [BucketDef],
    min_completeness: f64,
    sufficiency: &'a crate::audit::diagnostics::SufficiencyRules,
}

impl Modelling<'_> {
    /// A row of variables over some spans of hours: production, the products' quantities (two or more),
    /// the drivers.
    fn row_of(&self, spans: &[(usize, usize)]) -> Vec<f64> {
        let over = |v: &[f64]| spans.iter().map(|&r| sum(v, r)).sum::<f64>();
        let mut r = Vec::with_capacity(self.vars.names.len());
        r.push(over(self.production));
        if self.vars.products > 0 {
            r.extend(self.prod_is.iter().map(|&i| over(&self.series[i].amount)));
        }
        for &(d, i) in self.drivers {
            let hours: Vec<f64> = spans
                .iter()
                .flat_map(|&(a, b)| self.series[i].amount[a..b].iter().copied())
                .collect();
            r.push(driver_value(d.transform, &hours));
        }
        r
    }

    /// A whole bucket's row of variables.
    fn row(&self, b: &BucketDef) -> Vec<f64> {
        self.row_of(&[(b.a, b.b)])
    }

    /// The reporting buckets as the model sees them (DOMAIN.md "Honest figures": no savings from no data):
    /// each over its hours that carry the total (`carried`) from window index `from` on.
    fn rep_rows(&self, carried: &[bool], hourly: &[f64], from: usize) -> RepRows {
        let mut out = RepRows::default();
        for b in self.rep_buckets {
            let spans = carried_spans(self.g, b, carried, from);
            let hours: usize = spans.iter().map(|(a, b)| b - a).sum();
            out.hours += hours;
            out.with_data += usize::from(hours > 0);
            out.rows.push((
                self.row_of(&spans),
                hours as f64 / b.nominal_hours as f64,
                spans.iter().map(|&r| sum(hourly, r)).sum(),
            ));
        }
        out
    }

    /// The expected consumption is computed from the model's drivers too: their data count. Why savings
    /// over window range `r` are not claimed because of a driver, if they are not.
    fn driver_shortfall(&self, model: &Baseline, r: (usize, usize)) -> Option<String> {
        model
            .variables
            .iter()
            .filter_map(|v| self.drivers.iter().find(|(d, _)| &d.name == v))
            .map(|&(d, i)| (&d.name, fraction_valid(&self.series[i].valid, r)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .filter(|(_, c)| *c < self.min_completeness)
            .map(|(name, c)| {
                format!(
                    "the model's driver {name} has {:.1} % of the reporting period's hours, below min_completeness {:.1} %",
                    c * 100.0,
                    self.min_completeness * 100.0
                )
            })
    }
}

/// Where a measure's figures are taken: the periods' window ranges, the window's first hour, the
/// baseline's production (for the ratio method).
struct MeasurePeriods {
    base_range: (usize, usize),
    rep_range: Option<(usize, usize)>,
    h_start: i64,
    base_production: f64,
}

/// A measure's savings from its sub-meter's own baseline model (IPMVP Option B) and their money, by the
/// indicators' rules (DOMAIN.md "Honest figures"): from the day it went into service (inclusive) to the
/// reporting period's end, over the days its sub-meter has data, withheld below `min_completeness`, without
/// production or with a thin driver. With a note for the report when its model is the ratio method.
fn measure_result(
    w: &Modelling<'_>,
    plan: &Plan,
    m: &crate::plan::AuditMeasure,
    mi: Option<usize>,
    p: &MeasurePeriods,
) -> (MeasureResult, Option<String>) {
    let mut out = MeasureResult {
        name: m.name.clone(),
        in_service: m.in_service.to_string(),
        investment_yuan: m.investment_yuan,
        indicator: m.point.as_ref().map(|(_, c)| c.as_str().to_string()),
        ..MeasureResult::default()
    };
    let (Some((r, carrier)), Some(mi)) = (&m.point, mi) else {
        out.reason = Some("no sub-meter: whole-plant savings (IPMVP Option C) only".to_string());
        return (out, None);
    };
    let Some(rr) = p.rep_range else {
        out.reason = Some("no reporting period".to_string());
        return (out, None);
    };
    let (series, g) = (w.series, w.g);
    let unit = plan.point(r).map(|p| p.unit.clone()).unwrap_or_default();
    let conv = unit_factor(&unit, *carrier).unwrap_or(1.0);
    let meter = &series[mi];
    let hourly: Vec<f64> = meter.amount.iter().map(|a| a * conv).collect();
    let products_valid = |h: usize| w.prod_is.iter().all(|&p| series[p].valid[h]);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    let fit_valid: Vec<bool> = (0..hourly.len())
        .map(|h| meter.valid[h] && products_valid(h) && w.drivers_valid[h])
        .collect();
    for b in w.base_buckets {
        if bucket_valid(g, b, &fit_valid) {
            x.push(w.row(b));
            y.push(sum(&hourly, (b.a, b.b)));
        }
    }
    let model = baseline::fit(
        w.vars,
        &x,
        &y,
        p.base_production,
        sum(&hourly, p.base_range),
        g,
    );
    let from_h = (HourGrid::day_of_date(m.in_service) * 24 - p.h_start).max(0) as usize;
    let from_h = from_h.max(rr.0);
    if from_h >= rr.1 {
        out.reason = Some(format!(
            "in service {}: no elapsed day of the reporting period from then on",
            m.in_service
        ));
        return (out, None);
    }
    let span = (from_h, rr.1);
    out.counted_from =
        Some(HourGrid::date_of_day(HourGrid::day_of_hour(p.h_start + from_h as i64)).to_string());
    let has_data = meter.data[span.0..span.1].contains(&true)
        && meter.data[p.base_range.0..p.base_range.1].contains(&true);
    if !has_data {
        out.reason = Some(format!(
            "no data of {} in service and baseline periods",
            r.qualified()
        ));
        return (out, None);
    }
    out.days_without_data = days_without(&meter.known, span);
    let rep_valid: Vec<bool> = (0..hourly.len())
        .map(|h| meter.valid[h] && products_valid(h))
        .collect();
    let completeness = fraction_valid(&rep_valid, span);
    let withheld = if sum(w.production, span) <= 0.0 {
        Some("no production in the reporting period".to_string())
    } else if completeness < w.min_completeness {
        Some(format!(
            "reporting completeness {:.1} % is below min_completeness {:.1} %",
            completeness * 100.0,
            w.min_completeness * 100.0
        ))
    } else {
        w.driver_shortfall(&model, span)
    };
    if withheld.is_some() {
        out.reason = withheld;
        return (out, None);
    }
    let counted = w.rep_rows(&meter.known, &hourly, from_h);
    let s = baseline::savings(&model, &counted.rows);
    out.savings = Some(s.savings);
    out.diagnostics = Some(diagnose(
        &model,
        (&x, &y),
        (&fit_valid, &hourly),
        p.base_range,
        w.rep_buckets,
        Some(&counted),
        w.sufficiency,
    ));
    let (basis, note) = savings_basis(&model, g);
    out.savings_basis = Some(basis);
    out.savings_note = note;
    let price = plan
        .audit
        .as_ref()
        .and_then(|a| a.prices.iter().find(|(c, _)| c == carrier))
        .map(|(_, p)| *p);
    if let Some(price) = price {
        let yuan = s.savings * price;
        out.savings_yuan = Some(yuan);
        // A year's savings scaled from the days that were counted.
        let days = counted.hours as f64 / 24.0;
        let per_year = yuan * 365.0 / days.max(1e-9);
        out.payback_years = (per_year > 0.0).then(|| m.investment_yuan / per_year);
    } else {
        out.reason = Some(format!(
            "no price for {} in [audit.prices]",
            carrier.as_str()
        ));
    }
    let note = match &model.method {
        ModelMethod::Ratio(why) => Some(format!("measure {:?}: ratio method ({why})", m.name)),
        ModelMethod::Regression => None,
    };
    (out, note)
}

/// The reporting buckets as a model's savings count them: one `(row of variables, fraction of a full bucket,
/// actual)` per bucket (a bucket without data: zeros, so it adds to neither side), with the hours counted and
/// how many buckets have any.
#[derive(Debug, Default)]
struct RepRows {
    rows: Vec<(Vec<f64>, f64, f64)>,
    hours: usize,
    with_data: usize,
}

/// The spans of a bucket's hours that count for savings (DOMAIN.md "Honest figures"): from window index `from`
/// on, an hourly model's hour when it carries data; otherwise each day of the bucket with at least one hour
/// that carries data, whole (a day's production and intercept belong together). Window index 0 is a local
/// midnight and buckets of a day or longer start at one, so steps of 24 are days.
fn carried_spans(
    g: Granularity,
    b: &BucketDef,
    carried: &[bool],
    from: usize,
) -> Vec<(usize, usize)> {
    let step = if g == Granularity::Hour { 1 } else { 24 };
    let mut out: Vec<(usize, usize)> = Vec::new();
    let mut a = b.a;
    while a < b.b {
        let e = (a + step).min(b.b);
        let s = a.max(from);
        if s < e && carried[s..e].contains(&true) {
            match out.last_mut() {
                Some(last) if last.1 == s => last.1 = e,
                _ => out.push((s, e)),
            }
        }
        a = e;
    }
    out
}

/// Elapsed local days of the window range `r` (day-aligned start) without an hour that carries data.
fn days_without(carried: &[bool], r: (usize, usize)) -> u64 {
    let hours = carried.get(r.0..r.1).unwrap_or(&[]);
    hours.chunks(24).filter(|d| !d.contains(&true)).count() as u64
}

/// What savings from `m` rest on, and with a weak model or the ratio method why they are weaker evidence.
fn savings_basis(m: &Baseline, g: Granularity) -> (SavingsBasis, Option<String>) {
    match &m.method {
        ModelMethod::Ratio(why) => (
            SavingsBasis::Ratio,
            Some(format!(
                "ratio method, no valid regression ({why}): expected = baseline consumption per unit x reporting production, without uncertainty"
            )),
        ),
        ModelMethod::Regression if !m.meets_ashrae14 => {
            let (cv_max, nmbe_max) = baseline::ashrae14_thresholds(g);
            let pct = |v: Option<f64>| v.map_or_else(|| "–".to_string(), |v| format!("{v:.1}"));
            (
                SavingsBasis::WeakModel,
                Some(format!(
                    "the baseline model does not meet ASHRAE Guideline 14 (CV(RMSE) {} % against {cv_max} %, NMBE {} % against ±{nmbe_max} %): indicative savings",
                    pct(m.stats.cv_rmse_pct),
                    pct(m.stats.nmbe_pct)
                )),
            )
        }
        ModelMethod::Regression => (SavingsBasis::ValidModel, None),
    }
}

/// The last day of a half-open period ending before `to` (`YYYY-MM-DD`).
fn last_day(to: NaiveDate) -> Option<String> {
    Some(inclusive_last_day(to).to_string())
}

fn in_range(i: usize, r: (usize, usize)) -> bool {
    i >= r.0 && i < r.1
}

/// Sum of a range; `+ 0.0` turns the `-0.0` that summing nothing gives into `0.0` (no "-0.0" in reports).
fn sum(v: &[f64], r: (usize, usize)) -> f64 {
    v.get(r.0..r.1).map_or(0.0, |s| s.iter().sum::<f64>() + 0.0)
}

fn fraction_valid(valid: &[bool], r: (usize, usize)) -> f64 {
    let n = r.1.saturating_sub(r.0);
    if n == 0 {
        return 0.0;
    }
    valid[r.0..r.1].iter().filter(|v| **v).count() as f64 / n as f64
}

/// The model buckets of a period: local hours, days, 7-day weeks from the period start, or calendar months,
/// clipped to the period and to the elapsed hours.
fn buckets(
    g: Granularity,
    p: (NaiveDate, NaiveDate),
    h_start: i64,
    elapsed_end: i64,
) -> Vec<BucketDef> {
    let mut out = Vec::new();
    let (pa, pb) = (
        HourGrid::day_of_date(p.0) * 24,
        HourGrid::day_of_date(p.1) * 24,
    );
    let mut start = pa;
    while start < pb && start < elapsed_end {
        let date = HourGrid::date_of_day(HourGrid::day_of_hour(start));
        let (nominal_end, nominal_hours, label) = match g {
            Granularity::Hour => (
                start + 1,
                1,
                format!("{}T{:02}", date, start.rem_euclid(24)),
            ),
            Granularity::Day => (start + 24, 24, date.to_string()),
            Granularity::Week => (start + 168, 168, date.to_string()),
            Granularity::Month => {
                let first = date.with_day(1).unwrap_or(date);
                let next = first
                    .checked_add_months(chrono::Months::new(1))
                    .unwrap_or(first);
                let len = (next - first).num_days() * 24;
                (
                    HourGrid::day_of_date(next) * 24,
                    len,
                    format!("{:04}-{:02}", date.year(), date.month()),
                )
            }
        };
        let end = nominal_end.min(pb).min(elapsed_end);
        out.push(BucketDef {
            label,
            a: (start - h_start) as usize,
            b: (end - h_start) as usize,
            fraction: (end - start) as f64 / nominal_hours as f64,
            full: end - start == nominal_hours,
            month: date.month(),
            nominal_hours: nominal_hours as usize,
        });
        start = nominal_end.min(pb);
    }
    out
}

/// A bucket enters the baseline fit when it is whole and its data are complete by the valid-hour/day/month rules.
fn bucket_valid(g: Granularity, b: &BucketDef, valid: &[bool]) -> bool {
    if !b.full {
        return false;
    }
    let valid_days = || {
        valid[b.a..b.b]
            .chunks(24)
            .filter(|d| d.iter().filter(|v| **v).count() >= VALID_DAY_HOURS)
            .count()
    };
    match g {
        Granularity::Hour => valid[b.a],
        Granularity::Day => valid_days() == 1,
        Granularity::Week => valid_days() >= VALID_WEEK_DAYS,
        Granularity::Month => valid_days() >= valid_month_days(b.month),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_empty_range_sums_to_positive_zero() {
        // A reporting period with no data yet must read 0.0, not -0.0, in the report JSON.
        let s = super::sum(&[1.0, 2.0], (2, 2));
        assert_eq!(s, 0.0);
        assert!(s.is_sign_positive());
        assert_eq!(serde_json::to_string(&s).unwrap(), "0.0");
        assert_eq!(super::sum(&[1.0, 2.0], (0, 2)), 3.0);
    }
}
