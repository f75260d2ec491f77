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
    Which, lock, param,
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

// ------------------------------------------------------------------------------------------ accounts

/// A provider account the sim's tokens can belong to: two per provider, so two users can connect to
/// different accounts. The static tokens belong to the first ([`Account::first`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Account {
    /// Buddy user 1, Mike Benson (the seed's token owner).
    Mike,
    /// Buddy user 2, Nina Alvarez: member (admin) of `acme` only.
    Nina,
    /// Bitbucket's Ann Dev (the seed's token owner).
    Ann,
    /// Bitbucket's Ben Ortiz: sees `acme` and his own workspace `bortiz`.
    Ben,
}

impl Account {
    /// The provider's two accounts, first one first.
    pub const fn all(provider: Which) -> [Account; 2] {
        match provider {
            Which::Buddy => [Account::Mike, Account::Nina],
            Which::Bitbucket => [Account::Ann, Account::Ben],
        }
    }

    /// The account the static tokens belong to.
    pub const fn first(provider: Which) -> Account {
        Self::all(provider)[0]
    }

    pub const fn provider(self) -> Which {
        match self {
            Account::Mike | Account::Nina => Which::Buddy,
            Account::Ann | Account::Ben => Which::Bitbucket,
        }
    }

    /// The short name used on the consent page's `account` field, in recordings and in knobs.
    pub const fn login(self) -> &'static str {
        match self {
            Account::Mike => "mike",
            Account::Nina => "nina",
            Account::Ann => "ann",
            Account::Ben => "ben",
        }
    }

    /// The name the provider's `GET /user` answers (`name` on Buddy, `display_name` on Bitbucket).
    pub const fn display_name(self) -> &'static str {
        match self {
            Account::Mike => "Mike Benson",
            Account::Nina => "Nina Alvarez",
            Account::Ann => "Ann Dev",
            Account::Ben => "Ben Ortiz",
        }
    }

    /// The account of `provider` with this login.
    pub fn parse(provider: Which, login: &str) -> Option<Account> {
        Self::all(provider).into_iter().find(|a| a.login() == login)
    }

    /// Buddy's user id (1 or 2, as in the seed's people).
    pub(crate) const fn buddy_id(self) -> u64 {
        match self {
            Account::Nina => 2,
            _ => 1,
        }
    }

    /// Index into the Bitbucket seed's people (0 Ann, 1 Ben).
    pub(crate) const fn bitbucket_person(self) -> usize {
        match self {
            Account::Ben => 1,
            _ => 0,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Account::Mike => "Mike Benson (mike.benson@buddy.works)",
            Account::Nina => "Nina Alvarez (nina.alvarez@acme.dev)",
            Account::Ann => "Ann Dev (anndev)",
            Account::Ben => "Ben Ortiz (bortiz)",
        }
    }
}

// --------------------------------------------------------------------------------------------- state

/// A credential the bearer check accepted.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub account: Account,
    /// An OAuth token's granted scopes; `None` for static credentials (which may do everything).
    pub scopes: Option<Vec<String>>,
}

/// Why the bearer check refused a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denied {
    /// Missing, unknown, revoked.
    Invalid,
    /// An issued access token past its lifetime.
    Expired,
}

impl Denied {
    pub(crate) fn message(self, which: Which) -> &'static str {
        match (which, self) {
            (Which::Buddy, Denied::Invalid) => "Invalid access token",
            (Which::Buddy, Denied::Expired) => "Access token expired",
            (Which::Bitbucket, Denied::Invalid) => {
                "Token is invalid, expired, or not supported for this endpoint."
            }
            (Which::Bitbucket, Denied::Expired) => {
                "Access token expired. Use your refresh token to obtain a new access token."
            }
        }
    }
}

fn slot(which: Which) -> usize {
    match which {
        Which::Buddy => 0,
        Which::Bitbucket => 1,
    }
}

struct Code {
    provider: Which,
    client_id: String,
    account: Account,
    redirect_uri: String,
    challenge: Option<String>,
    scopes: Vec<String>,
    issued: Instant,
}

/// One user's consent to one client: its access and refresh tokens live and die with it.
struct Grant {
    provider: Which,
    account: Account,
    client_id: String,
    scopes: Vec<String>,
    revoked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Access,
    Refresh,
}

struct Token {
    grant: usize,
    kind: Kind,
    /// Access tokens only.
    expires_at: Option<Instant>,
    /// Rotated away (Bitbucket refresh tokens) or revoked on its own.
    dead: bool,
}

/// The OAuth half of [`SimState`].
pub(crate) struct OAuthState {
    codes: HashMap<String, Code>,
    grants: Vec<Grant>,
    tokens: HashMap<String, Token>,
    lifetime: [u64; 2],
    expiring: [bool; 2],
    omit_refresh: [bool; 2],
    bitbucket_scopes: Vec<String>,
    token_requests: [BTreeMap<String, usize>; 2],
    dead_refresh: [usize; 2],
    /// Whether token-endpoint errors repeat the code or refresh token presented.
    echo_secrets: [bool; 2],
    revocations: [Vec<Revocation>; 2],
    /// Every code, token and PKCE verifier that passed through, for tests that search for leaks.
    secrets: Vec<String>,
}

impl OAuthState {
    pub(crate) fn new() -> Self {
        Self {
            codes: HashMap::new(),
            grants: Vec::new(),
            tokens: HashMap::new(),
            lifetime: [
                DEFAULT_BUDDY_TOKEN_LIFETIME,
                DEFAULT_BITBUCKET_TOKEN_LIFETIME,
            ],
            expiring: [true; 2],
            secrets: Vec::new(),
            omit_refresh: [false; 2],
            bitbucket_scopes: DEFAULT_BITBUCKET_SCOPES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            token_requests: Default::default(),
            dead_refresh: [0; 2],
            echo_secrets: [false; 2],
            revocations: Default::default(),
        }
    }

    /// A token-endpoint error description, repeating what the client presented when the echo knob
    /// ([`SimState::set_echo_secrets`]) is on.
    fn described(&self, which: Which, description: &str, presented: &str) -> String {
        if self.echo_secrets[slot(which)] {
            format!("{description} (presented: {presented})")
        } else {
            description.to_string()
        }
    }

    /// Looks up an issued access token for the bearer check.
    pub(crate) fn access(&self, provider: Which, token: &str) -> Result<Resolved, Denied> {
        let t = self
            .tokens
            .get(token)
            .filter(|t| t.kind == Kind::Access)
            .ok_or(Denied::Invalid)?;
        let grant = &self.grants[t.grant];
        if grant.provider != provider || grant.revoked || t.dead {
            return Err(Denied::Invalid);
        }
        if t.expires_at.is_some_and(|at| Instant::now() >= at) {
            return Err(Denied::Expired);
        }
        Ok(Resolved {
            account: grant.account,
            scopes: Some(grant.scopes.clone()),
        })
    }

    fn new_token(&mut self, grant: usize, kind: Kind) -> String {
        let token = random_hex::<32>();
        let expires_at = match kind {
            Kind::Access => {
                let i = slot(self.grants[grant].provider);
                self.expiring[i].then(|| Instant::now() + Duration::from_secs(self.lifetime[i]))
            }
            Kind::Refresh => None,
        };
        self.tokens.insert(
            token.clone(),
            Token {
                grant,
                kind,
                expires_at,
                dead: false,
            },
        );
        token
    }

    fn revoke_grant(&mut self, grant: usize) {
        self.grants[grant].revoked = true;
    }
}

fn random_hex<const N: usize>() -> String {
    let bytes: [u8; N] = rand::random();
    let mut out = String::with_capacity(2 * N);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// One request to a revocation endpoint, as the provider understood it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// What the token was: `access_token`, `refresh_token` or `unknown`.
    pub kind: String,
    /// The `token_type_hint` the client sent, if any.
    pub hint: Option<String>,
    /// The account whose grant it was, if the token was known.
    pub account: Option<Account>,
}

// --------------------------------------------------------------------------------------------- knobs

impl SimState {
    /// Sets the lifetime, in seconds, of access tokens the provider issues from now on (defaults:
    /// Buddy 3600, Bitbucket 7200). 0 issues tokens that are already expired. `expires_in` says the same.
    pub fn set_token_lifetime(&self, provider: Which, seconds: u64) {
        lock(&self.oauth).lifetime[slot(provider)] = seconds;
    }

    /// Whether access tokens the provider issues from now on expire (default: yes). With `false` they
    /// never do and token answers have no `expires_in` (nor Buddy's `refresh_token_expires_in`), like
    /// Buddy apps registered before 2022-03-29.
    pub fn set_expiring_tokens(&self, provider: Which, expiring: bool) {
        lock(&self.oauth).expiring[slot(provider)] = expiring;
    }

    /// Expires every access token issued to `account` so far, now: API calls with them get the
    /// provider's 401 "expired" answer. Refresh tokens stay good. Static tokens are not affected.
    pub fn expire_access_tokens(&self, account: Account) {
        let mut oauth = lock(&self.oauth);
        let now = Instant::now();
        let OAuthState { grants, tokens, .. } = &mut *oauth;
        for t in tokens.values_mut() {
            if t.kind == Kind::Access && grants[t.grant].account == account {
                t.expires_at = Some(now);
            }
        }
    }

    /// Revokes every grant of `account` (as when the user removes the app in the provider's settings):
    /// its access tokens stop working (401) and its refresh tokens get `invalid_grant`.
    pub fn revoke_grants(&self, account: Account) {
        let mut oauth = lock(&self.oauth);
        for g in oauth.grants.iter_mut().filter(|g| g.account == account) {
            g.revoked = true;
        }
    }

    /// Makes the provider's refresh answers leave out `refresh_token` (the old one then stays good, also
    /// on Bitbucket). Default: off.
    pub fn set_omit_refresh_token(&self, provider: Which, omit: bool) {
        lock(&self.oauth).omit_refresh[slot(provider)] = omit;
    }

    /// Sets the Bitbucket consumer's permissions: the scopes of grants the consent page gives from now
    /// on (earlier grants keep theirs, also across refreshes). Default: [`DEFAULT_BITBUCKET_SCOPES`].
    pub fn set_bitbucket_scopes<S: AsRef<str>>(&self, scopes: &[S]) {
        lock(&self.oauth).bitbucket_scopes =
            scopes.iter().map(|s| s.as_ref().to_string()).collect();
    }

    /// How many token-endpoint requests with this `grant_type` (`authorization_code`, `refresh_token`,
    /// …; `""` for none) the provider's handler got, successful or not. Requests a [`super::Fault`]
    /// answered never reach the handler; [`SimState::requests`] has those (with `grant_type` readable).
    pub fn token_requests(&self, provider: Which, grant_type: &str) -> usize {
        lock(&self.oauth).token_requests[slot(provider)]
            .get(grant_type)
            .copied()
            .unwrap_or(0)
    }

    /// Every authorization code, access and refresh token the provider issued and every PKCE verifier it
    /// received so far: what a leak search looks for.
    pub fn issued_secrets(&self) -> Vec<String> {
        let oauth = lock(&self.oauth);
        let mut all = oauth.secrets.clone();
        all.extend(oauth.tokens.keys().cloned());
        all
    }

    /// How many times a dead refresh token (rotated away, revoked) was presented to the provider.
    pub fn dead_refresh_token_uses(&self, provider: Which) -> usize {
        lock(&self.oauth).dead_refresh[slot(provider)]
    }

    /// Makes the provider's token-endpoint errors repeat the code or refresh token they were sent, as
    /// a careless provider might. Default: off.
    pub fn set_echo_secrets(&self, provider: Which, echo: bool) {
        lock(&self.oauth).echo_secrets[slot(provider)] = echo;
    }

    /// Every request the provider's revocation endpoint accepted, oldest first.
    pub fn revocations(&self, provider: Which) -> Vec<Revocation> {
        lock(&self.oauth).revocations[slot(provider)].clone()
    }

    /// How many unrevoked grants `account` has (one per completed code exchange).
    pub fn live_grants(&self, account: Account) -> usize {
        lock(&self.oauth)
            .grants
            .iter()
            .filter(|g| g.account == account && !g.revoked)
            .count()
    }
}

/// `POST /_sim/oauth` bodies: the knobs above over HTTP.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Knob {
    /// `{"op":"token_lifetime","provider":"bitbucket","seconds":60}`
    TokenLifetime { provider: Which, seconds: u64 },
    /// `{"op":"expiring_tokens","provider":"buddy","expiring":false}`
    ExpiringTokens { provider: Which, expiring: bool },
    /// `{"op":"expire_access_tokens","account":"ann"}`
    ExpireAccessTokens { account: Account },
    /// `{"op":"revoke_grants","account":"nina"}`
    RevokeGrants { account: Account },
    /// `{"op":"omit_refresh_token","provider":"buddy","omit":true}`
    OmitRefreshToken { provider: Which, omit: bool },
    /// `{"op":"bitbucket_scopes","scopes":["account","repository"]}`
    BitbucketScopes { scopes: Vec<String> },
    /// `{"op":"echo_secrets","provider":"bitbucket","echo":true}`
    EchoSecrets { provider: Which, echo: bool },
}

pub(crate) async fn post_knob(
    State(state): State<Arc<SimState>>,
    Json(knob): Json<Knob>,
) -> StatusCode {
    match knob {
        Knob::TokenLifetime { provider, seconds } => state.set_token_lifetime(provider, seconds),
        Knob::ExpiringTokens { provider, expiring } => {
            state.set_expiring_tokens(provider, expiring)
        }
        Knob::ExpireAccessTokens { account } => state.expire_access_tokens(account),
        Knob::RevokeGrants { account } => state.revoke_grants(account),
        Knob::OmitRefreshToken { provider, omit } => state.set_omit_refresh_token(provider, omit),
        Knob::BitbucketScopes { scopes } => state.set_bitbucket_scopes(&scopes),
        Knob::EchoSecrets { provider, echo } => state.set_echo_secrets(provider, echo),
    }
    StatusCode::NO_CONTENT
}

/// `GET /_sim/oauth`: settings and counters.
pub(crate) async fn get_knobs(State(state): State<Arc<SimState>>) -> Json<Value> {
    let oauth = lock(&state.oauth);
    let per = |f: &dyn Fn(usize) -> Value| json!({"buddy": f(0), "bitbucket": f(1)});
    let live = |a: Account| {
        oauth
            .grants
            .iter()
            .filter(|g| g.account == a && !g.revoked)
            .count()
    };
    Json(json!({
        "token_lifetime": per(&|i| json!(oauth.lifetime[i])),
        "expiring_tokens": per(&|i| json!(oauth.expiring[i])),
        "omit_refresh_token": per(&|i| json!(oauth.omit_refresh[i])),
        "bitbucket_scopes": oauth.bitbucket_scopes,
        "token_requests": per(&|i| json!(oauth.token_requests[i])),
        "dead_refresh_token_uses": per(&|i| json!(oauth.dead_refresh[i])),
        "echo_secrets": per(&|i| json!(oauth.echo_secrets[i])),
        "revocations": per(&|i| json!(oauth.revocations[i])),
        "live_grants": {
            "mike": live(Account::Mike), "nina": live(Account::Nina),
            "ann": live(Account::Ann), "ben": live(Account::Ben),
        },
    }))
}

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

// ---------------------------------------------------------------------------------- authorize

/// An authorize request that passed validation.
struct AuthRequest {
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    /// Buddy: the requested scopes. Bitbucket: ignored (empty).
    scopes: Vec<String>,
    challenge: Option<String>,
}

/// The parameters the consent form carries through.
const CARRIED: &[&str] = &[
    "type",
    "client_id",
    "response_type",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
];

/// Checks an authorize request; problems are a 400 page (as real providers do: no redirect to an
/// unverified place).
fn validate(which: Which, params: &super::Query) -> Result<AuthRequest, Response> {
    let id = param(params, "client_id").unwrap_or_default();
    if id.is_empty() {
        return Err(error_page(which, "The request has no client_id."));
    }
    if id != client_id(which) {
        return Err(error_page(
            which,
            "Unknown client_id: no OAuth application is registered under it.",
        ));
    }
    let redirect_uri = param(params, "redirect_uri").unwrap_or_default();
    if redirect_uri.is_empty() {
        return Err(error_page(which, "The request has no redirect_uri."));
    }
    match url::Url::parse(redirect_uri) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.fragment().is_none() => {}
        _ => {
            return Err(error_page(
                which,
                "redirect_uri must be an absolute http(s) URL without a fragment.",
            ));
        }
    }
    match param(params, "response_type") {
        None | Some("") => return Err(error_page(which, "The request has no response_type.")),
        Some("code") => {}
        Some(_) => {
            return Err(error_page(
                which,
                "Unsupported response_type: only \"code\" is supported.",
            ));
        }
    }
    let challenge = param(params, "code_challenge")
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    if let Some(c) = &challenge {
        if param(params, "code_challenge_method") != Some("S256") {
            return Err(error_page(
                which,
                "Unsupported code_challenge_method: only S256 is supported.",
            ));
        }
        if c.len() != 43 || URL_SAFE_NO_PAD.decode(c).is_err() {
            return Err(error_page(
                which,
                "code_challenge must be the base64url SHA-256 of the code verifier.",
            ));
        }
    }
    let scopes = match which {
        Which::Buddy => {
            let scope = param(params, "scope").unwrap_or_default();
            let scopes: Vec<String> = scope.split_whitespace().map(str::to_string).collect();
            if scopes.is_empty() {
                return Err(error_page(which, "The request has no scope."));
            }
            if let Some(bad) = scopes.iter().find(|s| {
                !s.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
            }) {
                return Err(error_page(
                    which,
                    &format!("Invalid scope \"{bad}\": scopes are separated by spaces."),
                ));
            }
            scopes
        }
        Which::Bitbucket => Vec::new(),
    };
    Ok(AuthRequest {
        client_id: id.to_string(),
        redirect_uri: redirect_uri.to_string(),
        state: param(params, "state").map(str::to_string),
        scopes,
        challenge,
    })
}

async fn authorize_page(
    which: Which,
    State(state): State<Arc<SimState>>,
    Query(params): Query<super::Query>,
) -> Response {
    let request = match validate(which, &params) {
        Ok(r) => r,
        Err(page) => return page,
    };
    // Buddy grants the scopes asked for; Bitbucket the consumer's permissions, whatever is asked.
    let scopes = match which {
        Which::Buddy => request.scopes.clone(),
        Which::Bitbucket => lock(&state.oauth).bitbucket_scopes.clone(),
    };
    let (action, allow, deny) = match which {
        Which::Buddy => (BUDDY_AUTHORIZE_PATH, "Allow", "Deny"),
        Which::Bitbucket => (BITBUCKET_AUTHORIZE_PATH, "Grant access", "Cancel"),
    };
    let back_to = url::Url::parse(&request.redirect_uri)
        .ok()
        .and_then(|u| {
            Some(format!(
                "{}{}",
                u.host_str()?,
                u.port().map(|p| format!(":{p}")).unwrap_or_default()
            ))
        })
        .unwrap_or_default();
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1><b>devgate</b> {}</h1>\n<p class=\"muted\">An application registered as <code>{}</code>. It will be able to:</p>\n<ul id=\"scopes\">\n",
        match which {
            Which::Buddy => "wants to access your Buddy.Works account",
            Which::Bitbucket => "is requesting access to your Bitbucket account",
        },
        escape(&request.client_id),
    );
    for scope in &scopes {
        let _ = writeln!(
            body,
            "<li>{} <code>{}</code></li>",
            escape(scope_meaning(which, scope)),
            escape(scope)
        );
    }
    let _ = write!(body, "</ul>\n<form method=\"post\" action=\"{action}\">\n");
    for key in CARRIED {
        if let Some(value) = param(&params, key) {
            let _ = writeln!(
                body,
                "<input type=\"hidden\" name=\"{key}\" value=\"{}\">",
                escape(value)
            );
        }
    }
    let _ = writeln!(
        body,
        "<p><label for=\"account\">Signed in as</label>\n<select id=\"account\" name=\"account\">"
    );
    for (i, account) in Account::all(which).into_iter().enumerate() {
        let _ = writeln!(
            body,
            "<option value=\"{}\"{}>{}</option>",
            account.login(),
            if i == 0 { " selected" } else { "" },
            escape(account.label())
        );
    }
    let _ = write!(
        body,
        "</select></p>\n<p class=\"buttons\"><button type=\"submit\" id=\"allow\" name=\"decision\" value=\"allow\">{allow}</button>\n\
         <button type=\"submit\" id=\"deny\" name=\"decision\" value=\"deny\" class=\"secondary\">{deny}</button></p>\n\
         </form>\n<p class=\"muted\">Either way you go back to <b id=\"redirect-host\">{}</b>.</p>\n",
        escape(&back_to)
    );
    let title = match which {
        Which::Buddy => "Authorize application",
        Which::Bitbucket => "Grant access",
    };
    provider_page(which, StatusCode::OK, title, &body)
}

/// What a scope lets the application do, in the provider's words (the sim's own phrasing).
fn scope_meaning(which: Which, scope: &str) -> &'static str {
    match (which, scope) {
        (Which::Buddy, "WORKSPACE") => "View your workspaces, their members and projects",
        (Which::Buddy, "USER_INFO") => "View your profile: name, email and avatar",
        (Which::Buddy, "EXECUTION_INFO") => "View pipelines, their runs and logs",
        (Which::Buddy, "EXECUTION_RUN") => "Run, stop, retry and approve pipelines",
        (Which::Buddy, "EXECUTION_MANAGE") => "Add, change and delete pipelines",
        (Which::Buddy, "VARIABLE_INFO") => "View environment variables",
        (Which::Buddy, "INTEGRATION_INFO") => "View integrations",
        (Which::Buddy, "TOKEN_INFO") => "View your personal access tokens",
        (Which::Buddy, "PIPELINE_READ") => "View pipelines, their runs and logs",
        (Which::Buddy, "PIPELINE_RUN") => "Run, stop, retry and approve pipelines",
        (Which::Buddy, "VARIABLE_READ") => "View environment variables",
        (Which::Buddy, "INTEGRATION_READ") => "View integrations",
        (Which::Buddy, "MEMBER_EMAIL") => "See the e-mail addresses of workspace members",
        (Which::Buddy, "USER_READ") => "View your profile: name, email and avatar",
        (Which::Buddy, "USER_PAT_READ") => "View your personal access tokens",
        (Which::Buddy, "MEMBER_EMAIL_READ") => "See the e-mail addresses of workspace members",
        (Which::Bitbucket, "account") => "Read your account information",
        (Which::Bitbucket, "repository") => "Read your repositories",
        (Which::Bitbucket, "repository:write") => "Read and modify your repositories",
        (Which::Bitbucket, "pullrequest") => "Read your pull requests",
        (Which::Bitbucket, "pullrequest:write") => "Read and modify your pull requests",
        (Which::Bitbucket, "pipeline") => "Read your pipelines",
        (Which::Bitbucket, "pipeline:write") => "Read and modify your pipelines",
        _ => "Access this part of your account",
    }
}

/// A page in the provider's own look (its name in a coloured bar, its colours and buttons), so a user
/// can tell it from devgate's pages, with a note that it is the simulated provider.
fn provider_page(which: Which, status: StatusCode, title: &str, body: &str) -> Response {
    let (brand, colour, text) = match which {
        Which::Buddy => ("Buddy.Works", "#1a86fd", "#1d2433"),
        Which::Bitbucket => ("Bitbucket", "#0052cc", "#172b4d"),
    };
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{title} | {brand} (simulated)</title>\n<style>\
         body{{margin:0;font-family:-apple-system,\"Segoe UI\",Roboto,Helvetica,Arial,sans-serif;color:{text};background:#f4f5f7}}\
         header{{background:{colour};color:#fff;padding:14px 24px;font-size:20px;font-weight:700;letter-spacing:.2px}}\
         .sim{{background:#fff4d6;color:#5e4b00;text-align:center;font-size:13px;padding:6px}}\
         main{{max-width:440px;margin:40px auto;background:#fff;border-radius:6px;box-shadow:0 1px 4px rgba(9,30,66,.25);padding:28px 32px}}\
         h1{{font-size:20px;font-weight:500;margin:0 0 12px}}.muted{{color:#6b778c;font-size:14px}}\
         ul{{padding-left:20px}}li{{margin:6px 0}}code{{font-size:12px;color:#6b778c}}\
         select{{width:100%;padding:6px;margin-top:4px}}.buttons{{display:flex;gap:8px;justify-content:flex-end}}\
         button{{background:{colour};color:#fff;border:0;border-radius:4px;padding:8px 16px;font-size:14px;cursor:pointer}}\
         button.secondary{{background:transparent;color:{text}}}\
         </style></head>\n<body>\n<header>{brand}</header>\n\
         <p class=\"sim\">Simulated {brand} of devgate's sandbox and tests: no real account is involved.</p>\n\
         <main>\n{body}</main>\n</body>\n</html>\n"
    );
    (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

async fn authorize_decision(
    which: Which,
    State(state): State<Arc<SimState>>,
    body: Bytes,
) -> Response {
    let params: super::Query = url::form_urlencoded::parse(&body).into_owned().collect();
    let request = match validate(which, &params) {
        Ok(r) => r,
        Err(page) => return page,
    };
    let account = match param(&params, "account") {
        None | Some("") => Account::first(which),
        Some(login) => match Account::parse(which, login) {
            Some(a) => a,
            None => return error_page(which, "Unknown account."),
        },
    };
    let mut pairs: Vec<(&str, String)> = match param(&params, "decision") {
        Some("allow") => {
            let mut oauth = lock(&state.oauth);
            let scopes = match which {
                Which::Buddy => request.scopes.clone(),
                Which::Bitbucket => oauth.bitbucket_scopes.clone(),
            };
            let code = random_hex::<20>();
            oauth.secrets.push(code.clone());
            oauth.codes.insert(
                code.clone(),
                Code {
                    provider: which,
                    client_id: request.client_id.clone(),
                    account,
                    redirect_uri: request.redirect_uri.clone(),
                    challenge: request.challenge.clone(),
                    scopes,
                    issued: Instant::now(),
                },
            );
            vec![("code", code)]
        }
        Some("deny") => vec![
            ("error", "access_denied".into()),
            (
                "error_description",
                "The user denied access to the application.".into(),
            ),
        ],
        _ => return error_page(which, "The form has no decision (allow or deny)."),
    };
    if let Some(s) = &request.state {
        pairs.push(("state", s.clone()));
    }
    let mut target = url::Url::parse(&request.redirect_uri).expect("validated");
    target.query_pairs_mut().extend_pairs(pairs);
    Redirect::to(target.as_str()).into_response()
}

fn error_page(which: Which, message: &str) -> Response {
    let body = format!(
        "<h1>Authorization error</h1>\n<p id=\"error\">{}</p>\n",
        escape(message)
    );
    provider_page(which, StatusCode::BAD_REQUEST, "Authorization error", &body)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

// ------------------------------------------------------------------------------------- token endpoint

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::PRAGMA, "no-cache"),
        ],
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

fn invalid_grant(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

fn invalid_client(which: Which) -> Response {
    let mut response = oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        match which {
            Which::Buddy => {
                "Client authentication failed: send client_id and client_secret in the form body."
            }
            Which::Bitbucket => {
                "Client authentication failed: send the consumer key and secret as HTTP Basic auth."
            }
        },
    );
    if which == Which::Bitbucket {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"Bitbucket OAuth\""),
        );
    }
    response
}

/// The form of a token or revoke request; anything but a form body reads as empty.
fn form(headers: &HeaderMap, body: &[u8]) -> super::Query {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        url::form_urlencoded::parse(body).into_owned().collect()
    } else {
        Vec::new()
    }
}

/// Checks the client's credentials in the provider's style: Buddy in the form body, Bitbucket as HTTP
/// Basic (percent-decoded, as RFC 6749 §2.3.1 encodes them). Returns the client id.
fn authenticate(
    which: Which,
    headers: &HeaderMap,
    form: &super::Query,
) -> Result<String, Response> {
    let (id, secret) = match which {
        Which::Buddy => (
            param(form, "client_id").map(str::to_string),
            param(form, "client_secret").map(str::to_string),
        ),
        Which::Bitbucket => {
            let basic = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Basic "))
                .and_then(|b| STANDARD.decode(b.trim()).ok())
                .and_then(|b| String::from_utf8(b).ok());
            match basic.as_deref().and_then(|b| b.split_once(':')) {
                Some((id, secret)) => (Some(decode(id)), Some(decode(secret))),
                None => (None, None),
            }
        }
    };
    match (id, secret) {
        (Some(id), Some(secret)) if id == client_id(which) && secret == client_secret(which) => {
            Ok(id)
        }
        _ => Err(invalid_client(which)),
    }
}

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

async fn token_endpoint(
    which: Which,
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = form(&headers, &body);
    let grant_type = param(&form, "grant_type").unwrap_or_default().to_string();
    let mut oauth = lock(&state.oauth);
    *oauth.token_requests[slot(which)]
        .entry(grant_type.clone())
        .or_default() += 1;
    let client = match authenticate(which, &headers, &form) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let reply = match grant_type.as_str() {
        "authorization_code" => exchange_code(which, &mut oauth, &client, &form),
        "refresh_token" => refresh(which, &mut oauth, &client, &form),
        "" if which == Which::Bitbucket => Err(invalid_grant("Unsupported grant type: None")),
        "" => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request has no grant_type (send a form body).",
        )),
        other => Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("Unsupported grant type: {other}"),
        )),
    };
    match reply {
        Ok(body) => (
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::PRAGMA, "no-cache"),
            ],
            Json(body),
        )
            .into_response(),
        Err(r) => r,
    }
}

fn exchange_code(
    which: Which,
    oauth: &mut OAuthState,
    client: &str,
    form: &super::Query,
) -> Result<Value, Response> {
    let presented = param(form, "code").unwrap_or_default();
    // Single use: a code is gone once presented, whatever happens next.
    let code = oauth
        .codes
        .remove(presented)
        .filter(|c| c.provider == which)
        .ok_or_else(|| {
            invalid_grant(&oauth.described(
                which,
                "The authorization code is invalid or was already used.",
                presented,
            ))
        })?;
    if code.client_id != client {
        return Err(invalid_grant(
            "The authorization code was issued to another client.",
        ));
    }
    if code.issued.elapsed() > CODE_TTL {
        return Err(invalid_grant("The authorization code has expired."));
    }
    if param(form, "redirect_uri") != Some(code.redirect_uri.as_str()) {
        return Err(invalid_grant(
            "redirect_uri does not match the one of the authorization request.",
        ));
    }
    if let Some(challenge) = &code.challenge {
        let verifier = param(form, "code_verifier")
            .ok_or_else(|| invalid_grant("The request has no code_verifier (PKCE)."))?;
        oauth.secrets.push(verifier.to_string());
        if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != *challenge {
            return Err(invalid_grant(
                "code_verifier does not match the code_challenge (PKCE).",
            ));
        }
    }
    oauth.grants.push(Grant {
        provider: which,
        account: code.account,
        client_id: code.client_id,
        scopes: code.scopes,
        revoked: false,
    });
    let grant = oauth.grants.len() - 1;
    let access = oauth.new_token(grant, Kind::Access);
    let refresh = oauth.new_token(grant, Kind::Refresh);
    Ok(token_json(
        which,
        oauth,
        grant,
        "authorization_code",
        access,
        Some(refresh),
    ))
}

fn refresh(
    which: Which,
    oauth: &mut OAuthState,
    client: &str,
    form: &super::Query,
) -> Result<Value, Response> {
    let presented = param(form, "refresh_token").unwrap_or_default();
    let dead = |oauth: &mut OAuthState| {
        oauth.dead_refresh[slot(which)] += 1;
        invalid_grant(&oauth.described(
            which,
            "The refresh token is invalid, revoked or was already used.",
            presented,
        ))
    };
    let Some(token) = oauth
        .tokens
        .get(presented)
        .filter(|t| t.kind == Kind::Refresh)
    else {
        return Err(invalid_grant(&oauth.described(
            which,
            "The refresh token is invalid.",
            presented,
        )));
    };
    let grant = token.grant;
    let token_dead = token.dead;
    let g = &oauth.grants[grant];
    if g.provider != which {
        return Err(invalid_grant("The refresh token is invalid."));
    }
    if g.client_id != client {
        return Err(invalid_grant(
            "The refresh token was issued to another client.",
        ));
    }
    if token_dead || g.revoked {
        return Err(dead(oauth));
    }
    let access = oauth.new_token(grant, Kind::Access);
    let refresh = if oauth.omit_refresh[slot(which)] {
        None
    } else {
        match which {
            Which::Buddy => Some(presented.to_string()),
            Which::Bitbucket => {
                if let Some(old) = oauth.tokens.get_mut(presented) {
                    old.dead = true;
                }
                Some(oauth.new_token(grant, Kind::Refresh))
            }
        }
    };
    Ok(token_json(
        which,
        oauth,
        grant,
        "refresh_token",
        access,
        refresh,
    ))
}

fn token_json(
    which: Which,
    oauth: &OAuthState,
    grant: usize,
    grant_type: &str,
    access: String,
    refresh: Option<String>,
) -> Value {
    let i = slot(which);
    let expires_in = oauth.expiring[i].then_some(oauth.lifetime[i]);
    let mut body = match which {
        Which::Buddy => json!({"access_token": access, "token_type": "Bearer"}),
        Which::Bitbucket => json!({
            "access_token": access,
            "scopes": oauth.grants[grant].scopes.join(" "),
            "token_type": "bearer",
            "state": grant_type,
        }),
    };
    if let Some(e) = expires_in {
        body["expires_in"] = json!(e);
    }
    if let Some(r) = refresh {
        body["refresh_token"] = json!(r);
        if which == Which::Buddy && expires_in.is_some() {
            body["refresh_token_expires_in"] = json!(BUDDY_REFRESH_LIFETIME);
        }
    }
    body
}

/// Buddy's `POST /oauth2/revoke`: with the client's credentials, kills the grant of the token (access
/// or refresh). Unknown tokens are a 200 too (RFC 7009).
async fn revoke(
    which: Which,
    State(state): State<Arc<SimState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = form(&headers, &body);
    let client = match authenticate(which, &headers, &form) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let token = param(&form, "token")
        .or_else(|| param(&form, "access_token"))
        .unwrap_or_default();
    if token.is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The request has no token.",
        );
    }
    let mut oauth = lock(&state.oauth);
    let known = oauth
        .tokens
        .get(token)
        .map(|t| (t.grant, t.kind))
        .filter(|(g, _)| {
            oauth.grants[*g].provider == which && oauth.grants[*g].client_id == client
        });
    let revocation = Revocation {
        kind: match known.map(|(_, k)| k) {
            Some(Kind::Access) => "access_token",
            Some(Kind::Refresh) => "refresh_token",
            None => "unknown",
        }
        .into(),
        hint: param(&form, "token_type_hint").map(str::to_string),
        account: known.map(|(g, _)| oauth.grants[g].account),
    };
    oauth.revocations[slot(which)].push(revocation);
    if let Some((grant, _)) = known {
        oauth.revoke_grant(grant);
    }
    (StatusCode::OK, "Token successfully revoked").into_response()
}

// ------------------------------------------------------------------------------------------- scopes

/// The classic Bitbucket scope a sim API route needs (paths as received, under `/2.0`).
pub(crate) fn required_scope(method: &Method, path: &str) -> Option<&'static str> {
    let path = path.strip_prefix("/2.0")?;
    let read = method == Method::GET || method == Method::HEAD;
    if path == "/user" || path.starts_with("/user/") {
        return Some("account");
    }
    let rest = path.strip_prefix("/repositories/")?;
    let segments: Vec<&str> = rest.split('/').collect();
    let section = segments.get(2).copied().unwrap_or("");
    let last = segments.last().copied().unwrap_or("");
    Some(match (section, read) {
        ("pullrequests", true) => "pullrequest",
        // Commenting is a `pullrequest` right; creating, updating, approving, merging need write.
        ("pullrequests", false) if last == "comments" => "pullrequest",
        ("pullrequests", false) => "pullrequest:write",
        ("pipelines", true) => "pipeline",
        ("pipelines", false) => "pipeline:write",
        (_, true) => "repository",
        (_, false) => "repository:write",
    })
}

/// Whether granted scopes cover `required`, with Bitbucket's implications.
pub(crate) fn grants_scope(granted: &[String], required: &str) -> bool {
    fn implied(scope: &str) -> &'static [&'static str] {
        match scope {
            "pullrequest:write" => &["pullrequest", "repository:write", "repository"],
            "pullrequest" => &["repository"],
            "repository:write" => &["repository"],
            "project" => &["repository"],
            "snippet:write" => &["snippet"],
            _ => &[],
        }
    }
    granted
        .iter()
        .any(|g| g == required || implied(g).contains(&required))
}

// ---------------------------------------------------------------------------------------- redaction

/// A form body as a JSON object for [`super::Recorded`], secret values replaced by `[redacted]`.
pub(crate) fn redacted_form(body: &[u8]) -> Value {
    let mut object = serde_json::Map::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        let value = if SECRET_FIELDS.contains(&k.as_ref()) {
            REDACTED.to_string()
        } else {
            v.into_owned()
        };
        object.entry(k.into_owned()).or_insert(Value::String(value));
    }
    Value::Object(object)
}

/// A JSON body for [`super::Recorded`]: on OAuth routes, top-level secret fields are redacted.
pub(crate) fn redacted_json(mut body: Value, oauth_route: bool) -> Value {
    if oauth_route && let Some(object) = body.as_object_mut() {
        for (k, v) in object.iter_mut() {
            if SECRET_FIELDS.contains(&k.as_str()) {
                *v = json!(REDACTED);
            }
        }
    }
    body
}

/// A raw query string for [`super::Recorded`]: values of secret parameters redacted, the rest as sent.
pub(crate) fn redacted_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| {
            let key = pair.split_once('=').map_or(pair, |(k, _)| k);
            let decoded = decode(key);
            if SECRET_FIELDS.contains(&decoded.as_str()) {
                format!("{key}={}", "%5Bredacted%5D")
            } else {
                pair.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

// ------------------------------------------------------------------------------------------- tests

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{BITBUCKET_TOKEN, BUDDY_TOKEN, Fault, Sim};

    fn client() -> reqwest::Client {
        crate::app::install_tls_provider();
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    }

    const REDIRECT: &str = "http://127.0.0.1:9/integration-callback";

    fn origin(sim: &Sim, which: Which) -> String {
        match which {
            Which::Buddy => sim.buddy_url.clone(),
            Which::Bitbucket => sim.bitbucket_url.trim_end_matches("/2.0").to_string(),
        }
    }

    fn api(sim: &Sim, which: Which) -> String {
        match which {
            Which::Buddy => sim.buddy_url.clone(),
            Which::Bitbucket => sim.bitbucket_url.clone(),
        }
    }

    fn authorize_url(sim: &Sim, which: Which) -> String {
        let path = match which {
            Which::Buddy => BUDDY_AUTHORIZE_PATH,
            Which::Bitbucket => BITBUCKET_AUTHORIZE_PATH,
        };
        format!("{}{path}", origin(sim, which))
    }

    fn token_url(sim: &Sim, which: Which) -> String {
        let path = match which {
            Which::Buddy => BUDDY_TOKEN_PATH,
            Which::Bitbucket => BITBUCKET_TOKEN_PATH,
        };
        format!("{}{path}", origin(sim, which))
    }

    struct Pkce {
        verifier: String,
        challenge: String,
    }

    fn pkce() -> Pkce {
        let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        Pkce {
            verifier,
            challenge,
        }
    }

    fn authorize_params(which: Which, pkce: Option<&Pkce>) -> Vec<(&'static str, String)> {
        let mut p = vec![
            ("client_id", client_id(which).to_string()),
            ("response_type", "code".to_string()),
            ("redirect_uri", REDIRECT.to_string()),
            ("state", "st-123".to_string()),
        ];
        if which == Which::Buddy {
            p.push(("type", "web_server".into()));
            p.push(("scope", "WORKSPACE USER_INFO".into()));
        }
        if let Some(pkce) = pkce {
            p.push(("code_challenge", pkce.challenge.clone()));
            p.push(("code_challenge_method", "S256".into()));
        }
        p
    }

    /// GETs the consent page, then POSTs its form with the account and decision; returns the redirect's
    /// query pairs.
    async fn consent(
        sim: &Sim,
        which: Which,
        pkce: Option<&Pkce>,
        account: &str,
        decision: &str,
    ) -> HashMap<String, String> {
        let params = authorize_params(which, pkce);
        let page = client()
            .get(authorize_url(sim, which))
            .query(&params)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        let brand = match which {
            Which::Buddy => "Buddy.Works",
            Which::Bitbucket => "Bitbucket",
        };
        assert!(html.contains(&format!("<header>{brand}</header>")));
        assert!(html.contains("<b>devgate</b> ") && html.contains(brand));
        assert!(html.contains("<select id=\"account\" name=\"account\">"));
        assert!(html.contains("name=\"decision\" value=\"allow\""));
        assert!(html.contains("name=\"decision\" value=\"deny\""));
        for (k, v) in &params {
            assert!(
                html.contains(&format!("name=\"{k}\" value=\"{}\"", escape(v))),
                "{k} carried"
            );
        }
        let mut form = params.clone();
        form.push(("account", account.into()));
        form.push(("decision", decision.into()));
        let response = client()
            .post(authorize_url(sim, which))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        let location = response.headers()[header::LOCATION].to_str().unwrap();
        assert!(location.starts_with(REDIRECT), "{location}");
        url::Url::parse(location)
            .unwrap()
            .query_pairs()
            .into_owned()
            .collect()
    }

    /// Sends a token request with the provider's client authentication.
    async fn token_request(sim: &Sim, which: Which, fields: &[(&str, &str)]) -> (u16, Value) {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        let mut request = client().post(token_url(sim, which));
        match which {
            Which::Buddy => {
                form.push(("client_id", BUDDY_CLIENT_ID));
                form.push(("client_secret", BUDDY_CLIENT_SECRET));
            }
            Which::Bitbucket => {
                request = request.basic_auth(BITBUCKET_CLIENT_ID, Some(BITBUCKET_CLIENT_SECRET));
            }
        }
        let response = request.form(&form).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn exchange(sim: &Sim, which: Which, code: &str, verifier: Option<&str>) -> (u16, Value) {
        let mut fields = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
        ];
        if let Some(v) = verifier {
            fields.push(("code_verifier", v));
        }
        token_request(sim, which, &fields).await
    }

    async fn refresh_with(sim: &Sim, which: Which, token: &str) -> (u16, Value) {
        token_request(
            sim,
            which,
            &[("grant_type", "refresh_token"), ("refresh_token", token)],
        )
        .await
    }

    /// Runs the whole code flow with PKCE for an account; returns the token response.
    async fn connect(sim: &Sim, which: Which, account: &str) -> Value {
        let pkce = pkce();
        let redirect = consent(sim, which, Some(&pkce), account, "allow").await;
        assert_eq!(redirect["state"], "st-123");
        let (status, body) = exchange(sim, which, &redirect["code"], Some(&pkce.verifier)).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn whoami(sim: &Sim, which: Which, token: &str) -> (u16, Value) {
        let response = client()
            .get(format!("{}/user", api(sim, which)))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    fn s(v: &Value) -> &str {
        v.as_str().expect("a string")
    }

    #[tokio::test]
    async fn buddy_code_flow_issues_tokens_for_the_chosen_account() {
        let sim = Sim::start().await.unwrap();
        let body = connect(&sim, Which::Buddy, "nina").await;
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3600);
        assert_eq!(body["refresh_token_expires_in"], BUDDY_REFRESH_LIFETIME);
        assert!(body.get("scope").is_none() && body.get("scopes").is_none());
        let access = s(&body["access_token"]);
        assert_eq!(access.len(), 64);
        assert!(access.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(access, s(&body["refresh_token"]));

        let (status, user) = whoami(&sim, Which::Buddy, access).await;
        assert_eq!(status, 200);
        assert_eq!(user["id"], 2);
        assert_eq!(user["name"], "Nina Alvarez");
        // Nina is only in acme.
        let ws: Value = client()
            .get(format!("{}/workspaces", sim.buddy_url))
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let domains: Vec<&str> = ws["workspaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| s(&w["domain"]))
            .collect();
        assert_eq!(domains, ["acme"]);

        // Mike through OAuth, and the static token is Mike too.
        let mike = connect(&sim, Which::Buddy, "mike").await;
        assert_ne!(mike["access_token"], body["access_token"]);
        let (_, user) = whoami(&sim, Which::Buddy, s(&mike["access_token"])).await;
        assert_eq!(user["id"], 1);
        let (_, user) = whoami(&sim, Which::Buddy, BUDDY_TOKEN).await;
        assert_eq!(user["name"], "Mike Benson");
        assert_eq!(sim.state.live_grants(Account::Nina), 1);
        assert_eq!(
            sim.state.token_requests(Which::Buddy, "authorization_code"),
            2
        );
        let last = sim.requests().pop().unwrap();
        assert_eq!(last.account.as_deref(), Some("mike"));
    }

    #[tokio::test]
    async fn bitbucket_code_flow_issues_tokens_for_the_chosen_account() {
        let sim = Sim::start().await.unwrap();
        let body = connect(&sim, Which::Bitbucket, "ben").await;
        assert_eq!(body["token_type"], "bearer");
        assert_eq!(body["state"], "authorization_code");
        assert_eq!(body["expires_in"], 7200);
        assert_eq!(body["scopes"], DEFAULT_BITBUCKET_SCOPES.join(" "));
        let access = s(&body["access_token"]);
        let (status, user) = whoami(&sim, Which::Bitbucket, access).await;
        assert_eq!(status, 200);
        assert_eq!(user["display_name"], "Ben Ortiz");
        assert_eq!(user["nickname"], "bortiz");
        let (_, ann) = whoami(&sim, Which::Bitbucket, BITBUCKET_TOKEN).await;
        assert_eq!(ann["display_name"], "Ann Dev");
        assert_ne!(user["uuid"], ann["uuid"]);
        assert_ne!(user["account_id"], ann["account_id"]);

        let workspaces = |token: String| {
            let url = format!("{}/user/workspaces", sim.bitbucket_url);
            async move {
                let v: Value = client()
                    .get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                v["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|w| {
                        (
                            s(&w["workspace"]["slug"]).to_string(),
                            w["administrator"].as_bool().unwrap(),
                        )
                    })
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            workspaces(access.to_string()).await,
            [("acme".to_string(), false), ("bortiz".to_string(), true)]
        );
        assert_eq!(
            workspaces(BITBUCKET_TOKEN.to_string()).await,
            [("acme".to_string(), false), ("acme-labs".to_string(), true)]
        );
        let ann_oauth = connect(&sim, Which::Bitbucket, "ann").await;
        let (_, user) = whoami(&sim, Which::Bitbucket, s(&ann_oauth["access_token"])).await;
        assert_eq!(user["display_name"], "Ann Dev");
    }

    #[tokio::test]
    async fn pkce_mismatch_missing_verifier_and_code_reuse_are_invalid_grant() {
        let sim = Sim::start().await.unwrap();
        for which in [Which::Buddy, Which::Bitbucket] {
            let account = Account::first(which).login();
            let pkce = pkce();
            let redirect = consent(&sim, which, Some(&pkce), account, "allow").await;
            let (status, body) =
                exchange(&sim, which, &redirect["code"], Some("not-the-verifier")).await;
            assert_eq!(
                (status, s(&body["error"])),
                (400, "invalid_grant"),
                "{which:?}"
            );
            // The code was spent by the failed attempt.
            let (status, body) =
                exchange(&sim, which, &redirect["code"], Some(&pkce.verifier)).await;
            assert_eq!((status, s(&body["error"])), (400, "invalid_grant"));

            let redirect = consent(&sim, which, Some(&pkce), account, "allow").await;
            let (status, body) = exchange(&sim, which, &redirect["code"], None).await;
            assert_eq!((status, s(&body["error"])), (400, "invalid_grant"));

            // Without PKCE; then reuse.
            let redirect = consent(&sim, which, None, account, "allow").await;
            let (status, _) = exchange(&sim, which, &redirect["code"], None).await;
            assert_eq!(status, 200);
            let (status, body) = exchange(&sim, which, &redirect["code"], None).await;
            assert_eq!((status, s(&body["error"])), (400, "invalid_grant"));

            // Redirect URI must match.
            let redirect = consent(&sim, which, None, account, "allow").await;
            let (status, body) = token_request(
                &sim,
                which,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &redirect["code"]),
                    ("redirect_uri", "http://127.0.0.1:9/elsewhere"),
                ],
            )
            .await;
            assert_eq!((status, s(&body["error"])), (400, "invalid_grant"));
            // No error message names the code.
            assert!(!body.to_string().contains(&redirect["code"]));
        }
    }

    #[tokio::test]
    async fn client_authentication_follows_each_providers_style() {
        let sim = Sim::start().await.unwrap();
        // Bitbucket: credentials in the form instead of Basic → 401.
        let redirect = consent(&sim, Which::Bitbucket, None, "ann", "allow").await;
        let response = client()
            .post(token_url(&sim, Which::Bitbucket))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &redirect["code"]),
                ("redirect_uri", REDIRECT),
                ("client_id", BITBUCKET_CLIENT_ID),
                ("client_secret", BITBUCKET_CLIENT_SECRET),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
        // Wrong Basic secret → 401, and the message does not echo it.
        let response = client()
            .post(token_url(&sim, Which::Bitbucket))
            .basic_auth(BITBUCKET_CLIENT_ID, Some("guessed-secret"))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        assert!(!response.text().await.unwrap().contains("guessed-secret"));

        // Buddy: no secret → 401; Basic instead of the form → 401.
        let redirect = consent(&sim, Which::Buddy, None, "mike", "allow").await;
        let response = client()
            .post(token_url(&sim, Which::Buddy))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &redirect["code"]),
                ("redirect_uri", REDIRECT),
                ("client_id", BUDDY_CLIENT_ID),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client");
        let response = client()
            .post(token_url(&sim, Which::Buddy))
            .basic_auth(BUDDY_CLIENT_ID, Some(BUDDY_CLIENT_SECRET))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);

        // Unknown grant types; Bitbucket's answer to a JSON body.
        let (status, body) = token_request(&sim, Which::Buddy, &[("grant_type", "password")]).await;
        assert_eq!((status, s(&body["error"])), (400, "unsupported_grant_type"));
        let response = client()
            .post(token_url(&sim, Which::Bitbucket))
            .basic_auth(BITBUCKET_CLIENT_ID, Some(BITBUCKET_CLIENT_SECRET))
            .json(&json!({"grant_type": "refresh_token"}))
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error_description"], "Unsupported grant type: None");
    }

    #[tokio::test]
    async fn bitbucket_refresh_tokens_rotate() {
        let sim = Sim::start().await.unwrap();
        let first = connect(&sim, Which::Bitbucket, "ben").await;
        let old = s(&first["refresh_token"]);
        let (status, second) = refresh_with(&sim, Which::Bitbucket, old).await;
        assert_eq!(status, 200, "{second}");
        assert_eq!(second["state"], "refresh_token");
        assert_eq!(second["scopes"], first["scopes"]);
        let new = s(&second["refresh_token"]);
        assert_ne!(new, old);
        assert_ne!(second["access_token"], first["access_token"]);
        let (_, user) = whoami(&sim, Which::Bitbucket, s(&second["access_token"])).await;
        assert_eq!(user["display_name"], "Ben Ortiz");

        let (status, body) = refresh_with(&sim, Which::Bitbucket, old).await;
        assert_eq!((status, s(&body["error"])), (400, "invalid_grant"));
        assert_eq!(sim.state.dead_refresh_token_uses(Which::Bitbucket), 1);
        let (status, third) = refresh_with(&sim, Which::Bitbucket, new).await;
        assert_eq!(status, 200);
        assert_eq!(
            sim.state.token_requests(Which::Bitbucket, "refresh_token"),
            3
        );

        // With the refresh token left out, the old one stays good.
        sim.state.set_omit_refresh_token(Which::Bitbucket, true);
        let current = s(&third["refresh_token"]);
        let (status, body) = refresh_with(&sim, Which::Bitbucket, current).await;
        assert_eq!(status, 200);
        assert!(body.get("refresh_token").is_none());
        let (status, _) = refresh_with(&sim, Which::Bitbucket, current).await;
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn buddy_refresh_keeps_the_refresh_token_and_revoke_kills_the_grant() {
        let sim = Sim::start().await.unwrap();
        let first = connect(&sim, Which::Buddy, "mike").await;
        let refresh = s(&first["refresh_token"]);
        let (status, second) = refresh_with(&sim, Which::Buddy, refresh).await;
        assert_eq!(status, 200);
        assert_eq!(second["refresh_token"], refresh);
        assert_ne!(second["access_token"], first["access_token"]);
        // The earlier access token still works until it expires.
        let (status, _) = whoami(&sim, Which::Buddy, s(&first["access_token"])).await;
        assert_eq!(status, 200);

        sim.state.set_omit_refresh_token(Which::Buddy, true);
        let (status, third) = refresh_with(&sim, Which::Buddy, refresh).await;
        assert_eq!(status, 200);
        assert!(third.get("refresh_token").is_none());
        sim.state.set_omit_refresh_token(Which::Buddy, false);

        let response = client()
            .post(format!("{}{BUDDY_REVOKE_PATH}", sim.buddy_url))
            .form(&[
                ("token", s(&third["access_token"])),
                ("token_type_hint", "access_token"),
                ("client_id", BUDDY_CLIENT_ID),
                ("client_secret", BUDDY_CLIENT_SECRET),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let (status, body) = whoami(&sim, Which::Buddy, s(&third["access_token"])).await;
        assert_eq!(status, 401);
        assert_eq!(body["errors"][0]["message"], "Invalid access token");
        let (status, body) = refresh_with(&sim, Which::Buddy, refresh).await;
        assert_eq!((status, s(&body["error"])), (400, "invalid_grant"));
        assert_eq!(sim.state.dead_refresh_token_uses(Which::Buddy), 1);
        assert_eq!(sim.state.live_grants(Account::Mike), 0);
        // The static token is untouched.
        let (status, _) = whoami(&sim, Which::Buddy, BUDDY_TOKEN).await;
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn deny_redirects_with_access_denied() {
        let sim = Sim::start().await.unwrap();
        for which in [Which::Buddy, Which::Bitbucket] {
            let redirect = consent(&sim, which, None, Account::first(which).login(), "deny").await;
            assert_eq!(redirect["error"], "access_denied");
            assert!(!redirect["error_description"].is_empty());
            assert_eq!(redirect["state"], "st-123");
            assert!(!redirect.contains_key("code"));
        }
    }

    #[tokio::test]
    async fn bad_authorize_requests_get_an_error_page_not_a_redirect() {
        let sim = Sim::start().await.unwrap();
        for which in [Which::Buddy, Which::Bitbucket] {
            let good = authorize_params(which, None);
            let cases: Vec<Vec<(&str, String)>> = vec![
                good.iter()
                    .map(|(k, v)| {
                        (
                            *k,
                            if *k == "client_id" {
                                "nope".into()
                            } else {
                                v.clone()
                            },
                        )
                    })
                    .collect(),
                good.iter()
                    .filter(|(k, _)| *k != "redirect_uri")
                    .cloned()
                    .collect(),
                good.iter()
                    .filter(|(k, _)| *k != "response_type")
                    .cloned()
                    .collect(),
                good.iter()
                    .cloned()
                    .chain([
                        ("code_challenge", pkce().challenge),
                        ("code_challenge_method", "plain".into()),
                    ])
                    .collect(),
            ];
            for params in cases {
                let response = client()
                    .get(authorize_url(&sim, which))
                    .query(&params)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 400, "{which:?} {params:?}");
                assert!(response.headers().get(header::LOCATION).is_none());
                assert!(
                    response
                        .text()
                        .await
                        .unwrap()
                        .contains("Authorization error")
                );
            }
        }
        // Buddy's scopes must be space-separated names.
        let mut params = authorize_params(Which::Buddy, None);
        params.retain(|(k, _)| *k != "scope");
        params.push(("scope", "WORKSPACE+USER_INFO".into()));
        let response = client()
            .get(authorize_url(&sim, Which::Buddy))
            .query(&params)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
    }

    #[tokio::test]
    async fn expiry_knob_gives_the_providers_expired_answer() {
        let sim = Sim::start().await.unwrap();
        let buddy = connect(&sim, Which::Buddy, "nina").await;
        let bitbucket = connect(&sim, Which::Bitbucket, "ann").await;
        sim.state.expire_access_tokens(Account::Nina);
        sim.state.expire_access_tokens(Account::Ann);
        let (status, body) = whoami(&sim, Which::Buddy, s(&buddy["access_token"])).await;
        assert_eq!(status, 401);
        assert_eq!(body["errors"][0]["message"], "Access token expired");
        let (status, body) = whoami(&sim, Which::Bitbucket, s(&bitbucket["access_token"])).await;
        assert_eq!(status, 401);
        assert_eq!(
            body["error"]["message"],
            "Access token expired. Use your refresh token to obtain a new access token."
        );
        // Static tokens are not OAuth tokens; refresh still works and gives a live token.
        let (status, _) = whoami(&sim, Which::Bitbucket, BITBUCKET_TOKEN).await;
        assert_eq!(status, 200);
        let (_, fresh) = refresh_with(&sim, Which::Bitbucket, s(&bitbucket["refresh_token"])).await;
        let (status, _) = whoami(&sim, Which::Bitbucket, s(&fresh["access_token"])).await;
        assert_eq!(status, 200);

        // Lifetime 0: born expired, and says so.
        sim.state.set_token_lifetime(Which::Buddy, 0);
        let (_, short) = refresh_with(&sim, Which::Buddy, s(&buddy["refresh_token"])).await;
        assert_eq!(short["expires_in"], 0);
        let (status, _) = whoami(&sim, Which::Buddy, s(&short["access_token"])).await;
        assert_eq!(status, 401);
        // Tokens that never expire: no expires_in.
        sim.state.set_expiring_tokens(Which::Buddy, false);
        let (_, forever) = refresh_with(&sim, Which::Buddy, s(&buddy["refresh_token"])).await;
        assert!(forever.get("expires_in").is_none());
        assert!(forever.get("refresh_token_expires_in").is_none());
        let (status, _) = whoami(&sim, Which::Buddy, s(&forever["access_token"])).await;
        assert_eq!(status, 200);
        // An unknown token is the other message.
        let (status, body) = whoami(&sim, Which::Bitbucket, "f00d").await;
        assert_eq!(status, 401);
        assert_eq!(
            body["error"]["message"],
            "Token is invalid, expired, or not supported for this endpoint."
        );
    }

    #[tokio::test]
    async fn revoke_knob_makes_refresh_invalid_grant() {
        let sim = Sim::start().await.unwrap();
        let ben = connect(&sim, Which::Bitbucket, "ben").await;
        let ann = connect(&sim, Which::Bitbucket, "ann").await;
        sim.state.revoke_grants(Account::Ben);
        let (status, _) = whoami(&sim, Which::Bitbucket, s(&ben["access_token"])).await;
        assert_eq!(status, 401);
        let (status, body) = refresh_with(&sim, Which::Bitbucket, s(&ben["refresh_token"])).await;
        assert_eq!((status, s(&body["error"])), (400, "invalid_grant"));
        assert_eq!(sim.state.dead_refresh_token_uses(Which::Bitbucket), 1);
        // Ann's grant is untouched.
        let (status, _) = whoami(&sim, Which::Bitbucket, s(&ann["access_token"])).await;
        assert_eq!(status, 200);
        let (status, _) = refresh_with(&sim, Which::Bitbucket, s(&ann["refresh_token"])).await;
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn narrowed_bitbucket_scopes_are_granted_and_enforced() {
        let sim = Sim::start().await.unwrap();
        sim.state.set_bitbucket_scopes(&["account", "pullrequest"]);
        let page = client()
            .get(authorize_url(&sim, Which::Bitbucket))
            .query(&authorize_params(Which::Bitbucket, None))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            page.contains("<code>pullrequest</code>") && !page.contains("<code>pipeline</code>")
        );
        let body = connect(&sim, Which::Bitbucket, "ann").await;
        assert_eq!(body["scopes"], "account pullrequest");
        let token = s(&body["access_token"]);
        let get = |path: &str| {
            client()
                .get(format!("{}{path}", sim.bitbucket_url))
                .bearer_auth(token)
                .send()
        };
        let response = get("/repositories/acme/api/pullrequests").await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-oauth-scopes"], "account, pullrequest");
        // pullrequest implies repository (read).
        assert_eq!(get("/repositories/acme/api").await.unwrap().status(), 200);
        let response = get("/repositories/acme/api/pipelines").await.unwrap();
        assert_eq!(response.status(), 403);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["detail"]["required"], json!(["pipeline"]));
        let response = client()
            .post(format!(
                "{}/repositories/acme/api/pullrequests/1/approve",
                sim.bitbucket_url
            ))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403);
    }

    #[tokio::test]
    async fn token_endpoint_faults_apply_and_oauth_requests_are_recorded_without_secrets() {
        let sim = Sim::start().await.unwrap();
        let first = connect(&sim, Which::Bitbucket, "ann").await;
        let buddy = connect(&sim, Which::Buddy, "mike").await;
        sim.state.add_fault(Fault::status(
            Which::Bitbucket,
            BITBUCKET_TOKEN_PATH,
            503,
            1,
        ));
        let (status, _) = refresh_with(&sim, Which::Bitbucket, s(&first["refresh_token"])).await;
        assert_eq!(status, 503);
        // The faulted request never reached the handler: the refresh token did not rotate.
        let (status, second) =
            refresh_with(&sim, Which::Bitbucket, s(&first["refresh_token"])).await;
        assert_eq!(status, 200);
        let (_, _) = refresh_with(&sim, Which::Buddy, s(&buddy["refresh_token"])).await;
        let response = client()
            .post(format!("{}{BUDDY_REVOKE_PATH}", sim.buddy_url))
            .form(&[
                ("token", s(&buddy["access_token"])),
                ("client_id", BUDDY_CLIENT_ID),
                ("client_secret", BUDDY_CLIENT_SECRET),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);

        let requests = sim.requests();
        let token_posts: Vec<_> = requests
            .iter()
            .filter(|r| r.path == BITBUCKET_TOKEN_PATH)
            .collect();
        assert_eq!(token_posts.len(), 3);
        assert_eq!(
            token_posts[1].body.as_ref().unwrap()["grant_type"],
            "refresh_token"
        );
        assert_eq!(token_posts[1].auth, "Basic");
        assert!(requests.iter().any(|r| {
            r.path == BUDDY_AUTHORIZE_PATH
                && r.method == "GET"
                && r.query
                    .as_deref()
                    .unwrap()
                    .contains("client_id=sim-buddy-client")
        }));
        let buddy_exchange = requests
            .iter()
            .find(|r| r.path == BUDDY_TOKEN_PATH)
            .and_then(|r| r.body.clone())
            .unwrap();
        assert_eq!(buddy_exchange["client_id"], BUDDY_CLIENT_ID);
        assert_eq!(buddy_exchange["redirect_uri"], REDIRECT);
        assert_eq!(buddy_exchange["code"], REDACTED);
        assert_eq!(buddy_exchange["code_verifier"], REDACTED);
        assert_eq!(buddy_exchange["client_secret"], REDACTED);

        let recorded = serde_json::to_string(&requests).unwrap();
        let secrets = [
            BUDDY_CLIENT_SECRET,
            BITBUCKET_CLIENT_SECRET,
            s(&first["access_token"]),
            s(&first["refresh_token"]),
            s(&second["access_token"]),
            s(&second["refresh_token"]),
            s(&buddy["access_token"]),
            s(&buddy["refresh_token"]),
        ];
        for secret in secrets {
            assert!(!recorded.contains(secret), "a secret in the recordings");
        }
        // A secret in a query string is redacted too.
        assert_eq!(
            redacted_query("a=1&refresh_token=abc&code=x%20y&state=s"),
            "a=1&refresh_token=%5Bredacted%5D&code=%5Bredacted%5D&state=s"
        );
    }

    #[tokio::test]
    async fn oauth_knobs_over_http() {
        let sim = Sim::start().await.unwrap();
        let body = connect(&sim, Which::Bitbucket, "ben").await;
        let knob = |v: Value| {
            client()
                .post(format!("{}/_sim/oauth", sim.buddy_url))
                .json(&v)
                .send()
        };
        let r = knob(json!({"op": "expire_access_tokens", "account": "ben"}))
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        let (status, _) = whoami(&sim, Which::Bitbucket, s(&body["access_token"])).await;
        assert_eq!(status, 401);
        knob(json!({"op": "token_lifetime", "provider": "bitbucket", "seconds": 60}))
            .await
            .unwrap();
        let (_, fresh) = refresh_with(&sim, Which::Bitbucket, s(&body["refresh_token"])).await;
        assert_eq!(fresh["expires_in"], 60);
        let state: Value = client()
            .get(format!(
                "{}/_sim/oauth",
                sim.bitbucket_url.trim_end_matches("/2.0")
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(state["token_requests"]["bitbucket"]["refresh_token"], 1);
        assert_eq!(
            state["token_requests"]["bitbucket"]["authorization_code"],
            1
        );
        assert_eq!(state["live_grants"]["ben"], 1);
    }
}
