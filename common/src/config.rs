//! The configuration file (TOML, schema in CONTRACT.md "Configuration") parsed and validated into a
//! [`Plan`](crate::plan::Plan).
//!
//! Every problem is reported as `FILE:LINE:COL: message`, located at the offending key or value, and
//! all problems of a file are reported at once: validation carries on after an error and only skips
//! what depends on the broken part (a reference to a meter that did not validate is not reported again).
//!
//! Beyond the contract's keys (all optional): `[gateway] max_gap` (also on `[[bus]]` and `[[meter]]`,
//! the most specific wins; default 8 on serial lines (RTU, RTU over TCP), 64 on Modbus TCP: `batching::DEFAULT_MAX_GAP`
//! and `DEFAULT_MAX_GAP_TCP`), `[mqtt] password_env`, `keep_alive_s` (30), `max_inflight` (100),
//! `[metrics] listen`, `[[meter]] template` and `points` (a subset of the template's points),
//! `[[meter.point]] min` and `max`, `[audit] grid_factor_year`, `electricity` (`equivalent` | `equal`
//! with `electricity_kgce_per_kwh` and `electricity_year`), `publish_interval_s` (3600), and per
//! `[[audit.input]]` the `kgce_per_unit` and `co2_kg_per_unit` overrides.
//!
//! Conveniences: a `[[meter]]` may leave out `bus` when there is exactly one bus; a TCP address
//! without a port gets 502; audit dates may be strings or TOML dates; `store_max_mb` defaults to 512.
//! Stricter than the contract's minimum, because each is a silent misreading otherwise: unit id 0 on an
//! RTU bus (broadcast, never answered), an audit input whose unit does not convert to its carrier's,
//! a concentration point that is a counter, a password written in the config.

use std::path::{Path, PathBuf};

use crate::plan::Plan;

mod audit;
mod audit_tree;
mod describe;
mod diag;
pub mod files;
mod gateway;
mod hj212;
mod import;
mod meterbus;
pub(crate) mod meters;
mod offset;
mod reader;
mod sufficiency;
pub mod wiring;

pub use describe::describe;
pub use diag::{cut_echo, ConfigError, ConfigErrors, Diag, Span, ECHO_MAX};
pub use offset::{offset_error, parse_offset};

use diag::into_sorted;
use reader::Section;

/// The top-level tables of a config.
const TOP_KEYS: &[&str] = &[
    "gateway", "mqtt", "metrics", "bus", "meter", "audit", "report", "hj212", "import",
];

/// The plan's paths (made relative to the config's folder by `parse`) made absolute against the
/// working directory now: `--config gw.toml` gives the config's folder as an empty path, and a path
/// derived from `data` (the parent of `data.next-seq`, to fsync) would be empty too.
fn absolute_paths(mut plan: Plan) -> Plan {
    let abs = |p: &mut PathBuf| {
        if p.is_relative() {
            if let Ok(a) = std::path::absolute(&*p) {
                *p = a;
            }
        }
    };
    abs(&mut plan.gateway.data_dir);
    if let Some(f) = plan.sign_key_file.as_mut() {
        abs(f);
    }
    if let Some(h) = plan.hj212.as_mut() {
        abs(&mut h.password_file);
    }
    for f in [
        &mut plan.mqtt.password_file,
        &mut plan.mqtt.ca_file,
        &mut plan.mqtt.client_cert_file,
        &mut plan.mqtt.client_key_file,
    ]
    .into_iter()
    .flatten()
    {
        abs(f);
    }
    plan
}

/// Read and validate a config file. A missing or unreadable file is one error naming the file.
pub fn load(path: &Path) -> Result<Plan, ConfigErrors> {
    parse(&read_text(path)?, path).map(absolute_paths)
}

/// The text of a config file (the agent's, the park's, a simulator scenario): a file that is missing,
/// unreadable or not UTF-8 is one error naming the file (and the first byte that is not UTF-8).
pub fn read_text(path: &Path) -> Result<String, ConfigErrors> {
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Ok(text),
            Err(e) => {
                let offset = e.utf8_error().valid_up_to();
                let valid = String::from_utf8_lossy(&e.as_bytes()[..offset]).into_owned();
                let mut d = Diag::new(path, &valid);
                d.error(
                    &Some(offset..offset),
                    "the file is not valid UTF-8 text (a TOML config must be UTF-8)",
                );
                Err(into_sorted(d.errors))
            }
        },
        Err(e) => {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "no such file".to_string(),
                std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
                _ => e.to_string(),
            };
            Err(ConfigErrors::whole_file(
                path,
                format!("cannot read the config file: {why}"),
            ))
        }
    }
}

/// The `[audit]` table inside the `index`-th `[[array]]` table of a config text (plantmeter-park's
/// `[[plant]]` with its `[plant.audit]`), validated exactly like the agent's `[audit]`, its points
/// resolved against `meters` (whose names may be any string, e.g. `site/id/meter`). `Ok(None)` when
/// that table has no `audit`.
pub fn parse_nested_audit(
    text: &str,
    source: &Path,
    array: &str,
    index: usize,
    meters: &[crate::plan::Meter],
) -> Result<Option<crate::plan::AuditPlan>, ConfigErrors> {
    let mut d = Diag::new(source, text);
    let doc = match toml_edit::Document::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            d.error(
                &e.span().or(Some(0..0)),
                format!("TOML syntax error: {}", e.message()),
            );
            return Err(into_sorted(d.errors));
        }
    };
    let Some(table) = doc
        .get(array)
        .and_then(|i| i.as_array_of_tables())
        .and_then(|a| a.get(index))
    else {
        return Ok(None);
    };
    let root = Section::new(table, table.span(), format!("[[{array}]]"));
    let broken = std::collections::BTreeSet::new();
    let audit = audit::parse(
        &mut d,
        &root,
        &audit::Points {
            meters,
            broken_meters: &broken,
        },
    );
    if d.has_errors() {
        Err(into_sorted(d.errors))
    } else {
        Ok(audit)
    }
}

/// Validate config text; `source` names the file in messages and becomes `Plan::source`.
pub fn parse(text: &str, source: &Path) -> Result<Plan, ConfigErrors> {
    let mut d = Diag::new(source, text);
    let doc = match toml_edit::Document::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let span = e.span().or(Some(0..0));
            d.error(&span, format!("TOML syntax error: {}", e.message()));
            return Err(into_sorted(d.errors));
        }
    };
    if doc.as_table().is_empty() {
        d.error(
            &Some(0..0),
            "the file is empty: a config needs [gateway], [mqtt], a [[bus]] and a [[meter]] (see CONTRACT.md)",
        );
        return Err(into_sorted(d.errors));
    }
    let root = Section::new(doc.as_table(), Some(0..0), "the top level");
    root.check_keys(&mut d, TOP_KEYS);

    // A desk audit (no bus, only manual meters filled by `import`) polls and publishes nothing:
    // [gateway] and [mqtt] may be left out.
    let no_bus = root.item("bus").is_none()
        && root
            .item("meter")
            .and_then(|m| m.as_array_of_tables())
            .is_some_and(|a| {
                a.iter()
                    .all(|t| t.get("manual").and_then(|v| v.as_bool()) == Some(true))
            });
    let gateway_written = root.has("gateway");
    let mqtt_written = root.has("mqtt");
    let mut gateway = gateway::gateway(&mut d, &root, no_bus);
    if no_bus && !gateway_written {
        gateway = Some((gateway::desk_gateway(), None));
    }
    let mut mqtt = gateway::mqtt(&mut d, &root, gateway.as_ref().map(|g| &g.0), no_bus);
    if let (true, false, Some(g)) = (no_bus, mqtt_written, &gateway) {
        mqtt = Some(gateway::desk_mqtt(&g.0));
    }
    let desk = no_bus && !mqtt_written;
    let metrics_listen = gateway::metrics(&mut d, &root);
    let mut sign_key_file = gateway::report(&mut d, &root);
    let gateway_gap = gateway.as_ref().and_then(|g| g.1);
    let mut template_errors = Vec::new();
    let parsed = meters::parse(&mut d, &root, gateway_gap, &mut template_errors);
    let audit = audit::parse(
        &mut d,
        &root,
        &audit::Points {
            meters: &parsed.meters,
            broken_meters: &parsed.broken_meters,
        },
    );
    let hj212 = hj212::parse(
        &mut d,
        &root,
        &audit::Points {
            meters: &parsed.meters,
            broken_meters: &parsed.broken_meters,
        },
        audit.as_ref(),
    );

    let import = import::parse(
        &mut d,
        &root,
        &audit::Points {
            meters: &parsed.meters,
            broken_meters: &parsed.broken_meters,
        },
    );

    let mut errors = d.errors;
    errors.append(&mut template_errors);
    match (gateway, mqtt) {
        (Some((mut gateway, _)), Some(mut mqtt)) if errors.is_empty() => {
            // Relative paths are relative to the config file's folder, not to wherever the command runs.
            let base = source.parent().unwrap_or(Path::new(""));
            let resolve = |p: &mut std::path::PathBuf| {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            };
            resolve(&mut gateway.data_dir);
            if let Some(f) = sign_key_file.as_mut() {
                resolve(f);
            }
            let mut hj212 = hj212;
            if let Some(h) = hj212.as_mut() {
                resolve(&mut h.password_file);
                if let Some(k) = h.sm4_key_file.as_mut() {
                    resolve(k);
                }
            }
            for f in [
                &mut mqtt.password_file,
                &mut mqtt.ca_file,
                &mut mqtt.client_cert_file,
                &mut mqtt.client_key_file,
            ]
            .into_iter()
            .flatten()
            {
                resolve(f);
            }
            Ok(Plan {
                source: source.to_path_buf(),
                gateway,
                mqtt,
                buses: parsed.buses,
                manual_meters: parsed.manual,
                audit,
                metrics_listen,
                sign_key_file,
                hj212,
                import,
                desk,
            })
        }
        _ => Err(into_sorted(errors)),
    }
}
