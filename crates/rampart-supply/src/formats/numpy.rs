//! NumPy `.npy` headers. Object arrays (`descr` containing `O`) store their data as a pickle,
//! which the scan driver hands to the pickle VM; other arrays are checked for a consistent size.

use std::io::Read;

use super::Issue;
use crate::report::{Rule, Severity};

/// A parsed `.npy` header.
#[derive(Clone, Debug)]
pub struct Header {
    /// The `descr` value as written.
    pub descr: String,
    /// True when the dtype holds Python objects (data is a pickle).
    pub object: bool,
    /// Shape, when it parses.
    pub shape: Option<Vec<u64>>,
    /// Element size in bytes, for simple dtypes.
    pub itemsize: Option<u64>,
    /// Offset of the array data.
    pub data_offset: u64,
}

impl Header {
    /// Bytes the data should take, when known.
    pub fn data_len(&self) -> Option<u64> {
        let n = self.shape.as_ref()?.iter().try_fold(1u64, |a, &d| a.checked_mul(d))?;
        n.checked_mul(self.itemsize?)
    }
}

/// Reads the header; `r` must start at the magic.
pub fn read_header(r: &mut dyn Read) -> Result<Header, Issue> {
    let invalid = |m: &str| Issue::new(Rule::FormatInvalid, Severity::High, format!("npy: {m}"));
    let mut fixed = [0u8; 8];
    r.read_exact(&mut fixed).map_err(|_| invalid("truncated header"))?;
    let (len, prefix) = match fixed[6] {
        1 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).map_err(|_| invalid("truncated header"))?;
            (u64::from(u16::from_le_bytes(b)), 10)
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b).map_err(|_| invalid("truncated header"))?;
            (u64::from(u32::from_le_bytes(b)), 12)
        }
        v => return Err(invalid(&format!("unknown format version {v}"))),
    };
    if len > 1 << 20 {
        return Err(invalid("header longer than 1 MiB"));
    }
    let mut text = Vec::new();
    r.take(len)
        .read_to_end(&mut text)
        .map_err(|_| invalid("truncated header"))?;
    if (text.len() as u64) < len {
        return Err(invalid("truncated header"));
    }
    let text = String::from_utf8_lossy(&text);
    let descr = dict_value(&text, "descr").ok_or_else(|| invalid("no `descr` in header"))?;
    let object = descr_has_object(&descr);
    let shape = dict_value(&text, "shape").and_then(|s| parse_shape(&s));
    let itemsize = simple_itemsize(&descr);
    Ok(Header {
        descr,
        object,
        shape,
        itemsize,
        data_offset: prefix + len,
    })
}

fn descr_has_object(descr: &str) -> bool {
    let d = descr.trim().trim_matches(['\'', '"']);
    d.trim_start_matches(['<', '>', '|', '=']).starts_with('O')
        || descr.contains("'O'")
        || descr.contains("'|O'")
        || descr.contains("\"O\"")
        || descr.contains("'O8'")
        || descr.contains("'|O8'")
}

fn simple_itemsize(descr: &str) -> Option<u64> {
    let d = descr.trim().strip_prefix('\'')?.strip_suffix('\'')?;
    let d = d.trim_start_matches(['<', '>', '|', '=']);
    let kind = d.chars().next()?;
    let n: u64 = d.get(1..)?.parse().ok()?;
    Some(if kind == 'U' { n.checked_mul(4)? } else { n })
}

/// The raw text of `'key': value` in a Python dict literal (value up to the matching comma).
fn dict_value(text: &str, key: &str) -> Option<String> {
    let at = text
        .find(&format!("'{key}'"))
        .or_else(|| text.find(&format!("\"{key}\"")))?;
    let rest = text
        .get(at + key.len() + 2..)?
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    for (i, c) in rest.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '[' | '{') => depth += 1,
            (None, ')' | ']' | '}') if depth > 0 => depth -= 1,
            (None, ',' | '}') if depth == 0 => return Some(rest[..i].trim().to_string()),
            _ => {}
        }
    }
    None
}

fn parse_shape(s: &str) -> Option<Vec<u64>> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix(')')?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| p.trim_end_matches('L').parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn npy(header: &str) -> Vec<u8> {
        let mut h = header.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        out.extend_from_slice(h.as_bytes());
        out
    }

    #[test]
    fn parses_simple_and_object() {
        let b = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }");
        let h = read_header(&mut &b[..]).unwrap();
        assert!(!h.object);
        assert_eq!(h.shape, Some(vec![3, 4]));
        assert_eq!(h.data_len(), Some(48));
        assert_eq!(h.data_offset, 128);
        let b = npy("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }");
        assert!(read_header(&mut &b[..]).unwrap().object);
        let b = npy("{'descr': [('a', '<i4'), ('b', '|O')], 'fortran_order': False, 'shape': (2,), }");
        assert!(read_header(&mut &b[..]).unwrap().object);
    }
}
