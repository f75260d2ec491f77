//! How an agent learns it must connect: a URL-mode elicitation when the client declared it — the
//! 2026-07-28 `input_required` result, or the 2025-11-25 `-32042` error followed by
//! `notifications/elicitation/complete` once the browser flow is done — and otherwise a link in an
//! `isError` text (covered by the other OAuth tests).

mod common;

use std::time::Duration;

use common::*;
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
