//! The vault through the real path: the database file holds no token in the clear, a sealed row copied
//! to another user does not open (that user is asked to reconnect), and a wrong sealing key is reported.

use crate::common::*;
use devgate::sim::Sim;
use serde_json::json;

fn raw_store_bytes(setup: &OAuthSetup) -> Vec<u8> {
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(b) = std::fs::read(setup.dir.join(format!("devgate.db{suffix}"))) {
            bytes.extend(b);
        }
    }
    bytes
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_sealed_and_bound_to_their_user() {
    let sim = Sim::start().await.unwrap();
    let c = connected_users(
        &sim,
        &[("alice", "ann", "mike"), ("bob", "ben", "nina")],
        "",
    )
    .await;

    let raw = raw_store_bytes(&c.setup);
    assert!(raw.len() > 4096, "the store was read");
    let tokens = sim.state.issued_secrets();
    assert!(!tokens.is_empty());
    for token in &tokens {
        assert!(
            !raw.windows(token.len()).any(|w| w == token.as_bytes()),
            "a token is in the store in the clear"
        );
    }

    // Give bob a copy of alice's sealed Bitbucket tokens.
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        c.setup.dir.join("devgate.db").display()
    ))
    .await
    .unwrap();
    sqlx::query(
        "UPDATE connections SET access_token = (SELECT access_token FROM connections WHERE user_id = 'alice' AND provider = 'bitbucket'), \
         refresh_token = (SELECT refresh_token FROM connections WHERE user_id = 'alice' AND provider = 'bitbucket') \
         WHERE user_id = 'bob' AND provider = 'bitbucket'",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let bob = call(&c.clients[1], "bitbucket_get_current_user", json!({})).await;
    assert!(is_error(&bob), "bob cannot use alice's tokens");
    assert!(
        text(&bob).contains("cannot be opened")
            && text(&bob).contains("/connect/bitbucket?ticket="),
        "{}",
        text(&bob)
    );
    let alice = ok(
        "bitbucket_get_current_user",
        &call(&c.clients[0], "bitbucket_get_current_user", json!({})).await,
    );
    assert_eq!(alice["name"], "Ann Dev", "alice is unaffected");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_reports_a_wrong_sealing_key() {
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    setup.reserve_public_url();
    let run = |key: &str| {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(["check", "--config"]).arg(&setup.config);
        for (k, v) in oauth_env() {
            cmd.env(k, v);
        }
        cmd.env("DEVGATE_SECRET_KEY", key);
        cmd.output().unwrap()
    };
    let first = run(TEST_SECRET_KEY);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let other_key = "b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXktMzI=";
    let wrong = run(other_key);
    assert_eq!(wrong.status.code(), Some(1));
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        err.contains("sealing key") && err.contains("DEVGATE_SECRET_KEY"),
        "{err}"
    );
    assert!(!err.contains(other_key) && !err.contains(TEST_SECRET_KEY));
    let malformed = run("not base64!");
    assert_eq!(malformed.status.code(), Some(1));
    let err = String::from_utf8_lossy(&malformed.stderr);
    assert!(
        err.contains("DEVGATE_SECRET_KEY") && !err.contains("not base64!"),
        "{err}"
    );
}
