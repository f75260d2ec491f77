//! Routes for pipelines and steps, step logs, and the long-term storage that serves finished logs.

use super::*;

// --- pipelines -------------------------------------------------------------------------------------

/// Pipeline and step UUIDs keep their braces and must be percent-encoded; raw braces are refused.
pub(super) fn check_encoded(uri: &axum::http::Uri) -> Result<(), Response> {
    if uri.path().contains(['{', '}']) {
        return Err(bad_request(
            "Invalid UUID in the path: percent-encode the braces (%7B…%7D).",
        ));
    }
    Ok(())
}

pub(super) fn same_uuid(stored: &str, given: &str) -> bool {
    stored == given || stored.trim_start_matches('{').trim_end_matches('}') == given
}

pub(super) fn pipeline_index(repo: &Repo, uuid: &str) -> Result<usize, Response> {
    repo.pipelines
        .iter()
        .position(|p| same_uuid(&p.uuid, uuid))
        .ok_or_else(|| {
            not_found(&format!(
                "No pipeline with UUID {uuid} in {}",
                repo.full_name()
            ))
        })
}

pub(super) async fn list_pipelines(
    State(state): St,
    OriginalUri(uri): Uri,
    Path((w, r)): RepoPath,
    Query(query): Q,
) -> Reply {
    let items: Vec<Value> = {
        let data = lock(&state.bitbucket);
        let repo = data.repo(&w, &r)?;
        let branch = param(&query, "target.branch").or(param(&query, "target.ref_name"));
        repo.pipelines
            .iter()
            .filter(|p| branch.is_none_or(|b| p.branch.as_deref() == Some(b)))
            .map(|p| repo.pipeline_json(p))
            .collect()
    };
    // The pipelines list has its own parameters and ignores BBQL; only `sort` applies.
    let sort: crate::sim::Query = query.iter().filter(|(k, _)| k == "sort").cloned().collect();
    if let Some(field) = param(&sort, "sort").map(|s| s.trim_start_matches('-'))
        && !["created_on", "creator.uuid", "run_creation_date"].contains(&field)
    {
        return Err(bad_request(&format!("Invalid sort field: '{field}'")));
    }
    let items = filter_and_sort(items, &sort)?;
    let mut page = bitbucket_page(&state, &uri, &query, items, 100)?;
    // As reported of the real list (BCLOUD-20639): `page`, `pagelen` and `size`, but no `next`.
    if let Some(fields) = page.as_object_mut() {
        fields.remove("next");
    }
    ok(page)
}

pub(super) async fn get_pipeline(
    State(state): St,
    OriginalUri(uri): Uri,
    Path((w, r, uuid)): ItemPath,
) -> Reply {
    check_encoded(&uri)?;
    let data = lock(&state.bitbucket);
    let repo = data.repo(&w, &r)?;
    ok(repo.pipeline_json(&repo.pipelines[pipeline_index(repo, &uuid)?]))
}

pub(super) async fn run_pipeline(
    State(state): St,
    Path((w, r)): RepoPath,
    Extension(caller): Extension<Account>,
    body: Bytes,
) -> Reply {
    let me = caller.bitbucket_person();
    let body = json_body(&body)?;
    let target = body
        .get("target")
        .filter(|t| t.is_object())
        .ok_or_else(|| field_error("target", "This field is required."))?;
    let mut data = lock(&state.bitbucket);
    let now = data.tick(state.now_ms());
    let repo = data.repo_mut(&w, &r)?;
    let commit_hash = match target["commit"]["hash"].as_str() {
        Some(h) => Some(
            repo.resolve(h)
                .ok_or_else(|| bad_request(&format!("Commit \"{h}\" not found.")))?
                .hash
                .clone(),
        ),
        None => None,
    };
    let (branch, commit) = match target["type"].as_str() {
        Some("pipeline_ref_target") => {
            let name = target["ref_name"]
                .as_str()
                .ok_or_else(|| field_error("target.ref_name", "This field is required."))?;
            if target["ref_type"].as_str().is_some_and(|t| t != "branch") {
                return Err(field_error(
                    "target.ref_type",
                    "Only branch refs exist in this repository.",
                ));
            }
            let head = repo
                .branches
                .iter()
                .find(|b| b.name == name)
                .map(|b| b.head.clone())
                .ok_or_else(|| bad_request(&format!("Branch \"{name}\" not found.")))?;
            (Some(name.to_string()), commit_hash.unwrap_or(head))
        }
        // Documented only with a selector naming the pipeline definition: a commit alone names none.
        Some("pipeline_commit_target") if !target["selector"].is_object() => {
            return Err(field_error(
                "target.selector",
                "A commit target needs a selector naming the pipeline to run.",
            ));
        }
        Some("pipeline_commit_target") => (
            None,
            commit_hash.ok_or_else(|| field_error("target.commit", "This field is required."))?,
        ),
        _ => {
            return Err(field_error(
                "target.type",
                "Must be pipeline_ref_target or pipeline_commit_target.",
            ));
        }
    };
    let custom = match target["selector"]["type"].as_str() {
        Some("custom") => {
            let name = target["selector"]["pattern"].as_str().unwrap_or_default();
            if !repo.custom_pipelines.iter().any(|c| c == name) {
                return Err(bad_request(&format!(
                    "No custom pipeline named \"{name}\" in bitbucket-pipelines.yml (available: {}).",
                    repo.custom_pipelines.join(", ")
                )));
            }
            Some(name.to_string())
        }
        _ => None,
    };
    let variables = match body.get("variables").filter(|v| !v.is_null()) {
        None => Vec::new(),
        Some(v) => {
            let list = v
                .as_array()
                .ok_or_else(|| field_error("variables", "Must be a list."))?;
            for (i, var) in list.iter().enumerate() {
                if var["key"].as_str().is_none_or(str::is_empty) || !var["value"].is_string() {
                    return Err(field_error(
                        &format!("variables[{i}]"),
                        "Each variable needs a key and a string value.",
                    ));
                }
            }
            list.clone()
        }
    };
    let build_number = repo
        .pipelines
        .iter()
        .map(|p| p.build_number)
        .max()
        .unwrap_or(0)
        + 1;
    let names: Vec<&str> = match (custom.as_deref(), branch.as_deref()) {
        (Some("deploy-production"), _) => vec!["Build", "Deploy to production"],
        (Some(_), _) => vec!["End-to-end tests"],
        (None, Some(b)) if b == repo.main => vec!["Build", "Test", "Deploy to staging"],
        _ => vec!["Build", "Test"],
    };
    let full = repo.full_name().replace('/', "-");
    let live = Live {
        since_ms: state.run_clock_ms(),
        step_ms: state.run_step_ms(),
        fail_at: (custom.is_none() && branch.as_deref() == Some(FAILING_BRANCH))
            .then(|| names.iter().position(|n| *n == "Test"))
            .flatten(),
    };
    let pipeline = Pipeline {
        uuid: uuid(&format!("pipeline-{full}-{build_number}")),
        build_number,
        branch,
        commit,
        custom,
        manual: true,
        creator: me,
        created: now,
        completed: None,
        state: "PENDING",
        result: None,
        steps: names
            .iter()
            .enumerate()
            .map(|(k, name)| Step {
                uuid: uuid(&format!("step-{full}-{build_number}-{k}")),
                name: name.to_string(),
                state: "PENDING",
                result: None,
                started: None,
                completed: None,
                script: step_script(name),
                manual: is_manual(name),
            })
            .collect(),
        variables,
        live: Some(live),
    };
    let out = repo.pipeline_json(&pipeline);
    repo.pipelines.push(pipeline);
    state.set_live_runs(Which::Bitbucket, data.live_runs());
    created(out)
}

pub(super) async fn stop_pipeline(
    State(state): St,
    OriginalUri(uri): Uri,
    Path((w, r, uuid)): ItemPath,
) -> Reply {
    check_encoded(&uri)?;
    let mut data = lock(&state.bitbucket);
    let now = data.tick(state.now_ms());
    let repo = data.repo_mut(&w, &r)?;
    let index = pipeline_index(repo, &uuid)?;
    let p = &mut repo.pipelines[index];
    if p.state == "COMPLETED" {
        return Err(bad_request(&format!(
            "Pipeline #{} has already completed; there is nothing to stop.",
            p.build_number
        )));
    }
    (p.state, p.result, p.completed) = ("COMPLETED", Some("STOPPED"), Some(now));
    for s in &mut p.steps {
        match s.state {
            "IN_PROGRESS" => {
                (s.state, s.result, s.completed) = ("COMPLETED", Some("STOPPED"), Some(now))
            }
            "PENDING" => (s.state, s.result) = ("COMPLETED", Some("NOT_RUN")),
            _ => {}
        }
    }
    p.live = None;
    state.set_live_runs(Which::Bitbucket, data.live_runs());
    no_content()
}

pub(super) async fn list_steps(
    State(state): St,
    OriginalUri(uri): Uri,
    Path((w, r, uuid)): ItemPath,
    Query(query): Q,
) -> Reply {
    check_encoded(&uri)?;
    let items = {
        let data = lock(&state.bitbucket);
        let repo = data.repo(&w, &r)?;
        let p = &repo.pipelines[pipeline_index(repo, &uuid)?];
        p.steps.iter().map(|s| repo.step_json(p, s)).collect()
    };
    page(&state, &uri, &query, items, 100)
}

pub(super) fn find_step<'a>(
    repo: &'a Repo,
    pipeline: &str,
    step: &str,
) -> Result<(&'a Pipeline, &'a Step), Response> {
    let p = &repo.pipelines[pipeline_index(repo, pipeline)?];
    let s = p
        .steps
        .iter()
        .find(|s| same_uuid(&s.uuid, step))
        .ok_or_else(|| {
            not_found(&format!(
                "No step with UUID {step} in pipeline #{}",
                p.build_number
            ))
        })?;
    Ok((p, s))
}

pub(super) async fn get_step(
    State(state): St,
    OriginalUri(uri): Uri,
    Path((w, r, pipeline, step)): Path<(String, String, String, String)>,
) -> Reply {
    check_encoded(&uri)?;
    let data = lock(&state.bitbucket);
    let repo = data.repo(&w, &r)?;
    let (p, s) = find_step(repo, &pipeline, &step)?;
    ok(repo.step_json(p, s))
}

/// A step's log: 404 until the step has started; raw bytes as `application/octet-stream` while it runs;
/// once it has finished, 307 to the log in long-term storage ([`storage_router`]), as Bitbucket does.
pub(super) async fn get_step_log(
    State(state): St,
    OriginalUri(uri): Uri,
    Path((w, r, pipeline, step)): Path<(String, String, String, String)>,
) -> Reply {
    check_encoded(&uri)?;
    let data = lock(&state.bitbucket);
    let repo = data.repo(&w, &r)?;
    let (p, s) = find_step(repo, &pipeline, &step)?;
    if s.started.is_none() {
        return Err(not_found("No log for this step yet: it has not started."));
    }
    if s.state == "COMPLETED" {
        let key = storage_key(repo, p, s);
        let location = format!(
            "{}/{key}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=900&X-Amz-Signature={}",
            lock(&state.storage_base),
            storage_signature(&key)
        );
        return Ok((
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response());
    }
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        step_log(repo, p, s),
    )
        .into_response())
}

// --- long-term storage of finished steps' logs ----------------------------------------------------

/// Where a finished step's log lies in storage: `step-logs/{workspace}/{repo}/{pipeline}/{step}`, the
/// UUIDs without braces.
pub(super) fn storage_key(repo: &Repo, p: &Pipeline, s: &Step) -> String {
    let bare = |u: &str| u.trim_matches(['{', '}']).to_string();
    format!(
        "step-logs/{}/{}/{}/{}",
        repo.workspace,
        repo.slug,
        bare(&p.uuid),
        bare(&s.uuid)
    )
}

/// The pre-signed URL's signature over its key (deterministic; storage checks it).
pub(super) fn storage_signature(key: &str) -> String {
    hex(&format!("storage-signature:{key}"), 64)
}

/// Long-term storage for finished steps' logs, on a host (port) of its own as on Bitbucket: it answers
/// pre-signed URLs only, and refuses a request that also carries `Authorization`, as S3 does, so a
/// client that forwards its Bitbucket credentials there fails.
pub fn storage_router() -> Router<Arc<SimState>> {
    Router::new().route(
        "/step-logs/{workspace}/{repo_slug}/{pipeline}/{step}",
        get(get_stored_log),
    )
}

/// An S3-style XML error.
pub(super) fn storage_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

pub(super) async fn get_stored_log(
    State(state): St,
    OriginalUri(uri): Uri,
    headers: axum::http::HeaderMap,
    Path((w, r, pipeline, step)): Path<(String, String, String, String)>,
    Query(query): Q,
) -> Reply {
    if headers.contains_key(header::AUTHORIZATION) {
        return Err(storage_error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "This URL is pre-signed; a request that also carries an Authorization header is refused.",
        ));
    }
    let key = uri.path().trim_start_matches('/').to_string();
    if param(&query, "X-Amz-Signature") != Some(storage_signature(&key).as_str()) {
        return Err(storage_error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The request signature does not match.",
        ));
    }
    let data = lock(&state.bitbucket);
    let missing = || storage_error(StatusCode::NOT_FOUND, "NoSuchKey", "No such key.");
    let repo = data.repo(&w, &r).map_err(|_| missing())?;
    let (p, s) = find_step(repo, &pipeline, &step).map_err(|_| missing())?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        step_log(repo, p, s),
    )
        .into_response())
}
