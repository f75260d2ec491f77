//! The simulated provider's token endpoint (`POST /token`: the code for tokens and an ID token) and
//! userinfo (`GET /userinfo`).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::state::{CODE_TTL, TOKEN_LIFETIME, random_secret};
use super::{IdpState, SIM_OIDC_CLIENT_ID, SIM_OIDC_CLIENT_SECRET, oauth_error};
use crate::sim::oauth::{decode, form};
use crate::sim::{lock, param};

fn invalid_client(description: &str) -> Response {
    let mut response = oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", description);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"sim-idp\""),
    );
    response
}

fn invalid_grant(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

/// Checks the client's credentials: HTTP Basic (percent-decoded, RFC 6749 section 2.3.1) or in the
/// form body, never both, and only the method a knob allows when one is set.
fn authenticate(
    state: &IdpState,
    headers: &HeaderMap,
    form: &crate::sim::Query,
) -> Result<(), Response> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|b| b.split_once(':').map(|(i, s)| (decode(i), decode(s))));
    let posted = param(form, "client_secret").map(|s| {
        (
            param(form, "client_id").unwrap_or_default().to_string(),
            s.to_string(),
        )
    });
    let (method, (id, secret)) = match (basic, posted) {
        (Some(_), Some(_)) => {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Use one client authentication method, not both.",
            ));
        }
        (Some(b), None) => ("client_secret_basic", b),
        (None, Some(p)) => ("client_secret_post", p),
        (None, None) => return Err(invalid_client("Client authentication is required.")),
    };
    if let Some(allowed) = state.knobs().token_auth
        && allowed != method
    {
        return Err(invalid_client(&format!(
            "This client must authenticate with {allowed}."
        )));
    }
    if id != SIM_OIDC_CLIENT_ID || secret != SIM_OIDC_CLIENT_SECRET {
        return Err(invalid_client("Client authentication failed."));
    }
    Ok(())
}

/// `POST /token`.
pub(super) async fn token(
    State(state): State<Arc<IdpState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.count_token_request();
    let form = form(&headers, &body);
    if let Err(r) = authenticate(&state, &headers, &form) {
        return r;
    }
    if param(&form, "grant_type") != Some("authorization_code") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Only authorization_code is supported.",
        );
    }
    // Single use: a code is gone once presented, whatever the outcome.
    let code = param(&form, "code").unwrap_or_default();
    let Some(issued) = lock(&state.codes).remove(code) else {
        return invalid_grant("The authorization code is invalid, expired or already used.");
    };
    if issued.issued.elapsed() > CODE_TTL {
        return invalid_grant("The authorization code is invalid, expired or already used.");
    }
    if issued.client_id != SIM_OIDC_CLIENT_ID {
        return invalid_grant("The authorization code was issued to another client.");
    }
    if param(&form, "redirect_uri") != Some(issued.redirect_uri.as_str()) {
        return invalid_grant("redirect_uri does not match the authorization request's.");
    }
    let verifier = param(&form, "code_verifier").unwrap_or_default();
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != issued.challenge {
        return invalid_grant(
            "PKCE verification failed: code_verifier does not match the code_challenge.",
        );
    }
    let id_token = state.id_token(&issued);
    let access_token = random_secret();
    state.remember(&access_token);
    state.remember(&id_token);
    lock(&state.access).insert(access_token.clone(), issued.user);
    (
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME,
            "scope": "openid profile email groups",
            "id_token": id_token,
        })),
    )
        .into_response()
}

/// `GET /userinfo` with `Authorization: Bearer <access token>`.
pub(super) async fn userinfo(State(state): State<Arc<IdpState>>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let Some(user) = lock(&state.access).get(token).copied() else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "The access token is invalid.",
        );
    };
    Json(json!({
        "sub": user.sub,
        "preferred_username": user.login,
        "name": user.name,
        "email": user.email,
        "groups": user.groups,
    }))
    .into_response()
}
