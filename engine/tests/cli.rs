//! The `sigfab` binary as a user meets it: messages of `validate`, PHI
//! hidden by `inspect`, and `dump` agreeing with MNE / wfdb-python (through
//! the reference extracts in tests/reference) within one quantisation step.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sigfab_engine::shared_data;

fn sigfab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sigfab"))
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("run sigfab")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn validate_points_at_the_unknown_field_and_the_dangling_input() {
    for (file, expected) in [
        ("tests/config/invalid/unknown-field.yaml", "unknown-field.yaml:8:7: error: unknown field `pth`"),
        (
            "tests/config/invalid/dangling-input.yaml",
            "dangling-input.yaml:6:14: error: sink 'out' reads from 'ecgg', which is not defined (did you mean 'ecg'?)",
        ),
    ] {
        let out = sigfab(&["validate", file]);
        assert_eq!(out.status.code(), Some(2), "{file}");
        assert!(text(&out.stderr).contains(expected), "{file}: {}", text(&out.stderr));
    }
    let out = sigfab(&["validate", "pipelines/demo.yaml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn schema_describes_every_node_type() {
    let out = sigfab(&["schema"]);
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON schema");
    let listed = schema.to_string();
    for name in [
        "synthetic",
        "file",
        "passthrough",
        "select_channels",
        "frame_stats",
        "validate",
        "deidentify",
        "stdout",
    ] {
        assert!(listed.contains(&format!("\"{name}\"")), "schema lacks {name}");
    }
}

/// The value of `key:` in `inspect` output.
fn field(output: &str, key: &str) -> String {
    output
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {key} line in:\n{output}"))
}

#[test]
fn inspect_hides_identification_unless_asked() {
    for recording in ["edf/19ch-125hz-annotations.bdf", "wfdb/100"] {
        let path = shared_data::require(recording);
        let path = path.to_string_lossy();
        let shown = text(&sigfab(&["inspect", &path, "--show-phi"]).stdout);
        let hidden = text(&sigfab(&["inspect", &path]).stdout);
        let patient = field(&shown, "patient:");
        assert!(
            !patient.is_empty() && !patient.starts_with("<hidden"),
            "{recording}: {patient}"
        );
        assert!(
            !hidden.contains(&patient),
            "{recording}: patient field printed without --show-phi"
        );
        assert!(field(&hidden, "patient:").starts_with("<hidden"));
        assert_eq!(field(&shown, "channels:"), field(&hidden, "channels:"));
    }
    // Annotation texts are free text (names can hide there): listed only on request.
    let path = shared_data::require("edf/19ch-125hz-annotations.bdf");
    let hidden = text(&sigfab(&["inspect", &path.to_string_lossy()]).stdout);
    let shown = text(&sigfab(&["inspect", &path.to_string_lossy(), "--show-phi"]).stdout);
    assert!(field(&hidden, "annotations:").parse::<u32>().expect("count") > 0);
    assert!(shown.lines().count() > hidden.lines().count());
}

/// Reference extract of one recording, as written by
/// scripts/make_reference_extracts.py.
fn reference(name: &str) -> serde_json::Value {
    let path = repo_root().join("tests/reference").join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("reference extract")).expect("JSON")
}

/// Channel name, quantisation step, reference values (None = a gap).
type ExpectedChannel = (String, f64, Vec<Option<f64>>);

#[test]
fn dump_agrees_with_mne_and_wfdb_within_one_quantisation_step() {
    let recordings = [
        ("eegmmidb-style-64ch-128hz", "edf/eegmmidb-style-64ch-128hz.edf"),
        ("19ch-125hz-annotations", "edf/19ch-125hz-annotations.bdf"),
        ("100", "wfdb/100"),
        ("03700181", "wfdb/03700181"),
    ];
    for (name, file) in recordings {
        let path = shared_data::require(file).to_string_lossy().into_owned();
        let extract = reference(name);
        // One dump per (window start, rate): all channels that share them.
        let mut groups: BTreeMap<(u64, u64), Vec<ExpectedChannel>> = BTreeMap::new();
        for signal in extract["signals"].as_array().expect("signals") {
            let rate = signal["sample_rate"].as_f64().expect("rate");
            let resolution = signal["resolution"].as_f64().expect("resolution");
            for window in signal["windows"].as_array().expect("windows") {
                let start = window["start"].as_u64().expect("start");
                let values = window["values"]
                    .as_array()
                    .expect("values")
                    .iter()
                    .map(|v| v.as_f64())
                    .collect();
                let key = (start, rate.to_bits());
                let entry = (
                    signal["name"].as_str().expect("name").to_string(),
                    resolution,
                    values,
                );
                groups.entry(key).or_default().push(entry);
            }
        }
        for ((start, rate_bits), channels) in groups {
            let rate = f64::from_bits(rate_bits);
            let count = channels[0].2.len();
            let names: Vec<&str> = channels.iter().map(|c| c.0.as_str()).collect();
            let out = sigfab(&[
                "dump",
                &path,
                "--channels",
                &names.join(","),
                "--start",
                &format!("{}", start as f64 / rate),
                "--duration",
                &format!("{}", count as f64 / rate),
            ]);
            assert!(out.status.success(), "{name}: {}", text(&out.stderr));
            let csv = text(&out.stdout);
            let mut lines = csv.lines();
            assert_eq!(lines.next(), Some(format!("time_s,{}", names.join(",")).as_str()));
            let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
            assert_eq!(rows.len(), count, "{name} window at {start}");
            for (c, (channel, resolution, expected)) in channels.iter().enumerate() {
                for (row, want) in rows.iter().zip(expected) {
                    let got: f64 = row[c + 1].parse().expect("number");
                    match want {
                        Some(want) => assert!(
                            (got - want).abs() <= *resolution,
                            "{name} {channel} at {start}: {got} vs {want}"
                        ),
                        None => assert!(got.is_nan(), "{name} {channel}: expected a gap"),
                    }
                }
            }
        }
    }
}

#[test]
fn sigterm_drains_in_flight_frames_and_exits_cleanly() {
    let dir = std::env::temp_dir().join(format!("sigfab-sigterm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp folder");
    let pipeline = dir.join("live.yaml");
    std::fs::write(
        &pipeline,
        "sources:\n  live:\n    synthetic: { signal: ecg, pace: realtime, frame: 20ms }\n\
         sinks:\n  out:\n    inputs: [live]\n    file: { path: frames.jsonl }\n",
    )
    .expect("write pipeline");
    let child = Command::new(env!("CARGO_BIN_EXE_sigfab"))
        .args(["run", &pipeline.to_string_lossy()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start sigfab");
    std::thread::sleep(std::time::Duration::from_millis(700));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(killed.expect("kill").success());
    let out = child.wait_with_output().expect("sigfab exits");
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("stopped after"), "{stderr}");
    assert!(!stderr.contains("abandoned"), "{stderr}");
    let written = std::fs::read_to_string(dir.join("frames.jsonl")).expect("output");
    let frames = written.lines().count();
    assert!(frames >= 10, "{frames} frames in 700 ms of 20 ms frames");
    assert!(
        stderr.contains(&format!("{frames} delivered")),
        "every frame written was acknowledged: {stderr}"
    );
}

#[test]
fn run_writes_a_json_report_on_request() {
    let report = std::env::temp_dir().join(format!("sigfab-report-{}.json", std::process::id()));
    let out = sigfab(&[
        "run",
        "pipelines/demo.yaml",
        "--report",
        &report.to_string_lossy(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON");
    assert_eq!(json["acks"]["delivered"], 500);
    let sinks: Vec<&serde_json::Value> = json["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["role"] == "sink")
        .collect();
    assert_eq!(sinks.len(), 2);
    assert!(sinks
        .iter()
        .all(|s| s["latency_s"]["p99"].as_f64().is_some_and(|p| p > 0.0)));
}
