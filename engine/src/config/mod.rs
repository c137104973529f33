//! The pipeline language: YAML → [`PipelineSpec`] → checked [`graph::Graph`].
//!
//! A pipeline names its sources, operators and sinks. Each node is a map
//! with one type key holding that type's parameters, plus `inputs` for
//! operators and sinks:
//!
//! ```yaml
//! sources:
//!   ecg:
//!     file: { path: ../data/100, frame: 40ms }
//! operators:
//!   stats:
//!     inputs: [ecg]
//!     frame_stats: {}
//! sinks:
//!   out:
//!     inputs: [stats]
//!     file: { path: ../out/stats.jsonl }
//! ```
//!
//! Every error names the file, line and column. Syntax and parameter-type
//! errors stop the parse at the first one (YAML offers no sound recovery);
//! everything found after parsing (unknown types, graph errors, bad values)
//! is collected and reported together.

pub mod graph;
mod located;
pub mod spec;

use std::fmt;
use std::path::{Path, PathBuf};

pub use located::{Located, NodeKinds, NodeMap, NodeSpec, Pos};
pub use spec::*;

/// One problem in a pipeline file.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigError {
    pub pos: Pos,
    pub message: String,
    /// The line holds a secret: messages show its position, not its text.
    pub hide_line: bool,
}

impl ConfigError {
    pub fn new(pos: Pos, message: impl Into<String>) -> Self {
        Self {
            pos,
            message: message.into(),
            hide_line: false,
        }
    }

    /// An error on a line that holds a secret, which is never quoted.
    pub fn on_secret(pos: Pos, message: impl Into<String>) -> Self {
        Self {
            hide_line: true,
            ..Self::new(pos, message)
        }
    }
}

/// All problems found in one pipeline file, sorted by position.
#[derive(Clone, Debug)]
pub struct ConfigErrors {
    pub file: PathBuf,
    pub source: String,
    pub errors: Vec<ConfigError>,
}

impl std::error::Error for ConfigErrors {}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            let Pos { line, column } = error.pos;
            write!(
                f,
                "{}:{line}:{column}: error: {}",
                self.file.display(),
                error.message
            )?;
            if let Some(text) = self.source.lines().nth((line as usize).saturating_sub(1)) {
                if line > 0 && error.hide_line {
                    let gutter = " ".repeat(line.to_string().len());
                    write!(f, "\n{gutter} |\n{line} | (not shown: this line holds a secret)")?;
                } else if line > 0 {
                    let gutter = " ".repeat(line.to_string().len());
                    let caret_pad = " ".repeat((column as usize).saturating_sub(1));
                    write!(f, "\n{gutter} |\n{line} | {text}\n{gutter} | {caret_pad}^")?;
                }
            }
        }
        if self.errors.len() > 1 {
            write!(f, "\n{} errors in {}", self.errors.len(), self.file.display())?;
        }
        Ok(())
    }
}

/// A parsed pipeline with the file it came from, for resolving relative
/// paths and for messages.
#[derive(Debug)]
pub struct LoadedPipeline {
    pub file: PathBuf,
    pub spec: PipelineSpec,
}

impl LoadedPipeline {
    /// Resolves a path written in the pipeline: relative paths are relative
    /// to the folder of the pipeline file, so a pipeline runs the same from
    /// any working directory.
    pub fn resolve(&self, path: &str) -> PathBuf {
        let folder = self.file.parent().unwrap_or(Path::new("."));
        normalize(&folder.join(path))
    }
}

/// Reads and checks a pipeline file: parse, then build and check the graph.
pub fn load(file: &Path) -> Result<(LoadedPipeline, graph::Graph), ConfigErrors> {
    let source = std::fs::read_to_string(file).map_err(|e| ConfigErrors {
        file: file.to_path_buf(),
        source: String::new(),
        errors: vec![ConfigError::new(
            Pos::default(),
            format!("cannot read the pipeline file: {e}"),
        )],
    })?;
    load_str(file, source)
}

/// As [`load`], for YAML text already in memory (`file` is used for
/// messages and relative paths).
pub fn load_str(file: &Path, source: String) -> Result<(LoadedPipeline, graph::Graph), ConfigErrors> {
    let fail = |errors: Vec<ConfigError>, source: String| ConfigErrors {
        file: file.to_path_buf(),
        source,
        errors,
    };
    let spec = match serde_saphyr::from_str::<PipelineSpec>(&source) {
        Ok(spec) => spec,
        Err(e) => return Err(fail(vec![parse_error(&e)], source)),
    };
    let loaded = LoadedPipeline {
        file: file.to_path_buf(),
        spec,
    };
    match graph::Graph::build(&loaded.spec) {
        Ok(graph) => Ok((loaded, graph)),
        Err(mut errors) => {
            errors.sort_by_key(|e| e.pos);
            Err(fail(errors, source))
        }
    }
}

/// Removes `.` and `dir/..` pairs without touching the file system, so
/// messages show `out/x.jsonl` rather than `pipelines/../out/x.jsonl`.
pub fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                let last = out.components().next_back();
                if matches!(last, Some(Component::Normal(_))) {
                    out.pop();
                } else if !matches!(last, Some(Component::RootDir)) {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

fn parse_error(e: &serde_saphyr::Error) -> ConfigError {
    let pos = e.location().map(Pos::from).unwrap_or_default();
    let text = e.without_snippet().to_string();
    let first = text.lines().next().unwrap_or("invalid YAML");
    let message = strip_position_prefix(first.strip_prefix("error: ").unwrap_or(first));
    ConfigError::new(pos, plain_words(strip_position_suffix(&message)))
}

/// serde-saphyr may end messages with " at line L, column C".
fn strip_position_suffix(message: &str) -> &str {
    match message.rsplit_once(" at line ") {
        Some((text, position)) if position.split(", column ").all(|n| n.parse::<u64>().is_ok()) => text,
        _ => message,
    }
}

/// Replaces serde's vocabulary with words a pipeline author knows.
fn plain_words(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(',').next().unwrap_or(rest);
        return format!("duplicate key '{key}': each name may appear once in a section");
    }
    let number = |kind: &str| match kind {
        "u8" | "u16" | "u32" | "u64" | "usize" => Some("a whole number, 0 or more"),
        "i8" | "i16" | "i32" | "i64" => Some("a whole number"),
        "f32" | "f64" | "floating point" => Some("a number"),
        _ => None,
    };
    if let Some(expected) = message.strip_prefix("invalid ").and_then(number) {
        return format!("expected {expected} here");
    }
    message
        .replace("unknown variant", "unknown value")
        .replace("expected one of", "expected one of:")
}

/// serde-saphyr prefixes messages with "line L column C: "; we print the
/// position in the file:line:col form instead.
fn strip_position_prefix(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("line ") {
        if let Some((position, text)) = rest.split_once(": ") {
            if position
                .split_whitespace()
                .all(|w| w == "column" || w.parse::<u64>().is_ok())
            {
                return text.to_string();
            }
        }
    }
    message.to_string()
}

/// The candidate closest to `word` by edit distance, if it is close enough
/// to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_finds_typos() {
        assert_eq!(edit_distance("ecgg", "ecg"), 1);
        assert_eq!(closest("ecgg", ["eeg", "ecg", "abp"].into_iter()), Some("ecg"));
        assert_eq!(closest("zzzzzz", ["ecg"].into_iter()), None);
    }

    #[test]
    fn paths_are_normalized_lexically() {
        assert_eq!(normalize(Path::new("pipelines/../out/x")), PathBuf::from("out/x"));
        assert_eq!(
            normalize(Path::new("../shared/./data")),
            PathBuf::from("../shared/data")
        );
        assert_eq!(normalize(Path::new("/a/../../b")), PathBuf::from("/b"));
        assert_eq!(normalize(Path::new("a/..")), PathBuf::from("."));
    }

    #[test]
    fn serde_wording_is_made_plain() {
        assert_eq!(
            strip_position_suffix("bad thing at line 3, column 4"),
            "bad thing"
        );
        assert_eq!(
            plain_words("invalid u16"),
            "expected a whole number, 0 or more here"
        );
        assert_eq!(
            plain_words("unknown variant `emg`, expected one of eeg, ecg"),
            "unknown value `emg`, expected one of: eeg, ecg"
        );
    }

    #[test]
    fn position_prefix_is_stripped() {
        assert_eq!(
            strip_position_prefix("line 2 column 3: unknown field `x`"),
            "unknown field `x`"
        );
        assert_eq!(strip_position_prefix("line of text"), "line of text");
    }
}
