//! Signing in to devgate's authorization pages: `/login` lists the ways in — the organisation's
//! identity provider ([`super::idp_login`]) and each OAuth provider's account (Bitbucket, Buddy) — and `POST /login/{provider}` starts the provider's flow through the connect
//! machinery ([`crate::oauth::connect::Connector::begin_sign_in`]), with the same browser-bound flow
//! cookie. When the provider sends the browser back to `/integration-callback`, the connection is stored
//! for the user the account is, and [`signed_in`] gives the browser its session cookie and sends it on
//! to the consent page.
//!
//! The devgate user of a provider account is `<provider>:<the account's id>` (`bitbucket:{uuid}`,
//! `buddy:<id>`): ids stay when people rename themselves, and the prefix keeps two providers' ids apart.

use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::authorize::{Session, pending};
use super::{AuthServer, cookies};
use crate::oauth::connect::{Connected, Connector, PageError, TTL_SECS};
use crate::transport::pages::{error_page, escape, page, security_headers};

/// How long a browser stays signed in to the authorization pages.
pub const SESSION_SECS: i64 = 8 * 3600;

/// One way to sign in, as the login page offers it: a button posting to `action`.
#[derive(Debug, Clone)]
pub struct SignInOption {
    pub action: String,
    pub label: String,
}

impl AuthServer {
    /// The ways to sign in: the organisation's identity provider first (`[login]`), then each OAuth
    /// provider's account.
    pub fn sign_in_options(&self) -> Vec<SignInOption> {
        let mut options: Vec<SignInOption> = self
            .idp
            .iter()
            .map(|idp| SignInOption {
                action: super::idp_login::START_PATH.into(),
                label: idp.label(),
            })
            .collect();
        if let Some(connector) = &self.connector {
            let mut ids: Vec<&String> = connector.provider_ids().collect();
            ids.sort();
            options.extend(ids.into_iter().map(|id| SignInOption {
                action: format!("/login/{id}"),
                label: format!("Sign in with {}", connector.title(id)),
            }));
        }
        options
    }
}

/// `GET /login`.
pub async fn login_page(State(server): State<Arc<AuthServer>>, headers: HeaderMap) -> Response {
    let request = match pending(&server, &headers) {
        Ok(r) => r,
        Err(e) => return error_page(e),
    };
    let options = server.sign_in_options();
    if options.is_empty() {
        return error_page(PageError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "No way to sign in is configured",
            "devgate signs you in through an identity provider ([login]) or a provider account, and neither is configured here. Ask the administrator to configure one.",
        ));
    }
    let buttons: String = options
        .iter()
        .map(|o| {
            format!(
                "<form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<p><button type=\"submit\">{label}</button></p></form>",
                action = escape(&o.action),
                csrf = escape(&request.csrf),
                label = escape(&o.label),
            )
        })
        .collect();
    let body = format!(
        "<h1>Sign in to devgate</h1><div class=\"box\">\
<p><strong>{client}</strong> wants to use devgate as you. First, say who you are:</p>{buttons}</div>\
<p class=\"muted\">Signing in with a Bitbucket or Buddy account also connects it, so its tools work right away.</p>",
        client = escape(&request.client_name),
    );
    // The button's POST redirects to the provider's authorize page, anywhere on the web.
    page(StatusCode::OK, "Sign in", &body, "'self' https: http:")
}

#[derive(Deserialize)]
pub struct LoginForm {
    csrf: String,
}

/// The request in progress, when the form came from devgate's sign-in page (its CSRF value matches).
pub(crate) fn checked_request(
    server: &AuthServer,
    headers: &HeaderMap,
    form: &Result<Form<LoginForm>, FormRejection>,
) -> Result<super::authorize::AuthRequest, PageError> {
    let request = pending(server, headers)?;
    if !matches!(form, Ok(Form(f)) if f.csrf == request.csrf) {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "Sign in from devgate's page",
            "This form was not sent from the sign-in page devgate showed (the security check failed). Go back to your application and connect again.",
        ));
    }
    Ok(request)
}

/// `POST /login/{provider}`: off to the provider.
pub async fn login_submit(
    State(server): State<Arc<AuthServer>>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    if let Err(e) = checked_request(&server, &headers, &form) {
        return error_page(e);
    }
    let Some(connector) = &server.connector else {
        return error_page(PageError::new(
            StatusCode::NOT_FOUND,
            "No such way to sign in",
            "Go back and pick one of the buttons on the sign-in page.",
        ));
    };
    match connector.begin_sign_in(&provider).await {
        Ok(begun) => {
            let mut response = Redirect::to(begun.authorize_url.as_str()).into_response();
            let cookie = format!(
                "{}={}; Path=/integration-callback; HttpOnly; SameSite=Lax; Max-Age={TTL_SECS}{}",
                begun.cookie.name,
                begun.cookie.value,
                if server.secure { "; Secure" } else { "" }
            );
            if let Ok(v) = axum::http::HeaderValue::from_str(&cookie) {
                response
                    .headers_mut()
                    .append(axum::http::header::SET_COOKIE, v);
            }
            security_headers(response.headers_mut());
            response
        }
        Err(e) => error_page(e),
    }
}

/// After the provider's callback completed a sign-in: the session cookie, and on to the consent page.
pub fn signed_in(connector: &Connector, done: &Connected, secure: bool) -> Response {
    tracing::info!(user = %done.user, provider = %done.provider, "signed in with a provider account");
    start_session(
        connector.vault(),
        secure,
        &Session {
            user: done.user.clone(),
            groups: Vec::new(),
            name: done.account.clone(),
        },
    )
}

/// Signs the browser in as `session` (a sealed, `HttpOnly` cookie for [`SESSION_SECS`]) and sends it on
/// to the consent page: the end of every way to sign in (a provider account; an identity provider's
/// callback passes its user and groups).
pub fn start_session(vault: &crate::vault::Vault, secure: bool, session: &Session) -> Response {
    let sealed = cookies::seal(vault, cookies::SESSION, session, SESSION_SECS);
    let mut response = Redirect::to("/consent").into_response();
    cookies::set(
        &mut response,
        secure,
        cookies::SESSION,
        &sealed,
        SESSION_SECS,
    );
    security_headers(response.headers_mut());
    response
}
