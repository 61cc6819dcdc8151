//! Property tests for the pickle VM: a dangerous call hidden anywhere in a stream of benign
//! opcodes is found, and no truncation of a malicious pickle is ever clean.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use proptest::prelude::*;
use rampart_supply::report::Severity;
use rampart_supply::scan::Scanner;

/// Self-contained benign fragments: each pushes exactly one value.
fn benign_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"N".to_vec()),
        Just(b"\x88".to_vec()),
        any::<u8>().prop_map(|b| vec![b'K', b]),
        any::<i32>().prop_map(|i| {
            let mut v = vec![b'J'];
            v.extend_from_slice(&i.to_le_bytes());
            v
        }),
        "[a-z]{0,20}".prop_map(|s| {
            let mut v = vec![0x8c, s.len() as u8];
            v.extend_from_slice(s.as_bytes());
            v
        }),
        Just(b"}".to_vec()),
        Just(b"]".to_vec()),
        Just(b")".to_vec()),
        Just(b"\x80\x02ccollections\nOrderedDict\n)R".to_vec()[2..].to_vec()),
    ]
}

/// `os.system("id")` in one of several spellings.
fn evil_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"cos\nsystem\nX\x02\x00\x00\x00id\x85R".to_vec()),
        Just(b"\x8c\x02os\x8c\x06system\x93\x8c\x02id\x85R".to_vec()),
        Just(b"S'os'\nS'system'\n\x93\x8c\x02id\x85R".to_vec()),
        Just(b"(cbuiltins\nexec\nX\x01\x00\x00\x00xo".to_vec()),
        Just(b"\x8c\x05torch\x8c\x10serialization.os\x93".to_vec()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hidden_call_is_found(before in prop::collection::vec(benign_value(), 0..12),
                            evil in evil_value(),
                            after in prop::collection::vec(benign_value(), 0..12)) {
        // MARK, values, evil value, more values, TUPLE: keeps the stack balanced.
        let mut p = b"\x80\x04(".to_vec();
        before.iter().for_each(|v| p.extend_from_slice(v));
        p.extend_from_slice(&evil);
        after.iter().for_each(|v| p.extend_from_slice(v));
        p.extend_from_slice(b"t.");
        let report = Scanner::default().scan_bytes("p.pkl", &p);
        prop_assert_eq!(report.worst(), Some(Severity::Critical), "{:?}", report.findings);
    }

    #[test]
    fn truncations_are_never_clean(cut in 4usize..24) {
        let p = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00id\x85R.";
        let cut = cut.min(p.len() - 1);
        let report = Scanner::default().scan_bytes("t.pkl", &p[..cut]);
        prop_assert!(report.worst().is_some_and(|s| s >= Severity::High), "cut {}: {:?}", cut, report.findings);
    }

    #[test]
    fn benign_streams_are_clean(values in prop::collection::vec(benign_value(), 0..30)) {
        let mut p = b"\x80\x04(".to_vec();
        values.iter().for_each(|v| p.extend_from_slice(v));
        p.extend_from_slice(b"t.");
        let report = Scanner::default().scan_bytes("b.pkl", &p);
        prop_assert!(report.findings.is_empty(), "{:?}", report.findings);
    }
}
