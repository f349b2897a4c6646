//! Malformed configs: every error kind, with its exact `FILE:LINE:COL: message`.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use plantmeter_common::config;

/// Lines 1-12: a valid gateway, mqtt and bus. Meters start at line 14.
const HEAD: &str = r#"[gateway]
id = "gw-01"
site = "plant-a"
data_dir = "/tmp/pm"

[mqtt]
url = "mqtt://127.0.0.1:1883"

[[bus]]
name = "line-1"
transport = "tcp"
address = "127.0.0.1:5020"

"#;

/// Lines 14-23: a valid meter with one u16 point `m1.p1`.
const METER: &str = r#"[[meter]]
name = "m1"
bus = "line-1"
unit_id = 1
poll_interval_s = 5

[[meter.point]]
name = "p1"
address = 0
type = "u16"
"#;

/// The errors of a config, one per line, as `check` prints them.
fn errors(text: &str) -> String {
    match config::parse(text, Path::new("bad.toml")) {
        Ok(_) => panic!("expected errors, the config is valid:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn with_meter(extra: &str) -> String {
    format!("{HEAD}{METER}{extra}")
}

#[test]
fn the_base_config_is_valid() {
    config::parse(&with_meter(""), Path::new("ok.toml")).unwrap();
}

#[test]
fn syntax_error_with_the_parsers_position() {
    assert_eq!(
        errors("[gateway]\nid = gw-01\n"),
        "bad.toml:2:6: TOML syntax error: string values must be quoted, expected literal string"
    );
}

#[test]
fn duplicate_key_is_a_syntax_error() {
    assert_eq!(
        errors("[gateway]\nid = \"a\"\nid = \"b\"\n"),
        "bad.toml:3:1: TOML syntax error: duplicate key"
    );
}

#[test]
fn empty_file() {
    let expected = "bad.toml:1:1: the file is empty: a config needs [gateway], [mqtt], a [[bus]] \
                    and a [[meter]] (see CONTRACT.md)";
    assert_eq!(errors(""), expected);
    assert_eq!(errors("# only a comment\n\n"), expected);
}

#[test]
fn missing_file_names_the_file() {
    let err = config::load(Path::new("/nonexistent/plant.toml")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "/nonexistent/plant.toml:1:1: cannot read the config file: no such file"
    );
}

#[test]
fn unreadable_file_names_the_file() {
    let dir = std::env::temp_dir().join(format!("pm-config-dir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let err = config::load(&dir).unwrap_err();
    assert_eq!(err.errors.len(), 1);
    let line = err.to_string();
    assert!(
        line.starts_with(&format!(
            "{}:1:1: cannot read the config file: ",
            dir.display()
        )),
        "{line}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unknown_key_suggests_the_closest() {
    let text = with_meter("adress = 4\n").replace("address = 0\n", "");
    // the point now lacks address, and has a misspelt key
    assert_eq!(
        errors(&text),
        "bad.toml:20:1: missing key \"address\" in [[meter.point]] \"p1\" of meter \"m1\"\n\
         bad.toml:23:1: unknown key \"adress\" in [[meter.point]] \"p1\" of meter \"m1\"; did you mean \"address\"?"
    );
}

#[test]
fn unknown_key_lists_the_allowed_keys() {
    let text = HEAD.replace(
        "site = \"plant-a\"\n",
        "site = \"plant-a\"\ncolour = \"red\"\n",
    );
    assert_eq!(
        errors(&format!("{text}{METER}")),
        "bad.toml:4:1: unknown key \"colour\" in [gateway]; allowed keys: id, site, data_dir, store_max_mb, retain_delivered_mb, max_gap, enterprise, industry"
    );
}

#[test]
fn retain_delivered_mb_is_within_store_max_mb() {
    let text = HEAD.replace(
        "site = \"plant-a\"\n",
        "site = \"plant-a\"\nstore_max_mb = 64\nretain_delivered_mb = 65\n",
    );
    let e = errors(&format!("{text}{METER}"));
    assert!(
        e.starts_with("bad.toml:5:")
            && e.contains("retain_delivered_mb 65 is more than store_max_mb 64"),
        "{e}"
    );
}

#[test]
fn unknown_top_level_table() {
    assert_eq!(
        errors(&with_meter("[meters]\nx = 1\n")),
        "bad.toml:24:2: unknown key \"meters\" in the top level; did you mean \"meter\"?"
    );
}

#[test]
fn password_in_the_config_is_refused() {
    let text = HEAD.replace(
        "url = \"mqtt://127.0.0.1:1883\"\n",
        "url = \"mqtt://127.0.0.1:1883\"\nusername = \"u\"\npassword = \"secret\"\n",
    );
    assert_eq!(
        errors(&format!("{text}{METER}")),
        "bad.toml:9:1: a password is never written in the config: use password_file or password_env"
    );
}

#[test]
fn wrong_types() {
    let text = HEAD.replace(
        "address = \"127.0.0.1:5020\"\n",
        "address = \"127.0.0.1:5020\"\ntimeout_ms = \"1000\"\nretries = 1.5\n",
    );
    assert_eq!(
        errors(&format!("{text}{METER}")),
        "bad.toml:13:14: expected an integer for timeout_ms, found a string\n\
         bad.toml:14:11: expected an integer for retries, found a float"
    );
}

#[test]
fn wrong_table_types() {
    assert_eq!(
        errors("gateway = 1\nmqtt = \"x\"\n[bus]\nname = \"b\"\n"),
        "bad.toml:1:1: nothing to poll: add at least one [[meter]] with its points\n\
         bad.toml:1:11: expected a table for gateway, found an integer\n\
         bad.toml:2:8: expected a table for mqtt, found a string\n\
         bad.toml:3:1: expected an array of tables ([[bus]]) for bus, found a table"
    );
}

#[test]
fn missing_sections() {
    assert_eq!(
        errors(METER),
        "bad.toml:1:1: missing [gateway] table (id, site, data_dir)\n\
         bad.toml:1:1: missing [mqtt] table (url)\n\
         bad.toml:3:7: unknown bus \"line-1\"; no [[bus]] is defined"
    );
}

#[test]
fn missing_required_keys() {
    let text = "[gateway]\nid = \"g\"\n[mqtt]\nx = 1\n";
    assert_eq!(
        errors(text),
        "bad.toml:1:1: missing key \"site\" in [gateway]\n\
         bad.toml:1:1: missing key \"data_dir\" in [gateway]\n\
         bad.toml:1:1: nothing to poll: add a [[bus]] and at least one [[meter]] with its points\n\
         bad.toml:3:1: missing key \"url\" in [mqtt]\n\
         bad.toml:4:1: unknown key \"x\" in [mqtt]; allowed keys: url, client_id, topic_prefix, username, \
         password_file, password_env, ca_file, client_cert_file, client_key_file, keep_alive_s, max_inflight, password"
    );
}

#[test]
fn unknown_bus_reference() {
    let text = with_meter("").replace("bus = \"line-1\"", "bus = \"line-2\"");
    assert_eq!(
        errors(&text),
        "bad.toml:16:7: unknown bus \"line-2\"; did you mean \"line-1\"?"
    );
}

#[test]
fn duplicate_bus_meter_and_point_names() {
    let text = format!(
        "{HEAD}[[bus]]\nname = \"line-1\"\ntransport = \"tcp\"\naddress = \"10.0.0.1\"\n\n{METER}\
         [[meter.point]]\nname = \"p1\"\naddress = 1\ntype = \"u16\"\n\n{METER}"
    );
    assert_eq!(
        errors(&text),
        "bad.toml:15:8: duplicate bus name \"line-1\" (first defined at line 10)\n\
         bad.toml:30:8: duplicate point \"p1\" in meter \"m1\" (first defined at line 26)\n\
         bad.toml:35:8: duplicate meter name \"m1\" (first defined at line 20)"
    );
}

#[test]
fn unit_id_out_of_range() {
    let text = with_meter("").replace("unit_id = 1", "unit_id = 248");
    assert_eq!(
        errors(&text),
        "bad.toml:17:11: unit_id 248 is out of range 0..=247"
    );
}

#[test]
fn byte_order_that_does_not_fit_the_width() {
    let text = with_meter("byte_order = \"ABCD\"\n");
    assert_eq!(
        errors(&text),
        "bad.toml:24:14: byte_order \"ABCD\" is for 32-bit values; point \"p1\" is u16 (16-bit): use AB or BA"
    );
    let text = with_meter("").replace("type = \"u16\"", "type = \"f64\"\nbyte_order = \"CDAB\"");
    assert_eq!(
        errors(&text),
        "bad.toml:24:14: byte_order \"CDAB\" is for 32-bit values; point \"p1\" is f64 (64-bit): \
         use ABCDEFGH, GHEFCDAB, BADCFEHG or HGFEDCBA"
    );
}

#[test]
fn unknown_byte_order() {
    let text = with_meter("").replace(
        "poll_interval_s = 5",
        "poll_interval_s = 5\nbyte_order = \"ABDC\"",
    );
    assert_eq!(
        errors(&text),
        "bad.toml:19:14: unknown byte_order \"ABDC\"; use AB or BA (16-bit), ABCD, CDAB, BADC or DCBA (32-bit), \
         ABCDEFGH, GHEFCDAB, BADCFEHG or HGFEDCBA (64-bit)"
    );
}

#[test]
fn non_positive_intervals_timeouts_and_scale() {
    let text = HEAD.replace(
        "address = \"127.0.0.1:5020\"\n",
        "address = \"127.0.0.1:5020\"\ntimeout_ms = 0\n",
    );
    let text = format!("{text}{METER}scale = 0.0\n")
        .replace("poll_interval_s = 5", "poll_interval_s = -1");
    assert_eq!(
        errors(&text),
        "bad.toml:13:14: timeout_ms must be positive and at most 3600000 (1 h), found 0\n\
         bad.toml:19:19: poll_interval_s must be positive, found -1\n\
         bad.toml:25:9: scale must be positive, found 0"
    );
}

#[test]
fn non_finite_numbers() {
    let text = with_meter("scale = nan\noffset = inf\n")
        .replace("poll_interval_s = 5", "poll_interval_s = inf");
    assert_eq!(
        errors(&text),
        "bad.toml:18:19: poll_interval_s must be a finite number, found inf\n\
         bad.toml:24:9: scale must be a finite number, found NaN\n\
         bad.toml:25:10: offset must be a finite number, found inf"
    );
}

#[test]
fn inconsistent_register_overlap_names_both_points() {
    let text = with_meter("\n[[meter.point]]\nname = \"p2\"\naddress = 0\ntype = \"u32\"\n");
    assert_eq!(
        errors(&text),
        "bad.toml:27:11: points \"p1\" (holding 0, u16) and \"p2\" (holding 0, u32) of meter \"m1\" overlap: \
         points must read exactly the same registers or separate ones"
    );
}

#[test]
fn identical_registers_read_twice_are_fine() {
    let text = with_meter("\n[[meter.point]]\nname = \"p2\"\naddress = 0\ntype = \"bool\"\n");
    config::parse(&text, Path::new("ok.toml")).unwrap();
}

#[test]
fn unknown_template_lists_the_known_ones() {
    let text = with_meter("").replace(
        "poll_interval_s = 5",
        "poll_interval_s = 5\ntemplate = \"sdm360\"",
    );
    let known = plantmeter_common::templates::names().join(", ");
    assert_eq!(
        errors(&text),
        format!("bad.toml:19:12: unknown template \"sdm360\"; did you mean \"sdm630\"? known templates: {known}")
    );
    let text = with_meter("").replace(
        "poll_interval_s = 5",
        "poll_interval_s = 5\ntemplate = \"foo\"",
    );
    assert_eq!(
        errors(&text),
        format!("bad.toml:19:12: unknown template \"foo\"; known templates: {known}")
    );
}

#[test]
fn template_subset_names_unknown_points() {
    let text = with_meter("").replace(
        "poll_interval_s = 5",
        "poll_interval_s = 5\ntemplate = \"sdm630\"\npoints = [\"energy_imprt\", 3]",
    );
    assert_eq!(
        errors(&text),
        "bad.toml:20:11: template \"sdm630\" has no point \"energy_imprt\"; did you mean \"energy_import\"?\n\
         bad.toml:20:27: expected a string (a point name) in points, found an integer"
    );
    let text = with_meter("").replace(
        "poll_interval_s = 5",
        "poll_interval_s = 5\npoints = [\"a\"]",
    );
    assert_eq!(
        errors(&text),
        "bad.toml:19:1: points selects points of a template; this meter has no template"
    );
}

#[test]
fn transport_keys_missing_or_not_applicable() {
    let buses = r#"[[bus]]
name = "tcp-no-address"
transport = "tcp"
baud = 9600

[[bus]]
name = "rtu-no-device"
transport = "rtu"
address = "10.0.0.1:502"
parity = "mark"

[[bus]]
name = "what"
transport = "udp"
"#;
    let text = format!("{HEAD}{buses}");
    assert_eq!(
        errors(&text),
        "bad.toml:1:1: nothing to poll: add at least one [[meter]] with its points\n\
         bad.toml:14:1: missing key \"address\" in [[bus]] \"tcp-no-address\"\n\
         bad.toml:17:1: baud applies to rtu buses only, not to transport \"tcp\"\n\
         bad.toml:19:1: missing key \"device\" in [[bus]] \"rtu-no-device\"\n\
         bad.toml:22:1: address applies to tcp and rtu-over-tcp buses; an rtu bus uses device\n\
         bad.toml:23:10: unknown parity \"mark\"; use none, even or odd\n\
         bad.toml:27:13: unknown transport \"udp\"; use tcp, rtu or rtu-over-tcp"
    );
}

#[test]
fn mqtt_url_scheme() {
    let text = HEAD.replace("mqtt://127.0.0.1:1883", "http://127.0.0.1:1883");
    assert_eq!(
        errors(&format!("{text}{METER}")),
        "bad.toml:7:7: url \"http://127.0.0.1:1883\" must start with mqtt:// or mqtts:// (TLS)"
    );
}

#[test]
fn names_with_forbidden_characters() {
    let text = with_meter("")
        .replace("name = \"m1\"", "name = \"Main Power\"")
        .replace("name = \"p1\"", "name = \"p.1\"")
        .replace("id = \"gw-01\"", "id = \"gw 01\"");
    assert_eq!(
        errors(&text),
        "bad.toml:2:6: gateway id \"gw 01\" must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -\n\
         bad.toml:15:8: meter name \"Main Power\" may only contain a-z, 0-9, _ and -\n\
         bad.toml:21:8: point name \"p.1\" may only contain a-z, 0-9, _ and -"
    );
}

#[test]
fn point_types_and_kinds() {
    let text = with_meter(
        "\n[[meter.point]]\nname = \"c\"\nregister = \"coil\"\naddress = 1\ntype = \"u16\"\n\
         \n[[meter.point]]\nname = \"b\"\naddress = 9\ntype = \"bool\"\nkind = \"counter\"\n\
         \n[[meter.point]]\nname = \"g\"\naddress = 65534\ntype = \"f64\"\nrollover = 10.0\nmin = 5\nmax = 1\n\
         \n[[meter.point]]\nname = \"x\"\nregister = \"holdings\"\naddress = 20\ntype = \"float\"\nkind = \"total\"\n",
    );
    assert_eq!(
        errors(&text),
        "bad.toml:29:8: type u16 cannot be read from a coil (a single bit): coil points are bool\n\
         bad.toml:35:8: point \"b\" is bool and cannot be a counter\n\
         bad.toml:39:11: point \"g\" (f64 at address 65534) runs past the last address 65535\n\
         bad.toml:41:12: rollover applies to counters only (kind = \"counter\")\n\
         bad.toml:42:7: min 5 is above max 1\n\
         bad.toml:47:12: unknown register \"holdings\"; use holding, input, coil or discrete\n\
         bad.toml:49:8: unknown type \"float\"; use u16, i16, u32, i32, u64, i64, f32, f64 or bool\n\
         bad.toml:50:8: unknown kind \"total\"; use counter (a totalizer) or gauge (an instantaneous value)"
    );
}

/// Lines 14-50: meters for the audit (`power` from the sdm630 template, `packer`, `outfall`);
/// `[audit]` is line 51 and its keys start at line 52.
const AUDIT_METERS: &str = r#"[[meter]]
name = "power"
unit_id = 1
poll_interval_s = 5
template = "sdm630"

[[meter]]
name = "packer"
unit_id = 2
poll_interval_s = 60
[[meter.point]]
name = "output"
address = 0
type = "u32"
unit = "t"
kind = "counter"
[[meter.point]]
name = "speed"
address = 2
type = "u16"

[[meter]]
name = "outfall"
unit_id = 3
poll_interval_s = 10
[[meter.point]]
name = "cod"
address = 0
type = "f32"
unit = "mg/L"
[[meter.point]]
name = "flow"
address = 2
type = "f32"
unit = "m3"
kind = "counter"

[audit]
"#;

fn audit(lines: &str) -> String {
    format!("{HEAD}{AUDIT_METERS}{lines}")
}

const GOOD_AUDIT: &str = r#"timezone = "+08:00"
baseline = ["2025-01-01", "2026-01-01"]
grid_co2_t_per_mwh = 0.5703
production = { point = "packer.output" }
"#;

#[test]
fn audit_base_is_valid() {
    config::parse(&audit(GOOD_AUDIT), Path::new("ok.toml")).unwrap();
}

#[test]
fn audit_unknown_references() {
    let text = audit(
        r#"timezone = "+08:00"
baseline = ["2025-01-01", "2026-01-01"]
grid_co2_t_per_mwh = 0.5703
production = { point = "packr.output" }
[[audit.input]]
point = "packer.energy"
carrier = "electricity"
[[audit.input]]
point = "power.energy_import"
carrier = "electricity"
[[audit.pollutant]]
name = "COD"
concentration = "outfall.cdo"
flow = "outfall"
[[audit.level]]
indicator = "water"
I = 1
II = 2
III = 3
"#,
    );
    assert_eq!(
        errors(&text),
        "bad.toml:55:24: unknown meter \"packr\" in \"packr.output\"; did you mean \"packer\"?\n\
         bad.toml:57:9: meter \"packer\" has no point \"energy\"; its points: output, speed\n\
         bad.toml:64:17: meter \"outfall\" has no point \"cdo\"; did you mean \"outfall.cod\"?\n\
         bad.toml:65:8: point reference \"outfall\" must be written meter.point\n\
         bad.toml:67:13: unknown indicator \"water\"; the report's indicators are: energy, co2, electricity"
    );
}

#[test]
fn audit_dates_and_timezone() {
    let text = audit(
        r#"timezone = "Asia/Shanghai"
baseline = ["2025-13-01", 2026-01-01]
reporting = ["2026-07-01", "2026-01-01"]
granularity = "quarter"
production = { point = "packer.output" }
"#,
    );
    assert_eq!(
        errors(&text),
        "bad.toml:52:12: timezone \"Asia/Shanghai\" must be a UTC offset +HH:MM or -HH:MM, e.g. \"+08:00\"\n\
         bad.toml:53:13: baseline date \"2025-13-01\" is not a valid date (YYYY-MM-DD)\n\
         bad.toml:54:13: reporting runs from 2026-07-01 to 2026-01-01: the start must be before the end \
         (the end is excluded)\n\
         bad.toml:55:15: unknown granularity \"quarter\"; use hour, day, week or month"
    );
    let text = audit(
        "timezone = \"+08:00\"\nbaseline = [\"2025-01-01\"]\nproduction = { point = \"packer.output\" }\n",
    );
    assert_eq!(
        errors(&text),
        "bad.toml:53:12: baseline must be two dates [\"FROM\", \"TO\"] (TO excluded), found 1 value"
    );
}

/// One offset grammar in the workspace (the park's and the simulator's timezones too): "Z" is refused,
/// saying how UTC is written.
#[test]
fn a_utc_timezone_is_written_as_an_offset() {
    let text = audit(
        "timezone = \"Z\"\nbaseline = [\"2025-01-01\", \"2026-01-01\"]\nproduction = { point = \"packer.output\" }\n",
    );
    assert_eq!(
        errors(&text),
        "bad.toml:52:12: timezone \"Z\" must be a UTC offset +HH:MM or -HH:MM, e.g. \"+08:00\"; UTC is \"+00:00\""
    );
}

#[test]
fn audit_unknown_carrier_and_pollutant_names() {
    let text = audit(&format!(
        "{GOOD_AUDIT}[[audit.input]]\npoint = \"outfall.flow\"\ncarrier = \"gas\"\n\
         [[audit.pollutant]]\nname = \"cod\"\nconcentration = \"outfall.cod\"\nflow = \"outfall.flow\"\n"
    ));
    assert_eq!(
        errors(&text),
        "bad.toml:58:11: unknown carrier \"gas\"; use electricity, natural_gas, coal, diesel, steam, heat, \
         water, material\n\
         bad.toml:60:8: unknown pollutant \"cod\" (did you mean \"COD\"?); use SO2, NOx, dust, CO2, VOCs, COD, \
         NH3-N, TN, TP, heavy_metals"
    );
}

#[test]
fn audit_level_thresholds_must_be_ordered() {
    let text = audit(&format!(
        "{GOOD_AUDIT}[[audit.level]]\nindicator = \"energy\"\nI = 120.0\nII = 110.0\nIII = 100.0\n"
    ));
    assert_eq!(
        errors(&text),
        "bad.toml:58:5: level thresholds of \"energy\" must satisfy I <= II <= III (lower is better), \
         found I = 120, II = 110, III = 100"
    );
}

#[test]
fn audit_production_must_be_a_counter() {
    let text = audit(&GOOD_AUDIT.replace("packer.output", "packer.speed"));
    assert_eq!(
        errors(&text),
        "bad.toml:55:24: production point \"packer.speed\" must be a counter (a totalizer of product), \
         it is a gauge"
    );
}

#[test]
fn audit_duplicates() {
    let pollutant =
        "[[audit.pollutant]]\nname = \"COD\"\nconcentration = \"outfall.cod\"\nflow = \"outfall.flow\"\n";
    let text = audit(&format!("{GOOD_AUDIT}{pollutant}{pollutant}"));
    assert_eq!(
        errors(&text),
        "bad.toml:61:8: pollutant \"COD\" has several sources (also line 57): give each a source = \"stack-1\" (or outfall) name"
    );
}

#[test]
fn audit_electricity_methods() {
    let input = "[[audit.input]]\npoint = \"power.energy_import\"\ncarrier = \"electricity\"\n";
    let text = audit(&format!(
        "{}electricity = \"equal\"\n{input}",
        GOOD_AUDIT.replace("grid_co2_t_per_mwh = 0.5703\n", "")
    ));
    assert_eq!(
        errors(&text),
        "bad.toml:55:15: electricity = \"equal\" needs electricity_kgce_per_kwh (the thermal-power coal rate, \
         e.g. 0.404)\n\
         bad.toml:55:15: electricity = \"equal\" needs electricity_year (the year the coal rate is for)\n\
         bad.toml:58:11: an electricity input needs grid_co2_t_per_mwh in [audit] (the grid's tCO2/MWh, \
         e.g. 0.5703) or co2_kg_per_unit"
    );
    let text = audit(&format!("{GOOD_AUDIT}electricity_kgce_per_kwh = 0.404\n"));
    assert_eq!(
        errors(&text),
        "bad.toml:56:1: electricity_kgce_per_kwh applies only with electricity = \"equal\""
    );
}

#[test]
fn every_error_of_a_file_is_reported() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/many_errors.toml");
    let err = config::load(&path).unwrap_err();
    let f = path.display();
    let expected = [
        "3:6: gateway id \"gw 01\" must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -",
        "6:16: expected an integer for store_max_mb, found a string",
        "9:7: url \"tcp://broker:1883\" must start with mqtt:// or mqtts:// (TLS)",
        "15:14: timeout_ms must be positive and at most 3600000 (1 h), found 0",
        "19:7: unknown bus \"line-9\"; did you mean \"line-1\"?",
        "20:11: unit_id 300 is out of range 0..=247",
        "21:19: poll_interval_s must be positive, found 0",
        "27:16: byte_order \"AB\" is for 16-bit values; point \"energy_import\" is i32 (32-bit): \
         use ABCD, CDAB, BADC or DCBA",
        "30:3: missing key \"address\" in [[meter.point]] \"power\" of meter \"main-power\"",
        "32:3: unknown key \"adress\" in [[meter.point]] \"power\" of meter \"main-power\"; \
         did you mean \"address\"?",
        "48:12: timezone \"+8\" must be a UTC offset +HH:MM or -HH:MM, e.g. \"+08:00\"",
        "49:12: baseline runs from 2026-01-01 to 2025-01-01: the start must be before the end \
         (the end is excluded)",
        "50:24: production point \"packer.output\" must be a counter (a totalizer of product), it is a gauge",
        "54:13: unknown carrier \"electric\"; use electricity, natural_gas, coal, diesel, steam, heat, \
         water, material",
    ]
    .map(|e| format!("{f}:{e}"))
    .join("\n");
    assert_eq!(err.to_string(), expected);
    assert_eq!(err.errors.len(), 14);
}

#[test]
fn unit_id_0_on_an_rtu_bus_is_broadcast() {
    let text = with_meter("")
        .replace("transport = \"tcp\"", "transport = \"rtu-over-tcp\"")
        .replace("unit_id = 1", "unit_id = 0");
    assert_eq!(
        errors(&text),
        "bad.toml:17:11: unit_id 0 is the RTU broadcast address: no device answers a read sent to it; \
         use 1..=247"
    );
    // Modbus TCP gateways may use unit 0
    let text = with_meter("").replace("unit_id = 1", "unit_id = 0");
    config::parse(&text, Path::new("ok.toml")).unwrap();
}

#[test]
fn mqtt_credentials_and_tls_files() {
    let text = HEAD.replace(
        "url = \"mqtt://127.0.0.1:1883\"\n",
        "url = \"mqtt://127.0.0.1:1883\"\npassword_file = \"/etc/pw\"\nca_file = \"/etc/ca.pem\"\n\
         client_key_file = \"/etc/key.pem\"\nkeep_alive_s = 0\n",
    );
    assert_eq!(
        errors(&format!("{text}{METER}")),
        "bad.toml:8:17: password_file needs a username\n\
         bad.toml:9:11: ca_file applies to mqtts:// URLs only\n\
         bad.toml:10:19: client_key_file applies to mqtts:// URLs only\n\
         bad.toml:10:19: client_key_file needs client_cert_file\n\
         bad.toml:11:16: keep_alive_s 0 is out of range 1..=65535"
    );
}

#[test]
fn metrics_listen_needs_a_port() {
    let text = with_meter("[metrics]\nlisten = \"localhost\"\n");
    assert_eq!(
        errors(&text),
        "bad.toml:25:10: listen \"localhost\" must be host:port, e.g. \"127.0.0.1:9898\""
    );
}

#[test]
fn meter_without_points() {
    let text = format!("{HEAD}[[meter]]\nname = \"empty\"\nunit_id = 1\npoll_interval_s = 1\n");
    assert_eq!(
        errors(&text),
        "bad.toml:14:1: meter \"empty\" has no points: add [[meter.point]] entries or a template"
    );
}

#[test]
fn meter_point_before_any_meter() {
    let text = format!("{HEAD}[[meter.point]]\nname = \"p\"\naddress = 1\ntype = \"u16\"\n");
    assert_eq!(
        errors(&text),
        "bad.toml:14:3: expected an array of tables ([[meter]]) for meter, found a table"
    );
}

#[test]
fn audit_publish_interval_and_duplicate_levels() {
    let level = "[[audit.level]]\nindicator = \"co2\"\nI = 1\nII = 2\nIII = 3\n";
    let text = audit(&format!(
        "{GOOD_AUDIT}publish_interval_s = 0\n{level}{level}"
    ));
    assert_eq!(
        errors(&text),
        "bad.toml:56:22: publish_interval_s must be positive, found 0\n\
         bad.toml:63:13: duplicate level for \"co2\" (first defined at line 58)"
    );
}

#[test]
fn audit_input_units_must_convert_to_the_carrier_unit() {
    let text = audit(&format!(
        "{GOOD_AUDIT}[[audit.input]]\npoint = \"power.total_power\"\ncarrier = \"electricity\"\n"
    ));
    assert_eq!(
        errors(&text),
        "bad.toml:57:9: input point \"power.total_power\" is in \"W\", which does not convert to kWh \
         (the unit electricity is accounted in)"
    );
}

#[test]
fn non_utf8_file_is_located() {
    let path = std::env::temp_dir().join(format!("pm-config-latin1-{}.toml", std::process::id()));
    std::fs::write(&path, b"[gateway]\nsite = \"caf\xe9\"\n").unwrap();
    let err = config::load(&path).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:2:12: the file is not valid UTF-8 text (a TOML config must be UTF-8)",
            path.display()
        )
    );
}

/// `[audit]` keys without `production`: line 52 timezone, 53 baseline, 54 grid factor.
const AUDIT_NO_PRODUCTION: &str = r#"timezone = "+08:00"
baseline = ["2025-01-01", "2026-01-01"]
grid_co2_t_per_mwh = 0.5703
"#;

#[test]
fn products_and_drivers_parse_into_the_plan() {
    let text = audit(&format!(
        "{AUDIT_NO_PRODUCTION}production_unit = \"t\"\n\
         [[audit.product]]\nname = \"knit\"\npoint = \"packer.output\"\nfactor = 1.0\n\
         [[audit.product]]\nname = \"woven\"\npoint = \"outfall.flow\"\nfactor = 0.00015\n\
         [[audit.driver]]\nname = \"cod_mean\"\npoint = \"outfall.cod\"\ntransform = \"mean\"\n\
         [[audit.driver]]\nname = \"hdd\"\npoint = \"outfall.cod\"\ntransform = \"hdd\"\nbase = 15.5\n"
    ));
    let plan = config::parse(&text, Path::new("ok.toml")).unwrap();
    let a = plan.audit.unwrap();
    let names: Vec<(&str, f64)> = a
        .products
        .iter()
        .map(|p| (p.name.as_str(), p.factor))
        .collect();
    assert_eq!(names, [("knit", 1.0), ("woven", 0.00015)]);
    assert_eq!(a.production_unit, "t");
    assert_eq!(a.min_completeness, 0.75);
    assert_eq!(a.drivers.len(), 2);
    assert_eq!(
        a.drivers[1].transform,
        plantmeter_common::plan::DriverTransform::Hdd { base: 15.5 }
    );
}

#[test]
fn products_and_drivers_errors_name_their_place() {
    let text = audit(&format!(
        "{AUDIT_NO_PRODUCTION}production = {{ point = \"packer.output\" }}\n\
         [[audit.product]]\nname = \"knit\"\npoint = \"outfall.cod\"\n\
         [[audit.driver]]\nname = \"knit\"\npoint = \"outfall.cod\"\ntransform = \"hdd\"\n\
         [[audit.driver]]\nname = \"temp\"\npoint = \"outfall.cod\"\ntransform = \"median\"\n\
         [[audit.driver]]\nname = \"flow\"\npoint = \"outfall.cod\"\ntransform = \"sum\"\n"
    ));
    let e = errors(&text);
    assert!(e.contains("bad.toml:55:1: give either production = { point } or [[audit.product]] entries, not both"), "{e}");
    assert!(
        e.contains(
            "driver point \"outfall.cod\" must be a counter for transform sum, it is a gauge"
        ),
        "{e}"
    );
    assert!(
        e.contains("unknown transform \"median\"; use hdd, cdd, mean, sum"),
        "{e}"
    );
}

#[test]
fn grade_weights_direction_and_limiting() {
    let ok = audit(&format!(
        "{GOOD_AUDIT}[[audit.input]]\npoint = \"power.energy_import\"\ncarrier = \"electricity\"\n\
         [[audit.level]]\nindicator = \"energy\"\nI = 60.0\nII = 70.0\nIII = 80.0\nweight = 0.6\nlimiting = true\n\
         [[audit.level]]\nindicator = \"co2\"\nI = 90.0\nII = 80.0\nIII = 70.0\nweight = 0.4\nbetter = \"higher\"\n"
    ));
    let a = config::parse(&ok, Path::new("ok.toml"))
        .unwrap()
        .audit
        .unwrap();
    assert!(a.levels[0].limiting && !a.levels[0].higher_is_better);
    assert!(a.levels[1].higher_is_better && !a.levels[1].limiting);
    assert_eq!((a.levels[0].weight, a.levels[1].weight), (0.6, 0.4));
    let bad = ok.replace("weight = 0.4\n", "weight = 0.3\n");
    let e = errors(&bad);
    assert!(
        e.contains("grade weights: give a weight to every [[audit.level]]"),
        "{e}"
    );
    assert!(e.contains("2 of 2 given, summing to 0.8"), "{e}");
    let equal = ok
        .replace("weight = 0.6\n", "")
        .replace("weight = 0.4\n", "");
    let a = config::parse(&equal, Path::new("ok.toml"))
        .unwrap()
        .audit
        .unwrap();
    assert_eq!((a.levels[0].weight, a.levels[1].weight), (0.5, 0.5));
}

#[test]
fn several_sources_of_a_pollutant_need_names() {
    let two = |s1: &str, s2: &str| {
        audit(&format!(
            "{GOOD_AUDIT}[[audit.pollutant]]\nname = \"COD\"\nconcentration = \"outfall.cod\"\nflow = \"outfall.flow\"\n{s1}\
             [[audit.pollutant]]\nname = \"COD\"\nconcentration = \"outfall.cod\"\nflow = \"outfall.flow\"\n{s2}"
        ))
    };
    let e = errors(&two("", ""));
    assert!(
        e.contains("pollutant \"COD\" has several sources (also line 57): give each a source"),
        "{e}"
    );
    let e = errors(&two("source = \"a\"\n", "source = \"a\"\n"));
    assert!(
        e.contains("duplicate pollutant \"COD\" from source \"a\""),
        "{e}"
    );
    let ok = two("source = \"a\"\n", "source = \"b\"\n");
    let a = config::parse(&ok, Path::new("ok.toml"))
        .unwrap()
        .audit
        .unwrap();
    assert_eq!(a.pollutants.len(), 2);
    assert_eq!(a.pollutants[1].source.as_deref(), Some("b"));
}

#[test]
fn permits_quota_and_limits_parse() {
    let text = audit(&format!(
        "{GOOD_AUDIT}[[audit.pollutant]]\nname = \"COD\"\nconcentration = \"outfall.cod\"\nflow = \"outfall.flow\"\nlimit = 50.0\n\
         [[audit.permit]]\npollutant = \"COD\"\nt_per_year = 12.5\n\
         [[audit.permit]]\npollutant = \"SO2\"\nt_per_year = 1.0\n\
         [audit.quota]\nenergy_kgce_per_unit = 75.0\n"
    ));
    let e = errors(&text);
    assert!(
        e.contains("permit for \"SO2\": no [[audit.pollutant]] of that name measures it"),
        "{e}"
    );
    let ok = text.replace(
        "[[audit.permit]]\npollutant = \"SO2\"\nt_per_year = 1.0\n",
        "",
    );
    let a = config::parse(&ok, Path::new("ok.toml"))
        .unwrap()
        .audit
        .unwrap();
    assert_eq!(a.permits.len(), 1);
    assert_eq!(a.permits[0].t_per_year, 12.5);
    assert_eq!(a.energy_quota_kgce_per_unit, Some(75.0));
    assert_eq!(a.pollutants[0].limit, Some(50.0));
}

#[test]
fn enterprise_and_industry_are_optional_gateway_keys() {
    let text = with_meter("").replace(
        "site = \"plant-a\"\n",
        "site = \"plant-a\"\nenterprise = \"Sunrise Dyeing & Finishing Co.\"\nindustry = \"dyeing\"\n",
    );
    let plan = config::parse(&text, Path::new("ok.toml")).unwrap();
    assert_eq!(
        plan.gateway.enterprise.as_deref(),
        Some("Sunrise Dyeing & Finishing Co.")
    );
    assert_eq!(plan.gateway.industry.as_deref(), Some("dyeing"));
    let bad = text.replace("industry = \"dyeing\"", "industry = \"\"");
    assert_eq!(
        errors(&bad),
        "bad.toml:5:12: industry must be 1 to 200 characters"
    );
}

#[test]
fn measures_and_prices_parse() {
    let text = audit(&format!(
        "{GOOD_AUDIT}[[audit.measure]]\nname = \"heat recovery\"\nin_service = \"2026-01-01\"\ninvestment_yuan = 1200000.0\n\
         point = \"outfall.flow\"\ncarrier = \"water\"\n\
         [[audit.measure]]\nname = \"training\"\nin_service = 2026-02-01\ninvestment_yuan = 5000\n\
         [audit.prices]\nelectricity = 0.68\nwater = 4.5\n"
    ));
    let a = config::parse(&text, Path::new("ok.toml"))
        .unwrap()
        .audit
        .unwrap();
    assert_eq!(a.measures.len(), 2);
    assert_eq!(
        a.measures[0].point.as_ref().unwrap().0.qualified(),
        "outfall.flow"
    );
    assert_eq!(a.measures[1].in_service.to_string(), "2026-02-01");
    assert!(a.measures[1].point.is_none());
    assert_eq!(a.prices.len(), 2);
    let bad = text
        .replace("water = 4.5", "gas = 3.2")
        .replace("point = \"outfall.flow\"", "point = \"outfall.cod\"");
    let e = errors(&bad);
    assert!(e.contains("unknown key \"gas\""), "{e}");
    assert!(
        e.contains("measure point \"outfall.cod\" must be a counter"),
        "{e}"
    );
}

#[test]
fn material_inputs_need_a_material_name() {
    let with = |extra: &str| {
        audit(&format!(
            "{GOOD_AUDIT}[[audit.input]]\npoint = \"packer.output\"\ncarrier = \"material\"\n{extra}"
        ))
    };
    let e = errors(&with(""));
    assert!(
        e.contains("carrier \"material\" needs material = \"name\""),
        "{e}"
    );
    let e = errors(&with("material = \"water\"\n"));
    assert!(e.contains("not an indicator's key"), "{e}");
    let a = config::parse(&with("material = \"dyes\"\n"), Path::new("ok.toml"))
        .unwrap()
        .audit
        .unwrap();
    assert_eq!(a.inputs[0].material.as_deref(), Some("dyes"));
}
