//! Upstream faults beyond status codes: a connection reset mid-body, a 100 MB body, a provider that
//! hangs (it must not hold up calls to the other provider), and a cancelled call (its upstream request
//! is dropped).

use std::time::Duration;

use crate::common::*;
use devgate::sim::{Fault, Sim, Which};
use rmcp::model::CallToolRequestParams;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_mid_body_is_retried_for_reads_only() {
    let sim = Sim::start().await.unwrap();
    let client = in_process_for(&sim, "").await;
    let mut fault = Fault::on(Which::Bitbucket, "/repositories/acme/api", 1);
    fault.reset = true;
    sim.state.add_fault(fault);
    ok(
        "bitbucket_get_repository",
        &call(
            &client,
            "bitbucket_get_repository",
            json!({"repo_slug": "api"}),
        )
        .await,
    );
    assert_eq!(
        count(&sim, "GET", "/repositories/acme/api"),
        2,
        "the broken read was tried again"
    );

    sim.state.clear_requests();
    let mut fault = Fault::on(Which::Bitbucket, "/refs/branches", 1);
    fault.method = Some("POST".into());
    fault.reset = true;
    sim.state.add_fault(fault);
    let r = call(
        &client,
        "bitbucket_create_branch",
        json!({"repo_slug": "api", "name": "x/reset", "target": "main"}),
    )
    .await;
    assert!(is_error(&r));
    assert!(
        text(&r).contains("may or may not have happened"),
        "{}",
        text(&r)
    );
    assert_eq!(
        count(&sim, "POST", "/refs/branches"),
        1,
        "a write is never sent twice"
    );
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_100_mb_body_is_refused_without_reading_it_all() {
    let sim = Sim::start().await.unwrap();
    let client = in_process_for(&sim, "").await;
    let mut fault = Fault::on(Which::Bitbucket, "/repositories/acme", 1);
    fault.body_bytes = Some(100 * 1024 * 1024);
    sim.state.add_fault(fault);
    let r = call(&client, "bitbucket_list_repositories", json!({})).await;
    assert!(is_error(&r));
    assert!(
        text(&r).contains("larger than 16777216 bytes"),
        "{}",
        text(&r)
    );
    let sent = sim.state.streamed_bytes();
    assert!(
        sent < 32 * 1024 * 1024,
        "devgate stopped reading early; the sim sent {sent} bytes"
    );
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_provider_does_not_hold_up_the_other() {
    let sim = Sim::start().await.unwrap();
    let config = config_for(&sim, "");
    let (client, _) = stdio(&config).await;
    let client = std::sync::Arc::new(client);
    let mut fault = Fault::on(Which::Buddy, "/user", 1);
    fault.hold = true;
    sim.state.add_fault(fault);
    let held = {
        let client = client.clone();
        tokio::spawn(async move { call(&client, "buddy_get_user", json!({})).await })
    };
    eventually("the Buddy call is held", || sim.state.held_requests() == 1).await;
    for _ in 0..5 {
        ok(
            "bitbucket_get_current_user",
            &call(&client, "bitbucket_get_current_user", json!({})).await,
        );
    }
    assert!(
        !held.is_finished(),
        "Buddy is still hanging while Bitbucket answered"
    );
    sim.state.release_held();
    ok("buddy_get_user", &held.await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_call_drops_its_upstream_request() {
    let sim = Sim::start().await.unwrap();
    let (client, stderr) = stdio(&config_for(&sim, "")).await;
    let mut fault = Fault::on(Which::Bitbucket, "/repositories/acme/api", 1);
    fault.hold = true;
    sim.state.add_fault(fault);
    let request = CallToolRequestParams::new("bitbucket_get_repository")
        .with_arguments(args(json!({"repo_slug": "api"})));
    let pending = client.call_tool(request);
    // Dropping the request's future makes the client send notifications/cancelled.
    let outcome = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::select! {
            r = pending => Some(r),
            () = eventually("the call reached the provider", || sim.state.held_requests() == 1) => None,
        }
    })
    .await
    .unwrap();
    assert!(
        outcome.is_none(),
        "the call was still in flight when it was cancelled"
    );
    eventually("the upstream request was dropped", || {
        sim.state.aborted_requests() == 1
    })
    .await;
    eventually("devgate logged the cancellation", || {
        stderr.text().contains("outcome=\"cancelled\"")
    })
    .await;
    // devgate goes on serving.
    ok(
        "bitbucket_get_current_user",
        &call(&client, "bitbucket_get_current_user", json!({})).await,
    );
    sim.state.release_held();
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_in_flight_calls_finish_within_the_grace() {
    let sim = Sim::start().await.unwrap();
    let config = config_for(&sim, "\n[limits]\nshutdown_grace_secs = 5");
    let mut gateway = http(&config, true).await;
    let client = std::sync::Arc::new(http_client(&gateway.url).await);
    let mut fault = Fault::on(Which::Bitbucket, "/user", 1);
    fault.hold = true;
    sim.state.add_fault(fault);
    let in_flight = {
        let client = client.clone();
        tokio::spawn(async move { call(&client, "bitbucket_get_current_user", json!({})).await })
    };
    eventually("the call is in flight", || sim.state.held_requests() == 1).await;
    let pid = gateway.pid().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    // New connections are refused while the call in flight goes on.
    eventually("devgate stops accepting", || {
        std::net::TcpStream::connect(
            gateway
                .url
                .trim_start_matches("http://")
                .trim_end_matches("/mcp"),
        )
        .is_err()
    })
    .await;
    sim.state.release_held();
    ok("bitbucket_get_current_user", &in_flight.await.unwrap());
    let status = tokio::time::timeout(Duration::from_secs(10), gateway.wait())
        .await
        .expect("devgate exits")
        .unwrap();
    assert!(status.success(), "{status:?}");
}
