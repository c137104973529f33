//! De-identification end to end through the `sigfab` binary: canary PHI
//! written into a real EDF+ recording's header and annotations must not
//! appear in any output byte, log line or the /metrics text; pseudonyms are
//! stable across runs, change with the key, and the same canaries do reach
//! the outputs when no `deidentify` node is in the way (so the scan can
//! fail).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sigfab_engine::shared_data;

const MRN: &str = "8675309";
const FIRST_NAME: &str = "Zyxwvut";
const LAST_NAME: &str = "Canarysson";
const DOCTOR: &str = "Quillfeather";
const BIRTH_DATE: &str = "13-FEB-1931";
const ADMISSION: &str = "CANARYADMIT-4471";
const DEVICE_SERIAL: &str = "SN-CNRY-90210";
const IP_ADDRESS: &str = "10.66.77.88";
/// The recording's true start, 2009-08-12T16:15:00 (header local time as UTC), in ns.
const TRUE_START_NS: &str = "1250093700000000000";

const CANARIES: &[&str] = &[
    MRN,
    FIRST_NAME,
    LAST_NAME,
    DOCTOR,
    BIRTH_DATE,
    ADMISSION,
    DEVICE_SERIAL,
    IP_ADDRESS,
    TRUE_START_NS,
];

const KEY_A: &str = "Yx3nC6bq0VtS2kQ9wE7rT1uI5oP8aL4dF6gH0jK2mN4=";
const KEY_B: &str = "Bq7wE2rT9yU4iO1pA6sD3fG8hJ5kL0zX7cV2bN9mQ1w=";

/// The 64-channel EDF+ with canary PHI in its patient and recording fields
/// and three annotations of our own in the first data records.
fn canary_recording(dir: &Path) -> PathBuf {
    let mut bytes =
        std::fs::read(shared_data::require("edf/eegmmidb-style-64ch-128hz.edf")).expect("read EDF+");
    let patient = format!("{MRN} M {BIRTH_DATE} {FIRST_NAME}_{LAST_NAME}");
    let recording = format!("Startdate 12-AUG-2009 {ADMISSION} {DOCTOR} {DEVICE_SERIAL}");
    put_field(&mut bytes[8..88], &patient);
    put_field(&mut bytes[88..168], &recording);
    let texts = [
        format!("Pt {FIRST_NAME} {LAST_NAME} MRN {MRN} seen by Dr {DOCTOR}"),
        format!("Telemetry from {IP_ADDRESS} device {DEVICE_SERIAL}"),
        "T0".to_string(),
    ];
    for (record, text) in texts.iter().enumerate() {
        let (start, len) = annotation_region(&bytes, record);
        rewrite_annotations(&mut bytes[start..start + len], record, text);
    }
    let path = dir.join("canary.edf");
    std::fs::write(&path, bytes).expect("write canary EDF+");
    path
}

fn put_field(field: &mut [u8], text: &str) {
    assert!(text.len() <= field.len(), "header field too long");
    field.fill(b' ');
    field[..text.len()].copy_from_slice(text.as_bytes());
}

fn ascii_number(bytes: &[u8]) -> usize {
    String::from_utf8_lossy(bytes)
        .trim()
        .parse()
        .expect("EDF header number")
}

/// Byte offset and length of the "EDF Annotations" signal in data record
/// `record`.
fn annotation_region(bytes: &[u8], record: usize) -> (usize, usize) {
    let signals = ascii_number(&bytes[252..256]);
    let label = |i: usize| &bytes[256 + i * 16..256 + (i + 1) * 16];
    let annotations = (0..signals)
        .position(|i| label(i).starts_with(b"EDF Annotations"))
        .expect("an EDF+ annotation signal");
    let spr_at = 256 + signals * 216;
    let samples: Vec<usize> = (0..signals)
        .map(|i| ascii_number(&bytes[spr_at + i * 8..spr_at + (i + 1) * 8]))
        .collect();
    let record_len: usize = samples.iter().sum::<usize>() * 2;
    let offset = samples[..annotations].iter().sum::<usize>() * 2;
    (
        256 * (signals + 1) + record * record_len + offset,
        samples[annotations] * 2,
    )
}

/// Keeps the record's time-keeping TAL and puts one annotation after it.
fn rewrite_annotations(region: &mut [u8], record: usize, text: &str) {
    let keep = region.iter().position(|&b| b == 0).expect("time-keeping TAL") + 1;
    let tal = format!("+{record}.5\x14{text}\x14\0");
    assert!(
        keep + tal.len() <= region.len(),
        "annotation too long for the record"
    );
    region[keep..keep + tal.len()].copy_from_slice(tal.as_bytes());
    region[keep + tal.len()..].fill(0);
}

fn pipeline(dir: &Path, pace: &str, frame: &str, deidentify: bool) -> PathBuf {
    let (stage, stats_input) = if deidentify {
        (
            "  deid:\n    inputs: [eeg]\n    deidentify: { key_env: CANARY_DEID_KEY, key_version: 1 }\n",
            "deid",
        )
    } else {
        ("  deid:\n    inputs: [eeg]\n    passthrough: {}\n", "deid")
    };
    let yaml = format!(
        "sources:
  eeg:
    file: {{ path: canary.edf, frame: {frame}, pace: {pace} }}
operators:
{stage}  stats:
    inputs: [{stats_input}]
    frame_stats: {{}}
  strict:
    inputs: [deid]
    validate: {{ max_abs: 60 }}
sinks:
  jsonl: {{ inputs: [deid], file: {{ path: out/frames.jsonl }} }}
  binary: {{ inputs: [deid], file: {{ path: out/frames.bin, format: binary }} }}
  shown: {{ inputs: [deid], stdout: {{ format: jsonl }} }}
  summary: {{ inputs: [stats], stdout: {{}} }}
  kept: {{ inputs: [strict], file: {{ path: out/strict.jsonl }} }}
  records: {{ inputs: [stats], file: {{ path: out/stats.jsonl }} }}
dead_letter: {{ path: out/dead.jsonl }}
"
    );
    let path = dir.join(if deidentify { "deid.yaml" } else { "raw.yaml" });
    std::fs::write(&path, yaml).expect("write pipeline");
    path
}

/// Everything one run left behind: output files, stdout, stderr, /metrics.
struct RunOutput {
    files: Vec<(PathBuf, Vec<u8>)>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    metrics: Option<String>,
}

impl RunOutput {
    fn everything(&self) -> Vec<(String, &[u8])> {
        let mut all: Vec<(String, &[u8])> = self
            .files
            .iter()
            .map(|(p, b)| (p.display().to_string(), b.as_slice()))
            .collect();
        all.push(("stdout".into(), &self.stdout));
        all.push(("stderr (RUST_LOG=debug)".into(), &self.stderr));
        if let Some(metrics) = &self.metrics {
            all.push(("/metrics".into(), metrics.as_bytes()));
        }
        all
    }

    fn first_frame(&self) -> serde_json::Value {
        let (_, jsonl) = self
            .files
            .iter()
            .find(|(p, _)| p.ends_with("frames.jsonl"))
            .expect("frames.jsonl");
        let line = jsonl.split(|&b| b == b'\n').next().expect("a first line");
        serde_json::from_slice(line).expect("a JSON frame")
    }
}

fn run(dir: &Path, pipeline: &Path, key: &str, extra: &[&str]) -> RunOutput {
    let out_dir = dir.join("out");
    let _ = std::fs::remove_dir_all(&out_dir);
    let report = dir.join("out-report.json");
    let mut command = Command::new(env!("CARGO_BIN_EXE_sigfab"));
    command
        .arg("run")
        .arg(pipeline)
        .arg("--report")
        .arg(&report)
        .args(extra)
        .env("RUST_LOG", "debug")
        .env("CANARY_DEID_KEY", key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("start sigfab");
    let stdout = child.stdout.take().expect("stdout");
    let stdout = std::thread::spawn(move || read_all(stdout));
    let stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let (address_tx, address_rx) = std::sync::mpsc::channel();
    let stderr = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in stderr.split(b'\n') {
            let line = line.expect("stderr line");
            if let Some(address) = metrics_address(&line) {
                let _ = address_tx.send(address);
            }
            all.extend_from_slice(&line);
            all.push(b'\n');
        }
        all
    });
    let metrics = address_rx
        .recv_timeout(Duration::from_secs(30))
        .ok()
        .map(|address| {
            std::thread::sleep(Duration::from_millis(1500));
            scrape(&address)
        });
    let status = child.wait().expect("sigfab ran");
    let stdout = stdout.join().expect("stdout reader");
    let stderr = stderr.join().expect("stderr reader");
    assert!(
        status.success(),
        "sigfab run failed:\n{}",
        String::from_utf8_lossy(&stderr)
    );
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&out_dir).expect("outputs") {
        let path = entry.expect("entry").path();
        files.push((path.clone(), std::fs::read(&path).expect("read output")));
    }
    files.push((report.clone(), std::fs::read(&report).expect("report")));
    assert!(files.len() >= 6, "every sink wrote a file: {files:?}");
    RunOutput {
        files,
        stdout,
        stderr,
        metrics,
    }
}

fn read_all(mut reader: impl Read) -> Vec<u8> {
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).expect("read pipe");
    bytes
}

fn metrics_address(line: &[u8]) -> Option<String> {
    let line = String::from_utf8_lossy(line);
    let rest = line.split("metrics on http://").nth(1)?;
    Some(rest.split('/').next()?.to_string())
}

fn scrape(address: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connect to /metrics");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let text = String::from_utf8(read_all(stream)).expect("UTF-8 metrics");
    assert!(text.contains("200"), "metrics answered: {text}");
    text
}

/// The canary as text, case-insensitively, and as hex and base64.
fn leaks(canary: &str, haystack: &[u8]) -> Option<&'static str> {
    let lower = String::from_utf8_lossy(haystack).to_lowercase();
    let hex: String = canary.bytes().map(|b| format!("{b:02x}")).collect();
    if lower.contains(&canary.to_lowercase()) {
        Some("plain text")
    } else if lower.contains(&hex) {
        Some("hex")
    } else if String::from_utf8_lossy(haystack).contains(&base64(canary.as_bytes())) {
        Some("base64")
    } else {
        None
    }
}

/// Standard base64 of the canary, cut before the last character when that
/// character would also carry bits of whatever follows the canary.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    if !bytes.len().is_multiple_of(3) {
        out.pop();
    }
    out
}

#[test]
fn no_canary_reaches_any_output_log_or_metric() {
    let dir = tempdir("canary");
    canary_recording(&dir);
    let raw = run(&dir, &pipeline(&dir, "fast", "1s", false), KEY_A, &[]);
    let control = raw.everything();
    for canary in CANARIES {
        assert!(
            control.iter().any(|(_, bytes)| leaks(canary, bytes).is_some()),
            "control run: canary {canary} never reached an output, so the scan would prove nothing"
        );
    }

    let deid = pipeline(&dir, "realtime", "40ms", true);
    let output = run(&dir, &deid, KEY_A, &["--for", "4s", "--metrics", "127.0.0.1:0"]);
    assert!(
        output.metrics.as_ref().is_some_and(|m| m.contains("sigfab_")),
        "no /metrics text scraped"
    );
    let mut found = Vec::new();
    for (place, bytes) in output.everything() {
        for canary in CANARIES.iter().chain([&KEY_A]) {
            if let Some(how) = leaks(canary, bytes) {
                found.push(format!("{canary} in {place} ({how})"));
            }
        }
    }
    assert!(found.is_empty(), "canaries leaked:\n{}", found.join("\n"));

    let jsonl = String::from_utf8_lossy(
        &output
            .files
            .iter()
            .find(|(p, _)| p.ends_with("frames.jsonl"))
            .unwrap()
            .1,
    )
    .into_owned();
    assert!(
        jsonl.contains("[redacted]"),
        "the canary annotations were redacted, not lost"
    );
    assert!(jsonl.contains("\\tT0\""), "the allowed annotation T0 was kept");
    assert!(
        jsonl.contains("\"kind\":\"deid_audit\""),
        "one audit record per run"
    );
    let dead = &output
        .files
        .iter()
        .find(|(p, _)| p.ends_with("dead.jsonl"))
        .unwrap()
        .1;
    assert!(
        !dead.is_empty(),
        "validate dead-lettered some de-identified frames"
    );
}

#[test]
fn pseudonyms_and_shifts_are_stable_across_runs_and_change_with_the_key() {
    let dir = tempdir("stable");
    canary_recording(&dir);
    let deid = pipeline(&dir, "fast", "1s", true);
    let first = run(&dir, &deid, KEY_A, &[]).first_frame();
    let again = run(&dir, &deid, KEY_A, &[]).first_frame();
    let other = run(&dir, &deid, KEY_B, &[]).first_frame();
    let view = |f: &serde_json::Value| {
        (
            f["stream_id"].clone(),
            f["metadata"]["patient"].clone(),
            f["start_ns"].clone(),
        )
    };
    assert_eq!(view(&first), view(&again));
    let (stream, patient, start) = view(&first);
    let (other_stream, other_patient, other_start) = view(&other);
    assert!(
        patient
            .as_str()
            .is_some_and(|p| p.starts_with("p1-") && p.len() == 35),
        "{patient}"
    );
    assert_ne!(stream, other_stream);
    assert_ne!(patient, other_patient);
    assert_ne!(start.to_string(), TRUE_START_NS);
    let shift_ns = start.as_i64().expect("start_ns") - TRUE_START_NS.parse::<i64>().expect("ns");
    assert_eq!(
        shift_ns % (7 * 86_400_000_000_000),
        0,
        "whole weeks keep weekday and time of day"
    );
    assert_ne!(
        other_start, start,
        "another key shifts by another offset (1 in 104 chance of equal)"
    );
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sigfab-deid-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn a_missing_or_short_key_stops_the_run_without_showing_it() {
    let dir = tempdir("keys");
    canary_recording(&dir);
    let pipeline = pipeline(&dir, "fast", "1s", true);
    let short = "Canary-short-key";
    let run_with = |key: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sigfab"));
        command.arg("run").arg(&pipeline).env_remove("CANARY_DEID_KEY");
        if let Some(key) = key {
            command.env("CANARY_DEID_KEY", key);
        }
        let out = command.output().expect("run sigfab");
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let missing = run_with(None);
    assert!(missing.contains("CANARY_DEID_KEY is not set"), "{missing}");
    let too_short = run_with(Some(short));
    assert!(too_short.contains("holds 16 bytes; at least 32"), "{too_short}");
    assert!(!too_short.contains(short));
    let validated = Command::new(env!("CARGO_BIN_EXE_sigfab"))
        .arg("validate")
        .arg(&pipeline)
        .env_remove("CANARY_DEID_KEY")
        .output()
        .expect("validate");
    assert!(validated.status.success(), "validating needs no key");
}

/// Metadata keys no file header has (a monitor's or an integration's, as a
/// Kafka producer would send them): through the operator as the engine
/// builds it from YAML, then both wire encodings.
#[test]
fn metadata_canaries_from_any_producer_are_scrubbed_before_encoding() {
    use sigfab_engine::config::{self, OperatorKind};
    use sigfab_engine::wire::{self, Encoding};
    use sigfab_operators::{ChannelLayout, ChannelSpec, Frame, Item, Modality, Operator, Output};

    let dir = tempdir("metadata");
    std::fs::write(dir.join("deid.key"), format!("{KEY_A}\n")).expect("write key file");
    let yaml = "sources:
  s: { synthetic: { signal: ecg } }
operators:
  deid:
    inputs: [s]
    deidentify: { key_file: deid.key, key_version: 4 }
sinks:
  out: { inputs: [deid], stdout: {} }
";
    let (pipeline, _) = config::load_str(&dir.join("p.yaml"), yaml.to_string()).expect("valid pipeline");
    let Ok(kind) = &pipeline.spec.operators.0[0].kind else {
        panic!("deidentify node")
    };
    let OperatorKind::Deidentify(spec) = &kind.value else {
        panic!("deidentify node")
    };
    let mut operator = sigfab_engine::deid::build(&pipeline, spec).expect("key file read");

    let layout = ChannelLayout::new(vec![ChannelSpec {
        name: "II".into(),
        unit: "mV".into(),
        sample_rate: 250.0,
    }]);
    let mut frame = Frame::new(
        format!("bed-{MRN}").into(),
        Modality::Ecg,
        layout.into(),
        TRUE_START_NS.parse().expect("ns"),
        0,
        vec![1],
        vec![0.1],
    )
    .expect("frame");
    let entries = [
        ("patient_name", format!("{FIRST_NAME} {LAST_NAME}")),
        ("mrn", MRN.to_string()),
        ("birth_date", BIRTH_DATE.to_string()),
        ("device_serial", DEVICE_SERIAL.to_string()),
        ("ip_address", IP_ADDRESS.to_string()),
        ("attending", format!("Dr {DOCTOR}")),
        ("encounter_note", format!("{ADMISSION} admitted")),
        ("annotation", format!("+1\t\tcalled {FIRST_NAME}")),
    ];
    for (key, value) in entries {
        frame.metadata.push(key, value);
    }
    let mut out = Output::default();
    operator
        .process(Item::Frame(frame), &mut out)
        .expect("never rejects");
    operator.finish(&mut out);
    let mut bytes = Vec::new();
    for item in out.drain() {
        wire::encode(&item, Encoding::Binary, &mut bytes);
        wire::encode(&item, Encoding::Json, &mut bytes);
        bytes.extend_from_slice(format!("{item:?}").as_bytes());
    }
    for canary in CANARIES.iter().chain([&KEY_A]) {
        assert_eq!(leaks(canary, &bytes), None, "{canary} leaked");
    }
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("\"mrn\":\"p4-"),
        "the MRN is pseudonymised under key version 4"
    );
    assert!(
        text.contains("\"birth_date\":\"1931\""),
        "the birth date keeps its year"
    );
}
