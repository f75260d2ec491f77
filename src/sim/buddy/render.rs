//! Derived run details and objects as Buddy renders them (workspaces, projects, pipelines, executions).

use super::*;

impl Execution {
    /// The status of the action at `idx`, given where the run is.
    pub(super) fn action_status(&self, idx: usize) -> &'static str {
        use std::cmp::Ordering::{Equal, Greater, Less};
        match (self.status, idx.cmp(&self.at)) {
            ("SUCCESSFUL", _) => "SUCCESSFUL",
            ("ENQUEUED", _) => "ENQUEUED",
            (_, Less) => "SUCCESSFUL",
            (status, Equal) => status,
            ("FAILED" | "TERMINATED", Greater) => "NOT_EXECUTED",
            (_, Greater) => "ENQUEUED",
        }
    }

    /// Milliseconds an action of a seeded run takes (deterministic, 15–104 s).
    pub(super) fn duration(&self, idx: usize) -> Time {
        (15 + (self.id * 31 + idx as u64 * 17) % 90) * 1000
    }

    /// What `times` recorded for an action, for runs started through the API.
    pub(super) fn recorded(&self, idx: usize) -> Option<(Option<Time>, Option<Time>)> {
        self.live.and(self.times.get(idx).copied())
    }

    pub(super) fn action_start(&self, idx: usize) -> Time {
        match self.recorded(idx) {
            Some((Some(start), _)) => start,
            _ => self.start + 20_000 + (0..idx).map(|i| self.duration(i)).sum::<Time>(),
        }
    }

    pub(super) fn action_finish(&self, idx: usize) -> Option<Time> {
        let status = self.action_status(idx);
        if let Some((_, finished)) = self.recorded(idx) {
            return finished.filter(|_| matches!(status, "SUCCESSFUL" | "FAILED" | "TERMINATED"));
        }
        match status {
            "SUCCESSFUL" | "FAILED" => Some(self.action_start(idx) + self.duration(idx)),
            "TERMINATED" => Some(self.action_start(idx) + self.duration(idx) / 2),
            _ => None,
        }
    }

    pub(super) fn finish(&self, actions: usize) -> Option<Time> {
        match self.status {
            "SUCCESSFUL" if self.live.is_some() => self
                .action_finish(actions.saturating_sub(1))
                .map(|f| f + 3000),
            "SUCCESSFUL" => Some(self.action_start(actions) + 3000),
            "FAILED" | "TERMINATED" => self.action_finish(self.at).map(|f| f + 3000),
            _ => None,
        }
    }

    pub(super) fn is_active(&self) -> bool {
        !matches!(self.status, "SUCCESSFUL" | "FAILED" | "TERMINATED")
    }
}

/// An action execution's id: 24 hex digits, as Buddy's are.
pub(super) fn action_execution_id(run: u64, idx: usize) -> String {
    sha(run * 100 + idx as u64 + 7)[..24].to_string()
}

/// A Unix time in milliseconds, printed as Buddy prints dates (UTC, milliseconds, `Z`).
pub(super) fn date(ms: Time) -> String {
    chrono::DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(0))
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// A commit-like hex string (40 digits), stable for a seed.
pub(super) fn sha(seed: u64) -> String {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut out = String::with_capacity(48);
    while out.len() < 40 {
        x ^= x >> 33;
        x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        x ^= x >> 29;
        let _ = write!(out, "{x:016x}");
    }
    out.truncate(40);
    out
}

// ------------------------------------------------------------------------------------------- JSON

pub(super) fn person(id: u64) -> Value {
    let (id, name, email) = PEOPLE
        .iter()
        .copied()
        .find(|p| p.0 == id)
        .unwrap_or(PEOPLE[0]);
    json!({
        "url": format!("{API}/user/{id}"),
        "html_url": format!("{APP}/user/{id}"),
        "id": id,
        "name": name,
        "avatar_url": format!("{APP}/image-server/user/0/0/0/0/0/0/{id}/avatar/w/32/32/AVATAR.png"),
        "email": email,
    })
}

pub(super) fn member(ws: &Workspace, (id, admin): (u64, bool)) -> Value {
    let mut m = person(id);
    m["url"] = json!(format!("{API}/workspaces/{}/member/{id}", ws.domain));
    m["html_url"] = json!(format!("{APP}/{}/-/people/{id}", ws.domain));
    m["admin"] = json!(admin);
    m["workspace_owner"] = json!(id == ws.owner_id);
    m["auto_assign_to_new_projects"] = json!(false);
    m
}

pub(super) fn workspace_json(ws: &Workspace, full: bool) -> Value {
    let mut w = json!({
        "url": format!("{API}/workspaces/{}", ws.domain),
        "html_url": format!("{APP}/{}", ws.domain),
        "id": ws.id,
        "name": ws.name,
        "domain": ws.domain,
    });
    if full {
        w["owner_id"] = json!(ws.owner_id);
        w["frozen"] = json!(false);
        w["create_date"] = json!(ws.create_date);
        w["default_pipeline_resource"] = json!("DEFAULT");
        w["sso_enabled"] = json!(false);
        w["public_pipelines_disabled"] = json!(false);
    }
    w
}

pub(super) fn project_ref(domain: &str, name: &str) -> Value {
    json!({
        "url": format!("{API}/workspaces/{domain}/projects/{name}"),
        "html_url": format!("{APP}/{domain}/{name}"),
        "name": name,
    })
}

pub(super) fn project_json(ws: &Workspace, p: &Project, full: bool) -> Value {
    let mut v = project_ref(&ws.domain, p.name);
    v["display_name"] = json!(p.display_name);
    v["status"] = json!(p.status);
    if full {
        v["access"] = json!("PRIVATE");
        v["create_date"] = json!(p.create_date);
        v["created_by"] = person(p.creator);
        v["http_repository"] = json!(format!("https://github.com/acme-corp/{}.git", p.name));
        v["ssh_repository"] = json!(format!("git@github.com:acme-corp/{}.git", p.name));
        v["default_branch"] = json!(p.default_branch);
        v["fetch_submodules"] = json!(false);
        v["allow_pull_requests"] = json!(true);
        v["without_repository"] = json!(false);
    }
    v
}

pub(super) fn pipeline_url(ws: &Workspace, p: &Project, pl: &Pipeline) -> (String, String) {
    (
        format!(
            "{API}/workspaces/{}/projects/{}/pipelines/{}",
            ws.domain, p.name, pl.id
        ),
        format!(
            "{APP}/{}/{}/pipelines/pipeline/{}",
            ws.domain, p.name, pl.id
        ),
    )
}

pub(super) fn pipeline_json(ws: &Workspace, p: &Project, pl: &Pipeline, full: bool) -> Value {
    let (url, html_url) = pipeline_url(ws, p, pl);
    let last = pl.executions.first();
    let mut v = json!({
        "url": url,
        "html_url": html_url,
        "id": pl.id,
        "identifier": pl.identifier,
        "name": pl.name,
        "definition_source": "LOCAL",
        "refs": pl.refs,
        "events": pl.events,
        "priority": pl.priority,
        "disabled": pl.disabled_reason.is_some(),
        "last_execution_status": last.map_or("INITIAL", |e| e.status),
        "last_execution_revision": last.map(|e| e.revision.clone()),
        "create_date": pl.create_date,
    });
    if full {
        v["disabled_reason"] = json!(pl.disabled_reason);
        v["paused"] = json!(false);
        v["trigger_conditions"] = json!([]);
        v["always_from_scratch"] = json!(false);
        v["concurrent_pipeline_runs"] = json!(false);
        v["clone_depth"] = json!(0);
        v["resources"] = json!("DEFAULT");
        v["cpu"] = json!("X64");
        v["project"] = project_json(ws, p, false);
        v["creator"] = person(p.creator);
    }
    v
}

pub(super) fn execution_json(
    ws: &Workspace,
    p: &Project,
    pl: &Pipeline,
    e: &Execution,
    full: bool,
) -> Value {
    let (pipeline_url, pipeline_html) = pipeline_url(ws, p, pl);
    let repo = format!(
        "{API}/workspaces/{}/projects/{}/repository",
        ws.domain, p.name
    );
    let repo_html = format!("{APP}/{}/{}/repository", ws.domain, p.name);
    // A commit's author and committer are workspace members, as in Buddy's commit examples.
    let commit = member(ws, (e.author, false));
    let mut v = json!({
        "url": format!("{pipeline_url}/executions/{}", e.id),
        "html_url": format!("{pipeline_html}/execution/{}/", &sha(e.id ^ 0x5EED)[..24]),
        "id": e.id,
        "start_date": date(e.start),
        "finish_date": e.finish(pl.actions.len()).map(date),
        "status": e.status,
        "priority": pl.priority,
        "triggeredOn": e.triggered_on,
        "refresh": e.refresh,
        "clear_cache": e.clear_cache,
        "comment": e.comment,
        "branch": {
            "url": format!("{repo}/branches/{}", e.branch),
            "html_url": format!("{repo_html}/branch/{}", e.branch),
            "name": e.branch,
            "default": e.branch == p.default_branch,
        },
        "to_revision": {
            "url": format!("{repo}/commits/{}", e.revision),
            "html_url": format!("{repo_html}/commit/{}", e.revision),
            "revision": e.revision,
            "author_date": date(e.start.saturating_sub(900_000)),
            "commit_date": date(e.start.saturating_sub(840_000)),
            "message": e.message,
            "author": commit,
            "committer": commit,
        },
        "creator": person(e.creator),
    });
    if full {
        v["pipeline"] = json!({"url": pipeline_url, "html_url": pipeline_html, "id": pl.id, "identifier": pl.identifier, "name": pl.name});
        v["action_executions"] = pl
            .actions
            .iter()
            .enumerate()
            .map(|(idx, a)| action_execution_json(ws, p, pl, e, idx, a))
            .collect();
    }
    v
}

/// One entry of a run's `action_executions[]`, in the shape of Buddy's documented run example and the
/// PHP SDK's `ActionExecution` (status, progress, dates, the action): it carries no
/// `action_execution_id`, so an action's log is reached through its action id
/// (`GET …/executions/{id}/actions/{action_id}`, [`action_details`]).
pub(super) fn action_execution_json(
    ws: &Workspace,
    p: &Project,
    pl: &Pipeline,
    e: &Execution,
    idx: usize,
    a: &Action,
) -> Value {
    let status = e.action_status(idx);
    let started = !matches!(status, "ENQUEUED" | "NOT_EXECUTED");
    json!({
        "start_date": started.then(|| date(e.action_start(idx))),
        "finish_date": e.action_finish(idx).map(date),
        "status": status,
        "progress": match status { "SUCCESSFUL" | "FAILED" => 100, "INPROGRESS" => 40, _ => 0 },
        "action": action_ref(ws, p, pl, a),
    })
}

/// An action as runs and action details show it.
pub(super) fn action_ref(ws: &Workspace, p: &Project, pl: &Pipeline, a: &Action) -> Value {
    let (pipeline_url, pipeline_html) = pipeline_url(ws, p, pl);
    let last = pl.executions.first().map_or("INITIAL", |e| {
        let idx = pl.actions.iter().position(|x| x.id == a.id).unwrap_or(0);
        e.action_status(idx)
    });
    json!({
        "url": format!("{pipeline_url}/actions/{}", a.id),
        "html_url": format!("{pipeline_html}/action/{}/edit", a.id),
        "id": a.id,
        "name": a.name,
        "type": a.kind,
        "trigger_time": "ON_EVERY_EXECUTION",
        "last_execution_status": last,
        "disabled": false,
    })
}
