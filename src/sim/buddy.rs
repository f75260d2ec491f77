//! Simulated Buddy.Works API: `/user`, `/user/tokens` and `/workspaces/…` (members, projects, pipelines,
//! runs and their logs, variables, integrations, the identifiers resolver).
//!
//! It answers like Buddy does: objects carry `url`/`html_url`, lists are wrapped (`{"url":…,"projects":[…]}`),
//! members/projects/pipelines/runs page with `page`/`per_page` (runs add `page_size`, `total_page_count`, …),
//! logs page by line with `offset`/`limit`, dates are UTC with `Z`, the trigger field is camelCase
//! `triggeredOn`, secret variables come back as `!encrypted …`, and errors are `{"errors":[{"message":…}]}`.
//!
//! The seed is deterministic (no randomness) and dated relative to when the sim started: the runs of
//! the last hours end before it, and runs started through the API carry the sim's clock (today's time,
//! [`SimState::now_ms`]), each action's times being when it really ran. Runs are started, approved by
//! the account whose token made the call (`GET /user`'s). Workspace `acme` holds most of it: project `web`
//! has pipeline 1 `build-and-test` with 28 runs of every status (5128 ENQUEUED, 5127 INPROGRESS,
//! 5126 FAILED, 5124 TERMINATED, 5117 FAILED in its tests, …) and pipeline 2 `deploy-production` whose newest
//! run 5205 waits for approval. Running, stopping, retrying and approving change the seeded runs.
//!
//! Runs started through the API (ids from 6001) progress on the sim's run clock ([`SimState::advance`],
//! [`SimState::set_run_step_ms`]); seeded runs only change through the API. A new run is `INPROGRESS` at
//! once, or `ENQUEUED` for one step when another run of the pipeline is active (the seeded ones always are
//! on `build-and-test`). Each action then takes one step: `at` moves action by action and the run ends
//! `SUCCESSFUL`, except on branch [`FAILING_BRANCH`] (`fix/cart-rounding`), where the first test action
//! (`Unit tests` on `acme/web` pipeline 1 `build-and-test`, `Run tests` on `acme/api` `ci`) ends `FAILED`,
//! its log ending in the failing jest test and its assertion, and the actions after it `NOT_EXECUTED`.
//! A run's `action_executions[]` have the documented shape (status, progress, dates, `action`) without
//! an `action_execution_id`; an action's log comes whole from `GET …/executions/{id}/actions/{action_id}`
//! (`log[]`) or by line from `…/action_executions/{action_execution_id}/logs`.
//! A `WAIT_FOR_APPLY` action stops the run at `WAITING_FOR_APPLY` until `APPLY`. `CANCEL` freezes a run
//! as `TERMINATED`; `RETRY` of a failed or terminated API run resumes it from that action (on the failing
//! branch it fails again).
//!
//! OAuth tokens get only what their scopes allow, as the API pages' "Required scopes" say
//! ([`required_scope`]; a 403 otherwise): `WORKSPACE` for workspaces, members, projects and the
//! identifiers lookup, `EXECUTION_INFO`/`EXECUTION_RUN` for pipelines and runs, and so on, each also
//! under its newer name (`PIPELINE_READ`, `PIPELINE_RUN`, `VARIABLE_READ`, `INTEGRATION_READ`); members
//! carry `email` only with `MEMBER_EMAIL`. Static tokens may do everything.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::{Account, Granted, SimState, Which, buddy_page, lock, param};

const API: &str = "https://api.buddy.works";
const APP: &str = "https://app.buddy.works";

/// When the sim starts, on the seed's own calendar (seconds): seeded run starts are written relative
/// to it, and [`Data::seed`] turns them into Unix time.
const NOW: u32 = 19 * 86_400 + 12 * 3600;

/// A time in the data: Unix milliseconds.
type Time = u64;
/// Runs started through the API get ids from here on.
const FIRST_NEW_RUN: u64 = 6001;
/// Runs started through the API on this branch fail at their first test action.
pub const FAILING_BRANCH: &str = "fix/cart-rounding";

// ------------------------------------------------------------------------------------------- data

/// Seeded Buddy data; tool calls that change something change it.
#[derive(Debug, Clone)]
pub struct Data {
    pub user: Value,
    pub tokens: Vec<Value>,
    pub workspaces: Vec<Workspace>,
    next_run: u64,
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
    /// `(person id, admin)`; people are [`PEOPLE`].
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

/// `(id, name, email)` of everyone who appears in the seed; id 1 is the static token's user (account
/// `mike`), id 2 the second OAuth account (`nina`).
const PEOPLE: &[(u64, &str, &str)] = &[
    (1, "Mike Benson", "mike.benson@buddy.works"),
    (2, "Nina Alvarez", "nina.alvarez@acme.dev"),
    (3, "Tom Kowalski", "tom.kowalski@acme.dev"),
    (4, "Priya Natarajan", "priya.natarajan@acme.dev"),
    (5, "Lee Chen", "lee.chen@acme.dev"),
];

const COMMITS: &[&str] = &[
    "Fix cart total rounding for multi-quantity items",
    "Add checkout v2 behind the checkout_v2 flag",
    "Bump eslint to 9.14 and fix new lint errors",
    "Cache product images at the edge for 24h",
    "Show a friendly message when the payment API times out",
    "Refactor order history query to use cursor pagination",
    "Translate account settings into German and Polish",
    "Remove legacy coupon endpoint",
    "Retry inventory sync once on 502",
    "Speed up search suggestions with a prefix index",
    "Merge branch 'fix/cart-rounding' into main",
];

impl Data {
    /// The seed, for a sim whose run clock started at `now_ms` (Unix milliseconds).
    pub fn seed(now_ms: Time) -> Self {
        let mut data = Self::seed_calendar();
        let at = |secs: u64| {
            // Milliseconds vary with the second, as real ones do.
            (now_ms + (secs * 37) % 1000)
                .saturating_sub((u64::from(NOW) - secs.min(NOW.into())) * 1000)
        };
        for e in data
            .workspaces
            .iter_mut()
            .flat_map(|w| &mut w.projects)
            .flat_map(|p| &mut p.pipelines)
            .flat_map(|pl| &mut pl.executions)
        {
            e.start = at(e.start);
        }
        data.tokens = tokens(now_ms);
        data.epoch_ms = now_ms;
        data
    }

    fn seed_calendar() -> Self {
        Self {
            user: json!({
                "url": "https://api.buddy.works/user",
                "html_url": "https://app.buddy.works/my-id",
                "id": 1,
                "name": "Mike Benson",
                "avatar_url": "https://app.buddy.works/image-server/user/0/0/0/0/0/0/1/d643744fbe5ebf2906a4d075a5b97110/w/32/32/AVATAR.png",
                "email": "mike.benson@buddy.works",
                "workspaces_url": "https://api.buddy.works/workspaces"
            }),
            tokens: Vec::new(),
            workspaces: vec![acme(), sidelab()],
            next_run: FIRST_NEW_RUN,
            epoch_ms: 0,
        }
    }
}

/// Personal access tokens: `(id, name, days until it expires)`, for a sim started at `now_ms`.
#[rustfmt::skip]
fn tokens(now_ms: Time) -> Vec<Value> {
    let midnight = now_ms / 86_400_000 * 86_400_000;
    [
        ("4c5a91e0-1f6b-4d0e-9c43-5d9a2f7e8b10", "devgate", Some(90)),
        ("9e2b7c34-8a1d-4f55-b6e0-0c1f3a9d2e47", "terraform-ci", None),
        ("1d8f0a6b-3c2e-4b7a-8e95-f4a6c2d1b3e8", "bdy-cli-laptop", Some(11)),
    ]
    .into_iter()
    .map(|(id, name, days)| token(id, name, days.map(|d| date(midnight + d * 86_400_000)).as_deref()))
    .collect()
}

fn token(id: &str, name: &str, expires_at: Option<&str>) -> Value {
    json!({
        "url": format!("{API}/user/tokens/{id}"),
        "html_url": format!("{APP}/my-id/api-tokens/{id}"),
        "id": id,
        "name": name,
        "expires_at": expires_at,
    })
}

fn acme() -> Workspace {
    let d = "acme";
    Workspace {
        id: 1021,
        domain: d.into(),
        name: "Acme Corp".into(),
        owner_id: 1,
        create_date: "2021-04-12T08:31:07Z",
        members: vec![(1, true), (2, true), (3, false), (4, false), (5, false)],
        projects: vec![
            Project {
                name: "web",
                display_name: "Web App",
                status: "ACTIVE",
                default_branch: "main",
                create_date: "2021-04-12T09:02:44Z",
                creator: 1,
                pipelines: vec![build_and_test(), deploy_production(), nightly_e2e()],
            },
            Project {
                name: "api",
                display_name: "Public API",
                status: "ACTIVE",
                default_branch: "main",
                create_date: "2022-01-20T14:15:02Z",
                creator: 2,
                pipelines: vec![api_ci(), api_release()],
            },
            Project {
                name: "mobile",
                display_name: "Mobile App",
                status: "ACTIVE",
                default_branch: "develop",
                create_date: "2023-06-05T11:40:19Z",
                creator: 4,
                pipelines: vec![android_beta()],
            },
            Project {
                name: "legacy-site",
                display_name: "Legacy marketing site",
                status: "CLOSED",
                default_branch: "master",
                create_date: "2019-09-30T07:12:55Z",
                creator: 1,
                pipelines: vec![],
            },
        ],
        variables: acme_variables(),
        integrations: acme_integrations(),
    }
}

/// `acme`'s variables: `(id, key, value, description, scope)`.
#[rustfmt::skip]
fn acme_variables() -> Vec<Value> {
    use Val::{Plain, Secret, SshKey};
    let (ws, web, api) = (Scope::Workspace, Scope::Project("web"), Scope::Project("api"));
    let deploy = Scope::Pipeline("web", 2);
    [
        (301, "API_BASE_URL", Plain("https://api.acme.dev"), "Public API base URL", ws),
        (302, "NPM_TOKEN", Secret, "npm token for private packages", ws),
        (303, "NODE_VERSION", Plain("20.11"), "", ws),
        (311, "NODE_ENV", Plain("production"), "", web),
        (312, "SENTRY_DSN", Secret, "Error reporting", web),
        (321, "DEPLOY_HOST", Plain("web-1.prod.acme.dev"), "SFTP target", deploy),
        (322, "DEPLOY_KEY", SshKey, "Deploy user's private key", deploy),
        (331, "DOCKER_REPO", Plain("acme/public-api"), "", api),
    ]
    .into_iter()
    .map(|(id, key, value, description, scope)| variable("acme", id, key, value, description, scope))
    .collect()
}

/// `acme`'s integrations, see [`IntegrationRow`].
#[rustfmt::skip]
fn acme_integrations() -> Vec<Value> {
    let deploy: &[(u64, &str)] = &[(2, "Deploy to production")];
    [
        ("K8gPz3LmQwR2", "github", "GitHub (acme-corp)", "GIT_HUB", "OAUTH", None, &[][..]),
        ("V3nTq9XsA1bE", "aws-prod", "AWS production", "AMAZON", "DEFAULT", None, deploy),
        ("Hc7Lw2RkN5yU", "slack", "Slack #deploys", "SLACK", "OAUTH", None, &[]),
        ("Q1mZr8TdF4gJ", "docker-hub", "Docker Hub", "DOCKER_HUB", "TOKEN", Some("api"), &[]),
    ]
    .into_iter()
    .map(|row| integration("acme", row))
    .collect()
}

fn sidelab() -> Workspace {
    Workspace {
        id: 2240,
        domain: "sidelab".into(),
        name: "Side Lab".into(),
        owner_id: 5,
        create_date: "2024-02-29T18:20:00Z",
        members: vec![(5, true), (1, false)],
        projects: vec![Project {
            name: "playground",
            display_name: "Playground",
            status: "ACTIVE",
            default_branch: "main",
            create_date: "2024-03-01T10:00:00Z",
            creator: 5,
            pipelines: vec![Pipeline {
                executions: history(4101, 2, &[], &["main"], 1),
                ..pipeline(
                    7,
                    "smoke",
                    "Smoke test",
                    &["refs/heads/main"],
                    json!([]),
                    vec![action(411, "Smoke test", Step::Tests)],
                )
            }],
        }],
        variables: vec![variable(
            "sidelab",
            401,
            "GREETING",
            Val::Plain("hello"),
            "",
            Scope::Workspace,
        )],
        integrations: vec![],
    }
}

fn build_and_test() -> Pipeline {
    let recent = [
        ("ENQUEUED", 0),
        ("INPROGRESS", 1),
        ("FAILED", 2),
        ("SUCCESSFUL", 4),
        ("TERMINATED", 1),
    ];
    let branches = [
        "main",
        "feature/checkout-v2",
        "fix/cart-rounding",
        "renovate/eslint-9.x",
    ];
    let mut executions = history(5101, 28, &recent, &branches, 4);
    for e in &mut executions {
        if [5110, 5117].contains(&e.id) {
            (e.status, e.at) = ("FAILED", 2);
        }
    }
    Pipeline {
        executions,
        ..pipeline(
            1,
            "build-and-test",
            "Build and test",
            &["refs/heads/*"],
            json!([{"type": "PUSH", "refs": ["refs/heads/*"]}]),
            vec![
                action(101, "Install dependencies", Step::Install),
                action(102, "Lint", Step::Lint),
                action(103, "Unit tests", Step::Tests),
                action(104, "Notify #builds", Step::Notify),
            ],
        )
    }
}

fn deploy_production() -> Pipeline {
    let mut executions = history(5201, 5, &[("WAITING_FOR_APPLY", 1)], &["main"], 4);
    for e in &mut executions {
        (e.triggered_on, e.creator) = ("CLICK", 2);
    }
    Pipeline {
        priority: "HIGH",
        executions,
        ..pipeline(
            2,
            "deploy-production",
            "Deploy to production",
            &["refs/heads/main"],
            json!([]),
            vec![
                action(111, "Build assets", Step::Install),
                action(112, "Approve deployment", Step::Approval),
                action(113, "Upload to web-1", Step::Upload),
                action(114, "Notify #deploys", Step::Notify),
            ],
        )
    }
}

fn nightly_e2e() -> Pipeline {
    let mut executions = history(5301, 4, &[("FAILED", 1)], &["main"], 2);
    for e in &mut executions {
        (e.triggered_on, e.comment) = ("SCHEDULE", String::new());
    }
    Pipeline {
        priority: "LOW",
        executions,
        ..pipeline(
            3,
            "nightly-e2e",
            "Nightly end-to-end tests",
            &["refs/heads/main"],
            json!([{"type": "SCHEDULE", "cron": "0 2 * * *", "timezone": "Europe/Warsaw"}]),
            vec![
                action(121, "Install dependencies", Step::Install),
                action(122, "E2E tests", Step::Tests),
            ],
        )
    }
}

fn api_ci() -> Pipeline {
    Pipeline {
        executions: history(
            5401,
            6,
            &[("SUCCESSFUL", 2)],
            &["main", "feat/rate-limits"],
            2,
        ),
        ..pipeline(
            4,
            "ci",
            "CI",
            &["refs/heads/*"],
            json!([{"type": "PUSH", "refs": ["refs/heads/*"]}]),
            vec![
                action(201, "Build image", Step::Docker),
                action(202, "Run tests", Step::Tests),
            ],
        )
    }
}

fn api_release() -> Pipeline {
    Pipeline {
        disabled_reason: Some("Paused while the API moves to the new cluster"),
        executions: history(5501, 2, &[], &["main"], 2),
        ..pipeline(
            5,
            "release",
            "Release",
            &["refs/tags/v*"],
            json!([{"type": "CREATE_REF", "refs": ["refs/tags/v*"]}]),
            vec![
                action(211, "Build image", Step::Docker),
                action(212, "Push to Docker Hub", Step::Upload),
            ],
        )
    }
}

fn android_beta() -> Pipeline {
    Pipeline {
        executions: history(5601, 3, &[("TERMINATED", 0)], &["develop"], 2),
        ..pipeline(
            6,
            "android-beta",
            "Android beta",
            &["refs/heads/develop"],
            json!([]),
            vec![
                action(301, "Gradle build", Step::Install),
                action(302, "Upload to Play Console", Step::Upload),
            ],
        )
    }
}

fn pipeline(
    id: u64,
    identifier: &'static str,
    name: &'static str,
    refs: &[&'static str],
    events: Value,
    actions: Vec<Action>,
) -> Pipeline {
    Pipeline {
        id,
        identifier,
        name,
        refs: refs.to_vec(),
        events,
        priority: "NORMAL",
        disabled_reason: None,
        create_date: "2023-03-14T10:21:09Z",
        actions,
        executions: vec![],
    }
}

fn action(id: u64, name: &'static str, step: Step) -> Action {
    let kind = match step {
        Step::Docker => "DOCKERFILE",
        Step::Approval => "WAIT_FOR_APPLY",
        Step::Upload => "SFTP",
        Step::Notify => "SLACK",
        Step::Install | Step::Lint | Step::Tests => "BUILD",
    };
    Action {
        id,
        name,
        kind,
        step,
    }
}

/// `count` runs with ids from `first_id`, newest first: minutes apart near [`NOW`], days apart further
/// back. `recent` gives `(status, at)` of the newest ones; older runs succeeded.
fn history(
    first_id: u64,
    count: usize,
    recent: &[(&'static str, usize)],
    branches: &[&str],
    actions: usize,
) -> Vec<Execution> {
    (0..count)
        .map(|age| {
            let (id, age) = (first_id + (count - 1 - age) as u64, age as u32);
            let (status, at) = recent
                .get(age as usize)
                .copied()
                .unwrap_or(("SUCCESSFUL", actions));
            let person = 2 + id % 4;
            Execution {
                id,
                status,
                at,
                branch: branches[id as usize % branches.len()].to_string(),
                revision: sha(id),
                message: COMMITS[id as usize % COMMITS.len()].to_string(),
                author: person,
                creator: person,
                comment: String::new(),
                triggered_on: "EVENT",
                refresh: false,
                clear_cache: false,
                start: u64::from(NOW - 240 * (age + 1) - 600 * age * age),
                approver: None,
                live: None,
                times: Vec::new(),
            }
        })
        .collect()
}

/// Where a variable applies.
#[derive(Debug, Clone, Copy)]
enum Scope {
    Workspace,
    Project(&'static str),
    /// Project name and pipeline id.
    Pipeline(&'static str, u64),
}

/// A seeded variable's value: plain, or a secret that Buddy only ever returns as an `!encrypted` blob.
#[derive(Debug, Clone, Copy)]
enum Val {
    Plain(&'static str),
    Secret,
    SshKey,
}

fn variable(
    domain: &str,
    id: u64,
    key: &str,
    value: Val,
    description: &str,
    scope: Scope,
) -> Value {
    let mut v = json!({
        "url": format!("{API}/workspaces/{domain}/variables/{id}"),
        "html_url": format!("{APP}/{domain}/-/variables/{id}"),
        "id": id,
        "key": key,
        "value": "",
        "type": "VAR",
        "encrypted": false,
        "settable": false,
        "run_only_settable": false,
        "description": description,
    });
    match value {
        Val::Plain(text) => v["value"] = json!(text),
        Val::Secret | Val::SshKey => {
            let blob: String = (0..3).map(|i| sha(id * 10 + i)).collect();
            v["value"] = json!(format!("!encrypted {}", &blob[..88]));
            v["encrypted"] = json!(true);
        }
    }
    if let Val::SshKey = value {
        v["type"] = json!("SSH_KEY");
        v["file_path"] = json!("~/.ssh/id_deploy");
        v["file_chmod"] = json!("600");
        v["file_place"] = json!("CONTAINER");
        v["key_fingerprint"] = json!("SHA256:q3Kd8vZ1mB0cXr7Yt2LwN9pE4sHfG6aJ5uQoI8zVxWk");
    }
    match scope {
        Scope::Workspace => {}
        Scope::Project(project) => v["project"] = project_ref(domain, project),
        Scope::Pipeline(project, pipeline) => {
            v["project"] = project_ref(domain, project);
            v["pipeline"] = json!({
                "url": format!("{API}/workspaces/{domain}/projects/{project}/pipelines/{pipeline}"),
                "html_url": format!("{APP}/{domain}/{project}/pipelines/pipeline/{pipeline}"),
                "id": pipeline,
            });
        }
    }
    v
}

/// `(hash_id, identifier, name, type, auth_type, project, allowed pipelines)`; no allowed pipelines
/// means all may use it. Integrations never carry their secrets.
type IntegrationRow = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static [(u64, &'static str)],
);

fn integration(domain: &str, row: IntegrationRow) -> Value {
    let (hash_id, identifier, name, kind, auth_type, project, allowed) = row;
    json!({
        "url": format!("{API}/workspaces/{domain}/integrations/{hash_id}"),
        "html_url": format!("{APP}/{domain}/-/integrations/{hash_id}"),
        "hash_id": hash_id,
        "identifier": identifier,
        "name": name,
        "type": kind,
        "auth_type": auth_type,
        "scope": if project.is_some() { "PROJECT" } else { "WORKSPACE" },
        "project_name": project,
        "all_pipelines_allowed": allowed.is_empty(),
        "allowed_pipelines": allowed.iter().map(|(id, name)| json!({"id": id, "name": name})).collect::<Vec<_>>(),
        "permissions": {"admins": "MANAGE", "others": "USE_ONLY", "users": [], "groups": []},
    })
}

// ---------------------------------------------------------------------------- derived run details

impl Execution {
    /// The status of the action at `idx`, given where the run is.
    fn action_status(&self, idx: usize) -> &'static str {
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
    fn duration(&self, idx: usize) -> Time {
        (15 + (self.id * 31 + idx as u64 * 17) % 90) * 1000
    }

    /// What `times` recorded for an action, for runs started through the API.
    fn recorded(&self, idx: usize) -> Option<(Option<Time>, Option<Time>)> {
        self.live.and(self.times.get(idx).copied())
    }

    fn action_start(&self, idx: usize) -> Time {
        match self.recorded(idx) {
            Some((Some(start), _)) => start,
            _ => self.start + 20_000 + (0..idx).map(|i| self.duration(i)).sum::<Time>(),
        }
    }

    fn action_finish(&self, idx: usize) -> Option<Time> {
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

    fn finish(&self, actions: usize) -> Option<Time> {
        match self.status {
            "SUCCESSFUL" if self.live.is_some() => self
                .action_finish(actions.saturating_sub(1))
                .map(|f| f + 3000),
            "SUCCESSFUL" => Some(self.action_start(actions) + 3000),
            "FAILED" | "TERMINATED" => self.action_finish(self.at).map(|f| f + 3000),
            _ => None,
        }
    }

    fn is_active(&self) -> bool {
        !matches!(self.status, "SUCCESSFUL" | "FAILED" | "TERMINATED")
    }
}

/// An action execution's id: 24 hex digits, as Buddy's are.
fn action_execution_id(run: u64, idx: usize) -> String {
    sha(run * 100 + idx as u64 + 7)[..24].to_string()
}

/// A Unix time in milliseconds, printed as Buddy prints dates (UTC, milliseconds, `Z`).
fn date(ms: Time) -> String {
    chrono::DateTime::from_timestamp_millis(i64::try_from(ms).unwrap_or(0))
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// A commit-like hex string (40 digits), stable for a seed.
fn sha(seed: u64) -> String {
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

fn person(id: u64) -> Value {
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

fn member(ws: &Workspace, (id, admin): (u64, bool)) -> Value {
    let mut m = person(id);
    m["url"] = json!(format!("{API}/workspaces/{}/member/{id}", ws.domain));
    m["html_url"] = json!(format!("{APP}/{}/-/people/{id}", ws.domain));
    m["admin"] = json!(admin);
    m["workspace_owner"] = json!(id == ws.owner_id);
    m["auto_assign_to_new_projects"] = json!(false);
    m
}

fn workspace_json(ws: &Workspace, full: bool) -> Value {
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

fn project_ref(domain: &str, name: &str) -> Value {
    json!({
        "url": format!("{API}/workspaces/{domain}/projects/{name}"),
        "html_url": format!("{APP}/{domain}/{name}"),
        "name": name,
    })
}

fn project_json(ws: &Workspace, p: &Project, full: bool) -> Value {
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

fn pipeline_url(ws: &Workspace, p: &Project, pl: &Pipeline) -> (String, String) {
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

fn pipeline_json(ws: &Workspace, p: &Project, pl: &Pipeline, full: bool) -> Value {
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

fn execution_json(ws: &Workspace, p: &Project, pl: &Pipeline, e: &Execution, full: bool) -> Value {
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
fn action_execution_json(
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
fn action_ref(ws: &Workspace, p: &Project, pl: &Pipeline, a: &Action) -> Value {
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

// ------------------------------------------------------------------------------------------- logs

/// Console output of one action in a run: a full test run (a few hundred lines) for test actions, a few
/// dozen lines for the rest. A running action shows the first part, an action not started nothing.
fn log_lines(p: &Project, e: &Execution, idx: usize, a: &Action) -> Vec<String> {
    let status = e.action_status(idx);
    if matches!(status, "ENQUEUED" | "NOT_EXECUTED") {
        return vec![];
    }
    let failed = status == "FAILED";
    let mut lines: Vec<String> = match a.step {
        Step::Approval => approval_log(e, status),
        Step::Notify => vec![
            "Sending message to Slack…".into(),
            format!(
                "Run #{} of {} on {}: {}",
                e.id, p.display_name, e.branch, e.status
            ),
            "Message sent (ts 1763640012.004219)".into(),
        ],
        step => {
            let mut lines = preamble(p, e);
            lines.extend(match step {
                Step::Install => install_log(p),
                Step::Lint => lint_log(),
                Step::Tests => test_log(p, failed),
                Step::Docker => docker_log(p, e),
                _ => upload_log(p),
            });
            lines
        }
    };
    match status {
        "INPROGRESS" => lines.truncate(lines.len() * 2 / 5),
        "TERMINATED" => {
            lines.truncate(lines.len() / 2);
            lines.push("The execution has been terminated by the user.".into());
        }
        _ => {}
    }
    lines
}

fn preamble(p: &Project, e: &Execution) -> Vec<String> {
    vec![
        "Preparing the environment…".into(),
        "Pulling image node:20.11-alpine".into(),
        "20.11-alpine: Pulling from library/node".into(),
        format!("Digest: sha256:{}{}", sha(7), &sha(8)[..24]),
        "Status: Image is up to date for node:20.11-alpine".into(),
        format!("Fetching {} at {} ({})", p.name, &e.revision[..7], e.branch),
        "Restoring cache from the previous execution (386.2 MB)".into(),
        "Cache restored in 4.1 s".into(),
        format!("Executing commands in /buddy/{}", p.name),
    ]
}

fn install_log(p: &Project) -> Vec<String> {
    let mut lines = vec!["$ npm ci --no-audit --prefer-offline".to_string()];
    for pkg in [
        "react@18.3.1",
        "react-dom@18.3.1",
        "next@14.2.15",
        "zod@3.23.8",
        "@tanstack/react-query@5.59.0",
    ] {
        lines.push(format!(
            "npm http fetch GET 200 https://registry.npmjs.org/{pkg} (cache hit)"
        ));
    }
    lines.push(
        "npm warn deprecated inflight@1.0.6: This module is not supported, and leaks memory."
            .into(),
    );
    lines.push("added 1284 packages in 21s".into());
    lines.push("214 packages are looking for funding".into());
    lines.push(format!("$ npm run build --workspace {}", p.name));
    lines.push("   Creating an optimized production build ...".into());
    lines.push(" ✓ Compiled successfully".into());
    lines.push(" ✓ Generating static pages (42/42)".into());
    lines.push("Build finished in 58.3 s".into());
    lines
}

fn lint_log() -> Vec<String> {
    let mut lines = vec!["$ npx eslint . --max-warnings 0".to_string()];
    for (file, rule) in [
        ("src/cart/totals.ts", "prefer-const"),
        ("src/search/suggest.ts", "no-unused-vars"),
        ("src/checkout/v2/Step.tsx", "react-hooks/exhaustive-deps"),
    ] {
        lines.push(format!("  fixed automatically: {file} ({rule})"));
    }
    lines.push("✔ No problems found in 612 files".into());
    lines
}

const MODULES: &[&str] = &[
    "auth",
    "billing",
    "cart",
    "catalog",
    "checkout",
    "search",
    "profile",
    "orders",
    "inventory",
    "notifications",
    "reports",
    "settings",
];
const FILES: &[&str] = &[
    "api",
    "store",
    "hooks",
    "utils",
    "validation",
    "format",
    "components",
    "routes",
];
const CASES: &[&str] = &[
    "renders without crashing",
    "handles empty input",
    "validates required fields",
    "maps API errors to messages",
    "retries once on timeout",
    "formats currency for the locale",
    "respects feature flags",
    "sorts newest first",
];

/// A jest run over 96 test files: 300+ lines; when `failed`, the cart totals suite fails.
fn test_log(p: &Project, failed: bool) -> Vec<String> {
    let mut lines = vec![
        "$ npm test -- --ci".to_string(),
        String::new(),
        format!("> {}@3.14.0 test", p.name),
        "> jest --ci".into(),
        String::new(),
    ];
    let mut n = 0usize;
    for module in MODULES {
        for file in FILES {
            n += 1;
            let path = format!("src/{module}/{file}.test.ts");
            let rounding = *module == "cart" && *file == "utils";
            match (rounding, failed) {
                (true, true) => {
                    lines.push(format!("FAIL {path} (2.31 s)"));
                    lines.push("  ✕ cart utils › rounds line totals to cents (4 ms)".into());
                }
                (true, false) => {
                    lines.push(format!("PASS {path} (2.12 s)"));
                    lines.push("  ✓ cart utils › rounds line totals to cents (3 ms)".into());
                }
                _ => lines.push(format!("PASS {path} ({}.{:02} s)", n % 3, (n * 37) % 100)),
            }
            for k in 0..2 {
                lines.push(format!(
                    "  ✓ {module} {file} › {} ({} ms)",
                    CASES[(n + k * 3) % CASES.len()],
                    3 + (n * 7 + k) % 90
                ));
            }
            if rounding && failed {
                lines.extend(failure_block(&path));
            }
        }
    }
    let suites = MODULES.len() * FILES.len();
    lines.push(String::new());
    if failed {
        // As jest does, the summary repeats each failure in full, so the log's tail has the error.
        lines.push("Summary of all failing tests".into());
        lines.push("FAIL src/cart/utils.test.ts".into());
        lines.extend(failure_block("src/cart/utils.test.ts"));
        lines.push(format!(
            "Test Suites: 1 failed, {} passed, {suites} total",
            suites - 1
        ));
        lines.push(format!(
            "Tests:       1 failed, {} passed, {} total",
            suites * 2,
            suites * 2 + 1
        ));
    } else {
        lines.push(format!("Test Suites: {suites} passed, {suites} total"));
        lines.push(format!(
            "Tests:       {} passed, {} total",
            suites * 2 + 1,
            suites * 2 + 1
        ));
    }
    lines.push("Snapshots:   14 passed, 14 total".into());
    lines.push("Time:        48.213 s".into());
    lines.push("Ran all test suites.".into());
    if failed {
        lines.push("Action failed: command `npm test -- --ci` exited with code 1".into());
    }
    lines
}

fn failure_block(path: &str) -> Vec<String> {
    [
        "  ● cart utils › rounds line totals to cents",
        "",
        "    expect(received).toBe(expected) // Object.is equality",
        "",
        "    Expected: 19.99",
        "    Received: 19.990000000000002",
        "",
        "      41 |   it('rounds line totals to cents', () => {",
        "      42 |     const total = lineTotal({ price: 9.995, quantity: 2 });",
        "    > 43 |     expect(total).toBe(19.99);",
        "         |                   ^",
        "      44 |   });",
        "",
    ]
    .iter()
    .map(|l| l.to_string())
    .chain([
        format!("      at Object.<anonymous> ({path}:43:19)"),
        String::new(),
    ])
    .collect()
}

fn docker_log(p: &Project, e: &Execution) -> Vec<String> {
    let mut lines = vec![format!(
        "$ docker build -t acme/{}:{} .",
        p.name,
        &e.revision[..7]
    )];
    for (i, step) in [
        "FROM node:20.11-alpine AS build",
        "WORKDIR /app",
        "COPY package*.json ./",
        "RUN npm ci",
        "COPY . .",
        "RUN npm run build",
        "FROM gcr.io/distroless/nodejs20",
        "COPY --from=build /app/dist /app",
    ]
    .iter()
    .enumerate()
    {
        lines.push(format!("#{} [{}/8] {step}", i + 4, i + 1));
        lines.push(format!("#{} DONE {}.{}s", i + 4, i % 3, i * 7 % 10));
    }
    lines.push(format!(
        "Successfully tagged acme/{}:{}",
        p.name,
        &e.revision[..7]
    ));
    lines
}

fn upload_log(p: &Project) -> Vec<String> {
    let mut lines = vec![format!(
        "Connecting to web-1.prod.acme.dev:22 as deploy ({})",
        p.name
    )];
    for (i, file) in [
        "index.html",
        "_next/static/chunks/main.js",
        "_next/static/chunks/pages/checkout.js",
        "_next/static/css/app.css",
        "robots.txt",
    ]
    .iter()
    .enumerate()
    {
        lines.push(format!("Uploading {file} ({} kB)", 3 + i * 41));
    }
    lines.push("Uploaded 5 files, 0 deleted, 212 unchanged".into());
    lines
}

fn approval_log(e: &Execution, status: &str) -> Vec<String> {
    let mut lines = vec!["Waiting for approval from: Admins".to_string()];
    if status == "SUCCESSFUL" {
        lines.push(format!(
            "Approved by {}",
            person(e.approver.unwrap_or(e.creator))["name"]
                .as_str()
                .unwrap_or_default()
        ));
    }
    lines
}

// ------------------------------------------------------------------------------------- HTTP layer

/// A Buddy error response; small, so it can ride in `Result`.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        super::error(Which::Buddy, self.0, &self.1)
    }
}

fn not_found(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, message.into())
}

fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

type Reply = Result<Json<Value>, ApiError>;
type Q = Query<super::Query>;

/// Where a pipeline sits in [`Data`]: indexes of its workspace, project and itself.
#[derive(Debug, Clone, Copy)]
struct At {
    ws: usize,
    project: usize,
    pipeline: usize,
}

impl Data {
    fn workspace(&self, domain: &str) -> Result<&Workspace, ApiError> {
        self.workspaces
            .iter()
            .find(|w| w.domain == domain)
            .ok_or_else(|| not_found(format!("Workspace {domain} not found")))
    }

    fn project(&self, domain: &str, name: &str) -> Result<(&Workspace, &Project), ApiError> {
        let ws = self.workspace(domain)?;
        let project = ws
            .projects
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| not_found(format!("Project {name} not found")))?;
        Ok((ws, project))
    }

    /// Pipelines are addressed by numeric id, as in Buddy; an identifier here is a 404.
    fn locate(&self, domain: &str, project: &str, pipeline: &str) -> Result<At, ApiError> {
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

    fn view(&self, at: At) -> (&Workspace, &Project, &Pipeline) {
        let ws = &self.workspaces[at.ws];
        let p = &ws.projects[at.project];
        (ws, p, &p.pipelines[at.pipeline])
    }

    fn pipeline_mut(&mut self, at: At) -> &mut Pipeline {
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
    fn progressing(&self) -> bool {
        self.live.is_some() && matches!(self.status, "ENQUEUED" | "INPROGRESS")
    }

    /// Moves `status` and `at` to where the run is at `now_ms` on the run clock (which reads 0 at Unix
    /// time `epoch_ms`), recording when each action started and finished; true when they changed.
    fn progress(&mut self, actions: &[Action], now_ms: u64, epoch_ms: Time) -> bool {
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
    fn end_action(&mut self, at_ms: Time) {
        if let Some(entry) = self.times.get_mut(self.at).filter(|_| self.live.is_some()) {
            entry.1 = Some(at_ms);
        }
    }

    /// Restarts progress from action `at`, now (after RETRY or APPLY of a run started through the API).
    fn resume(&mut self, now_ms: u64) {
        if let Some(live) = &mut self.live {
            (live.since_ms, live.from) = (now_ms, self.at);
        }
    }
}

impl Pipeline {
    fn execution(&self, id: &str) -> Result<usize, ApiError> {
        let n: Option<u64> = id.parse().ok();
        self.executions
            .iter()
            .position(|e| Some(e.id) == n)
            .ok_or_else(|| not_found(format!("Execution {id} not found")))
    }
}

pub fn router() -> Router<Arc<SimState>> {
    const PIPELINE: &str = "/workspaces/{ws}/projects/{project}/pipelines/{pipeline}";
    const RUN: &str =
        "/workspaces/{ws}/projects/{project}/pipelines/{pipeline}/executions/{execution}";
    Router::new()
        .route("/user", get(get_user))
        .route("/user/tokens", get(list_tokens))
        .route("/workspaces", get(list_workspaces))
        .route("/workspaces/{ws}", get(get_workspace))
        .route("/workspaces/{ws}/identifiers", get(identifiers))
        .route("/workspaces/{ws}/members", get(list_members))
        .route("/workspaces/{ws}/projects", get(list_projects))
        .route("/workspaces/{ws}/projects/{project}", get(get_project))
        .route(
            "/workspaces/{ws}/projects/{project}/pipelines",
            get(list_pipelines),
        )
        .route(PIPELINE, get(get_pipeline))
        .route(
            &format!("{PIPELINE}/executions"),
            get(list_executions).post(run_pipeline),
        )
        .route(RUN, get(get_execution).patch(patch_execution))
        .route(&format!("{RUN}/actions/{{action}}"), get(action_details))
        .route(
            &format!("{RUN}/action_executions/{{action_execution}}/logs"),
            get(action_log),
        )
        .route("/workspaces/{ws}/variables", get(list_variables))
        .route("/workspaces/{ws}/variables/{id}", get(get_variable))
        .route("/workspaces/{ws}/integrations", get(list_integrations))
        .route(
            "/workspaces/{ws}/integrations/{hash_id}",
            get(get_integration),
        )
}

/// The account the token belongs to: Mike is the seed's `user`, Nina is built from [`PEOPLE`].
async fn get_user(
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

async fn list_tokens(State(state): State<Arc<SimState>>) -> Json<Value> {
    Json(json!({
        "url": format!("{API}/user/tokens"),
        "html_url": format!("{APP}/my-id/api-tokens"),
        "access_tokens": lock(&state.buddy).tokens,
    }))
}

/// The workspaces the token's account is a member of.
async fn list_workspaces(
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

async fn get_workspace(State(state): State<Arc<SimState>>, Path(ws): Path<String>) -> Reply {
    Ok(Json(workspace_json(
        lock(&state.buddy).workspace(&ws)?,
        true,
    )))
}

/// `GET /workspaces/{ws}/identifiers?project=…&pipeline=…`: human identifiers to ids.
async fn identifiers(
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
async fn list_members(
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

async fn list_projects(
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

async fn get_project(
    State(state): State<Arc<SimState>>,
    Path((ws, project)): Path<(String, String)>,
) -> Reply {
    let data = lock(&state.buddy);
    let (workspace, project) = data.project(&ws, &project)?;
    Ok(Json(project_json(workspace, project, true)))
}

async fn list_pipelines(
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

async fn get_pipeline(
    State(state): State<Arc<SimState>>,
    Path((ws, project, pipeline)): Path<(String, String, String)>,
) -> Reply {
    let data = lock(&state.buddy);
    let (w, p, pl) = data.view(data.locate(&ws, &project, &pipeline)?);
    Ok(Json(pipeline_json(w, p, pl, true)))
}

async fn list_executions(
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

async fn get_execution(
    State(state): State<Arc<SimState>>,
    Path((ws, project, pipeline, execution)): Path<(String, String, String, String)>,
) -> Reply {
    let data = lock(&state.buddy);
    let (w, p, pl) = data.view(data.locate(&ws, &project, &pipeline)?);
    let e = &pl.executions[pl.execution(&execution)?];
    Ok(Json(execution_json(w, p, pl, e, true)))
}

/// What a run request asks for, checked the way Buddy checks it.
struct RunRequest {
    revision: Option<String>,
    branch: Option<String>,
    comment: String,
    refresh: bool,
    clear_cache: bool,
}

fn parse_run(body: &Bytes) -> Result<RunRequest, ApiError> {
    let body: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|_| bad_request("Request body is not valid JSON"))?
    };
    let Some(body) = body.as_object() else {
        return Err(bad_request("Request body must be a JSON object"));
    };
    let text = |outer: &str, inner: &str| -> Result<Option<String>, ApiError> {
        match body.get(outer) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .get(inner)
                .and_then(Value::as_str)
                .map(|s| Some(s.to_string()))
                .ok_or_else(|| bad_request(format!("Field {outer}.{inner} must be a string"))),
        }
    };
    let flag = |key: &str| -> Result<bool, ApiError> {
        match body.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(bad_request(format!("Field {key} must be a boolean"))),
        }
    };
    if let Some(vars) = body.get("variables") {
        let valid = vars.as_array().is_some_and(|items| {
            items
                .iter()
                .all(|v| v.get("key").is_some_and(Value::is_string) && v.get("value").is_some())
        });
        if !valid {
            return Err(bad_request(
                "Field variables must be an array of objects with key and value",
            ));
        }
    }
    let revision = text("to_revision", "revision")?;
    if let Some(r) = &revision
        && !is_revision(r)
    {
        return Err(bad_request(format!(
            "Revision {r} not found in the repository"
        )));
    }
    Ok(RunRequest {
        revision,
        branch: text("branch", "name")?,
        comment: match body.get("comment") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(bad_request("Field comment must be a string")),
        },
        refresh: flag("refresh")?,
        clear_cache: flag("clear_cache")?,
    })
}

/// `HEAD` or an abbreviated/full commit SHA.
fn is_revision(r: &str) -> bool {
    r == "HEAD" || ((7..=40).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether a branch may run on a pipeline with these refs (`refs/heads/*` style wildcards).
fn branch_allowed(refs: &[&str], branch: &str) -> bool {
    let full = format!("refs/heads/{branch}");
    refs.iter().any(|r| match r.strip_suffix('*') {
        Some(prefix) => full.starts_with(prefix),
        None => *r == full,
    })
}

async fn run_pipeline(
    State(state): State<Arc<SimState>>,
    Path((ws, project, pipeline)): Path<(String, String, String)>,
    Extension(caller): Extension<Account>,
    body: Bytes,
) -> Reply {
    let request = parse_run(&body)?;
    let mut data = lock(&state.buddy);
    let at = data.locate(&ws, &project, &pipeline)?;
    let (_, p, pl) = data.view(at);
    if let Some(reason) = pl.disabled_reason {
        return Err(bad_request(format!("Pipeline is disabled: {reason}")));
    }
    let default_branch = pl
        .refs
        .iter()
        .find_map(|r| r.strip_prefix("refs/heads/").filter(|b| !b.contains('*')))
        .unwrap_or(p.default_branch);
    let branch = request.branch.unwrap_or_else(|| default_branch.to_string());
    if !branch_allowed(&pl.refs, &branch) {
        return Err(bad_request(format!(
            "Branch {branch} does not match the pipeline's refs ({})",
            pl.refs.join(", ")
        )));
    }
    let id = data.next_run;
    data.next_run += 1;
    let pl = data.pipeline_mut(at);
    let status = if pl.executions.iter().any(Execution::is_active) {
        "ENQUEUED"
    } else {
        "INPROGRESS"
    };
    let (now, step_ms) = (state.run_clock_ms(), state.run_step_ms());
    let live = Live {
        since_ms: if status == "ENQUEUED" {
            now + step_ms
        } else {
            now
        },
        step_ms,
        from: 0,
        fail_at: (branch == FAILING_BRANCH)
            .then(|| pl.actions.iter().position(|a| a.step == Step::Tests))
            .flatten(),
    };
    pl.executions.insert(
        0,
        Execution {
            id,
            status,
            at: 0,
            revision: match request.revision {
                Some(r) if r != "HEAD" => r,
                _ => sha(id),
            },
            message: COMMITS[id as usize % COMMITS.len()].to_string(),
            author: 3,
            creator: caller.buddy_id(),
            comment: request.comment,
            triggered_on: "CLICK",
            refresh: request.refresh,
            clear_cache: request.clear_cache,
            start: state.now_ms(),
            approver: None,
            branch,
            live: Some(live),
            times: Vec::new(),
        },
    );
    state.set_live_runs(Which::Buddy, data.live_runs());
    let (w, p, pl) = data.view(at);
    Ok(Json(execution_json(w, p, pl, &pl.executions[0], true)))
}

/// `PATCH …/executions/{id}` with `{"operation": "CANCEL" | "RETRY" | "APPLY"}`.
async fn patch_execution(
    State(state): State<Arc<SimState>>,
    Path((ws, project, pipeline, execution)): Path<(String, String, String, String)>,
    Extension(caller): Extension<Account>,
    body: Bytes,
) -> Reply {
    let body: Value =
        serde_json::from_slice(&body).map_err(|_| bad_request("Request body is not valid JSON"))?;
    let operation = body
        .get("operation")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut data = lock(&state.buddy);
    let at = data.locate(&ws, &project, &pipeline)?;
    let pl = data.pipeline_mut(at);
    let actions = pl.actions.len();
    let index = pl.execution(&execution)?;
    let e = &mut pl.executions[index];
    match (operation, e.status) {
        ("CANCEL", "SUCCESSFUL" | "FAILED" | "TERMINATED") => {
            return Err(bad_request(format!(
                "Execution {} has already finished ({})",
                e.id, e.status
            )));
        }
        ("CANCEL", _) => {
            e.status = "TERMINATED";
            e.end_action(state.now_ms());
        }
        ("RETRY", "FAILED" | "TERMINATED") => {
            e.status = "INPROGRESS";
            e.resume(state.run_clock_ms());
        }
        ("RETRY", _) => {
            return Err(bad_request(
                "Only failed or terminated executions can be retried",
            ));
        }
        ("APPLY", "WAITING_FOR_APPLY") => {
            e.approver = Some(caller.buddy_id());
            e.end_action(state.now_ms());
            e.at += 1;
            e.status = if e.at >= actions {
                "SUCCESSFUL"
            } else {
                "INPROGRESS"
            };
            e.resume(state.run_clock_ms());
        }
        ("APPLY", _) => return Err(bad_request("Execution is not waiting for approval")),
        _ => {
            return Err(bad_request(format!(
                "Unknown operation {operation:?}; expected CANCEL, RETRY or APPLY"
            )));
        }
    }
    state.set_live_runs(Which::Buddy, data.live_runs());
    let (w, p, pl) = data.view(at);
    Ok(Json(execution_json(w, p, pl, &pl.executions[index], true)))
}

/// `GET …/executions/{id}/actions/{action_id}`: one action of a run by its action id, with its whole
/// console output in `log[]` (Buddy's "Get details and logs by action_id").
async fn action_details(
    State(state): State<Arc<SimState>>,
    Path((ws, project, pipeline, execution, action)): Path<(
        String,
        String,
        String,
        String,
        String,
    )>,
) -> Reply {
    let data = lock(&state.buddy);
    let (w, p, pl) = data.view(data.locate(&ws, &project, &pipeline)?);
    let e = &pl.executions[pl.execution(&execution)?];
    let id: Option<u64> = action.parse().ok();
    let idx = pl
        .actions
        .iter()
        .position(|a| Some(a.id) == id)
        .ok_or_else(|| not_found(format!("Action {action} not found")))?;
    let mut details = action_execution_json(w, p, pl, e, idx, &pl.actions[idx]);
    details["log"] = json!(log_lines(p, e, idx, &pl.actions[idx]));
    Ok(Json(details))
}

async fn action_log(
    State(state): State<Arc<SimState>>,
    Path((ws, project, pipeline, execution, action_execution)): Path<(
        String,
        String,
        String,
        String,
        String,
    )>,
    Query(q): Q,
) -> Reply {
    let number = |key: &str, default: usize| -> Result<usize, ApiError> {
        param(&q, key)
            .map_or(Ok(default), str::parse)
            .map_err(|_| bad_request(format!("Parameter {key} must be a non-negative integer")))
    };
    let (offset, limit) = (number("offset", 0)?, number("limit", 100)?.clamp(1, 1000));
    let data = lock(&state.buddy);
    let (w, p, pl) = data.view(data.locate(&ws, &project, &pipeline)?);
    let e = &pl.executions[pl.execution(&execution)?];
    let idx = (0..pl.actions.len())
        .find(|i| action_execution_id(e.id, *i) == action_execution)
        .ok_or_else(|| not_found(format!("Action execution {action_execution} not found")))?;
    let lines = log_lines(p, e, idx, &pl.actions[idx]);
    let page: Vec<&String> = lines.iter().skip(offset).take(limit).collect();
    let (url, _) = pipeline_url(w, p, pl);
    Ok(Json(json!({
        "url": format!("{url}/executions/{}/action_executions/{action_execution}/logs", e.id),
        "offset": offset,
        "limit": limit,
        "element_count": page.len(),
        "total_element_count": lines.len(),
        "logs": page,
    })))
}

/// Without filters only workspace-level variables, as in Buddy; `pipeline_id` wins over `project_name`.
async fn list_variables(
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

async fn get_variable(
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

async fn list_integrations(State(state): State<Arc<SimState>>, Path(ws): Path<String>) -> Reply {
    let data = lock(&state.buddy);
    let integrations = &data.workspace(&ws)?.integrations;
    Ok(Json(
        json!({"url": format!("{API}/workspaces/{ws}/integrations"), "integrations": integrations}),
    ))
}

async fn get_integration(
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

// ------------------------------------------------------------------------------------------- scopes

/// Buddy's scopes as the sim enforces them: `(classic name, newer name, classic scopes it implies)`.
/// The newer names are those of Buddy's 2026 API pages (`PIPELINE_READ` for reading runs,
/// `PIPELINE_RUN` for starting them), of `bdy` 1.25 (`VARIABLE_READ`, `INTEGRATION_READ`) and of the Go
/// SDK's token scopes (`USER_READ`, `USER_PAT_READ`, `MEMBER_EMAIL_READ`); a grant in either name does
/// the same.
const SCOPES: &[(&str, Option<&str>, &[&str])] = &[
    ("USER_INFO", Some("USER_READ"), &[]),
    ("TOKEN_INFO", Some("USER_PAT_READ"), &[]),
    ("MEMBER_EMAIL", Some("MEMBER_EMAIL_READ"), &[]),
    ("EXECUTION_INFO", Some("PIPELINE_READ"), &[]),
    ("EXECUTION_RUN", Some("PIPELINE_RUN"), &["EXECUTION_INFO"]),
    (
        "EXECUTION_MANAGE",
        None,
        &["EXECUTION_RUN", "EXECUTION_INFO"],
    ),
    ("VARIABLE_INFO", Some("VARIABLE_READ"), &[]),
    ("INTEGRATION_INFO", Some("INTEGRATION_READ"), &[]),
];

/// The (classic) scope a Buddy API route needs, per the "Required scopes" of Buddy's API pages: the
/// workspace routes and the identifiers lookup need `WORKSPACE`; pipelines and runs `EXECUTION_INFO`,
/// starting or changing a run `EXECUTION_RUN`.
pub(crate) fn required_scope(method: &axum::http::Method, path: &str) -> Option<&'static str> {
    let read = matches!(*method, axum::http::Method::GET | axum::http::Method::HEAD);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    Some(match segments.as_slice() {
        ["user", "tokens", ..] | ["user", "token"] => "TOKEN_INFO",
        ["user", ..] => "USER_INFO",
        [
            "workspaces",
            _,
            "projects",
            _,
            "pipelines",
            _,
            "executions",
            ..,
        ] if !read => "EXECUTION_RUN",
        ["workspaces", _, "projects", _, "pipelines", ..] => "EXECUTION_INFO",
        ["workspaces", _, "variables", ..] => "VARIABLE_INFO",
        ["workspaces", _, "integrations", ..] => "INTEGRATION_INFO",
        ["workspaces", ..] => "WORKSPACE",
        _ => return None,
    })
}

/// Whether granted scopes (in either name) cover `required` (a classic name).
pub(crate) fn grants_scope(granted: &[String], required: &str) -> bool {
    granted.iter().any(|g| {
        let row = SCOPES
            .iter()
            .find(|(c, n, _)| *c == g.as_str() || *n == Some(g.as_str()));
        match row {
            Some((classic, _, implies)) => *classic == required || implies.contains(&required),
            None => g == required,
        }
    })
}

/// A 403 for a token without the route's scope (the sim's wording; Buddy's own is not documented).
pub(crate) fn scope_denied(required: &str) -> Response {
    let newer = SCOPES
        .iter()
        .find(|(c, _, _)| *c == required)
        .and_then(|(_, n, _)| *n)
        .map(|n| format!(" (or {n})"))
        .unwrap_or_default();
    super::error(
        Which::Buddy,
        StatusCode::FORBIDDEN,
        &format!("Insufficient token scopes: this request needs {required}{newer}."),
    )
}

#[cfg(test)]
mod tests {
    use reqwest::{Method, StatusCode};
    use serde_json::{Value, json};

    use crate::sim::{BUDDY_TOKEN, Sim};

    const WEB: &str = "/workspaces/acme/projects/web/pipelines";

    async fn call(
        sim: &Sim,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        crate::app::install_tls_provider();
        let mut request = reqwest::Client::new()
            .request(method, format!("{}{path}", sim.buddy_url))
            .bearer_auth(BUDDY_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("sim answers");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(sim: &Sim, path: &str) -> (StatusCode, Value) {
        call(sim, Method::GET, path, None).await
    }

    async fn patch(sim: &Sim, path: &str, operation: &str) -> (StatusCode, Value) {
        call(
            sim,
            Method::PATCH,
            path,
            Some(json!({"operation": operation})),
        )
        .await
    }

    fn statuses(run: &Value) -> Vec<&str> {
        run["action_executions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["status"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn routes_need_buddys_scopes_under_either_name() {
        use super::{grants_scope, required_scope};
        use axum::http::Method;
        let granted = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for (method, path, scope) in [
            (Method::GET, "/user", "USER_INFO"),
            (Method::GET, "/user/tokens", "TOKEN_INFO"),
            (Method::GET, "/workspaces/acme/identifiers", "WORKSPACE"),
            (Method::GET, "/workspaces/acme/members", "WORKSPACE"),
            (
                Method::GET,
                &format!("{WEB}/1/executions/5117"),
                "EXECUTION_INFO",
            ),
            (
                Method::POST,
                &format!("{WEB}/1/executions"),
                "EXECUTION_RUN",
            ),
            (
                Method::PATCH,
                &format!("{WEB}/1/executions/5127"),
                "EXECUTION_RUN",
            ),
            (Method::GET, "/workspaces/acme/variables", "VARIABLE_INFO"),
            (
                Method::GET,
                "/workspaces/acme/integrations/x",
                "INTEGRATION_INFO",
            ),
        ] {
            assert_eq!(
                required_scope(&method, path),
                Some(scope),
                "{method} {path}"
            );
        }
        assert!(grants_scope(&granted(&["PIPELINE_READ"]), "EXECUTION_INFO"));
        assert!(grants_scope(&granted(&["PIPELINE_RUN"]), "EXECUTION_INFO"));
        assert!(grants_scope(&granted(&["EXECUTION_RUN"]), "EXECUTION_RUN"));
        assert!(grants_scope(&granted(&["VARIABLE_READ"]), "VARIABLE_INFO"));
        assert!(grants_scope(
            &granted(&["INTEGRATION_READ"]),
            "INTEGRATION_INFO"
        ));
        assert!(grants_scope(&granted(&["USER_PAT_READ"]), "TOKEN_INFO"));
        assert!(grants_scope(
            &granted(&["MEMBER_EMAIL_READ"]),
            "MEMBER_EMAIL"
        ));
        assert!(!grants_scope(&granted(&["PIPELINE_READ"]), "EXECUTION_RUN"));
        assert!(!grants_scope(
            &granted(&["EXECUTION_INFO", "USER_INFO"]),
            "WORKSPACE"
        ));
    }

    #[tokio::test]
    async fn every_catalog_example_reaches_a_sim_route() {
        let failures = super::super::example_failures("buddy").await;
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[tokio::test]
    async fn runs_page_newest_first_with_buddy_page_fields() {
        let sim = Sim::start().await.unwrap();
        let (status, first) = get(&sim, &format!("{WEB}/1/executions?per_page=10")).await;
        assert_eq!(status, 200);
        assert_eq!(
            (first["page"].clone(), first["page_size"].clone()),
            (json!(1), json!(10))
        );
        assert_eq!(first["total_element_count"], 28);
        assert_eq!(first["total_page_count"], 3);
        assert_eq!(first["executions"].as_array().unwrap().len(), 10);
        assert_eq!(first["executions"][0]["id"], 5128);
        let (_, last) = get(&sim, &format!("{WEB}/1/executions?per_page=10&page=3")).await;
        assert_eq!(last["element_count"], 8);
        assert_eq!(last["executions"][7]["id"], 5101);
        let seen: Vec<&str> = first["executions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["status"].as_str().unwrap())
            .collect();
        for status in [
            "ENQUEUED",
            "INPROGRESS",
            "FAILED",
            "SUCCESSFUL",
            "TERMINATED",
        ] {
            assert!(seen.contains(&status), "{status} missing from {seen:?}");
        }
    }

    #[tokio::test]
    async fn unknown_things_are_404_with_buddys_error_body() {
        let sim = Sim::start().await.unwrap();
        for path in [
            "/workspaces/nope".to_string(),
            "/workspaces/acme/projects/nope".into(),
            format!("{WEB}/999"),
            format!("{WEB}/build-and-test"),
            format!("{WEB}/1/executions/1"),
            format!("{WEB}/1/executions/5117/action_executions/0123456789abcdef01234567/logs"),
            format!("{WEB}/1/executions/5117/actions/999"),
            "/workspaces/acme/identifiers?project=web&pipeline=nope".into(),
            "/workspaces/acme/variables/999".into(),
            "/workspaces/acme/integrations/nope".into(),
        ] {
            let (status, body) = get(&sim, &path).await;
            assert_eq!(status, 404, "{path}");
            assert!(
                body["errors"][0]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "{path}: {body}"
            );
        }
    }

    #[tokio::test]
    async fn identifiers_resolve_a_pipeline_identifier() {
        let sim = Sim::start().await.unwrap();
        let (status, body) = get(
            &sim,
            "/workspaces/acme/identifiers?project=web&pipeline=deploy-production",
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            (body["domain"].clone(), body["pipeline_id"].clone()),
            (json!("acme"), json!(2))
        );
    }

    #[tokio::test]
    async fn stop_retry_and_approve_change_the_run_or_refuse() {
        let sim = Sim::start().await.unwrap();
        let run = |pipeline: u64, id: u64| format!("{WEB}/{pipeline}/executions/{id}");

        let (status, stopped) = patch(&sim, &run(1, 5127), "CANCEL").await;
        assert_eq!(status, 200);
        assert_eq!(stopped["status"], "TERMINATED");
        assert!(stopped["finish_date"].is_string());
        assert_eq!(
            statuses(&stopped),
            ["SUCCESSFUL", "TERMINATED", "NOT_EXECUTED", "NOT_EXECUTED"]
        );
        let (status, body) = patch(&sim, &run(1, 5127), "CANCEL").await;
        assert_eq!(status, 400);
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("already finished"),
            "{body}"
        );

        let (status, _) = patch(&sim, &run(1, 5125), "RETRY").await;
        assert_eq!(status, 400, "a successful run cannot be retried");
        let (status, retried) = patch(&sim, &run(1, 5126), "RETRY").await;
        assert_eq!(status, 200);
        assert_eq!(retried["status"], "INPROGRESS");
        assert!(retried["finish_date"].is_null());
        assert_eq!(
            statuses(&retried),
            ["SUCCESSFUL", "SUCCESSFUL", "INPROGRESS", "ENQUEUED"]
        );

        let (status, approved) = patch(&sim, &run(2, 5205), "APPLY").await;
        assert_eq!(status, 200);
        assert_eq!(approved["status"], "INPROGRESS");
        assert_eq!(
            statuses(&approved),
            ["SUCCESSFUL", "SUCCESSFUL", "INPROGRESS", "ENQUEUED"]
        );
        let (status, _) = patch(&sim, &run(2, 5205), "APPLY").await;
        assert_eq!(status, 400, "no longer waiting for approval");

        let (status, _) = patch(&sim, &run(1, 5124), "EXPLODE").await;
        assert_eq!(status, 400);
    }

    #[tokio::test]
    async fn a_run_request_is_checked_then_queued_at_the_top() {
        let sim = Sim::start().await.unwrap();
        let post = |path: String, body: Value| {
            let sim = &sim;
            async move { call(sim, Method::POST, &path, Some(body)).await }
        };
        for (pipeline, body) in [
            ("1", json!({"variables": {"LOG_LEVEL": "debug"}})),
            ("1", json!({"variables": [{"value": "no key"}]})),
            ("1", json!({"to_revision": {"revision": "not-a-sha"}})),
            ("1", json!({"refresh": "yes"})),
            ("2", json!({"branch": {"name": "feature/x"}})),
        ] {
            let (status, body) = post(format!("{WEB}/{pipeline}/executions"), body).await;
            assert_eq!(status, 400, "{body}");
            assert!(body["errors"][0]["message"].is_string());
        }
        let (status, _) = post(
            "/workspaces/acme/projects/api/pipelines/5/executions".into(),
            json!({}),
        )
        .await;
        assert_eq!(status, 400, "a disabled pipeline does not run");

        let (status, run) = post(
            format!("{WEB}/1/executions"),
            json!({"branch": {"name": "main"}, "comment": "hi"}),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            (run["id"].clone(), run["status"].clone()),
            (json!(6001), json!("ENQUEUED"))
        );
        assert_eq!(
            (run["branch"]["name"].clone(), run["comment"].clone()),
            (json!("main"), json!("hi"))
        );
        let (_, list) = get(&sim, &format!("{WEB}/1/executions?per_page=1")).await;
        assert_eq!(list["executions"][0]["id"], 6001);
        assert_eq!(list["total_element_count"], 29);

        let (status, run) = post(format!("{WEB}/3/executions"), json!({})).await;
        assert_eq!(status, 200);
        assert_eq!(
            run["status"], "INPROGRESS",
            "nothing else is running on nightly-e2e"
        );
        assert_eq!(run["branch"]["name"], "main");
    }

    #[tokio::test]
    async fn a_failed_test_action_has_a_long_log_read_by_line() {
        let sim = Sim::start().await.unwrap();
        let (_, run) = get(&sim, &format!("{WEB}/1/executions/5117")).await;
        assert_eq!(
            statuses(&run),
            ["SUCCESSFUL", "SUCCESSFUL", "FAILED", "NOT_EXECUTED"]
        );
        // As in Buddy's documented run example, the run's actions carry no action execution id.
        assert!(
            run["action_executions"][0]
                .get("action_execution_id")
                .is_none()
        );
        let id = |i: usize| super::action_execution_id(5117, i);
        let logs = |i: usize, query: &str| {
            format!(
                "{WEB}/1/executions/5117/action_executions/{}/logs?{query}",
                id(i)
            )
        };

        let (status, all) = get(&sim, &logs(2, "limit=1000")).await;
        assert_eq!(status, 200);
        let total = all["total_element_count"].as_u64().unwrap();
        assert!(total >= 300, "{total} lines");
        let text: Vec<&str> = all["logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect();
        assert!(
            text.iter().any(|l| l.starts_with("Tests:       1 failed")),
            "{text:?}"
        );

        let (_, default) = get(&sim, &logs(2, "")).await;
        assert_eq!(default["element_count"], 100, "Buddy's default limit");
        let (_, tail) = get(&sim, &logs(2, "offset=300&limit=5")).await;
        assert_eq!(
            (tail["offset"].clone(), tail["element_count"].clone()),
            (json!(300), json!(5))
        );
        assert_eq!(tail["logs"][0], all["logs"][300]);

        let (_, not_run) = get(&sim, &logs(3, "")).await;
        assert_eq!(not_run["total_element_count"], 0);
    }

    #[tokio::test]
    async fn variables_are_scoped_and_secrets_stay_encrypted() {
        let sim = Sim::start().await.unwrap();
        let keys = |body: &Value| -> Vec<String> {
            body["variables"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["key"].as_str().unwrap().to_string())
                .collect()
        };
        let (_, workspace) = get(&sim, "/workspaces/acme/variables").await;
        assert_eq!(
            keys(&workspace),
            ["API_BASE_URL", "NPM_TOKEN", "NODE_VERSION"]
        );
        let secret = &workspace["variables"][1];
        assert_eq!(secret["encrypted"], true);
        assert!(secret["value"].as_str().unwrap().starts_with("!encrypted "));
        let (_, project) = get(&sim, "/workspaces/acme/variables?project_name=web").await;
        assert_eq!(keys(&project), ["NODE_ENV", "SENTRY_DSN"]);
        let (_, pipeline) = get(
            &sim,
            "/workspaces/acme/variables?project_name=web&pipeline_id=2",
        )
        .await;
        assert_eq!(keys(&pipeline), ["DEPLOY_HOST", "DEPLOY_KEY"]);
        let (status, _) = get(&sim, "/workspaces/acme/variables?pipeline_id=999").await;
        assert_eq!(status, 404);
    }

    // --- runs started through the API progress ------------------------------------------------------

    /// One step length in the tests: long, so real time passing during a test never moves a run.
    const STEP: std::time::Duration = std::time::Duration::from_secs(60);

    async fn start_run(sim: &Sim, pipeline: u64, branch: &str) -> (String, Value) {
        sim.state.set_run_step_ms(STEP.as_millis() as u64);
        let (status, run) = call(
            sim,
            Method::POST,
            &format!("{WEB}/{pipeline}/executions"),
            Some(json!({"branch": {"name": branch}})),
        )
        .await;
        assert_eq!(status, 200, "{run}");
        (format!("{WEB}/{pipeline}/executions/{}", run["id"]), run)
    }

    /// An action's log through the per-action endpoint, by the action id the run shows.
    async fn log_of(sim: &Sim, path: &str, run: &Value, idx: usize) -> Vec<String> {
        let id = &run["action_executions"][idx]["action"]["id"];
        let (status, details) = get(sim, &format!("{path}/actions/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(
            details["status"], run["action_executions"][idx]["status"],
            "{details}"
        );
        details["log"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect()
    }

    #[tokio::test]
    async fn a_run_waits_its_turn_then_succeeds_action_by_action() {
        let sim = Sim::start().await.unwrap();
        let (path, run) = start_run(&sim, 1, "main").await;
        assert_eq!(run["status"], "ENQUEUED", "5127 is running");
        assert_eq!(sim.state.live_runs(super::Which::Buddy), 1);
        // The same GET before and after the clock moved: the answer cache must not hide the progress.
        let (_, same) = get(&sim, &path).await;
        assert_eq!(same["status"], "ENQUEUED");
        sim.state.advance(STEP);
        let (_, run) = get(&sim, &path).await;
        assert_eq!(run["status"], "INPROGRESS");
        assert_eq!(
            statuses(&run),
            ["INPROGRESS", "ENQUEUED", "ENQUEUED", "ENQUEUED"]
        );
        let partial = log_of(&sim, &path, &run, 0).await;
        assert!(!partial.is_empty() && !partial.iter().any(|l| l.starts_with("Build finished")));
        for expected in [
            ["SUCCESSFUL", "INPROGRESS", "ENQUEUED", "ENQUEUED"],
            ["SUCCESSFUL", "SUCCESSFUL", "INPROGRESS", "ENQUEUED"],
            ["SUCCESSFUL", "SUCCESSFUL", "SUCCESSFUL", "INPROGRESS"],
        ] {
            sim.state.advance(STEP);
            let (_, run) = get(&sim, &path).await;
            assert_eq!(statuses(&run), expected);
            assert!(run["finish_date"].is_null());
        }
        sim.state.advance(STEP);
        let (_, run) = get(&sim, &path).await;
        assert_eq!(run["status"], "SUCCESSFUL");
        assert_eq!(statuses(&run), ["SUCCESSFUL"; 4]);
        assert!(run["finish_date"].is_string());
        assert_eq!(sim.state.live_runs(super::Which::Buddy), 0);
        let tests = log_of(&sim, &path, &run, 2).await;
        assert!(
            tests
                .iter()
                .any(|l| l.starts_with("Tests:") && l.contains("193 passed"))
        );
        let (_, list) = get(&sim, &format!("{WEB}/1/executions?per_page=1")).await;
        assert_eq!(list["executions"][0]["status"], "SUCCESSFUL");

        let (_, seeded) = get(&sim, &format!("{WEB}/1/executions/5127")).await;
        assert_eq!(seeded["status"], "INPROGRESS", "seeded runs never move");
    }

    #[tokio::test]
    async fn a_run_on_the_failing_branch_fails_its_tests_with_the_error_at_the_end_of_the_log() {
        let sim = Sim::start().await.unwrap();
        let (path, run) = start_run(&sim, 1, super::FAILING_BRANCH).await;
        assert_eq!(run["status"], "ENQUEUED");
        sim.state.advance(STEP * 3);
        let (_, run) = get(&sim, &path).await;
        assert_eq!(
            statuses(&run),
            ["SUCCESSFUL", "SUCCESSFUL", "INPROGRESS", "ENQUEUED"]
        );
        sim.state.advance(STEP);
        let (_, run) = get(&sim, &path).await;
        assert_eq!(run["status"], "FAILED");
        assert_eq!(
            statuses(&run),
            ["SUCCESSFUL", "SUCCESSFUL", "FAILED", "NOT_EXECUTED"]
        );
        assert!(run["finish_date"].is_string());
        let log = log_of(&sim, &path, &run, 2).await;
        let tail = log[log.len() - 30..].join("\n");
        for needle in [
            "FAIL src/cart/utils.test.ts",
            "● cart utils › rounds line totals to cents",
            "Expected: 19.99",
            "Received: 19.990000000000002",
            "Tests:       1 failed",
            "Action failed: command `npm test -- --ci` exited with code 1",
        ] {
            assert!(tail.contains(needle), "{needle} not in the tail:\n{tail}");
        }
        assert!(log_of(&sim, &path, &run, 3).await.is_empty());
        sim.state.advance(STEP * 10);
        assert_eq!(get(&sim, &path).await.1["status"], "FAILED");

        // RETRY resumes from the failed action, which fails again.
        let (status, retried) = patch(&sim, &path, "RETRY").await;
        assert_eq!(status, 200);
        assert_eq!(retried["status"], "INPROGRESS");
        assert_eq!(sim.state.live_runs(super::Which::Buddy), 1);
        sim.state.advance(STEP);
        assert_eq!(get(&sim, &path).await.1["status"], "FAILED");
    }

    #[tokio::test]
    async fn a_cancelled_run_stays_terminated() {
        let sim = Sim::start().await.unwrap();
        let (path, run) = start_run(&sim, 3, "main").await;
        assert_eq!(run["status"], "INPROGRESS");
        sim.state.advance(STEP);
        let (status, stopped) = patch(&sim, &path, "CANCEL").await;
        assert_eq!(status, 200);
        assert_eq!(statuses(&stopped), ["SUCCESSFUL", "TERMINATED"]);
        assert_eq!(sim.state.live_runs(super::Which::Buddy), 0);
        sim.state.advance(STEP * 10);
        let (_, run) = get(&sim, &path).await;
        assert_eq!(run["status"], "TERMINATED");
        assert_eq!(statuses(&run), ["SUCCESSFUL", "TERMINATED"]);
    }

    #[tokio::test]
    async fn a_run_stops_at_an_approval_until_applied() {
        let sim = Sim::start().await.unwrap();
        let (path, run) = start_run(&sim, 2, "main").await;
        assert_eq!(run["status"], "ENQUEUED", "5205 waits for approval");
        sim.state.advance(STEP * 2);
        let (_, run) = get(&sim, &path).await;
        assert_eq!(run["status"], "WAITING_FOR_APPLY");
        assert_eq!(sim.state.live_runs(super::Which::Buddy), 0);
        sim.state.advance(STEP * 10);
        assert_eq!(get(&sim, &path).await.1["status"], "WAITING_FOR_APPLY");
        let (status, applied) = patch(&sim, &path, "APPLY").await;
        assert_eq!(status, 200);
        assert_eq!(
            statuses(&applied),
            ["SUCCESSFUL", "SUCCESSFUL", "INPROGRESS", "ENQUEUED"]
        );
        sim.state.advance(STEP * 2);
        assert_eq!(get(&sim, &path).await.1["status"], "SUCCESSFUL");
    }
}
