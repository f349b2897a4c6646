//! The audit report model: serialized exactly as CONTRACT.md "Report JSON" (plus extra fields, which the
//! contract allows), and rendered to CSV and HTML by the agent. Totals in the indicator's `total_unit`,
//! per-unit figures in `per_unit_unit` (total unit per production unit).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub gateway: String,
    pub site: String,
    /// `[gateway] enterprise` and `industry`; null when not configured.
    #[serde(default)]
    pub enterprise: Option<String>,
    #[serde(default)]
    pub industry: Option<String>,
    pub production_unit: String,
    pub periods: Periods,
    /// Keyed as the contract says: `energy`, one per carrier (`electricity`, `natural_gas`, `water`, ...),
    /// `co2`, one per pollutant (`COD`, `SO2`, ...). Order is kept: energy, carriers, co2, pollutants.
    #[serde(with = "ordered_map")]
    pub indicators: Vec<(String, Indicator)>,
    /// Limits and triggers (双超, 能耗限额): DOMAIN.md "Limits and triggers".
    #[serde(default)]
    pub compliance: Compliance,
    /// Rollovers, step backs and meter replacements.
    #[serde(default)]
    pub events: Events,
    /// Cleaner-production measures with their savings, money and payback.
    #[serde(default)]
    pub measures: Vec<MeasureResult>,
    /// Meter-tree and water balances; null without a meter tree, reuse or water points.
    #[serde(default)]
    pub balances: Option<crate::audit::balance::Balances>,
    /// The metering ledger and coverage (配备率); null without `[[audit.ledger]]` or `[[audit.coverage]]`.
    #[serde(default)]
    pub coverage: Option<crate::audit::coverage::Coverage>,
    /// Solid and hazardous waste; null without `[[audit.waste]]`.
    #[serde(default)]
    pub waste: Option<crate::audit::waste::Waste>,
    /// The enterprise's overall grade (DOMAIN.md "Overall grade"); null without grade thresholds.
    #[serde(default)]
    pub grade: Option<Grade>,
    /// When the report was computed (RFC 3339 UTC).
    pub generated_at: String,
    /// Factors, conventions and data quality: what a consultant needs to trust the figures.
    pub method: Method,
    /// Series for charts and the CSV's second table.
    pub series: Series,
    /// The SHA-256 of this report's canonical JSON (without `integrity`, keys sorted) and its ed25519
    /// signature with `[report] sign_key_file`; null until sealed.
    #[serde(default)]
    pub integrity: Option<Integrity>,
}

impl Report {
    /// The indicator under `key` (`energy`, `electricity`, `co2`, `COD`...), if the report has one.
    pub fn indicator(&self, key: &str) -> Option<&Indicator> {
        self.indicators
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, i)| i)
    }

    /// [`Report::indicator`], to change.
    pub fn indicator_mut(&mut self, key: &str) -> Option<&mut Indicator> {
        self.indicators
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, i)| i)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Integrity {
    /// Lower-case hex.
    pub sha256: String,
    /// Lower-case hex of the 64-byte ed25519 signature of the SHA-256 digest's hex string; null unsigned.
    pub signature: Option<String>,
    /// Lower-case hex of the signing key's public key, to name which key signed (trust comes from the
    /// verifier's own copy of it, not from this field).
    #[serde(default)]
    pub public_key: Option<String>,
}

/// Emission limits per source, permitted totals per year, the energy quota, and the three triggers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Compliance {
    pub sources: Vec<SourceCompliance>,
    pub permits: Vec<PermitUse>,
    pub quota: Option<QuotaCheck>,
    pub triggers: Triggers,
    /// 分表计电 (`[[audit.facility]]`): per facility and period.
    #[serde(default)]
    pub facilities: Vec<FacilityCompliance>,
}

/// A production line and its treatment facility over one period, counted per local hour from the
/// hourly mean powers (`audit::facility`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FacilityCompliance {
    pub name: String,
    /// `baseline` or `reporting`.
    pub period: String,
    /// Hours production ran with both powers known.
    pub production_hours: f64,
    /// Hours production ran and treatment did not, beyond the grace time.
    pub treatment_off_hours: f64,
    /// Hours production ran and treatment ran under `low_ratio` of its usual power; null without
    /// `low_ratio`.
    pub treatment_low_hours: Option<f64>,
    /// Hours of the period with either power unknown (not counted either way).
    pub unknown_hours: f64,
}

/// One source with an emission-standard limit, over the reporting period (the baseline without one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceCompliance {
    pub pollutant: String,
    /// The source's name; the pollutant's name when it has a single source.
    pub source: String,
    /// Limit of the hourly converted concentration (mg/m3 or mg/L).
    pub limit: f64,
    pub valid_hours: u64,
    pub exceedance_hours: u64,
    /// Highest hourly converted concentration; null without a valid hour.
    pub max_converted: Option<f64>,
    /// The period checked: `reporting` or `baseline`.
    #[serde(default)]
    pub period: String,
}

/// A pollutant's emissions against its permitted total in one calendar year.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PermitUse {
    pub pollutant: String,
    pub year: i32,
    pub t_per_year: f64,
    /// Emitted in that year within the audit's periods (t).
    pub total_t: f64,
    /// total / (permit x days covered / days of the year): above 1 is over the permitted total.
    pub share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaCheck {
    pub energy_kgce_per_unit: f64,
    /// Null without a per-unit energy figure in the period.
    pub baseline_over: Option<bool>,
    pub reporting_over: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Triggers {
    pub over_standard: bool,
    pub over_total: bool,
    pub over_energy_quota: bool,
    /// Hazardous waste at or above 100 t a year (004); null without a hazardous waste point or its data.
    #[serde(default)]
    pub over_hazardous_waste: Option<bool>,
}

/// A level of the cleaner-production indicator system (清洁生产等级): `I` (international leading), `II`
/// (domestic advanced), `III` (domestic basic), or `below III`; serialized as these strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Level {
    #[serde(rename = "I")]
    I,
    #[serde(rename = "II")]
    II,
    #[serde(rename = "III")]
    III,
    #[serde(rename = "below III")]
    BelowIII,
}

impl Level {
    /// The three levels, best first.
    pub const ALL: [Level; 3] = [Level::I, Level::II, Level::III];

    /// As in the JSON: `I`, `II`, `III`, `below III`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::I => "I",
            Level::II => "II",
            Level::III => "III",
            Level::BelowIII => "below III",
        }
    }
}

/// How an indicator's baseline is modelled: an OLS `regression`, or the `ratio` method (per unit of
/// product) where no regression is valid; serialized as these strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BaselineMethod {
    Regression,
    Ratio,
}

/// Which period a day or a model bucket belongs to; serialized `baseline`, `reporting`, `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeriodKind {
    Baseline,
    Reporting,
    Other,
}

impl PeriodKind {
    /// As in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            PeriodKind::Baseline => "baseline",
            PeriodKind::Reporting => "reporting",
            PeriodKind::Other => "other",
        }
    }
}

/// The overall grade: `I`, `II`, `III` or `below III`, and the weighted scores Y_I, Y_II, Y_III (0..100).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grade {
    pub level: Level,
    pub scores: std::collections::BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Periods {
    pub baseline: PeriodSummary,
    pub reporting: Option<PeriodSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeriodSummary {
    /// Local date, inclusive (`YYYY-MM-DD`).
    pub from: String,
    /// Local date after the period (exclusive, as the config's half-open arrays): `2026-07-01` for a period
    /// whose last day is 30 June.
    pub to: String,
    /// The period's last day (inclusive, `YYYY-MM-DD`): the day before `to`, what `--to` names and every
    /// rendering prints. Absent in reports written before it was added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_day: Option<String>,
    /// Production over the period, in `production_unit`.
    pub production: f64,
    /// Fraction (0..=1) of valid hours (>= 45 min covered) over all hours of the period, across the audit's points.
    pub completeness: f64,
    /// Each product's quantity over the period, in its own unit (only with two or more products).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub products: Option<std::collections::BTreeMap<String, f64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Indicator {
    /// `kgce`, `kWh`, `m3`, `kg`, ...
    pub total_unit: String,
    /// `kgce/t`, `m3/t`, ...
    pub per_unit_unit: String,
    pub baseline: BaselineValues,
    pub reporting: Option<ReportingValues>,
    pub model: Model,
    /// `I`, `II`, `III`, `below III`, or null without thresholds.
    pub level: Option<Level>,
    /// A pollutant with several sources: each source's totals (the indicator is their sum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<std::collections::BTreeMap<String, SourceTotals>>,
}

/// One source's totals of a pollutant, per period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceTotals {
    pub baseline: PeriodTotal,
    pub reporting: Option<PeriodTotal>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeriodTotal {
    /// kg; null without data.
    pub total: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineValues {
    /// Null when no hour of the period has valid data of the indicator's points (no data is not zero).
    pub total: Option<f64>,
    /// Null without a total or when production is zero.
    pub per_unit: Option<f64>,
    /// Share (0..=1) of the period's hours covered by valid data of every point the indicator is computed
    /// from (production included).
    #[serde(default)]
    pub completeness: f64,
    /// Where the total came from; null without a total.
    #[serde(default)]
    pub provenance: Option<Provenance>,
}

/// Shares (0..=1, summing to 1) of a total by where its data came from: polled, imported from a file,
/// manual meters, apportioned over polling gaps (or substituted gauge hours).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    pub polled: f64,
    pub imported: f64,
    pub manual: f64,
    pub apportioned: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportingValues {
    /// Null without valid data in the period.
    pub total: Option<f64>,
    pub per_unit: Option<f64>,
    /// The baseline model's prediction for the reporting production; null without baseline data.
    pub expected: Option<f64>,
    /// expected - total; null when not claimed (see `savings_reason`).
    pub savings: Option<f64>,
    /// 100 * savings / expected; null when expected is zero.
    pub savings_pct: Option<f64>,
    /// Fractional savings uncertainty at 90 % confidence (ASHRAE Guideline 14 Annex B), in % of the
    /// savings; null with the ratio method or without savings.
    #[serde(default)]
    pub savings_uncertainty_pct: Option<f64>,
    /// As for the baseline.
    #[serde(default)]
    pub completeness: f64,
    /// Where the total came from; null without a total.
    #[serde(default)]
    pub provenance: Option<Provenance>,
    /// savings x the carrier's price (`[audit.prices]`), yuan; null without a price or savings.
    #[serde(default)]
    pub savings_yuan: Option<f64>,
    /// Why no savings are claimed (no data, completeness below `min_completeness`, no production).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub savings_reason: Option<String>,
    /// Elapsed days of the reporting period without data of the indicator: left out of `expected`, `total`
    /// and `savings` alike (DOMAIN.md "Honest figures": no savings from no data).
    #[serde(default)]
    pub days_without_data: u64,
    /// What `expected` (and so `savings`) rests on: a valid regression that meets ASHRAE Guideline 14, a
    /// weak model (a regression that does not), or the ratio method; null without `expected`.
    #[serde(default)]
    pub savings_basis: Option<SavingsBasis>,
    /// With `weak_model` or `ratio`: why the savings are weaker evidence (the model's statistics against
    /// the thresholds, or why no regression was used).
    #[serde(default)]
    pub savings_note: Option<String>,
}

/// What a savings figure rests on; serialized `valid_model`, `weak_model`, `ratio`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SavingsBasis {
    /// A regression that meets the validity rules (DOMAIN.md) and ASHRAE Guideline 14 (CV(RMSE), NMBE).
    ValidModel,
    /// A regression that meets the validity rules but not ASHRAE Guideline 14: indicative savings.
    WeakModel,
    /// The ratio method (no regression valid): consumption taken as proportional to production.
    Ratio,
}

impl SavingsBasis {
    /// As in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            SavingsBasis::ValidModel => "valid_model",
            SavingsBasis::WeakModel => "weak_model",
            SavingsBasis::Ratio => "ratio",
        }
    }

    /// Whether the savings need a caveat beside them.
    pub fn is_weak(self) -> bool {
        self != SavingsBasis::ValidModel
    }
}

/// The baseline model. With `method = "regression"` the statistics are those of the OLS fit
/// (ASHRAE Guideline 14); with `method = "ratio"`, `reason` says why no regression was used and the
/// statistics are those of the ratio model over the same buckets where they can be computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub granularity: String,
    /// `regression` or `ratio`.
    pub method: BaselineMethod,
    /// Why the ratio method was used (too few buckets, production does not vary, thresholds not met, ...).
    pub reason: Option<String>,
    /// Number of buckets in the fit.
    pub n: usize,
    pub intercept: f64,
    /// The coefficient of the single variable; absent with several variables (see `coefficients`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slope: Option<f64>,
    /// Null with the ratio method (R2 belongs to a regression; the ratio model's would mislead, even
    /// negative).
    pub r2: Option<f64>,
    pub cv_rmse_pct: Option<f64>,
    pub nmbe_pct: Option<f64>,
    /// A valid regression within the ASHRAE Guideline 14 thresholds; always false with the ratio method
    /// (no calibrated model: its CV(RMSE) and NMBE are shown for information only).
    pub meets_ashrae14: bool,
    /// The model's variables (`production`, product names, driver names).
    #[serde(default)]
    pub variables: Vec<String>,
    /// `intercept` first, then one per variable.
    #[serde(default, with = "ordered_map")]
    pub coefficients: Vec<(String, f64)>,
    /// Two-sided p-values of the coefficients (Student t), same keys; null where undefined.
    #[serde(default, with = "ordered_map")]
    pub p_values: Vec<(String, Option<f64>)>,
    /// p-value of the model's F test.
    #[serde(default)]
    pub p_value: Option<f64>,
    #[serde(default)]
    pub r2_adj: Option<f64>,
    /// Whether the regression meets the validity rules (DOMAIN.md); false with the ratio method.
    #[serde(default)]
    pub valid: bool,
    /// Every regression candidate tried, in order.
    #[serde(default)]
    pub candidates: Vec<ModelCandidate>,
    /// Data sufficiency, leave-one-out CV(RMSE), extrapolation, autocorrelation and conventions (issue #29);
    /// null in reports written before it was added.
    #[serde(default)]
    pub diagnostics: Option<crate::audit::diagnostics::ModelDiagnostics>,
}

/// One regression candidate of model selection, with the statistics it was judged on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCandidate {
    pub variables: Vec<String>,
    pub r2_adj: Option<f64>,
    pub p_value: Option<f64>,
    pub valid: bool,
    /// Why it is not valid; null when it is.
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Method {
    pub timezone: String,
    /// `equivalent` (当量值) or `equal` (等价值).
    pub electricity_method: String,
    pub grid_co2_t_per_mwh: f64,
    pub grid_factor_year: Option<i32>,
    /// One row per configured input.
    pub factors: Vec<Factor>,
    /// ASHRAE Guideline 14 thresholds used for the model granularity.
    pub ashrae14_cv_rmse_max_pct: f64,
    pub ashrae14_nmbe_max_pct: f64,
    /// Per point used by the audit: completeness and events (rollovers, replacements, apportioned gaps).
    pub points: Vec<PointQuality>,
    /// Free-text notes (conventions, warnings).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Factor {
    /// `meter.point`
    pub point: String,
    pub carrier: String,
    pub unit: String,
    pub kgce_per_unit: f64,
    pub co2_kg_per_unit: f64,
    /// `default (GB/T 2589-2020)` or `configured`.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointQuality {
    /// `meter.point`
    pub point: String,
    /// Valid hours / hours, over baseline and reporting periods.
    pub completeness_baseline: f64,
    pub completeness_reporting: Option<f64>,
    pub rollovers: u64,
    pub replacements: u64,
    /// Hours whose consumption was apportioned across a polling gap.
    pub apportioned_hours: u64,
    /// Counter readings below the reference that were not counted (DOMAIN.md "Counter drops").
    #[serde(default)]
    pub step_backs: u64,
    /// A manual meter's point (read by hand, from a logbook or the ERP; filled by import only).
    #[serde(default)]
    pub manual: bool,
}

/// A measure (方案): savings from its sub-meter's own baseline model (IPMVP Option B), their money and the
/// simple payback; without a sub-meter, listed without savings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct MeasureResult {
    pub name: String,
    pub in_service: String,
    pub investment_yuan: f64,
    /// The carrier its sub-meter meters; null without one.
    pub indicator: Option<String>,
    /// In the carrier's unit, from in service to the end of the reporting period.
    pub savings: Option<f64>,
    pub savings_yuan: Option<f64>,
    /// investment / (savings in yuan per year, scaled from the reporting days).
    pub payback_years: Option<f64>,
    /// Why a figure is missing.
    pub reason: Option<String>,
    /// The first day whose data count: the later of `in_service` and the reporting period's first day;
    /// null without a sub-meter or a reporting period.
    #[serde(default)]
    pub counted_from: Option<String>,
    /// Elapsed days from `counted_from` to the reporting period's end without data of the sub-meter (left
    /// out of its savings).
    #[serde(default)]
    pub days_without_data: u64,
    /// As for an indicator: what the sub-meter's savings rest on, and why they are weaker evidence.
    #[serde(default)]
    pub savings_basis: Option<SavingsBasis>,
    #[serde(default)]
    pub savings_note: Option<String>,
    /// The sub-meter's baseline model's diagnostics, as an indicator's `model.diagnostics`; null without
    /// savings of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<crate::audit::diagnostics::ModelDiagnostics>,
}

/// Counter events over the audit's periods, all points together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Events {
    pub rollovers: u64,
    pub step_backs: u64,
    pub replacements: Vec<ReplacementEvent>,
    /// Dated multiplier (倍率) changes: discontinuities handled like replacements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub multiplier_changes: Vec<MultiplierEvent>,
}

/// A dated change of a meter's multiplier (`[[meter.multiplier_change]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiplierEvent {
    pub meter: String,
    /// When it took effect (RFC 3339 UTC).
    pub at: String,
    pub from: f64,
    pub to: f64,
}

/// A meter replacement: inferred from a deep drop (`recorded` false: the new meter is taken to start at 0,
/// record the real start reading) or recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplacementEvent {
    /// `meter.point`
    pub point: String,
    /// RFC 3339 UTC: the recorded instant of a recorded replacement, else the hour of the reading that showed
    /// the drop.
    pub at: String,
    pub recorded: bool,
    /// Whether the figures hold it: false for a recorded replacement that no reading after it has reached
    /// yet, or that cannot be applied (the method notes say why).
    #[serde(default = "yes")]
    pub applied: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Series {
    /// Indicator keys, in the order of the values in each `DailyRow`.
    pub columns: Vec<String>,
    /// One row per local day of baseline and reporting periods.
    pub daily: Vec<DailyRow>,
    /// Per-unit figure of each indicator per month (`YYYY-MM`), values in the order of `columns`.
    pub monthly_per_unit: Vec<MonthlyRow>,
    /// Model buckets (granularity of the model) of the `energy` indicator: production, actual, fitted.
    pub energy_buckets: Vec<Bucket>,
    /// CUSUM of expected - actual of `energy` over the reporting period, per model bucket.
    pub energy_cusum: Vec<CusumPoint>,
    /// CUSUM of expected - actual of every indicator over the reporting period, per model bucket.
    #[serde(default, with = "ordered_map")]
    pub cusum: Vec<(String, Vec<CusumPoint>)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DailyRow {
    /// Local date `YYYY-MM-DD`.
    pub date: String,
    /// `baseline`, `reporting` or `other`.
    pub period: PeriodKind,
    pub production: f64,
    /// Totals of each indicator of `columns` for the day.
    pub values: Vec<f64>,
    /// Fraction of valid hours this day across the audit's points.
    pub completeness: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonthlyRow {
    pub month: String,
    pub production: f64,
    /// Per-unit values in the order of `columns`; null where production is zero.
    pub per_unit: Vec<Option<f64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Bucket start, local (`YYYY-MM-DD`, or `YYYY-MM-DDTHH` for hours).
    pub label: String,
    /// `baseline` or `reporting`.
    pub period: PeriodKind,
    pub production: f64,
    pub actual: f64,
    /// The baseline model's value at this production.
    pub fitted: f64,
    /// Whether the bucket's data are complete by the valid-hour/day/month rules. Incomplete baseline
    /// buckets (an outage whose consumption was apportioned, a partial bucket) are left out of the fit.
    #[serde(default = "complete_by_default")]
    pub complete: bool,
}

fn complete_by_default() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CusumPoint {
    pub label: String,
    pub cusum: f64,
}

/// Serialize `Vec<(String, T)>` as a JSON object, keeping order.
mod ordered_map {
    use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
    use serde::ser::{SerializeMap, Serializer};
    use std::fmt;
    use std::marker::PhantomData;

    pub fn serialize<S: Serializer, T: serde::Serialize>(
        v: &[(String, T)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(v.len()))?;
        for (k, x) in v {
            m.serialize_entry(k, x)?;
        }
        m.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Vec<(String, T)>, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Vec<(String, T)>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of indicators")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = a.next_entry()? {
                    out.push((k, v));
                }
                Ok(out)
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json<T: Serialize>(v: &T) -> String {
        serde_json::to_string(v).unwrap_or_default()
    }

    #[test]
    fn levels_and_methods_serialize_as_the_contracts_strings() {
        assert_eq!(json(&Level::I), r#""I""#);
        assert_eq!(json(&Level::II), r#""II""#);
        assert_eq!(json(&Level::III), r#""III""#);
        assert_eq!(json(&Level::BelowIII), r#""below III""#);
        assert_eq!(json(&BaselineMethod::Regression), r#""regression""#);
        assert_eq!(json(&BaselineMethod::Ratio), r#""ratio""#);
        for l in [Level::I, Level::II, Level::III, Level::BelowIII] {
            let back: Option<Level> = serde_json::from_str(&json(&l)).ok();
            assert_eq!(back, Some(l));
            assert_eq!(json(&l), format!("\"{}\"", l.as_str()));
        }
        assert!(serde_json::from_str::<Level>(r#""IV""#).is_err());
        for p in [
            PeriodKind::Baseline,
            PeriodKind::Reporting,
            PeriodKind::Other,
        ] {
            assert_eq!(json(&p), format!("\"{}\"", p.as_str()));
        }
    }
}
