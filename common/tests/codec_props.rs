//! The register codec against hand-computed register values (every type and byte order), DOMAIN.md
//! example 8, scaling and quality rules, and property tests: encode then decode is the identity, and
//! decoding arbitrary words never panics.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use plantmeter_common::batching::{batch, DEFAULT_MAX_GAP};
use plantmeter_common::codec::{
    decode_bits, decode_point, decode_point_bit, decode_raw, decode_registers, encode_point,
    encode_raw, CodecError, RegisterBuf,
};
use plantmeter_common::plan::{Meter, Point};
use plantmeter_common::{ByteOrder, DataType, PointKind, Quality, RegisterKind};
use proptest::prelude::*;

fn order(name: &str) -> ByteOrder {
    ByteOrder::parse(name).unwrap().0
}

fn point(ty: DataType, byte_order: &str) -> Point {
    Point {
        name: "p".into(),
        register: RegisterKind::Holding,
        address: 0,
        data_type: ty,
        byte_order: order(byte_order),
        scale: 1.0,
        offset: 0.0,
        unit: "kWh".into(),
        kind: PointKind::Gauge,
        rollover: None,
        min: None,
        max: None,
    }
}

fn enc(raw: f64, ty: DataType, o: &str) -> Vec<u16> {
    let mut out = vec![0u16; usize::from(ty.words())];
    encode_raw(raw, ty, order(o), &mut out).unwrap();
    out
}

fn dec(words: &[u16], ty: DataType, o: &str) -> f64 {
    decode_raw(words, ty, order(o)).unwrap()
}

/// Check one hand-computed case both ways: the words decode to `value`, and `value` encodes to the words.
fn case(ty: DataType, o: &str, value: f64, words: &[u16]) {
    let got = dec(words, ty, o);
    assert!(
        got == value || (got.is_nan() && value.is_nan()),
        "{ty} {o}: {words:04X?} decoded to {got}, expected {value}"
    );
    assert_eq!(enc(value, ty, o), words, "{ty} {o}: encoding {value}");
}

// ---------------------------------------------------------------- hand-computed registers

#[test]
fn f32_12345_67_in_every_order() {
    // 12345.67f32 = 0x4640E6AE
    case(DataType::F32, "ABCD", 12345.67, &[0x4640, 0xE6AE]);
    case(DataType::F32, "CDAB", 12345.67, &[0xE6AE, 0x4640]);
    case(DataType::F32, "BADC", 12345.67, &[0x4046, 0xAEE6]);
    case(DataType::F32, "DCBA", 12345.67, &[0xAEE6, 0x4046]);
}

#[test]
fn f32_other_known_patterns() {
    case(DataType::F32, "ABCD", -1.5, &[0xBFC0, 0x0000]);
    case(DataType::F32, "CDAB", -1.5, &[0x0000, 0xBFC0]);
    case(DataType::F32, "BADC", -1.5, &[0xC0BF, 0x0000]);
    case(DataType::F32, "ABCD", 1.0, &[0x3F80, 0x0000]);
    case(DataType::F32, "ABCD", 0.1, &[0x3DCC, 0xCCCD]);
    case(DataType::F32, "ABCD", 230.5, &[0x4366, 0x8000]);
    case(DataType::F32, "ABCD", f64::INFINITY, &[0x7F80, 0x0000]);
    case(DataType::F32, "DCBA", f64::NEG_INFINITY, &[0x0000, 0x80FF]);
    // 0.1 is published as 0.1, not as 0.10000000149011612 (the exact f32 value).
    assert_eq!(
        dec(&[0x3DCC, 0xCCCD], DataType::F32, "ABCD").to_string(),
        "0.1"
    );
}

#[test]
fn u16_and_i16_in_both_byte_orders() {
    case(DataType::I16, "AB", -1.0, &[0xFFFF]);
    case(DataType::I16, "BA", -1.0, &[0xFFFF]);
    case(DataType::I16, "AB", -2.0, &[0xFFFE]);
    case(DataType::I16, "BA", -2.0, &[0xFEFF]);
    case(DataType::I16, "AB", -32768.0, &[0x8000]);
    case(DataType::I16, "BA", -32768.0, &[0x0080]);
    case(DataType::I16, "AB", 32767.0, &[0x7FFF]);
    case(DataType::U16, "AB", 4660.0, &[0x1234]);
    case(DataType::U16, "BA", 4660.0, &[0x3412]);
    case(DataType::U16, "AB", 65535.0, &[0xFFFF]);
    case(DataType::U16, "AB", 0.0, &[0x0000]);
    // A 16-bit value has no word order: a 32-bit order name applies only its byte swap.
    case(DataType::U16, "CDAB", 4660.0, &[0x1234]);
    case(DataType::U16, "DCBA", 4660.0, &[0x3412]);
}

#[test]
fn u32_and_i32_in_every_order() {
    // 123456 = 0x0001E240
    case(DataType::U32, "ABCD", 123456.0, &[0x0001, 0xE240]);
    case(DataType::U32, "CDAB", 123456.0, &[0xE240, 0x0001]);
    case(DataType::U32, "BADC", 123456.0, &[0x0100, 0x40E2]);
    case(DataType::U32, "DCBA", 123456.0, &[0x40E2, 0x0100]);
    case(DataType::U32, "ABCD", 4_294_967_295.0, &[0xFFFF, 0xFFFF]);
    case(DataType::U32, "ABCD", 65536.0, &[0x0001, 0x0000]);
    case(DataType::U32, "CDAB", 65536.0, &[0x0000, 0x0001]);
    // -123456 = 0xFFFE1DC0
    case(DataType::I32, "ABCD", -123456.0, &[0xFFFE, 0x1DC0]);
    case(DataType::I32, "CDAB", -123456.0, &[0x1DC0, 0xFFFE]);
    case(DataType::I32, "BADC", -123456.0, &[0xFEFF, 0xC01D]);
    case(DataType::I32, "DCBA", -123456.0, &[0xC01D, 0xFEFF]);
    case(DataType::I32, "ABCD", -2_147_483_648.0, &[0x8000, 0x0000]);
    case(DataType::I32, "ABCD", 2_147_483_647.0, &[0x7FFF, 0xFFFF]);
    case(DataType::I32, "ABCD", -1.0, &[0xFFFF, 0xFFFF]);
}

#[test]
fn u64_and_i64_in_every_order() {
    let min = i64::MIN as f64;
    case(DataType::I64, "ABCDEFGH", min, &[0x8000, 0, 0, 0]);
    case(DataType::I64, "GHEFCDAB", min, &[0, 0, 0, 0x8000]);
    case(DataType::I64, "BADCFEHG", min, &[0x0080, 0, 0, 0]);
    case(DataType::I64, "HGFEDCBA", min, &[0, 0, 0, 0x0080]);
    case(DataType::I64, "ABCDEFGH", -1.0, &[0xFFFF; 4]);
    // 0x0001_0002_0003_0004 = 281483566841860
    let v = 281_483_566_841_860.0;
    case(DataType::U64, "ABCDEFGH", v, &[1, 2, 3, 4]);
    case(DataType::U64, "GHEFCDAB", v, &[4, 3, 2, 1]);
    case(
        DataType::U64,
        "BADCFEHG",
        v,
        &[0x0100, 0x0200, 0x0300, 0x0400],
    );
    case(
        DataType::U64,
        "HGFEDCBA",
        v,
        &[0x0400, 0x0300, 0x0200, 0x0100],
    );
    case(
        DataType::I64,
        "ABCDEFGH",
        -v,
        &[0xFFFE, 0xFFFD, 0xFFFC, 0xFFFC],
    );
    // 2^53, the last integer an f64 holds with every integer below it.
    case(
        DataType::U64,
        "ABCDEFGH",
        9_007_199_254_740_992.0,
        &[0x0020, 0, 0, 0],
    );
}

#[test]
fn u64_beyond_2_pow_53_decodes_to_the_nearest_f64() {
    // 2^53 + 1 is not an f64; the documented precision limit rounds it to 2^53.
    assert_eq!(
        dec(&[0x0020, 0, 0, 1], DataType::U64, "ABCDEFGH"),
        9_007_199_254_740_992.0
    );
    // u64::MAX rounds up to 2^64, which no longer fits on the way back.
    let max = dec(&[0xFFFF; 4], DataType::U64, "ABCDEFGH");
    assert_eq!(max, 18_446_744_073_709_551_616.0);
    assert!(matches!(
        encode_raw(max, DataType::U64, ByteOrder::BIG, &mut [0; 4]),
        Err(CodecError::OutOfRange { .. })
    ));
    // i64::MAX rounds up to 2^63 likewise; the largest f64 below it encodes.
    assert_eq!(
        dec(&[0x7FFF, 0xFFFF, 0xFFFF, 0xFFFF], DataType::I64, "ABCDEFGH"),
        9_223_372_036_854_775_808.0
    );
    assert_eq!(
        enc(9_223_372_036_854_774_784.0, DataType::I64, "ABCDEFGH"),
        [0x7FFF, 0xFFFF, 0xFFFF, 0xFC00]
    );
}

#[test]
fn f64_known_patterns_in_every_order() {
    // pi = 0x400921FB54442D18
    let pi = std::f64::consts::PI;
    case(
        DataType::F64,
        "ABCDEFGH",
        pi,
        &[0x4009, 0x21FB, 0x5444, 0x2D18],
    );
    case(
        DataType::F64,
        "GHEFCDAB",
        pi,
        &[0x2D18, 0x5444, 0x21FB, 0x4009],
    );
    case(
        DataType::F64,
        "BADCFEHG",
        pi,
        &[0x0940, 0xFB21, 0x4454, 0x182D],
    );
    case(
        DataType::F64,
        "HGFEDCBA",
        pi,
        &[0x182D, 0x4454, 0xFB21, 0x0940],
    );
    case(DataType::F64, "ABCDEFGH", 1.0, &[0x3FF0, 0, 0, 0]);
    case(DataType::F64, "ABCDEFGH", -2.0, &[0xC000, 0, 0, 0]);
    // -0.0 keeps its sign bit.
    assert_eq!(enc(-0.0, DataType::F64, "ABCDEFGH"), [0x8000, 0, 0, 0]);
    assert!(dec(&[0x8000, 0, 0, 0], DataType::F64, "ABCDEFGH").is_sign_negative());
    // NaN is stored as given (the simulator fakes broken sensors with it).
    let nan = enc(f64::NAN, DataType::F64, "ABCDEFGH");
    assert!(dec(&nan, DataType::F64, "ABCDEFGH").is_nan());
}

#[test]
fn bool_is_zero_or_non_zero() {
    assert_eq!(dec(&[0], DataType::Bool, "AB"), 0.0);
    assert_eq!(dec(&[1], DataType::Bool, "AB"), 1.0);
    assert_eq!(dec(&[0x8000], DataType::Bool, "AB"), 1.0);
    assert_eq!(dec(&[0x0100], DataType::Bool, "BA"), 1.0);
    assert_eq!(enc(1.0, DataType::Bool, "AB"), [1]);
    assert_eq!(enc(0.0, DataType::Bool, "AB"), [0]);
    assert!(matches!(
        encode_raw(2.0, DataType::Bool, ByteOrder::BIG, &mut [0]),
        Err(CodecError::OutOfRange { .. })
    ));
}

#[test]
fn extra_words_are_ignored() {
    assert_eq!(
        dec(&[0x0001, 0xE240, 0xDEAD], DataType::U32, "ABCD"),
        123456.0
    );
    let mut out = [0xAAAA; 3];
    encode_raw(7.0, DataType::U16, ByteOrder::BIG, &mut out).unwrap();
    assert_eq!(out, [7, 0xAAAA, 0xAAAA]);
}

// ---------------------------------------------------------------- encode: rounding and errors

#[test]
fn integers_are_rounded_half_away_from_zero() {
    assert_eq!(enc(2.5, DataType::I32, "ABCD"), [0, 3]);
    assert_eq!(enc(-2.5, DataType::I16, "AB"), [0xFFFD]);
    assert_eq!(enc(0.4, DataType::U16, "AB"), [0]);
    assert_eq!(enc(-0.4, DataType::U16, "AB"), [0]);
    assert_eq!(enc(-32768.4, DataType::I16, "AB"), [0x8000]);
}

#[test]
fn values_outside_an_integer_type_are_refused() {
    let cases: &[(f64, DataType)] = &[
        (65536.0, DataType::U16),
        (65535.5, DataType::U16),
        (-1.0, DataType::U16),
        (32768.0, DataType::I16),
        (-32769.0, DataType::I16),
        (4_294_967_296.0, DataType::U32),
        (-0.6, DataType::U32),
        (2_147_483_648.0, DataType::I32),
        (-2_147_483_649.0, DataType::I32),
        (-1.0, DataType::U64),
        (18_446_744_073_709_551_616.0, DataType::U64),
        (9_223_372_036_854_775_808.0, DataType::I64),
        (-9.3e18, DataType::I64),
        (1e39, DataType::F32),
        (-1e39, DataType::F32),
    ];
    for &(v, ty) in cases {
        let mut out = [0u16; 4];
        match encode_raw(v, ty, ByteOrder::BIG, &mut out) {
            Err(CodecError::OutOfRange { value, ty: t, .. }) => {
                assert_eq!((value, t), (v, ty));
            }
            other => panic!("{v} as {ty}: expected OutOfRange, got {other:?}"),
        }
    }
    let msg = encode_raw(70000.0, DataType::U16, ByteOrder::BIG, &mut [0])
        .unwrap_err()
        .to_string();
    assert_eq!(msg, "value 70000 is outside the range of u16 (0 ..= 65535)");
}

#[test]
fn nan_and_infinity_fit_floats_but_not_integers() {
    for ty in [
        DataType::U16,
        DataType::I16,
        DataType::U32,
        DataType::I32,
        DataType::U64,
        DataType::I64,
        DataType::Bool,
    ] {
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let err = encode_raw(v, ty, ByteOrder::BIG, &mut [0; 4]).unwrap_err();
            assert!(matches!(err, CodecError::NotFinite { .. }), "{v} as {ty}");
        }
    }
    let mut out = [0u16; 2];
    encode_raw(f64::NAN, DataType::F32, ByteOrder::BIG, &mut out).unwrap();
    assert!(dec(&out, DataType::F32, "ABCD").is_nan());
    encode_raw(f64::INFINITY, DataType::F32, ByteOrder::BIG, &mut out).unwrap();
    assert_eq!(out, [0x7F80, 0]);
}

#[test]
fn too_few_registers_is_an_error_naming_need_and_got() {
    let err = decode_raw(&[0x4640], DataType::F32, ByteOrder::BIG).unwrap_err();
    assert_eq!(
        err,
        CodecError::TooFewRegisters {
            ty: DataType::F32,
            need: 2,
            got: 1
        }
    );
    assert_eq!(err.to_string(), "f32 needs 2 register(s), got 1");
    assert!(decode_raw(&[], DataType::U16, ByteOrder::BIG).is_err());
    let err = encode_raw(1.0, DataType::F64, ByteOrder::BIG, &mut [0; 3]).unwrap_err();
    assert_eq!(
        err,
        CodecError::TooFewRegisters {
            ty: DataType::F64,
            need: 4,
            got: 3
        }
    );
}

// ---------------------------------------------------------------- points: DOMAIN.md example 8, scaling, quality

#[test]
fn domain_example_8_sdm630_f32_abcd() {
    let p = point(DataType::F32, "ABCD");
    assert_eq!(
        decode_point(&p, &[0x4640, 0xE6AE]),
        (Some(12345.67), Quality::Good)
    );
}

#[test]
fn domain_example_8_adw300_i32_hundredths() {
    let mut p = point(DataType::I32, "ABCD");
    p.scale = 0.01;
    assert_eq!(
        decode_point(&p, &[0x0001, 0xE240]),
        (Some(1234.56), Quality::Good)
    );
    let mut out = [0u16; 2];
    encode_point(&p, 1234.56, &mut out).unwrap();
    assert_eq!(out, [0x0001, 0xE240]);
}

#[test]
fn thermo_43i_f32_word_swapped() {
    let p = point(DataType::F32, "CDAB");
    assert_eq!(
        decode_point(&p, &[0xE6AE, 0x4640]),
        (Some(12345.67), Quality::Good)
    );
}

#[test]
fn decimal_scales_give_the_decimal_the_meter_means() {
    // 0.1 + 0.2 style artefacts would otherwise show in every published reading.
    let mut p = point(DataType::U32, "ABCD");
    for (scale, raw, want) in [
        (0.1, 3.0, 0.3),
        (0.01, 7.0, 0.07),
        (0.001, 123_456_789.0, 123_456.789),
        (0.01, 99_999_900.0, 999_999.0),
    ] {
        p.scale = scale;
        let words = enc(raw, DataType::U32, "ABCD");
        assert_eq!(decode_point(&p, &words).0, Some(want), "{raw} x {scale}");
    }
}

#[test]
fn scale_and_offset_are_applied() {
    let mut p = point(DataType::I16, "AB");
    p.scale = 0.1;
    p.offset = -40.0;
    // 1000 x 0.1 - 40 = 60 (a temperature transmitter's 4..20 mA span, say).
    assert_eq!(decode_point(&p, &[1000]), (Some(60.0), Quality::Good));
    let mut out = [0u16; 1];
    encode_point(&p, 60.0, &mut out).unwrap();
    assert_eq!(out, [1000]);
    p.scale = 2.0;
    p.offset = 1.5;
    assert_eq!(decode_point(&p, &[0xFFFF]), (Some(-0.5), Quality::Good));
}

#[test]
fn nan_and_infinity_are_invalid_never_a_number() {
    let p = point(DataType::F32, "ABCD");
    for words in [[0x7FC0, 0], [0x7F80, 0], [0xFF80, 0], [0x7FFF, 0xFFFF]] {
        assert_eq!(
            decode_point(&p, &words),
            (None, Quality::Invalid),
            "{words:04X?}"
        );
    }
    let p64 = point(DataType::F64, "ABCDEFGH");
    assert_eq!(
        decode_point(&p64, &[0x7FF8, 0, 0, 0]),
        (None, Quality::Invalid)
    );
    // A finite raw value that the scale pushes to infinity is invalid too.
    let mut big = point(DataType::F64, "ABCDEFGH");
    big.scale = 1e300;
    let words = enc(1e300, DataType::F64, "ABCDEFGH");
    assert_eq!(decode_point(&big, &words), (None, Quality::Invalid));
}

#[test]
fn values_outside_min_max_are_invalid() {
    let mut p = point(DataType::U16, "AB");
    p.scale = 0.5;
    p.min = Some(10.0);
    p.max = Some(100.0);
    assert_eq!(decode_point(&p, &[19]), (None, Quality::Invalid)); // 9.5
    assert_eq!(decode_point(&p, &[20]), (Some(10.0), Quality::Good)); // the bound itself is fine
    assert_eq!(decode_point(&p, &[200]), (Some(100.0), Quality::Good));
    assert_eq!(decode_point(&p, &[201]), (None, Quality::Invalid)); // 100.5
}

#[test]
fn a_short_slice_is_a_comm_error() {
    let p = point(DataType::F64, "ABCDEFGH");
    assert_eq!(decode_point(&p, &[1, 2, 3]), (None, Quality::CommError));
}

#[test]
fn a_bit_is_zero_or_one_scaled() {
    let mut p = point(DataType::Bool, "AB");
    p.register = RegisterKind::Coil;
    assert_eq!(decode_point_bit(&p, true), (Some(1.0), Quality::Good));
    assert_eq!(decode_point_bit(&p, false), (Some(0.0), Quality::Good));
    p.scale = 2.0;
    p.offset = 1.0;
    assert_eq!(decode_point_bit(&p, true), (Some(3.0), Quality::Good));
    p.max = Some(2.0);
    assert_eq!(decode_point_bit(&p, true), (None, Quality::Invalid));
}

// ---------------------------------------------------------------- a whole polled request

fn meter(points: Vec<Point>) -> Meter {
    let requests = batch(&points, DEFAULT_MAX_GAP);
    Meter {
        name: "main-power".into(),
        unit_id: 1,
        poll_interval: Duration::from_secs(5),
        template: None,
        points,
        requests,
        manual: false,
        link: None,
        multiplier: None,
    }
}

fn at(name: &str, kind: RegisterKind, address: u16, ty: DataType, o: &str, scale: f64) -> Point {
    let mut p = point(ty, o);
    p.name = name.into();
    p.register = kind;
    p.address = address;
    p.scale = scale;
    p
}

#[test]
fn decode_registers_reads_every_point_of_a_request() {
    let h = RegisterKind::Holding;
    let m = meter(vec![
        at("energy_import", h, 62, DataType::I32, "ABCD", 0.01),
        at("energy_export", h, 64, DataType::I32, "ABCD", 0.01),
        at("voltage", h, 70, DataType::F32, "CDAB", 1.0),
        at("status", h, 60, DataType::U16, "AB", 1.0),
    ]);
    assert_eq!(m.requests.len(), 1);
    let req = &m.requests[0];
    assert_eq!((req.start, req.count), (60, 12));
    let values = [1234.56, 42.0, 230.5, 3.0];
    let mut words = RegisterBuf::new();
    words.resize(usize::from(req.count), 0).unwrap();
    for (p, v) in m.points.iter().zip(values) {
        let off = usize::from(p.address - req.start);
        encode_point(p, v, &mut words[off..]).unwrap();
    }
    let mut got = vec![None; m.points.len()];
    decode_registers(&m, req, &words, |i, v, q| {
        assert_eq!(q, Quality::Good);
        got[i] = v;
    });
    assert_eq!(got, values.map(Some));
}

#[test]
fn a_short_reply_makes_the_missing_points_comm_errors() {
    let h = RegisterKind::Holding;
    let m = meter(vec![
        at("a", h, 0, DataType::U16, "AB", 1.0),
        at("b", h, 1, DataType::U32, "ABCD", 1.0),
        at("c", h, 3, DataType::F64, "ABCDEFGH", 1.0),
    ]);
    let req = &m.requests[0];
    // The meter sent 4 of 7 registers: a and b are whole, c is cut.
    let mut got = Vec::new();
    decode_registers(&m, req, &[5, 0, 6, 0], |i, v, q| got.push((i, v, q)));
    assert_eq!(
        got,
        [
            (0, Some(5.0), Quality::Good),
            (1, Some(6.0), Quality::Good),
            (2, None, Quality::CommError)
        ]
    );
    let mut n = 0;
    decode_registers(&m, req, &[], |_, v, q| {
        assert_eq!((v, q), (None, Quality::CommError));
        n += 1;
    });
    assert_eq!(n, 3);
}

#[test]
fn decode_bits_reads_coils_and_discretes() {
    let m = meter(vec![
        at("run", RegisterKind::Coil, 3, DataType::Bool, "AB", 1.0),
        at("alarm", RegisterKind::Coil, 0, DataType::Bool, "AB", 1.0),
        at(
            "door",
            RegisterKind::Discrete,
            10,
            DataType::Bool,
            "AB",
            1.0,
        ),
    ]);
    let coils = &m.requests[0];
    assert_eq!(coils.register, RegisterKind::Coil);
    let mut got = Vec::new();
    decode_bits(&m, coils, &[true, false, false, false], |i, v, q| {
        got.push((i, v, q))
    });
    assert_eq!(
        got,
        [(1, Some(1.0), Quality::Good), (0, Some(0.0), Quality::Good)]
    );
    let discretes = &m.requests[1];
    let mut got = Vec::new();
    decode_bits(&m, discretes, &[], |i, v, q| got.push((i, v, q)));
    assert_eq!(got, [(2, None, Quality::CommError)]);
}

// ---------------------------------------------------------------- properties

fn any_order() -> impl Strategy<Value = ByteOrder> {
    prop::sample::select(ByteOrder::ALL.to_vec())
}

fn any_type() -> impl Strategy<Value = DataType> {
    prop::sample::select(DataType::ALL.to_vec())
}

/// encode(v) then decode gives v back exactly.
fn roundtrip(v: f64, ty: DataType, o: ByteOrder) -> Result<(), TestCaseError> {
    let mut out = [0u16; 4];
    encode_raw(v, ty, o, &mut out).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back = decode_raw(&out, ty, o).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(
        back.to_bits(),
        v.to_bits(),
        "{} {:?}: {} -> {:04X?} -> {}",
        ty,
        o,
        v,
        out,
        back
    );
    Ok(())
}

/// decode(words) then encode gives the same words back.
fn words_roundtrip(words: [u16; 4], ty: DataType, o: ByteOrder) -> Result<(), TestCaseError> {
    let n = usize::from(ty.words());
    let v = decode_raw(&words, ty, o).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut out = [0u16; 4];
    encode_raw(v, ty, o, &mut out).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&out[..n], &words[..n], "{} {:?} via {}", ty, o, v);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn u16_roundtrips(v: u16, o in any_order()) {
        roundtrip(f64::from(v), DataType::U16, o)?;
    }

    #[test]
    fn i16_roundtrips(v: i16, o in any_order()) {
        roundtrip(f64::from(v), DataType::I16, o)?;
    }

    #[test]
    fn u32_roundtrips(v: u32, o in any_order()) {
        roundtrip(f64::from(v), DataType::U32, o)?;
    }

    #[test]
    fn i32_roundtrips(v: i32, o in any_order()) {
        roundtrip(f64::from(v), DataType::I32, o)?;
    }

    /// Over the whole u64 range: every value's f64 roundtrips, except those that round up to 2^64.
    #[test]
    fn u64_roundtrips(v: u64, o in any_order()) {
        let x = v as f64;
        if x < 18_446_744_073_709_551_616.0 {
            roundtrip(x, DataType::U64, o)?;
        } else {
            let is_range_error = matches!(
                encode_raw(x, DataType::U64, o, &mut [0; 4]),
                Err(CodecError::OutOfRange { .. })
            );
            prop_assert!(is_range_error);
        }
    }

    #[test]
    fn i64_roundtrips(v: i64, o in any_order()) {
        let x = v as f64;
        if x < 9_223_372_036_854_775_808.0 {
            roundtrip(x, DataType::I64, o)?;
        } else {
            prop_assert!(encode_raw(x, DataType::I64, o, &mut [0; 4]).is_err());
        }
    }

    /// Below 2^53 a 64-bit integer is exact both ways.
    #[test]
    fn exact_64_bit_integers_roundtrip(v in -(1i64 << 53)..=(1i64 << 53), o in any_order()) {
        roundtrip(v as f64, DataType::I64, o)?;
        roundtrip(v.unsigned_abs() as f64, DataType::U64, o)?;
    }

    /// Every f64 bit pattern (all finite values, subnormals, +-0, +-inf) roundtrips bit-exactly.
    #[test]
    fn f64_roundtrips_bit_exact(bits: u64, o in any_order()) {
        let v = f64::from_bits(bits);
        if v.is_nan() {
            let mut out = [0u16; 4];
            encode_raw(v, DataType::F64, o, &mut out).unwrap();
            prop_assert!(decode_raw(&out, DataType::F64, o).unwrap().is_nan());
        } else {
            roundtrip(v, DataType::F64, o)?;
        }
    }

    /// Every f32 the meter can send survives decode then encode with the same bits, and decoding
    /// what was encoded gives the same f32.
    #[test]
    fn f32_roundtrips_bit_exact(bits: u32, o in any_order()) {
        let f = f32::from_bits(bits);
        let mut out = [0u16; 2];
        encode_raw(f64::from(f), DataType::F32, o, &mut out).unwrap();
        let back = decode_raw(&out, DataType::F32, o).unwrap();
        if f.is_nan() {
            prop_assert!(back.is_nan());
        } else {
            prop_assert_eq!((back as f32).to_bits(), bits, "{} -> {}", f, back);
            // The published f64 is within half an f32 step of the f32 value.
            let step = f64::from(f32::from_bits(bits.wrapping_add(1)) - f).abs();
            prop_assert!(!f.is_finite() || (back - f64::from(f)).abs() <= step);
            roundtrip(back, DataType::F32, o)?;
        }
    }

    /// Registers -> value -> registers is the identity wherever the value is exact.
    #[test]
    fn words_roundtrip_for_every_type(words: [u16; 4], ty in any_type(), o in any_order()) {
        let n = usize::from(ty.words());
        let v = decode_raw(&words, ty, o).unwrap();
        match ty {
            DataType::Bool => prop_assert_eq!(v, if words[0] != 0 { 1.0 } else { 0.0 }),
            DataType::F32 | DataType::F64 if v.is_nan() => {}
            DataType::U64 | DataType::I64 if v.abs() > 9_007_199_254_740_992.0 => {}
            _ => words_roundtrip(words, ty, o)?,
        }
        prop_assert!(n <= 4);
    }

    /// A counter in hundredths: every value k/100 the meter can hold comes back as exactly k/100.
    #[test]
    fn scaled_points_roundtrip(k: i32, o in any_order()) {
        let mut p = point(DataType::I32, "ABCD");
        p.byte_order = o;
        p.scale = 0.01;
        let value = f64::from(k) / 100.0;
        let mut out = [0u16; 2];
        encode_point(&p, value, &mut out).unwrap();
        prop_assert_eq!(decode_point(&p, &out), (Some(value), Quality::Good));
    }

    /// Decoding any words of any length never panics: short slices are errors, others are numbers.
    #[test]
    fn decode_never_panics(words in prop::collection::vec(any::<u16>(), 0..8), ty in any_type(), o in any_order()) {
        let r = decode_raw(&words, ty, o);
        prop_assert_eq!(r.is_err(), words.len() < usize::from(ty.words()));
        let p = Point { data_type: ty, byte_order: o, ..point(ty, "ABCD") };
        let (v, q) = decode_point(&p, &words);
        prop_assert_eq!(v.is_some(), q == Quality::Good);
    }

    /// Any layout of points and any reply length: one emit per point, no panic, and points the
    /// reply does not cover are comm errors.
    #[test]
    fn decode_registers_never_panics(
        layout in prop::collection::vec((0u16..200, any_type()), 1..30),
        reply_len in 0usize..140,
        fill: u16,
        kind in prop::sample::select(vec![RegisterKind::Holding, RegisterKind::Input, RegisterKind::Coil]),
    ) {
        let points: Vec<Point> = layout
            .iter()
            .enumerate()
            .map(|(i, &(a, ty))| at(&format!("p{i}"), kind, a, ty, "ABCD", 1.0))
            .collect();
        let m = meter(points);
        let words = vec![fill; reply_len];
        let bits = vec![fill % 2 == 1; reply_len];
        let mut seen = vec![0u32; m.points.len()];
        for req in &m.requests {
            let check = |i: usize, v: Option<f64>, q: Quality, seen: &mut Vec<u32>| {
                seen[i] += 1;
                let p = &m.points[i];
                let width = if kind.is_bit() { 1 } else { usize::from(p.data_type.words()) };
                let covered = usize::from(p.address - req.start) + width <= reply_len;
                assert_eq!(q == Quality::CommError, !covered, "point {i} in {req:?}");
                assert_eq!(v.is_some(), q == Quality::Good);
            };
            if kind.is_bit() {
                decode_bits(&m, req, &bits, |i, v, q| check(i, v, q, &mut seen));
            } else {
                decode_registers(&m, req, &words, |i, v, q| check(i, v, q, &mut seen));
            }
        }
        prop_assert!(seen.iter().all(|&n| n == 1), "{:?}", seen);
    }
}
