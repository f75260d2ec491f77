//! `devgate sandbox --oauth`: the sandbox's MCP endpoint is OAuth-protected, as a remote client expects.
//! The banner says how to add devgate to such a client (its URL, that the client registers itself, the
//! simulated identity provider's users); a client that registers, signs a user in at the simulated
//! provider and consents gets a token that lists and calls tools, and is asked to connect Bitbucket.

use crate::auth_server::register;
use crate::common;
use crate::idp_sign_in::token_for;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test(flavor = "multi_thread")]
async fn the_oauth_sandbox_lets_a_remote_client_register_and_sign_in_at_the_simulated_provider() {
    let state_dir = temp_path("sandbox-oauth");
    let mut child = tokio::process::Command::new(BIN)
        .args(["sandbox", "--oauth", "--listen", "127.0.0.1:0"])
        .args(["--buddy", "127.0.0.1:0", "--bitbucket", "127.0.0.1:0"])
        .arg("--state-dir")
        .arg(&state_dir)
        .env_remove("DEVGATE_CONFIG")
        .env_remove("DEVGATE_SECRET_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = String::new();
    let (mut mcp, mut issuer) = (None, None);
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            banner.push_str(&line);
            banner.push('\n');
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("MCP over HTTP:") {
                mcp = Some(rest.trim().to_string());
            } else if let Some(rest) = line.strip_prefix("Simulated sign-in (OpenID Connect):") {
                issuer = rest.split_whitespace().next().map(str::to_string);
            } else if line.starts_with("3.") {
                break;
            }
        }
    })
    .await
    .expect("the sandbox prints its banner");
    let mcp = mcp.unwrap_or_else(|| panic!("the banner names the MCP URL: {banner}"));
    let issuer = issuer.unwrap_or_else(|| panic!("the banner names the provider: {banner}"));
    for said in [
        "registers itself",
        "ada (groups devs, admins), bob (devs) or cyd (contractors)",
    ] {
        assert!(banner.contains(said), "{said}: {banner}");
    }
    assert!(!banner.contains("connect?ticket") && !banner.contains("/connect/"));

    // Without a token, the endpoint answers with the OAuth challenge.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let refused = crate::auth_server::mcp_status(&http, mcp.trim_end_matches("/mcp"), "").await;
    assert_eq!(refused.status(), 401);
    assert!(
        refused.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("resource_metadata=")
    );

    let base = mcp.trim_end_matches("/mcp").to_string();
    let client = register(&http, &base, "Remote Agent").await;
    let access = token_for(&http, &base, &issuer, &client, "bob").await;
    let session = http_client_with_key(&mcp, &access).await;
    let tools = session.list_all_tools().await.expect("tools/list");
    assert!(tools.len() >= 50, "{}", tools.len());
    let result = call(
        &session,
        "bitbucket_list_pull_requests",
        json!({"repo_slug": "api"}),
    )
    .await;
    assert!(
        text(&result).contains("/connect/bitbucket"),
        "bob is asked to connect Bitbucket: {}",
        text(&result)
    );
    child.start_kill().unwrap();
}
