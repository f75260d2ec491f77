//! The seed: people, commits, workspaces `acme` and `sidelab` with their projects, runs and settings.

use super::*;

/// `(id, name, email)` of everyone who appears in the seed; id 1 is the static token's user (account
/// `mike`), id 2 the second OAuth account (`nina`).
pub(super) const PEOPLE: &[(u64, &str, &str)] = &[
    (1, "Mike Benson", "mike.benson@buddy.works"),
    (2, "Nina Alvarez", "nina.alvarez@acme.dev"),
    (3, "Tom Kowalski", "tom.kowalski@acme.dev"),
    (4, "Priya Natarajan", "priya.natarajan@acme.dev"),
    (5, "Lee Chen", "lee.chen@acme.dev"),
];

pub(super) const COMMITS: &[&str] = &[
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

    pub(super) fn seed_calendar() -> Self {
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
pub(super) fn tokens(now_ms: Time) -> Vec<Value> {
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

pub(super) fn token(id: &str, name: &str, expires_at: Option<&str>) -> Value {
    json!({
        "url": format!("{API}/user/tokens/{id}"),
        "html_url": format!("{APP}/my-id/api-tokens/{id}"),
        "id": id,
        "name": name,
        "expires_at": expires_at,
    })
}

pub(super) fn acme() -> Workspace {
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
pub(super) fn acme_variables() -> Vec<Value> {
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
pub(super) fn acme_integrations() -> Vec<Value> {
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

pub(super) fn sidelab() -> Workspace {
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

pub(super) fn build_and_test() -> Pipeline {
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

pub(super) fn deploy_production() -> Pipeline {
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

pub(super) fn nightly_e2e() -> Pipeline {
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

pub(super) fn api_ci() -> Pipeline {
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

pub(super) fn api_release() -> Pipeline {
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

pub(super) fn android_beta() -> Pipeline {
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

pub(super) fn pipeline(
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

pub(super) fn action(id: u64, name: &'static str, step: Step) -> Action {
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
pub(super) fn history(
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
pub(super) enum Scope {
    Workspace,
    Project(&'static str),
    /// Project name and pipeline id.
    Pipeline(&'static str, u64),
}

/// A seeded variable's value: plain, or a secret that Buddy only ever returns as an `!encrypted` blob.
#[derive(Debug, Clone, Copy)]
pub(super) enum Val {
    Plain(&'static str),
    Secret,
    SshKey,
}

pub(super) fn variable(
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
pub(super) type IntegrationRow = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static [(u64, &'static str)],
);

pub(super) fn integration(domain: &str, row: IntegrationRow) -> Value {
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
