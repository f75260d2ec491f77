//! The HTTP edge against the real binary: names a caller makes up stay out of metrics, the audit, the
//! logs and memory; sessions belong to the user who opened them and are capped; slow or half-sent
//! requests are cut off and connections capped; `auth = "none"` is refused wherever others could reach
//! devgate.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;
use devgate::sim::Sim;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

/// `devgate http` with `config` and extra environment, logging at the default level (as in production).
async fn gateway(config: &Path, env: &[(&str, &str)], stateless: bool) -> HttpGateway {
    let mut cmd = Command::new(BIN);
    cmd.arg("http")
        .arg("--config")
        .arg(config)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .env_remove("DEVGATE_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if stateless {
        cmd.arg("--stateless");
    }
    for (k, v) in token_env().into_iter().chain(env.iter().copied()) {
        cmd.env(k, v);
    }
    spawn_http(cmd).await
}

fn base(gateway: &HttpGateway) -> String {
    gateway.url.trim_end_matches("/mcp").to_string()
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"edge","version":"1"}}}"#;

/// POSTs a JSON-RPC message to `/mcp` as `key` (if any), on `session` (if any).
async fn post(
    url: &str,
    key: Option<&str>,
    session: Option<&str>,
    body: &str,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string());
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(session) = session {
        request = request
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", "2025-11-25");
    }
    request.send().await.unwrap()
}

/// Opens a session as `key`: its id.
async fn open_session(url: &str, key: Option<&str>) -> String {
    let response = post(url, key, None, INITIALIZE).await;
    assert_eq!(response.status(), 200, "initialize");
    let id = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    response.text().await.unwrap();
    let initialized = post(
        url,
        key,
        Some(&id),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )
    .await;
    assert_eq!(initialized.status(), 202);
    id
}

// ---------------------------------------------------------------------------------------------------
// Made-up tool names
// ---------------------------------------------------------------------------------------------------

/// 150 calls to tools with 900 KB names: `/metrics`, the audit, the store, the log and the process's
/// memory do not grow with them; they are all `unknown`, and cost no rate budget.
#[tokio::test(flavor = "multi_thread")]
async fn made_up_tool_names_stay_out_of_metrics_audit_logs_and_memory() {
    const CALLS: usize = 150;
    let sim = Sim::start().await.unwrap();
    // A small budget, so that calls charged to it would soon be rate-limited (and were once counted
    // under their names).
    let config = config_for(&sim, "\n[limits]\ncalls_per_minute = 60\nburst = 5");
    let gateway = gateway(&config, &[], true).await;
    let http = reqwest::Client::new();
    let call = |name: String, id: usize| {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": {}}});
        http.post(&gateway.url)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .json(&body)
            .send()
    };
    // Warm up, then note the peak memory so far.
    for i in 0..3 {
        call(format!("warm_up_{i}"), i).await.unwrap();
    }
    let pid = gateway.pid().unwrap();
    let rss_before = peak_rss_kib(pid).unwrap();

    let padding = "x".repeat(900_000);
    let (mut unknown_answers, mut longest_error) = (0, 0);
    for i in 0..CALLS {
        let answer: Value = call(format!("{i:03}{padding}"), 10 + i)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if answer["error"]["code"] == -32602 {
            unknown_answers += 1;
            longest_error = longest_error.max(answer["error"]["message"].as_str().unwrap().len());
        }
    }
    let rss_after = peak_rss_kib(pid).unwrap();

    // A real tool still runs: the made-up calls took nothing from the rate budget.
    let real: Value = http
        .post(&gateway.url)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "bitbucket_get_current_user", "arguments": {}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let long_run = "x".repeat(100);
    let metrics = reqwest::get(format!("{}/metrics", base(&gateway)))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let log = gateway.stderr.text();
    let grown = rss_after.saturating_sub(rss_before);
    println!(
        "after {CALLS} calls with 900 KB names: {unknown_answers} answered `unknown tool`, peak RSS {rss_before} -> {rss_after} KiB, /metrics {} bytes, log {} bytes, longest error {longest_error} bytes",
        metrics.len(),
        log.len()
    );
    assert_eq!(
        unknown_answers, CALLS,
        "every call is answered as an unknown tool (none rate-limited)"
    );
    assert!(
        longest_error < 300,
        "an error repeats {longest_error} bytes of a name"
    );
    assert_eq!(real["result"]["isError"], false, "{real}");
    assert!(
        metrics.len() < 64 * 1024,
        "/metrics is {} bytes",
        metrics.len()
    );
    assert!(!metrics.contains(&long_run), "a made-up name is a label");
    assert!(
        metrics.contains(&format!(
            "devgate_tool_calls_total{{tool=\"unknown\",outcome=\"unknown_tool\"}} {}",
            CALLS + 3
        )),
        "{metrics}"
    );

    // The audit records them as `unknown` (written off the call's path: wait, bounded).
    let deadline = Instant::now() + Duration::from_secs(20);
    let records: Vec<Value> = loop {
        let out = devgate_with(
            &["audit", "--format", "json", "--limit", "1000"],
            &config,
            &token_env(),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stdout.len() < 512 * 1024,
            "the audit output is {} bytes",
            out.stdout.len()
        );
        let records: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        if records.len() > CALLS + 3 || Instant::now() > deadline {
            break records;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(records.len(), CALLS + 4, "every call is recorded");
    let unknown = records
        .iter()
        .filter(|r| r["tool"] == "unknown" && r["outcome"] == "unknown_tool")
        .count();
    assert_eq!(unknown, CALLS + 3, "{:?}", &records[..2]);

    let store: u64 = std::fs::read_dir(config.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    assert!(
        store < 8 * 1024 * 1024,
        "the store directory holds {store} bytes"
    );

    assert!(log.len() < 256 * 1024, "the log is {} bytes", log.len());
    assert!(!log.contains(&long_run), "a made-up name reached the log");
    assert!(log.contains("tool=unknown"), "{log}");
    assert!(grown < 40 * 1024, "peak RSS grew by {grown} KiB");
}

// ---------------------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------------------

/// A gateway with API keys for `users`, and `extra` appended to the config.
async fn keyed_gateway(sim: &Sim, extra: &str, users: &[&str]) -> (HttpGateway, Vec<String>) {
    let config = config_for(sim, extra);
    let keys = users
        .iter()
        .map(|user| {
            let out = devgate_with(&["keys", "create", user], &config, &token_env());
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        })
        .collect();
    let gateway = gateway(&config, &[("DEVGATE_HTTP__AUTH", "api_key")], false).await;
    (gateway, keys)
}

/// Another user's key on a session id: 404 for POST, GET and DELETE, as if the session did not exist;
/// the owner's session goes on working.
#[tokio::test(flavor = "multi_thread")]
async fn a_session_answers_only_its_owner() {
    let sim = Sim::start().await.unwrap();
    let (gateway, keys) = keyed_gateway(&sim, "", &["alice", "bob"]).await;
    let (alice, bob) = (keys[0].as_str(), keys[1].as_str());
    let url = &gateway.url;
    let session = open_session(url, Some(alice)).await;
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;

    let posted = post(url, Some(bob), Some(&session), list).await;
    assert_eq!(posted.status(), 404, "bob's POST on alice's session");
    let http = reqwest::Client::new();
    let got = http
        .get(url)
        .bearer_auth(bob)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 404, "bob's GET on alice's session");
    let deleted = http
        .delete(url)
        .bearer_auth(bob)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 404, "bob's DELETE on alice's session");
    // Exactly what an unknown session gets.
    let unknown = post(url, Some(bob), Some("no-such-session"), list).await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.text().await.unwrap(),
        post(url, Some(bob), Some(&session), list)
            .await
            .text()
            .await
            .unwrap()
    );

    let mine = post(url, Some(alice), Some(&session), list).await;
    assert_eq!(mine.status(), 200);
    assert!(
        mine.text()
            .await
            .unwrap()
            .contains("bitbucket_get_repository")
    );
    let closed = http
        .delete(url)
        .bearer_auth(alice)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert!(closed.status().is_success(), "{}", closed.status());
    let after = post(url, Some(alice), Some(&session), list).await;
    assert_eq!(after.status(), 404, "a closed session is gone");
}

/// Sessions are capped per user (429) and overall (503), both with `Retry-After`; another user still
/// gets in while one is at the cap, and a session that ends (DELETE, or idle past
/// `limits.session_idle_secs`) frees its place.
#[tokio::test(flavor = "multi_thread")]
async fn sessions_are_capped_and_ending_one_frees_its_place() {
    let sim = Sim::start().await.unwrap();
    let (gateway, keys) = keyed_gateway(
        &sim,
        "\n[limits]\nsessions_per_user = 2\nmax_sessions = 3\nsession_idle_secs = 3",
        &["alice", "bob"],
    )
    .await;
    let (alice, bob) = (keys[0].as_str(), keys[1].as_str());
    let url = &gateway.url;
    let first = open_session(url, Some(alice)).await;
    let second = open_session(url, Some(alice)).await;
    let third = post(url, Some(alice), None, INITIALIZE).await;
    assert_eq!(third.status(), 429, "alice is at her cap");
    assert!(third.headers().contains_key("retry-after"));
    assert!(
        third
            .text()
            .await
            .unwrap()
            .contains("limits.sessions_per_user"),
        "says which limit"
    );

    let bobs = open_session(url, Some(bob)).await;
    let full = post(url, Some(bob), None, INITIALIZE).await;
    assert_eq!(full.status(), 503, "the server is at its cap");
    assert!(full.headers().contains_key("retry-after"));
    assert!(full.text().await.unwrap().contains("limits.max_sessions"));

    // DELETE frees a place at once.
    let http = reqwest::Client::new();
    let closed = http
        .delete(url)
        .bearer_auth(alice)
        .header("mcp-session-id", &first)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert!(closed.status().is_success());
    let again = open_session(url, Some(alice)).await;

    // Sessions left idle end after 3 s, and their places come back (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = post(url, Some(bob), None, INITIALIZE).await;
        if attempt.status() == 200 {
            break;
        }
        assert_eq!(attempt.status(), 503);
        assert!(
            Instant::now() < deadline,
            "idle sessions never freed their places"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The session idle longest (alice's second) is the one that ended.
    let gone = post(
        url,
        Some(alice),
        Some(&second),
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
    )
    .await;
    assert_eq!(gone.status(), 404, "an expired session is gone");
    drop((again, bobs));
}

/// An `initialize` counts against the user's call rate.
#[tokio::test(flavor = "multi_thread")]
async fn opening_sessions_counts_against_the_rate_limit() {
    let sim = Sim::start().await.unwrap();
    let (gateway, keys) = keyed_gateway(
        &sim,
        "\n[limits]\ncalls_per_minute = 6\nburst = 2",
        &["alice", "bob"],
    )
    .await;
    let url = &gateway.url;
    open_session(url, Some(&keys[0])).await;
    open_session(url, Some(&keys[0])).await;
    let limited = post(url, Some(&keys[0]), None, INITIALIZE).await;
    assert_eq!(limited.status(), 429);
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&wait), "Retry-After {wait}");
    assert!(limited.text().await.unwrap().contains("Rate limit"));
    open_session(url, Some(&keys[1])).await;
}

// ---------------------------------------------------------------------------------------------------
// Timeouts, the connection cap, TCP_NODELAY
// ---------------------------------------------------------------------------------------------------

/// Reads until the server closes the connection (or resets it); everything read. Fails after `within`.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> String {
    let mut seen = Vec::new();
    let closed = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the server kept the connection open for {within:?}; it sent: {}",
        String::from_utf8_lossy(&seen)
    );
    String::from_utf8_lossy(&seen).into_owned()
}

fn host_port(gateway: &HttpGateway) -> String {
    base(gateway).trim_start_matches("http://").to_string()
}

/// A client that stops halfway through its headers, or through its body, is disconnected soon after
/// the configured timeout, before any authentication.
#[tokio::test(flavor = "multi_thread")]
async fn half_sent_requests_are_cut_off() {
    let sim = Sim::start().await.unwrap();
    let config = config_for(
        &sim,
        "\n[limits]\nheader_timeout_ms = 500\nbody_timeout_ms = 500",
    );
    let gateway = gateway(&config, &[("DEVGATE_HTTP__AUTH", "api_key")], false).await;
    let addr = host_port(&gateway);

    let started = Instant::now();
    let mut headers = TcpStream::connect(&addr).await.unwrap();
    headers
        .write_all(format!("POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: appl").as_bytes())
        .await
        .unwrap();
    read_until_closed(&mut headers, Duration::from_secs(10)).await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(400),
        "closed after {waited:?}"
    );

    // A kept-alive connection that sends nothing more is closed as well.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let answered = read_until_closed(&mut idle, Duration::from_secs(10)).await;
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");

    let mut body = TcpStream::connect(&addr).await.unwrap();
    body.write_all(
        format!(
            "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nAuthorization: Bearer nobody\r\nContent-Length: 1000\r\n\r\n{{\"jsonrpc\""
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let answered = read_until_closed(&mut body, Duration::from_secs(10)).await;
    // Whether authentication looked first (401) or the body ran out of time (408), the connection
    // does not stay open for the rest of the body.
    assert!(
        answered.starts_with("HTTP/1.1 401") || answered.starts_with("HTTP/1.1 408"),
        "{answered}"
    );

    // With a valid caller, the body's deadline answers 408.
    let out = devgate_with(&["keys", "create", "alice"], &config, &token_env());
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let mut slow = TcpStream::connect(&addr).await.unwrap();
    slow.write_all(
        format!(
            "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nAuthorization: Bearer {key}\r\nContent-Length: 1000\r\n\r\n{{\"jsonrpc\""
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let answered = read_until_closed(&mut slow, Duration::from_secs(10)).await;
    assert!(answered.starts_with("HTTP/1.1 408"), "{answered}");
    assert!(
        answered.contains("did not arrive within 500 ms"),
        "{answered}"
    );
}

/// Over `limits.max_connections`, a new connection waits until one closes, then is served.
#[tokio::test(flavor = "multi_thread")]
async fn connections_over_the_cap_wait_for_a_free_place() {
    let sim = Sim::start().await.unwrap();
    let config = config_for(
        &sim,
        "\n[limits]\nmax_connections = 2\nheader_timeout_ms = 60000",
    );
    let gateway = gateway(&config, &[], false).await;
    let addr = host_port(&gateway);
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut held = TcpStream::connect(&addr).await.unwrap();
        // A complete request, so each connection is surely accepted and then kept alive.
        held.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = held.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        holders.push(held);
    }
    let mut waiting = TcpStream::connect(&addr).await.unwrap();
    waiting
        .write_all(
            format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let early = tokio::time::timeout(Duration::from_millis(500), waiting.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "a third connection was served while two were open"
    );
    drop(holders.pop());
    let answered = read_until_closed(&mut waiting, Duration::from_secs(10)).await;
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
}

/// On one kept-alive connection, a tool call's SSE answer is not held back: without `TCP_NODELAY` its
/// last small write waited for the client's delayed ACK, about 40 ms every call (p50 44 ms from Python's
/// `http.client`); with it, a call to the sim on loopback takes a few milliseconds.
#[tokio::test(flavor = "multi_thread")]
async fn kept_alive_calls_are_not_held_back() {
    let sim = Sim::start().await.unwrap();
    let config = config_for(&sim, "\n[limits]\ncalls_per_minute = 0");
    let gateway = gateway(&config, &[], false).await;
    let url = &gateway.url;
    // One client, so one kept-alive connection.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let send = |session: Option<&str>, body: String| {
        let mut request = http
            .post(url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body);
        if let Some(session) = session {
            request = request
                .header("mcp-session-id", session)
                .header("mcp-protocol-version", "2025-11-25");
        }
        request.send()
    };
    let init = send(None, INITIALIZE.to_string()).await.unwrap();
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    init.text().await.unwrap();
    let mut times = Vec::new();
    for i in 0..21 {
        let started = Instant::now();
        let body = json!({"jsonrpc": "2.0", "id": i + 1, "method": "tools/call", "params": {"name": "bitbucket_get_repository", "arguments": {"repo_slug": "api"}}});
        let answer = send(Some(&session), body.to_string())
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        times.push(started.elapsed());
        assert!(answer.contains("\"result\""), "{answer}");
    }
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "kept-alive tools/call: median {median:?}, fastest {:?}",
        times[0]
    );
    assert!(
        median < Duration::from_millis(20),
        "median {median:?} per call"
    );
}

// ---------------------------------------------------------------------------------------------------
// auth = "none" only on loopback
// ---------------------------------------------------------------------------------------------------

/// Runs devgate to its exit (bounded: a devgate that starts serving instead fails the test).
async fn refused(mut cmd: Command) -> String {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().unwrap();
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("devgate refused to start instead of serving")
        .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn http_command(config: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("http")
        .arg("--config")
        .arg(config)
        .arg("--listen")
        .arg("127.0.0.1:0");
    for (k, v) in token_env() {
        cmd.env(k, v);
    }
    cmd
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_none_is_refused_where_others_could_reach_devgate() {
    let sim = Sim::start().await.unwrap();

    let public = config_for(&sim, "");
    let text = std::fs::read_to_string(&public).unwrap();
    std::fs::write(
        &public,
        format!("public_url = \"https://devgate.example.com\"\n{text}"),
    )
    .unwrap();
    let message = refused(http_command(&public)).await;
    assert!(
        message.contains("public_url `https://devgate.example.com`")
            && message.contains("not loopback")
            && message.contains("http.auth = \"api_key\""),
        "{message}"
    );

    let hosts = config_for(&sim, "");
    let text = std::fs::read_to_string(&hosts).unwrap();
    std::fs::write(
        &hosts,
        text.replace(
            "auth = \"none\"",
            "auth = \"none\"\nallowed_hosts = [\"localhost:8080\", \"devgate.internal\"]",
        ),
    )
    .unwrap();
    let message = refused(http_command(&hosts)).await;
    assert!(
        message.contains("http.allowed_hosts has `devgate.internal`")
            && !message.contains("`localhost:8080`"),
        "{message}"
    );

    let mut sandbox = Command::new(BIN);
    sandbox
        .args([
            "sandbox",
            "--listen",
            "0.0.0.0:0",
            "--buddy",
            "127.0.0.1:0",
            "--bitbucket",
            "127.0.0.1:0",
            "--write-config",
        ])
        .arg(temp_path("sandbox").join("devgate.toml"));
    let message = refused(sandbox).await;
    assert!(
        message.contains("refusing --listen 0.0.0.0:0") && message.contains("--listen 127.0.0.1:0"),
        "{message}"
    );

    // Loopback names, with or without ports, still serve.
    let local = config_for(&sim, "");
    let text = std::fs::read_to_string(&local).unwrap();
    std::fs::write(
        &local,
        format!(
            "public_url = \"http://localhost:{}\"\n{}",
            free_port(),
            text.replace(
                "auth = \"none\"",
                "auth = \"none\"\nallowed_hosts = [\"localhost:8080\", \"127.0.0.2\", \"[::1]:9\"]"
            )
        ),
    )
    .unwrap();
    let gateway = gateway(&local, &[], false).await;
    let health = reqwest::get(format!("{}/healthz", base(&gateway)))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}
