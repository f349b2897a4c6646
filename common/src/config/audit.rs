//! `[audit]`: periods, production, inputs with their factors, pollutants, grade thresholds.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::NaiveDate;
use toml_edit::Value;

use crate::audit::indicators::unit_factor;
use crate::plan::{
    AuditDriver, AuditInput, AuditLevel, AuditPlan, AuditPollutant, AuditProduct, Carrier,
    DriverTransform, ElectricityMethod, Granularity, Meter, PointRef, PollutantName,
};
use crate::types::PointKind;

use super::diag::{closest, quoted_list, Diag, Span};
use super::offset::{offset_error, parse_offset};
use super::reader::{value_type_name, Section, Val};

const AUDIT_KEYS: &[&str] = &[
    "timezone",
    "baseline",
    "reporting",
    "granularity",
    "grid_co2_t_per_mwh",
    "grid_factor_year",
    "electricity",
    "electricity_kgce_per_kwh",
    "electricity_year",
    "production",
    "production_unit",
    "product",
    "driver",
    "min_completeness",
    "permit",
    "quota",
    "measure",
    "facility",
    "prices",
    "input",
    "pollutant",
    "level",
    "publish_interval_s",
    "sufficiency",
];

/// CO2 emission factor of a carrier in kg per unit, other than electricity (which comes from the grid factor).
fn default_co2_kg_per_unit(c: Carrier) -> f64 {
    match c {
        Carrier::NaturalGas => 2.1622,
        Carrier::Coal => 1.9003,
        Carrier::Diesel => 3.0959,
        _ => 0.0,
    }
}

/// A product or driver name: it is a regression variable and a report key.
fn valid_variable_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && s != "production"
        && s != "intercept"
}

/// A source (stack, outfall) name: a report key.
fn valid_source_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// What a `meter.point` reference resolved to.
pub(crate) struct Resolved {
    pub point: PointRef,
    pub kind: PointKind,
    pub unit: String,
}

/// The points that references may name.
pub(crate) struct Points<'p> {
    /// Every meter that validated.
    pub meters: &'p [Meter],
    pub broken_meters: &'p BTreeSet<String>,
}

impl Points<'_> {
    /// Resolve `meter.point`; Err(None) when the meter is broken (already reported), Err(Some(msg)) otherwise.
    pub(crate) fn resolve(&self, r: &str) -> Result<Resolved, Option<String>> {
        let Some((meter, point)) = r.split_once('.') else {
            return Err(Some(format!(
                "point reference \"{r}\" must be written meter.point"
            )));
        };
        if self.broken_meters.contains(meter) {
            return Err(None);
        }
        let meters: Vec<&str> = self.meters.iter().map(|m| m.name.as_str()).collect();
        let Some(m) = self.meters.iter().find(|m| m.name == meter) else {
            let hint = match closest(meter, meters.iter().copied()) {
                Some(c) => format!("did you mean \"{c}\"?"),
                None if meters.is_empty() => "no meter is defined".to_string(),
                None => format!("meters: {}", quoted_list(meters.iter().copied())),
            };
            return Err(Some(format!(
                "unknown meter \"{meter}\" in \"{r}\"; {hint}"
            )));
        };
        let Some(p) = m.points.iter().find(|p| p.name == point) else {
            let names = m.points.iter().map(|p| p.name.as_str());
            let hint = match closest(point, names.clone()) {
                Some(c) => format!("did you mean \"{meter}.{c}\"?"),
                None => format!("its points: {}", names.collect::<Vec<_>>().join(", ")),
            };
            return Err(Some(format!(
                "meter \"{meter}\" has no point \"{point}\"; {hint}"
            )));
        };
        Ok(Resolved {
            point: PointRef {
                meter: meter.to_string(),
                point: point.to_string(),
            },
            kind: p.kind,
            unit: p.unit.clone(),
        })
    }
}

/// A required `carrier` key of `t`, with where it is written.
pub(super) fn carrier_key(d: &mut Diag<'_>, t: &Section<'_>) -> Option<(Carrier, Span)> {
    let c = t.req_str(d, "carrier")?;
    match Carrier::parse(c.v) {
        Some(carrier) => Some((carrier, c.span)),
        None => {
            d.error(
                &c.span,
                format!(
                    "unknown carrier \"{}\"; use {}",
                    c.v,
                    Carrier::ALL.map(Carrier::as_str).join(", ")
                ),
            );
            None
        }
    }
}

/// A required `meter.point` key of `t`.
pub(super) fn point_key(
    d: &mut Diag<'_>,
    t: &Section<'_>,
    key: &str,
    points: &Points<'_>,
) -> Option<(Resolved, Span)> {
    let v = t.req_str(d, key)?;
    match points.resolve(v.v) {
        Ok(r) => Some((r, v.span)),
        Err(Some(msg)) => {
            d.error(&v.span, msg);
            None
        }
        Err(None) => None,
    }
}

/// A date written as `"2025-01-01"` or as a TOML local date `2025-01-01`.
fn date(d: &mut Diag<'_>, key: &str, v: &Value) -> Option<NaiveDate> {
    let parsed = match v {
        Value::String(s) => NaiveDate::parse_from_str(s.value(), "%Y-%m-%d").ok(),
        Value::Datetime(dt) => {
            let dt = dt.value();
            match (dt.date, dt.time) {
                (Some(date), None) => NaiveDate::from_ymd_opt(
                    i32::from(date.year),
                    u32::from(date.month),
                    u32::from(date.day),
                ),
                _ => None,
            }
        }
        other => {
            d.error(
                &other.span(),
                format!(
                    "expected a date (\"YYYY-MM-DD\") in {key}, found {}",
                    value_type_name(other)
                ),
            );
            return None;
        }
    };
    if parsed.is_none() {
        let written = match v {
            Value::String(s) => s.value().to_string(),
            other => other.to_string().trim().to_string(),
        };
        d.error(
            &v.span(),
            format!("{key} date \"{written}\" is not a valid date (YYYY-MM-DD)"),
        );
    }
    parsed
}

/// `key = ["FROM", "TO"]`, half-open, FROM < TO.
fn period(d: &mut Diag<'_>, t: &Section<'_>, key: &str) -> Option<(NaiveDate, NaiveDate)> {
    let arr = t.array(d, key)?;
    if arr.v.len() != 2 {
        d.error(
            &arr.span,
            format!(
                "{key} must be two dates [\"FROM\", \"TO\"] (TO excluded), found {} value{}",
                arr.v.len(),
                if arr.v.len() == 1 { "" } else { "s" }
            ),
        );
        return None;
    }
    let from = arr.v.get(0).and_then(|v| date(d, key, v));
    let to = arr.v.get(1).and_then(|v| date(d, key, v));
    let (from, to) = (from?, to?);
    if from >= to {
        d.error(
            &arr.span,
            format!("{key} runs from {from} to {to}: the start must be before the end (the end is excluded)"),
        );
        return None;
    }
    Some((from, to))
}

pub(crate) fn parse(
    d: &mut Diag<'_>,
    root: &Section<'_>,
    points: &Points<'_>,
) -> Option<AuditPlan> {
    let item = root.item("audit")?;
    let t = Section::of_item(d, item, "audit", "[audit]")?;
    t.check_keys(d, &[AUDIT_KEYS, super::audit_tree::AUDIT_KEYS].concat());
    let before = d.count();

    let timezone = match t.req_str(d, "timezone") {
        Some(tz) => match parse_offset(tz.v) {
            Some(o) => Some(o),
            None => {
                d.error(&tz.span, offset_error("timezone", tz.v));
                None
            }
        },
        None => None,
    };
    let baseline = if t.has("baseline") {
        period(d, &t, "baseline")
    } else {
        t.missing(d, "baseline");
        None
    };
    let reporting = period(d, &t, "reporting");
    let granularity = t.str(d, "granularity").and_then(|g| match g.v {
        "hour" => Some(Granularity::Hour),
        "day" => Some(Granularity::Day),
        "week" => Some(Granularity::Week),
        "month" => Some(Granularity::Month),
        other => {
            d.error(
                &g.span,
                format!("unknown granularity \"{other}\"; use hour, day, week or month"),
            );
            None
        }
    });
    let grid = t.non_negative(d, "grid_co2_t_per_mwh");
    let grid_factor_year = year(d, &t, "grid_factor_year");
    let method = electricity_method(d, &t);
    let publish_interval =
        t.positive(d, "publish_interval_s")
            .and_then(|v| match Duration::try_from_secs_f64(v.v) {
                Ok(p) if p >= Duration::from_secs(1) && p <= Duration::from_secs(366 * 86_400) => {
                    Some(p)
                }
                _ => {
                    d.error(
                        &v.span,
                        format!(
                            "publish_interval_s {} is outside 1..=31622400 (1 s to 366 days)",
                            v.v
                        ),
                    );
                    None
                }
            });

    // production = { point, unit }, or [[audit.product]] with production_unit
    let production_unit_key = t.str(d, "production_unit").and_then(|u| {
        if u.v.trim().is_empty() {
            d.error(&u.span, "production_unit must not be empty");
            None
        } else {
            Some(u.v.to_string())
        }
    });
    let product_tables = t.tables(d, "product", "[[audit.product]]");
    let production = if t.has("production") {
        if !product_tables.is_empty() {
            d.error(
                &t.key_span("production"),
                "give either production = { point } or [[audit.product]] entries, not both",
            );
        }
        t.table(d, "production", "production").and_then(|p| {
            p.check_keys(d, &["point", "unit"]);
            let unit = p.str(d, "unit");
            let (r, span) = point_key(d, &p, "point", points)?;
            if r.kind != PointKind::Counter {
                d.error(
                    &span,
                    format!(
                        "production point \"{}\" must be a counter (a totalizer of product), it is a {}",
                        r.point,
                        r.kind.as_str()
                    ),
                );
                return None;
            }
            let unit = match unit {
                Some(u) if !u.v.trim().is_empty() => u.v.to_string(),
                Some(u) => {
                    d.error(&u.span, "production unit must not be empty");
                    return None;
                }
                None if !r.unit.is_empty() => r.unit.clone(),
                None => {
                    p.missing(d, "unit");
                    return None;
                }
            };
            Some((
                vec![AuditProduct {
                    name: "production".to_string(),
                    point: r.point,
                    factor: 1.0,
                }],
                unit,
            ))
        })
    } else if !product_tables.is_empty() {
        let mut products: Vec<AuditProduct> = Vec::new();
        let mut first_unit: Option<String> = None;
        let mut ok = true;
        for pt in &product_tables {
            pt.check_keys(d, &["name", "point", "factor"]);
            let name = pt.req_str(d, "name");
            let point = point_key(d, pt, "point", points);
            let factor = pt.positive(d, "factor");
            let (Some(name), Some((r, span))) = (name, point) else {
                ok = false;
                continue;
            };
            if !valid_variable_name(name.v) {
                d.error(
                    &name.span,
                    format!(
                        "product name \"{}\" must be 1..64 of [A-Za-z0-9_-] and not \"production\" or \"intercept\"",
                        name.v
                    ),
                );
                ok = false;
                continue;
            }
            if products.iter().any(|p| p.name == name.v) {
                d.error(&name.span, format!("duplicate product \"{}\"", name.v));
                ok = false;
                continue;
            }
            if r.kind != PointKind::Counter {
                d.error(
                    &span,
                    format!(
                        "product point \"{}\" must be a counter (a totalizer of product), it is a {}",
                        r.point,
                        r.kind.as_str()
                    ),
                );
                ok = false;
                continue;
            }
            if first_unit.is_none() && !r.unit.trim().is_empty() {
                first_unit = Some(r.unit.clone());
            }
            products.push(AuditProduct {
                name: name.v.to_string(),
                point: r.point,
                factor: factor.map_or(1.0, |f| f.v),
            });
        }
        match production_unit_key.clone().or(first_unit) {
            Some(unit) if ok => Some((products, unit)),
            Some(_) => None,
            None => {
                t.missing(d, "production_unit");
                None
            }
        }
    } else {
        t.missing(d, "production");
        None
    };
    let min_completeness = t.number(d, "min_completeness").and_then(|v| {
        if (0.0..=1.0).contains(&v.v) {
            Some(v.v)
        } else {
            d.error(
                &v.span,
                format!("min_completeness {} is outside 0..=1", v.v),
            );
            None
        }
    });

    // [[audit.driver]]
    let mut drivers: Vec<AuditDriver> = Vec::new();
    for dt in t.tables(d, "driver", "[[audit.driver]]") {
        dt.check_keys(d, &["name", "point", "transform", "base"]);
        let name = dt.req_str(d, "name");
        let point = point_key(d, &dt, "point", points);
        let transform = dt.req_str(d, "transform");
        let base = dt.number(d, "base");
        let (Some(name), Some((r, span)), Some(transform)) = (name, point, transform) else {
            continue;
        };
        if !valid_variable_name(name.v) {
            d.error(
                &name.span,
                format!(
                    "driver name \"{}\" must be 1..64 of [A-Za-z0-9_-] and not \"production\" or \"intercept\"",
                    name.v
                ),
            );
            continue;
        }
        let clash = drivers.iter().any(|x| x.name == name.v)
            || production
                .as_ref()
                .is_some_and(|(ps, _)| ps.iter().any(|p| p.name == name.v));
        if clash {
            d.error(
                &name.span,
                format!(
                    "duplicate variable name \"{}\" (drivers and products share one namespace)",
                    name.v
                ),
            );
            continue;
        }
        let base_v = base.as_ref().map_or(18.0, |b| b.v);
        let tf = match transform.v {
            "hdd" => DriverTransform::Hdd { base: base_v },
            "cdd" => DriverTransform::Cdd { base: base_v },
            "mean" => DriverTransform::Mean,
            "sum" => DriverTransform::Sum,
            other => {
                d.error(
                    &transform.span,
                    format!("unknown transform \"{other}\"; use hdd, cdd, mean, sum"),
                );
                continue;
            }
        };
        if let (Some(b), DriverTransform::Mean | DriverTransform::Sum) = (&base, tf) {
            d.error(&b.span, "base is only for the hdd and cdd transforms");
            continue;
        }
        let want = match tf {
            DriverTransform::Sum => PointKind::Counter,
            _ => PointKind::Gauge,
        };
        if r.kind != want {
            d.error(
                &span,
                format!(
                    "driver point \"{}\" must be a {} for transform {}, it is a {}",
                    r.point,
                    want.as_str(),
                    tf.as_str(),
                    r.kind.as_str()
                ),
            );
            continue;
        }
        drivers.push(AuditDriver {
            name: name.v.to_string(),
            point: r.point,
            transform: tf,
        });
    }

    // [[audit.input]]
    let mut inputs = Vec::new();
    // The material of each input of carrier "material" (its indicator's key), in the order of `inputs`.
    let mut input_materials: Vec<Option<String>> = Vec::new();
    let mut input_lines: HashMap<PointRef, usize> = HashMap::new();
    let mut electricity_inputs = Vec::new();
    for it in t.tables(d, "input", "[[audit.input]]") {
        it.check_keys(
            d,
            &[
                "point",
                "carrier",
                "kgce_per_unit",
                "co2_kg_per_unit",
                "material",
            ],
        );
        let material = it.str(d, "material").map(|m| (m.v.to_string(), m.span));
        let point = point_key(d, &it, "point", points);
        let carrier = carrier_key(d, &it);
        let kgce = it.non_negative(d, "kgce_per_unit");
        let co2 = it.non_negative(d, "co2_kg_per_unit");
        let (Some((r, span)), Some((carrier, carrier_span))) = (point, carrier) else {
            continue;
        };
        let material = match (carrier, material) {
            (Carrier::Material, Some((m, mspan))) => {
                let ok = (1..=64).contains(&m.len())
                    && m.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                let taken = ["energy", "co2"].contains(&m.as_str())
                    || Carrier::parse(&m).is_some()
                    || PollutantName::parse(&m).is_some();
                if !ok || taken {
                    d.error(
                        &mspan,
                        format!("material \"{m}\" must be 1..64 of [A-Za-z0-9_-] and not an indicator's key (energy, co2, a carrier, a pollutant)"),
                    );
                    continue;
                }
                Some(m)
            }
            (Carrier::Material, None) => {
                d.error(
                    &carrier_span,
                    "carrier \"material\" needs material = \"name\" (dyes, pulp, ...): its indicator's key",
                );
                continue;
            }
            (_, Some((_, mspan))) => {
                d.error(&mspan, "material goes with carrier = \"material\"");
                continue;
            }
            (_, None) => None,
        };
        if !r.unit.trim().is_empty() && unit_factor(&r.unit, carrier).is_none() {
            d.error(
                &span,
                format!(
                    "input point \"{}\" is in \"{}\", which does not convert to {} (the unit {} is accounted in)",
                    r.point,
                    r.unit,
                    carrier.unit(),
                    carrier.as_str()
                ),
            );
            continue;
        }
        if let Some(first) = input_lines.get(&r.point) {
            d.error(
                &span,
                format!("point \"{}\" is already an input (line {first})", r.point),
            );
            continue;
        }
        input_lines.insert(
            r.point.clone(),
            span.as_ref().map_or(1, |s| d.position(s.start).0),
        );
        if carrier == Carrier::Electricity && co2.is_none() {
            electricity_inputs.push(carrier_span);
        }
        inputs.push((r.point, carrier, kgce.map(|v| v.v), co2.map(|v| v.v)));
        input_materials.push(material);
    }
    if grid.is_none() && !t.has("grid_co2_t_per_mwh") {
        if let Some(span) = electricity_inputs.first() {
            d.error(
                span,
                "an electricity input needs grid_co2_t_per_mwh in [audit] (the grid's tCO2/MWh, e.g. 0.5703) or co2_kg_per_unit",
            );
        }
    }

    // [[audit.pollutant]]
    let mut pollutants = Vec::new();
    let mut pollutant_lines: HashMap<(PollutantName, Option<String>), usize> = HashMap::new();
    for pt in t.tables(d, "pollutant", "[[audit.pollutant]]") {
        pt.check_keys(
            d,
            &[
                "name",
                "concentration",
                "flow",
                "source",
                "o2",
                "o2_reference",
                "limit",
            ],
        );
        let source = pt.str(d, "source").and_then(|s| {
            if valid_source_name(s.v) {
                Some(s.v.to_string())
            } else {
                d.error(
                    &s.span,
                    format!("source \"{}\" must be 1..64 of [A-Za-z0-9_-]", s.v),
                );
                None
            }
        });
        let limit = pt.positive(d, "limit").map(|v| v.v);
        let o2_ref = pt.number(d, "o2_reference").and_then(|v| {
            if (0.0..21.0).contains(&v.v) {
                Some(v)
            } else {
                d.error(
                    &v.span,
                    format!("o2_reference {} must be in 0..21 (%)", v.v),
                );
                None
            }
        });
        let o2 = if pt.has("o2") {
            point_key(d, &pt, "o2", points).and_then(|(r, span)| {
                if r.kind != PointKind::Gauge {
                    d.error(
                        &span,
                        format!(
                            "o2 point \"{}\" must be a gauge (O2 %), it is a counter",
                            r.point
                        ),
                    );
                    return None;
                }
                match &o2_ref {
                    Some(v) => Some((r.point, v.v)),
                    None => {
                        pt.missing(d, "o2_reference");
                        None
                    }
                }
            })
        } else {
            if let Some(v) = &o2_ref {
                d.error(&v.span, "o2_reference needs o2 (the measured O2 % point)");
            }
            None
        };
        let name = pt
            .req_str(d, "name")
            .and_then(|n| match PollutantName::parse(n.v) {
                Some(p) => Some((p, n.span)),
                None => {
                    let hint = match closest(n.v, PollutantName::ALL.map(PollutantName::as_str)) {
                        Some(c) => format!(" (did you mean \"{c}\"?)"),
                        None => String::new(),
                    };
                    d.error(
                        &n.span,
                        format!(
                            "unknown pollutant \"{}\"{hint}; use {}",
                            n.v,
                            PollutantName::ALL.map(PollutantName::as_str).join(", ")
                        ),
                    );
                    None
                }
            });
        let conc = point_key(d, &pt, "concentration", points);
        if let Some((r, span)) = &conc {
            if r.kind != PointKind::Gauge {
                d.error(
                    span,
                    format!(
                        "concentration point \"{}\" must be a gauge (mg/L or mg/m3), it is a counter",
                        r.point
                    ),
                );
            }
        }
        let flow = point_key(d, &pt, "flow", points);
        let (Some((name, name_span)), Some((conc, _)), Some((flow, _))) = (name, conc, flow) else {
            continue;
        };
        let line = name_span.as_ref().map_or(1, |s| d.position(s.start).0);
        // Several sources of one pollutant add up: each must say which it is.
        let mut others: Vec<(Option<String>, usize)> = pollutant_lines
            .iter()
            .filter(|((n, _), _)| *n == name)
            .map(|((_, s), l)| (s.clone(), *l))
            .collect();
        others.sort_by_key(|(_, l)| *l);
        if let Some((_, first)) = others.iter().find(|(s, _)| s.is_none() || source.is_none()) {
            d.error(
                &name_span,
                format!(
                    "pollutant \"{}\" has several sources (also line {first}): give each a source = \"stack-1\" (or outfall) name",
                    name.as_str()
                ),
            );
            continue;
        }
        if let Some((_, first)) = others.iter().find(|(s, _)| *s == source) {
            d.error(
                &name_span,
                format!(
                    "duplicate pollutant \"{}\"{} (first defined at line {first})",
                    name.as_str(),
                    source
                        .as_deref()
                        .map_or(String::new(), |s| format!(" from source \"{s}\""))
                ),
            );
            continue;
        }
        pollutant_lines.insert((name, source.clone()), line);
        pollutants.push(AuditPollutant {
            name,
            concentration: conc.point,
            flow: flow.point,
            flow_kind: flow.kind,
            source,
            o2,
            limit,
        });
    }

    // [[audit.permit]] and [audit.quota]
    let mut permits: Vec<crate::plan::AuditPermit> = Vec::new();
    for pt in t.tables(d, "permit", "[[audit.permit]]") {
        pt.check_keys(d, &["pollutant", "t_per_year"]);
        let name = pt.req_str(d, "pollutant");
        let tpy = if pt.has("t_per_year") {
            pt.positive(d, "t_per_year")
        } else {
            pt.missing(d, "t_per_year");
            None
        };
        let (Some(name), Some(tpy)) = (name, tpy) else {
            continue;
        };
        let Some(p) = pollutants
            .iter()
            .map(|p: &AuditPollutant| p.name)
            .find(|p| p.as_str() == name.v)
        else {
            d.error(
                &name.span,
                format!(
                    "permit for \"{}\": no [[audit.pollutant]] of that name measures it",
                    name.v
                ),
            );
            continue;
        };
        if permits.iter().any(|x| x.pollutant == p) {
            d.error(&name.span, format!("duplicate permit for \"{}\"", name.v));
            continue;
        }
        permits.push(crate::plan::AuditPermit {
            pollutant: p,
            t_per_year: tpy.v,
        });
    }
    let quota = t.table(d, "quota", "[audit.quota]").and_then(|q| {
        q.check_keys(d, &["energy_kgce_per_unit"]);
        if q.has("energy_kgce_per_unit") {
            q.positive(d, "energy_kgce_per_unit").map(|v| v.v)
        } else {
            q.missing(d, "energy_kgce_per_unit");
            None
        }
    });

    // [[audit.measure]] and [audit.prices]
    let mut measures: Vec<crate::plan::AuditMeasure> = Vec::new();
    for mt in t.tables(d, "measure", "[[audit.measure]]") {
        mt.check_keys(
            d,
            &["name", "in_service", "investment_yuan", "point", "carrier"],
        );
        let name = mt.req_str(d, "name").and_then(|n| {
            if n.v.trim().is_empty() {
                d.error(&n.span, "measure name must not be empty");
                None
            } else {
                Some(n.v.trim().to_string())
            }
        });
        let in_service = match mt.item("in_service").and_then(|i| i.as_value()) {
            Some(v) => date(d, "in_service", v),
            None => {
                mt.missing(d, "in_service");
                None
            }
        };
        let investment = if mt.has("investment_yuan") {
            mt.non_negative(d, "investment_yuan").map(|v| v.v)
        } else {
            mt.missing(d, "investment_yuan");
            None
        };
        let point = if mt.has("point") {
            let p = point_key(d, &mt, "point", points);
            let c = carrier_key(d, &mt).map(|(c, _)| c);
            match (p, c) {
                (Some((r, span)), Some(c)) => {
                    if r.kind != PointKind::Counter {
                        d.error(
                            &span,
                            format!("measure point \"{}\" must be a counter (the sub-meter of what it saves)", r.point),
                        );
                        None
                    } else {
                        Some(Some((r.point, c)))
                    }
                }
                _ => None,
            }
        } else {
            if mt.has("carrier") {
                d.error(
                    &mt.key_span("carrier"),
                    "carrier goes with point (the measure's sub-meter)",
                );
            }
            Some(None)
        };
        if let (Some(name), Some(in_service), Some(investment_yuan), Some(point)) =
            (name, in_service, investment, point)
        {
            if measures.iter().any(|m| m.name == name) {
                d.error(
                    &mt.key_span("name"),
                    format!("duplicate measure \"{name}\""),
                );
                continue;
            }
            measures.push(crate::plan::AuditMeasure {
                name,
                in_service,
                investment_yuan,
                point,
            });
        }
    }
    let mut prices: Vec<(Carrier, f64)> = Vec::new();
    if let Some(pt) = t.table(d, "prices", "[audit.prices]") {
        let keys: Vec<&str> = Carrier::ALL.iter().map(|c| c.as_str()).collect();
        pt.check_keys(d, &keys);
        for c in Carrier::ALL {
            if let Some(v) = pt.non_negative(d, c.as_str()) {
                prices.push((c, v.v));
            }
        }
    }

    // [[audit.level]]: indicators the report will have.
    let mut indicators: Vec<String> = vec!["energy".to_string(), "co2".to_string()];
    for ((_, c, _, _), m) in inputs.iter().zip(&input_materials) {
        let key = m.clone().unwrap_or_else(|| c.as_str().to_string());
        if !indicators.contains(&key) {
            indicators.push(key);
        }
    }
    for p in &pollutants {
        indicators.push(p.name.as_str().to_string());
    }
    let mut levels: Vec<AuditLevel> = Vec::new();
    let mut level_lines: HashMap<String, usize> = HashMap::new();
    for lt in t.tables(d, "level", "[[audit.level]]") {
        lt.check_keys(
            d,
            &[
                "indicator",
                "I",
                "II",
                "III",
                "better",
                "weight",
                "limiting",
            ],
        );
        let higher = match lt.str(d, "better") {
            None => Some(false),
            Some(b) if b.v == "lower" => Some(false),
            Some(b) if b.v == "higher" => Some(true),
            Some(b) => {
                d.error(
                    &b.span,
                    format!("better = \"{}\": use \"lower\" or \"higher\"", b.v),
                );
                None
            }
        };
        let weight = lt.number(d, "weight").and_then(|w| {
            if w.v > 0.0 && w.v <= 1.0 {
                Some(w)
            } else {
                d.error(&w.span, format!("weight {} must be in (0, 1]", w.v));
                None
            }
        });
        let limiting = match lt.item("limiting") {
            None => Some(false),
            Some(item) => match item.as_bool() {
                Some(b) => Some(b),
                None => {
                    d.error(
                        &lt.value_span("limiting"),
                        "expected true or false for limiting",
                    );
                    None
                }
            },
        };
        let indicator = lt.req_str(d, "indicator").and_then(|i| {
            if indicators.iter().any(|x| x == i.v) {
                Some(i)
            } else {
                let hint = match closest(i.v, indicators.iter().map(String::as_str)) {
                    Some(c) => format!("did you mean \"{c}\"? "),
                    None => String::new(),
                };
                d.error(
                    &i.span,
                    format!(
                        "unknown indicator \"{}\"; {hint}the report's indicators are: {}",
                        i.v,
                        indicators.join(", ")
                    ),
                );
                None
            }
        });
        let grade = |d: &mut Diag<'_>, key: &str| -> Option<Val<f64>> {
            if lt.has(key) {
                lt.number(d, key)
            } else {
                lt.missing(d, key);
                None
            }
        };
        let (i1, i2, i3) = (grade(d, "I"), grade(d, "II"), grade(d, "III"));
        let (Some(ind), Some(i1), Some(i2), Some(i3), Some(higher), Some(limiting)) =
            (indicator, i1, i2, i3, higher, limiting)
        else {
            continue;
        };
        let ordered = if higher {
            i1.v >= i2.v && i2.v >= i3.v
        } else {
            i1.v <= i2.v && i2.v <= i3.v
        };
        if !ordered {
            let (rule, dir) = if higher {
                ("I >= II >= III", "higher")
            } else {
                ("I <= II <= III", "lower")
            };
            d.error(
                &i1.span,
                format!(
                    "level thresholds of \"{}\" must satisfy {rule} ({dir} is better), found I = {}, II = {}, III = {}",
                    ind.v, i1.v, i2.v, i3.v
                ),
            );
            continue;
        }
        if let Some(first) = level_lines.get(ind.v) {
            d.error(
                &ind.span,
                format!(
                    "duplicate level for \"{}\" (first defined at line {first})",
                    ind.v
                ),
            );
            continue;
        }
        level_lines.insert(
            ind.v.to_string(),
            ind.span.as_ref().map_or(1, |s| d.position(s.start).0),
        );
        levels.push(AuditLevel {
            indicator: ind.v.to_string(),
            level_i: i1.v,
            level_ii: i2.v,
            level_iii: i3.v,
            higher_is_better: higher,
            weight: weight.map_or(f64::NAN, |w| w.v),
            limiting,
        });
    }
    // Weights: all given and summing to 1, or none given (equal weights).
    let given = levels.iter().filter(|l| !l.weight.is_nan()).count();
    if given == 0 {
        let w = 1.0 / levels.len().max(1) as f64;
        levels.iter_mut().for_each(|l| l.weight = w);
    } else {
        let sum: f64 = levels
            .iter()
            .filter(|l| !l.weight.is_nan())
            .map(|l| l.weight)
            .sum();
        if given < levels.len() || (sum - 1.0).abs() > 1e-6 {
            d.error(
                &t.key_span("level"),
                format!(
                    "grade weights: give a weight to every [[audit.level]] (or to none, for equal weights) and make them sum to 1; {given} of {} given, summing to {sum}",
                    levels.len()
                ),
            );
        }
    }

    let facilities = facilities(d, &t, points);
    let depth = super::audit_tree::parse(
        d,
        root,
        &t,
        points,
        &inputs
            .iter()
            .map(|i| (i.0.clone(), i.1))
            .collect::<Vec<_>>(),
        &pollutants,
    );
    let sufficiency = super::sufficiency::parse(d, &t);
    if d.count() > before {
        return None;
    }
    let method = method?;
    let grid_co2 = grid.map_or(0.0, |g| g.v);
    let (products, production_unit) = production?;
    let production_unit = production_unit_key.unwrap_or(production_unit);
    Some(AuditPlan {
        timezone: timezone?,
        baseline: baseline?,
        reporting,
        granularity: granularity.unwrap_or(Granularity::Day),
        grid_co2_t_per_mwh: grid_co2,
        grid_factor_year,
        electricity_method: method,
        products,
        production_unit,
        drivers,
        min_completeness: min_completeness.unwrap_or(0.75),
        sufficiency,
        permits,
        energy_quota_kgce_per_unit: quota,
        measures,
        facilities,
        balance: depth.balance,
        ledger: depth.ledger,
        waste: depth.waste,
        prices,
        inputs: inputs
            .into_iter()
            .zip(input_materials)
            .map(|((point, carrier, kgce, co2), material)| AuditInput {
                point,
                carrier,
                material,
                kgce_per_unit: kgce.unwrap_or(match (carrier, method) {
                    (Carrier::Electricity, ElectricityMethod::Equal { kgce_per_kwh, .. }) => {
                        kgce_per_kwh
                    }
                    _ => carrier.default_kgce_per_unit(),
                }),
                // t/MWh == kg/kWh
                co2_kg_per_unit: co2.unwrap_or(if carrier == Carrier::Electricity {
                    grid_co2
                } else {
                    default_co2_kg_per_unit(carrier)
                }),
            })
            .collect(),
        pollutants,
        levels,
        publish_interval: publish_interval.unwrap_or(Duration::from_secs(3600)),
    })
}

/// An optional year (1900..=2200).
fn year(d: &mut Diag<'_>, t: &Section<'_>, key: &str) -> Option<i32> {
    t.int_in(d, key, 1900, 2200)
        .and_then(|v| i32::try_from(v.v).ok())
}

/// `electricity = "equivalent" | "equal"` with its rate and year.
fn electricity_method(d: &mut Diag<'_>, t: &Section<'_>) -> Option<ElectricityMethod> {
    let rate = t.positive(d, "electricity_kgce_per_kwh");
    let year_v = year(d, t, "electricity_year");
    let method = match t.str(d, "electricity") {
        None if t.has("electricity") => return None,
        None => "equivalent",
        Some(m) if m.v == "equivalent" || m.v == "equal" => m.v,
        Some(m) => {
            d.error(
                &m.span,
                format!(
                    "unknown electricity method \"{}\"; use equivalent (当量值, 0.1229 kgce/kWh) or equal (等价值, the year's coal rate)",
                    m.v
                ),
            );
            return None;
        }
    };
    if method == "equivalent" {
        for key in ["electricity_kgce_per_kwh", "electricity_year"] {
            if t.has(key) {
                d.error(
                    &t.key_span(key),
                    format!("{key} applies only with electricity = \"equal\""),
                );
            }
        }
        return Some(ElectricityMethod::Equivalent);
    }
    let at = t.value_span("electricity");
    if !t.has("electricity_kgce_per_kwh") {
        d.error(
            &at,
            "electricity = \"equal\" needs electricity_kgce_per_kwh (the thermal-power coal rate, e.g. 0.404)",
        );
    }
    if !t.has("electricity_year") {
        d.error(
            &at,
            "electricity = \"equal\" needs electricity_year (the year the coal rate is for)",
        );
    }
    Some(ElectricityMethod::Equal {
        kgce_per_kwh: rate?.v,
        year: Some(year_v?),
    })
}

/// `[[audit.facility]]` (分表计电): a production line's power point beside its treatment facility's;
/// each a gauge in kW (or W) or a counter in kWh, so that its mean power between readings is known.
fn facilities(
    d: &mut Diag<'_>,
    t: &Section<'_>,
    points: &Points<'_>,
) -> Vec<crate::plan::AuditFacility> {
    let mut out: Vec<crate::plan::AuditFacility> = Vec::new();
    for ft in t.tables(d, "facility", "[[audit.facility]]") {
        ft.check_keys(
            d,
            &[
                "name",
                "production",
                "treatment",
                "running_kw",
                "treatment_running_kw",
                "grace_min",
                "low_ratio",
            ],
        );
        let name = ft.req_str(d, "name").and_then(|n| {
            let ok = (1..=64).contains(&n.v.len())
                && n.v
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
            if !ok {
                d.error(
                    &n.span,
                    format!(
                        "facility name \"{}\" must be 1..64 of [a-z0-9_-] (it names an MQTT topic)",
                        n.v
                    ),
                );
                return None;
            }
            if out.iter().any(|f| f.name == n.v) {
                d.error(&n.span, format!("duplicate facility \"{}\"", n.v));
                return None;
            }
            Some(n.v.to_string())
        });
        let mut power = |key: &str| {
            let (r, span) = point_key(d, &ft, key, points)?;
            let unit = r.unit.trim().to_string();
            let ok = match r.kind {
                PointKind::Gauge => unit.eq_ignore_ascii_case("kW") || unit == "W",
                PointKind::Counter => unit.eq_ignore_ascii_case("kWh"),
            };
            if !ok {
                d.error(
                    &span,
                    format!(
                        "facility {key} \"{}\" must be a power gauge in kW (or W) or an energy counter in kWh; it is a {} in \"{unit}\"",
                        r.point,
                        if r.kind == PointKind::Gauge { "gauge" } else { "counter" }
                    ),
                );
                return None;
            }
            Some(r.point)
        };
        let production = power("production");
        let treatment = power("treatment");
        let running_kw = if ft.has("running_kw") {
            ft.positive(d, "running_kw").map(|v| v.v)
        } else {
            ft.missing(d, "running_kw");
            None
        };
        let treatment_running_kw = if ft.has("treatment_running_kw") {
            ft.positive(d, "treatment_running_kw").map(|v| Some(v.v))
        } else {
            Some(None)
        };
        let grace_min = if ft.has("grace_min") {
            ft.int_in(d, "grace_min", 0, 1440).map(|v| v.v)
        } else {
            Some(15)
        };
        let low_ratio = if ft.has("low_ratio") {
            match ft.number(d, "low_ratio") {
                Some(v) if v.v > 0.0 && v.v < 1.0 => Some(Some(v.v)),
                Some(v) => {
                    d.error(
                        &v.span,
                        "low_ratio must be between 0 and 1 (a share of the usual power)",
                    );
                    None
                }
                None => None,
            }
        } else {
            Some(None)
        };
        if let (
            Some(name),
            Some(production),
            Some(treatment),
            Some(running_kw),
            Some(treatment_running_kw),
            Some(grace_min),
            Some(low_ratio),
        ) = (
            name,
            production,
            treatment,
            running_kw,
            treatment_running_kw,
            grace_min,
            low_ratio,
        ) {
            if production == treatment {
                d.error(
                    &ft.key_span("treatment"),
                    "treatment must be another point than production",
                );
                continue;
            }
            out.push(crate::plan::AuditFacility {
                name,
                production,
                treatment,
                running_kw,
                treatment_running_kw: treatment_running_kw.unwrap_or(running_kw),
                grace: std::time::Duration::from_secs(grace_min.unsigned_abs() * 60),
                low_ratio,
            });
        }
    }
    out
}
