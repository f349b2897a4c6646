//! Bounds on what a client sends (pure: no broker, no database). A data message is refused, with
//! the reason, when its gateway is in no `[[plant]]`, it carries more points than any meter has, its
//! ts is outside the import's window (before 2000-01-01 or more than a day ahead), or its seq jumps
//! further past the gateway's last stored seq than a real gateway's can: a forged seq of 10^9 would
//! otherwise open a gap that never closes. (The payload's size is bounded before it is parsed, in
//! `ingest::decode`.)

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::db::Row;

/// The largest data message read (bytes); an agent's poll of one meter is a few KiB.
pub const MAX_PAYLOAD: usize = 256 * 1024;
/// The most points in one data message.
pub const MAX_POINTS: usize = 1000;
/// How far past the last stored seq a message may be, besides the evictions the gateway reported:
/// the agent's seq floor jumps 10,000 after a lost store, ten of them fit.
pub const SEQ_WINDOW: i64 = 100_000;

/// What this instance knows of each gateway, to judge a message.
#[derive(Debug, Default)]
pub struct Bounds {
    /// `site/id` of every gateway in a `[[plant]]`.
    known: HashSet<String>,
    /// The highest seq stored, per (site, gateway).
    last: HashMap<(String, String), i64>,
    /// Evictions the gateway reported in its status.
    evictions: HashMap<(String, String), i64>,
}

impl Bounds {
    pub fn new(cfg: &Config) -> Bounds {
        Bounds {
            known: cfg
                .plants
                .iter()
                .flat_map(|p| p.gateways.iter().cloned())
                .collect(),
            ..Bounds::default()
        }
    }

    /// Why `row` is refused, or Ok.
    pub fn check(&self, row: &Row, now: DateTime<Utc>) -> Result<(), String> {
        let key = (row.site.clone(), row.gateway.clone());
        if !self
            .known
            .contains(&format!("{}/{}", row.site, row.gateway))
        {
            return Err(format!(
                "gateway {}/{} is in no [[plant]] of the park config",
                row.site, row.gateway
            ));
        }
        let n = row.points.as_array().map_or(0, Vec::len);
        if n > MAX_POINTS {
            return Err(format!("{n} points in one message (at most {MAX_POINTS})"));
        }
        let earliest = DateTime::from_timestamp(946_684_800, 0).unwrap_or(DateTime::UNIX_EPOCH);
        if row.ts < earliest || row.ts > now + chrono::Duration::days(1) {
            return Err(format!(
                "ts {} is outside the plausible window (2000-01-01 to a day ahead)",
                row.ts.format("%Y-%m-%dT%H:%M:%S%.3fZ")
            ));
        }
        if row.seq < 0 {
            return Err(format!("seq {} is negative", row.seq));
        }
        if let Some(&last) = self.last.get(&key) {
            let evicted = self.evictions.get(&key).copied().unwrap_or(0).max(0);
            let window = SEQ_WINDOW.saturating_add(evicted);
            if row.seq > last.saturating_add(window) {
                return Err(format!(
                    "seq {} jumps {} past the last stored seq {last} (plausible: {window}, {evicted} evictions reported)",
                    row.seq,
                    row.seq - last
                ));
            }
        }
        Ok(())
    }

    /// `seq` of (site, gateway) is stored.
    pub fn stored(&mut self, site: &str, gateway: &str, seq: i64) {
        let last = self
            .last
            .entry((site.to_string(), gateway.to_string()))
            .or_insert(seq);
        *last = (*last).max(seq);
    }

    /// The gateway reported `n` evictions in its status.
    pub fn evictions(&mut self, site: &str, gateway: &str, n: i64) {
        self.evictions
            .insert((site.to_string(), gateway.to_string()), n);
    }

    /// The gateways in a plant, as (site, id).
    pub fn known(&self) -> impl Iterator<Item = (&str, &str)> {
        self.known.iter().filter_map(|k| k.split_once('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(gw: &str, seq: i64, ts: &str, points: usize) -> Row {
        Row {
            topic: format!("p/plant-a/{gw}/data/m"),
            site: "plant-a".into(),
            gateway: gw.into(),
            seq,
            ts: ts.parse().unwrap_or(DateTime::UNIX_EPOCH),
            meter: "m".into(),
            points: serde_json::Value::Array(vec![serde_json::json!({"name": "p"}); points]),
        }
    }

    fn bounds() -> Bounds {
        Bounds {
            known: ["plant-a/gw-01".to_string()].into(),
            ..Bounds::default()
        }
    }

    #[test]
    fn a_plausible_message_passes_and_each_bound_names_itself() {
        let now: DateTime<Utc> = "2026-11-21T08:00:00Z".parse().unwrap_or_default();
        let mut b = bounds();
        let ok = row("gw-01", 7, "2026-11-21T07:59:00Z", 10);
        assert_eq!(b.check(&ok, now), Ok(()));
        // The first message of a gateway sets where its seqs are.
        assert_eq!(
            b.check(&row("gw-01", 1_000_000_000, "2026-11-21T07:59:00Z", 1), now),
            Ok(())
        );
        b.stored("plant-a", "gw-01", 7);
        for (r, why) in [
            (
                row("gw-09", 8, "2026-11-21T07:59:00Z", 1),
                "in no [[plant]]",
            ),
            (row("gw-01", 8, "2026-11-21T07:59:00Z", 1001), "1001 points"),
            (
                row("gw-01", 8, "1999-12-31T23:59:59Z", 1),
                "outside the plausible window",
            ),
            (
                row("gw-01", 8, "2026-11-22T08:00:01Z", 1),
                "outside the plausible window",
            ),
            (
                row("gw-01", 1_000_000_000, "2026-11-21T07:59:00Z", 1),
                "jumps 999999993 past the last stored seq 7",
            ),
            (row("gw-01", -1, "2026-11-21T07:59:00Z", 1), "negative"),
        ] {
            match b.check(&r, now) {
                Err(e) => assert!(e.contains(why), "{e}"),
                Ok(()) => panic!("{r:?} passed"),
            }
        }
        // Backwards is fine (a replay fills a gap); the window grows with reported evictions.
        assert_eq!(
            b.check(&row("gw-01", 3, "2026-11-21T07:59:00Z", 1), now),
            Ok(())
        );
        assert_eq!(
            b.check(
                &row("gw-01", 7 + SEQ_WINDOW, "2026-11-21T07:59:00Z", 1),
                now
            ),
            Ok(())
        );
        assert!(b
            .check(
                &row("gw-01", 8 + SEQ_WINDOW, "2026-11-21T07:59:00Z", 1),
                now
            )
            .is_err());
        b.evictions("plant-a", "gw-01", 500_000);
        assert_eq!(
            b.check(
                &row("gw-01", 8 + SEQ_WINDOW, "2026-11-21T07:59:00Z", 1),
                now
            ),
            Ok(())
        );
    }
}
