//! Rampart's training data: reading labelled JSON Lines, and the generators that give the
//! detectors the variety attackers have.
//!
//! * [`read_labelled`]: `text`, `label` (0/1 or a boolean), `source` (or `kind`), optional
//!   `lang` (kept as `@lang` at the end of the source, where [`Sample::language`] finds it).
//! * [`attacks`]: attacks composed from parts: goal × technique × carrier × language.
//! * [`benign`]: the benign side, just as varied: role-play, fiction, lyrics, transcripts,
//!   security questions, instructions about instructions, in many languages.
//! * [`harvest`]: real text already on the machine: source code, configs and documentation
//!   pasted into questions, and translated documentation and message catalogues from Debian
//!   packages.
//!
//! Every generator is seeded: the same command writes the same rows.
//!
//! [`Sample::language`]: rampart_scan::injection::train::Sample::language

#![forbid(unsafe_code)]

pub mod attacks;
pub mod benign;
pub mod harvest;
pub mod lang;
mod rng;

use std::path::Path;

use rampart_scan::injection::train::Sample;

pub use rng::Rng;

/// Errors reading or writing data files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not a labelled row.
    #[error("{path}:{line}: {what}")]
    Row {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        what: String,
    },
}

/// Reads labelled JSON Lines.
pub fn read_labelled(path: &Path) -> Result<Vec<Sample>, DataError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: p.clone(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row = |what: &str| DataError::Row {
            path: p.clone(),
            line: i + 1,
            what: what.to_owned(),
        };
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| row(&format!("not JSON: {e}")))?;
        let text = v["text"].as_str().ok_or_else(|| row("no string `text`"))?;
        let label = match &v["label"] {
            serde_json::Value::Bool(b) => *b,
            serde_json::Value::Number(n) if n.as_u64() == Some(1) => true,
            serde_json::Value::Number(n) if n.as_u64() == Some(0) => false,
            _ => return Err(row("`label` must be 0, 1, true or false")),
        };
        let mut source = v["source"]
            .as_str()
            .or_else(|| v["kind"].as_str())
            .unwrap_or("unknown")
            .to_owned();
        if let Some(lang) = v["lang"].as_str().filter(|l| !source.contains('@') && !l.is_empty()) {
            source = format!("{source}@{lang}");
        }
        out.push(Sample {
            text: text.to_owned(),
            label,
            source,
        });
    }
    Ok(out)
}

/// The lines of every file in `dir` (sorted by name), blank lines dropped: the component
/// lists (adversarial-suffix pieces) augmentation draws from. A missing directory is empty.
pub fn read_components(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<std::path::PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    files
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|t| t.lines().map(str::to_owned).collect::<Vec<_>>())
        .filter(|l| !l.trim().is_empty())
        .collect()
}

/// Writes rows as JSON Lines (`text`, `label`, `source`).
pub fn write_labelled(path: &Path, rows: &[Sample]) -> Result<(), DataError> {
    let mut buf = String::new();
    for s in rows {
        let v = serde_json::json!({"text": s.text, "label": u8::from(s.label), "source": s.source});
        buf.push_str(&v.to_string());
        buf.push('\n');
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| DataError::Io {
            path: dir.display().to_string(),
            source,
        })?;
    }
    std::fs::write(path, buf).map_err(|source| DataError::Io {
        path: path.display().to_string(),
        source,
    })
}
