//! The streamable HTTP transport, stateful and stateless, through rmcp's HTTP client against the real
//! binary: tools listed and the headline tools called; Host checked; health answered.

use crate::common::*;
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

#[tokio::test(flavor = "multi_thread")]
async fn limits_guard_the_http_edge() {
    let sim = Sim::start().await.unwrap();
    let config = config_for(
        &sim,
        "\n[limits]\ncalls_per_minute = 60\nburst = 3\nmax_request_bytes = 65536",
    );
    let gateway = http(&config, false).await;
    let http = reqwest::Client::new();
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});

    // A browser page from another site cannot drive /mcp.
    let foreign = http
        .post(&gateway.url)
        .header("Origin", "https://evil.example")
        .header("Accept", "application/json, text/event-stream")
        .json(&list)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);

    // Oversized bodies are refused before they are read.
    let huge = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "x", "arguments": {"pad": "x".repeat(200_000)}}});
    let too_big = http
        .post(&gateway.url)
        .header("Accept", "application/json, text/event-stream")
        .json(&huge)
        .send()
        .await
        .unwrap();
    assert_eq!(too_big.status(), 413);

    // The per-user rate: a burst of 3 (opening the session took one), then a clear error with a wait.
    let client = http_client(&gateway.url).await;
    for _ in 0..2 {
        ok(
            "bitbucket_get_current_user",
            &call(&client, "bitbucket_get_current_user", json!({})).await,
        );
    }
    let limited = call(&client, "bitbucket_get_current_user", json!({})).await;
    assert!(is_error(&limited));
    assert!(
        text(&limited).contains("Rate limit") && text(&limited).contains("Wait 1 s"),
        "{}",
        text(&limited)
    );
    client.cancel().await.unwrap();
}

/// `--threads 1` runs the server on one thread and `--threads 3` on three connection threads, each
/// with its own runtime and upstream connections: either way many clients are answered at once (nothing
/// in a call may wait on another thread), and a thread count of 0 is refused with the flag's name.
#[tokio::test(flavor = "multi_thread")]
async fn one_or_several_threads_serve_concurrent_clients() {
    let sim = Sim::start().await.unwrap();
    let config = config_for(&sim, "");
    for threads in ["1", "3"] {
        let gateway = http_with(&config, &["--threads", threads]).await;
        let client = http_client(&gateway.url).await;
        headline_calls(&client).await;

        let others = futures::future::join_all((0..6).map(|_| http_client(&gateway.url))).await;
        let pages = futures::future::join_all(others.iter().flat_map(|c| {
            (0..4).map(move |_| {
                call(
                    c,
                    "bitbucket_list_pull_requests",
                    json!({"repo_slug": "api"}),
                )
            })
        }))
        .await;
        assert_eq!(pages.len(), 24);
        for page in &pages {
            let page = ok("bitbucket_list_pull_requests", page);
            assert!(
                page["items"].as_array().is_some_and(|i| !i.is_empty()),
                "{page}"
            );
        }
        // Linux names the threads in /proc: as many connection threads as asked for (none for 1).
        #[cfg(target_os = "linux")]
        {
            let pid = gateway.pid().unwrap();
            let named = std::fs::read_dir(format!("/proc/{pid}/task"))
                .unwrap()
                .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
                .filter(|comm| comm.starts_with("devgate-http-"))
                .count();
            let expected = if threads == "1" { 0 } else { 3 };
            assert_eq!(named, expected, "--threads {threads}");
        }
        for c in others {
            c.cancel().await.unwrap();
        }
        client.cancel().await.unwrap();
    }

    let refused = std::process::Command::new(BIN)
        .args(["http", "--threads", "0", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(error.contains("--threads"), "{error}");
}
