//! Calls to sibling tools: another read tool of the same provider, run as a call of its own for
//! `wait` (the poll, steps and log tools) and for confirmation (the tool that reads the target).

use serde_json::{Map, Value, json};

use super::call::Call;
use super::offer::reads_of;
use super::{Offered, Stop};
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
    /// calling tool's arguments that tool takes, plus `extra`. Its `isError` text (or connect reason)
    /// comes back as the error.
    pub(super) async fn sub(
        &self,
        short_name: &str,
        caller_args: &Map<String, Value>,
        extra: &Map<String, Value>,
        text_cap: usize,
    ) -> Result<Value, String> {
        let o = self.offered;
        let catalog = &o.client.catalog;
        let tool = catalog
            .tools
            .iter()
            .find(|t| t.spec.name == short_name)
            .cloned()
            .ok_or_else(|| format!("the catalog has no tool `{short_name}`"))?;
        let mut args = taken_by(&tool, caller_args);
        args.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        let offered = Offered {
            confirm: false,
            reads: reads_of(&tool, &catalog.spec.pagination),
            tool,
            client: o.client.clone(),
            defaults: o.defaults.clone(),
            cursors: o.cursors.clone(),
        };
        let call = Call {
            offered: &offered,
            confirm: false,
            all: self.all,
            user: self.user,
            tokens: self.tokens,
            progress: None,
            wait_poll: self.wait_poll,
            confirmer: None,
            confirmations: self.confirmations,
        };
        match Box::pin(call.run(Some(&args), text_cap)).await {
            Ok(result) if result.is_error != Some(true) => {
                Ok(result.structured_content.unwrap_or(Value::Null))
            }
            Ok(result) => Err(result
                .content
                .iter()
                .filter_map(|c| c.as_text().map(|t| t.text.clone()))
                .collect::<Vec<_>>()
                .join(" ")),
            Err(Stop::Message(m)) => Err(m),
            Err(Stop::Connect { reason, .. }) => {
                Err(format!("{reason}; see devgate_connections for the link"))
            }
            Err(Stop::Confirm { summary, .. }) => Err(format!("{summary} needs confirming")),
        }
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
