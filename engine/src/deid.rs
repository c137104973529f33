//! Builds the `deidentify` operator from its spec: reads the secret key
//! from its file or environment variable (never from the pipeline), and
//! turns the YAML policy into the operator's [`Policy`].
//!
//! Errors name the file or variable and what is wrong with it, never the
//! key's bytes.

use std::io::Read;
use std::path::PathBuf;

use sigfab_operators::deid::{
    Action, DateShift, DeidSettings, Deidentify, Policy, PseudonymKey, UnlistedAnnotation, MIN_KEY_LEN,
};
use zeroize::Zeroizing;

use crate::config::{
    DeidentifySpec, KeyAction, LoadedPipeline, PolicyBase, PolicySpec, ShiftUnit, UnlistedAnnotationSpec,
};

/// Why the key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read the deidentify key file {path}: {source}")]
    File { path: PathBuf, source: std::io::Error },
    #[error("the deidentify key variable {name} is not set")]
    EnvMissing { name: String },
    #[error("the deidentify key from {origin} holds {actual} bytes; at least {MIN_KEY_LEN} are needed")]
    TooShort { origin: String, actual: usize },
    #[error("deidentify has no key source (key_file or key_env)")]
    NoSource,
}

/// The operator for one `deidentify` node.
pub fn build(pipeline: &LoadedPipeline, spec: &DeidentifySpec) -> Result<Deidentify, KeyError> {
    let (secret, origin) = read_secret(pipeline, spec)?;
    let key = PseudonymKey::new(secret, spec.key_version.value).map_err(|e| KeyError::TooShort {
        origin,
        actual: e.actual,
    })?;
    let operator = Deidentify::new(key, settings(spec));
    tracing::info!(
        policy = operator.policy_fingerprint(),
        key_version = spec.key_version.value,
        "de-identification policy loaded"
    );
    Ok(operator)
}

/// The secret's bytes (final line break removed) and where they came from,
/// for messages.
fn read_secret(
    pipeline: &LoadedPipeline,
    spec: &DeidentifySpec,
) -> Result<(Zeroizing<Vec<u8>>, String), KeyError> {
    let mut secret = Zeroizing::new(Vec::new());
    let origin = match (&spec.key_file, &spec.key_env) {
        (Some(file), _) => {
            let path = pipeline.resolve(&file.value);
            let read = std::fs::File::open(&path).and_then(|mut file| {
                // Room for the whole file up front: a reallocation would leave
                // an unzeroized copy of the key behind.
                let len = file.metadata()?.len();
                secret.reserve(usize::try_from(len).unwrap_or(0).saturating_add(64));
                file.read_to_end(&mut secret)
            });
            read.map_err(|source| KeyError::File {
                path: path.clone(),
                source,
            })?;
            warn_if_shared(&path);
            format!("file {}", path.display())
        }
        (None, Some(env)) => {
            let name = env.value.clone();
            let value = std::env::var_os(&name).ok_or_else(|| KeyError::EnvMissing { name: name.clone() })?;
            secret.extend_from_slice(value.as_encoded_bytes());
            // The OsString's own copy cannot be zeroized in place here.
            drop(value);
            format!("variable {name}")
        }
        (None, None) => return Err(KeyError::NoSource),
    };
    while secret.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        secret.pop();
    }
    Ok((secret, origin))
}

/// A key file others can read defeats the key; say so (the run goes on:
/// the operator may have other controls, e.g. an encrypted volume).
#[cfg(unix)]
fn warn_if_shared(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = std::fs::metadata(path) {
        if metadata.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                "the deidentify key file is readable by group or others; chmod 600 it"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_: &std::path::Path) {}

fn settings(spec: &DeidentifySpec) -> DeidSettings {
    DeidSettings {
        policy: policy(&spec.policy),
        date_shift: DateShift {
            max_days: spec.date_shift.max_days.value,
            whole_weeks: spec.date_shift.unit == ShiftUnit::Weeks,
        },
        unlisted_annotation: match spec.policy.annotations.unlisted {
            UnlistedAnnotationSpec::Redact => UnlistedAnnotation::Redact,
            UnlistedAnnotationSpec::Drop => UnlistedAnnotation::Drop,
        },
    }
}

fn policy(spec: &PolicySpec) -> Policy {
    let mut policy = Policy::safe_harbor();
    if spec.base == PolicyBase::None {
        policy.keys.clear();
        policy.annotation_allow.clear();
    }
    if let Some(version) = spec.version {
        policy.version = version;
    }
    for (key, action) in &spec.keys {
        policy.keys.insert(key.clone(), action_of(*action));
    }
    policy
        .annotation_allow
        .extend(spec.annotations.allow.iter().cloned());
    if let Some(keys) = &spec.patient_keys {
        policy.patient_keys = keys.value.clone();
    }
    policy
}

fn action_of(action: KeyAction) -> Action {
    match action {
        KeyAction::Keep => Action::Keep,
        KeyAction::Drop => Action::Drop,
        KeyAction::Generalise => Action::Generalise,
        KeyAction::Pseudonymise => Action::Pseudonymise,
    }
}
