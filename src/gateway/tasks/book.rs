//! The MCP tasks devgate keeps: each one stored ([`crate::vault::tasks`]), bound to its user, followed by
//! the instance that holds its lease, and taken over by any instance sharing the store once that lease
//! runs out (the instance that started it is gone).
//!
//! A task id is 32 random bytes (base64url): the store keeps only its SHA-256, and every read names the
//! user, so another user's id is simply not found. What to follow and the final result are sealed for
//! (user, task). Expired tasks are deleted when a new one starts. Cancelling stops devgate's polling,
//! not the run: stopping a pipeline is a change of its own, which the user has not confirmed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rmcp::model::{
    CallToolResult, ContentBlock, DetailedTask, JsonObject, Task, TaskPayload, TaskStatus,
};
use tokio_util::sync::CancellationToken;

use super::Followed;
use crate::gateway::Gateway;
use crate::vault::tasks::{TaskRow, TaskState};
use crate::vault::{StoreError, Timestamp, Vault, digest, now};

/// Tasks one `tasks/list` returns at most.
const LISTED: i64 = 50;

/// The stored tasks and the ones this instance follows.
pub struct TaskBook {
    vault: Arc<Vault>,
    /// This instance's name on the leases it holds.
    holder: String,
    ttl_secs: i64,
    lease_secs: i64,
    /// The tasks this instance follows, to stop at once on a cancel that lands here.
    following: Mutex<HashMap<String, CancellationToken>>,
}

/// What a cancel found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// The task was working; devgate stops following it.
    Now,
    /// It had already ended (completed, failed or cancelled).
    AlreadyEnded,
    /// No such task for this user.
    Unknown,
}

impl TaskBook {
    pub fn new(vault: Arc<Vault>, config: &crate::config::ToolsConfig) -> Self {
        Self {
            vault,
            holder: URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>()),
            ttl_secs: config.task_ttl_secs as i64,
            lease_secs: config.task_lease_secs as i64,
            following: Mutex::new(HashMap::new()),
        }
    }

    /// Stores a task for what `user`'s call of `tool` started, starts following it here, and returns the
    /// task as the client first sees it. The task is readable (`tasks/get`) before this returns.
    pub async fn create(
        self: &Arc<Self>,
        gateway: &Arc<Gateway>,
        user: &str,
        tool: &str,
        followed: Followed,
    ) -> Result<Task, StoreError> {
        let store = &self.vault.store;
        let at = now();
        match store.purge_tasks(at).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(purged = n, "expired tasks deleted"),
            Err(e) => tracing::warn!(error = %e, "expired tasks could not be deleted"),
        }
        let id = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let hash = digest(&id);
        let stored = Stored {
            id: id.clone(),
            followed: followed.clone(),
        };
        let work =
            serde_json::to_string(&stored).map_err(|e| StoreError::Backend(e.to_string()))?;
        let row = TaskRow {
            task_hash: hash.clone(),
            user: user.to_string(),
            tool: tool.to_string(),
            state: TaskState::Working,
            status_message: None,
            work: self.vault.seal(user, &sealed_for(&hash), &work),
            result: None,
            created_at: at,
            updated_at: at,
            expires_at: at + self.ttl_secs,
            lease_until: Some(at + self.lease_secs),
        };
        store
            .put_task(&row, &self.holder, at + self.lease_secs)
            .await?;
        tracing::info!(tool, "task started");
        self.follow(gateway, row.clone(), followed);
        Ok(self.task(gateway, &row, id))
    }

    /// The user's task with this id, as `tasks/get` shows it; `None` for an unknown, expired or other
    /// user's task. A working task whose follower is gone (its lease ran out) is taken over here.
    pub async fn get(
        self: &Arc<Self>,
        gateway: &Arc<Gateway>,
        user: &str,
        id: &str,
    ) -> Result<Option<DetailedTask>, StoreError> {
        let hash = digest(id);
        let at = now();
        let Some(mut row) = self.vault.store.task(&hash, user, at).await? else {
            return Ok(None);
        };
        // A lease counts to the end of its last second; a task this instance follows is never taken
        // over by it (its follower may just be late renewing).
        let lapsed = row.lease_until.is_none_or(|until| until < at);
        if row.state == TaskState::Working && lapsed && !self.lock().contains_key(&hash) {
            self.take_over(gateway, &row, at).await?;
            row = match self.vault.store.task(&hash, user, at).await? {
                Some(row) => row,
                None => return Ok(None),
            };
        }
        let task = self.task(gateway, &row, id.to_string());
        let payload = match row.state {
            TaskState::Working => TaskPayload::Working,
            TaskState::Cancelled => TaskPayload::Cancelled,
            TaskState::Completed => match self.result(&row) {
                Some(result) => TaskPayload::Completed { result },
                None => TaskPayload::Failed {
                    error: failure("the task's result no longer opens with this devgate's key"),
                },
            },
            TaskState::Failed => TaskPayload::Failed {
                error: failure(
                    "devgate could not follow the run; check it with the provider's tools",
                ),
            },
        };
        Ok(Some(DetailedTask::new(task, payload)))
    }

    /// The user's tasks, newest first, without their results (`tasks/list`).
    pub async fn list(&self, gateway: &Gateway, user: &str) -> Result<Vec<Task>, StoreError> {
        let rows = self.vault.store.tasks(user, now(), LISTED).await?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                let stored = self.stored(row)?;
                Some(self.task(gateway, row, stored.id))
            })
            .collect())
    }

    /// The task's sealed work, opened.
    fn stored(&self, row: &TaskRow) -> Option<Stored> {
        let work = self
            .vault
            .open(&row.user, &sealed_for(&row.task_hash), &row.work)
            .ok()?;
        serde_json::from_str(&work).ok()
    }

    /// Cancels the user's task: devgate stops following the run (here at once, on another instance at
    /// its next lease renewal). The run itself goes on.
    pub async fn cancel(&self, user: &str, id: &str) -> Result<Cancelled, StoreError> {
        let hash = digest(id);
        let at = now();
        if self.vault.store.cancel_task(&hash, user, at).await? {
            if let Some(token) = self.lock().remove(&hash) {
                token.cancel();
            }
            tracing::info!("task cancelled; the run itself goes on");
            return Ok(Cancelled::Now);
        }
        Ok(match self.vault.store.task(&hash, user, at).await? {
            Some(_) => Cancelled::AlreadyEnded,
            None => Cancelled::Unknown,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.following.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes over a working task whose follower is gone, if no other instance did first.
    async fn take_over(
        self: &Arc<Self>,
        gateway: &Arc<Gateway>,
        row: &TaskRow,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let store = &self.vault.store;
        if !store
            .take_task_lease(&row.task_hash, &self.holder, at, at + self.lease_secs)
            .await?
        {
            return Ok(());
        }
        match self.stored(row) {
            Some(Stored { followed, .. }) => {
                tracing::info!(tool = %row.tool, "task taken over from an instance that is gone");
                self.follow(gateway, row.clone(), followed);
            }
            None => {
                tracing::error!(tool = %row.tool, "a task's work does not open; it is marked failed");
                store
                    .finish_task(&row.task_hash, &self.holder, TaskState::Failed, None, at)
                    .await?;
            }
        }
        Ok(())
    }

    /// Follows the task's run on this instance until it ends, the task is cancelled, or another
    /// instance holds it; the lease is renewed meanwhile and each progress line becomes the status.
    fn follow(self: &Arc<Self>, gateway: &Arc<Gateway>, row: TaskRow, followed: Followed) {
        let stop = CancellationToken::new();
        self.lock().insert(row.task_hash.clone(), stop.clone());
        let (book, gateway) = (self.clone(), gateway.clone());
        let span = tracing::info_span!("task", user = %row.user, tool = %row.tool);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                book.work(&gateway, &row, followed, stop).await;
                book.lock().remove(&row.task_hash);
            },
            span,
        ));
    }

    async fn work(
        &self,
        gateway: &Gateway,
        row: &TaskRow,
        followed: Followed,
        stop: CancellationToken,
    ) {
        let store = &self.vault.store;
        let hash = &row.task_hash;
        let (progress, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
        let run = gateway.resume(&row.user, &row.tool, followed, Some(progress));
        tokio::pin!(run);
        let renew_every =
            std::time::Duration::from_millis((self.lease_secs as u64 * 1000 / 3).max(200));
        let mut renew = tokio::time::interval(renew_every);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                outcome = &mut run => {
                    let result = outcome.unwrap_or_else(|e| {
                        CallToolResult::error(vec![ContentBlock::text(e.to_string())])
                    });
                    let sealed = serde_json::to_string(&result)
                        .map(|json| self.vault.seal(&row.user, &sealed_for(hash), &json));
                    let (state, sealed) = match sealed {
                        Ok(sealed) => (TaskState::Completed, Some(sealed)),
                        Err(_) => (TaskState::Failed, None),
                    };
                    match store.finish_task(hash, &self.holder, state, sealed.as_deref(), now()).await {
                        Ok(true) => tracing::info!(state = state.as_str(), "task ended"),
                        Ok(false) => tracing::info!("task ended after it was cancelled or taken over"),
                        Err(e) => tracing::error!(error = %e, "a task's result could not be stored"),
                    }
                    return;
                }
                Some(line) = lines.recv() => {
                    if let Err(e) = store.set_task_message(hash, &self.holder, &line, now()).await {
                        tracing::warn!(error = %e, "a task's status could not be stored");
                    }
                }
                _ = renew.tick() => {
                    let at = now();
                    match store.take_task_lease(hash, &self.holder, at, at + self.lease_secs).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::info!("task cancelled or taken over; devgate stops following it here");
                            return;
                        }
                        Err(e) => tracing::warn!(error = %e, "a task's lease could not be renewed"),
                    }
                }
                () = stop.cancelled() => return,
            }
        }
    }

    /// The task's fields as MCP shows them.
    fn task(&self, gateway: &Gateway, row: &TaskRow, id: String) -> Task {
        let status = match row.state {
            TaskState::Working => TaskStatus::Working,
            TaskState::Completed => TaskStatus::Completed,
            TaskState::Failed => TaskStatus::Failed,
            TaskState::Cancelled => TaskStatus::Cancelled,
        };
        let mut task = Task::new(id, status, iso(row.created_at), iso(row.updated_at))
            .with_ttl_ms((row.expires_at - row.created_at).max(0) as u64 * 1000)
            .with_poll_interval_ms(gateway.task_poll().as_millis() as u64);
        task.status_message = match row.state {
            TaskState::Cancelled => {
                Some("cancelled: devgate stopped following; the run itself goes on".into())
            }
            _ => row.status_message.clone(),
        };
        task
    }

    /// The stored result of a completed task, opened.
    fn result(&self, row: &TaskRow) -> Option<JsonObject> {
        let sealed = row.result.as_deref()?;
        let json = self
            .vault
            .open(&row.user, &sealed_for(&row.task_hash), sealed)
            .ok()?;
        serde_json::from_str(&json).ok()
    }
}

/// A task's sealed work: its id (for `tasks/list`; the row is keyed by its hash) and what to follow.
#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    id: String,
    followed: Followed,
}

/// What a task's sealed values are bound to, with the user: this task, so a value copied to another
/// task's row does not open.
fn sealed_for(task_hash: &str) -> String {
    format!("task:{task_hash}")
}

/// A timestamp as ISO 8601 in UTC, to the second.
fn iso(at: Timestamp) -> String {
    chrono::DateTime::from_timestamp(at, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The JSON-RPC error of a failed task.
fn failure(message: &str) -> JsonObject {
    let mut error = JsonObject::new();
    error.insert("code".into(), (-32603).into());
    error.insert("message".into(), message.into());
    error
}
