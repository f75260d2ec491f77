//! The seed: builds `acme/api`, the small repositories and their pipelines from the tables.

use super::*;

pub(super) fn seed_api(next_comment_id: &mut u64) -> Repo {
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
pub(super) fn seed_small(workspace: &str, slug: &str, description: &str, language: &str) -> Repo {
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
pub(super) fn api_pipelines(repo: &Repo) -> Vec<Pipeline> {
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
pub(super) fn is_manual(name: &str) -> bool {
    name == "Deploy to production"
}

pub(super) fn step_script(name: &str) -> Vec<String> {
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
