//! Provider failures, injected by the sim's fault knobs, each mapped to what design §6 promises.

use std::time::Duration;

use crate::common::*;
use devgate::sim::{Fault, Sim, Which};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn status_errors_carry_the_providers_message_and_a_hint() {
    let sim = Sim::start().await.unwrap();
    let (client, stderr) = stdio(&config_for(&sim, "")).await;

    let r = call(
        &client,
        "bitbucket_get_repository",
        json!({"repo_slug": "nope"}),
    )
    .await;
    assert!(is_error(&r));
    assert!(
        text(&r).contains("answered 404")
            && text(&r).contains("Check workspace=acme, repo_slug=nope"),
        "{}",
        text(&r)
    );

    let r = call(&client, "buddy_get_project", json!({"project": "nope"})).await;
    assert!(is_error(&r));
    assert!(
        text(&r).contains("Buddy.Works answered 404") && text(&r).contains("project=nope"),
        "{}",
        text(&r)
    );

    sim.state.add_fault(Fault::status(
        Which::Bitbucket,
        "/repositories/acme/api",
        403,
        1,
    ));
    let r = call(
        &client,
        "bitbucket_get_repository",
        json!({"repo_slug": "api"}),
    )
    .await;
    assert!(
        text(&r).contains("answered 403") && text(&r).contains("repository"),
        "{}",
        text(&r)
    );

    sim.state.set_tokens(Which::Buddy, vec![]);
    let r = call(&client, "buddy_list_workspaces", json!({})).await;
    assert!(is_error(&r));
    assert!(
        text(&r).contains("answered 401") && text(&r).contains("providers.buddy.token"),
        "{}",
        text(&r)
    );

    assert!(!stderr.text().contains("sim-buddy-token") && !text(&r).contains("sim-buddy-token"));
    client.cancel().await.unwrap();
}

/// Whatever the status, the message says what to do next.
#[tokio::test(flavor = "multi_thread")]
async fn every_status_error_names_the_next_action() {
    let sim = Sim::start().await.unwrap();
    let client = in_process_for(&sim, "").await;
    let actions = [
        "call again",
        "Check ",
        "check providers.",
        "check its state",
        "grant it",
        "read it first",
        "wait ",
        "try again",
    ];
    for status in [400, 401, 403, 404, 405, 409, 410, 422, 429, 500, 502, 503] {
        for (tool, arguments, path) in [
            (
                "bitbucket_get_repository",
                json!({"repo_slug": "api"}),
                "/repositories/acme/api",
            ),
            (
                "buddy_stop_execution",
                json!({"project": "web", "pipeline": 1, "execution_id": 5127}),
                "/executions/5127",
            ),
        ] {
            // More failures than devgate retries a read.
            sim.state
                .add_fault(Fault::status(Which::Bitbucket, path, status, 10));
            sim.state
                .add_fault(Fault::status(Which::Buddy, path, status, 10));
            let r = call(&client, tool, arguments).await;
            assert!(is_error(&r), "{tool} {status}");
            let message = text(&r);
            assert!(
                message.contains(&format!("answered {status}")),
                "{tool} {status}: {message}"
            );
            assert!(
                actions.iter().any(|a| message.contains(a)),
                "{tool} {status}: no next action in: {message}"
            );
            sim.state.clear_faults();
        }
    }
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_are_retried_and_writes_are_not() {
    let sim = Sim::start().await.unwrap();
    let client = in_process_for(&sim, "").await;

    sim.state.add_fault(Fault::status(
        Which::Bitbucket,
        "/repositories/acme/api",
        502,
        2,
    ));
    let r = call(
        &client,
        "bitbucket_get_repository",
        json!({"repo_slug": "api"}),
    )
    .await;
    ok("bitbucket_get_repository", &r);
    assert_eq!(
        count(&sim, "GET", "/repositories/acme/api"),
        3,
        "two failures, then the answer"
    );

    sim.state.clear_requests();
    sim.state.add_fault(Fault::status(
        Which::Bitbucket,
        "/repositories/acme/api",
        503,
        10,
    ));
    let r = call(
        &client,
        "bitbucket_get_repository",
        json!({"repo_slug": "api"}),
    )
    .await;
    assert!(is_error(&r));
    assert!(
        text(&r).contains("answered 503") && text(&r).contains("tried 3 time(s)"),
        "{}",
        text(&r)
    );
    assert_eq!(
        count(&sim, "GET", "/repositories/acme/api"),
        3,
        "bounded retries"
    );
    sim.state.clear_faults();

    sim.state.clear_requests();
    let mut fault = Fault::status(Which::Buddy, "/executions", 502, 1);
    fault.method = Some("POST".into());
    sim.state.add_fault(fault);
    let r = call(
        &client,
        "buddy_run_pipeline",
        json!({"project": "web", "pipeline": "1"}),
    )
    .await;
    assert!(is_error(&r));
    assert!(
        text(&r).contains("may or may not have happened"),
        "{}",
        text(&r)
    );
    assert_eq!(
        count(&sim, "POST", "/executions"),
        1,
        "a run is never sent twice"
    );
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_honour_retry_after() {
    let sim = Sim::start().await.unwrap();
    let client = in_process_for(&sim, "max_retry_after_ms = 1500").await;

    let mut fault = Fault::status(Which::Bitbucket, "/pullrequests", 429, 1);
    fault.retry_after = Some(1);
    sim.state.add_fault(fault);
    let r = call(
        &client,
        "bitbucket_list_pull_requests",
        json!({"repo_slug": "api"}),
    )
    .await;
    ok("bitbucket_list_pull_requests", &r);
    assert_eq!(count(&sim, "GET", "/pullrequests"), 2);

    sim.state.clear_requests();
    let mut fault = Fault::status(Which::Bitbucket, "/pullrequests", 429, 5);
    fault.retry_after = Some(3600);
    sim.state.add_fault(fault);
    let r = call(
        &client,
        "bitbucket_list_pull_requests",
        json!({"repo_slug": "api"}),
    )
    .await;
    assert!(is_error(&r));
    assert!(
        text(&r).contains("Rate limited; wait 3600 s"),
        "{}",
        text(&r)
    );
    assert_eq!(
        count(&sim, "GET", "/pullrequests"),
        1,
        "a long Retry-After is reported, not waited for"
    );
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn timeouts_and_malformed_bodies_are_reported() {
    let sim = Sim::start().await.unwrap();
    let client = in_process_for(&sim, "timeout_ms = 300\nretries = 1").await;

    sim.state.add_fault(Fault::delay(
        Which::Buddy,
        "/workspaces",
        Duration::from_secs(3),
        2,
    ));
    let r = call(&client, "buddy_list_workspaces", json!({})).await;
    assert!(is_error(&r));
    assert!(
        text(&r).contains("could not be reached") && text(&r).contains("300 ms"),
        "{}",
        text(&r)
    );

    let mut fault = Fault::status(Which::Buddy, "/workspaces", 200, 1);
    fault.status = None;
    fault.body = Some("{\"workspaces\": [".into());
    sim.state.add_fault(fault);
    let r = call(&client, "buddy_list_workspaces", json!({})).await;
    assert!(is_error(&r));
    assert!(text(&r).contains("invalid JSON"), "{}", text(&r));
    client.cancel().await.unwrap();
}
