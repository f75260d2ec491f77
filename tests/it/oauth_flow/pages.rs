//! What the connect pages and the connections tool say; scopes asked; a browser at the root.

use super::*;

/// The connect pages in plain words: a page opened without a link points at `devgate connect`; a used
/// link says so and an expired one that it expired; the scopes asked for come with their descriptions.
#[tokio::test(flavor = "multi_thread")]
async fn connect_pages_say_what_happened() {
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    let key = create_api_key(&setup, "kim");
    let gateway = oauth_http(&setup, &[]).await;
    let client = http_client_with_key(&gateway.url, &key).await;

    for path in ["/connect/bitbucket", "/connect/bitbucket?ticket="] {
        let page = reqwest::get(format!("{}{path}", setup.public_url()))
            .await
            .unwrap();
        assert_eq!(page.status(), 400, "{path}");
        let html = page.text().await.unwrap();
        assert!(
            html.contains("devgate connect bitbucket") && html.contains("devgate_connections"),
            "{path}: {html}"
        );
    }

    let store = SqliteStore::open(&format!(
        "sqlite://{}",
        setup.dir.join("devgate.db").display()
    ))
    .await
    .unwrap();
    store
        .put_ticket(&TicketRow {
            ticket_hash: digest("an-old-ticket"),
            user: "kim".into(),
            provider: "bitbucket".into(),
            scopes: String::new(),
            elicitation_id: None,
            expires_at: now() - 1,
        })
        .await
        .unwrap();
    let expired = reqwest::get(format!(
        "{}/connect/bitbucket?ticket=an-old-ticket",
        setup.public_url()
    ))
    .await
    .unwrap();
    assert_eq!(expired.status(), 410);
    let html = expired.text().await.unwrap();
    assert!(
        html.contains("expired") && !html.contains("already used"),
        "{html}"
    );

    // Buddy's scopes, each with its description from the catalog.
    let link = connect_link(&client, "buddy_get_user").await;
    let html = reqwest::get(&link).await.unwrap().text().await.unwrap();
    for (scope, description) in [
        ("USER_INFO", "See your name and avatar"),
        (
            "EXECUTION_RUN",
            "Run, stop, retry and approve pipeline runs",
        ),
    ] {
        assert!(
            html.contains(scope) && html.contains(description),
            "{scope}: {html}"
        );
    }
    // Used: the Connect click takes it; opening it again says so, and so does a second click.
    let browser = CookieClient::new();
    let mut walk = Walk::default();
    start_connect(&browser, &link, &mut walk).await;
    let again = browser.get(&link).await;
    assert_eq!(again.status(), 410);
    assert!(again.text().await.unwrap().contains("already used"));
    client.cancel().await.unwrap();
}

/// A link asks only for the scopes of the tools offered (and the account read that connecting needs):
/// Buddy's `EXECUTION_MANAGE` serves no tool and is never asked for; with only the pipelines toolset,
/// only the pipelines' scopes are.
#[tokio::test(flavor = "multi_thread")]
async fn links_ask_only_for_scopes_an_offered_tool_needs() {
    let sim = Sim::start().await.unwrap();
    for (toolsets, expected) in [
        (
            "",
            "WORKSPACE USER_INFO EXECUTION_INFO EXECUTION_RUN VARIABLE_INFO INTEGRATION_INFO TOKEN_INFO MEMBER_EMAIL",
        ),
        (
            // WORKSPACE for the pipeline identifier lookup the pipeline tools make.
            "[tools]\ntoolsets = [\"pipelines\"]",
            "WORKSPACE USER_INFO EXECUTION_INFO EXECUTION_RUN",
        ),
    ] {
        let setup = oauth_setup(&sim, toolsets);
        let key = create_api_key(&setup, "lou");
        let gateway = oauth_http(&setup, &[]).await;
        let client = http_client_with_key(&gateway.url, &key).await;
        let (tool, arguments) = if toolsets.is_empty() {
            ("buddy_get_user", json!({}))
        } else {
            ("buddy_list_pipelines", json!({"project": "web"}))
        };
        let result = call(&client, tool, arguments.clone()).await;
        assert!(is_error(&result), "{}", text(&result));
        let link = link_in(&text(&result));
        let browser = CookieClient::new();
        let mut walk = Walk::default();
        let authorize = start_connect(&browser, &link, &mut walk).await;
        let asked = url::Url::parse(&authorize)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "scope")
            .map(|(_, v)| v.into_owned())
            .expect("Buddy gets a scope");
        assert_eq!(asked, expected, "{toolsets}");
        assert!(!walk.pages[0].contains("EXECUTION_MANAGE"), "{toolsets}");
        // What was asked is enough: connected, the tool works.
        finish_connect(&browser, &authorize, "mike", "allow", &mut walk).await;
        assert!(walk.final_url.ends_with("/connected"), "{}", walk.final_url);
        let done = call(&client, tool, arguments).await;
        assert!(!is_error(&done), "{tool}: {}", text(&done));
        client.cancel().await.unwrap();
    }
}

/// `devgate_connections` asks each provider, at once, whether the stored connection still works: after
/// both grants were revoked, reconnecting Buddy shows Bitbucket broken (with its link) in the same
/// answer, not on the next Bitbucket call; a provider too slow to answer is reported unchecked, and
/// the checks run side by side.
#[tokio::test(flavor = "multi_thread")]
async fn the_connections_tool_checks_every_connection() {
    let sim = Sim::start().await.unwrap();
    let c = connected_users(&sim, &[("alice", "ben", "mike")], "").await;
    let client = &c.clients[0];
    sim.state.revoke_grants(Account::Ben);
    sim.state.revoke_grants(Account::Mike);
    let stale = call(client, "buddy_get_user", json!({})).await;
    assert!(is_error(&stale), "{}", text(&stale));
    let walk = walk_connect(&link_in(&text(&stale)), "mike", "allow").await;
    assert!(walk.final_url.ends_with("/connected"));

    let connections = |result: rmcp::model::CallToolResult| -> Vec<Value> {
        ok("devgate_connections", &result)["items"]
            .as_array()
            .unwrap()
            .clone()
    };
    let items = connections(call(client, "devgate_connections", json!({})).await);
    let by = |provider: &str| {
        items
            .iter()
            .find(|i| i["provider"] == provider)
            .unwrap()
            .clone()
    };
    let bitbucket = by("bitbucket");
    assert_eq!(bitbucket["state"], "broken", "{bitbucket}");
    let buddy = by("buddy");
    assert_eq!(
        (&buddy["state"], &buddy["verified"]),
        (&json!("connected"), &json!(true)),
        "{buddy}"
    );
    let relink = bitbucket["connect_url"].as_str().expect("a reconnect link");
    walk_connect(relink, "ben", "allow").await;

    // Both slow: each check gives up after 5 s, both at once.
    for which in [Which::Buddy, Which::Bitbucket] {
        sim.state.add_fault(Fault::delay(
            which,
            "/user",
            std::time::Duration::from_secs(8),
            1,
        ));
    }
    let started = std::time::Instant::now();
    let items = connections(call(client, "devgate_connections", json!({})).await);
    let took = started.elapsed();
    for item in &items {
        assert_eq!(
            (&item["state"], &item["verified"]),
            (&json!("connected"), &json!(false)),
            "{item}"
        );
        assert!(
            item["detail"]
                .as_str()
                .unwrap()
                .contains("did not answer within 5 s"),
            "{item}"
        );
    }
    assert!(
        took < std::time::Duration::from_secs(8),
        "the checks ran side by side: {took:?}"
    );
    sim.state.clear_faults();
    let items = connections(call(client, "devgate_connections", json!({})).await);
    assert!(items.iter().all(|i| i["verified"] == true), "{items:?}");
}

/// `/` says what this is, where agents connect and how; a browser opening `/mcp` gets a readable hint
/// rather than `406 Not Acceptable`; both with the connect pages' security headers. `/docs` is the
/// README. MCP clients still reach `/mcp`.
#[tokio::test(flavor = "multi_thread")]
async fn a_browser_at_the_root_or_mcp_gets_a_page() {
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    let gateway = oauth_http(&setup, &[]).await;
    let http = reqwest::Client::new();
    let mcp_url = format!("{}/mcp", setup.public_url());
    let home = http
        .get(format!("{}/", setup.public_url()))
        .send()
        .await
        .unwrap();
    let hint = http
        .get(&mcp_url)
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    for (what, response) in [("/", home), ("/mcp", hint)] {
        assert_eq!(response.status(), 200, "{what}");
        let headers = response.headers().clone();
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{what}"
        );
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'none'"),
            "{what}"
        );
        assert_eq!(headers["x-frame-options"], "DENY", "{what}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
        let html = response.text().await.unwrap();
        assert!(
            html.contains(&mcp_url)
                && html.contains("Authorization: Bearer")
                && html.contains("devgate keys create"),
            "{what}: {html}"
        );
        if what == "/" {
            assert!(
                html.contains("href=\"/healthz\"")
                    && html.contains("href=\"/docs\"")
                    && html.contains("devgate_connections")
                    && html.contains("Buddy.Works")
                    && html.contains("Bitbucket Cloud"),
                "{html}"
            );
        }
    }
    let docs = http
        .get(format!("{}/docs", setup.public_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("## Quickstart"));
    // An MCP client's GET (an event stream) is not taken for a browser: it meets authentication.
    let stream = http
        .get(&mcp_url)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 401);
    // The root page answers only to this devgate's host names, like the connect pages.
    let foreign = http
        .get(format!("{}/", setup.public_url()))
        .header("host", format!("rebind.example:{}", setup.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    drop(gateway);
}
