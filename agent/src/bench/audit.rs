//! Audit benchmarks: report over a year of hourly aggregates, CSV import rows/s. Each prints figures.
//!
//! - `report`: a fresh store holding one year of hourly aggregates for N points (two product counters with a
//!   standard-product factor, an outdoor temperature gauge as the HDD driver, the rest electricity inputs, so
//!   that every indicator fits all four model candidates), then `AuditEngine::report` timed (first run and
//!   median of the runs).
//! - `import`: a CSV of N points read every 5 minutes over D days is generated in a temporary directory, then
//!   validated and imported as `plantmeter import` does; rows/s of each phase and in all.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::Context as _;
use plantmeter_common::audit::hourly::{DayBlock, HourAgg, HourGrid};

use crate::audit::aggregates::Aggregates;
use crate::audit::AuditEngine;

#[derive(clap::Args)]
pub struct ReportBenchArgs {
    /// Points of the audit (two product counters, a temperature gauge, the rest inputs).
    #[arg(long, default_value_t = 200)]
    pub points: usize,
    /// Days of hourly aggregates (from 2025-01-01 local).
    #[arg(long, default_value_t = 365)]
    pub days: i64,
    /// Timed report runs.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
}

#[derive(clap::Args)]
pub struct ImportBenchArgs {
    /// Points in the CSV.
    #[arg(long, default_value_t = 200)]
    pub points: usize,
    /// Days of readings, one every 5 minutes per point.
    #[arg(long, default_value_t = 20)]
    pub days: i64,
}

/// The bench's points: 0 and 1 are the products, 2 the outdoor temperature, the others inputs.
const PRODUCTS: usize = 2;
const TEMPERATURE: usize = 2;

/// A config with `points` points on meters of 10 points (m0.p2 the temperature gauge, the others counters),
/// an audit over 2025 (baseline H1, reporting H2) with two products and an HDD driver.
fn config(dir: &Path, points: usize) -> String {
    let mut s = format!(
        "[gateway]\nid = \"bench\"\nsite = \"bench\"\ndata_dir = \"{}\"\n\n[mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\n\n\
         [[bus]]\nname = \"line-1\"\ntransport = \"tcp\"\naddress = \"127.0.0.1:5020\"\n",
        dir.join("store").display()
    );
    let meters = points.div_ceil(10);
    for m in 0..meters {
        let _ = write!(
            s,
            "\n[[meter]]\nname = \"m{m}\"\nbus = \"line-1\"\nunit_id = {}\npoll_interval_s = 300\n",
            m % 247 + 1
        );
        for p in 0..(points - m * 10).min(10) {
            let i = m * 10 + p;
            let (unit, kind) = match i {
                TEMPERATURE => ("C", "gauge"),
                i if i < PRODUCTS => ("t", "counter"),
                _ => ("kWh", "counter"),
            };
            let _ = write!(
                s,
                "  [[meter.point]]\n  name = \"p{p}\"\n  register = \"holding\"\n  address = {}\n  type = \"f64\"\n  unit = \"{unit}\"\n  kind = \"{kind}\"\n",
                p * 4
            );
        }
    }
    s.push_str(
        "\n[audit]\ntimezone = \"+08:00\"\nbaseline = [\"2025-01-01\", \"2025-07-01\"]\nreporting = [\"2025-07-01\", \"2026-01-01\"]\n\
         granularity = \"day\"\ngrid_co2_t_per_mwh = 0.5703\nproduction_unit = \"t\"\n\n\
         [[audit.product]]\nname = \"knit\"\npoint = \"m0.p0\"\nfactor = 1.0\n\n\
         [[audit.product]]\nname = \"woven\"\npoint = \"m0.p1\"\nfactor = 0.8\n\n\
         [[audit.driver]]\nname = \"hdd\"\npoint = \"m0.p2\"\ntransform = \"hdd\"\nbase = 18.0\n",
    );
    for i in (TEMPERATURE + 1)..points {
        let _ = write!(
            s,
            "  [[audit.input]]\n  point = \"m{}.p{}\"\n  carrier = \"electricity\"\n",
            i / 10,
            i % 10
        );
    }
    s
}

/// Hour `h` of day `d` of point `k`: products whose mix changes by the day, a seasonal temperature with a
/// daily swing, and inputs that follow production and the heating degrees (with a little pattern), so that
/// every candidate is a real fit.
fn hour(k: usize, d: i64, h: usize) -> HourAgg {
    let wiggle = ((d * 24 + h as i64) % 17) as f64;
    let season = (std::f64::consts::TAU * (d as f64 - 15.0) / 365.0).cos();
    let temp = 17.0 - 11.0 * season
        + 4.0 * (std::f64::consts::TAU * (h as f64 - 14.0) / 24.0).cos()
        + ((d * 7919) % 11) as f64 * 0.5
        - 2.5;
    let working = d % 7 != 6 && (6..22).contains(&h);
    let mix = 0.7 + 0.1 * (((d * 31) % 13) as f64 / 6.0 - 1.0);
    let line = if working { 12.0 } else { 0.0 };
    let (knit, woven) = (line * mix, line * (1.0 - mix) / 0.8);
    let (sum, samples) = match k {
        0 => (knit, 0),
        1 => (woven, 0),
        TEMPERATURE => (temp, 1),
        _ => (
            10.0 + k as f64 + wiggle + 40.0 * line + 5.0 * (18.0 - temp).max(0.0),
            0,
        ),
    };
    HourAgg {
        sum,
        samples,
        covered_ms: 3_600_000,
        ..HourAgg::default()
    }
}

fn load(dir: &Path, points: usize) -> anyhow::Result<plantmeter_common::Plan> {
    let cfg = dir.join("bench.toml");
    std::fs::write(&cfg, config(dir, points)).context("writing the bench config")?;
    plantmeter_common::config::load(&cfg).map_err(|e| anyhow::anyhow!("bench config: {e}"))
}

pub fn report(a: ReportBenchArgs) -> anyhow::Result<()> {
    let points = a.points.max(TEMPERATURE + 2);
    let dir = tempfile_dir()?;
    let plan = load(dir.path(), points)?;
    let audit = plan
        .audit
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("bench config has no audit"))?;
    let grid = HourGrid::new(audit.timezone);
    let db = crate::store::open_db(&plan.gateway.data_dir)?;
    let t = Instant::now();
    {
        let mut agg = Aggregates::open(&db, &grid)?;
        let d0 = HourGrid::day_of_date(audit.baseline.0);
        let mut batch = sled::Batch::default();
        for (i, m) in plan.meters().enumerate() {
            for (j, p) in m.points.iter().enumerate() {
                let id = agg.id(&format!("{}.{}", m.name, p.name), &mut batch);
                let mut days = Vec::with_capacity(a.days as usize);
                for d in 0..a.days {
                    let mut b = DayBlock::default();
                    for (h, x) in b.0.iter_mut().enumerate() {
                        *x = hour(i * 10 + j, d, h);
                    }
                    days.push((d0 + d, b));
                }
                agg.merge_days(&mut batch, id, days.iter().map(|(d, b)| (*d, b)))?;
            }
        }
        agg.apply(batch)?;
    }
    let fill = t.elapsed();
    let mut engine = AuditEngine::open(&db, &plan)?;
    let now = plantmeter_common::model::parse_ts_ms("2026-01-02T00:00:00Z").unwrap_or(0);
    let mut times = Vec::new();
    let mut indicators = 0;
    let mut candidates = 0;
    for _ in 0..a.runs.max(1) {
        let t = Instant::now();
        let r = engine.report(now)?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        indicators = r.indicators.len();
        candidates = r
            .indicators
            .iter()
            .map(|(_, i)| i.model.candidates.len())
            .max()
            .unwrap_or(0);
    }
    drop(engine);
    drop(db);
    // As `plantmeter report` sees it: a fresh process opening the store.
    let t = Instant::now();
    let db = crate::store::open_db(&plan.gateway.data_dir)?;
    let mut engine = AuditEngine::open(&db, &plan)?;
    engine.report(now)?;
    let reopened = t.elapsed().as_secs_f64() * 1000.0;
    let first = times[0];
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    println!(
        "bench report: {points} points x {} days = {} hourly aggregates (stored in {:.0} ms)",
        a.days,
        points as i64 * a.days * 24,
        fill.as_secs_f64() * 1000.0
    );
    println!(
        "  report ({indicators} indicators, daily model, {candidates} candidates each (2 products, an HDD driver), baseline + reporting): \
         first {first:.1} ms, median of {} {median:.1} ms (target < 100 ms); store reopened + report {reopened:.1} ms",
        times.len()
    );
    Ok(())
}

pub fn import(a: ImportBenchArgs) -> anyhow::Result<()> {
    let points = a.points.max(TEMPERATURE + 2);
    let dir = tempfile_dir()?;
    let plan = load(dir.path(), points)?;
    let csv_path = dir.path().join("bench.csv");
    let names: Vec<(String, String)> = plan
        .meters()
        .flat_map(|m| {
            m.points
                .iter()
                .map(move |p| (m.name.clone(), p.name.clone()))
        })
        .collect();
    let t0 = plantmeter_common::model::parse_ts_ms("2025-01-01T00:00:00+08:00").unwrap_or(0);
    let steps = a.days * 24 * 12;
    let mut csv = String::with_capacity((steps as usize) * points * 48);
    csv.push_str("ts,meter,point,value\n");
    for s in 0..steps {
        let ts = plantmeter_common::model::format_ts_ms(t0 + s * 300_000);
        for (i, (m, p)) in names.iter().enumerate() {
            let _ = writeln!(
                csv,
                "{ts},{m},{p},{:.3}",
                (s as f64) * (1.0 + i as f64 * 0.01)
            );
        }
    }
    std::fs::write(&csv_path, &csv).context("writing the bench CSV")?;
    let bytes = std::fs::metadata(&csv_path)?.len() as usize;
    let rows = steps as usize * points;
    let now = plantmeter_common::Clock::wall().now_ms();
    let t = Instant::now();
    let input = crate::audit::import::Input::csv(&csv_path);
    let checked = crate::audit::import::validate(&plan, &input, now, false)?;
    let t_parse = t.elapsed();
    let db = crate::store::open_db(&plan.gateway.data_dir)?;
    let t1 = Instant::now();
    let s = crate::audit::import::import(&db, &plan, &input, checked, now, false)?;
    let t_import = t1.elapsed();
    let total = t_parse + t_import;
    println!(
        "bench import: {rows} rows ({points} points every 5 min over {} days, {:.1} MB CSV) -> {} hourly aggregates",
        a.days,
        bytes as f64 / 1e6,
        s.hours
    );
    println!(
        "  validate {:.0} ms ({:.0} rows/s), aggregate + write {:.0} ms; total {:.0} ms = {:.0} rows/s (target >= 500 000 rows/s)",
        t_parse.as_secs_f64() * 1000.0,
        rows as f64 / t_parse.as_secs_f64(),
        t_import.as_secs_f64() * 1000.0,
        total.as_secs_f64() * 1000.0,
        rows as f64 / total.as_secs_f64()
    );
    Ok(())
}

/// A temporary directory removed on drop.
fn tempfile_dir() -> anyhow::Result<TempDir> {
    let base = std::env::temp_dir().join(format!(
        "plantmeter-bench-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    Ok(TempDir(base))
}

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
