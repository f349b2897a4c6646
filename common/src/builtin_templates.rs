//! The built-in meter templates as TOML texts (`common/templates/*.toml`), by name: data only, read by
//! the config's parser (`config::meters`, `config::meterbus`) and, parsed, by `templates::Template`.
//! A leaf: it imports nothing of the crate, so the config and the templates do not import each other.

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

/// (name, TOML text) of the DL/T 645 and CJ/T 188 templates: points by data identifier (`di`,
/// `field`) instead of registers, with `protocol` (and `meter_type` for CJ/T 188) at the top.
pub const LINK_TEMPLATES: &[(&str, &str)] = &[
    (
        "dlt645-meter",
        include_str!("../templates/dlt645-meter.toml"),
    ),
    (
        "dlt645-1997-meter",
        include_str!("../templates/dlt645-1997-meter.toml"),
    ),
    (
        "cjt188-water",
        include_str!("../templates/cjt188-water.toml"),
    ),
    ("cjt188-gas", include_str!("../templates/cjt188-gas.toml")),
    ("cjt188-heat", include_str!("../templates/cjt188-heat.toml")),
];

/// The TOML text of a DL/T 645 / CJ/T 188 template by name.
pub fn link_get(name: &str) -> Option<&'static str> {
    LINK_TEMPLATES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
}

/// Names of the DL/T 645 / CJ/T 188 templates.
pub fn link_names() -> Vec<&'static str> {
    LINK_TEMPLATES.iter().map(|(n, _)| *n).collect()
}

/// The TOML text of a template by name.
pub fn get(name: &str) -> Option<&'static str> {
    TEMPLATES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Names of all templates, for error messages.
pub fn names() -> Vec<&'static str> {
    TEMPLATES.iter().map(|(n, _)| *n).collect()
}
