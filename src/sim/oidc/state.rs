//! The simulated provider's state (keys, codes, access tokens, what it issued) and the knobs tests turn.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::keys::{KeyRing, SigningKey};
use super::{IdpUser, SIM_OIDC_CLIENT_ID};
use crate::sim::lock;

/// How long an authorization code stays usable.
pub(super) const CODE_TTL: Duration = Duration::from_secs(600);
/// How long ID and access tokens live.
pub(super) const TOKEN_LIFETIME: u64 = 300;

/// What the provider does wrong, on purpose, until told otherwise. Each field defaults to doing it right.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Knobs {
    /// Sign ID tokens with a key the JWKS does not hold, under the published key's `kid`: the
    /// signature does not verify.
    pub bad_signature: bool,
    /// Sign ID tokens with a key under a `kid` the JWKS does not list.
    pub unlisted_key: bool,
    /// Put this `nonce` in ID tokens instead of the authorize request's.
    pub nonce: Option<String>,
    /// Put this `aud` (and `azp`) in ID tokens instead of the client id.
    pub audience: Option<String>,
    /// Add these audiences to `aud` (which becomes a list) beside the client id.
    pub extra_audiences: Vec<String>,
    /// Put this `azp` in ID tokens instead of the client id (leave it out with `omit_claims`).
    pub azp: Option<String>,
    /// Put this `iss` in ID tokens instead of the provider's issuer.
    pub issuer: Option<String>,
    /// Issue ID tokens that expired ten minutes ago.
    pub expired: bool,
    /// Leave these claims out of ID tokens (e.g. `preferred_username`).
    pub omit_claims: Vec<String>,
    /// Sign ID tokens RS256 (the fixed test key) instead of ES256.
    pub rs256: bool,
    /// Accept only this client authentication at the token endpoint (`client_secret_basic` or
    /// `client_secret_post`), and list only it in discovery; both when unset.
    pub token_auth: Option<String>,
}

/// An authorization code, as issued.
pub(super) struct Code {
    pub(super) client_id: String,
    pub(super) redirect_uri: String,
    pub(super) challenge: String,
    pub(super) nonce: Option<String>,
    pub(super) user: IdpUser,
    pub(super) issued: Instant,
}

/// Everything the simulated provider keeps.
pub struct IdpState {
    issuer: String,
    keys: Mutex<KeyRing>,
    knobs: Mutex<Knobs>,
    pub(super) codes: Mutex<HashMap<String, Code>>,
    /// Access tokens and whose they are (for userinfo).
    pub(super) access: Mutex<HashMap<String, IdpUser>>,
    /// Every code and token issued, for tests that check none leaks.
    secrets: Mutex<Vec<String>>,
    jwks_fetches: AtomicUsize,
    token_requests: AtomicUsize,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A random, URL-safe secret of 32 bytes.
pub(super) fn random_secret() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

impl IdpState {
    pub fn new(issuer: &str) -> Self {
        Self {
            issuer: issuer.trim_end_matches('/').to_string(),
            keys: Mutex::new(KeyRing::new()),
            knobs: Mutex::new(Knobs::default()),
            codes: Mutex::default(),
            access: Mutex::default(),
            secrets: Mutex::default(),
            jwks_fetches: AtomicUsize::new(0),
            token_requests: AtomicUsize::new(0),
        }
    }

    pub fn issuer(&self) -> String {
        self.issuer.clone()
    }

    pub fn knobs(&self) -> Knobs {
        lock(&self.knobs).clone()
    }

    /// Replaces the knobs (all of them: a field left out is back to doing it right).
    pub fn set_knobs(&self, knobs: Knobs) {
        *lock(&self.knobs) = knobs;
    }

    /// Replaces the ES256 signing key with a new one under a new `kid`; returns the new `kid`.
    pub fn rotate(&self) -> String {
        let mut keys = lock(&self.keys);
        keys.es256 = SigningKey::es256();
        keys.es256.kid.clone()
    }

    /// The `kid` ID tokens are signed under now.
    pub fn current_kid(&self) -> String {
        let keys = lock(&self.keys);
        if lock(&self.knobs).rs256 {
            keys.rs256.kid.clone()
        } else {
            keys.es256.kid.clone()
        }
    }

    /// How many times the JWKS was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }

    /// How many requests reached the token endpoint.
    pub fn token_requests(&self) -> usize {
        self.token_requests.load(Ordering::SeqCst)
    }

    /// Every code, access token and ID token issued so far.
    pub fn issued_secrets(&self) -> Vec<String> {
        lock(&self.secrets).clone()
    }

    pub(super) fn count_token_request(&self) {
        self.token_requests.fetch_add(1, Ordering::SeqCst);
    }

    pub(super) fn remember(&self, secret: &str) {
        lock(&self.secrets).push(secret.to_string());
    }

    pub(super) fn jwks(&self) -> Value {
        self.jwks_fetches.fetch_add(1, Ordering::SeqCst);
        lock(&self.keys).jwks()
    }

    /// An ID token for `code`'s user, as the knobs say.
    pub(super) fn id_token(&self, code: &Code) -> String {
        let knobs = self.knobs();
        let user = code.user;
        let now = now_secs();
        let (iat, exp) = if knobs.expired {
            (now - 900, now - 600)
        } else {
            (now, now + TOKEN_LIFETIME)
        };
        let audience = knobs.audience.clone().unwrap_or(code.client_id.clone());
        let aud = match knobs.extra_audiences.is_empty() {
            true => json!(audience),
            false => json!([&[audience.clone()][..], &knobs.extra_audiences[..]].concat()),
        };
        let mut claims = json!({
            "iss": knobs.issuer.clone().unwrap_or(self.issuer.clone()),
            "sub": user.sub,
            "aud": aud,
            "azp": knobs.azp.clone().unwrap_or(audience),
            "iat": iat,
            "exp": exp,
            "auth_time": iat,
            "preferred_username": user.login,
            "name": user.name,
            "email": user.email,
            "email_verified": true,
            "groups": user.groups,
        });
        if let Some(nonce) = knobs.nonce.clone().or(code.nonce.clone()) {
            claims["nonce"] = json!(nonce);
        }
        if let Some(map) = claims.as_object_mut() {
            for name in &knobs.omit_claims {
                map.remove(name);
            }
        }
        let keys = lock(&self.keys);
        let key = if knobs.rs256 {
            &keys.rs256
        } else {
            &keys.es256
        };
        if knobs.bad_signature {
            // Another key, under the published kid. There is one RSA key only: for RS256 a genuine
            // signature with one byte changed.
            return if knobs.rs256 {
                corrupt(&key.sign(&key.kid, &claims))
            } else {
                SigningKey::es256().sign(&key.kid, &claims)
            };
        }
        if knobs.unlisted_key {
            let other = SigningKey::es256();
            return other.sign(&format!("{}-unlisted", other.kid), &claims);
        }
        key.sign(&key.kid, &claims)
    }
}

/// A JWT whose signature has one byte changed.
fn corrupt(jwt: &str) -> String {
    let Some((signed, signature)) = jwt.rsplit_once('.') else {
        return jwt.to_string();
    };
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap_or_default();
    if let Some(b) = bytes.first_mut() {
        *b ^= 0x5a;
    }
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `id` is the registered client.
pub(super) fn known_client(id: &str) -> bool {
    id == SIM_OIDC_CLIENT_ID
}

/// `GET /_sim/oidc`: the knobs, the current `kid` and the JWKS fetch count.
pub(super) async fn get_knobs(State(state): State<Arc<IdpState>>) -> Response {
    Json(json!({
        "knobs": state.knobs(),
        "kid": state.current_kid(),
        "jwks_fetches": state.jwks_fetches(),
    }))
    .into_response()
}

/// `POST /_sim/oidc` with [`Knobs`] as JSON: replaces the knobs.
pub(super) async fn post_knobs(
    State(state): State<Arc<IdpState>>,
    Json(knobs): Json<Knobs>,
) -> Response {
    state.set_knobs(knobs.clone());
    Json(json!({"knobs": knobs})).into_response()
}

/// `DELETE /_sim/oidc`: every knob back to doing it right.
pub(super) async fn reset_knobs(State(state): State<Arc<IdpState>>) -> Response {
    state.set_knobs(Knobs::default());
    Json(json!({"knobs": Knobs::default()})).into_response()
}

/// `POST /_sim/oidc/rotate`: a new ES256 key; answers its `kid`.
pub(super) async fn rotate(State(state): State<Arc<IdpState>>) -> Response {
    Json(json!({"kid": state.rotate()})).into_response()
}
