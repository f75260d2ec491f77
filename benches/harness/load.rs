//! The harness's load run: tool calls from 20 users (20,000 in full mode, 2,000 in quick mode), 32 in
//! flight, over HTTP, with 1% of upstream requests failing. Every call is answered; every answer belongs
//! to its caller (the sim answers per account); the sim holds exactly the writes that succeeded (none
//! lost, none doubled); devgate's memory stays bounded. A broken promise panics, so the harness fails.
//! It runs here rather than in `cargo test`, where it held one of the test threads for minutes and
//! slowed the timing-sensitive tests beside it; devgate logs at its default level, as deployed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::*;
use devgate::sim::{Fault, Sim, Which, lock};
use futures::StreamExt;
use serde_json::json;

const USERS: usize = 20;
const IN_FLIGHT: usize = 32;

/// Runs `calls` calls and prints one table.
pub async fn calls_under_faults(calls: usize) {
    let sim = Sim::start().await.unwrap();
    let users: Vec<(String, &str, &str)> = (0..USERS)
        .map(|i| {
            let (bitbucket, buddy) = if i.is_multiple_of(2) {
                ("ann", "mike")
            } else {
                ("ben", "nina")
            };
            (format!("user{i}"), bitbucket, buddy)
        })
        .collect();
    let spec: Vec<(&str, &str, &str)> =
        users.iter().map(|(u, b, d)| (u.as_str(), *b, *d)).collect();
    let c = connected_users_logging(&sim, &spec, "[limits]\ncalls_per_minute = 0", None).await;

    // 1% of every upstream API request fails with 503 from now on.
    for provider in [Which::Buddy, Which::Bitbucket] {
        let mut fault = Fault::status(provider, "/", 503, u32::MAX);
        fault.chance = Some(0.01);
        sim.state.add_fault(fault);
    }
    let clients: Vec<Arc<Client>> = c.clients.into_iter().map(Arc::new).collect();
    let comments_ok = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let started = std::time::Instant::now();
    let answered = futures::stream::iter(0..calls)
        .map(|i| {
            let user = i % USERS;
            let client = clients[user].clone();
            let (comments_ok, errors) = (comments_ok.clone(), errors.clone());
            let expected_bitbucket = if user.is_multiple_of(2) { "Ann Dev" } else { "Ben Ortiz" };
            let expected_buddy = if user.is_multiple_of(2) { "Mike Benson" } else { "Nina Alvarez" };
            async move {
                let (tool, arguments) = match i % 4 {
                    0 => ("bitbucket_get_current_user", json!({})),
                    1 => ("buddy_get_user", json!({})),
                    2 => ("bitbucket_list_pull_requests", json!({"repo_slug": "api", "limit": 5})),
                    _ => ("bitbucket_add_pull_request_comment", json!({"repo_slug": "api", "pull_request_id": 26, "text": format!("load user{user} call {i}")})),
                };
                let result = call(&client, tool, arguments).await;
                if is_error(&result) {
                    errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                let value = result.structured_content.unwrap_or_default();
                match i % 4 {
                    0 => assert_eq!(value["name"], expected_bitbucket, "user{user} got another account's answer"),
                    1 => assert_eq!(value["name"], expected_buddy, "user{user} got another account's answer"),
                    3 => {
                        comments_ok.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .count()
        .await;
    let elapsed = started.elapsed();
    assert_eq!(answered, calls, "every call was answered");

    let stored = lock(&sim.state.bitbucket)
        .repos
        .iter()
        .find(|r| r.slug == "api")
        .map(|r| {
            r.comments
                .iter()
                .filter(|c| c.raw.starts_with("load user"))
                .count()
        })
        .unwrap();
    assert_eq!(
        stored,
        comments_ok.load(Ordering::Relaxed),
        "the sim holds exactly the writes that succeeded"
    );
    let mut texts: Vec<String> = lock(&sim.state.bitbucket)
        .repos
        .iter()
        .find(|r| r.slug == "api")
        .map(|r| {
            r.comments
                .iter()
                .filter(|c| c.raw.starts_with("load user"))
                .map(|c| c.raw.clone())
                .collect()
        })
        .unwrap();
    let total = texts.len();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), total, "no write was sent twice");

    let failed = errors.load(Ordering::Relaxed);
    // Reads are retried; only writes hit by a fault (never retried) should fail: about 1% of 5,000.
    assert!(failed < calls / 50, "{failed} calls failed");
    let rss = c.gateway.pid().and_then(peak_rss_kib).unwrap_or_default();
    println!(
        "\n## Load ({calls} calls from {USERS} users, {IN_FLIGHT} in flight, HTTP, 1% upstream 503s)"
    );
    println!(
        "| time | calls/s | failed (writes hit by faults) | comments stored | devgate peak RSS |"
    );
    println!("|---|---|---|---|---|");
    println!(
        "| {:.1} s | {:.0} | {failed} | {stored} | {rss} KiB |",
        elapsed.as_secs_f64(),
        calls as f64 / elapsed.as_secs_f64(),
    );
    assert!(
        rss > 0 && rss < 200 * 1024,
        "devgate's peak RSS was {rss} KiB"
    );
}
