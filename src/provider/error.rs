//! What can go wrong between devgate and a provider, and how to read a provider's own error body.

use serde_json::Value;

use crate::shape::pointer;

/// Why a provider's client could not be built from its config; each names the setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("providers.{id}: unknown provider; the catalogs have no provider with this id")]
    UnknownProvider { id: String },
    #[error("providers.{id}.api_base `{base}`: {source}")]
    ApiBase {
        id: String,
        base: String,
        source: url::ParseError,
    },
    #[error("providers.{id}: the token has characters a header cannot carry")]
    UnusableToken { id: String },
    #[error("providers.{id}: HTTP client: {source}")]
    Http { id: String, source: reqwest::Error },
}

/// A failed upstream exchange. Messages never carry a credential: provider text is passed through
/// `redact` (the configured credential and the one the request carried) before it is stored here.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// The provider answered with an error status.
    #[error("HTTP {status}: {message}")]
    Status {
        status: u16,
        message: String,
        /// Seconds from `Retry-After`, when the provider sent one.
        retry_after: Option<u64>,
        /// How many times devgate tried again before giving up.
        retries: u32,
        /// Scopes the provider said the call needs (at the catalog's `error_scopes`, on a 403).
        required_scopes: Vec<String>,
        /// Request fields the provider named as wrong (the catalog's `error_fields`), if any.
        fields: Vec<String>,
    },
    /// No answer within the configured timeout.
    #[error("no answer within {timeout_ms} ms")]
    Timeout { timeout_ms: u64, retries: u32 },
    /// The connection failed or broke.
    #[error("connection failed: {detail}")]
    Connection { detail: String, retries: u32 },
    /// The body was bigger than devgate reads.
    #[error("the response is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// The body was not what the provider promised (e.g. malformed JSON).
    #[error("unreadable response: {detail}")]
    Malformed { detail: String },
    /// A redirect led where devgate does not follow: outside the provider's API, or, for a tool
    /// whose redirects may reach the provider's storage, somewhere storage cannot be (`why`).
    #[error("refused a redirect to {target}: {why}")]
    Redirect { target: String, why: String },
}

impl UpstreamError {
    /// Whether a GET that failed like this may be tried again.
    pub fn is_transient(&self) -> bool {
        match self {
            UpstreamError::Status { status, .. } => *status == 429 || *status >= 500,
            UpstreamError::Timeout { .. } | UpstreamError::Connection { .. } => true,
            _ => false,
        }
    }

    pub fn set_retries(&mut self, n: u32) {
        match self {
            UpstreamError::Status { retries, .. }
            | UpstreamError::Timeout { retries, .. }
            | UpstreamError::Connection { retries, .. } => *retries = n,
            _ => {}
        }
    }
}

/// A provider's error body, parsed once: its JSON when it is JSON, and its text.
pub struct ErrorBody {
    text: String,
    json: Option<Value>,
}

impl ErrorBody {
    /// Parses a body whose text is already scrubbed of secrets (see [`redact`]).
    pub fn parse(text: String) -> Self {
        let json = serde_json::from_str(&text).ok();
        Self { text, json }
    }

    /// The provider's own message, tried through the catalog's pointers; raw text (one line, bounded)
    /// when the body is not JSON.
    pub fn message(&self, message_paths: &[String], detail_paths: &[String]) -> String {
        const MAX: usize = 600;
        let text = match &self.json {
            Some(json) => {
                let message = message_paths
                    .iter()
                    .find_map(|p| pointer(json, p).and_then(Value::as_str))
                    .map(str::to_string);
                let detail = detail_paths.iter().find_map(|p| match pointer(json, p)? {
                    Value::String(s) if !s.is_empty() => Some(s.clone()),
                    Value::Null | Value::String(_) => None,
                    other => Some(other.to_string()),
                });
                match (message, detail) {
                    (Some(m), Some(d)) => format!("{m} ({d})"),
                    (Some(m), None) => m,
                    (None, Some(d)) => d,
                    (None, None) => json.to_string(),
                }
            }
            None => self.text.split_whitespace().collect::<Vec<_>>().join(" "),
        };
        if text.is_empty() {
            return "no message".into();
        }
        match text.char_indices().nth(MAX) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text,
        }
    }

    /// The scopes the body lists at `dot_path` as required (the catalog's `error_scopes`).
    pub fn required_scopes(&self, dot_path: &str) -> Vec<String> {
        self.json
            .as_ref()
            .and_then(|v| pointer(v, dot_path))
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The request fields the body names as wrong: the keys of the object at `dot_path` (Bitbucket's
    /// `error.fields`), a few and short ones only.
    pub fn rejected_fields(&self, dot_path: &str) -> Vec<String> {
        self.json
            .as_ref()
            .and_then(|v| pointer(v, dot_path))
            .and_then(Value::as_object)
            .map(|fields| {
                fields
                    .keys()
                    .filter(|k| k.len() <= 64)
                    .take(8)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// What an `Authorization` header gives away if echoed: the whole value and the credential after the
/// scheme (`Bearer <token>` → the token).
pub fn credential_secrets(auth: &reqwest::header::HeaderValue) -> Vec<String> {
    let Ok(value) = auth.to_str() else {
        return Vec::new();
    };
    let mut out = vec![value.to_string()];
    if let Some((_, credential)) = value.split_once(' ') {
        out.push(credential.trim().to_string());
    }
    out
}

/// Removes every occurrence of a secret from text that came from outside.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    // Longest first: a secret that contains another (`Bearer <token>`, the token) goes whole.
    let mut secrets: Vec<&String> = secrets.iter().filter(|s| s.len() >= 4).collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for secret in secrets {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), "[redacted]");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider_message(body: &[u8], message_paths: &[String], detail_paths: &[String]) -> String {
        ErrorBody::parse(String::from_utf8_lossy(body).into_owned())
            .message(message_paths, detail_paths)
    }

    #[test]
    fn reads_both_providers_error_formats() {
        let paths = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let buddy = br#"{"errors":[{"message":"Pipeline not found"}]}"#;
        assert_eq!(
            provider_message(buddy, &paths(&["errors.0.message"]), &[]),
            "Pipeline not found"
        );
        let bb = br#"{"type":"error","error":{"message":"Your credentials lack one or more required privilege scopes.","detail":{"granted":["email"],"required":["account"]}}}"#;
        assert_eq!(
            provider_message(bb, &paths(&["error.message"]), &paths(&["error.detail"])),
            r#"Your credentials lack one or more required privilege scopes. ({"granted":["email"],"required":["account"]})"#
        );
        assert_eq!(
            provider_message(b"<html>\n Bad   gateway</html>", &[], &[]),
            "<html> Bad gateway</html>"
        );
    }

    #[test]
    fn redacts_secrets() {
        assert_eq!(
            redact("token abcd1234 leaked", &["abcd1234".into()]),
            "token [redacted] leaked"
        );
        let auth = reqwest::header::HeaderValue::from_static("Bearer abcd1234");
        assert_eq!(
            redact(
                "got Bearer abcd1234 and abcd1234",
                &credential_secrets(&auth)
            ),
            "got [redacted] and [redacted]"
        );
    }
}
