//! The PostgreSQL store, for several devgate instances sharing one database.
//!
//! Schema: `migrations/postgres/` (sqlx takes an advisory lock while migrating, so instances starting
//! together do not race). The SQL is shared with the SQLite store ([`super::sql`]): `take_*` are
//! `DELETE … RETURNING`, token swaps and leases are `UPDATE … WHERE version/lease …`, each one statement
//! and so atomic across instances.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};

use super::{
    ApiKeyRow, ConnectionRow, ConnectionStatus, StateRow, Store, StoreError, TicketRow, Timestamp,
};

const MAX_CONNECTIONS: u32 = 16;
const KEY_CHECK: &str = "key_check";

/// The [`super::Store`] on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// `host:port/database`, for messages (never the password).
    location: String,
}

impl PgStore {
    const MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

    /// Connects to a `postgres://` or `postgresql://` URL. Run [`Store::migrate`] before use.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let location = describe(url);
        let fail = |detail: String| StoreError::Open {
            location: location.clone(),
            detail,
        };
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e: sqlx::Error| fail(redact(&e.to_string(), url)))?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|e| fail(redact(&e.to_string(), url)))?;
        Ok(Self { pool, location })
    }

    pub fn location(&self) -> &str {
        &self.location
    }
}

/// `host:port/database` of a URL.
fn describe(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}:{}{}",
            u.host_str().unwrap_or("localhost"),
            u.port().unwrap_or(5432),
            u.path()
        ),
        Err(_) => "the PostgreSQL URL".into(),
    }
}

/// Keeps a URL's password out of an error message.
fn redact(message: &str, url: &str) -> String {
    match url::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_string))
    {
        Some(password) if !password.is_empty() => message.replace(&password, "[redacted]"),
        _ => message.to_string(),
    }
}

super::sql::sql_store!(PgStore, PgRow);
