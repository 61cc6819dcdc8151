//! A model directory as a manifest: every file (or file shard) paired with its digest, computed
//! exactly as model-signing computes it so that signatures verify across both tools.
//!
//! Rules shared with model-signing: paths are POSIX and relative to the model root; items are
//! ordered component by component (Python's `PurePosixPath` order), shards by offsets; in the
//! `shards` method an empty file has no shard; symlinks are an error unless allowed, and then
//! their targets are hashed.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Mutex;

use blake2::Blake2b512;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::SignError;

/// A model-signing item cap: a signature that would make the verifier hash more items than
/// this (e.g. a one-byte shard size over a large model) is refused.
pub const MAX_ITEMS: usize = 10_000_000;
const CHUNK: usize = 1 << 20;

/// A content hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    /// SHA-256, model-signing's default.
    Sha256,
    /// BLAKE2b-512.
    Blake2b,
}

impl HashAlg {
    /// The name written into the signature.
    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha256 => "sha256",
            HashAlg::Blake2b => "blake2b",
        }
    }

    /// Parses a name as written by model-signing (also accepts its CLI spelling `blake2`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "sha256" => Some(HashAlg::Sha256),
            "blake2b" | "blake2" => Some(HashAlg::Blake2b),
            _ => None,
        }
    }
}

/// How a model is cut into items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// One item per file.
    Files,
    /// One item per `size`-byte shard of each file.
    Shards {
        /// Shard size in bytes.
        size: u64,
    },
}

/// The serialization parameters, recorded in (and read back from) the signed predicate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serialization {
    /// Files or shards.
    pub method: Method,
    /// The content hash.
    pub hash: HashAlg,
    /// Whether symlinks were followed.
    pub allow_symlinks: bool,
    /// Paths (relative to the model root) left out of the signature.
    pub ignore_paths: Vec<String>,
}

impl Serialization {
    /// The predicate's `serialization` object.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "method": match self.method { Method::Files => "files", Method::Shards { .. } => "shards" },
            "hash_type": self.hash.name(),
            "allow_symlinks": self.allow_symlinks,
        });
        if let (Method::Shards { size }, Some(map)) = (self.method, v.as_object_mut()) {
            map.insert("shard_size".into(), json!(size));
        }
        if let (false, Some(map)) = (self.ignore_paths.is_empty(), v.as_object_mut()) {
            map.insert("ignore_paths".into(), json!(self.ignore_paths));
        }
        v
    }

    /// Reads the predicate's `serialization` object.
    pub fn from_json(v: &Value) -> Result<Self, SignError> {
        let bad = |what: &str| SignError::Payload(format!("serialization: {what}"));
        let hash = v
            .get("hash_type")
            .and_then(Value::as_str)
            .and_then(HashAlg::parse)
            .ok_or_else(|| bad("hash_type must be sha256 or blake2b (blake3 is not supported)"))?;
        let method = match v.get("method").and_then(Value::as_str) {
            Some("files") => Method::Files,
            Some("shards") => {
                // protobuf's Struct stores numbers as doubles, so Python writes `1000000000.0`.
                let size = v
                    .get("shard_size")
                    .and_then(Value::as_f64)
                    .ok_or_else(|| bad("shard_size missing"))?;
                if !(size >= 1.0 && size.fract() == 0.0 && size <= 9.0e15) {
                    return Err(bad("shard_size must be a positive integer"));
                }
                Method::Shards { size: size as u64 }
            }
            _ => return Err(bad("method must be files or shards")),
        };
        let allow_symlinks = v.get("allow_symlinks").and_then(Value::as_bool).unwrap_or(false);
        let ignore_paths = match v.get("ignore_paths") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| bad("ignore_paths must be strings"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(bad("ignore_paths must be a list")),
        };
        Ok(Serialization {
            method,
            hash,
            allow_symlinks,
            ignore_paths,
        })
    }

    /// The algorithm name each resource carries: `sha256`, or `sha256-sharded-1000000000`.
    pub fn algorithm(&self) -> String {
        match self.method {
            Method::Files => self.hash.name().to_owned(),
            Method::Shards { size } => format!("{}-sharded-{size}", self.hash.name()),
        }
    }
}

/// One manifest item: a file, or a shard `[start, end)` of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// POSIX path relative to the model root.
    pub path: String,
    /// The shard's byte range, in the `shards` method.
    pub range: Option<(u64, u64)>,
}

impl Item {
    /// The resource name: `path` or `path:start:end`.
    pub fn name(&self) -> String {
        match self.range {
            None => self.path.clone(),
            Some((s, e)) => format!("{}:{s}:{e}", self.path),
        }
    }

    /// Parses a resource name for a method, refusing names that could leave the model root.
    pub fn parse(name: &str, method: Method) -> Result<Self, SignError> {
        let (path, range) = match method {
            Method::Files => (name, None),
            Method::Shards { .. } => {
                let mut parts = name.rsplitn(3, ':');
                let (end, start, path) = (parts.next(), parts.next(), parts.next());
                let (Some(end), Some(start), Some(path)) = (end, start, path) else {
                    return Err(SignError::Payload(format!("shard name {name:?} is not path:start:end")));
                };
                let num = |s: &str| {
                    s.parse::<u64>()
                        .map_err(|_| SignError::Payload(format!("bad shard offsets in {name:?}")))
                };
                let (s, e) = (num(start)?, num(end)?);
                if e <= s {
                    return Err(SignError::Payload(format!("empty shard {name:?}")));
                }
                (path, Some((s, e)))
            }
        };
        check_relative(path)?;
        Ok(Item {
            path: path.to_owned(),
            range,
        })
    }
}

/// A path from a signature must stay inside the model: relative, no `..`, no empty or `.`
/// components, no backslashes.
pub fn check_relative(path: &str) -> Result<(), SignError> {
    let ok = !path.is_empty()
        && !path.starts_with('/')
        && !path.contains('\\')
        && !path.contains('\0')
        && path.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
    if ok {
        Ok(())
    } else {
        Err(SignError::Payload(format!(
            "resource path {path:?} is not a plain relative path"
        )))
    }
}

impl Ord for Item {
    fn cmp(&self, other: &Self) -> Ordering {
        self.path
            .split('/')
            .cmp(other.path.split('/'))
            .then(self.range.cmp(&other.range))
    }
}

impl PartialOrd for Item {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A digest with its algorithm name, compared as a pair (as model-signing does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    /// E.g. `sha256` or `blake2b-sharded-1000`.
    pub algorithm: String,
    /// The raw digest.
    pub value: Vec<u8>,
}

/// A model's items and their digests.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Informative only: the model directory's name.
    pub model_name: String,
    /// How the items were made.
    pub serialization: Serialization,
    /// Items in canonical order.
    pub items: BTreeMap<Item, Digest>,
}

/// What to hash.
#[derive(Debug, Clone)]
pub struct HashRequest<'a> {
    /// Method, hash, symlink rule; `ignore_paths` is what gets recorded.
    pub serialization: &'a Serialization,
    /// Relative paths skipped entirely (files and whole directories).
    pub skip: &'a [String],
    /// Relative paths listed in [`Hashed::listed`] but not hashed.
    pub list_only: &'a [String],
    /// When set, only these files are hashed; every other file is listed in
    /// [`Hashed::unhashed`].
    pub only: Option<&'a [String]>,
}

/// The result of hashing a directory.
#[derive(Debug)]
pub struct Hashed {
    /// The manifest of what was hashed.
    pub manifest: Manifest,
    /// Files matched by [`HashRequest::list_only`].
    pub listed: Vec<String>,
    /// Files present but not hashed because of [`HashRequest::only`].
    pub unhashed: Vec<String>,
    /// Bytes read.
    pub bytes: u64,
}

/// True when `path` is `prefix` or lies under it, component-wise.
pub fn under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    path == prefix || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

fn io_error(path: &Path, source: std::io::Error) -> SignError {
    SignError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Lists the regular files of a model, sorted, as relative POSIX paths.
fn walk(
    root: &Path,
    req: &HashRequest<'_>,
    files: &mut Vec<(String, PathBuf, u64)>,
    listed: &mut Vec<String>,
) -> Result<(), SignError> {
    let meta = std::fs::symlink_metadata(root).map_err(|e| io_error(root, e))?;
    if meta.is_file() {
        // A single file is a model of one item, named by its file name.
        let name = root
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| SignError::Model(format!("{}: file name is not UTF-8", root.display())))?;
        files.push((name.to_owned(), root.to_owned(), meta.len()));
        return Ok(());
    }
    if !meta.is_dir() {
        return Err(SignError::Model(format!(
            "{} is neither a file nor a directory",
            root.display()
        )));
    }
    let mut stack = vec![(root.to_owned(), String::new())];
    while let Some((dir, rel_dir)) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| io_error(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_error(&dir, e))?;
            let path = entry.path();
            let name = entry
                .file_name()
                .into_string()
                .map_err(|_| SignError::Model(format!("{}: file name is not UTF-8", path.display())))?;
            let rel = if rel_dir.is_empty() {
                name
            } else {
                format!("{rel_dir}/{name}")
            };
            if req.skip.iter().any(|s| under(&rel, s)) {
                continue;
            }
            let mut meta = std::fs::symlink_metadata(&path).map_err(|e| io_error(&path, e))?;
            if meta.file_type().is_symlink() {
                if !req.serialization.allow_symlinks {
                    return Err(SignError::Model(format!(
                        "{rel} is a symbolic link; symlinks are refused unless allowed (--allow-symlinks)"
                    )));
                }
                meta = std::fs::metadata(&path).map_err(|e| io_error(&path, e))?;
                if meta.is_dir() {
                    // model-signing's glob does not descend into linked directories either.
                    continue;
                }
            }
            if meta.is_dir() {
                stack.push((path, rel));
            } else if meta.is_file() {
                if req.list_only.iter().any(|s| under(&rel, s)) {
                    listed.push(rel);
                } else {
                    files.push((rel, path, meta.len()));
                }
            } else {
                return Err(SignError::Model(format!(
                    "{rel} is not a regular file (device, pipe or socket)"
                )));
            }
        }
    }
    Ok(())
}

/// Hashes a model directory (or a single file).
pub fn hash_model(root: &Path, req: &HashRequest<'_>, progress: &(dyn Fn(u64) + Sync)) -> Result<Hashed, SignError> {
    let mut files = Vec::new();
    let mut listed = Vec::new();
    walk(root, req, &mut files, &mut listed)?;
    let mut unhashed = Vec::new();
    if let Some(only) = req.only {
        let (keep, drop): (Vec<_>, Vec<_>) = files.into_iter().partition(|(rel, _, _)| only.iter().any(|o| o == rel));
        files = keep;
        unhashed = drop.into_iter().map(|(rel, _, _)| rel).collect();
    }
    let ser = req.serialization;
    let mut jobs: Vec<(Item, PathBuf)> = Vec::new();
    for (rel, path, len) in files {
        match ser.method {
            Method::Files => jobs.push((Item { path: rel, range: None }, path)),
            Method::Shards { size } => {
                let mut start = 0;
                while start < len {
                    let end = start.saturating_add(size).min(len);
                    jobs.push((
                        Item {
                            path: rel.clone(),
                            range: Some((start, end)),
                        },
                        path.clone(),
                    ));
                    start = end;
                    if jobs.len() > MAX_ITEMS {
                        return Err(SignError::Model(format!(
                            "more than {MAX_ITEMS} shards; use a larger shard size"
                        )));
                    }
                }
            }
        }
    }
    let algorithm = ser.algorithm();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<ItemResult>>> = Mutex::new((0..jobs.len()).map(|_| None).collect());
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(jobs.len().max(1))
        .min(16);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                let mut buf = vec![0u8; CHUNK];
                loop {
                    let i = next.fetch_add(1, AtomicOrdering::Relaxed);
                    let Some((item, path)) = jobs.get(i) else { break };
                    let r = hash_item(path, item.range, ser.hash, &mut buf, progress);
                    if let Ok(mut slots) = results.lock() {
                        if let Some(slot) = slots.get_mut(i) {
                            *slot = Some(r);
                        }
                    }
                }
            });
        }
    });
    let results = results
        .into_inner()
        .map_err(|_| SignError::Model("a hashing thread panicked".into()))?;
    let mut items = BTreeMap::new();
    let mut bytes = 0;
    for ((item, _), r) in jobs.into_iter().zip(results) {
        let (value, n) = r.ok_or_else(|| SignError::Model("an item was not hashed".into()))??;
        bytes += n;
        items.insert(
            item,
            Digest {
                algorithm: algorithm.clone(),
                value,
            },
        );
    }
    listed.sort();
    unhashed.sort();
    Ok(Hashed {
        manifest: Manifest {
            model_name: model_name(root),
            serialization: ser.clone(),
            items,
        },
        listed,
        unhashed,
        bytes,
    })
}

/// The model's name as model-signing records it: the last path component.
pub fn model_name(root: &Path) -> String {
    let last = root.components().next_back();
    match last {
        Some(Component::Normal(n)) => n.to_string_lossy().into_owned(),
        _ => std::fs::canonicalize(root)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default(),
    }
}

/// A digest and the bytes read, or why not.
type ItemResult = Result<(Vec<u8>, u64), SignError>;

enum Hasher {
    Sha256(Sha256),
    Blake2b(Box<Blake2b512>),
}

fn hash_item(
    path: &Path,
    range: Option<(u64, u64)>,
    alg: HashAlg,
    buf: &mut [u8],
    progress: &(dyn Fn(u64) + Sync),
) -> ItemResult {
    let mut file = File::open(path).map_err(|e| io_error(path, e))?;
    let mut left = match range {
        Some((start, end)) => {
            file.seek(SeekFrom::Start(start)).map_err(|e| io_error(path, e))?;
            end - start
        }
        None => u64::MAX,
    };
    let mut hasher = match alg {
        HashAlg::Sha256 => Hasher::Sha256(Sha256::new()),
        HashAlg::Blake2b => Hasher::Blake2b(Box::default()),
    };
    let mut total = 0u64;
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let n = match file.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_error(path, e)),
        };
        match &mut hasher {
            Hasher::Sha256(h) => h.update(&buf[..n]),
            Hasher::Blake2b(h) => h.update(&buf[..n]),
        }
        left -= n as u64;
        total += n as u64;
        progress(n as u64);
    }
    if range.is_some() && left > 0 {
        return Err(SignError::Model(format!(
            "{}: file shrank while it was hashed",
            path.display()
        )));
    }
    let value = match hasher {
        Hasher::Sha256(h) => h.finalize().to_vec(),
        Hasher::Blake2b(h) => h.finalize().to_vec(),
    };
    Ok((value, total))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn items_order_component_wise_like_python_paths() {
        let a = Item {
            path: "a/b".into(),
            range: None,
        };
        let b = Item {
            path: "a.txt".into(),
            range: None,
        };
        assert!(a < b, "'a' < 'a.txt' as components, although '/' > '.' as bytes");
        let s1 = Item {
            path: "w".into(),
            range: Some((2, 10)),
        };
        let s2 = Item {
            path: "w".into(),
            range: Some((10, 12)),
        };
        assert!(s1 < s2);
    }

    #[test]
    fn names_from_a_signature_cannot_escape_the_model() {
        for bad in ["../x", "/etc/passwd", "a/../../b", "a//b", "./a", "a\\b", ""] {
            assert!(Item::parse(bad, Method::Files).is_err(), "{bad}");
        }
        let s = Item::parse("dir/w.bin:1000:2000", Method::Shards { size: 1000 }).unwrap();
        assert_eq!((s.path.as_str(), s.range), ("dir/w.bin", Some((1000, 2000))));
        assert!(Item::parse("w:5:5", Method::Shards { size: 1 }).is_err());
        assert!(Item::parse("w:5", Method::Shards { size: 1 }).is_err());
    }

    #[test]
    fn under_is_component_wise() {
        assert!(under(".git/config", ".git"));
        assert!(under(".git", ".git/"));
        assert!(!under(".gitignore", ".git"));
    }

    #[test]
    fn serialization_round_trips_and_reads_python_floats() {
        let s = Serialization {
            method: Method::Shards { size: 1000 },
            hash: HashAlg::Blake2b,
            allow_symlinks: false,
            ignore_paths: vec![".git".into()],
        };
        assert_eq!(Serialization::from_json(&s.to_json()).unwrap(), s);
        let py = json!({"method": "shards", "hash_type": "blake2b", "shard_size": 1000.0, "allow_symlinks": false});
        assert_eq!(
            Serialization::from_json(&py).unwrap().method,
            Method::Shards { size: 1000 }
        );
        assert_eq!(s.algorithm(), "blake2b-sharded-1000");
        assert!(
            Serialization::from_json(&json!({"method": "shards", "hash_type": "sha256", "shard_size": 0.5})).is_err()
        );
        assert!(Serialization::from_json(&json!({"method": "files", "hash_type": "blake3"})).is_err());
    }

    #[test]
    fn shards_cover_files_and_empty_files_have_none() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("w"), vec![1u8; 2500]).unwrap();
        std::fs::write(dir.path().join("empty"), b"").unwrap();
        let ser = Serialization {
            method: Method::Shards { size: 1000 },
            hash: HashAlg::Sha256,
            allow_symlinks: false,
            ignore_paths: vec![],
        };
        let req = HashRequest {
            serialization: &ser,
            skip: &[],
            list_only: &[],
            only: None,
        };
        let h = hash_model(dir.path(), &req, &|_| {}).unwrap();
        let names: Vec<_> = h.manifest.items.keys().map(Item::name).collect();
        assert_eq!(names, ["w:0:1000", "w:1000:2000", "w:2000:2500"]);
        assert_eq!(h.bytes, 2500);
        let whole = Sha256::digest([1u8; 500]).to_vec();
        assert_eq!(h.manifest.items.values().last().unwrap().value, whole);
    }
}
