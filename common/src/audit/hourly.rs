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
///
/// `sum` holds one of three things, told apart by the point's kind and `samples`:
/// - counter: the consumption in the hour, in the point's unit (`samples` stays 0);
/// - gauge with `samples > 0`: the sum of the good samples taken within the hour (the hourly mean is
///   `sum / samples`, the HJ 75 hourly average);
/// - gauge with `samples == 0`: the time integral of the value interpolated linearly between the readings
///   around the hour over its covered time, in the point's unit x hours (kW -> kWh, m3/h -> m3); the hour's
///   mean is `sum x 1 h / covered`. An hour that gets a sample drops this interpolation (see `merge`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HourAgg {
    pub sum: f64,
    /// Gauge: good samples taken within the hour.
    pub samples: u32,
    /// Milliseconds of the hour covered by consecutive good readings (at most one hour).
    pub covered_ms: u32,
    /// Milliseconds of the hour whose counter consumption was apportioned across a polling gap.
    pub apportioned_ms: u32,
    /// Counter rollovers detected by a reading in this hour.
    pub rollovers: u16,
    /// Meter replacements (a drop that is not a rollover) detected by a reading in this hour.
    pub replacements: u16,
    /// Single low counter readings in this hour discarded as glitches (the next reading continued the old
    /// sequence).
    pub glitches: u16,
}

impl HourAgg {
    /// Add another contribution to the same hour. Gauge samples take precedence over interpolation: once an
    /// hour has a sample, interpolated integrals are not added to its sum (their covered time still is), so the
    /// result does not depend on the order in which contributions arrive.
    pub fn merge(&mut self, o: &HourAgg) {
        match (self.samples > 0, o.samples > 0) {
            (true, false) => {}
            (false, true) => {
                self.sum = o.sum;
                self.samples = o.samples;
            }
            (true, true) => {
                self.sum += o.sum;
                self.samples = self.samples.saturating_add(o.samples);
            }
            (false, false) => self.sum += o.sum,
        }
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
        self.glitches = self.glitches.saturating_add(o.glitches);
    }

    /// Take back a counter contribution merged before (a gap's apportioned share, replaced by readings that
    /// fill the gap). The apportioned time is taken back as stored: in whole seconds, rounded up.
    pub fn remove(&mut self, o: &HourAgg) {
        self.sum -= o.sum;
        self.covered_ms = self.covered_ms.saturating_sub(o.covered_ms);
        self.apportioned_ms = self
            .apportioned_ms
            .saturating_sub(o.apportioned_ms.div_ceil(1000) * 1000);
    }

    /// True when at least 45 minutes of the hour are covered by good readings.
    pub fn is_valid(&self) -> bool {
        self.covered_ms >= VALID_HOUR_MS
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        *self == HourAgg::default()
    }

    /// A gauge's mean value over the hour, in the point's unit: the mean of the samples taken within the
    /// hour, else the interpolated mean over the covered time; None when the hour has neither.
    pub fn gauge_mean(&self) -> Option<f64> {
        if self.samples > 0 {
            Some(self.sum / f64::from(self.samples))
        } else if self.covered_ms > 0 {
            Some(self.sum * (HOUR_MS as f64 / f64::from(self.covered_ms)))
        } else {
            None
        }
    }
}

/// The 24 local hours of one point on one local day (the unit in which hours are gathered before they are
/// merged into stored chunks).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DayBlock(pub [HourAgg; 24]);

/// A stored chunk that cannot be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "hourly aggregate chunk of {len} bytes (format {format}) is not a chunk this version reads (formats 2 and 3); \
     was the store written by a newer plantmeter?"
)]
pub struct BadBlock {
    pub len: usize,
    pub format: u8,
}

impl DayBlock {
    /// Take back another block of the same point and day, hour by hour ([`HourAgg::remove`]).
    pub fn remove(&mut self, o: &DayBlock) {
        for (a, b) in self.0.iter_mut().zip(o.0.iter()) {
            a.remove(b);
        }
    }

    /// Merge another block of the same point and day, hour by hour.
    pub fn merge(&mut self, o: &DayBlock) {
        for (a, b) in self.0.iter_mut().zip(o.0.iter()) {
            a.merge(b);
        }
    }
}

/// Local days per stored chunk: 8 days of one point are one sled value of about 3.6 kB, small enough that a
/// sled leaf stays small, large enough that a year of a point is 46 values.
pub const CHUNK_DAYS: i64 = 8;
/// The chunk format this version writes.
pub const CHUNK_FORMAT: u8 = 3;
const CHUNK_HOUR_BYTES: usize = 19;
/// Encoded size of a chunk: a format byte and `CHUNK_DAYS` x 24 hours of 19 bytes.
pub const CHUNK_BYTES: usize = 1 + CHUNK_DAYS as usize * 24 * CHUNK_HOUR_BYTES;
/// The previous format (before gauge samples and glitches): 16 bytes per hour, gauge sums are integrals.
const CHUNK_FORMAT_2: u8 = 2;
const CHUNK2_HOUR_BYTES: usize = 16;
const CHUNK2_BYTES: usize = 1 + CHUNK_DAYS as usize * 24 * CHUNK2_HOUR_BYTES;

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

    /// Compact binary form: format byte 3, then per hour (sum f64, covered_ms u32, apportioned seconds u16
    /// rounded up, samples u16, rollovers u8, replacements u8, glitches u8), little-endian. Counts saturate;
    /// more than 65 535 samples are scaled down to 65 535 keeping their mean.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CHUNK_BYTES);
        out.push(CHUNK_FORMAT);
        for h in self.0.iter().flat_map(|d| d.0.iter()) {
            let (sum, samples) = if h.samples > u32::from(u16::MAX) {
                (h.sum / f64::from(h.samples) * f64::from(u16::MAX), u16::MAX)
            } else {
                (h.sum, h.samples as u16)
            };
            out.extend_from_slice(&sum.to_le_bytes());
            out.extend_from_slice(&h.covered_ms.to_le_bytes());
            let app = h.apportioned_ms.div_ceil(1000).min(u32::from(u16::MAX)) as u16;
            out.extend_from_slice(&app.to_le_bytes());
            out.extend_from_slice(&samples.to_le_bytes());
            out.push(h.rollovers.min(255) as u8);
            out.push(h.replacements.min(255) as u8);
            out.push(h.glitches.min(255) as u8);
        }
        out
    }

    /// Decode format 3, or format 2 (written before gauge samples: its gauge hours read as interpolated
    /// integrals, exactly as they were computed then; it is rewritten as format 3 when next merged).
    pub fn decode(b: &[u8]) -> Result<Chunk, BadBlock> {
        let format = b.first().copied().unwrap_or(0);
        let bad = || BadBlock {
            len: b.len(),
            format,
        };
        let hour_bytes = match (format, b.len()) {
            (CHUNK_FORMAT, CHUNK_BYTES) => CHUNK_HOUR_BYTES,
            (CHUNK_FORMAT_2, CHUNK2_BYTES) => CHUNK2_HOUR_BYTES,
            _ => return Err(bad()),
        };
        let mut c = Chunk::default();
        for (i, h) in c.0.iter_mut().flat_map(|d| d.0.iter_mut()).enumerate() {
            let x = &b[1 + i * hour_bytes..1 + (i + 1) * hour_bytes];
            let mut f = [0u8; 8];
            f.copy_from_slice(&x[0..8]);
            let (samples, rollovers, replacements, glitches) = if format == CHUNK_FORMAT {
                (
                    u32::from(u16::from_le_bytes([x[14], x[15]])),
                    x[16],
                    x[17],
                    x[18],
                )
            } else {
                (0, x[14], x[15], 0)
            };
            *h = HourAgg {
                sum: f64::from_le_bytes(f),
                samples,
                covered_ms: u32::from_le_bytes([x[8], x[9], x[10], x[11]]),
                apportioned_ms: u32::from(u16::from_le_bytes([x[12], x[13]])) * 1000,
                rollovers: u16::from(rollovers),
                replacements: u16::from(replacements),
                glitches: u16::from(glitches),
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
    fn day_block_merges_hour_by_hour() {
        let mut d = DayBlock::default();
        d.0[3] = HourAgg {
            sum: 12.5,
            covered_ms: 3_600_000,
            apportioned_ms: 10,
            rollovers: 1,
            replacements: 2,
            ..HourAgg::default()
        };
        let mut m = d;
        m.merge(&d);
        assert_eq!(m.0[3].sum, 25.0);
        assert_eq!(m.0[3].covered_ms, 3_600_000);
        assert_eq!(m.0[3].rollovers, 2);
    }

    #[test]
    fn samples_take_precedence_over_interpolation_in_any_order() {
        let integral = HourAgg {
            sum: 50.0,
            covered_ms: 1_800_000,
            ..HourAgg::default()
        };
        let sample = |v: f64| HourAgg {
            sum: v,
            samples: 1,
            ..HourAgg::default()
        };
        let mut a = integral;
        a.merge(&sample(120.0));
        a.merge(&integral);
        a.merge(&sample(100.0));
        let mut b = sample(100.0);
        b.merge(&integral);
        b.merge(&sample(120.0));
        b.merge(&integral);
        assert_eq!(a, b);
        assert_eq!(a.gauge_mean(), Some(110.0));
        assert_eq!(a.covered_ms, 3_600_000);
        // Without a sample: the interpolated mean over the covered time.
        assert_eq!(integral.gauge_mean(), Some(100.0));
        assert_eq!(HourAgg::default().gauge_mean(), None);
    }

    #[test]
    fn chunk_round_trips_and_places_days() {
        let mut c = Chunk::default();
        c.0[7].0[23] = HourAgg {
            sum: -0.125,
            samples: 7,
            covered_ms: 3_599_999,
            apportioned_ms: 3_600_000,
            rollovers: 3,
            replacements: 1,
            glitches: 2,
        };
        assert_eq!(Chunk::decode(&c.encode()).unwrap(), c);
        assert_eq!(c.encode().len(), CHUNK_BYTES);
        assert!(Chunk::decode(&[3, 0, 0]).is_err());
        assert_eq!(Chunk::locate(17), (2, 1));
        assert_eq!(Chunk::locate(-1), (-1, 7));
        // Very many samples keep their mean.
        c.0[0].0[0] = HourAgg {
            sum: 2.5 * 100_000.0,
            samples: 100_000,
            ..HourAgg::default()
        };
        let back = Chunk::decode(&c.encode()).unwrap();
        assert_eq!(back.0[0].0[0].samples, 65_535);
        assert!((back.0[0].0[0].gauge_mean().unwrap() - 2.5).abs() < 1e-12);
    }

    /// A chunk written by the previous version (format 2, 16 bytes per hour) reads as it did then.
    #[test]
    fn format_2_chunks_still_read() {
        let mut b = vec![2u8];
        for i in 0..(CHUNK_DAYS as usize * 24) {
            let sum = if i == 5 { 50.0f64 } else { 0.0 };
            let covered: u32 = if i == 5 { 1_800_000 } else { 0 };
            b.extend_from_slice(&sum.to_le_bytes());
            b.extend_from_slice(&covered.to_le_bytes());
            b.extend_from_slice(&(if i == 6 { 3600u16 } else { 0 }).to_le_bytes());
            b.push(u8::from(i == 7));
            b.push(u8::from(i == 8));
        }
        let c = Chunk::decode(&b).unwrap();
        let h = &c.0[0].0;
        assert_eq!(h[5].gauge_mean(), Some(100.0));
        assert_eq!(h[6].apportioned_ms, 3_600_000);
        assert_eq!((h[7].rollovers, h[8].replacements), (1, 1));
        // A format this version does not know is an error, not garbage.
        let mut future = c.encode();
        future[0] = 4;
        let e = Chunk::decode(&future).unwrap_err();
        assert_eq!(e.format, 4);
        assert!(e.to_string().contains("newer plantmeter"), "{e}");
    }
}
