//! Simulated Bitbucket Cloud API 2.0, served under `/2.0`.
//!
//! Shapes follow the real API: every object has `type` and a `links` map (the bloat the catalog's
//! projections exist to cut), UUIDs are written with braces, PR commits are 12-character hashes and
//! other commits 40, timestamps are UTC with microseconds, lists are `{size, page, pagelen, next, values}`
//! pages with absolute `next` URLs, and errors are `{"type":"error","error":{"message", "fields"?}}`.
//!
//! Seed (deterministic, no randomness): the token's owner Ann Dev and five colleagues; workspaces `acme`
//! and `acme-labs` (plus `bortiz`, seen only by the second OAuth account, Ben Ortiz); repositories `acme/api` (30 pull requests in every state, branches including
//! `feature/login`, commits, files with a 100 KB+ `CHANGELOG.md`, a ~250-line PR diff, pipelines with
//! steps and logs), `acme/web`, `acme/infra` and `acme-labs/prototype`.
//!
//! Behaviour worth knowing, all as Bitbucket does it:
//! - A path the API does not host answers 404 "Resource not found" with the detail Bitbucket gives.
//!   That includes every `…/issues` path: the issue tracker and its endpoints were removed on 2026-08-20
//!   (Atlassian's announcement). No document says what a removed route answers; clients report this 404
//!   for paths Bitbucket stopped hosting, so it is the best-known answer (a 410 is not ruled out).
//! - PR lists default to `state=OPEN`, take repeated `state`, BBQL `q` (`=`, `!=`, `~`, `!~`, `<`, `>`,
//!   `AND`, `OR`, parentheses; unknown fields are a 400), `sort`, and at most `pagelen=50`.
//! - A PR `PUT` replaces: no `title` is a 400, and a body without `description`, `reviewers` or
//!   `close_source_branch` clears them.
//! - `…/pullrequests/{id}/diff` and `/diffstat` answer 302 to `…/diff/{spec}` / `…/diffstat/{spec}`.
//! - `src/{commit}/{path}` takes a branch without `/`, or a (short) hash; a branch with `/` is read as
//!   branch + path, as Bitbucket does, so callers must resolve such branches to a hash first.
//! - Pipeline and step UUIDs must arrive percent-encoded (`%7B…%7D`); raw braces are a 400.
//! - Running a pipeline takes the documented bodies only: a `pipeline_ref_target` (branch, optionally at
//!   a commit, optionally with a selector) or a `pipeline_commit_target` with a selector; a commit target
//!   without one is a 400 naming `target.selector`.
//! - The pipelines list answers `page`, `pagelen` and `size` but never `next` (BCLOUD-20639), so a
//!   client pages it by number.
//! - A finished step's log answers 307 to long-term storage: a pre-signed URL on a host of its own
//!   ([`storage_router`], [`super::Sim::storage_url`]) that refuses requests carrying `Authorization`.
//! - Mutations (merge, decline, approve, comment, update, create, run, stop) change the data, are made by
//!   the account whose token made the call (`GET /user`'s), and are stamped with the sim's clock:
//!   today's time, moving in real time (and with [`SimState::advance`]). Seeded times are relative to
//!   when the sim started (the newest within the hour before), so the seed always reads as recent.
//! - A merge answers 200 with the pull request, or — with `async=true`, or while the sim's merges take
//!   time ([`SimState::set_merge_ms`]) — 202 with a `Location` to `…/merge/task-status/{id}` and no body;
//!   the task reads `{"task_status": "PENDING"}` until the merge is done, then `SUCCESS` with the merged
//!   pull request as `merge_result`.
//! - Reviewers who have not voted are participants with role `REVIEWER`, `approved: false` and no
//!   `state` or `participated_on`, as on Bitbucket.
//! - Pipelines run through the API progress on the sim's run clock ([`SimState::advance`],
//!   [`SimState::set_run_step_ms`]); seeded ones never move. A new run is `PENDING` for one step, then
//!   `IN_PROGRESS` with one step running per step length (steps `PENDING` → `IN_PROGRESS` → `COMPLETED`),
//!   then `COMPLETED` with result `SUCCESSFUL` — except a default (non-custom) run on branch
//!   [`FAILING_BRANCH`] (`feature/login`, in `acme/api`), whose `Test` step ends `FAILED` (its log,
//!   `GET …/pipelines/{uuid}/steps/{step_uuid}/log`, ends in the failing test's panic and assertion), the
//!   steps after it `NOT_RUN` and the pipeline `FAILED`. Step times are when each step really ran on the
//!   run clock. Stopping freezes a run as `STOPPED`. A step with `trigger: manual` (`Deploy to production`
//!   of the `deploy-production` custom pipeline) pauses the run before it: `IN_PROGRESS` with stage
//!   `PAUSED` (`pipeline_state_in_progress_paused`), the step `PENDING`, until someone runs it in
//!   Bitbucket (the sim has no such button, so it stays paused until stopped).

#![allow(clippy::result_large_err)]

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, OriginalUri, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{Account, SimState, Which, bitbucket_page, lock, param};

const API: &str = "https://api.bitbucket.org/2.0";
const WEB: &str = "https://bitbucket.org";
/// Default pipelines run through the API on this branch fail at their `Test` step.
pub const FAILING_BRANCH: &str = "feature/login";

type Reply = Result<Response, Response>;

// ---------------------------------------------------------------------------------------------------
// Identifiers and time
// ---------------------------------------------------------------------------------------------------

/// A deterministic 64-bit hash (FNV-1a, then a splitmix finaliser so neighbouring seeds look unrelated).
fn hash64(seed: &str, salt: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325_u64 ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in seed.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

fn hex(seed: &str, len: usize) -> String {
    let mut out = String::new();
    let mut salt = 0;
    while out.len() < len {
        out.push_str(&format!("{:016x}", hash64(seed, salt)));
        salt += 1;
    }
    out.truncate(len);
    out
}

/// A 40-character commit hash.
fn sha(seed: &str) -> String {
    hex(seed, 40)
}

/// A braced UUID, as Bitbucket writes them.
fn uuid(seed: &str) -> String {
    let h = hex(seed, 32);
    format!(
        "{{{}-{}-4{}-a{}-{}}}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..]
    )
}

/// A UUID as it appears inside a URL.
fn enc(uuid: &str) -> String {
    uuid.replace('{', "%7B").replace('}', "%7D")
}

/// Seed times are written in minutes on a calendar of their own (day 0 = the first day of the seed's
/// history); [`START`] on it is when the sim starts.
type Minutes = u64;

/// A time in the data: Unix milliseconds. [`Data::seed`] turns the seed's [`Minutes`] into these.
type Time = u64;

const fn at(day: u64, hour: u64, minute: u64) -> Minutes {
    day * 1440 + hour * 60 + minute
}

/// When the sim starts, on the seed's calendar; every seeded time is before it.
const START: Minutes = at(82, 12, 0);

/// The Unix time of a seed time, for a sim started at `now_ms`. Seconds and milliseconds vary with the
/// minute (real data is not on round minutes) but stay within it, so the seed's order holds.
fn seed_time(minutes: Minutes, now_ms: Time) -> Time {
    let jitter = (minutes * 13 + 7) % 60 * 1000 + (minutes * 7919 + 104_729) % 1000;
    let ago = (i128::from(START) - i128::from(minutes)) * 60_000 - i128::from(jitter);
    u64::try_from((i128::from(now_ms) - ago).max(0)).unwrap_or(0)
}

/// A Bitbucket timestamp: UTC with microseconds.
fn ts(ms: Time) -> String {
    let micros = (ms % 1000) * 1000 + (ms.wrapping_mul(7919) + 104_729) % 1000;
    let seconds = chrono::DateTime::from_timestamp(i64::try_from(ms / 1000).unwrap_or(0), 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S");
    format!("{seconds}.{micros:06}+00:00")
}

// ---------------------------------------------------------------------------------------------------
// Builders: links, users, rendered text
// ---------------------------------------------------------------------------------------------------

/// A `links` map: `{rel: {href}}`.
fn links(pairs: &[(&str, String)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(rel, href)| (rel.to_string(), json!({ "href": href })))
            .collect(),
    )
}

/// The people in the seed: display name and nickname. Index 0 owns the sim's static token (account
/// `ann`); index 1 is the second OAuth account (`ben`).
const PEOPLE: [(&str, &str); 6] = [
    ("Ann Dev", "anndev"),
    ("Ben Ortiz", "bortiz"),
    ("Chloe Martin", "cmartin"),
    ("Dmitri Ivanov", "divanov"),
    ("Eva Novak", "enovak"),
    ("Farid Haddad", "fhaddad"),
];
const ME: usize = 0;
const BEN: usize = 1;

fn user_uuid(i: usize) -> String {
    if i == ME {
        "{d301aafa-d676-4ee0-88be-962be7417567}".into()
    } else {
        uuid(&format!("user-{i}"))
    }
}

fn account_id(i: usize) -> String {
    if i == ME {
        "557058:c0b72ad0-1cb5-4018-9cdc-0cde8492c443".into()
    } else {
        let h = hex(&format!("account-{i}"), 32);
        format!(
            "712020:{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }
}

/// A user as embedded in other objects.
fn user(i: usize) -> Value {
    let (name, nickname) = PEOPLE[i];
    let uuid = user_uuid(i);
    let initials: String = name.split(' ').filter_map(|w| w.chars().next()).collect();
    json!({
        "display_name": name,
        "links": links(&[
            ("self", format!("{API}/users/{}", enc(&uuid))),
            ("avatar", format!(
                "https://secure.gravatar.com/avatar/{}?d=https%3A%2F%2Favatar-management--avatars.us-west-2.prod.public.atl-paas.net%2Finitials%2F{initials}-{}.png",
                hex(nickname, 32), i + 1
            )),
            ("html", format!("{WEB}/{}/", enc(&uuid))),
        ]),
        "type": "user",
        "uuid": uuid,
        "account_id": account_id(i),
        "nickname": nickname,
    })
}

/// The full user object of `GET /user`.
fn full_user(i: usize) -> Value {
    let mut u = user(i);
    u["account_status"] = json!("active");
    u["has_2fa_enabled"] = Value::Null;
    u["is_staff"] = json!(false);
    u["created_on"] = json!("2019-03-04T10:11:12.123456+00:00");
    u
}

fn email(i: usize) -> String {
    format!("{} <{}@acme.example>", PEOPLE[i].0, PEOPLE[i].1)
}

/// A person named by `{uuid}` or `account_id`, as reviewer and assignee bodies do.
fn find_user(reference: &Value) -> Option<usize> {
    let by = |key: &str| reference.get(key).and_then(Value::as_str);
    (0..PEOPLE.len()).find(|&i| {
        by("uuid") == Some(user_uuid(i).as_str())
            || by("account_id") == Some(account_id(i).as_str())
    })
}

/// `{type: rendered, raw, markup, html}`: Bitbucket sends every text twice.
fn rendered(raw: &str) -> Value {
    let escaped = raw
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let html: String = escaped
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|p| format!("<p>{}</p>", p.trim().replace('\n', "<br>\n")))
        .collect::<Vec<_>>()
        .join("\n");
    json!({ "type": "rendered", "raw": raw, "markup": "markdown", "html": html })
}

// ---------------------------------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------------------------------

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
    fn anchor(&mut self, now_ms: Time) {
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
    fn seed_calendar() -> Self {
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
    fn tick(&mut self, now_ms: Time) -> Time {
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
    fn finish_merges(&mut self, now_ms: u64) -> bool {
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

    fn comment_id(&mut self) -> u64 {
        self.next_comment_id += 1;
        self.next_comment_id
    }

    fn repo(&self, workspace: &str, slug: &str) -> Result<&Repo, Response> {
        self.check_workspace(workspace)?;
        self.repos
            .iter()
            .find(|r| r.workspace == workspace && r.slug == slug)
            .ok_or_else(|| not_found(&format!("Repository {workspace}/{slug} not found")))
    }

    fn repo_mut(&mut self, workspace: &str, slug: &str) -> Result<&mut Repo, Response> {
        self.check_workspace(workspace)?;
        self.repos
            .iter_mut()
            .find(|r| r.workspace == workspace && r.slug == slug)
            .ok_or_else(|| not_found(&format!("Repository {workspace}/{slug} not found")))
    }

    fn check_workspace(&self, workspace: &str) -> Result<(), Response> {
        if self.workspaces.iter().any(|w| w.slug == workspace) {
            Ok(())
        } else {
            Err(not_found(&format!(
                "No workspace with identifier '{workspace}'."
            )))
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Seed
// ---------------------------------------------------------------------------------------------------

/// Pull requests of `acme/api`, by id from 1: title, source branch, state, author, reviewers,
/// reviewers who approved, draft.
type PrSeed = (
    &'static str,
    &'static str,
    &'static str,
    usize,
    &'static [usize],
    &'static [usize],
    bool,
);
const API_PULL_REQUESTS: [PrSeed; 30] = [
    (
        "Bootstrap axum service skeleton",
        "feature/skeleton",
        "MERGED",
        1,
        &[2, 3],
        &[2, 3],
        false,
    ),
    (
        "Add health and readiness endpoints",
        "feature/healthz",
        "MERGED",
        2,
        &[1],
        &[1],
        false,
    ),
    (
        "Configure structured JSON logging",
        "feature/json-logs",
        "MERGED",
        3,
        &[1, 4],
        &[4],
        false,
    ),
    (
        "Add Postgres connection pool with sqlx",
        "feature/sqlx-pool",
        "MERGED",
        1,
        &[0, 3],
        &[0, 3],
        false,
    ),
    (
        "Users CRUD endpoints",
        "feature/users-crud",
        "MERGED",
        4,
        &[0, 1],
        &[0, 1],
        false,
    ),
    (
        "Switch to tracing-subscriber env filter",
        "chore/env-filter",
        "DECLINED",
        5,
        &[3],
        &[],
        false,
    ),
    (
        "Paginate /users with cursor tokens",
        "feature/users-pagination",
        "MERGED",
        0,
        &[1, 2],
        &[1, 2],
        false,
    ),
    (
        "Bump tokio to 1.48",
        "deps/tokio-1.48",
        "SUPERSEDED",
        3,
        &[1],
        &[],
        false,
    ),
    (
        "Bump tokio to 1.49 and hyper to 1.8",
        "deps/tokio-1.49",
        "MERGED",
        3,
        &[1],
        &[1],
        false,
    ),
    (
        "Return RFC 9457 problem details on errors",
        "feature/problem-details",
        "MERGED",
        2,
        &[0, 4],
        &[0, 4],
        false,
    ),
    (
        "Experiment: GraphQL gateway",
        "spike/graphql",
        "DECLINED",
        5,
        &[1, 2],
        &[],
        false,
    ),
    (
        "Add OpenAPI document generation",
        "feature/openapi",
        "MERGED",
        4,
        &[2],
        &[2],
        false,
    ),
    (
        "Fix N+1 query in team listing",
        "fix/team-n-plus-one",
        "MERGED",
        1,
        &[3],
        &[3],
        false,
    ),
    (
        "Cache feature flags for 30 seconds",
        "feature/flag-cache",
        "MERGED",
        2,
        &[0],
        &[0],
        false,
    ),
    (
        "Drop Node 18 from the SDK build matrix",
        "chore/drop-node18",
        "DECLINED",
        4,
        &[5],
        &[],
        false,
    ),
    (
        "Add request id middleware",
        "feature/request-id",
        "OPEN",
        3,
        &[0, 1],
        &[1],
        false,
    ),
    (
        "Rate limit public endpoints per API key",
        "feature/rate-limits",
        "OPEN",
        2,
        &[0, 3],
        &[],
        false,
    ),
    (
        "Fix token refresh race in session store",
        "fix/token-refresh",
        "OPEN",
        0,
        &[1, 2],
        &[2],
        false,
    ),
    (
        "Add webhook delivery retries with backoff",
        "feature/webhook-retries",
        "OPEN",
        4,
        &[0, 5],
        &[5],
        false,
    ),
    (
        "WIP: migrate config loading to figment",
        "chore/figment",
        "OPEN",
        5,
        &[3],
        &[],
        true,
    ),
    (
        "Upgrade sqlx to 0.9",
        "deps/sqlx-0.9",
        "OPEN",
        3,
        &[0, 1],
        &[1],
        false,
    ),
    (
        "Validate email addresses on signup",
        "fix/email-validation",
        "OPEN",
        1,
        &[0, 4],
        &[],
        false,
    ),
    (
        "Add audit trail for admin actions",
        "feature/admin-audit",
        "OPEN",
        2,
        &[0, 3],
        &[0],
        false,
    ),
    (
        "Document the pagination contract",
        "docs/pagination",
        "OPEN",
        3,
        &[0, 1],
        &[],
        false,
    ),
    (
        "Return 404 instead of 500 for unknown teams",
        "fix/unknown-team-404",
        "OPEN",
        4,
        &[0, 2],
        &[2],
        false,
    ),
    (
        "Add OAuth login flow with PKCE",
        "feature/login",
        "OPEN",
        0,
        &[1, 3],
        &[3],
        false,
    ),
    (
        "Add per-tenant usage metrics endpoint",
        "feature/usage-metrics",
        "OPEN",
        1,
        &[0, 2],
        &[2],
        false,
    ),
    (
        "Remove legacy v1 endpoints",
        "chore/remove-v1",
        "OPEN",
        2,
        &[0],
        &[],
        true,
    ),
    (
        "Add idempotency keys to POST /payments",
        "feature/idempotency-keys",
        "OPEN",
        5,
        &[1, 4],
        &[],
        false,
    ),
    (
        "Speed up CI with sccache",
        "ci/sccache",
        "OPEN",
        4,
        &[3],
        &[3],
        false,
    ),
];

/// Commits on `main` of `acme/api` besides merges, oldest first: message, author, files.
const API_COMMITS: [(&str, usize, &[&str]); 16] = [
    ("Initial commit", 1, &["README.md", "Cargo.toml"]),
    (
        "Add CI configuration for Bitbucket Pipelines",
        4,
        &["bitbucket-pipelines.yml"],
    ),
    ("Add main entry point and router", 1, &["src/main.rs"]),
    (
        "Add team routes",
        2,
        &["src/routes/teams.rs", "src/main.rs"],
    ),
    ("Write README quickstart", 0, &["README.md"]),
    (
        "Add users routes",
        4,
        &["src/routes/users.rs", "src/main.rs"],
    ),
    (
        "Tune connection pool size for production",
        3,
        &["src/db.rs"],
    ),
    (
        "Fix clippy warnings after toolchain bump",
        2,
        &["src/routes/users.rs", "src/db.rs"],
    ),
    ("Add CHANGELOG", 0, &["CHANGELOG.md"]),
    ("Release 2.3.0", 0, &["CHANGELOG.md", "Cargo.toml"]),
    (
        "Cache Docker layers in pipelines",
        4,
        &["bitbucket-pipelines.yml"],
    ),
    (
        "Return 429 with Retry-After from the rate limiter",
        2,
        &["src/routes/mod.rs"],
    ),
    ("Update dependencies", 3, &["Cargo.toml", "Cargo.lock"]),
    ("Release 2.4.0", 0, &["CHANGELOG.md", "Cargo.toml"]),
    (
        "Add basic auth for internal tools",
        1,
        &["src/auth/mod.rs", "src/auth/legacy_basic.rs"],
    ),
    ("Log request latency in milliseconds", 5, &["src/main.rs"]),
];

fn pr_created(id: u64) -> Minutes {
    at(18 + id * 2, 8 + id % 9, (id * 17) % 60)
}

fn pr_updated(id: u64, state: &str) -> Minutes {
    if state == "OPEN" {
        (pr_created(id) + 600 + (id * 431) % 5000).min(START - 30 - id)
    } else {
        pr_created(id) + 1440 + (id * 97) % 900
    }
}

fn pr_description(id: u64, title: &str) -> String {
    match id {
        26 => "## Summary\n\nAdds the OAuth 2.0 authorization-code flow with PKCE for the web app and CLI.\n\n\
               - `GET /login` redirects to the identity provider with a S256 challenge\n\
               - `GET /login/callback` checks `state`, exchanges the code and starts a session\n\
               - sessions are stored server-side; the cookie carries only an opaque id\n\n\
               ## Testing\n\n- `cargo test login_flow`\n- manual run against the staging IdP\n\n\
               Removes the legacy basic-auth module (see #15 in the tracker)."
            .into(),
        27 => "## Summary\n\nAdds `GET /v2/tenants/{id}/usage` returning request counts, bandwidth and \
               storage per day for the last 90 days, so billing no longer has to query the warehouse.\n\n\
               ## Notes\n\n- aggregates come from the new `usage_daily` table, filled by the nightly job\n\
               - responses are cached for 5 minutes per tenant\n- the endpoint needs the `usage:read` scope\n\n\
               ## Testing\n\n- unit tests for the aggregation\n- `k6` run: p99 38 ms at 200 rps"
            .into(),
        17 => "Adds a token-bucket limiter keyed by API key (default 600 requests/minute, configurable per plan).\n\n\
               Responses over the limit get `429` with `Retry-After`. Limits live in Redis so all replicas share them."
            .into(),
        21 => "Upgrades sqlx from 0.8 to 0.9.\n\n- `query_as!` now needs explicit nullability overrides in two places\n\
               - offline data regenerated with `cargo sqlx prepare`"
            .into(),
        25 => "`GET /teams/{id}` returned 500 when the team did not exist because `fetch_one` errors on no rows. \
               It now uses `fetch_optional` and answers 404 with a problem-details body."
            .into(),
        _ => format!(
            "## Summary\n\n{title}.\n\n## Checklist\n\n- [x] Tests added or updated\n- [x] CHANGELOG entry\n- [ ] Docs updated"
        ),
    }
}

/// A seeded PR comment: (pr, author, text, inline (path, line), reply to the previous comment).
type CommentSeed = (u64, usize, &'static str, Option<(&'static str, u64)>, bool);
const API_COMMENTS: [CommentSeed; 16] = [
    (
        26,
        1,
        "Should the verifier be stored in the session or in a signed cookie? A cookie would survive a restart.",
        None,
        false,
    ),
    (
        26,
        0,
        "Session: the verifier must never reach the browser. Restarts are rare and the login just starts over.",
        None,
        true,
    ),
    (
        26,
        3,
        "`thread_rng` is fine here, but please use `OsRng` to make the intent explicit.",
        Some(("src/auth/pkce.rs", 14)),
        false,
    ),
    (
        26,
        0,
        "Done in the latest push.",
        Some(("src/auth/pkce.rs", 14)),
        true,
    ),
    (
        26,
        1,
        "The callback should reject a `state` older than 10 minutes.",
        Some(("src/routes/login.rs", 41)),
        false,
    ),
    (26, 3, "LGTM once the expiry check lands.", None, false),
    (
        27,
        2,
        "Can we put the 90-day window behind a query parameter? Finance asked for 365.",
        None,
        false,
    ),
    (
        27,
        1,
        "Good idea, I will add `days` with a maximum of 400.",
        None,
        true,
    ),
    (
        25,
        2,
        "Nice catch. Please add a test for the 404 body.",
        None,
        false,
    ),
    (
        23,
        3,
        "Audit rows should include the request id from #16.",
        None,
        false,
    ),
    (
        21,
        1,
        "CI is green; the offline data diff looks right.",
        None,
        false,
    ),
    (
        17,
        3,
        "Please make the bucket size configurable per plan before this goes out.",
        Some(("src/routes/mod.rs", 88)),
        false,
    ),
    (
        17,
        2,
        "Added `RATE_LIMIT_<PLAN>` settings.",
        Some(("src/routes/mod.rs", 88)),
        true,
    ),
    (
        16,
        1,
        "Should we also echo the id in error bodies?",
        None,
        false,
    ),
    (
        18,
        2,
        "The retry loop needs a jitter, otherwise replicas refresh in lockstep.",
        None,
        false,
    ),
    (7, 1, "Cursor format looks good to me.", None, false),
];

fn seed_api(next_comment_id: &mut u64) -> Repo {
    let mut repo = Repo {
        workspace: "acme".into(),
        slug: "api".into(),
        description: "Public REST API of the Acme platform (Rust, axum, Postgres).".into(),
        language: "rust".into(),
        project: ("PLAT".into(), "Platform".into()),
        created_on: "2024-02-12T09:30:41.207318+00:00".into(),
        size: 48_213_554,
        main: "main".into(),
        branches: Vec::new(),
        commits: Vec::new(),
        files: api_files(),
        pull_requests: Vec::new(),
        comments: Vec::new(),
        pipelines: Vec::new(),
        custom_pipelines: vec!["deploy-production".into(), "nightly-e2e".into()],
    };

    // Main history: plain commits every five days, merge commits when merged PRs closed.
    let mut events: Vec<(Minutes, Commit)> = API_COMMITS
        .iter()
        .enumerate()
        .map(|(i, (message, author, files))| {
            let date = at(i as u64 * 5, 10 + (i as u64 % 7), (i as u64 * 23) % 60);
            (
                date,
                Commit {
                    hash: sha(&format!("api-main-{i}")),
                    message: format!("{message}\n"),
                    author: *author,
                    date,
                    parents: Vec::new(),
                    files: files.iter().map(|f| f.to_string()).collect(),
                },
            )
        })
        .collect();
    for (i, (title, branch, state, author, ..)) in API_PULL_REQUESTS.iter().enumerate() {
        let id = i as u64 + 1;
        if *state == "MERGED" {
            let date = pr_updated(id, state);
            events.push((
                date,
                Commit {
                    hash: sha(&format!("api-merge-{id}")),
                    message: format!("Merged in {branch} (pull request #{id})\n\n{title}\n"),
                    author: *author,
                    date,
                    parents: Vec::new(),
                    files: vec!["src/main.rs".into()],
                },
            ));
        }
    }
    events.sort_by_key(|(date, _)| *date);
    let mut main_commits: Vec<Commit> = Vec::new();
    for (_, mut commit) in events {
        if let Some(prev) = main_commits.last() {
            commit.parents.push(prev.hash.clone());
        }
        main_commits.push(commit);
    }
    let main_head_at = |when: Minutes, commits: &[Commit]| -> String {
        commits
            .iter()
            .rev()
            .find(|c| c.date <= when)
            .unwrap_or(&commits[0])
            .hash
            .clone()
    };

    // Pull requests with their source commits.
    let mut pr_commits = Vec::new();
    for (i, (title, branch, state, author, reviewers, approved, draft)) in
        API_PULL_REQUESTS.iter().enumerate()
    {
        let id = i as u64 + 1;
        let created = pr_created(id);
        let updated = pr_updated(id, state);
        let base = main_head_at(created, &main_commits);
        let files = if id == 26 {
            LOGIN_FILES.iter().map(|f| f.to_string()).collect()
        } else {
            small_diff_files(id)
        };
        let first = Commit {
            hash: sha(&format!("api-pr-{id}-1")),
            message: format!("{title}\n"),
            author: *author,
            date: created - 40,
            parents: vec![base.clone()],
            files: files.clone(),
        };
        let second = Commit {
            hash: sha(&format!("api-pr-{id}-2")),
            message: "Address review comments\n".into(),
            author: *author,
            date: (created + 300).min(updated),
            parents: vec![first.hash.clone()],
            files: files[..1].to_vec(),
        };
        let head = second.hash.clone();
        pr_commits.push(first);
        pr_commits.push(second);
        if *state == "OPEN" {
            repo.branches.push(Branch {
                name: branch.to_string(),
                head: head.clone(),
            });
        }

        let mut participants: Vec<Participant> = reviewers
            .iter()
            .map(|&r| Participant {
                user: r,
                role: "REVIEWER",
                approved: approved.contains(&r),
                state: approved.contains(&r).then_some("approved"),
                on: approved.contains(&r).then_some(updated - 60),
            })
            .collect();
        if id == 17 {
            participants[1].state = Some("changes_requested");
            participants[1].on = Some(updated - 60);
        }
        let mut activity = vec![Activity::Update {
            state: "OPEN".into(),
            author: *author,
            date: created,
        }];
        for p in &participants {
            match p.state {
                Some("approved") => activity.push(Activity::Approval {
                    user: p.user,
                    date: p.on.unwrap_or(updated),
                }),
                Some(_) => activity.push(Activity::ChangesRequested {
                    user: p.user,
                    date: p.on.unwrap_or(updated),
                }),
                None => {}
            }
        }
        let closed = *state != "OPEN";
        if closed {
            activity.push(Activity::Update {
                state: state.to_string(),
                author: *author,
                date: updated,
            });
        }
        repo.pull_requests.push(PullRequest {
            id,
            title: title.to_string(),
            description: pr_description(id, title),
            state: state.to_string(),
            draft: *draft,
            author: *author,
            source: branch.to_string(),
            destination: "main".into(),
            source_hash: head,
            destination_hash: base,
            reviewers: reviewers.to_vec(),
            participants,
            close_source_branch: closed,
            merge_commit: (*state == "MERGED").then(|| sha(&format!("api-merge-{id}"))),
            closed_by: closed.then_some(if *state == "MERGED" {
                reviewers[0]
            } else {
                *author
            }),
            reason: if *state == "DECLINED" {
                "Not pursuing this for now.".into()
            } else {
                String::new()
            },
            task_count: (id % 3) as u32,
            created,
            updated,
            activity,
        });
    }

    // Comments, threaded where the seed says so.
    let mut last_id = 0;
    for (k, (pr_id, author, text, inline, reply)) in API_COMMENTS.iter().enumerate() {
        *next_comment_id += 1;
        let id = *next_comment_id;
        let pr = &mut repo.pull_requests[*pr_id as usize - 1];
        let created = (pr.created + 90 + k as u64 * 37).min(pr.updated);
        repo.comments.push(Comment {
            id,
            pr: *pr_id,
            user: *author,
            raw: text.to_string(),
            created,
            inline: inline.map(|(p, l)| (p.to_string(), l)),
            parent: reply.then_some(last_id),
        });
        pr.activity.push(Activity::Comment(id));
        if !pr.participants.iter().any(|p| p.user == *author) && *author != pr.author {
            pr.participants.push(Participant {
                user: *author,
                role: "PARTICIPANT",
                approved: false,
                state: None,
                on: Some(created),
            });
        }
        last_id = id;
    }

    // Branches besides PR sources.
    let main_head = main_commits.last().expect("seeded").hash.clone();
    let release = main_commits
        .iter()
        .rev()
        .find(|c| c.message.starts_with("Release 2.4.0"))
        .expect("seeded")
        .hash
        .clone();
    let export = Commit {
        hash: sha("api-audit-export-1"),
        message: "Export the audit log as CSV\n".into(),
        author: 5,
        date: START - 200,
        parents: vec![main_head.clone()],
        files: vec!["src/routes/admin.rs".into()],
    };
    repo.branches.insert(
        0,
        Branch {
            name: "main".into(),
            head: main_head.clone(),
        },
    );
    repo.branches.insert(
        1,
        Branch {
            name: "release/2.4".into(),
            head: release,
        },
    );
    repo.branches.push(Branch {
        name: "feature/audit-log-export".into(),
        head: export.hash.clone(),
    });
    repo.commits = main_commits;
    repo.commits.extend(pr_commits);
    repo.commits.push(export);

    repo.pipelines = api_pipelines(&repo);
    repo
}

/// A smaller repository: a few commits, one open and one merged PR, two pipelines.
fn seed_small(workspace: &str, slug: &str, description: &str, language: &str) -> Repo {
    let mut commits: Vec<Commit> = Vec::new();
    for (i, message) in [
        "Initial commit",
        "Add CI pipeline",
        "Add README badges",
        "Update dependencies",
        "Fix typo in docs",
    ]
    .iter()
    .enumerate()
    {
        commits.push(Commit {
            hash: sha(&format!("{workspace}-{slug}-main-{i}")),
            message: format!("{message}\n"),
            author: 1 + i % 5,
            date: at(10 + i as u64 * 12, 11, 5 * i as u64),
            parents: commits
                .last()
                .map(|c| vec![c.hash.clone()])
                .unwrap_or_default(),
            files: vec!["README.md".into()],
        });
    }
    let main_head = commits.last().expect("seeded").hash.clone();
    let feature = Commit {
        hash: sha(&format!("{workspace}-{slug}-feature-1")),
        message: "Add dark mode toggle\n".into(),
        author: 2,
        date: at(75, 15, 12),
        parents: vec![main_head.clone()],
        files: vec!["README.md".into()],
    };
    let title = format!("Improve {slug} onboarding docs");
    let pull_requests = vec![
        PullRequest {
            id: 1,
            title: title.clone(),
            description: format!("## Summary\n\n{title}.\n"),
            state: "MERGED".into(),
            draft: false,
            author: 1,
            source: "docs/onboarding".into(),
            destination: "main".into(),
            source_hash: sha(&format!("{workspace}-{slug}-docs-1")),
            destination_hash: commits[2].hash.clone(),
            reviewers: vec![2],
            participants: vec![Participant {
                user: 2,
                role: "REVIEWER",
                approved: true,
                state: Some("approved"),
                on: Some(at(50, 10, 0)),
            }],
            close_source_branch: true,
            merge_commit: Some(commits[3].hash.clone()),
            closed_by: Some(2),
            reason: String::new(),
            task_count: 0,
            created: at(48, 9, 0),
            updated: at(50, 10, 0),
            activity: vec![Activity::Update {
                state: "OPEN".into(),
                author: 1,
                date: at(48, 9, 0),
            }],
        },
        PullRequest {
            id: 2,
            title: "Add dark mode toggle".into(),
            description: "Adds a toggle to the settings page; the choice is kept in local storage."
                .into(),
            state: "OPEN".into(),
            draft: false,
            author: 2,
            source: "feature/dark-mode".into(),
            destination: "main".into(),
            source_hash: feature.hash.clone(),
            destination_hash: main_head.clone(),
            reviewers: vec![0],
            participants: vec![Participant {
                user: 0,
                role: "REVIEWER",
                approved: false,
                state: None,
                on: None,
            }],
            close_source_branch: false,
            merge_commit: None,
            closed_by: None,
            reason: String::new(),
            task_count: 0,
            created: at(75, 15, 20),
            updated: at(76, 9, 45),
            activity: vec![Activity::Update {
                state: "OPEN".into(),
                author: 2,
                date: at(75, 15, 20),
            }],
        },
    ];
    let branches = vec![
        Branch {
            name: "main".into(),
            head: main_head.clone(),
        },
        Branch {
            name: "feature/dark-mode".into(),
            head: feature.hash.clone(),
        },
    ];
    commits.push(feature);
    let mut files = BTreeMap::new();
    files.insert(
        "README.md".to_string(),
        format!(
            "# {workspace}/{slug}\n\n{description}\n\n## Development\n\nSee `CONTRIBUTING.md`.\n"
        ),
    );
    let pipelines = (0..2)
        .map(|n| {
            let build_number = 41 + n;
            let created = at(70 + n * 5, 14, 2);
            Pipeline {
                uuid: uuid(&format!("pipeline-{workspace}-{slug}-{build_number}")),
                build_number,
                branch: Some("main".into()),
                commit: main_head.clone(),
                custom: None,
                manual: false,
                creator: 1,
                created,
                completed: Some(created + 4),
                state: "COMPLETED",
                result: Some("SUCCESSFUL"),
                steps: vec![Step {
                    uuid: uuid(&format!("step-{workspace}-{slug}-{build_number}-0")),
                    name: "Build and test".into(),
                    state: "COMPLETED",
                    result: Some("SUCCESSFUL"),
                    started: Some(created),
                    completed: Some(created + 4),
                    script: vec!["make test".into()],
                    manual: false,
                }],
                variables: Vec::new(),
                live: None,
            }
        })
        .collect();
    Repo {
        workspace: workspace.into(),
        slug: slug.into(),
        description: description.into(),
        language: language.into(),
        project: ("APP".into(), "Applications".into()),
        created_on: "2025-05-06T08:14:59.551203+00:00".into(),
        size: 3_120_448,
        main: "main".into(),
        branches,
        commits,
        files,
        pull_requests,
        comments: Vec::new(),
        pipelines,
        custom_pipelines: Vec::new(),
    }
}

/// Pipelines #301–#315 of `acme/api`: mostly green on `main`, two failures, one stopped, a custom
/// deployment, and #315 still running.
fn api_pipelines(repo: &Repo) -> Vec<Pipeline> {
    let head_of = |branch: &str| {
        repo.branches
            .iter()
            .find(|b| b.name == branch)
            .map(|b| b.head.clone())
            .unwrap_or_default()
    };
    (0..15u64)
        .map(|n| {
            let build_number = 301 + n;
            let branch = match n {
                3 | 8 => "feature/login",
                5 => "fix/token-refresh",
                _ => "main",
            };
            let custom = (n == 12).then(|| "deploy-production".to_string());
            let result = match n {
                3 | 8 => Some("FAILED"),
                10 => Some("STOPPED"),
                14 => None,
                _ => Some("SUCCESSFUL"),
            };
            let created = at(68 + n, 9 + n % 3, (n * 11) % 60);
            let names: Vec<&str> = if custom.is_some() {
                vec!["Build", "Deploy to production"]
            } else if branch == "main" {
                vec!["Build", "Test", "Deploy to staging"]
            } else {
                vec!["Build", "Test"]
            };
            let failing = names
                .iter()
                .position(|s| *s == "Test")
                .unwrap_or(names.len() - 1);
            let steps = names
                .iter()
                .enumerate()
                .map(|(k, name)| {
                    let started = created + 1 + k as u64 * 4;
                    let (state, step_result) = match result {
                        None if k == 0 => ("COMPLETED", Some("SUCCESSFUL")),
                        None if k == 1 => ("IN_PROGRESS", None),
                        None => ("PENDING", None),
                        Some("FAILED") | Some("STOPPED") if k == failing => ("COMPLETED", result),
                        Some("FAILED") | Some("STOPPED") if k > failing => {
                            ("COMPLETED", Some("NOT_RUN"))
                        }
                        _ => ("COMPLETED", Some("SUCCESSFUL")),
                    };
                    let ran = state != "PENDING" && step_result != Some("NOT_RUN");
                    Step {
                        uuid: uuid(&format!("step-acme-api-{build_number}-{k}")),
                        name: name.to_string(),
                        state,
                        result: step_result,
                        started: ran.then_some(started),
                        completed: (state == "COMPLETED" && ran).then_some(started + 3),
                        script: step_script(name),
                        manual: is_manual(name),
                    }
                })
                .collect::<Vec<_>>();
            let completed = result.map(|_| {
                steps
                    .iter()
                    .filter_map(|s| s.completed)
                    .max()
                    .unwrap_or(created + 1)
            });
            Pipeline {
                uuid: uuid(&format!("pipeline-acme-api-{build_number}")),
                build_number,
                branch: Some(branch.to_string()),
                commit: head_of(branch),
                custom,
                manual: n == 12,
                creator: if n == 12 { 0 } else { 1 + (n as usize % 5) },
                created,
                completed,
                state: if result.is_some() {
                    "COMPLETED"
                } else {
                    "IN_PROGRESS"
                },
                result,
                steps,
                variables: Vec::new(),
                live: None,
            }
        })
        .collect()
}

/// Whether a step has `trigger: manual` in the repository's bitbucket-pipelines.yml.
fn is_manual(name: &str) -> bool {
    name == "Deploy to production"
}

fn step_script(name: &str) -> Vec<String> {
    match name {
        "Build" => vec!["cargo build --locked --release".into()],
        "Test" => vec!["cargo test --locked".into()],
        "Build and test" => vec!["make test".into()],
        _ => vec![
            "pipe: atlassian/aws-ecs-deploy:1.12.1".into(),
            format!(
                "./scripts/smoke-test.sh {}",
                if name.contains("production") {
                    "production"
                } else {
                    "staging"
                }
            ),
        ],
    }
}

// ---------------------------------------------------------------------------------------------------
// Objects as Bitbucket renders them
// ---------------------------------------------------------------------------------------------------

impl Pipeline {
    /// Sets states, results and times to where the pipeline is at `now_ms` on the run clock (which reads
    /// 0 at Unix time `epoch_ms`); true when a state changed.
    fn progress(&mut self, now_ms: u64, epoch_ms: Time) -> bool {
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
    fn paused(&self) -> bool {
        self.state == "IN_PROGRESS"
            && !self.steps.iter().any(|s| s.state == "IN_PROGRESS")
            && self
                .steps
                .iter()
                .find(|s| s.state == "PENDING")
                .is_some_and(|s| s.manual)
    }

    /// The latest time a step of the pipeline started or completed at (its creation if none did).
    fn latest(&self) -> Time {
        self.steps
            .iter()
            .flat_map(|s| [s.started, s.completed])
            .flatten()
            .max()
            .unwrap_or(self.created)
    }
}

impl Repo {
    fn full_name(&self) -> String {
        format!("{}/{}", self.workspace, self.slug)
    }

    fn uuid(&self) -> String {
        uuid(&format!("repo-{}", self.full_name()))
    }

    fn api(&self) -> String {
        format!("{API}/repositories/{}", self.full_name())
    }

    fn web(&self) -> String {
        format!("{WEB}/{}", self.full_name())
    }

    /// The condensed repository embedded in other objects.
    fn reference(&self) -> Value {
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

    fn json(&self) -> Value {
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

    fn commit(&self, hash: &str) -> Option<&Commit> {
        self.commits.iter().find(|c| c.hash == hash)
    }

    /// A branch name (exact) or a hash of at least 7 characters.
    fn resolve(&self, revision: &str) -> Option<&Commit> {
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
    fn commit_ref(&self, hash: &str, short: bool) -> Value {
        let shown = if short { &hash[..12] } else { hash };
        json!({
            "type": "commit",
            "hash": shown,
            "links": links(&[("self", format!("{}/commit/{shown}", self.api())), ("html", format!("{}/commits/{shown}", self.web()))]),
        })
    }

    fn commit_json(&self, c: &Commit) -> Value {
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

    fn branch_json(&self, b: &Branch) -> Value {
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

    fn pr_links(&self, id: u64) -> Value {
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

    fn pr_endpoint(&self, branch: &str, hash: &str) -> Value {
        json!({
            "branch": {"name": branch, "links": {}, "sync_strategies": ["merge_commit", "rebase"]},
            "commit": self.commit_ref(hash, true),
            "repository": self.reference(),
        })
    }

    fn participant_json(&self, p: &Participant) -> Value {
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
    fn pull_request_json(&self, pr: &PullRequest, full: bool) -> Value {
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
    fn pr_reference(&self, pr: &PullRequest) -> Value {
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

    fn comment_json(&self, c: &Comment) -> Value {
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

    fn activity_json(&self, pr: &PullRequest, entry: &Activity) -> Value {
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

    fn activity_date(&self, entry: &Activity) -> Time {
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

    fn pipeline_json(&self, p: &Pipeline) -> Value {
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

    fn step_json(&self, p: &Pipeline, s: &Step) -> Value {
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

const MERGE_STRATEGIES: [&str; 6] = [
    "merge_commit",
    "squash",
    "fast_forward",
    "squash_fast_forward",
    "rebase_fast_forward",
    "rebase_merge",
];

/// `state` of a pipeline or step: `pipeline_state_completed` + `result`, and so on.
fn pipeline_state(state: &str, result: Option<&str>, step: bool) -> Value {
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

// ---------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------

fn not_found(message: &str) -> Response {
    super::error(Which::Bitbucket, StatusCode::NOT_FOUND, message)
}

fn bad_request(message: &str) -> Response {
    super::error(Which::Bitbucket, StatusCode::BAD_REQUEST, message)
}

/// A validation error naming the field, as POST/PUT answer: `{message: "field: …", fields: {field: […]}}`.
fn field_error(field: &str, message: &str) -> Response {
    let body = json!({
        "type": "error",
        "error": {"message": format!("{field}: {message}"), "fields": {field: [message]}}
    });
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

fn json_body(bytes: &Bytes) -> Result<Value, Response> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(bad_request("Bad request: the body must be a JSON object")),
        Err(e) => Err(bad_request(&format!("Bad request: malformed JSON ({e})"))),
    }
}

fn ok(value: Value) -> Reply {
    Ok(axum::Json(value).into_response())
}

fn created(value: Value) -> Reply {
    Ok((StatusCode::CREATED, axum::Json(value)).into_response())
}

fn no_content() -> Reply {
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn found(location: String) -> Reply {
    Ok((StatusCode::FOUND, [(header::LOCATION, location)]).into_response())
}

// ---------------------------------------------------------------------------------------------------
// BBQL (`q`) and `sort`: enough of Bitbucket's query language for agents' everyday filters
// ---------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Field(String),
    Literal(Value),
    Op(&'static str),
    And,
    Or,
    Open,
    Close,
}

#[derive(Debug)]
enum Expr {
    Compare(String, &'static str, Value),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

fn tokenize(q: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = q.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' || c == ')' {
            tokens.push(if c == '(' { Token::Open } else { Token::Close });
            i += 1;
        } else if c == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated string".into()),
                    Some('"') => break,
                    Some('\\') => {
                        s.extend(chars.get(i + 1));
                        i += 2;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            i += 1;
            tokens.push(Token::Literal(Value::String(s)));
        } else if let Some(op) = ["!=", "!~", ">=", "<=", "=", "~", ">", "<"]
            .into_iter()
            .find(|op| chars[i..].iter().take(op.len()).collect::<String>() == *op)
        {
            tokens.push(Token::Op(op));
            i += op.len();
        } else if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || "_-.:+".contains(chars[i]))
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            tokens.push(match word.as_str() {
                "AND" | "and" => Token::And,
                "OR" | "or" => Token::Or,
                "null" => Token::Literal(Value::Null),
                "true" => Token::Literal(json!(true)),
                "false" => Token::Literal(json!(false)),
                _ => match word.parse::<f64>() {
                    Ok(n) => Token::Literal(json!(n)),
                    // Unquoted datetimes compare as text, which orders ISO-8601 correctly.
                    Err(_) if word.starts_with(|c: char| c.is_ascii_digit()) => {
                        Token::Literal(json!(word))
                    }
                    Err(_) => Token::Field(word),
                },
            });
        } else {
            return Err(format!("unexpected character '{c}'"));
        }
    }
    Ok(tokens)
}

struct BbqlParser {
    tokens: Vec<Token>,
    at: usize,
}

impl BbqlParser {
    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.peek() == Some(&Token::Or) {
            self.at += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.primary()?;
        while self.peek() == Some(&Token::And) {
            self.at += 1;
            left = Expr::And(Box::new(left), Box::new(self.primary()?));
        }
        Ok(left)
    }

    fn primary(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Token::Open) => {
                let inner = self.or()?;
                match self.next() {
                    Some(Token::Close) => Ok(inner),
                    _ => Err("expected ')'".into()),
                }
            }
            Some(Token::Field(field)) => match (self.next(), self.next()) {
                (Some(Token::Op(op)), Some(Token::Literal(value))) => {
                    Ok(Expr::Compare(field, op, value))
                }
                _ => Err(format!("expected an operator and a value after '{field}'")),
            },
            Some(other) => Err(format!("unexpected {other:?}")),
            None => Err("unexpected end of query".into()),
        }
    }
}

fn parse_bbql(q: &str) -> Result<Expr, String> {
    let mut parser = BbqlParser {
        tokens: tokenize(q)?,
        at: 0,
    };
    let expr = parser.or()?;
    if parser.at < parser.tokens.len() {
        return Err("unexpected text after the expression".into());
    }
    Ok(expr)
}

/// Every value at a dot path, fanning out over arrays (`reviewers.uuid`).
fn values_at<'a>(value: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut current = vec![value];
    for key in path.split('.') {
        let mut next = Vec::new();
        for v in current {
            match v.get(key) {
                Some(Value::Array(items)) => next.extend(items.iter()),
                Some(found) => next.push(found),
                None => {}
            }
        }
        current = next;
    }
    current
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn matches(expr: &Expr, item: &Value) -> bool {
    match expr {
        Expr::And(a, b) => matches(a, item) && matches(b, item),
        Expr::Or(a, b) => matches(a, item) || matches(b, item),
        Expr::Compare(field, op, wanted) => {
            let found: Vec<&Value> = values_at(item, field)
                .into_iter()
                .filter(|v| !v.is_null())
                .collect();
            let contains = |v: &Value| match (v.as_str(), wanted.as_str()) {
                (Some(s), Some(w)) => s.to_lowercase().contains(&w.to_lowercase()),
                _ => false,
            };
            let equal = |v: &Value| compare(v, wanted) == Some(Ordering::Equal);
            match *op {
                "=" if wanted.is_null() => found.is_empty(),
                "!=" if wanted.is_null() => !found.is_empty(),
                "=" => found.iter().any(|v| equal(v)),
                "!=" => !found.iter().any(|v| equal(v)),
                "~" => found.iter().any(|v| contains(v)),
                "!~" => !found.iter().any(|v| contains(v)),
                ">" => found
                    .iter()
                    .any(|v| compare(v, wanted) == Some(Ordering::Greater)),
                "<" => found
                    .iter()
                    .any(|v| compare(v, wanted) == Some(Ordering::Less)),
                ">=" => found.iter().any(|v| {
                    matches!(
                        compare(v, wanted),
                        Some(Ordering::Greater | Ordering::Equal)
                    )
                }),
                _ => found
                    .iter()
                    .any(|v| matches!(compare(v, wanted), Some(Ordering::Less | Ordering::Equal))),
            }
        }
    }
}

fn fields_of<'a>(expr: &'a Expr, out: &mut Vec<&'a str>) {
    match expr {
        Expr::Compare(field, ..) => out.push(field),
        Expr::And(a, b) | Expr::Or(a, b) => {
            fields_of(a, out);
            fields_of(b, out);
        }
    }
}

/// A field is known when some item has its first segment (Bitbucket checks against the schema).
fn known_field(items: &[Value], path: &str) -> bool {
    let root = path.split('.').next().unwrap_or(path);
    items.is_empty() || items.iter().any(|i| i.get(root).is_some())
}

/// Applies `q` and `sort` from the query string.
fn filter_and_sort(mut items: Vec<Value>, query: &super::Query) -> Result<Vec<Value>, Response> {
    if let Some(q) = param(query, "q").filter(|q| !q.trim().is_empty()) {
        let expr = parse_bbql(q).map_err(|e| bad_request(&format!("Invalid query: {e}")))?;
        let mut fields = Vec::new();
        fields_of(&expr, &mut fields);
        if let Some(unknown) = fields.iter().find(|f| !known_field(&items, f)) {
            return Err(bad_request(&format!("Invalid field name: '{unknown}'")));
        }
        items.retain(|i| matches(&expr, i));
    }
    if let Some(sort) = param(query, "sort").filter(|s| !s.is_empty()) {
        let (descending, field) = match sort.strip_prefix('-') {
            Some(f) => (true, f),
            None => (false, sort),
        };
        if !known_field(&items, field) {
            return Err(bad_request(&format!("Invalid sort field: '{field}'")));
        }
        items.sort_by(|a, b| {
            let (x, y) = (
                values_at(a, field).first().copied(),
                values_at(b, field).first().copied(),
            );
            let order = match (x, y) {
                (Some(x), Some(y)) => compare(x, y).unwrap_or(Ordering::Equal),
                (Some(_), None) => Ordering::Greater,
                (None, Some(_)) => Ordering::Less,
                (None, None) => Ordering::Equal,
            };
            if descending { order.reverse() } else { order }
        });
    }
    Ok(items)
}

/// One page of a collection after `q` and `sort`.
fn page(
    state: &SimState,
    uri: &axum::http::Uri,
    query: &super::Query,
    items: Vec<Value>,
    max: usize,
) -> Reply {
    let items = filter_and_sort(items, query)?;
    ok(bitbucket_page(state, uri, query, items, max)?)
}

// ---------------------------------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------------------------------

pub fn router() -> Router<Arc<SimState>> {
    const R: &str = "/repositories/{workspace}/{repo_slug}";
    const PR: &str = "/repositories/{workspace}/{repo_slug}/pullrequests/{id}";
    const PIPE: &str = "/repositories/{workspace}/{repo_slug}/pipelines/{pipeline}";
    Router::new()
        .route("/user", get(get_user))
        .route("/user/workspaces", get(list_workspaces))
        .route("/repositories/{workspace}", get(list_repositories))
        .route(R, get(get_repository))
        .route(
            &format!("{R}/refs/branches"),
            get(list_branches).post(create_branch),
        )
        .route(&format!("{R}/refs/branches/{{name}}"), get(get_branch))
        .route(&format!("{R}/commits"), get(list_commits))
        .route(&format!("{R}/commit/{{commit}}"), get(get_commit))
        .route(&format!("{R}/src/{{commit}}/{{*path}}"), get(get_src))
        .route(&format!("{R}/diff/{{*spec}}"), get(get_diff))
        .route(&format!("{R}/diffstat/{{*spec}}"), get(get_diffstat))
        .route(
            &format!("{R}/pullrequests"),
            get(list_pull_requests).post(create_pull_request),
        )
        .route(PR, get(get_pull_request).put(update_pull_request))
        .route(&format!("{PR}/diff"), get(pull_request_diff))
        .route(&format!("{PR}/diffstat"), get(pull_request_diffstat))
        .route(
            &format!("{PR}/comments"),
            get(list_comments).post(add_comment),
        )
        .route(&format!("{PR}/activity"), get(list_activity))
        .route(&format!("{PR}/approve"), post(approve).delete(unapprove))
        .route(
            &format!("{PR}/request-changes"),
            post(request_changes).delete(remove_change_request),
        )
        .route(&format!("{PR}/merge"), post(merge))
        .route(
            &format!("{PR}/merge/task-status/{{task}}"),
            get(merge_task_status),
        )
        .route(&format!("{PR}/decline"), post(decline))
        .route(
            &format!("{R}/pipelines"),
            get(list_pipelines).post(run_pipeline),
        )
        .route(PIPE, get(get_pipeline))
        .route(&format!("{PIPE}/stopPipeline"), post(stop_pipeline))
        .route(&format!("{PIPE}/steps"), get(list_steps))
        .route(&format!("{PIPE}/steps/{{step}}"), get(get_step))
        .route(&format!("{PIPE}/steps/{{step}}/log"), get(get_step_log))
        .fallback(no_api_here)
}

/// What Bitbucket answers for a path it does not host (an unknown or removed endpoint).
async fn no_api_here() -> Response {
    let body = json!({"type": "error", "error": {
        "message": "Resource not found",
        "detail": "There is no API hosted at this URL.\n\nFor information about our API's, please refer to the documentation at: https://developer.atlassian.com/bitbucket/api/2/reference/",
    }});
    (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

type St = State<Arc<SimState>>;
type Uri = OriginalUri;
type Q = Query<super::Query>;
type RepoPath = Path<(String, String)>;
type ItemPath = Path<(String, String, String)>;

// --- account ---------------------------------------------------------------------------------------

/// The account the credential belongs to.
async fn get_user(Extension(account): Extension<Account>) -> Reply {
    ok(full_user(account.bitbucket_person()))
}

/// The workspaces the credential's account is a member of.
async fn list_workspaces(
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

async fn list_repositories(
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

async fn get_repository(State(state): St, Path((w, r)): RepoPath) -> Reply {
    ok(lock(&state.bitbucket).repo(&w, &r)?.json())
}

async fn list_branches(
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

async fn get_branch(State(state): St, Path((w, r, name)): ItemPath) -> Reply {
    let data = lock(&state.bitbucket);
    let repo = data.repo(&w, &r)?;
    match repo.branches.iter().find(|b| b.name == name) {
        Some(b) => ok(repo.branch_json(b)),
        None => Err(not_found(&format!("Branch \"{name}\" not found"))),
    }
}

async fn create_branch(State(state): St, Path((w, r)): RepoPath, body: Bytes) -> Reply {
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

async fn list_commits(
    State(state): St,
    OriginalUri(uri): Uri,
    Path((w, r)): RepoPath,
    Query(query): Q,
) -> Reply {
    let items = {
        let data = lock(&state.bitbucket);
        let repo = data.repo(&w, &r)?;
        let refs = |key: &str| -> Result<Vec<String>, Response> {
            query
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| {
                    repo.resolve(v)
                        .map(|c| c.hash.clone())
                        .ok_or_else(|| not_found(&format!("Commit not found: {v}")))
                })
                .collect()
        };
        let mut heads = refs("include")?;
        if heads.is_empty() {
            heads = repo.branches.iter().map(|b| b.head.clone()).collect();
        }
        let excluded = reachable(repo, refs("exclude")?);
        let mut commits: Vec<&Commit> = reachable(repo, heads)
            .iter()
            .filter(|h| !excluded.contains(*h))
            .filter_map(|h| repo.commit(h))
            .collect();
        if let Some(path) = param(&query, "path") {
            let dir = format!("{}/", path.trim_end_matches('/'));
            commits.retain(|c| c.files.iter().any(|f| f == path || f.starts_with(&dir)));
        }
        commits.sort_by(|a, b| b.date.cmp(&a.date).then(a.hash.cmp(&b.hash)));
        commits.into_iter().map(|c| repo.commit_json(c)).collect()
    };
    page(&state, &uri, &query, items, 100)
}

/// Every commit reachable from `heads`.
fn reachable(repo: &Repo, heads: Vec<String>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = heads;
    while let Some(h) = stack.pop() {
        if seen.insert(h.clone())
            && let Some(c) = repo.commit(&h)
        {
            stack.extend(c.parents.iter().cloned());
        }
    }
    seen
}

async fn get_commit(State(state): St, Path((w, r, commit)): ItemPath) -> Reply {
    let data = lock(&state.bitbucket);
    let repo = data.repo(&w, &r)?;
    let c = repo
        .resolve(&commit)
        .ok_or_else(|| not_found(&format!("Commit not found: {commit}")))?;
    ok(repo.commit_json(c))
}

async fn get_src(
    State(state): St,
    OriginalUri(uri): Uri,
    Path((w, r, commit, path)): Path<(String, String, String, String)>,
    Query(query): Q,
) -> Reply {
    // A decoded `%2F` makes `feature/login` look like ref `feature` and a path under `login/`: Bitbucket
    // reads it the same way, which is why callers resolve such branches to a hash first.
    let (revision, path) = match commit.split_once('/') {
        Some((rev, rest)) => (rev.to_string(), format!("{rest}/{path}")),
        None => (commit, path),
    };
    let path = path.trim_end_matches('/').to_string();
    let items = {
        let data = lock(&state.bitbucket);
        let repo = data.repo(&w, &r)?;
        let c = repo
            .resolve(&revision)
            .ok_or_else(|| not_found(&format!("Commit not found: {revision}")))?;
        if let Some(content) = repo.files.get(&path) {
            return Ok(super::text(content.clone()));
        }
        let dir = format!("{path}/");
        let mut entries: BTreeMap<String, Value> = BTreeMap::new();
        for (file, content) in repo
            .files
            .range(dir.clone()..)
            .take_while(|(f, _)| f.starts_with(&dir))
        {
            let rest = &file[dir.len()..];
            let commit = repo.commit_ref(&c.hash, false);
            let entry = match rest.split_once('/') {
                Some((sub, _)) => {
                    let p = format!("{dir}{sub}");
                    json!({"type": "commit_directory", "path": p, "commit": commit,
                           "links": links(&[("self", format!("{}/src/{}/{p}/", repo.api(), c.hash)), ("meta", format!("{}/src/{}/{p}/?format=meta", repo.api(), c.hash))])})
                }
                None => {
                    json!({"type": "commit_file", "path": file, "commit": commit, "attributes": [], "escaped_path": file,
                               "size": content.len(), "mimetype": null,
                               "links": links(&[("self", format!("{}/src/{}/{file}", repo.api(), c.hash)), ("meta", format!("{}/src/{}/{file}?format=meta", repo.api(), c.hash)), ("history", format!("{}/filehistory/{}/{file}", repo.api(), c.hash))])})
                }
            };
            entries
                .entry(entry["path"].as_str().unwrap_or_default().to_string())
                .or_insert(entry);
        }
        if entries.is_empty() {
            return Err(not_found(&format!("No such file or directory: {path}")));
        }
        entries.into_values().collect()
    };
    page(&state, &uri, &query, items, 100)
}

/// The diff between a spec's two commits: `w/r:src%0Ddst` (PR redirects), `src..dst`, or one hash.
fn diff_for(repo: &Repo, spec: &str) -> Result<String, Response> {
    let spec = spec.rsplit_once(':').map(|(_, s)| s).unwrap_or(spec);
    let source = spec.split(['\r', '\n']).next().unwrap_or(spec);
    let source = source.split_once("..").map(|(a, _)| a).unwrap_or(source);
    if source.len() < 7 {
        return Err(not_found(&format!("Commit not found: {source}")));
    }
    if let Some(pr) = repo
        .pull_requests
        .iter()
        .find(|p| p.source_hash.starts_with(source))
    {
        return Ok(pr_diff(repo, pr));
    }
    let commit = repo
        .resolve(source)
        .ok_or_else(|| not_found(&format!("Commit not found: {source}")))?;
    Ok(small_diff(
        &commit.hash,
        commit.message.lines().next().unwrap_or_default(),
        &commit.files,
    ))
}

async fn get_diff(State(state): St, Path((w, r, spec)): ItemPath) -> Reply {
    let data = lock(&state.bitbucket);
    let repo = data.repo(&w, &r)?;
    Ok(super::text(diff_for(repo, &spec)?))
}

async fn get_diffstat(
    State(state): St,
    OriginalUri(uri): Uri,
    Path((w, r, spec)): ItemPath,
    Query(mut query): Q,
) -> Reply {
    let items = {
        let data = lock(&state.bitbucket);
        let repo = data.repo(&w, &r)?;
        let diff = diff_for(repo, &spec)?;
        diffstat(&diff)
            .into_iter()
            .map(|f| {
                let side = |p: Option<String>| {
                    p.map(|p| json!({"path": p, "type": "commit_file", "escaped_path": p,
                                     "links": links(&[("self", format!("{}/src/{}/{p}", repo.api(), &spec))])}))
                };
                json!({"type": "diffstat", "lines_added": f.added, "lines_removed": f.removed,
                       "status": f.status, "old": side(f.old), "new": side(f.new)})
            })
            .collect()
    };
    if param(&query, "pagelen").is_none() {
        query.push(("pagelen".into(), "500".into()));
    }
    page(&state, &uri, &query, items, 500)
}

/// One file of a diffstat.
struct FileStat {
    /// `added`, `removed`, `modified` or `renamed`.
    status: &'static str,
    old: Option<String>,
    new: Option<String>,
    added: u64,
    removed: u64,
}

/// Parses a unified diff into per-file line counts.
fn diffstat(diff: &str) -> Vec<FileStat> {
    let mut out: Vec<FileStat> = Vec::new();
    for line in diff.lines() {
        if let Some(rest) = line.strip_prefix("diff --git a/") {
            let (old, new) = rest.split_once(" b/").unwrap_or((rest, rest));
            out.push(FileStat {
                status: "modified",
                old: Some(old.to_string()),
                new: Some(new.to_string()),
                added: 0,
                removed: 0,
            });
            continue;
        }
        let Some(last) = out.last_mut() else { continue };
        if line.starts_with("new file mode") {
            (last.status, last.old) = ("added", None);
        } else if line.starts_with("deleted file mode") {
            (last.status, last.new) = ("removed", None);
        } else if line.starts_with("rename from") {
            last.status = "renamed";
        } else if line.starts_with('+') && !line.starts_with("+++") {
            last.added += 1;
        } else if line.starts_with('-') && !line.starts_with("---") {
            last.removed += 1;
        }
    }
    out
}

// --- pull requests ---------------------------------------------------------------------------------

const PR_STATES: [&str; 4] = ["OPEN", "MERGED", "DECLINED", "SUPERSEDED"];

fn pr_index(repo: &Repo, id: &str) -> Result<usize, Response> {
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

fn require_open(pr: &PullRequest, action: &str) -> Result<(), Response> {
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
fn parse_reviewers(body: &Value, author: usize) -> Result<Vec<usize>, Response> {
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

async fn list_pull_requests(
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

async fn get_pull_request(State(state): St, Path((w, r, id)): ItemPath) -> Reply {
    let data = lock(&state.bitbucket);
    let repo = data.repo(&w, &r)?;
    ok(repo.pull_request_json(&repo.pull_requests[pr_index(repo, &id)?], true))
}

async fn create_pull_request(
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
async fn update_pull_request(
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
fn redirect_to(
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

async fn pull_request_diff(State(state): St, Path((w, r, id)): ItemPath) -> Reply {
    redirect_to(&state, &w, &r, &id, "diff", None)
}

async fn pull_request_diffstat(
    State(state): St,
    OriginalUri(uri): Uri,
    Path((w, r, id)): ItemPath,
) -> Reply {
    redirect_to(&state, &w, &r, &id, "diffstat", uri.query())
}

async fn list_comments(
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

async fn add_comment(
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

async fn list_activity(
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

/// Sets the review state of the caller (`me`, the token's person) on an open PR and returns the
/// participant.
fn review(state: &SimState, me: usize, w: &str, r: &str, id: &str, approve: bool) -> Reply {
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
fn withdraw(state: &SimState, me: usize, w: &str, r: &str, id: &str, approval: bool) -> Reply {
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

async fn approve(
    State(state): St,
    Path((w, r, id)): ItemPath,
    Extension(caller): Extension<Account>,
) -> Reply {
    review(&state, caller.bitbucket_person(), &w, &r, &id, true)
}

async fn unapprove(
    State(state): St,
    Path((w, r, id)): ItemPath,
    Extension(caller): Extension<Account>,
) -> Reply {
    withdraw(&state, caller.bitbucket_person(), &w, &r, &id, true)
}

async fn request_changes(
    State(state): St,
    Path((w, r, id)): ItemPath,
    Extension(caller): Extension<Account>,
) -> Reply {
    review(&state, caller.bitbucket_person(), &w, &r, &id, false)
}

async fn remove_change_request(
    State(state): St,
    Path((w, r, id)): ItemPath,
    Extension(caller): Extension<Account>,
) -> Reply {
    withdraw(&state, caller.bitbucket_person(), &w, &r, &id, false)
}

/// Merges now (200 with the pull request), or, when the sim's merges take time
/// ([`SimState::set_merge_ms`]) or the caller asked `async=true`, answers 202 with a `Location` to the
/// task's status and no body, as Bitbucket does when a merge outlasts its wait.
async fn merge(
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
            .map_err(|(status, message)| super::error(Which::Bitbucket, status, &message));
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
fn merge_now(
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
async fn merge_task_status(
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
        Some(Err((status, message))) => Err(super::error(Which::Bitbucket, *status, message)),
    }
}

async fn decline(
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

// --- pipelines -------------------------------------------------------------------------------------

/// Pipeline and step UUIDs keep their braces and must be percent-encoded; raw braces are refused.
fn check_encoded(uri: &axum::http::Uri) -> Result<(), Response> {
    if uri.path().contains(['{', '}']) {
        return Err(bad_request(
            "Invalid UUID in the path: percent-encode the braces (%7B…%7D).",
        ));
    }
    Ok(())
}

fn same_uuid(stored: &str, given: &str) -> bool {
    stored == given || stored.trim_start_matches('{').trim_end_matches('}') == given
}

fn pipeline_index(repo: &Repo, uuid: &str) -> Result<usize, Response> {
    repo.pipelines
        .iter()
        .position(|p| same_uuid(&p.uuid, uuid))
        .ok_or_else(|| {
            not_found(&format!(
                "No pipeline with UUID {uuid} in {}",
                repo.full_name()
            ))
        })
}

async fn list_pipelines(
    State(state): St,
    OriginalUri(uri): Uri,
    Path((w, r)): RepoPath,
    Query(query): Q,
) -> Reply {
    let items: Vec<Value> = {
        let data = lock(&state.bitbucket);
        let repo = data.repo(&w, &r)?;
        let branch = param(&query, "target.branch").or(param(&query, "target.ref_name"));
        repo.pipelines
            .iter()
            .filter(|p| branch.is_none_or(|b| p.branch.as_deref() == Some(b)))
            .map(|p| repo.pipeline_json(p))
            .collect()
    };
    // The pipelines list has its own parameters and ignores BBQL; only `sort` applies.
    let sort: super::Query = query.iter().filter(|(k, _)| k == "sort").cloned().collect();
    if let Some(field) = param(&sort, "sort").map(|s| s.trim_start_matches('-'))
        && !["created_on", "creator.uuid", "run_creation_date"].contains(&field)
    {
        return Err(bad_request(&format!("Invalid sort field: '{field}'")));
    }
    let items = filter_and_sort(items, &sort)?;
    let mut page = bitbucket_page(&state, &uri, &query, items, 100)?;
    // As reported of the real list (BCLOUD-20639): `page`, `pagelen` and `size`, but no `next`.
    if let Some(fields) = page.as_object_mut() {
        fields.remove("next");
    }
    ok(page)
}

async fn get_pipeline(
    State(state): St,
    OriginalUri(uri): Uri,
    Path((w, r, uuid)): ItemPath,
) -> Reply {
    check_encoded(&uri)?;
    let data = lock(&state.bitbucket);
    let repo = data.repo(&w, &r)?;
    ok(repo.pipeline_json(&repo.pipelines[pipeline_index(repo, &uuid)?]))
}

async fn run_pipeline(
    State(state): St,
    Path((w, r)): RepoPath,
    Extension(caller): Extension<Account>,
    body: Bytes,
) -> Reply {
    let me = caller.bitbucket_person();
    let body = json_body(&body)?;
    let target = body
        .get("target")
        .filter(|t| t.is_object())
        .ok_or_else(|| field_error("target", "This field is required."))?;
    let mut data = lock(&state.bitbucket);
    let now = data.tick(state.now_ms());
    let repo = data.repo_mut(&w, &r)?;
    let commit_hash = match target["commit"]["hash"].as_str() {
        Some(h) => Some(
            repo.resolve(h)
                .ok_or_else(|| bad_request(&format!("Commit \"{h}\" not found.")))?
                .hash
                .clone(),
        ),
        None => None,
    };
    let (branch, commit) = match target["type"].as_str() {
        Some("pipeline_ref_target") => {
            let name = target["ref_name"]
                .as_str()
                .ok_or_else(|| field_error("target.ref_name", "This field is required."))?;
            if target["ref_type"].as_str().is_some_and(|t| t != "branch") {
                return Err(field_error(
                    "target.ref_type",
                    "Only branch refs exist in this repository.",
                ));
            }
            let head = repo
                .branches
                .iter()
                .find(|b| b.name == name)
                .map(|b| b.head.clone())
                .ok_or_else(|| bad_request(&format!("Branch \"{name}\" not found.")))?;
            (Some(name.to_string()), commit_hash.unwrap_or(head))
        }
        // Documented only with a selector naming the pipeline definition: a commit alone names none.
        Some("pipeline_commit_target") if !target["selector"].is_object() => {
            return Err(field_error(
                "target.selector",
                "A commit target needs a selector naming the pipeline to run.",
            ));
        }
        Some("pipeline_commit_target") => (
            None,
            commit_hash.ok_or_else(|| field_error("target.commit", "This field is required."))?,
        ),
        _ => {
            return Err(field_error(
                "target.type",
                "Must be pipeline_ref_target or pipeline_commit_target.",
            ));
        }
    };
    let custom = match target["selector"]["type"].as_str() {
        Some("custom") => {
            let name = target["selector"]["pattern"].as_str().unwrap_or_default();
            if !repo.custom_pipelines.iter().any(|c| c == name) {
                return Err(bad_request(&format!(
                    "No custom pipeline named \"{name}\" in bitbucket-pipelines.yml (available: {}).",
                    repo.custom_pipelines.join(", ")
                )));
            }
            Some(name.to_string())
        }
        _ => None,
    };
    let variables = match body.get("variables").filter(|v| !v.is_null()) {
        None => Vec::new(),
        Some(v) => {
            let list = v
                .as_array()
                .ok_or_else(|| field_error("variables", "Must be a list."))?;
            for (i, var) in list.iter().enumerate() {
                if var["key"].as_str().is_none_or(str::is_empty) || !var["value"].is_string() {
                    return Err(field_error(
                        &format!("variables[{i}]"),
                        "Each variable needs a key and a string value.",
                    ));
                }
            }
            list.clone()
        }
    };
    let build_number = repo
        .pipelines
        .iter()
        .map(|p| p.build_number)
        .max()
        .unwrap_or(0)
        + 1;
    let names: Vec<&str> = match (custom.as_deref(), branch.as_deref()) {
        (Some("deploy-production"), _) => vec!["Build", "Deploy to production"],
        (Some(_), _) => vec!["End-to-end tests"],
        (None, Some(b)) if b == repo.main => vec!["Build", "Test", "Deploy to staging"],
        _ => vec!["Build", "Test"],
    };
    let full = repo.full_name().replace('/', "-");
    let live = Live {
        since_ms: state.run_clock_ms(),
        step_ms: state.run_step_ms(),
        fail_at: (custom.is_none() && branch.as_deref() == Some(FAILING_BRANCH))
            .then(|| names.iter().position(|n| *n == "Test"))
            .flatten(),
    };
    let pipeline = Pipeline {
        uuid: uuid(&format!("pipeline-{full}-{build_number}")),
        build_number,
        branch,
        commit,
        custom,
        manual: true,
        creator: me,
        created: now,
        completed: None,
        state: "PENDING",
        result: None,
        steps: names
            .iter()
            .enumerate()
            .map(|(k, name)| Step {
                uuid: uuid(&format!("step-{full}-{build_number}-{k}")),
                name: name.to_string(),
                state: "PENDING",
                result: None,
                started: None,
                completed: None,
                script: step_script(name),
                manual: is_manual(name),
            })
            .collect(),
        variables,
        live: Some(live),
    };
    let out = repo.pipeline_json(&pipeline);
    repo.pipelines.push(pipeline);
    state.set_live_runs(Which::Bitbucket, data.live_runs());
    created(out)
}

async fn stop_pipeline(
    State(state): St,
    OriginalUri(uri): Uri,
    Path((w, r, uuid)): ItemPath,
) -> Reply {
    check_encoded(&uri)?;
    let mut data = lock(&state.bitbucket);
    let now = data.tick(state.now_ms());
    let repo = data.repo_mut(&w, &r)?;
    let index = pipeline_index(repo, &uuid)?;
    let p = &mut repo.pipelines[index];
    if p.state == "COMPLETED" {
        return Err(bad_request(&format!(
            "Pipeline #{} has already completed; there is nothing to stop.",
            p.build_number
        )));
    }
    (p.state, p.result, p.completed) = ("COMPLETED", Some("STOPPED"), Some(now));
    for s in &mut p.steps {
        match s.state {
            "IN_PROGRESS" => {
                (s.state, s.result, s.completed) = ("COMPLETED", Some("STOPPED"), Some(now))
            }
            "PENDING" => (s.state, s.result) = ("COMPLETED", Some("NOT_RUN")),
            _ => {}
        }
    }
    p.live = None;
    state.set_live_runs(Which::Bitbucket, data.live_runs());
    no_content()
}

async fn list_steps(
    State(state): St,
    OriginalUri(uri): Uri,
    Path((w, r, uuid)): ItemPath,
    Query(query): Q,
) -> Reply {
    check_encoded(&uri)?;
    let items = {
        let data = lock(&state.bitbucket);
        let repo = data.repo(&w, &r)?;
        let p = &repo.pipelines[pipeline_index(repo, &uuid)?];
        p.steps.iter().map(|s| repo.step_json(p, s)).collect()
    };
    page(&state, &uri, &query, items, 100)
}

fn find_step<'a>(
    repo: &'a Repo,
    pipeline: &str,
    step: &str,
) -> Result<(&'a Pipeline, &'a Step), Response> {
    let p = &repo.pipelines[pipeline_index(repo, pipeline)?];
    let s = p
        .steps
        .iter()
        .find(|s| same_uuid(&s.uuid, step))
        .ok_or_else(|| {
            not_found(&format!(
                "No step with UUID {step} in pipeline #{}",
                p.build_number
            ))
        })?;
    Ok((p, s))
}

async fn get_step(
    State(state): St,
    OriginalUri(uri): Uri,
    Path((w, r, pipeline, step)): Path<(String, String, String, String)>,
) -> Reply {
    check_encoded(&uri)?;
    let data = lock(&state.bitbucket);
    let repo = data.repo(&w, &r)?;
    let (p, s) = find_step(repo, &pipeline, &step)?;
    ok(repo.step_json(p, s))
}

/// A step's log: 404 until the step has started; raw bytes as `application/octet-stream` while it runs;
/// once it has finished, 307 to the log in long-term storage ([`storage_router`]), as Bitbucket does.
async fn get_step_log(
    State(state): St,
    OriginalUri(uri): Uri,
    Path((w, r, pipeline, step)): Path<(String, String, String, String)>,
) -> Reply {
    check_encoded(&uri)?;
    let data = lock(&state.bitbucket);
    let repo = data.repo(&w, &r)?;
    let (p, s) = find_step(repo, &pipeline, &step)?;
    if s.started.is_none() {
        return Err(not_found("No log for this step yet: it has not started."));
    }
    if s.state == "COMPLETED" {
        let key = storage_key(repo, p, s);
        let location = format!(
            "{}/{key}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=900&X-Amz-Signature={}",
            lock(&state.storage_base),
            storage_signature(&key)
        );
        return Ok((
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response());
    }
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        step_log(repo, p, s),
    )
        .into_response())
}

// --- long-term storage of finished steps' logs ----------------------------------------------------

/// Where a finished step's log lies in storage: `step-logs/{workspace}/{repo}/{pipeline}/{step}`, the
/// UUIDs without braces.
fn storage_key(repo: &Repo, p: &Pipeline, s: &Step) -> String {
    let bare = |u: &str| u.trim_matches(['{', '}']).to_string();
    format!(
        "step-logs/{}/{}/{}/{}",
        repo.workspace,
        repo.slug,
        bare(&p.uuid),
        bare(&s.uuid)
    )
}

/// The pre-signed URL's signature over its key (deterministic; storage checks it).
fn storage_signature(key: &str) -> String {
    hex(&format!("storage-signature:{key}"), 64)
}

/// Long-term storage for finished steps' logs, on a host (port) of its own as on Bitbucket: it answers
/// pre-signed URLs only, and refuses a request that also carries `Authorization`, as S3 does, so a
/// client that forwards its Bitbucket credentials there fails.
pub fn storage_router() -> Router<Arc<SimState>> {
    Router::new().route(
        "/step-logs/{workspace}/{repo_slug}/{pipeline}/{step}",
        get(get_stored_log),
    )
}

/// An S3-style XML error.
fn storage_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

async fn get_stored_log(
    State(state): St,
    OriginalUri(uri): Uri,
    headers: axum::http::HeaderMap,
    Path((w, r, pipeline, step)): Path<(String, String, String, String)>,
    Query(query): Q,
) -> Reply {
    if headers.contains_key(header::AUTHORIZATION) {
        return Err(storage_error(
            StatusCode::BAD_REQUEST,
            "InvalidArgument",
            "This URL is pre-signed; a request that also carries an Authorization header is refused.",
        ));
    }
    let key = uri.path().trim_start_matches('/').to_string();
    if param(&query, "X-Amz-Signature") != Some(storage_signature(&key).as_str()) {
        return Err(storage_error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The request signature does not match.",
        ));
    }
    let data = lock(&state.bitbucket);
    let missing = || storage_error(StatusCode::NOT_FOUND, "NoSuchKey", "No such key.");
    let repo = data.repo(&w, &r).map_err(|_| missing())?;
    let (p, s) = find_step(repo, &pipeline, &step).map_err(|_| missing())?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        step_log(repo, p, s),
    )
        .into_response())
}

// ---------------------------------------------------------------------------------------------------
// Contents: files, diffs, logs
// ---------------------------------------------------------------------------------------------------

const README: &str = r#"# Acme API

The public REST API of the Acme platform: users, teams, billing and webhooks.
Rust 1.88, [axum](https://github.com/tokio-rs/axum), Postgres 16 through sqlx.

## Quickstart

```sh
docker compose up -d postgres
cp .env.example .env
cargo run
curl localhost:8080/healthz
```

## Layout

| Path | What |
|---|---|
| `src/main.rs` | router, middleware, startup |
| `src/auth/` | OAuth login (PKCE), sessions |
| `src/routes/` | one module per resource |
| `migrations/` | sqlx migrations, applied at startup |

## Tests

`cargo test` runs unit and integration tests; integration tests need `DATABASE_URL`.

## Releasing

Merge to `main`, then run the `deploy-production` custom pipeline on the release commit.
See `CHANGELOG.md` for what changed.
"#;

const CARGO_TOML: &str = r#"[package]
name = "acme-api"
version = "2.4.0"
edition = "2024"
rust-version = "1.88"

[dependencies]
axum = "0.8"
tokio = { version = "1.49", features = ["full"] }
serde = { version = "1", features = ["derive"] }
serde_json = "1"
sqlx = { version = "0.8", features = ["postgres", "runtime-tokio", "macros", "uuid", "time"] }
tracing = "0.1"
tracing-subscriber = { version = "0.3", features = ["env-filter", "json"] }
oauth2 = "5"
sha2 = "0.10"
base64 = "0.22"
rand = "0.9"

[dev-dependencies]
reqwest = { version = "0.12", features = ["json", "cookies"] }
"#;

const MAIN_RS: &str = r#"//! Acme API: startup and routing.

mod auth;
mod db;
mod routes;

use std::net::SocketAddr;

use axum::Router;
use tower_http::trace::TraceLayer;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();

    let pool = db::connect(&std::env::var("DATABASE_URL")?).await?;
    sqlx::migrate!().run(&pool).await?;
    let sessions = auth::SessionStore::new(pool.clone());

    let app = Router::new()
        .merge(routes::health::router())
        .merge(routes::users::router())
        .merge(routes::teams::router())
        .merge(routes::login::router(sessions.clone()))
        .layer(TraceLayer::new_for_http())
        .with_state(routes::AppState { pool, sessions });

    let addr: SocketAddr = std::env::var("LISTEN").unwrap_or_else(|_| "0.0.0.0:8080".into()).parse()?;
    tracing::info!(%addr, "listening");
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
"#;

const AUTH_MOD_RS: &str = r#"//! Authentication: OAuth login with PKCE and server-side sessions.

pub mod pkce;
pub mod session;

pub use session::{Session, SessionStore};

/// The cookie that carries the session id.
pub const SESSION_COOKIE: &str = "acme_session";
"#;

const PKCE_RS: &str = r#"//! PKCE (RFC 7636): a random verifier and its S256 challenge.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

/// A verifier kept in the session and the challenge sent to the identity provider.
#[derive(Debug, Clone)]
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        let verifier = URL_SAFE_NO_PAD.encode(bytes);
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        Self { verifier, challenge }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_is_the_s256_of_the_verifier() {
        let pkce = Pkce::new();
        assert_eq!(pkce.verifier.len(), 43);
        let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(pkce.verifier.as_bytes()));
        assert_eq!(pkce.challenge, expected);
    }

    #[test]
    fn verifiers_differ() {
        assert_ne!(Pkce::new().verifier, Pkce::new().verifier);
    }
}
"#;

const SESSION_RS: &str = r#"//! Server-side sessions: the cookie holds an opaque id, the rest stays in Postgres.

use sqlx::PgPool;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// How long a login may take between the redirect and the callback.
pub const LOGIN_TTL: Duration = Duration::minutes(10);

#[derive(Debug, Clone)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Option<i64>,
    pub pkce_verifier: Option<String>,
    pub oauth_state: Option<String>,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub struct SessionStore {
    pool: PgPool,
}

impl SessionStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Starts a login: remembers the verifier and the state until the callback.
    pub async fn begin_login(&self, verifier: &str, state: &str) -> sqlx::Result<Session> {
        sqlx::query_as!(
            Session,
            "INSERT INTO sessions (id, pkce_verifier, oauth_state) VALUES ($1, $2, $3)
             RETURNING id, user_id, pkce_verifier, oauth_state, created_at",
            Uuid::new_v4(),
            verifier,
            state
        )
        .fetch_one(&self.pool)
        .await
    }

    /// Finds the login a callback belongs to; a login older than [`LOGIN_TTL`] is gone.
    pub async fn take_login(&self, state: &str) -> sqlx::Result<Option<Session>> {
        let session = sqlx::query_as!(
            Session,
            "UPDATE sessions SET oauth_state = NULL WHERE oauth_state = $1
             RETURNING id, user_id, pkce_verifier, oauth_state, created_at",
            state
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(session.filter(|s| OffsetDateTime::now_utc() - s.created_at < LOGIN_TTL))
    }
}
"#;

const LOGIN_RS: &str = r#"//! `GET /login` and `GET /login/callback`: the OAuth authorization-code flow with PKCE.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use crate::auth::pkce::Pkce;
use crate::auth::{SessionStore, SESSION_COOKIE};
use crate::routes::AppState;

pub fn router(_sessions: SessionStore) -> Router<AppState> {
    Router::new()
        .route("/login", get(login))
        .route("/login/callback", get(callback))
}

async fn login(State(app): State<AppState>) -> Result<Redirect, StatusCode> {
    let pkce = Pkce::new();
    let state = crate::auth::pkce::Pkce::new().verifier;
    app.sessions
        .begin_login(&pkce.verifier, &state)
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    let url = format!(
        "{}?response_type=code&client_id={}&code_challenge={}&code_challenge_method=S256&state={}",
        app.idp.authorize_url, app.idp.client_id, pkce.challenge, state
    );
    Ok(Redirect::to(&url))
}

#[derive(Deserialize)]
struct Callback {
    code: String,
    state: String,
}

async fn callback(State(app): State<AppState>, Query(cb): Query<Callback>) -> Response {
    let Ok(Some(session)) = app.sessions.take_login(&cb.state).await else {
        return (StatusCode::BAD_REQUEST, "This login link expired; start again.").into_response();
    };
    let Some(verifier) = session.pkce_verifier else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    match app.idp.exchange(&cb.code, &verifier).await {
        Ok(user_id) => {
            let _ = app.sessions.attach_user(session.id, user_id).await;
            let cookie = format!("{SESSION_COOKIE}={}; HttpOnly; Secure; SameSite=Lax; Path=/", session.id);
            ([("set-cookie", cookie)], Redirect::to("/")).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "code exchange failed");
            (StatusCode::BAD_GATEWAY, "The identity provider refused the login.").into_response()
        }
    }
}
"#;

const LEGACY_BASIC_RS: &str = r#"//! HTTP Basic auth for internal tools. Superseded by OAuth login.

use axum::http::HeaderMap;
use base64::Engine;

/// Checks `Authorization: Basic` against the INTERNAL_TOOLS_PASSWORD variable.
pub fn check(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
        return false;
    };
    let expected = format!("tools:{}", std::env::var("INTERNAL_TOOLS_PASSWORD").unwrap_or_default());
    decoded == expected.as_bytes()
}
"#;

const LOGIN_TEST_RS: &str = r#"//! The login flow end to end against a fake identity provider.

mod common;

#[tokio::test]
async fn login_redirects_with_a_pkce_challenge() {
    let app = common::spawn().await;
    let response = app.client.get(app.url("/login")).send().await.unwrap();
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap();
    assert!(location.contains("code_challenge_method=S256"));
    assert!(location.contains("state="));
}

#[tokio::test]
async fn callback_with_an_unknown_state_is_refused() {
    let app = common::spawn().await;
    let response = app
        .client
        .get(app.url("/login/callback?code=abc&state=unknown"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn a_full_login_sets_the_session_cookie() {
    let app = common::spawn().await;
    let location = app.start_login().await;
    let code = app.idp.approve(&location).await;
    let response = app.finish_login(&code, &location).await;
    assert!(response.headers()["set-cookie"].to_str().unwrap().starts_with("acme_session="));
}
"#;

const USERS_RS: &str = r#"//! `/users`: list (cursor-paginated), get, create, update, delete.

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};

use crate::routes::{AppState, Cursor, Page, Problem};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(list).post(create))
        .route("/users/{id}", get(show).patch(update).delete(remove))
}

async fn list(State(app): State<AppState>, Query(cursor): Query<Cursor>) -> Result<Json<Page<User>>, Problem> {
    let rows = sqlx::query_as!(
        User,
        "SELECT id, email, name, created_at FROM users WHERE id > $1 ORDER BY id LIMIT $2",
        cursor.after(),
        cursor.limit() + 1
    )
    .fetch_all(&app.pool)
    .await?;
    Ok(Json(Page::from_rows(rows, cursor.limit())))
}
"#;

const PIPELINES_YML: &str = r#"image: rust:1.88-bookworm

definitions:
  caches:
    cargo: /usr/local/cargo/registry
  steps:
    - step: &build
        name: Build
        caches: [cargo]
        script:
          - cargo build --locked --release
    - step: &test
        name: Test
        caches: [cargo]
        services: [postgres]
        script:
          - cargo test --locked
  services:
    postgres:
      image: postgres:16
      variables:
        POSTGRES_PASSWORD: test

pipelines:
  default:
    - step: *build
    - step: *test
  branches:
    main:
      - step: *build
      - step: *test
      - step:
          name: Deploy to staging
          deployment: staging
          script:
            - pipe: atlassian/aws-ecs-deploy:1.12.1
            - ./scripts/smoke-test.sh staging
  custom:
    deploy-production:
      - step: *build
      - step:
          name: Deploy to production
          deployment: production
          trigger: manual
          script:
            - pipe: atlassian/aws-ecs-deploy:1.12.1
            - ./scripts/smoke-test.sh production
    nightly-e2e:
      - step:
          name: End-to-end tests
          script:
            - ./scripts/e2e.sh
"#;

/// The files of `acme/api` (the same at every commit: the sim does not version contents).
fn api_files() -> BTreeMap<String, String> {
    [
        ("README.md", README.to_string()),
        ("Cargo.toml", CARGO_TOML.to_string()),
        ("CHANGELOG.md", changelog()),
        ("bitbucket-pipelines.yml", PIPELINES_YML.to_string()),
        ("src/main.rs", MAIN_RS.to_string()),
        ("src/auth/mod.rs", AUTH_MOD_RS.to_string()),
        ("src/auth/pkce.rs", PKCE_RS.to_string()),
        ("src/auth/session.rs", SESSION_RS.to_string()),
        ("src/routes/login.rs", LOGIN_RS.to_string()),
        ("src/routes/users.rs", USERS_RS.to_string()),
        ("tests/login_flow.rs", LOGIN_TEST_RS.to_string()),
    ]
    .into_iter()
    .map(|(p, c)| (p.to_string(), c))
    .collect()
}

/// A long changelog (well over 100 KB), to exercise the text cap.
fn changelog() -> String {
    const AREAS: [&str; 8] = [
        "auth", "users", "teams", "billing", "webhooks", "search", "metrics", "admin",
    ];
    const CHANGES: [&str; 6] = [
        "Fixed a race when two requests refresh the same session",
        "Added pagination links to list responses",
        "Changed error bodies to RFC 9457 problem details",
        "Improved p99 latency of list endpoints by batching queries",
        "Removed the deprecated `expand` query parameter",
        "Deprecated offset pagination in favour of cursors",
    ];
    let mut out = String::from(
        "# Changelog\n\nAll notable changes to the Acme API. The format follows Keep a Changelog.\n\n",
    );
    for v in (0..420u64).rev() {
        let (major, minor, patch) = (v / 100 + 1, (v / 10) % 10, v % 10);
        out.push_str(&format!(
            "## [{major}.{minor}.{patch}] - build {}\n\n",
            1000 + v
        ));
        for k in 0..4u64 {
            let n = v * 4 + k;
            out.push_str(&format!(
                "- {}: {} (#{}, reported by {})\n",
                AREAS[(n % 8) as usize],
                CHANGES[((n * 7) % 6) as usize],
                100 + n,
                PEOPLE[(n % 6) as usize].0
            ));
        }
        out.push('\n');
    }
    out
}

const LOGIN_FILES: [&str; 8] = [
    "Cargo.toml",
    "src/auth/legacy_basic.rs",
    "src/auth/mod.rs",
    "src/auth/pkce.rs",
    "src/auth/session.rs",
    "src/main.rs",
    "src/routes/login.rs",
    "tests/login_flow.rs",
];

/// The diff of a whole file appearing (`added`) or disappearing.
fn whole_file(path: &str, content: &str, added: bool) -> String {
    let lines: Vec<&str> = content.lines().collect();
    let id = hex(path, 7);
    let (mode, index, from, to, hunk, sign) = if added {
        (
            "new",
            format!("0000000..{id}"),
            "/dev/null".to_string(),
            format!("b/{path}"),
            format!("-0,0 +1,{}", lines.len()),
            '+',
        )
    } else {
        (
            "deleted",
            format!("{id}..0000000"),
            format!("a/{path}"),
            "/dev/null".to_string(),
            format!("-1,{} +0,0", lines.len()),
            '-',
        )
    };
    let mut out = format!(
        "diff --git a/{path} b/{path}\n{mode} file mode 100644\nindex {index}\n--- {from}\n+++ {to}\n@@ {hunk} @@\n"
    );
    for line in lines {
        out.push(sign);
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The diff of `acme/api` PR #26 (`feature/login` → `main`): about 250 lines over eight files.
fn login_diff() -> String {
    let mut out = String::from(
        r#"diff --git a/Cargo.toml b/Cargo.toml
index 5c1e0d2..9a7f3b4 100644
--- a/Cargo.toml
+++ b/Cargo.toml
@@ -13,6 +13,10 @@ sqlx = { version = "0.8", features = ["postgres", "runtime-tokio", "macros", "uuid", "time"] }
 tracing = "0.1"
 tracing-subscriber = { version = "0.3", features = ["env-filter", "json"] }
+oauth2 = "5"
+sha2 = "0.10"
+base64 = "0.22"
+rand = "0.9"
 
 [dev-dependencies]
-reqwest = { version = "0.12", features = ["json"] }
+reqwest = { version = "0.12", features = ["json", "cookies"] }
"#,
    );
    out.push_str(&whole_file(
        "src/auth/legacy_basic.rs",
        LEGACY_BASIC_RS,
        false,
    ));
    out.push_str(
        r#"diff --git a/src/auth/mod.rs b/src/auth/mod.rs
index 1f0c9e2..77ab310 100644
--- a/src/auth/mod.rs
+++ b/src/auth/mod.rs
@@ -1,9 +1,9 @@
-//! Authentication for internal tools.
+//! Authentication: OAuth login with PKCE and server-side sessions.
 
-pub mod legacy_basic;
+pub mod pkce;
+pub mod session;
 
-/// Routes under /internal require basic auth.
-pub fn internal_only(headers: &axum::http::HeaderMap) -> bool {
-    legacy_basic::check(headers)
-}
+pub use session::{Session, SessionStore};
+
+/// The cookie that carries the session id.
+pub const SESSION_COOKIE: &str = "acme_session";
"#,
    );
    out.push_str(&whole_file("src/auth/pkce.rs", PKCE_RS, true));
    out.push_str(&whole_file("src/auth/session.rs", SESSION_RS, true));
    out.push_str(
        r#"diff --git a/src/main.rs b/src/main.rs
index 8d2e4f1..c3b9a07 100644
--- a/src/main.rs
+++ b/src/main.rs
@@ -17,13 +17,15 @@ async fn main() -> anyhow::Result<()> {
 
     let pool = db::connect(&std::env::var("DATABASE_URL")?).await?;
     sqlx::migrate!().run(&pool).await?;
+    let sessions = auth::SessionStore::new(pool.clone());
 
     let app = Router::new()
         .merge(routes::health::router())
         .merge(routes::users::router())
         .merge(routes::teams::router())
-        .merge(routes::internal::router())
+        .merge(routes::login::router(sessions.clone()))
         .layer(TraceLayer::new_for_http())
-        .with_state(routes::AppState { pool });
+        .with_state(routes::AppState { pool, sessions });
 
     let addr: SocketAddr = std::env::var("LISTEN").unwrap_or_else(|_| "0.0.0.0:8080".into()).parse()?;
"#,
    );
    out.push_str(&whole_file("src/routes/login.rs", LOGIN_RS, true));
    out.push_str(&whole_file("tests/login_flow.rs", LOGIN_TEST_RS, true));
    out
}

/// Files a generated PR touches.
fn small_diff_files(id: u64) -> Vec<String> {
    const POOL: [&str; 8] = [
        "src/routes/users.rs",
        "src/main.rs",
        "src/db.rs",
        "src/routes/teams.rs",
        "Cargo.toml",
        "README.md",
        "src/routes/mod.rs",
        "bitbucket-pipelines.yml",
    ];
    let mut files = vec![POOL[(id % 8) as usize].to_string()];
    let second = POOL[((id * 3 + 1) % 8) as usize].to_string();
    if second != files[0] {
        files.push(second);
    }
    files
}

/// A small, plausible diff for a commit or PR that has no hand-written one.
fn small_diff(seed: &str, title: &str, files: &[String]) -> String {
    let mut out = String::new();
    for (k, path) in files.iter().enumerate() {
        let start = 10 + (hash64(seed, k as u64) % 80);
        let comment = if path.ends_with(".rs") { "//" } else { "#" };
        out.push_str(&format!(
            "diff --git a/{path} b/{path}\nindex {}..{} 100644\n--- a/{path}\n+++ b/{path}\n@@ -{start},6 +{start},8 @@\n",
            hex(&format!("{seed}{path}a"), 7),
            hex(&format!("{seed}{path}b"), 7),
        ));
        out.push_str(&format!(
            " \n {comment} {title}\n-{comment} TODO: revisit before 2.5\n+{comment} Done: {title}.\n+{comment} See the pull request for the discussion.\n+\n \n {comment} end of section\n"
        ));
    }
    out
}

fn pr_diff(repo: &Repo, pr: &PullRequest) -> String {
    if repo.full_name() == "acme/api" && pr.source == "feature/login" && pr.id == 26 {
        login_diff()
    } else if repo.full_name() == "acme/api" {
        small_diff(&pr.source_hash, &pr.title, &small_diff_files(pr.id))
    } else {
        small_diff(&pr.source_hash, &pr.title, &["README.md".to_string()])
    }
}

/// Crates a build downloads and compiles, in order.
const CRATES: [(&str, &str); 64] = [
    ("proc-macro2", "1.0.95"),
    ("unicode-ident", "1.0.18"),
    ("libc", "0.2.174"),
    ("cfg-if", "1.0.1"),
    ("autocfg", "1.5.0"),
    ("once_cell", "1.21.3"),
    ("memchr", "2.7.5"),
    ("itoa", "1.0.15"),
    ("quote", "1.0.40"),
    ("syn", "2.0.104"),
    ("pin-project-lite", "0.2.16"),
    ("bytes", "1.10.1"),
    ("smallvec", "1.15.1"),
    ("scopeguard", "1.2.0"),
    ("lock_api", "0.4.13"),
    ("parking_lot_core", "0.9.11"),
    ("parking_lot", "0.12.4"),
    ("signal-hook-registry", "1.4.5"),
    ("mio", "1.0.4"),
    ("socket2", "0.6.0"),
    ("tokio-macros", "2.5.0"),
    ("tokio", "1.49.0"),
    ("futures-core", "0.3.31"),
    ("futures-sink", "0.3.31"),
    ("futures-channel", "0.3.31"),
    ("futures-task", "0.3.31"),
    ("futures-util", "0.3.31"),
    ("slab", "0.4.10"),
    ("serde_derive", "1.0.219"),
    ("serde", "1.0.219"),
    ("ryu", "1.0.20"),
    ("serde_json", "1.0.141"),
    ("http", "1.3.1"),
    ("http-body", "1.0.1"),
    ("http-body-util", "0.1.3"),
    ("httparse", "1.10.1"),
    ("httpdate", "1.0.3"),
    ("tower-service", "0.3.3"),
    ("tower-layer", "0.3.3"),
    ("tower", "0.5.2"),
    ("hyper", "1.8.0"),
    ("hyper-util", "0.1.16"),
    ("matchit", "0.8.4"),
    ("percent-encoding", "2.3.1"),
    ("form_urlencoded", "1.2.1"),
    ("serde_urlencoded", "0.7.1"),
    ("mime", "0.3.17"),
    ("axum-core", "0.5.2"),
    ("axum", "0.8.4"),
    ("tracing-core", "0.1.34"),
    ("tracing-attributes", "0.1.30"),
    ("tracing", "0.1.41"),
    ("tracing-subscriber", "0.3.19"),
    ("sha2", "0.10.9"),
    ("base64", "0.22.1"),
    ("rand_core", "0.9.3"),
    ("rand", "0.9.2"),
    ("time", "0.3.41"),
    ("uuid", "1.17.0"),
    ("sqlx-core", "0.8.6"),
    ("sqlx-postgres", "0.8.6"),
    ("sqlx-macros", "0.8.6"),
    ("sqlx", "0.8.6"),
    ("oauth2", "5.0.0"),
];

/// A step's log: clone, image, the step's commands and their output (a few hundred lines).
fn step_log(repo: &Repo, p: &Pipeline, s: &Step) -> String {
    let branch = p.branch.clone().unwrap_or_else(|| "HEAD".into());
    let subject = repo
        .commit(&p.commit)
        .map(|c| c.message.lines().next().unwrap_or_default().to_string())
        .unwrap_or_default();
    let mut log = vec![
        "+ umask 000".to_string(),
        String::new(),
        format!(
            "+ GIT_LFS_SKIP_SMUDGE=1 retry 6 git clone --branch=\"{branch}\" --depth 50 https://x-token-auth:$REPOSITORY_OAUTH_ACCESS_TOKEN@bitbucket.org/$BITBUCKET_REPO_FULL_NAME.git $BUILD_DIR"
        ),
        "Cloning into '/opt/atlassian/pipelines/agent/build'...".to_string(),
        String::new(),
        format!("+ git reset --hard {}", p.commit),
        format!("HEAD is now at {} {subject}", &p.commit[..7]),
        String::new(),
        "+ git config user.name bitbucket-pipelines".to_string(),
        "+ git config user.email commits-noreply@bitbucket.org".to_string(),
        "+ git config push.default current".to_string(),
        "+ git config http.${BITBUCKET_GIT_HTTP_ORIGIN}.proxy http://localhost:29418/".to_string(),
        "+ git remote set-url origin http://bitbucket.org/$BITBUCKET_REPO_FULL_NAME".to_string(),
        String::new(),
        "Images used:".to_string(),
        format!(
            "    build : docker.io/library/rust@sha256:{}",
            hex("rust-1.88-bookworm", 64)
        ),
        String::new(),
        "Cache \"cargo\": Downloading".to_string(),
        "Cache \"cargo\": Downloaded 412.7 MiB in 9 seconds".to_string(),
        "Cache \"cargo\": Extracting".to_string(),
        "Cache \"cargo\": Extracted in 14 seconds".to_string(),
        String::new(),
    ];
    for command in &s.script {
        log.push(format!("+ {command}"));
    }
    let running = s.state == "IN_PROGRESS";
    match s.name.as_str() {
        "Build" | "Build and test" => {
            log.push("    Updating crates.io index".into());
            log.extend(CRATES.iter().map(|(c, v)| format!("  Downloaded {c} v{v}")));
            log.push(format!(
                "  Downloaded {} crates (38.2 MB) in 4.11s",
                CRATES.len()
            ));
            log.extend(CRATES.iter().map(|(c, v)| format!("   Compiling {c} v{v}")));
            log.push("   Compiling acme-api v2.4.0 (/opt/atlassian/pipelines/agent/build)".into());
            log.push(format!(
                "    Finished `release` profile [optimized] target(s) in {}m {:02}s",
                2 + p.build_number % 3,
                p.build_number % 60
            ));
        }
        "Test" | "End-to-end tests" => {
            log.extend(
                CRATES
                    .iter()
                    .skip(40)
                    .map(|(c, v)| format!("   Compiling {c} v{v}")),
            );
            log.push("   Compiling acme-api v2.4.0 (/opt/atlassian/pipelines/agent/build)".into());
            log.push(
                "    Finished `test` profile [unoptimized + debuginfo] target(s) in 1m 48s".into(),
            );
            log.push(format!(
                "     Running unittests src/main.rs (target/debug/deps/acme_api-{})",
                hex(&p.uuid, 16)
            ));
            const MODULES: [&str; 9] = [
                "auth::pkce",
                "auth::session",
                "routes::users",
                "routes::teams",
                "routes::login",
                "routes::health",
                "db",
                "webhooks::delivery",
                "billing::invoices",
            ];
            const CASES: [&str; 20] = [
                "creates_a_record",
                "rejects_missing_fields",
                "paginates_with_cursor",
                "returns_404_for_unknown_id",
                "validates_email",
                "orders_by_created_at",
                "handles_concurrent_updates",
                "serializes_problem_details",
                "respects_rate_limit",
                "retries_on_503",
                "honours_retry_after",
                "expires_after_ttl",
                "rejects_unknown_state",
                "escapes_html_in_names",
                "keeps_audit_trail",
                "round_trips_json",
                "maps_db_errors",
                "streams_large_exports",
                "refreshes_token_once",
                "cleans_up_on_drop",
            ];
            let tests: Vec<String> = MODULES
                .iter()
                .flat_map(|m| CASES.iter().map(move |c| format!("{m}::tests::{c}")))
                .collect();
            log.push(String::new());
            log.push(format!("running {} tests", tests.len()));
            let failing = (s.result == Some("FAILED")).then_some(tests.len() / 3);
            let shown = if running {
                tests.len() / 2
            } else {
                tests.len()
            };
            for (k, t) in tests.iter().enumerate().take(shown) {
                let verdict = if Some(k) == failing { "FAILED" } else { "ok" };
                log.push(format!("test {t} ... {verdict}"));
            }
            if !running {
                log.push(String::new());
                if let Some(k) = failing {
                    log.push("failures:".into());
                    log.push(String::new());
                    log.push(format!("---- {} stdout ----", tests[k]));
                    log.push(format!(
                        "thread '{}' panicked at src/routes/users.rs:212:9:",
                        tests[k]
                    ));
                    log.push("assertion `left == right` failed".into());
                    log.push("  left: 500".into());
                    log.push(" right: 404".into());
                    log.push("note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace".into());
                    log.push(String::new());
                    log.push("failures:".into());
                    log.push(format!("    {}", tests[k]));
                    log.push(String::new());
                    log.push(format!("test result: FAILED. {} passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 7.42s", tests.len() - 1));
                    log.push(String::new());
                    log.push("error: test failed, to rerun pass `--bin acme-api`".into());
                } else {
                    log.push(format!("test result: ok. {} passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 7.18s", tests.len()));
                }
            }
        }
        _ => {
            let env = if s.name.contains("production") {
                "production"
            } else {
                "staging"
            };
            log.push(
                "Status: Downloaded newer image for bitbucketpipelines/aws-ecs-deploy:1.12.1"
                    .into(),
            );
            log.push(format!(
                "INFO: Updating the acme-api-{env} service with the new task definition..."
            ));
            log.push(format!(
                "INFO: Task definition acme-api-{env}:{} registered.",
                p.build_number
            ));
            log.push("INFO: Waiting for the service to become stable...".into());
            log.push("✔ Successfully updated the service.".into());
            log.push(format!("+ ./scripts/smoke-test.sh {env}"));
            log.push(format!(
                "GET https://{env}.api.acme.example/healthz -> 200 (41 ms)"
            ));
        }
    }
    if s.result == Some("STOPPED") {
        log.push("Build stopped by user".into());
    }
    if !running {
        log.push(String::new());
        log.push("Searching for test report files in directories named [test-results, failsafe-reports, test-reports, TestResults, surefire-reports] down to a depth of 4".into());
        log.push("Finished scanning for test reports. Found 0 test report files.".into());
        log.push(
            "Merged test suites, total number tests is 0, with 0 failures and 0 errors.".into(),
        );
    }
    log.join("\n") + "\n"
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::catalog::{Catalog, Tool};
    use crate::shape::{parse_fields, project};
    use crate::sim::{BITBUCKET_TOKEN, Sim};

    /// A client that does not follow redirects, so tests see the 302s themselves.
    fn client() -> reqwest::Client {
        crate::app::install_tls_provider();
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    }

    async fn send(
        sim: &Sim,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = client()
            .request(method, format!("{}{path}", sim.bitbucket_url))
            .bearer_auth(BITBUCKET_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("sim answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(sim: &Sim, path: &str) -> (u16, Value) {
        send(sim, reqwest::Method::GET, path, None).await
    }

    fn tool(name: &str) -> std::sync::Arc<Tool> {
        let catalog = Catalog::builtin().expect("catalog loads");
        let provider = catalog.provider("bitbucket").expect("bitbucket");
        provider
            .tools
            .iter()
            .find(|t| t.name == name)
            .cloned()
            .expect("tool exists")
    }

    fn fields(name: &str) -> Vec<crate::shape::Field> {
        parse_fields(&tool(name).spec.output.as_ref().expect("json tool").fields)
            .expect("fields parse")
    }

    #[tokio::test]
    async fn every_catalog_example_reaches_a_sim_route() {
        let failures = super::super::example_failures("bitbucket").await;
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[tokio::test]
    async fn pull_requests_page_with_absolute_next_and_refuse_pagelen_over_50() {
        let sim = Sim::start().await.unwrap();
        let (status, page) = get(&sim, "/repositories/acme/api/pullrequests?pagelen=10").await;
        assert_eq!(status, 200);
        assert_eq!(page["values"].as_array().unwrap().len(), 10);
        assert!(
            page["values"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["state"] == "OPEN"),
            "default is OPEN only"
        );
        assert!(
            page["values"][0].get("reviewers").is_none(),
            "lists leave out reviewers"
        );
        let next = page["next"].as_str().expect("a next page");
        assert!(
            next.starts_with(&sim.bitbucket_url) && next.contains("page=2"),
            "{next}"
        );
        let rest = next.strip_prefix(&sim.bitbucket_url).unwrap();
        let (_, second) = get(&sim, rest).await;
        assert_eq!(second["page"], 2);
        assert!(second.get("next").is_none(), "15 open PRs fit in two pages");

        let (status, body) = get(&sim, "/repositories/acme/api/pullrequests?pagelen=51").await;
        assert_eq!(status, 400);
        assert_eq!(body["error"]["message"], "Invalid pagelen");

        let (_, both) = get(
            &sim,
            "/repositories/acme/api/pullrequests?state=MERGED&state=DECLINED&pagelen=50",
        )
        .await;
        assert_eq!(both["size"], 14);
        let (_, found) = get(
            &sim,
            "/repositories/acme/api/pullrequests?q=title%20~%20%22LOGIN%22",
        )
        .await;
        assert_eq!(found["values"][0]["id"], 26);
        let (_, merged) = get(&sim, "/repositories/acme/api/pullrequests?q=state%20%3D%20%22MERGED%22%20AND%20author.nickname%20%3D%20%22anndev%22").await;
        assert_eq!(merged["size"], 1, "{merged}");
        let (status, bad) = get(
            &sim,
            "/repositories/acme/api/pullrequests?q=colour%20%3D%20%22red%22",
        )
        .await;
        assert_eq!(status, 400, "{bad}");
        let (status, _) = get(&sim, "/repositories/acme/nope/pullrequests").await;
        assert_eq!(status, 404);
    }

    #[tokio::test]
    async fn diff_and_diffstat_redirect_to_the_repository_endpoints() {
        let sim = Sim::start().await.unwrap();
        let response = client()
            .get(format!(
                "{}/repositories/acme/api/pullrequests/26/diff",
                sim.bitbucket_url
            ))
            .bearer_auth(BITBUCKET_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 302);
        let location = response.headers()["location"].to_str().unwrap().to_string();
        assert!(
            location.starts_with(&format!(
                "{}/repositories/acme/api/diff/acme/api:",
                sim.bitbucket_url
            )),
            "{location}"
        );
        let diff = client()
            .get(&location)
            .bearer_auth(BITBUCKET_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            diff.lines().count() > 200 && diff.contains("+++ b/src/auth/pkce.rs"),
            "{diff}"
        );

        let response = client()
            .get(format!(
                "{}/repositories/acme/api/pullrequests/26/diffstat?pagelen=3",
                sim.bitbucket_url
            ))
            .bearer_auth(BITBUCKET_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 302);
        let location = response.headers()["location"].to_str().unwrap().to_string();
        let stat: Value = client()
            .get(&location)
            .bearer_auth(BITBUCKET_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(stat["size"], 8);
        assert_eq!(
            stat["values"].as_array().unwrap().len(),
            3,
            "the redirect keeps pagelen"
        );
        let next = stat["next"].as_str().unwrap();
        assert!(
            next.contains("/2.0/repositories/acme/api/diffstat/acme/api:"),
            "next pages live under the redirect target: {next}"
        );
        let statuses: Vec<&str> = stat["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, ["modified", "removed", "modified"]);
    }

    #[tokio::test]
    async fn pull_request_put_replaces_so_keep_current_is_needed() {
        let sim = Sim::start().await.unwrap();
        let path = "/repositories/acme/api/pullrequests/27";
        let (status, body) = send(
            &sim,
            reqwest::Method::PUT,
            path,
            Some(json!({"description": "x"})),
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(body["error"]["message"], "title: This field is required.");
        assert_eq!(
            body["error"]["fields"]["title"][0],
            "This field is required."
        );

        // What the engine does for update_pull_request: read, project keep_current, merge the body over it.
        let update = tool("bitbucket_update_pull_request");
        let keep = update.keep_current.as_ref().expect("keep_current");
        let (_, before) = get(&sim, path).await;
        let mut body = project(&before, keep);
        body["title"] = json!("Add per-tenant usage metrics endpoint (v2)");
        let (status, after) = send(&sim, reqwest::Method::PUT, path, Some(body)).await;
        assert_eq!(status, 200, "{after}");
        assert_eq!(after["description"], before["description"]);
        assert_eq!(after["reviewers"], before["reviewers"]);
        assert_eq!(after["title"], "Add per-tenant usage metrics endpoint (v2)");

        // Without keep_current the same change would wipe description and reviewers.
        let (_, wiped) = send(
            &sim,
            reqwest::Method::PUT,
            path,
            Some(json!({"title": "T"})),
        )
        .await;
        assert_eq!(wiped["description"], "");
        assert_eq!(wiped["reviewers"], json!([]));

        // The author can't review their own PR; merged PRs can't be edited.
        let me = super::user_uuid(super::ME);
        let (status, _) = send(
            &sim,
            reqwest::Method::PUT,
            "/repositories/acme/api/pullrequests/26",
            Some(json!({"title": "T", "reviewers": [{"uuid": me}]})),
        )
        .await;
        assert_eq!(status, 400);
        let (status, _) = send(
            &sim,
            reqwest::Method::PUT,
            "/repositories/acme/api/pullrequests/1",
            Some(json!({"title": "T"})),
        )
        .await;
        assert_eq!(status, 400);
    }

    #[tokio::test]
    async fn mutations_change_state() {
        let sim = Sim::start().await.unwrap();
        let post = reqwest::Method::POST;
        let pr = "/repositories/acme/api/pullrequests/16";
        let (status, p) = send(&sim, post.clone(), &format!("{pr}/approve"), None).await;
        assert_eq!((status, p["state"].as_str()), (200, Some("approved")));
        let (status, merged) = send(
            &sim,
            post.clone(),
            &format!("{pr}/merge"),
            Some(json!({"merge_strategy": "squash", "close_source_branch": true})),
        )
        .await;
        assert_eq!(status, 200, "{merged}");
        assert_eq!(merged["state"], "MERGED");
        assert_eq!(merged["merge_commit"]["hash"].as_str().unwrap().len(), 12);
        let (status, again) = send(&sim, post.clone(), &format!("{pr}/merge"), None).await;
        assert_eq!(status, 400, "{again}");
        let (status, _) = get(
            &sim,
            "/repositories/acme/api/refs/branches/feature%2Frequest-id",
        )
        .await;
        assert_eq!(status, 404, "close_source_branch deleted the branch");
        let (_, main) = get(&sim, "/repositories/acme/api/refs/branches/main").await;
        assert!(
            main["target"]["message"]
                .as_str()
                .unwrap()
                .starts_with("Add request id middleware")
        );
        let (status, _) = send(
            &sim,
            post.clone(),
            "/repositories/acme/api/pullrequests/16/decline",
            None,
        )
        .await;
        assert_eq!(status, 400);
        let (status, bad) = send(
            &sim,
            post.clone(),
            "/repositories/acme/api/pullrequests/17/merge",
            Some(json!({"merge_strategy": "octopus"})),
        )
        .await;
        assert_eq!(status, 400, "{bad}");

        let (_, before) = get(&sim, "/repositories/acme/api/pullrequests/18").await;
        let (status, c) = send(
            &sim,
            post.clone(),
            "/repositories/acme/api/pullrequests/18/comments",
            Some(json!({"content": {"raw": "hi"}, "inline": {"to": 3}})),
        )
        .await;
        assert_eq!(status, 400, "inline needs a path: {c}");
        let (status, c) = send(
            &sim,
            post.clone(),
            "/repositories/acme/api/pullrequests/18/comments",
            Some(json!({"content": {"raw": "hi"}})),
        )
        .await;
        assert_eq!(status, 201);
        let (_, after) = get(&sim, "/repositories/acme/api/pullrequests/18").await;
        assert_eq!(
            after["comment_count"].as_u64(),
            before["comment_count"].as_u64().map(|n| n + 1)
        );
        let (_, activity) = get(&sim, "/repositories/acme/api/pullrequests/18/activity").await;
        assert_eq!(activity["values"][0]["comment"]["id"], c["id"]);

        // Pipelines: run, then stop; a finished one can't be stopped.
        let (status, run) = send(&sim, post.clone(), "/repositories/acme/api/pipelines", Some(json!({"target": {"type": "pipeline_ref_target", "ref_type": "branch", "ref_name": "feature/login"}}))).await;
        assert_eq!(status, 201, "{run}");
        assert_eq!(run["build_number"], 316);
        assert_eq!(run["state"]["name"], "PENDING");
        let uuid = run["uuid"]
            .as_str()
            .unwrap()
            .replace('{', "%7B")
            .replace('}', "%7D");
        let (status, _) = send(
            &sim,
            post.clone(),
            &format!("/repositories/acme/api/pipelines/{uuid}/stopPipeline"),
            None,
        )
        .await;
        assert_eq!(status, 204);
        let (_, stopped) = get(&sim, &format!("/repositories/acme/api/pipelines/{uuid}")).await;
        assert_eq!(stopped["state"]["result"]["name"], "STOPPED");
        let (status, _) = send(
            &sim,
            post.clone(),
            &format!("/repositories/acme/api/pipelines/{uuid}/stopPipeline"),
            None,
        )
        .await;
        assert_eq!(status, 400);
        let (status, _) = send(&sim, post, "/repositories/acme/api/pipelines", Some(json!({"target": {"type": "pipeline_commit_target", "commit": {"hash": "234a891571e5"}, "selector": {"type": "custom", "pattern": "nope"}}}))).await;
        assert_eq!(status, 400);
    }

    #[tokio::test]
    async fn removed_issue_endpoints_answer_like_any_path_the_api_does_not_host() {
        let sim = Sim::start().await.unwrap();
        for repo in ["api", "web", "infra"] {
            for path in ["issues", "issues/1", "issues/1/comments"] {
                let (status, body) = get(&sim, &format!("/repositories/acme/{repo}/{path}")).await;
                assert_eq!(status, 404, "{repo}/{path}");
                assert_eq!(body["error"]["message"], "Resource not found", "{body}");
            }
        }
        let (status, body) = send(
            &sim,
            reqwest::Method::POST,
            "/repositories/acme/api/issues",
            Some(json!({"title": "x"})),
        )
        .await;
        assert_eq!(status, 404);
        assert!(
            body["error"]["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("There is no API hosted at this URL.")),
            "{body}"
        );
        let (_, repo) = get(&sim, "/repositories/acme/api").await;
        assert_eq!(repo["has_issues"], false);
    }

    #[tokio::test]
    async fn src_needs_slashed_branches_resolved_and_serves_large_files() {
        let sim = Sim::start().await.unwrap();
        let (status, _) = get(
            &sim,
            "/repositories/acme/api/src/feature%2Flogin/src/auth/pkce.rs",
        )
        .await;
        assert_eq!(
            status, 404,
            "a slashed branch is read as ref + path, as on Bitbucket"
        );
        let (_, branch) = get(&sim, "/repositories/acme/api/refs/branches/feature%2Flogin").await;
        let hash = branch["target"]["hash"].as_str().unwrap();
        let (status, text) = get(
            &sim,
            &format!("/repositories/acme/api/src/{hash}/src/auth/pkce.rs"),
        )
        .await;
        assert_eq!(status, 200);
        assert!(text.as_str().unwrap().contains("S256"));
        let (_, changelog) = get(&sim, "/repositories/acme/api/src/main/CHANGELOG.md").await;
        assert!(changelog.as_str().unwrap().len() > 100_000);
        let (_, listing) = get(&sim, "/repositories/acme/api/src/main/src").await;
        let paths: Vec<&str> = listing["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["path"].as_str().unwrap())
            .collect();
        assert_eq!(paths, ["src/auth", "src/main.rs", "src/routes"]);
        let (status, _) = get(&sim, "/repositories/acme/api/src/main/nope.txt").await;
        assert_eq!(status, 404);
    }

    #[tokio::test]
    async fn pipeline_uuids_must_be_encoded_and_logs_are_long() {
        let sim = Sim::start().await.unwrap();
        let (_, list) = get(
            &sim,
            "/repositories/acme/api/pipelines?sort=-created_on&pagelen=3",
        )
        .await;
        assert_eq!(list["values"][0]["build_number"], 315, "newest first");
        assert_eq!(
            list["values"][0]["state"]["type"],
            "pipeline_state_in_progress"
        );
        let (_, failed) = get(
            &sim,
            "/repositories/acme/api/pipelines/%7B50d9818b-bf4a-4c9c-ad2c-f6e9f32c28af%7D",
        )
        .await;
        assert_eq!(failed["state"]["result"]["name"], "FAILED");
        let (_, steps) = get(
            &sim,
            "/repositories/acme/api/pipelines/%7B50d9818b-bf4a-4c9c-ad2c-f6e9f32c28af%7D/steps",
        )
        .await;
        let test = steps["values"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "Test")
            .unwrap();
        let step = test["uuid"]
            .as_str()
            .unwrap()
            .replace('{', "%7B")
            .replace('}', "%7D");
        let moved = client()
            .get(format!("{}/repositories/acme/api/pipelines/%7B50d9818b-bf4a-4c9c-ad2c-f6e9f32c28af%7D/steps/{step}/log", sim.bitbucket_url))
            .bearer_auth(BITBUCKET_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(moved.status(), 307, "a finished step's log is in storage");
        let location = moved.headers()["location"].to_str().unwrap().to_string();
        assert!(location.starts_with(&sim.storage_url), "{location}");
        assert!(location.contains("X-Amz-Signature="), "{location}");
        let with_credentials = client()
            .get(&location)
            .bearer_auth(BITBUCKET_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(
            with_credentials.status(),
            400,
            "storage refuses credentials"
        );
        assert!(
            with_credentials
                .text()
                .await
                .unwrap()
                .contains("InvalidArgument")
        );
        let unsigned = location.split("X-Amz-Signature=").next().unwrap();
        let forged = client()
            .get(format!("{unsigned}X-Amz-Signature=00"))
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), 403, "the signature is checked");
        let response = client().get(&location).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            "application/octet-stream"
        );
        let log = response.text().await.unwrap();
        assert!(
            log.lines().count() > 200 && log.contains("test result: FAILED"),
            "{}",
            log.lines().count()
        );
    }

    /// The size budgets: a page of 10 PRs ≤ 2.5 KB and one PR ≤ 1.2 KB once projected.
    #[tokio::test]
    async fn projected_pull_requests_stay_within_budget() {
        let sim = Sim::start().await.unwrap();
        let (_, page) = get(
            &sim,
            "/repositories/acme/api/pullrequests?sort=-updated_on&pagelen=10",
        )
        .await;
        let list = fields("bitbucket_list_pull_requests");
        let items: Vec<Value> = page["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| project(v, &list))
            .collect();
        assert_eq!(items.len(), 10);
        let raw_page = serde_json::to_string(&page).unwrap().len();
        let page_bytes =
            serde_json::to_string(&json!({"items": items, "next_cursor": "x".repeat(80)}))
                .unwrap()
                .len();
        println!("10 PRs: {page_bytes} bytes projected (with an 80-char cursor), {raw_page} raw");
        assert!(
            page_bytes <= 2500,
            "{page_bytes}: {}",
            serde_json::to_string(&items).unwrap()
        );

        let (_, pr) = get(&sim, "/repositories/acme/api/pullrequests/27").await;
        assert!(pr["description"].as_str().unwrap().len() > 300);
        assert_eq!(pr["reviewers"].as_array().unwrap().len(), 2);
        let one = project(&pr, &fields("bitbucket_get_pull_request"));
        let one_bytes = serde_json::to_string(&one).unwrap().len();
        println!(
            "1 PR: {one_bytes} bytes projected, {} raw",
            serde_json::to_string(&pr).unwrap().len()
        );
        assert!(one_bytes <= 1200, "{one_bytes}: {one}");
    }

    // --- runs started through the API progress ------------------------------------------------------

    /// One step length in the tests: long, so real time passing during a test never moves a run.
    const STEP: std::time::Duration = std::time::Duration::from_secs(60);

    async fn start_run(sim: &Sim, branch: &str) -> String {
        sim.state.set_run_step_ms(STEP.as_millis() as u64);
        let (status, run) = send(
            sim,
            reqwest::Method::POST,
            "/repositories/acme/api/pipelines",
            Some(json!({"target": {"type": "pipeline_ref_target", "ref_type": "branch", "ref_name": branch}})),
        )
        .await;
        assert_eq!(status, 201, "{run}");
        assert_eq!(run["state"]["name"], "PENDING");
        format!(
            "/repositories/acme/api/pipelines/{}",
            run["uuid"]
                .as_str()
                .unwrap()
                .replace('{', "%7B")
                .replace('}', "%7D")
        )
    }

    /// `(pipeline state, result)` and each step's `(name, state, result)`.
    async fn run_states(sim: &Sim, run: &str) -> (Value, Vec<(String, String, Value)>) {
        let (_, p) = get(sim, run).await;
        let (_, steps) = get(sim, &format!("{run}/steps")).await;
        let steps = steps["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap().to_string(),
                    s["state"]["name"].as_str().unwrap().to_string(),
                    s["state"]["result"]["name"].clone(),
                )
            })
            .collect();
        (
            json!([p["state"]["name"], p["state"]["result"]["name"]]),
            steps,
        )
    }

    fn step(name: &str, state: &str, result: Value) -> (String, String, Value) {
        (name.to_string(), state.to_string(), result)
    }

    async fn step_log(sim: &Sim, run: &str, index: usize) -> (u16, String) {
        let (_, steps) = get(sim, &format!("{run}/steps")).await;
        let uuid = steps["values"][index]["uuid"]
            .as_str()
            .unwrap()
            .replace('{', "%7B")
            .replace('}', "%7D");
        let response = client()
            .get(format!("{}{run}/steps/{uuid}/log", sim.bitbucket_url))
            .bearer_auth(BITBUCKET_TOKEN)
            .send()
            .await
            .expect("sim answers");
        // A finished step's log is in storage, fetched without credentials.
        let response = if response.status() == 307 {
            let location = response.headers()["location"].to_str().unwrap().to_string();
            assert!(location.starts_with(&sim.storage_url), "{location}");
            client()
                .get(location)
                .send()
                .await
                .expect("storage answers")
        } else {
            response
        };
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    #[tokio::test]
    async fn a_run_on_main_goes_pending_in_progress_then_successful() {
        let sim = Sim::start().await.unwrap();
        let run = start_run(&sim, "main").await;
        assert_eq!(sim.state.live_runs(super::Which::Bitbucket), 1);
        let null = Value::Null;
        let (state, steps) = run_states(&sim, &run).await;
        assert_eq!(state, json!(["PENDING", null]));
        assert!(steps.iter().all(|s| s.1 == "PENDING"), "{steps:?}");
        assert_eq!(
            step_log(&sim, &run, 0).await.0,
            404,
            "no log before a step starts"
        );

        // The same GETs again after the clock moved: the answer cache must not hide the progress.
        sim.state.advance(STEP);
        let (state, steps) = run_states(&sim, &run).await;
        assert_eq!(state, json!(["IN_PROGRESS", null]));
        assert_eq!(
            steps,
            [
                step("Build", "IN_PROGRESS", null.clone()),
                step("Test", "PENDING", null.clone()),
                step("Deploy to staging", "PENDING", null.clone()),
            ]
        );
        sim.state.advance(STEP);
        let (_, steps) = run_states(&sim, &run).await;
        assert_eq!(steps[0], step("Build", "COMPLETED", json!("SUCCESSFUL")));
        assert_eq!(steps[1], step("Test", "IN_PROGRESS", null.clone()));
        let (status, partial) = step_log(&sim, &run, 1).await;
        assert_eq!(status, 200);
        assert!(
            partial.contains("running 180 tests") && !partial.contains("test result"),
            "a running step has a partial log"
        );

        sim.state.advance(STEP * 2);
        let (state, steps) = run_states(&sim, &run).await;
        assert_eq!(state, json!(["COMPLETED", "SUCCESSFUL"]));
        assert!(
            steps
                .iter()
                .all(|s| s.1 == "COMPLETED" && s.2 == "SUCCESSFUL"),
            "{steps:?}"
        );
        assert_eq!(sim.state.live_runs(super::Which::Bitbucket), 0);
        let (_, p) = get(&sim, &run).await;
        let (_, list) = get(&sim, &format!("{run}/steps")).await;
        let last = &list["values"][2];
        assert_eq!(p["completed_on"], last["completed_on"]);
        assert!(p["created_on"].as_str() < last["started_on"].as_str());
        assert!(p["duration_in_seconds"].as_u64().unwrap() > 0);
        let (_, test_log) = step_log(&sim, &run, 1).await;
        assert!(
            test_log.contains("test result: ok. 180 passed"),
            "{test_log}"
        );

        // Done: more time changes nothing.
        sim.state.advance(STEP * 10);
        assert_eq!(
            run_states(&sim, &run).await.0,
            json!(["COMPLETED", "SUCCESSFUL"])
        );
    }

    #[tokio::test]
    async fn a_run_on_the_failing_branch_fails_at_test_with_the_error_at_the_end_of_its_log() {
        let sim = Sim::start().await.unwrap();
        let run = start_run(&sim, super::FAILING_BRANCH).await;
        sim.state.advance(STEP * 2);
        let (state, steps) = run_states(&sim, &run).await;
        assert_eq!(state, json!(["IN_PROGRESS", null]));
        assert_eq!(steps[1], step("Test", "IN_PROGRESS", Value::Null));
        sim.state.advance(STEP);
        let (state, steps) = run_states(&sim, &run).await;
        assert_eq!(state, json!(["COMPLETED", "FAILED"]));
        assert_eq!(
            steps,
            [
                step("Build", "COMPLETED", json!("SUCCESSFUL")),
                step("Test", "COMPLETED", json!("FAILED")),
            ]
        );
        let (status, log) = step_log(&sim, &run, 1).await;
        assert_eq!(status, 200);
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len() - 20..].join("\n");
        for needle in [
            "panicked at src/routes/users.rs",
            "assertion `left == right` failed",
            "test result: FAILED. 179 passed; 1 failed",
            "error: test failed",
        ] {
            assert!(tail.contains(needle), "{needle} not in the tail:\n{tail}");
        }
        sim.state.advance(STEP * 5);
        assert_eq!(
            run_states(&sim, &run).await.0,
            json!(["COMPLETED", "FAILED"])
        );
    }

    #[tokio::test]
    async fn steps_after_a_failed_one_are_not_run() {
        let sim = Sim::start().await.unwrap();
        let run = start_run(&sim, "main").await;
        for p in crate::sim::lock(&sim.state.bitbucket)
            .repos
            .iter_mut()
            .flat_map(|r| &mut r.pipelines)
        {
            if let Some(live) = &mut p.live {
                live.fail_at = Some(1);
            }
        }
        sim.state.advance(STEP * 3);
        let (state, steps) = run_states(&sim, &run).await;
        assert_eq!(state, json!(["COMPLETED", "FAILED"]));
        assert_eq!(
            steps[2],
            step("Deploy to staging", "COMPLETED", json!("NOT_RUN"))
        );
        assert_eq!(step_log(&sim, &run, 2).await.0, 404);
    }

    #[tokio::test]
    async fn a_stopped_run_stays_stopped() {
        let sim = Sim::start().await.unwrap();
        let run = start_run(&sim, "main").await;
        sim.state.advance(STEP * 2);
        let (status, _) = send(
            &sim,
            reqwest::Method::POST,
            &format!("{run}/stopPipeline"),
            None,
        )
        .await;
        assert_eq!(status, 204);
        assert_eq!(sim.state.live_runs(super::Which::Bitbucket), 0);
        sim.state.advance(STEP * 10);
        let (state, steps) = run_states(&sim, &run).await;
        assert_eq!(state, json!(["COMPLETED", "STOPPED"]));
        assert_eq!(
            steps,
            [
                step("Build", "COMPLETED", json!("SUCCESSFUL")),
                step("Test", "COMPLETED", json!("STOPPED")),
                step("Deploy to staging", "COMPLETED", json!("NOT_RUN")),
            ]
        );
        let (_, list) = get(&sim, &format!("{run}/steps")).await;
        let test = &list["values"][1];
        assert!(test["started_on"].as_str() < test["completed_on"].as_str());
        let (_, log) = step_log(&sim, &run, 1).await;
        assert!(log.contains("Build stopped by user"));
    }

    #[tokio::test]
    async fn seeded_pipelines_never_move() {
        let sim = Sim::start().await.unwrap();
        start_run(&sim, "main").await;
        let before = get(&sim, "/repositories/acme/api/pipelines?pagelen=20")
            .await
            .1;
        sim.state.advance(STEP * 100);
        let after = get(&sim, "/repositories/acme/api/pipelines?pagelen=20")
            .await
            .1;
        assert_eq!(
            before["values"][14], after["values"][14],
            "#315 still running"
        );
        assert_eq!(after["values"][14]["state"]["name"], "IN_PROGRESS");
        let seeded = |v: &Value| v["values"].as_array().unwrap()[..15].to_vec();
        assert_eq!(seeded(&before), seeded(&after));
    }

    /// The pipelines list pages by number: `page`, `pagelen` and `size`, never `next`.
    #[tokio::test]
    async fn the_pipelines_list_has_no_next_link() {
        let sim = Sim::start().await.unwrap();
        let (_, first) = get(&sim, "/repositories/acme/api/pipelines?pagelen=4").await;
        assert_eq!(
            (
                first["page"].as_u64(),
                first["pagelen"].as_u64(),
                first["size"].as_u64()
            ),
            (Some(1), Some(4), Some(15))
        );
        assert!(first.get("next").is_none(), "{first}");
        let (_, last) = get(&sim, "/repositories/acme/api/pipelines?pagelen=4&page=4").await;
        assert_eq!(last["values"].as_array().unwrap().len(), 3);
    }

    /// A run of `deploy-production` stops before its manual step: IN_PROGRESS with stage PAUSED, the
    /// step PENDING with a manual trigger, and more time changes nothing.
    #[tokio::test]
    async fn a_manual_step_pauses_the_run() {
        let sim = Sim::start().await.unwrap();
        sim.state.set_run_step_ms(STEP.as_millis() as u64);
        let (status, run) = send(
            &sim,
            reqwest::Method::POST,
            "/repositories/acme/api/pipelines",
            Some(json!({"target": {"type": "pipeline_ref_target", "ref_type": "branch", "ref_name": "main",
                                   "selector": {"type": "custom", "pattern": "deploy-production"}}})),
        )
        .await;
        assert_eq!(status, 201, "{run}");
        let run = format!(
            "/repositories/acme/api/pipelines/{}",
            super::enc(run["uuid"].as_str().unwrap())
        );
        sim.state.advance(STEP * 2);
        for _ in 0..2 {
            let (_, p) = get(&sim, &run).await;
            assert_eq!(
                p["state"],
                json!({"name": "IN_PROGRESS", "type": "pipeline_state_in_progress",
                       "stage": {"name": "PAUSED", "type": "pipeline_state_in_progress_paused"}})
            );
            let (_, steps) = get(&sim, &format!("{run}/steps")).await;
            assert_eq!(steps["values"][0]["state"]["result"]["name"], "SUCCESSFUL");
            assert_eq!(steps["values"][1]["state"]["name"], "PENDING");
            assert_eq!(
                steps["values"][1]["trigger"]["type"],
                "pipeline_step_trigger_manual"
            );
            sim.state.advance(STEP * 10);
        }
    }

    /// A merge that takes time: 202, no body, a `Location` to its task, which reads PENDING, then
    /// SUCCESS with the merged pull request; a task of another pull request is a 400.
    #[tokio::test]
    async fn a_slow_merge_is_a_task_to_poll() {
        let sim = Sim::start().await.unwrap();
        sim.state.set_merge_ms(STEP.as_millis() as u64);
        let response = client()
            .post(format!(
                "{}/repositories/acme/api/pullrequests/21/merge",
                sim.bitbucket_url
            ))
            .bearer_auth(BITBUCKET_TOKEN)
            .json(&json!({"merge_strategy": "squash"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let location = response.headers()["location"].to_str().unwrap().to_string();
        assert!(response.text().await.unwrap().is_empty(), "no body");
        let path = location
            .strip_prefix(&sim.bitbucket_url)
            .expect("inside the API")
            .to_string();
        assert!(
            path.starts_with("/repositories/acme/api/pullrequests/21/merge/task-status/"),
            "{path}"
        );
        let (status, pending) = get(&sim, &path).await;
        assert_eq!(status, 200);
        assert_eq!(pending["task_status"], "PENDING");
        assert!(pending.get("merge_result").is_none());
        let (_, pr) = get(&sim, "/repositories/acme/api/pullrequests/21").await;
        assert_eq!(pr["state"], "OPEN", "not merged yet");
        let other = path.replace("/pullrequests/21/", "/pullrequests/20/");
        assert_eq!(get(&sim, &other).await.0, 400);

        sim.state.advance(STEP);
        let (_, done) = get(&sim, &path).await;
        assert_eq!(done["task_status"], "SUCCESS", "{done}");
        assert_eq!(done["merge_result"]["state"], "MERGED");
        assert_eq!(done["merge_result"]["id"], 21);
        let (_, pr) = get(&sim, "/repositories/acme/api/pullrequests/21").await;
        assert_eq!(pr["state"], "MERGED");
        assert_eq!(sim.state.live_runs(super::Which::Bitbucket), 0);

        // `async=true` always answers 202, even when merges are quick.
        sim.state.set_merge_ms(0);
        let response = client()
            .post(format!(
                "{}/repositories/acme/api/pullrequests/24/merge?async=true",
                sim.bitbucket_url
            ))
            .bearer_auth(BITBUCKET_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
    }

    /// The documented run bodies pass; a commit target without a selector is refused naming it.
    #[tokio::test]
    async fn a_commit_target_needs_a_selector() {
        let sim = Sim::start().await.unwrap();
        let head = crate::sim::lock(&sim.state.bitbucket).repos[0].branches[0]
            .head
            .clone();
        let run = |target: Value| {
            send(
                &sim,
                reqwest::Method::POST,
                "/repositories/acme/api/pipelines",
                Some(json!({"target": target})),
            )
        };
        let (status, body) = run(
            json!({"type": "pipeline_commit_target", "commit": {"type": "commit", "hash": head}}),
        )
        .await;
        assert_eq!(status, 400);
        assert!(
            body["error"]["fields"].get("target.selector").is_some(),
            "{body}"
        );
        let (status, _) = run(
            json!({"type": "pipeline_commit_target", "commit": {"type": "commit", "hash": head},
                                     "selector": {"type": "custom", "pattern": "nightly-e2e"}}),
        )
        .await;
        assert_eq!(status, 201);
        let (status, _) = run(
            json!({"type": "pipeline_ref_target", "ref_type": "branch", "ref_name": "main",
                                     "commit": {"type": "commit", "hash": head}}),
        )
        .await;
        assert_eq!(status, 201);
    }
}
