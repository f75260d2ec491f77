//! Signing in to the authorization pages through the organisation's OpenID Connect provider (`[login]`):
//! the `/login` page's "Sign in with <issuer host>" button posts to `POST /login/oidc/start`, which seals
//! the [`PendingLogin`] into the browser's [`OIDC_COOKIE`] (sealed like the request in progress,
//! `HttpOnly`, ten minutes) and sends the browser to the provider; `GET /login/oidc/callback` opens that
//! cookie, lets [`OidcLogin::finish`] check `state`, exchange the code and validate the ID token, and
//! starts the session ([`super::login::start_session`]) with the provider's user and groups.
//!
//! - The `/login` page is always shown, even when the identity provider is the only way in: it names
//!   the application asking, and the button's form carries the page's CSRF value.
//! - The devgate user is the value of `login.user_claim` (default `preferred_username`, else `sub`),
//!   unprefixed, so it is the same user as `devgate keys create ada` or a policy naming `ada`. Provider
//!   accounts are `bitbucket:…`/`buddy:…`; a name that starts with a configured provider's id and a
//!   colon is refused, so the two kinds never meet.
//! - Discovery runs at start-up in the background; when it fails, devgate starts anyway and the next
//!   sign-in tries again (a provider that is down now may be up later).

use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tokio::sync::Mutex;

use super::authorize::Session;
use super::login::{LoginForm, checked_request, start_session};
use super::oidc::{CALLBACK_PATH, LoginConfig, OidcError, OidcLogin, PENDING_TTL, PendingLogin};
use super::{AuthServer, cookies};
use crate::oauth::connect::PageError;
use crate::transport::pages::{error_page, security_headers};

/// The cookie holding the sign-in in progress at the identity provider.
pub const OIDC_COOKIE: &str = "devgate_oidc";
/// Where the login page's button posts.
pub const START_PATH: &str = "/login/oidc/start";

/// The identity provider, discovered at start-up or at the first sign-in after a failed discovery.
pub struct IdpLogin {
    config: LoginConfig,
    ready: Mutex<Option<Arc<OidcLogin>>>,
}

impl IdpLogin {
    /// Starts discovery in the background (when a runtime runs); a failure is logged, not fatal.
    pub fn new(config: LoginConfig) -> Arc<Self> {
        let idp = Arc::new(Self {
            config,
            ready: Mutex::new(None),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let warm = idp.clone();
            runtime.spawn(async move {
                if let Err(e) = warm.login().await {
                    tracing::warn!(error = %e, "identity provider not ready yet; the next sign-in tries again");
                }
            });
        }
        idp
    }

    /// What the login page's button says: the issuer's host (and port).
    pub fn label(&self) -> String {
        let host = url::Url::parse(&self.config.issuer)
            .ok()
            .and_then(|u| {
                u.host_str().map(|h| match u.port() {
                    Some(p) => format!("{h}:{p}"),
                    None => h.to_string(),
                })
            })
            .unwrap_or_else(|| self.config.issuer.clone());
        format!("Sign in with {host}")
    }

    /// The discovered relying party; discovers now when not done yet.
    pub async fn login(&self) -> Result<Arc<OidcLogin>, OidcError> {
        let mut ready = self.ready.lock().await;
        if let Some(login) = ready.as_ref() {
            return Ok(login.clone());
        }
        let login = Arc::new(OidcLogin::discover(&self.config).await?);
        *ready = Some(login.clone());
        Ok(login)
    }
}

impl std::fmt::Debug for IdpLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdpLogin")
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

impl AuthServer {
    /// Signs users in through `[login]` too.
    pub fn with_login(mut self, login: Option<&LoginConfig>) -> Self {
        self.idp = login.cloned().map(IdpLogin::new);
        self
    }

    fn callback_url(&self) -> String {
        format!("{}{CALLBACK_PATH}", self.issuer)
    }
}

/// The page for a sign-in that failed at or because of the identity provider.
fn refused(e: &OidcError) -> PageError {
    let status = if e.is_retriable() {
        StatusCode::BAD_GATEWAY
    } else {
        StatusCode::FORBIDDEN
    };
    PageError::new(
        status,
        "Sign-in through your identity provider failed",
        format!("{e}. Go back to your application and connect again."),
    )
}

/// A page that also clears the sign-in cookie.
fn finish_page(server: &AuthServer, e: PageError) -> Response {
    let mut response = error_page(e);
    cookies::set(&mut response, server.secure, OIDC_COOKIE, "", 0);
    response
}

/// `POST /login/oidc/start`: off to the identity provider.
pub async fn start(
    State(server): State<Arc<AuthServer>>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    if let Err(e) = checked_request(&server, &headers, &form) {
        return error_page(e);
    }
    let Some(idp) = &server.idp else {
        return error_page(PageError::new(
            StatusCode::NOT_FOUND,
            "No identity provider is configured",
            "Go back and pick one of the buttons on the sign-in page.",
        ));
    };
    let login = match idp.login().await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "identity provider unavailable for a sign-in");
            return error_page(refused(&e));
        }
    };
    let (url, pending) = login.begin(&server.callback_url());
    let sealed = cookies::seal(
        &server.vault,
        OIDC_COOKIE,
        &pending,
        PENDING_TTL.as_secs() as i64,
    );
    let mut response = Redirect::to(url.as_str()).into_response();
    cookies::set(
        &mut response,
        server.secure,
        OIDC_COOKIE,
        &sealed,
        PENDING_TTL.as_secs() as i64,
    );
    security_headers(response.headers_mut());
    response
}

/// What the identity provider sends back.
#[derive(Deserialize)]
pub struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /login/oidc/callback`.
pub async fn callback(
    State(server): State<Arc<AuthServer>>,
    headers: HeaderMap,
    Query(params): Query<CallbackParams>,
) -> Response {
    if let Err(e) = super::authorize::pending(&server, &headers) {
        return finish_page(&server, e);
    }
    let Some(pending) = cookies::open::<PendingLogin>(&server.vault, &headers, OIDC_COOKIE) else {
        tracing::info!("identity provider callback without this browser's sign-in cookie");
        return finish_page(
            &server,
            PageError::new(
                StatusCode::FORBIDDEN,
                "This sign-in did not start in this browser",
                "devgate only accepts the identity provider's answer in the browser that started signing in (or within 10 minutes). Go back to your application and connect again.",
            ),
        );
    };
    if let Some(error) = params.error.as_deref() {
        let message = if error == "access_denied" {
            "You cancelled signing in at your identity provider, so nothing was authorized. To use devgate, go back to your application and connect again.".to_string()
        } else {
            format!(
                "Your identity provider answered `{}`, so nothing was authorized. Go back to your application and connect again; if it repeats, ask the administrator.",
                error
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .take(64)
                    .collect::<String>()
            )
        };
        return finish_page(
            &server,
            PageError::new(StatusCode::FORBIDDEN, "Signing in was cancelled", message),
        );
    }
    let (Some(code), Some(state)) = (params.code.as_deref(), params.state.as_deref()) else {
        return finish_page(
            &server,
            PageError::new(
                StatusCode::BAD_REQUEST,
                "The identity provider's answer is incomplete",
                "The answer has no code or no state. Go back to your application and connect again.",
            ),
        );
    };
    let Some(idp) = &server.idp else {
        return finish_page(
            &server,
            PageError::new(
                StatusCode::NOT_FOUND,
                "No identity provider is configured",
                "Go back to your application and connect again.",
            ),
        );
    };
    let identity = match idp.login().await {
        Ok(login) => {
            login
                .finish(&pending, state, code, &server.callback_url())
                .await
        }
        Err(e) => Err(e),
    };
    let identity = match identity {
        Ok(id) => id,
        Err(e) => return finish_page(&server, refused(&e)),
    };
    if let Some(connector) = &server.connector
        && let Some(id) = connector
            .provider_ids()
            .find(|id| identity.user.starts_with(&format!("{id}:")))
    {
        tracing::warn!(user = %identity.user, "identity provider user name looks like a provider account; refused");
        return finish_page(
            &server,
            PageError::new(
                StatusCode::FORBIDDEN,
                "This user name is reserved",
                format!(
                    "Your identity provider names you `{}`, which starts like a {id} account's devgate user. Ask the administrator to set login.user_claim to a claim without that prefix.",
                    identity.user
                ),
            ),
        );
    }
    tracing::info!(user = %identity.user, groups = ?identity.groups, "signed in through the identity provider");
    let mut response = start_session(
        &server.vault,
        server.secure,
        &Session {
            user: identity.user.clone(),
            groups: identity.groups,
            name: identity.user,
        },
    );
    cookies::set(&mut response, server.secure, OIDC_COOKIE, "", 0);
    response
}
