//! The stored side of long runs served as MCP tasks ([`crate::gateway::tasks`]): [`TaskStore`] is the
//! contract (every [`super::Store`] is one) and [`task_sql_store!`] writes its SQL once for SQLite and
//! PostgreSQL. A task is kept by the SHA-256 of its id and bound to its user in every statement, so a
//! task id alone reaches nothing; the instance following the run holds a renewable lease on the row.

use async_trait::async_trait;

use super::{StoreError, Timestamp};

/// Where a task stands (the MCP task statuses devgate uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// devgate is following the run.
    Working,
    /// Finished with a tool result (which may be an `isError` result, e.g. a failed run).
    Completed,
    /// devgate could not produce a result (its own fault, or a sealed value that no longer opens).
    Failed,
    /// The client cancelled it: devgate stopped following (the run itself goes on).
    Cancelled,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Working => "working",
            TaskState::Completed => "completed",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Self {
        match text {
            "completed" => TaskState::Completed,
            "failed" => TaskState::Failed,
            "cancelled" => TaskState::Cancelled,
            _ => TaskState::Working,
        }
    }
}

/// One task. `work` and `result` are sealed for (user, task).
#[derive(Clone, PartialEq, Eq)]
pub struct TaskRow {
    /// SHA-256 of the task id the client holds.
    pub task_hash: String,
    pub user: String,
    pub tool: String,
    pub state: TaskState,
    /// The last progress line (a run's steps), shown as the task's status message.
    pub status_message: Option<String>,
    /// What to follow, sealed: an instance taking the task over reads it.
    pub work: String,
    /// The final tool result, sealed, once completed.
    pub result: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub expires_at: Timestamp,
    /// Until when the instance following the run holds it; `None` once nobody needs to.
    pub lease_until: Option<Timestamp>,
}

impl std::fmt::Debug for TaskRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskRow")
            .field("user", &self.user)
            .field("tool", &self.tool)
            .field("state", &self.state)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Tasks in the store. Every read takes the user and `now`: another user's task, or an expired one, is
/// not there.
#[async_trait]
pub trait TaskStore: Send + Sync {
    /// Stores a new task, its lease held by `holder` until `lease_until`.
    async fn put_task(
        &self,
        row: &TaskRow,
        holder: &str,
        lease_until: Timestamp,
    ) -> Result<(), StoreError>;
    /// The user's task with this hash, unless it expired at `now`.
    async fn task(
        &self,
        task_hash: &str,
        user: &str,
        now: Timestamp,
    ) -> Result<Option<TaskRow>, StoreError>;
    /// The user's unexpired tasks, newest first, at most `limit`.
    async fn tasks(
        &self,
        user: &str,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<TaskRow>, StoreError>;
    /// Takes (or renews) the lease of a working task for `holder` until `until`, unless another holder's
    /// lease is unexpired at `now`. False when the task is no longer working (cancelled, finished) or
    /// another instance holds it: the caller stops following.
    async fn take_task_lease(
        &self,
        task_hash: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Sets the status message of a working task `holder` follows.
    async fn set_task_message(
        &self,
        task_hash: &str,
        holder: &str,
        message: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Ends a working task `holder` follows with `state` and its sealed result; false when it was
    /// cancelled (or taken over) meanwhile, which then stands.
    async fn finish_task(
        &self,
        task_hash: &str,
        holder: &str,
        state: TaskState,
        result: Option<&str>,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Cancels the user's working task; false when there is none (finished, cancelled, someone else's).
    async fn cancel_task(
        &self,
        task_hash: &str,
        user: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Deletes tasks that expired before `now`.
    async fn purge_tasks(&self, now: Timestamp) -> Result<u64, StoreError>;
}

/// Implements [`TaskStore`] for `$store` (rows `$row`), in a module where `sql_store!` already ran.
macro_rules! task_sql_store {
    ($store:ty, $row:ty) => {
        const TASK_COLUMNS: &str = "task_hash, user_id, tool, status, status_message, work, result, \
             created_at, updated_at, expires_at, lease_until";

        fn task_row(row: &$row) -> Result<$crate::vault::tasks::TaskRow, sqlx::Error> {
            Ok($crate::vault::tasks::TaskRow {
                task_hash: row.try_get("task_hash")?,
                user: row.try_get("user_id")?,
                tool: row.try_get("tool")?,
                state: $crate::vault::tasks::TaskState::parse(row.try_get("status")?),
                status_message: row.try_get("status_message")?,
                work: row.try_get("work")?,
                result: row.try_get("result")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
                expires_at: row.try_get("expires_at")?,
                lease_until: row.try_get("lease_until")?,
            })
        }

        #[async_trait]
        impl $crate::vault::tasks::TaskStore for $store {
            async fn put_task(
                &self,
                row: &$crate::vault::tasks::TaskRow,
                holder: &str,
                lease_until: i64,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO tasks (task_hash, user_id, tool, status, status_message, work, result, \
                       created_at, updated_at, expires_at, lease_holder, lease_until) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(&row.task_hash)
                .bind(&row.user)
                .bind(&row.tool)
                .bind(row.state.as_str())
                .bind(&row.status_message)
                .bind(&row.work)
                .bind(&row.result)
                .bind(row.created_at)
                .bind(row.updated_at)
                .bind(row.expires_at)
                .bind(holder)
                .bind(lease_until)
                .execute(&self.pool)
                .await
                .map(|_| ())
                .map_err(backend)
            }

            async fn task(
                &self,
                task_hash: &str,
                user: &str,
                now: i64,
            ) -> Result<Option<$crate::vault::tasks::TaskRow>, StoreError> {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {TASK_COLUMNS} FROM tasks \
                     WHERE task_hash = $1 AND user_id = $2 AND expires_at > $3"
                )))
                .bind(task_hash)
                .bind(user)
                .bind(now)
                .try_map(|row: $row| task_row(&row))
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)
            }

            async fn tasks(
                &self,
                user: &str,
                now: i64,
                limit: i64,
            ) -> Result<Vec<$crate::vault::tasks::TaskRow>, StoreError> {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {TASK_COLUMNS} FROM tasks WHERE user_id = $1 AND expires_at > $2 \
                     ORDER BY created_at DESC, task_hash LIMIT $3"
                )))
                .bind(user)
                .bind(now)
                .bind(limit)
                .try_map(|row: $row| task_row(&row))
                .fetch_all(&self.pool)
                .await
                .map_err(backend)
            }

            async fn take_task_lease(
                &self,
                task_hash: &str,
                holder: &str,
                now: i64,
                until: i64,
            ) -> Result<bool, StoreError> {
                sqlx::query(
                    "UPDATE tasks SET lease_holder = $1, lease_until = $2 \
                     WHERE task_hash = $3 AND status = 'working' \
                       AND (lease_until IS NULL OR lease_until <= $4 OR lease_holder = $5)",
                )
                .bind(holder)
                .bind(until)
                .bind(task_hash)
                .bind(now)
                .bind(holder)
                .execute(&self.pool)
                .await
                .map(|done| done.rows_affected() == 1)
                .map_err(backend)
            }

            async fn set_task_message(
                &self,
                task_hash: &str,
                holder: &str,
                message: &str,
                now: i64,
            ) -> Result<bool, StoreError> {
                sqlx::query(
                    "UPDATE tasks SET status_message = $1, updated_at = $2 \
                     WHERE task_hash = $3 AND lease_holder = $4 AND status = 'working'",
                )
                .bind(message)
                .bind(now)
                .bind(task_hash)
                .bind(holder)
                .execute(&self.pool)
                .await
                .map(|done| done.rows_affected() == 1)
                .map_err(backend)
            }

            async fn finish_task(
                &self,
                task_hash: &str,
                holder: &str,
                state: $crate::vault::tasks::TaskState,
                result: Option<&str>,
                now: i64,
            ) -> Result<bool, StoreError> {
                sqlx::query(
                    "UPDATE tasks SET status = $1, result = $2, updated_at = $3, \
                       lease_holder = NULL, lease_until = NULL \
                     WHERE task_hash = $4 AND lease_holder = $5 AND status = 'working'",
                )
                .bind(state.as_str())
                .bind(result)
                .bind(now)
                .bind(task_hash)
                .bind(holder)
                .execute(&self.pool)
                .await
                .map(|done| done.rows_affected() == 1)
                .map_err(backend)
            }

            async fn cancel_task(
                &self,
                task_hash: &str,
                user: &str,
                now: i64,
            ) -> Result<bool, StoreError> {
                sqlx::query(
                    "UPDATE tasks SET status = 'cancelled', updated_at = $1, \
                       lease_holder = NULL, lease_until = NULL \
                     WHERE task_hash = $2 AND user_id = $3 AND status = 'working' AND expires_at > $4",
                )
                .bind(now)
                .bind(task_hash)
                .bind(user)
                .bind(now)
                .execute(&self.pool)
                .await
                .map(|done| done.rows_affected() == 1)
                .map_err(backend)
            }

            async fn purge_tasks(&self, now: i64) -> Result<u64, StoreError> {
                sqlx::query("DELETE FROM tasks WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&self.pool)
                    .await
                    .map(|done| done.rows_affected())
                    .map_err(backend)
            }
        }
    };
}

pub(crate) use task_sql_store;
