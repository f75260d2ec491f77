//! The streamable HTTP transport, stateful and stateless, through rmcp's HTTP client against the real
//! binary: tools listed and the headline tools called; Host checked; health answered.

mod common;

use common::*;
use devgate::sim::Sim;
use serde_json::json;

async fn headline_calls(client: &Client) {
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.len() > 40, "{} tools", tools.len());

    let prs = ok(
        "bitbucket_list_pull_requests",
        &call(
            client,
            "bitbucket_list_pull_requests",
            json!({"repo_slug": "api"}),
        )
        .await,
    );
    assert!(
        prs["items"].as_array().is_some_and(|i| !i.is_empty()),
        "{prs}"
    );

    let run = ok(
        "buddy_run_pipeline",
        &call(
            client,
            "buddy_run_pipeline",
            json!({"project": "web", "pipeline": "1", "comment": "from a test"}),
        )
        .await,
    );
    assert!(run.get("id").is_some(), "{run}");

    let runs = ok(
        "buddy_list_executions",
        &call(
            client,
            "buddy_list_executions",
            json!({"project": "web", "pipeline": "1"}),
        )
        .await,
    );
    assert_eq!(
        runs["items"][0]["id"], run["id"],
        "the new run is listed first: {runs}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stateful_http_serves_tools() {
    let sim = Sim::start().await.unwrap();
    let gateway = http(&config_for(&sim, ""), false).await;
    let client = http_client(&gateway.url).await;
    headline_calls(&client).await;
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn stateless_http_serves_tools() {
    let sim = Sim::start().await.unwrap();
    let gateway = http(&config_for(&sim, ""), true).await;
    let client = http_client(&gateway.url).await;
    headline_calls(&client).await;
    client.cancel().await.unwrap();
    assert!(!gateway.stderr.text().contains("sim-bitbucket-token"));
}

#[tokio::test(flavor = "multi_thread")]
async fn foreign_hosts_are_refused_and_health_is_answered() {
    let sim = Sim::start().await.unwrap();
    let gateway = http(&config_for(&sim, ""), false).await;
    let http = reqwest::Client::new();
    let base = gateway.url.trim_end_matches("/mcp");
    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let rebinding = http
        .post(&gateway.url)
        .header("Host", "attacker.example")
        .header("Accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(rebinding.status(), 403, "DNS rebinding is refused");
}
