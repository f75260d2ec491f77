//! Routes for reviews (approve, request changes), merge (with its task status) and decline.

use super::*;

/// Sets the review state of the caller (`me`, the token's person) on an open PR and returns the
/// participant.
pub(super) fn review(
    state: &SimState,
    me: usize,
    w: &str,
    r: &str,
    id: &str,
    approve: bool,
) -> Reply {
    let mut data = lock(&state.bitbucket);
    let now = data.tick(state.now_ms());
    let repo = data.repo_mut(w, r)?;
    let index = pr_index(repo, id)?;
    let pr = &mut repo.pull_requests[index];
    require_open(
        pr,
        if approve {
            "approve"
        } else {
            "request changes on"
        },
    )?;
    if !pr.participants.iter().any(|p| p.user == me) {
        let role = if pr.reviewers.contains(&me) {
            "REVIEWER"
        } else {
            "PARTICIPANT"
        };
        pr.participants.push(Participant {
            user: me,
            role,
            approved: false,
            state: None,
            on: None,
        });
    }
    let p = pr
        .participants
        .iter_mut()
        .find(|p| p.user == me)
        .expect("added above");
    (p.approved, p.state, p.on) = (
        approve,
        Some(if approve {
            "approved"
        } else {
            "changes_requested"
        }),
        Some(now),
    );
    let participant = p.clone();
    pr.activity.push(if approve {
        Activity::Approval {
            user: me,
            date: now,
        }
    } else {
        Activity::ChangesRequested {
            user: me,
            date: now,
        }
    });
    ok(repo.participant_json(&participant))
}

/// Withdraws the caller's approval or change request.
pub(super) fn withdraw(
    state: &SimState,
    me: usize,
    w: &str,
    r: &str,
    id: &str,
    approval: bool,
) -> Reply {
    let mut data = lock(&state.bitbucket);
    let repo = data.repo_mut(w, r)?;
    let index = pr_index(repo, id)?;
    let pr = &mut repo.pull_requests[index];
    require_open(pr, if approval { "unapprove" } else { "change" })?;
    let wanted = if approval {
        "approved"
    } else {
        "changes_requested"
    };
    let Some(p) = pr
        .participants
        .iter_mut()
        .find(|p| p.user == me && p.state == Some(wanted))
    else {
        return Err(bad_request(if approval {
            "You haven't approved this pull request."
        } else {
            "You haven't requested changes on this pull request."
        }));
    };
    (p.approved, p.state) = (false, None);
    pr.activity.retain(|a| match a {
        Activity::Approval { user, .. } => !(approval && *user == me),
        Activity::ChangesRequested { user, .. } => approval || *user != me,
        _ => true,
    });
    no_content()
}

pub(super) async fn approve(
    State(state): St,
    Path((w, r, id)): ItemPath,
    Extension(caller): Extension<Account>,
) -> Reply {
    review(&state, caller.bitbucket_person(), &w, &r, &id, true)
}

pub(super) async fn unapprove(
    State(state): St,
    Path((w, r, id)): ItemPath,
    Extension(caller): Extension<Account>,
) -> Reply {
    withdraw(&state, caller.bitbucket_person(), &w, &r, &id, true)
}

pub(super) async fn request_changes(
    State(state): St,
    Path((w, r, id)): ItemPath,
    Extension(caller): Extension<Account>,
) -> Reply {
    review(&state, caller.bitbucket_person(), &w, &r, &id, false)
}

pub(super) async fn remove_change_request(
    State(state): St,
    Path((w, r, id)): ItemPath,
    Extension(caller): Extension<Account>,
) -> Reply {
    withdraw(&state, caller.bitbucket_person(), &w, &r, &id, false)
}

/// Merges now (200 with the pull request), or, when the sim's merges take time
/// ([`SimState::set_merge_ms`]) or the caller asked `async=true`, answers 202 with a `Location` to the
/// task's status and no body, as Bitbucket does when a merge outlasts its wait.
pub(super) async fn merge(
    State(state): St,
    Path((w, r, id)): ItemPath,
    Extension(caller): Extension<Account>,
    Query(query): Q,
    body: Bytes,
) -> Reply {
    let me = caller.bitbucket_person();
    let body = json_body(&body)?;
    if let Some(s) = body.get("merge_strategy").filter(|v| !v.is_null())
        && !s.as_str().is_some_and(|s| MERGE_STRATEGIES.contains(&s))
    {
        return Err(field_error(
            "merge_strategy",
            &format!("Must be one of: {}.", MERGE_STRATEGIES.join(", ")),
        ));
    }
    let takes = state.merge_ms();
    let asked_async = param(&query, "async") == Some("true");
    let mut data = lock(&state.bitbucket);
    let now = data.tick(state.now_ms());
    let repo = data.repo_mut(&w, &r)?;
    let index = pr_index(repo, &id)?;
    require_open(&repo.pull_requests[index], "merge")?;
    if takes == 0 && !asked_async {
        return merge_now(repo, index, me, now, &body)
            .map(|pr| axum::Json(pr).into_response())
            .map_err(|(status, message)| crate::sim::error(Which::Bitbucket, status, &message));
    }
    let pr = repo.pull_requests[index].id;
    let task_id = hex(&format!("merge-task-{w}-{r}-{pr}-{now}"), 32);
    let location = format!(
        "{}/repositories/{w}/{r}/pullrequests/{pr}/merge/task-status/{task_id}",
        lock(&state.bitbucket_base)
    );
    data.merge_tasks.push(MergeTask {
        id: task_id,
        workspace: w,
        slug: r,
        pr,
        caller: me,
        body,
        due_ms: state.run_clock_ms() + takes,
        outcome: None,
    });
    state.set_live_runs(Which::Bitbucket, data.live_runs());
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)]).into_response())
}

/// Merges pull request `index` of `repo` as `me` at time `now`: the merge commit on the destination,
/// the source branch closed if asked, the pull request `MERGED`. The merged pull request, or why not.
pub(super) fn merge_now(
    repo: &mut Repo,
    index: usize,
    me: usize,
    now: Time,
    body: &Value,
) -> Result<Value, (StatusCode, String)> {
    let pr = repo.pull_requests[index].clone();
    if pr.state != "OPEN" {
        return Err((
            StatusCode::BAD_REQUEST,
            format!(
                "You can't merge a pull request that is {}; only open pull requests can be changed.",
                pr.state.to_lowercase()
            ),
        ));
    }
    let strategy = body["merge_strategy"].as_str().unwrap_or("merge_commit");
    let target = repo
        .branches
        .iter()
        .position(|b| b.name == pr.destination)
        .ok_or((
            StatusCode::BAD_REQUEST,
            "The destination branch no longer exists.".to_string(),
        ))?;
    let source_head = repo
        .branches
        .iter()
        .find(|b| b.name == pr.source)
        .map(|b| b.head.clone())
        .unwrap_or(pr.source_hash.clone());
    let default_message = match strategy {
        "merge_commit" => format!(
            "Merged in {} (pull request #{})\n\n{}\n",
            pr.source, pr.id, pr.title
        ),
        _ => format!("{} (pull request #{})\n", pr.title, pr.id),
    };
    let mut parents = vec![repo.branches[target].head.clone()];
    if strategy == "merge_commit" {
        parents.push(source_head);
    }
    let commit = Commit {
        hash: sha(&format!("{}-merge-{}-{now}", repo.full_name(), pr.id)),
        message: body["message"]
            .as_str()
            .map(|m| format!("{m}\n"))
            .unwrap_or(default_message),
        author: me,
        date: now,
        parents,
        files: repo
            .commits
            .iter()
            .find(|c| c.hash == pr.source_hash)
            .map(|c| c.files.clone())
            .unwrap_or_default(),
    };
    repo.branches[target].head = commit.hash.clone();
    let close = body["close_source_branch"]
        .as_bool()
        .unwrap_or(pr.close_source_branch);
    if close && pr.source != repo.main {
        repo.branches.retain(|b| b.name != pr.source);
    }
    let merged = &mut repo.pull_requests[index];
    merged.state = "MERGED".into();
    merged.merge_commit = Some(commit.hash.clone());
    merged.closed_by = Some(me);
    merged.close_source_branch = close;
    merged.updated = now;
    merged.activity.push(Activity::Update {
        state: "MERGED".into(),
        author: me,
        date: now,
    });
    repo.commits.push(commit);
    Ok(repo.pull_request_json(&repo.pull_requests[index], true))
}

/// `GET …/merge/task-status/{task}`: `PENDING`, `SUCCESS` with `merge_result`, or the merge's error; a
/// task of another pull request is a 400, as documented.
pub(super) async fn merge_task_status(
    State(state): St,
    Path((w, r, id, task)): Path<(String, String, String, String)>,
) -> Reply {
    let data = lock(&state.bitbucket);
    let repo = data.repo(&w, &r)?;
    let pr = repo.pull_requests[pr_index(repo, &id)?].id;
    let task = data
        .merge_tasks
        .iter()
        .find(|t| t.id == task && t.workspace == w && t.slug == r && t.pr == pr)
        .ok_or_else(|| bad_request("The task ID does not relate to this pull request."))?;
    let link = json!({"self": {"href": format!(
        "{}/repositories/{w}/{r}/pullrequests/{pr}/merge/task-status/{}",
        lock(&state.bitbucket_base),
        task.id
    )}});
    match &task.outcome {
        None => ok(json!({"task_status": "PENDING", "links": link})),
        Some(Ok(merged)) => {
            ok(json!({"task_status": "SUCCESS", "links": link, "merge_result": merged}))
        }
        Some(Err((status, message))) => Err(crate::sim::error(Which::Bitbucket, *status, message)),
    }
}

pub(super) async fn decline(
    State(state): St,
    Path((w, r, id)): ItemPath,
    Extension(caller): Extension<Account>,
) -> Reply {
    let me = caller.bitbucket_person();
    let mut data = lock(&state.bitbucket);
    let now = data.tick(state.now_ms());
    let repo = data.repo_mut(&w, &r)?;
    let index = pr_index(repo, &id)?;
    let pr = &mut repo.pull_requests[index];
    require_open(pr, "decline")?;
    pr.state = "DECLINED".into();
    pr.closed_by = Some(me);
    pr.updated = now;
    pr.activity.push(Activity::Update {
        state: "DECLINED".into(),
        author: me,
        date: now,
    });
    ok(repo.pull_request_json(&repo.pull_requests[index], true))
}
