//! The page and its JSON API: loaded in headless Chromium (`chromium --dump-dom` after the page's
//! script ran), and the token rule.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_gateways_online_offline_failing_meters_gaps_and_latest_values() {
    let test = "the_page_shows_gateways";
    let (Some(pg), Some(mq)) = (Pg::start(test), Mosquitto::start(test)) else {
        return;
    };
    let Some(browser) = chromium() else {
        eprintln!("skip: {test}: chromium is not installed (.ci/run installs it)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = park_config(
        dir.path(),
        &pg.url(),
        &mq.url(),
        &[("sunrise", &["plant-a/gw-01", "plant-a/gw-02"])],
    );
    let park = start_park(&cfg, "a");
    wait_subscribed(&pg, 1).await;
    let (a, b) = ("plantmeter/plant-a/gw-01", "plantmeter/plant-a/gw-02");
    let mut msgs = vec![
        (format!("{a}/status"), r#"{"state":"online","version":"0.1.0","since":"2026-11-21T08:00:00.000Z","evicted":0}"#.to_string(), true),
        (format!("{a}/health/boiler"), r#"{"state":"failing","last_ok":null,"errors":5,"last_error":"timeout"}"#.to_string(), true),
        (format!("{b}/status"), r#"{"state":"offline","version":"0.1.0","since":"2026-11-21T08:00:00.000Z","reason":"connection lost"}"#.to_string(), true),
        (format!("{b}/data/gas"), data(7, "gas"), false),
    ];
    for seq in [1, 2, 4] {
        msgs.push((
            format!("{a}/data/main-power"),
            data(seq, "main-power"),
            false,
        ));
    }
    publish_all(mq.port, &msgs).await;
    let base = web_url(&cfg);
    plantmeter_tests::wait_until("both gateways stored", Duration::from_secs(20), || {
        let (code, body) = http_get(&format!("{base}/api/park"));
        code == 200 && body.contains("\"gw-02\"") && body.contains("\"messages\":3")
    })
    .await;

    let (code, body) = http_get(&format!("{base}/api/park"));
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["park"], "Test Park");
    let gws = v["plants"][0]["gateways"].as_array().unwrap();
    assert_eq!(gws.len(), 2, "{v}");
    assert_eq!(gws[0]["failing"], serde_json::json!(["boiler"]));

    let dom = dump_dom(browser, &format!("{base}/"));
    assert!(dom.contains("<h1 id=\"title\">Test Park</h1>"), "{dom}");
    let r1 = row(&dom, "data-gateway", "plant-a/gw-01");
    assert!(
        r1.contains(">online<") && r1.contains("boiler") && r1.contains(">3<"),
        "{r1}"
    );
    let r2 = row(&dom, "data-gateway", "plant-a/gw-02");
    assert!(r2.contains(">offline<"), "{r2}");

    let dom = dump_dom(browser, &format!("{base}/plant/sunrise"));
    let p = row(&dom, "data-point", "plant-a/gw-01/main-power.energy");
    assert!(
        p.contains(">4.500<") && p.contains("kWh") && p.contains("good"),
        "{p}"
    );
    assert!(row(&dom, "data-point", "plant-a/gw-02/gas.energy").contains(">7.500<"));
    assert!(dom.contains("No audit report"), "{dom}");

    let (code, _) = http_get(&format!("{base}/api/plant/nope"));
    assert_eq!(code, 404);
    assert!(park.sigterm(Duration::from_secs(10)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_file_every_request_needs_the_token() {
    let test = "with_a_token_file";
    let (Some(pg), Some(mq)) = (Pg::start(test), Mosquitto::start(test)) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = park_config(dir.path(), &pg.url(), &mq.url(), &[]);
    std::fs::write(dir.path().join("token"), "s3cret\n").unwrap();
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "[http]\n",
        &format!(
            "[http]\ntoken_file = \"{}\"\n",
            dir.path().join("token").display()
        ),
    );
    std::fs::write(&cfg, text).unwrap();
    let park = start_park(&cfg, "a");
    let base = web_url(&cfg);
    plantmeter_tests::wait_until("the page to listen", Duration::from_secs(20), || {
        std::net::TcpStream::connect(base.trim_start_matches("http://")).is_ok()
    })
    .await;
    assert_eq!(http_get(&format!("{base}/api/park")).0, 401);
    assert_eq!(http_get(&format!("{base}/")).0, 401);
    assert_eq!(http_get(&format!("{base}/api/park?token=wrong")).0, 401);
    assert_eq!(http_get(&format!("{base}/api/status?token=s3cret")).0, 200);
    assert_eq!(http_get(&format!("{base}/?token=s3cret")).0, 200);
    assert!(park.sigterm(Duration::from_secs(10)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_moves_to_the_surviving_instance_within_seconds() {
    let test = "the_page_moves_to_the_surviving_instance";
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
    let first = start_park(&cfg, "a");
    let base = web_url(&cfg);
    let serves = || {
        std::net::TcpStream::connect(base.trim_start_matches("http://")).is_ok()
            && http_get(&format!("{base}/api/status")).0 == 200
    };
    plantmeter_tests::wait_until(
        "the first instance serves the page",
        Duration::from_secs(20),
        serves,
    )
    .await;
    let mut second = start_park(&cfg, "b");
    wait_subscribed(&pg, 2).await;
    first.sigkill();
    let killed = std::time::Instant::now();
    plantmeter_tests::wait_until(
        "the second instance serves the page",
        Duration::from_secs(10),
        serves,
    )
    .await;
    let took = killed.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the page came back after {took:?}"
    );
    second.assert_running();
    assert!(second.sigterm(Duration::from_secs(10)).success());
}
