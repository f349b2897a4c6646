//! The generated agent config is accepted by the agent's own config validation (what
//! `plantmeter check` runs), for each transport, and its templates expand to the points served.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use plantmeter_common::config;
use plantmeter_sim::{AgentBus, AgentConfigOptions, Scenario, Simulation};

#[test]
fn agent_config_passes_validation_for_every_transport() {
    let sim = Simulation::new(
        Scenario::builtin(),
        None,
        common::frozen("2025-01-01T00:00:00+08:00"),
    )
    .unwrap();
    for bus in [
        AgentBus::Tcp("127.0.0.1:5020".into()),
        AgentBus::RtuOverTcp("127.0.0.1:5021".into()),
        AgentBus::Rtu("/dev/pts/9".into()),
    ] {
        let mut o = AgentConfigOptions::tcp("x");
        o.bus = bus.clone();
        let text = sim.agent_config(&o);
        let plan = config::parse(&text, Path::new("sim-agent.toml"))
            .unwrap_or_else(|e| panic!("{bus:?}: {e}\n{text}"));
        assert_eq!(plan.meters().count(), sim.meters.len());
        for m in &sim.meters {
            let (_, pm) = plan.meter(&m.name).unwrap();
            assert_eq!(pm.unit_id, m.unit_id);
            assert_eq!(pm.points, m.template.points, "{}", m.name);
        }
        let audit = plan.audit.as_ref().unwrap();
        assert_eq!(audit.products[0].point.qualified(), "packer.count_total");
        assert_eq!(audit.inputs.len(), 4);
        assert_eq!(audit.pollutants.len(), 10);
        assert_eq!(audit.products.len(), 2);
        assert_eq!(audit.products[1].factor, 0.8);
        assert_eq!(audit.drivers.len(), 1);
        // The meter tree (three power sub-meters, a dyehouse water meter; sorted by point) and the cooling loop.
        let children: Vec<String> = audit
            .balance
            .nodes
            .iter()
            .filter(|n| n.parent.is_some())
            .map(|n| n.point.meter.clone())
            .collect();
        assert_eq!(
            children,
            ["compressors", "dyehouse-water", "dyehouse", "lighting"]
        );
        assert_eq!(
            audit.balance.reuse[0].point.qualified(),
            "cooling-loop.totalizer"
        );
        assert_eq!(audit.drivers[0].point.qualified(), "weather.temperature");
        let sources: Vec<_> = audit
            .pollutants
            .iter()
            .filter(|p| p.name.as_str() == "SO2")
            .map(|p| (p.source.clone(), p.o2.as_ref().map(|(r, _)| r.qualified())))
            .collect();
        assert_eq!(
            sources,
            [
                (Some("flue_gas".into()), Some("stack.o2".into())),
                (Some("flue_gas_2".into()), Some("stack-2.o2".into()))
            ]
        );
        assert_eq!(audit.levels.len(), 2);
    }
}
