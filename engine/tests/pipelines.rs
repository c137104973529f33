//! Every pipeline in `pipelines/` checks out, and every file in
//! `tests/config/invalid/` fails with exactly the message in its `.expected`
//! file (golden tests). Set `SIGFAB_BLESS=1` to rewrite the `.expected` files
//! after a deliberate change of wording, then review the diff.

use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn yaml_files(folder: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_root().join(folder))
        .unwrap_or_else(|e| panic!("cannot list {folder}: {e}"))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_pipeline_is_valid() {
    let files = yaml_files("pipelines");
    assert!(!files.is_empty(), "pipelines/ holds no YAML file");
    for file in files {
        if let Err(errors) = sigfab_engine::config::load(&file) {
            panic!("{} does not check out:\n{errors}", file.display());
        }
    }
}

#[test]
fn invalid_pipelines_fail_with_their_golden_message() {
    let files = yaml_files("tests/config/invalid");
    assert!(files.len() >= 15, "expected the golden invalid configs");
    let bless = std::env::var_os("SIGFAB_BLESS").is_some();
    let mut mismatches = Vec::new();
    for file in files {
        let name = file
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        let shown = PathBuf::from("tests/config/invalid").join(&name);
        let text = std::fs::read_to_string(&file).expect("readable config");
        let errors = match sigfab_engine::config::load_str(&shown, text) {
            Ok(_) => panic!("{name} was accepted but is meant to be invalid"),
            Err(errors) => errors.to_string(),
        };
        for error in errors.lines().filter(|l| l.contains(": error: ")) {
            let position = error.split(": error: ").next().unwrap_or_default();
            let mut parts = position.rsplit(':');
            let column: u64 = parts.next().and_then(|c| c.parse().ok()).unwrap_or(0);
            let line: u64 = parts.next().and_then(|l| l.parse().ok()).unwrap_or(0);
            assert!(
                line > 0 && column > 0,
                "{name}: error without a line and column: {error}"
            );
        }
        let expected_path = file.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, format!("{errors}\n")).expect("write golden file");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_else(|_| {
            panic!("{name} has no .expected file; run with SIGFAB_BLESS=1 and review it")
        });
        if expected.trim_end() != errors.trim_end() {
            mismatches.push(format!("--- {name}: expected\n{expected}\n--- got\n{errors}\n"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
