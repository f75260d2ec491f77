//! `devgate.toml` → a typed [`Config`].
//!
//! Order of precedence: the file (from `--config`, else `DEVGATE_CONFIG`, else `./devgate.toml`, which may
//! be absent), then `DEVGATE_<SECTION>__<KEY>` environment overrides (`DEVGATE_TOOLS__READ_ONLY=true`,
//! `DEVGATE_PROVIDERS__BITBUCKET__TOKEN=…`), then `${NAME}` interpolation in every string. Secrets are
//! meant to be written as `${NAME}`; a literal secret in the file still works but is reported as a warning.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::catalog::Catalog;

/// Environment variables with the `DEVGATE_` prefix that are not setting overrides.
const RESERVED_ENV: &[&str] = &[
    "DEVGATE_CONFIG",
    "DEVGATE_SECRET_KEY",
    "DEVGATE_LOG",
    "DEVGATE_LOG_FORMAT",
];

/// Top-level settings that `DEVGATE_<SETTING>[__<KEY>…]` variables override.
const SETTINGS: &[&str] = &[
    "public_url",
    "http",
    "tools",
    "upstream",
    "providers",
    "store",
    "oauth",
    "limits",
    "login",
    "policies",
    "auth_server",
];

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

impl Config {
    /// Finds and loads the config: `explicit`, else `DEVGATE_CONFIG`, else `./devgate.toml` if present.
    /// Stops at the first problem; [`Config::load_all`] lists them all.
    pub fn load(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        first_problem(Self::load_all(explicit))
    }

    /// Loads like [`Config::load`] but reads past problems: every missing `${NAME}`, bad override,
    /// unknown key and bad value is returned, and the config is built from the rest (a missing
    /// variable reads as empty, a bad key as absent). `None` when nothing could be built (the file is
    /// unreadable or not TOML). For `devgate check`, which reports everything at once, and for
    /// commands that only read the store and so need no secrets.
    pub fn load_all(explicit: Option<&Path>) -> (Option<Self>, Vec<ConfigError>) {
        let env_path = std::env::var_os("DEVGATE_CONFIG").map(PathBuf::from);
        let path = explicit.map(Path::to_path_buf).or(env_path);
        let (text, origin) = match path {
            Some(p) => match std::fs::read_to_string(&p) {
                Ok(text) => (text, p.display().to_string()),
                Err(cause) => return (None, vec![ConfigError::Read { path: p, cause }]),
            },
            None => match std::fs::read_to_string("devgate.toml") {
                Ok(t) => (t, "devgate.toml".to_string()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    (String::new(), NO_FILE.to_string())
                }
                Err(cause) => {
                    let path = "devgate.toml".into();
                    return (None, vec![ConfigError::Read { path, cause }]);
                }
            },
        };
        let (mut config, problems) = Self::from_toml_all(&text, &origin, std::env::vars());
        if let Some(config) = config.as_mut()
            && origin != NO_FILE
        {
            config.base_dir = Path::new(&origin).parent().map(Path::to_path_buf);
        }
        (config, problems)
    }

    /// The store URL with a relative SQLite path resolved against the config file's directory.
    pub fn store_url(&self) -> String {
        let url = &self.store.url;
        let Some(path) = url.strip_prefix("sqlite://") else {
            return url.clone();
        };
        let path = Path::new(path);
        match &self.base_dir {
            Some(dir) if path.is_relative() && !dir.as_os_str().is_empty() => {
                format!("sqlite://{}", dir.join(path).display())
            }
            _ => url.clone(),
        }
    }

    /// The OAuth callback URL registered with providers.
    pub fn callback_url(&self) -> Option<String> {
        self.public_url
            .as_deref()
            .map(|u| format!("{}/integration-callback", u.trim_end_matches('/')))
    }

    /// Parses config text, applying `DEVGATE_…` overrides and `${NAME}` references from `env`.
    pub fn from_toml(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        first_problem(Self::from_toml_all(text, origin, env))
    }

    /// [`Config::from_toml`] reading past problems, as [`Config::load_all`] does.
    pub fn from_toml_all(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> (Option<Self>, Vec<ConfigError>) {
        let env: BTreeMap<String, String> = env.into_iter().collect();
        let parse_error = |message: String| ConfigError::Parse {
            origin: origin.to_string(),
            message: message.trim().replace('\n', " "),
        };
        let mut root: toml::Table = match toml::from_str(text) {
            Ok(root) => root,
            Err(e) => return (None, vec![parse_error(e.to_string())]),
        };
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        literal_secrets(&root, "", &mut warnings);
        for (name, raw) in &env {
            let Some(rest) = name.strip_prefix("DEVGATE_") else {
                continue;
            };
            if RESERVED_ENV.contains(&name.as_str()) || rest.is_empty() {
                continue;
            }
            let keys: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            // Only the config's own settings: other DEVGATE_* variables (test and CI switches) are not
            // overrides and must not break loading.
            if !SETTINGS.contains(&keys[0].as_str()) {
                continue;
            }
            if let Err(message) = set_path(&mut root, &keys, env_value(raw)) {
                problems.push(ConfigError::Parse {
                    origin: name.clone(),
                    message,
                });
            }
        }
        interpolate_table(&mut root, "", &env, &mut problems);
        // serde stops at the first unknown key or bad value: note it, drop that key, and try again
        // until the rest deserializes. Each round removes one key, so this ends.
        loop {
            match toml::Table::try_into::<Config>(root.clone()) {
                Ok(mut config) => {
                    config.warnings = warnings;
                    config.origin = origin.to_string();
                    return (Some(config), problems);
                }
                Err(e) => {
                    let shown = e.to_string();
                    problems.push(parse_error(shown.clone()));
                    let removed = error_key(e.message(), &shown)
                        .is_some_and(|path| remove_path(&mut root, &path));
                    if !removed {
                        return (None, problems);
                    }
                }
            }
        }
    }

    /// The problems of the tool selection alone (unknown toolsets, unknown excluded tools): what
    /// `devgate tools` checks, which also runs without providers or credentials.
    pub fn tool_problems(&self, catalog: &Catalog) -> Vec<String> {
        let mut problems = Vec::new();
        let toolsets: std::collections::BTreeSet<&str> = catalog
            .providers
            .iter()
            .flat_map(|p| p.tools.iter().map(|t| t.spec.toolset.as_str()))
            .collect();
        for set in &self.tools.toolsets {
            if set != "all"
                && !toolsets.contains(set.as_str())
                && catalog.retired_toolset(set).is_none()
            {
                let known: Vec<&str> = toolsets.iter().copied().collect();
                problems.push(format!(
                    "tools.toolsets: unknown toolset `{set}` (known: all, {})",
                    known.join(", ")
                ));
            }
        }
        for name in &self.tools.exclude {
            let known = catalog
                .providers
                .iter()
                .any(|p| p.tools.iter().any(|t| &t.name == name));
            if !known && catalog.retired_tool(name).is_none() {
                problems.push(format!("tools.exclude: unknown tool `{name}`"));
            }
        }
        for name in &self.tools.confirm {
            let known = catalog
                .providers
                .iter()
                .flat_map(|p| p.tools.iter())
                .find(|t| &t.name == name);
            match known {
                None if catalog.retired_tool(name).is_some() => {}
                None => problems.push(format!("tools.confirm: unknown tool `{name}`")),
                Some(t) if t.spec.annotations.read_only => problems.push(format!(
                    "tools.confirm: `{name}` changes nothing, so there is nothing to confirm"
                )),
                Some(_) => {}
            }
        }
        problems.extend(crate::policy::problems(&self.policies, catalog));
        problems
    }

    /// Names the config still uses that a provider retired (see [`crate::catalog::RetiredSpec`]): each is
    /// ignored, and worth a warning rather than a refusal to start, because the config was right when it
    /// was written and every other tool still works; a name no catalog ever had stays an error.
    pub fn retired_names(&self, catalog: &Catalog) -> Vec<String> {
        let mut warnings = Vec::new();
        for (id, p) in &self.providers {
            let Some(provider) = catalog.provider(id) else {
                continue;
            };
            for scope in p.scopes.iter().flatten() {
                if let Some(why) = provider.retired_scope(scope) {
                    warnings.push(format!(
                        "providers.{id}.scopes: `{scope}` is retired ({why}); it is ignored: remove it"
                    ));
                }
            }
        }
        for set in &self.tools.toolsets {
            if let Some(why) = catalog.retired_toolset(set) {
                warnings.push(format!(
                    "tools.toolsets: `{set}` is retired ({why}); it selects no tool: remove it"
                ));
            }
        }
        for (key, names) in [
            ("exclude", &self.tools.exclude),
            ("confirm", &self.tools.confirm),
        ] {
            for name in names {
                if let Some(why) = catalog.retired_tool(name) {
                    warnings.push(format!(
                        "tools.{key}: `{name}` is retired ({why}); it is ignored: remove it"
                    ));
                }
            }
        }
        warnings.extend(crate::policy::retired_names(&self.policies, catalog));
        warnings
    }

    /// Checks the config against the catalog; returns every problem found.
    pub fn validate(&self, catalog: &Catalog) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(url) = &self.public_url
            && let Err(e) = url::Url::parse(url)
        {
            problems.push(format!("public_url `{url}`: {e}"));
        }
        if self.http.listen.parse::<std::net::SocketAddr>().is_err() {
            problems.push(format!(
                "http.listen `{}` is not an address such as 127.0.0.1:8080",
                self.http.listen
            ));
        }
        if !(10..=60_000).contains(&self.tools.wait_poll_ms) {
            problems.push("tools.wait_poll_ms must be between 10 and 60000".into());
        }
        if self.tools.text_cap_bytes < 1024 {
            problems.push("tools.text_cap_bytes must be at least 1024".into());
        }
        let limits = &self.limits;
        for (name, value) in [
            ("header_timeout_ms", limits.header_timeout_ms),
            ("body_timeout_ms", limits.body_timeout_ms),
        ] {
            if !(100..=600_000).contains(&value) {
                problems.push(format!("limits.{name} must be between 100 and 600000"));
            }
        }
        for (name, value) in [
            ("max_connections", limits.max_connections),
            ("max_sessions", limits.max_sessions),
            ("sessions_per_user", limits.sessions_per_user),
        ] {
            if value == 0 {
                problems.push(format!("limits.{name} must be at least 1"));
            }
        }
        if limits.session_idle_secs == 0 {
            problems.push("limits.session_idle_secs must be at least 1".into());
        }
        problems.extend(self.tool_problems(catalog));
        if self.providers.is_empty() && self.origin == NO_FILE {
            problems.push(
                "no configuration: there is no devgate.toml here and neither --config nor \
                 DEVGATE_CONFIG names one (README \"Setup with real Buddy and Bitbucket accounts\" \
                 shows one; `devgate sandbox` needs none)"
                    .into(),
            );
        } else if self.providers.is_empty() {
            problems.push(format!(
                "no provider is configured: add [providers.buddy] or [providers.bitbucket] to {}",
                self.origin
            ));
        }
        for (id, p) in &self.providers {
            let Some(provider) = catalog.provider(id) else {
                let known: Vec<&str> = catalog
                    .providers
                    .iter()
                    .map(|p| p.spec.id.as_str())
                    .collect();
                problems.push(format!(
                    "providers.{id}: unknown provider (known: {})",
                    known.join(", ")
                ));
                continue;
            };
            if let Some(base) = &p.api_base {
                match url::Url::parse(base) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                    _ => problems.push(format!(
                        "providers.{id}.api_base `{base}` is not an http(s) URL"
                    )),
                }
            }
            for scope in p.scopes.iter().flatten() {
                if !provider.knows_scope(scope) && provider.retired_scope(scope).is_none() {
                    problems.push(format!("providers.{id}.scopes: unknown scope `{scope}`"));
                }
            }
            match (&p.token, &p.email, &p.api_token, &p.client_id, &p.client_secret) {
                (Some(_), None, None, None, _) | (None, Some(_), Some(_), None, _) => {}
                // Without public_url, `devgate http` uses its listen address; stdio needs it set.
                (None, None, None, Some(_), Some(_)) => {}
                (None, None, None, Some(_), None) => problems.push(format!(
                    "providers.{id}: client_id needs client_secret = \"${{{}_CLIENT_SECRET}}\"",
                    id.to_ascii_uppercase()
                )),
                (None, None, None, None, _) => problems.push(format!(
                    "providers.{id}: no credentials: set client_id + client_secret (users connect their own accounts), or token = \"${{{}_TOKEN}}\"{}",
                    id.to_ascii_uppercase(),
                    if id == "bitbucket" { " (or email + api_token)" } else { "" }
                )),
                (None, Some(_), None, ..) | (None, None, Some(_), ..) => {
                    problems.push(format!("providers.{id}: email and api_token go together"))
                }
                _ => problems.push(format!(
                    "providers.{id}: set one kind of credentials: client_id + client_secret, token, or email + api_token"
                )),
            }
            for (name, value) in [
                ("authorize_url", &p.authorize_url),
                ("token_url", &p.token_url),
                ("revoke_url", &p.revoke_url),
            ] {
                if let Some(v) = value
                    && !matches!(url::Url::parse(v), Ok(u) if matches!(u.scheme(), "http" | "https"))
                {
                    problems.push(format!("providers.{id}.{name} `{v}` is not an http(s) URL"));
                }
            }
        }
        let store = &self.store.url;
        if !(store.starts_with("sqlite:")
            || store.starts_with("postgres://")
            || store.starts_with("postgresql://"))
        {
            problems.push("store.url must start with sqlite:// or postgres://".to_string());
        }
        match (self.http.auth, &self.http.jwt) {
            (HttpAuth::Jwt, None) => problems
                .push("http.auth = \"jwt\" needs [http.jwt] issuer, audience and jwks_url".into()),
            (HttpAuth::Jwt, Some(j)) if url::Url::parse(&j.jwks_url).is_err() => {
                problems.push(format!("http.jwt.jwks_url `{}` is not a URL", j.jwks_url))
            }
            _ => {}
        }
        if let Some(login) = &self.login {
            problems.extend(login.problems());
        }
        if let Some(j) = &self.http.jwt {
            const ASYMMETRIC: [&str; 9] = [
                "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
            ];
            for alg in j
                .algorithms
                .iter()
                .filter(|a| !ASYMMETRIC.contains(&a.as_str()))
            {
                problems.push(format!(
                    "http.jwt.algorithms: `{alg}` is not one of {}",
                    ASYMMETRIC.join(", ")
                ));
            }
        }
        if self.http.auth == HttpAuth::OAuth {
            problems.extend(self.auth_server.problems());
            if !self.providers.values().any(ProviderConfig::uses_oauth) {
                problems.push(
                    "http.auth = \"oauth\": users sign in with a provider account, so configure a provider with client_id and client_secret".into(),
                );
            }
        }
        problems
    }
}

/// An environment override's value: a TOML literal when it parses as one, else a plain string.
fn env_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

fn set_path(table: &mut toml::Table, keys: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = keys.split_last().ok_or("empty setting name")?;
    let mut current = table;
    for key in parents {
        let entry = current
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry
            .as_table_mut()
            .ok_or_else(|| format!("`{key}` is not a section"))?;
    }
    current.insert(last.clone(), value);
    Ok(())
}

fn literal_secrets(table: &toml::Table, prefix: &str, warnings: &mut Vec<String>) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(t) => literal_secrets(t, &path, warnings),
            // `sim-…` tokens belong to the simulated providers of `devgate sandbox` and are public.
            toml::Value::String(s)
                if SECRET_KEYS.contains(&key.as_str()) && !s.contains("${") && !s.starts_with("sim-") =>
            {
                warnings.push(
                format!("{path} is written literally in the config file; use ${{ENV_NAME}} and keep the secret in the environment"
                ))
            }
            _ => {}
        }
    }
}

fn interpolate_table(
    table: &mut toml::Table,
    prefix: &str,
    env: &BTreeMap<String, String>,
    problems: &mut Vec<ConfigError>,
) {
    for (key, value) in table.iter_mut() {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        interpolate_value(value, &path, env, problems);
    }
}

fn interpolate_value(
    value: &mut toml::Value,
    path: &str,
    env: &BTreeMap<String, String>,
    problems: &mut Vec<ConfigError>,
) {
    match value {
        toml::Value::String(s) => *s = interpolate(s, path, env, problems),
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_value(item, &format!("{path}[{i}]"), env, problems);
            }
        }
        toml::Value::Table(t) => interpolate_table(t, path, env, problems),
        _ => {}
    }
}

/// Replaces every `${NAME}` with the environment variable's value; an unset one reads as empty and
/// is added to `problems`.
fn interpolate(
    text: &str,
    setting: &str,
    env: &BTreeMap<String, String>,
    problems: &mut Vec<ConfigError>,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            problems.push(ConfigError::Invalid(format!(
                "{setting}: unclosed `${{` in value"
            )));
            return text.to_string();
        };
        let name = &rest[start + 2..start + end];
        match env.get(name) {
            Some(value) => out.push_str(value),
            None => problems.push(ConfigError::MissingEnv {
                setting: setting.to_string(),
                name: name.to_string(),
            }),
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

/// The first problem of a lenient load, or its config.
fn first_problem(
    (config, problems): (Option<Config>, Vec<ConfigError>),
) -> Result<Config, ConfigError> {
    match (config, problems.into_iter().next()) {
        (_, Some(problem)) => Err(problem),
        (Some(config), None) => Ok(config),
        (None, None) => Err(ConfigError::Invalid(
            "the configuration cannot be read".into(),
        )),
    }
}

/// The key a deserialization error is about: the path toml prints as "in `a.b`", plus the key an
/// "unknown field" message names.
fn error_key(message: &str, shown: &str) -> Option<Vec<String>> {
    let mut path: Vec<String> = shown
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("in `")?.strip_suffix('`'))
        .map(|p| p.split('.').map(str::to_string).collect())
        .unwrap_or_default();
    if let Some(rest) = message.strip_prefix("unknown field `") {
        path.push(rest.split('`').next()?.to_string());
    }
    (!path.is_empty()).then_some(path)
}

/// Removes a key by its path; false when there is none.
fn remove_path(table: &mut toml::Table, path: &[String]) -> bool {
    match path {
        [] => false,
        [last] => table.remove(last).is_some(),
        [first, rest @ ..] => table
            .get_mut(first)
            .and_then(toml::Value::as_table_mut)
            .is_some_and(|t| remove_path(t, rest)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn env_references_and_overrides_apply() {
        let text = r#"
            [providers.buddy]
            token = "${BUDDY_TOKEN}"
            workspace = "acme"
        "#;
        let c = Config::from_toml(
            text,
            "t.toml",
            env(&[
                ("BUDDY_TOKEN", "tok-123"),
                ("DEVGATE_TOOLS__READ_ONLY", "true"),
                ("DEVGATE_TOOLS__TOOLSETS", r#"["pipelines"]"#),
                ("DEVGATE_PROVIDERS__BUDDY__API_BASE", "http://127.0.0.1:9/x"),
                ("DEVGATE_CONFIG", "ignored.toml"),
                ("DEVGATE_REQUIRE_BROWSER", "1"),
            ]),
        )
        .unwrap();
        let buddy = &c.providers["buddy"];
        assert_eq!(buddy.token.as_ref().unwrap().expose(), "tok-123");
        assert_eq!(buddy.api_base.as_deref(), Some("http://127.0.0.1:9/x"));
        assert!(c.tools.read_only);
        assert_eq!(c.tools.toolsets, ["pipelines"]);
        assert!(c.warnings.is_empty());
        assert_eq!(format!("{buddy:?}").matches("tok-123").count(), 0);
    }

    #[test]
    fn missing_env_and_unknown_keys_name_the_setting() {
        let err = Config::from_toml("[providers.buddy]\ntoken = \"${NOPE}\"", "t.toml", env(&[]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "providers.buddy.token: environment variable NOPE is not set"
        );
        let err = Config::from_toml("[tools]\nread_onyl = true", "t.toml", env(&[])).unwrap_err();
        assert!(err.to_string().contains("read_onyl"), "{err}");
    }

    #[test]
    fn every_problem_is_listed_and_the_rest_still_loads() {
        let text = r#"
            [tools]
            read_onyl = true
            text_cap_bytes = "big"
            toolsets = ["pipelines"]
            [providers.buddy]
            client_id = "${NO_ID}"
            client_secret = "${NO_SECRET}"
            colour = "blue"
        "#;
        let (config, problems) = Config::from_toml_all(text, "t.toml", env(&[]));
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        for expected in [
            "providers.buddy.client_id: environment variable NO_ID is not set",
            "providers.buddy.client_secret: environment variable NO_SECRET is not set",
            "unknown field `read_onyl`",
            "unknown field `colour`",
            "in `tools.text_cap_bytes`",
        ] {
            assert!(
                shown.iter().any(|p| p.contains(expected)),
                "{expected} in {shown:?}"
            );
        }
        assert_eq!(shown.len(), 5, "{shown:?}");
        assert!(problems[1].is_missing_secret() && !problems[0].is_missing_secret());
        let config = config.expect("the rest loads");
        assert_eq!(config.tools.toolsets, ["pipelines"]);
        assert!(config.providers["buddy"].uses_oauth());
    }

    #[test]
    fn literal_secrets_are_warned_about() {
        let c =
            Config::from_toml("[providers.buddy]\ntoken = \"abc\"", "t.toml", env(&[])).unwrap();
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].contains("providers.buddy.token") && !c.warnings[0].contains("abc"));
    }
}
