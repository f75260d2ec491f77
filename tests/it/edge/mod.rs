//! The HTTP edge against the real binary: names a caller makes up stay out of metrics, the audit, the
//! logs and memory; sessions belong to the user who opened them and are capped; slow or half-sent
//! requests are cut off and connections capped; `auth = "none"` is refused wherever others could reach
//! devgate.

mod auth_none;
mod connections;
mod made_up_names;
mod sessions;

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
