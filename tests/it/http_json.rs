//! Stateful streamable HTTP answers a call that sends nothing before its result as one
//! `application/json` body, and still streams SSE when the call sends progress first, as an SDK client
//! on kept-alive connections sees it (plain HTTP requests, no MCP client library in between).

use crate::common::*;
use devgate::sim::Sim;
use serde_json::{Value, json};

/// An answer: its content type, session id header and body.
struct Answer {
    content_type: String,
    session: Option<String>,
    body: String,
}

/// POSTs one JSON-RPC message, in the session when one is named.
async fn post(http: &reqwest::Client, url: &str, session: Option<&str>, message: Value) -> Answer {
    let mut request = http
        .post(url)
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2025-11-25")
        .json(&message);
    if let Some(id) = session {
        request = request.header("Mcp-Session-Id", id);
    }
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "HTTP {}", response.status());
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header("content-type").unwrap_or_default();
    let session = header("mcp-session-id");
    Answer {
        content_type,
        session,
        body: response.text().await.unwrap(),
    }
}

/// An initialized session on `url`: its id.
async fn session(http: &reqwest::Client, url: &str) -> String {
    let answer = post(
        http,
        url,
        None,
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "http-json-test", "version": "1"}}}),
    )
    .await;
    assert!(answer.body.contains("\"result\""), "{}", answer.body);
    let id = answer.session.expect("a stateful server names the session");
    post(
        http,
        url,
        Some(&id),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    id
}

/// A stateful devgate with one initialized session, talked to with plain HTTP requests.
struct Open {
    http: reqwest::Client,
    gateway: HttpGateway,
    id: String,
}

impl Open {
    async fn new(sim: &Sim, extra: &str) -> Self {
        let gateway = http(&config_for(sim, extra), false).await;
        let http = reqwest::Client::new();
        let id = session(&http, &gateway.url).await;
        Self { http, gateway, id }
    }

    async fn send(&self, message: Value) -> Answer {
        post(&self.http, &self.gateway.url, Some(&self.id), message).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_call_is_answered_as_one_json_body() {
    let sim = Sim::start().await.unwrap();
    let open = Open::new(&sim, "").await;

    let answer = open
        .send(json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
            "name": "bitbucket_list_pull_requests", "arguments": {"repo_slug": "api", "limit": 3}}}))
        .await;
    let body = &answer.body;
    assert_eq!(answer.content_type, "application/json", "{body}");
    let message: Value = serde_json::from_str(body).expect("the body is the JSON-RPC response");
    assert_eq!(message["id"], 7);
    assert_ne!(message["result"]["isError"], true, "{body}");
    assert!(
        message["result"]["structuredContent"]["items"]
            .as_array()
            .is_some_and(|i| i.len() == 3),
        "{body}"
    );

    // A protocol error is one JSON body too.
    let answer = open
        .send(
            json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {
            "name": "no_such_tool", "arguments": {}}}),
        )
        .await;
    let body = &answer.body;
    assert_eq!(answer.content_type, "application/json", "{body}");
    let message: Value = serde_json::from_str(body).unwrap();
    assert_eq!(message["id"], 8);
    assert_eq!(message["error"]["code"], -32602, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_that_reports_progress_still_streams_events() {
    let sim = Sim::start().await.unwrap();
    sim.state.set_run_step_ms(60);
    let open = Open::new(&sim, "\n[tools]\nwait_poll_ms = 15").await;

    let answer = open
        .send(
            json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {
            "name": "buddy_run_pipeline",
            "arguments": {"project": "web", "pipeline": "build-and-test", "wait": 60},
            "_meta": {"progressToken": "run-1"}}}),
        )
        .await;
    let body = &answer.body;
    assert!(
        answer.content_type.starts_with("text/event-stream"),
        "{body}"
    );
    let messages: Vec<Value> = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let progress = messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .count();
    assert!(progress >= 2, "progress streamed before the result: {body}");
    let last = messages.last().unwrap();
    assert_eq!(last["id"], 9);
    assert_eq!(
        last["result"]["structuredContent"]["status"], "SUCCESSFUL",
        "{body}"
    );
}
