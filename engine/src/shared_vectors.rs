//! Where the cryptographic test vectors (Wycheproof, X-Wing) used by tests live.
//!
//! One setting: the `SIGFAB_SHARED_VECTORS` environment variable; when unset,
//! `../shared/vectors` beside the repository root. Tests call [`require`], which
//! fails loudly when a vector file is missing: vector tests never skip.

use std::path::PathBuf;

/// Name of the environment variable that points at the shared vectors folder.
pub const ENV_VAR: &str = "SIGFAB_SHARED_VECTORS";

/// The shared vectors folder (it may not exist).
pub fn dir() -> PathBuf {
    crate::shared_data::shared_folder(ENV_VAR, "vectors")
}

/// Path of a file under the shared vectors folder; panics with a clear message
/// when it is missing. For tests and benchmarks only.
pub fn require(relative: &str) -> PathBuf {
    let path = dir().join(relative);
    assert!(
        path.is_file(),
        "test vector file {} is missing: set {ENV_VAR} to the folder that holds shared/vectors \
         (wycheproof/, xwing/); vector tests fail rather than skip",
        path.display()
    );
    path
}
