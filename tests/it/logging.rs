//! MCP logging through the real binary: a client that set a level gets `notifications/message` for an
//! upstream retry (with its wait), a rate-limit wait, a token refresh (and a refused one), a text cut at
//! the cap and a wait for the user to connect (while the call waits), nothing below its level and
//! nothing before it set one; on 2026-07-28 only a request whose `_meta` asks gets
//! messages; on a stateful HTTP session they arrive on the call's own response stream, ahead of the
//! result; stateless HTTP serves only the request's `_meta`. No message carries a secret. The official
//! Python SDK receives them with its `logging_callback` in both protocol eras.

#![allow(deprecated)] // rmcp marks MCP logging deprecated (SEP-2577); devgate still serves it

use std::sync::{Arc, Mutex};

use crate::common::*;
use devgate::sim::{Account, BITBUCKET_TOKEN, Fault, Sim, Which};
use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation, LoggingLevel,
    LoggingMessageNotificationParam, ProtocolVersion, RequestMetaObject, SetLevelRequestParams,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

/// An MCP client that keeps every log message it is sent (and, for 2026-07-28, says so in its info).
#[derive(Clone, Default)]
struct Logs {
    got: Arc<Mutex<Vec<LoggingMessageNotificationParam>>>,
    info: Option<ClientConfig>,
}

impl Logs {
    fn all(&self) -> Vec<LoggingMessageNotificationParam> {
        self.got.lock().unwrap().clone()
    }

    /// Everything received, as text, for secret checks.
    fn text(&self) -> String {
        self.all()
            .iter()
            .map(|m| serde_json::to_string(m).unwrap())
            .collect()
    }

    /// Waits (bounded) until `n` messages have arrived and returns them.
    async fn wait_for(&self, n: usize) -> Vec<LoggingMessageNotificationParam> {
        eventually(&format!("{n} log message(s)"), || self.all().len() >= n).await;
        self.all()
    }
}

impl rmcp::ClientHandler for Logs {
    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.got.lock().unwrap().push(params);
    }

    fn get_info(&self) -> ClientConfig {
        self.info.clone().unwrap_or_default()
    }
}

type LogClient = RunningService<RoleClient, Logs>;

/// devgate over stdio, spoken to by a [`Logs`] client.
async fn stdio_logs(sim: &Sim) -> (LogClient, Logs) {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.arg("stdio").arg("--config").arg(config_for(sim, ""));
    for (k, v) in token_env() {
        cmd.env(k, v);
    }
    let logs = Logs::default();
    let (transport, _) = rmcp::transport::TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("devgate starts");
    let client = logs.clone().serve(transport).await.expect("MCP over stdio");
    (client, logs)
}

/// A 2025 client over streamable HTTP, with an API key when given.
async fn http_logs(url: &str, key: Option<&str>, logs: Logs) -> LogClient {
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_string());
    if let Some(key) = key {
        config = config.auth_header(key.to_string());
    }
    logs.serve(rmcp::transport::StreamableHttpClientTransport::from_config(
        config,
    ))
    .await
    .expect("MCP over HTTP")
}

async fn set_level(client: &LogClient, level: LoggingLevel) {
    client
        .set_level(SetLevelRequestParams::new(level))
        .await
        .expect("logging/setLevel");
}

/// The next read of `acme/api` fails once with `status` (its error repeating the credential it got).
fn fail_once(sim: &Sim, status: u16, retry_after: Option<u64>) {
    let mut fault = Fault::on(Which::Bitbucket, "/repositories/acme/api", 1);
    fault.method = Some("GET".into());
    fault.status = Some(status);
    fault.retry_after = retry_after;
    fault.echo_credential = true;
    sim.state.add_fault(fault);
}

async fn read_repository<H: rmcp::ClientHandler>(client: &RunningService<RoleClient, H>) {
    ok(
        "bitbucket_get_repository",
        &call(
            client,
            "bitbucket_get_repository",
            json!({"repo_slug": "api"}),
        )
        .await,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_that_set_a_level_hears_of_retries_and_waits_and_nothing_below_it() {
    let sim = Sim::start().await.unwrap();
    let (client, logs) = stdio_logs(&sim).await;
    let declared = client
        .peer_info()
        .and_then(|i| i.capabilities.logging.clone());
    assert!(declared.is_some(), "devgate declares logging");

    // No level set yet: the retry happens, silently.
    fail_once(&sim, 503, None);
    read_repository(&client).await;
    // Only errors and worse: a retry (a warning) is not sent.
    set_level(&client, LoggingLevel::Error).await;
    fail_once(&sim, 503, None);
    read_repository(&client).await;
    // Warnings: this retry is.
    set_level(&client, LoggingLevel::Warning).await;
    fail_once(&sim, 503, None);
    read_repository(&client).await;
    let got = logs.wait_for(1).await;
    assert_eq!(
        got.len(),
        1,
        "one message: none before setLevel, none below it: {got:?}"
    );
    let retry = &got[0];
    assert_eq!(retry.level, LoggingLevel::Warning);
    assert_eq!(retry.logger.as_deref(), Some("devgate.upstream"));
    assert_eq!(retry.data["tool"], "bitbucket_get_repository");
    assert_eq!(retry.data["event"], "retry");
    assert!(retry.data["wait_ms"].as_u64().is_some(), "{retry:?}");
    let said = retry.data["message"].as_str().unwrap();
    assert!(
        said.contains("503") && said.contains("retry 1 of 2"),
        "{said}"
    );
    assert!(retry.data["next"].as_str().is_some_and(|n| !n.is_empty()));

    // A 429 with Retry-After: the wait is the provider's.
    fail_once(&sim, 429, Some(1));
    read_repository(&client).await;
    let got = logs.wait_for(2).await;
    assert_eq!(got[1].data["event"], "rate_limited", "{:?}", got[1]);
    assert_eq!(got[1].data["wait_ms"], 1000);

    // Notices: a text cut at the cap says where to read on, as the result does.
    set_level(&client, LoggingLevel::Notice).await;
    let file = ok(
        "bitbucket_get_file",
        &call(
            &client,
            "bitbucket_get_file",
            json!({"repo_slug": "api", "ref": "main", "path": "CHANGELOG.md"}),
        )
        .await,
    );
    let got = logs.wait_for(3).await;
    let cut = &got[2];
    assert_eq!(
        (cut.level, cut.logger.as_deref(), &cut.data["event"]),
        (
            LoggingLevel::Notice,
            Some("devgate.result"),
            &json!("text_cut")
        )
    );
    assert_eq!(cut.data["next_offset"], file["next_offset"], "{cut:?}");
    assert!(
        cut.data["next"]
            .as_str()
            .unwrap()
            .contains(&format!("offset={}", file["next_offset"])),
        "{cut:?}"
    );

    // The provider echoed the credential in its error: no message repeats it.
    assert!(
        !logs.text().contains(BITBUCKET_TOKEN),
        "the token reached a log message"
    );
    client.cancel().await.unwrap();
}

/// A stateful HTTP session that set a level hears of the refresh a call needed, and of one the provider
/// refused; nothing that was issued or used as a secret appears in any message.
#[tokio::test(flavor = "multi_thread")]
async fn an_http_session_hears_of_a_token_refresh_and_never_a_token() {
    let sim = Sim::start().await.unwrap();
    let c = connected_users(&sim, &[("alice", "ann", "mike")], "").await;
    let logs = Logs::default();
    let client = http_logs(&c.gateway.url, Some(&c.keys[0]), logs.clone()).await;
    set_level(&client, LoggingLevel::Info).await;
    // devgate thinks the token is good for an hour; Buddy has already expired it.
    sim.state.expire_access_tokens(Account::Mike);
    ok(
        "buddy_get_user",
        &call(&client, "buddy_get_user", json!({})).await,
    );
    let got = logs.wait_for(1).await;
    let refresh = got
        .iter()
        .find(|m| m.data["event"] == "token_refreshed")
        .unwrap_or_else(|| panic!("a refresh message: {got:?}"));
    assert_eq!(refresh.level, LoggingLevel::Info);
    assert_eq!(refresh.logger.as_deref(), Some("devgate.oauth"));
    assert_eq!(
        (&refresh.data["tool"], &refresh.data["provider"]),
        (&json!("buddy_get_user"), &json!("buddy"))
    );

    // The user removed the app at Buddy, whose token endpoint repeats the refresh token it was sent:
    // the refused refresh is an error message, which names the reconnect and repeats no token.
    sim.state.set_echo_secrets(Which::Buddy, true);
    sim.state.revoke_grants(Account::Mike);
    let result = call(&client, "buddy_get_user", json!({})).await;
    assert!(is_error(&result), "a reconnect link");
    let got = logs.wait_for(2).await;
    let refused = got
        .iter()
        .find(|m| m.data["event"] == "token_refresh_refused")
        .unwrap_or_else(|| panic!("a refused refresh: {got:?}"));
    assert_eq!(refused.level, LoggingLevel::Error);
    assert!(
        refused.data["next"]
            .as_str()
            .unwrap()
            .contains("connects again"),
        "{refused:?}"
    );
    assert_no_secrets(&sim, &c.keys, &[("a log message", &logs.text())]);
    client.cancel().await.unwrap();
}

/// A 2026-07-28 client over streamable HTTP.
async fn modern_logs(url: &str) -> (LogClient, Logs) {
    let info = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("logging-test", "1"),
    )
    .with_protocol_version(ProtocolVersion::V_2026_07_28);
    let logs = Logs {
        info: Some(info),
        ..Logs::default()
    };
    let client = rmcp::service::serve_client_with_lifecycle(
        logs.clone(),
        rmcp::transport::StreamableHttpClientTransport::from_uri(url.to_string()),
        rmcp::service::ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        },
    )
    .await
    .expect("a 2026-07-28 client");
    (client, logs)
}

#[tokio::test(flavor = "multi_thread")]
async fn on_2026_07_28_only_a_request_that_asks_in_its_meta_gets_messages() {
    let sim = Sim::start().await.unwrap();
    let gateway = http(&config_for(&sim, ""), false).await;
    let (client, logs) = modern_logs(&gateway.url).await;

    fail_once(&sim, 503, None);
    read_repository(&client).await;
    fail_once(&sim, 503, None);
    let mut meta = RequestMetaObject::new();
    meta.set_log_level(LoggingLevel::Debug);
    let mut request = CallToolRequestParams::new("bitbucket_get_repository")
        .with_arguments(args(json!({"repo_slug": "api"})));
    request.meta = Some(meta);
    let result = client.call_tool(request).await.expect("tools/call");
    ok("bitbucket_get_repository", &result);
    let got = logs.wait_for(1).await;
    assert_eq!(got.len(), 1, "only the request that asked: {got:?}");
    assert_eq!(got[0].data["event"], "retry");
    assert_eq!(got[0].data["tool"], "bitbucket_get_repository");
    client.cancel().await.unwrap();
}

/// One JSON-RPC POST to `/mcp`, returning the status, the session header and the whole body.
async fn post(
    url: &str,
    session: Option<&str>,
    body: Value,
) -> (reqwest::StatusCode, Option<String>, String) {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .json(&body);
    if let Some(session) = session {
        request = request
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", "2025-11-25");
    }
    let response = request.send().await.expect("POST /mcp");
    let status = response.status();
    let id = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, id, response.text().await.unwrap())
}

fn read_call(meta: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "bitbucket_get_repository", "arguments": {"repo_slug": "api"}, "_meta": meta}})
}

/// On a stateful session the message rides the call's own POST response, before its result (not the
/// session's standalone stream, which this client never opens), whether the call's `_meta` or the
/// session's `logging/setLevel` asked for it.
#[tokio::test(flavor = "multi_thread")]
async fn on_a_session_messages_ride_the_calls_own_stream_ahead_of_its_result() {
    let sim = Sim::start().await.unwrap();
    let gateway = http(&config_for(&sim, ""), false).await;
    let url = &gateway.url;
    let (_, session, _) = post(url, None, json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}))
    .await;
    let session = session.expect("a session id");
    let s = Some(session.as_str());
    post(
        url,
        s,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    // Before any setLevel, a call whose own `_meta` names a level.
    fail_once(&sim, 503, None);
    let (_, _, asked) = post(
        url,
        s,
        read_call(json!({"io.modelcontextprotocol/logLevel": "warning"})),
    )
    .await;
    assert!(asked.contains("notifications/message"), "{asked}");
    let (status, _, _) = post(url, s, json!({"jsonrpc": "2.0", "id": 2, "method": "logging/setLevel", "params": {"level": "warning"}})).await;
    assert!(status.is_success(), "setLevel: {status}");
    fail_once(&sim, 503, None);
    let (_, _, body) = post(url, s, read_call(json!({}))).await;
    let message = body
        .find("notifications/message")
        .unwrap_or_else(|| panic!("the message is on the call's stream: {body}"));
    let result = body.find("\"result\"").expect("the result");
    assert!(message < result, "the message comes first: {body}");
    assert!(!body.contains(BITBUCKET_TOKEN));
}

/// Stateless HTTP: the request's `_meta` level is served on its own response; `logging/setLevel` says
/// why it cannot last and what to send instead.
#[tokio::test(flavor = "multi_thread")]
async fn stateless_http_serves_only_the_requests_own_level() {
    let sim = Sim::start().await.unwrap();
    let gateway = http(&config_for(&sim, ""), true).await;
    let url = &gateway.url;
    let (_, _, refused) = post(url, None, json!({"jsonrpc": "2.0", "id": 1, "method": "logging/setLevel", "params": {"level": "debug"}})).await;
    assert!(
        refused.contains("\"error\"") && refused.contains("io.modelcontextprotocol/logLevel"),
        "{refused}"
    );
    fail_once(&sim, 503, None);
    let (_, _, silent) = post(url, None, read_call(json!({}))).await;
    assert!(silent.contains("\"result\""), "{silent}");
    assert!(!silent.contains("notifications/message"), "{silent}");
    fail_once(&sim, 503, None);
    let (_, _, told) = post(
        url,
        None,
        read_call(json!({"io.modelcontextprotocol/logLevel": "info"})),
    )
    .await;
    let message = told
        .find("notifications/message")
        .unwrap_or_else(|| panic!("a message for the request that asked: {told}"));
    assert!(message < told.find("\"result\"").expect("the result"));
}

/// The official Python SDK with its defaults (and `log_level`, its 2026 opt-in) and with the legacy
/// handshake (and `set_logging_level`): its `logging_callback` gets the retry message both ways.
#[tokio::test(flavor = "multi_thread")]
async fn the_python_sdk_receives_messages_through_its_logging_callback() {
    let Some(python) = python() else {
        return;
    };
    let sim = Sim::start().await.unwrap();
    let gateway = http(&config_for(&sim, ""), false).await;
    for mode in ["default", "legacy"] {
        fail_once(&sim, 503, None);
        let out = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            tokio::process::Command::new(&python)
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/clients/sdk_logging.py"
                ))
                .arg(&gateway.url)
                .arg(mode)
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("the SDK client ends in time")
        .expect("python runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{mode}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let said: Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|_| panic!("{mode}: not JSON: {stdout}"));
        assert_eq!(said["is_error"], false, "{mode}: {said}");
        let expected = if mode == "legacy" {
            "2025-11-25"
        } else {
            "2026-07-28"
        };
        assert_eq!(said["protocol"], expected, "{mode}: {said}");
        let messages = said["messages"].as_array().expect("messages");
        assert!(
            messages.iter().any(|m| m["level"] == "warning"
                && m["logger"] == "devgate.upstream"
                && m["data"]["event"] == "retry"
                && m["data"]["tool"] == "bitbucket_get_repository"),
            "{mode}: {said}"
        );
        assert!(!stdout.contains(BITBUCKET_TOKEN));
    }
}

/// A 2026-07-28 client that accepted the connect question and asked for messages hears, while its
/// retried call still waits, that devgate waits for the user; the call then ends with the result, and
/// the message carries no ticket.
#[tokio::test(flavor = "multi_thread")]
async fn a_call_waiting_for_the_user_to_connect_says_so_while_it_waits() {
    use rmcp::model::{
        CallToolResponse, ElicitRequestParams, ElicitationCapability, InputRequest,
        UrlElicitationCapability,
    };
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "[oauth]\nconnect_wait_secs = 25");
    let key = create_api_key(&setup, "hana");
    let gateway = oauth_http(&setup, &[]).await;
    let mut capabilities = ClientCapabilities::default();
    capabilities.elicitation =
        Some(ElicitationCapability::new().with_url(UrlElicitationCapability::default()));
    let logs = Logs {
        info: Some(
            ClientConfig::new(capabilities, Implementation::new("logging-test", "1"))
                .with_protocol_version(ProtocolVersion::V_2026_07_28),
        ),
        ..Logs::default()
    };
    let transport = rmcp::transport::StreamableHttpClientTransport::from_config(
        rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
            gateway.url.clone(),
        )
        .auth_header(key),
    );
    let client = rmcp::service::serve_client_with_lifecycle(
        logs.clone(),
        transport,
        rmcp::service::ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        },
    )
    .await
    .expect("a 2026-07-28 client");
    let tool = "bitbucket_get_current_user";
    let asked = client
        .call_tool_once(CallToolRequestParams::new(tool).with_arguments(args(json!({}))))
        .await
        .unwrap();
    let CallToolResponse::InputRequired(required) = asked else {
        panic!("expected input_required, got {asked:?}");
    };
    let Some(InputRequest::Elicitation(elicit)) = required
        .input_requests
        .as_ref()
        .and_then(|r| r.get("connect_bitbucket"))
    else {
        panic!("a connect question: {required:?}");
    };
    let ElicitRequestParams::UrlElicitationParams { url, .. } = &elicit.params else {
        panic!("URL mode");
    };
    let url = url.clone();

    // The agent answers `accept` (the link is open) and asks for messages from `info`.
    let mut responses = rmcp::model::InputResponses::new();
    responses.insert("connect_bitbucket".into(), json!({"action": "accept"}));
    let mut retry = CallToolRequestParams::new(tool)
        .with_arguments(args(json!({})))
        .with_input_responses(responses);
    let mut meta = RequestMetaObject::new();
    meta.set_log_level(LoggingLevel::Info);
    retry.meta = Some(meta);
    let waiting = {
        let client = client.clone();
        tokio::spawn(async move { client.call_tool_once(retry).await })
    };
    let got = logs.wait_for(1).await;
    assert!(
        !waiting.is_finished(),
        "the message came while the call waits"
    );
    assert_eq!(got[0].data["event"], "waiting_for_connect", "{got:?}");
    assert_eq!(got[0].data["wait_s"], 25);
    assert_eq!(got[0].logger.as_deref(), Some("devgate.connect"));

    walk_connect(&url, "ben", "allow").await;
    let done = tokio::time::timeout(std::time::Duration::from_secs(20), waiting)
        .await
        .expect("the call ends once connected")
        .unwrap()
        .unwrap();
    let CallToolResponse::Complete(result) = done else {
        panic!("the result: {done:?}");
    };
    ok(tool, &result);
    assert!(!logs.text().contains("ticket="), "{}", logs.text());
    client.cancel().await.unwrap();
}
