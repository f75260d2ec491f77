//! Tests of the simulated Buddy API: routes, shapes, scopes and mutations through HTTP.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::sim::{BUDDY_TOKEN, Sim};

const WEB: &str = "/workspaces/acme/projects/web/pipelines";

async fn call(sim: &Sim, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = crate::app::http_client()
        .build()
        .unwrap()
        .request(method, format!("{}{path}", sim.buddy_url))
        .bearer_auth(BUDDY_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("sim answers");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(sim: &Sim, path: &str) -> (StatusCode, Value) {
    call(sim, Method::GET, path, None).await
}

async fn patch(sim: &Sim, path: &str, operation: &str) -> (StatusCode, Value) {
    call(
        sim,
        Method::PATCH,
        path,
        Some(json!({"operation": operation})),
    )
    .await
}

fn statuses(run: &Value) -> Vec<&str> {
    run["action_executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect()
}

#[test]
fn routes_need_buddys_scopes_under_either_name() {
    use super::{grants_scope, required_scope};
    use axum::http::Method;
    let granted = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for (method, path, scope) in [
        (Method::GET, "/user", "USER_INFO"),
        (Method::GET, "/user/tokens", "TOKEN_INFO"),
        (Method::GET, "/workspaces/acme/identifiers", "WORKSPACE"),
        (Method::GET, "/workspaces/acme/members", "WORKSPACE"),
        (
            Method::GET,
            &format!("{WEB}/1/executions/5117"),
            "EXECUTION_INFO",
        ),
        (
            Method::POST,
            &format!("{WEB}/1/executions"),
            "EXECUTION_RUN",
        ),
        (
            Method::PATCH,
            &format!("{WEB}/1/executions/5127"),
            "EXECUTION_RUN",
        ),
        (Method::GET, "/workspaces/acme/variables", "VARIABLE_INFO"),
        (
            Method::GET,
            "/workspaces/acme/integrations/x",
            "INTEGRATION_INFO",
        ),
    ] {
        assert_eq!(
            required_scope(&method, path),
            Some(scope),
            "{method} {path}"
        );
    }
    assert!(grants_scope(&granted(&["PIPELINE_READ"]), "EXECUTION_INFO"));
    assert!(grants_scope(&granted(&["PIPELINE_RUN"]), "EXECUTION_INFO"));
    assert!(grants_scope(&granted(&["EXECUTION_RUN"]), "EXECUTION_RUN"));
    assert!(grants_scope(&granted(&["VARIABLE_READ"]), "VARIABLE_INFO"));
    assert!(grants_scope(
        &granted(&["INTEGRATION_READ"]),
        "INTEGRATION_INFO"
    ));
    assert!(grants_scope(&granted(&["USER_PAT_READ"]), "TOKEN_INFO"));
    assert!(grants_scope(
        &granted(&["MEMBER_EMAIL_READ"]),
        "MEMBER_EMAIL"
    ));
    assert!(!grants_scope(&granted(&["PIPELINE_READ"]), "EXECUTION_RUN"));
    assert!(!grants_scope(
        &granted(&["EXECUTION_INFO", "USER_INFO"]),
        "WORKSPACE"
    ));
}

#[tokio::test]
async fn every_catalog_example_reaches_a_sim_route() {
    let failures = super::super::example_failures("buddy").await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn runs_page_newest_first_with_buddy_page_fields() {
    let sim = Sim::start().await.unwrap();
    let (status, first) = get(&sim, &format!("{WEB}/1/executions?per_page=10")).await;
    assert_eq!(status, 200);
    assert_eq!(
        (first["page"].clone(), first["page_size"].clone()),
        (json!(1), json!(10))
    );
    assert_eq!(first["total_element_count"], 28);
    assert_eq!(first["total_page_count"], 3);
    assert_eq!(first["executions"].as_array().unwrap().len(), 10);
    assert_eq!(first["executions"][0]["id"], 5128);
    let (_, last) = get(&sim, &format!("{WEB}/1/executions?per_page=10&page=3")).await;
    assert_eq!(last["element_count"], 8);
    assert_eq!(last["executions"][7]["id"], 5101);
    let seen: Vec<&str> = first["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    for status in [
        "ENQUEUED",
        "INPROGRESS",
        "FAILED",
        "SUCCESSFUL",
        "TERMINATED",
    ] {
        assert!(seen.contains(&status), "{status} missing from {seen:?}");
    }
}

#[tokio::test]
async fn unknown_things_are_404_with_buddys_error_body() {
    let sim = Sim::start().await.unwrap();
    for path in [
        "/workspaces/nope".to_string(),
        "/workspaces/acme/projects/nope".into(),
        format!("{WEB}/999"),
        format!("{WEB}/build-and-test"),
        format!("{WEB}/1/executions/1"),
        format!("{WEB}/1/executions/5117/action_executions/0123456789abcdef01234567/logs"),
        format!("{WEB}/1/executions/5117/actions/999"),
        "/workspaces/acme/identifiers?project=web&pipeline=nope".into(),
        "/workspaces/acme/variables/999".into(),
        "/workspaces/acme/integrations/nope".into(),
    ] {
        let (status, body) = get(&sim, &path).await;
        assert_eq!(status, 404, "{path}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{path}: {body}"
        );
    }
}

#[tokio::test]
async fn identifiers_resolve_a_pipeline_identifier() {
    let sim = Sim::start().await.unwrap();
    let (status, body) = get(
        &sim,
        "/workspaces/acme/identifiers?project=web&pipeline=deploy-production",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["domain"].clone(), body["pipeline_id"].clone()),
        (json!("acme"), json!(2))
    );
}

#[tokio::test]
async fn stop_retry_and_approve_change_the_run_or_refuse() {
    let sim = Sim::start().await.unwrap();
    let run = |pipeline: u64, id: u64| format!("{WEB}/{pipeline}/executions/{id}");

    let (status, stopped) = patch(&sim, &run(1, 5127), "CANCEL").await;
    assert_eq!(status, 200);
    assert_eq!(stopped["status"], "TERMINATED");
    assert!(stopped["finish_date"].is_string());
    assert_eq!(
        statuses(&stopped),
        ["SUCCESSFUL", "TERMINATED", "NOT_EXECUTED", "NOT_EXECUTED"]
    );
    let (status, body) = patch(&sim, &run(1, 5127), "CANCEL").await;
    assert_eq!(status, 400);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("already finished"),
        "{body}"
    );

    let (status, _) = patch(&sim, &run(1, 5125), "RETRY").await;
    assert_eq!(status, 400, "a successful run cannot be retried");
    let (status, retried) = patch(&sim, &run(1, 5126), "RETRY").await;
    assert_eq!(status, 200);
    assert_eq!(retried["status"], "INPROGRESS");
    assert!(retried["finish_date"].is_null());
    assert_eq!(
        statuses(&retried),
        ["SUCCESSFUL", "SUCCESSFUL", "INPROGRESS", "ENQUEUED"]
    );

    let (status, approved) = patch(&sim, &run(2, 5205), "APPLY").await;
    assert_eq!(status, 200);
    assert_eq!(approved["status"], "INPROGRESS");
    assert_eq!(
        statuses(&approved),
        ["SUCCESSFUL", "SUCCESSFUL", "INPROGRESS", "ENQUEUED"]
    );
    let (status, _) = patch(&sim, &run(2, 5205), "APPLY").await;
    assert_eq!(status, 400, "no longer waiting for approval");

    let (status, _) = patch(&sim, &run(1, 5124), "EXPLODE").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_run_request_is_checked_then_queued_at_the_top() {
    let sim = Sim::start().await.unwrap();
    let post = |path: String, body: Value| {
        let sim = &sim;
        async move { call(sim, Method::POST, &path, Some(body)).await }
    };
    for (pipeline, body) in [
        ("1", json!({"variables": {"LOG_LEVEL": "debug"}})),
        ("1", json!({"variables": [{"value": "no key"}]})),
        ("1", json!({"to_revision": {"revision": "not-a-sha"}})),
        ("1", json!({"refresh": "yes"})),
        ("2", json!({"branch": {"name": "feature/x"}})),
    ] {
        let (status, body) = post(format!("{WEB}/{pipeline}/executions"), body).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["errors"][0]["message"].is_string());
    }
    let (status, _) = post(
        "/workspaces/acme/projects/api/pipelines/5/executions".into(),
        json!({}),
    )
    .await;
    assert_eq!(status, 400, "a disabled pipeline does not run");

    let (status, run) = post(
        format!("{WEB}/1/executions"),
        json!({"branch": {"name": "main"}, "comment": "hi"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        (run["id"].clone(), run["status"].clone()),
        (json!(6001), json!("ENQUEUED"))
    );
    assert_eq!(
        (run["branch"]["name"].clone(), run["comment"].clone()),
        (json!("main"), json!("hi"))
    );
    let (_, list) = get(&sim, &format!("{WEB}/1/executions?per_page=1")).await;
    assert_eq!(list["executions"][0]["id"], 6001);
    assert_eq!(list["total_element_count"], 29);

    let (status, run) = post(format!("{WEB}/3/executions"), json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(
        run["status"], "INPROGRESS",
        "nothing else is running on nightly-e2e"
    );
    assert_eq!(run["branch"]["name"], "main");
}

#[tokio::test]
async fn a_failed_test_action_has_a_long_log_read_by_line() {
    let sim = Sim::start().await.unwrap();
    let (_, run) = get(&sim, &format!("{WEB}/1/executions/5117")).await;
    assert_eq!(
        statuses(&run),
        ["SUCCESSFUL", "SUCCESSFUL", "FAILED", "NOT_EXECUTED"]
    );
    // As in Buddy's documented run example, the run's actions carry no action execution id.
    assert!(
        run["action_executions"][0]
            .get("action_execution_id")
            .is_none()
    );
    let id = |i: usize| super::action_execution_id(5117, i);
    let logs = |i: usize, query: &str| {
        format!(
            "{WEB}/1/executions/5117/action_executions/{}/logs?{query}",
            id(i)
        )
    };

    let (status, all) = get(&sim, &logs(2, "limit=1000")).await;
    assert_eq!(status, 200);
    let total = all["total_element_count"].as_u64().unwrap();
    assert!(total >= 300, "{total} lines");
    let text: Vec<&str> = all["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        text.iter().any(|l| l.starts_with("Tests:       1 failed")),
        "{text:?}"
    );

    let (_, default) = get(&sim, &logs(2, "")).await;
    assert_eq!(default["element_count"], 100, "Buddy's default limit");
    let (_, tail) = get(&sim, &logs(2, "offset=300&limit=5")).await;
    assert_eq!(
        (tail["offset"].clone(), tail["element_count"].clone()),
        (json!(300), json!(5))
    );
    assert_eq!(tail["logs"][0], all["logs"][300]);

    let (_, not_run) = get(&sim, &logs(3, "")).await;
    assert_eq!(not_run["total_element_count"], 0);
}

#[tokio::test]
async fn variables_are_scoped_and_secrets_stay_encrypted() {
    let sim = Sim::start().await.unwrap();
    let keys = |body: &Value| -> Vec<String> {
        body["variables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["key"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, workspace) = get(&sim, "/workspaces/acme/variables").await;
    assert_eq!(
        keys(&workspace),
        ["API_BASE_URL", "NPM_TOKEN", "NODE_VERSION"]
    );
    let secret = &workspace["variables"][1];
    assert_eq!(secret["encrypted"], true);
    assert!(secret["value"].as_str().unwrap().starts_with("!encrypted "));
    let (_, project) = get(&sim, "/workspaces/acme/variables?project_name=web").await;
    assert_eq!(keys(&project), ["NODE_ENV", "SENTRY_DSN"]);
    let (_, pipeline) = get(
        &sim,
        "/workspaces/acme/variables?project_name=web&pipeline_id=2",
    )
    .await;
    assert_eq!(keys(&pipeline), ["DEPLOY_HOST", "DEPLOY_KEY"]);
    let (status, _) = get(&sim, "/workspaces/acme/variables?pipeline_id=999").await;
    assert_eq!(status, 404);
}

mod runs;
