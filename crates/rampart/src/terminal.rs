//! Output for people: client- and admin-chosen strings (model names, key owners, principals)
//! reach the operator's terminal and log files through `rampart audit search` and the serve
//! log. A newline in such a string forges a row or a log line, an ANSI escape drives the
//! terminal, a bidi control reorders what is shown; every one is written escaped instead.

use std::borrow::Cow;
use std::io::Write;

/// `s` with control, bidi and other invisible format characters escaped as `\n`, `\r`, `\t`
/// or `\u{..}`; borrowed when there is nothing to escape.
pub fn escape(s: &str) -> Cow<'_, str> {
    let risky = |c: char| c.is_control() || rampart_scan::normalize::invisible_kind(c).is_some();
    if !s.chars().any(risky) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if risky(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Standard error for the text log: each event arrives as one write ending in a newline, and
/// everything before that newline is escaped.
pub struct EscapedStderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for EscapedStderr {
    type Writer = EscapedStderr;

    fn make_writer(&'a self) -> Self::Writer {
        EscapedStderr
    }
}

impl Write for EscapedStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let (line, end) = match text.strip_suffix('\n') {
            Some(l) => (l, "\n"),
            None => (text.as_ref(), ""),
        };
        let mut err = std::io::stderr().lock();
        err.write_all(escape(line).as_bytes())?;
        err.write_all(end.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape("gpt-4o"), "gpt-4o");
        assert_eq!(escape("m\n9 2026 key:x allowed"), "m\\n9 2026 key:x allowed");
        assert_eq!(escape("\u{1b}[2J\u{202e}x"), "\\u{1b}[2J\\u{202e}x");
    }
}
