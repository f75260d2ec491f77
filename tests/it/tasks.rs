//! Long runs as MCP tasks (the `io.modelcontextprotocol/tasks` extension), through rmcp's 2026-07-28
//! client over stateless HTTP: the run tools and a slow merge answer with a task the client polls to
//! the same final result `wait` gives (the failed step's log tail); a task is its user's alone, any
//! instance sharing the store answers for it and takes it over when the one following it is gone; a
//! cancel stops devgate's polling, not the run; confirmation still comes first; clients without tasks
//! keep `wait`.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use devgate::sim::{Sim, Which};
use rmcp::RoleClient;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CancelTaskParams, ClientCapabilities, ClientConfig,
    ClientRequest, CustomRequest, GetTaskParams, Implementation, ProtocolVersion, ServerResult,
    TaskPayload, TaskStatus,
};
use rmcp::service::{ClientLifecycleMode, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

type Modern = RunningService<RoleClient, ClientConfig>;

/// A config for the sim (static tokens) with API-key callers, runs polled every 15 ms, a one-second
/// task lease, and `extra` under `[tools]`; its store next to it.
fn tasks_config(sim: &Sim, extra: &str) -> std::path::PathBuf {
    let config = config_for(
        sim,
        &format!("\n[tools]\nwait_poll_ms = 15\ntask_lease_secs = 1\n{extra}"),
    );
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("auth = \"none\"", "auth = \"api_key\"");
    std::fs::write(&config, text).unwrap();
    config
}

/// The processes' environment: the providers' tokens and one sealing key for every instance.
fn env() -> Vec<(&'static str, &'static str)> {
    let mut env = token_env();
    env.push(("DEVGATE_SECRET_KEY", TEST_SECRET_KEY));
    env
}

/// `devgate http --stateless` with [`env`].
async fn stateless(config: &Path) -> HttpGateway {
    gateway(config, true).await
}

/// `devgate http` (with sessions unless `stateless`) with [`env`].
async fn gateway(config: &Path, stateless: bool) -> HttpGateway {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(["http", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .args(stateless.then_some("--stateless"))
        .env("DEVGATE_LOG", "debug")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env() {
        cmd.env(k, v);
    }
    spawn_http(cmd).await
}

fn create_key(config: &Path, user: &str) -> String {
    let out = devgate_with(&["keys", "create", user], config, &env());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A 2026-07-28 client with `key`, declaring the tasks extension or not.
async fn modern(url: &str, key: &str, tasks: bool) -> Modern {
    client_at(url, key, tasks, ProtocolVersion::V_2026_07_28).await
}

/// A client of `version` (2026-07-28 discovers; earlier ones initialize a session) with `key`.
async fn client_at(url: &str, key: &str, tasks: bool, version: ProtocolVersion) -> Modern {
    let capabilities = if tasks {
        ClientCapabilities::builder().enable_tasks().build()
    } else {
        ClientCapabilities::default()
    };
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url.to_string()).auth_header(key.to_string()),
    );
    let lifecycle = if version == ProtocolVersion::V_2026_07_28 {
        ClientLifecycleMode::Discover {
            preferred_versions: vec![version.clone()],
        }
    } else {
        ClientLifecycleMode::Initialize
    };
    rmcp::service::serve_client_with_lifecycle(
        ClientConfig::new(capabilities, Implementation::new("tasks-test", "1"))
            .with_protocol_version(version),
        transport,
        lifecycle,
    )
    .await
    .expect("a 2026-07-28 client connects")
}

/// Calls `tool` once and returns the task it answered with.
async fn start(client: &Modern, tool: &str, arguments: Value) -> String {
    let request = CallToolRequestParams::new(tool.to_string()).with_arguments(args(arguments));
    match client.call_tool_once(request).await.expect("tools/call") {
        CallToolResponse::Task(created) => {
            assert_eq!(created.task.status, TaskStatus::Working);
            assert!(created.task.ttl_ms.is_some_and(|ttl| ttl > 0));
            assert_eq!(created.task.poll_interval_ms, Some(15));
            assert!(created.task.task_id.len() >= 40, "an unguessable id");
            created.task.task_id
        }
        other => panic!("{tool} answered without a task: {other:?}"),
    }
}

/// Polls the task (at most 30 s) until it ends; returns its last state and the status messages seen.
async fn poll_to_end(client: &Modern, id: &str) -> (TaskPayload, Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut messages: Vec<String> = Vec::new();
    loop {
        let got = client
            .get_task(GetTaskParams::new(id))
            .await
            .expect("tasks/get")
            .task;
        if let Some(m) = &got.task.status_message
            && messages.last() != Some(m)
        {
            messages.push(m.clone());
        }
        if got.status().is_terminal() {
            return (got.payload, messages);
        }
        assert!(
            Instant::now() < deadline,
            "the task never ended: {messages:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The structured content of a completed task's tool result.
fn completed(payload: TaskPayload) -> Value {
    let TaskPayload::Completed { result } = payload else {
        panic!("the task did not complete: {payload:?}");
    };
    assert_ne!(result.get("isError"), Some(&json!(true)), "{result:?}");
    result["structuredContent"].clone()
}

/// A custom request (`tasks/list`, `tasks/result`) and its result.
async fn custom(client: &Modern, method: &str, params: Option<Value>) -> Result<Value, String> {
    let request = ClientRequest::CustomRequest(CustomRequest::new(method, params));
    match client.send_request(request).await {
        Ok(ServerResult::CustomResult(result)) => Ok(result.0),
        Ok(other) => Ok(serde_json::to_value(other).unwrap()),
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_are_tasks_polled_to_the_same_result_as_wait() {
    let sim = Sim::start().await.unwrap();
    sim.state.set_run_step_ms(20);
    let config = tasks_config(&sim, "");
    let key = create_key(&config, "alice");
    let gateway = stateless(&config).await;
    let client = modern(&gateway.url, &key, true).await;

    let bitbucket = start(
        &client,
        "bitbucket_run_pipeline",
        json!({"repo_slug": "api", "branch": "feature/login"}),
    )
    .await;
    let (payload, messages) = poll_to_end(&client, &bitbucket).await;
    let run = completed(payload);
    assert_eq!(
        (&run["state"], &run["result"]),
        (&json!("COMPLETED"), &json!("FAILED")),
        "{run}"
    );
    assert_eq!(run["failed_step"]["name"], "Test", "{run}");
    let tail = run["failed_step"]["log_tail"].as_str().expect("a log tail");
    assert!(tail.contains("test result: FAILED"), "{tail}");
    assert!(
        messages
            .iter()
            .any(|m| m.contains("Test: FAILED") || m.contains("IN_PROGRESS")),
        "the steps as status messages: {messages:?}"
    );

    let buddy = start(
        &client,
        "buddy_run_pipeline",
        json!({"project": "web", "pipeline": "build-and-test", "branch": "fix/cart-rounding"}),
    )
    .await;
    let run = completed(poll_to_end(&client, &buddy).await.0);
    assert_eq!(run["status"], "FAILED", "{run}");
    assert_eq!(run["failed_step"]["name"], "Unit tests", "{run}");

    // `wait` from a client without tasks: the same failed step and log tail.
    let plain = http_client_with_key(&gateway.url, &key).await;
    let waited = ok(
        "buddy_run_pipeline",
        &call(
            &plain,
            "buddy_run_pipeline",
            json!({"project": "web", "pipeline": "build-and-test", "branch": "fix/cart-rounding", "wait": 60}),
        )
        .await,
    );
    assert_eq!(waited["failed_step"], run["failed_step"], "{waited}");
    let fields = |v: &Value| {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(fields(&waited), fields(&run), "the same result as wait");

    // The extension removed tasks/result and tasks/list in 2026-07-28: unknown methods there.
    for method in ["tasks/result", "tasks/list"] {
        let err = custom(&client, method, Some(json!({"taskId": buddy})))
            .await
            .unwrap_err();
        assert!(err.contains("-32601"), "{method}: {err}");
    }
    client.cancel().await.unwrap();
    plain.cancel().await.unwrap();
}

/// A 2025-11-25 session that declared the extension gets tasks too, and 2025's `tasks/list` and
/// `tasks/result`, for its own user's tasks only.
#[tokio::test(flavor = "multi_thread")]
async fn a_2025_session_lists_its_tasks_and_waits_for_a_result() {
    let sim = Sim::start().await.unwrap();
    sim.state.set_run_step_ms(20);
    let config = tasks_config(&sim, "");
    let key = create_key(&config, "alice");
    let gateway = gateway(&config, false).await;
    let client = client_at(&gateway.url, &key, true, ProtocolVersion::V_2025_11_25).await;
    let bitbucket = start(
        &client,
        "bitbucket_run_pipeline",
        json!({"repo_slug": "api", "branch": "feature/login"}),
    )
    .await;
    let buddy = start(
        &client,
        "buddy_run_pipeline",
        json!({"project": "web", "pipeline": "build-and-test", "branch": "fix/cart-rounding"}),
    )
    .await;
    // Another user's session sees none of alice's tasks.
    let bob = client_at(
        &gateway.url,
        &create_key(&config, "bob"),
        true,
        ProtocolVersion::V_2025_11_25,
    )
    .await;
    let err = custom(&bob, "tasks/result", Some(json!({"taskId": buddy})))
        .await
        .unwrap_err();
    assert!(err.contains("unknown task"), "{err}");
    let listed = custom(&bob, "tasks/list", None).await.unwrap();
    assert_eq!(listed["tasks"], json!([]), "{listed}");
    bob.cancel().await.unwrap();

    let result = custom(&client, "tasks/result", Some(json!({"taskId": buddy})))
        .await
        .unwrap();
    assert_eq!(
        result["structuredContent"]["failed_step"]["name"], "Unit tests",
        "{result}"
    );
    let listed = custom(&client, "tasks/list", None).await.unwrap();
    let mut ids: Vec<&str> = listed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["taskId"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut started = [buddy.as_str(), bitbucket.as_str()];
    started.sort();
    assert_eq!(ids, started, "{listed}");
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_is_its_users_and_another_instance_takes_it_over() {
    takeover(None).await;
}

/// The same with two instances on one PostgreSQL database (skipped without a test server).
#[tokio::test(flavor = "multi_thread")]
async fn on_postgres_another_instance_takes_a_task_over() {
    if let Some(database) = crate::instances::fresh_database().await {
        takeover(Some(&database)).await;
    }
}

/// Alice starts a run as a task on instance A; B answers for it, Bob (on B) cannot see or cancel it;
/// A is killed, and B takes the task over and follows it to the end. Both instances share the store:
/// the config's SQLite file, or `postgres`.
async fn takeover(postgres: Option<&str>) {
    let sim = Sim::start().await.unwrap();
    sim.state.set_run_step_ms(400);
    let config = tasks_config(&sim, "");
    if let Some(url) = postgres {
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, format!("{text}\n[store]\nurl = \"{url}\"\n")).unwrap();
    }
    let alice = create_key(&config, "alice");
    let bob = create_key(&config, "bob");
    let mut a = stateless(&config).await;
    let b = stateless(&config).await;
    let alice_a = modern(&a.url, &alice, true).await;
    let alice_b = modern(&b.url, &alice, true).await;
    let bob_b = modern(&b.url, &bob, true).await;

    let id = start(
        &alice_a,
        "bitbucket_run_pipeline",
        json!({"repo_slug": "api", "branch": "feature/login"}),
    )
    .await;
    let on_b = alice_b
        .get_task(GetTaskParams::new(&id))
        .await
        .expect("B answers");
    assert_eq!(on_b.task.status(), TaskStatus::Working);

    // Bob cannot see or cancel it.
    let err = bob_b.get_task(GetTaskParams::new(&id)).await.unwrap_err();
    assert!(err.to_string().contains("unknown task"), "{err}");
    let err = bob_b
        .cancel_task(CancelTaskParams::new(&id))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown task"), "{err}");

    // A is gone for good; B takes the task over once A's lease runs out, and follows it to the end.
    eventually("A polls the run", || count(&sim, "GET", "/pipelines/") >= 2).await;
    a.crash().await;
    let (payload, _) = poll_to_end(&alice_b, &id).await;
    let run = completed(payload);
    assert_eq!(run["failed_step"]["name"], "Test", "{run}");
    assert!(
        b.stderr.text().contains("task taken over"),
        "B says it took the task over"
    );
    // devgate's own lines never carry a task id (rmcp's debug lines print whole messages).
    for log in [a.stderr.text(), b.stderr.text()] {
        let own = log.lines().filter(|l| !l.contains(" rmcp::"));
        assert!(
            own.clone().all(|l| !l.contains(&id)),
            "{:?}",
            own.filter(|l| l.contains(&id)).collect::<Vec<_>>()
        );
    }
    for client in [alice_a, alice_b, bob_b] {
        let _ = client.cancel().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_task_stops_the_polling_not_the_run() {
    let sim = Sim::start().await.unwrap();
    sim.state.set_run_step_ms(600_000);
    let config = tasks_config(&sim, "");
    let key = create_key(&config, "alice");
    let gateway = stateless(&config).await;
    let client = modern(&gateway.url, &key, true).await;
    let polls = || count(&sim, "GET", "/executions/");

    let id = start(
        &client,
        "buddy_run_pipeline",
        json!({"project": "web", "pipeline": "build-and-test"}),
    )
    .await;
    eventually("devgate polls the run", || polls() >= 3).await;
    client
        .cancel_task(CancelTaskParams::new(&id))
        .await
        .expect("tasks/cancel");
    let got = client.get_task(GetTaskParams::new(&id)).await.unwrap().task;
    assert_eq!(got.status(), TaskStatus::Cancelled);
    assert!(
        got.task
            .status_message
            .as_deref()
            .unwrap_or_default()
            .contains("the run itself goes on"),
        "{got:?}"
    );
    // The cancel is answered after the follower was told; from then on no poll may come.
    let after = polls();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(polls(), after, "polling stopped (poll interval is 15 ms)");
    assert_eq!(sim.state.live_runs(Which::Buddy), 1, "the run goes on");
    assert!(
        !sim.requests().iter().any(|r| r.method == "PATCH"),
        "nothing was sent to stop the run"
    );
    // Cancelling again is no error; the task stays cancelled.
    client
        .cancel_task(CancelTaskParams::new(&id))
        .await
        .unwrap();
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_merge_is_a_task_and_confirmation_still_comes_first() {
    let sim = Sim::start().await.unwrap();
    sim.state.set_merge_ms(300);
    let merges = || count(&sim, "POST", "/merge");

    // Merges confirmed (the default): a tasks client that cannot be asked gets the confirm page, and
    // nothing is merged or started.
    let confirmed = tasks_config(&sim, "");
    let key = create_key(&confirmed, "alice");
    let gateway = stateless(&confirmed).await;
    let client = modern(&gateway.url, &key, true).await;
    let merge = CallToolRequestParams::new("bitbucket_merge_pull_request").with_arguments(args(
        json!({"repo_slug": "api", "pull_request_id": 21, "confirm": true}),
    ));
    let CallToolResponse::Complete(asked) = client.call_tool_once(merge).await.unwrap() else {
        panic!("a confirmed merge is no task before the user confirms");
    };
    assert!(
        text(&asked).contains("/confirm?ticket="),
        "{}",
        text(&asked)
    );
    assert_eq!(merges(), 0, "nothing merged on the model's word");
    client.cancel().await.unwrap();

    // Not confirmed: the merge Bitbucket answers with 202 is a task, completed with the merged PR.
    let unconfirmed = tasks_config(&sim, "confirm_destructive = false");
    let key = create_key(&unconfirmed, "alice");
    let gateway = stateless(&unconfirmed).await;
    let client = modern(&gateway.url, &key, true).await;
    let id = start(
        &client,
        "bitbucket_merge_pull_request",
        json!({"repo_slug": "api", "pull_request_id": 21, "strategy": "squash"}),
    )
    .await;
    let (payload, messages) = poll_to_end(&client, &id).await;
    let merged = completed(payload);
    assert_eq!(
        (&merged["state"], &merged["id"]),
        (&json!("MERGED"), &json!(21)),
        "{merged}"
    );
    assert!(
        messages.iter().any(|m| m.contains("PENDING")),
        "{messages:?}"
    );
    assert_eq!(merges(), 1);

    // A merge answered at once needs no task.
    sim.state.set_merge_ms(0);
    let fast = CallToolRequestParams::new("bitbucket_merge_pull_request")
        .with_arguments(args(json!({"repo_slug": "api", "pull_request_id": 20})));
    let CallToolResponse::Complete(done) = client.call_tool_once(fast).await.unwrap() else {
        panic!("a merge answered at once comes back at once");
    };
    assert_eq!(ok("merge", &done)["state"], "MERGED");
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_without_tasks_keep_wait() {
    let sim = Sim::start().await.unwrap();
    sim.state.set_run_step_ms(20);
    let config = tasks_config(&sim, "");
    let key = create_key(&config, "alice");
    let gateway = stateless(&config).await;

    // 2026-07-28 without the extension, and a 2025-11-25 client: `wait` as before, never a task.
    let modern_plain = modern(&gateway.url, &key, false).await;
    let request = CallToolRequestParams::new("bitbucket_run_pipeline").with_arguments(args(
        json!({"repo_slug": "api", "branch": "feature/login", "wait": 60}),
    ));
    let CallToolResponse::Complete(waited) = modern_plain.call_tool_once(request).await.unwrap()
    else {
        panic!("no task for a client without the extension");
    };
    assert_eq!(ok("run", &waited)["failed_step"]["name"], "Test");
    let err = modern_plain
        .get_task(GetTaskParams::new("x"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("-32021") || err.to_string().to_lowercase().contains("capab"),
        "{err}"
    );

    let legacy = client_at(&gateway.url, &key, false, ProtocolVersion::V_2025_11_25).await;
    let request = CallToolRequestParams::new("bitbucket_run_pipeline").with_arguments(args(
        json!({"repo_slug": "api", "branch": "feature/login", "wait": 60}),
    ));
    let CallToolResponse::Complete(waited) = legacy.call_tool_once(request).await.unwrap() else {
        panic!("no task for a 2025-11-25 client without the extension");
    };
    assert_eq!(ok("run", &waited)["failed_step"]["name"], "Test");
    // Without `wait`, the run is started and returned, not followed.
    let run = ok(
        "bitbucket_run_pipeline",
        &call(
            &legacy,
            "bitbucket_run_pipeline",
            json!({"repo_slug": "api", "branch": "main"}),
        )
        .await,
    );
    assert!(
        run.get("failed_step").is_none() && run["uuid"].is_string(),
        "started, not followed: {run}"
    );
    modern_plain.cancel().await.unwrap();
    legacy.cancel().await.unwrap();
}
