//! The connect flow in headless Chromium, driven over WebDriver (chromedriver): the connect page, the
//! simulated provider's consent page (choosing an account, clicking Allow), and devgate's success page;
//! then the provider's address opened in a second browser, whose callback is refused. A denial ends on
//! devgate's result page with no `error` or `state` in the address bar; `/` and `/mcp` show a page.
//! The simulated identity provider's sign-in page is walked too, up to a callback that signs the chosen
//! user in. A screenshot of each page is kept under `target/browser-artifacts/`.
//!
//! `.ci/run` installs Debian's chromium and chromium-driver and sets `DEVGATE_REQUIRE_BROWSER=1`, so in
//! CI a missing browser fails the test; on a machine without them it is counted as skipped in the note
//! the test binary prints at exit (`tests/it/common/skip.rs`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::common::webdriver::{Browser, browser_available};
use crate::common::*;
use devgate::sim::Sim;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn connecting_in_headless_chromium() {
    if !browser_available() {
        return;
    }
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/browser-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    let key = create_api_key(&setup, "dana");
    let gateway = oauth_http(&setup, &[]).await;
    let client = http_client_with_key(&gateway.url, &key).await;
    let needs = call(&client, "bitbucket_get_current_user", json!({})).await;
    let link = link_in(&text(&needs));

    let profile = temp_path("chromium-profile");
    let browser = Browser::start(&profile).await;
    let mut pages = Vec::new();
    browser.goto(&link).await;
    let page = browser.source().await;
    pages.push(page.clone());
    assert!(
        page.contains("Connect Bitbucket Cloud to devgate") && page.contains("dana"),
        "{page}"
    );
    browser.screenshot(&artifacts, "1-connect").await;

    browser.click("button[type=submit]").await;
    browser.wait_for_url("/site/oauth2/authorize").await;
    let consent = browser.source().await;
    assert!(consent.contains("Grant access"));
    browser.click("option[value=ben]").await;
    browser.screenshot(&artifacts, "2-consent").await;
    browser.click("#allow").await;

    let done = browser.wait_for_url("/connected").await;
    assert!(
        !done.contains("code=") && !done.contains("state="),
        "no code or state left in the address bar: {done}"
    );
    let page = browser.source().await;
    pages.push(page.clone());
    assert!(
        page.contains("is connected") && page.contains("dana"),
        "{page}"
    );
    browser.screenshot(&artifacts, "3-connected").await;

    // Using the same link again says it was used.
    browser.goto(&link).await;
    assert!(browser.source().await.contains("already used"));
    browser.screenshot(&artifacts, "4-link-used").await;

    // The provider's address copied to another browser (its own profile, no devgate cookies) connects
    // nothing: the callback there is refused.
    let needs = call(&client, "buddy_get_user", json!({})).await;
    browser.goto(&link_in(&text(&needs))).await;
    browser.click("button[type=submit]").await;
    let authorize = browser.wait_for_url("/oauth2/authorize").await;
    let other_profile = temp_path("chromium-profile-other");
    let other = Browser::start(&other_profile).await;
    other.goto(&authorize).await;
    other.click("#allow").await;
    other.wait_for_url("/integration-callback").await;
    let refused = other.source().await;
    pages.push(refused.clone());
    assert!(
        refused.contains("Finish connecting in the browser you started in"),
        "{refused}"
    );
    other
        .screenshot(&artifacts, "5-other-browser-refused")
        .await;
    other.quit().await;
    browser.quit().await;
    let buddy = call(&client, "buddy_get_user", json!({})).await;
    assert!(is_error(&buddy), "nothing was connected: {}", text(&buddy));

    let me = ok(
        "bitbucket_get_current_user",
        &call(&client, "bitbucket_get_current_user", json!({})).await,
    );
    assert_ne!(
        me["name"], "Ann Dev",
        "the account chosen in the browser was connected: {me}"
    );
    assert_no_secrets(
        &sim,
        &[key],
        &[
            ("the logs", &gateway.stderr.text()),
            ("a tool result", &me.to_string()),
            ("devgate's pages", &pages.join("\n")),
        ],
    );
    client.cancel().await.unwrap();
}

/// The confirm page in a real browser: its CSRF cookie (`SameSite=Strict`, `Path=/confirm`) goes with
/// the button's POST, the strict CSP leaves the page usable, and the approval lets the retry run once.
#[tokio::test(flavor = "multi_thread")]
async fn confirming_in_headless_chromium() {
    if !browser_available() {
        return;
    }
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/browser-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    let key = create_api_key(&setup, "dana");
    let gateway = oauth_http(&setup, &["--stateless"]).await;
    let client = http_client_with_key(&gateway.url, &key).await;
    let needs = call(&client, "bitbucket_get_current_user", json!({})).await;
    walk_connect(&link_in(&text(&needs)), "ann", "allow").await;

    let merge = json!({"repo_slug": "api", "pull_request_id": 21, "close_source_branch": true});
    let asked = call(&client, "bitbucket_merge_pull_request", merge.clone()).await;
    let link = link_in(&text(&asked));
    let profile = temp_path("chromium-profile");
    let browser = Browser::start(&profile).await;
    browser.goto(&link).await;
    let page = browser.source().await;
    assert!(
        page.contains("Confirm a change")
            && page.contains("dana")
            && page.contains("close_source_branch: true"),
        "{page}"
    );
    browser.screenshot(&artifacts, "5-confirm").await;
    browser.click("button[type=submit]").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let approved = loop {
        let page = browser.source().await;
        if page.contains("<h1>Approved</h1>") {
            break page;
        }
        assert!(Instant::now() < deadline, "never approved: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    browser.screenshot(&artifacts, "6-approved").await;
    browser.quit().await;

    let merged = call(&client, "bitbucket_merge_pull_request", merge).await;
    assert_eq!(ok("merge", &merged)["state"], "MERGED");
    assert_no_secrets(
        &sim,
        &[key],
        &[
            ("the logs", &gateway.stderr.text()),
            ("devgate's pages", &format!("{page}{approved}")),
        ],
    );
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn denying_and_the_root_and_mcp_pages_in_headless_chromium() {
    if !browser_available() {
        return;
    }
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/browser-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    let key = create_api_key(&setup, "omar");
    let gateway = oauth_http(&setup, &[]).await;
    let client = http_client_with_key(&gateway.url, &key).await;
    let profile = temp_path("chromium-profile-deny");
    let browser = Browser::start(&profile).await;

    // Deny on the provider's page: devgate's result page, and nothing of the callback's query left.
    let needs = call(&client, "buddy_get_user", json!({})).await;
    browser.goto(&link_in(&text(&needs))).await;
    let page = browser.source().await;
    assert!(
        page.contains("See your name and avatar") && page.contains("USER_INFO"),
        "the scopes with their descriptions: {page}"
    );
    browser.click("button[type=submit]").await;
    browser.wait_for_url("/oauth2/authorize").await;
    browser.click("#deny").await;
    let done = browser.wait_for_url("/connected").await;
    assert!(
        !done.contains("error") && !done.contains("state") && !done.contains('?'),
        "the address bar keeps no error or state: {done}"
    );
    let page = browser.source().await;
    assert!(page.contains("You did not connect Buddy.Works"), "{page}");
    browser.screenshot(&artifacts, "6-denied").await;
    assert!(is_error(&call(&client, "buddy_get_user", json!({})).await));

    // `/` and `/mcp` as a browser opens them.
    let mcp = format!("{}/mcp", setup.public_url());
    browser.goto(&format!("{}/", setup.public_url())).await;
    let home = browser.source().await;
    assert!(
        home.contains(&mcp) && home.contains("devgate_connections"),
        "{home}"
    );
    browser.screenshot(&artifacts, "7-home").await;
    browser.goto(&mcp).await;
    let hint = browser.source().await;
    assert!(
        hint.contains("This address is for MCP clients") && hint.contains(&mcp),
        "{hint}"
    );
    browser.screenshot(&artifacts, "8-mcp-in-a-browser").await;
    browser.quit().await;
    client.cancel().await.unwrap();
}

/// The simulated identity provider's sign-in page in a real browser: its CSRF cookie goes with the
/// form's POST, the user picked in the list is the one signed in, and the browser lands on the callback
/// with a code that `OidcLogin::finish` turns into that user and their groups (the test serves the
/// callback on loopback, as devgate's `/login` page will).
#[tokio::test(flavor = "multi_thread")]
async fn signing_in_at_the_simulated_identity_provider_in_headless_chromium() {
    use devgate::auth_server::oidc::{CALLBACK_PATH, LoginConfig, OidcLogin};
    use devgate::sim::oidc::{Idp, SIM_OIDC_CLIENT_ID, SIM_OIDC_CLIENT_SECRET};

    if !browser_available() {
        return;
    }
    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/browser-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let idp = Idp::start().await.unwrap();
    let text = format!(
        "[login]\nissuer = \"{}\"\nclient_id = \"{SIM_OIDC_CLIENT_ID}\"\nclient_secret = \"{SIM_OIDC_CLIENT_SECRET}\"\n",
        idp.issuer
    );
    let config: LoginConfig = devgate::config::Config::from_toml(&text, "test", std::iter::empty())
        .unwrap()
        .login
        .unwrap();
    let login = OidcLogin::discover(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirect = format!("http://{}{CALLBACK_PATH}", listener.local_addr().unwrap());
    let (authorize, pending) = login.begin(&redirect);
    let callback = {
        let redirect = redirect.clone();
        let login = std::sync::Arc::new(login);
        move |axum::extract::Query(q): axum::extract::Query<
            std::collections::HashMap<String, String>,
        >| async move {
            let (state, code) = (
                q.get("state").cloned().unwrap_or_default(),
                q.get("code").cloned().unwrap_or_default(),
            );
            match login.finish(&pending, &state, &code, &redirect).await {
                Ok(id) => axum::response::Html(format!(
                    "<p id=\"who\">signed in as {} ({})</p>",
                    id.user,
                    id.groups.join(", ")
                )),
                Err(e) => axum::response::Html(format!("<p id=\"who\">refused: {e}</p>")),
            }
        }
    };
    let app = axum::Router::new().route(CALLBACK_PATH, axum::routing::get(callback));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let profile = temp_path("chromium-profile-idp");
    let browser = Browser::start(&profile).await;
    browser.goto(authorize.as_str()).await;
    let page = browser.source().await;
    assert!(
        page.contains("Sign in to Acme") && page.contains("Simulated identity provider"),
        "{page}"
    );
    browser.click("option[value=cyd]").await;
    browser.screenshot(&artifacts, "idp-1-sign-in").await;
    browser.click("#sign-in").await;
    browser.wait_for_url(CALLBACK_PATH).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let landed = loop {
        let page = browser.source().await;
        if page.contains("id=\"who\"") {
            break page;
        }
        assert!(
            Instant::now() < deadline,
            "the callback page never loaded: {page}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        landed.contains("signed in as cyd (contractors)"),
        "{landed}"
    );
    browser.screenshot(&artifacts, "idp-2-signed-in").await;
    browser.quit().await;
}
