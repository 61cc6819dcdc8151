//! Typed, borrowing views of what upstreams send back: just the fields Rampart checks and
//! charges for. Deserializing into these skips everything else without building a JSON tree,
//! which keeps the per-event cost of streaming low.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::Deserialize;

/// Token counts an upstream reports.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Usage {
    #[serde(default, alias = "input_tokens")]
    pub prompt_tokens: Option<u64>,
    #[serde(default, alias = "output_tokens")]
    pub completion_tokens: Option<u64>,
    /// Where the provider says how many prompt tokens came from its cache (billed lower).
    #[serde(default, alias = "input_tokens_details")]
    pub prompt_tokens_details: Option<TokenDetails>,
}

impl Usage {
    /// Prompt tokens served from the provider's cache.
    pub fn cached(&self) -> u64 {
        self.prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0)
    }
}

/// `prompt_tokens_details` / `input_tokens_details`.
#[derive(Debug, Default, Deserialize)]
pub(super) struct TokenDetails {
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

/// A non-streamed answer: `choices` (chat, completions), `data` (embeddings) or `output`
/// (responses), and usage.
#[derive(Debug, Deserialize)]
pub(super) struct Answer {
    #[serde(default)]
    pub choices: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    pub data: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    pub output: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// One streamed chunk.
#[derive(Debug, Deserialize)]
pub(super) struct Chunk<'a> {
    #[serde(default, borrow)]
    pub choices: Option<Vec<Choice<'a>>>,
    #[serde(default)]
    pub usage: Option<Usage>,
    /// Kept whole: whether it is an error at all depends on its value (`false` is not).
    #[serde(default)]
    pub error: Option<serde_json::Value>,
}

impl Chunk<'_> {
    /// Whether the event reports an error, as the SDKs read it: an `error` that is an
    /// object, a non-empty string or `true`. The message, if it has one.
    pub fn error_message(&self) -> Option<Option<&str>> {
        match self.error.as_ref()? {
            serde_json::Value::Object(o) => Some(o.get("message").and_then(serde_json::Value::as_str)),
            serde_json::Value::String(s) if !s.is_empty() => Some(Some(s)),
            serde_json::Value::Bool(true) => Some(None),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct Choice<'a> {
    #[serde(default, borrow)]
    pub text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub delta: Option<Delta<'a>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Delta<'a> {
    #[serde(default, borrow)]
    pub content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub tool_calls: Option<Vec<ToolCall<'a>>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ToolCall<'a> {
    #[serde(default, borrow)]
    pub function: Option<Function<'a>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Function<'a> {
    #[serde(default, borrow)]
    pub arguments: Option<Cow<'a, str>>,
}

/// Parses a JSON object (not an array, which serde would also map onto a struct).
pub(super) fn object<'a, T: Deserialize<'a>>(text: &'a str) -> Option<T> {
    if !text.trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str(text).ok()
}

impl Chunk<'_> {
    /// Bytes of generated text in this chunk (content, completion text, tool arguments).
    pub fn text_bytes(&self) -> usize {
        let mut n = 0;
        for c in self.choices.iter().flatten() {
            n += c.text.as_deref().map_or(0, str::len);
            if let Some(d) = &c.delta {
                n += d.content.as_deref().map_or(0, str::len);
                for call in d.tool_calls.iter().flatten() {
                    n += call
                        .function
                        .as_ref()
                        .and_then(|f| f.arguments.as_deref())
                        .map_or(0, str::len);
                }
            }
        }
        n
    }

    /// A chunk that carries only usage (`choices: []`), as OpenAI sends last.
    pub fn usage_only(&self) -> bool {
        self.usage.is_some() && self.choices.as_ref().is_some_and(Vec::is_empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_views_read_text_and_usage() {
        let c: Chunk = object(r#"{"choices":[{"delta":{"content":"h\u00e9","tool_calls":[{"function":{"arguments":"{}"}}]}},{"text":"abc"}],"x":[1,{"y":2}]}"#).unwrap();
        assert_eq!(c.text_bytes(), 3 + 2 + 3);
        let u: Chunk =
            object(r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":9,"details":{}}}"#).unwrap();
        assert!(u.usage_only());
        assert_eq!(u.usage.unwrap().completion_tokens, Some(9));
        assert!(object::<Chunk>("[1,2]").is_none());
        assert!(object::<Chunk>(r#"{"choices":[{"delta":{"content":5}}]}"#).is_none());
    }
}
