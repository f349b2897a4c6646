//! Meter trees (`parent`, `reuse`, `accuracy_class` on a `[[meter.point]]`, or `[[audit.tree]]`), the water
//! balance's points (`[audit.water]`), the balance tolerance (`[audit.balance]`), the metering ledger
//! (`[[audit.ledger]]`, `[[audit.coverage]]`) and waste (`[[audit.waste]]`).

use std::collections::HashMap;

use crate::audit::balance::{BalancePlan, TreeNode, WaterPoint};
use crate::audit::coverage::{
    CoverageThreshold, LedgerItem, LedgerMeterPlan, LedgerPlan, MeteringLevel,
};
use crate::audit::indicators::unit_factor;
use crate::audit::waste::{WasteKind, WastePlan};
use crate::plan::{AuditPollutant, Carrier, Medium, PointRef};
use crate::types::PointKind;

use super::audit::{carrier_key, point_key, Points};
use super::diag::{Diag, Span};
use super::reader::Section;

/// Keys a `[[meter.point]]` may carry for the audit's balances and ledger.
pub(crate) const POINT_KEYS: &[&str] = &["parent", "reuse", "accuracy_class"];

/// Keys of `[audit]` read here.
pub(crate) const AUDIT_KEYS: &[&str] = &["tree", "water", "balance", "ledger", "coverage", "waste"];

/// What the balances, ledger and waste sections give.
pub(crate) struct Depth {
    pub balance: BalancePlan,
    pub ledger: LedgerPlan,
    pub waste: Vec<WastePlan>,
}

/// One `parent` relation as written.
struct Edge {
    point: PointRef,
    parent: Option<PointRef>,
    carrier: Option<Carrier>,
    span: Span,
}

/// A point key's tree settings, read from the `[[meter]]` tables of `root`.
fn point_settings(
    d: &mut Diag<'_>,
    root: &Section<'_>,
    points: &Points<'_>,
    edges: &mut Vec<Edge>,
    reuse: &mut Vec<(PointRef, Span)>,
    accuracy: &mut Vec<(PointRef, f64)>,
) {
    let Some(meters) = root.item("meter").and_then(|m| m.as_array_of_tables()) else {
        return;
    };
    for m in meters.iter() {
        let Some(mname) = m.get("name").and_then(|n| n.as_str()) else {
            continue;
        };
        let Some(pts) = m.get("point").and_then(|p| p.as_array_of_tables()) else {
            continue;
        };
        for p in pts.iter() {
            let Some(pname) = p.get("name").and_then(|n| n.as_str()) else {
                continue;
            };
            let what = format!("[[meter.point]] \"{pname}\" of meter \"{mname}\"");
            let t = Section::new(p, p.span(), what);
            let me = PointRef {
                meter: mname.to_string(),
                point: pname.to_string(),
            };
            if let Some(v) = accuracy_class(d, &t) {
                accuracy.push((me.clone(), v));
            }
            if t.has("parent") {
                if let Some((r, span)) = point_key(d, &t, "parent", points) {
                    edges.push(Edge {
                        point: me.clone(),
                        parent: Some(r.point),
                        carrier: None,
                        span,
                    });
                }
            }
            if let Some(item) = t.item("reuse") {
                match item.as_bool() {
                    Some(true) => reuse.push((me.clone(), t.value_span("reuse"))),
                    Some(false) => {}
                    None => d.error(
                        &t.value_span("reuse"),
                        format!("reuse in {} must be true or false", t.what),
                    ),
                }
            }
        }
    }
}

/// `accuracy_class` (percent: 0.2, 0.5, 1, 2 ...).
fn accuracy_class(d: &mut Diag<'_>, t: &Section<'_>) -> Option<f64> {
    let v = t.positive(d, "accuracy_class")?;
    if v.v > 10.0 {
        d.error(
            &v.span,
            format!(
                "accuracy_class {} is a percentage of the reading (0.2, 0.5, 1, 2 ...); above 10 is not a meter's class",
                v.v
            ),
        );
        return None;
    }
    Some(v.v)
}

/// The balances, ledger and waste of `[audit]` `t`; `inputs` are the audit's inputs (point, carrier).
pub(crate) fn parse(
    d: &mut Diag<'_>,
    root: &Section<'_>,
    t: &Section<'_>,
    points: &Points<'_>,
    inputs: &[(PointRef, Carrier)],
    pollutants: &[AuditPollutant],
) -> Depth {
    let mut edges = Vec::new();
    let mut reuse = Vec::new();
    let mut accuracy = Vec::new();
    point_settings(d, root, points, &mut edges, &mut reuse, &mut accuracy);
    for tt in t.tables(d, "tree", "[[audit.tree]]") {
        tt.check_keys(d, &["point", "parent", "carrier", "accuracy_class"]);
        let Some((me, span)) = point_key(d, &tt, "point", points) else {
            continue;
        };
        if let Some(v) = accuracy_class(d, &tt) {
            accuracy.push((me.point.clone(), v));
        }
        let parent = if tt.has("parent") {
            match point_key(d, &tt, "parent", points) {
                Some((r, _)) => Some(r.point),
                None => continue,
            }
        } else {
            None
        };
        let carrier = if tt.has("carrier") {
            match carrier_key(d, &tt) {
                Some((c, _)) => Some(c),
                None => continue,
            }
        } else {
            None
        };
        edges.push(Edge {
            point: me.point,
            parent,
            carrier,
            span,
        });
    }
    let tolerance_pct = match t.table(d, "balance", "[audit.balance]") {
        Some(b) => {
            b.check_keys(d, &["tolerance_pct"]);
            b.positive(d, "tolerance_pct").map(|v| v.v)
        }
        None => None,
    };
    let nodes = tree(d, &edges, points, inputs);
    let mut water = water(d, t, points, pollutants, &nodes, inputs);
    for (r, span) in reuse {
        if let Some(w) = water_point(d, &r, &span, points, &nodes, inputs, true) {
            if !water.1.iter().any(|x| x.point == w.point) {
                water.1.push(w);
            }
        }
    }
    let ledger = ledger(d, t, points, &mut accuracy);
    let waste = waste(d, t, points);
    let intake = inputs
        .iter()
        .filter(|(_, c)| *c == Carrier::Water)
        .filter_map(|(p, _)| {
            let unit = points.resolve(&p.qualified()).ok()?.unit;
            Some(WaterPoint {
                point: p.clone(),
                factor: unit_factor(&unit, Carrier::Water).unwrap_or(1.0),
            })
        })
        .collect();
    let configured = !nodes.is_empty() || !water.1.is_empty() || t.has("water");
    Depth {
        balance: BalancePlan {
            configured,
            nodes,
            accuracy,
            tolerance_pct,
            intake,
            reuse: water.1,
            discharge: water.0,
            consumption: water.2,
        },
        ledger,
        waste,
    }
}

/// Validate the edges into tree nodes, parents before their children: unknown points were reported by
/// `point_key`; here cycles, a point given two parents, carriers that do not match, units that do not
/// convert, gauges.
fn tree(
    d: &mut Diag<'_>,
    edges: &[Edge],
    points: &Points<'_>,
    inputs: &[(PointRef, Carrier)],
) -> Vec<TreeNode> {
    // One parent per point (a root may be listed with none, to give its carrier).
    let mut parent_of: HashMap<&PointRef, &Edge> = HashMap::new();
    let mut carrier_of: HashMap<&PointRef, (Carrier, &Span)> = HashMap::new();
    let mut bad = false;
    for e in edges {
        if let Some(c) = e.carrier {
            carrier_of.insert(&e.point, (c, &e.span));
        }
        let Some(p) = &e.parent else { continue };
        if p == &e.point {
            d.error(
                &e.span,
                format!("meter tree: {} is given itself as parent", e.point),
            );
            bad = true;
            continue;
        }
        if let Some(first) = parent_of.get(&e.point) {
            if first.parent != e.parent {
                d.error(
                    &e.span,
                    format!(
                        "meter tree: {} is given two parents ({} and {}); a meter has one",
                        e.point,
                        first
                            .parent
                            .as_ref()
                            .map_or(String::new(), PointRef::qualified),
                        p
                    ),
                );
                bad = true;
            }
            continue;
        }
        parent_of.insert(&e.point, e);
    }
    // Cycles: follow each point's parents; coming back to a point already on the path is a cycle.
    let mut in_cycle: Vec<&PointRef> = Vec::new();
    for e in parent_of.values() {
        let mut path: Vec<&PointRef> = vec![&e.point];
        let mut at = &e.point;
        while let Some(next) = parent_of.get(at).and_then(|x| x.parent.as_ref()) {
            if let Some(k) = path.iter().position(|p| *p == next) {
                let cycle = &path[k..];
                if !cycle.iter().any(|p| in_cycle.contains(p)) {
                    let names: Vec<String> = cycle
                        .iter()
                        .map(|p| p.qualified())
                        .chain(std::iter::once(next.qualified()))
                        .collect();
                    d.error(
                        &e.span,
                        format!("meter tree: a cycle of parents {}", names.join(" -> ")),
                    );
                    in_cycle.extend(cycle.iter().copied());
                }
                bad = true;
                break;
            }
            path.push(next);
            at = next;
        }
    }
    if bad {
        return Vec::new();
    }
    let root_of = |p: &PointRef| -> PointRef {
        let mut at = p.clone();
        while let Some(next) = parent_of.get(&at).and_then(|x| x.parent.clone()) {
            at = next;
        }
        at
    };
    let input_carrier = |p: &PointRef| inputs.iter().find(|(r, _)| r == p).map(|(_, c)| *c);
    // Every point in a tree: those with a parent and their parents; in depth order (roots first).
    let mut members: Vec<(usize, &PointRef)> = Vec::new();
    for e in parent_of.values() {
        for p in [Some(&e.point), e.parent.as_ref()].into_iter().flatten() {
            if !members.iter().any(|(_, m)| *m == p) {
                let mut depth = 0;
                let mut at = p;
                while let Some(next) = parent_of.get(at).and_then(|x| x.parent.as_ref()) {
                    depth += 1;
                    at = next;
                }
                members.push((depth, p));
            }
        }
    }
    members.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| a.1.qualified().cmp(&b.1.qualified()))
    });
    let mut nodes = Vec::with_capacity(members.len());
    for (_, p) in members {
        let root = root_of(p);
        let span = parent_of
            .get(p)
            .map(|e| e.span.clone())
            .or_else(|| carrier_of.get(&root).map(|(_, s)| (*s).clone()))
            .or_else(|| {
                edges
                    .iter()
                    .find(|e| e.parent.as_ref() == Some(p))
                    .map(|e| e.span.clone())
            })
            .unwrap_or(None);
        let carrier = match carrier_of
            .get(&root)
            .map(|(c, _)| *c)
            .or_else(|| input_carrier(&root))
        {
            Some(c) => c,
            None => {
                if &root == p {
                    d.error(
                        &span,
                        format!(
                            "meter tree: the carrier of the tree under {root} is unknown; make {root} an [[audit.input]] or give it in [[audit.tree]] point = \"{root}\", carrier = \"...\""
                        ),
                    );
                }
                continue;
            }
        };
        if let Some(c) = input_carrier(p).filter(|c| *c != carrier) {
            d.error(
                &span,
                format!(
                    "meter tree: carrier mismatch: {p} is an [[audit.input]] of carrier {}, but the tree under {root} is {}",
                    c.as_str(),
                    carrier.as_str()
                ),
            );
            continue;
        }
        let Ok(r) = points.resolve(&p.qualified()) else {
            continue;
        };
        if r.kind != PointKind::Counter {
            d.error(
                &span,
                format!("meter tree: {p} is a gauge; a balance adds up counters (totalizers)"),
            );
            continue;
        }
        let Some(factor) = unit_factor(&r.unit, carrier) else {
            d.error(
                &span,
                format!(
                    "meter tree: {p} reads in \"{}\", which does not convert to {} ({}) of the tree under {root}",
                    r.unit,
                    carrier.unit(),
                    carrier.as_str()
                ),
            );
            continue;
        };
        nodes.push(TreeNode {
            point: p.clone(),
            parent: parent_of.get(p).and_then(|e| e.parent.clone()),
            carrier,
            factor,
        });
    }
    nodes
}

/// A water point's factor to m3: a counter in m3 (or L), or a flow gauge in m3/h (its hourly amount is
/// its mean x 1 h); None for anything else.
fn water_factor(kind: PointKind, unit: &str) -> Option<f64> {
    match kind {
        PointKind::Counter => unit_factor(unit, Carrier::Water),
        PointKind::Gauge => unit
            .trim()
            .replace('³', "3")
            .eq_ignore_ascii_case("m3/h")
            .then_some(1.0),
    }
}

/// A water point of the balance: a counter in m3 (or L), or a flow gauge in m3/h (`reuse` points must be
/// counters outside the trees and must not be intake: reused water is not drawn again).
fn water_point(
    d: &mut Diag<'_>,
    p: &PointRef,
    span: &Span,
    points: &Points<'_>,
    nodes: &[TreeNode],
    inputs: &[(PointRef, Carrier)],
    is_reuse: bool,
) -> Option<WaterPoint> {
    let r = points.resolve(&p.qualified()).ok()?;
    if is_reuse {
        if inputs.iter().any(|(x, _)| x == p) {
            d.error(
                span,
                format!("{p} is marked reuse but is also an [[audit.input]]: reused water would count as water taken in"),
            );
            return None;
        }
        if nodes.iter().any(|n| &n.point == p) {
            d.error(
                span,
                format!("{p} is marked reuse but is in a meter tree: reused water is not drawn through the intake meters"),
            );
            return None;
        }
    }
    match water_factor(r.kind, &r.unit) {
        Some(f) => Some(WaterPoint {
            point: p.clone(),
            factor: f,
        }),
        None => {
            d.error(
                span,
                format!(
                    "{p} must be a water counter in m3 (or L) or a flow gauge in m3/h; it is a {} in \"{}\"",
                    if r.kind == PointKind::Gauge { "gauge" } else { "counter" },
                    r.unit
                ),
            );
            None
        }
    }
}

/// `[audit.water]`: discharge (default: the flows of the water pollutants), consumption, reuse.
fn water(
    d: &mut Diag<'_>,
    t: &Section<'_>,
    points: &Points<'_>,
    pollutants: &[AuditPollutant],
    nodes: &[TreeNode],
    inputs: &[(PointRef, Carrier)],
) -> (Vec<WaterPoint>, Vec<WaterPoint>, Vec<WaterPoint>) {
    let w = t.table(d, "water", "[audit.water]");
    if let Some(w) = &w {
        w.check_keys(d, &["discharge", "consumption", "reuse"]);
    }
    let mut list = |key: &str, is_reuse: bool| -> Option<Vec<WaterPoint>> {
        let w = w.as_ref()?;
        let arr = w.array(d, key)?;
        let mut out = Vec::new();
        for v in arr.v.iter() {
            let span = v.span();
            let Some(s) = v.as_str() else {
                d.error(
                    &span,
                    format!("[audit.water] {key}: expected \"meter.point\" strings"),
                );
                continue;
            };
            let r = match points.resolve(s) {
                Ok(r) => r,
                Err(Some(msg)) => {
                    d.error(&span, msg);
                    continue;
                }
                Err(None) => continue,
            };
            if let Some(p) = water_point(d, &r.point, &span, points, nodes, inputs, is_reuse) {
                out.push(p);
            }
        }
        Some(out)
    };
    let discharge = list("discharge", false);
    let consumption = list("consumption", false).unwrap_or_default();
    let reuse = list("reuse", true).unwrap_or_default();
    let discharge = discharge.unwrap_or_else(|| {
        // The outfalls' flows: a counter in m3 or a gauge in m3/h, once each.
        let mut out: Vec<WaterPoint> = Vec::new();
        for p in pollutants
            .iter()
            .filter(|p| p.name.medium() == Medium::Water)
        {
            if out.iter().any(|w| w.point == p.flow) {
                continue;
            }
            let Ok(r) = points.resolve(&p.flow.qualified()) else {
                continue;
            };
            if let Some(factor) = water_factor(r.kind, &r.unit) {
                out.push(WaterPoint {
                    point: p.flow.clone(),
                    factor,
                });
            }
        }
        out
    });
    (discharge, reuse, consumption)
}

/// `[[audit.ledger]]` and `[[audit.coverage]]`.
fn ledger(
    d: &mut Diag<'_>,
    t: &Section<'_>,
    points: &Points<'_>,
    accuracy: &mut Vec<(PointRef, f64)>,
) -> LedgerPlan {
    let mut items: Vec<LedgerItem> = Vec::new();
    let level_of = |d: &mut Diag<'_>, s: &Section<'_>| -> Option<MeteringLevel> {
        let l = s.req_str(d, "level")?;
        let parsed = MeteringLevel::parse(l.v);
        if parsed.is_none() {
            d.error(
                &l.span,
                format!(
                    "unknown level \"{}\"; use site (进出用能单位), sub_unit (主要次级用能单位) or equipment (主要用能设备)",
                    l.v
                ),
            );
        }
        parsed
    };
    for lt in t.tables(d, "ledger", "[[audit.ledger]]") {
        lt.check_keys(d, &["name", "level", "carrier", "required", "points"]);
        let name = lt.req_str(d, "name").and_then(|n| {
            if n.v.trim().is_empty() || n.v.len() > 128 {
                d.error(&n.span, "ledger name must be 1..128 characters");
                return None;
            }
            if items.iter().any(|i| i.name == n.v) {
                d.error(&n.span, format!("duplicate ledger item \"{}\"", n.v));
                return None;
            }
            Some(n.v.to_string())
        });
        let level = level_of(d, &lt);
        let carrier = carrier_key(d, &lt).map(|(c, _)| c);
        let required = if lt.has("required") {
            lt.int_in(d, "required", 1, 10_000)
                .and_then(|v| u32::try_from(v.v).ok())
        } else {
            Some(1)
        };
        let mut meters = Vec::new();
        if let Some(arr) = lt.array(d, "points") {
            for v in arr.v.iter() {
                let span = v.span();
                let (s, class) = match (v.as_str(), v.as_inline_table()) {
                    (Some(s), _) => (s, None),
                    (None, Some(it)) => {
                        let sec =
                            Section::new(it, span.clone(), "a point of [[audit.ledger]] points");
                        sec.check_keys(d, &["point", "accuracy_class"]);
                        let Some(s) = sec.req_str(d, "point") else {
                            continue;
                        };
                        (s.v, accuracy_class(d, &sec))
                    }
                    _ => {
                        d.error(
                            &span,
                            "[[audit.ledger]] points: expected \"meter.point\" or { point = \"meter.point\", accuracy_class = 0.5 }",
                        );
                        continue;
                    }
                };
                let r = match points.resolve(s) {
                    Ok(r) => r,
                    Err(Some(msg)) => {
                        d.error(&span, msg);
                        continue;
                    }
                    Err(None) => continue,
                };
                if let Some(c) = class {
                    accuracy.retain(|(p, _)| p != &r.point);
                    accuracy.push((r.point.clone(), c));
                }
                let multiplier = points
                    .meters
                    .iter()
                    .find(|m| m.name == r.point.meter)
                    .and_then(|m| m.multiplier.as_ref())
                    .map(|m| m.energy);
                meters.push(LedgerMeterPlan {
                    accuracy_class: None,
                    multiplier,
                    point: r.point,
                });
            }
        }
        if let (Some(name), Some(level), Some(carrier), Some(required)) =
            (name, level, carrier, required)
        {
            items.push(LedgerItem {
                name,
                level,
                carrier,
                required,
                meters,
            });
        }
    }
    // Classes from the points' keys, [[audit.tree]] or the ledger, whichever gave one.
    for i in items.iter_mut() {
        for m in i.meters.iter_mut() {
            m.accuracy_class = accuracy
                .iter()
                .find(|(p, _)| *p == m.point)
                .map(|(_, c)| *c);
        }
    }
    let mut thresholds: Vec<CoverageThreshold> = Vec::new();
    for ct in t.tables(d, "coverage", "[[audit.coverage]]") {
        ct.check_keys(d, &["carrier", "level", "min_pct"]);
        let carrier = carrier_key(d, &ct).map(|(c, _)| c);
        let level = level_of(d, &ct);
        let min = match ct.number(d, "min_pct") {
            Some(v) if (0.0..=100.0).contains(&v.v) => Some(v.v),
            Some(v) => {
                d.error(
                    &v.span,
                    format!("min_pct {} must be a percentage 0..100", v.v),
                );
                None
            }
            None => {
                ct.missing(d, "min_pct");
                None
            }
        };
        if let (Some(carrier), Some(level), Some(min_pct)) = (carrier, level, min) {
            if thresholds
                .iter()
                .any(|x| x.carrier == carrier && x.level == level)
            {
                d.error(
                    &ct.span,
                    format!(
                        "duplicate [[audit.coverage]] for carrier {} at level {}",
                        carrier.as_str(),
                        level.as_str()
                    ),
                );
                continue;
            }
            thresholds.push(CoverageThreshold {
                carrier,
                level,
                min_pct,
            });
        }
    }
    LedgerPlan { items, thresholds }
}

/// `[[audit.waste]]`: name, kind (solid | hazardous), a counter in t or kg.
fn waste(d: &mut Diag<'_>, t: &Section<'_>, points: &Points<'_>) -> Vec<WastePlan> {
    let mut out: Vec<WastePlan> = Vec::new();
    for wt in t.tables(d, "waste", "[[audit.waste]]") {
        wt.check_keys(d, &["name", "kind", "point"]);
        let name = wt.req_str(d, "name").and_then(|n| {
            let ok = (1..=64).contains(&n.v.len())
                && n.v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !ok {
                d.error(
                    &n.span,
                    format!("waste name \"{}\" must be 1..64 of [A-Za-z0-9_-]", n.v),
                );
                return None;
            }
            if out.iter().any(|w| w.name == n.v) {
                d.error(&n.span, format!("duplicate waste \"{}\"", n.v));
                return None;
            }
            Some(n.v.to_string())
        });
        let kind = wt.req_str(d, "kind").and_then(|k| match k.v {
            "solid" => Some(WasteKind::Solid),
            "hazardous" => Some(WasteKind::Hazardous),
            other => {
                d.error(
                    &k.span,
                    format!("unknown waste kind \"{other}\"; use solid (一般工业固体废物) or hazardous (危险废物)"),
                );
                None
            }
        });
        let point = point_key(d, &wt, "point", points).and_then(|(r, span)| {
            let factor = unit_factor(&r.unit, Carrier::Material);
            if r.kind != PointKind::Counter || factor.is_none() {
                d.error(
                    &span,
                    format!(
                        "waste point {} must be a counter in t or kg (cumulative tonnes shipped or produced); it is a {} in \"{}\"",
                        r.point,
                        if r.kind == PointKind::Gauge { "gauge" } else { "counter" },
                        r.unit
                    ),
                );
                return None;
            }
            Some((r.point, factor.unwrap_or(1.0)))
        });
        if let (Some(name), Some(kind), Some((point, factor))) = (name, kind, point) {
            out.push(WastePlan {
                name,
                kind,
                point,
                factor,
            });
        }
    }
    out
}
