//! Code reached through configuration rather than through a pickle. Loaders instantiate what a
//! config names: Hydra and NeMo call the `_target_` (or `target`/`cls`) of every node,
//! Hugging Face `transformers` imports the modules `auto_map` and `custom_pipelines` point at
//! (from another repository when the reference says `repo--module.Class`) and fetches kernels
//! named by an `attn_implementation` that is a Hub repository, and PyYAML's unsafe loaders build
//! any `!!python/` tag. The same default-deny thinking as for pickle globals applies: a target
//! is judged by the pickle policy (dangerous modules, capabilities), and only the frameworks
//! whose classes such configs are made of pass without a finding.
//!
//! Configs are found by content, wherever they are: a JSON or YAML file or archive member
//! under any name, the `__metadata__` of a safetensors file, a string inside another config.
//! Base64 strings that decode to a model format (Keras' `TorchModuleWrapper` embeds a
//! `torch.save` archive that way) are handed back to the scanner as blobs.

use base64::Engine;
use serde_json::Value;
use yaml_rust2::parser::{Event, Parser, Tag};

use super::Issue;
use crate::pickle::policy::{classify, Allow, Verdict};
use crate::report::{Rule, Severity};

/// JSON parsed at most this large (a `tokenizer.json` is tens of MB).
pub const MAX_JSON: usize = 64 << 20;
/// YAML parsed at most this large.
const MAX_YAML: usize = 64 << 20;
/// Nodes a YAML document may expand to through aliases (a billion-laughs guard).
const MAX_YAML_NODES: usize = 2_000_000;
/// Strings inside a config parsed again as configs, at most this deep.
const MAX_NESTED: usize = 4;
/// Nesting depth walked.
const MAX_DEPTH: usize = 256;

/// What a config check found.
#[derive(Debug, Default)]
pub struct Found {
    /// Findings.
    pub issues: Vec<Issue>,
    /// Embedded binaries to scan as members: `(where, bytes)`.
    pub blobs: Vec<(String, Vec<u8>)>,
}

impl Found {
    fn push(&mut self, severity: Severity, message: String) {
        if !self.issues.iter().any(|i| i.message == message) {
            self.issues.push(Issue::new(Rule::ConfigCode, severity, message));
        }
    }
}

/// Frameworks whose classes Hydra/NeMo configs are made of: a target inside them that is not
/// dangerous by name or capability is what such configs normally say.
const CONFIG_FRAMEWORKS: &[&str] = &[
    "nemo",
    "nemo_run",
    "megatron",
    "torch",
    "torchaudio",
    "torchvision",
    "torchmetrics",
    "lightning",
    "pytorch_lightning",
    "omegaconf",
    "transformers",
    "diffusers",
    "timm",
    "peft",
    "apex",
];

/// A parsed document and what the YAML parser saw along the way.
pub struct Document {
    /// `"json"` or `"yaml"`.
    pub kind: &'static str,
    /// The documents (YAML streams may hold several).
    pub values: Vec<Value>,
    /// `!!python/...` tags met.
    pub python_tags: Vec<String>,
}

/// True when `head` reads as text (UTF-8, no NUL or other control bytes but whitespace).
pub fn textual(head: &[u8]) -> bool {
    let ok = match std::str::from_utf8(head) {
        Ok(_) => true,
        // a character cut at the end of the head is fine
        Err(e) => e.error_len().is_none(),
    };
    ok && !head.is_empty()
        && head
            .iter()
            .all(|&b| b >= 0x20 || matches!(b, b'\t' | b'\n' | b'\r' | 0x0c))
}

/// Words that only a config that makes loaders instantiate or fetch code contains.
const TRIGGERS: &[&str] = &[
    "_target_",
    "auto_map",
    "trust_remote_code",
    "custom_pipelines",
    "!!python",
    "python/object",
];

/// When `bytes` is text that neither JSON nor YAML parsing accepts but that names one of the
/// instantiation keys, the key: a loader with a more lenient parser may still act on it.
pub fn unparsed_trigger(bytes: &[u8]) -> Option<&'static str> {
    let text = std::str::from_utf8(bytes).ok()?;
    let trigger = TRIGGERS.iter().find(|t| text.contains(*t))?;
    if serde_json::from_str::<Value>(text).is_ok() || yaml(text).is_ok() {
        return None;
    }
    Some(trigger)
}

/// Parses `bytes` as JSON (when it starts like JSON) or as YAML (when it has a mapping or a
/// tag). `None` when it is neither, or is a plain scalar.
pub fn parse(bytes: &[u8]) -> Option<Document> {
    let text = std::str::from_utf8(bytes).ok()?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first = text.trim_start().chars().next()?;
    if matches!(first, '{' | '[') && text.len() <= MAX_JSON {
        if let Ok(v) = serde_json::from_str::<Value>(text) {
            return Some(Document {
                kind: "json",
                values: vec![v],
                python_tags: Vec::new(),
            });
        }
    }
    if text.len() > MAX_YAML || !(text.contains(':') || text.contains('!')) {
        return None;
    }
    let (values, python_tags) = yaml(text).ok()?;
    let structured = values.iter().any(|v| v.is_object() || v.is_array());
    (structured || !python_tags.is_empty()).then_some(Document {
        kind: "yaml",
        values,
        python_tags,
    })
}

/// Checks a whole document: Keras model configs get the Keras rules, every config the
/// instantiation rules.
pub fn check_document(doc: &Document) -> Found {
    let mut found = Found::default();
    for tag in &doc.python_tags {
        found.push(
            Severity::Critical,
            format!("YAML tag `{tag}` makes PyYAML's unsafe loaders build Python objects (code execution)"),
        );
    }
    for v in &doc.values {
        if is_keras_config(v) {
            for issue in super::keras::check_value(v) {
                found.issues.push(issue);
            }
        }
        check_value(v, &mut found);
    }
    found
}

/// A Keras serialized object at the top: `{"class_name": .., "config": ..}`.
pub fn is_keras_config(v: &Value) -> bool {
    v.get("class_name").is_some_and(Value::is_string)
        && (v.get("config").is_some() || v.get("module").is_some() || v.get("registered_name").is_some())
}

/// Checks a parsed config for instantiation targets, remote code and embedded blobs.
pub fn check_value(v: &Value, found: &mut Found) {
    walk(v, "", found, 0, 0);
}

fn walk(v: &Value, path: &str, found: &mut Found, depth: usize, nested: usize) {
    if depth > MAX_DEPTH {
        found.issues.push(Issue::new(
            Rule::LimitExceeded,
            Severity::High,
            "config nested too deeply to check",
        ));
        return;
    }
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let here = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                check_key(k, child, &here, map, found);
                walk(child, &here, found, depth + 1, nested);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                walk(child, &format!("{path}[{i}]"), found, depth + 1, nested);
            }
        }
        Value::String(s) => check_string(s, path, found, nested),
        _ => {}
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => matches!(s.to_ascii_lowercase().as_str(), "true" | "yes" | "on" | "1"),
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        _ => false,
    }
}

fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        Value::Object(m) => m.values().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

fn check_key(k: &str, v: &Value, path: &str, node: &serde_json::Map<String, Value>, found: &mut Found) {
    match k {
        "_target_" => {
            if let Some(t) = v.as_str() {
                target(t, path, true, found);
            } else if !v.is_null() {
                found.push(Severity::High, format!("`{path}` is not a plain class path"));
            }
        }
        // NeMo's `from_config_dict` imports `target` (and legacy Hydra `cls`/`class`) too;
        // these words are common in other configs, so only a dotted path counts.
        "target" | "cls" | "class" | "_class_" => {
            if let Some(t) = v.as_str().filter(|t| t.contains('.') && is_dotted(t)) {
                // with `params` beside it, it is Hydra's legacy form: as strict as `_target_`
                target(t, path, node.contains_key("params"), found);
            }
        }
        "auto_map" => {
            for r in strings(v) {
                match r.split_once("--") {
                    Some((repo, code)) => found.push(
                        Severity::Critical,
                        format!(
                            "`{path}` makes transformers download and run `{code}` from another repository, `{repo}`"
                        ),
                    ),
                    None => found.push(
                        Severity::High,
                        format!("`{path}` makes transformers run `{r}` from the model repository (trust_remote_code)"),
                    ),
                }
            }
        }
        "custom_pipelines" => {
            for r in strings(v).into_iter().filter(|r| is_dotted(r)) {
                found.push(
                    Severity::High,
                    format!("`{path}` makes transformers run the pipeline code `{r}` (trust_remote_code)"),
                );
            }
        }
        "trust_remote_code" if truthy(v) => {
            found.push(
                Severity::High,
                format!("`{path}` asks the loader to run the repository's own code"),
            );
        }
        "attn_implementation"
        | "_attn_implementation"
        | "_attn_implementation_internal"
        | "experts_implementation"
        | "kernel"
        | "kernels"
        | "use_kernels" => {
            for r in strings(v).into_iter().filter(|r| r.contains('/')) {
                found.push(
                    Severity::Critical,
                    format!("`{path}` = `{r}` makes transformers fetch and run a compiled kernel from the Hub"),
                );
            }
        }
        "custom_generate" | "custom_pipeline" => {
            for r in strings(v).into_iter().filter(|r| r.contains('/')) {
                found.push(
                    Severity::Critical,
                    format!("`{path}` = `{r}` makes the library download and run code from another repository"),
                );
            }
        }
        // diffusers' model_index.json: each component is `[library, class]`, and a library
        // other than diffusers/transformers is a module imported from the repository.
        _ if node.contains_key("_diffusers_version") && !k.starts_with('_') => {
            if let Some([Value::String(lib), Value::String(class)]) = v.as_array().map(Vec::as_slice) {
                if !matches!(
                    lib.as_str(),
                    "diffusers" | "transformers" | "onnxruntime.training" | "scheduling_utils"
                ) {
                    found.push(
                        Severity::High,
                        format!("`{path}` makes diffusers import `{lib}.{class}` (custom component code)"),
                    );
                }
            }
        }
        "safe_mode" if v == &Value::Bool(false) => {
            found.push(Severity::High, format!("`{path}` turns off the loader's safe mode"));
        }
        _ => {}
    }
}

/// A Hydra/NeMo target: `module.attr` imported and called with the node as arguments.
fn target(t: &str, path: &str, strict: bool, found: &mut Found) {
    let t = t.trim();
    let (module, name) = t.rsplit_once('.').unwrap_or((t, ""));
    let verdict = if name.is_empty() {
        classify(module, "__module__", &Allow::default())
    } else {
        classify(module, name, &Allow::default())
    };
    let top = module.split('.').next().unwrap_or_default();
    match verdict {
        Verdict::Safe => {}
        Verdict::Dangerous(why) => found.push(
            Severity::Critical,
            format!("`{path}` = `{t}` is instantiated by the loader: {why}"),
        ),
        Verdict::Unknown(_) if CONFIG_FRAMEWORKS.contains(&top) => {}
        Verdict::Unknown(_) if strict => found.push(
            Severity::High,
            format!("`{path}` = `{t}` is imported and called by the loader, and is outside the frameworks such configs are made of"),
        ),
        Verdict::Unknown(_) => found.push(
            Severity::Info,
            format!("`{path}` = `{t}` may be imported by a NeMo-style loader"),
        ),
    }
}

fn is_dotted(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|p| {
            let mut c = p.chars();
            c.next().is_some_and(|f| f.is_alphabetic() || f == '_') && c.all(|x| x.is_alphanumeric() || x == '_')
        })
}

/// Strings inside a config: configs in their own right (a YAML or JSON document serialized
/// into a field), or base64 of a model file.
fn check_string(s: &str, path: &str, found: &mut Found, nested: usize) {
    if nested >= MAX_NESTED || s.len() < 8 {
        return;
    }
    let t = s.trim_start();
    let looks_config = t.starts_with('{')
        || t.starts_with('[')
        || (s.len() <= 1 << 20 && (s.contains(": ") || s.contains(":\n") || s.contains("!!")));
    if looks_config {
        if let Some(doc) = parse(s.as_bytes()) {
            let inner = check_document(&doc);
            for tag in doc.python_tags {
                found.push(Severity::Critical, format!("`{path}` holds the YAML tag `{tag}`"));
            }
            found.issues.extend(inner.issues);
            found.blobs.extend(inner.blobs);
            for v in &doc.values {
                walk(v, path, found, 0, nested + 1);
            }
            return;
        }
    }
    if s.len() >= 64 {
        if let Some(bytes) = base64_blob(s) {
            found.blobs.push((path.to_string(), bytes));
        }
    }
}

/// Decodes a base64 string whose bytes start like a model format (pickle, zip, compressed).
fn base64_blob(s: &str) -> Option<Vec<u8>> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !clean
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_' | b'='))
    {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&clean)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(&clean))
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&clean))
        .ok()?;
    let head = bytes.get(..4)?;
    let binary = head[0] == 0x80
        || head.starts_with(b"PK")
        || head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(b"BZh")
        || head.starts_with(b"\xfd7zX")
        || (head[0] == 0x78 && (u16::from(head[0]) * 256 + u16::from(head[1])) % 31 == 0)
        || head.starts_with(b"\x93NUM")
        || matches!(head[0], 0x8c | 0x95 | b'c');
    binary.then_some(bytes)
}

/// YAML to JSON values, aliases expanded under a node budget, `!!python/` tags collected.
fn yaml(text: &str) -> Result<(Vec<Value>, Vec<String>), String> {
    enum Frame {
        Seq(Vec<Value>, usize),
        Map(serde_json::Map<String, Value>, Option<String>, usize),
    }
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    let mut tags = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: std::collections::HashMap<usize, Value> = std::collections::HashMap::new();
    let mut nodes = 0usize;
    let note_tag = |tag: &Option<Tag>, tags: &mut Vec<String>| {
        if let Some(t) = tag {
            let full = format!("{}{}", t.handle, t.suffix);
            if full.contains("python/") && !tags.contains(&full) {
                tags.push(full);
            }
        }
    };
    loop {
        let (event, _) = parser.next_token().map_err(|e| e.to_string())?;
        let value = match event {
            Event::StreamEnd => break,
            Event::Scalar(s, _, anchor, tag) => {
                note_tag(&tag, &mut tags);
                let v = Value::String(s);
                if anchor > 0 {
                    anchors.insert(anchor, v.clone());
                }
                v
            }
            Event::Alias(id) => {
                let v = anchors.get(&id).cloned().unwrap_or(Value::Null);
                nodes += count(&v);
                v
            }
            Event::SequenceStart(anchor, tag) => {
                note_tag(&tag, &mut tags);
                stack.push(Frame::Seq(Vec::new(), anchor));
                continue;
            }
            Event::MappingStart(anchor, tag) => {
                note_tag(&tag, &mut tags);
                stack.push(Frame::Map(serde_json::Map::new(), None, anchor));
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (v, anchor) = match stack.pop() {
                    Some(Frame::Seq(items, a)) => (Value::Array(items), a),
                    Some(Frame::Map(m, _, a)) => (Value::Object(m), a),
                    None => return Err("unbalanced YAML".into()),
                };
                if anchor > 0 {
                    anchors.insert(anchor, v.clone());
                }
                v
            }
            _ => continue,
        };
        nodes += 1;
        if nodes > MAX_YAML_NODES {
            return Err("YAML expands to too many nodes".into());
        }
        match stack.last_mut() {
            None => docs.push(value),
            Some(Frame::Seq(items, _)) => items.push(value),
            Some(Frame::Map(m, key, _)) => match key.take() {
                None => {
                    *key = Some(match value {
                        Value::String(s) => s,
                        other => other.to_string(),
                    })
                }
                Some(k) => {
                    m.insert(k, value);
                }
            },
        }
    }
    Ok((docs, tags))
}

fn count(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(count).sum::<usize>(),
        Value::Object(m) => 1 + m.values().map(count).sum::<usize>(),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn worst(text: &str) -> Option<Severity> {
        let doc = parse(text.as_bytes())?;
        check_document(&doc).issues.iter().map(|i| i.severity).max()
    }

    #[test]
    fn hydra_targets_are_judged_like_pickle_globals() {
        assert_eq!(
            worst("model:\n  _target_: os.system\n  _args_: [id]\n"),
            Some(Severity::Critical)
        );
        assert_eq!(
            worst("{\"a\": {\"_target_\": \"builtins.exec\"}}"),
            Some(Severity::Critical)
        );
        // escapes and flow style are YAML's own business
        assert_eq!(
            worst("x: {\"_targ\\x65t_\": \"subprocess.run\"}\n"),
            Some(Severity::Critical)
        );
        assert_eq!(worst("x:\n  _target_: evilpkg.Thing\n"), Some(Severity::High));
        assert_eq!(
            worst("encoder:\n  _target_: nemo.collections.asr.modules.ConformerEncoder\n  d_model: 256\n"),
            None
        );
        assert_eq!(worst("target: nemo.collections.asr.models.EncDecCTCModelBPE\n"), None);
        assert_eq!(worst("target: torch.utils.benchmark.Timer\n"), Some(Severity::Critical));
        // a PyYAML tag
        assert_eq!(
            worst("a: !!python/object/apply:os.system [id]\n"),
            Some(Severity::Critical)
        );
    }

    #[test]
    fn transformers_remote_code() {
        assert_eq!(
            worst(r#"{"auto_map": {"AutoModel": "evil/repo--modeling.Model"}}"#),
            Some(Severity::Critical)
        );
        assert_eq!(
            worst(r#"{"auto_map": {"AutoConfig": "configuration_x.XConfig"}}"#),
            Some(Severity::High)
        );
        assert_eq!(
            worst(r#"{"model_type": "llama", "_attn_implementation": "kernels-community/flash-attn"}"#),
            Some(Severity::Critical)
        );
        assert_eq!(
            worst(
                r#"{"model_type": "bert", "architectures": ["BertModel"], "hidden_size": 768, "attn_implementation": "sdpa"}"#
            ),
            None
        );
    }

    #[test]
    fn configs_inside_strings_and_alias_bombs() {
        let inner = r#"{"__metadata__": {"config": "{\"_target_\": \"os.system\"}"}}"#;
        assert_eq!(worst(inner), Some(Severity::Critical));
        let yaml_in_json = r#"{"cfg": "model:\n  _target_: pty.spawn\n"}"#;
        assert_eq!(worst(yaml_in_json), Some(Severity::Critical));
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..12 {
            let prev = if i == 0 { "a".to_string() } else { format!("b{}", i - 1) };
            bomb.push_str(&format!("b{i}: &b{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        assert!(parse(bomb.as_bytes()).is_none());
        // plain text and scalars are not configs
        assert!(parse(b"just some words\n").is_none());
        assert!(parse(b"the ratio is 3:4 here").is_none());
    }
}
