//! Report fixtures for the renderers' tests: a realistic plant year with a half-year reporting period,
//! computed here from known formulas (so the figures are consistent), and its degenerate variants.

use crate::audit::report::{
    BaselineMethod, BaselineValues, Bucket, CusumPoint, DailyRow, Factor, Grade, Indicator, Level,
    Method, Model, ModelCandidate, MonthlyRow, PeriodKind, PeriodSummary, Periods, PointQuality,
    Report, ReportingValues, SavingsBasis, Series,
};

use std::collections::HashSet;

use chrono::{Datelike, NaiveDate, Weekday};

/// Deterministic noise in [-1, 1).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }
}

const COLUMNS: [(&str, &str); 8] = [
    ("energy", "kgce"),
    ("electricity", "kWh"),
    ("natural_gas", "m3"),
    ("steam", "t"),
    ("water", "m3"),
    ("co2", "kg"),
    ("COD", "kg"),
    ("SO2", "kg"),
];

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default()
}

/// OLS of y on x: (intercept, slope, r2, cv_rmse_pct, nmbe_pct) per ASHRAE Guideline 14 with p = 2.
fn ols(x: &[f64], y: &[f64]) -> (f64, f64, f64, f64, f64) {
    let n = x.len() as f64;
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = x.iter().map(|a| (a - mx) * (a - mx)).sum();
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let e: Vec<f64> = x
        .iter()
        .zip(y)
        .map(|(a, b)| b - (intercept + slope * a))
        .collect();
    let sse: f64 = e.iter().map(|v| v * v).sum();
    let sst: f64 = y.iter().map(|b| (b - my) * (b - my)).sum();
    let r2 = 1.0 - sse / sst;
    let cv = 100.0 * (sse / (n - 2.0)).sqrt() / my;
    let nmbe = 100.0 * e.iter().sum::<f64>() / ((n - 2.0) * my);
    (intercept, slope, r2, cv, nmbe)
}

/// A realistic report: plant-a, baseline 2025, reporting 2026-01..2026-06 with ~7% energy savings,
/// a Spring Festival shutdown, daily model granularity.
pub fn report() -> Report {
    let mut rng = Lcg(42);
    let base_from = date("2025-01-01");
    let rep_from = date("2026-01-01");
    let rep_to = date("2026-07-01");
    let mut daily = Vec::new();
    let mut d = base_from;
    while d < rep_to {
        let reporting = d >= rep_from;
        let weekend = matches!(d.weekday(), Weekday::Sat | Weekday::Sun);
        let shutdown = d >= date("2026-02-16") && d < date("2026-02-21");
        let p = if shutdown {
            0.0
        } else if weekend {
            90.0 + 20.0 * rng.next()
        } else {
            180.0 + 30.0 * rng.next()
        };
        let k = if reporting { 0.93 } else { 1.0 };
        let elec = 6000.0 + 280.0 * k * p + 3000.0 * rng.next();
        let gas = 300.0 + 25.0 * k * p + 250.0 * rng.next();
        let steam = if shutdown {
            0.0
        } else {
            5.0 + 0.4 * k * p + 4.0 * rng.next()
        };
        let water = 40.0 + 2.5 * p + 5.0 * rng.next();
        let energy = elec * 0.1229 + gas * 1.2143 + steam * 128.6;
        let co2 = elec * 0.5703 + gas * 2.1622;
        let cod = 0.05 * p * (1.0 + 0.1 * rng.next());
        let so2 = 0.02 * p * (1.0 + 0.1 * rng.next());
        let completeness = if d == date("2025-03-10") { 0.75 } else { 1.0 };
        daily.push(DailyRow {
            date: d.format("%Y-%m-%d").to_string(),
            period: if reporting {
                PeriodKind::Reporting
            } else {
                PeriodKind::Baseline
            },
            production: p,
            values: vec![energy, elec, gas, steam, water, co2, cod, so2],
            completeness,
        });
        d = d.succ_opt().unwrap_or(rep_to);
    }

    let sum = |period: PeriodKind, col: Option<usize>| -> f64 {
        daily
            .iter()
            .filter(|r| r.period == period)
            .map(|r| col.map_or(r.production, |c| r.values[c]))
            .sum()
    };
    let p_base = sum(PeriodKind::Baseline, None);
    let p_rep = sum(PeriodKind::Reporting, None);

    let mut indicators = Vec::new();
    let mut energy_model = (0.0, 0.0);
    for (c, (key, unit)) in COLUMNS.iter().enumerate() {
        let (x, y): (Vec<f64>, Vec<f64>) = daily
            .iter()
            .filter(|r| r.period == PeriodKind::Baseline)
            .map(|r| (r.production, r.values[c]))
            .unzip();
        let (a, b, r2, cv, nmbe) = ols(&x, &y);
        if c == 0 {
            energy_model = (a, b);
        }
        let rep_days = daily
            .iter()
            .filter(|r| r.period == PeriodKind::Reporting)
            .count() as f64;
        let expected = a * rep_days + b * p_rep;
        let total = sum(PeriodKind::Reporting, Some(c));
        let savings = expected - total;
        let btotal = sum(PeriodKind::Baseline, Some(c));
        let meets = cv <= 30.0 && nmbe.abs() <= 10.0;
        indicators.push((
            key.to_string(),
            Indicator {
                total_unit: unit.to_string(),
                per_unit_unit: format!("{unit}/t"),
                baseline: BaselineValues {
                    total: Some(btotal),
                    per_unit: Some(btotal / p_base),
                    completeness: 0.998,
                    provenance: None,
                },
                reporting: Some(ReportingValues {
                    total: Some(total),
                    per_unit: Some(total / p_rep),
                    expected: Some(expected),
                    savings: Some(savings),
                    savings_pct: Some(100.0 * savings / expected),
                    savings_uncertainty_pct: meets.then_some(12.5),
                    completeness: 1.0,
                    savings_reason: None,
                    savings_yuan: None,
                    provenance: None,
                    days_without_data: 0,
                    savings_basis: Some(if meets {
                        SavingsBasis::ValidModel
                    } else {
                        SavingsBasis::Ratio
                    }),
                    savings_note: (!meets).then(|| {
                        "ratio method, no valid regression (CV(RMSE) above the ASHRAE 14 threshold): expected = baseline consumption per unit x reporting production, without uncertainty".to_string()
                    }),
                }),
                model: Model {
                    granularity: "day".to_string(),
                    method: if meets {
                        BaselineMethod::Regression
                    } else {
                        BaselineMethod::Ratio
                    },
                    reason: if meets {
                        None
                    } else {
                        Some("CV(RMSE) above the ASHRAE 14 threshold".to_string())
                    },
                    n: x.len(),
                    intercept: a,
                    slope: Some(b),
                    r2: meets.then_some(r2),
                    cv_rmse_pct: Some(cv),
                    nmbe_pct: Some(nmbe),
                    meets_ashrae14: meets,
                    variables: vec!["production".to_string()],
                    coefficients: vec![("intercept".to_string(), a), ("production".to_string(), b)],
                    p_values: vec![
                        ("intercept".to_string(), Some(0.2)),
                        ("production".to_string(), Some(1e-6)),
                    ],
                    p_value: Some(1e-6),
                    r2_adj: Some(r2),
                    valid: meets,
                    candidates: vec![ModelCandidate {
                        variables: vec!["production".to_string()],
                        r2_adj: Some(r2),
                        p_value: Some(1e-6),
                        valid: meets,
                        reason: None,
                    }],
                    diagnostics: None,
                },
                sources: None,
                level: match *key {
                    "energy" => Some(Level::II),
                    "water" => Some(Level::I),
                    _ => None,
                },
            },
        ));
    }

    let mut monthly: Vec<MonthlyRow> = Vec::new();
    let mut sums: Vec<(String, f64, Vec<f64>)> = Vec::new();
    for r in &daily {
        let m = r.date[..7].to_string();
        match sums.last_mut() {
            Some((lm, p, v)) if *lm == m => {
                *p += r.production;
                v.iter_mut().zip(&r.values).for_each(|(a, b)| *a += b);
            }
            _ => sums.push((m, r.production, r.values.clone())),
        }
    }
    for (m, p, v) in sums {
        monthly.push(MonthlyRow {
            month: m,
            production: p,
            per_unit: v
                .iter()
                .map(|x| if p > 0.0 { Some(x / p) } else { None })
                .collect(),
        });
    }

    let (a, b) = energy_model;
    let energy_buckets: Vec<Bucket> = daily
        .iter()
        .map(|r| Bucket {
            label: r.date.clone(),
            period: r.period,
            production: r.production,
            actual: r.values[0],
            fitted: a + b * r.production,
            complete: true,
        })
        .collect();
    let mut s = 0.0;
    let energy_cusum: Vec<CusumPoint> = energy_buckets
        .iter()
        .filter(|b| b.period == PeriodKind::Reporting)
        .map(|b| {
            s += b.fitted - b.actual;
            CusumPoint {
                label: b.label.clone(),
                cusum: s,
            }
        })
        .collect();

    Report {
        balances: None,
        coverage: None,
        waste: None,
        integrity: None,
        enterprise: Some("Sunrise Dyeing & Finishing Co.".to_string()),
        industry: Some("dyeing".to_string()),
        compliance: Default::default(),
        events: Default::default(),
        measures: Vec::new(),
        grade: Some(Grade {
            level: Level::II,
            scores: [("I", 20.0), ("II", 100.0), ("III", 100.0)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }),
        gateway: "gw-01".to_string(),
        site: "plant-a".to_string(),
        production_unit: "t".to_string(),
        periods: Periods {
            baseline: PeriodSummary {
                from: "2025-01-01".to_string(),
                to: "2026-01-01".to_string(),
                last_day: Some("2025-12-31".to_string()),
                production: p_base,
                completeness: 0.998,
                products: None,
            },
            reporting: Some(PeriodSummary {
                from: "2026-01-01".to_string(),
                to: "2026-07-01".to_string(),
                last_day: Some("2026-06-30".to_string()),
                production: p_rep,
                completeness: 1.0,
                products: None,
            }),
        },
        indicators,
        generated_at: "2026-07-02T01:00:00Z".to_string(),
        method: Method {
            timezone: "+08:00".to_string(),
            electricity_method: "equivalent".to_string(),
            grid_co2_t_per_mwh: 0.5703,
            grid_factor_year: Some(2022),
            factors: vec![
                factor("main-power.energy_import", "electricity", "kWh", 0.1229, 0.5703),
                factor("gas.volume", "natural_gas", "m3", 1.2143, 2.1622),
                factor("boiler.steam", "steam", "t", 128.6, 0.0),
                factor("intake.volume", "water", "m3", 0.0, 0.0),
            ],
            ashrae14_cv_rmse_max_pct: 30.0,
            ashrae14_nmbe_max_pct: 10.0,
            points: vec![
                quality("main-power.energy_import", 0.999, Some(1.0), 1, 0, 6),
                quality("gas.volume", 0.997, Some(0.998), 0, 1, 0),
                quality("boiler.steam", 1.0, Some(1.0), 0, 0, 0),
                quality("intake.volume", 0.985, Some(0.99), 0, 0, 30),
                quality("packer.output", 1.0, Some(1.0), 0, 0, 0),
            ],
            notes: vec![
                "Electricity converted at the equivalent value (当量值) 0.1229 kgce/kWh.".to_string(),
                "Spring Festival shutdown 2026-02-16..2026-02-20: zero production days kept in the model."
                    .to_string(),
            ],
        },
        series: Series {
            columns: COLUMNS.iter().map(|(k, _)| k.to_string()).collect(),
            daily,
            monthly_per_unit: monthly,
            energy_buckets,
            cusum: vec![("energy".to_string(), energy_cusum.clone())],
            energy_cusum,
        },
    }
}

fn factor(point: &str, carrier: &str, unit: &str, kgce: f64, co2: f64) -> Factor {
    Factor {
        point: point.to_string(),
        carrier: carrier.to_string(),
        unit: unit.to_string(),
        kgce_per_unit: kgce,
        co2_kg_per_unit: co2,
        source: "default (GB/T 2589-2020)".to_string(),
    }
}

fn quality(point: &str, b: f64, r: Option<f64>, roll: u64, repl: u64, app: u64) -> PointQuality {
    PointQuality {
        step_backs: 0,
        manual: false,
        point: point.to_string(),
        completeness_baseline: b,
        completeness_reporting: r,
        rollovers: roll,
        replacements: repl,
        apportioned_hours: app,
    }
}

/// The realistic report without a reporting period: no reporting values, no CUSUM, baseline days only.
pub fn no_reporting() -> Report {
    let mut r = report();
    r.periods.reporting = None;
    for (_, ind) in &mut r.indicators {
        ind.reporting = None;
    }
    for p in &mut r.method.points {
        p.completeness_reporting = None;
    }
    r.series.daily.retain(|d| d.period == PeriodKind::Baseline);
    r.series
        .monthly_per_unit
        .retain(|m| m.month.as_str() < "2026-01");
    r.series
        .energy_buckets
        .retain(|b| b.period == PeriodKind::Baseline);
    r.series.energy_cusum.clear();
    r
}

/// A report whose names come from a hostile config: HTML, CSV formulas, control characters.
pub fn malicious() -> Report {
    let mut r = report();
    r.gateway = "gw<script>alert('x')</script>".to_string();
    r.site = "\"plant\" & <b>co</b>".to_string();
    r.method.points[0].point = "<img src=x onerror=alert(1)>.energy".to_string();
    r.method.factors[0].point = "<img src=x onerror=alert(1)>.energy".to_string();
    r.method
        .notes
        .push("<a href=\"https://evil.example/\">click</a> \x1b[31mred".to_string());
    let mut extra = r.indicators[6].1.clone();
    extra.total_unit = "<u>kg</u>".to_string();
    r.indicators
        .push(("=cmd|' /C calc'!A0".to_string(), extra.clone()));
    r.indicators.push(("bad,\"key\"\nx".to_string(), extra));
    r
}

/// A report with nothing in it: no production, no series, no reporting period, NaN statistics replaced by
/// nulls where the model allows, zeros elsewhere.
pub fn empty() -> Report {
    let mut r = no_reporting();
    r.periods.baseline.production = 0.0;
    r.periods.baseline.completeness = 0.0;
    r.series = Series::default();
    for (_, ind) in &mut r.indicators {
        ind.baseline = BaselineValues {
            total: None,
            per_unit: None,
            completeness: 0.0,
            provenance: None,
        };
        ind.model.n = 0;
        ind.model.r2 = None;
        ind.model.cv_rmse_pct = None;
        ind.model.nmbe_pct = None;
        ind.model.method = BaselineMethod::Ratio;
        ind.model.meets_ashrae14 = false;
        ind.model.reason = Some("no data".to_string());
    }
    r
}

/// The realistic report with everything a report can hold, the engine's own texts included (notes,
/// reasons): measures, limits and triggers, a ratio model, a rejected candidate, savings not claimed,
/// provenance, a recorded replacement. For the test that no English is left in a Chinese report.
pub fn rich() -> Report {
    use crate::audit::report::{
        MeasureResult, PermitUse, Provenance, QuotaCheck, ReplacementEvent, SourceCompliance,
        Triggers,
    };
    let mut r = report();
    let prov = Provenance {
        polled: 0.9,
        imported: 0.05,
        manual: 0.0,
        apportioned: 0.05,
    };
    for (key, ind) in &mut r.indicators {
        ind.baseline.provenance = Some(prov.clone());
        if let Some(rep) = &mut ind.reporting {
            rep.provenance = Some(prov.clone());
            rep.savings_yuan = rep.savings.map(|s| s * 0.7);
        }
        ind.model.candidates.push(ModelCandidate {
            variables: vec!["production".to_string(), "hdd".to_string()],
            r2_adj: Some(0.5),
            p_value: Some(0.01),
            valid: false,
            reason: Some("a variable's p-value 0.2000 is not below 0.1".to_string()),
        });
        if key == "COD" {
            ind.model.method = BaselineMethod::Ratio;
            ind.model.valid = false;
            ind.model.reason = Some(
                "no valid regression model (production: R2 0.4100 is below 0.75; production + hdd: \
                 a variable's p-value 0.2000 is not below 0.1)"
                    .to_string(),
            );
        } else if ind.model.reason.is_some() {
            ind.model.reason = Some(
                "only 20 complete day buckets in the baseline (a regression needs at least 30)"
                    .to_string(),
            );
        }
        ind.model.diagnostics = Some(diagnostics_of(key, ind.model.method));
        if key == "SO2" {
            if let Some(rep) = &mut ind.reporting {
                rep.savings = None;
                rep.savings_pct = None;
                rep.savings_yuan = None;
                rep.savings_reason = Some(
                    "reporting completeness 62.5 % is below min_completeness 90.0 %".to_string(),
                );
            }
        }
    }
    r.measures = vec![
        MeasureResult {
            name: "dye-bath heat recovery".to_string(),
            in_service: "2026-01-01".to_string(),
            investment_yuan: 1_200_000.0,
            indicator: Some("natural_gas".to_string()),
            savings: Some(85_000.0),
            savings_yuan: Some(272_000.0),
            payback_years: Some(2.2),
            reason: None,
            counted_from: Some("2026-01-01".to_string()),
            savings_basis: Some(SavingsBasis::ValidModel),
            diagnostics: Some(diagnostics_of("natural_gas", BaselineMethod::Regression)),
            ..MeasureResult::default()
        },
        MeasureResult {
            name: "LED lighting".to_string(),
            in_service: "2026-03-01".to_string(),
            investment_yuan: 80_000.0,
            indicator: Some("electricity".to_string()),
            savings: Some(30_000.0),
            savings_yuan: None,
            payback_years: None,
            reason: Some("no price for electricity in [audit.prices]".to_string()),
            counted_from: Some("2026-03-01".to_string()),
            savings_basis: Some(SavingsBasis::WeakModel),
            savings_note: Some("the baseline model does not meet ASHRAE Guideline 14 (CV(RMSE) 17.2 % against 15 %, NMBE 0.0 % against ±5 %): indicative savings".to_string()),
            ..MeasureResult::default()
        },
        MeasureResult {
            name: "condensate return".to_string(),
            in_service: "2026-02-01".to_string(),
            investment_yuan: 150_000.0,
            indicator: None,
            savings: None,
            savings_yuan: None,
            payback_years: None,
            reason: Some("no reporting period".to_string()),
            ..MeasureResult::default()
        },
    ];
    r.compliance.sources.push(SourceCompliance {
        pollutant: "SO2".to_string(),
        source: "stack-1".to_string(),
        limit: 50.0,
        valid_hours: 4300,
        exceedance_hours: 3,
        max_converted: Some(69.474),
        period: "reporting".to_string(),
    });
    r.compliance.permits.push(PermitUse {
        pollutant: "COD".to_string(),
        year: 2026,
        t_per_year: 12.5,
        total_t: 6.0,
        share: 0.96,
    });
    r.compliance.quota = Some(QuotaCheck {
        energy_kgce_per_unit: 125.0,
        baseline_over: Some(true),
        reporting_over: Some(false),
    });
    r.compliance.triggers = Triggers {
        over_standard: true,
        over_total: false,
        over_energy_quota: true,
        over_hazardous_waste: Some(true),
    };
    r.events.rollovers = 1;
    r.events.replacements.push(ReplacementEvent {
        point: "gas.volume".to_string(),
        at: "2025-06-03T02:00:00Z".to_string(),
        recorded: true,
        applied: true,
    });
    r.method.notes = vec![
        "reporting period set on the command line: 2026-01-01 .. 2026-06-30".to_string(),
        "figures as of 2026-07-01T15:00:00.000Z (the last completed local hour); later hours of the periods are not counted".to_string(),
        "gas.volume: 12 hours without a reading inside polling gaps were substituted with the mean of the valid hourly values before and after the gap (counted as its apportioned hours)".to_string(),
        "main-power.energy_import: 2 low readings not counted (step backs: a drop to at least half the reading before, or a single low reading the next one contradicted); the higher reading stayed the reference".to_string(),
        "gas.volume: read in Nm3, converted to m3 (x 1)".to_string(),
        "energy: 3 of 365 baseline day buckets left out of the model (incomplete data or partial bucket)".to_string(),
        "measure \"LED lighting\": ratio method (production does not vary between baseline buckets)".to_string(),
    ];
    r.method.notes.extend(crate::audit::compute::conventions());
    r.method.points[1].manual = true;
    r.method.points[0].step_backs = 2;
    r
}

// The scan for English left in a Chinese rendering (the renderers' zh test and the demo's, in the agent).

/// Units, standards, statistics, formulas and codes that stay as they are in a Chinese report.
pub const ALLOWED: &[&str] = &[
    "kgce",
    "tce",
    "kWh",
    "MWh",
    "tCO2",
    "m3",
    "Nm3",
    "kg",
    "mg",
    "GB",
    "ASHRAE",
    "Guideline",
    "ISO",
    "IPMVP",
    "HJ",
    "CV",
    "RMSE",
    "NMBE",
    "CUSUM",
    "COD",
    "SO2",
    "NOx",
    "NH3-N",
    "CO2",
    "VOCs",
    "TN",
    "TP",
    "II",
    "III",
    "SHA-256",
    "JSON",
    "ed25519",
    "plantmeter",
    "eemeter",
    "e-3",
    "e-6",
];

/// Tokens of a text: runs of ASCII letters, digits, `_` and `-`.
pub fn tokens(s: &str) -> impl Iterator<Item = &str> {
    s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .filter(|t| !t.is_empty())
}

/// The names the report took from the config, and with `keys` the indicator keys (the CSV's and the
/// workbook's code columns; the HTML and the terminal show labels).
pub fn config_names(r: &Report, keys: bool) -> HashSet<String> {
    let mut names: Vec<String> = vec![
        r.gateway.clone(),
        r.site.clone(),
        r.production_unit.clone(),
        r.method.timezone.clone(),
        super::report_id(r),
    ];
    names.extend(r.enterprise.clone());
    names.extend(r.industry.clone());
    for (k, i) in &r.indicators {
        if keys {
            names.push(k.clone());
        }
        names.push(i.total_unit.clone());
        names.push(i.per_unit_unit.clone());
        names.extend(
            i.model
                .variables
                .iter()
                .filter(|v| *v != "production")
                .cloned(),
        );
        names.extend(i.sources.iter().flatten().map(|(s, _)| s.clone()));
        for c in &i.model.candidates {
            names.extend(c.variables.iter().filter(|v| *v != "production").cloned());
        }
    }
    names.extend(r.method.points.iter().map(|p| p.point.clone()));
    names.extend(r.method.factors.iter().map(|f| f.unit.clone()));
    names.extend(r.measures.iter().map(|m| m.name.clone()));
    names.extend(r.compliance.sources.iter().map(|s| s.source.clone()));
    names.extend(r.compliance.facilities.iter().map(|f| f.name.clone()));
    if let Some(c) = &r.coverage {
        names.extend(c.ledger.iter().map(|e| e.name.clone()));
        names.extend(
            c.ledger
                .iter()
                .flat_map(|e| e.meters.iter().map(|m| m.point.clone())),
        );
    }
    if let Some(w) = &r.waste {
        names.extend(
            w.rows
                .iter()
                .flat_map(|x| [x.name.clone(), x.point.clone()]),
        );
    }
    if let Some(b) = &r.balances {
        names.extend(
            b.tree
                .iter()
                .flat_map(|t| t.children.iter().cloned().chain([t.parent.clone()])),
        );
    }
    names
        .iter()
        .flat_map(|n| tokens(n).map(str::to_string).collect::<Vec<_>>())
        .chain(ALLOWED.iter().map(|s| s.to_string()))
        .collect()
}

/// English words left in `text`: tokens with two ASCII letters or more that are not allowed.
pub fn english(text: &str, allowed: &HashSet<String>) -> Vec<String> {
    tokens(text)
        .filter(|t| t.chars().filter(char::is_ascii_alphabetic).count() >= 2)
        .filter(|t| !allowed.contains(*t))
        .map(str::to_string)
        .collect()
}

/// The rich report's model diagnostics (issue #29 item 4): energy passes its rules on 361 of 365 days, with a
/// negative rho (n' clamped to n and said) and production above the baseline's range on 2 days; water
/// covers 180 of its days; a ratio model has no cross-validation and says why.
fn diagnostics_of(
    key: &str,
    method: BaselineMethod,
) -> crate::audit::diagnostics::ModelDiagnostics {
    use crate::audit::diagnostics::{
        conventions, sufficiency, Autocorrelation, Extrapolation, ModelDiagnostics,
        SufficiencyRules,
    };
    // 365 days: a 3-day gap and one missing day; two outliers among steady days.
    let mut daily: Vec<Option<f64>> = (0..365).map(|i| Some(100.0 + (i % 7) as f64)).collect();
    for i in [40, 41, 42, 200] {
        daily[i] = None;
    }
    daily[100] = Some(400.0);
    daily[101] = Some(5.0);
    if key == "water" {
        // The second half of the year without data: coverage 180 / 365 and a 182-day gap.
        for d in daily.iter_mut().skip(183) {
            *d = None;
        }
    }
    let regression = method == BaselineMethod::Regression;
    ModelDiagnostics {
        sufficiency: sufficiency(&daily, &SufficiencyRules::default()),
        cv_rmse_loo_pct: regression.then_some(5.4),
        cv_rmse_loo_reason: (!regression)
            .then(|| "ratio method: no regression to cross-validate".to_string()),
        autocorrelation: if regression {
            Autocorrelation {
                rho: Some(-0.2),
                n: 365,
                n_eff_formula: Some(547.5),
                n_eff: Some(365.0),
                clamped: true,
                note: Some(
                    "rho -0.200 < 0: n (1 - rho)/(1 + rho) = 547.5 exceeds n = 365; n' = n is used"
                        .to_string(),
                ),
            }
        } else {
            Autocorrelation {
                rho: None,
                n: 365,
                n_eff_formula: None,
                n_eff: None,
                clamped: false,
                note: Some(
                    "ratio method: no regression residuals, no savings uncertainty".to_string(),
                ),
            }
        },
        extrapolation: vec![Extrapolation {
            variable: "production".to_string(),
            baseline_min: 150.0,
            baseline_max: 240.0,
            buckets_checked: 180,
            buckets_unchecked: 1,
            buckets_below: 0,
            buckets_above: 2,
            days_outside: 2.0,
            max_below: None,
            max_above: Some(20.0),
            max_beyond_pct_of_range: Some(100.0 * 20.0 / 90.0),
        }],
        extrapolation_reason: None,
        conventions: conventions(if regression { 2 } else { 1 }),
    }
}
