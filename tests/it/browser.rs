//! The connect flow in headless Chromium, driven over WebDriver (chromedriver): the connect page, the
//! simulated provider's consent page (choosing an account, clicking Allow), and devgate's success page;
//! then the provider's address opened in a second browser, whose callback is refused. A denial ends on
//! devgate's result page with no `error` or `state` in the address bar; `/` and `/mcp` show a page.
//! A screenshot of each page is kept under `target/browser-artifacts/`.
//!
//! `.ci/run` installs Debian's chromium and chromium-driver and sets `DEVGATE_REQUIRE_BROWSER=1`, so in
//! CI a missing browser fails the test; on a machine without them it is counted as skipped in the note
//! the test binary prints at exit (`tests/it/common/skip.rs`).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;
use base64::Engine;
use devgate::sim::Sim;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A minimal W3C WebDriver client.
struct Browser {
    http: reqwest::Client,
    base: String,
    session: String,
    _driver: tokio::process::Child,
}

impl Browser {
    async fn start(profile: &std::path::Path) -> Self {
        let port = free_port();
        let driver = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--no-first-run", "--window-size=1000,800", format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        Self {
            http,
            base,
            session,
            _driver: driver,
        }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.http.request(method, url);
        if let Some(b) = body {
            request = request.json(&b);
        }
        let reply: Value = request.send().await.unwrap().json().await.unwrap();
        reply["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn url(&self) -> String {
        self.command(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn source(&self) -> String {
        self.command(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn click(&self, css: &str) {
        let found = self
            .command(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        let id = found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string();
        self.command(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Waits (bounded) until the page's URL contains `part`.
    async fn wait_for_url(&self, part: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let url = self.url().await;
            if url.contains(part) {
                return url;
            }
            assert!(Instant::now() < deadline, "never reached {part}; at {url}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&self, dir: &std::path::Path, name: &str) {
        let png = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(dir.join(format!("{name}.png")), bytes).unwrap();
    }

    async fn quit(&self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.base, self.session))
            .send()
            .await;
    }
}

fn browser_available() -> bool {
    let present =
        std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists();
    if !present {
        skip::skip(
            skip::BROWSER,
            &format!(
                "headless Chromium is not installed ({CHROMIUM}, {CHROMEDRIVER}; apt install chromium chromium-driver, as .ci/run does)"
            ),
        );
    }
    present
}

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
