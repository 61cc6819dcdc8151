//! Untrusted text (prompts, documents, tool results, model answers) through every input and
//! output detector: never a panic, scores in [0, 1], every span inside the text and on
//! character boundaries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_scan::{OutputContext, Role, Scanner};

static SCANNER: std::sync::OnceLock<Scanner> = std::sync::OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Some((&role, body)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(body);
    let scanner = SCANNER.get_or_init(Scanner::new);
    let role = match role % 4 {
        0 => Role::System,
        1 => Role::User,
        2 => Role::Assistant,
        _ => Role::Tool,
    };
    let report = scanner.scan_input(&text, role);
    assert!((0.0..=1.0).contains(&report.injection_score));
    let ctx = OutputContext::new(Some("RAMPART-CANARY-0001".into()), Some("You are the support assistant."), Vec::new());
    let output = scanner.scan_output(&text, &ctx);
    for f in report.findings.iter().chain(output.iter()) {
        assert!((0.0..=1.0).contains(&f.score), "{f:?}");
        assert!(f.start <= f.end && f.end <= text.len(), "{f:?}");
        assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end), "{f:?}");
    }
});
