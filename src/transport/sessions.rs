//! MCP sessions over stateful HTTP: each belongs to the user whose `initialize` created it, and sessions
//! are capped per user and overall.
//!
//! [`guard`] (an axum middleware after authentication) answers a request naming a session that is not
//! the caller's with 404, exactly as for an unknown one, so a leaked session id is useless to another
//! user. Before an `initialize` it takes one call from the user's rate budget and reserves a place
//! ([`Slot`]); over the per-user cap it answers 429, over the overall cap 503, both with `Retry-After`.
//! [`BoundSessions`] wraps rmcp's [`LocalSessionManager`]: `initialize_session` binds the reserved place
//! to the new session id, `close_session` frees it. rmcp calls `close_session` on `DELETE` and when a
//! session's service ends for any other reason (idle longer than `limits.session_idle_secs`, the server
//! shutting down), so every way a session ends gives its place back. HTTP has no other sign that a
//! client is gone: a client that vanishes without `DELETE` holds its place until the idle expiry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, GetExtensions, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError,
};
use rmcp::transport::streamable_http_server::session::{
    RestoreOutcome, ServerSseMessage, SessionId, SessionManager,
};

use crate::gateway::Gateway;
use crate::identity::Identity;

/// The header carrying the session id.
const SESSION_HEADER: &str = "mcp-session-id";

/// What a client that hit a session cap is told to wait before trying again. A place frees when one of
/// the user's sessions is closed or idles out, which devgate cannot foresee; a minute is a polite retry.
const CAP_RETRY_SECS: u64 = 60;

/// The caps and who holds which session.
pub struct Sessions {
    per_user: usize,
    total: usize,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    /// Bound sessions: id → the user who initialized it.
    owners: HashMap<SessionId, Arc<str>>,
    /// Places held per user: bound sessions plus reservations for `initialize` requests in flight.
    held: HashMap<Arc<str>, usize>,
    /// All places held.
    total: usize,
}

impl Table {
    fn release(&mut self, user: &Arc<str>) {
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.held.get_mut(user) {
            *n -= 1;
            if *n == 0 {
                self.held.remove(user);
            }
        }
    }
}

/// Why an `initialize` gets no session.
#[derive(Debug, PartialEq, Eq)]
enum Full {
    /// The user holds `sessions_per_user` sessions.
    User,
    /// The server holds `max_sessions`.
    Server,
}

impl Sessions {
    pub fn new(per_user: usize, total: usize) -> Arc<Self> {
        Arc::new(Self {
            per_user,
            total,
            table: Mutex::new(Table::default()),
        })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn reserve(self: &Arc<Self>, user: &str) -> Result<Arc<Slot>, Full> {
        let mut table = self.table();
        let held = table.held.get(user).copied().unwrap_or(0);
        if held >= self.per_user {
            return Err(Full::User);
        }
        if table.total >= self.total {
            return Err(Full::Server);
        }
        let user: Arc<str> = Arc::from(user);
        *table.held.entry(user.clone()).or_default() += 1;
        table.total += 1;
        Ok(Arc::new(Slot {
            sessions: self.clone(),
            user,
            state: Mutex::new(SlotState::Reserved),
        }))
    }

    /// Who initialized a session, if it is live.
    fn owner(&self, id: &str) -> Option<Arc<str>> {
        self.table().owners.get(id).cloned()
    }

    /// A session ended: its place is free again. Idempotent (rmcp may close a session twice).
    fn end(&self, id: &SessionId) {
        let mut table = self.table();
        if let Some(user) = table.owners.remove(id) {
            table.release(&user);
        }
    }

    /// Places held: live sessions and `initialize` requests in flight.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.table().total
    }
}

#[derive(Debug, PartialEq, Eq)]
enum SlotState {
    Reserved,
    Bound,
    Released,
}

/// A place reserved for one `initialize`: bound to the session it creates, or released.
pub struct Slot {
    sessions: Arc<Sessions>,
    user: Arc<str>,
    state: Mutex<SlotState>,
}

impl Slot {
    fn bind(&self, id: &SessionId) -> bool {
        let mut table = self.sessions.table();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if *state != SlotState::Reserved {
            return false;
        }
        *state = SlotState::Bound;
        table.owners.insert(id.clone(), self.user.clone());
        true
    }

    /// Gives the place back unless a session holds it.
    fn settle(&self) {
        let mut table = self.sessions.table();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if *state == SlotState::Reserved {
            *state = SlotState::Released;
            table.release(&self.user);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.settle();
    }
}

/// rmcp's in-memory sessions, each bound to the [`Slot`] its `initialize` reserved.
pub struct BoundSessions {
    inner: LocalSessionManager,
    sessions: Arc<Sessions>,
}

impl BoundSessions {
    pub fn new(sessions: Arc<Sessions>, idle: Duration) -> Self {
        let mut inner = LocalSessionManager::default();
        inner.session_config.keep_alive = Some(idle);
        Self { inner, sessions }
    }
}

/// The place [`guard`] reserved for this `initialize`, carried in the request's HTTP parts.
fn slot_of(message: &ClientJsonRpcMessage) -> Option<Arc<Slot>> {
    let ClientJsonRpcMessage::Request(request) = message else {
        return None;
    };
    request
        .request
        .extensions()
        .get::<axum::http::request::Parts>()?
        .extensions
        .get::<Arc<Slot>>()
        .cloned()
}

impl SessionManager for BoundSessions {
    type Error = LocalSessionManagerError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    fn create_session(
        &self,
    ) -> impl Future<Output = Result<(SessionId, Self::Transport), Self::Error>> + Send {
        self.inner.create_session()
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        // Every initialize passes the guard, which reserves a place; without one, no session.
        let bound = slot_of(&message).is_some_and(|slot| slot.bind(id));
        if !bound {
            tracing::error!("an initialize arrived without a reserved session place");
            self.inner.close_session(id).await?;
            return Err(LocalSessionManagerError::SessionNotFound(id.clone()));
        }
        let answer = self.inner.initialize_session(id, message).await;
        // A session that failed, or ended before it was bound, gives its place back now.
        if answer.is_err() || !self.inner.has_session(id).await.unwrap_or(false) {
            self.sessions.end(id);
        }
        answer
    }

    fn has_session(
        &self,
        id: &SessionId,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send {
        self.inner.has_session(id)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        let closed = self.inner.close_session(id).await;
        self.sessions.end(id);
        closed
    }

    /// A `tools/call` gets a channel of its own for its log messages, merged into its response stream
    /// (rmcp would send them on the standalone GET stream; see [`crate::mcp::logging`]).
    async fn create_stream(
        &self,
        id: &SessionId,
        mut message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let messages = crate::mcp::logging::open_request_stream(&mut message);
        let response = self.inner.create_stream(id, message).await?;
        Ok(crate::mcp::logging::with_request_stream(response, messages))
    }

    fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.accept_message(id, message)
    }

    fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> impl Future<
        Output = Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error>,
    > + Send {
        self.inner.create_standalone_stream(id)
    }

    fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> impl Future<
        Output = Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error>,
    > + Send {
        self.inner.resume(id, last_event_id)
    }

    /// Sessions live in this process only: one that is not here stays unknown (404), never re-created
    /// without an owner.
    async fn restore_session(
        &self,
        _id: SessionId,
    ) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        Ok(RestoreOutcome::NotSupported)
    }
}

/// What [`guard`] needs.
#[derive(Clone)]
pub struct Guard {
    pub sessions: Arc<Sessions>,
    pub gateway: Arc<Gateway>,
    /// `limits.max_request_bytes`: the most of a session-less body read to see whether it is an
    /// `initialize`.
    pub max_body: usize,
}

/// Axum middleware for stateful `/mcp`, after authentication: a session is used only by its owner, and an
/// `initialize` is rate-limited and admitted against the caps first.
pub async fn guard(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let Some(user) = request
        .extensions()
        .get::<Identity>()
        .map(|i| i.user.clone())
    else {
        return next.run(request).await;
    };
    if let Some(id) = request.headers().get(SESSION_HEADER) {
        let owner = id.to_str().ok().and_then(|id| guard.sessions.owner(id));
        if owner.as_deref() != Some(user.as_str()) {
            // The same answer as for a session that never existed: nothing to learn about others'.
            return (StatusCode::NOT_FOUND, "Not Found: Session not found").into_response();
        }
        return next.run(request).await;
    }
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    // Only an `initialize` without a session id creates one, so look at the (capped) body.
    let (parts, body) = request.into_parts();
    let bytes =
        match http_body_util::BodyExt::collect(http_body_util::Limited::new(body, guard.max_body))
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "the request body is larger than limits.max_request_bytes ({} bytes)\n",
                        guard.max_body
                    ),
                )
                    .into_response();
            }
            Err(_) => {
                return (
                    StatusCode::BAD_REQUEST,
                    "the request body could not be read\n",
                )
                    .into_response();
            }
        };
    let initialize = serde_json::from_slice::<Envelope>(&bytes)
        .is_ok_and(|m| m.method.as_deref() == Some("initialize"));
    let mut request = Request::from_parts(parts, Body::from(bytes));
    if !initialize {
        return next.run(request).await;
    }
    if let Err(secs) = guard.gateway.admit(&user) {
        return busy(
            StatusCode::TOO_MANY_REQUESTS,
            secs,
            format!(
                "Rate limit: too many requests from {user} in the last minute; a new session counts as a call. Wait {secs} s.\n"
            ),
        );
    }
    let slot = match guard.sessions.reserve(&user) {
        Ok(slot) => slot,
        Err(Full::User) => {
            tracing::info!(user, "refused a session: the user's cap is reached");
            return busy(
                StatusCode::TOO_MANY_REQUESTS,
                CAP_RETRY_SECS,
                format!(
                    "{user} already holds {} MCP sessions (limits.sessions_per_user). End unused ones with DELETE; idle sessions end after limits.session_idle_secs.\n",
                    guard.sessions.per_user
                ),
            );
        }
        Err(Full::Server) => {
            tracing::warn!("refused a session: the server's cap is reached");
            return busy(
                StatusCode::SERVICE_UNAVAILABLE,
                CAP_RETRY_SECS,
                format!(
                    "devgate holds its maximum of {} MCP sessions (limits.max_sessions); try again later.\n",
                    guard.sessions.total
                ),
            );
        }
    };
    request.extensions_mut().insert(slot.clone());
    let response = next.run(request).await;
    // Bound during the handshake when it succeeded; otherwise the place is free again.
    slot.settle();
    response
}

/// Just enough of a JSON-RPC message to tell an `initialize`.
#[derive(serde::Deserialize)]
struct Envelope {
    method: Option<String>,
}

fn busy(status: StatusCode, retry_after: u64, message: String) -> Response {
    let mut response = (status, message).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_capped_per_user_and_overall_and_come_back() {
        let sessions = Sessions::new(2, 3);
        let a1 = sessions.reserve("a").unwrap();
        let a2 = sessions.reserve("a").unwrap();
        assert_eq!(sessions.reserve("a").err(), Some(Full::User));
        let id: SessionId = Arc::from("s1");
        assert!(a1.bind(&id));
        a1.settle();
        drop(a1);
        assert_eq!(sessions.owner("s1").as_deref(), Some("a"));
        // A reservation that never became a session is released.
        a2.settle();
        let b1 = sessions.reserve("b").unwrap();
        let _b2 = sessions.reserve("b").unwrap();
        assert_eq!(sessions.reserve("c").err(), Some(Full::Server));
        drop(b1);
        assert_eq!(sessions.held(), 2);
        sessions.end(&id);
        sessions.end(&id);
        assert_eq!(sessions.held(), 1);
        assert_eq!(sessions.owner("s1"), None);
    }
}
