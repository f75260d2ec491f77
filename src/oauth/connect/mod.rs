//! The connect flow (design §5): a ticket in a link → the connect page → the provider's consent →
//! `/integration-callback` → a stored connection.
//!
//! - A **ticket** is random, single-use and lives 10 minutes; it binds the link to one devgate user
//!   and provider. The page it opens names both and asks for one click (a POST).
//! - The click uses the ticket up and creates a fresh **state** (random, single-use, 10 minutes,
//!   bound to user, provider, PKCE verifier and requested scopes) before redirecting to the provider.
//!   It also gives that browser a random **flow cookie** ([`FlowCookie`]), whose hash is kept with the
//!   state: neither PKCE (devgate holds the verifier) nor the state (it is in the authorize URL) tells
//!   whose browser comes back, and without the cookie anyone handed the authorize URL could attach
//!   their provider account to the user who clicked.
//! - The callback uses the state up, refuses a browser without the matching flow cookie (before any
//!   code exchange), exchanges the code, asks the provider who the account is, seals and stores the
//!   tokens. A replayed, expired or unknown state is refused with a readable page.
//!
//! Only hashes of tickets, states and flow cookies are stored; the PKCE verifier is sealed.
//!
//! Asking again for a link reuses the live one ([`Connector::link`]), so an agent that calls in a loop
//! does not mint a ticket per call; and an agent whose client said "opened" can wait, bounded, for the
//! connection to appear ([`Connector::wait_for_connection`]): woken in-process by the callback, with
//! the store polled for callbacks another instance completes.

mod flow;
mod links;
mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::oauth::client::TokenHint;
use crate::oauth::tokens::{TokenError, TokenManager};
use crate::oauth::{OAuthClient, OAuthError};
use crate::provider::{ProviderClient, UpstreamError};
use crate::shape::pointer;
use crate::vault::{
    ConnectionRow, ConnectionStatus, StateRow, StoreError, TicketRow, Vault, digest, now,
};

/// How long a connect link and an authorization in progress stay usable.
pub const TTL_SECS: i64 = 600;

/// The user a sign-in's state is kept under until the provider says who the account is (devgate users
/// named `<provider>:…` are provider accounts, so no user can be called this).
pub const SIGN_IN_USER: &str = "devgate:sign-in";

/// A live link is handed out again only while it has this long left, so the user still has time to use
/// it; past that, asking mints a new one.
const REUSE_MIN_SECS: i64 = 120;

/// Live links remembered for reuse; past this many (an instance serving that many users connecting at
/// once) the memory starts over, which only costs fresh tickets.
const LIVE_LINKS_MAX: usize = 10_000;

/// How often a wait for a connection reads the store, for callbacks completed by another instance.
const WAIT_POLL: Duration = Duration::from_secs(1);

/// How long `devgate_connections` gives each provider to answer the check of a connection.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Told when a connection completes, so an agent waiting on an elicitation can be notified.
pub trait CompletionSink: Send + Sync {
    fn completed(&self, elicitation_id: &str);
}

/// A page-level failure: what the browser is shown.
#[derive(Debug, Clone)]
pub struct PageError {
    pub status: StatusCode,
    pub title: String,
    pub message: String,
    /// The (user, provider) whose valid flow this failure ended, when the callback got that far: the
    /// browser is then sent to the result page, so no code, state or `error` stays in its address bar.
    pub ended: Option<(String, String)>,
}

impl PageError {
    pub fn new(status: StatusCode, title: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            title: title.to_string(),
            message: message.into(),
            ended: None,
        }
    }

    fn ended(mut self, user: &str, provider: &str) -> Self {
        self.ended = Some((user.to_string(), provider.to_string()));
        self
    }

    fn store(e: StoreError) -> Self {
        tracing::error!(error = %e, "the store failed during a connect flow");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again in a moment",
            "devgate could not reach its database. Nothing was connected; reload this page in a moment.",
        )
    }
}

/// A new connect link for an agent to show.
#[derive(Debug, Clone)]
pub struct ConnectLink {
    pub url: String,
    pub elicitation_id: String,
}

/// What `/integration-callback` receives.
#[derive(Debug, Default, Deserialize)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// A completed connection, for the success page.
#[derive(Debug, Clone)]
pub struct Connected {
    pub user: String,
    pub provider: String,
    pub provider_title: String,
    pub account: String,
    /// The flow was a sign-in ([`Connector::begin_sign_in`]): `user` is the provider account.
    pub signed_in: bool,
}

/// The cookie that ties an authorization to the browser that clicked Connect.
///
/// Its name is derived from the `state`, so that several flows in one browser (Buddy and Bitbucket in
/// two tabs, or the same provider twice) each keep their own cookie, and the callback finds the one
/// that belongs to the `state` it got. The value is random; only its SHA-256 is stored.
#[derive(Clone)]
pub struct FlowCookie {
    pub name: String,
    pub value: String,
}

impl std::fmt::Debug for FlowCookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowCookie")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl FlowCookie {
    /// The cookie name for the flow of this `state`: a prefix of the state's hash (which says nothing
    /// the authorize URL does not already carry).
    pub fn name_for(state: &str) -> String {
        format!("devgate_flow_{}", &digest(state)[..16])
    }
}

/// Where the Connect click sends the browser, and the cookie it must keep until the callback.
#[derive(Debug, Clone)]
pub struct Begun {
    pub authorize_url: Url,
    pub cookie: FlowCookie,
}

/// A provider's connection state for one user (`devgate status`, `devgate_connections`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProviderStatus {
    pub provider: String,
    /// `connected`, `broken`, `not_connected` or `static_token`.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Unix seconds; absent when the token does not expire.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The link that connects or reconnects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_url: Option<String>,
    /// For a stored connection, when checked: `true` when the provider just accepted its token; `false`
    /// when the provider could not be asked (`detail` says why), so the connection may still be fine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
}

/// Where a connection stood at one moment: a completed connect saves it anew (a new version).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionMark {
    version: i64,
    updated_at: i64,
}

/// A link handed out and not yet used, remembered (in memory only) so that asking again reuses it.
#[derive(Clone)]
struct LiveLink {
    link: ConnectLink,
    ticket_hash: String,
    expires_at: i64,
}

/// One OAuth provider as the connect flow sees it.
pub struct ConnectProvider {
    pub client: Arc<OAuthClient>,
    /// For reading the connected account with the new token (`whoami`).
    pub api: Arc<ProviderClient>,
    /// The scopes to ask for.
    pub scopes: Vec<String>,
}

/// Runs connect flows.
pub struct Connector {
    vault: Arc<Vault>,
    providers: HashMap<String, ConnectProvider>,
    public_url: String,
    sink: Option<Arc<dyn CompletionSink>>,
    /// Live links by (user, provider).
    live: Mutex<HashMap<(String, String), LiveLink>>,
    /// Woken whenever this process completes a connection.
    completed: tokio::sync::Notify,
    /// How long a call whose client said the link is open waits for the connection.
    connect_wait: Duration,
}

fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

impl Connector {
    pub fn new(
        vault: Arc<Vault>,
        providers: HashMap<String, ConnectProvider>,
        public_url: &str,
    ) -> Self {
        Self {
            vault,
            providers,
            public_url: public_url.trim_end_matches('/').to_string(),
            sink: None,
            live: Mutex::default(),
            completed: tokio::sync::Notify::new(),
            connect_wait: Duration::from_secs(crate::config::DEFAULT_CONNECT_WAIT_SECS),
        }
    }

    pub fn with_connect_wait(mut self, wait: Duration) -> Self {
        self.connect_wait = wait;
        self
    }

    /// How long a call waits for a connect its client said the user is doing (`oauth.connect_wait_secs`).
    pub fn connect_wait(&self) -> Duration {
        self.connect_wait
    }

    pub fn with_sink(mut self, sink: Arc<dyn CompletionSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    pub fn vault(&self) -> &Arc<Vault> {
        &self.vault
    }

    pub fn handles(&self, provider: &str) -> bool {
        self.providers.contains_key(provider)
    }

    pub fn provider_ids(&self) -> impl Iterator<Item = &String> {
        self.providers.keys()
    }

    fn provider(&self, id: &str) -> Result<&ConnectProvider, PageError> {
        self.providers.get(id).ok_or_else(|| {
            PageError::new(
                StatusCode::NOT_FOUND,
                "Unknown provider",
                format!("devgate has no OAuth connection for `{id}`. Check the link your agent gave you."),
            )
        })
    }

    pub fn title(&self, provider: &str) -> String {
        self.providers
            .get(provider)
            .map(|p| p.api.title().to_string())
            .unwrap_or_else(|| provider.to_string())
    }

    /// The scopes `provider`'s links ask for, each with its plain-language description from the catalog
    /// (empty when the catalog has none).
    pub fn describe_scopes(&self, provider: &str, scopes: &str) -> Vec<(String, String)> {
        let catalog = self.providers.get(provider).map(|p| &p.api.catalog);
        scopes
            .split_whitespace()
            .map(|name| {
                let description = catalog
                    .and_then(|c| c.scope_description(name))
                    .unwrap_or_default()
                    .to_string();
                (name.to_string(), description)
            })
            .collect()
    }

    /// Whether the provider's consent asks for the scopes devgate names (Buddy), or grants what its
    /// OAuth app was set up with whatever devgate asks (Bitbucket).
    pub fn sends_scopes(&self, provider: &str) -> bool {
        self.providers
            .get(provider)
            .is_none_or(|p| p.api.catalog.spec.send_scope)
    }
}

/// A value at a JSON pointer-like path, as text.
fn string_at(value: &Value, path: &str) -> Option<String> {
    match pointer(value, path)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// Provider-supplied text on a page: one line, bounded.
fn short(text: &str) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}
