//! JWT identity: devgate verifies tokens against the issuer's JWKS (here locally generated keys served
//! by the test): a valid token is accepted as its `sub`; expired, not-yet-valid, wrong-audience and
//! wrongly-signed tokens, and tokens whose `alg` is not the one their key is for, get 401 with the
//! protected-resource challenge. The JWKS is fetched once for many concurrent callers and rarely while
//! it fails, and a caller is never told its URL.

use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use devgate::sim::Sim;
use futures::StreamExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::{Value, json};

struct Signer {
    key: EncodingKey,
    jwk: Value,
}

fn signer(kid: &str) -> Signer {
    let secret = loop {
        let bytes: [u8; 32] = rand::random();
        if let Ok(k) = p256::SecretKey::from_slice(&bytes) {
            break k;
        }
    };
    let pem = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
    let point = secret.public_key().to_encoded_point(false);
    Signer {
        key: EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
        jwk: json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
            "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
        }),
    }
}

fn token(signer: &Signer, kid: &str, claims: Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.into());
    encode(&header, &claims, &signer.key).unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn serve_jwks(jwks: Value) -> String {
    Jwks::serve(jwks).await.url
}

/// A JWKS endpoint the test controls: what it answers, how slowly, and how often it was asked.
#[derive(Clone)]
struct Jwks {
    url: String,
    hits: Arc<AtomicUsize>,
    status: Arc<AtomicU16>,
    delay_ms: Arc<AtomicU64>,
    keys: Arc<Mutex<Value>>,
}

impl Jwks {
    async fn serve(keys: Value) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve_on(listener, keys)
    }

    fn serve_on(listener: tokio::net::TcpListener, keys: Value) -> Self {
        let addr = listener.local_addr().unwrap();
        let jwks = Self {
            url: format!("http://{addr}/jwks.json"),
            hits: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
            delay_ms: Arc::default(),
            keys: Arc::new(Mutex::new(keys)),
        };
        let state = jwks.clone();
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let state = state.clone();
                async move {
                    state.hits.fetch_add(1, Ordering::SeqCst);
                    let delay = state.delay_ms.load(Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    let status = state.status.load(Ordering::SeqCst);
                    let body = state.keys.lock().unwrap().clone();
                    (
                        axum::http::StatusCode::from_u16(status).unwrap(),
                        axum::Json(body),
                    )
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        jwks
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// devgate over HTTP with `auth = "jwt"` against `jwks_url`; `extra` goes into `[http.jwt]`.
async fn jwt_gateway(sim: &Sim, jwks_url: &str, extra: &str) -> (OAuthSetup, HttpGateway) {
    let mut setup = oauth_setup(sim, "");
    let text = std::fs::read_to_string(&setup.config).unwrap();
    let text = text.replace("auth = \"api_key\"", &format!(
        "auth = \"jwt\"\n\n[http.jwt]\nissuer = \"https://idp.example\"\naudience = \"devgate\"\njwks_url = \"{jwks_url}\"\n{extra}"
    ));
    setup.config = setup.dir.join("jwt.toml");
    std::fs::write(&setup.config, text).unwrap();
    let gateway = oauth_http(&setup, &[]).await;
    (setup, gateway)
}

/// Claims devgate accepts, valid for ten minutes.
fn good_claims() -> Value {
    json!({"iss": "https://idp.example", "aud": "devgate", "sub": "carol", "exp": now() + 600})
}

/// Status and body of an `initialize` with this bearer token.
async fn answer(url: &str, bearer: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(url)
        .bearer_auth(bearer)
        .header("Accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

/// A throwaway RSA key made for these tests (`openssl genpkey -algorithm RSA`); it signs nothing else.
const RSA_PEM: &str = include_str!("../data/jwt-rsa-test-key.pem");
/// Its modulus, base64url (`openssl rsa -noout -modulus`, hex to bytes to base64url).
const RSA_N: &str = "zbvhxWye-TgQ-lK32Fh3EtTWH1acybjN5kLvmJDXzi6bwUWi_z4FxNE3NAZb77k9MI-idpDx8J26nlykGRmW2rZy24PC3ZpLQHOiGf762YLqBt8zJtFh4GHZDCb3kKE-d3xqDxvIyIgo0ebyAXLdZPLgjEBa0Pd2ECo1_wB_2mQqu4h_sL-SDiJ4-J7vjvzwWzLLwulCPmbFjKDrfPDCVsX9I9nP46NHdbnr110nSq2meD4vmd2fndhDf0PhKz4PMPHhh9O9Z6iwxq-hIFIyWur0uyMdC8ljynrOyKmMSx3iIDtnps-hU8PsxxctsZQPvv6i0pUmdoZrasUyTAqkgQ";

fn rsa_jwk(kid: &str, alg: Option<&str>) -> Value {
    let mut jwk = json!({"kty": "RSA", "kid": kid, "use": "sig", "n": RSA_N, "e": "AQAB"});
    if let Some(alg) = alg {
        jwk["alg"] = json!(alg);
    }
    jwk
}

fn signed(alg: Algorithm, kid: &str, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    encode(&header, claims, key).unwrap()
}

async fn status_of(url: &str, bearer: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(url)
        .bearer_auth(bearer)
        .header("Accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        .send()
        .await
        .unwrap();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (response.status().as_u16(), challenge)
}

#[tokio::test(flavor = "multi_thread")]
async fn jwt_callers_are_verified_against_the_issuers_keys() {
    let sim = Sim::start().await.unwrap();
    let good = signer("k1");
    let jwks_url = serve_jwks(json!({"keys": [good.jwk.clone()]})).await;
    let mut setup = oauth_setup(&sim, "");
    // Static provider tokens: this test is about who the caller is.
    let text = std::fs::read_to_string(&setup.config).unwrap();
    let text = text.replace("auth = \"api_key\"", &format!(
        "auth = \"jwt\"\n\n[http.jwt]\nissuer = \"https://idp.example\"\naudience = \"devgate\"\njwks_url = \"{jwks_url}\""
    ));
    setup.config = setup.dir.join("jwt.toml");
    std::fs::write(&setup.config, text).unwrap();
    let gateway = oauth_http(&setup, &[]).await;

    let claims = |aud: &str, exp: u64| json!({"iss": "https://idp.example", "aud": aud, "sub": "carol", "exp": exp});
    let valid = token(&good, "k1", claims("devgate", now() + 600));
    let client = http_client_with_key(&gateway.url, &valid).await;
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "devgate_connections"));
    let me = ok(
        "devgate_connections",
        &call(&client, "devgate_connections", json!({})).await,
    );
    assert!(
        me["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["state"] == "not_connected"),
        "{me}"
    );
    client.cancel().await.unwrap();

    let expired = token(&good, "k1", claims("devgate", now() - 600));
    let wrong_audience = token(&good, "k1", claims("someone-else", now() + 600));
    let forged = token(&signer("k1"), "k1", claims("devgate", now() + 600));
    for (what, bad) in [
        ("expired", expired),
        ("wrong audience", wrong_audience),
        ("wrong signature", forged),
        ("garbage", "not.a.jwt".into()),
    ] {
        let (status, challenge) = status_of(&gateway.url, &bad).await;
        assert_eq!(status, 401, "{what}");
        assert!(
            challenge.contains("resource_metadata=") && challenge.contains("invalid_token"),
            "{what}: {challenge}"
        );
    }
    let metadata: Value = reqwest::get(format!(
        "{}/.well-known/oauth-protected-resource",
        setup.public_url()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        metadata["authorization_servers"],
        json!(["https://idp.example"])
    );
    assert_eq!(metadata["resource"], format!("{}/mcp", setup.public_url()));
}

/// The report's reproduction: tokens arriving while the JWKS fails each fetched it (200 tokens, 200
/// fetches). Now failures back off, so the JWKS sees a handful of fetches whatever the callers send;
/// the callers get 503 with Retry-After (their tokens may be fine), never the JWKS URL or a library's
/// error text; and once the JWKS answers again, tokens are accepted.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_jwks_is_fetched_rarely_and_never_named() {
    let sim = Sim::start().await.unwrap();
    let good = signer("k1");
    // Nothing listens on the JWKS port at first: the fetch fails with a connection error.
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let jwks_addr = reserved.local_addr().unwrap();
    drop(reserved);
    let jwks_url = format!("http://{jwks_addr}/jwks.json");
    let (_setup, gateway) = jwt_gateway(&sim, &jwks_url, "").await;
    let valid = token(&good, "k1", good_claims());
    let started = Instant::now();

    let check = |what: &str, status: u16, body: &str| {
        assert_eq!(status, 503, "{what}: {body}");
        assert!(
            body.contains("signing keys are unavailable"),
            "{what}: {body}"
        );
        for leak in [
            jwks_url.as_str(),
            &jwks_addr.to_string(),
            &jwks_addr.port().to_string(),
            "jwks",
            "error sending request",
            "HTTP 503",
        ] {
            assert!(
                !body.contains(leak),
                "{what}: the body names `{leak}`: {body}"
            );
        }
    };
    let (status, body) = answer(&gateway.url, &valid).await;
    check("unreachable JWKS", status, &body);

    // Now it answers 503; 200 tokens come in, 20 at a time.
    let listener = tokio::net::TcpListener::bind(jwks_addr).await.unwrap();
    let jwks = Jwks::serve_on(listener, json!({"keys": [good.jwk.clone()]}));
    jwks.status.store(503, Ordering::SeqCst);
    let tokens: Vec<String> = (0..200)
        .map(|i| {
            let mut claims = good_claims();
            claims["sub"] = json!(format!("user-{i}"));
            token(&good, "k1", claims)
        })
        .collect();
    let answers: Vec<(u16, String)> = futures::stream::iter(tokens.iter())
        .map(|t| answer(&gateway.url, t))
        .buffer_unordered(20)
        .collect()
        .await;
    for (status, body) in &answers {
        check("JWKS answering 503", *status, body);
    }
    // One fetch, then quiet for 1 s, 2 s, 4 s… after each failure: within `elapsed` seconds at most
    // 1 + log2(1 + elapsed) fetches, plus one for the unreachable start.
    let elapsed = started.elapsed().as_secs_f64();
    let bound = 2 + (1.0 + elapsed).log2().floor() as usize;
    println!(
        "{} JWKS fetches for 200 tokens in {elapsed:.1} s",
        jwks.hits()
    );
    assert!(
        jwks.hits() <= bound,
        "{} fetches for 200 tokens in {elapsed:.1} s (at most {bound})",
        jwks.hits()
    );

    // The JWKS recovers: within the backoff (at most a minute), the token is accepted.
    jwks.status.store(200, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(75);
    loop {
        let (status, body) = answer(&gateway.url, &valid).await;
        if status == 200 {
            break;
        }
        check("recovering JWKS", status, &body);
        assert!(Instant::now() < deadline, "never recovered: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = jwks.hits();
    for _ in 0..5 {
        assert_eq!(answer(&gateway.url, &valid).await.0, 200);
    }
    assert_eq!(jwks.hits(), after, "a known key needs no fetch");
    assert!(
        !gateway.stderr.text().contains(&valid),
        "no token in the logs"
    );
}

/// Concurrent callers on a cold cache share one fetch of a slow JWKS.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_callers_share_one_jwks_fetch() {
    let sim = Sim::start().await.unwrap();
    let good = signer("k1");
    let jwks = Jwks::serve(json!({"keys": [good.jwk.clone()]})).await;
    jwks.delay_ms.store(300, Ordering::SeqCst);
    let (_setup, gateway) = jwt_gateway(&sim, &jwks.url, "").await;
    let tokens: Vec<String> = (0..30)
        .map(|i| {
            let mut claims = good_claims();
            claims["sub"] = json!(format!("user-{i}"));
            token(&good, "k1", claims)
        })
        .collect();
    let statuses: Vec<u16> = futures::future::join_all(
        tokens
            .iter()
            .map(|t| async { answer(&gateway.url, t).await.0 }),
    )
    .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(jwks.hits(), 1, "one fetch for 30 concurrent callers");
    // Tokens naming a key the issuer does not list: refused, and at most one more fetch a minute.
    for i in 0..20 {
        let stranger = token(&signer("k9"), &format!("k9-{i}"), good_claims());
        let (status, body) = answer(&gateway.url, &stranger).await;
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("a key the issuer does not list"), "{body}");
    }
    assert!(jwks.hits() <= 2, "{} fetches", jwks.hits());
}

/// Each key verifies only the algorithm it is for: a token that switches `alg` within the key's family
/// (RS256 key, PS256 or RS512 token), to HMAC (with the public key as the secret, or a symmetric key
/// the JWKS lists), or to `none` is refused; `http.jwt.algorithms` can allow another.
#[tokio::test(flavor = "multi_thread")]
async fn each_key_verifies_only_its_own_algorithm() {
    let sim = Sim::start().await.unwrap();
    let ec = signer("ec");
    let secret = b"a symmetric key that a JWKS should never have published";
    let jwks = Jwks::serve(json!({"keys": [
        ec.jwk.clone(),
        rsa_jwk("rsa", Some("RS256")),
        rsa_jwk("rsa-bare", None),
        {"kty": "oct", "kid": "sym", "alg": "HS256", "k": URL_SAFE_NO_PAD.encode(secret)},
    ]}))
    .await;
    let (_setup, gateway) = jwt_gateway(&sim, &jwks.url, "").await;
    let rsa = EncodingKey::from_rsa_pem(RSA_PEM.as_bytes()).unwrap();
    let claims = good_claims();

    for (what, token) in [
        ("ES256 with the EC key", token(&ec, "ec", claims.clone())),
        (
            "RS256 with the RS256 key",
            signed(Algorithm::RS256, "rsa", &rsa, &claims),
        ),
        (
            "RS256 with an RSA key stating no alg",
            signed(Algorithm::RS256, "rsa-bare", &rsa, &claims),
        ),
    ] {
        let (status, body) = answer(&gateway.url, &token).await;
        assert_eq!(status, 200, "{what}: {body}");
    }

    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT","kid":"ec"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut refused = Vec::new();
    for (what, token) in [
        (
            "PS256 with the RS256 key",
            signed(Algorithm::PS256, "rsa", &rsa, &claims),
        ),
        (
            "RS512 with an RSA key stating no alg",
            signed(Algorithm::RS512, "rsa-bare", &rsa, &claims),
        ),
        (
            "HS256 with the JWKS's symmetric key",
            signed(
                Algorithm::HS256,
                "sym",
                &EncodingKey::from_secret(secret),
                &claims,
            ),
        ),
        (
            "HS256 keyed with the RSA public key",
            signed(
                Algorithm::HS256,
                "rsa",
                &EncodingKey::from_secret(RSA_N.as_bytes()),
                &claims,
            ),
        ),
        (
            "HS256 keyed with the EC JWK",
            signed(
                Algorithm::HS256,
                "ec",
                &EncodingKey::from_secret(ec.jwk.to_string().as_bytes()),
                &claims,
            ),
        ),
        ("alg none", none),
    ] {
        let (status, body) = answer(&gateway.url, &token).await;
        if status != 401 {
            refused.push(format!("{what}: {status}"));
            continue;
        }
        assert!(
            body.starts_with("the token is not valid: ") && !body.contains("Error"),
            "{what}: {body}"
        );
    }
    assert!(refused.is_empty(), "not refused: {refused:?}");

    // Configured algorithms: PS256 for keys that state none; a key's own `alg` still rules.
    let (_setup, gateway) = jwt_gateway(&sim, &jwks.url, "algorithms = [\"PS256\"]").await;
    for (what, token, want) in [
        (
            "PS256 with an RSA key stating no alg",
            signed(Algorithm::PS256, "rsa-bare", &rsa, &claims),
            200,
        ),
        (
            "RS256 with an RSA key stating no alg",
            signed(Algorithm::RS256, "rsa-bare", &rsa, &claims),
            401,
        ),
        (
            "PS256 with the RS256 key",
            signed(Algorithm::PS256, "rsa", &rsa, &claims),
            401,
        ),
    ] {
        let (status, body) = answer(&gateway.url, &token).await;
        assert_eq!(status, want, "{what}: {body}");
    }
}

/// `nbf` is checked, with a small leeway for clock skew.
#[tokio::test(flavor = "multi_thread")]
async fn a_token_not_yet_valid_is_refused() {
    let sim = Sim::start().await.unwrap();
    let good = signer("k1");
    let jwks = Jwks::serve(json!({"keys": [good.jwk.clone()]})).await;
    let (_setup, gateway) = jwt_gateway(&sim, &jwks.url, "").await;
    let with_nbf = |nbf: u64| {
        let mut claims = good_claims();
        claims["nbf"] = json!(nbf);
        token(&good, "k1", claims)
    };
    let (status, body) = answer(&gateway.url, &with_nbf(now() + 600)).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("not valid yet"), "{body}");
    for (what, nbf) in [("skew", now() + 5), ("past", now() - 60)] {
        let (status, body) = answer(&gateway.url, &with_nbf(nbf)).await;
        assert_eq!(status, 200, "{what}: {body}");
    }
}

/// The groups for `[[policies]]` come from the claim `http.jwt.groups_claim` names: a token in `devs`
/// is offered the pull request tools, one without the claim nothing but `devgate_connections`.
#[tokio::test(flavor = "multi_thread")]
async fn groups_come_from_the_configured_claim() {
    let sim = Sim::start().await.unwrap();
    let key = signer("k1");
    let jwks_url = serve_jwks(json!({"keys": [key.jwk.clone()]})).await;
    let extra = "groups_claim = \"roles\"\n\n[[policies]]\ngroup = \"devs\"\nallow_toolsets = [\"pull_requests\"]\n";
    let (_setup, gateway) = jwt_gateway(&sim, &jwks_url, extra).await;
    let mut seen = Vec::new();
    for roles in [json!(["devs", "other"]), json!(null)] {
        let mut claims = good_claims();
        claims["roles"] = roles;
        let client = http_client_with_key(&gateway.url, &token(&key, "k1", claims)).await;
        let tools = client.list_all_tools().await.unwrap();
        seen.push(tools.iter().map(|t| t.name.to_string()).collect::<Vec<_>>());
    }
    assert!(
        seen[0].iter().any(|t| t == "bitbucket_merge_pull_request"),
        "{:?}",
        seen[0]
    );
    assert!(
        !seen[0].iter().any(|t| t.starts_with("buddy_")),
        "{:?}",
        seen[0]
    );
    assert_eq!(seen[1], ["devgate_connections"]);
}
