//! Clients that cannot ask get a confirm page; used approvals, missing public URL, what is confirmed.

use super::*;

// --- clients that cannot ask: the confirm page ---------------------------------------------------

/// Follows a confirm link as a browser would: the page (which must name `user`), then its button.
/// Returns the page and the answer to the POST.
async fn approve_on_page(link: &str, user: &str) -> (String, reqwest::Response) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http.get(link).send().await.unwrap();
    assert_eq!(page.status(), 200, "confirm page at {link}");
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("form-action 'self'"),
        "{csp}"
    );
    let cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("; ");
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!("<strong>{user}</strong>")), "{html}");
    let action = form_action(&html, link);
    let fields = hidden_fields(&html);
    // Without the cookie the page set (a cross-site form), nothing is approved.
    let forged = http.post(&action).form(&fields).send().await.unwrap();
    assert_eq!(forged.status(), 403);
    let posted = http
        .post(&action)
        .header("cookie", cookie)
        .form(&fields)
        .send()
        .await
        .unwrap();
    (html, posted)
}

/// A client without elicitation (even passing `confirm: true`) gets a link; the page names the user
/// and states the summary; after the approval one retry with the same arguments runs, once; the next
/// finds the PR merged and is refused without a link (a repeatable call's next retry needs a new
/// confirmation: `a_used_answer_or_approval_is_not_used_again`); another user's identical call cannot
/// use the approval.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_cannot_ask_gets_a_confirm_page() {
    for mode in [Mode::Stdio, Mode::Stateful, Mode::Stateless] {
        let sim = Sim::start().await.unwrap();
        let gateway = Gateway::start(&sim, mode, "").await;
        let alice = gateway
            .session(
                "alice",
                User::new(true, false, ProtocolVersion::V_2025_11_25),
            )
            .await;
        let mut forced = merge_21();
        forced["confirm"] = json!(true);
        let refused = complete(&alice, request(MERGE, forced.clone())).await;
        assert!(is_error(&refused));
        let message = text(&refused);
        assert!(
            message.contains("Merge PR #21 from `")
                && message.contains("call again with the same arguments"),
            "{message}"
        );
        let link = link_in(&message);
        assert!(
            link.starts_with(&format!("{}/confirm?ticket=", gateway.setup.public_url())),
            "{link}"
        );
        assert_eq!(posts(&sim, "/merge"), 0, "{mode:?}");

        let (page, approved) = approve_on_page(&link, "alice").await;
        assert!(page.contains("Merge PR #21 from"), "{page}");
        assert_eq!(approved.status(), 200);
        let again = reqwest::Client::new().get(&link).send().await.unwrap();
        assert_eq!(again.status(), 410, "the link works once");

        if mode != Mode::Stdio {
            // Bob's identical call is his own: it gets a link of its own, and nothing runs.
            let bob = gateway
                .session("bob", User::new(true, false, ProtocolVersion::V_2025_11_25))
                .await;
            let bobs = complete(&bob, request(MERGE, forced.clone())).await;
            assert!(text(&bobs).contains("/confirm?ticket="), "{}", text(&bobs));
            assert_eq!(
                posts(&sim, "/merge"),
                0,
                "{mode:?}: bob used alice's approval"
            );
            bob.cancel().await.unwrap();
        }

        // Other arguments are not what alice approved.
        let other = complete(
            &alice,
            request(
                MERGE,
                json!({"repo_slug": "api", "pull_request_id": 21, "strategy": "merge_commit"}),
            ),
        )
        .await;
        assert!(
            text(&other).contains("/confirm?ticket="),
            "{}",
            text(&other)
        );
        assert_eq!(posts(&sim, "/merge"), 0);

        let merged = complete(&alice, request(MERGE, forced.clone())).await;
        assert_eq!(ok("merge", &merged)["state"], "MERGED", "{mode:?}");
        assert_eq!(posts(&sim, "/merge"), 1);
        let second = complete(&alice, request(MERGE, forced)).await;
        assert!(
            is_error(&second)
                && text(&second).contains("state is MERGED")
                && !text(&second).contains("/confirm?ticket="),
            "{mode:?}: a second retry finds the PR merged: {}",
            text(&second)
        );
        assert_eq!(posts(&sim, "/merge"), 1, "{mode:?}: merged exactly once");
        let ticket = link.split("ticket=").nth(1).unwrap().to_string();
        assert_no_secrets(&sim, &[ticket], &[("the logs", &gateway.logs())]);
        alice.cancel().await.unwrap();
    }
}

/// An answer or an approval counts once even where the same call could run again (a run, confirmed
/// through `tools.confirm`, whose target does not change): the answered request replayed is asked
/// again, and the retry after the one a page approval let through gets a new link. Each ran once.
#[tokio::test(flavor = "multi_thread")]
async fn a_used_answer_or_approval_is_not_used_again() {
    const RUN: &str = "buddy_run_pipeline";
    let runs = |sim: &Sim| posts(sim, "/executions");
    for mode in [Mode::Stdio, Mode::Stateful, Mode::Stateless] {
        let sim = Sim::start().await.unwrap();
        let gateway =
            Gateway::start(&sim, mode, "[tools]\nconfirm = [\"buddy_run_pipeline\"]").await;
        let arguments = json!({"project": "web", "pipeline": 1, "branch": "main"});

        let modern = gateway
            .session(
                "alice",
                User::new(true, true, ProtocolVersion::V_2026_07_28),
            )
            .await;
        let run = request(RUN, arguments.clone());
        let (_, state) = asked(&modern, run.clone()).await;
        let answer = answered(&run, "accept", Some(&state));
        ok(RUN, &complete(&modern, answer.clone()).await);
        asked(&modern, answer).await;
        assert_eq!(runs(&sim), 1, "{mode:?}: the answer ran one run");
        modern.cancel().await.unwrap();

        let plain = gateway
            .session(
                "alice",
                User::new(true, false, ProtocolVersion::V_2025_11_25),
            )
            .await;
        let first = complete(&plain, request(RUN, arguments.clone())).await;
        let (_, approved) = approve_on_page(&link_in(&text(&first)), "alice").await;
        assert_eq!(approved.status(), 200);
        ok(
            RUN,
            &complete(&plain, request(RUN, arguments.clone())).await,
        );
        let second = complete(&plain, request(RUN, arguments)).await;
        assert!(
            is_error(&second) && text(&second).contains("/confirm?ticket="),
            "{mode:?}: the next retry needs a new confirmation: {}",
            text(&second)
        );
        assert_eq!(runs(&sim), 2, "{mode:?}: the approval ran one run");
        plain.cancel().await.unwrap();
    }
}

/// stdio without `public_url`: no page can be served, and the error says so and names the fixes.
#[tokio::test(flavor = "multi_thread")]
async fn without_a_public_url_the_error_names_the_fixes() {
    let sim = Sim::start().await.unwrap();
    let client = in_process_for(&sim, "").await;
    let arguments = json!({"project": "web", "pipeline": "build-and-test", "execution_id": 5127, "confirm": true});
    let refused = call(&client, "buddy_stop_execution", arguments).await;
    assert!(is_error(&refused));
    let message = text(&refused);
    for needed in [
        "\"Stop run #5127 (INPROGRESS) of pipeline build-and-test on `",
        "public_url",
        "form elicitation",
        "confirm_destructive = false",
    ] {
        assert!(message.contains(needed), "{needed}: {message}");
    }
    assert!(!message.contains("confirm: true"), "{message}");
    assert!(
        !sim.requests().iter().any(|r| r.method == "PATCH"),
        "nothing reached Buddy"
    );
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn what_is_confirmed_is_configurable() {
    let sim = Sim::start().await.unwrap();
    let gateway = Gateway::start(
        &sim,
        Mode::Stdio,
        "\n[tools]\nconfirm_destructive = false\nconfirm = [\"buddy_run_pipeline\"]",
    )
    .await;
    let user = User::new(true, true, ProtocolVersion::V_2025_11_25);
    let client = gateway.session("alice", user.clone()).await;
    let merged = complete(&client, request(MERGE, merge_21())).await;
    assert_eq!(ok("merge", &merged)["state"], "MERGED");
    assert!(
        user.asked().is_empty(),
        "merge not confirmed: {:?}",
        user.asked()
    );
    let run = complete(
        &client,
        request(
            "buddy_run_pipeline",
            json!({"project": "web", "pipeline": "build-and-test"}),
        ),
    )
    .await;
    ok("run", &run);
    assert_eq!(
        user.asked(),
        vec![
            "Run pipeline build-and-test in acme/web on `its default branch`. Go ahead?"
                .to_string()
        ]
    );
    client.cancel().await.unwrap();
}
