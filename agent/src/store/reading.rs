//! A reading on its way into the store: one poll of one meter, as the poller hands it to the store
//! writer, which numbers it and encodes the stored record (`payload`) from it and its plan.

use std::sync::Arc;

use plantmeter_common::Plan;

/// What the store writer receives, in order: polls, and (after a config reload, once the old
/// pollers have stopped) the new plan for the audit engine.
pub enum ToWriter {
    Poll(Polled),
    Plan(Arc<Plan>),
}

/// One poll of one meter as the poller hands it over: the meter's names and units stay in the
/// plan (no copies per poll); the writer encodes the stored record from both.
pub struct Polled {
    pub plan: Arc<Plan>,
    /// Bus index in the plan, and meter index in its bus.
    pub bus: usize,
    pub meter: usize,
    /// Poll time, ms since the epoch (the agent's clock).
    pub ts: i64,
    /// Per point of the meter, in order: value and quality (the value counts only when good).
    pub values: Vec<(Option<f64>, plantmeter_common::Quality)>,
}

impl Polled {
    pub(crate) fn meter(&self) -> Option<&plantmeter_common::plan::Meter> {
        self.plan.buses.get(self.bus)?.meters.get(self.meter)
    }

    fn points<'a>(
        &'a self,
        meter: &'a plantmeter_common::plan::Meter,
    ) -> impl Iterator<Item = (&'a str, Option<f64>, &'a str, plantmeter_common::Quality)> + 'a
    {
        meter
            .points
            .iter()
            .zip(self.values.iter())
            .map(|(p, &(value, quality))| {
                let value = if quality == plantmeter_common::Quality::Good {
                    value
                } else {
                    None
                };
                (p.name.as_str(), value, p.unit.as_str(), quality)
            })
    }

    /// Write the meter's name to `name` and append the JSON payload of this poll, numbered
    /// `seq`, to `out` (see `store::payload`); false if the poll names no meter of its plan.
    pub(crate) fn write_record(&self, seq: u64, name: &mut String, out: &mut Vec<u8>) -> bool {
        let Some(meter) = self.meter() else {
            return false;
        };
        name.push_str(&meter.name);
        super::payload::encode_parts(seq, self.ts, &meter.name, self.points(meter), out);
        true
    }

    /// The data message of this poll, numbered `seq`.
    #[cfg(test)]
    fn message(&self, seq: u64) -> Option<plantmeter_common::DataMessage> {
        let meter = self.meter()?;
        Some(plantmeter_common::DataMessage {
            seq,
            ts: self.ts,
            meter: meter.name.clone(),
            points: self
                .points(meter)
                .map(
                    |(name, value, unit, quality)| plantmeter_common::PointValue {
                        name: name.to_string(),
                        value,
                        unit: unit.to_string(),
                        quality,
                    },
                )
                .collect(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_poll_is_stored_as_the_json_of_its_message_with_values_only_when_good() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        let meter = |name: &str| {
            format!(
                "[[meter]]\nname = \"{name}\"\nbus = \"b\"\nunit_id = 1\npoll_interval_s = 1\n\n\
                 [[meter.point]]\nname = \"p\"\nregister = \"holding\"\naddress = 0\ntype = \"u16\"\nunit = \"kW\"\nkind = \"gauge\"\n\n"
            )
        };
        let config = format!(
            "[gateway]\nid = \"gw-01\"\nsite = \"plant-a\"\ndata_dir = \"{}\"\n\n\
             [mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\n\n\
             [[bus]]\nname = \"b\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:5020\"\n\n{}{}",
            dir.path().join("data").display(),
            meter("a"),
            meter("b")
        );
        let plan = Arc::new(plantmeter_common::config::parse(&config, &path).unwrap());
        let poll = |values| Polled {
            plan: plan.clone(),
            bus: 0,
            meter: 1,
            ts: 1_795_248_005_000,
            values,
        };
        let payload = |p: &Polled, seq| {
            let mut out = Vec::new();
            let mut name = String::new();
            p.write_record(seq, &mut name, &mut out)
                .then_some(out)
                .filter(|_| name == "b")
        };
        let good = poll(vec![(Some(1.5), plantmeter_common::Quality::Good)]);
        let m = good.message(42).unwrap();
        assert_eq!(
            (m.seq, m.meter.as_str(), m.points[0].value),
            (42, "b", Some(1.5))
        );
        assert_eq!(payload(&good, 42).unwrap(), m.to_json());
        let bad = poll(vec![(Some(1.5), plantmeter_common::Quality::Invalid)]);
        let m = bad.message(43).unwrap();
        assert_eq!(
            m.points[0].value, None,
            "a value that is not good is not published"
        );
        assert_eq!(payload(&bad, 43).unwrap(), m.to_json());
        let unknown = Polled {
            meter: 9,
            ..poll(vec![])
        };
        assert!(payload(&unknown, 1).is_none() && unknown.message(1).is_none());
    }
}
