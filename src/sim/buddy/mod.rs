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
//! (`required_scope`; a 403 otherwise): `WORKSPACE` for workspaces, members, projects and the
//! identifiers lookup, `EXECUTION_INFO`/`EXECUTION_RUN` for pipelines and runs, and so on, each also
//! under its newer name (`PIPELINE_READ`, `PIPELINE_RUN`, `VARIABLE_READ`, `INTEGRATION_READ`); members
//! carry `email` only with `MEMBER_EMAIL`. Static tokens may do everything.
//!
//! # Layout
//! This file holds the router and the error replies; each concern has a file of its own:
//! - data: `model.rs` (types, lookups, the run clock), `seed.rs`, `render.rs` (objects as Buddy renders
//!   them), `logs.rs` (action logs);
//! - routes: `workspaces.rs` (reads), `runs.rs` (runs and actions), `variables.rs` (variables and
//!   integrations), `scopes.rs` (which scope a route needs);
//! - `tests.rs` and `tests/runs.rs`.
//!
//! Every file starts with `use super::*;`: it takes this module's imports and, through the globs below,
//! the `pub(super)` items of its siblings, as when they were one file.

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

mod logs;
mod model;
mod render;
mod runs;
mod scopes;
mod seed;
#[cfg(test)]
mod tests;
mod variables;
mod workspaces;

pub use model::{Action, Data, Execution, Live, Pipeline, Project, Step, Workspace};
pub(crate) use scopes::{grants_scope, required_scope, scope_denied};

use logs::*;
use render::*;
use runs::*;
use seed::*;
use variables::*;
use workspaces::*;

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
