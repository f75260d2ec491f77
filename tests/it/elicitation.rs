//! How an agent learns it must connect: a URL-mode elicitation when the client declared it — the
//! 2026-07-28 `input_required` result, or the 2025-11-25 `-32042` error followed by
//! `notifications/elicitation/complete` once the browser flow is done — and otherwise a link in an
//! `isError` text (covered by the other OAuth tests).

use std::time::Duration;

use crate::common::*;
use devgate::sim::Sim;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientCapabilities, ClientConfig, CustomNotification,
    ElicitRequestParams, ElicitationCapability, Implementation, InputRequest, ProtocolVersion,
    UrlElicitationCapability,
};
use rmcp::service::{NotificationContext, ServiceError};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::json;
use tokio::sync::mpsc;

fn url_capable(version: ProtocolVersion) -> ClientConfig {
    let mut capabilities = ClientCapabilities::default();
    capabilities.elicitation =
        Some(ElicitationCapability::new().with_url(UrlElicitationCapability::default()));
    ClientConfig::new(capabilities, Implementation::new("elicitation-test", "1"))
        .with_protocol_version(version)
}

/// A client that reports `notifications/elicitation/complete` ids on a channel.
struct Listener {
    info: ClientConfig,
    completed: mpsc::UnboundedSender<String>,
}

impl ClientHandler for Listener {
    fn get_info(&self) -> ClientConfig {
        self.info.clone()
    }

    async fn on_custom_notification(
        &self,
        notification: CustomNotification,
        _context: NotificationContext<RoleClient>,
    ) {
        if notification.method == "notifications/elicitation/complete"
            && let Some(id) = notification
                .params
                .as_ref()
                .and_then(|p| p["elicitationId"].as_str())
        {
            let _ = self.completed.send(id.to_string());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_2026_client_gets_an_input_required_url_elicitation() {
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    let key = create_api_key(&setup, "alice");
    let gateway = oauth_http(&setup, &[]).await;
    let config =
        rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
            gateway.url.clone(),
        )
        .auth_header(key);
    // A modern client: `server/discover` and self-contained per-request metadata, no `initialize`.
    let client = rmcp::service::serve_client_with_lifecycle(
        url_capable(ProtocolVersion::V_2026_07_28),
        rmcp::transport::StreamableHttpClientTransport::from_config(config),
        rmcp::service::ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        },
    )
    .await
    .unwrap();
    let request =
        CallToolRequestParams::new("bitbucket_get_current_user").with_arguments(args(json!({})));
    let response = client.call_tool_once(request.clone()).await.unwrap();
    let CallToolResponse::InputRequired(required) = response else {
        panic!("expected input_required, got {response:?}");
    };
    let requests = required.input_requests.expect("input requests");
    let InputRequest::Elicitation(elicit) = requests
        .get("connect_bitbucket")
        .expect("a connect request")
    else {
        panic!("expected an elicitation");
    };
    let ElicitRequestParams::UrlElicitationParams { url, message, .. } = &elicit.params else {
        panic!("expected URL mode");
    };
    assert!(
        url.contains("/connect/bitbucket?ticket=") && message.contains("Bitbucket"),
        "{url} {message}"
    );

    // The user connects; the retried call goes through.
    walk_connect(url, "ann", "allow").await;
    let retried = client.call_tool_once(request).await.unwrap();
    let CallToolResponse::Complete(result) = retried else {
        panic!("expected a result after connecting, got {retried:?}");
    };
    assert!(!is_error(&result), "{}", text(&result));
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_2025_client_gets_32042_and_then_the_completion_notification() {
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    setup.reserve_public_url();
    // stdio: the gateway process also serves the connect pages on public_url.
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(["stdio", "--user", "alice", "--config"])
        .arg(&setup.config);
    for (k, v) in oauth_env() {
        cmd.env(k, v);
    }
    let (tx, mut completed) = mpsc::unbounded_channel();
    let listener = Listener {
        info: url_capable(ProtocolVersion::V_2025_11_25),
        completed: tx,
    };
    let client = listener
        .serve(rmcp::transport::TokioChildProcess::new(cmd).unwrap())
        .await
        .unwrap();
    let err = client
        .call_tool(CallToolRequestParams::new("buddy_get_user").with_arguments(args(json!({}))))
        .await
        .expect_err("-32042 until connected");
    let ServiceError::McpError(error) = err else {
        panic!("expected a JSON-RPC error, got {err:?}");
    };
    assert_eq!(error.code.0, -32042);
    let elicitation = &error.data.expect("data")["elicitations"][0];
    assert_eq!(elicitation["mode"], "url");
    let id = elicitation["elicitationId"].as_str().unwrap().to_string();
    let url = elicitation["url"].as_str().unwrap().to_string();

    let walk = walk_connect(&url, "nina", "allow").await;
    assert!(walk.final_url.contains("/connected"), "{}", walk.final_url);
    let notified = tokio::time::timeout(Duration::from_secs(10), completed.recv())
        .await
        .expect("notified in time");
    assert_eq!(notified.as_deref(), Some(id.as_str()));
    let result = client
        .call_tool(CallToolRequestParams::new("buddy_get_user").with_arguments(args(json!({}))))
        .await
        .unwrap();
    let user = ok("buddy_get_user", &result);
    assert!(user["name"].as_str().unwrap().contains("Nina"), "{user}");
    client.cancel().await.unwrap();
}

/// A modern MCP client over HTTP with an API key, declaring URL elicitation.
async fn modern_client(
    url: &str,
    key: &str,
) -> rmcp::service::RunningService<RoleClient, ClientConfig> {
    let config =
        rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
            url.to_string(),
        )
        .auth_header(key.to_string());
    rmcp::service::serve_client_with_lifecycle(
        url_capable(ProtocolVersion::V_2026_07_28),
        rmcp::transport::StreamableHttpClientTransport::from_config(config),
        rmcp::service::ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        },
    )
    .await
    .unwrap()
}

/// The URL of the connect elicitation in an `input_required` answer.
fn elicited_url(response: CallToolResponse) -> String {
    let CallToolResponse::InputRequired(required) = response else {
        panic!("expected input_required, got {response:?}");
    };
    let requests = required.input_requests.expect("input requests");
    let Some(InputRequest::Elicitation(elicit)) = requests.values().next() else {
        panic!("expected an elicitation");
    };
    let ElicitRequestParams::UrlElicitationParams { url, .. } = &elicit.params else {
        panic!("expected URL mode");
    };
    url.clone()
}

/// The retried call with the client's answer to the connect question.
fn answered(tool: &str, provider: &str, action: &str) -> CallToolRequestParams {
    let mut responses = rmcp::model::InputResponses::new();
    responses.insert(format!("connect_{provider}"), json!({ "action": action }));
    CallToolRequestParams::new(tool.to_string())
        .with_arguments(args(json!({})))
        .with_input_responses(responses)
}

/// Points `setup` at a fresh database on the PostgreSQL test server, when one is configured
/// (`DEVGATE_TEST_POSTGRES_URL`); otherwise its instances share the SQLite file.
async fn on_postgres_if_available(setup: &mut OAuthSetup) {
    let Ok(server) = std::env::var("DEVGATE_TEST_POSTGRES_URL") else {
        eprintln!("no DEVGATE_TEST_POSTGRES_URL: the instances share SQLite");
        return;
    };
    let name = format!("devgate_el_{}", rand::random::<u32>());
    let pool = sqlx::PgPool::connect(&server).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let mut url = url::Url::parse(&server).unwrap();
    url.set_path(&format!("/{name}"));
    let text = std::fs::read_to_string(&setup.config).unwrap().replace(
        &format!(
            "url = \"sqlite://{}\"",
            setup.dir.join("devgate.db").display()
        ),
        &format!("url = \"{url}\""),
    );
    assert!(text.contains("postgres"));
    setup.config = setup.dir.join("postgres.toml");
    std::fs::write(&setup.config, text).unwrap();
}

/// A client that answered `accept` waits on its retried call while the user connects, even when the
/// callback lands on another instance sharing the store (seen by polling it); it gets the result, and
/// no new ticket was minted. A `decline` is answered at once with the link, not with another question.
#[tokio::test(flavor = "multi_thread")]
async fn an_accepted_connect_waits_for_the_callback_on_another_instance() {
    let sim = Sim::start().await.unwrap();
    let mut setup = oauth_setup(&sim, "[oauth]\nconnect_wait_secs = 25");
    on_postgres_if_available(&mut setup).await;
    let key = create_api_key(&setup, "hana");
    let other = create_api_key(&setup, "ivan");
    // B serves public_url (pages, callback); the agent talks to A, another process on the same store.
    let b = oauth_http(&setup, &[]).await;
    let a = oauth_http_elsewhere(&setup, &[]).await;
    let client = modern_client(&a.url, &key).await;
    let tool = "bitbucket_get_current_user";
    let first = client
        .call_tool_once(CallToolRequestParams::new(tool).with_arguments(args(json!({}))))
        .await
        .unwrap();
    let url = elicited_url(first);
    assert!(url.starts_with(setup.public_url()), "{url}");

    let retried = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .call_tool_once(answered(tool, "bitbucket", "accept"))
                .await
        })
    };
    a.stderr
        .wait_for("waiting for the user to finish connecting")
        .await;
    let walk = walk_connect(&url, "ben", "allow").await;
    assert!(walk.final_url.contains("/connected"), "{}", walk.final_url);
    let response = tokio::time::timeout(Duration::from_secs(20), retried)
        .await
        .expect("the waiting call ends once connected")
        .unwrap()
        .unwrap();
    let CallToolResponse::Complete(result) = response else {
        panic!("expected the result, got {response:?}");
    };
    assert_eq!(ok(tool, &result)["name"], "Ben Ortiz");
    let callback_done = "oauth::connect::flow: connected";
    assert!(
        b.stderr.text().contains(callback_done) && !a.stderr.text().contains(callback_done),
        "the callback was B's, and A saw the connection in the store"
    );

    // Declining ends the call with the link (the same one, reused), at once.
    let declining = modern_client(&a.url, &other).await;
    let url = elicited_url(
        declining
            .call_tool_once(CallToolRequestParams::new(tool).with_arguments(args(json!({}))))
            .await
            .unwrap(),
    );
    let started = std::time::Instant::now();
    let response = declining
        .call_tool_once(answered(tool, "bitbucket", "decline"))
        .await
        .unwrap();
    let CallToolResponse::Complete(result) = response else {
        panic!("a declined connect is not asked again: {response:?}");
    };
    assert!(
        is_error(&result) && text(&result).contains(&url),
        "{}",
        text(&result)
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no wait after a decline"
    );
    client.cancel().await.unwrap();
    declining.cancel().await.unwrap();
}

/// The 2025-11-25 `-32042` error names the link in its message too, and no log line carries a ticket
/// — rmcp logs that error (WARN) and every result (DEBUG) — at the default level nor at debug.
#[tokio::test(flavor = "multi_thread")]
async fn the_32042_message_has_the_link_and_no_log_line_has_a_ticket() {
    for level in [None, Some("debug")] {
        let sim = Sim::start().await.unwrap();
        let setup = oauth_setup(&sim, "");
        let key = create_api_key(&setup, "jo");
        let gateway = oauth_http_logging(&setup, level, &[]).await;
        let config =
            rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
                gateway.url.clone(),
            )
            .auth_header(key.clone());
        let (tx, _completed) = mpsc::unbounded_channel();
        let legacy = Listener {
            info: url_capable(ProtocolVersion::V_2025_11_25),
            completed: tx,
        }
        .serve(rmcp::transport::StreamableHttpClientTransport::from_config(
            config,
        ))
        .await
        .unwrap();
        let err = legacy
            .call_tool(CallToolRequestParams::new("buddy_get_user").with_arguments(args(json!({}))))
            .await
            .expect_err("-32042 until connected");
        let ServiceError::McpError(error) = err else {
            panic!("expected a JSON-RPC error, got {err:?}");
        };
        assert_eq!(error.code.0, -32042);
        let url = error.data.as_ref().unwrap()["elicitations"][0]["url"]
            .as_str()
            .unwrap()
            .to_string();
        // The other ways a link goes out: an `input_required` result, an `isError` text, the
        // connections tool; and the connect page is opened with it.
        let modern = modern_client(&gateway.url, &key).await;
        let mut tickets = vec![url.clone()];
        tickets.push(elicited_url(
            modern
                .call_tool_once(
                    CallToolRequestParams::new("bitbucket_get_current_user")
                        .with_arguments(args(json!({}))),
                )
                .await
                .unwrap(),
        ));
        let plain = http_client_with_key(&gateway.url, &key).await;
        tickets.push(link_in(&text(
            &call(&plain, "bitbucket_list_workspaces", json!({})).await,
        )));
        let listed = call(&plain, "devgate_connections", json!({})).await;
        let page = reqwest::get(&url).await.unwrap();
        assert_eq!(page.status(), 200);
        // A line logged after all of the above: once it is in, so are theirs.
        let _ = plain
            .call_tool(CallToolRequestParams::new("no_such_tool"))
            .await;
        gateway.stderr.wait_for("unknown_tool").await;
        let logs = gateway.stderr.text();
        assert!(
            logs.contains("response error"),
            "rmcp logged the -32042 answer ({level:?}): {logs}"
        );
        for link in tickets.iter().map(String::as_str).chain(
            listed.structured_content.as_ref().unwrap()["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|i| i["connect_url"].as_str()),
        ) {
            let ticket = link.split("ticket=").nth(1).expect("a ticket");
            assert!(
                !logs.contains(ticket),
                "a ticket reached the log at {level:?}:\n{logs}"
            );
        }
        assert!(
            error.message.contains(&url),
            "the message carries the link: {}",
            error.message
        );
        legacy.cancel().await.unwrap();
        modern.cancel().await.unwrap();
        plain.cancel().await.unwrap();
    }
}
