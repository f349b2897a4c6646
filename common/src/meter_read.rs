//! One read of one point of a DL/T 645 or CJ/T 188 meter, without I/O: the request's bytes, and
//! what a frame from the line means for it. The agent's link only moves bytes and keeps time.

use heapless::Vec as HVec;

use crate::cjt188;
use crate::dlt645;
use crate::frame68::{Layout, RawFrame};
use crate::model::Quality;
use crate::plan::{LinkPoint, MeterBus, MeterLink, MeterProtocol, Point};

/// A request's bytes (either protocol's fits).
pub type Request = HVec<u8, 32>;

/// The frame layout of a bus.
pub fn layout(bus: &MeterBus) -> Layout {
    match bus.kind {
        MeterProtocol::Dlt645(_) => Layout::Dlt645,
        MeterProtocol::Cjt188 => Layout::Cjt188,
    }
}

/// The request reading point `lp` of the meter `link`; `ser` is CJ/T 188's sequence byte.
pub fn request(bus: &MeterBus, link: &MeterLink, lp: &LinkPoint, ser: u8) -> Request {
    let mut out = Request::new();
    match (bus.kind, lp) {
        (MeterProtocol::Dlt645(v), LinkPoint::Dlt645 { di, .. }) => {
            let mut a = [0u8; dlt645::ADDRESS_LEN];
            copy_address(&mut a, &link.address);
            let _ = out.extend_from_slice(&dlt645::encode_read(v, &bus.preamble, &a, *di));
        }
        (MeterProtocol::Cjt188, LinkPoint::Cjt188 { di, .. }) => {
            let mut a = [0u8; cjt188::ADDRESS_LEN];
            copy_address(&mut a, &link.address);
            let _ = out.extend_from_slice(&cjt188::encode_read(
                &bus.preamble,
                link.meter_type,
                &a,
                *di,
                link.di_order,
                ser,
            ));
        }
        // The config pairs points with their bus's protocol: nothing to send otherwise.
        _ => {}
    }
    out
}

fn copy_address(out: &mut [u8], from: &[u8]) {
    let n = out.len().min(from.len());
    out[..n].copy_from_slice(&from[..n]);
}

/// What a checked frame from the line is, for the read of one point.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Not a reply (our own request echoed by a converter, another master's traffic): keep
    /// listening.
    Ignore,
    /// The answer: a value and its quality (`invalid` with why: bad BCD, wrong unit, out of range).
    Value {
        value: Option<f64>,
        quality: Quality,
        why: Option<String>,
    },
    /// The meter said no: `device_error`, with the error byte (CJ/T 188: first status byte)
    /// and its name.
    Exception { code: u8, why: String },
    /// A reply that does not answer this request (another address, another DI, too short):
    /// `comm_error`.
    Wrong(String),
}

/// What `raw` (a checked frame of the bus's layout) means for the read of `point`.
pub fn answer(
    bus: &MeterBus,
    link: &MeterLink,
    lp: &LinkPoint,
    point: &Point,
    raw: &RawFrame,
) -> Answer {
    let value = match (bus.kind, lp) {
        (MeterProtocol::Dlt645(v), LinkPoint::Dlt645 { di, spec }) => {
            let Some(f) = dlt645::Frame::parse(raw) else {
                return Answer::Ignore;
            };
            if !f.is_reply() {
                return Answer::Ignore;
            }
            let mut a = [0u8; dlt645::ADDRESS_LEN];
            copy_address(&mut a, &link.address);
            match dlt645::check_read_reply(v, &a, *di, spec, &f) {
                Ok(bytes) => dlt645::decode_value(spec, bytes).map_err(|e| e.to_string()),
                Err(dlt645::ReplyError::Exception(e)) => {
                    return Answer::Exception {
                        code: e.byte,
                        why: e.to_string(),
                    }
                }
                Err(e) => return Answer::Wrong(e.to_string()),
            }
        }
        (MeterProtocol::Cjt188, LinkPoint::Cjt188 { di, kind, field }) => {
            let Some(f) = cjt188::Frame::parse(raw) else {
                return Answer::Ignore;
            };
            if f.control & 0x80 == 0 {
                return Answer::Ignore;
            }
            let mut a = [0u8; cjt188::ADDRESS_LEN];
            copy_address(&mut a, &link.address);
            match cjt188::check_read_reply(&a, *di, *kind, &f) {
                Ok(payload) => cjt188::field_value(*kind, *field, payload, &point.unit)
                    .map_err(|e| e.to_string()),
                Err(e @ cjt188::ReplyError::Exception(code, _)) => {
                    return Answer::Exception {
                        code,
                        why: e.to_string(),
                    }
                }
                Err(e) => return Answer::Wrong(e.to_string()),
            }
        }
        _ => return Answer::Wrong("point of another protocol".into()),
    };
    match value {
        Err(why) => Answer::Value {
            value: None,
            quality: Quality::Invalid,
            why: Some(why),
        },
        Ok(v) if point.min.is_some_and(|lo| v < lo) || point.max.is_some_and(|hi| v > hi) => {
            Answer::Value {
                value: None,
                quality: Quality::Invalid,
                why: Some(format!(
                    "{v} {} outside the plausible range {}..{}",
                    point.unit,
                    point.min.map_or("".into(), |x| x.to_string()),
                    point.max.map_or("".into(), |x| x.to_string())
                )),
            }
        }
        Ok(v) => Answer::Value {
            value: Some(v),
            quality: Quality::Good,
            why: None,
        },
    }
}
