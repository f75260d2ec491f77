//! The SQL both stores share. Every statement is written once, with `$n` parameters (SQLite takes them
//! too), and the [`sql_store!`] macro implements [`super::Store`] for a store type given its row type,
//! so the SQLite and PostgreSQL stores cannot drift apart. Each store type has a `pool` field and an
//! inherent `async fn run_migrations(&self) -> Result<(), StoreError>` (migrating differs: PostgreSQL
//! must not keep a failed run's advisory lock).

/// The connection columns, in one place for the SELECTs.
#[macro_export]
#[doc(hidden)]
macro_rules! __devgate_connection_columns {
    () => {
        "user_id, provider, access_token, refresh_token, expires_at, scopes, account, account_id, \
         status, status_detail, version, updated_at"
    };
}

/// Implements [`super::Store`] (and the row mappers it needs) for `$store`, whose rows are `$row`.
macro_rules! sql_store {
    ($store:ty, $row:ty) => {
        fn backend(e: sqlx::Error) -> StoreError {
            StoreError::Backend(e.to_string())
        }

        fn connection_row(row: &$row) -> Result<ConnectionRow, sqlx::Error> {
            Ok(ConnectionRow {
                user: row.try_get("user_id")?,
                provider: row.try_get("provider")?,
                access_token: row.try_get("access_token")?,
                refresh_token: row.try_get("refresh_token")?,
                expires_at: row.try_get("expires_at")?,
                scopes: row.try_get("scopes")?,
                account: row.try_get("account")?,
                account_id: row.try_get("account_id")?,
                status: ConnectionStatus::parse(row.try_get("status")?),
                status_detail: row.try_get("status_detail")?,
                version: row.try_get("version")?,
                updated_at: row.try_get("updated_at")?,
            })
        }

        fn state_row(row: &$row) -> Result<StateRow, sqlx::Error> {
            Ok(StateRow {
                state_hash: row.try_get("state_hash")?,
                user: row.try_get("user_id")?,
                provider: row.try_get("provider")?,
                pkce_verifier: row.try_get("pkce_verifier")?,
                scopes: row.try_get("scopes")?,
                elicitation_id: row.try_get("elicitation_id")?,
                browser_hash: row.try_get("browser_hash")?,
                expires_at: row.try_get("expires_at")?,
            })
        }

        fn ticket_row(row: &$row) -> Result<TicketRow, sqlx::Error> {
            Ok(TicketRow {
                ticket_hash: row.try_get("ticket_hash")?,
                user: row.try_get("user_id")?,
                provider: row.try_get("provider")?,
                scopes: row.try_get("scopes")?,
                elicitation_id: row.try_get("elicitation_id")?,
                expires_at: row.try_get("expires_at")?,
            })
        }

        fn confirmation_row(row: &$row) -> Result<ConfirmationRow, sqlx::Error> {
            Ok(ConfirmationRow {
                ticket_hash: row.try_get("ticket_hash")?,
                binding: row.try_get("binding")?,
                user: row.try_get("user_id")?,
                tool: row.try_get("tool")?,
                summary: row.try_get("summary")?,
                approved: row.try_get::<i64, _>("approved")? != 0,
                expires_at: row.try_get("expires_at")?,
            })
        }

        fn api_key_row(row: &$row) -> Result<ApiKeyRow, sqlx::Error> {
            Ok(ApiKeyRow {
                id: row.try_get("id")?,
                key_hash: row.try_get("key_hash")?,
                user: row.try_get("user_id")?,
                created_at: row.try_get("created_at")?,
                groups: serde_json::from_str(row.try_get("groups")?)
                    .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            })
        }

        #[async_trait]
        impl Store for $store {
            async fn migrate(&self) -> Result<(), StoreError> {
                self.run_migrations().await
            }

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1")
                    .execute(&self.pool)
                    .await
                    .map(|_| ())
                    .map_err(backend)
            }

            async fn key_check(&self) -> Result<Option<String>, StoreError> {
                sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
                    .bind(KEY_CHECK)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)
            }

            /// Writes the key check only if there is none: the first key wins, so two first starts with
            /// different keys cannot both succeed in turn (the caller should read it back and verify).
            async fn set_key_check(&self, sealed: &str) -> Result<(), StoreError> {
                sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                    .bind(KEY_CHECK)
                    .bind(sealed)
                    .execute(&self.pool)
                    .await
                    .map(|_| ())
                    .map_err(backend)
            }

            async fn connection(
                &self,
                user: &str,
                provider: &str,
            ) -> Result<Option<ConnectionRow>, StoreError> {
                sqlx::query(concat!(
                    "SELECT ",
                    $crate::vault::sql::connection_columns!(),
                    " FROM connections WHERE user_id = $1 AND provider = $2"
                ))
                .bind(user)
                .bind(provider)
                .try_map(|row: $row| connection_row(&row))
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)
            }

            async fn connections(&self, user: &str) -> Result<Vec<ConnectionRow>, StoreError> {
                sqlx::query(concat!(
                    "SELECT ",
                    $crate::vault::sql::connection_columns!(),
                    " FROM connections WHERE user_id = $1 ORDER BY provider"
                ))
                .bind(user)
                .try_map(|row: $row| connection_row(&row))
                .fetch_all(&self.pool)
                .await
                .map_err(backend)
            }

            async fn save_connection(&self, row: &ConnectionRow) -> Result<(), StoreError> {
                sqlx::query(concat!(
                    "INSERT INTO connections (",
                    $crate::vault::sql::connection_columns!(),
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1, $11) \
                         ON CONFLICT (user_id, provider) DO UPDATE SET \
                           access_token = excluded.access_token, refresh_token = excluded.refresh_token, \
                           expires_at = excluded.expires_at, scopes = excluded.scopes, \
                           account = excluded.account, account_id = excluded.account_id, \
                           status = excluded.status, status_detail = excluded.status_detail, \
                           version = connections.version + 1, updated_at = excluded.updated_at"
                ))
                .bind(&row.user)
                .bind(&row.provider)
                .bind(&row.access_token)
                .bind(&row.refresh_token)
                .bind(row.expires_at)
                .bind(&row.scopes)
                .bind(&row.account)
                .bind(&row.account_id)
                .bind(row.status.as_str())
                .bind(&row.status_detail)
                .bind(row.updated_at)
                .execute(&self.pool)
                .await
                .map(|_| ())
                .map_err(backend)
            }

            async fn swap_tokens(
                &self,
                row: &ConnectionRow,
                expected_version: i64,
            ) -> Result<bool, StoreError> {
                sqlx::query(
                    "UPDATE connections SET access_token = $1, refresh_token = $2, expires_at = $3, scopes = $4, \
                       updated_at = $5, version = version + 1 \
                     WHERE user_id = $6 AND provider = $7 AND version = $8",
                )
                .bind(&row.access_token)
                .bind(&row.refresh_token)
                .bind(row.expires_at)
                .bind(&row.scopes)
                .bind(row.updated_at)
                .bind(&row.user)
                .bind(&row.provider)
                .bind(expected_version)
                .execute(&self.pool)
                .await
                .map(|done| done.rows_affected() == 1)
                .map_err(backend)
            }

            async fn mark_broken(
                &self,
                user: &str,
                provider: &str,
                detail: &str,
                expected_version: i64,
            ) -> Result<bool, StoreError> {
                sqlx::query(
                    "UPDATE connections SET status = 'broken', status_detail = $1, updated_at = $2 \
                     WHERE user_id = $3 AND provider = $4 AND version = $5",
                )
                .bind(detail)
                .bind(super::now())
                .bind(user)
                .bind(provider)
                .bind(expected_version)
                .execute(&self.pool)
                .await
                .map(|r| r.rows_affected() == 1)
                .map_err(backend)
            }

            async fn take_refresh_lease(
                &self,
                user: &str,
                provider: &str,
                holder: &str,
                now: i64,
                until: i64,
            ) -> Result<bool, StoreError> {
                sqlx::query(
                    "UPDATE connections SET lease_holder = $1, lease_until = $2 \
                     WHERE user_id = $3 AND provider = $4 \
                       AND (lease_until IS NULL OR lease_until <= $5 OR lease_holder = $6)",
                )
                .bind(holder)
                .bind(until)
                .bind(user)
                .bind(provider)
                .bind(now)
                .bind(holder)
                .execute(&self.pool)
                .await
                .map(|done| done.rows_affected() == 1)
                .map_err(backend)
            }

            async fn release_refresh_lease(
                &self,
                user: &str,
                provider: &str,
                holder: &str,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE connections SET lease_holder = NULL, lease_until = NULL \
                     WHERE user_id = $1 AND provider = $2 AND lease_holder = $3",
                )
                .bind(user)
                .bind(provider)
                .bind(holder)
                .execute(&self.pool)
                .await
                .map(|_| ())
                .map_err(backend)
            }

            async fn delete_connection(&self, user: &str, provider: &str) -> Result<bool, StoreError> {
                sqlx::query("DELETE FROM connections WHERE user_id = $1 AND provider = $2")
                    .bind(user)
                    .bind(provider)
                    .execute(&self.pool)
                    .await
                    .map(|done| done.rows_affected() > 0)
                    .map_err(backend)
            }

            async fn put_state(&self, row: &StateRow) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO oauth_states (state_hash, user_id, provider, pkce_verifier, scopes, elicitation_id, browser_hash, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&row.state_hash)
                .bind(&row.user)
                .bind(&row.provider)
                .bind(&row.pkce_verifier)
                .bind(&row.scopes)
                .bind(&row.elicitation_id)
                .bind(&row.browser_hash)
                .bind(row.expires_at)
                .execute(&self.pool)
                .await
                .map(|_| ())
                .map_err(backend)
            }

            async fn take_state(
                &self,
                state_hash: &str,
                now: Timestamp,
            ) -> Result<Option<StateRow>, StoreError> {
                sqlx::query(
                    "DELETE FROM oauth_states WHERE state_hash = $1 AND expires_at > $2 \
                     RETURNING state_hash, user_id, provider, pkce_verifier, scopes, elicitation_id, browser_hash, expires_at",
                )
                .bind(state_hash)
                .bind(now)
                .try_map(|row: $row| state_row(&row))
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)
            }

            async fn put_ticket(&self, row: &TicketRow) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO tickets (ticket_hash, user_id, provider, scopes, elicitation_id, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&row.ticket_hash)
                .bind(&row.user)
                .bind(&row.provider)
                .bind(&row.scopes)
                .bind(&row.elicitation_id)
                .bind(row.expires_at)
                .execute(&self.pool)
                .await
                .map(|_| ())
                .map_err(backend)
            }

            async fn ticket(
                &self,
                ticket_hash: &str,
                now: Timestamp,
            ) -> Result<Option<TicketRow>, StoreError> {
                sqlx::query(
                    "SELECT ticket_hash, user_id, provider, scopes, elicitation_id, expires_at \
                     FROM tickets WHERE ticket_hash = $1 AND expires_at > $2 AND used_at IS NULL",
                )
                .bind(ticket_hash)
                .bind(now)
                .try_map(|row: $row| ticket_row(&row))
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)
            }

            async fn take_ticket(
                &self,
                ticket_hash: &str,
                now: Timestamp,
            ) -> Result<Option<TicketRow>, StoreError> {
                sqlx::query(
                    "UPDATE tickets SET used_at = $2 \
                     WHERE ticket_hash = $1 AND expires_at > $2 AND used_at IS NULL \
                     RETURNING ticket_hash, user_id, provider, scopes, elicitation_id, expires_at",
                )
                .bind(ticket_hash)
                .bind(now)
                .try_map(|row: $row| ticket_row(&row))
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)
            }

            async fn ticket_used(&self, ticket_hash: &str) -> Result<bool, StoreError> {
                sqlx::query("SELECT 1 FROM tickets WHERE ticket_hash = $1 AND used_at IS NOT NULL")
                    .bind(ticket_hash)
                    .fetch_optional(&self.pool)
                    .await
                    .map(|row| row.is_some())
                    .map_err(backend)
            }

            async fn put_api_key(&self, row: &ApiKeyRow) -> Result<(), StoreError> {
                let groups = serde_json::to_string(&row.groups)
                    .map_err(|e| StoreError::Backend(e.to_string()))?;
                sqlx::query("INSERT INTO api_keys (id, key_hash, user_id, created_at, groups) VALUES ($1, $2, $3, $4, $5)")
                    .bind(&row.id)
                    .bind(&row.key_hash)
                    .bind(&row.user)
                    .bind(row.created_at)
                    .bind(groups)
                    .execute(&self.pool)
                    .await
                    .map(|_| ())
                    .map_err(backend)
            }

            async fn api_key(&self, key_hash: &str) -> Result<Option<ApiKeyRow>, StoreError> {
                sqlx::query(
                    "SELECT id, key_hash, user_id, created_at, groups FROM api_keys WHERE key_hash = $1",
                )
                .bind(key_hash)
                .try_map(|row: $row| api_key_row(&row))
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)
            }

            async fn api_keys(&self, user: &str) -> Result<Vec<ApiKeyRow>, StoreError> {
                sqlx::query(
                    "SELECT id, key_hash, user_id, created_at, groups FROM api_keys WHERE user_id = $1 \
                     ORDER BY created_at, id",
                )
                .bind(user)
                .try_map(|row: $row| api_key_row(&row))
                .fetch_all(&self.pool)
                .await
                .map_err(backend)
            }

            async fn all_api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
                sqlx::query(
                    "SELECT id, key_hash, user_id, created_at, groups FROM api_keys \
                     ORDER BY user_id, created_at, id",
                )
                .try_map(|row: $row| api_key_row(&row))
                .fetch_all(&self.pool)
                .await
                .map_err(backend)
            }

            async fn revoke_api_key(&self, user: &str, id: &str) -> Result<bool, StoreError> {
                sqlx::query("DELETE FROM api_keys WHERE user_id = $1 AND id = $2")
                    .bind(user)
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map(|done| done.rows_affected() > 0)
                    .map_err(backend)
            }

            async fn record_calls(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
                if records.is_empty() {
                    return Ok(());
                }
                // One statement per batch: a single round trip to the database (for SQLite, to its
                // worker thread) however many calls the batch holds. A batch's 9 values per record stay
                // far under either database's limit on bound parameters.
                let mut insert = sqlx::QueryBuilder::<<$row as sqlx::Row>::Database>::new(
                    "INSERT INTO audit (at, user_id, tool, provider, target, outcome, duration_ms, request_id, policy) ",
                );
                insert.push_values(records, |mut row, r| {
                    row.push_bind(r.at)
                        .push_bind(&r.user)
                        .push_bind(&r.tool)
                        .push_bind(&r.provider)
                        .push_bind(&r.target)
                        .push_bind(&r.outcome)
                        .push_bind(r.duration_ms)
                        .push_bind(&r.request_id)
                        .push_bind(&r.policy);
                });
                insert
                    .build()
                    .execute(&self.pool)
                    .await
                    .map(drop)
                    .map_err(backend)
            }

            async fn audit(
                &self,
                user: Option<&str>,
                since: Timestamp,
                limit: i64,
            ) -> Result<Vec<AuditRecord>, StoreError> {
                let rows = sqlx::query(
                    "SELECT at, user_id, tool, provider, target, outcome, duration_ms, request_id, policy FROM audit \
                     WHERE at >= $1 AND ($2 IS NULL OR user_id = $2) ORDER BY at DESC, id DESC LIMIT $3",
                )
                .bind(since)
                .bind(user)
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
                rows.iter()
                    .map(|row| {
                        Ok(AuditRecord {
                            at: row.try_get("at")?,
                            user: row.try_get("user_id")?,
                            tool: row.try_get("tool")?,
                            provider: row.try_get("provider")?,
                            target: row.try_get("target")?,
                            outcome: row.try_get("outcome")?,
                            duration_ms: row.try_get("duration_ms")?,
                            request_id: row.try_get("request_id")?,
                            policy: row.try_get("policy")?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()
                    .map_err(backend)
            }

            async fn purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
                let states = sqlx::query("DELETE FROM oauth_states WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                let tickets = sqlx::query("DELETE FROM tickets WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                let confirmations = sqlx::query("DELETE FROM confirmations WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                let used = sqlx::query("DELETE FROM used_request_states WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map_err(backend)?;
                Ok(states.rows_affected()
                    + tickets.rows_affected()
                    + confirmations.rows_affected()
                    + used.rows_affected())
            }

            async fn put_confirmation(&self, row: &ConfirmationRow) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO confirmations (ticket_hash, binding, user_id, tool, summary, approved, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&row.ticket_hash)
                .bind(&row.binding)
                .bind(&row.user)
                .bind(&row.tool)
                .bind(&row.summary)
                .bind(i64::from(row.approved))
                .bind(row.expires_at)
                .execute(&self.pool)
                .await
                .map(|_| ())
                .map_err(backend)
            }

            async fn confirmation(
                &self,
                ticket_hash: &str,
                now: Timestamp,
            ) -> Result<Option<ConfirmationRow>, StoreError> {
                sqlx::query(
                    "SELECT ticket_hash, binding, user_id, tool, summary, approved, expires_at FROM confirmations \
                     WHERE ticket_hash = $1 AND approved = 0 AND expires_at > $2",
                )
                .bind(ticket_hash)
                .bind(now)
                .try_map(|row: $row| confirmation_row(&row))
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)
            }

            async fn approve_confirmation(
                &self,
                ticket_hash: &str,
                now: Timestamp,
            ) -> Result<Option<ConfirmationRow>, StoreError> {
                sqlx::query(
                    "UPDATE confirmations SET approved = 1 \
                     WHERE ticket_hash = $1 AND approved = 0 AND expires_at > $2 \
                     RETURNING ticket_hash, binding, user_id, tool, summary, approved, expires_at",
                )
                .bind(ticket_hash)
                .bind(now)
                .try_map(|row: $row| confirmation_row(&row))
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)
            }

            async fn take_approval(&self, binding: &str, now: Timestamp) -> Result<bool, StoreError> {
                sqlx::query(
                    "DELETE FROM confirmations WHERE binding = $1 AND approved = 1 AND expires_at > $2",
                )
                .bind(binding)
                .bind(now)
                .execute(&self.pool)
                .await
                .map(|done| done.rows_affected() > 0)
                .map_err(backend)
            }

            async fn use_request_state(
                &self,
                nonce_hash: &str,
                expires_at: Timestamp,
            ) -> Result<bool, StoreError> {
                sqlx::query(
                    "INSERT INTO used_request_states (nonce_hash, expires_at) VALUES ($1, $2) \
                     ON CONFLICT (nonce_hash) DO NOTHING",
                )
                .bind(nonce_hash)
                .bind(expires_at)
                .execute(&self.pool)
                .await
                .map(|done| done.rows_affected() == 1)
                .map_err(backend)
            }
        }
    };
}

pub(crate) use __devgate_connection_columns as connection_columns;
pub(crate) use sql_store;
