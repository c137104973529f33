//! The `sigfab` commands. `main.rs` parses arguments; these do the work and
//! return the exit code (0 ok, 1 failure, 2 invalid pipeline).

mod archive;
mod recording;

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::ack::AckStatus;
use crate::config::{self, graph::Role, DurationSpec};
use crate::runtime::{self, RunOptions, RunReport};

pub use archive::{decrypt, keygen, keys, DecryptArgs, DecryptFormat, KeygenArgs, KeysCommand};
pub use recording::{dump, inspect};

/// Logs go to stderr; `RUST_LOG` overrides the default `info` level.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// Exit code for a pipeline file that does not check out.
const INVALID_PIPELINE: u8 = 2;

pub fn validate(file: &Path) -> anyhow::Result<ExitCode> {
    match config::load(file) {
        Ok((pipeline, graph)) => {
            let count = |role, noun: &str| {
                let n = graph.ids_of(role).count();
                format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
            };
            println!(
                "{}: ok ({}, {}, {}{})",
                file.display(),
                count(Role::Source, "source"),
                count(Role::Operator, "operator"),
                count(Role::Sink, "sink"),
                if pipeline.spec.dead_letter.is_some() {
                    ", dead letters kept"
                } else {
                    ""
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprintln!("{errors}");
            Ok(ExitCode::from(INVALID_PIPELINE))
        }
    }
}

pub fn schema() -> anyhow::Result<ExitCode> {
    let schema = schemars::schema_for!(config::PipelineSpec);
    println!("{}", serde_json::to_string_pretty(&schema)?);
    Ok(ExitCode::SUCCESS)
}

/// What `sigfab run` was asked to do.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The pipeline YAML file.
    pub pipeline: std::path::PathBuf,
    /// Stop the sources after this long, e.g. 30s or 5m, then drain.
    #[arg(long = "for", value_name = "DURATION")]
    pub run_for: Option<String>,
    /// Also write the end-of-run report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<std::path::PathBuf>,
    /// Serve /metrics, /ready and /live on HOST:PORT (port 0 picks a free
    /// one); overrides the pipeline's settings.metrics_listen.
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics: Option<String>,
}

pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let run_for = args
        .run_for
        .as_deref()
        .map(|text| DurationSpec::parse(text).map(|d| d.0).map_err(anyhow::Error::msg))
        .transpose()
        .context("--for")?;
    let file = args.pipeline.as_path();
    let options = RunOptions {
        run_for,
        progress: std::io::stderr().is_terminal(),
        metrics_listen: args.metrics.clone(),
    };
    match config::load(file) {
        Ok((pipeline, graph)) => run_loaded(file, &pipeline, &graph, &options, args.report.as_deref()),
        Err(errors) => {
            eprintln!("{errors}");
            Ok(ExitCode::from(INVALID_PIPELINE))
        }
    }
}

/// Wire encodings, as command-line values.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum EncodingArg {
    Binary,
    Json,
}

/// What `sigfab replay` was asked to do.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// An .edf/.bdf file or a WFDB record (.hea, or the path without extension).
    pub recording: std::path::PathBuf,
    /// Bootstrap brokers, comma-separated host:port.
    #[arg(long)]
    pub brokers: String,
    /// Topic to publish to.
    #[arg(long)]
    pub topic: String,
    /// Stream id of the frames (default: the file name without extension).
    #[arg(long)]
    pub stream_id: Option<String>,
    /// Pace by the sample clock, like a live device (default: as fast as possible).
    #[arg(long)]
    pub realtime: bool,
    /// Frame duration.
    #[arg(long, default_value = "40ms")]
    pub frame: String,
    /// Wire encoding.
    #[arg(long, value_enum, default_value_t = EncodingArg::Binary)]
    pub encoding: EncodingArg,
    /// A librdkafka property for the producer, KEY=VALUE (repeatable),
    /// e.g. security.protocol=SASL_SSL.
    #[arg(long = "property", value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
}

/// Replays a recording into Kafka by running a two-node pipeline (file
/// source → Kafka sink), so pacing, acknowledgements and the drain on Ctrl-C
/// are the engine's own. JSON is YAML, so the pipeline is written as JSON.
pub fn replay(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    DurationSpec::parse(&args.frame)
        .map_err(anyhow::Error::msg)
        .context("--frame")?;
    let recording = std::path::absolute(&args.recording).context("recording path")?;
    let mut file = serde_json::json!({
        "path": recording.to_string_lossy(),
        "frame": args.frame,
        "pace": if args.realtime { "realtime" } else { "fast" },
    });
    if let Some(id) = &args.stream_id {
        file["stream_id"] = serde_json::Value::from(id.as_str());
    }
    let mut properties = serde_json::Map::new();
    for pair in &args.properties {
        let (key, value) = pair
            .split_once('=')
            .with_context(|| format!("--property {pair}: write KEY=VALUE"))?;
        properties.insert(key.trim().to_string(), serde_json::Value::from(value.trim()));
    }
    let pipeline = serde_json::json!({
        "description": "sigfab replay",
        "sources": { "recording": { "file": file } },
        "sinks": { "kafka": { "inputs": ["recording"], "kafka": {
            "brokers": args.brokers, "topic": args.topic,
            "encoding": match args.encoding { EncodingArg::Binary => "binary", EncodingArg::Json => "json" },
            "properties": properties,
        } } },
    });
    let name = Path::new("<replay>");
    match config::load_str(name, pipeline.to_string()) {
        Ok((pipeline, graph)) => {
            let options = RunOptions {
                progress: std::io::stderr().is_terminal(),
                ..RunOptions::default()
            };
            run_loaded(name, &pipeline, &graph, &options, None)
        }
        Err(errors) => {
            eprintln!("{errors}");
            Ok(ExitCode::from(INVALID_PIPELINE))
        }
    }
}

fn run_loaded(
    file: &Path,
    pipeline: &config::LoadedPipeline,
    graph: &config::graph::Graph,
    options: &RunOptions,
    report_file: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(runtime::run(pipeline, graph, options))?;
    eprint!("{}", describe(file, &report));
    if let Some(path) = report_file {
        let json = serde_json::to_string_pretty(&report.to_json())?;
        std::fs::write(path, json)
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
    }
    Ok(if report.unhandled() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The end-of-run summary: what each node did, where the outputs are, and
/// what became of every frame.
pub fn describe(file: &Path, report: &RunReport) -> String {
    use std::fmt::Write;
    let mut text = String::new();
    let how = if report.interrupted { "stopped" } else { "finished" };
    let _ = writeln!(
        text,
        "sigfab: {} {how} after {:.2} s",
        file.display(),
        report.elapsed.as_secs_f64()
    );
    for node in &report.nodes {
        let _ = match node.role {
            Role::Source => writeln!(
                text,
                "  source   {:<16} {} frames, {} samples",
                node.name, node.items_out, node.samples_in
            ),
            Role::Operator => writeln!(
                text,
                "  operator {:<16} {} in, {} out, {} rejected",
                node.name, node.items_in, node.items_out, node.rejected
            ),
            Role::Sink => {
                let target = node.target.as_deref().unwrap_or("-");
                let latency = node.latency.map_or_else(String::new, |[p50, p99, p999]| {
                    format!(
                        "; latency p50 {} p99 {} p99.9 {}",
                        human(p50),
                        human(p99),
                        human(p999)
                    )
                });
                writeln!(
                    text,
                    "  sink     {:<16} {} items -> {target}{latency}",
                    node.name, node.items_in
                )
            }
        };
    }
    if let Some(path) = &report.dead_letter_path {
        let _ = writeln!(
            text,
            "  dead letters: {} -> {}",
            report.dead_letters,
            path.display()
        );
    }
    let statuses: Vec<String> = report
        .acks
        .iter()
        .map(|(s, n)| format!("{n} {}", s.as_str()))
        .collect();
    let _ = writeln!(
        text,
        "  source frames acknowledged: {}",
        if statuses.is_empty() {
            "none".to_string()
        } else {
            statuses.join(", ")
        }
    );
    if report.unhandled() > 0 {
        let _ = writeln!(
            text,
            "  warning: {} frames were not handled ({} failed, {} rejected without a dead_letter sink, {} abandoned)",
            report.unhandled(),
            report.count(AckStatus::Failed),
            report.count(AckStatus::Rejected),
            report.count(AckStatus::Abandoned)
        );
    }
    text
}

/// A short duration for people: 850 µs, 12.3 ms, 2.10 s.
fn human(d: std::time::Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 1e6 {
        format!("{:.1} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

/// Seconds from "10", "2.5" or a duration such as "10s" or "1m".
fn parse_seconds(text: &str) -> anyhow::Result<f64> {
    if let Ok(seconds) = text.trim().parse::<f64>() {
        anyhow::ensure!(
            seconds.is_finite() && seconds >= 0.0,
            "'{text}' is not a time in seconds"
        );
        return Ok(seconds);
    }
    DurationSpec::parse(text)
        .map(|d| d.0.as_secs_f64())
        .map_err(anyhow::Error::msg)
}
