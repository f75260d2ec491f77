//! Objects as Bitbucket renders them: repositories, commits, branches, pull requests, comments, pipelines.

use super::*;

impl Repo {
    pub(super) fn full_name(&self) -> String {
        format!("{}/{}", self.workspace, self.slug)
    }

    pub(super) fn uuid(&self) -> String {
        uuid(&format!("repo-{}", self.full_name()))
    }

    pub(super) fn api(&self) -> String {
        format!("{API}/repositories/{}", self.full_name())
    }

    pub(super) fn web(&self) -> String {
        format!("{WEB}/{}", self.full_name())
    }

    /// The condensed repository embedded in other objects.
    pub(super) fn reference(&self) -> Value {
        json!({
            "type": "repository",
            "full_name": self.full_name(),
            "links": links(&[
                ("self", self.api()),
                ("html", self.web()),
                ("avatar", format!("https://bytebucket.org/ravatar/{}?ts={}", enc(&self.uuid()), self.language)),
            ]),
            "name": self.slug,
            "uuid": self.uuid(),
        })
    }

    pub(super) fn json(&self) -> Value {
        let updated = self
            .commits
            .iter()
            .map(|c| c.date)
            .max()
            .unwrap_or_default();
        let (key, name) = &self.project;
        json!({
            "type": "repository",
            "full_name": self.full_name(),
            "links": {
                "self": {"href": self.api()},
                "html": {"href": self.web()},
                "avatar": {"href": format!("https://bytebucket.org/ravatar/{}?ts={}", enc(&self.uuid()), self.language)},
                "pullrequests": {"href": format!("{}/pullrequests", self.api())},
                "commits": {"href": format!("{}/commits", self.api())},
                "forks": {"href": format!("{}/forks", self.api())},
                "watchers": {"href": format!("{}/watchers", self.api())},
                "branches": {"href": format!("{}/refs/branches", self.api())},
                "tags": {"href": format!("{}/refs/tags", self.api())},
                "downloads": {"href": format!("{}/downloads", self.api())},
                "source": {"href": format!("{}/src", self.api())},
                "clone": [
                    {"name": "https", "href": format!("https://bitbucket.org/{}.git", self.full_name())},
                    {"name": "ssh", "href": format!("git@bitbucket.org:{}.git", self.full_name())}
                ],
                "hooks": {"href": format!("{}/hooks", self.api())}
            },
            "name": self.slug,
            "slug": self.slug,
            "description": self.description,
            "scm": "git",
            "website": null,
            "owner": {
                "display_name": self.workspace,
                "links": links(&[("self", format!("{API}/workspaces/{}", self.workspace)), ("html", format!("{WEB}/{}/", self.workspace))]),
                "type": "team",
                "uuid": uuid(&format!("workspace-{}", self.workspace)),
                "username": self.workspace,
            },
            "workspace": {
                "type": "workspace",
                "uuid": uuid(&format!("workspace-{}", self.workspace)),
                "name": self.workspace,
                "slug": self.workspace,
                "links": links(&[("self", format!("{API}/workspaces/{}", self.workspace)), ("html", format!("{WEB}/{}/", self.workspace))]),
            },
            "is_private": true,
            "project": {
                "type": "project",
                "key": key,
                "uuid": uuid(&format!("project-{}-{key}", self.workspace)),
                "name": name,
                "links": links(&[("self", format!("{API}/workspaces/{}/projects/{key}", self.workspace)), ("html", format!("{WEB}/{}/workspace/projects/{key}", self.workspace))]),
            },
            "fork_policy": "no_public_forks",
            "created_on": self.created_on,
            "updated_on": ts(updated),
            "size": self.size,
            "language": self.language,
            "uuid": self.uuid(),
            "mainbranch": {"name": self.main, "type": "branch"},
            "override_settings": {"default_merge_strategy": true, "branching_model": true},
            "parent": null,
            "enforced_signed_commits": null,
            "has_issues": false,
            "has_wiki": false,
        })
    }

    pub(super) fn commit(&self, hash: &str) -> Option<&Commit> {
        self.commits.iter().find(|c| c.hash == hash)
    }

    /// A branch name (exact) or a hash of at least 7 characters.
    pub(super) fn resolve(&self, revision: &str) -> Option<&Commit> {
        if let Some(branch) = self.branches.iter().find(|b| b.name == revision) {
            return self.commit(&branch.head);
        }
        if revision.len() >= 7 && revision.bytes().all(|b| b.is_ascii_hexdigit()) {
            return self
                .commits
                .iter()
                .find(|c| c.hash.starts_with(&revision.to_ascii_lowercase()));
        }
        None
    }

    /// The condensed commit embedded in PRs (12 characters) and elsewhere (40).
    pub(super) fn commit_ref(&self, hash: &str, short: bool) -> Value {
        let shown = if short { &hash[..12] } else { hash };
        json!({
            "type": "commit",
            "hash": shown,
            "links": links(&[("self", format!("{}/commit/{shown}", self.api())), ("html", format!("{}/commits/{shown}", self.web()))]),
        })
    }

    pub(super) fn commit_json(&self, c: &Commit) -> Value {
        let summary = rendered(&c.message);
        json!({
            "type": "commit",
            "hash": c.hash,
            "repository": self.reference(),
            "links": {
                "self": {"href": format!("{}/commit/{}", self.api(), c.hash)},
                "comments": {"href": format!("{}/commit/{}/comments", self.api(), c.hash)},
                "patch": {"href": format!("{}/patch/{}", self.api(), c.hash)},
                "html": {"href": format!("{}/commits/{}", self.web(), c.hash)},
                "diff": {"href": format!("{}/diff/{}", self.api(), c.hash)},
                "approve": {"href": format!("{}/commit/{}/approve", self.api(), c.hash)},
                "statuses": {"href": format!("{}/commit/{}/statuses", self.api(), c.hash)}
            },
            "author": {"type": "author", "raw": email(c.author), "user": user(c.author)},
            "summary": summary,
            "rendered": {"message": summary},
            "parents": c.parents.iter().map(|p| self.commit_ref(p, false)).collect::<Vec<_>>(),
            "date": ts(c.date),
            "message": c.message,
        })
    }

    pub(super) fn branch_json(&self, b: &Branch) -> Value {
        let target = self
            .commit(&b.head)
            .map(|c| self.commit_json(c))
            .unwrap_or(Value::Null);
        let name = b.name.replace('/', "%2F");
        json!({
            "name": b.name,
            "target": target,
            "links": {
                "self": {"href": format!("{}/refs/branches/{name}", self.api())},
                "commits": {"href": format!("{}/commits/{name}", self.api())},
                "html": {"href": format!("{}/branch/{}", self.web(), b.name)}
            },
            "type": "branch",
            "merge_strategies": MERGE_STRATEGIES,
            "default_merge_strategy": "merge_commit",
        })
    }

    pub(super) fn pr_links(&self, id: u64) -> Value {
        let base = format!("{}/pullrequests/{id}", self.api());
        json!({
            "self": {"href": base},
            "html": {"href": format!("{}/pull-requests/{id}", self.web())},
            "commits": {"href": format!("{base}/commits")},
            "approve": {"href": format!("{base}/approve")},
            "request-changes": {"href": format!("{base}/request-changes")},
            "diff": {"href": format!("{base}/diff")},
            "diffstat": {"href": format!("{base}/diffstat")},
            "comments": {"href": format!("{base}/comments")},
            "activity": {"href": format!("{base}/activity")},
            "merge": {"href": format!("{base}/merge")},
            "decline": {"href": format!("{base}/decline")},
            "statuses": {"href": format!("{base}/statuses")}
        })
    }

    pub(super) fn pr_endpoint(&self, branch: &str, hash: &str) -> Value {
        json!({
            "branch": {"name": branch, "links": {}, "sync_strategies": ["merge_commit", "rebase"]},
            "commit": self.commit_ref(hash, true),
            "repository": self.reference(),
        })
    }

    pub(super) fn participant_json(&self, p: &Participant) -> Value {
        json!({
            "type": "participant",
            "user": user(p.user),
            "role": p.role,
            "approved": p.approved,
            "state": p.state,
            "participated_on": p.on.map(ts),
        })
    }

    /// A pull request; lists leave out `reviewers` and `participants`, as Bitbucket's do.
    pub(super) fn pull_request_json(&self, pr: &PullRequest, full: bool) -> Value {
        let title = rendered(&pr.title);
        let description = rendered(&pr.description);
        let mut v = json!({
            "comment_count": self.comments.iter().filter(|c| c.pr == pr.id).count(),
            "task_count": pr.task_count,
            "type": "pullrequest",
            "id": pr.id,
            "title": pr.title,
            "description": pr.description,
            "rendered": {"title": title, "description": description.clone()},
            "state": pr.state,
            "draft": pr.draft,
            "merge_commit": pr.merge_commit.as_ref().map(|h| self.commit_ref(h, true)),
            "close_source_branch": pr.close_source_branch,
            "closed_by": pr.closed_by.map(user),
            "author": user(pr.author),
            "reason": pr.reason,
            "created_on": ts(pr.created),
            "updated_on": ts(pr.updated),
            "destination": self.pr_endpoint(&pr.destination, &pr.destination_hash),
            "source": self.pr_endpoint(&pr.source, &pr.source_hash),
            "links": self.pr_links(pr.id),
            "summary": description,
            "queued": false,
        });
        if full {
            v["reviewers"] = pr.reviewers.iter().map(|&r| user(r)).collect();
            v["participants"] = pr
                .participants
                .iter()
                .map(|p| self.participant_json(p))
                .collect();
        }
        v
    }

    /// The small PR reference inside comments and activity entries.
    pub(super) fn pr_reference(&self, pr: &PullRequest) -> Value {
        json!({
            "type": "pullrequest",
            "id": pr.id,
            "title": pr.title,
            "links": links(&[
                ("self", format!("{}/pullrequests/{}", self.api(), pr.id)),
                ("html", format!("{}/pull-requests/{}", self.web(), pr.id)),
            ]),
        })
    }

    pub(super) fn comment_json(&self, c: &Comment) -> Value {
        let pr = self.pull_requests.iter().find(|p| p.id == c.pr);
        let base = format!("{}/pullrequests/{}/comments/{}", self.api(), c.pr, c.id);
        let html = format!(
            "{}/pull-requests/{}/_/diff#comment-{}",
            self.web(),
            c.pr,
            c.id
        );
        let mut v = json!({
            "id": c.id,
            "created_on": ts(c.created),
            "updated_on": ts(c.created),
            "content": rendered(&c.raw),
            "user": user(c.user),
            "deleted": false,
            "pending": false,
            "type": "pullrequest_comment",
            "links": {"self": {"href": base}, "html": {"href": html}},
            "pullrequest": pr.map(|p| self.pr_reference(p)),
        });
        if let Some((path, line)) = &c.inline {
            v["inline"] = json!({"from": null, "to": line, "path": path});
            v["links"]["code"] = json!({"href": format!("{}/diff/{}?path={path}", self.api(), pr.map(|p| &p.source_hash[..12]).unwrap_or(""))});
        }
        if let Some(parent) = c.parent {
            v["parent"] = json!({"type": "pullrequest_comment", "id": parent, "links": links(&[("self", format!("{}/pullrequests/{}/comments/{parent}", self.api(), c.pr))])});
        }
        v
    }

    pub(super) fn activity_json(&self, pr: &PullRequest, entry: &Activity) -> Value {
        let pull_request = self.pr_reference(pr);
        match entry {
            Activity::Update {
                state,
                author,
                date,
            } => json!({
                "update": {
                    "state": state,
                    "title": pr.title,
                    "description": pr.description,
                    "reason": pr.reason,
                    "author": user(*author),
                    "date": ts(*date),
                    "source": self.pr_endpoint(&pr.source, &pr.source_hash),
                    "destination": self.pr_endpoint(&pr.destination, &pr.destination_hash),
                    "reviewers": pr.reviewers.iter().map(|&r| user(r)).collect::<Vec<_>>(),
                    "changes": {},
                },
                "pull_request": pull_request,
            }),
            Activity::Approval { user: u, date } => json!({
                "approval": {"date": ts(*date), "pullrequest": pull_request.clone(), "user": user(*u)},
                "pull_request": pull_request,
            }),
            Activity::ChangesRequested { user: u, date } => json!({
                "changes_requested": {"date": ts(*date), "pullrequest": pull_request.clone(), "user": user(*u)},
                "pull_request": pull_request,
            }),
            Activity::Comment(id) => json!({
                "comment": self.comments.iter().find(|c| c.id == *id).map(|c| self.comment_json(c)),
                "pull_request": pull_request,
            }),
        }
    }

    pub(super) fn activity_date(&self, entry: &Activity) -> Time {
        match entry {
            Activity::Update { date, .. }
            | Activity::Approval { date, .. }
            | Activity::ChangesRequested { date, .. } => *date,
            Activity::Comment(id) => self
                .comments
                .iter()
                .find(|c| c.id == *id)
                .map(|c| c.created)
                .unwrap_or(0),
        }
    }

    pub(super) fn pipeline_json(&self, p: &Pipeline) -> Value {
        let mut state = pipeline_state(p.state, p.result, false);
        if p.paused() {
            state["stage"] = json!({"name": "PAUSED", "type": "pipeline_state_in_progress_paused"});
        }
        let selector = match (&p.custom, &p.branch) {
            (Some(name), _) => json!({"type": "custom", "pattern": name}),
            (None, Some(b)) if b == &self.main => json!({"type": "branches", "pattern": b}),
            _ => json!({"type": "default"}),
        };
        let mut target = json!({
            "type": if p.branch.is_some() { "pipeline_ref_target" } else { "pipeline_commit_target" },
            "selector": selector,
            "commit": self.commit_ref(&p.commit, false),
        });
        if let Some(branch) = &p.branch {
            target["ref_type"] = json!("branch");
            target["ref_name"] = json!(branch);
        }
        let duration = p
            .completed
            .map(|c| c.saturating_sub(p.created).div_ceil(1000))
            .unwrap_or(0);
        json!({
            "type": "pipeline",
            "uuid": p.uuid,
            "repository": self.reference(),
            "state": state,
            "build_number": p.build_number,
            "creator": user(p.creator),
            "target": target,
            "trigger": if p.manual {
                json!({"name": "MANUAL", "type": "pipeline_trigger_manual"})
            } else {
                json!({"name": "PUSH", "type": "pipeline_trigger_push"})
            },
            "created_on": ts(p.created),
            "completed_on": p.completed.map(ts),
            "run_number": 1,
            "duration_in_seconds": duration,
            "build_seconds_used": duration,
            "first_successful": false,
            "expired": false,
            "has_variables": !p.variables.is_empty(),
            // Typed as Atlassian's document types them (pipelines_pipeline_links).
            "links": {
                "type": "pipelines_pipeline_links",
                "self": {"type": "pipelines_links_section_href", "href": format!("{}/pipelines/{}", self.api(), enc(&p.uuid))},
                "steps": {"type": "pipelines_links_section_href", "href": format!("{}/pipelines/{}/steps", self.api(), enc(&p.uuid))}
            },
            "configuration_sources": [{"source": "bitbucket-pipelines.yml", "uri": format!("{}/src/{}/bitbucket-pipelines.yml", self.api(), p.commit)}],
        })
    }

    pub(super) fn step_json(&self, p: &Pipeline, s: &Step) -> Value {
        let duration = match (s.started, s.completed) {
            (Some(a), Some(b)) => b.saturating_sub(a).div_ceil(1000),
            _ => 0,
        };
        let base = format!(
            "{}/pipelines/{}/steps/{}",
            self.api(),
            enc(&p.uuid),
            enc(&s.uuid)
        );
        json!({
            "type": "pipeline_step",
            "uuid": s.uuid,
            "name": s.name,
            "pipeline": {"type": "pipeline", "uuid": p.uuid},
            "started_on": s.started.map(ts),
            "completed_on": s.completed.map(ts),
            "state": pipeline_state(s.state, s.result, true),
            "image": {"name": "rust:1.88-bookworm"},
            "setup_commands": [
                {"name": "Clone", "command": "git clone --branch=\"main\" --depth 50 https://x-token-auth:$REPOSITORY_OAUTH_ACCESS_TOKEN@bitbucket.org/$BITBUCKET_REPO_FULL_NAME.git $BUILD_DIR", "action": "SCRIPT_COMMAND"}
            ],
            "script_commands": s.script.iter().map(|c| json!({"name": c, "command": c, "action": "SCRIPT_COMMAND"})).collect::<Vec<_>>(),
            "run_number": 1,
            "trigger": {"type": if s.manual { "pipeline_step_trigger_manual" } else { "pipeline_step_trigger_automatic" }},
            "duration_in_seconds": duration,
            "build_seconds_used": duration,
            "max_time": 120,
            "links": links(&[("self", base.clone()), ("log", format!("{base}/log"))]),
        })
    }
}

pub(super) const MERGE_STRATEGIES: [&str; 6] = [
    "merge_commit",
    "squash",
    "fast_forward",
    "squash_fast_forward",
    "rebase_fast_forward",
    "rebase_merge",
];

/// `state` of a pipeline or step: `pipeline_state_completed` + `result`, and so on.
pub(super) fn pipeline_state(state: &str, result: Option<&str>, step: bool) -> Value {
    let prefix = if step {
        "pipeline_step_state"
    } else {
        "pipeline_state"
    };
    match state {
        "COMPLETED" => {
            let r = result.unwrap_or("SUCCESSFUL");
            json!({
                "name": "COMPLETED",
                "type": format!("{prefix}_completed"),
                "result": {"name": r, "type": format!("{prefix}_completed_{}", r.to_ascii_lowercase())}
            })
        }
        "IN_PROGRESS" => json!({
            "name": "IN_PROGRESS",
            "type": format!("{prefix}_in_progress"),
            "stage": {"name": "RUNNING", "type": format!("{prefix}_in_progress_running")}
        }),
        other => json!({"name": other, "type": format!("{prefix}_{}", other.to_ascii_lowercase())}),
    }
}
