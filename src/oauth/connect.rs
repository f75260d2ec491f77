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

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::oauth::client::TokenHint;
use crate::oauth::{OAuthClient, OAuthError};
use crate::provider::ProviderClient;
use crate::shape::pointer;
use crate::vault::{
    ConnectionRow, ConnectionStatus, StateRow, StoreError, TicketRow, Vault, digest, now,
};

/// How long a connect link and an authorization in progress stay usable.
pub const TTL_SECS: i64 = 600;

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
}

impl PageError {
    fn new(status: StatusCode, title: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            title: title.to_string(),
            message: message.into(),
        }
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
        }
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

    /// A fresh connect link for `user`.
    pub async fn link(&self, user: &str, provider: &str) -> Result<ConnectLink, StoreError> {
        let scopes = self
            .providers
            .get(provider)
            .map(|p| p.scopes.join(" "))
            .unwrap_or_default();
        let ticket = random_token();
        let elicitation_id = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
        self.vault
            .store
            .put_ticket(&TicketRow {
                ticket_hash: digest(&ticket),
                user: user.to_string(),
                provider: provider.to_string(),
                scopes,
                elicitation_id: Some(elicitation_id.clone()),
                expires_at: now() + TTL_SECS,
            })
            .await?;
        Ok(ConnectLink {
            url: format!("{}/connect/{provider}?ticket={ticket}", self.public_url),
            elicitation_id,
        })
    }

    fn expired_link(&self, provider: &str) -> PageError {
        PageError::new(
            StatusCode::GONE,
            "This link has expired",
            format!(
                "Connect links work once and for 10 minutes. Go back to your agent and ask again: it will give you a new link to connect {}.",
                self.title(provider)
            ),
        )
    }

    /// The ticket behind a connect page, without using it up.
    pub async fn ticket(&self, provider: &str, ticket: &str) -> Result<TicketRow, PageError> {
        self.provider(provider)?;
        let row = self
            .vault
            .store
            .ticket(&digest(ticket), now())
            .await
            .map_err(PageError::store)?
            .filter(|t| t.provider == provider)
            .ok_or_else(|| self.expired_link(provider))?;
        Ok(row)
    }

    /// The click on Connect: uses the ticket up and returns the provider's authorize URL and the flow
    /// cookie to give the browser.
    pub async fn begin(&self, provider: &str, ticket: &str) -> Result<Begun, PageError> {
        let p = self.provider(provider)?;
        let row = self
            .vault
            .store
            .take_ticket(&digest(ticket), now())
            .await
            .map_err(PageError::store)?
            .filter(|t| t.provider == provider)
            .ok_or_else(|| self.expired_link(provider))?;
        let scopes: Vec<String> = row.scopes.split_whitespace().map(str::to_string).collect();
        let authorization = p.client.authorize(&scopes);
        let cookie = FlowCookie {
            name: FlowCookie::name_for(&authorization.state),
            value: random_token(),
        };
        self.vault
            .store
            .put_state(&StateRow {
                state_hash: digest(&authorization.state),
                user: row.user.clone(),
                provider: provider.to_string(),
                pkce_verifier: self
                    .vault
                    .seal(&row.user, provider, &authorization.pkce_verifier),
                scopes: row.scopes,
                elicitation_id: row.elicitation_id,
                browser_hash: digest(&cookie.value),
                expires_at: now() + TTL_SECS,
            })
            .await
            .map_err(PageError::store)?;
        tracing::info!(user = %row.user, provider, "sending a user to the provider to connect");
        Ok(Begun {
            authorize_url: authorization.url,
            cookie,
        })
    }

    /// `/integration-callback`: checks the state and that `flow_cookie` (the value of the cookie named
    /// [`FlowCookie::name_for`] the state, as the browser sent it) is the one the Connect click set,
    /// then exchanges the code and stores the connection. The state is used up whatever happens.
    pub async fn complete(
        &self,
        params: &CallbackParams,
        flow_cookie: Option<&str>,
    ) -> Result<Connected, PageError> {
        let state = params.state.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| {
            PageError::new(
                StatusCode::BAD_REQUEST,
                "Missing state",
                "This address is where providers send you back after you approve devgate. It was opened without the `state` it needs, so nothing was connected.",
            )
        })?;
        let row = self
            .vault
            .store
            .take_state(&digest(state), now())
            .await
            .map_err(PageError::store)?
            .ok_or_else(|| {
                PageError::new(
                    StatusCode::BAD_REQUEST,
                    "This sign-in has already been used or has expired",
                    "Nothing was connected. Go back to your agent and ask again: it will give you a new link.",
                )
            })?;
        let p = self.provider(&row.provider)?;
        let title = p.api.title().to_string();
        // A plain comparison of hashes: its timing could at most tell how much of the stored hash the
        // hash of a guess matches, which does not help find the cookie.
        let same_browser = !row.browser_hash.is_empty()
            && flow_cookie.is_some_and(|c| !c.is_empty() && digest(c) == row.browser_hash);
        if !same_browser {
            tracing::warn!(
                user = %row.user,
                provider = %row.provider,
                cookie = if flow_cookie.is_some() { "wrong" } else { "missing" },
                "refused a callback from a browser that did not start this connect"
            );
            return Err(PageError::new(
                StatusCode::FORBIDDEN,
                "Finish connecting in the browser you started in",
                format!(
                    "Nothing was connected. devgate only completes a connection in the browser where the Connect button was clicked, and this browser is not that one (or its cookies were cleared). \
If you are connecting your own {title} account, go back to your agent, ask for a new link and open it in this browser. \
If someone sent you this {title} address, do not sign in for them: close this page."
                ),
            ));
        }
        if let Some(error) = &params.error {
            let (heading, message) = if error == "access_denied" {
                (
                    format!("You did not connect {title}"),
                    format!(
                        "You declined on {title}'s page, so nothing was connected. Your agent will ask again when it needs {title}."
                    ),
                )
            } else {
                (
                    format!("{title} did not connect"),
                    format!(
                        "{title} answered `{}`{}. Nothing was connected; go back to your agent and try again.",
                        short(error),
                        params
                            .error_description
                            .as_deref()
                            .map(|d| format!(": {}", short(d)))
                            .unwrap_or_default()
                    ),
                )
            };
            return Err(PageError::new(StatusCode::BAD_REQUEST, &heading, message));
        }
        let code = params.code.as_deref().filter(|c| !c.is_empty()).ok_or_else(|| {
            PageError::new(
                StatusCode::BAD_REQUEST,
                "No authorization code",
                format!("{title} sent you back without a code, so nothing was connected. Go back to your agent and try again."),
            )
        })?;
        let verifier = self
            .vault
            .open(&row.user, &row.provider, &row.pkce_verifier)
            .map_err(PageError::store)?;
        let tokens = p.client.exchange(code, &verifier).await.map_err(|e| match e {
            OAuthError::Rejected { code, .. } => PageError::new(
                StatusCode::BAD_GATEWAY,
                &format!("{title} refused the sign-in"),
                format!("{title} answered `{code}` when devgate redeemed the sign-in. Nothing was connected; go back to your agent and try again."),
            ),
            other => PageError::new(
                StatusCode::BAD_GATEWAY,
                &format!("{title} is not answering"),
                format!("{}. Nothing was connected; try again in a moment.", short(&other.to_string())),
            ),
        })?;
        let who = p
            .api
            .whoami(tokens.access_token.expose())
            .await
            .map_err(|e| {
                PageError::new(
                    StatusCode::BAD_GATEWAY,
                    &format!("{title} did not say who you are"),
                    format!("devgate got a token but could not read your {title} account ({e}). Nothing was connected; try again."),
                )
            })?;
        let spec = &p.api.catalog.spec.whoami;
        let account = string_at(&who, &spec.account).unwrap_or_else(|| "your account".into());
        let account_id = string_at(&who, &spec.id).unwrap_or_default();
        let scopes = tokens
            .scopes
            .as_ref()
            .map(|s| s.join(" "))
            .unwrap_or(row.scopes.clone());
        let connection = ConnectionRow {
            user: row.user.clone(),
            provider: row.provider.clone(),
            access_token: self
                .vault
                .seal(&row.user, &row.provider, tokens.access_token.expose()),
            refresh_token: tokens
                .refresh_token
                .as_ref()
                .map(|t| self.vault.seal(&row.user, &row.provider, t.expose())),
            expires_at: tokens.expires_in.map(|s| now() + s as i64),
            scopes,
            account: account.clone(),
            account_id,
            status: ConnectionStatus::Active,
            status_detail: None,
            version: 0,
            updated_at: now(),
        };
        self.vault
            .store
            .save_connection(&connection)
            .await
            .map_err(PageError::store)?;
        tracing::info!(user = %row.user, provider = %row.provider, "connected");
        if let (Some(sink), Some(id)) = (&self.sink, &row.elicitation_id) {
            sink.completed(id);
        }
        Ok(Connected {
            user: row.user,
            provider: row.provider,
            provider_title: title,
            account,
        })
    }

    /// Forgets a user's connection, revoking it upstream where the provider allows: the refresh token
    /// first (RFC 7009 lets a provider end the whole grant with it, and it is the long-lived one), then
    /// the access token, each with its `token_type_hint`. Returns what to tell the user.
    pub async fn disconnect(&self, user: &str, provider: &str) -> Result<String, StoreError> {
        let title = self.title(provider);
        let Some(c) = self.vault.connection(user, provider).await? else {
            return Ok(format!("{user} was not connected to {title}."));
        };
        let revoked = match self.providers.get(provider) {
            Some(p) if p.client.supports_revoke() => {
                let mut tokens = Vec::new();
                if let Some(refresh) = &c.refresh_token {
                    tokens.push(("refresh", refresh.expose(), TokenHint::Refresh));
                }
                tokens.push(("access", c.access_token.expose(), TokenHint::Access));
                let mut failed = Vec::new();
                for (what, token, hint) in &tokens {
                    if let Err(e) = p.client.revoke(token, *hint).await {
                        tracing::warn!(user, provider, token = what, error = %e, "revoking at the provider failed");
                        failed.push(format!("the {what} token: {e}"));
                    }
                }
                let names = tokens
                    .iter()
                    .map(|(what, ..)| *what)
                    .collect::<Vec<_>>()
                    .join(" and ");
                let plural = if tokens.len() > 1 { "s" } else { "" };
                if failed.is_empty() {
                    format!("and revoked the {names} token{plural} at the provider")
                } else {
                    format!(
                        "but revoking at the provider failed ({}); revoke devgate's access in your {title} settings",
                        failed.join("; ")
                    )
                }
            }
            _ => format!(
                "; {title} has no revocation API, so also remove devgate's access in your {title} account settings"
            ),
        };
        self.vault.store.delete_connection(user, provider).await?;
        Ok(format!(
            "Disconnected {user} from {title} ({}) {revoked}.",
            c.row.account
        ))
    }

    /// Each OAuth provider's state for a user, with a connect link where one is needed.
    pub async fn statuses(
        &self,
        user: &str,
        with_links: bool,
    ) -> Result<Vec<ProviderStatus>, StoreError> {
        let mut out = Vec::new();
        let mut ids: Vec<&String> = self.providers.keys().collect();
        ids.sort();
        for id in ids {
            let row = self.vault.store.connection(user, id).await?;
            let needs_link = row
                .as_ref()
                .is_none_or(|r| r.status == ConnectionStatus::Broken);
            let connect_url = if needs_link && with_links {
                Some(self.link(user, id).await?.url)
            } else {
                None
            };
            out.push(match row {
                Some(r) => ProviderStatus {
                    provider: id.clone(),
                    state: if r.status == ConnectionStatus::Broken {
                        "broken"
                    } else {
                        "connected"
                    }
                    .into(),
                    account: Some(r.account),
                    scopes: r.scopes.split_whitespace().map(str::to_string).collect(),
                    expires_at: r.expires_at,
                    detail: r.status_detail,
                    connect_url,
                },
                None => ProviderStatus {
                    provider: id.clone(),
                    state: "not_connected".into(),
                    account: None,
                    scopes: Vec::new(),
                    expires_at: None,
                    detail: None,
                    connect_url,
                },
            });
        }
        Ok(out)
    }
}

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
