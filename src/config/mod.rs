//! `devgate.toml` → a typed [`Config`].
//!
//! Order of precedence: the file (from `--config`, else `DEVGATE_CONFIG`, else `./devgate.toml`, which may
//! be absent), then `DEVGATE_<SECTION>__<KEY>` environment overrides (`DEVGATE_TOOLS__READ_ONLY=true`,
//! `DEVGATE_PROVIDERS__BITBUCKET__TOKEN=…`), then `${NAME}` interpolation in every string. Secrets are
//! meant to be written as `${NAME}`; a literal secret in the file still works but is reported as a warning.

mod check;
mod load;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

/// Keys whose values are secrets: never logged, and expected as `${ENV}` references.
const SECRET_KEYS: &[&str] = &["token", "api_token", "client_secret"];

/// The [`Config::origin`] of a config read from no file (built-in defaults and environment overrides).
pub const NO_FILE: &str = "defaults";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("{setting}: environment variable {name} is not set")]
    MissingEnv { setting: String, name: String },
    #[error("{0}")]
    Invalid(String),
}

impl ConfigError {
    /// An unset variable behind a secret setting (`client_secret`, `token`, `api_token`): commands that
    /// only read the store run without it.
    pub fn is_missing_secret(&self) -> bool {
        matches!(self, ConfigError::MissingEnv { setting, .. }
            if setting.rsplit('.').next().is_some_and(|key| SECRET_KEYS.contains(&key)))
    }
}

/// A string that must never be shown: `Debug` and `Display` print `[redacted]`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where users and providers reach this gateway; the OAuth callback is `{public_url}/integration-callback`.
    #[serde(default)]
    pub public_url: Option<String>,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub tools: ToolsConfig,
    #[serde(default)]
    pub upstream: UpstreamConfig,
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub oauth: OAuthConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    /// `[login]`: the OpenID Connect provider users sign in with (see `auth_server::oidc`).
    #[serde(default)]
    pub login: Option<crate::auth_server::oidc::LoginConfig>,
    /// Which tools each group may see, call and must confirm (see [`crate::policy`]).
    #[serde(default)]
    pub policies: Vec<crate::policy::PolicyConfig>,
    /// devgate as the authorization server of its MCP endpoint (`http.auth = "oauth"`).
    #[serde(default)]
    pub auth_server: crate::auth_server::config::AuthServerConfig,
    /// The directory of the config file: relative store paths are resolved against it.
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
    /// Problems that do not stop devgate (e.g. a literal secret in the file).
    #[serde(skip)]
    pub warnings: Vec<String>,
    /// Where the config came from, for messages: a file's path, or [`NO_FILE`].
    #[serde(skip)]
    pub origin: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address for `devgate http` when `--listen` is not given.
    pub listen: String,
    /// Serve without sessions, so any instance can answer any request.
    pub stateless: bool,
    /// Host header values accepted besides loopback and the public URL's host.
    pub allowed_hosts: Vec<String>,
    /// How HTTP callers prove who they are.
    pub auth: HttpAuth,
    /// For `auth = "jwt"`: the identity provider whose tokens are accepted.
    pub jwt: Option<JwtConfig>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            stateless: false,
            allowed_hosts: Vec::new(),
            auth: HttpAuth::ApiKey,
            jwt: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpAuth {
    /// `Authorization: Bearer <key>` with a key from `devgate keys create`.
    ApiKey,
    /// A JWT from the organisation's identity provider; the user is its `sub`.
    Jwt,
    /// No authentication: every caller is the local user. Only on a loopback listen address.
    None,
    /// devgate is the OAuth authorization server of its own MCP endpoint (`[auth_server]`); API keys
    /// keep working beside its tokens.
    #[serde(rename = "oauth")]
    OAuth,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Expected `iss`.
    pub issuer: String,
    /// Expected `aud`.
    pub audience: String,
    /// Where the issuer publishes its signing keys (JWKS).
    pub jwks_url: String,
    /// JWS algorithms accepted (e.g. `["PS256"]`); default: each key's own `alg`, else RS256 for RSA
    /// keys and the curve's algorithm for EC and Ed25519 keys.
    #[serde(default)]
    pub algorithms: Vec<String>,
    /// The claim that lists the caller's groups for `[[policies]]` (an array of strings, or one
    /// string); a claim name with dots that is not a top-level claim is followed as a path
    /// (`realm_access.roles`).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
}

fn default_groups_claim() -> String {
    "groups".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite://path/devgate.db` (relative paths are next to the config file).
    pub url: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://devgate.db".into(),
        }
    }
}

/// Protection against runaway agents and oversized requests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Tool calls per user per minute (a token bucket refilled evenly); 0 turns the limit off.
    pub calls_per_minute: u32,
    /// Calls a user may make at once before the per-minute rate applies.
    pub burst: u32,
    /// Largest HTTP request body devgate reads, in bytes.
    pub max_request_bytes: usize,
    /// After SIGTERM, how long in-flight calls get to finish before devgate exits.
    pub shutdown_grace_secs: u64,
    /// How long an HTTP client may take to send a request's headers, in milliseconds; a kept-alive
    /// connection idle for this long is closed too. Counts before authentication, so it bounds what an
    /// anonymous client can hold.
    pub header_timeout_ms: u64,
    /// How long a request's body may take to arrive, counted from its headers, in milliseconds.
    pub body_timeout_ms: u64,
    /// Open HTTP connections at most; further ones wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// Live MCP sessions (stateful HTTP) at most, over all users.
    pub max_sessions: usize,
    /// Live MCP sessions per user.
    pub sessions_per_user: usize,
    /// A session without a request for this long ends and frees its place, in seconds.
    pub session_idle_secs: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            calls_per_minute: 600,
            burst: 60,
            max_request_bytes: 1024 * 1024,
            shutdown_grace_secs: 10,
            // Generous for a client on a slow link, short enough that a stalled one lets go of its
            // connection soon; kept-alive clients (httpx: 5 s) usually close idle connections first.
            header_timeout_ms: 10_000,
            // The largest body (1 MiB) at 35 KB/s.
            body_timeout_ms: 30_000,
            // Below the common 1024 open-files limit, leaving room for the store and provider sockets.
            max_connections: 512,
            // A session costs about 70 KB: 512 of them stay under 40 MB.
            max_sessions: 512,
            // A person's agents hold a few sessions at once; clients that reconnect without DELETE
            // leave idle ones behind until they expire, so there is room for several reconnects.
            sessions_per_user: 16,
            // rmcp's default keep-alive.
            session_idle_secs: 300,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuthConfig {
    /// Refresh an access token this long before it expires.
    pub refresh_margin_secs: u64,
    /// How long one instance may hold a connection's refresh lease (default: the upstream timeout
    /// plus 5 s). After a crash mid-refresh, the next refresh waits at most this long.
    pub refresh_lease_secs: Option<u64>,
    /// How long a tool call waits for the user to finish connecting once their client said the connect
    /// link is open, before answering with the link (under common client request timeouts of 60 s).
    pub connect_wait_secs: u64,
}

/// The default of `oauth.connect_wait_secs`.
pub const DEFAULT_CONNECT_WAIT_SECS: u64 = 30;

impl Default for OAuthConfig {
    fn default() -> Self {
        Self {
            refresh_margin_secs: 60,
            refresh_lease_secs: None,
            connect_wait_secs: DEFAULT_CONNECT_WAIT_SECS,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ToolsConfig {
    /// Offer only tools that change nothing.
    pub read_only: bool,
    /// Toolsets to offer (`all`, or names such as `pipelines`, `pull_requests`).
    pub toolsets: Vec<String>,
    /// Tools never offered, by exposed name.
    pub exclude: Vec<String>,
    /// Cap on text results (files, diffs, logs), in bytes; longer text is cut with an offset to read on.
    pub text_cap_bytes: usize,
    /// How often a run tool called with `wait` polls the run, in milliseconds.
    pub wait_poll_ms: u64,
    /// Ask the user (form elicitation) before a tool marked destructive runs.
    pub confirm_destructive: bool,
    /// Further tools to confirm first, by exposed name (e.g. `buddy_run_pipeline`).
    pub confirm: Vec<String>,
    /// How long an MCP task is kept after it starts (its `ttlMs`), in seconds.
    pub task_ttl_secs: u64,
    /// How long the instance following a task holds it without renewing; after that, another instance
    /// sharing the store takes it over when the task is next read. In seconds.
    pub task_lease_secs: u64,
}

impl Default for ToolsConfig {
    fn default() -> Self {
        Self {
            read_only: false,
            toolsets: vec!["all".into()],
            exclude: Vec::new(),
            text_cap_bytes: 64 * 1024,
            wait_poll_ms: 2000,
            confirm_destructive: true,
            confirm: Vec::new(),
            task_ttl_secs: 24 * 3600,
            task_lease_secs: 15,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    pub connect_timeout_ms: u64,
    /// Whole-request timeout, per attempt.
    pub timeout_ms: u64,
    /// Extra attempts for GETs that failed with 429, 5xx, a timeout or a dropped connection.
    pub retries: u32,
    /// First backoff ceiling; doubled per attempt. Each wait is drawn between half the ceiling and all
    /// of it, so attempts spread out without any wait falling near zero.
    pub backoff_ms: u64,
    /// A `Retry-After` longer than this is reported instead of waited for.
    pub max_retry_after_ms: u64,
    /// Largest JSON body read from a provider.
    pub max_body_bytes: usize,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 5_000,
            timeout_ms: 30_000,
            retries: 2,
            backoff_ms: 200,
            max_retry_after_ms: 10_000,
            max_body_bytes: 16 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Overrides the catalog's API base (regions, self-hosted, tests).
    #[serde(default)]
    pub api_base: Option<String>,
    /// Scopes granted to devgate; tools needing others are not offered. Default: all the catalog's scopes.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Default for `workspace` arguments.
    #[serde(default)]
    pub workspace: Option<String>,
    /// A static access token, sent as `Authorization: Bearer`.
    #[serde(default)]
    pub token: Option<Secret>,
    /// Atlassian account email, with `api_token`: sent as HTTP Basic (Bitbucket API tokens).
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub api_token: Option<Secret>,
    /// OAuth client (consumer) id registered with the provider: users connect their own accounts.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// Override the catalog's OAuth endpoints (self-hosted, regions, tests).
    #[serde(default)]
    pub authorize_url: Option<String>,
    #[serde(default)]
    pub token_url: Option<String>,
    #[serde(default)]
    pub revoke_url: Option<String>,
}

impl ProviderConfig {
    /// Whether users connect their own accounts through OAuth (rather than one static credential).
    pub fn uses_oauth(&self) -> bool {
        self.client_id.is_some() && self.token.is_none() && self.api_token.is_none()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            public_url: None,
            http: HttpConfig::default(),
            tools: ToolsConfig::default(),
            upstream: UpstreamConfig::default(),
            providers: BTreeMap::new(),
            store: StoreConfig::default(),
            oauth: OAuthConfig::default(),
            limits: LimitsConfig::default(),
            login: None,
            policies: Vec::new(),
            auth_server: Default::default(),
            base_dir: None,
            warnings: Vec::new(),
            origin: NO_FILE.into(),
        }
    }
}
