//! Topics: what the park subscribes to, and what an incoming topic is (CONTRACT.md, MQTT).
//! Pure: no broker, no database.

/// What a gateway published, by topic `{prefix}/{site}/{id}/{kind}[/{meter}]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source<'t> {
    pub site: &'t str,
    pub gateway: &'t str,
    pub kind: Kind<'t>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind<'t> {
    Data {
        meter: &'t str,
    },
    Status,
    Health {
        meter: &'t str,
    },
    Meta,
    /// The gateway's answer to a replay request: what it no longer holds.
    Replay,
    /// A retained limit alarm, `alarm/{pollutant}/{source}` or `alarm/facility/{name}`.
    Alarm {
        name: &'t str,
    },
}

/// The subscriptions: data and replay answers through the shared subscription (the instances split
/// them), status, health and meta to every instance (each keeps the gateways' state current).
pub fn filters(prefix: &str, share_group: &str) -> [String; 6] {
    [
        format!("$share/{share_group}/{prefix}/+/+/data/#"),
        format!("{prefix}/+/+/status"),
        format!("{prefix}/+/+/health/+"),
        format!("{prefix}/+/+/meta"),
        format!("$share/{share_group}/{prefix}/+/+/replay"),
        format!("{prefix}/+/+/alarm/#"),
    ]
}

/// Classify an incoming topic; None for anything that is not a gateway topic the park reads.
pub fn classify<'t>(prefix: &str, topic: &'t str) -> Option<Source<'t>> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix('/')?;
    let mut parts = rest.splitn(4, '/');
    let site = parts.next().filter(|s| !s.is_empty())?;
    let gateway = parts.next().filter(|s| !s.is_empty())?;
    let kind = parts.next()?;
    let tail = parts.next();
    let kind = match (kind, tail) {
        ("data", Some(m)) if !m.is_empty() && !m.contains('/') => Kind::Data { meter: m },
        ("health", Some(m)) if !m.is_empty() && !m.contains('/') => Kind::Health { meter: m },
        ("status", None) => Kind::Status,
        ("meta", None) => Kind::Meta,
        ("replay", None) => Kind::Replay,
        ("alarm", Some(m)) if !m.is_empty() && !m.contains(['+', '#']) => Kind::Alarm { name: m },
        _ => return None,
    };
    Some(Source {
        site,
        gateway,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_topics_are_classified() {
        let s = classify("plantmeter", "plantmeter/plant-a/gw-01/data/main-power").expect("data");
        assert_eq!((s.site, s.gateway), ("plant-a", "gw-01"));
        assert_eq!(
            s.kind,
            Kind::Data {
                meter: "main-power"
            }
        );
        assert_eq!(
            classify("a/b", "a/b/s/g/health/boiler").map(|s| s.kind),
            Some(Kind::Health { meter: "boiler" })
        );
        assert_eq!(
            classify("p", "p/s/g/status").map(|s| s.kind),
            Some(Kind::Status)
        );
        assert_eq!(
            classify("p", "p/s/g/meta").map(|s| s.kind),
            Some(Kind::Meta)
        );
    }

    #[test]
    fn other_topics_are_not() {
        for t in [
            "p/s/g/audit",
            "p/s/g/data",
            "p/s/g/data/a/b",
            "q/s/g/status",
            "pp/s/g/status",
            "p//g/status",
            "p/s/g/status/x",
        ] {
            assert_eq!(classify("p", t), None, "{t}");
        }
    }

    #[test]
    fn data_is_shared_and_state_is_not() {
        let f = filters("plantmeter", "park");
        assert_eq!(f[0], "$share/park/plantmeter/+/+/data/#");
        assert!(f[1..4].iter().all(|f| !f.starts_with("$share")));
        assert_eq!(f[5], "plantmeter/+/+/alarm/#");
        assert_eq!(
            classify("p", "p/s/g/alarm/SO2/stack-1").map(|s| s.kind),
            Some(Kind::Alarm {
                name: "SO2/stack-1"
            })
        );
        // A replay answer is stored once, by whichever instance gets it.
        assert_eq!(f[4], "$share/park/plantmeter/+/+/replay");
    }
}
