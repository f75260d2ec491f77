//! Two stateless instances sharing one PostgreSQL: a connect started on instance A completes through a
//! callback on instance B, and 50 concurrent calls split across both at token expiry make exactly one
//! refresh at the provider.
//!
//! Needs a PostgreSQL server: `DEVGATE_TEST_POSTGRES_URL` (`.ci/run` starts one). Without it the test
//! is counted as skipped in the binary's note at exit, unless `DEVGATE_REQUIRE_POSTGRES=1`, which makes
//! a missing server a failure.

mod common;

use common::*;
use devgate::sim::{Sim, Which};
use futures::future::join_all;
use serde_json::json;

/// A fresh database on the test server, or `None` (skipped) when there is no server.
async fn fresh_database() -> Option<String> {
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

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_share_connections_and_refresh_once() {
    let Some(database) = fresh_database().await else {
        return;
    };
    let sim = Sim::start().await.unwrap();
    let mut setup = oauth_setup(&sim, "");
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

    // Instance B listens on public_url (where providers send the callback); A elsewhere.
    let key = create_api_key(&setup, "alice");
    let b = oauth_http(&setup, &["--stateless"]).await;
    let a_port = free_port();
    let a = oauth_http_on(&setup, a_port, &["--stateless"]).await;
    let on_a = http_client_with_key(&a.url, &key).await;
    let on_b = http_client_with_key(&b.url, &key).await;

    // The connect starts on A (tool call, connect page and its POST), the callback lands on B.
    sim.state.set_token_lifetime(Which::Bitbucket, 30);
    let asked = call(&on_a, "bitbucket_get_current_user", json!({})).await;
    let link =
        link_in(&text(&asked)).replace(&setup.public_url, &format!("http://127.0.0.1:{a_port}"));
    assert!(link.contains(&a_port.to_string()));
    let walk = walk_connect(&link, "ann", "allow").await;
    assert!(
        walk.final_url.starts_with(&setup.public_url) && walk.final_url.contains("/connected"),
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
