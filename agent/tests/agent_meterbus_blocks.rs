//! DL/T 645 data-block reads and follow-up frames end to end: `plantmeter read` against the
//! simulator's DL/T 645 meter on a pty reads a meter's energy total and tariffs, and its phase
//! voltages, each group in one request; when the meter splits its answer over frames ("more
//! frames"), the agent reads the rest with 12H and every value is still the meter's; a meter that
//! refuses blocks is read point by point with the same values. CJ/T 188: a heat meter's six
//! fields come from one 901F read.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;

use plantmeter_common::Clock;
use plantmeter_sim::meterbus::{self, LinkFault};
use plantmeter_sim::{start, Scenario, SimOptions};
use support::*;

/// `plantmeter read --meter NAME`: its output, asserting it succeeded.
fn read(cfg: &Path, meter: &str, count: u32) -> String {
    let out = std::process::Command::new(BIN)
        .args([
            "read",
            "--meter",
            meter,
            "--count",
            &count.to_string(),
            "--config",
        ])
        .arg(cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The value `read` printed for `point` in its last poll, with its quality.
fn value(out: &str, point: &str) -> (f64, String) {
    let line = out
        .lines()
        .rev()
        .find(|l| l.split_whitespace().next() == Some(point) && l.starts_with("    "))
        .unwrap_or_else(|| panic!("no value line for {point}:\n{out}"));
    let f: Vec<&str> = line.split_whitespace().collect();
    (f[1].parse().unwrap_or(f64::NAN), f[f.len() - 1].to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_reads_and_follow_up_frames() {
    let sim = start(
        Scenario::builtin(),
        SimOptions {
            clock: Clock::wall(),
            ..SimOptions::default()
        },
    )
    .await
    .unwrap();
    let links = meterbus::start(sim.sim_arc(), "127.0.0.1:0", "127.0.0.1:0", true)
        .await
        .unwrap();
    let pty = links.ptys[0].path.display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[gateway]\nid = \"gw-01\"\nsite = \"plant-a\"\ndata_dir = \"{}\"\n\n[mqtt]\nurl = \"mqtt://127.0.0.1:1\"\n\n\
         [[bus]]\nname = \"rs485-645\"\nprotocol = \"dlt645-2007\"\ntransport = \"serial\"\ndevice = \"{pty}\"\ngap_ms = 20\ntimeout_ms = 1000\n\n\
         [[meter]]\nname = \"power-b-645\"\nbus = \"rs485-645\"\naddress = \"000000000001\"\npoll_interval_s = 1\ntemplate = \"dlt645-meter\"\n\
         points = [\"energy_import\", \"energy_import_t1\", \"energy_import_t2\", \"energy_import_t3\", \"energy_import_t4\", \"voltage_a\", \"voltage_b\", \"voltage_c\", \"power_factor\"]\n\n\
         [[bus]]\nname = \"rs485-188\"\nprotocol = \"cjt188\"\ntransport = \"tcp\"\naddress = \"{}\"\ngap_ms = 20\n\n\
         [[meter]]\nname = \"heat-188\"\nbus = \"rs485-188\"\naddress = \"00000000000002\"\npoll_interval_s = 1\ntemplate = \"cjt188-heat\"\n",
        dir.path().join("data").display(),
        links.cjt188_addr
    );
    let cfg = write_config(dir.path(), &text);
    let l = &links.links;
    let check = std::process::Command::new(BIN)
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let plan = String::from_utf8_lossy(&check.stdout);
    assert!(
        plan.contains("9 points in 3 requests") && plan.contains("block read DI 0001FF00"),
        "{plan}"
    );
    assert!(plan.contains("6 points in 1 request"), "{plan}");

    // Each register wraps on its own at 1 000 000.00 kWh, a tariff's a quarter of the total.
    let truth = |share: f64| {
        (l.value("power-b-645", "energy_import", sim.now_ms())
            .unwrap()
            * share)
            .rem_euclid(1_000_000.0)
    };
    let check_values = |out: &str| {
        let total = truth(1.0);
        let tariff = truth(0.25);
        let (v, q) = value(out, "energy_import");
        assert_eq!(q, "good", "{out}");
        assert!(
            (v - total).abs() <= 0.01 * total.max(1.0),
            "total {v} vs {total}\n{out}"
        );
        for t in 1..=4 {
            let (v, q) = value(out, &format!("energy_import_t{t}"));
            assert_eq!(q, "good", "{out}");
            assert!(
                (v - tariff).abs() <= 0.01 * tariff.max(1.0),
                "tariff {t}: {v} vs {tariff}\n{out}"
            );
        }
        for p in ["voltage_a", "voltage_b", "voltage_c"] {
            assert_eq!(value(out, p), (230.0, "good".to_string()), "{out}");
        }
        assert_eq!(
            value(out, "power_factor"),
            (0.95, "good".to_string()),
            "{out}"
        );
    };

    // Whole answers: 3 requests for 9 points.
    let out = read(&cfg, "power-b-645", 1);
    check_values(&out);
    assert!(out.contains("3 requests in"), "{out}");
    assert!(!out.contains("then sent"), "{out}");

    // Answers split over frames of 8 value bytes: the energy block (20 bytes) takes 3 frames.
    l.set_split("power-b-645", 8).unwrap();
    let out = read(&cfg, "power-b-645", 1);
    check_values(&out);
    assert_eq!(out.matches("    then sent").count(), 2, "{out}");
    // The follow-ups are 12H with SEQ 1 and 2 (34H, 35H on the wire), answered B2H then 92H.
    assert!(out.contains("68 12 05 33 32 34 33 34"), "{out}");
    assert!(out.contains("68 12 05 33 32 34 33 35"), "{out}");
    l.set_split("power-b-645", 0).unwrap();

    // A meter that refuses blocks: the same values, point by point (remembered for the 2nd poll).
    l.set_fault("power-b-645", Some(LinkFault::NoBlocks))
        .unwrap();
    let out = read(&cfg, "power-b-645", 2);
    check_values(&out);
    let last_poll = out.rsplit("poll 2 of 2").next().unwrap();
    assert!(
        !last_poll.contains("68 D1") && last_poll.matches(": sent").count() == 3,
        "{out}"
    );
    // A meter that says no to everything: each point device_error, the error byte named.
    l.set_fault("power-b-645", Some(LinkFault::Exception))
        .unwrap();
    let out = read(&cfg, "power-b-645", 1);
    assert_eq!(value(&out, "energy_import_t2").1, "device_error", "{out}");
    assert_eq!(value(&out, "voltage_b").1, "device_error", "{out}");
    assert!(out.contains("error byte 02H (no data requested)"), "{out}");
    l.set_fault("power-b-645", None).unwrap();

    // CJ/T 188: six fields of one reply in one request.
    let out = read(&cfg, "heat-188", 1);
    assert!(out.contains("1 request in"), "{out}");
    for (p, v) in [("supply_temp", 70.0), ("return_temp", 50.0), ("power", 5.0)] {
        assert_eq!(value(&out, p), (v, "good".to_string()), "{out}");
    }
}
