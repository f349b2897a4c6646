//! Request batching: group a meter's points into the fewest Modbus read requests.
//!
//! Points of one register kind are sorted by address and merged into a request while the gap to the
//! request's end is at most `max_gap` registers (bits for coils and discrete inputs) and the request
//! stays within the protocol limit (125 registers, 2000 bits). Reading a few unused registers costs
//! far less than another round trip, especially on a 9600 baud serial line.
//!
//! Addresses are carried as `u32` so a point near 65535 whose width runs past the end of the address
//! space cannot overflow; the configuration validator reports such a point, batching just stays sane.

use crate::plan::{Point, ReadRequest};
use crate::types::RegisterKind;

/// Default `max_gap` on a serial line (RTU, or RTU over TCP through a converter): bridge gaps of up
/// to 8 unused registers (bits) between points. At 9600 baud a register costs about 2 ms on the
/// wire, a separate request about 15 ms of framing and silence plus the meter's turnaround.
pub const DEFAULT_MAX_GAP: u16 = 8;

/// Default `max_gap` on a Modbus TCP bus: 64 unused registers (128 bytes in a reply) cost far less
/// than another round trip. A meter that refuses to read over unmapped registers (exception 02)
/// is read again in contiguous groups by the poller, and stays so.
pub const DEFAULT_MAX_GAP_TCP: u16 = 64;

/// The order requests come out in: bit tables first, then register tables.
const KIND_ORDER: [RegisterKind; 4] = [
    RegisterKind::Coil,
    RegisterKind::Discrete,
    RegisterKind::Holding,
    RegisterKind::Input,
];

/// Width of a point in its table: one bit in a bit table, the type's words in a register table.
pub fn point_width(point: &Point) -> u16 {
    if point.register.is_bit() {
        1
    } else {
        point.data_type.words()
    }
}

/// The half-open range `[start, end)` a point occupies, in `u32` so the end never overflows.
fn span(point: &Point) -> (u32, u32) {
    let start = u32::from(point.address);
    (start, start + u32::from(point_width(point)))
}

/// Group points (of one meter) into the fewest read requests: per register kind, sorted by address,
/// bridging gaps of up to `max_gap` registers (bits for coils/discrete), at most 125 registers / 2000
/// bits per request. Every point is covered by exactly one request (`ReadRequest::points` holds
/// indices into `points`, by address). Deterministic order: by kind (coil, discrete, holding, input),
/// then by start address.
pub fn batch(points: &[Point], max_gap: u16) -> Vec<ReadRequest> {
    let mut out = Vec::new();
    let mut idx: Vec<usize> = Vec::with_capacity(points.len());
    for kind in KIND_ORDER {
        idx.clear();
        idx.extend((0..points.len()).filter(|&i| points[i].register == kind));
        // Sort by address, then width, then config order: stable and deterministic.
        idx.sort_by_key(|&i| (points[i].address, point_width(&points[i]), i));
        let cap = u32::from(kind.max_per_request());
        let gap = u32::from(max_gap);

        let mut cur: Option<(u32, u32, Vec<usize>)> = None;
        for &i in &idx {
            let (s, e) = span(&points[i]);
            if let Some((start, end, members)) = cur.as_mut() {
                let new_end = (*end).max(e);
                if s <= end.saturating_add(gap) && new_end - *start <= cap {
                    *end = new_end;
                    members.push(i);
                    continue;
                }
            }
            if let Some(done) = cur.take() {
                out.push(request(kind, done));
            }
            cur = Some((s, e, vec![i]));
        }
        if let Some(done) = cur.take() {
            out.push(request(kind, done));
        }
    }
    out
}

fn request(kind: RegisterKind, (start, end, points): (u32, u32, Vec<usize>)) -> ReadRequest {
    // start came from a u16 address; end - start <= the kind's cap (<= 2000), or one point's width.
    ReadRequest {
        register: kind,
        start: u16::try_from(start).unwrap_or(u16::MAX),
        count: u16::try_from(end - start).unwrap_or(u16::MAX),
        points,
    }
}

/// Pairs `(i, j)` (with `i < j`, sorted) of point indices whose registers overlap inconsistently: same
/// register kind and overlapping ranges, but not the same start address and width. Points that read
/// exactly the same registers (say, one register read as both u16 and bool) are fine.
pub fn inconsistent_overlaps(points: &[Point]) -> Vec<(usize, usize)> {
    let mut idx: Vec<usize> = (0..points.len()).collect();
    idx.sort_by_key(|&i| (points[i].register, points[i].address, i));
    let mut pairs = Vec::new();
    for (k, &i) in idx.iter().enumerate() {
        let (si, ei) = span(&points[i]);
        for &j in &idx[k + 1..] {
            if points[j].register != points[i].register {
                break;
            }
            let (sj, ej) = span(&points[j]);
            if sj >= ei {
                // Sorted by start: no later point of this kind can overlap point i.
                break;
            }
            if (si, ei) != (sj, ej) {
                pairs.push((i.min(j), i.max(j)));
            }
        }
    }
    pairs.sort_unstable();
    pairs
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::types::{ByteOrder, DataType, PointKind};

    fn p(kind: RegisterKind, address: u16, ty: DataType) -> Point {
        Point {
            name: format!("p{address}"),
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

    #[test]
    fn point_at_top_of_address_space_does_not_overflow() {
        let pts = [p(RegisterKind::Holding, 65_535, DataType::F64)];
        let reqs = batch(&pts, DEFAULT_MAX_GAP);
        assert_eq!(reqs.len(), 1);
        assert_eq!((reqs[0].start, reqs[0].count), (65_535, 4));
        assert!(inconsistent_overlaps(&pts).is_empty());
    }
}
