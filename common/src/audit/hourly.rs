//! Hourly aggregates of one point and the local hour grid they live on.
//!
//! Hours are local hours of the audit's fixed-offset timezone (so a `+05:30` plant still gets whole local
//! hours and days). An hour is identified by its index on that grid: `floor((utc_ms + offset_ms) / 1 h)`;
//! a local day is `floor(hour_index / 24)`, day 0 being 1970-01-01 local.

use chrono::{Duration, FixedOffset, NaiveDate};

/// One hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;
/// A valid hour needs at least 45 minutes covered by consecutive good readings (HJ 75 / HJ 76).
pub const VALID_HOUR_MS: u32 = 45 * 60_000;
/// A valid day needs at least 20 valid hours.
pub const VALID_DAY_HOURS: usize = 20;

/// The local hour grid of a fixed-offset timezone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourGrid {
    offset_ms: i64,
}

impl HourGrid {
    /// The grid of `tz` (local = UTC + offset).
    pub fn new(tz: FixedOffset) -> HourGrid {
        HourGrid {
            offset_ms: i64::from(tz.local_minus_utc()) * 1000,
        }
    }

    /// The UTC grid.
    pub fn utc() -> HourGrid {
        HourGrid { offset_ms: 0 }
    }

    /// Index of the local hour holding the instant `ts_ms` (UTC milliseconds).
    pub fn hour_index(&self, ts_ms: i64) -> i64 {
        (ts_ms + self.offset_ms).div_euclid(HOUR_MS)
    }

    /// UTC milliseconds at which local hour `idx` starts.
    pub fn hour_start(&self, idx: i64) -> i64 {
        idx * HOUR_MS - self.offset_ms
    }

    /// Local day number (days since 1970-01-01 local) of hour `idx`.
    pub fn day_of_hour(idx: i64) -> i64 {
        idx.div_euclid(24)
    }

    /// Local day number of a date.
    pub fn day_of_date(date: NaiveDate) -> i64 {
        (date - epoch_date()).num_days()
    }

    /// The date of local day number `day`.
    pub fn date_of_day(day: i64) -> NaiveDate {
        epoch_date() + Duration::days(day)
    }

    /// The offset from UTC in milliseconds.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms
    }
}

fn epoch_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
}

/// What one point did during one local hour.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HourAgg {
    /// Counter: consumption in the hour, in the point's unit. Gauge: time integral of the value over the
    /// covered time, in the point's unit x hours (kW -> kWh, m3/h -> m3).
    pub sum: f64,
    /// Milliseconds of the hour covered by consecutive good readings (at most one hour).
    pub covered_ms: u32,
    /// Milliseconds of the hour whose counter consumption was apportioned across a polling gap.
    pub apportioned_ms: u32,
    /// Counter rollovers detected by a reading in this hour.
    pub rollovers: u16,
    /// Meter replacements (a drop that is not a rollover) detected by a reading in this hour.
    pub replacements: u16,
}

/// Encoded size of one `HourAgg`.
pub const HOUR_AGG_BYTES: usize = 20;
/// Encoded size of a `DayBlock`: a format byte and 24 hours.
pub const DAY_BLOCK_BYTES: usize = 1 + 24 * HOUR_AGG_BYTES;
const DAY_BLOCK_FORMAT: u8 = 1;

impl HourAgg {
    /// Add another contribution to the same hour.
    pub fn merge(&mut self, o: &HourAgg) {
        self.sum += o.sum;
        self.covered_ms = self
            .covered_ms
            .saturating_add(o.covered_ms)
            .min(HOUR_MS as u32);
        self.apportioned_ms = self
            .apportioned_ms
            .saturating_add(o.apportioned_ms)
            .min(HOUR_MS as u32);
        self.rollovers = self.rollovers.saturating_add(o.rollovers);
        self.replacements = self.replacements.saturating_add(o.replacements);
    }

    /// True when at least 45 minutes of the hour are covered by good readings.
    pub fn is_valid(&self) -> bool {
        self.covered_ms >= VALID_HOUR_MS
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        *self == HourAgg::default()
    }

    fn encode_into(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.sum.to_le_bytes());
        out[8..12].copy_from_slice(&self.covered_ms.to_le_bytes());
        out[12..16].copy_from_slice(&self.apportioned_ms.to_le_bytes());
        out[16..18].copy_from_slice(&self.rollovers.to_le_bytes());
        out[18..20].copy_from_slice(&self.replacements.to_le_bytes());
    }

    fn decode(b: &[u8]) -> HourAgg {
        let mut f = [0u8; 8];
        f.copy_from_slice(&b[0..8]);
        let mut u = [0u8; 4];
        u.copy_from_slice(&b[8..12]);
        let covered_ms = u32::from_le_bytes(u);
        u.copy_from_slice(&b[12..16]);
        let apportioned_ms = u32::from_le_bytes(u);
        HourAgg {
            sum: f64::from_le_bytes(f),
            covered_ms,
            apportioned_ms,
            rollovers: u16::from_le_bytes([b[16], b[17]]),
            replacements: u16::from_le_bytes([b[18], b[19]]),
        }
    }
}

/// The 24 local hours of one point on one local day: the unit of storage (one small fixed value per
/// point and day keeps a year of 200 points at 73 000 values).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DayBlock(pub [HourAgg; 24]);

/// A stored day block that cannot be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "hourly aggregate block of {len} bytes (format {format}) is not a block this version reads"
)]
pub struct BadBlock {
    pub len: usize,
    pub format: u8,
}

impl DayBlock {
    /// Fixed binary form: format byte 1, then 24 x (sum f64, covered_ms u32, apportioned_ms u32,
    /// rollovers u16, replacements u16), little-endian.
    pub fn encode(&self) -> [u8; DAY_BLOCK_BYTES] {
        let mut out = [0u8; DAY_BLOCK_BYTES];
        out[0] = DAY_BLOCK_FORMAT;
        for (i, h) in self.0.iter().enumerate() {
            let at = 1 + i * HOUR_AGG_BYTES;
            h.encode_into(&mut out[at..at + HOUR_AGG_BYTES]);
        }
        out
    }

    pub fn decode(b: &[u8]) -> Result<DayBlock, BadBlock> {
        let format = b.first().copied().unwrap_or(0);
        if b.len() != DAY_BLOCK_BYTES || format != DAY_BLOCK_FORMAT {
            return Err(BadBlock {
                len: b.len(),
                format,
            });
        }
        let mut d = DayBlock::default();
        for (i, h) in d.0.iter_mut().enumerate() {
            let at = 1 + i * HOUR_AGG_BYTES;
            *h = HourAgg::decode(&b[at..at + HOUR_AGG_BYTES]);
        }
        Ok(d)
    }

    /// Merge another block of the same point and day, hour by hour.
    pub fn merge(&mut self, o: &DayBlock) {
        for (a, b) in self.0.iter_mut().zip(o.0.iter()) {
            a.merge(b);
        }
    }
}

/// Local days per stored chunk: 8 days of one point are one sled value of about 3 kB, small enough that a
/// sled leaf of 16 values stays inline, large enough that a year of a point is 46 values.
pub const CHUNK_DAYS: i64 = 8;
const CHUNK_FORMAT: u8 = 2;
const CHUNK_HOUR_BYTES: usize = 16;
/// Encoded size of a chunk: a format byte and `CHUNK_DAYS` x 24 hours of 16 bytes.
pub const CHUNK_BYTES: usize = 1 + CHUNK_DAYS as usize * 24 * CHUNK_HOUR_BYTES;

/// `CHUNK_DAYS` consecutive local days of one point, starting at a day number divisible by `CHUNK_DAYS`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Chunk(pub [DayBlock; CHUNK_DAYS as usize]);

impl Chunk {
    /// The chunk number holding local day `day`, and the day's index in it.
    pub fn locate(day: i64) -> (i64, usize) {
        (
            day.div_euclid(CHUNK_DAYS),
            day.rem_euclid(CHUNK_DAYS) as usize,
        )
    }

    /// Compact binary form: format byte 2, then per hour (sum f64, covered_ms u32, apportioned seconds u16
    /// rounded up, rollovers u8, replacements u8; counts saturate), little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CHUNK_BYTES);
        out.push(CHUNK_FORMAT);
        for h in self.0.iter().flat_map(|d| d.0.iter()) {
            out.extend_from_slice(&h.sum.to_le_bytes());
            out.extend_from_slice(&h.covered_ms.to_le_bytes());
            let app = h.apportioned_ms.div_ceil(1000).min(u32::from(u16::MAX)) as u16;
            out.extend_from_slice(&app.to_le_bytes());
            out.push(h.rollovers.min(255) as u8);
            out.push(h.replacements.min(255) as u8);
        }
        out
    }

    pub fn decode(b: &[u8]) -> Result<Chunk, BadBlock> {
        let format = b.first().copied().unwrap_or(0);
        if b.len() != CHUNK_BYTES || format != CHUNK_FORMAT {
            return Err(BadBlock {
                len: b.len(),
                format,
            });
        }
        let mut c = Chunk::default();
        for (i, h) in c.0.iter_mut().flat_map(|d| d.0.iter_mut()).enumerate() {
            let x = &b[1 + i * CHUNK_HOUR_BYTES..1 + (i + 1) * CHUNK_HOUR_BYTES];
            let mut f = [0u8; 8];
            f.copy_from_slice(&x[0..8]);
            *h = HourAgg {
                sum: f64::from_le_bytes(f),
                covered_ms: u32::from_le_bytes([x[8], x[9], x[10], x[11]]),
                apportioned_ms: u32::from(u16::from_le_bytes([x[12], x[13]])) * 1000,
                rollovers: u16::from(x[14]),
                replacements: u16::from(x[15]),
            };
        }
        Ok(c)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn grid_follows_local_hours_and_days() {
        let tz = FixedOffset::east_opt(8 * 3600).unwrap();
        let g = HourGrid::new(tz);
        // 2026-01-01T00:00+08:00 = 2025-12-31T16:00Z
        let t = chrono::DateTime::parse_from_rfc3339("2025-12-31T16:00:00Z")
            .unwrap()
            .timestamp_millis();
        let h = g.hour_index(t);
        assert_eq!(h % 24, 0);
        let d = HourGrid::day_of_hour(h);
        assert_eq!(
            HourGrid::date_of_day(d),
            NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()
        );
        assert_eq!(g.hour_start(h), t);
        assert_eq!(g.hour_index(t - 1), h - 1);
        // Half-hour offsets still give whole local hours.
        let g = HourGrid::new(FixedOffset::east_opt(5 * 3600 + 1800).unwrap());
        let t = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00+05:30")
            .unwrap()
            .timestamp_millis();
        assert_eq!(g.hour_index(t) % 24, 0);
        assert_eq!(g.hour_start(g.hour_index(t + 1)), t);
    }

    #[test]
    fn day_block_round_trips_and_rejects_garbage() {
        let mut d = DayBlock::default();
        d.0[3] = HourAgg {
            sum: 12.5,
            covered_ms: 3_600_000,
            apportioned_ms: 10,
            rollovers: 1,
            replacements: 2,
        };
        let b = d.encode();
        assert_eq!(DayBlock::decode(&b).unwrap(), d);
        assert!(DayBlock::decode(&b[..100]).is_err());
        let mut m = d;
        m.merge(&d);
        assert_eq!(m.0[3].sum, 25.0);
        assert_eq!(m.0[3].covered_ms, 3_600_000);
        assert_eq!(m.0[3].rollovers, 2);
    }

    #[test]
    fn chunk_round_trips_and_places_days() {
        let mut c = Chunk::default();
        c.0[7].0[23] = HourAgg {
            sum: -0.125,
            covered_ms: 3_599_999,
            apportioned_ms: 3_600_000,
            rollovers: 3,
            replacements: 1,
        };
        assert_eq!(Chunk::decode(&c.encode()).unwrap(), c);
        assert_eq!(c.encode().len(), CHUNK_BYTES);
        assert!(Chunk::decode(&[2, 0, 0]).is_err());
        assert_eq!(Chunk::locate(17), (2, 1));
        assert_eq!(Chunk::locate(-1), (-1, 7));
    }
}
