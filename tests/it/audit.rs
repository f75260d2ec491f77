//! The audit log: every tool call through the real binary is recorded (user, tool, provider, resource,
//! outcome, duration, request id) and `devgate audit` reads it back, per user, newest first, without
//! argument text or any secret.

use std::time::Duration;

use crate::common::*;
use devgate::sim::Sim;
use serde_json::{Value, json};

fn audit(setup: &OAuthSetup, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("audit")
        .arg("--config")
        .arg(&setup.config)
        .args(args);
    for (k, v) in oauth_env() {
        cmd.env(k, v);
    }
    cmd.output().expect("devgate audit runs")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_call_is_recorded_and_read_back_per_user() {
    let sim = Sim::start().await.unwrap();
    let c = connected_users(
        &sim,
        &[("alice", "ann", "mike"), ("bob", "ben", "nina")],
        "",
    )
    .await;
    let marker = "audit-marker-7f3a words nobody should find in the log";
    ok(
        "comment",
        &call(
            &c.clients[0],
            "bitbucket_add_pull_request_comment",
            json!({"repo_slug": "api", "pull_request_id": 25, "text": marker}),
        )
        .await,
    );
    let missing = call(
        &c.clients[0],
        "bitbucket_get_repository",
        json!({"repo_slug": "no-such-repo"}),
    )
    .await;
    assert!(is_error(&missing));
    ok(
        "whoami",
        &call(&c.clients[1], "bitbucket_get_current_user", json!({})).await,
    );

    // Records are written off the call's path: wait (bounded) until alice's two are there.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let alice: Vec<Value> = loop {
        let out = audit(&c.setup, &["--user", "alice", "--format", "json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        // Connecting made two calls first (answered with connect links); then ours.
        if rows.len() >= 4 || std::time::Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(alice.len(), 4, "{alice:?}");
    assert!(
        alice[2..].iter().all(|r| r["outcome"] == "connect"),
        "{alice:?}"
    );
    assert_eq!(alice[0]["tool"], "bitbucket_get_repository", "newest first");
    assert_eq!(alice[0]["outcome"], "provider_error");
    assert_eq!(alice[0]["target"], "workspace=acme, repo_slug=no-such-repo");
    assert_eq!(alice[1]["tool"], "bitbucket_add_pull_request_comment");
    assert_eq!(alice[1]["outcome"], "ok");
    assert_eq!(alice[1]["provider"], "bitbucket");
    assert_eq!(
        alice[1]["target"],
        "workspace=acme, repo_slug=api, pull_request_id=25"
    );
    assert!(alice.iter().all(|r| r["user"] == "alice"
        && r["request_id"].as_str().is_some_and(|id| !id.is_empty())
        && r["duration_ms"].is_i64()));

    let everyone = audit(&c.setup, &["--since", "1h"]);
    let text = String::from_utf8_lossy(&everyone.stdout).to_string();
    assert!(
        text.contains("bob") && text.contains("bitbucket_get_current_user"),
        "{text}"
    );
    let all = format!(
        "{text}{}",
        String::from_utf8_lossy(&audit(&c.setup, &["--format", "json"]).stdout)
    );
    assert!(
        !all.contains("audit-marker-7f3a"),
        "no argument text in the audit log"
    );
    for secret in sim.state.issued_secrets().iter().chain(c.keys.iter()) {
        assert!(!all.contains(secret.as_str()), "a secret in the audit log");
    }
    let future = audit(
        &c.setup,
        &["--since", "2999-01-01T00:00:00Z", "--format", "json"],
    );
    assert_eq!(String::from_utf8_lossy(&future.stdout).trim(), "[]");
    let bad = audit(&c.setup, &["--since", "yesterday"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--since"));
}
