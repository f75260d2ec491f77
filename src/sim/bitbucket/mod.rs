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
//! - A GET takes `fields` (a partial response: only the listed dot paths, `-path` to drop one).
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
//!
//! # Layout
//! This file holds the router; each concern has a file of its own:
//! - data: `model.rs` (types and clocks), `seed.rs` and `seed_tables.rs` (the seed), `ids.rs` (identifiers and
//!   time), `builders.rs` (people, links, rendered text), `render.rs` (objects as Bitbucket renders them);
//! - requests and replies: `reply.rs` (error and success shapes), `query.rs` (BBQL and `sort`),
//!   `fields.rs` (partial responses: `?fields=`);
//! - routes: `repos.rs`, `src.rs`, `pulls.rs`, `merge.rs`, `pipelines.rs` (with the logs' long-term storage);
//! - contents: `files.rs` (the repository's files, read from `src/sim/fixtures/bitbucket/`, and diffs),
//!   `logs.rs` (step logs);
//! - `tests.rs` and `tests/runs.rs`.
//!
//! Every file starts with `use super::*;`: it takes this module's imports and, through the globs below,
//! the `pub(super)` items of its siblings, as when they were one file.

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

mod builders;
mod fields;
mod files;
mod ids;
mod logs;
mod merge;
mod model;
mod pipelines;
mod pulls;
mod query;
mod render;
mod reply;
mod repos;
mod seed;
mod seed_tables;
mod src;
#[cfg(test)]
mod tests;

pub(crate) use fields::{asked_fields, partial_response};
pub use model::{
    Activity, Branch, Comment, Commit, Data, Live, MergeTask, Participant, Pipeline, PullRequest,
    Repo, Step, Workspace,
};
pub use pipelines::storage_router;

use builders::*;
use files::*;
use ids::*;
use logs::*;
use merge::*;
use pipelines::*;
use pulls::*;
use query::*;
use render::*;
use reply::*;
use repos::*;
use seed::*;
use seed_tables::*;
use src::*;

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
