//! Tests of runs started through the API: how they progress, fail and stop.

use super::*;

// --- runs started through the API progress ------------------------------------------------------

/// One step length in the tests: long, so real time passing during a test never moves a run.
const STEP: std::time::Duration = std::time::Duration::from_secs(60);

async fn start_run(sim: &Sim, pipeline: u64, branch: &str) -> (String, Value) {
    sim.state.set_run_step_ms(STEP.as_millis() as u64);
    let (status, run) = call(
        sim,
        Method::POST,
        &format!("{WEB}/{pipeline}/executions"),
        Some(json!({"branch": {"name": branch}})),
    )
    .await;
    assert_eq!(status, 200, "{run}");
    (format!("{WEB}/{pipeline}/executions/{}", run["id"]), run)
}

/// An action's log through the per-action endpoint, by the action id the run shows.
async fn log_of(sim: &Sim, path: &str, run: &Value, idx: usize) -> Vec<String> {
    let id = &run["action_executions"][idx]["action"]["id"];
    let (status, details) = get(sim, &format!("{path}/actions/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        details["status"], run["action_executions"][idx]["status"],
        "{details}"
    );
    details["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_run_waits_its_turn_then_succeeds_action_by_action() {
    let sim = Sim::start().await.unwrap();
    let (path, run) = start_run(&sim, 1, "main").await;
    assert_eq!(run["status"], "ENQUEUED", "5127 is running");
    assert_eq!(sim.state.live_runs(super::super::Which::Buddy), 1);
    // The same GET before and after the clock moved: the answer cache must not hide the progress.
    let (_, same) = get(&sim, &path).await;
    assert_eq!(same["status"], "ENQUEUED");
    sim.state.advance(STEP);
    let (_, run) = get(&sim, &path).await;
    assert_eq!(run["status"], "INPROGRESS");
    assert_eq!(
        statuses(&run),
        ["INPROGRESS", "ENQUEUED", "ENQUEUED", "ENQUEUED"]
    );
    let partial = log_of(&sim, &path, &run, 0).await;
    assert!(!partial.is_empty() && !partial.iter().any(|l| l.starts_with("Build finished")));
    for expected in [
        ["SUCCESSFUL", "INPROGRESS", "ENQUEUED", "ENQUEUED"],
        ["SUCCESSFUL", "SUCCESSFUL", "INPROGRESS", "ENQUEUED"],
        ["SUCCESSFUL", "SUCCESSFUL", "SUCCESSFUL", "INPROGRESS"],
    ] {
        sim.state.advance(STEP);
        let (_, run) = get(&sim, &path).await;
        assert_eq!(statuses(&run), expected);
        assert!(run["finish_date"].is_null());
    }
    sim.state.advance(STEP);
    let (_, run) = get(&sim, &path).await;
    assert_eq!(run["status"], "SUCCESSFUL");
    assert_eq!(statuses(&run), ["SUCCESSFUL"; 4]);
    assert!(run["finish_date"].is_string());
    assert_eq!(sim.state.live_runs(super::super::Which::Buddy), 0);
    let tests = log_of(&sim, &path, &run, 2).await;
    assert!(
        tests
            .iter()
            .any(|l| l.starts_with("Tests:") && l.contains("193 passed"))
    );
    let (_, list) = get(&sim, &format!("{WEB}/1/executions?per_page=1")).await;
    assert_eq!(list["executions"][0]["status"], "SUCCESSFUL");

    let (_, seeded) = get(&sim, &format!("{WEB}/1/executions/5127")).await;
    assert_eq!(seeded["status"], "INPROGRESS", "seeded runs never move");
}

#[tokio::test]
async fn a_run_on_the_failing_branch_fails_its_tests_with_the_error_at_the_end_of_the_log() {
    let sim = Sim::start().await.unwrap();
    let (path, run) = start_run(&sim, 1, super::super::FAILING_BRANCH).await;
    assert_eq!(run["status"], "ENQUEUED");
    sim.state.advance(STEP * 3);
    let (_, run) = get(&sim, &path).await;
    assert_eq!(
        statuses(&run),
        ["SUCCESSFUL", "SUCCESSFUL", "INPROGRESS", "ENQUEUED"]
    );
    sim.state.advance(STEP);
    let (_, run) = get(&sim, &path).await;
    assert_eq!(run["status"], "FAILED");
    assert_eq!(
        statuses(&run),
        ["SUCCESSFUL", "SUCCESSFUL", "FAILED", "NOT_EXECUTED"]
    );
    assert!(run["finish_date"].is_string());
    let log = log_of(&sim, &path, &run, 2).await;
    let tail = log[log.len() - 30..].join("\n");
    for needle in [
        "FAIL src/cart/utils.test.ts",
        "● cart utils › rounds line totals to cents",
        "Expected: 19.99",
        "Received: 19.990000000000002",
        "Tests:       1 failed",
        "Action failed: command `npm test -- --ci` exited with code 1",
    ] {
        assert!(tail.contains(needle), "{needle} not in the tail:\n{tail}");
    }
    assert!(log_of(&sim, &path, &run, 3).await.is_empty());
    sim.state.advance(STEP * 10);
    assert_eq!(get(&sim, &path).await.1["status"], "FAILED");

    // RETRY resumes from the failed action, which fails again.
    let (status, retried) = patch(&sim, &path, "RETRY").await;
    assert_eq!(status, 200);
    assert_eq!(retried["status"], "INPROGRESS");
    assert_eq!(sim.state.live_runs(super::super::Which::Buddy), 1);
    sim.state.advance(STEP);
    assert_eq!(get(&sim, &path).await.1["status"], "FAILED");
}

#[tokio::test]
async fn a_cancelled_run_stays_terminated() {
    let sim = Sim::start().await.unwrap();
    let (path, run) = start_run(&sim, 3, "main").await;
    assert_eq!(run["status"], "INPROGRESS");
    sim.state.advance(STEP);
    let (status, stopped) = patch(&sim, &path, "CANCEL").await;
    assert_eq!(status, 200);
    assert_eq!(statuses(&stopped), ["SUCCESSFUL", "TERMINATED"]);
    assert_eq!(sim.state.live_runs(super::super::Which::Buddy), 0);
    sim.state.advance(STEP * 10);
    let (_, run) = get(&sim, &path).await;
    assert_eq!(run["status"], "TERMINATED");
    assert_eq!(statuses(&run), ["SUCCESSFUL", "TERMINATED"]);
}

#[tokio::test]
async fn a_run_stops_at_an_approval_until_applied() {
    let sim = Sim::start().await.unwrap();
    let (path, run) = start_run(&sim, 2, "main").await;
    assert_eq!(run["status"], "ENQUEUED", "5205 waits for approval");
    sim.state.advance(STEP * 2);
    let (_, run) = get(&sim, &path).await;
    assert_eq!(run["status"], "WAITING_FOR_APPLY");
    assert_eq!(sim.state.live_runs(super::super::Which::Buddy), 0);
    sim.state.advance(STEP * 10);
    assert_eq!(get(&sim, &path).await.1["status"], "WAITING_FOR_APPLY");
    let (status, applied) = patch(&sim, &path, "APPLY").await;
    assert_eq!(status, 200);
    assert_eq!(
        statuses(&applied),
        ["SUCCESSFUL", "SUCCESSFUL", "INPROGRESS", "ENQUEUED"]
    );
    sim.state.advance(STEP * 2);
    assert_eq!(get(&sim, &path).await.1["status"], "SUCCESSFUL");
}
