//! Misbehaving meters through the whole system: timeouts, exceptions, garbage and NaN give their points the
//! contract's quality while the other meters go on; a totalizer rollover and a meter replacement show in the
//! values; and the agent's RTU transport on the simulator's pseudo-terminal.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use plantmeter_sim::AgentBus;
use plantmeter_tests::*;

fn fault(kind: &str, extra: &str) -> String {
    format!(
        "[[meter.fault]]\nkind = \"{kind}\"\n{extra}from = \"2025-09-10T11:20:00+08:00\"\nto = \"2025-09-10T11:40:00+08:00\""
    )
}

fn local(hm: &str) -> i64 {
    parse_ts_ms(&format!("2025-09-10T{hm}:00+08:00")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meter_faults_give_the_right_quality_and_spare_the_others() {
    let (water, gas, outfall, so2) = (
        fault("timeout", ""),
        fault("exception", "code = 2\n"),
        fault("garbage", ""),
        fault("nan", ""),
    );
    let text = scenario(
        &[("packer", "replace_at = [\"2025-09-10T12:10:00+08:00\"]")],
        &[
            ("water", &water),
            ("gas", &gas),
            ("outfall", &outfall),
            ("stack-so2", &so2),
        ],
        &[],
    );
    let dir = tempfile::tempdir().unwrap();
    let scenario_file = write(dir.path(), "scenario.toml", &text);
    let broker = Broker::start(BrokerKind::Rumqttd);
    // 20 virtual minutes per real second; every meter polled each virtual minute.
    let clock = VClock::new(
        "2025-09-10T11:00:00+08:00",
        1200.0,
        Duration::from_millis(500),
    );
    let sim = Sim::start(Some(&scenario_file), Some(&clock), &[]);
    let data = dir.path().join("data");
    let cfg = agent_config(
        Some(&text),
        AgentBus::Tcp(sim.addr.to_string()),
        &broker.url(),
        &data,
        60.0,
        200,
    );
    let cfg = write(dir.path(), "agent.toml", &cfg);
    let col = Collector::start(broker.addr, PREFIX).await;
    let agent = start_agent(&cfg, Some(&clock));
    clock.sleep_until(local("12:25"));
    assert!(agent.sigterm(Duration::from_secs(10)).success());
    let next = status_file(&data).unwrap()["store"]["next_seq"]
        .as_u64()
        .unwrap();
    col.wait_distinct(next - 1, Duration::from_secs(10)).await;

    let polls: Vec<_> = col.data().iter().map(poll_of).collect();
    let of = |meter: &str, from: &str, to: &str| {
        polls
            .iter()
            .filter(|(m, ts, _)| m == meter && (local(from)..local(to)).contains(ts))
            .collect::<Vec<_>>()
    };
    let all_quality = |meter: &str, from: &str, to: &str, q: &str| {
        let ps = of(meter, from, to);
        assert!(!ps.is_empty(), "{meter}: no poll between {from} and {to}");
        for (_, ts, points) in &ps {
            for (name, value, quality) in points {
                assert_eq!(quality, q, "{meter}.{name} at {}", format_ts_ms(*ts));
                assert_eq!(
                    value.is_some(),
                    q == "good",
                    "{meter}.{name}: value {value:?} with {quality}"
                );
            }
        }
    };
    for (meter, q) in [
        ("water", "comm_error"),
        ("gas", "device_error"),
        ("outfall", "comm_error"),
    ] {
        all_quality(meter, "11:02", "11:19", "good");
        // A poll started near the end of a timeout window may succeed on its retry after the window.
        all_quality(meter, "11:21", "11:34", q);
        all_quality(meter, "11:50", "12:20", "good");
    }
    // NaN on the analyser's floats: invalid, value null.
    let nan = of("stack-so2", "11:21", "11:39");
    assert!(!nan.is_empty());
    for (_, _, points) in &nan {
        assert!(
            points.iter().any(|(_, v, q)| q == "invalid" && v.is_none()),
            "{points:?}"
        );
        assert!(points
            .iter()
            .all(|(_, v, q)| q != "good" || v.is_some_and(f64::is_finite)));
    }
    all_quality("stack-so2", "11:50", "12:20", "good");
    // The healthy meters kept their pace through the faults: about one poll per virtual minute.
    for meter in ["main-power", "dyehouse", "stack", "packer"] {
        let n = of(meter, "11:20", "11:40").len();
        assert!(
            n >= 15,
            "{meter}: {n} polls in 20 virtual minutes of other meters' faults"
        );
        all_quality(meter, "11:02", "12:20", "good");
    }
    // Health went failing and came back.
    let states: Vec<String> = col
        .on(&format!("{PREFIX}/health/water"))
        .iter()
        .map(|m| m.json()["state"].as_str().unwrap().to_string())
        .collect();
    let failing = states.iter().position(|s| s == "failing");
    assert!(
        failing.is_some_and(|i| states[i..].iter().any(|s| s == "ok")),
        "{states:?}"
    );

    let value = |meter: &str, point: &str, from: &str, to: &str, last: bool| {
        let ps = of(meter, from, to);
        let pick = if last { ps.last() } else { ps.first() };
        pick.and_then(|(_, _, points)| points.iter().find(|p| p.0 == point).and_then(|p| p.1))
            .unwrap_or_else(|| panic!("no {meter}.{point} between {from} and {to}"))
    };
    // The ADW300 wraps at 10 000 000.00 kWh at 12:00.
    let before = value("power-b", "energy_import", "11:50", "12:00", true);
    let after = value("power-b", "energy_import", "12:01", "12:10", false);
    assert!(
        before > 9_999_000.0 && after < 1_000.0,
        "rollover: {before} then {after}"
    );
    // The packer's counter is replaced at 12:10 and restarts near 0.
    let before = value("packer", "count_total", "12:00", "12:10", true);
    let after = value("packer", "count_total", "12:11", "12:20", false);
    assert!(
        after < before && after < 100.0,
        "replacement: {before} then {after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtu_on_a_pseudo_terminal() {
    let broker = Broker::start(BrokerKind::Rumqttd);
    let sim = Sim::start(None, None, &["--pty"]);
    let pty = sim.pty.clone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = agent_config(
        None,
        AgentBus::Rtu(pty.display().to_string()),
        &broker.url(),
        &data,
        1.0,
        500,
    );
    let cfg = write(dir.path(), "agent.toml", &cfg);
    let col = Collector::start(broker.addr, PREFIX).await;
    let agent = start_agent(&cfg, None);
    wait_until(
        "two good polls of every meter over RTU",
        Duration::from_secs(30),
        || {
            let polls: Vec<_> = col.data().iter().map(poll_of).collect();
            [
                "main-power",
                "power-b",
                "gas",
                "water",
                "stack",
                "stack-so2",
                "outfall",
                "packer",
            ]
            .iter()
            .all(|m| {
                polls
                    .iter()
                    .filter(|(name, _, points)| name == m && points.iter().all(|p| p.2 == "good"))
                    .count()
                    >= 2
            })
        },
    )
    .await;
    assert!(agent.sigterm(Duration::from_secs(10)).success());
    let st = status_file(&data).unwrap();
    let next = st["store"]["next_seq"].as_u64().unwrap();
    col.wait_distinct(next - 1, Duration::from_secs(10)).await;
    check_delivery(&col.data(), next, 0);
}
