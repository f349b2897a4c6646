//! Our DL/T 645-2007 codec against a meter we did not write: the PyPI package `dlt645`
//! (`pip install dlt645`) as the meter, offline on loopback (tests/interop/dlt645_meter.py). Reads
//! the forward active total, the phase-A voltage and current and the meter's address through
//! `frame68::Splitter` and `dlt645::check_read_reply`, as the agent's link does.
//!
//! Without python3 or the package the test cannot run: it prints a skip note (as the tests needing
//! mosquitto do; .ci/run installs the package), or fails when `PLANTMETER_REQUIRE_INTEROP=1`.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use plantmeter_common::dlt645::{self, Version};
use plantmeter_common::frame68::{parse_address, Layout, Piece, Splitter};

/// One request, its reply frame (preamble skipped), within 3 s.
fn exchange(s: &mut TcpStream, req: &[u8]) -> Vec<u8> {
    s.write_all(req).unwrap();
    let mut sp = Splitter::new(Layout::Dlt645);
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        assert!(Instant::now() < deadline, "no reply to {req:02X?}");
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the meter closed the connection");
        sp.push(&buf[..n]);
        while let Some(p) = sp.next_piece() {
            if let Piece::Frame(f) = p {
                return f.to_vec();
            }
        }
    }
}

#[test]
fn reads_a_meter_we_did_not_write() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/dlt645_meter.py");
    let probe = Command::new("python3")
        .args(["-c", "import dlt645"])
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        let why = "python3 with the PyPI package dlt645 is not installed (pip install dlt645)";
        assert!(
            std::env::var_os("PLANTMETER_REQUIRE_INTEROP").is_none(),
            "{why}"
        );
        eprintln!("note: {why}: the DL/T 645 round trip against it is skipped");
        return;
    }
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(60)).unwrap();
    let port: u16 = line
        .trim()
        .strip_prefix("ready ")
        .unwrap_or_else(|| panic!("the meter said {line:?}"))
        .parse()
        .unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let a = parse_address::<6>("000102030425").unwrap();
    let v = Version::V2007;
    for (di, want) in [
        (0x0001_0000, 1206.42),
        (0x0201_0100, 220.1),
        (0x0202_0100, 12.345),
    ] {
        let spec = dlt645::spec_of(v, di).unwrap();
        let raw = exchange(&mut s, &dlt645::encode_read(v, &[0xFE; 4], &a, di));
        let f = dlt645::Frame::parse(&raw).unwrap();
        let bytes = dlt645::check_read_reply(v, &a, di, &spec, &f)
            .unwrap_or_else(|e| panic!("DI {di:08X}: {e} in {raw:02X?}"));
        assert_eq!(dlt645::decode_value(&spec, bytes), Ok(want), "DI {di:08X}");
    }
    let raw = exchange(&mut s, &dlt645::encode_read_address(&[]));
    let f = dlt645::Frame::parse(&raw).unwrap();
    assert_eq!(dlt645::check_address_reply(&f), Ok(a));
    drop(child.stdin.take());
    let _ = child.wait();
}
