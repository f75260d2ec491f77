//! `/token` and `/revoke`. A code is redeemed once, by the client it was issued to, with the PKCE
//! verifier of its challenge and the same redirect URI (and `resource`, when sent); a replayed code
//! revokes the grant it produced. Refresh tokens rotate on every use, and a used one presented again
//! revokes the whole grant (someone holds a copy). Errors follow RFC 6749 §5.2, naming the field.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::clients::Client;
use super::{ACCESS_PREFIX, AuthServer, REFRESH_PREFIX};
use crate::vault::auth::{CodeUse, GrantRow, Rotation, TokenHash};
use crate::vault::{digest, now};

/// What `/token` and `/revoke` receive (form-encoded).
#[derive(Default, Deserialize)]
pub struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    resource: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    token: Option<String>,
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    tracing::info!(error, description, "refused a token request");
    let mut response = (
        status,
        Json(serde_json::json!({"error": error, "error_description": description})),
    )
        .into_response();
    no_store(&mut response);
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"devgate\""),
        );
    }
    response
}

fn invalid_grant(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

fn no_store(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// The client id and secret from HTTP Basic, if sent that way.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

impl AuthServer {
    /// The client a token request comes from, authenticated when it has a secret.
    async fn authenticated_client(
        &self,
        headers: &HeaderMap,
        form: &TokenForm,
    ) -> Result<Client, Response> {
        let (id, secret) = match basic_credentials(headers) {
            Some((id, secret)) => (Some(id), Some(secret)),
            None => (form.client_id.clone(), form.client_secret.clone()),
        };
        let Some(id) = id.filter(|i| !i.is_empty()) else {
            return Err(oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client_id is required",
            ));
        };
        let client = match self.client(&id).await {
            Ok(c) => c,
            Err(super::clients::ClientError::Store(e)) => return Err(self.store_failed(e)),
            Err(e) => {
                return Err(oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    &e.to_string(),
                ));
            }
        };
        if let Some(expected) = &client.secret_hash
            && secret.as_deref().map(digest).as_ref() != Some(expected)
        {
            return Err(oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client_secret is missing or wrong",
            ));
        }
        Ok(client)
    }

    /// New access and refresh tokens: the values for the client and the hashes for the store.
    fn new_tokens(&self) -> ((String, TokenHash), (String, TokenHash)) {
        let access = format!("{ACCESS_PREFIX}{}", super::random_token(32));
        let refresh = format!("{REFRESH_PREFIX}{}", super::random_token(32));
        let access_hash = TokenHash {
            hash: digest(&access),
            expires_at: now() + self.config.access_token_secs,
        };
        let refresh_hash = TokenHash {
            hash: digest(&refresh),
            expires_at: now() + self.config.refresh_token_secs,
        };
        ((access, access_hash), (refresh, refresh_hash))
    }

    fn token_response(&self, grant: &GrantRow, access: &str, refresh: &str) -> Response {
        let mut response = Json(serde_json::json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.config.access_token_secs,
            "refresh_token": refresh,
            "scope": grant.scopes,
        }))
        .into_response();
        no_store(&mut response);
        response
    }

    /// A `resource` sent with a token request must be the one the grant is for.
    fn check_resource(&self, form: &TokenForm, granted: &str) -> Option<Response> {
        match form.resource.as_deref() {
            Some(r) if r.trim_end_matches('/') != granted => Some(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_target",
                &format!("resource `{r}` is not the one this grant is for ({granted})"),
            )),
            _ => None,
        }
    }

    async fn redeem_code(&self, client: &Client, form: &TokenForm) -> Response {
        let Some(code) = form.code.as_deref().filter(|c| !c.is_empty()) else {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "code is required",
            );
        };
        let row = match self.vault.store.take_code(&digest(code), now()).await {
            Ok(CodeUse::Fresh(row)) => row,
            Ok(CodeUse::Replayed { grant_id }) => {
                match self.vault.store.revoke_grant(&grant_id, now()).await {
                    Ok(revoked) => tracing::warn!(
                        grant = %grant_id,
                        revoked,
                        "an authorization code was presented again: its grant is revoked"
                    ),
                    Err(e) => return self.store_failed(e),
                }
                return invalid_grant("the code was already used; the tokens it gave are revoked");
            }
            Ok(CodeUse::Unknown) => return invalid_grant("the code is unknown or expired"),
            Err(e) => return self.store_failed(e),
        };
        if row.client_id != client.id {
            return invalid_grant("the code was issued to another client");
        }
        if form.redirect_uri.as_deref() != Some(row.redirect_uri.as_str()) {
            return invalid_grant("redirect_uri is not the one the code was issued for");
        }
        let Some(verifier) = form.code_verifier.as_deref() else {
            return invalid_grant("code_verifier is required (PKCE)");
        };
        let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        if computed != row.code_challenge {
            return invalid_grant("code_verifier does not match the code_challenge");
        }
        if let Some(r) = self.check_resource(form, &row.resource) {
            return r;
        }
        let grant = GrantRow {
            id: row.grant_id.clone(),
            user: row.user.clone(),
            groups: row.groups.clone(),
            client_id: row.client_id.clone(),
            scopes: row.scopes.clone(),
            resource: row.resource.clone(),
            created_at: now(),
            revoked_at: None,
        };
        let ((access, access_hash), (refresh, refresh_hash)) = self.new_tokens();
        if let Err(e) = self
            .vault
            .store
            .create_grant(&grant, &access_hash, &refresh_hash)
            .await
        {
            return self.store_failed(e);
        }
        tracing::info!(user = %grant.user, client = %grant.client_id, grant = %grant.id, "issued tokens");
        self.token_response(&grant, &access, &refresh)
    }

    async fn refresh(&self, client: &Client, form: &TokenForm) -> Response {
        let Some(presented) = form.refresh_token.as_deref().filter(|t| !t.is_empty()) else {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "refresh_token is required",
            );
        };
        let ((access, access_hash), (refresh, refresh_hash)) = self.new_tokens();
        let rotation = self
            .vault
            .store
            .rotate_refresh(&digest(presented), &access_hash, &refresh_hash, now())
            .await;
        let grant = match rotation {
            Ok(Rotation::Rotated(grant)) => grant,
            Ok(Rotation::Reused { grant_id }) => {
                if let Err(e) = self.vault.store.revoke_grant(&grant_id, now()).await {
                    return self.store_failed(e);
                }
                tracing::warn!(grant = %grant_id, "a used refresh token was presented again: its grant is revoked");
                return invalid_grant(
                    "the refresh token was already used; the grant is revoked, sign in again",
                );
            }
            Ok(Rotation::Unknown) => {
                return invalid_grant("the refresh token is unknown, expired or revoked");
            }
            Err(e) => return self.store_failed(e),
        };
        if grant.client_id != client.id {
            // Another client holds this client's token: end the grant.
            let _ = self.vault.store.revoke_grant(&grant.id, now()).await;
            return invalid_grant("the refresh token was issued to another client");
        }
        if let Some(r) = self.check_resource(form, &grant.resource) {
            return r;
        }
        self.token_response(&grant, &access, &refresh)
    }
}

impl AuthServer {
    /// A token or revocation request's form and the client it authenticates.
    async fn form_and_client(
        &self,
        headers: &HeaderMap,
        form: Result<Form<TokenForm>, FormRejection>,
    ) -> Result<(TokenForm, Client), Box<Response>> {
        let form = form_or_error(form)?;
        let client = self
            .authenticated_client(headers, &form)
            .await
            .map_err(Box::new)?;
        Ok((form, client))
    }
}

fn form_or_error(form: Result<Form<TokenForm>, FormRejection>) -> Result<TokenForm, Box<Response>> {
    form.map(|Form(f)| f).map_err(|e| {
        Box::new(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("the body must be form-encoded: {}", e.body_text()),
        ))
    })
}

/// `POST /token`.
pub async fn token(
    State(server): State<Arc<AuthServer>>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    server.purge_now_and_then().await;
    let (form, client) = match server.form_and_client(&headers, form).await {
        Ok(both) => both,
        Err(r) => return *r,
    };
    match form.grant_type.as_deref() {
        Some("authorization_code") => server.redeem_code(&client, &form).await,
        Some("refresh_token") => server.refresh(&client, &form).await,
        Some(other) => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("grant_type `{other}` is not supported (authorization_code, refresh_token)"),
        ),
        None => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "grant_type is required",
        ),
    }
}

/// `POST /revoke` (RFC 7009): a refresh token ends its grant, an access token just itself. Unknown
/// tokens are answered 200 like known ones.
pub async fn revoke(
    State(server): State<Arc<AuthServer>>,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    let (form, client) = match server.form_and_client(&headers, form).await {
        Ok(both) => both,
        Err(r) => return *r,
    };
    let Some(token) = form.token.as_deref().filter(|t| !t.is_empty()) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is required",
        );
    };
    let hash = digest(token);
    let store = &server.vault.store;
    let found = match store.token_grant(&hash).await {
        Ok(f) => f,
        Err(e) => return server.store_failed(e),
    };
    if let Some((grant_id, refresh)) = found {
        let owner = match store.grant(&grant_id).await {
            Ok(g) => g.map(|g| g.client_id),
            Err(e) => return server.store_failed(e),
        };
        if owner.as_deref() == Some(client.id.as_str()) {
            let done = if refresh {
                store.revoke_grant(&grant_id, now()).await.map(|_| ())
            } else {
                store.delete_token(&hash).await
            };
            if let Err(e) = done {
                return server.store_failed(e);
            }
            tracing::info!(grant = %grant_id, refresh, "revoked a token at the client's request");
        }
    }
    let mut response = StatusCode::OK.into_response();
    no_store(&mut response);
    response
}
