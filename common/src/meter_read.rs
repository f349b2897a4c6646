//! One read of a DL/T 645 or CJ/T 188 meter, without I/O: which requests a poll makes (points
//! sharing a data block or a reply are read together), the request's bytes, and what each frame
//! from the line means for it, follow-up frames included. The agent's link only moves bytes and
//! keeps time.

use heapless::Vec as HVec;

use crate::cjt188;
use crate::dlt645;
use crate::frame68::{Layout, RawFrame};
use crate::model::Quality;
use crate::plan::{LinkPoint, LinkRead, MeterBus, MeterLink, MeterProtocol, Point};

/// A request's bytes (either protocol's fits).
pub type Request = HVec<u8, 32>;

/// The frame layout of a bus.
pub fn layout(bus: &MeterBus) -> Layout {
    match bus.kind {
        MeterProtocol::Dlt645(_) => Layout::Dlt645,
        MeterProtocol::Cjt188 => Layout::Cjt188,
    }
}

/// A point's own data identifier (CJ/T 188's widened).
fn own_di(lp: &LinkPoint) -> u32 {
    match lp {
        LinkPoint::Dlt645 { di, .. } => *di,
        LinkPoint::Cjt188 { di, .. } => u32::from(*di),
    }
}

/// The DL/T 645 block holding a point, if the standard has one.
fn block(kind: MeterProtocol, lp: &LinkPoint) -> Option<(u32, usize)> {
    match (kind, lp) {
        (MeterProtocol::Dlt645(v), LinkPoint::Dlt645 { di, .. }) => dlt645::block_of(v, *di),
        _ => None,
    }
}

/// The requests of one poll. DL/T 645-2007 points sharing a data block (DI1 = FFH: an energy's
/// total and tariffs, the three phase voltages, ...) are one block read when two or more of them
/// are configured; CJ/T 188 points of one DI are one read (901F answers every field at once).
/// Everything else is a read of the point's own DI. Reads come in the order of their first point.
pub fn plan_reads(kind: MeterProtocol, points: &[LinkPoint]) -> Vec<LinkRead> {
    let mut reads: Vec<LinkRead> = Vec::new();
    for (i, lp) in points.iter().enumerate() {
        let shared = match (kind, lp) {
            (MeterProtocol::Cjt188, _) => Some((own_di(lp), 0, false)),
            _ => block(kind, lp).map(|(di, at)| (di, at, true)),
        };
        if let Some((di, at, is_block)) = shared {
            if let Some(r) = reads.iter_mut().find(|r| r.di == di && r.block == is_block) {
                r.items.push((i, at));
                continue;
            }
            let others = points[i + 1..].iter().any(|o| match kind {
                MeterProtocol::Cjt188 => own_di(o) == di,
                _ => block(kind, o).is_some_and(|(d, _)| d == di),
            });
            if others || !is_block {
                reads.push(LinkRead {
                    di,
                    items: vec![(i, at)],
                    block: is_block,
                });
                continue;
            }
        }
        reads.push(single(i, lp));
    }
    reads
}

/// A read of point `index` alone, by its own DI (the fallback of a refused block).
pub fn single(index: usize, lp: &LinkPoint) -> LinkRead {
    LinkRead {
        di: own_di(lp),
        items: vec![(index, 0)],
        block: false,
    }
}

fn copy_address<const N: usize>(from: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let n = N.min(from.len());
    out[..n].copy_from_slice(&from[..n]);
    out
}

/// What one point got from a read.
#[derive(Debug, Clone, PartialEq)]
pub struct PointValue {
    /// Index in `Meter::points`.
    pub point: usize,
    pub value: Option<f64>,
    pub quality: Quality,
    /// Why it is not good, when it is not (bad BCD, wrong unit, out of range).
    pub why: Option<String>,
}

/// What a checked frame from the line is, for a read.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Not a reply (our own request echoed by a converter, another master's traffic): keep
    /// listening.
    Ignore,
    /// More frames follow: send this request (DL/T 645 12H) and keep reading.
    Follow(Request),
    /// The answer: one value per point of the read.
    Values(Vec<PointValue>),
    /// The meter said no: `device_error`, with the error byte (CJ/T 188: first status byte)
    /// and its name.
    Exception { code: u8, why: String },
    /// A block reply without every item asked (a meter with fewer tariffs, or its own idea of
    /// the block): read the points one by one instead.
    Unfit(String),
    /// A reply that does not answer this request (another address, another DI, too short):
    /// `comm_error`.
    Wrong(String),
}

/// One read in progress: its first request, then each frame from the line through `on_frame`
/// until it says something other than `Ignore` or `Follow`.
#[derive(Debug)]
pub struct Session<'a> {
    bus: &'a MeterBus,
    link: &'a MeterLink,
    read: &'a LinkRead,
    points: &'a [Point],
    /// DL/T 645: the answer gathered over its frames.
    collect: Option<dlt645::Collect>,
}

impl<'a> Session<'a> {
    pub fn new(
        bus: &'a MeterBus,
        link: &'a MeterLink,
        read: &'a LinkRead,
        points: &'a [Point],
    ) -> Session<'a> {
        let collect = match bus.kind {
            MeterProtocol::Dlt645(v) => Some(dlt645::Collect::new(
                v,
                copy_address(&link.address),
                read.di,
            )),
            MeterProtocol::Cjt188 => None,
        };
        Session {
            bus,
            link,
            read,
            points,
            collect,
        }
    }

    /// The first request; `ser` is CJ/T 188's sequence byte.
    pub fn request(&self, ser: u8) -> Request {
        let mut out = Request::new();
        match self.bus.kind {
            MeterProtocol::Dlt645(v) => {
                let a = copy_address(&self.link.address);
                let _ = out.extend_from_slice(&dlt645::encode_read(
                    v,
                    &self.bus.preamble,
                    &a,
                    self.read.di,
                ));
            }
            MeterProtocol::Cjt188 => {
                let a = copy_address(&self.link.address);
                let _ = out.extend_from_slice(&cjt188::encode_read(
                    &self.bus.preamble,
                    self.link.meter_type,
                    &a,
                    self.read.di as u16,
                    self.link.di_order,
                    ser,
                ));
            }
        }
        out
    }

    /// What `raw` (a checked frame of the bus's layout) means for this read.
    pub fn on_frame(&mut self, raw: &RawFrame) -> Answer {
        match self.bus.kind {
            MeterProtocol::Dlt645(_) => self.on_dlt645(raw),
            MeterProtocol::Cjt188 => self.on_cjt188(raw),
        }
    }

    fn on_dlt645(&mut self, raw: &RawFrame) -> Answer {
        let Some(f) = dlt645::Frame::parse(raw) else {
            return Answer::Ignore;
        };
        let Some(collect) = self.collect.as_mut() else {
            return Answer::Wrong("not a DL/T 645 read".into());
        };
        if !f.is_reply() {
            return Answer::Ignore;
        }
        match collect.feed(&f) {
            Ok(dlt645::Progress::More(seq)) => {
                let mut out = Request::new();
                let _ = out.extend_from_slice(&collect.follow_request(&self.bus.preamble, seq));
                Answer::Follow(out)
            }
            Ok(dlt645::Progress::Done) => self.dlt645_values(),
            Err(dlt645::ReplyError::Exception(e)) => Answer::Exception {
                code: e.byte,
                why: e.to_string(),
            },
            Err(e) => Answer::Wrong(e.to_string()),
        }
    }

    /// The points' values from the gathered bytes: item `at` of a block is at `at` x its length.
    fn dlt645_values(&self) -> Answer {
        let Some(collect) = &self.collect else {
            return Answer::Wrong("not a DL/T 645 read".into());
        };
        let value = collect.value();
        let mut out = Vec::with_capacity(self.read.items.len());
        for &(pi, at) in &self.read.items {
            let Some(LinkPoint::Dlt645 { spec, .. }) = self.link.points.get(pi) else {
                return Answer::Wrong(format!("point {pi} is not a DL/T 645 point"));
            };
            let len = usize::from(spec.len);
            let from = at * len;
            let Some(bytes) = value.get(from..from + len) else {
                let e = dlt645::ReplyError::Short {
                    got: value.len(),
                    want: from + len,
                };
                return if self.read.block {
                    Answer::Unfit(format!(
                        "block {:08X} holds {} bytes, item {at} needs {}",
                        self.read.di,
                        value.len(),
                        from + len
                    ))
                } else {
                    Answer::Wrong(e.to_string())
                };
            };
            out.push(judge(
                pi,
                self.points.get(pi),
                dlt645::decode_value(spec, bytes).map_err(|e| e.to_string()),
            ));
        }
        if self.read.block && value.len() % usize::from(item_len(self.link, self.read)) != 0 {
            // Items of another length than the standard's: the meter's block is not the one the
            // decimals were taken from, and a value read from it could be wrong.
            return Answer::Unfit(format!(
                "block {:08X} of {} bytes is not a whole number of {}-byte items",
                self.read.di,
                value.len(),
                item_len(self.link, self.read)
            ));
        }
        Answer::Values(out)
    }

    fn on_cjt188(&mut self, raw: &RawFrame) -> Answer {
        let Some(f) = cjt188::Frame::parse(raw) else {
            return Answer::Ignore;
        };
        if f.control & 0x80 == 0 {
            return Answer::Ignore;
        }
        let a = copy_address(&self.link.address);
        let Some(&(first, _)) = self.read.items.first() else {
            return Answer::Wrong("a read of no point".into());
        };
        let Some(LinkPoint::Cjt188 { kind, .. }) = self.link.points.get(first) else {
            return Answer::Wrong(format!("point {first} is not a CJ/T 188 point"));
        };
        let payload = match cjt188::check_read_reply(&a, self.read.di as u16, *kind, &f) {
            Ok(p) => p,
            Err(e @ cjt188::ReplyError::Exception(code, _)) => {
                return Answer::Exception {
                    code,
                    why: e.to_string(),
                }
            }
            Err(e) => return Answer::Wrong(e.to_string()),
        };
        let mut out = Vec::with_capacity(self.read.items.len());
        for &(pi, _) in &self.read.items {
            let (
                Some(LinkPoint::Cjt188 {
                    kind,
                    field,
                    modulus_unit,
                    ..
                }),
                Some(p),
            ) = (self.link.points.get(pi), self.points.get(pi))
            else {
                return Answer::Wrong(format!("point {pi} is not a CJ/T 188 point"));
            };
            let value = cjt188::field_value(*kind, *field, payload, &p.unit)
                .map_err(|e| e.to_string())
                .and_then(|v| {
                    modulus_unit_fits(*modulus_unit, cjt188::field_unit(*kind, *field, payload), p)
                        .map(|()| v)
                });
            out.push(judge(pi, Some(p), value));
        }
        Answer::Values(out)
    }
}

/// A counter's rollover assumed the meter counts in `assumed` (a unit code); a reply counting in
/// another unit rolls over elsewhere, and a rollover taken at the wrong modulus would be a wrong
/// figure: the reading is refused, naming the `rollover` to configure.
fn modulus_unit_fits(assumed: Option<u8>, got: Option<u8>, p: &Point) -> Result<(), String> {
    let (Some(assumed), Some(got)) = (assumed, got) else {
        return Ok(());
    };
    let same = cjt188::unit_name(assumed)
        .and_then(|a| cjt188::convert(1.0, got, a))
        .is_some_and(|f| (f - 1.0).abs() < 1e-12);
    if same {
        return Ok(());
    }
    let rolls = cjt188::convert(1_000_000.0, got, &p.unit);
    Err(format!(
        "the meter counts in {} (unit byte {got:02X}H), not {}: its register rolls over at          1000000 {0}{}, not at the point's rollover {} {}; set rollover in the point's config",
        cjt188::unit_name(got).unwrap_or("an unknown unit"),
        cjt188::unit_name(assumed).unwrap_or("?"),
        rolls.map_or(String::new(), |r| format!(" = {r} {}", p.unit)),
        p.rollover.map_or("?".to_string(), |r| r.to_string()),
        p.unit
    ))
}

/// The length of a block's items (the same for all: the standard's blocks are of one format).
fn item_len(link: &MeterLink, read: &LinkRead) -> u8 {
    read.items
        .first()
        .and_then(|&(pi, _)| match link.points.get(pi) {
            Some(LinkPoint::Dlt645 { spec, .. }) => Some(spec.len.max(1)),
            _ => None,
        })
        .unwrap_or(1)
}

/// A decoded value judged against its point's plausible range.
fn judge(index: usize, point: Option<&Point>, value: Result<f64, String>) -> PointValue {
    let bad = |why: String| PointValue {
        point: index,
        value: None,
        quality: Quality::Invalid,
        why: Some(why),
    };
    match (value, point) {
        (Err(why), _) => bad(why),
        (Ok(v), Some(p)) if p.min.is_some_and(|lo| v < lo) || p.max.is_some_and(|hi| v > hi) => {
            bad(format!(
                "{v} {} outside the plausible range {}..{}",
                p.unit,
                p.min.map_or("".into(), |x| x.to_string()),
                p.max.map_or("".into(), |x| x.to_string())
            ))
        }
        (Ok(v), _) => PointValue {
            point: index,
            value: Some(v),
            quality: Quality::Good,
            why: None,
        },
    }
}

/// Request and reply bytes of a read (the follow-ups' too): what `describe` and the bench count.
pub fn exchange_bytes(bus: &MeterBus, link: &MeterLink, read: &LinkRead) -> (usize, usize) {
    let pre = bus.preamble.len();
    match bus.kind {
        // 68 A(6) 68 C L DI CS 16 (+ the value in the reply: a block's items up to the last one
        // asked; a meter with more tariffs sends more).
        MeterProtocol::Dlt645(v) => {
            let head = pre + 12 + v.di_len();
            let len = usize::from(item_len(link, read));
            let items = read.items.iter().map(|&(_, at)| at + 1).max().unwrap_or(1);
            (head, head + items * len)
        }
        // 68 T A(7) C L DI(2) SER CS 16 (+ the meter kind's payload in the reply).
        MeterProtocol::Cjt188 => {
            let payload = read
                .items
                .first()
                .and_then(|&(pi, _)| match link.points.get(pi) {
                    Some(LinkPoint::Cjt188 { kind, .. }) => Some(kind.payload_len()),
                    _ => None,
                })
                .unwrap_or(0);
            (pre + 16, pre + 16 + payload)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlt645::Version;

    fn dl(di: u32) -> LinkPoint {
        LinkPoint::Dlt645 {
            di,
            spec: dlt645::spec_of(Version::V2007, di).expect("a known DI"),
        }
    }

    #[test]
    fn points_of_one_block_are_one_read_and_lone_ones_keep_their_di() {
        let kind = MeterProtocol::Dlt645(Version::V2007);
        let points = [
            dl(0x0001_0000),
            dl(0x0201_0100),
            dl(0x0001_0100),
            dl(0x0001_0200),
            dl(0x0202_0100),
            dl(0x0201_0300),
            dl(0x0002_0000),
        ];
        let reads = plan_reads(kind, &points);
        let read = |di, items: &[(usize, usize)], block| LinkRead {
            di,
            items: items.to_vec(),
            block,
        };
        assert_eq!(
            reads,
            vec![
                read(0x0001_FF00, &[(0, 0), (2, 1), (3, 2)], true),
                read(0x0201_FF00, &[(1, 0), (5, 2)], true),
                read(0x0202_0100, &[(4, 0)], false),
                read(0x0002_0000, &[(6, 0)], false),
            ]
        );
        // 1997: no blocks (not checked against a meter).
        let v97 = MeterProtocol::Dlt645(Version::V1997);
        let p97 = [
            LinkPoint::Dlt645 {
                di: 0x9010,
                spec: dlt645::spec_of(Version::V1997, 0x9010).expect("known"),
            },
            LinkPoint::Dlt645 {
                di: 0x9011,
                spec: dlt645::spec_of(Version::V1997, 0x9011).expect("known"),
            },
        ];
        assert_eq!(plan_reads(v97, &p97).len(), 2);
    }
}
