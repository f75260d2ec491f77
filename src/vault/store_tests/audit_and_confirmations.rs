//! Store behaviours of the audit log, confirmations and request states: read back in order, approved once, taken once.

use super::*;

pub(super) async fn audit_is_read_back_newest_first_by_user_and_time(store: Arc<dyn Store>) {
    let record = |at, user: &str, tool: &str| AuditRecord {
        at,
        user: user.into(),
        tool: tool.into(),
        provider: "bitbucket".into(),
        target: "workspace=acme, repo_slug=api".into(),
        outcome: "ok".into(),
        duration_ms: 12,
        request_id: format!("req-{at}"),
        policy: if user == "alice" {
            "allowed by [[policies]] #1 (group \"*\") allow_toolsets \"all\"".into()
        } else {
            String::new()
        },
    };
    store
        .record_calls(&[
            record(100, "alice", "bitbucket_get_repository"),
            record(200, "bob", "bitbucket_list_pull_requests"),
            record(300, "alice", "bitbucket_merge_pull_request"),
        ])
        .await
        .unwrap();
    store.record_calls(&[]).await.unwrap();
    let all = store.audit(None, 0, 10).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.at).collect::<Vec<_>>(),
        [300, 200, 100],
        "newest first"
    );
    assert_eq!(all[0], record(300, "alice", "bitbucket_merge_pull_request"));
    let alice = store.audit(Some("alice"), 0, 10).await.unwrap();
    assert!(alice.iter().all(|r| r.user == "alice") && alice.len() == 2);
    let recent = store.audit(None, 150, 10).await.unwrap();
    assert_eq!(recent.len(), 2);
    assert_eq!(store.audit(None, 0, 1).await.unwrap().len(), 1, "limit");
    assert!(store.audit(Some("carol"), 0, 10).await.unwrap().is_empty());

    // The audit writer's largest batch goes in as one statement, within the database's limit on values.
    let full: Vec<_> = (0..crate::audit::BATCH as i64)
        .map(|i| record(1_000 + i, "dave", "bitbucket_list_pull_requests"))
        .collect();
    store.record_calls(&full).await.unwrap();
    let dave = store.audit(Some("dave"), 0, 1_000).await.unwrap();
    assert_eq!(dave.len(), full.len());
    assert_eq!(dave[0], full[full.len() - 1], "newest first");
}

pub(super) fn confirmation(secret: &str, binding: &str, expires_at: Timestamp) -> ConfirmationRow {
    ConfirmationRow {
        ticket_hash: digest(secret),
        binding: binding.into(),
        user: "alice".into(),
        tool: "bitbucket_merge_pull_request".into(),
        summary: "sealed summary".into(),
        approved: false,
        expires_at,
    }
}

pub(super) async fn confirmations_are_approved_once_and_taken_once(store: Arc<dyn Store>) {
    let t = now();
    let row = confirmation("ticket", "b1", t + 600);
    store.put_confirmation(&row).await.unwrap();
    assert!(
        !store.take_approval("b1", t).await.unwrap(),
        "nothing to take before the page approves it"
    );
    assert_eq!(
        store.confirmation(&row.ticket_hash, t).await.unwrap(),
        Some(row.clone())
    );
    let approved = ConfirmationRow {
        approved: true,
        ..row.clone()
    };
    assert_eq!(
        store
            .approve_confirmation(&row.ticket_hash, t)
            .await
            .unwrap(),
        Some(approved)
    );
    assert_eq!(
        store
            .approve_confirmation(&row.ticket_hash, t)
            .await
            .unwrap(),
        None,
        "a ticket approves once"
    );
    assert_eq!(
        store.confirmation(&row.ticket_hash, t).await.unwrap(),
        None,
        "an approved ticket no longer shows its page"
    );
    assert!(
        !store.take_approval("b2", t).await.unwrap(),
        "other binding"
    );
    assert!(store.take_approval("b1", t).await.unwrap());
    assert!(!store.take_approval("b1", t).await.unwrap(), "taken once");

    let late = confirmation("late", "b3", t + 5);
    store.put_confirmation(&late).await.unwrap();
    store
        .approve_confirmation(&late.ticket_hash, t)
        .await
        .unwrap()
        .unwrap();
    assert!(
        !store.take_approval("b3", t + 5).await.unwrap(),
        "an expired approval is not taken"
    );
    let expired = confirmation("expired", "b4", t - 1);
    store.put_confirmation(&expired).await.unwrap();
    assert_eq!(
        store.confirmation(&expired.ticket_hash, t).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .approve_confirmation(&expired.ticket_hash, t)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.purge_expired(t + 5).await.unwrap(), 2);
}

pub(super) async fn racing_approvals_and_takes_have_one_winner(store: Arc<dyn Store>) {
    let t = now();
    let row = confirmation("contended", "b", t + 600);
    store.put_confirmation(&row).await.unwrap();
    let hash = row.ticket_hash.clone();
    let approvals = race(&store, 20, |store, _| {
        let hash = hash.clone();
        async move { store.approve_confirmation(&hash, t).await.unwrap() }
    })
    .await;
    assert_eq!(approvals.into_iter().flatten().count(), 1);
    let takes = race(&store, 20, |store, _| async move {
        store.take_approval("b", t).await.unwrap()
    })
    .await;
    assert_eq!(takes.into_iter().filter(|taken| *taken).count(), 1);
}

pub(super) async fn request_states_are_used_once(store: Arc<dyn Store>) {
    let t = now();
    assert!(store.use_request_state("n1", t + 600).await.unwrap());
    assert!(!store.use_request_state("n1", t + 600).await.unwrap());
    assert!(store.use_request_state("n2", t + 600).await.unwrap());
    let used = race(&store, 20, |store, _| async move {
        store.use_request_state("n3", t + 600).await.unwrap()
    })
    .await;
    assert_eq!(used.into_iter().filter(|u| *u).count(), 1);
    assert!(store.use_request_state("old", t - 1).await.unwrap());
    assert_eq!(store.purge_expired(t).await.unwrap(), 1);
}
