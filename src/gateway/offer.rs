//! Which tools are offered and how `tools/list` describes them: config and scopes decide, the
//! catalog entry becomes an MCP tool, and the server instructions state what all tools share.

use std::fmt::Write as _;
use std::sync::Arc;

use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool as McpTool, ToolAnnotations};
use serde_json::json;

use super::{CONNECTIONS_TOOL, Gateway, Offered};
use crate::catalog::schema;
use crate::catalog::{Catalog, Pagination, Tool};
use crate::config::Config;
use crate::identity::Identity;
use crate::oauth::connect::Connector;
use crate::oauth::tokens::TokenManager;
use crate::shape::Reads;

/// Whether config offers a tool: provider configured, scopes granted, toolset enabled, not excluded,
/// and read-only mode respected.
pub fn is_offered(config: &Config, catalog: &Catalog, tool: &Tool) -> bool {
    let Some(pconf) = config.providers.get(&tool.provider) else {
        return false;
    };
    let Some(provider) = catalog.provider(&tool.provider) else {
        return false;
    };
    let granted = match &pconf.scopes {
        Some(scopes) => provider.expand_scopes(scopes.iter().map(String::as_str)),
        None => provider.expand_scopes(provider.scopes.iter().map(|s| s.name.as_str())),
    };
    let toolsets = &config.tools.toolsets;
    tool.spec.scopes.iter().all(|s| granted.contains(s))
        && (toolsets.iter().any(|t| t == "all") || toolsets.contains(&tool.spec.toolset))
        && !config.tools.exclude.contains(&tool.name)
        && (!config.tools.read_only || tool.spec.annotations.read_only)
}

/// The description of `devgate_connections`.
pub(super) fn connections_tool() -> McpTool {
    let mut schema = JsonObject::new();
    schema.insert("type".into(), json!("object"));
    let mut output = JsonObject::new();
    output.insert("type".into(), json!("object"));
    McpTool::new(
        CONNECTIONS_TOOL,
        "Shows your provider connections, each checked with its provider just now: account, scopes, expiry, or the link to connect or reconnect.",
        Arc::new(schema),
    )
    .with_title("Connections")
    .with_annotations(ToolAnnotations::new().read_only(true).open_world(false))
    .with_raw_output_schema(Arc::new(output))
}

pub(super) async fn connections_result(
    connector: &Connector,
    tokens: Option<&TokenManager>,
    user: &str,
) -> CallToolResult {
    let statuses = match tokens {
        Some(tokens) => connector.checked_statuses(user, tokens).await,
        None => connector.statuses(user, true).await,
    };
    match statuses {
        Ok(items) => CallToolResult::structured(json!({ "items": items })),
        Err(e) => {
            tracing::error!(error = %e, "could not read connections");
            CallToolResult::error(vec![ContentBlock::text(
                "devgate could not read its database; try again shortly.",
            )])
        }
    }
}

/// Conventions shared by all tools, written once instead of in every schema; the confirmation
/// sentence only when some offered tool is confirmed.
pub(super) fn instructions(config: &Config, confirms: bool) -> String {
    let mut text = String::from(
        "devgate: Buddy.Works (buddy_*) and Bitbucket Cloud (bitbucket_*) tools. \
Shared arguments: `workspace` is the Buddy workspace domain or the Bitbucket workspace slug; \
`project` is a Buddy project's name (URL handle); `pipeline` is a Buddy pipeline's id or identifier; \
`repo_slug` is a Bitbucket repository slug; `*_id` and `*_uuid` arguments come from list results \
(Bitbucket uuids keep their braces); \
`limit` (page size: default 10 or 20, at most 100, or 50 for pull requests) is accepted by every list \
though left out of their schemas. \
Lists return {items, next_cursor}: pass next_cursor back as `cursor`, with the same arguments, for the next page. \
Text (files, diffs, logs) is cut at a size limit; pass next_offset back as `offset` to read on; \
log tools take `tail` (the last N lines). \
Read tools take `fields`, extra dot paths into the provider's object (e.g. [\"links.html.href\"], \
`path|200`), each added to every result under the path as written, or as `name` with `name=path`; \
pass it again with `cursor`; paths no item had are listed in fields_absent. \
Run tools take `wait` (seconds, at most 600): devgate follows the run to its end, reports its steps \
as progress, and returns the final state with the failed step's log tail; cancelling stops the \
waiting, not the run; an unfinished run comes back with next_step, the tool and arguments to call \
next.",
    );
    if confirms {
        text.push_str(
            " Tools whose schema lists `confirm` run only after the user confirms to devgate, never on \
your word (`confirm` is ignored): the user is asked through your client, or the error gives a link \
for them to approve; then call again with the same arguments.",
        );
    }
    for (id, p) in &config.providers {
        if let Some(ws) = &p.workspace {
            let _ = write!(
                text,
                " {id}_* tools work in workspace `{ws}`: the `workspace` argument is left out of their schemas but may be passed to use another."
            );
        }
    }
    text
}

impl Gateway {
    /// The `tools/list` entries `caller` may use under `[[policies]]`: the denied ones left out, and
    /// the ones their groups must confirm described with `confirm`. Without policies, every entry.
    pub fn tools_for(&self, caller: &Identity) -> Arc<Vec<McpTool>> {
        if self.policies.is_empty() {
            return self.listed.clone();
        }
        let listed = self.listed.iter().filter_map(|entry| {
            let Some(offered) = self.offered.get(entry.name.as_ref()) else {
                // The built-in `devgate_connections`: always offered.
                return Some(entry.clone());
            };
            let decision = self.decide(caller, offered);
            match (
                decision.allowed(),
                decision.confirm.is_some() && !offered.confirm,
            ) {
                (false, _) => None,
                (true, true) => Some(describe_as(offered, true)),
                (true, false) => Some(entry.clone()),
            }
        });
        Arc::new(listed.collect())
    }
}

/// The MCP description of a tool.
pub(super) fn describe(offered: &Offered) -> McpTool {
    describe_as(offered, offered.confirm)
}

/// The MCP description of a tool, listing `confirm` when the caller confirms its calls.
fn describe_as(offered: &Offered, confirmed: bool) -> McpTool {
    let tool = &offered.tool;
    let a = tool.spec.annotations;
    // Hints are stated where they carry meaning, and left to the MCP defaults elsewhere: a read-only tool
    // says just that (destructive and idempotent only mean something for tools that write); a tool that
    // writes states whether it is destructive and idempotent (read-only false is the default); open-world
    // (the default, true of every provider call) is only stated when false.
    let mut annotations = if a.read_only {
        ToolAnnotations::new().read_only(true)
    } else {
        ToolAnnotations::new()
            .destructive(a.destructive)
            .idempotent(a.idempotent())
    };
    if !a.open_world {
        annotations = annotations.open_world(false);
    }
    McpTool::new(
        tool.name.clone(),
        tool.spec.description.clone(),
        Arc::new(schema::input_schema(tool, &offered.defaults, confirmed)),
    )
    .with_title(tool.spec.title.clone())
    .with_annotations(annotations)
    .with_raw_output_schema(Arc::new(schema::output_schema(tool)))
}

/// What a tool's output reads of its JSON reply: the list, the output fields within it, and the paging
/// fields. `None` (parse everything) for tools without an output projection.
pub(super) fn reads_of(tool: &Tool, pagination: &Pagination) -> Option<Reads> {
    let fields = tool.output.as_deref()?;
    let mut reads = Reads::default();
    let list = tool.spec.output.as_ref().and_then(|o| o.list.as_deref());
    reads.add_fields(list.unwrap_or_default(), fields);
    if list.is_some() {
        match pagination {
            Pagination::NextUrl { next, numbered } => {
                reads.add_path(next);
                if let Some(n) = numbered {
                    [&n.page, &n.pagelen, &n.size]
                        .into_iter()
                        .for_each(|p| reads.add_path(p));
                }
            }
            Pagination::Page {
                total_pages: Some(total),
                ..
            } => reads.add_path(total),
            Pagination::Page { .. } => {}
        }
    }
    Some(reads)
}
