//! Request batching: gaps bridged or split at `max_gap`, the 125-register / 2000-bit caps, mixed
//! register kinds, identical and inconsistent overlaps, and properties over random point sets.
#![allow(clippy::unwrap_used)]

use plantmeter_common::batching::{batch, inconsistent_overlaps};
use plantmeter_common::plan::{Point, ReadRequest};
use plantmeter_common::{ByteOrder, DataType, PointKind, RegisterKind};
use proptest::prelude::*;

use RegisterKind::{Coil, Discrete, Holding, Input};

fn p(kind: RegisterKind, address: u16, ty: DataType) -> Point {
    Point {
        name: format!("{kind}-{address}-{ty}"),
        register: kind,
        address,
        data_type: ty,
        byte_order: ByteOrder::BIG,
        scale: 1.0,
        offset: 0.0,
        unit: String::new(),
        kind: PointKind::Gauge,
        rollover: None,
        min: None,
        max: None,
    }
}

fn u16_at(address: u16) -> Point {
    p(Holding, address, DataType::U16)
}

/// (kind, start, count) of each request.
fn shape(reqs: &[ReadRequest]) -> Vec<(RegisterKind, u16, u16)> {
    reqs.iter()
        .map(|r| (r.register, r.start, r.count))
        .collect()
}

#[test]
fn a_gap_of_max_gap_is_bridged_one_more_splits() {
    // 0 and 9: registers 1..=8 unused, a gap of 8.
    let reqs = batch(&[u16_at(0), u16_at(9)], 8);
    assert_eq!(shape(&reqs), [(Holding, 0, 10)]);
    assert_eq!(reqs[0].points, [0, 1]);
    // 0 and 10: a gap of 9.
    let reqs = batch(&[u16_at(0), u16_at(10)], 8);
    assert_eq!(shape(&reqs), [(Holding, 0, 1), (Holding, 10, 1)]);
}

#[test]
fn max_gap_zero_merges_only_adjacent_points() {
    let pts = [p(Holding, 0, DataType::F32), u16_at(2), u16_at(4)];
    assert_eq!(shape(&batch(&pts, 0)), [(Holding, 0, 3), (Holding, 4, 1)]);
}

#[test]
fn a_gap_is_measured_from_the_end_of_a_wide_point() {
    // f64 at 100 ends at 104; a u16 at 112 is 8 registers further.
    let pts = [p(Input, 100, DataType::F64), p(Input, 112, DataType::U16)];
    assert_eq!(shape(&batch(&pts, 8)), [(Input, 100, 13)]);
    assert_eq!(shape(&batch(&pts, 7)), [(Input, 100, 4), (Input, 112, 1)]);
}

#[test]
fn at_most_125_registers_per_request() {
    let pts: Vec<Point> = (0..125).map(u16_at).collect();
    assert_eq!(shape(&batch(&pts, 8)), [(Holding, 0, 125)]);
    let pts: Vec<Point> = (0..126).map(u16_at).collect();
    let reqs = batch(&pts, 8);
    assert_eq!(shape(&reqs), [(Holding, 0, 125), (Holding, 125, 1)]);
    assert_eq!(reqs[1].points, [125]);
    // 300 contiguous f32: 62 per request (124 registers), never 125 split across a value.
    let pts: Vec<Point> = (0..300).map(|i| p(Holding, i * 2, DataType::F32)).collect();
    let reqs = batch(&pts, 8);
    assert!(reqs.iter().all(|r| r.count <= 125));
    assert_eq!(reqs.len(), 5);
    assert_eq!(reqs[0].count, 124);
}

#[test]
fn a_64_bit_point_straddling_the_cap_starts_a_new_request() {
    // u16 at 0..=120 (121 registers) then an f64 at 121: ends exactly at 125, fits.
    let mut pts: Vec<Point> = (0..121).map(u16_at).collect();
    pts.push(p(Holding, 121, DataType::F64));
    assert_eq!(shape(&batch(&pts, 8)), [(Holding, 0, 125)]);
    // One more u16 pushes the f64 to 122..126, past the cap: it moves whole to the next request.
    let mut pts: Vec<Point> = (0..122).map(u16_at).collect();
    pts.push(p(Holding, 122, DataType::F64));
    let reqs = batch(&pts, 8);
    assert_eq!(shape(&reqs), [(Holding, 0, 122), (Holding, 122, 4)]);
    assert_eq!(reqs[1].points, [122]);
}

#[test]
fn at_most_2000_bits_per_request_and_gaps_count_bits() {
    let pts: Vec<Point> = (0..2001).map(|a| p(Coil, a, DataType::Bool)).collect();
    assert_eq!(shape(&batch(&pts, 8)), [(Coil, 0, 2000), (Coil, 2000, 1)]);
    let pts = [
        p(Discrete, 0, DataType::Bool),
        p(Discrete, 9, DataType::Bool),
    ];
    assert_eq!(shape(&batch(&pts, 8)), [(Discrete, 0, 10)]);
    // A bit point is one bit wide whatever type it was given.
    let pts = [p(Coil, 0, DataType::F64), p(Coil, 1, DataType::Bool)];
    assert_eq!(shape(&batch(&pts, 0)), [(Coil, 0, 2)]);
}

#[test]
fn kinds_are_never_mixed_and_come_out_coil_discrete_holding_input() {
    let pts = [
        p(Input, 0, DataType::F32),
        p(Holding, 0, DataType::F32),
        p(Discrete, 0, DataType::Bool),
        p(Coil, 0, DataType::Bool),
        p(Holding, 2, DataType::U16),
        p(Input, 2, DataType::U16),
    ];
    let reqs = batch(&pts, 8);
    assert_eq!(
        shape(&reqs),
        [
            (Coil, 0, 1),
            (Discrete, 0, 1),
            (Holding, 0, 3),
            (Input, 0, 3)
        ]
    );
    assert_eq!(reqs[2].points, [1, 4]);
    assert_eq!(reqs[3].points, [0, 5]);
    assert!(inconsistent_overlaps(&pts).is_empty());
}

#[test]
fn identical_points_share_a_request_and_are_consistent() {
    // The same register read as a number and as a flag.
    let pts = [u16_at(5), p(Holding, 5, DataType::Bool), u16_at(6)];
    let reqs = batch(&pts, 8);
    assert_eq!(shape(&reqs), [(Holding, 5, 2)]);
    assert_eq!(reqs[0].points, [0, 1, 2]);
    assert!(inconsistent_overlaps(&pts).is_empty());
}

#[test]
fn inconsistent_overlaps_are_reported_in_pairs() {
    let pts = [
        p(Holding, 10, DataType::U32), // 10..12
        u16_at(11),                    // inside the u32
        p(Holding, 0, DataType::F64),  // 0..4
        u16_at(3),                     // inside the f64
        u16_at(4),                     // adjacent, fine
        p(Input, 11, DataType::U16),   // another table, fine
        p(Holding, 10, DataType::F32), // same start and width as point 0, fine
    ];
    assert_eq!(inconsistent_overlaps(&pts), [(0, 1), (1, 6), (2, 3)]);
    // The batch still covers every point once, and the request reaches the widest end.
    let reqs = batch(&pts, 8);
    assert_eq!(shape(&reqs), [(Holding, 0, 12), (Input, 11, 1)]);
}

#[test]
fn points_at_the_top_of_the_address_space_do_not_overflow() {
    let pts = [
        p(Holding, 65534, DataType::U32),
        p(Holding, 65535, DataType::F64),
        p(Coil, 65535, DataType::Bool),
    ];
    let reqs = batch(&pts, u16::MAX);
    assert_eq!(shape(&reqs), [(Coil, 65535, 1), (Holding, 65534, 5)]);
    assert_eq!(inconsistent_overlaps(&pts), [(0, 1)]);
}

#[test]
fn no_points_no_requests() {
    assert!(batch(&[], 8).is_empty());
    assert!(inconsistent_overlaps(&[]).is_empty());
}

fn width(pt: &Point) -> u32 {
    if pt.register.is_bit() {
        1
    } else {
        u32::from(pt.data_type.words())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every point is covered by exactly one request of its kind, requests respect the caps, and no
    /// two neighbouring requests of a kind could have been merged (so the greedy plan is tight).
    #[test]
    fn every_point_is_covered_once_and_requests_are_tight(
        layout in prop::collection::vec(
            (prop::sample::select(vec![Coil, Discrete, Holding, Input]),
             0u16..600,
             prop::sample::select(DataType::ALL.to_vec())),
            0..120),
        max_gap in 0u16..20,
    ) {
        let pts: Vec<Point> = layout.iter().map(|&(k, a, t)| p(k, a, t)).collect();
        let reqs = batch(&pts, max_gap);
        let mut seen = vec![0; pts.len()];
        for r in &reqs {
            prop_assert!(r.count >= 1 && r.count <= r.register.max_per_request(), "{:?}", r);
            for &i in &r.points {
                seen[i] += 1;
                let pt = &pts[i];
                prop_assert_eq!(pt.register, r.register);
                let (s, e) = (u32::from(pt.address), u32::from(pt.address) + width(pt));
                prop_assert!(s >= u32::from(r.start) && e <= u32::from(r.start) + u32::from(r.count));
            }
        }
        prop_assert!(seen.iter().all(|&n| n == 1), "{:?}", seen);

        // Inconsistently overlapping points (which `check` rejects) may make neighbours overlap.
        let consistent = inconsistent_overlaps(&pts).is_empty();
        let order = [Coil, Discrete, Holding, Input];
        for w in reqs.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            let ka = order.iter().position(|&k| k == a.register);
            let kb = order.iter().position(|&k| k == b.register);
            prop_assert!(ka <= kb);
            if a.register == b.register {
                let a_end = u32::from(a.start) + u32::from(a.count);
                prop_assert!(b.start > a.start);
                prop_assert!(!consistent || u32::from(b.start) >= a_end, "overlapping requests {:?} {:?}", a, b);
                let gap = u32::from(b.start).saturating_sub(a_end);
                // The first point of b either lies beyond the gap or would overflow a's cap.
                let first = &pts[b.points[0]];
                let merged = u32::from(first.address) + width(first) - u32::from(a.start);
                prop_assert!(gap > u32::from(max_gap) || merged > u32::from(a.register.max_per_request()),
                    "{:?} and {:?} could be one request", a, b);
            }
        }
    }

    /// The plan depends on the set of points, not on their order in the config.
    #[test]
    fn order_of_points_does_not_change_the_plan(
        layout in prop::collection::vec((0u16..400, prop::sample::select(DataType::ALL.to_vec())), 0..60),
    ) {
        let pts: Vec<Point> = layout.iter().map(|&(a, t)| p(Holding, a, t)).collect();
        let mut rev = pts.clone();
        rev.reverse();
        prop_assert_eq!(shape(&batch(&pts, 8)), shape(&batch(&rev, 8)));
    }

    /// inconsistent_overlaps agrees with a brute-force check of every pair.
    #[test]
    fn overlaps_match_brute_force(
        layout in prop::collection::vec(
            (prop::sample::select(vec![Coil, Holding, Input]), 0u16..60, prop::sample::select(DataType::ALL.to_vec())),
            0..40),
    ) {
        let pts: Vec<Point> = layout.iter().map(|&(k, a, t)| p(k, a, t)).collect();
        let mut want = Vec::new();
        for i in 0..pts.len() {
            for j in i + 1..pts.len() {
                let (a, b) = (&pts[i], &pts[j]);
                let (sa, ea) = (u32::from(a.address), u32::from(a.address) + width(a));
                let (sb, eb) = (u32::from(b.address), u32::from(b.address) + width(b));
                if a.register == b.register && sa < eb && sb < ea && (sa, ea) != (sb, eb) {
                    want.push((i, j));
                }
            }
        }
        prop_assert_eq!(inconsistent_overlaps(&pts), want);
    }
}
