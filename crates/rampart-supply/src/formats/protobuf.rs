//! A streaming protobuf wire reader for the graph formats (ONNX, TensorFlow SavedModel).
//!
//! Their loaders parse the whole message; we walk it field by field with the schema in the
//! caller, descending into the messages that matter and skipping everything else (weights are
//! skipped, never buffered), so a 2 GB ONNX file costs a read, not 2 GB of memory.

use std::io::{self, Read};

/// Nested messages deeper than this are not followed (a limit finding, not a crash).
pub const MAX_DEPTH: u32 = 64;

/// One field's value as the wire gives it. Fixed-width fields are consumed by [`Wire::next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// A varint.
    Varint(u64),
    /// A length-delimited field of this many bytes, not read yet: descend or skip.
    Len(u64),
    /// A 32- or 64-bit fixed field (already consumed).
    Fixed,
}

/// A protobuf stream with a position.
pub struct Wire<R> {
    r: R,
    /// Bytes consumed so far.
    pub pos: u64,
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

impl<R: Read> Wire<R> {
    /// Wraps a reader positioned at the start of a message.
    pub fn new(r: R) -> Self {
        Wire { r, pos: 0 }
    }

    fn byte(&mut self) -> io::Result<Option<u8>> {
        let mut b = [0u8; 1];
        loop {
            return match self.r.read(&mut b) {
                Ok(0) => Ok(None),
                Ok(_) => {
                    self.pos += 1;
                    Ok(Some(b[0]))
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
        }
    }

    fn varint_after(&mut self, first: u8) -> io::Result<u64> {
        let mut v = u64::from(first & 0x7f);
        let mut b = first;
        let mut shift = 7;
        while b & 0x80 != 0 {
            if shift > 63 {
                return Err(bad("varint longer than 10 bytes"));
            }
            b = self
                .byte()?
                .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
            v |= u64::from(b & 0x7f) << shift;
            shift += 7;
        }
        Ok(v)
    }

    /// The next field of the message that ends at `end` (`u64::MAX`: at end of stream), or
    /// `None` at its end. A field that would run past `end` is an error.
    pub fn next(&mut self, end: u64) -> io::Result<Option<(u32, Field)>> {
        if self.pos >= end {
            return Ok(None);
        }
        let Some(first) = self.byte()? else {
            return if end == u64::MAX {
                Ok(None)
            } else {
                Err(io::ErrorKind::UnexpectedEof.into())
            };
        };
        let key = self.varint_after(first)?;
        let number = u32::try_from(key >> 3).map_err(|_| bad("field number out of range"))?;
        if number == 0 {
            return Err(bad("field number 0"));
        }
        let field = match key & 7 {
            0 => {
                let b = self
                    .byte()?
                    .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
                Field::Varint(self.varint_after(b)?)
            }
            1 => {
                self.skip(8)?;
                Field::Fixed
            }
            5 => {
                self.skip(4)?;
                Field::Fixed
            }
            2 => {
                let b = self
                    .byte()?
                    .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
                let len = self.varint_after(b)?;
                if self.pos.checked_add(len).is_none_or(|e| e > end) {
                    return Err(bad("a field runs past the end of its message"));
                }
                Field::Len(len)
            }
            _ => return Err(bad("unsupported wire type (groups or invalid)")),
        };
        if self.pos > end {
            return Err(bad("a field runs past the end of its message"));
        }
        Ok(Some((number, field)))
    }

    /// Skips `n` bytes, failing if the stream ends first.
    pub fn skip(&mut self, n: u64) -> io::Result<()> {
        let copied = io::copy(&mut (&mut self.r).take(n), &mut io::sink())?;
        self.pos += copied;
        if copied < n {
            Err(io::ErrorKind::UnexpectedEof.into())
        } else {
            Ok(())
        }
    }

    /// Reads a string field of `n` bytes, keeping at most `cap` bytes (the rest is skipped).
    pub fn string(&mut self, n: u64, cap: usize) -> io::Result<String> {
        let keep = n.min(cap as u64);
        let mut buf = Vec::with_capacity(keep as usize);
        let got = (&mut self.r).take(keep).read_to_end(&mut buf)?;
        self.pos += got as u64;
        if (got as u64) < keep {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.skip(n - keep)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn fields_are_read_and_overruns_refused() {
        // field 1 varint 300, field 2 "hi", field 3 fixed32
        let msg = [0x08, 0xac, 0x02, 0x12, 0x02, b'h', b'i', 0x1d, 1, 2, 3, 4];
        let mut w = Wire::new(&msg[..]);
        assert_eq!(w.next(u64::MAX).unwrap(), Some((1, Field::Varint(300))));
        assert_eq!(w.next(u64::MAX).unwrap(), Some((2, Field::Len(2))));
        assert_eq!(w.string(2, 16).unwrap(), "hi");
        assert_eq!(w.next(u64::MAX).unwrap(), Some((3, Field::Fixed)));
        assert_eq!(w.next(u64::MAX).unwrap(), None);
        let overrun = [0x12, 0x05, b'h'];
        assert!(Wire::new(&overrun[..]).next(3).is_err());
        let truncated = [0x12, 0x05, b'h'];
        let mut w = Wire::new(&truncated[..]);
        let (_, f) = w.next(u64::MAX).unwrap().unwrap();
        assert_eq!(f, Field::Len(5));
        assert!(w.skip(5).is_err());
    }
}
