//! The human-readable poll plan printed by `plantmeter check`.

use std::fmt::Write as _;
use std::time::Duration;

use crate::plan::{
    AuditPlan, Bus, ElectricityMethod, LinkPoint, Meter, MeterBus, MeterProtocol, Parity, Plan,
    Protocol, ReadRequest, SerialSettings, Transport,
};
use crate::types::PointKind;

/// Human-readable poll plan for `plantmeter check`: a header (gateway, store, MQTT), then per bus
/// and per meter every read request after batching (function code, register table, start address,
/// count, the points it covers), the load on each bus, totals, and the audit section.
pub fn describe(plan: &Plan) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_plan(&mut out, plan);
    out
}

fn write_plan(o: &mut String, plan: &Plan) -> std::fmt::Result {
    let g = &plan.gateway;
    let m = &plan.mqtt;
    writeln!(o, "config    {} is valid", plan.source.display())?;
    writeln!(o, "gateway   {} at site {}", g.id, g.site)?;
    writeln!(
        o,
        "store     {}{} (at most {} MiB; beyond that the oldest unsent records are dropped and counted)",
        g.data_dir.display(),
        if g.data_dir.is_relative() {
            ", relative to the config file's folder"
        } else {
            ""
        },
        g.store_max_mb
    )?;
    let auth = match (&m.username, &m.password_file, &m.password_env) {
        (None, _, _) => "no login".to_string(),
        (Some(u), Some(f), _) => format!("user {u}, password from {}", f.display()),
        (Some(u), None, Some(e)) => format!("user {u}, password from ${e}"),
        (Some(u), None, None) => format!("user {u}, no password"),
    };
    let tls = if m.tls {
        match (&m.ca_file, &m.client_cert_file) {
            (Some(ca), Some(cert)) => format!(
                ", TLS (CA {}, client certificate {})",
                ca.display(),
                cert.display()
            ),
            (Some(ca), None) => format!(", TLS (CA {})", ca.display()),
            (None, Some(cert)) => format!(
                ", TLS (system roots, client certificate {})",
                cert.display()
            ),
            (None, None) => ", TLS (system roots)".to_string(),
        }
    } else {
        String::new()
    };
    if plan.desk {
        writeln!(
            o,
            "mqtt      none: a desk audit (manual meters filled by `import`; `run` needs [mqtt] and a [[bus]])"
        )?;
    } else {
        writeln!(
            o,
            "mqtt      {} as client {}, {auth}{tls}; keep-alive {} s, at most {} in flight",
            m.url,
            m.client_id,
            m.keep_alive.as_secs(),
            m.max_inflight
        )?;
        writeln!(
            o,
            "topics    {}/{{status, data/<meter>, health/<meter>{}}}",
            m.topic_prefix,
            if plan.audit.is_some() { ", audit" } else { "" }
        )?;
    }
    match &plan.metrics_listen {
        Some(l) => writeln!(o, "metrics   http://{l}/metrics")?,
        None => writeln!(o, "metrics   off")?,
    }

    let (mut meters, mut points, mut requests, mut rate) = (0usize, 0usize, 0usize, 0.0f64);
    for bus in &plan.buses {
        writeln!(o)?;
        write_bus(o, bus)?;
        meters += bus.meters.len();
        points += bus.meters.iter().map(|m| m.points.len()).sum::<usize>();
        requests += bus.meters.iter().map(|m| m.requests.len()).sum::<usize>();
        rate += bus.meters.iter().map(requests_per_second).sum::<f64>();
    }
    if !plan.manual_meters.is_empty() {
        writeln!(o)?;
        writeln!(
            o,
            "manual meters (never polled; filled by `plantmeter import`)"
        )?;
        for m in &plan.manual_meters {
            let pts: Vec<String> = m
                .points
                .iter()
                .map(|p| format!("{} ({}, {})", p.name, p.unit, p.kind.as_str()))
                .collect();
            writeln!(o, "  meter \"{}\": {}", m.name, pts.join(", "))?;
        }
    }
    writeln!(o)?;
    writeln!(
        o,
        "total     {} {}, {} {}, {} {}, {} {} per poll cycle, {} requests/s",
        plan.buses.len(),
        plural(plan.buses.len(), "bus", "buses"),
        meters,
        plural(meters, "meter", "meters"),
        points,
        plural(points, "point", "points"),
        requests,
        plural(requests, "request", "requests"),
        fmt_num(rate, 2)
    )?;
    if let Some(a) = &plan.audit {
        writeln!(o)?;
        write_audit(o, a, plan)?;
    }
    if let Some(h) = &plan.hj212 {
        writeln!(o)?;
        write_hj212(o, h)?;
    }
    Ok(())
}

fn write_hj212(o: &mut String, h: &crate::plan::Hj212Plan) -> std::fmt::Result {
    writeln!(
        o,
        "hj212     HJ 212-{}{} to {}, MN {}, ST {:02}, password from {}, times in UTC{}",
        h.version,
        if h.sm4_key_file.is_some() {
            " (SM4)"
        } else {
            ""
        },
        h.address,
        h.mn,
        h.st,
        h.password_file.display(),
        h.timezone
    )?;
    let mut sends = Vec::new();
    if h.minute > 0 {
        sends.push(format!("CN 2051 every {} min", h.minute));
    }
    if h.hour {
        sends.push("CN 2061 hourly".to_string());
    }
    if h.day {
        sends.push("CN 2031 daily".to_string());
    }
    if let Some(r) = h.realtime {
        sends.push(format!("CN 2011 every {} s (not stored)", r.as_secs()));
    }
    writeln!(
        o,
        "  sends       {}; {}",
        if sends.is_empty() {
            "nothing".to_string()
        } else {
            sends.join(", ")
        },
        if h.ack {
            "each re-sent until CN 9014"
        } else {
            "no acknowledgement asked"
        }
    )?;
    for f in &h.factors {
        let what = match (f.kind, &f.flow) {
            (PointKind::Counter, _) => format!("-Cou increase in {}", f.unit),
            (PointKind::Gauge, Some(fl)) => {
                format!("-Min -Avg -Max, -Cou load in kg with {}", fl.point)
            }
            (PointKind::Gauge, None) => "-Min -Avg -Max".to_string(),
        };
        let zs = match &f.o2 {
            Some((p, r)) => format!(", -ZsAvg at {r} % O2 from {p}"),
            None => String::new(),
        };
        let st = match f.st {
            Some(st) => format!(" (ST {st}: facility electricity, 分表计电)"),
            None => String::new(),
        };
        writeln!(o, "  {:<11} {}: {what}{zs}{st}", f.code, f.point)?;
    }
    Ok(())
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// A number without trailing zeros, at most `decimals` decimals.
fn fmt_num(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 || s == 0.0 {
        format!("{} s", fmt_num(s, 3))
    } else {
        format!("{} ms", fmt_num(s * 1000.0, 3))
    }
}

fn requests_per_second(m: &Meter) -> f64 {
    let secs = m.poll_interval.as_secs_f64();
    if secs > 0.0 {
        m.requests.len() as f64 / secs
    } else {
        0.0
    }
}

fn parity_letter(p: Parity) -> char {
    match p {
        Parity::None => 'N',
        Parity::Even => 'E',
        Parity::Odd => 'O',
    }
}

/// Estimated line time of one RTU request and its response (frames, plus the silences between them).
fn rtu_request_time(s: &SerialSettings, r: &ReadRequest) -> f64 {
    let bits_per_char = 1.0
        + f64::from(s.data_bits)
        + f64::from(s.stop_bits)
        + if s.parity == Parity::None { 0.0 } else { 1.0 };
    // request: unit, fc, start(2), count(2), crc(2); response: unit, fc, byte count, data, crc(2)
    let data = if r.register.is_bit() {
        u32::from(r.count).div_ceil(8)
    } else {
        2 * u32::from(r.count)
    };
    let chars = 8.0 + 5.0 + f64::from(data);
    chars * bits_per_char / f64::from(s.baud.max(1)) + 2.0 * s.inter_frame_gap().as_secs_f64()
}

fn write_bus(o: &mut String, bus: &Bus) -> std::fmt::Result {
    if let Protocol::Meter(link) = &bus.protocol {
        return write_link_bus(o, bus, link);
    }
    let how = match &bus.transport {
        Transport::Tcp { address } => format!("Modbus TCP to {address}"),
        Transport::RtuOverTcp { address } => format!("Modbus RTU over TCP to {address}"),
        Transport::Rtu(s) => format!(
            "Modbus RTU on {} at {} baud {}{}{}",
            s.device.display(),
            s.baud,
            s.data_bits,
            parity_letter(s.parity),
            s.stop_bits
        ),
    };
    writeln!(
        o,
        "bus \"{}\": {how}, timeout {} ms, {} {}",
        bus.name,
        bus.timeout.as_millis(),
        bus.retries,
        plural(bus.retries as usize, "retry", "retries")
    )?;
    if bus.meters.is_empty() {
        writeln!(o, "  (no meters)")?;
        return Ok(());
    }
    for m in &bus.meters {
        let template = m
            .template
            .as_ref()
            .map_or(String::new(), |t| format!(", template {t}"));
        writeln!(
            o,
            "  meter \"{}\": unit {}, every {}{template}, {} {} in {} {}",
            m.name,
            m.unit_id,
            fmt_duration(m.poll_interval),
            m.points.len(),
            plural(m.points.len(), "point", "points"),
            m.requests.len(),
            plural(m.requests.len(), "request", "requests"),
        )?;
        for r in &m.requests {
            let names: Vec<&str> = r
                .points
                .iter()
                .filter_map(|&i| m.points.get(i).map(|p| p.name.as_str()))
                .collect();
            writeln!(
                o,
                "    fc{:02} {:<8} start 0x{:04X} {:<7} count {:>4}  -> {}",
                r.register.function_code(),
                r.register.as_str(),
                r.start,
                format!("({})", r.start),
                r.count,
                names.join(", ")
            )?;
        }
    }
    let per_cycle: usize = bus.meters.iter().map(|m| m.requests.len()).sum();
    let rate: f64 = bus.meters.iter().map(requests_per_second).sum();
    write!(
        o,
        "  load: {per_cycle} {} per poll cycle, {} requests/s",
        plural(per_cycle, "request", "requests"),
        fmt_num(rate, 2)
    )?;
    if let Transport::Rtu(s) = &bus.transport {
        let busy: f64 = bus
            .meters
            .iter()
            .map(|m| {
                let t: f64 = m.requests.iter().map(|r| rtu_request_time(s, r)).sum();
                t / m.poll_interval.as_secs_f64().max(1e-9)
            })
            .sum();
        write!(
            o,
            ", serial line busy about {}% of the time{}",
            fmt_num(busy * 100.0, 1),
            if busy > 1.0 {
                " (more than the line can carry: lengthen poll intervals)"
            } else {
                ""
            }
        )?;
    }
    writeln!(o)
}

/// A DL/T 645 / CJ/T 188 bus: one request per point, meters in order, and what that costs the line.
fn write_link_bus(o: &mut String, bus: &Bus, link: &MeterBus) -> std::fmt::Result {
    let (how, line) = match &bus.transport {
        Transport::Rtu(s) => (
            format!(
                "{} on {} at {} baud {}{}{}",
                link.kind.as_str(),
                s.device.display(),
                s.baud,
                s.data_bits,
                parity_letter(s.parity),
                s.stop_bits
            ),
            Some((s.baud, s.bits_per_char())),
        ),
        Transport::RtuOverTcp { address } | Transport::Tcp { address } => (
            format!("{} through the serial server {address}", link.kind.as_str()),
            None,
        ),
    };
    let preamble: Vec<String> = link.preamble.iter().map(|b| format!("{b:02X}")).collect();
    writeln!(
        o,
        "bus \"{}\": {how}, preamble [{}], gap {}, timeout {} ms, {} {}",
        bus.name,
        preamble.join(" "),
        fmt_duration(link.gap),
        bus.timeout.as_millis(),
        bus.retries,
        plural(bus.retries as usize, "retry", "retries")
    )?;
    let (mut per_cycle, mut bytes, mut busy) = (0usize, 0usize, 0.0f64);
    for m in &bus.meters {
        let Some(ml) = &m.link else { continue };
        let template = m
            .template
            .as_ref()
            .map_or(String::new(), |t| format!(", template {t}"));
        let mult = m.multiplier.as_ref().map_or(String::new(), |x| {
            format!(
                ", multiplier {}{}",
                fmt_num(x.energy, 3),
                match x.changes.len() {
                    0 => String::new(),
                    n => format!(" ({n} dated {})", plural(n, "change", "changes")),
                }
            )
        });
        let mut meter_bytes = 0;
        let mut meter_time = 0.0;
        for r in &ml.reads {
            let (q, a) = crate::meter_read::exchange_bytes(link, ml, r);
            meter_bytes += q + a;
            if let Some((baud, bits)) = line {
                meter_time += link.line_time(q + a, baud, bits).as_secs_f64();
            }
        }
        writeln!(
            o,
            "  meter \"{}\": address {}, every {}{template}{mult}, {} {} in {} {}, {meter_bytes} bytes per poll",
            m.name,
            ml.address_text,
            fmt_duration(m.poll_interval),
            m.points.len(),
            plural(m.points.len(), "point", "points"),
            ml.reads.len(),
            plural(ml.reads.len(), "request", "requests"),
        )?;
        for r in ml.reads.iter().filter(|r| r.block) {
            let names: Vec<&str> = r
                .items
                .iter()
                .filter_map(|&(pi, _)| m.points.get(pi).map(|p| p.name.as_str()))
                .collect();
            writeln!(
                o,
                "    block read DI {:08X}: {} in one request",
                r.di,
                names.join(", ")
            )?;
        }
        for (p, lp) in m.points.iter().zip(&ml.points) {
            let what = match lp {
                LinkPoint::Dlt645 { di, spec } => format!(
                    "DI {} {} ({} BCD bytes, {} decimals{})",
                    match link.kind {
                        MeterProtocol::Dlt645(v) => v.format_di(*di),
                        MeterProtocol::Cjt188 => String::new(),
                    },
                    spec.what,
                    spec.len,
                    spec.decimals,
                    if spec.signed { ", signed" } else { "" }
                ),
                LinkPoint::Cjt188 { di, field, .. } => {
                    format!("DI {di:04X} field {}", field.as_str())
                }
            };
            writeln!(o, "    {} [{}] -> {what}", p.name, p.unit)?;
        }
        per_cycle += ml.reads.len();
        bytes += meter_bytes;
        busy += meter_time / m.poll_interval.as_secs_f64().max(1e-9);
    }
    write!(
        o,
        "  load: {per_cycle} {} per poll cycle, {bytes} bytes on the line",
        plural(per_cycle, "request", "requests"),
    )?;
    if line.is_some() {
        write!(
            o,
            ", serial line busy about {}% of the time (with the gaps; meters' answer delays come on top){}",
            fmt_num(busy * 100.0, 1),
            if busy > 1.0 {
                " (more than the line can carry: lengthen poll intervals)"
            } else {
                ""
            }
        )?;
    }
    writeln!(o)
}

fn write_audit(o: &mut String, a: &AuditPlan, plan: &Plan) -> std::fmt::Result {
    writeln!(o, "audit")?;
    writeln!(o, "  timezone    {}", a.timezone)?;
    // The config's arrays are half-open; a person reads the days they include, both ends.
    let period = |p: &(chrono::NaiveDate, chrono::NaiveDate)| {
        format!(
            "{} .. {} ({} days, both included; config [\"{}\", \"{}\"] ends before its second date)",
            p.0,
            crate::audit::compute::inclusive_last_day(p.1),
            (p.1 - p.0).num_days(),
            p.0,
            p.1
        )
    };
    writeln!(o, "  baseline    {}", period(&a.baseline))?;
    match &a.reporting {
        Some(r) => {
            writeln!(o, "  reporting   {}", period(r))?;
            if let Some(w) = crate::audit::compute::overlap_note(a.baseline, *r) {
                writeln!(o, "  warning     {w}")?;
            }
        }
        None => writeln!(o, "  reporting   (none configured)")?,
    }
    if a.products.len() < 2 && a.drivers.is_empty() {
        writeln!(
            o,
            "  model       consumption = a + b x production, per {}",
            a.granularity.as_str()
        )?;
    } else {
        // DOMAIN.md model selection: the candidates in the order they are tried.
        let products: Vec<&str> = a.products.iter().map(|p| p.name.as_str()).collect();
        let drivers: Vec<&str> = a.drivers.iter().map(|d| d.name.as_str()).collect();
        let mut candidates = vec![vec!["production"]];
        if products.len() >= 2 {
            candidates.push(products.clone());
        }
        if !drivers.is_empty() {
            candidates.push([&["production"][..], &drivers].concat());
            if products.len() >= 2 {
                candidates.push([&products[..], &drivers].concat());
            }
        }
        let listed: Vec<String> = candidates.iter().map(|c| c.join(" + ")).collect();
        writeln!(
            o,
            "  model       consumption = b0 + sum of b x variable, per {}; candidates: {} (the valid one with the highest adjusted R2, else the ratio method)",
            a.granularity.as_str(),
            listed.join(" | ")
        )?;
    }
    for p in &a.products {
        if a.products.len() == 1 {
            writeln!(o, "  production  {} ({})", p.point, a.production_unit)?;
        } else {
            writeln!(
                o,
                "  product     {:<12} {} x {} ({})",
                p.name, p.point, p.factor, a.production_unit
            )?;
        }
    }
    for d in &a.drivers {
        writeln!(
            o,
            "  driver      {:<12} {} ({})",
            d.name,
            d.point,
            d.transform.as_str()
        )?;
    }
    let year = a
        .grid_factor_year
        .map_or(String::new(), |y| format!(" ({y})"));
    let has_electricity = a
        .inputs
        .iter()
        .any(|i| i.carrier == crate::plan::Carrier::Electricity);
    if has_electricity || a.grid_co2_t_per_mwh > 0.0 {
        writeln!(
            o,
            "  grid CO2    {} tCO2/MWh{year}",
            fmt_num(a.grid_co2_t_per_mwh, 6)
        )?;
    }
    let method = match a.electricity_method {
        ElectricityMethod::Equivalent => "equivalent value (GB/T 2589)".to_string(),
        ElectricityMethod::Equal { kgce_per_kwh, year } => format!(
            "equal value, {} kgce/kWh{}",
            fmt_num(kgce_per_kwh, 6),
            year.map_or(String::new(), |y| format!(" ({y})"))
        ),
    };
    writeln!(o, "  electricity {method}")?;
    if a.inputs.is_empty() {
        writeln!(o, "  inputs      (none)")?;
    } else {
        writeln!(o, "  inputs")?;
        let width = a
            .inputs
            .iter()
            .map(|i| i.point.qualified().len())
            .max()
            .unwrap_or(0);
        for i in &a.inputs {
            let unit = i.carrier.unit();
            writeln!(
                o,
                "    {:<width$}  {:<11} {:>10} {:<10} {:>8} kgCO2/{unit}",
                i.point.qualified(),
                i.carrier.as_str(),
                fmt_num(i.kgce_per_unit, 6),
                format!("kgce/{unit}"),
                fmt_num(i.co2_kg_per_unit, 6),
            )?;
        }
    }
    if !a.pollutants.is_empty() {
        writeln!(o, "  pollutants")?;
        for p in &a.pollutants {
            let unit_of = |r: &crate::plan::PointRef| {
                plan.point(r)
                    .map(|p| p.unit.clone())
                    .filter(|u| !u.is_empty())
                    .map_or(String::new(), |u| format!(" {u}"))
            };
            let flow = match p.flow_kind {
                PointKind::Counter => "volume counter",
                PointKind::Gauge => "flow rate",
            };
            let source = p
                .source
                .as_deref()
                .map_or(String::new(), |s| format!(" (source {s})"));
            let o2 = p.o2.as_ref().map_or(String::new(), |(r, reference)| {
                format!(", O2 {r} (reference {} %)", fmt_num(*reference, 3))
            });
            writeln!(
                o,
                "    {:<12} concentration {}{} x {flow} {}{}{o2}{source}",
                p.name.as_str(),
                p.concentration,
                unit_of(&p.concentration),
                p.flow,
                unit_of(&p.flow),
            )?;
        }
    }
    depth(a, o)?;
    if !a.levels.is_empty() {
        writeln!(
            o,
            "  levels      (per {} of product; lower is better)",
            a.production_unit
        )?;
        for l in &a.levels {
            writeln!(
                o,
                "    {:<12} I <= {}  II <= {}  III <= {}",
                l.indicator,
                fmt_num(l.level_i, 6),
                fmt_num(l.level_ii, 6),
                fmt_num(l.level_iii, 6)
            )?;
        }
    }
    if plan.desk {
        return Ok(());
    }
    writeln!(
        o,
        "  published   every {} on {}/audit",
        fmt_duration(a.publish_interval),
        plan.mqtt.topic_prefix
    )
}

/// The meter trees, the water balance's points, the metering ledger and waste (#29): what the
/// report's balances, coverage and waste tables will be computed over.
fn depth(a: &crate::plan::AuditPlan, o: &mut String) -> std::fmt::Result {
    let b = &a.balance;
    if !b.nodes.is_empty() {
        writeln!(o, "  meter trees (children indented under their parent)")?;
        // Depth first from each root, children in config order.
        fn walk(
            b: &crate::audit::balance::BalancePlan,
            i: usize,
            depth: usize,
            o: &mut String,
        ) -> std::fmt::Result {
            let n = &b.nodes[i];
            let root = match n.parent {
                None => format!(" ({})", n.carrier.as_str()),
                Some(_) => String::new(),
            };
            writeln!(o, "    {}{}{root}", "  ".repeat(depth), n.point.qualified())?;
            for (c, child) in b.nodes.iter().enumerate() {
                if child.parent.as_ref() == Some(&n.point) && depth < b.nodes.len() {
                    walk(b, c, depth + 1, o)?;
                }
            }
            Ok(())
        }
        for (i, n) in b.nodes.iter().enumerate() {
            if n.parent.is_none() {
                walk(b, i, 0, o)?;
            }
        }
    }
    if b.configured {
        let list = |ps: &[crate::audit::balance::WaterPoint]| {
            if ps.is_empty() {
                "(none)".to_string()
            } else {
                ps.iter()
                    .map(|w| w.point.qualified())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        writeln!(o, "  water balance")?;
        writeln!(o, "    intake      {}", list(&b.intake))?;
        writeln!(o, "    reuse       {}", list(&b.reuse))?;
        writeln!(o, "    discharge   {}", list(&b.discharge))?;
        writeln!(o, "    consumption {}", list(&b.consumption))?;
    }
    if !a.ledger.items.is_empty() {
        writeln!(o, "  metering ledger (GB 17167)")?;
        let width = a
            .ledger
            .items
            .iter()
            .map(|i| i.name.chars().count())
            .max()
            .unwrap_or(0);
        for i in &a.ledger.items {
            writeln!(
                o,
                "    {:<width$} {:<9} {:<11} {} of {} required",
                i.name,
                i.level.as_str(),
                i.carrier.as_str(),
                i.meters.len(),
                i.required
            )?;
        }
    }
    for t in &a.ledger.thresholds {
        writeln!(
            o,
            "  coverage    {} {} at least {} %",
            t.carrier.as_str(),
            t.level.as_str(),
            fmt_num(t.min_pct, 3)
        )?;
    }
    for w in &a.waste {
        writeln!(
            o,
            "  waste       {} ({}) from {}",
            w.name,
            w.kind.as_str(),
            w.point.qualified()
        )?;
    }
    Ok(())
}
