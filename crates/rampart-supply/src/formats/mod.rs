//! Checkers for model formats that are not pickle: each reads a stream, bounds every length by
//! what is really there, and returns [`Issue`]s.

pub mod config;
pub mod gguf;
pub mod keras;
pub mod numpy;
pub mod onnx;
pub mod protobuf;
pub mod pyliteral;
pub mod safetensors;
pub mod savedmodel;

use crate::report::{Rule, Severity};

/// A problem found by a format checker, before it is given a location.
#[derive(Clone, Debug)]
pub struct Issue {
    /// Rule.
    pub rule: Rule,
    /// Severity.
    pub severity: Severity,
    /// One-line message.
    pub message: String,
    /// Byte offset, when meaningful.
    pub offset: Option<u64>,
}

impl Issue {
    pub(crate) fn new(rule: Rule, severity: Severity, message: impl Into<String>) -> Issue {
        Issue {
            rule,
            severity,
            message: message.into(),
            offset: None,
        }
    }

    pub(crate) fn at(mut self, offset: u64) -> Issue {
        self.offset = Some(offset);
        self
    }
}
