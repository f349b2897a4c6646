//! The product's own reference (README.md, "Reference") documents every configuration key the parser accepts:
//! each table is given an unknown key, and every key its error lists as allowed must appear in the README.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use plantmeter_common::config;

const UNKNOWN: &str = "qqqqqqqqqqqq";

/// The keys the parser allows in the table that `text` put the unknown key in.
fn allowed(text: &str) -> Vec<String> {
    let err = match config::parse(text, Path::new("r.toml")) {
        Ok(_) => panic!("the unknown key was accepted:\n{text}"),
        Err(e) => e.to_string(),
    };
    let line = err
        .lines()
        .find(|l| l.contains(UNKNOWN))
        .unwrap_or_else(|| panic!("no error for the unknown key:\n{err}\n{text}"));
    let list = line
        .split("allowed keys: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no list of allowed keys: {line}"));
    list.split(", ").map(str::to_string).collect()
}

#[test]
fn every_configuration_key_is_in_the_readme_reference() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let reference = readme
        .split("## Reference")
        .nth(1)
        .expect("a Reference section in README.md");
    let base = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/contract_example_current.toml"),
    )
    .unwrap();
    let bad = format!("{UNKNOWN} = 1");
    // Insert the unknown key right after a line of the base config (the first line that equals `after`).
    let after = |line: &str| {
        let mut out = String::new();
        let mut done = false;
        for l in base.lines() {
            out.push_str(l);
            out.push('\n');
            if !done && l.trim() == line {
                out.push_str(&bad);
                out.push('\n');
                done = true;
            }
        }
        assert!(done, "no line {line:?} in the base config");
        out
    };
    let appended = |section: &str| format!("{base}\n{section}\n{bad}\n");
    let cases: Vec<(&str, String)> = vec![
        ("top level", format!("{bad}\n{base}")),
        ("[gateway]", after("[gateway]")),
        ("[mqtt]", after("[mqtt]")),
        ("[[bus]]", after("[[bus]]")),
        ("[[meter]]", after("name = \"main-power\"               # [a-z0-9_-]")),
        ("[[meter.point]]", after("name = \"energy_import\"")),
        ("manual [[meter]]", after("name = \"logbook\"")),
        ("manual [[meter.point]]", after("name = \"hazardous_waste\"")),
        ("[audit]", after("[audit]")),
        ("[[audit.input]]", after("[[audit.input]]")),
        ("[[audit.pollutant]]", after("[[audit.pollutant]]")),
        ("[[audit.level]]", after("[[audit.level]]                 # optional grade thresholds")),
        (
            "[[audit.product]]",
            format!(
                "{}\n[[audit.product]]\nname = \"x\"\npoint = \"packer.output\"\n{bad}\n",
                base.replace(
                    "production = { point = \"packer.output\", unit = \"t\" }",
                    "production_unit = \"t\""
                )
            ),
        ),
        ("[[audit.driver]]", appended("[[audit.driver]]\nname = \"x\"\npoint = \"outfall.cod\"\ntransform = \"mean\"")),
        ("[[audit.permit]]", appended("[[audit.permit]]\npollutant = \"COD\"\nt_per_year = 1.0")),
        ("[audit.quota]", appended("[audit.quota]\nenergy_kgce_per_unit = 1.0")),
        ("[[audit.measure]]", appended("[[audit.measure]]\nname = \"m\"\nin_service = \"2026-01-01\"\ninvestment_yuan = 1.0")),
        ("[audit.prices]", appended("[audit.prices]\nwater = 1.0")),
        ("[report]", appended("[report]\nsign_key_file = \"k.pem\"")),
        ("[metrics]", appended("[metrics]\nlisten = \"127.0.0.1:9898\"")),
        ("[hj212]", after("mn = \"010000A8900016F000169DC0\"")),
        ("[[hj212.factor]]", after("code = \"w01018\"   # pollutant code")),
    ];
    let mut missing = Vec::new();
    for (what, text) in &cases {
        for key in allowed(text) {
            // `key`, `key ...`, or a table of that name ([key], [[key]], [audit.key], [[audit.key]]).
            let documented = [
                format!("`{key}`"),
                format!("`{key} "),
                format!("[{key}]"),
                format!(".{key}]"),
            ]
            .iter()
            .any(|form| reference.contains(form.as_str()));
            if !documented {
                missing.push(format!("{what}: {key}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "keys the parser accepts but README.md's reference does not document:\n{}",
        missing.join("\n")
    );
}
