//! Tests of runs started through the API: how they progress, fail, stop and pause.

use super::*;

// --- runs started through the API progress ------------------------------------------------------

/// One step length in the tests: long, so real time passing during a test never moves a run.
const STEP: std::time::Duration = std::time::Duration::from_secs(60);

async fn start_run(sim: &Sim, branch: &str) -> String {
    sim.state.set_run_step_ms(STEP.as_millis() as u64);
    let (status, run) = send(
        sim,
        reqwest::Method::POST,
        "/repositories/acme/api/pipelines",
        Some(json!({"target": {"type": "pipeline_ref_target", "ref_type": "branch", "ref_name": branch}})),
    )
    .await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["state"]["name"], "PENDING");
    format!(
        "/repositories/acme/api/pipelines/{}",
        run["uuid"]
            .as_str()
            .unwrap()
            .replace('{', "%7B")
            .replace('}', "%7D")
    )
}

/// `(pipeline state, result)` and each step's `(name, state, result)`.
async fn run_states(sim: &Sim, run: &str) -> (Value, Vec<(String, String, Value)>) {
    let (_, p) = get(sim, run).await;
    let (_, steps) = get(sim, &format!("{run}/steps")).await;
    let steps = steps["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["state"]["name"].as_str().unwrap().to_string(),
                s["state"]["result"]["name"].clone(),
            )
        })
        .collect();
    (
        json!([p["state"]["name"], p["state"]["result"]["name"]]),
        steps,
    )
}

fn step(name: &str, state: &str, result: Value) -> (String, String, Value) {
    (name.to_string(), state.to_string(), result)
}

async fn step_log(sim: &Sim, run: &str, index: usize) -> (u16, String) {
    let (_, steps) = get(sim, &format!("{run}/steps")).await;
    let uuid = steps["values"][index]["uuid"]
        .as_str()
        .unwrap()
        .replace('{', "%7B")
        .replace('}', "%7D");
    let response = client()
        .get(format!("{}{run}/steps/{uuid}/log", sim.bitbucket_url))
        .bearer_auth(BITBUCKET_TOKEN)
        .send()
        .await
        .expect("sim answers");
    // A finished step's log is in storage, fetched without credentials.
    let response = if response.status() == 307 {
        let location = response.headers()["location"].to_str().unwrap().to_string();
        assert!(location.starts_with(&sim.storage_url), "{location}");
        client()
            .get(location)
            .send()
            .await
            .expect("storage answers")
    } else {
        response
    };
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn a_run_on_main_goes_pending_in_progress_then_successful() {
    let sim = Sim::start().await.unwrap();
    let run = start_run(&sim, "main").await;
    assert_eq!(sim.state.live_runs(super::super::Which::Bitbucket), 1);
    let null = Value::Null;
    let (state, steps) = run_states(&sim, &run).await;
    assert_eq!(state, json!(["PENDING", null]));
    assert!(steps.iter().all(|s| s.1 == "PENDING"), "{steps:?}");
    assert_eq!(
        step_log(&sim, &run, 0).await.0,
        404,
        "no log before a step starts"
    );

    // The same GETs again after the clock moved: the answer cache must not hide the progress.
    sim.state.advance(STEP);
    let (state, steps) = run_states(&sim, &run).await;
    assert_eq!(state, json!(["IN_PROGRESS", null]));
    assert_eq!(
        steps,
        [
            step("Build", "IN_PROGRESS", null.clone()),
            step("Test", "PENDING", null.clone()),
            step("Deploy to staging", "PENDING", null.clone()),
        ]
    );
    sim.state.advance(STEP);
    let (_, steps) = run_states(&sim, &run).await;
    assert_eq!(steps[0], step("Build", "COMPLETED", json!("SUCCESSFUL")));
    assert_eq!(steps[1], step("Test", "IN_PROGRESS", null.clone()));
    let (status, partial) = step_log(&sim, &run, 1).await;
    assert_eq!(status, 200);
    assert!(
        partial.contains("running 180 tests") && !partial.contains("test result"),
        "a running step has a partial log"
    );

    sim.state.advance(STEP * 2);
    let (state, steps) = run_states(&sim, &run).await;
    assert_eq!(state, json!(["COMPLETED", "SUCCESSFUL"]));
    assert!(
        steps
            .iter()
            .all(|s| s.1 == "COMPLETED" && s.2 == "SUCCESSFUL"),
        "{steps:?}"
    );
    assert_eq!(sim.state.live_runs(super::super::Which::Bitbucket), 0);
    let (_, p) = get(&sim, &run).await;
    let (_, list) = get(&sim, &format!("{run}/steps")).await;
    let last = &list["values"][2];
    assert_eq!(p["completed_on"], last["completed_on"]);
    assert!(p["created_on"].as_str() < last["started_on"].as_str());
    assert!(p["duration_in_seconds"].as_u64().unwrap() > 0);
    let (_, test_log) = step_log(&sim, &run, 1).await;
    assert!(
        test_log.contains("test result: ok. 180 passed"),
        "{test_log}"
    );

    // Done: more time changes nothing.
    sim.state.advance(STEP * 10);
    assert_eq!(
        run_states(&sim, &run).await.0,
        json!(["COMPLETED", "SUCCESSFUL"])
    );
}

#[tokio::test]
async fn a_run_on_the_failing_branch_fails_at_test_with_the_error_at_the_end_of_its_log() {
    let sim = Sim::start().await.unwrap();
    let run = start_run(&sim, super::super::FAILING_BRANCH).await;
    sim.state.advance(STEP * 2);
    let (state, steps) = run_states(&sim, &run).await;
    assert_eq!(state, json!(["IN_PROGRESS", null]));
    assert_eq!(steps[1], step("Test", "IN_PROGRESS", Value::Null));
    sim.state.advance(STEP);
    let (state, steps) = run_states(&sim, &run).await;
    assert_eq!(state, json!(["COMPLETED", "FAILED"]));
    assert_eq!(
        steps,
        [
            step("Build", "COMPLETED", json!("SUCCESSFUL")),
            step("Test", "COMPLETED", json!("FAILED")),
        ]
    );
    let (status, log) = step_log(&sim, &run, 1).await;
    assert_eq!(status, 200);
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len() - 20..].join("\n");
    for needle in [
        "panicked at src/routes/users.rs",
        "assertion `left == right` failed",
        "test result: FAILED. 179 passed; 1 failed",
        "error: test failed",
    ] {
        assert!(tail.contains(needle), "{needle} not in the tail:\n{tail}");
    }
    sim.state.advance(STEP * 5);
    assert_eq!(
        run_states(&sim, &run).await.0,
        json!(["COMPLETED", "FAILED"])
    );
}

#[tokio::test]
async fn steps_after_a_failed_one_are_not_run() {
    let sim = Sim::start().await.unwrap();
    let run = start_run(&sim, "main").await;
    for p in crate::sim::lock(&sim.state.bitbucket)
        .repos
        .iter_mut()
        .flat_map(|r| &mut r.pipelines)
    {
        if let Some(live) = &mut p.live {
            live.fail_at = Some(1);
        }
    }
    sim.state.advance(STEP * 3);
    let (state, steps) = run_states(&sim, &run).await;
    assert_eq!(state, json!(["COMPLETED", "FAILED"]));
    assert_eq!(
        steps[2],
        step("Deploy to staging", "COMPLETED", json!("NOT_RUN"))
    );
    assert_eq!(step_log(&sim, &run, 2).await.0, 404);
}

#[tokio::test]
async fn a_stopped_run_stays_stopped() {
    let sim = Sim::start().await.unwrap();
    let run = start_run(&sim, "main").await;
    sim.state.advance(STEP * 2);
    let (status, _) = send(
        &sim,
        reqwest::Method::POST,
        &format!("{run}/stopPipeline"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(sim.state.live_runs(super::super::Which::Bitbucket), 0);
    sim.state.advance(STEP * 10);
    let (state, steps) = run_states(&sim, &run).await;
    assert_eq!(state, json!(["COMPLETED", "STOPPED"]));
    assert_eq!(
        steps,
        [
            step("Build", "COMPLETED", json!("SUCCESSFUL")),
            step("Test", "COMPLETED", json!("STOPPED")),
            step("Deploy to staging", "COMPLETED", json!("NOT_RUN")),
        ]
    );
    let (_, list) = get(&sim, &format!("{run}/steps")).await;
    let test = &list["values"][1];
    assert!(test["started_on"].as_str() < test["completed_on"].as_str());
    let (_, log) = step_log(&sim, &run, 1).await;
    assert!(log.contains("Build stopped by user"));
}

#[tokio::test]
async fn seeded_pipelines_never_move() {
    let sim = Sim::start().await.unwrap();
    start_run(&sim, "main").await;
    let before = get(&sim, "/repositories/acme/api/pipelines?pagelen=20")
        .await
        .1;
    sim.state.advance(STEP * 100);
    let after = get(&sim, "/repositories/acme/api/pipelines?pagelen=20")
        .await
        .1;
    assert_eq!(
        before["values"][14], after["values"][14],
        "#315 still running"
    );
    assert_eq!(after["values"][14]["state"]["name"], "IN_PROGRESS");
    let seeded = |v: &Value| v["values"].as_array().unwrap()[..15].to_vec();
    assert_eq!(seeded(&before), seeded(&after));
}

/// The pipelines list pages by number: `page`, `pagelen` and `size`, never `next`.
#[tokio::test]
async fn the_pipelines_list_has_no_next_link() {
    let sim = Sim::start().await.unwrap();
    let (_, first) = get(&sim, "/repositories/acme/api/pipelines?pagelen=4").await;
    assert_eq!(
        (
            first["page"].as_u64(),
            first["pagelen"].as_u64(),
            first["size"].as_u64()
        ),
        (Some(1), Some(4), Some(15))
    );
    assert!(first.get("next").is_none(), "{first}");
    let (_, last) = get(&sim, "/repositories/acme/api/pipelines?pagelen=4&page=4").await;
    assert_eq!(last["values"].as_array().unwrap().len(), 3);
}

/// A run of `deploy-production` stops before its manual step: IN_PROGRESS with stage PAUSED, the
/// step PENDING with a manual trigger, and more time changes nothing.
#[tokio::test]
async fn a_manual_step_pauses_the_run() {
    let sim = Sim::start().await.unwrap();
    sim.state.set_run_step_ms(STEP.as_millis() as u64);
    let (status, run) = send(
        &sim,
        reqwest::Method::POST,
        "/repositories/acme/api/pipelines",
        Some(json!({"target": {"type": "pipeline_ref_target", "ref_type": "branch", "ref_name": "main",
                               "selector": {"type": "custom", "pattern": "deploy-production"}}})),
    )
    .await;
    assert_eq!(status, 201, "{run}");
    let run = format!(
        "/repositories/acme/api/pipelines/{}",
        super::super::enc(run["uuid"].as_str().unwrap())
    );
    sim.state.advance(STEP * 2);
    for _ in 0..2 {
        let (_, p) = get(&sim, &run).await;
        assert_eq!(
            p["state"],
            json!({"name": "IN_PROGRESS", "type": "pipeline_state_in_progress",
                   "stage": {"name": "PAUSED", "type": "pipeline_state_in_progress_paused"}})
        );
        let (_, steps) = get(&sim, &format!("{run}/steps")).await;
        assert_eq!(steps["values"][0]["state"]["result"]["name"], "SUCCESSFUL");
        assert_eq!(steps["values"][1]["state"]["name"], "PENDING");
        assert_eq!(
            steps["values"][1]["trigger"]["type"],
            "pipeline_step_trigger_manual"
        );
        sim.state.advance(STEP * 10);
    }
}

/// A merge that takes time: 202, no body, a `Location` to its task, which reads PENDING, then
/// SUCCESS with the merged pull request; a task of another pull request is a 400.
#[tokio::test]
async fn a_slow_merge_is_a_task_to_poll() {
    let sim = Sim::start().await.unwrap();
    sim.state.set_merge_ms(STEP.as_millis() as u64);
    let response = client()
        .post(format!(
            "{}/repositories/acme/api/pullrequests/21/merge",
            sim.bitbucket_url
        ))
        .bearer_auth(BITBUCKET_TOKEN)
        .json(&json!({"merge_strategy": "squash"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    assert!(response.text().await.unwrap().is_empty(), "no body");
    let path = location
        .strip_prefix(&sim.bitbucket_url)
        .expect("inside the API")
        .to_string();
    assert!(
        path.starts_with("/repositories/acme/api/pullrequests/21/merge/task-status/"),
        "{path}"
    );
    let (status, pending) = get(&sim, &path).await;
    assert_eq!(status, 200);
    assert_eq!(pending["task_status"], "PENDING");
    assert!(pending.get("merge_result").is_none());
    let (_, pr) = get(&sim, "/repositories/acme/api/pullrequests/21").await;
    assert_eq!(pr["state"], "OPEN", "not merged yet");
    let other = path.replace("/pullrequests/21/", "/pullrequests/20/");
    assert_eq!(get(&sim, &other).await.0, 400);

    sim.state.advance(STEP);
    let (_, done) = get(&sim, &path).await;
    assert_eq!(done["task_status"], "SUCCESS", "{done}");
    assert_eq!(done["merge_result"]["state"], "MERGED");
    assert_eq!(done["merge_result"]["id"], 21);
    let (_, pr) = get(&sim, "/repositories/acme/api/pullrequests/21").await;
    assert_eq!(pr["state"], "MERGED");
    assert_eq!(sim.state.live_runs(super::super::Which::Bitbucket), 0);

    // `async=true` always answers 202, even when merges are quick.
    sim.state.set_merge_ms(0);
    let response = client()
        .post(format!(
            "{}/repositories/acme/api/pullrequests/24/merge?async=true",
            sim.bitbucket_url
        ))
        .bearer_auth(BITBUCKET_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
}

/// The documented run bodies pass; a commit target without a selector is refused naming it.
#[tokio::test]
async fn a_commit_target_needs_a_selector() {
    let sim = Sim::start().await.unwrap();
    let head = crate::sim::lock(&sim.state.bitbucket).repos[0].branches[0]
        .head
        .clone();
    let run = |target: Value| {
        send(
            &sim,
            reqwest::Method::POST,
            "/repositories/acme/api/pipelines",
            Some(json!({"target": target})),
        )
    };
    let (status, body) =
        run(json!({"type": "pipeline_commit_target", "commit": {"type": "commit", "hash": head}}))
            .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["fields"].get("target.selector").is_some(),
        "{body}"
    );
    let (status, _) = run(
        json!({"type": "pipeline_commit_target", "commit": {"type": "commit", "hash": head},
                                 "selector": {"type": "custom", "pattern": "nightly-e2e"}}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = run(
        json!({"type": "pipeline_ref_target", "ref_type": "branch", "ref_name": "main",
                                 "commit": {"type": "commit", "hash": head}}),
    )
    .await;
    assert_eq!(status, 201);
}
