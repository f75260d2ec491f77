//! A client we do not control signs in to devgate's authorization server end to end: the official MCP
//! Python SDK's OAuth client provider (`tests/auth_server/sdk_oauth.py`), whose redirect handler walks
//! the pages as a browser would. Once with a Client ID Metadata Document served on loopback over https,
//! once with dynamic registration: it discovers, registers or presents its document, signs in with a
//! Bitbucket account at the sim, consents, calls tools, refreshes, and is refused after the grant is
//! revoked. Also devgate's refusal of a metadata document that is too large.
//!
//! Needs `DEVGATE_PYTHON_SDK` (see tests/clients.rs) and `openssl`.

use crate::common;
use crate::common::auth_server as support;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use devgate::sim::Sim;
use serde_json::Value;
use support::{as_setup, devgate};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

pub(crate) struct Script {
    pub(crate) child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Script {
    pub(crate) fn start(python: &str, args: &[&str]) -> Self {
        let mut child = tokio::process::Command::new(python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/auth_server/sdk_oauth.py"
            ))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("python starts");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Self { child, lines }
    }

    pub(crate) async fn next(&mut self, step: &str) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
            .await
            .expect("the SDK client answers in time")
            .unwrap()
            .unwrap_or_else(|| panic!("the SDK client ended before `{step}`"));
        let value: Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert_eq!(value["step"], step, "{value}");
        value
    }

    pub(crate) async fn go_on(&mut self) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(b"go\n").await.unwrap();
        stdin.flush().await.unwrap();
    }
}

/// One SDK client in `mode` (`cimd` or `dcr`), start to revocation.
async fn sdk_signs_in(python: &str, mode: &str) {
    let sim = Sim::start().await.unwrap();
    let setup = as_setup(&sim, "");
    let gateway = oauth_http(&setup, &[]).await;
    let mut script = Script::start(python, &[&gateway.url, mode, "ann"]);
    let authorize = script.next("authorize").await;
    assert_eq!(authorize["has_resource"], true, "{authorize}");
    let signed_in = script.next("signed-in").await;
    let client_id = signed_in["client_id"].as_str().unwrap();
    if mode == "cimd" {
        assert!(
            client_id.starts_with("https://127.0.0.1:"),
            "the document's URL is the client id: {signed_in}"
        );
    } else {
        assert!(client_id.starts_with("dgcl_"), "{signed_in}");
    }
    assert_eq!(signed_in["scope"], "tools:read tools:write", "{signed_in}");
    assert!(signed_in["tools"].as_u64().unwrap() >= 50, "{signed_in}");
    // login, the provider's page, devgate's consent.
    assert_eq!(signed_in["pages"], 3, "{signed_in}");
    let called = script.next("called").await;
    assert_eq!(called["is_error"], false, "{called}");
    assert_eq!(called["result"]["name"], "Ann Dev", "{called}");
    let refreshed = script.next("refreshed").await;
    assert_eq!(refreshed["is_error"], false, "{refreshed}");
    assert_eq!(
        refreshed["changed"], true,
        "the refresh gave a new access token"
    );
    script.next("waiting").await;

    let clients = devgate(&setup, &["clients", "list"]);
    assert!(clients.contains(client_id), "{clients}");
    let grants = devgate(&setup, &["grants", "list"]);
    let user = grants
        .lines()
        .find(|l| l.contains(client_id))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("{grants}"))
        .to_string();
    assert!(user.starts_with("bitbucket:"), "{user}");
    devgate(&setup, &["grants", "revoke", "--user", &user]);
    script.go_on().await;
    let after = script.next("after-revoke").await;
    assert_eq!(after["mcp"], 401, "{after}");
    assert_eq!(after["refresh"], 400, "{after}");
    assert_eq!(after["error"], "invalid_grant", "{after}");
    assert!(script.child.wait().await.unwrap().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_sdk_signs_in_with_a_client_metadata_document() {
    let Some(python) = python() else { return };
    sdk_signs_in(&python, "cimd").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_sdk_signs_in_with_dynamic_registration() {
    let Some(python) = python() else { return };
    sdk_signs_in(&python, "dcr").await;
}

/// A metadata document over the size cap is refused on a page, and no client is stored.
#[tokio::test(flavor = "multi_thread")]
async fn a_metadata_document_too_large_is_refused() {
    let Some(python) = python() else { return };
    let sim = Sim::start().await.unwrap();
    let setup = as_setup(&sim, "");
    let _gateway = oauth_http(&setup, &[]).await;
    let mut server = Script::start(&python, &["-", "serve-document", "6000"]);
    let serving = server.next("serving").await;
    let url = serving["url"].as_str().unwrap();
    let http = reqwest::Client::new();
    let mut authorize = url::Url::parse(&format!("{}/authorize", setup.public_url())).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("client_id", url)
        .append_pair("redirect_uri", "http://127.0.0.1:9/sdk-callback")
        .append_pair("response_type", "code");
    let response = http.get(authorize.as_str()).send().await.unwrap();
    assert_eq!(response.status(), 400);
    let page = response.text().await.unwrap();
    assert!(page.contains("larger than 5120 bytes"), "{page}");
    assert!(!devgate(&setup, &["clients", "list"]).contains(url));
    server.go_on().await;
}
