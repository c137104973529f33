//! `sigfab`: run, check and explore Signal Fabric pipelines and recordings.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sigfab_engine::cli;

/// mimalloc rather than the system allocator: frames and records are small
/// allocations made by one task and freed by another, and glibc's malloc
/// made band_powers about 13 % slower (docs/ARCHITECTURE.md, "Choices worth
/// knowing"). The bench binaries use the same one.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "sigfab",
    version,
    about = "Streaming signal processing for bedside waveforms"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline until its sources end (or for a set time), then report.
    Run(cli::RunArgs),
    /// Check a pipeline without running it.
    Validate {
        /// The pipeline YAML file.
        pipeline: PathBuf,
    },
    /// Print the JSON Schema of pipeline files, for editors.
    Schema,
    /// Describe a recording: format, start, duration, channels, annotations.
    Inspect {
        /// An .edf/.bdf file or a WFDB record (.hea, or the path without extension).
        recording: PathBuf,
        /// Also print patient and recording identification and annotation
        /// texts, which may identify a patient.
        #[arg(long)]
        show_phi: bool,
    },
    /// Publish a recording to a Kafka topic as wire-format frames (feeds a
    /// test bed from EDF/WFDB files).
    Replay(cli::ReplayArgs),
    /// Create an X-Wing (ML-KEM-768 + X25519) recipient key pair for the encrypted archive.
    Keygen(cli::KeygenArgs),
    /// Decrypt archive segments back into frames; every segment must authenticate fully
    /// before any of its frames is written. Appends an audit line per segment.
    Decrypt(cli::DecryptArgs),
    /// Manage the archive keystore (crypto-shredding).
    Keys {
        #[command(subcommand)]
        command: cli::KeysCommand,
    },
    /// Print a recording's physical samples as CSV (first row: channel names).
    Dump {
        /// An .edf/.bdf file or a WFDB record (.hea, or the path without extension).
        recording: PathBuf,
        /// Comma-separated channel names (default: all).
        #[arg(long, value_delimiter = ',')]
        channels: Vec<String>,
        /// Start, in seconds from the beginning (e.g. 10 or 10s).
        #[arg(long, default_value = "0")]
        start: String,
        /// How much to print, in seconds (default: to the end).
        #[arg(long)]
        duration: Option<String>,
    },
}

fn main() -> ExitCode {
    cli::init_logging();
    let args = Args::parse();
    let result = match args.command {
        Command::Run(args) => cli::run(&args),
        Command::Validate { pipeline } => cli::validate(&pipeline),
        Command::Schema => cli::schema(),
        Command::Inspect { recording, show_phi } => cli::inspect(&recording, show_phi),
        Command::Replay(args) => cli::replay(&args),
        Command::Keygen(args) => cli::keygen(&args),
        Command::Decrypt(args) => cli::decrypt(&args),
        Command::Keys { command } => cli::keys(&command),
        Command::Dump {
            recording,
            channels,
            start,
            duration,
        } => cli::dump(&recording, &channels, &start, duration.as_deref()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sigfab: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
