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

use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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
    match layer.authenticator.resolve(bearer.as_deref()).await {
        Ok(resolved) => {
            if let Some(scopes) = resolved.scopes {
                request.extensions_mut().insert(GrantedScopes(scopes));
            }
            request.extensions_mut().insert(Identity {
                user: resolved.user,
                groups: resolved.groups,
            });
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
        // The token may be fine: a 401 would send the client to sign in again, which cannot help.
        Err(e @ AuthError::Jwks { retry_after }) => {
            let mut response = (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            response
        }
        Err(e) => {
            let error = match e {
                AuthError::Missing => String::new(),
                _ => ", error=\"invalid_token\"".to_string(),
            };
            tracing::info!(reason = %e, "rejected an HTTP caller");
            // Read a small body before refusing: hyper closes a connection whose request body was
            // left unread, and a client that reuses it at once (the MCP Python SDK's discovery after
            // this 401) then sees it drop without an answer.
            let _ = axum::body::to_bytes(std::mem::take(request.body_mut()), 64 * 1024).await;
            let scope = match &*layer.authenticator {
                Authenticator::OAuth { .. } => {
                    format!(", scope=\"{}\"", crate::auth_server::scopes::ALL.join(" "))
                }
                _ => String::new(),
            };
            let challenge = format!(
                "Bearer resource_metadata=\"{}\"{scope}{error}",
                layer.metadata_url
            );
            let mut response = (
                StatusCode::UNAUTHORIZED,
                format!("{e}: {}\n", layer.authenticator.hint()),
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
    if let Authenticator::OAuth { .. } = authenticator {
        doc["scopes_supported"] = serde_json::json!(crate::auth_server::scopes::ALL);
    }
    doc
}

async fn api_key_user(store: &Arc<dyn Store>, key: &str) -> Result<Resolved, AuthError> {
    store
        .api_key(&digest(key))
        .await?
        .map(|row| Resolved {
            user: row.user,
            groups: row.groups,
            scopes: None,
        })
        .ok_or_else(|| AuthError::Invalid("unknown or revoked API key".into()))
}

/// A new API key for `user` in `groups`: the key (shown once) and the row to store (its hash only).
pub fn new_api_key(user: &str, groups: &[String]) -> (String, ApiKeyRow) {
    let bytes: [u8; 32] = rand::random();
    let key = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let row = ApiKeyRow {
        id: key[KEY_PREFIX.len()..KEY_PREFIX.len() + 12].to_string(),
        key_hash: digest(&key),
        user: user.to_string(),
        created_at: now(),
        groups: groups.to_vec(),
    };
    (key, row)
}

/// After a successful fetch of the key set, a token with an unknown key id fetches it again at most
/// this often (the issuer may have rotated its keys).
const JWKS_MIN_REFRESH: Duration = Duration::from_secs(60);
/// A key set older than this is fetched again before use, so a key the issuer withdrew stops working;
/// while that fetch fails, the old set keeps serving.
const JWKS_MAX_AGE: Duration = Duration::from_secs(15 * 60);
/// After a failed fetch nothing is fetched for this long, doubling with each consecutive failure up to
/// [`JWKS_MAX_BACKOFF`]; callers meanwhile get the failure at once (negative caching).
const JWKS_FIRST_BACKOFF: Duration = Duration::from_secs(1);
const JWKS_MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub(crate) const JWT_LEEWAY_SECS: u64 = 30;

/// Verifies JWTs against an issuer's JWKS. One fetch runs at a time and every waiting caller uses its
/// result; failures back off, so no number of tokens makes devgate hammer the issuer. Each key verifies
/// only the algorithms it is for (see `algorithms_for`).
pub struct JwtVerifier {
    config: JwtConfig,
    /// `http.jwt.algorithms`, parsed; empty when not configured.
    configured: Vec<Algorithm>,
    keys: JwksKeys,
}

/// One issuer's key set (JWKS), fetched from its URL and cached: one fetch runs at a time and every
/// waiting caller uses its result; failures back off. Also used by the OpenID Connect sign-in
/// (`auth_server::oidc`), with its own `min_refresh`.
pub(crate) struct JwksKeys {
    url: String,
    /// After a successful fetch, a token with an unknown key id fetches again at most this often.
    min_refresh: Duration,
    http: reqwest::Client,
    cache: Mutex<KeyCache>,
    /// Held by the one task fetching the key set.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct KeyCache {
    /// The last key set fetched successfully, and when.
    set: Option<(Arc<JwkSet>, Instant)>,
    /// No fetch starts before this.
    quiet_until: Option<Instant>,
    /// Consecutive failed fetches.
    failures: u32,
    /// Fetches finished, so a task that waited for another's fetch does not repeat it.
    fetches: u64,
}

impl KeyCache {
    fn may_fetch(&self, now: Instant) -> bool {
        self.quiet_until.is_none_or(|t| now >= t)
    }

    /// The key for `kid` from the set at hand, without fetching.
    fn answer(&self, kid: Option<&str>, now: Instant) -> Result<Jwk, AuthError> {
        match &self.set {
            Some((set, _)) => pick(set, kid).ok_or_else(|| {
                AuthError::Invalid("signed with a key the issuer does not list".into())
            }),
            None => Err(AuthError::Jwks {
                retry_after: self
                    .quiet_until
                    .map_or(1, |t| t.saturating_duration_since(now).as_secs().max(1)),
            }),
        }
    }
}

fn pick(set: &JwkSet, kid: Option<&str>) -> Option<Jwk> {
    match kid {
        Some(k) => set.find(k).cloned(),
        None if set.keys.len() == 1 => set.keys.first().cloned(),
        None => None,
    }
}

/// The algorithms a key verifies: the JWK's own `alg` when it states one, else those its type implies
/// (RSA: RS256 unless `http.jwt.algorithms` names others; EC: by curve; Ed25519: EdDSA), always within
/// `http.jwt.algorithms` when set. A symmetric (`oct`) key or one marked for encryption verifies
/// nothing: a key published in a JWKS is no secret, so an HS256 token "signed" with it proves nothing.
pub(crate) fn algorithms_for(jwk: &Jwk, configured: &[Algorithm]) -> Vec<Algorithm> {
    use Algorithm::*;
    if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
        return Vec::new();
    }
    let family: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => &[RS256, RS384, RS512, PS256, PS384, PS512],
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => &[ES256],
            EllipticCurve::P384 => &[ES384],
            _ => &[],
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => &[EdDSA],
        _ => &[],
    };
    let stated = jwk
        .common
        .key_algorithm
        .map(|a| Algorithm::from_str(&a.to_string()).ok());
    family
        .iter()
        .copied()
        .filter(|alg| match stated {
            Some(stated) => stated == Some(*alg),
            // Most issuers sign with RS256; another RSA algorithm must be configured.
            None if configured.is_empty() => !matches!(alg, RS384 | RS512 | PS256 | PS384 | PS512),
            None => true,
        })
        .filter(|alg| configured.is_empty() || configured.contains(alg))
        .collect()
}

/// A rejected token's reason in devgate's words (the library's texts are not for callers).
pub(crate) fn reason(e: &jsonwebtoken::errors::Error) -> String {
    match e.kind() {
        ErrorKind::ExpiredSignature => "expired".into(),
        ErrorKind::ImmatureSignature => "not valid yet (nbf is in the future)".into(),
        ErrorKind::InvalidAudience => "issued for another audience".into(),
        ErrorKind::InvalidIssuer => "issued by another issuer".into(),
        ErrorKind::InvalidSignature => "the signature does not verify".into(),
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            "signed with an algorithm its key is not for".into()
        }
        ErrorKind::MissingRequiredClaim(claim) if claim.len() <= 8 => {
            format!("the `{claim}` claim is missing")
        }
        ErrorKind::InvalidClaimFormat(claim) if claim.len() <= 8 => {
            format!("the `{claim}` claim is malformed")
        }
        _ => "it is not a well-formed signed JWT".into(),
    }
}

/// The checks a token signed with `alg` gets once its key is found: `allowed` algorithms only, `exp`
/// and `nbf` with [`JWT_LEEWAY_SECS`] of skew, `iss` and `aud` as given, and `exp`, `iss`, `aud` and
/// `sub` present.
pub(crate) fn validation(
    alg: Algorithm,
    allowed: Vec<Algorithm>,
    issuer: &str,
    audience: &str,
) -> Validation {
    let mut validation = Validation::new(alg);
    validation.algorithms = allowed;
    validation.leeway = JWT_LEEWAY_SECS;
    validation.validate_nbf = true;
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    /// Every other claim, for the groups claim.
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

/// The groups a token's claims list under `claim` (see [`JwtConfig::groups_claim`]): an array of
/// strings, or one string; a claim with dots that is not a top-level claim is followed as a path.
/// Anything else (absent, a number, an object) is no group; too many or too long ones are left out.
fn groups_in(claims: &serde_json::Map<String, serde_json::Value>, claim: &str) -> Vec<String> {
    use serde_json::Value;
    let value = claims.get(claim).or_else(|| {
        let mut parts = claim.split('.');
        let first = claims.get(parts.next()?)?;
        parts.try_fold(first, |v, part| v.get(part))
    });
    let names: Vec<&str> = match value {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    names
        .into_iter()
        .filter(|g| !g.is_empty() && g.chars().count() <= MAX_GROUP_CHARS)
        .take(MAX_GROUPS)
        .map(str::to_string)
        .collect()
}

impl JwtVerifier {
    pub fn new(config: JwtConfig) -> Result<Self, String> {
        let http = crate::app::http_client()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        let configured = config
            .algorithms
            .iter()
            .map(|a| match Algorithm::from_str(a) {
                Ok(Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) | Err(_) => Err(format!(
                    "http.jwt.algorithms: `{a}` is not an asymmetric JWS algorithm (RS256, PS256, ES256, EdDSA, …)"
                )),
                Ok(alg) => Ok(alg),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            keys: JwksKeys::new(config.jwks_url.clone(), JWKS_MIN_REFRESH, http),
            config,
            configured,
        })
    }

    pub async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let header = decode_header(token).map_err(|e| AuthError::Invalid(reason(&e)))?;
        let jwk = self.keys.key_for(header.kid.as_deref()).await?;
        let allowed = algorithms_for(&jwk, &self.configured);
        if !allowed.contains(&header.alg) {
            return Err(AuthError::Invalid(
                "signed with an algorithm its key is not for".into(),
            ));
        }
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|_| AuthError::Invalid("signed with a key devgate cannot use".into()))?;
        let validation = validation(
            header.alg,
            allowed,
            &self.config.issuer,
            &self.config.audience,
        );
        let data = decode::<Claims>(token, &key, &validation)
            .map_err(|e| AuthError::Invalid(reason(&e)))?;
        Ok(Identity {
            groups: groups_in(&data.claims.rest, &self.config.groups_claim),
            user: data.claims.sub,
        })
    }
}

impl JwksKeys {
    pub(crate) fn new(url: String, min_refresh: Duration, http: reqwest::Client) -> Self {
        Self {
            url,
            min_refresh,
            http,
            cache: Mutex::new(KeyCache::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn cache(&self) -> MutexGuard<'_, KeyCache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fetches the key set; the error, with the URL, is for the log only.
    async fn fetch(&self) -> Result<JwkSet, String> {
        let response = self
            .http
            .get(&self.url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status().as_u16()));
        }
        response.json::<JwkSet>().await.map_err(|e| e.to_string())
    }

    /// The key for `kid`: from the cached set when it lists it, else after one fetch (unless a fetch
    /// is not due yet). The cause of a failed fetch is logged here; the caller gets [`AuthError::Jwks`].
    pub(crate) async fn key_for(&self, kid: Option<&str>) -> Result<Jwk, AuthError> {
        let seen = {
            let cache = self.cache();
            let now = Instant::now();
            if let Some((set, at)) = &cache.set
                && now.duration_since(*at) < JWKS_MAX_AGE
                && let Some(jwk) = pick(set, kid)
            {
                return Ok(jwk);
            }
            if !cache.may_fetch(now) {
                return cache.answer(kid, now);
            }
            cache.fetches
        };
        let _flight = self.fetching.lock().await;
        if self.cache().fetches == seen {
            let result = self.fetch().await;
            let mut cache = self.cache();
            let now = Instant::now();
            cache.fetches += 1;
            match result {
                Ok(set) => {
                    cache.set = Some((Arc::new(set), now));
                    cache.failures = 0;
                    cache.quiet_until = Some(now + self.min_refresh);
                }
                Err(e) => {
                    cache.failures = cache.failures.saturating_add(1);
                    let backoff = JWKS_FIRST_BACKOFF
                        .saturating_mul(1 << (cache.failures - 1).min(16))
                        .min(JWKS_MAX_BACKOFF);
                    cache.quiet_until = Some(now + backoff);
                    tracing::warn!(
                        url = %self.url,
                        error = %e,
                        failures = cache.failures,
                        retry_in_ms = backoff.as_millis() as u64,
                        "could not fetch the identity provider's keys (JWKS)"
                    );
                }
            }
        }
        self.cache().answer(kid, Instant::now())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_come_from_the_configured_claim() {
        let claims = |v: serde_json::Value| v.as_object().cloned().unwrap();
        let token = claims(serde_json::json!({
            "groups": ["devs", 7, "", "ops"],
            "role": "admins",
            "https://example.com/groups": ["namespaced"],
            "realm_access": {"roles": ["release"]},
            "too_long": ["x".repeat(MAX_GROUP_CHARS + 1)],
        }));
        let cases: [(&str, &[&str]); 6] = [
            ("groups", &["devs", "ops"]),
            ("role", &["admins"]),
            ("https://example.com/groups", &["namespaced"]),
            ("realm_access.roles", &["release"]),
            ("too_long", &[]),
            ("absent", &[]),
        ];
        for (claim, expected) in cases {
            assert_eq!(groups_in(&token, claim), expected, "{claim}");
        }
        let many = claims(serde_json::json!({ "groups": vec!["g"; MAX_GROUPS + 5] }));
        assert_eq!(groups_in(&many, "groups").len(), MAX_GROUPS);
    }
}

#[cfg(test)]
mod gate_tests {
    //! The `/mcp` gate without a socket: [`authenticate`] in front of a route that echoes the user,
    //! called with `oneshot`, against a real (in-memory SQLite) store of API keys.

    use std::sync::Arc;

    use axum::body::{Body, to_bytes};
    use axum::http::{Request, StatusCode, header};
    use axum::routing::get;
    use axum::{Extension, Router};
    use tower::ServiceExt;

    use super::{
        ANONYMOUS_USER, AuthLayer, Authenticator, Identity, authenticate, new_api_key,
        resource_metadata,
    };
    use crate::vault::Store;
    use crate::vault::sqlite::SqliteStore;

    const METADATA: &str = "https://gw.example/.well-known/oauth-protected-resource";

    async fn store() -> Arc<dyn Store> {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        Arc::new(store)
    }

    fn app(authenticator: Authenticator) -> Router {
        let layer = AuthLayer {
            authenticator: Arc::new(authenticator),
            metadata_url: METADATA.into(),
        };
        Router::new()
            .route(
                "/mcp",
                get(|Extension(id): Extension<Identity>| async move { id.user }),
            )
            .layer(axum::middleware::from_fn_with_state(layer, authenticate))
    }

    /// Status, `WWW-Authenticate` and body of `GET /mcp` with `authorization` (if any).
    async fn get_mcp(app: Router, authorization: Option<&str>) -> (StatusCode, String, String) {
        let mut request = Request::get("/mcp");
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let response = app
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = to_bytes(response.into_body(), 1 << 16).await.unwrap();
        (status, challenge, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_stored_api_key_is_its_user_whatever_the_scheme_case() {
        let store = store().await;
        let (key, row) = new_api_key("alice", &[]);
        store.put_api_key(&row).await.unwrap();
        for scheme in ["Bearer", "bearer"] {
            let (status, _, body) = get_mcp(
                app(Authenticator::ApiKeys(store.clone())),
                Some(&format!("{scheme} {key}")),
            )
            .await;
            assert_eq!(
                (status, body.as_str()),
                (StatusCode::OK, "alice"),
                "{scheme}"
            );
        }
    }

    #[tokio::test]
    async fn no_credential_gets_the_challenge_and_the_next_step() {
        let (status, challenge, body) =
            get_mcp(app(Authenticator::ApiKeys(store().await)), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            challenge,
            format!("Bearer resource_metadata=\"{METADATA}\"")
        );
        assert!(body.contains("devgate keys create"), "{body}");
    }

    #[tokio::test]
    async fn an_unknown_or_revoked_key_is_an_invalid_token_and_never_echoed() {
        let store = store().await;
        let (key, row) = new_api_key("bob", &[]);
        store.put_api_key(&row).await.unwrap();
        assert!(store.revoke_api_key("bob", &row.id).await.unwrap());
        for sent in [key.as_str(), "dgk_made-up"] {
            let (status, challenge, body) = get_mcp(
                app(Authenticator::ApiKeys(store.clone())),
                Some(&format!("Bearer {sent}")),
            )
            .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert!(
                challenge.ends_with("error=\"invalid_token\""),
                "{challenge}"
            );
            assert!(body.contains("unknown or revoked API key"), "{body}");
            assert!(!body.contains(sent) && !challenge.contains(sent));
        }
    }

    #[tokio::test]
    async fn without_authentication_every_caller_is_the_anonymous_user() {
        let (status, _, body) = get_mcp(app(Authenticator::None), Some("Bearer anything")).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, ANONYMOUS_USER));
    }

    #[test]
    fn api_keys_are_recognisable_and_only_their_hash_is_stored() {
        let (key, row) = new_api_key("carol", &[]);
        let (other, _) = new_api_key("carol", &[]);
        assert!(key.starts_with("dgk_") && key.len() > 40, "{key}");
        assert_ne!(key, other, "keys are random");
        assert_eq!(row.key_hash, crate::vault::digest(&key));
        assert!(!row.key_hash.contains(&key[4..]) && key.starts_with(&format!("dgk_{}", row.id)));
        assert_eq!(row.user, "carol");
    }

    #[test]
    fn resource_metadata_names_the_endpoint_and_only_a_real_issuer() {
        let doc = resource_metadata("https://gw.example/", &Authenticator::None);
        assert_eq!(doc["resource"], "https://gw.example/mcp");
        assert_eq!(doc["bearer_methods_supported"][0], "header");
        assert!(doc.get("authorization_servers").is_none(), "{doc}");
    }
}
