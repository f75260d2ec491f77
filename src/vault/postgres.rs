//! The PostgreSQL store, for several devgate instances sharing one database.
//!
//! Schema: `migrations/postgres/`. sqlx takes a session advisory lock (keyed by the database name)
//! around the migrations, so instances starting together apply them one after the other; each
//! migration runs in a transaction. The SQL is shared with the SQLite store ([`super::sql`]): `take_*`
//! are `DELETE … RETURNING`, token swaps and leases are `UPDATE … WHERE version/lease …`, each one
//! statement and so atomic across instances (under READ COMMITTED a second `UPDATE`/`DELETE` waits for
//! the first and re-checks its `WHERE` on the row the first one left).
//!
//! TLS: devgate is built without a TLS stack for PostgreSQL, so `sslmode=require` (or `verify-*`)
//! URLs are refused at start-up; the default `prefer` connects in plain text. Run the database on a
//! private network or through a local TLS proxy.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Row};

use super::migrations::POSTGRES_MIGRATOR as MIGRATOR;
use super::{
    ApiKeyRow, AuditRecord, ConfirmationRow, ConnectionRow, ConnectionStatus, StateRow, Store,
    StoreError, TicketRow, Timestamp,
};

/// Connections per instance: each store call holds one for a single statement.
const MAX_CONNECTIONS: u32 = 16;
/// How long opening the store (and later, waiting for a free connection) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const KEY_CHECK: &str = "key_check";

/// The [`super::Store`] on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// `host:port/database`, for messages (never the user or password).
    location: String,
}

impl PgStore {
    /// Connects to a `postgres://` or `postgresql://` URL, waiting at most five seconds for the
    /// server. Errors name the host, port and database, never the password. Run [`Store::migrate`]
    /// before use.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let location = describe(url);
        let fail = |detail: String| StoreError::Open {
            location: location.clone(),
            detail: redact(&detail, url),
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(fail(
                "not a PostgreSQL URL (postgres://user@host:5432/database)".into(),
            ));
        }
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e: sqlx::Error| fail(format!("the URL does not parse: {e}")))?;
        // No NOTICEs (sqlx logs each, e.g. "relation _sqlx_migrations already exists" at every start).
        let options = options.options([("client_min_messages", "warning")]);
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| {
                fail(match e {
                    // sqlx retries a refused connection until the deadline and then says only this.
                    sqlx::Error::PoolTimedOut => format!(
                        "no connection within {} s: is PostgreSQL running and reachable there?",
                        CONNECT_TIMEOUT.as_secs()
                    ),
                    e => e.to_string(),
                })
            })?;
        Ok(Self { pool, location })
    }

    /// Runs the migrations on one connection. sqlx leaves its advisory lock held when a migration
    /// fails; that connection is then closed rather than returned to the pool, so the lock goes with
    /// it instead of blocking every other instance's (and this one's next) attempt. (`run_direct` is
    /// `run` on one connection; `run(&mut *conn)` trips "implementation of `Acquire` is not general
    /// enough" under `async_trait`, which sqlx works around the same way.)
    async fn run_migrations(&self) -> Result<(), StoreError> {
        let failed = |e: &dyn std::fmt::Display| {
            StoreError::Backend(format!(
                "the schema migrations of {} failed: {e}",
                self.location
            ))
        };
        let mut conn = self.pool.acquire().await.map_err(|e| failed(&e))?;
        match MIGRATOR.run_direct(None, &mut *conn, false).await {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = conn.detach().close().await;
                Err(failed(&e))
            }
        }
    }
}

/// A store URL fit for messages and logs: a PostgreSQL URL's password becomes `***`; anything else
/// is returned as it is.
pub fn safe_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed)
            if matches!(parsed.scheme(), "postgres" | "postgresql")
                && parsed.password().is_some_and(|p| !p.is_empty()) =>
        {
            let _ = parsed.set_password(Some("***"));
            parsed.into()
        }
        _ => url.to_string(),
    }
}

/// `host:port/database` of a URL, without its user and password.
fn describe(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}:{}{}",
            u.host_str()
                .filter(|h| !h.is_empty())
                .unwrap_or("localhost"),
            u.port().unwrap_or(5432),
            u.path()
        ),
        Err(_) => "the PostgreSQL URL".into(),
    }
}

/// Keeps a URL's password (as written, and percent-decoded) out of a message.
fn redact(message: &str, url: &str) -> String {
    let Some(password) = url::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_string))
        .filter(|p| !p.is_empty())
    else {
        return message.to_string();
    };
    let mut message = message.replace(&password, "[redacted]");
    if let Ok(decoded) = percent_encoding::percent_decode_str(&password).decode_utf8()
        && !decoded.is_empty()
    {
        message = message.replace(decoded.as_ref(), "[redacted]");
    }
    message
}

super::sql::sql_store!(PgStore, PgRow);
super::auth::auth_sql_store!(PgStore, PgRow);
super::tasks::task_sql_store!(PgStore, PgRow);

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::vault::store_tests::PgDb;

    #[test]
    fn describe_names_host_port_and_database_only() {
        assert_eq!(
            describe("postgres://devgate:s3cret@db.internal:6543/devgate?sslmode=prefer"),
            "db.internal:6543/devgate"
        );
        assert_eq!(
            describe("postgresql://db.internal/devgate"),
            "db.internal:5432/devgate"
        );
        assert_eq!(describe("not a url"), "the PostgreSQL URL");
    }

    #[test]
    fn safe_url_hides_only_the_password() {
        assert_eq!(
            safe_url("postgres://devgate:s3cret@db:5432/devgate?sslmode=prefer"),
            "postgres://devgate:***@db:5432/devgate?sslmode=prefer"
        );
        assert_eq!(
            safe_url("postgresql://devgate@db/devgate"),
            "postgresql://devgate@db/devgate"
        );
        assert_eq!(
            safe_url("sqlite:///var/lib/devgate/devgate.db"),
            "sqlite:///var/lib/devgate/devgate.db"
        );
    }

    #[test]
    fn redact_hides_the_password_encoded_or_not() {
        let url = "postgres://devgate:p%40ss%3Aword@db/devgate";
        assert_eq!(
            redact("failed for p%40ss%3Aword and p@ss:word", url),
            "failed for [redacted] and [redacted]"
        );
        assert_eq!(
            redact("nothing to hide", "postgres://db/devgate"),
            "nothing to hide"
        );
    }

    #[tokio::test]
    async fn unreachable_server_is_an_open_error_naming_the_host_not_the_password() {
        // Port 1 on loopback refuses connections; sqlx retries until the deadline.
        let url = "postgres://devgate:hunter2-secret@127.0.0.1:1/devgate";
        let started = std::time::Instant::now();
        let err = PgStore::open(url).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(15), "bounded");
        let message = err.to_string();
        assert!(matches!(err, StoreError::Open { .. }), "{message}");
        assert!(message.contains("127.0.0.1:1/devgate"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        assert!(!message.contains("devgate:"), "{message}");
    }

    #[tokio::test]
    async fn open_refuses_other_urls_and_tls_it_cannot_do() {
        for url in ["sqlite://x.db", "mysql://db/devgate", "postgres//db"] {
            let err = PgStore::open(url).await.unwrap_err();
            assert!(matches!(err, StoreError::Open { .. }), "{url}: {err}");
        }
        // No TLS stack: sslmode=require must fail at start-up, not fall back to plain text.
        let err = PgStore::open("postgres://devgate:pw-xyz@127.0.0.1:1/devgate?sslmode=require")
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Open { .. }), "{err}");
        assert!(!err.to_string().contains("pw-xyz"), "{err}");
    }

    /// Instances starting together on a new database: sqlx's advisory lock makes them take turns.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_migrations_on_one_database_all_succeed() {
        let Some(db) = PgDb::create(
            "vault::postgres::tests::concurrent_migrations_on_one_database_all_succeed",
        )
        .await
        else {
            return;
        };
        let stores: Vec<Arc<PgStore>> =
            futures::future::join_all((0..8).map(|_| PgStore::open(db.url())))
                .await
                .into_iter()
                .map(|s| Arc::new(s.unwrap()))
                .collect();
        let runs = stores.iter().map(|store| {
            let store = store.clone();
            tokio::spawn(async move { store.migrate().await })
        });
        for run in futures::future::join_all(runs).await {
            run.unwrap().unwrap();
        }
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
            .fetch_one(&stores[0].pool)
            .await
            .unwrap();
        assert_eq!(applied as usize, MIGRATOR.iter().count());
        stores[0].ping().await.unwrap();
        assert!(stores[0].location.ends_with(&format!("/{}", db.name())));
        for store in &stores {
            store.pool.close().await;
        }
        db.remove().await;
    }

    /// sqlx keeps its advisory lock when a run fails; the store must not keep that session, or every
    /// later attempt (another instance's, or the retry in `open_vault`) would wait forever.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_migration_does_not_keep_the_lock() {
        let Some(db) =
            PgDb::create("vault::postgres::tests::a_failed_migration_does_not_keep_the_lock").await
        else {
            return;
        };
        let first = PgStore::open(db.url()).await.unwrap();
        first.migrate().await.unwrap();
        // An applied migration whose file changed: sqlx refuses it after taking the lock.
        sqlx::query("UPDATE _sqlx_migrations SET checksum = '\\x00'::bytea")
            .execute(&first.pool)
            .await
            .unwrap();
        let err = first.migrate().await.unwrap_err();
        assert!(err.to_string().contains("migrations"), "{err}");
        let second = PgStore::open(db.url()).await.unwrap();
        for store in [&second, &first] {
            let attempt = tokio::time::timeout(Duration::from_secs(10), store.migrate()).await;
            assert!(
                matches!(attempt, Ok(Err(StoreError::Backend(_)))),
                "a later attempt fails at once instead of waiting for the lock: {attempt:?}"
            );
        }
        first.pool.close().await;
        second.pool.close().await;
        db.remove().await;
    }
}
