//! What devgate keeps as the authorization server of its own MCP endpoint ([`crate::auth_server`]):
//! registered clients, authorization codes, grants with their access and refresh tokens, remembered
//! consents. [`AuthStore`] is the contract (every [`super::Store`] is one); [`auth_sql_store!`] writes
//! its SQL once for SQLite and PostgreSQL. Codes and tokens are stored only as their SHA-256
//! ([`super::digest`]); nothing here is kept in memory, so any instance sharing the store can answer.

use async_trait::async_trait;

use super::{StoreError, Timestamp};

/// How a stored client came to be known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// Registered through `/register` (RFC 7591).
    Dynamic,
    /// Known by its Client ID Metadata Document: the client id is the document's https URL.
    Metadata,
}

impl ClientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Dynamic => "dynamic",
            ClientKind::Metadata => "metadata",
        }
    }

    pub fn parse(text: &str) -> Self {
        if text == "metadata" {
            ClientKind::Metadata
        } else {
            ClientKind::Dynamic
        }
    }
}

/// A client registered dynamically or known by its metadata document (config clients are not stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRow {
    pub client_id: String,
    pub kind: ClientKind,
    /// What the consent page calls the client.
    pub name: String,
    /// Exact redirect URIs; a request's must equal one of them.
    pub redirect_uris: Vec<String>,
    /// SHA-256 of the client secret, for a confidential client.
    pub secret_hash: Option<String>,
    pub created_at: Timestamp,
    /// A metadata document's cached copy is fetched again after this.
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// An authorization code and what it was issued for.
#[derive(Clone, PartialEq, Eq)]
pub struct CodeRow {
    pub code_hash: String,
    /// The grant the code becomes, chosen when it is issued (so a replay can revoke it).
    pub grant_id: String,
    pub user: String,
    pub groups: Vec<String>,
    pub client_id: String,
    /// Space-separated devgate scopes.
    pub scopes: String,
    pub resource: String,
    pub redirect_uri: String,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    pub expires_at: Timestamp,
}

impl std::fmt::Debug for CodeRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeRow")
            .field("grant_id", &self.grant_id)
            .field("user", &self.user)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// What one user let one client do at one resource.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GrantRow {
    pub id: String,
    pub user: String,
    pub groups: Vec<String>,
    pub client_id: String,
    pub scopes: String,
    pub resource: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// A token to store: its hash and when it expires.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash {
    pub hash: String,
    pub expires_at: Timestamp,
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenHash")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What taking an authorization code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeUse {
    /// Unused and unexpired: it is now used.
    Fresh(CodeRow),
    /// Used before: the grant it produced should be revoked.
    Replayed { grant_id: String },
    /// Unknown or expired.
    Unknown,
}

/// What presenting a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// It was current: it is now used, and the new tokens belong to the grant.
    Rotated(GrantRow),
    /// It was used before: someone holds a copy, so the grant should be revoked.
    Reused { grant_id: String },
    /// Unknown, expired, or its grant is revoked.
    Unknown,
}

/// Consent a user gave a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRow {
    pub user: String,
    pub client_id: String,
    pub scopes: String,
    pub created_at: Timestamp,
}

/// The authorization server's storage. Each method is atomic where it says "once".
#[async_trait]
pub trait AuthStore: Send + Sync {
    /// Inserts a client, or replaces a metadata client's cached copy (not one that was revoked).
    async fn put_client(&self, row: &ClientRow) -> Result<(), StoreError>;
    async fn client(&self, client_id: &str) -> Result<Option<ClientRow>, StoreError>;
    /// Every stored client, oldest first.
    async fn clients(&self) -> Result<Vec<ClientRow>, StoreError>;
    /// Dynamically registered clients that are not revoked (for the registration cap).
    async fn dynamic_client_count(&self) -> Result<i64, StoreError>;
    /// Marks the client revoked and revokes its grants and consents; returns whether it was live.
    async fn revoke_client(&self, client_id: &str, now: Timestamp) -> Result<bool, StoreError>;

    async fn put_code(&self, row: &CodeRow) -> Result<(), StoreError>;
    /// Uses the code up, once (see [`CodeUse`]).
    async fn take_code(&self, code_hash: &str, now: Timestamp) -> Result<CodeUse, StoreError>;

    /// Stores a new grant with its first access and refresh tokens, in one transaction.
    async fn create_grant(
        &self,
        grant: &GrantRow,
        access: &TokenHash,
        refresh: &TokenHash,
    ) -> Result<(), StoreError>;
    /// The live grant behind an unexpired access token.
    async fn access_grant(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<GrantRow>, StoreError>;
    /// Uses a refresh token up, once, and stores its successors (see [`Rotation`]).
    async fn rotate_refresh(
        &self,
        token_hash: &str,
        access: &TokenHash,
        refresh: &TokenHash,
        now: Timestamp,
    ) -> Result<Rotation, StoreError>;
    /// The grant a token (access or refresh, used or not) belongs to, for `/revoke`.
    async fn token_grant(&self, token_hash: &str) -> Result<Option<(String, bool)>, StoreError>;
    /// Deletes one access token.
    async fn delete_token(&self, token_hash: &str) -> Result<(), StoreError>;
    /// Marks the grant revoked and deletes its tokens; returns whether it was live.
    async fn revoke_grant(&self, grant_id: &str, now: Timestamp) -> Result<bool, StoreError>;
    /// The grant with this id, if it is live.
    async fn grant(&self, grant_id: &str) -> Result<Option<GrantRow>, StoreError>;
    /// Live grants, of one user or all, oldest first.
    async fn grants(&self, user: Option<&str>) -> Result<Vec<GrantRow>, StoreError>;

    async fn consent(&self, user: &str, client_id: &str) -> Result<Option<ConsentRow>, StoreError>;
    async fn put_consent(&self, row: &ConsentRow) -> Result<(), StoreError>;
    /// Forgets a consent; returns whether there was one.
    async fn withdraw_consent(&self, user: &str, client_id: &str) -> Result<bool, StoreError>;

    /// Deletes codes and tokens that expired before `now`.
    async fn purge_auth(&self, now: Timestamp) -> Result<u64, StoreError>;
}

/// Groups as stored: a JSON array.
pub(crate) fn groups_to_text(groups: &[String]) -> String {
    serde_json::to_string(groups).unwrap_or_else(|_| "[]".into())
}

pub(crate) fn groups_from_text(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// Implements [`AuthStore`] for `$store` (rows `$row`), in a module where `sql_store!` already ran.
macro_rules! auth_sql_store {
    ($store:ty, $row:ty) => {
        const GRANT_COLUMNS: &str =
            "id, user_id, groups, client_id, scopes, resource, created_at, revoked_at";

        fn client_row(row: &$row) -> Result<$crate::vault::auth::ClientRow, sqlx::Error> {
            let uris: String = row.try_get("redirect_uris")?;
            Ok($crate::vault::auth::ClientRow {
                client_id: row.try_get("client_id")?,
                kind: $crate::vault::auth::ClientKind::parse(row.try_get("kind")?),
                name: row.try_get("name")?,
                redirect_uris: $crate::vault::auth::groups_from_text(&uris),
                secret_hash: row.try_get("secret_hash")?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
                revoked_at: row.try_get("revoked_at")?,
            })
        }

        fn grant_row(row: &$row) -> Result<$crate::vault::auth::GrantRow, sqlx::Error> {
            let groups: String = row.try_get("groups")?;
            Ok($crate::vault::auth::GrantRow {
                id: row.try_get("id")?,
                user: row.try_get("user_id")?,
                groups: $crate::vault::auth::groups_from_text(&groups),
                client_id: row.try_get("client_id")?,
                scopes: row.try_get("scopes")?,
                resource: row.try_get("resource")?,
                created_at: row.try_get("created_at")?,
                revoked_at: row.try_get("revoked_at")?,
            })
        }

        fn code_row(row: &$row) -> Result<$crate::vault::auth::CodeRow, sqlx::Error> {
            let groups: String = row.try_get("groups")?;
            Ok($crate::vault::auth::CodeRow {
                code_hash: row.try_get("code_hash")?,
                grant_id: row.try_get("grant_id")?,
                user: row.try_get("user_id")?,
                groups: $crate::vault::auth::groups_from_text(&groups),
                client_id: row.try_get("client_id")?,
                scopes: row.try_get("scopes")?,
                resource: row.try_get("resource")?,
                redirect_uri: row.try_get("redirect_uri")?,
                code_challenge: row.try_get("code_challenge")?,
                expires_at: row.try_get("expires_at")?,
            })
        }

        impl $store {
            async fn insert_token(
                &self,
                grant_id: &str,
                kind: &str,
                token: &$crate::vault::auth::TokenHash,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO as_tokens (token_hash, grant_id, kind, used, expires_at) \
                     VALUES ($1, $2, $3, 0, $4)",
                )
                .bind(&token.hash)
                .bind(grant_id)
                .bind(kind)
                .bind(token.expires_at)
                .execute(&self.pool)
                .await
                .map(|_| ())
                .map_err(backend)
            }

            async fn live_grant(
                &self,
                grant_id: &str,
            ) -> Result<Option<$crate::vault::auth::GrantRow>, StoreError> {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {GRANT_COLUMNS} FROM as_grants WHERE id = $1 AND revoked_at IS NULL"
                )))
                .bind(grant_id)
                .try_map(|row: $row| grant_row(&row))
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)
            }
        }

        #[async_trait]
        impl $crate::vault::auth::AuthStore for $store {
            async fn put_client(
                &self,
                row: &$crate::vault::auth::ClientRow,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO as_clients (client_id, kind, name, redirect_uris, secret_hash, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (client_id) DO UPDATE SET name = excluded.name, \
                       redirect_uris = excluded.redirect_uris, expires_at = excluded.expires_at \
                     WHERE as_clients.kind = 'metadata' AND as_clients.revoked_at IS NULL",
                )
                .bind(&row.client_id)
                .bind(row.kind.as_str())
                .bind(&row.name)
                .bind($crate::vault::auth::groups_to_text(&row.redirect_uris))
                .bind(&row.secret_hash)
                .bind(row.created_at)
                .bind(row.expires_at)
                .execute(&self.pool)
                .await
                .map(|_| ())
                .map_err(backend)
            }

            async fn client(
                &self,
                client_id: &str,
            ) -> Result<Option<$crate::vault::auth::ClientRow>, StoreError> {
                sqlx::query("SELECT * FROM as_clients WHERE client_id = $1")
                    .bind(client_id)
                    .try_map(|row: $row| client_row(&row))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)
            }

            async fn clients(&self) -> Result<Vec<$crate::vault::auth::ClientRow>, StoreError> {
                sqlx::query("SELECT * FROM as_clients ORDER BY created_at, client_id")
                    .try_map(|row: $row| client_row(&row))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(backend)
            }

            async fn dynamic_client_count(&self) -> Result<i64, StoreError> {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM as_clients WHERE kind = 'dynamic' AND revoked_at IS NULL",
                )
                .fetch_one(&self.pool)
                .await
                .map_err(backend)
            }

            async fn revoke_client(&self, client_id: &str, now: Timestamp) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE as_clients SET revoked_at = $1 WHERE client_id = $2 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(client_id)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
                let grants: Vec<String> = sqlx::query_scalar(
                    "SELECT id FROM as_grants WHERE client_id = $1 AND revoked_at IS NULL",
                )
                .bind(client_id)
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
                for id in &grants {
                    $crate::vault::auth::AuthStore::revoke_grant(self, id, now).await?;
                }
                sqlx::query("DELETE FROM as_consents WHERE client_id = $1")
                    .bind(client_id)
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(done.rows_affected() == 1 || !grants.is_empty())
            }

            async fn put_code(&self, row: &$crate::vault::auth::CodeRow) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO as_codes (code_hash, grant_id, user_id, groups, client_id, scopes, resource, \
                       redirect_uri, code_challenge, used, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10)",
                )
                .bind(&row.code_hash)
                .bind(&row.grant_id)
                .bind(&row.user)
                .bind($crate::vault::auth::groups_to_text(&row.groups))
                .bind(&row.client_id)
                .bind(&row.scopes)
                .bind(&row.resource)
                .bind(&row.redirect_uri)
                .bind(&row.code_challenge)
                .bind(row.expires_at)
                .execute(&self.pool)
                .await
                .map(|_| ())
                .map_err(backend)
            }

            async fn take_code(
                &self,
                code_hash: &str,
                now: Timestamp,
            ) -> Result<$crate::vault::auth::CodeUse, StoreError> {
                let fresh = sqlx::query(
                    "UPDATE as_codes SET used = 1 WHERE code_hash = $1 AND used = 0 AND expires_at > $2 \
                     RETURNING code_hash, grant_id, user_id, groups, client_id, scopes, resource, \
                       redirect_uri, code_challenge, expires_at",
                )
                .bind(code_hash)
                .bind(now)
                .try_map(|row: $row| code_row(&row))
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
                if let Some(code) = fresh {
                    return Ok($crate::vault::auth::CodeUse::Fresh(code));
                }
                let used: Option<String> = sqlx::query_scalar(
                    "SELECT grant_id FROM as_codes WHERE code_hash = $1 AND used = 1",
                )
                .bind(code_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
                Ok(match used {
                    Some(grant_id) => $crate::vault::auth::CodeUse::Replayed { grant_id },
                    None => $crate::vault::auth::CodeUse::Unknown,
                })
            }

            async fn create_grant(
                &self,
                grant: &$crate::vault::auth::GrantRow,
                access: &$crate::vault::auth::TokenHash,
                refresh: &$crate::vault::auth::TokenHash,
            ) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await.map_err(backend)?;
                sqlx::query(
                    "INSERT INTO as_grants (id, user_id, groups, client_id, scopes, resource, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&grant.id)
                .bind(&grant.user)
                .bind($crate::vault::auth::groups_to_text(&grant.groups))
                .bind(&grant.client_id)
                .bind(&grant.scopes)
                .bind(&grant.resource)
                .bind(grant.created_at)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
                for (kind, token) in [("access", access), ("refresh", refresh)] {
                    sqlx::query(
                        "INSERT INTO as_tokens (token_hash, grant_id, kind, used, expires_at) \
                         VALUES ($1, $2, $3, 0, $4)",
                    )
                    .bind(&token.hash)
                    .bind(&grant.id)
                    .bind(kind)
                    .bind(token.expires_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                }
                tx.commit().await.map_err(backend)
            }

            async fn access_grant(
                &self,
                token_hash: &str,
                now: Timestamp,
            ) -> Result<Option<$crate::vault::auth::GrantRow>, StoreError> {
                sqlx::query(
                    "SELECT g.id, g.user_id, g.groups, g.client_id, g.scopes, g.resource, g.created_at, g.revoked_at \
                     FROM as_tokens t JOIN as_grants g ON g.id = t.grant_id \
                     WHERE t.token_hash = $1 AND t.kind = 'access' AND t.expires_at > $2 AND g.revoked_at IS NULL",
                )
                .bind(token_hash)
                .bind(now)
                .try_map(|row: $row| grant_row(&row))
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)
            }

            async fn rotate_refresh(
                &self,
                token_hash: &str,
                access: &$crate::vault::auth::TokenHash,
                refresh: &$crate::vault::auth::TokenHash,
                now: Timestamp,
            ) -> Result<$crate::vault::auth::Rotation, StoreError> {
                use $crate::vault::auth::Rotation;
                let taken: Option<String> = sqlx::query_scalar(
                    "UPDATE as_tokens SET used = 1 \
                     WHERE token_hash = $1 AND kind = 'refresh' AND used = 0 AND expires_at > $2 \
                     RETURNING grant_id",
                )
                .bind(token_hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
                let Some(grant_id) = taken else {
                    let used: Option<String> = sqlx::query_scalar(
                        "SELECT grant_id FROM as_tokens WHERE token_hash = $1 AND kind = 'refresh' AND used = 1",
                    )
                    .bind(token_hash)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?;
                    return Ok(match used {
                        Some(grant_id) => Rotation::Reused { grant_id },
                        None => Rotation::Unknown,
                    });
                };
                let Some(grant) = self.live_grant(&grant_id).await? else {
                    return Ok(Rotation::Unknown);
                };
                self.insert_token(&grant_id, "access", access).await?;
                self.insert_token(&grant_id, "refresh", refresh).await?;
                Ok(Rotation::Rotated(grant))
            }

            async fn token_grant(&self, token_hash: &str) -> Result<Option<(String, bool)>, StoreError> {
                let found: Option<(String, String)> =
                    sqlx::query_as("SELECT grant_id, kind FROM as_tokens WHERE token_hash = $1")
                        .bind(token_hash)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(backend)?;
                Ok(found.map(|(grant, kind)| (grant, kind == "refresh")))
            }

            async fn delete_token(&self, token_hash: &str) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM as_tokens WHERE token_hash = $1")
                    .bind(token_hash)
                    .execute(&self.pool)
                    .await
                    .map(|_| ())
                    .map_err(backend)
            }

            async fn revoke_grant(&self, grant_id: &str, now: Timestamp) -> Result<bool, StoreError> {
                let done = sqlx::query(
                    "UPDATE as_grants SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(grant_id)
                .execute(&self.pool)
                .await
                .map_err(backend)?;
                sqlx::query("DELETE FROM as_tokens WHERE grant_id = $1")
                    .bind(grant_id)
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(done.rows_affected() == 1)
            }

            async fn grant(
                &self,
                grant_id: &str,
            ) -> Result<Option<$crate::vault::auth::GrantRow>, StoreError> {
                self.live_grant(grant_id).await
            }

            async fn grants(
                &self,
                user: Option<&str>,
            ) -> Result<Vec<$crate::vault::auth::GrantRow>, StoreError> {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {GRANT_COLUMNS} FROM as_grants \
                     WHERE revoked_at IS NULL AND ($1 IS NULL OR user_id = $1) ORDER BY created_at, id"
                )))
                .bind(user)
                .try_map(|row: $row| grant_row(&row))
                .fetch_all(&self.pool)
                .await
                .map_err(backend)
            }

            async fn consent(
                &self,
                user: &str,
                client_id: &str,
            ) -> Result<Option<$crate::vault::auth::ConsentRow>, StoreError> {
                let found: Option<(String, i64)> = sqlx::query_as(
                    "SELECT scopes, created_at FROM as_consents WHERE user_id = $1 AND client_id = $2",
                )
                .bind(user)
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
                Ok(found.map(|(scopes, created_at)| $crate::vault::auth::ConsentRow {
                    user: user.to_string(),
                    client_id: client_id.to_string(),
                    scopes,
                    created_at,
                }))
            }

            async fn put_consent(
                &self,
                row: &$crate::vault::auth::ConsentRow,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO as_consents (user_id, client_id, scopes, created_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, \
                       created_at = excluded.created_at",
                )
                .bind(&row.user)
                .bind(&row.client_id)
                .bind(&row.scopes)
                .bind(row.created_at)
                .execute(&self.pool)
                .await
                .map(|_| ())
                .map_err(backend)
            }

            async fn withdraw_consent(&self, user: &str, client_id: &str) -> Result<bool, StoreError> {
                sqlx::query("DELETE FROM as_consents WHERE user_id = $1 AND client_id = $2")
                    .bind(user)
                    .bind(client_id)
                    .execute(&self.pool)
                    .await
                    .map(|done| done.rows_affected() > 0)
                    .map_err(backend)
            }

            async fn purge_auth(&self, now: Timestamp) -> Result<u64, StoreError> {
                let codes = sqlx::query("DELETE FROM as_codes WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                let tokens = sqlx::query("DELETE FROM as_tokens WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(codes.rows_affected() + tokens.rows_affected())
            }
        }
    };
}

pub(crate) use auth_sql_store;
