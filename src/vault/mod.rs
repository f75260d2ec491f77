//! The vault: where devgate keeps what it holds on users' behalf.
//!
//! - [`Store`] is the storage contract (connections, OAuth states, connect tickets, API keys, confirm
//!   tickets, used request states, and the authorization server's clients, codes, grants, tokens and
//!   consents: [`auth::AuthStore`]), with an SQLite implementation ([`sqlite::SqliteStore`]) and a
//!   PostgreSQL one for several instances sharing a store (`postgres::PgStore`); and the tasks of long runs
//!   ([`tasks::TaskStore`]).
//! - [`seal::Sealer`] encrypts provider tokens with AES-256-GCM before they reach a store; the
//!   additional data binds each sealed value to its (user, provider), so a value copied to another row
//!   does not open.
//! - [`key`] finds the sealing key: `DEVGATE_SECRET_KEY`, or a 0600 key file created on first run.
//!   Keys for other purposes (the confirmation MAC) are derived from it with HKDF, never used raw.
//!
//! Stores never see a plaintext token, a state value, a flow cookie or a ticket: tokens arrive sealed,
//! and states, flow cookies, tickets and API keys are kept as their SHA-256 ([`digest`]).

pub mod auth;
pub mod key;
mod migrations;
pub(crate) mod postgres;
pub mod seal;
pub(crate) mod sql;
pub mod sqlite;
#[cfg(test)]
mod store_tests;
pub mod tasks;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

/// Seconds since the Unix epoch.
pub type Timestamp = i64;

pub fn now() -> Timestamp {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Hex SHA-256 of a secret, the only form in which states, tickets and API keys are stored.
pub fn digest(secret: &str) -> String {
    let hash = Sha256::digest(secret.as_bytes());
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store at {location} cannot be opened: {detail}")]
    Open { location: String, detail: String },
    #[error("the store failed: {0}")]
    Backend(String),
    #[error("a sealed value does not open with this key (wrong DEVGATE_SECRET_KEY or key file?)")]
    Seal,
}

/// Whether a connection can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionStatus {
    Active,
    /// The provider refused its refresh token (`invalid_grant`, `invalid_client`): reconnect.
    Broken,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Active => "active",
            ConnectionStatus::Broken => "broken",
        }
    }

    pub fn parse(text: &str) -> Self {
        if text == "broken" {
            ConnectionStatus::Broken
        } else {
            ConnectionStatus::Active
        }
    }
}

/// A user's connection to a provider. Token fields are sealed ([`seal::Sealer`]).
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionRow {
    pub user: String,
    pub provider: String,
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// When the access token expires; `None` for tokens that never do (old Buddy apps).
    pub expires_at: Option<Timestamp>,
    /// Granted scopes, space-separated, as the provider reported them (or as requested).
    pub scopes: String,
    /// The provider account's display name and stable id (from the catalog's `whoami`).
    pub account: String,
    pub account_id: String,
    pub status: ConnectionStatus,
    /// Why the connection broke, for status output.
    pub status_detail: Option<String>,
    /// Bumped on every token change: refreshes compare-and-swap on it.
    pub version: i64,
    pub updated_at: Timestamp,
}

impl std::fmt::Debug for ConnectionRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionRow")
            .field("user", &self.user)
            .field("provider", &self.provider)
            .field("account", &self.account)
            .field("expires_at", &self.expires_at)
            .field("status", &self.status)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// A pending authorization: created when the user clicks Connect, consumed by the callback.
#[derive(Clone, PartialEq, Eq)]
pub struct StateRow {
    /// SHA-256 of the `state` value sent to the provider.
    pub state_hash: String,
    pub user: String,
    pub provider: String,
    /// The PKCE verifier, sealed for (user, provider).
    pub pkce_verifier: String,
    /// Scopes requested, space-separated.
    pub scopes: String,
    /// The elicitation this connect answers, if an agent asked through one.
    pub elicitation_id: Option<String>,
    /// SHA-256 of the flow cookie given to the browser that clicked Connect: the callback must come
    /// from that browser.
    pub browser_hash: String,
    pub expires_at: Timestamp,
}

impl std::fmt::Debug for StateRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateRow")
            .field("user", &self.user)
            .field("provider", &self.provider)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A connect link's ticket: bound to a user and provider, single use, short-lived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRow {
    /// SHA-256 of the ticket in the link.
    pub ticket_hash: String,
    pub user: String,
    pub provider: String,
    /// Scopes to ask for, space-separated.
    pub scopes: String,
    pub elicitation_id: Option<String>,
    pub expires_at: Timestamp,
}

/// An API key for HTTP callers; only its hash is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    /// A short public id (the key's first characters), to name the key in lists and revocations.
    pub id: String,
    pub key_hash: String,
    pub user: String,
    pub created_at: Timestamp,
    /// The user's groups for `[[policies]]` while calling with this key.
    pub groups: Vec<String>,
}

/// A confirm-page ticket (see [`crate::confirm`]): bound to a user, a tool and a binding digest over
/// the arguments and summary; approved once on the page, then taken once by the retried call.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfirmationRow {
    /// SHA-256 of the ticket in the link.
    pub ticket_hash: String,
    /// Hex SHA-256 over user, tool, canonical arguments and summary.
    pub binding: String,
    pub user: String,
    pub tool: String,
    /// What the page shows, sealed for (user, `devgate-confirm`): it can quote arguments.
    pub summary: String,
    pub approved: bool,
    pub expires_at: Timestamp,
}

impl std::fmt::Debug for ConfirmationRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfirmationRow")
            .field("user", &self.user)
            .field("tool", &self.tool)
            .field("approved", &self.approved)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// One tool call as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditRecord {
    pub at: Timestamp,
    pub user: String,
    pub tool: String,
    pub provider: String,
    /// The resource the call was about, by its identifiers (`workspace=acme, repo_slug=api`).
    pub target: String,
    pub outcome: String,
    pub duration_ms: i64,
    pub request_id: String,
    /// The `[[policies]]` decision for the call (empty without policies).
    pub policy: String,
}

/// Persistent state. Every method is one atomic step: `take_*` reads and deletes (a ticket: marks used)
/// in one statement, so a state or ticket can be used once even when two requests race for it.
#[async_trait]
pub trait Store: auth::AuthStore + tasks::TaskStore + Send + Sync {
    /// Runs the schema migrations.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Appends tool calls to the audit log.
    async fn record_calls(&self, records: &[AuditRecord]) -> Result<(), StoreError>;
    /// The audit log since `since`, newest first, at most `limit` rows, for one user or all.
    async fn audit(
        &self,
        user: Option<&str>,
        since: Timestamp,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError>;
    /// Whether the store answers (for readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// A value sealed with the key when the store was first used, to tell a wrong key at start-up.
    async fn key_check(&self) -> Result<Option<String>, StoreError>;
    async fn set_key_check(&self, sealed: &str) -> Result<(), StoreError>;

    async fn connection(
        &self,
        user: &str,
        provider: &str,
    ) -> Result<Option<ConnectionRow>, StoreError>;
    async fn connections(&self, user: &str) -> Result<Vec<ConnectionRow>, StoreError>;
    /// Inserts or replaces the connection of (row.user, row.provider); sets `version` to the old + 1.
    async fn save_connection(&self, row: &ConnectionRow) -> Result<(), StoreError>;
    /// Replaces the tokens only if the stored version is still `expected_version` (a refresh that lost
    /// a race does not overwrite the winner's rotated tokens). Returns whether it replaced them.
    async fn swap_tokens(
        &self,
        row: &ConnectionRow,
        expected_version: i64,
    ) -> Result<bool, StoreError>;
    /// Marks the connection broken, only if it is still at `expected_version`: a refresh refused because
    /// another process already rotated the token must not break the connection that process renewed.
    /// Returns whether it marked it.
    async fn mark_broken(
        &self,
        user: &str,
        provider: &str,
        detail: &str,
        expected_version: i64,
    ) -> Result<bool, StoreError>;
    /// Takes the right to refresh the connection's tokens for `holder` until `until`, unless another
    /// holder has an unexpired lease at `now`. One refresh at a time across every process sharing the
    /// store; a holder that dies loses the lease when it expires. Returns whether it was taken.
    async fn take_refresh_lease(
        &self,
        user: &str,
        provider: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Gives the lease back, if `holder` still has it.
    async fn release_refresh_lease(
        &self,
        user: &str,
        provider: &str,
        holder: &str,
    ) -> Result<(), StoreError>;
    /// Returns whether a row was deleted.
    async fn delete_connection(&self, user: &str, provider: &str) -> Result<bool, StoreError>;

    async fn put_state(&self, row: &StateRow) -> Result<(), StoreError>;
    /// Removes and returns the state if it exists and has not expired at `now`.
    async fn take_state(
        &self,
        state_hash: &str,
        now: Timestamp,
    ) -> Result<Option<StateRow>, StoreError>;

    async fn put_ticket(&self, row: &TicketRow) -> Result<(), StoreError>;
    /// The ticket, if it exists and has not expired at `now`, without using it up.
    async fn ticket(
        &self,
        ticket_hash: &str,
        now: Timestamp,
    ) -> Result<Option<TicketRow>, StoreError>;
    /// Uses the ticket up and returns it, if it exists, is unused and has not expired at `now`. The used
    /// ticket stays (marked) until it expires, for [`Store::ticket_used`].
    async fn take_ticket(
        &self,
        ticket_hash: &str,
        now: Timestamp,
    ) -> Result<Option<TicketRow>, StoreError>;

    /// Whether this ticket was used (and has not been purged since), so its page can say so.
    async fn ticket_used(&self, ticket_hash: &str) -> Result<bool, StoreError>;

    async fn put_api_key(&self, row: &ApiKeyRow) -> Result<(), StoreError>;
    /// The API key with this hash, with its user and groups.
    async fn api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRow>, StoreError>;
    async fn api_keys(&self, user: &str) -> Result<Vec<ApiKeyRow>, StoreError>;
    /// Every user's keys, by user, oldest first (`devgate keys list` without a user).
    async fn all_api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError>;
    /// Deletes the user's key with this public id; returns whether one was deleted.
    async fn revoke_api_key(&self, user: &str, id: &str) -> Result<bool, StoreError>;

    /// Deletes states, tickets, confirmations and used request states that expired before `now`.
    async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError>;

    async fn put_confirmation(&self, row: &ConfirmationRow) -> Result<(), StoreError>;
    /// The confirmation behind a ticket, if it has not expired at `now` and is not yet approved.
    async fn confirmation(
        &self,
        ticket_hash: &str,
        now: Timestamp,
    ) -> Result<Option<ConfirmationRow>, StoreError>;
    /// Marks the confirmation approved and returns it, only if it was unexpired and not yet approved
    /// (two clicks racing approve it once).
    async fn approve_confirmation(
        &self,
        ticket_hash: &str,
        now: Timestamp,
    ) -> Result<Option<ConfirmationRow>, StoreError>;
    /// Deletes the unexpired approved confirmations of `binding`; returns whether there was one.
    async fn take_approval(&self, binding: &str, now: Timestamp) -> Result<bool, StoreError>;
    /// Records a `requestState` nonce (by hash) as used until `expires_at`; returns false when it was
    /// recorded before.
    async fn use_request_state(
        &self,
        nonce_hash: &str,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError>;
}

/// Opens the store a URL names: `sqlite://…` or `postgres://…` (`postgresql://…`).
pub async fn open_store(url: &str) -> Result<std::sync::Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(std::sync::Arc::new(postgres::PgStore::open(url).await?))
    } else {
        Err(StoreError::Open {
            location: url.split(':').next().unwrap_or_default().to_string(),
            detail: "store.url must start with sqlite:// or postgres://".into(),
        })
    }
}

/// A connection with its tokens opened.
#[derive(Clone)]
pub struct Connection {
    pub row: ConnectionRow,
    pub access_token: crate::config::Secret,
    pub refresh_token: Option<crate::config::Secret>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.row.fmt(f)
    }
}

/// The store plus the sealing key: what the rest of devgate talks to.
pub struct Vault {
    pub store: std::sync::Arc<dyn Store>,
    sealer: seal::Sealer,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault")
    }
}

impl Vault {
    pub fn new(store: std::sync::Arc<dyn Store>, sealer: seal::Sealer) -> Self {
        Self { store, sealer }
    }

    /// Checks the key against the store's key-check value, writing one on first use (and reading it
    /// back, so two first starts with different keys cannot both pass).
    pub async fn verify_key(&self) -> Result<(), StoreError> {
        if self.store.key_check().await?.is_none() {
            self.store.set_key_check(&self.sealer.seal_check()).await?;
        }
        match self.store.key_check().await? {
            Some(sealed) if self.sealer.verify_check(&sealed) => Ok(()),
            _ => Err(StoreError::Seal),
        }
    }

    pub fn seal(&self, user: &str, provider: &str, plaintext: &str) -> String {
        self.sealer.seal(user, provider, plaintext)
    }

    pub fn open(&self, user: &str, provider: &str, sealed: &str) -> Result<String, StoreError> {
        self.sealer.open(user, provider, sealed)
    }

    /// A key for another purpose (`info` names it), derived from the sealing key.
    pub fn derive_key(&self, info: &[u8]) -> [u8; 32] {
        self.sealer.derive_key(info)
    }

    /// The user's connection to a provider, tokens opened.
    pub async fn connection(
        &self,
        user: &str,
        provider: &str,
    ) -> Result<Option<Connection>, StoreError> {
        let Some(row) = self.store.connection(user, provider).await? else {
            return Ok(None);
        };
        self.opened(row).map(Some)
    }

    /// All of a user's connections, tokens opened.
    pub async fn connections(&self, user: &str) -> Result<Vec<Connection>, StoreError> {
        self.store
            .connections(user)
            .await?
            .into_iter()
            .map(|row| self.opened(row))
            .collect()
    }

    fn opened(&self, row: ConnectionRow) -> Result<Connection, StoreError> {
        let access_token =
            crate::config::Secret::new(self.open(&row.user, &row.provider, &row.access_token)?);
        let refresh_token = match &row.refresh_token {
            Some(sealed) => Some(crate::config::Secret::new(self.open(
                &row.user,
                &row.provider,
                sealed,
            )?)),
            None => None,
        };
        Ok(Connection {
            row,
            access_token,
            refresh_token,
        })
    }
}
