//! Who is calling. stdio: the local user (or `--user`). HTTP: `Authorization: Bearer` with a devgate API
//! key, or a JWT from the organisation's identity provider (verified against its JWKS; the user is
//! `sub`), or an access token devgate issued itself as the authorization server of its MCP endpoint
//! (`auth = "oauth"`, [`crate::auth_server`]: looked up by hash, refused when expired, revoked or issued
//! for another resource; API keys work beside them), or, on loopback only, nobody in particular
//! (`auth = "none"`).
//!
//! The caller's own credential never goes further than this module: provider calls use the tokens
//! devgate holds for the user. What a rejected caller is told names the reason only, never the JWKS
//! URL or a library's error text.

mod api_keys;
mod gate;
#[cfg(test)]
mod gate_tests;
mod jwt;

use api_keys::api_key_user;
pub use api_keys::new_api_key;
pub use gate::{AuthLayer, authenticate, resource_metadata};
pub use jwt::JwtVerifier;
pub(crate) use jwt::{JWT_LEEWAY_SECS, JwksKeys, algorithms_for, reason, validation};

use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;

use crate::config::{HttpAuth, JwtConfig};
use crate::vault::{ApiKeyRow, Store, StoreError, digest, now};

/// The user a request runs as, put in the request's extensions by [`authenticate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    /// The user's groups, for `[[policies]]`: from the API key, the JWT's groups claim, or
    /// `devgate stdio --group`.
    pub groups: Vec<String>,
}

/// The devgate scopes ([`crate::auth_server::scopes`]) of a request made with a devgate-issued token,
/// space-separated; put in the request's extensions beside its [`Identity`]. Requests without it (API
/// keys, JWTs) may use every offered tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantedScopes(pub String);

/// Who a credential belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub user: String,
    pub groups: Vec<String>,
    pub scopes: Option<String>,
}

impl Resolved {
    fn user(user: String) -> Self {
        Self {
            user,
            groups: Vec::new(),
            scopes: None,
        }
    }
}

impl Identity {
    /// A user in no group.
    pub fn named(user: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            groups: Vec::new(),
        }
    }
}

/// At most this many groups are taken from a token, each at most [`MAX_GROUP_CHARS`] long; others
/// are left out (they bound what a caller's token adds to every decision).
pub const MAX_GROUPS: usize = 256;
pub const MAX_GROUP_CHARS: usize = 256;

/// The user every caller is when HTTP runs with `auth = "none"`.
pub const ANONYMOUS_USER: &str = "local";

/// Prefix of devgate API keys, so they are recognisable in a secret scanner.
const KEY_PREFIX: &str = "dgk_";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    /// The reason is devgate's own short phrase (expired, wrong audience…), safe to show the caller.
    #[error("the token is not valid: {0}")]
    Invalid(String),
    /// The issuer's key set could not be fetched (the cause is logged where it happened).
    #[error("the identity provider's signing keys are unavailable; try again in {retry_after} s")]
    Jwks { retry_after: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How HTTP callers are authenticated.
pub enum Authenticator {
    None,
    ApiKeys(Arc<dyn Store>),
    Jwt(Box<JwtVerifier>),
    /// devgate's own access tokens for `resource` (its MCP URL), and API keys.
    OAuth {
        store: Arc<dyn Store>,
        issuer: String,
        resource: String,
    },
}

impl Authenticator {
    pub fn new(
        mode: HttpAuth,
        jwt: Option<&JwtConfig>,
        store: Arc<dyn Store>,
        public_url: &str,
    ) -> Result<Self, String> {
        let issuer = public_url.trim_end_matches('/').to_string();
        Ok(match mode {
            HttpAuth::OAuth => Authenticator::OAuth {
                store,
                resource: format!("{issuer}/mcp"),
                issuer,
            },
            HttpAuth::None => Authenticator::None,
            HttpAuth::ApiKey => Authenticator::ApiKeys(store),
            HttpAuth::Jwt => Authenticator::Jwt(Box::new(JwtVerifier::new(
                jwt.ok_or("http.auth = \"jwt\" needs [http.jwt]")?.clone(),
            )?)),
        })
    }

    /// The user (and groups) behind a bearer token.
    pub async fn identify(&self, bearer: Option<&str>) -> Result<Identity, AuthError> {
        self.resolve(bearer).await.map(|r| Identity {
            user: r.user,
            groups: r.groups,
        })
    }

    /// Who a bearer token belongs to, with the groups and scopes it carries.
    pub async fn resolve(&self, bearer: Option<&str>) -> Result<Resolved, AuthError> {
        match self {
            Authenticator::None => Ok(Resolved::user(ANONYMOUS_USER.to_string())),
            Authenticator::ApiKeys(store) => {
                api_key_user(store, bearer.ok_or(AuthError::Missing)?).await
            }
            Authenticator::OAuth {
                store, resource, ..
            } => {
                let token = bearer.ok_or(AuthError::Missing)?;
                if !token.starts_with(crate::auth_server::ACCESS_PREFIX) {
                    return api_key_user(store, token).await;
                }
                let grant = store
                    .access_grant(&digest(token), now())
                    .await?
                    .ok_or_else(|| {
                        AuthError::Invalid("unknown, expired or revoked access token".into())
                    })?;
                if grant.resource != *resource {
                    return Err(AuthError::Invalid(format!(
                        "issued for another audience ({}), not {resource}",
                        grant.resource
                    )));
                }
                Ok(Resolved {
                    user: grant.user,
                    groups: grant.groups,
                    scopes: Some(grant.scopes),
                })
            }
            Authenticator::Jwt(verifier) => {
                let identity = verifier.verify(bearer.ok_or(AuthError::Missing)?).await?;
                // The user names log lines, audit records and rate-limit keys: keep it bounded.
                if identity.user.chars().count() > crate::audit::MAX_USER_CHARS {
                    return Err(AuthError::Invalid(format!(
                        "the subject (sub) is longer than {} characters",
                        crate::audit::MAX_USER_CHARS
                    )));
                }
                Ok(Resolved {
                    user: identity.user,
                    groups: identity.groups,
                    scopes: None,
                })
            }
        }
    }

    /// What a caller rejected for a missing or invalid credential should send instead.
    fn hint(&self) -> &'static str {
        match self {
            Authenticator::Jwt(_) => {
                "send Authorization: Bearer <a token from the identity provider listed at /.well-known/oauth-protected-resource>"
            }
            Authenticator::OAuth { .. } => {
                "sign in through the authorization server listed at /.well-known/oauth-protected-resource, or send Authorization: Bearer <API key from `devgate keys create <user>`>"
            }
            _ => "send Authorization: Bearer <API key from `devgate keys create <user>`>",
        }
    }

    pub fn issuer(&self) -> Option<&str> {
        match self {
            Authenticator::Jwt(v) => Some(&v.config.issuer),
            Authenticator::OAuth { issuer, .. } => Some(issuer),
            _ => None,
        }
    }
}

/// Who the terminal commands and stdio act for by default. With `http.auth = "none"` every HTTP
/// caller is [`ANONYMOUS_USER`] (the sandbox's user too), so they act for that user as well; otherwise
/// for the local OS user ([`local_user`]).
pub fn default_user(config: &crate::config::Config) -> String {
    if config.http.auth == crate::config::HttpAuth::None {
        ANONYMOUS_USER.to_string()
    } else {
        local_user()
    }
}

/// The local OS user (`USER`, else `USERNAME`, else `local`).
pub fn local_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "local".into())
}
