//! MCP logging for tool calls: which calls get `notifications/message`, from what level, and the way
//! each message reaches its client while the call runs.
//!
//! Who asked, per protocol:
//! - up to 2025-11-25, `logging/setLevel` sets the level of the session: the stdio connection, or the
//!   stateful HTTP session (`Mcp-Session-Id`) it was sent on. A session that set none gets nothing;
//! - on 2026-07-28 logging is per request: only a request whose `_meta` carries
//!   `io.modelcontextprotocol/logLevel` gets messages, from that level. A request of an older protocol
//!   that carries it too is served the same way, its own level before the session's;
//! - stateless HTTP (`--stateless`) has no session for a level to outlive its request, so only the
//!   request's `_meta` counts there, and `logging/setLevel` says so instead of pretending.
//!
//! Where messages go: the call's engine writes them to its [`CallLog`] ([`crate::call_log`]); a task
//! forwards them, in order and before the result, on the request's own stream. Over stdio and for a
//! one-request service (stateless HTTP, 2026-07-28) that is the peer; on a stateful HTTP session rmcp
//! would put a notification on the session's standalone GET stream, so [`open_request_stream`] gives
//! each `tools/call` POST a channel of its own that [`with_request_stream`] merges into its response
//! stream ahead of the result.
#![allow(deprecated)] // rmcp marks MCP logging deprecated (SEP-2577); devgate serves it while clients use it

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

use futures::Stream;
use rmcp::model::{
    ClientJsonRpcMessage, ClientRequest, GetExtensions, GetMeta, LoggingLevel,
    LoggingMessageNotificationParam, Notification, ProtocolVersion, ServerJsonRpcMessage,
    ServerNotification, SetLevelRequestParams,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::ServerSseMessage;
use rmcp::{ErrorData as McpError, RoleServer};
use serde_json::Value;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::call_log::{CallLog, Level, Message};

/// The level a session set with `logging/setLevel`, if any (one per handler, so per session).
#[derive(Debug, Default)]
pub struct SessionLevel(AtomicU8);

impl SessionLevel {
    /// 0 is "none set"; a level is stored as its rank plus one.
    fn get(&self) -> Option<Level> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            n => LEVELS.get(usize::from(n) - 1).copied(),
        }
    }

    fn set(&self, level: Level) {
        let rank = LEVELS.iter().position(|l| *l == level).unwrap_or(0);
        if self.0.swap(rank as u8 + 1, Ordering::Relaxed) == 0 {
            SESSIONS_LOGGING.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for SessionLevel {
    fn drop(&mut self) {
        if self.0.load(Ordering::Relaxed) != 0 {
            SESSIONS_LOGGING.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Live sessions that set a level. While there are none (the usual case), a `tools/call` on a stateful
/// HTTP session gets no channel for messages unless its own `_meta` asks ([`open_request_stream`]).
static SESSIONS_LOGGING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Every level, least severe first.
const LEVELS: [Level; 8] = [
    Level::Debug,
    Level::Info,
    Level::Notice,
    Level::Warning,
    Level::Error,
    Level::Critical,
    Level::Alert,
    Level::Emergency,
];

fn from_mcp(level: LoggingLevel) -> Level {
    match level {
        LoggingLevel::Debug => Level::Debug,
        LoggingLevel::Info => Level::Info,
        LoggingLevel::Notice => Level::Notice,
        LoggingLevel::Warning => Level::Warning,
        LoggingLevel::Error => Level::Error,
        LoggingLevel::Critical => Level::Critical,
        LoggingLevel::Alert => Level::Alert,
        LoggingLevel::Emergency => Level::Emergency,
    }
}

fn to_mcp(level: Level) -> LoggingLevel {
    match level {
        Level::Debug => LoggingLevel::Debug,
        Level::Info => LoggingLevel::Info,
        Level::Notice => LoggingLevel::Notice,
        Level::Warning => LoggingLevel::Warning,
        Level::Error => LoggingLevel::Error,
        Level::Critical => LoggingLevel::Critical,
        Level::Alert => LoggingLevel::Alert,
        Level::Emergency => LoggingLevel::Emergency,
    }
}

fn modern(context: &RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str())
}

/// The `Mcp-Session-Id` this request came on, if it came over stateful HTTP.
fn has_session(context: &RequestContext<RoleServer>) -> bool {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .is_some_and(|parts| parts.headers.contains_key("mcp-session-id"))
}

/// `logging/setLevel`: the session's level from now on. `stdio` tells the one stdio session from an
/// HTTP request, which has a session only when it names one.
pub fn set_level(
    session: &SessionLevel,
    stdio: bool,
    request: &SetLevelRequestParams,
    context: &RequestContext<RoleServer>,
) -> Result<(), McpError> {
    if modern(context) {
        return Err(McpError::invalid_request(
            "logging/setLevel is not part of MCP 2026-07-28: put the level in each request's `_meta` as `io.modelcontextprotocol/logLevel`",
            None,
        ));
    }
    if !stdio && !has_session(context) {
        return Err(McpError::invalid_request(
            "this devgate serves HTTP without sessions (--stateless), so a level set here could not apply to later requests: put the level in each request's `_meta` as `io.modelcontextprotocol/logLevel`",
            None,
        ));
    }
    let level = from_mcp(request.level);
    session.set(level);
    tracing::debug!(?level, "the client set its log level");
    Ok(())
}

/// The least severe level this call's client wants, if it wants messages at all.
fn call_level(session: &SessionLevel, context: &RequestContext<RoleServer>) -> Option<Level> {
    if let Some(level) = context.meta.log_level() {
        return Some(from_mcp(level));
    }
    // A session's level, unless this request is of the protocol that has no sessions.
    session.get().filter(|_| !modern(context))
}

/// The response stream of a `tools/call` POST on a stateful HTTP session, for its log messages.
#[derive(Clone)]
pub struct RequestStream(UnboundedSender<ServerSseMessage>);

/// When this call's client wants messages: the sink its engine writes to, and the task forwarding them
/// (await it before answering, so the last message goes out ahead of the result).
pub fn for_call(
    session: &SessionLevel,
    context: &RequestContext<RoleServer>,
    tool: &Arc<str>,
) -> Option<(CallLog, tokio::task::JoinHandle<()>)> {
    let min = call_level(session, context)?;
    let (log, mut rx) = CallLog::new(min, tool.clone());
    let stream = context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<RequestStream>())
        .cloned();
    let peer = context.peer.clone();
    let forwarder = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            let param = notification(message);
            let sent = match &stream {
                Some(RequestStream(tx)) => {
                    let message = ServerJsonRpcMessage::notification(
                        ServerNotification::LoggingMessageNotification(Notification::new(param)),
                    );
                    tx.send(ServerSseMessage::from_message(message)).is_ok()
                }
                None => peer.notify_logging_message(param).await.is_ok(),
            };
            if !sent {
                break;
            }
        }
    });
    Some((log, forwarder))
}

/// Waits (bounded) until a call's messages are out; the call has ended, so its sink is closed.
pub async fn drain(forwarder: tokio::task::JoinHandle<()>) {
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), forwarder).await;
}

/// A message as the client receives it, with any connect ticket scrubbed as in devgate's own log.
fn notification(message: Message) -> LoggingMessageNotificationParam {
    let mut data = message.data;
    scrub(&mut data);
    LoggingMessageNotificationParam::new(to_mcp(message.level), data).with_logger(message.logger)
}

fn scrub(value: &mut Value) {
    match value {
        Value::String(s) => {
            if let std::borrow::Cow::Owned(clean) = crate::redact::redact(s) {
                *s = clean;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(scrub),
        Value::Object(fields) => fields.values_mut().for_each(scrub),
        _ => {}
    }
}

/// For a `tools/call` on a stateful HTTP session that may want messages (some session set a level, or
/// its `_meta` names one): a channel for its log messages, whose sender rides
/// in the request's HTTP parts to the handler ([`for_call`]) and whose receiver goes to
/// [`with_request_stream`].
pub fn open_request_stream(
    message: &mut ClientJsonRpcMessage,
) -> Option<UnboundedReceiver<ServerSseMessage>> {
    let ClientJsonRpcMessage::Request(request) = message else {
        return None;
    };
    if !matches!(request.request, ClientRequest::CallToolRequest(_)) {
        return None;
    }
    let wanted = SESSIONS_LOGGING.load(Ordering::Relaxed) > 0
        || request.request.get_meta().log_level().is_some();
    if !wanted {
        return None;
    }
    let parts = request
        .request
        .extensions_mut()
        .get_mut::<axum::http::request::Parts>()?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    parts.extensions.insert(RequestStream(tx));
    Some(rx)
}

/// A request's response stream with its log messages merged in: a message waiting is sent before the
/// next item of the response, and the stream ends with the response's (after any message left).
pub fn with_request_stream<S>(
    response: S,
    messages: Option<UnboundedReceiver<ServerSseMessage>>,
) -> impl Stream<Item = ServerSseMessage> + Send + Sync + 'static
where
    S: Stream<Item = ServerSseMessage> + Send + Sync + 'static,
{
    Merged {
        response: Box::pin(response),
        done: false,
        messages,
    }
}

struct Merged<S> {
    response: Pin<Box<S>>,
    /// The response stream has ended; only messages already sent are left.
    done: bool,
    messages: Option<UnboundedReceiver<ServerSseMessage>>,
}

impl<S: Stream<Item = ServerSseMessage>> Stream for Merged<S> {
    type Item = ServerSseMessage;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(this.messages.as_mut().and_then(|rx| rx.try_recv().ok()));
        }
        if let Some(rx) = this.messages.as_mut() {
            match rx.poll_recv(cx) {
                Poll::Ready(Some(message)) => return Poll::Ready(Some(message)),
                Poll::Ready(None) => this.messages = None,
                Poll::Pending => {}
            }
        }
        match this.response.as_mut().poll_next(cx) {
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(this.messages.as_mut().and_then(|rx| rx.try_recv().ok()))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use serde_json::json;

    #[test]
    fn a_session_level_round_trips_and_starts_unset() {
        let session = SessionLevel::default();
        assert_eq!(session.get(), None);
        for level in LEVELS {
            session.set(level);
            assert_eq!(session.get(), Some(level));
            assert_eq!(from_mcp(to_mcp(level)), level);
        }
    }

    #[test]
    fn a_connect_ticket_never_reaches_a_message() {
        let param = notification(Message {
            level: Level::Info,
            logger: "devgate.connect",
            data: json!({"message": "open http://127.0.0.1/connect/buddy?ticket=s3cr3t-t1ck3t", "n": [ "ticket=abc123" ]}),
        });
        let text = param.data.to_string();
        assert!(
            !text.contains("s3cr3t-t1ck3t") && !text.contains("abc123"),
            "{text}"
        );
        assert_eq!(param.logger.as_deref(), Some("devgate.connect"));
    }

    fn sse(n: u64) -> ServerSseMessage {
        ServerSseMessage::from_message(ServerJsonRpcMessage::notification(
            ServerNotification::ProgressNotification(Notification::new(
                rmcp::model::ProgressNotificationParam::new(
                    rmcp::model::ProgressToken(rmcp::model::NumberOrString::Number(1)),
                    n as f64,
                ),
            )),
        ))
    }

    fn progress_of(m: &ServerSseMessage) -> f64 {
        match m.message.as_deref() {
            Some(ServerJsonRpcMessage::Notification(n)) => match &n.notification {
                ServerNotification::ProgressNotification(p) => p.params.progress,
                _ => -1.0,
            },
            _ => -1.0,
        }
    }

    /// Messages sent before the response's items go out before them, and one left when the response
    /// ends still goes out.
    #[tokio::test]
    async fn messages_go_out_ahead_of_the_response_and_none_is_lost() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tx.send(sse(1)).unwrap();
        tx.send(sse(2)).unwrap();
        let response = futures::stream::iter([sse(10)]);
        let merged = with_request_stream(response, Some(rx));
        let mut merged = Box::pin(merged);
        assert_eq!(progress_of(&merged.next().await.unwrap()), 1.0);
        assert_eq!(progress_of(&merged.next().await.unwrap()), 2.0);
        tx.send(sse(3)).unwrap();
        assert_eq!(progress_of(&merged.next().await.unwrap()), 3.0);
        assert_eq!(progress_of(&merged.next().await.unwrap()), 10.0);
        tx.send(sse(4)).unwrap();
        assert_eq!(progress_of(&merged.next().await.unwrap()), 4.0);
        assert!(merged.next().await.is_none());
    }
}
