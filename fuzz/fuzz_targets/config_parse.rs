//! Arbitrary text through the config parser and checker: errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = rampart_policy::Config::from_toml_str(text, "fuzz.toml");
    }
});
