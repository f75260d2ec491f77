//! `[[policies]]` through the real binary: two API keys in different groups get different `tools/list`
//! answers over HTTP; a call the policy denies (listed or not) is refused naming the rule and sends
//! nothing; a read-only group cannot call a tool that writes; a tool the policy makes the user confirm
//! is asked about (and runs on the user's answer, never on the model's `confirm: true`); the audit
//! log records each decision; `devgate policy check` explains one; a policy naming an unknown tool
//! stops devgate with a message naming the entry.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::form_user::{Session, User};
use common::*;
use devgate::sim::Sim;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

/// Everyone: no declining pull requests. `devs`: pull requests and repositories, approving only after
/// the user confirms. `contractors`: pull requests, read-only.
const POLICIES: &str = r#"
[[policies]]
group = "*"
deny_tools = ["bitbucket_decline_pull_request"]

[[policies]]
group = "devs"
allow_toolsets = ["pull_requests", "repositories"]
confirm_tools = ["bitbucket_approve_pull_request"]

[[policies]]
group = "contractors"
allow_toolsets = ["pull_requests"]
read_only = true
"#;

const APPROVE: &str = "bitbucket_approve_pull_request";
const DECLINE: &str = "bitbucket_decline_pull_request";

/// A config for the sim's providers (static tokens) with API-key callers, its store next to it, and
/// `policies` appended.
fn policy_config(sim: &Sim, policies: &str) -> std::path::PathBuf {
    let config = config_for(sim, "");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("auth = \"none\"", "auth = \"api_key\"");
    std::fs::write(&config, format!("{text}\n{policies}")).unwrap();
    config
}

/// Runs `devgate <args> --config <config>`: exit success, stdout, stderr.
fn devgate(config: &Path, args: &[&str]) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(args).arg("--config").arg(config);
    for (k, v) in token_env() {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("devgate runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn create_key(config: &Path, user: &str, group: &str) -> String {
    let (ok, stdout, stderr) = devgate(config, &["keys", "create", user, "--group", group]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains(&format!("in groups {group}")), "{stderr}");
    stdout.trim().to_string()
}

async fn session(url: &str, key: &str, user: User) -> Session {
    let config = StreamableHttpClientTransportConfig::with_uri(url.to_string()).auth_header(key);
    user.serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("MCP handshake with an API key")
}

async fn listed(session: &Session) -> Vec<String> {
    let tools = session.list_all_tools().await.expect("tools/list");
    tools.into_iter().map(|t| t.name.to_string()).collect()
}

async fn call_as(session: &Session, tool: &str, arguments: Value) -> CallToolResult {
    session
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(args(arguments)))
        .await
        .unwrap_or_else(|e| panic!("{tool}: protocol error {e}"))
}

/// The sim's requests whose path ends with `end`, other than GETs.
fn writes(sim: &Sim, end: &str) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.method != "GET" && r.path.ends_with(end))
        .count()
}

/// The audit log as JSON, once it holds at least `n` records (it is written in batches, off the
/// call's path), within a deadline.
async fn audit_records(config: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (ok, stdout, stderr) = devgate(config, &["audit", "--format", "json"]);
        assert!(ok, "{stderr}");
        let records: Vec<Value> = serde_json::from_str(&stdout).unwrap();
        if records.len() >= n {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "the audit log holds {} of {n} records: {stdout}",
            records.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `policy` of the one audit record of `user` calling `tool`.
fn policy_of(records: &[Value], user: &str, tool: &str, outcome: &str) -> String {
    let found: Vec<&Value> = records
        .iter()
        .filter(|r| r["user"] == user && r["tool"] == tool && r["outcome"] == outcome)
        .collect();
    assert_eq!(found.len(), 1, "{user} {tool} {outcome} in {records:#?}");
    found[0]["policy"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_group_sees_and_calls_only_what_its_policy_allows() {
    let sim = Sim::start().await.unwrap();
    let config = policy_config(&sim, POLICIES);
    let alice_key = create_key(&config, "alice", "devs");
    let bob_key = create_key(&config, "bob", "contractors");
    let (_, keys, _) = devgate(&config, &["keys", "list"]);
    assert!(keys.contains("alice in groups devs"), "{keys}");
    assert!(keys.contains("bob in groups contractors"), "{keys}");
    let gateway = http(&config, false).await;
    let alice = session(&gateway.url, &alice_key, User::new(false)).await;
    let bob = session(&gateway.url, &bob_key, User::new(false)).await;

    // Different tools/list answers.
    let alice_tools = listed(&alice).await;
    let bob_tools = listed(&bob).await;
    for tool in [
        "bitbucket_get_repository",
        APPROVE,
        "bitbucket_list_pull_requests",
    ] {
        assert!(
            alice_tools.iter().any(|t| t == tool),
            "alice: {tool} in {alice_tools:?}"
        );
    }
    assert!(
        bob_tools
            .iter()
            .any(|t| t == "bitbucket_list_pull_requests")
    );
    for tool in [
        "bitbucket_get_repository",
        APPROVE,
        "bitbucket_merge_pull_request",
    ] {
        assert!(
            !bob_tools.iter().any(|t| t == tool),
            "bob: {tool} in {bob_tools:?}"
        );
    }
    for tools in [&alice_tools, &bob_tools] {
        assert!(
            !tools
                .iter()
                .any(|t| t == DECLINE || t.starts_with("buddy_")),
            "{tools:?}"
        );
    }
    // A tool alice confirms by policy lists `confirm`; bob's list shows no tool that writes.
    let all = alice.list_all_tools().await.unwrap();
    let approve = all.iter().find(|t| t.name == APPROVE).unwrap();
    assert!(
        approve.input_schema["properties"].get("confirm").is_some(),
        "{approve:?}"
    );

    // Allowed: a read.
    let prs = call_as(
        &bob,
        "bitbucket_list_pull_requests",
        json!({"repo_slug": "api"}),
    )
    .await;
    assert!(!is_error(&prs), "{}", text(&prs));

    // Denied, though the client calls it anyway: the rule is named, nothing is sent.
    let declined = call_as(
        &alice,
        DECLINE,
        json!({"repo_slug": "api", "pull_request_id": 24}),
    )
    .await;
    assert!(is_error(&declined));
    let said = text(&declined);
    assert!(said.starts_with("bitbucket_decline_pull_request: denied by devgate policy [[policies]] #1 (group \"*\") deny_tools \"bitbucket_decline_pull_request\"; nothing was sent."), "{said}");
    assert!(
        said.contains("`devgate policy check alice bitbucket_decline_pull_request`"),
        "{said}"
    );
    let unlisted = call_as(
        &bob,
        "bitbucket_get_repository",
        json!({"repo_slug": "api"}),
    )
    .await;
    assert!(
        text(&unlisted)
            .contains("no devgate policy ([[policies]]) allows it to bob (groups contractors)"),
        "{}",
        text(&unlisted)
    );

    // Read-only: bob cannot approve, even with `confirm: true`.
    let pr = json!({"repo_slug": "api", "pull_request_id": 24, "confirm": true});
    let refused = call_as(&bob, APPROVE, pr.clone()).await;
    assert!(text(&refused).contains("[[policies]] #3 (group \"contractors\") read_only lets bob use only tools that change nothing"), "{}", text(&refused));
    assert_eq!(
        writes(&sim, "/decline") + writes(&sim, "/approve"),
        0,
        "nothing reached Bitbucket"
    );

    // Confirmation by policy: asked whatever the model sends; declined, nothing is sent.
    let declining = User::new(false);
    let asked_alice = session(&gateway.url, &alice_key, declining.clone()).await;
    let no = call_as(&asked_alice, APPROVE, pr.clone()).await;
    assert!(
        is_error(&no) && text(&no).contains("the user did not confirm"),
        "{}",
        text(&no)
    );
    assert_eq!(declining.asked().len(), 1, "asked once");
    assert_eq!(writes(&sim, "/approve"), 0, "`confirm: true` is no consent");
    // Accepted: it runs, once.
    let accepting = User::new(true);
    let yes_alice = session(&gateway.url, &alice_key, accepting.clone()).await;
    let yes = call_as(
        &yes_alice,
        APPROVE,
        json!({"repo_slug": "api", "pull_request_id": 24}),
    )
    .await;
    assert!(!is_error(&yes), "{}", text(&yes));
    assert_eq!(accepting.asked().len(), 1);
    assert!(
        accepting.asked()[0].contains("24"),
        "{:?}",
        accepting.asked()
    );
    assert_eq!(writes(&sim, "/approve"), 1);

    // Every decision is in the audit log.
    let records = audit_records(&config, 6).await;
    let decisions = [
        (
            "bob",
            "bitbucket_list_pull_requests",
            "ok",
            "allowed by [[policies]] #3 (group \"contractors\") allow_toolsets \"pull_requests\"",
        ),
        (
            "alice",
            DECLINE,
            "denied",
            "denied by [[policies]] #1 (group \"*\") deny_tools \"bitbucket_decline_pull_request\"",
        ),
        (
            "bob",
            "bitbucket_get_repository",
            "denied",
            "denied: no [[policies]] entry allows it to groups contractors",
        ),
        (
            "bob",
            APPROVE,
            "denied",
            "denied by [[policies]] #3 (group \"contractors\") read_only",
        ),
    ];
    for (user, tool, outcome, policy) in decisions {
        assert_eq!(
            policy_of(&records, user, tool, outcome),
            policy,
            "{user} {tool}"
        );
    }
    let confirmed = "allowed by [[policies]] #2 (group \"devs\") allow_toolsets \"pull_requests\"; confirmation required by [[policies]] #2 (group \"devs\") confirm_tools \"bitbucket_approve_pull_request\"";
    for outcome in ["not_confirmed", "ok"] {
        assert_eq!(policy_of(&records, "alice", APPROVE, outcome), confirmed);
    }
    let (_, lines, _) = devgate(&config, &["audit"]);
    assert!(
        lines.contains("policy: denied by [[policies]] #1 (group \"*\")"),
        "{lines}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_check_explains_a_decision() {
    let sim = Sim::start().await.unwrap();
    let config = policy_config(&sim, POLICIES);
    create_key(&config, "alice", "devs");

    let (ok, out, err) = devgate(&config, &["policy", "check", "alice", DECLINE]);
    assert!(!ok, "denied: exit 1\n{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "user: alice");
    assert_eq!(
        lines[1],
        "tool: bitbucket_decline_pull_request (toolset pull_requests; changes things)"
    );
    assert!(lines[2].starts_with("groups: devs (from API key "), "{out}");
    assert_eq!(
        &lines[3..],
        [
            "rules:",
            "  [[policies]] #1 (group \"*\") deny_tools \"bitbucket_decline_pull_request\"",
            "  [[policies]] #2 (group \"devs\") allow_toolsets \"pull_requests\"",
            "result: denied by [[policies]] #1 (group \"*\") deny_tools \"bitbucket_decline_pull_request\" (a denial beats any allow)",
        ]
    );

    let (ok, out, _) = devgate(
        &config,
        &[
            "policy",
            "check",
            "carol",
            "bitbucket_get_repository",
            "--group",
            "contractors",
        ],
    );
    assert!(!ok);
    assert!(out.contains("groups: contractors (given with --group)\nrules: none matches\nresult: denied: no [[policies]] entry allows it to groups contractors"), "{out}");

    let (ok, out, _) = devgate(
        &config,
        &[
            "policy",
            "check",
            "bob",
            "bitbucket_list_pull_requests",
            "--group",
            "contractors",
        ],
    );
    assert!(ok, "{out}");
    assert!(out.ends_with("result: allowed by [[policies]] #3 (group \"contractors\") allow_toolsets \"pull_requests\"\n"), "{out}");

    // A group no policy names is probably a typo: said when the key is made.
    let (ok, _, err) = devgate(&config, &["keys", "create", "zed", "--group", "dev"]);
    assert!(
        ok && err.contains("note: no [[policies]] entry names group `dev`"),
        "{err}"
    );
    let (ok, _, err) = devgate(&config, &["keys", "create", "zed", "--group", "*"]);
    assert!(
        !ok && err.contains("--group `*`: give a group name"),
        "{err}"
    );

    let (ok, _, err) = devgate(&config, &["policy", "check", "alice", "bitbucket_nope"]);
    assert!(
        !ok && err.contains("unknown tool `bitbucket_nope`"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_policy_naming_an_unknown_tool_stops_devgate() {
    let sim = Sim::start().await.unwrap();
    let config = policy_config(
        &sim,
        "[[policies]]\ngroup = \"devs\"\nallow_toolsets = [\"pull_request\"]\ndeny_tools = [\"bitbucket_merge_pull_reqest\"]\n",
    );
    for command in [&["check"][..], &["http", "--listen", "127.0.0.1:0"]] {
        let (ok, _, err) = devgate(&config, command);
        assert!(!ok, "{command:?}");
        for problem in [
            "[[policies]] #1 (group \"devs\"): allow_toolsets: unknown toolset `pull_request` (known: all, ",
            "[[policies]] #1 (group \"devs\"): deny_tools: unknown tool `bitbucket_merge_pull_reqest` (`devgate tools --all` lists them)",
        ] {
            assert!(err.contains(problem), "{command:?}: {err}");
        }
    }
}

/// stdio: the user's groups are the `--group` flags; without any, an allow-list policy offers nothing.
#[tokio::test(flavor = "multi_thread")]
async fn stdio_groups_come_from_the_command_line() {
    let sim = Sim::start().await.unwrap();
    let config = policy_config(&sim, POLICIES);
    let mut seen = Vec::new();
    for groups in [&["--group", "contractors"][..], &[]] {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.args(["stdio", "--user", "dana"])
            .args(groups)
            .arg("--config")
            .arg(&config);
        for (k, v) in token_env() {
            cmd.env(k, v);
        }
        let (transport, _) = rmcp::transport::TokioChildProcess::builder(cmd)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let client = ().serve(transport).await.expect("MCP over stdio");
        let tools = client.list_all_tools().await.unwrap();
        seen.push(tools.iter().map(|t| t.name.to_string()).collect::<Vec<_>>());
        let denied = call(
            &client,
            "bitbucket_get_repository",
            json!({"repo_slug": "api"}),
        )
        .await;
        assert!(
            text(&denied).contains("allows it to dana"),
            "{}",
            text(&denied)
        );
    }
    assert!(
        seen[0].iter().any(|t| t == "bitbucket_list_pull_requests"),
        "{:?}",
        seen[0]
    );
    assert!(
        seen[0]
            .iter()
            .all(|t| t.starts_with("bitbucket_") && t != APPROVE),
        "{:?}",
        seen[0]
    );
    assert_eq!(seen[1], Vec::<String>::new(), "no group, no allow");
}
