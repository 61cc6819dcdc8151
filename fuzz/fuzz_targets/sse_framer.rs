//! Untrusted upstream bytes through the SSE framer, split at an arbitrary point: never a
//! panic, never more buffered than the cap, and the split never changes the events.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_gateway::sse::Framer;

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else { return };
    let at = usize::from(split).min(body.len());
    let (a, b) = body.split_at(at);
    let mut whole = Vec::new();
    let r1 = Framer::new(4096).push(body, &mut whole);
    let mut parts = Vec::new();
    let mut f = Framer::new(4096);
    let r2 = f.push(a, &mut parts).and_then(|()| f.push(b, &mut parts));
    if r1.is_ok() && r2.is_ok() {
        assert_eq!(whole, parts);
    }
});
