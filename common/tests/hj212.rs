//! HJ 212-2017 frames: DOMAIN.md example 7 (CRC 1C80) decodes and round-trips; every error names what
//! is wrong; random packets round-trip and random text never panics the decoder.
#![allow(clippy::unwrap_used)]

use plantmeter_common::hj212::{crc, decode_frame, encode_frame, Hj212Error, Packet};
use proptest::prelude::*;

const SEGMENT_7: &str = "QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&";
const FRAME_7: &str = "##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80\r\n";

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn example_7_has_crc_1c80() {
    assert_eq!(crc(SEGMENT_7.as_bytes()), 0x1C80);
    assert_eq!(encode_frame(SEGMENT_7).unwrap(), FRAME_7);
}

#[test]
fn example_7_decodes_into_its_fields() {
    let p = Packet::decode(FRAME_7).unwrap();
    assert_eq!(p.qn.as_deref(), Some("20160801085857223"));
    assert_eq!(p.st, "32");
    assert_eq!(p.cn, "1062");
    assert_eq!(p.pw, "100000");
    assert_eq!(p.mn, "010000A8900016F000169DC0");
    assert_eq!(p.flag, Some(5));
    assert!(p.extra.is_empty());
    assert_eq!(p.cp, vec![pairs(&[("RtdInterval", "30")])]);
    assert_eq!(p.cp_get("RtdInterval"), Some("30"));
    assert_eq!(p.cp_get("a21026-Rtd"), None);
}

#[test]
fn example_7_round_trips_byte_for_byte() {
    let p = Packet::decode(FRAME_7).unwrap();
    assert_eq!(p.data_segment().unwrap(), SEGMENT_7);
    assert_eq!(p.encode().unwrap(), FRAME_7);
    assert_eq!(p.to_string(), SEGMENT_7);
}

#[test]
fn a_real_time_flue_gas_upload_round_trips() {
    let p = Packet {
        qn: Some("20261121080005000".into()),
        st: "31".into(),
        cn: "2011".into(),
        pw: "123456".into(),
        mn: "PLANTA0000000000000001".into(),
        flag: Some(4),
        extra: vec![],
        cp: vec![
            pairs(&[("DataTime", "20261121080000")]),
            pairs(&[
                ("a21026-Rtd", "35.2"),
                ("a21026-ZsAvg", "41.8"),
                ("a21026-Flag", "N"),
            ]),
            pairs(&[("a19001-Rtd", "11.5"), ("a19001-Flag", "N")]),
            pairs(&[("a00000-Rtd", "120000"), ("a00000-Flag", "M")]),
        ],
    };
    let frame = p.encode().unwrap();
    assert!(frame.starts_with("##0"));
    assert!(frame.ends_with("\r\n"));
    let seg = p.data_segment().unwrap();
    assert!(seg.contains(
        "CP=&&DataTime=20261121080000;a21026-Rtd=35.2,a21026-ZsAvg=41.8,a21026-Flag=N;a19001-Rtd"
    ));
    assert_eq!(&frame[2..6], format!("{:04}", seg.len()));
    assert_eq!(
        &frame[frame.len() - 6..frame.len() - 2],
        format!("{:04X}", crc(seg.as_bytes()))
    );
    let back = Packet::decode(&frame).unwrap();
    assert_eq!(back, p);
    assert_eq!(back.cp_get("a00000-Flag"), Some("M"));
}

#[test]
fn optional_fields_and_extra_fields() {
    // No QN, no Flag; packet-splitting fields kept in order.
    let seg = "ST=32;CN=2061;PW=1;MN=M1;PNUM=2;PNO=1;CP=&&&&";
    let p = Packet::parse(seg).unwrap();
    assert_eq!((p.qn.clone(), p.flag), (None, None));
    assert_eq!(p.extra, pairs(&[("PNUM", "2"), ("PNO", "1")]));
    assert!(p.cp.is_empty());
    assert_eq!(p.data_segment().unwrap(), seg);
}

#[test]
fn a_frame_without_its_crlf_is_accepted() {
    let stripped = FRAME_7.trim_end();
    assert_eq!(decode_frame(stripped).unwrap(), SEGMENT_7);
}

#[test]
fn lower_case_crc_is_accepted() {
    let lower = FRAME_7.replace("1C80\r\n", "1c80\r\n");
    assert_eq!(decode_frame(&lower).unwrap(), SEGMENT_7);
}

#[test]
fn a_wrong_crc_names_expected_and_found() {
    let bad = FRAME_7.replace("1C80\r\n", "1C81\r\n");
    let err = decode_frame(&bad).unwrap_err();
    assert_eq!(
        err,
        Hj212Error::BadCrc {
            expected: 0x1C80,
            found: 0x1C81
        }
    );
    assert_eq!(
        err.to_string(),
        "HJ 212 CRC mismatch: computed 1C80, frame says 1C81"
    );
    let err = decode_frame(&FRAME_7.replace("1C80\r\n", "1CX0\r\n")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "HJ 212 CRC field \"1CX0\" is not 4 hex digits"
    );
}

#[test]
fn every_single_character_change_is_caught() {
    let bytes = FRAME_7.as_bytes();
    for i in 6..bytes.len() - 6 {
        let mut changed = bytes.to_vec();
        changed[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
        let text = String::from_utf8(changed).unwrap();
        assert!(
            matches!(decode_frame(&text), Err(Hj212Error::BadCrc { .. })),
            "change at {i} not caught"
        );
    }
}

#[test]
fn length_errors_name_declared_and_actual() {
    let err = decode_frame(&FRAME_7.replacen("0101", "0100", 1)).unwrap_err();
    assert_eq!(
        err,
        Hj212Error::LengthMismatch {
            declared: 100,
            actual: 101
        }
    );
    assert_eq!(
        err.to_string(),
        "HJ 212 length field says 100 bytes of data segment, the frame carries 101"
    );
    let err = decode_frame(&FRAME_7.replacen("0101", "0200", 1)).unwrap_err();
    assert!(matches!(
        err,
        Hj212Error::LengthMismatch { declared: 200, .. }
    ));
    let err = decode_frame(&FRAME_7.replacen("0101", "01A1", 1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "HJ 212 length field \"01A1\" is not 4 decimal digits"
    );
    assert_eq!(
        decode_frame("##01").unwrap_err(),
        Hj212Error::TooShort { len: 4 }
    );
}

#[test]
fn header_and_terminator_errors() {
    let err = decode_frame(&FRAME_7[1..]).unwrap_err();
    assert_eq!(err, Hj212Error::MissingHeader);
    assert_eq!(err.to_string(), "HJ 212 frame does not start with \"##\"");
    let junk = format!("{}XYZ", FRAME_7.trim_end());
    assert_eq!(
        decode_frame(&junk).unwrap_err(),
        Hj212Error::BadTerminator {
            found: "XYZ".into()
        }
    );
}

#[test]
fn missing_and_malformed_fields_are_named() {
    let cases = [
        (
            SEGMENT_7.replace("MN=010000A8900016F000169DC0;", ""),
            "HJ 212 data segment lacks field MN",
        ),
        (
            SEGMENT_7.replace("ST=32;", ""),
            "HJ 212 data segment lacks field ST",
        ),
        (
            SEGMENT_7.replace("CN=1062;", ""),
            "HJ 212 data segment lacks field CN",
        ),
        (
            SEGMENT_7.replace("PW=100000;", ""),
            "HJ 212 data segment lacks field PW",
        ),
        (
            SEGMENT_7.replace("CP=&&RtdInterval=30&&", ""),
            "HJ 212 data segment lacks field CP",
        ),
        (
            SEGMENT_7.replace("ST=32", "ST32"),
            "HJ 212 field \"ST32\" is not KEY=VALUE",
        ),
        (
            SEGMENT_7.replace("Flag=5", "Flag=x"),
            "HJ 212 field Flag has a bad value \"x\": not a number 0..=255",
        ),
        (
            SEGMENT_7.replace("ST=32;", "ST=32;ST=31;"),
            "HJ 212 data segment has field ST twice",
        ),
        (
            SEGMENT_7.replace("RtdInterval=30&&", "RtdInterval=30"),
            "HJ 212 CP must be the last field, written CP=&&...&&",
        ),
        (
            SEGMENT_7.replace("RtdInterval=30", "RtdInterval30"),
            "HJ 212 field \"RtdInterval30\" is not KEY=VALUE",
        ),
    ];
    for (seg, want) in cases {
        let err = Packet::parse(&seg).unwrap_err();
        assert_eq!(err.to_string(), want, "{seg}");
        // The same error comes through a whole, valid frame.
        let frame = encode_frame(&seg).unwrap();
        assert_eq!(Packet::decode(&frame).unwrap_err().to_string(), want);
    }
}

#[test]
fn values_with_separators_cannot_be_encoded() {
    let mut p = Packet::decode(FRAME_7).unwrap();
    p.mn = "A;B".into();
    let err = p.encode().unwrap_err();
    assert_eq!(
        err.to_string(),
        "HJ 212 field MN has a bad value \"A;B\": contains an HJ 212 separator (; , = &)"
    );
    p.mn = "M1".into();
    p.cp = vec![pairs(&[("a21026-Rtd", "1,5")])];
    assert!(matches!(p.encode(), Err(Hj212Error::BadValue { .. })));
}

#[test]
fn a_segment_longer_than_9999_bytes_is_refused() {
    let seg = format!("ST=32;CN=2011;PW=1;MN=M;CP=&&k={}&&", "9".repeat(10_000));
    assert_eq!(
        encode_frame(&seg).unwrap_err(),
        Hj212Error::TooLong { len: seg.len() }
    );
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9.-]{1,12}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_packets_round_trip(
        qn in proptest::option::of("[0-9]{17}"),
        st in "[0-9]{2}",
        cn in "[0-9]{4}",
        pw in token(),
        mn in token(),
        flag in proptest::option::of(any::<u8>()),
        cp in prop::collection::vec(prop::collection::vec((token(), token()), 1..5), 0..6),
    ) {
        let p = Packet { qn, st, cn, pw, mn, flag, extra: vec![], cp };
        let frame = p.encode().unwrap();
        prop_assert_eq!(Packet::decode(&frame).unwrap(), p);
    }

    #[test]
    fn decoding_random_text_never_panics(text in "\\PC{0,40}", prefix in proptest::option::of("##[0-9]{4}")) {
        let frame = format!("{}{}", prefix.unwrap_or_default(), text);
        let _ = Packet::decode(&frame);
        let _ = decode_frame(&frame);
    }
}

// ---- data packets, Flag, times, splitting, platform commands, the stream splitter ----

use chrono::FixedOffset;
use plantmeter_common::hj212::command::{
    data_ack, execution_result, interpret, request_answer, Command, ExeRtn, QnRtn,
};
use plantmeter_common::hj212::data::{
    data_packet, data_time, fmt_value, parse_time, part_of, qn, split, DataCn, DataFlag,
    FactorValues, Flag, Station, MAX_SEGMENT_2017,
};
use plantmeter_common::hj212::splitter::{FrameSplitter, Piece};

fn cst() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap()
}

fn station() -> Station {
    Station {
        st: "32".into(),
        pw: "100000".into(),
        mn: "010000A8900016F000169DC0".into(),
    }
}

/// 2016-08-01 08:58:57.223 in China is 00:58:57.223 UTC.
const EXAMPLE_7_UTC_MS: i64 = 1_470_013_137_223;

#[test]
fn example_7s_flag_is_version_2017_with_the_ack_bit() {
    let f = Flag::from_u8(5);
    assert_eq!(
        f,
        Flag {
            version: 1,
            split: false,
            ack: true
        }
    );
    assert_eq!(Flag::v2017(true).to_u8(), 5);
    assert_eq!(Flag::v2017(false).to_u8(), 4);
    let split = Flag {
        split: true,
        ..Flag::v2017(true)
    };
    assert_eq!(split.to_u8(), 7);
}

#[test]
fn qn_and_data_time_are_local_to_the_millisecond() {
    assert_eq!(qn(EXAMPLE_7_UTC_MS, cst()), "20160801085857223");
    assert_eq!(data_time(EXAMPLE_7_UTC_MS, cst()), "20160801085857");
    assert_eq!(
        parse_time("20160801085857", cst()),
        Some(EXAMPLE_7_UTC_MS - 223)
    );
    assert_eq!(parse_time("2016080108585", cst()), None);
    assert_eq!(parse_time("20161301085857", cst()), None);
    assert_eq!(parse_time("2016080108585x", cst()), None);
}

#[test]
fn values_are_written_without_noise() {
    assert_eq!(fmt_value(12.3), "12.3");
    assert_eq!(fmt_value(115.2), "115.2");
    assert_eq!(fmt_value(4.0), "4");
    assert_eq!(fmt_value(0.00001), "0");
    assert_eq!(fmt_value(-0.00001), "0");
    assert_eq!(fmt_value(1234567.891234), "1234567.8912");
    assert_eq!(fmt_value(f64::NAN), "0");
}

#[test]
fn an_hour_packet_carries_every_statistic_of_every_factor() {
    let values = [
        FactorValues {
            code: "w01018".into(),
            rtd: None,
            min: Some(40.0),
            avg: Some(48.0),
            max: Some(55.5),
            zs_avg: None,
            zs_rtd: None,
            cou: Some(115.2),
            flag: DataFlag::Normal,
        },
        FactorValues {
            code: "w00000".into(),
            rtd: None,
            min: None,
            avg: None,
            max: None,
            zs_avg: None,
            zs_rtd: None,
            cou: Some(2400.0),
            flag: DataFlag::CommError,
        },
    ];
    let p = data_packet(
        &station(),
        DataCn::Hour,
        "20260101090000123",
        Flag::v2017(true),
        "20260101080000",
        &values,
    );
    let seg = p.data_segment().unwrap();
    assert_eq!(
        seg,
        "QN=20260101090000123;ST=32;CN=2061;PW=100000;MN=010000A8900016F000169DC0;Flag=5;\
         CP=&&DataTime=20260101080000;w01018-Min=40,w01018-Avg=48,w01018-Max=55.5,w01018-Cou=115.2,\
         w01018-Flag=N;w00000-Cou=2400,w00000-Flag=B&&"
    );
    let frame = p.encode().unwrap();
    assert_eq!(Packet::decode(&frame).unwrap(), p);
}

fn many_factors(n: usize) -> Packet {
    let values: Vec<FactorValues> = (0..n)
        .map(|i| FactorValues {
            code: format!("a{:05}", i),
            rtd: None,
            min: Some(1.25 + i as f64),
            avg: Some(2.5 + i as f64),
            max: Some(3.75 + i as f64),
            zs_avg: Some(4.125),
            zs_rtd: None,
            cou: Some(1000.5),
            flag: DataFlag::Normal,
        })
        .collect();
    data_packet(
        &station(),
        DataCn::Minute,
        "20260101090000123",
        Flag::v2017(true),
        "20260101085000",
        &values,
    )
}

#[test]
fn a_long_packet_is_split_into_parts_of_at_most_1024_bytes() {
    let p = many_factors(40);
    assert!(p.data_segment().unwrap().len() > MAX_SEGMENT_2017);
    let parts = split(&p, MAX_SEGMENT_2017).unwrap();
    assert!(parts.len() >= 3, "{} parts", parts.len());
    let mut groups = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let seg = part.data_segment().unwrap();
        assert!(
            seg.len() <= MAX_SEGMENT_2017,
            "part {i}: {} bytes",
            seg.len()
        );
        assert_eq!(part_of(part), Some((parts.len(), i + 1)));
        let flag = Flag::from_u8(part.flag.unwrap());
        assert!(flag.split && flag.ack && flag.version == 1);
        assert_eq!(part.qn, p.qn, "the parts share the packet's QN");
        assert!(seg.contains(";PNUM=") && seg.contains(";PNO="));
        assert_eq!(part.cp[0], p.cp[0], "each part starts with DataTime");
        // Round trip through a frame.
        assert_eq!(&Packet::decode(&part.encode().unwrap()).unwrap(), part);
        groups.extend(part.cp[1..].iter().cloned());
    }
    assert_eq!(
        groups,
        p.cp[1..].to_vec(),
        "nothing lost, nothing twice, in order"
    );
    // A packet that fits is left alone.
    let small = many_factors(2);
    assert_eq!(split(&small, MAX_SEGMENT_2017).unwrap(), vec![small]);
}

fn request(cn: &str, pw: &str, mn: &str, cp: &[(&str, &str)]) -> Packet {
    Packet {
        qn: Some("20260102100000001".into()),
        st: "32".into(),
        cn: cn.into(),
        pw: pw.into(),
        mn: mn.into(),
        flag: Some(5),
        extra: vec![],
        cp: if cp.is_empty() {
            vec![]
        } else {
            vec![pairs(cp)]
        },
    }
}

#[test]
fn platform_commands_are_understood() {
    let (pw, mn) = ("100000", "010000A8900016F000169DC0");
    let ack = data_ack("20260101090000123", pw, mn);
    assert_eq!(
        ack.data_segment().unwrap(),
        "QN=20260101090000123;ST=91;CN=9014;PW=100000;MN=010000A8900016F000169DC0;Flag=4;CP=&&&&"
    );
    assert_eq!(
        interpret(&ack, pw, mn, cst()),
        Ok(Command::DataAck {
            qn: "20260101090000123".into()
        })
    );
    let hist = request(
        "2061",
        pw,
        mn,
        &[
            ("BeginTime", "20260101000000"),
            ("EndTime", "20260101235959"),
        ],
    );
    assert_eq!(
        interpret(&hist, pw, mn, cst()),
        Ok(Command::History {
            qn: "20260102100000001".into(),
            cn: DataCn::Hour,
            begin_ms: parse_time("20260101000000", cst()).unwrap(),
            end_ms: parse_time("20260101235959", cst()).unwrap(),
        })
    );
    assert_eq!(
        interpret(&request("2061", "bad", mn, &[]), pw, mn, cst()),
        Err(QnRtn::PwError)
    );
    assert_eq!(
        interpret(&request("2061", pw, "OTHER", &[]), pw, mn, cst()),
        Err(QnRtn::MnError)
    );
    assert!(matches!(
        interpret(
            &request("2061", pw, mn, &[("BeginTime", "x")]),
            pw,
            mn,
            cst()
        ),
        Ok(Command::Unsupported { .. })
    ));
    assert!(matches!(
        interpret(&request("3020", pw, mn, &[]), pw, mn, cst()),
        Ok(Command::Unsupported { .. })
    ));
}

#[test]
fn answers_carry_the_requests_qn_and_the_codes_of_the_standard() {
    let a = request_answer("20260102100000001", "100000", "M1", QnRtn::PwError);
    assert_eq!(
        a.data_segment().unwrap(),
        "QN=20260102100000001;ST=91;CN=9011;PW=100000;MN=M1;Flag=4;CP=&&QnRtn=3&&"
    );
    assert_eq!(QnRtn::Ready.code(), 1);
    assert_eq!(QnRtn::MnError.code(), 4);
    let e = execution_result("20260102100000001", "100000", "M1", ExeRtn::NoData);
    assert_eq!(
        e.data_segment().unwrap(),
        "QN=20260102100000001;ST=91;CN=9012;PW=100000;MN=M1;Flag=4;CP=&&ExeRtn=100&&"
    );
    assert_eq!(ExeRtn::Success.code(), 1);
}

fn frames_of(s: &mut FrameSplitter) -> (Vec<Packet>, usize) {
    let (mut frames, mut garbage) = (Vec::new(), 0);
    while let Some(p) = s.next_piece() {
        match p {
            Piece::Frame(f) => frames.push(f),
            Piece::Garbage { bytes, .. } => garbage += bytes,
        }
    }
    (frames, garbage)
}

#[test]
fn the_splitter_finds_frames_in_a_stream_byte_by_byte() {
    let ack = data_ack("20260101090000123", "1", "M").encode().unwrap();
    let stream = format!("{FRAME_7}junk\r\n{ack}##12{FRAME_7}");
    let mut s = FrameSplitter::new();
    let mut frames = Vec::new();
    let mut garbage = 0;
    for b in stream.as_bytes() {
        s.push(std::slice::from_ref(b));
        let (f, g) = frames_of(&mut s);
        frames.extend(f);
        garbage += g;
    }
    assert_eq!(frames.len(), 3, "{frames:?}");
    assert_eq!(frames[1].cn, "9014");
    assert_eq!(garbage, "junk\r\n##12".len());
    assert_eq!(s.pending(), 0);
}

#[test]
fn a_half_frame_waits_and_a_bogus_length_does_not_hold_up_the_next_frame() {
    let mut s = FrameSplitter::new();
    s.push(&FRAME_7.as_bytes()[..50]);
    assert_eq!(s.next_piece(), None);
    assert_eq!(s.pending(), 50);
    s.push(&FRAME_7.as_bytes()[50..]);
    assert!(matches!(s.next_piece(), Some(Piece::Frame(_))));
    // "##9999" announces 9999 bytes; the valid frame after it comes out at once.
    s.push(format!("##9999xx{FRAME_7}").as_bytes());
    let (frames, garbage) = frames_of(&mut s);
    assert_eq!((frames.len(), garbage), (1, 8));
    // A frame with a bad CRC is skipped with its reason.
    s.push(FRAME_7.replace("1C80", "1C81").as_bytes());
    match s.next_piece() {
        Some(Piece::Garbage { why, .. }) => {
            assert!(matches!(why, Hj212Error::BadCrc { .. }), "{why}")
        }
        other => panic!("{other:?}"),
    }
}

fn garbage_text() -> impl Strategy<Value = String> {
    "[^#]{0,30}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_splitter_never_panics_and_stays_bounded(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..40),
        seed_frames in prop::collection::vec(0usize..3, 0..4),
    ) {
        let mut s = FrameSplitter::new();
        for (i, c) in chunks.iter().enumerate() {
            s.push(c);
            if seed_frames.contains(&(i % 4)) {
                s.push(b"##00");
            }
            while s.next_piece().is_some() {}
            prop_assert!(s.pending() <= plantmeter_common::hj212::splitter::MAX_FRAME_LEN);
        }
    }

    #[test]
    fn frames_between_garbage_come_out_whole_and_in_order(
        items in prop::collection::vec((garbage_text(), "[0-9]{17}"), 1..8),
        cut in prop::collection::vec(1usize..64, 1..20),
    ) {
        let mut stream = Vec::new();
        let mut want = Vec::new();
        for (g, q) in &items {
            stream.extend_from_slice(g.as_bytes());
            let p = data_ack(q, "1", "M");
            stream.extend_from_slice(p.encode().unwrap().as_bytes());
            want.push(p);
        }
        let mut s = FrameSplitter::new();
        let mut got = Vec::new();
        let mut at = 0;
        let mut i = 0;
        while at < stream.len() {
            let n = cut[i % cut.len()].min(stream.len() - at);
            s.push(&stream[at..at + n]);
            at += n;
            i += 1;
            got.extend(frames_of(&mut s).0);
        }
        prop_assert_eq!(got, want);
    }

    #[test]
    fn decoding_random_fields_never_panics(
        fields in prop::collection::vec("[A-Za-z]{0,6}=?[0-9A-Za-z&;,=-]{0,12}", 0..10),
    ) {
        let seg = fields.join(";");
        let _ = Packet::parse(&seg);
        if let Ok(frame) = encode_frame(&seg) {
            let mut s = FrameSplitter::new();
            s.push(frame.as_bytes());
            let _ = s.next_piece();
            if let Ok(p) = Packet::parse(&seg) {
                let _ = interpret(&p, "1", "M", cst());
                let _ = split(&p, 64);
            }
        }
    }
}

mod v2025 {
    use plantmeter_common::hj212::data::Flag;
    use plantmeter_common::hj212::sm4::{
        encrypted_cn, from_text, to_text, Form, Key, LengthOf, Wire,
    };
    use plantmeter_common::hj212::splitter::{FrameSplitter, Piece};
    use plantmeter_common::hj212::{crc, encode_frame};

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn gb_t_32907_vector() {
        let key = Key::parse("0123456789abcdeffedcba9876543210\n").unwrap();
        let c = key.encrypt(&hex("0123456789abcdeffedcba9876543210"));
        assert_eq!(c, hex("681edf34d206965e86b3e94f536e4246"));
        assert_eq!(key.decrypt(&c), hex("0123456789abcdeffedcba9876543210"));
        // A tail under 16 bytes stays plain; the length does not change.
        let mut data = hex("0123456789abcdeffedcba9876543210");
        data.extend_from_slice(b"tail");
        let c = key.encrypt(&data);
        assert_eq!(c.len(), 20);
        assert_eq!(&c[16..], b"tail");
        assert!(Key::parse("short").is_err());
        assert!(Key::parse(&"g".repeat(32)).is_err());
    }

    #[test]
    fn annex_a1_frame_length_87_crc_2200_flag_9() {
        let seg = "QN=20240601085857223;ST=32;CN=1011;PW=123456;MN=010000A8900016F000169DC0;Flag=9;CP=&&&&";
        assert_eq!(seg.len(), 87);
        assert_eq!(crc(seg.as_bytes()), 0x2200);
        assert_eq!(encode_frame(seg).unwrap(), format!("##0087{seg}2200\r\n"));
        // Flag 9 = version 000010 + acknowledge; 10/11 split.
        assert_eq!(Flag::v2025(true).to_u8(), 9);
        assert_eq!(Flag::v2025(false).to_u8(), 8);
        let split = Flag {
            split: true,
            ..Flag::v2025(false)
        };
        assert_eq!(split.to_u8(), 10);
        // CN 1011 is not encrypted: the frame is the same with a key.
        let w = Wire {
            key: Key::parse("0000000000000000").unwrap(),
            form: Form::Raw,
            length: LengthOf::Plain,
        };
        assert_eq!(
            w.encode(seg).unwrap(),
            format!("##0087{seg}2200\r\n").into_bytes()
        );
    }

    #[test]
    fn which_cns_are_encrypted() {
        for cn in ["2011", "2051", "2061", "2031", "2999", "1014", "3020"] {
            assert!(encrypted_cn(cn), "{cn}");
        }
        for cn in [
            "1011", "1012", "9011", "9012", "9014", "9015", "1072", "3019",
        ] {
            assert!(!encrypted_cn(cn), "{cn}");
        }
    }

    /// Every form and length setting: the frame goes out encrypted (CRC over the plain segment) and
    /// a splitter with the same settings gets the plain packet back.
    #[test]
    fn encrypted_frames_round_trip_through_the_splitter() {
        let seg = "QN=20260302080000001;ST=32;CN=2061;PW=123456;MN=010000A8900016F000169DC0;Flag=9;CP=&&DataTime=20260302070000;w01018-Avg=48.0000,w01018-Flag=N&&";
        for (form, length) in [
            (Form::Raw, LengthOf::Plain),
            (Form::Text, LengthOf::Plain),
            (Form::Text, LengthOf::Sent),
            (Form::Raw, LengthOf::Sent),
        ] {
            let w = Wire {
                key: Key::parse("0000000000000000").unwrap(),
                form,
                length,
            };
            let frame = w.encode(seg).unwrap();
            let crc_field = format!("{:04X}\r\n", crc(seg.as_bytes()));
            assert!(
                frame.ends_with(crc_field.as_bytes()),
                "CRC over the plain text"
            );
            assert!(
                !frame.windows(8).any(|x| x == b"DataTime"),
                "{form:?}: the data region is encrypted"
            );
            let declared: usize = std::str::from_utf8(&frame[2..6]).unwrap().parse().unwrap();
            match length {
                LengthOf::Plain => assert_eq!(declared, seg.len()),
                LengthOf::Sent => assert_eq!(declared, frame.len() - 12),
            }
            if form == Form::Text {
                let text = String::from_utf8(frame.clone()).unwrap();
                assert!(text.contains("CP=&&{0x"), "{text}");
            }
            let mut sp = FrameSplitter::with_wire(Some(w.clone()));
            // Byte by byte, after some garbage and before a plain answer.
            let mut bytes = b"noise".to_vec();
            bytes.extend_from_slice(&frame);
            bytes.extend_from_slice(
                encode_frame("QN=1;ST=91;CN=9014;PW=123456;MN=X;Flag=8;CP=&&&&")
                    .unwrap()
                    .as_bytes(),
            );
            let mut got = Vec::new();
            for b in bytes {
                sp.push(&[b]);
                while let Some(p) = sp.next_piece() {
                    if let Piece::Frame(p) = p {
                        got.push(p);
                    }
                }
            }
            assert_eq!(got.len(), 2, "{form:?} {length:?}");
            assert_eq!(got[0].cp_get("w01018-Avg"), Some("48.0000"));
            assert_eq!(got[1].cn, "9014");
        }
    }

    #[test]
    fn text_form_reads_back() {
        let b = vec![0xE4, 0x3E, 0x00, 0xFF];
        assert_eq!(to_text(&b), "{0xE4,0x3E,0x00,0xFF}");
        assert_eq!(from_text("{0xE4,0x3E,0x00,0xFF}"), Some(b));
        assert_eq!(from_text("{0xZZ}"), None);
    }
}
