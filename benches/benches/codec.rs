//! Lossless waveform codec against zstd -3, zstd -19 and flac -8 on the real recordings.
//!
//!     cargo bench -p sigfab-benches --bench codec
//!
//! Input: each channel's integer digital samples (gaps as 0), 16-bit little-endian, 24-bit for
//! BDF. flac gets one raw mono file per channel (`--force-raw-format --channels=1 --bps=16|24`,
//! `--no-padding --no-seektable`); zstd gets one planar file (all channels in a row), so it can
//! use redundancy across channels. Everything runs on CPU 0 (children inherit the pinning).
//! External times: median wall time of one encoder process over all its files (flac takes many
//! inputs; one process per sample rate), writing its output to the temp dir (page cache);
//! writing the inputs is excluded.
//! Ours: blocks of 10 s and 1 s, all channels per block, median of 5 runs; ratio = raw bytes /
//! coded bytes, MB/s = raw bytes / time.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sigfab_benches::{median_time, pin_to_one_core};
use sigfab_engine::readers::{self, RecordingReader};
use sigfab_engine::shared_data;
use sigfab_operators::codec::{
    block_len, BlockDecoder, BlockEncoder, ChannelBlock, ChannelData, CodecConfig,
};

const RECORDINGS: [&str; 4] = [
    "edf/eegmmidb-style-64ch-128hz.edf",
    "edf/19ch-125hz-annotations.bdf",
    "wfdb/100",
    "wfdb/03700181",
];
const EXTERNAL_RUNS: usize = 3;

struct Recording {
    name: String,
    channels: Vec<ChannelData>,
    rates: Vec<f64>,
    bytes_per_sample: usize,
}

impl Recording {
    fn raw_bytes(&self) -> usize {
        self.channels.iter().map(|c| c.samples.len()).sum::<usize>() * self.bytes_per_sample
    }

    fn raw_channel(&self, c: usize) -> Vec<u8> {
        let width = self.bytes_per_sample;
        self.channels[c]
            .samples
            .iter()
            .flat_map(|v| v.to_le_bytes()[..width].to_vec())
            .collect()
    }
}

fn load(relative: &str) -> Recording {
    let mut reader: Box<dyn RecordingReader> =
        readers::open(&shared_data::require(relative)).expect("open recording");
    let signals = reader.header().signals.clone();
    let mut physical = vec![Vec::new(); signals.len()];
    while reader.read_blocks(64, &mut physical).expect("read") > 0 {}
    let channels: Vec<ChannelData> = signals
        .iter()
        .zip(&physical)
        .map(|(s, samples)| {
            let mut data = ChannelData::default();
            s.grid
                .expect("grid")
                .quantise(samples, &mut data)
                .expect("on grid");
            data
        })
        .collect();
    let max_abs = channels
        .iter()
        .flat_map(|c| &c.samples)
        .map(|v| v.unsigned_abs())
        .max()
        .unwrap_or(0);
    Recording {
        name: relative.rsplit('/').next().unwrap_or(relative).to_string(),
        rates: signals.iter().map(|s| s.sample_rate).collect(),
        bytes_per_sample: if max_abs > 32768 { 3 } else { 2 },
        channels,
    }
}

/// The recording cut into blocks of `seconds`, all channels per block.
fn blocks(recording: &Recording, seconds: u32) -> Vec<ChannelBlock> {
    let lens: Vec<usize> = recording
        .rates
        .iter()
        .map(|&r| block_len(r, seconds).expect("length"))
        .collect();
    let count = recording.channels[0].samples.len().div_ceil(lens[0]);
    (0..count)
        .map(|b| ChannelBlock {
            channels: recording
                .channels
                .iter()
                .zip(&lens)
                .map(|(c, &len)| slice(c, b * len, len))
                .collect(),
        })
        .collect()
}

fn slice(data: &ChannelData, start: usize, len: usize) -> ChannelData {
    let end = (start + len).min(data.samples.len());
    let mut out = ChannelData::default();
    for i in start.min(end)..end {
        if data.is_gap(i) {
            out.push_gap();
        } else {
            out.samples.push(data.samples[i]);
        }
    }
    out
}

struct Row {
    codec: String,
    coded_bytes: usize,
    encode: Duration,
    decode: Option<Duration>,
}

fn ours(recording: &Recording, seconds: u32, config: CodecConfig) -> Row {
    let blocks = blocks(recording, seconds);
    let mut encoder = BlockEncoder::new(config);
    let mut coded: Vec<Vec<u8>> = vec![Vec::new(); blocks.len()];
    let encode = median_time(5, || {
        for (block, out) in blocks.iter().zip(&mut coded) {
            out.clear();
            encoder.encode(block, out).expect("encode");
        }
    });
    let mut decoder = BlockDecoder::new();
    let mut decoded = ChannelBlock::default();
    let decode = median_time(5, || {
        for bytes in &coded {
            decoder.decode_into(bytes, &mut decoded).expect("decode");
        }
    });
    for (block, bytes) in blocks.iter().zip(&coded) {
        assert_eq!(&decoder.decode(bytes).expect("decode"), block, "round trip");
    }
    Row {
        codec: format!("ours, {seconds} s, LPC ≤ {}", config.max_lpc_order),
        coded_bytes: coded.iter().map(Vec::len).sum(),
        encode,
        decode: Some(decode),
    }
}

/// Runs `program args… files…` as one process (so start-up is paid once) and returns the
/// coded bytes (`output(file)` names each file's output) and the wall time.
fn run_external(
    program: &str,
    args: &[String],
    files: &[PathBuf],
    output: fn(&Path) -> PathBuf,
) -> (usize, Duration) {
    let start = Instant::now();
    let result = Command::new(program)
        .args(args)
        .args(files)
        .output()
        .expect("run external encoder");
    let elapsed = start.elapsed();
    assert!(
        result.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&result.stderr)
    );
    let coded = files
        .iter()
        .map(|f| std::fs::metadata(output(f)).expect("encoder output").len() as usize)
        .sum();
    (coded, elapsed)
}

/// Median wall time of `program` over `files`.
fn external(
    codec: &str,
    program: &str,
    args: &[String],
    files: &[PathBuf],
    output: fn(&Path) -> PathBuf,
) -> Row {
    let mut coded_bytes = 0;
    let encode = median_time(EXTERNAL_RUNS, || {
        coded_bytes = run_external(program, args, files, output).0
    });
    Row {
        codec: codec.to_string(),
        coded_bytes,
        encode,
        decode: None,
    }
}

fn flac_args(bits: usize, rate: u32) -> Vec<String> {
    let fixed = [
        "-8",
        "-s",
        "-f",
        "--no-padding",
        "--no-seektable",
        "--force-raw-format",
        "--endian=little",
        "--sign=signed",
        "--channels=1",
    ];
    let variable = [format!("--bps={bits}"), format!("--sample-rate={rate}")];
    fixed.iter().map(|s| s.to_string()).chain(variable).collect()
}

fn write(path: &Path, bytes: &[u8]) -> PathBuf {
    std::fs::write(path, bytes).expect("write temp file");
    path.to_path_buf()
}

fn compare(recording: &Recording, dir: &Path) -> Vec<Row> {
    let planar: Vec<u8> = (0..recording.channels.len())
        .flat_map(|c| recording.raw_channel(c))
        .collect();
    let planar_file = [write(&dir.join("planar.raw"), &planar)];
    let zst = |f: &Path| f.with_extension("raw.zst");
    let zstd = |level: &str| vec![level.to_string(), "-q".into(), "-f".into()];
    let mut rows = vec![
        external("zstd -3", "zstd", &zstd("-3"), &planar_file, zst),
        external("zstd -19", "zstd", &zstd("-19"), &planar_file, zst),
    ];
    // flac takes one rate per run: one process per distinct rate, all its channels at once.
    let bits = recording.bytes_per_sample * 8;
    let mut flac = Row {
        codec: "flac -8".into(),
        coded_bytes: 0,
        encode: Duration::ZERO,
        decode: None,
    };
    let mut rates: Vec<u32> = recording.rates.iter().map(|r| r.round() as u32).collect();
    rates.sort_unstable();
    rates.dedup();
    for rate in rates {
        let files: Vec<PathBuf> = (0..recording.channels.len())
            .filter(|&c| recording.rates[c].round() as u32 == rate)
            .map(|c| write(&dir.join(format!("ch{c}.raw")), &recording.raw_channel(c)))
            .collect();
        let row = external("flac -8", "flac", &flac_args(bits, rate), &files, |f| {
            f.with_extension("flac")
        });
        flac.coded_bytes += row.coded_bytes;
        flac.encode += row.encode;
    }
    rows.push(flac);
    for (seconds, max_lpc_order) in [(10, 12), (10, 32), (10, 8), (1, 12)] {
        let config = CodecConfig {
            max_lpc_order,
            ..CodecConfig::default()
        };
        rows.push(ours(recording, seconds, config));
    }
    rows
}

fn main() {
    let pinned = pin_to_one_core();
    let dir = std::env::temp_dir().join(format!("sigfab-codec-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    println!("pinned to CPU 0: {pinned}\n");
    println!(
        "| record | raw | codec | ratio | encode MB/s | decode MB/s | ratio vs flac -8 | speed vs flac -8 |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for relative in RECORDINGS {
        let recording = load(relative);
        let raw = recording.raw_bytes();
        let rows = compare(&recording, &dir);
        let flac = rows.iter().find(|r| r.codec == "flac -8").expect("flac row");
        let mb_s = |d: Duration| raw as f64 / d.as_secs_f64() / 1e6;
        for row in &rows {
            let ratio = raw as f64 / row.coded_bytes as f64;
            println!(
                "| {} | {} ch, {}-bit, {:.2} MB | {} | {:.3} | {:.1} | {} | {:.3} | {:.1}× |",
                recording.name,
                recording.channels.len(),
                recording.bytes_per_sample * 8,
                raw as f64 / 1e6,
                row.codec,
                ratio,
                mb_s(row.encode),
                row.decode.map_or("–".to_string(), |d| format!("{:.1}", mb_s(d))),
                flac.coded_bytes as f64 / row.coded_bytes as f64,
                mb_s(row.encode) / mb_s(flac.encode),
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
