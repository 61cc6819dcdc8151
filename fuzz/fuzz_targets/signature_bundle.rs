//! A model signature file is untrusted until verified: the bundle parser, the envelope decoder
//! and the statement reader must refuse any bytes cleanly, and a payload they accept must never
//! name a path that leaves the model directory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_supply::signing::bundle::Bundle;
use rampart_supply::signing::statement;

fuzz_target!(|data: &[u8]| {
    if let Ok(bundle) = Bundle::from_json(data) {
        let _ = bundle.certificates();
        if let Ok(opened) = bundle.envelope() {
            let _ = statement::from_payload(&opened.payload);
        }
    }
    if let Ok(manifest) = statement::from_payload(data) {
        for item in manifest.items.keys() {
            assert!(!item.path.starts_with('/') && !item.path.split('/').any(|c| c == ".." || c.is_empty()));
        }
    }
});
