//! The gateway proper: which tools are offered, and what one tool call does.
//!
//! A call runs: look the tool up → validate arguments (an `isError` naming the field) → resolve
//! identifiers → build the request from the tool's templates (or from a cursor) → send it through
//! the provider client → shape the reply. [`crate::mcp`] adapts this to rmcp; the transports only
//! carry it.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool as McpTool, ToolAnnotations};
use serde_json::{Map, Value, json};

use crate::catalog::schema::{self, Defaults};
use crate::catalog::{
    AcceptedSpec, CONFIRM_PARAM, CURSOR_PARAM, Catalog, FIELDS_PARAM, OFFSET_PARAM, Pagination,
    ResolveWhen, ResponseKind, TAIL_PARAM, Tool, WAIT_PARAM, WaitSpec, template,
};
use crate::config::Config;
use crate::confirm::{Binding, Confirmations, Refusal};
use crate::oauth::connect::{ConnectLink, Connector};
use crate::oauth::tokens::{TokenError, TokenManager};
use crate::provider::{ProviderClient, UpstreamError};
use crate::shape::{self, CursorKey, CursorScope, Field, Reads};

/// The built-in tool that reports the caller's connections.
pub const CONNECTIONS_TOOL: &str = "devgate_connections";

/// Where a call reports progress (one line per change, e.g. the steps of a run it waits for); the MCP
/// layer forwards each line as a `notifications/progress` when the client asked for progress.
pub type Progress = tokio::sync::mpsc::UnboundedSender<String>;

/// The user's answer to a question devgate put to them during the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    Accepted,
    Declined,
}

/// How this call's client can put devgate's question to its user (see [`crate::confirm`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// With a form elicitation during the call ([`Confirmer::confirm`]).
    Form,
    /// In the result (`input_required`, 2026-07-28); the client calls again with the answer and the
    /// `requestState` devgate issued ([`Confirmer::answer`]).
    InResult,
    /// Not at all: the user confirms on devgate's confirm page instead.
    None,
}

/// An answer a retried call carried, as the client sent it: only devgate checks whether it counts.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    pub accepted: bool,
    pub request_state: Option<&'a str>,
}

/// The client side of confirming a call (the MCP layer).
pub trait Confirmer: Send + Sync {
    fn channel(&self) -> Channel;
    /// Asks now ([`Channel::Form`]).
    fn confirm<'a>(
        &'a self,
        summary: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Confirmation> + Send + 'a>>;
    /// The answer this call brought back ([`Channel::InResult`]), if any.
    fn answer(&self) -> Option<Answer<'_>>;
}

/// How much of each path value the audit keeps (ids and slugs are far shorter).
const AUDIT_VALUE_CHARS: usize = 100;

/// How much of an unknown tool's name its error repeats.
const SHOWN_NAME_CHARS: usize = 64;

/// Lines of the failed step's log a waited-for run returns.
const WAIT_LOG_LINES: u64 = 40;

/// A tool as offered to agents: its catalog entry and the client that serves it.
struct Offered {
    tool: Arc<Tool>,
    client: Arc<ProviderClient>,
    defaults: Defaults,
    /// What the tool's output reads of a JSON reply; the rest is skipped while parsing.
    reads: Option<Reads>,
    /// The user confirms each call first (destructive, or listed in `tools.confirm`).
    confirm: bool,
    /// Signs and checks this tool's cursors (one key for the whole gateway).
    cursors: Arc<CursorKey>,
}

/// Why a call could not even start: answered as a JSON-RPC error, not a tool result.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("unknown tool `{0}`; call tools/list for the tools this gateway offers")]
    UnknownTool(String),
}

/// What a call came to.
#[derive(Debug)]
pub enum CallOutcome {
    /// A result for the agent (possibly an `isError` it can act on).
    Done(CallToolResult),
    /// The user has to connect (or reconnect) a provider first; the MCP layer turns this into an
    /// elicitation or a link in an `isError` text, depending on the client.
    Connect(ConnectRequest),
    /// The user has to confirm this summary; the client is asked through the result and calls again
    /// with the answer and this `requestState`.
    Confirm {
        summary: String,
        request_state: String,
    },
}

/// A link the user must open before the call can succeed.
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    pub provider: String,
    pub title: String,
    /// One sentence on why, naming the tool (and scopes) where that is the reason.
    pub reason: String,
    pub link: ConnectLink,
}

/// Why a call stopped before a result: a message for the agent, or a connect link to hand out.
enum Stop {
    Message(String),
    Connect {
        provider: String,
        reason: String,
    },
    Confirm {
        summary: String,
        request_state: String,
    },
}

impl From<String> for Stop {
    fn from(message: String) -> Self {
        Stop::Message(message)
    }
}

/// The credential one call goes out with.
enum Auth {
    Static(reqwest::header::HeaderValue),
    /// The user's own token; `version` tells a 401 retry whether someone refreshed since.
    User {
        header: reqwest::header::HeaderValue,
        version: i64,
    },
}

impl Auth {
    fn header(&self) -> &reqwest::header::HeaderValue {
        match self {
            Auth::Static(h) | Auth::User { header: h, .. } => h,
        }
    }
}

/// The offered tools and everything needed to call them. Cheap to share (`Arc`).
pub struct Gateway {
    offered: HashMap<String, Offered>,
    /// `tools/list` entries, built once, in name order.
    listed: Arc<Vec<McpTool>>,
    instructions: String,
    text_cap: usize,
    clients: HashMap<String, Arc<ProviderClient>>,
    /// Users' own tokens, for providers configured with an OAuth client.
    tokens: Option<Arc<TokenManager>>,
    connector: Option<Arc<Connector>>,
    /// Per-user call rate (token bucket), when configured.
    limiter: Option<governor::DefaultKeyedRateLimiter<String>>,
    /// How often `wait` polls a run.
    wait_poll: std::time::Duration,
    /// Where each call is recorded, when devgate has a store.
    audit: Option<crate::audit::AuditLog>,
    /// Questions to the user before destructive calls, and their answers.
    confirmations: Arc<Confirmations>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("tools", &self.listed.len())
            .finish()
    }
}

/// Whether config offers a tool: provider configured, scopes granted, toolset enabled, not excluded,
/// and read-only mode respected.
pub fn is_offered(config: &Config, catalog: &Catalog, tool: &Tool) -> bool {
    let Some(pconf) = config.providers.get(&tool.provider) else {
        return false;
    };
    let Some(provider) = catalog.provider(&tool.provider) else {
        return false;
    };
    let granted = match &pconf.scopes {
        Some(scopes) => provider.expand_scopes(scopes.iter().map(String::as_str)),
        None => provider.expand_scopes(provider.scopes.iter().map(|s| s.name.as_str())),
    };
    let toolsets = &config.tools.toolsets;
    tool.spec.scopes.iter().all(|s| granted.contains(s))
        && (toolsets.iter().any(|t| t == "all") || toolsets.contains(&tool.spec.toolset))
        && !config.tools.exclude.contains(&tool.name)
        && (!config.tools.read_only || tool.spec.annotations.read_only)
}

impl Gateway {
    /// Builds the gateway from a validated config.
    pub fn new(config: &Config, catalog: &Catalog) -> Result<Self, String> {
        let mut offered = HashMap::new();
        let mut clients = HashMap::new();
        let cursors = Arc::new(CursorKey::random());
        for (id, pconf) in &config.providers {
            let provider = catalog
                .provider(id)
                .ok_or_else(|| format!("providers.{id}: unknown provider"))?;
            let client = Arc::new(ProviderClient::new(
                provider.clone(),
                pconf,
                &config.upstream,
            )?);
            clients.insert(id.clone(), client.clone());
            let defaults = Defaults {
                workspace: pconf.workspace.clone(),
            };
            for tool in provider
                .tools
                .iter()
                .filter(|t| is_offered(config, catalog, t))
            {
                offered.insert(
                    tool.name.clone(),
                    Offered {
                        confirm: config.tools.confirm.contains(&tool.name)
                            || (config.tools.confirm_destructive
                                && tool.spec.annotations.destructive),
                        reads: reads_of(tool, &provider.spec.pagination),
                        tool: tool.clone(),
                        client: client.clone(),
                        defaults: defaults.clone(),
                        cursors: cursors.clone(),
                    },
                );
            }
        }
        let confirms = offered.values().any(|o| o.confirm);
        let mut listed: Vec<McpTool> = offered.values().map(describe).collect();
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Self {
            offered,
            listed: Arc::new(listed),
            instructions: instructions(config, confirms),
            text_cap: config.tools.text_cap_bytes,
            clients,
            tokens: None,
            connector: None,
            limiter: rate_limiter(config),
            wait_poll: std::time::Duration::from_millis(config.tools.wait_poll_ms),
            audit: None,
            confirmations: Arc::new(Confirmations::new(None)),
        })
    }

    /// Keeps confirmations where `confirmations` does (the store, when devgate has one).
    pub fn with_confirmations(mut self, confirmations: Arc<Confirmations>) -> Self {
        self.confirmations = confirmations;
        self
    }

    /// Where confirm pages find the confirmations they approve.
    pub fn confirmations(&self) -> &Arc<Confirmations> {
        &self.confirmations
    }

    /// Adds users' own connections: tokens for calls, and connect links when one is missing. Also
    /// lists the built-in `devgate_connections` tool.
    pub fn with_connections(
        mut self,
        tokens: Arc<TokenManager>,
        connector: Arc<Connector>,
    ) -> Self {
        let mut listed = self.listed.as_ref().clone();
        listed.push(connections_tool());
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        self.listed = Arc::new(listed);
        self.tokens = Some(tokens);
        self.connector = Some(connector);
        self
    }

    /// Signs cursors with `key` instead of a random per-process key, so they survive a restart and every
    /// instance sharing the key accepts them (the key is derived from the sealing key).
    pub fn with_cursor_key(mut self, key: [u8; 32]) -> Self {
        let cursors = Arc::new(CursorKey::new(key));
        for offered in self.offered.values_mut() {
            offered.cursors = cursors.clone();
        }
        self
    }

    /// Records every call in the store's audit log (starts its writer on the current runtime).
    pub fn with_audit(mut self, store: Arc<dyn crate::vault::Store>) -> Self {
        self.audit = Some(crate::audit::AuditLog::start(store));
        self
    }

    /// Waits (bounded) until the audit records of finished calls are written; for shutdown.
    pub async fn close_audit(&self) {
        if let Some(audit) = &self.audit {
            audit.close().await;
        }
    }

    /// Adds a call to the audit log: the resource is named by the tool's path values only (workspace,
    /// repository, ids), never by other arguments, which may be free text or secrets. A tool not
    /// offered is recorded as `unknown`, and every string is length-capped.
    pub fn audit(
        &self,
        user: &str,
        name: &str,
        args: Option<&JsonObject>,
        outcome: &str,
        duration_ms: u64,
        request_id: &str,
    ) {
        let Some(audit) = &self.audit else {
            return;
        };
        let (provider, target) = match self.offered.get(name) {
            Some(o) => {
                let values: Vec<String> = o
                    .tool
                    .path
                    .placeholders()
                    .map(|p| p.name().to_string())
                    .filter_map(|n| {
                        let given = args.and_then(|a| template::scalar(a.get(&n)));
                        let default = (n == "workspace")
                            .then(|| o.defaults.workspace.clone())
                            .flatten();
                        given
                            .or(default)
                            .map(|v| format!("{n}={}", crate::audit::clip(&v, AUDIT_VALUE_CHARS)))
                    })
                    .collect();
                (o.tool.provider.clone(), values.join(", "))
            }
            None => (String::new(), String::new()),
        };
        let tool = if self.offers(name) {
            name
        } else {
            crate::audit::UNKNOWN_TOOL
        };
        audit.record(crate::vault::AuditRecord {
            at: crate::vault::now(),
            user: crate::audit::clip(user, crate::audit::MAX_USER_CHARS).into_owned(),
            tool: tool.to_string(),
            provider,
            target,
            outcome: outcome.to_string(),
            duration_ms: duration_ms as i64,
            request_id: crate::audit::clip(request_id, 64).into_owned(),
        });
    }

    /// The provider clients, by provider id.
    pub fn clients(&self) -> &HashMap<String, Arc<ProviderClient>> {
        &self.clients
    }

    /// What the server tells an agent once, at the start: the conventions every tool shares, so the
    /// tool schemas need not repeat them.
    pub fn instructions(&self) -> String {
        self.instructions.clone()
    }

    /// The `tools/list` entries.
    pub fn tools(&self) -> Arc<Vec<McpTool>> {
        self.listed.clone()
    }

    pub fn tool(&self, name: &str) -> Option<&McpTool> {
        self.listed.iter().find(|t| t.name == name)
    }

    /// Runs one tool call for `user`. Everything the agent can act on (bad arguments, provider errors)
    /// comes back as an `isError` result; a missing connection as [`CallOutcome::Connect`]; only an
    /// unknown tool is an `Err`.
    pub async fn call(
        &self,
        user: &str,
        name: &str,
        args: Option<&JsonObject>,
        progress: Option<Progress>,
        confirmer: Option<&dyn Confirmer>,
    ) -> Result<CallOutcome, CallError> {
        // The name first: a call to nothing costs no rate budget and is never counted under its name.
        if !self.offers(name) {
            return Err(CallError::UnknownTool(
                crate::audit::clip(name, SHOWN_NAME_CHARS).into_owned(),
            ));
        }
        if let Some(limited) = self.rate_limited(user) {
            return Ok(CallOutcome::Done(limited));
        }
        if name == CONNECTIONS_TOOL
            && let Some(connector) = &self.connector
        {
            return Ok(CallOutcome::Done(
                connections_result(connector, self.tokens.as_deref(), user).await,
            ));
        }
        let offered = self
            .offered
            .get(name)
            .ok_or_else(|| CallError::UnknownTool(name.to_string()))?;
        let call = Call {
            offered,
            all: &self.offered,
            user,
            tokens: self.tokens.as_deref(),
            progress: progress.as_ref(),
            wait_poll: self.wait_poll,
            confirmer,
            confirmations: &self.confirmations,
        };
        match call.run(args, self.text_cap).await {
            Ok(result) => Ok(CallOutcome::Done(result)),
            Err(Stop::Message(message)) => Ok(CallOutcome::Done(CallToolResult::error(vec![
                ContentBlock::text(message),
            ]))),
            Err(Stop::Connect { provider, reason }) => {
                Ok(self.connect_request(user, &provider, reason).await)
            }
            Err(Stop::Confirm {
                summary,
                request_state,
            }) => Ok(CallOutcome::Confirm {
                summary,
                request_state,
            }),
        }
    }

    /// The connect flow, when users connect their own accounts.
    pub fn connector(&self) -> Option<&Arc<Connector>> {
        self.connector.as_ref()
    }

    /// Whether a call of `name` may report progress without `wait`: it follows a task the provider
    /// accepted with 202 (a slow merge).
    pub fn follows_tasks(&self, name: &str) -> bool {
        self.offered
            .get(name)
            .is_some_and(|o| o.tool.spec.accepted.is_some())
    }

    /// Whether `name` is a tool this gateway answers; only such names appear in metrics, logs and the
    /// audit (anything else is `unknown`, so a caller cannot grow them with made-up names).
    pub fn offers(&self, name: &str) -> bool {
        self.offered.contains_key(name) || (name == CONNECTIONS_TOOL && self.connector.is_some())
    }

    /// Takes one call from `user`'s rate budget, or says how many seconds until there is one. A new
    /// HTTP session counts too.
    pub fn admit(&self, user: &str) -> Result<(), u64> {
        use governor::clock::Clock;
        let Some(limiter) = self.limiter.as_ref() else {
            return Ok(());
        };
        limiter.check_key(&user.to_string()).map_err(|not_until| {
            crate::metrics::global().rate_limited.inc();
            let wait = not_until.wait_time_from(limiter.clock().now());
            wait.as_secs_f64().ceil().max(1.0) as u64
        })
    }

    /// An `isError` result when `user` is over the call rate, saying when to try again.
    fn rate_limited(&self, user: &str) -> Option<CallToolResult> {
        let secs = self.admit(user).err()?;
        tracing::info!(user, outcome = "rate_limited", "call");
        Some(CallToolResult::error(vec![ContentBlock::text(format!(
            "Rate limit: too many tool calls from {user} in the last minute. Wait {secs} s, then call again; batch or narrow the work if you can."
        ))]))
    }

    async fn connect_request(&self, user: &str, provider: &str, reason: String) -> CallOutcome {
        let Some(connector) = &self.connector else {
            return CallOutcome::Done(CallToolResult::error(vec![ContentBlock::text(reason)]));
        };
        match connector.link(user, provider).await {
            Ok(link) => CallOutcome::Connect(ConnectRequest {
                provider: provider.to_string(),
                title: connector.title(provider),
                reason,
                link,
            }),
            Err(e) => {
                tracing::error!(error = %e, "could not create a connect link");
                CallOutcome::Done(CallToolResult::error(vec![ContentBlock::text(format!(
                    "{reason}. devgate could not create a connect link because its database failed; try again shortly."
                ))]))
            }
        }
    }
}

/// The per-user token bucket from `[limits]`, unless turned off.
fn rate_limiter(config: &Config) -> Option<governor::DefaultKeyedRateLimiter<String>> {
    let per_minute = std::num::NonZeroU32::new(config.limits.calls_per_minute)?;
    let burst = std::num::NonZeroU32::new(config.limits.burst.max(1))?;
    Some(governor::RateLimiter::keyed(
        governor::Quota::per_minute(per_minute).allow_burst(burst),
    ))
}

/// The description of `devgate_connections`.
fn connections_tool() -> McpTool {
    let mut schema = JsonObject::new();
    schema.insert("type".into(), json!("object"));
    let mut output = JsonObject::new();
    output.insert("type".into(), json!("object"));
    McpTool::new(
        CONNECTIONS_TOOL,
        "Shows your provider connections, each checked with its provider just now: account, scopes, expiry, or the link to connect or reconnect.",
        Arc::new(schema),
    )
    .with_title("Connections")
    .with_annotations(ToolAnnotations::new().read_only(true).open_world(false))
    .with_raw_output_schema(Arc::new(output))
}

async fn connections_result(
    connector: &Connector,
    tokens: Option<&TokenManager>,
    user: &str,
) -> CallToolResult {
    let statuses = match tokens {
        Some(tokens) => connector.checked_statuses(user, tokens).await,
        None => connector.statuses(user, true).await,
    };
    match statuses {
        Ok(items) => CallToolResult::structured(json!({ "items": items })),
        Err(e) => {
            tracing::error!(error = %e, "could not read connections");
            CallToolResult::error(vec![ContentBlock::text(
                "devgate could not read its database; try again shortly.",
            )])
        }
    }
}

/// Conventions shared by all tools, written once instead of in every schema; the confirmation
/// sentence only when some offered tool is confirmed.
fn instructions(config: &Config, confirms: bool) -> String {
    let mut text = String::from(
        "devgate: Buddy.Works (buddy_*) and Bitbucket Cloud (bitbucket_*) tools. \
Shared arguments: `workspace` is the Buddy workspace domain or the Bitbucket workspace slug; \
`project` is a Buddy project's name (URL handle); `pipeline` is a Buddy pipeline's id or identifier; \
`repo_slug` is a Bitbucket repository slug; `*_id` and `*_uuid` arguments come from list results \
(Bitbucket uuids keep their braces); \
`limit` (page size: default 10 or 20, at most 100, or 50 for pull requests) is accepted by every list \
though left out of their schemas. \
Lists return {items, next_cursor}: pass next_cursor back as `cursor`, with the same arguments, for the next page. \
Text (files, diffs, logs) is cut at a size limit; pass next_offset back as `offset` to read on; \
log tools take `tail` (the last N lines). \
Read tools take `fields`, extra dot paths into the provider's object (e.g. [\"links.html.href\"], \
`path|200`), each added to every result under the path as written, or as `name` with `name=path`; \
pass it again with `cursor`; paths no item had are listed in fields_absent. \
Run tools take `wait` (seconds, at most 600): devgate follows the run to its end, reports its steps \
as progress, and returns the final state with the failed step's log tail; cancelling stops the \
waiting, not the run; an unfinished run comes back with next_step, the tool and arguments to call \
next.",
    );
    if confirms {
        text.push_str(
            " Tools whose schema lists `confirm` run only after the user confirms to devgate, never on \
your word (`confirm` is ignored): the user is asked through your client, or the error gives a link \
for them to approve; then call again with the same arguments.",
        );
    }
    for (id, p) in &config.providers {
        if let Some(ws) = &p.workspace {
            let _ = write!(
                text,
                " {id}_* tools work in workspace `{ws}`: the `workspace` argument is left out of their schemas but may be passed to use another."
            );
        }
    }
    text
}

/// The MCP description of a tool.
fn describe(offered: &Offered) -> McpTool {
    let tool = &offered.tool;
    let a = tool.spec.annotations;
    // Hints are stated where they carry meaning, and left to the MCP defaults elsewhere: a read-only tool
    // says just that (destructive and idempotent only mean something for tools that write); a tool that
    // writes states whether it is destructive and idempotent (read-only false is the default); open-world
    // (the default, true of every provider call) is only stated when false.
    let mut annotations = if a.read_only {
        ToolAnnotations::new().read_only(true)
    } else {
        ToolAnnotations::new()
            .destructive(a.destructive)
            .idempotent(a.idempotent())
    };
    if !a.open_world {
        annotations = annotations.open_world(false);
    }
    McpTool::new(
        tool.name.clone(),
        tool.spec.description.clone(),
        Arc::new(schema::input_schema(
            tool,
            &offered.defaults,
            offered.confirm,
        )),
    )
    .with_title(tool.spec.title.clone())
    .with_annotations(annotations)
    .with_raw_output_schema(Arc::new(schema::output_schema(tool)))
}

/// One tool call in progress: the tool, who calls, and where user tokens come from.
struct Call<'a> {
    offered: &'a Offered,
    /// Every tool this gateway offers, so a result names only tools the agent can call.
    all: &'a HashMap<String, Offered>,
    user: &'a str,
    tokens: Option<&'a TokenManager>,
    progress: Option<&'a Progress>,
    wait_poll: std::time::Duration,
    confirmer: Option<&'a dyn Confirmer>,
    confirmations: &'a Confirmations,
}

impl Call<'_> {
    async fn run(
        &self,
        args: Option<&JsonObject>,
        text_cap: usize,
    ) -> Result<CallToolResult, Stop> {
        let o = self.offered;
        let tool = &o.tool;
        let mut args =
            schema::validate(tool, args, &o.defaults).map_err(|e| format!("{}: {e}", tool.name))?;
        // The catalog lets any write tool carry `confirm`; only the ones devgate confirms list it.
        if !o.confirm && args.contains_key(CONFIRM_PARAM) {
            return Err(Stop::Message(format!(
                "{}: {CONFIRM_PARAM}: devgate does not ask the user before this tool, so there is nothing to confirm; call again without it",
                tool.name
            )));
        }
        // As given (before lookups turn names into ids), for the confirmation's summary.
        let given = if o.confirm { Some(args.clone()) } else { None };
        // A cursor is checked before anything goes upstream: one devgate did not issue to this user, for
        // this tool and these arguments, is refused.
        let scope = tool.paginated.then(|| o.cursor_scope(self.user, &args));
        let from_cursor = match (args.get(CURSOR_PARAM).and_then(Value::as_str), &scope) {
            (Some(cursor), Some(scope)) => Some(o.open_cursor(cursor, scope)?),
            _ => None,
        };
        let mut auth = self.auth().await?;
        self.resolve(&mut args, &mut auth).await?;

        let url = match &from_cursor {
            Some(relative) => o.cursor_url(relative, &args)?,
            None => {
                let path = tool
                    .path
                    .render(&args)
                    .map_err(|e| format!("{}: {}: {}", tool.name, e.param, e.reason))?;
                let query = template::render_query(&tool.query, &args);
                o.client
                    .url(&path, &query)
                    .map_err(|e| o.upstream_message(&e, &args))?
            }
        };

        match tool.spec.response {
            ResponseKind::Text if args.contains_key(TAIL_PARAM) => {
                let lines = args.get(TAIL_PARAM).and_then(Value::as_u64).unwrap_or(1) as usize;
                let window = self.tail(&args, url, lines, text_cap, &mut auth).await?;
                Ok(text_result(window, 0))
            }
            ResponseKind::Text => {
                let offset = args.get(OFFSET_PARAM).and_then(Value::as_u64).unwrap_or(0);
                let mut attempt = 0;
                let window = loop {
                    let outcome = o
                        .client
                        .text(
                            url.clone(),
                            offset,
                            text_cap,
                            tool.spec.text_lines.as_deref(),
                            auth.header(),
                            tool.spec.redirects,
                        )
                        .await;
                    match outcome {
                        Err(e) if attempt == 0 && self.renewable(&e, &auth) => {
                            auth = self.renew(&auth).await?;
                            attempt += 1;
                        }
                        other => break other.map_err(|e| self.stop(&e, &args))?,
                    }
                };
                Ok(text_result(window, offset))
            }
            ResponseKind::Json | ResponseKind::Empty => {
                let extra = o.extra_fields(&args)?;
                if let Some(given) = &given {
                    self.confirmed(given, &args, text_cap).await?;
                }
                let body = self.body(&args, &url, &mut auth).await?;
                let reply = self
                    .json_reply(
                        tool.spec.method.as_reqwest(),
                        url.clone(),
                        body.as_ref(),
                        &mut auth,
                        &args,
                        extra
                            .as_ref()
                            .map_or(o.reads.as_ref(), |e| e.reads.as_ref()),
                    )
                    .await?;
                let reply = match (&tool.spec.accepted, reply.status.as_u16()) {
                    (Some(spec), 202) => {
                        match self
                            .follow_task(spec, reply.location.as_ref(), &args, &mut auth)
                            .await?
                        {
                            Task::Done(result) => result,
                            Task::Running(note) => return Ok(CallToolResult::structured(note)),
                        }
                    }
                    _ => reply.body,
                };
                if tool.spec.response == ResponseKind::Empty || reply.is_null() {
                    return Ok(CallToolResult::structured(json!({"ok": true})));
                }
                let paging = scope.as_ref().map(|scope| Paging { scope, args: &args });
                let shaped = match &extra {
                    Some(extra) => extra.shape(o, &reply, &url, paging.as_ref()),
                    None => o.shape(
                        &reply,
                        &url,
                        o.tool.output.as_deref().unwrap_or_default(),
                        paging.as_ref(),
                    ),
                };
                let wait = args
                    .get(WAIT_PARAM)
                    .and_then(Value::as_u64)
                    .filter(|s| *s > 0);
                if let (Some(spec), Some(secs)) = (&tool.spec.wait, wait) {
                    let followed = self.follow(spec, &args, shaped, secs, text_cap).await;
                    return Ok(CallToolResult::structured(followed));
                }
                Ok(CallToolResult::structured(shaped))
            }
        }
    }

    /// Follows a run this call started until it ends or `secs` pass, reporting its steps as progress.
    /// Returns the run as the poll tool shows it, with the failed step's log tail when it did not
    /// succeed. Problems while following never hide that the run started: they are added as `wait_error`.
    async fn follow(
        &self,
        spec: &WaitSpec,
        args: &Map<String, Value>,
        started: Value,
        secs: u64,
        text_cap: usize,
    ) -> Value {
        let begun = tokio::time::Instant::now();
        let deadline = begun + std::time::Duration::from_secs(secs);
        let provider = &self.offered.tool.provider;
        let mut poll_args = Map::new();
        for (param, field) in &spec.args {
            if let Some(v) = started.get(field) {
                poll_args.insert(param.clone(), v.clone());
            }
        }
        let mut last_line = String::new();
        let mut seen = started.clone();
        let give_up = |mut run: Value, error: String| {
            if let Value::Object(out) = &mut run {
                out.insert("wait_error".into(), json!(error));
            }
            run
        };
        loop {
            let run = match self.sub(&spec.poll, args, &poll_args, text_cap).await {
                Ok(run) => run,
                Err(e) => return give_up(seen, e),
            };
            let steps = match &spec.steps_tool {
                Some(tool) => match self.sub(tool, args, &poll_args, text_cap).await {
                    Ok(list) => list.get("items").cloned().unwrap_or(json!([])),
                    Err(e) => return give_up(run, e),
                },
                None => run.get(&spec.steps).cloned().unwrap_or(json!([])),
            };
            let state = run.get(&spec.state).and_then(Value::as_str).unwrap_or("?");
            let step_state = |step: &Value| -> String {
                spec.step_state
                    .iter()
                    .find_map(|f| step.get(f).and_then(Value::as_str))
                    .unwrap_or("?")
                    .to_string()
            };
            let line = {
                let parts: Vec<String> = steps
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|step| {
                        let name = step
                            .get(&spec.step_name)
                            .and_then(Value::as_str)
                            .unwrap_or("step");
                        format!("{name}: {}", step_state(step))
                    })
                    .collect();
                if parts.is_empty() {
                    state.to_string()
                } else {
                    format!("{state} · {}", parts.join(", "))
                }
            };
            if line != last_line {
                if let Some(progress) = self.progress {
                    let _ = progress.send(line.clone());
                }
                last_line = line;
            }
            let running = spec.running.iter().any(|r| r == state);
            let waiting = spec.waiting.iter().find(|w| {
                let field = w.field.as_deref().unwrap_or(&spec.state);
                run.get(field).and_then(Value::as_str) == Some(w.value.as_str())
            });
            let mut out = run.clone();
            let Value::Object(fields) = &mut out else {
                return give_up(seen, format!("{provider}_{} returned no object", spec.poll));
            };
            if spec.steps_tool.is_some() {
                fields.insert("steps".into(), steps.clone());
            }
            let now = tokio::time::Instant::now();
            fields.insert(
                "waited_s".into(),
                json!(now.duration_since(begun).as_secs()),
            );
            if waiting.is_some() || (running && now >= deadline) {
                let (step, note) = self.next_step(spec, args, &poll_args, waiting);
                let note = note.unwrap_or_else(|| {
                    let check = match step {
                        Some(_) => format!("with {provider}_{}", spec.poll),
                        None => format!("in {}", self.offered.client.title()),
                    };
                    format!("still {state} after {secs} s; the run goes on: check it {check}")
                });
                fields.insert("wait_note".into(), json!(note));
                if let Some(step) = step {
                    fields.insert("next_step".into(), step);
                }
                return out;
            }
            if !running {
                let outcome = spec
                    .outcome
                    .as_ref()
                    .and_then(|f| run.get(f))
                    .or_else(|| run.get(&spec.state))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !spec.success.iter().any(|s| s == outcome) {
                    let failed = steps
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|step| spec.step_failed.contains(&step_state(step)));
                    if let Some(step) = failed {
                        let mut log_args = poll_args.clone();
                        for (param, field) in &spec.log_args {
                            if let Some(v) = step.get(field) {
                                log_args.insert(param.clone(), v.clone());
                            }
                        }
                        log_args.insert(TAIL_PARAM.into(), json!(WAIT_LOG_LINES));
                        let name = step.get(&spec.step_name).cloned().unwrap_or(Value::Null);
                        let log = match self.sub(&spec.log, args, &log_args, text_cap).await {
                            Ok(log) => log.get("text").cloned().unwrap_or(Value::Null),
                            Err(e) => json!(format!("(the log could not be read: {e})")),
                        };
                        fields.insert("failed_step".into(), json!({"name": name, "log_tail": log}));
                    }
                }
                return out;
            }
            seen = run;
            let pause = self.wait_poll.min(deadline.saturating_duration_since(now));
            tokio::time::sleep(pause).await;
        }
    }

    /// What to call next about a run `wait` stopped following before it ended, with its arguments:
    /// for a run that waits for someone, the tool that moves it on when this devgate offers it;
    /// otherwise the poll tool, to check the run later. Also the note that says so.
    fn next_step(
        &self,
        spec: &WaitSpec,
        run_args: &Map<String, Value>,
        poll_args: &Map<String, Value>,
        waiting: Option<&crate::catalog::WaitingSpec>,
    ) -> (Option<Value>, Option<String>) {
        let o = self.offered;
        let provider = &o.tool.provider;
        let exposed = |short: &str| format!("{provider}_{short}");
        let poll = exposed(&spec.poll);
        let mover = waiting.and_then(|w| w.next.as_deref()).map(exposed);
        let offered_mover = mover.as_ref().filter(|m| self.all.contains_key(*m));
        let name = offered_mover.cloned().unwrap_or_else(|| poll.clone());
        let step = self.all.get(&name).map(|next| {
            let arguments: Map<String, Value> = run_args
                .iter()
                .chain(poll_args)
                .filter(|(k, _)| next.tool.spec.params.contains_key(*k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            json!({"tool": name, "arguments": arguments})
        });
        let Some(waiting) = waiting else {
            return (step, None);
        };
        let title = o.client.title();
        let then = match step {
            Some(_) => format!("then check it with {poll} (next_step)"),
            None => format!("then check it in {title}"),
        };
        let note = match (offered_mover, &mover) {
            (Some(next), _) => format!(
                "{}: the run waits for {}. Once the user agrees, call {next} with next_step.arguments; then {poll} shows how it goes on.",
                waiting.value, waiting.waits_for
            ),
            (None, Some(next)) => format!(
                "{}: the run waits for {}. {next} is not offered here, so the user does it in {title}; {then}.",
                waiting.value, waiting.waits_for
            ),
            (None, None) => format!(
                "{}: the run waits for {}; {then}.",
                waiting.value, waiting.waits_for
            ),
        };
        (step, Some(note))
    }

    /// Runs only on an answer the user gave to devgate's own question about exactly this call (see
    /// [`crate::confirm`]); the agent's `confirm: true` counts for nothing.
    async fn confirmed(
        &self,
        given: &Map<String, Value>,
        args: &Map<String, Value>,
        text_cap: usize,
    ) -> Result<(), Stop> {
        let o = self.offered;
        let name = &o.tool.name;
        let summary = self.summary(given, args, text_cap).await?;
        let binding = Binding::new(self.user, name, given, &summary);
        let declined = || {
            Stop::Message(format!(
                "{name}: the user did not confirm \"{summary}\"; nothing was sent to {}. Ask the user what they want instead.",
                o.client.title()
            ))
        };
        let store_failed = |e: crate::vault::StoreError| {
            tracing::error!(error = %e, "the store failed while confirming a call");
            Stop::Message(format!(
                "{name}: devgate could not record the confirmation because its database failed; nothing was sent. Try again shortly."
            ))
        };
        let channel = self.confirmer.map_or(Channel::None, |c| c.channel());
        match (channel, self.confirmer) {
            (Channel::Form, Some(confirmer)) => match confirmer.confirm(&summary).await {
                Confirmation::Accepted => Ok(()),
                Confirmation::Declined => Err(declined()),
            },
            (Channel::InResult, Some(confirmer)) => {
                if let Some(answer) = confirmer.answer() {
                    let checked = match answer.request_state {
                        Some(state) => {
                            self.confirmations
                                .check_answer(&binding, state, answer.accepted)
                                .await
                        }
                        None => Err(Refusal::Forged),
                    };
                    match checked {
                        Ok(()) if answer.accepted => return Ok(()),
                        Ok(()) => return Err(declined()),
                        Err(Refusal::Store(e)) => return Err(store_failed(e)),
                        Err(why) => {
                            tracing::info!(tool = %name, reason = %why, "an answer without a valid requestState: asking again");
                        }
                    }
                }
                Err(Stop::Confirm {
                    request_state: self.confirmations.request_state(&binding),
                    summary,
                })
            }
            _ => {
                if self
                    .confirmations
                    .take_approval(&binding)
                    .await
                    .map_err(store_failed)?
                {
                    return Ok(());
                }
                let link = self
                    .confirmations
                    .link(&binding)
                    .await
                    .map_err(store_failed)?;
                Err(Stop::Message(match link {
                    Some(link) => format!(
                        "{name}: this needs the user's confirmation, and this client cannot ask for it here. Ask the user to open this link, check and approve exactly this: \"{summary}\" {link} (it works once, for {} minutes). Once they have approved it, call again with the same arguments; nothing was sent yet.",
                        crate::confirm::TTL_SECS / 60
                    ),
                    None => format!(
                        "{name}: this needs the user's confirmation (\"{summary}\"), which this client cannot ask for here, and devgate has no confirm page to offer: that needs `public_url`, served by this devgate or by one sharing its store. Nothing was sent. To go ahead: use an MCP client with form elicitation, or set `public_url` so devgate serves a confirm page, or have an operator stop confirming this tool ([tools] confirm_destructive = false for destructive tools; leave it out of [tools] confirm otherwise)."
                    ),
                }))
            }
        }
    }

    /// The sentence the user confirms ([`crate::confirm::summary`]): facts from the catalog's
    /// `confirm.summary` and the target as the `confirm.read` tool shows it, then every other argument,
    /// then the target's quoted free text.
    async fn summary(
        &self,
        given: &Map<String, Value>,
        args: &Map<String, Value>,
        text_cap: usize,
    ) -> Result<String, Stop> {
        let tool = &self.offered.tool;
        let read = tool.spec.confirm.as_ref().and_then(|c| c.read.as_ref());
        let current = match read {
            Some(read) => self
                .sub(read, args, &Map::new(), text_cap)
                .await
                .map_err(Stop::Message)?,
            None => Value::Null,
        };
        if let Some(refusal) = self.cannot_succeed(&current) {
            return Err(Stop::Message(refusal));
        }
        Ok(crate::confirm::summary::render(tool, given, &current))
    }

    /// Why the call cannot succeed on the target as devgate just read it (the catalog's
    /// `confirm.refuse`, e.g. merging a merged PR): then the user is not asked to approve a call the
    /// provider would refuse, and the agent learns the state and the tool that shows it.
    fn cannot_succeed(&self, current: &Value) -> Option<String> {
        let o = self.offered;
        let confirm = o.tool.spec.confirm.as_ref()?;
        let read = format!("{}_{}", o.tool.provider, confirm.read.as_ref()?);
        let (field, value) = confirm.refuse.iter().find_map(|(field, refused)| {
            let value = current.get(field)?.as_str()?;
            refused.iter().find(|r| *r == value).map(|r| (field, r))
        })?;
        Some(format!(
            "{}: this cannot succeed while the target's {field} is {value} ({read} shows it), so the user was not asked and nothing was sent to {}. Tell the user, or read the target with {read} first.",
            o.tool.name,
            o.client.title()
        ))
    }

    /// Calls another read tool of this provider for `follow`: the run tool's arguments that tool takes,
    /// plus `extra`. Its `isError` text (or connect reason) comes back as the error.
    async fn sub(
        &self,
        short_name: &str,
        run_args: &Map<String, Value>,
        extra: &Map<String, Value>,
        text_cap: usize,
    ) -> Result<Value, String> {
        let o = self.offered;
        let catalog = &o.client.catalog;
        let tool = catalog
            .tools
            .iter()
            .find(|t| t.spec.name == short_name)
            .cloned()
            .ok_or_else(|| format!("the catalog has no tool `{short_name}`"))?;
        let mut args: Map<String, Value> = run_args
            .iter()
            .filter(|(k, _)| tool.spec.params.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        args.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        let offered = Offered {
            confirm: false,
            reads: reads_of(&tool, &catalog.spec.pagination),
            tool,
            client: o.client.clone(),
            defaults: o.defaults.clone(),
            cursors: o.cursors.clone(),
        };
        let call = Call {
            offered: &offered,
            all: self.all,
            user: self.user,
            tokens: self.tokens,
            progress: None,
            wait_poll: self.wait_poll,
            confirmer: None,
            confirmations: self.confirmations,
        };
        match Box::pin(call.run(Some(&args), text_cap)).await {
            Ok(result) if result.is_error != Some(true) => {
                Ok(result.structured_content.unwrap_or(Value::Null))
            }
            Ok(result) => Err(result
                .content
                .iter()
                .filter_map(|c| c.as_text().map(|t| t.text.clone()))
                .collect::<Vec<_>>()
                .join(" ")),
            Err(Stop::Message(m)) => Err(m),
            Err(Stop::Connect { reason, .. }) => {
                Err(format!("{reason}; see devgate_connections for the link"))
            }
            Err(Stop::Confirm { summary, .. }) => Err(format!("{summary} needs confirming")),
        }
    }

    /// The last `lines` lines of a text result. A byte stream is read through with a bounded buffer; JSON
    /// lines (Buddy's logs) are fetched again from the right line when the first page did not reach the end.
    async fn tail(
        &self,
        args: &Map<String, Value>,
        url: url::Url,
        lines: usize,
        cap: usize,
        auth: &mut Auth,
    ) -> Result<crate::provider::TextWindow, Stop> {
        let o = self.offered;
        let spec = &o.tool.spec;
        let Some(lines_path) = spec.text_lines.as_deref() else {
            return match o
                .client
                .text_tail(url.clone(), lines, cap, auth.header(), spec.redirects)
                .await
            {
                Err(e) if self.renewable(&e, auth) => {
                    *auth = self.renew(auth).await?;
                    o.client
                        .text_tail(url, lines, cap, auth.header(), spec.redirects)
                        .await
                        .map_err(|e| self.stop(&e, args))
                }
                other => other.map_err(|e| self.stop(&e, args)),
            };
        };
        let read = |body: &Value| -> Vec<String> {
            shape::pointer(body, lines_path)
                .and_then(Value::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let first = self
            .json(reqwest::Method::GET, url, None, auth, args, None)
            .await?;
        let mut text = read(&first);
        let total = spec
            .text_total
            .as_deref()
            .and_then(|p| shape::pointer(&first, p))
            .and_then(Value::as_u64);
        if let (Some(total), Some(start)) = (total, spec.text_start.as_deref())
            && (text.len() as u64) < total
        {
            let mut from_end = args.clone();
            from_end.insert(start.to_string(), json!(total.saturating_sub(lines as u64)));
            let path = o
                .tool
                .path
                .render(&from_end)
                .map_err(|e| format!("{}: {}: {}", o.tool.name, e.param, e.reason))?;
            let url = o
                .client
                .url(&path, &template::render_query(&o.tool.query, &from_end))
                .map_err(|e| o.upstream_message(&e, args))?;
            text = read(
                &self
                    .json(reqwest::Method::GET, url, None, auth, args, None)
                    .await?,
            );
        }
        let joined = text.join("\n");
        Ok(crate::provider::tail_window(
            joined.as_bytes(),
            lines,
            cap,
            joined.len() as u64,
        ))
    }

    /// The credential for this call: the provider's static one, or the user's own token (refreshed
    /// if it is about to expire), after checking it carries the tool's scopes.
    async fn auth(&self) -> Result<Auth, Stop> {
        let o = self.offered;
        if let Some(header) = o.client.static_auth() {
            return Ok(Auth::Static(header.clone()));
        }
        let tokens = self.tokens.ok_or_else(|| {
            format!(
                "{}: no credentials are configured for {}",
                o.tool.name,
                o.client.title()
            )
        })?;
        let access = tokens
            .token(self.user, &o.tool.provider)
            .await
            .map_err(|e| self.token_stop(e))?;
        let granted = o
            .client
            .catalog
            .expand_scopes(access.scopes.iter().map(String::as_str));
        let missing: Vec<&String> = o
            .tool
            .spec
            .scopes
            .iter()
            .filter(|s| !granted.contains(*s))
            .collect();
        if !missing.is_empty() {
            let list = missing
                .iter()
                .map(|s| o.client.catalog.scope_label(s))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Stop::Connect {
                provider: o.tool.provider.clone(),
                reason: format!(
                    "{} needs the {list} scope, which your {} connection was not granted; reconnect to grant it",
                    o.tool.name,
                    o.client.title()
                ),
            });
        }
        let header = crate::provider::bearer(access.token.expose())
            .ok_or_else(|| format!("{}: the stored token is unusable; reconnect", o.tool.name))?;
        Ok(Auth::User {
            header,
            version: access.version,
        })
    }

    fn token_stop(&self, e: TokenError) -> Stop {
        let o = self.offered;
        let title = o.client.title();
        match e {
            TokenError::NotConnected => Stop::Connect {
                provider: o.tool.provider.clone(),
                reason: format!(
                    "{} needs your {title} account, which is not connected yet",
                    o.tool.name
                ),
            },
            TokenError::Broken(detail) => Stop::Connect {
                provider: o.tool.provider.clone(),
                reason: format!("Your {title} connection has to be renewed ({detail})"),
            },
            TokenError::Unavailable(detail) => Stop::Message(format!(
                "{}: {title} could not renew your access ({detail}); your connection is kept, try again in a minute.",
                o.tool.name
            )),
            TokenError::Store(e) => {
                tracing::error!(error = %e, "the store failed while reading tokens");
                Stop::Message(format!(
                    "{}: devgate could not read its database; try again shortly.",
                    o.tool.name
                ))
            }
        }
    }

    /// Whether a failure is a 401 on a user token, which one refresh may cure.
    fn renewable(&self, e: &UpstreamError, auth: &Auth) -> bool {
        matches!(e, UpstreamError::Status { status: 401, .. }) && matches!(auth, Auth::User { .. })
    }

    async fn renew(&self, auth: &Auth) -> Result<Auth, Stop> {
        let Auth::User { version, .. } = auth else {
            return Err(Stop::Message(
                "a static credential cannot be renewed".into(),
            ));
        };
        let o = self.offered;
        let tokens = self.tokens.ok_or_else(|| "no token manager".to_string())?;
        let access = tokens
            .renew_rejected(self.user, &o.tool.provider, *version)
            .await
            .map_err(|e| self.token_stop(e))?;
        let header = crate::provider::bearer(access.token.expose())
            .ok_or_else(|| format!("{}: the renewed token is unusable; reconnect", o.tool.name))?;
        Ok(Auth::User {
            header,
            version: access.version,
        })
    }

    /// Sends a JSON request; a 401 on a user token is answered by one refresh and one retry (the
    /// provider did not act on a request it refused to authenticate, so even a write is safe to resend).
    async fn json(
        &self,
        method: reqwest::Method,
        url: url::Url,
        body: Option<&Value>,
        auth: &mut Auth,
        args: &Map<String, Value>,
        reads: Option<&Reads>,
    ) -> Result<Value, Stop> {
        self.json_reply(method, url, body, auth, args, reads)
            .await
            .map(|r| r.body)
    }

    /// [`Self::json`] with the reply's status and `Location`.
    async fn json_reply(
        &self,
        method: reqwest::Method,
        url: url::Url,
        body: Option<&Value>,
        auth: &mut Auth,
        args: &Map<String, Value>,
        reads: Option<&Reads>,
    ) -> Result<crate::provider::JsonReply, Stop> {
        let client = &self.offered.client;
        match client
            .json(method.clone(), url.clone(), body, auth.header(), reads)
            .await
        {
            Ok(reply) => Ok(reply),
            Err(e) if self.renewable(&e, auth) => {
                *auth = self.renew(auth).await?;
                client
                    .json(method, url, body, auth.header(), reads)
                    .await
                    .map_err(|e| self.stop(&e, args))
            }
            Err(e) => Err(self.stop(&e, args)),
        }
    }

    /// Follows the task a 202 answer named (the tool's `accepted`): polls its status at the `Location`,
    /// which must be one of this tool's own tasks inside the API, every `wait_poll` with a progress line
    /// per change, until it leaves the pending states (its result) or `seconds` pass (a note saying it
    /// still runs and the tool that checks the target). A failed task is the provider's error.
    async fn follow_task(
        &self,
        spec: &AcceptedSpec,
        location: Option<&url::Url>,
        args: &Map<String, Value>,
        auth: &mut Auth,
    ) -> Result<Task, Stop> {
        let o = self.offered;
        let (name, title) = (&o.tool.name, o.client.title());
        let check = format!("{}_{}", o.tool.provider, spec.check);
        let under = o
            .tool
            .accepted_under
            .as_ref()
            .map(|t| t.render(args))
            .transpose()
            .map_err(|e| format!("{name}: {}: {}", e.param, e.reason))?;
        let own = |url: &url::Url| {
            let relative = o.client.relative(url.as_str())?;
            let path = relative.split('?').next().unwrap_or_default();
            under
                .as_deref()
                .is_some_and(|u| path.starts_with(u))
                .then(|| o.client.absolute(&relative))
                .flatten()
        };
        let Some(url) = location.and_then(own) else {
            let place = match location {
                Some(l) => format!(
                    "a task at {}, not one of this tool's",
                    l.origin().ascii_serialization()
                ),
                None => "no task".into(),
            };
            return Err(Stop::Message(format!(
                "{name}: {title} accepted the request (202) and named {place}, so devgate cannot follow it. It may still complete: check with {check} before trying again."
            )));
        };
        let begun = tokio::time::Instant::now();
        let deadline = begun + std::time::Duration::from_secs(spec.seconds);
        let mut last = String::new();
        loop {
            let status = self
                .json(reqwest::Method::GET, url.clone(), None, auth, args, None)
                .await?;
            let state = shape::pointer(&status, &spec.state)
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string();
            if !spec.pending.contains(&state) {
                return match shape::pointer(&status, &spec.result).filter(|v| !v.is_null()) {
                    Some(result) => Ok(Task::Done(result.clone())),
                    None => Err(Stop::Message(format!(
                        "{name}: {title}'s task ended {state} without a result; check with {check} what happened."
                    ))),
                };
            }
            if state != last {
                if let Some(progress) = self.progress {
                    let _ = progress.send(format!("{state}: {title} is still working on it"));
                }
                last = state.clone();
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                let step = self.all.get(&check).map(|next| {
                    let arguments: Map<String, Value> = args
                        .iter()
                        .filter(|(k, _)| next.tool.spec.params.contains_key(*k))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    json!({"tool": check, "arguments": arguments})
                });
                let how = match step {
                    Some(_) => format!("check the outcome with {check} (next_step)"),
                    None => format!("check the outcome in {title}"),
                };
                let mut out = Map::new();
                out.insert(spec.state.clone(), json!(state));
                out.insert(
                    "wait_note".into(),
                    json!(format!(
                        "{title} accepted the request and is still working on it ({state} after {} s); it goes on without devgate: {how} before trying again.",
                        now.duration_since(begun).as_secs()
                    )),
                );
                if let Some(step) = step {
                    out.insert("next_step".into(), step);
                }
                return Ok(Task::Running(Value::Object(out)));
            }
            let pause = self.wait_poll.min(deadline.saturating_duration_since(now));
            tokio::time::sleep(pause).await;
        }
    }

    /// An upstream failure as what the agent gets: a connect link when the provider says a scope is
    /// missing from the user's grant, else a message.
    fn stop(&self, e: &UpstreamError, args: &Map<String, Value>) -> Stop {
        let o = self.offered;
        if let (
            UpstreamError::Status {
                status: 403,
                required_scopes,
                ..
            },
            Some(_),
        ) = (e, self.tokens)
            && !required_scopes.is_empty()
            && o.client.static_auth().is_none()
        {
            return Stop::Connect {
                provider: o.tool.provider.clone(),
                reason: format!(
                    "{} answered 403: {} needs the {} scope, which your connection lacks; reconnect to grant it",
                    o.client.title(),
                    o.tool.name,
                    required_scopes.join(", ")
                ),
            };
        }
        Stop::Message(o.upstream_message(e, args))
    }

    /// Runs the tool's lookups, e.g. a pipeline identifier to its numeric id.
    async fn resolve(&self, args: &mut Map<String, Value>, auth: &mut Auth) -> Result<(), Stop> {
        let o = self.offered;
        for step in &o.tool.resolve {
            let Some(value) = template::scalar(args.get(&step.param)) else {
                continue;
            };
            let needed = match step.when {
                ResolveWhen::NotNumeric => !value.bytes().all(|b| b.is_ascii_digit()),
                ResolveWhen::ContainsSlash => value.contains('/'),
            };
            if !needed {
                continue;
            }
            let path = step
                .path
                .render(args)
                .map_err(|e| format!("{}: {}: {}", o.tool.name, e.param, e.reason))?;
            let url = o
                .client
                .url(&path, &template::render_query(&step.query, args))
                .map_err(|e| o.upstream_message(&e, args))?;
            let reply = match self
                .json(reqwest::Method::GET, url, None, auth, args, None)
                .await
            {
                Ok(r) => r,
                Err(Stop::Message(m)) => {
                    return Err(Stop::Message(format!(
                        "{}: could not look up {} `{value}`: {}",
                        o.tool.name,
                        step.param,
                        m.trim_start_matches(&format!("{}: ", o.tool.name))
                    )));
                }
                Err(other) => return Err(other),
            };
            let found = shape::pointer(&reply, &step.take)
                .filter(|v| !v.is_null())
                .cloned();
            match found {
                Some(v) => {
                    args.insert(step.param.clone(), v);
                }
                None => {
                    return Err(Stop::Message(format!(
                        "{}: {}: `{value}` was not found by {}; check the value",
                        o.tool.name,
                        step.param,
                        o.client.title()
                    )));
                }
            }
        }
        Ok(())
    }

    /// The request body: the template filled from the arguments, laid over the current object's kept
    /// fields when the provider's update replaces the whole object.
    async fn body(
        &self,
        args: &Map<String, Value>,
        url: &url::Url,
        auth: &mut Auth,
    ) -> Result<Option<Value>, Stop> {
        let tool = &self.offered.tool;
        let body = tool
            .spec
            .body
            .as_ref()
            .and_then(|t| template::render_body(t, args));
        let Some(keep) = &tool.keep_current else {
            return Ok(body);
        };
        let current = self
            .json(reqwest::Method::GET, url.clone(), None, auth, args, None)
            .await?;
        let mut merged = shape::project(&current, keep);
        if let Some(body) = body {
            merge(&mut merged, body);
        }
        Ok(Some(merged))
    }
}

/// Where a task the provider accepted with 202 ended up, as far as devgate followed it.
enum Task {
    /// Finished: the object the task produced (shaped like the tool's own reply).
    Done(Value),
    /// Still running at the bound: the result to return, saying so.
    Running(Value),
}

/// A call's projection widened by the agent's `fields`.
struct ExtraFields {
    /// The output names the agent asked for.
    asked: Vec<String>,
    fields: Vec<Field>,
    reads: Option<Reads>,
}

impl ExtraFields {
    /// Shapes the reply with the widened projection, naming any asked field that no item had, so an
    /// agent that guessed a path wrong is told rather than handed a silently narrower result.
    fn shape(
        &self,
        offered: &Offered,
        reply: &Value,
        url: &url::Url,
        paging: Option<&Paging>,
    ) -> Value {
        let mut shaped = offered.shape(reply, url, &self.fields, paging);
        let found = |name: &str| match shaped.get("items").and_then(Value::as_array) {
            Some(items) => items.iter().any(|i| i.get(name).is_some()),
            None => shaped.get(name).is_some(),
        };
        let absent: Vec<&String> = self.asked.iter().filter(|n| !found(n)).collect();
        if !absent.is_empty()
            && let Value::Object(out) = &mut shaped
        {
            out.insert("fields_absent".into(), json!(absent));
        }
        shaped
    }
}

/// What a tool's output reads of its JSON reply: the list, the output fields within it, and the paging
/// fields. `None` (parse everything) for tools without an output projection.
fn reads_of(tool: &Tool, pagination: &Pagination) -> Option<Reads> {
    let fields = tool.output.as_deref()?;
    let mut reads = Reads::default();
    let list = tool.spec.output.as_ref().and_then(|o| o.list.as_deref());
    reads.add_fields(list.unwrap_or_default(), fields);
    if list.is_some() {
        match pagination {
            Pagination::NextUrl { next, numbered } => {
                reads.add_path(next);
                if let Some(n) = numbered {
                    [&n.page, &n.pagelen, &n.size]
                        .into_iter()
                        .for_each(|p| reads.add_path(p));
                }
            }
            Pagination::Page {
                total_pages: Some(total),
                ..
            } => reads.add_path(total),
            Pagination::Page { .. } => {}
        }
    }
    Some(reads)
}

/// The URL of the page after this one by number, when the body's counters say there is one
/// (`page * pagelen < size`): for lists that leave out `next` (see [`crate::catalog::Numbered`]).
fn numbered_next(body: &Value, url: &url::Url, n: &crate::catalog::Numbered) -> Option<String> {
    let count = |path: &str| shape::pointer(body, path).and_then(Value::as_u64);
    let (page, pagelen, size) = (count(&n.page)?, count(&n.pagelen)?, count(&n.size)?);
    if pagelen == 0 || page.saturating_mul(pagelen) >= size {
        return None;
    }
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| k != &n.page)
        .collect();
    let mut next = url.clone();
    next.query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair(&n.page, &(page + 1).to_string());
    Some(next.to_string())
}

/// What a list call needs to issue the cursor of its next page.
struct Paging<'a> {
    scope: &'a CursorScope,
    /// The arguments after lookups, which render the tool's path (and cursor prefix).
    args: &'a Map<String, Value>,
}

/// Arguments that size or shape a page but do not choose what is listed: a cursor is not bound to them.
/// (`limit` is the page size of every list; the cursor's URL keeps the size it was issued with.)
const UNBOUND_BY_CURSOR: [&str; 3] = [CURSOR_PARAM, FIELDS_PARAM, "limit"];

impl Offered {
    /// What this tool's cursors are bound to for `user` calling with `args` (as validated).
    fn cursor_scope(&self, user: &str, args: &Map<String, Value>) -> CursorScope {
        CursorScope::new(&self.tool.name, user, args, &UNBOUND_BY_CURSOR)
    }

    fn refuse_cursor(&self, why: &str) -> String {
        format!(
            "{}: cursor: {why}; pass next_cursor exactly as returned, with the same arguments as the call that returned it, or omit it for the first page",
            self.tool.name
        )
    }

    /// The relative URL in a cursor, if devgate issued it within `scope`.
    fn open_cursor(&self, cursor: &str, scope: &CursorScope) -> Result<String, String> {
        self.cursors
            .open(scope, cursor)
            .map_err(|e| self.refuse_cursor(&e.to_string()))
    }

    /// Checks that a cursor's URL leads where this tool's own requests go (the provider chose it).
    fn cursor_url(&self, relative: &str, args: &Map<String, Value>) -> Result<url::Url, String> {
        let tool = &self.tool;
        let url = self
            .client
            .absolute(relative)
            .ok_or_else(|| self.refuse_cursor("leads outside the provider's API"))?;
        match self.within_resource(&url, args) {
            Ok(true) => Ok(url),
            Ok(false) => Err(self.refuse_cursor("belongs to other arguments than these")),
            Err(e) => Err(format!("{}: {}: {}", tool.name, e.param, e.reason)),
        }
    }

    /// Whether `url` is this tool's own resource for `args`: its path exactly, or under its
    /// `cursor_prefix` where the provider pages elsewhere (e.g. after a redirect).
    fn within_resource(
        &self,
        url: &url::Url,
        args: &Map<String, Value>,
    ) -> Result<bool, template::PathValueError> {
        let tool = &self.tool;
        let relative_path = self
            .client
            .relative(url.as_str())
            .map(|r| r.split('?').next().unwrap_or_default().to_string())
            .unwrap_or_default();
        match &tool.cursor_prefix {
            Some(prefix) => prefix.render(args).map(|p| relative_path.starts_with(&p)),
            None => tool.path.render(args).map(|p| relative_path == p),
        }
    }

    /// The output fields of this call when the agent asked for more with `fields`.
    fn extra_fields(&self, args: &Map<String, Value>) -> Result<Option<ExtraFields>, String> {
        let Some(given) = args.get(FIELDS_PARAM).and_then(Value::as_array) else {
            return Ok(None);
        };
        let mut specs: Vec<String> = Vec::new();
        for spec in given.iter().filter_map(Value::as_str) {
            if !specs.iter().any(|s| s == spec) {
                specs.push(spec.to_string());
            }
        }
        let mut asked = shape::parse_fields(&specs)
            .map_err(|e| format!("{}: {FIELDS_PARAM}: {e}", self.tool.name))?;
        // An unnamed path of several segments comes back under the path as asked (`links.html.href`),
        // not its last segment: paths that end alike stay apart, none replaces a default field, and
        // `fields_absent` names what the agent wrote.
        for (field, spec) in asked.iter_mut().zip(&specs) {
            let path = spec.split(['{', '|']).next().unwrap_or_default();
            if field.path.len() > 1 && !path.contains('=') {
                field.out = path.to_string();
            }
        }
        for (i, field) in asked.iter().enumerate() {
            if let Some(j) = asked[..i].iter().position(|f| f.out == field.out) {
                return Err(format!(
                    "{}: {FIELDS_PARAM}: `{}` and `{}` would both come back as `{}`; name one (`other_name=path`)",
                    self.tool.name, specs[j], specs[i], field.out
                ));
            }
        }
        let mut fields = self.tool.output.clone().unwrap_or_default();
        for field in &asked {
            match fields.iter_mut().find(|f| f.out == field.out) {
                Some(slot) => *slot = field.clone(),
                None => fields.push(field.clone()),
            }
        }
        let list = self
            .tool
            .spec
            .output
            .as_ref()
            .and_then(|o| o.list.as_deref());
        let reads = self.reads.clone().map(|mut reads| {
            reads.add_fields(list.unwrap_or_default(), &asked);
            reads
        });
        Ok(Some(ExtraFields {
            asked: asked.into_iter().map(|f| f.out).collect(),
            fields,
            reads,
        }))
    }

    /// Projects a JSON reply and adds the cursor of the next page.
    fn shape(
        &self,
        body: &Value,
        url: &url::Url,
        fields: &[Field],
        paging: Option<&Paging>,
    ) -> Value {
        let tool = &self.tool;
        let Some(list) = tool.spec.output.as_ref().and_then(|o| o.list.as_deref()) else {
            return shape::project(body, fields);
        };
        let items: Vec<Value> = shape::pointer(body, list)
            .and_then(Value::as_array)
            .map(|items| items.iter().map(|i| shape::project(i, fields)).collect())
            .unwrap_or_default();
        let mut out = Map::new();
        let next = match paging {
            Some(paging) if tool.paginated => self
                .next_page(body, url, items.len(), paging.args)
                .map(|relative| self.cursors.issue(paging.scope, &relative)),
            _ => None,
        };
        out.insert("items".into(), Value::Array(items));
        if let Some(cursor) = next {
            out.insert("next_cursor".into(), json!(cursor));
        }
        Value::Object(out)
    }

    /// The relative URL of the next page, if there is one.
    fn next_page(
        &self,
        body: &Value,
        url: &url::Url,
        count: usize,
        args: &Map<String, Value>,
    ) -> Option<String> {
        match &self.client.catalog.spec.pagination {
            Pagination::NextUrl { next, numbered } => {
                let link = match shape::pointer(body, next).and_then(Value::as_str) {
                    Some(link) => link.to_string(),
                    None => numbered_next(body, url, numbered.as_ref()?)?,
                };
                let relative = self.client.relative(&link);
                // A cursor that the next call would refuse is not handed out.
                let own = relative
                    .as_deref()
                    .and_then(|r| self.client.absolute(r))
                    .is_some_and(|u| self.within_resource(&u, args).unwrap_or(false));
                if !own {
                    tracing::warn!(tool = %self.tool.name, "the provider's next-page link leaves this tool's resource; paging stops here");
                    return None;
                }
                relative
            }
            Pagination::Page {
                page_param,
                size_param,
                total_pages,
            } => {
                let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
                let get = |k: &str| {
                    pairs
                        .iter()
                        .find(|(key, _)| key == k)
                        .and_then(|(_, v)| v.parse::<u64>().ok())
                };
                let page = get(page_param).unwrap_or(1);
                let more = match total_pages
                    .as_deref()
                    .and_then(|p| shape::pointer(body, p))
                    .and_then(Value::as_u64)
                {
                    Some(total) => page < total,
                    None => get(size_param).is_some_and(|size| count as u64 >= size),
                };
                if !more {
                    return None;
                }
                let mut next = url.clone();
                next.query_pairs_mut()
                    .clear()
                    .extend_pairs(pairs.iter().filter(|(k, _)| k != page_param))
                    .append_pair(page_param, &(page + 1).to_string());
                self.client.relative(next.as_str())
            }
        }
    }

    /// An upstream failure as a message the agent can act on.
    fn upstream_message(&self, error: &UpstreamError, args: &Map<String, Value>) -> String {
        format!("{}: {}", self.tool.name, self.explain(error, args))
    }

    fn explain(&self, error: &UpstreamError, args: &Map<String, Value>) -> String {
        let provider = self.client.title();
        let tool = &self.tool;
        let changes = tool.spec.method != crate::catalog::Method::Get;
        let mut text = String::new();
        match error {
            UpstreamError::Status {
                status,
                message,
                retry_after,
                retries,
                fields,
                ..
            } => {
                let _ = write!(text, "{provider} answered {status}: {}", sentence(message));
                if let Some(extra) = tool.errors.get(status) {
                    let _ = write!(text, " {}", sentence(extra));
                }
                let hint = match status {
                    401 => format!(
                        " The configured credential was rejected: check {}{}.",
                        self.client.credential_setting(),
                        tool_token_help(&self.client)
                    ),
                    403 => format!(
                        " The credential may lack a scope this tool needs ({}) or the account lacks permission: grant it{}, or ask the owner for access.",
                        tool.spec.scopes.join(", "),
                        tool_token_help(&self.client)
                    ),
                    404 => format!(" Check {}.", self.path_values(args)),
                    400 | 422 => self.rejected_hint(fields, changes),
                    409 => format!(
                        " It conflicts with the current state: read it first{}, then decide.",
                        self.check_hint()
                    ),
                    429 => match retry_after {
                        Some(s) => format!(" Rate limited; wait {s} s before calling again."),
                        None => " Rate limited; wait a minute before calling again.".into(),
                    },
                    s if *s < 500 => {
                        " Check the arguments against the tool's description, then call again."
                            .into()
                    }
                    s if *s >= 500 && changes => format!(
                        " The change may or may not have happened: check its state before retrying{}.",
                        self.check_hint()
                    ),
                    s if *s >= 500 => {
                        format!(" devgate tried {} time(s); try again later.", retries + 1)
                    }
                    _ => String::new(),
                };
                text.push_str(&hint);
            }
            UpstreamError::Timeout { retries, .. } | UpstreamError::Connection { retries, .. } => {
                let _ = write!(text, "{provider} could not be reached ({error}).");
                if changes {
                    let _ = write!(
                        text,
                        " The change may or may not have happened: check its state before retrying{}.",
                        self.check_hint()
                    );
                } else {
                    let _ = write!(
                        text,
                        " devgate tried {} time(s); try again later.",
                        retries + 1
                    );
                }
            }
            UpstreamError::TooLarge { .. } => {
                let _ = write!(
                    text,
                    "{provider}'s {error}; narrow the request (a smaller limit or a filter)."
                );
            }
            UpstreamError::Malformed { .. } | UpstreamError::Redirect { .. } => {
                let _ = write!(
                    text,
                    "{} This is a provider fault; try again later.",
                    sentence(&error.to_string())
                );
            }
        }
        text
    }

    /// The hint after a 400 or 422. Only when the provider named the fields it rejected does it say
    /// which argument to correct; a change refused without one is more likely refused for the
    /// target's state than for an argument, so the agent is sent to read the target instead.
    fn rejected_hint(&self, fields: &[String], changes: bool) -> String {
        let params = self.params_behind(fields);
        if !params.is_empty() {
            return format!(" Correct {}, then call again.", params.join(", "));
        }
        if !fields.is_empty() {
            let named: Vec<String> = fields
                .iter()
                .map(|f| format!("`{}`", crate::confirm::summary::clean(f, 64)))
                .collect();
            return format!(
                " It names {}: check the arguments that set it against the tool's description, then call again.",
                named.join(", ")
            );
        }
        if changes {
            return format!(
                " No argument was named as wrong, so the target's current state may not allow this: read it first{}, then decide.",
                self.check_hint()
            );
        }
        " Check the arguments against the tool's description, then call again.".into()
    }

    /// The tool's arguments behind request fields a provider named (`destination` in the body is
    /// filled from the argument `destination`, `merge_strategy` from `strategy`), as `` `name` ``.
    fn params_behind(&self, fields: &[String]) -> Vec<String> {
        let spec = &self.tool.spec;
        let mut params = std::collections::BTreeSet::new();
        for field in fields {
            if spec.params.contains_key(field) {
                params.insert(field.clone());
                continue;
            }
            let mut templates: Vec<String> = Vec::new();
            if let Some(text) = spec.query.get(field) {
                templates.push(text.clone());
            }
            let mut node = spec.body.as_ref();
            for key in field.split('.') {
                node = node.and_then(|n| n.get(key));
            }
            if let Some(node) = node {
                collect_strings(node, &mut templates);
            }
            for text in &templates {
                for piece in template::parse(text).unwrap_or_default() {
                    if let template::Piece::Hole(p) = piece
                        && spec.params.contains_key(p.name())
                    {
                        params.insert(p.name().to_string());
                    }
                }
            }
        }
        params.into_iter().map(|p| format!("`{p}`")).collect()
    }

    /// `workspace=acme, repo_slug=api`: the path values a 404 is about.
    fn path_values(&self, args: &Map<String, Value>) -> String {
        let names: Vec<String> = self
            .tool
            .path
            .placeholders()
            .map(|p| p.name().to_string())
            .filter_map(|n| template::scalar(args.get(&n)).map(|v| format!("{n}={v}")))
            .collect();
        if names.is_empty() {
            "the arguments".into()
        } else {
            names.join(", ")
        }
    }

    /// A read-only tool of the same provider that looks at what this one changes, if the catalog has one.
    fn check_hint(&self) -> String {
        let path = &self.tool.spec.path;
        self.client
            .catalog
            .tools
            .iter()
            .filter(|t| {
                t.spec.annotations.read_only && t.spec.method == crate::catalog::Method::Get
            })
            .filter(|t| path.starts_with(&t.spec.path) && t.spec.path.len() > 1)
            .max_by_key(|t| t.spec.path.len())
            .map(|t| format!(" (e.g. with {})", t.name))
            .unwrap_or_default()
    }
}

/// Provider text as one sentence: a full stop added only where it has no closing mark of its own.
fn sentence(text: &str) -> String {
    let text = text.trim_end();
    if text.ends_with(['.', '!', '?', '…']) {
        text.to_string()
    } else {
        format!("{text}.")
    }
}

/// Every string in a template value (a body template's leaves).
fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| collect_strings(i, out)),
        Value::Object(fields) => fields.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

fn tool_token_help(client: &ProviderClient) -> String {
    client
        .catalog
        .spec
        .token_help
        .as_deref()
        .map(|h| format!("; a new token can be created at {h}"))
        .unwrap_or_default()
}

/// Deep-merges `over` onto `base`: objects merge key by key, anything else replaces.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// A text window as a tool result: the raw text for the model, and the same in `structuredContent`.
fn text_result(window: crate::provider::TextWindow, offset: u64) -> CallToolResult {
    let mut structured = Map::new();
    let mut text = window.text.clone();
    if let Some(next) = window.next_offset {
        let total = window.total.map(|t| format!(" of {t}")).unwrap_or_default();
        let _ = write!(
            text,
            "\n[cut: bytes {offset}–{next}{total}; call again with offset={next} to read on]"
        );
    }
    structured.insert("text".into(), Value::String(window.text));
    if let Some(next) = window.next_offset {
        structured.insert("next_offset".into(), json!(next));
    }
    if let Some(total) = window.total {
        structured.insert("total_bytes".into(), json!(total));
    }
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(Value::Object(structured));
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_overlays_nested_objects() {
        let mut base = json!({"title": "Old", "destination": {"branch": {"name": "main"}}, "reviewers": [{"uuid": "{a}"}]});
        merge(&mut base, json!({"title": "New", "reviewers": []}));
        assert_eq!(
            base,
            json!({"title": "New", "destination": {"branch": {"name": "main"}}, "reviewers": []})
        );
    }
}
