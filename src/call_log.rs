//! What one tool call tells its client while it runs: the per-call log sink the engine writes to (an
//! upstream retry and its wait, a token refresh, a cut text, paging that stops early) and
//! [`crate::mcp::logging`] forwards as MCP `notifications/message`.
//!
//! The sink rides in a task-local set around the call ([`scope`]), so the provider client, the token
//! manager and the gateway reach it without a parameter or a callback through every layer. A call
//! whose client asked for no messages runs without one: each [`emit`] is then one task-local read,
//! and the message (its JSON, its text) is never built.
//!
//! Messages name the tool and, where there is one, the next step. They never carry a secret: they are
//! made from devgate's own words and from provider error texts that the provider client has already
//! scrubbed of the credential the request carried ([`crate::provider`]); the MCP side scrubs connect
//! tickets as the log writer does ([`crate::redact`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

/// A message's severity (the syslog levels MCP uses), least severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Critical,
    Alert,
    Emergency,
}

/// One message of a call: who says it (`devgate.upstream`, `devgate.oauth`, …) and what.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub level: Level,
    pub logger: &'static str,
    pub data: Value,
}

/// Where one call's messages go, and the least severe level its client wants.
#[derive(Clone)]
pub struct CallLog {
    min: Level,
    tool: Arc<str>,
    tx: tokio::sync::mpsc::UnboundedSender<Message>,
}

impl CallLog {
    /// A sink for a call of `tool` that keeps messages at `min` and above, and where they arrive.
    pub fn new(
        min: Level,
        tool: Arc<str>,
    ) -> (Self, tokio::sync::mpsc::UnboundedReceiver<Message>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (Self { min, tool, tx }, rx)
    }
}

tokio::task_local! {
    static CALL_LOG: CallLog;
}

/// Runs `call` with `log` as its sink (none: its messages are not made at all).
pub async fn scope<F: Future>(log: Option<CallLog>, call: F) -> F::Output {
    match log {
        Some(log) => CALL_LOG.scope(log, call).await,
        None => call.await,
    }
}

/// Sends a message from the running call, if its client wants `level`: `data` gets the tool's name and
/// is called only then.
#[inline]
pub fn emit(level: Level, logger: &'static str, data: impl FnOnce(&str) -> Value) {
    let _ = CALL_LOG.try_with(|log| {
        if level >= log.min {
            // The receiver is gone only once the call has answered; nothing is left to tell.
            let _ = log.tx.send(Message {
                level,
                logger,
                data: data(&log.tool),
            });
        }
    });
}

/// An upstream read failed in a way that passes (5xx, a timeout, a broken connection, 429) and is tried
/// again after `wait`: retry `attempt` of at most `retries`. `provider` is the id, `title` its name.
pub fn upstream_retry(
    provider: &str,
    title: &str,
    error: &crate::provider::UpstreamError,
    attempt: u32,
    retries: u32,
    wait: Duration,
) {
    emit(Level::Warning, "devgate.upstream", |tool| {
        let rate_limited = matches!(
            error,
            crate::provider::UpstreamError::Status { status: 429, .. }
        );
        let (event, next) = if rate_limited {
            (
                "rate_limited",
                "the provider limits how fast calls may come; devgate waits as long as it asked and tries once more. Space out calls to this provider",
            )
        } else {
            (
                "retry",
                "devgate tries this read again by itself after the wait; nothing to do unless it keeps failing",
            )
        };
        json!({
            "tool": tool,
            "provider": provider,
            "event": event,
            "message": format!("{title} failed ({error}); retry {attempt} of {retries} in {} ms", wait.as_millis()),
            "attempt": attempt,
            "retries": retries,
            "wait_ms": wait.as_millis() as u64,
            "next": next,
        })
    });
}

/// How a token refresh for this call ended. Only the fact: never a token.
pub enum Refreshed<'a> {
    /// New tokens are stored; `rejected` when the provider had refused the old access token (401)
    /// rather than it being about to expire.
    Renewed { rejected: bool },
    /// The provider refused the refresh: the user must connect again.
    Refused(&'a str),
    /// The token endpoint failed: the tokens are kept, the call may be tried again.
    Unavailable(&'a str),
}

/// The access token for `provider` was (or could not be) refreshed during this call.
pub fn token_refresh(provider: &str, outcome: Refreshed<'_>) {
    let level = match outcome {
        Refreshed::Renewed { .. } => Level::Info,
        Refreshed::Refused(_) => Level::Error,
        Refreshed::Unavailable(_) => Level::Warning,
    };
    emit(level, "devgate.oauth", |tool| {
        let (event, message, next) = match outcome {
            Refreshed::Renewed { rejected: true } => (
                "token_refreshed",
                format!(
                    "{provider} refused the access token; devgate refreshed it and sends the request again"
                ),
                "nothing to do",
            ),
            Refreshed::Renewed { rejected: false } => (
                "token_refreshed",
                format!("the {provider} access token was about to expire; devgate refreshed it"),
                "nothing to do",
            ),
            Refreshed::Refused(detail) => (
                "token_refresh_refused",
                format!("the {provider} connection could not be renewed: {detail}"),
                "the user connects again with the link in the result",
            ),
            Refreshed::Unavailable(detail) => (
                "token_refresh_failed",
                format!(
                    "{provider} could not renew the access token ({detail}); the connection is kept"
                ),
                "call the tool again in a minute",
            ),
        };
        json!({"tool": tool, "provider": provider, "event": event, "message": message, "next": next})
    });
}

/// A text result was cut at devgate's cap: bytes `offset` to `next` (of `total`, when known).
pub fn text_cut(offset: u64, next: u64, total: Option<u64>) {
    emit(Level::Notice, "devgate.result", |tool| {
        json!({
            "tool": tool,
            "event": "text_cut",
            "message": format!("the text was cut at devgate's cap: bytes {offset} to {next}{}", total.map(|t| format!(" of {t}")).unwrap_or_default()),
            "offset": offset,
            "next_offset": next,
            "total_bytes": total,
            "next": format!("call {tool} again with offset={next} to read on"),
        })
    });
}

/// A list page comes back without `next_cursor` although the provider has more: its link to the next
/// page leaves this tool's resource, so devgate stops paging here.
pub fn paging_stopped() {
    emit(Level::Warning, "devgate.paging", |tool| {
        json!({
            "tool": tool,
            "event": "paging_stopped",
            "message": "the provider's link to the next page leads outside this tool's resource, so this page has no next_cursor although the list may go on",
            "next": "narrow the call (its filters) to reach the rest, or look in the provider",
        })
    });
}

/// The call waits up to `wait` for the user to finish connecting `provider` in the browser.
pub fn waiting_for_connect(provider: &str, wait: Duration) {
    emit(Level::Info, "devgate.connect", |tool| {
        json!({
            "tool": tool,
            "provider": provider,
            "event": "waiting_for_connect",
            "message": format!("waiting up to {} s for the user to finish connecting {provider}", wait.as_secs()),
            "wait_s": wait.as_secs(),
            "next": "the user finishes connecting in the browser; the call then goes on by itself",
        })
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(min: Level) -> (CallLog, tokio::sync::mpsc::UnboundedReceiver<Message>) {
        CallLog::new(min, Arc::from("bitbucket_get_repository"))
    }

    #[tokio::test]
    async fn messages_below_the_level_are_never_made() {
        let (log, mut rx) = sink(Level::Warning);
        let made = std::sync::atomic::AtomicUsize::new(0);
        scope(Some(log), async {
            emit(Level::Info, "t", |_| {
                made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                json!({})
            });
            emit(Level::Error, "t", |tool| json!({ "tool": tool }));
        })
        .await;
        assert_eq!(made.into_inner(), 0, "an info message was built");
        let m = rx.recv().await.unwrap();
        assert_eq!(m.level, Level::Error);
        assert_eq!(m.data["tool"], "bitbucket_get_repository");
        assert!(rx.recv().await.is_none(), "one message only");
    }

    #[tokio::test]
    async fn a_call_without_a_sink_makes_nothing() {
        let made = std::sync::atomic::AtomicUsize::new(0);
        scope(None, async {
            emit(Level::Emergency, "t", |_| {
                made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                json!({})
            });
        })
        .await;
        assert_eq!(made.into_inner(), 0);
    }

    #[tokio::test]
    async fn a_retry_names_its_wait_and_a_refresh_carries_no_token() {
        let (log, mut rx) = sink(Level::Debug);
        scope(Some(log), async {
            upstream_retry(
                "bitbucket",
                "Bitbucket",
                &crate::provider::UpstreamError::Status {
                    status: 503,
                    message: "busy".into(),
                    retry_after: None,
                    retries: 0,
                    required_scopes: Vec::new(),
                    fields: Vec::new(),
                },
                1,
                2,
                Duration::from_millis(250),
            );
            token_refresh("buddy", Refreshed::Renewed { rejected: true });
        })
        .await;
        let retry = rx.recv().await.unwrap();
        assert_eq!(
            (retry.level, retry.logger, &retry.data["wait_ms"]),
            (Level::Warning, "devgate.upstream", &json!(250))
        );
        assert!(
            retry.data["message"]
                .as_str()
                .unwrap()
                .contains("HTTP 503: busy")
        );
        let refresh = rx.recv().await.unwrap();
        assert_eq!(refresh.data["event"], "token_refreshed");
        assert_eq!(refresh.level, Level::Info);
    }
}
