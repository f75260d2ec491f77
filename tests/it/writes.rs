//! Tools that change something send exactly the body the provider expects, and keep what they must.

use crate::common::*;
use devgate::sim::{Sim, Which};
use serde_json::{Value, json};

/// These clients cannot ask their users; confirming has its own tests (tests/it/confirm/).
const NO_CONFIRMING: &str = "\n[tools]\nconfirm_destructive = false";

fn last_body(sim: &Sim, method: &str, path_contains: &str) -> Value {
    sim.requests()
        .into_iter()
        .rev()
        .find(|r| r.method == method && r.path.contains(path_contains))
        .and_then(|r| r.body)
        .unwrap_or_else(|| {
            panic!(
                "no {method} {path_contains} with a body: {:?}",
                sim.requests()
            )
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn updating_a_title_keeps_description_and_reviewers() {
    let sim = Sim::start().await.unwrap();
    let client = in_process_for(&sim, NO_CONFIRMING).await;
    let args = json!({"repo_slug": "api", "pull_request_id": 25});
    let before = ok(
        "get",
        &call(&client, "bitbucket_get_pull_request", args.clone()).await,
    );
    assert!(
        before["reviewers"]
            .as_array()
            .is_some_and(|r| !r.is_empty()),
        "the seed PR has reviewers: {before}"
    );
    assert!(before.get("description").is_some());

    let mut change = args.clone();
    change["title"] = json!("A better title");
    ok(
        "update",
        &call(&client, "bitbucket_update_pull_request", change).await,
    );
    let after = ok(
        "get",
        &call(&client, "bitbucket_get_pull_request", args).await,
    );
    assert_eq!(after["title"], "A better title");
    assert_eq!(
        after["description"], before["description"],
        "description kept"
    );
    assert_eq!(after["reviewers"], before["reviewers"], "reviewers kept");
    let sent = last_body(&sim, "PUT", "/pullrequests/25");
    assert_eq!(sent["title"], "A better title");
    assert!(
        sent["reviewers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r.get("uuid").is_some())
    );
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_and_merges_send_the_providers_shapes() {
    let sim = Sim::start().await.unwrap();
    let client = in_process_for(&sim, NO_CONFIRMING).await;

    let run = json!({"repo_slug": "api", "branch": "main", "pipeline": "deploy-production", "variables": [{"key": "DRY_RUN", "value": "true", "secured": false}]});
    ok(
        "bitbucket_run_pipeline",
        &call(&client, "bitbucket_run_pipeline", run).await,
    );
    assert_eq!(
        last_body(&sim, "POST", "/pipelines"),
        json!({
            "target": {"type": "pipeline_ref_target", "ref_type": "branch", "ref_name": "main",
                       "selector": {"type": "custom", "pattern": "deploy-production"}},
            "variables": [{"key": "DRY_RUN", "value": "true", "secured": false}]
        })
    );

    let commit_run = json!({"repo_slug": "api", "commit": "0123456789abcdef0123456789abcdef01234567", "pipeline": "nightly-e2e"});
    call(&client, "bitbucket_run_pipeline", commit_run).await;
    assert_eq!(
        last_body(&sim, "POST", "/pipelines"),
        json!({"target": {"type": "pipeline_commit_target",
                          "commit": {"type": "commit", "hash": "0123456789abcdef0123456789abcdef01234567"},
                          "selector": {"type": "custom", "pattern": "nightly-e2e"}}})
    );

    let merged = ok(
        "bitbucket_merge_pull_request",
        &call(&client, "bitbucket_merge_pull_request", json!({"repo_slug": "api", "pull_request_id": 21, "strategy": "squash", "message": "Squash it", "close_source_branch": true})).await,
    );
    assert_eq!(merged["state"], "MERGED", "{merged}");
    let sent = last_body(&sim, "POST", "/pullrequests/21/merge");
    assert_eq!(sent["merge_strategy"], "squash");
    assert_eq!(sent["message"], "Squash it");
    assert_eq!(sent["close_source_branch"], true);

    ok(
        "bitbucket_add_pull_request_comment",
        &call(&client, "bitbucket_add_pull_request_comment", json!({"repo_slug": "api", "pull_request_id": 26, "text": "Why?", "path": "src/main.rs", "line": 3})).await,
    );
    assert_eq!(
        last_body(&sim, "POST", "/comments"),
        json!({"content": {"raw": "Why?"}, "inline": {"path": "src/main.rs", "to": 3}})
    );

    let buddy_run = json!({"project": "web", "pipeline": "build-and-test", "branch": "main", "comment": "c", "refresh": true, "variables": [{"key": "K", "value": "V"}]});
    let started = ok(
        "buddy_run_pipeline",
        &call(&client, "buddy_run_pipeline", buddy_run).await,
    );
    assert!(started.get("id").is_some());
    assert_eq!(
        last_body(&sim, "POST", "/executions"),
        json!({"branch": {"name": "main"}, "comment": "c", "refresh": true, "variables": [{"key": "K", "value": "V"}]})
    );
    assert!(
        sim.requests()
            .iter()
            .any(|r| r.provider == Which::Buddy && r.path.ends_with("/identifiers")),
        "the identifier was resolved first"
    );
    client.cancel().await.unwrap();
}
