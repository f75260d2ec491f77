//! Sessions belong to their owner, are capped and count against the rate limit.

use super::*;

/// A gateway with API keys for `users`, and `extra` appended to the config.
async fn keyed_gateway(sim: &Sim, extra: &str, users: &[&str]) -> (HttpGateway, Vec<String>) {
    let config = config_for(sim, extra);
    let keys = users
        .iter()
        .map(|user| {
            let out = devgate_with(&["keys", "create", user], &config, &token_env());
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        })
        .collect();
    let gateway = gateway(&config, &[("DEVGATE_HTTP__AUTH", "api_key")], false).await;
    (gateway, keys)
}

/// Another user's key on a session id: 404 for POST, GET and DELETE, as if the session did not exist;
/// the owner's session goes on working.
#[tokio::test(flavor = "multi_thread")]
async fn a_session_answers_only_its_owner() {
    let sim = Sim::start().await.unwrap();
    let (gateway, keys) = keyed_gateway(&sim, "", &["alice", "bob"]).await;
    let (alice, bob) = (keys[0].as_str(), keys[1].as_str());
    let url = &gateway.url;
    let session = open_session(url, Some(alice)).await;
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;

    let posted = post(url, Some(bob), Some(&session), list).await;
    assert_eq!(posted.status(), 404, "bob's POST on alice's session");
    let http = reqwest::Client::new();
    let got = http
        .get(url)
        .bearer_auth(bob)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 404, "bob's GET on alice's session");
    let deleted = http
        .delete(url)
        .bearer_auth(bob)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 404, "bob's DELETE on alice's session");
    // Exactly what an unknown session gets.
    let unknown = post(url, Some(bob), Some("no-such-session"), list).await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.text().await.unwrap(),
        post(url, Some(bob), Some(&session), list)
            .await
            .text()
            .await
            .unwrap()
    );

    let mine = post(url, Some(alice), Some(&session), list).await;
    assert_eq!(mine.status(), 200);
    assert!(
        mine.text()
            .await
            .unwrap()
            .contains("bitbucket_get_repository")
    );
    let closed = http
        .delete(url)
        .bearer_auth(alice)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert!(closed.status().is_success(), "{}", closed.status());
    let after = post(url, Some(alice), Some(&session), list).await;
    assert_eq!(after.status(), 404, "a closed session is gone");
}

/// Sessions are capped per user (429) and overall (503), both with `Retry-After`; another user still
/// gets in while one is at the cap, and a session that ends (DELETE, or idle past
/// `limits.session_idle_secs`) frees its place.
#[tokio::test(flavor = "multi_thread")]
async fn sessions_are_capped_and_ending_one_frees_its_place() {
    let sim = Sim::start().await.unwrap();
    let (gateway, keys) = keyed_gateway(
        &sim,
        "\n[limits]\nsessions_per_user = 2\nmax_sessions = 3\nsession_idle_secs = 3",
        &["alice", "bob"],
    )
    .await;
    let (alice, bob) = (keys[0].as_str(), keys[1].as_str());
    let url = &gateway.url;
    let first = open_session(url, Some(alice)).await;
    let second = open_session(url, Some(alice)).await;
    let third = post(url, Some(alice), None, INITIALIZE).await;
    assert_eq!(third.status(), 429, "alice is at her cap");
    assert!(third.headers().contains_key("retry-after"));
    assert!(
        third
            .text()
            .await
            .unwrap()
            .contains("limits.sessions_per_user"),
        "says which limit"
    );

    let bobs = open_session(url, Some(bob)).await;
    let full = post(url, Some(bob), None, INITIALIZE).await;
    assert_eq!(full.status(), 503, "the server is at its cap");
    assert!(full.headers().contains_key("retry-after"));
    assert!(full.text().await.unwrap().contains("limits.max_sessions"));

    // DELETE frees a place at once.
    let http = reqwest::Client::new();
    let closed = http
        .delete(url)
        .bearer_auth(alice)
        .header("mcp-session-id", &first)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert!(closed.status().is_success());
    let again = open_session(url, Some(alice)).await;

    // Sessions left idle end after 3 s, and their places come back (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = post(url, Some(bob), None, INITIALIZE).await;
        if attempt.status() == 200 {
            break;
        }
        assert_eq!(attempt.status(), 503);
        assert!(
            Instant::now() < deadline,
            "idle sessions never freed their places"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The session idle longest (alice's second) is the one that ended.
    let gone = post(
        url,
        Some(alice),
        Some(&second),
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
    )
    .await;
    assert_eq!(gone.status(), 404, "an expired session is gone");
    drop((again, bobs));
}

/// An `initialize` counts against the user's call rate.
#[tokio::test(flavor = "multi_thread")]
async fn opening_sessions_counts_against_the_rate_limit() {
    let sim = Sim::start().await.unwrap();
    let (gateway, keys) = keyed_gateway(
        &sim,
        "\n[limits]\ncalls_per_minute = 6\nburst = 2",
        &["alice", "bob"],
    )
    .await;
    let url = &gateway.url;
    open_session(url, Some(&keys[0])).await;
    open_session(url, Some(&keys[0])).await;
    let limited = post(url, Some(&keys[0]), None, INITIALIZE).await;
    assert_eq!(limited.status(), 429);
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&wait), "Retry-After {wait}");
    assert!(limited.text().await.unwrap().contains("Rate limit"));
    open_session(url, Some(&keys[1])).await;
}

// ---------------------------------------------------------------------------------------------------
// Timeouts, the connection cap, TCP_NODELAY
// ---------------------------------------------------------------------------------------------------
