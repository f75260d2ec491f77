//! Each store's schema migrations, embedded in the binary by build.rs from `migrations/<store>/`, as
//! sqlx's `Migrator`. Versions, descriptions and checksums (SHA-384 of the SQL) are the ones sqlx's
//! `migrate!` macro gives the same files, so databases migrated by earlier builds are recognised.

use std::borrow::Cow;
use std::sync::LazyLock;

use sqlx::SqlStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

pub(super) static SQLITE_MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| migrator(SQLITE));
pub(super) static POSTGRES_MIGRATOR: LazyLock<Migrator> = LazyLock::new(|| migrator(POSTGRES));

fn migrator(files: &[(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        files
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    SqlStr::from_static(sql),
                    // sqlx's marker for a migration that must run outside a transaction.
                    sql.starts_with("-- no-transaction"),
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded migrations are the ones sqlx reads from the directory itself (the reading its
    /// `migrate!` macro used to embed): same versions, descriptions, kinds and checksums, so a database
    /// migrated by an earlier build runs on without a checksum mismatch, and no file is left out.
    #[tokio::test]
    async fn the_embedded_migrations_are_sqlxs_reading_of_the_directory() {
        for (store, embedded) in [
            ("sqlite", &*SQLITE_MIGRATOR),
            ("postgres", &*POSTGRES_MIGRATOR),
        ] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(store);
            let read = Migrator::new(dir.as_path()).await.unwrap();
            let key = |m: &Migration| {
                (
                    m.version,
                    m.description.to_string(),
                    m.migration_type,
                    m.checksum.to_vec(),
                    m.no_tx,
                )
            };
            let embedded: Vec<_> = embedded.iter().map(key).collect();
            let read: Vec<_> = read.iter().map(key).collect();
            assert!(!read.is_empty(), "{store}");
            assert_eq!(embedded, read, "{store}");
        }
    }
}
