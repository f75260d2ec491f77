//! Buddy's scopes as the real API enforces them, through devgate over HTTP with OAuth against the sim
//! (which refuses a token without the route's scope, like Buddy): the identifier lookup needs
//! `WORKSPACE`, members' e-mails need `MEMBER_EMAIL`, and Buddy's newer scope names (`PIPELINE_READ`,
//! `PIPELINE_RUN`, `VARIABLE_READ`, `INTEGRATION_READ`, `USER_READ`, `USER_PAT_READ`, …) work as well as
//! the classic ones: the config's `scopes` decide which a connect link asks for, and a grant under
//! either name satisfies a tool.

use crate::common::*;
use devgate::sim::{Sim, Which};
use serde_json::json;

/// A user `alice` with an API key, devgate running for `setup`, and an MCP client for her.
async fn gateway_for(setup: &OAuthSetup) -> (HttpGateway, Client) {
    let key = create_api_key(setup, "alice");
    let gateway = oauth_http(setup, &[]).await;
    let client = http_client_with_key(&gateway.url, &key).await;
    (gateway, client)
}

/// Calls `tool` unconnected, walks the connect link as `mike` and returns the `scope` the link asked
/// Buddy for.
async fn connect_through(client: &Client, tool: &str, arguments: serde_json::Value) -> String {
    let first = call(client, tool, arguments).await;
    assert!(is_error(&first), "{tool} asks to connect first");
    let browser = CookieClient::new();
    let mut walk = Walk::default();
    let authorize = start_connect(&browser, &link_in(&text(&first)), &mut walk).await;
    finish_connect(&browser, &authorize, "mike", "allow", &mut walk).await;
    assert!(walk.final_url.contains("/connected"), "{}", walk.final_url);
    url::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "scope")
        .map(|(_, v)| v.into_owned())
        .expect("Buddy's authorize URL names scopes")
}

/// Adds `line` to the `[providers.buddy]` table of a setup's config.
fn buddy_setting(setup: &OAuthSetup, line: &str) {
    let text = std::fs::read_to_string(&setup.config).unwrap();
    let text = text.replacen(
        "[providers.buddy]\n",
        &format!("[providers.buddy]\n{line}\n"),
        1,
    );
    std::fs::write(&setup.config, text).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pipelines_only_gateway_asks_for_workspace_to_look_identifiers_up() {
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "[tools]\ntoolsets = [\"pipelines\"]");
    let (_gateway, client) = gateway_for(&setup).await;
    let pipeline = json!({"project": "web", "pipeline": "build-and-test"});
    let scope = connect_through(&client, "buddy_get_pipeline", pipeline.clone()).await;
    assert!(
        scope.split(' ').any(|s| s == "WORKSPACE"),
        "the identifier lookup needs WORKSPACE: {scope}"
    );
    let got = ok(
        "buddy_get_pipeline",
        &call(&client, "buddy_get_pipeline", pipeline).await,
    );
    assert_eq!(got["id"], 1, "{got}");
    assert!(
        sim.requests().iter().any(|r| r.provider == Which::Buddy
            && r.path == "/workspaces/acme/identifiers"
            && r.account.as_deref() == Some("mike")),
        "the identifier was looked up with the user's token"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn member_emails_are_asked_for_with_the_members_tool_only() {
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    let (gateway, client) = gateway_for(&setup).await;
    let scope = connect_through(&client, "buddy_list_members", json!({})).await;
    assert!(scope.split(' ').any(|s| s == "MEMBER_EMAIL"), "{scope}");
    let members = ok(
        "buddy_list_members",
        &call(&client, "buddy_list_members", json!({})).await,
    );
    let items = members["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(
        items
            .iter()
            .all(|m| m["email"].as_str().is_some_and(|e| e.contains('@'))),
        "{members}"
    );
    drop(client);
    drop(gateway);

    // Without MEMBER_EMAIL in the config, the tool that shows e-mails is not offered and not asked for.
    let setup = oauth_setup(&sim, "");
    buddy_setting(
        &setup,
        r#"scopes = ["WORKSPACE", "USER_INFO", "EXECUTION_INFO", "EXECUTION_RUN", "VARIABLE_INFO", "INTEGRATION_INFO", "TOKEN_INFO"]"#,
    );
    let (_gateway, client) = gateway_for(&setup).await;
    let tools: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(
        tools.iter().any(|t| t == "buddy_list_projects"),
        "{tools:?}"
    );
    assert!(
        !tools.iter().any(|t| t == "buddy_list_members"),
        "{tools:?}"
    );
    let scope = connect_through(&client, "buddy_list_projects", json!({})).await;
    assert!(!scope.contains("MEMBER_EMAIL"), "{scope}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_newer_scope_names_are_asked_for_when_configured_and_either_name_serves() {
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    buddy_setting(
        &setup,
        r#"scopes = ["WORKSPACE", "USER_READ", "PIPELINE_READ", "PIPELINE_RUN", "VARIABLE_READ", "INTEGRATION_READ", "USER_PAT_READ", "MEMBER_EMAIL_READ"]"#,
    );
    let (gateway, client) = gateway_for(&setup).await;
    let scope = connect_through(&client, "buddy_get_user", json!({})).await;
    let asked: Vec<&str> = scope.split(' ').collect();
    for name in [
        "PIPELINE_READ",
        "PIPELINE_RUN",
        "VARIABLE_READ",
        "INTEGRATION_READ",
        "USER_READ",
        "USER_PAT_READ",
        "MEMBER_EMAIL_READ",
        "WORKSPACE",
    ] {
        assert!(asked.contains(&name), "{name} asked for: {scope}");
    }
    for classic in [
        "EXECUTION_INFO",
        "EXECUTION_RUN",
        "VARIABLE_INFO",
        "INTEGRATION_INFO",
        "USER_INFO",
        "TOKEN_INFO",
        "MEMBER_EMAIL",
    ] {
        assert!(
            !asked.contains(&classic),
            "{classic} not asked for: {scope}"
        );
    }
    let read = [
        (
            "buddy_list_executions",
            json!({"project": "web", "pipeline": "build-and-test"}),
        ),
        (
            "buddy_get_execution",
            json!({"project": "web", "pipeline": "1", "execution_id": 5117}),
        ),
        (
            "buddy_get_action_log",
            json!({"project": "web", "pipeline": "1", "execution_id": 5117, "action_id": 103, "tail": 5}),
        ),
        ("buddy_list_variables", json!({})),
        ("buddy_list_integrations", json!({})),
        ("buddy_list_tokens", json!({})),
    ];
    for (tool, arguments) in &read {
        ok(tool, &call(&client, tool, arguments.clone()).await);
    }
    let members = ok(
        "buddy_list_members",
        &call(&client, "buddy_list_members", json!({})).await,
    );
    assert!(
        members["items"][0]["email"].is_string(),
        "MEMBER_EMAIL_READ shows e-mails: {members}"
    );
    drop(client);
    drop(gateway);

    // The same grant, with the config back on the classic names: no reconnect is needed.
    let text = std::fs::read_to_string(&setup.config).unwrap();
    let text = text
        .replace("PIPELINE_READ", "EXECUTION_INFO")
        .replace("PIPELINE_RUN", "EXECUTION_RUN")
        .replace("VARIABLE_READ", "VARIABLE_INFO")
        .replace("INTEGRATION_READ", "INTEGRATION_INFO")
        .replace("USER_PAT_READ", "TOKEN_INFO")
        .replace("USER_READ", "USER_INFO")
        .replace("MEMBER_EMAIL_READ", "MEMBER_EMAIL");
    std::fs::write(&setup.config, text).unwrap();
    let gateway = oauth_http(&setup, &[]).await;
    let key = create_api_key(&setup, "alice");
    let client = http_client_with_key(&gateway.url, &key).await;
    for (tool, arguments) in &read {
        ok(tool, &call(&client, tool, arguments.clone()).await);
    }
}
