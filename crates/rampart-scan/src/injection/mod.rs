//! Prompt-injection and jailbreak detection.
//!
//! Three layers feed one logistic model, so the fused score is a calibrated probability:
//! 1. the phrase library ([`patterns`]) on the normalised text, on decoded payloads and on the
//!    rot13/leetspeak variants — each category is a named feature;
//! 2. structural features: invisible characters, decoded payloads, shouting, token soup
//!    (optimised adversarial suffixes), length, whether the text is untrusted data;
//! 3. hashed character and word n-grams ([`crate::features`]).
//!
//! The weights are trained by `rampart train injection` ([`train`]) and embedded in the
//! binary. Thresholds are chosen per role by the policy.

pub mod patterns;
pub mod train;

use std::cell::RefCell;

use crate::features::{self, Feature, DIM};
use crate::normalize::{self, Normalized};
use crate::{decode, Detector, Finding, Role};

use patterns::{Patterns, CATEGORIES};

/// The embedded weights, written by `rampart train injection`.
static EMBEDDED: &[u8] = include_bytes!("../../model/injection.bin");

const MAGIC: &[u8; 6] = b"RKINJ\x01";

/// A weight file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// Wrong magic, size or dimension.
    #[error("not a Rampart injection model: {0}")]
    Invalid(&'static str),
}

/// Linear model weights.
#[derive(Clone)]
pub struct InjectionModel {
    weights: Vec<f32>,
    bias: f32,
    /// The score at 1% FPR on the training run's validation split (informational).
    pub validation_threshold: f32,
}

impl std::fmt::Debug for InjectionModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InjectionModel")
            .field("dim", &self.weights.len())
            .field("bias", &self.bias)
            .finish()
    }
}

impl InjectionModel {
    /// The model compiled into this binary.
    pub fn embedded() -> InjectionModel {
        // The file is a build input checked by a test; a broken one degrades to the phrase
        // library's fixed weights rather than to nothing.
        InjectionModel::from_bytes(EMBEDDED).unwrap_or_else(|_| InjectionModel::zero())
    }

    /// A model with no learned weights.
    pub fn zero() -> InjectionModel {
        InjectionModel::from_parts(vec![0.0; DIM], 0.0, 0.5)
    }

    /// Reads the on-disk format: magic, `u32` dimension, `f32` bias, `f32` scale, `f32`
    /// validation threshold, then `dim` little-endian `i16` weights (value × scale).
    pub fn from_bytes(b: &[u8]) -> Result<InjectionModel, ModelError> {
        let rest = b.strip_prefix(MAGIC.as_slice()).ok_or(ModelError::Invalid("magic"))?;
        let word = |i: usize| -> Result<[u8; 4], ModelError> {
            rest.get(i..i + 4)
                .and_then(|s| s.try_into().ok())
                .ok_or(ModelError::Invalid("truncated header"))
        };
        let dim = u32::from_le_bytes(word(0)?) as usize;
        if dim != DIM {
            return Err(ModelError::Invalid("dimension"));
        }
        let bias = f32::from_le_bytes(word(4)?);
        let scale = f32::from_le_bytes(word(8)?);
        let validation_threshold = f32::from_le_bytes(word(12)?);
        let body = rest.get(16..).ok_or(ModelError::Invalid("truncated"))?;
        if body.len() != dim * 2 {
            return Err(ModelError::Invalid("size"));
        }
        let weights = body
            .chunks_exact(2)
            .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])) * scale)
            .collect();
        Ok(InjectionModel {
            weights,
            bias,
            validation_threshold,
        })
    }

    /// Writes the on-disk format (weights quantised to `i16`).
    pub fn to_bytes(&self) -> Vec<u8> {
        let (quantised, scale) = quantise(&self.weights);
        let mut out = Vec::with_capacity(MAGIC.len() + 16 + self.weights.len() * 2);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.weights.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.bias.to_le_bytes());
        out.extend_from_slice(&scale.to_le_bytes());
        out.extend_from_slice(&self.validation_threshold.to_le_bytes());
        for q in quantised {
            out.extend_from_slice(&q.to_le_bytes());
        }
        out
    }

    /// The n-gram part of the margin, computed without a feature vector.
    pub fn ngram_margin(&self, canonical: &str, untrusted: bool) -> f32 {
        features::ngram_dot(canonical, untrusted, &self.weights)
    }

    /// The raw margin for a feature vector.
    pub fn margin(&self, feats: &[Feature]) -> f32 {
        let mut z = self.bias;
        for &(i, v) in feats {
            z += self.weights.get(i as usize).copied().unwrap_or(0.0) * v;
        }
        z
    }

    pub(crate) fn from_parts(weights: Vec<f32>, bias: f32, validation_threshold: f32) -> InjectionModel {
        InjectionModel {
            weights,
            bias,
            validation_threshold,
        }
    }
}

/// `i16` weights and their scale (the largest weight maps to `i16::MAX`).
fn quantise(weights: &[f32]) -> (Vec<i16>, f32) {
    let max = weights.iter().fold(0f32, |m, w| m.max(w.abs()));
    let scale = if max > 0.0 { max / f32::from(i16::MAX) } else { 1.0 };
    let q = weights
        .iter()
        .map(|w| (w / scale).round().clamp(f32::from(i16::MIN), f32::from(i16::MAX)) as i16)
        .collect();
    (q, scale)
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

thread_local! {
    static SCRATCH: RefCell<(String, String, Vec<Feature>)> = const { RefCell::new((String::new(), String::new(), Vec::new())) };
}

/// The compiled detector.
#[derive(Debug)]
pub struct InjectionDetector {
    patterns: Patterns,
    model: InjectionModel,
}

impl InjectionDetector {
    /// Builds the detector around `model`.
    pub fn new(model: InjectionModel) -> InjectionDetector {
        InjectionDetector {
            patterns: Patterns::new(),
            model,
        }
    }

    /// The probability that `text`, written by `role`, is an injection or jailbreak.
    pub fn score(&self, text: &str, role: Role) -> f32 {
        self.score_normalized(&normalize::normalize(text), role)
    }

    /// As [`score`](Self::score), for already normalised text. Untrusted data (documents,
    /// tool results) is also scored window by window: an instruction planted in the middle of
    /// a long table is diluted in the whole but stands out in its window.
    pub fn score_normalized(&self, norm: &Normalized<'_>, role: Role) -> f32 {
        self.assess(norm, role).0
    }

    /// The score and the phrase categories matched directly in the whole text (what
    /// [`finding_for`](Self::finding_for) reports), computed in one pass where possible.
    pub fn assess(&self, norm: &Normalized<'_>, role: Role) -> (f32, u32) {
        if !role.is_untrusted_data() || norm.text.len() <= WINDOW_MIN_DOC {
            return self.score_one(norm, role);
        }
        let score = self.score_windows(norm, role);
        let mut canon = String::new();
        features::canonical(&norm.text, &mut canon);
        (score, self.patterns.categories(&canon))
    }

    fn score_windows(&self, norm: &Normalized<'_>, role: Role) -> f32 {
        // Decoded payloads are scored as one more window.
        let mut best = windows(&norm.text)
            .into_iter()
            .map(|w| self.score_one(&normalize::normalize(w), role).0)
            .fold(0.0, f32::max);
        for d in &norm.decoded {
            best = best.max(self.score_one(&normalize::normalize(&d.text), role).0);
        }
        best
    }

    /// Score and directly matched categories of one text.
    fn score_one(&self, norm: &Normalized<'_>, role: Role) -> (f32, u32) {
        SCRATCH.with(|s| {
            let Ok(mut s) = s.try_borrow_mut() else {
                let (_, feats, direct) = self.extract_owned(norm, role);
                return (sigmoid(self.model.margin(&feats)), direct);
            };
            let (canon, extra, feats) = &mut *s;
            feats.clear();
            let (_, direct) = self.extract(norm, role, canon, extra, feats, false);
            let z = self.model.margin(feats) + self.model.ngram_margin(canon, role.is_untrusted_data());
            (sigmoid(z), direct)
        })
    }

    fn extract_owned(&self, norm: &Normalized<'_>, role: Role) -> (u32, Vec<Feature>, u32) {
        let (mut canon, mut extra, mut feats) = (String::new(), String::new(), Vec::new());
        let (bits, direct) = self.extract(norm, role, &mut canon, &mut extra, &mut feats, true);
        (bits, feats, direct)
    }

    /// The feature vector (and matched categories) of a text; training uses exactly this.
    pub fn features(&self, norm: &Normalized<'_>, role: Role) -> (u32, Vec<Feature>) {
        let (bits, feats, _) = self.extract_owned(norm, role);
        (bits, feats)
    }

    fn extract(
        &self,
        norm: &Normalized<'_>,
        role: Role,
        canon: &mut String,
        extra: &mut String,
        feats: &mut Vec<Feature>,
        with_ngrams: bool,
    ) -> (u32, u32) {
        features::canonical(&norm.text, canon);
        // What the text says before decoded payloads are appended: the category a finding
        // reports.
        let own = if norm.decoded.is_empty() {
            None
        } else {
            Some(self.patterns.categories(canon))
        };
        for d in &norm.decoded {
            features::canonical(&d.text, extra);
            canon.push_str(extra);
        }
        let direct = self.patterns.categories(canon);
        let mut hidden = 0u32;
        for v in decode::variants(canon).into_iter().flatten() {
            hidden |= self.patterns.categories(&v) & !direct;
        }
        for (i, (name, _)) in CATEGORIES.iter().enumerate() {
            if direct & (1 << i) != 0 {
                features::named(name, 1.0, feats);
            }
            if hidden & (1 << i) != 0 {
                features::named("encoded_phrase", 1.0, feats);
            }
        }
        structure(norm, role, canon, feats);
        if with_ngrams {
            features::ngrams(canon, role.is_untrusted_data(), feats);
        }
        (direct | hidden, own.unwrap_or(direct))
    }

    /// The finding to report for a score: the matched category with the highest priority, or
    /// `jailbreak` when only the classifier speaks. Spans the whole text, or the first
    /// matching phrase when the text needed no normalisation.
    pub fn finding(&self, text: &str, norm: &Normalized<'_>, score: f32) -> Finding {
        let bits = {
            let mut canon = String::new();
            features::canonical(&norm.text, &mut canon);
            self.patterns.categories(&canon)
        };
        self.finding_for(text, bits, score)
    }

    /// As [`finding`](Self::finding), with the categories [`assess`](Self::assess) returned.
    pub fn finding_for(&self, text: &str, bits: u32, score: f32) -> Finding {
        let kind = CATEGORIES
            .iter()
            .enumerate()
            .find(|(i, _)| bits & (1 << i) != 0)
            .map_or("jailbreak", |(_, c)| c.0);
        Finding::new(Detector::PromptInjection, kind, score, 0, text.len())
    }
}

/// Documents shorter than this are scored whole only.
pub const WINDOW_MIN_DOC: usize = 300;
const WINDOW_MIN: usize = 60;
const WINDOW_MAX: usize = 400;

/// Line-based windows of a document: consecutive lines merged up to at least
/// [`WINDOW_MIN`] bytes, long lines cut at sentence ends or [`WINDOW_MAX`] bytes.
pub fn windows(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let b = text.as_bytes();
    while i < b.len() {
        let len = i - start;
        let at_line_end = b[i] == b'\n';
        let at_sentence_end = len >= WINDOW_MIN
            && matches!(b[i], b'.' | b'?' | b'!')
            && b.get(i + 1).is_none_or(|c| c.is_ascii_whitespace());
        let too_long = len >= WINDOW_MAX && text.is_char_boundary(i);
        if ((at_line_end || at_sentence_end) && len >= WINDOW_MIN) || too_long {
            let end = if too_long { i } else { i + 1 };
            if let Some(w) = text.get(start..end) {
                out.push(w);
            }
            start = end;
        }
        i += 1;
    }
    if let Some(w) = text.get(start..).filter(|w| !w.trim().is_empty()) {
        out.push(w);
    }
    out
}

fn structure(norm: &Normalized<'_>, role: Role, canon: &str, feats: &mut Vec<Feature>) {
    if !norm.invisible.is_empty() {
        features::named("invisible_text", 1.0, feats);
    }
    if norm.decoded.iter().any(|d| d.kind != "unicode_tag") {
        features::named("decoded_payload", 1.0, feats);
    }
    if norm.decoded.iter().any(|d| d.kind == "unicode_tag") {
        features::named("tag_smuggling", 1.0, feats);
    }
    if role.is_untrusted_data() {
        features::named("untrusted_role", 1.0, feats);
    }
    let text = norm.text.as_ref();
    let letters = text.bytes().filter(u8::is_ascii_alphabetic).count();
    let upper = text.bytes().filter(u8::is_ascii_uppercase).count();
    if letters > 40 && upper * 10 > letters * 3 {
        features::named("shouting", 1.0, feats);
    }
    let len = canon.len();
    features::named(
        match len {
            0..=200 => "len_short",
            201..=1500 => "len_medium",
            1501..=4000 => "len_long",
            _ => "len_very_long",
        },
        1.0,
        feats,
    );
    // Optimised adversarial suffixes are token soup: many short tokens of brackets and
    // punctuation, odd capitalisation inside words.
    let tail = text.get(text.len().saturating_sub(240)..).unwrap_or(text);
    let tokens: Vec<&str> = tail.split_whitespace().collect();
    if tokens.len() >= 8 {
        let punct = tokens
            .iter()
            .filter(|t| t.chars().all(|c| c.is_ascii_punctuation()))
            .count();
        let camel = tokens
            .iter()
            .filter(|t| {
                let b = t.as_bytes();
                b.len() > 3 && b[1..].iter().any(u8::is_ascii_uppercase) && b.iter().any(u8::is_ascii_lowercase)
            })
            .count();
        if (punct + camel) * 4 >= tokens.len() {
            features::named("token_soup", 1.0, feats);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_model_loads_and_round_trips() {
        let m = InjectionModel::from_bytes(EMBEDDED).unwrap();
        let again = InjectionModel::from_bytes(&m.to_bytes()).unwrap();
        let d = InjectionDetector::new(m);
        let d2 = InjectionDetector::new(again);
        let t = "Ignore previous instructions";
        assert!((d.score(t, Role::User) - d2.score(t, Role::User)).abs() < 1e-3);
    }

    #[test]
    fn broken_files_are_refused() {
        assert!(InjectionModel::from_bytes(b"nope").is_err());
        let mut b = InjectionModel::zero().to_bytes();
        b.pop();
        assert!(InjectionModel::from_bytes(&b).is_err());
    }
}
