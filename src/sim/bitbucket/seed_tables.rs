//! Seed tables of `acme/api`: its pull requests, commits and comments.

use super::*;

/// Pull requests of `acme/api`, by id from 1: title, source branch, state, author, reviewers,
/// reviewers who approved, draft.
pub(super) type PrSeed = (
    &'static str,
    &'static str,
    &'static str,
    usize,
    &'static [usize],
    &'static [usize],
    bool,
);
pub(super) const API_PULL_REQUESTS: [PrSeed; 30] = [
    (
        "Bootstrap axum service skeleton",
        "feature/skeleton",
        "MERGED",
        1,
        &[2, 3],
        &[2, 3],
        false,
    ),
    (
        "Add health and readiness endpoints",
        "feature/healthz",
        "MERGED",
        2,
        &[1],
        &[1],
        false,
    ),
    (
        "Configure structured JSON logging",
        "feature/json-logs",
        "MERGED",
        3,
        &[1, 4],
        &[4],
        false,
    ),
    (
        "Add Postgres connection pool with sqlx",
        "feature/sqlx-pool",
        "MERGED",
        1,
        &[0, 3],
        &[0, 3],
        false,
    ),
    (
        "Users CRUD endpoints",
        "feature/users-crud",
        "MERGED",
        4,
        &[0, 1],
        &[0, 1],
        false,
    ),
    (
        "Switch to tracing-subscriber env filter",
        "chore/env-filter",
        "DECLINED",
        5,
        &[3],
        &[],
        false,
    ),
    (
        "Paginate /users with cursor tokens",
        "feature/users-pagination",
        "MERGED",
        0,
        &[1, 2],
        &[1, 2],
        false,
    ),
    (
        "Bump tokio to 1.48",
        "deps/tokio-1.48",
        "SUPERSEDED",
        3,
        &[1],
        &[],
        false,
    ),
    (
        "Bump tokio to 1.49 and hyper to 1.8",
        "deps/tokio-1.49",
        "MERGED",
        3,
        &[1],
        &[1],
        false,
    ),
    (
        "Return RFC 9457 problem details on errors",
        "feature/problem-details",
        "MERGED",
        2,
        &[0, 4],
        &[0, 4],
        false,
    ),
    (
        "Experiment: GraphQL gateway",
        "spike/graphql",
        "DECLINED",
        5,
        &[1, 2],
        &[],
        false,
    ),
    (
        "Add OpenAPI document generation",
        "feature/openapi",
        "MERGED",
        4,
        &[2],
        &[2],
        false,
    ),
    (
        "Fix N+1 query in team listing",
        "fix/team-n-plus-one",
        "MERGED",
        1,
        &[3],
        &[3],
        false,
    ),
    (
        "Cache feature flags for 30 seconds",
        "feature/flag-cache",
        "MERGED",
        2,
        &[0],
        &[0],
        false,
    ),
    (
        "Drop Node 18 from the SDK build matrix",
        "chore/drop-node18",
        "DECLINED",
        4,
        &[5],
        &[],
        false,
    ),
    (
        "Add request id middleware",
        "feature/request-id",
        "OPEN",
        3,
        &[0, 1],
        &[1],
        false,
    ),
    (
        "Rate limit public endpoints per API key",
        "feature/rate-limits",
        "OPEN",
        2,
        &[0, 3],
        &[],
        false,
    ),
    (
        "Fix token refresh race in session store",
        "fix/token-refresh",
        "OPEN",
        0,
        &[1, 2],
        &[2],
        false,
    ),
    (
        "Add webhook delivery retries with backoff",
        "feature/webhook-retries",
        "OPEN",
        4,
        &[0, 5],
        &[5],
        false,
    ),
    (
        "WIP: migrate config loading to figment",
        "chore/figment",
        "OPEN",
        5,
        &[3],
        &[],
        true,
    ),
    (
        "Upgrade sqlx to 0.9",
        "deps/sqlx-0.9",
        "OPEN",
        3,
        &[0, 1],
        &[1],
        false,
    ),
    (
        "Validate email addresses on signup",
        "fix/email-validation",
        "OPEN",
        1,
        &[0, 4],
        &[],
        false,
    ),
    (
        "Add audit trail for admin actions",
        "feature/admin-audit",
        "OPEN",
        2,
        &[0, 3],
        &[0],
        false,
    ),
    (
        "Document the pagination contract",
        "docs/pagination",
        "OPEN",
        3,
        &[0, 1],
        &[],
        false,
    ),
    (
        "Return 404 instead of 500 for unknown teams",
        "fix/unknown-team-404",
        "OPEN",
        4,
        &[0, 2],
        &[2],
        false,
    ),
    (
        "Add OAuth login flow with PKCE",
        "feature/login",
        "OPEN",
        0,
        &[1, 3],
        &[3],
        false,
    ),
    (
        "Add per-tenant usage metrics endpoint",
        "feature/usage-metrics",
        "OPEN",
        1,
        &[0, 2],
        &[2],
        false,
    ),
    (
        "Remove legacy v1 endpoints",
        "chore/remove-v1",
        "OPEN",
        2,
        &[0],
        &[],
        true,
    ),
    (
        "Add idempotency keys to POST /payments",
        "feature/idempotency-keys",
        "OPEN",
        5,
        &[1, 4],
        &[],
        false,
    ),
    (
        "Speed up CI with sccache",
        "ci/sccache",
        "OPEN",
        4,
        &[3],
        &[3],
        false,
    ),
];

/// Commits on `main` of `acme/api` besides merges, oldest first: message, author, files.
pub(super) const API_COMMITS: [(&str, usize, &[&str]); 16] = [
    ("Initial commit", 1, &["README.md", "Cargo.toml"]),
    (
        "Add CI configuration for Bitbucket Pipelines",
        4,
        &["bitbucket-pipelines.yml"],
    ),
    ("Add main entry point and router", 1, &["src/main.rs"]),
    (
        "Add team routes",
        2,
        &["src/routes/teams.rs", "src/main.rs"],
    ),
    ("Write README quickstart", 0, &["README.md"]),
    (
        "Add users routes",
        4,
        &["src/routes/users.rs", "src/main.rs"],
    ),
    (
        "Tune connection pool size for production",
        3,
        &["src/db.rs"],
    ),
    (
        "Fix clippy warnings after toolchain bump",
        2,
        &["src/routes/users.rs", "src/db.rs"],
    ),
    ("Add CHANGELOG", 0, &["CHANGELOG.md"]),
    ("Release 2.3.0", 0, &["CHANGELOG.md", "Cargo.toml"]),
    (
        "Cache Docker layers in pipelines",
        4,
        &["bitbucket-pipelines.yml"],
    ),
    (
        "Return 429 with Retry-After from the rate limiter",
        2,
        &["src/routes/mod.rs"],
    ),
    ("Update dependencies", 3, &["Cargo.toml", "Cargo.lock"]),
    ("Release 2.4.0", 0, &["CHANGELOG.md", "Cargo.toml"]),
    (
        "Add basic auth for internal tools",
        1,
        &["src/auth/mod.rs", "src/auth/legacy_basic.rs"],
    ),
    ("Log request latency in milliseconds", 5, &["src/main.rs"]),
];

pub(super) fn pr_created(id: u64) -> Minutes {
    at(18 + id * 2, 8 + id % 9, (id * 17) % 60)
}

pub(super) fn pr_updated(id: u64, state: &str) -> Minutes {
    if state == "OPEN" {
        (pr_created(id) + 600 + (id * 431) % 5000).min(START - 30 - id)
    } else {
        pr_created(id) + 1440 + (id * 97) % 900
    }
}

pub(super) fn pr_description(id: u64, title: &str) -> String {
    match id {
        26 => "## Summary\n\nAdds the OAuth 2.0 authorization-code flow with PKCE for the web app and CLI.\n\n\
               - `GET /login` redirects to the identity provider with a S256 challenge\n\
               - `GET /login/callback` checks `state`, exchanges the code and starts a session\n\
               - sessions are stored server-side; the cookie carries only an opaque id\n\n\
               ## Testing\n\n- `cargo test login_flow`\n- manual run against the staging IdP\n\n\
               Removes the legacy basic-auth module (see #15 in the tracker)."
            .into(),
        27 => "## Summary\n\nAdds `GET /v2/tenants/{id}/usage` returning request counts, bandwidth and \
               storage per day for the last 90 days, so billing no longer has to query the warehouse.\n\n\
               ## Notes\n\n- aggregates come from the new `usage_daily` table, filled by the nightly job\n\
               - responses are cached for 5 minutes per tenant\n- the endpoint needs the `usage:read` scope\n\n\
               ## Testing\n\n- unit tests for the aggregation\n- `k6` run: p99 38 ms at 200 rps"
            .into(),
        17 => "Adds a token-bucket limiter keyed by API key (default 600 requests/minute, configurable per plan).\n\n\
               Responses over the limit get `429` with `Retry-After`. Limits live in Redis so all replicas share them."
            .into(),
        21 => "Upgrades sqlx from 0.8 to 0.9.\n\n- `query_as!` now needs explicit nullability overrides in two places\n\
               - offline data regenerated with `cargo sqlx prepare`"
            .into(),
        25 => "`GET /teams/{id}` returned 500 when the team did not exist because `fetch_one` errors on no rows. \
               It now uses `fetch_optional` and answers 404 with a problem-details body."
            .into(),
        _ => format!(
            "## Summary\n\n{title}.\n\n## Checklist\n\n- [x] Tests added or updated\n- [x] CHANGELOG entry\n- [ ] Docs updated"
        ),
    }
}

/// A seeded PR comment: (pr, author, text, inline (path, line), reply to the previous comment).
pub(super) type CommentSeed = (u64, usize, &'static str, Option<(&'static str, u64)>, bool);
pub(super) const API_COMMENTS: [CommentSeed; 16] = [
    (
        26,
        1,
        "Should the verifier be stored in the session or in a signed cookie? A cookie would survive a restart.",
        None,
        false,
    ),
    (
        26,
        0,
        "Session: the verifier must never reach the browser. Restarts are rare and the login just starts over.",
        None,
        true,
    ),
    (
        26,
        3,
        "`thread_rng` is fine here, but please use `OsRng` to make the intent explicit.",
        Some(("src/auth/pkce.rs", 14)),
        false,
    ),
    (
        26,
        0,
        "Done in the latest push.",
        Some(("src/auth/pkce.rs", 14)),
        true,
    ),
    (
        26,
        1,
        "The callback should reject a `state` older than 10 minutes.",
        Some(("src/routes/login.rs", 41)),
        false,
    ),
    (26, 3, "LGTM once the expiry check lands.", None, false),
    (
        27,
        2,
        "Can we put the 90-day window behind a query parameter? Finance asked for 365.",
        None,
        false,
    ),
    (
        27,
        1,
        "Good idea, I will add `days` with a maximum of 400.",
        None,
        true,
    ),
    (
        25,
        2,
        "Nice catch. Please add a test for the 404 body.",
        None,
        false,
    ),
    (
        23,
        3,
        "Audit rows should include the request id from #16.",
        None,
        false,
    ),
    (
        21,
        1,
        "CI is green; the offline data diff looks right.",
        None,
        false,
    ),
    (
        17,
        3,
        "Please make the bucket size configurable per plan before this goes out.",
        Some(("src/routes/mod.rs", 88)),
        false,
    ),
    (
        17,
        2,
        "Added `RATE_LIMIT_<PLAN>` settings.",
        Some(("src/routes/mod.rs", 88)),
        true,
    ),
    (
        16,
        1,
        "Should we also echo the id in error bodies?",
        None,
        false,
    ),
    (
        18,
        2,
        "The retry loop needs a jitter, otherwise replicas refresh in lockstep.",
        None,
        false,
    ),
    (7, 1, "Cursor format looks good to me.", None, false),
];
