//! Faults a simulated meter can show, scheduled in virtual time or drawn at random per request.

use std::time::Duration;

/// A misbehaviour of one meter, as the agent on the wire sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// No reply at all: the agent's request times out.
    Timeout,
    /// A Modbus exception response with this code (04 = server device failure).
    Exception(u8),
    /// The reply comes after this much real time.
    Slow(Duration),
    /// The connection is closed instead of answering (TCP and RTU over TCP; on a serial line: silence).
    Drop,
    /// Bytes that are not a valid response (bad header or CRC).
    Garbage,
    /// Values frozen at the start of the fault window.
    Stuck,
    /// Float points read NaN (integer points keep answering normally).
    Nan,
    /// Reads that cover a register no point occupies are refused with exception 02 (illegal data
    /// address), as many meters do; reads of points only answer normally.
    StrictMap,
    /// Hostile replies, well framed but not answering the request: two registers (6666 each) more
    /// than asked, in front of the real ones (bits: one byte more).
    ExtraRegisters,
    /// One register fewer than asked (bits: one byte fewer), with a byte count to match.
    ShortReply,
    /// The reply comes from another unit id.
    WrongUnit,
    /// The reply carries another function code (03 and 04 swapped, 01 and 02 swapped).
    WrongFunction,
    /// Modbus TCP: the reply carries another transaction id (RTU has none: answered normally).
    WrongTransaction,
}

impl Fault {
    /// Parse the scenario's `kind` with its parameters.
    pub fn from_kind(kind: &str, code: Option<u8>, delay_ms: Option<u64>) -> Option<Fault> {
        Some(match kind {
            "timeout" => Fault::Timeout,
            "exception" => Fault::Exception(code.unwrap_or(crate::modbus::SERVER_DEVICE_FAILURE)),
            "slow" => Fault::Slow(Duration::from_millis(delay_ms.unwrap_or(500))),
            "drop" => Fault::Drop,
            "garbage" => Fault::Garbage,
            "stuck" => Fault::Stuck,
            "nan" => Fault::Nan,
            "strict_map" => Fault::StrictMap,
            "extra_registers" => Fault::ExtraRegisters,
            "short_reply" => Fault::ShortReply,
            "wrong_unit" => Fault::WrongUnit,
            "wrong_function" => Fault::WrongFunction,
            "wrong_transaction" => Fault::WrongTransaction,
            _ => return None,
        })
    }

    /// The scenario's name for it.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Timeout => "timeout",
            Fault::Exception(_) => "exception",
            Fault::Slow(_) => "slow",
            Fault::Drop => "drop",
            Fault::Garbage => "garbage",
            Fault::Stuck => "stuck",
            Fault::Nan => "nan",
            Fault::StrictMap => "strict_map",
            Fault::ExtraRegisters => "extra_registers",
            Fault::ShortReply => "short_reply",
            Fault::WrongUnit => "wrong_unit",
            Fault::WrongFunction => "wrong_function",
            Fault::WrongTransaction => "wrong_transaction",
        }
    }
}

/// A fault active over a window of virtual time `[from_ms, to_ms)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaultWindow {
    pub from_ms: i64,
    pub to_ms: i64,
    pub fault: Fault,
}

/// A fault that hits each request with probability `rate` (deterministic from the seed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomFault {
    pub fault: Fault,
    /// Probability per request, 0..=1.
    pub rate: f64,
}

/// An event on a meter's totalizers at a virtual instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CounterEvent {
    /// The meter is replaced: its counters restart at `start` (main counters) and 0 (others).
    Replace { start: f64 },
}

/// Every fault known for one meter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultPlan {
    pub windows: Vec<FaultWindow>,
    pub random: Vec<RandomFault>,
    /// Sorted by time.
    pub events: Vec<(i64, CounterEvent)>,
    /// `[from, to)` windows of virtual time in which the metered equipment is switched off (aeration
    /// blowers stopped): the meter answers, its power reads 0 and its counters stand still.
    pub off: Vec<(i64, i64)>,
}

impl FaultPlan {
    /// The fault governing request number `n` at virtual time `t_ms`: the latest window that
    /// contains `t_ms`, else a random fault whose draw hits.
    pub fn active(&self, seed: u64, meter_tag: u64, n: u64, t_ms: i64) -> Option<(Fault, i64)> {
        if let Some(w) = self
            .windows
            .iter()
            .rev()
            .find(|w| w.from_ms <= t_ms && t_ms < w.to_ms)
        {
            return Some((w.fault, w.from_ms));
        }
        for (i, r) in self.random.iter().enumerate() {
            let u = crate::plant::uniform(seed, meter_tag ^ (i as u64 + 1).rotate_left(17), n);
            if u < r.rate {
                return Some((r.fault, t_ms));
            }
        }
        None
    }

    /// The last counter event at or before `t_ms`.
    pub fn last_event(&self, t_ms: i64) -> Option<(i64, CounterEvent)> {
        self.events.iter().rev().find(|(t, _)| *t <= t_ms).copied()
    }

    /// Whether the metered equipment is switched off at `t_ms`.
    pub fn is_off(&self, t_ms: i64) -> bool {
        self.off.iter().any(|&(a, b)| a <= t_ms && t_ms < b)
    }

    /// Add a counter event, keeping them sorted.
    pub fn add_event(&mut self, t_ms: i64, e: CounterEvent) {
        let pos = self.events.partition_point(|(t, _)| *t <= t_ms);
        self.events.insert(pos, (t_ms, e));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hostile_kinds_parse_and_name_themselves() {
        for kind in [
            "extra_registers",
            "short_reply",
            "wrong_unit",
            "wrong_function",
            "wrong_transaction",
        ] {
            let f = Fault::from_kind(kind, None, None).unwrap();
            assert_eq!(f.kind(), kind);
        }
    }

    #[test]
    fn latest_window_wins_and_random_rate_is_respected() {
        let mut p = FaultPlan::default();
        p.windows.push(FaultWindow {
            from_ms: 0,
            to_ms: 100,
            fault: Fault::Timeout,
        });
        p.windows.push(FaultWindow {
            from_ms: 50,
            to_ms: 60,
            fault: Fault::Nan,
        });
        assert_eq!(p.active(1, 2, 0, 55), Some((Fault::Nan, 50)));
        assert_eq!(p.active(1, 2, 0, 70), Some((Fault::Timeout, 0)));
        assert_eq!(p.active(1, 2, 0, 100), None);
        p.random.push(RandomFault {
            fault: Fault::Garbage,
            rate: 0.25,
        });
        let hits = (0..10_000)
            .filter(|n| p.active(1, 2, *n, 500).is_some())
            .count();
        assert!((2_200..2_800).contains(&hits), "{hits}");
    }
}
