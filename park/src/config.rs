//! The park configuration (CONTRACT.md, `plantmeter-park`), parsed and validated once into [`Config`].
//!
//! Errors are [`ConfigErrors`] from plantmeter-common, so they read exactly like the agent's:
//! `FILE:LINE:COL: message`, every error of the file at once where the file parses. Unknown keys are
//! errors with a "did you mean"; values that need checking beyond their type (names, URLs, addresses,
//! a token for a non-loopback listener) are located at the value.
//!
//! Beyond the contract's keys: `[mqtt] client_id` (the base of each instance's client id, default
//! `plantmeter-park`), `username`, `password_file`, `keep_alive_s` (30); `[database] batch` (rows per
//! insert, default 500); `[[plant]] industry`, `output_value` and `value_added` (`{ baseline = …,
//! reporting = … }`, 10^4 yuan); `[[utility]]` with `[[utility.share]]` (the park's shared utilities,
//! `allocation.rs`).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono::FixedOffset;
use plantmeter_common::config::{offset_error, parse_offset, ConfigErrors, Diag};
use serde::Deserialize;
use toml::Spanned;

/// A validated park configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: PathBuf,
    pub park: String,
    pub timezone: FixedOffset,
    pub database: Database,
    pub mqtt: Mqtt,
    pub http: Http,
    pub plants: Vec<Plant>,
    /// Shared utilities allocated to plants by their sub-meters (`[[utility]]`).
    pub utilities: Vec<Utility>,
}

/// `[[utility]]`: a shared utility (a central boiler's steam, the park's waste-water plant) whose
/// metered total is allocated to member plants in proportion to their sub-meters (DOMAIN.md).
#[derive(Debug, Clone)]
pub struct Utility {
    pub name: String,
    /// What is allocated: a counter on a configured gateway, `site/id/meter.point`.
    pub point: String,
    /// The plants' indicator the allocation adds to (a report indicator key; default: the name).
    pub indicator: String,
    /// Standard coal per unit of the point (kgce), when the allocation also adds to `energy`.
    pub kgce_per_unit: Option<f64>,
    /// A share whose sub-meter or the utility's own meter covers less of a period than this gets
    /// no allocation (null, with the reason).
    pub min_completeness: f64,
    pub shares: Vec<Share>,
}

/// `[[utility.share]]`: a plant's sub-meter of the utility.
#[derive(Debug, Clone)]
pub struct Share {
    pub plant: String,
    /// `site/id/meter.point`, a counter on a configured gateway.
    pub point: String,
}

/// A figure entered per plant and audit period (`{ baseline = …, reporting = … }`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PerPeriod {
    pub baseline: Option<f64>,
    pub reporting: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct Database {
    /// A `postgres://` URL or a libpq key=value string, without the password.
    pub url: String,
    pub password_file: Option<PathBuf>,
    /// Largest number of data messages stored in one statement.
    pub batch: usize,
}

#[derive(Debug, Clone)]
pub struct Mqtt {
    pub url: String,
    pub host: String,
    pub port: u16,
    pub topic_prefix: String,
    pub share_group: String,
    pub client_id: String,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub keep_alive_s: u64,
}

#[derive(Debug, Clone)]
pub struct Http {
    pub listen: SocketAddr,
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Plant {
    pub name: String,
    pub enterprise: Option<String>,
    /// `site/id`, as in the topics.
    pub gateways: Vec<String>,
    /// The plant's `[plant.audit]` table as written (points as `site/id/meter.point`).
    pub audit: Option<toml::Table>,
    /// Its industry, for the benchmark table (plants of one industry side by side).
    pub industry: Option<String>,
    /// Output value (产值) and value added (工业增加值), 10^4 yuan per audit period, entered by hand.
    pub output_value: PerPeriod,
    pub value_added: PerPeriod,
}

impl Plant {
    /// The `[[audit.level]]` entry of `indicator` in the plant's audit, as written.
    pub fn level(&self, indicator: &str) -> Option<&toml::Value> {
        self.audit
            .as_ref()?
            .get("level")?
            .as_array()?
            .iter()
            .find(|x| x.get("indicator").and_then(|i| i.as_str()) == Some(indicator))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    park: Spanned<RawPark>,
    database: Spanned<RawDatabase>,
    mqtt: Spanned<RawMqtt>,
    http: Option<Spanned<RawHttp>>,
    #[serde(default)]
    plant: Vec<Spanned<RawPlant>>,
    #[serde(default)]
    utility: Vec<Spanned<RawUtility>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUtility {
    name: Spanned<String>,
    point: Spanned<String>,
    indicator: Option<Spanned<String>>,
    kgce_per_unit: Option<Spanned<f64>>,
    min_completeness: Option<Spanned<f64>>,
    #[serde(default)]
    share: Vec<Spanned<RawShare>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShare {
    plant: Spanned<String>,
    point: Spanned<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPerPeriod {
    baseline: Option<Spanned<f64>>,
    reporting: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPark {
    name: Spanned<String>,
    timezone: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: Spanned<String>,
    password_file: Option<String>,
    batch: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMqtt {
    url: Spanned<String>,
    topic_prefix: Option<Spanned<String>>,
    share_group: Option<Spanned<String>>,
    client_id: Option<Spanned<String>>,
    username: Option<String>,
    password_file: Option<String>,
    keep_alive_s: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<Spanned<String>>,
    token_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlant {
    name: Spanned<String>,
    enterprise: Option<String>,
    gateways: Spanned<Vec<Spanned<String>>>,
    audit: Option<toml::Table>,
    industry: Option<String>,
    output_value: Option<RawPerPeriod>,
    value_added: Option<RawPerPeriod>,
}

/// Read and validate a park config file (read and reported as the agent's: plantmeter-common).
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    parse(&plantmeter_common::config::read_text(path)?, path)
}

/// Names of gateways, meters, plants: `[A-Za-z0-9_-]`, 1..64.
fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Validate config text; `source` names the file in messages.
pub fn parse(text: &str, source: &Path) -> Result<Config, ConfigErrors> {
    let mut d = Diag::new(source, text);
    let raw: RawFile = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            d.at(e.span().unwrap_or(0..0), e.message().trim_end().to_string());
            return Err(ConfigErrors { errors: d.errors });
        }
    };

    let park = raw.park.into_inner();
    if park.name.get_ref().trim().is_empty() {
        d.at(park.name.span(), "[park] name must not be empty");
    }
    let timezone = match &park.timezone {
        None => FixedOffset::east_opt(0),
        Some(tz) => {
            let parsed = parse_offset(tz.get_ref());
            if parsed.is_none() {
                d.at(tz.span(), offset_error("[park] timezone", tz.get_ref()));
            }
            parsed
        }
    };

    let db = raw.database.into_inner();
    if db.url.get_ref().trim().is_empty() {
        d.at(db.url.span(), "[database] url must not be empty");
    } else if db.url.get_ref().parse::<tokio_postgres::Config>().is_err() {
        d.at(
            db.url.span(),
            format!(
                "[database] url \"{}\" is not a PostgreSQL connection string (postgres://user@host:port/db)",
                db.url.get_ref()
            ),
        );
    }
    let batch = match &db.batch {
        Some(b) if !(1..=10_000).contains(b.get_ref()) => {
            d.at(b.span(), "[database] batch must be between 1 and 10000");
            500
        }
        Some(b) => *b.get_ref() as usize,
        None => 500,
    };

    let m = raw.mqtt.into_inner();
    let endpoint = parse_mqtt_url(m.url.get_ref());
    if endpoint.is_none() {
        d.at(
            m.url.span(),
            format!(
                "[mqtt] url \"{}\" is not mqtt://HOST[:PORT] (mqtts:// is not supported by plantmeter-park yet)",
                m.url.get_ref()
            ),
        );
    }
    let topic_prefix = m
        .topic_prefix
        .as_ref()
        .map_or("plantmeter".to_string(), |t| t.get_ref().clone());
    if let Some(t) = &m.topic_prefix {
        let s = t.get_ref();
        if s.is_empty() || s.contains(['+', '#']) || s.starts_with('/') || s.ends_with('/') {
            d.at(
                t.span(),
                format!("[mqtt] topic_prefix \"{s}\" must be a topic without wildcards (+ #) or leading/trailing /"),
            );
        }
    }
    let share_group = m
        .share_group
        .as_ref()
        .map_or("park".to_string(), |t| t.get_ref().clone());
    if let Some(g) = &m.share_group {
        if !valid_name(g.get_ref()) {
            d.at(
                g.span(),
                format!(
                    "[mqtt] share_group \"{}\" must be 1..64 characters of A-Z a-z 0-9 _ -",
                    g.get_ref()
                ),
            );
        }
    }
    let client_id = m
        .client_id
        .as_ref()
        .map_or("plantmeter-park".to_string(), |t| t.get_ref().clone());
    if let Some(c) = &m.client_id {
        if !valid_name(c.get_ref()) {
            d.at(
                c.span(),
                format!(
                    "[mqtt] client_id \"{}\" must be 1..64 characters of A-Z a-z 0-9 _ -",
                    c.get_ref()
                ),
            );
        }
    }
    let keep_alive_s = match &m.keep_alive_s {
        Some(k) if !(5..=3600).contains(k.get_ref()) => {
            d.at(k.span(), "[mqtt] keep_alive_s must be between 5 and 3600");
            30
        }
        Some(k) => *k.get_ref() as u64,
        None => 30,
    };

    let (listen, token_file) = match raw.http {
        None => (SocketAddr::from(([127, 0, 0, 1], 8080)), None),
        Some(h) => {
            let h = h.into_inner();
            let listen = match &h.listen {
                None => Some(SocketAddr::from(([127, 0, 0, 1], 8080))),
                Some(l) => {
                    let a = l.get_ref().parse::<SocketAddr>().ok();
                    if a.is_none() {
                        d.at(
                            l.span(),
                            format!(
                                "[http] listen \"{}\" is not an address like \"127.0.0.1:8080\"",
                                l.get_ref()
                            ),
                        );
                    }
                    a
                }
            };
            if let (Some(a), Some(l)) = (listen, &h.listen) {
                // The contract: only 127.0.0.1 goes without a token. Another loopback address
                // (127.0.0.2, [::1]) may be reachable through a proxy or a container's port map.
                if a.ip() != std::net::IpAddr::from([127, 0, 0, 1]) && h.token_file.is_none() {
                    d.at(
                        l.span(),
                        format!("[http] listen \"{a}\" is not 127.0.0.1: set token_file = \"…\" (the page and API then need that token)"),
                    );
                }
            }
            (
                listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080))),
                h.token_file.map(PathBuf::from),
            )
        }
    };

    let mut plants = Vec::new();
    let mut names = BTreeSet::new();
    let mut owner: std::collections::BTreeMap<String, String> = Default::default();
    for p in raw.plant {
        let p = p.into_inner();
        let name = p.name.get_ref().clone();
        if !valid_name(&name) {
            d.at(
                p.name.span(),
                format!("[[plant]] name \"{name}\" must be 1..64 characters of A-Z a-z 0-9 _ -"),
            );
        } else if !names.insert(name.clone()) {
            d.at(
                p.name.span(),
                format!("[[plant]] \"{name}\" is defined twice"),
            );
        }
        let gw_span = p.gateways.span();
        let gateways = p.gateways.into_inner();
        if gateways.is_empty() {
            d.at(
                gw_span,
                format!("[[plant]] \"{name}\": gateways must name at least one \"site/id\""),
            );
        }
        let mut list = Vec::new();
        for g in gateways {
            let s = g.get_ref();
            let ok = s.split_once('/').is_some_and(|(site, id)| {
                !site.is_empty() && !site.contains(['+', '#', '/']) && valid_name(id)
            });
            if !ok {
                d.at(
                    g.span(),
                    format!("[[plant]] \"{name}\": gateway \"{s}\" is not \"site/id\" (as in the topics {topic_prefix}/site/id/…)"),
                );
                continue;
            }
            if let Some(other) = owner.insert(s.clone(), name.clone()) {
                d.at(
                    g.span(),
                    format!("gateway \"{s}\" is in plant \"{other}\" and in plant \"{name}\": a gateway belongs to one plant"),
                );
            }
            list.push(s.clone());
        }
        let mut per_period = |raw: Option<RawPerPeriod>, key: &str| {
            let raw = raw.unwrap_or_default();
            let mut one = |v: Option<Spanned<f64>>, period: &str| {
                let v = v?;
                if v.get_ref().is_finite() && *v.get_ref() > 0.0 {
                    Some(*v.get_ref())
                } else {
                    d.at(
                        v.span(),
                        format!("[[plant]] \"{name}\": {key}.{period} must be above 0 (10^4 yuan)"),
                    );
                    None
                }
            };
            PerPeriod {
                baseline: one(raw.baseline, "baseline"),
                reporting: one(raw.reporting, "reporting"),
            }
        };
        let output_value = per_period(p.output_value, "output_value");
        let value_added = per_period(p.value_added, "value_added");
        plants.push(Plant {
            name,
            enterprise: p.enterprise,
            gateways: list,
            audit: p.audit,
            industry: p.industry.filter(|s| !s.trim().is_empty()),
            output_value,
            value_added,
        });
    }
    let utilities = utilities(&mut d, raw.utility, &plants);

    for (i, p) in plants.iter().enumerate() {
        if p.audit.is_some() {
            audit_errors(&mut d, text, source, i, p);
        }
    }

    match (timezone, endpoint) {
        (Some(timezone), Some((host, port))) if d.errors.is_empty() => Ok(Config {
            source: source.to_path_buf(),
            park: park.name.into_inner(),
            timezone,
            database: Database {
                url: db.url.into_inner(),
                password_file: db.password_file.map(PathBuf::from),
                batch,
            },
            mqtt: Mqtt {
                url: m.url.into_inner(),
                host,
                port,
                topic_prefix,
                share_group,
                client_id,
                username: m.username,
                password_file: m.password_file.map(PathBuf::from),
                keep_alive_s,
            },
            http: Http { listen, token_file },
            plants,
            utilities,
        }),
        _ => {
            d.errors.sort_by_key(|e| (e.line, e.col));
            Err(ConfigErrors { errors: d.errors })
        }
    }
}

/// Check a `[plant.audit]` without the gateways' meters (they come from `P/meta` at run time):
/// plantmeter-common validates it exactly as the agent's `[audit]`, against no meter at all; every
/// error but "unknown meter" stands, and each point must name one of the plant's gateways.
fn audit_errors(d: &mut Diag<'_>, text: &str, source: &Path, index: usize, plant: &Plant) {
    const NO_METER: &str = "; no meter is defined";
    let Err(errors) =
        plantmeter_common::config::parse_nested_audit(text, source, "plant", index, &[])
    else {
        return;
    };
    // With no meter, inputs do not resolve, so their indicators are unknown to the level check.
    let unresolved = errors.errors.iter().any(|e| e.message.ends_with(NO_METER));
    for mut e in errors.errors {
        if unresolved && e.message.starts_with("unknown indicator") {
            continue;
        }
        if !e.message.ends_with(NO_METER) {
            e.message = e
                .message
                .replace("[[audit.", "[[plant.audit.")
                .replace("[audit]", "[plant.audit]");
            d.errors.push(e);
            continue;
        }
        // `unknown meter "site/id/meter" in "site/id/meter.point"; no meter is defined`
        let meter = e.message.split('"').nth(1).unwrap_or("");
        let point = e.message.split('"').nth(3).unwrap_or(meter);
        let on_gateway = meter
            .rsplit_once('/')
            .is_some_and(|(gw, _)| plant.gateways.iter().any(|g| g == gw));
        if !on_gateway {
            e.message = format!(
                "[plant.audit] point \"{point}\" must be written site/id/meter.point with site/id one of plant \"{}\"'s gateways ({})",
                plant.name,
                plant.gateways.join(", ")
            );
            d.errors.push(e);
        }
    }
}

/// Whether `p` is `site/id/meter.point` on one of the configured gateways (else the error is located).
fn gateway_point(d: &mut Diag<'_>, p: &Spanned<String>, what: &str, plants: &[Plant]) -> bool {
    let s = p.get_ref();
    let on = s
        .rsplit_once('/')
        .filter(|(_, mp)| {
            mp.split_once('.')
                .is_some_and(|(m, q)| !m.is_empty() && !q.is_empty())
        })
        .map(|(gw, _)| gw);
    match on {
        Some(gw) if plants.iter().any(|pl| pl.gateways.iter().any(|g| g == gw)) => true,
        _ => {
            d.at(
                p.span(),
                format!("{what} point \"{s}\" must be written site/id/meter.point with site/id a gateway of a [[plant]] (a [[plant]] without [plant.audit] may hold the park's own gateways)"),
            );
            false
        }
    }
}

/// Points a plant's `[plant.audit]` reads (every `point = "…"` value in it).
fn audit_points(t: &toml::Table, out: &mut Vec<String>) {
    for (k, v) in t {
        match v {
            toml::Value::String(s) if k == "point" => out.push(s.clone()),
            toml::Value::Table(t) => audit_points(t, out),
            toml::Value::Array(a) => {
                for x in a {
                    if let toml::Value::Table(t) = x {
                        audit_points(t, out);
                    }
                }
            }
            _ => {}
        }
    }
}

/// `[[utility]]` sections, validated against the plants.
fn utilities(d: &mut Diag<'_>, raw: Vec<Spanned<RawUtility>>, plants: &[Plant]) -> Vec<Utility> {
    let mut out: Vec<Utility> = Vec::new();
    for u in raw {
        let span = u.span();
        let u = u.into_inner();
        let name = u.name.get_ref().clone();
        if !valid_name(&name) {
            d.at(
                u.name.span(),
                format!("[[utility]] name \"{name}\" must be 1..64 characters of A-Z a-z 0-9 _ -"),
            );
        } else if out.iter().any(|x| x.name == name) {
            d.at(
                u.name.span(),
                format!("[[utility]] \"{name}\" is defined twice"),
            );
        }
        gateway_point(d, &u.point, &format!("[[utility]] \"{name}\":"), plants);
        let indicator = u
            .indicator
            .as_ref()
            .map_or(name.clone(), |i| i.get_ref().clone());
        if let Some(i) = &u.indicator {
            if i.get_ref().trim().is_empty() || i.get_ref() == "energy" {
                d.at(
                    i.span(),
                    format!("[[utility]] \"{name}\": indicator must name the carrier allocated (\"steam\", \"water\", …); energy follows from kgce_per_unit"),
                );
            }
        }
        let kgce_per_unit = u.kgce_per_unit.as_ref().and_then(|k| {
            let ok = k.get_ref().is_finite() && *k.get_ref() > 0.0;
            if !ok {
                d.at(
                    k.span(),
                    format!("[[utility]] \"{name}\": kgce_per_unit must be above 0"),
                );
            }
            ok.then_some(*k.get_ref())
        });
        let min_completeness = match &u.min_completeness {
            Some(m) if !(0.0..=1.0).contains(m.get_ref()) => {
                d.at(
                    m.span(),
                    format!("[[utility]] \"{name}\": min_completeness must be between 0 and 1"),
                );
                0.75
            }
            Some(m) => *m.get_ref(),
            None => 0.75,
        };
        if u.share.is_empty() {
            d.at(
                span.clone(),
                format!("[[utility]] \"{name}\" needs at least one [[utility.share]] (plant and its sub-meter)"),
            );
        }
        let mut shares: Vec<Share> = Vec::new();
        for sh in u.share {
            let sh = sh.into_inner();
            let plant = sh.plant.get_ref().clone();
            match plants.iter().find(|p| p.name == plant) {
                None => {
                    let known: Vec<&str> = plants.iter().map(|p| p.name.as_str()).collect();
                    d.at(
                        sh.plant.span(),
                        format!(
                            "[[utility]] \"{name}\": no [[plant]] \"{plant}\"; plants: {}",
                            known.join(", ")
                        ),
                    );
                }
                Some(p) => {
                    if shares.iter().any(|x| x.plant == plant) {
                        d.at(
                            sh.plant.span(),
                            format!("[[utility]] \"{name}\": plant \"{plant}\" has two shares; one sub-meter point per plant"),
                        );
                    }
                    // Counted in the plant's own audit too, it would count twice.
                    let mut own = Vec::new();
                    if let Some(a) = &p.audit {
                        audit_points(a, &mut own);
                    }
                    if own.iter().any(|x| x == sh.point.get_ref()) {
                        d.at(
                            sh.point.span(),
                            format!("[[utility]] \"{name}\": \"{}\" is also read by plant \"{plant}\"'s [plant.audit]: its allocation would count it twice (leave the shared utility's sub-meter out of [plant.audit])", sh.point.get_ref()),
                        );
                    }
                }
            }
            gateway_point(
                d,
                &sh.point,
                &format!("[[utility]] \"{name}\": share of \"{plant}\":"),
                plants,
            );
            shares.push(Share {
                plant,
                point: sh.point.into_inner(),
            });
        }
        out.push(Utility {
            name,
            point: u.point.into_inner(),
            indicator,
            kgce_per_unit,
            min_completeness,
            shares,
        });
    }
    out
}

/// `mqtt://host[:port]` (port 1883 by default).
fn parse_mqtt_url(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("mqtt://")?.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') {
        return None;
    }
    let (host, port) = if let Some(r) = rest.strip_prefix('[') {
        let (h, tail) = r.split_once(']')?;
        match tail {
            "" => (h, 1883),
            t => (h, t.strip_prefix(':')?.parse().ok()?),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().ok()?),
            None => (rest, 1883),
        }
    };
    (!host.is_empty()).then(|| (host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[park]
name = "Binhai Dyeing Park"
timezone = "+08:00"
[database]
url = "postgres://plantmeter@127.0.0.1:5432/plantmeter"
[mqtt]
url = "mqtt://127.0.0.1:1883"
topic_prefix = "plantmeter"
share_group = "park"
[http]
listen = "127.0.0.1:8080"
[[plant]]
name = "sunrise"
enterprise = "Sunrise Dyeing Co."
gateways = ["plant-a/gw-01", "plant-a/gw-02"]
  [plant.audit]
  timezone = "+08:00"
  baseline = ["2025-01-01", "2026-01-01"]
  granularity = "day"
  grid_co2_t_per_mwh = 0.57
  production = { point = "plant-a/gw-01/packer.output", unit = "t" }
"#;

    fn errors(text: &str) -> Vec<String> {
        match parse(text, Path::new("park.toml")) {
            Ok(_) => Vec::new(),
            Err(e) => e.errors.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn the_contract_example_is_valid() {
        let c = parse(GOOD, Path::new("park.toml")).expect("valid");
        assert_eq!(c.park, "Binhai Dyeing Park");
        assert_eq!(c.timezone.local_minus_utc(), 8 * 3600);
        assert_eq!(c.mqtt.host, "127.0.0.1");
        assert_eq!(c.mqtt.port, 1883);
        assert_eq!(c.plants[0].gateways, ["plant-a/gw-01", "plant-a/gw-02"]);
        assert!(c.plants[0].audit.is_some());
    }

    #[test]
    fn an_unknown_key_is_located_with_a_suggestion() {
        let text = GOOD.replace("share_group =", "share_grop =");
        let e = errors(&text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("park.toml:10:1: "), "{e:?}");
        assert!(e[0].contains("share_grop"), "{e:?}");
    }

    #[test]
    fn only_127_0_0_1_goes_without_a_token() {
        for (addr, ok) in [
            ("127.0.0.1:8080", true),
            ("127.0.0.2:8080", false),
            ("[::1]:8080", false),
            ("0.0.0.0:8080", false),
            ("[::]:8080", false),
        ] {
            let e = errors(&GOOD.replace("127.0.0.1:8080", addr));
            assert_eq!(e.is_empty(), ok, "{addr}: {e:?}");
            if !ok {
                assert!(e[0].contains("token_file"), "{addr}: {e:?}");
                let with_token = GOOD.replace(
                    "listen = \"127.0.0.1:8080\"",
                    &format!("listen = \"{addr}\"\ntoken_file = \"/etc/t\""),
                );
                assert_eq!(errors(&with_token), Vec::<String>::new(), "{addr}");
            }
        }
    }

    #[test]
    fn bad_values_are_all_reported_at_their_place() {
        let text = GOOD
            .replace("\"+08:00\"\n[database]", "\"Asia/Shanghai\"\n[database]")
            .replace("\"plant-a/gw-02\"", "\"gw-02\"")
            .replace("127.0.0.1:8080", "0.0.0.0:8080");
        let e = errors(&text);
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(
            e[0].starts_with("park.toml:4:12: ") && e[0].contains("timezone"),
            "{e:?}"
        );
        assert!(
            e[1].starts_with("park.toml:12:10: ") && e[1].contains("token_file"),
            "{e:?}"
        );
        assert!(
            e[2].starts_with("park.toml:16:30: ") && e[2].contains("\"gw-02\""),
            "{e:?}"
        );
    }

    #[test]
    fn a_missing_table_and_a_gateway_in_two_plants_are_errors() {
        let e = errors("[park]\nname = \"p\"\n[mqtt]\nurl = \"mqtt://h\"\n");
        assert!(e[0].contains("database"), "{e:?}");
        let text = format!("{GOOD}\n[[plant]]\nname = \"other\"\ngateways = [\"plant-a/gw-01\"]\n");
        let e = errors(&text);
        assert!(e[0].contains("a gateway belongs to one plant"), "{e:?}");
    }

    #[test]
    fn plant_audit_errors_are_located_and_points_must_be_on_the_plants_gateways() {
        let audit = r#"  [[plant.audit.input]]
  point = "plant-b/gw-09/main-power.energy_import"
  carrier = "electricity"
  [[plant.audit.input]]
  point = "plant-a/gw-02/gas.volume"
  carrier = "natural_gas"
  colour = "red"
"#;
        let e = errors(&format!("{GOOD}{audit}"));
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].starts_with("park.toml:24:11: ")
                && e[0].contains("plant-b/gw-09/main-power.energy_import"),
            "{e:?}"
        );
        assert!(
            e[1].starts_with("park.toml:29:3: ") && e[1].contains("colour"),
            "{e:?}"
        );
        let e = errors(&GOOD.replace(
            "  timezone = \"+08:00\"\n  baseline",
            "  timezone = \"8h\"\n  baseline",
        ));
        assert!(e.iter().any(|m| m.contains("timezone \"8h\"")), "{e:?}");
    }

    #[test]
    fn utilities_are_checked_against_the_plants() {
        let good = format!(
            "{GOOD}  [[plant.audit.input]]\n  point = \"plant-a/gw-01/main.energy\"\n  carrier = \"electricity\"\n\
             [[utility]]\nname = \"steam\"\npoint = \"plant-a/gw-02/boiler.steam\"\nkgce_per_unit = 128.6\n\
             [[utility.share]]\nplant = \"sunrise\"\npoint = \"plant-a/gw-01/steam.in\"\n"
        );
        let c = parse(&good, Path::new("park.toml")).expect("valid");
        assert_eq!(c.utilities[0].indicator, "steam");
        assert_eq!(c.utilities[0].min_completeness, 0.75);
        for (from, to, want) in [
            (
                "plant = \"sunrise\"",
                "plant = \"sunset\"",
                "no [[plant]] \"sunset\"",
            ),
            (
                "plant-a/gw-01/steam.in",
                "plant-a/gw-01/main.energy",
                "count it twice",
            ),
            (
                "plant-a/gw-02/boiler.steam",
                "plant-x/gw-09/boiler.steam",
                "a gateway of a [[plant]]",
            ),
            (
                "kgce_per_unit = 128.6",
                "kgce_per_unit = -1.0",
                "kgce_per_unit must be above 0",
            ),
        ] {
            let e = errors(&good.replace(from, to));
            assert!(e.len() == 1 && e[0].contains(want), "{want}: {e:?}");
        }
        let e = errors(&format!(
            "{GOOD}[[utility]]\nname = \"steam\"\npoint = \"plant-a/gw-02/boiler.steam\"\n"
        ));
        assert!(
            e[0].contains("needs at least one [[utility.share]]"),
            "{e:?}"
        );
    }

    #[test]
    fn the_timezone_is_written_as_the_agents_offset() {
        for tz in ["Z", "UTC", "+8:00"] {
            let e = errors(&GOOD.replacen("\"+08:00\"", &format!("\"{tz}\""), 1));
            assert_eq!(e.len(), 1, "{tz}: {e:?}");
            assert!(
                e[0].starts_with(&format!("park.toml:4:12: [park] timezone \"{tz}\" must be a UTC offset +HH:MM or -HH:MM")),
                "{tz}: {e:?}"
            );
        }
        assert!(errors(&GOOD.replacen("+08:00", "Z", 1))[0].ends_with("UTC is \"+00:00\""));
        let c = parse(
            &GOOD.replacen("+08:00", "+00:00", 1),
            Path::new("park.toml"),
        )
        .expect("valid");
        assert_eq!(c.timezone.local_minus_utc(), 0);
    }

    #[test]
    fn mqtt_urls() {
        assert_eq!(parse_mqtt_url("mqtt://h"), Some(("h".into(), 1883)));
        assert_eq!(
            parse_mqtt_url("mqtt://10.0.0.1:1884"),
            Some(("10.0.0.1".into(), 1884))
        );
        assert_eq!(
            parse_mqtt_url("mqtt://[::1]:1884"),
            Some(("::1".into(), 1884))
        );
        assert_eq!(parse_mqtt_url("http://h"), None);
        assert_eq!(parse_mqtt_url("mqtt://h:x"), None);
    }
}
