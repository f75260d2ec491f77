//! devgate: an MCP gateway that gives AI agents Buddy.Works and Bitbucket Cloud tools.
//!
//! Follow one tool call through the modules in this order:
//! - [`transport`]: stdio or streamable HTTP carries the JSON-RPC request in;
//! - [`mcp`]: the rmcp `ServerHandler` answers `tools/list` and hands `tools/call` to the gateway;
//! - [`gateway`]: one tool call, a file per step: the tools offered, the call pipeline (arguments,
//!   request, shaping), credentials and their renewal, paging, text, `wait` and MCP tasks (a run
//!   followed in the store, by any instance), confirmation, error texts, the typed `ToolError` and the
//!   `Outcome` each call is recorded under once;
//! - [`catalog`]: where tools come from (`tools/*.toml`): schemas, templates, scopes, and the
//!   parameters the engine adds, declared once;
//! - [`provider`]: sends the request (timeouts, retries, error mapping);
//! - [`shape`]: projects the reply to a small result with a cursor.
//!
//! Around them: [`identity`] (who is calling: stdio user, API keys, JWT, devgate-issued tokens),
//! [`auth_server`] (devgate as the OAuth authorization server of its own MCP endpoint, signing users in
//! with a provider account or the organisation's OpenID Connect provider), [`oauth`] (the user's
//! provider connections: connect flow, callback, refresh, revoke), [`vault`] (the store and sealing),
//! [`config`] (devgate.toml), [`policy`] (`[[policies]]`: which tools each group may see, call and must
//! confirm), [`app`] (wiring it all from config), [`confirm`] (the user's confirmation of
//! destructive calls), `request_id` (one id per request, in logs and error texts), `audit` and `metrics`
//! (one row and one sample per call), [`call_log`] (what a call tells its client while it runs: retries,
//! refreshes, cut results, as MCP log messages), [`redact`] (no link ticket in a log line), [`sim`] (simulated
//! providers and identity provider for tests and the sandbox) and [`sandbox`] (the sim plus a gateway,
//! for a first look without accounts).

pub mod app;
pub(crate) mod audit;
pub mod auth_server;
pub mod call_log;
pub mod catalog;
pub mod config;
pub mod confirm;
pub mod gateway;
pub mod identity;
pub mod mcp;
pub(crate) mod metrics;
pub mod oauth;
pub mod policy;
pub mod provider;
pub mod redact;
pub(crate) mod request_id;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod shape;
#[cfg(feature = "sandbox")]
pub mod sim;
pub mod transport;
pub mod vault;
