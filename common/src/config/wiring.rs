//! `check`'s look at a valid config for wiring mistakes a technician makes, beyond what parsing
//! refuses: two meters answering to one unit id on one bus (both read the same device, or the line
//! garbles both replies), a serial device that does not exist on this machine, and register
//! addresses written in the 1-based "4xxxx" notation of meter manuals (40001 is holding register
//! 0). Located at the key, as `FILE:LINE:COL: message`, like every config error.

use std::path::Path;

use toml_edit::{Document, Item};

use super::diag::{into_sorted, ConfigErrors, Diag, Span};
use crate::plan::{Plan, Transport};
use crate::types::RegisterKind;

/// The 1-based notation's range for a register kind and the base of its first register: 40001 is
/// holding 0, 30001 input 0, 10001 discrete input 0. Coils (00001) cannot be told from real addresses.
fn manual_notation(kind: RegisterKind) -> Option<(u16, u16)> {
    match kind {
        RegisterKind::Holding => Some((40_001, 49_999)),
        RegisterKind::Input => Some((30_001, 39_999)),
        RegisterKind::Discrete => Some((10_001, 19_999)),
        RegisterKind::Coil => None,
    }
}

fn kind_name(kind: RegisterKind) -> &'static str {
    match kind {
        RegisterKind::Holding => "holding registers",
        RegisterKind::Input => "input registers",
        RegisterKind::Discrete => "discrete inputs",
        RegisterKind::Coil => "coils",
    }
}

/// The element of the array of tables `key` (in `within`) whose `name` is `name`.
fn named<'d>(within: &'d toml_edit::Table, key: &str, name: &str) -> Option<&'d toml_edit::Table> {
    within
        .get(key)?
        .as_array_of_tables()?
        .iter()
        .find(|t| t.get("name").and_then(Item::as_str) == Some(name))
}

fn span_of(t: Option<&toml_edit::Table>, key: &str) -> Span {
    t?.get(key)?.span()
}

/// Every wiring mistake of `plan`, or Ok. `devices`: also check that each serial device exists (off
/// for a config written for another machine).
pub fn check_wiring(plan: &Plan, devices: bool) -> Result<(), ConfigErrors> {
    let text = std::fs::read_to_string(&plan.source).unwrap_or_default();
    let doc = Document::parse(text.as_str()).ok();
    let root = doc.as_ref().map(|d| d.as_table());
    let mut d = Diag::new(&plan.source, &text);
    for bus in &plan.buses {
        let bus_t = root.and_then(|r| named(r, "bus", &bus.name));
        if let (true, Transport::Rtu(s)) = (devices, &bus.transport) {
            if !Path::new(&s.device).exists() {
                d.error(
                    &span_of(bus_t, "device"),
                    format!(
                        "bus {}: serial device {} does not exist on this machine (a USB adapter unplugged, or another name: ls /dev/ttyUSB* /dev/ttyS* /dev/ttyAMA* /dev/serial/by-id/)",
                        bus.name,
                        s.device.display()
                    ),
                );
            }
        }
        for (i, m) in bus.meters.iter().enumerate() {
            let meter_t = root.and_then(|r| named(r, "meter", &m.name));
            // A second meter on the unit id of an earlier one on the same bus.
            if m.unit_id != 0 {
                if let Some(first) = bus.meters[..i].iter().find(|o| o.unit_id == m.unit_id) {
                    d.error(
                        &span_of(meter_t, "unit_id"),
                        format!(
                            "meter {}: unit_id {} is also meter {}'s on bus {}: two devices on one bus need two unit ids (set on the device, then here)",
                            m.name, m.unit_id, first.name, bus.name
                        ),
                    );
                }
            }
            for p in &m.points {
                let Some((from, to)) = manual_notation(p.register) else {
                    continue;
                };
                // Only points written in this file (a template's map is known good).
                let Some(point_t) = meter_t.and_then(|t| named(t, "point", &p.name)) else {
                    continue;
                };
                if (from..=to).contains(&p.address) {
                    d.error(
                        &span_of(Some(point_t), "address"),
                        format!(
                            "meter {} point {}: address {} looks like the manuals' 1-based notation: did you mean address {} of the {}? (addresses here are 0-based protocol addresses)",
                            m.name,
                            p.name,
                            p.address,
                            p.address - from,
                            kind_name(p.register)
                        ),
                    );
                }
            }
        }
    }
    if d.has_errors() {
        Err(into_sorted(d.errors))
    } else {
        Ok(())
    }
}
