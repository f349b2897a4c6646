//! `[[bus]]`, `[[meter]]` and `[[meter.point]]`, with template expansion and request batching.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use crate::batching;
use crate::builtin_templates;
use crate::plan::{Bus, Meter, Parity, Point, SerialSettings, Transport};
use crate::types::{ByteOrder, DataType, PointKind, RegisterKind};

use super::diag::{closest, quoted_list, ConfigError, Diag, Span};
use super::gateway::{max_gap, split_host_port};
use super::meterbus;
use super::reader::{value_type_name, Section};
use crate::plan::{MeterProtocol, Protocol};

const BUS_KEYS: &[&str] = &[
    "name",
    "transport",
    "address",
    "device",
    "baud",
    "parity",
    "data_bits",
    "stop_bits",
    "timeout_ms",
    "retries",
    "max_gap",
    "protocol",
    "preamble",
    "gap_ms",
];
const SERIAL_KEYS: &[&str] = &["device", "baud", "parity", "data_bits", "stop_bits"];
const METER_KEYS: &[&str] = &[
    "name",
    "manual",
    "bus",
    "unit_id",
    "poll_interval_s",
    "byte_order",
    "template",
    "points",
    "point",
    "max_gap",
    "multiplier",
    "pt_ratio",
    "ct_ratio",
    "multiplier_change",
];
pub(crate) const POINT_KEYS: &[&str] = &[
    "name",
    "register",
    "address",
    "type",
    "byte_order",
    "scale",
    "offset",
    "unit",
    "kind",
    "rollover",
    "min",
    "max",
];
const TEMPLATE_KEYS: &[&str] = &["model", "source", "byte_order", "point"];

/// The Modbus TCP port when an address gives none.
const MODBUS_TCP_PORT: u16 = 502;

/// Buses with their meters, and what references into them may safely skip.
pub(crate) struct Parsed {
    pub buses: Vec<Bus>,
    /// Manual meters (`manual = true`), in config order.
    pub manual: Vec<Meter>,
    /// Every meter that validated, also those on a bus that did not (for resolving references).
    pub meters: Vec<Meter>,
    /// Meters that were defined but did not validate: references to them are not reported again.
    pub broken_meters: BTreeSet<String>,
}

struct BusDraft {
    name: String,
    /// None when the bus itself did not validate (its meters are still checked).
    bus: Option<Bus>,
    max_gap: Option<u16>,
    /// RTU framing (serial, or over TCP): unit id 0 is the broadcast address there.
    rtu_framing: bool,
    /// A DL/T 645 / CJ/T 188 bus: its meters are read by `meterbus`.
    link: Option<MeterProtocol>,
}

/// A validated point and where it was written (for errors found later, e.g. overlaps).
struct PointDraft {
    point: Point,
    name_span: Span,
    address_span: Span,
}

/// `name` is `[a-z0-9_-]+`.
pub(super) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// "line 12" of a span, for "first defined at line 12".
fn line_of(d: &Diag<'_>, span: &Span) -> usize {
    span.as_ref().map_or(1, |r| d.position(r.start).0)
}

pub(crate) fn parse(
    d: &mut Diag<'_>,
    root: &Section<'_>,
    gateway_gap: Option<u16>,
    extra: &mut Vec<ConfigError>,
) -> Parsed {
    let mut drafts: Vec<BusDraft> = Vec::new();
    let mut bus_lines: HashMap<String, usize> = HashMap::new();
    for t in root.tables(d, "bus", "[[bus]]") {
        let before = d.count();
        let Some((name, span, bus, gap)) = bus(d, &t) else {
            continue;
        };
        if let Some(first) = bus_lines.get(&name) {
            d.error(
                &span,
                format!("duplicate bus name \"{name}\" (first defined at line {first})"),
            );
            continue;
        }
        bus_lines.insert(name.clone(), line_of(d, &span));
        let ok = d.count() == before;
        let rtu_framing = t
            .item("transport")
            .and_then(|i| i.as_str())
            .is_some_and(|s| s == "rtu" || s == "rtu-over-tcp");
        drafts.push(BusDraft {
            name,
            bus: bus.filter(|_| ok),
            max_gap: gap,
            rtu_framing,
            link: meterbus::protocol_quiet(&t),
        });
    }

    let mut broken_meters = BTreeSet::new();
    let mut meter_lines: HashMap<String, usize> = HashMap::new();
    let mut placed: Vec<(usize, Meter)> = Vec::new();
    let mut manual: Vec<Meter> = Vec::new();
    let meter_tables = root.tables(d, "meter", "[[meter]]");
    if meter_tables.is_empty() && drafts.is_empty() && !root.has("bus") {
        d.error(
            &Some(0..0),
            "nothing to poll: add a [[bus]] and at least one [[meter]] with its points",
        );
    } else if meter_tables.is_empty() && !root.has("meter") {
        d.error(
            &Some(0..0),
            "nothing to poll: add at least one [[meter]] with its points",
        );
    }
    for t in meter_tables {
        let before = d.count() + extra.len();
        let name = t.req_name(d, "meter");
        if let Some(n) = &name {
            if let Some(first) = meter_lines.get(n.v) {
                d.error(
                    &n.span,
                    format!(
                        "duplicate meter name \"{}\" (first defined at line {first})",
                        n.v
                    ),
                );
            } else {
                meter_lines.insert(n.v.to_string(), line_of(d, &n.span));
            }
        }
        let mut t = t;
        if let Some(n) = &name {
            t.what = format!("[[meter]] \"{}\"", n.v);
        }
        if is_manual(d, &t) {
            let m = manual_meter(d, &t, name.as_ref().map(|n| n.v));
            match (name, m) {
                (Some(_), Some(m)) if d.count() + extra.len() == before => manual.push(m),
                (Some(n), _) => {
                    broken_meters.insert(n.v.to_string());
                }
                (None, _) => {}
            }
            continue;
        }
        let result = meter(
            d,
            &t,
            name.as_ref().map(|n| n.v),
            &drafts,
            gateway_gap,
            extra,
        );
        match (name, result) {
            (Some(_), Some((bus_index, meter))) if d.count() + extra.len() == before => {
                placed.push((bus_index, meter));
            }
            (Some(n), _) => {
                broken_meters.insert(n.v.to_string());
            }
            (None, _) => {}
        }
    }

    let mut buses = Vec::new();
    let mut index_map = HashMap::new();
    for (i, draft) in drafts.iter().enumerate() {
        if let Some(bus) = &draft.bus {
            index_map.insert(i, buses.len());
            buses.push(bus.clone());
        }
    }
    let meters: Vec<Meter> = placed
        .iter()
        .map(|(_, m)| m.clone())
        .chain(manual.iter().cloned())
        .collect();
    for (bus_index, meter) in placed {
        if let Some(&i) = index_map.get(&bus_index) {
            buses[i].meters.push(meter);
        }
    }
    Parsed {
        buses,
        manual,
        meters,
        broken_meters,
    }
}

/// `manual = true` in a `[[meter]]` (an error when it is not a boolean).
fn is_manual(d: &mut Diag<'_>, t: &Section<'_>) -> bool {
    match t.item("manual") {
        None => false,
        Some(item) => match item.as_bool() {
            Some(b) => b,
            None => {
                d.error(&t.value_span("manual"), "expected true or false for manual");
                false
            }
        },
    }
}

/// Readings of a manual meter are spaced by hand (a logbook, monthly ERP figures): intervals up to twice
/// this are covered, longer ones are gaps.
pub const MANUAL_READING_INTERVAL: Duration = Duration::from_secs(31 * 86_400);

/// A manual meter: a name and points with a unit and a kind (counter by default: a logbook reading of a
/// totalizer, or cumulative shipments), nothing about registers or buses.
fn manual_meter(d: &mut Diag<'_>, t: &Section<'_>, name: Option<&str>) -> Option<Meter> {
    t.check_keys(d, &["name", "manual", "point"]);
    let before = d.count();
    let mut points: Vec<Point> = Vec::new();
    let tables = t.tables(d, "point", "[[meter.point]]");
    if tables.is_empty() {
        d.error(&t.span, format!("{} has no [[meter.point]]", t.what));
    }
    for pt in tables {
        pt.check_keys(
            d,
            &[
                &["name", "unit", "kind", "rollover"],
                super::audit_tree::POINT_KEYS,
            ]
            .concat(),
        );
        let Some(pname) = pt.req_name(d, "point") else {
            continue;
        };
        if points.iter().any(|p| p.name == pname.v) {
            d.error(&pname.span, format!("duplicate point \"{}\"", pname.v));
            continue;
        }
        let unit = pt.str(d, "unit").map_or(String::new(), |u| u.v.to_string());
        let kind = match pt.str(d, "kind") {
            None => PointKind::Counter,
            Some(k) if k.v == "counter" => PointKind::Counter,
            Some(k) if k.v == "gauge" => PointKind::Gauge,
            Some(k) => {
                d.error(
                    &k.span,
                    format!("unknown kind \"{}\"; use counter (a totalizer) or gauge (an instantaneous value)", k.v),
                );
                continue;
            }
        };
        let rollover = pt.positive(d, "rollover").map(|v| v.v);
        points.push(Point::unregistered(
            pname.v.to_string(),
            unit,
            kind,
            rollover,
        ));
    }
    if d.count() > before {
        return None;
    }
    Some(Meter {
        name: name?.to_string(),
        unit_id: 0,
        poll_interval: MANUAL_READING_INTERVAL,
        template: None,
        points,
        requests: Vec::new(),
        manual: true,
        link: None,
        multiplier: None,
    })
}

/// One `[[bus]]`: its name and where it is written (None without a usable name), the bus when it
/// validated, and its `max_gap`.
#[allow(clippy::type_complexity)]
fn bus(d: &mut Diag<'_>, t: &Section<'_>) -> Option<(String, Span, Option<Bus>, Option<u16>)> {
    let mut t = t.clone();
    let before = d.count();
    let name = t.req_str(d, "name");
    if let Some(n) = &name {
        if n.v.trim().is_empty() {
            d.error(&n.span, "bus name must not be empty");
        } else {
            t.what = format!("[[bus]] \"{}\"", n.v);
        }
    }
    t.check_keys(d, BUS_KEYS);
    let protocol = meterbus::protocol(d, &t);
    if protocol.is_err() {
        // An unknown protocol: the rest of the bus cannot be read against it.
        let name = name.filter(|n| !n.v.trim().is_empty())?;
        return Some((name.v.to_string(), name.span, None, None));
    }
    if let Ok(Some(kind)) = protocol {
        let timeout_ms = t.int_in(d, "timeout_ms", 1, 3_600_000).map(|v| v.v);
        let retries = t.int_in(d, "retries", 0, 100).map(|v| v.v);
        let gap = max_gap(d, &t);
        let built = meterbus::bus(d, &t, kind);
        let name = name.filter(|n| !n.v.trim().is_empty())?;
        let bus = match built {
            Some((transport, link)) if d.count() == before => Some(Bus {
                name: name.v.to_string(),
                transport,
                timeout: Duration::from_millis(timeout_ms.map_or(1000, i64::unsigned_abs)),
                retries: u32::try_from(retries.unwrap_or(1)).unwrap_or(1),
                meters: Vec::new(),
                protocol: Protocol::Meter(link),
            }),
            _ => None,
        };
        return Some((name.v.to_string(), name.span, bus, gap));
    }
    for key in ["preamble", "gap_ms"] {
        if t.has(key) {
            d.error(
                &t.key_span(key),
                format!("{key} applies to dlt645-2007, dlt645-1997 and cjt188 buses, not Modbus"),
            );
        }
    }
    let transport = match t.str(d, "transport") {
        None if !t.has("transport") => {
            d.error(
                &t.span,
                format!(
                    "missing key \"transport\" in {}; use tcp, rtu or rtu-over-tcp",
                    t.what
                ),
            );
            None
        }
        None => None,
        Some(tr) => match tr.v {
            "tcp" | "rtu" | "rtu-over-tcp" => Some(tr),
            other => {
                let hint = closest(other, ["tcp", "rtu", "rtu-over-tcp"])
                    .map_or(String::new(), |c| format!(" (did you mean \"{c}\"?)"));
                d.error(
                    &tr.span,
                    format!("unknown transport \"{other}\"; use tcp, rtu or rtu-over-tcp{hint}"),
                );
                None
            }
        },
    };
    let timeout_ms = t.int(d, "timeout_ms").and_then(|v| {
        if v.v <= 0 || v.v > 3_600_000 {
            d.error(
                &v.span,
                format!(
                    "timeout_ms must be positive and at most 3600000 (1 h), found {}",
                    v.v
                ),
            );
            None
        } else {
            Some(v.v.unsigned_abs())
        }
    });
    let retries = t.int_in(d, "retries", 0, 100).map(|v| v.v);
    let gap = max_gap(d, &t);

    let built = transport.and_then(|tr| match tr.v {
        "rtu" => {
            if t.has("address") {
                d.error(
                    &t.key_span("address"),
                    "address applies to tcp and rtu-over-tcp buses; an rtu bus uses device",
                );
            }
            serial(d, &t).map(Transport::Rtu)
        }
        kind => {
            for key in SERIAL_KEYS {
                if t.has(key) {
                    d.error(
                        &t.key_span(key),
                        format!("{key} applies to rtu buses only, not to transport \"{kind}\""),
                    );
                }
            }
            let address = t.req_str(d, "address").and_then(|a| {
                match split_host_port(a.v, MODBUS_TCP_PORT) {
                    Ok((host, port)) if a.v.starts_with('[') => Some(format!("[{host}]:{port}")),
                    Ok((host, port)) => Some(format!("{host}:{port}")),
                    Err(why) => {
                        d.error(&a.span, format!("address \"{}\": {why}", a.v));
                        None
                    }
                }
            })?;
            Some(if kind == "tcp" {
                Transport::Tcp { address }
            } else {
                Transport::RtuOverTcp { address }
            })
        }
    });
    let name = name.filter(|n| !n.v.trim().is_empty())?;
    let bus = match built {
        Some(transport) if d.count() == before => Some(Bus {
            name: name.v.to_string(),
            transport,
            timeout: Duration::from_millis(timeout_ms.unwrap_or(1000)),
            retries: u32::try_from(retries.unwrap_or(1)).unwrap_or(1),
            meters: Vec::new(),
            protocol: Protocol::Modbus,
        }),
        _ => None,
    };
    Some((name.v.to_string(), name.span, bus, gap))
}

pub(super) fn serial(d: &mut Diag<'_>, t: &Section<'_>) -> Option<SerialSettings> {
    let before = d.count();
    let device = t.req_str(d, "device");
    if let Some(dev) = &device {
        if dev.v.trim().is_empty() {
            d.error(&dev.span, "device must not be empty");
        }
    }
    let baud = t
        .int_in(d, "baud", 50, 4_000_000)
        .and_then(|v| u32::try_from(v.v).ok())
        .unwrap_or(9600);
    let parity = t.str(d, "parity").and_then(|p| match p.v {
        "none" => Some(Parity::None),
        "even" => Some(Parity::Even),
        "odd" => Some(Parity::Odd),
        other => {
            d.error(
                &p.span,
                format!("unknown parity \"{other}\"; use none, even or odd"),
            );
            None
        }
    });
    let data_bits = t
        .int_in(d, "data_bits", 5, 8)
        .and_then(|v| u8::try_from(v.v).ok())
        .unwrap_or(8);
    let stop_bits = t
        .int_in(d, "stop_bits", 1, 2)
        .and_then(|v| u8::try_from(v.v).ok())
        .unwrap_or(1);
    if d.count() > before {
        return None;
    }
    Some(SerialSettings {
        device: PathBuf::from(device?.v),
        baud,
        parity: parity.unwrap_or(Parity::None),
        data_bits,
        stop_bits,
    })
}

/// One `[[meter]]` (its name already checked by the caller): the index of its bus and the meter.
fn meter(
    d: &mut Diag<'_>,
    t: &Section<'_>,
    name: Option<&str>,
    buses: &[BusDraft],
    gateway_gap: Option<u16>,
    extra: &mut Vec<ConfigError>,
) -> Option<(usize, Meter)> {
    // A meter on a DL/T 645 / CJ/T 188 bus is addressed and read otherwise.
    let named_bus = match t.item("bus").and_then(|b| b.as_str()) {
        Some(b) => buses.iter().position(|x| x.name == b),
        None if buses.len() == 1 => Some(0),
        None => None,
    };
    if let Some((i, kind)) = named_bus.and_then(|i| Some((i, buses[i].link?))) {
        return meterbus::meter(d, t, name, kind, extra).map(|m| (i, m));
    }
    t.check_keys(d, METER_KEYS);
    let before = d.count() + extra.len();

    let bus_index = match t.str(d, "bus") {
        Some(b) => match buses.iter().position(|x| x.name == b.v) {
            Some(i) => Some(i),
            None => {
                let hint = match closest(b.v, buses.iter().map(|x| x.name.as_str())) {
                    Some(c) => format!("did you mean \"{c}\"?"),
                    None if buses.is_empty() => "no [[bus]] is defined".to_string(),
                    None => format!(
                        "buses: {}",
                        quoted_list(buses.iter().map(|x| x.name.as_str()))
                    ),
                };
                d.error(&b.span, format!("unknown bus \"{}\"; {hint}", b.v));
                None
            }
        },
        // With a single bus, `bus` may be left out.
        None if !t.has("bus") && buses.len() == 1 => Some(0),
        None if !t.has("bus") => {
            t.missing(d, "bus");
            None
        }
        None => None,
    };

    let unit_id = if t.has("unit_id") {
        t.int_in(d, "unit_id", 0, 247).and_then(|v| {
            let rtu = bus_index.is_some_and(|i| buses[i].rtu_framing);
            if v.v == 0 && rtu {
                d.error(
                    &v.span,
                    "unit_id 0 is the RTU broadcast address: no device answers a read sent to it; use 1..=247",
                );
                return None;
            }
            u8::try_from(v.v).ok()
        })
    } else {
        t.missing(d, "unit_id");
        None
    };

    let poll_interval = poll_interval(d, t);
    let multiplier = meterbus::multiplier(d, t);

    let meter_order = t
        .str(d, "byte_order")
        .and_then(|o| match ByteOrder::parse(o.v) {
            Some((order, _)) => Some(order),
            None => {
                d.error(&o.span, unknown_byte_order(o.v));
                None
            }
        });
    let meter_gap = max_gap(d, t);

    let template = t
        .str(d, "template")
        .and_then(|tv| match builtin_templates::get(tv.v) {
            Some(text) => Some((tv.v, text, tv.span)),
            None => {
                let names = builtin_templates::names();
                let hint = match closest(tv.v, names.iter().copied()) {
                    Some(c) => format!("did you mean \"{c}\"? "),
                    None => String::new(),
                };
                d.error(
                    &tv.span,
                    format!(
                        "unknown template \"{}\"; {hint}known templates: {}",
                        tv.v,
                        names.join(", ")
                    ),
                );
                None
            }
        });

    // Template points first (in template order), then the meter's own points.
    let mut drafts: Vec<PointDraft> = Vec::new();
    let mut template_ok = true;
    if let Some((tname, text, tspan)) = &template {
        match template_points(tname, text, meter_order, extra) {
            Some((points, default_order)) => {
                let _ = default_order;
                let subset = t.array(d, "points");
                let selected: Vec<Point> = match subset {
                    None => points,
                    Some(arr) => {
                        let mut wanted = Vec::new();
                        for v in arr.v.iter() {
                            match v.as_str() {
                                Some(s) if points.iter().any(|p| p.name == s) => wanted.push(s),
                                Some(s) => {
                                    let hint =
                                        match closest(s, points.iter().map(|p| p.name.as_str())) {
                                            Some(c) => format!("did you mean \"{c}\"?"),
                                            None => format!(
                                                "its points: {}",
                                                points
                                                    .iter()
                                                    .map(|p| p.name.as_str())
                                                    .collect::<Vec<_>>()
                                                    .join(", ")
                                            ),
                                        };
                                    d.error(
                                        &v.span(),
                                        format!(
                                            "template \"{tname}\" has no point \"{s}\"; {hint}"
                                        ),
                                    );
                                }
                                None => d.error(
                                    &v.span(),
                                    format!(
                                        "expected a string (a point name) in points, found {}",
                                        value_type_name(v)
                                    ),
                                ),
                            }
                        }
                        points
                            .into_iter()
                            .filter(|p| wanted.contains(&p.name.as_str()))
                            .collect()
                    }
                };
                drafts.extend(selected.into_iter().map(|point| PointDraft {
                    point,
                    name_span: tspan.clone(),
                    address_span: tspan.clone(),
                }));
            }
            None => template_ok = false,
        }
    } else if t.has("points") && !t.has("template") {
        d.error(
            &t.key_span("points"),
            "points selects points of a template; this meter has no template",
        );
    }

    let default_order = meter_order
        .or_else(|| {
            template
                .as_ref()
                .and_then(|(_, text, _)| template_order(text))
        })
        .unwrap_or(ByteOrder::BIG);
    let template_count = drafts.len();
    let mut own_lines: HashMap<String, usize> = HashMap::new();
    let mut own_ok = true;
    for mut pt in t.tables(d, "point", "[[meter.point]]") {
        let Some(draft) = point(d, &mut pt, name, default_order) else {
            own_ok = false;
            continue;
        };
        let pname = draft.point.name.clone();
        if let Some(first) = own_lines.get(&pname) {
            d.error(
                &draft.name_span,
                format!(
                    "duplicate point \"{pname}\" in meter \"{}\" (first defined at line {first})",
                    name.unwrap_or("?")
                ),
            );
            own_ok = false;
            continue;
        }
        own_lines.insert(pname.clone(), line_of(d, &draft.name_span));
        // A point named like a template point replaces it.
        match drafts[..template_count]
            .iter()
            .position(|x| x.point.name == pname)
        {
            Some(i) => drafts[i] = draft,
            None => drafts.push(draft),
        }
    }

    if d.count() + extra.len() > before || !template_ok || !own_ok {
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

    let points: Vec<Point> = drafts.iter().map(|x| x.point.clone()).collect();
    let overlaps = batching::inconsistent_overlaps(&points);
    for (i, j) in &overlaps {
        let (a, b) = (&points[*i], &points[*j]);
        d.error(
            &drafts[*j].address_span,
            format!(
                "points \"{}\" ({} {}, {}) and \"{}\" ({} {}, {}) of meter \"{name}\" overlap: \
                 points must read exactly the same registers or separate ones",
                a.name,
                a.register,
                a.address,
                a.data_type,
                b.name,
                b.register,
                b.address,
                b.data_type,
            ),
        );
    }
    if !overlaps.is_empty() {
        return None;
    }
    let bus_index = bus_index?;
    let gap = meter_gap
        .or(buses[bus_index].max_gap)
        .or(gateway_gap)
        .unwrap_or(if buses[bus_index].rtu_framing {
            batching::DEFAULT_MAX_GAP
        } else {
            batching::DEFAULT_MAX_GAP_TCP
        });
    let requests = batching::batch(&points, gap);
    let mut points = points;
    meterbus::primary_rollover(&mut points, multiplier.as_ref());
    Some((
        bus_index,
        Meter {
            name: name.to_string(),
            unit_id: unit_id?,
            poll_interval: poll_interval?,
            template: template.map(|(n, _, _)| n.to_string()),
            points,
            requests,
            manual: false,
            link: None,
            multiplier,
        },
    ))
}

/// The message for a byte order that is none of the contract's.
fn unknown_byte_order(s: &str) -> String {
    format!(
        "unknown byte_order \"{s}\"; use AB or BA (16-bit), ABCD, CDAB, BADC or DCBA (32-bit), \
         ABCDEFGH, GHEFCDAB, BADCFEHG or HGFEDCBA (64-bit)"
    )
}

/// The written orders valid for a width, for "use ...".
fn orders_for(bits: u16) -> &'static str {
    match bits {
        16 => "AB or BA",
        32 => "ABCD, CDAB, BADC or DCBA",
        _ => "ABCDEFGH, GHEFCDAB, BADCFEHG or HGFEDCBA",
    }
}

/// A meter- or template-wide order applied to a point of `bits` width: the same swaps, and no word
/// swap for a single register.
fn by_family(order: ByteOrder, bits: u16) -> ByteOrder {
    if bits <= 16 {
        ByteOrder {
            word_swap: false,
            byte_swap: order.byte_swap,
        }
    } else {
        order
    }
}

/// The `byte_order` at the top of a template, when valid.
fn template_order(text: &str) -> Option<ByteOrder> {
    let doc = toml_edit::Document::parse(text).ok()?;
    let s = doc.get("byte_order")?.as_str()?;
    ByteOrder::parse(s).map(|(o, _)| o)
}

/// The points of a template as it gives them (its own byte order, else big-endian): what the
/// simulator serves, parsed as a meter's `template = NAME` is. Errors name `<template NAME>`.
pub(crate) fn template_alone(name: &str, text: &str) -> Result<Vec<Point>, Vec<ConfigError>> {
    let mut errors = Vec::new();
    match template_points(name, text, None, &mut errors) {
        Some((points, _)) if errors.is_empty() => Ok(points),
        _ => Err(errors),
    }
}

/// The points of a built-in template, with the meter's byte order (if set) overriding the template's.
/// Errors in the template itself are reported against `<template NAME>`.
fn template_points(
    name: &str,
    text: &str,
    meter_order: Option<ByteOrder>,
    extra: &mut Vec<ConfigError>,
) -> Option<(Vec<Point>, ByteOrder)> {
    in_template(name, text, TEMPLATE_KEYS, extra, |d, root| {
        let template_order = root
            .str(d, "byte_order")
            .and_then(|o| match ByteOrder::parse(o.v) {
                Some((order, _)) => Some(order),
                None => {
                    d.error(&o.span, unknown_byte_order(o.v));
                    None
                }
            });
        let order = meter_order.or(template_order).unwrap_or(ByteOrder::BIG);
        let mut points = Vec::new();
        let mut seen = BTreeSet::new();
        for mut pt in root.tables(d, "point", "[[point]]") {
            if let Some(p) = point(d, &mut pt, None, order) {
                if !seen.insert(p.point.name.clone()) {
                    d.error(
                        &p.name_span,
                        format!("duplicate point \"{}\"", p.point.name),
                    );
                }
                points.push(p.point);
            }
        }
        Some((points, order))
    })
}

/// A built-in template's text parsed and its top-level `keys` checked, then `body` on its root. Every error
/// of the template (its syntax included) goes to `extra`, against `<template NAME>`, and then nothing is
/// returned. Shared by the Modbus and the DL/T 645 / CJ/T 188 templates.
pub(super) fn in_template<T>(
    name: &str,
    text: &str,
    keys: &[&str],
    extra: &mut Vec<ConfigError>,
    body: impl FnOnce(&mut Diag<'_>, &Section<'_>) -> Option<T>,
) -> Option<T> {
    let file = PathBuf::from(format!("<template {name}>"));
    let mut d = Diag::new(&file, text);
    let doc = match toml_edit::Document::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            d.error(&e.span(), format!("TOML syntax error: {}", e.message()));
            extra.append(&mut d.errors);
            return None;
        }
    };
    let root = Section::new(doc.as_table(), Some(0..0), format!("template \"{name}\""));
    root.check_keys(&mut d, keys);
    let out = body(&mut d, &root);
    if d.has_errors() {
        extra.append(&mut d.errors);
        return None;
    }
    out
}

/// One point table (`[[meter.point]]` or a template's `[[point]]`).
/// `owner` names the meter in messages (`[[meter.point]] "p" of meter "m"`).
fn point(
    d: &mut Diag<'_>,
    t: &mut Section<'_>,
    owner: Option<&str>,
    default_order: ByteOrder,
) -> Option<PointDraft> {
    let before = d.count();
    let name = t.req_name(d, "point");
    let pname = name.as_ref().map_or("?", |n| n.v);
    if let Some(n) = &name {
        t.what = format!("{} \"{}\"", t.what, n.v);
    }
    if let Some(m) = owner {
        t.what = format!("{} of meter \"{m}\"", t.what);
    }
    if owner.is_some() {
        t.check_keys(d, &[POINT_KEYS, super::audit_tree::POINT_KEYS].concat());
    } else {
        t.check_keys(d, POINT_KEYS);
    }

    let register = match t.str(d, "register") {
        None => (!t.has("register")).then_some(RegisterKind::Holding),
        Some(r) => match r.v.parse::<RegisterKind>() {
            Ok(k) => Some(k),
            Err(()) => {
                d.error(
                    &r.span,
                    format!(
                        "unknown register \"{}\"; use holding, input, coil or discrete",
                        r.v
                    ),
                );
                None
            }
        },
    };

    let address = if t.has("address") {
        t.int_in(d, "address", 0, 65_535)
            .and_then(|v| u16::try_from(v.v).ok())
    } else {
        t.missing(d, "address");
        None
    };

    let data_type = match t.str(d, "type") {
        None if t.has("type") => None,
        None => match register {
            Some(r) if r.is_bit() => Some(DataType::Bool),
            Some(_) => {
                d.error(
                    &t.span,
                    format!(
                        "missing key \"type\" in {}; use u16, i16, u32, i32, u64, i64, f32, f64 or bool",
                        t.what
                    ),
                );
                None
            }
            None => None,
        },
        Some(ty) => match ty.v.parse::<DataType>() {
            Ok(dt) => {
                if let Some(r) = register.filter(|r| r.is_bit()) {
                    if dt != DataType::Bool {
                        d.error(
                            &ty.span,
                            format!("type {dt} cannot be read from a {r} (a single bit): {r} points are bool"),
                        );
                    }
                }
                Some(dt)
            }
            Err(()) => {
                d.error(
                    &ty.span,
                    format!(
                        "unknown type \"{}\"; use u16, i16, u32, i32, u64, i64, f32, f64 or bool",
                        ty.v
                    ),
                );
                None
            }
        },
    };

    let byte_order = match (t.str(d, "byte_order"), register, data_type) {
        (Some(o), Some(r), _) if r.is_bit() => {
            d.error(
                &o.span,
                format!("byte_order has no meaning for a {r} point (a single bit)"),
            );
            None
        }
        (Some(o), _, dt) => match ByteOrder::parse(o.v) {
            None => {
                d.error(&o.span, unknown_byte_order(o.v));
                None
            }
            Some((order, bits)) => match dt {
                Some(dt) if dt.bits() != bits => {
                    d.error(
                        &o.span,
                        format!(
                            "byte_order \"{}\" is for {bits}-bit values; point \"{pname}\" is {dt} ({}-bit): use {}",
                            o.v,
                            dt.bits(),
                            orders_for(dt.bits())
                        ),
                    );
                    None
                }
                _ => Some(order),
            },
        },
        (None, Some(r), _) if r.is_bit() => Some(ByteOrder::BIG),
        (None, _, Some(dt)) => Some(by_family(default_order, dt.bits())),
        (None, _, None) => None,
    };

    let scale = t.positive(d, "scale").map_or(1.0, |v| v.v);
    let offset = t.number(d, "offset").map_or(0.0, |v| v.v);
    let unit = t.str(d, "unit").map_or(String::new(), |u| u.v.to_string());
    let kind = match t.str(d, "kind") {
        None => (!t.has("kind")).then_some(PointKind::Gauge),
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
    if let (Some(PointKind::Counter), Some(DataType::Bool)) = (kind, data_type) {
        d.error(
            &t.value_span("kind"),
            format!("point \"{pname}\" is bool and cannot be a counter"),
        );
    }
    let rollover = t.positive(d, "rollover");
    if let (Some(r), Some(PointKind::Gauge)) = (&rollover, kind) {
        d.error(
            &r.span,
            "rollover applies to counters only (kind = \"counter\")",
        );
    }
    let min = t.number(d, "min");
    let max = t.number(d, "max");
    if let (Some(lo), Some(hi)) = (&min, &max) {
        if lo.v > hi.v {
            d.error(&lo.span, format!("min {} is above max {}", lo.v, hi.v));
        }
    }
    if let (Some(a), Some(dt), Some(r)) = (address, data_type, register) {
        let width = if r.is_bit() { 1 } else { u32::from(dt.words()) };
        if u32::from(a) + width > 65_536 {
            d.error(
                &t.value_span("address"),
                format!("point \"{pname}\" ({dt} at address {a}) runs past the last address 65535"),
            );
        }
    }

    if d.count() > before {
        return None;
    }
    let (name, data_type, kind) = (name?, data_type?, kind?);
    let rollover = match (kind, rollover) {
        (PointKind::Counter, Some(r)) => Some(r.v),
        // An absurd scale could overflow to infinity: then there is no usable default.
        (PointKind::Counter, None) => data_type
            .modulus()
            .map(|m| m * scale)
            .filter(|r| r.is_finite()),
        (PointKind::Gauge, _) => None,
    };
    Some(PointDraft {
        name_span: name.span.clone(),
        address_span: t.value_span("address"),
        point: Point {
            name: name.v.to_string(),
            register: register?,
            address: address?,
            data_type,
            byte_order: byte_order?,
            scale,
            offset,
            unit,
            kind,
            rollover,
            min: min.map(|v| v.v),
            max: max.map(|v| v.v),
        },
    })
}

/// `poll_interval_s` (required): 1 ms to 366 days.
pub(super) fn poll_interval(d: &mut Diag<'_>, t: &Section<'_>) -> Option<Duration> {
    if t.has("poll_interval_s") {
        t.positive(d, "poll_interval_s")
            .and_then(|v| match Duration::try_from_secs_f64(v.v) {
                Ok(p)
                    if p >= Duration::from_millis(1) && p <= Duration::from_secs(366 * 86_400) =>
                {
                    Some(p)
                }
                _ => {
                    d.error(
                        &v.span,
                        format!(
                            "poll_interval_s {} is outside 0.001..=31622400 (1 ms to 366 days)",
                            v.v
                        ),
                    );
                    None
                }
            })
    } else {
        t.missing(d, "poll_interval_s");
        None
    }
}
