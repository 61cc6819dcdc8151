//! Untrusted bytes as a model file: format sniffing, zip (lenient, nested), tar, gzip/bz2/xz/
//! lzma/lz4/zlib, safetensors, GGUF, npy, Keras. Never a panic; a file that is not plainly
//! data and fails to parse must carry a finding or an error, never pass silently as a pickle.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_supply::scan::{Options, Scanner};

static SCANNER: std::sync::OnceLock<Scanner> = std::sync::OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let scanner = SCANNER.get_or_init(|| Scanner::new(Options { max_expanded: 64 << 20, ..Options::default() }));
    let report = scanner.scan_bytes("fuzz.bin", data);
    if data.len() >= 2 && data[0] == 0x80 && data[1] <= 5 {
        // A stream announcing a pickle protocol is reported as a pickle or as a container.
        assert!(!report.formats.is_empty());
    }
});
