//! `mcp.json` works as pasted: its stdio entry starts devgate and lists tools; its HTTP entry, with the
//! API key its header names, reaches a running `devgate http`.

use crate::common::*;
use devgate::sim::Sim;
use rmcp::ServiceExt;
use rmcp::transport::TokioChildProcess;
use serde_json::Value;

fn entries() -> Value {
    serde_json::from_str(include_str!("../../mcp.json")).expect("mcp.json is JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stdio_entry_starts_devgate_and_lists_tools() {
    let sim = Sim::start().await.unwrap();
    let entry = &entries()["mcpServers"]["devgate"];
    assert_eq!(entry["command"], "devgate", "the installed binary's name");
    // As a client would run it: the entry's args and env, with this build and a test config.
    let mut cmd = tokio::process::Command::new(BIN);
    for arg in entry["args"].as_array().unwrap() {
        cmd.arg(arg.as_str().unwrap());
    }
    for (key, _) in entry["env"].as_object().unwrap() {
        assert_eq!(key, "DEVGATE_CONFIG");
        cmd.env(key, config_for(&sim, ""));
    }
    for (k, v) in token_env() {
        cmd.env(k, v);
    }
    let client = ().serve(TokioChildProcess::new(cmd).unwrap()).await.unwrap();
    let tools = client.list_all_tools().await.unwrap();
    assert!(
        tools
            .iter()
            .any(|t| t.name == "bitbucket_list_pull_requests")
    );
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_http_entry_authenticates_with_its_header() {
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    let key = create_api_key(&setup, "alice");
    let gateway = oauth_http(&setup, &[]).await;
    let entry = &entries()["mcpServers"]["devgate-http"];
    assert_eq!(entry["type"], "http");
    let url = entry["url"]
        .as_str()
        .unwrap()
        .replace("http://127.0.0.1:8080/mcp", &gateway.url);
    let header = entry["headers"]["Authorization"]
        .as_str()
        .unwrap()
        .replace("${DEVGATE_API_KEY}", &key);
    let token = header.strip_prefix("Bearer ").expect("a bearer header");
    let config =
        rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(url)
            .auth_header(token.to_string());
    let client = ()
        .serve(rmcp::transport::StreamableHttpClientTransport::from_config(
            config,
        ))
        .await
        .expect("the key in the entry's header is accepted");
    assert!(!client.list_all_tools().await.unwrap().is_empty());
    client.cancel().await.unwrap();
}

/// Pasted before its placeholder is edited, or started where there is no config at all, the stdio
/// entry says what is wrong and what to do, once, and exits (a client shows this stderr to its user).
#[test]
fn the_stdio_entry_unedited_says_what_to_fix() {
    let entry = &entries()["mcpServers"]["devgate"];
    let placeholder = entry["env"]["DEVGATE_CONFIG"].as_str().unwrap();
    let empty = temp_path("no-config");
    std::fs::create_dir_all(&empty).unwrap();
    let run = |config: Option<&str>| {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(["stdio"])
            .current_dir(&empty)
            .env_remove("DEVGATE_CONFIG")
            .stdin(std::process::Stdio::null());
        if let Some(c) = config {
            cmd.env("DEVGATE_CONFIG", c);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        assert!(out.stdout.is_empty(), "stdout is for MCP only");
        String::from_utf8(out.stderr).unwrap()
    };
    let unedited = run(Some(placeholder));
    assert!(
        unedited.contains(&format!("cannot read {placeholder}")),
        "{unedited}"
    );
    assert_eq!(
        unedited.matches("No such file").count(),
        1,
        "the cause once: {unedited}"
    );
    let none = run(None);
    assert!(none.contains("DEVGATE_CONFIG"), "{none}");
    assert!(none.contains("devgate sandbox"), "{none}");
    assert!(!none.contains("defaults"), "{none}");
}
