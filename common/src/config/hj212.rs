//! `[hj212]`: the uplink to an environmental monitoring platform (HJ 212-2017) and its
//! `[[hj212.factor]]`s.

use std::path::PathBuf;
use std::time::Duration;

use chrono::FixedOffset;

use crate::plan::{AuditPlan, Hj212Factor, Hj212Flow, Hj212Plan};
use crate::types::PointKind;

use super::audit::Points;
use super::diag::{Diag, Span};
use super::gateway::split_host_port;
use super::reader::Section;

const HJ212_KEYS: &[&str] = &[
    "address",
    "mn",
    "password_file",
    "st",
    "minute",
    "hour",
    "day",
    "realtime_s",
    "ack",
    "version",
    "sm4_key_file",
    "sm4_form",
    "sm4_length",
    "allow_set_time",
    "heartbeat_s",
    "factor",
];
const FACTOR_KEYS: &[&str] = &["code", "point", "flow", "st"];

/// Minutes a CN 2051 interval may last: divisors of 60, so that intervals line up with the hour.
const MINUTE_STEPS: &[i64] = &[1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60];

/// HJ 212 times are local (China Standard Time) when `[audit]` gives no timezone.
pub const DEFAULT_TIMEZONE_S: i32 = 8 * 3600;

/// kg per (concentration unit x m3): water mg/L x m3 x 1e-3, flue gas mg/m3 x m3 x 1e-6 (DOMAIN.md).
pub fn kg_per_unit_m3(conc_unit: &str) -> Option<f64> {
    match conc_unit.trim().to_ascii_lowercase().as_str() {
        "mg/l" => Some(1e-3),
        "mg/m3" | "mg/nm3" | "mg/m³" => Some(1e-6),
        _ => None,
    }
}

/// An optional boolean, `default` when absent.
fn flag(d: &mut Diag<'_>, t: &Section<'_>, key: &str, default: bool) -> bool {
    match t.item(key) {
        None => default,
        Some(item) => item.as_bool().unwrap_or_else(|| {
            d.error(
                &t.value_span(key),
                format!("expected true or false for {key}"),
            );
            default
        }),
    }
}

/// A pollutant code: 1..=16 letters and digits (`w01018`, `a21026`, `w00000`).
fn valid_code(s: &str) -> bool {
    (1..=16).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric())
}

/// `[hj212]`, its points resolved against `points`; the O2 correction of a factor comes from the
/// `[[audit.pollutant]]` whose concentration it is.
pub(crate) fn parse(
    d: &mut Diag<'_>,
    root: &Section<'_>,
    points: &Points<'_>,
    audit: Option<&AuditPlan>,
) -> Option<Hj212Plan> {
    let item = root.item("hj212")?;
    let t = Section::of_item(d, item, "hj212", "[hj212]")?;
    if t.has("password") {
        d.error(
            &t.key_span("password"),
            "a password is never written in the config: use password_file",
        );
    }
    let allowed: Vec<&str> = HJ212_KEYS.iter().copied().chain(["password"]).collect();
    t.check_keys(d, &allowed);
    let before = d.count();

    let address = t
        .req_str(d, "address")
        .and_then(|a| match split_host_port(a.v, 0) {
            Ok((_, port)) if port != 0 => Some(a.v.to_string()),
            Ok(_) => {
                d.error(
                    &a.span,
                    format!(
                        "address \"{}\" must be host:port, e.g. \"10.0.0.5:9000\"",
                        a.v
                    ),
                );
                None
            }
            Err(why) => {
                d.error(&a.span, format!("address \"{}\": {why}", a.v));
                None
            }
        });
    let mn = t.req_str(d, "mn").and_then(|m| {
        if (1..=24).contains(&m.v.len()) && m.v.chars().all(|c| c.is_ascii_alphanumeric()) {
            Some(m.v.to_string())
        } else {
            d.error(
                &m.span,
                format!(
                    "mn \"{}\" must be 1 to 24 letters and digits (the monitoring point's MN)",
                    m.v
                ),
            );
            None
        }
    });
    let password_file = t.req_str(d, "password_file").and_then(|f| {
        if f.v.trim().is_empty() {
            d.error(&f.span, "password_file must not be empty");
            None
        } else {
            Some(PathBuf::from(f.v))
        }
    });
    let st = if t.has("st") {
        t.int_in(d, "st", 10, 99).map(|v| v.v as u8)
    } else {
        t.missing(d, "st");
        None
    };
    let minute = t.int(d, "minute").map_or(Some(10), |v| {
        if v.v == 0 || MINUTE_STEPS.contains(&v.v) {
            Some(v.v as u32)
        } else {
            d.error(
                &v.span,
                format!(
                    "minute {} must be 0 (off) or a divisor of 60: {}",
                    v.v,
                    MINUTE_STEPS
                        .iter()
                        .map(i64::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            None
        }
    });
    let hour = flag(d, &t, "hour", true);
    let day = flag(d, &t, "day", true);
    let realtime = t
        .int_in(d, "realtime_s", 0, 86_400)
        .map_or(Some(None), |v| {
            Some((v.v > 0).then(|| Duration::from_secs(v.v.unsigned_abs())))
        });
    let ack = flag(d, &t, "ack", true);
    let version = match t.str(d, "version") {
        None => Some(2017),
        Some(v) if v.v == "2017" => Some(2017),
        Some(v) if v.v == "2025" => Some(2025),
        Some(v) => {
            d.error(
                &v.span,
                format!("version \"{}\" must be \"2017\" or \"2025\"", v.v),
            );
            None
        }
    };
    if version == Some(2025) {
        if let Some(m) = t
            .str(d, "mn")
            .filter(|m| m.v.len() != 24 || !m.v.chars().all(|c| c.is_ascii_hexdigit()))
        {
            d.error(
                &m.span,
                format!(
                    "HJ 212-2025: mn \"{}\" must be 24 hex digits (assigned by the platform)",
                    m.v
                ),
            );
        }
    }
    let sm4_key_file = t.str(d, "sm4_key_file").and_then(|f| {
        if version != Some(2025) {
            d.error(
                &f.span,
                "sm4_key_file needs version = \"2025\" (HJ 212-2017 does not encrypt)",
            );
            None
        } else if f.v.trim().is_empty() {
            d.error(&f.span, "sm4_key_file must not be empty");
            None
        } else {
            Some(PathBuf::from(f.v))
        }
    });
    let choice = |d: &mut Diag<'_>, key: &str, a: &str, b: &str| match t.str(d, key) {
        None => Some(false),
        Some(v) if v.v == a => Some(false),
        Some(v) if v.v == b => Some(true),
        Some(v) => {
            d.error(
                &v.span,
                format!("{key} \"{}\" must be \"{a}\" or \"{b}\"", v.v),
            );
            None
        }
    };
    let sm4_form = choice(d, "sm4_form", "raw", "text").map(|text| {
        if text {
            crate::hj212::sm4::Form::Text
        } else {
            crate::hj212::sm4::Form::Raw
        }
    });
    let sm4_length = choice(d, "sm4_length", "plain", "sent").map(|sent| {
        if sent {
            crate::hj212::sm4::LengthOf::Sent
        } else {
            crate::hj212::sm4::LengthOf::Plain
        }
    });
    let allow_set_time = flag(d, &t, "allow_set_time", false);
    let heartbeat = t
        .int_in(d, "heartbeat_s", 0, 86_400)
        .map_or(Some(60), |v| Some(v.v.unsigned_abs()));

    let mut factors: Vec<Hj212Factor> = Vec::new();
    let mut codes: Vec<(String, usize)> = Vec::new();
    let tables = t.tables(d, "factor", "[[hj212.factor]]");
    if tables.is_empty() && d.count() == before {
        d.error(
            &t.span,
            "[hj212] needs at least one [[hj212.factor]] (code, point): the values it sends",
        );
    }
    for ft in tables {
        ft.check_keys(d, FACTOR_KEYS);
        let code = ft.req_str(d, "code").and_then(|c| {
            if !valid_code(c.v) {
                d.error(
                    &c.span,
                    format!(
                        "code \"{}\" must be 1 to 16 letters and digits (an HJ 212 pollutant code, e.g. w01018)",
                        c.v
                    ),
                );
                return None;
            }
            let line = c.span.as_ref().map_or(1, |s| d.position(s.start).0);
            if let Some((_, first)) = codes.iter().find(|(k, _)| k == c.v) {
                d.error(
                    &c.span,
                    format!("duplicate factor code \"{}\" (first at line {first})", c.v),
                );
                return None;
            }
            codes.push((c.v.to_string(), line));
            Some(c.v.to_string())
        });
        let point = resolve(d, &ft, "point", points);
        let flow = if ft.has("flow") {
            resolve(d, &ft, "flow", points).map(Some)
        } else {
            Some(None)
        };
        // ST 44 (分表计电): a facility's electricity in packets of their own, HJ 212-2025 only.
        let st = if ft.has("st") {
            match ft.int_in(d, "st", 0, 99) {
                Some(v) if v.v == 44 && version == Some(2025) => Some(Some(44u8)),
                Some(v) => {
                    d.error(
                        &v.span,
                        format!(
                            "st {} on a factor: only 44 (electricity of production and treatment facilities, 分表计电), with version = \"2025\"",
                            v.v
                        ),
                    );
                    None
                }
                None => None,
            }
        } else {
            Some(None)
        };
        let (Some(code), Some((point, kind, unit, _)), Some(flow), Some(st)) =
            (code, point, flow, st)
        else {
            continue;
        };
        if st.is_some() {
            let ok = match kind {
                PointKind::Gauge => unit.trim().eq_ignore_ascii_case("kW") || unit.trim() == "W",
                PointKind::Counter => unit.trim().eq_ignore_ascii_case("kWh"),
            };
            if !ok || ft.has("flow") {
                d.error(
                    &ft.key_span("st"),
                    format!("st = 44 sends a facility's electricity: \"{point}\" must be a power gauge in kW (or W) or an energy counter in kWh, without flow; it is in \"{unit}\""),
                );
                continue;
            }
        }
        let flow = match flow {
            None => None,
            Some((fp, fkind, funit, fspan)) => {
                if kind == PointKind::Counter {
                    d.error(
                        &fspan,
                        format!(
                            "flow applies to a concentration (a gauge); \"{point}\" is a counter, whose -Cou is its own increase"
                        ),
                    );
                    continue;
                }
                let Some(k) = kg_per_unit_m3(&unit) else {
                    d.error(
                        &fspan,
                        format!(
                            "a load needs the concentration \"{point}\" in mg/L (water) or mg/m3 (flue gas), its unit is \"{unit}\""
                        ),
                    );
                    continue;
                };
                let want = match fkind {
                    PointKind::Counter => "m3",
                    PointKind::Gauge => "m3/h",
                };
                if funit.trim() != want {
                    d.error(
                        &fspan,
                        format!(
                            "flow \"{fp}\" must be a counter in m3 or a gauge in m3/h; it is a {} in \"{funit}\"",
                            match fkind {
                                PointKind::Counter => "counter",
                                PointKind::Gauge => "gauge",
                            }
                        ),
                    );
                    continue;
                }
                Some(Hj212Flow {
                    point: fp,
                    kind: fkind,
                    kg_per_unit_m3: k,
                })
            }
        };
        let o2 = audit.and_then(|a| {
            a.pollutants
                .iter()
                .find(|p| p.concentration == point)
                .and_then(|p| p.o2.clone())
        });
        factors.push(Hj212Factor {
            code,
            point,
            kind,
            unit,
            flow,
            o2,
            st,
        });
    }

    if d.count() > before {
        return None;
    }
    let timezone = match audit {
        Some(a) => a.timezone,
        None => FixedOffset::east_opt(DEFAULT_TIMEZONE_S)?,
    };
    Some(Hj212Plan {
        address: address?,
        mn: mn?,
        password_file: password_file?,
        version: version?,
        sm4_key_file,
        sm4_form: sm4_form?,
        sm4_length: sm4_length?,
        allow_set_time,
        heartbeat: (version == Some(2025) && heartbeat? > 0)
            .then(|| Duration::from_secs(heartbeat.unwrap_or(60))),
        st: st?,
        minute: minute?,
        hour,
        day,
        realtime: realtime?,
        ack,
        timezone,
        factors,
    })
}

/// A required `meter.point` key: the point, its kind and unit, and where the key's value is.
fn resolve(
    d: &mut Diag<'_>,
    t: &Section<'_>,
    key: &str,
    points: &Points<'_>,
) -> Option<(crate::plan::PointRef, PointKind, String, Span)> {
    let v = t.req_str(d, key)?;
    match points.resolve(v.v) {
        Ok(r) => Some((r.point, r.kind, r.unit, v.span)),
        Err(Some(msg)) => {
            d.error(&v.span, msg);
            None
        }
        Err(None) => None,
    }
}
