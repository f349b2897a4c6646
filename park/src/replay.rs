//! Gaps heal: one instance at a time (the holder of a PostgreSQL advisory lock) looks at every
//! configured gateway's missing seq ranges and asks the gateway for them on `P/cmd/replay`
//! (`{"from": N, "to": M}`), with a growing pause per range (5 s, 10 s, 20 s … at most 10 min)
//! until the range is stored or the gateway answered it gone (`P/replay`, stored by the writer;
//! `status` then shows the range as gone, not missing).
//!
//! Why: a broker restart loses what mosquitto queued for a shared subscription, and what the
//! gateways published before the park subscribed again; the gateways still hold it
//! (`[gateway] retain_delivered_mb`).

use std::collections::HashMap;
use std::time::Duration;

use rumqttc::{AsyncClient, QoS};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::Config;
use crate::db;

const LOCK_REPLAY: i64 = 0x0070_6c61_6e74_6d03;
/// How often the missing ranges are looked at.
const LOOK_EVERY: Duration = Duration::from_secs(2);
const FIRST_PAUSE: Duration = Duration::from_secs(5);
const MAX_PAUSE: Duration = Duration::from_secs(600);
/// Ranges asked per gateway per look (the oldest first); the rest at the next looks.
const RANGES_PER_LOOK: usize = 16;

/// When a range may be asked again, and how many times it was.
struct Asked {
    next: Instant,
    times: u32,
}

/// The pause after the `times`-th request of a range.
fn pause(times: u32) -> Duration {
    FIRST_PAUSE
        .saturating_mul(1u32 << times.saturating_sub(1).min(16))
        .min(MAX_PAUSE)
}

async fn sleep_or_stop(d: Duration, stop: &watch::Receiver<bool>) -> bool {
    let mut waiting = stop.clone();
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = waiting.wait_for(|s| *s) => true,
    }
}

/// Ask for missing ranges until `stop`.
pub async fn run(cfg: Config, mqtt: AsyncClient, stop: watch::Receiver<bool>) {
    let known: Vec<String> = cfg
        .plants
        .iter()
        .flat_map(|p| p.gateways.iter().cloned())
        .collect();
    let mut asked: HashMap<(String, String, [i64; 2]), Asked> = HashMap::new();
    let mut conn: Option<tokio_postgres::Client> = None;
    let mut every = LOOK_EVERY;
    loop {
        if sleep_or_stop(every, &stop).await {
            return;
        }
        if conn.as_ref().is_none_or(|c| c.is_closed()) {
            conn = None;
            let Ok(c) = db::connect(&cfg.database).await else {
                continue;
            };
            // The lock is the session's: it goes with the connection (a killed instance's too).
            let held = c
                .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_REPLAY])
                .await
                .is_ok_and(|r| r.get::<_, bool>(0));
            if !held {
                continue; // another instance asks; look again later
            }
            conn = Some(c);
        }
        let Some(c) = conn.as_ref() else { continue };
        let t0 = Instant::now();
        let status = match db::missing(c, Some(&known)).await {
            // Finding gaps reads the readings from each gateway's mark on (db::missing); should
            // that still be long, the looks space out so that they take at most a twentieth of the time.
            Ok(s) => {
                every = LOOK_EVERY.max(t0.elapsed() * 20).min(MAX_PAUSE);
                s
            }
            Err(e) => {
                tracing::debug!(error = %db::explain(&e), "replay: cannot read the missing ranges");
                conn = None;
                continue;
            }
        };
        let now = Instant::now();
        let mut still = std::collections::HashSet::new();
        for g in &status {
            if !known.contains(&format!("{}/{}", g.site, g.gateway)) {
                continue;
            }
            for range in g.missing.iter().take(RANGES_PER_LOOK) {
                let key = (g.site.clone(), g.gateway.clone(), *range);
                still.insert(key.clone());
                let a = asked.entry(key).or_insert(Asked {
                    next: now,
                    times: 0,
                });
                if a.next > now {
                    continue;
                }
                let topic = format!(
                    "{}/{}/{}/cmd/replay",
                    cfg.mqtt.topic_prefix, g.site, g.gateway
                );
                let body = serde_json::json!({"from": range[0], "to": range[1]}).to_string();
                if mqtt
                    .try_publish(topic, QoS::AtLeastOnce, false, body.into_bytes())
                    .is_err()
                {
                    break; // the client's queue is full: next look
                }
                a.times += 1;
                a.next = now + pause(a.times);
                if a.times == 1 {
                    tracing::info!(gateway = %format!("{}/{}", g.site, g.gateway), from = range[0], to = range[1], "asking the gateway to replay missing seqs");
                }
            }
        }
        asked.retain(|k, _| still.contains(k));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_pause_doubles_up_to_ten_minutes() {
        let p: Vec<u64> = (1..=10).map(|t| super::pause(t).as_secs()).collect();
        assert_eq!(p, [5, 10, 20, 40, 80, 160, 320, 600, 600, 600]);
    }
}
