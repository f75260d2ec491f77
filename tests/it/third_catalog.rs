//! A catalog devgate does not ship, loaded with `--tools-dir`, gets the same engine as the shipped
//! ones: the server instructions name its provider and say what its shared arguments mean, its
//! `default_from` parameter takes the config's value, and `devgate tools --all` lists it.

use crate::common;

use std::path::{Path, PathBuf};

use common::*;
use devgate::sim::Sim;
use rmcp::ServiceExt;
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};
use tokio::process::Command;

/// A third provider, "Gitty", whose API happens to be shaped like the sim's Bitbucket.
const GITTY: &str = r#"
version = "1"
[provider]
id = "gitty"
title = "Gitty"
arguments = "`workspace` is the Gitty team; `repo_slug` is a repository's short name"
api_base = "https://api.gitty.example"
authorize_url = "/oauth/authorize"
token_url = "/oauth/token"
client_auth = "form"
pagination = { style = "next_url", next = "next" }
error_message = ["error.message"]
error_scopes = "error.detail.required"
whoami = { path = "/user", account = "display_name", id = "uuid" }

[[scopes]]
name = "repository"
description = "Read repositories"

[params]
workspace = { type = "string", required = true, default_from = "workspace" }

[[tools]]
name = "get_repository"
title = "Get repository"
description = "Returns a repository."
toolset = "repositories"
scopes = ["repository"]
annotations = { read_only = true }
method = "GET"
path = "/repositories/{workspace}/{repo_slug}"
params.repo_slug = { type = "string", required = true, description = "Repository" }
output.fields = ["full_name", "main=mainbranch.name"]
example = { workspace = "acme", repo_slug = "api" }
"#;

fn gitty_dir() -> PathBuf {
    let dir = temp_path("third-catalog");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("gitty.toml"), GITTY).unwrap();
    dir
}

fn gitty_config(sim: &Sim) -> PathBuf {
    let dir = temp_path("third-catalog-config");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("devgate.toml");
    let text = format!(
        "[providers.gitty]\napi_base = \"{}\"\ntoken = \"${{TEST_BITBUCKET_TOKEN}}\"\nworkspace = \"acme\"\n",
        sim.bitbucket_url
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn devgate(tools_dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--tools-dir").arg(tools_dir);
    for (k, v) in token_env() {
        cmd.env(k, v);
    }
    cmd
}

#[tokio::test(flavor = "multi_thread")]
async fn a_third_catalog_is_described_defaulted_and_called_like_the_shipped_ones() {
    let sim = Sim::start().await.unwrap();
    let tools = gitty_dir();
    let mut cmd = devgate(&tools);
    cmd.arg("stdio").arg("--config").arg(gitty_config(&sim));
    let client = ().serve(TokioChildProcess::new(cmd).unwrap()).await.unwrap();

    let instructions = client
        .peer_info()
        .and_then(|i| i.instructions.clone())
        .unwrap_or_default();
    assert!(
        instructions.starts_with("devgate: Gitty (gitty_*) tools.")
            && instructions.contains("in gitty_* tools, `workspace` is the Gitty team")
            && instructions.contains("gitty_* tools work in workspace `acme`"),
        "{instructions}"
    );
    assert!(
        !instructions.contains("Buddy") && !instructions.contains("Bitbucket"),
        "no provider this gateway does not serve: {instructions}"
    );

    let listed = client.list_all_tools().await.unwrap();
    let get = listed
        .iter()
        .find(|t| t.name == "gitty_get_repository")
        .expect("the third catalog's tool is offered");
    assert!(
        get.input_schema["properties"].get("workspace").is_none(),
        "the configured workspace is left out of the schema: {:?}",
        get.input_schema
    );
    let repo = ok(
        "gitty_get_repository",
        &call(&client, "gitty_get_repository", json!({"repo_slug": "api"})).await,
    );
    assert_eq!(repo["full_name"], "acme/api", "{repo}");
    client.cancel().await.unwrap();
}

/// `devgate --tools-dir <tools> tools <args>`, which must succeed; its JSON output.
async fn tools_json(tools: &Path, args: &[&str]) -> Value {
    let out = devgate(tools)
        .arg("tools")
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn tools_all_lists_a_third_catalog_without_credentials() {
    let tools = gitty_dir();
    let listed = tools_json(&tools, &["--all", "--format", "json"]).await;
    assert!(
        listed.to_string().contains("gitty_get_repository"),
        "{listed}"
    );
    let stats = tools_json(&tools, &["--all", "--stats", "--format", "json"]).await;
    assert_eq!(stats["tools"], 1, "{stats}");
}
