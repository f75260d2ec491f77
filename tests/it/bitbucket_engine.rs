//! Issue 14: behaviours of the real Bitbucket Cloud the engine has to handle, each one produced by the
//! sim as the real API does it and met through an MCP client: the pipelines list without `next`, step
//! logs moved to long-term storage behind a 307, merges answered with 202 and a task to poll, a run
//! paused at a manual step, and the run bodies the real API accepts.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;
use devgate::sim::Sim;
use serde_json::{Value, json};

/// A sim whose merges take `merge_ms`, and devgate over stdio (optionally with catalogs from
/// `tools_dir`) that merges without asking and polls the merge's task every 15 ms.
async fn merging(merge_ms: u64, tools_dir: Option<&Path>) -> (Sim, Watched, Watcher) {
    let sim = Sim::start().await.unwrap();
    sim.state.set_merge_ms(merge_ms);
    let config = config_for(
        &sim,
        "\n[tools]\nconfirm_destructive = false\nwait_poll_ms = 15",
    );
    let extra: Vec<&str> = match tools_dir {
        Some(dir) => vec!["--tools-dir", dir.to_str().unwrap()],
        None => vec![],
    };
    let (client, watcher) = stdio_watched(&config, &extra).await;
    (sim, client, watcher)
}

/// The shipped catalogs with the merge's task followed for `secs` seconds instead of the default.
fn catalogs_following_merges_for(secs: u64) -> PathBuf {
    let dir = temp_path("tools");
    std::fs::create_dir_all(&dir).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools");
    let bitbucket = std::fs::read_to_string(root.join("bitbucket.toml")).unwrap();
    let marker = "result = \"merge_result\"\n";
    std::fs::write(
        dir.join("bitbucket.toml"),
        bitbucket.replace(marker, &format!("{marker}seconds = {secs}\n")),
    )
    .unwrap();
    std::fs::copy(root.join("buddy.toml"), dir.join("buddy.toml")).unwrap();
    dir
}

/// The pipelines list answers `page`, `pagelen` and `size` without `next` (BCLOUD-20639): the cursor
/// moves on by page number, to the end, and stays bound to the arguments it was issued for.
#[tokio::test(flavor = "multi_thread")]
async fn the_pipelines_list_pages_by_number_when_next_is_missing() {
    let sim = Sim::start().await.unwrap();
    let client = in_process_for(&sim, "").await;
    let first = json!({"repo_slug": "api", "limit": 4});
    let mut arguments = first.clone();
    let mut seen: Vec<u64> = Vec::new();
    let mut pages = 0;
    loop {
        let page = ok(
            "bitbucket_list_pipelines",
            &call(&client, "bitbucket_list_pipelines", arguments.clone()).await,
        );
        pages += 1;
        let items = page["items"].as_array().unwrap();
        assert!(!items.is_empty(), "page {pages} is empty: {page}");
        seen.extend(items.iter().map(|p| p["build_number"].as_u64().unwrap()));
        match page.get("next_cursor").and_then(Value::as_str) {
            Some(cursor) => {
                arguments = first.clone();
                arguments["cursor"] = json!(cursor);
            }
            None => break,
        }
        assert!(pages < 10, "paging never ends");
    }
    assert_eq!(pages, 4, "15 runs in pages of 4: {seen:?}");
    let mut sorted = seen.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(seen, sorted, "every run once, newest first");
    assert_eq!(seen.len(), 15, "{seen:?}");
    let sent: Vec<String> = sim
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/pipelines"))
        .filter_map(|r| r.query.clone())
        .collect();
    assert!(
        sent.iter().any(|q| q.contains("page=4")),
        "the last page was asked by number: {sent:?}"
    );

    // The cursor stays bound to its arguments.
    let page = ok(
        "bitbucket_list_pipelines",
        &call(&client, "bitbucket_list_pipelines", first.clone()).await,
    );
    let mut other = json!({"repo_slug": "api", "branch": "main", "limit": 4});
    other["cursor"] = page["next_cursor"].clone();
    let refused = call(&client, "bitbucket_list_pipelines", other).await;
    assert!(is_error(&refused), "{}", text(&refused));
    assert!(text(&refused).contains("cursor"), "{}", text(&refused));
    client.cancel().await.unwrap();
}

/// The seeded run and finished step of the catalog's example.
const FINISHED: (&str, &str) = (
    "{50d9818b-bf4a-4c9c-ad2c-f6e9f32c28af}",
    "{ae6b1155-7113-47d3-aabd-800f7d4fe4be}",
);

fn encoded(uuid: &str) -> String {
    uuid.replace('{', "%7B").replace('}', "%7D")
}

/// Storage requests the sim saw, with the credential scheme each carried.
fn storage_requests(sim: &Sim) -> Vec<(String, String)> {
    sim.requests()
        .iter()
        .filter(|r| r.path.starts_with("/step-logs/"))
        .map(|r| (r.path.clone(), r.auth.clone()))
        .collect()
}

/// A finished step's log answers 307 to long-term storage on another host: devgate follows it without
/// credentials (the storage refuses requests that carry them), reads the whole log, its tail, and
/// windows of it under the usual text cap, and never shows the pre-signed URL's signature. A running
/// step's log is still served by the API itself.
#[tokio::test(flavor = "multi_thread")]
async fn finished_step_logs_come_from_storage_without_credentials() {
    let sim = Sim::start().await.unwrap();
    let (client, stderr) = stdio(&config_for(&sim, "\n[tools]\ntext_cap_bytes = 1024")).await;
    let (pipeline, step) = FINISHED;
    let log_url = format!(
        "{}/repositories/acme/api/pipelines/{}/steps/{}/log",
        sim.bitbucket_url,
        encoded(pipeline),
        encoded(step)
    );
    // What the real API does, seen with a plain client: 307 to another origin, a signed URL.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = plain
        .get(&log_url)
        .bearer_auth(devgate::sim::BITBUCKET_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 307);
    let location = answer.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&sim.storage_url), "{location}");
    let signature = location
        .split("X-Amz-Signature=")
        .nth(1)
        .unwrap()
        .to_string();
    let with_credentials = plain
        .get(&location)
        .bearer_auth(devgate::sim::BITBUCKET_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        with_credentials.status(),
        400,
        "storage refuses credentials"
    );
    let whole = plain
        .get(&location)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        whole.len() > 4096,
        "a log longer than the cap: {}",
        whole.len()
    );
    sim.state.clear_requests();

    let args = json!({"repo_slug": "api", "pipeline_uuid": pipeline, "step_uuid": step});
    let first = ok(
        "bitbucket_get_step_log",
        &call(&client, "bitbucket_get_step_log", args.clone()).await,
    );
    let first_text = first["text"].as_str().unwrap();
    let cut = first["next_offset"].as_u64().expect("cut at the text cap") as usize;
    assert!(cut <= 1024 && cut > 900, "{cut}");
    assert_eq!(first_text, &whole[..cut]);
    assert_eq!(first["total_bytes"], whole.len(), "{first}");
    let mut more = args.clone();
    more["offset"] = json!(cut);
    let second = ok(
        "bitbucket_get_step_log",
        &call(&client, "bitbucket_get_step_log", more).await,
    );
    let end = second["next_offset"].as_u64().unwrap() as usize;
    assert_eq!(second["text"].as_str().unwrap(), &whole[cut..end]);

    let mut tail = args.clone();
    tail["tail"] = json!(5);
    let last = ok(
        "bitbucket_get_step_log",
        &call(&client, "bitbucket_get_step_log", tail).await,
    );
    let lines: Vec<&str> = whole.lines().collect();
    assert_eq!(
        last["text"].as_str().unwrap().lines().collect::<Vec<_>>(),
        lines[lines.len() - 5..]
    );

    let fetched = storage_requests(&sim);
    assert_eq!(fetched.len(), 3, "each call went to storage: {fetched:?}");
    assert!(
        fetched.iter().all(|(_, auth)| auth == "None"),
        "never with credentials: {fetched:?}"
    );
    for (what, haystack) in [
        ("stderr", stderr.text()),
        ("results", format!("{first}{second}{last}")),
    ] {
        assert!(
            !haystack.contains(&signature),
            "the signature reached {what}"
        );
    }

    // A step still running: its log comes from the API itself, not from storage.
    let runs = ok(
        "bitbucket_list_pipelines",
        &call(
            &client,
            "bitbucket_list_pipelines",
            json!({"repo_slug": "api"}),
        )
        .await,
    );
    let running = runs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["state"] == "IN_PROGRESS")
        .expect("a run in progress")["uuid"]
        .clone();
    let steps = ok(
        "bitbucket_list_pipeline_steps",
        &call(
            &client,
            "bitbucket_list_pipeline_steps",
            json!({"repo_slug": "api", "pipeline_uuid": running}),
        )
        .await,
    );
    let live = steps["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["state"] == "IN_PROGRESS")
        .expect("a running step")["uuid"]
        .clone();
    sim.state.clear_requests();
    let log = ok(
        "bitbucket_get_step_log",
        &call(
            &client,
            "bitbucket_get_step_log",
            json!({"repo_slug": "api", "pipeline_uuid": running, "step_uuid": live, "tail": 3}),
        )
        .await,
    );
    assert!(!log["text"].as_str().unwrap().is_empty());
    assert!(storage_requests(&sim).is_empty());
    client.cancel().await.unwrap();
}

/// `wait` on a run that fails: the failed step has finished, so its log tail comes from storage.
#[tokio::test(flavor = "multi_thread")]
async fn the_waited_runs_failed_step_tail_comes_from_storage() {
    let sim = Sim::start().await.unwrap();
    sim.state.set_run_step_ms(20);
    let client = in_process_for(&sim, "\n[tools]\nwait_poll_ms = 15").await;
    let run = ok(
        "bitbucket_run_pipeline",
        &call(
            &client,
            "bitbucket_run_pipeline",
            json!({"repo_slug": "api", "branch": "feature/login", "wait": 60}),
        )
        .await,
    );
    assert_eq!(run["result"], "FAILED", "{run}");
    let tail = run["failed_step"]["log_tail"].as_str().unwrap();
    assert!(tail.contains("test result: FAILED"), "{tail}");
    let fetched = storage_requests(&sim);
    assert_eq!(fetched.len(), 1, "{fetched:?}");
    assert_eq!(fetched[0].1, "None");
    client.cancel().await.unwrap();
}

/// Merges that outlast Bitbucket's wait are answered 202 with a `Location` to the merge's task and no
/// body: devgate polls the task, reporting progress, and returns the merged pull request.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_merge_is_followed_to_the_merged_pull_request() {
    let (sim, client, watcher) = merging(300, None).await;
    let merged = ok(
        "bitbucket_merge_pull_request",
        &call(
            &client,
            "bitbucket_merge_pull_request",
            json!({"repo_slug": "api", "pull_request_id": 21, "strategy": "squash"}),
        )
        .await,
    );
    assert_eq!(merged["state"], "MERGED", "{merged}");
    assert_eq!(merged["id"], 21, "{merged}");
    assert!(merged["merge_commit"].is_string(), "{merged}");
    assert_eq!(merged["closed_by"], "Ann Dev", "{merged}");
    let polls = count(&sim, "GET", "/pullrequests/21/merge/task-status/");
    assert!(polls >= 2, "the task was polled until done: {polls}");
    eventually("progress while it merges", || {
        !watcher.progress.lock().unwrap().is_empty()
    })
    .await;
    let lines = watcher.messages();
    assert!(
        lines.iter().any(|l| l.contains("PENDING")),
        "progress while it merges: {lines:?}"
    );
    client.cancel().await.unwrap();
}

/// A merge still running when devgate stops following it: the result says so, names the tool that
/// checks the pull request with its arguments, and the merge completes on its own.
#[tokio::test(flavor = "multi_thread")]
async fn a_merge_still_running_says_so_and_how_to_check_it() {
    let tools = catalogs_following_merges_for(1);
    let (sim, client, _) = merging(600_000, Some(&tools)).await;
    let started = Instant::now();
    let running = ok(
        "bitbucket_merge_pull_request",
        &call(
            &client,
            "bitbucket_merge_pull_request",
            json!({"repo_slug": "api", "pull_request_id": 21}),
        )
        .await,
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(running["task_status"], "PENDING", "{running}");
    let note = running["wait_note"].as_str().expect("a note");
    assert!(
        note.contains("still working") && note.contains("bitbucket_get_pull_request"),
        "{note}"
    );
    let step = &running["next_step"];
    assert_eq!(step["tool"], "bitbucket_get_pull_request", "{running}");
    assert_eq!(
        step["arguments"],
        json!({"workspace": "acme", "repo_slug": "api", "pull_request_id": 21})
    );
    let open = ok(
        "bitbucket_get_pull_request",
        &call(
            &client,
            "bitbucket_get_pull_request",
            step["arguments"].clone(),
        )
        .await,
    );
    assert_eq!(open["state"], "OPEN", "not merged yet: {open}");

    sim.state.advance(Duration::from_secs(600));
    let done = ok(
        "bitbucket_get_pull_request",
        &call(
            &client,
            "bitbucket_get_pull_request",
            step["arguments"].clone(),
        )
        .await,
    );
    assert_eq!(done["state"], "MERGED", "the merge went on: {done}");
    client.cancel().await.unwrap();
}

/// A run that reaches a manual step pauses (`IN_PROGRESS`, stage `PAUSED`): `wait` returns at once,
/// saying the run waits for someone to run the step in Bitbucket and which tool checks it then.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_paused_at_a_manual_step_comes_back_at_once() {
    let sim = Sim::start().await.unwrap();
    sim.state.set_run_step_ms(20);
    let config = config_for(&sim, "\n[tools]\nwait_poll_ms = 15");
    let (client, watcher) = stdio_watched(&config, &[]).await;
    let started = Instant::now();
    let run = ok(
        "bitbucket_run_pipeline",
        &call(
            &client,
            "bitbucket_run_pipeline",
            json!({"repo_slug": "api", "branch": "main", "pipeline": "deploy-production", "wait": 30}),
        )
        .await,
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "not held to the bound"
    );
    assert_eq!(run["state"], "IN_PROGRESS", "{run}");
    assert_eq!(run["stage"], "PAUSED", "{run}");
    let steps = run["steps"].as_array().unwrap();
    assert!(
        steps
            .iter()
            .any(|s| s["name"] == "Build" && s["result"] == "SUCCESSFUL"),
        "{run}"
    );
    assert!(
        steps
            .iter()
            .any(|s| s["name"] == "Deploy to production" && s["state"] == "PENDING"),
        "{run}"
    );
    let note = run["wait_note"].as_str().expect("a note");
    assert!(note.contains("manual step"), "{note}");
    assert_eq!(run["next_step"]["tool"], "bitbucket_get_pipeline", "{run}");
    assert!(
        !watcher.progress.lock().unwrap().is_empty(),
        "progress was reported"
    );

    // It stays paused: nobody runs the manual step.
    sim.state.advance(Duration::from_secs(60));
    let later = ok(
        "bitbucket_get_pipeline",
        &call(
            &client,
            "bitbucket_get_pipeline",
            run["next_step"]["arguments"].clone(),
        )
        .await,
    );
    assert_eq!(
        (later["state"].as_str(), later["stage"].as_str()),
        (Some("IN_PROGRESS"), Some("PAUSED")),
        "{later}"
    );
    client.cancel().await.unwrap();
}

/// The run bodies Bitbucket documents: a commit runs inside a branch's ref target or as a named
/// (custom) pipeline; a commit alone is refused before anything is sent, naming what to add. The sim
/// refuses the undocumented shape (a commit target without a selector) as the real API does.
#[tokio::test(flavor = "multi_thread")]
async fn a_commit_runs_with_a_branch_or_a_named_pipeline() {
    let sim = Sim::start().await.unwrap();
    let client = in_process_for(&sim, "").await;
    let branches = ok(
        "bitbucket_list_branches",
        &call(
            &client,
            "bitbucket_list_branches",
            json!({"repo_slug": "api", "name": "main"}),
        )
        .await,
    );
    let hash = branches["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "main")
        .expect("main")["hash"]
        .as_str()
        .unwrap()
        .to_string();
    let posts = |sim: &Sim| {
        sim.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/pipelines"))
            .collect::<Vec<_>>()
    };

    let alone = call(
        &client,
        "bitbucket_run_pipeline",
        json!({"repo_slug": "api", "commit": hash}),
    )
    .await;
    assert!(is_error(&alone), "{}", text(&alone));
    let message = text(&alone);
    assert!(
        message.contains("commit")
            && message.contains("`branch`")
            && message.contains("`pipeline`"),
        "{message}"
    );
    assert!(posts(&sim).is_empty(), "nothing was sent");

    let on_branch = ok(
        "bitbucket_run_pipeline",
        &call(
            &client,
            "bitbucket_run_pipeline",
            json!({"repo_slug": "api", "branch": "main", "commit": hash}),
        )
        .await,
    );
    assert_eq!(on_branch["state"], "PENDING", "{on_branch}");
    assert_eq!(
        posts(&sim).last().unwrap().body,
        Some(
            json!({"target": {"type": "pipeline_ref_target", "ref_type": "branch", "ref_name": "main",
                               "commit": {"type": "commit", "hash": hash}}})
        )
    );

    let named = ok(
        "bitbucket_run_pipeline",
        &call(
            &client,
            "bitbucket_run_pipeline",
            json!({"repo_slug": "api", "commit": hash, "pipeline": "nightly-e2e"}),
        )
        .await,
    );
    assert_eq!(named["state"], "PENDING", "{named}");
    assert_eq!(
        posts(&sim).last().unwrap().body,
        Some(json!({"target": {"type": "pipeline_commit_target",
                               "commit": {"type": "commit", "hash": hash},
                               "selector": {"type": "custom", "pattern": "nightly-e2e"}}}))
    );

    // What the old body got from the API.
    let refused = reqwest::Client::new()
        .post(format!("{}/repositories/acme/api/pipelines", sim.bitbucket_url))
        .bearer_auth(devgate::sim::BITBUCKET_TOKEN)
        .json(&json!({"target": {"type": "pipeline_commit_target", "commit": {"type": "commit", "hash": hash}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"]["fields"].get("target.selector").is_some(),
        "{body}"
    );
    client.cancel().await.unwrap();
}

/// A merge task that fails (here the pull request is declined in Bitbucket while the merge waits) comes
/// back as the provider's error, not as a success.
#[tokio::test(flavor = "multi_thread")]
async fn a_merge_task_that_fails_is_an_error() {
    let (sim, client, _) = merging(600_000, None).await;
    let meddler = {
        let state = sim.state.clone();
        let base = sim.bitbucket_url.clone();
        tokio::spawn(async move {
            // Once devgate polls the task, someone declines the pull request and the merge ends.
            let deadline = Instant::now() + Duration::from_secs(20);
            while !state
                .requests()
                .iter()
                .any(|r| r.path.contains("/merge/task-status/"))
            {
                assert!(Instant::now() < deadline, "the task was never polled");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let declined = reqwest::Client::new()
                .post(format!(
                    "{base}/repositories/acme/api/pullrequests/21/decline"
                ))
                .bearer_auth(devgate::sim::BITBUCKET_TOKEN)
                .send()
                .await
                .unwrap();
            assert!(declined.status().is_success(), "{}", declined.status());
            state.advance(Duration::from_secs(600));
        })
    };
    let failed = call(
        &client,
        "bitbucket_merge_pull_request",
        json!({"repo_slug": "api", "pull_request_id": 21}),
    )
    .await;
    meddler.await.unwrap();
    assert!(is_error(&failed), "{}", text(&failed));
    let message = text(&failed);
    assert!(
        message.contains("400") && message.contains("declined"),
        "{message}"
    );
    client.cancel().await.unwrap();
}
