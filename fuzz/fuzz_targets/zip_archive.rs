//! Untrusted bytes through the lenient zip indexer: never a panic, and every entry it returns
//! can be located (offsets are numbers, not trust).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_supply::archive::zip::Archive;

fuzz_target!(|data: &[u8]| {
    let mut cur = std::io::Cursor::new(data);
    if let Ok(archive) = Archive::open(&mut cur, data.len() as u64) {
        for e in &archive.entries {
            assert!(e.header_offset <= data.len() as u64 || !e.hidden);
        }
    }
});
