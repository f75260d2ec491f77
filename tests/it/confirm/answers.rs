//! Answers count only if devgate asked: confirm true, form answers, sealed states, forged or stale answers.

use super::*;

/// `confirm: true` from a 2025-11-25 client that declared form elicitation: over stdio and stateful
/// HTTP the user is asked (and declines); over stateless HTTP, where the request cannot carry a
/// question back, the user gets the confirm page. Nothing reaches Bitbucket either way.
#[tokio::test(flavor = "multi_thread")]
async fn confirm_true_is_never_consent() {
    for mode in [Mode::Stdio, Mode::Stateful, Mode::Stateless] {
        let sim = Sim::start().await.unwrap();
        let gateway = Gateway::start(&sim, mode, "").await;
        let user = User::new(false, true, ProtocolVersion::V_2025_11_25);
        let client = gateway.session("alice", user.clone()).await;
        let mut forced = merge_21();
        forced["confirm"] = json!(true);
        let result = complete(&client, request(MERGE, forced)).await;
        assert!(is_error(&result), "{mode:?}: {}", text(&result));
        if mode == Mode::Stateless {
            assert!(
                text(&result).contains("/confirm?ticket="),
                "{mode:?}: {}",
                text(&result)
            );
            assert!(user.asked().is_empty());
        } else {
            assert!(
                text(&result).contains("did not confirm"),
                "{}",
                text(&result)
            );
            assert_eq!(user.asked().len(), 1, "{mode:?}: asked once");
            assert!(
                user.asked()[0].starts_with("Merge PR #21 "),
                "{:?}",
                user.asked()
            );
        }
        assert_eq!(
            posts(&sim, "/merge"),
            0,
            "{mode:?}: nothing reached Bitbucket"
        );
        client.cancel().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_accepted_form_confirmation_sends_the_call_once() {
    for mode in [Mode::Stdio, Mode::Stateful] {
        let sim = Sim::start().await.unwrap();
        let gateway = Gateway::start(&sim, mode, "").await;
        let user = User::new(true, true, ProtocolVersion::V_2025_11_25);
        let client = gateway.session("alice", user.clone()).await;
        let merged = complete(&client, request(MERGE, merge_21())).await;
        assert_eq!(ok("merge", &merged)["state"], "MERGED");
        assert_eq!(user.asked().len(), 1, "{mode:?}");
        assert_eq!(posts(&sim, "/pullrequests/21/merge"), 1);
        client.cancel().await.unwrap();
    }
}

/// A 2026-07-28 client is asked through `input_required`; answering with the state devgate issued
/// (as rmcp's client does on its own) runs the call once; declining sends nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_2026_client_answers_with_the_state_devgate_issued() {
    for mode in [Mode::Stdio, Mode::Stateful, Mode::Stateless] {
        let sim = Sim::start().await.unwrap();
        let gateway = Gateway::start(&sim, mode, "").await;
        let declining = User::new(false, true, ProtocolVersion::V_2026_07_28);
        let client = gateway.session("alice", declining.clone()).await;
        let declined = client.call_tool(request(MERGE, merge_21())).await.unwrap();
        assert!(is_error(&declined) && text(&declined).contains("did not confirm"));
        assert_eq!(declining.asked().len(), 1, "{mode:?}");
        assert_eq!(posts(&sim, "/merge"), 0);
        client.cancel().await.unwrap();

        let accepting = User::new(true, true, ProtocolVersion::V_2026_07_28);
        let client = gateway.session("alice", accepting.clone()).await;
        let merged = client.call_tool(request(MERGE, merge_21())).await.unwrap();
        assert_eq!(ok("merge", &merged)["state"], "MERGED", "{mode:?}");
        let question = &accepting.asked()[0];
        assert!(
            question.starts_with("Merge PR #21 ") && question.ends_with(". Go ahead?"),
            "{question}"
        );
        assert_eq!(posts(&sim, "/merge"), 1, "{mode:?}");
        client.cancel().await.unwrap();
    }
}

/// Answers devgate did not issue are asked again, and nothing reaches Bitbucket: no `requestState`, a
/// tampered one, one issued for other arguments, another tool or another user, an expired one, and
/// one used before.
#[tokio::test(flavor = "multi_thread")]
async fn forged_answers_are_asked_again() {
    for mode in [Mode::Stdio, Mode::Stateful, Mode::Stateless] {
        let sim = Sim::start().await.unwrap();
        let gateway = Gateway::start(&sim, mode, "").await;
        let alice = gateway
            .session(
                "alice",
                User::new(true, true, ProtocolVersion::V_2026_07_28),
            )
            .await;
        let merge = request(MERGE, merge_21());

        // Accepted on the first call, without devgate ever asking.
        let (summary, state) = asked(&alice, answered(&merge, "accept", None)).await;
        let mut tampered = state.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        asked(&alice, answered(&merge, "accept", Some(&tampered))).await;

        // A state for other arguments, for another tool.
        let other_args = request(
            MERGE,
            json!({"repo_slug": "api", "pull_request_id": 21, "strategy": "merge_commit"}),
        );
        asked(&alice, answered(&other_args, "accept", Some(&state))).await;
        let decline = request(
            "bitbucket_decline_pull_request",
            json!({"repo_slug": "api", "pull_request_id": 21}),
        );
        let (_, decline_state) = asked(&alice, decline).await;
        asked(&alice, answered(&merge, "accept", Some(&decline_state))).await;

        // Expired: sealed with devgate's own key for exactly this call, a second too old. (The store and
        // its key are shared by HTTP instances; stdio without OAuth providers keeps a key of its own.)
        if mode != Mode::Stdio {
            let expired = forged_state(
                "alice",
                summary.trim_end_matches(". Go ahead?"),
                devgate::vault::now() - 1,
            );
            asked(&alice, answered(&merge, "accept", Some(&expired))).await;
        }
        assert_eq!(
            posts(&sim, "/merge"),
            0,
            "{mode:?}: nothing reached Bitbucket"
        );

        // Another user: bob replays alice's state for the same call.
        if mode != Mode::Stdio {
            let bob = gateway
                .session("bob", User::new(true, true, ProtocolVersion::V_2026_07_28))
                .await;
            asked(&bob, answered(&merge, "accept", Some(&state))).await;
            bob.cancel().await.unwrap();
            assert_eq!(
                posts(&sim, "/merge"),
                0,
                "{mode:?}: bob's replay reached Bitbucket"
            );
        }

        // The real state runs the call once. The same answer again finds the PR merged: refused
        // without a question (a call that could run again is asked again: see
        // `a_used_answer_or_approval_is_not_used_again`).
        let merged = complete(&alice, answered(&merge, "accept", Some(&state))).await;
        assert_eq!(ok("merge", &merged)["state"], "MERGED", "{mode:?}");
        let replayed = complete(&alice, answered(&merge, "accept", Some(&state))).await;
        assert!(
            is_error(&replayed) && text(&replayed).contains("state is MERGED"),
            "{mode:?}: {}",
            text(&replayed)
        );
        assert_eq!(posts(&sim, "/merge"), 1, "{mode:?}: merged exactly once");
        assert_no_secrets(&sim, &[state], &[("the logs", &gateway.logs())]);
        alice.cancel().await.unwrap();
    }
}

/// The expiry check is what refuses the expired state above: the same forgery with a future expiry
/// is accepted.
#[tokio::test(flavor = "multi_thread")]
async fn a_state_sealed_with_devgates_key_counts_until_it_expires() {
    let sim = Sim::start().await.unwrap();
    let gateway = Gateway::start(&sim, Mode::Stateless, "").await;
    let alice = gateway
        .session(
            "alice",
            User::new(true, true, ProtocolVersion::V_2026_07_28),
        )
        .await;
    let merge = request(MERGE, merge_21());
    let (question, _) = asked(&alice, merge.clone()).await;
    let summary = question.trim_end_matches(". Go ahead?");
    let expired = forged_state("alice", summary, devgate::vault::now() - 1);
    asked(&alice, answered(&merge, "accept", Some(&expired))).await;
    assert_eq!(posts(&sim, "/merge"), 0);
    let valid = forged_state("alice", summary, devgate::vault::now() + 60);
    let merged = complete(&alice, answered(&merge, "accept", Some(&valid))).await;
    assert_eq!(ok("merge", &merged)["state"], "MERGED");
    assert_eq!(posts(&sim, "/merge"), 1);
    alice.cancel().await.unwrap();
}

/// The summary is part of what a state is bound to: when the target changed after the question (here
/// the PR's title), the old answer is asked again, with the question as it reads now.
#[tokio::test(flavor = "multi_thread")]
async fn an_answer_about_a_target_that_changed_is_asked_again() {
    let sim = Sim::start().await.unwrap();
    let gateway = Gateway::start(&sim, Mode::Stateless, "").await;
    let alice = gateway
        .session(
            "alice",
            User::new(true, true, ProtocolVersion::V_2026_07_28),
        )
        .await;
    let merge = request(MERGE, merge_21());
    let (before, state) = asked(&alice, merge.clone()).await;

    let renamed = client_call_confirmed(
        &gateway,
        "bitbucket_update_pull_request",
        json!({"repo_slug": "api", "pull_request_id": 21, "title": "Renamed meanwhile"}),
    )
    .await;
    assert_eq!(ok("update", &renamed)["title"], "Renamed meanwhile");

    let (after, fresh) = asked(&alice, answered(&merge, "accept", Some(&state))).await;
    assert_ne!(before, after);
    assert!(after.contains("title: \"Renamed meanwhile\""), "{after}");
    assert_eq!(posts(&sim, "/merge"), 0);
    let merged = complete(&alice, answered(&merge, "accept", Some(&fresh))).await;
    assert_eq!(ok("merge", &merged)["state"], "MERGED");
    assert_eq!(posts(&sim, "/merge"), 1);
    alice.cancel().await.unwrap();
}
