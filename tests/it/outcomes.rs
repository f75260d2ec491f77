//! How a tool call ends is one of a closed set of outcomes, written once per call to the metrics, the
//! audit and the log line: a bad argument, a provider's refusal, a provider outage and the rate limit
//! each under its own label.

use crate::common;

use std::time::Duration;

use common::*;
use devgate::sim::{Fault, Sim, Which};
use serde_json::{Value, json};

fn audit_rows(config: &std::path::Path) -> Vec<Value> {
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("audit")
        .arg("--config")
        .arg(config)
        .args(["--format", "json"]);
    for (k, v) in token_env() {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("devgate audit runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_arguments_refusals_outages_and_the_rate_limit_are_told_apart_once_each() {
    let sim = Sim::start().await.unwrap();
    // The session's `initialize` and four calls fit the burst; the fifth call is over the rate.
    let config = config_for(&sim, "\n[limits]\ncalls_per_minute = 1\nburst = 5");
    let gateway = http(&config, false).await;
    let client = http_client(&gateway.url).await;

    let repo = "bitbucket_get_repository";
    ok(
        "get",
        &call(&client, repo, json!({"repo_slug": "api"})).await,
    );
    let bad = call(
        &client,
        "bitbucket_get_pull_request",
        json!({"repo_slug": "api"}),
    )
    .await;
    assert!(
        text(&bad).contains("pull_request_id: required"),
        "{}",
        text(&bad)
    );
    let missing = call(&client, repo, json!({"repo_slug": "no-such-repo"})).await;
    assert!(
        text(&missing).contains("answered 404"),
        "{}",
        text(&missing)
    );
    sim.state.add_fault(Fault::status(
        Which::Bitbucket,
        "/repositories/acme/web",
        503,
        20,
    ));
    let down = call(&client, repo, json!({"repo_slug": "web"})).await;
    assert!(text(&down).contains("answered 503"), "{}", text(&down));
    let limited = call(&client, repo, json!({"repo_slug": "api"})).await;
    assert!(text(&limited).contains("Rate limit"), "{}", text(&limited));

    let scrape = reqwest::get(format!("{}/metrics", gateway.url.trim_end_matches("/mcp")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for (tool, outcome) in [
        (repo, "ok"),
        ("bitbucket_get_pull_request", "invalid_arguments"),
        (repo, "provider_error"),
        (repo, "provider_unavailable"),
        (repo, "rate_limited"),
    ] {
        let series = format!("devgate_tool_calls_total{{tool=\"{tool}\",outcome=\"{outcome}\"}} 1");
        assert!(scrape.contains(&series), "no {series} in:\n{scrape}");
    }
    assert!(!scrape.contains("outcome=\"error\""), "{scrape}");

    // One log line per call: the limited call is not logged twice.
    let log = gateway.stderr.text();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("outcome=\"rate_limited\""))
            .count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.lines().filter(|l| l.contains("outcome=")).count(),
        5,
        "{log}"
    );

    // The audit has the same five outcomes (its rows are written off the call's path).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let rows = loop {
        let rows = audit_rows(&config);
        if rows.len() >= 5 || std::time::Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut outcomes: Vec<&str> = rows.iter().filter_map(|r| r["outcome"].as_str()).collect();
    outcomes.sort_unstable();
    assert_eq!(
        outcomes,
        [
            "invalid_arguments",
            "ok",
            "provider_error",
            "provider_unavailable",
            "rate_limited"
        ],
        "{rows:?}"
    );
}
