//! The plant model: production schedule, consumption per stream, pollutant concentrations and loads.
//!
//! Every value is a pure function of (seed, virtual time). Rates are constant within a slot (one
//! hour by default) and derived by hashing the seed, the series and the slot number; totalizers are
//! the exact integral of the rates, kept as cached prefix sums. So a counter can be read at any
//! instant in O(1), and the ground truth is exactly what the counters advanced.

use std::sync::Mutex;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Timelike};

/// Milliseconds in an hour: rates are per hour.
pub const HOUR_MS: f64 = 3_600_000.0;

/// Slots beyond this many after the start carry no flow (bounds the cache: 114 years of hours).
pub const MAX_SLOTS: usize = 1_000_000;

/// Production schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductionSpec {
    /// Output while running, in production units per hour.
    pub rate: f64,
    /// Relative noise of the rate per slot (0.05 = +-5 %).
    pub noise: f64,
    /// Working days, Monday first.
    pub work_days: [bool; 7],
    /// Running hours of a working day, half-open local hours `[start, end)`; end may be 24.
    pub shifts: Vec<(u32, u32)>,
    /// Planned stoppages, half-open local dates.
    pub stoppages: Vec<(NaiveDate, NaiveDate)>,
    /// Expected number of random whole-day stoppages (breakdowns) per year.
    pub random_stoppage_days_per_year: f64,
}

/// A consumed or emitted stream: electricity, natural_gas, water, steam, flue_gas, wastewater...
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSpec {
    pub name: String,
    /// Unit of the stream's quantity (kWh, m3, t).
    pub unit: String,
    /// Flow regardless of production, units per hour.
    pub base: f64,
    /// Units per production unit before the efficiency measure.
    pub specific: f64,
    /// Units per production unit from the measure date on.
    pub specific_after: f64,
    /// Relative noise per slot.
    pub noise: f64,
    /// Heating load: units per hour per kelvin the outdoor temperature is below the weather's
    /// `heating_base` (0 without a weather model).
    pub heating: f64,
}

/// One product of the line (DOMAIN.md, standard product): the line's output is in standard product
/// (the production unit); a product's quantity is its share of that output divided by its factor.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductSpec {
    pub name: String,
    /// Standard-product factor: production unit per unit of this product.
    pub factor: f64,
    /// Mean share of the line's standard output (the shares are normalised per day).
    pub share: f64,
    /// Relative day-to-day variation of the share (0.3 = +-30 %): the mix changes with the orders.
    pub swing: f64,
}

/// Outdoor temperature (C): a seasonal cosine, a daily cosine, a per-day weather offset and a
/// per-slot noise. It moves every stream's `heating` load.
#[derive(Debug, Clone, PartialEq)]
pub struct WeatherSpec {
    /// Annual mean, C.
    pub mean: f64,
    /// Half the difference between the warmest and the coldest day's mean, C.
    pub seasonal_amplitude: f64,
    /// Day of the year (1..=366) of the coldest mean.
    pub coldest_day: f64,
    /// Half the daily swing, C.
    pub daily_amplitude: f64,
    /// Local hour of the day's warmest temperature.
    pub warmest_hour: f64,
    /// Weather of the day (cold spells, warm days): +- this many C, one draw per local day.
    pub day_noise: f64,
    /// Per-slot noise, +- C.
    pub noise: f64,
    /// Base of the heating load (and of the heating degree-days), C.
    pub heating_base: f64,
}

/// A pollutant carried by a stream (flue gas or wastewater).
#[derive(Debug, Clone, PartialEq)]
pub struct PollutantSpec {
    /// Audit name: SO2, NOx, dust, COD, NH3-N, TN, TP...
    pub name: String,
    /// Index into the plant's streams.
    pub stream: usize,
    /// Mean concentration while producing, mg/m3 (flue gas) or mg/L (water).
    pub mean: f64,
    /// Relative noise per slot.
    pub noise: f64,
    /// Concentration factor while the line stands still.
    pub idle_factor: f64,
    /// kg per (concentration unit x m3): 1e-6 for mg/m3, 1e-3 for mg/L.
    pub kg_factor: f64,
}

/// Everything that defines the plant's behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct PlantSpec {
    pub seed: u64,
    /// The plant's local time (shifts, days).
    pub timezone: FixedOffset,
    /// UTC ms of the plant's start (counters hold their start values here; nothing flows before).
    pub start_ms: i64,
    /// Slot length in ms; divides an hour.
    pub slot_ms: i64,
    /// From this instant on, `specific_after` applies.
    pub measure_ms: Option<i64>,
    pub production: ProductionSpec,
    pub streams: Vec<StreamSpec>,
    pub pollutants: Vec<PollutantSpec>,
    /// Products of the line; empty: one product, the production itself.
    pub products: Vec<ProductSpec>,
    /// Outdoor temperature; None: no weather, no heating load.
    pub weather: Option<WeatherSpec>,
}

/// Which series of the plant a quantity comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    Production,
    Stream(usize),
    /// Pollutant load, kg.
    Load(usize),
    /// Quantity of one product, in its own unit.
    Product(usize),
    /// Outdoor temperature, C (its "integral" is degree-hours: not a quantity).
    Temperature,
}

#[derive(Default)]
struct Cache {
    /// Rate per slot of each series (units per hour): production, streams..., loads...
    rates: Vec<Vec<f64>>,
    /// prefix[s][k] = integral of series s from the start to the start of slot k (len = slots + 1).
    prefix: Vec<Vec<f64>>,
    /// Concentration per slot of each pollutant.
    conc: Vec<Vec<f64>>,
}

/// The plant: its spec and the cached prefix sums.
pub struct Plant {
    spec: PlantSpec,
    cache: Mutex<Cache>,
}

/// splitmix64 finaliser: a well-mixed 64-bit hash.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Deterministic noise in [-1, 1) from a seed, a tag (which series) and a slot number.
pub fn noise(seed: u64, tag: u64, k: u64) -> f64 {
    let h = mix(seed ^ mix(tag.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ mix(k)));
    (h >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

/// Deterministic uniform number in [0, 1).
pub fn uniform(seed: u64, tag: u64, k: u64) -> f64 {
    (noise(seed, tag, k) + 1.0) / 2.0
}

/// A stable tag for a name (FNV-1a), so adding a stream does not change the others' noise.
pub fn tag_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Plant {
    pub fn new(spec: PlantSpec) -> Plant {
        Plant {
            spec,
            cache: Mutex::new(Cache::default()),
        }
    }

    pub fn spec(&self) -> &PlantSpec {
        &self.spec
    }

    /// Slot containing `t_ms`, or None before the plant's start. Clamped to [`MAX_SLOTS`].
    fn slot_of(&self, t_ms: i64) -> Option<(usize, i64)> {
        if t_ms < self.spec.start_ms {
            return None;
        }
        let k = ((t_ms - self.spec.start_ms) / self.spec.slot_ms) as usize;
        if k >= MAX_SLOTS {
            return Some((MAX_SLOTS, 0));
        }
        let slot_start = self.spec.start_ms + k as i64 * self.spec.slot_ms;
        Some((k, t_ms - slot_start))
    }

    /// Local date and time of a slot's start.
    fn local(&self, k: usize) -> DateTime<FixedOffset> {
        let ms = self.spec.start_ms + k as i64 * self.spec.slot_ms;
        DateTime::from_timestamp_millis(ms)
            .unwrap_or_default()
            .with_timezone(&self.spec.timezone)
    }

    /// Outdoor temperature (C) of slot k; 0 without a weather model.
    fn temperature(&self, k: usize) -> f64 {
        let Some(w) = &self.spec.weather else {
            return 0.0;
        };
        let local = self.local(k);
        let doy = f64::from(local.ordinal());
        let hour = f64::from(local.hour()) + f64::from(local.minute()) / 60.0;
        let tau = std::f64::consts::TAU;
        let seasonal = -w.seasonal_amplitude * (tau * (doy - w.coldest_day) / 365.25).cos();
        let daily = w.daily_amplitude * (tau * (hour - w.warmest_hour) / 24.0).cos();
        let day_no = local.date_naive().num_days_from_ce() as u64;
        let day = w.day_noise * noise(self.spec.seed, tag_of("weather-day"), day_no);
        let slot = w.noise * noise(self.spec.seed, tag_of("temperature"), k as u64);
        w.mean + seasonal + daily + day + slot
    }

    /// Each product's share of the standard output on the local day of slot k (they sum to 1).
    fn product_shares(&self, k: usize, out: &mut Vec<f64>) {
        out.clear();
        let day_no = self.local(k).date_naive().num_days_from_ce() as u64;
        for p in &self.spec.products {
            let n = noise(self.spec.seed, tag_of(&p.name) ^ 0xA5A5, day_no);
            out.push((p.share * (1.0 + p.swing * n)).max(0.0));
        }
        let total: f64 = out.iter().sum();
        if total > 0.0 {
            out.iter_mut().for_each(|s| *s /= total);
        }
    }

    /// Production rate (units/h) of slot k.
    fn production_rate(&self, k: usize) -> f64 {
        let p = &self.spec.production;
        let local = self.local(k);
        let date = local.date_naive();
        let wd = local.weekday().num_days_from_monday() as usize;
        let hour = local.hour();
        let working = p.work_days[wd] && p.shifts.iter().any(|&(a, b)| hour >= a && hour < b);
        if !working {
            return 0.0;
        }
        if p.stoppages.iter().any(|&(a, b)| date >= a && date < b) {
            return 0.0;
        }
        let day_no = date.num_days_from_ce() as u64;
        let p_stop = (p.random_stoppage_days_per_year / 365.0).clamp(0.0, 1.0);
        if uniform(self.spec.seed, tag_of("stoppage"), day_no) < p_stop {
            return 0.0;
        }
        let n = noise(self.spec.seed, tag_of("production"), k as u64);
        (p.rate * (1.0 + p.noise * n)).max(0.0)
    }

    fn slot_start_ms(&self, k: usize) -> i64 {
        self.spec.start_ms + k as i64 * self.spec.slot_ms
    }

    /// Fill the cache up to and including slot `k`.
    fn extend(&self, cache: &mut Cache, k: usize) {
        let n_streams = self.spec.streams.len();
        let n_series = 1 + n_streams + self.spec.pollutants.len() + self.spec.products.len() + 1;
        if cache.rates.is_empty() {
            cache.rates = vec![Vec::new(); n_series];
            cache.prefix = vec![vec![0.0]; n_series];
            cache.conc = vec![Vec::new(); self.spec.pollutants.len()];
        }
        let slot_h = self.spec.slot_ms as f64 / HOUR_MS;
        let mut stream_rates = vec![0.0; n_streams];
        let mut shares = Vec::with_capacity(self.spec.products.len());
        let heating_base = self.spec.weather.as_ref().map(|w| w.heating_base);
        while cache.rates[0].len() <= k {
            let j = cache.rates[0].len();
            let prod = self.production_rate(j);
            let temp = self.temperature(j);
            // Kelvin below the heating base (0 without weather).
            let cold = heating_base.map_or(0.0, |b| (b - temp).max(0.0));
            let after = self
                .spec
                .measure_ms
                .is_some_and(|m| self.slot_start_ms(j) >= m);
            let mut row = Vec::with_capacity(n_series);
            row.push(prod);
            for (i, s) in self.spec.streams.iter().enumerate() {
                let specific = if after { s.specific_after } else { s.specific };
                let n = noise(self.spec.seed, tag_of(&s.name), j as u64);
                let r =
                    ((s.base + specific * prod + s.heating * cold) * (1.0 + s.noise * n)).max(0.0);
                stream_rates[i] = r;
                row.push(r);
            }
            for (i, p) in self.spec.pollutants.iter().enumerate() {
                let n = noise(self.spec.seed, tag_of(&p.name) ^ 0x5A5A, j as u64);
                let mut c = (p.mean * (1.0 + p.noise * n)).max(0.0);
                if prod <= 0.0 {
                    c *= p.idle_factor;
                }
                cache.conc[i].push(c);
                let flow = stream_rates.get(p.stream).copied().unwrap_or(0.0);
                row.push(c * flow * p.kg_factor);
            }
            self.product_shares(j, &mut shares);
            for (p, share) in self.spec.products.iter().zip(&shares) {
                row.push(prod * share / p.factor);
            }
            row.push(temp);
            for (s, r) in row.into_iter().enumerate() {
                let last = cache.prefix[s].last().copied().unwrap_or(0.0);
                cache.prefix[s].push(last + r * slot_h);
                cache.rates[s].push(r);
            }
        }
    }

    fn series_index(&self, s: Series) -> usize {
        match s {
            Series::Production => 0,
            Series::Stream(i) => 1 + i,
            Series::Load(i) => 1 + self.spec.streams.len() + i,
            Series::Product(i) => 1 + self.spec.streams.len() + self.spec.pollutants.len() + i,
            Series::Temperature => {
                1 + self.spec.streams.len() + self.spec.pollutants.len() + self.spec.products.len()
            }
        }
    }

    fn with_cache<R>(&self, k: usize, f: impl FnOnce(&Cache) -> R) -> R {
        let mut cache = match self.cache.lock() {
            Ok(c) => c,
            // A panic while holding the lock leaves a consistent prefix (pushes are per slot).
            Err(poisoned) => poisoned.into_inner(),
        };
        self.extend(&mut cache, k.min(MAX_SLOTS - 1));
        f(&cache)
    }

    /// Integral of a series from the plant's start to `t_ms` (units, or kg for loads).
    pub fn integral(&self, s: Series, t_ms: i64) -> f64 {
        let Some((k, into)) = self.slot_of(t_ms) else {
            return 0.0;
        };
        let idx = self.series_index(s);
        self.with_cache(k, |c| {
            if k >= MAX_SLOTS {
                return c.prefix[idx][MAX_SLOTS.min(c.prefix[idx].len() - 1)];
            }
            c.prefix[idx][k] + c.rates[idx][k] * into as f64 / HOUR_MS
        })
    }

    /// The rate of a series at `t_ms`, units per hour (0 before the start).
    pub fn rate(&self, s: Series, t_ms: i64) -> f64 {
        match self.slot_of(t_ms) {
            Some((k, _)) if k < MAX_SLOTS => {
                let idx = self.series_index(s);
                self.with_cache(k, |c| c.rates[idx][k])
            }
            _ => 0.0,
        }
    }

    /// Concentration of pollutant `i` at `t_ms` (mg/m3 or mg/L).
    pub fn concentration(&self, i: usize, t_ms: i64) -> f64 {
        let k = match self.slot_of(t_ms) {
            Some((k, _)) if k < MAX_SLOTS => k,
            // Before the start the stack is cold: show the idle level.
            _ => {
                return self
                    .spec
                    .pollutants
                    .get(i)
                    .map_or(0.0, |p| p.mean * p.idle_factor)
            }
        };
        self.with_cache(k, |c| c.conc.get(i).map_or(0.0, |v| v[k]))
    }

    /// Heating degree-days over `[from_ms, to_ms)`: the integral of max(0, heating_base - T) in hours,
    /// divided by 24 (T constant within a slot, so this is DOMAIN.md's sum over hours for hour slots).
    /// 0 without a weather model.
    pub fn heating_degree_days(&self, from_ms: i64, to_ms: i64) -> f64 {
        let Some(base) = self.spec.weather.as_ref().map(|w| w.heating_base) else {
            return 0.0;
        };
        let from_ms = from_ms.max(self.spec.start_ms);
        let mut t = from_ms;
        let mut degree_hours = 0.0;
        while t < to_ms {
            let Some((k, into)) = self.slot_of(t) else {
                break;
            };
            if k >= MAX_SLOTS {
                break;
            }
            let end = (t - into + self.spec.slot_ms).min(to_ms);
            let temp = self.rate(Series::Temperature, t);
            degree_hours += (base - temp).max(0.0) * (end - t) as f64 / HOUR_MS;
            t = end;
        }
        degree_hours / 24.0
    }

    /// Slot number and its start (for per-slot gauge noise).
    pub fn slot_number(&self, t_ms: i64) -> u64 {
        self.slot_of(t_ms).map_or(0, |(k, _)| k as u64 + 1)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    pub(crate) fn spec() -> PlantSpec {
        PlantSpec {
            seed: 1,
            timezone: FixedOffset::east_opt(8 * 3600).unwrap(),
            start_ms: 1_735_660_800_000, // 2025-01-01T00:00:00+08:00
            slot_ms: 3_600_000,
            measure_ms: Some(1_735_660_800_000 + 10 * 86_400_000),
            production: ProductionSpec {
                rate: 10.0,
                noise: 0.1,
                work_days: [true, true, true, true, true, false, false],
                shifts: vec![(8, 16)],
                stoppages: vec![],
                random_stoppage_days_per_year: 0.0,
            },
            streams: vec![StreamSpec {
                name: "electricity".into(),
                unit: "kWh".into(),
                base: 100.0,
                specific: 50.0,
                specific_after: 40.0,
                noise: 0.05,
                heating: 0.0,
            }],
            pollutants: vec![],
            products: vec![],
            weather: None,
        }
    }

    #[test]
    fn integral_is_the_sum_of_rates_and_is_deterministic() {
        let p = Plant::new(spec());
        let q = Plant::new(spec());
        let s = p.spec().start_ms;
        let mut sum = 0.0;
        for h in 0..48 {
            sum += p.rate(Series::Stream(0), s + h * 3_600_000 + 1);
        }
        let i = p.integral(Series::Stream(0), s + 48 * 3_600_000);
        assert!((i - sum).abs() < 1e-9 * sum, "{i} vs {sum}");
        assert_eq!(i, q.integral(Series::Stream(0), s + 48 * 3_600_000));
        // Half a slot is half the slot's rate.
        let a = p.integral(Series::Stream(0), s + 1_800_000);
        assert!((a - p.rate(Series::Stream(0), s) / 2.0).abs() < 1e-9);
        assert_eq!(p.integral(Series::Stream(0), s - 1), 0.0);
    }

    #[test]
    fn production_follows_shifts_and_weekends() {
        let p = Plant::new(spec());
        let s = p.spec().start_ms; // Wednesday 2025-01-01 00:00 local
        assert_eq!(p.rate(Series::Production, s + 3 * 3_600_000), 0.0);
        assert!(p.rate(Series::Production, s + 9 * 3_600_000) > 8.0);
        // Saturday 2025-01-04 10:00 local.
        assert_eq!(
            p.rate(Series::Production, s + (3 * 24 + 10) * 3_600_000),
            0.0
        );
    }

    #[test]
    fn measure_lowers_specific_consumption() {
        let p = Plant::new(spec());
        let s = p.spec().start_ms;
        let day = 86_400_000;
        let before = p.integral(Series::Stream(0), s + 7 * day) - p.integral(Series::Stream(0), s);
        let pb = p.integral(Series::Production, s + 7 * day);
        let after = p.integral(Series::Stream(0), s + 21 * day)
            - p.integral(Series::Stream(0), s + 14 * day);
        let pa = p.integral(Series::Production, s + 21 * day)
            - p.integral(Series::Production, s + 14 * day);
        let base = 100.0 * 24.0 * 7.0;
        assert!((before - base) / pb > (after - base) / pa + 5.0);
    }
}
