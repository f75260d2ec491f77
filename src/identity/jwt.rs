//! JWTs from the organisation's identity provider: the verifier, the JWKS cache with its refresh limits and backoff, and the shared validation rules.

use super::*;

// tokio's clock, so tests can pause and advance it (`tokio::time::pause`); the same monotonic clock
// otherwise.
use tokio::time::Instant;

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
    pub(super) config: JwtConfig,
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

    /// An issuer whose key set cannot be fetched is asked again only after a backoff that doubles
    /// with each failure up to a minute; meanwhile every token is refused at once, telling the client
    /// when to retry. Runs on tokio's paused clock: no real waiting.
    #[tokio::test(start_paused = true)]
    async fn a_failing_key_set_fetch_backs_off_doubling_up_to_a_minute() {
        // A URL reqwest refuses before any I/O, so the only clock that moves is the paused one.
        let keys = JwksKeys::new(
            "http://[::1".into(),
            JWKS_MIN_REFRESH,
            crate::app::http_client().build().unwrap(),
        );
        let fetches = |keys: &JwksKeys| keys.cache().fetches;
        let retry_after = |r: Result<Jwk, AuthError>| match r {
            Err(AuthError::Jwks { retry_after }) => retry_after,
            other => panic!("expected a JWKS failure, got {other:?}"),
        };

        let mut backoff = JWKS_FIRST_BACKOFF;
        for failure in 1..=8u64 {
            assert_eq!(
                retry_after(keys.key_for(Some("k1")).await),
                backoff.as_secs()
            );
            assert_eq!(fetches(&keys), failure, "one fetch per backoff period");
            // Just before the period ends: refused without fetching, with the seconds left.
            tokio::time::advance(backoff - Duration::from_millis(500)).await;
            assert_eq!(retry_after(keys.key_for(Some("k1")).await), 1);
            assert_eq!(fetches(&keys), failure);
            tokio::time::advance(Duration::from_millis(500)).await;
            backoff = (backoff * 2).min(JWKS_MAX_BACKOFF);
        }
        assert_eq!(backoff, JWKS_MAX_BACKOFF, "the ceiling was reached");
    }
}
