//! The kill switch: keys, users or models an admin has blocked, checked on every request.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

/// What a block applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockKind {
    /// An API key id.
    Key,
    /// A user (JWT subject or key owner).
    User,
    /// A model name as clients send it.
    Model,
}

impl BlockKind {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            BlockKind::Key => "key",
            BlockKind::User => "user",
            BlockKind::Model => "model",
        }
    }
}

impl fmt::Display for BlockKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BlockKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "key" => Ok(BlockKind::Key),
            "user" => Ok(BlockKind::User),
            "model" => Ok(BlockKind::Model),
            other => Err(format!("unknown block kind `{other}` (use key, user or model)")),
        }
    }
}

/// One block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// What it applies to.
    pub kind: BlockKind,
    /// The key id, user or model.
    pub value: String,
    /// Why (shown to admins, not to the blocked caller).
    pub reason: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// The in-memory set of blocks, read on every request.
#[derive(Debug, Default)]
pub struct Blocklist {
    set: RwLock<HashSet<(BlockKind, String)>>,
    /// Bumped on every change, so running exchanges notice a new block cheaply.
    generation: AtomicU64,
}

impl Blocklist {
    /// Replaces the whole set (start-up).
    pub fn load(&self, blocks: &[Block]) {
        if let Ok(mut set) = self.set.write() {
            *set = blocks.iter().map(|b| (b.kind, b.value.clone())).collect();
        }
    }

    /// Adds one.
    pub fn insert(&self, kind: BlockKind, value: &str) {
        if let Ok(mut set) = self.set.write() {
            set.insert((kind, value.to_string()));
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Changes so far; a running exchange re-checks when this moves.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Removes one.
    pub fn remove(&self, kind: BlockKind, value: &str) {
        if let Ok(mut set) = self.set.write() {
            set.remove(&(kind, value.to_string()));
        }
    }

    /// The first block that applies to a caller using any of `models` (the name asked for,
    /// then every name that resolves to the same upstream model), if any.
    pub fn check_all<'m>(
        &self,
        key: Option<&str>,
        user: &str,
        models: impl IntoIterator<Item = &'m str>,
    ) -> Option<BlockKind> {
        let mut models = models.into_iter();
        if let Some(kind) = self.check(key, user, models.next()) {
            return Some(kind);
        }
        let Ok(set) = self.set.read() else {
            return Some(BlockKind::Model);
        };
        models
            .any(|m| set.contains(&(BlockKind::Model, m.to_string())))
            .then_some(BlockKind::Model)
    }

    /// Whether nothing is blocked (the common case, checked without building alias lists).
    pub fn is_empty(&self) -> bool {
        self.set.read().is_ok_and(|s| s.is_empty())
    }

    /// The first block that applies, if any. A poisoned lock counts as blocked (fail closed).
    pub fn check(&self, key: Option<&str>, user: &str, model: Option<&str>) -> Option<BlockKind> {
        let Ok(set) = self.set.read() else {
            return Some(BlockKind::Model);
        };
        if set.is_empty() {
            return None;
        }
        let hit = |k: BlockKind, v: &str| set.contains(&(k, v.to_string()));
        if key.is_some_and(|k| hit(BlockKind::Key, k)) {
            return Some(BlockKind::Key);
        }
        if hit(BlockKind::User, user) {
            return Some(BlockKind::User);
        }
        if model.is_some_and(|m| hit(BlockKind::Model, m)) {
            return Some(BlockKind::Model);
        }
        None
    }
}
