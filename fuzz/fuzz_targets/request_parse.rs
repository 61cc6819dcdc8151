//! Untrusted request bodies through the OpenAI request parser: never a panic, always a 400.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rampart_gateway::openai::{Endpoint, InferenceRequest};
use rampart_gateway::tokens::Tokenizer;

static TOKENIZER: OnceLock<Option<Tokenizer>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Some(tok) = TOKENIZER.get_or_init(|| Tokenizer::load().ok()) else { return };
    for endpoint in [Endpoint::Chat, Endpoint::Completions, Endpoint::Embeddings] {
        match InferenceRequest::parse(endpoint, data, tok) {
            Ok(mut req) => {
                req.cap_max_tokens(16);
                let _ = req.upstream_body("m");
            }
            Err(e) => assert_eq!(e.status().as_u16(), 400),
        }
    }
});
