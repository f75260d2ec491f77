//! Tests of the simulated Bitbucket API: routes, shapes and mutations through HTTP.

use serde_json::{Value, json};

use crate::catalog::{Catalog, Tool};
use crate::shape::{parse_fields, project};
use crate::sim::{BITBUCKET_TOKEN, Sim};

/// A client that does not follow redirects, so tests see the 302s themselves.
fn client() -> reqwest::Client {
    crate::app::http_client()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

async fn send(sim: &Sim, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = client()
        .request(method, format!("{}{path}", sim.bitbucket_url))
        .bearer_auth(BITBUCKET_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("sim answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn get(sim: &Sim, path: &str) -> (u16, Value) {
    send(sim, reqwest::Method::GET, path, None).await
}

fn tool(name: &str) -> std::sync::Arc<Tool> {
    let catalog = Catalog::builtin().expect("catalog loads");
    let provider = catalog.provider("bitbucket").expect("bitbucket");
    provider
        .tools
        .iter()
        .find(|t| t.name == name)
        .cloned()
        .expect("tool exists")
}

fn fields(name: &str) -> Vec<crate::shape::Field> {
    parse_fields(&tool(name).spec.output.as_ref().expect("json tool").fields).expect("fields parse")
}

#[tokio::test]
async fn every_catalog_example_reaches_a_sim_route() {
    let failures = super::super::example_failures("bitbucket").await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn pull_requests_page_with_absolute_next_and_refuse_pagelen_over_50() {
    let sim = Sim::start().await.unwrap();
    let (status, page) = get(&sim, "/repositories/acme/api/pullrequests?pagelen=10").await;
    assert_eq!(status, 200);
    assert_eq!(page["values"].as_array().unwrap().len(), 10);
    assert!(
        page["values"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["state"] == "OPEN"),
        "default is OPEN only"
    );
    assert!(
        page["values"][0].get("reviewers").is_none(),
        "lists leave out reviewers"
    );
    let next = page["next"].as_str().expect("a next page");
    assert!(
        next.starts_with(&sim.bitbucket_url) && next.contains("page=2"),
        "{next}"
    );
    let rest = next.strip_prefix(&sim.bitbucket_url).unwrap();
    let (_, second) = get(&sim, rest).await;
    assert_eq!(second["page"], 2);
    assert!(second.get("next").is_none(), "15 open PRs fit in two pages");

    let (status, body) = get(&sim, "/repositories/acme/api/pullrequests?pagelen=51").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["message"], "Invalid pagelen");

    let (_, both) = get(
        &sim,
        "/repositories/acme/api/pullrequests?state=MERGED&state=DECLINED&pagelen=50",
    )
    .await;
    assert_eq!(both["size"], 14);
    let (_, found) = get(
        &sim,
        "/repositories/acme/api/pullrequests?q=title%20~%20%22LOGIN%22",
    )
    .await;
    assert_eq!(found["values"][0]["id"], 26);
    let (_, merged) = get(&sim, "/repositories/acme/api/pullrequests?q=state%20%3D%20%22MERGED%22%20AND%20author.nickname%20%3D%20%22anndev%22").await;
    assert_eq!(merged["size"], 1, "{merged}");
    let (status, bad) = get(
        &sim,
        "/repositories/acme/api/pullrequests?q=colour%20%3D%20%22red%22",
    )
    .await;
    assert_eq!(status, 400, "{bad}");
    let (status, _) = get(&sim, "/repositories/acme/nope/pullrequests").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn diff_and_diffstat_redirect_to_the_repository_endpoints() {
    let sim = Sim::start().await.unwrap();
    let response = client()
        .get(format!(
            "{}/repositories/acme/api/pullrequests/26/diff",
            sim.bitbucket_url
        ))
        .bearer_auth(BITBUCKET_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with(&format!(
            "{}/repositories/acme/api/diff/acme/api:",
            sim.bitbucket_url
        )),
        "{location}"
    );
    let diff = client()
        .get(&location)
        .bearer_auth(BITBUCKET_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        diff.lines().count() > 200 && diff.contains("+++ b/src/auth/pkce.rs"),
        "{diff}"
    );

    let response = client()
        .get(format!(
            "{}/repositories/acme/api/pullrequests/26/diffstat?pagelen=3",
            sim.bitbucket_url
        ))
        .bearer_auth(BITBUCKET_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let stat: Value = client()
        .get(&location)
        .bearer_auth(BITBUCKET_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stat["size"], 8);
    assert_eq!(
        stat["values"].as_array().unwrap().len(),
        3,
        "the redirect keeps pagelen"
    );
    let next = stat["next"].as_str().unwrap();
    assert!(
        next.contains("/2.0/repositories/acme/api/diffstat/acme/api:"),
        "next pages live under the redirect target: {next}"
    );
    let statuses: Vec<&str> = stat["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["modified", "removed", "modified"]);
}

#[tokio::test]
async fn pull_request_put_replaces_so_keep_current_is_needed() {
    let sim = Sim::start().await.unwrap();
    let path = "/repositories/acme/api/pullrequests/27";
    let (status, body) = send(
        &sim,
        reqwest::Method::PUT,
        path,
        Some(json!({"description": "x"})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["message"], "title: This field is required.");
    assert_eq!(
        body["error"]["fields"]["title"][0],
        "This field is required."
    );

    // What the engine does for update_pull_request: read, project keep_current, merge the body over it.
    let update = tool("bitbucket_update_pull_request");
    let keep = update.keep_current.as_ref().expect("keep_current");
    let (_, before) = get(&sim, path).await;
    let mut body = project(&before, keep);
    body["title"] = json!("Add per-tenant usage metrics endpoint (v2)");
    let (status, after) = send(&sim, reqwest::Method::PUT, path, Some(body)).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["description"], before["description"]);
    assert_eq!(after["reviewers"], before["reviewers"]);
    assert_eq!(after["title"], "Add per-tenant usage metrics endpoint (v2)");

    // Without keep_current the same change would wipe description and reviewers.
    let (_, wiped) = send(
        &sim,
        reqwest::Method::PUT,
        path,
        Some(json!({"title": "T"})),
    )
    .await;
    assert_eq!(wiped["description"], "");
    assert_eq!(wiped["reviewers"], json!([]));

    // The author can't review their own PR; merged PRs can't be edited.
    let me = super::user_uuid(super::ME);
    let (status, _) = send(
        &sim,
        reqwest::Method::PUT,
        "/repositories/acme/api/pullrequests/26",
        Some(json!({"title": "T", "reviewers": [{"uuid": me}]})),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = send(
        &sim,
        reqwest::Method::PUT,
        "/repositories/acme/api/pullrequests/1",
        Some(json!({"title": "T"})),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn mutations_change_state() {
    let sim = Sim::start().await.unwrap();
    let post = reqwest::Method::POST;
    let pr = "/repositories/acme/api/pullrequests/16";
    let (status, p) = send(&sim, post.clone(), &format!("{pr}/approve"), None).await;
    assert_eq!((status, p["state"].as_str()), (200, Some("approved")));
    let (status, merged) = send(
        &sim,
        post.clone(),
        &format!("{pr}/merge"),
        Some(json!({"merge_strategy": "squash", "close_source_branch": true})),
    )
    .await;
    assert_eq!(status, 200, "{merged}");
    assert_eq!(merged["state"], "MERGED");
    assert_eq!(merged["merge_commit"]["hash"].as_str().unwrap().len(), 12);
    let (status, again) = send(&sim, post.clone(), &format!("{pr}/merge"), None).await;
    assert_eq!(status, 400, "{again}");
    let (status, _) = get(
        &sim,
        "/repositories/acme/api/refs/branches/feature%2Frequest-id",
    )
    .await;
    assert_eq!(status, 404, "close_source_branch deleted the branch");
    let (_, main) = get(&sim, "/repositories/acme/api/refs/branches/main").await;
    assert!(
        main["target"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Add request id middleware")
    );
    let (status, _) = send(
        &sim,
        post.clone(),
        "/repositories/acme/api/pullrequests/16/decline",
        None,
    )
    .await;
    assert_eq!(status, 400);
    let (status, bad) = send(
        &sim,
        post.clone(),
        "/repositories/acme/api/pullrequests/17/merge",
        Some(json!({"merge_strategy": "octopus"})),
    )
    .await;
    assert_eq!(status, 400, "{bad}");

    let (_, before) = get(&sim, "/repositories/acme/api/pullrequests/18").await;
    let (status, c) = send(
        &sim,
        post.clone(),
        "/repositories/acme/api/pullrequests/18/comments",
        Some(json!({"content": {"raw": "hi"}, "inline": {"to": 3}})),
    )
    .await;
    assert_eq!(status, 400, "inline needs a path: {c}");
    let (status, c) = send(
        &sim,
        post.clone(),
        "/repositories/acme/api/pullrequests/18/comments",
        Some(json!({"content": {"raw": "hi"}})),
    )
    .await;
    assert_eq!(status, 201);
    let (_, after) = get(&sim, "/repositories/acme/api/pullrequests/18").await;
    assert_eq!(
        after["comment_count"].as_u64(),
        before["comment_count"].as_u64().map(|n| n + 1)
    );
    let (_, activity) = get(&sim, "/repositories/acme/api/pullrequests/18/activity").await;
    assert_eq!(activity["values"][0]["comment"]["id"], c["id"]);

    // Pipelines: run, then stop; a finished one can't be stopped.
    let (status, run) = send(&sim, post.clone(), "/repositories/acme/api/pipelines", Some(json!({"target": {"type": "pipeline_ref_target", "ref_type": "branch", "ref_name": "feature/login"}}))).await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["build_number"], 316);
    assert_eq!(run["state"]["name"], "PENDING");
    let uuid = run["uuid"]
        .as_str()
        .unwrap()
        .replace('{', "%7B")
        .replace('}', "%7D");
    let (status, _) = send(
        &sim,
        post.clone(),
        &format!("/repositories/acme/api/pipelines/{uuid}/stopPipeline"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (_, stopped) = get(&sim, &format!("/repositories/acme/api/pipelines/{uuid}")).await;
    assert_eq!(stopped["state"]["result"]["name"], "STOPPED");
    let (status, _) = send(
        &sim,
        post.clone(),
        &format!("/repositories/acme/api/pipelines/{uuid}/stopPipeline"),
        None,
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = send(&sim, post, "/repositories/acme/api/pipelines", Some(json!({"target": {"type": "pipeline_commit_target", "commit": {"hash": "234a891571e5"}, "selector": {"type": "custom", "pattern": "nope"}}}))).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn removed_issue_endpoints_answer_like_any_path_the_api_does_not_host() {
    let sim = Sim::start().await.unwrap();
    for repo in ["api", "web", "infra"] {
        for path in ["issues", "issues/1", "issues/1/comments"] {
            let (status, body) = get(&sim, &format!("/repositories/acme/{repo}/{path}")).await;
            assert_eq!(status, 404, "{repo}/{path}");
            assert_eq!(body["error"]["message"], "Resource not found", "{body}");
        }
    }
    let (status, body) = send(
        &sim,
        reqwest::Method::POST,
        "/repositories/acme/api/issues",
        Some(json!({"title": "x"})),
    )
    .await;
    assert_eq!(status, 404);
    assert!(
        body["error"]["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("There is no API hosted at this URL.")),
        "{body}"
    );
    let (_, repo) = get(&sim, "/repositories/acme/api").await;
    assert_eq!(repo["has_issues"], false);
}

#[tokio::test]
async fn src_needs_slashed_branches_resolved_and_serves_large_files() {
    let sim = Sim::start().await.unwrap();
    let (status, _) = get(
        &sim,
        "/repositories/acme/api/src/feature%2Flogin/src/auth/pkce.rs",
    )
    .await;
    assert_eq!(
        status, 404,
        "a slashed branch is read as ref + path, as on Bitbucket"
    );
    let (_, branch) = get(&sim, "/repositories/acme/api/refs/branches/feature%2Flogin").await;
    let hash = branch["target"]["hash"].as_str().unwrap();
    let (status, text) = get(
        &sim,
        &format!("/repositories/acme/api/src/{hash}/src/auth/pkce.rs"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(text.as_str().unwrap().contains("S256"));
    let (_, changelog) = get(&sim, "/repositories/acme/api/src/main/CHANGELOG.md").await;
    assert!(changelog.as_str().unwrap().len() > 100_000);
    let (_, listing) = get(&sim, "/repositories/acme/api/src/main/src").await;
    let paths: Vec<&str> = listing["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["src/auth", "src/main.rs", "src/routes"]);
    let (status, _) = get(&sim, "/repositories/acme/api/src/main/nope.txt").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn pipeline_uuids_must_be_encoded_and_logs_are_long() {
    let sim = Sim::start().await.unwrap();
    let (_, list) = get(
        &sim,
        "/repositories/acme/api/pipelines?sort=-created_on&pagelen=3",
    )
    .await;
    assert_eq!(list["values"][0]["build_number"], 315, "newest first");
    assert_eq!(
        list["values"][0]["state"]["type"],
        "pipeline_state_in_progress"
    );
    let (_, failed) = get(
        &sim,
        "/repositories/acme/api/pipelines/%7B50d9818b-bf4a-4c9c-ad2c-f6e9f32c28af%7D",
    )
    .await;
    assert_eq!(failed["state"]["result"]["name"], "FAILED");
    let (_, steps) = get(
        &sim,
        "/repositories/acme/api/pipelines/%7B50d9818b-bf4a-4c9c-ad2c-f6e9f32c28af%7D/steps",
    )
    .await;
    let test = steps["values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Test")
        .unwrap();
    let step = test["uuid"]
        .as_str()
        .unwrap()
        .replace('{', "%7B")
        .replace('}', "%7D");
    let moved = client()
        .get(format!("{}/repositories/acme/api/pipelines/%7B50d9818b-bf4a-4c9c-ad2c-f6e9f32c28af%7D/steps/{step}/log", sim.bitbucket_url))
        .bearer_auth(BITBUCKET_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), 307, "a finished step's log is in storage");
    let location = moved.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&sim.storage_url), "{location}");
    assert!(location.contains("X-Amz-Signature="), "{location}");
    let with_credentials = client()
        .get(&location)
        .bearer_auth(BITBUCKET_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        with_credentials.status(),
        400,
        "storage refuses credentials"
    );
    assert!(
        with_credentials
            .text()
            .await
            .unwrap()
            .contains("InvalidArgument")
    );
    let unsigned = location.split("X-Amz-Signature=").next().unwrap();
    let forged = client()
        .get(format!("{unsigned}X-Amz-Signature=00"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403, "the signature is checked");
    let response = client().get(&location).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );
    let log = response.text().await.unwrap();
    assert!(
        log.lines().count() > 200 && log.contains("test result: FAILED"),
        "{}",
        log.lines().count()
    );
}

/// The size budgets: a page of 10 PRs ≤ 2.5 KB and one PR ≤ 1.2 KB once projected.
#[tokio::test]
async fn projected_pull_requests_stay_within_budget() {
    let sim = Sim::start().await.unwrap();
    let (_, page) = get(
        &sim,
        "/repositories/acme/api/pullrequests?sort=-updated_on&pagelen=10",
    )
    .await;
    let list = fields("bitbucket_list_pull_requests");
    let items: Vec<Value> = page["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| project(v, &list))
        .collect();
    assert_eq!(items.len(), 10);
    let raw_page = serde_json::to_string(&page).unwrap().len();
    let page_bytes = serde_json::to_string(&json!({"items": items, "next_cursor": "x".repeat(80)}))
        .unwrap()
        .len();
    println!("10 PRs: {page_bytes} bytes projected (with an 80-char cursor), {raw_page} raw");
    assert!(
        page_bytes <= 2500,
        "{page_bytes}: {}",
        serde_json::to_string(&items).unwrap()
    );

    let (_, pr) = get(&sim, "/repositories/acme/api/pullrequests/27").await;
    assert!(pr["description"].as_str().unwrap().len() > 300);
    assert_eq!(pr["reviewers"].as_array().unwrap().len(), 2);
    let one = project(&pr, &fields("bitbucket_get_pull_request"));
    let one_bytes = serde_json::to_string(&one).unwrap().len();
    println!(
        "1 PR: {one_bytes} bytes projected, {} raw",
        serde_json::to_string(&pr).unwrap().len()
    );
    assert!(one_bytes <= 1200, "{one_bytes}: {one}");
}

mod runs;
