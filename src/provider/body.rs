//! Reading a provider's answer: bounded body reads, and windows of text responses.

use bytes::{Bytes, BytesMut};

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
///
/// A body that arrives as one chunk (a page read in one go, the usual case on a kept-alive connection)
/// is that chunk, not a copy of it; only a body in several chunks is copied into one buffer.
pub(super) async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
    timeout_ms: u64,
) -> Result<Bytes, UpstreamError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(UpstreamError::TooLarge { limit });
    }
    // Sized from `Content-Length` where the provider sent one, so a 50 KB page is not copied again
    // each time the buffer would have grown.
    let expected = response.content_length().unwrap_or(0) as usize;
    let mut first: Option<Bytes> = None;
    let mut out = BytesMut::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let read = first.as_ref().map_or(0, Bytes::len) + out.len() + chunk.len();
                if read > limit {
                    return Err(UpstreamError::TooLarge { limit });
                }
                if first.is_none() && out.is_empty() {
                    first = Some(chunk);
                    continue;
                }
                if let Some(first) = first.take() {
                    out.reserve(expected.max(read).min(limit));
                    out.extend_from_slice(&first);
                }
                out.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(first.unwrap_or_else(|| out.freeze())),
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

    /// Serves `/chunked` (the parts as separate chunks of a chunked body) and `/whole` (one body with a
    /// length) on loopback; returns the base URL.
    async fn serve(parts: &'static [&'static [u8]]) -> String {
        use axum::{Router, body::Body, routing::get};
        let app = Router::new()
            .route(
                "/chunked",
                get(move || async move {
                    let chunks = parts
                        .iter()
                        .map(|p| Ok::<_, std::io::Error>(Bytes::from_static(p)));
                    Body::from_stream(futures::stream::iter(chunks))
                }),
            )
            .route("/whole", get(move || async move { parts.concat() }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    #[tokio::test]
    async fn bodies_in_one_chunk_or_several_read_alike_within_the_limit() {
        static PARTS: &[&[u8]] = &[b"{\"items\": [", &[b' '; 20_000], b"1, 2", b"]}"];
        let url = serve(PARTS).await;
        let whole = PARTS.concat();
        crate::app::install_tls_provider();
        let http = reqwest::Client::new();
        for path in ["/chunked", "/whole"] {
            let response = http.get(format!("{url}{path}")).send().await.unwrap();
            let body = read_limited(response, whole.len(), 1_000).await.unwrap();
            assert_eq!(body, whole, "{path}");
            let response = http.get(format!("{url}{path}")).send().await.unwrap();
            let over = read_limited(response, whole.len() - 1, 1_000).await;
            assert!(
                matches!(over, Err(UpstreamError::TooLarge { limit }) if limit == whole.len() - 1),
                "{path}: {over:?}"
            );
        }
    }

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
