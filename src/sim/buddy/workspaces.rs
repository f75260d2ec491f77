//! Read routes: the user, tokens, workspaces, members, identifiers, projects, pipelines and runs.

use super::*;

/// The account the token belongs to: Mike is the seed's `user`, Nina is built from [`PEOPLE`].
pub(super) async fn get_user(
    State(state): State<Arc<SimState>>,
    Extension(account): Extension<Account>,
) -> Json<Value> {
    let id = account.buddy_id();
    if id == 1 {
        return Json(lock(&state.buddy).user.clone());
    }
    let (_, name, email) = PEOPLE
        .iter()
        .find(|p| p.0 == id)
        .copied()
        .unwrap_or(PEOPLE[0]);
    Json(json!({
        "url": format!("{API}/user"),
        "html_url": format!("{APP}/my-id"),
        "id": id,
        "name": name,
        "avatar_url": format!("{APP}/image-server/user/0/0/0/0/0/0/{id}/avatar/w/32/32/AVATAR.png"),
        "email": email,
        "workspaces_url": format!("{API}/workspaces"),
    }))
}

pub(super) async fn list_tokens(State(state): State<Arc<SimState>>) -> Json<Value> {
    Json(json!({
        "url": format!("{API}/user/tokens"),
        "html_url": format!("{APP}/my-id/api-tokens"),
        "access_tokens": lock(&state.buddy).tokens,
    }))
}

/// The workspaces the token's account is a member of.
pub(super) async fn list_workspaces(
    State(state): State<Arc<SimState>>,
    Extension(account): Extension<Account>,
) -> Json<Value> {
    let data = lock(&state.buddy);
    let me = account.buddy_id();
    Json(json!({
        "url": format!("{API}/workspaces"),
        "html_url": APP,
        "workspaces": data
            .workspaces
            .iter()
            .filter(|w| w.members.iter().any(|(p, _)| *p == me))
            .map(|w| workspace_json(w, false))
            .collect::<Vec<_>>(),
    }))
}

pub(super) async fn get_workspace(
    State(state): State<Arc<SimState>>,
    Path(ws): Path<String>,
) -> Reply {
    Ok(Json(workspace_json(
        lock(&state.buddy).workspace(&ws)?,
        true,
    )))
}

/// `GET /workspaces/{ws}/identifiers?project=…&pipeline=…`: human identifiers to ids.
pub(super) async fn identifiers(
    State(state): State<Arc<SimState>>,
    Path(ws): Path<String>,
    Query(q): Q,
) -> Reply {
    let data = lock(&state.buddy);
    data.workspace(&ws)?;
    let mut out = json!({"url": format!("{API}/workspaces/{ws}/identifiers"), "domain": ws});
    if let Some(name) = param(&q, "project") {
        let (_, project) = data.project(&ws, name)?;
        out["project_identifier"] = json!(project.name);
        if let Some(identifier) = param(&q, "pipeline") {
            let pipeline = project
                .pipelines
                .iter()
                .find(|p| p.identifier == identifier)
                .ok_or_else(|| not_found(format!("Pipeline {identifier} not found")))?;
            out["pipeline_id"] = json!(pipeline.id);
        }
    } else if param(&q, "pipeline").is_some() {
        return Err(bad_request(
            "Pipeline identifier requires a project identifier",
        ));
    }
    Ok(Json(out))
}

/// Members carry `email` only for a token granted `MEMBER_EMAIL` (static tokens may do everything).
pub(super) async fn list_members(
    State(state): State<Arc<SimState>>,
    Path(ws): Path<String>,
    Extension(Granted(granted)): Extension<Granted>,
    Query(q): Q,
) -> Reply {
    let data = lock(&state.buddy);
    let workspace = data.workspace(&ws)?;
    let emails = granted.is_none_or(|g| grants_scope(&g, "MEMBER_EMAIL"));
    let members: Vec<Value> = workspace
        .members
        .iter()
        .map(|m| {
            let mut m = member(workspace, *m);
            if !emails && let Some(fields) = m.as_object_mut() {
                fields.remove("email");
            }
            m
        })
        .collect();
    let (page, _, _) = buddy_page(&q, &members);
    Ok(Json(json!({
        "url": format!("{API}/workspaces/{ws}/members"),
        "html_url": format!("{APP}/{ws}/-/people"),
        "members": page,
    })))
}

pub(super) async fn list_projects(
    State(state): State<Arc<SimState>>,
    Path(ws): Path<String>,
    Query(q): Q,
) -> Reply {
    let data = lock(&state.buddy);
    let workspace = data.workspace(&ws)?;
    let projects: Vec<Value> = workspace
        .projects
        .iter()
        .filter(|p| param(&q, "status").is_none_or(|s| s == p.status))
        .map(|p| project_json(workspace, p, false))
        .collect();
    let (page, _, _) = buddy_page(&q, &projects);
    Ok(Json(json!({
        "url": format!("{API}/workspaces/{ws}/projects"),
        "html_url": format!("{APP}/{ws}"),
        "projects": page,
    })))
}

pub(super) async fn get_project(
    State(state): State<Arc<SimState>>,
    Path((ws, project)): Path<(String, String)>,
) -> Reply {
    let data = lock(&state.buddy);
    let (workspace, project) = data.project(&ws, &project)?;
    Ok(Json(project_json(workspace, project, true)))
}

pub(super) async fn list_pipelines(
    State(state): State<Arc<SimState>>,
    Path((ws, project)): Path<(String, String)>,
    Query(q): Q,
) -> Reply {
    let data = lock(&state.buddy);
    let (workspace, project) = data.project(&ws, &project)?;
    let pipelines: Vec<Value> = project
        .pipelines
        .iter()
        .map(|pl| pipeline_json(workspace, project, pl, false))
        .collect();
    let (page, _, _) = buddy_page(&q, &pipelines);
    Ok(Json(json!({
        "url": format!("{API}/workspaces/{ws}/projects/{}/pipelines", project.name),
        "html_url": format!("{APP}/{ws}/{}/pipelines", project.name),
        "pipelines": page,
    })))
}

pub(super) async fn get_pipeline(
    State(state): State<Arc<SimState>>,
    Path((ws, project, pipeline)): Path<(String, String, String)>,
) -> Reply {
    let data = lock(&state.buddy);
    let (w, p, pl) = data.view(data.locate(&ws, &project, &pipeline)?);
    Ok(Json(pipeline_json(w, p, pl, true)))
}

pub(super) async fn list_executions(
    State(state): State<Arc<SimState>>,
    Path((ws, project, pipeline)): Path<(String, String, String)>,
    Query(q): Q,
) -> Reply {
    let data = lock(&state.buddy);
    let (w, p, pl) = data.view(data.locate(&ws, &project, &pipeline)?);
    let all: Vec<Value> = pl
        .executions
        .iter()
        .map(|e| execution_json(w, p, pl, e, false))
        .collect();
    let (items, page, per_page) = buddy_page(&q, &all);
    let (url, html_url) = pipeline_url(w, p, pl);
    Ok(Json(json!({
        "url": format!("{url}/executions"),
        "html_url": format!("{html_url}/executions"),
        "page": page,
        "page_size": per_page,
        "total_page_count": all.len().div_ceil(per_page),
        "element_count": items.len(),
        "total_element_count": all.len(),
        "executions": items,
    })))
}

pub(super) async fn get_execution(
    State(state): State<Arc<SimState>>,
    Path((ws, project, pipeline, execution)): Path<(String, String, String, String)>,
) -> Reply {
    let data = lock(&state.buddy);
    let (w, p, pl) = data.view(data.locate(&ws, &project, &pipeline)?);
    let e = &pl.executions[pl.execution(&execution)?];
    Ok(Json(execution_json(w, p, pl, e, true)))
}
