//! OAuth on the user's behalf, end to end over HTTP with two users holding API keys: each connects
//! through the real pages (an HTTP client following the redirects and submitting the forms), then calls
//! tools and sees only their own account; tickets, states and callbacks cannot attach a connection to
//! another user; replayed, expired and foreign states get a readable page; no secret is ever shown.
//! A flow finishes only in the browser that clicked Connect (also from `devgate connect`), the success
//! page says only what the callback did, and the page server of `devgate stdio` checks `Host` and caps
//! bodies. The pages say what happened in plain words (a used link, a page opened without one, a
//! denial, the scopes asked for); links ask only for scopes an offered tool needs; `devgate_connections`
//! checks every connection with its provider; `/` and a browser at `/mcp` get a readable page.

use crate::common::*;
use devgate::sim::{Account, Fault, Sim, Which};
use devgate::vault::sqlite::SqliteStore;
use devgate::vault::{StateRow, Store, TicketRow, digest, now};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

async fn current_user(client: &Client) -> Value {
    ok(
        "bitbucket_get_current_user",
        &call(client, "bitbucket_get_current_user", json!({})).await,
    )
}

/// Calls a tool that needs an unconnected provider and returns the connect link from the error text.
async fn connect_link(client: &Client, tool: &str) -> String {
    let result = call(client, tool, json!({})).await;
    assert!(is_error(&result), "{tool} should ask to connect first");
    let message = text(&result);
    assert!(message.contains("connect"), "{message}");
    // The id the user quotes to an operator, who finds the call in the log by it.
    assert!(message.contains(" (request id "), "{message}");
    link_in(&message)
}

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

/// The attack of issue 12: alice starts a connect and stops at the redirect; the provider's authorize
/// URL is opened in another browser (no devgate cookies), whose user approves as Ben. The callback
/// refuses before any code exchange, uses the state up, and alice has no connection.
#[tokio::test(flavor = "multi_thread")]
async fn a_callback_in_another_browser_connects_nothing() {
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    let alice_key = create_api_key(&setup, "alice");
    let gateway = oauth_http(&setup, &[]).await;
    let alice = http_client_with_key(&gateway.url, &alice_key).await;
    let mut pages = Vec::new();

    let link = connect_link(&alice, "bitbucket_get_current_user").await;
    let alice_browser = CookieClient::new();
    let mut walk = Walk::default();
    let authorize = start_connect(&alice_browser, &link, &mut walk).await;
    let flow: Vec<Cookie> = alice_browser
        .cookies()
        .into_iter()
        .filter(|c| c.name.starts_with("devgate_flow_"))
        .collect();
    assert_eq!(flow.len(), 1, "the Connect click sets one flow cookie");
    assert_eq!(flow[0].path, "/integration-callback");

    // The victim's browser has never seen devgate.
    let victim = CookieClient::new();
    let mut stolen = Walk::default();
    finish_connect(&victim, &authorize, "ben", "allow", &mut stolen).await;
    let refused = stolen.pages.last().unwrap();
    assert_eq!(stolen.final_status, 403, "{refused}");
    assert!(
        stolen.final_url.contains("/integration-callback"),
        "{}",
        stolen.final_url
    );
    assert!(
        refused.contains("Finish connecting in the browser you started in")
            && refused.contains("Nothing was connected"),
        "{refused}"
    );
    assert!(
        !refused.contains("Ben") && !refused.contains("alice"),
        "the refusal names nobody: {refused}"
    );
    assert_eq!(
        sim.state
            .token_requests(devgate::sim::Which::Bitbucket, "authorization_code"),
        0,
        "the code was never redeemed"
    );
    let after = call(&alice, "bitbucket_get_current_user", json!({})).await;
    assert!(is_error(&after), "alice is not connected: {}", text(&after));
    let status = ok(
        "devgate_connections",
        &call(&alice, "devgate_connections", json!({})).await,
    );
    let bitbucket = status["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["provider"] == "bitbucket")
        .unwrap();
    assert_eq!(bitbucket["state"], "not_connected", "{status}");

    // The state is used up: alice's own browser cannot finish that flow now, and its cookie is cleared.
    let mut late = Walk::default();
    finish_connect(&alice_browser, &authorize, "ann", "allow", &mut late).await;
    assert_eq!(late.final_status, 400);
    assert!(
        late.pages
            .last()
            .unwrap()
            .contains("already been used or has expired")
    );
    assert!(
        alice_browser
            .cookies()
            .iter()
            .all(|c| !c.name.starts_with("devgate_flow_")),
        "the callback clears the flow cookie: {:?}",
        alice_browser.cookies()
    );

    // A cookie with the flow's name but another value is refused the same way.
    let link = connect_link(&alice, "bitbucket_get_current_user").await;
    let mut walk2 = Walk::default();
    let elsewhere = CookieClient::new();
    let authorize = start_connect(&elsewhere, &link, &mut walk2).await;
    let name = elsewhere
        .cookies()
        .into_iter()
        .find(|c| c.name.starts_with("devgate_flow_"))
        .unwrap()
        .name;
    let forger = CookieClient::new();
    forger.set_cookie("127.0.0.1", &name, "guessed-value", "/integration-callback");
    let mut forged = Walk::default();
    finish_connect(&forger, &authorize, "ben", "allow", &mut forged).await;
    assert_eq!(forged.final_status, 403);
    assert!(is_error(
        &call(&alice, "bitbucket_get_current_user", json!({})).await
    ));

    // The normal path still works, and leaves no flow cookie behind.
    let link = connect_link(&alice, "bitbucket_get_current_user").await;
    let mut own = Walk::default();
    let authorize = start_connect(&alice_browser, &link, &mut own).await;
    finish_connect(&alice_browser, &authorize, "ann", "allow", &mut own).await;
    assert!(own.final_url.ends_with("/connected"), "{}", own.final_url);
    assert_eq!(current_user(&alice).await["name"], "Ann Dev");
    assert!(
        alice_browser
            .cookies()
            .iter()
            .all(|c| !c.name.starts_with("devgate_flow_"))
    );
    assert_eq!(
        sim.state
            .token_requests(devgate::sim::Which::Bitbucket, "authorization_code"),
        1
    );

    for w in [walk, stolen, late, walk2, forged, own] {
        pages.extend(w.pages);
    }
    let logs = gateway.stderr.text();
    assert!(
        logs.contains("refused a callback from a browser that did not start this connect"),
        "the refusal is logged"
    );
    assert_no_secrets(
        &sim,
        &[alice_key],
        &[("the logs", &logs), ("a page", &pages.join("\n"))],
    );
    alice.cancel().await.unwrap();
}

/// Two flows in one browser (Buddy and Bitbucket in two tabs, and one provider twice) each keep their
/// own flow cookie and both finish.
#[tokio::test(flavor = "multi_thread")]
async fn flows_in_two_tabs_of_one_browser_both_finish() {
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    let key = create_api_key(&setup, "alice");
    let gateway = oauth_http(&setup, &[]).await;
    let alice = http_client_with_key(&gateway.url, &key).await;
    let browser = CookieClient::new();
    let mut walk = Walk::default();

    // Three tabs: Bitbucket, Buddy, and Bitbucket again (a second link for the same provider: asking
    // again gives the same link until it is used, then a new one).
    let bitbucket_link = connect_link(&alice, "bitbucket_get_current_user").await;
    assert_eq!(
        connect_link(&alice, "bitbucket_get_current_user").await,
        bitbucket_link,
        "an unused link is handed out again"
    );
    let to_bitbucket = start_connect(&browser, &bitbucket_link, &mut walk).await;
    let buddy_link = connect_link(&alice, "buddy_get_user").await;
    let to_buddy = start_connect(&browser, &buddy_link, &mut walk).await;
    let again_link = connect_link(&alice, "bitbucket_get_current_user").await;
    assert_ne!(again_link, bitbucket_link, "a used link is not");
    let again = start_connect(&browser, &again_link, &mut walk).await;
    let flows = browser
        .cookies()
        .iter()
        .filter(|c| c.name.starts_with("devgate_flow_"))
        .count();
    assert_eq!(flows, 3, "one flow cookie per tab: {:?}", browser.cookies());

    // A tab opened later finishes first; the first one still finishes after it.
    finish_connect(&browser, &to_buddy, "nina", "allow", &mut walk).await;
    assert!(walk.final_url.ends_with("/connected"), "{}", walk.final_url);
    finish_connect(&browser, &to_bitbucket, "ben", "allow", &mut walk).await;
    assert!(walk.final_url.ends_with("/connected"), "{}", walk.final_url);
    assert_eq!(current_user(&alice).await["name"], "Ben Ortiz");
    let nina = ok(
        "buddy_get_user",
        &call(&alice, "buddy_get_user", json!({})).await,
    );
    assert!(nina.to_string().contains("Nina"), "{nina}");
    // The success page of the second tab shows both connections this browser just made.
    let done = walk.pages.last().unwrap();
    assert!(
        done.contains("Ben Ortiz") && done.contains("Nina Alvarez"),
        "{done}"
    );

    // The second Bitbucket tab replaces that connection, and its page shows the new account only.
    finish_connect(&browser, &again, "ann", "allow", &mut walk).await;
    assert!(walk.final_url.ends_with("/connected"));
    assert_eq!(current_user(&alice).await["name"], "Ann Dev");
    let done = walk.pages.last().unwrap();
    assert!(
        done.contains("Ann Dev") && !done.contains("Ben Ortiz"),
        "{done}"
    );
    assert!(
        browser
            .cookies()
            .iter()
            .all(|c| !c.name.starts_with("devgate_flow_")),
        "every callback cleared its cookie: {:?}",
        browser.cookies()
    );
    alice.cancel().await.unwrap();
}

/// `/connected` shows what the callback did in this browser, from a sealed cookie; whatever its query
/// string says is ignored.
#[tokio::test(flavor = "multi_thread")]
async fn the_success_page_says_only_what_the_callback_did() {
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    let key = create_api_key(&setup, "alice");
    let gateway = oauth_http(&setup, &[]).await;
    let alice = http_client_with_key(&gateway.url, &key).await;
    let spoof = format!(
        "{}/connected?provider=Bitbucket+Cloud&account=the+security+team+(verified)&user=alice",
        setup.public_url()
    );

    // A link alone shows nothing it carries.
    let stranger = CookieClient::new();
    let page = stranger.get(&spoof).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("security team") && !html.contains("verified") && !html.contains("alice"),
        "{html}"
    );
    assert!(!html.contains("is connected"), "{html}");
    assert!(html.contains("Nothing to show here"), "{html}");

    // A cookie that does not open shows nothing either.
    stranger.set_cookie(
        "127.0.0.1",
        "devgate_done_bitbucket",
        "YWxpY2U.bitbucket.v1.AAAA",
        "/connected",
    );
    let html = stranger.get(&spoof).await.text().await.unwrap();
    assert!(
        html.contains("Nothing to show here") && !html.contains("security team"),
        "{html}"
    );

    // The real flow shows the real account, also when the address says otherwise.
    let link = connect_link(&alice, "bitbucket_get_current_user").await;
    let browser = CookieClient::new();
    let mut walk = Walk::default();
    let authorize = start_connect(&browser, &link, &mut walk).await;
    finish_connect(&browser, &authorize, "ann", "allow", &mut walk).await;
    let done = walk.pages.last().unwrap();
    assert!(walk.final_url.ends_with("/connected"), "{}", walk.final_url);
    assert!(
        done.contains("Bitbucket Cloud is connected")
            && done.contains("alice")
            && done.contains("Ann Dev"),
        "{done}"
    );
    let html = browser.get(&spoof).await.text().await.unwrap();
    assert!(
        html.contains("Ann Dev") && !html.contains("security team"),
        "{html}"
    );
    alice.cancel().await.unwrap();
}

type StdoutLines = tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>;

/// The connect link `devgate connect` prints (it serves the pages before printing it).
async fn printed_link(lines: &mut StdoutLines) -> String {
    tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("/connect/") && line.contains("?ticket=") {
                return link_in(&line);
            }
        }
        panic!("devgate connect printed no link");
    })
    .await
    .unwrap()
}

/// `devgate connect` from a terminal serves the same pages (on `public_url`), with the same binding:
/// the callback in another browser is refused and the command keeps waiting; in the same browser it
/// connects and the command says so.
#[tokio::test(flavor = "multi_thread")]
async fn devgate_connect_from_a_terminal_binds_the_browser() {
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    setup.reserve_public_url();
    let start = || {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.args(["connect", "bitbucket", "--user", "carol", "--config"])
            .arg(&setup.config)
            .env("DEVGATE_LOG", "debug")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        for (k, v) in oauth_env() {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        (child, lines)
    };
    // Another browser: refused, nothing connected, the command still waits.
    let (mut child, mut lines) = start();
    let link = printed_link(&mut lines).await;
    let mut walk = Walk::default();
    let authorize = start_connect(&CookieClient::new(), &link, &mut walk).await;
    let victim = CookieClient::new();
    finish_connect(&victim, &authorize, "ben", "allow", &mut walk).await;
    assert_eq!(walk.final_status, 403, "{}", walk.pages.last().unwrap());
    assert!(child.try_wait().unwrap().is_none(), "still waiting");
    child.kill().await.unwrap();
    child.wait().await.unwrap();
    let store = SqliteStore::open(&format!(
        "sqlite://{}",
        setup.dir.join("devgate.db").display()
    ))
    .await
    .unwrap();
    assert!(
        store
            .connection("carol", "bitbucket")
            .await
            .unwrap()
            .is_none()
    );

    // The same browser: connected, and the command ends saying so.
    let (mut child, mut lines) = start();
    let link = printed_link(&mut lines).await;
    let walk = walk_connect(&link, "ann", "allow").await;
    assert!(walk.final_url.ends_with("/connected"), "{}", walk.final_url);
    let said = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        let mut said = String::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            said.push_str(&line);
        }
        said
    })
    .await
    .unwrap();
    assert!(
        said.contains("Connected Bitbucket Cloud account Ann Dev for carol"),
        "{said}"
    );
    assert!(child.wait().await.unwrap().success());
}

/// The page server `devgate stdio` runs on `public_url` answers only to the allowed `Host` names and
/// caps request bodies at `limits.max_request_bytes`, like `devgate http`.
#[tokio::test(flavor = "multi_thread")]
async fn the_stdio_page_server_checks_host_and_caps_bodies() {
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "[limits]\nmax_request_bytes = 4096\n");
    setup.reserve_public_url();
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.arg("stdio")
        .arg("--user")
        .arg("alice")
        .arg("--config")
        .arg(&setup.config);
    for (k, v) in oauth_env() {
        cmd.env(k, v);
    }
    let (transport, _) = rmcp::transport::TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The page server is listening once the MCP handshake is done.
    let client = rmcp::ServiceExt::serve((), transport).await.unwrap();
    let link = connect_link(&client, "bitbucket_get_current_user").await;
    assert!(link.starts_with(setup.public_url()), "{link}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // A foreign Host (a DNS-rebinding page) is refused on every page; the right one is served.
    for path in [
        "/connect/bitbucket?ticket=x",
        "/integration-callback?state=x&code=y",
        "/connected",
    ] {
        let url = format!("{}{path}", setup.public_url());
        let foreign = http
            .get(&url)
            .header("host", format!("rebind.example:{}", setup.port()))
            .send()
            .await
            .unwrap();
        assert_eq!(foreign.status(), 403, "{path}");
        let own = http.get(&url).send().await.unwrap();
        assert_ne!(own.status(), 403, "{path}");
    }
    let page = http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);

    // An oversized form body gets 413 before anything reads it as a form.
    let big = format!("ticket={}&csrf=x", "a".repeat(64 * 1024));
    let posted = http
        .post(format!("{}/connect/bitbucket", setup.public_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 413);
    let html = posted.text().await.unwrap();
    assert!(html.contains("larger than devgate accepts"), "{html}");

    // And the connect itself still works through that server.
    let walk = walk_connect(&link, "ann", "allow").await;
    assert!(walk.final_url.ends_with("/connected"), "{}", walk.final_url);
    assert_eq!(current_user(&client).await["name"], "Ann Dev");
    client.cancel().await.unwrap();
}

/// `devgate http` serves the connect and confirm pages with the same Host check as `/mcp`: a page fetched through a
/// rebinding name is refused, so another site cannot read a connect page (and its CSRF token) or drive a
/// callback through the user's browser.
#[tokio::test]
async fn the_http_pages_check_host() {
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    let _gateway = oauth_http(&setup, &[]).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in [
        "/connect/bitbucket?ticket=x",
        "/integration-callback?state=x&code=y",
        "/connected",
        "/confirm?ticket=x",
    ] {
        let url = format!("{}{path}", setup.public_url());
        let foreign = http
            .get(&url)
            .header("host", format!("rebind.example:{}", setup.port()))
            .send()
            .await
            .unwrap();
        assert_eq!(foreign.status(), 403, "{path}");
        let own = http.get(&url).send().await.unwrap();
        assert_ne!(own.status(), 403, "{path}");
    }
}

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
