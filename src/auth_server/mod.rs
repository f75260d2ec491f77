//! devgate as the OAuth 2.1 authorization server of its own MCP endpoint (`[http] auth = "oauth"`).
//!
//! - [`metadata`]: RFC 8414 metadata at `/.well-known/oauth-authorization-server`; the protected-resource
//!   metadata ([`crate::identity::resource_metadata`]) names this server.
//! - [`clients`]: clients from the config, registered at `/register` (RFC 7591), or known by their Client
//!   ID Metadata Document.
//! - [`authorize`]: `/authorize` (code + PKCE S256 + `resource` naming devgate's MCP URL), then the
//!   consent page; [`login`]: the `/login` page, where the user signs in with a provider account or
//!   through the organisation's OpenID Connect provider ([`idp_login`], relying party [`oidc`]).
//! - [`token`]: `/token` (authorization code, refresh token with rotation and reuse detection) and
//!   `/revoke` (RFC 7009).
//! - [`scopes`]: `tools:read` and `tools:write`; [`step_up`]: what they allow at `/mcp`.
//!
//! The browser carries two sealed, `HttpOnly` cookies ([`cookies`]): the authorization request in
//! progress and the signed-in session (user and groups). Everything else lives in the store, so any
//! instance can answer any step. Codes and tokens are stored as hashes only.

pub mod authorize;
pub mod clients;
pub mod config;
mod cookies;
pub mod idp_login;
pub mod login;
pub mod oidc;
pub mod scopes;
pub mod step_up;
pub mod token;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::oauth::connect::Connector;
use crate::vault::{StoreError, Vault};
use clients::MetadataFetcher;
use config::AuthServerConfig;

/// Prefix of devgate-issued access tokens (recognisable in a secret scanner, and told from API keys).
pub const ACCESS_PREFIX: &str = "dga_";
/// Prefix of refresh tokens.
pub const REFRESH_PREFIX: &str = "dgr_";
/// How long an authorization code lives.
pub const CODE_SECS: i64 = 60;

/// A random URL-safe token of `bytes` random bytes.
pub(crate) fn random_token(bytes: usize) -> String {
    URL_SAFE_NO_PAD.encode(random_bytes(bytes))
}

/// A random URL-safe id of `bytes` random bytes (less one bit) that starts with a letter: an id a user
/// types after a command (`devgate grants revoke <id>`, `devgate keys revoke <user> <id>`) is never read
/// as a flag, as one starting with `-` would be.
pub(crate) fn random_id(bytes: usize) -> String {
    let mut buf = random_bytes(bytes);
    // The first character encodes the first byte's top six bits: below 0x80, it is one of A–Z, a–f.
    if let Some(first) = buf.first_mut() {
        *first &= 0x7f;
    }
    URL_SAFE_NO_PAD.encode(buf)
}

fn random_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|_| rand::random()).collect()
}

/// The authorization server: its config, the vault, and the provider sign-in flow.
pub struct AuthServer {
    pub config: AuthServerConfig,
    pub vault: Arc<Vault>,
    /// The upstream connect flow, through which users sign in with a provider account.
    pub connector: Option<Arc<Connector>>,
    /// devgate's public URL without a trailing slash: the issuer.
    pub issuer: String,
    /// The MCP endpoint, the only `resource` tokens are issued for.
    pub resource: String,
    /// Whether the public URL is https (cookies then carry `Secure`).
    pub secure: bool,
    /// The organisation's identity provider (`[login]`), when configured ([`AuthServer::with_login`]).
    pub idp: Option<Arc<idp_login::IdpLogin>>,
    fetcher: MetadataFetcher,
    /// When this process last deleted expired codes and tokens (unix seconds).
    last_purge: std::sync::atomic::AtomicI64,
}

impl std::fmt::Debug for AuthServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthServer")
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl AuthServer {
    pub fn new(
        config: AuthServerConfig,
        vault: Arc<Vault>,
        connector: Option<Arc<Connector>>,
        public_url: &str,
    ) -> Result<Self, String> {
        let issuer = public_url.trim_end_matches('/').to_string();
        let loopback = url::Url::parse(&issuer)
            .map(|u| crate::provider::storage::is_loopback_host(&u))
            .unwrap_or(false);
        Ok(Self {
            config,
            vault,
            connector,
            resource: format!("{issuer}/mcp"),
            secure: issuer.starts_with("https://"),
            issuer,
            idp: None,
            fetcher: MetadataFetcher::new(loopback)?,
            last_purge: std::sync::atomic::AtomicI64::new(0),
        })
    }

    /// RFC 8414 authorization server metadata.
    pub fn metadata(&self) -> serde_json::Value {
        let base = &self.issuer;
        let mut doc = serde_json::json!({
            "issuer": base,
            "authorization_endpoint": format!("{base}/authorize"),
            "token_endpoint": format!("{base}/token"),
            "revocation_endpoint": format!("{base}/revoke"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
            "revocation_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
            "scopes_supported": scopes::ALL,
            "client_id_metadata_document_supported": self.config.metadata_documents,
            "authorization_response_iss_parameter_supported": true,
        });
        if self.config.registration == config::Registration::Open {
            doc["registration_endpoint"] = format!("{base}/register").into();
        }
        doc
    }

    /// Deletes expired codes and tokens, at most once a minute per process (a used refresh token stays
    /// until it expires, for reuse detection).
    pub(crate) async fn purge_now_and_then(&self) {
        use std::sync::atomic::Ordering;
        let now = crate::vault::now();
        let last = self.last_purge.load(Ordering::Relaxed);
        if now - last < 60
            || self
                .last_purge
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        if let Err(e) = self.vault.store.purge_auth(now).await {
            tracing::warn!(error = %e, "could not delete expired authorization codes and tokens");
        }
    }

    /// A store failure, logged; the caller gets a 503 that names no host.
    pub(crate) fn store_failed(&self, e: StoreError) -> Response {
        tracing::error!(error = %e, "the authorization server could not reach the store");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the store is unavailable; try again shortly\n",
        )
            .into_response()
    }
}

/// The authorization server's routes.
pub fn router(server: Arc<AuthServer>) -> Router {
    let metadata = axum::Json(server.metadata());
    Router::new()
        .route(
            "/.well-known/oauth-authorization-server",
            get(move || async move { metadata }),
        )
        .route("/register", post(clients::register))
        .route("/authorize", get(authorize::authorize))
        .route(
            "/consent",
            get(authorize::consent_page).post(authorize::consent_submit),
        )
        .route("/login", get(login::login_page))
        .route("/login/{provider}", post(login::login_submit))
        .route(idp_login::START_PATH, post(idp_login::start))
        .route(oidc::CALLBACK_PATH, get(idp_login::callback))
        .route("/token", post(token::token))
        .route("/revoke", post(token::revoke))
        .with_state(server)
}

#[cfg(test)]
mod id_tests {
    /// A grant id is typed after `devgate grants revoke`: one starting with `-` would be read as a flag
    /// (one in 64 did before).
    #[test]
    fn ids_start_with_a_letter() {
        for _ in 0..2000 {
            let id = super::random_id(12);
            assert_eq!(id.len(), 16);
            assert!(id.starts_with(|c: char| c.is_ascii_alphabetic()), "{id}");
        }
    }
}
