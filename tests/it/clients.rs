//! Real MCP clients we do not control, against the real binary. The official Python SDK (`mcp` from
//! PyPI) connects over streamable HTTP with an API key in each protocol era, lists tools, is asked to
//! connect Bitbucket (URL elicitation through `input_required` on 2026-07-28, the -32042 error on
//! 2025-11-25, an `isError` link without elicitation), the user follows the link, and the call succeeds.
//! The MCP Inspector's CLI lists and calls tools over stdio and HTTP.
//!
//! With the SDK's defaults and a callback that answers `accept` as soon as the link is shown, devgate
//! waits (bounded) for the user and answers once: with the result if they finished meanwhile, else with
//! the link; never a question per round, never a ticket per round.
//!
//! Needs a Python with the SDK: `DEVGATE_PYTHON_SDK` names that interpreter (`.ci/run` makes a
//! virtualenv); and for the Inspector, the Node tools of `.ci/node-tools.sh`. Without them the tests pass
//! without running and are counted in the note the binary prints at exit, unless
//! `DEVGATE_REQUIRE_PYTHON_SDK=1` / `DEVGATE_REQUIRE_NODE_TOOLS=1` make them fail (`.ci/run` sets both).

use std::process::Stdio;
use std::time::Duration;

use crate::common::*;
use devgate::sim::{Account, Sim};
use devgate::vault::Store;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// One agent on the Python SDK in `mode` (see `tests/clients/sdk_client.py`), for a user of its own:
/// it lists tools, is asked to connect Bitbucket, the user follows the link, and the call succeeds.
/// Returns the protocol version the SDK settled on, how the link reached it, and its last line.
async fn python_sdk_connects(
    python: &str,
    setup: &OAuthSetup,
    gateway: &HttpGateway,
    user: &str,
    account: &str,
    mode: &str,
) -> (String, String, Value) {
    let key = create_api_key(setup, user);
    let mut agent = tokio::process::Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/sdk_client.py"
        ))
        .arg(&gateway.url)
        .arg(&key)
        .arg(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python starts");
    let mut stderr = agent.stderr.take().unwrap();
    let warnings = tokio::spawn(async move {
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text)
            .await
            .map(|_| text)
    });
    let mut lines = BufReader::new(agent.stdout.take().unwrap()).lines();
    let mut next = async || -> Value {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the SDK client answers in time")
            .unwrap()
            .unwrap_or_else(|| panic!("the SDK client ({mode}) printed a line"));
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"))
    };
    let listed = next().await;
    assert_eq!(listed["step"], "listed", "{listed}");
    assert!(listed["tools"].as_u64().unwrap() >= 50, "{listed}");
    let connect = next().await;
    assert_eq!(connect["step"], "connect", "{mode}: {connect}");
    let link = connect["link"].as_str().expect("a connect link");
    walk_connect(link, account, "allow").await;
    agent
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"connected\n")
        .await
        .unwrap();
    let done = next().await;
    assert_eq!(done["step"], "done", "{mode}: {done}");
    assert_eq!(done["is_error"], false, "{mode}: {done}");
    assert!(done["result"]["name"].is_string(), "{mode}: {done}");
    let status = agent.wait().await.unwrap();
    let warnings = warnings.await.unwrap().unwrap();
    assert!(
        status.success(),
        "{mode}: the SDK client failed: {warnings}"
    );
    // The SDK logs what it finds wrong on stderr (a session that did not end cleanly, say).
    assert!(
        warnings.trim().is_empty(),
        "{mode}: the SDK complained: {warnings}"
    );
    (
        listed["protocol"].as_str().unwrap().to_owned(),
        connect["via"].as_str().unwrap().to_owned(),
        done,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_sdk_connects_through_elicitation_in_both_protocol_versions() {
    let Some(python) = python() else {
        return;
    };
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    let gateway = oauth_http(&setup, &[]).await;

    // 2026-07-28: the call comes back `input_required` with a URL elicitation; the SDK runs its
    // elicitation callback (the user follows the link) and retries the call by itself.
    let (protocol, via, _) =
        python_sdk_connects(&python, &setup, &gateway, "alice", "ann", "2026-07-28").await;
    assert_eq!(
        (protocol.as_str(), via.as_str()),
        ("2026-07-28", "elicitation")
    );

    // The SDK's default negotiation probes `server/discover` and lands on the modern version too.
    let (protocol, via, _) =
        python_sdk_connects(&python, &setup, &gateway, "bob", "ben", "auto").await;
    assert_eq!(
        (protocol.as_str(), via.as_str()),
        ("2026-07-28", "elicitation")
    );

    // 2025-11-25 with URL elicitation declared: the URL elicitation error (-32042), then
    // `notifications/elicitation/complete` once the user is back, then the retried call.
    let (protocol, via, done) =
        python_sdk_connects(&python, &setup, &gateway, "carol", "ann", "legacy").await;
    assert_eq!((protocol.as_str(), via.as_str()), ("2025-11-25", "error"));
    assert_eq!(done["completed"], true, "{done}");

    // 2025-11-25 without elicitation: the link comes in an `isError` the agent shows its user.
    let (protocol, via, _) =
        python_sdk_connects(&python, &setup, &gateway, "dave", "ben", "plain").await;
    assert_eq!(
        (protocol.as_str(), via.as_str()),
        ("2025-11-25", "is_error")
    );
}

/// How an `eager` agent's call went: every link its elicitation callback showed, and its last line.
struct Eager {
    links: Vec<String>,
    end: Value,
}

/// The Python SDK with its defaults and an elicitation callback that accepts at once (`eager` in
/// `sdk_client.py`), calling `bitbucket_get_current_user` as the owner of `key`. When `finish_as` names
/// an account, the user follows the first link shown once devgate waits on the retried call, and
/// consents with that account.
async fn eager_agent(
    python: &str,
    gateway: &HttpGateway,
    key: &str,
    finish_as: Option<&str>,
) -> Eager {
    let mut agent = tokio::process::Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/sdk_client.py"
        ))
        .arg(&gateway.url)
        .arg(key)
        .arg("eager")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python starts");
    let mut lines = BufReader::new(agent.stdout.take().unwrap()).lines();
    let mut links = Vec::new();
    let mut walks = Vec::new();
    let end = loop {
        let line = tokio::time::timeout(Duration::from_secs(90), lines.next_line())
            .await
            .expect("the SDK client answers in time")
            .unwrap();
        let Some(line) = line else {
            let mut stderr = String::new();
            let _ = tokio::io::AsyncReadExt::read_to_string(
                agent.stderr.as_mut().unwrap(),
                &mut stderr,
            )
            .await;
            panic!("the eager SDK client stopped without an answer: {stderr}");
        };
        let step: Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        match step["step"].as_str() {
            Some("listed") => {}
            Some("connect") => {
                let link = step["link"].as_str().expect("a link").to_string();
                if let (Some(account), true) = (finish_as, links.is_empty()) {
                    // The user finishes while devgate waits on the call the SDK retried.
                    let (link, account) = (link.clone(), account.to_string());
                    let stderr = gateway.stderr.clone();
                    walks.push(tokio::spawn(async move {
                        stderr
                            .wait_for("waiting for the user to finish connecting")
                            .await;
                        walk_connect(&link, &account, "allow").await
                    }));
                }
                links.push(link);
            }
            _ => break step,
        }
    };
    for walk in walks {
        let walk = walk.await.unwrap();
        assert!(walk.final_url.contains("/connected"), "{}", walk.final_url);
    }
    let status = agent.wait().await.unwrap();
    assert!(status.success(), "the eager SDK client failed: {end}");
    Eager { links, end }
}

/// Tickets devgate holds for `user` (live, used or expired, until purged).
async fn tickets_of(setup: &OAuthSetup, user: &str) -> i64 {
    let url = format!("sqlite://{}", setup.dir.join("devgate.db").display());
    let pool = sqlx::sqlite::SqlitePool::connect(&url).await.unwrap();
    let n = sqlx::query_scalar("SELECT count(*) FROM tickets WHERE user_id = $1")
        .bind(user)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

/// Stops devgate with SIGTERM (it writes the audit records it holds) and returns each user's records,
/// newest first.
async fn audit_after_stop(
    setup: &OAuthSetup,
    mut gateway: HttpGateway,
    users: &[&str],
) -> Vec<Vec<devgate::vault::AuditRecord>> {
    let pid = gateway.pid().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::timeout(Duration::from_secs(15), gateway.wait())
        .await
        .expect("devgate exits")
        .unwrap();
    let store = devgate::vault::sqlite::SqliteStore::open(&format!(
        "sqlite://{}",
        setup.dir.join("devgate.db").display()
    ))
    .await
    .unwrap();
    let mut out = Vec::new();
    for user in users {
        out.push(store.audit(Some(user), 0, 100).await.unwrap());
    }
    out
}

/// A client that says "accept" as soon as it opened the link, and a user who does not finish: one
/// round, one answer that carries the link (the elicitation's own), one ticket, two audit records; the
/// same for a connection broken by `invalid_grant`. No ticket reaches the log.
#[tokio::test(flavor = "multi_thread")]
async fn the_python_sdk_accepting_at_once_gets_one_answer_with_the_link() {
    let Some(python) = python() else {
        return;
    };
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "[oauth]\nconnect_wait_secs = 2");
    let erin = create_api_key(&setup, "erin");
    let finn = create_api_key(&setup, "finn");
    let gateway = oauth_http(&setup, &[]).await;

    // finn was connected; then the grant was revoked at the provider: the next call finds it broken.
    let finn_client = http_client_with_key(&gateway.url, &finn).await;
    let first = call(&finn_client, "bitbucket_get_current_user", json!({})).await;
    walk_connect(&link_in(&text(&first)), "ben", "allow").await;
    ok(
        "bitbucket_get_current_user",
        &call(&finn_client, "bitbucket_get_current_user", json!({})).await,
    );
    finn_client.cancel().await.unwrap();
    sim.state.revoke_grants(Account::Ben);
    let finn_tickets_before = tickets_of(&setup, "finn").await;

    let mut seen = Vec::new();
    for (user, key) in [("erin", &erin), ("finn", &finn)] {
        let eager = eager_agent(&python, &gateway, key, None).await;
        let end = &eager.end;
        assert_eq!(
            end["step"], "done",
            "{user}: the agent got an answer, not an exception: {end}"
        );
        assert_eq!(end["is_error"], true, "{user}: {end}");
        assert_eq!(
            eager.links.len(),
            1,
            "{user}: asked once: {:?}",
            eager.links
        );
        let text = end["text"].as_str().unwrap();
        assert!(
            text.contains(&eager.links[0]) && text.contains("finish connecting in the browser"),
            "{user}: the answer carries the same link: {text}"
        );
        let waited = end["seconds"].as_f64().unwrap();
        assert!(
            (2.0..30.0).contains(&waited),
            "{user}: waited about connect_wait_secs: {waited}"
        );
        seen.push(eager.links[0].clone());
    }
    assert_eq!(tickets_of(&setup, "erin").await, 1, "one ticket for erin");
    assert_eq!(
        tickets_of(&setup, "finn").await - finn_tickets_before,
        1,
        "one ticket for finn's reconnect"
    );
    let stderr = gateway.stderr.clone();
    let audit = audit_after_stop(&setup, gateway, &["erin"]).await;
    let outcomes: Vec<&str> = audit[0].iter().rev().map(|r| r.outcome.as_str()).collect();
    assert_eq!(
        outcomes,
        ["connect", "connect_pending"],
        "bounded audit rows"
    );
    let logs = stderr.text();
    for link in &seen {
        let ticket = link.split("ticket=").nth(1).unwrap();
        assert!(!logs.contains(ticket), "a ticket reached the log (TRACE)");
    }
}

/// The same client, and a user who finishes in the browser while devgate waits: the call the SDK
/// retried comes back with the result; one ticket, no second question.
#[tokio::test(flavor = "multi_thread")]
async fn the_python_sdk_accepting_at_once_gets_the_result_when_the_user_finishes() {
    let Some(python) = python() else {
        return;
    };
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    let gail = create_api_key(&setup, "gail");
    let gateway = oauth_http(&setup, &[]).await;
    let eager = eager_agent(&python, &gateway, &gail, Some("ann")).await;
    let end = &eager.end;
    assert_eq!(end["step"], "done", "{end}");
    assert_eq!(end["is_error"], false, "{end}");
    assert_eq!(end["result"]["name"], "Ann Dev", "{end}");
    assert_eq!(eager.links.len(), 1, "asked once: {:?}", eager.links);
    assert_eq!(tickets_of(&setup, "gail").await, 1);
    let audit = audit_after_stop(&setup, gateway, &["gail"]).await;
    let outcomes: Vec<&str> = audit[0].iter().rev().map(|r| r.outcome.as_str()).collect();
    assert_eq!(outcomes, ["connect", "ok"]);
}

/// The MCP Inspector's CLI (`DEVGATE_INSPECTOR`, run with the Node in `DEVGATE_NODE_BIN`).
fn inspector() -> Option<(String, String)> {
    match (
        std::env::var("DEVGATE_INSPECTOR"),
        std::env::var("DEVGATE_NODE_BIN"),
    ) {
        (Ok(i), Ok(n)) => Some((i, n)),
        _ => {
            skip::skip(
                skip::NODE_TOOLS,
                "DEVGATE_INSPECTOR and DEVGATE_NODE_BIN are not set (eval \"$(.ci/node-tools.sh)\")",
            );
            None
        }
    }
}

async fn inspect(inspector: &(String, String), target: &[String], method: &[&str]) -> Value {
    let path = format!(
        "{}:{}",
        inspector.1,
        std::env::var("PATH").unwrap_or_default()
    );
    let out = tokio::process::Command::new(&inspector.0)
        .arg("--cli")
        .args(target)
        .args(method)
        .env("PATH", path)
        .env("MCP_CATALOG_PATH", temp_path("inspector-catalog.json"))
        .output()
        .await
        .expect("the Inspector runs");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_inspector_cli_lists_and_calls_over_stdio_and_http() {
    let Some(inspector) = inspector() else {
        return;
    };
    let sim = Sim::start().await.unwrap();
    let config = config_for(&sim, "");
    // stdio: the Inspector starts devgate with the environment it is given.
    let mut stdio = vec![BIN.to_string(), "stdio".into()];
    stdio.push("-e".into());
    stdio.push(format!("DEVGATE_CONFIG={}", config.display()));
    for (k, v) in token_env() {
        stdio.push("-e".into());
        stdio.push(format!("{k}={v}"));
    }
    // HTTP: devgate already running.
    let gateway = http(&config, false).await;
    for target in [stdio, vec![gateway.url.clone()]] {
        let listed = inspect(&inspector, &target, &["--method", "tools/list"]).await;
        let names: Vec<&str> = listed["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert!(
            names.contains(&"bitbucket_list_pull_requests"),
            "{target:?}: {names:?}"
        );
        let called = inspect(
            &inspector,
            &target,
            &[
                "--method",
                "tools/call",
                "--tool-name",
                "bitbucket_get_repository",
                "--tool-arg",
                "repo_slug=api",
            ],
        )
        .await;
        assert_eq!(
            called["structuredContent"]["full_name"], "acme/api",
            "{target:?}: {called}"
        );
    }
}

/// A test that cannot find its tool passes without running, and the test binary says so after
/// libtest's summary, with the count and the reason; `DEVGATE_REQUIRE_PYTHON_SDK=1` makes it fail.
/// Runs this binary again on the Python SDK test alone, without the SDK.
#[test]
fn a_skipped_test_is_counted_after_the_summary_and_the_switch_makes_it_fail() {
    let run = |require: bool| {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "clients::the_python_sdk_connects_through_elicitation_in_both_protocol_versions",
        ])
        .env_remove("DEVGATE_PYTHON_SDK")
        .env_remove("DEVGATE_REQUIRE_CLIENTS")
        .env_remove(skip::PYTHON_SDK);
        if require {
            cmd.env(skip::PYTHON_SDK, "1");
        }
        cmd.output().unwrap()
    };
    let skipped = run(false);
    let (out, err) = (
        String::from_utf8_lossy(&skipped.stdout),
        String::from_utf8_lossy(&skipped.stderr),
    );
    assert!(skipped.status.success(), "{out}\n{err}");
    assert!(out.contains("1 passed"), "{out}");
    let note = err
        .split_once("SKIPPED: 1 test of this binary passed without running:")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no skip note on stderr: {err}"));
    assert!(
        note.contains("the_python_sdk_connects_through_elicitation_in_both_protocol_versions")
            && note.contains("DEVGATE_PYTHON_SDK")
            && note.contains("DEVGATE_REQUIRE_PYTHON_SDK=1"),
        "{note}"
    );

    let required = run(true);
    let said = String::from_utf8_lossy(&required.stdout).to_string()
        + &String::from_utf8_lossy(&required.stderr);
    assert!(!required.status.success(), "{said}");
    assert!(
        said.contains("1 failed") && said.contains("DEVGATE_REQUIRE_PYTHON_SDK is set"),
        "{said}"
    );
}
