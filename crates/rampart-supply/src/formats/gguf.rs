//! GGUF: typed metadata read with every count and length bounded (by the bytes left in the
//! file and by absolute caps), tensor descriptors checked for overflow and bounds, and the
//! Jinja chat template checked for sandbox escapes (CVE-2024-34359 class).

use std::collections::HashSet;
use std::io::{self, Read};

use super::config::{self, Found};
use super::Issue;
use crate::report::{Rule, Severity};

const MAX_STRING: u64 = 64 << 20;
/// String metadata kept for the config check, at most (per file).
const MAX_CONFIG_BYTES: usize = 16 << 20;
const MAX_ARRAY: u64 = 1 << 28;
const MAX_KV: u64 = 1 << 20;
const MAX_TENSORS: u64 = 1 << 20;
const MAX_DIMS: u32 = 8;

struct R<'a> {
    r: &'a mut dyn Read,
    pos: u64,
    len: Option<u64>,
}

enum Stop {
    Io(io::Error),
    Bad(String),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Stop::Bad("truncated".into())
        } else {
            Stop::Io(e)
        }
    }
}

impl R<'_> {
    fn left(&self) -> u64 {
        self.len.map_or(u64::MAX, |l| l.saturating_sub(self.pos))
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], Stop> {
        let mut b = [0u8; N];
        self.r.read_exact(&mut b)?;
        self.pos += N as u64;
        Ok(b)
    }
    fn u32(&mut self) -> Result<u32, Stop> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Result<u64, Stop> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    fn skip(&mut self, n: u64) -> Result<(), Stop> {
        if n > self.left() {
            return Err(Stop::Bad(format!("length {n} runs past the end of the file")));
        }
        let got = io::copy(&mut (&mut *self.r).take(n), &mut io::sink())?;
        self.pos += got;
        if got < n {
            return Err(Stop::Bad("truncated".into()));
        }
        Ok(())
    }
    /// A GGUF string; kept when `keep`, else skipped.
    fn string(&mut self, keep: bool) -> Result<Option<String>, Stop> {
        let n = self.u64()?;
        if n > MAX_STRING || n > self.left() {
            return Err(Stop::Bad(format!("string length {n} is out of bounds")));
        }
        if !keep {
            self.skip(n)?;
            return Ok(None);
        }
        let mut b = Vec::new();
        (&mut *self.r).take(n).read_to_end(&mut b)?;
        self.pos += b.len() as u64;
        if (b.len() as u64) < n {
            return Err(Stop::Bad("truncated".into()));
        }
        String::from_utf8(b)
            .map(Some)
            .map_err(|_| Stop::Bad("string is not valid UTF-8".into()))
    }
}

fn scalar_size(t: u32) -> Option<u64> {
    Some(match t {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        _ => return None,
    })
}

/// ggml tensor types: (block size in elements, bytes per block).
fn ggml_type(t: u32) -> Option<(u64, u64)> {
    Some(match t {
        0 => (1, 4),
        1 => (1, 2),
        2 => (32, 18),
        3 => (32, 20),
        6 => (32, 22),
        7 => (32, 24),
        8 => (32, 34),
        9 => (32, 36),
        10 => (256, 84),
        11 => (256, 110),
        12 => (256, 144),
        13 => (256, 176),
        14 => (256, 210),
        15 => (256, 292),
        16 => (256, 66),
        17 => (256, 74),
        18 => (256, 98),
        19 => (256, 50),
        20 => (32, 18),
        21 => (256, 110),
        22 => (256, 82),
        23 => (256, 136),
        24 => (1, 1),
        25 => (1, 2),
        26 => (1, 4),
        27 => (1, 8),
        28 => (1, 8),
        29 => (256, 56),
        30 => (1, 2),
        34 => (256, 54),
        35 => (256, 66),
        39 => (32, 17),
        _ => return None,
    })
}

/// Patterns that only a template trying to leave Jinja's sandbox needs.
const TEMPLATE_ESCAPES: &[&str] = &[
    "__class__",
    "__base__",
    "__bases__",
    "__mro__",
    "__subclasses__",
    "__globals__",
    "__builtins__",
    "__import__",
    "__init__",
    "__getattribute__",
    "__dict__",
    "__code__",
    "__reduce__",
    "_module",
    "_TemplateReference__context",
    "mro()",
    "popen",
    "subprocess",
    "os.system",
    "eval(",
    "exec(",
    "import(",
    "\\x5f\\x5f",
    "\\u005f",
    "|attr(",
    "lipsum",
    "cycler",
    "joiner",
    "namespace.__",
    "request.application",
    "config.items",
];

/// Returns the escape patterns found in a Jinja template.
pub fn template_escapes(template: &str) -> Vec<&'static str> {
    let lower = template.to_ascii_lowercase();
    let compact: String = lower.chars().filter(|c| !c.is_whitespace()).collect();
    TEMPLATE_ESCAPES
        .iter()
        .copied()
        .filter(|p| {
            let p = p.to_ascii_lowercase();
            lower.contains(&p) || compact.contains(&p)
        })
        .collect()
}

/// Validates a GGUF stream.
pub fn check(r: &mut dyn Read, len: Option<u64>) -> io::Result<Vec<Issue>> {
    let mut issues = Vec::new();
    let mut rd = R { r, pos: 0, len };
    match run(&mut rd, &mut issues) {
        Ok(()) => {}
        Err(Stop::Io(e)) => return Err(e),
        Err(Stop::Bad(m)) => {
            issues.push(Issue::new(Rule::FormatInvalid, Severity::High, format!("gguf: {m}")).at(rd.pos));
        }
    }
    Ok(issues)
}

fn run(rd: &mut R<'_>, issues: &mut Vec<Issue>) -> Result<(), Stop> {
    let _magic = rd.arr::<4>()?;
    let version = rd.u32()?;
    if !(1..=3).contains(&version) {
        return Err(Stop::Bad(format!("unsupported version {version}")));
    }
    if version == 1 {
        return Err(Stop::Bad(
            "version 1 (32-bit counts) is obsolete and not supported".into(),
        ));
    }
    let tensors = rd.u64()?;
    let kvs = rd.u64()?;
    if tensors > MAX_TENSORS || kvs > MAX_KV {
        return Err(Stop::Bad(format!(
            "implausible counts: {tensors} tensors, {kvs} metadata entries"
        )));
    }
    let mut keys = HashSet::new();
    let mut alignment = 32u64;
    let mut strings = serde_json::Map::new();
    let mut strings_kept = 0usize;
    for _ in 0..kvs {
        let key = rd.string(true)?.unwrap_or_default();
        if !keys.insert(key.clone()) {
            issues.push(
                Issue::new(
                    Rule::FormatInvalid,
                    Severity::High,
                    format!("gguf: duplicate metadata key `{key}`"),
                )
                .at(rd.pos),
            );
        }
        let t = rd.u32()?;
        let is_template = key == "tokenizer.chat_template" || key.starts_with("tokenizer.chat_template.");
        match t {
            8 => {
                let at = rd.pos;
                let s = rd.string(true)?.unwrap_or_default();
                if strings_kept < MAX_CONFIG_BYTES {
                    strings_kept += s.len();
                    strings.insert(key.clone(), serde_json::Value::String(s.clone()));
                }
                if is_template {
                    let found = template_escapes(&s);
                    if !found.is_empty() {
                        issues.push(
                            Issue::new(
                                Rule::TemplateInjection,
                                Severity::Critical,
                                format!("`{key}` reaches Python internals: {}", found.join(", ")),
                            )
                            .at(at),
                        );
                    }
                }
            }
            9 => {
                let et = rd.u32()?;
                let n = rd.u64()?;
                if n > MAX_ARRAY {
                    return Err(Stop::Bad(format!("array `{key}` of {n} elements is out of bounds")));
                }
                match et {
                    8 => {
                        for _ in 0..n {
                            rd.string(false)?;
                        }
                    }
                    9 => return Err(Stop::Bad(format!("nested array in `{key}`"))),
                    et => {
                        let size =
                            scalar_size(et).ok_or_else(|| Stop::Bad(format!("unknown array type {et} in `{key}`")))?;
                        let bytes = n
                            .checked_mul(size)
                            .ok_or_else(|| Stop::Bad(format!("array `{key}` overflows")))?;
                        rd.skip(bytes)?;
                    }
                }
            }
            7 => {
                let b = rd.arr::<1>()?;
                if b[0] > 1 {
                    issues.push(Issue::new(
                        Rule::FormatInvalid,
                        Severity::Medium,
                        format!("gguf: bool `{key}` holds {}", b[0]),
                    ));
                }
            }
            t => {
                let size = scalar_size(t).ok_or_else(|| Stop::Bad(format!("unknown value type {t} for `{key}`")))?;
                if key == "general.alignment" && t == 4 {
                    alignment = u64::from(rd.u32()?);
                    if alignment == 0 || !alignment.is_power_of_two() {
                        issues.push(Issue::new(
                            Rule::FormatInvalid,
                            Severity::High,
                            format!("gguf: alignment {alignment} is not a power of two"),
                        ));
                        alignment = 32;
                    }
                } else {
                    rd.skip(size)?;
                }
            }
        }
    }
    // String metadata may carry a config a framework instantiates from (a Hydra `_target_`,
    // transformers' `auto_map`): checked like any other config.
    let mut found = Found::default();
    config::check_value(&serde_json::Value::Object(strings), &mut found);
    issues.extend(found.issues);
    let mut spans = Vec::new();
    for _ in 0..tensors {
        let name = rd.string(true)?.unwrap_or_default();
        let dims = rd.u32()?;
        if dims > MAX_DIMS {
            return Err(Stop::Bad(format!("tensor `{name}` has {dims} dimensions")));
        }
        let mut elements = 1u64;
        let mut overflow = false;
        for _ in 0..dims {
            let d = rd.u64()?;
            match elements.checked_mul(d) {
                Some(e) => elements = e,
                None => overflow = true,
            }
        }
        let t = rd.u32()?;
        let offset = rd.u64()?;
        if overflow {
            issues.push(Issue::new(
                Rule::FormatInvalid,
                Severity::High,
                format!("gguf: tensor `{name}` dimensions overflow"),
            ));
            continue;
        }
        let Some((block, bytes)) = ggml_type(t) else {
            issues.push(Issue::new(
                Rule::FormatInvalid,
                Severity::High,
                format!("gguf: tensor `{name}` has unknown type {t}"),
            ));
            continue;
        };
        if !elements.is_multiple_of(block) {
            issues.push(Issue::new(
                Rule::FormatInvalid,
                Severity::High,
                format!("gguf: tensor `{name}`: {elements} elements is not a multiple of the block size {block}"),
            ));
            continue;
        }
        let size = (elements / block).checked_mul(bytes);
        if !offset.is_multiple_of(alignment) {
            issues.push(Issue::new(
                Rule::FormatInvalid,
                Severity::Medium,
                format!("gguf: tensor `{name}` offset {offset} is not aligned to {alignment}"),
            ));
        }
        match size.and_then(|s| offset.checked_add(s)) {
            Some(end) => spans.push((offset, end, name)),
            None => issues.push(Issue::new(
                Rule::FormatInvalid,
                Severity::High,
                format!("gguf: tensor `{name}` size overflows"),
            )),
        }
    }
    if let Some(len) = rd.len {
        let data_start = rd.pos.div_ceil(alignment) * alignment;
        let data_len = len.saturating_sub(data_start);
        spans.sort();
        let mut prev_end = 0u64;
        for (begin, end, name) in &spans {
            if *end > data_len {
                issues.push(Issue::new(
                    Rule::FormatInvalid,
                    Severity::High,
                    format!("gguf: tensor `{name}` [{begin}, {end}) runs past the {data_len}-byte data section"),
                ));
            }
            if *begin < prev_end {
                issues.push(Issue::new(
                    Rule::FormatInvalid,
                    Severity::High,
                    format!("gguf: tensor `{name}` overlaps the previous tensor"),
                ));
            }
            prev_end = prev_end.max(*end);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn s(out: &mut Vec<u8>, v: &str) {
        out.extend_from_slice(&(v.len() as u64).to_le_bytes());
        out.extend_from_slice(v.as_bytes());
    }

    fn gguf(template: &str, tensor_len: u64, data: usize) -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
        b.extend_from_slice(&2u64.to_le_bytes());
        s(&mut b, "general.architecture");
        b.extend_from_slice(&8u32.to_le_bytes());
        s(&mut b, "llama");
        s(&mut b, "tokenizer.chat_template");
        b.extend_from_slice(&8u32.to_le_bytes());
        s(&mut b, template);
        s(&mut b, "w");
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&tensor_len.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        while !b.len().is_multiple_of(32) {
            b.push(0);
        }
        b.extend(std::iter::repeat_n(0u8, data));
        b
    }

    fn run(b: &[u8]) -> Vec<Issue> {
        check(&mut &b[..], Some(b.len() as u64)).unwrap()
    }

    #[test]
    fn clean_and_bad() {
        let ok = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}{% endfor %}";
        assert!(run(&gguf(ok, 4, 16)).is_empty(), "{:?}", run(&gguf(ok, 4, 16)));
        let evil = "{% for x in ().__class__.__base__.__subclasses__() %}{{ x()._module.__builtins__['__import__']('os').popen('id') }}{% endfor %}";
        let issues = run(&gguf(evil, 4, 16));
        assert!(issues
            .iter()
            .any(|i| i.rule == Rule::TemplateInjection && i.severity == Severity::Critical));
        let issues = run(&gguf(ok, 1000, 16));
        assert!(issues.iter().any(|i| i.message.contains("runs past")), "{issues:?}");
        let mut truncated = gguf(ok, 4, 16);
        truncated.truncate(40);
        assert!(run(&truncated).iter().any(|i| i.rule == Rule::FormatInvalid));
    }
}
