//! Store behaviours of single-use rows: OAuth states and connect tickets taken once and not after expiry, racing takes, purging.

use super::*;

pub(super) async fn states_are_taken_once_and_not_after_expiry(store: Arc<dyn Store>) {
    let t = now();
    let first = state("state-1", t + 600);
    store.put_state(&first).await.unwrap();
    assert!(store.put_state(&first).await.is_err(), "a state is unique");
    assert_eq!(
        store.take_state(&first.state_hash, t).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.take_state(&first.state_hash, t).await.unwrap(), None);

    let old = StateRow {
        elicitation_id: None,
        expires_at: t + 10,
        ..state("state-2", t)
    };
    store.put_state(&old).await.unwrap();
    assert_eq!(
        store.take_state(&old.state_hash, t + 10).await.unwrap(),
        None
    );
    assert_eq!(
        store.take_state(&old.state_hash, t + 11).await.unwrap(),
        None
    );
    // Still there before expiry, and without an elicitation.
    assert_eq!(
        store.take_state(&old.state_hash, t + 9).await.unwrap(),
        Some(old)
    );
    assert_eq!(store.take_state(&digest("unknown"), t).await.unwrap(), None);
}

pub(super) async fn racing_take_state_gives_it_once(store: Arc<dyn Store>) {
    let t = now();
    let row = state("contended-state", t + 600);
    store.put_state(&row).await.unwrap();
    let hash = row.state_hash.clone();
    let taken = race(&store, 20, |store, _| {
        let hash = hash.clone();
        async move { store.take_state(&hash, t).await.unwrap() }
    })
    .await;
    let won: Vec<_> = taken.into_iter().flatten().collect();
    assert_eq!(won, vec![row]);
}

pub(super) async fn tickets_peek_take_and_expire(store: Arc<dyn Store>) {
    let t = now();
    let row = ticket("ticket-1", t + 600);
    store.put_ticket(&row).await.unwrap();
    assert!(store.put_ticket(&row).await.is_err(), "a ticket is unique");
    assert_eq!(
        store.ticket(&row.ticket_hash, t).await.unwrap(),
        Some(row.clone())
    );
    assert_eq!(
        store.ticket(&row.ticket_hash, t).await.unwrap(),
        Some(row.clone()),
        "looking does not use it up"
    );
    assert_eq!(store.ticket(&row.ticket_hash, t + 600).await.unwrap(), None);
    assert_eq!(
        store.take_ticket(&row.ticket_hash, t + 600).await.unwrap(),
        None
    );
    assert_eq!(
        store.take_ticket(&row.ticket_hash, t).await.unwrap(),
        Some(row.clone())
    );
    assert_eq!(store.take_ticket(&row.ticket_hash, t).await.unwrap(), None);
    assert_eq!(store.ticket(&row.ticket_hash, t).await.unwrap(), None);
    assert!(
        store.ticket_used(&row.ticket_hash).await.unwrap(),
        "a used ticket says so"
    );
    assert!(!store.ticket_used(&digest("never-issued")).await.unwrap());

    let plain = TicketRow {
        elicitation_id: None,
        scopes: String::new(),
        ..ticket("ticket-2", t + 5)
    };
    store.put_ticket(&plain).await.unwrap();
    assert!(!store.ticket_used(&plain.ticket_hash).await.unwrap());
    assert_eq!(
        store.take_ticket(&plain.ticket_hash, t).await.unwrap(),
        Some(plain)
    );
}

pub(super) async fn racing_take_ticket_gives_it_once(store: Arc<dyn Store>) {
    let t = now();
    let row = ticket("contended", t + 600);
    store.put_ticket(&row).await.unwrap();
    let hash = row.ticket_hash.clone();
    let taken = race(&store, 20, |store, _| {
        let hash = hash.clone();
        async move { store.take_ticket(&hash, t).await.unwrap() }
    })
    .await;
    let won: Vec<_> = taken.into_iter().flatten().collect();
    assert_eq!(won, vec![row]);
}

pub(super) async fn purge_removes_only_expired(store: Arc<dyn Store>) {
    let t = now();
    store.put_ticket(&ticket("old", t - 1)).await.unwrap();
    store.put_ticket(&ticket("edge", t)).await.unwrap();
    store.put_ticket(&ticket("live", t + 600)).await.unwrap();
    store.put_state(&state("old", t - 5)).await.unwrap();
    store.put_state(&state("live", t + 5)).await.unwrap();
    assert_eq!(store.purge_expired(t).await.unwrap(), 3);
    assert_eq!(store.purge_expired(t).await.unwrap(), 0);
    assert!(store.ticket(&digest("live"), t).await.unwrap().is_some());
    assert!(
        store
            .take_state(&digest("live"), t)
            .await
            .unwrap()
            .is_some()
    );
}
