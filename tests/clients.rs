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
