//! The SQLite store: one file (WAL mode) for a single devgate instance, or `sqlite::memory:` for tests.
//!
//! Schema: `migrations/sqlite/`. Every method is one statement, so `take_*` (DELETE … RETURNING) and
//! `swap_tokens` (UPDATE … WHERE version = ?) stay atomic across connections and processes.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

use super::{
    ApiKeyRow, ConnectionRow, ConnectionStatus, StateRow, Store, StoreError, TicketRow, Timestamp,
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
    const MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::vault::seal::Sealer;
    use crate::vault::{digest, now};

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
    async fn key_check_first_value_wins() {
        let db = TempDb::new();
        let store = db.store().await;
        assert_eq!(store.key_check().await.unwrap(), None);
        store.set_key_check("v1.first").await.unwrap();
        store.set_key_check("v1.second").await.unwrap();
        assert_eq!(
            store.key_check().await.unwrap().as_deref(),
            Some("v1.first")
        );
    }

    #[tokio::test]
    async fn connection_round_trip_and_versions() {
        let db = TempDb::new();
        let store = db.store().await;
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

    #[tokio::test]
    async fn mark_broken_then_reconnect() {
        let db = TempDb::new();
        let store = db.store().await;
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
        assert_eq!(got.version, 1);
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

    #[tokio::test]
    async fn swap_tokens_is_compare_and_swap() {
        let db = TempDb::new();
        let store = db.store().await;
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

        // A connection that is gone cannot be swapped.
        let mut ghost = seen.clone();
        ghost.user = "bob".into();
        assert!(!store.swap_tokens(&ghost, 1).await.unwrap());
    }

    #[tokio::test]
    async fn states_are_taken_once_and_not_after_expiry() {
        let db = TempDb::new();
        let store = db.store().await;
        let t = now();
        let state = StateRow {
            state_hash: digest("state-1"),
            user: "alice".into(),
            provider: "bitbucket".into(),
            pkce_verifier: Sealer::new([5; 32]).seal("alice", "bitbucket", "verifier"),
            scopes: "repository account".into(),
            elicitation_id: Some("el-9".into()),
            expires_at: t + 600,
        };
        store.put_state(&state).await.unwrap();
        assert!(store.put_state(&state).await.is_err(), "a state is unique");
        assert_eq!(
            store.take_state(&state.state_hash, t).await.unwrap(),
            Some(state.clone())
        );
        assert_eq!(store.take_state(&state.state_hash, t).await.unwrap(), None);

        let old = StateRow {
            state_hash: digest("state-2"),
            elicitation_id: None,
            expires_at: t + 10,
            ..state.clone()
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

    #[tokio::test]
    async fn tickets_peek_take_and_expire() {
        let db = TempDb::new();
        let store = db.store().await;
        let t = now();
        let row = ticket("ticket-1", t + 600);
        store.put_ticket(&row).await.unwrap();
        assert_eq!(
            store.ticket(&row.ticket_hash, t).await.unwrap(),
            Some(row.clone())
        );
        assert_eq!(
            store.ticket(&row.ticket_hash, t).await.unwrap(),
            Some(row.clone())
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
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_take_ticket_gives_it_once() {
        let db = TempDb::new();
        let store = Arc::new(db.store().await);
        let t = now();
        let row = ticket("contended", t + 600);
        store.put_ticket(&row).await.unwrap();
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let store = store.clone();
                let hash = row.ticket_hash.clone();
                tokio::spawn(async move { store.take_ticket(&hash, t).await })
            })
            .collect();
        let mut won = 0;
        for task in tasks {
            if task.await.unwrap().unwrap().is_some() {
                won += 1;
            }
        }
        assert_eq!(won, 1);
    }

    #[tokio::test]
    async fn purge_removes_only_expired() {
        let db = TempDb::new();
        let store = db.store().await;
        let t = now();
        store.put_ticket(&ticket("old", t - 1)).await.unwrap();
        store.put_ticket(&ticket("edge", t)).await.unwrap();
        store.put_ticket(&ticket("live", t + 600)).await.unwrap();
        let state = |secret: &str, expires_at| StateRow {
            state_hash: digest(secret),
            user: "alice".into(),
            provider: "buddy".into(),
            pkce_verifier: "v1.x".into(),
            scopes: String::new(),
            elicitation_id: None,
            expires_at,
        };
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

    #[tokio::test]
    async fn api_keys_round_trip() {
        let db = TempDb::new();
        let store = db.store().await;
        let key = |id: &str, secret: &str, user: &str, at| ApiKeyRow {
            id: id.into(),
            key_hash: digest(secret),
            user: user.into(),
            created_at: at,
        };
        let a1 = key("dg_a1", "secret-a1", "alice", 100);
        let a2 = key("dg_a2", "secret-a2", "alice", 200);
        let b1 = key("dg_b1", "secret-b1", "bob", 150);
        for k in [&a2, &a1, &b1] {
            store.put_api_key(k).await.unwrap();
        }
        assert!(
            store
                .put_api_key(&key("dg_zz", "secret-a1", "eve", 1))
                .await
                .is_err()
        );
        assert!(
            store
                .put_api_key(&key("dg_a1", "other", "eve", 1))
                .await
                .is_err()
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
            store.api_keys("alice").await.unwrap(),
            vec![a1.clone(), a2.clone()]
        );
        assert_eq!(store.api_keys("bob").await.unwrap(), vec![b1.clone()]);

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
