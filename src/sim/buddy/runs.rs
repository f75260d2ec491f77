//! Routes for runs: start one, change it (cancel, retry, apply), read an action's details and log.

use super::*;

/// What a run request asks for, checked the way Buddy checks it.
pub(super) struct RunRequest {
    revision: Option<String>,
    branch: Option<String>,
    comment: String,
    refresh: bool,
    clear_cache: bool,
}

pub(super) fn parse_run(body: &Bytes) -> Result<RunRequest, ApiError> {
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|_| bad_request("Request body is not valid JSON"))?
    };
    let Some(body) = body.as_object() else {
        return Err(bad_request("Request body must be a JSON object"));
    };
    let text = |outer: &str, inner: &str| -> Result<Option<String>, ApiError> {
        match body.get(outer) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .get(inner)
                .and_then(Value::as_str)
                .map(|s| Some(s.to_string()))
                .ok_or_else(|| bad_request(format!("Field {outer}.{inner} must be a string"))),
        }
    };
    let flag = |key: &str| -> Result<bool, ApiError> {
        match body.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(bad_request(format!("Field {key} must be a boolean"))),
        }
    };
    if let Some(vars) = body.get("variables") {
        let valid = vars.as_array().is_some_and(|items| {
            items
                .iter()
                .all(|v| v.get("key").is_some_and(Value::is_string) && v.get("value").is_some())
        });
        if !valid {
            return Err(bad_request(
                "Field variables must be an array of objects with key and value",
            ));
        }
    }
    let revision = text("to_revision", "revision")?;
    if let Some(r) = &revision
        && !is_revision(r)
    {
        return Err(bad_request(format!(
            "Revision {r} not found in the repository"
        )));
    }
    Ok(RunRequest {
        revision,
        branch: text("branch", "name")?,
        comment: match body.get("comment") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(bad_request("Field comment must be a string")),
        },
        refresh: flag("refresh")?,
        clear_cache: flag("clear_cache")?,
    })
}

/// `HEAD` or an abbreviated/full commit SHA.
pub(super) fn is_revision(r: &str) -> bool {
    r == "HEAD" || ((7..=40).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether a branch may run on a pipeline with these refs (`refs/heads/*` style wildcards).
pub(super) fn branch_allowed(refs: &[&str], branch: &str) -> bool {
    let full = format!("refs/heads/{branch}");
    refs.iter().any(|r| match r.strip_suffix('*') {
        Some(prefix) => full.starts_with(prefix),
        None => *r == full,
    })
}

pub(super) async fn run_pipeline(
    State(state): State<Arc<SimState>>,
    Path((ws, project, pipeline)): Path<(String, String, String)>,
    Extension(caller): Extension<Account>,
    body: Bytes,
) -> Reply {
    let request = parse_run(&body)?;
    let mut data = lock(&state.buddy);
    let at = data.locate(&ws, &project, &pipeline)?;
    let (_, p, pl) = data.view(at);
    if let Some(reason) = pl.disabled_reason {
        return Err(bad_request(format!("Pipeline is disabled: {reason}")));
    }
    let default_branch = pl
        .refs
        .iter()
        .find_map(|r| r.strip_prefix("refs/heads/").filter(|b| !b.contains('*')))
        .unwrap_or(p.default_branch);
    let branch = request.branch.unwrap_or_else(|| default_branch.to_string());
    if !branch_allowed(&pl.refs, &branch) {
        return Err(bad_request(format!(
            "Branch {branch} does not match the pipeline's refs ({})",
            pl.refs.join(", ")
        )));
    }
    let id = data.next_run;
    data.next_run += 1;
    let pl = data.pipeline_mut(at);
    let status = if pl.executions.iter().any(Execution::is_active) {
        "ENQUEUED"
    } else {
        "INPROGRESS"
    };
    let (now, step_ms) = (state.run_clock_ms(), state.run_step_ms());
    let live = Live {
        since_ms: if status == "ENQUEUED" {
            now + step_ms
        } else {
            now
        },
        step_ms,
        from: 0,
        fail_at: (branch == FAILING_BRANCH)
            .then(|| pl.actions.iter().position(|a| a.step == Step::Tests))
            .flatten(),
    };
    pl.executions.insert(
        0,
        Execution {
            id,
            status,
            at: 0,
            revision: match request.revision {
                Some(r) if r != "HEAD" => r,
                _ => sha(id),
            },
            message: COMMITS[id as usize % COMMITS.len()].to_string(),
            author: 3,
            creator: caller.buddy_id(),
            comment: request.comment,
            triggered_on: "CLICK",
            refresh: request.refresh,
            clear_cache: request.clear_cache,
            start: state.now_ms(),
            approver: None,
            branch,
            live: Some(live),
            times: Vec::new(),
        },
    );
    state.set_live_runs(Which::Buddy, data.live_runs());
    let (w, p, pl) = data.view(at);
    Ok(Json(execution_json(w, p, pl, &pl.executions[0], true)))
}

/// `PATCH …/executions/{id}` with `{"operation": "CANCEL" | "RETRY" | "APPLY"}`.
pub(super) async fn patch_execution(
    State(state): State<Arc<SimState>>,
    Path((ws, project, pipeline, execution)): Path<(String, String, String, String)>,
    Extension(caller): Extension<Account>,
    body: Bytes,
) -> Reply {
    let body: Value =
        serde_json::from_slice(&body).map_err(|_| bad_request("Request body is not valid JSON"))?;
    let operation = body
        .get("operation")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut data = lock(&state.buddy);
    let at = data.locate(&ws, &project, &pipeline)?;
    let pl = data.pipeline_mut(at);
    let actions = pl.actions.len();
    let index = pl.execution(&execution)?;
    let e = &mut pl.executions[index];
    match (operation, e.status) {
        ("CANCEL", "SUCCESSFUL" | "FAILED" | "TERMINATED") => {
            return Err(bad_request(format!(
                "Execution {} has already finished ({})",
                e.id, e.status
            )));
        }
        ("CANCEL", _) => {
            e.status = "TERMINATED";
            e.end_action(state.now_ms());
        }
        ("RETRY", "FAILED" | "TERMINATED") => {
            e.status = "INPROGRESS";
            e.resume(state.run_clock_ms());
        }
        ("RETRY", _) => {
            return Err(bad_request(
                "Only failed or terminated executions can be retried",
            ));
        }
        ("APPLY", "WAITING_FOR_APPLY") => {
            e.approver = Some(caller.buddy_id());
            e.end_action(state.now_ms());
            e.at += 1;
            e.status = if e.at >= actions {
                "SUCCESSFUL"
            } else {
                "INPROGRESS"
            };
            e.resume(state.run_clock_ms());
        }
        ("APPLY", _) => return Err(bad_request("Execution is not waiting for approval")),
        _ => {
            return Err(bad_request(format!(
                "Unknown operation {operation:?}; expected CANCEL, RETRY or APPLY"
            )));
        }
    }
    state.set_live_runs(Which::Buddy, data.live_runs());
    let (w, p, pl) = data.view(at);
    Ok(Json(execution_json(w, p, pl, &pl.executions[index], true)))
}

/// `GET …/executions/{id}/actions/{action_id}`: one action of a run by its action id, with its whole
/// console output in `log[]` (Buddy's "Get details and logs by action_id").
pub(super) async fn action_details(
    State(state): State<Arc<SimState>>,
    Path((ws, project, pipeline, execution, action)): Path<(
        String,
        String,
        String,
        String,
        String,
    )>,
) -> Reply {
    let data = lock(&state.buddy);
    let (w, p, pl) = data.view(data.locate(&ws, &project, &pipeline)?);
    let e = &pl.executions[pl.execution(&execution)?];
    let id: Option<u64> = action.parse().ok();
    let idx = pl
        .actions
        .iter()
        .position(|a| Some(a.id) == id)
        .ok_or_else(|| not_found(format!("Action {action} not found")))?;
    let mut details = action_execution_json(w, p, pl, e, idx, &pl.actions[idx]);
    details["log"] = json!(log_lines(p, e, idx, &pl.actions[idx]));
    Ok(Json(details))
}

pub(super) async fn action_log(
    State(state): State<Arc<SimState>>,
    Path((ws, project, pipeline, execution, action_execution)): Path<(
        String,
        String,
        String,
        String,
        String,
    )>,
    Query(q): Q,
) -> Reply {
    let number = |key: &str, default: usize| -> Result<usize, ApiError> {
        param(&q, key)
            .map_or(Ok(default), str::parse)
            .map_err(|_| bad_request(format!("Parameter {key} must be a non-negative integer")))
    };
    let (offset, limit) = (number("offset", 0)?, number("limit", 100)?.clamp(1, 1000));
    let data = lock(&state.buddy);
    let (w, p, pl) = data.view(data.locate(&ws, &project, &pipeline)?);
    let e = &pl.executions[pl.execution(&execution)?];
    let idx = (0..pl.actions.len())
        .find(|i| action_execution_id(e.id, *i) == action_execution)
        .ok_or_else(|| not_found(format!("Action execution {action_execution} not found")))?;
    let lines = log_lines(p, e, idx, &pl.actions[idx]);
    let page: Vec<&String> = lines.iter().skip(offset).take(limit).collect();
    let (url, _) = pipeline_url(w, p, pl);
    Ok(Json(json!({
        "url": format!("{url}/executions/{}/action_executions/{action_execution}/logs", e.id),
        "offset": offset,
        "limit": limit,
        "element_count": page.len(),
        "total_element_count": lines.len(),
        "logs": page,
    })))
}
