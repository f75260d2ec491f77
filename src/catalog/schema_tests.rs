//! Tests of `schema.rs`: the argument check, table-driven over the shipped catalogs' tools: what passes comes back
//! with defaults filled and loose types coerced; what fails names the field and what to send.

use serde_json::{Value, json};

use super::{Defaults, validate};
use crate::catalog::Catalog;

/// Checks `args` for the shipped tool `name`, with `acme` as the configured workspace.
fn check(name: &str, args: Value) -> Result<Value, String> {
    let catalog = Catalog::builtin().expect("the shipped catalogs load");
    let tool = catalog
        .providers
        .iter()
        .flat_map(|p| p.tools.iter())
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no tool {name}"));
    let defaults = Defaults {
        workspace: Some("acme".into()),
    };
    validate(tool, args.as_object(), &defaults)
        .map(Value::Object)
        .map_err(|e| e.to_string())
}

#[test]
fn accepted_arguments_come_back_with_defaults_and_coerced_types() {
    let cases = [
        // The configured workspace and the declared defaults fill what is absent.
        (
            "bitbucket_list_pull_requests",
            json!({"repo_slug": "api"}),
            json!({"workspace": "acme", "repo_slug": "api", "sort": "-updated_on", "limit": 10}),
        ),
        // Strings that spell numbers and booleans are what models often send.
        (
            "bitbucket_get_pull_request",
            json!({"repo_slug": "api", "pull_request_id": "7"}),
            json!({"workspace": "acme", "repo_slug": "api", "pull_request_id": 7}),
        ),
        // A given value wins over the config's default.
        (
            "bitbucket_get_repository",
            json!({"workspace": "other", "repo_slug": "api"}),
            json!({"workspace": "other", "repo_slug": "api"}),
        ),
        // Engine-added arguments pass where the tool takes them.
        (
            "bitbucket_list_pull_requests",
            json!({"repo_slug": "api", "cursor": "c", "fields": "links.html.href"}),
            json!({"workspace": "acme", "repo_slug": "api", "sort": "-updated_on", "limit": 10,
                   "cursor": "c", "fields": ["links.html.href"]}),
        ),
        (
            "bitbucket_run_pipeline",
            json!({"repo_slug": "api", "branch": "main", "wait": "30", "confirm": "true"}),
            json!({"workspace": "acme", "repo_slug": "api", "branch": "main", "wait": 30,
                   "confirm": true}),
        ),
    ];
    for (tool, args, want) in cases {
        let got = check(tool, args.clone()).unwrap_or_else(|e| panic!("{tool} {args}: {e}"));
        for (key, value) in want.as_object().unwrap() {
            assert_eq!(got.get(key), Some(value), "{tool} {args}: {key} in {got}");
        }
        assert_eq!(
            got.as_object().unwrap().len(),
            want.as_object().unwrap().len(),
            "{tool} {args}: exactly {want}, got {got}"
        );
    }
}

#[test]
fn refused_arguments_name_the_field_and_the_fix() {
    let cases = [
        (
            "bitbucket_get_pull_request",
            json!({"repo_slug": "api"}),
            "pull_request_id: required",
        ),
        (
            "bitbucket_get_pull_request",
            json!({"repo_slug": "api", "pull_request_id": 1.5}),
            "pull_request_id: must be an integer",
        ),
        (
            "bitbucket_list_pull_requests",
            json!({"repo_slug": "api", "limit": 51}),
            "limit: must be at most 50",
        ),
        (
            "bitbucket_list_pull_requests",
            json!({"repo_slug": "api", "state": ["open"]}),
            "must be one of OPEN, MERGED, DECLINED, SUPERSEDED",
        ),
        (
            "bitbucket_list_pull_requests",
            json!({"repo_slug": "api", "wait": 5}),
            "wait: unknown argument; expected one of:",
        ),
        (
            "bitbucket_get_current_user",
            json!({"x": 1}),
            "x: unknown argument; expected one of: fields",
        ),
        (
            "bitbucket_list_pull_requests",
            json!({"repo_slug": "api", "cursor": 3}),
            "cursor: must be a string",
        ),
        (
            "bitbucket_list_pull_requests",
            json!({"repo_slug": "api", "fields": [1]}),
            "fields[0]: must be a string",
        ),
        (
            "bitbucket_list_pull_requests",
            json!({"repo_slug": "api", "fields": vec!["a"; 21]}),
            "fields: at most 20 fields per call, got 21",
        ),
        (
            "bitbucket_list_pull_requests",
            json!({"repo_slug": "api", "fields": "a..b"}),
            "fields[0]:",
        ),
        (
            "bitbucket_run_pipeline",
            json!({"repo_slug": "api", "branch": "main", "wait": -1}),
            "wait: must be at least 0",
        ),
        (
            "bitbucket_run_pipeline",
            json!({"repo_slug": "api", "branch": "main", "confirm": "maybe"}),
            "confirm: must be a boolean",
        ),
        (
            "bitbucket_run_pipeline",
            json!({"repo_slug": "api"}),
            "branch | commit: give one of branch, commit",
        ),
        (
            "bitbucket_run_pipeline",
            json!({"repo_slug": "api", "commit": "abc"}),
            "commit: needs `branch` or `pipeline` with it",
        ),
        (
            "bitbucket_run_pipeline",
            json!({"repo_slug": "api", "branch": "main", "variables": [{"key": "K"}]}),
            "variables[0].value: required",
        ),
        (
            "bitbucket_get_step_log",
            json!({"repo_slug": "api", "pipeline_uuid": "{p}", "step_uuid": "{s}", "offset": -1}),
            "offset: must be at least 0",
        ),
        (
            "bitbucket_get_step_log",
            json!({"repo_slug": "api", "pipeline_uuid": "{p}", "step_uuid": "{s}", "tail": 0}),
            "tail: must be at least 1",
        ),
    ];
    for (tool, args, want) in cases {
        match check(tool, args.clone()) {
            Ok(got) => panic!("{tool} {args} passed as {got}; want `{want}`"),
            Err(message) => assert!(
                message.contains(want),
                "{tool} {args}: got `{message}`, want `{want}`"
            ),
        }
    }
}

/// Without a configured workspace, a parameter defaulting to it is required like any other.
#[test]
fn a_default_from_config_that_is_unset_leaves_the_parameter_required() {
    let catalog = Catalog::builtin().unwrap();
    let tool = catalog
        .providers
        .iter()
        .flat_map(|p| p.tools.iter())
        .find(|t| t.name == "bitbucket_get_repository")
        .unwrap();
    let args = json!({"repo_slug": "api"});
    let err = validate(tool, args.as_object(), &Defaults::default()).unwrap_err();
    assert_eq!(err.field, "workspace");
    assert_eq!(err.message, "required");
}
