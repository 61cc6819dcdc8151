//! A byte source for the pickle VM: streaming, position-tracking, and never allocating what an
//! attacker-chosen length field asks for before the bytes are actually there.

use std::io::{self, BufRead, Read};

/// Longest text line (GLOBAL/INST operands, INT, FLOAT, STRING ...) the VM accepts. CPython has
/// no such limit, but a longer import operand is already a finding and we must bound memory.
pub(crate) const MAX_LINE: usize = 64 * 1024;
/// How much of a string operand is kept; the rest is read and dropped.
pub(crate) const KEEP_STRING: usize = 64 * 1024;

/// Why reading stopped.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The stream ended inside an opcode or its argument.
    Eof,
    /// A text argument was longer than [`MAX_LINE`].
    LineTooLong,
    /// The underlying reader failed (not the pickle's fault).
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            ReadError::Eof
        } else {
            ReadError::Io(e)
        }
    }
}

pub(crate) struct Input<R> {
    inner: R,
    pos: u64,
}

impl<R: BufRead> Input<R> {
    pub(crate) fn new(inner: R, start: u64) -> Self {
        Input { inner, pos: start }
    }

    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    /// The next byte without consuming it.
    pub(crate) fn peek(&mut self) -> Result<Option<u8>, ReadError> {
        Ok(self.inner.fill_buf()?.first().copied())
    }

    /// True when the unread bytes start with `prefix` (looked at in the buffer only).
    pub(crate) fn starts_with(&mut self, prefix: &[u8]) -> bool {
        self.inner.fill_buf().is_ok_and(|b| b.starts_with(prefix))
    }

    pub(crate) fn u8(&mut self) -> Result<u8, ReadError> {
        let mut b = [0u8; 1];
        self.inner.read_exact(&mut b)?;
        self.pos += 1;
        Ok(b[0])
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], ReadError> {
        let mut b = [0u8; N];
        self.inner.read_exact(&mut b)?;
        self.pos += N as u64;
        Ok(b)
    }

    /// Reads `len` bytes, keeping at most `keep` of them. The rest is consumed in chunks, so a
    /// length field of 2^63 costs nothing until the bytes really arrive.
    pub(crate) fn bytes(&mut self, len: u64, keep: usize) -> Result<(Vec<u8>, bool), ReadError> {
        let kept_len = usize::try_from(len).unwrap_or(usize::MAX).min(keep);
        let mut kept = vec![0u8; kept_len];
        self.inner.read_exact(&mut kept)?;
        self.pos += kept_len as u64;
        let rest = len - kept_len as u64;
        if rest > 0 {
            self.skip(rest)?;
        }
        Ok((kept, rest > 0))
    }

    /// Consumes `len` bytes without keeping them.
    pub(crate) fn skip(&mut self, len: u64) -> Result<(), ReadError> {
        let copied = io::copy(&mut (&mut self.inner).take(len), &mut io::sink())?;
        self.pos += copied;
        if copied < len {
            return Err(ReadError::Eof);
        }
        Ok(())
    }

    /// A `\n`-terminated line without its terminator (CPython's `readline`). A missing newline
    /// at the end of the stream is an error, as in CPython.
    pub(crate) fn line(&mut self) -> Result<Vec<u8>, ReadError> {
        let mut out = Vec::new();
        loop {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                return Err(ReadError::Eof);
            }
            if let Some(i) = buf.iter().position(|&b| b == b'\n') {
                out.extend_from_slice(&buf[..i]);
                self.inner.consume(i + 1);
                self.pos += i as u64 + 1;
                break;
            }
            let n = buf.len();
            out.extend_from_slice(buf);
            self.inner.consume(n);
            self.pos += n as u64;
            if out.len() > MAX_LINE {
                return Err(ReadError::LineTooLong);
            }
        }
        if out.len() > MAX_LINE {
            return Err(ReadError::LineTooLong);
        }
        Ok(out)
    }
}
