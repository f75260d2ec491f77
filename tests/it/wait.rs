//! `wait` on the run tools: devgate follows the run it started to its end, sends the steps as MCP
//! progress, returns the failed step's log tail, stops at the bound, and stops polling (not the run)
//! when the call is cancelled. The sim's runs progress one step every few milliseconds here.

use std::time::Duration;

use crate::common::*;
use devgate::sim::Sim;
use rmcp::model::CallToolRequestParams;
use serde_json::json;

async fn watched(sim: &Sim) -> (Watched, Watcher) {
    stdio_watched(&config_for(sim, "\n[tools]\nwait_poll_ms = 15"), &[]).await
}

/// The progress lines received since the last look, once the last one received satisfies `last` (the
/// client handles notifications on tasks of their own, so the final line may land just after the
/// result; waiting is bounded); their counts grow.
async fn progress_lines(watcher: &Watcher, last: impl Fn(&str) -> bool) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline
        && !watcher
            .progress
            .lock()
            .unwrap()
            .last()
            .is_some_and(|(_, line)| last(line))
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seen = std::mem::take(&mut *watcher.progress.lock().unwrap());
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "progress must grow: {seen:?}"
    );
    seen.into_iter().map(|(_, line)| line).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn buddy_run_is_followed_to_success_with_progress() {
    let sim = Sim::start().await.unwrap();
    // Each action runs for several polls (15 ms apart), so a busy machine still sees it in progress.
    sim.state.set_run_step_ms(120);
    let (client, watcher) = watched(&sim).await;
    let done = ok(
        "buddy_run_pipeline",
        &call(
            &client,
            "buddy_run_pipeline",
            json!({"project": "web", "pipeline": "build-and-test", "wait": 60}),
        )
        .await,
    );
    assert_eq!(done["status"], "SUCCESSFUL", "{done}");
    let actions = done["actions"].as_array().expect("the run's actions");
    assert!(actions.len() >= 3, "{done}");
    assert!(
        actions.iter().all(|a| a["status"] == "SUCCESSFUL"),
        "{done}"
    );
    assert!(done.get("failed_step").is_none());
    assert!(done["waited_s"].is_u64());
    let lines = progress_lines(&watcher, |l| l.starts_with("SUCCESSFUL")).await;
    assert!(lines.len() >= 3, "a line per change: {lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("INPROGRESS")),
        "{lines:?}"
    );
    assert!(lines.last().unwrap().starts_with("SUCCESSFUL"), "{lines:?}");
    let first_action = actions[0]["name"].as_str().unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("{first_action}: INPROGRESS"))),
        "{lines:?}"
    );
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_runs_come_back_with_the_failed_steps_log_tail() {
    let sim = Sim::start().await.unwrap();
    sim.state.set_run_step_ms(20);
    let (client, watcher) = watched(&sim).await;

    let buddy = ok(
        "buddy_run_pipeline",
        &call(
            &client,
            "buddy_run_pipeline",
            json!({"project": "web", "pipeline": "build-and-test", "branch": "fix/cart-rounding", "wait": 60}),
        )
        .await,
    );
    assert_eq!(buddy["status"], "FAILED", "{buddy}");
    assert_eq!(buddy["failed_step"]["name"], "Unit tests", "{buddy}");
    let tail = buddy["failed_step"]["log_tail"]
        .as_str()
        .expect("a log tail");
    assert!(tail.contains("Expected: 19.99"), "{tail}");
    assert!(tail.lines().count() <= 40, "a tail, not the whole log");
    let lines = progress_lines(&watcher, |l| l.contains("Unit tests: FAILED")).await;
    assert!(
        lines.last().unwrap().contains("Unit tests: FAILED"),
        "{lines:?}"
    );

    let bitbucket = ok(
        "bitbucket_run_pipeline",
        &call(
            &client,
            "bitbucket_run_pipeline",
            json!({"repo_slug": "api", "branch": "feature/login", "wait": 60}),
        )
        .await,
    );
    assert_eq!(bitbucket["state"], "COMPLETED", "{bitbucket}");
    assert_eq!(bitbucket["result"], "FAILED", "{bitbucket}");
    let steps = bitbucket["steps"].as_array().expect("the steps");
    assert!(
        steps
            .iter()
            .any(|s| s["name"] == "Build" && s["result"] == "SUCCESSFUL"),
        "{bitbucket}"
    );
    assert_eq!(bitbucket["failed_step"]["name"], "Test", "{bitbucket}");
    let tail = bitbucket["failed_step"]["log_tail"].as_str().unwrap();
    assert!(tail.contains("test result: FAILED"), "{tail}");
    let lines = progress_lines(&watcher, |l| l.starts_with("COMPLETED")).await;
    assert!(
        lines.iter().any(|l| l.contains("Test: FAILED")),
        "{lines:?}"
    );

    let fine = ok(
        "bitbucket_run_pipeline",
        &call(
            &client,
            "bitbucket_run_pipeline",
            json!({"repo_slug": "api", "branch": "main", "wait": 60}),
        )
        .await,
    );
    assert_eq!(fine["result"], "SUCCESSFUL", "{fine}");
    assert!(fine.get("failed_step").is_none());
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_wait_is_bounded_and_the_run_goes_on() {
    let sim = Sim::start().await.unwrap();
    sim.state.set_run_step_ms(600_000);
    let (client, _) = watched(&sim).await;
    let started = std::time::Instant::now();
    let r = ok(
        "bitbucket_run_pipeline",
        &call(
            &client,
            "bitbucket_run_pipeline",
            json!({"repo_slug": "api", "branch": "main", "wait": 1}),
        )
        .await,
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(r["state"], "PENDING", "{r}");
    let note = r["wait_note"].as_str().expect("says it stopped waiting");
    assert!(note.contains("bitbucket_get_pipeline"), "{note}");
    assert_eq!(
        sim.state.live_runs(devgate::sim::Which::Bitbucket),
        1,
        "the run was not stopped"
    );

    let refused = call(
        &client,
        "bitbucket_run_pipeline",
        json!({"repo_slug": "api", "branch": "main", "wait": 601}),
    )
    .await;
    assert_eq!(refused.is_error, Some(true));
    assert!(text(&refused).contains("wait"), "{}", text(&refused));
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_stops_the_polling_not_the_run() {
    let sim = Sim::start().await.unwrap();
    sim.state.set_run_step_ms(600_000);
    let (client, watcher) = watched(&sim).await;
    let request = CallToolRequestParams::new("buddy_run_pipeline").with_arguments(args(
        json!({"project": "web", "pipeline": "build-and-test", "wait": 300}),
    ));
    let polls = || {
        sim.requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.contains("/executions/"))
            .count()
    };
    // Dropping the call's future makes the client send notifications/cancelled.
    tokio::time::timeout(Duration::from_secs(30), async {
        tokio::select! {
            r = client.call_tool(request) => panic!("the call ended on its own: {r:?}"),
            () = async { while polls() < 3 { tokio::time::sleep(Duration::from_millis(5)).await } } => {}
        }
    })
    .await
    .expect("devgate polls the run");
    assert!(
        !watcher.progress.lock().unwrap().is_empty(),
        "progress was reported"
    );
    // Another call is answered after the cancellation was read; from then on no poll may come.
    ok(
        "buddy_get_workspace",
        &call(&client, "buddy_get_workspace", json!({})).await,
    );
    let after = polls();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        polls(),
        after,
        "polling stopped with the call (poll interval is 15 ms)"
    );
    assert_eq!(
        sim.state.live_runs(devgate::sim::Which::Buddy),
        1,
        "the run goes on"
    );
    assert!(
        !sim.requests().iter().any(|r| r.method == "PATCH"),
        "nothing was sent to stop the run"
    );
    client.cancel().await.unwrap();
}
