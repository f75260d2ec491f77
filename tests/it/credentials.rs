//! Static credentials: a Bearer token, or Bitbucket's Atlassian email + API token as HTTP Basic. A
//! rejected credential says which setting to fix, and never shows the secret. Users' own OAuth tokens
//! are scrubbed the same way from what providers say: an error body that echoes the access token, or a
//! token endpoint that echoes the refresh token, never reaches the agent, the logs or the audit.

use crate::common::*;
use devgate::sim::{Account, BITBUCKET_API_TOKEN, BITBUCKET_EMAIL, Fault, Sim, Which};
use serde_json::json;

fn basic_config(sim: &Sim, api_token_env: &str) -> std::path::PathBuf {
    let text = format!(
        r#"
[providers.bitbucket]
api_base = "{bitbucket}"
email = "{BITBUCKET_EMAIL}"
api_token = "${{{api_token_env}}}"
workspace = "acme"
"#,
        bitbucket = sim.bitbucket_url
    );
    let path = temp_path("basic.toml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn stdio_with(config: &std::path::Path, env: (&str, &str)) -> Client {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.arg("stdio")
        .arg("--config")
        .arg(config)
        .env(env.0, env.1);
    let transport = rmcp::transport::TokioChildProcess::new(cmd).unwrap();
    rmcp::ServiceExt::serve((), transport).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn atlassian_api_tokens_go_as_basic_auth() {
    let sim = Sim::start().await.unwrap();
    let client = stdio_with(
        &basic_config(&sim, "TEST_ATLASSIAN_TOKEN"),
        ("TEST_ATLASSIAN_TOKEN", BITBUCKET_API_TOKEN),
    )
    .await;
    let user = ok(
        "bitbucket_get_current_user",
        &call(&client, "bitbucket_get_current_user", json!({})).await,
    );
    assert!(user.get("uuid").is_some());
    assert!(
        sim.requests().iter().all(|r| r.auth == "Basic"),
        "{:?}",
        sim.requests()
    );
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_credential_names_its_setting_and_hides_it() {
    let sim = Sim::start().await.unwrap();
    let wrong = "wrong-atlassian-token-1234";
    let client = stdio_with(
        &basic_config(&sim, "TEST_ATLASSIAN_TOKEN"),
        ("TEST_ATLASSIAN_TOKEN", wrong),
    )
    .await;
    let result = call(&client, "bitbucket_list_repositories", json!({})).await;
    assert!(is_error(&result));
    let message = text(&result);
    assert!(
        message.contains("answered 401")
            && message.contains("providers.bitbucket.email and api_token"),
        "{message}"
    );
    assert!(!message.contains(wrong));
    client.cancel().await.unwrap();
}

fn audit_json(setup: &OAuthSetup, user: &str) -> String {
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["audit", "--user", user, "--format", "json", "--config"])
        .arg(&setup.config);
    for (k, v) in oauth_env() {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Waits (bounded) until the audit log holds `n` records of `user`: they are written off the call's path.
async fn audit_with(setup: &OAuthSetup, user: &str, n: usize) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let out = audit_json(setup, user);
        let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        if rows.len() >= n || std::time::Instant::now() > deadline {
            assert!(rows.len() >= n, "{out}");
            return out;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_body_echoing_a_users_access_token_is_scrubbed() {
    let sim = Sim::start().await.unwrap();
    let c = connected_users(&sim, &[("alice", "ann", "mike")], "").await;
    let alice = &c.clients[0];
    let mut texts = String::new();
    for (which, path, tool) in [
        (Which::Bitbucket, "/user", "bitbucket_get_current_user"),
        (Which::Buddy, "/user", "buddy_get_user"),
    ] {
        sim.state.add_fault(Fault {
            echo_credential: true,
            ..Fault::status(which, path, 400, 1)
        });
        let result = call(alice, tool, json!({})).await;
        assert!(is_error(&result));
        let message = text(&result);
        // The provider's message is there, with the token taken out of it.
        assert!(
            message.contains("Simulated fault for the request authorized with [redacted]"),
            "{message}"
        );
        texts.push_str(&message);
    }
    // 2 connect answers per provider while connecting, then the two failed calls.
    let audit = audit_with(&c.setup, "alice", 4).await;
    assert_no_secrets(
        &sim,
        &c.keys,
        &[
            ("a tool's error text", &texts),
            ("the logs", &c.gateway.stderr.text()),
            ("the audit log", &audit),
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_echoing_a_users_refresh_token_is_scrubbed() {
    let sim = Sim::start().await.unwrap();
    let c = connected_users(&sim, &[("alice", "ann", "mike")], "").await;
    let alice = &c.clients[0];
    // The grant is revoked at the provider: the next call's 401 leads to a refresh the provider refuses,
    // with a description that repeats the refresh token.
    sim.state.set_echo_secrets(Which::Bitbucket, true);
    sim.state.revoke_grants(Account::Ann);
    let result = call(alice, "bitbucket_get_current_user", json!({})).await;
    assert!(is_error(&result));
    let message = text(&result);
    assert!(
        message.contains("/connect/bitbucket") && message.contains("(presented: [redacted])"),
        "{message}"
    );
    let connections = call(alice, "devgate_connections", json!({})).await;
    let listed = ok("devgate_connections", &connections).to_string();
    assert!(listed.contains("[redacted]"), "{listed}");
    let mut status = std::process::Command::new(BIN);
    status
        .args(["status", "--user", "alice", "--config"])
        .arg(&c.setup.config);
    for (k, v) in oauth_env() {
        status.env(k, v);
    }
    let status = String::from_utf8(status.output().unwrap().stdout).unwrap();
    let audit = audit_with(&c.setup, "alice", 3).await;
    assert_no_secrets(
        &sim,
        &c.keys,
        &[
            ("a tool's error text", &message),
            ("devgate_connections", &listed),
            ("devgate status", &status),
            ("the logs", &c.gateway.stderr.text()),
            ("the audit log", &audit),
        ],
    );
}
