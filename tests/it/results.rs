//! What an agent and its user are told is true (issue 13, items 8–13), through the real binary over
//! stdio against the sim:
//! - a confirmation is never asked for a call that cannot succeed on the target devgate just read;
//! - provider refusals blame an argument only when the provider named one, without doubled periods;
//! - `confirm` is in the schema (and the instructions) exactly where devgate confirms;
//! - what a merge without `strategy` does is said once, truly, in the question, and nowhere else;
//! - a run that waits for someone comes back with the tool and arguments that move it on;
//! - `fields` come back under the path asked, so paths ending alike do not collide.

use std::path::Path;
use std::time::Duration;

use crate::common::form_user::{Session, User};
use crate::common::*;
use devgate::sim::Sim;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};
use tokio::process::Command;

/// `devgate stdio` with `config`, spoken to by a client whose user answers `accept`.
async fn session(config: &Path, user: &User) -> Session {
    let mut cmd = Command::new(BIN);
    cmd.arg("stdio").arg("--config").arg(config);
    for (k, v) in token_env() {
        cmd.env(k, v);
    }
    user.clone()
        .serve(TokioChildProcess::new(cmd).unwrap())
        .await
        .expect("MCP handshake over stdio")
}

async fn call_as(client: &Session, tool: &str, arguments: Value) -> CallToolResult {
    client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(args(arguments)))
        .await
        .unwrap_or_else(|e| panic!("{tool}: protocol error {e}"))
}

fn sent(sim: &Sim, method: &str, path_contains: &str) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.method == method && r.path.contains(path_contains))
        .count()
}

/// Item 8: devgate reads the target before it asks; when that read shows the call cannot succeed
/// (a finished run, a merged PR), the user is not asked, nothing is sent, and the agent learns the
/// state and the tool that shows it. A call that can succeed is still asked.
#[tokio::test(flavor = "multi_thread")]
async fn a_call_that_cannot_succeed_is_refused_without_asking() {
    let sim = Sim::start().await.unwrap();
    let user = User::new(true);
    let client = session(&config_for(&sim, ""), &user).await;

    // Run 5126 of build-and-test has failed: there is nothing to stop.
    let stop = call_as(
        &client,
        "buddy_stop_execution",
        json!({"project": "web", "pipeline": 1, "execution_id": 5126}),
    )
    .await;
    assert!(is_error(&stop), "{}", text(&stop));
    let message = text(&stop);
    assert!(
        message.contains("FAILED") && message.contains("buddy_get_execution"),
        "{message}"
    );
    assert!(
        user.asked().is_empty(),
        "not asked to confirm: {:?}",
        user.asked()
    );
    assert_eq!(sent(&sim, "PATCH", "/executions/"), 0, "nothing was sent");

    // A running run can be stopped: that one is asked.
    ok(
        "buddy_stop_execution",
        &call_as(
            &client,
            "buddy_stop_execution",
            json!({"project": "web", "pipeline": 1, "execution_id": 5127}),
        )
        .await,
    );
    assert_eq!(user.asked().len(), 1, "{:?}", user.asked());

    // Merging an open PR is asked once; merging it again is refused without a question.
    let pr = json!({"repo_slug": "api", "pull_request_id": 21});
    ok(
        "bitbucket_merge_pull_request",
        &call_as(&client, "bitbucket_merge_pull_request", pr.clone()).await,
    );
    assert_eq!(user.asked().len(), 2, "{:?}", user.asked());
    let again = call_as(&client, "bitbucket_merge_pull_request", pr).await;
    assert!(is_error(&again), "{}", text(&again));
    let message = text(&again);
    assert!(
        message.contains("MERGED") && message.contains("bitbucket_get_pull_request"),
        "{message}"
    );
    assert_eq!(user.asked().len(), 2, "not asked again: {:?}", user.asked());
    assert_eq!(sent(&sim, "POST", "/merge"), 1, "merged once");
    client.cancel().await.unwrap();
}

/// Item 9: a 400 names an argument to correct only when the provider named one; refusals of a change
/// send the agent to read the target; provider sentences keep one full stop.
#[tokio::test(flavor = "multi_thread")]
async fn provider_refusals_blame_an_argument_only_when_one_was_named() {
    let sim = Sim::start().await.unwrap();
    let user = User::new(true);
    // Without confirmations the calls reach the provider, which refuses them.
    let config = config_for(&sim, "\n[tools]\nconfirm_destructive = false");
    let client = session(&config, &user).await;

    let mut texts = Vec::new();
    for (tool, arguments) in [
        (
            "buddy_stop_execution",
            json!({"project": "web", "pipeline": 1, "execution_id": 5126}),
        ),
        (
            "buddy_approve_execution",
            json!({"project": "web", "pipeline": 1, "execution_id": 5126}),
        ),
    ] {
        let r = call_as(&client, tool, arguments).await;
        assert!(is_error(&r), "{tool}: {}", text(&r));
        let message = text(&r);
        assert!(message.contains("answered 400"), "{tool}: {message}");
        assert!(
            !message.contains("Correct the argument"),
            "{tool}: no argument is wrong: {message}"
        );
        assert!(
            message.contains("read it first") && message.contains("buddy_get_execution"),
            "{tool}: {message}"
        );
        texts.push(message);
    }

    // A finished Bitbucket pipeline: its message ends with a full stop of its own.
    let runs = ok(
        "bitbucket_list_pipelines",
        &call_as(
            &client,
            "bitbucket_list_pipelines",
            json!({"repo_slug": "api", "limit": 20}),
        )
        .await,
    );
    let done = runs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["state"] == "COMPLETED")
        .expect("a completed pipeline run");
    let r = call_as(
        &client,
        "bitbucket_stop_pipeline",
        json!({"repo_slug": "api", "pipeline_uuid": done["uuid"]}),
    )
    .await;
    assert!(is_error(&r), "{}", text(&r));
    assert!(text(&r).contains("nothing to stop."), "{}", text(&r));
    assert!(text(&r).contains("bitbucket_get_pipeline"), "{}", text(&r));
    texts.push(text(&r));

    // The provider names the field it rejects: that argument is the one to correct.
    let r = call_as(
        &client,
        "bitbucket_create_pull_request",
        json!({"repo_slug": "api", "title": "Try", "source": "feature/audit-log-export", "destination": "no-such-branch"}),
    )
    .await;
    assert!(is_error(&r), "{}", text(&r));
    assert!(
        text(&r).contains("Correct `destination`, then call again."),
        "{}",
        text(&r)
    );
    texts.push(text(&r));

    for message in &texts {
        assert!(!message.contains(".."), "a doubled period in: {message}");
    }
    client.cancel().await.unwrap();
}

/// The `inputSchema` properties of every listed tool, by name.
async fn schemas(client: &Session) -> Vec<(String, Value)> {
    client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| {
            let properties = t
                .input_schema
                .get("properties")
                .cloned()
                .unwrap_or(json!({}));
            (t.name.to_string(), properties)
        })
        .collect()
}

fn instructions(client: &Session) -> String {
    client
        .peer_info()
        .and_then(|i| i.instructions.clone())
        .unwrap_or_default()
}

/// Item 10: `confirm` is listed on exactly the tools devgate confirms under the config in force and
/// accepted there only; the instructions say once that such a tool waits for the user and that
/// `confirm` is ignored, and only when some tool is confirmed.
#[tokio::test(flavor = "multi_thread")]
async fn confirm_is_listed_exactly_where_devgate_confirms() {
    let sim = Sim::start().await.unwrap();
    let user = User::new(false);

    // Default: the destructive tools are confirmed.
    let client = session(&config_for(&sim, ""), &user).await;
    let tools = client.list_all_tools().await.unwrap();
    let destructive: Vec<String> = tools
        .iter()
        .filter(|t| {
            t.annotations
                .as_ref()
                .and_then(|a| a.destructive_hint)
                .unwrap_or(false)
        })
        .map(|t| t.name.to_string())
        .collect();
    assert!(
        destructive.contains(&"bitbucket_merge_pull_request".to_string()),
        "{destructive:?}"
    );
    for (name, properties) in schemas(&client).await {
        let listed = properties.get("confirm");
        assert_eq!(
            listed.is_some(),
            destructive.contains(&name),
            "{name}: {properties}"
        );
        if let Some(confirm) = listed {
            assert_eq!(confirm, &json!({"type": "boolean"}), "{name}");
        }
    }
    // What it means is said once, in the instructions.
    let said = instructions(&client);
    assert!(
        said.contains("schema lists `confirm`") && said.contains("`confirm` is ignored"),
        "{said}"
    );
    // Where devgate does not confirm, `confirm` is refused by name and nothing is sent.
    let r = call_as(
        &client,
        "bitbucket_create_branch",
        json!({"repo_slug": "api", "name": "try/confirm", "target": "main", "confirm": true}),
    )
    .await;
    assert!(is_error(&r), "{}", text(&r));
    assert!(
        text(&r).contains("confirm:") && text(&r).contains("without it"),
        "{}",
        text(&r)
    );
    assert_eq!(sent(&sim, "POST", "/refs/branches"), 0);
    client.cancel().await.unwrap();

    // An operator's choice: no destructive confirmations, but runs confirmed.
    let config = config_for(
        &sim,
        "\n[tools]\nconfirm_destructive = false\nconfirm = [\"buddy_run_pipeline\"]",
    );
    let client = session(&config, &user).await;
    let listed: Vec<String> = schemas(&client)
        .await
        .into_iter()
        .filter(|(_, p)| p.get("confirm").is_some())
        .map(|(n, _)| n)
        .collect();
    assert_eq!(listed, ["buddy_run_pipeline"]);
    assert!(instructions(&client).contains("`confirm`"));
    client.cancel().await.unwrap();

    // Nothing confirmed: no tool lists it and the instructions do not promise it.
    let config = config_for(&sim, "\n[tools]\nconfirm_destructive = false");
    let client = session(&config, &user).await;
    assert!(
        schemas(&client)
            .await
            .iter()
            .all(|(_, p)| p.get("confirm").is_none())
    );
    assert!(
        !instructions(&client).contains("`confirm`"),
        "{}",
        instructions(&client)
    );
    client.cancel().await.unwrap();
}

/// Item 11: what a merge without `strategy` does is said once, in the user's question ("the
/// repository's default strategy"); the tool's description and schema claim no default of their own.
#[tokio::test(flavor = "multi_thread")]
async fn the_default_merge_strategy_is_said_once_and_truly() {
    let sim = Sim::start().await.unwrap();
    let user = User::new(false);
    let client = session(&config_for(&sim, ""), &user).await;
    let merge = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.name == "bitbucket_merge_pull_request")
        .expect("merge is offered");
    let listed = serde_json::to_string(&merge).unwrap();
    assert!(
        !listed.contains("default"),
        "the listing states no default of its own: {listed}"
    );

    for (arguments, said) in [
        (
            json!({"repo_slug": "api", "pull_request_id": 21}),
            "with the repository's default strategy;",
        ),
        (
            json!({"repo_slug": "api", "pull_request_id": 21, "strategy": "squash"}),
            "with squash;",
        ),
    ] {
        let declined = call_as(&client, "bitbucket_merge_pull_request", arguments).await;
        assert!(is_error(&declined), "declined");
        let question = user.asked().pop().expect("asked");
        assert!(question.contains(said), "{question}");
        assert_eq!(
            question.matches("default").count(),
            usize::from(said.contains("default")),
            "{question}"
        );
    }
    assert_eq!(sent(&sim, "POST", "/merge"), 0);
    client.cancel().await.unwrap();
}

/// Item 12: a run that stops for an approval comes back at once with `next_step`, the tool that moves
/// it on and its arguments, which work as given; when that tool is not offered, the step is the tool
/// that checks the run and the note says the user approves in Buddy; a wait that runs out names the
/// tool that checks the run, with its arguments.
#[tokio::test(flavor = "multi_thread")]
async fn a_run_waiting_for_approval_comes_back_with_the_tool_that_moves_it_on() {
    let sim = Sim::start().await.unwrap();
    sim.state.set_run_step_ms(20);
    let user = User::new(true);
    let client = session(&config_for(&sim, "\n[tools]\nwait_poll_ms = 15"), &user).await;

    let started = std::time::Instant::now();
    let run = ok(
        "buddy_run_pipeline",
        &call_as(
            &client,
            "buddy_run_pipeline",
            json!({"project": "web", "pipeline": "deploy-production", "wait": 60}),
        )
        .await,
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "not held to the bound"
    );
    assert_eq!(run["status"], "WAITING_FOR_APPLY", "{run}");
    let step = &run["next_step"];
    assert_eq!(step["tool"], "buddy_approve_execution", "{run}");
    assert_eq!(
        step["arguments"],
        json!({"workspace": "acme", "project": "web", "pipeline": 2, "execution_id": run["id"]}),
        "{run}"
    );
    let note = run["wait_note"].as_str().expect("a note");
    assert!(
        note.contains("approve") && note.contains("buddy_approve_execution"),
        "{note}"
    );
    let approved = ok(
        "buddy_approve_execution",
        &call_as(
            &client,
            step["tool"].as_str().unwrap(),
            step["arguments"].clone(),
        )
        .await,
    );
    assert!(
        ["INPROGRESS", "SUCCESSFUL"].contains(&approved["status"].as_str().unwrap_or_default()),
        "{approved}"
    );
    client.cancel().await.unwrap();

    // The approve tool is not offered: the user approves in Buddy, the step checks the run.
    let config = config_for(
        &sim,
        "\n[tools]\nwait_poll_ms = 15\nexclude = [\"buddy_approve_execution\"]",
    );
    let client = session(&config, &user).await;
    let run = ok(
        "buddy_run_pipeline",
        &call_as(
            &client,
            "buddy_run_pipeline",
            json!({"project": "web", "pipeline": 2, "wait": 60}),
        )
        .await,
    );
    assert_eq!(run["status"], "WAITING_FOR_APPLY", "{run}");
    assert_eq!(run["next_step"]["tool"], "buddy_get_execution", "{run}");
    assert_eq!(run["next_step"]["arguments"]["execution_id"], run["id"]);
    let note = run["wait_note"].as_str().unwrap();
    assert!(
        note.contains("not offered") && note.contains("Buddy.Works"),
        "{note}"
    );

    // A wait that runs out: the step is the tool that checks the run.
    sim.state.set_run_step_ms(600_000);
    let run = ok(
        "bitbucket_run_pipeline",
        &call_as(
            &client,
            "bitbucket_run_pipeline",
            json!({"repo_slug": "api", "branch": "main", "wait": 1}),
        )
        .await,
    );
    assert_eq!(run["next_step"]["tool"], "bitbucket_get_pipeline", "{run}");
    assert_eq!(
        run["next_step"]["arguments"],
        json!({"workspace": "acme", "repo_slug": "api", "pipeline_uuid": run["uuid"]}),
        "{run}"
    );
    client.cancel().await.unwrap();
}

/// Item 13: an unnamed dot path comes back under the path asked, so two paths ending alike stay
/// apart, none replaces a default field of the same last name, and `fields_absent` names the path.
#[tokio::test(flavor = "multi_thread")]
async fn asked_fields_come_back_under_the_path_asked() {
    let sim = Sim::start().await.unwrap();
    let user = User::new(false);
    let client = session(&config_for(&sim, ""), &user).await;

    let plain = ok(
        "bitbucket_list_pull_requests",
        &call_as(
            &client,
            "bitbucket_list_pull_requests",
            json!({"repo_slug": "api", "limit": 3}),
        )
        .await,
    );
    let wide = ok(
        "bitbucket_list_pull_requests",
        &call_as(
            &client,
            "bitbucket_list_pull_requests",
            json!({"repo_slug": "api", "limit": 3, "fields": ["links.html.href", "links.self.href", "rendered.title", "links.foo.bar"]}),
        )
        .await,
    );
    let items = wide["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{wide}");
    for (p, w) in plain["items"].as_array().unwrap().iter().zip(items) {
        let html = w["links.html.href"].as_str().expect("links.html.href");
        let api = w["links.self.href"].as_str().expect("links.self.href");
        assert!(html.contains("/pull-requests/"), "{html}");
        assert!(api.contains("/pullrequests/"), "{api}");
        assert!(w["rendered.title"].is_object(), "{w}");
        assert_eq!(w["title"], p["title"], "the default title is kept: {w}");
        assert!(w.get("href").is_none() && w.get("bar").is_none(), "{w}");
    }
    assert_eq!(wide["fields_absent"], json!(["links.foo.bar"]));

    // Two entries named alike by the agent cannot both come back: refused, naming both.
    let r = call_as(
        &client,
        "bitbucket_list_pull_requests",
        json!({"repo_slug": "api", "fields": ["link=links.html.href", "link=links.self.href"]}),
    )
    .await;
    assert!(is_error(&r), "{}", text(&r));
    assert!(
        text(&r).contains("link=links.html.href") && text(&r).contains("link=links.self.href"),
        "{}",
        text(&r)
    );
    client.cancel().await.unwrap();
}
