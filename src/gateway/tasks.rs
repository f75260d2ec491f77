//! What a call started, as data ([`Followed`]): followed at once for `wait`, or kept in the store and
//! followed by an MCP task ([`book::TaskBook`]) on whichever instance holds it, with the same final result.

pub mod book;

use rmcp::model::CallToolResult;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::call::Call;
use super::wait::Task;
use super::{Gateway, Progress, ToolError};
use crate::catalog::AcceptedSpec;

/// How long a task follows a run (or a task the provider accepted) before it ends with a note that the
/// run goes on, as `wait` does at its bound. A task outlives its HTTP request, so this is far longer
/// than any `wait`.
pub const TASK_FOLLOW_SECS: u64 = 3600;

/// How a call ended: with its result, or having started something to follow.
pub enum Ran {
    Done(CallToolResult),
    Follow(Followed),
}

/// Something a call started, to follow to its end: everything the follow needs, so any instance can do
/// it from the store. Holds the call's arguments, so it is sealed there.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Followed {
    /// The call's arguments after checks and lookups.
    args: Map<String, Value>,
    what: What,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum What {
    /// A run the tool started (its shaped result), followed with the tool's `wait` spec for `secs`.
    Run { started: Value, secs: u64 },
    /// A request the provider accepted with 202: its task's `Location`, the request's URL (the reply is
    /// shaped against it) and how long to follow it.
    Accepted {
        location: Option<String>,
        url: String,
        secs: u64,
    },
}

impl Followed {
    pub(super) fn run(args: Map<String, Value>, started: Value, secs: u64) -> Self {
        Self {
            args,
            what: What::Run { started, secs },
        }
    }

    pub(super) fn accepted(
        args: Map<String, Value>,
        location: Option<String>,
        url: url::Url,
        spec: &AcceptedSpec,
    ) -> Self {
        Self {
            args,
            what: What::Accepted {
                location,
                url: url.into(),
                secs: spec.seconds,
            },
        }
    }

    /// The same, followed for as long as a task follows ([`TASK_FOLLOW_SECS`]).
    fn for_task(mut self) -> Self {
        match &mut self.what {
            What::Run { secs, .. } | What::Accepted { secs, .. } => *secs = TASK_FOLLOW_SECS,
        }
        self
    }
}

impl Call<'_> {
    /// Follows what the call started to its end (or the bound): the result `wait` returns.
    pub(super) async fn follow_to_end(
        &self,
        followed: Followed,
        text_cap: usize,
    ) -> Result<CallToolResult, ToolError> {
        let o = self.offered;
        let Followed { args, what } = followed;
        match what {
            What::Run { started, secs } => {
                let Some(spec) = &o.tool.spec.wait else {
                    return Err(self.internal("the tool no longer follows its runs"));
                };
                let run = self.follow(spec, &args, started, secs, text_cap).await;
                Ok(super::call::structured(run))
            }
            What::Accepted {
                location,
                url,
                secs,
            } => {
                let Some(spec) = &o.tool.spec.accepted else {
                    return Err(self.internal("the tool no longer follows accepted requests"));
                };
                let url = url::Url::parse(&url).map_err(|e| self.internal(e.to_string()))?;
                let location = location.and_then(|l| url::Url::parse(&l).ok());
                let mut auth = self.auth().await?;
                match self
                    .follow_task(spec, location.as_ref(), &args, &mut auth, secs)
                    .await?
                {
                    Task::Done(reply) => {
                        let extra = o.extra_fields(&args)?;
                        let shaped = o.shape_reply(reply, &url, extra.as_ref(), None, false);
                        Ok(super::call::structured(shaped))
                    }
                    Task::Running(note) => Ok(super::call::structured(note)),
                }
            }
        }
    }
}

impl Gateway {
    /// Whether `name` may run as an MCP task (the catalog's `task`).
    pub fn runs_as_task(&self, name: &str) -> bool {
        self.offered.get(name).is_some_and(|o| o.tool.spec.task)
    }

    /// Follows what a call of `tool` by `user` started, reporting progress lines to `progress`: the
    /// work of a task, on the instance that started it or on one that took it over.
    pub async fn resume(
        &self,
        user: &str,
        tool: &str,
        followed: Followed,
        progress: Option<Progress>,
    ) -> Result<CallToolResult, ToolError> {
        let offered = self
            .offered
            .get(tool)
            .ok_or_else(|| ToolError::UnknownTool(tool.to_string()))?;
        let call = Call {
            offered,
            confirm: false,
            all: &self.offered,
            user,
            progress: progress.as_ref(),
            wait_poll: self.wait_poll,
            confirmer: None,
            confirmations: &self.confirmations,
            as_task: true,
        };
        call.follow_to_end(followed.for_task(), self.text_cap).await
    }

    /// How often a task's client should poll it: as often as devgate polls the run.
    pub fn task_poll(&self) -> std::time::Duration {
        self.wait_poll
    }
}
