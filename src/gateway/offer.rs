//! Which tools are offered and how `tools/list` describes them: config and scopes decide, the
//! catalog entry becomes an MCP tool, and the server instructions state what all tools share.

use std::fmt::Write as _;
use std::sync::Arc;

use rmcp::model::{CallToolResult, JsonObject, Tool as McpTool, ToolAnnotations};
use serde_json::json;

use super::{CONNECTIONS_TOOL, Gateway, Offered, ToolError};
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
    tokens: &TokenManager,
    user: &str,
) -> Result<CallToolResult, ToolError> {
    let statuses = connector.checked_statuses(user, tokens).await;
    match statuses {
        Ok(items) => Ok(super::call::structured(json!({ "items": items }))),
        Err(e) => {
            tracing::error!(error = %e, "could not read connections");
            Err(ToolError::Internal {
                tool: CONNECTIONS_TOOL.into(),
                detail: "devgate could not read its database; try again shortly.".into(),
            })
        }
    }
}

/// Conventions shared by all tools, written once instead of in every schema: the providers and what
/// their shared arguments mean (from their catalogs), the page size of the offered lists, and the
/// engine's own arguments; the confirmation sentence only when some offered tool is confirmed.
pub(super) fn instructions(
    config: &Config,
    catalog: &Catalog,
    offered: &[&Tool],
    confirms: bool,
) -> String {
    let providers: Vec<&crate::catalog::ProviderSpec> = catalog
        .providers
        .iter()
        .map(|p| &p.spec)
        .filter(|p| config.providers.contains_key(&p.id))
        .collect();
    let names: Vec<String> = providers
        .iter()
        .map(|p| format!("{} ({}_*)", p.title, p.id))
        .collect();
    let mut text = format!("devgate: {} tools. ", and_list(&names));
    let arguments: Vec<String> = providers
        .iter()
        .filter_map(|p| Some(format!("in {}_* tools, {}", p.id, p.arguments.as_deref()?)))
        .collect();
    if !arguments.is_empty() {
        let _ = write!(text, "Shared arguments: {}. ", arguments.join("; "));
    }
    text.push_str("`*_id` and `*_uuid` arguments come from list results. ");
    if let Some(limit) = page_sizes(offered) {
        let _ = write!(
            text,
            "`limit` ({limit}) is accepted by every list though left out of their schemas. "
        );
    }
    text.push_str(
        "Lists return {items, next_cursor}: pass next_cursor back as `cursor`, with the same arguments, for the next page. \
Text (files, diffs, logs) is cut at a size limit; pass next_offset back as `offset` to read on; \
log tools take `tail` (the last N lines). \
Read tools take `fields`, extra dot paths into the provider's object (e.g. [\"links.html.href\"], \
`path|200`), each added to every result under the path as written, or as `name` with `name=path`; \
pass it again with `cursor`; paths no item had are listed in fields_absent. \
A field left out of a result is empty or default: false, an empty list, a zero count. \
Times are UTC to the second. \
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

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// The page sizes of the offered lists (their hidden `limit`): "page size: default 10 or 20, at most
/// 100", from the catalogs.
fn page_sizes(offered: &[&Tool]) -> Option<String> {
    let mut defaults = std::collections::BTreeSet::new();
    let mut maxima = std::collections::BTreeSet::new();
    for param in offered
        .iter()
        .filter(|t| t.paginated)
        .filter_map(|t| t.spec.params.get(crate::catalog::PAGE_SIZE_PARAM))
    {
        if let Some(d) = param.default.as_ref().and_then(serde_json::Value::as_i64) {
            defaults.insert(d);
        }
        if let Some(m) = param.maximum {
            maxima.insert(m);
        }
    }
    let or_list = |set: &std::collections::BTreeSet<i64>| {
        let items: Vec<String> = set.iter().map(i64::to_string).collect();
        match items.as_slice() {
            [rest @ .., last] if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => items.join(""),
        }
    };
    if defaults.is_empty() && maxima.is_empty() {
        return None;
    }
    let mut out = String::from("page size");
    if !defaults.is_empty() {
        let _ = write!(out, ": default {}", or_list(&defaults));
    }
    if !maxima.is_empty() {
        let _ = write!(out, ", at most {}", or_list(&maxima));
    }
    Some(out)
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
        interned(&tool.name),
        interned(&tool.spec.description),
        Arc::new(schema::input_schema(tool, &offered.defaults, confirmed)),
    )
    .with_title(tool.spec.title.clone())
    .with_annotations(annotations)
    .with_raw_output_schema(Arc::new(schema::output_schema(tool)))
}

/// `text` as a string that lives as long as the process, kept once however many gateways are built:
/// each `tools/list` answer then borrows the tools' names and descriptions instead of copying them. The
/// texts kept are bounded by the catalogs loaded.
fn interned(text: &str) -> &'static str {
    static KEPT: std::sync::OnceLock<std::sync::Mutex<std::collections::HashSet<&'static str>>> =
        std::sync::OnceLock::new();
    let mut kept = KEPT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(known) = kept.get(text) {
        return known;
    }
    let leaked: &'static str = Box::leak(text.into());
    kept.insert(leaked);
    leaked
}

/// What a tool's output reads of its JSON reply: the list, the output fields within it (projected while
/// read), and the paging fields. `None` (parse everything) for tools without an output projection.
pub(super) fn reads_of(tool: &Tool, pagination: &Pagination) -> Option<Reads> {
    let fields = tool.output.as_deref()?;
    let mut reads = Reads::default();
    let list = tool.spec.output.as_ref().and_then(|o| o.list.as_deref());
    reads.project_at(list.unwrap_or_default(), fields, list.is_some());
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
