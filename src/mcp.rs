//! The rmcp `ServerHandler`: `tools/list` and `tools/call` over the [`Gateway`].
//!
//! One handler value is made per stdio connection, per HTTP session, or per stateless HTTP request, so
//! it holds only `Arc`s. Each call runs in a tracing span carrying the user, the tool (`unknown` for a
//! name not offered) and the request id (never arguments or results), and is dropped, upstream request
//! included, when the client cancels.
//!
//! When a call needs the user to connect a provider, the answer depends on the client:
//! - it declared URL-mode elicitation and speaks 2026-07-28: an `input_required` result carrying an
//!   `elicitation/create` (mode `url`); the client retries the call with the user's answer. Many
//!   clients answer `accept` once the link is open, not once the user is done, so a retry carrying an
//!   answer waits (bounded, `oauth.connect_wait_secs`) for the connection, runs the call once more if
//!   it came, and otherwise ends with a result that says to finish in the browser: never a second
//!   question for the same connect, which such a client would answer at once, in a loop;
//! - it declared URL-mode elicitation on 2025-11-25: JSON-RPC error `-32042` with the elicitation (its
//!   message carries the link too), and `notifications/elicitation/complete` on the same session when
//!   the callback completes;
//! - otherwise: an `isError` result whose text has the link and one sentence of instructions.
//!
//! Asking again reuses the live link ([`crate::oauth::connect::Connector::link`]).
//!
//! A destructive call is confirmed the same way by capability (see [`crate::confirm`]): a form
//! elicitation request up to 2025-11-25, an `input_required` form with a `requestState` from
//! 2026-07-28, and otherwise an `isError` with a confirm-page link.

mod confirm;
pub mod logging;
pub mod stats;
pub mod tasks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, CustomNotification,
    ElicitRequest, ElicitRequestParams, ElicitResult, ElicitationAction, ErrorCode, Implementation,
    InputRequest, InputRequests, InputRequiredResult, ListToolsResult, PaginatedRequestParams,
    ProgressNotificationParam, ProtocolVersion, ServerCapabilities, ServerConfig,
    ServerNotification, Tool,
};
use rmcp::service::{Peer, RequestContext};
use rmcp::{ErrorData as McpError, RoleServer};
use serde_json::json;
use tracing::Instrument;

use crate::gateway::{Confirmer, ConnectRequest, Gateway, Outcome, Progress, Ran, ToolError};
use crate::identity::Identity;
use crate::oauth::connect::CompletionSink;
use crate::request_id::RequestId;
use confirm::{CONFIRM_INPUT, ClientConfirmer, confirm_answer, confirm_form};

/// JSON-RPC error code of a URL elicitation the client must complete first (MCP 2025-11-25).
pub const URL_ELICITATION_REQUIRED: i32 = -32042;

/// Who a handler's calls run as.
#[derive(Clone)]
pub enum Caller {
    /// stdio: one user (and their groups) for the whole connection.
    Fixed(Arc<Identity>),
    /// HTTP: the [`Identity`] the authentication middleware put on each request.
    FromRequest,
}

/// Sessions waiting for a connect to complete, so they can be told (`notifications/elicitation/complete`).
/// A reused link keeps its elicitation id, so several sessions of one user may wait on the same id.
#[derive(Default)]
pub struct PendingElicitations {
    /// By elicitation id: each waiting session and its peer.
    peers: Mutex<HashMap<String, Vec<Waiting>>>,
}

/// A session waiting for a connect: its `Mcp-Session-Id` (when it has one) and its peer.
type Waiting = (Option<String>, Peer<RoleServer>);

/// Sessions remembered per elicitation id; more are not told (one user's agents, asking in a loop).
const WAITING_PER_ELICITATION: usize = 16;

impl PendingElicitations {
    fn register(&self, id: &str, session: Option<String>, peer: Peer<RoleServer>) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers.retain(|_, waiting| {
            waiting.retain(|(_, p)| !p.is_transport_closed());
            !waiting.is_empty()
        });
        let waiting = peers.entry(id.to_string()).or_default();
        // One session asking twice is told once.
        let known = session.is_some() && waiting.iter().any(|(s, _)| *s == session);
        if !known && waiting.len() < WAITING_PER_ELICITATION {
            waiting.push((session, peer));
        }
    }
}

impl CompletionSink for PendingElicitations {
    fn completed(&self, elicitation_id: &str) {
        let waiting = self
            .peers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(elicitation_id)
            .unwrap_or_default();
        for (_, peer) in waiting {
            let notification = ServerNotification::CustomNotification(CustomNotification::new(
                "notifications/elicitation/complete",
                Some(json!({ "elicitationId": elicitation_id })),
            ));
            tokio::spawn(async move {
                if let Err(e) = peer.send_notification(notification).await {
                    tracing::debug!(error = %e, "the session that asked to connect is gone");
                }
            });
        }
    }
}

/// The MCP face of the gateway.
#[derive(Clone)]
pub struct McpServer {
    gateway: Arc<Gateway>,
    caller: Caller,
    pending: Arc<PendingElicitations>,
    /// The level this session set with `logging/setLevel` ([`logging`]).
    log_level: Arc<logging::SessionLevel>,
    /// Counted in `devgate_mcp_sessions` while any clone of this handler lives.
    _session: Arc<ActiveSession>,
}

/// One live MCP connection (a stdio client, an HTTP session, or a stateless request) in the metrics.
struct ActiveSession;

impl ActiveSession {
    fn open() -> Self {
        crate::metrics::global().sessions.inc();
        Self
    }
}

impl Drop for ActiveSession {
    fn drop(&mut self) {
        crate::metrics::global().sessions.dec();
    }
}

impl McpServer {
    pub fn new(gateway: Arc<Gateway>, caller: Caller, pending: Arc<PendingElicitations>) -> Self {
        Self {
            gateway,
            caller,
            pending,
            log_level: Arc::default(),
            _session: Arc::new(ActiveSession::open()),
        }
    }

    fn caller(&self, context: &RequestContext<RoleServer>) -> Result<Identity, McpError> {
        match &self.caller {
            Caller::Fixed(identity) => Ok(identity.as_ref().clone()),
            Caller::FromRequest => context
                .extensions
                .get::<axum::http::request::Parts>()
                .and_then(|parts| parts.extensions.get::<Identity>())
                .cloned()
                .ok_or_else(|| {
                    McpError::invalid_request("the request carries no authenticated user", None)
                }),
        }
    }
}

/// Ends an error's text with the request id, which the user can quote and the log has.
fn quote_request_id(result: &mut CallToolResult, id: &RequestId) {
    let first_text = result.content.iter_mut().find_map(|c| match c {
        ContentBlock::Text(text) => Some(text),
        _ => None,
    });
    if let Some(text) = first_text {
        text.text.push_str(&format!(" (request id {id})"));
    }
}

/// How a connect request reaches this client.
fn connect_response(
    request: &ConnectRequest,
    context: &RequestContext<RoleServer>,
    pending: &PendingElicitations,
    request_id: &RequestId,
) -> Result<CallToolResponse, McpError> {
    let url_mode = context
        .client_capabilities()
        .and_then(|c| c.elicitation)
        .is_some_and(|e| e.url.is_some());
    let modern = context
        .protocol_version()
        .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str());
    tracing::debug!(version = ?context.protocol_version(), url_mode, "a connect is needed");
    let message = format!(
        "{}. Connect your {} account to continue.",
        request.reason, request.title
    );
    if url_mode && modern {
        let params = ElicitRequestParams::UrlElicitationParams {
            meta: None,
            message,
            url: request.link.url.clone(),
            elicitation_id: request.link.elicitation_id.clone(),
        };
        let mut requests = InputRequests::new();
        requests.insert(
            connect_input(&request.provider),
            InputRequest::Elicitation(ElicitRequest::new(params)),
        );
        return Ok(CallToolResponse::InputRequired(InputRequiredResult::new(
            Some(requests),
            None,
        )));
    }
    if url_mode {
        let session = context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.headers.get("mcp-session-id"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        pending.register(&request.link.elicitation_id, session, context.peer.clone());
        // The message carries the link as well: many clients show only the message.
        return Err(McpError::new(
            ErrorCode(URL_ELICITATION_REQUIRED),
            format!(
                "{}. Open this link in a browser to connect your {} account, then call the tool again: {}",
                request.reason, request.title, request.link.url
            ),
            Some(json!({
                "elicitations": [{
                    "mode": "url",
                    "elicitationId": request.link.elicitation_id,
                    "url": request.link.url,
                    "message": message,
                }]
            })),
        ));
    }
    let mut result = CallToolResult::error(vec![ContentBlock::text(format!(
        "{}. Ask the user to open this link in a browser to connect their {} account, then call the tool again: {}",
        request.reason, request.title, request.link.url
    ))]);
    quote_request_id(&mut result, request_id);
    Ok(result.into())
}

/// The key of a connect elicitation in an `input_required` result and in the client's `inputResponses`.
fn connect_input(provider: &str) -> String {
    format!("connect_{provider}")
}

/// A retried call's answer to the connect elicitation of an earlier round.
struct ConnectAnswer {
    provider: String,
    accepted: bool,
}

/// The connect answer among a retried call's `inputResponses`, if any.
fn connect_answer(responses: Option<&rmcp::model::InputResponses>) -> Option<ConnectAnswer> {
    responses?.iter().find_map(|(key, value)| {
        let provider = key.strip_prefix("connect_")?;
        let accepted = serde_json::from_value::<ElicitResult>(value.clone())
            .is_ok_and(|r| r.action == ElicitationAction::Accept);
        Some(ConnectAnswer {
            provider: provider.to_string(),
            accepted,
        })
    })
}

/// Runs the call. When this is a retry whose client accepted the connect question for the provider the
/// call still needs, waits (at most `oauth.connect_wait_secs`) for the user to finish, and runs it once
/// more if they did; otherwise the connect stands, to be answered once ([`connect_pending`]).
async fn call_answering_connect(
    gateway: &Gateway,
    caller: &Identity,
    request: &CallToolRequestParams,
    progress: Option<Progress>,
    confirmer: &dyn Confirmer,
    answered: Option<&ConnectAnswer>,
    as_task: bool,
) -> Result<Ran, ToolError> {
    let args = request.arguments.as_ref();
    let call = |progress| {
        gateway.call_as(
            caller,
            &request.name,
            args,
            progress,
            Some(confirmer),
            as_task,
        )
    };
    let (Some(answer), Some(connector)) = (answered.filter(|a| a.accepted), gateway.connector())
    else {
        return call(progress).await;
    };
    let user = caller.user.as_str();
    // Where the connection stands before this call, so the wait can tell a new one.
    let before = connector.mark(user, &answer.provider).await.ok().flatten();
    let first = call(progress.clone()).await;
    let Err(ToolError::NeedsConnect { provider, .. }) = &first else {
        return first;
    };
    if *provider != answer.provider {
        return first;
    }
    let wait = connector.connect_wait();
    crate::call_log::waiting_for_connect(provider, wait);
    tracing::info!(provider = %provider, wait_secs = wait.as_secs(), "waiting for the user to finish connecting");
    if connector
        .wait_for_connection(user, provider, before, wait)
        .await
    {
        return call(progress).await;
    }
    first
}

/// The one answer to a client that already answered the connect question: the user has not finished
/// (or declined), so the call ends here with the link, instead of asking again.
fn connect_pending(
    request: &ConnectRequest,
    answer: Option<&ConnectAnswer>,
    waited: std::time::Duration,
    request_id: &RequestId,
) -> CallToolResult {
    let text = if answer.is_some_and(|a| a.accepted) {
        format!(
            "{}. The {title} connection is not finished yet (devgate waited {} s for it). Ask the user to finish connecting in the browser, opening this link again if the page is closed: {}. Then call the tool again.",
            request.reason,
            waited.as_secs(),
            request.link.url,
            title = request.title,
        )
    } else {
        format!(
            "{}. The user did not connect {title}. If they want to, they can open this link in a browser: {}. Then call the tool again.",
            request.reason,
            request.link.url,
            title = request.title,
        )
    };
    let mut result = CallToolResult::error(vec![ContentBlock::text(text)]);
    quote_request_id(&mut result, request_id);
    result
}

/// The call a [`ToolError`] ended, and what its client already answered.
struct Asking<'a> {
    tool: &'a str,
    user: &'a str,
    context: &'a RequestContext<RoleServer>,
    pending: &'a PendingElicitations,
    request_id: &'a RequestId,
    /// The answer to the connect question of an earlier round, if any.
    answered: Option<&'a ConnectAnswer>,
    /// How long this call has run.
    waited: std::time::Duration,
}

/// The one place a [`ToolError`] becomes what the client receives, and how the call ended: a connect
/// or confirm question where the client can ask its user, an unknown tool as a JSON-RPC error, and
/// everything else as an `isError` text ending with the request id.
async fn respond(
    gateway: &Gateway,
    error: ToolError,
    call: Asking<'_>,
) -> (Outcome, Result<CallToolResponse, McpError>) {
    let outcome = error.outcome();
    match error {
        ToolError::UnknownTool(_) => (
            outcome,
            Err(McpError::invalid_params(error.to_string(), None)),
        ),
        ToolError::NeedsConnect { provider, reason } => {
            let connect = gateway
                .connect_request(call.user, call.tool, &provider, reason)
                .await;
            match connect {
                Ok(connect) if call.answered.is_some_and(|a| a.provider == provider) => {
                    let text =
                        connect_pending(&connect, call.answered, call.waited, call.request_id);
                    (Outcome::ConnectPending, Ok(text.into()))
                }
                Ok(connect) => (
                    outcome,
                    connect_response(&connect, call.context, call.pending, call.request_id),
                ),
                Err(e) => (e.outcome(), Ok(error_result(&e, call.request_id).into())),
            }
        }
        ToolError::NeedsConfirmation {
            summary,
            request_state,
        } => {
            let mut requests = InputRequests::new();
            requests.insert(
                CONFIRM_INPUT.to_string(),
                InputRequest::Elicitation(ElicitRequest::new(confirm_form(&summary))),
            );
            let result = InputRequiredResult::new(Some(requests), Some(request_state));
            (outcome, Ok(CallToolResponse::InputRequired(result)))
        }
        error => (outcome, Ok(error_result(&error, call.request_id).into())),
    }
}

/// An `isError` result with the error's text, ending with the request id.
fn error_result(error: &ToolError, request_id: &RequestId) -> CallToolResult {
    let mut result = CallToolResult::error(vec![ContentBlock::text(error.to_string())]);
    quote_request_id(&mut result, request_id);
    result
}

/// When the client asked for progress on this request: a sender whose lines go out, in order, as
/// `notifications/progress` with a count that grows by one per line.
/// The forwarder ends once the sender is dropped; awaiting it before answering keeps the last progress
/// line ahead of the result.
fn progress_sender(
    context: &RequestContext<RoleServer>,
) -> Option<(Progress, tokio::task::JoinHandle<()>)> {
    let token = context.meta.get_progress_token()?;
    let peer = context.peer.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let forwarder = tokio::spawn(async move {
        let mut count = 0.0;
        while let Some(line) = rx.recv().await {
            count += 1.0;
            let mut param = ProgressNotificationParam::new(token.clone(), count);
            param.message = Some(line);
            if peer.notify_progress(param).await.is_err() {
                break;
            }
        }
    });
    Some((tx, forwarder))
}

/// How long a client may reuse a `tools/list` result (SEP-2549 `ttlMs`). The list changes only when
/// devgate restarts with another config or policy, or a token with other scopes is used, and devgate
/// sends no `list_changed`: five minutes bound how long a client may miss such a change.
pub const TOOLS_LIST_TTL_MS: u64 = 5 * 60 * 1000;

/// A `tools/list` result with its cache hints: `private` when the list was chosen for this caller
/// (by `[[policies]]` or a token's scopes), so no cache shared between users may serve it to another;
/// `public` when every caller gets the same list.
pub fn with_cache_hints(result: ListToolsResult, per_caller: bool) -> ListToolsResult {
    let scope = if per_caller {
        rmcp::model::CacheScope::Private
    } else {
        rmcp::model::CacheScope::Public
    };
    ListToolsResult {
        ttl_ms: Some(TOOLS_LIST_TTL_MS),
        cache_scope: Some(scope),
        ..result
    }
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        #[allow(deprecated)] // MCP logging, deprecated from 2026-07-28 (see `logging`)
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_logging();
        // Long runs as MCP tasks (see `tasks`), when devgate keeps them.
        let capabilities = match self.gateway.task_book() {
            Some(_) => capabilities.enable_tasks().build(),
            None => capabilities.build(),
        };
        ServerConfig::new(capabilities)
            .with_server_info(
                Implementation::new("devgate", env!("CARGO_PKG_VERSION")).with_title("devgate"),
            )
            .with_instructions(self.gateway.instructions())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let caller = self.caller(&context)?;
        // `[[policies]]` first, then a devgate-issued token sees only what its scopes allow.
        let granted = context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<crate::identity::GrantedScopes>());
        let for_caller = self.gateway.tools_for(&caller);
        // The same list for everyone unless `[[policies]]` or a token's scopes chose it for this caller.
        let per_caller = granted.is_some() || !Arc::ptr_eq(&for_caller, &self.gateway.tools());
        let result = ListToolsResult::with_all_items(crate::auth_server::step_up::visible(
            &for_caller,
            granted,
        ));
        let modern = context
            .protocol_version()
            .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str());
        Ok(if modern {
            with_cache_hints(result, per_caller)
        } else {
            result
        })
    }

    #[allow(deprecated)] // MCP logging, deprecated from 2026-07-28 (see `logging`)
    async fn set_level(
        &self,
        request: rmcp::model::SetLevelRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let stdio = matches!(self.caller, Caller::Fixed(_));
        logging::set_level(&self.log_level, stdio, &request, &context)
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.gateway.tool(name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let caller = self.caller(&context)?;
        let user = caller.user.clone();
        let request_id = context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<RequestId>())
            .cloned()
            .unwrap_or_default();
        // Only offered names reach metrics, logs and the audit; the JSON-RPC id is the caller's, so capped.
        let tool: Arc<str> = if self.gateway.offers(&request.name) {
            Arc::from(request.name.as_ref())
        } else {
            Arc::from(crate::audit::UNKNOWN_TOOL)
        };
        let rpc_id = context.id.to_string();
        let span = tracing::info_span!("tool_call", user = %user, tool = %tool, request_id = %request_id, rpc_id = %crate::audit::clip(&rpc_id, 64));
        let gateway = self.gateway.clone();
        let pending = self.pending.clone();
        let (log, log_forwarder) = logging::for_call(&self.log_level, &context, &tool).unzip();
        let call = async move {
            let flight = gateway.begin(&caller, &tool, request.arguments.as_ref(), &request_id.0);
            // Only a call that waits, or may follow a task, has progress to report (rmcp clients put a
            // token on every request).
            let waits = request
                .arguments
                .as_ref()
                .and_then(|a| a.get(crate::catalog::WAIT_PARAM))
                .is_some_and(|w| w.as_u64().is_some_and(|s| s > 0) || w.is_string())
                || gateway.follows_tasks(&request.name);
            let (progress, forwarder) = match waits.then(|| progress_sender(&context)).flatten() {
                Some((sender, forwarder)) => (Some(sender), Some(forwarder)),
                None => (None, None),
            };
            let confirmer = ClientConfirmer {
                context: &context,
                answer: confirm_answer(&request),
                request_state: request.request_state.as_deref(),
            };
            let answered = connect_answer(request.input_responses.as_ref());
            let as_task = tasks::wanted(&gateway, &request.name, &context);
            // Boxed, as is this whole call below: the call's state is kilobytes, and each move of an
            // unboxed future (into `select!`, into rmcp's task) copied all of it.
            let call = Box::pin(crate::call_log::scope(
                log,
                call_answering_connect(
                    &gateway,
                    &caller,
                    &request,
                    progress,
                    &confirmer,
                    answered.as_ref(),
                    as_task,
                ),
            ));
            let outcome = tokio::select! {
                outcome = call => outcome,
                () = context.ct.cancelled() => {
                    flight.finish(Outcome::Cancelled);
                    return Err(McpError::internal_error("the request was cancelled", None));
                }
            };
            if let Some(forwarder) = forwarder {
                // The call (and its sender) is done; let the last lines go out before the result.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), forwarder).await;
            }
            if let Some(forwarder) = log_forwarder {
                logging::drain(forwarder).await;
            }
            let (outcome, response) = match outcome {
                Ok(Ran::Done(result)) => (Outcome::Ok, Ok(result.into())),
                Ok(Ran::Follow(followed)) => {
                    let (outcome, task) = tasks::started(&gateway, &user, &tool, followed).await;
                    (outcome, Ok(task))
                }
                Err(error) => {
                    let asking = Asking {
                        tool: &tool,
                        user: &user,
                        context: &context,
                        pending: &pending,
                        request_id: &request_id,
                        answered: answered.as_ref(),
                        waited: flight.elapsed(),
                    };
                    respond(&gateway, error, asking).await
                }
            };
            flight.finish(outcome);
            response
        };
        Box::pin(call.instrument(span)).await
    }

    async fn get_task(
        &self,
        request: rmcp::model::GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::GetTaskResult, McpError> {
        let caller = self.caller(&context)?;
        tasks::get(&self.gateway, &caller.user, &request.task_id).await
    }

    async fn cancel_task(
        &self,
        request: rmcp::model::CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let caller = self.caller(&context)?;
        tasks::cancel(&self.gateway, &caller.user, &request.task_id).await
    }

    async fn on_custom_request(
        &self,
        request: rmcp::model::CustomRequest,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::CustomResult, McpError> {
        if self.gateway.task_book().is_some() {
            let caller = self.caller(&context)?;
            if let Some(answer) =
                tasks::custom(&self.gateway, &caller.user, &request, &context).await
            {
                return answer;
            }
        }
        Err(McpError::new(
            ErrorCode::METHOD_NOT_FOUND,
            request.method.clone(),
            None,
        ))
    }
}
