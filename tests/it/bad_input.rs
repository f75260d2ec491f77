//! Bad arguments come back as tool errors naming the field, before anything goes upstream; an unknown
//! tool is a protocol error; hostile path values stay inside their own path segment.

use crate::common::*;
use devgate::sim::Sim;
use rmcp::model::CallToolRequestParams;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn invalid_arguments_name_the_tool_and_field_and_send_nothing() {
    let sim = Sim::start().await.unwrap();
    let client = in_process_for(&sim, "").await;
    let cases = [
        (
            "bitbucket_get_pull_request",
            json!({"repo_slug": "api"}),
            "bitbucket_get_pull_request: pull_request_id: required",
        ),
        (
            "bitbucket_get_pull_request",
            json!({"repo_slug": "api", "pull_request_id": "seven"}),
            "pull_request_id: must be an integer, got a string",
        ),
        (
            "bitbucket_get_pull_request",
            json!({"repo_slug": "api", "pull_request_id": [1]}),
            "pull_request_id: must be an integer, got an array",
        ),
        (
            "bitbucket_list_pull_requests",
            json!({"repo_slug": "api", "state": "open"}),
            "state: must be one of OPEN, MERGED, DECLINED, SUPERSEDED",
        ),
        (
            "bitbucket_list_pull_requests",
            json!({"repo_slug": "api", "limit": 500}),
            "limit: must be at most 50",
        ),
        (
            "bitbucket_list_pull_requests",
            json!({"repo_slug": "api", "stat": "OPEN"}),
            "stat: unknown argument; expected one of:",
        ),
        (
            "bitbucket_get_repository",
            json!({"repo_slug": ".."}),
            "repo_slug: must not be `.` or `..`",
        ),
        (
            "bitbucket_get_repository",
            json!({"repo_slug": ""}),
            "repo_slug: must not be empty",
        ),
        (
            "bitbucket_run_pipeline",
            json!({"repo_slug": "api"}),
            "branch | commit: give one of branch, commit",
        ),
        (
            "buddy_run_pipeline",
            json!({"project": "web", "pipeline": "1", "variables": [{"value": "x"}]}),
            "variables[0].key: required",
        ),
    ];
    for (tool, arguments, expected) in cases {
        let result = call(&client, tool, arguments.clone()).await;
        assert!(is_error(&result), "{tool} {arguments} should fail");
        let message = text(&result);
        assert!(
            message.contains(expected),
            "{tool} {arguments}: got `{message}`, want `{expected}`"
        );
    }
    assert!(
        sim.requests().is_empty(),
        "nothing reached the provider: {:?}",
        sim.requests()
    );
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_tool_is_a_protocol_error() {
    let sim = Sim::start().await.unwrap();
    let client = in_process_for(&sim, "").await;
    let err = client
        .call_tool(
            CallToolRequestParams::new("bitbucket_delete_everything")
                .with_arguments(args(json!({}))),
        )
        .await
        .expect_err("unknown tool");
    let text = err.to_string();
    assert!(
        text.contains("-32602") || text.contains("Invalid params") || text.contains("unknown tool"),
        "{text}"
    );
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_path_values_stay_in_their_segment() {
    let sim = Sim::start().await.unwrap();
    let client = in_process_for(&sim, "").await;
    let cases = [
        ("../x", "..%2Fx"),
        ("a/b", "a%2Fb"),
        ("?q=1", "%3Fq%3D1"),
        ("#f", "%23f"),
        ("%2F", "%252F"),
        ("{uuid}", "%7Buuid%7D"),
        ("../../user", "..%2F..%2Fuser"),
    ];
    for (hostile, encoded) in cases {
        sim.state.clear_requests();
        let result = call(
            &client,
            "bitbucket_get_repository",
            json!({"repo_slug": hostile}),
        )
        .await;
        assert!(is_error(&result), "{hostile}: no such repository");
        let seen = sim.requests();
        assert_eq!(seen.len(), 1, "{hostile}: {seen:?}");
        assert_eq!(
            seen[0].path,
            format!("/2.0/repositories/acme/{encoded}"),
            "{hostile}"
        );
        // The only query is the partial-response list devgate asks with (no key smuggled in).
        let keys: Vec<String> =
            url::form_urlencoded::parse(seen[0].query.as_deref().unwrap_or_default().as_bytes())
                .map(|(k, _)| k.into_owned())
                .collect();
        assert_eq!(keys, ["fields"], "{hostile}: no query smuggled in");
        assert!(text(&result).contains("404"), "{}", text(&result));
    }
    // A value that spans segments on purpose (a file path) is still kept inside the repository.
    sim.state.clear_requests();
    let result = call(
        &client,
        "bitbucket_get_file",
        json!({"repo_slug": "api", "ref": "main", "path": "../../../user"}),
    )
    .await;
    assert!(is_error(&result));
    assert!(
        text(&result).contains("path: must not be `.` or `..`"),
        "{}",
        text(&result)
    );
    assert!(sim.requests().is_empty());
    client.cancel().await.unwrap();
}

/// A cursor as devgate used to make them, unsigned (`base64url(tool \n relative URL)`): what an agent
/// that read one would forge.
fn encode_cursor(tool: &str, relative_url: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{tool}\n{relative_url}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn cursors_cannot_be_pointed_elsewhere() {
    let sim = Sim::start().await.unwrap();
    let client = in_process_for(&sim, "").await;
    let tool = "bitbucket_list_pull_requests";
    let forged = [
        encode_cursor(
            tool,
            "http://evil.example/2.0/repositories/acme/api/pullrequests?page=2",
        ),
        encode_cursor(tool, "//evil.example/x"),
        encode_cursor(tool, "/repositories/acme/other/pullrequests?page=2"),
        encode_cursor(tool, "/user"),
        encode_cursor(
            "bitbucket_list_branches",
            "/repositories/acme/api/pullrequests?page=2",
        ),
        "not a cursor".to_string(),
    ];
    for cursor in forged {
        let result = call(&client, tool, json!({"repo_slug": "api", "cursor": cursor})).await;
        assert!(is_error(&result), "{cursor} was accepted");
        assert!(text(&result).contains("cursor:"), "{}", text(&result));
    }
    assert!(sim.requests().is_empty(), "{:?}", sim.requests());
    client.cancel().await.unwrap();
}
