//! A bounded Server-Sent Events framer for upstream streams.
//!
//! Hand-written rather than taken from an SSE crate because Rampart needs two things those do
//! not give: a hard cap on buffered bytes (an upstream that never sends a newline must not
//! grow memory without bound) and events handed over the moment their blank line arrives, so
//! they can be checked and forwarded at once. Line endings follow the spec: `\n`, `\r\n` or
//! `\r`, also when split across chunks.

/// One complete event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The `event:` field, when present.
    pub name: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// A stream that is not valid SSE within Rampart's bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SseError {
    /// A line or event is larger than the cap.
    #[error("event exceeds {0} bytes")]
    TooLarge(usize),
    /// A line is not UTF-8.
    #[error("event is not valid UTF-8")]
    NotUtf8,
}

/// Incremental parser state.
#[derive(Debug)]
pub struct Framer {
    line: Vec<u8>,
    data: String,
    has_data: bool,
    name: Option<String>,
    pending_cr: bool,
    max: usize,
}

impl Framer {
    /// A framer that refuses any event larger than `max` bytes.
    pub fn new(max: usize) -> Framer {
        Framer {
            line: Vec::new(),
            data: String::new(),
            has_data: false,
            name: None,
            pending_cr: false,
            max,
        }
    }

    /// Feeds bytes; complete events are appended to `out`.
    pub fn push(&mut self, mut chunk: &[u8], out: &mut Vec<Event>) -> Result<(), SseError> {
        if self.pending_cr {
            self.pending_cr = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        while !chunk.is_empty() {
            match chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
                None => {
                    self.grow(chunk)?;
                    break;
                }
                Some(i) => {
                    let (head, tail) = chunk.split_at(i);
                    self.grow(head)?;
                    let mut rest = tail.get(1..).unwrap_or_default();
                    if tail.first() == Some(&b'\r') {
                        match rest.first() {
                            Some(b'\n') => rest = rest.get(1..).unwrap_or_default(),
                            None => self.pending_cr = true,
                            Some(_) => {}
                        }
                    }
                    self.end_line(out)?;
                    chunk = rest;
                }
            }
        }
        Ok(())
    }

    /// Whether bytes of an unfinished event are buffered.
    pub fn has_partial(&self) -> bool {
        !self.line.is_empty() || self.has_data
    }

    fn grow(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        if self.line.len() + self.data.len() + bytes.len() > self.max {
            return Err(SseError::TooLarge(self.max));
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn end_line(&mut self, out: &mut Vec<Event>) -> Result<(), SseError> {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            if self.has_data {
                out.push(Event {
                    name: self.name.take(),
                    data: std::mem::take(&mut self.data),
                });
                self.has_data = false;
            } else {
                self.name = None;
            }
            return Ok(());
        }
        let line = String::from_utf8(line).map_err(|_| SseError::NotUtf8)?;
        let (field, value) = match line.find(':') {
            Some(0) => return Ok(()), // comment
            Some(i) => {
                let (f, v) = line.split_at(i);
                let v = v.get(1..).unwrap_or_default();
                (f, v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line.as_str(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.name = Some(value.to_string()),
            _ => {} // id, retry and unknown fields carry nothing Rampart forwards
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all(chunks: &[&[u8]]) -> Vec<Event> {
        let mut f = Framer::new(1 << 16);
        let mut out = Vec::new();
        for c in chunks {
            f.push(c, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn frames_across_chunk_boundaries_and_line_endings() {
        let ev = all(&[
            b"data: {\"a\"",
            b":1}\r",
            b"\n\r\ndata: x\n",
            b"data: y\n\n: comment\n\nevent: e\ndata:[DONE]\n\n",
        ]);
        assert_eq!(ev.len(), 3);
        assert_eq!(ev[0].data, "{\"a\":1}");
        assert_eq!(ev[1].data, "x\ny");
        assert_eq!(
            ev[2],
            Event {
                name: Some("e".into()),
                data: "[DONE]".into()
            }
        );
    }

    #[test]
    fn oversized_event_is_refused() {
        let mut f = Framer::new(16);
        let mut out = Vec::new();
        assert_eq!(f.push(&[b'a'; 40], &mut out), Err(SseError::TooLarge(16)));
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_events(split in 0usize..60, data in "[a-z{}\":, ]{0,20}") {
            let text = format!("data: {data}\r\n\r\ndata: two\n\n");
            let bytes = text.as_bytes();
            let at = split.min(bytes.len());
            let (a, b) = bytes.split_at(at);
            prop_assert_eq!(all(&[a, b]), all(&[bytes]));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut f = Framer::new(64);
            let mut out = Vec::new();
            let _ = f.push(&bytes, &mut out);
        }
    }
}
