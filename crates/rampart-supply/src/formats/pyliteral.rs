//! Python literals as `ast.literal_eval` reads them: NumPy parses `.npy` headers that way, so
//! the scanner must too. A header that spells `'O'` as `'\x4f'`, as `'O' ''` (implicit
//! concatenation) or as `"""O"""` names an object dtype all the same, and a dict with a key
//! written twice keeps the last value.

/// A parsed literal.
#[derive(Clone, Debug, PartialEq)]
pub enum Lit {
    /// `str` (bytes literals are kept as text too: NumPy rejects them anyway).
    Str(String),
    /// `int` (bounded to i128; a larger one is a parse error).
    Int(i128),
    /// `float` or `complex` (value irrelevant here).
    Float,
    /// `True` / `False`.
    Bool(bool),
    /// `None`.
    None,
    /// `(...)`.
    Tuple(Vec<Lit>),
    /// `[...]`.
    List(Vec<Lit>),
    /// `{k: v}`; later keys override earlier ones, as in Python.
    Dict(Vec<(Lit, Lit)>),
    /// `{a, b}`.
    Set(Vec<Lit>),
}

impl Lit {
    /// The value of `key` in a dict (the last one written).
    pub fn get(&self, key: &str) -> Option<&Lit> {
        let Lit::Dict(items) = self else { return None };
        items
            .iter()
            .rev()
            .find(|(k, _)| matches!(k, Lit::Str(s) if s == key))
            .map(|(_, v)| v)
    }
}

const MAX_DEPTH: usize = 64;

/// Parses one literal that makes up the whole of `text` (surrounding whitespace allowed).
pub fn parse(text: &str) -> Result<Lit, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
        text,
    };
    let v = p.value(0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("unexpected text at byte {}", p.i));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    text: &'a str,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while let Some(&c) = self.s.get(self.i) {
            match c {
                b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => self.i += 1,
                // a backslash-newline continues the line
                b'\\' if matches!(self.s.get(self.i + 1), Some(b'\n')) => self.i += 2,
                b'#' => {
                    while self.s.get(self.i).is_some_and(|&c| c != b'\n') {
                        self.i += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn value(&mut self, depth: usize) -> Result<Lit, String> {
        if depth > MAX_DEPTH {
            return Err("nested too deeply".into());
        }
        self.ws();
        let c = self.peek().ok_or("unexpected end")?;
        match c {
            b'(' => self.seq(b')', depth).map(|(items, comma)| match (items.len(), comma) {
                (1, false) => items.into_iter().next().unwrap_or(Lit::None),
                _ => Lit::Tuple(items),
            }),
            b'[' => self.seq(b']', depth).map(|(items, _)| Lit::List(items)),
            b'{' => self.dict_or_set(depth),
            b'\'' | b'"' => self.strings(),
            b'-' | b'+' => {
                self.i += 1;
                let v = self.value(depth + 1)?;
                match v {
                    Lit::Int(n) if c == b'-' => Ok(Lit::Int(-n)),
                    Lit::Int(_) | Lit::Float => Ok(v),
                    _ => Err("sign before a non-number".into()),
                }
            }
            b'0'..=b'9' | b'.' => self.number(),
            _ if c.is_ascii_alphabetic() || c == b'_' => {
                let start = self.i;
                while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_') {
                    self.i += 1;
                }
                let word = &self.text[start..self.i];
                if matches!(self.peek(), Some(b'\'' | b'"')) && is_prefix(word) {
                    self.i = start;
                    return self.strings();
                }
                match word {
                    "True" => Ok(Lit::Bool(true)),
                    "False" => Ok(Lit::Bool(false)),
                    "None" => Ok(Lit::None),
                    _ => Err(format!("`{word}` is not a literal")),
                }
            }
            _ => Err(format!("unexpected character at byte {}", self.i)),
        }
    }

    /// Items up to `close`; also says whether a comma was seen (`(x,)` is a tuple).
    fn seq(&mut self, close: u8, depth: usize) -> Result<(Vec<Lit>, bool), String> {
        self.i += 1;
        let mut items = Vec::new();
        let mut comma = false;
        loop {
            self.ws();
            if self.peek() == Some(close) {
                self.i += 1;
                return Ok((items, comma));
            }
            items.push(self.value(depth + 1)?);
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    comma = true;
                }
                Some(c) if c == close => {}
                _ => return Err(format!("expected `,` or `{}`", char::from(close))),
            }
        }
    }

    fn dict_or_set(&mut self, depth: usize) -> Result<Lit, String> {
        self.i += 1;
        let mut pairs = Vec::new();
        let mut set = Vec::new();
        loop {
            self.ws();
            if self.peek() == Some(b'}') {
                self.i += 1;
                return Ok(if set.is_empty() {
                    Lit::Dict(pairs)
                } else {
                    Lit::Set(set)
                });
            }
            let k = self.value(depth + 1)?;
            self.ws();
            if self.peek() == Some(b':') && set.is_empty() {
                self.i += 1;
                let v = self.value(depth + 1)?;
                pairs.push((k, v));
            } else if pairs.is_empty() {
                set.push(k);
            } else {
                return Err("expected `:`".into());
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {}
                _ => return Err("expected `,` or `}`".into()),
            }
        }
    }

    fn number(&mut self) -> Result<Lit, String> {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_'))
            || (matches!(self.peek(), Some(b'+' | b'-'))
                && matches!(self.s.get(self.i.wrapping_sub(1)), Some(b'e' | b'E'))
                && !self.text[start..self.i].starts_with("0x"))
        {
            self.i += 1;
        }
        let raw = self.text[start..self.i].replace('_', "");
        let lower = raw.to_ascii_lowercase();
        let int = if let Some(h) = lower.strip_prefix("0x") {
            i128::from_str_radix(h, 16).ok()
        } else if let Some(o) = lower.strip_prefix("0o") {
            i128::from_str_radix(o, 8).ok()
        } else if let Some(b) = lower.strip_prefix("0b") {
            i128::from_str_radix(b, 2).ok()
        } else if lower.chars().all(|c| c.is_ascii_digit()) {
            // Python 3 rejects leading zeros except for 0 itself
            if lower.len() > 1 && lower.starts_with('0') && lower.chars().any(|c| c != '0') {
                return Err("leading zeros in an integer".into());
            }
            lower.parse().ok()
        } else {
            None
        };
        match int {
            Some(n) => Ok(Lit::Int(n)),
            None if lower.trim_end_matches('j').parse::<f64>().is_ok() => Ok(Lit::Float),
            None => Err(format!("bad number `{raw}`")),
        }
    }

    /// One or more adjacent string literals, concatenated as Python does.
    fn strings(&mut self) -> Result<Lit, String> {
        let mut out = String::new();
        let mut parts = 0usize;
        loop {
            self.ws();
            let start = self.i;
            while self.peek().is_some_and(|c| c.is_ascii_alphabetic()) {
                self.i += 1;
            }
            let prefix = self.text[start..self.i].to_ascii_lowercase();
            if !matches!(self.peek(), Some(b'\'' | b'"')) || !is_prefix(&prefix) {
                self.i = start;
                if parts == 0 {
                    return Err("expected a string".into());
                }
                return Ok(Lit::Str(out));
            }
            parts += 1;
            let raw = prefix.contains('r');
            let q = self.s[self.i];
            let triple = self.s.get(self.i..self.i + 3) == Some(&[q, q, q][..]);
            self.i += if triple { 3 } else { 1 };
            let body_start = self.i;
            loop {
                let c = self.peek().ok_or("unterminated string")?;
                if c == b'\\' {
                    self.i += 2;
                    continue;
                }
                if c == b'\n' && !triple {
                    return Err("newline in a string".into());
                }
                if c == q && (!triple || self.s.get(self.i..self.i + 3) == Some(&[q, q, q][..])) {
                    break;
                }
                self.i += 1;
            }
            let body = self.text.get(body_start..self.i).ok_or("string is not UTF-8")?;
            self.i += if triple { 3 } else { 1 };
            if raw {
                out.push_str(body);
            } else {
                unescape(body, &mut out)?;
            }
        }
    }
}

fn is_prefix(p: &str) -> bool {
    matches!(p.to_ascii_lowercase().as_str(), "" | "r" | "u" | "b" | "br" | "rb")
}

fn unescape(body: &str, out: &mut String) -> Result<(), String> {
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(e) = chars.next() else {
            return Err("trailing backslash".into());
        };
        let mut hex = |n: usize| -> Result<char, String> {
            let digits: String = (0..n).filter_map(|_| chars.next()).collect();
            u32::from_str_radix(&digits, 16)
                .ok()
                .filter(|_| digits.len() == n)
                .and_then(char::from_u32)
                .ok_or_else(|| "bad escape".to_string())
        };
        match e {
            '\n' => {}
            '\\' | '\'' | '"' => out.push(e),
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match chars.peek().and_then(|c| c.to_digit(8)) {
                        Some(d) => {
                            v = v * 8 + d;
                            chars.next();
                        }
                        None => break,
                    }
                }
                out.push(char::from_u32(v).ok_or("bad escape")?);
            }
            'x' => out.push(hex(2)?),
            'u' => out.push(hex(4)?),
            'U' => out.push(hex(8)?),
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'v' => out.push('\x0b'),
            'N' => return Err("named escapes are not supported".into()),
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn reads_what_literal_eval_reads() {
        let v = parse("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }").unwrap();
        assert_eq!(v.get("descr"), Some(&Lit::Str("<f4".into())));
        assert_eq!(v.get("shape"), Some(&Lit::Tuple(vec![Lit::Int(3), Lit::Int(4)])));
        assert_eq!(parse("'\\x4f'").unwrap(), Lit::Str("O".into()));
        assert_eq!(parse("'O' \"\"").unwrap(), Lit::Str("O".into()));
        assert_eq!(parse("'''O'''").unwrap(), Lit::Str("O".into()));
        assert_eq!(parse("u'\\u004f'").unwrap(), Lit::Str("O".into()));
        assert_eq!(parse("'\\117'").unwrap(), Lit::Str("O".into()));
        assert_eq!(parse("(5,)").unwrap(), Lit::Tuple(vec![Lit::Int(5)]));
        assert_eq!(parse("(5)").unwrap(), Lit::Int(5));
        assert_eq!(parse("-0x10").unwrap(), Lit::Int(-16));
        assert_eq!(parse("1_000").unwrap(), Lit::Int(1000));
        let d = parse("{'descr': '<f4', 'descr': '|O'}").unwrap();
        assert_eq!(d.get("descr"), Some(&Lit::Str("|O".into())));
        assert!(parse("{'a': os.system}").is_err());
        assert!(parse("'abc").is_err());
        assert!(parse("(((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((1").is_err());
    }

    /// Python's `repr` of a str, as NumPy writes header strings.
    fn py_repr(s: &str) -> String {
        let q = if s.contains('\'') && !s.contains('"') {
            '"'
        } else {
            '\''
        };
        let mut out = String::from(q);
        for c in s.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c == q => {
                    out.push('\\');
                    out.push(c);
                }
                c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push(q);
        out
    }

    proptest::proptest! {
        #[test]
        fn strings_read_back_as_written(s in "\\PC*|[\\x00-\\x7f]*") {
            proptest::prop_assert_eq!(parse(&py_repr(&s)), Ok(Lit::Str(s.clone())));
        }

        #[test]
        fn any_text_is_parsed_or_refused_without_panic(t in "[ -~\\n]{0,64}") {
            let _ = parse(&t);
        }
    }
}
