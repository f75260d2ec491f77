//! Behaviour of [`AuthStore`] every store must show, on SQLite and PostgreSQL (see `on_both!`).

use std::sync::Arc;

use super::super::auth::*;
use super::super::{Store, digest, now};
use super::{PgDb, SqliteDb, open_store};

on_both!(
    codes_are_taken_once_and_a_replay_names_the_grant,
    refresh_tokens_rotate_and_a_reuse_names_the_grant,
    revoking_a_grant_ends_its_tokens,
    metadata_clients_refresh_but_revoked_clients_stay_revoked,
    consents_are_remembered_and_withdrawn,
);

fn grant(id: &str, user: &str, client: &str) -> GrantRow {
    GrantRow {
        id: id.into(),
        user: user.into(),
        groups: vec!["devs".into(), "ops team".into()],
        client_id: client.into(),
        scopes: "mcp:read mcp:write".into(),
        resource: "https://gw.example/mcp".into(),
        created_at: now(),
        revoked_at: None,
    }
}

fn token(secret: &str, ttl: i64) -> TokenHash {
    TokenHash {
        hash: digest(secret),
        expires_at: now() + ttl,
    }
}

fn code(secret: &str, grant_id: &str, expires_at: i64) -> CodeRow {
    CodeRow {
        code_hash: digest(secret),
        grant_id: grant_id.into(),
        user: "bitbucket:{alice}".into(),
        groups: vec!["devs".into()],
        client_id: "client-1".into(),
        scopes: "mcp:read".into(),
        resource: "https://gw.example/mcp".into(),
        redirect_uri: "http://127.0.0.1:5000/cb".into(),
        code_challenge: "challenge".into(),
        expires_at,
    }
}

async fn codes_are_taken_once_and_a_replay_names_the_grant(store: Arc<dyn Store>) {
    store.put_code(&code("c1", "g1", now() + 60)).await.unwrap();
    store.put_code(&code("old", "g2", now() - 1)).await.unwrap();
    match store.take_code(&digest("c1"), now()).await.unwrap() {
        CodeUse::Fresh(row) => {
            assert_eq!(row.grant_id, "g1");
            assert_eq!(row.groups, vec!["devs".to_string()]);
            assert_eq!(row.redirect_uri, "http://127.0.0.1:5000/cb");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        store.take_code(&digest("c1"), now()).await.unwrap(),
        CodeUse::Replayed {
            grant_id: "g1".into()
        }
    );
    assert_eq!(
        store.take_code(&digest("old"), now()).await.unwrap(),
        CodeUse::Unknown
    );
    assert_eq!(
        store.take_code(&digest("never"), now()).await.unwrap(),
        CodeUse::Unknown
    );
    // Racing takes: one wins.
    store.put_code(&code("c2", "g3", now() + 60)).await.unwrap();
    let results = futures::future::join_all((0..6).map(|_| {
        let store = store.clone();
        async move { store.take_code(&digest("c2"), now()).await.unwrap() }
    }))
    .await;
    let fresh = results
        .iter()
        .filter(|r| matches!(r, CodeUse::Fresh(_)))
        .count();
    assert_eq!(fresh, 1, "{results:?}");
}

async fn refresh_tokens_rotate_and_a_reuse_names_the_grant(store: Arc<dyn Store>) {
    let g = grant("g1", "alice", "client-1");
    store
        .create_grant(&g, &token("a1", 3600), &token("r1", 86400))
        .await
        .unwrap();
    let found = store.access_grant(&digest("a1"), now()).await.unwrap();
    assert_eq!(found.as_ref().map(|g| &g.groups), Some(&g.groups));
    // A refresh token is not an access token.
    assert_eq!(
        store.access_grant(&digest("r1"), now()).await.unwrap(),
        None
    );
    match store
        .rotate_refresh(
            &digest("r1"),
            &token("a2", 3600),
            &token("r2", 86400),
            now(),
        )
        .await
        .unwrap()
    {
        Rotation::Rotated(row) => assert_eq!(row.id, "g1"),
        other => panic!("{other:?}"),
    }
    assert!(
        store
            .access_grant(&digest("a2"), now())
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store
            .rotate_refresh(
                &digest("r1"),
                &token("a3", 3600),
                &token("r3", 86400),
                now()
            )
            .await
            .unwrap(),
        Rotation::Reused {
            grant_id: "g1".into()
        }
    );
    // The successors of a reused token were not stored.
    assert_eq!(
        store.access_grant(&digest("a3"), now()).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .rotate_refresh(
                &digest("nope"),
                &token("a4", 3600),
                &token("r4", 86400),
                now()
            )
            .await
            .unwrap(),
        Rotation::Unknown
    );
    // An expired access token resolves to nothing.
    store
        .create_grant(
            &grant("g2", "bob", "client-1"),
            &token("a-old", -1),
            &token("r-g2", 86400),
        )
        .await
        .unwrap();
    assert_eq!(
        store.access_grant(&digest("a-old"), now()).await.unwrap(),
        None
    );
}

async fn revoking_a_grant_ends_its_tokens(store: Arc<dyn Store>) {
    store
        .create_grant(
            &grant("g1", "alice", "c1"),
            &token("a1", 3600),
            &token("r1", 86400),
        )
        .await
        .unwrap();
    store
        .create_grant(
            &grant("g2", "bob", "c1"),
            &token("a2", 3600),
            &token("r2", 86400),
        )
        .await
        .unwrap();
    assert_eq!(
        store.token_grant(&digest("r1")).await.unwrap(),
        Some(("g1".to_string(), true))
    );
    assert_eq!(store.grants(None).await.unwrap().len(), 2);
    assert_eq!(store.grants(Some("alice")).await.unwrap().len(), 1);
    assert!(store.revoke_grant("g1", now()).await.unwrap());
    assert!(!store.revoke_grant("g1", now()).await.unwrap());
    assert_eq!(
        store.access_grant(&digest("a1"), now()).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .rotate_refresh(&digest("r1"), &token("x", 1), &token("y", 1), now())
            .await
            .unwrap(),
        Rotation::Unknown
    );
    let left = store.grants(None).await.unwrap();
    assert_eq!(
        left.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(),
        ["g2"]
    );
    // Revoking the client revokes the rest of its grants.
    store
        .put_client(&ClientRow {
            client_id: "c1".into(),
            kind: ClientKind::Dynamic,
            name: "Client".into(),
            redirect_uris: vec!["http://127.0.0.1/cb".into()],
            secret_hash: None,
            created_at: now(),
            expires_at: None,
            revoked_at: None,
        })
        .await
        .unwrap();
    assert_eq!(store.dynamic_client_count().await.unwrap(), 1);
    assert!(store.revoke_client("c1", now()).await.unwrap());
    assert_eq!(store.dynamic_client_count().await.unwrap(), 0);
    assert!(store.grants(None).await.unwrap().is_empty());
    assert_eq!(
        store.access_grant(&digest("a2"), now()).await.unwrap(),
        None
    );
}

async fn metadata_clients_refresh_but_revoked_clients_stay_revoked(store: Arc<dyn Store>) {
    let url = "https://app.example/client.json";
    let mut row = ClientRow {
        client_id: url.into(),
        kind: ClientKind::Metadata,
        name: "App".into(),
        redirect_uris: vec!["https://app.example/cb".into()],
        secret_hash: None,
        created_at: now(),
        expires_at: Some(now() + 60),
        revoked_at: None,
    };
    store.put_client(&row).await.unwrap();
    row.name = "App 2".into();
    row.expires_at = Some(now() + 120);
    store.put_client(&row).await.unwrap();
    let stored = store.client(url).await.unwrap().unwrap();
    assert_eq!(stored.name, "App 2");
    assert_eq!(stored.redirect_uris, row.redirect_uris);
    assert_eq!(stored.kind, ClientKind::Metadata);
    assert!(store.revoke_client(url, now()).await.unwrap());
    row.name = "App 3".into();
    store.put_client(&row).await.unwrap();
    let stored = store.client(url).await.unwrap().unwrap();
    assert_eq!(stored.name, "App 2");
    assert!(stored.revoked_at.is_some());
    assert_eq!(store.clients().await.unwrap().len(), 1);
}

async fn consents_are_remembered_and_withdrawn(store: Arc<dyn Store>) {
    assert_eq!(store.consent("alice", "c1").await.unwrap(), None);
    let row = ConsentRow {
        user: "alice".into(),
        client_id: "c1".into(),
        scopes: "mcp:read".into(),
        created_at: now(),
    };
    store.put_consent(&row).await.unwrap();
    store
        .put_consent(&ConsentRow {
            scopes: "mcp:read mcp:write".into(),
            ..row.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        store.consent("alice", "c1").await.unwrap().unwrap().scopes,
        "mcp:read mcp:write"
    );
    assert_eq!(store.consent("bob", "c1").await.unwrap(), None);
    assert!(store.withdraw_consent("alice", "c1").await.unwrap());
    assert!(!store.withdraw_consent("alice", "c1").await.unwrap());
    assert_eq!(store.consent("alice", "c1").await.unwrap(), None);
}
