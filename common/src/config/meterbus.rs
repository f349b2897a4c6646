//! `[[bus]] protocol = "dlt645-2007" | "dlt645-1997" | "cjt188"`, their meters (by `address`) and
//! points (by `di`, and `field` for CJ/T 188's 901F), their templates, and every meter's
//! multiplier (倍率). Modbus buses stay in `meters.rs`; `meters::parse` routes here.

use std::time::Duration;

use chrono::DateTime;

use crate::builtin_templates;
use crate::cjt188::{self, DiOrder, Field, MeterKind};
use crate::dlt645::{self, Version};
use crate::frame68::parse_address;
use crate::plan::{
    LinkPoint, Meter, MeterBus, MeterLink, MeterProtocol, Multiplier, MultiplierChange, Parity,
    Point, Transport,
};
use crate::types::PointKind;

use super::diag::{closest, Diag, Span};
use super::gateway::split_host_port;
use super::reader::Section;

pub(crate) const PROTOCOLS: &[&str] = &["modbus", "dlt645-2007", "dlt645-1997", "cjt188"];
/// Keys of a meter on a DL/T 645 / CJ/T 188 bus.
const METER_KEYS: &[&str] = &[
    "name",
    "bus",
    "address",
    "poll_interval_s",
    "template",
    "points",
    "point",
    "meter_type",
    "di_order",
    "multiplier",
    "pt_ratio",
    "ct_ratio",
    "multiplier_change",
];
const POINT_KEYS: &[&str] = &[
    "name", "di", "field", "unit", "kind", "rollover", "min", "max",
];
const TEMPLATE_KEYS: &[&str] = &["model", "source", "protocol", "meter_type", "point"];
/// Wake-up bytes unless `preamble` says otherwise (DOMAIN.md).
pub const DEFAULT_PREAMBLE: [u8; 4] = [0xFE; 4];
/// Silence between requests unless `gap_ms` says otherwise: meters answer within 20..500 ms and
/// some need a pause before listening again.
pub const DEFAULT_GAP: Duration = Duration::from_millis(50);

/// The protocol a `[[bus]]` names: None for Modbus (the default), Err for a wrong value (reported).
pub(crate) fn protocol(d: &mut Diag<'_>, t: &Section<'_>) -> Result<Option<MeterProtocol>, ()> {
    if !t.has("protocol") {
        return Ok(None);
    }
    let p = t.str(d, "protocol").ok_or(())?;
    match p.v {
        "modbus" => Ok(None),
        "dlt645-2007" => Ok(Some(MeterProtocol::Dlt645(Version::V2007))),
        "dlt645-1997" => Ok(Some(MeterProtocol::Dlt645(Version::V1997))),
        "cjt188" => Ok(Some(MeterProtocol::Cjt188)),
        other => {
            let hint = closest(other, PROTOCOLS.iter().copied())
                .map_or(String::new(), |c| format!(" (did you mean \"{c}\"?)"));
            d.error(
                &p.span,
                format!(
                    "unknown protocol \"{other}\"; use modbus, dlt645-2007, dlt645-1997 or cjt188{hint}"
                ),
            );
            Err(())
        }
    }
}

/// The protocol of a `[[bus]]` table without reporting (for routing its meters).
pub(crate) fn protocol_quiet(t: &Section<'_>) -> Option<MeterProtocol> {
    match t.item("protocol")?.as_str()? {
        "dlt645-2007" => Some(MeterProtocol::Dlt645(Version::V2007)),
        "dlt645-1997" => Some(MeterProtocol::Dlt645(Version::V1997)),
        "cjt188" => Some(MeterProtocol::Cjt188),
        _ => None,
    }
}

/// Transport and link settings of a DL/T 645 / CJ/T 188 bus.
pub(crate) fn bus(
    d: &mut Diag<'_>,
    t: &Section<'_>,
    kind: MeterProtocol,
) -> Option<(Transport, MeterBus)> {
    let before = d.count();
    let transport = match t.str(d, "transport") {
        None if !t.has("transport") => {
            d.error(
                &t.span,
                format!(
                    "missing key \"transport\" in {}; use serial (RS-485) or tcp (a serial server)",
                    t.what
                ),
            );
            None
        }
        None => None,
        Some(tr) => match tr.v {
            "serial" => {
                if t.has("address") {
                    d.error(
                        &t.key_span("address"),
                        "address applies to tcp (a serial server); a serial bus uses device",
                    );
                }
                super::meters::serial(d, t).map(|mut s| {
                    // DL/T 645's usual line: 2400 baud 8E1 (DOMAIN.md).
                    if !t.has("baud") {
                        s.baud = 2400;
                    }
                    if !t.has("parity") {
                        s.parity = Parity::Even;
                    }
                    Transport::Rtu(s)
                })
            }
            "tcp" => {
                for key in ["device", "baud", "parity", "data_bits", "stop_bits"] {
                    if t.has(key) {
                        d.error(
                            &t.key_span(key),
                            format!("{key} is set on the serial server itself, not on a tcp bus"),
                        );
                    }
                }
                t.req_str(d, "address")
                    .and_then(|a| match split_host_port(a.v, 0) {
                        Ok((_, 0)) => {
                            d.error(
                                &a.span,
                                format!(
                                    "address \"{}\" needs the serial server's port (host:port)",
                                    a.v
                                ),
                            );
                            None
                        }
                        Ok((host, port)) if a.v.starts_with('[') => Some(Transport::RtuOverTcp {
                            address: format!("[{host}]:{port}"),
                        }),
                        Ok((host, port)) => Some(Transport::RtuOverTcp {
                            address: format!("{host}:{port}"),
                        }),
                        Err(why) => {
                            d.error(&a.span, format!("address \"{}\": {why}", a.v));
                            None
                        }
                    })
            }
            other => {
                let hint = closest(other, ["serial", "tcp"])
                    .map_or(String::new(), |c| format!(" (did you mean \"{c}\"?)"));
                d.error(
                    &tr.span,
                    format!(
                        "unknown transport \"{other}\" for protocol {}; use serial or tcp{hint}",
                        kind.as_str()
                    ),
                );
                None
            }
        },
    };
    let preamble = match t.str(d, "preamble") {
        None => Some(DEFAULT_PREAMBLE.to_vec()),
        Some(p) => match parse_hex_bytes(p.v) {
            Some(b) if b.len() <= dlt645::MAX_PREAMBLE => Some(b),
            _ => {
                d.error(
                    &p.span,
                    format!(
                        "preamble \"{}\" must be 0 to {} hex bytes separated by spaces, e.g. \"FE FE FE FE\"",
                        p.v,
                        dlt645::MAX_PREAMBLE
                    ),
                );
                None
            }
        },
    };
    let gap = t
        .int_in(d, "gap_ms", 0, 60_000)
        .map_or(DEFAULT_GAP, |v| Duration::from_millis(v.v.unsigned_abs()));
    if d.count() > before {
        return None;
    }
    Some((
        transport?,
        MeterBus {
            kind,
            preamble: preamble?,
            gap,
        },
    ))
}

/// "FE FE FE FE" (or "" for none) to bytes.
fn parse_hex_bytes(s: &str) -> Option<Vec<u8>> {
    s.split_whitespace()
        .map(|b| {
            (b.len() == 2)
                .then(|| u8::from_str_radix(b, 16).ok())
                .flatten()
        })
        .collect()
}

/// `multiplier`, or `pt_ratio` x `ct_ratio`, and `[[meter.multiplier_change]]`: None when none is
/// given (values as read). Errors are reported; a broken multiplier returns None, and the caller
/// sees the error count.
pub(crate) fn multiplier(d: &mut Diag<'_>, t: &Section<'_>) -> Option<Multiplier> {
    let m = t.positive(d, "multiplier");
    let pt = t.positive(d, "pt_ratio");
    let ct = t.positive(d, "ct_ratio");
    if let (Some(m), true) = (&m, pt.is_some() || ct.is_some()) {
        let (p, c) = (
            pt.as_ref().map_or(1.0, |v| v.v),
            ct.as_ref().map_or(1.0, |v| v.v),
        );
        if (p * c - m.v).abs() > 1e-9 * m.v {
            d.error(
                &m.span,
                format!(
                    "multiplier {} differs from pt_ratio x ct_ratio = {}; give one or the other",
                    m.v,
                    p * c
                ),
            );
        }
    }
    let mut changes: Vec<MultiplierChange> = Vec::new();
    for c in t.tables(d, "multiplier_change", "[[meter.multiplier_change]]") {
        c.check_keys(d, &["at", "value"]);
        let value = match c.positive(d, "value") {
            Some(v) => Some(v.v),
            None if !c.has("value") => {
                c.missing(d, "value");
                None
            }
            None => None,
        };
        let at = c
            .req_str(d, "at")
            .and_then(|a| match DateTime::parse_from_rfc3339(a.v) {
                Ok(ts) => Some((ts.timestamp_millis(), a.v.to_string(), a.span)),
                Err(_) => {
                    d.error(
                        &a.span,
                        format!(
                            "at \"{}\" is not an RFC 3339 time, e.g. \"2026-03-01T00:00:00+08:00\"",
                            a.v
                        ),
                    );
                    None
                }
            });
        if let (Some((at_ms, at, span)), Some(value)) = (at, value) {
            if changes.last().is_some_and(|l| l.at_ms >= at_ms) {
                d.error(
                    &span,
                    "multiplier changes must be in time order, each after the one before",
                );
            }
            changes.push(MultiplierChange { at_ms, at, value });
        }
    }
    let (pt, ct) = (pt.map_or(1.0, |v| v.v), ct.map_or(1.0, |v| v.v));
    let energy = m.map_or(pt * ct, |v| v.v);
    if energy == 1.0 && pt == 1.0 && ct == 1.0 && changes.is_empty() {
        return None;
    }
    Some(Multiplier {
        energy,
        pt,
        ct,
        changes,
    })
}

/// Published values are on the primary side: a counter's modulus is too (the register's range x
/// the multiplier in force last, since recent readings are the ones that wrap).
pub(crate) fn primary_rollover(points: &mut [Point], m: Option<&Multiplier>) {
    let Some(m) = m else { return };
    for p in points {
        if let Some(r) = p.rollover.as_mut() {
            *r *= m.factor(&p.unit, i64::MAX);
        }
    }
}

/// A point of a DL/T 645 or CJ/T 188 meter as configured, before its meter is known complete.
struct Draft {
    point: Point,
    link: LinkPoint,
}

/// One `[[meter]]` on a DL/T 645 / CJ/T 188 bus.
pub(crate) fn meter(
    d: &mut Diag<'_>,
    t: &Section<'_>,
    name: Option<&str>,
    kind: MeterProtocol,
    extra: &mut Vec<super::ConfigError>,
) -> Option<Meter> {
    t.check_keys(d, METER_KEYS);
    let before = d.count() + extra.len();
    if t.has("unit_id") {
        d.error(
            &t.key_span("unit_id"),
            format!(
                "a {} meter is addressed by address (its number on the nameplate), not unit_id",
                kind.as_str()
            ),
        );
    }
    let address = t.req_str(d, "address").and_then(|a| {
        let bytes = match kind {
            MeterProtocol::Dlt645(_) => parse_address::<6>(a.v).map(|b| b.to_vec()),
            MeterProtocol::Cjt188 => parse_address::<7>(a.v).map(|b| b.to_vec()),
        };
        if bytes.is_none() {
            let n = if kind == MeterProtocol::Cjt188 {
                14
            } else {
                12
            };
            d.error(
                &a.span,
                format!(
                    "address \"{}\" must be {n} digits for {} (the meter number on its nameplate, \
                     padded with leading zeros)",
                    a.v,
                    kind.as_str()
                ),
            );
        }
        bytes.map(|b| (b, a.v.to_string()))
    });
    let poll_interval = super::meters::poll_interval(d, t);
    let multiplier = multiplier(d, t);

    // The template: its points first, then the meter's own (same name replaces).
    let template = t
        .str(d, "template")
        .and_then(|tv| match builtin_templates::link_get(tv.v) {
            Some(text) => Some((tv.v, text, tv.span)),
            None => {
                let names = builtin_templates::link_names();
                let hint = closest(tv.v, names.iter().copied())
                    .map_or(String::new(), |c| format!("did you mean \"{c}\"? "));
                d.error(
                    &tv.span,
                    format!(
                        "unknown template \"{}\" for a {} bus; {hint}templates: {}",
                        tv.v,
                        kind.as_str(),
                        names.join(", ")
                    ),
                );
                None
            }
        });
    let template_doc = template
        .as_ref()
        .and_then(|(_, text, _)| toml_edit::Document::parse(*text).ok());

    let (meter_type, di_order) = match kind {
        MeterProtocol::Dlt645(_) => {
            for key in ["meter_type", "di_order"] {
                if t.has(key) {
                    d.error(
                        &t.key_span(key),
                        format!("{key} applies to cjt188 meters only"),
                    );
                }
            }
            (Some(0u8), DiOrder::LowFirst)
        }
        MeterProtocol::Cjt188 => {
            let from_template = template_doc
                .as_ref()
                .and_then(|doc| doc.get("meter_type")?.as_str().map(str::to_string));
            let ty = match t.str(d, "meter_type") {
                Some(v) => match u8::from_str_radix(v.v, 16)
                    .ok()
                    .filter(|b| MeterKind::of_type(*b).is_some())
                {
                    Some(b) if v.v.len() == 2 => Some(b),
                    _ => {
                        d.error(
                            &v.span,
                            format!(
                                "meter_type \"{}\" is not a CJ/T 188 type byte: two hex digits, water 10..19, heat 20..29, gas 30..39",
                                v.v
                            ),
                        );
                        None
                    }
                },
                None if !t.has("meter_type") => match from_template {
                    Some(s) => u8::from_str_radix(&s, 16).ok(),
                    None => {
                        d.error(
                            &t.span,
                            format!(
                                "missing key \"meter_type\" in {} (CJ/T 188 type byte: \"10\" cold water, \"20\" heat, \"30\" gas), or use a template",
                                t.what
                            ),
                        );
                        None
                    }
                },
                None => None,
            };
            let order = match t.str(d, "di_order") {
                None => DiOrder::LowFirst,
                Some(o) => DiOrder::parse(o.v).unwrap_or_else(|| {
                    d.error(
                        &o.span,
                        format!(
                            "unknown di_order \"{}\"; use low_first (1F 90) or high_first (90 1F)",
                            o.v
                        ),
                    );
                    DiOrder::LowFirst
                }),
            };
            (ty, order)
        }
    };
    let meter_kind = meter_type.and_then(MeterKind::of_type);

    let mut drafts: Vec<Draft> = Vec::new();
    let mut template_ok = true;
    if let Some((tname, text, tspan)) = &template {
        match template_points(tname, text, kind, meter_kind, extra) {
            Some(points) => {
                let wanted: Option<Vec<String>> = t.array(d, "points").map(|arr| {
                    arr.v
                        .iter()
                        .filter_map(|v| {
                            let s = v.as_str();
                            match s {
                                Some(s) if points.iter().any(|p| p.point.name == s) => {
                                    Some(s.to_string())
                                }
                                _ => {
                                    d.error(
                                        &v.span(),
                                        format!(
                                            "template \"{tname}\" has no point {v}; its points: {}",
                                            points
                                                .iter()
                                                .map(|p| p.point.name.as_str())
                                                .collect::<Vec<_>>()
                                                .join(", ")
                                        ),
                                    );
                                    None
                                }
                            }
                        })
                        .collect()
                });
                let _ = tspan;
                drafts.extend(
                    points
                        .into_iter()
                        .filter(|p| wanted.as_ref().is_none_or(|w| w.contains(&p.point.name))),
                );
            }
            None => template_ok = false,
        }
    } else if t.has("points") {
        d.error(
            &t.key_span("points"),
            "points selects points of a template; this meter has no template",
        );
    }
    let template_count = drafts.len();
    let mut own: Vec<(String, Span)> = Vec::new();
    for mut pt in t.tables(d, "point", "[[meter.point]]") {
        let Some((draft, span)) = point(d, &mut pt, name, kind, meter_kind) else {
            continue;
        };
        if own.iter().any(|(n, _)| *n == draft.point.name) {
            d.error(
                &span,
                format!(
                    "duplicate point \"{}\" in meter \"{}\"",
                    draft.point.name,
                    name.unwrap_or("?")
                ),
            );
            continue;
        }
        own.push((draft.point.name.clone(), span));
        match drafts[..template_count]
            .iter()
            .position(|x| x.point.name == draft.point.name)
        {
            Some(i) => drafts[i] = draft,
            None => drafts.push(draft),
        }
    }
    if d.count() + extra.len() > before || !template_ok {
        return None;
    }
    let name = name?;
    if drafts.is_empty() {
        d.error(
            &t.span,
            format!("meter \"{name}\" has no points: add [[meter.point]] entries or a template"),
        );
        return None;
    }
    let (address, address_text) = address?;
    let (mut points, links): (Vec<Point>, Vec<LinkPoint>) =
        drafts.into_iter().map(|x| (x.point, x.link)).unzip();
    primary_rollover(&mut points, multiplier.as_ref());
    let reads = crate::meter_read::plan_reads(kind, &links);
    Some(Meter {
        name: name.to_string(),
        unit_id: 0,
        poll_interval: poll_interval?,
        template: template.map(|(n, _, _)| n.to_string()),
        points,
        requests: Vec::new(),
        manual: false,
        link: Some(MeterLink {
            address,
            address_text,
            meter_type: meter_type?,
            di_order,
            points: links,
            reads,
        }),
        multiplier,
    })
}

/// The points of a DL/T 645 / CJ/T 188 template; errors against `<template NAME>`.
fn template_points(
    name: &str,
    text: &str,
    kind: MeterProtocol,
    meter_kind: Option<MeterKind>,
    extra: &mut Vec<super::ConfigError>,
) -> Option<Vec<Draft>> {
    super::meters::in_template(name, text, TEMPLATE_KEYS, extra, |d, root| {
        let proto = protocol_quiet(root);
        let mut points = Vec::new();
        if proto != Some(kind) {
            // Checked here rather than per point: a 1997 DI read as 2007 would be a wrong figure.
            d.error(
                &Some(0..0),
                format!(
                    "template \"{name}\" is for protocol {}, the bus speaks {}",
                    proto.map_or("?", |p| p.as_str()),
                    kind.as_str()
                ),
            );
            return None;
        }
        for mut pt in root.tables(d, "point", "[[point]]") {
            if let Some((p, _)) = point(d, &mut pt, None, kind, meter_kind) {
                points.push(p);
            }
        }
        Some(points)
    })
}

/// One point of a DL/T 645 / CJ/T 188 meter.
fn point(
    d: &mut Diag<'_>,
    t: &mut Section<'_>,
    owner: Option<&str>,
    kind: MeterProtocol,
    meter_kind: Option<MeterKind>,
) -> Option<(Draft, Span)> {
    let before = d.count();
    let name = t.req_name(d, "point");
    if let Some(n) = &name {
        t.what = format!("{} \"{}\"", t.what, n.v);
    }
    if let Some(m) = owner {
        t.what = format!("{} of meter \"{m}\"", t.what);
    }
    for key in [
        "register",
        "address",
        "type",
        "byte_order",
        "scale",
        "offset",
    ] {
        if t.has(key) {
            d.error(
                &t.key_span(key),
                format!(
                    "{key} is for Modbus points; a {} point reads a data identifier (di)",
                    kind.as_str()
                ),
            );
        }
    }
    // The audit's tree keys belong to a meter's point, not to a template's.
    let tree: &[&str] = if owner.is_some() {
        super::audit_tree::POINT_KEYS
    } else {
        &[]
    };
    t.check_keys(
        d,
        &[
            POINT_KEYS,
            tree,
            &[
                "register",
                "address",
                "type",
                "byte_order",
                "scale",
                "offset",
            ],
        ]
        .concat(),
    );
    // What the DI (and field) read: the link, the natural unit and kind, the counter's modulus.
    let read: Option<(LinkPoint, String, bool, f64)> = match kind {
        MeterProtocol::Dlt645(version) => {
            if t.has("field") {
                d.error(&t.key_span("field"), "field applies to cjt188 points only");
            }
            t.req_str(d, "di").and_then(|di| {
                let Some(code) = version.parse_di(di.v) else {
                    d.error(
                        &di.span,
                        format!(
                            "di \"{}\" is not a {} data identifier: {} hex digits, e.g. \"{}\"",
                            di.v,
                            version.as_str(),
                            2 * version.di_len(),
                            version.format_di(if version == Version::V2007 { 0x0001_0000 } else { 0x9010 })
                        ),
                    );
                    return None;
                };
                let Some(spec) = dlt645::spec_of(version, code) else {
                    d.error(
                        &di.span,
                        format!(
                            "di \"{}\" is not one the agent knows the format of (see README: DL/T 645 data identifiers)",
                            di.v
                        ),
                    );
                    return None;
                };
                let digits = 2 * i32::from(spec.len) - i32::from(spec.decimals);
                let modulus = if spec.signed { 8.0 } else { 10.0 } * 10f64.powi(digits - 1);
                Some((
                    LinkPoint::Dlt645 { di: code, spec },
                    spec.unit.to_string(),
                    spec.counter,
                    modulus,
                ))
            })
        }
        MeterProtocol::Cjt188 => {
            let di = match t.str(d, "di") {
                None => Some(cjt188::DI_CURRENT),
                Some(v) if v.v.eq_ignore_ascii_case("901F") => Some(cjt188::DI_CURRENT),
                Some(v) => {
                    d.error(
                        &v.span,
                        format!(
                            "di \"{}\": CJ/T 188 points read 901F (the current data)",
                            v.v
                        ),
                    );
                    None
                }
            };
            let field = match (t.str(d, "field"), meter_kind) {
                (None, Some(mk)) => Some(mk.default_field()),
                (None, None) => None,
                (Some(f), mk) => match (Field::parse(f.v), mk) {
                    (Some(field), Some(mk)) if field.layout(mk).is_some() => Some(field),
                    (Some(field), None) => Some(field),
                    (Some(_), Some(mk)) => {
                        d.error(
                            &f.span,
                            format!("a {mk:?} meter's 901F reply has no field \"{}\"", f.v),
                        );
                        None
                    }
                    (None, _) => {
                        d.error(
                            &f.span,
                            format!(
                                "unknown field \"{}\"; use heat, flow, power, flow_rate, supply_temp or return_temp",
                                f.v
                            ),
                        );
                        None
                    }
                },
            };
            match (di, field, meter_kind) {
                (Some(di), Some(field), Some(mk)) => {
                    let unit = field.fixed_unit().unwrap_or(match field {
                        Field::Heat => "kWh",
                        Field::Power => "kW",
                        Field::FlowRate => "m3/h",
                        _ => "m3",
                    });
                    Some((
                        LinkPoint::Cjt188 {
                            di,
                            kind: mk,
                            field,
                            modulus_unit: None,
                        },
                        unit.to_string(),
                        field.is_counter(),
                        1_000_000.0,
                    ))
                }
                _ => None,
            }
        }
    };
    let unit = t.str(d, "unit");
    if let (Some(u), Some((link, natural, _, _))) = (&unit, &read) {
        let ok = match link {
            LinkPoint::Dlt645 { .. } => u.v == natural,
            LinkPoint::Cjt188 { field, .. } => match field.fixed_unit() {
                Some(f) => u.v == f,
                None => cjt188::unit_code(natural)
                    .and_then(|c| cjt188::convert(1.0, c, u.v))
                    .is_some(),
            },
        };
        if !ok {
            d.error(
                &u.span,
                format!(
                    "unit \"{}\" does not fit this data identifier, which reads {natural}",
                    u.v
                ),
            );
        }
    }
    let point_kind = match t.str(d, "kind") {
        None => None,
        Some(k) => match k.v {
            "counter" => Some(PointKind::Counter),
            "gauge" => Some(PointKind::Gauge),
            other => {
                d.error(
                    &k.span,
                    format!("unknown kind \"{other}\"; use counter (a totalizer) or gauge (an instantaneous value)"),
                );
                None
            }
        },
    };
    let rollover = t.positive(d, "rollover");
    let min = t.number(d, "min");
    let max = t.number(d, "max");
    if let (Some(lo), Some(hi)) = (&min, &max) {
        if lo.v > hi.v {
            d.error(&lo.span, format!("min {} is above max {}", lo.v, hi.v));
        }
    }
    if d.count() > before {
        return None;
    }
    let name = name?;
    let (mut link, natural, counter, modulus) = read?;
    let unit = unit.map_or_else(|| natural.clone(), |u| u.v.to_string());
    let kind = point_kind.unwrap_or(if counter {
        PointKind::Counter
    } else {
        PointKind::Gauge
    });
    // The modulus in the point's unit. CJ/T 188 registers count to 999 999.99 in the meter's
    // unit (the template's, checked against each reply's unit byte): a heat point in GJ of a
    // meter counting kWh rolls over at 1 000 000 kWh = 3 600 GJ, not at 1 000 000 GJ.
    let modulus = match &mut link {
        LinkPoint::Cjt188 { modulus_unit, .. }
            if kind == PointKind::Counter && rollover.is_none() =>
        {
            let code = cjt188::unit_code(&natural);
            *modulus_unit = code;
            code.and_then(|c| cjt188::convert(modulus, c, &unit))
                .unwrap_or(modulus)
        }
        _ => modulus,
    };
    let rollover = match kind {
        PointKind::Counter => Some(rollover.map_or(modulus, |r| r.v)),
        PointKind::Gauge => None,
    };
    let mut point = Point::unregistered(name.v.to_string(), unit, kind, rollover);
    point.min = min.map(|v| v.v);
    point.max = max.map(|v| v.v);
    Some((Draft { point, link }, name.span))
}
