//! Who is calling. stdio: the local user (or `--user`). HTTP: `Authorization: Bearer` with a devgate API
//! key, or a JWT from the organisation's identity provider (verified against its JWKS; the user is
//! `sub`), or, on loopback only, nobody in particular (`auth = "none"`).
//!
//! The caller's own credential never goes further than this module: provider calls use the tokens
//! devgate holds for the user.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use tokio::sync::RwLock;

use crate::config::{HttpAuth, JwtConfig};
use crate::vault::{ApiKeyRow, Store, StoreError, digest, now};

/// The user a request runs as, put in the request's extensions by [`authenticate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
}

/// The user every caller is when HTTP runs with `auth = "none"`.
pub const ANONYMOUS_USER: &str = "local";

/// Prefix of devgate API keys, so they are recognisable in a secret scanner.
const KEY_PREFIX: &str = "dgk_";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("the token is not valid: {0}")]
    Invalid(String),
    #[error("the identity provider's keys cannot be fetched: {0}")]
    Jwks(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How HTTP callers are authenticated.
pub enum Authenticator {
    None,
    ApiKeys(Arc<dyn Store>),
    Jwt(JwtVerifier),
}

impl Authenticator {
    pub fn new(
        mode: HttpAuth,
        jwt: Option<&JwtConfig>,
        store: Arc<dyn Store>,
    ) -> Result<Self, String> {
        Ok(match mode {
            HttpAuth::None => Authenticator::None,
            HttpAuth::ApiKey => Authenticator::ApiKeys(store),
            HttpAuth::Jwt => Authenticator::Jwt(JwtVerifier::new(
                jwt.ok_or("http.auth = \"jwt\" needs [http.jwt]")?.clone(),
            )?),
        })
    }

    /// The user behind a bearer token.
    pub async fn user(&self, bearer: Option<&str>) -> Result<String, AuthError> {
        match self {
            Authenticator::None => Ok(ANONYMOUS_USER.to_string()),
            Authenticator::ApiKeys(store) => {
                let key = bearer.ok_or(AuthError::Missing)?;
                store
                    .api_key_user(&digest(key))
                    .await?
                    .ok_or_else(|| AuthError::Invalid("unknown or revoked API key".into()))
            }
            Authenticator::Jwt(verifier) => {
                let user = verifier.verify(bearer.ok_or(AuthError::Missing)?).await?;
                // The user names log lines, audit records and rate-limit keys: keep it bounded.
                if user.chars().count() > crate::audit::MAX_USER_CHARS {
                    return Err(AuthError::Invalid(format!(
                        "the subject (sub) is longer than {} characters",
                        crate::audit::MAX_USER_CHARS
                    )));
                }
                Ok(user)
            }
        }
    }

    pub fn issuer(&self) -> Option<&str> {
        match self {
            Authenticator::Jwt(v) => Some(&v.config.issuer),
            _ => None,
        }
    }
}

/// The state [`authenticate`] needs.
#[derive(Clone)]
pub struct AuthLayer {
    pub authenticator: Arc<Authenticator>,
    /// Where the protected-resource metadata is published (for the 401 challenge).
    pub metadata_url: String,
}

/// Axum middleware for `/mcp`: resolves the caller or answers 401 with the RFC 9728 challenge.
pub async fn authenticate(
    State(layer): State<AuthLayer>,
    mut request: Request,
    next: Next,
) -> Response {
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .map(str::to_string);
    match layer.authenticator.user(bearer.as_deref()).await {
        Ok(user) => {
            request.extensions_mut().insert(Identity { user });
            next.run(request).await
        }
        Err(AuthError::Store(e)) => {
            tracing::error!(error = %e, "authentication could not reach the store");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is unavailable; try again shortly\n",
            )
                .into_response()
        }
        Err(e) => {
            let error = match e {
                AuthError::Missing => String::new(),
                _ => ", error=\"invalid_token\"".to_string(),
            };
            tracing::info!(reason = %e, "rejected an HTTP caller");
            let challenge = format!("Bearer resource_metadata=\"{}\"{error}", layer.metadata_url);
            let mut response = (
                StatusCode::UNAUTHORIZED,
                format!(
                    "{e}: send Authorization: Bearer <API key from `devgate keys create <user>`>\n"
                ),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            response
        }
    }
}

/// RFC 9728 protected-resource metadata for `/mcp`.
pub fn resource_metadata(public_url: &str, authenticator: &Authenticator) -> serde_json::Value {
    let base = public_url.trim_end_matches('/');
    let mut doc = serde_json::json!({
        "resource": format!("{base}/mcp"),
        "bearer_methods_supported": ["header"],
        "resource_name": "devgate",
    });
    if let Some(issuer) = authenticator.issuer() {
        doc["authorization_servers"] = serde_json::json!([issuer]);
    }
    doc
}

/// A new API key for `user`: the key (shown once) and the row to store (its hash only).
pub fn new_api_key(user: &str) -> (String, ApiKeyRow) {
    let bytes: [u8; 32] = rand::random();
    let key = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let row = ApiKeyRow {
        id: key[KEY_PREFIX.len()..KEY_PREFIX.len() + 12].to_string(),
        key_hash: digest(&key),
        user: user.to_string(),
        created_at: now(),
    };
    (key, row)
}

/// Verifies JWTs against an issuer's JWKS, fetched on first use and again when an unknown key id
/// appears (at most once a minute, so garbage tokens cannot make devgate hammer the issuer).
pub struct JwtVerifier {
    config: JwtConfig,
    http: reqwest::Client,
    keys: RwLock<Option<(JwkSet, Instant)>>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
}

impl JwtVerifier {
    pub fn new(config: JwtConfig) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            config,
            http,
            keys: RwLock::new(None),
        })
    }

    async fn fetch(&self) -> Result<JwkSet, AuthError> {
        let response = self
            .http
            .get(&self.config.jwks_url)
            .send()
            .await
            .map_err(|e| AuthError::Jwks(e.to_string()))?;
        if !response.status().is_success() {
            return Err(AuthError::Jwks(format!(
                "HTTP {}",
                response.status().as_u16()
            )));
        }
        response
            .json::<JwkSet>()
            .await
            .map_err(|e| AuthError::Jwks(e.to_string()))
    }

    async fn key_for(&self, kid: Option<&str>) -> Result<jsonwebtoken::jwk::Jwk, AuthError> {
        let pick = |set: &JwkSet| match kid {
            Some(k) => set.find(k).cloned(),
            None if set.keys.len() == 1 => set.keys.first().cloned(),
            None => None,
        };
        let stale = {
            let cached = self.keys.read().await;
            if let Some((set, _)) = cached.as_ref()
                && let Some(jwk) = pick(set)
            {
                return Ok(jwk);
            }
            cached
                .as_ref()
                .is_none_or(|(_, at)| at.elapsed() > Duration::from_secs(60))
        };
        if stale {
            let set = self.fetch().await?;
            let found = pick(&set);
            *self.keys.write().await = Some((set, Instant::now()));
            if let Some(jwk) = found {
                return Ok(jwk);
            }
        }
        Err(AuthError::Invalid("signed with an unknown key".into()))
    }

    pub async fn verify(&self, token: &str) -> Result<String, AuthError> {
        let header = decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let jwk = self.key_for(header.kid.as_deref()).await?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = decode::<Claims>(token, &key, &validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        Ok(data.claims.sub)
    }
}
