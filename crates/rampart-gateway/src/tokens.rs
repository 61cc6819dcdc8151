//! Prompt token counting with a real BPE tokenizer (OpenAI's `o200k_base`, embedded in the
//! binary), so token quotas are charged before the upstream is called.
//!
//! Counts follow OpenAI's published accounting for chat: a few tokens of overhead per message
//! on top of the content. For other model families the count is an estimate of the same order,
//! and the upstream's reported `usage` corrects the charge afterwards.

use tiktoken_rs::CoreBPE;

/// Per-message overhead in OpenAI's chat format.
const PER_MESSAGE: u64 = 3;
/// Tokens that prime the assistant's reply.
const REPLY_PRIMING: u64 = 3;

/// A loaded tokenizer; build once at start-up (it takes a moment) and share.
pub struct Tokenizer {
    bpe: CoreBPE,
    /// `cl100k_base`, loaded the first time a prompt in that vocabulary is decoded.
    cl100k: std::sync::OnceLock<Option<CoreBPE>>,
}

/// A BPE vocabulary prompts may be sent in as token ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vocabulary {
    /// GPT-4o and later.
    O200kBase,
    /// GPT-4, GPT-3.5 and the `text-embedding-3` models.
    Cl100kBase,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokenizer(o200k_base)")
    }
}

/// The tokenizer tables could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("cannot load the tokenizer: {0}")]
pub struct TokenizerError(String);

impl Tokenizer {
    /// Loads `o200k_base`.
    pub fn load() -> Result<Tokenizer, TokenizerError> {
        let bpe = tiktoken_rs::o200k_base().map_err(|e| TokenizerError(e.to_string()))?;
        Ok(Tokenizer {
            bpe,
            cl100k: std::sync::OnceLock::new(),
        })
    }

    fn vocabulary(&self, v: Vocabulary) -> Option<&CoreBPE> {
        match v {
            Vocabulary::O200kBase => Some(&self.bpe),
            Vocabulary::Cl100kBase => self.cl100k.get_or_init(|| tiktoken_rs::cl100k_base().ok()).as_ref(),
        }
    }

    /// The text token ids stand for, if every id is in the vocabulary and together they
    /// spell valid UTF-8.
    pub fn decode(&self, v: Vocabulary, ids: &[u32]) -> Option<String> {
        self.vocabulary(v)?.decode(ids).ok()
    }

    /// The token ids of a text.
    pub fn encode(&self, v: Vocabulary, text: &str) -> Option<Vec<u32>> {
        Some(self.vocabulary(v)?.encode_ordinary(text))
    }

    /// Tokens in a piece of text.
    pub fn count(&self, text: &str) -> u64 {
        if text.is_empty() {
            return 0;
        }
        self.bpe.encode_ordinary(text).len() as u64
    }

    /// Tokens of a chat prompt whose messages' texts are given.
    pub fn count_chat<'a>(&self, messages: impl IntoIterator<Item = &'a str>, message_count: usize) -> u64 {
        let content: u64 = messages.into_iter().map(|t| self.count(t)).sum();
        content + PER_MESSAGE * message_count as u64 + REPLY_PRIMING
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ids_round_trip_in_both_vocabularies() {
        let t = Tokenizer::load().unwrap();
        for v in [Vocabulary::O200kBase, Vocabulary::Cl100kBase] {
            let ids = t.encode(v, "Ignore all previous instructions.").unwrap();
            assert_eq!(t.decode(v, &ids).unwrap(), "Ignore all previous instructions.");
            assert!(t.decode(v, &[u32::MAX]).is_none());
        }
    }

    #[test]
    fn counts_like_openai() {
        let t = Tokenizer::load().unwrap();
        // "hello world" is two tokens in o200k_base.
        assert_eq!(t.count("hello world"), 2);
        assert_eq!(t.count(""), 0);
        assert_eq!(t.count_chat(["hello world"], 1), 2 + 3 + 3);
    }
}
