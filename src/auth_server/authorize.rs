//! `/authorize` and the consent page. The request is checked in RFC 6749's order: until the client and
//! its exact redirect URI are known, problems are shown on a page (never redirected to an unchecked
//! address); after that they go back to the client as `error=…`. A valid request is sealed into the
//! browser's authorization cookie, and the browser goes to `/login` (not signed in) or `/consent`.
//! Consent is remembered per user and client; a remembered consent that covers the scopes asked for
//! issues the code without asking again.

use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use url::Url;

use super::{AuthServer, CODE_SECS, cookies, scopes};
use crate::oauth::connect::PageError;
use crate::transport::pages::{error_page, escape, page, security_headers};
use crate::vault::auth::{CodeRow, ConsentRow};
use crate::vault::{digest, now};

/// How long a browser has from `/authorize` to its answer on the consent page.
const REQUEST_SECS: i64 = 600;

/// What `/authorize` receives.
#[derive(Debug, Default, Deserialize)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub resource: Option<String>,
}

/// A checked authorization request, sealed in the browser's [`cookies::AUTHORIZE`] cookie.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthRequest {
    pub client_id: String,
    pub client_name: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub code_challenge: String,
    pub scopes: Vec<String>,
    pub resource: String,
    /// Must come back in the forms of the login and consent pages (double submit).
    pub csrf: String,
}

/// Who is signed in, sealed in the browser's [`cookies::SESSION`] cookie.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub user: String,
    /// Groups from the identity provider; empty for a provider-account sign-in.
    pub groups: Vec<String>,
    /// What the pages call the user (the account's display name), when it differs from `user`.
    #[serde(default)]
    pub name: String,
}

/// The client's redirect URI with `params` added (RFC 6749 §4.1.2).
fn back_to_client(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    let mut url = match Url::parse(redirect_uri) {
        Ok(u) => u,
        Err(_) => {
            return error_page(PageError::new(
                StatusCode::BAD_REQUEST,
                "The client's address is not valid",
                "The application's redirect address does not parse. Nothing was authorized.",
            ));
        }
    };
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in params {
            query.append_pair(k, v);
        }
    }
    let mut response = Redirect::to(url.as_str()).into_response();
    security_headers(response.headers_mut());
    response
}

fn redirect_error(
    server: &AuthServer,
    redirect_uri: &str,
    state: Option<&str>,
    error: &str,
    description: &str,
) -> Response {
    tracing::info!(error, description, "refused an authorization request");
    let mut params = vec![
        ("error", error),
        ("error_description", description),
        ("iss", server.issuer.as_str()),
    ];
    if let Some(state) = state {
        params.push(("state", state));
    }
    back_to_client(redirect_uri, &params)
}

fn bad_request_page(title: &str, message: String) -> Response {
    tracing::info!(%message, "refused an authorization request before its redirect URI was known");
    error_page(PageError::new(StatusCode::BAD_REQUEST, title, message))
}

/// `GET /authorize`.
pub async fn authorize(
    State(server): State<Arc<AuthServer>>,
    headers: HeaderMap,
    Query(params): Query<AuthorizeParams>,
) -> Response {
    let Some(client_id) = params.client_id.as_deref().filter(|c| !c.is_empty()) else {
        return bad_request_page(
            "The application did not say who it is",
            "This sign-in link has no client_id. Nothing was authorized: start again from your application.".into(),
        );
    };
    let client = match server.client(client_id).await {
        Ok(c) => c,
        Err(super::clients::ClientError::Store(e)) => return server.store_failed(e),
        Err(e) => {
            return bad_request_page(
                "devgate does not know this application",
                format!("{e}. Nothing was authorized."),
            );
        }
    };
    let redirect_uri = match params.redirect_uri.as_deref() {
        Some(uri) if client.redirect_uris.iter().any(|r| r == uri) => uri.to_string(),
        Some(uri) => {
            return bad_request_page(
                "The application's redirect address is not registered",
                format!(
                    "redirect_uri `{uri}` is not one of the addresses {} registered, so devgate will not send you there. Nothing was authorized.",
                    client.name
                ),
            );
        }
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => {
            return bad_request_page(
                "The application did not say where to return",
                "redirect_uri is missing and the application registered several. Nothing was authorized.".into(),
            );
        }
    };
    let state = params.state.as_deref();
    let fail = |error: &str, description: &str| {
        redirect_error(&server, &redirect_uri, state, error, description)
    };
    if params.response_type.as_deref() != Some("code") {
        return fail("unsupported_response_type", "response_type must be `code`");
    }
    let Some(challenge) = params.code_challenge.as_deref().filter(|c| !c.is_empty()) else {
        return fail(
            "invalid_request",
            "code_challenge is required: devgate requires PKCE with S256",
        );
    };
    if params.code_challenge_method.as_deref() != Some("S256") {
        return fail("invalid_request", "code_challenge_method must be S256");
    }
    if !(43..=128).contains(&challenge.len()) {
        return fail(
            "invalid_request",
            "code_challenge must be the base64url SHA-256 of the verifier (43 characters)",
        );
    }
    match params.resource.as_deref() {
        Some(r) if r.trim_end_matches('/') == server.resource => {}
        Some(r) => {
            return fail(
                "invalid_target",
                &format!(
                    "resource `{r}` is not this server's MCP endpoint {}",
                    server.resource
                ),
            );
        }
        None => {
            return fail(
                "invalid_target",
                &format!("resource is required (RFC 8707): use {}", server.resource),
            );
        }
    }
    let scopes = match scopes::parse(params.scope.as_deref()) {
        Ok(s) => s,
        Err(why) => return fail("invalid_scope", &why),
    };
    let request = AuthRequest {
        client_id: client.id,
        client_name: client.name,
        redirect_uri,
        state: params.state.clone(),
        code_challenge: challenge.to_string(),
        scopes,
        resource: server.resource.clone(),
        csrf: super::random_token(24),
    };
    let signed_in = cookies::open::<Session>(&server.vault, &headers, cookies::SESSION).is_some();
    let next = if signed_in { "/consent" } else { "/login" };
    let mut response = Redirect::to(next).into_response();
    let sealed = cookies::seal(&server.vault, cookies::AUTHORIZE, &request, REQUEST_SECS);
    cookies::set(
        &mut response,
        server.secure,
        cookies::AUTHORIZE,
        &sealed,
        REQUEST_SECS,
    );
    security_headers(response.headers_mut());
    response
}

/// The request in progress, or the page saying there is none.
pub(crate) fn pending(server: &AuthServer, headers: &HeaderMap) -> Result<AuthRequest, PageError> {
    cookies::open::<AuthRequest>(&server.vault, headers, cookies::AUTHORIZE).ok_or_else(|| {
        PageError::new(
            StatusCode::BAD_REQUEST,
            "Start from your application",
            "There is no sign-in in progress in this browser (or it took longer than 10 minutes). Go back to your application and connect again.",
        )
    })
}

/// Issues the code and sends the browser back to the client.
async fn issue_code(server: &AuthServer, request: &AuthRequest, session: &Session) -> Response {
    let code = format!("dgc_{}", super::random_token(32));
    let row = CodeRow {
        code_hash: digest(&code),
        grant_id: super::random_id(12),
        user: session.user.clone(),
        groups: session.groups.clone(),
        client_id: request.client_id.clone(),
        scopes: request.scopes.join(" "),
        resource: request.resource.clone(),
        redirect_uri: request.redirect_uri.clone(),
        code_challenge: request.code_challenge.clone(),
        expires_at: now() + CODE_SECS,
    };
    if let Err(e) = server.vault.store.put_code(&row).await {
        return server.store_failed(e);
    }
    tracing::info!(user = %session.user, client = %request.client_id, "issued an authorization code");
    let mut params = vec![("code", code.as_str()), ("iss", server.issuer.as_str())];
    if let Some(state) = &request.state {
        params.push(("state", state));
    }
    let mut response = back_to_client(&request.redirect_uri, &params);
    cookies::set(&mut response, server.secure, cookies::AUTHORIZE, "", 0);
    response
}

/// The request in progress and who is signed in; without a request, the page saying so; without a
/// session, the way to `/login`.
fn request_and_session(
    server: &AuthServer,
    headers: &HeaderMap,
) -> Result<(AuthRequest, Session), Box<Response>> {
    let request = pending(server, headers).map_err(|e| Box::new(error_page(e)))?;
    match cookies::open::<Session>(&server.vault, headers, cookies::SESSION) {
        Some(session) => Ok((request, session)),
        None => {
            let mut response = Redirect::to("/login").into_response();
            security_headers(response.headers_mut());
            Err(Box::new(response))
        }
    }
}

/// `GET /consent`: asks the signed-in user, unless they already agreed to this much.
pub async fn consent_page(State(server): State<Arc<AuthServer>>, headers: HeaderMap) -> Response {
    let (request, session) = match request_and_session(&server, &headers) {
        Ok(both) => both,
        Err(response) => return *response,
    };
    match server
        .vault
        .store
        .consent(&session.user, &request.client_id)
        .await
    {
        Ok(Some(c)) if scopes::covers(&c.scopes, &request.scopes) => {
            return issue_code(&server, &request, &session).await;
        }
        Ok(_) => {}
        Err(e) => return server.store_failed(e),
    }
    let host = Url::parse(&request.redirect_uri)
        .ok()
        .map(|u| match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => u.scheme().to_string(),
        })
        .unwrap_or_default();
    let scopes: String = request
        .scopes
        .iter()
        .map(|s| {
            format!(
                "<li><code>{}</code> — {}</li>",
                escape(s),
                escape(scopes::describe(s))
            )
        })
        .collect();
    let body = format!(
        "<h1>Allow {client} to use devgate?</h1><div class=\"box\">\
<p>You are signed in as <strong>{user}</strong>{id}.</p>\
<p><strong>{client}</strong> asks to use devgate's tools as you, with these permissions:</p><ul>{scopes}</ul>\
<p>Afterwards you return to <strong>{host}</strong>.</p>\
<form method=\"post\" action=\"/consent\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
<button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button> \
<button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form></div>\
<p class=\"muted\">devgate remembers your answer for this application; <code>devgate grants revoke</code> withdraws it.</p>",
        client = escape(&request.client_name),
        user = escape(if session.name.is_empty() {
            &session.user
        } else {
            &session.name
        }),
        id = if session.name.is_empty() {
            String::new()
        } else {
            format!(" <span class=\"muted\">({})</span>", escape(&session.user))
        },
        host = escape(&host),
        csrf = escape(&request.csrf),
    );
    page(
        StatusCode::OK,
        "Allow access",
        &body,
        &form_action(&request.redirect_uri),
    )
}

/// The CSP `form-action` of a page whose POST answers with a redirect to the client.
pub(crate) fn form_action(redirect_uri: &str) -> String {
    let origin = Url::parse(redirect_uri)
        .ok()
        .map(|u| u.origin().ascii_serialization())
        .filter(|o| o != "null")
        .unwrap_or_else(|| {
            redirect_uri
                .split(':')
                .next()
                .map(|s| format!("{s}:"))
                .unwrap_or_default()
        });
    format!("'self' {origin}")
}

#[derive(Deserialize)]
pub struct ConsentForm {
    csrf: String,
    decision: String,
}

/// `POST /consent`: the user's answer.
pub async fn consent_submit(
    State(server): State<Arc<AuthServer>>,
    headers: HeaderMap,
    form: Result<Form<ConsentForm>, FormRejection>,
) -> Response {
    let (request, session) = match request_and_session(&server, &headers) {
        Ok(both) => both,
        Err(response) => return *response,
    };
    let form = match form {
        Ok(Form(f)) if f.csrf == request.csrf => f,
        _ => {
            return error_page(PageError::new(
                StatusCode::FORBIDDEN,
                "Answer on devgate's page",
                "This answer was not sent from the consent page devgate showed (the security check failed). Go back to your application and connect again.",
            ));
        }
    };
    if form.decision != "allow" {
        tracing::info!(user = %session.user, client = %request.client_id, "the user declined");
        let mut response = redirect_error(
            &server,
            &request.redirect_uri,
            request.state.as_deref(),
            "access_denied",
            "the user declined",
        );
        cookies::set(&mut response, server.secure, cookies::AUTHORIZE, "", 0);
        return response;
    }
    // What the user agreed to before stays agreed: a narrower request does not narrow it.
    let before = match server
        .vault
        .store
        .consent(&session.user, &request.client_id)
        .await
    {
        Ok(c) => c.map(|c| c.scopes).unwrap_or_default(),
        Err(e) => return server.store_failed(e),
    };
    let agreed: Vec<&str> = scopes::ALL
        .iter()
        .copied()
        .filter(|s| {
            request.scopes.iter().any(|r| r == s) || before.split_whitespace().any(|b| b == *s)
        })
        .collect();
    let consent = ConsentRow {
        user: session.user.clone(),
        client_id: request.client_id.clone(),
        scopes: agreed.join(" "),
        created_at: now(),
    };
    if let Err(e) = server.vault.store.put_consent(&consent).await {
        return server.store_failed(e);
    }
    issue_code(&server, &request, &session).await
}
