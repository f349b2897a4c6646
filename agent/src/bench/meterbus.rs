//! `plantmeter bench dlt645`: DL/T 645 readings/s on one bus, through the agent's own link
//! (`poller::meter_link`) against the simulator's serial-server port, beside the line's limit at a
//! baud rate: frame bytes x 11 bits (8E1) / baud + the gap between requests. On loopback there is
//! no line, so the measured figure is the agent's ceiling; on RS-485 the line's limit rules.

use std::time::{Duration, Instant};

use plantmeter_common::plan::{LinkPoint, Protocol};

use crate::poller::meter_link::MeterLink;

#[derive(clap::Args)]
pub struct Dlt645Args {
    /// Measuring window, seconds.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Baud rate of the line the limit is computed for (2400 is common in the field).
    #[arg(long, default_value_t = 2400)]
    pub baud: u32,
    /// Gap between requests, ms (the bus's `gap_ms`).
    #[arg(long, default_value_t = 50)]
    pub gap_ms: u64,
}

pub fn dlt645(a: Dlt645Args) -> anyhow::Result<()> {
    let rt = super::agent::runtime()?;
    rt.block_on(async {
        let sim = plantmeter_sim::start(
            plantmeter_sim::Scenario::builtin(),
            plantmeter_sim::SimOptions::default(),
        )
        .await?;
        let links =
            plantmeter_sim::meterbus::start(sim.sim_arc(), "127.0.0.1:0", "127.0.0.1:0", false)
                .await?;
        let mut rates = Vec::new();
        for gap in [0, a.gap_ms] {
            let text = format!(
                "[gateway]\nid = \"bench\"\nsite = \"s\"\ndata_dir = \"/tmp/plantmeter-bench\"\n\
                 [mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\n\
                 [[bus]]\nname = \"b\"\nprotocol = \"dlt645-2007\"\ntransport = \"tcp\"\naddress = \"{}\"\ngap_ms = {gap}\n\
                 [[meter]]\nname = \"m\"\naddress = \"000000000001\"\npoll_interval_s = 1\ntemplate = \"dlt645-meter\"\npoints = [\"energy_import\"]\n",
                links.dlt645_addr
            );
            let plan = plantmeter_common::config::parse(&text, std::path::Path::new("bench.toml"))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let bus = &plan.buses[0];
            let Protocol::Meter(mb) = &bus.protocol else {
                anyhow::bail!("not a DL/T 645 bus");
            };
            let meter = &bus.meters[0];
            let mut link = MeterLink::new(bus.transport.clone(), Duration::from_secs(1), mb.clone());
            let window = Duration::from_secs(a.seconds);
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < window {
                link.read(meter, 0)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                n += 1;
            }
            let rate = n as f64 / start.elapsed().as_secs_f64();
            rates.push(rate);
            let lp: &LinkPoint = &meter.link.as_ref().map(|l| l.points[0].clone()).ok_or_else(|| anyhow::anyhow!("no point"))?;
            let (req, rep) = mb.exchange_bytes(lp);
            if gap == 0 {
                println!(
                    "dlt645: {rate:.0} readings/s on one bus over loopback, no gap ({n} reads of DI 00010000; {req} + {rep} bytes a reading with 4 wake-up bytes each way): the agent's ceiling"
                );
            } else {
                println!("dlt645: {rate:.1} readings/s over loopback with a {gap} ms gap");
                for baud in [a.baud, 9600] {
                    let t = mb.exchange_time(lp, baud, 11).as_secs_f64();
                    println!(
                        "dlt645: line limit at {baud} baud 8E1 with a {gap} ms gap: {:.2} readings/s \
                         (({req} + {rep}) bytes x 11 bits / {baud} + {gap} ms = {:.1} ms a reading, before the meter's own answer delay of 20..500 ms)",
                        1.0 / t,
                        t * 1000.0
                    );
                }
            }
        }
        block_vs_points(&links, &a).await?;
        drop(links);
        sim.shutdown().await;
        anyhow::Ok(())
    })
}

/// Bus time per poll of a meter reading the whole dlt645-meter template (13 points), with data
/// block reads (the plan's) and point by point (one read per DI, as before blocks): measured over
/// loopback with the bus's gap, and the line's time at the bench's baud from the bytes.
async fn block_vs_points(
    links: &plantmeter_sim::meterbus::LinkHandle,
    a: &Dlt645Args,
) -> anyhow::Result<()> {
    let text = format!(
        "[gateway]\nid = \"bench\"\nsite = \"s\"\ndata_dir = \"/tmp/plantmeter-bench\"\n\
         [mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\n\
         [[bus]]\nname = \"b\"\nprotocol = \"dlt645-2007\"\ntransport = \"tcp\"\naddress = \"{}\"\ngap_ms = {}\n\
         [[meter]]\nname = \"m\"\naddress = \"000000000001\"\npoll_interval_s = 1\ntemplate = \"dlt645-meter\"\n",
        links.dlt645_addr, a.gap_ms
    );
    let plan = plantmeter_common::config::parse(&text, std::path::Path::new("bench.toml"))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let bus = &plan.buses[0];
    let Protocol::Meter(mb) = &bus.protocol else {
        anyhow::bail!("not a DL/T 645 bus");
    };
    let blocks = bus.meters[0].clone();
    let mut points = blocks.clone();
    if let Some(l) = points.link.as_mut() {
        l.reads = l
            .points
            .iter()
            .enumerate()
            .map(|(i, lp)| plantmeter_common::meter_read::single(i, lp))
            .collect();
    }
    for (what, meter) in [("point by point", &points), ("with block reads", &blocks)] {
        let Some(ml) = meter.link.as_ref() else {
            anyhow::bail!("no link");
        };
        let mut link = MeterLink::new(bus.transport.clone(), Duration::from_secs(1), mb.clone());
        let start = Instant::now();
        let mut polls = 0u32;
        while start.elapsed() < Duration::from_secs(a.seconds.max(1)) {
            for i in 0..ml.reads.len() {
                link.read(meter, i)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            polls += 1;
        }
        let ms = start.elapsed().as_secs_f64() * 1000.0 / f64::from(polls.max(1));
        let bytes: usize = ml
            .reads
            .iter()
            .map(|r| {
                let (q, p) = plantmeter_common::meter_read::exchange_bytes(mb, ml, r);
                q + p
            })
            .sum();
        let line: f64 = ml
            .reads
            .iter()
            .map(|r| {
                let (q, p) = plantmeter_common::meter_read::exchange_bytes(mb, ml, r);
                mb.line_time(q + p, a.baud, 11).as_secs_f64() * 1000.0
            })
            .sum();
        println!(
            "dlt645: a poll of the dlt645-meter template ({} points) {what}: {} requests, {bytes} bytes, \
             {ms:.0} ms measured over loopback with a {} ms gap ({polls} polls); on the line at {} baud 8E1: {line:.0} ms \
             before the meter's answer delays (20..500 ms a request)",
            meter.points.len(),
            ml.reads.len(),
            a.gap_ms,
            a.baud
        );
    }
    Ok(())
}
