//! Keras: the model config (`config.json` in a `.keras` zip, the `model_config` attribute in a
//! legacy `.h5`) says which classes and functions `load_model` will deserialize. Lambda layers
//! carry marshalled Python bytecode; any `module` outside Keras is arbitrary import.

use std::io::{self, Read};

use super::config::{self, Found};
use super::Issue;
use crate::pickle::policy::{classify, Allow, Verdict};
use crate::report::{Rule, Severity};

/// Modules a Keras config may name without a finding.
fn keras_module(module: &str) -> bool {
    let top = module.split('.').next().unwrap_or("");
    matches!(top, "keras" | "keras_hub" | "keras_nlp" | "keras_cv" | "tf_keras")
}

/// Python's builtin functions: Keras resolves a `builtins` function by name among its own
/// losses, metrics and activations, except that Keras before 3.9 imported the named module
/// itself (CVE-2025-1550), so one of these names reaches the real builtin.
const PY_BUILTINS: &[&str] = &[
    "abs",
    "aiter",
    "all",
    "anext",
    "any",
    "ascii",
    "bin",
    "breakpoint",
    "callable",
    "chr",
    "compile",
    "delattr",
    "dir",
    "divmod",
    "eval",
    "exec",
    "exit",
    "format",
    "getattr",
    "globals",
    "hasattr",
    "hash",
    "help",
    "hex",
    "id",
    "input",
    "isinstance",
    "issubclass",
    "iter",
    "len",
    "locals",
    "map",
    "max",
    "min",
    "next",
    "oct",
    "open",
    "ord",
    "pow",
    "print",
    "quit",
    "repr",
    "round",
    "setattr",
    "sorted",
    "sum",
    "vars",
    "__import__",
    "__build_class__",
    "filter",
    "zip",
];

/// Preprocessing layers that read their vocabulary from a path given in the config.
const FILE_LAYERS: &[&str] = &[
    "StringLookup",
    "IntegerLookup",
    "TextVectorization",
    "Hashing",
    "Discretization",
];

/// Checks a Keras model config (JSON bytes): the Keras rules, the generic config rules
/// (`config::check_value`) and blobs embedded in it.
pub fn check_config(raw: &[u8]) -> Found {
    let value: serde_json::Value = match serde_json::from_slice(raw) {
        Ok(v) => v,
        Err(e) => {
            let mut found = Found::default();
            found.issues.push(Issue::new(
                Rule::FormatInvalid,
                Severity::High,
                format!("keras config is not valid JSON: {e}"),
            ));
            return found;
        }
    };
    let mut found = Found {
        issues: check_value(&value),
        ..Default::default()
    };
    config::check_value(&value, &mut found);
    found
}

/// The Keras rules over a parsed config.
pub fn check_value(value: &serde_json::Value) -> Vec<Issue> {
    let mut issues = Vec::new();
    walk(value, "", &mut issues, 0);
    issues
}

fn walk(v: &serde_json::Value, path: &str, issues: &mut Vec<Issue>, depth: usize) {
    if depth > 256 {
        issues.push(Issue::new(
            Rule::LimitExceeded,
            Severity::High,
            "keras config nested too deeply",
        ));
        return;
    }
    match v {
        serde_json::Value::Object(map) => {
            let class = map.get("class_name").and_then(|c| c.as_str()).unwrap_or("");
            let layer_config = map.get("config");
            let layer_name = layer_config
                .and_then(|c| c.get("name"))
                .and_then(|n| n.as_str())
                .unwrap_or(path);
            let registered = map.get("registered_name").and_then(|r| r.as_str()).unwrap_or("");
            let kind = if FILE_LAYERS.contains(&class) || class == "TFSMLayer" || class == "TorchModuleWrapper" {
                class
            } else {
                registered.rsplit('>').next().unwrap_or(registered)
            };
            match class {
                "Lambda" | "TFOpLambda" | "__lambda__" => issues.push(Issue::new(
                    Rule::KerasCode,
                    Severity::Critical,
                    format!("{class} layer `{layer_name}` deserializes Python code"),
                )),
                _ => {}
            }
            layer_rules(kind, layer_name, layer_config, issues);
            if let Some(module) = map.get("module").and_then(|m| m.as_str()) {
                let name = layer_config
                    .and_then(|c| c.as_str())
                    .or_else(|| map.get("registered_name").and_then(|r| r.as_str()))
                    .unwrap_or(class);
                let builtin_fn = module == "builtins" && class == "function";
                let verdict = classify(module, name, &Allow::default());
                match verdict {
                    Verdict::Dangerous(why) => issues.push(Issue::new(
                        Rule::KerasCode,
                        Severity::Critical,
                        format!("`{module}.{name}` ({class}): {why}"),
                    )),
                    // Keras' own objects, and a function Keras looks up among its own
                    // (`{"module": "builtins", "class_name": "function"}` is how Keras 3
                    // writes `keras.losses.sparse_categorical_crossentropy`)
                    _ if keras_module(module) => {}
                    _ if builtin_fn && !PY_BUILTINS.contains(&name) && is_identifier(name) => {}
                    _ => issues.push(Issue::new(
                        Rule::KerasCode,
                        Severity::High,
                        format!("`{module}.{name}` ({class}): a module outside Keras is imported at load time"),
                    )),
                }
            }
            if class == "__python_function__" {
                issues.push(Issue::new(
                    Rule::KerasCode,
                    Severity::High,
                    format!("Python function object in `{layer_name}` is deserialized"),
                ));
            }
            for (k, child) in map {
                if (k == "safe_mode" && child == &serde_json::Value::Bool(false))
                    || k == "enable_unsafe_deserialization"
                {
                    issues.push(Issue::new(
                        Rule::KerasCode,
                        Severity::High,
                        format!("unsafe deserialization switch `{k}` in the config"),
                    ));
                }
                if k == "function" || k == "code" {
                    if let Some(s) = child.as_str() {
                        if s.len() > 40 {
                            issues.push(Issue::new(
                                Rule::KerasCode,
                                Severity::Critical,
                                format!("serialized code in `{layer_name}`.{k}"),
                            ));
                        }
                    }
                }
                walk(child, k, issues, depth + 1);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|c| walk(c, path, issues, depth + 1)),
        _ => {}
    }
}

/// Layers that reach outside the archive from their config: lookup layers read a vocabulary
/// file (any path, or a URL through `tf.io.gfile`: CVE-2025-12058), `TFSMLayer` loads and runs
/// another SavedModel, `TorchModuleWrapper` unpickles a `torch.save` blob.
fn layer_rules(kind: &str, layer: &str, config: Option<&serde_json::Value>, issues: &mut Vec<Issue>) {
    let field = |k: &str| config.and_then(|c| c.get(k)).and_then(|v| v.as_str());
    if FILE_LAYERS.contains(&kind) {
        for key in ["vocabulary", "idf_weights", "bin_boundaries", "salt"] {
            let Some(path) = field(key).filter(|p| !p.is_empty()) else {
                continue;
            };
            let remote = path.contains("://");
            issues.push(Issue::new(
                Rule::KerasCode,
                if remote { Severity::Critical } else { Severity::High },
                format!(
                    "{kind} layer `{layer}` reads its {key} from `{path}` at load time ({})",
                    if remote {
                        "a network location"
                    } else {
                        "a file outside the model archive"
                    }
                ),
            ));
        }
    }
    if kind == "TFSMLayer" {
        let path = field("filepath").unwrap_or("?");
        issues.push(Issue::new(
            Rule::KerasCode,
            Severity::Critical,
            format!("TFSMLayer `{layer}` loads and runs the TensorFlow SavedModel at `{path}`, which no Keras safe mode checks"),
        ));
    }
    if kind == "TorchModuleWrapper" {
        issues.push(Issue::new(
            Rule::KerasCode,
            Severity::High,
            format!("TorchModuleWrapper `{layer}` embeds a serialized PyTorch module that torch.load unpickles (scanned below)"),
        ));
    }
}

fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_alphabetic() || f == '_') && c.all(|x| x.is_alphanumeric() || x == '_')
}

/// Legacy HDF5 Keras files keep the config as a JSON string attribute; find and check every
/// `{"class_name"` object in the byte stream.
pub fn check_h5(r: &mut dyn Read) -> io::Result<Found> {
    // Any key order and spacing: every `"class_name"` is checked inside the innermost JSON
    // object that encloses it (a layer written as `{"config": .., "class_name": "Lambda"}` too).
    const NEEDLE: &[u8] = b"\"class_name\"";
    const MAX_JSON: usize = 64 << 20;
    const BACK: usize = 1 << 20;
    let mut out = Found::default();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 1 << 20];
    let mut found = 0usize;
    let mut model_config = false;
    loop {
        let n = r.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        model_config |= find(&buf, b"model_config").is_some();
        let mut consumed = 0;
        let mut pending = false;
        while let Some(i) = find(&buf[consumed..], NEEDLE) {
            let at = consumed + i;
            let floor = at.saturating_sub(BACK).max(consumed);
            let mut covering = None;
            let mut open_ended = None;
            for start in (floor..at).rev().filter(|&j| buf[j] == b'{') {
                match balanced_end(&buf[start..]) {
                    Some(end) if start + end > at => {
                        covering = Some((start, end));
                        break;
                    }
                    Some(_) => {}
                    None => {
                        open_ended = Some(start);
                        break;
                    }
                }
            }
            match (covering, open_ended) {
                (Some((start, end)), _) => {
                    found += 1;
                    let f = check_config(&buf[start..start + end]);
                    out.issues.extend(f.issues);
                    out.blobs.extend(f.blobs);
                    consumed = start + end;
                }
                (None, Some(start)) if buf.len() - start <= MAX_JSON => {
                    // The enclosing object continues in the next read.
                    consumed = start;
                    pending = true;
                    break;
                }
                _ => consumed = at + NEEDLE.len(),
            }
        }
        if !pending {
            // Keep a tail so an object split across reads is still seen whole.
            consumed = consumed.max(buf.len().saturating_sub(BACK));
        }
        buf.drain(..consumed);
    }
    if found == 0 && model_config {
        out.issues.push(Issue::new(
            Rule::KerasCode,
            Severity::Medium,
            "the file has a `model_config` but no readable Keras config JSON was found (escaped or unusual encoding): its layers were not checked",
        ));
    }
    Ok(out)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Length of the JSON object starting at `b[0] == b'{'`, if it closes within `b`.
fn balanced_end(b: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut escape = false;
    for (i, &c) in b.iter().enumerate() {
        if in_str {
            match (escape, c) {
                (true, _) => escape = false,
                (false, b'\\') => escape = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'{' => depth += 1,
            b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            0 => return None,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn h5(config: &str) -> Vec<u8> {
        let mut f = b"\x89HDF\r\n\x1a\n".to_vec();
        f.extend_from_slice(&[0u8; 300]);
        f.extend_from_slice(b"model_config\x00\x00");
        f.extend_from_slice(config.as_bytes());
        f.extend_from_slice(&[0u8; 100]);
        f
    }

    #[test]
    fn h5_configs_are_checked_in_any_key_order_and_unreadable_ones_are_findings() {
        let plain =
            r#"{"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense", "config": {"name": "d"}}]}}"#;
        assert!(check_h5(&mut &h5(plain)[..]).unwrap().issues.is_empty());
        let reordered = r#"{"config": {"layers": [{"config": {"name": "l", "function": "4wEA"}, "class_name": "Lambda"}]}, "class_name": "Sequential"}"#;
        let issues = check_h5(&mut &h5(reordered)[..]).unwrap().issues;
        assert!(issues.iter().any(|i| i.severity == Severity::Critical), "{issues:?}");
        let escaped = r#"{"\u0063lass_name": "Sequential", "config": {"layers": [{"\u0063lass_name": "Lambda"}]}}"#;
        let issues = check_h5(&mut &h5(escaped)[..]).unwrap().issues;
        assert!(issues.iter().any(|i| i.rule == Rule::KerasCode), "{issues:?}");
    }

    #[test]
    fn lambda_and_foreign_module() {
        let cfg = br#"{"class_name":"Sequential","config":{"layers":[{"module":"keras.layers","class_name":"Dense","config":{"name":"d"}},{"module":"keras.layers","class_name":"Lambda","config":{"name":"evil","function":{"class_name":"__lambda__","config":{"code":"4wEAAAAAAAAAAAAAAAEAAAADAAAAQwAAAHMMAAAAdABkAYMBAQBkAFMAKQJOegJpZCkB2gVwcmludCkB2gF4qQByBAAAAPoBPNoIPGxhbWJkYT4BAAAAcwAAAAA="}}}},{"module":"os","class_name":"function","config":"system"}]}}"#;
        let issues = check_config(cfg).issues;
        assert!(
            issues.iter().any(|i| i.message.contains("Lambda layer `evil`")),
            "{issues:?}"
        );
        assert!(issues
            .iter()
            .any(|i| i.message.contains("`os.system`") && i.severity == Severity::Critical));
        let clean = br#"{"class_name":"Sequential","config":{"layers":[{"module":"keras.layers","class_name":"Dense","config":{"name":"d"}}]}}"#;
        assert!(check_config(clean).issues.is_empty());
        // Keras 3 writes a loss function given as `keras.losses.sparse_categorical_crossentropy` so
        let fn_loss = br#"{"class_name":"Sequential","config":{"layers":[]},"compile_config":{"loss":{"module":"builtins","class_name":"function","config":"sparse_categorical_crossentropy","registered_name":"function"}}}"#;
        assert!(check_config(fn_loss).issues.is_empty());
        let exec = br#"{"class_name":"Sequential","config":{"layers":[]},"compile_config":{"loss":{"module":"builtins","class_name":"function","config":"exec","registered_name":"function"}}}"#;
        assert_eq!(
            check_config(exec).issues.iter().map(|i| i.severity).max(),
            Some(Severity::Critical)
        );
    }

    #[test]
    fn layers_that_reach_outside_the_archive() {
        let lookup = br#"{"class_name":"Sequential","config":{"layers":[{"module":"keras.layers","class_name":"StringLookup","config":{"name":"s","vocabulary":"/etc/passwd"}}]}}"#;
        assert_eq!(
            check_config(lookup).issues.iter().map(|i| i.severity).max(),
            Some(Severity::High)
        );
        let remote = br#"{"class_name":"Sequential","config":{"layers":[{"module":"keras.layers","class_name":"TextVectorization","config":{"name":"t","vocabulary":"gs://bucket/v.txt"}}]}}"#;
        assert_eq!(
            check_config(remote).issues.iter().map(|i| i.severity).max(),
            Some(Severity::Critical)
        );
        let inline = br#"{"class_name":"Sequential","config":{"layers":[{"module":"keras.layers","class_name":"StringLookup","config":{"name":"s","vocabulary":["a","b"]}}]}}"#;
        assert!(check_config(inline).issues.is_empty());
        let tfsm = br#"{"class_name":"Sequential","config":{"layers":[{"module":"keras.layers","class_name":"TFSMLayer","config":{"name":"x","filepath":"/tmp/m"}}]}}"#;
        assert_eq!(
            check_config(tfsm).issues.iter().map(|i| i.severity).max(),
            Some(Severity::Critical)
        );
    }

    #[test]
    fn h5_attribute_is_found() {
        let mut f = b"\x89HDF\r\n\x1a\n\0\0\0garbage".to_vec();
        f.extend_from_slice(br#"{"class_name": "Sequential", "config": {"layers": [{"class_name": "Lambda", "config": {"name": "l"}}]}}"#);
        f.extend_from_slice(b"\0\0more");
        let issues = check_h5(&mut &f[..]).unwrap().issues;
        assert!(issues.iter().any(|i| i.rule == Rule::KerasCode));
    }
}
