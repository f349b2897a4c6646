//! A simulated meter: a template's register map filled from the plant model, with its faults.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use plantmeter_common::codec::encode_point;
use plantmeter_common::plan::Point;
use plantmeter_common::types::{DataType, PointKind, RegisterKind};

use crate::fault::{CounterEvent, FaultPlan};
use crate::modbus::ILLEGAL_DATA_ADDRESS;
use crate::plant::{noise, tag_of, Plant, Series};
use plantmeter_common::templates::Template;

/// Where a point's value comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Signal {
    /// The meter's totalizer: start + share x integral of its series, in the point's unit (x factor).
    Counter { factor: f64 },
    /// A counter that does not move (export energy of a consumer), in the point's unit.
    IdleCounter(f64),
    /// The meter's flow rate: share x rate of its series, per hour, x factor.
    Rate { factor: f64 },
    /// A phase current derived from the active power, A.
    Current,
    /// A pollutant concentration x factor (unit conversion, e.g. mg/m3 -> ppb).
    Concentration { pollutant: usize, factor: f64 },
    /// 1 while the production line runs, else 0.
    Running,
    /// A level with a little noise per slot: mean and relative noise.
    Level { mean: f64, noise: f64 },
    /// The plant's outdoor temperature, C.
    Temperature,
}

/// What a meter measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measures {
    pub series: Series,
    /// Fraction of the series through this meter.
    pub share: f64,
}

/// Counts of what the meter did on the wire (all transports together).
#[derive(Debug, Default)]
pub struct MeterStats {
    pub requests: AtomicU64,
    pub replies: AtomicU64,
    pub exceptions: AtomicU64,
    pub timeouts: AtomicU64,
    pub drops: AtomicU64,
    pub garbage: AtomicU64,
}

/// A snapshot of [`MeterStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MeterCounts {
    pub requests: u64,
    pub replies: u64,
    pub exceptions: u64,
    pub timeouts: u64,
    pub drops: u64,
    pub garbage: u64,
}

impl MeterStats {
    pub fn snapshot(&self) -> MeterCounts {
        MeterCounts {
            requests: self.requests.load(Ordering::Relaxed),
            replies: self.replies.load(Ordering::Relaxed),
            exceptions: self.exceptions.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            drops: self.drops.load(Ordering::Relaxed),
            garbage: self.garbage.load(Ordering::Relaxed),
        }
    }
}

/// One simulated meter.
pub struct SimMeter {
    pub name: String,
    pub unit_id: u8,
    pub template: Template,
    pub measures: Measures,
    /// Start value of the main counters at the plant's start, in each point's unit.
    pub counter_start: f64,
    pub signals: Vec<Signal>,
    pub faults: Mutex<FaultPlan>,
    pub stats: MeterStats,
    pub(crate) tag: u64,
}

/// Factor from a stream's unit to a counter point's unit.
fn counter_factor(stream_unit: &str, point_unit: &str) -> f64 {
    match (stream_unit, point_unit) {
        ("kWh", "Wh") => 1000.0,
        ("kWh", "MWh") => 0.001,
        ("t", "kg") => 1000.0,
        ("m3", "L") => 1000.0,
        _ => 1.0,
    }
}

/// Factor from a stream's rate (unit per hour) to a rate point's unit.
fn rate_factor(stream_unit: &str, point_unit: &str) -> f64 {
    match (stream_unit, point_unit) {
        ("kWh", "W") => 1000.0,
        ("kWh", "MW") => 0.001,
        ("m3", "m3/s") => 1.0 / 3600.0,
        ("m3", "L/s") => 1000.0 / 3600.0,
        ("t", "kg/h") => 1000.0,
        _ => 1.0,
    }
}

/// Molar mass of a gas for ppm/ppb conversions (g/mol); NOx counts as NO2.
fn molar_mass(pollutant: &str) -> Option<f64> {
    match pollutant {
        "SO2" => Some(64.06),
        "NOx" => Some(46.01),
        "CO" => Some(28.01),
        _ => None,
    }
}

/// The plant's pollutant name a point name stands for (`nh3n` -> `NH3-N`).
fn pollutant_of(point: &str) -> Option<&'static str> {
    Some(match point {
        "so2" => "SO2",
        "nox" => "NOx",
        "dust" => "dust",
        "co" => "CO",
        "cod" => "COD",
        "nh3n" => "NH3-N",
        "tn" => "TN",
        "tp" => "TP",
        _ => return None,
    })
}

/// Choose the signal of each point from its name and unit (the templates use these names).
pub fn signal_for(
    p: &Point,
    stream_name: &str,
    stream_unit: &str,
    pollutants: &[(usize, &str)],
    o2_mean: f64,
) -> Signal {
    let name = p.name.as_str();
    if stream_name == "weather" {
        return match name {
            "temperature" => Signal::Temperature,
            "humidity" => Signal::Level {
                mean: 70.0,
                noise: 0.15,
            },
            _ => Signal::Level {
                mean: 0.0,
                noise: 0.0,
            },
        };
    }
    if let Some(pol) = pollutant_of(name) {
        if let Some(&(idx, _)) = pollutants.iter().find(|(_, n)| *n == pol) {
            // mg/m3 at 0 C -> ppm: x 22.4 / M; ppb x 1000.
            let factor = match (p.unit.as_str(), molar_mass(pol)) {
                ("ppm", Some(m)) => 22.4 / m,
                ("ppb", Some(m)) => 22.4 / m * 1000.0,
                _ => 1.0,
            };
            return Signal::Concentration {
                pollutant: idx,
                factor,
            };
        }
        return Signal::Level {
            mean: 0.0,
            noise: 0.0,
        };
    }
    match name {
        "energy_export" | "energy_reverse" => return Signal::IdleCounter(0.0),
        "running" => return Signal::Running,
        n if n.starts_with("current") => return Signal::Current,
        _ => {}
    }
    if p.kind == PointKind::Counter {
        return Signal::Counter {
            factor: counter_factor(stream_unit, &p.unit),
        };
    }
    match name {
        "total_power" | "power" | "flow_rate" | "flow_std" | "rate" => Signal::Rate {
            factor: rate_factor(stream_unit, &p.unit),
        },
        // Working volume at about 300 kPa gauge: a quarter of the standard volume.
        "flow_work" => Signal::Rate { factor: 0.25 },
        "voltage_l1" | "voltage_l2" | "voltage_l3" => Signal::Level {
            mean: 230.0,
            noise: 0.01,
        },
        n if n.starts_with("voltage_l") => Signal::Level {
            mean: 400.0,
            noise: 0.01,
        },
        "power_factor" => Signal::Level {
            mean: 0.92,
            noise: 0.01,
        },
        "frequency" => Signal::Level {
            mean: 50.0,
            noise: 0.001,
        },
        "o2" => Signal::Level {
            mean: o2_mean,
            noise: 0.1,
        },
        "temperature" if stream_name == "flue_gas" => Signal::Level {
            mean: 135.0,
            noise: 0.03,
        },
        "temperature" => Signal::Level {
            mean: 20.0,
            noise: 0.05,
        },
        "pressure" => Signal::Level {
            mean: 300.0,
            noise: 0.02,
        },
        "ph" => Signal::Level {
            mean: 7.2,
            noise: 0.03,
        },
        "velocity" => Signal::Level {
            mean: 1.2,
            noise: 0.1,
        },
        _ => Signal::Level {
            mean: 0.0,
            noise: 0.0,
        },
    }
}

impl SimMeter {
    /// The meter's fault plan. A panic elsewhere while it was held leaves it as it was: the
    /// simulator goes on serving rather than poisoning every later request.
    pub fn faults(&self) -> MutexGuard<'_, FaultPlan> {
        match self.faults.lock() {
            Ok(f) => f,
            Err(e) => e.into_inner(),
        }
    }

    /// The raw (unwrapped, un-replaced) totalizer of a counter point at `t_ms`.
    fn raw_counter(&self, plant: &Plant, factor: f64, t_ms: i64) -> f64 {
        self.counter_start
            + self.measures.share * plant.integral(self.measures.series, t_ms) * factor
    }

    /// The value point `i` shows at `t_ms`, in the point's unit, before any fault.
    pub fn value(&self, plant: &Plant, i: usize, t_ms: i64) -> f64 {
        let p = &self.template.points[i];
        let slot = plant.slot_number(t_ms);
        // Switched off (FaultPlan::off): no power, and the counters do not advance over those windows.
        let off = self.faults().off.clone();
        let is_off = off.iter().any(|&(a, b)| a <= t_ms && t_ms < b);
        let counted = |factor: f64, t: i64| {
            let skipped: f64 = off
                .iter()
                .filter(|&&(a, _)| a < t)
                .map(|&(a, b)| {
                    self.raw_counter(plant, factor, b.min(t)) - self.raw_counter(plant, factor, a)
                })
                .sum();
            self.raw_counter(plant, factor, t) - skipped
        };
        match self.signals[i] {
            Signal::Rate { .. } | Signal::Current if is_off => 0.0,
            Signal::Counter { factor } => {
                let raw = counted(factor, t_ms);
                let faults = self.faults();
                let shown = match faults.last_event(t_ms) {
                    Some((te, CounterEvent::Replace { start })) => {
                        start + raw - counted(factor, te)
                    }
                    None => raw,
                };
                match p.rollover {
                    Some(m) if m > 0.0 => shown.rem_euclid(m),
                    _ => shown,
                }
            }
            Signal::IdleCounter(v) => v,
            Signal::Rate { factor } => {
                self.measures.share * plant.rate(self.measures.series, t_ms) * factor
            }
            Signal::Current => {
                let kw = self.measures.share * plant.rate(self.measures.series, t_ms);
                kw * 1000.0 / (3.0 * 230.0 * 0.92)
            }
            Signal::Concentration { pollutant, factor } => {
                plant.concentration(pollutant, t_ms) * factor
            }
            Signal::Temperature => plant.rate(Series::Temperature, t_ms),
            Signal::Running => {
                if plant.rate(Series::Production, t_ms) > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Signal::Level { mean, noise: rel } => {
                let n = noise(plant.spec().seed, self.tag ^ tag_of(&p.name), slot);
                mean * (1.0 + rel * n)
            }
        }
    }

    /// The main counter's value at `t_ms` (the first counter point), if the meter has one.
    pub fn main_counter(&self, plant: &Plant, t_ms: i64) -> Option<(String, f64)> {
        self.signals
            .iter()
            .position(|s| matches!(s, Signal::Counter { .. }))
            .map(|i| {
                (
                    self.template.points[i].name.clone(),
                    self.value(plant, i, t_ms),
                )
            })
    }

    /// The `[start, end)` each point of one register table occupies.
    fn point_ranges(&self, kind: RegisterKind) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.template
            .points
            .iter()
            .filter(move |p| p.register == kind)
            .map(move |p| {
                let w = if kind.is_bit() {
                    1
                } else {
                    p.data_type.words()
                };
                (u32::from(p.address), u32::from(p.address) + u32::from(w))
            })
    }

    /// The address span `[lo, hi)` of one register table, or None when the meter has none.
    pub fn span(&self, kind: RegisterKind) -> Option<(u32, u32)> {
        let mut it = self.point_ranges(kind);
        let first = it.next()?;
        Some(it.fold(first, |(lo, hi), (a, b)| (lo.min(a), hi.max(b))))
    }

    /// True when every register (bit) of `[start, start+count)` belongs to some point.
    pub fn fully_mapped(&self, kind: RegisterKind, start: u16, count: u16) -> bool {
        (u32::from(start)..u32::from(start) + u32::from(count)).all(|a| {
            self.point_ranges(kind)
                .any(|(lo, hi)| (lo..hi).contains(&a))
        })
    }

    fn check_span(&self, kind: RegisterKind, start: u16, count: u16) -> Result<(), u8> {
        match self.span(kind) {
            Some((lo, hi))
                if u32::from(start) >= lo && u32::from(start) + u32::from(count) <= hi =>
            {
                Ok(())
            }
            _ => Err(ILLEGAL_DATA_ADDRESS),
        }
    }

    /// Registers `[start, start+count)` of a register table at `t_ms`; gaps inside the map read 0.
    /// `nan`: float points read NaN. Err(exception code) when the range leaves the map.
    pub fn read_registers(
        &self,
        plant: &Plant,
        kind: RegisterKind,
        start: u16,
        count: u16,
        t_ms: i64,
        nan: bool,
    ) -> Result<Vec<u16>, u8> {
        self.check_span(kind, start, count)?;
        let mut out = vec![0u16; usize::from(count)];
        let (lo, hi) = (i64::from(start), i64::from(start) + i64::from(count));
        for (i, p) in self.template.points.iter().enumerate() {
            if p.register != kind {
                continue;
            }
            let w = usize::from(p.data_type.words());
            let a = i64::from(p.address);
            if a + w as i64 <= lo || a >= hi {
                continue;
            }
            let v = if nan && p.data_type.is_float() {
                f64::NAN
            } else {
                self.value(plant, i, t_ms)
            };
            let mut buf = [0u16; 4];
            if encode_point(p, v, &mut buf[..w]).is_err() {
                // A value the type cannot hold (a negative reading in an unsigned register):
                // the meter shows zero rather than garbage.
                buf = [0; 4];
            }
            for (j, word) in buf.iter().take(w).enumerate() {
                let addr = a + j as i64;
                if addr >= lo && addr < hi {
                    out[(addr - lo) as usize] = *word;
                }
            }
        }
        Ok(out)
    }

    /// Bits `[start, start+count)` of a bit table at `t_ms`.
    pub fn read_bits(
        &self,
        plant: &Plant,
        kind: RegisterKind,
        start: u16,
        count: u16,
        t_ms: i64,
    ) -> Result<Vec<bool>, u8> {
        self.check_span(kind, start, count)?;
        let mut out = vec![false; usize::from(count)];
        for (i, p) in self.template.points.iter().enumerate() {
            if p.register != kind || p.data_type != DataType::Bool {
                continue;
            }
            if p.address >= start && u32::from(p.address) < u32::from(start) + u32::from(count) {
                out[usize::from(p.address - start)] = self.value(plant, i, t_ms) != 0.0;
            }
        }
        Ok(out)
    }
}
