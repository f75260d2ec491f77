//! Routes for the account, workspaces, repositories and branches.

use super::*;

// --- account ---------------------------------------------------------------------------------------

/// The account the credential belongs to.
pub(super) async fn get_user(Extension(account): Extension<Account>) -> Reply {
    ok(full_user(account.bitbucket_person()))
}

/// The workspaces the credential's account is a member of.
pub(super) async fn list_workspaces(
    State(state): St,
    OriginalUri(uri): Uri,
    Query(query): Q,
    Extension(account): Extension<Account>,
) -> Reply {
    let me = account.bitbucket_person();
    let items = lock(&state.bitbucket)
        .workspaces
        .iter()
        .filter_map(|w| Some((w, w.members.iter().find(|(p, _)| *p == me)?.1)))
        .map(|(w, administrator)| {
            let id = uuid(&format!("workspace-{}", w.slug));
            json!({
                "type": "workspace_access",
                "administrator": administrator,
                "workspace": {
                    "type": "workspace_base",
                    "uuid": id,
                    "slug": w.slug,
                    "links": links(&[
                        ("self", format!("{API}/workspaces/{}", w.slug)),
                        ("html", format!("{WEB}/{}/", w.slug)),
                        ("avatar", format!("{WEB}/workspaces/{}/avatar/?ts=1717171717", w.slug)),
                    ]),
                },
                "links": links(&[("self", format!("{API}/user/workspaces/{}/permission", w.slug))]),
            })
        })
        .collect();
    page(&state, &uri, &query, items, 100)
}

// --- repositories, branches, commits, source --------------------------------------------------------

pub(super) async fn list_repositories(
    State(state): St,
    OriginalUri(uri): Uri,
    Path(workspace): Path<String>,
    Query(query): Q,
) -> Reply {
    let items = {
        let data = lock(&state.bitbucket);
        data.check_workspace(&workspace)?;
        data.repos
            .iter()
            .filter(|r| r.workspace == workspace)
            .map(Repo::json)
            .collect()
    };
    page(&state, &uri, &query, items, 100)
}

pub(super) async fn get_repository(State(state): St, Path((w, r)): RepoPath) -> Reply {
    ok(lock(&state.bitbucket).repo(&w, &r)?.json())
}

pub(super) async fn list_branches(
    State(state): St,
    OriginalUri(uri): Uri,
    Path((w, r)): RepoPath,
    Query(query): Q,
) -> Reply {
    let items = {
        let data = lock(&state.bitbucket);
        let repo = data.repo(&w, &r)?;
        repo.branches.iter().map(|b| repo.branch_json(b)).collect()
    };
    page(&state, &uri, &query, items, 100)
}

pub(super) async fn get_branch(State(state): St, Path((w, r, name)): ItemPath) -> Reply {
    let data = lock(&state.bitbucket);
    let repo = data.repo(&w, &r)?;
    match repo.branches.iter().find(|b| b.name == name) {
        Some(b) => ok(repo.branch_json(b)),
        None => Err(not_found(&format!("Branch \"{name}\" not found"))),
    }
}

pub(super) async fn create_branch(State(state): St, Path((w, r)): RepoPath, body: Bytes) -> Reply {
    let body = json_body(&body)?;
    let name = body["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| field_error("name", "This field is required."))?;
    let target = body["target"]["hash"]
        .as_str()
        .ok_or_else(|| field_error("target", "This field is required."))?;
    if name.starts_with("refs/") || name.ends_with('/') || name.contains("..") || name.contains(' ')
    {
        return Err(field_error("name", "Invalid branch name."));
    }
    let mut data = lock(&state.bitbucket);
    let repo = data.repo_mut(&w, &r)?;
    if repo.branches.iter().any(|b| b.name == name) {
        return Err(bad_request(&format!(
            "BRANCH_ALREADY_EXISTS: Branch \"{name}\" already exists."
        )));
    }
    let head = repo
        .resolve(target)
        .ok_or_else(|| {
            bad_request(&format!(
                "Target \"{target}\" not found: give a commit hash or a branch name."
            ))
        })?
        .hash
        .clone();
    let branch = Branch {
        name: name.to_string(),
        head,
    };
    let out = repo.branch_json(&branch);
    repo.branches.push(branch);
    created(out)
}
