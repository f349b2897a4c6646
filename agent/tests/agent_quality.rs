//! Misbehaving meters: a meter that times out, one that answers Modbus exceptions and one that
//! answers garbage get the right quality on every point; the other meters go on unaffected.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use plantmeter_sim::Fault;
use support::*;

fn qualities(sub: &Collector, meter: &str) -> Vec<Vec<(String, serde_json::Value)>> {
    let data = sub.seqs();
    data.iter()
        .filter_map(|(_, p)| {
            let v: serde_json::Value = serde_json::from_slice(p).unwrap();
            (v["meter"] == meter).then(|| {
                v["points"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|pt| {
                        (
                            pt["quality"].as_str().unwrap().to_string(),
                            pt["value"].clone(),
                        )
                    })
                    .collect()
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_meters_get_their_quality_and_do_not_slow_the_others() {
    faulty_meters(Broker::start(BrokerKind::Rumqttd)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_meters_get_their_quality_and_do_not_slow_the_others_mosquitto() {
    if let Some(broker) = Broker::mosquitto("faulty_meters") {
        faulty_meters(broker).await;
    }
}

async fn faulty_meters(broker: Broker) {
    let sim = sim().await;
    let day = Duration::from_secs(86_400);
    sim.inject("power-b", Fault::Timeout, day).unwrap();
    sim.inject("dyehouse", Fault::Exception(2), day).unwrap();
    sim.inject("compressors", Fault::Garbage, day).unwrap();

    let sub = Collector::start(broker.addr, PREFIX).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Every meter every 0.5 virtual s at 4x: 8 polls per real second per healthy meter.
    let cfg = write_config(dir.path(), &config(&sim, broker.addr, &data, 0.5, 300));
    let agent = Agent::start(&cfg, 4.0);

    wait_until(
        "polls of the faulty meters",
        Duration::from_secs(20),
        || {
            qualities(&sub, "power-b").len() >= 2
                && qualities(&sub, "dyehouse").len() >= 2
                && qualities(&sub, "compressors").len() >= 2
        },
    )
    .await;
    let healthy_before = qualities(&sub, "main-power").len();
    wait_until(
        "16 more polls of main-power",
        Duration::from_secs(20),
        || qualities(&sub, "main-power").len() >= healthy_before + 16,
    )
    .await;

    for (meter, want) in [
        ("power-b", "comm_error"),
        ("dyehouse", "device_error"),
        ("compressors", "comm_error"),
    ] {
        for poll in qualities(&sub, meter) {
            for (q, v) in poll {
                assert_eq!(q, want, "{meter}");
                assert!(v.is_null(), "{meter}: a value with quality {q}");
            }
        }
    }
    for poll in qualities(&sub, "main-power") {
        for (q, v) in poll {
            assert_eq!(q, "good");
            assert!(v.is_number());
        }
    }
    // Polled every 0.5 virtual s while power-b times out on every poll: the healthy meter keeps
    // its interval (as its readings are stamped), it is not held up by the failing one.
    let times = sub.poll_times("main-power");
    let gap = median_gap(&times[healthy_before.saturating_sub(1)..]);
    assert!(
        (400..=600).contains(&gap),
        "main-power polled every {gap} ms (virtual) next to a timing-out meter, not every 500"
    );

    // Retained health says which meter fails, and why.
    let h = sub.last_at("health/power-b").unwrap();
    assert_eq!(h["state"], "failing");
    assert!(h["last_error"].as_str().unwrap().contains("timeout"), "{h}");
    assert!(h["errors"].as_u64().unwrap() >= 1);
    let h = sub.last_at("health/dyehouse").unwrap();
    assert_eq!(h["state"], "failing");
    assert!(
        h["last_error"].as_str().unwrap().contains("exception"),
        "{h}"
    );
    assert_eq!(sub.last_at("health/main-power").unwrap()["state"], "ok");

    // Faults cleared: the meter recovers and says so.
    sim.clear_faults("dyehouse").unwrap();
    wait_until("dyehouse healthy again", Duration::from_secs(10), || {
        sub.last_at("health/dyehouse")
            .is_some_and(|h| h["state"] == "ok")
    })
    .await;
    assert!(agent.sigterm(Duration::from_secs(8)).success());
}

/// A meter that refuses reads over unmapped registers (exception 02, as many real meters answer):
/// the agent's requests bridge gaps between its points (Modbus TCP default `max_gap` 64), so the
/// first poll is refused; the agent reads the points again in contiguous groups within that same
/// poll, says so once, and the meter's points are good from the first message on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meter_refusing_unmapped_registers_is_read_in_contiguous_groups() {
    let sim = sim().await;
    sim.inject("main-power", Fault::StrictMap, Duration::from_secs(86_400))
        .unwrap();
    let broker = Broker::start(BrokerKind::Rumqttd);
    let sub = Collector::start(broker.addr, PREFIX).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = write_config(dir.path(), &config(&sim, broker.addr, &data, 0.5, 300));
    let log = dir.path().join("agent.log");
    let agent = Agent::start_logging_to(&cfg, 4.0, &log);

    wait_until("polls of main-power", Duration::from_secs(20), || {
        qualities(&sub, "main-power").len() >= 4
    })
    .await;
    assert!(agent.sigterm(Duration::from_secs(8)).success());
    for poll in qualities(&sub, "main-power") {
        for (q, v) in poll {
            assert_eq!(q, "good", "main-power");
            assert!(v.is_number());
        }
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let warnings = text
        .matches("refuses reads over unmapped registers")
        .count();
    assert_eq!(warnings, 1, "said once:\n{text}");
    assert!(text.contains("main-power"), "{text}");
}

/// Meters that answer well-framed replies to another question: more registers than asked (6666
/// in front of the real values), fewer, from another unit id, with another function code or
/// another transaction id (Modbus TCP only). None of them is believed: every point is
/// `comm_error` without a value, the health says why, and a healthy meter next to them stays good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_replies_are_comm_errors_and_no_value_of_them_is_published() {
    hostile_replies(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_replies_are_comm_errors_and_no_value_of_them_is_published_over_rtu_over_tcp() {
    hostile_replies(true).await;
}

async fn hostile_replies(rtu: bool) {
    let sim = plantmeter_sim::start(
        plantmeter_sim::Scenario::builtin(),
        plantmeter_sim::SimOptions {
            clock: plantmeter_common::Clock::wall(),
            rtu_over_tcp_listen: rtu.then(|| "127.0.0.1:0".into()),
            ..plantmeter_sim::SimOptions::default()
        },
    )
    .await
    .unwrap();
    let day = Duration::from_secs(86_400);
    let mut hostile = vec![
        (
            "power-b",
            Fault::ExtraRegisters,
            "registers in the reply to a read of",
        ),
        (
            "dyehouse",
            Fault::ShortReply,
            "registers in the reply to a read of",
        ),
        ("compressors", Fault::WrongUnit, "header mismatch"),
        ("lighting", Fault::WrongFunction, "reply of function"),
    ];
    if !rtu {
        hostile.push(("gas", Fault::WrongTransaction, "header mismatch"));
    }
    for (meter, fault, _) in &hostile {
        sim.inject(meter, *fault, day).unwrap();
    }
    let broker = Broker::start(BrokerKind::Rumqttd);
    let sub = Collector::start(broker.addr, PREFIX).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut text = config(&sim, broker.addr, &data, 0.5, 300);
    if let Some(addr) = sim.rtu_over_tcp_addr() {
        let mut o = plantmeter_sim::AgentConfigOptions::tcp(sim.addr().to_string());
        o.bus = plantmeter_sim::AgentBus::RtuOverTcp(addr.to_string());
        o.mqtt_url = format!("mqtt://{}", broker.addr);
        o.data_dir = data.display().to_string();
        o.poll_interval_s = Some(1.0);
        o.timeout_ms = 300;
        text = sim.agent_config_with(&o);
    }
    let cfg = write_config(dir.path(), &text);
    let agent = Agent::start(&cfg, 4.0);

    wait_until(
        "two polls of every hostile meter and of a healthy one, and their health",
        Duration::from_secs(30),
        || {
            qualities(&sub, "main-power").len() >= 2
                && hostile.iter().all(|(m, _, _)| {
                    qualities(&sub, m).len() >= 2
                        && sub
                            .last_at(&format!("health/{m}"))
                            .is_some_and(|h| h["state"] == "failing")
                })
        },
    )
    .await;
    assert!(agent.sigterm(Duration::from_secs(8)).success());

    for (meter, fault, why) in &hostile {
        for poll in qualities(&sub, meter) {
            for (q, v) in poll {
                assert_eq!(q, "comm_error", "{meter} ({fault:?})");
                assert!(v.is_null(), "{meter} ({fault:?}): value {v} published");
            }
        }
        let h = sub.last_at(&format!("health/{meter}")).unwrap();
        assert!(
            h["last_error"].as_str().unwrap().contains(why),
            "{meter} ({fault:?}): {h}"
        );
    }
    for poll in qualities(&sub, "main-power") {
        for (q, v) in poll {
            assert_eq!(q, "good");
            assert!(v.is_number());
        }
    }
}

/// `text` with a `[[meter.point]]` block added to the meter whose `template = "..."` line is `template_line`.
fn add_point(text: &str, template_line: &str, point: &str) -> String {
    let at = text.find(template_line).unwrap();
    let end = at + text[at..].find('\n').unwrap() + 1;
    format!("{}{point}\n{}", &text[..end], &text[end..])
}

/// A point configured on a register the meter does not have (exception 02 on its request, every
/// time): that request backs off, the meter's other points keep their interval and stay good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmapped_register_backs_off_its_own_request_not_the_meter() {
    let sim = sim().await;
    let broker = Broker::start(BrokerKind::Rumqttd);
    let sub = Collector::start(broker.addr, PREFIX).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let text = add_point(
        &config(&sim, broker.addr, &data, 0.5, 300),
        "template = \"sdm630\"",
        "[[meter.point]]\nname = \"not_there\"\nregister = \"holding\"\naddress = 9000\ntype = \"u16\"\nunit = \"1\"\n",
    );
    let cfg = write_config(dir.path(), &text);
    let agent = Agent::start(&cfg, 4.0);

    // 0.5 s at 4x: 8 polls a real second. A meter backing off to 60 s (15 s real) after a few
    // failures would not get anywhere near 40 polls.
    wait_until("40 polls of main-power", Duration::from_secs(30), || {
        qualities(&sub, "main-power").len() >= 40
    })
    .await;
    wait_until("main-power health", Duration::from_secs(10), || {
        sub.last_at("health/main-power").is_some()
    })
    .await;
    assert!(agent.sigterm(Duration::from_secs(8)).success());
    let data = sub.seqs();
    let mut polls = 0;
    for (_, p) in &data {
        let v: serde_json::Value = serde_json::from_slice(p).unwrap();
        if v["meter"] != "main-power" {
            continue;
        }
        polls += 1;
        for pt in v["points"].as_array().unwrap() {
            if pt["name"] == "not_there" {
                assert_eq!(pt["quality"], "device_error", "{pt}");
                assert!(pt["value"].is_null());
            } else {
                assert_eq!(pt["quality"], "good", "{pt}");
                assert!(pt["value"].is_number());
            }
        }
    }
    assert!(polls >= 40);
    drop(data);
    let h = sub.last_at("health/main-power").unwrap();
    assert_eq!(h["state"], "failing", "{h}");
    assert!(
        h["last_error"].as_str().unwrap().contains("holding 9000"),
        "{h}"
    );
}

/// Issue #21 item 7: a meter configured with the wrong byte order (the SDM630 is `ABCD`, the config says
/// `DCBA`) is not published as good with absurd values: each value a meter cannot show (beyond its template's
/// bounds, beyond 1e12, a subnormal float) is `invalid` with a null value, counted in `status.json`, and
/// named once in the log per point, not once per poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_byte_order_is_published_invalid_and_named_once() {
    let sim = sim().await;
    let broker = Broker::start(BrokerKind::Rumqttd);
    let sub = Collector::start(broker.addr, PREFIX).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let text = config(&sim, broker.addr, &data, 0.5, 300);
    let at = text.find("template = \"sdm630\"").unwrap();
    let eol = at + text[at..].find('\n').unwrap();
    let text = format!("{}\nbyte_order = \"DCBA\"{}", &text[..eol], &text[eol..]);
    let cfg = write_config(dir.path(), &text);
    let log = dir.path().join("agent.log");
    let agent = Agent::start_logging_to(&cfg, 4.0, &log);

    let names: Vec<String> = plantmeter_common::templates::Template::builtin("sdm630")
        .unwrap()
        .points
        .iter()
        .map(|p| p.name.clone())
        .collect();
    wait_until("40 polls of main-power", Duration::from_secs(30), || {
        qualities(&sub, "main-power").len() >= 40
    })
    .await;
    let template = plantmeter_common::templates::Template::builtin("sdm630").unwrap();
    let mut invalid = std::collections::BTreeMap::<String, usize>::new();
    for poll in qualities(&sub, "main-power") {
        for ((q, v), p) in poll.iter().zip(&template.points) {
            match q.as_str() {
                "invalid" => {
                    assert!(v.is_null(), "{}: invalid with a value {v}", p.name);
                    *invalid.entry(p.name.clone()).or_default() += 1;
                }
                "good" => {
                    let x = v.as_f64().unwrap();
                    assert!(
                        p.min.is_none_or(|m| x >= m) && p.max.is_none_or(|m| x <= m),
                        "{}: {x} published good outside its template's bounds",
                        p.name
                    );
                    assert!(
                        x == 0.0 || (f64::from(f32::MIN_POSITIVE)..=1e12).contains(&x.abs()),
                        "{}: {x}",
                        p.name
                    );
                }
                // A poll that timed out on a loaded machine is not this test's subject.
                "comm_error" => assert!(v.is_null(), "{}: {v}", p.name),
                other => panic!("{}: quality {other}", p.name),
            }
        }
    }
    // 230 V and the phase currents read byte-reversed are absurd. Not every wrong value can be told from a
    // right one: a byte-reversed 50 Hz can look like 0.6 Hz, a power factor of 0.92 like 1e-25 (inside its
    // bounds, and above the subnormal floats the near-zero rule refuses: a wider rule refused real near-zero
    // concentrations).
    for p in ["voltage_l1", "current_l1"] {
        assert!(
            invalid.get(p).is_some_and(|n| *n > 0),
            "{p} never invalid: {invalid:?}"
        );
    }
    // The healthy meters are untouched.
    for poll in qualities(&sub, "power-b") {
        assert!(
            poll.iter().all(|(q, _)| q == "good" || q == "comm_error"),
            "{poll:?}"
        );
    }
    // Counted where the operator looks.
    wait_until(
        "invalid values in status.json",
        Duration::from_secs(10),
        || {
            status_file(&data)["meters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["name"] == "main-power" && m["invalid_values"].as_u64().unwrap_or(0) > 0)
        },
    )
    .await;
    assert!(agent.sigterm(Duration::from_secs(8)).success());
    // Named once per point, though invalid in many polls.
    let text = std::fs::read_to_string(&log).unwrap();
    for name in &names {
        let lines = text
            .lines()
            .filter(|l| l.contains(&format!("main-power.{name}: value refused")))
            .count();
        let want = usize::from(invalid.contains_key(name));
        assert!(lines <= 1, "{name} named {lines} times:\n{text}");
        if invalid.get(name).is_some_and(|n| *n > 1) {
            assert_eq!(lines, want, "{name}:\n{text}");
        }
    }
}
