//! Embeds the schema migrations: for each store, `$OUT_DIR/migrations.rs` lists every
//! `migrations/<store>/<version>_<description>.sql` as `(version, description, include_str!(file))`,
//! which `vault::migrations` hands to sqlx. sqlx's `migrate!` macro would do the same, but it needs
//! sqlx's `macros` feature, which compiles a second sqlx and SQLite for the build host.

use std::fmt::Write;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut code = String::new();
    for store in ["sqlite", "postgres"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(store))
            .unwrap_or_else(|e| panic!("migrations/{store}: {e}"))
            .map(|entry| entry.expect("a migrations entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "sql"))
            .collect();
        files.sort();
        writeln!(
            code,
            "pub(super) const {}: &[(i64, &str, &str)] = &[",
            store.to_uppercase()
        )
        .unwrap();
        for path in files {
            let name = path.file_stem().unwrap().to_str().expect("a UTF-8 name");
            let (version, description) = name.split_once('_').unwrap_or_else(|| {
                panic!("migrations/{store}/{name}.sql: name it <version>_<description>.sql")
            });
            let version: i64 = version.parse().unwrap_or_else(|_| {
                panic!("migrations/{store}/{name}.sql: the version must be a number")
            });
            // sqlx's own reading of a file name: underscores in the description become spaces.
            let description = description.replace('_', " ");
            writeln!(
                code,
                "    ({version}, {description:?}, include_str!({:?})),",
                path.display()
            )
            .unwrap();
        }
        code.push_str("];\n");
    }
    let out = Path::new(&std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("migrations.rs");
    std::fs::write(out, code).expect("write migrations.rs");
}
