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
pub const TEMPLATES: &[(&str, &str)] = &[("sdm630", include_str!("../templates/sdm630.toml"))];

/// The TOML text of a template by name.
pub fn get(name: &str) -> Option<&'static str> {
    TEMPLATES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Names of all templates, for error messages.
pub fn names() -> Vec<&'static str> {
    TEMPLATES.iter().map(|(n, _)| *n).collect()
}
