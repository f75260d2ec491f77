//! The flow cookie binds the flow to the browser: another browser connects nothing, two tabs both finish, the success page says only what happened.

use super::*;

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
