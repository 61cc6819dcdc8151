//! Untrusted bytes through the symbolic pickle VM and the policy: never a panic, never an
//! allocation driven by a length field, every reported offset inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_supply::pickle::policy::{findings, Allow};
use rampart_supply::pickle::vm::{scan, Options};

fuzz_target!(|data: &[u8]| {
    let trace = scan(data, 0, Options::default());
    let len = data.len() as u64;
    assert!(trace.end <= len);
    for i in &trace.imports {
        assert!(i.offset < len);
    }
    for c in &trace.calls {
        assert!(c.offset < len);
    }
    if let Some(b) = &trace.broken {
        assert!(b.offset <= len);
    }
    let _ = findings(&trace, "fuzz", &Allow::default());
});
