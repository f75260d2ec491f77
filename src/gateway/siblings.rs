//! Calls to sibling tools: another read tool of the same provider, run as a call of its own for
//! `wait` (the poll, steps and log tools) and for confirmation (the tool that reads the target).

use serde_json::{Map, Value, json};

use super::call::Call;
use super::offer::reads_of;
use super::{Offered, ToolError};
use crate::catalog::Tool;

impl Call<'_> {
    /// The `next_step` a result hands the agent: the tool `name` with those of `args` it takes, when
    /// this gateway offers it.
    pub(super) fn next_step_to<'v>(
        &self,
        name: &str,
        args: impl IntoIterator<Item = (&'v String, &'v Value)>,
    ) -> Option<Value> {
        let next = self.all.get(name)?;
        Some(json!({"tool": name, "arguments": taken_by(&next.tool, args)}))
    }

    /// Calls another read tool of this provider (for `follow`, and for the confirmation's summary): the
    /// calling tool's arguments that tool takes, plus `extra`. Its failure is this call's.
    pub(super) async fn sub(
        &self,
        short_name: &str,
        caller_args: &Map<String, Value>,
        extra: &Map<String, Value>,
        text_cap: usize,
    ) -> Result<Value, ToolError> {
        let o = self.offered;
        let catalog = &o.provider;
        let tool = catalog
            .tools
            .iter()
            .find(|t| t.spec.name == short_name)
            .cloned()
            .ok_or_else(|| self.internal(format!("the catalog has no tool `{short_name}`")))?;
        let mut args = taken_by(&tool, caller_args);
        args.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        let offered = Offered {
            confirm: false,
            reads: reads_of(&tool, &catalog.spec.pagination),
            tool,
            provider: o.provider.clone(),
            client: o.client.clone(),
            credentials: o.credentials.clone(),
            defaults: o.defaults.clone(),
            cursors: o.cursors.clone(),
        };
        let call = Call {
            offered: &offered,
            confirm: false,
            all: self.all,
            user: self.user,
            progress: None,
            wait_poll: self.wait_poll,
            confirmer: None,
            confirmations: self.confirmations,
            as_task: false,
        };
        let result = match Box::pin(call.run(Some(&args), text_cap)).await? {
            super::Ran::Done(result) => result,
            super::Ran::Follow(_) => return Err(self.internal("a read tool started something")),
        };
        Ok(result.structured_content.unwrap_or(Value::Null))
    }
}

/// Those of `args` that `tool` takes.
fn taken_by<'v>(
    tool: &Tool,
    args: impl IntoIterator<Item = (&'v String, &'v Value)>,
) -> Map<String, Value> {
    args.into_iter()
        .filter(|(k, _)| tool.spec.params.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
