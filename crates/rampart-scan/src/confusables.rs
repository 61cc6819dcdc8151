//! Homoglyph folding: letters from other scripts that render like Latin ones.
//!
//! NFKC already maps full-width forms, mathematical alphanumerics and ligatures; what it
//! leaves are look-alike letters of Cyrillic, Greek and a few IPA/Latin-extended symbols,
//! which attackers mix into words ("іgnоrе") to dodge phrase matching. The table is the
//! subset of Unicode's confusables (UTS #39) whose target is a single ASCII letter; the full
//! skeleton algorithm is not used because it also folds ASCII (`m` → `rn`), which would blur
//! the n-gram features.

/// The ASCII letter `c` looks like, if any.
pub(crate) fn fold(c: char) -> Option<char> {
    Some(match c {
        // Cyrillic lower case
        'а' => 'a',
        'в' => 'b',
        'е' | 'ё' => 'e',
        'о' => 'o',
        'р' => 'p',
        'с' => 'c',
        'у' => 'y',
        'х' => 'x',
        'і' | 'ї' => 'i',
        'ј' => 'j',
        'ѕ' => 's',
        'ԁ' => 'd',
        'һ' => 'h',
        'ԛ' => 'q',
        'ԝ' => 'w',
        'к' => 'k',
        'м' => 'm',
        'н' => 'h',
        'т' => 't',
        'ɡ' => 'g',
        // Cyrillic upper case
        'А' => 'A',
        'В' => 'B',
        'Е' | 'Ё' => 'E',
        'К' => 'K',
        'М' => 'M',
        'Н' => 'H',
        'О' => 'O',
        'Р' => 'P',
        'С' => 'C',
        'Т' => 'T',
        'Х' => 'X',
        'У' => 'Y',
        'І' | 'Ї' => 'I',
        'Ј' => 'J',
        'Ѕ' => 'S',
        'Ԛ' => 'Q',
        'Ԝ' => 'W',
        // Greek
        'α' => 'a',
        'ο' | 'σ' => 'o',
        'ν' => 'v',
        'ρ' => 'p',
        'ι' => 'i',
        'κ' => 'k',
        'τ' => 't',
        'υ' => 'u',
        'χ' => 'x',
        'Α' => 'A',
        'Β' => 'B',
        'Ε' => 'E',
        'Ζ' => 'Z',
        'Η' => 'H',
        'Ι' => 'I',
        'Κ' => 'K',
        'Μ' => 'M',
        'Ν' => 'N',
        'Ο' => 'O',
        'Ρ' => 'P',
        'Τ' => 'T',
        'Υ' => 'Y',
        'Χ' => 'X',
        // Latin extensions and symbols
        'ı' => 'i',
        'ȷ' => 'j',
        'ɑ' => 'a',
        'ɩ' => 'i',
        'ʟ' => 'l',
        'ℓ' => 'l',
        'ǀ' => 'l',
        'ո' => 'n',
        'ս' => 'u',
        'օ' => 'o',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn folds_mixed_script_words() {
        let s: String = "іgnоrе".chars().map(|c| super::fold(c).unwrap_or(c)).collect();
        assert_eq!(s, "ignore");
        assert_eq!(super::fold('x'), None);
    }
}
