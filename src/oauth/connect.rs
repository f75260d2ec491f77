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

    /// A connect link for `user`: the live one this process handed out for the same user and provider
    /// while it is unused and has at least `REUSE_MIN_SECS` left, else a fresh one. Reuse is safe: the
    /// link is bound to that same user and provider, and works once whoever asked for it.
    pub async fn link(&self, user: &str, provider: &str) -> Result<ConnectLink, StoreError> {
        let key = (user.to_string(), provider.to_string());
        let t = now();
        let live = {
            let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            live.get(&key)
                .filter(|l| l.expires_at - t >= REUSE_MIN_SECS)
                .map(|l| (l.link.clone(), l.ticket_hash.clone()))
        };
        if let Some((link, hash)) = live
            && self.vault.store.ticket(&hash, t).await?.is_some()
        {
            return Ok(link);
        }
        let link = self.fresh_link(user, provider).await?;
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|_, l| l.expires_at - t >= REUSE_MIN_SECS);
        if live.len() >= LIVE_LINKS_MAX {
            live.clear();
        }
        live.insert(key, link.clone());
        Ok(link.link)
    }

    /// A new ticket and its link.
    async fn fresh_link(&self, user: &str, provider: &str) -> Result<LiveLink, StoreError> {
        let scopes = self
            .providers
            .get(provider)
            .map(|p| p.scopes.join(" "))
            .unwrap_or_default();
        let ticket = random_token();
        let elicitation_id = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
        let row = TicketRow {
            ticket_hash: digest(&ticket),
            user: user.to_string(),
            provider: provider.to_string(),
            scopes,
            elicitation_id: Some(elicitation_id.clone()),
            expires_at: now() + TTL_SECS,
        };
        self.vault.store.put_ticket(&row).await?;
        Ok(LiveLink {
            link: ConnectLink {
                url: format!("{}/connect/{provider}?ticket={ticket}", self.public_url),
                elicitation_id,
            },
            ticket_hash: row.ticket_hash,
            expires_at: row.expires_at,
        })
    }

    /// Where the connection of (user, provider) stands now (`None`: there is none).
    pub async fn mark(
        &self,
        user: &str,
        provider: &str,
    ) -> Result<Option<ConnectionMark>, StoreError> {
        Ok(self
            .vault
            .store
            .connection(user, provider)
            .await?
            .map(|row| ConnectionMark {
                version: row.version,
                updated_at: row.updated_at,
            }))
    }

    /// Waits at most `timeout` for (user, provider) to have an active connection other than `before`
    /// (a connect completed meanwhile). Returns whether one appeared. A callback this process completes
    /// wakes the wait at once; one completed by another instance sharing the store is seen within
    /// `WAIT_POLL`.
    pub async fn wait_for_connection(
        &self,
        user: &str,
        provider: &str,
        before: Option<ConnectionMark>,
        timeout: Duration,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before reading, so a completion between the read and the wait still wakes it.
            let woken = self.completed.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            match self.vault.store.connection(user, provider).await {
                Ok(Some(row))
                    if row.status == ConnectionStatus::Active
                        && before
                            != Some(ConnectionMark {
                                version: row.version,
                                updated_at: row.updated_at,
                            }) =>
                {
                    return true;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the store while waiting for a connect")
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return false;
            }
            let next = (now + WAIT_POLL).min(deadline);
            tokio::select! {
                () = &mut woken => {}
                () = tokio::time::sleep_until(next) => {}
            }
        }
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

    fn used_link(&self, provider: &str) -> PageError {
        let title = self.title(provider);
        PageError::new(
            StatusCode::GONE,
            "This link was already used",
            format!(
                "Each connect link works once, and this one has been opened and used. If you have just connected {title}, you are done: go back to your agent. \
Otherwise ask your agent again for a new link, or run `devgate connect {provider}` in a terminal."
            ),
        )
    }

    /// Why a ticket cannot be used: it was used, or it expired (or never existed).
    async fn unusable(&self, provider: &str, ticket: &str) -> PageError {
        match self.vault.store.ticket_used(&digest(ticket)).await {
            Ok(true) => self.used_link(provider),
            Ok(false) => self.expired_link(provider),
            Err(e) => PageError::store(e),
        }
    }

    /// The ticket behind a connect page, without using it up.
    pub async fn ticket(&self, provider: &str, ticket: &str) -> Result<TicketRow, PageError> {
        self.provider(provider)?;
        if ticket.is_empty() {
            let title = self.title(provider);
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                &format!("Connect {title} from your agent or a terminal"),
                format!(
                    "This page works with the link your agent gives you when a tool needs {title}, and this address has none. \
Ask your agent to use a {title} tool (or its devgate_connections tool) and open the link it shows, \
or run `devgate connect {provider}` in a terminal on the machine devgate runs on."
                ),
            ));
        }
        let found = self
            .vault
            .store
            .ticket(&digest(ticket), now())
            .await
            .map_err(PageError::store)?
            .filter(|t| t.provider == provider);
        match found {
            Some(row) => Ok(row),
            None => Err(self.unusable(provider, ticket).await),
        }
    }

    /// The click on Connect: uses the ticket up and returns the provider's authorize URL and the flow
    /// cookie to give the browser.
    pub async fn begin(&self, provider: &str, ticket: &str) -> Result<Begun, PageError> {
        let p = self.provider(provider)?;
        let taken = self
            .vault
            .store
            .take_ticket(&digest(ticket), now())
            .await
            .map_err(PageError::store)?
            .filter(|t| t.provider == provider);
        let Some(row) = taken else {
            return Err(self.unusable(provider, ticket).await);
        };
        {
            let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            let key = (row.user.clone(), row.provider.clone());
            if live
                .get(&key)
                .is_some_and(|l| l.ticket_hash == row.ticket_hash)
            {
                live.remove(&key);
            }
        }
        tracing::info!(user = %row.user, provider, "sending a user to the provider to connect");
        self.start_flow(p, &row.user, provider, row.scopes, row.elicitation_id)
            .await
    }

    /// A fresh state (bound to `user`, the PKCE verifier, `scopes` and a new flow cookie) and the
    /// provider's authorize URL.
    async fn start_flow(
        &self,
        p: &ConnectProvider,
        user: &str,
        provider: &str,
        scopes: String,
        elicitation_id: Option<String>,
    ) -> Result<Begun, PageError> {
        let asked: Vec<String> = scopes.split_whitespace().map(str::to_string).collect();
        let authorization = p.client.authorize(&asked);
        let cookie = FlowCookie {
            name: FlowCookie::name_for(&authorization.state),
            value: random_token(),
        };
        self.vault
            .store
            .put_state(&StateRow {
                state_hash: digest(&authorization.state),
                user: user.to_string(),
                provider: provider.to_string(),
                pkce_verifier: self
                    .vault
                    .seal(user, provider, &authorization.pkce_verifier),
                scopes,
                elicitation_id,
                browser_hash: digest(&cookie.value),
                expires_at: now() + TTL_SECS,
            })
            .await
            .map_err(PageError::store)?;
        Ok(Begun {
            authorize_url: authorization.url,
            cookie,
        })
    }

    /// Starts a sign-in with a provider account (the authorization server's `/login`): the same flow as
    /// a connect, without a ticket; the callback makes the account the user (`<provider>:<account id>`)
    /// and stores its connection under that user.
    pub async fn begin_sign_in(&self, provider: &str) -> Result<Begun, PageError> {
        let p = self.provider(provider)?;
        tracing::info!(provider, "sending a browser to the provider to sign in");
        self.start_flow(p, SIGN_IN_USER, provider, p.scopes.join(" "), None)
            .await
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
            return Err(PageError::new(StatusCode::BAD_REQUEST, &heading, message)
                .ended(&row.user, &row.provider));
        }
        let code = params.code.as_deref().filter(|c| !c.is_empty()).ok_or_else(|| {
            PageError::new(
                StatusCode::BAD_REQUEST,
                "No authorization code",
                format!("{title} sent you back without a code, so nothing was connected. Go back to your agent and try again."),
            )
            .ended(&row.user, &row.provider)
        })?;
        let verifier = self
            .vault
            .open(&row.user, &row.provider, &row.pkce_verifier)
            .map_err(PageError::store)?;
        let ended = |e: PageError| e.ended(&row.user, &row.provider);
        let tokens = p.client.exchange(code, &verifier).await.map_err(|e| ended(match e {
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
        }))?;
        let who = p
            .api
            .whoami(tokens.access_token.expose())
            .await
            .map_err(|e| {
                ended(PageError::new(
                    StatusCode::BAD_GATEWAY,
                    &format!("{title} did not say who you are"),
                    format!("devgate got a token but could not read your {title} account ({e}). Nothing was connected; try again."),
                ))
            })?;
        let spec = &p.api.catalog.spec.whoami;
        let account = string_at(&who, &spec.account).unwrap_or_else(|| "your account".into());
        let account_id = string_at(&who, &spec.id).unwrap_or_default();
        let signed_in = row.user == SIGN_IN_USER;
        if signed_in && account_id.is_empty() {
            return Err(ended(PageError::new(
                StatusCode::BAD_GATEWAY,
                &format!("{title} did not say who you are"),
                format!(
                    "{title} answered without an account id, so devgate cannot sign you in. Try again."
                ),
            )));
        }
        // A sign-in makes the provider account the devgate user.
        let user = if signed_in {
            format!("{}:{account_id}", row.provider)
        } else {
            row.user.clone()
        };
        let scopes = tokens
            .scopes
            .as_ref()
            .map(|s| s.join(" "))
            .unwrap_or(row.scopes.clone());
        let connection = ConnectionRow {
            user: user.clone(),
            provider: row.provider.clone(),
            access_token: self
                .vault
                .seal(&user, &row.provider, tokens.access_token.expose()),
            refresh_token: tokens
                .refresh_token
                .as_ref()
                .map(|t| self.vault.seal(&user, &row.provider, t.expose())),
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
        tracing::info!(user = %user, provider = %row.provider, signed_in, "connected");
        self.completed.notify_waiters();
        if let (Some(sink), Some(id)) = (&self.sink, &row.elicitation_id) {
            sink.completed(id);
        }
        Ok(Connected {
            user,
            provider: row.provider,
            provider_title: title,
            account,
            signed_in,
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
                    verified: None,
                },
                None => ProviderStatus {
                    provider: id.clone(),
                    state: "not_connected".into(),
                    account: None,
                    scopes: Vec::new(),
                    expires_at: None,
                    detail: None,
                    connect_url,
                    verified: None,
                },
            });
        }
        Ok(out)
    }

    /// [`Connector::statuses`] with links, each stored connection checked with its provider: the
    /// token (refreshed if due) must open the account (`whoami`). All providers are asked at once, each
    /// within [`CHECK_TIMEOUT`], so one call tells every connection that needs renewing, not only the
    /// one a tool happened to hit.
    pub async fn checked_statuses(
        &self,
        user: &str,
        tokens: &TokenManager,
    ) -> Result<Vec<ProviderStatus>, StoreError> {
        let statuses = self.statuses(user, false).await?;
        let checks = statuses.into_iter().map(|status| async move {
            if status.state != "connected" {
                return self.with_link(user, status).await;
            }
            let outcome =
                tokio::time::timeout(CHECK_TIMEOUT, self.check(user, &status.provider, tokens))
                    .await
                    .unwrap_or_else(|_| {
                        Check::Unknown(format!(
                            "{} did not answer within {} s",
                            self.title(&status.provider),
                            CHECK_TIMEOUT.as_secs()
                        ))
                    });
            let status = match outcome {
                Check::Good => ProviderStatus {
                    verified: Some(true),
                    ..status
                },
                Check::Unknown(why) => ProviderStatus {
                    verified: Some(false),
                    detail: Some(format!("not checked: {why}; it may still work")),
                    ..status
                },
                Check::Dead(why) => ProviderStatus {
                    state: "broken".into(),
                    detail: Some(why),
                    ..status
                },
                Check::Gone => ProviderStatus {
                    state: "not_connected".into(),
                    account: None,
                    scopes: Vec::new(),
                    expires_at: None,
                    detail: None,
                    ..status
                },
            };
            self.with_link(user, status).await
        });
        futures::future::join_all(checks)
            .await
            .into_iter()
            .collect()
    }

    /// Adds the connect link to a status that needs one.
    async fn with_link(
        &self,
        user: &str,
        mut status: ProviderStatus,
    ) -> Result<ProviderStatus, StoreError> {
        if matches!(status.state.as_str(), "broken" | "not_connected") {
            status.connect_url = Some(self.link(user, &status.provider).await?.url);
        }
        Ok(status)
    }

    /// Asks the provider who the stored token belongs to; after a 401, refreshes once and asks again.
    async fn check(&self, user: &str, provider: &str, tokens: &TokenManager) -> Check {
        let Some(p) = self.providers.get(provider) else {
            return Check::Unknown("no such provider".into());
        };
        let title = p.api.title();
        let mut access = match tokens.token(user, provider).await {
            Ok(access) => access,
            Err(e) => return Check::from_token(e),
        };
        for attempt in 0..2 {
            match p.api.whoami(access.token.expose()).await {
                // A 403 still means the token was accepted (it may lack the account scope).
                Ok(_) | Err(UpstreamError::Status { status: 403, .. }) => return Check::Good,
                Err(UpstreamError::Status { status: 401, .. }) if attempt == 0 => {
                    access = match tokens.renew_rejected(user, provider, access.version).await {
                        Ok(access) => access,
                        Err(e) => return Check::from_token(e),
                    };
                }
                Err(UpstreamError::Status { status: 401, .. }) => {
                    return Check::Dead(format!(
                        "{title} refuses the stored token, also after renewing it"
                    ));
                }
                Err(e) => return Check::Unknown(format!("{title}: {e}")),
            }
        }
        Check::Unknown(format!("{title} gave no answer"))
    }
}

/// What checking a connection with its provider came to.
enum Check {
    Good,
    /// The provider could not be asked (timeout, 5xx, token endpoint down): the connection is kept.
    Unknown(String),
    /// The grant is dead: the user has to connect again.
    Dead(String),
    /// The connection was removed meanwhile.
    Gone,
}

impl Check {
    fn from_token(e: TokenError) -> Self {
        match e {
            TokenError::NotConnected => Check::Gone,
            TokenError::Broken(detail) => Check::Dead(detail),
            TokenError::Unavailable(detail) => Check::Unknown(detail),
            TokenError::Store(e) => Check::Unknown(e.to_string()),
        }
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
