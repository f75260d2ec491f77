//! Behaviour tests every [`Store`] must pass, on SQLite and on PostgreSQL.
//!
//! Each behaviour is one `async fn` taking the store (an `Arc`, so the race tests can share it between
//! tasks); [`on_both!`] turns it into two tests, `store_tests::on_sqlite::<behaviour>` (a fresh file)
//! and `store_tests::on_postgres::<behaviour>` (a fresh database on the server named by
//! `DEVGATE_TEST_POSTGRES_URL`, dropped afterwards). Without that variable the PostgreSQL tests pass
//! without running and the test binary counts them in a note at exit (`tests/it/common/skip.rs`), unless
//! `DEVGATE_REQUIRE_POSTGRES=1`, which makes them fail.
//! `eval "$(.ci/postgres.sh start)"` runs a throwaway server and sets the variable.
//!
//! SQLite-only checks (URLs, file mode, WAL, no plaintext in the files) are in `sqlite.rs`;
//! PostgreSQL-only ones (connection errors, concurrent migrations) in `postgres.rs`.

use std::path::PathBuf;
use std::sync::Arc;

use sqlx::Connection as _;

use super::seal::Sealer;
use super::*;

/// The test server: `postgres://user@host:port/database` (any database; tests create their own).
pub(super) const SERVER_VAR: &str = "DEVGATE_TEST_POSTGRES_URL";
/// Skips counted in the test summary, and `DEVGATE_REQUIRE_POSTGRES=1` making them failures (CI).
#[path = "../../tests/it/common/skip.rs"]
mod skip;

/// A migrated SQLite store in a fresh temporary directory, removed on drop.
struct SqliteDb {
    dir: PathBuf,
    store: Arc<dyn Store>,
}

impl SqliteDb {
    async fn create() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "devgate-store-test-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let url = format!("sqlite://{}", dir.join("devgate.db").display());
        let store = open_store(&url).await.unwrap();
        store.migrate().await.unwrap();
        Self { dir, store }
    }
}

impl Drop for SqliteDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh, empty database on the test PostgreSQL server. [`PgDb::remove`] drops it; a test that
/// panics first leaves it behind, on a server that is itself thrown away.
pub(super) struct PgDb {
    server: String,
    name: String,
    url: String,
}

impl PgDb {
    /// Creates `devgate_test_<random>`, or returns `None` after recording a skip of `test` when no
    /// server is configured. Panics when `DEVGATE_REQUIRE_POSTGRES=1` and no server is configured, and
    /// when the configured server does not answer.
    pub(super) async fn create(test: &str) -> Option<Self> {
        let server = match std::env::var(SERVER_VAR) {
            Ok(server) if !server.trim().is_empty() => server,
            _ => {
                skip::skip_test(
                    test,
                    skip::POSTGRES,
                    &format!(
                        "{SERVER_VAR} is not set (`eval \"$(.ci/postgres.sh start)\"` runs a server)"
                    ),
                );
                return None;
            }
        };
        let name = format!("devgate_test_{:016x}", rand::random::<u64>());
        let mut url =
            url::Url::parse(&server).unwrap_or_else(|e| panic!("{SERVER_VAR} is not a URL: {e}"));
        let mut admin = sqlx::PgConnection::connect(&server)
            .await
            .unwrap_or_else(|e| panic!("the test PostgreSQL ({SERVER_VAR}) does not answer: {e}"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        let _ = admin.close().await;
        url.set_path(&format!("/{name}"));
        Some(Self {
            server,
            name,
            url: url.into(),
        })
    }

    /// The database's URL.
    pub(super) fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database, ending any connection still open to it (PostgreSQL 13 and later).
    pub(super) async fn remove(self) {
        if let Ok(mut admin) = sqlx::PgConnection::connect(&self.server).await {
            let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            let _ = sqlx::query(sqlx::AssertSqlSafe(drop))
                .execute(&mut admin)
                .await;
            let _ = admin.close().await;
        }
    }
}

/// Makes `on_sqlite::<behaviour>` and `on_postgres::<behaviour>` tests of each behaviour.
macro_rules! on_both {
    ($($behaviour:ident),+ $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $behaviour() {
                    let db = super::SqliteDb::create().await;
                    super::$behaviour(db.store.clone()).await;
                }
            )+
        }

        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $behaviour() {
                    let test = concat!("vault::store_tests::on_postgres::", stringify!($behaviour));
                    let Some(db) = super::PgDb::create(test).await else {
                        return;
                    };
                    let store = super::open_store(db.url()).await.unwrap();
                    store.migrate().await.unwrap();
                    super::$behaviour(store.clone()).await;
                    drop(store);
                    db.remove().await;
                }
            )+
        }
    };
}

on_both!(
    migrate_is_idempotent_and_the_first_key_check_wins,
    connection_round_trip_and_versions,
    mark_broken_is_compare_and_swap_and_reconnect_repairs,
    swap_tokens_is_compare_and_swap,
    racing_swap_tokens_has_one_winner,
    states_are_taken_once_and_not_after_expiry,
    racing_take_state_gives_it_once,
    tickets_peek_take_and_expire,
    racing_take_ticket_gives_it_once,
    purge_removes_only_expired,
    api_keys_round_trip,
    refresh_lease_has_one_holder_until_it_expires_or_is_released,
    racing_refresh_leases_have_one_winner,
    audit_is_read_back_newest_first_by_user_and_time,
    confirmations_are_approved_once_and_taken_once,
    racing_approvals_and_takes_have_one_winner,
    request_states_are_used_once,
);

/// The authorization server's tables (`super::auth`), on both backends too.
mod auth_tests;

fn connection(user: &str, provider: &str, sealer: &Sealer, access: &str) -> ConnectionRow {
    ConnectionRow {
        user: user.into(),
        provider: provider.into(),
        access_token: sealer.seal(user, provider, access),
        refresh_token: Some(sealer.seal(user, provider, &format!("{access}-refresh"))),
        expires_at: Some(now() + 3600),
        scopes: "repository pullrequest".into(),
        account: "Alice A.".into(),
        account_id: "{1234}".into(),
        status: ConnectionStatus::Active,
        status_detail: None,
        version: 0,
        updated_at: now(),
    }
}

fn state(secret: &str, expires_at: Timestamp) -> StateRow {
    StateRow {
        state_hash: digest(secret),
        user: "alice".into(),
        provider: "bitbucket".into(),
        pkce_verifier: Sealer::new([5; 32]).seal("alice", "bitbucket", "verifier"),
        scopes: "repository account".into(),
        elicitation_id: Some("el-9".into()),
        browser_hash: digest("flow-cookie"),
        expires_at,
    }
}

fn ticket(secret: &str, expires_at: Timestamp) -> TicketRow {
    TicketRow {
        ticket_hash: digest(secret),
        user: "alice".into(),
        provider: "bitbucket".into(),
        scopes: "repository".into(),
        elicitation_id: Some("el-1".into()),
        expires_at,
    }
}

/// Runs `n` copies of `call` at once on their own tasks; returns their results in order.
async fn race<T, F, Fut>(store: &Arc<dyn Store>, n: usize, call: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(Arc<dyn Store>, usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let run = call(store.clone(), i);
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                run.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

async fn migrate_is_idempotent_and_the_first_key_check_wins(store: Arc<dyn Store>) {
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

async fn connection_round_trip_and_versions(store: Arc<dyn Store>) {
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

async fn mark_broken_is_compare_and_swap_and_reconnect_repairs(store: Arc<dyn Store>) {
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

async fn swap_tokens_is_compare_and_swap(store: Arc<dyn Store>) {
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

async fn racing_swap_tokens_has_one_winner(store: Arc<dyn Store>) {
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

async fn states_are_taken_once_and_not_after_expiry(store: Arc<dyn Store>) {
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

async fn racing_take_state_gives_it_once(store: Arc<dyn Store>) {
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

async fn tickets_peek_take_and_expire(store: Arc<dyn Store>) {
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

async fn racing_take_ticket_gives_it_once(store: Arc<dyn Store>) {
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

async fn purge_removes_only_expired(store: Arc<dyn Store>) {
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

async fn api_keys_round_trip(store: Arc<dyn Store>) {
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
            .api_key_user(&digest("secret-a1"))
            .await
            .unwrap()
            .as_deref(),
        Some("alice")
    );
    assert_eq!(store.api_key_user(&digest("nope")).await.unwrap(), None);
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
    assert_eq!(
        store.api_key_user(&digest("secret-a1")).await.unwrap(),
        None
    );
    assert_eq!(store.api_keys("alice").await.unwrap(), vec![a2]);
}

async fn refresh_lease_has_one_holder_until_it_expires_or_is_released(store: Arc<dyn Store>) {
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

async fn racing_refresh_leases_have_one_winner(store: Arc<dyn Store>) {
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

#[tokio::test]
async fn open_store_picks_the_backend_by_scheme() {
    let store = open_store("sqlite::memory:").await.unwrap();
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    for url in ["mysql://db/devgate", "devgate.db", "", "postgres//db"] {
        let Err(err) = open_store(url).await else {
            panic!("{url} opened");
        };
        assert!(matches!(err, StoreError::Open { .. }), "{url}: {err}");
        assert!(
            err.to_string().contains("sqlite:// or postgres://"),
            "{url}: {err}"
        );
    }
}

async fn audit_is_read_back_newest_first_by_user_and_time(store: Arc<dyn Store>) {
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
}

fn confirmation(secret: &str, binding: &str, expires_at: Timestamp) -> ConfirmationRow {
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

async fn confirmations_are_approved_once_and_taken_once(store: Arc<dyn Store>) {
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

async fn racing_approvals_and_takes_have_one_winner(store: Arc<dyn Store>) {
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

async fn request_states_are_used_once(store: Arc<dyn Store>) {
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
