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
use crate::vault::{Connection, ConnectionStatus, StoreError, Vault, now};

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
}

/// Held while one (user, provider) refreshes.
type RefreshLock = Arc<tokio::sync::Mutex<()>>;

impl TokenManager {
    pub fn new(
        vault: Arc<Vault>,
        clients: HashMap<String, Arc<OAuthClient>>,
        margin_secs: u64,
    ) -> Self {
        Self {
            vault,
            clients,
            margin_secs: margin_secs as i64,
            locks: Mutex::default(),
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
            .is_none_or(|at| at - now() > self.margin_secs)
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
                row.expires_at = set.expires_in.map(|s| now() + s as i64);
                if let Some(scopes) = &set.scopes {
                    row.scopes = scopes.join(" ");
                }
                row.updated_at = now();
                if self.vault.store.swap_tokens(&row, c.row.version).await? {
                    Ok(Access {
                        token: set.access_token,
                        version: c.row.version + 1,
                        scopes: row.scopes.split_whitespace().map(str::to_string).collect(),
                    })
                } else {
                    // Another process refreshed first; its tokens are the ones to use.
                    let winner = self
                        .vault
                        .connection(user, provider)
                        .await?
                        .ok_or(TokenError::NotConnected)?;
                    Ok(Self::access(winner))
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
                let winner = self
                    .vault
                    .connection(user, provider)
                    .await?
                    .ok_or(TokenError::NotConnected)?;
                Ok(Self::access(winner))
            }
            Err(e) => Err(TokenError::Unavailable(e.to_string())),
        }
    }
}
