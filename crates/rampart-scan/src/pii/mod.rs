//! Personal data: patterns for what has a shape, check digits where a shape is not enough,
//! context words where neither is (dates of birth, passports), and a gazetteer plus cues for
//! person names.
//!
//! One [`RegexSet`] pass tells which shapes occur at all; only those patterns are then run
//! for spans, so a clean prompt costs one scan.

mod names;
pub mod validators;

use aho_corasick::{AhoCorasick, AhoCorasickKind};
use regex::{Regex, RegexSet};

use crate::{Detector, Finding};

use validators as v;

/// How a candidate is confirmed.
#[derive(Debug, Clone, Copy)]
enum Check {
    None,
    Card,
    Iban,
    Ssn,
    Ipv4,
    Ipv6,
    /// A context word must occur within 40 bytes before.
    Context(&'static [&'static str]),
    Dni,
    ChineseId,
    Cpf,
    Aadhaar,
    Phone,
    /// A number in a national format, valid in a common region by libphonenumber's metadata.
    NationalPhone,
    /// A URL with a scheme or `www.`, trimmed of the prose around it.
    Url,
    /// A bare domain name, trimmed, with an unambiguous public suffix.
    Domain,
}

struct Rule {
    kind: &'static str,
    pattern: &'static str,
    score: f32,
    check: Check,
}

const BIRTH: &[&str] = &[
    "born",
    "birth",
    "dob",
    "d.o.b",
    "geboren",
    "né le",
    "née le",
    "nacido",
    "nacimiento",
];
const PASSPORT: &[&str] = &["passport", "reisepass", "passeport", "pasaporte", "passaporto"];
const LICENSE: &[&str] = &["driver", "licence", "license", "dl#", "dl no", "dl number"];
const SSN_CTX: &[&str] = &["ssn", "social security", "social-security"];

/// Local phone formats of many countries (`9761 9808`, `(11) 4706-6184`, `02.27.96.63.08`,
/// `2813882583`): digit groups alone are ambiguous (amounts, codes, years), so this runs only
/// when a phone cue is in the text, and a match counts only with a cue next to it.
const LOCAL_PHONE: &str =
    r"(?:\(\d{1,4}\)[ .\-]?)?\b\d{2,5}(?:[ .\-]\d{2,5}){1,4}(?:\s?(?:x|ext\.?)\s?\d{1,6})?\b|\b\d{10,11}\b";

/// Words that announce a phone number before it...
const PHONE_BEFORE: &[&str] = &[
    "phone",
    "tel:",
    "tel.",
    "tel ",
    "telephone",
    "call ",
    "call:",
    "mobile",
    "cell",
    "fax",
    "contact",
    "reach me",
    "reach us",
    "reach you",
    "reached at",
    "dial",
    "whatsapp",
    "sms",
    "text me",
    "answering at",
    "number is",
    "number:",
    "ring ",
    "hotline",
];
/// Words an address anchor needs (a cheap test before the anchor regex runs).
const ADDRESS_WORDS: &[&str] = &["suite", "apt", "apartment", "box", "fpo", "apo", "dpo"];

/// ...or label it right after.
const PHONE_AFTER: &[&str] = &["office", "fax", "mobile", "cell", "home", "work", "(o)", "(m)", "(h)"];

const RULES: &[Rule] = &[
    Rule {
        kind: "email",
        pattern: r"\b[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}\.)+[A-Za-z]{2,24}\b",
        score: 0.95,
        check: Check::None,
    },
    Rule {
        kind: "credit_card",
        pattern: r"\b(?:\d[ \-]?){11,18}\d\b",
        score: 0.95,
        check: Check::Card,
    },
    Rule {
        kind: "iban",
        pattern: r"(?i)\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b",
        score: 0.95,
        check: Check::Iban,
    },
    Rule {
        kind: "us_ssn",
        pattern: r"\b\d{3}-\d{2}-\d{4}\b",
        score: 0.85,
        check: Check::Ssn,
    },
    Rule {
        kind: "us_ssn",
        pattern: r"\b\d{9}\b",
        score: 0.8,
        check: Check::Context(SSN_CTX),
    },
    Rule {
        kind: "ip_address",
        pattern: r"\b(?:\d{1,3}\.){3}\d{1,3}\b",
        score: 0.8,
        check: Check::Ipv4,
    },
    Rule {
        kind: "ip_address",
        pattern: r"(?i)(?:\b|::)(?:[0-9a-f]{1,4}:){2,7}(?::|[0-9a-f]{1,4})(?:[0-9a-f]{0,4}:?)*[0-9a-f]{0,4}\b",
        score: 0.8,
        check: Check::Ipv6,
    },
    Rule {
        kind: "mac_address",
        pattern: r"(?i)\b[0-9a-f]{2}(?::[0-9a-f]{2}){5}\b|\b[0-9a-f]{2}(?:-[0-9a-f]{2}){5}\b",
        score: 0.8,
        check: Check::None,
    },
    Rule {
        kind: "phone_number",
        pattern: r"(?:\+|\b00)[1-9]\d{0,2}[ .\-]?(?:\(\d{1,4}\)[ .\-]?)?\d{1,4}(?:[ .\-]?\d{2,4}){1,4}(?:\s?(?:x|ext\.?)\s?\d{1,6})?\b",
        score: 0.85,
        check: Check::Phone,
    },
    Rule {
        kind: "phone_number",
        pattern: r"(?:\(\d{3}\)\s?|\b\d{3}[ .\-])\d{3}[ .\-]\d{4}(?:\s?(?:x|ext\.?)\s?\d{1,6})?\b",
        score: 0.8,
        check: Check::Phone,
    },
    Rule {
        kind: "phone_number",
        pattern: r"\b0\d{1,4}[ \-]\d{3,4}[ \-]?\d{3,4}(?:\s?x\d{1,6})?\b",
        score: 0.7,
        check: Check::Phone,
    },
    Rule {
        kind: "phone_number",
        pattern: r"\b\d{2,4}(?:[ .\-]\d{2,4}){2,4}\b",
        score: 0.6,
        check: Check::NationalPhone,
    },
    Rule {
        kind: "url",
        pattern: r#"(?i)\b(?:https?|ftp)://[^\s<>"'`{}|\\^]+"#,
        score: 0.9,
        check: Check::Url,
    },
    Rule {
        kind: "url",
        pattern: r#"(?i)\bwww\.[a-z0-9\-]+(?:\.[a-z0-9\-]+)+(?:[/?#][^\s<>"'`{}|\\^]*)?"#,
        score: 0.85,
        check: Check::Url,
    },
    Rule {
        kind: "url",
        pattern: r#"(?i)\b(?:[a-z0-9][a-z0-9\-]*\.)+[a-z]{2,24}\b(?:/[^\s<>"'`{}|\\^]*)?"#,
        score: 0.7,
        check: Check::Domain,
    },
    Rule {
        kind: "date_of_birth",
        pattern: r"(?i)\b(?:\d{1,2}[/.\-]\d{1,2}[/.\-](?:19|20)?\d{2}|(?:19|20)\d{2}-\d{2}-\d{2}|\d{1,2} (?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]* (?:19|20)\d{2}|(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]* \d{1,2},? (?:19|20)\d{2})\b",
        score: 0.85,
        check: Check::Context(BIRTH),
    },
    Rule {
        kind: "passport_number",
        pattern: r"\b[A-Z0-9]{1,2}\d{6,8}\b|\b[A-Z]\d{7,8}\b",
        score: 0.85,
        check: Check::Context(PASSPORT),
    },
    Rule {
        kind: "driver_license",
        pattern: r"(?i)\b[A-Z]{0,2}\d{6,14}[A-Z]?\b",
        score: 0.75,
        check: Check::Context(LICENSE),
    },
    Rule {
        kind: "uk_nino",
        pattern: r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b",
        score: 0.85,
        check: Check::None,
    },
    Rule {
        kind: "in_pan",
        pattern: r"\b[A-Z]{3}[PCHABGJLFT][A-Z]\d{4}[A-Z]\b",
        score: 0.8,
        check: Check::None,
    },
    Rule {
        kind: "in_aadhaar",
        pattern: r"\b[2-9]\d{3} ?\d{4} ?\d{4}\b",
        score: 0.85,
        check: Check::Aadhaar,
    },
    Rule {
        kind: "es_dni",
        pattern: r"\b\d{8}[A-HJ-NP-TV-Z]\b",
        score: 0.85,
        check: Check::Dni,
    },
    Rule {
        kind: "it_fiscal_code",
        pattern: r"\b[A-Z]{6}\d{2}[A-EHLMPR-T]\d{2}[A-Z]\d{3}[A-Z]\b",
        score: 0.9,
        check: Check::None,
    },
    Rule {
        kind: "cn_resident_id",
        pattern: r"\b\d{17}[\dXx]\b",
        score: 0.9,
        check: Check::ChineseId,
    },
    Rule {
        kind: "br_cpf",
        pattern: r"\b\d{3}\.\d{3}\.\d{3}-\d{2}\b",
        score: 0.9,
        check: Check::Cpf,
    },
    Rule {
        kind: "address",
        pattern: r"\b\d{1,6}(?: [A-Z][a-z]+| [NSEW]\.?){1,4} (?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Circle|Cir|Highway|Hwy|Parkway|Pkwy|Square|Sq|Trail|Alley|Crescent|Close|Row)\b\.?(?:,? (?:Apt|Suite|Unit|Ste|#)\.? ?[A-Za-z0-9\-]+)?",
        score: 0.8,
        check: Check::None,
    },
    Rule {
        kind: "address",
        pattern: r"(?i)\b[A-ZÀ-Ýa-zß-ÿ]+(?:straße|strasse|stasse|gasse|weg|allee|platz|vej|gatan|gade|katu|laan|straat|steeg)\.? \d{1,5}[a-z]?\b|\b(?:rue|avenue|boulevard|via|viale|calle|avenida|rua|ulica|utca|plaza|paseo|piazza|chemin) (?:[A-ZÀ-Ýa-zß-ÿ'\-]+ ){0,3}[A-ZÀ-Ýa-zß-ÿ'\-]+,? \d{1,5}\b|\b\d{1,5},? (?:rue|avenue|boulevard|via|calle|rua) (?:[a-zà-ÿ'\-]+ )?[A-ZÀ-Ý][a-zà-ÿ'\-]+",
        score: 0.75,
        check: Check::None,
    },
    Rule {
        kind: "address",
        pattern: r"\b[A-Z][a-z]+(?: [A-Z][a-z]+)*, (?:AL|AK|AZ|AR|CA|CO|CT|DE|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|DC) \d{5}(?:-\d{4})?\b",
        score: 0.8,
        check: Check::None,
    },
];

/// One rule's regex, and where its matches can start. Most rules start with a digit at a
/// word boundary (or `+`, `(`): those are searched anchored at each such byte instead of
/// scanning the whole text again, which on prose is a handful of short searches instead of
/// one pass over every byte. The start bytes are read off the rule's own automaton, so the
/// matches are exactly those of an ordinary leftmost-first search.
struct RuleMatcher {
    regex: regex_automata::meta::Regex,
    /// `first[w][b]`: a match can start with byte `b` when the byte before is (`w = 1`) or is
    /// not (`w = 0`) an ASCII word byte. `None`: too many bytes to be worth it.
    first: Option<Box<[[bool; 256]; 2]>>,
}

impl RuleMatcher {
    #[allow(clippy::expect_used, reason = "constant patterns, compiled by the tests")]
    fn new(pattern: &str) -> RuleMatcher {
        let regex = regex_automata::meta::Regex::new(pattern).expect("pii pattern compiles");
        RuleMatcher {
            regex,
            first: first_bytes(pattern),
        }
    }

    /// Leftmost-first, non-overlapping matches, as `Regex::find_iter` gives. `starts` lists
    /// every position of a byte [`START_BYTES`] holds, in order.
    fn find_iter<'a>(
        &'a self,
        text: &'a str,
        starts: &'a [usize],
    ) -> Box<dyn Iterator<Item = regex_automata::Match> + 'a> {
        // Text dense in candidates (digits, other scripts) is cheaper to scan once.
        match &self.first {
            Some(first) if starts.len() * 16 <= text.len() => Box::new(self.find_at_starts(first, text, starts)),
            _ => Box::new(self.regex.find_iter(text)),
        }
    }

    /// The matches, searching anchored at each start position `first` allows.
    fn find_at_starts<'a>(
        &'a self,
        first: &'a [[bool; 256]; 2],
        text: &'a str,
        starts: &'a [usize],
    ) -> impl Iterator<Item = regex_automata::Match> + 'a {
        let b = text.as_bytes();
        let mut next = 0;
        starts.iter().filter_map(move |&p| {
            let after_word = p > 0 && is_word_byte(b[p - 1]);
            if p < next || !first[usize::from(after_word)][usize::from(b[p])] {
                return None;
            }
            let input = regex_automata::Input::new(text)
                .range(p..)
                .anchored(regex_automata::Anchored::Yes);
            let m = self.regex.search(&input)?;
            next = m.end().max(p + 1);
            Some(m)
        })
    }
}

/// ASCII bytes a rule searched by start position may start with: digits, `(` and `+`. Any
/// non-ASCII character may start one too (`\d` takes other scripts' digits).
const START_BYTES: &[u8] = b"0123456789(+";

fn is_start_byte(b: u8) -> bool {
    START_BYTES.contains(&b) || b >= 0xc0
}

/// Positions of [`is_start_byte`] bytes in `b`. Eight bytes are tested at a time (prose is
/// mostly ASCII letters), then the bytes of a hit word one by one.
fn start_positions(b: &[u8]) -> Vec<usize> {
    use crate::swar;
    let mut out = Vec::new();
    let mut at = 0;
    for chunk in b.chunks(8) {
        let hit = match <&[u8; 8]>::try_from(chunk) {
            Ok(c) => {
                let x = swar::word(c);
                swar::has_digit(x) || swar::has_non_ascii(x) || swar::has_byte(x, b'(') || swar::has_byte(x, b'+')
            }
            Err(_) => true,
        };
        if hit {
            out.extend(
                chunk
                    .iter()
                    .enumerate()
                    .filter(|(_, &c)| is_start_byte(c))
                    .map(|(i, _)| at + i),
            );
        }
        at += chunk.len();
    }
    out
}

/// `i`, or the nearest character boundary before it.
fn floor_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// `i`, or the nearest character boundary after it.
fn ceil_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// An ASCII word byte, as the rules' `(?-u:\b)` sees it.
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The bytes an anchored match of `pattern` can start with, after a word byte and after a
/// non-word byte: a byte is left out only when the rule's lazy DFA dies on it. `None` when
/// a match can start with a byte [`is_start_byte`] does not take.
fn first_bytes(pattern: &str) -> Option<Box<[[bool; 256]; 2]>> {
    use regex_automata::hybrid::dfa::DFA;
    use regex_automata::{Anchored, Input};
    let dfa = DFA::new(pattern).ok()?;
    let mut cache = dfa.create_cache();
    let mut first = Box::new([[false; 256]; 2]);
    for (w, before) in [(0usize, b" "), (1, b"a")] {
        for byte in 0..=255u8 {
            let hay = [before[0], byte];
            let input = Input::new(&hay[..]).range(1..).anchored(Anchored::Yes);
            let start = dfa.start_state_forward(&mut cache, &input).ok()?;
            let next = dfa.next_state(&mut cache, start, byte).ok()?;
            first[w][usize::from(byte)] = !next.is_dead();
        }
    }
    let within = (0..=255u8).all(|b| is_start_byte(b) || !(first[0][usize::from(b)] || first[1][usize::from(b)]));
    within.then_some(first)
}

/// The compiled PII detector.
pub struct PiiDetector {
    set: RegexSet,
    regexes: Vec<RuleMatcher>,
    /// Given names; a fast hash, as every capitalised word is looked up.
    given: foldhash::HashSet<&'static str>,
    ambiguous: foldhash::HashSet<&'static str>,
    /// Anchors of postal address blocks (unit lines, PO boxes, military addresses).
    address_anchor: Regex,
    /// A list of three or more capitalised words: `Malon, Mark, Kaylee and Brandi`.
    enumeration: Regex,
    /// Phone cues, before or after a number (a cheap test before the local-phone rule runs),
    /// then [`ADDRESS_WORDS`]: one pass finds both.
    cues: AhoCorasick,
    /// [`LOCAL_PHONE`].
    local_phone: Regex,
    /// A house number starting a word.
    house_number: Regex,
    /// A short line ending in a postal code (`Gabon 66298`, `Altafulla T 51890`).
    postal_line: Regex,
}

impl std::fmt::Debug for PiiDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiiDetector").field("rules", &RULES.len()).finish()
    }
}

impl Default for PiiDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl PiiDetector {
    /// Compiles the rules.
    #[allow(clippy::expect_used, reason = "constant patterns, compiled by the tests")]
    pub fn new() -> PiiDetector {
        let pats: Vec<String> = RULES.iter().map(|r| crate::ascii_boundaries(r.pattern)).collect();
        PiiDetector {
            set: regex::RegexSetBuilder::new(Self::patterns())
                .size_limit(64 << 20)
                .build()
                .expect("pii patterns compile"),
            regexes: pats.iter().map(|p| RuleMatcher::new(p)).collect(),
            given: names::GIVEN_NAMES.split_whitespace().collect(),
            ambiguous: names::AMBIGUOUS.iter().copied().collect(),
            // ASCII word boundaries keep these on the fast engines (Unicode `\b` is not
            // supported by the lazy DFA and falls back to a slow one on non-ASCII text).
            address_anchor: Regex::new(&crate::ascii_boundaries(
                r"(?i)\b(?:suite|apt\.?|apartment)\s?#?\d{1,5}[a-z]?\b|\bP\.? ?O\.? Box \d{1,6}\b|\b(?:FPO|APO|DPO) (?:AA|AE|AP) \d{5}\b",
            ))
            .expect("address anchor compiles"),
            // A dense DFA: with case folding and common first letters, a prefilter does not
            // pay.
            cues: AhoCorasick::builder()
                .kind(Some(AhoCorasickKind::DFA))
                .ascii_case_insensitive(true)
                .build(PHONE_BEFORE.iter().chain(PHONE_AFTER).chain(ADDRESS_WORDS))
                .expect("cues build"),
            local_phone: Regex::new(&crate::ascii_boundaries(LOCAL_PHONE)).expect("local phone compiles"),
            enumeration: Regex::new(r"\p{Lu}\p{Ll}+(?:, \p{Lu}\p{Ll}+)+,? (?:and|or|&) \p{Lu}\p{Ll}+")
                .expect("enumeration compiles"),
            postal_line: Regex::new(r"(?m)^[ \t>?,]*\p{L}[\p{L} ,.'\-]{1,30} \d{4,6}[ \t]*$").expect("postal line compiles"),
            house_number: Regex::new(r"(?:^|[\s,>:])\d{1,5}[a-zA-Z]{0,2}[ ,]+[\p{L}\d]").expect("house number compiles"),
        }
    }

    /// Appends PII findings in `text`.
    pub fn scan(&self, text: &str, out: &mut Vec<Finding>) {
        self.scan_matched(text, |t| self.set.matches(t).into_iter().collect(), out);
    }

    /// The rules' patterns, for a pass shared with other detectors
    /// ([`crate::Scanner`] runs one set over PII and secret rules).
    /// A bare domain can start at any letter, which would make the shared pass's automaton
    /// large; in that pass it is stood for by what every domain holds (a dot between two
    /// word bytes), and [`dotted_words`] finds the candidates.
    pub(crate) fn patterns() -> impl Iterator<Item = String> {
        RULES.iter().map(|r| match r.check {
            Check::Domain => r"[A-Za-z0-9\-]\.[A-Za-z]".to_owned(),
            _ => crate::ascii_boundaries(r.pattern),
        })
    }

    /// As [`scan`](Self::scan), with `matched` telling which rules match `text` at all (the
    /// indices of [`patterns`](Self::patterns)); called only when the text may hold a shape.
    pub(crate) fn scan_matched(&self, text: &str, matched: impl FnOnce(&str) -> Vec<usize>, out: &mut Vec<Finding>) {
        let first = out.len();
        let b = text.as_bytes();
        let starts = start_positions(b);
        // Phone cues and address unit words matter only next to a number (a local phone
        // number, `Suite 5`, `PO Box 12`), so they are looked for only within 80 bytes
        // before and 48 after a digit.
        let mut near_digits: Vec<(usize, usize)> = Vec::new();
        for &p in starts.iter().filter(|&&p| b[p].is_ascii_digit()) {
            let w0 = floor_boundary(text, p.saturating_sub(80));
            let w1 = ceil_boundary(text, (p + 48).min(b.len()));
            match near_digits.last_mut() {
                Some(last) if w0 <= last.1 => last.1 = last.1.max(w1),
                _ => near_digits.push((w0, w1)),
            }
        }
        let phone_cues = PHONE_BEFORE.len() + PHONE_AFTER.len();
        let (phone_hits, unit_hits): (Vec<_>, Vec<_>) = near_digits
            .iter()
            .flat_map(|&(w0, w1)| {
                self.cues
                    .find_iter(&text[w0..w1])
                    .map(move |m| (w0 + m.start(), w0 + m.end(), m.pattern().as_usize()))
            })
            .partition(|m| m.2 < phone_cues);
        if text.len() >= 5 && text.bytes().any(|b| b.is_ascii_digit() || b == b'@' || b == b':') {
            // Local phone formats count only next to a cue, so they are looked for only in
            // windows around the cues (a number up to 40 bytes after a cue, or right before a
            // label).
            let mut windows: Vec<(usize, usize)> = Vec::new();
            for &(c0, c1, _) in &phone_hits {
                let w0 = floor_boundary(text, c0.saturating_sub(40));
                let w1 = ceil_boundary(text, (c1 + 64).min(text.len()));
                match windows.last_mut() {
                    Some(last) if w0 <= last.1 => last.1 = last.1.max(w1),
                    _ => windows.push((w0, w1)),
                }
            }
            for (w0, w1) in windows {
                for m in self.local_phone.find_iter(&text[w0..w1]) {
                    let (m0, m1) = (w0 + m.start(), w0 + m.end());
                    let s = m.as_str();
                    let d = v::digits(s.split(['x', 'e']).next().unwrap_or(s));
                    if (6..=15).contains(&d.len())
                        && !placeholder_digits(&d)
                        && !v::payment_card(&d)
                        && !looks_like_date(s)
                        && self.phone_cue(text, m0, m1)
                    {
                        out.push(Finding::new(Detector::Pii, "phone_number", 0.75, m0, m1));
                    }
                }
            }
            // Checking a national number against every region's metadata costs tens of
            // microseconds; a text full of digit groups (a table, a log) gets a bounded number.
            let mut national_checks = 0usize;
            for i in matched(text) {
                let Some(rule) = RULES.get(i) else { continue };
                let matches: Box<dyn Iterator<Item = regex_automata::Match>> = match rule.check {
                    // A bare domain can start at any letter, so no start byte narrows the
                    // search; but it never holds white space and always an inner dot, so only
                    // the few words with one are searched.
                    Check::Domain => Box::new(dotted_words(text).flat_map(|(at, word)| {
                        self.regexes[i]
                            .regex
                            .find_iter(word)
                            .map(move |m| regex_automata::Match::must(0, at + m.start()..at + m.end()))
                    })),
                    _ => self.regexes[i].find_iter(text, &starts),
                };
                for m in matches {
                    let s = &text[m.start()..m.end()];
                    let mut end = m.end();
                    let ok = match rule.check {
                        Check::None => true,
                        Check::Card => v::payment_card(&v::digits(s)),
                        Check::Iban => match v::iban_prefix(s) {
                            Some(n) => {
                                end = m.start() + n;
                                true
                            }
                            None => false,
                        },
                        Check::Ssn => v::ssn(&v::digits(s)),
                        // Loopback, unspecified and broadcast addresses name no one: they
                        // fill configs and logs (`127.0.0.1`, `0.0.0.0`) and are not personal.
                        Check::Ipv4 => {
                            s.parse::<std::net::Ipv4Addr>()
                                .is_ok_and(|ip| !ip.is_loopback() && !ip.is_unspecified() && !ip.is_broadcast())
                                && !version_like(text, m.start())
                        }
                        Check::Ipv6 => {
                            s.trim_start_matches(':').len() >= 6
                                && s.parse::<std::net::Ipv6Addr>().is_ok()
                                && s.matches(':').count() >= 3
                        }
                        Check::Context(words) => context(text, m.start(), words),
                        Check::Dni => v::spanish_dni(s),
                        Check::ChineseId => v::chinese_id(s),
                        Check::Cpf => v::cpf(&v::digits(s)),
                        Check::Aadhaar => v::aadhaar(&v::digits(s)),
                        Check::Phone => {
                            let d = v::digits(s.split(['x', 'e']).next().unwrap_or(s));
                            // `00` then a country code is a dialling prefix only before a
                            // whole national number (`0041 0301` is two code points).
                            let short_00 = s.starts_with("00") && d.len() < 11;
                            !short_00
                                && (7..=15).contains(&d.len())
                                && !placeholder_digits(&d)
                                && !v::payment_card(&d)
                                && !looks_like_date(s)
                        }
                        Check::NationalPhone => {
                            let d = v::digits(s);
                            // Eight digits in pairs are as often a code or coordinates.
                            (9..=12).contains(&d.len())
                                && !placeholder_digits(&d)
                                && !ssn_shaped(s)
                                && !v::payment_card(&d)
                                && !looks_like_date(s)
                                && !looks_like_dmy(s)
                                && !dotted_quad(s)
                                && !amount_context(text, m.start(), m.end())
                                && !after_country_code(text, m.start())
                                && !in_number_run(text, m.start(), m.end())
                                && national_checks < MAX_NATIONAL_CHECKS
                                && {
                                    national_checks += 1;
                                    v::national_phone(s)
                                }
                        }
                        Check::Url => {
                            end = m.start() + v::url_len(s);
                            v::url(&text[m.start()..end])
                        }
                        Check::Domain => {
                            let host_end = s.find('/').unwrap_or(s.len());
                            end = if host_end < s.len() {
                                m.start() + v::url_len(s)
                            } else {
                                m.start() + host_end
                            };
                            v::domain(&s[..host_end]) && standalone_domain(text, m.start(), end)
                        }
                    };
                    if ok {
                        out.push(Finding::new(Detector::Pii, rule.kind, rule.score, m.start(), end));
                    }
                }
            }
        }
        let words = capitalised_words(text);
        self.names(text, &words, out);
        self.name_lists(text, &words, out);
        self.address_blocks(text, &unit_hits, out);
        dedup_overlaps(out, first);
    }

    /// A phone cue within 40 bytes before the number, or a label within 12 bytes after it.
    fn phone_cue(&self, text: &str, start: usize, end: usize) -> bool {
        let mut from = start.saturating_sub(40);
        while !text.is_char_boundary(from) {
            from -= 1;
        }
        if self
            .cues
            .find_overlapping_iter(&text[from..start])
            .any(|m| PHONE_BEFORE.len() > m.pattern().as_usize())
        {
            return true;
        }
        let after = text[end..].trim_start_matches([' ', '-', ',', '\t']).as_bytes();
        PHONE_AFTER
            .iter()
            .any(|w| after.len() >= w.len() && after[..w.len()].eq_ignore_ascii_case(w.as_bytes()))
    }

    /// Postal addresses written as blocks. An anchor starts the search: a unit (`Suite 568`,
    /// `Apt. 705`), a PO box, a military address (`FPO AE 94560`), or a short line ending in a
    /// postal code (`Gabon 66298`). The block extends back to the street line (it has a house
    /// number, on this line or up to three lines before) and forward over the short city /
    /// country / postal-code lines. On a long line (an address inside a sentence) it spans from
    /// the house number to the end of the clause. An anchor with no house number near it
    /// (`Cello Suite 3`, `Order total 12345`) is not an address.
    fn address_blocks(&self, text: &str, unit_hits: &[(usize, usize, usize)], out: &mut Vec<Finding>) {
        // Cheap candidates first: unit words (found by Aho-Corasick, `unit_hits`) and short
        // lines ending in a postal code; the anchor regexes then run only on small windows
        // around them.
        let unit_hits: Vec<(usize, usize)> = unit_hits.iter().map(|m| (m.0, m.1)).collect();
        let mut postal_lines = Vec::new();
        let mut at = 0;
        for l in text.split('\n') {
            let b = l.trim_end().as_bytes();
            let digits = b.iter().rev().take_while(|c| c.is_ascii_digit()).count();
            if b.len() <= 45 && (4..=6).contains(&digits) && b.len() > digits && b[b.len() - digits - 1] == b' ' {
                postal_lines.push((at, at + l.len()));
            }
            at += l.len() + 1;
        }
        if unit_hits.is_empty() && postal_lines.is_empty() {
            return;
        }
        // A line's ends, looked for at most 4 KiB away: every use tells short lines (60 bytes)
        // from long ones, so a line cut there reads the same, and a long line full of anchors
        // stays linear.
        const FAR: usize = 4096;
        let line_start = |i: usize| {
            let from = floor_boundary(text, i.saturating_sub(FAR));
            memchr::memrchr(b'\n', &text.as_bytes()[from..i]).map_or(from, |p| from + p + 1)
        };
        let line_end = |i: usize| {
            let to = ceil_boundary(text, (i + FAR).min(text.len()));
            memchr::memchr(b'\n', &text.as_bytes()[i..to]).map_or(to, |p| i + p)
        };
        let floor = |mut i: usize| {
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            i
        };
        let ceil = |mut i: usize| {
            while !text.is_char_boundary(i) {
                i += 1;
            }
            i
        };
        let house_in = |from: usize, to: usize| {
            self.house_number.find(&text[from..to]).map(|h| {
                from + h.start()
                    + text[from + h.start()..]
                        .find(|c: char| c.is_alphanumeric())
                        .unwrap_or(0)
            })
        };
        // The street line: a house number in the last 60 bytes of one of the `back` lines
        // before `ls`, nearest first.
        // A long line (a sentence ending in an address) counts only for a unit anchor; a line
        // that ends a sentence is not a street line.
        let street_before = |mut ls: usize, back: usize, long_ok: bool| {
            for _ in 0..back {
                if ls == 0 {
                    return None;
                }
                let pls = line_start(ls - 1);
                let line = text[pls..ls - 1].trim_end();
                if (long_ok || line.len() <= 60) && !line.ends_with(['.', '!', '?']) {
                    let from = ceil((ls - 1).saturating_sub(60).max(pls));
                    if let Some(h) = house_in(from, ls - 1) {
                        return Some(h);
                    }
                }
                ls = pls;
            }
            None
        };
        #[derive(PartialEq)]
        enum Anchor {
            Unit,
            Military,
            Postal,
        }
        let mut anchors: Vec<(usize, usize, Anchor)> = Vec::new();
        let mut done = 0;
        for (h0, h1) in unit_hits {
            let w0 = floor(h0.saturating_sub(8).max(done));
            let w1 = ceil((h1 + 12).min(text.len()));
            for m in self.address_anchor.find_iter(&text[w0..w1]) {
                let (m0, m1) = (w0 + m.start(), w0 + m.end());
                if m0 < done {
                    continue;
                }
                let military = m
                    .as_str()
                    .get(..3)
                    .is_some_and(|p| ["fpo", "apo", "dpo"].iter().any(|k| p.eq_ignore_ascii_case(k)));
                anchors.push((m0, m1, if military { Anchor::Military } else { Anchor::Unit }));
                done = m1;
            }
        }
        for (l0, l1) in postal_lines {
            for m in self.postal_line.find_iter(&text[l0..l1]) {
                // A four-digit "postal code" that reads as a year is not one.
                let code = m.as_str().trim_end().rsplit(' ').next().unwrap_or("");
                let year = code.len() == 4 && (code.starts_with("19") || code.starts_with("20"));
                if !year {
                    anchors.push((l0 + m.start(), l0 + m.end(), Anchor::Postal));
                }
            }
        }
        for (a0, a1, kind) in anchors {
            let (ls, le) = (line_start(a0), line_end(a1));
            let before_to = ceil((a0 + 1).min(le));
            let after_to = floor((a1 + 40).min(le));
            let window = ceil(a0.saturating_sub(60).max(ls));
            let house = house_in(window, before_to).or_else(|| house_in(a1, after_to).map(|_| a0));
            let (start, end) = if le - ls <= 60 {
                let house = if kind == Anchor::Postal { None } else { house };
                let start = match house {
                    Some(h) => h,
                    None if kind == Anchor::Military && ls > 0 => {
                        // The ship or unit line: from its `USS`/`USNS`/`Unit`/`PSC` word.
                        let pls = line_start(ls - 1);
                        let prev = &text[pls..ls - 1];
                        let lower = prev.to_ascii_lowercase();
                        match ["uss ", "usns ", "usnv ", "uscgc ", "unit ", "psc "]
                            .iter()
                            .filter_map(|k| lower.rfind(k))
                            .max()
                        {
                            Some(p) => pls + p,
                            None => continue,
                        }
                    }
                    None => match street_before(ls, 3, kind == Anchor::Unit) {
                        Some(h) => h,
                        None => continue,
                    },
                };
                // The anchor line ends the block at a clause break; a military address ends at
                // its code (`FPO AP 70381 for this card: ...`).
                let mut end = match kind {
                    Anchor::Military => a1,
                    _ => text[a1..le].find([':', ';']).map_or(le, |p| a1 + p),
                };
                if end < le {
                    let s0 = start;
                    let trimmed = s0 + text[s0..end].trim_end().len();
                    if trimmed > s0 {
                        out.push(Finding::new(Detector::Pii, "address", 0.75, s0, trimmed));
                    }
                    continue;
                }
                let mut blank = false;
                for _ in 0..4 {
                    if end >= text.len() {
                        break;
                    }
                    let next_end = line_end(end + 1);
                    let next = text[end + 1..next_end].trim();
                    if next.is_empty() && !blank {
                        blank = true;
                        end = next_end;
                        continue;
                    }
                    // A city, country or postal-code line: short, and no longer number (phones and
                    // card numbers are their own findings).
                    if next.is_empty()
                        || next.len() > 40
                        || next.contains([':', '@'])
                        || next.split_whitespace().count() > 5
                        || next.bytes().filter(u8::is_ascii_digit).count() > 6
                    {
                        break;
                    }
                    end = next_end;
                }
                (start, end)
            } else {
                let Some(start) = house.filter(|_| kind != Anchor::Postal) else {
                    continue;
                };
                let near = floor_boundary(text, le.min(a1 + 64));
                let stop = text[a1..near]
                    .find(['.', ';', ':', '!', '?', '('])
                    .map_or(le, |p| a1 + p);
                (start, floor(stop.min(a1 + 60)))
            };
            let trimmed_end = start + text[start..end].trim_end().len();
            if trimmed_end > start {
                out.push(Finding::new(Detector::Pii, "address", 0.75, start, trimmed_end));
            }
        }
    }

    /// Lists of names: in `Malon, Mark, Kaylee, Brandi and Jennifer`, when at least two items
    /// and at least half of them are known given names, every item is a name (the unknown ones
    /// are names from elsewhere). A list of places or products has no such majority.
    fn name_lists(&self, text: &str, words: &[(usize, usize, bool)], out: &mut Vec<Finding>) {
        for (from, to) in enumeration_candidates(text, words) {
            for m in self.enumeration.find_iter(&text[from..to]) {
                self.name_list(from + m.start(), m.as_str(), out);
            }
        }
    }

    /// One enumeration match `list` at `start`: its capitalised items are names when enough
    /// of them are known given names.
    fn name_list(&self, start: usize, list: &str, out: &mut Vec<Finding>) {
        // Each piece is followed by exactly one one-byte separator.
        let mut items: Vec<(usize, &str)> = Vec::new();
        let mut off = start;
        for w in list.split([',', ' ', '&']) {
            if w.chars().next().is_some_and(char::is_uppercase) {
                items.push((off, w));
            }
            off += w.len() + 1;
        }
        let known = items
            .iter()
            .filter(|(_, w)| self.given.contains(w.to_lowercase().as_str()))
            .count();
        if items.len() >= 3 && known >= 2 && known * 2 >= items.len() {
            for (at, w) in items {
                out.push(Finding::new(Detector::Pii, "person", 0.7, at, at + w.len()));
            }
        }
    }

    /// Person names: a given name followed by a capitalised word, or a title/cue followed by
    /// capitalised words. A lone given name counts only when it is not also a common word.
    fn names(&self, text: &str, words: &[(usize, usize, bool)], out: &mut Vec<Finding>) {
        let mut i = 0;
        let mut lower = String::new();
        while i < words.len() {
            let (s, e, cap) = words[i];
            if !cap {
                i += 1;
                continue;
            }
            let w = &text[s..e];
            lower.clear();
            if w.is_ascii() {
                lower.push_str(w);
                lower.make_ascii_lowercase();
            } else {
                lower.extend(w.chars().flat_map(char::to_lowercase));
            }
            let next_cap = words.get(i + 1).filter(|n| n.2 && gap_is_space(text, e, n.0));
            let title = names::TITLES.contains(&lower.trim_end_matches('.')) && cap;
            let cue = cue_before(text, s);
            let not_name = NOT_NAMES.contains(&lower.as_str());
            if title || (cue && cap && !not_name) {
                // Title or cue, then one to three capitalised words.
                let mut j = if title { i + 1 } else { i };
                // A title belongs to the name (`Dr. Megan Sato`): it is part of what identifies them.
                let begin = if title { s } else { words.get(j).map_or(e, |x| x.0) };
                let mut end = None;
                while let Some(&(ws, we, wc)) = words.get(j) {
                    if !wc
                        || (j > i && !gap_is_space(text, words[j - 1].1, ws))
                        || j - i > 3
                        || matches!(
                            &text[ws..we],
                            "Apt" | "Suite" | "Street" | "Unit" | "Box" | "Road" | "Avenue"
                        )
                    {
                        break;
                    }
                    end = Some(we);
                    j += 1;
                }
                if let Some(end) = end {
                    out.push(Finding::new(Detector::Pii, "person", 0.8, begin, end));
                    i = j;
                    continue;
                }
            }
            if cap && !not_name && self.given.contains(lower.as_str()) {
                if let Some(&(_, ne, _)) = next_cap {
                    out.push(Finding::new(Detector::Pii, "person", 0.85, s, ne));
                    i += 2;
                    continue;
                }
                let score = if self.ambiguous.contains(lower.as_str()) {
                    0.3
                } else {
                    0.6
                };
                out.push(Finding::new(Detector::Pii, "person", score, s, e));
            }
            i += 1;
        }
    }
}

/// Where the enumeration regex can match, read off the word list so that the regex (slow on
/// its Unicode classes) runs only there: a word, then one or more `, Word` (capitalised), then
/// `and`/`or`/`&` (after a space or a comma) and a capitalised word. Every match of the regex
/// lies inside one of these ranges (it has no look-around, so searching a range finds it).
fn enumeration_candidates(text: &str, words: &[(usize, usize, bool)]) -> Vec<(usize, usize)> {
    let gap = |i: usize| words.get(i + 1).and_then(|n| text.get(words[i].1..n.0)).unwrap_or("");
    let upper = |i: usize| {
        words
            .get(i)
            .and_then(|w| text[w.0..].chars().next())
            .is_some_and(char::is_uppercase)
    };
    let word = |i: usize| words.get(i).map_or("", |w| &text[w.0..w.1]);
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 1 < words.len() {
        // Most words are not followed by a comma: no list starts there.
        if b.get(words[i].1) != Some(&b',') {
            i += 1;
            continue;
        }
        let mut j = i;
        while gap(j) == ", " && upper(j + 1) {
            j += 1;
        }
        let last = if j == i {
            None
        } else if matches!(gap(j), " " | ", ")
            && matches!(word(j + 1), "and" | "or")
            && gap(j + 1) == " "
            && upper(j + 2)
        {
            Some(j + 2)
        } else if matches!(gap(j), " & " | ", & ") && upper(j + 1) {
            Some(j + 1)
        } else {
            None
        };
        match last {
            Some(last) => {
                out.push((words[i].0, words[last].1));
                i = last + 1;
            }
            // A chain starting inside this one ends where it does and fails the same way.
            None => i = j + 1,
        }
    }
    out
}

/// Words (letters, apostrophes, hyphens) with their spans and whether they are capitalised.
/// ASCII is classified a byte at a time; other characters are decoded.
fn capitalised_words(text: &str) -> Vec<(usize, usize, bool)> {
    let b = text.as_bytes();
    // Whether the character at `i` is a letter, and its width.
    let letter = |i: usize| -> (bool, usize) {
        match b[i] {
            c if c.is_ascii() => (c.is_ascii_alphabetic(), 1),
            _ => text
                .get(i..)
                .and_then(|rest| rest.chars().next())
                .map_or((false, 1), |c| (c.is_alphabetic(), c.len_utf8())),
        }
    };
    let mut out = Vec::with_capacity(b.len() / 5);
    let mut i = 0;
    while i < b.len() {
        let start = i;
        if b[i].is_ascii() {
            i += 1;
            if !b[start].is_ascii_alphabetic() {
                continue;
            }
        } else {
            let (is_letter, width) = letter(i);
            i += width;
            if !is_letter {
                continue;
            }
        }
        // Inside a word, apostrophes, hyphens and periods join letters.
        while i < b.len() {
            if matches!(b[i], b'\'' | b'-' | b'.') || b[i].is_ascii_alphabetic() {
                i += 1;
            } else if b[i].is_ascii() {
                break;
            } else {
                let (is_letter, width) = letter(i);
                if !is_letter {
                    break;
                }
                i += width;
            }
        }
        push_word(text, start, i, &mut out);
    }
    out
}

fn push_word(text: &str, s: usize, mut e: usize, out: &mut Vec<(usize, usize, bool)>) {
    // A trailing period belongs to the word only for titles ("Dr."). The joiners are ASCII,
    // so the word is trimmed as bytes.
    let b = &text.as_bytes()[s..e];
    let kept = b.len() - b.iter().rev().take_while(|c| matches!(c, b'.' | b'\'' | b'-')).count();
    if kept == 0 {
        return;
    }
    if kept != b.len()
        && !text
            .get(s..s + kept)
            .is_some_and(|t| names::TITLES.iter().any(|x| x.eq_ignore_ascii_case(t)))
    {
        e = s + kept;
    }
    let b = &text.as_bytes()[s..e];
    let cap = if b[0].is_ascii() {
        b[0].is_ascii_uppercase()
            && (b[1..].iter().any(u8::is_ascii_lowercase)
                || (!b.is_ascii() && text[s + 1..e].chars().any(char::is_lowercase)))
    } else {
        let w = &text[s..e];
        let mut chars = w.chars();
        chars.next().is_some_and(char::is_uppercase) && chars.clone().any(char::is_lowercase) && w.chars().count() > 1
    };
    // A word glued to digits, underscores or `::` is part of an identifier (`Ed25519`,
    // `Build_x86`, `std::String`), not a name.
    let all = text.as_bytes();
    let glued = |c: u8| c.is_ascii_digit() || c == b'_';
    let after = all.get(e).copied().is_some_and(glued) || all.get(e..e + 2) == Some(b"::");
    let before = s.checked_sub(1).and_then(|i| all.get(i)).copied().is_some_and(glued)
        || s.checked_sub(2).and_then(|i| all.get(i..s)) == Some(b"::");
    let cap = cap && !after && !before;
    out.push((s, e, cap));
}

/// Words a cue such as `name:` is followed by in build files, CI steps and code, which are
/// not people: `- name: Run tests`, `name: Build`, `name: String`.
const NOT_NAMES: &[&str] = &[
    "run",
    "build",
    "check",
    "install",
    "test",
    "tests",
    "setup",
    "set",
    "deploy",
    "update",
    "upload",
    "download",
    "lint",
    "format",
    "publish",
    "release",
    "create",
    "get",
    "configure",
    "checkout",
    "restore",
    "save",
    "start",
    "stop",
    "clean",
    "generate",
    "compile",
    "verify",
    "validate",
    "prepare",
    "cache",
    "bump",
    "add",
    "remove",
    "delete",
    "fetch",
    "sync",
    "push",
    "pull",
    "merge",
    "tag",
    "notify",
    "upgrade",
    "string",
    "integer",
    "boolean",
    "object",
    "array",
    "number",
    "null",
    "true",
    "false",
    "none",
    "default",
    "example",
    "main",
    "master",
    "rust",
    "python",
    "node",
    "docker",
    "cargo",
    "go",
    "java",
    "linux",
    "windows",
    "macos",
    "ubuntu",
    "debian",
    "server",
    "client",
    "service",
    "user",
    "admin",
    "root",
    "test",
    "debug",
    "info",
    "warn",
    "error",
    "unknown",
    "optional",
];

fn gap_is_space(text: &str, end: usize, next: usize) -> bool {
    next > end && text.get(end..next).is_some_and(|g| g == " ")
}

fn cue_before(text: &str, start: usize) -> bool {
    const CUES: &[&str] = &[
        "my name is ",
        "name: ",
        "name is ",
        "dear ",
        "regards, ",
        "sincerely, ",
        "signed, ",
        "contact ",
        "patient ",
        "employee ",
        "called ",
        "call me ",
        "named him ",
        "named her ",
        "shouted at ",
        "speak to ",
        "starring ",
        "leave me ",
    ];
    // Every cue ends in a space: most words are not preceded by one of them, and that is
    // told by the last letter before the space.
    let b = text.as_bytes();
    let last = match start.checked_sub(2).map(|i| (b[i], b[i + 1])) {
        Some((last, b' ')) => last.to_ascii_lowercase(),
        _ => return false,
    };
    if !CUES.iter().any(|c| c.len() >= 2 && c.as_bytes()[c.len() - 2] == last) {
        return false;
    }
    let mut from = start.saturating_sub(16);
    while !text.is_char_boundary(from) {
        from -= 1;
    }
    let Some(before) = text.get(from..start) else {
        return false;
    };
    CUES.iter().any(|c| {
        before.len() >= c.len()
            && before.is_char_boundary(before.len() - c.len())
            && before[before.len() - c.len()..].eq_ignore_ascii_case(c)
    })
}

fn context(text: &str, start: usize, words: &[&str]) -> bool {
    let mut from = start.saturating_sub(48);
    while !text.is_char_boundary(from) {
        from -= 1;
    }
    let before = text[from..start].to_lowercase();
    words.iter().any(|w| before.contains(w))
}

/// `1.2.3.4` right after "version"/"v" is a version number, not an address.
fn version_like(text: &str, start: usize) -> bool {
    // Only the few bytes before: copying the whole prefix for every address made a text full
    // of addresses quadratic.
    let before = text[..start].trim_end().as_bytes();
    ["version", "v", "release"]
        .iter()
        .any(|w| before.len() >= w.len() && before[before.len() - w.len()..].eq_ignore_ascii_case(w.as_bytes()))
}

/// `2024-03-15` (an ISO date), not `20-32-85-26` (a phone number).
fn looks_like_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 10
        && (s.starts_with("19") || s.starts_with("20"))
        && b[4] == b'-'
        && b[7] == b'-'
        && b[..10]
            .iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// `12.05.2023`, `3/7/1961`: a day-month-year date, not a phone number.
fn looks_like_dmy(s: &str) -> bool {
    let parts: Vec<&str> = s.split(['.', '-', '/', ' ']).collect();
    let [a, b, c] = parts.as_slice() else {
        return false;
    };
    let n = |x: &str| x.parse::<u32>().ok();
    matches!((n(a), n(b), n(c)), (Some(a), Some(b), Some(_)) if (1..=31).contains(&a) && (1..=31).contains(&b) && (c.len() == 4 || c.len() == 2))
}

/// The white-space separated words of `text` with a dot between an ASCII letter, digit or `-` and
/// an ASCII letter (`acme.de`, `(see www.x.org)`), with their offsets.
fn dotted_words(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let b = text.as_bytes();
    let mut done = 0usize;
    memchr::memchr_iter(b'.', b).filter_map(move |p| {
        // Each word is bounded once: dots inside a word already given are skipped, so a long
        // word full of dots costs one pass.
        if p < done
            || p == 0
            || !(b[p - 1].is_ascii_alphanumeric() || b[p - 1] == b'-')
            || !b.get(p + 1).is_some_and(u8::is_ascii_alphabetic)
        {
            return None;
        }
        let start = b[..p].iter().rposition(u8::is_ascii_whitespace).map_or(0, |w| w + 1);
        let end = b[p..]
            .iter()
            .position(u8::is_ascii_whitespace)
            .map_or(b.len(), |w| p + w);
        done = end;
        // Both ends sit next to ASCII white space (or the text's ends), so they are char
        // boundaries.
        text.get(start..end).map(|w| (start, w))
    })
}

/// `0000000`, `5555555555`, `0000001`: test data and counters, not somebody's number (fewer
/// than three different digits).
fn placeholder_digits(d: &[u8]) -> bool {
    let mut seen = [false; 10];
    for &x in d {
        seen[usize::from(x.min(9))] = true;
    }
    seen.iter().filter(|&&b| b).count() < 3
}

/// `53 30 05 53` in `0f b9 3d 53 30 05 53`, `2217.0021.0008` in `[.2217.0021.0008]`: groups
/// of digits inside a longer run of numbers or hex bytes (a dump, a table, a collation key),
/// not a phone number standing in prose.
fn in_number_run(text: &str, start: usize, end: usize) -> bool {
    let numberish = |w: &str| !w.is_empty() && w.len() <= 8 && w.bytes().all(|b| b.is_ascii_hexdigit());
    let before = &text[..start];
    let glued_before = before
        .chars()
        .next_back()
        .is_some_and(|c| !c.is_whitespace() && !"(:,\"'".contains(c));
    let prev_word = before
        .trim_end_matches([' ', '\t'])
        .rsplit([' ', '\t', '\n'])
        .next()
        .unwrap_or("");
    let after = &text[end..];
    let glued_after = {
        let mut c = after.chars();
        match c.next() {
            None => false,
            Some(ch) if ch.is_whitespace() || ",;)!?\"'".contains(ch) => false,
            Some('.') => c.next().is_some_and(|n| !n.is_whitespace()),
            Some(_) => true,
        }
    };
    let next_word = after
        .trim_start_matches([' ', '\t'])
        .split([' ', '\t', '\n'])
        .next()
        .unwrap_or("");
    glued_before
        || glued_after
        || (before.ends_with([' ', '\t']) && numberish(prev_word))
        || (after.starts_with([' ', '\t']) && numberish(next_word))
}

/// `078-05-1120`: the shape of a US social security number.
fn ssn_shaped(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 11 && b[3] == b'-' && b[6] == b'-'
}

/// Most national-format candidates checked against the numbering plans per text.
const MAX_NATIONAL_CHECKS: usize = 16;

/// `20 7946 0018` in `+44 20 7946 0018`: the tail of an international number, which the
/// international rule reads whole.
fn after_country_code(text: &str, start: usize) -> bool {
    if text[..start].ends_with('+') {
        return true;
    }
    let b = text[..start].trim_end_matches([' ', '.', '-', '(', ')']).as_bytes();
    let digits = b.iter().rev().take_while(|c| c.is_ascii_digit()).count();
    (1..=4).contains(&digits) && b.len() > digits && b[b.len() - digits - 1] == b'+'
        || (b.len() >= 2 && b.ends_with(b"00"))
}

/// `10.20.30.40`: four dotted groups are an address or a version, not a phone number.
fn dotted_quad(s: &str) -> bool {
    s.contains('.') && s.split('.').count() == 4 && s.split('.').all(|g| g.len() <= 3)
}

/// An amount or a measure (`€ 12 345 678`, `12 345 678 km`), not a phone number: a currency
/// sign right before, or a unit or currency word right after.
fn amount_context(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].trim_end();
    let after = text[end..].trim_start();
    let unit_after = after
        .split(|c: char| !c.is_alphanumeric() && c != '%')
        .next()
        .unwrap_or("")
        .to_lowercase();
    before.ends_with(['$', '€', '£', '¥', '₹', '#'])
        || before.to_lowercase().ends_with("usd")
        || before.to_lowercase().ends_with("eur")
        || after.starts_with(['%', '€', '$'])
        || [
            "eur", "usd", "euro", "euros", "dollars", "km", "kg", "m", "mb", "gb", "kb", "bytes", "ms", "rows",
            "items", "users", "people", "units", "times", "tokens", "words", "px", "%",
        ]
        .contains(&unit_after.as_str())
}

/// A domain name standing on its own: not a member access or a path inside code
/// (`self.config.com`, `$host.de`, `../x.de`), and not a call (`client.com()`).
fn standalone_domain(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    !matches!(before, Some('.' | '/' | '\\' | '$' | ':' | '@' | '-' | '_' | '#' | '%'))
        && !matches!(after, Some('(' | '_' | '=' | '[' | '$'))
        && !text[end..].starts_with("::")
}

/// Drops findings contained in a longer (or equally long, higher-scored) one.
fn dedup_overlaps(out: &mut Vec<Finding>, first: usize) {
    let mut mine: Vec<Finding> = out.drain(first..).collect();
    mine.sort_by(|a, b| {
        a.start
            .cmp(&b.start)
            .then((b.end - b.start).cmp(&(a.end - a.start)))
            .then(b.score.total_cmp(&a.score))
    });
    let mut kept: Vec<Finding> = Vec::with_capacity(mine.len());
    for f in mine {
        if let Some(last) = kept.last() {
            if f.start < last.end {
                continue;
            }
        }
        kept.push(f);
    }
    out.extend(kept);
}

#[cfg(test)]
mod shortcut_tests {
    //! The shortcuts (rules searched at their possible start bytes, the enumeration regex
    //! run only where the word list allows a match) give exactly what the plain searches give.

    use proptest::prelude::*;

    use super::*;

    static DETECTOR: std::sync::LazyLock<PiiDetector> = std::sync::LazyLock::new(PiiDetector::new);

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn rules_searched_at_start_bytes_match_as_a_full_search(
            s in "[0-9 ()+.\\-/a-zA-Z,@:_٣٤éX]{0,60}"
        ) {
            let d = &*DETECTOR;
            let starts = start_positions(s.as_bytes());
            for (i, rule) in d.regexes.iter().enumerate() {
                let Some(first) = &rule.first else { continue };
                let fast: Vec<(usize, usize)> =
                    rule.find_at_starts(first, &s, &starts).map(|m| (m.start(), m.end())).collect();
                let plain: Vec<(usize, usize)> = rule.regex.find_iter(&s).map(|m| (m.start(), m.end())).collect();
                prop_assert_eq!(fast, plain, "rule {}", i);
            }
        }

        #[test]
        fn domains_are_found_in_dotted_words_as_in_a_full_search(
            s in "[a-z0-9 .\\-/\t\n\u{a0}é]{0,60}"
        ) {
            let d = &*DETECTOR;
            let Some(i) = RULES.iter().position(|r| matches!(r.check, Check::Domain)) else {
                return Err(TestCaseError::fail("no domain rule"));
            };
            let words: Vec<(usize, usize)> = dotted_words(&s)
                .flat_map(|(at, w)| d.regexes[i].regex.find_iter(w).map(move |m| (at + m.start(), at + m.end())))
                .collect();
            let plain: Vec<(usize, usize)> = d.regexes[i].regex.find_iter(&s).map(|m| (m.start(), m.end())).collect();
            prop_assert_eq!(words, plain);
        }

        #[test]
        fn name_lists_are_found_where_the_regex_finds_them(
            s in "((Anna|Bob|Carl|McDonald|O'Neil|smith|Élise|and|or|&|the|Dr\\.)(, | |,|\\. )){0,10}"
        ) {
            let d = &*DETECTOR;
            let words = capitalised_words(&s);
            let mut fast = Vec::new();
            d.name_lists(&s, &words, &mut fast);
            let mut plain = Vec::new();
            for m in d.enumeration.find_iter(&s) {
                d.name_list(m.start(), m.as_str(), &mut plain);
            }
            prop_assert_eq!(fast, plain);
        }
    }

    #[test]
    fn rules_starting_with_digits_take_the_shortcut() {
        let d = &*DETECTOR;
        let shortcut = RULES
            .iter()
            .zip(&d.regexes)
            .filter(|(_, m)| m.first.is_some())
            .map(|(r, _)| r.kind)
            .collect::<Vec<_>>();
        for kind in ["credit_card", "us_ssn", "phone_number", "address", "br_cpf"] {
            assert!(shortcut.contains(&kind), "{kind}: {shortcut:?}");
        }
        assert!(!shortcut.contains(&"email"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_blocks() {
        for text in [
            "I want to update my primary and secondary address to the same: 24 P.O. Box 101\n Suite 100\n Qeqertarsuaq\n Uganda 48288",
            "we'll meet sunday at craig, palmer and quinn, 80 p.o. box 15, uummannaq",
            "The letter arrived at 01 4589 40th Street Suite 603 Calgary AB last night.",
            "Mrs. Michele Johansen Apt. 870 59 Bouciña 65\nAltafulla T 51890",
            "Nathaniel Perković\n31 Vesturgata 66\nSuite 574\nReykjavík\nTurkmenistan 51262",
        ] {
            assert!(kinds(text).iter().any(|(k, _)| k == "address"), "{text}: {:?}", kinds(text));
        }
        for text in [
            "Bach's Cello Suite 3 is lovely",
            "The suite 12 meeting room is booked",
            "Apt. 5 was nice",
            "Totals\nOrder total 12345",
            "We sold 3 units.\nRevenue rose 2024",
        ] {
            assert!(
                !kinds(text).iter().any(|(k, _)| k == "address"),
                "{text}: {:?}",
                kinds(text)
            );
        }
    }

    #[test]
    fn local_phone_formats_need_a_cue() {
        for text in [
            "You can call 9320 7126 tomorrow",
            "Phone: (11) 4706-6184",
            "They're not answering at 02.27.96.63.08",
            "2813882583 fax",
            "main line 089 72 63 41 office",
        ] {
            assert!(
                kinds(text).iter().any(|(k, _)| k == "phone_number"),
                "{text}: {:?}",
                kinds(text)
            );
        }
        for text in [
            "The totals were 1234 5678 and 91 22 in 2019",
            "order 4706 6184 shipped",
            "coordinates 51 16 34 25",
            "reference 2813882583 was paid",
        ] {
            assert!(
                !kinds(text).iter().any(|(k, _)| k == "phone_number"),
                "{text}: {:?}",
                kinds(text)
            );
        }
    }

    fn kinds(text: &str) -> Vec<(String, String)> {
        let d = PiiDetector::new();
        let mut out = Vec::new();
        d.scan(text, &mut out);
        out.into_iter()
            .filter(|f| f.score >= 0.5)
            .map(|f| (f.kind.to_string(), text[f.start..f.end].to_string()))
            .collect()
    }

    #[test]
    fn shapes_with_checks() {
        assert_eq!(
            kinds("mail me at jane.doe@example.org please"),
            [("email".into(), "jane.doe@example.org".into())]
        );
        assert_eq!(kinds("card 4111 1111 1111 1111 exp 12/29")[0].0, "credit_card");
        assert!(kinds("order 4111 1111 1111 1112").iter().all(|k| k.0 != "credit_card"));
        assert_eq!(kinds("IBAN GB82 WEST 1234 5698 7654 32.")[0].0, "iban");
        // Mid-sentence, no cue, and the next word must not be swallowed.
        let t = "please send it to DE89 3704 0044 0532 0130 00 today";
        let k = kinds(t);
        assert_eq!(k[0].0, "iban");
        assert_eq!(k[0].1, "DE89 3704 0044 0532 0130 00");
        assert_eq!(kinds("ssn 378-07-9520")[0].0, "us_ssn");
        assert!(kinds("ssn 666-07-9520").is_empty());
        assert_eq!(kinds("from 192.168.10.4 today")[0].0, "ip_address");
        for config in [
            "listen = \"127.0.0.1:8080\"",
            "bind 0.0.0.0 port 80",
            "mask 255.255.255.255 set",
        ] {
            assert!(kinds(config).iter().all(|k| k.0 != "ip_address"), "{config}");
        }
        assert!(kinds("version 1.2.3.4").is_empty());
        assert_eq!(kinds("at 2001:db8::8a2e:370:7334 now")[0].0, "ip_address");
        assert_eq!(kinds("nic 00:1A:2b:3c:4D:5e")[0].0, "mac_address");
        assert_eq!(kinds("call +44 20 7946 0958 now")[0].0, "phone_number");
        assert_eq!(kinds("call (415) 555-2671")[0].0, "phone_number");
        assert_eq!(kinds("born on 12/03/1985 in Leeds")[0].0, "date_of_birth");
        assert!(kinds("the meeting is on 12/03/2025").is_empty());
        assert_eq!(kinds("passport number X1234567")[0].0, "passport_number");
        assert_eq!(kinds("lives at 221 Baker Street, London")[0].0, "address");
        assert_eq!(kinds("Hedemannstrasse 15 in Berlin")[0].0, "address");
        assert_eq!(kinds("DNI 12345678Z")[0].0, "es_dni");
    }

    #[test]
    fn urls_and_domains_are_an_entity() {
        let found = kinds("Visit https://example.org/a?q=1, www.google.com or shop.acme.de today.");
        let urls: Vec<&str> = found.iter().filter(|k| k.0 == "url").map(|k| k.1.as_str()).collect();
        assert_eq!(urls, ["https://example.org/a?q=1", "www.google.com", "shop.acme.de"]);
        // Trailing prose is not part of the address; balanced brackets are.
        assert_eq!(
            kinds("(see https://en.wikipedia.org/wiki/Foo_(bar)).")[0].1,
            "https://en.wikipedia.org/wiki/Foo_(bar)"
        );
        assert_eq!(kinds("http://marketgadgets.co.za/")[0].1, "http://marketgadgets.co.za/");
        // An e-mail address stays one finding.
        assert_eq!(
            kinds("mail PeterFriedman@cuvox.de"),
            [("email".to_string(), "PeterFriedman@cuvox.de".to_string())]
        );
    }

    #[test]
    fn code_is_not_full_of_domains() {
        for code in [
            "use self.name and user.id in main.rs and setup.py; edit config.toml",
            "let g = self.global; node.property = x.app; obj.zip()",
            "serve on http://localhost:8080/ or http://127.0.0.1:3000 and http://0.0.0.0",
            "import os.path; np.linalg.norm(x); client.com()",
            "see ../docs/x.de and $host.com",
        ] {
            assert!(kinds(code).iter().all(|k| k.0 != "url"), "{code}: {:?}", kinds(code));
        }
    }

    #[test]
    fn national_phone_numbers_by_numbering_plan() {
        // No cue, no country code: valid in a common region's plan (Spain, France, Germany).
        for (text, number) in [
            ("699 956 915", "699 956 915"),
            ("Write to 06 12 34 56 78 later", "06 12 34 56 78"),
            ("089 72 63 41", "089 72 63 41"),
        ] {
            assert!(
                kinds(text).contains(&("phone_number".to_string(), number.to_string())),
                "{text}: {:?}",
                kinds(text)
            );
        }
        // Digit groups that are no phone number.
        for text in [
            "Total: 12 345 678 EUR",
            "on 12.05.2023 at 10.20.30.40",
            "   x86-32:    0f b9 3d 53 30 05 53      ud1",
            "01D9 ; [.2217.0021.0008][.2007.0021.0008]",
            "0041 0301 ; [.1FA2.001D.0008] # LATIN CAPITAL LETTER A",
            "#define  B1800\t0000012\n#define B2400\t0000013",
            "call 000 000 0000",
        ] {
            assert!(
                kinds(text).iter().all(|k| k.0 != "phone_number"),
                "{text}: {:?}",
                kinds(text)
            );
        }
        assert!(kinds("Tel. 0049 89 1234567").iter().any(|k| k.0 == "phone_number"));
    }

    #[test]
    fn code_and_ci_files_are_not_people() {
        // Issue 14: CI step names, type names and key algorithms were pseudonymised as names,
        // and the model received corrupted code.
        for code in [
            "steps:\n  - name: Run tests\n    run: cargo test\n  - name: Build\n  - name: Install Rust",
            "let s: String = key.to_string(); // Ed25519 signature",
            "use std::String; name: Check formatting",
        ] {
            assert!(kinds(code).iter().all(|k| k.0 != "person"), "{code}: {:?}", kinds(code));
        }
        assert_eq!(kinds("My name is John Smith")[0].0, "person");
        assert_eq!(kinds("Dear Ed, thanks")[0].1, "Ed");
    }

    #[test]
    fn names_need_a_cue_or_a_surname() {
        assert_eq!(
            kinds("I met Sarah Connor yesterday"),
            [("person".into(), "Sarah Connor".into())]
        );
        assert_eq!(
            kinds("My name is Tobias Fünke."),
            [("person".into(), "Tobias Fünke".into())]
        );
        assert_eq!(kinds("Ask Dr. Okonkwo about it")[0].1, "Dr. Okonkwo");
        assert!(kinds("Will it rain in May?").is_empty());
        let list = kinds("They had 4: Malon, Mark, Kaylee and Jennifer.");
        assert_eq!(list.iter().filter(|(k, _)| k == "person").count(), 4, "{list:?}");
        assert!(kinds("We shipped to Paris, Berlin, Madrid and Rome").is_empty());
        assert_eq!(kinds("Sometimes people call me Frederikke")[0].1, "Frederikke");
        assert!(kinds("the quick brown fox").is_empty());
    }
}
