//! TensorFlow SavedModel (`saved_model.pb`): operations that touch files or run Python when the
//! graph runs, in the main graphs and in the function library (where `tf.function` bodies
//! live). The saver's own ops (SaveV2, RestoreV2, MergeV2Checkpoints) are in every SavedModel
//! and are not reported.

use std::collections::BTreeMap;
use std::io::{self, Read};

use super::protobuf::{Field, Wire};
use super::Issue;
use crate::report::{Rule, Severity};

const NAME_CAP: usize = 4096;

/// Severity and reason for the ops worth reporting.
fn dangerous(op: &str) -> Option<(Severity, &'static str)> {
    Some(match op {
        "PyFunc" | "PyFuncStateless" | "EagerPyFunc" => {
            (Severity::Critical, "calls a Python function of the loading process")
        }
        "ReadFile" | "WriteFile" | "MatchingFiles" => {
            (Severity::High, "reads, writes or lists files when the graph runs")
        }
        "ImmutableConst" => (Severity::Medium, "maps a file from disk into a tensor"),
        "PrintV2" => (
            Severity::Medium,
            "can write to a file named in the graph (output_stream)",
        ),
        "DebugIdentity" | "DebugIdentityV2" | "DebugNanCount" | "DebugNumericSummary" | "DebugNumericSummaryV2" => (
            Severity::Medium,
            "can send tensors to files or gRPC endpoints named in the graph",
        ),
        _ => return None,
    })
}

#[derive(Default)]
struct Walk {
    /// op -> (count, first node name, offset)
    hits: BTreeMap<String, (u64, String, u64)>,
}

/// Checks a `saved_model.pb` stream.
pub fn check(r: &mut dyn Read) -> io::Result<Vec<Issue>> {
    let mut wire = Wire::new(r);
    let mut walk = Walk::default();
    let mut issues = Vec::new();
    if let Err(e) = message(&mut wire, &mut walk, u64::MAX, Level::SavedModel) {
        if e.kind() != io::ErrorKind::InvalidData && e.kind() != io::ErrorKind::UnexpectedEof {
            return Err(e);
        }
        issues.push(
            Issue::new(
                Rule::FormatInvalid,
                Severity::Medium,
                format!("SavedModel cannot be parsed to its end: {e}"),
            )
            .at(wire.pos),
        );
    }
    for (op, (count, node, offset)) in walk.hits {
        if let Some((severity, why)) = dangerous(&op) {
            issues.push(
                Issue::new(
                    Rule::GraphEscape,
                    severity,
                    format!("operation `{op}` ({count} node(s), e.g. `{node}`) {why}"),
                )
                .at(offset),
            );
        }
    }
    Ok(issues)
}

#[derive(Clone, Copy)]
enum Level {
    SavedModel,
    MetaGraph,
    GraphDef,
    Library,
    Function,
}

/// Walks the path SavedModel.meta_graphs(2) -> MetaGraphDef.graph_def(2) -> GraphDef.node(1)
/// and GraphDef.library(2) -> FunctionDefLibrary.function(1) -> FunctionDef.node_def(3).
fn message<R: Read>(w: &mut Wire<R>, walk: &mut Walk, end: u64, level: Level) -> io::Result<()> {
    while let Some((n, f)) = w.next(end)? {
        let Field::Len(len) = f else { continue };
        let inner = w.pos + len;
        match (level, n) {
            (Level::SavedModel, 2) => message(w, walk, inner, Level::MetaGraph)?,
            (Level::MetaGraph, 2) => message(w, walk, inner, Level::GraphDef)?,
            (Level::GraphDef, 1) | (Level::Function, 3) => node(w, walk, inner)?,
            (Level::GraphDef, 2) => message(w, walk, inner, Level::Library)?,
            (Level::Library, 1) => message(w, walk, inner, Level::Function)?,
            _ => w.skip(len)?,
        }
    }
    Ok(())
}

fn node<R: Read>(w: &mut Wire<R>, walk: &mut Walk, end: u64) -> io::Result<()> {
    let start = w.pos;
    let (mut name, mut op) = (String::new(), String::new());
    while let Some((n, f)) = w.next(end)? {
        match (n, f) {
            (1, Field::Len(len)) => name = w.string(len, NAME_CAP)?,
            (2, Field::Len(len)) => op = w.string(len, NAME_CAP)?,
            (_, Field::Len(len)) => w.skip(len)?,
            _ => {}
        }
    }
    if dangerous(&op).is_some() {
        let e = walk.hits.entry(op).or_insert((0, name, start));
        e.0 += 1;
    }
    Ok(())
}
