//! The MCP face of long runs as tasks (the `io.modelcontextprotocol/tasks` extension): which calls become
//! a task, and `tasks/get` (with the result once completed) and `tasks/cancel` over the gateway's
//! [`TaskBook`]. A 2025-11-25 session that declared the extension may also list its tasks
//! (`tasks/list`) and wait for a result (`tasks/result`), 2025's names; from 2026-07-28 on the
//! extension removed both, so they are unknown methods there (-32601).
//!
//! A call becomes a task only when the client declared the extension, devgate keeps tasks (it has a
//! store) and the catalog marks the tool `task = true`; then the write runs in the request as any
//! other (policy and confirmation included) and the task follows what it started. Everyone else keeps
//! `wait`.

use std::sync::Arc;

use rmcp::model::{
    CallToolResponse, CreateTaskResult, CustomRequest, CustomResult, DetailedTask, GetTaskResult,
    TaskPayload,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer};
use serde_json::{Value, json};

use crate::gateway::tasks::book::{Cancelled, TaskBook};
use crate::gateway::{Followed, Gateway, Outcome};

/// `tasks/list`: the caller's tasks, newest first (2025-11-25's name; the extension has none).
pub const LIST_METHOD: &str = "tasks/list";
/// `tasks/result`: waits for the task to end and returns its tool result (2025-11-25's name; with the
/// extension, `tasks/get` carries the result once the task completed).
pub const RESULT_METHOD: &str = "tasks/result";

/// Whether this call is to run as a task: the client declared the extension, devgate keeps tasks, and
/// the tool may run as one.
pub fn wanted(gateway: &Gateway, tool: &str, context: &RequestContext<RoleServer>) -> bool {
    gateway.task_book().is_some()
        && gateway.runs_as_task(tool)
        && context
            .client_capabilities()
            .is_some_and(|c| c.supports_tasks())
}

/// The answer to a call that started something to follow as a task: the task, stored before it is
/// returned; if the store fails, an `isError` result saying the run started and how to check it.
pub async fn started(
    gateway: &Arc<Gateway>,
    user: &str,
    tool: &str,
    followed: Followed,
) -> (Outcome, CallToolResponse) {
    let Some(book) = gateway.task_book() else {
        return (Outcome::InternalError, not_kept(tool).into());
    };
    match book.create(gateway, user, tool, followed).await {
        Ok(task) => (
            Outcome::Ok,
            CallToolResponse::Task(CreateTaskResult::new(task)),
        ),
        Err(e) => {
            tracing::error!(error = %e, "a task could not be stored");
            (Outcome::InternalError, not_kept(tool).into())
        }
    }
}

/// The result when the started run cannot be kept as a task.
fn not_kept(tool: &str) -> rmcp::model::CallToolResult {
    rmcp::model::CallToolResult::error(vec![rmcp::model::ContentBlock::text(format!(
        "{tool} started, but devgate could not keep it as a task because its database failed; check the run with the provider's read tools instead of starting it again."
    ))])
}

fn book(gateway: &Gateway) -> Result<&Arc<TaskBook>, McpError> {
    gateway
        .task_book()
        .ok_or_else(McpError::method_not_found::<rmcp::model::GetTaskMethod>)
}

fn unknown(id: &str) -> McpError {
    let shown: String = id.chars().take(64).collect();
    McpError::invalid_params(
        format!("unknown task: {shown} (tasks belong to the user who started them and expire)"),
        None,
    )
}

fn store_failed(e: crate::vault::StoreError) -> McpError {
    tracing::error!(error = %e, "the task store failed");
    McpError::internal_error("devgate's database failed; try again shortly", None)
}

/// `tasks/get`: the user's task; another user's id, or an expired one, is unknown.
pub async fn get(gateway: &Arc<Gateway>, user: &str, id: &str) -> Result<GetTaskResult, McpError> {
    match book(gateway)?.get(gateway, user, id).await {
        Ok(Some(task)) => Ok(GetTaskResult::new(task)),
        Ok(None) => Err(unknown(id)),
        Err(e) => Err(store_failed(e)),
    }
}

/// `tasks/cancel`: stops devgate following the run (not the run itself); a task that already ended
/// is left as it is.
pub async fn cancel(gateway: &Gateway, user: &str, id: &str) -> Result<(), McpError> {
    match book(gateway)?.cancel(user, id).await {
        Ok(Cancelled::Now | Cancelled::AlreadyEnded) => Ok(()),
        Ok(Cancelled::Unknown) => Err(unknown(id)),
        Err(e) => Err(store_failed(e)),
    }
}

/// `tasks/list` and `tasks/result` for a 2025-11-25 session, or `None` (an unknown method) for any
/// other custom method or a 2026-07-28 request.
pub async fn custom(
    gateway: &Arc<Gateway>,
    user: &str,
    request: &CustomRequest,
    context: &RequestContext<RoleServer>,
) -> Option<Result<CustomResult, McpError>> {
    let modern = context
        .protocol_version()
        .is_none_or(|v| v.as_str() >= rmcp::model::ProtocolVersion::V_2026_07_28.as_str());
    let declared = context
        .client_capabilities()
        .is_some_and(|c| c.supports_tasks());
    if modern || !declared {
        return None;
    }
    match request.method.as_str() {
        LIST_METHOD => Some(list(gateway, user).await),
        RESULT_METHOD => {
            let id = request
                .params
                .as_ref()
                .and_then(|p| p.get("taskId"))
                .and_then(Value::as_str);
            Some(match id {
                Some(id) => result(gateway, user, id, context).await,
                None => Err(McpError::invalid_params("taskId: required", None)),
            })
        }
        _ => None,
    }
}

async fn list(gateway: &Gateway, user: &str) -> Result<CustomResult, McpError> {
    let tasks = book(gateway)?
        .list(gateway, user)
        .await
        .map_err(store_failed)?;
    Ok(CustomResult::new(json!({ "tasks": tasks })))
}

/// Waits (polling the store, so any instance answers) until the task ends, then returns its tool
/// result; a cancelled or failed task is an error.
async fn result(
    gateway: &Arc<Gateway>,
    user: &str,
    id: &str,
    context: &RequestContext<RoleServer>,
) -> Result<CustomResult, McpError> {
    let deadline = tokio::time::Instant::now()
        + std::time::Duration::from_secs(crate::gateway::tasks::TASK_FOLLOW_SECS);
    loop {
        let task: DetailedTask = get(gateway, user, id).await?.task;
        match task.payload {
            TaskPayload::Completed { result } => {
                return Ok(CustomResult::new(Value::Object(result)));
            }
            TaskPayload::Cancelled => {
                return Err(McpError::invalid_request("the task was cancelled", None));
            }
            TaskPayload::Failed { error } => {
                return Err(McpError::internal_error(
                    "the task failed",
                    Some(Value::Object(error)),
                ));
            }
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(McpError::internal_error("the task is still working", None));
        }
        tokio::select! {
            () = tokio::time::sleep(gateway.task_poll()) => {}
            () = context.ct.cancelled() => {
                return Err(McpError::internal_error("the request was cancelled", None));
            }
        }
    }
}
