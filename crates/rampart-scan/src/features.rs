//! Hashed n-gram features for the injection classifier, shared by training and inference so
//! both see exactly the same vector.
//!
//! The text is lower-cased with whitespace collapsed; features are byte 3-, 4- and 5-grams,
//! word unigrams and bigrams. For untrusted data (tool results, documents) every n-gram is
//! hashed under a role salt: "What is the capital of Brazil?" is harmless from a user and an
//! attack when planted in a retrieved document, so the two roles learn separate n-gram
//! weights (the phrase library and structural features stay shared). Each feature is
//! hashed into [`DIM`] buckets with a sign bit (the "hashing trick" with signed hashes keeps
//! collisions unbiased). Named features (phrase hits, structure) are added by the detector.

/// Number of weight buckets (a power of two).
pub const DIM: usize = 1 << BITS;
const BITS: u32 = 18;

const P: u64 = 0x0000_0100_0000_01B3;
/// An odd constant with well-spread bits for multiply-shift hashing.
const MUL: u64 = 0x9e37_79b9_7f4a_7c15;
/// The mixing multiplier for packed word bytes (MurmurHash3's finaliser constant).
const WORD_MUL: u64 = 0xff51_afd7_ed55_8ccd;
const SEED_WORD: u64 = 0x9e37_79b9_7f4a_7c15;
const SEED_ROLE: u64 = 0xd6e8_feb8_6659_fd93;

/// Which ASCII bytes are alphanumeric.
static ASCII_ALNUM: [bool; 128] = {
    let mut t = [false; 128];
    let mut i = 0;
    while i < 128 {
        t[i] = (i as u8).is_ascii_alphanumeric();
        i += 1;
    }
    t
};

/// One feature: bucket and value (sign included).
pub type Feature = (u32, f32);

#[inline]
fn bucket(h: u64) -> (u32, bool) {
    // Multiply-shift: the top bits of the product depend on every input bit; they give the
    // bucket, the bit below them the sign.
    let x = (h ^ (h >> 29)).wrapping_mul(MUL);
    ((x >> (64 - BITS)) as u32, x & (1 << (63 - BITS)) != 0)
}

#[inline]
fn push(out: &mut Vec<Feature>, h: u64, v: f32) {
    let (b, negative) = bucket(h);
    out.push((b, if negative { -v } else { v }));
}

/// A named feature (phrase category, structural signal) with value `v`.
pub fn named(name: &str, v: f32, out: &mut Vec<Feature>) {
    let mut h = 0x1234_5678_9abc_def1_u64;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(P);
    }
    push(out, h, v);
}

/// Lower-cases and collapses whitespace into `buf` (reused across calls). Built as bytes:
/// ASCII is handled a byte at a time, other characters are decoded.
pub fn canonical(text: &str, buf: &mut String) {
    let mut out = std::mem::take(buf).into_bytes();
    out.clear();
    out.reserve(text.len() + 2);
    out.push(b' ');
    let b = text.as_bytes();
    if b.is_ascii() {
        // The common case, word by word (the copies vectorise).
        let ws = |c: &u8| c.is_ascii_whitespace() || *c == 0x0b;
        for word in b.split(ws).filter(|w| !w.is_empty()) {
            out.extend(word.iter().map(u8::to_ascii_lowercase));
            out.push(b' ');
        }
        *buf = String::from_utf8(out).unwrap_or_default();
        return;
    }
    let mut space = true;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii() {
            if c.is_ascii_whitespace() || c == 0x0b {
                if !space {
                    out.push(b' ');
                    space = true;
                }
            } else {
                out.push(c.to_ascii_lowercase());
                space = false;
            }
            i += 1;
            continue;
        }
        let Some(ch) = text.get(i..).and_then(|rest| rest.chars().next()) else {
            break;
        };
        if ch.is_whitespace() {
            if !space {
                out.push(b' ');
                space = true;
            }
        } else {
            let mut utf8 = [0u8; 4];
            for l in ch.to_lowercase() {
                out.extend_from_slice(l.encode_utf8(&mut utf8).as_bytes());
            }
            space = false;
        }
        i += ch.len_utf8();
    }
    if !space {
        out.push(b' ');
    }
    // Only whole characters were written, so this cannot fail; were it to, nothing is lost
    // but the odd byte.
    *buf = String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
}

/// Calls `f(bucket, negative)` for every n-gram feature of canonical text `t`, in order;
/// returns how many there were. [`ngrams`] builds the vector for training through this;
/// inference ([`ngram_dot`]) sums the same features without building it.
#[inline]
pub fn each_ngram(t: &str, untrusted: bool, mut f: impl FnMut(u32, bool)) -> usize {
    each_char_gram(t, untrusted, &mut f) + each_word_gram(t, untrusted, &mut f)
}

/// The salt of a role's n-grams.
fn salt(untrusted: bool) -> u64 {
    if untrusted {
        SEED_ROLE
    } else {
        0
    }
}

/// The key of a byte `k`-gram: the length, in the top byte, and the role.
fn gram_key(k: u64, untrusted: bool) -> u64 {
    (k << 56) ^ salt(untrusted)
}

/// Bucket and sign of a byte gram (its bytes, little-endian) under `key`.
#[inline]
fn gram_bucket(gram: u64, key: u64) -> (u32, bool) {
    let x = (gram ^ key).wrapping_mul(MUL);
    ((x >> (64 - BITS)) as u32, x & (1 << (63 - BITS)) != 0)
}

/// The byte 3-, 4- and 5-grams of `t`: the (up to) eight bytes at each position,
/// little-endian, masked to the gram and keyed by its length and the role, go through one
/// multiply-shift. One load and three independent multiplies per byte.
#[inline]
fn each_char_gram(t: &str, untrusted: bool, mut f: impl FnMut(u32, bool)) -> usize {
    let b = t.as_bytes();
    let mut n = 0;
    let keys = [3, 4, 5].map(|k| gram_key(k, untrusted));
    let mut gram = |g: u64, key: u64| {
        let (bk, neg) = gram_bucket(g, key);
        f(bk, neg);
    };
    for i in 0..b.len().saturating_sub(2) {
        let x = match b.get(i..i + 8) {
            Some(w) => u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]),
            None => b[i..].iter().rev().fold(0, |x, &c| (x << 8) | u64::from(c)),
        };
        let left = b.len() - i;
        gram(x & 0xff_ffff, keys[0]);
        n += 1;
        if left >= 4 {
            gram(x & 0xffff_ffff, keys[1]);
            n += 1;
        }
        if left >= 5 {
            gram(x & 0xff_ffff_ffff, keys[2]);
            n += 1;
        }
    }
    n
}

/// Word unigrams and bigrams of `t`.
#[inline]
fn each_word_gram(t: &str, untrusted: bool, mut f: impl FnMut(u32, bool)) -> usize {
    let salt = salt(untrusted);
    let b = t.as_bytes();
    let mut n = 0;
    // Words are maximal runs of alphanumeric characters. A word's bytes are packed eight to
    // a `u64` and each full `u64` is mixed in with a multiply, so a word of up to eight bytes
    // costs one multiply; ASCII is classified by table, other characters decoded.
    let mut prev: u64 = 0;
    // Whether the character at `i` is alphanumeric, and its width.
    let alnum = |i: usize| -> (bool, usize) {
        match b[i] {
            c if c.is_ascii() => (ASCII_ALNUM[usize::from(c)], 1),
            _ => t
                .get(i..)
                .and_then(|rest| rest.chars().next())
                .map_or((false, 1), |c| (c.is_alphanumeric(), c.len_utf8())),
        }
    };
    let mut i = 0;
    while i < b.len() {
        let (is_alnum, width) = alnum(i);
        if !is_alnum {
            i += width;
            continue;
        }
        let start = i;
        i += width;
        while i < b.len() {
            if b[i].is_ascii() {
                if !ASCII_ALNUM[usize::from(b[i])] {
                    break;
                }
                i += 1;
            } else {
                let (is_alnum, width) = alnum(i);
                if !is_alnum {
                    break;
                }
                i += width;
            }
        }
        let word = &b[start..i];
        let pack = |c: &[u8]| c.iter().fold(0u64, |a, &x| (a << 8) | u64::from(x));
        let mut h = SEED_WORD;
        let mut chunks = word.chunks_exact(8);
        for c in &mut chunks {
            h = (h ^ pack(c)).wrapping_mul(WORD_MUL);
        }
        let h = (h ^ pack(chunks.remainder()) ^ ((word.len() as u64) << 56)).wrapping_mul(WORD_MUL);
        let (bk, neg) = bucket(h ^ salt);
        f(bk, neg);
        n += 1;
        if prev != 0 {
            let (bk, neg) = bucket(h.wrapping_mul(31).wrapping_add(prev) ^ salt);
            f(bk, neg);
            n += 1;
        }
        prev = h;
    }
    n
}

/// Appends the n-gram features of canonical text `t`; values are scaled so the n-gram part
/// of the vector has unit L2 norm (long and short texts weigh alike).
pub fn ngrams(t: &str, untrusted: bool, out: &mut Vec<Feature>) {
    let start = out.len();
    out.reserve(t.len() * 3 + t.len() / 2);
    let n = each_ngram(t, untrusted, |b, negative| {
        out.push((b, if negative { -1.0 } else { 1.0 }))
    });
    if n > 0 {
        let scale = 1.0 / (n as f32).sqrt();
        for f in &mut out[start..] {
            f.1 *= scale;
        }
    }
}

/// The dot product of `weights` with the unit-normalised n-gram features of `t`, without
/// building them: what [`ngrams`] followed by a dot product gives. The byte grams, three per
/// byte, are the hot loop: summed into three accumulators so the loads overlap, the sign
/// applied to the float's sign bit.
pub fn ngram_dot(t: &str, untrusted: bool, weights: &[f32]) -> f32 {
    let Ok(table) = <&[f32; DIM]>::try_from(weights) else {
        // Not a model's table: the general path.
        let mut sum = 0.0;
        let n = each_ngram(t, untrusted, |bk, neg| {
            let w = weights.get(bk as usize).copied().unwrap_or(0.0);
            sum += if neg { -w } else { w };
        });
        return if n == 0 { 0.0 } else { sum / (n as f32).sqrt() };
    };
    let weight = |(bk, neg): (u32, bool)| {
        let w = table[bk as usize & (DIM - 1)];
        f32::from_bits(w.to_bits() ^ (u32::from(neg) << 31))
    };
    let b = t.as_bytes();
    let keys = [3, 4, 5].map(|k| gram_key(k, untrusted));
    let (mut s3, mut s4, mut s5) = (0f32, 0f32, 0f32);
    // Positions with eight bytes to load; the last few go through the general loop.
    let mut i = 0;
    while let Some(w) = b.get(i..i + 8) {
        let x = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        s3 += weight(gram_bucket(x & 0xff_ffff, keys[0]));
        s4 += weight(gram_bucket(x & 0xffff_ffff, keys[1]));
        s5 += weight(gram_bucket(x & 0xff_ffff_ffff, keys[2]));
        i += 1;
    }
    let mut n = 3 * i;
    let mut sum = s3 + s4 + s5;
    // The tail's grams, as `each_char_gram` gives them.
    for i in i..b.len().saturating_sub(2) {
        let x = b[i..].iter().rev().fold(0u64, |x, &c| (x << 8) | u64::from(c));
        let left = b.len() - i;
        for (k, key) in keys.iter().enumerate() {
            if left >= k + 3 {
                let mask = u64::MAX >> (64 - 8 * (k as u32 + 3));
                sum += weight(gram_bucket(x & mask, *key));
                n += 1;
            }
        }
    }
    n += each_word_gram(t, untrusted, |bk, neg| sum += weight((bk, neg)));
    if n == 0 {
        0.0
    } else {
        sum / (n as f32).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The definitions the fast paths must agree with.
    fn canonical_reference(text: &str) -> String {
        let mut buf = String::from(" ");
        let mut space = true;
        for c in text.chars() {
            if c.is_whitespace() {
                if !space {
                    buf.push(' ');
                    space = true;
                }
            } else {
                buf.extend(c.to_lowercase());
                space = false;
            }
        }
        if !space {
            buf.push(' ');
        }
        buf
    }

    fn word_hashes_reference(t: &str, salt: u64) -> Vec<(u32, bool)> {
        let mut out = Vec::new();
        let mut prev = 0u64;
        for w in t.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
            let mut h = SEED_WORD;
            for chunk in w.as_bytes().chunks(8) {
                let acc = chunk.iter().fold(0u64, |a, &c| (a << 8) | u64::from(c));
                if chunk.len() == 8 {
                    h = (h ^ acc).wrapping_mul(WORD_MUL);
                } else {
                    h ^= acc;
                }
            }
            let h = (h ^ ((w.len() as u64) << 56)).wrapping_mul(WORD_MUL);
            out.push(bucket(h ^ salt));
            if prev != 0 {
                out.push(bucket(h.wrapping_mul(31).wrapping_add(prev) ^ salt));
            }
            prev = h;
        }
        out
    }

    proptest! {
        #[test]
        fn fast_paths_match_their_definitions(s in "(?s)[a-zA-Z0-9 \\t\\n\\x0b\\x0c\\x1c.,é€ß\\u{a0}\\u{2028}İ]{0,80}", untrusted: bool) {
            let mut c = String::new();
            canonical(&s, &mut c);
            prop_assert_eq!(&c, &canonical_reference(&s));
            let mut all = Vec::new();
            let n = each_ngram(&c, untrusted, |b, neg| all.push((b, neg)));
            prop_assert_eq!(n, all.len());
            let chars = 3 * c.len().saturating_sub(4) + usize::from(c.len() >= 4) * 2 + usize::from(c.len() >= 3);
            prop_assert_eq!(chars + word_hashes_reference(&c, if untrusted { SEED_ROLE } else { 0 }).len(), n);
            prop_assert_eq!(&all[chars..], &word_hashes_reference(&c, if untrusted { SEED_ROLE } else { 0 })[..]);
            // The fused dot product sees the same features.
            let weights: Vec<f32> = (0..DIM).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
            let mut v = Vec::new();
            ngrams(&c, untrusted, &mut v);
            let dot: f32 = v.iter().map(|&(b, x)| weights[b as usize] * x).sum();
            prop_assert!((dot - ngram_dot(&c, untrusted, &weights)).abs() < 1e-3);
        }
    }

    #[test]
    fn canonical_form() {
        let mut b = String::new();
        canonical("  Hello\n\tWORLD  É ", &mut b);
        assert_eq!(b, " hello world é ");
    }

    #[test]
    fn features_are_deterministic_and_normalised() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        ngrams(" ignore previous instructions ", false, &mut a);
        ngrams(" ignore previous instructions ", false, &mut b);
        assert_eq!(a, b);
        let norm: f32 = a.iter().map(|f| f.1 * f.1).sum();
        assert!((norm - 1.0).abs() < 1e-4);
        let mut c = Vec::new();
        ngrams(" ignore previous instructions ", true, &mut c);
        assert_eq!(c.len(), a.len());
        assert!(c.iter().zip(&a).all(|(x, y)| x.0 != y.0 || x.0 == 0));
    }

    #[test]
    fn the_fused_dot_product_equals_the_vector_one() {
        let weights: Vec<f32> = (0..DIM).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
        for (t, untrusted) in [
            (" ignore previous instructions ", false),
            (" a table | of | data ", true),
            ("", false),
        ] {
            let mut v = Vec::new();
            ngrams(t, untrusted, &mut v);
            let dot: f32 = v.iter().map(|&(b, x)| weights[b as usize] * x).sum();
            assert!((dot - ngram_dot(t, untrusted, &weights)).abs() < 1e-4, "{t}");
        }
    }
}
