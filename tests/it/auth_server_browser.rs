//! devgate's sign-in and consent pages in headless Chromium: an MCP client's `/authorize` link opens the
//! login page, the user signs in with a Bitbucket account at the sim, answers devgate's consent page,
//! and the browser lands on the client's redirect URI with a code the client redeems. The pages run
//! under their strict CSP (no scripts; form posts only where they must go). Screenshots are kept under
//! `target/browser-artifacts/`.

use crate::common;
use crate::common::auth_server as support;

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::webdriver::{Browser, browser_available};
use common::*;
use devgate::sim::Sim;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A client's redirect URI on loopback that answers every request with a short page.
async fn redirect_target() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 21\r\nconnection: close\r\n\r\nthe client has it now")
                    .await;
            });
        }
    });
    format!("http://127.0.0.1:{port}/callback")
}

#[tokio::test(flavor = "multi_thread")]
async fn signing_in_and_consenting_in_headless_chromium() {
    if !browser_available() {
        return;
    }
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/browser-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let sim = Sim::start().await.unwrap();
    let setup = support::as_setup(&sim, "");
    let _gateway = oauth_http(&setup, &[]).await;
    let base = setup.public_url().to_string();
    let redirect = redirect_target().await;
    let http = reqwest::Client::new();
    let registered: Value = http
        .post(format!("{base}/register"))
        .json(&json!({"client_name": "Browser Test Agent", "redirect_uris": [redirect]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client = registered["client_id"].as_str().unwrap();
    let verifier = format!("chromium-verifier-{:032x}", rand::random::<u128>());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let mut authorize = url::Url::parse(&format!("{base}/authorize")).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client)
        .append_pair("redirect_uri", &redirect)
        .append_pair("state", "browser-state")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("resource", &format!("{base}/mcp"))
        .append_pair("scope", "tools:read tools:write");

    let profile = temp_path("chromium-profile-as");
    let browser = Browser::start(&profile).await;
    browser.goto(authorize.as_str()).await;
    browser.wait_for_url("/login").await;
    let login = browser.source().await;
    assert!(
        login.contains("Sign in to devgate") && login.contains("Browser Test Agent"),
        "{login}"
    );
    assert!(
        !browser.url().await.contains("code_challenge"),
        "the address bar is clean"
    );
    browser.screenshot(&artifacts, "as-1-login").await;
    browser
        .click("form[action='/login/bitbucket'] button")
        .await;
    browser.wait_for_url("/site/oauth2/authorize").await;
    browser.click("option[value=ann]").await;
    browser.click("#allow").await;

    let consent_url = browser.wait_for_url("/consent").await;
    assert!(!consent_url.contains("code="), "{consent_url}");
    let consent = browser.source().await;
    assert!(
        consent.contains("Allow Browser Test Agent to use devgate?")
            && consent.contains("Ann Dev")
            && consent.contains("bitbucket:")
            && consent.contains("tools:write")
            && consent.contains(&redirect[7..redirect.len() - "/callback".len()]),
        "{consent}"
    );
    browser.screenshot(&artifacts, "as-2-consent").await;
    browser.click("button[value=allow]").await;

    let landed = browser.wait_for_url("code=").await;
    assert!(landed.starts_with(&redirect), "{landed}");
    let params: std::collections::HashMap<String, String> = url::Url::parse(&landed)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(params["state"], "browser-state");
    browser.quit().await;
    let tokens: Value = http
        .post(format!("{base}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", client),
            ("code", &params["code"]),
            ("redirect_uri", &redirect),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tokens["scope"], "tools:read tools:write", "{tokens}");
    let mcp = http_client_with_key(
        &format!("{base}/mcp"),
        tokens["access_token"].as_str().unwrap(),
    )
    .await;
    let me = ok(
        "bitbucket_get_current_user",
        &call(&mcp, "bitbucket_get_current_user", json!({})).await,
    );
    assert_eq!(me["name"], "Ann Dev", "{me}");
}
