//! Behaviour tests every [`Store`] must pass, run against SQLite and (when a server is configured)
//! PostgreSQL. A Postgres run needs `DEVGATE_TEST_POSTGRES_URL`; without it the Postgres half says so and
//! stops, unless `DEVGATE_REQUIRE_POSTGRES=1`, which makes a missing server a failure.

use std::sync::Arc;

use super::*;

fn connection(user: &str, provider: &str, token: &str) -> ConnectionRow {
    ConnectionRow {
        user: user.into(),
        provider: provider.into(),
        access_token: format!("sealed-{token}"),
        refresh_token: Some(format!("sealed-refresh-{token}")),
        expires_at: Some(now() + 3600),
        scopes: "account repository".into(),
        account: "Ann".into(),
        account_id: "{a}".into(),
        status: ConnectionStatus::Active,
        status_detail: None,
        version: 0,
        updated_at: now(),
    }
}

/// An SQLite store in a fresh file.
async fn sqlite() -> Arc<dyn Store> {
    let dir = std::env::temp_dir().join(format!("devgate-store-{}", rand::random::<u64>()));
    let store = open_store(&format!("sqlite://{}", dir.join("devgate.db").display()))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store
}

/// A PostgreSQL store in a fresh database, or `None` when no server is configured.
async fn postgres() -> Option<Arc<dyn Store>> {
    let Ok(server) = std::env::var("DEVGATE_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("DEVGATE_REQUIRE_POSTGRES").is_none(),
            "DEVGATE_REQUIRE_POSTGRES is set but DEVGATE_TEST_POSTGRES_URL is not (.ci/postgres.sh start)"
        );
        eprintln!("SKIPPED the PostgreSQL half: set DEVGATE_TEST_POSTGRES_URL");
        return None;
    };
    let name = format!("devgate_store_{}", rand::random::<u32>());
    let admin = sqlx::PgPool::connect(&server)
        .await
        .expect("the test PostgreSQL answers");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let mut url = url::Url::parse(&server).unwrap();
    url.set_path(&format!("/{name}"));
    let store = open_store(url.as_str()).await.unwrap();
    store.migrate().await.unwrap();
    Some(store)
}

/// Runs a behaviour on both backends.
macro_rules! on_both {
    ($name:ident, $body:ident) => {
        #[tokio::test(flavor = "multi_thread")]
        async fn $name() {
            $body(sqlite().await).await;
            if let Some(pg) = postgres().await {
                $body(pg).await;
            }
        }
    };
}

async fn connections_round_trip(store: Arc<dyn Store>) {
    store
        .save_connection(&connection("alice", "bitbucket", "a1"))
        .await
        .unwrap();
    let got = store
        .connection("alice", "bitbucket")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.access_token, "sealed-a1");
    assert_eq!(got.version, 1);
    store
        .save_connection(&connection("alice", "bitbucket", "a2"))
        .await
        .unwrap();
    assert_eq!(
        store
            .connection("alice", "bitbucket")
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
    assert_eq!(store.connections("alice").await.unwrap().len(), 1);
    // Compare-and-swap.
    let mut row = connection("alice", "bitbucket", "a3");
    assert!(
        !store.swap_tokens(&row, 1).await.unwrap(),
        "a stale version does not swap"
    );
    row.expires_at = None;
    assert!(store.swap_tokens(&row, 2).await.unwrap());
    let got = store
        .connection("alice", "bitbucket")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.access_token.as_str(), got.version, got.expires_at),
        ("sealed-a3", 3, None)
    );
    assert!(
        !store
            .mark_broken("alice", "bitbucket", "x", 2)
            .await
            .unwrap()
    );
    assert!(
        store
            .mark_broken("alice", "bitbucket", "invalid_grant", 3)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .connection("alice", "bitbucket")
            .await
            .unwrap()
            .unwrap()
            .status,
        ConnectionStatus::Broken
    );
    assert!(store.delete_connection("alice", "bitbucket").await.unwrap());
    assert!(
        store
            .connection("alice", "bitbucket")
            .await
            .unwrap()
            .is_none()
    );
    // Key check: first value wins.
    store.set_key_check("one").await.unwrap();
    store.set_key_check("two").await.unwrap();
    assert_eq!(store.key_check().await.unwrap().as_deref(), Some("one"));
    store.ping().await.unwrap();
}
on_both!(connections_round_trip_on_both, connections_round_trip);

async fn states_and_tickets_work_once(store: Arc<dyn Store>) {
    let t = now();
    store
        .put_state(&StateRow {
            state_hash: digest("s"),
            user: "alice".into(),
            provider: "buddy".into(),
            pkce_verifier: "sealed".into(),
            scopes: "A B".into(),
            elicitation_id: Some("e".into()),
            expires_at: t + 600,
        })
        .await
        .unwrap();
    let taken = store.take_state(&digest("s"), t).await.unwrap().unwrap();
    assert_eq!(
        (taken.user.as_str(), taken.elicitation_id.as_deref()),
        ("alice", Some("e"))
    );
    assert!(
        store.take_state(&digest("s"), t).await.unwrap().is_none(),
        "used once"
    );
    let ticket = TicketRow {
        ticket_hash: digest("t"),
        user: "bob".into(),
        provider: "bitbucket".into(),
        scopes: String::new(),
        elicitation_id: None,
        expires_at: t + 600,
    };
    store.put_ticket(&ticket).await.unwrap();
    assert!(store.ticket(&digest("t"), t).await.unwrap().is_some());
    assert!(
        store.ticket(&digest("t"), t + 601).await.unwrap().is_none(),
        "expired"
    );
    // Twenty racing takers: exactly one gets it.
    let takers = (0..20).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.take_ticket(&digest("t"), now()).await.unwrap() })
    });
    let won = futures::future::join_all(takers)
        .await
        .into_iter()
        .filter(|r| r.as_ref().unwrap().is_some())
        .count();
    assert_eq!(won, 1);
    assert_eq!(store.purge_expired(t + 10_000).await.unwrap(), 0);
}
on_both!(
    states_and_tickets_work_once_on_both,
    states_and_tickets_work_once
);

async fn one_refresh_lease_at_a_time(store: Arc<dyn Store>) {
    store
        .save_connection(&connection("carol", "bitbucket", "c1"))
        .await
        .unwrap();
    let t = now();
    let contenders = (0..10).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .take_refresh_lease("carol", "bitbucket", &format!("holder-{i}"), t, t + 30)
                .await
                .unwrap()
        })
    });
    let won = futures::future::join_all(contenders)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(won, 1, "one holder at a time");
    assert!(
        !store
            .take_refresh_lease("carol", "bitbucket", "late", t + 1, t + 31)
            .await
            .unwrap()
    );
    assert!(
        store
            .take_refresh_lease("carol", "bitbucket", "late", t + 31, t + 61)
            .await
            .unwrap(),
        "an expired lease can be taken"
    );
    store
        .release_refresh_lease("carol", "bitbucket", "late")
        .await
        .unwrap();
    assert!(
        store
            .take_refresh_lease("carol", "bitbucket", "next", t + 32, t + 62)
            .await
            .unwrap()
    );
}
on_both!(
    one_refresh_lease_at_a_time_on_both,
    one_refresh_lease_at_a_time
);

async fn api_keys_round_trip(store: Arc<dyn Store>) {
    let row = ApiKeyRow {
        id: "abcdefabcdef".into(),
        key_hash: digest("dgk_key"),
        user: "dana".into(),
        created_at: now(),
    };
    store.put_api_key(&row).await.unwrap();
    assert_eq!(
        store
            .api_key_user(&digest("dgk_key"))
            .await
            .unwrap()
            .as_deref(),
        Some("dana")
    );
    assert_eq!(store.api_keys("dana").await.unwrap(), vec![row]);
    assert!(
        !store.revoke_api_key("erin", "abcdefabcdef").await.unwrap(),
        "only the owner revokes"
    );
    assert!(store.revoke_api_key("dana", "abcdefabcdef").await.unwrap());
    assert!(
        store
            .api_key_user(&digest("dgk_key"))
            .await
            .unwrap()
            .is_none()
    );
}
on_both!(api_keys_round_trip_on_both, api_keys_round_trip);
