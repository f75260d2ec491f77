//! The providers' OAuth side: consent page, token endpoint, refresh, revoke, and the accounts tokens
//! belong to.
//!
//! Buddy (on the Buddy port, relative to the API base like `https://api.buddy.works/oauth2/…`):
//! - `GET /oauth2/authorize?type=web_server&client_id&response_type=code&scope=A B&state&redirect_uri&code_challenge&code_challenge_method=S256`
//!   shows a consent page; its form `POST`s back to `/oauth2/authorize`, which answers `303` to
//!   `redirect_uri?code=…&state=…` (allow) or `redirect_uri?error=access_denied&…&state=…` (deny).
//! - `POST /oauth2/token` (form; `client_id` + `client_secret` in the body): `authorization_code` and
//!   `refresh_token` grants; no `scope` in the answer; the refresh token does not rotate.
//! - `POST /oauth2/revoke` (form: `token`, `token_type_hint`, client credentials): kills the token's
//!   whole grant; every revocation is recorded ([`SimState::revocations`]).
//!
//! Bitbucket (on the Bitbucket port, outside `/2.0`, like `https://bitbucket.org/site/oauth2/…`):
//! - `GET`/`POST /site/oauth2/authorize`: as above; `scope` is ignored, the consumer's permissions
//!   ([`SimState::set_bitbucket_scopes`]) are granted.
//! - `POST /site/oauth2/access_token` (form; HTTP Basic client auth only): answers with plural `scopes`,
//!   `token_type: bearer` and `state` echoing the grant type; refresh tokens rotate on every use.
//!   There is no revoke endpoint.
//!
//! Codes are single-use, live 10 minutes and are bound to client, redirect URI and PKCE challenge (S256
//! only). Tokens are 32 random bytes in hex. Errors are OAuth-style `{"error","error_description"}`;
//! no error message echoes a secret, and the recorder replaces secret form fields with `[redacted]`.
//!
//! The consent page looks like a provider's (its name in a coloured bar, the application asking, the
//! permissions in the provider's words, where the answer goes back to), not like devgate's own pages,
//! with a note that it is simulated. Its form: hidden fields carry the authorize parameters,
//! `<select name="account">` picks the account (`mike`/`nina` on Buddy, `ann`/`ben` on Bitbucket; the
//! first if left out), and two submit buttons `name="decision"` (ids `allow` and `deny`) decide.
//!
//! # Layout
//! This file holds the router; each concern has a file of its own: `accounts.rs` (who signs in),
//! `state.rs` (codes, grants, tokens), `knobs.rs` (what tests can change), `authorize.rs` (consent),
//! `token.rs` (token endpoint and revoke), `scopes.rs` (Bitbucket scopes per route), `redact.rs` (secrets
//! in recorded requests), `tests.rs` and `tests/refusals.rs`.
//!
//! Every file starts with `use super::*;`: it takes this module's imports and, through the globs below,
//! the `pub(super)` items of its siblings, as when they were one file.

#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{
    BITBUCKET_CLIENT_ID, BITBUCKET_CLIENT_SECRET, BUDDY_CLIENT_ID, BUDDY_CLIENT_SECRET, SimState,
    Which, lock, param, slot,
};

/// Buddy's OAuth paths, relative to its API base.
pub const BUDDY_AUTHORIZE_PATH: &str = "/oauth2/authorize";
pub const BUDDY_TOKEN_PATH: &str = "/oauth2/token";
pub const BUDDY_REVOKE_PATH: &str = "/oauth2/revoke";
/// Bitbucket's OAuth paths, relative to its origin (not under `/2.0`).
pub const BITBUCKET_AUTHORIZE_PATH: &str = "/site/oauth2/authorize";
pub const BITBUCKET_TOKEN_PATH: &str = "/site/oauth2/access_token";

/// What a Bitbucket grant gets unless [`SimState::set_bitbucket_scopes`] narrows it.
pub const DEFAULT_BITBUCKET_SCOPES: &[&str] = &[
    "account",
    "repository",
    "repository:write",
    "pullrequest",
    "pullrequest:write",
    "pipeline",
    "pipeline:write",
];

/// Access-token lifetimes unless [`SimState::set_token_lifetime`] changes them.
pub const DEFAULT_BUDDY_TOKEN_LIFETIME: u64 = 3600;
pub const DEFAULT_BITBUCKET_TOKEN_LIFETIME: u64 = 7200;
/// What Buddy says its refresh tokens live (about 183 days); the sim does not expire them.
const BUDDY_REFRESH_LIFETIME: u64 = 15_811_200;
/// How long an authorization code stays usable.
const CODE_TTL: Duration = Duration::from_secs(600);

/// Form fields and query parameters whose values never reach a recording.
pub const SECRET_FIELDS: &[&str] = &[
    "client_secret",
    "code",
    "code_verifier",
    "refresh_token",
    "token",
    "access_token",
];
const REDACTED: &str = "[redacted]";

mod accounts;
mod authorize;
mod knobs;
mod redact;
mod scopes;
mod state;
#[cfg(test)]
pub(crate) mod tests;
mod token;

pub use accounts::Account;
pub use knobs::Knob;
pub(crate) use knobs::{get_knobs, post_knob};
pub(crate) use redact::{redacted_form, redacted_json, redacted_query};
pub(crate) use scopes::{grants_scope, required_scope};
pub use state::Revocation;
pub(crate) use state::{Denied, OAuthState, Resolved};
/// Form parsing and percent-decoding the simulated OIDC provider's token endpoint shares.
pub(crate) use token::{decode, form};

use authorize::*;
use state::*;
use token::*;

// ------------------------------------------------------------------------------------------- routes

/// The provider's OAuth routes (not bearer-checked; the recorder and faults still apply).
pub(crate) fn router(which: Which) -> Router<Arc<SimState>> {
    let authorize = get(move |state, query| authorize_page(which, state, query))
        .post(move |state, body| authorize_decision(which, state, body));
    let token = post(move |state, headers, body| token_endpoint(which, state, headers, body));
    match which {
        Which::Buddy => Router::new()
            .route(BUDDY_AUTHORIZE_PATH, authorize)
            .route(BUDDY_TOKEN_PATH, token)
            .route(
                BUDDY_REVOKE_PATH,
                post(move |state, headers, body| revoke(which, state, headers, body)),
            ),
        Which::Bitbucket => Router::new()
            .route(BITBUCKET_AUTHORIZE_PATH, authorize)
            .route(BITBUCKET_TOKEN_PATH, token),
    }
}

/// Whether a path is one of the OAuth routes (of either provider).
pub(crate) fn is_oauth_path(path: &str) -> bool {
    path.starts_with("/oauth2/") || path.starts_with("/site/oauth2/")
}

fn client_id(which: Which) -> &'static str {
    match which {
        Which::Buddy => BUDDY_CLIENT_ID,
        Which::Bitbucket => BITBUCKET_CLIENT_ID,
    }
}

fn client_secret(which: Which) -> &'static str {
    match which {
        Which::Buddy => BUDDY_CLIENT_SECRET,
        Which::Bitbucket => BITBUCKET_CLIENT_SECRET,
    }
}
