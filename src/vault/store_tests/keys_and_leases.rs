//! Store behaviours of API keys and refresh leases: round trips, one lease holder until expiry or release, racing leases.

use super::*;

pub(super) async fn api_keys_round_trip(store: Arc<dyn Store>) {
    let key = |id: &str, secret: &str, user: &str, at| ApiKeyRow {
        id: id.into(),
        key_hash: digest(secret),
        user: user.into(),
        created_at: at,
        groups: Vec::new(),
    };
    let a1 = ApiKeyRow {
        groups: vec!["devs".into(), "release managers".into()],
        ..key("dg_a1", "secret-a1", "alice", 100)
    };
    let a2 = key("dg_a2", "secret-a2", "alice", 200);
    let b1 = key("dg_b1", "secret-b1", "bob", 150);
    for k in [&a2, &a1, &b1] {
        store.put_api_key(k).await.unwrap();
    }
    assert!(
        store
            .put_api_key(&key("dg_zz", "secret-a1", "eve", 1))
            .await
            .is_err(),
        "a key hash is unique"
    );
    assert!(
        store
            .put_api_key(&key("dg_a1", "other", "eve", 1))
            .await
            .is_err(),
        "a key id is unique"
    );

    assert_eq!(
        store
            .api_key(&digest("secret-a1"))
            .await
            .unwrap()
            .map(|row| row.user)
            .as_deref(),
        Some("alice")
    );
    assert_eq!(
        store.api_key(&digest("secret-a1")).await.unwrap(),
        Some(a1.clone()),
        "with its groups"
    );
    assert_eq!(store.api_key(&digest("nope")).await.unwrap(), None);
    assert_eq!(
        store.api_keys("alice").await.unwrap(),
        vec![a1.clone(), a2.clone()],
        "oldest first"
    );
    assert_eq!(store.api_keys("bob").await.unwrap(), vec![b1.clone()]);
    assert_eq!(
        store.all_api_keys().await.unwrap(),
        vec![a1.clone(), a2.clone(), b1.clone()],
        "by user, oldest first"
    );

    assert!(
        !store.revoke_api_key("bob", "dg_a1").await.unwrap(),
        "not bob's key"
    );
    assert!(store.revoke_api_key("alice", "dg_a1").await.unwrap());
    assert!(!store.revoke_api_key("alice", "dg_a1").await.unwrap());
    assert_eq!(store.api_key(&digest("secret-a1")).await.unwrap(), None);
    assert_eq!(store.api_keys("alice").await.unwrap(), vec![a2]);
}

pub(super) async fn refresh_lease_has_one_holder_until_it_expires_or_is_released(
    store: Arc<dyn Store>,
) {
    let sealer = Sealer::new([8; 32]);
    let t = now();
    assert!(
        !store
            .take_refresh_lease("carol", "bitbucket", "a", t, t + 30)
            .await
            .unwrap(),
        "no connection, no lease"
    );
    store
        .save_connection(&connection("carol", "bitbucket", &sealer, "c1"))
        .await
        .unwrap();
    let lease = |holder: &'static str, at: Timestamp, until: Timestamp| {
        let store = store.clone();
        async move {
            store
                .take_refresh_lease("carol", "bitbucket", holder, at, until)
                .await
                .unwrap()
        }
    };
    assert!(lease("a", t, t + 30).await);
    assert!(!lease("b", t + 29, t + 59).await, "a holds it");
    assert!(lease("a", t + 10, t + 40).await, "the holder may extend it");
    assert!(!lease("b", t + 39, t + 69).await, "extended");
    assert!(
        lease("b", t + 40, t + 70).await,
        "an expired lease can be taken"
    );
    assert!(!lease("a", t + 41, t + 71).await, "b holds it now");

    // Only the holder gives it back.
    store
        .release_refresh_lease("carol", "bitbucket", "a")
        .await
        .unwrap();
    assert!(!lease("c", t + 42, t + 72).await);
    store
        .release_refresh_lease("carol", "bitbucket", "b")
        .await
        .unwrap();
    assert!(lease("c", t + 42, t + 72).await, "released");

    // Leases are per connection and do not touch the tokens.
    store
        .save_connection(&connection("carol", "buddy", &sealer, "c2"))
        .await
        .unwrap();
    assert!(
        store
            .take_refresh_lease("carol", "buddy", "a", t + 42, t + 72)
            .await
            .unwrap()
    );
    let got = store
        .connection("carol", "bitbucket")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got.version, 1,
        "taking and releasing leases is no token change"
    );

    // A deleted connection has no lease to take.
    assert!(store.delete_connection("carol", "bitbucket").await.unwrap());
    assert!(!lease("d", t + 100, t + 130).await);
}

pub(super) async fn racing_refresh_leases_have_one_winner(store: Arc<dyn Store>) {
    let sealer = Sealer::new([9; 32]);
    store
        .save_connection(&connection("carol", "bitbucket", &sealer, "c1"))
        .await
        .unwrap();
    let t = now();
    let taken = race(&store, 20, |store, i| async move {
        store
            .take_refresh_lease("carol", "bitbucket", &format!("holder-{i}"), t, t + 30)
            .await
            .unwrap()
    })
    .await;
    let winners: Vec<usize> = (0..taken.len()).filter(|&i| taken[i]).collect();
    assert_eq!(winners.len(), 1, "one holder at a time: {taken:?}");

    // Once the winner gives it back, the next race has one winner again.
    store
        .release_refresh_lease("carol", "bitbucket", &format!("holder-{}", winners[0]))
        .await
        .unwrap();
    let taken = race(&store, 20, |store, i| async move {
        store
            .take_refresh_lease("carol", "bitbucket", &format!("next-{i}"), t + 1, t + 31)
            .await
            .unwrap()
    })
    .await;
    assert_eq!(taken.iter().filter(|&&won| won).count(), 1, "{taken:?}");
}
