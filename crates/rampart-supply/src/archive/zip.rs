//! A lenient ZIP reader that reads what PyTorch's loader (miniz behind
//! `PyTorchStreamReader`) would read, and reports every place where another reader would
//! disagree.
//!
//! Scanners built on Python's `zipfile` have been bypassed by archives it rejects but PyTorch
//! accepts: a local-header name different from the central directory's (CVE-2025-1944),
//! flag bits such as "encrypted" that PyTorch ignores (CVE-2025-1945), a bad CRC
//! (CVE-2025-10156), a corrupt earlier entry that aborts iteration. So this reader never
//! aborts: it takes the central directory as the index (as miniz does), reads each entry's data
//! through its *local* header, ignores flags and CRCs for reading, and turns every
//! inconsistency into an [`Anomaly`]. It also walks the local headers from the front to find
//! entries the central directory hides.

use std::io::{self, Read, Seek, SeekFrom};

/// Largest central directory we accept (entries × size); larger is itself a finding.
const MAX_CD_BYTES: u64 = 256 * 1024 * 1024;
/// Local headers walked from the front at most.
const MAX_LOCAL_WALK: usize = 1_000_000;

/// One entry as the loader will see it.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Name from the central directory (what a loader looks up).
    pub name: String,
    /// Name in the local header, when it differs.
    pub local_name: Option<String>,
    /// Compression method (0 stored, 8 deflate, ...).
    pub method: u16,
    /// General-purpose flag bits from the central directory.
    pub flags: u16,
    /// CRC-32 the central directory claims.
    pub crc32: u32,
    /// Compressed size.
    pub compressed: u64,
    /// Uncompressed size claimed.
    pub size: u64,
    /// Offset of the entry's data (after its local header).
    pub data_offset: u64,
    /// Offset of the local header.
    pub header_offset: u64,
    /// True when only the front-to-back walk of local headers found it.
    pub hidden: bool,
    /// What Python's `zipfile` calls it up to 3.11: the name decoded as UTF-8 or cp437 (by
    /// flag bit 11) and cut at the first NUL.
    pub python_legacy: String,
    /// What Python's `zipfile` calls it from 3.12 on: the Info-ZIP Unicode Path extra field
    /// (0x7075) replaces the name when its CRC matches the raw name.
    pub python: String,
}

impl Entry {
    /// Every distinct name a supported reader gives this entry (PyTorch's miniz first).
    pub fn names(&self) -> Vec<&str> {
        let mut out = vec![self.name.as_str()];
        for n in [&self.python_legacy, &self.python] {
            if !out.contains(&n.as_str()) {
                out.push(n);
            }
        }
        out
    }
}

/// The 128 upper code points of cp437, the historical ZIP name encoding Python falls back to.
const CP437_HIGH: &str = "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u{a0}";

fn cp437(bytes: &[u8]) -> String {
    let high: Vec<char> = CP437_HIGH.chars().collect();
    bytes
        .iter()
        .map(|&b| {
            if b < 0x80 {
                char::from(b)
            } else {
                high.get(usize::from(b - 0x80)).copied().unwrap_or('?')
            }
        })
        .collect()
}

/// Python's `ZipInfo` sanitising: the name ends at the first NUL.
fn cut_at_nul(name: &str) -> String {
    name.split('\0').next().unwrap_or_default().to_string()
}

/// How Python's `zipfile` reads a central-directory name: `(3.11 and older, 3.12 and newer,
/// a note when the Unicode Path field is present but not applied)`.
fn python_names(raw: &[u8], flags: u16, extra: &[u8]) -> (String, String, Option<String>) {
    let decoded = if flags & 0x0800 != 0 {
        match std::str::from_utf8(raw) {
            Ok(s) => s.to_string(),
            // zipfile raises on it; no Python reads this member under any name.
            Err(_) => String::from_utf8_lossy(raw).into_owned(),
        }
    } else {
        cp437(raw)
    };
    let legacy = cut_at_nul(&decoded);
    let mut modern = legacy.clone();
    let mut note = None;
    let mut i = 0;
    while i + 4 <= extra.len() {
        let id = u16_at(extra, i);
        let n = usize::from(u16_at(extra, i + 2));
        let body = extra.get(i + 4..i + 4 + n).unwrap_or_default();
        if id == 0x7075 && body.len() >= 5 {
            let crc = u32_at(body, 1);
            if body[0] != 1 {
                note = Some(format!("a Unicode Path extra field of version {} is ignored", body[0]));
            } else if crc != crc32fast::hash(raw) {
                note = Some(
                    "a stale Unicode Path extra field (its CRC does not match the name) is ignored by Python".into(),
                );
            } else {
                match std::str::from_utf8(&body[5..]) {
                    Ok("") => {}
                    Ok(s) => modern = cut_at_nul(s),
                    Err(_) => {
                        note = Some(
                            "the Unicode Path extra field is not UTF-8: Python 3.12+ refuses the whole archive".into(),
                        )
                    }
                }
            }
        }
        i += 4 + n;
    }
    (legacy, modern, note)
}

/// An inconsistency a strict reader would reject or read differently.
#[derive(Clone, Debug)]
pub struct Anomaly {
    /// Entry it concerns, if any.
    pub entry: Option<String>,
    /// What is wrong.
    pub detail: String,
}

/// The archive's index.
#[derive(Debug, Default)]
pub struct Archive {
    /// Entries in central-directory order, then hidden ones.
    pub entries: Vec<Entry>,
    /// Inconsistencies found while indexing.
    pub anomalies: Vec<Anomaly>,
}

/// Why the archive could not be indexed at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ZipError {
    /// I/O failure.
    #[error("read error: {0}")]
    Io(#[from] io::Error),
    /// No end-of-central-directory record and no readable local header.
    #[error("no zip end-of-central-directory record and no readable local header")]
    NotZip,
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    b.get(i..i + 2).map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}
fn u32_at(b: &[u8], i: usize) -> u32 {
    b.get(i..i + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}
fn u64_at(b: &[u8], i: usize) -> u64 {
    b.get(i..i + 8).map_or(0, |s| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        u64::from_le_bytes(a)
    })
}

fn read_at<R: Read + Seek + ?Sized>(r: &mut R, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    r.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(len.min(1 << 20));
    (&mut *r).take(len as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// True when `head` (the first bytes) or the tail of a `len`-byte file looks like a zip.
pub fn looks_like_zip<R: Read + Seek + ?Sized>(r: &mut R, head: &[u8], len: u64) -> io::Result<bool> {
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Ok(true);
    }
    Ok(find_eocd(r, len)?.is_some())
}

fn find_eocd<R: Read + Seek + ?Sized>(r: &mut R, len: u64) -> io::Result<Option<(u64, Vec<u8>)>> {
    if len < 22 {
        return Ok(None);
    }
    let window = len.min(65_535 + 22);
    let start = len - window;
    let tail = read_at(r, start, window as usize)?;
    let Some(i) = tail.windows(4).rposition(|w| w == b"PK\x05\x06") else {
        return Ok(None);
    };
    // A comment length that runs past the end means this is not a real EOCD (or a lying one);
    // accept it anyway (miniz does) but only if the fixed part is complete.
    if tail.len() < i + 22 {
        return Ok(None);
    }
    Ok(Some((start + i as u64, tail[i..].to_vec())))
}

impl Archive {
    /// Indexes the archive in `r` (`len` bytes).
    pub fn open<R: Read + Seek + ?Sized>(r: &mut R, len: u64) -> Result<Archive, ZipError> {
        let mut archive = Archive::default();
        let eocd = find_eocd(r, len)?;
        let had_eocd = eocd.is_some();
        let central = match eocd {
            Some((eocd_at, eocd)) => archive.read_central(r, len, eocd_at, &eocd)?,
            None => {
                archive.anomalies.push(Anomaly {
                    entry: None,
                    detail: "no end-of-central-directory record: entries found by walking local headers".into(),
                });
                Vec::new()
            }
        };
        archive.entries = central;
        archive.walk_local(r, len)?;
        if archive.entries.is_empty() && !had_eocd {
            return Err(ZipError::NotZip);
        }
        Ok(archive)
    }

    fn read_central<R: Read + Seek + ?Sized>(
        &mut self,
        r: &mut R,
        len: u64,
        eocd_at: u64,
        eocd: &[u8],
    ) -> Result<Vec<Entry>, ZipError> {
        let mut count = u64::from(u16_at(eocd, 10));
        let mut cd_size = u64::from(u32_at(eocd, 12));
        let mut cd_offset = u64::from(u32_at(eocd, 16));
        // ZIP64: locator 20 bytes before the EOCD.
        if eocd_at >= 20 {
            let loc = read_at(r, eocd_at - 20, 20)?;
            if loc.starts_with(b"PK\x06\x07") {
                let z64_at = u64_at(&loc, 8);
                let z64 = read_at(r, z64_at, 56)?;
                if z64.starts_with(b"PK\x06\x06") {
                    count = u64_at(&z64, 32);
                    cd_size = u64_at(&z64, 40);
                    cd_offset = u64_at(&z64, 48);
                }
            }
        }
        // Data prepended to the archive shifts every offset; miniz and zipfile both correct
        // for it by comparing where the directory is with where it says it is.
        let expected_cd_end = cd_offset.saturating_add(cd_size);
        let mut shift = 0u64;
        if expected_cd_end < eocd_at && !eocd_at_has_zip64(r, eocd_at)? {
            shift = eocd_at - expected_cd_end;
            self.anomalies.push(Anomaly {
                entry: None,
                detail: format!("{shift} byte(s) precede the archive (prepended data)"),
            });
        }
        if cd_size > MAX_CD_BYTES || cd_offset.saturating_add(shift).saturating_add(cd_size) > len {
            self.anomalies.push(Anomaly {
                entry: None,
                detail: format!("central directory (offset {cd_offset}, {cd_size} bytes) lies outside the file"),
            });
            return Ok(Vec::new());
        }
        let cd = read_at(r, cd_offset + shift, cd_size as usize)?;
        let mut entries = Vec::new();
        let mut i = 0usize;
        while i + 46 <= cd.len() {
            if &cd[i..i + 4] != b"PK\x01\x02" {
                self.anomalies.push(Anomaly {
                    entry: None,
                    detail: format!("central directory is corrupt at entry {}", entries.len()),
                });
                break;
            }
            let flags = u16_at(&cd, i + 8);
            let method = u16_at(&cd, i + 10);
            let crc32 = u32_at(&cd, i + 16);
            let mut compressed = u64::from(u32_at(&cd, i + 20));
            let mut size = u64::from(u32_at(&cd, i + 24));
            let name_len = usize::from(u16_at(&cd, i + 28));
            let extra_len = usize::from(u16_at(&cd, i + 30));
            let comment_len = usize::from(u16_at(&cd, i + 32));
            let mut header_offset = u64::from(u32_at(&cd, i + 42));
            let name_bytes = cd.get(i + 46..i + 46 + name_len).unwrap_or_default();
            let name = String::from_utf8_lossy(name_bytes).into_owned();
            let extra = cd
                .get(i + 46 + name_len..i + 46 + name_len + extra_len)
                .unwrap_or_default();
            zip64_extra(extra, &mut size, &mut compressed, &mut header_offset);
            let (python_legacy, python, note) = python_names(name_bytes, flags, extra);
            self.name_anomalies(&name, name_bytes, flags, &python_legacy, &python, note);
            header_offset = header_offset.saturating_add(shift);
            entries.push(Entry {
                name,
                local_name: None,
                method,
                flags,
                crc32,
                compressed,
                size,
                data_offset: 0,
                header_offset,
                hidden: false,
                python_legacy,
                python,
            });
            i += 46 + name_len + extra_len + comment_len;
        }
        if (entries.len() as u64) != count {
            self.anomalies.push(Anomaly {
                entry: None,
                detail: format!(
                    "end record says {count} entries, central directory has {}",
                    entries.len()
                ),
            });
        }
        let mut seen_python = std::collections::HashMap::new();
        for e in &entries {
            for n in [&e.python_legacy, &e.python] {
                if let Some(first) = seen_python.insert(n.clone(), e.name.clone()) {
                    if first != e.name {
                        self.anomalies.push(Anomaly {
                            entry: Some(e.name.clone()),
                            detail: format!(
                                "Python's zipfile reads both `{}` and `{}` as `{n}`: the last one wins there, PyTorch sees two members",
                                printable(&first),
                                printable(&e.name)
                            ),
                        });
                    }
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        for e in &mut entries {
            if !seen.insert(e.name.clone()) {
                self.anomalies.push(Anomaly {
                    entry: Some(e.name.clone()),
                    detail: "duplicate entry name: readers disagree on which one is loaded".into(),
                });
            }
            if e.flags & 0x0001 != 0 {
                self.anomalies.push(Anomaly {
                    entry: Some(e.name.clone()),
                    detail: "the 'encrypted' flag is set but PyTorch ignores it and loads the data".into(),
                });
            }
            if e.flags & !0x080f != 0 {
                self.anomalies.push(Anomaly {
                    entry: Some(e.name.clone()),
                    detail: format!("unusual general-purpose flag bits 0x{:04x}", e.flags),
                });
            }
            match read_local(r, e.header_offset, len) {
                Ok(Some(local)) => {
                    if local.name != e.name {
                        self.anomalies.push(Anomaly {
                            entry: Some(e.name.clone()),
                            detail: format!(
                                "local header names it `{}` (central directory: `{}`)",
                                local.name, e.name
                            ),
                        });
                        e.local_name = Some(local.name.clone());
                    }
                    if local.flags != e.flags {
                        self.anomalies.push(Anomaly {
                            entry: Some(e.name.clone()),
                            detail: format!(
                                "flag bits differ: local 0x{:04x}, central 0x{:04x}",
                                local.flags, e.flags
                            ),
                        });
                    }
                    if local.method != e.method {
                        self.anomalies.push(Anomaly {
                            entry: Some(e.name.clone()),
                            detail: format!(
                                "compression method differs: local {}, central {}",
                                local.method, e.method
                            ),
                        });
                    }
                    e.data_offset = local.data_offset;
                }
                Ok(None) | Err(_) => {
                    self.anomalies.push(Anomaly {
                        entry: Some(e.name.clone()),
                        detail: format!("no valid local header at offset {}", e.header_offset),
                    });
                    // Take the data to follow a minimal header; reading will report if not.
                    e.data_offset = e.header_offset.saturating_add(30 + e.name.len() as u64);
                }
            }
            if e.data_offset.saturating_add(e.compressed) > len {
                self.anomalies.push(Anomaly {
                    entry: Some(e.name.clone()),
                    detail: "entry data runs past the end of the file".into(),
                });
            }
        }
        // Members whose bytes overlap (the "quoted overlap" zip bomb, or two names for one
        // payload): newer Pythons refuse the archive, miniz reads both.
        let mut spans: Vec<(u64, u64, &str)> = entries
            .iter()
            .map(|e| {
                (
                    e.header_offset,
                    e.data_offset.saturating_add(e.compressed),
                    e.name.as_str(),
                )
            })
            .collect();
        spans.sort_unstable();
        let mut overlaps = Vec::new();
        for w in spans.windows(2) {
            if w[1].0 < w[0].1 {
                overlaps.push(Anomaly {
                    entry: Some(w[1].2.to_string()),
                    detail: format!(
                        "its bytes overlap those of `{}`: Python's zipfile refuses the archive (overlapped entries), PyTorch reads both",
                        printable(w[0].2)
                    ),
                });
            }
        }
        self.anomalies.extend(overlaps);
        Ok(entries)
    }

    /// Records each way readers may disagree on a member's name.
    fn name_anomalies(&mut self, name: &str, raw: &[u8], flags: u16, legacy: &str, modern: &str, note: Option<String>) {
        let mut push = |detail: String| {
            self.anomalies.push(Anomaly {
                entry: Some(name.to_string()),
                detail,
            })
        };
        if raw.contains(&0) {
            push(format!(
                "the name holds a NUL byte: Python's zipfile reads it as `{legacy}`, PyTorch (miniz) as `{}`",
                printable(name)
            ));
        } else if flags & 0x0800 == 0 && !raw.is_ascii() {
            push(format!(
                "non-ASCII name without the UTF-8 flag: Python reads it as cp437 `{legacy}`, PyTorch as `{}`",
                printable(name)
            ));
        } else if flags & 0x0800 != 0 && std::str::from_utf8(raw).is_err() {
            push("the UTF-8 flag is set but the name is not UTF-8: Python's zipfile refuses the archive".into());
        }
        if modern != legacy {
            push(format!(
                "a Unicode Path extra field renames it to `{modern}` for Python 3.12 and newer (older Pythons and PyTorch read `{}`)",
                printable(legacy)
            ));
        }
        if let Some(note) = note {
            push(note);
        }
        if name.contains('\\') {
            push(format!(
                "backslash in the name: Python on Windows reads `{}`",
                name.replace('\\', "/")
            ));
        }
    }

    /// Walks local headers from the start; entries the central directory does not list are
    /// added as hidden.
    fn walk_local<R: Read + Seek + ?Sized>(&mut self, r: &mut R, len: u64) -> Result<(), ZipError> {
        let known: std::collections::HashSet<u64> = self.entries.iter().map(|e| e.header_offset).collect();
        let mut offset = 0u64;
        for _ in 0..MAX_LOCAL_WALK {
            let Ok(Some(local)) = read_local(r, offset, len) else {
                break;
            };
            let mut compressed = local.compressed;
            if local.flags & 0x0008 != 0 || compressed == u64::from(u32::MAX) {
                // Sizes in a trailing data descriptor: take them from the central directory.
                match self.entries.iter().find(|e| e.header_offset == offset) {
                    Some(e) => compressed = e.compressed,
                    None => break,
                }
            }
            if !known.contains(&offset) {
                self.anomalies.push(Anomaly {
                    entry: Some(local.name.clone()),
                    detail: format!("local entry at offset {offset} is not in the central directory"),
                });
                self.entries.push(Entry {
                    python_legacy: cut_at_nul(&local.name),
                    python: cut_at_nul(&local.name),
                    name: local.name.clone(),
                    local_name: None,
                    method: local.method,
                    flags: local.flags,
                    crc32: local.crc32,
                    compressed,
                    size: local.size,
                    data_offset: local.data_offset,
                    header_offset: offset,
                    hidden: true,
                });
            }
            let mut next = local.data_offset.saturating_add(compressed);
            if local.flags & 0x0008 != 0 {
                // Skip an optional data descriptor (with or without its signature).
                let d = read_at(r, next, 4)?;
                next += if d == b"PK\x07\x08" { 16 } else { 12 };
            }
            if next <= offset {
                break;
            }
            offset = next;
        }
        Ok(())
    }
}

/// A name with control characters escaped, for messages.
fn printable(name: &str) -> String {
    name.chars().flat_map(char::escape_debug).collect()
}

fn eocd_at_has_zip64<R: Read + Seek + ?Sized>(r: &mut R, eocd_at: u64) -> io::Result<bool> {
    if eocd_at < 20 {
        return Ok(false);
    }
    Ok(read_at(r, eocd_at - 20, 4)? == b"PK\x06\x07")
}

struct Local {
    name: String,
    flags: u16,
    method: u16,
    crc32: u32,
    compressed: u64,
    size: u64,
    data_offset: u64,
}

fn read_local<R: Read + Seek + ?Sized>(r: &mut R, offset: u64, len: u64) -> io::Result<Option<Local>> {
    if offset.saturating_add(30) > len {
        return Ok(None);
    }
    let h = read_at(r, offset, 30)?;
    if h.len() < 30 || &h[0..4] != b"PK\x03\x04" {
        return Ok(None);
    }
    let name_len = usize::from(u16_at(&h, 26));
    let extra_len = usize::from(u16_at(&h, 28));
    let tail = read_at(r, offset + 30, name_len + extra_len)?;
    let name = String::from_utf8_lossy(tail.get(..name_len).unwrap_or_default()).into_owned();
    let mut size = u64::from(u32_at(&h, 22));
    let mut compressed = u64::from(u32_at(&h, 18));
    let mut dummy = 0;
    zip64_extra(
        tail.get(name_len..).unwrap_or_default(),
        &mut size,
        &mut compressed,
        &mut dummy,
    );
    Ok(Some(Local {
        name,
        flags: u16_at(&h, 6),
        method: u16_at(&h, 8),
        crc32: u32_at(&h, 14),
        compressed,
        size,
        data_offset: offset + 30 + (name_len + extra_len) as u64,
    }))
}

/// Applies a ZIP64 extended-information extra field (id 0x0001).
fn zip64_extra(extra: &[u8], size: &mut u64, compressed: &mut u64, offset: &mut u64) {
    let mut i = 0;
    while i + 4 <= extra.len() {
        let id = u16_at(extra, i);
        let n = usize::from(u16_at(extra, i + 2));
        let body = extra.get(i + 4..i + 4 + n).unwrap_or_default();
        if id == 1 {
            let mut j = 0;
            for field in [&mut *size, &mut *compressed, &mut *offset] {
                if *field == u64::from(u32::MAX) && j + 8 <= body.len() {
                    *field = u64_at(body, j);
                    j += 8;
                }
            }
        }
        i += 4 + n;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    /// `(name, data, central extra field, flags)`.
    type RawEntry<'a> = (&'a [u8], &'a [u8], Vec<u8>, u16);

    /// A stored zip with names, flags and central extra fields written byte for byte.
    fn raw_zip(entries: &[RawEntry<'_>]) -> Vec<u8> {
        let (mut out, mut central) = (Vec::new(), Vec::new());
        for (name, data, extra, flags) in entries {
            let crc = crc32fast::hash(data);
            let off = out.len() as u32;
            out.extend_from_slice(b"PK\x03\x04\x14\x00");
            out.extend_from_slice(&flags.to_le_bytes());
            out.extend_from_slice(&[0, 0, 0, 0, 0x21, 0]);
            for v in [crc, data.len() as u32, data.len() as u32] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(name);
            out.extend_from_slice(data);
            central.extend_from_slice(b"PK\x01\x02\x14\x00\x14\x00");
            central.extend_from_slice(&flags.to_le_bytes());
            central.extend_from_slice(&[0, 0, 0, 0, 0x21, 0]);
            for v in [crc, data.len() as u32, data.len() as u32] {
                central.extend_from_slice(&v.to_le_bytes());
            }
            central.extend_from_slice(&(name.len() as u16).to_le_bytes());
            central.extend_from_slice(&(extra.len() as u16).to_le_bytes());
            central.extend_from_slice(&[0; 10]);
            central.extend_from_slice(&off.to_le_bytes());
            central.extend_from_slice(name);
            central.extend_from_slice(extra);
        }
        let cd_off = out.len() as u32;
        let n = entries.len() as u16;
        out.extend_from_slice(&central);
        out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_off.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out
    }

    fn unicode_path(raw: &[u8], new: &[u8]) -> Vec<u8> {
        let mut body = vec![1u8];
        body.extend_from_slice(&crc32fast::hash(raw).to_le_bytes());
        body.extend_from_slice(new);
        let mut e = 0x7075u16.to_le_bytes().to_vec();
        e.extend_from_slice(&(body.len() as u16).to_le_bytes());
        e.extend_from_slice(&body);
        e
    }

    fn open(bytes: &[u8]) -> Archive {
        Archive::open(&mut io::Cursor::new(bytes), bytes.len() as u64).unwrap()
    }

    #[test]
    fn each_reader_names_members_its_own_way() {
        let z = raw_zip(&[
            (b"data.pkl", b"a", Vec::new(), 0),
            (b"data.pkl\0.bak", b"b", Vec::new(), 0),
            (b"data/1", b"c", unicode_path(b"data/1", b"data.pkl"), 0),
            (b"caf\x82.txt", b"d", Vec::new(), 0),
        ]);
        let a = open(&z);
        let e = &a.entries;
        assert_eq!(e[1].python_legacy, "data.pkl");
        assert_eq!(e[1].name, "data.pkl\0.bak");
        assert_eq!(
            (e[2].python_legacy.as_str(), e[2].python.as_str()),
            ("data/1", "data.pkl")
        );
        assert_eq!(e[3].python, "café.txt");
        let details: Vec<&str> = a.anomalies.iter().map(|x| x.detail.as_str()).collect();
        for want in ["NUL byte", "renames it", "the last one wins", "cp437"] {
            assert!(details.iter().any(|d| d.contains(want)), "{want}: {details:#?}");
        }
        // a stale field (its CRC is for another name) renames nothing
        let z = raw_zip(&[(b"data/1", b"c", unicode_path(b"other", b"data.pkl"), 0)]);
        let a = open(&z);
        assert_eq!(a.entries[0].python, "data/1");
        assert!(a.anomalies.iter().any(|x| x.detail.contains("stale")));
        // two directory entries over the same bytes
        let mut z = raw_zip(&[(b"a.npy", b"xxxx", Vec::new(), 0), (b"b.npy", b"yyyy", Vec::new(), 0)]);
        let second = z.windows(4).rposition(|w| w == b"PK\x01\x02").unwrap();
        z[second + 42..second + 46].copy_from_slice(&0u32.to_le_bytes());
        assert!(open(&z).anomalies.iter().any(|x| x.detail.contains("overlap")));
        // a plain archive has no anomalies
        let z = raw_zip(&[
            (b"a.npy", b"x", Vec::new(), 0),
            ("ü.npy".as_bytes(), b"y", Vec::new(), 0x0800),
        ]);
        assert!(open(&z).anomalies.is_empty(), "{:?}", open(&z).anomalies);
    }
}
