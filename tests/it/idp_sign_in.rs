//! Signing in to devgate's authorization server through the organisation's identity provider (`[login]`,
//! the simulated one), as a browser would: `/authorize` → `/login` → "Sign in with <issuer host>" →
//! the provider's page → `/login/oidc/callback` → consent → code → token. The provider's groups reach
//! `[[policies]]` through the grant (a contractor sees only read-only tools and is refused a write
//! naming the policy; a developer sees more). A callback without this browser's sign-in cookie, with
//! another browser's, with a bad ID token, or after the user cancelled is refused on a page and
//! starts no session.

use crate::auth_server::{
    REDIRECT, answer_consent, authorize_url, base_of, pkce, query, redeem, register,
};
use crate::auth_server_sdk::Script;
use crate::common;
use crate::common::auth_server as support;

use common::*;
use devgate::sim::Sim;
use devgate::sim::oidc::{Idp, Knobs, login_config_text};
use rmcp::model::CallToolRequestParams;
use serde_json::json;

const POLICIES: &str = r#"
[[policies]]
group = "devs"
allow_toolsets = ["pull_requests", "repositories"]

[[policies]]
group = "contractors"
allow_toolsets = ["pull_requests"]
read_only = true
"#;

const APPROVE: &str = "bitbucket_approve_pull_request";

/// A devgate with `http.auth = "oauth"`, the simulated identity provider as `[login]` and the policies.
async fn start() -> (Idp, support::Running) {
    let idp = Idp::start().await.unwrap();
    let extra = format!("{}{POLICIES}", login_config_text(&idp.issuer));
    let sim = Sim::start().await.unwrap();
    let setup = support::as_setup(&sim, "");
    // `[login]` and the policies go at the end: the harness puts `extra` before the top-level keys.
    let text = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(&setup.config, format!("{text}\n{extra}")).unwrap();
    let gateway = oauth_http(&setup, &[]).await;
    let base = setup.public_url().to_string();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    (
        idp,
        support::Running {
            sim,
            setup,
            gateway,
            http,
            base,
        },
    )
}

/// `/authorize` → `/login` → the identity provider's button: the provider's sign-in URL.
pub(crate) async fn to_provider(browser: &CookieClient, authorize: &str, issuer: &str) -> String {
    let started = browser.get(authorize).await;
    assert_eq!(started.status(), 303);
    let login = location(&started, authorize);
    assert!(login.ends_with("/login"), "{login}");
    let html = browser.get(&login).await.text().await.unwrap();
    let host = issuer.trim_start_matches("http://");
    assert!(
        html.contains(&format!("Sign in with {host}")),
        "the identity provider's button: {html}"
    );
    assert!(
        html.contains("Sign in with Bitbucket"),
        "beside the accounts: {html}"
    );
    let start = html
        .find("action=\"/login/oidc/start\"")
        .expect("the identity provider's form");
    let csrf = form_value(&html[start..], "csrf").unwrap();
    let posted = browser
        .post_form(
            &format!("{}/login/oidc/start", base_of(&login)),
            &[("csrf".into(), csrf)],
        )
        .await;
    assert_eq!(posted.status(), 303);
    let provider = location(&posted, &login);
    assert!(provider.starts_with(issuer), "{provider}");
    provider
}

/// The provider's page, answered as `user` with `decision`: devgate's callback URL.
pub(crate) async fn at_provider(
    browser: &CookieClient,
    url: &str,
    user: &str,
    decision: &str,
) -> String {
    let page = browser.get(url).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let mut form = hidden_fields(&html);
    form.push(("user".into(), user.into()));
    form.push(("decision".into(), decision.into()));
    let answered = browser.post_form(&form_action(&html, url), &form).await;
    assert_eq!(answered.status(), 303);
    let callback = location(&answered, url);
    assert!(callback.contains("/login/oidc/callback"), "{callback}");
    callback
}

/// Signs in as `user` at the provider and consents: an access token.
pub(crate) async fn token_for(
    http: &reqwest::Client,
    base: &str,
    issuer: &str,
    client: &str,
    user: &str,
) -> String {
    let browser = CookieClient::new();
    let (verifier, challenge) = pkce();
    let authorize = authorize_url(base, client, &challenge, &[]);
    let provider = to_provider(&browser, &authorize, issuer).await;
    let callback = at_provider(&browser, &provider, user, "allow").await;
    let back = browser.get(&callback).await;
    assert_eq!(
        back.status(),
        303,
        "{}",
        back.text().await.unwrap_or_default()
    );
    let consent = location(&back, &callback);
    assert!(consent.ends_with("/consent"), "{consent}");
    let done = answer_consent(&browser, &consent, "allow").await;
    assert!(done.starts_with(REDIRECT), "{done}");
    let code = query(&done, "code").expect("a code");
    let (status, tokens) = redeem(http, base, client, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    tokens["access_token"].as_str().unwrap().to_string()
}

async fn listed(client: &rmcp::service::RunningService<rmcp::RoleClient, ()>) -> Vec<String> {
    let tools = client.list_all_tools().await.expect("tools/list");
    tools.into_iter().map(|t| t.name.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_identity_providers_users_sign_in_and_their_groups_decide_the_tools() {
    let (idp, running) = start().await;
    let client = register(&running.http, &running.base, "IdP Agent").await;

    let (http, base) = (&running.http, running.base.as_str());
    let cyd = token_for(http, base, &idp.issuer, &client, "cyd").await;
    let ada = token_for(http, base, &idp.issuer, &client, "ada").await;
    let grants = support::devgate(&running.setup, &["grants", "list"]);
    assert!(
        grants.contains(" cyd ") && grants.contains(" ada "),
        "the devgate users are the provider's user names: {grants}"
    );

    let cyd = http_client_with_key(&running.gateway.url, &cyd).await;
    let ada = http_client_with_key(&running.gateway.url, &ada).await;
    let cyd_tools = listed(&cyd).await;
    let ada_tools = listed(&ada).await;
    assert!(
        cyd_tools
            .iter()
            .any(|t| t == "bitbucket_list_pull_requests")
    );
    for tool in [APPROVE, "bitbucket_get_repository"] {
        assert!(!cyd_tools.iter().any(|t| t == tool), "cyd: {tool}");
        assert!(ada_tools.iter().any(|t| t == tool), "ada: {tool}");
    }
    let refused = cyd
        .call_tool(
            CallToolRequestParams::new(APPROVE)
                .with_arguments(args(json!({"repo_slug": "api", "pull_request_id": 24}))),
        )
        .await
        .unwrap();
    assert!(is_error(&refused));
    assert!(
        text(&refused).contains("(group \"contractors\") read_only"),
        "the refusal names the policy: {}",
        text(&refused)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_callback_from_another_browser_a_bad_id_token_or_a_cancel_starts_no_session() {
    let (idp, running) = start().await;
    let client = register(&running.http, &running.base, "IdP Agent").await;
    let (_verifier, challenge) = pkce();
    let authorize = authorize_url(&running.base, &client, &challenge, &[]);
    let no_session = |b: &CookieClient| !b.cookies().iter().any(|c| c.name == "devgate_session");

    let ada = CookieClient::new();
    let provider = to_provider(&ada, &authorize, &idp.issuer).await;
    let callback = at_provider(&ada, &provider, "ada", "allow").await;

    // Another browser, with an authorization request of its own but no sign-in cookie.
    let other = CookieClient::new();
    assert_eq!(other.get(&authorize).await.status(), 303);
    let page = other.get(&callback).await;
    assert_eq!(page.status(), 403);
    let html = page.text().await.unwrap();
    assert!(html.contains("did not start in this browser"), "{html}");
    assert!(no_session(&other));

    // A browser that started its own sign-in: its cookie does not match ada's answer.
    let third = CookieClient::new();
    to_provider(&third, &authorize, &idp.issuer).await;
    let page = third.get(&callback).await;
    assert_eq!(page.status(), 403);
    let html = page.text().await.unwrap();
    assert!(html.contains("state differs"), "{html}");
    assert!(no_session(&third));
    assert!(
        !third.cookies().iter().any(|c| c.name == "devgate_oidc"),
        "a refused callback clears the sign-in cookie"
    );

    // The browser that started it is still let in.
    let back = ada.get(&callback).await;
    assert_eq!(back.status(), 303);
    assert!(location(&back, &callback).ends_with("/consent"));
    assert!(!no_session(&ada));

    // A bad signature on the ID token.
    idp.state.set_knobs(Knobs {
        bad_signature: true,
        ..Knobs::default()
    });
    let bad = CookieClient::new();
    let provider = to_provider(&bad, &authorize, &idp.issuer).await;
    let callback = at_provider(&bad, &provider, "bob", "allow").await;
    let page = bad.get(&callback).await;
    assert_eq!(page.status(), 403);
    let html = page.text().await.unwrap();
    assert!(html.contains("ID token is not valid"), "{html}");
    assert!(no_session(&bad));
    idp.state.set_knobs(Knobs::default());

    // The user cancels at the provider.
    let cancel = CookieClient::new();
    let provider = to_provider(&cancel, &authorize, &idp.issuer).await;
    let callback = at_provider(&cancel, &provider, "bob", "deny").await;
    assert!(callback.contains("error=access_denied"), "{callback}");
    let page = cancel.get(&callback).await;
    assert_eq!(page.status(), 403);
    let html = page.text().await.unwrap();
    assert!(html.contains("You cancelled signing in"), "{html}");
    assert!(no_session(&cancel));

    let logs = running.gateway.stderr.text();
    assert!(!logs.contains(devgate::sim::oidc::SIM_OIDC_CLIENT_SECRET));
    for secret in idp.state.issued_secrets() {
        assert!(!logs.contains(&secret), "a provider secret is in the log");
    }
}

/// The issue's proof: the official MCP Python SDK's OAuth client provider registers, signs in through
/// the simulated identity provider (its redirect handler walks the pages), is held to the user's
/// group policy, refreshes, and is refused after its grant is revoked; another user sees more.
#[tokio::test(flavor = "multi_thread")]
async fn the_python_sdk_signs_in_through_the_identity_provider_under_the_groups_policy() {
    let Some(python) = python() else {
        return;
    };
    let (_idp, running) = start().await;
    let mut cyd = Script::start(&python, &[&running.gateway.url, "dcr", "idp:cyd"]);
    cyd.next("authorize").await;
    let signed_in = cyd.next("signed-in").await;
    let client_id = signed_in["client_id"].as_str().unwrap().to_string();
    // login, the identity provider's page, devgate's consent.
    assert_eq!(signed_in["pages"], 3, "{signed_in}");
    let names: Vec<&str> = signed_in["names"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str())
        .collect();
    assert!(names.contains(&"bitbucket_list_pull_requests"), "{names:?}");
    assert!(
        !names.contains(&APPROVE),
        "read-only for contractors: {names:?}"
    );
    let called = cyd.next("called").await;
    assert_eq!(called["read_denied"], false, "{called}");
    assert_eq!(
        called["read_connect"], true,
        "allowed, and asks to connect Bitbucket: {called}"
    );
    assert_eq!(called["write_error"], true, "{called}");
    assert!(
        called["write"]
            .as_str()
            .unwrap()
            .contains("(group \"contractors\") read_only"),
        "{called}"
    );
    let refreshed = cyd.next("refreshed").await;
    assert_eq!(refreshed["changed"], true, "{refreshed}");
    assert_eq!(refreshed["denied"], false, "{refreshed}");
    cyd.next("waiting").await;
    let grants = support::devgate(&running.setup, &["grants", "list"]);
    assert!(
        grants
            .lines()
            .any(|l| l.contains(&client_id) && l.contains(" cyd ")),
        "{grants}"
    );
    support::devgate(&running.setup, &["grants", "revoke", "--user", "cyd"]);
    cyd.go_on().await;
    let after = cyd.next("after-revoke").await;
    assert_eq!(after["mcp"], 401, "{after}");
    assert_eq!(after["error"], "invalid_grant", "{after}");
    assert!(cyd.child.wait().await.unwrap().success());

    let mut ada = Script::start(&python, &[&running.gateway.url, "dcr", "idp:ada"]);
    ada.next("authorize").await;
    let signed_in = ada.next("signed-in").await;
    let names = signed_in["names"].to_string();
    assert!(
        names.contains(APPROVE) && names.contains("bitbucket_get_repository"),
        "{names}"
    );
}
