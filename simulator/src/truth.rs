//! Ground truth: what the plant really consumed, produced and emitted, per local day.
//! Computed from the same integrals the counters show, so it is what a perfect agent measures.

use std::collections::BTreeMap;

use chrono::{DateTime, Days, NaiveDate};
use plantmeter_common::model::format_ts_ms;
use plantmeter_common::plan::Carrier;
use serde::{Deserialize, Serialize};

use crate::engine::Simulation;
use crate::meter::Signal;
use crate::plant::Series;
use crate::scenario::local_midnight_ms;

/// Amounts over one interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Amounts {
    /// Production, in the scenario's production unit (audit meters measuring production).
    pub production: f64,
    /// Consumption per audit carrier (`electricity` kWh, `natural_gas` m3, `water` m3, ...):
    /// the sum of the audit meters measuring it.
    pub carriers: BTreeMap<String, f64>,
    /// Pollutant loads in kg (concentration x the stream's flow), all sources together.
    pub pollutants_kg: BTreeMap<String, f64>,
    /// Each pollutant's load per source (the stream that carries it: `flue_gas`, `flue_gas_2`), kg.
    #[serde(default)]
    pub sources_kg: BTreeMap<String, BTreeMap<String, f64>>,
    /// Each product's quantity in its own unit (audit meters measuring it); `production` is the sum of
    /// factor x quantity. Empty when the scenario has no `[[product]]`.
    #[serde(default)]
    pub products: BTreeMap<String, f64>,
    /// Heating degree-days of the outdoor temperature (base: the weather's `heating_base`): the sum over
    /// the hours of max(0, base - T) / 24. 0 without weather.
    #[serde(default)]
    pub hdd: f64,
    /// Advance of every counter point (`meter.point`), in the point's unit, unwrapped: rollovers
    /// and replacements do not change it.
    pub points: BTreeMap<String, f64>,
}

impl Amounts {
    fn add(&mut self, o: &Amounts) {
        self.production += o.production;
        self.hdd += o.hdd;
        for (map, other) in [
            (&mut self.carriers, &o.carriers),
            (&mut self.pollutants_kg, &o.pollutants_kg),
            (&mut self.points, &o.points),
            (&mut self.products, &o.products),
        ] {
            for (k, v) in other {
                *map.entry(k.clone()).or_insert(0.0) += v;
            }
        }
        for (pollutant, sources) in &o.sources_kg {
            let mine = self.sources_kg.entry(pollutant.clone()).or_default();
            for (k, v) in sources {
                *mine.entry(k.clone()).or_insert(0.0) += v;
            }
        }
    }
}

/// One local day (or the part of it inside the requested interval).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthDay {
    /// Local date, `YYYY-MM-DD`.
    pub date: String,
    /// UTC start and end of the part covered.
    pub from: String,
    pub to: String,
    /// False when the interval cuts the day.
    pub complete: bool,
    #[serde(flatten)]
    pub amounts: Amounts,
}

/// The truth over an interval: per day and in total (the totals are the sums of the days).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    pub scenario: String,
    pub seed: u64,
    /// The plant's UTC offset, which defines the days.
    pub timezone: String,
    pub production_unit: String,
    /// Unit of each carrier.
    pub units: BTreeMap<String, String>,
    pub from: String,
    pub to: String,
    pub days: Vec<TruthDay>,
    pub totals: Amounts,
}

impl Simulation {
    /// Amounts over `[from_ms, to_ms)`.
    pub fn amounts(&self, from_ms: i64, to_ms: i64) -> Amounts {
        let plant = &self.plant;
        let delta = |s: Series| plant.integral(s, to_ms) - plant.integral(s, from_ms);
        let mut a = Amounts::default();
        for (m, spec) in self.meters.iter().zip(&self.scenario.meters) {
            let d = m.measures.share * delta(m.measures.series);
            for (p, s) in m.template.points.iter().zip(&m.signals) {
                if let Signal::Counter { factor } = s {
                    a.points
                        .insert(format!("{}.{}", m.name, p.name), d * factor);
                }
            }
            if !spec.audit {
                continue;
            }
            match m.measures.series {
                Series::Production => a.production += d,
                Series::Product(k) => {
                    let p = &self.scenario.plant.products[k];
                    *a.products.entry(p.name.clone()).or_insert(0.0) += d;
                    a.production += p.factor * d;
                }
                Series::Stream(i) => {
                    let name = &self.scenario.plant.streams[i].name;
                    if Carrier::parse(name).is_some() {
                        *a.carriers.entry(name.clone()).or_insert(0.0) += d;
                    }
                }
                Series::Load(_) | Series::Temperature => {}
            }
        }
        for (i, p) in self.scenario.plant.pollutants.iter().enumerate() {
            let kg = delta(Series::Load(i));
            *a.pollutants_kg.entry(p.name.clone()).or_insert(0.0) += kg;
            let source = self.scenario.plant.streams[p.stream].name.clone();
            *a.sources_kg
                .entry(p.name.clone())
                .or_default()
                .entry(source)
                .or_insert(0.0) += kg;
        }
        a.hdd = plant.heating_degree_days(from_ms, to_ms);
        a
    }

    /// The truth over `[from_ms, to_ms)`, split at the plant's local midnights.
    pub fn truth(&self, from_ms: i64, to_ms: i64) -> Truth {
        let tz = self.scenario.plant.timezone;
        let to_ms = to_ms.max(from_ms);
        let mut days = Vec::new();
        let mut totals = Amounts::default();
        let local = |ms: i64| {
            DateTime::from_timestamp_millis(ms)
                .unwrap_or_default()
                .with_timezone(&tz)
                .date_naive()
        };
        let mut date: NaiveDate = local(from_ms);
        let mut t = from_ms;
        while t < to_ms {
            let next = date
                .checked_add_days(Days::new(1))
                .and_then(|d| local_midnight_ms(d, tz).map(|ms| (d, ms)));
            let Some((next_date, next_ms)) = next else {
                break;
            };
            let end = next_ms.min(to_ms);
            let day_start = local_midnight_ms(date, tz).unwrap_or(t);
            let amounts = self.amounts(t, end);
            totals.add(&amounts);
            days.push(TruthDay {
                date: date.format("%Y-%m-%d").to_string(),
                from: format_ts_ms(t),
                to: format_ts_ms(end),
                complete: t == day_start && end == next_ms,
                amounts,
            });
            t = end;
            date = next_date;
        }
        let mut units = BTreeMap::new();
        for s in &self.scenario.plant.streams {
            if Carrier::parse(&s.name).is_some() {
                units.insert(s.name.clone(), s.unit.clone());
            }
        }
        Truth {
            scenario: self.scenario.name.clone(),
            seed: self.scenario.plant.seed,
            timezone: tz.to_string(),
            production_unit: self.scenario.production_unit.clone(),
            units,
            from: format_ts_ms(from_ms),
            to: format_ts_ms(to_ms),
            days,
            totals,
        }
    }
}
