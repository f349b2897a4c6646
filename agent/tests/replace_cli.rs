//! `plantmeter replace` through the real binary, against `import` in either order (issue #21 item 2, DOMAIN.md
//! "Counter drops" and checked example 15): a reading stamped at the replacement's instant is the old meter's;
//! recording before or after the import gives the same figures; the report says truthfully whether a
//! recorded replacement is applied; one that cannot be applied is refused at `replace` time (exit 2).

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{run_ok, BIN};

fn config(dir: &Path) -> String {
    format!(
        r#"[gateway]
id = "gw-01"
site = "plant-a"
data_dir = "{}"

[mqtt]
url = "mqtt://127.0.0.1:1883"

[[bus]]
name = "line-1"
transport = "tcp"
address = "127.0.0.1:5020"

[[meter]]
name = "water"
bus = "line-1"
unit_id = 1
poll_interval_s = 60

  [[meter.point]]
  name = "volume"
  register = "holding"
  address = 0
  type = "f32"
  unit = "m3"
  kind = "counter"

[[meter]]
name = "packer"
bus = "line-1"
unit_id = 2
poll_interval_s = 60

  [[meter.point]]
  name = "output"
  register = "holding"
  address = 0
  type = "f32"
  unit = "t"
  kind = "counter"

[audit]
timezone = "+08:00"
baseline = ["2026-03-01", "2026-04-01"]
granularity = "day"
grid_co2_t_per_mwh = 0.5703
production = {{ point = "packer.output", unit = "t" }}

  [[audit.input]]
  point = "water.volume"
  carrier = "water"
"#,
        dir.join("store").display()
    )
}

/// A plant folder: config and a CSV of daily 08:00 readings of the water meter (from 2026-03-10) and the
/// packer.
struct Plant {
    _dir: tempfile::TempDir,
    cfg: PathBuf,
    csv: PathBuf,
}

impl Plant {
    fn new(water: &[f64]) -> Plant {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("plant.toml");
        std::fs::write(&cfg, config(dir.path())).unwrap();
        let csv = dir.path().join("readings.csv");
        let mut text = String::from("ts,meter,point,value\n");
        for (i, v) in water.iter().enumerate() {
            let ts = format!("2026-03-{:02}T08:00:00+08:00", 10 + i);
            text += &format!("{ts},water,volume,{v}\n{ts},packer,output,{}\n", 10 * i);
        }
        std::fs::write(&csv, text).unwrap();
        Plant {
            _dir: dir,
            cfg,
            csv,
        }
    }

    fn cfg(&self) -> &str {
        self.cfg.to_str().unwrap()
    }

    fn import(&self) {
        run_ok(Command::new(BIN).args([
            "import",
            "--config",
            self.cfg(),
            "--csv",
            self.csv.to_str().unwrap(),
        ]));
    }

    fn replace(&self, at: &str, old_final: f64, new_start: f64) -> Output {
        Command::new(BIN)
            .args([
                "replace",
                "--config",
                self.cfg(),
                "--point",
                "water.volume",
                "--at",
                at,
                "--old-final",
                &old_final.to_string(),
                "--new-start",
                &new_start.to_string(),
            ])
            .output()
            .unwrap()
    }

    fn replace_ok(&self, at: &str, old_final: f64, new_start: f64) -> String {
        let out = self.replace(at, old_final, new_start);
        assert!(
            out.status.success(),
            "replace --at {at}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn report(&self) -> serde_json::Value {
        let out =
            run_ok(Command::new(BIN).args(["report", "--config", self.cfg(), "--format", "json"]));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn water_total(r: &serde_json::Value) -> f64 {
    r["indicators"]["water"]["baseline"]["total"]
        .as_f64()
        .unwrap_or_else(|| panic!("no water total: {}", r["indicators"]["water"]))
}

fn daily_water(r: &serde_json::Value) -> Vec<f64> {
    let cols = r["series"]["columns"].as_array().unwrap();
    let i = cols.iter().position(|c| c == "water").unwrap();
    r["series"]["daily"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["values"][i].as_f64().unwrap_or(0.0))
        .collect()
}

/// Checked example 15, and the issue's scenario: daily readings at 08:00, a replacement recorded at the
/// third reading's instant (and, the same, at 09:00): 400 whether recorded before or after the import, one
/// replacement listed, recorded and applied, and the same daily figures either way.
#[test]
fn checked_example_15_in_either_order_at_the_reading_or_after_it() {
    let water = [1000.0, 1100.0, 1200.0, 90.0, 200.0];
    for at in [
        "2026-03-12T08:00:00+08:00",
        "2026-03-12 08:00",
        "2026-03-12T09:00:00+08:00",
        "2026-03-12 09:00:00",
    ] {
        let mut days = Vec::new();
        for recorded_first in [true, false] {
            let plant = Plant::new(&water);
            if recorded_first {
                let said = plant.replace_ok(at, 1200.0, 0.0);
                // The echo is in plant time.
                let local = if at.contains("09:00") {
                    "2026-03-12 09:00:00 +08:00"
                } else {
                    "2026-03-12 08:00:00 +08:00"
                };
                assert!(said.contains(local), "{said}");
                plant.import();
            } else {
                plant.import();
                let said = plant.replace_ok(at, 1200.0, 0.0);
                assert!(said.contains("applied to the readings counted"), "{said}");
            }
            let r = plant.report();
            assert!(
                (water_total(&r) - 400.0).abs() < 1e-6,
                "at {at}, recorded first {recorded_first}: {}",
                water_total(&r)
            );
            let events = r["events"]["replacements"].as_array().unwrap();
            assert_eq!(events.len(), 1, "{events:?}");
            assert_eq!(events[0]["recorded"], true, "{events:?}");
            assert_eq!(events[0]["applied"], true, "{events:?}");
            days.push(daily_water(&r));
        }
        for (a, b) in days[0].iter().zip(&days[1]) {
            assert!(
                (a - b).abs() < 1e-6,
                "at {at}: {:?} vs {:?}",
                days[0],
                days[1]
            );
        }
    }
}

/// The issue's 10-day series: a replacement at each reading instant in turn with a new start of 2.5; the
/// true total is 1 033.5 in both orders (was 1 036 / 917.75 after, 6 154 to 7 065 before).
#[test]
fn a_replacement_at_each_reading_of_ten_days_gives_the_true_total() {
    let incs = [100.0, 120.0, 90.0, 130.0, 110.0, 95.0, 105.0, 140.0, 143.5];
    let mut old = vec![5000.0];
    for d in incs {
        old.push(old.last().unwrap() + d);
    }
    for k in 0..old.len() {
        let shown: Vec<f64> = old
            .iter()
            .enumerate()
            .map(|(i, &v)| if i > k { 2.5 + v - old[k] } else { v })
            .collect();
        let at = format!("2026-03-{:02} 08:00", 10 + k);
        for recorded_first in [true, false] {
            let plant = Plant::new(&shown);
            if recorded_first {
                plant.replace_ok(&at, old[k], 2.5);
                plant.import();
            } else {
                plant.import();
                plant.replace_ok(&at, old[k], 2.5);
            }
            let r = plant.report();
            assert!(
                (water_total(&r) - 1033.5).abs() < 1e-6,
                "replaced at reading {k}, recorded first {recorded_first}: {}",
                water_total(&r)
            );
            // At the last reading no reading after it was counted: recorded, honestly not applied yet.
            let events = r["events"]["replacements"].as_array().unwrap();
            assert_eq!(events.len(), 1, "{events:?}");
            assert_eq!(events[0]["recorded"], true);
            assert_eq!(events[0]["applied"], k + 1 < old.len(), "{events:?}");
        }
    }
}

/// A replacement that cannot be applied is refused when it is recorded, naming why, and nothing is recorded:
/// among readings counted without a drop, or contradicting the readings around it.
#[test]
fn an_inapplicable_replacement_is_refused_at_replace_time() {
    let plant = Plant::new(&[1000.0, 1100.0, 1200.0, 90.0, 200.0]);
    plant.import();
    for (at, old_final, new_start, says) in [
        ("2026-03-11 08:00", 1100.0, 0.0, "did not drop"),
        (
            "2026-03-12 08:00",
            1150.0,
            0.0,
            "more than the final reading",
        ),
        (
            "2026-03-12 08:00",
            1200.0,
            95.0,
            "less than the start reading",
        ),
        ("2026-03-12 25:00", 1200.0, 0.0, "not a time"),
    ] {
        let out = plant.replace(at, old_final, new_start);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--at {at}: {err}");
        assert!(err.contains(says), "--at {at}: {err}");
    }
    // Nothing was recorded: the drop is still the inferred replacement from 0 (1 200 -> 90: 90 counted).
    let r = plant.report();
    assert!(
        (water_total(&r) - 400.0).abs() < 1e-6,
        "{}",
        water_total(&r)
    );
    assert_eq!(r["events"]["replacements"][0]["recorded"], false);
    // A second replacement between the same two readings is refused too.
    plant.replace_ok("2026-03-12 08:00", 1200.0, 0.0);
    let out = plant.replace("2026-03-12 20:00", 1200.0, 0.0);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("between the same two readings"));
}
