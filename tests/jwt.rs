//! JWT identity: devgate verifies tokens against the issuer's JWKS (here a locally generated P-256 key
//! served by the test): a valid token is accepted as its `sub`; expired, wrong-audience and
//! wrongly-signed tokens get 401 with the protected-resource challenge.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use devgate::sim::Sim;
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || async move { axum::Json(jwks) }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/jwks.json")
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
        setup.public_url
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
    assert_eq!(metadata["resource"], format!("{}/mcp", setup.public_url));
}
