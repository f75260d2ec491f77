//! Reading a provider's answer: bounded body reads, and windows of text responses.

use bytes::BytesMut;

use super::UpstreamError;

/// A window of a text response.
#[derive(Debug)]
pub struct TextWindow {
    pub text: String,
    /// Where to continue reading, when the text was cut.
    pub next_offset: Option<u64>,
    /// The full size, when the provider said it.
    pub total: Option<u64>,
}

/// Reads a body up to `limit` bytes; more is an error, found without reading it all. The body read
/// counts against the client's whole-request timeout, `timeout_ms`, which a stalled body reports.
pub(super) async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
    timeout_ms: u64,
) -> Result<BytesMut, UpstreamError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(UpstreamError::TooLarge { limit });
    }
    // Sized from `Content-Length` where the provider sent one, so a 50 KB page is not copied again
    // each time the buffer would have grown.
    let expected = response.content_length().unwrap_or(0) as usize;
    let mut out = BytesMut::with_capacity(expected.min(limit));
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if out.len() + chunk.len() > limit {
                    return Err(UpstreamError::TooLarge { limit });
                }
                out.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(out),
            Err(e) if e.is_timeout() => {
                return Err(UpstreamError::Timeout {
                    timeout_ms,
                    retries: 0,
                });
            }
            Err(e) => {
                return Err(UpstreamError::Connection {
                    detail: format!("the body broke off: {e}"),
                    retries: 0,
                });
            }
        }
    }
}

/// The last `lines` lines of `bytes` (a trailing newline does not count as a line), within `cap` bytes.
pub fn tail_window(bytes: &[u8], lines: usize, cap: usize, total: u64) -> TextWindow {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut start = body.len();
    let mut seen = 0;
    while start > 0 && seen < lines {
        start -= 1;
        if body[start] == b'\n' {
            seen += 1;
            if seen == lines {
                start += 1;
                break;
            }
        }
    }
    if body.len() - start > cap {
        start = body.len() - cap;
    }
    while start < body.len() && (body[start] & 0xC0) == 0x80 {
        start += 1;
    }
    TextWindow {
        text: String::from_utf8_lossy(&body[start..]).into_owned(),
        next_offset: None,
        total: Some(total),
    }
}

/// Cuts `cap` bytes out of `bytes` from `offset`, on UTF-8 character boundaries.
pub(super) fn window(bytes: &[u8], offset: u64, cap: usize, total: Option<u64>) -> TextWindow {
    let mut start = (offset as usize).min(bytes.len());
    // An offset in the middle of a character moves forward to the next character.
    while start < bytes.len() && (bytes[start] & 0xC0) == 0x80 {
        start += 1;
    }
    let mut end = (start + cap).min(bytes.len());
    while end > start && end < bytes.len() && (bytes[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    let text = String::from_utf8_lossy(&bytes[start..end]).into_owned();
    TextWindow {
        text,
        next_offset: (end < bytes.len()).then_some(end as u64),
        total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_take_the_last_lines() {
        let log = b"one\ntwo\nthree\nfour\n";
        assert_eq!(tail_window(log, 2, 1000, 19).text, "three\nfour");
        assert_eq!(tail_window(log, 10, 1000, 19).text, "one\ntwo\nthree\nfour");
        assert_eq!(tail_window(log, 2, 3, 19).text, "our");
    }

    #[test]
    fn windows_respect_character_boundaries() {
        let text = "ab€cd".as_bytes(); // € is 3 bytes at 2..5
        let w = window(text, 0, 3, None);
        assert_eq!(w.text, "ab");
        assert_eq!(w.next_offset, Some(2));
        let w = window(text, 3, 10, None);
        assert_eq!(w.text, "cd");
        assert_eq!(w.next_offset, None);
    }
}
