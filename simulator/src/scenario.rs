//! Scenario files (TOML): the plant, its streams and pollutants, its meters and their faults.
//! The format is documented in `simulator/README.md`; `scenarios/builtin.toml` is the built-in plant.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime};
use serde::Deserialize;

use crate::fault::{CounterEvent, Fault, FaultPlan, FaultWindow, RandomFault};
use crate::plant::{
    PlantSpec, PollutantSpec, ProductSpec, ProductionSpec, StreamSpec, WeatherSpec,
};
use plantmeter_common::config::{offset_error, parse_offset, Diag};
use plantmeter_common::templates::Template;

/// The built-in plant's scenario text.
pub const BUILTIN: &str = include_str!("../scenarios/builtin.toml");
/// The outfall's aeration blowers and their `[[facility]]` (分表计电), appended to [`BUILTIN`].
pub const WWTP: &str = include_str!("../scenarios/wwtp.toml");

/// A scenario that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ScenarioError(pub String);

/// One simulated meter as the scenario describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct MeterSpec {
    pub name: String,
    /// Built-in template key (`sdm630`).
    pub template: String,
    pub unit_id: u8,
    /// `production`, a stream name, a product name or `weather`.
    pub measures: String,
    /// Fraction of the stream through this meter.
    pub share: f64,
    /// Main counter at the plant's start, in the counter point's unit.
    pub counter_start: f64,
    /// Poll interval written into `--print-agent-config`, seconds.
    pub poll_interval_s: f64,
    /// Whether the meter's main counter is an audit input (false for sub-meters).
    pub audit: bool,
    /// Mean O2 (%) an `o2` point of this meter shows (a stack analyser).
    pub o2_mean: f64,
    /// When set, `counter_start` is chosen so that the main counter wraps at its modulus then (UTC ms).
    pub rollover_at: Option<i64>,
    pub faults: FaultPlan,
    /// The meter whose main counter this meter's is a sub-meter of (the agent config's `[[audit.tree]]`).
    pub parent: Option<String>,
    /// Its main counter is water used again (a cooling loop): `[audit.water] reuse` in the agent config.
    pub reuse: bool,
}

/// `[audit]` values written into the agent config.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditSpec {
    pub baseline: (NaiveDate, NaiveDate),
    pub reporting: Option<(NaiveDate, NaiveDate)>,
    pub granularity: String,
    pub grid_co2_t_per_mwh: f64,
    /// (indicator, I, II, III)
    pub levels: Vec<(String, f64, f64, f64)>,
}

/// A whole simulated plant.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub site: String,
    pub production_unit: String,
    pub plant: PlantSpec,
    pub meters: Vec<MeterSpec>,
    pub facilities: Vec<FacilitySpec>,
    pub audit: AuditSpec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    plant: PlantFile,
    production: ProductionFile,
    #[serde(default)]
    stream: Vec<StreamFile>,
    #[serde(default)]
    pollutant: Vec<PollutantFile>,
    #[serde(default)]
    product: Vec<ProductFile>,
    weather: Option<WeatherFile>,
    #[serde(default)]
    meter: Vec<MeterFile>,
    #[serde(default)]
    facility: Vec<FacilitySpec>,
    audit: AuditFile,
}

/// 分表计电: a production line's meter and the meter of the facility treating its pollution, written
/// into the agent config as `[[audit.facility]]` (their main counters).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FacilitySpec {
    pub name: String,
    pub production: String,
    pub treatment: String,
    pub running_kw: f64,
    pub treatment_running_kw: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductFile {
    name: String,
    #[serde(default = "one")]
    factor: f64,
    #[serde(default = "one")]
    share: f64,
    #[serde(default)]
    swing: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WeatherFile {
    mean: f64,
    #[serde(default)]
    seasonal_amplitude: f64,
    #[serde(default = "coldest_day")]
    coldest_day: f64,
    #[serde(default)]
    daily_amplitude: f64,
    #[serde(default = "warmest_hour")]
    warmest_hour: f64,
    #[serde(default)]
    day_noise: f64,
    #[serde(default)]
    noise: f64,
    #[serde(default = "heating_base")]
    heating_base: f64,
}

fn coldest_day() -> f64 {
    15.0
}
fn warmest_hour() -> f64 {
    14.0
}
fn heating_base() -> f64 {
    18.0
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlantFile {
    name: String,
    #[serde(default = "default_site")]
    site: String,
    #[serde(default = "default_tz")]
    timezone: String,
    start: String,
    #[serde(default = "default_slot")]
    slot_minutes: u32,
    #[serde(default)]
    seed: u64,
    production_unit: String,
    measure_date: Option<String>,
}

fn default_site() -> String {
    "plant-a".into()
}
fn default_tz() -> String {
    "+08:00".into()
}
fn default_slot() -> u32 {
    60
}
fn one() -> f64 {
    1.0
}
fn sixty() -> f64 {
    60.0
}
fn yes() -> bool {
    true
}
fn o2_mean() -> f64 {
    3.5
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductionFile {
    rate: f64,
    #[serde(default)]
    noise: f64,
    work_days: Vec<String>,
    shifts: Vec<[u32; 2]>,
    #[serde(default)]
    stoppages: Vec<[String; 2]>,
    #[serde(default)]
    random_stoppage_days_per_year: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamFile {
    name: String,
    unit: Option<String>,
    #[serde(default)]
    base: f64,
    #[serde(default)]
    specific: f64,
    specific_after: Option<f64>,
    #[serde(default)]
    noise: f64,
    #[serde(default)]
    heating: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PollutantFile {
    name: String,
    stream: String,
    mean: f64,
    #[serde(default)]
    noise: f64,
    #[serde(default = "one")]
    idle_factor: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MeterFile {
    name: String,
    template: String,
    unit_id: u8,
    measures: String,
    #[serde(default = "one")]
    share: f64,
    #[serde(default)]
    counter_start: f64,
    #[serde(default = "sixty")]
    poll_interval_s: f64,
    #[serde(default = "yes")]
    audit: bool,
    #[serde(default = "o2_mean")]
    o2_mean: f64,
    rollover_at: Option<String>,
    #[serde(default)]
    replace_at: Vec<String>,
    #[serde(default)]
    replace_start: f64,
    #[serde(default)]
    fault: Vec<FaultFile>,
    parent: Option<String>,
    #[serde(default)]
    reuse: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultFile {
    kind: String,
    from: Option<String>,
    to: Option<String>,
    rate: Option<f64>,
    code: Option<u8>,
    delay_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditFile {
    baseline: [String; 2],
    reporting: Option<[String; 2]>,
    #[serde(default = "default_granularity")]
    granularity: String,
    #[serde(default = "default_grid")]
    grid_co2_t_per_mwh: f64,
    #[serde(default)]
    level: Vec<LevelFile>,
}

fn default_granularity() -> String {
    "day".into()
}
fn default_grid() -> f64 {
    0.5703
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LevelFile {
    indicator: String,
    #[serde(rename = "I")]
    i: f64,
    #[serde(rename = "II")]
    ii: f64,
    #[serde(rename = "III")]
    iii: f64,
}

/// Parse an RFC 3339 instant, or a local date (its midnight in `tz`), to UTC ms.
pub fn parse_instant(s: &str, tz: FixedOffset) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    local_midnight_ms(d, tz)
}

/// UTC ms of a local date's midnight.
pub fn local_midnight_ms(d: NaiveDate, tz: FixedOffset) -> Option<i64> {
    d.and_time(NaiveTime::MIN)
        .and_local_timezone(tz)
        .single()
        .map(|t| t.timestamp_millis())
}

fn parse_date(s: &str, what: &str) -> Result<NaiveDate, ScenarioError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| ScenarioError(format!("{what}: {s:?} is not a date (YYYY-MM-DD)")))
}

fn weekday(s: &str) -> Option<usize> {
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .position(|d| s.eq_ignore_ascii_case(d))
}

/// The default unit of a stream by name.
fn stream_unit(name: &str) -> &'static str {
    match name {
        "electricity" => "kWh",
        "steam" | "material" => "t",
        "coal" | "diesel" => "kg",
        "heat" => "MJ",
        _ => "m3",
    }
}

impl Scenario {
    /// The built-in plant (a dyeing and finishing mill): no file needed.
    pub fn builtin() -> Scenario {
        // The built-in text is checked by the tests; should it ever fail, that is a build defect.
        match Scenario::from_toml(BUILTIN) {
            Ok(s) => s,
            Err(e) => panic!("built-in scenario is invalid: {e}"),
        }
    }

    /// The built-in plant with the outfall's aeration blowers (meter `blowers`, unit 17) paired with
    /// the dyehouse as facility `wwtp` (分表计电): what the demo runs.
    pub fn builtin_with_wwtp() -> Scenario {
        match Scenario::from_toml(&format!("{BUILTIN}\n{WWTP}")) {
            Ok(s) => s,
            Err(e) => panic!("built-in scenario with wwtp.toml is invalid: {e}"),
        }
    }

    /// Parse and validate a scenario. Errors name the key, meter or value at fault.
    pub fn from_toml(text: &str) -> Result<Scenario, ScenarioError> {
        let f: File = toml::from_str(text).map_err(|e| ScenarioError(e.to_string()))?;
        Scenario::from_file(f)
    }

    /// A scenario file (`--scenario FILE`), read and reported as the agent reads its config
    /// (plantmeter-common): a file that cannot be read or is not UTF-8 and a TOML error as
    /// `FILE:LINE:COL: message`; a value that does not hold as `FILE: message`.
    pub fn load(path: &std::path::Path) -> Result<Scenario, ScenarioError> {
        let text =
            plantmeter_common::config::read_text(path).map_err(|e| ScenarioError(e.to_string()))?;
        let f: File = toml::from_str(&text).map_err(|e| {
            let mut d = Diag::new(path, &text);
            d.error(&e.span(), e.message().trim_end());
            ScenarioError(d.into_errors().to_string())
        })?;
        Scenario::from_file(f).map_err(|e| ScenarioError(format!("{}: {e}", path.display())))
    }

    fn from_file(f: File) -> Result<Scenario, ScenarioError> {
        let tz = parse_offset(&f.plant.timezone)
            .ok_or_else(|| ScenarioError(offset_error("plant.timezone", &f.plant.timezone)))?;
        let start_date = parse_date(&f.plant.start, "plant.start")?;
        let start_ms = local_midnight_ms(start_date, tz)
            .ok_or_else(|| ScenarioError("plant.start: out of range".into()))?;
        if f.plant.slot_minutes == 0 || 60 % f.plant.slot_minutes != 0 {
            return Err(ScenarioError(format!(
                "plant.slot_minutes: {} does not divide an hour (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60)",
                f.plant.slot_minutes
            )));
        }
        let measure_ms = match &f.plant.measure_date {
            Some(s) => Some(parse_instant(s, tz).ok_or_else(|| {
                ScenarioError(format!("plant.measure_date: {s:?} is not a date"))
            })?),
            None => None,
        };
        let p = &f.production;
        let mut work_days = [false; 7];
        for d in &p.work_days {
            let i = weekday(d).ok_or_else(|| {
                ScenarioError(format!("production.work_days: {d:?} is not mon..sun"))
            })?;
            work_days[i] = true;
        }
        for s in &p.shifts {
            if s[0] >= s[1] || s[1] > 24 {
                return Err(ScenarioError(format!(
                    "production.shifts: [{}, {}] is not a range of hours within 0..=24",
                    s[0], s[1]
                )));
            }
        }
        let mut stoppages = Vec::new();
        for s in &p.stoppages {
            stoppages.push((
                parse_date(&s[0], "production.stoppages")?,
                parse_date(&s[1], "production.stoppages")?,
            ));
        }
        if !p.rate.is_finite() || p.rate < 0.0 {
            return Err(ScenarioError("production.rate must be >= 0".into()));
        }
        let mut streams = Vec::new();
        for s in &f.stream {
            if streams.iter().any(|x: &StreamSpec| x.name == s.name) || s.name == "production" {
                return Err(ScenarioError(format!(
                    "stream {:?} is defined twice",
                    s.name
                )));
            }
            streams.push(StreamSpec {
                name: s.name.clone(),
                unit: s
                    .unit
                    .clone()
                    .unwrap_or_else(|| stream_unit(&s.name).to_string()),
                base: s.base,
                specific: s.specific,
                specific_after: s.specific_after.unwrap_or(s.specific),
                noise: s.noise,
                heating: s.heating,
            });
        }
        let mut pollutants = Vec::new();
        for q in &f.pollutant {
            let stream = streams
                .iter()
                .position(|s| s.name == q.stream)
                .ok_or_else(|| {
                    ScenarioError(format!(
                        "pollutant {:?}: unknown stream {:?}",
                        q.name, q.stream
                    ))
                })?;
            if pollutants
                .iter()
                .any(|x: &PollutantSpec| x.name == q.name && x.stream == stream)
            {
                return Err(ScenarioError(format!(
                    "pollutant {:?} is defined twice on stream {:?}",
                    q.name, q.stream
                )));
            }
            let water = matches!(
                q.name.as_str(),
                "COD" | "NH3-N" | "TN" | "TP" | "heavy_metals"
            );
            pollutants.push(PollutantSpec {
                name: q.name.clone(),
                stream,
                mean: q.mean,
                noise: q.noise,
                idle_factor: q.idle_factor,
                kg_factor: if water { 1e-3 } else { 1e-6 },
            });
        }
        let mut products: Vec<ProductSpec> = Vec::new();
        for p in &f.product {
            let taken = p.name == "production"
                || p.name == "weather"
                || streams.iter().any(|s| s.name == p.name)
                || products.iter().any(|x| x.name == p.name);
            if taken || p.name.is_empty() {
                return Err(ScenarioError(format!(
                    "product {:?}: the name is empty, taken by another product or stream, or reserved (production, weather)",
                    p.name
                )));
            }
            let positive = |v: f64| v.is_finite() && v > 0.0;
            if !positive(p.factor) || !positive(p.share) {
                return Err(ScenarioError(format!(
                    "product {:?}: factor and share must be > 0",
                    p.name
                )));
            }
            if !(0.0..1.0).contains(&p.swing) {
                return Err(ScenarioError(format!(
                    "product {:?}: swing {} must be within 0..1",
                    p.name, p.swing
                )));
            }
            products.push(ProductSpec {
                name: p.name.clone(),
                factor: p.factor,
                share: p.share,
                swing: p.swing,
            });
        }
        let weather = f.weather.as_ref().map(|w| WeatherSpec {
            mean: w.mean,
            seasonal_amplitude: w.seasonal_amplitude,
            coldest_day: w.coldest_day,
            daily_amplitude: w.daily_amplitude,
            warmest_hour: w.warmest_hour,
            day_noise: w.day_noise,
            noise: w.noise,
            heating_base: w.heating_base,
        });
        if weather.is_none() {
            if let Some(s) = streams.iter().find(|s| s.heating != 0.0) {
                return Err(ScenarioError(format!(
                    "stream {:?}: heating needs a [weather] section (the outdoor temperature)",
                    s.name
                )));
            }
        }
        let plant = PlantSpec {
            seed: f.plant.seed,
            timezone: tz,
            start_ms,
            slot_ms: i64::from(f.plant.slot_minutes) * 60_000,
            measure_ms,
            production: ProductionSpec {
                rate: p.rate,
                noise: p.noise,
                work_days,
                shifts: p.shifts.iter().map(|s| (s[0], s[1])).collect(),
                stoppages,
                random_stoppage_days_per_year: p.random_stoppage_days_per_year,
            },
            streams,
            pollutants,
            products,
            weather,
        };
        let mut meters: Vec<MeterSpec> = Vec::new();
        for m in f.meter {
            let at = |msg: String| ScenarioError(format!("meter {:?}: {msg}", m.name));
            if m.name.is_empty()
                || !m
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            {
                return Err(at("name must be [a-z0-9_-]".into()));
            }
            if meters.iter().any(|x| x.name == m.name) {
                return Err(at("defined twice".into()));
            }
            if let Some(other) = meters.iter().find(|x| x.unit_id == m.unit_id) {
                return Err(at(format!(
                    "unit_id {} is already used by meter {:?}",
                    m.unit_id, other.name
                )));
            }
            if m.unit_id == 0 || m.unit_id > 247 {
                return Err(at(format!("unit_id {} is outside 1..=247", m.unit_id)));
            }
            Template::builtin(&m.template).map_err(|e| at(e.to_string()))?;
            let known = m.measures == "production"
                || plant.streams.iter().any(|s| s.name == m.measures)
                || plant.products.iter().any(|p| p.name == m.measures)
                || (m.measures == "weather" && plant.weather.is_some());
            if !known {
                return Err(at(format!(
                    "measures {:?}: not \"production\", a stream, a product, nor \"weather\" (with a [weather] section) of the scenario",
                    m.measures
                )));
            }
            if !(m.o2_mean > 0.0 && m.o2_mean < 21.0) {
                return Err(at(format!(
                    "o2_mean {} must be within 0..21 (%)",
                    m.o2_mean
                )));
            }
            if m.poll_interval_s.is_nan() || m.poll_interval_s <= 0.0 {
                return Err(at("poll_interval_s must be > 0".into()));
            }
            let instant = |s: &str, key: &str| {
                parse_instant(s, tz)
                    .ok_or_else(|| at(format!("{key}: {s:?} is neither RFC 3339 nor a date")))
            };
            let mut faults = FaultPlan::default();
            for ff in &m.fault {
                if ff.kind == "off" {
                    // The equipment switched off (not a wire fault): a window only.
                    match (&ff.from, &ff.to, ff.rate) {
                        (Some(a), Some(b), None) => faults
                            .off
                            .push((instant(a, "fault.from")?, instant(b, "fault.to")?)),
                        _ => return Err(at("an off fault needs a window (from, to)".into())),
                    }
                    continue;
                }
                let fault = Fault::from_kind(&ff.kind, ff.code, ff.delay_ms).ok_or_else(|| {
                    at(format!(
                        "fault kind {:?}: use timeout, exception, slow, drop, garbage, stuck, nan, strict_map, extra_registers, short_reply, wrong_unit, wrong_function, wrong_transaction or off (the equipment switched off)",
                        ff.kind
                    ))
                })?;
                match (&ff.from, &ff.to, ff.rate) {
                    (Some(a), Some(b), None) => faults.windows.push(FaultWindow {
                        from_ms: instant(a, "fault.from")?,
                        to_ms: instant(b, "fault.to")?,
                        fault,
                    }),
                    (None, None, Some(rate)) if (0.0..=1.0).contains(&rate) => {
                        if fault == Fault::Stuck {
                            return Err(at(
                                "a stuck fault needs a window (from, to), not a rate".into()
                            ));
                        }
                        faults.random.push(RandomFault { fault, rate })
                    }
                    _ => {
                        return Err(at(format!(
                            "fault {:?}: give either from and to, or a rate within 0..=1",
                            ff.kind
                        )))
                    }
                }
            }
            for r in &m.replace_at {
                faults.add_event(
                    instant(r, "replace_at")?,
                    CounterEvent::Replace {
                        start: m.replace_start,
                    },
                );
            }
            let rollover_at = match &m.rollover_at {
                Some(s) => Some(instant(s, "rollover_at")?),
                None => None,
            };
            meters.push(MeterSpec {
                name: m.name,
                template: m.template,
                unit_id: m.unit_id,
                measures: m.measures,
                share: m.share,
                counter_start: m.counter_start,
                poll_interval_s: m.poll_interval_s,
                audit: m.audit,
                o2_mean: m.o2_mean,
                rollover_at,
                faults,
                parent: m.parent,
                reuse: m.reuse,
            });
        }
        if meters.is_empty() {
            return Err(ScenarioError("the scenario has no [[meter]]".into()));
        }
        for m in &meters {
            if let Some(p) = &m.parent {
                if p == &m.name || !meters.iter().any(|x| &x.name == p) {
                    return Err(ScenarioError(format!(
                        "meter {:?}: parent {p:?} is not another meter of the scenario",
                        m.name
                    )));
                }
            }
        }
        if plant.products.is_empty() {
            if !meters.iter().any(|m| m.measures == "production") {
                return Err(ScenarioError(
                    "no meter measures \"production\": the audit needs a production counter".into(),
                ));
            }
        } else {
            if let Some(m) = meters
                .iter()
                .find(|m| m.audit && m.measures == "production")
            {
                return Err(ScenarioError(format!(
                    "meter {:?}: with [[product]] entries the audit counts the products; measure a product, or set audit = false",
                    m.name
                )));
            }
            if let Some(p) = plant
                .products
                .iter()
                .find(|p| !meters.iter().any(|m| m.audit && m.measures == p.name))
            {
                return Err(ScenarioError(format!(
                    "product {:?}: no audit meter measures it",
                    p.name
                )));
            }
        }
        for fa in &f.facility {
            for m in [&fa.production, &fa.treatment] {
                if !meters.iter().any(|x| &x.name == m) {
                    return Err(ScenarioError(format!(
                        "facility {:?}: no meter {m:?}",
                        fa.name
                    )));
                }
            }
        }
        let a = &f.audit;
        let audit = AuditSpec {
            baseline: (
                parse_date(&a.baseline[0], "audit.baseline")?,
                parse_date(&a.baseline[1], "audit.baseline")?,
            ),
            reporting: match &a.reporting {
                Some(r) => Some((
                    parse_date(&r[0], "audit.reporting")?,
                    parse_date(&r[1], "audit.reporting")?,
                )),
                None => None,
            },
            granularity: a.granularity.clone(),
            grid_co2_t_per_mwh: a.grid_co2_t_per_mwh,
            levels: a
                .level
                .iter()
                .map(|l| (l.indicator.clone(), l.i, l.ii, l.iii))
                .collect(),
        };
        Ok(Scenario {
            name: f.plant.name,
            site: f.plant.site,
            production_unit: f.plant.production_unit,
            plant,
            meters,
            facilities: f.facility,
            audit,
        })
    }

    /// A meter by name, to adjust before `start` (faults, rollover time).
    pub fn meter_mut(&mut self, name: &str) -> Option<&mut MeterSpec> {
        self.meters.iter_mut().find(|m| m.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(from: &str, to: &str) -> String {
        assert!(BUILTIN.contains(from), "{from}");
        match Scenario::from_toml(&BUILTIN.replacen(from, to, 1)) {
            Ok(_) => panic!("{to:?} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_timezone_is_written_as_the_agents_offset() {
        for tz in ["Z", "UTC", "+8:00", "+08:00:00"] {
            let e = error_of("timezone = \"+08:00\"", &format!("timezone = \"{tz}\""));
            assert!(
                e.starts_with(&format!(
                    "plant.timezone \"{tz}\" must be a UTC offset +HH:MM or -HH:MM"
                )),
                "{e}"
            );
        }
        let utc = BUILTIN.replacen("timezone = \"+08:00\"", "timezone = \"+00:00\"", 1);
        assert_eq!(
            Scenario::from_toml(&utc)
                .unwrap()
                .plant
                .timezone
                .local_minus_utc(),
            0
        );
    }

    #[test]
    fn a_scenario_file_is_read_and_reported_as_the_agents_config() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plant.toml");
        let e = Scenario::load(&file).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}:1:1: cannot read the config file: no such file",
                file.display()
            )
        );
        // A TOML error at its line and column (line 2 of the file, the value after `seed = `).
        std::fs::write(&file, "name = \"x\"\nseed = nope\n").unwrap();
        let e = Scenario::load(&file).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:2:8: ", file.display())), "{e}");
        // A value that does not hold: the file named, then what is wrong.
        std::fs::write(&file, BUILTIN.replacen("\"+08:00\"", "\"Z\"", 1)).unwrap();
        let e = Scenario::load(&file).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: plant.timezone \"Z\"", file.display()))
                && e.ends_with("UTC is \"+00:00\""),
            "{e}"
        );
    }

    #[test]
    fn products_weather_and_o2_are_checked() {
        let e = error_of("[weather]\nmean = 17.0", "[unused]\nmean = 17.0");
        assert!(e.contains("unused"), "{e}");
        // Without the [weather] section, the heating load has no temperature to follow.
        let a = BUILTIN.find("[weather]").unwrap();
        let b = a + BUILTIN[a..].find("[[stream]]").unwrap();
        let no_weather = format!("{}{}", &BUILTIN[..a], &BUILTIN[b..]);
        let e = Scenario::from_toml(&no_weather)
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("natural_gas") && e.contains("[weather]")),
            "{e:?}"
        );
        let e = error_of("measures = \"woven\"", "measures = \"production\"");
        assert!(e.contains("packer-woven") && e.contains("product"), "{e}");
        let e = error_of("name = \"woven\"", "name = \"knit\"");
        assert!(e.contains("\"knit\""), "{e}");
        let e = error_of("o2_mean = 5.0", "o2_mean = 25.0");
        assert!(e.contains("stack-2") && e.contains("o2_mean"), "{e}");
        let e = error_of("factor = 0.8", "factor = 0.0");
        assert!(e.contains("woven") && e.contains("factor"), "{e}");
    }
}
