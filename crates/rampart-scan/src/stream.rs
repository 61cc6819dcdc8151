//! Incremental output scanning for streamed answers.
//!
//! Text is released only once it is more than `holdback` bytes behind the newest delta, so a
//! secret, an address or a leaked prompt is complete — and caught — before any of its bytes
//! leave. Each push rescans only the unreleased text plus a short tail of released text (for
//! findings that straddle the boundary), so the work per delta and the memory per stream are
//! bounded.

use crate::transform::{self, Edit, Pseudonyms};
use crate::{Finding, OutputContext, Scanner};

/// Released text kept as left context for the next scan.
const TAIL: usize = 512;
/// Held text is scanned again once this much more has arrived: each rescan covers the whole
/// window, so scanning every small delta would cost the window's length per delta.
const STEP: usize = 64;
/// Unreleased text is force-released (with its edits) beyond this.
const MAX_PENDING: usize = 64 * 1024;

/// What policy says about one output finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Let it through (perhaps recorded).
    Allow,
    /// Replace it with `[KIND]`.
    Redact,
    /// Stop the stream.
    Block,
}

/// One stream's scanning state.
#[derive(Debug)]
pub struct StreamScanner {
    pending: String,
    tail: String,
    holdback: usize,
    /// While a long run of token characters is being held, rescanning on every byte would
    /// make the stream quadratic; deltas that only extend the run are scanned again once
    /// the held text reaches this length (nothing is released in between).
    rescan_at: usize,
    /// Every finding acted on or allowed so far (for the audit record and metrics).
    pub findings: Vec<(Finding, Verdict)>,
}

/// Bytes that make up credentials, tokens and URLs.
fn token_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'+' | b'/' | b'=' | b'~' | b'%' | b':' | b'@')
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl StreamScanner {
    /// A scanner that holds back `holdback` bytes.
    pub fn new(holdback: usize) -> StreamScanner {
        StreamScanner {
            pending: String::new(),
            tail: String::new(),
            holdback,
            rescan_at: 0,
            findings: Vec::new(),
        }
    }

    /// Feeds a delta; returns the text that may be sent now, or the finding that blocks.
    pub fn push(
        &mut self,
        scanner: &Scanner,
        ctx: &OutputContext,
        delta: &str,
        decide: &dyn Fn(&Finding) -> Verdict,
    ) -> Result<String, Finding> {
        self.pending.push_str(delta);
        // Nothing could be released yet: scanning now would only be repeated later. Text is
        // scanned in steps of `STEP` bytes past the hold-back, and always at the end.
        if self.pending.len() < self.holdback + STEP {
            return Ok(String::new());
        }
        if self.pending.len() < self.rescan_at && delta.bytes().all(token_byte) {
            return Ok(String::new());
        }
        self.step(scanner, ctx, decide, false)
    }

    /// Ends the stream; returns the rest.
    pub fn finish(
        &mut self,
        scanner: &Scanner,
        ctx: &OutputContext,
        decide: &dyn Fn(&Finding) -> Verdict,
    ) -> Result<String, Finding> {
        self.step(scanner, ctx, decide, true)
    }

    fn step(
        &mut self,
        scanner: &Scanner,
        ctx: &OutputContext,
        decide: &dyn Fn(&Finding) -> Verdict,
        last: bool,
    ) -> Result<String, Finding> {
        if self.pending.is_empty() {
            return Ok(String::new());
        }
        let offset = self.tail.len();
        let window = format!("{}{}", self.tail, self.pending);
        let found: Vec<Finding> = scanner
            .scan_output(&window, ctx)
            .into_iter()
            .filter(|f| f.end > offset)
            .collect();
        let mut release = if last {
            self.pending.len()
        } else if self.pending.len() > MAX_PENDING {
            floor_boundary(
                &self.pending,
                self.pending.len() - self.holdback.min(self.pending.len()),
            )
        } else {
            floor_boundary(&self.pending, self.pending.len().saturating_sub(self.holdback))
        };
        let mut edits: Vec<(Finding, Verdict)> = Vec::new();
        for f in found {
            let verdict = decide(&f);
            if verdict == Verdict::Block {
                self.findings.push((f.clone(), verdict));
                return Err(Finding {
                    start: f.start.saturating_sub(offset),
                    end: f.end - offset,
                    ..f
                });
            }
            edits.push((f, verdict));
        }
        // Never cut a finding in two: release up to its start and keep it whole for later.
        for (f, _) in &edits {
            let (s, e) = (f.start.saturating_sub(offset), f.end - offset);
            if s < release && release < e && !last && self.pending.len() <= MAX_PENDING {
                release = s;
            }
        }
        // Nor a run of token characters: secrets are such runs, and several kinds (JWTs,
        // OAuth tokens, connection strings) have no upper length, so a hold-back of any size
        // could release the start of one before its end arrives and makes it recognisable.
        // The run is held whole until it ends (bounded by `MAX_PENDING`).
        if !last && self.pending.len() <= MAX_PENDING {
            let b = self.pending.as_bytes();
            self.rescan_at = 0;
            if release > 0 && release < b.len() && token_byte(b[release - 1]) && token_byte(b[release]) {
                release = b[..release].iter().rposition(|&c| !token_byte(c)).map_or(0, |i| i + 1);
                self.rescan_at = b.len() - release + 256;
            }
        }
        // Nor a placeholder that may be restored later.
        if !last {
            if let Some(lt) = self.pending[..release].rfind('<') {
                if release - lt < 32 && !self.pending[lt..release].contains('>') {
                    release = lt;
                }
            }
        }
        let released_original = self.pending[..release].to_owned();
        let mut to_apply: Vec<(Finding, Edit)> = Vec::new();
        for (f, verdict) in edits {
            let (s, e) = (f.start.saturating_sub(offset), (f.end - offset).min(release));
            if e <= s || s >= release {
                continue;
            }
            if verdict == Verdict::Redact {
                to_apply.push((
                    Finding {
                        start: s,
                        end: e,
                        ..f.clone()
                    },
                    Edit::Redact,
                ));
            }
            self.findings.push((f, verdict));
        }
        let refs: Vec<(&Finding, Edit)> = to_apply.iter().map(|(f, e)| (f, *e)).collect();
        let out = transform::rewrite(&released_original, &refs, &mut Pseudonyms::default());
        self.pending.drain(..release);
        self.tail.push_str(&released_original);
        if self.tail.len() > TAIL {
            let cut = floor_boundary(&self.tail, self.tail.len() - TAIL);
            // Start the tail at a word boundary so the overlap detector sees whole words.
            let cut = self.tail[cut..].find(' ').map_or(cut, |i| cut + i);
            self.tail.drain(..cut);
        }
        Ok(out)
    }

    /// Bytes currently held back.
    pub fn held(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Detector;

    fn policy(f: &Finding) -> Verdict {
        match f.detector {
            Detector::Secret | Detector::SystemPromptLeak => Verdict::Block,
            Detector::Pii => Verdict::Redact,
            _ => Verdict::Allow,
        }
    }

    fn run(chunks: &[&str], holdback: usize) -> (String, Option<Finding>) {
        let scanner = Scanner::new();
        let ctx = OutputContext::default();
        let mut s = StreamScanner::new(holdback);
        let mut out = String::new();
        for c in chunks {
            match s.push(&scanner, &ctx, c, &policy) {
                Ok(t) => out.push_str(&t),
                Err(f) => return (out, Some(f)),
            }
        }
        match s.finish(&scanner, &ctx, &policy) {
            Ok(t) => out.push_str(&t),
            Err(f) => return (out, Some(f)),
        }
        (out, None)
    }

    #[test]
    fn email_split_across_deltas_is_redacted() {
        let chunks = [
            "Write to jo",
            "hn.smi",
            "th@exam",
            "ple.com for help",
            ". Thanks, have a nice day!",
        ];
        let (out, blocked) = run(&chunks, 64);
        assert!(blocked.is_none());
        assert_eq!(out, "Write to [EMAIL] for help. Thanks, have a nice day!");
    }

    #[test]
    fn secret_is_blocked_before_any_byte_leaves() {
        let key = "AKIAZ3MJQ7XKPLW4RT5B";
        let mut chunks: Vec<String> = vec!["Here is the key: ".into()];
        chunks.extend(key.chars().map(|c| c.to_string()));
        chunks.push(" — keep it safe.".into());
        let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let (out, blocked) = run(&refs, 64);
        assert_eq!(blocked.unwrap().kind, "aws_access_key_id");
        assert!(!out.contains("AKIA"), "{out}");
    }

    /// Issue 13: a token longer than the hold-back, streamed a byte at a time, leaks nothing.
    #[test]
    fn long_tokens_are_held_until_they_end() {
        for payload in [400, 4000] {
            let jwt = format!(
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ{}.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
                "a".repeat(payload)
            );
            let text = format!("Your session token is {jwt} and it expires soon.");
            let chunks: Vec<String> = text.chars().map(String::from).collect();
            let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
            let (out, blocked) = run(&refs, 256);
            assert_eq!(blocked.map(|f| f.kind), Some("jwt".into()), "{payload}");
            assert!(!out.contains("eyJ"), "{payload}: leaked {out:?}");
        }
    }

    #[test]
    fn clean_text_flows_with_bounded_lag() {
        let text = "word ".repeat(400);
        let chunks: Vec<&str> = text
            .as_bytes()
            .chunks(7)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let scanner = Scanner::new();
        let ctx = OutputContext::default();
        let mut s = StreamScanner::new(64);
        let mut out = String::new();
        for c in &chunks {
            out.push_str(&s.push(&scanner, &ctx, c, &policy).unwrap());
            assert!(s.held() <= 64 + STEP + 7);
        }
        out.push_str(&s.finish(&scanner, &ctx, &policy).unwrap());
        assert_eq!(out, text);
    }
}
