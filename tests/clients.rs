//! Real MCP clients we do not control, against the real binary. The official Python SDK (`mcp` from
//! PyPI) connects over streamable HTTP with an API key, lists tools, is told to connect Bitbucket, the
//! user follows the link, and the retried call succeeds.
//!
//! Needs a Python with the SDK: `DEVGATE_PYTHON_SDK` names that interpreter (`.ci/run` makes a
//! virtualenv). Without it the test says so and stops, unless `DEVGATE_REQUIRE_CLIENTS=1`.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use devgate::sim::Sim;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn python() -> Option<String> {
    match std::env::var("DEVGATE_PYTHON_SDK") {
        Ok(p) => Some(p),
        Err(_) if std::env::var_os("DEVGATE_REQUIRE_CLIENTS").is_some() => {
            panic!("DEVGATE_REQUIRE_CLIENTS is set but DEVGATE_PYTHON_SDK is not")
        }
        Err(_) => {
            eprintln!(
                "SKIPPED: set DEVGATE_PYTHON_SDK to a Python with the `mcp` package (.ci/run makes one)"
            );
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_sdk_lists_calls_and_follows_the_connect_link() {
    let Some(python) = python() else {
        return;
    };
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    let key = create_api_key(&setup, "alice");
    let gateway = oauth_http(&setup, &[]).await;
    let mut agent = tokio::process::Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/sdk_client.py"
        ))
        .arg(&gateway.url)
        .arg(&key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("python starts");
    let mut lines = BufReader::new(agent.stdout.take().unwrap()).lines();
    let mut next = async || -> Value {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the SDK client answers in time")
            .unwrap()
            .expect("the SDK client printed a line");
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"))
    };
    let first = next().await;
    assert_eq!(first["step"], "connect", "{first}");
    assert_eq!(first["protocol"], "2025-11-25", "{first}");
    assert!(first["tools"].as_u64().unwrap() > 50, "{first}");
    assert_eq!(first["is_error"], true, "{first}");
    let link = first["link"].as_str().expect("a connect link in the error");
    walk_connect(link, "ann", "allow").await;
    agent
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"connected\n")
        .await
        .unwrap();
    let done = next().await;
    assert_eq!(done["is_error"], false, "{done}");
    assert!(done["result"]["name"].is_string(), "{done}");
    assert!(agent.wait().await.unwrap().success());
}

/// The MCP Inspector's CLI (`DEVGATE_INSPECTOR`, run with the Node in `DEVGATE_NODE_BIN`).
fn inspector() -> Option<(String, String)> {
    match (
        std::env::var("DEVGATE_INSPECTOR"),
        std::env::var("DEVGATE_NODE_BIN"),
    ) {
        (Ok(i), Ok(n)) => Some((i, n)),
        _ if std::env::var_os("DEVGATE_REQUIRE_CLIENTS").is_some() => {
            panic!(
                "DEVGATE_REQUIRE_CLIENTS is set but DEVGATE_INSPECTOR or DEVGATE_NODE_BIN is not"
            )
        }
        _ => {
            eprintln!("SKIPPED: set DEVGATE_INSPECTOR and DEVGATE_NODE_BIN (.ci/node-tools.sh)");
            None
        }
    }
}

async fn inspect(inspector: &(String, String), target: &[String], method: &[&str]) -> Value {
    let path = format!(
        "{}:{}",
        inspector.1,
        std::env::var("PATH").unwrap_or_default()
    );
    let out = tokio::process::Command::new(&inspector.0)
        .arg("--cli")
        .args(target)
        .args(method)
        .env("PATH", path)
        .env("MCP_CATALOG_PATH", temp_path("inspector-catalog.json"))
        .output()
        .await
        .expect("the Inspector runs");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_inspector_cli_lists_and_calls_over_stdio_and_http() {
    let Some(inspector) = inspector() else {
        return;
    };
    let sim = Sim::start().await.unwrap();
    let config = config_for(&sim, "");
    // stdio: the Inspector starts devgate with the environment it is given.
    let mut stdio = vec![BIN.to_string(), "stdio".into()];
    stdio.push("-e".into());
    stdio.push(format!("DEVGATE_CONFIG={}", config.display()));
    for (k, v) in token_env() {
        stdio.push("-e".into());
        stdio.push(format!("{k}={v}"));
    }
    // HTTP: devgate already running.
    let gateway = http(&config, false).await;
    for target in [stdio, vec![gateway.url.clone()]] {
        let listed = inspect(&inspector, &target, &["--method", "tools/list"]).await;
        let names: Vec<&str> = listed["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert!(
            names.contains(&"bitbucket_list_pull_requests"),
            "{target:?}: {names:?}"
        );
        let called = inspect(
            &inspector,
            &target,
            &[
                "--method",
                "tools/call",
                "--tool-name",
                "bitbucket_get_repository",
                "--tool-arg",
                "repo_slug=api",
            ],
        )
        .await;
        assert_eq!(
            called["structuredContent"]["full_name"], "acme/api",
            "{target:?}: {called}"
        );
    }
}
