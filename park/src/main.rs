//! `plantmeter-park`: the central side for many gateways. Consumes the gateways' MQTT topics (data
//! through a shared subscription, so several instances split the load), keeps every reading once in
//! PostgreSQL, and reports per gateway what is stored and what is missing.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod allocation;
mod audit;
mod bench;
mod bounds;
mod config;
mod db;
mod ingest;
mod instance;
mod park_table;
mod replay;
mod topic;
mod web;

#[derive(Parser)]
#[command(name = "plantmeter-park", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Consume and store until SIGTERM (exit 0).
    Run {
        #[arg(long)]
        config: PathBuf,
        /// This instance's name, part of its MQTT client id (a persistent session per instance).
        /// Default: the first free slot on this host (`HOSTNAME-0`, `HOSTNAME-1`, …).
        #[arg(long)]
        instance: Option<String>,
    },
    /// Validate the config (`FILE:LINE:COL: message`, exit 2).
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// A plant's audit report (the agent's format), or without --plant the park report.
    Report {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        plant: Option<String>,
        /// Reporting period (local dates, both included: `--to 2026-06-30` is its last day); both or neither.
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        #[arg(long, value_parser = ["json", "csv", "html", "xlsx"])]
        format: String,
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, default_value = "en", value_parser = ["en", "zh"])]
        lang: String,
    },
    /// Benchmarks that print figures: `ingest` (data messages/s into PostgreSQL, one and two instances).
    Bench {
        #[arg(value_parser = ["ingest"])]
        what: String,
        #[arg(long)]
        config: PathBuf,
        #[arg(long, default_value_t = 20_000)]
        messages: u64,
        #[arg(long, default_value_t = 10)]
        points: usize,
        /// Simulated gateways publishing concurrently, each its own MQTT client and seqs.
        #[arg(long, default_value_t = 1)]
        gateways: u64,
    },
    /// Per gateway: messages stored, first and last seq, missing seq ranges, evictions.
    Status {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
}

/// Why the program stops with an error, and its exit code.
enum Failure {
    /// Bad input: exit 2.
    Bad(String),
    /// Anything else: exit 1.
    Other(anyhow::Error),
}

fn load(path: &Path) -> Result<config::Config, Failure> {
    config::load(path).map_err(|e| Failure::Bad(e.to_string()))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let result = match cli.command {
        Command::Check { config } => load(&config).map(|c| {
            println!(
                "{}: ok: park \"{}\", {} plant(s), {} gateway(s); data from $share/{}/{}/+/+/data/#",
                config.display(),
                c.park,
                c.plants.len(),
                c.plants.iter().map(|p| p.gateways.len()).sum::<usize>(),
                c.mqtt.share_group,
                c.mqtt.topic_prefix
            );
        }),
        Command::Run { config, instance } => load(&config).and_then(|c| run(c, instance)),
        Command::Status { config, format } => load(&config).and_then(|c| status(c, &format)),
        Command::Bench {
            what: _,
            config,
            messages,
            points,
            gateways,
        } => load(&config).and_then(|c| {
            runtime()?
                .block_on(bench::ingest(&config, &c, gateways, messages, points))
                .map_err(Failure::Other)
        }),
        Command::Report {
            config,
            plant,
            from,
            to,
            format,
            out,
            lang,
        } => load(&config).and_then(|c| report(c, plant, from, to, &format, out, &lang)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Bad(msg)) => {
            eprintln!("{msg}");
            ExitCode::from(2)
        }
        Err(Failure::Other(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::Other(anyhow::anyhow!("tokio runtime: {e}")))
}

fn run(cfg: config::Config, instance: Option<String>) -> Result<(), Failure> {
    let slot =
        instance::claim(&cfg.mqtt.client_id, instance).map_err(|e| Failure::Other(e.into()))?;
    let token = web::read_token(&cfg).map_err(Failure::Other)?;
    let rt = runtime()?;
    rt.block_on(async move {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("stopping");
            let _ = stop_tx.send(true);
        });
        let listen = cfg.http.listen;
        // Several instances on one host share a config: the page is served by the one that got the
        // port; the others keep trying it every second, so the page moves to a survivor within seconds.
        let web = match tokio::net::TcpListener::bind(listen).await {
            Err(e) if e.kind() != std::io::ErrorKind::AddrInUse => {
                return Err(Failure::Other(anyhow::anyhow!(
                    "cannot listen on [http] listen {listen}: {e}"
                )))
            }
            first => {
                let (cfg, mut stop) = (cfg.clone(), stop_rx.clone());
                Some(tokio::spawn(async move {
                    let mut bound = first.ok();
                    if bound.is_none() {
                        tracing::info!(%listen, "[http] listen is in use (another instance?): serving the page when it is free");
                    }
                    loop {
                        if let Some(listener) = bound.take() {
                            tracing::info!(%listen, "web page and API");
                            return web::serve(cfg, listener, token, stop).await;
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                            _ = stop.wait_for(|s| *s) => return Ok(()),
                        }
                        bound = tokio::net::TcpListener::bind(listen).await.ok();
                    }
                }))
            }
        };
        let r = ingest::run(cfg, slot.client_id.clone(), stop_rx)
            .await
            .map_err(Failure::Other);
        if let Some(web) = web {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), web).await;
        }
        r
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// A database connection with the schema in place (an empty database reads as no gateway yet).
async fn connect_migrated(cfg: &config::Config) -> Result<tokio_postgres::Client, Failure> {
    let mut client = db::connect(&cfg.database)
        .await
        .map_err(|e| Failure::Other(e.into()))?;
    db::migrate(&mut client)
        .await
        .map_err(|e| Failure::Other(anyhow::anyhow!("database schema: {}", db::explain(&e))))?;
    Ok(client)
}

fn date(arg: &str, s: &str) -> Result<chrono::NaiveDate, Failure> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| Failure::Bad(format!("{arg} \"{s}\" is not a date YYYY-MM-DD")))
}

fn report(
    cfg: config::Config,
    plant: Option<String>,
    from: Option<String>,
    to: Option<String>,
    format: &str,
    out: Option<PathBuf>,
    lang: &str,
) -> Result<(), Failure> {
    let lang = audit::render::Lang::parse(lang)
        .ok_or_else(|| Failure::Bad(format!("--lang {lang}: en or zh")))?;
    let period = match (from, to) {
        (None, None) => None,
        (Some(f), Some(t)) => {
            // As the agent's `report`: `--to` is the last day included (half-open inside).
            let (f, t) = (date("--from", &f)?, date("--to", &t)?);
            if t < f {
                return Err(Failure::Bad(format!(
                    "--from {f} --to {t}: the period is empty (--to is the last day included and cannot be before --from)"
                )));
            }
            let end = t
                .succ_opt()
                .ok_or_else(|| Failure::Bad(format!("--to {t}: no day after it")))?;
            Some((f, end))
        }
        _ => {
            return Err(Failure::Bad(
                "--from and --to go together (local dates, both included)".into(),
            ))
        }
    };
    if let Some(name) = &plant {
        if !cfg.plants.iter().any(|p| &p.name == name) {
            let known: Vec<&str> = cfg.plants.iter().map(|p| p.name.as_str()).collect();
            return Err(Failure::Bad(
                audit::AuditError::UnknownPlant {
                    name: name.clone(),
                    file: cfg.source.display().to_string(),
                    known: known.join(", "),
                }
                .to_string(),
            ));
        }
    }
    let rt = runtime()?;
    let bytes: Vec<u8> = rt.block_on(async {
        let client = connect_migrated(&cfg).await?;
        let bad = |e: audit::AuditError| match e {
            audit::AuditError::Config(c) => Failure::Bad(c.to_string()),
            other => Failure::Other(other.into()),
        };
        let json = |v: &serde_json::Value| {
            serde_json::to_string_pretty(v)
                .map(|t| (t + "\n").into_bytes())
                .map_err(|e| Failure::Other(e.into()))
        };
        match cfg.plants.iter().find(|p| Some(&p.name) == plant.as_ref()) {
            Some(p) => {
                let r = audit::plant_report(&client, &cfg, p, period)
                    .await
                    .map_err(bad)?;
                match format {
                    "csv" => Ok(audit::render::csv(&r, lang)),
                    "html" => Ok(audit::render::html(&r, lang).into_bytes()),
                    "xlsx" => audit::render::xlsx(&r, lang)
                        .map_err(|e| Failure::Other(anyhow::anyhow!("writing the workbook: {e}"))),
                    _ => json(&serde_json::to_value(&r).map_err(|e| Failure::Other(e.into()))?),
                }
            }
            None => {
                let v = audit::park_report(&client, &cfg, period)
                    .await
                    .map_err(bad)?;
                match format {
                    "json" => json(&v),
                    other => park_table::render(&v, other).map_err(|e| {
                        Failure::Other(anyhow::anyhow!("writing the park report: {e}"))
                    }),
                }
            }
        }
    })?;
    match out {
        Some(path) => std::fs::write(&path, bytes)
            .map_err(|e| Failure::Other(anyhow::anyhow!("cannot write {}: {e}", path.display()))),
        None => {
            use std::io::Write as _;
            std::io::stdout()
                .write_all(&bytes)
                .map_err(|e| Failure::Other(e.into()))
        }
    }
}

fn status(cfg: config::Config, format: &str) -> Result<(), Failure> {
    let rt = runtime()?;
    let gateways = rt.block_on(async {
        let client = connect_migrated(&cfg).await?;
        db::status(&client).await.map_err(|e| {
            Failure::Other(anyhow::anyhow!("reading the database: {}", db::explain(&e)))
        })
    })?;
    if format == "json" {
        let text = serde_json::to_string_pretty(&gateways).map_err(|e| Failure::Other(e.into()))?;
        println!("{text}");
        return Ok(());
    }
    println!(
        "{:<24} {:<8} {:<25} {:>10} {:>10} {:>10} {:>9} {:>9}  missing",
        "gateway",
        "online",
        "last message",
        "messages",
        "seq first",
        "seq last",
        "evictions",
        "rejected"
    );
    for g in &gateways {
        let opt = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
        let missing: Vec<String> = g
            .missing
            .iter()
            .map(|[a, b]| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        println!(
            "{:<24} {:<8} {:<25} {:>10} {:>10} {:>10} {:>9} {:>9}  {}",
            format!("{}/{}", g.site, g.gateway),
            if g.online { "yes" } else { "no" },
            g.last_message.as_deref().unwrap_or("-"),
            g.messages,
            opt(g.seq_first),
            opt(g.seq_last),
            opt(g.evictions),
            g.rejected,
            if missing.is_empty() {
                "-".to_string()
            } else {
                missing.join(", ")
            }
        );
        if !g.gone.is_empty() {
            let gone: Vec<String> = g.gone.iter().map(|[a, b]| format!("{a}-{b}")).collect();
            println!(
                "{:<24} gone at the gateway (evicted or past its retention): {}",
                "",
                gone.join(", ")
            );
        }
    }
    Ok(())
}
