//! A desk audit's config (issue #28): manual meters, no [[bus]], [gateway] and [mqtt] left out, and
//! `[import]`, the rules for a plant's spreadsheets.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use plantmeter_common::config;
use plantmeter_common::plan::ImportField;

const DESK: &str = r#"
[[meter]]
name = "logbook"
manual = true
  [[meter.point]]
  name = "energy"
  unit = "kWh"
  kind = "counter"

[audit]
timezone = "+08:00"
baseline = ["2025-01-01", "2026-01-01"]
granularity = "day"
grid_co2_t_per_mwh = 0.5703
production = { point = "logbook.energy", unit = "kWh" }
"#;

fn errors(text: &str) -> String {
    match config::parse(text, Path::new("/desk/bad.toml")) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_desk_config_needs_only_manual_meters_and_the_audit() {
    let plan = config::parse(DESK, Path::new("/desk/plant.toml")).unwrap();
    assert!(plan.desk);
    assert_eq!(plan.gateway.id, "desk");
    assert_eq!(
        plan.gateway.data_dir,
        Path::new("/desk/plantmeter-data"),
        "the store beside the config"
    );
    // [gateway] for the enterprise's name, still no broker: a desk audit.
    let text = format!("[gateway]\nenterprise = \"Sunrise Dyeing\"\ndata_dir = \"store\"\n{DESK}");
    let plan = config::parse(&text, Path::new("/desk/plant.toml")).unwrap();
    assert!(plan.desk);
    assert_eq!(plan.gateway.enterprise.as_deref(), Some("Sunrise Dyeing"));
    assert_eq!(plan.gateway.data_dir, Path::new("/desk/store"));
    // With a broker it is a gateway that publishes its manual meters: not a desk audit.
    let text = format!(
        "[gateway]\nid = \"g\"\nsite = \"s\"\ndata_dir = \"d\"\n[mqtt]\nurl = \"mqtt://127.0.0.1\"\n{DESK}"
    );
    assert!(
        !config::parse(&text, Path::new("/desk/plant.toml"))
            .unwrap()
            .desk
    );
}

#[test]
fn a_polled_meter_still_needs_gateway_and_broker() {
    let text = DESK.replace("manual = true", "bus = \"line-1\"\nunit_id = 1");
    let err = errors(&text);
    assert!(
        err.contains("missing [gateway] table (id, site, data_dir)"),
        "{err}"
    );
    assert!(err.contains("missing [mqtt] table (url)"), "{err}");
}

#[test]
fn import_rules_are_read_and_checked() {
    let text = format!(
        "[import]\ndaily_at = \"08:30\"\nheaders = {{ \"抄表时间\" = \"ts\", \"读数1\" = \"value\" }}\n\
         columns = {{ \"1#电表\" = \"logbook.energy\" }}\n{DESK}"
    );
    let plan = config::parse(&text, Path::new("/desk/plant.toml")).unwrap();
    assert_eq!(plan.import.daily_at_s, 8 * 3600 + 30 * 60);
    assert_eq!(
        plan.import.headers,
        [
            ("抄表时间".to_string(), ImportField::Ts),
            ("读数1".to_string(), ImportField::Value)
        ]
    );
    assert_eq!(
        plan.import.columns,
        [("1#电表".to_string(), "logbook.energy".to_string())]
    );
    let text = format!(
        "[import]\ndaily_at = \"8h\"\nheaders = {{ \"x\" = \"time\" }}\ncolumns = {{ \"1#\" = \"logbook.energi\" }}\n{DESK}"
    );
    assert_eq!(
        errors(&text),
        "/desk/bad.toml:2:12: daily_at \"8h\" must be a local time HH:MM, e.g. \"08:00\"\n\
         /desk/bad.toml:3:13: header \"x\" must map to \"ts\", \"meter\", \"point\" or \"value\"\n\
         /desk/bad.toml:4:13: column \"1#\": meter \"logbook\" has no point \"energi\"; did you mean \"logbook.energy\"?"
    );
}
