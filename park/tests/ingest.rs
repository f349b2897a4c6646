//! `plantmeter-park run` against a real PostgreSQL and mosquitto: what `status` and the database show.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_missing_seq_ranges_evictions_and_copies_change_nothing() {
    let test = "status_shows_missing_seq_ranges";
    let (Some(pg), Some(mq)) = (Pg::start(test), Mosquitto::start(test)) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = park_config(
        dir.path(),
        &pg.url(),
        &mq.url(),
        &[("sunrise", &["plant-a/gw-01"])],
    );
    let mut park = start_park(&cfg, "a");
    wait_subscribed(&pg, 1).await;

    let p = "plantmeter/plant-a/gw-01";
    let mut msgs = vec![
        (format!("{p}/status"), r#"{"state":"online","version":"0.1.0","since":"2026-11-21T08:00:00.000Z","evicted":3}"#.to_string(), true),
        (format!("{p}/meta"), r#"{"gateway":"gw-01","site":"plant-a","meters":[]}"#.to_string(), true),
        (format!("{p}/health/main-power"), r#"{"state":"failing","last_ok":null,"errors":2,"last_error":"timeout"}"#.to_string(), true),
        (format!("{p}/data/main-power"), "{not json".to_string(), false),
    ];
    // seq 2 arrives twice (a redelivery): stored once. 4..=6 and 9 never arrive.
    for seq in [1, 2, 2, 3, 7, 8, 10] {
        msgs.push((
            format!("{p}/data/main-power"),
            data(seq, "main-power"),
            false,
        ));
    }
    publish_all(mq.port, &msgs).await;

    let want = |s: &serde_json::Value| {
        s.as_array().is_some_and(|a| {
            a.len() == 1
                && a[0]["messages"] == 6
                && a[0]["missing"] == serde_json::json!([[4, 6], [9, 9]])
                // The gateway's row follows the data's transaction (apart from it: no deadlock).
                && a[0]["last_message"].is_string()
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let s = loop {
        park.assert_running();
        if let Some(s) = status(&cfg).filter(want) {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "status never showed the stored messages: {:?}",
            status(&cfg)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let g = &s[0];
    assert_eq!(g["gateway"], "gw-01");
    assert_eq!(g["site"], "plant-a");
    assert_eq!(g["online"], true);
    assert_eq!(g["seq_first"], 1);
    assert_eq!(g["seq_last"], 10);
    assert_eq!(g["evictions"], 3);
    assert!(
        g["last_message"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{g}"
    );

    let c = pg.client().await;
    let v: f64 = c
        .query_one(
            "SELECT (points->0->>'value')::float8 FROM readings WHERE gateway = 'gw-01' AND seq = 2",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, 2.5);
    let partitions: Vec<String> = c
        .query(
            "SELECT relname::text FROM pg_class WHERE relname LIKE 'readings_y%' AND relkind = 'r' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(partitions, ["readings_y2026m11"]);
    let rejected: String = c
        .query_one(
            "SELECT reason FROM rejected WHERE topic = $1",
            &[&format!("{p}/data/main-power")],
        )
        .await
        .unwrap()
        .get(0);
    assert!(rejected.contains("not a data message"), "{rejected}");
    let health: String = c
        .query_one("SELECT state FROM health WHERE meter = 'main-power'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(health, "failing");

    // The gateway answers a replay: 4..6 it no longer holds. Gone, not missing any more.
    publish_all(
        mq.port,
        &[(
            format!("{p}/replay"),
            r#"{"from":4,"to":9,"gone":[[4,6]]}"#.to_string(),
            false,
        )],
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = status(&cfg).unwrap();
        if s[0]["missing"] == serde_json::json!([[9, 9]])
            && s[0]["gone"] == serde_json::json!([[4, 6]])
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gone never shown: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Later looks start at the gateway's mark (bounded: not every stored seq) and see the same; a
    // row deleted below the mark is missing again.
    let upto: i64 = c
        .query_one("SELECT upto FROM seq_checked WHERE gateway = 'gw-01'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        upto, 8,
        "the mark stops before the first range still missing"
    );
    let s = status(&cfg).unwrap();
    assert_eq!(s[0]["missing"], serde_json::json!([[9, 9]]), "{s}");
    assert_eq!(s[0]["gone"], serde_json::json!([[4, 6]]), "{s}");
    c.execute(
        "DELETE FROM readings WHERE gateway = 'gw-01' AND seq = 7",
        &[],
    )
    .await
    .unwrap();
    let s = status(&cfg).unwrap();
    assert_eq!(s[0]["missing"], serde_json::json!([[7, 7], [9, 9]]), "{s}");
    assert_eq!(s[0]["gone"], serde_json::json!([[4, 6]]), "{s}");

    // The last will: offline.
    publish_all(
        mq.port,
        &[(
            format!("{p}/status"),
            r#"{"state":"offline","version":"0.1.0","since":"2026-11-21T09:00:00.000Z"}"#
                .to_string(),
            true,
        )],
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while status(&cfg).is_none_or(|s| s[0]["online"] != false) {
        assert!(
            std::time::Instant::now() < deadline,
            "the gateway never showed offline"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let st = park.sigterm(Duration::from_secs(10));
    assert!(st.success(), "SIGTERM: {st}");
}

/// (site, gateway) -> seqs, from messages on `plantmeter/{site}/{gateway}/data/…`.
fn seqs_of(msgs: &[plantmeter_tests::Msg]) -> BTreeMap<(String, String), BTreeSet<i64>> {
    let mut out: BTreeMap<(String, String), BTreeSet<i64>> = BTreeMap::new();
    for m in msgs {
        let parts: Vec<&str> = m.topic.split('/').collect();
        let seq = m.json()["seq"].as_i64().unwrap();
        out.entry((parts[1].to_string(), parts[2].to_string()))
            .or_default()
            .insert(seq);
    }
    out
}

async fn wait_data(c: &plantmeter_tests::Collector, n: usize, what: &str) {
    plantmeter_tests::wait_until(what, Duration::from_secs(60), || c.data_len() >= n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_store_every_seq_once_through_a_kill_and_a_database_restart() {
    let test = "two_instances_store_every_seq_once";
    let (Some(pg), Some(mq)) = (Pg::start(test), Mosquitto::start(test)) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = park_config(
        dir.path(),
        &pg.url(),
        &mq.url(),
        &[
            ("sunrise", &["plant-a/gw-01", "plant-a/gw-02"]),
            ("moon", &["plant-b/gw-03"]),
        ],
    );
    let park_a = start_park(&cfg, "a");
    let park_b = start_park(&cfg, "b");
    wait_subscribed(&pg, 2).await;
    let addr = format!("127.0.0.1:{}", mq.port).parse().unwrap();
    let collector = plantmeter_tests::Collector::start(addr, "plantmeter").await;

    let sim = plantmeter_tests::Sim::start(None, None, &[]);
    let mut agents = Vec::new();
    for (site, gw) in [
        ("plant-a", "gw-01"),
        ("plant-a", "gw-02"),
        ("plant-b", "gw-03"),
    ] {
        let data_dir = dir.path().join(gw);
        let text = plantmeter_tests::agent_config(
            None,
            plantmeter_sim::AgentBus::Tcp(sim.addr.to_string()),
            &mq.url(),
            &data_dir,
            0.2,
            1000,
        )
        .replacen("id = \"gw-01\"", &format!("id = \"{gw}\""), 1)
        .replacen("site = \"plant-a\"", &format!("site = \"{site}\""), 1);
        let path = plantmeter_tests::write(dir.path(), &format!("{gw}.toml"), &text);
        agents.push(plantmeter_tests::start_agent(&path, None));
    }

    wait_data(&collector, 150, "150 data messages").await;
    park_b.sigkill();
    let n = collector.data_len();
    wait_data(&collector, n + 150, "150 data messages after the kill").await;
    pg.restart();
    let n = collector.data_len();
    wait_data(
        &collector,
        n + 150,
        "150 data messages after the database restart",
    )
    .await;
    // The killed instance comes back under its own name: its session's messages reach the database.
    let park_b = start_park(&cfg, "b");
    let n = collector.data_len();
    wait_data(&collector, n + 100, "100 more data messages").await;
    // Two agents stop cleanly, one is killed: its last will says offline.
    let killed = agents.pop().unwrap();
    killed.sigkill();
    for a in agents {
        let st = a.sigterm(Duration::from_secs(20));
        assert!(st.success(), "agent: {st}");
    }
    let mut published = seqs_of(&collector.data());
    assert_eq!(published.len(), 3, "{:?}", published.keys());

    let c = pg.client().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        // Messages the agents sent just before they stopped may reach the collector after the park:
        // what it received is read again at each look.
        published = seqs_of(&collector.data());
        let rows = c
            .query(
                "SELECT site, gateway, seq, count(*) FROM readings GROUP BY 1, 2, 3",
                &[],
            )
            .await
            .unwrap();
        assert!(
            rows.iter().all(|r| r.get::<_, i64>(3) == 1),
            "a seq stored twice"
        );
        let mut stored: BTreeMap<(String, String), BTreeSet<i64>> = BTreeMap::new();
        for r in &rows {
            stored
                .entry((r.get(0), r.get(1)))
                .or_default()
                .insert(r.get(2));
        }
        if stored == published {
            break;
        }
        let missing: usize = published
            .iter()
            .map(|(k, v)| {
                v.difference(stored.get(k).unwrap_or(&BTreeSet::new()))
                    .count()
            })
            .sum();
        assert!(
            std::time::Instant::now() < deadline,
            "the database never held every published seq: {missing} missing"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every gateway complete, and offline once its agent stopped or was killed.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let s = loop {
        let s = status(&cfg).expect("status");
        if s.as_array().unwrap().iter().all(|g| g["online"] == false) {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gateways still online: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for g in s.as_array().unwrap() {
        let key = (
            g["site"].as_str().unwrap().to_string(),
            g["gateway"].as_str().unwrap().to_string(),
        );
        let seqs = &published[&key];
        assert_eq!(g["messages"], seqs.len(), "{g}");
        assert_eq!(g["seq_last"], *seqs.last().unwrap(), "{g}");
        assert_eq!(g["missing"], serde_json::json!([]), "{g}");
    }
    for p in [park_a, park_b] {
        let st = p.sigterm(Duration::from_secs(10));
        assert!(st.success(), "park: {st}");
    }
    // The two instances never deadlocked (gateway rows are written apart from the data, in order).
    let log = pg.log();
    assert!(!log.contains("deadlock detected"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_oversized_and_foreign_messages_are_refused_counted_and_never_stored() {
    let test = "forged_oversized_and_foreign_messages_are_refused";
    let (Some(pg), Some(mq)) = (Pg::start(test), Mosquitto::start(test)) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = park_config(
        dir.path(),
        &pg.url(),
        &mq.url(),
        &[("sunrise", &["plant-a/gw-01"])],
    );
    let mut park = start_park(&cfg, "a");
    wait_subscribed(&pg, 1).await;
    let p = "plantmeter/plant-a/gw-01/data/main-power";
    let good: Vec<(String, String, bool)> = (1..=5)
        .map(|seq| (p.to_string(), data(seq, "main-power"), false))
        .collect();
    publish_all(mq.port, &good).await;
    let c = pg.client().await;
    let stored = async || -> i64 {
        c.query_one("SELECT count(*) FROM readings", &[])
            .await
            .unwrap()
            .get(0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while stored().await < 5 {
        park.assert_running();
        assert!(
            std::time::Instant::now() < deadline,
            "5 messages never stored"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let forged_ts = data(3, "main-power").replace("08:00:03.000Z", "09:00:03.000Z");
    let forged_value = data(4, "main-power").replace("4.5", "40000.5");
    let junk: Vec<String> = (0..1500)
        .map(|i| format!(r#"{{"name":"p{i}","value":1.0,"unit":"kWh","quality":"good"}}"#))
        .collect();
    let many_points = format!(
        r#"{{"seq": 6, "ts": "2026-11-21T08:00:06.000Z", "meter": "main-power", "points": [{}]}}"#,
        junk.join(",")
    );
    let huge = format!(
        r#"{{"seq": 7, "ts": "2026-11-21T08:00:07.000Z", "meter": "main-power", "points": [], "pad": "{}"}}"#,
        "x".repeat(1 << 20)
    );
    let msgs = vec![
        // The same message again: changes nothing, refused nothing.
        (p.to_string(), data(2, "main-power"), false),
        (p.to_string(), forged_ts, false),
        (p.to_string(), forged_value, false),
        (p.to_string(), many_points, false),
        (p.to_string(), huge, false),
        (p.to_string(), data(1_000_000_000, "main-power"), false),
        (
            p.to_string(),
            data(8, "main-power").replace("2026-11-21", "1999-11-21"),
            false,
        ),
        (
            "plantmeter/plant-x/gw-99/data/main-power".to_string(),
            data(1, "main-power"),
            false,
        ),
        // Bounds refuse nothing good: the next seq is stored.
        (p.to_string(), data(6, "main-power"), false),
    ];
    publish_all(mq.port, &msgs).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let s = loop {
        park.assert_running();
        let s = status(&cfg).unwrap();
        let gw = s
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["gateway"] == "gw-01");
        if gw.is_some_and(|g| g["messages"] == 6 && g["rejected"] == 6) {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "status never counted 6 stored and 6 refused: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let gw = s
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["gateway"] == "gw-01")
        .unwrap();
    // The forged seq opened no gap.
    assert_eq!(gw["seq_last"], 6, "{gw}");
    assert_eq!(gw["missing"], serde_json::json!([]), "{gw}");
    let foreign = s
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["gateway"] == "gw-99");
    assert_eq!(
        foreign.map(|g| &g["rejected"]),
        Some(&serde_json::json!(1)),
        "{s}"
    );
    assert_eq!(
        foreign.map(|g| &g["messages"]),
        Some(&serde_json::json!(0)),
        "{s}"
    );

    // What is stored is the first message of each seq, exactly.
    let rows = c
        .query(
            "SELECT seq, ts, (points->0->>'value')::float8 FROM readings ORDER BY seq",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(i64, String, f64)> = rows
        .iter()
        .map(|r| {
            let ts: chrono::DateTime<chrono::Utc> = r.get(1);
            (r.get(0), ts.format("%H:%M:%S").to_string(), r.get(2))
        })
        .collect();
    let want: Vec<(i64, String, f64)> = (1..=6)
        .map(|s| (s, format!("08:00:{s:02}"), s as f64 + 0.5))
        .collect();
    assert_eq!(got, want);
    let reasons: Vec<String> = c
        .query(
            "SELECT reason FROM rejected ORDER BY received_at, reason",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for why in [
        "another message is stored under seq 3",
        "another message is stored under seq 4",
        "1500 points",
        "bytes (at most 262144",
        "jumps 999999995 past the last stored seq 5",
        "outside the plausible window",
        "in no [[plant]]",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(why)),
            "{why}: {reasons:?}"
        );
    }
    let st = park.sigterm(Duration::from_secs(10));
    assert!(st.success(), "SIGTERM: {st}");
}

/// `key` anywhere in `v`.
fn find_key<'v>(v: &'v serde_json::Value, key: &str) -> Option<&'v serde_json::Value> {
    match v {
        serde_json::Value::Object(m) => m
            .get(key)
            .or_else(|| m.values().find_map(|x| find_key(x, key))),
        serde_json::Value::Array(a) => a.iter().find_map(|x| find_key(x, key)),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gaps_from_a_broker_restart_and_deleted_rows_are_refilled_by_replay() {
    let test = "gaps_are_refilled_by_replay";
    let (Some(pg), Some(mut mq)) = (Pg::start(test), Mosquitto::start(test)) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = park_config(
        dir.path(),
        &pg.url(),
        &mq.url(),
        &[("sunrise", &["plant-a/gw-01"])],
    );
    let mut park = start_park(&cfg, "a");
    wait_subscribed(&pg, 1).await;
    let sim = plantmeter_tests::Sim::start(None, None, &[]);
    let data_dir = dir.path().join("gw-01");
    let text = plantmeter_tests::agent_config(
        None,
        plantmeter_sim::AgentBus::Tcp(sim.addr.to_string()),
        &mq.url(),
        &data_dir,
        0.2,
        1000,
    )
    // Replay is opt-in: the agent keeps delivered records only when told to.
    .replace(
        "store_max_mb = 512\n",
        "store_max_mb = 512\nretain_delivered_mb = 128\n",
    );
    assert!(text.contains("retain_delivered_mb = 128"), "{text}");
    let agent_cfg = plantmeter_tests::write(dir.path(), "gw-01.toml", &text);
    let mut agent = plantmeter_tests::start_agent(&agent_cfg, None);
    let messages = || {
        status(&cfg)
            .and_then(|s| s.as_array()?.first().cloned())
            .and_then(|g| g["messages"].as_i64())
            .unwrap_or(0)
    };
    let wait_messages = async |n: i64, what: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while messages() < n {
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: {}",
                messages()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    wait_messages(60, "60 messages stored").await;
    // The broker restarts: its queues and sessions are gone; what the agent sends before the park
    // subscribes again reaches no one.
    mq.restart();
    let n = messages();
    wait_messages(n + 60, "60 messages after the broker restart").await;
    // Rows deleted from the database: asked for again and stored again.
    let c = pg.client().await;
    let deleted = c
        .execute("DELETE FROM readings WHERE seq BETWEEN 10 AND 20", &[])
        .await
        .unwrap();
    assert_eq!(deleted, 11);
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let last = loop {
        park.assert_running();
        agent.assert_running();
        let s = status(&cfg).unwrap();
        let g = &s[0];
        let complete = g["seq_first"] == 1
            && g["missing"] == serde_json::json!([])
            && g["messages"] == g["seq_last"];
        if complete && g["seq_last"].as_i64().unwrap() > n + 60 {
            assert_eq!(g["gone"], serde_json::json!([]), "{g}");
            assert_eq!(g["rejected"], 0, "{g}");
            break g["seq_last"].as_i64().unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the gaps never healed: {g}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let back: i64 = c
        .query_one(
            "SELECT count(*) FROM readings WHERE seq BETWEEN 10 AND 20",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(back, 11, "deleted rows refilled");
    // Every seq the agent gave is stored once in the end (a clean stop flushes its backlog).
    let st = agent.sigterm(Duration::from_secs(20));
    assert!(st.success(), "agent: {st}");
    let next = plantmeter_tests::status_file(&data_dir)
        .as_ref()
        .and_then(|v| find_key(v, "next_seq").and_then(|x| x.as_i64()));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(&cfg).unwrap();
        let g = &s[0];
        let want = next.map_or(last, |n| n - 1);
        if g["seq_last"].as_i64() >= Some(want)
            && g["missing"] == serde_json::json!([])
            && g["messages"] == g["seq_last"]
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not every seq below {want} stored: {g}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let dup: i64 = c
        .query_one(
            "SELECT count(*) FROM (SELECT seq FROM readings GROUP BY seq HAVING count(*) > 1) d",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(dup, 0);
    let st = park.sigterm(Duration::from_secs(10));
    assert!(st.success(), "park: {st}");
}
