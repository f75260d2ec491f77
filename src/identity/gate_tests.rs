//! The `/mcp` gate without a socket: [`super::authenticate`] in front of a route that echoes the user,
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
    let (status, challenge, body) = get_mcp(app(Authenticator::ApiKeys(store().await)), None).await;
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
