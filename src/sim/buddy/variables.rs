//! Routes for environment variables and integrations.

use super::*;

/// Without filters only workspace-level variables, as in Buddy; `pipeline_id` wins over `project_name`.
pub(super) async fn list_variables(
    State(state): State<Arc<SimState>>,
    Path(ws): Path<String>,
    Query(q): Q,
) -> Reply {
    let data = lock(&state.buddy);
    let workspace = data.workspace(&ws)?;
    let pipeline = match param(&q, "pipeline_id") {
        Some(id) => {
            let n: Option<u64> = id.parse().ok();
            let known = workspace
                .projects
                .iter()
                .flat_map(|p| &p.pipelines)
                .any(|p| Some(p.id) == n);
            if !known {
                return Err(not_found(format!("Pipeline {id} not found")));
            }
            n
        }
        None => None,
    };
    let project = param(&q, "project_name");
    if let Some(name) = project {
        data.project(&ws, name)?;
    }
    let variables: Vec<&Value> = workspace
        .variables
        .iter()
        .filter(|v| match (pipeline, project) {
            (Some(id), _) => v["pipeline"]["id"].as_u64() == Some(id),
            (None, Some(name)) => v["project"]["name"] == name && v.get("pipeline").is_none(),
            (None, None) => v.get("project").is_none(),
        })
        .collect();
    Ok(Json(
        json!({"url": format!("{API}/workspaces/{ws}/variables"), "variables": variables}),
    ))
}

pub(super) async fn get_variable(
    State(state): State<Arc<SimState>>,
    Path((ws, id)): Path<(String, String)>,
) -> Reply {
    let data = lock(&state.buddy);
    let n: Option<u64> = id.parse().ok();
    data.workspace(&ws)?
        .variables
        .iter()
        .find(|v| v["id"].as_u64() == n && n.is_some())
        .map(|v| Json(v.clone()))
        .ok_or_else(|| not_found(format!("Variable {id} not found")))
}

pub(super) async fn list_integrations(
    State(state): State<Arc<SimState>>,
    Path(ws): Path<String>,
) -> Reply {
    let data = lock(&state.buddy);
    let integrations = &data.workspace(&ws)?.integrations;
    Ok(Json(
        json!({"url": format!("{API}/workspaces/{ws}/integrations"), "integrations": integrations}),
    ))
}

pub(super) async fn get_integration(
    State(state): State<Arc<SimState>>,
    Path((ws, hash_id)): Path<(String, String)>,
) -> Reply {
    let data = lock(&state.buddy);
    data.workspace(&ws)?
        .integrations
        .iter()
        .find(|i| i["hash_id"] == hash_id.as_str())
        .map(|i| Json(i.clone()))
        .ok_or_else(|| not_found(format!("Integration {hash_id} not found")))
}
