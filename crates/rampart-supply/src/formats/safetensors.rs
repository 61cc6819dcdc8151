//! Strict safetensors validation: the format is safe only if every loader reads the same
//! tensors, so anything the reference implementation would reject, and anything it would
//! accept but another reader could interpret differently, is reported.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::io::{self, Read};

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::config::{self, Found};
use super::Issue;
use crate::report::{Rule, Severity};

/// The reference implementation's header size limit.
pub const MAX_HEADER: u64 = 100_000_000;

fn dtype_size(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" => 1,
        "I16" | "U16" | "F16" | "BF16" => 2,
        "I32" | "U32" | "F32" => 4,
        "I64" | "U64" | "F64" | "C64" => 8,
        _ => return None,
    })
}

/// Top-level keys in file order, duplicates kept (serde_json's map would drop them).
struct Entries(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
                    out.push((k, v));
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Validates a safetensors stream of `len` bytes (drained to count them when unknown). The
/// `__metadata__` strings are checked as configs (a framework that instantiates from them
/// runs what they name), and blobs found in them come back for scanning.
pub fn check(r: &mut dyn Read, len: Option<u64>) -> io::Result<Found> {
    let mut found = Found::default();
    let issues = check_layout(r, len, &mut found)?;
    found.issues.splice(0..0, issues);
    Ok(found)
}

fn check_layout(r: &mut dyn Read, len: Option<u64>, configs: &mut Found) -> io::Result<Vec<Issue>> {
    let mut issues = Vec::new();
    let bad = |sev: Severity, m: String| Issue::new(Rule::FormatInvalid, sev, format!("safetensors: {m}"));
    let mut n = [0u8; 8];
    if r.read_exact(&mut n).is_err() {
        issues.push(bad(Severity::High, "truncated before the header length".into()));
        return Ok(issues);
    }
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER {
        issues.push(bad(
            Severity::High,
            format!("header of {n} bytes exceeds the 100 MB limit"),
        ));
        return Ok(issues);
    }
    let mut header = Vec::new();
    r.take(n).read_to_end(&mut header)?;
    if (header.len() as u64) < n {
        issues.push(bad(
            Severity::High,
            format!("header claims {n} bytes, file ends after {}", header.len()),
        ));
        return Ok(issues);
    }
    let data_len = match len {
        Some(l) => l.saturating_sub(8 + n),
        None => io::copy(r, &mut io::sink())?,
    };
    let text = match std::str::from_utf8(&header) {
        Ok(t) => t,
        Err(_) => {
            issues.push(bad(Severity::High, "header is not valid UTF-8".into()));
            return Ok(issues);
        }
    };
    if !text.starts_with('{') {
        issues.push(bad(Severity::High, "header does not start with `{`".into()));
    }
    let entries: Entries = match serde_json::from_str(text.trim_end_matches(' ')) {
        Ok(e) => e,
        Err(e) => {
            issues.push(bad(Severity::High, format!("header is not a JSON object: {e}")));
            return Ok(issues);
        }
    };
    let mut seen = HashSet::new();
    let mut spans: BTreeMap<(u64, u64), String> = BTreeMap::new();
    for (name, value) in &entries.0 {
        if !seen.insert(name.as_str()) {
            issues.push(bad(
                Severity::High,
                format!("duplicate key `{name}`: readers disagree on which tensor it is"),
            ));
            continue;
        }
        if name == "__metadata__" {
            config::check_value(value, configs);
            match value.as_object() {
                Some(m) if m.values().all(serde_json::Value::is_string) => {}
                _ => issues.push(bad(
                    Severity::Medium,
                    "`__metadata__` must map strings to strings".into(),
                )),
            }
            continue;
        }
        let Some(obj) = value.as_object() else {
            issues.push(bad(Severity::High, format!("tensor `{name}` is not an object")));
            continue;
        };
        for k in obj.keys() {
            if !matches!(k.as_str(), "dtype" | "shape" | "data_offsets") {
                issues.push(bad(Severity::Low, format!("tensor `{name}` has unknown field `{k}`")));
            }
        }
        let dtype = obj.get("dtype").and_then(|v| v.as_str()).unwrap_or("");
        let Some(size) = dtype_size(dtype) else {
            issues.push(bad(
                Severity::High,
                format!("tensor `{name}` has unknown dtype `{dtype}`"),
            ));
            continue;
        };
        let shape: Option<Vec<u64>> = obj
            .get("shape")
            .and_then(|v| v.as_array())
            .and_then(|a| a.iter().map(serde_json::Value::as_u64).collect());
        let Some(shape) = shape else {
            issues.push(bad(Severity::High, format!("tensor `{name}` has no valid shape")));
            continue;
        };
        let offsets: Option<Vec<u64>> = obj
            .get("data_offsets")
            .and_then(|v| v.as_array())
            .and_then(|a| a.iter().map(serde_json::Value::as_u64).collect());
        let Some([begin, end]) = offsets.as_deref().and_then(|o| <[u64; 2]>::try_from(o).ok()) else {
            issues.push(bad(
                Severity::High,
                format!("tensor `{name}` has no valid data_offsets"),
            ));
            continue;
        };
        let bytes = shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .and_then(|e| e.checked_mul(size));
        match bytes {
            None => issues.push(bad(
                Severity::High,
                format!("tensor `{name}`: shape {shape:?} overflows"),
            )),
            Some(b) if end < begin || end - begin != b => issues.push(bad(
                Severity::High,
                format!("tensor `{name}`: {dtype} × {shape:?} is {b} bytes but data_offsets span [{begin}, {end})"),
            )),
            Some(_) => {}
        }
        if end > data_len {
            issues.push(bad(
                Severity::High,
                format!("tensor `{name}` ends at {end}, past the {data_len}-byte data section"),
            ));
        }
        spans.insert((begin, end), name.clone());
    }
    // Contiguous, non-overlapping, and covering the whole data section.
    let mut expected = 0u64;
    for ((begin, end), name) in &spans {
        if *begin != expected {
            let what = if *begin < expected {
                "overlaps the previous tensor"
            } else {
                "leaves a gap before it"
            };
            issues.push(bad(
                Severity::High,
                format!("tensor `{name}` at {begin} {what} (expected {expected})"),
            ));
        }
        expected = expected.max(*end);
    }
    if expected < data_len {
        issues.push(bad(
            Severity::Medium,
            format!("{} trailing byte(s) after the last tensor", data_len - expected),
        ));
    }
    Ok(issues)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn file(header: &str, data: usize) -> Vec<u8> {
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend(std::iter::repeat_n(0u8, data));
        out
    }

    fn check_bytes(b: &[u8]) -> Vec<Issue> {
        check(&mut &b[..], Some(b.len() as u64)).unwrap().issues
    }

    #[test]
    fn valid_file_is_clean() {
        let b = file(
            r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"I8","shape":[4],"data_offsets":[16,20]}}"#,
            20,
        );
        assert!(check_bytes(&b).is_empty(), "{:?}", check_bytes(&b));
    }

    #[test]
    fn each_violation_is_named() {
        let cases = [
            (
                r#"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}"#,
                12,
                "bytes but",
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                8,
                "duplicate",
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}"#,
                6,
                "overlaps",
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                10,
                "trailing",
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
                8,
                "past the",
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[4611686018427387904,8],"data_offsets":[0,16]}}"#,
                16,
                "overflows",
            ),
            (
                r#"{"a":{"dtype":"X9","shape":[1],"data_offsets":[0,4]}}"#,
                4,
                "unknown dtype",
            ),
        ];
        for (h, data, want) in cases {
            let issues = check_bytes(&file(h, data));
            assert!(issues.iter().any(|i| i.message.contains(want)), "{want}: {issues:?}");
        }
        let mut huge = (MAX_HEADER + 1).to_le_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        assert!(check_bytes(&huge)[0].message.contains("100 MB"));
    }
}
