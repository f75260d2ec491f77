//! `--toolsets` and `--read-only` decide what a real session offers, and `devgate tools --stats` measures
//! exactly what such a session sends an agent.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;
use devgate::sim::Sim;
use rmcp::ServiceExt;
use rmcp::model::ListToolsResult;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// `devgate tools --stats --format json` with `flags`.
fn stats(config: &Path, flags: &[&str], envs: &[(&str, &str)]) -> Value {
    let mut args = vec!["tools", "--stats", "--format", "json"];
    args.extend_from_slice(flags);
    let out = devgate_with(&args, config, envs);
    assert!(
        out.status.success(),
        "tools --stats: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("tools --stats prints JSON")
}

/// `devgate stdio` with `flags`, spoken to by rmcp's client.
async fn session(config: &Path, flags: &[&str], envs: &[(&str, &str)]) -> Client {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.arg("stdio")
        .arg("--config")
        .arg(config)
        .args(flags)
        .env_remove("DEVGATE_CONFIG");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let transport = rmcp::transport::TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()
        .expect("devgate stdio starts")
        .0;
    ().serve(transport).await.expect("MCP handshake over stdio")
}

/// What a session lists, as the `tools/list` result re-serialized.
async fn listed(client: &Client) -> (ListToolsResult, usize) {
    let result = client.list_tools(None).await.expect("tools/list");
    let bytes = serde_json::to_vec(&result).unwrap().len();
    (result, bytes)
}

/// Every catalog tool's toolset, from `devgate tools --all`.
fn toolset_of() -> BTreeMap<String, String> {
    let out = Command::new(BIN)
        .args(["tools", "--all", "--format", "json"])
        .env_remove("DEVGATE_CONFIG")
        .output()
        .unwrap();
    let tools: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    tools
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["toolset"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn names(result: &ListToolsResult) -> BTreeSet<String> {
    result.tools.iter().map(|t| t.name.to_string()).collect()
}

/// The per-tool entries sum to the total with the `{"tools":[…]}` envelope and its commas; the toolset
/// rows add up to the tools.
fn assert_consistent(stats: &Value) {
    let per_tool = stats["per_tool"].as_array().unwrap();
    let n = per_tool.len();
    assert_eq!(stats["tools"], json!(n));
    let sum: u64 = per_tool.iter().map(|t| t["bytes"].as_u64().unwrap()).sum();
    let envelope = r#"{"tools":[]}"#.len() as u64 + n.saturating_sub(1) as u64;
    assert_eq!(stats["bytes"].as_u64().unwrap(), sum + envelope, "{stats}");
    let sizes: Vec<u64> = per_tool
        .iter()
        .map(|t| t["bytes"].as_u64().unwrap())
        .collect();
    assert!(
        sizes.windows(2).all(|w| w[0] >= w[1]),
        "largest first: {sizes:?}"
    );
    let sets = stats["toolsets"].as_array().unwrap();
    assert_eq!(
        sets.iter()
            .map(|s| s["tools"].as_u64().unwrap())
            .sum::<u64>(),
        n as u64
    );
    assert_eq!(
        sets.iter()
            .map(|s| s["bytes"].as_u64().unwrap())
            .sum::<u64>(),
        sum
    );
    let bytes = stats["bytes"].as_u64().unwrap();
    assert_eq!(stats["approx_tokens"].as_u64().unwrap(), bytes.div_ceil(4));
}

/// A raw JSON-RPC exchange with `devgate stdio`: the initialize and tools/list results exactly as
/// they come over the wire.
async fn raw_session(config: &Path) -> (Value, Value) {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.arg("stdio")
        .arg("--config")
        .arg(config)
        .env_remove("DEVGATE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in token_env() {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut send = async |v: Value| {
        stdin.write_all(format!("{v}\n").as_bytes()).await.unwrap();
    };
    send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"}}}),
    )
    .await;
    let mut results = BTreeMap::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let v: Value = serde_json::from_str(&line).unwrap();
            let id = v["id"].as_u64();
            if id == Some(1) {
                send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;
                send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})).await;
            }
            if let Some(id) = id {
                // Re-serialized compactly, keys may come in another order but the length is the wire's.
                assert_eq!(
                    serde_json::to_string(&v).unwrap().len(),
                    line.len(),
                    "devgate writes compact JSON"
                );
                results.insert(id, v["result"].clone());
                if id == 2 {
                    break;
                }
            }
        }
    })
    .await
    .expect("initialize and tools/list answered");
    child.kill().await.unwrap();
    (results.remove(&1).unwrap(), results.remove(&2).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_count_exactly_what_a_stdio_session_sends() {
    let sim = Sim::start().await.unwrap();
    let config = config_for(&sim, "");
    let stats = stats(&config, &[], &token_env());
    assert_consistent(&stats);

    // The bytes on the wire: the tools/list result and the instructions of a real session.
    let (init, list) = raw_session(&config).await;
    let wire = serde_json::to_vec(&list).unwrap().len();
    assert_eq!(stats["bytes"].as_u64().unwrap(), wire as u64);
    assert_eq!(
        stats["instructions_bytes"].as_u64().unwrap(),
        serde_json::to_vec(&init["instructions"]).unwrap().len() as u64
    );
    // Each per-tool entry is that tool's JSON object as listed.
    let by_name: BTreeMap<&str, usize> = list["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap(),
                serde_json::to_vec(t).unwrap().len(),
            )
        })
        .collect();
    for t in stats["per_tool"].as_array().unwrap() {
        assert_eq!(
            by_name.get(t["name"].as_str().unwrap()).copied(),
            Some(t["bytes"].as_u64().unwrap() as usize),
            "{t}"
        );
    }
    assert_eq!(by_name.len() as u64, stats["tools"].as_u64().unwrap());

    // rmcp's client sees the same.
    let client = session(&config, &[], &token_env()).await;
    let (_, bytes) = listed(&client).await;
    assert_eq!(stats["bytes"].as_u64().unwrap(), bytes as u64);
    client.cancel().await.unwrap();

    // The markdown report says the same numbers.
    let out = devgate_with(&["tools", "--stats"], &config, &token_env());
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(
        md.contains(&format!(
            "| `tools/list`: {} tools, {} bytes per tool | {} | {} |",
            stats["tools"], stats["bytes_per_tool"], stats["bytes"], stats["approx_tokens"]
        )),
        "{md}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_with_oauth_count_devgate_connections_and_leave_the_store_alone() {
    let sim = Sim::start().await.unwrap();
    let setup = oauth_setup(&sim, "");
    setup.reserve_public_url();
    let envs = oauth_env();
    let stats = stats(&setup.config, &[], &envs);
    assert_consistent(&stats);
    assert!(
        !setup.dir.join("devgate.db").exists(),
        "measuring does not create the configured store"
    );
    let connections = stats["per_tool"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "devgate_connections")
        .expect("devgate_connections is counted");
    assert_eq!(connections["toolset"], "devgate");

    let client = session(&setup.config, &["--user", "alice"], &envs).await;
    let (result, bytes) = listed(&client).await;
    assert!(names(&result).contains("devgate_connections"));
    assert_eq!(stats["bytes"].as_u64().unwrap(), bytes as u64);
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn toolsets_flag_narrows_the_session_and_the_stats() {
    let sim = Sim::start().await.unwrap();
    let config = config_for(&sim, "");
    let toolset_of = toolset_of();

    let everything = session(&config, &[], &token_env()).await;
    let (all, _) = listed(&everything).await;
    everything.cancel().await.unwrap();

    let client = session(&config, &["--toolsets", "pipelines"], &token_env()).await;
    let (pipelines, bytes) = listed(&client).await;
    client.cancel().await.unwrap();
    let expected: BTreeSet<String> = names(&all)
        .into_iter()
        .filter(|n| toolset_of[n] == "pipelines")
        .collect();
    assert!(expected.len() > 5, "{expected:?}");
    assert_eq!(names(&pipelines), expected);

    let full = stats(&config, &[], &token_env());
    let narrow = stats(&config, &["--toolsets", "pipelines"], &token_env());
    assert_consistent(&narrow);
    assert_eq!(narrow["bytes"].as_u64().unwrap(), bytes as u64);
    assert!(narrow["bytes"].as_u64().unwrap() < full["bytes"].as_u64().unwrap() / 2);
    let sets = narrow["toolsets"].as_array().unwrap();
    assert_eq!(sets.len(), 1, "{sets:?}");
    assert_eq!(sets[0]["name"], "pipelines");
    assert_eq!(sets[0]["tools"], json!(expected.len()));

    // Comma separated, and the flag overrides the file's [tools] toolsets.
    let narrowed_in_file = config_for(&sim, "[tools]\ntoolsets = [\"account\"]\n");
    let client = session(
        &narrowed_in_file,
        &["--toolsets", "pipelines,pull_requests"],
        &token_env(),
    )
    .await;
    let (two, _) = listed(&client).await;
    client.cancel().await.unwrap();
    let sets: BTreeSet<&str> = names(&two).iter().map(|n| toolset_of[n].as_str()).collect();
    assert_eq!(sets, BTreeSet::from(["pipelines", "pull_requests"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_flag_offers_only_tools_that_change_nothing() {
    let sim = Sim::start().await.unwrap();
    let config = config_for(&sim, "");
    let client = session(&config, &["--read-only"], &token_env()).await;
    let (result, bytes) = listed(&client).await;
    client.cancel().await.unwrap();
    assert!(names(&result).contains("bitbucket_list_pull_requests"));
    for tool in &result.tools {
        assert_eq!(
            tool.annotations.as_ref().and_then(|a| a.read_only_hint),
            Some(true),
            "{} offered with --read-only",
            tool.name
        );
    }
    for write in ["bitbucket_merge_pull_request", "buddy_run_pipeline"] {
        assert!(!names(&result).contains(write), "{write} offered");
    }
    let read_only = stats(&config, &["--read-only"], &token_env());
    assert_eq!(read_only["bytes"].as_u64().unwrap(), bytes as u64);
    assert_eq!(
        read_only["tools"].as_u64().unwrap(),
        result.tools.len() as u64
    );

    // Both flags together: read-only tools of one toolset.
    let both = stats(
        &config,
        &["--read-only", "--toolsets", "pipelines"],
        &token_env(),
    );
    let names: Vec<&str> = both["per_tool"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"bitbucket_get_step_log") && !names.contains(&"bitbucket_run_pipeline"),
        "{names:?}"
    );
}

#[test]
fn unknown_toolset_is_refused_naming_the_known_ones() {
    let config = temp_path("toolsets.toml");
    std::fs::write(&config, "[providers.bitbucket]\ntoken = \"sim-t\"\n").unwrap();
    for args in [
        &["stdio", "--toolsets", "nope"][..],
        &[
            "http",
            "--listen",
            "127.0.0.1:0",
            "--toolsets",
            "pipelines,nope",
        ],
        &["tools", "--stats", "--toolsets", "nope"],
        &["tools", "--toolsets", "nope"],
        &["check", "--toolsets", "nope"],
    ] {
        let out = devgate_with(args, &config, &[]);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("with --toolsets has problems")
                && err.contains("unknown toolset `nope` (known: all, account,")
                && err.contains("pipelines, pull_requests"),
            "{args:?}: {err}"
        );
    }
    let out = devgate_with(&["tools", "--toolsets", ""], &config, &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--toolsets needs at least one toolset"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sandbox_writes_the_flags_into_its_config() {
    let config_path = temp_path("sandbox-toolsets").join("devgate.toml");
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--buddy",
            "127.0.0.1:0",
            "--bitbucket",
            "127.0.0.1:0",
            "--toolsets",
            "pipelines",
            "--read-only",
            "--write-config",
        ])
        .arg(&config_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(u) = line.trim().strip_prefix("MCP over HTTP:") {
                return u.trim().to_string();
            }
        }
        panic!("the sandbox stopped");
    })
    .await
    .unwrap();
    let toolset_of = toolset_of();
    let client = http_client(&url).await;
    let (served, _) = listed(&client).await;
    client.cancel().await.unwrap();
    let catalog_tools: BTreeSet<String> = names(&served)
        .into_iter()
        .filter(|n| n != "devgate_connections")
        .collect();
    assert!(!catalog_tools.is_empty());
    for name in &catalog_tools {
        assert_eq!(toolset_of[name], "pipelines", "{name}");
    }
    assert!(!catalog_tools.contains("bitbucket_run_pipeline"));

    // A stdio client started on the written config gets the same tools.
    let out = devgate_with(&["tools", "--format", "json"], &config_path, &[]);
    let offered: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let offered: BTreeSet<String> = offered
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(offered, catalog_tools);
    child.kill().await.unwrap();

    let out = Command::new(BIN)
        .args([
            "sandbox",
            "--listen",
            "127.0.0.1:0",
            "--buddy",
            "127.0.0.1:0",
            "--bitbucket",
            "127.0.0.1:0",
            "--toolsets",
            "nope",
            "--write-config",
        ])
        .arg(temp_path("sandbox-nope").join("devgate.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown toolset `nope` (known: all,"));
}
