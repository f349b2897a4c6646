//! The simulation engine, without I/O: the plant, its meters, and the answer to each request PDU.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use plantmeter_common::types::RegisterKind;
use plantmeter_common::Clock;

use crate::fault::{CounterEvent, Fault, FaultWindow};
use crate::meter::{signal_for, Measures, MeterCounts, MeterStats, Signal, SimMeter};
use crate::modbus::{self, Request};
use crate::plant::{tag_of, Plant, Series};
use crate::scenario::{Scenario, ScenarioError};
use plantmeter_common::templates::Template;

/// What a meter does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Answer with this PDU.
    Reply(Vec<u8>),
    /// Answer with this PDU after a real-time delay.
    Delayed(Duration, Vec<u8>),
    /// Say nothing (the master times out).
    Silent,
    /// Close the connection.
    Drop,
    /// Send bytes that are not a valid frame.
    Garbage,
    /// Answer with this PDU, framed under another unit id.
    WrongUnit(Vec<u8>),
    /// Answer with this PDU under another transaction id (Modbus TCP; RTU answers normally).
    WrongTransaction(Vec<u8>),
}

/// The plant and its meters: everything except the sockets.
pub struct Simulation {
    pub scenario: Scenario,
    pub plant: Plant,
    pub meters: Vec<SimMeter>,
    by_unit: [Option<usize>; 256],
    clock: Clock,
    transactions: AtomicU64,
}

impl Simulation {
    /// Build the simulation of a scenario; `seed` overrides the scenario's seed.
    pub fn new(
        scenario: Scenario,
        seed: Option<u64>,
        clock: Clock,
    ) -> Result<Simulation, ScenarioError> {
        let mut scenario = scenario;
        if let Some(s) = seed {
            scenario.plant.seed = s;
        }
        let plant = Plant::new(scenario.plant.clone());
        let mut meters = Vec::with_capacity(scenario.meters.len());
        let mut by_unit = [None; 256];
        for (idx, m) in scenario.meters.iter().enumerate() {
            let template = Template::builtin(&m.template)
                .map_err(|e| ScenarioError(format!("meter {:?}: {e}", m.name)))?;
            let product = scenario
                .plant
                .products
                .iter()
                .position(|p| p.name == m.measures);
            let (series, unit, stream_name) = if m.measures == "production" {
                (
                    Series::Production,
                    scenario.production_unit.clone(),
                    "production".to_string(),
                )
            } else if let Some(k) = product {
                (
                    Series::Product(k),
                    scenario.production_unit.clone(),
                    "production".to_string(),
                )
            } else if m.measures == "weather" {
                (Series::Temperature, "C".to_string(), "weather".to_string())
            } else {
                let i = scenario
                    .plant
                    .streams
                    .iter()
                    .position(|s| s.name == m.measures)
                    .ok_or_else(|| {
                        ScenarioError(format!(
                            "meter {:?}: unknown stream {:?}",
                            m.name, m.measures
                        ))
                    })?;
                let s = &scenario.plant.streams[i];
                (Series::Stream(i), s.unit.clone(), s.name.clone())
            };
            let pollutants: Vec<(usize, &str)> = match series {
                Series::Stream(i) => scenario
                    .plant
                    .pollutants
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.stream == i)
                    .map(|(j, p)| (j, p.name.as_str()))
                    .collect(),
                _ => Vec::new(),
            };
            let signals: Vec<Signal> = template
                .points
                .iter()
                .map(|p| signal_for(p, &stream_name, &unit, &pollutants, m.o2_mean))
                .collect();
            let mut meter = SimMeter {
                name: m.name.clone(),
                unit_id: m.unit_id,
                template,
                measures: Measures {
                    series,
                    share: m.share,
                },
                counter_start: m.counter_start,
                signals,
                faults: std::sync::Mutex::new(m.faults.clone()),
                stats: MeterStats::default(),
                tag: tag_of(&m.name),
            };
            if let Some(t) = m.rollover_at {
                // Choose the start so that the main counter reaches its modulus exactly at t.
                let main = meter
                    .signals
                    .iter()
                    .zip(&meter.template.points)
                    .find_map(|(s, p)| match s {
                        Signal::Counter { factor } => p.rollover.map(|m| (m, *factor)),
                        _ => None,
                    });
                let Some((modulus, factor)) = main else {
                    return Err(ScenarioError(format!(
                        "meter {:?}: rollover_at needs a counter with a modulus (rollover)",
                        m.name
                    )));
                };
                let used = m.share * plant.integral(series, t) * factor;
                meter.counter_start = (modulus - used).rem_euclid(modulus);
            }
            by_unit[usize::from(m.unit_id)] = Some(idx);
            meters.push(meter);
        }
        Ok(Simulation {
            scenario,
            plant,
            meters,
            by_unit,
            clock,
            transactions: AtomicU64::new(0),
        })
    }

    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// A meter by name.
    pub fn meter(&self, name: &str) -> Option<&SimMeter> {
        self.meters.iter().find(|m| m.name == name)
    }

    /// A meter by unit id.
    pub fn meter_by_unit(&self, unit: u8) -> Option<&SimMeter> {
        self.by_unit[usize::from(unit)].map(|i| &self.meters[i])
    }

    /// Requests answered or refused by all meters since start.
    pub fn transactions(&self) -> u64 {
        self.transactions.load(Ordering::Relaxed)
    }

    /// What a point shows at `t_ms` (in the point's unit), faults aside; None for an unknown name.
    pub fn point_value(&self, meter: &str, point: &str, t_ms: i64) -> Option<f64> {
        let m = self.meter(meter)?;
        let i = m.template.points.iter().position(|p| p.name == point)?;
        Some(m.value(&self.plant, i, t_ms))
    }

    /// Wire counts of one meter.
    pub fn stats(&self, meter: &str) -> Option<MeterCounts> {
        self.meter(meter).map(|m| m.stats.snapshot())
    }

    /// The fault plan of a meter by name.
    fn faults_of(
        &self,
        meter: &str,
    ) -> Result<std::sync::MutexGuard<'_, crate::fault::FaultPlan>, String> {
        self.meter(meter)
            .map(SimMeter::faults)
            .ok_or_else(|| format!("no simulated meter named {meter:?}"))
    }

    /// Add a fault window `[from_ms, to_ms)` of virtual time to a meter.
    pub fn inject_window(
        &self,
        meter: &str,
        fault: Fault,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<(), String> {
        let mut f = self.faults_of(meter)?;
        f.windows.push(FaultWindow {
            from_ms,
            to_ms,
            fault,
        });
        Ok(())
    }

    /// Switch the equipment a meter measures off over `[from_ms, to_ms)` of virtual time (the
    /// meter keeps answering: power 0, counters still).
    pub fn switch_off(&self, meter: &str, from_ms: i64, to_ms: i64) -> Result<(), String> {
        let mut f = self.faults_of(meter)?;
        f.off.push((from_ms, to_ms));
        Ok(())
    }

    /// Remove every fault window and random fault of a meter (counter events stay: they are history).
    pub fn clear_faults(&self, meter: &str) -> Result<(), String> {
        let mut f = self.faults_of(meter)?;
        f.windows.clear();
        f.random.clear();
        Ok(())
    }

    /// Replace a meter at `t_ms`: its main counters restart at `start`.
    pub fn replace_meter_at(&self, meter: &str, t_ms: i64, start: f64) -> Result<(), String> {
        let mut f = self.faults_of(meter)?;
        f.add_event(t_ms, CounterEvent::Replace { start });
        Ok(())
    }

    /// Answer one request PDU addressed to `unit` now. `gateway`: a TCP gateway answers exception
    /// 0B for a unit id without a meter; on a serial line nobody answers.
    pub fn handle(&self, unit: u8, pdu: &[u8], gateway: bool) -> Outcome {
        self.handle_at(unit, pdu, gateway, self.clock.now_ms())
    }

    /// [`Simulation::handle`] at a given virtual instant.
    pub fn handle_at(&self, unit: u8, pdu: &[u8], gateway: bool, t_ms: i64) -> Outcome {
        self.transactions.fetch_add(1, Ordering::Relaxed);
        let function = pdu.first().copied().unwrap_or(0);
        let Some(m) = self.meter_by_unit(unit) else {
            if gateway && unit != 0 {
                return Outcome::Reply(modbus::exception_pdu(
                    function,
                    modbus::GATEWAY_TARGET_FAILED,
                ));
            }
            return Outcome::Silent;
        };
        let n = m.stats.requests.fetch_add(1, Ordering::Relaxed);
        let active = {
            let f = m.faults();
            f.active(self.plant.spec().seed, m.tag, n, t_ms)
        };
        let (mut t_eval, mut nan, mut delay, mut strict) = (t_ms, false, None, false);
        let mut hostile = None;
        match active {
            Some((Fault::Timeout, _)) => {
                m.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                return Outcome::Silent;
            }
            Some((Fault::Drop, _)) => {
                m.stats.drops.fetch_add(1, Ordering::Relaxed);
                return Outcome::Drop;
            }
            Some((Fault::Garbage, _)) => {
                m.stats.garbage.fetch_add(1, Ordering::Relaxed);
                return Outcome::Garbage;
            }
            Some((Fault::Exception(code), _)) => {
                m.stats.exceptions.fetch_add(1, Ordering::Relaxed);
                return Outcome::Reply(modbus::exception_pdu(function, code));
            }
            Some((Fault::Slow(d), _)) => delay = Some(d),
            Some((Fault::Stuck, from)) => t_eval = from,
            Some((Fault::Nan, _)) => nan = true,
            Some((Fault::StrictMap, _)) => strict = true,
            Some((
                f @ (Fault::ExtraRegisters
                | Fault::ShortReply
                | Fault::WrongUnit
                | Fault::WrongFunction
                | Fault::WrongTransaction),
                _,
            )) => hostile = Some(f),
            None => {}
        }
        let reply = match modbus::parse_request(pdu) {
            Err((f, code)) => Err((f, code)),
            Ok(Request::Other { function }) => Err((function, modbus::ILLEGAL_FUNCTION)),
            Ok(Request::Read {
                function,
                start,
                count,
            }) => {
                let kind = match function {
                    1 => RegisterKind::Coil,
                    2 => RegisterKind::Discrete,
                    3 => RegisterKind::Holding,
                    _ => RegisterKind::Input,
                };
                if strict && !m.fully_mapped(kind, start, count) {
                    Err((function, modbus::ILLEGAL_DATA_ADDRESS))
                } else if kind.is_bit() {
                    m.read_bits(&self.plant, kind, start, count, t_eval)
                        .map(|b| modbus::bits_pdu(function, &b))
                        .map_err(|c| (function, c))
                } else {
                    m.read_registers(&self.plant, kind, start, count, t_eval, nan)
                        .map(|w| modbus::registers_pdu(function, &w))
                        .map_err(|c| (function, c))
                }
            }
        };
        let pdu = match reply {
            Ok(p) => {
                m.stats.replies.fetch_add(1, Ordering::Relaxed);
                p
            }
            Err((f, code)) => {
                m.stats.exceptions.fetch_add(1, Ordering::Relaxed);
                modbus::exception_pdu(f, code)
            }
        };
        match hostile {
            Some(Fault::ExtraRegisters) => return Outcome::Reply(modbus::with_extra_data(&pdu)),
            Some(Fault::ShortReply) => return Outcome::Reply(modbus::with_short_data(&pdu)),
            Some(Fault::WrongFunction) => return Outcome::Reply(modbus::with_wrong_function(&pdu)),
            Some(Fault::WrongUnit) => return Outcome::WrongUnit(pdu),
            Some(Fault::WrongTransaction) => return Outcome::WrongTransaction(pdu),
            _ => {}
        }
        match delay {
            Some(d) => Outcome::Delayed(d, pdu),
            None => Outcome::Reply(pdu),
        }
    }
}

/// Deterministic junk for a garbage reply: `len` bytes from a seed.
pub fn garbage_bytes(seed: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (crate::plant::mix(seed ^ i as u64) & 0xFF) as u8)
        .collect()
}
