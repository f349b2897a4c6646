//! Meter trees, the water balance's points, the metering ledger and waste in the config (issue #29):
//! the example parses into the plan; every mistake is named with its place.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use plantmeter_common::audit::coverage::MeteringLevel;
use plantmeter_common::audit::waste::WasteKind;
use plantmeter_common::config;
use plantmeter_common::plan::Carrier;

fn example() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/water-balance.toml"),
    )
    .unwrap()
}

fn errors(text: &str) -> String {
    match config::parse(text, Path::new("/plant/bad.toml")) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// The example with `from` replaced by `to` (which must occur once).
fn with(from: &str, to: &str) -> String {
    let text = example();
    assert_eq!(text.matches(from).count(), 1, "{from}");
    text.replace(from, to)
}

#[test]
fn the_example_parses_into_trees_water_points_ledger_and_waste() {
    let plan = config::parse(&example(), Path::new("/plant/plant.toml")).unwrap();
    let a = plan.audit.unwrap();
    let b = &a.balance;
    let names: Vec<String> = b.nodes.iter().map(|n| n.point.qualified()).collect();
    // Roots first, then their children.
    assert_eq!(
        names,
        [
            "main-power.energy",
            "main-water.volume",
            "boiler-water.volume",
            "dyeing-water.volume",
            "line1-power.energy"
        ]
    );
    let line1 = &b.nodes[4];
    assert_eq!(line1.carrier, Carrier::Electricity);
    assert_eq!(
        line1.parent.as_ref().unwrap().qualified(),
        "main-power.energy"
    );
    assert_eq!(b.reuse.len(), 1);
    assert_eq!(b.reuse[0].point.qualified(), "cooling-loop.volume");
    assert_eq!(b.intake[0].point.qualified(), "main-water.volume");
    assert_eq!(b.discharge[0].point.qualified(), "outfall.flow");
    assert_eq!(b.consumption[0].point.qualified(), "logbook.evaporation");
    assert_eq!(b.tolerance_pct, None);
    assert!(b
        .accuracy
        .iter()
        .any(|(p, c)| p.qualified() == "main-power.energy" && *c == 0.5));
    assert_eq!(a.ledger.items.len(), 5);
    assert_eq!(a.ledger.items[2].meters.len(), 0);
    assert_eq!(a.ledger.items[4].required, 2);
    assert_eq!(a.ledger.items[1].level, MeteringLevel::SubUnit);
    assert_eq!(a.ledger.thresholds.len(), 6);
    assert_eq!(a.waste.len(), 2);
    assert_eq!(a.waste[0].kind, WasteKind::Hazardous);
}

#[test]
fn a_cycle_of_parents_is_named() {
    let text = with(
        "  name = \"volume\"\n  unit = \"m3\"\n  kind = \"counter\"\n  accuracy_class = 1.0                   #",
        "  name = \"volume\"\n  unit = \"m3\"\n  kind = \"counter\"\n  parent = \"dyeing-water.volume\"\n  accuracy_class = 1.0                   #",
    );
    let e = errors(&text);
    assert!(e.contains("cycle of parents"), "{e}");
    assert!(
        e.contains("main-water.volume") && e.contains("dyeing-water.volume"),
        "{e}"
    );
    assert!(e.starts_with("/plant/bad.toml:"), "{e}");
}

#[test]
fn an_unknown_parent_is_named_with_a_suggestion() {
    let e = errors(&with(
        "  parent = \"main-power.energy\"",
        "  parent = \"main-powr.energy\"",
    ));
    assert!(e.contains("unknown meter \"main-powr\""), "{e}");
    assert!(e.contains("did you mean \"main-power\""), "{e}");
}

#[test]
fn a_carrier_mismatch_in_a_tree_is_named() {
    // The electricity input hung under the water intake.
    let text = with(
        "  unit = \"kWh\"\n  kind = \"counter\"\n  accuracy_class = 0.5",
        "  unit = \"kWh\"\n  kind = \"counter\"\n  accuracy_class = 0.5\n  parent = \"main-water.volume\"",
    );
    let e = errors(&text);
    assert!(e.contains("carrier mismatch"), "{e}");
    assert!(
        e.contains("main-power.energy") && e.contains("electricity"),
        "{e}"
    );
}

#[test]
fn a_reuse_point_that_is_also_intake_is_refused() {
    let text = with(
        "  [[audit.input]]\n  point = \"main-power.energy\"",
        "  [[audit.input]]\n  point = \"cooling-loop.volume\"\n  carrier = \"water\"\n\n  [[audit.input]]\n  point = \"main-power.energy\"",
    );
    let e = errors(&text);
    assert!(
        e.contains("cooling-loop.volume is marked reuse but is also an [[audit.input]]"),
        "{e}"
    );
    // Listed in [audit.water] reuse instead of on the point: the same refusal.
    let text = with(
        "  reuse = true                           #",
        "  # reuse = true                         #",
    )
    .replace(
        "  [audit.water]\n",
        "  [[audit.input]]\n  point = \"cooling-loop.volume\"\n  carrier = \"water\"\n\n  [audit.water]\n  reuse = [\"cooling-loop.volume\"]\n",
    );
    let e = errors(&text);
    assert!(
        e.contains("cooling-loop.volume is marked reuse but is also an [[audit.input]]"),
        "{e}"
    );
}

#[test]
fn a_tree_without_a_carrier_and_other_mistakes_are_named() {
    // A tree whose root is not an input and gives no carrier.
    let text = with(
        "  [audit.water]",
        "  [[audit.tree]]\n  point = \"logbook.sludge\"\n  parent = \"packer.output\"\n\n  [audit.water]",
    );
    let e = errors(&text);
    assert!(
        e.contains("the carrier of the tree under packer.output is unknown"),
        "{e}"
    );
    // With a carrier, a unit that does not convert.
    let text = with(
        "  [audit.water]",
        "  [[audit.tree]]\n  point = \"packer.output\"\n  carrier = \"steam\"\n  [[audit.tree]]\n  point = \"logbook.evaporation\"\n  parent = \"packer.output\"\n\n  [audit.water]",
    );
    let e = errors(&text);
    assert!(
        e.contains("logbook.evaporation reads in \"m3\", which does not convert to t (steam)"),
        "{e}"
    );
    let e = errors(&with("  accuracy_class = 0.5", "  accuracy_class = 50"));
    assert!(e.contains("accuracy_class 50"), "{e}");
    let e = errors(&with(
        "kind = \"hazardous\"       ",
        "kind = \"toxic\"       ",
    ));
    assert!(e.contains("unknown waste kind \"toxic\""), "{e}");
    let e = errors(&with(
        "  level = \"site\"                       ",
        "  level = \"plant\"                       ",
    ));
    assert!(e.contains("unknown level \"plant\""), "{e}");
    let e = errors(&with("  min_pct = 80.0", "  min_pct = 180.0"));
    assert!(e.contains("min_pct 180"), "{e}");
    let e = errors(&with(
        "  discharge = [\"outfall.flow\"]",
        "  discharge = [\"outfall.flw\"]",
    ));
    assert!(e.contains("meter \"outfall\" has no point \"flw\""), "{e}");
}

/// `check` lists what the balances, coverage and waste will be computed over: the trees with
/// children under their parents, the water balance's points, the ledger, the thresholds, waste.
#[test]
fn check_lists_the_trees_water_points_ledger_and_waste() {
    let plan = config::parse(&example(), Path::new("/plant/plant.toml")).unwrap();
    let out = config::describe(&plan);
    for line in [
        "    main-power.energy (electricity)",
        "      line1-power.energy",
        "    main-water.volume (water)",
        "      boiler-water.volume",
        "      dyeing-water.volume",
        "    reuse       cooling-loop.volume",
        "    intake      main-water.volume",
        "    discharge   outfall.flow",
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "no line {line:?} in:\n{out}"
        );
    }
    // A child right under its parent, not under the tree printed before it.
    let at = |l: &str| out.lines().position(|x| x == l).unwrap();
    assert_eq!(
        at("      line1-power.energy"),
        at("    main-power.energy (electricity)") + 1,
        "{out}"
    );
    assert!(out.contains("metering ledger (GB 17167)"), "{out}");
    assert!(
        out.contains("coverage    electricity site at least 100 %"),
        "{out}"
    );
    assert!(
        out.contains("waste       hazardous (hazardous) from logbook.hazardous_waste"),
        "{out}"
    );
}
