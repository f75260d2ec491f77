//! The files of `acme/api` (texts in `src/sim/fixtures/bitbucket/`) and the diffs built from them.

use super::*;

const README: &str = include_str!("../fixtures/bitbucket/acme-api/README.md");
const CARGO_TOML: &str = include_str!("../fixtures/bitbucket/acme-api/Cargo.toml.txt");
const MAIN_RS: &str = include_str!("../fixtures/bitbucket/acme-api/src/main.rs");
const AUTH_MOD_RS: &str = include_str!("../fixtures/bitbucket/acme-api/src/auth/mod.rs");
const PKCE_RS: &str = include_str!("../fixtures/bitbucket/acme-api/src/auth/pkce.rs");
const SESSION_RS: &str = include_str!("../fixtures/bitbucket/acme-api/src/auth/session.rs");
const LOGIN_RS: &str = include_str!("../fixtures/bitbucket/acme-api/src/routes/login.rs");
const LEGACY_BASIC_RS: &str =
    include_str!("../fixtures/bitbucket/acme-api/src/auth/legacy_basic.rs");
const LOGIN_TEST_RS: &str = include_str!("../fixtures/bitbucket/acme-api/tests/login_flow.rs");
const USERS_RS: &str = include_str!("../fixtures/bitbucket/acme-api/src/routes/users.rs");
const PIPELINES_YML: &str = include_str!("../fixtures/bitbucket/acme-api/bitbucket-pipelines.yml");

/// The files of `acme/api` (the same at every commit: the sim does not version contents).
pub(super) fn api_files() -> BTreeMap<String, String> {
    [
        ("README.md", README.to_string()),
        ("Cargo.toml", CARGO_TOML.to_string()),
        ("CHANGELOG.md", changelog()),
        ("bitbucket-pipelines.yml", PIPELINES_YML.to_string()),
        ("src/main.rs", MAIN_RS.to_string()),
        ("src/auth/mod.rs", AUTH_MOD_RS.to_string()),
        ("src/auth/pkce.rs", PKCE_RS.to_string()),
        ("src/auth/session.rs", SESSION_RS.to_string()),
        ("src/routes/login.rs", LOGIN_RS.to_string()),
        ("src/routes/users.rs", USERS_RS.to_string()),
        ("tests/login_flow.rs", LOGIN_TEST_RS.to_string()),
    ]
    .into_iter()
    .map(|(p, c)| (p.to_string(), c))
    .collect()
}

/// A long changelog (well over 100 KB), to exercise the text cap.
pub(super) fn changelog() -> String {
    const AREAS: [&str; 8] = [
        "auth", "users", "teams", "billing", "webhooks", "search", "metrics", "admin",
    ];
    const CHANGES: [&str; 6] = [
        "Fixed a race when two requests refresh the same session",
        "Added pagination links to list responses",
        "Changed error bodies to RFC 9457 problem details",
        "Improved p99 latency of list endpoints by batching queries",
        "Removed the deprecated `expand` query parameter",
        "Deprecated offset pagination in favour of cursors",
    ];
    let mut out = String::from(
        "# Changelog\n\nAll notable changes to the Acme API. The format follows Keep a Changelog.\n\n",
    );
    for v in (0..420u64).rev() {
        let (major, minor, patch) = (v / 100 + 1, (v / 10) % 10, v % 10);
        out.push_str(&format!(
            "## [{major}.{minor}.{patch}] - build {}\n\n",
            1000 + v
        ));
        for k in 0..4u64 {
            let n = v * 4 + k;
            out.push_str(&format!(
                "- {}: {} (#{}, reported by {})\n",
                AREAS[(n % 8) as usize],
                CHANGES[((n * 7) % 6) as usize],
                100 + n,
                PEOPLE[(n % 6) as usize].0
            ));
        }
        out.push('\n');
    }
    out
}

pub(super) const LOGIN_FILES: [&str; 8] = [
    "Cargo.toml",
    "src/auth/legacy_basic.rs",
    "src/auth/mod.rs",
    "src/auth/pkce.rs",
    "src/auth/session.rs",
    "src/main.rs",
    "src/routes/login.rs",
    "tests/login_flow.rs",
];

/// The diff of a whole file appearing (`added`) or disappearing.
pub(super) fn whole_file(path: &str, content: &str, added: bool) -> String {
    let lines: Vec<&str> = content.lines().collect();
    let id = hex(path, 7);
    let (mode, index, from, to, hunk, sign) = if added {
        (
            "new",
            format!("0000000..{id}"),
            "/dev/null".to_string(),
            format!("b/{path}"),
            format!("-0,0 +1,{}", lines.len()),
            '+',
        )
    } else {
        (
            "deleted",
            format!("{id}..0000000"),
            format!("a/{path}"),
            "/dev/null".to_string(),
            format!("-1,{} +0,0", lines.len()),
            '-',
        )
    };
    let mut out = format!(
        "diff --git a/{path} b/{path}\n{mode} file mode 100644\nindex {index}\n--- {from}\n+++ {to}\n@@ {hunk} @@\n"
    );
    for line in lines {
        out.push(sign);
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The diff of `acme/api` PR #26 (`feature/login` → `main`): about 250 lines over eight files.
pub(super) fn login_diff() -> String {
    let mut out = String::from(
        r#"diff --git a/Cargo.toml b/Cargo.toml
index 5c1e0d2..9a7f3b4 100644
--- a/Cargo.toml
+++ b/Cargo.toml
@@ -13,6 +13,10 @@ sqlx = { version = "0.8", features = ["postgres", "runtime-tokio", "macros", "uuid", "time"] }
 tracing = "0.1"
 tracing-subscriber = { version = "0.3", features = ["env-filter", "json"] }
+oauth2 = "5"
+sha2 = "0.10"
+base64 = "0.22"
+rand = "0.9"
 
 [dev-dependencies]
-reqwest = { version = "0.12", features = ["json"] }
+reqwest = { version = "0.12", features = ["json", "cookies"] }
"#,
    );
    out.push_str(&whole_file(
        "src/auth/legacy_basic.rs",
        LEGACY_BASIC_RS,
        false,
    ));
    out.push_str(
        r#"diff --git a/src/auth/mod.rs b/src/auth/mod.rs
index 1f0c9e2..77ab310 100644
--- a/src/auth/mod.rs
+++ b/src/auth/mod.rs
@@ -1,9 +1,9 @@
-//! Authentication for internal tools.
+//! Authentication: OAuth login with PKCE and server-side sessions.
 
-pub mod legacy_basic;
+pub mod pkce;
+pub mod session;
 
-/// Routes under /internal require basic auth.
-pub fn internal_only(headers: &axum::http::HeaderMap) -> bool {
-    legacy_basic::check(headers)
-}
+pub use session::{Session, SessionStore};
+
+/// The cookie that carries the session id.
+pub const SESSION_COOKIE: &str = "acme_session";
"#,
    );
    out.push_str(&whole_file("src/auth/pkce.rs", PKCE_RS, true));
    out.push_str(&whole_file("src/auth/session.rs", SESSION_RS, true));
    out.push_str(
        r#"diff --git a/src/main.rs b/src/main.rs
index 8d2e4f1..c3b9a07 100644
--- a/src/main.rs
+++ b/src/main.rs
@@ -17,13 +17,15 @@ async fn main() -> anyhow::Result<()> {
 
     let pool = db::connect(&std::env::var("DATABASE_URL")?).await?;
     sqlx::migrate!().run(&pool).await?;
+    let sessions = auth::SessionStore::new(pool.clone());
 
     let app = Router::new()
         .merge(routes::health::router())
         .merge(routes::users::router())
         .merge(routes::teams::router())
-        .merge(routes::internal::router())
+        .merge(routes::login::router(sessions.clone()))
         .layer(TraceLayer::new_for_http())
-        .with_state(routes::AppState { pool });
+        .with_state(routes::AppState { pool, sessions });
 
     let addr: SocketAddr = std::env::var("LISTEN").unwrap_or_else(|_| "0.0.0.0:8080".into()).parse()?;
"#,
    );
    out.push_str(&whole_file("src/routes/login.rs", LOGIN_RS, true));
    out.push_str(&whole_file("tests/login_flow.rs", LOGIN_TEST_RS, true));
    out
}

/// Files a generated PR touches.
pub(super) fn small_diff_files(id: u64) -> Vec<String> {
    const POOL: [&str; 8] = [
        "src/routes/users.rs",
        "src/main.rs",
        "src/db.rs",
        "src/routes/teams.rs",
        "Cargo.toml",
        "README.md",
        "src/routes/mod.rs",
        "bitbucket-pipelines.yml",
    ];
    let mut files = vec![POOL[(id % 8) as usize].to_string()];
    let second = POOL[((id * 3 + 1) % 8) as usize].to_string();
    if second != files[0] {
        files.push(second);
    }
    files
}

/// A small, plausible diff for a commit or PR that has no hand-written one.
pub(super) fn small_diff(seed: &str, title: &str, files: &[String]) -> String {
    let mut out = String::new();
    for (k, path) in files.iter().enumerate() {
        let start = 10 + (hash64(seed, k as u64) % 80);
        let comment = if path.ends_with(".rs") { "//" } else { "#" };
        out.push_str(&format!(
            "diff --git a/{path} b/{path}\nindex {}..{} 100644\n--- a/{path}\n+++ b/{path}\n@@ -{start},6 +{start},8 @@\n",
            hex(&format!("{seed}{path}a"), 7),
            hex(&format!("{seed}{path}b"), 7),
        ));
        out.push_str(&format!(
            " \n {comment} {title}\n-{comment} TODO: revisit before 2.5\n+{comment} Done: {title}.\n+{comment} See the pull request for the discussion.\n+\n \n {comment} end of section\n"
        ));
    }
    out
}

pub(super) fn pr_diff(repo: &Repo, pr: &PullRequest) -> String {
    if repo.full_name() == "acme/api" && pr.source == "feature/login" && pr.id == 26 {
        login_diff()
    } else if repo.full_name() == "acme/api" {
        small_diff(&pr.source_hash, &pr.title, &small_diff_files(pr.id))
    } else {
        small_diff(&pr.source_hash, &pr.title, &["README.md".to_string()])
    }
}
