//! The HJ 212 uplink end to end: the agent binary polls a simulated outfall and stack on a virtual
//! clock and sends HJ 212-2017 packets to a platform emulator written here (its own frame reader and
//! CRC: every frame's length, CRC, CRLF and header fields are checked, data frames acknowledged with
//! CN 9014). Hourly packets carry the simulator's true loads and volumes; a platform outage of
//! several virtual hours, with an agent crash (SIGKILL) and restart in the middle of it, is back-filled in order with
//! nothing missing; history requests are answered (9011, the data, 9012); a wrong PW or MN gets
//! QnRtn 3 or 4; garbage from the platform does not stop the agent.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::FixedOffset;
use support::{
    stack_and_outfall_config, wait_until as wait_for, Agent, Broker, BrokerKind, VClock,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const MN: &str = "PLANTA000000000000000001";
const PW: &str = "123456";
/// 2026-03-02 08:00 +08:00 (the plant works by day).
const START_MS: i64 = 1_772_409_600_000;
const HOUR: i64 = 3_600_000;
/// Virtual seconds per real second: an hour in 2.4 s.
const SPEED: f64 = 1500.0;

/// The HJ 212 CRC, written again here from DOMAIN.md (not the crate's).
fn crc(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in data {
        crc = (crc >> 8) ^ u16::from(b);
        for _ in 0..8 {
            let lsb = crc & 1;
            crc >>= 1;
            if lsb != 0 {
                crc ^= 0xA001;
            }
        }
    }
    crc
}

fn frame(segment: &str) -> String {
    format!(
        "##{:04}{segment}{:04X}\r\n",
        segment.len(),
        crc(segment.as_bytes())
    )
}

fn cst() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap()
}

fn local(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .with_timezone(&cst())
        .format("%Y%m%d%H%M%S")
        .to_string()
}

/// A frame the platform received, checked.
#[derive(Debug, Clone)]
struct Got {
    head: BTreeMap<String, String>,
    cp: BTreeMap<String, String>,
}

impl Got {
    fn cn(&self) -> &str {
        &self.head["CN"]
    }
    fn qn(&self) -> &str {
        &self.head["QN"]
    }
    fn num(&self, key: &str) -> Option<f64> {
        self.cp.get(key).map(|v| v.parse().unwrap())
    }
}

/// Check one line (a frame with its CRLF): every rule of the frame and the header.
fn check(line: &str) -> Result<Got, String> {
    check_as(line, 1, MN)
}

/// [`check`] for a protocol version (Flag bits 7..2: 1 = 2017, 2 = 2025) and an MN.
fn check_as(line: &str, version: u8, mn: &str) -> Result<Got, String> {
    let body = line
        .strip_suffix("\r\n")
        .ok_or_else(|| format!("no CRLF: {line:?}"))?;
    let rest = body.strip_prefix("##").ok_or("no ##")?;
    let len: usize = rest
        .get(..4)
        .filter(|l| l.bytes().all(|b| b.is_ascii_digit()))
        .ok_or("length is not 4 digits")?
        .parse()
        .unwrap();
    let segment = rest.get(4..4 + len).ok_or("shorter than its length")?;
    let crc_field = rest.get(4 + len..).ok_or("no CRC")?;
    if crc_field.len() != 4 {
        return Err(format!(
            "length {len} does not match: {crc_field:?} after it"
        ));
    }
    if crc_field != format!("{:04X}", crc(segment.as_bytes())) {
        return Err(format!("CRC {crc_field} wrong for {segment}"));
    }
    if len > 1024 {
        return Err(format!("data segment of {len} bytes, over 1024"));
    }
    let (head, cp) = segment.split_once("CP=&&").ok_or("no CP")?;
    let cp = cp.strip_suffix("&&").ok_or("CP not closed")?;
    let mut h = BTreeMap::new();
    let mut order = Vec::new();
    for f in head.split(';').filter(|f| !f.is_empty()) {
        let (k, v) = f.split_once('=').ok_or(format!("field {f:?}"))?;
        order.push(k.to_string());
        h.insert(k.to_string(), v.to_string());
    }
    let want: Vec<&str> = vec!["QN", "ST", "CN", "PW", "MN", "Flag"];
    if order.iter().take(6).map(String::as_str).collect::<Vec<_>>() != want {
        return Err(format!("header fields in order {order:?}"));
    }
    let qn = &h["QN"];
    if qn.len() != 17 || !qn.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("QN {qn}"));
    }
    if h["PW"] != PW || h["MN"] != mn {
        return Err(format!("PW/MN {h:?}"));
    }
    let flag: u8 = h["Flag"].parse().map_err(|_| "Flag")?;
    if flag >> 2 != version {
        return Err(format!("Flag {flag}: not version bits {version}"));
    }
    let mut c = BTreeMap::new();
    for g in cp.split(';').filter(|g| !g.is_empty()) {
        for p in g.split(',') {
            let (k, v) = p.split_once('=').ok_or(format!("CP pair {p:?}"))?;
            c.insert(k.to_string(), v.to_string());
        }
    }
    Ok(Got { head: h, cp: c })
}

/// The platform emulator.
struct Platform {
    port: u16,
    got: Arc<Mutex<Vec<Got>>>,
    errors: Arc<Mutex<Vec<String>>>,
    down: Arc<AtomicBool>,
    /// Sends raw text to the current connection.
    out: Arc<Mutex<Option<mpsc::UnboundedSender<String>>>>,
}

impl Platform {
    async fn start() -> Platform {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let p = Platform {
            port,
            got: Default::default(),
            errors: Default::default(),
            down: Default::default(),
            out: Default::default(),
        };
        let (got, errors, down, out) = (
            p.got.clone(),
            p.errors.clone(),
            p.down.clone(),
            p.out.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                if down.load(Ordering::SeqCst) {
                    drop(stream);
                    continue;
                }
                let (rd, mut wr) = stream.into_split();
                let (tx, mut rx) = mpsc::unbounded_channel::<String>();
                *out.lock().unwrap() = Some(tx.clone());
                let (got, errors, down) = (got.clone(), errors.clone(), down.clone());
                let writer_down = down.clone();
                // The writer closes the connection when the platform goes down (its FIN ends the
                // agent's session even while the agent has nothing to send).
                tokio::spawn(async move {
                    let down = writer_down;
                    loop {
                        tokio::select! {
                            s = rx.recv() => match s {
                                Some(s) => if wr.write_all(s.as_bytes()).await.is_err() { return },
                                None => return,
                            },
                            _ = tokio::time::sleep(Duration::from_millis(20)) => {
                                if down.load(Ordering::SeqCst) { return; }
                            }
                        }
                    }
                });
                tokio::spawn(async move {
                    let mut lines = BufReader::new(rd);
                    let mut line = String::new();
                    loop {
                        line.clear();
                        match lines.read_line(&mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        if down.load(Ordering::SeqCst) {
                            return;
                        }
                        match check(&line) {
                            Ok(g) => {
                                let flag: u8 = g.head["Flag"].parse().unwrap();
                                if flag & 1 == 1 {
                                    let ack = frame(&format!(
                                        "QN={};ST=91;CN=9014;PW={PW};MN={MN};Flag=4;CP=&&&&",
                                        g.qn()
                                    ));
                                    let _ = tx.send(ack);
                                }
                                got.lock().unwrap().push(g);
                            }
                            Err(e) => errors.lock().unwrap().push(e),
                        }
                    }
                });
            }
        });
        p
    }

    fn send(&self, text: &str) {
        if let Some(tx) = self.out.lock().unwrap().as_ref() {
            let _ = tx.send(text.to_string());
        }
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// Hourly packets (CN 2061 uploads, not history answers) by DataTime, in arrival order.
    fn hours(&self) -> Vec<Got> {
        self.got()
            .into_iter()
            .filter(|g| g.cn() == "2061" && g.head["Flag"] == "5")
            .collect()
    }
}

/// The stack and outfall, with an `[hj212]` uplink of COD, flow, SO2 and O2 to `platform`.
fn config(dir: &Path, sim: SocketAddr, broker: SocketAddr, platform: u16) -> String {
    let hj212 = format!(
        r#"
[hj212]
address = "127.0.0.1:{platform}"
mn = "{MN}"
password_file = "pw"
st = 32
minute = 10
hour = true
day = false
ack = true

  [[hj212.factor]]
  code = "w01018"
  point = "outfall.cod"
  flow = "outfall.flow_total"
  [[hj212.factor]]
  code = "w00000"
  point = "outfall.flow_total"
  [[hj212.factor]]
  code = "a21026"
  point = "stack.so2"
  flow = "stack.flow_rate"
  [[hj212.factor]]
  code = "a19001"
  point = "stack.o2"
"#
    );
    stack_and_outfall_config(&dir.join("data"), sim, broker, "", "", &hj212)
}

fn within(what: &str, got: f64, want: f64, pct: f64) {
    let d = 100.0 * (got - want) / want;
    eprintln!("{what}: {got:.4} vs {want:.4} ({d:+.3}%)");
    assert!(
        d.abs() <= pct,
        "{what}: {got} vs {want} ({d:+.3}%, bound {pct}%)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hourly_packets_survive_an_outage_and_a_restart_and_history_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), format!("{PW}\n")).unwrap();
    let clock = VClock {
        start_ms: START_MS,
        speed: SPEED,
        anchor_ms: plantmeter_tests::wall_ms() + 300,
    };
    let sim = support::sim_on(clock.clock()).await;
    let broker = Broker::start(BrokerKind::Rumqttd);
    let platform = Platform::start().await;
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        config(dir.path(), sim.addr(), broker.addr, platform.port),
    )
    .unwrap();
    let mut agent = Agent::start_on(&cfg, &clock);

    // Hours 00-02 delivered while the platform is up.
    let hour_at = |h: i64| local(START_MS + h * HOUR);
    wait_for("three hourly packets", Duration::from_secs(60), || {
        platform.hours().len() >= 3
    })
    .await;

    // Outage: the platform goes away for several virtual hours; the agent restarts in the middle.
    platform.down.store(true, Ordering::SeqCst);
    let down_at = clock.now_ms();
    let restart_at = down_at + 2 * HOUR;
    wait_for(
        "two virtual hours of outage",
        Duration::from_secs(30),
        || clock.now_ms() >= restart_at,
    )
    .await;
    // A crash (SIGKILL), not a clean stop: what was built and stored must survive it. The agent stays
    // down 31 virtual minutes (a power cut): the counter's increase across it is spread by time.
    drop(agent);
    let killed_at = clock.now_ms();
    wait_for("a 31-minute power cut", Duration::from_secs(30), || {
        clock.now_ms() >= killed_at + 31 * 60_000
    })
    .await;
    agent = Agent::start_on(&cfg, &clock);
    let up_at = down_at + 4 * HOUR;
    wait_for(
        "four virtual hours of outage",
        Duration::from_secs(30),
        || clock.now_ms() >= up_at,
    )
    .await;
    let during = platform.hours().len();
    platform.down.store(false, Ordering::SeqCst);

    // Back-fill: every hour up to the one that ended after the outage, in order.
    let last_hour = (up_at - START_MS) / HOUR; // index of the hour in progress at recovery
    wait_for("the back-fill", Duration::from_secs(90), || {
        platform
            .hours()
            .iter()
            .any(|g| g.cp["DataTime"] == hour_at(last_hour))
    })
    .await;
    let hours = platform.hours();
    let mut seen: Vec<String> = Vec::new();
    let mut by_time: BTreeMap<String, Got> = BTreeMap::new();
    for g in &hours {
        let t = g.cp["DataTime"].clone();
        match by_time.get(&t) {
            // A re-send: the same packet (QN and all).
            Some(first) => assert_eq!(first.qn(), g.qn(), "hour {t} sent twice with different QNs"),
            None => {
                if let Some(prev) = seen.last() {
                    assert!(t > *prev, "hour {t} after {prev}: out of order");
                }
                seen.push(t.clone());
                by_time.insert(t, g.clone());
            }
        }
    }
    let want: Vec<String> = (0..=last_hour).map(hour_at).collect();
    assert_eq!(
        seen, want,
        "every hour once, in order (during the outage {during} packets had come)"
    );

    // Values: full hours before the outage against the simulator's truth (the first hour lacks the
    // flow before the first poll).
    for h in 1..3 {
        let g = &by_time[&hour_at(h)];
        let truth = sim
            .truth(START_MS + h * HOUR, START_MS + (h + 1) * HOUR)
            .totals;
        within(
            &format!("hour {h} COD load kg"),
            g.num("w01018-Cou").unwrap(),
            truth.sources_kg["COD"]["wastewater"],
            3.0,
        );
        within(
            &format!("hour {h} waste water m3"),
            g.num("w00000-Cou").unwrap(),
            truth.points["outfall.flow_total"],
            1.0,
        );
        within(
            &format!("hour {h} SO2 load kg"),
            g.num("a21026-Cou").unwrap(),
            truth.sources_kg["SO2"]["flue_gas"],
            3.0,
        );
        let (min, avg, max) = (
            g.num("w01018-Min").unwrap(),
            g.num("w01018-Avg").unwrap(),
            g.num("w01018-Max").unwrap(),
        );
        assert!(min <= avg && avg <= max, "{min} {avg} {max}");
        // O2 correction from the hour's mean O2 (reference 9 %).
        let (so2, o2, zs) = (
            g.num("a21026-Avg").unwrap(),
            g.num("a19001-Avg").unwrap(),
            g.num("a21026-ZsAvg").unwrap(),
        );
        within(
            &format!("hour {h} SO2 ZsAvg"),
            zs,
            so2 * 12.0 / (21.0 - o2),
            0.01,
        );
        for code in ["w01018", "w00000", "a21026", "a19001"] {
            assert_eq!(g.cp[&format!("{code}-Flag")], "N", "hour {h} {code}");
        }
        assert_eq!(g.head["ST"], "32");
    }
    // Minute data (every 10 minutes) came too, with their own DataTimes.
    let minutes: Vec<Got> = platform
        .got()
        .into_iter()
        .filter(|g| g.cn() == "2051")
        .collect();
    assert!(minutes
        .iter()
        .any(|g| g.cp["DataTime"] == local(START_MS + 10 * 60_000)));

    // Across the power cut: the six 10-minute packets of every hour add up to the hour's, each close to
    // the truth, and a 10-minute interval the agent was down in part of is not N.
    let minute_cou = |t: i64, code: &str| {
        minutes
            .iter()
            .find(|g| g.cp["DataTime"] == local(t))
            .and_then(|g| g.num(&format!("{code}-Cou")))
    };
    let cut_hour = (killed_at - START_MS) / HOUR;
    for h in [cut_hour, cut_hour + 1] {
        let hour = &by_time[&hour_at(h)];
        for code in ["w00000", "w01018"] {
            let parts: Vec<f64> = (0..6)
                .map(|m| {
                    minute_cou(START_MS + h * HOUR + m * 600_000, code)
                        .unwrap_or_else(|| panic!("{code} of hour {h} minute {}0 sent", m))
                })
                .collect();
            let whole = hour.num(&format!("{code}-Cou")).unwrap();
            // Four decimals printed: six roundings.
            assert!(
                (parts.iter().sum::<f64>() - whole).abs() <= 6.0 * 0.00005 + 1e-9,
                "hour {h} {code}: 10-minute {parts:?} vs hour {whole}"
            );
        }
        for m in 0..6 {
            let t = START_MS + h * HOUR + m * 600_000;
            let truth = sim.truth(t, t + 600_000).totals;
            within(
                &format!("10 minutes at {} waste water m3", local(t)),
                minute_cou(t, "w00000").unwrap(),
                truth.points["outfall.flow_total"],
                3.0,
            );
            within(
                &format!("10 minutes at {} COD kg", local(t)),
                minute_cou(t, "w01018").unwrap(),
                truth.sources_kg["COD"]["wastewater"],
                6.0,
            );
        }
    }
    let cut_minute = START_MS + (killed_at - START_MS) / 600_000 * 600_000;
    let flag_at = minutes
        .iter()
        .find(|g| g.cp["DataTime"] == local(cut_minute))
        .map(|g| g.cp["w00000-Flag"].clone());
    assert_ne!(
        flag_at.as_deref(),
        Some("N"),
        "the 10 minutes the cut began in"
    );

    // A history request: 9011 QnRtn=1, the stored hours with the request's QN, 9012 ExeRtn=1.
    let qn = "20260302235959001"; // any QN: the answers carry it
    let before = platform.got().len();
    platform.send(&frame(&format!(
        "QN={qn};ST=32;CN=2061;PW={PW};MN={MN};Flag=5;CP=&&BeginTime={},EndTime={}&&",
        hour_at(0),
        hour_at(3)
    )));
    wait_for("the history answer", Duration::from_secs(20), || {
        platform.got()[before..].iter().any(|g| g.cn() == "9012")
    })
    .await;
    let answer: Vec<Got> = platform.got()[before..]
        .iter()
        .filter(|g| g.qn() == qn)
        .cloned()
        .collect();
    assert_eq!(answer[0].cn(), "9011");
    assert_eq!(answer[0].cp["QnRtn"], "1");
    let data: Vec<&Got> = answer.iter().filter(|g| g.cn() == "2061").collect();
    let times: Vec<String> = data.iter().map(|g| g.cp["DataTime"].clone()).collect();
    assert_eq!(times, (0..=3).map(hour_at).collect::<Vec<_>>());
    for g in &data {
        assert_eq!(
            g.cp, by_time[&g.cp["DataTime"]].cp,
            "the stored hour, unchanged"
        );
    }
    assert_eq!(answer.last().unwrap().cn(), "9012");
    assert_eq!(answer.last().unwrap().cp["ExeRtn"], "1");

    // Garbage, then requests with a wrong password and a wrong MN.
    let before = platform.got().len();
    platform.send("##0042garbage that is no frame\r\n####12\r\n");
    platform.send(&frame(&format!(
        "QN=20260303000000001;ST=32;CN=2061;PW=999999;MN={MN};Flag=5;CP=&&BeginTime={},EndTime={}&&",
        hour_at(0),
        hour_at(1)
    )));
    platform.send(&frame(&format!(
        "QN=20260303000000002;ST=32;CN=2061;PW={PW};MN=SOMEONEELSE;Flag=5;CP=&&BeginTime={},EndTime={}&&",
        hour_at(0),
        hour_at(1)
    )));
    wait_for(
        "the answers to wrong PW and MN",
        Duration::from_secs(20),
        || {
            platform.got()[before..]
                .iter()
                .filter(|g| g.cn() == "9011")
                .count()
                >= 2
        },
    )
    .await;
    let rtn: BTreeMap<String, String> = platform.got()[before..]
        .iter()
        .filter(|g| g.cn() == "9011")
        .map(|g| (g.qn().to_string(), g.cp["QnRtn"].clone()))
        .collect();
    assert_eq!(rtn["20260303000000001"], "3", "wrong PW");
    assert_eq!(rtn["20260303000000002"], "4", "wrong MN");
    assert!(agent.is_running(), "the agent still runs");

    let exit = agent.sigterm(Duration::from_secs(20));
    assert!(exit.success(), "agent exited with {exit}");
    let status = std::process::Command::new(support::BIN)
        .args(["status", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout).to_string();
    let want = format!(
        "hj212     platform 127.0.0.1:{}: not connected, ",
        platform.port
    );
    assert!(
        status.contains(&want) && status.contains("acknowledged in the last run"),
        "{status}"
    );
    let errors = platform.errors.lock().unwrap().clone();
    assert!(
        errors.is_empty(),
        "frames that break the standard: {errors:?}"
    );
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// HJ 212-2025 with SM4, ST 31 flue gas.

const MN25: &str = "010000A8900016F000169DC0";
/// The platform's SM4 key (16 characters, as the standard writes keys).
const KEY25: &str = "plantmeterSM4key";

/// SM4-ECB decryption of the data region as HJ 212-2025 describes it, written here from the block
/// cipher alone: whole 16-byte blocks decrypted, a tail under 16 bytes left plain.
fn sm4_decrypt_region(region: &[u8]) -> Vec<u8> {
    use sm4::cipher::generic_array::GenericArray;
    use sm4::cipher::{BlockDecrypt, KeyInit};
    let cipher = sm4::Sm4::new(GenericArray::from_slice(KEY25.as_bytes()));
    let mut out = region.to_vec();
    let whole = out.len() / 16 * 16;
    for block in out[..whole].chunks_mut(16) {
        cipher.decrypt_block(GenericArray::from_mut_slice(block));
    }
    out
}

/// CN whose data region HJ 212-2025 encrypts.
fn encrypted_cn(cn: &[u8]) -> bool {
    let cn = std::str::from_utf8(cn).unwrap_or("");
    cn.parse::<u16>()
        .is_ok_and(|n| (2000..3000).contains(&n) || n == 1014 || n == 3020)
}

/// Cut one frame off `buf` by its length field (cipher bytes may hold CR or LF, so no line
/// reader): the plain frame as text and whether its data region came encrypted. None: more bytes
/// needed. Err: a broken frame (what is wrong).
fn take_frame25(buf: &mut Vec<u8>) -> Option<Result<(String, bool), String>> {
    if buf.len() < 6 {
        return None;
    }
    if &buf[..2] != b"##" {
        let e = format!(
            "no ## at a frame start: {:?}",
            String::from_utf8_lossy(&buf[..6])
        );
        buf.clear();
        return Some(Err(e));
    }
    let Some(len) = std::str::from_utf8(&buf[2..6])
        .ok()
        .filter(|l| l.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|l| l.parse::<usize>().ok())
    else {
        buf.clear();
        return Some(Err("length is not 4 digits".into()));
    };
    if buf.len() < 6 + len + 6 {
        return None;
    }
    let frame: Vec<u8> = buf.drain(..6 + len + 6).collect();
    let mut seg = frame[6..6 + len].to_vec();
    let tail = &frame[6 + len..];
    let cn = seg
        .windows(3)
        .position(|w| w == b"CN=")
        .map(|i| {
            seg[i + 3..]
                .iter()
                .take_while(|b| **b != b';')
                .copied()
                .collect::<Vec<u8>>()
        })
        .unwrap_or_default();
    let mut encrypted = false;
    if encrypted_cn(&cn) {
        let Some(at) = seg.windows(5).position(|w| w == b"CP=&&") else {
            return Some(Err("no CP".into()));
        };
        let (from, to) = (at + 5, seg.len() - 2);
        let plain = sm4_decrypt_region(&seg[from..to]);
        encrypted = plain != seg[from..to];
        seg.splice(from..to, plain);
    }
    let Ok(seg) = String::from_utf8(seg) else {
        return Some(Err(
            "the decrypted segment is not text (wrong key or not encrypted)".into(),
        ));
    };
    let Ok(tail) = std::str::from_utf8(tail) else {
        return Some(Err("CRC field not text".into()));
    };
    Some(Ok((format!("##{len:04}{seg}{tail}"), encrypted)))
}

/// A 2025 platform: every frame cut by its length, decrypted, checked (length, CRC over the plain
/// segment, CRLF, header order, Flag version bits 000010, PW, MN); data frames with the ack bit
/// acknowledged with CN 9014 (plain, Flag 8).
struct Platform25 {
    port: u16,
    /// Frames received, with whether their data region came encrypted.
    got: Arc<Mutex<Vec<(Got, bool)>>>,
    errors: Arc<Mutex<Vec<String>>>,
    down: Arc<AtomicBool>,
}

impl Platform25 {
    async fn start() -> Platform25 {
        use tokio::io::AsyncReadExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let p = Platform25 {
            port: listener.local_addr().unwrap().port(),
            got: Default::default(),
            errors: Default::default(),
            down: Default::default(),
        };
        let (got, errors, down) = (p.got.clone(), p.errors.clone(), p.down.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                if down.load(Ordering::SeqCst) {
                    drop(stream);
                    continue;
                }
                let (got, errors, down) = (got.clone(), errors.clone(), down.clone());
                tokio::spawn(async move {
                    let (mut rd, mut wr) = stream.into_split();
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let n = tokio::select! {
                            r = rd.read(&mut chunk) => match r { Ok(0) | Err(_) => return, Ok(n) => n },
                            _ = tokio::time::sleep(Duration::from_millis(20)) => {
                                if down.load(Ordering::SeqCst) { return; }
                                continue;
                            }
                        };
                        if down.load(Ordering::SeqCst) {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(r) = take_frame25(&mut buf) {
                            match r
                                .and_then(|(text, enc)| check_as(&text, 2, MN25).map(|g| (g, enc)))
                            {
                                Ok((g, enc)) => {
                                    let flag: u8 = g.head["Flag"].parse().unwrap();
                                    if flag & 1 == 1 {
                                        let ack = frame(&format!(
                                            "QN={};ST=91;CN=9014;PW={PW};MN={MN25};Flag=8;CP=&&&&",
                                            g.qn()
                                        ));
                                        if wr.write_all(ack.as_bytes()).await.is_err() {
                                            return;
                                        }
                                    }
                                    got.lock().unwrap().push((g, enc));
                                }
                                Err(e) => errors.lock().unwrap().push(e),
                            }
                        }
                    }
                });
            }
        });
        p
    }

    fn got(&self) -> Vec<(Got, bool)> {
        self.got.lock().unwrap().clone()
    }

    /// Hourly uploads (Flag 9: 2025 with the ack bit), with whether they came marked RF=1.
    fn hours(&self) -> Vec<(Got, bool)> {
        self.got()
            .into_iter()
            .filter(|(g, _)| g.cn() == "2061" && g.head["Flag"] == "9")
            .map(|(g, _)| {
                let rf = g.head.get("RF").map(String::as_str) == Some("1");
                (g, rf)
            })
            .collect()
    }
}

/// A 2025 uplink of the stack (ST 31): SO2 with its load and converted concentration, O2, real-time
/// data every 5 virtual minutes.
fn config25(dir: &Path, sim: SocketAddr, broker: SocketAddr, platform: u16) -> String {
    let hj212 = format!(
        r#"
[hj212]
address = "127.0.0.1:{platform}"
mn = "{MN25}"
password_file = "pw"
st = 31
minute = 10
hour = true
day = false
ack = true
version = "2025"
sm4_key_file = "sm4.key"
realtime_s = 300
heartbeat_s = 600

  [[hj212.factor]]
  code = "a21026"
  point = "stack.so2"
  flow = "stack.flow_rate"
  [[hj212.factor]]
  code = "a19001"
  point = "stack.o2"
"#
    );
    stack_and_outfall_config(&dir.join("data"), sim, broker, "", "", &hj212)
}

/// HJ 212-2025 end to end: every frame the platform gets is SM4-encrypted where the standard says
/// (data uploads), decrypts with the key to a frame whose CRC and length hold, has Flag version
/// 000010; hours delivered live carry no RF, hours back-filled after a platform outage carry RF=1,
/// every hour once and in order; ST 31 flue gas: SO2 -ZsAvg from the hour's mean O2, the load
/// against the simulator's truth; CN 2011 real-time data with -Rtd and -ZsRtd; heartbeats 9015.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2025_sm4_flue_gas_over_a_platform_outage() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), format!("{PW}\n")).unwrap();
    std::fs::write(dir.path().join("sm4.key"), format!("{KEY25}\n")).unwrap();
    let clock = VClock {
        start_ms: START_MS,
        speed: SPEED,
        anchor_ms: plantmeter_tests::wall_ms() + 300,
    };
    let sim = support::sim_on(clock.clock()).await;
    let broker = Broker::start(BrokerKind::Rumqttd);
    let platform = Platform25::start().await;
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        config25(dir.path(), sim.addr(), broker.addr, platform.port),
    )
    .unwrap();
    let agent = Agent::start_on(&cfg, &clock);
    let hour_at = |h: i64| local(START_MS + h * HOUR);

    wait_for("two hourly packets", Duration::from_secs(60), || {
        let errors = platform.errors.lock().unwrap().clone();
        assert!(
            errors.is_empty(),
            "frames that break the standard: {errors:?}"
        );
        platform.hours().len() >= 2
    })
    .await;
    platform.down.store(true, Ordering::SeqCst);
    let down_at = clock.now_ms();
    wait_for(
        "two virtual hours of outage",
        Duration::from_secs(30),
        || clock.now_ms() >= down_at + 2 * HOUR,
    )
    .await;
    let up_at = clock.now_ms();
    platform.down.store(false, Ordering::SeqCst);
    let last_hour = (up_at - START_MS) / HOUR - 1; // the last hour that ended during the outage
    wait_for("the back-fill", Duration::from_secs(90), || {
        platform
            .hours()
            .iter()
            .any(|(g, _)| g.cp["DataTime"] == hour_at(last_hour + 1))
    })
    .await;

    let errors = platform.errors.lock().unwrap().clone();
    assert!(
        errors.is_empty(),
        "frames that break the standard: {errors:?}"
    );
    let got = platform.got();
    for (g, enc) in &got {
        let cn: u16 = g.cn().parse().unwrap();
        let should = (2000..3000).contains(&cn);
        // A region under 16 bytes stays plain: every data upload here is longer.
        assert_eq!(*enc, should, "CN {cn} encrypted: {enc}");
        assert_eq!(
            g.head["ST"],
            if should { "31" } else { "91" },
            "{:?}",
            g.head
        );
    }
    assert!(got.iter().any(|(g, _)| g.cn() == "9015"), "heartbeats");

    // Every hour once, in order; the live ones without RF, the back-filled ones with RF=1.
    let hours = platform.hours();
    let mut seen: Vec<String> = Vec::new();
    let mut by_time: BTreeMap<String, (Got, bool)> = BTreeMap::new();
    for (g, rf) in &hours {
        let t = g.cp["DataTime"].clone();
        match by_time.get(&t) {
            Some((first, _)) => {
                assert_eq!(first.qn(), g.qn(), "hour {t} twice with different QNs");
                assert!(*rf, "hour {t} sent again without RF=1");
            }
            None => {
                if let Some(prev) = seen.last() {
                    assert!(t > *prev, "hour {t} after {prev}: out of order");
                }
                seen.push(t.clone());
                by_time.insert(t, (g.clone(), *rf));
            }
        }
    }
    let want: Vec<String> = (0..=last_hour + 1).map(hour_at).collect();
    assert_eq!(seen, want, "every hour once, in order");
    let down_hour = (down_at - START_MS) / HOUR;
    assert!(last_hour > down_hour, "a whole hour back-filled");
    for h in 0..down_hour {
        assert!(!by_time[&hour_at(h)].1, "hour {h} delivered live, no RF");
    }
    for h in (down_hour + 1)..=last_hour {
        assert!(by_time[&hour_at(h)].1, "hour {h} back-filled: RF=1");
    }

    // ST 31: the SO2 load against the truth and the converted concentration from the hour's O2.
    for h in 1..=last_hour {
        let g = &by_time[&hour_at(h)].0;
        let truth = sim
            .truth(START_MS + h * HOUR, START_MS + (h + 1) * HOUR)
            .totals;
        within(
            &format!("2025 hour {h} SO2 load kg"),
            g.num("a21026-Cou").unwrap(),
            truth.sources_kg["SO2"]["flue_gas"],
            3.0,
        );
        let (so2, o2, zs) = (
            g.num("a21026-Avg").unwrap(),
            g.num("a19001-Avg").unwrap(),
            g.num("a21026-ZsAvg").unwrap(),
        );
        within(
            &format!("2025 hour {h} SO2 ZsAvg"),
            zs,
            so2 * 12.0 / (21.0 - o2),
            0.01,
        );
        assert_eq!(g.cp["a21026-Flag"], "N", "hour {h}");
    }

    // Real-time data: -Rtd of both, -ZsRtd of SO2 from the same poll's O2; not stored, not acked.
    let rt: Vec<Got> = got
        .iter()
        .filter(|(g, _)| g.cn() == "2011")
        .map(|(g, _)| g.clone())
        .collect();
    assert!(rt.len() >= 3, "real-time packets: {}", rt.len());
    for g in &rt {
        assert_eq!(g.head["Flag"], "8", "real-time data ask no ack");
        let (so2, o2, zs) = (
            g.num("a21026-Rtd").unwrap(),
            g.num("a19001-Rtd").unwrap(),
            g.num("a21026-ZsRtd").unwrap(),
        );
        within("2011 SO2 ZsRtd", zs, so2 * 12.0 / (21.0 - o2), 0.01);
        assert_eq!(g.cp["a21026-Flag"], "N");
    }

    let exit = agent.sigterm(Duration::from_secs(20));
    assert!(exit.success(), "agent exited with {exit}");
    sim.shutdown().await;
}

/// 分表计电 over HJ 212-2025: the dyehouse line's and the outfall blowers' electricity (kWh
/// counters) as factors with `st = 44` go in packets of their own, ST 44, beside the stack's ST 31
/// ones: each hour one of each (same DataTime, own QN), encrypted as data uploads, acknowledged;
/// -Cou is the hour's kWh, 0 for the blowers in the hours they were switched off; CN 2011
/// real-time data split the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2025_st44_facilities_electricity_in_packets_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pw"), format!("{PW}\n")).unwrap();
    std::fs::write(dir.path().join("sm4.key"), format!("{KEY25}\n")).unwrap();
    let clock = VClock {
        start_ms: START_MS,
        speed: SPEED,
        anchor_ms: plantmeter_tests::wall_ms() + 300,
    };
    let sim = support::sim_with_wwtp(clock.clock()).await;
    // The blowers stand 10:00-12:00 (hours 2 and 3 of the run).
    sim.switch_off("blowers", START_MS + 2 * HOUR, START_MS + 4 * HOUR)
        .unwrap();
    let broker = Broker::start(BrokerKind::Rumqttd);
    let platform = Platform25::start().await;
    let meters = r#"
[[meter]]
name = "dyehouse"
unit_id = 3
poll_interval_s = 60
template = "dtsu666"

[[meter]]
name = "blowers"
unit_id = 17
poll_interval_s = 60
template = "dtsu666"
"#;
    let cfg_text = config25(dir.path(), sim.addr(), broker.addr, platform.port)
        + meters
        + r#"
[[hj212.factor]]
code = "MF0001"
point = "dyehouse.energy_import"
st = 44
[[hj212.factor]]
code = "TW0001"
point = "blowers.energy_import"
st = 44
"#;
    let cfg = dir.path().join("agent.toml");
    std::fs::write(&cfg, cfg_text).unwrap();
    let agent = Agent::start_on(&cfg, &clock);
    let hour_at = |h: i64| local(START_MS + h * HOUR);
    let st44_hours = || -> Vec<Got> {
        platform
            .got()
            .into_iter()
            .filter(|(g, _)| g.cn() == "2061" && g.head["ST"] == "44")
            .map(|(g, _)| g)
            .collect()
    };
    wait_for(
        "the ST 44 packet of hour 3",
        Duration::from_secs(60),
        || st44_hours().iter().any(|g| g.cp["DataTime"] == hour_at(3)),
    )
    .await;
    let errors = platform.errors.lock().unwrap().clone();
    assert!(
        errors.is_empty(),
        "frames that break the standard: {errors:?}"
    );
    for (g, enc) in platform.got() {
        if g.cn() == "2061" {
            assert!(enc, "data uploads encrypted, ST 44 too: {:?}", g.head);
            assert_eq!(g.head["Flag"], "9");
            let codes: Vec<&String> = g.cp.keys().collect();
            match g.head["ST"].as_str() {
                "31" => assert!(
                    g.cp.contains_key("a21026-Avg") && !g.cp.contains_key("MF0001-Cou"),
                    "{codes:?}"
                ),
                "44" => assert!(
                    g.cp.contains_key("MF0001-Cou")
                        && g.cp.contains_key("TW0001-Cou")
                        && !g.cp.keys().any(|k| k.starts_with("a21026")),
                    "{codes:?}"
                ),
                other => panic!("ST {other}"),
            }
        }
    }
    let by_time = |st: &str, h: i64| -> Got {
        let all: Vec<Got> = platform
            .got()
            .into_iter()
            .filter(|(g, _)| g.cn() == "2061" && g.head["ST"] == st)
            .map(|(g, _)| g)
            .filter(|g| g.cp["DataTime"] == hour_at(h))
            .collect();
        assert_eq!(all.len(), 1, "hour {h} ST {st} once: {}", all.len());
        all[0].clone()
    };
    let kwh = |meter: &str, h: i64| {
        let at = |t: i64| sim.sim().point_value(meter, "energy_import", t).unwrap();
        at(START_MS + (h + 1) * HOUR) - at(START_MS + h * HOUR)
    };
    for h in 1..=3 {
        let (own, fac) = (by_time("31", h), by_time("44", h));
        assert_ne!(own.qn(), fac.qn(), "each packet its own QN");
        within(
            &format!("hour {h} dyehouse kWh"),
            fac.num("MF0001-Cou").unwrap(),
            kwh("dyehouse", h),
            1.0,
        );
        let blowers = fac.num("TW0001-Cou").unwrap();
        if h == 1 {
            within("hour 1 blowers kWh", blowers, kwh("blowers", h), 1.0);
            assert!(blowers > 10.0, "{blowers}");
        } else {
            assert!(blowers < 0.5, "hour {h}: the blowers stood, {blowers} kWh");
        }
        assert_eq!(fac.cp["MF0001-Flag"], "N");
    }
    let rt44: Vec<Got> = platform
        .got()
        .into_iter()
        .filter(|(g, _)| g.cn() == "2011" && g.head["ST"] == "44")
        .map(|(g, _)| g)
        .collect();
    assert!(
        !rt44.is_empty(),
        "real-time data of the facilities under ST 44"
    );
    for g in &rt44 {
        // Counters carry no -Rtd in real-time data (a reading, not a rate): their flag does.
        assert_eq!(
            g.cp.get("MF0001-Flag").map(String::as_str),
            Some("N"),
            "{:?}",
            g.cp
        );
        assert!(!g.cp.keys().any(|k| k.starts_with("a21026")), "{:?}", g.cp);
    }

    let exit = agent.sigterm(Duration::from_secs(20));
    assert!(exit.success(), "agent exited with {exit}");
    sim.shutdown().await;
}
