//! Two users connect their own accounts; tickets and states bind to their user and work once; callers without a key get the challenge.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn two_users_connect_their_own_accounts() {
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    let alice_key = create_api_key(&setup, "alice");
    let bob_key = create_api_key(&setup, "bob");
    let gateway = oauth_http(&setup, &[]).await;
    let alice = http_client_with_key(&gateway.url, &alice_key).await;
    let bob = http_client_with_key(&gateway.url, &bob_key).await;
    let mut outputs = String::new();
    let mut pages = Vec::new();

    // Not connected: the error carries a link and says what to do.
    let link = connect_link(&alice, "bitbucket_get_current_user").await;
    assert!(
        link.starts_with(&format!("{}/connect/bitbucket?ticket=", setup.public_url())),
        "{link}"
    );
    let walk = walk_connect(&link, "ann", "allow").await;
    assert!(walk.final_url.contains("/connected"), "{}", walk.final_url);
    let done = walk.pages.last().unwrap();
    assert!(
        done.contains("is connected") && done.contains("alice") && done.contains("Ann Dev"),
        "{done}"
    );
    assert!(
        walk.pages[0].contains("alice"),
        "the connect page names the devgate user"
    );
    pages.extend(walk.pages);

    let ann = current_user(&alice).await;
    outputs.push_str(&ann.to_string());
    assert_eq!(ann["name"], "Ann Dev");

    // Bob connects a different account and sees only his.
    let link = connect_link(&bob, "bitbucket_get_current_user").await;
    let walk = walk_connect(&link, "ben", "allow").await;
    pages.extend(walk.pages);
    let ben = current_user(&bob).await;
    outputs.push_str(&ben.to_string());
    assert_ne!(ben["uuid"], ann["uuid"]);
    assert_eq!(
        current_user(&alice).await["uuid"],
        ann["uuid"],
        "alice still sees her own account"
    );

    // The same for Buddy, through its own OAuth style (form client auth, `type=web_server`).
    let link = connect_link(&alice, "buddy_get_user").await;
    let walk = walk_connect(&link, "nina", "allow").await;
    pages.extend(walk.pages);
    let nina = ok(
        "buddy_get_user",
        &call(&alice, "buddy_get_user", json!({})).await,
    );
    outputs.push_str(&nina.to_string());
    assert!(
        nina["name"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("nina"),
        "{nina}"
    );

    // devgate_connections reports per user.
    let mine = ok(
        "devgate_connections",
        &call(&alice, "devgate_connections", json!({})).await,
    );
    outputs.push_str(&mine.to_string());
    let states: Vec<&str> = mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["connected", "connected"]);
    let theirs = ok(
        "devgate_connections",
        &call(&bob, "devgate_connections", json!({})).await,
    );
    let buddy = theirs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["provider"] == "buddy")
        .unwrap();
    assert_eq!(buddy["state"], "not_connected");
    assert!(
        buddy["connect_url"]
            .as_str()
            .unwrap()
            .contains("/connect/buddy?ticket=")
    );

    // Nothing secret anywhere: logs at TRACE, tool results, pages.
    let mut secrets: Vec<String> = sim.state.issued_secrets();
    secrets.extend([alice_key.clone(), bob_key.clone()]);
    secrets.extend([
        devgate::sim::BUDDY_CLIENT_SECRET.into(),
        devgate::sim::BITBUCKET_CLIENT_SECRET.into(),
        TEST_SECRET_KEY.into(),
    ]);
    assert!(
        secrets.len() > 6,
        "the sim issued codes and tokens: {}",
        secrets.len()
    );
    let logs = gateway.stderr.text();
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "logs were captured at a verbose level"
    );
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a secret reached the logs");
        assert!(
            !outputs.contains(secret.as_str()),
            "a secret reached a tool result"
        );
        assert!(
            pages.iter().all(|p| !p.contains(secret.as_str())),
            "a secret reached a page"
        );
    }
    alice.cancel().await.unwrap();
    bob.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn tickets_and_states_bind_to_their_user_and_work_once() {
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    let alice_key = create_api_key(&setup, "alice");
    let bob_key = create_api_key(&setup, "bob");
    let gateway = oauth_http(&setup, &[]).await;
    let alice = http_client_with_key(&gateway.url, &alice_key).await;
    let bob = http_client_with_key(&gateway.url, &bob_key).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Alice's link, whoever completes it, connects alice — never bob.
    let link = connect_link(&alice, "bitbucket_get_current_user").await;
    let walk = walk_connect(&link, "ben", "allow").await;
    assert!(walk.pages.last().unwrap().contains("alice"));
    let connected = current_user(&alice).await;
    assert_ne!(
        connected["name"], "Ann Dev",
        "alice now has the account chosen on the consent page: {connected}"
    );
    let bob_now = call(&bob, "bitbucket_get_current_user", json!({})).await;
    assert!(is_error(&bob_now), "bob is still not connected");

    // A used link says it was used.
    let again = http.get(&link).send().await.unwrap();
    assert_eq!(again.status(), 410);
    let html = again.text().await.unwrap();
    assert!(
        html.contains("already used") && !html.contains("expired"),
        "{html}"
    );

    // A replayed callback (same code and state) is refused.
    let link = connect_link(&bob, "bitbucket_get_current_user").await;
    let walk = walk_connect(&link, "ben", "allow").await;
    assert!(walk.final_url.contains("/connected"));
    let callback_pages = http
        .get(format!(
            "{}/integration-callback?code=x&state=not-a-state",
            setup.public_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(callback_pages.status(), 400);
    let html = callback_pages.text().await.unwrap();
    assert!(html.contains("already been used or has expired"), "{html}");

    // An expired state is refused the same way.
    let store = SqliteStore::open(&format!(
        "sqlite://{}",
        setup.dir.join("devgate.db").display()
    ))
    .await
    .unwrap();
    store
        .put_state(&StateRow {
            state_hash: digest("an-old-state"),
            user: "alice".into(),
            provider: "bitbucket".into(),
            pkce_verifier: "x".into(),
            scopes: String::new(),
            elicitation_id: None,
            browser_hash: digest("a-flow-cookie"),
            expires_at: now() - 1,
        })
        .await
        .unwrap();
    let expired = http
        .get(format!(
            "{}/integration-callback?code=x&state=an-old-state",
            setup.public_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), 400);

    // Declining on the provider's page connects nothing and says so, on the result page: the address
    // keeps neither `error` nor `state`.
    let link = connect_link(&bob, "buddy_get_user").await;
    let walk = walk_connect(&link, "mike", "deny").await;
    let page = walk.pages.last().unwrap();
    assert!(page.contains("You did not connect"), "{page}");
    assert!(
        walk.final_url.ends_with("/connected")
            && !walk.final_url.contains("error")
            && !walk.final_url.contains("state"),
        "{}",
        walk.final_url
    );
    assert!(is_error(&call(&bob, "buddy_get_user", json!({})).await));
    alice.cancel().await.unwrap();
    bob.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn callers_without_a_valid_key_get_the_challenge() {
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    let gateway = oauth_http(&setup, &[]).await;
    let http = reqwest::Client::new();
    for bearer in [None, Some("dgk_not-a-real-key")] {
        let mut request = http
            .post(&gateway.url)
            .header("Accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
        if let Some(b) = bearer {
            request = request.bearer_auth(b);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            challenge.starts_with("Bearer resource_metadata=\""),
            "{challenge}"
        );
    }
    let metadata: Value = http
        .get(format!(
            "{}/.well-known/oauth-protected-resource",
            setup.public_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["resource"], format!("{}/mcp", setup.public_url()));
}
