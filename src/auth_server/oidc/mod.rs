//! Sign-in through the organisation's OpenID Connect provider (`[login]`), as a relying party:
//! discovery, the authorization code flow with PKCE S256, `state` and `nonce`, the code exchange
//! (client_secret_basic or _post, as the provider's discovery document says), and the ID token's
//! validation (signature against the provider's JWKS, `iss`, `aud`, `azp`, `exp`/`iat`, `nonce`).
//!
//! The caller (devgate's `/login` page) keeps the [`PendingLogin`] of [`OidcLogin::begin`] sealed in a
//! browser-bound cookie until the provider sends the browser back to `<public_url>`[`CALLBACK_PATH`];
//! [`OidcLogin::finish`] then checks `state` against it, refuses a pending sign-in used before or older
//! than ten minutes, and returns who signed in. Nothing a URL carries is identity: only the ID token,
//! fetched by devgate itself from the token endpoint and verified, is.
//!
//! Errors name the reason and the next step, never a secret, a code or a token.
//!
//! # Layout
//! This file: [`OidcLogin`] (discovery, begin, finish). `config.rs`: [`LoginConfig`] and its checks.
//! `id_token.rs`: the ID token's validation and the identity it names. `tests.rs`: unit tests against
//! the simulated provider ([`crate::sim::oidc`]).

mod config;
mod id_token;
#[cfg(all(test, feature = "sandbox"))]
mod tests;

pub use config::{DEFAULT_GROUPS_CLAIM, DEFAULT_SCOPES, DEFAULT_USER_CLAIM, LoginConfig};

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError,
    StandardRevocableToken, StandardTokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::identity::JwksKeys;
use crate::oauth::client::{TokenHttp, TransportError, scrub};
use config::is_loopback;

/// Where the provider sends the browser back, under devgate's `public_url`: register
/// `<public_url>/login/oidc/callback` as the client's redirect URI.
pub const CALLBACK_PATH: &str = "/login/oidc/callback";
/// How long a sign-in may take between [`OidcLogin::begin`] and [`OidcLogin::finish`].
pub const PENDING_TTL: Duration = Duration::from_secs(600);
/// Requests to the provider (discovery, token, keys) give up after this long.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest discovery document read.
const DISCOVERY_MAX_BYTES: usize = 256 * 1024;
/// ID tokens come straight from the token endpoint, so a key id the cached set lacks means the
/// provider rotated its keys: fetch the set again at once (still at most one fetch per token, and
/// failed fetches back off).
const JWKS_MIN_REFRESH: Duration = Duration::ZERO;

#[derive(Debug, Clone, thiserror::Error)]
pub enum OidcError {
    /// `[login]` cannot be used as written.
    #[error("{0}")]
    Config(String),
    /// The discovery document could not be fetched or read.
    #[error(
        "cannot use the identity provider's discovery document at {url}: {reason}; check login.issuer"
    )]
    Discovery { url: String, reason: String },
    #[error(
        "the identity provider's discovery document names the issuer `{found}`, but login.issuer is `{configured}`: write login.issuer exactly as the provider states it"
    )]
    IssuerMismatch { configured: String, found: String },
    #[error(
        "this sign-in answer does not belong to the sign-in this browser started (state differs); start signing in again"
    )]
    StateMismatch,
    #[error("this sign-in was already used; start signing in again")]
    Replayed,
    #[error("this sign-in started more than {minutes} minutes ago; start signing in again")]
    Expired { minutes: u64 },
    /// The token endpoint refused the code (`invalid_grant`: used, expired, PKCE mismatch…).
    #[error("the identity provider refused the sign-in: {code}{}; start signing in again", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused {
        code: String,
        description: Option<String>,
    },
    #[error("the identity provider's token endpoint is unavailable ({0}); try again shortly")]
    Unavailable(String),
    #[error("the identity provider's signing keys are unavailable; try again in {retry_after} s")]
    Keys { retry_after: u64 },
    /// The ID token failed validation; the reason is devgate's own phrase.
    #[error("the identity provider's ID token is not valid: {0}")]
    IdToken(String),
    #[error(
        "the ID token has no `{claim}` claim naming the user: set {setting} to a claim the identity provider includes, or have it include `{claim}`"
    )]
    MissingClaim {
        claim: String,
        setting: &'static str,
    },
}

impl OidcError {
    /// Whether trying again later may succeed without anything changing (the provider was unreachable).
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            OidcError::Discovery { .. } | OidcError::Unavailable(_) | OidcError::Keys { .. }
        )
    }
}

/// What the caller keeps (sealed, in a browser-bound cookie) between [`OidcLogin::begin`] and
/// [`OidcLogin::finish`]. Single use.
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    state: String,
    nonce: String,
    pkce_verifier: String,
    /// Unix seconds at [`OidcLogin::begin`].
    started_at: u64,
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingLogin")
            .field("started_at", &self.started_at)
            .finish_non_exhaustive()
    }
}

/// Who signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIdentity {
    /// The provider's `sub`: stable, unique at this issuer.
    pub subject: String,
    /// The user name devgate uses (`login.user_claim`).
    pub user: String,
    /// The user's groups (`login.groups_claim`), for policies.
    pub groups: Vec<String>,
}

/// The fields of the token response beyond OAuth's: the ID token.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl ExtraTokenFields for IdTokenField {}

type TokenReply = StandardTokenResponse<IdTokenField, BasicTokenType>;
type OAuth2Client = oauth2::Client<
    BasicErrorResponse,
    TokenReply,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// The parts of the provider's discovery document devgate uses.
#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    code_challenge_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    id_token_signing_alg_values_supported: Option<Vec<String>>,
}

/// The relying party for one `[login]` provider, discovery done.
pub struct OidcLogin {
    config: LoginConfig,
    authorization_endpoint: url::Url,
    client: OAuth2Client,
    /// The client secret, to scrub from what the provider says.
    client_secret: String,
    http: TokenHttp,
    keys: JwksKeys,
    /// The asymmetric algorithms the provider says it signs ID tokens with.
    algorithms: Vec<Algorithm>,
    /// Digests of the states of finished (or attempted) sign-ins, with when they were used.
    used: Mutex<HashMap<[u8; 32], Instant>>,
}

impl std::fmt::Debug for OidcLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcLogin")
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

/// A provider endpoint from discovery: https, or plain http on loopback.
fn endpoint(name: &str, raw: &str, discovery_url: &str) -> Result<url::Url, OidcError> {
    match url::Url::parse(raw) {
        Ok(u) if u.scheme() == "https" || (u.scheme() == "http" && is_loopback(&u)) => Ok(u),
        _ => Err(OidcError::Discovery {
            url: discovery_url.to_string(),
            reason: format!("{name} `{raw}` is not an https URL"),
        }),
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl OidcLogin {
    /// Fetches the provider's discovery document and checks it against `[login]`.
    pub async fn discover(config: &LoginConfig) -> Result<Self, OidcError> {
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(OidcError::Config(problems.join("\n")));
        }
        let secret = config
            .client_secret
            .as_ref()
            .map(|s| s.expose().to_string())
            .unwrap_or_default();
        let http = crate::app::http_client()
            .timeout(TIMEOUT)
            // The provider answers directly; following a redirect could carry the code elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("devgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| OidcError::Config(format!("login: {e}")))?;
        let url = format!(
            "{}/.well-known/openid-configuration",
            config.issuer.trim_end_matches('/')
        );
        let discovery = fetch_discovery(&http, &url).await?;
        if discovery.issuer != config.issuer {
            return Err(OidcError::IssuerMismatch {
                configured: config.issuer.clone(),
                found: discovery.issuer,
            });
        }
        let authorization_endpoint = endpoint(
            "authorization_endpoint",
            &discovery.authorization_endpoint,
            &url,
        )?;
        let token_endpoint = endpoint("token_endpoint", &discovery.token_endpoint, &url)?;
        let jwks_uri = endpoint("jwks_uri", &discovery.jwks_uri, &url)?;
        if let Some(methods) = &discovery.code_challenge_methods_supported
            && !methods.iter().any(|m| m == "S256")
        {
            return Err(OidcError::Discovery {
                url,
                reason: "the provider does not support PKCE with S256".into(),
            });
        }
        // No list means client_secret_basic (OpenID Connect Discovery 1.0, section 3).
        let methods = discovery
            .token_endpoint_auth_methods_supported
            .unwrap_or_else(|| vec!["client_secret_basic".into()]);
        let auth_type = if methods.iter().any(|m| m == "client_secret_basic") {
            AuthType::BasicAuth
        } else if methods.iter().any(|m| m == "client_secret_post") {
            AuthType::RequestBody
        } else {
            return Err(OidcError::Discovery {
                url,
                reason: format!(
                    "the token endpoint takes none of client_secret_basic, client_secret_post (it lists {})",
                    methods.join(", ")
                ),
            });
        };
        let algorithms = id_token::algorithms(discovery.id_token_signing_alg_values_supported);
        if algorithms.is_empty() {
            return Err(OidcError::Discovery {
                url,
                reason: "the provider signs ID tokens with no asymmetric algorithm devgate accepts (RS256, PS256, ES256, EdDSA, …)".into(),
            });
        }
        let client = oauth2::Client::new(ClientId::new(config.client_id.clone()))
            .set_client_secret(ClientSecret::new(secret.clone()))
            .set_token_uri(TokenUrl::from_url(token_endpoint))
            .set_auth_type(auth_type);
        Ok(Self {
            keys: JwksKeys::new(jwks_uri.to_string(), JWKS_MIN_REFRESH, http.clone()),
            config: config.clone(),
            authorization_endpoint,
            client,
            client_secret: secret,
            http: TokenHttp(http),
            algorithms,
            used: Mutex::new(HashMap::new()),
        })
    }

    /// The issuer signed in against.
    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// Where to send the browser, and what the caller must keep (sealed, in a browser-bound cookie)
    /// until the callback. `redirect_uri` is `<public_url>`[`CALLBACK_PATH`], as registered.
    pub fn begin(&self, redirect_uri: &str) -> (url::Url, PendingLogin) {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = CsrfToken::new_random().secret().clone();
        let nonce = CsrfToken::new_random().secret().clone();
        let mut url = self.authorization_endpoint.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &self.config.scopes.join(" "))
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", challenge.as_str())
            .append_pair("code_challenge_method", "S256");
        let pending = PendingLogin {
            state,
            nonce,
            pkce_verifier: verifier.secret().clone(),
            started_at: now_secs(),
        };
        (url, pending)
    }

    /// Exchanges the code (PKCE) and validates the ID token: signature against the JWKS (refetched
    /// once on an unknown kid), iss, aud, azp, exp/iat with small leeway, nonce. A pending sign-in is
    /// good for one attempt: a second one is refused as [`OidcError::Replayed`].
    pub async fn finish(
        &self,
        pending: &PendingLogin,
        state: &str,
        code: &str,
        redirect_uri: &str,
    ) -> Result<OidcIdentity, OidcError> {
        let result: Result<OidcIdentity, OidcError> = async {
            let minutes = PENDING_TTL.as_secs() / 60;
            if now_secs().saturating_sub(pending.started_at) > PENDING_TTL.as_secs() {
                return Err(OidcError::Expired { minutes });
            }
            let expected: [u8; 32] = Sha256::digest(pending.state.as_bytes()).into();
            let got: [u8; 32] = Sha256::digest(state.as_bytes()).into();
            if expected != got {
                return Err(OidcError::StateMismatch);
            }
            self.mark_used(expected)?;
            let redirect = RedirectUrl::new(redirect_uri.to_string()).map_err(|_| {
                OidcError::Config(format!("redirect URI `{redirect_uri}` is not a URL"))
            })?;
            let reply = self
                .client
                .exchange_code(AuthorizationCode::new(code.to_string()))
                .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
                .set_redirect_uri(Cow::Owned(redirect))
                .request_async(&self.http)
                .await
                .map_err(|e| self.token_error(e, &[code, &pending.pkce_verifier]))?;
            let Some(token) = &reply.extra_fields().id_token else {
                return Err(OidcError::IdToken(
                    "the token response has no id_token (is `openid` among login.scopes?)".into(),
                ));
            };
            let claims = id_token::validate(self, token, &pending.nonce).await?;
            id_token::identity(&self.config, &claims)
        }
        .await;
        match &result {
            Ok(id) => tracing::info!(
                issuer = %self.config.issuer,
                user = %id.user,
                groups = id.groups.len(),
                "signed in through the identity provider"
            ),
            Err(e) => tracing::info!(
                issuer = %self.config.issuer,
                reason = %e,
                "sign-in through the identity provider refused"
            ),
        }
        result
    }

    /// Records a state as used; refuses one used before. Forgets states older than [`PENDING_TTL`]
    /// (their pending sign-ins are refused as expired anyway).
    fn mark_used(&self, state: [u8; 32]) -> Result<(), OidcError> {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        used.retain(|_, at| now.duration_since(*at) <= PENDING_TTL + Duration::from_secs(60));
        if used.insert(state, now).is_some() {
            return Err(OidcError::Replayed);
        }
        Ok(())
    }

    /// A failed code exchange, scrubbed of what the request carried.
    fn token_error(
        &self,
        e: RequestTokenError<TransportError, BasicErrorResponse>,
        sent: &[&str],
    ) -> OidcError {
        let mut sent = sent.to_vec();
        sent.push(&self.client_secret);
        match e {
            RequestTokenError::ServerResponse(r) => OidcError::Refused {
                code: scrub(r.error().as_ref(), &sent),
                description: r.error_description().map(|d| scrub(d, &sent)),
            },
            RequestTokenError::Request(t) => OidcError::Unavailable(t.to_string()),
            RequestTokenError::Parse(_, _) => {
                OidcError::Unavailable("its reply is not a token response".into())
            }
            RequestTokenError::Other(detail) => OidcError::Unavailable(scrub(&detail, &sent)),
        }
    }
}

/// Fetches and parses the discovery document (at most [`DISCOVERY_MAX_BYTES`]).
async fn fetch_discovery(http: &reqwest::Client, url: &str) -> Result<Discovery, OidcError> {
    let failed = |reason: String| OidcError::Discovery {
        url: url.to_string(),
        reason,
    };
    let mut response = http.get(url).send().await.map_err(|e| {
        failed(if e.is_timeout() {
            "timed out".into()
        } else {
            "connection failed".into()
        })
    })?;
    if !response.status().is_success() {
        return Err(failed(format!("HTTP {}", response.status().as_u16())));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|_| failed("the reply broke off".into()))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > DISCOVERY_MAX_BYTES {
            return Err(failed(format!(
                "larger than {} KiB",
                DISCOVERY_MAX_BYTES / 1024
            )));
        }
    }
    serde_json::from_slice(&body).map_err(|e| {
        failed(format!(
            "not an OpenID provider configuration ({})",
            match e.classify() {
                serde_json::error::Category::Data => e.to_string(),
                _ => "not JSON".into(),
            }
        ))
    })
}
