//! `plantmeter read --config FILE --meter NAME [--count N]`: a technician's first step at a meter
//! (Telegraf's `--test`): poll it now through the same link the agent polls with, and print each
//! request's raw reply, each point's decoded value with its unit and quality, and the time taken.
//! Nothing is stored or published, so it runs beside a running agent (a serial line is then shared:
//! stop the agent first). Exit 0 when every poll got an answer (an exception reply is an answer,
//! its points `device_error`), 1 otherwise, 2 for bad input.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use plantmeter_common::codec::{decode_bits, decode_registers};
use plantmeter_common::plan::{Bus, Meter, Protocol, Transport};
use plantmeter_common::Quality;

use crate::exit::{load_plan, BadInput, Needs};
use crate::poller::link::{Link, ReadError, Reply};
use crate::poller::meter_link::MeterLink;
use crate::poller::AnyLink;

#[derive(clap::Args)]
pub struct ReadArgs {
    /// The agent's TOML configuration.
    #[arg(long)]
    pub config: PathBuf,
    /// The meter to read (its `name`).
    #[arg(long)]
    pub meter: String,
    /// Polls to make, one after the other (a pause of the meter's poll interval, at most 1 s, between).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub count: u32,
}

pub fn main(args: ReadArgs) -> anyhow::Result<()> {
    let plan = load_plan(&args.config, Needs::Polling)?;
    let found = plan.buses.iter().find_map(|b| {
        b.meters
            .iter()
            .find(|m| m.name == args.meter)
            .map(|m| (b, m))
    });
    let Some((bus, meter)) = found else {
        let names: Vec<&str> = plan
            .buses
            .iter()
            .flat_map(|b| b.meters.iter().map(|m| m.name.as_str()))
            .collect();
        let manual = plan.manual_meters.iter().any(|m| m.name == args.meter);
        return Err(anyhow::Error::new(BadInput(format!(
            "{}: {}; the meters polled are: {}",
            args.config.display(),
            if manual {
                format!(
                    "meter {} is manual (filled by import, never polled)",
                    args.meter
                )
            } else {
                format!(
                    "no meter {}",
                    plantmeter_common::config::cut_echo(&args.meter)
                )
            },
            names.join(", ")
        ))));
    };
    let tz = crate::local_time::plant_tz(&plan);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut link = AnyLink::of(bus);
    let pause = meter.poll_interval.min(Duration::from_secs(1));
    let mut unanswered = 0;
    out(&header(bus, meter));
    for n in 1..=args.count {
        if n > 1 {
            rt.block_on(async { tokio::time::sleep(pause).await });
        }
        let at = plantmeter_common::clock::system_ms();
        let (text, answered) = match &mut link {
            AnyLink::Modbus(l) => rt.block_on(poll(l, bus, meter)),
            AnyLink::Meter(l) => rt.block_on(poll_points(l, bus, meter)),
        };
        if !answered {
            unanswered += 1;
        }
        out(&format!(
            "poll {n} of {} at {}\n{text}",
            args.count,
            crate::local_time::local_time(at, tz)
        ));
    }
    if unanswered > 0 {
        anyhow::bail!(
            "{unanswered} of {} polls of meter {} got no answer",
            args.count,
            meter.name
        );
    }
    Ok(())
}

/// Print to stdout; a closed pipe (`| head`) ends the output quietly, not the process with a panic.
fn out(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn header(bus: &Bus, meter: &Meter) -> String {
    let how = match (&bus.protocol, &bus.transport) {
        (Protocol::Meter(mb), Transport::Tcp { address } | Transport::RtuOverTcp { address }) => {
            format!("{} through the serial server {address}", mb.kind.as_str())
        }
        (Protocol::Meter(mb), Transport::Rtu(s)) => {
            format!(
                "{} on {} {} baud",
                mb.kind.as_str(),
                s.device.display(),
                s.baud
            )
        }
        (Protocol::Modbus, Transport::Tcp { address }) => format!("Modbus TCP {address}"),
        (Protocol::Modbus, Transport::RtuOverTcp { address }) => {
            format!("RTU over TCP {address}")
        }
        (Protocol::Modbus, Transport::Rtu(s)) => {
            format!("RTU {} {} baud", s.device.display(), s.baud)
        }
    };
    let id = match meter.link.as_ref() {
        Some(l) => format!("address {}", l.address_text),
        None => format!("unit {}", meter.unit_id),
    };
    format!(
        "meter {} ({id} on bus {}, {how}; timeout {} ms, {} retries)\n",
        meter.name,
        bus.name,
        bus.timeout.as_millis(),
        bus.retries
    )
}

/// The raw reply as it came: registers in hex, bits as 0/1.
fn raw(reply: &Reply) -> String {
    match reply {
        Reply::Words(w) => w
            .iter()
            .map(|x| format!("{x:04X}"))
            .collect::<Vec<_>>()
            .join(" "),
        Reply::Bits(b) => b.iter().map(|&x| if x { '1' } else { '0' }).collect(),
    }
}

/// One poll of every request of `meter`, as text; true when every request got an answer (a value
/// or an exception).
async fn poll(link: &mut Link, bus: &Bus, meter: &Meter) -> (String, bool) {
    let mut text = String::new();
    let mut values = vec![(None, Quality::CommError); meter.points.len()];
    let mut answered = true;
    let started = Instant::now();
    for req in &meter.requests {
        let t0 = Instant::now();
        let mut attempt = 0;
        let result = loop {
            match link.read(meter.unit_id, req).await {
                Err(ReadError::Comm(_)) if attempt < bus.retries => attempt += 1,
                other => break other,
            }
        };
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        let last = u32::from(req.start) + u32::from(req.count) - 1;
        let _ = write!(
            text,
            "  {} {}..={} ({} {}): ",
            req.register,
            req.start,
            last,
            req.count,
            if matches!(
                req.register,
                plantmeter_common::RegisterKind::Holding | plantmeter_common::RegisterKind::Input
            ) {
                "registers"
            } else {
                "bits"
            }
        );
        let mut set = |idx: usize, v: Option<f64>, q: Quality| {
            if let Some(slot) = values.get_mut(idx) {
                *slot = (v, q);
            }
        };
        match &result {
            Ok(reply) => {
                let _ = writeln!(text, "{} ({ms:.0} ms)", raw(reply));
                match reply {
                    Reply::Words(w) => decode_registers(meter, req, w, &mut set),
                    Reply::Bits(b) => decode_bits(meter, req, b, &mut set),
                }
            }
            Err(e) => {
                let q = match e {
                    ReadError::Exception(..) => Quality::DeviceError,
                    ReadError::Comm(_) => {
                        answered = false;
                        Quality::CommError
                    }
                };
                let tries = if attempt > 0 {
                    format!(", {} attempts", attempt + 1)
                } else {
                    String::new()
                };
                let _ = writeln!(text, "{e} ({ms:.0} ms{tries})");
                for &idx in &req.points {
                    set(idx, None, q);
                }
            }
        }
        for &idx in &req.points {
            let (Some(p), Some((v, q))) = (meter.points.get(idx), values.get(idx)) else {
                continue;
            };
            let value = v.map_or_else(|| "null".to_string(), |v| format!("{v}"));
            let _ = writeln!(
                text,
                "    {:<24} {:>5} {:>16} {:<8} {}",
                p.name,
                p.address,
                value,
                p.unit,
                q.as_str()
            );
        }
    }
    let _ = writeln!(
        text,
        "  {} requests in {:.0} ms{}",
        meter.requests.len(),
        started.elapsed().as_secs_f64() * 1000.0,
        if answered { "" } else { ": NO ANSWER" }
    );
    (text, answered)
}

/// Bytes as hex pairs, as a line analyser shows them.
fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One poll of a DL/T 645 / CJ/T 188 meter: a request per read of its plan (a point's data
/// identifier, or a block's), each with the frames on the line (follow-ups too), then the values as
/// the agent publishes them (the multiplier applied); true when every read got an answer (a value
/// or an exception reply).
async fn poll_points(link: &mut MeterLink, bus: &Bus, meter: &Meter) -> (String, bool) {
    let mut text = String::new();
    let mut values = vec![(None, Quality::CommError); meter.points.len()];
    let mut whys: Vec<Option<String>> = vec![None; meter.points.len()];
    let mut answered = true;
    let started = Instant::now();
    let reads = meter.link.as_ref().map_or(&[][..], |l| &l.reads[..]);
    for (idx, r) in reads.iter().enumerate() {
        let names: Vec<&str> = r
            .items
            .iter()
            .filter_map(|&(pi, _)| meter.points.get(pi).map(|p| p.name.as_str()))
            .collect();
        let names = names.join(", ");
        let t0 = Instant::now();
        let mut attempt = 0;
        let result = loop {
            match link.read(meter, idx).await {
                Err(ReadError::Comm(_)) if attempt < bus.retries => attempt += 1,
                other => break other,
            }
        };
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        match result {
            Ok(out) => {
                for (n, (req, rep)) in out.frames.iter().enumerate() {
                    let lead = if n == 0 {
                        format!("  {names}: sent")
                    } else {
                        "    then sent".to_string()
                    };
                    let _ = write!(text, "{lead} {} | got {}", hex(req), hex(rep));
                    let _ = writeln!(
                        text,
                        "{}",
                        if n == 0 {
                            format!(" ({ms:.0} ms)")
                        } else {
                            String::new()
                        }
                    );
                }
                for v in out.values {
                    if let (Some(slot), Some(w)) = (values.get_mut(v.point), whys.get_mut(v.point))
                    {
                        *slot = (v.value, v.quality);
                        *w = v.why;
                    }
                }
            }
            Err(e) => {
                let q = match e {
                    ReadError::Exception(..) => Quality::DeviceError,
                    ReadError::Comm(_) => {
                        answered = false;
                        Quality::CommError
                    }
                };
                let _ = writeln!(text, "  {names}: {e} ({ms:.0} ms)");
                for &(pi, _) in &r.items {
                    if let Some(slot) = values.get_mut(pi) {
                        *slot = (None, q);
                    }
                }
            }
        }
    }
    if let Some(m) = &meter.multiplier {
        crate::poller::apply_multiplier(
            meter,
            m,
            plantmeter_common::clock::system_ms(),
            &mut values,
        );
    }
    for ((p, (v, q)), why) in meter.points.iter().zip(&values).zip(&whys) {
        let value = v.map_or_else(|| "null".to_string(), |v| format!("{v}"));
        let why = why
            .as_deref()
            .map_or_else(String::new, |w| format!(" ({w})"));
        let _ = writeln!(
            text,
            "    {:<24} {:>16} {:<8} {}{why}",
            p.name,
            value,
            p.unit,
            q.as_str()
        );
    }
    let _ = writeln!(
        text,
        "  {} {} in {:.0} ms{}",
        reads.len(),
        if reads.len() == 1 {
            "request"
        } else {
            "requests"
        },
        started.elapsed().as_secs_f64() * 1000.0,
        if answered { "" } else { ": NO ANSWER" }
    );
    (text, answered)
}
