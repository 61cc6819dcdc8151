//! Real text already on the machine (or unpacked from pinned Debian packages by
//! `scripts/harvest-corpora.sh`): source code, configs and documentation pasted into
//! questions, and translated message catalogues in dozens of languages.
//!
//! Files are visited in sorted order and chosen by a seeded generator, so one root gives
//! the same rows on every run.

use std::path::{Path, PathBuf};

use rampart_scan::injection::train::Sample;

use crate::lang;
use crate::Rng;

/// Questions a developer asks about pasted code, configs or docs; `{}` is the paste.
const CODE_QUESTIONS: &[&str] = &[
    "Can you explain what this code does?\n\n```\n{}\n```",
    "Why does this fail?\n\n{}",
    "Review this config, is anything wrong?\n\n{}",
    "{}\n\nWhat does this do?",
    "Add comments to this:\n```\n{}\n```",
    "Refactor this to be more readable:\n\n{}",
    "Summarise this documentation for me:\n\n{}",
    "I got this from a colleague. Is it safe to run?\n```\n{}\n```",
    "Translate this code to Go:\n{}",
    "{}",
];

fn walk(root: &Path, keep: &dyn Fn(&Path) -> bool, out: &mut Vec<PathBuf>, depth: usize) {
    if depth > 12 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            walk(&p, keep, out, depth + 1);
        } else if meta.is_file() && keep(&p) {
            out.push(p);
        }
    }
}

/// Files under `root` whose names end with one of `suffixes`.
pub fn files(root: &Path, suffixes: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let keep = |p: &Path| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        suffixes.iter().any(|s| name.ends_with(s))
    };
    walk(root, &keep, &mut out, 0);
    out
}

/// A piece of `text` of about `len` bytes, cut at line boundaries.
fn excerpt(text: &str, len: usize, rng: &mut Rng) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return String::new();
    }
    let start = rng.below(lines.len());
    let mut out = String::new();
    for l in &lines[start..] {
        if out.len() + l.len() > len && !out.is_empty() {
            break;
        }
        out.push_str(l);
        out.push('\n');
    }
    out.trim_end().to_owned()
}

/// The kind of a file for the source tag (`py`, `toml`, `md`, `conf`, ...).
fn kind(p: &Path) -> String {
    p.extension()
        .and_then(|e| e.to_str())
        .map_or_else(|| "plain".to_owned(), str::to_ascii_lowercase)
}

/// `count` excerpts of files under `roots` with the given suffixes, pasted into developer
/// questions. `tag` names the family (`harvest-code` for training, `heldout-code` for the
/// over-defence evaluation on projects never trained on).
pub fn code(roots: &[PathBuf], suffixes: &[&str], count: usize, tag: &str, seed: u64) -> Vec<Sample> {
    let mut all: Vec<PathBuf> = roots.iter().flat_map(|r| files(r, suffixes)).collect();
    all.sort();
    all.dedup();
    // One kind of file at a time, in turn, so that a large tree of one language (Go's
    // standard library) does not crowd out the others.
    let mut by_kind: std::collections::BTreeMap<String, Vec<PathBuf>> = Default::default();
    for p in all {
        by_kind.entry(kind(&p)).or_default().push(p);
    }
    let kinds: Vec<Vec<PathBuf>> = by_kind.into_values().collect();
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    let mut tries = 0usize;
    while out.len() < count && !kinds.is_empty() && tries < count * 4 {
        tries += 1;
        let group = &kinds[tries % kinds.len()];
        let p = &group[rng.below(group.len())];
        let Ok(bytes) = std::fs::read(p) else {
            continue;
        };
        if bytes.len() > 2_000_000 || bytes.contains(&0) {
            continue;
        }
        let text = String::from_utf8_lossy(&bytes);
        let len = [300usize, 400, 700, 1000, 1500, 2000][rng.below(6)];
        let piece = excerpt(&text, len, &mut rng);
        if piece.len() < 80 {
            continue;
        }
        let q = rng.pick(CODE_QUESTIONS).replace("{}", &piece);
        out.push(Sample {
            text: q,
            label: false,
            source: format!("{tag}/{}@en", kind(p)),
        });
    }
    out
}

/// The translated strings of a gettext `.mo` catalogue (plural forms split), or nothing if
/// the bytes are not one. Offsets are checked: a damaged file gives what can be read.
pub fn mo_strings(bytes: &[u8]) -> Vec<String> {
    mo_table(bytes, 16)
}

/// The original (English) strings of a gettext `.mo` catalogue, read like [`mo_strings`].
pub fn mo_originals(bytes: &[u8]) -> Vec<String> {
    mo_table(bytes, 12)
}

/// The strings of the catalogue table whose offset is stored at `header`.
fn mo_table(bytes: &[u8], header: usize) -> Vec<String> {
    let word = |at: usize, be: bool| -> Option<usize> {
        let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        Some(if be {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        } as usize)
    };
    let be = match word(0, false) {
        Some(0x9504_12de) => false,
        Some(0xde12_0495) => true,
        _ => return Vec::new(),
    };
    let (Some(n), Some(table)) = (word(8, be), word(header, be)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for i in 0..n.min(200_000) {
        let (Some(len), Some(off)) = (word(table + i * 8, be), word(table + i * 8 + 4, be)) else {
            break;
        };
        let Some(s) = bytes.get(off..off.saturating_add(len)) else {
            continue;
        };
        for part in s.split(|&b| b == 0) {
            if let Ok(t) = std::str::from_utf8(part) {
                if !t.is_empty() && !t.starts_with("Project-Id-Version") {
                    out.push(t.to_owned());
                }
            }
        }
    }
    out
}

/// Short benign English as software shows it: the original strings of the message catalogues
/// under `root/usr/share/locale` (menu entries, settings, status and error messages, option
/// help), one or two per row. Terse messages full of words attack corpora also use (mode,
/// ignore, override, response, admin, restricted) are what users paste and ask about.
pub fn ui_messages(root: &Path, count: usize, seed: u64) -> Vec<Sample> {
    let base = root.join("usr/share/locale");
    let mut rng = Rng::new(seed);
    let mut seen = std::collections::BTreeSet::new();
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&base) {
        Ok(entries) => entries.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
        Err(_) => return Vec::new(),
    };
    dirs.sort();
    for dir in dirs {
        for f in files(&dir.join("LC_MESSAGES"), &[".mo"]) {
            if f.file_stem()
                .and_then(|s| s.to_str())
                .is_some_and(|d| d.starts_with("iso_"))
            {
                continue;
            }
            let Ok(bytes) = std::fs::read(&f) else { continue };
            for s in mo_originals(&bytes) {
                // `context\x04message`: the context is for translators.
                let s = s.rsplit('\x04').next().unwrap_or(&s).trim();
                let words = s.split_whitespace().count();
                if (1..=25).contains(&words) && s.len() <= 240 && s.matches('%').count() <= 2 {
                    seen.insert(s.to_owned());
                }
            }
        }
    }
    let strings: Vec<String> = seen.into_iter().collect();
    if strings.is_empty() {
        return Vec::new();
    }
    (0..count)
        .map(|_| {
            let mut text = strings[rng.below(strings.len())].clone();
            if rng.chance(0.25) {
                text.push('\n');
                text.push_str(&strings[rng.below(strings.len())]);
            }
            Sample {
                text,
                label: false,
                source: "harvest-ui@en".into(),
            }
        })
        .collect()
}

/// The language code of a locale directory name (`pt_BR` → `pt`, `zh_CN` → `zh`).
fn locale_lang(dir: &str) -> String {
    dir.split(['_', '@', '.']).next().unwrap_or(dir).to_owned()
}

/// Benign text in other languages from the message catalogues under
/// `root/usr/share/locale`: up to `per_lang` rows per language in `langs`, each one to three
/// translated messages, some pasted into a question in that language.
pub fn translations(root: &Path, langs: &[&str], per_lang: usize, seed: u64) -> Vec<Sample> {
    let base = root.join("usr/share/locale");
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(&base) else {
        return out;
    };
    let mut dirs: Vec<(String, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(n, _)| langs.contains(&locale_lang(n).as_str()))
        .collect();
    dirs.sort();
    let mut by_lang: std::collections::BTreeMap<String, Vec<(String, String)>> = Default::default();
    for (name, dir) in dirs {
        for f in files(&dir.join("LC_MESSAGES"), &[".mo"]) {
            let domain = f.file_stem().and_then(|s| s.to_str()).unwrap_or("mo").to_owned();
            // Country and language names are lists, not prose.
            if domain.starts_with("iso_") {
                continue;
            }
            let Ok(bytes) = std::fs::read(&f) else {
                continue;
            };
            let strings = mo_strings(&bytes);
            let e = by_lang.entry(locale_lang(&name)).or_default();
            e.extend(
                strings
                    .into_iter()
                    .filter(|s| s.chars().count() >= 24 && s.matches('%').count() <= 2)
                    .map(|s| (domain.clone(), s)),
            );
        }
    }
    for (code, strings) in by_lang {
        if strings.is_empty() {
            continue;
        }
        let parts = lang::lang(&code);
        for _ in 0..per_lang {
            let k = 1 + rng.below(3);
            let (domain, first) = &strings[rng.below(strings.len())];
            let mut text = first.clone();
            for _ in 1..k {
                text.push('\n');
                text.push_str(&strings[rng.below(strings.len())].1);
            }
            if let Some(l) = parts.filter(|_| rng.chance(0.4)) {
                text = rng.pick(l.about).replace("{}", &text);
            }
            out.push(Sample {
                text,
                label: false,
                source: format!("harvest-l10n/{domain}@{code}"),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mo(entries: &[(&str, &str)]) -> Vec<u8> {
        let n = entries.len();
        let mut b = Vec::new();
        let header = 28usize;
        let orig = header;
        let trans = orig + n * 8;
        let mut data_at = trans + n * 8;
        let mut table_o = Vec::new();
        let mut table_t = Vec::new();
        let mut data = Vec::new();
        for (o, t) in entries {
            table_o.push((o.len(), data_at));
            data.extend_from_slice(o.as_bytes());
            data.push(0);
            data_at += o.len() + 1;
            table_t.push((t.len(), data_at));
            data.extend_from_slice(t.as_bytes());
            data.push(0);
            data_at += t.len() + 1;
        }
        for v in [0x9504_12de_u32, 0, n as u32, orig as u32, trans as u32, 0, 0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for (l, o) in table_o.iter().chain(&table_t) {
            b.extend_from_slice(&(*l as u32).to_le_bytes());
            b.extend_from_slice(&(*o as u32).to_le_bytes());
        }
        b.extend_from_slice(&data);
        b
    }

    #[test]
    fn reads_a_catalogue() {
        let b = mo(&[
            ("cannot open file", "Datei kann nicht geöffnet werden"),
            ("%d file", "%d Datei\0%d Dateien"),
        ]);
        assert_eq!(
            mo_strings(&b),
            vec!["Datei kann nicht geöffnet werden", "%d Datei", "%d Dateien"]
        );
        assert!(mo_strings(b"nope").is_empty());
        assert_eq!(mo_originals(&b), vec!["cannot open file", "%d file"]);
    }

    proptest! {
        #[test]
        fn damaged_catalogues_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256), cut in 0usize..200) {
            let mut b = mo(&[("a", "b"), ("hello", "hallo")]);
            b.truncate(cut.min(b.len()));
            let _ = mo_strings(&b);
            let mut noisy = vec![0xde, 0x12, 0x04, 0x95];
            noisy.extend(bytes);
            let _ = mo_strings(&noisy);
        }
    }
}
