//! A model answer split into arbitrary deltas through the streaming output scanner with a
//! small hold-back: never a panic, and when nothing is redacted or blocked, the text released
//! is exactly the text received, in order (hold-back loses and repeats nothing).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_scan::stream::{StreamScanner, Verdict};
use rampart_scan::{OutputContext, Scanner};

static SCANNER: std::sync::OnceLock<Scanner> = std::sync::OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Some((&cut, body)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(body).into_owned();
    let scanner = SCANNER.get_or_init(Scanner::new);
    let ctx = OutputContext::default();
    let allow = |_: &rampart_scan::Finding| Verdict::Allow;
    let mut s = StreamScanner::new(64);
    let step = usize::from(cut).max(1);
    let mut out = String::new();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let mut at = step.min(rest.len());
        while !rest.is_char_boundary(at) {
            at += 1;
        }
        let (delta, tail) = rest.split_at(at);
        match s.push(scanner, &ctx, delta, &allow) {
            Ok(released) => out.push_str(&released),
            Err(f) => panic!("allow-all policy blocked: {f:?}"),
        }
        rest = tail;
    }
    match s.finish(scanner, &ctx, &allow) {
        Ok(released) => out.push_str(&released),
        Err(f) => panic!("allow-all policy blocked: {f:?}"),
    }
    assert_eq!(out, text);
});
