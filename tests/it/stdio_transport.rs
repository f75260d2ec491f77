//! stdin/stdout as agents wire them: pipes (most clients), socket pairs (Node's child_process), and
//! plain files (a script replaying requests). devgate answers on each.

#[cfg(unix)]
use std::os::fd::OwnedFd;
use std::process::Stdio;

use crate::common::*;
use devgate::sim::Sim;
#[cfg(unix)]
use rmcp::ServiceExt;
use serde_json::{Value, json};
use tokio::process::Command;

fn devgate(config: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("stdio").arg("--config").arg(config);
    for (k, v) in token_env() {
        cmd.env(k, v);
    }
    cmd
}

/// Socket pairs are Unix's; on Windows devgate reads stdio through tokio's blocking stdio.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn socket_pairs_on_stdin_and_stdout() {
    let sim = Sim::start().await.unwrap();
    let config = config_for(&sim, "");
    let (ours_in, theirs_in) = std::os::unix::net::UnixStream::pair().unwrap();
    let (ours_out, theirs_out) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut child = devgate(&config)
        .stdin(Stdio::from(OwnedFd::from(theirs_in)))
        .stdout(Stdio::from(OwnedFd::from(theirs_out)))
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for s in [&ours_in, &ours_out] {
        s.set_nonblocking(true).unwrap();
    }
    let writer = tokio::net::UnixStream::from_std(ours_in).unwrap();
    let reader = tokio::net::UnixStream::from_std(ours_out).unwrap();
    let client = ().serve((reader, writer)).await.expect("handshake over socket pairs");
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.len() >= 49, "{} tools", tools.len());
    let result = call(
        &client,
        "bitbucket_get_repository",
        json!({"repo_slug": "api"}),
    )
    .await;
    assert_eq!(
        ok("bitbucket_get_repository", &result)["full_name"],
        "acme/api"
    );
    client.cancel().await.unwrap();
    let status = child.wait().await.unwrap();
    assert!(
        status.success(),
        "devgate ends cleanly when the client closes: {status}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_from_a_file_answers_to_a_file() {
    let sim = Sim::start().await.unwrap();
    let config = config_for(&sim, "");
    let requests = temp_path("requests.jsonl");
    let answers = temp_path("answers.jsonl");
    let lines = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "script", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "bitbucket_get_repository", "arguments": {"repo_slug": "api"}}}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&requests, text).unwrap();
    let status = devgate(&config)
        .stdin(std::fs::File::open(&requests).unwrap())
        .stdout(std::fs::File::create(&answers).unwrap())
        .stderr(Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(status.success(), "{status}");
    let out = std::fs::read_to_string(&answers).unwrap();
    let replies: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON-RPC"))
        .collect();
    let call = replies
        .iter()
        .find(|r| r["id"] == 2)
        .unwrap_or_else(|| panic!("no answer to the call in {out}"));
    assert_eq!(
        call["result"]["structuredContent"]["full_name"], "acme/api",
        "{call}"
    );
}
