//! Access tokens for calls: the stored token while it is fresh, a refresh when it is about to expire
//! (or after the provider said 401), one refresh at a time per (user, provider).
//!
//! Single-flight is keyed by the pair, never by provider or host alone: two users' refreshes never
//! merge, and 50 concurrent calls of one user at expiry make one token request. Across processes the
//! store's compare-and-swap on the row's version keeps a losing refresh from overwriting the winner's
//! rotated tokens.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use crate::config::Secret;
use crate::oauth::{OAuthClient, OAuthError};
use crate::vault::{Connection, ConnectionStatus, StoreError, Timestamp, Vault, now};

/// Where the token manager reads the time: expiry, the refresh margin and leases. Tests move a clock
/// by hand; tokio's paused clock cannot serve here, since it jumps ahead to the store pool's timers
/// while SQLite's worker thread answers.
enum Clock {
    System,
    #[cfg(test)]
    Manual(Arc<std::sync::atomic::AtomicI64>),
}

impl Clock {
    fn now(&self) -> Timestamp {
        match self {
            Clock::System => now(),
            #[cfg(test)]
            Clock::Manual(t) => t.load(std::sync::atomic::Ordering::SeqCst),
        }
    }
}

/// A usable access token.
pub struct Access {
    pub token: Secret,
    /// The row version the token came from, to tell after a 401 whether someone refreshed since.
    pub version: i64,
    pub scopes: BTreeSet<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("not connected")]
    NotConnected,
    /// The grant is dead (refused refresh, revoked): the user must connect again.
    #[error("the connection needs to be renewed: {0}")]
    Broken(String),
    /// The token endpoint failed; the stored tokens are kept.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Hands out access tokens and refreshes them.
pub struct TokenManager {
    vault: Arc<Vault>,
    clients: HashMap<String, Arc<OAuthClient>>,
    margin_secs: i64,
    locks: Mutex<HashMap<(String, String), RefreshLock>>,
    /// This process's name on refresh leases.
    holder: String,
    lease_secs: i64,
    /// How long a call waits for another holder's refresh before giving up.
    lease_wait: std::time::Duration,
    clock: Clock,
}

/// The outcome of waiting for a refresh lease.
enum Leased {
    /// This process holds the lease; the row as read under it.
    Ours(Connection),
    /// Another holder renewed the tokens meanwhile.
    Renewed(Connection),
}

/// Held while one (user, provider) refreshes.
type RefreshLock = Arc<tokio::sync::Mutex<()>>;

impl TokenManager {
    /// `lease_secs` must outlast a token request (its timeout), so a live holder never loses the lease.
    pub fn new(
        vault: Arc<Vault>,
        clients: HashMap<String, Arc<OAuthClient>>,
        margin_secs: u64,
        lease_secs: u64,
    ) -> Self {
        Self {
            vault,
            clients,
            margin_secs: margin_secs as i64,
            locks: Mutex::default(),
            holder: format!(
                "{}-{}",
                std::process::id(),
                base64::Engine::encode(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    rand::random::<[u8; 9]>()
                )
            ),
            lease_secs: lease_secs as i64,
            lease_wait: std::time::Duration::from_secs(lease_secs + 5),
            clock: Clock::System,
        }
    }

    fn lock_for(&self, user: &str, provider: &str) -> RefreshLock {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks
            .entry((user.to_string(), provider.to_string()))
            .or_default()
            .clone()
    }

    fn fresh(&self, c: &Connection) -> bool {
        c.row
            .expires_at
            .is_none_or(|at| at - self.clock.now() > self.margin_secs)
    }

    fn access(c: Connection) -> Access {
        Access {
            token: c.access_token,
            version: c.row.version,
            scopes: c
                .row
                .scopes
                .split_whitespace()
                .map(str::to_string)
                .collect(),
        }
    }

    /// The stored connection; one whose tokens do not open (another key, a row copied from another
    /// user) is as good as broken: the user reconnects.
    async fn stored(&self, user: &str, provider: &str) -> Result<Connection, TokenError> {
        match self.vault.connection(user, provider).await {
            Ok(Some(c)) => Ok(c),
            Ok(None) => Err(TokenError::NotConnected),
            Err(StoreError::Seal) => Err(TokenError::Broken(
                "the stored tokens cannot be opened with this gateway's key".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// A token for a call: the stored one if fresh, else a refreshed one.
    pub async fn token(&self, user: &str, provider: &str) -> Result<Access, TokenError> {
        let c = self.stored(user, provider).await?;
        if c.row.status == ConnectionStatus::Broken {
            return Err(TokenError::Broken(c.row.status_detail.unwrap_or_default()));
        }
        if self.fresh(&c) {
            return Ok(Self::access(c));
        }
        self.refresh(user, provider, c.row.version, false).await
    }

    /// After the provider rejected the token of `version` with 401: refresh once, unless someone did.
    pub async fn renew_rejected(
        &self,
        user: &str,
        provider: &str,
        version: i64,
    ) -> Result<Access, TokenError> {
        self.refresh(user, provider, version, true).await
    }

    async fn refresh(
        &self,
        user: &str,
        provider: &str,
        seen: i64,
        rejected: bool,
    ) -> Result<Access, TokenError> {
        let lock = self.lock_for(user, provider);
        let _one_at_a_time = lock.lock().await;
        let c = self.stored(user, provider).await?;
        if c.row.status == ConnectionStatus::Broken {
            return Err(TokenError::Broken(c.row.status_detail.unwrap_or_default()));
        }
        // Someone refreshed while this call waited for the lock.
        if c.row.version != seen && self.fresh(&c) {
            return Ok(Self::access(c));
        }
        if !rejected && self.fresh(&c) {
            return Ok(Self::access(c));
        }
        // Across processes and instances: one holder of the row's lease refreshes; the others wait for
        // its new tokens (bounded), so a rotating refresh token is presented once.
        let c = match self.lease(user, provider, c).await? {
            Leased::Ours(c) => c,
            Leased::Renewed(c) => return Ok(Self::access(c)),
        };
        let outcome = self.renew(user, provider, c).await;
        crate::metrics::global().refresh(provider, outcome.is_ok());
        tell_call(provider, rejected, &outcome);
        if let Err(e) = self
            .vault
            .store
            .release_refresh_lease(user, provider, &self.holder)
            .await
        {
            tracing::warn!(error = %e, "could not release a refresh lease; it expires on its own");
        }
        outcome
    }

    /// Waits for the refresh lease, or for another holder's renewed tokens.
    async fn lease(
        &self,
        user: &str,
        provider: &str,
        mut c: Connection,
    ) -> Result<Leased, TokenError> {
        let deadline = tokio::time::Instant::now() + self.lease_wait;
        loop {
            let t = self.clock.now();
            if self
                .vault
                .store
                .take_refresh_lease(user, provider, &self.holder, t, t + self.lease_secs)
                .await?
            {
                // The lease may have been freed by a holder that just renewed: read the row again.
                let latest = self.stored(user, provider).await?;
                if latest.row.version != c.row.version && self.fresh(&latest) {
                    self.vault
                        .store
                        .release_refresh_lease(user, provider, &self.holder)
                        .await?;
                    return Ok(Leased::Renewed(latest));
                }
                return Ok(Leased::Ours(latest));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(TokenError::Unavailable(
                    "another devgate instance is renewing this connection; try again in a moment"
                        .into(),
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let latest = self.stored(user, provider).await?;
            if latest.row.status == ConnectionStatus::Broken {
                return Err(TokenError::Broken(
                    latest.row.status_detail.unwrap_or_default(),
                ));
            }
            if latest.row.version != c.row.version && self.fresh(&latest) {
                return Ok(Leased::Renewed(latest));
            }
            c = latest;
        }
    }

    /// The token request itself, with the lease held, and storing its answer.
    async fn renew(&self, user: &str, provider: &str, c: Connection) -> Result<Access, TokenError> {
        let Some(refresh_token) = c.refresh_token.clone() else {
            let detail =
                "the provider gave no refresh token and the access token expired".to_string();
            self.vault
                .store
                .mark_broken(user, provider, &detail, c.row.version)
                .await?;
            return Err(TokenError::Broken(detail));
        };
        let client = self.clients.get(provider).ok_or_else(|| {
            TokenError::Unavailable(format!("{provider} has no OAuth client configured"))
        })?;
        tracing::debug!(user, provider, "refreshing an access token");
        match client.refresh(refresh_token.expose()).await {
            Ok(set) => {
                let mut row = c.row.clone();
                row.access_token = self.vault.seal(user, provider, set.access_token.expose());
                if let Some(new_refresh) = &set.refresh_token {
                    row.refresh_token = Some(self.vault.seal(user, provider, new_refresh.expose()));
                }
                row.expires_at = set.expires_in.map(|s| self.clock.now() + s as i64);
                if let Some(scopes) = &set.scopes {
                    row.scopes = scopes.join(" ");
                }
                row.updated_at = self.clock.now();
                if self.vault.store.swap_tokens(&row, c.row.version).await? {
                    Ok(Access {
                        token: set.access_token,
                        version: c.row.version + 1,
                        scopes: row.scopes.split_whitespace().map(str::to_string).collect(),
                    })
                } else {
                    // Another process refreshed first; its tokens are the ones to use.
                    Ok(Self::access(self.stored(user, provider).await?))
                }
            }
            Err(OAuthError::Rejected {
                code, description, ..
            }) => {
                let detail = format!(
                    "{} refused the refresh ({code}{})",
                    client.provider(),
                    description.map(|d| format!(": {d}")).unwrap_or_default()
                );
                if self
                    .vault
                    .store
                    .mark_broken(user, provider, &detail, c.row.version)
                    .await?
                {
                    return Err(TokenError::Broken(detail));
                }
                // Refused because another process rotated the token meanwhile: use its tokens.
                Ok(Self::access(self.stored(user, provider).await?))
            }
            Err(e) => Err(TokenError::Unavailable(e.to_string())),
        }
    }
}

/// Tells the call that needed the refresh how it went (never a token: only the outcome).
fn tell_call(provider: &str, rejected: bool, outcome: &Result<Access, TokenError>) {
    use crate::call_log::{Refreshed, token_refresh};
    match outcome {
        Ok(_) => token_refresh(provider, Refreshed::Renewed { rejected }),
        Err(TokenError::Broken(detail)) => token_refresh(provider, Refreshed::Refused(detail)),
        Err(e) => token_refresh(provider, Refreshed::Unavailable(&e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    //! The token manager over a real store (SQLite in memory) and no provider: what it hands out, when
    //! it declines to refresh, and what it writes down when a connection cannot be renewed. Refreshes
    //! against a token endpoint are covered end to end (tests/it/refresh.rs, instances.rs, crash.rs).

    use std::collections::HashMap;
    use std::sync::Arc;

    use std::sync::atomic::{AtomicI64, Ordering};

    use super::{Clock, TokenError, TokenManager};
    use crate::vault::seal::Sealer;
    use crate::vault::sqlite::SqliteStore;
    use crate::vault::{ConnectionRow, ConnectionStatus, Store, Vault, now};

    async fn vault() -> Arc<Vault> {
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        Arc::new(Vault::new(Arc::new(store), Sealer::new([7; 32])))
    }

    /// Stores alice's bitbucket connection whose access token expires `expires_in` seconds from now.
    async fn connect(vault: &Vault, expires_in: Option<i64>, refresh: Option<&str>) {
        let row = ConnectionRow {
            user: "alice".into(),
            provider: "bitbucket".into(),
            access_token: vault.seal("alice", "bitbucket", "access-1"),
            refresh_token: refresh.map(|r| vault.seal("alice", "bitbucket", r)),
            expires_at: expires_in.map(|s| now() + s),
            scopes: "repository pullrequest".into(),
            account: "Ann Dev".into(),
            account_id: "ann".into(),
            status: ConnectionStatus::Active,
            status_detail: None,
            version: 1,
            updated_at: now(),
        };
        vault.store.save_connection(&row).await.unwrap();
    }

    /// A manager with no OAuth client for any provider, refreshing 60 s before expiry.
    fn manager(vault: &Arc<Vault>) -> TokenManager {
        TokenManager::new(vault.clone(), HashMap::new(), 60, 5)
    }

    #[tokio::test]
    async fn a_user_without_a_connection_is_told_to_connect() {
        let vault = vault().await;
        let err = manager(&vault).token("alice", "bitbucket").await.err();
        assert!(matches!(err, Some(TokenError::NotConnected)), "{err:?}");
    }

    #[tokio::test]
    async fn a_fresh_token_and_one_that_never_expires_are_used_as_stored() {
        for expires_in in [Some(3600), None] {
            let vault = vault().await;
            connect(&vault, expires_in, Some("refresh-1")).await;
            let access = manager(&vault).token("alice", "bitbucket").await.unwrap();
            assert_eq!(access.token.expose(), "access-1");
            assert_eq!(access.version, 1);
            assert!(access.scopes.contains("pullrequest") && access.scopes.len() == 2);
        }
    }

    /// Inside the margin the token counts as expired: with no OAuth client to refresh through, the
    /// call gets a retryable error and the stored tokens stay as they are.
    #[tokio::test]
    async fn a_token_inside_the_margin_is_refreshed_and_a_failed_refresh_keeps_the_tokens() {
        let vault = vault().await;
        connect(&vault, Some(30), Some("refresh-1")).await;
        let err = manager(&vault).token("alice", "bitbucket").await.err();
        assert!(
            matches!(&err, Some(TokenError::Unavailable(m)) if m.contains("no OAuth client")),
            "{err:?}"
        );
        let kept = vault
            .connection("alice", "bitbucket")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(kept.row.status, ConnectionStatus::Active);
        assert_eq!(kept.refresh_token.unwrap().expose(), "refresh-1");
        assert_eq!(kept.row.version, 1);
    }

    /// An expired token without a refresh token cannot be renewed: the connection is marked broken,
    /// saying why, and every later call is told to reconnect without trying again.
    #[tokio::test]
    async fn an_expired_token_without_a_refresh_token_breaks_the_connection() {
        let vault = vault().await;
        connect(&vault, Some(-10), None).await;
        let tokens = manager(&vault);
        for _ in 0..2 {
            let err = tokens.token("alice", "bitbucket").await.err();
            assert!(
                matches!(&err, Some(TokenError::Broken(m)) if m.contains("no refresh token")),
                "{err:?}"
            );
        }
        let row = vault
            .connection("alice", "bitbucket")
            .await
            .unwrap()
            .unwrap()
            .row;
        assert_eq!(row.status, ConnectionStatus::Broken);
    }

    /// A 401 on a token someone already replaced takes the replacement, with no refresh.
    #[tokio::test]
    async fn a_rejected_token_already_replaced_is_not_refreshed_again() {
        let vault = vault().await;
        connect(&vault, Some(3600), Some("refresh-1")).await;
        let tokens = manager(&vault);
        let access = tokens
            .renew_rejected("alice", "bitbucket", 0)
            .await
            .unwrap();
        assert_eq!((access.token.expose(), access.version), ("access-1", 1));
    }

    /// Tokens sealed for one user do not open as another's: that row is broken, not an error page.
    #[tokio::test]
    async fn a_row_sealed_for_someone_else_asks_to_reconnect() {
        let vault = vault().await;
        connect(&vault, Some(3600), None).await;
        let mut row = vault
            .store
            .connection("alice", "bitbucket")
            .await
            .unwrap()
            .unwrap();
        row.user = "mallory".into();
        vault.store.save_connection(&row).await.unwrap();
        let err = manager(&vault).token("mallory", "bitbucket").await.err();
        assert!(matches!(err, Some(TokenError::Broken(_))), "{err:?}");
    }

    /// A manager like [`manager`] reading a clock the test moves; the clock starts at the real time.
    fn manager_at(vault: &Arc<Vault>) -> (TokenManager, Arc<AtomicI64>) {
        let clock = Arc::new(AtomicI64::new(now()));
        let mut tokens = manager(vault);
        tokens.clock = Clock::Manual(clock.clone());
        (tokens, clock)
    }

    /// The stored token serves until it is inside the 60 s margin before expiry, then a refresh is
    /// tried (here it fails: no OAuth client, so the call is told to try again).
    #[tokio::test]
    async fn a_token_serves_until_the_margin_then_a_refresh_is_tried() {
        let vault = vault().await;
        connect(&vault, Some(120), Some("refresh-1")).await;
        let (tokens, clock) = manager_at(&vault);
        for _ in 0..2 {
            let access = tokens.token("alice", "bitbucket").await.unwrap();
            assert_eq!(access.token.expose(), "access-1");
            clock.fetch_add(29, Ordering::SeqCst);
        }
        clock.fetch_add(3, Ordering::SeqCst); // 61 s later: 59 s left, inside the margin.
        let err = tokens.token("alice", "bitbucket").await.err();
        assert!(
            matches!(&err, Some(TokenError::Unavailable(m)) if m.contains("no OAuth client")),
            "{err:?}"
        );
    }

    /// Another instance's refresh lease is honoured while it lasts; once it has run out (that instance
    /// died mid-refresh) this one takes the lease over and refreshes itself, then lets the lease go.
    #[tokio::test]
    async fn a_lease_left_by_a_dead_instance_is_taken_over_once_it_runs_out() {
        let vault = vault().await;
        connect(&vault, Some(-10), Some("refresh-1")).await;
        let (tokens, clock) = manager_at(&vault);
        let t = clock.load(Ordering::SeqCst);
        assert!(
            vault
                .store
                .take_refresh_lease("alice", "bitbucket", "dead-instance", t, t + 5)
                .await
                .unwrap()
        );
        clock.fetch_add(6, Ordering::SeqCst);
        let err = tokens.token("alice", "bitbucket").await.err();
        assert!(
            matches!(&err, Some(TokenError::Unavailable(m)) if m.contains("no OAuth client")),
            "this instance refreshed itself: {err:?}"
        );
        // Released: a third instance gets the lease at once.
        let t = clock.load(Ordering::SeqCst);
        assert!(
            vault
                .store
                .take_refresh_lease("alice", "bitbucket", "third", t, t + 5)
                .await
                .unwrap()
        );
    }
}
