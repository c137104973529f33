//! The encrypted archive end to end through the `sigfab` binary: `keygen`, a pipeline with an
//! `archive` sink next to a plain binary `file` sink, `decrypt` restoring the plain sink's bytes
//! exactly (real MIT-BIH record 100, and two synthetic patients through `deidentify`), two
//! recipients, a wrong identity, tampered segments (no item released), crypto-shredding one
//! patient while the other still decrypts, and no key bytes or raw stream ids in any log,
//! audit line or file name (debug logging on).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sigfab_engine::shared_data;
use sigfab_engine::sinks::archive_codec::{self, CodecMode, CodecSettings, PendingBlock, SegmentEncoder};
use sigfab_engine::wire;

const CANARY: &str = "Canary-Jane-Doe";
const DEID_KEY: &str = "YXJjaGl2ZS10ZXN0LWRlaWQta2V5LTMyLWJ5dGVzLWxvbmc=";

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sigfab-archive-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Runs sigfab in `dir` with debug logging; every output is kept for the leak scan.
struct Cli {
    dir: PathBuf,
    transcript: Vec<(String, Vec<u8>)>,
}

impl Cli {
    fn new(dir: &Path) -> Cli {
        Cli {
            dir: dir.to_path_buf(),
            transcript: Vec::new(),
        }
    }

    fn run(&mut self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_sigfab"))
            .args(args)
            .current_dir(&self.dir)
            .env("RUST_LOG", "debug")
            .env("ARCHIVE_TEST_DEID_KEY", DEID_KEY)
            .output()
            .expect("run sigfab");
        let label = args.join(" ");
        self.transcript
            .push((format!("{label}: stdout"), out.stdout.clone()));
        self.transcript
            .push((format!("{label}: stderr"), out.stderr.clone()));
        out
    }

    /// `sigfab keygen --out NAME`; returns the identity's secret seed in hex.
    fn keygen(&mut self, name: &str) -> String {
        let out = self.run(&["keygen", "--out", name]);
        assert!(out.status.success(), "keygen: {}", text(&out.stderr));
        let identity = std::fs::read_to_string(self.dir.join(format!("{name}.identity"))).expect("identity");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(self.dir.join(format!("{name}.identity")))
                .expect("identity")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "the identity file is private");
        }
        let line = identity.lines().last().expect("key line");
        line.split(':').nth(1).expect("seed").to_string()
    }

    /// `sigfab decrypt` into `out`; returns the process output and the bytes written.
    fn decrypt(&mut self, inputs: &[&str], identity: &str, out: &str, format: &str) -> (Output, Vec<u8>) {
        let mut args = vec!["decrypt"];
        args.extend_from_slice(inputs);
        args.extend_from_slice(&[
            "--identity",
            identity,
            "--keystore",
            "keys",
            "--out",
            out,
            "--format",
            format,
        ]);
        let output = self.run(&args);
        let bytes = std::fs::read(self.dir.join(out)).unwrap_or_default();
        (output, bytes)
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Files under `dir`, recursively, sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("list") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The binary wire messages of `bytes`, grouped by stream id, concatenated in order.
fn split_by_stream(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut streams: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let len = wire::split_binary(rest).expect("valid").expect("whole message");
        let item = wire::decode_binary(&rest[..len]).expect("decodes");
        streams
            .entry(item.stream_id().to_string())
            .or_default()
            .extend_from_slice(&rest[..len]);
        rest = &rest[len..];
    }
    streams
}

fn message_count(bytes: &[u8]) -> usize {
    let mut n = 0;
    let mut rest = bytes;
    while !rest.is_empty() {
        let len = wire::split_binary(rest).expect("valid").expect("whole message");
        rest = &rest[len..];
        n += 1;
    }
    n
}

fn acks(report: &Path) -> serde_json::Value {
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report).expect("report")).expect("JSON report");
    report["acks"].clone()
}

#[test]
fn real_recording_round_trips_for_two_recipients_and_tampering_releases_nothing() {
    let record = shared_data::require("wfdb/100.hea");
    let dir = tempdir("real");
    let mut cli = Cli::new(&dir);
    cli.keygen("alice");
    cli.keygen("bob");
    cli.keygen("eve");
    let pipeline = format!(
        "sources:
  ecg:
    file: {{ path: {}, frame: 40ms, stream_id: rec-100 }}
sinks:
  plain: {{ inputs: [ecg], file: {{ path: out/plain.bin, format: binary }} }}
  plainjson: {{ inputs: [ecg], file: {{ path: out/plain.jsonl }} }}
  sealed:
    inputs: [ecg]
    archive:
      path: out/archive
      keystore: keys
      recipients: [alice.recipient, bob.recipient]
      max_segment_bytes: 262144
      pseudonyms_only: false
",
        record.display()
    );
    std::fs::write(dir.join("p.yaml"), pipeline).expect("pipeline");
    let out = cli.run(&["run", "p.yaml", "--report", "report.json"]);
    assert!(out.status.success(), "run: {}", text(&out.stderr));
    let plain = std::fs::read(dir.join("out/plain.bin")).expect("plain output");
    let frames = message_count(&plain);
    assert!(frames > 45_000, "30 min of 40 ms frames: {frames}");
    assert_eq!(
        acks(&dir.join("report.json")),
        serde_json::json!({ "delivered": frames })
    );
    let segments: Vec<PathBuf> = files_under(&dir.join("out/archive"));
    assert!(segments.len() > 10, "262,144-byte segments: {}", segments.len());
    assert!(
        segments.iter().all(|p| p.extension().is_some_and(|e| e == "sfa")),
        "no .part left"
    );

    // Both recipients restore the plain sink's bytes exactly; JSON gives one line per frame.
    for who in ["alice", "bob"] {
        let (out, bytes) = cli.decrypt(
            &["out/archive"],
            &format!("{who}.identity"),
            "restored.bin",
            "binary",
        );
        assert!(out.status.success(), "{who}: {}", text(&out.stderr));
        assert!(
            bytes == plain,
            "{who}: decrypted bytes differ from the plain sink's"
        );
    }
    let (out, json) = cli.decrypt(&["out/archive"], "alice.identity", "restored.jsonl", "jsonl");
    assert!(out.status.success());
    assert_eq!(text(&json).lines().count(), frames);
    let plain_json = std::fs::read(dir.join("out/plain.jsonl")).expect("plain JSON output");
    assert!(
        json == plain_json,
        "decrypted JSON differs from the plain JSONL sink's"
    );
    let first: serde_json::Value =
        serde_json::from_str(text(&json).lines().next().expect("a line")).expect("JSON frame");
    assert_eq!(first["stream_id"], "rec-100");

    // Not a recipient: a clean failure, nothing written.
    let (out, bytes) = cli.decrypt(&["out/archive"], "eve.identity", "eve.bin", "binary");
    assert_eq!(out.status.code(), Some(1));
    assert!(bytes.is_empty(), "eve got {} bytes", bytes.len());
    assert!(
        text(&out.stderr).contains("no recipient slot opens"),
        "{}",
        text(&out.stderr)
    );

    // Tampering: each damaged copy fails as a whole; not one item comes out.
    let original = std::fs::read(&segments[3]).expect("segment");
    let second = std::fs::read(&segments[4]).expect("segment");
    let name = segments[3]
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let header_len = 6 + "rec-100".len() + 16 + 8 + 32;
    let body = header_len + 56; // C2SP salt and commitment
    let chunk = 16_400;
    assert!(original.len() > body + 3 * chunk);
    let flip = |at: usize| {
        let mut bytes = original.clone();
        bytes[at] ^= 0x01;
        bytes
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "bit flip in a chunk",
            flip(body + chunk + 100),
            "chunk 1 failed authentication",
        ),
        (
            "bit flip in the final tag",
            flip(original.len() - 1),
            "failed authentication",
        ),
        (
            "bit flip in the sequence",
            flip(header_len - 33),
            "renamed or moved",
        ),
        ("bit flip in the salt", flip(header_len - 1), "commitment"),
        (
            "truncated by a byte",
            original[..original.len() - 1].to_vec(),
            "failed authentication",
        ),
        (
            "truncated at a chunk boundary",
            original[..body + 2 * chunk].to_vec(),
            "truncated",
        ),
        (
            "trailing data",
            [original.as_slice(), b"x"].concat(),
            "failed authentication",
        ),
        (
            "chunks swapped",
            {
                let mut bytes = original.clone();
                bytes[body..body + 2 * chunk].copy_from_slice(
                    &[
                        &original[body + chunk..body + 2 * chunk],
                        &original[body..body + chunk],
                    ]
                    .concat(),
                );
                bytes
            },
            "chunk 0 failed authentication",
        ),
        (
            "another segment under this name",
            second.clone(),
            "renamed or moved",
        ),
        (
            "another segment's body under this header",
            [&original[..header_len], &second[header_len..]].concat(),
            "commitment",
        ),
    ];
    std::fs::create_dir_all(dir.join("tampered")).expect("folder");
    for (what, bytes, expected) in cases {
        let path = dir.join("tampered").join(&name);
        std::fs::write(&path, bytes).expect("write tampered copy");
        let (out, released) = cli.decrypt(
            &[path.to_str().expect("utf-8")],
            "alice.identity",
            "tampered.bin",
            "binary",
        );
        assert_eq!(out.status.code(), Some(1), "{what}");
        assert!(released.is_empty(), "{what}: {} bytes released", released.len());
        assert!(
            text(&out.stderr).contains(expected),
            "{what}: {}",
            text(&out.stderr)
        );
    }
    // The audit log has one line per segment tried, with outcome and no key material.
    let audit = std::fs::read_to_string(dir.join("keys/audit.jsonl")).expect("audit log");
    let lines: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(
        lines.iter().filter(|l| l["outcome"] == "failed").count(),
        segments.len() + 10
    );
    let ok = lines.iter().find(|l| l["outcome"] == "ok").expect("a success");
    for field in [
        "time",
        "identity",
        "segment",
        "segment_sha256",
        "patient",
        "key_id",
        "items",
    ] {
        assert!(!ok[field].is_null(), "audit line lacks {field}: {ok}");
    }
    assert_eq!(ok["patient"], "rec-100");
}

#[test]
fn shredding_one_patient_leaves_the_other_readable_and_nothing_leaks() {
    let dir = tempdir("shred");
    let mut cli = Cli::new(&dir);
    let seed = cli.keygen("alice");
    let pipeline = |deidentify: bool| {
        let stage = if deidentify {
            "deidentify: { key_env: ARCHIVE_TEST_DEID_KEY, key_version: 1 }"
        } else {
            "passthrough: {}"
        };
        format!(
            "sources:
  ecg:
    synthetic: {{ signal: ecg, frame: 40ms, duration: 20s, seed: 3, streams: 2, stream_id: {CANARY} }}
operators:
  deid: {{ inputs: [ecg], {stage} }}
sinks:
  plain: {{ inputs: [deid], file: {{ path: out/plain.bin, format: binary }} }}
  sealed: {{ inputs: [deid], archive: {{ path: out/archive, keystore: keys, recipients: [alice.recipient] }} }}
"
        )
    };
    // Control: raw stream ids never reach the archive; the run fails without showing them.
    std::fs::write(dir.join("raw.yaml"), pipeline(false)).expect("pipeline");
    let out = cli.run(&["run", "raw.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not a deidentify pseudonym"),
        "{}",
        text(&out.stderr)
    );
    let raw = std::fs::read(dir.join("out/plain.bin")).expect("plain output of the raw run");
    assert!(
        text(&raw).contains(CANARY),
        "control: the source really emits the raw id, so its absence below means something"
    );
    assert!(
        files_under(&dir.join("out/archive")).is_empty(),
        "nothing archived"
    );
    assert!(files_under(&dir.join("keys")).is_empty(), "no keystore entry");
    std::fs::remove_dir_all(dir.join("out")).expect("clean");
    cli.transcript.clear();

    std::fs::write(dir.join("p.yaml"), pipeline(true)).expect("pipeline");
    let out = cli.run(&["run", "p.yaml", "--report", "report.json"]);
    assert!(out.status.success(), "run: {}", text(&out.stderr));
    let plain = std::fs::read(dir.join("out/plain.bin")).expect("plain");
    let streams = split_by_stream(&plain);
    let patients: Vec<&String> = streams.keys().filter(|s| s.starts_with('p')).collect();
    assert_eq!(patients.len(), 2, "{:?}", streams.keys());
    let (a, b) = (patients[0].clone(), patients[1].clone());
    assert_eq!(message_count(&streams[&a]), 500);

    // Each patient's folder decrypts to exactly that stream's bytes of the plain sink.
    for patient in [&a, &b] {
        let (out, bytes) = cli.decrypt(
            &[&format!("out/archive/{patient}")],
            "alice.identity",
            "one.bin",
            "binary",
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(bytes == streams[patient], "{patient}: restored bytes differ");
    }

    let out = cli.run(&["keys", "shred", &a, "--keystore", "keys"]);
    assert!(out.status.success(), "shred: {}", text(&out.stderr));
    assert!(!dir.join("keys").join(&a).exists());
    let (out, bytes) = cli.decrypt(
        &[&format!("out/archive/{a}")],
        "alice.identity",
        "a.bin",
        "binary",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(bytes.is_empty());
    assert!(
        text(&out.stderr).contains("it was shredded"),
        "{}",
        text(&out.stderr)
    );
    let (out, bytes) = cli.decrypt(
        &[&format!("out/archive/{b}")],
        "alice.identity",
        "b.bin",
        "binary",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(bytes == streams[&b], "B still decrypts after A was shredded");
    // Shredding again: nothing left to shred, said plainly.
    let out = cli.run(&["keys", "shred", &a, "--keystore", "keys"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("nothing to shred"));

    let audit = std::fs::read_to_string(dir.join("keys/audit.jsonl")).expect("audit");
    let events: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert!(events
        .iter()
        .any(|e| e["event"] == "shred" && e["patient"] == a.as_str() && e["outcome"] == "ok"));

    // No raw stream id, identity seed or de-identification key anywhere: logs, audit, names.
    let mut haystacks = cli.transcript.clone();
    haystacks.push(("audit log".into(), audit.into_bytes()));
    for root in ["out", "keys"] {
        for path in files_under(&dir.join(root)) {
            haystacks.push((
                "file name".into(),
                path.to_string_lossy().into_owned().into_bytes(),
            ));
        }
    }
    for (place, bytes) in &haystacks {
        let lower = text(bytes).to_lowercase();
        for secret in [CANARY.to_lowercase(), seed.clone(), DEID_KEY.to_lowercase()] {
            assert!(!lower.contains(&secret), "{secret} leaked into {place}");
        }
    }
}

#[test]
fn any_framing_round_trips_exactly() {
    let dir = tempdir("framing");
    let mut cli = Cli::new(&dir);
    cli.keygen("alice");
    // 500 Hz ECG: 1 sample, 7 samples, 40 ms, and the whole 2 s record in one frame.
    for (frame, frames) in [("2ms", 1000), ("14ms", 143), ("40ms", 50), ("2s", 1)] {
        let pipeline = format!(
            "sources:
  ecg: {{ synthetic: {{ signal: ecg, frame: {frame}, duration: 2s, seed: 9, stream_id: p1-0123456789abcdef0123456789abcdef }} }}
sinks:
  plain: {{ inputs: [ecg], file: {{ path: out-{frame}/plain.bin, format: binary }} }}
  sealed:
    inputs: [ecg]
    archive: {{ path: out-{frame}/archive, keystore: keys, recipients: [alice.recipient], max_segment_bytes: 20000 }}
"
        );
        std::fs::write(dir.join("p.yaml"), pipeline).expect("pipeline");
        let out = cli.run(&["run", "p.yaml"]);
        assert!(out.status.success(), "{frame}: {}", text(&out.stderr));
        let plain = std::fs::read(dir.join(format!("out-{frame}/plain.bin"))).expect("plain");
        assert_eq!(message_count(&plain), frames, "{frame}");
        let archive = format!("out-{frame}/archive");
        let (out, bytes) = cli.decrypt(&[&archive], "alice.identity", "restored.bin", "binary");
        assert!(out.status.success(), "{frame}: {}", text(&out.stderr));
        assert!(bytes == plain, "{frame}: restored bytes differ");
    }
}

const BDF_CODEC: &str =
    "codec: lossless\n      resolution: { acc1: 4.768372e-7, acc2: 4.768372e-7, acc3: 4.768372e-7 }";

/// Total bytes of the segments under `dir`.
fn bytes_under(dir: &Path) -> u64 {
    files_under(dir)
        .iter()
        .map(|p| std::fs::metadata(p).expect("segment").len())
        .sum()
}

/// Runs `source` into a plain binary file sink and an archive sink with `codec` settings;
/// returns the plain bytes, the archive's size and the run's wall time.
fn run_codec(cli: &mut Cli, name: &str, source: &str, codec: &str) -> (Vec<u8>, u64, std::time::Duration) {
    let pipeline = format!(
        "sources:
  rec: {source}
sinks:
  plain: {{ inputs: [rec], file: {{ path: {name}/plain.bin, format: binary }} }}
  sealed:
    inputs: [rec]
    archive:
      path: {name}/archive
      keystore: keys
      recipients: [alice.recipient]
      pseudonyms_only: false
      flush_interval: 1m
      max_pending: 1000000
      {codec}
"
    );
    std::fs::write(cli.dir.join(format!("{name}.yaml")), pipeline).expect("pipeline");
    let started = std::time::Instant::now();
    let out = cli.run(&[
        "run",
        &format!("{name}.yaml"),
        "--report",
        &format!("{name}.json"),
    ]);
    let wall = started.elapsed();
    assert!(out.status.success(), "{name}: {}", text(&out.stderr));
    let plain = std::fs::read(cli.dir.join(format!("{name}/plain.bin"))).expect("plain");
    assert_eq!(
        acks(&cli.dir.join(format!("{name}.json"))),
        serde_json::json!({ "delivered": message_count(&plain) }),
        "{name}: every frame acknowledged once its segment is durable"
    );
    (plain, bytes_under(&cli.dir.join(format!("{name}/archive"))), wall)
}

fn frames_of(bytes: &[u8]) -> Vec<sigfab_operators::Frame> {
    let mut rest = bytes;
    let mut frames = Vec::new();
    while !rest.is_empty() {
        let len = wire::split_binary(rest).expect("header").expect("whole");
        match wire::decode_binary(&rest[..len]).expect("message") {
            sigfab_operators::Item::Frame(f) => frames.push(f),
            sigfab_operators::Item::Record(_) => panic!("no records here"),
        }
        rest = &rest[len..];
    }
    frames
}

#[test]
fn lossless_codec_restores_real_recordings_byte_for_byte_and_shredding_still_works() {
    let wfdb = shared_data::require("wfdb/100.hea");
    let edf = shared_data::require("edf/eegmmidb-style-64ch-128hz.edf");
    // Three leads at 500, 125 and 125 Hz (one 4 samples a frame), NaN gaps, non-integer gains.
    let mixed = shared_data::require("wfdb/03700181.hea");
    let bdf = shared_data::require("edf/19ch-125hz-annotations.bdf");
    let dir = tempdir("codec-lossless");
    let mut cli = Cli::new(&dir);
    cli.keygen("alice");
    for (name, path, codec) in [
        ("wfdb10", &wfdb, "codec: lossless"),
        ("wfdb1", &wfdb, "codec: lossless\n      block_seconds: 1"),
        ("edf", &edf, "codec: lossless"),
        ("mixed", &mixed, "codec: lossless"),
        // Its accelerometers move in 0.001 G steps on a 24-bit grid: no step to infer, so
        // it is declared (approximately: the sink fits the exact grid to it).
        ("bdf", &bdf, BDF_CODEC),
    ] {
        let source = format!(
            "{{ file: {{ path: {}, frame: 40ms, stream_id: rec-{name} }} }}",
            path.display()
        );
        let (plain, archived, _) = run_codec(&mut cli, name, &source, codec);
        let (out, restored) = cli.decrypt(
            &[&format!("{name}/archive")],
            "alice.identity",
            "restored.bin",
            "binary",
        );
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        assert!(
            restored == plain,
            "{name}: decrypted bytes differ from the plain sink's"
        );
        assert!(
            archived * 4 < plain.len() as u64,
            "{name}: {archived} archived bytes for {} wire bytes",
            plain.len()
        );
    }
    // Crypto-shredding holds for coded segments: the key goes, nothing decrypts.
    let out = cli.run(&["keys", "shred", "rec-edf", "--keystore", "keys"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (out, released) = cli.decrypt(&["edf/archive"], "alice.identity", "shredded.bin", "binary");
    assert_eq!(out.status.code(), Some(1));
    assert!(released.is_empty());
    assert!(text(&out.stderr).contains("shredded"), "{}", text(&out.stderr));
    let (out, _) = cli.decrypt(&["wfdb10/archive"], "alice.identity", "still.bin", "binary");
    assert!(out.status.success(), "the other patient still decrypts");
}

#[test]
fn off_grid_frames_fall_back_to_raw_messages_byte_for_byte() {
    let dir = tempdir("codec-offgrid");
    let mut cli = Cli::new(&dir);
    cli.keygen("alice");
    // Synthetic frames are computed f32, on no grid: every block is written raw.
    let source = "{ synthetic: { signal: ecg, frame: 40ms, duration: 12s, seed: 3, stream_id: p1-0123456789abcdef0123456789abcdef } }";
    for codec in ["codec: lossless", "codec: lossless\n      block_seconds: 1"] {
        let (plain, archived, _) = run_codec(&mut cli, "synthetic", source, codec);
        let (out, restored) = cli.decrypt(&["synthetic/archive"], "alice.identity", "restored.bin", "binary");
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(restored == plain, "raw fallback must be byte-identical");
        // Raw units cost one byte per message on top of the messages (and the segment frame).
        assert!(archived >= plain.len() as u64, "{archived} < {}", plain.len());
        std::fs::remove_dir_all(dir.join("synthetic")).expect("clean");
    }
}

#[test]
fn lossy_codec_keeps_the_frames_within_the_prdn_bound() {
    let wfdb = shared_data::require("wfdb/100.hea");
    let dir = tempdir("codec-lossy");
    let mut cli = Cli::new(&dir);
    cli.keygen("alice");
    let source = format!(
        "{{ file: {{ path: {}, frame: 40ms, stream_id: rec-100 }} }}",
        wfdb.display()
    );
    let (_, lossless, _) = run_codec(&mut cli, "lossless", &source, "codec: lossless");
    let (plain, lossy, _) = run_codec(
        &mut cli,
        "lossy",
        &source,
        "codec: lossy\n      max_prdn_percent: 5",
    );
    assert!(lossy < lossless, "lossy {lossy} ≥ lossless {lossless}");
    let (out, restored) = cli.decrypt(&["lossy/archive"], "alice.identity", "restored.bin", "binary");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let (original, decoded) = (frames_of(&plain), frames_of(&restored));
    assert_eq!(original.len(), decoded.len());
    let (mut error, mut energy) = (0.0f64, 0.0f64);
    for (a, b) in original.iter().zip(&decoded) {
        assert_eq!(
            (
                a.start_ns,
                a.sequence,
                a.discontinuity,
                a.counts(),
                &*a.layout,
                &*a.stream_id
            ),
            (
                b.start_ns,
                b.sequence,
                b.discontinuity,
                b.counts(),
                &*b.layout,
                &*b.stream_id
            )
        );
        assert!(a.metadata == b.metadata);
        for (&x, &y) in a.samples().iter().zip(b.samples()) {
            error += f64::from(x - y).powi(2);
            energy += f64::from(x).powi(2);
        }
    }
    // Each block is within 5 % PRDN; PRD against the raw energy is smaller still.
    let prd = 100.0 * (error / energy).sqrt();
    assert!(prd > 0.0 && prd < 5.0, "PRD {prd:.3} %");
}

/// The archive sink's segment coding alone, in wire MB/s: encode (as the sink blocks frames)
/// and decode (as `sigfab decrypt`), in process, on frames decoded beforehand.
fn codec_speed(plain: &[u8], settings: CodecSettings) -> (f64, f64) {
    let frames = frames_of(plain);
    let seconds = settings.block_seconds;
    let started = std::time::Instant::now();
    let mut encoder = SegmentEncoder::new(settings);
    let mut coded = Vec::new();
    SegmentEncoder::start(&mut coded);
    let (mut block, mut grids) = (PendingBlock::default(), Vec::new());
    for frame in frames {
        if block.must_flush_before(&frame) {
            encoder.block(block.take(), &mut grids, &mut coded);
        }
        block.push(frame);
        if block.is_full(seconds) {
            encoder.block(block.take(), &mut grids, &mut coded);
        }
    }
    encoder.block(block.take(), &mut grids, &mut coded);
    let encode = started.elapsed().as_secs_f64();
    let started = std::time::Instant::now();
    let mut back = Vec::new();
    archive_codec::decode(&coded, &mut back).expect("decode");
    let decode = started.elapsed().as_secs_f64();
    let mb = plain.len() as f64 / 1e6;
    (mb / encode, mb / decode)
}

/// Prints bytes on disk and run time for codec none / lossless / lossy 1 % / lossy 5 % on the
/// real recordings (`docs/security.md`, "Measured"). Run with
/// `cargo test --release -p sigfab-engine --test archive_cli -- --ignored --nocapture measure`.
#[test]
#[ignore = "measurement; prints a table"]
fn measure_archive_codec() {
    let dir = tempdir("codec-measure");
    let mut cli = Cli::new(&dir);
    cli.keygen("alice");
    println!("| record | codec | wire bytes | archive bytes | ratio | `sigfab run` s | codec encode MB/s | decode MB/s |");
    println!("|---|---|---|---|---|---|---|---|");
    for record in [
        "wfdb/100.hea",
        "wfdb/03700181.hea",
        "edf/eegmmidb-style-64ch-128hz.edf",
        "edf/19ch-125hz-annotations.bdf",
    ] {
        let path = shared_data::require(record);
        let source = format!(
            "{{ file: {{ path: {}, frame: 40ms, stream_id: rec }} }}",
            path.display()
        );
        for (label, codec) in [
            ("none", "codec: none"),
            ("lossless", "codec: lossless"),
            ("lossy 1 %", "codec: lossy\n      max_prdn_percent: 1"),
            ("lossy 5 %", "codec: lossy\n      max_prdn_percent: 5"),
        ] {
            let codec = if record.ends_with(".bdf") && label != "none" {
                BDF_CODEC.replace("codec: lossless", codec)
            } else {
                codec.to_string()
            };
            let codec = codec.as_str();
            let _ = std::fs::remove_dir_all(dir.join("m"));
            let (plain, archived, wall) = run_codec(&mut cli, "m", &source, codec);
            let wire_bytes = plain.len() as f64;
            let mode = match label {
                "none" => None,
                "lossless" => Some(CodecMode::Lossless),
                _ => Some(CodecMode::Lossy {
                    max_prdn_percent: if label == "lossy 1 %" { 1.0 } else { 5.0 },
                }),
            };
            let speed = mode.map_or("— | —".to_string(), |mode| {
                let resolution = if record.ends_with(".bdf") {
                    ["acc1", "acc2", "acc3"]
                        .into_iter()
                        .map(|c| (c.to_string(), 4.768372e-7))
                        .collect()
                } else {
                    BTreeMap::new()
                };
                let (encode, decode) = codec_speed(
                    &plain,
                    CodecSettings {
                        mode,
                        block_seconds: 10,
                        resolution,
                    },
                );
                format!("{encode:.0} | {decode:.0}")
            });
            println!(
                "| {record} | {label} | {} | {archived} | {:.2} | {:.2} | {speed} |",
                plain.len(),
                wire_bytes / archived as f64,
                wall.as_secs_f64(),
            );
        }
    }
}
