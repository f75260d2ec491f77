//! Request ids: one per HTTP request (the caller's `X-Request-Id` when it is sane, else a new one) and one
//! per stdio tool call. The id is in the response header, in the tool call's log span, and at the end of
//! every `isError` text, so a user can quote it and an operator can find the call in the logs.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

/// The header carrying the id in and out.
pub const HEADER: &str = "x-request-id";

/// A request's id, in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// A fresh id: 12 random bytes as 24 hex digits.
    pub fn new() -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let bytes = rand::random::<[u8; 12]>();
        let mut id = String::with_capacity(24);
        for b in bytes {
            id.push(char::from(HEX[usize::from(b >> 4)]));
            id.push(char::from(HEX[usize::from(b & 15)]));
        }
        Self(id)
    }

    /// The caller's id when it is short and plain (it ends up in logs and texts), else a fresh one.
    pub fn from_header(value: Option<&HeaderValue>) -> Self {
        value
            .and_then(|v| v.to_str().ok())
            .filter(|v| {
                !v.is_empty()
                    && v.len() <= 64
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            })
            .map(|v| Self(v.to_string()))
            .unwrap_or_default()
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// axum middleware: gives the request its id and echoes it in the response.
pub async fn assign(mut request: Request, next: Next) -> Response {
    let id = RequestId::from_header(request.headers().get(HEADER));
    request.extensions_mut().insert(id.clone());
    let mut response = next.run(request).await;
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_caller_id_is_kept_and_anything_else_replaced() {
        let keep = HeaderValue::from_static("lb-7f3a.2");
        assert_eq!(RequestId::from_header(Some(&keep)).0, "lb-7f3a.2");
        for bad in ["", "has space", "new\u{7f}line", &"x".repeat(65)] {
            let value = HeaderValue::from_str(bad).ok();
            let id = RequestId::from_header(value.as_ref());
            assert_eq!(id.0.len(), 24, "{bad:?} replaced");
        }
        assert_ne!(RequestId::new(), RequestId::new());
        let fresh = RequestId::new().0;
        assert!(
            fresh.len() == 24
                && fresh
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{fresh}"
        );
    }
}
