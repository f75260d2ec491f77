//! Action logs: the text each action of a run writes.

use super::*;

/// Console output of one action in a run: a full test run (a few hundred lines) for test actions, a few
/// dozen lines for the rest. A running action shows the first part, an action not started nothing.
pub(super) fn log_lines(p: &Project, e: &Execution, idx: usize, a: &Action) -> Vec<String> {
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

pub(super) fn preamble(p: &Project, e: &Execution) -> Vec<String> {
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

pub(super) fn install_log(p: &Project) -> Vec<String> {
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

pub(super) fn lint_log() -> Vec<String> {
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

pub(super) const MODULES: &[&str] = &[
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
pub(super) const FILES: &[&str] = &[
    "api",
    "store",
    "hooks",
    "utils",
    "validation",
    "format",
    "components",
    "routes",
];
pub(super) const CASES: &[&str] = &[
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
pub(super) fn test_log(p: &Project, failed: bool) -> Vec<String> {
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

pub(super) fn failure_block(path: &str) -> Vec<String> {
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

pub(super) fn docker_log(p: &Project, e: &Execution) -> Vec<String> {
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

pub(super) fn upload_log(p: &Project) -> Vec<String> {
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

pub(super) fn approval_log(e: &Execution, status: &str) -> Vec<String> {
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
