//! Every catalog tool, called once over stdio with its example arguments, against the sim: each
//! answers with a shaped result in which every output field the catalog declares appears (in some
//! item, for lists), and each reached the simulated provider.

use std::collections::BTreeMap;

use crate::common::*;
use devgate::catalog::Catalog;
use devgate::sim::{Sim, Which};
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

/// Declared boolean fields that are `false` in every example result the sims give, which devgate
/// leaves out as a default value.
const FALSE_IN_EVERY_EXAMPLE: &[&str] = &[
    "buddy_get_workspace.frozen",
    "buddy_list_pipelines.disabled",
    "buddy_get_pipeline.paused",
    "buddy_list_variables.settable",
    "buddy_get_variable.settable",
    "bitbucket_list_pull_requests.draft",
    "bitbucket_get_pull_request.draft",
    "bitbucket_create_pull_request.draft",
];

#[tokio::test(flavor = "multi_thread")]
async fn every_tool_answers_over_stdio() {
    let sim = Sim::start().await.unwrap();
    // This client cannot ask its user, and confirming is not what this test is about (tests/it/confirm/).
    let config = config_for(&sim, "\n[tools]\nconfirm_destructive = false");
    let (client, stderr) = stdio(&config).await;
    let catalog = Catalog::builtin().unwrap();

    let listed = client.list_all_tools().await.unwrap();
    let all: Vec<_> = catalog
        .providers
        .iter()
        .flat_map(|p| p.tools.iter())
        .collect();
    assert_eq!(
        listed.len(),
        all.len(),
        "every tool is offered when every scope is configured"
    );

    let mut outputs = String::new();
    // What each tool showed (its object, or its list's items), and each example's result.
    let mut seen: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut results: BTreeMap<String, Value> = BTreeMap::new();
    for tool in &all {
        sim.state.clear_requests();
        let example = tool.spec.example.clone().unwrap_or_default();
        let result = client
            .call_tool(CallToolRequestParams::new(tool.name.clone()).with_arguments(example))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", tool.name));
        let structured = ok(&tool.name, &result);
        outputs.push_str(&serde_json::to_string(&result).unwrap());
        assert!(
            structured.is_object(),
            "{}: structured content is an object",
            tool.name
        );
        if tool.spec.output.as_ref().is_some_and(|o| o.list.is_some()) {
            let items = structured["items"].as_array();
            assert!(
                items.is_some_and(|a| !a.is_empty()),
                "{}: the example lists something: {structured}",
                tool.name
            );
            seen.entry(tool.name.clone())
                .or_default()
                .extend(items.into_iter().flatten().cloned());
        } else {
            seen.entry(tool.name.clone())
                .or_default()
                .push(structured.clone());
        }
        results.insert(tool.name.clone(), structured);
        let requests = sim.requests();
        let provider = if tool.provider == "buddy" {
            Which::Buddy
        } else {
            Which::Bitbucket
        };
        let method = tool.spec.method.as_reqwest().to_string();
        assert!(
            requests
                .iter()
                .any(|r| r.provider == provider && r.method == method),
            "{}: the sim saw no {method} request: {requests:?}",
            tool.name
        );
        assert!(
            // Bitbucket's log storage takes pre-signed URLs and must never see the token.
            requests
                .iter()
                .all(|r| if r.path.starts_with("/step-logs/") {
                    r.auth == "None"
                } else {
                    r.auth == "Bearer"
                }),
            "{}: every API request carries the token, no storage request does",
            tool.name
        );
    }

    // Fields only some states carry, each reached once more: a merged pull request's merge commit, a
    // disabled pipeline's reason, a variable scoped to a pipeline, an integration kept to a project,
    // a run started with a comment, a run paused at a manual step.
    let buddy_run = &results["buddy_run_pipeline"]["id"];
    let bitbucket_run = &results["bitbucket_run_pipeline"]["uuid"];
    sim.state.advance(std::time::Duration::from_secs(600));
    let states = [
        (
            "buddy_get_pipeline",
            json!({"project": "api", "pipeline": "release"}),
        ),
        ("buddy_get_variable", json!({"variable_id": 322})),
        ("buddy_get_integration", json!({"hash_id": "Q1mZr8TdF4gJ"})),
        (
            "buddy_get_execution",
            json!({"project": "web", "pipeline": "build-and-test", "execution_id": buddy_run}),
        ),
        (
            "bitbucket_get_pull_request",
            json!({"repo_slug": "api", "pull_request_id": 1}),
        ),
        (
            "bitbucket_get_pipeline",
            json!({"repo_slug": "api", "pipeline_uuid": bitbucket_run}),
        ),
    ];
    for (tool, arguments) in states {
        let shown = ok(tool, &call(&client, tool, arguments).await);
        seen.entry(tool.to_string()).or_default().push(shown);
    }
    let mut never_seen = Vec::new();
    for tool in &all {
        // A field the example asks to leave out (`fields`) is not expected.
        let asked: Option<Vec<&str>> = example_fields(&tool.spec.example);
        for field in tool.output.iter().flatten() {
            let wanted = asked
                .as_ref()
                .is_none_or(|a| a.contains(&field.out.as_str()));
            // False in every example the sims hold, so left out as a default (`shape::is_default`).
            let default_in_examples =
                FALSE_IN_EVERY_EXAMPLE.contains(&format!("{}.{}", tool.name, field.out).as_str());
            if wanted
                && !default_in_examples
                && !seen[&tool.name]
                    .iter()
                    .any(|item| item.get(&field.out).is_some())
            {
                never_seen.push(format!("{}.{}", tool.name, field.out));
            }
        }
    }
    // The listed fields really are absent (a default), so the list cannot hide a field that went away.
    for listed in FALSE_IN_EVERY_EXAMPLE {
        let (tool, field) = listed.split_once('.').unwrap();
        assert!(
            seen[tool].iter().all(|item| item.get(field).is_none()),
            "{listed} came back: take it off FALSE_IN_EVERY_EXAMPLE"
        );
    }
    assert!(
        never_seen.is_empty(),
        "declared output fields that no example result carries (the sim's data or the catalog is off): {never_seen:?}"
    );

    let logs = stderr.text();
    for secret in ["sim-buddy-token", "sim-bitbucket-token"] {
        assert!(!logs.contains(secret), "a token leaked into the logs");
        assert!(
            !outputs.contains(secret),
            "a token leaked into a tool result"
        );
    }
    client.cancel().await.unwrap();
}

/// The output fields an example names with the engine's `fields` argument, if it does.
fn example_fields(example: &Option<serde_json::Map<String, Value>>) -> Option<Vec<&str>> {
    let fields = example
        .as_ref()?
        .get(devgate::catalog::FIELDS_PARAM)?
        .as_array()?;
    Some(fields.iter().filter_map(Value::as_str).collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn tools_list_is_small_and_fully_described() {
    let sim = Sim::start().await.unwrap();
    let config = config_for(&sim, "");
    let (client, _) = stdio(&config).await;
    let catalog = Catalog::builtin().unwrap();
    let tools = client.list_all_tools().await.unwrap();
    let bytes = serde_json::to_vec(&tools).unwrap().len();
    let per_tool = bytes / tools.len();
    println!(
        "tools/list: {} tools, {bytes} bytes, {per_tool} bytes per tool",
        tools.len()
    );
    assert!(
        per_tool <= 400,
        "tools/list averages {per_tool} bytes per tool (budget 400)"
    );
    for tool in &tools {
        assert!(
            tool.title.as_deref().is_some_and(|t| !t.is_empty()),
            "{}: title",
            tool.name
        );
        let description = tool.description.as_deref().unwrap_or_default();
        assert!(
            (20..=240).contains(&description.len()),
            "{}: description length {}",
            tool.name,
            description.len()
        );
        let sentences = description.matches(". ").count() + 1;
        assert!(
            sentences <= 2,
            "{}: at most two sentences: {description}",
            tool.name
        );
        let a = tool
            .annotations
            .as_ref()
            .unwrap_or_else(|| panic!("{}: annotations", tool.name));
        let spec = catalog
            .providers
            .iter()
            .flat_map(|p| p.tools.iter())
            .find(|t| t.name == tool.name)
            .unwrap_or_else(|| panic!("{} is in the catalog", tool.name));
        let hints = spec.spec.annotations;
        if hints.read_only {
            assert_eq!(a.read_only_hint, Some(true), "{}", tool.name);
        } else {
            // A tool that writes states both hints that matter for confirmation prompts.
            assert_ne!(a.read_only_hint, Some(true), "{}", tool.name);
            assert_eq!(a.destructive_hint, Some(hints.destructive), "{}", tool.name);
            assert_eq!(a.idempotent_hint, Some(hints.idempotent()), "{}", tool.name);
        }
        assert_eq!(
            tool.input_schema.get("type"),
            Some(&Value::from("object")),
            "{}",
            tool.name
        );
        assert!(tool.output_schema.is_some(), "{}: outputSchema", tool.name);
    }
    client.cancel().await.unwrap();
}
