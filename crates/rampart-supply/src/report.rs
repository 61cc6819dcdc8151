//! Findings and reports: what a scan says, in a table, JSON or SARIF 2.1.0.

use std::fmt::{self, Write as _};

use serde::Serialize;

/// How bad a finding is. Ordered: `Info < Low < Medium < High < Critical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; never fails a scan.
    Info,
    /// Unusual but unlikely to be harmful.
    Low,
    /// Not on the allowlist, or a structural anomaly a loader tolerates.
    Medium,
    /// Code that runs at load time and is not known to be safe, or a file that cannot be
    /// fully checked.
    High,
    /// Known code execution, file/network access, or an obfuscated import.
    Critical,
}

impl Severity {
    /// Parses `info|low|medium|high|critical`.
    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s.to_ascii_lowercase().as_str() {
            "info" => Severity::Info,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }

    fn sarif_level(self) -> &'static str {
        match self {
            Severity::Critical | Severity::High => "error",
            Severity::Medium | Severity::Low => "warning",
            Severity::Info => "note",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        })
    }
}

/// The rules a finding can come from; ids are stable (they appear in SARIF and in baselines).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rule {
    /// A pickle imports a known-dangerous global.
    PickleDangerousGlobal,
    /// A pickle imports a global that is not on the allowlist.
    PickleUnknownGlobal,
    /// An import whose module or name is computed at load time.
    PickleNonLiteralImport,
    /// A call whose target is computed at load time.
    PickleComputedCall,
    /// The pickle cannot be parsed to its end.
    PickleBroken,
    /// A structural pickle anomaly (frame straddle, extension import, BUILD on a global...).
    PickleAnomaly,
    /// An archive anomaly (name mismatch, bad CRC, flag bits, overlap, unreadable entry...).
    ArchiveAnomaly,
    /// A member or file that cannot be read or decompressed.
    Unreadable,
    /// A format's header or layout is invalid (safetensors, GGUF, npy...).
    FormatInvalid,
    /// A Keras model that runs code (Lambda layers, custom modules, unsafe switches).
    KerasCode,
    /// A GGUF chat template with sandbox-escape patterns.
    TemplateInjection,
    /// An ONNX / SavedModel construct that reaches outside the model (paths, file ops).
    GraphEscape,
    /// Executable code shipped with the model (TorchScript code, Python files).
    EmbeddedCode,
    /// Code a config makes the loader import or fetch (Hydra/NeMo targets, transformers
    /// remote code and Hub kernels, PyYAML python tags).
    ConfigCode,
    /// Nesting or size limits were hit, so part of the file was not checked.
    LimitExceeded,
}

impl Rule {
    /// Stable id.
    pub fn id(self) -> &'static str {
        match self {
            Rule::PickleDangerousGlobal => "RMS001",
            Rule::PickleUnknownGlobal => "RMS002",
            Rule::PickleNonLiteralImport => "RMS003",
            Rule::PickleComputedCall => "RMS004",
            Rule::PickleBroken => "RMS005",
            Rule::PickleAnomaly => "RMS006",
            Rule::ArchiveAnomaly => "RMS010",
            Rule::Unreadable => "RMS011",
            Rule::FormatInvalid => "RMS020",
            Rule::KerasCode => "RMS030",
            Rule::TemplateInjection => "RMS031",
            Rule::GraphEscape => "RMS032",
            Rule::EmbeddedCode => "RMS033",
            Rule::ConfigCode => "RMS034",
            Rule::LimitExceeded => "RMS040",
        }
    }

    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Rule::PickleDangerousGlobal => "pickle-dangerous-global",
            Rule::PickleUnknownGlobal => "pickle-unknown-global",
            Rule::PickleNonLiteralImport => "pickle-non-literal-import",
            Rule::PickleComputedCall => "pickle-computed-call",
            Rule::PickleBroken => "pickle-broken-stream",
            Rule::PickleAnomaly => "pickle-anomaly",
            Rule::ArchiveAnomaly => "archive-anomaly",
            Rule::Unreadable => "unreadable",
            Rule::FormatInvalid => "format-invalid",
            Rule::KerasCode => "keras-code",
            Rule::TemplateInjection => "template-injection",
            Rule::GraphEscape => "graph-escape",
            Rule::EmbeddedCode => "embedded-code",
            Rule::ConfigCode => "config-code",
            Rule::LimitExceeded => "limit-exceeded",
        }
    }

    /// One-paragraph help for SARIF and `--help`.
    pub fn help(self) -> &'static str {
        match self {
            Rule::PickleDangerousGlobal => "The pickle imports a function or class that can run commands, touch files or the network, or load further code. Loading this file executes it.",
            Rule::PickleUnknownGlobal => "The pickle imports something that is not on the allowlist of what model files need. Default deny: review it and allow it explicitly (--allow module.name) if it is expected.",
            Rule::PickleNonLiteralImport => "The module or name of an import is computed while loading, which only obfuscation needs.",
            Rule::PickleComputedCall => "A call's target is the result of another call (e.g. getattr), which hides what actually runs.",
            Rule::PickleBroken => "The pickle cannot be parsed to its end. Unpicklers execute opcodes as they read them, so everything before the break runs; a truncated or corrupted stream is never clean.",
            Rule::PickleAnomaly => "A structure real serializers do not write, or one that unpicklers treat differently (scanner evasion).",
            Rule::ArchiveAnomaly => "The archive is malformed in a way its loader tolerates but other tools may not (parser differential).",
            Rule::Unreadable => "A file or archive member could not be read or decompressed, so it was not checked.",
            Rule::FormatInvalid => "The file's header or layout violates its format; loaders may misbehave or read out of bounds.",
            Rule::KerasCode => "The Keras model deserializes code (Lambda layers, arbitrary modules or functions, unsafe deserialization switches).",
            Rule::TemplateInjection => "The chat template uses constructs that escape Jinja's sandbox or reach Python internals.",
            Rule::GraphEscape => "The model graph reaches outside the model: external data paths leaving the model directory, custom operator domains, file I/O operations.",
            Rule::EmbeddedCode => "The model ships code that its loader runs (TorchScript, Python files).",
            Rule::ConfigCode => "A config makes the loader import, call or download code: Hydra/NeMo targets, transformers auto_map and custom pipelines (trust_remote_code), Hub kernels, PyYAML python tags.",
            Rule::LimitExceeded => "A nesting or size limit was reached; the rest was not checked.",
        }
    }

    /// Every rule, for the SARIF driver section.
    pub const ALL: [Rule; 15] = [
        Rule::PickleDangerousGlobal,
        Rule::PickleUnknownGlobal,
        Rule::PickleNonLiteralImport,
        Rule::PickleComputedCall,
        Rule::PickleBroken,
        Rule::PickleAnomaly,
        Rule::ArchiveAnomaly,
        Rule::Unreadable,
        Rule::FormatInvalid,
        Rule::KerasCode,
        Rule::TemplateInjection,
        Rule::GraphEscape,
        Rule::EmbeddedCode,
        Rule::ConfigCode,
        Rule::LimitExceeded,
    ];
}

impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.id())
    }
}

/// One finding.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// Rule id.
    pub rule: Rule,
    /// Severity.
    pub severity: Severity,
    /// Where: the file, then `!member` for each archive level.
    pub location: String,
    /// Byte offset inside the innermost stream, when meaningful.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// What was found, in one line.
    pub message: String,
    /// How many times the same thing occurs in this location (imports are reported once).
    #[serde(skip_serializing_if = "is_one")]
    pub count: u64,
}

fn is_one(n: &u64) -> bool {
    *n == 1
}

/// The result for one file on disk.
#[derive(Clone, Debug, Serialize)]
pub struct FileReport {
    /// Path as given (or found while walking).
    pub path: String,
    /// Formats recognised, outermost first (e.g. `zip/pytorch`, `pickle`).
    pub formats: Vec<String>,
    /// Size on disk.
    pub bytes: u64,
    /// Findings, most severe first.
    pub findings: Vec<Finding>,
    /// Set when the file could not be read at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl FileReport {
    /// Highest severity among the findings.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
}

/// A whole scan.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Tool version.
    pub version: &'static str,
    /// One entry per file.
    pub files: Vec<FileReport>,
    /// Bytes read from disk.
    pub bytes: u64,
    /// Wall time in seconds.
    pub seconds: f64,
}

impl Report {
    /// Findings at or above `min` across all files.
    pub fn count_at_least(&self, min: Severity) -> usize {
        self.files
            .iter()
            .flat_map(|f| &f.findings)
            .filter(|f| f.severity >= min)
            .count()
    }

    /// Files that could not be read.
    pub fn errors(&self) -> usize {
        self.files.iter().filter(|f| f.error.is_some()).count()
    }

    /// Throughput in MB/s (10^6 bytes).
    pub fn mb_per_s(&self) -> f64 {
        if self.seconds > 0.0 {
            self.bytes as f64 / 1e6 / self.seconds
        } else {
            0.0
        }
    }

    /// A plain-text table for terminals and CI logs.
    pub fn to_table(&self, min: Severity) -> String {
        let mut out = String::new();
        for file in &self.files {
            let shown: Vec<&Finding> = file.findings.iter().filter(|f| f.severity >= min).collect();
            let status = match (&file.error, file.worst()) {
                (Some(_), _) => "ERROR".to_string(),
                (None, Some(s)) if s >= min => s.to_string().to_uppercase(),
                _ => "clean".to_string(),
            };
            let _ = writeln!(out, "{status:<9} {}  [{}]", file.path, file.formats.join(", "));
            if let Some(e) = &file.error {
                let _ = writeln!(out, "          error: {e}");
            }
            for f in shown {
                let at = f.offset.map(|o| format!(" @{o}")).unwrap_or_default();
                let times = if f.count > 1 {
                    format!(" (x{})", f.count)
                } else {
                    String::new()
                };
                let loc = if f.location == file.path {
                    String::new()
                } else {
                    format!(" in {}", f.location)
                };
                let _ = writeln!(
                    out,
                    "  {:<8} {} {}{times}{loc}{at}",
                    f.severity.to_string(),
                    f.rule.id(),
                    f.message
                );
            }
        }
        let findings = self.count_at_least(min);
        let flagged = self
            .files
            .iter()
            .filter(|f| f.worst().is_some_and(|s| s >= min))
            .count();
        let _ = writeln!(
            out,
            "\n{} file(s), {} finding(s) in {} file(s), {} error(s); {:.1} MB in {:.2}s ({:.0} MB/s)",
            self.files.len(),
            findings,
            flagged,
            self.errors(),
            self.bytes as f64 / 1e6,
            self.seconds,
            self.mb_per_s()
        );
        out
    }

    /// SARIF 2.1.0, one run, one result per finding (and one per unreadable file).
    pub fn to_sarif(&self, min: Severity) -> serde_json::Value {
        let rules: Vec<serde_json::Value> = Rule::ALL
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id(),
                    "name": r.name(),
                    "shortDescription": { "text": r.name() },
                    "fullDescription": { "text": r.help() },
                    "help": { "text": r.help() },
                })
            })
            .collect();
        let mut results = Vec::new();
        for file in &self.files {
            if let Some(e) = &file.error {
                results.push(serde_json::json!({
                    "ruleId": Rule::Unreadable.id(),
                    "level": "error",
                    "message": { "text": format!("cannot scan: {e}") },
                    "locations": [location(&file.path, None)],
                }));
            }
            for f in file.findings.iter().filter(|f| f.severity >= min) {
                let text = if f.location == file.path {
                    f.message.clone()
                } else {
                    format!("{} (in {})", f.message, f.location)
                };
                results.push(serde_json::json!({
                    "ruleId": f.rule.id(),
                    "level": f.severity.sarif_level(),
                    "message": { "text": text },
                    "locations": [location(&file.path, f.offset.filter(|_| f.location == file.path))],
                    "properties": { "severity": f.severity, "location": f.location, "count": f.count },
                }));
            }
        }
        let mut driver = serde_json::json!({
            "name": "rampart-model-scan",
            "version": self.version,
            "rules": rules,
        });
        // Only a page that exists: the package's published repository when the build names
        // one (`repository` in Cargo.toml), else nothing (the property is optional).
        if let Some(home) = option_env!("CARGO_PKG_REPOSITORY").filter(|h| h.starts_with("https://")) {
            driver["informationUri"] = serde_json::Value::String(home.to_string());
        }
        serde_json::json!({
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [{
                "tool": { "driver": driver },
                "results": results,
            }],
        })
    }
}

fn location(path: &str, offset: Option<u64>) -> serde_json::Value {
    let mut physical = serde_json::json!({ "artifactLocation": { "uri": path_to_uri(path) } });
    if let Some(o) = offset {
        physical["region"] = serde_json::json!({ "byteOffset": o });
    }
    serde_json::json!({ "physicalLocation": physical })
}

/// A relative URI reference for SARIF: forward slashes, spaces and `%` escaped.
fn path_to_uri(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '\\' => out.push('/'),
            ' ' => out.push_str("%20"),
            '%' => out.push_str("%25"),
            '#' => out.push_str("%23"),
            '?' => out.push_str("%3F"),
            c => out.push(c),
        }
    }
    out
}
