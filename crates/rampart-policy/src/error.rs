//! Error kinds of the policy layer.

use std::fmt;

/// One problem found in a configuration file, located precisely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// 1-based line, when the problem has a place in the file.
    pub line: Option<usize>,
    /// 1-based column, when the problem has a place in the file.
    pub column: Option<usize>,
    /// What is wrong, in lower case.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "line {l}, column {c}: {}", self.message),
            (Some(l), None) => write!(f, "line {l}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

/// A configuration that cannot be used. It lists every problem found, not only the first.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read `{path}`: {reason}")]
    Read {
        /// The file's path.
        path: String,
        /// Why it could not be read.
        reason: String,
    },
    /// The file was read but is not a valid configuration.
    #[error("{}", render_problems(.path, .problems))]
    Invalid {
        /// The file's path (or a name for it).
        path: String,
        /// Every problem found.
        problems: Vec<ConfigProblem>,
    },
}

impl ConfigError {
    /// The located problems, empty for a read error.
    pub fn problems(&self) -> &[ConfigProblem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems, .. } => problems,
        }
    }
}

fn render_problems(path: &str, problems: &[ConfigProblem]) -> String {
    let mut out = format!("`{path}` is not a valid configuration:");
    for p in problems {
        out.push_str(&format!("\n  {path}: {p}"));
    }
    out
}

/// The Cedar policy set could not be built.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A policy file could not be read.
    #[error("cannot read policy file `{path}`: {reason}")]
    Read {
        /// The file's path.
        path: String,
        /// Why it could not be read.
        reason: String,
    },
    /// A policy does not parse or clashes with another.
    #[error("invalid policies in `{source_name}`: {reason}")]
    Parse {
        /// Which file (or `built-in`).
        source_name: String,
        /// The parser's explanation.
        reason: String,
    },
}
