//! Meter templates: the register maps of real meter models, kept as data (`common/templates/*.toml`),
//! shared by the simulator (which serves them) and the agent (`template = "sdm630"` in a `[[meter]]`).
//! Both read them with one parser (the config's, `config::meters`), so the defaults (register
//! `holding`, byte order, counter rollover from the type's range) are the same on both sides. The texts
//! themselves are in `builtin_templates` (which the config reads, so that config -> templates is no
//! cycle); this module is the parsed view on top of the config's parser.
//!
//! File format (same keys as `[[meter.point]]`):
//! ```toml
//! model = "Eastron SDM630"
//! source = "where the map comes from"
//! byte_order = "ABCD"          # default for the points
//! [[point]]
//! name = "energy_import"
//! register = "input"
//! address = 0x48
//! type = "f32"
//! unit = "kWh"
//! kind = "counter"
//! ```

use crate::plan::Point;

pub use crate::builtin_templates::{get, link_get, link_names, names, LINK_TEMPLATES, TEMPLATES};

/// A meter model: its name, where its map comes from, and its points (as a `[[meter]]` with
/// `template = NAME` and no byte order of its own gets them).
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

impl Template {
    /// A built-in template by name ([`TEMPLATES`]).
    pub fn builtin(name: &str) -> Result<Template, TemplateError> {
        let text = get(name).ok_or_else(|| TemplateError::Unknown {
            name: name.to_string(),
            known: names().join(", "),
        })?;
        Template::parse(name, text)
    }

    /// Parse a template's TOML text.
    pub fn parse(name: &str, text: &str) -> Result<Template, TemplateError> {
        let invalid = |message: String| TemplateError::Invalid {
            name: name.to_string(),
            message,
        };
        let points = crate::config::meters::template_alone(name, text)
            .map_err(|errors| invalid(crate::config::ConfigErrors { errors }.to_string()))?;
        let doc = toml_edit::Document::parse(text).map_err(|e| invalid(e.to_string()))?;
        let text_of = |key: &str| {
            doc.get(key)
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| invalid(format!("missing {key} (a string)")))
        };
        Ok(Template {
            name: name.to_string(),
            model: text_of("model")?,
            source: text_of("source")?,
            points,
        })
    }

    /// Every built-in template, in [`TEMPLATES`] order.
    pub fn all_builtin() -> Result<Vec<Template>, TemplateError> {
        names().into_iter().map(Template::builtin).collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_template_is_found_by_name_and_names_its_model_and_source() {
        assert!(TEMPLATES.len() >= 11);
        for (name, text) in TEMPLATES {
            assert_eq!(get(name), Some(*text));
            let doc = toml_edit::Document::parse(*text).unwrap();
            assert!(
                doc.get("model").and_then(|v| v.as_str()).is_some(),
                "{name}"
            );
            assert!(
                doc.get("source").and_then(|v| v.as_str()).is_some(),
                "{name}"
            );
            assert!(
                doc.get("point")
                    .and_then(|v| v.as_array_of_tables())
                    .is_some_and(|a| !a.is_empty()),
                "{name}"
            );
        }
        assert_eq!(get("no-such-meter"), None);
        assert!(names().contains(&"adw300"));
    }

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
        assert_eq!(
            (e.address, e.data_type, e.scale),
            (62, crate::types::DataType::I32, 0.01)
        );
        assert_eq!(e.rollover, Some(10_000_000.0));
        let t43 = Template::builtin("thermo43i").unwrap();
        assert!(t43.points[0].byte_order.word_swap);
    }

    #[test]
    fn unknown_template_names_the_known_ones() {
        let e = Template::builtin("sdm999").unwrap_err().to_string();
        assert!(e.contains("sdm999") && e.contains("sdm630"), "{e}");
    }

    /// The simulator and the agent read a template alike: a meter with `template = NAME` gets
    /// exactly the template's points (same register, byte order, scale, rollover).
    #[test]
    fn a_template_gives_the_meter_of_a_config_the_same_points() {
        for name in names() {
            let t = Template::builtin(name).unwrap();
            let config = format!(
                "[gateway]\nid = \"gw\"\nsite = \"s\"\ndata_dir = \"/tmp/x\"\n\
                 [mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\n\
                 [[bus]]\nname = \"b\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:5020\"\n\
                 [[meter]]\nname = \"m\"\nbus = \"b\"\nunit_id = 1\npoll_interval_s = 1\ntemplate = \"{name}\"\n"
            );
            let plan = crate::config::parse(&config, std::path::Path::new("t.toml")).unwrap();
            let meter = plan.meters().next().unwrap();
            assert_eq!(
                format!("{:?}", meter.points),
                format!("{:?}", t.points),
                "{name}"
            );
        }
    }
}
