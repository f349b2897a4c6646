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
