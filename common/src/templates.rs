//! Meter templates: the register maps of real meter models, kept as data (`common/templates/*.toml`),
//! shared by the simulator (which serves them) and the agent (`template = "sdm630"` in a `[[meter]]`).
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

/// (name, TOML text) of every built-in template.
pub const TEMPLATES: &[(&str, &str)] = &[
    ("sdm630", include_str!("../templates/sdm630.toml")),
    ("adw300", include_str!("../templates/adw300.toml")),
    ("dtsd1352", include_str!("../templates/dtsd1352.toml")),
    ("dtsu666", include_str!("../templates/dtsu666.toml")),
    ("iem3000", include_str!("../templates/iem3000.toml")),
    ("magflow", include_str!("../templates/magflow.toml")),
    ("gasflow", include_str!("../templates/gasflow.toml")),
    ("cems", include_str!("../templates/cems.toml")),
    ("thermo43i", include_str!("../templates/thermo43i.toml")),
    ("wastewater", include_str!("../templates/wastewater.toml")),
    ("counter", include_str!("../templates/counter.toml")),
    ("thsensor", include_str!("../templates/thsensor.toml")),
];

/// The TOML text of a template by name.
pub fn get(name: &str) -> Option<&'static str> {
    TEMPLATES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Names of all templates, for error messages.
pub fn names() -> Vec<&'static str> {
    TEMPLATES.iter().map(|(n, _)| *n).collect()
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
            let doc: toml::Table = toml::from_str(text).unwrap();
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
                    .and_then(|v| v.as_array())
                    .is_some_and(|a| !a.is_empty()),
                "{name}"
            );
        }
        assert_eq!(get("no-such-meter"), None);
        assert!(names().contains(&"adw300"));
    }
}
