//! NumPy `.npy` headers. Object arrays (`descr` containing `O`) store their data as a pickle,
//! which the scan driver hands to the pickle VM; other arrays are checked for a consistent size.

use std::io::Read;

use super::pyliteral::{self, Lit};
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
    // Versions 1 and 2 are latin-1, version 3 is UTF-8; NumPy parses the dict with
    // `ast.literal_eval`, and so does `pyliteral`.
    let text: String = if fixed[6] == 3 {
        String::from_utf8(text).map_err(|_| invalid("version 3 header is not UTF-8"))?
    } else {
        text.iter().map(|&b| char::from(b)).collect()
    };
    let dict = pyliteral::parse(&text).map_err(|e| invalid(&format!("header is not a Python literal ({e})")))?;
    let Lit::Dict(items) = &dict else {
        return Err(invalid("header is not a dict"));
    };
    let mut keys: Vec<&str> = items
        .iter()
        .filter_map(|(k, _)| match k {
            Lit::Str(s) => Some(s.as_str()),
            _ => None,
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    if keys != ["descr", "fortran_order", "shape"] || items.iter().any(|(k, _)| !matches!(k, Lit::Str(_))) {
        return Err(invalid(&format!(
            "header keys {keys:?} are not exactly descr, fortran_order, shape"
        )));
    }
    let descr_lit = dict.get("descr").ok_or_else(|| invalid("no `descr` in header"))?;
    let dtype = dtype_of(descr_lit, 0)
        .map_err(|e| invalid(&format!("`descr` is not a dtype NumPy reads the same way: {e}")))?;
    if !matches!(dict.get("fortran_order"), Some(Lit::Bool(_))) {
        return Err(invalid("`fortran_order` is not a bool"));
    }
    let shape = match dict.get("shape") {
        Some(Lit::Tuple(dims)) => dims
            .iter()
            .map(|d| match d {
                Lit::Int(n) => u64::try_from(*n).ok(),
                Lit::Bool(b) => Some(u64::from(*b)),
                _ => None,
            })
            .collect::<Option<Vec<u64>>>(),
        _ => None,
    };
    let Some(shape) = shape else {
        return Err(invalid("`shape` is not a tuple of non-negative integers"));
    };
    Ok(Header {
        descr: text.trim().to_string(),
        object: dtype.object,
        shape: Some(shape),
        itemsize: dtype.itemsize,
        data_offset: prefix + len,
    })
}

/// What a `descr` means to NumPy, as far as the scanner cares.
struct Dtype {
    /// Some part holds Python objects: the data is a pickle.
    object: bool,
    /// Bytes per element, when known.
    itemsize: Option<u64>,
}

/// `numpy.lib.format.descr_to_dtype`: a string, a `(base, shape)` subarray, or a list of
/// `(name, descr[, shape])` fields, recursively.
fn dtype_of(lit: &Lit, depth: usize) -> Result<Dtype, String> {
    if depth > 32 {
        return Err("nested too deeply".into());
    }
    match lit {
        Lit::Str(s) => Ok(dtype_str(s)),
        Lit::Tuple(t) if t.len() == 2 => {
            let base = dtype_of(&t[0], depth + 1)?;
            Ok(Dtype {
                object: base.object,
                itemsize: base.itemsize.and_then(|n| n.checked_mul(shape_product(&t[1])?)),
            })
        }
        Lit::List(fields) => {
            let mut object = false;
            let mut itemsize = Some(0u64);
            for f in fields {
                let (Lit::Tuple(parts) | Lit::List(parts)) = f else {
                    return Err("a field is not a tuple".into());
                };
                let d = match parts.as_slice() {
                    [_, d] => dtype_of(d, depth + 1)?,
                    [_, d, shape] => {
                        let d = dtype_of(d, depth + 1)?;
                        Dtype {
                            object: d.object,
                            itemsize: d.itemsize.and_then(|n| n.checked_mul(shape_product(shape)?)),
                        }
                    }
                    _ => return Err("a field does not have 2 or 3 parts".into()),
                };
                object |= d.object;
                itemsize = itemsize.zip(d.itemsize).and_then(|(a, b)| a.checked_add(b));
            }
            Ok(Dtype { object, itemsize })
        }
        _ => Err("neither a string, a subarray tuple nor a field list".into()),
    }
}

fn shape_product(lit: &Lit) -> Option<u64> {
    match lit {
        Lit::Int(n) => u64::try_from(*n).ok(),
        Lit::Tuple(dims) => dims.iter().try_fold(1u64, |a, d| match d {
            Lit::Int(n) => a.checked_mul(u64::try_from(*n).ok()?),
            _ => None,
        }),
        _ => None,
    }
}

/// A dtype string: comma-separated parts (`'i4,O'` is a structured dtype), each with an
/// optional `(shape)` or repeat count, a byte-order mark and a type code or name.
fn dtype_str(s: &str) -> Dtype {
    let mut depth = 0i32;
    let top: Vec<&str> = s
        .split(|c: char| {
            depth += match c {
                '(' | '[' => 1,
                ')' | ']' => -1,
                _ => 0,
            };
            c == ',' && depth == 0
        })
        .collect();
    if top.len() > 1 {
        let parts: Vec<Dtype> = top
            .into_iter()
            .filter(|p| !p.trim().is_empty())
            .map(dtype_str)
            .collect();
        return Dtype {
            object: parts.iter().any(|p| p.object),
            itemsize: parts.iter().try_fold(0u64, |a, p| a.checked_add(p.itemsize?)),
        };
    }
    let mut t = s.trim();
    let mut count = 1u64;
    if let Some(rest) = t.strip_prefix('(') {
        if let Some(close) = rest.find(')') {
            count = rest[..close]
                .split(',')
                .filter(|d| !d.trim().is_empty())
                .try_fold(1u64, |a, d| a.checked_mul(d.trim().parse().ok()?))
                .unwrap_or(0);
            t = rest[close + 1..].trim_start();
        }
    } else {
        let digits = t.len() - t.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits > 0 {
            count = t[..digits].parse().unwrap_or(0);
            t = &t[digits..];
        }
    }
    let t = t.trim_start_matches(['<', '>', '|', '=', '!']);
    let lower = t.to_ascii_lowercase();
    let object = lower.starts_with("object") || (t.starts_with('O') && t[1..].chars().all(|c| c.is_ascii_digit()));
    let size = |kind: &str| -> Option<u64> {
        let digits = t.strip_prefix(kind)?;
        if digits.is_empty() {
            return None;
        }
        digits.parse().ok()
    };
    let itemsize = if object {
        Some(8)
    } else {
        match t {
            "b" | "B" | "?" | "c" | "b1" | "bool" => Some(1),
            "h" | "H" | "e" => Some(2),
            "i" | "I" | "f" => Some(4),
            "l" | "L" | "q" | "Q" | "d" | "F" | "p" | "P" => Some(8),
            "g" | "D" => Some(16),
            "G" => Some(32),
            _ => {
                let kind = t.chars().next().unwrap_or(' ');
                match kind {
                    'i' | 'u' | 'f' | 'c' | 'S' | 'a' | 'V' => size(&kind.to_string()),
                    'U' => size("U").and_then(|n| n.checked_mul(4)),
                    'M' | 'm' if t.get(1..2) == Some("8") => Some(8),
                    _ => None,
                }
            }
        }
    };
    Dtype {
        object,
        itemsize: itemsize.and_then(|n| n.checked_mul(count)),
    }
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

    #[test]
    fn object_dtypes_in_every_spelling_and_a_field_named_o_is_not_one() {
        for descr in [
            "'\\x4f'",
            "'O' ''",
            "'object'",
            "'|O8'",
            "'i4,O'",
            "('O', (2,))",
            "[('x', '<f8', (2,)), (('title', 'y'), 'O')]",
            "'(3,)O'",
        ] {
            let b = npy(&format!(
                "{{'descr': {descr}, 'fortran_order': False, 'shape': (2,), }}"
            ));
            assert!(read_header(&mut &b[..]).unwrap().object, "{descr}");
        }
        let b = npy("{'descr': [('O', '<f8'), ('x', '<i4')], 'fortran_order': False, 'shape': (3,), }");
        let h = read_header(&mut &b[..]).unwrap();
        assert!(!h.object);
        assert_eq!(h.data_len(), Some(36));
        // the last `descr` counts, as in a Python dict
        let b = npy("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'descr': '|O'}");
        assert!(read_header(&mut &b[..]).unwrap().object);
    }
}
