//! Bitbucket as it is now, through the binary: the issue tracker is gone (removed 2026-08-20), so no
//! issue tool is offered and a config written before its removal still starts, with a warning naming
//! each retired name; and the tools report the fields Atlassian's document describes (`build_seconds_used`,
//! `trigger.type`, `summary.raw`) rather than ones it does not (tests/it/contract/ holds every path).

use std::process::Command;

use crate::common::*;
use devgate::sim::Sim;
use rmcp::model::CallToolRequestParams;
use serde_json::json;

/// A config as it was written while the tracker existed: its scope, its toolset, an issue tool excluded
/// and another confirmed.
fn config_from_before(sim: &Sim) -> std::path::PathBuf {
    let text = format!(
        r#"
[http]
auth = "none"

[tools]
toolsets = ["pull_requests", "issues"]
exclude = ["bitbucket_get_issue"]
confirm = ["bitbucket_create_issue"]

[providers.bitbucket]
api_base = "{bitbucket}"
token = "${{TEST_BITBUCKET_TOKEN}}"
workspace = "acme"
scopes = ["account", "repository", "pullrequest", "issue", "issue:write"]
"#,
        bitbucket = sim.bitbucket_url,
    );
    let dir = temp_path("retired");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("devgate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

const WARNINGS: [&str; 5] = [
    "providers.bitbucket.scopes: `issue` is retired (Bitbucket removed its issue tracker on 2026-08-20); it is ignored: remove it",
    "providers.bitbucket.scopes: `issue:write` is retired",
    "tools.toolsets: `issues` is retired (Bitbucket removed its issue tracker on 2026-08-20); it selects no tool: remove it",
    "tools.exclude: `bitbucket_get_issue` is retired",
    "tools.confirm: `bitbucket_create_issue` is retired",
];

#[tokio::test(flavor = "multi_thread")]
async fn a_config_from_before_the_issue_trackers_removal_starts_with_warnings() {
    let sim = Sim::start().await.unwrap();
    let config = config_from_before(&sim);

    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&config)
        .envs(token_env())
        .env_remove("DEVGATE_CONFIG")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    for warning in WARNINGS {
        assert!(
            err.contains(&format!("warning: {warning}")),
            "no `{warning}` in:\n{err}"
        );
    }

    let (client, stderr) = stdio(&config).await;
    let tools = client.list_all_tools().await.unwrap();
    assert!(
        tools
            .iter()
            .any(|t| t.name == "bitbucket_list_pull_requests"),
        "the other toolset is still offered"
    );
    assert!(
        tools.iter().all(|t| !t.name.contains("issue")),
        "no issue tool: {:?}",
        tools.iter().map(|t| &t.name).collect::<Vec<_>>()
    );
    let gone = client
        .call_tool(
            CallToolRequestParams::new("bitbucket_list_issues")
                .with_arguments(args(json!({"repo_slug": "api"}))),
        )
        .await;
    assert!(gone.is_err(), "an unknown tool: {gone:?}");
    let logs = stderr.text();
    assert!(logs.contains(WARNINGS[0]), "{logs}");
    assert!(
        sim.requests().iter().all(|r| !r.path.contains("/issues")),
        "nothing asked Bitbucket for issues"
    );
    client.cancel().await.unwrap();
}

#[test]
fn a_name_no_catalog_ever_had_is_still_an_error() {
    let path = temp_path("typo.toml");
    std::fs::write(
        &path,
        "[tools]\ntoolsets = [\"isues\"]\n[providers.bitbucket]\ntoken = \"t\"\nscopes = [\"isue\"]\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .env_remove("DEVGATE_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown toolset `isues`"), "{err}");
    assert!(err.contains("unknown scope `isue`"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_and_pull_requests_report_documented_fields() {
    let sim = Sim::start().await.unwrap();
    let client = in_process_for(&sim, "").await;
    let repo = json!({"repo_slug": "api"});

    let runs = ok(
        "list_pipelines",
        &call(&client, "bitbucket_list_pipelines", repo.clone()).await,
    );
    let run = &runs["items"][0];
    assert!(
        run["trigger"]
            .as_str()
            .is_some_and(|t| t.starts_with("pipeline_trigger_")),
        "the trigger's documented `type`: {run}"
    );
    let uuid = run["uuid"].as_str().unwrap();
    let one = ok(
        "get_pipeline",
        &call(
            &client,
            "bitbucket_get_pipeline",
            json!({"repo_slug": "api", "pipeline_uuid": uuid}),
        )
        .await,
    );
    assert!(one["build_seconds"].is_u64(), "build_seconds_used: {one}");
    assert!(one.get("seconds").is_none(), "{one}");

    let steps = ok(
        "list_pipeline_steps",
        &call(
            &client,
            "bitbucket_list_pipeline_steps",
            json!({"repo_slug": "api", "pipeline_uuid": uuid}),
        )
        .await,
    );
    for step in steps["items"].as_array().unwrap() {
        assert!(step["name"].is_string(), "{step}");
        assert!(step.get("seconds").is_none(), "{step}");
    }

    let pr = ok(
        "get_pull_request",
        &call(
            &client,
            "bitbucket_get_pull_request",
            json!({"repo_slug": "api", "pull_request_id": 27}),
        )
        .await,
    );
    let raw = {
        let data = devgate::sim::lock(&sim.state.bitbucket);
        let repo = data.repos.iter().find(|r| r.slug == "api").unwrap();
        repo.pull_requests
            .iter()
            .find(|p| p.id == 27)
            .unwrap()
            .description
            .clone()
    };
    let shown = pr["description"].as_str().unwrap_or_default();
    assert!(
        !shown.is_empty() && raw.starts_with(shown.trim_end_matches('…')),
        "{pr}"
    );

    let repo_info = ok(
        "get_repository",
        &call(&client, "bitbucket_get_repository", repo).await,
    );
    assert!(repo_info.get("has_issues").is_none(), "{repo_info}");
    client.cancel().await.unwrap();
}

/// Bitbucket's partial responses: a list call asks for only the fields its tool reads (`fields=` with
/// `values.` paths and `next`), the page comes back as complete as before, the cursor leaves the
/// list out (devgate adds it to every request, so it would only lengthen what the agent carries), and
/// the next page, asked for with that cursor, sends the list once again.
#[tokio::test(flavor = "multi_thread")]
async fn lists_ask_bitbucket_for_only_the_fields_they_read() {
    use base64::Engine;
    let sim = Sim::start().await.unwrap();
    let (client, _stderr) = stdio(&config_for(&sim, "")).await;
    let tool = "bitbucket_list_pull_requests";
    let asked_fields = |sim: &Sim| -> Vec<String> {
        let seen = sim.requests();
        let list: Vec<_> = seen
            .iter()
            .filter(|r| r.path.ends_with("/pullrequests"))
            .collect();
        assert_eq!(list.len(), 1, "{seen:?}");
        url::form_urlencoded::parse(list[0].query.as_deref().unwrap_or_default().as_bytes())
            .filter(|(k, _)| k == "fields")
            .map(|(_, v)| v.into_owned())
            .collect()
    };

    sim.state.clear_requests();
    let first = ok(
        tool,
        &call(&client, tool, json!({"repo_slug": "api", "limit": 2})).await,
    );
    let fields = asked_fields(&sim);
    assert_eq!(fields.len(), 1, "{fields:?}");
    let paths: Vec<&str> = fields[0].split(',').collect();
    for path in [
        "next",
        "values.id",
        "values.title",
        "values.author.display_name",
    ] {
        assert!(paths.contains(&path), "{path} in {paths:?}");
    }
    assert!(
        !paths.iter().any(|p| p.starts_with("values.links.self")),
        "{paths:?}"
    );
    let items = first["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{first}");
    for item in items {
        for key in [
            "id",
            "title",
            "author",
            "source",
            "destination",
            "updated_on",
        ] {
            assert!(item.get(key).is_some(), "{key} in {item}");
        }
    }

    let cursor = first["next_cursor"].as_str().expect("30 PRs: more pages");
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&decoded).contains("fields="),
        "{}",
        String::from_utf8_lossy(&decoded)
    );
    sim.state.clear_requests();
    let second = ok(
        tool,
        &call(
            &client,
            tool,
            json!({"repo_slug": "api", "limit": 2, "cursor": cursor}),
        )
        .await,
    );
    assert_eq!(asked_fields(&sim), fields, "the same list, once");
    let second_items = second["items"].as_array().unwrap();
    assert_eq!(second_items.len(), 2);
    assert_ne!(second_items[0]["id"], items[0]["id"], "the next page");
}
