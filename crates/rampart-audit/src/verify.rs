//! Walking the ledger: every record's hash is recomputed, every link checked, every payload
//! matched against its digest, and every checkpoint (stored or kept elsewhere) checked against
//! a trusted public key and against the chain. The first problem of each chain is named by
//! record; a record whose stored hash fits a neighbouring sequence number tells a removal, an
//! insertion or a reordering apart from an edit.

use std::collections::{BTreeMap, VecDeque};

use ed25519_dalek::VerifyingKey;
use serde::Serialize;

use crate::backend::Backend;
use crate::checkpoint::{key_id, Checkpoint};
use crate::record::{payload_digest, Stored, GENESIS};
use crate::AuditError;

/// What is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A record's fields no longer match its hash (or its hash was recomputed).
    Changed,
    /// A record is missing.
    Removed,
    /// A record that was not written by the ledger sits in the chain.
    Inserted,
    /// Records are out of their written order.
    Reordered,
    /// A payload's bytes do not match the digest its record commits to.
    PayloadChanged,
    /// The chain ends before a checkpoint that covers later records.
    Truncated,
    /// A checkpoint's signature does not verify (or its signer is not trusted).
    BadSignature,
    /// A validly signed checkpoint disagrees with the chain: records up to it were rewritten.
    CheckpointMismatch,
}

/// One problem, at one record.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// The chain.
    pub chain: String,
    /// The record (sequence number) it is about.
    pub seq: u64,
    /// What.
    pub kind: ProblemKind,
    /// In words.
    pub detail: String,
}

/// Per-chain totals.
#[derive(Debug, Clone, Serialize)]
pub struct ChainReport {
    /// The chain.
    pub chain: String,
    /// Records read.
    pub records: u64,
    /// Last sequence number.
    pub head_seq: u64,
    /// Checkpoints that verified and match the chain.
    pub checkpoints_ok: u64,
    /// Payloads present (the rest were never stored or were dropped by retention).
    pub payloads: u64,
}

/// The whole result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Chains walked.
    pub chains: Vec<ChainReport>,
    /// Problems, first per chain first.
    pub problems: Vec<Problem>,
}

impl Report {
    /// No problem found.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

const PAGE: usize = 1000;
const LOOKAHEAD: usize = 64;

struct Walker<'a> {
    backend: &'a mut dyn Backend,
    chain: String,
    buf: VecDeque<Stored>,
    after: u64,
    done: bool,
}

impl Walker<'_> {
    fn fill(&mut self, want: usize) -> Result<(), AuditError> {
        while !self.done && self.buf.len() < want {
            let page = self.backend.chain_page(&self.chain, self.after, PAGE)?;
            if page.len() < PAGE {
                self.done = true;
            }
            if let Some(last) = page.last() {
                self.after = last.seq;
            }
            self.buf.extend(page);
        }
        Ok(())
    }

    fn next(&mut self) -> Result<Option<Stored>, AuditError> {
        self.fill(LOOKAHEAD + 1)?;
        Ok(self.buf.pop_front())
    }

    fn ahead_has_hash(&self, h: &[u8; 32]) -> bool {
        self.buf.iter().take(LOOKAHEAD).any(|r| &r.hash == h)
    }
}

fn with_seq(r: &Stored, seq: u64) -> [u8; 32] {
    let mut c = r.clone();
    c.seq = seq;
    c.compute_hash()
}

/// Verifies every chain. `trusted` are the public keys checkpoints may be signed with;
/// `external` are checkpoints kept outside the ledger (they catch a truncated tail).
/// `progress` is called with the number of records read so far.
pub fn verify(
    backend: &mut dyn Backend,
    trusted: &[VerifyingKey],
    external: &[Checkpoint],
    mut progress: impl FnMut(u64),
) -> Result<Report, AuditError> {
    let mut chains = backend.chains()?;
    for cp in external {
        if !chains.contains(&cp.chain) {
            chains.push(cp.chain.clone());
        }
    }
    let mut report = Report {
        chains: Vec::new(),
        problems: Vec::new(),
    };
    let mut total = 0u64;
    for chain in chains {
        let mut problems = Vec::new();
        let problem = |seq: u64, kind: ProblemKind, detail: String| Problem {
            chain: chain.clone(),
            seq,
            kind,
            detail,
        };
        // Checkpoints whose signature holds, by sequence number.
        let mut good: BTreeMap<u64, Vec<Checkpoint>> = BTreeMap::new();
        let stored = backend.checkpoints(&chain)?;
        let outside = external.iter().filter(|c| c.chain == chain).cloned();
        for cp in stored.into_iter().chain(outside) {
            let signer = trusted.iter().find(|k| key_id(k) == cp.key_id);
            match signer {
                Some(k) if cp.verify(k) => good.entry(cp.seq).or_default().push(cp),
                Some(_) => problems.push(problem(
                    cp.seq,
                    ProblemKind::BadSignature,
                    format!("the checkpoint at record {} has an invalid signature", cp.seq),
                )),
                None => problems.push(problem(
                    cp.seq,
                    ProblemKind::BadSignature,
                    format!(
                        "the checkpoint at record {} is signed by key {}, which is not trusted",
                        cp.seq, cp.key_id
                    ),
                )),
            }
        }

        let mut walker = Walker {
            backend: &mut *backend,
            chain: chain.clone(),
            buf: VecDeque::new(),
            after: 0,
            done: false,
        };
        let mut expected = 1u64;
        let mut prev = GENESIS;
        let mut broken = false;
        let mut last_good_cp = 0u64;
        let mut summary = ChainReport {
            chain: chain.clone(),
            records: 0,
            head_seq: 0,
            checkpoints_ok: 0,
            payloads: 0,
        };
        while let Some(r) = walker.next()? {
            summary.records += 1;
            summary.head_seq = r.seq;
            total += 1;
            if total.is_multiple_of(10_000) {
                progress(total);
            }
            if r.payload.is_some() {
                summary.payloads += 1;
            }
            if !broken {
                let found = classify(&r, expected, &prev, &walker);
                if let Some((seq, kind, detail)) = found {
                    problems.push(problem(seq, kind, detail));
                    broken = true;
                }
            }
            if let Some(cps) = good.get(&r.seq) {
                for cp in cps {
                    if cp.head_bytes() == Some(r.hash) && (!broken || r.hash == r.compute_hash()) {
                        summary.checkpoints_ok += 1;
                        last_good_cp = r.seq;
                    } else {
                        problems.push(problem(
                            r.seq,
                            ProblemKind::CheckpointMismatch,
                            format!(
                                "the signed checkpoint at record {} does not match the chain: records {}..={} were rewritten",
                                r.seq,
                                last_good_cp + 1,
                                r.seq
                            ),
                        ));
                        broken = true;
                    }
                }
            }
            expected = r.seq + 1;
            prev = r.hash;
        }
        if let Some((&seq, _)) = good.range(summary.head_seq + 1..).next_back() {
            problems.push(problem(
                summary.head_seq + 1,
                ProblemKind::Truncated,
                format!(
                    "the chain ends at record {} but a signed checkpoint covers record {seq}: records {}..={seq} were removed",
                    summary.head_seq,
                    summary.head_seq + 1
                ),
            ));
        }
        problems.sort_by_key(|p| (p.kind == ProblemKind::BadSignature, p.seq));
        report.problems.extend(problems);
        report.chains.push(summary);
    }
    progress(total);
    Ok(report)
}

/// The first thing wrong with record `r`, given what the chain so far says it should be.
fn classify(r: &Stored, expected: u64, prev: &[u8; 32], walker: &Walker<'_>) -> Option<(u64, ProblemKind, String)> {
    if r.seq > expected {
        let what = if r.seq == expected + 1 {
            format!("record {expected} is missing")
        } else {
            format!("records {expected}..={} are missing", r.seq - 1)
        };
        return Some((expected, ProblemKind::Removed, what));
    }
    let own = r.compute_hash();
    if own != r.hash {
        if r.seq > 1 && with_seq(r, r.seq - 1) == r.hash {
            return Some((
                r.seq - 1,
                ProblemKind::Inserted,
                format!(
                    "record {} was not written by the ledger: it was inserted, and the records after it renumbered",
                    r.seq - 1
                ),
            ));
        }
        if with_seq(r, r.seq + 1) == r.hash {
            if walker.ahead_has_hash(&r.prev_hash) {
                return Some((
                    r.seq,
                    ProblemKind::Reordered,
                    format!(
                        "record {} was moved: it was written after a record that now follows it",
                        r.seq
                    ),
                ));
            }
            return Some((
                r.seq,
                ProblemKind::Removed,
                format!(
                    "the original record {} was removed and the records after it renumbered",
                    r.seq
                ),
            ));
        }
        return Some((
            r.seq,
            ProblemKind::Changed,
            format!("record {} was changed: its contents do not match its hash", r.seq),
        ));
    }
    if &r.prev_hash != prev {
        if walker.ahead_has_hash(&r.prev_hash) {
            return Some((
                r.seq,
                ProblemKind::Reordered,
                format!(
                    "record {} was moved: it was written after a record that now follows it",
                    r.seq
                ),
            ));
        }
        let seq = r.seq.saturating_sub(1).max(1);
        return Some((
            seq,
            ProblemKind::Changed,
            format!(
                "the chain breaks between records {seq} and {}: record {seq} was changed or replaced (its hash recomputed)",
                r.seq
            ),
        ));
    }
    match (&r.payload, &r.payload_digest) {
        (Some(p), Some(d)) if &payload_digest(p) != d => Some((
            r.seq,
            ProblemKind::PayloadChanged,
            format!("record {}'s encrypted payload was changed", r.seq),
        )),
        (Some(_), None) => Some((
            r.seq,
            ProblemKind::PayloadChanged,
            format!("record {} carries a payload it does not commit to", r.seq),
        )),
        _ => None,
    }
}
