//! Check digits and validity rules that turn "looks like a number" into "is one".

/// Luhn check (payment cards, Canadian SIN).
pub fn luhn(digits: &[u8]) -> bool {
    if digits.len() < 2 {
        return false;
    }
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// Digits of a string, ignoring separators.
pub fn digits(s: &str) -> Vec<u8> {
    s.bytes().filter(u8::is_ascii_digit).map(|b| b - b'0').collect()
}

/// Issuer identification ranges of the card schemes: (first digits from, to, prefix
/// length, shortest and longest card number). Sources: the schemes' published IIN ranges
/// (Visa, Mastercard incl. 2-series, Amex, Discover, Diners, JCB incl. the 15-digit 1800 and
/// 2131, UnionPay, Maestro, Mir, RuPay, Verve, Troy, Dankort, UATP, InterPayment).
const IIN: &[(u32, u32, usize, usize, usize)] = &[
    (4, 4, 1, 13, 19),
    (51, 55, 2, 16, 16),
    (2221, 2720, 4, 16, 16),
    (34, 34, 2, 15, 15),
    (37, 37, 2, 15, 15),
    (300, 305, 3, 14, 19),
    (36, 36, 2, 14, 19),
    (38, 39, 2, 14, 19),
    (3528, 3589, 4, 16, 19),
    (1800, 1800, 4, 15, 15),
    (2131, 2131, 4, 15, 15),
    (6011, 6011, 4, 16, 19),
    (644, 649, 3, 16, 19),
    (65, 65, 2, 16, 19),
    (62, 62, 2, 16, 19),
    (81, 82, 2, 16, 16),
    (2200, 2204, 4, 16, 19),
    (50, 50, 2, 12, 19),
    (56, 69, 2, 12, 19),
    (604, 604, 3, 12, 19),
    (9792, 9792, 4, 16, 16),
    (1, 1, 1, 15, 15),
];

/// Whether a digit run is a plausible payment card: a scheme's IIN range and length, and a
/// valid Luhn check digit.
pub fn payment_card(d: &[u8]) -> bool {
    if !(12..=19).contains(&d.len()) || !luhn(d) {
        return false;
    }
    let prefix = |n: usize| d.iter().take(n).fold(0u32, |a, &x| a * 10 + u32::from(x));
    IIN.iter()
        .any(|&(lo, hi, n, min, max)| (lo..=hi).contains(&prefix(n)) && (min..=max).contains(&d.len()))
}

/// IBAN length per country (ISO 13616 registry, the common ones).
fn iban_length(cc: &str) -> Option<usize> {
    Some(match cc {
        "NO" => 15,
        "BE" => 16,
        "DK" | "FI" | "FO" | "GL" | "NL" => 18,
        "MK" | "SI" => 19,
        "AT" | "BA" | "EE" | "KZ" | "LT" | "LU" | "XK" => 20,
        "CH" | "CR" | "HR" | "LI" | "LV" => 21,
        "BG" | "BH" | "DE" | "GB" | "GE" | "IE" | "ME" | "RS" => 22,
        "AE" | "GI" | "IL" | "TL" => 23,
        "AD" | "CZ" | "ES" | "MD" | "PK" | "RO" | "SA" | "SE" | "SK" | "TN" | "VG" => 24,
        "PT" => 25,
        "IS" | "TR" => 26,
        "FR" | "GR" | "IT" | "MC" | "MR" | "SM" => 27,
        "AL" | "AZ" | "CY" | "DO" | "GT" | "HU" | "LB" | "PL" => 28,
        "BR" | "EG" | "PS" | "QA" | "UA" => 29,
        "JO" | "KW" | "MU" => 30,
        "MT" => 31,
        "LC" => 32,
        _ => return None,
    })
}

/// The byte length of the IBAN at the start of `s`, if there is one: a match of the loose
/// pattern may run on into the next word (`DE89 3704 0044 0532 0130 00 today`), so the
/// country's length decides where it ends.
pub fn iban_prefix(s: &str) -> Option<usize> {
    let cc: String = s.chars().take(2).map(|c| c.to_ascii_uppercase()).collect();
    let want = iban_length(&cc)?;
    let mut n = 0usize;
    for (i, c) in s.char_indices() {
        if c == ' ' {
            continue;
        }
        if !c.is_ascii_alphanumeric() {
            return None;
        }
        n += 1;
        if n == want {
            let end = i + c.len_utf8();
            return iban(&s[..end]).then_some(end);
        }
    }
    None
}

/// IBAN: known country, its length, mod-97 = 1. Spaces are ignored; case is folded.
pub fn iban(s: &str) -> bool {
    let compact: String = s
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let Some(cc) = compact.get(..2) else { return false };
    if iban_length(cc) != Some(compact.len()) || !compact.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return false;
    }
    let rearranged = compact[4..].bytes().chain(compact[..4].bytes());
    let mut rem: u32 = 0;
    for b in rearranged {
        let v = if b.is_ascii_digit() {
            u32::from(b - b'0')
        } else {
            u32::from(b - b'A') + 10
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// US SSN validity: area not 000, 666 or 9xx; group not 00; serial not 0000; not the
/// advertising numbers.
pub fn ssn(d: &[u8]) -> bool {
    if d.len() != 9 {
        return false;
    }
    let area = u32::from(d[0]) * 100 + u32::from(d[1]) * 10 + u32::from(d[2]);
    let group = u32::from(d[3]) * 10 + u32::from(d[4]);
    let serial = d[5..].iter().fold(0u32, |a, &x| a * 10 + u32::from(x));
    let all_same = d.iter().all(|&x| x == d[0]);
    area != 0
        && area != 666
        && area < 900
        && group != 0
        && serial != 0
        && !all_same
        && !(area == 78 && group == 5 && serial == 1120)
        && !(area == 123 && group == 45 && serial == 6789)
}

/// Spanish DNI: 8 digits and the mod-23 letter.
pub fn spanish_dni(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 9 {
        return false;
    }
    let Ok(n) = s[..8].parse::<u32>() else { return false };
    b"TRWAGMYFPDXBNJZSQVHLCKE".get((n % 23) as usize) == Some(&b[8].to_ascii_uppercase())
}

/// Chinese resident identity number: 17 digits and the ISO 7064 MOD 11-2 check character.
pub fn chinese_id(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = b[..17].iter().zip(W).map(|(&c, w)| u32::from(c - b'0') * w).sum();
    b"10X98765432".get((sum % 11) as usize) == Some(&b[17].to_ascii_uppercase())
}

/// Brazilian CPF: two mod-11 check digits, not all digits equal.
pub fn cpf(d: &[u8]) -> bool {
    if d.len() != 11 || d.iter().all(|&x| x == d[0]) {
        return false;
    }
    let check = |n: usize| {
        let sum: u32 = d[..n]
            .iter()
            .enumerate()
            .map(|(i, &x)| u32::from(x) * (n as u32 + 1 - i as u32))
            .sum();
        let r = (sum * 10) % 11;
        (if r == 10 { 0 } else { r }) as u8
    };
    check(9) == d[9] && check(10) == d[10]
}

/// Indian Aadhaar: 12 digits, not starting with 0 or 1, Verhoeff check digit.
pub fn aadhaar(d: &[u8]) -> bool {
    const MUL: [[u8; 10]; 10] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
        [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
        [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
        [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
        [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
        [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
        [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
        [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
        [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
    ];
    const PERM: [[u8; 10]; 8] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
        [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
        [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
        [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
        [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
        [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
        [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
    ];
    if d.len() != 12 || d[0] < 2 {
        return false;
    }
    let mut c = 0u8;
    for (i, &x) in d.iter().rev().enumerate() {
        c = MUL[c as usize][PERM[i % 8][x as usize] as usize];
    }
    c == 0
}

/// Where a URL or bare domain candidate ends: trailing sentence punctuation and unbalanced
/// closing brackets belong to the prose around it (`see https://a.example/x).`), not to the
/// address. Returns the kept length.
pub fn url_len(s: &str) -> usize {
    // Bracket counts are taken once and updated as characters are trimmed, so a long
    // candidate costs one pass.
    let count = |c: char| s.bytes().filter(|&b| b == c as u8).count();
    let mut balance = [
        (b'(', b')', count('('), count(')')),
        (b'[', b']', count('['), count(']')),
        (b'{', b'}', count('{'), count('}')),
    ];
    let b = s.as_bytes();
    let mut end = b.len();
    while end > 0 {
        let c = b[end - 1];
        if b".,;:!?'\"*_>`".contains(&c) {
            end -= 1;
            continue;
        }
        match balance.iter_mut().find(|x| x.1 == c) {
            Some(x) if x.3 > x.2 => {
                x.3 -= 1;
                end -= 1;
            }
            _ => break,
        }
    }
    end
}

/// A URL that names a host somebody reaches: it parses (WHATWG rules, as browsers read it)
/// and its host is a registrable domain or a public IP address. Loopback, unspecified and
/// `localhost` addresses fill configs and docs and name no one.
pub fn url(s: &str) -> bool {
    let with_scheme = if s.len() >= 4 && s[..4].eq_ignore_ascii_case("www.") {
        format!("http://{s}")
    } else {
        s.to_owned()
    };
    let Ok(u) = url::Url::parse(&with_scheme) else {
        return false;
    };
    match u.host() {
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.');
            !d.eq_ignore_ascii_case("localhost")
                && !d.to_ascii_lowercase().ends_with(".localhost")
                && psl::suffix(d.as_bytes()).is_some_and(|s| s.is_known())
                && d.contains('.')
        }
        Some(url::Host::Ipv4(ip)) => !ip.is_loopback() && !ip.is_unspecified(),
        Some(url::Host::Ipv6(ip)) => !ip.is_loopback() && !ip.is_unspecified(),
        None => false,
    }
}

/// Country-code top-level domains that are also file extensions, code identifiers or words
/// (`main.rs`, `setup.py`, `user.id`, `it.is`): a bare `x.<tld>` with one of these is not
/// taken for a domain name without a scheme or `www.` in front.
const AMBIGUOUS_CC_TLDS: &[&str] = &[
    "ad", "am", "as", "at", "be", "by", "cc", "do", "go", "id", "in", "is", "it", "md", "me", "ml", "ms", "my", "no",
    "pl", "pm", "ps", "py", "rs", "sh", "so", "st", "sx", "to", "ts", "tv", "us", "ws",
];

/// The generic top-level domains a bare domain name may end in. Most of the newer ones are
/// also words that follow a dot in code (`self.global`, `node.property`, `obj.name`), so only
/// the common registries count without a scheme or `www.`.
const BARE_GENERIC_TLDS: &[&str] = &[
    "com", "net", "org", "edu", "gov", "mil", "int", "info", "biz", "eu", "xyz", "online", "site", "tech", "store",
    "shop", "cloud", "blog", "club", "agency", "asia", "museum", "aero", "coop", "travel", "jobs",
];

/// A bare domain name (`shop.acme.de`, `marketgadgets.co.za`): a known public suffix whose
/// top-level domain is a country code or a common generic one, not also a file extension or
/// an identifier, with a registrable label of at least two
/// characters in front of it.
pub fn domain(s: &str) -> bool {
    let d = s.trim_end_matches('.');
    let lower = d.to_ascii_lowercase();
    let Some(suffix) = psl::suffix(lower.as_bytes()) else {
        return false;
    };
    if !suffix.is_known() {
        return false;
    }
    let suffix = std::str::from_utf8(suffix.as_bytes()).unwrap_or("");
    let tld = suffix.rsplit('.').next().unwrap_or("");
    let common = if tld.len() == 2 {
        !AMBIGUOUS_CC_TLDS.contains(&tld)
    } else {
        BARE_GENERIC_TLDS.contains(&tld)
    };
    if !common || lower.len() <= suffix.len() + 1 {
        return false;
    }
    let label = lower[..lower.len() - suffix.len() - 1].rsplit('.').next().unwrap_or("");
    label.len() >= 2
        && lower
            .split('.')
            .all(|l| !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-'))
}

include!(concat!(env!("OUT_DIR"), "/phone_plans.rs"));

/// A number written in a national format (`699 956 915`, `06 12 34 56 78`) that is a valid
/// number (by libphonenumber's metadata: length and leading digits per type) in at least one
/// of the regions in [`PHONE_PLANS`].
///
/// The national significant number (the trunk prefix removed) is matched against each
/// region's fixed-line and mobile patterns, read once from the metadata into one anchored
/// [`regex::RegexSet`] per trunk prefix: the crate's own parse takes tens of microseconds a
/// region, behind a global lock.
pub fn national_phone(s: &str) -> bool {
    let d: String = s.chars().filter(char::is_ascii_digit).collect();
    NATIONAL_PLANS.iter().any(|(prefix, set)| {
        let national = match prefix {
            Some(p) if d.starts_with(p.as_str()) => &d[p.len()..],
            Some(_) => return false,
            None => d.as_str(),
        };
        set.is_match(national)
    })
}

/// Per trunk prefix (`Some("0")`, or `None` for numbers dialled as written), the anchored
/// fixed-line and mobile patterns of the regions in [`PHONE_PLANS`] (libphonenumber's
/// metadata, read at build time). A region with a trunk prefix is in both groups: its numbers
/// are written with and without it.
static NATIONAL_PLANS: std::sync::LazyLock<Vec<(Option<String>, regex::RegexSet)>> = std::sync::LazyLock::new(|| {
    let mut groups: std::collections::BTreeMap<Option<String>, Vec<&str>> = std::collections::BTreeMap::new();
    for &(_, prefix, patterns) in PHONE_PLANS {
        if let Some(p) = prefix {
            groups.entry(Some(p.to_owned())).or_default().extend(patterns);
        }
        groups.entry(None).or_default().extend(patterns);
    }
    groups
        .into_iter()
        .filter_map(|(prefix, patterns)| {
            // ASCII digits only: Unicode `\d` would make each pattern many times larger.
            regex::RegexSetBuilder::new(patterns)
                .unicode(false)
                .size_limit(64 << 20)
                .build()
                .ok()
                .map(|set| (prefix, set))
        })
        .collect()
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_digits() {
        assert!(payment_card(&digits("4111 1111 1111 1111")));
        assert!(!payment_card(&digits("4111 1111 1111 1112")));
        assert!(payment_card(&digits("5500-0000-0000-0004")));
        assert!(payment_card(&digits("3782 822463 10005")));
        // Maestro (12 digits), JCB's 15-digit range, UnionPay (19), Mir.
        assert!(payment_card(&digits("5018 0000 0009")));
        assert!(payment_card(&digits("180000000000002")));
        assert!(payment_card(&digits("6200 0000 0000 0000 000")));
        assert!(payment_card(&digits("2200 0000 0000 0004")));
        // Luhn-valid but no scheme issues it: a timestamp in milliseconds.
        assert!(!payment_card(&digits("1700000000004")));
        assert!(iban("GB82 WEST 1234 5698 7654 32"));
        assert!(iban("DE89370400440532013000"));
        assert!(!iban("DE89370400440532013001"));
        assert!(ssn(&digits("378-07-9520")));
        assert!(!ssn(&digits("666-12-3456")));
        assert!(!ssn(&digits("912-12-3456")));
        assert!(!ssn(&digits("123-00-4567")));
        assert!(spanish_dni("12345678Z"));
        assert!(!spanish_dni("12345678A"));
        assert!(chinese_id("11010519491231002X"));
        assert!(cpf(&digits("529.982.247-25")));
        assert!(!cpf(&digits("111.111.111-11")));
        assert!(aadhaar(&digits("2341 2341 2346")));
        assert!(!aadhaar(&digits("2341 2341 2347")));
    }

    #[test]
    fn every_numbering_plan_compiles() {
        // A set that failed to compile would be dropped silently and its regions never match.
        let prefixes: std::collections::BTreeSet<Option<&str>> = PHONE_PLANS.iter().map(|p| p.1).collect();
        assert_eq!(
            NATIONAL_PLANS.len(),
            prefixes.len() + usize::from(!prefixes.contains(&None))
        );
        assert!(PHONE_PLANS.len() >= 50);
    }

    #[test]
    fn bare_domains_need_a_common_registry() {
        assert!(domain("shop.acme.de"));
        assert!(domain("marketgadgets.co.za"));
        assert!(domain("example.com"));
        for d in [
            "main.rs",
            "setup.py",
            "user.id",
            "self.global",
            "x.name",
            "co.za",
            "a.com",
            "-x.com",
        ] {
            assert!(!domain(d), "{d}");
        }
    }

    #[test]
    fn urls_trim_prose_and_skip_local_hosts() {
        assert_eq!(url_len("https://a.example.org/x)."), "https://a.example.org/x".len());
        assert_eq!(url_len("https://w.org/F_(b))"), "https://w.org/F_(b)".len());
        assert!(url("https://docs.rs/rustls/"));
        assert!(url("www.google.com"));
        assert!(url("http://86.231.85.193/x"));
        for u in [
            "http://localhost:3000",
            "http://127.0.0.1/",
            "http://[::1]/",
            "http://0.0.0.0",
            "http://intranet/",
        ] {
            assert!(!url(u), "{u}");
        }
    }
}
