//! The gateway: the tools it offers, and what one tool call does ([`Gateway::call`]).
//!
//! Follow a call through its files in this order:
//! - `offer`: which tools config offers, and how `tools/list` and the server instructions describe them;
//! - `call`: the pipeline: arguments checked (an `isError` naming the field), a cursor opened,
//!   identifiers resolved, the request built from the tool's templates and sent, the reply shaped;
//! - `credentials`: the static credential or the user's token with its scopes; one renewal on a 401;
//! - `paging`: sealed cursors and the next page; `text`: text windows (`offset`) and tails (`tail`);
//! - `confirm`: the user's own confirmation before a confirmed tool runs;
//! - `wait`: following a run (`wait`) or a task the provider accepted with 202;
//! - `tasks`: what a call started as data, followed at once or by an MCP task kept in the store;
//! - `siblings`: the other read tools those steps call (poll, steps, logs, the confirmed target);
//! - `explain`: upstream failures as texts the agent can act on;
//! - `error`: why a call ended without a result ([`ToolError`]) and how it ended ([`Outcome`]);
//!   `finish`: one call's metric sample, audit row and log line, written once ([`InFlight`]).
//!
//! [`crate::mcp`] adapts this to rmcp; the transports only carry it.

mod call;
mod confirm;
mod credentials;
mod error;
mod explain;
mod finish;
mod offer;
mod paging;
mod siblings;
pub mod tasks;
mod text;
mod wait;

use std::collections::HashMap;
use std::sync::Arc;

use rmcp::model::{CallToolResult, JsonObject, Tool as McpTool};

use crate::catalog::schema::Defaults;
use crate::catalog::{Catalog, Provider, Tool, template};
use crate::config::Config;
use crate::confirm::Confirmations;
use crate::identity::Identity;
use crate::oauth::connect::{ConnectLink, Connector};
use crate::oauth::tokens::TokenManager;
use crate::policy::Policies;
use crate::provider::{ClientError, ProviderClient};
use crate::shape::{CursorKey, Reads};

use call::Call;
pub use confirm::{Answer, Channel, Confirmation, Confirmer};
pub use credentials::Credentials;
pub use error::{Outcome, ToolError};
pub use finish::InFlight;
pub use offer::is_offered;
use offer::{connections_result, connections_tool, describe, instructions, reads_of};
pub use tasks::{Followed, Ran};

/// The built-in tool that reports the caller's connections.
pub const CONNECTIONS_TOOL: &str = "devgate_connections";

/// Where a call reports progress (one line per change, e.g. the steps of a run it waits for); the MCP
/// layer forwards each line as a `notifications/progress` when the client asked for progress.
pub type Progress = tokio::sync::mpsc::UnboundedSender<String>;

/// How much of each path value the audit keeps (ids and slugs are far shorter).
const AUDIT_VALUE_CHARS: usize = 100;

/// How much of an unknown tool's name its error repeats.
const SHOWN_NAME_CHARS: usize = 64;

/// A tool as offered to agents: its catalog entry, its provider's catalog, the client that serves it
/// and the credentials calls go out with.
struct Offered {
    tool: Arc<Tool>,
    provider: Arc<Provider>,
    client: Arc<ProviderClient>,
    credentials: Credentials,
    defaults: Defaults,
    /// What the tool's output reads of a JSON reply; the rest is skipped while parsing.
    reads: Option<Reads>,
    /// The user confirms each call first (destructive, or listed in `tools.confirm`).
    confirm: bool,
    /// Signs and checks this tool's cursors (one key for the whole gateway).
    cursors: Arc<CursorKey>,
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

/// The offered tools and everything needed to call them. Cheap to share (`Arc`).
pub struct Gateway {
    offered: HashMap<String, Offered>,
    /// `tools/list` entries, built once, in name order.
    listed: Arc<Vec<McpTool>>,
    instructions: String,
    text_cap: usize,
    clients: HashMap<String, Arc<ProviderClient>>,
    /// Users' own connections, for providers configured with an OAuth client.
    connections: Option<Connections>,
    /// Per-user call rate (token bucket), when configured, keyed by [`Self::rate_key`].
    limiter: Option<governor::DefaultKeyedRateLimiter<u64>>,
    /// Hashes a user name into its rate-limit key, so a call allocates no key. Randomly seeded per
    /// process: no caller can choose a name that shares another user's budget.
    rate_keys: std::hash::RandomState,
    /// How often `wait` polls a run.
    wait_poll: std::time::Duration,
    /// Where each call is recorded, when devgate has a store.
    audit: Option<crate::audit::AuditLog>,
    /// Questions to the user before destructive calls, and their answers.
    confirmations: Arc<Confirmations>,
    /// `[[policies]]`: which tools each user's groups may see, call and must confirm.
    policies: Policies,
    /// The MCP tasks long runs are followed in, when devgate has a store.
    tasks: Option<Arc<tasks::book::TaskBook>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("tools", &self.listed.len())
            .finish()
    }
}

/// Users' own connections: where their tokens come from, and the flow that connects them.
#[derive(Clone)]
pub struct Connections {
    pub tokens: Arc<TokenManager>,
    pub connector: Arc<Connector>,
}

/// The HTTP client of every configured provider, by provider id: the first thing built from config.
pub fn provider_clients(
    config: &Config,
    catalog: &Catalog,
) -> Result<HashMap<String, Arc<ProviderClient>>, ClientError> {
    let mut clients = HashMap::new();
    for (id, pconf) in &config.providers {
        let provider = catalog
            .provider(id)
            .ok_or_else(|| ClientError::UnknownProvider { id: id.clone() })?;
        let client = ProviderClient::new(provider.clone(), pconf, &config.upstream)?;
        clients.insert(id.clone(), Arc::new(client));
    }
    Ok(clients)
}

impl Gateway {
    /// Builds the gateway from a validated config, the providers' clients ([`provider_clients`]) and,
    /// where users connect their own accounts, their connections (which also list
    /// `devgate_connections`). A provider is offered when it has both a config and a client.
    pub fn new(
        config: &Config,
        catalog: &Catalog,
        clients: HashMap<String, Arc<ProviderClient>>,
        connections: Option<Connections>,
    ) -> Self {
        let mut offered = HashMap::new();
        let cursors = Arc::new(CursorKey::random());
        for (id, client) in &clients {
            let Some(pconf) = config.providers.get(id) else {
                continue;
            };
            let provider = client.catalog.clone();
            let credentials = Credentials::resolve(client, pconf, connections.as_ref());
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
                        provider: provider.clone(),
                        client: client.clone(),
                        credentials: credentials.clone(),
                        defaults: defaults.clone(),
                        cursors: cursors.clone(),
                    },
                );
            }
        }
        let policies = Policies::new(&config.policies);
        let confirms = offered.values().any(|o| o.confirm) || policies.confirms_any();
        let tools: Vec<&Tool> = offered.values().map(|o| o.tool.as_ref()).collect();
        let instructions = instructions(config, catalog, &tools, confirms);
        let mut listed: Vec<McpTool> = offered.values().map(describe).collect();
        if connections.is_some() {
            listed.push(connections_tool());
        }
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        Self {
            offered,
            listed: Arc::new(listed),
            instructions,
            text_cap: config.tools.text_cap_bytes,
            clients,
            connections,
            limiter: rate_limiter(config),
            rate_keys: std::hash::RandomState::new(),
            wait_poll: std::time::Duration::from_millis(config.tools.wait_poll_ms),
            audit: None,
            confirmations: Arc::new(Confirmations::new(None)),
            policies,
            tasks: None,
        }
    }

    /// Keeps confirmations where `confirmations` does (the store, when devgate has one).
    pub fn with_confirmations(mut self, confirmations: Arc<Confirmations>) -> Self {
        self.confirmations = confirmations;
        self
    }

    /// Follows long runs as MCP tasks kept in `book` (see [`tasks`]).
    pub fn with_tasks(mut self, book: Arc<tasks::book::TaskBook>) -> Self {
        self.tasks = Some(book);
        self
    }

    /// The MCP tasks, when devgate keeps them (it has a store).
    pub fn task_book(&self) -> Option<&Arc<tasks::book::TaskBook>> {
        self.tasks.as_ref()
    }

    /// Where confirm pages find the confirmations they approve.
    pub fn confirmations(&self) -> &Arc<Confirmations> {
        &self.confirmations
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
    pub(super) fn audit(
        &self,
        caller: &Identity,
        name: &str,
        args: Option<&JsonObject>,
        outcome: Outcome,
        duration_ms: u64,
        request_id: &str,
    ) {
        let Some(audit) = &self.audit else {
            return;
        };
        let user = caller.user.as_str();
        let (provider, target) = match self.offered.get(name) {
            Some(o) => {
                let values: Vec<String> = o
                    .tool
                    .path
                    .placeholders()
                    .map(|p| p.name().to_string())
                    .filter_map(|n| {
                        let given = args.and_then(|a| template::scalar(a.get(&n)));
                        let default = o
                            .tool
                            .spec
                            .params
                            .get(&n)
                            .and_then(|p| p.default_from)
                            .and_then(|f| o.defaults.get(f))
                            .map(str::to_string);
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
            outcome: outcome.label().to_string(),
            duration_ms: duration_ms as i64,
            request_id: crate::audit::clip(request_id, 64).into_owned(),
            policy: self
                .offered
                .get(name)
                .map(|o| self.decide(caller, o).audit_text())
                .unwrap_or_default(),
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

    /// The `tools/list` entry of `name` (rmcp checks a call's arguments against its schema).
    pub fn tool(&self, name: &str) -> Option<&McpTool> {
        // `listed` is in name order.
        let at = self.listed.binary_search_by(|t| t.name.as_ref().cmp(name));
        at.ok().map(|i| &self.listed[i])
    }

    /// Runs one tool call for `user`: its result, or why there is none ([`ToolError`], which the MCP
    /// layer turns into an `isError` text, a connect or confirm question, or, for an unknown tool, a
    /// JSON-RPC error).
    pub async fn call(
        &self,
        caller: &Identity,
        name: &str,
        args: Option<&JsonObject>,
        progress: Option<Progress>,
        confirmer: Option<&dyn Confirmer>,
    ) -> Result<CallToolResult, ToolError> {
        match self
            .call_as(caller, name, args, progress, confirmer, false)
            .await?
        {
            Ran::Done(result) => Ok(result),
            Ran::Follow(_) => Err(ToolError::Internal {
                tool: name.to_string(),
                detail: "the call was not followed".into(),
            }),
        }
    }

    /// Runs one call as [`Self::call`] does, except that, `as_task` (and the tool may run as a task),
    /// what it starts is returned to follow in an MCP task ([`Ran::Follow`]) rather than followed here.
    /// Confirmation, policy and the rate limit apply as to any call, before anything starts.
    pub async fn call_as(
        &self,
        caller: &Identity,
        name: &str,
        args: Option<&JsonObject>,
        progress: Option<Progress>,
        confirmer: Option<&dyn Confirmer>,
        as_task: bool,
    ) -> Result<Ran, ToolError> {
        let as_task = as_task && self.runs_as_task(name);
        let user = caller.user.as_str();
        // The name first: a call to nothing costs no rate budget and is never counted under its name.
        if !self.offers(name) {
            return Err(ToolError::UnknownTool(
                crate::audit::clip(name, SHOWN_NAME_CHARS).into_owned(),
            ));
        }
        self.admit(user)
            .map_err(|retry_after_secs| ToolError::RateLimited {
                user: user.to_string(),
                retry_after_secs,
            })?;
        if name == CONNECTIONS_TOOL
            && let Some(connections) = &self.connections
        {
            return connections_result(&connections.connector, &connections.tokens, user)
                .await
                .map(Ran::Done);
        }
        let offered = self
            .offered
            .get(name)
            .ok_or_else(|| ToolError::UnknownTool(name.to_string()))?;
        // `[[policies]]`: a tool the caller's groups may not use is refused here, naming the rule; one
        // they must confirm is confirmed like a destructive one.
        let decision = self.decide(caller, offered);
        if !decision.allowed() {
            tracing::info!(user, reason = %decision.audit_text(), "denied by policy");
            return Err(ToolError::Denied(decision.denied_text(name, user)));
        }
        let call = Call {
            confirm: offered.confirm || decision.confirm.is_some(),
            offered,
            all: &self.offered,
            user,
            progress: progress.as_ref(),
            wait_poll: self.wait_poll,
            confirmer,
            confirmations: &self.confirmations,
            as_task,
        };
        call.run(args, self.text_cap).await
    }

    /// The `[[policies]]` decision for `caller` calling an offered tool.
    fn decide(&self, caller: &Identity, offered: &Offered) -> crate::policy::Decision {
        self.policies
            .decide(&caller.groups, offered.tool.as_ref().into())
    }

    /// The connect flow, when users connect their own accounts.
    pub fn connector(&self) -> Option<&Arc<Connector>> {
        self.connections.as_ref().map(|c| &c.connector)
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
        self.offered.contains_key(name) || (name == CONNECTIONS_TOOL && self.connections.is_some())
    }

    /// Takes one call from `user`'s rate budget, or says how many seconds until there is one. A new
    /// HTTP session counts too.
    pub fn admit(&self, user: &str) -> Result<(), u64> {
        use governor::clock::Clock;
        let Some(limiter) = self.limiter.as_ref() else {
            return Ok(());
        };
        limiter
            .check_key(&self.rate_key(user))
            .map_err(|not_until| {
                crate::metrics::global().rate_limited.inc();
                let wait = not_until.wait_time_from(limiter.clock().now());
                wait.as_secs_f64().ceil().max(1.0) as u64
            })
    }

    /// `user`'s key in the rate limiter.
    fn rate_key(&self, user: &str) -> u64 {
        std::hash::BuildHasher::hash_one(&self.rate_keys, user)
    }

    /// The link `user` opens to connect `provider`, which a call of `tool` needed (`reason`).
    pub async fn connect_request(
        &self,
        user: &str,
        tool: &str,
        provider: &str,
        reason: String,
    ) -> Result<ConnectRequest, ToolError> {
        let Some(connector) = self.connector() else {
            return Err(ToolError::Internal {
                tool: tool.to_string(),
                detail: reason,
            });
        };
        match connector.link(user, provider).await {
            Ok(link) => Ok(ConnectRequest {
                provider: provider.to_string(),
                title: connector.title(provider),
                reason,
                link,
            }),
            Err(e) => {
                tracing::error!(error = %e, "could not create a connect link");
                Err(ToolError::Internal {
                    tool: tool.to_string(),
                    detail: format!(
                        "{reason}. devgate could not create a connect link because its database failed; try again shortly."
                    ),
                })
            }
        }
    }
}

/// The per-user token bucket from `[limits]`, unless turned off.
fn rate_limiter(config: &Config) -> Option<governor::DefaultKeyedRateLimiter<u64>> {
    let per_minute = std::num::NonZeroU32::new(config.limits.calls_per_minute)?;
    let burst = std::num::NonZeroU32::new(config.limits.burst.max(1))?;
    Some(governor::RateLimiter::keyed(
        governor::Quota::per_minute(per_minute).allow_burst(burst),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_finds_every_listed_entry_by_name() {
        let text = "[providers.buddy]\ntoken = \"t\"\n[providers.bitbucket]\ntoken = \"t\"\n";
        let config = Config::from_toml(text, "t.toml", []).unwrap();
        let catalog = Catalog::builtin().unwrap();
        let clients = provider_clients(&config, &catalog).unwrap();
        let gateway = Gateway::new(&config, &catalog, clients, None);
        let listed = gateway.tools();
        assert!(listed.len() > 10);
        for entry in listed.iter() {
            assert_eq!(
                gateway.tool(&entry.name).map(|t| &t.name),
                Some(&entry.name)
            );
        }
        assert!(gateway.tool("buddy_nope").is_none());
        assert!(gateway.tool("").is_none());
    }
}
