//! The retained `P/meta` message (CONTRACT.md, MQTT): what this gateway reads, so a central consumer
//! (plantmeter-park) knows every point's unit, kind and rollover without the agent's config.
//! Published by the publisher on every connect, and so after every reload (a reload starts a new one).

use plantmeter_common::types::PointKind;
use plantmeter_common::Plan;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// `P/meta`.
pub fn topic(plan: &Plan) -> String {
    format!("{}/meta", plan.mqtt.topic_prefix)
}

/// The payload; `config_sha256` is of the config file as it is on disk now (null when unreadable).
pub fn payload(plan: &Plan) -> Vec<u8> {
    let sha = std::fs::read(&plan.source)
        .ok()
        .map(|bytes| hex(&Sha256::digest(&bytes)));
    let meters: Vec<Value> = plan
        .meters()
        .map(|m| {
            let points: Vec<Value> = m
                .points
                .iter()
                .map(|p| {
                    let rollover = match p.kind {
                        PointKind::Counter => p
                            .rollover
                            .or_else(|| p.data_type.modulus().map(|r| r * p.scale.abs())),
                        PointKind::Gauge => None,
                    };
                    json!({"name": p.name, "unit": p.unit, "kind": p.kind.as_str(), "rollover": rollover})
                })
                .collect();
            // Beyond the contract, for the park's audit: poll_interval_s (the gap rule) and the
            // multiplier with its dated changes (a change is a discontinuity, not consumption).
            let multiplier = m.multiplier.as_ref().map(|x| {
                let changes: Vec<Value> = x
                    .changes
                    .iter()
                    .map(|c| json!({"at": plantmeter_common::model::format_ts_ms(c.at_ms), "value": c.value}))
                    .collect();
                json!({"energy": x.energy, "pt": x.pt, "ct": x.ct, "changes": changes})
            });
            json!({"name": m.name, "manual": m.manual, "poll_interval_s": m.poll_interval.as_secs_f64(),
                   "multiplier": multiplier, "points": points})
        })
        .collect();
    let v = json!({
        "gateway": plan.gateway.id,
        "site": plan.gateway.site,
        "enterprise": plan.gateway.enterprise,
        "version": env!("CARGO_PKG_VERSION"),
        "config_sha256": sha,
        "meters": meters,
        // The replacements recorded here (`plantmeter replace`), so that the park's audit counts them
        // exactly too (beyond the contract; as of this publish: on every connect and reload).
        "replacements": crate::audit::replace::load(&plan.gateway.data_dir),
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_lists_every_point_with_unit_kind_and_rollover() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agent.toml");
        let text = "[gateway]\nid = \"gw-02\"\nsite = \"plant-b\"\ndata_dir = \"d\"\n\
                    [mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\n\
                    [[bus]]\nname = \"b\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:5020\"\n\
                    [[meter]]\nname = \"boiler\"\nunit_id = 1\npoll_interval_s = 5\n\
                    [[meter.point]]\nname = \"gas\"\nregister = \"holding\"\naddress = 0\n\
                    type = \"u32\"\nscale = 0.01\nunit = \"m3\"\nkind = \"counter\"\n\
                    [[meter.point]]\nname = \"temp\"\nregister = \"holding\"\naddress = 2\n\
                    type = \"f32\"\nunit = \"C\"\nkind = \"gauge\"\n";
        std::fs::write(&path, text).expect("write config");
        let plan = plantmeter_common::config::load(&path).expect("valid config");
        let v: Value = serde_json::from_slice(&payload(&plan)).expect("json");
        assert_eq!(topic(&plan), format!("{}/meta", plan.mqtt.topic_prefix));
        assert_eq!(v["gateway"], plan.gateway.id.as_str());
        assert_eq!(v["site"], plan.gateway.site.as_str());
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(
            v["config_sha256"],
            hex(&Sha256::digest(text.as_bytes())).as_str()
        );
        assert_eq!(v["meters"][0]["points"][0]["rollover"], 42_949_672.96);
        assert!(v["meters"][0]["multiplier"].is_null());
        assert_eq!(v["replacements"], json!([]));
        // A recorded replacement goes to the park with the next meta.
        std::fs::create_dir_all(&plan.gateway.data_dir).expect("data dir");
        let rec = r#"{"point":"boiler.gas","at":"2026-03-01T00:00:00.000Z","old_final":12.5,"new_start":0.0}"#;
        std::fs::write(
            plan.gateway.data_dir.join("replacements.jsonl"),
            format!("{rec}\n"),
        )
        .expect("write");
        let v: Value = serde_json::from_slice(&payload(&plan)).expect("json");
        assert_eq!(v["replacements"][0]["point"], "boiler.gas");
        assert_eq!(v["replacements"][0]["old_final"], 12.5);
        let meters = v["meters"].as_array().expect("meters");
        assert_eq!(meters.len(), plan.meters().count());
        for (m, pm) in meters.iter().zip(plan.meters()) {
            assert_eq!(m["name"], pm.name.as_str());
            assert_eq!(m["manual"], false);
            assert_eq!(m["poll_interval_s"], pm.poll_interval.as_secs_f64());
            for (p, pp) in m["points"]
                .as_array()
                .expect("points")
                .iter()
                .zip(&pm.points)
            {
                assert_eq!(p["unit"], pp.unit.as_str());
                assert_eq!(p["kind"], pp.kind.as_str());
                match pp.kind {
                    PointKind::Counter if !pp.data_type.is_float() || pp.rollover.is_some() => {
                        assert!(p["rollover"].as_f64().is_some_and(|r| r > 0.0), "{p}")
                    }
                    PointKind::Gauge => assert!(p["rollover"].is_null()),
                    _ => {}
                }
            }
        }
    }
}
