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

mod audit_and_confirmations;
mod connections;
mod flows;
mod keys_and_leases;

use audit_and_confirmations::*;
use connections::*;
use flows::*;
use keys_and_leases::*;

/// The authorization server's tables (`super::auth`), on both backends too.
mod auth_tests;
/// The tasks table (`super::tasks`), on both backends too.
mod task_tests;

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
