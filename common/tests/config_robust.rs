//! Whatever the text, `config::parse` returns (never panics) and every error points inside the file.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use plantmeter_common::config;
use proptest::prelude::*;

const GOOD: &str = include_str!("configs/serial.toml");

fn check_located(text: &str) {
    if let Err(e) = config::parse(text, Path::new("f.toml")) {
        assert!(!e.errors.is_empty());
        let lines = text.split('\n').count();
        for err in &e.errors {
            assert!(err.line >= 1 && err.col >= 1, "{err}");
            if err.file == Path::new("f.toml") {
                assert!(err.line <= lines, "{err} (file has {lines} lines)");
            }
            assert!(!err.message.is_empty());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn deleting_a_range_never_panics(start in 0usize..GOOD.len(), len in 0usize..40) {
        let end = (start + len).min(GOOD.len());
        if GOOD.is_char_boundary(start) && GOOD.is_char_boundary(end) {
            let text = format!("{}{}", &GOOD[..start], &GOOD[end..]);
            check_located(&text);
        }
    }

    #[test]
    fn replacing_a_value_never_panics(line in 0usize..100, value in prop_oneof![
        Just("-1".to_string()), Just("0".to_string()), Just("1e400".to_string()), Just("nan".to_string()),
        Just("\"\"".to_string()), Just("[]".to_string()), Just("{}".to_string()), Just("true".to_string()),
        Just("18446744073709551615".to_string()), Just("9223372036854775807".to_string()),
        Just("1.7976931348623157e308".to_string()), Just("\"ABCDEFGH\"".to_string()), Just("\"x.y\"".to_string()),
        Just("2025-01-01T00:00:00Z".to_string()), "\"[a-zA-Z0-9:/._ -]{0,12}\"",
    ]) {
        let lines: Vec<&str> = GOOD.lines().collect();
        let i = line % lines.len();
        let replaced: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(j, l)| match l.split_once(" = ") {
                Some((k, _)) if j == i => format!("{k} = {value}"),
                _ => (*l).to_string(),
            })
            .collect();
        check_located(&replaced.join("\n"));
    }
}

#[test]
fn huge_scale_leaves_no_infinite_rollover() {
    let text = GOOD.replace("scale = 0.001", "scale = 1e300");
    let plan = config::parse(&text, Path::new("f.toml")).unwrap();
    let (_, m) = plan.meter("boiler-gas").unwrap();
    assert_eq!(m.points[0].rollover, None);
}
