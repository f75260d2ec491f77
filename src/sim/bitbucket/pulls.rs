//! Routes for pull requests: list, get, create, update, their diffs, comments and activity.

use super::*;

// --- pull requests ---------------------------------------------------------------------------------

pub(super) const PR_STATES: [&str; 4] = ["OPEN", "MERGED", "DECLINED", "SUPERSEDED"];

pub(super) fn pr_index(repo: &Repo, id: &str) -> Result<usize, Response> {
    id.parse::<u64>()
        .ok()
        .and_then(|n| repo.pull_requests.iter().position(|p| p.id == n))
        .ok_or_else(|| {
            not_found(&format!(
                "Pull request {id} not found in {}",
                repo.full_name()
            ))
        })
}

pub(super) fn require_open(pr: &PullRequest, action: &str) -> Result<(), Response> {
    if pr.state == "OPEN" {
        Ok(())
    } else {
        Err(bad_request(&format!(
            "You can't {action} a pull request that is {}; only open pull requests can be changed.",
            pr.state.to_lowercase()
        )))
    }
}

/// `[{uuid}|{account_id}]` → people, refusing unknown ones and the author.
pub(super) fn parse_reviewers(body: &Value, author: usize) -> Result<Vec<usize>, Response> {
    let Some(list) = body.get("reviewers").filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| field_error("reviewers", "Malformed reviewers list."))?;
    let mut out = Vec::new();
    for reviewer in list {
        let who = find_user(reviewer).ok_or_else(|| {
            field_error(
                "reviewers",
                &format!(
                    "{} is not a valid user.",
                    reviewer
                        .get("uuid")
                        .or(reviewer.get("account_id"))
                        .unwrap_or(reviewer)
                ),
            )
        })?;
        if who == author {
            return Err(bad_request(&format!(
                "{} is the author and cannot be included as a reviewer.",
                PEOPLE[who].0
            )));
        }
        if !out.contains(&who) {
            out.push(who);
        }
    }
    Ok(out)
}

pub(super) async fn list_pull_requests(
    State(state): St,
    OriginalUri(uri): Uri,
    Path((w, r)): RepoPath,
    Query(query): Q,
) -> Reply {
    let mut states: Vec<&str> = query
        .iter()
        .filter(|(k, _)| k == "state")
        .map(|(_, v)| v.as_str())
        .collect();
    if let Some(bad) = states.iter().find(|s| !PR_STATES.contains(s)) {
        return Err(bad_request(&format!(
            "Invalid state: '{bad}'. Use one of OPEN, MERGED, DECLINED, SUPERSEDED."
        )));
    }
    if states.is_empty() && !param(&query, "q").is_some_and(|q| q.contains("state")) {
        states.push("OPEN");
    }
    let items = {
        let data = lock(&state.bitbucket);
        let repo = data.repo(&w, &r)?;
        repo.pull_requests
            .iter()
            .rev()
            .filter(|p| states.is_empty() || states.contains(&p.state.as_str()))
            .map(|p| repo.pull_request_json(p, true))
            .collect()
    };
    let mut items = filter_and_sort(items, &query)?;
    for item in &mut items {
        if let Some(o) = item.as_object_mut() {
            o.remove("reviewers");
            o.remove("participants");
        }
    }
    ok(bitbucket_page(&state, &uri, &query, items, 50)?)
}

pub(super) async fn get_pull_request(State(state): St, Path((w, r, id)): ItemPath) -> Reply {
    let data = lock(&state.bitbucket);
    let repo = data.repo(&w, &r)?;
    ok(repo.pull_request_json(&repo.pull_requests[pr_index(repo, &id)?], true))
}

pub(super) async fn create_pull_request(
    State(state): St,
    Path((w, r)): RepoPath,
    Extension(caller): Extension<Account>,
    body: Bytes,
) -> Reply {
    let me = caller.bitbucket_person();
    let body = json_body(&body)?;
    let title = body["title"]
        .as_str()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| field_error("title", "This field is required."))?;
    let source = body["source"]["branch"]["name"]
        .as_str()
        .ok_or_else(|| field_error("source", "This field is required."))?;
    let mut data = lock(&state.bitbucket);
    let now = data.tick(state.now_ms());
    let repo = data.repo_mut(&w, &r)?;
    let destination = body["destination"]["branch"]["name"]
        .as_str()
        .unwrap_or(&repo.main)
        .to_string();
    let head = |name: &str| {
        repo.branches
            .iter()
            .find(|b| b.name == name)
            .map(|b| b.head.clone())
    };
    let source_hash = head(source)
        .ok_or_else(|| field_error("source", &format!("Branch \"{source}\" not found.")))?;
    let destination_hash = head(&destination).ok_or_else(|| {
        field_error(
            "destination",
            &format!("Branch \"{destination}\" not found."),
        )
    })?;
    if source == destination {
        return Err(bad_request(
            "The source and destination branches are the same.",
        ));
    }
    if repo
        .pull_requests
        .iter()
        .any(|p| p.state == "OPEN" && p.source == source && p.destination == destination)
    {
        return Err(bad_request(&format!(
            "There is already an open pull request from {source} to {destination}."
        )));
    }
    let reviewers = parse_reviewers(&body, me)?;
    let pr = PullRequest {
        id: repo.pull_requests.iter().map(|p| p.id).max().unwrap_or(0) + 1,
        title: title.to_string(),
        description: body["description"].as_str().unwrap_or_default().to_string(),
        state: "OPEN".into(),
        draft: body["draft"].as_bool().unwrap_or(false),
        author: me,
        source: source.to_string(),
        destination,
        source_hash,
        destination_hash,
        participants: reviewers
            .iter()
            .map(|&u| Participant {
                user: u,
                role: "REVIEWER",
                approved: false,
                state: None,
                on: None,
            })
            .collect(),
        reviewers,
        close_source_branch: body["close_source_branch"].as_bool().unwrap_or(false),
        merge_commit: None,
        closed_by: None,
        reason: String::new(),
        task_count: 0,
        created: now,
        updated: now,
        activity: vec![Activity::Update {
            state: "OPEN".into(),
            author: me,
            date: now,
        }],
    };
    let out = repo.pull_request_json(&pr, true);
    repo.pull_requests.push(pr);
    created(out)
}

/// `PUT` replaces: fields left out of the body are cleared, and `title` is required.
pub(super) async fn update_pull_request(
    State(state): St,
    Path((w, r, id)): ItemPath,
    Extension(caller): Extension<Account>,
    body: Bytes,
) -> Reply {
    let me = caller.bitbucket_person();
    let body = json_body(&body)?;
    let mut data = lock(&state.bitbucket);
    let now = data.tick(state.now_ms());
    let repo = data.repo_mut(&w, &r)?;
    let index = pr_index(repo, &id)?;
    require_open(&repo.pull_requests[index], "update")?;
    let title = body["title"]
        .as_str()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| field_error("title", "This field is required."))?;
    let author = repo.pull_requests[index].author;
    let reviewers = parse_reviewers(&body, author)?;
    let destination = match body["destination"]["branch"]["name"].as_str() {
        Some(name) => {
            let b = repo
                .branches
                .iter()
                .find(|b| b.name == name)
                .ok_or_else(|| {
                    field_error("destination", &format!("Branch \"{name}\" not found."))
                })?;
            Some((b.name.clone(), b.head.clone()))
        }
        None => None,
    };
    let pr = &mut repo.pull_requests[index];
    pr.title = title.to_string();
    pr.description = body["description"].as_str().unwrap_or_default().to_string();
    pr.close_source_branch = body["close_source_branch"].as_bool().unwrap_or(false);
    if let Some(draft) = body["draft"].as_bool() {
        pr.draft = draft;
    }
    if let Some((name, head)) = destination {
        (pr.destination, pr.destination_hash) = (name, head);
    }
    pr.participants
        .retain(|p| reviewers.contains(&p.user) || p.state.is_some() || p.role == "PARTICIPANT");
    for p in &mut pr.participants {
        p.role = if reviewers.contains(&p.user) {
            "REVIEWER"
        } else {
            "PARTICIPANT"
        };
    }
    for &u in &reviewers {
        if !pr.participants.iter().any(|p| p.user == u) {
            pr.participants.push(Participant {
                user: u,
                role: "REVIEWER",
                approved: false,
                state: None,
                on: None,
            });
        }
    }
    pr.reviewers = reviewers;
    pr.updated = now;
    pr.activity.push(Activity::Update {
        state: "OPEN".into(),
        author: me,
        date: now,
    });
    ok(repo.pull_request_json(&repo.pull_requests[index], true))
}

/// Bitbucket answers a PR's diff and diffstat with a 302 to the repository-level endpoint.
pub(super) fn redirect_to(
    state: &SimState,
    w: &str,
    r: &str,
    id: &str,
    kind: &str,
    query: Option<&str>,
) -> Reply {
    let location = {
        let data = lock(&state.bitbucket);
        let repo = data.repo(w, r)?;
        let pr = &repo.pull_requests[pr_index(repo, id)?];
        let base = lock(&state.bitbucket_base).clone();
        let extra = query.map(|q| format!("&{q}")).unwrap_or_default();
        format!(
            "{base}/repositories/{w}/{r}/{kind}/{w}/{r}:{}%0D{}?from_pullrequest_id={}&topic=true{extra}",
            &pr.source_hash[..12],
            &pr.destination_hash[..12],
            pr.id
        )
    };
    found(location)
}

pub(super) async fn pull_request_diff(State(state): St, Path((w, r, id)): ItemPath) -> Reply {
    redirect_to(&state, &w, &r, &id, "diff", None)
}

pub(super) async fn pull_request_diffstat(
    State(state): St,
    OriginalUri(uri): Uri,
    Path((w, r, id)): ItemPath,
) -> Reply {
    redirect_to(&state, &w, &r, &id, "diffstat", uri.query())
}

pub(super) async fn list_comments(
    State(state): St,
    OriginalUri(uri): Uri,
    Path((w, r, id)): ItemPath,
    Query(query): Q,
) -> Reply {
    let items = {
        let data = lock(&state.bitbucket);
        let repo = data.repo(&w, &r)?;
        let pr = &repo.pull_requests[pr_index(repo, &id)?];
        repo.comments
            .iter()
            .filter(|c| c.pr == pr.id)
            .map(|c| repo.comment_json(c))
            .collect()
    };
    page(&state, &uri, &query, items, 100)
}

pub(super) async fn add_comment(
    State(state): St,
    Path((w, r, id)): ItemPath,
    Extension(caller): Extension<Account>,
    body: Bytes,
) -> Reply {
    let me = caller.bitbucket_person();
    let body = json_body(&body)?;
    let raw = body["content"]["raw"]
        .as_str()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| field_error("content", "This field is required."))?;
    let inline = match body.get("inline").filter(|v| !v.is_null()) {
        None => None,
        Some(inline) => {
            let path = inline["path"]
                .as_str()
                .ok_or_else(|| field_error("inline.path", "This field is required."))?;
            let line = match inline.get("to").filter(|v| !v.is_null()) {
                None => 0,
                Some(to) => to.as_u64().filter(|l| *l > 0).ok_or_else(|| {
                    field_error("inline.to", "A positive line number is required.")
                })?,
            };
            Some((path.to_string(), line))
        }
    };
    let mut data = lock(&state.bitbucket);
    let now = data.tick(state.now_ms());
    let comment_id = data.comment_id();
    let repo = data.repo_mut(&w, &r)?;
    let index = pr_index(repo, &id)?;
    let pr_id = repo.pull_requests[index].id;
    let parent = match body["parent"]["id"].as_u64() {
        Some(p) if repo.comments.iter().any(|c| c.id == p && c.pr == pr_id) => Some(p),
        Some(p) => {
            return Err(field_error(
                "parent",
                &format!("Comment {p} not found on this pull request."),
            ));
        }
        None => None,
    };
    let comment = Comment {
        id: comment_id,
        pr: pr_id,
        user: me,
        raw: raw.to_string(),
        created: now,
        inline,
        parent,
    };
    repo.comments.push(comment.clone());
    let pr = &mut repo.pull_requests[index];
    pr.activity.push(Activity::Comment(comment_id));
    match pr.participants.iter_mut().find(|p| p.user == me) {
        Some(p) => p.on = Some(now),
        None if pr.author != me => pr.participants.push(Participant {
            user: me,
            role: "PARTICIPANT",
            approved: false,
            state: None,
            on: Some(now),
        }),
        None => {}
    }
    created(repo.comment_json(&comment))
}

pub(super) async fn list_activity(
    State(state): St,
    OriginalUri(uri): Uri,
    Path((w, r, id)): ItemPath,
    Query(query): Q,
) -> Reply {
    let items = {
        let data = lock(&state.bitbucket);
        let repo = data.repo(&w, &r)?;
        let pr = &repo.pull_requests[pr_index(repo, &id)?];
        let mut entries: Vec<&Activity> = pr.activity.iter().collect();
        entries.sort_by_key(|e| std::cmp::Reverse(repo.activity_date(e)));
        entries
            .into_iter()
            .map(|e| repo.activity_json(pr, e))
            .collect()
    };
    page(&state, &uri, &query, items, 100)
}
