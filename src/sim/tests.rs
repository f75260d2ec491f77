//! Tests of the sim as a whole (recorder, faults, knobs, cache), and the catalog-examples check.

use super::*;

/// Test support: sends every catalog tool's example request of one provider straight to the sim
/// (no gateway in between) and returns the failures. It checks the catalog/sim contract: each tool's
/// path, query and body reach a route that answers 2xx.
pub(crate) async fn example_failures(provider_id: &str) -> Vec<String> {
    use crate::catalog::{Catalog, ResolveWhen, schema, template};

    let sim = Sim::start().await.expect("sim starts");
    let catalog = Catalog::builtin().expect("catalog loads");
    let provider = catalog.provider(provider_id).expect("provider exists");
    let (base, token) = match provider_id {
        "buddy" => (sim.buddy_url.clone(), BUDDY_TOKEN),
        _ => (sim.bitbucket_url.clone(), BITBUCKET_TOKEN),
    };
    let client = crate::app::http_client().build().unwrap();
    let mut failures = Vec::new();
    for tool in &provider.tools {
        let mut args = match schema::validate(
            tool,
            tool.spec.example.as_ref(),
            &schema::Defaults::default(),
        ) {
            Ok(a) => a,
            Err(e) => {
                failures.push(format!("{}: example: {e}", tool.name));
                continue;
            }
        };
        for r in &tool.resolve {
            let value = template::scalar(args.get(&r.param)).unwrap_or_default();
            let needed = match r.when {
                ResolveWhen::NotNumeric => !value.bytes().all(|b| b.is_ascii_digit()),
                ResolveWhen::ContainsSlash => value.contains('/'),
            };
            if needed {
                let path = r.path.render(&args).expect("resolve path");
                let resp = client
                    .get(format!("{base}{path}"))
                    .query(&template::render_query(&r.query, &args))
                    .bearer_auth(token)
                    .send()
                    .await
                    .expect("sim answers");
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                match crate::shape::pointer(&body, &r.take) {
                    Some(v) => {
                        args.insert(r.param.clone(), v.clone());
                    }
                    None => failures.push(format!(
                        "{}: resolve of {} found nothing",
                        tool.name, r.param
                    )),
                }
            }
        }
        let path = match tool.path.render(&args) {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{}: path: {e:?}", tool.name));
                continue;
            }
        };
        let mut request = client
            .request(tool.spec.method.as_reqwest(), format!("{base}{path}"))
            .query(&template::render_query(&tool.query, &args))
            .bearer_auth(token);
        if let Some(body) = tool
            .spec
            .body
            .as_ref()
            .and_then(|b| template::render_body(b, &args))
        {
            request = request.json(&body);
        }
        let response = request.send().await.expect("sim answers");
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            failures.push(format!(
                "{}: {} {path} -> {status}: {text}",
                tool.name,
                tool.spec.method.as_reqwest()
            ));
        }
    }
    failures
}

const STEP_MS: u64 = 60_000;

async fn send(
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = crate::app::http_client()
        .build()
        .unwrap()
        .request(method, url)
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("sim answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The run clock moving alone (no request, no `advance`): the next GET still sees the progress
/// although the same GET was answered from the cache before.
#[tokio::test]
async fn a_cached_get_follows_runs_progressing_with_time() {
    let sim = Sim::start().await.unwrap();
    sim.state.set_run_step_ms(STEP_MS);
    let runs = format!(
        "{}/workspaces/acme/projects/web/pipelines/3/executions",
        sim.buddy_url
    );
    let (_, run) = send(
        reqwest::Method::POST,
        runs.clone(),
        BUDDY_TOKEN,
        Some(json!({})),
    )
    .await;
    assert_eq!(run["status"], "INPROGRESS");
    let url = format!("{runs}/{}", run["id"]);
    let status_of = |run: &Value| {
        run["action_executions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["status"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    for _ in 0..2 {
        let (_, run) = send(reqwest::Method::GET, url.clone(), BUDDY_TOKEN, None).await;
        assert_eq!(status_of(&run), ["INPROGRESS", "ENQUEUED"]);
    }
    let generation = lock(&sim.state.answers).generation;
    sim.state
        .runs
        .advanced_ms
        .fetch_add(STEP_MS, Ordering::SeqCst);
    let (_, run) = send(reqwest::Method::GET, url.clone(), BUDDY_TOKEN, None).await;
    assert_eq!(status_of(&run), ["SUCCESSFUL", "INPROGRESS"]);
    assert!(
        lock(&sim.state.answers).generation > generation,
        "the cache was dropped"
    );
    sim.state
        .runs
        .advanced_ms
        .fetch_add(STEP_MS, Ordering::SeqCst);
    let (_, run) = send(reqwest::Method::GET, url.clone(), BUDDY_TOKEN, None).await;
    assert_eq!(run["status"], "SUCCESSFUL");
    assert_eq!(sim.state.live_runs(Which::Buddy), 0);

    // Nothing progresses any more: GETs are served from the cache again, generation unchanged.
    let generation = lock(&sim.state.answers).generation;
    sim.state
        .runs
        .advanced_ms
        .fetch_add(STEP_MS, Ordering::SeqCst);
    for _ in 0..2 {
        send(reqwest::Method::GET, url.clone(), BUDDY_TOKEN, None).await;
    }
    assert_eq!(lock(&sim.state.answers).generation, generation);
}

#[tokio::test]
async fn runs_knob_over_http() {
    let sim = Sim::start().await.unwrap();
    let origin = sim.bitbucket_url.trim_end_matches("/2.0").to_string();
    let knob = |body: Value| {
        send(
            reqwest::Method::POST,
            format!("{origin}/_sim/runs"),
            "",
            Some(body),
        )
    };
    let read = || {
        send(
            reqwest::Method::GET,
            format!("{}/_sim/runs", sim.buddy_url),
            "",
            None,
        )
    };

    let (status, before) = read().await;
    assert_eq!(status, 200);
    assert_eq!(before["step_ms"], DEFAULT_RUN_STEP_MS);
    assert_eq!(before["live"], json!({"buddy": 0, "bitbucket": 0}));
    assert_eq!(knob(json!({"step_ms": STEP_MS})).await.0, 204);
    assert_eq!(sim.state.run_step_ms(), STEP_MS);
    assert_eq!(
        knob(json!({"step": 5})).await.0,
        422,
        "unknown fields are refused"
    );

    let (status, run) = send(
        reqwest::Method::POST,
        format!("{}/repositories/acme/api/pipelines", sim.bitbucket_url),
        BITBUCKET_TOKEN,
        Some(json!({"target": {"type": "pipeline_ref_target", "ref_type": "branch", "ref_name": "main"}})),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(read().await.1["live"], json!({"buddy": 0, "bitbucket": 1}));

    assert_eq!(knob(json!({"advance_ms": STEP_MS * 2})).await.0, 204);
    let (_, now) = read().await;
    assert_eq!(now["advanced_ms"], STEP_MS * 2);
    assert!(now["clock_ms"].as_u64().unwrap() >= STEP_MS * 2);
    let url = format!(
        "{}/repositories/acme/api/pipelines/{}",
        sim.bitbucket_url,
        run["uuid"]
            .as_str()
            .unwrap()
            .replace('{', "%7B")
            .replace('}', "%7D")
    );
    let (_, p) = send(reqwest::Method::GET, url.clone(), BITBUCKET_TOKEN, None).await;
    assert_eq!(p["state"]["name"], "IN_PROGRESS");

    knob(json!({"advance_ms": STEP_MS * 3})).await;
    let (_, p) = send(reqwest::Method::GET, url, BITBUCKET_TOKEN, None).await;
    assert_eq!(p["state"]["result"]["name"], "SUCCESSFUL");
    assert_eq!(read().await.1["live"]["bitbucket"], 0);
}
