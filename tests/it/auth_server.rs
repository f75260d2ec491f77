//! devgate as the authorization server of its own MCP endpoint (`[http] auth = "oauth"`), driven over
//! HTTP as a client and a browser would: metadata, dynamic registration, `/authorize` with sign-in by a
//! provider account at the sim and the consent page, `/token`, tools called with the token, refresh
//! rotation, and the refusals (resource, PKCE, redirect URI, replayed code, reused refresh token).

use crate::common;
use crate::common::auth_server as support;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::{Running, devgate, start};

/// A redirect URI nobody listens on: the test reads the code from the `Location` header.
pub(crate) const REDIRECT: &str = "http://127.0.0.1:9/callback";

pub(crate) fn query(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A PKCE verifier and its S256 challenge.
pub(crate) fn pkce() -> (String, String) {
    let verifier = format!(
        "verifier-{:032x}-{:032x}",
        rand::random::<u128>(),
        rand::random::<u128>()
    );
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

pub(crate) async fn register(http: &reqwest::Client, base: &str, name: &str) -> String {
    let response = http
        .post(format!("{base}/register"))
        .json(&json!({"client_name": name, "redirect_uris": [REDIRECT]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["client_id"].as_str().unwrap().to_string()
}

/// The `/authorize` URL for `client` with the usual parameters, each overridable (`None` drops one).
pub(crate) fn authorize_url(
    base: &str,
    client: &str,
    challenge: &str,
    overrides: &[(&str, Option<&str>)],
) -> String {
    let resource = format!("{base}/mcp");
    let mut params: Vec<(&str, Option<&str>)> = vec![
        ("response_type", Some("code")),
        ("client_id", Some(client)),
        ("redirect_uri", Some(REDIRECT)),
        ("state", Some("st-123")),
        ("code_challenge", Some(challenge)),
        ("code_challenge_method", Some("S256")),
        ("resource", Some(&resource)),
        ("scope", Some("tools:read tools:write")),
    ];
    for (k, v) in overrides {
        match params.iter_mut().find(|(n, _)| n == k) {
            Some(p) => p.1 = *v,
            None => params.push((k, *v)),
        }
    }
    let mut url = url::Url::parse(&format!("{base}/authorize")).unwrap();
    for (k, v) in params {
        if let Some(v) = v {
            url.query_pairs_mut().append_pair(k, v);
        }
    }
    url.to_string()
}

/// Walks `/authorize` → `/login` → the sim's consent (as `account`) → callback → devgate's consent
/// (answering `decision`) in `browser`; returns where devgate finally sends the browser.
async fn sign_in(browser: &CookieClient, authorize: &str, account: &str, decision: &str) -> String {
    let started = browser.get(authorize).await;
    assert_eq!(
        started.status(),
        303,
        "{}",
        started.text().await.unwrap_or_default()
    );
    let next = location(&started, authorize);
    if next.ends_with("/consent") {
        return answer_consent(browser, &next, decision).await;
    }
    assert!(next.ends_with("/login"), "{next}");
    let login = browser.get(&next).await;
    assert_eq!(login.status(), 200);
    let csp = login.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    let html = login.text().await.unwrap();
    assert!(html.contains("Sign in with Bitbucket"), "{html}");
    let start = html
        .find("action=\"/login/bitbucket\"")
        .expect("a Bitbucket button");
    let csrf = form_value(&html[start..], "csrf").unwrap();
    let posted = browser
        .post_form(
            &format!("{}/login/bitbucket", base_of(&next)),
            &[("csrf".into(), csrf)],
        )
        .await;
    assert_eq!(posted.status(), 303);
    let provider = location(&posted, &next);
    let mut walk = Walk::default();
    finish_connect(browser, &provider, account, "allow", &mut walk).await;
    assert!(walk.final_url.ends_with("/consent"), "{}", walk.final_url);
    answer_consent(browser, &walk.final_url, decision).await
}

pub(crate) fn base_of(url: &str) -> String {
    let u = url::Url::parse(url).unwrap();
    u.origin().ascii_serialization()
}

/// The consent page (or, with a remembered consent, its redirect) and the answer.
pub(crate) async fn answer_consent(
    browser: &CookieClient,
    consent: &str,
    decision: &str,
) -> String {
    let page = browser.get(consent).await;
    if page.status().is_redirection() {
        return location(&page, consent);
    }
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("tools:write"), "{html}");
    assert!(
        html.contains("127.0.0.1:9"),
        "the redirect host is shown: {html}"
    );
    let csrf = form_value(&html, "csrf").unwrap();
    let answered = browser
        .post_form(
            consent,
            &[("csrf".into(), csrf), ("decision".into(), decision.into())],
        )
        .await;
    assert_eq!(answered.status(), 303);
    location(&answered, consent)
}

async fn token(http: &reqwest::Client, base: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let response = http
        .post(format!("{base}/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

pub(crate) async fn redeem(
    http: &reqwest::Client,
    base: &str,
    client: &str,
    code: &str,
    verifier: &str,
) -> (u16, Value) {
    let resource = format!("{base}/mcp");
    token(
        http,
        base,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
            ("resource", &resource),
        ],
    )
    .await
}

/// Signs in as `account` (see [`sign_in`]) with the usual parameters and `overrides`, and redeems the
/// code: the token response.
async fn tokens_for(
    http: &reqwest::Client,
    browser: &CookieClient,
    base: &str,
    client: &str,
    account: &str,
    overrides: &[(&str, Option<&str>)],
) -> Value {
    let (verifier, challenge) = pkce();
    let url = authorize_url(base, client, &challenge, overrides);
    let back = sign_in(browser, &url, account, "allow").await;
    let code = query(&back, "code").unwrap_or_else(|| panic!("no code: {back}"));
    let (status, tokens) = redeem(http, base, client, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    tokens
}

pub(crate) async fn refresh_with(
    http: &reqwest::Client,
    base: &str,
    client: &str,
    refresh: &str,
) -> (u16, Value) {
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", client),
        ("refresh_token", refresh),
    ];
    token(http, base, &form).await
}

/// Asserts a token endpoint's refusal.
fn assert_refused((status, body): (u16, Value), expected: u16, error: &str) {
    assert_eq!(
        (status, body["error"].as_str()),
        (expected, Some(error)),
        "{body}"
    );
}

async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

/// The status of an MCP `initialize` sent with `bearer`.
pub(crate) async fn mcp_status(
    http: &reqwest::Client,
    base: &str,
    bearer: &str,
) -> reqwest::Response {
    http.post(format!("{base}/mcp"))
        .bearer_auth(bearer)
        .header("accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}}),
        )
        .send()
        .await
        .unwrap()
}

/// The whole flow a remote client goes through, and each token rule on the way.
#[tokio::test(flavor = "multi_thread")]
async fn a_registered_client_signs_in_calls_tools_refreshes_and_loses_access_on_reuse() {
    let Running {
        sim: _sim,
        setup,
        gateway,
        http,
        base,
    } = start("").await;

    // Unauthenticated: the challenge names the metadata and the scopes.
    let refused = mcp_status(&http, &base, "").await;
    assert_eq!(refused.status(), 401);
    let challenge = refused.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.contains("resource_metadata=")
            && challenge.contains("scope=\"tools:read tools:write\""),
        "{challenge}"
    );
    let prm: Value = get_json(
        &http,
        &format!("{base}/.well-known/oauth-protected-resource"),
    )
    .await;
    assert_eq!(prm["authorization_servers"], json!([base]));
    let asm: Value = get_json(
        &http,
        &format!("{base}/.well-known/oauth-authorization-server"),
    )
    .await;
    assert_eq!(asm["issuer"], json!(base));
    assert_eq!(asm["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(asm["client_id_metadata_document_supported"], json!(true));
    assert_eq!(
        asm["registration_endpoint"],
        json!(format!("{base}/register"))
    );

    let client = register(&http, &base, "Test Agent").await;
    let browser = CookieClient::new();
    let (verifier, challenge) = pkce();
    let back = sign_in(
        &browser,
        &authorize_url(&base, &client, &challenge, &[]),
        "ann",
        "allow",
    )
    .await;
    assert!(back.starts_with(REDIRECT), "{back}");
    assert_eq!(query(&back, "state").as_deref(), Some("st-123"));
    assert_eq!(query(&back, "iss").as_deref(), Some(base.as_str()));
    let code = query(&back, "code").expect("a code");

    // A wrong verifier is refused, and uses the code up.
    let (status, body) = redeem(
        &http,
        &base,
        &client,
        &code,
        "wrong-verifier-0123456789012345678901234567",
    )
    .await;
    assert_refused((status, body), 400, "invalid_grant");

    // A second sign-in in the same browser goes straight through: signed in, consent remembered.
    let back = sign_in(
        &browser,
        &authorize_url(&base, &client, &challenge, &[]),
        "ann",
        "allow",
    )
    .await;
    let code = query(&back, "code").expect("a code without asking again");
    let (status, tokens) = redeem(&http, &base, &client, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "tools:read tools:write");
    let access = tokens["access_token"].as_str().unwrap().to_string();

    // The token works at /mcp, and the Bitbucket account is already connected for its user.
    let mcp = http_client_with_key(&gateway.url, &access).await;
    let me = ok(
        "whoami",
        &call(&mcp, "bitbucket_get_current_user", json!({})).await,
    );
    assert!(me.to_string().contains("Ann"), "{me}");

    // The code again: refused, and the grant it gave is revoked.
    let (status, body) = redeem(&http, &base, &client, &code, &verifier).await;
    assert_refused((status, body), 400, "invalid_grant");
    assert_eq!(mcp_status(&http, &base, &access).await.status(), 401);

    // A new grant; refresh rotates; the old refresh token again revokes the grant.
    let tokens = tokens_for(&http, &browser, &base, &client, "ann", &[]).await;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    let (status, rotated) = refresh_with(&http, &base, &client, &refresh).await;
    assert_eq!(status, 200, "{rotated}");
    let new_access = rotated["access_token"].as_str().unwrap().to_string();
    assert_ne!(rotated["refresh_token"].as_str().unwrap(), refresh);
    assert_eq!(mcp_status(&http, &base, &new_access).await.status(), 200);
    let (status, body) = refresh_with(&http, &base, &client, &refresh).await;
    assert_refused((status, body), 400, "invalid_grant");
    assert_eq!(mcp_status(&http, &base, &new_access).await.status(), 401);

    // Revoking the client ends every grant it has.
    let tokens = tokens_for(&http, &browser, &base, &client, "ann", &[]).await;
    let last = tokens["access_token"].as_str().unwrap().to_string();
    assert_eq!(mcp_status(&http, &base, &last).await.status(), 200);
    assert!(devgate(&setup, &["clients", "revoke", &client]).contains("revoked"));
    assert_eq!(mcp_status(&http, &base, &last).await.status(), 401);
    let (status, body) = token(
        &http,
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_refused((status, body), 401, "invalid_client");

    // API keys keep working beside the tokens.
    let key = create_api_key(&setup, "carol");
    assert_eq!(mcp_status(&http, &base, &key).await.status(), 200);

    let logs = gateway.stderr.text();
    for secret in [&access, &new_access, &refresh] {
        assert!(
            !logs.contains(secret.as_str()),
            "a token or verifier is in the log"
        );
    }
}

/// What `/authorize` refuses, and how: on a page until the redirect URI is known, then back to the
/// client with `error=…`.
#[tokio::test(flavor = "multi_thread")]
async fn authorize_refuses_bad_requests_on_a_page_or_back_to_the_client() {
    let Running {
        sim: _sim,
        gateway: _gateway,
        http,
        base,
        ..
    } = start("").await;
    let client = register(&http, &base, "Agent").await;
    let (_, challenge) = pkce();

    for (overrides, what) in [
        (
            vec![("redirect_uri", Some("http://127.0.0.1:9/elsewhere"))],
            "not registered",
        ),
        (vec![("client_id", Some("dgcl_nobody"))], "unknown client"),
        (vec![("client_id", None)], "no client_id"),
    ] {
        let response = http
            .get(authorize_url(&base, &client, &challenge, &overrides))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{what}");
        assert!(
            response.headers().get("location").is_none(),
            "{what}: never redirected"
        );
        let html = response.text().await.unwrap();
        assert!(html.contains("Nothing was authorized"), "{what}: {html}");
    }

    let other = "https://other.example/mcp";
    for (overrides, error, mentions) in [
        (
            vec![("resource", None)],
            "invalid_target",
            "resource is required",
        ),
        (
            vec![("resource", Some(other))],
            "invalid_target",
            "other.example",
        ),
        (vec![("code_challenge", None)], "invalid_request", "PKCE"),
        (
            vec![("code_challenge_method", Some("plain"))],
            "invalid_request",
            "S256",
        ),
        (
            vec![("response_type", Some("token"))],
            "unsupported_response_type",
            "code",
        ),
        (vec![("scope", Some("admin"))], "invalid_scope", "admin"),
    ] {
        let response = http
            .get(authorize_url(&base, &client, &challenge, &overrides))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "{error}");
        let back = location(&response, &base);
        assert!(back.starts_with(REDIRECT), "{back}");
        assert_eq!(query(&back, "error").as_deref(), Some(error), "{back}");
        assert_eq!(query(&back, "state").as_deref(), Some("st-123"));
        assert!(
            query(&back, "error_description")
                .unwrap()
                .contains(mentions),
            "{back}"
        );
    }
}

/// Registration can be turned off; a token for another resource is refused at `/mcp`.
#[tokio::test(flavor = "multi_thread")]
async fn registration_off_and_a_token_for_another_audience_is_refused() {
    let config = "[auth_server]\nregistration = \"off\"\n[[auth_server.clients]]\nclient_id = \"cli\"\nname = \"Configured CLI\"\nredirect_uris = [\"http://127.0.0.1:9/callback\"]\n";
    let Running {
        sim: _sim,
        setup,
        gateway,
        http,
        base,
    } = start(config).await;
    let asm: Value = get_json(
        &http,
        &format!("{base}/.well-known/oauth-authorization-server"),
    )
    .await;
    assert!(asm.get("registration_endpoint").is_none(), "{asm}");
    let refused = http
        .post(format!("{base}/register"))
        .json(&json!({"redirect_uris": [REDIRECT]}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    // The configured client signs in and gets a token for this devgate.
    let browser = CookieClient::new();
    let tokens = tokens_for(&http, &browser, &base, "cli", "ben", &[]).await;
    let access = tokens["access_token"].as_str().unwrap().to_string();
    assert_eq!(mcp_status(&http, &base, &access).await.status(), 200);

    // A read-only grant: tools/list shows only read-only tools, and a call that changes things is
    // answered 403 insufficient_scope, so the client can ask for more.
    let read = [("scope", Some("tools:read"))];
    let tokens = tokens_for(&http, &browser, &base, "cli", "ben", &read).await;
    assert_eq!(tokens["scope"], "tools:read");
    let read_only = tokens["access_token"].as_str().unwrap().to_string();
    let mcp = http_client_with_key(&gateway.url, &read_only).await;
    let listed = mcp.list_all_tools().await.unwrap();
    assert!(
        listed
            .iter()
            .any(|t| t.name == "bitbucket_list_pull_requests")
    );
    assert!(
        !listed
            .iter()
            .any(|t| t.name == "bitbucket_add_pull_request_comment")
    );
    let full = http_client_with_key(&gateway.url, &access).await;
    assert!(full.list_all_tools().await.unwrap().len() > listed.len());
    let refused = http
        .post(format!("{base}/mcp"))
        .bearer_auth(&read_only)
        .header("accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "bitbucket_add_pull_request_comment",
            "arguments": {"repo_slug": "api", "pull_request_id": 25, "text": "hi"}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let challenge = refused.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.contains("error=\"insufficient_scope\"") && challenge.contains("tools:write"),
        "{challenge}"
    );
    let result = call(&mcp, "bitbucket_get_current_user", json!({})).await;
    assert!(!is_error(&result), "{}", text(&result));

    // RFC 7009: revoking an access token ends it alone; revoking a refresh token ends the grant.
    let tokens = tokens_for(&http, &browser, &base, "cli", "ben", &[]).await;
    let (access2, refresh2) = (
        tokens["access_token"].as_str().unwrap(),
        tokens["refresh_token"].as_str().unwrap(),
    );
    for token in [access2, "not-a-token"] {
        let revoked = http
            .post(format!("{base}/revoke"))
            .form(&[("client_id", "cli"), ("token", token)])
            .send()
            .await
            .unwrap();
        assert_eq!(
            revoked.status(),
            200,
            "RFC 7009 answers 200 for unknown tokens too"
        );
    }
    assert_eq!(mcp_status(&http, &base, access2).await.status(), 401);
    let (status, rotated) = refresh_with(&http, &base, "cli", refresh2).await;
    assert_eq!(status, 200, "{rotated}");
    let refresh3 = rotated["refresh_token"].as_str().unwrap();
    let access3 = rotated["access_token"].as_str().unwrap();
    http.post(format!("{base}/revoke"))
        .form(&[("client_id", "cli"), ("token", refresh3)])
        .send()
        .await
        .unwrap();
    assert_eq!(mcp_status(&http, &base, access3).await.status(), 401);
    assert_refused(
        refresh_with(&http, &base, "cli", refresh3).await,
        400,
        "invalid_grant",
    );

    // The operator sees the grants and withdraws the read-only one: its token stops working.
    let listed = devgate(&setup, &["grants", "list"]);
    let line = listed
        .lines()
        .find(|l| l.contains("  tools:read  since"))
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(
        line.contains("bitbucket:") && line.contains("cli"),
        "{line}"
    );
    let id = line.split_whitespace().next().unwrap();
    assert!(devgate(&setup, &["grants", "revoke", id]).contains("revoked"));
    assert_eq!(mcp_status(&http, &base, &read_only).await.status(), 401);
    assert_eq!(mcp_status(&http, &base, &access).await.status(), 200);
    let clients = devgate(&setup, &["clients", "list"]);
    assert!(
        clients.contains("cli  config  \"Configured CLI\""),
        "{clients}"
    );
    drop(gateway);

    // The same store behind another public URL is another resource: the token is not for it.
    let text = std::fs::read_to_string(&setup.config).unwrap();
    let port = free_port();
    std::fs::write(
        &setup.config,
        text.replace(&base, &format!("http://127.0.0.1:{port}")),
    )
    .unwrap();
    let other = oauth_http_on(&setup, port, &[]).await;
    let response = mcp_status(&http, &other.url.replace("/mcp", ""), &access).await;
    assert_eq!(response.status(), 401);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(challenge.contains("invalid_token"), "{challenge}");
    assert!(response.text().await.unwrap().contains("another audience"));
}
