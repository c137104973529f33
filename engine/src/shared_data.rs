//! Where the real recordings used by tests and benchmarks live.
//!
//! One setting: the `SIGFAB_SHARED_DATA` environment variable; when unset,
//! `../shared/data` beside the repository root. Tests call [`require`], which
//! fails loudly when the data are missing: real-data tests never skip.

use std::path::PathBuf;

/// Name of the environment variable that points at the shared data folder.
pub const ENV_VAR: &str = "SIGFAB_SHARED_DATA";

/// The shared data folder (it may not exist).
pub fn dir() -> PathBuf {
    shared_folder(ENV_VAR, "data")
}

/// `$env_var` if set, else `../shared/NAME` beside the repository root.
pub(crate) fn shared_folder(env_var: &str, name: &str) -> PathBuf {
    match std::env::var_os(env_var) {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared")
            .join(name),
    }
}

/// Path of a file (or WFDB record, named without extension) under the
/// shared data folder; panics with a clear message when it is missing. For
/// tests and benchmarks only.
pub fn require(relative: &str) -> PathBuf {
    let path = dir().join(relative);
    let wfdb_header = dir().join(format!("{relative}.hea"));
    assert!(
        path.exists() || wfdb_header.exists(),
        "real recording {} is missing: set {ENV_VAR} to the folder that holds shared/data \
         (edf/, wfdb/); real-data tests fail rather than skip",
        path.display()
    );
    path
}
