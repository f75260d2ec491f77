//! The data model (workspaces, projects, pipelines, runs), lookups in it, and how runs move on the run clock.

use super::*;

/// Seeded Buddy data; tool calls that change something change it.
#[derive(Debug, Clone)]
pub struct Data {
    pub user: Value,
    pub tokens: Vec<Value>,
    pub workspaces: Vec<Workspace>,
    pub(super) next_run: u64,
    /// The Unix time (ms) at which the run clock ([`SimState::run_clock_ms`]) reads 0.
    pub epoch_ms: Time,
}

#[derive(Debug, Clone)]
pub struct Workspace {
    pub id: u64,
    pub domain: String,
    pub name: String,
    pub owner_id: u64,
    pub create_date: &'static str,
    /// `(person id, admin)`; people are `PEOPLE`.
    pub members: Vec<(u64, bool)>,
    pub projects: Vec<Project>,
    pub variables: Vec<Value>,
    pub integrations: Vec<Value>,
}

#[derive(Debug, Clone)]
pub struct Project {
    pub name: &'static str,
    pub display_name: &'static str,
    pub status: &'static str,
    pub default_branch: &'static str,
    pub create_date: &'static str,
    pub creator: u64,
    pub pipelines: Vec<Pipeline>,
}

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub id: u64,
    pub identifier: &'static str,
    pub name: &'static str,
    pub refs: Vec<&'static str>,
    pub events: Value,
    pub priority: &'static str,
    pub disabled_reason: Option<&'static str>,
    pub create_date: &'static str,
    pub actions: Vec<Action>,
    /// Newest first.
    pub executions: Vec<Execution>,
}

#[derive(Debug, Clone)]
pub struct Action {
    pub id: u64,
    pub name: &'static str,
    /// Buddy's action `type` (`BUILD`, `SFTP`, `WAIT_FOR_APPLY`, …).
    pub kind: &'static str,
    pub step: Step,
}

/// What an action does, which decides its console output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Install,
    Lint,
    Tests,
    Docker,
    Approval,
    Upload,
    Notify,
}

/// One pipeline run. Action statuses and dates are derived from `status` and `at`, so a mutation only
/// has to change those two.
#[derive(Debug, Clone)]
pub struct Execution {
    pub id: u64,
    pub status: &'static str,
    /// The action the run is at: the failed, terminated, running or waiting one.
    pub at: usize,
    pub branch: String,
    pub revision: String,
    pub message: String,
    pub author: u64,
    pub creator: u64,
    pub comment: String,
    pub triggered_on: &'static str,
    pub refresh: bool,
    pub clear_cache: bool,
    /// Unix milliseconds (seconds on the seed's calendar while seeding).
    pub start: Time,
    /// Who approved its `WAIT_FOR_APPLY` action through the API (seeded runs: their creator).
    pub approver: Option<u64>,
    /// How a run started through the API progresses; `None` for seeded runs, which never move by themselves.
    pub live: Option<Live>,
    /// For runs started through the API: when each action started and finished (Unix ms), as it
    /// happened. Seeded runs derive theirs from `start`.
    pub times: Vec<(Option<Time>, Option<Time>)>,
}

/// The pace of a run started through the API: action `from` starts at `since_ms` on the run clock and
/// each action takes `step_ms`; the action at `fail_at` fails. Progress only applies while the run is
/// `ENQUEUED` or `INPROGRESS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Live {
    pub since_ms: u64,
    pub step_ms: u64,
    pub from: usize,
    pub fail_at: Option<usize>,
}

/// Where a pipeline sits in [`Data`]: indexes of its workspace, project and itself.
#[derive(Debug, Clone, Copy)]
pub(super) struct At {
    ws: usize,
    project: usize,
    pipeline: usize,
}

impl Data {
    pub(super) fn workspace(&self, domain: &str) -> Result<&Workspace, ApiError> {
        self.workspaces
            .iter()
            .find(|w| w.domain == domain)
            .ok_or_else(|| not_found(format!("Workspace {domain} not found")))
    }

    pub(super) fn project(
        &self,
        domain: &str,
        name: &str,
    ) -> Result<(&Workspace, &Project), ApiError> {
        let ws = self.workspace(domain)?;
        let project = ws
            .projects
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| not_found(format!("Project {name} not found")))?;
        Ok((ws, project))
    }

    /// Pipelines are addressed by numeric id, as in Buddy; an identifier here is a 404.
    pub(super) fn locate(
        &self,
        domain: &str,
        project: &str,
        pipeline: &str,
    ) -> Result<At, ApiError> {
        let ws = self.workspaces.iter().position(|w| w.domain == domain);
        let ws = ws.ok_or_else(|| not_found(format!("Workspace {domain} not found")))?;
        let pi = self.workspaces[ws]
            .projects
            .iter()
            .position(|p| p.name == project);
        let pi = pi.ok_or_else(|| not_found(format!("Project {project} not found")))?;
        let id: Option<u64> = pipeline.parse().ok();
        let pl = self.workspaces[ws].projects[pi]
            .pipelines
            .iter()
            .position(|p| Some(p.id) == id);
        let pl = pl.ok_or_else(|| not_found(format!("Pipeline {pipeline} not found")))?;
        Ok(At {
            ws,
            project: pi,
            pipeline: pl,
        })
    }

    pub(super) fn view(&self, at: At) -> (&Workspace, &Project, &Pipeline) {
        let ws = &self.workspaces[at.ws];
        let p = &ws.projects[at.project];
        (ws, p, &p.pipelines[at.pipeline])
    }

    pub(super) fn pipeline_mut(&mut self, at: At) -> &mut Pipeline {
        &mut self.workspaces[at.ws].projects[at.project].pipelines[at.pipeline]
    }
}

impl Data {
    /// Brings runs started through the API up to `now_ms` on the run clock: whether any changed, and
    /// how many still progress.
    pub fn progress(&mut self, now_ms: u64) -> (bool, usize) {
        let epoch = self.epoch_ms;
        let mut changed = false;
        for pl in self
            .workspaces
            .iter_mut()
            .flat_map(|w| &mut w.projects)
            .flat_map(|p| &mut p.pipelines)
        {
            let actions = &pl.actions;
            for e in &mut pl.executions {
                changed |= e.progress(actions, now_ms, epoch);
            }
        }
        (changed, self.live_runs())
    }

    /// Runs started through the API that are queued or running.
    pub fn live_runs(&self) -> usize {
        self.workspaces
            .iter()
            .flat_map(|w| &w.projects)
            .flat_map(|p| &p.pipelines)
            .flat_map(|pl| &pl.executions)
            .filter(|e| e.progressing())
            .count()
    }
}

impl Execution {
    pub(super) fn progressing(&self) -> bool {
        self.live.is_some() && matches!(self.status, "ENQUEUED" | "INPROGRESS")
    }

    /// Moves `status` and `at` to where the run is at `now_ms` on the run clock (which reads 0 at Unix
    /// time `epoch_ms`), recording when each action started and finished; true when they changed.
    pub(super) fn progress(&mut self, actions: &[Action], now_ms: u64, epoch_ms: Time) -> bool {
        let Some(live) = self.live.filter(|_| self.progressing()) else {
            return false;
        };
        if now_ms < live.since_ms {
            return false;
        }
        let current = live.from + ((now_ms - live.since_ms) / live.step_ms.max(1)) as usize;
        let mut next = ("INPROGRESS", current);
        for idx in live.from..=current {
            if idx >= actions.len() {
                next = ("SUCCESSFUL", actions.len());
                break;
            }
            if actions[idx].step == Step::Approval {
                next = ("WAITING_FOR_APPLY", idx);
                break;
            }
            if live.fail_at == Some(idx) && idx < current {
                next = ("FAILED", idx);
                break;
            }
        }
        let changed = (self.status, self.at) != next;
        (self.status, self.at) = next;
        self.times.resize(actions.len(), (None, None));
        let finished = matches!(self.status, "SUCCESSFUL" | "FAILED");
        for idx in live.from..actions.len().min(self.at + 1) {
            let start = epoch_ms + live.since_ms + (idx - live.from) as u64 * live.step_ms;
            let done = idx < self.at || finished;
            self.times[idx] = (Some(start), done.then_some(start + live.step_ms));
        }
        changed
    }

    /// Marks the current action of a run started through the API as ended at `at_ms` (cancelled, or
    /// approved).
    pub(super) fn end_action(&mut self, at_ms: Time) {
        if let Some(entry) = self.times.get_mut(self.at).filter(|_| self.live.is_some()) {
            entry.1 = Some(at_ms);
        }
    }

    /// Restarts progress from action `at`, now (after RETRY or APPLY of a run started through the API).
    pub(super) fn resume(&mut self, now_ms: u64) {
        if let Some(live) = &mut self.live {
            (live.since_ms, live.from) = (now_ms, self.at);
        }
    }
}

impl Pipeline {
    pub(super) fn execution(&self, id: &str) -> Result<usize, ApiError> {
        let n: Option<u64> = id.parse().ok();
        self.executions
            .iter()
            .position(|e| Some(e.id) == n)
            .ok_or_else(|| not_found(format!("Execution {id} not found")))
    }
}
