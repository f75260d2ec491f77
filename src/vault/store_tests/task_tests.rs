//! Behaviour of [`TaskStore`] every store must show, on SQLite and PostgreSQL (see `on_both!`): tasks
//! bound to their user, one lease holder at a time, a cancel that stands, expiry and purge.

use std::sync::Arc;

use super::super::tasks::*;
use super::super::{Store, digest, now};
use super::{PgDb, SqliteDb, open_store};

on_both!(
    tasks_are_their_users_and_expire,
    task_leases_have_one_holder_until_they_run_out,
    a_cancel_stands_against_the_follower,
);

fn task(id: &str, user: &str, created_at: i64, ttl: i64) -> TaskRow {
    TaskRow {
        task_hash: digest(id),
        user: user.into(),
        tool: "bitbucket_run_pipeline".into(),
        state: TaskState::Working,
        status_message: None,
        work: "sealed work".into(),
        result: None,
        created_at,
        updated_at: created_at,
        expires_at: created_at + ttl,
        lease_until: None,
    }
}

async fn tasks_are_their_users_and_expire(store: Arc<dyn Store>) {
    let t = now();
    store
        .put_task(&task("a1", "alice", t, 60), "i1", t + 10)
        .await
        .unwrap();
    store
        .put_task(&task("a2", "alice", t + 1, 60), "i1", t + 10)
        .await
        .unwrap();
    store
        .put_task(&task("b1", "bob", t, 60), "i1", t + 10)
        .await
        .unwrap();
    let a1 = store
        .task(&digest("a1"), "alice", t)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((a1.user.as_str(), a1.state), ("alice", TaskState::Working));
    assert_eq!(a1.lease_until, Some(t + 10));
    assert!(
        store.task(&digest("a1"), "bob", t).await.unwrap().is_none(),
        "another user's task is not there"
    );
    assert!(!store.cancel_task(&digest("a1"), "bob", t).await.unwrap());
    let listed: Vec<String> = store
        .tasks("alice", t, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.task_hash)
        .collect();
    assert_eq!(listed, [digest("a2"), digest("a1")], "newest first");
    assert!(
        store
            .task(&digest("a1"), "alice", t + 60)
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    assert_eq!(
        store.purge_tasks(t + 60).await.unwrap(),
        2,
        "a2 lives a second longer"
    );
    assert_eq!(store.purge_tasks(t + 61).await.unwrap(), 1);
    assert!(store.tasks("alice", t, 10).await.unwrap().is_empty());
}

async fn task_leases_have_one_holder_until_they_run_out(store: Arc<dyn Store>) {
    let t = now();
    store
        .put_task(&task("l", "alice", t, 600), "i1", t + 10)
        .await
        .unwrap();
    let h = digest("l");
    assert!(
        !store.take_task_lease(&h, "i2", t, t + 10).await.unwrap(),
        "i1 holds it"
    );
    assert!(
        store.take_task_lease(&h, "i1", t, t + 20).await.unwrap(),
        "renewed"
    );
    assert!(
        store
            .set_task_message(&h, "i1", "IN_PROGRESS", t)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_task_message(&h, "i2", "not mine", t)
            .await
            .unwrap()
    );
    // i1 is gone: once its lease runs out, i2 takes over, and i1 can no longer write.
    assert!(
        store
            .take_task_lease(&h, "i2", t + 20, t + 30)
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish_task(&h, "i1", TaskState::Completed, Some("r"), t + 21)
            .await
            .unwrap()
    );
    assert!(
        store
            .finish_task(&h, "i2", TaskState::Completed, Some("r"), t + 21)
            .await
            .unwrap()
    );
    let done = store.task(&h, "alice", t + 21).await.unwrap().unwrap();
    assert_eq!(done.state, TaskState::Completed);
    assert_eq!(done.result.as_deref(), Some("r"));
    assert_eq!(done.status_message.as_deref(), Some("IN_PROGRESS"));
    assert_eq!(done.lease_until, None);
    assert!(
        !store
            .take_task_lease(&h, "i3", t + 40, t + 50)
            .await
            .unwrap(),
        "a finished task is not followed again"
    );
}

async fn a_cancel_stands_against_the_follower(store: Arc<dyn Store>) {
    let t = now();
    store
        .put_task(&task("c", "alice", t, 600), "i1", t + 10)
        .await
        .unwrap();
    let h = digest("c");
    assert!(store.cancel_task(&h, "alice", t).await.unwrap());
    assert!(!store.cancel_task(&h, "alice", t).await.unwrap(), "once");
    assert!(
        !store.take_task_lease(&h, "i1", t, t + 10).await.unwrap(),
        "the follower stops"
    );
    assert!(
        !store
            .finish_task(&h, "i1", TaskState::Completed, Some("r"), t)
            .await
            .unwrap()
    );
    let row = store.task(&h, "alice", t).await.unwrap().unwrap();
    assert_eq!((row.state, row.result), (TaskState::Cancelled, None));
}
