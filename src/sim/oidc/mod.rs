//! A simulated OpenID Connect provider (an organisation's identity provider), on loopback of its own
//! port: discovery, JWKS, an authorize page where a user is chosen, the token endpoint issuing signed ID
//! tokens, and userinfo. `devgate sandbox` runs it for sign-in without any account; tests produce every
//! ID-token failure with it for real.
//!
//! Routes (the issuer is the origin, e.g. `http://127.0.0.1:41240`):
//! - `GET /.well-known/openid-configuration`: discovery; ID tokens are signed ES256 (a P-256 key generated
//!   at start) unless told to sign RS256 (a fixed test key, `rsa-test-key.pem`); both keys are in the JWKS.
//! - `GET /jwks`: the public keys; every fetch is counted ([`IdpState::jwks_fetches`]).
//! - `GET /authorize?response_type=code&client_id&redirect_uri&scope=openid…&state&nonce&code_challenge&code_challenge_method=S256`:
//!   the sign-in page. It sets a CSRF cookie; its form carries the request in hidden fields, a
//!   `<select name="user">` (`ada`, `bob`, `cyd`) and two buttons `name="decision"` (ids `sign-in` and
//!   `cancel`), and `POST`s back to `/authorize`, which answers `303` to `redirect_uri?code=…&state=…`.
//!   Walkable by a plain HTTP client that keeps cookies and by a browser (no scripts).
//! - `POST /token` (form): `authorization_code` only; the code is single-use, lives 10 minutes, and is
//!   bound to the client, the redirect URI and the PKCE challenge (S256, required). The client
//!   authenticates with HTTP Basic or in the form body (either, unless a knob allows one only).
//! - `GET /userinfo` with the access token.
//! - Control (tests): `GET`/`POST`/`DELETE /_sim/oidc` read, replace and reset the [`Knobs`] (sign with a
//!   wrong or unlisted key, a wrong nonce, audience, `azp` or issuer, more audiences, an expired token,
//!   claims left out, RS256, one client authentication method); `POST /_sim/oidc/rotate` replaces the ES256 key with a new one
//!   under a new `kid`. In process: [`IdpState`].
//!
//! The client registered with it is [`SIM_OIDC_CLIENT_ID`] / [`SIM_OIDC_CLIENT_SECRET`] (public: the sim's
//! own); any http(s) redirect URI without a fragment is accepted. Errors are OAuth-style
//! `{"error","error_description"}` and never echo a secret.
//!
//! # Layout
//! This file: the [`Idp`], its router, users and discovery. `keys.rs`: signing keys, JWKS, ID tokens.
//! `state.rs`: [`IdpState`] and the [`Knobs`]. `authorize.rs`: the sign-in page and its answer.
//! `token.rs`: the token and userinfo endpoints. `tests.rs`.

#![allow(clippy::result_large_err)]

mod authorize;
mod keys;
mod state;
#[cfg(test)]
pub(crate) mod tests;
mod token;

pub use state::{IdpState, Knobs};

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The client devgate is registered as at the simulated provider.
pub const SIM_OIDC_CLIENT_ID: &str = "sim-devgate-login";
pub const SIM_OIDC_CLIENT_SECRET: &str = "sim-devgate-login-secret";

/// A user of the simulated provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdpUser {
    /// `preferred_username`, and the value of the page's user select.
    pub login: &'static str,
    /// `sub`: opaque and stable, unlike the user name.
    pub sub: &'static str,
    pub name: &'static str,
    pub email: &'static str,
    pub groups: &'static [&'static str],
}

/// The provider's users; the first is chosen when the form names none.
pub const USERS: &[IdpUser] = &[
    IdpUser {
        login: "ada",
        sub: "00u7ada1815",
        name: "Ada Lovelace",
        email: "ada@example.com",
        groups: &["devs", "admins"],
    },
    IdpUser {
        login: "bob",
        sub: "00u7bob1942",
        name: "Bob Kahn",
        email: "bob@example.com",
        groups: &["devs"],
    },
    IdpUser {
        login: "cyd",
        sub: "00u7cyd1968",
        name: "Cyd Contractor",
        email: "cyd@contractor.example.net",
        groups: &["contractors"],
    },
];

/// A running simulated provider; dropping it stops it.
pub struct Idp {
    pub state: Arc<IdpState>,
    /// The issuer, e.g. `http://127.0.0.1:41240` (no trailing slash).
    pub issuer: String,
    shutdown: CancellationToken,
}

impl Idp {
    /// Starts on an ephemeral loopback port.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let issuer = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(IdpState::new(&issuer));
        let shutdown = CancellationToken::new();
        let app = router(state.clone());
        let token = shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(token.cancelled_owned())
                .await;
        });
        Ok(Self {
            state,
            issuer,
            shutdown,
        })
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The provider's routes, control routes included.
pub fn router(state: Arc<IdpState>) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(keys::jwks))
        .route("/authorize", get(authorize::page).post(authorize::decision))
        .route("/token", post(token::token))
        .route("/userinfo", get(token::userinfo))
        .route(
            "/_sim/oidc",
            get(state::get_knobs)
                .post(state::post_knobs)
                .delete(state::reset_knobs),
        )
        .route("/_sim/oidc/rotate", post(state::rotate))
        .with_state(state)
}

async fn discovery(State(state): State<Arc<IdpState>>) -> Response {
    let issuer = state.issuer();
    let auth_methods: Vec<String> = match state.knobs().token_auth {
        Some(one) => vec![one],
        None => vec!["client_secret_basic".into(), "client_secret_post".into()],
    };
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
        "scopes_supported": ["openid", "profile", "email", "groups"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "azp", "name",
                             "preferred_username", "email", "groups"],
    }))
    .into_response()
}

/// The `[login]` section of a config that signs users in at the simulated provider at `issuer`.
pub fn login_config_text(issuer: &str) -> String {
    format!(
        "\n# Users sign in at the simulated identity provider (users ada, bob and cyd; see README).\n\
         [login]\nissuer = \"{issuer}\"\nclient_id = \"{SIM_OIDC_CLIENT_ID}\"\nclient_secret = \"{SIM_OIDC_CLIENT_SECRET}\"\n"
    )
}

/// An OAuth-style error answer.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body: Value = json!({"error": error, "error_description": description});
    (status, Json(body)).into_response()
}
