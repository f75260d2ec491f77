//! Results shaped for agents, measured through the real path: byte budgets on the sim's realistic
//! data, cursors that page through a whole list, and text cut at the cap with an offset to read on.

use crate::common::*;
use devgate::sim::{Sim, lock};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn pull_requests_fit_their_budgets() {
    let sim = Sim::start().await.unwrap();
    let client = in_process_for(&sim, "").await;

    let page = call(
        &client,
        "bitbucket_list_pull_requests",
        json!({"repo_slug": "api", "limit": 10}),
    )
    .await;
    let listed = ok("bitbucket_list_pull_requests", &page);
    assert_eq!(listed["items"].as_array().unwrap().len(), 10);
    let bytes = text(&page).len();
    println!("a page of 10 pull requests: {bytes} bytes");
    assert!(
        bytes <= 2100,
        "a page of 10 pull requests is {bytes} bytes (budget 2100)"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&text(&page)).unwrap(),
        listed,
        "the text is the structured content"
    );

    let id = listed["items"][0]["id"].clone();
    let one = call(
        &client,
        "bitbucket_get_pull_request",
        json!({"repo_slug": "api", "pull_request_id": id}),
    )
    .await;
    ok("bitbucket_get_pull_request", &one);
    let bytes = text(&one).len();
    println!("one pull request: {bytes} bytes");
    assert!(
        bytes <= 1200,
        "one pull request is {bytes} bytes (budget 1200)"
    );
    assert!(!text(&one).contains("\"links\""), "no links blobs");
    client.cancel().await.unwrap();
}

/// Follows `next_cursor` to the end and returns every item.
async fn page_through(client: &Client, tool: &str, mut arguments: Value) -> Vec<Value> {
    let mut all = Vec::new();
    for _ in 0..20 {
        let result = ok(tool, &call(client, tool, arguments.clone()).await);
        all.extend(result["items"].as_array().unwrap().iter().cloned());
        match result.get("next_cursor") {
            Some(cursor) => arguments["cursor"] = cursor.clone(),
            None => return all,
        }
    }
    panic!("{tool}: more than 20 pages");
}

#[tokio::test(flavor = "multi_thread")]
async fn cursors_page_through_whole_lists() {
    let sim = Sim::start().await.unwrap();
    let client = in_process_for(&sim, "").await;

    let open = lock(&sim.state.bitbucket)
        .repos
        .iter()
        .find(|r| r.workspace == "acme" && r.slug == "api")
        .map(|r| r.pull_requests.iter().filter(|p| p.state == "OPEN").count())
        .unwrap();
    let prs = page_through(
        &client,
        "bitbucket_list_pull_requests",
        json!({"repo_slug": "api", "limit": 4}),
    )
    .await;
    let mut ids: Vec<i64> = prs.iter().map(|p| p["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), open, "every open pull request, once");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), open, "no duplicates across pages");

    let runs = page_through(
        &client,
        "buddy_list_executions",
        json!({"project": "web", "pipeline": "build-and-test", "limit": 10}),
    )
    .await;
    let mut run_ids: Vec<i64> = runs.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    let total = run_ids.len();
    assert!(total > 20, "several pages of runs: {total}");
    run_ids.dedup();
    assert_eq!(run_ids.len(), total, "no duplicates across Buddy pages");
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn long_text_is_cut_and_read_on_with_offset() {
    let sim = Sim::start().await.unwrap();
    let client = in_process_for(&sim, "").await;
    let full = lock(&sim.state.bitbucket)
        .repos
        .iter()
        .find(|r| r.slug == "api")
        .and_then(|r| r.files.get("CHANGELOG.md").cloned())
        .expect("the sim has a long file");
    assert!(full.len() > 2 * 65536);

    let mut assembled = String::new();
    let mut offset = 0u64;
    for _ in 0..10 {
        let result = call(
            &client,
            "bitbucket_get_file",
            json!({"repo_slug": "api", "ref": "main", "path": "CHANGELOG.md", "offset": offset}),
        )
        .await;
        let structured = ok("bitbucket_get_file", &result);
        let chunk = structured["text"].as_str().unwrap();
        assert!(chunk.len() <= 65536, "cut at the default cap");
        assembled.push_str(chunk);
        match structured.get("next_offset").and_then(Value::as_u64) {
            Some(next) => {
                assert!(
                    text(&result).contains(&format!("offset={next}")),
                    "the text says how to read on"
                );
                offset = next;
            }
            None => break,
        }
    }
    assert_eq!(assembled, full, "the pieces make the whole file");

    let short = ok(
        "bitbucket_get_file",
        &call(
            &client,
            "bitbucket_get_file",
            json!({"repo_slug": "api", "ref": "feature/login", "path": "README.md"}),
        )
        .await,
    );
    assert!(
        short.get("next_offset").is_none(),
        "a short file is not cut"
    );
    assert!(!short["text"].as_str().unwrap().is_empty());
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn log_tails_are_the_last_lines() {
    let sim = Sim::start().await.unwrap();
    let client = in_process_for(&sim, "").await;
    let args = json!({"project": "web", "pipeline": "build-and-test", "execution_id": 5117, "action_id": 103});
    let full = ok(
        "buddy_get_action_log",
        &call(&client, "buddy_get_action_log", args.clone()).await,
    );
    let all: Vec<&str> = full["text"].as_str().unwrap().lines().collect();
    assert!(all.len() > 200, "a long log: {}", all.len());
    let mut tail_args = args.clone();
    tail_args["tail"] = json!(20);
    let tail = ok(
        "buddy_get_action_log",
        &call(&client, "buddy_get_action_log", tail_args).await,
    );
    let last: Vec<&str> = tail["text"].as_str().unwrap().lines().collect();
    assert_eq!(last, all[all.len() - 20..], "the last 20 lines");

    let step = json!({"repo_slug": "api", "pipeline_uuid": "{50d9818b-bf4a-4c9c-ad2c-f6e9f32c28af}", "step_uuid": "{ae6b1155-7113-47d3-aabd-800f7d4fe4be}"});
    let whole = ok(
        "bitbucket_get_step_log",
        &call(&client, "bitbucket_get_step_log", step.clone()).await,
    );
    let lines: Vec<&str> = whole["text"].as_str().unwrap().lines().collect();
    let mut step_tail = step.clone();
    step_tail["tail"] = json!(5);
    let tail = ok(
        "bitbucket_get_step_log",
        &call(&client, "bitbucket_get_step_log", step_tail).await,
    );
    assert_eq!(
        tail["text"].as_str().unwrap().lines().collect::<Vec<_>>(),
        lines[lines.len() - 5..]
    );
    client.cancel().await.unwrap();
}

/// `fields` widens the default projection, on lists (every page) and single objects; a path no item
/// has is named in `fields_absent`; a malformed path or a write tool is refused naming the field.
#[tokio::test(flavor = "multi_thread")]
async fn fields_add_to_the_default_projection() {
    let sim = Sim::start().await.unwrap();
    let client = in_process_for(&sim, "").await;

    let plain = ok(
        "bitbucket_list_pull_requests",
        &call(
            &client,
            "bitbucket_list_pull_requests",
            json!({"repo_slug": "api", "limit": 3}),
        )
        .await,
    );
    assert!(plain["items"][0].get("html_url").is_none());
    let wide = ok(
        "bitbucket_list_pull_requests",
        &call(
            &client,
            "bitbucket_list_pull_requests",
            json!({"repo_slug": "api", "limit": 3, "fields": ["html_url=links.html.href", "created_on", "comment_count", "no.such.path"]}),
        )
        .await,
    );
    let items = wide["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    for (p, w) in plain["items"].as_array().unwrap().iter().zip(items) {
        let url = w["html_url"].as_str().expect("html_url on every item");
        assert!(url.contains("/pull-requests/"), "{url}");
        // Asked fields are shaped as declared ones: times in UTC seconds, a zero count left out.
        let created = w["created_on"].as_str().expect("created_on on every item");
        assert!(created.len() == 20 && created.ends_with('Z'), "{created}");
        assert!(
            w.get("comment_count").is_none_or(|c| c.as_u64() > Some(0)),
            "{w}"
        );
        for (k, v) in p.as_object().unwrap() {
            assert_eq!(&w[k], v, "default field {k} kept");
        }
    }
    assert_eq!(wide["fields_absent"], json!(["no.such.path"]));

    // The next page keeps the widened projection when `fields` is passed again with the cursor.
    let next = ok(
        "bitbucket_list_pull_requests",
        &call(
            &client,
            "bitbucket_list_pull_requests",
            json!({"repo_slug": "api", "limit": 3, "cursor": wide["next_cursor"], "fields": ["html_url=links.html.href"]}),
        )
        .await,
    );
    assert!(next["items"][0]["html_url"].is_string());
    assert!(next.get("fields_absent").is_none());

    // A single object; a field that replaces a default one (the full description instead of a cut).
    let id = plain["items"][0]["id"].clone();
    let one = ok(
        "bitbucket_get_pull_request",
        &call(
            &client,
            "bitbucket_get_pull_request",
            json!({"repo_slug": "api", "pull_request_id": id, "fields": "merge_commit_hash=merge_commit.hash"}),
        )
        .await,
    );
    assert_eq!(one["id"], id);
    assert_eq!(
        one["fields_absent"],
        json!(["merge_commit_hash"]),
        "an open PR has no merge commit"
    );

    for (tool, arguments, field) in [
        (
            "bitbucket_list_pull_requests",
            json!({"repo_slug": "api", "fields": ["links..href"]}),
            "fields[0]",
        ),
        (
            "bitbucket_list_pull_requests",
            json!({"repo_slug": "api", "fields": 7}),
            "fields",
        ),
        (
            "bitbucket_add_pull_request_comment",
            json!({"repo_slug": "api", "pull_request_id": 1, "text": "x", "fields": ["id"]}),
            "fields",
        ),
    ] {
        let result = call(&client, tool, arguments).await;
        assert!(is_error(&result), "{tool}: {}", text(&result));
        assert!(
            text(&result).contains(field),
            "{tool}: the error names `{field}`: {}",
            text(&result)
        );
    }
    client.cancel().await.unwrap();
}
