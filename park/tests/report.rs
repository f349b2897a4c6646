//! `plantmeter-park report` against the agents' own reports over the same readings: one audit
//! implementation (plantmeter-common), fed from PostgreSQL instead of the agent's store.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;
use std::time::Duration;

use plantmeter_tests::{format_ts_ms, parse_ts_ms, run_ok, VClock};
use serde_json::Value;
use support::*;

fn midnight(date: &str) -> i64 {
    parse_ts_ms(&format!("{date}T00:00:00+08:00")).unwrap()
}

/// Numbers equal to 1e-9 (relative), everything else exactly; `path` names the difference.
fn same(a: &Value, b: &Value, path: &str) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
                "{path}: {x} vs {y}"
            );
        }
        (Value::Object(x), Value::Object(y)) => {
            let kx: Vec<&String> = x.keys().collect();
            let ky: Vec<&String> = y.keys().collect();
            assert_eq!(kx, ky, "{path}: keys");
            for (k, v) in x {
                same(v, &y[k], &format!("{path}.{k}"));
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}: length");
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                same(v, w, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(a, b, "{path}"),
    }
}

/// The agent's `[audit]` as a `[plant.audit]` whose points are on gateway `site/id`.
fn plant_audit(agent_config: &str, gateway: &str) -> String {
    let at = agent_config.find("\n[audit]").unwrap();
    let mut s = agent_config[at..]
        .replace("\n[audit]", "\n[plant.audit]")
        .replace("[[audit.", "[[plant.audit.")
        .replace("\n[audit.", "\n[plant.audit.");
    for key in ["point", "concentration", "flow", "o2", "parent"] {
        s = s.replace(&format!("{key} = \""), &format!("{key} = \"{gateway}/"));
    }
    // `[audit.water] reuse = ["meter.point", ...]`: every point of the list.
    s.lines()
        .map(|l| match l.strip_prefix("reuse = [") {
            Some(rest) => format!(
                "reuse = [{}",
                rest.split('"')
                    .enumerate()
                    .map(|(i, part)| if i % 2 == 1 {
                        format!("\"{gateway}/{part}\"")
                    } else {
                        part.to_string()
                    })
                    .collect::<String>()
            ),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plant_reports_equal_the_agents_reports_and_the_park_sums_them() {
    let test = "plant_reports_equal_the_agents_reports";
    let (Some(pg), Some(mq)) = (Pg::start(test), Mosquitto::start(test)) else {
        return;
    };
    let text = plantmeter_tests::scenario(
        &[],
        &[],
        &[(
            "baseline = [\"2025-01-01\", \"2026-01-01\"]\nreporting = [\"2026-01-01\", \"2026-07-01\"]",
            "baseline = [\"2025-01-01\", \"2025-01-15\"]\nreporting = [\"2025-01-15\", \"2025-01-22\"]",
        )],
    );
    let dir = tempfile::tempdir().unwrap();
    let scenario_file = plantmeter_tests::write(dir.path(), "scenario.toml", &text);
    let (start, end) = (
        midnight("2025-01-01") - 3_600_000,
        midnight("2025-01-22") + 3 * 3_600_000,
    );
    // About 8 real seconds for the three weeks.
    let clock = VClock::new(
        &format_ts_ms(start),
        (end - start) as f64 / 8_000.0,
        Duration::from_millis(800),
    );
    let sim = plantmeter_tests::Sim::start(Some(&scenario_file), Some(&clock), &[]);

    let mut agent_cfgs = Vec::new();
    let mut park = String::new();
    for (plant, gw) in [("sunrise", "gw-01"), ("moon", "gw-02")] {
        let cfg = plantmeter_tests::agent_config(
            Some(&text),
            plantmeter_sim::AgentBus::Tcp(sim.addr.to_string()),
            &mq.url(),
            &dir.path().join(gw),
            3600.0,
            100,
        )
        .replacen("id = \"gw-01\"", &format!("id = \"{gw}\""), 1);
        park.push_str(&format!(
            "\n[[plant]]\nname = \"{plant}\"\ngateways = [\"plant-a/{gw}\"]\n{}",
            plant_audit(&cfg, &format!("plant-a/{gw}"))
        ));
        agent_cfgs.push(plantmeter_tests::write(
            dir.path(),
            &format!("{gw}.toml"),
            &cfg,
        ));
    }
    let park_cfg = park_config(dir.path(), &pg.url(), &mq.url(), &[]);
    let park_text = std::fs::read_to_string(&park_cfg).unwrap() + &park;
    std::fs::write(&park_cfg, park_text).unwrap();
    run_ok(
        Command::new(PARK)
            .args(["check", "--config"])
            .arg(&park_cfg),
    );

    let park_proc = start_park(&park_cfg, "a");
    // Every data message the broker routes, to know when the database holds them all.
    let addr = format!("127.0.0.1:{}", mq.port).parse().unwrap();
    let collector = plantmeter_tests::Collector::start(addr, "plantmeter").await;
    wait_subscribed(&pg, 1).await;
    let agents: Vec<_> = agent_cfgs
        .iter()
        .map(|c| plantmeter_tests::start_agent(c, Some(&clock)))
        .collect();
    clock.sleep_until(end);
    for a in agents {
        assert!(a.sigterm(Duration::from_secs(20)).success());
    }
    let published = collector.data_len();
    let c = pg.client().await;
    plantmeter_tests::wait_until("every data message stored", Duration::from_secs(60), || {
        let n = std::thread::scope(|_| {
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    c.query_one("SELECT count(*) FROM readings", &[])
                        .await
                        .map(|r| r.get::<_, i64>(0))
                        .unwrap_or(0)
                })
            })
        });
        n as usize >= published
    })
    .await;

    let mut sums: Vec<(String, f64)> = Vec::new();
    for (plant, cfg) in [("sunrise", &agent_cfgs[0]), ("moon", &agent_cfgs[1])] {
        let agent: Value = plantmeter_tests::report_json(&bin_plantmeter(), cfg);
        let out = run_ok(
            Command::new(PARK)
                .args(["report", "--format", "json", "--plant", plant, "--config"])
                .arg(&park_cfg),
        );
        let park: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(park["gateway"], plant);
        same(&park["periods"], &agent["periods"], "periods");
        same(&park["indicators"], &agent["indicators"], "indicators");
        assert!(
            agent["indicators"]["energy"]["baseline"]["total"]
                .as_f64()
                .unwrap()
                > 0.0
        );
        for (k, v) in agent["indicators"].as_object().unwrap() {
            sums.push((k.clone(), v["reporting"]["total"].as_f64().unwrap_or(0.0)));
        }
    }
    // CSV and HTML come from the agent's renderers: the same layout.
    for (format, lang) in [("csv", "zh"), ("html", "en")] {
        let file = dir.path().join(format!("sunrise.{format}"));
        run_ok(
            Command::new(PARK)
                .args([
                    "report", "--plant", "sunrise", "--format", format, "--lang", lang, "--out",
                ])
                .arg(&file)
                .arg("--config")
                .arg(&park_cfg),
        );
        // The report names the plant where the agent's names its gateway.
        let park_text = std::fs::read_to_string(&file)
            .unwrap()
            .replace("plant-a / sunrise", "plant-a / gw-01");
        let agent = Command::new(bin_plantmeter())
            .args(["report", "--format", format, "--lang", lang, "--config"])
            .arg(&agent_cfgs[0])
            .output()
            .unwrap();
        let agent_text = String::from_utf8_lossy(&agent.stdout);
        // The seal's meta tags name each report's own id and digest (both sealed, over different JSON).
        let unsealed = |t: &str| {
            let mut out = String::new();
            let mut rest = t.lines().next().unwrap_or("");
            while let Some(i) = rest.find("<meta name=\"plantmeter-report-") {
                out.push_str(&rest[..i]);
                rest = rest[i..].split_once('>').map_or("", |(_, r)| r);
            }
            out.push_str(rest);
            out
        };
        assert_eq!(unsealed(&park_text), unsealed(&agent_text), "{format}");
        assert_eq!(
            park_text.lines().count(),
            agent_text.lines().count(),
            "{format}"
        );
    }
    // The park report as one tidy table: a row per plant and indicator, then the park's totals.
    let out = run_ok(
        Command::new(PARK)
            .args(["report", "--format", "csv", "--config"])
            .arg(&park_cfg),
    );
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(
        csv.contains("plant,enterprise,indicator,baseline_total,reporting_total"),
        "{csv}"
    );
    assert!(csv.contains("(park total)"), "{csv}");
    // A plant's report as the agent's workbook.
    let out = run_ok(
        Command::new(PARK)
            .args([
                "report", "--format", "xlsx", "--plant", "sunrise", "--config",
            ])
            .arg(&park_cfg),
    );
    assert!(out.stdout.starts_with(b"PK"), "an xlsx (zip) container");
    let out = run_ok(
        Command::new(PARK)
            .args(["report", "--format", "json", "--config"])
            .arg(&park_cfg),
    );
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p["park"], "Test Park");
    assert_eq!(p["plants"][0]["name"], "sunrise");
    assert_eq!(p["plants"][1]["name"], "moon");
    for (k, _) in &sums {
        let want: f64 = sums.iter().filter(|(j, _)| j == k).map(|(_, v)| v).sum();
        let got = p["totals"][k]["reporting"]["total"].as_f64().unwrap();
        assert!(
            (got - want).abs() <= 1e-9 * want.abs().max(1.0),
            "{k}: {got} vs {want}"
        );
    }
    // The plant's page shows its indicators against the baseline, as the report has them.
    if let Some(browser) = chromium() {
        let base = web_url(&park_cfg);
        let dom = dump_dom(browser, &format!("{base}/plant/sunrise"));
        let energy = row(&dom, "data-indicator", "energy");
        assert!(energy.contains("kgce"), "{energy}");
        assert!(dom.contains("<svg id=\"chart\""), "{dom}");
        // The chart has its axes: a value axis title and dates.
        assert!(
            dom.contains("kgce per day") && dom.contains(">2025-01-01<"),
            "{dom}"
        );
        // Indicators in the report's order (energy first), not alphabetical.
        let first = dom.find("data-indicator=").unwrap();
        assert!(
            dom[first..].starts_with("data-indicator=\"energy\""),
            "{dom}"
        );
        // The periods with their production and completeness.
        let reporting = row(&dom, "data-period", "reporting");
        assert!(
            reporting.contains(">2025-01-15<") && reporting.contains(" %<"),
            "{reporting}"
        );
        // The park page: each plant's key figures and the park totals, as the park report has them.
        let dom = dump_dom(browser, &format!("{base}/"));
        let total = row(&dom, "data-total", "energy");
        let want = p["totals"]["energy"]["reporting"]["total"]
            .as_f64()
            .unwrap();
        assert!(total.contains(&format!(">{want:.0}<")), "{want}: {total}");
        assert!(dom.contains("data-fig=\"energy-per-unit\""), "{dom}");
        assert!(dom.contains("UTC+08:00"), "{dom}");
        // Screenshots to look at: desktop and phone width.
        let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("park-screens");
        std::fs::create_dir_all(&out).unwrap();
        for (page, url) in [
            ("park", format!("{base}/")),
            ("plant", format!("{base}/plant/sunrise")),
        ] {
            for width in [1280, 390] {
                let file = out.join(format!("{page}-{width}.png"));
                assert!(
                    screenshot(browser, &url, width, &file),
                    "screenshot {}",
                    file.display()
                );
            }
        }
        eprintln!("screenshots in {}", out.display());
    } else {
        skip(
            &plantmeter_tests::this_test(),
            "its check of the plant page: chromium is not installed (.ci/run installs it)",
        );
    }
    assert!(park_proc.sigterm(Duration::from_secs(10)).success());
}

fn bin_plantmeter() -> std::path::PathBuf {
    plantmeter_tests::bin("plantmeter")
}
