//! The command line: `check` lists every problem, `tools` shows what a config offers (scopes, toolsets,
//! read-only, env overrides), the store commands (`status`, `keys`, `audit`) read without secrets and
//! not without a config, and each `sandbox` starts a working gateway in front of the sim with its own
//! state.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;
use devgate::sim::Sim;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

#[test]
fn check_lists_every_problem_and_exits_1() {
    let path = temp_path("bad.toml");
    std::fs::write(
        &path,
        r#"
[tools]
toolsets = ["pipelines", "nonsense"]
exclude = ["bitbucket_no_such_tool"]
[providers.bitbucket]
scopes = ["repository", "admin:everything"]
[providers.gitlab]
token = "x"
"#,
    )
    .unwrap();
    let out = devgate(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "unknown toolset `nonsense`",
        "unknown tool `bitbucket_no_such_tool`",
        "providers.bitbucket.scopes: unknown scope `admin:everything`",
        "providers.bitbucket: no credentials",
        "providers.gitlab: unknown provider",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
}

#[test]
fn check_names_a_missing_environment_variable() {
    let path = temp_path("env.toml");
    std::fs::write(
        &path,
        "[providers.buddy]\ntoken = \"${DEVGATE_TEST_UNSET_TOKEN}\"\n",
    )
    .unwrap();
    let out = devgate(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "providers.buddy.token: environment variable DEVGATE_TEST_UNSET_TOKEN is not set"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn check_passes_a_good_config() {
    let sim = Sim::start().await.unwrap();
    let config = config_for(&sim, "");
    let out = devgate(
        &["check", "--config", config.to_str().unwrap()],
        &token_env(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (49 tools offered)"));
}

fn offered(config: &str, envs: &[(&str, &str)]) -> Vec<String> {
    let path = temp_path("tools.toml");
    std::fs::write(&path, config).unwrap();
    let out = devgate(
        &[
            "tools",
            "--format",
            "json",
            "--config",
            path.to_str().unwrap(),
        ],
        envs,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tools: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    tools
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn scopes_toolsets_and_read_only_decide_what_is_offered() {
    let base = "[providers.bitbucket]\ntoken = \"sim-t\"\n";
    let account_only = offered(&format!("{base}scopes = [\"account\"]\n"), &[]);
    assert_eq!(
        account_only,
        ["bitbucket_get_current_user", "bitbucket_list_workspaces"]
    );

    // pullrequest:write implies pullrequest and repository:write, and those imply repository.
    let pr_write = offered(&format!("{base}scopes = [\"pullrequest:write\"]\n"), &[]);
    assert!(pr_write.contains(&"bitbucket_merge_pull_request".to_string()));
    assert!(pr_write.contains(&"bitbucket_create_branch".to_string()));
    assert!(pr_write.contains(&"bitbucket_get_file".to_string()));
    assert!(
        !pr_write.iter().any(|t| t.contains("pipeline")),
        "{pr_write:?}"
    );

    let pipelines = offered(&format!("[tools]\ntoolsets = [\"pipelines\"]\n{base}"), &[]);
    assert!(
        !pipelines.is_empty()
            && pipelines
                .iter()
                .all(|t| t.contains("pipeline") || t.contains("step")),
        "{pipelines:?}"
    );

    let read_only = offered(base, &[("DEVGATE_TOOLS__READ_ONLY", "true")]);
    assert!(read_only.contains(&"bitbucket_list_pull_requests".to_string()));
    for write in [
        "bitbucket_merge_pull_request",
        "bitbucket_run_pipeline",
        "bitbucket_create_branch",
    ] {
        assert!(
            !read_only.contains(&write.to_string()),
            "{write} offered in read-only mode"
        );
    }

    let excluded = offered(
        &format!("[tools]\nexclude = [\"bitbucket_merge_pull_request\"]\n{base}"),
        &[],
    );
    assert!(!excluded.contains(&"bitbucket_merge_pull_request".to_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn sandbox_walks_a_new_user_through_connecting() {
    let config_path = temp_path("sandbox").join("devgate.toml");
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--buddy",
            "127.0.0.1:0",
            "--bitbucket",
            "127.0.0.1:0",
            "--write-config",
        ])
        .arg(&config_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (url, links) = tokio::time::timeout(Duration::from_secs(30), async {
        let mut url = None;
        let mut links = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            let line = line.trim().to_string();
            if let Some(u) = line.strip_prefix("MCP over HTTP:") {
                url = Some(u.trim().to_string());
            } else if line.contains("/connect/") {
                links.push(link_in(&line));
            } else if line.starts_with("3.") {
                break;
            }
        }
        (url.expect("the sandbox printed its MCP URL"), links)
    })
    .await
    .unwrap();
    assert_eq!(links.len(), 2, "a connect link per provider: {links:?}");

    let client = http_client(&url).await;
    let before = call(
        &client,
        "bitbucket_list_pull_requests",
        json!({"repo_slug": "api"}),
    )
    .await;
    assert!(
        is_error(&before) && text(&before).contains("/connect/bitbucket"),
        "asks to connect first"
    );
    for link in &links {
        let account = if link.contains("/connect/buddy") {
            "mike"
        } else {
            "ann"
        };
        let walk = walk_connect(link, account, "allow").await;
        assert!(
            walk.final_url.contains("/connected"),
            "{link} -> {}",
            walk.final_url
        );
    }
    let prs = ok(
        "bitbucket_list_pull_requests",
        &call(
            &client,
            "bitbucket_list_pull_requests",
            json!({"repo_slug": "api"}),
        )
        .await,
    );
    assert!(!prs["items"].as_array().unwrap().is_empty());
    client.cancel().await.unwrap();

    // The written config lets a stdio client (as the sandbox user) use the same connections.
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(["stdio", "--user", "local", "--config"])
        .arg(&config_path);
    let transport = rmcp::transport::TokioChildProcess::new(cmd).unwrap();
    let stdio_client = rmcp::ServiceExt::serve((), transport).await.unwrap();
    let user = ok(
        "buddy_get_user",
        &call(&stdio_client, "buddy_get_user", json!({})).await,
    );
    assert!(user.get("name").is_some());
    stdio_client.cancel().await.unwrap();
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_status_and_disconnect_from_a_terminal() {
    let sim = Sim::start().await.unwrap();
    let c = connected_users(&sim, &[("alice", "ann", "mike")], "").await;
    let run = |args: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.args(args).arg("--config").arg(&c.setup.config);
        for (k, v) in oauth_env() {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let status = run(&["status", "--user", "alice"]);
    let out = String::from_utf8_lossy(&status.stdout);
    assert!(
        out.contains("bitbucket: connected as Ann Dev")
            && out.contains("buddy: connected as Mike Benson"),
        "{out}"
    );

    let listed = run(&["keys", "list", "alice"]);
    let id = c.keys[0].trim_start_matches("dgk_")[..12].to_string();
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&id));
    assert!(
        !String::from_utf8_lossy(&listed.stdout).contains(&c.keys[0]),
        "the key itself is never listed"
    );

    // Buddy has a revocation endpoint: disconnect revokes both tokens there too (RFC 7009, with hints).
    let gone = run(&["disconnect", "buddy", "--user", "alice"]);
    let said =
        String::from_utf8_lossy(&gone.stdout).to_string() + &String::from_utf8_lossy(&gone.stderr);
    assert!(
        said.contains("revoked the refresh and access tokens at the provider"),
        "{said}"
    );
    assert_eq!(sim.state.live_grants(devgate::sim::Account::Mike), 0);
    let revoked: Vec<(String, Option<String>)> = sim
        .state
        .revocations(devgate::sim::Which::Buddy)
        .into_iter()
        .map(|r| {
            assert_eq!(r.account, Some(devgate::sim::Account::Mike));
            (r.kind, r.hint)
        })
        .collect();
    assert_eq!(
        revoked,
        [
            (
                "refresh_token".to_string(),
                Some("refresh_token".to_string())
            ),
            ("access_token".to_string(), Some("access_token".to_string())),
        ]
    );
    // Bitbucket has none: disconnect says where to revoke.
    let gone = run(&["disconnect", "bitbucket", "--user", "alice"]);
    assert!(String::from_utf8_lossy(&gone.stdout).contains("no revocation API"));
    let status = run(&["status", "--user", "alice"]);
    let out = String::from_utf8_lossy(&status.stdout);
    assert!(
        out.contains("bitbucket: not connected") && out.contains("devgate connect bitbucket"),
        "{out}"
    );
    let after = call(&c.clients[0], "bitbucket_get_current_user", json!({})).await;
    assert!(is_error(&after) && text(&after).contains("/connect/bitbucket"));

    // A revoked key stops working.
    let revoked = run(&["keys", "revoke", "alice", &id]);
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let rejected = reqwest::Client::new()
        .post(&c.gateway.url)
        .bearer_auth(&c.keys[0])
        .header("Accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(rejected.status(), 401);
}

#[test]
fn auth_none_is_refused_off_loopback() {
    let path = temp_path("open.toml");
    std::fs::write(
        &path,
        "[http]\nauth = \"none\"\n[providers.buddy]\ntoken = \"sim-x\"\n",
    )
    .unwrap();
    let out = devgate(
        &[
            "http",
            "--listen",
            "0.0.0.0:0",
            "--config",
            path.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("the listen address 0.0.0.0:0 is not loopback")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_from_a_terminal_serves_the_callback_until_it_arrives() {
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    setup.reserve_public_url();
    // No gateway runs on public_url: `devgate connect` serves the pages itself.
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(["connect", "bitbucket", "--user", "zed", "--config"])
        .arg(&setup.config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in oauth_env() {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let link = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("/connect/bitbucket?ticket=") {
                return link_in(&line);
            }
        }
        panic!("no link printed");
    })
    .await
    .unwrap();
    let walk = walk_connect(&link, "ben", "allow").await;
    assert!(walk.final_url.contains("/connected"), "{}", walk.final_url);
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    let mut rest = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        rest.push_str(&line);
    }
    assert!(
        rest.contains("Connected Bitbucket Cloud account Ben Ortiz for zed"),
        "{rest}"
    );
}

#[test]
fn version_names_the_binary_and_each_catalog() {
    let out = devgate(&["--version"], &[]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
    for provider in devgate::catalog::Catalog::builtin().unwrap().providers {
        let version = &provider.version;
        assert!(
            text.contains(&format!("{} catalog {version}", provider.spec.id)),
            "{text}"
        );
    }
    let toml_version = include_str!("../../tools/buddy.toml")
        .lines()
        .find_map(|l| l.strip_prefix("version = "))
        .unwrap()
        .trim_matches('"');
    assert!(
        text.contains(&format!("buddy catalog {toml_version}")),
        "{text}"
    );
}

/// `devgate check` reports every kind of problem in one run: unset variables, unknown keys and bad
/// values (which stop the config from loading), and what the settings mean together.
#[test]
fn check_lists_unset_variables_unknown_keys_and_bad_values_at_once() {
    let path = temp_path("many.toml");
    std::fs::write(
        &path,
        r#"
[tools]
read_onyl = true
text_cap_bytes = "large"
toolsets = ["pipelines", "nonsense"]
[upstream]
retries = -1
[providers.buddy]
token = "${DEVGATE_TEST_UNSET_A}"
[providers.bitbucket]
client_id = "${DEVGATE_TEST_UNSET_B}"
client_secret = "${DEVGATE_TEST_UNSET_C}"
colour = "blue"
[providers.gitlab]
token = "x"
"#,
    )
    .unwrap();
    let out = devgate(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "providers.buddy.token: environment variable DEVGATE_TEST_UNSET_A is not set",
        "providers.bitbucket.client_id: environment variable DEVGATE_TEST_UNSET_B is not set",
        "providers.bitbucket.client_secret: environment variable DEVGATE_TEST_UNSET_C is not set",
        "unknown field `read_onyl`",
        "unknown field `colour`",
        "in `tools.text_cap_bytes`",
        "in `upstream.retries`",
        "unknown toolset `nonsense`",
        "providers.gitlab: unknown provider",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
}

/// `audit` and `keys` without any config say so, rather than making a new store (and sealing key)
/// in the current directory.
#[test]
fn audit_and_keys_without_a_config_say_so_and_create_nothing() {
    let dir = temp_path("no-config");
    std::fs::create_dir_all(&dir).unwrap();
    for args in [
        &["audit"][..],
        &["keys", "list"],
        &["keys", "create", "alice"],
    ] {
        let out = Command::new(BIN)
            .args(args)
            .current_dir(&dir)
            .env_remove("DEVGATE_CONFIG")
            .env_remove("DEVGATE_SECRET_KEY")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("no configuration") && err.contains("--config"),
            "{args:?}: {err}"
        );
        let made: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert!(made.is_empty(), "{args:?} made {made:?}");
    }
}

/// The reading commands run without the OAuth client secrets (only the sealing key opens the store),
/// `keys list` without a user lists everyone's keys, and times are written for people (RFC 3339 in
/// JSON).
#[tokio::test(flavor = "multi_thread")]
async fn reading_commands_need_no_client_secret_and_show_readable_times() {
    let sim = Sim::start().await.unwrap();
    let c = connected_users(
        &sim,
        &[("alice", "ann", "mike"), ("bob", "ben", "nina")],
        "",
    )
    .await;
    ok(
        "bitbucket_get_current_user",
        &call(&c.clients[0], "bitbucket_get_current_user", json!({})).await,
    );
    // Only the sealing key: the config's ${TEST_*_CLIENT_SECRET} are unset.
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&c.setup.config)
            .env_remove("DEVGATE_CONFIG")
            .env_remove("TEST_BUDDY_CLIENT_SECRET")
            .env_remove("TEST_BITBUCKET_CLIENT_SECRET")
            .env("DEVGATE_SECRET_KEY", TEST_SECRET_KEY)
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        );
        assert!(out.status.success(), "{args:?}: {stderr}");
        stdout
    };
    let readable = |text: &str| {
        // `2026-11-23 10:00:05 UTC`
        text.split_whitespace()
            .map(|w| w.trim_start_matches('('))
            .any(|w| w.len() == 10 && chrono::NaiveDate::parse_from_str(w, "%Y-%m-%d").is_ok())
            && text.contains(" UTC")
    };

    let status = run(&["status", "--user", "alice"]);
    let line = status
        .lines()
        .find(|l| l.starts_with("bitbucket: connected as Ann Dev"))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(
        line.contains("token expires in ") && line.ends_with(" UTC)") && readable(line),
        "{line}"
    );

    let keys = run(&["keys", "list"]);
    for (user, key) in [("alice", &c.keys[0]), ("bob", &c.keys[1])] {
        let id = &key.trim_start_matches("dgk_")[..12];
        let line = keys
            .lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("{user}'s key in {keys}"));
        assert!(line.contains(user) && readable(line), "{line}");
        assert!(
            !keys.contains(key.as_str()),
            "the key itself is never listed"
        );
    }
    assert!(!run(&["keys", "list", "alice"]).contains("bob"));

    // Records are written off the call's path: wait (bounded) for alice's.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let rows: Vec<Value> = loop {
        let rows: Vec<Value> =
            serde_json::from_str(&run(&["audit", "--user", "alice", "--format", "json"])).unwrap();
        if !rows.is_empty() || std::time::Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!rows.is_empty());
    for row in &rows {
        let at = row["at"].as_str().unwrap_or_else(|| panic!("{row}"));
        chrono::DateTime::parse_from_rfc3339(at).unwrap_or_else(|e| panic!("{at}: {e}"));
    }
    let text = run(&["audit", "--user", "alice"]);
    assert!(text.lines().next().is_some_and(readable), "{text}");
}

/// A provider devgate does not know is named as such, with the ones it knows.
#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_provider_is_named_with_the_known_ones() {
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    setup.reserve_public_url();
    for command in ["connect", "disconnect"] {
        let mut cmd = Command::new(BIN);
        cmd.args([command, "gitlab", "--config"])
            .arg(&setup.config)
            .env_remove("DEVGATE_CONFIG");
        for (k, v) in oauth_env() {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(
            err.contains("unknown provider `gitlab` (known: bitbucket, buddy)"),
            "{command}: {err}"
        );
    }
}

/// `check` counts what an agent's tools/list holds, the built-in `devgate_connections` included.
#[tokio::test(flavor = "multi_thread")]
async fn check_counts_the_tools_an_agent_sees() {
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    setup.reserve_public_url();
    let mut envs: Vec<(&str, &str)> = oauth_env();
    envs.push(("DEVGATE_LOG", "warn"));
    let out = devgate(
        &["check", "--config", setup.config.to_str().unwrap()],
        &envs,
    );
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = create_api_key(&setup, "alice");
    let gateway = oauth_http(&setup, &[]).await;
    let client = http_client_with_key(&gateway.url, &key).await;
    let listed = client.list_all_tools().await.unwrap();
    assert!(listed.iter().any(|t| t.name == "devgate_connections"));
    assert!(
        said.contains(&format!(
            "ok ({} tools offered, devgate_connections included)",
            listed.len()
        )),
        "{said} vs {} listed",
        listed.len()
    );
    client.cancel().await.unwrap();
}

/// A `devgate sandbox` on ephemeral ports, and what its banner said.
struct SandboxRun {
    child: tokio::process::Child,
    url: String,
    links: Vec<String>,
    config: std::path::PathBuf,
    state: Option<String>,
}

impl SandboxRun {
    async fn start(args: &[&str], tmpdir: Option<&std::path::Path>) -> Self {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.args([
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--buddy",
            "127.0.0.1:0",
            "--bitbucket",
            "127.0.0.1:0",
        ])
        .args(args)
        .env_remove("DEVGATE_CONFIG")
        .env_remove("DEVGATE_SECRET_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
        if let Some(dir) = tmpdir {
            cmd.env("TMPDIR", dir);
        }
        let mut child = cmd.spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut url, mut links, mut config, mut state) = (None, Vec::new(), None, None);
        tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                let line = line.trim().to_string();
                if let Some(u) = line.strip_prefix("MCP over HTTP:") {
                    url = Some(u.trim().to_string());
                } else if let Some(c) = line.strip_prefix("Config written:") {
                    config = Some(std::path::PathBuf::from(c.trim()));
                } else if let Some(s) = line.strip_prefix("State (database, sealing key):") {
                    state = Some(s.trim().to_string());
                } else if line.contains("/connect/") {
                    links.push(link_in(&line));
                } else if line.starts_with("3.") {
                    break;
                }
            }
        })
        .await
        .expect("the sandbox prints its banner");
        Self {
            child,
            url: url.expect("the sandbox printed its MCP URL"),
            links,
            config: config.expect("the sandbox names its config"),
            state,
        }
    }

    fn link(&self, provider: &str) -> String {
        let marker = format!("/connect/{provider}");
        self.links
            .iter()
            .find(|l| l.contains(&marker))
            .cloned()
            .unwrap_or_else(|| panic!("no {provider} link in {:?}", self.links))
    }

    /// `devgate status` with the sandbox's config, as the sandbox user unless `user` says otherwise.
    fn status(&self, user: Option<&str>) -> String {
        let mut cmd = Command::new(BIN);
        cmd.arg("status")
            .arg("--config")
            .arg(&self.config)
            .env_remove("DEVGATE_CONFIG")
            .env_remove("DEVGATE_SECRET_KEY")
            .env("USER", "someone-else");
        if let Some(u) = user {
            cmd.args(["--user", u]);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// SIGTERM, as Ctrl-C would stop it, and waits for it to exit.
    async fn stop(mut self) {
        let pid = self.child.id().expect("running").to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("the sandbox stops on SIGTERM")
            .unwrap();
    }
}

/// Two sandboxes started the same way share nothing: each has its own state directory (named in the
/// banner, removed when it stops), so connecting in one connects nothing in the other; and
/// `devgate status` speaks for the sandbox's user (`local`), not the OS user.
#[tokio::test(flavor = "multi_thread")]
async fn two_sandboxes_side_by_side_share_nothing() {
    let tmp = temp_path("tmpdir");
    std::fs::create_dir_all(&tmp).unwrap();
    let first = SandboxRun::start(&[], Some(&tmp)).await;
    let second = SandboxRun::start(&[], Some(&tmp)).await;
    assert_ne!(first.config, second.config, "each sandbox its own config");
    let state = first.state.clone().expect("the banner names the state");
    assert!(state.contains("removed when the sandbox stops"), "{state}");
    let dir = first.config.parent().unwrap().to_path_buf();
    assert!(dir.starts_with(&tmp) && state.starts_with(dir.to_str().unwrap()));

    let walk = walk_connect(&first.link("bitbucket"), "ann", "allow").await;
    assert!(walk.final_url.contains("/connected"), "{}", walk.final_url);
    let status = first.status(None);
    assert!(
        status.contains("devgate user: local")
            && status.contains("bitbucket: connected as Ann Dev"),
        "{status}"
    );
    assert!(
        second.status(None).contains("bitbucket: not connected"),
        "{}",
        second.status(None)
    );
    for (sandbox, connected) in [(&first, true), (&second, false)] {
        let client = http_client(&sandbox.url).await;
        let result = call(&client, "bitbucket_get_current_user", json!({})).await;
        assert_eq!(!is_error(&result), connected, "{}", text(&result));
        client.cancel().await.unwrap();
    }

    second.stop().await;
    first.stop().await;
    assert!(!dir.exists(), "the temporary state is removed on stop");
}

/// A sandbox restarted on the same state forgets the connections it had: the new simulator never
/// issued their tokens.
#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_sandbox_does_not_report_stale_connections() {
    let config = temp_path("restart").join("devgate.toml");
    let config_arg = config.to_str().unwrap();
    let first = SandboxRun::start(&["--write-config", config_arg], None).await;
    let walk = walk_connect(&first.link("bitbucket"), "ann", "allow").await;
    assert!(walk.final_url.contains("/connected"), "{}", walk.final_url);
    assert!(
        first
            .status(Some("local"))
            .contains("bitbucket: connected as Ann Dev")
    );
    first.stop().await;

    let again = SandboxRun::start(&["--write-config", config_arg], None).await;
    assert_eq!(again.config, config);
    let status = again.status(Some("local"));
    assert!(status.contains("bitbucket: not connected"), "{status}");
    let client = http_client(&again.url).await;
    let result = call(&client, "bitbucket_get_current_user", json!({})).await;
    assert!(
        is_error(&result) && text(&result).contains("/connect/bitbucket"),
        "{}",
        text(&result)
    );
    client.cancel().await.unwrap();
    again.stop().await;
    assert!(config.exists(), "a named state is kept");
}
