//! Token refresh: ahead of expiry, once per (user, provider) however many calls race, with Bitbucket's
//! rotating refresh tokens used once each; a refresh without a new refresh token keeps the old one; a
//! failing token endpoint keeps the connection, a refusing one asks to reconnect; a token that expires
//! mid-call is renewed after the provider's 401.

use crate::common::*;
use devgate::sim::{Account, Fault, Sim, Which};
use futures::future::join_all;
use serde_json::{Value, json};

/// Every secret the sim issued or saw, and the fixed ones.
fn secrets(sim: &Sim, c: &Connected) -> Vec<String> {
    let mut all = sim.state.issued_secrets();
    all.extend(c.keys.iter().cloned());
    all.extend([
        devgate::sim::BUDDY_CLIENT_SECRET.to_string(),
        devgate::sim::BITBUCKET_CLIENT_SECRET.to_string(),
    ]);
    all
}

fn assert_no_secrets(sim: &Sim, c: &Connected, outputs: &str) {
    let logs = c.gateway.stderr.text();
    for s in secrets(sim, c) {
        assert!(!logs.contains(&s), "a secret reached the logs");
        assert!(!outputs.contains(&s), "a secret reached a tool result");
    }
}

async fn whoami(client: &Client) -> Value {
    ok(
        "bitbucket_get_current_user",
        &call(client, "bitbucket_get_current_user", json!({})).await,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_calls_at_expiry_refresh_once_per_user() {
    let sim = Sim::start().await.unwrap();
    // Tokens issued at connect live 30 s: inside devgate's 60 s margin, so the next call refreshes.
    sim.state.set_token_lifetime(Which::Bitbucket, 30);
    let c = connected_users(
        &sim,
        &[("alice", "ann", "mike"), ("bob", "ben", "nina")],
        "",
    )
    .await;
    sim.state.set_token_lifetime(Which::Bitbucket, 7200);
    let before = sim.state.token_requests(Which::Bitbucket, "refresh_token");

    // 50 calls from alice and 50 from bob, all at once.
    let calls = c
        .clients
        .iter()
        .flat_map(|client| (0..50).map(move |_| whoami(client)));
    let answers = join_all(calls).await;
    let outputs: String = answers.iter().map(|a| a.to_string()).collect();
    let refreshes = sim.state.token_requests(Which::Bitbucket, "refresh_token") - before;
    assert_eq!(
        refreshes, 2,
        "one refresh per user, however many calls raced"
    );
    assert_eq!(
        sim.state.dead_refresh_token_uses(Which::Bitbucket),
        0,
        "no rotated refresh token was reused"
    );
    let (alices, bobs) = answers.split_at(50);
    assert!(
        alices.iter().all(|a| a["name"] == alices[0]["name"])
            && bobs.iter().all(|b| b["name"] == bobs[0]["name"])
    );
    assert_ne!(
        alices[0]["uuid"], bobs[0]["uuid"],
        "each user's calls went out with their own token"
    );

    // Later refreshes use the rotated refresh token, never the old one.
    for _ in 0..3 {
        sim.state.expire_access_tokens(Account::Ann);
        whoami(&c.clients[0]).await;
    }
    assert_eq!(sim.state.dead_refresh_token_uses(Which::Bitbucket), 0);
    assert_no_secrets(&sim, &c, &outputs);

    // Every refresh at the provider is counted in /metrics.
    let metrics = reqwest::get(c.gateway.url.replace("/mcp", "/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let refreshed = sim.state.token_requests(Which::Bitbucket, "refresh_token") - before;
    assert!(
        metrics.contains(&format!(
            "devgate_token_refreshes_total{{provider=\"bitbucket\",result=\"ok\"}} {refreshed}"
        )),
        "{refreshed} refreshes: {metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_that_expires_mid_call_is_renewed_after_the_401() {
    let sim = Sim::start().await.unwrap();
    let c = connected_users(&sim, &[("alice", "ann", "mike")], "").await;
    let before = sim.state.token_requests(Which::Buddy, "refresh_token");
    // devgate still thinks the token has an hour; the provider has already expired it.
    sim.state.expire_access_tokens(Account::Mike);
    sim.state.clear_requests();
    let user = ok(
        "buddy_get_user",
        &call(&c.clients[0], "buddy_get_user", json!({})).await,
    );
    assert!(user.get("name").is_some());
    assert_eq!(
        sim.state.token_requests(Which::Buddy, "refresh_token") - before,
        1
    );
    let calls = sim
        .requests()
        .iter()
        .filter(|r| r.path == "/user" && r.provider == Which::Buddy)
        .count();
    assert_eq!(
        calls, 2,
        "refused once with 401, then retried once with the renewed token"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_without_a_new_refresh_token_keeps_the_old_one() {
    let sim = Sim::start().await.unwrap();
    let c = connected_users(&sim, &[("alice", "ann", "mike")], "").await;
    sim.state.set_omit_refresh_token(Which::Buddy, true);
    for _ in 0..3 {
        sim.state.expire_access_tokens(Account::Mike);
        ok(
            "buddy_get_user",
            &call(&c.clients[0], "buddy_get_user", json!({})).await,
        );
    }
    assert_eq!(sim.state.dead_refresh_token_uses(Which::Buddy), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn token_endpoint_failures_keep_or_break_the_connection_as_they_should() {
    let sim = Sim::start().await.unwrap();
    let c = connected_users(&sim, &[("alice", "ann", "mike")], "").await;
    let client = &c.clients[0];

    // 5xx from the token endpoint: a retryable error, and the connection is kept.
    sim.state.expire_access_tokens(Account::Ann);
    sim.state.add_fault(Fault::status(
        Which::Bitbucket,
        "/site/oauth2/access_token",
        503,
        1,
    ));
    let failed = call(client, "bitbucket_get_current_user", json!({})).await;
    assert!(is_error(&failed));
    assert!(
        text(&failed).contains("your connection is kept, try again"),
        "{}",
        text(&failed)
    );
    let status = ok(
        "devgate_connections",
        &call(client, "devgate_connections", json!({})).await,
    );
    let bitbucket = status["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["provider"] == "bitbucket")
        .unwrap()
        .clone();
    assert_eq!(bitbucket["state"], "connected", "{status}");
    whoami(client).await;

    // invalid_grant (the user revoked devgate): the next call returns a reconnect link.
    sim.state.revoke_grants(Account::Ann);
    let refused = call(client, "bitbucket_get_current_user", json!({})).await;
    assert!(is_error(&refused));
    let message = text(&refused);
    assert!(
        message.contains("renewed") && message.contains("/connect/bitbucket?ticket="),
        "{message}"
    );
    let status = ok(
        "devgate_connections",
        &call(client, "devgate_connections", json!({})).await,
    );
    let bitbucket = status["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["provider"] == "bitbucket")
        .unwrap()
        .clone();
    assert_eq!(bitbucket["state"], "broken");
    assert!(bitbucket["connect_url"].as_str().is_some());

    // Reconnecting through the link heals it.
    let walk = walk_connect(&link_in(&message), "ann", "allow").await;
    assert!(walk.final_url.contains("/connected"));
    assert_eq!(whoami(client).await["name"], "Ann Dev");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_scopes_ask_for_a_reconnect_naming_tool_and_scope() {
    let sim = Sim::start().await.unwrap();
    sim.state.set_bitbucket_scopes(&["account", "repository"]);
    let c = connected_users(&sim, &[("alice", "ann", "mike")], "").await;
    let result = call(
        &c.clients[0],
        "bitbucket_list_pull_requests",
        json!({"repo_slug": "api"}),
    )
    .await;
    assert!(is_error(&result));
    let message = text(&result);
    assert!(
        message.contains("bitbucket_list_pull_requests needs the `pullrequest` scope"),
        "{message}"
    );
    assert!(message.contains("/connect/bitbucket?ticket="), "{message}");
    assert!(
        sim.requests()
            .iter()
            .all(|r| !r.path.contains("/pullrequests")),
        "nothing was sent upstream"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_that_never_expire_are_used_as_they_are() {
    let sim = Sim::start().await.unwrap();
    sim.state.set_expiring_tokens(Which::Buddy, false);
    let c = connected_users(&sim, &[("alice", "ann", "mike")], "").await;
    for _ in 0..3 {
        ok(
            "buddy_get_user",
            &call(&c.clients[0], "buddy_get_user", json!({})).await,
        );
    }
    assert_eq!(sim.state.token_requests(Which::Buddy, "refresh_token"), 0);
    let status = ok(
        "devgate_connections",
        &call(&c.clients[0], "devgate_connections", json!({})).await,
    );
    let buddy = status["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["provider"] == "buddy")
        .unwrap()
        .clone();
    assert!(buddy.get("expires_at").is_none(), "{buddy}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_403_naming_scopes_asks_for_a_reconnect() {
    let sim = Sim::start().await.unwrap();
    sim.state.set_bitbucket_scopes(&["account", "repository"]);
    let c = connected_users(&sim, &[("alice", "ann", "mike")], "").await;
    // The stored grant claims more than the provider gave (a consumer whose permissions were reduced
    // after the connect): the provider's 403 names the missing scope.
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        c.setup.dir.join("devgate.db").display()
    ))
    .await
    .unwrap();
    sqlx::query("UPDATE connections SET scopes = 'account repository pullrequest' WHERE user_id = 'alice' AND provider = 'bitbucket'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let result = call(
        &c.clients[0],
        "bitbucket_list_pull_requests",
        json!({"repo_slug": "api"}),
    )
    .await;
    assert!(is_error(&result));
    let message = text(&result);
    assert!(
        message.contains("answered 403")
            && message.contains("pullrequest")
            && message.contains("/connect/bitbucket?ticket="),
        "{message}"
    );
}
