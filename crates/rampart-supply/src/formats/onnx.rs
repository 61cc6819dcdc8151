//! ONNX `ModelProto`: what `onnx.load` and ONNX Runtime would reach outside the file.
//!
//! * External data (`TensorProto.external_data`, key `location`) is read from a path relative to
//!   the model's directory; an absolute path or one with `..` reads any file the loader can
//!   (the class of CVE-2022-25882, CVE-2024-27318).
//! * Operators in a domain other than the standard ones and ONNX Runtime's built-in contrib
//!   domains need a native custom-op library registered by whoever loads the model; a node in
//!   such a domain is reported unless a model-local function defines it.
//! * Subgraphs (If/Loop/Scan bodies, graph attributes) and model-local functions are walked too.
//!
//! Weights are skipped, never buffered.

use std::collections::BTreeMap;
use std::io::{self, Read};

use super::protobuf::{Field, Wire, MAX_DEPTH};
use super::Issue;
use crate::report::{Rule, Severity};

const NAME_CAP: usize = 4096;

/// Operator domains that need nothing beyond ONNX and ONNX Runtime themselves.
fn standard_domain(domain: &str) -> bool {
    domain.is_empty()
        || domain == "ai.onnx"
        || domain.starts_with("ai.onnx.")
        || domain == "com.microsoft"
        || domain.starts_with("com.microsoft.")
}

/// True when an external-data location could leave the model's directory.
pub fn escapes(location: &str) -> bool {
    let l = location.trim();
    l.starts_with('/')
        || l.starts_with('\\')
        || l.starts_with('~')
        || (l.len() >= 2 && l.as_bytes()[1] == b':')
        || l.split(['/', '\\']).any(|c| c == "..")
}

#[derive(Default)]
struct Walk {
    issues: Vec<Issue>,
    /// (domain, op_type) -> (count, an example node offset)
    custom: BTreeMap<(String, String), (u64, u64)>,
    /// Model-local functions: (domain, name).
    functions: Vec<(String, String)>,
    deep: bool,
}

/// Checks an ONNX model stream.
pub fn check(r: &mut dyn Read) -> io::Result<Vec<Issue>> {
    let mut wire = Wire::new(r);
    let mut walk = Walk::default();
    if let Err(e) = model(&mut wire, &mut walk) {
        if e.kind() != io::ErrorKind::InvalidData && e.kind() != io::ErrorKind::UnexpectedEof {
            return Err(e);
        }
        walk.issues.push(
            Issue::new(
                Rule::FormatInvalid,
                Severity::Medium,
                format!("ONNX model cannot be parsed to its end: {e}"),
            )
            .at(wire.pos),
        );
    }
    for ((domain, op), (count, offset)) in &walk.custom {
        if walk.functions.iter().any(|(d, n)| d == domain && n == op) {
            continue;
        }
        walk.issues.push(
            Issue::new(
                Rule::GraphEscape,
                Severity::Medium,
                format!(
                    "custom operator `{domain}::{op}` ({count} node(s)): running it needs a native operator library that the loader registers"
                ),
            )
            .at(*offset),
        );
    }
    if walk.deep {
        walk.issues.push(Issue::new(
            Rule::LimitExceeded,
            Severity::High,
            format!("subgraphs nested deeper than {MAX_DEPTH} levels were not checked"),
        ));
    }
    Ok(walk.issues)
}

fn model<R: Read>(w: &mut Wire<R>, walk: &mut Walk) -> io::Result<()> {
    while let Some((n, f)) = w.next(u64::MAX)? {
        match (n, f) {
            (7, Field::Len(len)) => graph(w, walk, w.pos + len, 1)?,
            (25, Field::Len(len)) => function(w, walk, w.pos + len)?,
            (_, Field::Len(len)) => w.skip(len)?,
            _ => {}
        }
    }
    Ok(())
}

fn function<R: Read>(w: &mut Wire<R>, walk: &mut Walk, end: u64) -> io::Result<()> {
    let (mut name, mut domain) = (String::new(), String::new());
    while let Some((n, f)) = w.next(end)? {
        match (n, f) {
            (1, Field::Len(len)) => name = w.string(len, NAME_CAP)?,
            (10, Field::Len(len)) => domain = w.string(len, NAME_CAP)?,
            (7, Field::Len(len)) => node(w, walk, w.pos + len, 1)?,
            (_, Field::Len(len)) => w.skip(len)?,
            _ => {}
        }
    }
    walk.functions.push((domain, name));
    Ok(())
}

fn graph<R: Read>(w: &mut Wire<R>, walk: &mut Walk, end: u64, depth: u32) -> io::Result<()> {
    if depth > MAX_DEPTH {
        walk.deep = true;
        return w.skip(end - w.pos);
    }
    while let Some((n, f)) = w.next(end)? {
        match (n, f) {
            (1, Field::Len(len)) => node(w, walk, w.pos + len, depth)?,
            (5, Field::Len(len)) => tensor(w, walk, w.pos + len)?,
            (15, Field::Len(len)) => sparse(w, walk, w.pos + len)?,
            (_, Field::Len(len)) => w.skip(len)?,
            _ => {}
        }
    }
    Ok(())
}

fn node<R: Read>(w: &mut Wire<R>, walk: &mut Walk, end: u64, depth: u32) -> io::Result<()> {
    let start = w.pos;
    let (mut op, mut domain) = (String::new(), String::new());
    while let Some((n, f)) = w.next(end)? {
        match (n, f) {
            (4, Field::Len(len)) => op = w.string(len, NAME_CAP)?,
            (7, Field::Len(len)) => domain = w.string(len, NAME_CAP)?,
            (5, Field::Len(len)) => attribute(w, walk, w.pos + len, depth)?,
            (_, Field::Len(len)) => w.skip(len)?,
            _ => {}
        }
    }
    if !standard_domain(&domain) {
        let e = walk.custom.entry((domain, op)).or_insert((0, start));
        e.0 += 1;
    }
    Ok(())
}

fn attribute<R: Read>(w: &mut Wire<R>, walk: &mut Walk, end: u64, depth: u32) -> io::Result<()> {
    while let Some((n, f)) = w.next(end)? {
        match (n, f) {
            (5 | 10, Field::Len(len)) => tensor(w, walk, w.pos + len)?,
            (6 | 11, Field::Len(len)) => graph(w, walk, w.pos + len, depth + 1)?,
            (22, Field::Len(len)) => sparse(w, walk, w.pos + len)?,
            (_, Field::Len(len)) => w.skip(len)?,
            _ => {}
        }
    }
    Ok(())
}

fn sparse<R: Read>(w: &mut Wire<R>, walk: &mut Walk, end: u64) -> io::Result<()> {
    while let Some((n, f)) = w.next(end)? {
        match (n, f) {
            (1 | 2, Field::Len(len)) => tensor(w, walk, w.pos + len)?,
            (_, Field::Len(len)) => w.skip(len)?,
            _ => {}
        }
    }
    Ok(())
}

fn tensor<R: Read>(w: &mut Wire<R>, walk: &mut Walk, end: u64) -> io::Result<()> {
    let start = w.pos;
    let mut name = String::new();
    let mut locations = Vec::new();
    while let Some((n, f)) = w.next(end)? {
        match (n, f) {
            (8, Field::Len(len)) => name = w.string(len, NAME_CAP)?,
            (13, Field::Len(len)) => {
                let entry_end = w.pos + len;
                let (mut key, mut value) = (String::new(), String::new());
                while let Some((k, f)) = w.next(entry_end)? {
                    match (k, f) {
                        (1, Field::Len(l)) => key = w.string(l, NAME_CAP)?,
                        (2, Field::Len(l)) => value = w.string(l, NAME_CAP)?,
                        (_, Field::Len(l)) => w.skip(l)?,
                        _ => {}
                    }
                }
                if key == "location" {
                    locations.push(value);
                }
            }
            (_, Field::Len(len)) => w.skip(len)?,
            _ => {}
        }
    }
    for location in locations {
        if escapes(&location) {
            walk.issues.push(
                Issue::new(
                    Rule::GraphEscape,
                    Severity::High,
                    format!(
                        "tensor `{name}` loads external data from `{location}`, outside the model's directory: loading the model reads that file"
                    ),
                )
                .at(start),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_locations() {
        for bad in [
            "/etc/passwd",
            "../../secret",
            "a/../../b",
            "C:\\x",
            "\\\\host\\share",
            "~/.ssh/id_rsa",
        ] {
            assert!(escapes(bad), "{bad}");
        }
        for ok in ["weights.bin", "data/w.bin", "w..bin"] {
            assert!(!escapes(ok), "{ok}");
        }
    }
}
