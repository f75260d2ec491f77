//! Two stateless instances sharing one PostgreSQL: a connect started on instance A completes through a
//! callback on instance B, and 50 concurrent calls split across both at token expiry make exactly one
//! refresh at the provider.
//!
//! Needs a PostgreSQL server: `DEVGATE_TEST_POSTGRES_URL` (`.ci/run` starts one). Without it the test
//! is counted as skipped in the binary's note at exit, unless `DEVGATE_REQUIRE_POSTGRES=1`, which makes
//! a missing server a failure.

use crate::common::*;
use devgate::sim::{Sim, Which};
use futures::future::join_all;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientCapabilities, ClientConfig,
    ElicitationCapability, FormElicitationCapability, Implementation, ProtocolVersion,
};
use serde_json::json;

/// A fresh database on the test server, or `None` (skipped) when there is no server.
pub(crate) async fn fresh_database() -> Option<String> {
    let Ok(server) = std::env::var("DEVGATE_TEST_POSTGRES_URL") else {
        skip::skip(
            skip::POSTGRES,
            "DEVGATE_TEST_POSTGRES_URL is not set (eval \"$(.ci/postgres.sh start)\" runs a server)",
        );
        return None;
    };
    let name = format!("devgate_it_{}", rand::random::<u32>());
    let pool = sqlx::PgPool::connect(&server)
        .await
        .expect("the test PostgreSQL answers");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let mut url = url::Url::parse(&server).unwrap();
    url.set_path(&format!("/{name}"));
    Some(url.to_string())
}

/// [`oauth_setup`] with the store in a fresh PostgreSQL database, or `None` (skipped) without a server.
async fn postgres_setup(sim: &Sim) -> Option<OAuthSetup> {
    let database = fresh_database().await?;
    let mut setup = oauth_setup(sim, "");
    let original = std::fs::read_to_string(&setup.config).unwrap();
    let config_text = original.replace(
        &format!(
            "url = \"sqlite://{}\"",
            setup.dir.join("devgate.db").display()
        ),
        &format!("url = \"{database}\""),
    );
    assert!(
        config_text.contains("postgres"),
        "the config points at PostgreSQL"
    );
    setup.config = setup.dir.join("postgres.toml");
    std::fs::write(&setup.config, config_text).unwrap();
    Some(setup)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_share_connections_and_refresh_once() {
    let sim = Sim::start().await.unwrap();
    let Some(setup) = postgres_setup(&sim).await else {
        return;
    };

    // Instance B listens on public_url (where providers send the callback); A elsewhere.
    let key = create_api_key(&setup, "alice");
    let b = oauth_http(&setup, &["--stateless"]).await;
    let a = oauth_http_elsewhere(&setup, &["--stateless"]).await;
    let a_base = a.url.trim_end_matches("/mcp").to_string();
    let on_a = http_client_with_key(&a.url, &key).await;
    let on_b = http_client_with_key(&b.url, &key).await;

    // The connect starts on A (tool call, connect page and its POST), the callback lands on B.
    sim.state.set_token_lifetime(Which::Bitbucket, 30);
    let asked = call(&on_a, "bitbucket_get_current_user", json!({})).await;
    let link = link_in(&text(&asked)).replace(setup.public_url(), &a_base);
    assert!(link.starts_with(&a_base), "{link}");
    let walk = walk_connect(&link, "ann", "allow").await;
    assert!(
        walk.final_url.starts_with(setup.public_url()) && walk.final_url.contains("/connected"),
        "{}",
        walk.final_url
    );
    sim.state.set_token_lifetime(Which::Bitbucket, 7200);

    // Both instances serve alice with the connection; 50 concurrent calls at expiry, one refresh.
    let before = sim.state.token_requests(Which::Bitbucket, "refresh_token");
    let calls = (0..50).map(|i| {
        let client = if i % 2 == 0 { &on_a } else { &on_b };
        async move {
            ok(
                "bitbucket_get_current_user",
                &call(client, "bitbucket_get_current_user", json!({})).await,
            )
        }
    });
    let answers = join_all(calls).await;
    assert!(answers.iter().all(|u| u["name"] == "Ann Dev"));
    assert_eq!(
        sim.state.token_requests(Which::Bitbucket, "refresh_token") - before,
        1,
        "one refresh across both instances"
    );
    assert_eq!(sim.state.dead_refresh_token_uses(Which::Bitbucket), 0);
    assert_no_secrets(
        &sim,
        &[key],
        &[
            ("A's logs", &a.stderr.text()),
            ("B's logs", &b.stderr.text()),
        ],
    );
    on_a.cancel().await.unwrap();
    on_b.cancel().await.unwrap();
}

/// A confirmation asked on one instance is answered on the other: the confirm page served by B
/// approves the retry that lands on A, once; a `requestState` A issued counts on B (the MAC key comes
/// from the shared sealing key), and its replay on A is asked again (the used nonce is in the store).
#[tokio::test(flavor = "multi_thread")]
async fn two_instances_share_confirmations() {
    let sim = Sim::start().await.unwrap();
    let Some(setup) = postgres_setup(&sim).await else {
        return;
    };
    let key = create_api_key(&setup, "alice");
    let b = oauth_http(&setup, &["--stateless"]).await;
    let a = oauth_http_elsewhere(&setup, &["--stateless"]).await;
    let on_a = http_client_with_key(&a.url, &key).await;
    let on_b = http_client_with_key(&b.url, &key).await;
    let asked = call(&on_a, "bitbucket_get_current_user", json!({})).await;
    walk_connect(&link_in(&text(&asked)), "ann", "allow").await;
    // A change that could run again (a PR's title set to what it is): so a used approval, not the
    // target's state, is what stops a second run.
    let updates = |id: u64| {
        sim.requests()
            .iter()
            .filter(|r| r.method == "PUT" && r.path.ends_with(&format!("/pullrequests/{id}")))
            .count()
    };
    let same_title = |id: u64| {
        let on_a = &on_a;
        async move {
            let pr = call(
                on_a,
                "bitbucket_get_pull_request",
                json!({"repo_slug": "api", "pull_request_id": id}),
            )
            .await;
            let title = ok("get", &pr)["title"].clone();
            json!({"repo_slug": "api", "pull_request_id": id, "title": title})
        }
    };

    // No elicitation: the link A gives points at public_url, which B serves.
    let update = same_title(21).await;
    let refused = call(&on_a, "bitbucket_update_pull_request", update.clone()).await;
    let link = link_in(&text(&refused));
    assert!(
        link.starts_with(&format!("{}/confirm?ticket=", setup.public_url())),
        "{link}"
    );
    let http = reqwest::Client::new();
    let page = http.get(&link).send().await.unwrap();
    let cookie = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = page.text().await.unwrap();
    let approved = http
        .post(form_action(&html, &link))
        .header("cookie", cookie)
        .form(&hidden_fields(&html))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);
    let updated = call(&on_a, "bitbucket_update_pull_request", update.clone()).await;
    assert_eq!(ok("update", &updated)["title"], update["title"]);
    let again = call(&on_b, "bitbucket_update_pull_request", update).await;
    assert!(
        text(&again).contains("/confirm?ticket="),
        "{}",
        text(&again)
    );
    assert_eq!(
        updates(21),
        1,
        "the approval ran one call across both instances"
    );

    // 2026-07-28: asked on A, answered on B, replayed on A.
    let modern = |url: &str| {
        let config =
            rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
                url.to_string(),
            )
            .auth_header(key.clone());
        let mut capabilities = ClientCapabilities::default();
        capabilities.elicitation =
            Some(ElicitationCapability::new().with_form(FormElicitationCapability::new()));
        rmcp::service::serve_client_with_lifecycle(
            ClientConfig::new(capabilities, Implementation::new("instances-test", "1"))
                .with_protocol_version(ProtocolVersion::V_2026_07_28),
            rmcp::transport::StreamableHttpClientTransport::from_config(config),
            rmcp::service::ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
    };
    let modern_a = modern(&a.url).await.unwrap();
    let modern_b = modern(&b.url).await.unwrap();
    let update_20 = CallToolRequestParams::new("bitbucket_update_pull_request")
        .with_arguments(args(same_title(20).await));
    let CallToolResponse::InputRequired(question) =
        modern_a.call_tool_once(update_20.clone()).await.unwrap()
    else {
        panic!("A asks first");
    };
    let mut answered = update_20;
    answered.input_responses = Some([("confirm".to_string(), json!({"action": "accept"}))].into());
    answered.request_state = question.request_state;
    let CallToolResponse::Complete(updated_20) =
        modern_b.call_tool_once(answered.clone()).await.unwrap()
    else {
        panic!("B accepts A's question");
    };
    assert!(ok("update", &updated_20)["title"].is_string());
    let replay = modern_a.call_tool_once(answered).await.unwrap();
    assert!(
        matches!(replay, CallToolResponse::InputRequired(_)),
        "a used answer is asked again: {replay:?}"
    );
    assert_eq!(updates(20), 1);
    for client in [modern_a, modern_b] {
        client.cancel().await.unwrap();
    }
    on_a.cancel().await.unwrap();
    on_b.cancel().await.unwrap();
}
