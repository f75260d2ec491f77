//! Static credentials: a Bearer token, or Bitbucket's Atlassian email + API token as HTTP Basic. A
//! rejected credential says which setting to fix, and never shows the secret.

mod common;

use common::*;
use devgate::sim::{BITBUCKET_API_TOKEN, BITBUCKET_EMAIL, Sim};
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
