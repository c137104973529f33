//! Quasi-identifier labels, the k-anonymity gate and DP releases with the
//! budget ledger, end to end through the `sigfab` binary on MIT-BIH record
//! 100: labels come only from de-identified metadata, the gate releases the
//! labelled records, each run charges the ledger before releasing, a run
//! past the budget releases nothing, and no label value reaches the log.

use std::path::{Path, PathBuf};
use std::process::Command;

use sigfab_engine::shared_data;

const KEY: &str = "Yx3nC6bq0VtS2kQ9wE7rT1uI5oP8aL4dF6gH0jK2mN4=";

fn pipeline(dir: &Path, record: &Path) -> PathBuf {
    let text = format!(
        r#"
sources:
  bed:
    file:
      path: {record}
      frame: 1s
      metadata: {{ unit: ICU-A, age_band: 60-69, sex: M, mrn: "8675309", bed_label: Canary }}
operators:
  deid:
    inputs: [bed]
    deidentify:
      key_env: PRIVACY_TEST_KEY
      key_version: 1
      policy: {{ keys: {{ unit: keep, age_band: keep }} }}
  stats:
    inputs: [deid]
    frame_stats: {{}}
  labelled:
    inputs: [deid, stats]
    attach_labels: {{ keys: [age_band, sex, unit, mrn, bed_label] }}
  gate:
    inputs: [labelled]
    k_anonymity: {{ k: 5, quasi_identifiers: [age_band, sex, unit], window: 1h }}
  hourly:
    inputs: [labelled]
    dp_aggregate:
      statistic: count
      epsilon: 0.5
      group_by: unit
      groups: [ICU-A, ICU-B]
      window: 1h
      max_contributions: 3600
      ledger: {{ path: ledger/dp.jsonl, budget: hourly, total_epsilon: 1.2 }}
sinks:
  features:
    inputs: [gate]
    file: {{ path: out/features.jsonl }}
  releases:
    inputs: [hourly]
    file: {{ path: out/dp.jsonl }}
"#,
        record = record.display()
    );
    let path = dir.join("privacy.yaml");
    std::fs::write(&path, text).expect("write pipeline");
    path
}

struct Run {
    features: Vec<serde_json::Value>,
    releases: Vec<serde_json::Value>,
    stderr: String,
}

fn run(dir: &Path, pipeline: &Path) -> Run {
    let _ = std::fs::remove_dir_all(dir.join("out"));
    let output = Command::new(env!("CARGO_BIN_EXE_sigfab"))
        .arg("run")
        .arg(pipeline)
        .env("RUST_LOG", "debug")
        .env("PRIVACY_TEST_KEY", KEY)
        .output()
        .expect("start sigfab");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "sigfab run failed:\n{stderr}");
    let read = |name: &str| -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.join("out").join(name))
            .expect("output file")
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect()
    };
    Run {
        features: read("features.jsonl"),
        releases: read("dp.jsonl"),
        stderr,
    }
}

fn ledger_lines(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("ledger/dp.jsonl"))
        .expect("ledger")
        .lines()
        .map(|l| serde_json::from_str(l).expect("ledger line"))
        .collect()
}

#[test]
fn labels_gate_and_budgeted_releases_through_the_binary() {
    let record = shared_data::require("wfdb/100.hea");
    let dir = std::env::temp_dir().join(format!("sigfab-privacy-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let pipeline = pipeline(&dir, &record);

    let first = run(&dir, &pipeline);
    // 650000 samples at 360 Hz in 1 s frames: 1806 frame_stats records, all
    // one stream with the same labels, so one class far above k = 5.
    assert_eq!(first.features.len(), 1806);
    // Labels are what the de-identification policy let through: kept keys
    // as they are, the MRN as its keyed pseudonym, the unlisted bed_label
    // not at all.
    let mrn = first.features[0]["labels"]["mrn"]
        .as_str()
        .expect("mrn label")
        .to_string();
    assert!(mrn.starts_with("p1-") && mrn.len() == 35, "{mrn}");
    for record in &first.features {
        assert_eq!(
            record["labels"],
            serde_json::json!({"age_band": "60-69", "sex": "M", "unit": "ICU-A", "mrn": mrn}),
        );
    }
    // One window (30 min from midnight, shifted by whole weeks): one
    // release per listed group, charged once. (The deid_audit record that
    // ends the run has no unit label: it is dropped and opens no window.)
    assert_eq!(first.releases.len(), 2);
    let groups: Vec<&str> = first
        .releases
        .iter()
        .map(|r| r["labels"]["unit"].as_str().expect("group label"))
        .collect();
    assert_eq!(groups, ["ICU-A", "ICU-B"]);
    for release in &first.releases {
        assert_eq!(release["kind"], "dp_aggregate");
        assert_eq!(release["values"]["epsilon"], 0.5);
        let count = release["values"]["count"].as_f64().expect("count");
        assert_eq!(count, count.round(), "counts are integers");
    }
    let ledger = ledger_lines(&dir);
    assert_eq!(ledger.len(), 1);
    assert_eq!(ledger[0]["budget"], "hourly");
    assert_eq!(ledger[0]["nano_epsilon"], 500_000_000);
    assert!(
        !dir.join("ledger/dp.jsonl.lock").exists(),
        "the lock is released at exit"
    );

    // A restart reads the ledger: 1.0 of 1.2 spent after the second run.
    let second = run(&dir, &pipeline);
    assert_eq!(second.releases.len(), 2);
    assert_eq!(ledger_lines(&dir).len(), 2);

    // A third release would make 1.5 > 1.2: refused, nothing released,
    // nothing charged; the gate's output is unaffected.
    let third = run(&dir, &pipeline);
    assert!(third.releases.is_empty());
    assert_eq!(third.features.len(), 1806);
    assert_eq!(ledger_lines(&dir).len(), 2);
    assert!(third.stderr.contains("release refused"), "{}", third.stderr);

    // No label value or metadata value in any log.
    for stderr in [&first.stderr, &second.stderr, &third.stderr] {
        for secret in ["ICU-A", "60-69", "8675309", "Canary", &mrn] {
            assert!(!stderr.contains(secret), "log holds {secret}:\n{stderr}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
