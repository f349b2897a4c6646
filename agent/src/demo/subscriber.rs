//! The demo's own MQTT subscriber: what a plant's SCADA or data platform would see. It subscribes to every
//! topic of the gateway, checks the delivery contract (seq continuity, identical duplicates) and reports
//! health changes. It reconnects and resubscribes by itself when the broker restarts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use plantmeter_common::delivery::DeliveryCheck;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};

/// A change of a meter's retained health (`P/health/{meter}`).
#[derive(Debug, Clone, PartialEq)]
pub struct HealthChange {
    pub meter: String,
    /// `ok` or `failing`.
    pub state: String,
    pub last_error: Option<String>,
}

/// Everything the subscriber counted. The delivery contract's counts (data, distinct,
/// duplicates, backwards, missing seqs) are those of its [`DeliveryCheck`], read through it.
#[derive(Debug, Default)]
pub struct Delivery {
    seqs: DeliveryCheck,
    /// Latest poll time (`ts`) among the data messages received, UTC ms.
    pub max_ts_ms: i64,
    pub health_msgs: u64,
    pub status_msgs: u64,
    pub audit_msgs: u64,
    /// Size of the last `P/audit` payload, bytes.
    pub audit_bytes: usize,
    /// `state` of the last `P/status` payload.
    pub last_status: Option<String>,
    health_state: BTreeMap<String, String>,
    /// Health changes not yet taken by [`Subscriber::take_health_changes`].
    health_changes: Vec<HealthChange>,
    /// Subscribed right now.
    pub subscribed: bool,
    /// Connections to the broker after the first.
    pub reconnects: u64,
    /// Payloads that were not the JSON the contract describes.
    pub malformed: u64,
    /// The first copy of each data payload by seq, once [`Subscriber::keep_payloads`] asked for it.
    kept: Option<BTreeMap<u64, Vec<u8>>>,
}

impl std::ops::Deref for Delivery {
    type Target = DeliveryCheck;

    fn deref(&self) -> &DeliveryCheck {
        &self.seqs
    }
}

impl Delivery {
    fn on_data(&mut self, payload: &[u8]) {
        /// What the checks need of a data payload; the rest is skipped without building a tree
        /// (a bench's subscriber must keep up with the broker, or the broker drops messages).
        #[derive(serde::Deserialize)]
        struct Head<'a> {
            seq: u64,
            #[serde(borrow)]
            ts: std::borrow::Cow<'a, str>,
        }
        let head = serde_json::from_slice::<Head<'_>>(payload).ok();
        let seq = head.as_ref().map(|h| h.seq);
        let ts = head
            .as_ref()
            .and_then(|h| plantmeter_common::model::parse_ts_ms(&h.ts));
        let (Some(seq), Some(ts)) = (seq, ts) else {
            self.malformed += 1;
            return;
        };
        self.max_ts_ms = self.max_ts_ms.max(ts);
        if self.seqs.record(seq, payload) {
            if let Some(k) = self.kept.as_mut() {
                k.insert(seq, payload.to_vec());
            }
        }
    }

    fn on_health(&mut self, meter: &str, payload: &[u8]) {
        self.health_msgs += 1;
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
            self.malformed += 1;
            return;
        };
        let state = v["state"].as_str().unwrap_or("?").to_string();
        if self.health_state.get(meter) != Some(&state) {
            self.health_state.insert(meter.to_string(), state.clone());
            self.health_changes.push(HealthChange {
                meter: meter.to_string(),
                state,
                last_error: v["last_error"].as_str().map(str::to_string),
            });
        }
    }
}

/// A running subscriber; its task ends with the runtime.
#[derive(Clone)]
pub struct Subscriber {
    got: Arc<Mutex<Delivery>>,
}

impl Subscriber {
    /// Connect to `broker`, subscribe to `prefix/#` at QoS 1 and wait (up to 10 s) for the subscription.
    pub async fn start(broker: SocketAddr, prefix: &str) -> anyhow::Result<Subscriber> {
        // Several subscribers of one process must not take each other's session.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let mut o = MqttOptions::new(
            format!(
                "plantmeter-demo-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ),
            broker.ip().to_string(),
            broker.port(),
        );
        o.set_max_packet_size(16 << 20, 1 << 16)
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_session(true);
        let (client, mut events) = AsyncClient::new(o, 64);
        let got = Arc::new(Mutex::new(Delivery::default()));
        let g = got.clone();
        let filter = format!("{prefix}/#");
        let data_prefix = format!("{prefix}/data/");
        let health_prefix = format!("{prefix}/health/");
        let status_topic = format!("{prefix}/status");
        let audit_topic = format!("{prefix}/audit");
        tokio::spawn(async move {
            let mut connections = 0u64;
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        connections += 1;
                        lock(&g).reconnects = connections.saturating_sub(1);
                        // A clean session: subscribe again on every connection.
                        let _ = client.try_subscribe(filter.clone(), QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Incoming::SubAck(_))) => lock(&g).subscribed = true,
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        let mut d = lock(&g);
                        if p.topic.starts_with(&data_prefix) {
                            d.on_data(&p.payload);
                        } else if let Some(meter) = p.topic.strip_prefix(&health_prefix) {
                            d.on_health(meter, &p.payload);
                        } else if p.topic == status_topic {
                            d.status_msgs += 1;
                            d.last_status = serde_json::from_slice::<serde_json::Value>(&p.payload)
                                .ok()
                                .and_then(|v| v["state"].as_str().map(str::to_string));
                        } else if p.topic == audit_topic {
                            d.audit_msgs += 1;
                            d.audit_bytes = p.payload.len();
                        }
                    }
                    Ok(_) => {}
                    Err(_) => {
                        lock(&g).subscribed = false;
                        // The broker is down (the demo restarts it): retry soon, so that this subscriber is
                        // back before the agent's next reconnect attempt.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
        });
        let s = Subscriber { got };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !s.lock().subscribed {
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("the demo's MQTT subscriber could not subscribe at {broker}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(s)
    }

    /// The counters, locked.
    pub fn lock(&self) -> MutexGuard<'_, Delivery> {
        lock(&self.got)
    }

    /// From now on, keep the first copy of each data payload (for a replay: a bench's run is bounded).
    pub fn keep_payloads(&self) {
        self.lock().kept.get_or_insert_with(BTreeMap::new);
    }

    /// The data payloads kept so far, by seq (first copies).
    pub fn take_payloads(&self) -> BTreeMap<u64, Vec<u8>> {
        self.lock()
            .kept
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Health changes since the last call.
    pub fn take_health_changes(&self) -> Vec<HealthChange> {
        std::mem::take(&mut self.lock().health_changes)
    }
}

fn lock(m: &Mutex<Delivery>) -> MutexGuard<'_, Delivery> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: u64, v: f64) -> Vec<u8> {
        format!(r#"{{"seq":{seq},"ts":"2025-01-01T00:00:00.000Z","meter":"m","points":[{{"name":"p","value":{v},"unit":"kWh","quality":"good"}}]}}"#).into_bytes()
    }

    #[test]
    fn counts_duplicates_gaps_and_resends() {
        let mut d = Delivery::default();
        for s in [1, 2, 3, 5, 3, 4, 5] {
            d.on_data(&msg(s, 1.0));
        }
        d.on_data(&msg(2, 9.0));
        assert_eq!(d.data, 8);
        assert_eq!(d.distinct, 5);
        assert_eq!(d.duplicates, 3);
        assert_eq!(d.duplicates_differing, 1);
        assert_eq!(d.backwards, 2);
        assert!(d.missing(6).is_empty());
        assert_eq!(d.missing(8), vec![6, 7]);
        d.on_data(b"not json");
        assert_eq!(d.malformed, 1);
    }

    #[test]
    fn keeps_the_first_copy_of_each_payload_when_asked() {
        let mut d = Delivery::default();
        d.on_data(&msg(1, 1.0));
        d.kept = Some(BTreeMap::new());
        d.on_data(&msg(2, 2.0));
        d.on_data(&msg(2, 9.0));
        d.on_data(&msg(3, 3.0));
        let kept = d.kept.unwrap_or_default();
        assert_eq!(kept.keys().copied().collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(kept[&2], msg(2, 2.0));
    }

    #[test]
    fn health_reports_changes_only() {
        let mut d = Delivery::default();
        d.on_health("gas", br#"{"state":"ok","errors":0}"#);
        d.on_health("gas", br#"{"state":"ok","errors":0}"#);
        d.on_health(
            "gas",
            br#"{"state":"failing","errors":2,"last_error":"timeout"}"#,
        );
        d.on_health("gas", br#"{"state":"ok","errors":2}"#);
        let states: Vec<_> = d.health_changes.iter().map(|c| c.state.as_str()).collect();
        assert_eq!(states, ["ok", "failing", "ok"]);
        assert_eq!(d.health_changes[1].last_error.as_deref(), Some("timeout"));
        assert_eq!(d.health_msgs, 4);
    }
}
