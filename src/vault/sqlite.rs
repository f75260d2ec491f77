//! The SQLite store: one file (WAL mode) for a single devgate instance, or `sqlite::memory:` for tests.
//!
//! Schema: `migrations/sqlite/`. Every method is one statement, so `take_*` (DELETE … RETURNING) and
//! `swap_tokens` (UPDATE … WHERE version = ?) stay atomic across connections and processes.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

use super::migrations::SQLITE_MIGRATOR as MIGRATOR;
use super::{
    ApiKeyRow, AuditRecord, ConfirmationRow, ConnectionRow, ConnectionStatus, StateRow, Store,
    StoreError, TicketRow, Timestamp,
};

/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_CONNECTIONS: u32 = 8;
const KEY_CHECK: &str = "key_check";

/// A `sqlite:` URL's database part (still percent-encoded) and whether it names an in-memory database.
fn parse_url(url: &str) -> Option<(&str, bool)> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    let memory = database == ":memory:"
        || url::form_urlencoded::parse(params.as_bytes())
            .any(|(k, v)| k == "mode" && v == "memory");
    Some((database, memory))
}

/// The database file a `sqlite:` URL names, or `None` for an in-memory database (or another scheme).
/// The key file sits next to it.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let (database, memory) = parse_url(url)?;
    if memory || database.is_empty() {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(database)
        .decode_utf8()
        .ok()?;
    Some(PathBuf::from(decoded.into_owned()))
}

/// The [`super::Store`] on SQLite.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    location: String,
    path: Option<PathBuf>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database of a `sqlite://path` or `sqlite::memory:` URL. Run
    /// [`Store::migrate`] before use.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let path = sqlite_path(url);
        let location = match &path {
            Some(p) => p.display().to_string(),
            None => url.to_string(),
        };
        let fail = |detail: String| StoreError::Open {
            location: location.clone(),
            detail,
        };
        let Some((_, memory)) = parse_url(url) else {
            return Err(fail(
                "not an SQLite URL (sqlite://path/to/devgate.db)".into(),
            ));
        };
        if path.is_none() && !memory {
            return Err(fail(
                "the URL names no file (sqlite://path/to/devgate.db)".into(),
            ));
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| fail(e.to_string()))?
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = match path.as_deref() {
            Some(p) => {
                prepare_file(p)
                    .map_err(|e| fail(format!("cannot create the file or its directory: {e}")))?;
                let options = options
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal);
                SqlitePoolOptions::new()
                    .max_connections(MAX_CONNECTIONS)
                    .connect_with(options)
                    .await
            }
            None => {
                // An in-memory database lives as long as a connection to it: keep exactly one.
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect_with(options)
                    .await
            }
        }
        .map_err(|e| fail(e.to_string()))?;
        Ok(Self {
            pool,
            location,
            path,
        })
    }

    /// The database file, or the URL for an in-memory one; for messages.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The database file (`None` in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Closes the pool; SQLite checkpoints the WAL when the last connection closes.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn run_migrations(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await.map_err(|e| {
            StoreError::Backend(format!(
                "the schema migrations of {} failed: {e}",
                self.location
            ))
        })
    }
}

/// Creates the database's directory and, if missing, an empty database file readable by its owner only
/// (SQLite gives the -wal and -shm files the same mode).
fn prepare_file(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

super::sql::sql_store!(SqliteStore, SqliteRow);
super::auth::auth_sql_store!(SqliteStore, SqliteRow);
super::tasks::task_sql_store!(SqliteStore, SqliteRow);

#[cfg(test)]
mod tests {
    //! SQLite-only checks; the behaviour every store shares is tested on both backends in
    //! `super::super::store_tests`.

    use super::*;
    use crate::vault::now;
    use crate::vault::seal::Sealer;

    /// A database file in a fresh temporary directory, removed on drop.
    struct TempDb {
        dir: PathBuf,
    }

    impl TempDb {
        fn new() -> Self {
            let dir = std::env::temp_dir().join(format!(
                "devgate-sqlite-test-{}-{:016x}",
                std::process::id(),
                rand::random::<u64>()
            ));
            Self { dir }
        }

        fn file(&self) -> PathBuf {
            self.dir.join("devgate.db")
        }

        fn url(&self) -> String {
            format!("sqlite://{}", self.file().display())
        }

        async fn store(&self) -> SqliteStore {
            let store = SqliteStore::open(&self.url()).await.unwrap();
            store.migrate().await.unwrap();
            store
        }
    }

    impl Drop for TempDb {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

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

    #[test]
    fn sqlite_path_from_urls() {
        assert_eq!(
            sqlite_path("sqlite:///var/lib/devgate/devgate.db"),
            Some(PathBuf::from("/var/lib/devgate/devgate.db"))
        );
        assert_eq!(
            sqlite_path("sqlite://devgate.db"),
            Some(PathBuf::from("devgate.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:data/devgate.db"),
            Some(PathBuf::from("data/devgate.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:///tmp/a%20b.db?mode=rwc"),
            Some(PathBuf::from("/tmp/a b.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(sqlite_path("sqlite://:memory:"), None);
        assert_eq!(sqlite_path("sqlite://x.db?mode=memory"), None);
        assert_eq!(sqlite_path("sqlite://"), None);
        assert_eq!(sqlite_path("postgres://db/devgate"), None);
    }

    #[tokio::test]
    async fn open_refuses_what_is_not_a_file_or_memory() {
        for url in [
            "postgres://host/db",
            "sqlite://",
            "sqlite:",
            "sqlite:///dev/null/devgate.db",
        ] {
            let err = SqliteStore::open(url).await.unwrap_err();
            assert!(matches!(err, StoreError::Open { .. }), "{url}: {err}");
        }
    }

    #[tokio::test]
    async fn in_memory_store_keeps_its_data() {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        store.ping().await.unwrap();
        assert_eq!(store.path(), None);
        let sealer = Sealer::new([1; 32]);
        store
            .save_connection(&connection("alice", "buddy", &sealer, "tok"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(store.connection("alice", "buddy").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn file_store_is_wal_0600_and_persists() {
        let db = TempDb::new();
        let store = db.store().await;
        store.migrate().await.unwrap(); // idempotent
        store.ping().await.unwrap();
        assert_eq!(store.path(), Some(db.file().as_path()));
        assert_eq!(store.location(), db.file().display().to_string());
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(fk, 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(db.file()).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        store.set_key_check("v1.check").await.unwrap();
        store.close().await;
        let again = db.store().await;
        assert_eq!(
            again.key_check().await.unwrap().as_deref(),
            Some("v1.check")
        );
    }

    #[tokio::test]
    async fn database_files_hold_no_plaintext_token() {
        let db = TempDb::new();
        let store = db.store().await;
        let sealer = Sealer::new([6; 32]);
        let access = "ACCESS-plaintext-7f3a9c1e5b";
        let refresh = "REFRESH-plaintext-2d8e4f6a0c";
        let mut row = connection("alice", "bitbucket", &sealer, access);
        row.refresh_token = Some(sealer.seal("alice", "bitbucket", refresh));
        store.save_connection(&row).await.unwrap();
        let stored = store
            .connection("alice", "bitbucket")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            sealer
                .open("alice", "bitbucket", &stored.access_token)
                .unwrap(),
            access
        );

        let mut bytes = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            let mut name = db.file().into_os_string();
            name.push(suffix);
            if let Ok(b) = std::fs::read(&name) {
                bytes.extend_from_slice(&b);
            }
        }
        let contains = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
        // The files were read while the row is in them: its sealed form is there...
        assert!(
            contains(&row.access_token),
            "sealed token not found: wrong files?"
        );
        // ...and the plaintext is not.
        assert!(!contains(access));
        assert!(!contains(refresh));
    }
}
