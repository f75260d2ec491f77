//! Pipeline step logs: the text each step of a run writes.

use super::*;

/// Crates a build downloads and compiles, in order.
pub(super) const CRATES: [(&str, &str); 64] = [
    ("proc-macro2", "1.0.95"),
    ("unicode-ident", "1.0.18"),
    ("libc", "0.2.174"),
    ("cfg-if", "1.0.1"),
    ("autocfg", "1.5.0"),
    ("once_cell", "1.21.3"),
    ("memchr", "2.7.5"),
    ("itoa", "1.0.15"),
    ("quote", "1.0.40"),
    ("syn", "2.0.104"),
    ("pin-project-lite", "0.2.16"),
    ("bytes", "1.10.1"),
    ("smallvec", "1.15.1"),
    ("scopeguard", "1.2.0"),
    ("lock_api", "0.4.13"),
    ("parking_lot_core", "0.9.11"),
    ("parking_lot", "0.12.4"),
    ("signal-hook-registry", "1.4.5"),
    ("mio", "1.0.4"),
    ("socket2", "0.6.0"),
    ("tokio-macros", "2.5.0"),
    ("tokio", "1.49.0"),
    ("futures-core", "0.3.31"),
    ("futures-sink", "0.3.31"),
    ("futures-channel", "0.3.31"),
    ("futures-task", "0.3.31"),
    ("futures-util", "0.3.31"),
    ("slab", "0.4.10"),
    ("serde_derive", "1.0.219"),
    ("serde", "1.0.219"),
    ("ryu", "1.0.20"),
    ("serde_json", "1.0.141"),
    ("http", "1.3.1"),
    ("http-body", "1.0.1"),
    ("http-body-util", "0.1.3"),
    ("httparse", "1.10.1"),
    ("httpdate", "1.0.3"),
    ("tower-service", "0.3.3"),
    ("tower-layer", "0.3.3"),
    ("tower", "0.5.2"),
    ("hyper", "1.8.0"),
    ("hyper-util", "0.1.16"),
    ("matchit", "0.8.4"),
    ("percent-encoding", "2.3.1"),
    ("form_urlencoded", "1.2.1"),
    ("serde_urlencoded", "0.7.1"),
    ("mime", "0.3.17"),
    ("axum-core", "0.5.2"),
    ("axum", "0.8.4"),
    ("tracing-core", "0.1.34"),
    ("tracing-attributes", "0.1.30"),
    ("tracing", "0.1.41"),
    ("tracing-subscriber", "0.3.19"),
    ("sha2", "0.10.9"),
    ("base64", "0.22.1"),
    ("rand_core", "0.9.3"),
    ("rand", "0.9.2"),
    ("time", "0.3.41"),
    ("uuid", "1.17.0"),
    ("sqlx-core", "0.8.6"),
    ("sqlx-postgres", "0.8.6"),
    ("sqlx-macros", "0.8.6"),
    ("sqlx", "0.8.6"),
    ("oauth2", "5.0.0"),
];

/// A step's log: clone, image, the step's commands and their output (a few hundred lines).
pub(super) fn step_log(repo: &Repo, p: &Pipeline, s: &Step) -> String {
    let branch = p.branch.clone().unwrap_or_else(|| "HEAD".into());
    let subject = repo
        .commit(&p.commit)
        .map(|c| c.message.lines().next().unwrap_or_default().to_string())
        .unwrap_or_default();
    let mut log = vec![
        "+ umask 000".to_string(),
        String::new(),
        format!(
            "+ GIT_LFS_SKIP_SMUDGE=1 retry 6 git clone --branch=\"{branch}\" --depth 50 https://x-token-auth:$REPOSITORY_OAUTH_ACCESS_TOKEN@bitbucket.org/$BITBUCKET_REPO_FULL_NAME.git $BUILD_DIR"
        ),
        "Cloning into '/opt/atlassian/pipelines/agent/build'...".to_string(),
        String::new(),
        format!("+ git reset --hard {}", p.commit),
        format!("HEAD is now at {} {subject}", &p.commit[..7]),
        String::new(),
        "+ git config user.name bitbucket-pipelines".to_string(),
        "+ git config user.email commits-noreply@bitbucket.org".to_string(),
        "+ git config push.default current".to_string(),
        "+ git config http.${BITBUCKET_GIT_HTTP_ORIGIN}.proxy http://localhost:29418/".to_string(),
        "+ git remote set-url origin http://bitbucket.org/$BITBUCKET_REPO_FULL_NAME".to_string(),
        String::new(),
        "Images used:".to_string(),
        format!(
            "    build : docker.io/library/rust@sha256:{}",
            hex("rust-1.88-bookworm", 64)
        ),
        String::new(),
        "Cache \"cargo\": Downloading".to_string(),
        "Cache \"cargo\": Downloaded 412.7 MiB in 9 seconds".to_string(),
        "Cache \"cargo\": Extracting".to_string(),
        "Cache \"cargo\": Extracted in 14 seconds".to_string(),
        String::new(),
    ];
    for command in &s.script {
        log.push(format!("+ {command}"));
    }
    let running = s.state == "IN_PROGRESS";
    match s.name.as_str() {
        "Build" | "Build and test" => {
            log.push("    Updating crates.io index".into());
            log.extend(CRATES.iter().map(|(c, v)| format!("  Downloaded {c} v{v}")));
            log.push(format!(
                "  Downloaded {} crates (38.2 MB) in 4.11s",
                CRATES.len()
            ));
            log.extend(CRATES.iter().map(|(c, v)| format!("   Compiling {c} v{v}")));
            log.push("   Compiling acme-api v2.4.0 (/opt/atlassian/pipelines/agent/build)".into());
            log.push(format!(
                "    Finished `release` profile [optimized] target(s) in {}m {:02}s",
                2 + p.build_number % 3,
                p.build_number % 60
            ));
        }
        "Test" | "End-to-end tests" => {
            log.extend(
                CRATES
                    .iter()
                    .skip(40)
                    .map(|(c, v)| format!("   Compiling {c} v{v}")),
            );
            log.push("   Compiling acme-api v2.4.0 (/opt/atlassian/pipelines/agent/build)".into());
            log.push(
                "    Finished `test` profile [unoptimized + debuginfo] target(s) in 1m 48s".into(),
            );
            log.push(format!(
                "     Running unittests src/main.rs (target/debug/deps/acme_api-{})",
                hex(&p.uuid, 16)
            ));
            const MODULES: [&str; 9] = [
                "auth::pkce",
                "auth::session",
                "routes::users",
                "routes::teams",
                "routes::login",
                "routes::health",
                "db",
                "webhooks::delivery",
                "billing::invoices",
            ];
            const CASES: [&str; 20] = [
                "creates_a_record",
                "rejects_missing_fields",
                "paginates_with_cursor",
                "returns_404_for_unknown_id",
                "validates_email",
                "orders_by_created_at",
                "handles_concurrent_updates",
                "serializes_problem_details",
                "respects_rate_limit",
                "retries_on_503",
                "honours_retry_after",
                "expires_after_ttl",
                "rejects_unknown_state",
                "escapes_html_in_names",
                "keeps_audit_trail",
                "round_trips_json",
                "maps_db_errors",
                "streams_large_exports",
                "refreshes_token_once",
                "cleans_up_on_drop",
            ];
            let tests: Vec<String> = MODULES
                .iter()
                .flat_map(|m| CASES.iter().map(move |c| format!("{m}::tests::{c}")))
                .collect();
            log.push(String::new());
            log.push(format!("running {} tests", tests.len()));
            let failing = (s.result == Some("FAILED")).then_some(tests.len() / 3);
            let shown = if running {
                tests.len() / 2
            } else {
                tests.len()
            };
            for (k, t) in tests.iter().enumerate().take(shown) {
                let verdict = if Some(k) == failing { "FAILED" } else { "ok" };
                log.push(format!("test {t} ... {verdict}"));
            }
            if !running {
                log.push(String::new());
                if let Some(k) = failing {
                    log.push("failures:".into());
                    log.push(String::new());
                    log.push(format!("---- {} stdout ----", tests[k]));
                    log.push(format!(
                        "thread '{}' panicked at src/routes/users.rs:212:9:",
                        tests[k]
                    ));
                    log.push("assertion `left == right` failed".into());
                    log.push("  left: 500".into());
                    log.push(" right: 404".into());
                    log.push("note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace".into());
                    log.push(String::new());
                    log.push("failures:".into());
                    log.push(format!("    {}", tests[k]));
                    log.push(String::new());
                    log.push(format!("test result: FAILED. {} passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 7.42s", tests.len() - 1));
                    log.push(String::new());
                    log.push("error: test failed, to rerun pass `--bin acme-api`".into());
                } else {
                    log.push(format!("test result: ok. {} passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 7.18s", tests.len()));
                }
            }
        }
        _ => {
            let env = if s.name.contains("production") {
                "production"
            } else {
                "staging"
            };
            log.push(
                "Status: Downloaded newer image for bitbucketpipelines/aws-ecs-deploy:1.12.1"
                    .into(),
            );
            log.push(format!(
                "INFO: Updating the acme-api-{env} service with the new task definition..."
            ));
            log.push(format!(
                "INFO: Task definition acme-api-{env}:{} registered.",
                p.build_number
            ));
            log.push("INFO: Waiting for the service to become stable...".into());
            log.push("✔ Successfully updated the service.".into());
            log.push(format!("+ ./scripts/smoke-test.sh {env}"));
            log.push(format!(
                "GET https://{env}.api.acme.example/healthz -> 200 (41 ms)"
            ));
        }
    }
    if s.result == Some("STOPPED") {
        log.push("Build stopped by user".into());
    }
    if !running {
        log.push(String::new());
        log.push("Searching for test report files in directories named [test-results, failsafe-reports, test-reports, TestResults, surefire-reports] down to a depth of 4".into());
        log.push("Finished scanning for test reports. Found 0 test report files.".into());
        log.push(
            "Merged test suites, total number tests is 0, with 0 failures and 0 errors.".into(),
        );
    }
    log.join("\n") + "\n"
}
