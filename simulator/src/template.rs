//! Meter templates as the simulator reads them: `common/templates/*.toml` turned into the same
//! [`Point`]s the agent's plan holds, so encoding here and decoding there use one description.

use plantmeter_common::plan::Point;
use plantmeter_common::templates;
use plantmeter_common::types::{ByteOrder, DataType, PointKind, RegisterKind};
use serde::Deserialize;

/// A meter model: its name, where its map comes from, and its points.
#[derive(Debug, Clone)]
pub struct Template {
    /// Template key (`sdm630`).
    pub name: String,
    /// Maker and model (`Eastron SDM630 Modbus V2`).
    pub model: String,
    /// Where the register map comes from.
    pub source: String,
    pub points: Vec<Point>,
}

/// A template that is missing or does not parse.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown meter template {name:?}; known templates: {known}")]
    Unknown { name: String, known: String },
    #[error("template {name:?}: {message}")]
    Invalid { name: String, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    model: String,
    source: String,
    byte_order: Option<String>,
    point: Vec<PointSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PointSpec {
    name: String,
    register: String,
    address: u16,
    #[serde(rename = "type")]
    data_type: String,
    byte_order: Option<String>,
    scale: Option<f64>,
    offset: Option<f64>,
    unit: Option<String>,
    kind: Option<String>,
    rollover: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
}

impl Template {
    /// Load a built-in template by name (`common/src/templates.rs` `TEMPLATES`).
    pub fn builtin(name: &str) -> Result<Template, TemplateError> {
        let text = templates::get(name).ok_or_else(|| TemplateError::Unknown {
            name: name.to_string(),
            known: templates::names().join(", "),
        })?;
        Template::parse(name, text)
    }

    /// Parse a template's TOML text.
    pub fn parse(name: &str, text: &str) -> Result<Template, TemplateError> {
        let invalid = |message: String| TemplateError::Invalid {
            name: name.to_string(),
            message,
        };
        let file: TemplateFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let default_order = match &file.byte_order {
            Some(s) => {
                ByteOrder::parse(s)
                    .ok_or_else(|| invalid(format!("unknown byte order {s:?}")))?
                    .0
            }
            None => ByteOrder::BIG,
        };
        let mut points = Vec::with_capacity(file.point.len());
        for p in file.point {
            let at = |m: String| invalid(format!("point {:?}: {m}", p.name));
            let register: RegisterKind = p
                .register
                .parse()
                .map_err(|()| at(format!("unknown register kind {:?}", p.register)))?;
            let data_type: DataType = p
                .data_type
                .parse()
                .map_err(|()| at(format!("unknown type {:?}", p.data_type)))?;
            let byte_order = match &p.byte_order {
                Some(s) => {
                    let (o, bits) = ByteOrder::parse(s)
                        .ok_or_else(|| at(format!("unknown byte order {s:?}")))?;
                    if bits != data_type.bits() && data_type != DataType::Bool {
                        return Err(at(format!(
                            "byte order {s} is for {bits}-bit values, the type is {data_type}"
                        )));
                    }
                    o
                }
                None => default_order,
            };
            let kind = match p.kind.as_deref() {
                None | Some("gauge") => PointKind::Gauge,
                Some("counter") => PointKind::Counter,
                Some(other) => return Err(at(format!("unknown kind {other:?}"))),
            };
            let scale = p.scale.unwrap_or(1.0);
            let rollover = match kind {
                PointKind::Counter => p
                    .rollover
                    .or_else(|| data_type.modulus().map(|m| m * scale.abs())),
                PointKind::Gauge => None,
            };
            points.push(Point {
                name: p.name,
                register,
                address: p.address,
                data_type,
                byte_order,
                scale,
                offset: p.offset.unwrap_or(0.0),
                unit: p.unit.unwrap_or_default(),
                kind,
                rollover,
                min: p.min,
                max: p.max,
            });
        }
        Ok(Template {
            name: name.to_string(),
            model: file.model,
            source: file.source,
            points,
        })
    }

    /// Every built-in template, in `TEMPLATES` order.
    pub fn all_builtin() -> Result<Vec<Template>, TemplateError> {
        templates::names()
            .into_iter()
            .map(Template::builtin)
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_template_parses() {
        let all = Template::all_builtin().unwrap();
        assert!(all.len() >= 11);
        for t in &all {
            assert!(!t.points.is_empty(), "{}", t.name);
        }
        let adw = Template::builtin("adw300").unwrap();
        let e = adw
            .points
            .iter()
            .find(|p| p.name == "energy_import")
            .unwrap();
        assert_eq!((e.address, e.data_type, e.scale), (62, DataType::I32, 0.01));
        assert_eq!(e.rollover, Some(10_000_000.0));
        let t43 = Template::builtin("thermo43i").unwrap();
        assert!(t43.points[0].byte_order.word_swap);
    }

    #[test]
    fn unknown_template_names_the_known_ones() {
        let e = Template::builtin("sdm999").unwrap_err().to_string();
        assert!(e.contains("sdm999") && e.contains("sdm630"), "{e}");
    }
}
