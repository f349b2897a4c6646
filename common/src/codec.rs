//! The register codec: raw Modbus registers <-> numbers, for every data type and byte order of the
//! contract, with a point's scale, offset and valid range.
//!
//! Byte orders are two independent swaps (see [`ByteOrder`]): `word_swap` puts the low word first
//! (32-bit `CDAB`, 64-bit `GHEFCDAB`), `byte_swap` puts the low byte of each word first (`BA`, `BADC`,
//! `BADCFEHG`); both together give `DCBA` / `HGFEDCBA`. 16-bit values only know the byte swap.
//!
//! 64-bit integers decode to `f64`, which holds integers exactly only up to 2^53
//! (9 007 199 254 740 992); above that the nearest representable `f64` is returned. Totalizers that
//! large are far beyond any real meter's range, so the loss is accepted rather than carried as `i128`.
//!
//! Decoding a polled reply allocates nothing: [`decode_registers`] and [`decode_bits`] walk the
//! request's point indices and call back per point.

use crate::model::Quality;
use crate::plan::{Meter, Point, ReadRequest};
use crate::types::{ByteOrder, DataType};

/// Fixed-capacity buffer for one request's register reply: at most 125 registers (function 03/04).
pub type RegisterBuf = heapless::Vec<u16, 125>;
/// Fixed-capacity buffer for one request's bit reply: at most 2000 coils or discrete inputs (function 01/02).
pub type BitBuf = heapless::Vec<bool, 2000>;

/// What can go wrong when turning registers into numbers or back.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CodecError {
    /// The register slice is shorter than the type's width.
    #[error("{ty} needs {need} register(s), got {got}")]
    TooFewRegisters {
        ty: DataType,
        need: usize,
        got: usize,
    },
    /// The (raw, unscaled) value does not fit the type.
    #[error("value {value} is outside the range of {ty} ({min} ..= {max})")]
    OutOfRange {
        value: f64,
        ty: DataType,
        min: f64,
        max: f64,
    },
    /// NaN or an infinity cannot be stored in an integer or bool register.
    #[error("value {value} cannot be stored as {ty}: only finite numbers fit an integer type")]
    NotFinite { value: f64, ty: DataType },
    /// `encode_point` must divide by the scale; a zero scale maps every raw value to the offset.
    #[error("point {point:?} has scale 0: no register value yields {value}")]
    ZeroScale { point: String, value: f64 },
}

/// Assemble the type's words into one big-endian integer (high byte of the value in the top bits).
fn gather(words: &[u16], n: usize, order: ByteOrder) -> u64 {
    let mut acc: u64 = 0;
    for i in 0..n {
        let idx = if order.word_swap { n - 1 - i } else { i };
        let mut w = words[idx];
        if order.byte_swap {
            w = w.swap_bytes();
        }
        acc = (acc << 16) | u64::from(w);
    }
    acc
}

/// Spread the low `16 * n` bits of `v` over `out[..n]` in the given order (inverse of [`gather`]).
fn scatter(v: u64, n: usize, order: ByteOrder, out: &mut [u16]) {
    for i in 0..n {
        // The i-th most significant word of the value.
        let shift = 16 * (n - 1 - i);
        let mut w = ((v >> shift) & 0xFFFF) as u16;
        if order.byte_swap {
            w = w.swap_bytes();
        }
        let idx = if order.word_swap { n - 1 - i } else { i };
        out[idx] = w;
    }
}

fn check_len(len: usize, ty: DataType) -> Result<usize, CodecError> {
    let need = usize::from(ty.words());
    if len < need {
        Err(CodecError::TooFewRegisters { ty, need, got: len })
    } else {
        Ok(need)
    }
}

/// Decode the raw number (before scale/offset) from `words` (len >= `ty.words()`; extra words are
/// ignored) in byte order `order`. Bool: the register is non-zero (1.0) or zero (0.0).
///
/// u64/i64 above 2^53 in magnitude are rounded to the nearest `f64`. f32 is widened to the `f64`
/// nearest its shortest decimal form (registers 0x4640 0xE6AE give 12345.67, not 12345.669921875);
/// `as f32` gives back exactly the same bits, so nothing the meter sent is lost.
pub fn decode_raw(words: &[u16], ty: DataType, order: ByteOrder) -> Result<f64, CodecError> {
    let n = check_len(words.len(), ty)?;
    let v = gather(words, n, order);
    Ok(match ty {
        DataType::U16 => f64::from(v as u16),
        DataType::I16 => f64::from(v as u16 as i16),
        DataType::U32 => f64::from(v as u32),
        DataType::I32 => f64::from(v as u32 as i32),
        // Precision limit above 2^53 documented at module level.
        DataType::U64 => v as f64,
        DataType::I64 => v as i64 as f64,
        DataType::F32 => f32_to_f64_decimal(f32::from_bits(v as u32)),
        DataType::F64 => f64::from_bits(v),
        DataType::Bool => {
            if v != 0 {
                1.0
            } else {
                0.0
            }
        }
    })
}

/// The inclusive range of raw values a type can store, as `f64`, for error messages and range checks
/// (the u64/i64 bounds are rounded to the nearest `f64`; [`encode_raw`] checks those two exactly).
fn int_range(ty: DataType) -> (f64, f64) {
    match ty {
        DataType::U16 => (0.0, 65_535.0),
        DataType::I16 => (-32_768.0, 32_767.0),
        DataType::U32 => (0.0, 4_294_967_295.0),
        DataType::I32 => (-2_147_483_648.0, 2_147_483_647.0),
        DataType::U64 => (0.0, u64::MAX as f64),
        DataType::I64 => (i64::MIN as f64, i64::MAX as f64),
        DataType::Bool => (0.0, 1.0),
        DataType::F32 => (f64::from(f32::MIN), f64::from(f32::MAX)),
        DataType::F64 => (f64::MIN, f64::MAX),
    }
}

/// Encode a raw number (before scale/offset) into `out[..ty.words()]` in byte order `order`.
///
/// Integers and bool are rounded to the nearest integer (halves away from zero); a value outside the
/// type's range, NaN or an infinity is an error. Floats are stored as they are, NaN and infinities
/// included (the simulator uses them to fake broken sensors); a finite value too large for f32 is an
/// error rather than a silent infinity.
pub fn encode_raw(
    raw: f64,
    ty: DataType,
    order: ByteOrder,
    out: &mut [u16],
) -> Result<(), CodecError> {
    let n = check_len(out.len(), ty)?;
    let out_of_range = || {
        let (min, max) = int_range(ty);
        CodecError::OutOfRange {
            value: raw,
            ty,
            min,
            max,
        }
    };
    let bits: u64 = match ty {
        DataType::F32 => {
            let f = raw as f32;
            if raw.is_finite() && !f.is_finite() {
                return Err(out_of_range());
            }
            u64::from(f.to_bits())
        }
        DataType::F64 => raw.to_bits(),
        _ => {
            if !raw.is_finite() {
                return Err(CodecError::NotFinite { value: raw, ty });
            }
            let r = raw.round();
            match ty {
                DataType::U64 => {
                    // 2^64 is exactly representable; u64::MAX as f64 rounds up to it.
                    if !(0.0..18_446_744_073_709_551_616.0).contains(&r) {
                        return Err(out_of_range());
                    }
                    r as u64
                }
                DataType::I64 => {
                    if !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&r) {
                        return Err(out_of_range());
                    }
                    // Two's complement bits of the signed value.
                    r as i64 as u64
                }
                _ => {
                    let (min, max) = int_range(ty);
                    if r < min || r > max {
                        return Err(out_of_range());
                    }
                    // Every remaining type is at most 32 bits wide, so the i64 holds it exactly.
                    let i = r as i64;
                    match ty {
                        DataType::I16 => u64::from(i as i16 as u16),
                        DataType::I32 => u64::from(i as i32 as u32),
                        _ => i as u64,
                    }
                }
            }
        }
    };
    scatter(bits, n, order, out);
    Ok(())
}

/// Widen an f32 to the f64 closest to its shortest round-tripping decimal, so that a meter showing
/// 12345.67 (f32 bits 0x4640E6AE, exactly 12345.669921875) is published as 12345.67 rather than
/// 12345.669921875. The result converts back (`as f32`) to exactly the same bits; where it would
/// not, or for NaN and infinities, the exact widening is returned. Allocates nothing.
fn f32_to_f64_decimal(f: f32) -> f64 {
    let exact = f64::from(f);
    if !f.is_finite() {
        return exact;
    }
    // serde_json prints a finite f32 as the shortest digits that parse back to the same f32 (a
    // Ryu-type algorithm, several times faster than `{:e}`), in at most ~16 characters, here into
    // a buffer on the stack.
    let mut buf = [0u8; 48];
    let len = {
        let mut w: &mut [u8] = &mut buf;
        if serde_json::to_writer(&mut w, &f).is_err() {
            return exact;
        }
        48 - w.len()
    };
    let parsed = buf
        .get(..len)
        .and_then(|t| core::str::from_utf8(t).ok())
        .and_then(|t| t.parse::<f64>().ok());
    match parsed {
        Some(d) if (d as f32).to_bits() == f.to_bits() => d,
        _ => exact,
    }
}

/// `raw * scale`, but for the usual decimal scales (0.1, 0.01, 0.001, ... and any 1/n) divide by n
/// instead: the quotient is correctly rounded, so 123456 x 0.01 gives 1234.56 and not
/// 1234.5600000000002 (multiplying by the inexact 0.01 misses the nearest double for about one value
/// in seven).
fn apply_scale(raw: f64, scale: f64) -> f64 {
    if scale != 0.0 && scale.abs() < 1.0 {
        let n = (1.0 / scale).round();
        if n.is_finite() && 1.0 / n == scale {
            return raw / n;
        }
    }
    raw * scale
}

/// Largest magnitude a meter reads, in the point's unit, whatever the point's own `min`/`max`: the audit's
/// bound ([`crate::audit::intervals::MAX_ABS_VALUE`], 1e12: 1 000 TWh in kWh, more than any plant meters in its
/// life, and absurd in V, A, m3/h or mg/L). A 32-bit float read in the wrong byte order lands far beyond
/// it more often than not (12.3 A read `CDAB` is -1.07e8, `DCBA` 4.8e37): such a value is refused even on a
/// point without bounds.
pub const MAX_PLAUSIBLE: f64 = crate::audit::intervals::MAX_ABS_VALUE;

/// Smallest magnitude of a raw register number other than 0 that is taken as a reading: the smallest normal
/// 32-bit float (1.2e-38). Below it is a subnormal float: no meter measures that, it is the low word of a float
/// read as its high word (230.5 V read `CDAB` is -2.4e-41). A wider rule (1e-20) was tried and dropped: a
/// concentration decaying toward zero after a burner stops passes through such values in the simulator, and
/// refusing them lost samples (the e2e per-source loads moved by 1-2 %).
pub const MIN_PLAUSIBLE: f64 = f32::MIN_POSITIVE as f64;

/// Why a decoded value is not believed (quality `invalid`).
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum Implausible {
    #[error("{0} is not a number a meter reads")]
    NotFinite(f64),
    /// Beyond [`MAX_PLAUSIBLE`].
    #[error(
        "{0:e} is beyond any meter's reading (magnitude over 1e12): a wrong byte order or type?"
    )]
    BeyondScale(f64),
    /// A raw number so close to zero (magnitude under [`MIN_PLAUSIBLE`], but not 0) that no meter reads it:
    /// the low bytes of a float read as its exponent (230.5 V read `CDAB` is -2.4e-41).
    #[error("{0:e} is not a reading (a subnormal float, nearer to zero than 1.2e-38): a wrong byte order?")]
    Tiny(f64),
    #[error("{0} is below the point's min {1}")]
    BelowMin(f64, f64),
    #[error("{0} is above the point's max {1}")]
    AboveMax(f64, f64),
}

/// Scale and offset a raw number as `point` describes, and judge it: finite, of a magnitude a meter reads
/// ([`MAX_PLAUSIBLE`], and not nearer zero than [`MIN_PLAUSIBLE`]), inside the point's `[min, max]`.
pub fn judge(point: &Point, raw: f64) -> Result<f64, Implausible> {
    if raw != 0.0 && raw.abs() < MIN_PLAUSIBLE {
        return Err(Implausible::Tiny(raw));
    }
    let v = apply_scale(raw, point.scale) + point.offset;
    if !v.is_finite() {
        return Err(Implausible::NotFinite(v));
    }
    if v.abs() > MAX_PLAUSIBLE {
        return Err(Implausible::BeyondScale(v));
    }
    if let Some(min) = point.min.filter(|min| v < *min) {
        return Err(Implausible::BelowMin(v, min));
    }
    if let Some(max) = point.max.filter(|max| v > *max) {
        return Err(Implausible::AboveMax(v, max));
    }
    Ok(v)
}

/// Scale, offset and judge a raw number as `point` describes ([`judge`]).
fn finish(point: &Point, raw: f64) -> (Option<f64>, Quality) {
    match judge(point, raw) {
        Ok(v) => (Some(v), Quality::Good),
        Err(_) => (None, Quality::Invalid),
    }
}

/// Why point `idx` of a register reply was judged invalid (None when it was not, or cannot be decoded):
/// for naming it in the log, once.
pub fn why_invalid(
    meter: &Meter,
    req: &ReadRequest,
    words: &[u16],
    idx: usize,
) -> Option<Implausible> {
    let p = meter.points.get(idx)?;
    let off = offset_in(p, req.start)?;
    let end = off.checked_add(usize::from(p.data_type.words()))?;
    let raw = decode_raw(words.get(off..end)?, p.data_type, p.byte_order).ok()?;
    judge(p, raw).err()
}

/// Decode one point from the registers starting at the point's address (`words[0]` is register
/// `point.address`), in the point's unit: `raw * scale + offset`.
///
/// NaN, infinity, or a value outside `[min, max]` -> `(None, Quality::Invalid)`; a slice shorter than
/// the type -> `(None, Quality::CommError)` (the reply was garbled); otherwise `(Some(v), Quality::Good)`.
pub fn decode_point(point: &Point, words: &[u16]) -> (Option<f64>, Quality) {
    match decode_raw(words, point.data_type, point.byte_order) {
        Ok(raw) => finish(point, raw),
        Err(_) => (None, Quality::CommError),
    }
}

/// A coil or discrete-input bit as a point value: 0 or 1, then scale, offset and range as in
/// [`decode_point`].
pub fn decode_point_bit(point: &Point, bit: bool) -> (Option<f64>, Quality) {
    finish(point, if bit { 1.0 } else { 0.0 })
}

/// Inverse of [`decode_point`]: write into `out[..point.data_type.words()]` the registers that make
/// the meter show `value` (in the point's unit): raw = (value - offset) / scale, encoded as
/// [`encode_raw`] does (integers rounded).
pub fn encode_point(point: &Point, value: f64, out: &mut [u16]) -> Result<(), CodecError> {
    if point.scale == 0.0 {
        return Err(CodecError::ZeroScale {
            point: point.name.clone(),
            value,
        });
    }
    let raw = unscale(value - point.offset, point.scale);
    encode_raw(raw, point.data_type, point.byte_order, out)
}

/// Inverse of [`apply_scale`]: for scale 1/n multiply by n (exact for the integers a counter holds).
fn unscale(v: f64, scale: f64) -> f64 {
    if scale.abs() < 1.0 {
        let n = (1.0 / scale).round();
        if n.is_finite() && 1.0 / n == scale {
            return v * n;
        }
    }
    v / scale
}

/// Offset of `point` within a request starting at `start`, or None when the point lies before it.
fn offset_in(point: &Point, start: u16) -> Option<usize> {
    usize::from(point.address).checked_sub(usize::from(start))
}

/// Decode every point of a register read request (holding/input) from the words the meter returned
/// for it (`words[0]` is register `req.start`), calling `emit(point_index, value, quality)` once per
/// index in `req.points`, in that order. Allocates nothing.
///
/// A reply shorter than a point needs gives that point `Quality::CommError` (a garbled reply), never a
/// panic; so does an index that is not a point of `meter` or a point placed before `req.start`
/// (a plan that does not match the meter).
pub fn decode_registers(
    meter: &Meter,
    req: &ReadRequest,
    words: &[u16],
    mut emit: impl FnMut(usize, Option<f64>, Quality),
) {
    for &idx in &req.points {
        let q = meter.points.get(idx).and_then(|p| {
            let off = offset_in(p, req.start)?;
            let end = off.checked_add(usize::from(p.data_type.words()))?;
            words.get(off..end).map(|w| decode_point(p, w))
        });
        match q {
            Some((v, q)) => emit(idx, v, q),
            None => emit(idx, None, Quality::CommError),
        }
    }
}

/// Decode every point of a bit read request (coil/discrete) from the bits the meter returned for it
/// (`bits[0]` is bit `req.start`), calling `emit(point_index, value, quality)` once per index in
/// `req.points`. Allocates nothing. Missing bits give `Quality::CommError`, as in [`decode_registers`].
pub fn decode_bits(
    meter: &Meter,
    req: &ReadRequest,
    bits: &[bool],
    mut emit: impl FnMut(usize, Option<f64>, Quality),
) {
    for &idx in &req.points {
        let q = meter.points.get(idx).and_then(|p| {
            let off = offset_in(p, req.start)?;
            bits.get(off).map(|&b| decode_point_bit(p, b))
        });
        match q {
            Some((v, q)) => emit(idx, v, q),
            None => emit(idx, None, Quality::CommError),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::types::{PointKind, RegisterKind};

    const ABCD: ByteOrder = ByteOrder {
        word_swap: false,
        byte_swap: false,
    };
    const CDAB: ByteOrder = ByteOrder {
        word_swap: true,
        byte_swap: false,
    };

    fn point(ty: DataType, order: ByteOrder, scale: f64) -> Point {
        Point {
            name: "p".into(),
            register: RegisterKind::Holding,
            address: 0,
            data_type: ty,
            byte_order: order,
            scale,
            offset: 0.0,
            unit: "kWh".into(),
            kind: PointKind::Gauge,
            rollover: None,
            min: None,
            max: None,
        }
    }

    #[test]
    fn gather_and_scatter_are_inverse_for_every_width_and_order() {
        for order in ByteOrder::ALL {
            for n in [1usize, 2, 4] {
                let v: u64 = 0x0123_4567_89AB_CDEF & (u64::MAX >> (64 - 16 * n));
                let mut out = [0u16; 4];
                scatter(v, n, order, &mut out);
                assert_eq!(gather(&out, n, order), v, "n={n} order={order:?}");
            }
        }
    }

    #[test]
    fn cdab_puts_low_word_first() {
        let mut out = [0u16; 2];
        encode_raw(123_456.0, DataType::U32, CDAB, &mut out).unwrap();
        assert_eq!(out, [0xE240, 0x0001]);
        assert_eq!(
            decode_raw(&out, DataType::U32, ABCD).unwrap(),
            3_795_845_121.0
        );
    }

    #[test]
    fn zero_scale_cannot_be_encoded() {
        let p = point(DataType::U16, ABCD, 0.0);
        let mut out = [0u16; 1];
        let err = encode_point(&p, 5.0, &mut out).unwrap_err();
        assert!(err.to_string().contains("scale 0"), "{err}");
    }

    /// A point without bounds still refuses what no meter reads: NaN, a magnitude beyond 1e12 (a float read
    /// in the wrong byte order), a subnormal float (nearer zero than 1.2e-38: its low bytes read as its exponent); a point's
    /// own `min`/`max` refuse the rest. Each says why.
    #[test]
    fn implausible_values_are_invalid_even_without_bounds() {
        let dcba = ByteOrder {
            word_swap: true,
            byte_swap: true,
        };
        let mut w = [0u16; 2];
        let f32_words = |v: f32, out: &mut [u16; 2]| {
            let b = v.to_bits();
            *out = [(b >> 16) as u16, b as u16];
        };
        // 4.8e37 A: the bits of a current read with its bytes reversed.
        f32_words(4.8e37, &mut w);
        let p = point(DataType::F32, ABCD, 1.0);
        assert_eq!(decode_point(&p, &w), (None, Quality::Invalid));
        assert!(matches!(
            judge(&p, 4.8e37f32.into()),
            Err(Implausible::BeyondScale(_))
        ));
        // 230.5 V is 0x4366_8000: read CDAB it is -2.4e-41.
        f32_words(230.5, &mut w);
        assert_eq!(decode_point(&p, &w), (Some(230.5), Quality::Good));
        let swapped = point(DataType::F32, CDAB, 1.0);
        assert_eq!(decode_point(&swapped, &w), (None, Quality::Invalid));
        assert!(
            matches!(
                judge(&swapped, decode_raw(&w, DataType::F32, CDAB).unwrap()),
                Err(Implausible::Tiny(_))
            ),
            "{:?}",
            decode_raw(&w, DataType::F32, CDAB)
        );
        // 12.3 A read DCBA is -4.3e8: plausible in magnitude, refused by the template's bounds.
        f32_words(12.3, &mut w);
        let mut bounded = point(DataType::F32, dcba, 1.0);
        assert!(decode_point(&bounded, &w).1 == Quality::Good);
        bounded.min = Some(-10_000.0);
        bounded.max = Some(10_000.0);
        assert_eq!(decode_point(&bounded, &w), (None, Quality::Invalid));
        let why = judge(&bounded, decode_raw(&w, DataType::F32, dcba).unwrap()).unwrap_err();
        assert!(
            why.to_string().contains("below the point's min -10000"),
            "{why}"
        );
        // NaN, and zero (a real reading) is fine.
        f32_words(f32::NAN, &mut w);
        assert_eq!(decode_point(&p, &w), (None, Quality::Invalid));
        assert_eq!(decode_point(&p, &[0, 0]), (Some(0.0), Quality::Good));
        // A 64-bit counter of 1e13 Wh scaled to kWh is 1e10: fine; unscaled it is beyond any meter.
        let mut big = [0u16; 4];
        encode_raw(1e13, DataType::U64, ABCD, &mut big).unwrap();
        assert_eq!(
            decode_point(&point(DataType::U64, ABCD, 0.001), &big),
            (Some(1e10), Quality::Good)
        );
        assert_eq!(
            decode_point(&point(DataType::U64, ABCD, 1.0), &big).1,
            Quality::Invalid
        );
    }
}
