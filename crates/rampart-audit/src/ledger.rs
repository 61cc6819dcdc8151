//! The writer: one thread owns the store connection and the chain head. Callers hand it
//! entries through a bounded queue and wait for the commit; in group mode it commits every
//! entry waiting in the queue in one transaction (one fsync), so throughput grows with load
//! while each caller still gets its answer only after its record is durable.
//!
//! When a write fails the ledger turns unhealthy, every waiting caller gets the error, and the
//! writer probes the store with a real durable write until it takes writes again; the gateway
//! refuses traffic meanwhile (fail closed) and recovers by itself.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::oneshot;

use crate::backend::{Backend, Batch, DekRow, Location};
use crate::checkpoint::{self, Checkpoint, Signer};
use crate::crypto::{self, KeyProvider, SecretKey};
use crate::record::{payload_digest, Entry, Stored, GENESIS};
use crate::{now_ms, AuditError};

/// How a record is made durable before its caller goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// One transaction (and fsync) per record.
    Sync,
    /// All queued records, up to `max_batch`, in one transaction.
    Group {
        /// Largest batch.
        max_batch: usize,
    },
}

/// Ledger settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// This writer's chain (one per gateway replica).
    pub chain: String,
    /// Commit strategy.
    pub durability: Durability,
    /// Bound of the in-memory queue; a full queue refuses (fail closed).
    pub queue_capacity: usize,
    /// Sign a checkpoint after this many records...
    pub checkpoint_every: u64,
    /// ...or this long after the last one, whichever comes first.
    pub checkpoint_interval: Duration,
    /// Append each checkpoint to this file too (keep it on another disk or host).
    pub checkpoint_export: Option<PathBuf>,
    /// A subject's data key is replaced after this age (old ones stay for reading).
    pub data_key_max_age: Duration,
    /// How often an unhealthy ledger retries the store.
    pub probe_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            chain: "local".into(),
            durability: Durability::Group { max_batch: 256 },
            queue_capacity: 4096,
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(60),
            checkpoint_export: None,
            data_key_max_age: Duration::from_secs(30 * 86_400),
            probe_interval: Duration::from_millis(500),
        }
    }
}

/// Where a record went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Chain.
    pub chain: String,
    /// Sequence number.
    pub seq: u64,
    /// Record hash.
    pub hash: [u8; 32],
}

/// A snapshot of the ledger's state, for `/readyz`, metrics and the admin API.
#[derive(Debug, Clone)]
pub struct Health {
    /// Whether it takes writes.
    pub healthy: bool,
    /// Why not, when not.
    pub last_error: Option<String>,
    /// Entries waiting in the queue.
    pub queue_depth: usize,
    /// Records committed by this process.
    pub appended: u64,
    /// Checkpoints signed by this process.
    pub checkpoints: u64,
}

type Reply<T> = oneshot::Sender<Result<T, AuditError>>;

enum Cmd {
    Append(Box<Entry>, Reply<Receipt>),
    Erase(String, String, Reply<usize>),
    Retain(i64, String, Reply<usize>),
    Rotate(String, Reply<usize>),
    Checkpoint(Reply<Option<Checkpoint>>),
}

/// Called with each new checkpoint (for a webhook); must not block for long.
pub type CheckpointHook = Box<dyn Fn(&Checkpoint) + Send + Sync>;

struct Shared {
    healthy: AtomicBool,
    last_error: Mutex<Option<String>>,
    depth: AtomicUsize,
    appended: AtomicU64,
    checkpoints: AtomicU64,
}

/// A running ledger; cheap to share behind an `Arc`.
pub struct Ledger {
    tx: SyncSender<Cmd>,
    shared: Arc<Shared>,
    location: Location,
    chain: String,
    public_key: String,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("location", &self.location.describe())
            .field("chain", &self.chain)
            .finish()
    }
}

impl Ledger {
    /// Starts the writer thread, which opens the store and reads the chain head; returns once
    /// it has (or with the reason it could not). The store is opened on that thread because
    /// the PostgreSQL client must not run on an async runtime's worker.
    pub fn open(
        location: Location,
        options: Options,
        signer: Signer,
        keys: Option<Arc<dyn KeyProvider>>,
        hook: Option<CheckpointHook>,
    ) -> Result<Ledger, AuditError> {
        let (tx, rx) = mpsc::sync_channel(options.queue_capacity.max(1));
        let shared = Arc::new(Shared {
            healthy: AtomicBool::new(true),
            last_error: Mutex::new(None),
            depth: AtomicUsize::new(0),
            appended: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
        });
        let public_key = signer.public_hex();
        let chain = options.chain.clone();
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<(), AuditError>>(1);
        let thread_shared = shared.clone();
        let thread_location = location.clone();
        std::thread::Builder::new()
            .name("rampart-audit".into())
            .spawn(move || {
                let opened = (|| {
                    let mut backend = thread_location.open()?;
                    backend.lock_chain(&options.chain)?;
                    let head = backend.head(&options.chain)?;
                    let last_cp = backend.checkpoints(&options.chain)?.last().map_or(0, |c| c.seq);
                    Ok((backend, head, last_cp))
                })();
                let (backend, head, last_cp) = match opened {
                    Ok(o) => o,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let (seq, hash) = head.unwrap_or((0, GENESIS));
                let writer = Writer {
                    backend,
                    options,
                    signer,
                    keys,
                    hook,
                    shared: thread_shared,
                    seq,
                    hash,
                    last_cp_seq: last_cp,
                    last_cp_at: Instant::now(),
                    deks: HashMap::new(),
                };
                let _ = ready_tx.send(Ok(()));
                writer.run(rx);
            })
            .map_err(|e| AuditError::Unavailable(format!("cannot start the writer thread: {e}")))?;
        ready_rx.recv().unwrap_or(Err(AuditError::Closed))?;
        Ok(Ledger {
            tx,
            shared,
            location,
            chain,
            public_key,
        })
    }

    /// Where it is stored.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// This writer's chain.
    pub fn chain(&self) -> &str {
        &self.chain
    }

    /// The checkpoint public key, hex.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// Whether the ledger takes writes now.
    pub fn healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Acquire)
    }

    /// State for status pages and metrics.
    pub fn health(&self) -> Health {
        Health {
            healthy: self.healthy(),
            last_error: self.shared.last_error.lock().ok().and_then(|e| e.clone()),
            queue_depth: self.shared.depth.load(Ordering::Relaxed),
            appended: self.shared.appended.load(Ordering::Relaxed),
            checkpoints: self.shared.checkpoints.load(Ordering::Relaxed),
        }
    }

    fn send<T>(
        &self,
        make: impl FnOnce(Reply<T>) -> Cmd,
    ) -> Result<oneshot::Receiver<Result<T, AuditError>>, AuditError> {
        let (reply, rx) = oneshot::channel();
        self.shared.depth.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(make(reply)) {
            Ok(()) => Ok(rx),
            Err(e) => {
                self.shared.depth.fetch_sub(1, Ordering::Relaxed);
                Err(match e {
                    TrySendError::Full(_) => AuditError::QueueFull,
                    TrySendError::Disconnected(_) => AuditError::Closed,
                })
            }
        }
    }

    async fn wait<T>(rx: oneshot::Receiver<Result<T, AuditError>>) -> Result<T, AuditError> {
        rx.await.unwrap_or(Err(AuditError::Closed))
    }

    /// Appends a record; returns once it is durable.
    pub async fn append(&self, entry: Entry) -> Result<Receipt, AuditError> {
        Self::wait(self.send(|r| Cmd::Append(Box::new(entry), r))?).await
    }

    /// Appends from synchronous code (not from inside an async runtime's worker).
    pub fn append_blocking(&self, entry: Entry) -> Result<Receipt, AuditError> {
        self.send(|r| Cmd::Append(Box::new(entry), r))?
            .blocking_recv()
            .unwrap_or(Err(AuditError::Closed))
    }

    /// Crypto-shreds a subject: destroys its data keys and records the erasure (by `actor`).
    pub async fn erase(&self, subject: &str, actor: &str) -> Result<usize, AuditError> {
        Self::wait(self.send(|r| Cmd::Erase(subject.to_string(), actor.to_string(), r))?).await
    }

    /// Drops payloads older than `before_ms` and records that it did (if any were dropped).
    pub async fn retain(&self, before_ms: i64, actor: &str) -> Result<usize, AuditError> {
        Self::wait(self.send(|r| Cmd::Retain(before_ms, actor.to_string(), r))?).await
    }

    /// Re-wraps every live data key under the current master key; records the rotation.
    pub async fn rotate_master_key(&self, actor: &str) -> Result<usize, AuditError> {
        Self::wait(self.send(|r| Cmd::Rotate(actor.to_string(), r))?).await
    }

    /// Signs a checkpoint over the current head now (none if the chain is empty).
    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>, AuditError> {
        Self::wait(self.send(Cmd::Checkpoint)?).await
    }

    /// Blocking variants for the command line.
    pub fn blocking(&self) -> Blocking<'_> {
        Blocking(self)
    }
}

/// Blocking calls, for tools that run outside an async runtime.
#[derive(Debug)]
pub struct Blocking<'a>(&'a Ledger);

impl Blocking<'_> {
    fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Cmd) -> Result<T, AuditError> {
        self.0.send(make)?.blocking_recv().unwrap_or(Err(AuditError::Closed))
    }

    /// See [`Ledger::erase`].
    pub fn erase(&self, subject: &str, actor: &str) -> Result<usize, AuditError> {
        self.call(|r| Cmd::Erase(subject.to_string(), actor.to_string(), r))
    }

    /// See [`Ledger::retain`].
    pub fn retain(&self, before_ms: i64, actor: &str) -> Result<usize, AuditError> {
        self.call(|r| Cmd::Retain(before_ms, actor.to_string(), r))
    }

    /// See [`Ledger::rotate_master_key`].
    pub fn rotate_master_key(&self, actor: &str) -> Result<usize, AuditError> {
        self.call(|r| Cmd::Rotate(actor.to_string(), r))
    }

    /// See [`Ledger::checkpoint`].
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>, AuditError> {
        self.call(Cmd::Checkpoint)
    }
}

/// A data key made for a batch: (subject, id, key, created), cached once the batch commits.
type NewKey = (String, i64, SecretKey, i64);

struct CachedDek {
    id: i64,
    key: SecretKey,
    created_ms: i64,
    fetched: Instant,
}

/// Data keys are cached briefly, so an erasure made by another process takes effect here soon.
const DEK_CACHE_TTL: Duration = Duration::from_secs(30);
const DEK_CACHE_MAX: usize = 10_000;

struct Writer {
    backend: Box<dyn Backend>,
    options: Options,
    signer: Signer,
    keys: Option<Arc<dyn KeyProvider>>,
    hook: Option<CheckpointHook>,
    shared: Arc<Shared>,
    seq: u64,
    hash: [u8; 32],
    last_cp_seq: u64,
    last_cp_at: Instant,
    deks: HashMap<String, CachedDek>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Cmd>) {
        let max_batch = match self.options.durability {
            Durability::Sync => 1,
            Durability::Group { max_batch } => max_batch.max(1),
        };
        let mut pending: Option<Cmd> = None;
        loop {
            let cmd = match pending.take() {
                Some(c) => c,
                None => match rx.recv_timeout(self.wait_time()) {
                    Ok(c) => {
                        self.shared.depth.fetch_sub(1, Ordering::Relaxed);
                        c
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        self.tick();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                },
            };
            match cmd {
                Cmd::Append(entry, reply) => {
                    let mut batch = vec![(*entry, reply)];
                    while batch.len() < max_batch {
                        match rx.try_recv() {
                            Ok(c) => {
                                self.shared.depth.fetch_sub(1, Ordering::Relaxed);
                                match c {
                                    Cmd::Append(e, r) => batch.push((*e, r)),
                                    other => {
                                        pending = Some(other);
                                        break;
                                    }
                                }
                            }
                            Err(_) => break,
                        }
                    }
                    let (entries, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                    match self.commit(entries) {
                        Ok(receipts) => {
                            for (r, rc) in replies.into_iter().zip(receipts) {
                                let _ = r.send(Ok(rc));
                            }
                        }
                        Err(e) => {
                            for r in replies {
                                let _ = r.send(Err(e.clone()));
                            }
                        }
                    }
                }
                Cmd::Erase(subject, actor, reply) => {
                    let _ = reply.send(self.erase(&subject, &actor));
                }
                Cmd::Retain(before, actor, reply) => {
                    let _ = reply.send(self.retain(before, &actor));
                }
                Cmd::Rotate(actor, reply) => {
                    let _ = reply.send(self.rotate(&actor));
                }
                Cmd::Checkpoint(reply) => {
                    let r = if self.seq == 0 {
                        Ok(None)
                    } else {
                        self.write_checkpoint_only().map(Some)
                    };
                    let _ = reply.send(r);
                }
            }
        }
    }

    fn healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Acquire)
    }

    fn set_health(&self, result: Result<(), &AuditError>) {
        match result {
            Ok(()) => {
                if !self.healthy() {
                    tracing::info!(chain = %self.options.chain, "audit ledger takes writes again");
                }
                if let Ok(mut e) = self.shared.last_error.lock() {
                    *e = None;
                }
                self.shared.healthy.store(true, Ordering::Release);
            }
            Err(err) => {
                if self.healthy() {
                    tracing::error!(chain = %self.options.chain, error = %err, "audit ledger cannot write; refusing traffic until it can");
                }
                if let Ok(mut e) = self.shared.last_error.lock() {
                    *e = Some(err.to_string());
                }
                self.shared.healthy.store(false, Ordering::Release);
            }
        }
    }

    fn wait_time(&self) -> Duration {
        if !self.healthy() {
            return self.options.probe_interval;
        }
        if self.seq > self.last_cp_seq {
            return self
                .options
                .checkpoint_interval
                .saturating_sub(self.last_cp_at.elapsed())
                .max(Duration::from_millis(10));
        }
        Duration::from_secs(1)
    }

    /// Idle work: probe when unhealthy, sign a checkpoint when one is due by time.
    fn tick(&mut self) {
        if !self.healthy() {
            let r = self.backend.probe(now_ms()).and_then(|()| self.reload_head());
            self.set_health(r.as_ref().map(|_| ()));
            return;
        }
        if self.seq > self.last_cp_seq && self.last_cp_at.elapsed() >= self.options.checkpoint_interval {
            if let Err(e) = self.write_checkpoint_only() {
                self.set_health(Err(&e));
            }
        }
    }

    fn reload_head(&mut self) -> Result<(), AuditError> {
        let (seq, hash) = self.backend.head(&self.options.chain)?.unwrap_or((0, GENESIS));
        self.seq = seq;
        self.hash = hash;
        self.last_cp_seq = self
            .backend
            .checkpoints(&self.options.chain)?
            .last()
            .map_or(0, |c| c.seq)
            .min(seq);
        Ok(())
    }

    /// The data key for a subject: cached, stored, or new (returned for the batch to store).
    fn dek_for(&mut self, subject: &str, now: i64) -> Result<(i64, SecretKey, Option<DekRow>), AuditError> {
        let max_age = self.options.data_key_max_age.as_millis() as i64;
        if let Some(c) = self.deks.get(subject) {
            if c.fetched.elapsed() < DEK_CACHE_TTL && now - c.created_ms < max_age {
                return Ok((c.id, c.key.clone(), None));
            }
        }
        let provider = self.keys.clone().ok_or_else(|| {
            AuditError::Key("payloads need a master key ([audit] master_key_env or master_key_file)".into())
        })?;
        if let Some(row) = self.backend.current_dek(subject)? {
            if now - row.created_ms < max_age {
                if let (Some(kek), Some(wrapped)) = (&row.kek_id, &row.wrapped) {
                    let key = provider.unwrap(kek, wrapped, &crypto::dek_aad(subject, row.id))?;
                    self.cache(subject, row.id, key.clone(), row.created_ms);
                    return Ok((row.id, key, None));
                }
            }
        }
        let id = rand::rng().random_range(1..i64::MAX);
        let key = SecretKey::generate();
        let (kek_id, wrapped) = provider.wrap(&key, &crypto::dek_aad(subject, id))?;
        let row = DekRow {
            id,
            subject: subject.to_string(),
            kek_id: Some(kek_id),
            wrapped: Some(wrapped),
            created_ms: now,
            destroyed_ms: None,
        };
        Ok((id, key, Some(row)))
    }

    fn cache(&mut self, subject: &str, id: i64, key: SecretKey, created_ms: i64) {
        if self.deks.len() >= DEK_CACHE_MAX {
            self.deks.clear();
        }
        self.deks.insert(
            subject.to_string(),
            CachedDek {
                id,
                key,
                created_ms,
                fetched: Instant::now(),
            },
        );
    }

    fn build(&mut self, entries: &[Entry]) -> Result<(Batch, Vec<NewKey>), AuditError> {
        let mut batch = Batch::default();
        let mut new_keys: Vec<NewKey> = Vec::new();
        let (mut seq, mut prev) = (self.seq, self.hash);
        let now = now_ms();
        for e in entries {
            seq += 1;
            let meta = serde_json::to_vec(&e.meta).map_err(|err| AuditError::Corrupt(err.to_string()))?;
            let (dek_id, digest, payload) = match &e.payload {
                Some(plain) => {
                    let fresh = new_keys
                        .iter()
                        .find(|(s, ..)| s == &e.subject)
                        .map(|(_, id, k, _)| (*id, k.clone()));
                    let (id, key) = match fresh {
                        Some(f) => f,
                        None => {
                            let (id, key, row) = self.dek_for(&e.subject, now)?;
                            if let Some(row) = row {
                                new_keys.push((e.subject.clone(), id, key.clone(), row.created_ms));
                                batch.keys.push(row);
                            }
                            (id, key)
                        }
                    };
                    let sealed = crypto::seal(&key, plain, &crypto::payload_aad(&self.options.chain, seq))?;
                    (Some(id), Some(payload_digest(&sealed)), Some(sealed))
                }
                None => (None, None, None),
            };
            let mut r = Stored {
                chain: self.options.chain.clone(),
                seq,
                ts_ms: e.ts_ms,
                kind: e.kind.name().to_string(),
                subject: e.subject.clone(),
                principal: e.principal.clone(),
                model: e.model.clone(),
                decision: e.decision.clone(),
                findings: e.findings.join("\n"),
                meta,
                dek_id,
                payload_digest: digest,
                payload,
                prev_hash: prev,
                hash: [0; 32],
            };
            r.hash = r.compute_hash();
            prev = r.hash;
            batch.records.push(r);
        }
        if seq - self.last_cp_seq >= self.options.checkpoint_every.max(1)
            || self.last_cp_at.elapsed() >= self.options.checkpoint_interval
        {
            batch.checkpoint = Some(self.signer.sign(&self.options.chain, seq, &prev, now));
        }
        Ok((batch, new_keys))
    }

    fn commit(&mut self, entries: Vec<Entry>) -> Result<Vec<Receipt>, AuditError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self.build(&entries).and_then(|(batch, new_keys)| {
                self.backend.write(&batch)?;
                Ok((batch, new_keys))
            });
            match result {
                Ok((batch, new_keys)) => {
                    for (subject, id, key, created) in new_keys {
                        self.cache(&subject, id, key, created);
                    }
                    if let Some(last) = batch.records.last() {
                        self.seq = last.seq;
                        self.hash = last.hash;
                    }
                    self.shared
                        .appended
                        .fetch_add(batch.records.len() as u64, Ordering::Relaxed);
                    if let Some(cp) = &batch.checkpoint {
                        self.after_checkpoint(cp);
                    }
                    self.set_health(Ok(()));
                    return Ok(batch
                        .records
                        .iter()
                        .map(|r| Receipt {
                            chain: r.chain.clone(),
                            seq: r.seq,
                            hash: r.hash,
                        })
                        .collect());
                }
                // Someone else (a command-line tool) extended the chain: catch up and retry.
                Err(AuditError::Conflict(_)) if attempt < 3 => {
                    if let Err(e) = self.reload_head() {
                        self.set_health(Err(&e));
                        return Err(e);
                    }
                }
                Err(e) => {
                    if matches!(
                        e,
                        AuditError::Unavailable(_) | AuditError::Backend(_) | AuditError::Conflict(_)
                    ) {
                        self.set_health(Err(&e));
                    }
                    return Err(e);
                }
            }
        }
    }

    fn after_checkpoint(&mut self, cp: &Checkpoint) {
        self.last_cp_seq = cp.seq;
        self.last_cp_at = Instant::now();
        self.shared.checkpoints.fetch_add(1, Ordering::Relaxed);
        if let Some(path) = &self.options.checkpoint_export {
            if let Err(e) = checkpoint::export_to_file(path, cp) {
                tracing::error!(error = %e, "cannot export an audit checkpoint");
            }
        }
        if let Some(hook) = &self.hook {
            hook(cp);
        }
    }

    fn write_checkpoint_only(&mut self) -> Result<Checkpoint, AuditError> {
        let cp = self.signer.sign(&self.options.chain, self.seq, &self.hash, now_ms());
        if cp.seq == self.last_cp_seq {
            // Already covered; sign again only to hand the caller a fresh statement.
            return Ok(cp);
        }
        self.backend.write(&Batch {
            checkpoint: Some(cp.clone()),
            ..Batch::default()
        })?;
        self.after_checkpoint(&cp);
        Ok(cp)
    }

    fn erase(&mut self, subject: &str, actor: &str) -> Result<usize, AuditError> {
        let n = self.backend.destroy_subject_keys(subject, now_ms())?;
        self.deks.remove(subject);
        let entry = Entry::admin(
            actor,
            "audit.erase",
            serde_json::json!({"subject": subject, "keys_destroyed": n}),
        );
        self.commit(vec![entry])?;
        Ok(n)
    }

    fn retain(&mut self, before_ms: i64, actor: &str) -> Result<usize, AuditError> {
        let n = self.backend.drop_payloads_before(before_ms)?;
        if n > 0 {
            let entry = Entry::admin(
                actor,
                "audit.retention",
                serde_json::json!({"before_ms": before_ms, "payloads_dropped": n}),
            );
            self.commit(vec![entry])?;
        }
        Ok(n)
    }

    fn rotate(&mut self, actor: &str) -> Result<usize, AuditError> {
        let provider = self
            .keys
            .clone()
            .ok_or_else(|| AuditError::Key("no master key is configured".into()))?;
        let current = provider.current_id();
        let mut rows = Vec::new();
        for mut row in self.backend.live_deks()? {
            let (Some(kek), Some(wrapped)) = (&row.kek_id, &row.wrapped) else {
                continue;
            };
            if *kek == current {
                continue;
            }
            let aad = crypto::dek_aad(&row.subject, row.id);
            let key = provider.unwrap(kek, wrapped, &aad)?;
            let (kek_id, wrapped) = provider.wrap(&key, &aad)?;
            row.kek_id = Some(kek_id);
            row.wrapped = Some(wrapped);
            rows.push(row);
        }
        self.backend.rewrap(&rows)?;
        let entry = Entry::admin(
            actor,
            "audit.rotate_master_key",
            serde_json::json!({"master_key_id": current, "rewrapped": rows.len()}),
        );
        self.commit(vec![entry])?;
        Ok(rows.len())
    }
}
