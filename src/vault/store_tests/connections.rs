//! Store behaviours of connections: migration, round trips, versions, compare-and-swap of tokens and status, racing swaps.

use super::*;

pub(super) async fn migrate_is_idempotent_and_the_first_key_check_wins(store: Arc<dyn Store>) {
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    assert_eq!(store.key_check().await.unwrap(), None);
    store.set_key_check("v1.first").await.unwrap();
    store.set_key_check("v1.second").await.unwrap();
    assert_eq!(
        store.key_check().await.unwrap().as_deref(),
        Some("v1.first")
    );
}

pub(super) async fn connection_round_trip_and_versions(store: Arc<dyn Store>) {
    let sealer = Sealer::new([2; 32]);
    assert_eq!(store.connection("alice", "bitbucket").await.unwrap(), None);

    let mut row = connection("alice", "bitbucket", &sealer, "a1");
    row.version = 42; // ignored: the store counts
    store.save_connection(&row).await.unwrap();
    let got = store
        .connection("alice", "bitbucket")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got,
        ConnectionRow {
            version: 1,
            ..row.clone()
        }
    );

    // No refresh token, no expiry, broken with a detail: all kept as given.
    let mut other = connection("alice", "buddy", &sealer, "b1");
    other.refresh_token = None;
    other.expires_at = None;
    other.status = ConnectionStatus::Broken;
    other.status_detail = Some("why".into());
    store.save_connection(&other).await.unwrap();
    let got = store.connection("alice", "buddy").await.unwrap().unwrap();
    assert_eq!(
        got,
        ConnectionRow {
            version: 1,
            ..other.clone()
        }
    );

    // Text is kept byte for byte, timestamps past 2038 too.
    let odd_user = "ünï'cøde\" user; --";
    let mut odd = connection(odd_user, "bitbucket", &sealer, &"x".repeat(4000));
    odd.expires_at = Some(4_102_444_800);
    odd.updated_at = 4_102_444_000;
    odd.account = "Zoë 🚀 O'Brien".into();
    store.save_connection(&odd).await.unwrap();
    let got = store
        .connection(odd_user, "bitbucket")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, ConnectionRow { version: 1, ..odd });

    // Saving again replaces and bumps the version.
    let row2 = connection("alice", "bitbucket", &sealer, "a2");
    store.save_connection(&row2).await.unwrap();
    let got = store
        .connection("alice", "bitbucket")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, ConnectionRow { version: 2, ..row2 });
    assert_eq!(
        sealer
            .open("alice", "bitbucket", &got.access_token)
            .unwrap(),
        "a2"
    );

    let all = store.connections("alice").await.unwrap();
    let providers: Vec<_> = all.iter().map(|c| c.provider.as_str()).collect();
    assert_eq!(providers, ["bitbucket", "buddy"]);
    assert!(store.connections("bob").await.unwrap().is_empty());

    assert!(store.delete_connection("alice", "buddy").await.unwrap());
    assert!(!store.delete_connection("alice", "buddy").await.unwrap());
    assert_eq!(store.connections("alice").await.unwrap().len(), 1);
}

pub(super) async fn mark_broken_is_compare_and_swap_and_reconnect_repairs(store: Arc<dyn Store>) {
    let sealer = Sealer::new([3; 32]);
    store
        .save_connection(&connection("alice", "bitbucket", &sealer, "a1"))
        .await
        .unwrap();
    // A stale version marks nothing; the current one does.
    assert!(
        !store
            .mark_broken("alice", "bitbucket", "invalid_grant", 7)
            .await
            .unwrap()
    );
    assert!(
        store
            .mark_broken("alice", "bitbucket", "invalid_grant", 1)
            .await
            .unwrap()
    );
    let got = store
        .connection("alice", "bitbucket")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.status, ConnectionStatus::Broken);
    assert_eq!(got.status_detail.as_deref(), Some("invalid_grant"));
    assert_eq!(got.version, 1, "marking broken changes no token");
    // Marking a connection that does not exist is not an error.
    assert!(!store.mark_broken("bob", "bitbucket", "x", 1).await.unwrap());
    assert_eq!(store.connection("bob", "bitbucket").await.unwrap(), None);
    // A new connect makes it active again.
    store
        .save_connection(&connection("alice", "bitbucket", &sealer, "a2"))
        .await
        .unwrap();
    let got = store
        .connection("alice", "bitbucket")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.status, ConnectionStatus::Active);
    assert_eq!(got.status_detail, None);
    assert_eq!(got.version, 2);
}

pub(super) async fn swap_tokens_is_compare_and_swap(store: Arc<dyn Store>) {
    let sealer = Sealer::new([4; 32]);
    store
        .save_connection(&connection("alice", "bitbucket", &sealer, "a1"))
        .await
        .unwrap();
    let seen = store
        .connection("alice", "bitbucket")
        .await
        .unwrap()
        .unwrap();

    let mut winner = seen.clone();
    winner.access_token = sealer.seal("alice", "bitbucket", "winner");
    winner.refresh_token = Some(sealer.seal("alice", "bitbucket", "winner-refresh"));
    winner.expires_at = Some(now() + 7200);
    winner.scopes = "repository".into();
    winner.account = "ignored".into();
    assert!(store.swap_tokens(&winner, seen.version).await.unwrap());

    let mut loser = seen.clone();
    loser.access_token = sealer.seal("alice", "bitbucket", "loser");
    assert!(!store.swap_tokens(&loser, seen.version).await.unwrap());

    let got = store
        .connection("alice", "bitbucket")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.version, seen.version + 1);
    assert_eq!(
        sealer
            .open("alice", "bitbucket", &got.access_token)
            .unwrap(),
        "winner"
    );
    assert_eq!(got.refresh_token, winner.refresh_token);
    assert_eq!(got.expires_at, winner.expires_at);
    assert_eq!(got.scopes, "repository");
    assert_eq!(got.account, seen.account, "swap_tokens changes tokens only");

    // A token without expiry and without a refresh token can be swapped in.
    let mut forever = got.clone();
    forever.expires_at = None;
    forever.refresh_token = None;
    assert!(store.swap_tokens(&forever, got.version).await.unwrap());
    let again = store
        .connection("alice", "bitbucket")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.expires_at, again.refresh_token), (None, None));

    // A connection that is gone cannot be swapped.
    let mut ghost = seen.clone();
    ghost.user = "bob".into();
    assert!(!store.swap_tokens(&ghost, 1).await.unwrap());
}

pub(super) async fn racing_swap_tokens_has_one_winner(store: Arc<dyn Store>) {
    let sealer = Sealer::new([7; 32]);
    store
        .save_connection(&connection("alice", "bitbucket", &sealer, "a1"))
        .await
        .unwrap();
    let seen = store
        .connection("alice", "bitbucket")
        .await
        .unwrap()
        .unwrap();
    let swapped = race(&store, 10, |store, i| {
        let mut row = seen.clone();
        row.access_token = sealer.seal("alice", "bitbucket", &format!("racer-{i}"));
        async move { store.swap_tokens(&row, row.version).await.unwrap() }
    })
    .await;
    let winners: Vec<usize> = (0..swapped.len()).filter(|&i| swapped[i]).collect();
    assert_eq!(winners.len(), 1, "{swapped:?}");
    let got = store
        .connection("alice", "bitbucket")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.version, seen.version + 1);
    assert_eq!(
        sealer
            .open("alice", "bitbucket", &got.access_token)
            .unwrap(),
        format!("racer-{}", winners[0]),
        "the stored tokens are the winner's"
    );
}
