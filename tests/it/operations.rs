//! What operators probe: `/readyz` says whether the store answers — ready on SQLite and PostgreSQL, not
//! ready (503, no detail for anonymous callers) when PostgreSQL goes away.

use std::process::Stdio;
use std::time::Duration;

use crate::common::*;
use devgate::sim::Sim;
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;

fn base(gateway: &HttpGateway) -> String {
    gateway.url.trim_end_matches("/mcp").to_string()
}

async fn readyz(base: &str) -> (u16, String) {
    let r = reqwest::get(format!("{base}/readyz")).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_when_the_store_answers() {
    let sim = Sim::start().await.unwrap();
    let gateway = http(&config_for(&sim, ""), false).await;
    assert_eq!(readyz(&base(&gateway)).await, (200, "ready\n".to_string()));
    let health = reqwest::get(format!("{}/healthz", base(&gateway)))
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

/// Forwards loopback connections to `target` until the returned handle is aborted; aborting also
/// drops every forwarded connection, as a database host going away would.
async fn proxy(target: String) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut links = tokio::task::JoinSet::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            links.spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (port, task)
}

#[tokio::test(flavor = "multi_thread")]
async fn not_ready_when_postgres_goes_away() {
    let Ok(server) = std::env::var("DEVGATE_TEST_POSTGRES_URL") else {
        skip::skip(
            skip::POSTGRES,
            "DEVGATE_TEST_POSTGRES_URL is not set (eval \"$(.ci/postgres.sh start)\" runs a server)",
        );
        return;
    };
    let name = format!("devgate_ready_{}", rand::random::<u32>());
    let pool = sqlx::PgPool::connect(&server).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let mut url = url::Url::parse(&server).unwrap();
    let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let (port, forwarding) = proxy(target).await;
    url.set_port(Some(port)).unwrap();
    url.set_path(&format!("/{name}"));

    let sim = Sim::start().await.unwrap();
    let config = config_for(&sim, &format!("\n[store]\nurl = \"{url}\""));
    let mut cmd = Command::new(BIN);
    cmd.arg("http")
        .arg("--config")
        .arg(&config)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env("DEVGATE_SECRET_KEY", TEST_SECRET_KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in token_env() {
        cmd.env(k, v);
    }
    let gateway = spawn_http(cmd).await;
    let base = base(&gateway);
    assert_eq!(readyz(&base).await, (200, "ready\n".to_string()));

    forwarding.abort();
    let _ = forwarding.await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (status, body) = loop {
        let answer = readyz(&base).await;
        if answer.0 != 200 || std::time::Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("not ready: the store"), "{body}");
    assert!(
        !body.contains(&name) && !body.contains("127.0.0.1"),
        "no detail: {body}"
    );
    assert!(
        gateway.stderr.text().contains("not ready"),
        "the cause is logged: {}",
        gateway.stderr.text()
    );
}

/// A caller's `X-Request-Id` comes back in the response header, at the end of an `isError` text and in
/// the call's log line; a request without one gets a fresh id.
#[tokio::test(flavor = "multi_thread")]
async fn request_ids_reach_the_header_the_error_and_the_log() {
    let sim = Sim::start().await.unwrap();
    let gateway = http(&config_for(&sim, ""), true).await;
    let client = reqwest::Client::new();
    let post = |body: serde_json::Value, id: Option<&str>| {
        let mut request = client
            .post(&gateway.url)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .json(&body);
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        request.send()
    };
    let init = post(
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "ops", "version": "1"}}}),
        None,
    )
    .await
    .unwrap();
    let fresh = init.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(fresh.len(), 24, "a fresh id: {fresh}");

    let answer = post(
        serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "bitbucket_get_repository", "arguments": {"repo_slug": "no-such-repo"}}}),
        Some("support-ticket-4711"),
    )
    .await
    .unwrap();
    assert_eq!(answer.headers()["x-request-id"], "support-ticket-4711");
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["result"]["isError"], true, "{body}");
    let message = body["result"]["content"][0]["text"].as_str().unwrap();
    assert!(
        message.ends_with("(request id support-ticket-4711)"),
        "{message}"
    );
    let log = gateway.stderr.text();
    assert!(
        log.lines()
            .any(|l| l.contains("request_id=support-ticket-4711")
                && l.contains("tool=bitbucket_get_repository")
                && l.contains("outcome=\"provider_error\"")),
        "{log}"
    );
}

/// `--log-format json`: each tool call's log line is one JSON object with the user, the tool, the
/// outcome and the request id, and no token.
#[tokio::test(flavor = "multi_thread")]
async fn json_logs_carry_the_call_and_no_secret() {
    let sim = Sim::start().await.unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("--log-format")
        .arg("json")
        .arg("http")
        .arg("--config")
        .arg(config_for(&sim, ""))
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env("DEVGATE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in token_env() {
        cmd.env(k, v);
    }
    let gateway = spawn_http(cmd).await;
    let client = http_client(&gateway.url).await;
    ok(
        "bitbucket_get_repository",
        &call(
            &client,
            "bitbucket_get_repository",
            serde_json::json!({"repo_slug": "api"}),
        )
        .await,
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let line = loop {
        let found = gateway
            .stderr
            .text()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["fields"]["message"] == "call");
        if let Some(line) = found {
            break line;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no JSON call line: {}",
            gateway.stderr.text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(line["fields"]["outcome"], "ok", "{line}");
    assert_eq!(line["span"]["tool"], "bitbucket_get_repository", "{line}");
    assert_eq!(
        line["span"]["request_id"].as_str().unwrap().len(),
        24,
        "{line}"
    );
    assert!(line["span"]["user"].is_string(), "{line}");
    for (_, secret) in token_env() {
        assert!(
            !gateway.stderr.text().contains(secret),
            "a token in the log"
        );
    }
    client.cancel().await.unwrap();
}

/// `/metrics` in Prometheus text format moves with the calls made.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_calls_and_upstream_requests() {
    let sim = Sim::start().await.unwrap();
    let gateway = http(&config_for(&sim, ""), false).await;
    let client = http_client(&gateway.url).await;
    ok(
        "get",
        &call(
            &client,
            "bitbucket_get_repository",
            serde_json::json!({"repo_slug": "api"}),
        )
        .await,
    );
    ok(
        "get",
        &call(
            &client,
            "bitbucket_get_repository",
            serde_json::json!({"repo_slug": "api"}),
        )
        .await,
    );
    let missing = call(
        &client,
        "bitbucket_get_repository",
        serde_json::json!({"repo_slug": "no-such-repo"}),
    )
    .await;
    assert!(is_error(&missing));
    let scrape = reqwest::get(format!("{}/metrics", base(&gateway)))
        .await
        .unwrap();
    assert_eq!(scrape.status().as_u16(), 200);
    assert!(
        scrape.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = scrape.text().await.unwrap();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
    };
    assert_eq!(
        value("devgate_tool_calls_total{tool=\"bitbucket_get_repository\",outcome=\"ok\"}"),
        2.0
    );
    assert_eq!(
        value(
            "devgate_tool_calls_total{tool=\"bitbucket_get_repository\",outcome=\"provider_error\"}"
        ),
        1.0
    );
    assert!(value("devgate_upstream_request_seconds_count{provider=\"bitbucket\"}") >= 3.0);
    assert_eq!(value("devgate_calls_in_flight"), 0.0);
    assert_eq!(
        value("devgate_mcp_sessions"),
        1.0,
        "this test's one session"
    );

    // A second session is counted, and no longer once its client closes it.
    let second = http_client(&gateway.url).await;
    let sessions = async || -> f64 {
        let text = reqwest::get(format!("{}/metrics", base(&gateway)))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| {
                l.strip_prefix("devgate_mcp_sessions ")
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap()
    };
    assert_eq!(sessions().await, 2.0);
    second.cancel().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sessions().await != 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the closed session is still counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (_, secret) in token_env() {
        assert!(!text.contains(secret));
    }
    client.cancel().await.unwrap();
}
