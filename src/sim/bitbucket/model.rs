//! The data model (workspaces, repositories, pull requests, pipelines) and how it moves on the sim's clocks.

use super::*;

/// Seeded Bitbucket data; tool calls that change something change it.
#[derive(Debug, Clone)]
pub struct Data {
    pub workspaces: Vec<Workspace>,
    pub repos: Vec<Repo>,
    /// The time of the latest change: the sim's clock when it happened, and later than the one before.
    pub clock: Time,
    /// The Unix time (ms) at which the run clock ([`SimState::run_clock_ms`]) reads 0.
    pub epoch_ms: Time,
    next_comment_id: u64,
    /// Merges answered with 202, finished when the run clock reaches their time.
    pub merge_tasks: Vec<MergeTask>,
}

/// A merge that takes longer than Bitbucket waits before answering: `POST …/merge` answered 202 with a
/// `Location` to `…/merge/task-status/{id}`, which reads `PENDING` until `due_ms` on the run clock and
/// then `SUCCESS` with the merged pull request as `merge_result` (or the merge's error).
#[derive(Debug, Clone)]
pub struct MergeTask {
    pub id: String,
    pub workspace: String,
    pub slug: String,
    pub pr: u64,
    /// Who merges (the account whose token made the call), and the request body.
    pub caller: usize,
    pub body: Value,
    pub due_ms: u64,
    /// The outcome once finished: the merged pull request, or (status, message).
    pub outcome: Option<Result<Value, (StatusCode, String)>>,
}

#[derive(Debug, Clone)]
pub struct Workspace {
    pub slug: String,
    /// `(person, administrator)`: who sees the workspace in `/user/workspaces`.
    pub members: Vec<(usize, bool)>,
}

#[derive(Debug, Clone)]
pub struct Repo {
    pub workspace: String,
    pub slug: String,
    pub description: String,
    pub language: String,
    pub project: (String, String),
    pub created_on: String,
    pub size: u64,
    pub main: String,
    pub branches: Vec<Branch>,
    pub commits: Vec<Commit>,
    pub files: BTreeMap<String, String>,
    pub pull_requests: Vec<PullRequest>,
    pub comments: Vec<Comment>,
    pub pipelines: Vec<Pipeline>,
    /// Names under `pipelines: custom:` in the repository's bitbucket-pipelines.yml.
    pub custom_pipelines: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Branch {
    pub name: String,
    pub head: String,
}

#[derive(Debug, Clone)]
pub struct Commit {
    pub hash: String,
    pub message: String,
    pub author: usize,
    pub date: Time,
    pub parents: Vec<String>,
    pub files: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct PullRequest {
    pub id: u64,
    pub title: String,
    pub description: String,
    pub state: String,
    pub draft: bool,
    pub author: usize,
    pub source: String,
    pub destination: String,
    pub source_hash: String,
    pub destination_hash: String,
    pub reviewers: Vec<usize>,
    pub participants: Vec<Participant>,
    pub close_source_branch: bool,
    pub merge_commit: Option<String>,
    pub closed_by: Option<usize>,
    pub reason: String,
    pub task_count: u32,
    pub created: Time,
    pub updated: Time,
    pub activity: Vec<Activity>,
}

#[derive(Debug, Clone)]
pub struct Participant {
    pub user: usize,
    pub role: &'static str,
    pub approved: bool,
    /// `approved`, `changes_requested` or none.
    pub state: Option<&'static str>,
    /// When they last approved, requested changes or commented; none for a reviewer who has not yet.
    pub on: Option<Time>,
}

/// One entry of a PR's activity feed.
#[derive(Debug, Clone)]
pub enum Activity {
    Update {
        state: String,
        author: usize,
        date: Time,
    },
    Approval {
        user: usize,
        date: Time,
    },
    ChangesRequested {
        user: usize,
        date: Time,
    },
    Comment(u64),
}

#[derive(Debug, Clone)]
pub struct Comment {
    pub id: u64,
    pub pr: u64,
    pub user: usize,
    pub raw: String,
    pub created: Time,
    /// File path and line in the new version.
    pub inline: Option<(String, u64)>,
    pub parent: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub uuid: String,
    pub build_number: u64,
    /// The branch for a `pipeline_ref_target`; `None` for a `pipeline_commit_target`.
    pub branch: Option<String>,
    pub commit: String,
    /// A custom pipeline's name.
    pub custom: Option<String>,
    pub manual: bool,
    pub creator: usize,
    pub created: Time,
    pub completed: Option<Time>,
    /// `PENDING`, `IN_PROGRESS` or `COMPLETED`.
    pub state: &'static str,
    pub result: Option<&'static str>,
    pub steps: Vec<Step>,
    pub variables: Vec<Value>,
    /// How a pipeline run through the API progresses; `None` for seeded ones, which never move.
    pub live: Option<Live>,
}

/// The pace of a pipeline run through the API: `PENDING` for one step from `since_ms` on the run clock,
/// then one step per `step_ms`; the step at `fail_at` fails. Applies until the pipeline completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Live {
    pub since_ms: u64,
    pub step_ms: u64,
    pub fail_at: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub uuid: String,
    pub name: String,
    /// `PENDING`, `IN_PROGRESS` or `COMPLETED`.
    pub state: &'static str,
    pub result: Option<&'static str>,
    pub started: Option<Time>,
    pub completed: Option<Time>,
    pub script: Vec<String>,
    /// `trigger: manual` in bitbucket-pipelines.yml: the run pauses before it until someone runs it.
    pub manual: bool,
}

impl Data {
    /// The seed, for a sim whose run clock started at `now_ms` (Unix milliseconds).
    pub fn seed(now_ms: Time) -> Self {
        let mut data = Self::seed_calendar();
        data.anchor(now_ms);
        data
    }

    /// Turns every seeded time from the seed's calendar into Unix time, [`START`] falling on `now_ms`.
    pub(super) fn anchor(&mut self, now_ms: Time) {
        let t = |m: &mut Time| *m = seed_time(*m, now_ms);
        for repo in &mut self.repos {
            repo.commits.iter_mut().for_each(|c| t(&mut c.date));
            repo.comments.iter_mut().for_each(|c| t(&mut c.created));
            for pr in &mut repo.pull_requests {
                t(&mut pr.created);
                t(&mut pr.updated);
                pr.participants
                    .iter_mut()
                    .filter_map(|p| p.on.as_mut())
                    .for_each(t);
                for a in &mut pr.activity {
                    match a {
                        Activity::Update { date, .. }
                        | Activity::Approval { date, .. }
                        | Activity::ChangesRequested { date, .. } => t(date),
                        Activity::Comment(_) => {}
                    }
                }
            }
            for p in &mut repo.pipelines {
                t(&mut p.created);
                p.completed.iter_mut().for_each(t);
                for step in &mut p.steps {
                    step.started.iter_mut().for_each(t);
                    step.completed.iter_mut().for_each(t);
                }
            }
        }
        (self.clock, self.epoch_ms) = (now_ms, now_ms);
    }

    /// The seed with times in [`Minutes`] on the seed's calendar.
    pub(super) fn seed_calendar() -> Self {
        let mut next_comment_id = 611_402_100;
        let repos = vec![
            seed_api(&mut next_comment_id),
            seed_small(
                "acme",
                "web",
                "Customer dashboard: TypeScript and React.",
                "typescript",
            ),
            seed_small(
                "acme",
                "infra",
                "Terraform and Helm charts for every environment.",
                "hcl",
            ),
            seed_small(
                "acme-labs",
                "prototype",
                "Experiments that may never ship.",
                "python",
            ),
        ];
        Self {
            workspaces: vec![
                Workspace {
                    slug: "acme".into(),
                    members: vec![(ME, false), (BEN, false)],
                },
                Workspace {
                    slug: "acme-labs".into(),
                    members: vec![(ME, true)],
                },
                Workspace {
                    slug: "bortiz".into(),
                    members: vec![(BEN, true)],
                },
            ],
            repos,
            clock: START,
            epoch_ms: 0,
            next_comment_id,
            merge_tasks: Vec::new(),
        }
    }

    /// The time of a change happening at `now_ms` (the sim's clock, [`SimState::now_ms`]): that, or
    /// just after the previous change, so changes keep their order.
    pub(super) fn tick(&mut self, now_ms: Time) -> Time {
        self.clock = now_ms.max(self.clock + 1);
        self.clock
    }

    /// Brings pipelines run through the API up to `now_ms` on the run clock: whether any changed, and
    /// how many still progress. The logical clock moves up to the latest step time they reached.
    pub fn progress(&mut self, now_ms: u64) -> (bool, usize) {
        let mut changed = false;
        let epoch = self.epoch_ms;
        for p in self.repos.iter_mut().flat_map(|r| &mut r.pipelines) {
            if p.progress(now_ms, epoch) {
                changed = true;
                self.clock = self.clock.max(p.latest());
            }
        }
        changed |= self.finish_merges(now_ms);
        (changed, self.live_runs())
    }

    /// Finishes the merge tasks due by `now_ms` on the run clock, stamped with when they were due.
    pub(super) fn finish_merges(&mut self, now_ms: u64) -> bool {
        let due: Vec<usize> = (0..self.merge_tasks.len())
            .filter(|&i| {
                let t = &self.merge_tasks[i];
                t.outcome.is_none() && t.due_ms <= now_ms
            })
            .collect();
        for &i in &due {
            let task = self.merge_tasks[i].clone();
            let at = self.tick(self.epoch_ms + task.due_ms);
            let outcome = self
                .repo_mut(&task.workspace, &task.slug)
                .map_err(|_| (StatusCode::NOT_FOUND, "The repository is gone.".to_string()))
                .and_then(|repo| {
                    let index = repo
                        .pull_requests
                        .iter()
                        .position(|p| p.id == task.pr)
                        .ok_or((
                            StatusCode::NOT_FOUND,
                            "The pull request is gone.".to_string(),
                        ))?;
                    merge_now(repo, index, task.caller, at, &task.body)
                });
            self.merge_tasks[i].outcome = Some(outcome);
        }
        !due.is_empty()
    }

    /// Pipelines run through the API that are pending or in progress, and merges still running: what
    /// changes with time alone.
    pub fn live_runs(&self) -> usize {
        let runs = self
            .repos
            .iter()
            .flat_map(|r| &r.pipelines)
            .filter(|p| p.live.is_some() && p.state != "COMPLETED")
            .count();
        runs + self
            .merge_tasks
            .iter()
            .filter(|t| t.outcome.is_none())
            .count()
    }

    pub(super) fn comment_id(&mut self) -> u64 {
        self.next_comment_id += 1;
        self.next_comment_id
    }

    pub(super) fn repo(&self, workspace: &str, slug: &str) -> Result<&Repo, Response> {
        self.check_workspace(workspace)?;
        self.repos
            .iter()
            .find(|r| r.workspace == workspace && r.slug == slug)
            .ok_or_else(|| not_found(&format!("Repository {workspace}/{slug} not found")))
    }

    pub(super) fn repo_mut(&mut self, workspace: &str, slug: &str) -> Result<&mut Repo, Response> {
        self.check_workspace(workspace)?;
        self.repos
            .iter_mut()
            .find(|r| r.workspace == workspace && r.slug == slug)
            .ok_or_else(|| not_found(&format!("Repository {workspace}/{slug} not found")))
    }

    pub(super) fn check_workspace(&self, workspace: &str) -> Result<(), Response> {
        if self.workspaces.iter().any(|w| w.slug == workspace) {
            Ok(())
        } else {
            Err(not_found(&format!(
                "No workspace with identifier '{workspace}'."
            )))
        }
    }
}

impl Pipeline {
    /// Sets states, results and times to where the pipeline is at `now_ms` on the run clock (which reads
    /// 0 at Unix time `epoch_ms`); true when a state changed.
    pub(super) fn progress(&mut self, now_ms: u64, epoch_ms: Time) -> bool {
        let Some(live) = self.live.filter(|_| self.state != "COMPLETED") else {
            return false;
        };
        let before: Vec<_> = std::iter::once((self.state, self.result))
            .chain(self.steps.iter().map(|s| (s.state, s.result)))
            .collect();
        let phase = (now_ms.saturating_sub(live.since_ms) / live.step_ms.max(1)) as usize;
        let n = self.steps.len();
        // The run stops before its first manual step, unless it failed earlier.
        let pause = self.steps.iter().position(|s| s.manual);
        // Phase 0 is PENDING; in phase k + 1 step k runs.
        let (state, result, current) = match phase.checked_sub(1) {
            None => ("PENDING", None, 0),
            Some(j) => match (live.fail_at, pause) {
                (Some(f), _) if j > f && pause.is_none_or(|m| f < m) => {
                    ("COMPLETED", Some("FAILED"), f)
                }
                (_, Some(m)) if j >= m => ("PAUSED", None, m),
                _ if j >= n => ("COMPLETED", Some("SUCCESSFUL"), n),
                _ => ("IN_PROGRESS", None, j),
            },
        };
        for (k, s) in self.steps.iter_mut().enumerate() {
            // Step k runs in phase k + 1.
            let started = epoch_ms + live.since_ms + (k as u64 + 1) * live.step_ms;
            let done = started + live.step_ms;
            (s.state, s.result, s.started, s.completed) = match state {
                "PENDING" => ("PENDING", None, None, None),
                _ if k < current => ("COMPLETED", Some("SUCCESSFUL"), Some(started), Some(done)),
                "PAUSED" => ("PENDING", None, None, None),
                "COMPLETED" if k == current => ("COMPLETED", result, Some(started), Some(done)),
                "COMPLETED" => ("COMPLETED", Some("NOT_RUN"), None, None),
                _ if k == current => ("IN_PROGRESS", None, Some(started), None),
                _ => ("PENDING", None, None, None),
            };
        }
        // A paused run is IN_PROGRESS with stage PAUSED ([`Pipeline::paused`]).
        self.state = if state == "PAUSED" {
            "IN_PROGRESS"
        } else {
            state
        };
        self.result = result;
        self.completed = (state == "COMPLETED").then(|| self.latest());
        let after: Vec<_> = std::iter::once((self.state, self.result))
            .chain(self.steps.iter().map(|s| (s.state, s.result)))
            .collect();
        before != after
    }

    /// Whether the run waits at a manual step: in progress, no step running, the next one manual.
    pub(super) fn paused(&self) -> bool {
        self.state == "IN_PROGRESS"
            && !self.steps.iter().any(|s| s.state == "IN_PROGRESS")
            && self
                .steps
                .iter()
                .find(|s| s.state == "PENDING")
                .is_some_and(|s| s.manual)
    }

    /// The latest time a step of the pipeline started or completed at (its creation if none did).
    pub(super) fn latest(&self) -> Time {
        self.steps
            .iter()
            .flat_map(|s| [s.started, s.completed])
            .flatten()
            .max()
            .unwrap_or(self.created)
    }
}
