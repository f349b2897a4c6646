//! DL/T 645 and CJ/T 188 frames: DOMAIN.md's checked vectors byte for byte, and the splitter's
//! promises under arbitrary bytes (never a panic, bounded memory, a frame found after garbage).

#![allow(clippy::unwrap_used)]

use plantmeter_common::cjt188::{self, DiOrder, Field, MeterKind};
use plantmeter_common::dlt645::{self, Version};
use plantmeter_common::frame68::{parse_address, Garbage, Layout, Piece, Splitter, BUF_CAP};
use proptest::prelude::*;

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("test vector"))
        .collect()
}

/// Every frame the splitter finds in `bytes`, fed in chunks of `chunk`.
fn frames(layout: Layout, bytes: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    let mut s = Splitter::new(layout);
    let mut out = Vec::new();
    for c in bytes.chunks(chunk.max(1)) {
        let mut rest = c;
        while !rest.is_empty() {
            let n = s.push(rest);
            rest = &rest[n..];
            while let Some(p) = s.next_piece() {
                if let Piece::Frame(f) = p {
                    out.push(f.to_vec());
                }
            }
            assert!(s.pending() <= BUF_CAP);
        }
    }
    out
}

const ADDR_2007: &str = "000102030425";

#[test]
fn dlt645_2007_read_of_forward_active_total_is_the_standard_frame() {
    let a = parse_address::<6>(ADDR_2007).unwrap();
    let req = dlt645::encode_read(Version::V2007, &[], &a, 0x0001_0000);
    assert_eq!(
        req.as_slice(),
        hex("68 25 04 03 02 01 00 68 11 04 33 33 34 33 E1 16")
    );
    let with_preamble = dlt645::encode_read(Version::V2007, &[0xFE; 4], &a, 0x0001_0000);
    assert_eq!(&with_preamble[..4], &[0xFE; 4]);
    assert_eq!(&with_preamble[4..], req.as_slice());
}

#[test]
fn dlt645_2007_reply_reads_1206_42_kwh() {
    let a = parse_address::<6>(ADDR_2007).unwrap();
    let mut wire = hex("FE FE FE FE");
    wire.extend(hex(
        "68 25 04 03 02 01 00 68 91 08 33 33 34 33 75 39 45 33 8B 16",
    ));
    let got = frames(Layout::Dlt645, &wire, 3);
    assert_eq!(got.len(), 1);
    let f = dlt645::Frame::parse(&got[0]).unwrap();
    let spec = dlt645::spec_of(Version::V2007, 0x0001_0000).unwrap();
    assert_eq!((spec.unit, spec.counter), ("kWh", true));
    let value = dlt645::check_read_reply(Version::V2007, &a, 0x0001_0000, &spec, &f).unwrap();
    assert_eq!(dlt645::decode_value(&spec, value), Ok(1206.42));
    // The simulator's reply is the same frame.
    let enc = dlt645::encode_value(&spec, 1206.42).unwrap();
    let reply = dlt645::encode_read_reply(Version::V2007, &[], &a, 0x0001_0000, &enc);
    assert_eq!(reply.as_slice(), &wire[4..]);
}

#[test]
fn dlt645_1997_read_of_phase_a_voltage_is_100_v() {
    let a = parse_address::<6>("000000000003").unwrap();
    let di = Version::V1997.parse_di("B611").unwrap();
    let req = dlt645::encode_read(Version::V1997, &[], &a, di);
    assert_eq!(
        req.as_slice(),
        hex("68 03 00 00 00 00 00 68 01 02 44 E9 03 16")
    );
    let spec = dlt645::spec_of(Version::V1997, di).unwrap();
    let enc = dlt645::encode_value(&spec, 100.0).unwrap();
    let reply = dlt645::encode_read_reply(Version::V1997, &[], &a, di, &enc);
    assert!(reply.ends_with(&hex("68 81 04 44 E9 33 34 EC 16")));
    let f = dlt645::Frame::parse(&reply).unwrap();
    let v = dlt645::check_read_reply(Version::V1997, &a, di, &spec, &f).unwrap();
    assert_eq!(dlt645::decode_value(&spec, v), Ok(100.0));
}

#[test]
fn dlt645_exception_wrong_address_and_more_frames() {
    let a = parse_address::<6>(ADDR_2007).unwrap();
    let spec = dlt645::spec_of(Version::V2007, 0).unwrap();
    let ex = dlt645::encode_exception(Version::V2007, &[], &a, 0x02);
    assert_eq!(ex[8], 0xD1);
    let f = dlt645::Frame::parse(&ex).unwrap();
    let err = dlt645::check_read_reply(Version::V2007, &a, 0, &spec, &f).unwrap_err();
    assert!(err.is_device_error());
    assert_eq!(
        err.to_string(),
        "exception reply: error byte 02H (no data requested)"
    );
    let other = parse_address::<6>("000102030426").unwrap();
    let reply = dlt645::encode_read_reply(Version::V2007, &[], &other, 0, &[0x33; 4]);
    let f = dlt645::Frame::parse(&reply).unwrap();
    let err = dlt645::check_read_reply(Version::V2007, &a, 0, &spec, &f).unwrap_err();
    assert_eq!(
        err.to_string(),
        "reply from address 000102030426, asked 000102030425"
    );
    // A reply for another DI is refused rather than read with the wrong decimals.
    let reply = dlt645::encode_read_reply(Version::V2007, &[], &a, 0x0201_0100, &[0; 4]);
    let f = dlt645::Frame::parse(&reply).unwrap();
    assert!(matches!(
        dlt645::check_read_reply(Version::V2007, &a, 0, &spec, &f),
        Err(dlt645::ReplyError::WrongDi { .. })
    ));
    // "More frames": the value is whole in the first frame.
    let mut more = dlt645::encode_read_reply(Version::V2007, &[], &a, 0, &[0x33; 4]);
    more[8] |= 0x20;
    let n = more.len();
    more[n - 2] = more[..n - 2].iter().fold(0u8, |s, b| s.wrapping_add(*b));
    let f = dlt645::Frame::parse(&more).unwrap();
    assert!(f.more_follows());
    assert!(dlt645::check_read_reply(Version::V2007, &a, 0, &spec, &f).is_ok());
}

#[test]
fn dlt645_signed_values_and_read_address() {
    let current = dlt645::spec_of(Version::V2007, 0x0202_0100).unwrap();
    let enc = dlt645::encode_value(&current, -1.234).unwrap();
    assert_eq!(enc.as_slice(), &[0x34, 0x12, 0x80]);
    assert_eq!(dlt645::decode_value(&current, &enc), Ok(-1.234));
    let pf = dlt645::spec_of(Version::V2007, 0x0206_0000).unwrap();
    assert_eq!(dlt645::decode_value(&pf, &[0x85, 0x09]), Ok(0.985));
    assert!(dlt645::spec_of(Version::V2007, 0x0400_0401).is_none());
    let req = dlt645::encode_read_address(&[]);
    assert_eq!(req.as_slice(), hex("68 AA AA AA AA AA AA 68 13 00 DF 16"));
    let a = parse_address::<6>(ADDR_2007).unwrap();
    let reply = dlt645::encode_address_reply(&[0xFE], &a);
    let got = frames(Layout::Dlt645, &reply, 1);
    let f = dlt645::Frame::parse(&got[0]).unwrap();
    assert_eq!(dlt645::check_address_reply(&f), Ok(a));
}

const WATER: [u8; 7] = [0x44, 0x33, 0x22, 0x11, 0x00, 0x33, 0x78];

#[test]
fn cjt188_read_of_901f_is_the_standard_frame() {
    assert_eq!(parse_address::<7>("78330011223344"), Some(WATER));
    let req = cjt188::encode_read(&[0xFE; 4], 0x10, &WATER, 0x901F, DiOrder::LowFirst, 0);
    assert_eq!(
        req.as_slice(),
        hex("FE FE FE FE 68 10 44 33 22 11 00 33 78 01 03 1F 90 00 80 16")
    );
    let high = cjt188::encode_read(&[], 0x10, &WATER, 0x901F, DiOrder::HighFirst, 0);
    assert_eq!(&high[11..13], &[0x90, 0x1F]);
}

fn water_reply(unit: u8) -> Vec<u8> {
    let mut payload = [0u8; 19];
    payload[..5].copy_from_slice(&hex("00 77 66 55 2C"));
    payload[9] = unit;
    payload[4] = unit;
    cjt188::encode_read_reply(&[0xFE, 0xFE], 0x10, &WATER, [0x1F, 0x90], 0, &payload).to_vec()
}

#[test]
fn cjt188_water_reply_reads_556_677_m3() {
    let got = frames(Layout::Cjt188, &water_reply(0x2C), 5);
    assert_eq!(got.len(), 1);
    let f = cjt188::Frame::parse(&got[0]).unwrap();
    assert_eq!(f.data.len(), 0x16);
    let payload = cjt188::check_read_reply(&WATER, 0x901F, MeterKind::Water, &f).unwrap();
    assert_eq!(
        cjt188::field_value(MeterKind::Water, Field::Flow, payload, "m3"),
        Ok(556_677.0)
    );
    // In litres where the point asks litres; as kWh it is not a reading at all.
    assert_eq!(
        cjt188::field_value(MeterKind::Water, Field::Flow, payload, "L"),
        Ok(556_677_000.0)
    );
    let err = cjt188::field_value(MeterKind::Water, Field::Flow, payload, "kWh").unwrap_err();
    assert_eq!(err.to_string(), "unit byte 2CH (m3) cannot be read as kWh");
}

#[test]
fn cjt188_heat_fields_and_units() {
    let mut payload = [0u8; 43];
    let h = MeterKind::Heat;
    cjt188::put_field(h, Field::Heat, 12.5, 0x11, &mut payload).unwrap(); // GJ
    cjt188::put_field(h, Field::Power, 35.2, 0x17, &mut payload).unwrap();
    cjt188::put_field(h, Field::FlowRate, 1.2345, 0x35, &mut payload).unwrap();
    cjt188::put_field(h, Field::Flow, 800.0, 0x2C, &mut payload).unwrap();
    cjt188::put_field(h, Field::SupplyTemp, 85.3, 0, &mut payload).unwrap();
    cjt188::put_field(h, Field::ReturnTemp, 60.1, 0, &mut payload).unwrap();
    let a = [1, 0, 0, 0, 0, 0, 0];
    let reply = cjt188::encode_read_reply(&[], 0x20, &a, [0x1F, 0x90], 7, &payload);
    let f = cjt188::Frame::parse(&reply).unwrap();
    assert_eq!(f.data.len(), 0x2E);
    let p = cjt188::check_read_reply(&a, 0x901F, h, &f).unwrap();
    let v = |field, unit| cjt188::field_value(h, field, p, unit).unwrap();
    assert_eq!(v(Field::Heat, "GJ"), 12.5);
    assert!((v(Field::Heat, "kWh") - 3472.2222).abs() < 1e-3);
    assert_eq!(v(Field::Power, "kW"), 35.2);
    assert_eq!(v(Field::FlowRate, "m3/h"), 1.2345);
    assert_eq!(v(Field::Flow, "m3"), 800.0);
    assert_eq!(v(Field::SupplyTemp, "°C"), 85.3);
    assert_eq!(v(Field::ReturnTemp, "°C"), 60.1);
    // A water meter's reply is too short for a heat meter.
    let f = cjt188::Frame::parse(&water_reply(0x2C)[2..]).unwrap();
    assert!(matches!(
        cjt188::check_read_reply(&WATER, 0x901F, h, &f),
        Err(cjt188::ReplyError::Short { .. })
    ));
}

#[test]
fn cjt188_exception_names_its_status() {
    let ex = cjt188::encode_exception(&[], 0x10, &WATER, [0x1F, 0x90], 0, [0x04, 0x00]);
    let f = cjt188::Frame::parse(&ex).unwrap();
    let err = cjt188::check_read_reply(&WATER, 0x901F, MeterKind::Water, &f).unwrap_err();
    assert!(err.is_device_error());
    assert_eq!(
        err.to_string(),
        "exception reply: status 04 00 (battery low)"
    );
}

#[test]
fn splitter_skips_garbage_and_bad_checksums() {
    let good = hex("68 25 04 03 02 01 00 68 91 08 33 33 34 33 75 39 45 33 8B 16");
    let mut bad = good.clone();
    bad[18] ^= 1;
    let mut wire = hex("00 13 68 FF");
    wire.extend(&bad);
    wire.extend(hex("FE FE"));
    wire.extend(&good);
    let mut s = Splitter::new(Layout::Dlt645);
    assert_eq!(s.push(&wire), wire.len());
    let mut pieces = Vec::new();
    while let Some(p) = s.next_piece() {
        pieces.push(p);
    }
    assert!(pieces.iter().any(|p| matches!(
        p,
        Piece::Garbage {
            why: Garbage::Checksum { .. },
            ..
        }
    )));
    let frames: Vec<_> = pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Frame(f) => Some(f.to_vec()),
            _ => None,
        })
        .collect();
    assert_eq!(frames, vec![good]);
    assert_eq!(s.pending(), 0);
}

#[test]
fn a_false_start_claiming_a_long_frame_does_not_hide_a_real_one() {
    let good = hex("68 25 04 03 02 01 00 68 91 08 33 33 34 33 75 39 45 33 8B 16");
    // 68 .. 68 with L = FF: would wait for 255 bytes that never come.
    let mut wire = hex("68 00 00 00 00 00 00 68 91 FF");
    wire.extend(&good);
    assert_eq!(frames(Layout::Dlt645, &wire, 64), vec![good]);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2000),
                                   chunk in 1usize..300) {
        for layout in [Layout::Dlt645, Layout::Cjt188] {
            for f in frames(layout, &bytes, chunk) {
                match layout {
                    Layout::Dlt645 => {
                        let f = dlt645::Frame::parse(&f).expect("a checked frame parses");
                        let spec = dlt645::spec_of(Version::V2007, 0).unwrap();
                        let _ = dlt645::check_read_reply(Version::V2007, &f.address, 0, &spec, &f)
                            .map(|v| dlt645::decode_value(&spec, v));
                        let _ = dlt645::read_request_di(Version::V1997, &f);
                    }
                    Layout::Cjt188 => {
                        let f = cjt188::Frame::parse(&f).expect("a checked frame parses");
                        for kind in [MeterKind::Water, MeterKind::Heat] {
                            if let Ok(p) = cjt188::check_read_reply(&f.address, 0x901F, kind, &f) {
                                for field in Field::ALL {
                                    let _ = cjt188::field_value(kind, field, p, "kWh");
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_frame_after_garbage_is_found(garbage in proptest::collection::vec(any::<u8>(), 0..600),
                                      value in 0u64..100_000_000, chunk in 1usize..64) {
        let a = parse_address::<6>(ADDR_2007).unwrap();
        let spec = dlt645::spec_of(Version::V2007, 0x0001_0000).unwrap();
        let enc = dlt645::encode_value(&spec, value as f64 / 100.0).unwrap();
        let reply = dlt645::encode_read_reply(Version::V2007, &[0xFE; 4], &a, 0x0001_0000, &enc);
        let mut wire = garbage.clone();
        wire.extend(&reply);
        let found = frames(Layout::Dlt645, &wire, chunk);
        // Garbage may hold frames of its own; the reply is the last one found.
        prop_assert_eq!(found.last().map(|f| f.as_slice()), Some(&reply[4..]));
    }

    #[test]
    fn bcd_round_trips(value in 0u64..100_000_000, negative in any::<bool>()) {
        let spec = dlt645::spec_of(Version::V2007, 0x0000_0000).unwrap();
        let v = if negative { -(value as f64) / 100.0 } else { value as f64 / 100.0 };
        if let Some(enc) = dlt645::encode_value(&spec, v) {
            prop_assert_eq!(dlt645::decode_value(&spec, &enc), Ok(v));
        } else {
            prop_assert!(value >= 80_000_000);
        }
    }
}

/// A block's value bytes (energy: the total and 4 tariffs, XXXXXX.XX kWh each).
fn energy_block(values: &[f64]) -> Vec<u8> {
    let spec = dlt645::spec_of(Version::V2007, 0x0001_0000).unwrap();
    values
        .iter()
        .flat_map(|v| dlt645::encode_value(&spec, *v).unwrap().to_vec())
        .collect()
}

#[test]
fn dlt645_follow_up_frames_are_read_with_12h_until_the_last() {
    let a = parse_address::<6>(ADDR_2007).unwrap();
    let di = 0x0001_FF00;
    // The follow-up request: C 12H, DI (0001FF00 sent 00 FF 01 00) and SEQ 01, each +33H.
    assert_eq!(
        dlt645::encode_read_follow(Version::V2007, &[], &a, di, 1).to_vec(),
        hex("68 25 04 03 02 01 00 68 12 05 33 32 34 33 34 16 16")
    );
    // 1997: C 02H with the DI alone.
    assert_eq!(
        dlt645::encode_read_follow(Version::V1997, &[], &a, 0x901F, 1)[8..10],
        [0x02, 0x02]
    );
    let block = energy_block(&[1206.42, 301.6, 301.6, 301.6, 301.62]);
    let parts = [&block[..8], &block[8..16], &block[16..]];
    let first = dlt645::encode_reply_part(Version::V2007, &[], &a, di, parts[0], None, true);
    assert_eq!(first[8], 0xB1, "reply with the more-frames bit");
    let mut c = dlt645::Collect::new(Version::V2007, a, di);
    let f = dlt645::Frame::parse(&first).unwrap();
    assert_eq!(c.feed(&f), Ok(dlt645::Progress::More(1)));
    let second = dlt645::encode_reply_part(Version::V2007, &[], &a, di, parts[1], Some(1), true);
    assert_eq!(second[8], 0xB2);
    assert_eq!(
        c.feed(&dlt645::Frame::parse(&second).unwrap()),
        Ok(dlt645::Progress::More(2))
    );
    let last = dlt645::encode_reply_part(Version::V2007, &[], &a, di, parts[2], Some(2), false);
    assert_eq!(last[8], 0x92);
    assert_eq!(
        c.feed(&dlt645::Frame::parse(&last).unwrap()),
        Ok(dlt645::Progress::Done)
    );
    assert_eq!(
        c.value(),
        &block[..],
        "the SEQ bytes are not part of the value"
    );
    assert_eq!(c.frames(), 3);

    // A follow-up answering another SEQ is refused (a late frame must not join the answer).
    let mut c = dlt645::Collect::new(Version::V2007, a, di);
    c.feed(&f).unwrap();
    let wrong = dlt645::encode_reply_part(Version::V2007, &[], &a, di, parts[1], Some(2), false);
    assert_eq!(
        c.feed(&dlt645::Frame::parse(&wrong).unwrap()),
        Err(dlt645::ReplyError::WrongSeq { got: 2, want: 1 })
    );
    // An exception to a follow-up (D2H) is the meter saying no.
    let mut c = dlt645::Collect::new(Version::V2007, a, di);
    c.feed(&f).unwrap();
    let mut ex = dlt645::encode_exception(Version::V2007, &[], &a, 0x02);
    ex[8] = 0xD2;
    let n = ex.len();
    ex[n - 2] = plantmeter_common::frame68::checksum(&ex[..n - 2]);
    assert!(c
        .feed(&dlt645::Frame::parse(&ex).unwrap())
        .is_err_and(|e| e.is_device_error()));
    // A meter that never stops saying "more" gets an error after MAX_FRAMES, not the bus.
    let mut c = dlt645::Collect::new(Version::V2007, a, di);
    let mut got = c.feed(&f);
    for seq in 1..=40u8 {
        if got.is_err() {
            break;
        }
        let more = dlt645::encode_reply_part(Version::V2007, &[], &a, di, &[0; 4], Some(seq), true);
        got = c.feed(&dlt645::Frame::parse(&more).unwrap());
    }
    assert_eq!(
        got,
        Err(dlt645::ReplyError::TooManyFrames(dlt645::MAX_FRAMES))
    );
}

/// A plan with one DL/T 645-2007 meter reading `points` of the dlt645-meter template.
fn dlt645_plan(points: &str) -> plantmeter_common::Plan {
    let text = format!(
        "[gateway]\nid = \"gw\"\nsite = \"s\"\ndata_dir = \"/tmp/pm\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\n\
         [[bus]]\nname = \"b\"\nprotocol = \"dlt645-2007\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:4001\"\npreamble = \"\"\n\
         [[meter]]\nname = \"m\"\nbus = \"b\"\naddress = \"{ADDR_2007}\"\npoll_interval_s = 60\ntemplate = \"dlt645-meter\"\npoints = [{points}]\n"
    );
    plantmeter_common::config::parse(&text, std::path::Path::new("t.toml")).unwrap()
}

#[test]
fn a_block_read_split_over_frames_gives_each_point_its_item() {
    use plantmeter_common::meter_read::{Answer, Session};
    use plantmeter_common::plan::Protocol;
    let plan = dlt645_plan(
        "\"energy_import\", \"energy_import_t1\", \"energy_import_t4\", \"voltage_a\", \"voltage_c\", \"power\"",
    );
    let bus = &plan.buses[0];
    let Protocol::Meter(mb) = &bus.protocol else {
        panic!("not a DL/T 645 bus")
    };
    let meter = &bus.meters[0];
    let link = meter.link.as_ref().unwrap();
    // Two blocks and a lone point: 3 requests instead of 6.
    let dis: Vec<(u32, bool)> = link.reads.iter().map(|r| (r.di, r.block)).collect();
    assert_eq!(
        dis,
        vec![
            (0x0001_FF00, true),
            (0x0201_FF00, true),
            (0x0203_0000, false)
        ]
    );
    let a = parse_address::<6>(ADDR_2007).unwrap();
    let di = 0x0001_FF00;
    let block = energy_block(&[1206.42, 301.6, 301.6, 301.6, 301.62]);
    let mut s = Session::new(mb, link, &link.reads[0], &meter.points);
    assert_eq!(
        s.request(0).to_vec(),
        dlt645::encode_read(Version::V2007, &[], &a, di).to_vec()
    );
    let first = dlt645::encode_reply_part(Version::V2007, &[], &a, di, &block[..12], None, true);
    let raw = |b: &[u8]| plantmeter_common::frame68::RawFrame::from_slice(b).unwrap();
    match s.on_frame(&raw(&first)) {
        Answer::Follow(req) => assert_eq!(
            req.to_vec(),
            dlt645::encode_read_follow(Version::V2007, &[], &a, di, 1).to_vec()
        ),
        other => panic!("expected a follow-up, got {other:?}"),
    }
    let last = dlt645::encode_reply_part(Version::V2007, &[], &a, di, &block[12..], Some(1), false);
    let Answer::Values(v) = s.on_frame(&raw(&last)) else {
        panic!("no values")
    };
    let got: Vec<(usize, Option<f64>)> = v.iter().map(|p| (p.point, p.value)).collect();
    assert_eq!(
        got,
        vec![(0, Some(1206.42)), (1, Some(301.6)), (2, Some(301.62))]
    );

    // A meter with two tariffs: its block lacks tariff 4, so the block is unfit (read point by
    // point), not a value taken from the wrong bytes.
    let short = energy_block(&[1206.42, 603.2, 603.22]);
    let mut s = Session::new(mb, link, &link.reads[0], &meter.points);
    let one = dlt645::encode_read_reply(Version::V2007, &[], &a, di, &short);
    assert!(matches!(s.on_frame(&raw(&one)), Answer::Unfit(_)));
    // An exception to the block: the link reads the points one by one (Exception here).
    let mut s = Session::new(mb, link, &link.reads[0], &meter.points);
    let ex = dlt645::encode_exception(Version::V2007, &[], &a, 0x02);
    assert!(matches!(
        s.on_frame(&raw(&ex)),
        Answer::Exception { code: 2, .. }
    ));
}
