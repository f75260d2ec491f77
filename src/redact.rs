//! The log writer: every line devgate logs goes through [`RedactingStderr`], which replaces the value of
//! any `ticket=` parameter (a connect link's single-use ticket) with `[redacted]`.
//!
//! devgate never logs a link itself, but rmcp does: it logs an error answer (the `-32042` that carries
//! the connect URL) at WARN and every result (an `input_required` or `isError` with the link) at DEBUG.
//! Scrubbing at the writer covers those and any future one, at every level and in both log formats.

use std::borrow::Cow;
use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

/// What replaces a ticket.
const REDACTED: &str = "[redacted]";

/// Makes a writer to stderr that redacts tickets (each log event is written in one call).
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactingStderr;

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = Redacting<io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        Redacting(io::stderr())
    }
}

/// A writer that redacts tickets in what passes through it.
pub struct Redacting<W>(W);

impl<W: Write> Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Most lines never mention a ticket: they pass as they are, without a copy.
        if !buf.windows(6).any(|w| w.eq_ignore_ascii_case(b"ticket")) {
            self.0.write_all(buf)?;
            return Ok(buf.len());
        }
        let text = String::from_utf8_lossy(buf);
        match redact(&text) {
            Cow::Borrowed(_) => self.0.write_all(buf)?,
            Cow::Owned(scrubbed) => self.0.write_all(scrubbed.as_bytes())?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// `text` with the value after every `ticket=` replaced. A value is the run of URL-safe characters
/// (what a ticket is made of) that follows; a percent-encoded `=` counts too.
pub fn redact(text: &str) -> Cow<'_, str> {
    let lower = text.to_ascii_lowercase();
    if !lower.contains("ticket=") && !lower.contains("ticket%3d") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    let mut at = 0;
    while at < text.len() {
        let tail = &lower[at..];
        let marker = if tail.starts_with("ticket=") {
            "ticket=".len()
        } else if tail.starts_with("ticket%3d") {
            "ticket%3d".len()
        } else {
            at += text[at..].chars().next().map_or(1, char::len_utf8);
            continue;
        };
        let start = at + marker;
        let end = start
            + text[start..]
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'%'))
                .count();
        out.push_str(&text[rest..start]);
        if end > start {
            out.push_str(REDACTED);
        }
        rest = end;
        at = end.max(start);
    }
    out.push_str(&text[rest..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_are_replaced_wherever_they_appear() {
        let line = r#"WARN response error: ErrorData { message: "open http://h/connect/buddy?ticket=Ab-9_x then", data: Some(Object {"url": String("http://h/connect/buddy?TICKET=Zz0")}) } ticket%3DQ1"#;
        let out = redact(line);
        assert!(
            !out.contains("Ab-9_x") && !out.contains("Zz0") && !out.contains("Q1"),
            "{out}"
        );
        assert!(out.contains("?ticket=[redacted] then"), "{out}");
        assert_eq!(redact("nothing to see"), "nothing to see");
        assert_eq!(redact("ticket= alone"), "ticket= alone");
    }
}
