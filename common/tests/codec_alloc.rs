//! Decoding a polled batch allocates nothing: a counting global allocator watches `decode_registers`
//! over a full 125-register request (every type, every byte order) and `decode_bits` over 2000 coils.
#![allow(unsafe_code, clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use plantmeter_common::batching::{batch, DEFAULT_MAX_GAP};
use plantmeter_common::codec::{decode_bits, decode_registers, encode_point, BitBuf, RegisterBuf};
use plantmeter_common::plan::{Meter, Point};
use plantmeter_common::{ByteOrder, DataType, PointKind, Quality, RegisterKind};

struct Counting;

thread_local! {
    // Per thread, so the test harness's other threads do not count.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

fn point(i: usize, kind: RegisterKind, address: u16, ty: DataType, order: ByteOrder) -> Point {
    Point {
        name: format!("p{i}"),
        register: kind,
        address,
        data_type: ty,
        byte_order: order,
        scale: if ty.is_float() { 1.0 } else { 0.01 },
        offset: 0.0,
        unit: "kWh".into(),
        kind: PointKind::Counter,
        rollover: None,
        min: None,
        max: Some(1e12),
    }
}

fn meter(points: Vec<Point>) -> Meter {
    let requests = batch(&points, DEFAULT_MAX_GAP);
    Meter {
        name: "m".into(),
        unit_id: 1,
        poll_interval: Duration::from_secs(1),
        template: None,
        points,
        requests,
        manual: false,
        link: None,
        multiplier: None,
    }
}

#[test]
fn the_counter_sees_an_allocation() {
    // Without this the zero below could come from a counter that never counts.
    let n = allocations_in(|| {
        let v: Vec<u64> = Vec::with_capacity(16);
        std::hint::black_box(v);
    });
    assert!(n >= 1);
}

#[test]
fn decode_registers_over_125_registers_allocates_nothing() {
    // Pack a 125-register request with every type in every byte order, back to back.
    let types = [
        DataType::F32,
        DataType::I32,
        DataType::U16,
        DataType::F64,
        DataType::U32,
        DataType::I16,
        DataType::I64,
        DataType::U64,
        DataType::Bool,
    ];
    let mut points = Vec::new();
    let mut addr = 0u16;
    let mut i = 0usize;
    'fill: loop {
        for ty in types {
            if addr + ty.words() > 125 {
                break 'fill;
            }
            let order = ByteOrder::ALL[i % 4];
            points.push(point(i, RegisterKind::Holding, addr, ty, order));
            addr += ty.words();
            i += 1;
        }
    }
    let m = meter(points);
    assert_eq!(m.requests.len(), 1);
    let req = &m.requests[0];
    assert!(req.count >= 124, "count {}", req.count);

    let mut words = RegisterBuf::new();
    words.resize(usize::from(req.count), 0).unwrap();
    for p in &m.points {
        let value = if p.data_type == DataType::Bool {
            0.01
        } else {
            123.45
        };
        encode_point(p, value, &mut words[usize::from(p.address)..]).unwrap();
    }

    let mut good = [false; 125];
    let mut emitted = 0usize;
    let n = allocations_in(|| {
        decode_registers(&m, req, &words, |idx, value, q| {
            good[idx] = q == Quality::Good && value.is_some();
            emitted += 1;
        });
    });
    assert_eq!(n, 0, "decode_registers allocated {n} times");
    assert_eq!(emitted, m.points.len());
    assert!(good[..m.points.len()].iter().all(|&g| g), "{good:?}");

    // A short (garbled) reply takes the comm-error path, also without allocating.
    let n = allocations_in(|| decode_registers(&m, req, &words[..10], |_, _, _| {}));
    assert_eq!(n, 0);
}

#[test]
fn decode_bits_over_2000_coils_allocates_nothing() {
    let points: Vec<Point> = (0..2000u16)
        .step_by(3)
        .enumerate()
        .map(|(i, a)| point(i, RegisterKind::Coil, a, DataType::Bool, ByteOrder::BIG))
        .collect();
    let m = meter(points);
    assert_eq!(m.requests.len(), 1);
    let req = &m.requests[0];
    let mut bits = BitBuf::new();
    for b in 0..req.count {
        bits.push(b % 2 == 0).unwrap();
    }
    let mut ones = 0usize;
    let n = allocations_in(|| {
        decode_bits(&m, req, &bits, |_, v, _| {
            if v == Some(0.01) {
                ones += 1;
            }
        });
    });
    assert_eq!(n, 0, "decode_bits allocated {n} times");
    // Addresses 0, 3, 6, ...: the even ones are set.
    assert_eq!(ones, (0..2000).step_by(3).filter(|a| a % 2 == 0).count());
}
