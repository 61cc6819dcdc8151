//! Eight bytes at a time: tests for the rare bytes that start expensive work (digits,
//! spaces), so that prose, mostly letters, is skipped a word at a time.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The eight bytes at the start of `chunk` (which must hold eight) as a little-endian word.
#[inline]
pub(crate) fn word(chunk: &[u8; 8]) -> u64 {
    u64::from_le_bytes(*chunk)
}

/// Whether any byte of `x` is `byte`.
#[inline]
pub(crate) fn has_byte(x: u64, byte: u8) -> bool {
    let v = x ^ (ONES * u64::from(byte));
    v.wrapping_sub(ONES) & !v & HIGH != 0
}

/// Whether any byte of `x` is an ASCII digit.
#[inline]
pub(crate) fn has_digit(x: u64) -> bool {
    // A byte is a digit when, with its top bit clear, it is at least 0x30 and below 0x3a,
    // and its top bit was clear to begin with.
    let low = x & !HIGH;
    let below_3a = (low.wrapping_add(ONES * (0x80 - 0x3a)) & HIGH) ^ HIGH;
    let at_least_30 = low.wrapping_add(ONES * (0x80 - 0x30)) & HIGH;
    below_3a & at_least_30 & !x & HIGH != 0
}

/// Whether any byte of `x` is not ASCII.
#[inline]
pub(crate) fn has_non_ascii(x: u64) -> bool {
    x & HIGH != 0
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn the_word_tests_agree_with_the_bytes(b in proptest::array::uniform8(any::<u8>()), probe: u8) {
            let x = word(&b);
            prop_assert_eq!(has_digit(x), b.iter().any(u8::is_ascii_digit));
            prop_assert_eq!(has_byte(x, probe), b.contains(&probe));
            prop_assert_eq!(has_non_ascii(x), !b.is_ascii());
        }
    }
}
