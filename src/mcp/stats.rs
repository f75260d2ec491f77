//! What the offered tools cost an agent (`devgate tools --stats`): the `tools/list` result and the
//! server instructions as devgate sends them, in bytes and approximate tokens, per toolset and tool.

use std::path::PathBuf;

use rmcp::model::{ListToolsResult, ProtocolVersion, ServerResult};

use crate::app::App;
use crate::catalog::Catalog;
use crate::config::Config;

/// Why the figures could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("cannot create {}: {source}", dir.display())]
    Scratch {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Build(String),
    #[error("cannot serialize the tools/list result: {0}")]
    Json(#[from] serde_json::Error),
}

/// What an agent receives for a config (`devgate tools --stats`), measured as the JSON devgate sends.
#[derive(Debug, serde::Serialize)]
pub struct ToolStats {
    pub tools: usize,
    /// Bytes of the `tools/list` result.
    pub bytes: usize,
    pub approx_tokens: usize,
    pub bytes_per_tool: usize,
    /// Bytes of the server instructions as a JSON string (sent once per session, in `initialize`).
    pub instructions_bytes: usize,
    /// Largest first.
    pub toolsets: Vec<ToolsetStat>,
    /// Largest first.
    pub per_tool: Vec<ToolStat>,
    /// The MCP version the sizes are for (the newest with an `initialize` handshake).
    #[serde(skip)]
    protocol_version: String,
}

#[derive(Debug, serde::Serialize)]
pub struct ToolsetStat {
    pub name: String,
    pub tools: usize,
    pub bytes: usize,
    pub approx_tokens: usize,
}

#[derive(Debug, serde::Serialize)]
pub struct ToolStat {
    pub name: String,
    pub toolset: String,
    pub bytes: usize,
    pub approx_tokens: usize,
}

/// A rough token count for JSON text: a quarter of its bytes, rounded up.
fn approx_tokens(bytes: usize) -> usize {
    bytes.div_ceil(4)
}

/// A directory removed when dropped.
struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl ToolStats {
    /// Builds the gateway a session with this config talks to, the way `devgate stdio` does, and
    /// serializes its `tools/list` result and instructions. With OAuth providers (which add
    /// `devgate_connections`) it opens a throwaway store, so measuring never touches the real one.
    pub async fn measure(config: &Config, catalog: &Catalog) -> Result<Self, StatsError> {
        let mut config = config.clone();
        let mut _scratch = None;
        if config.providers.values().any(|p| p.uses_oauth()) {
            let dir = std::env::temp_dir().join(format!("devgate-stats-{}", std::process::id()));
            std::fs::create_dir_all(&dir).map_err(|source| StatsError::Scratch {
                dir: dir.clone(),
                source,
            })?;
            config.store.url = format!("sqlite://{}", dir.join("devgate.db").display());
            config
                .public_url
                .get_or_insert_with(|| "http://127.0.0.1:8080".into());
            _scratch = Some(ScratchDir(dir));
        }
        let app = App::build(config, catalog, false)
            .await
            .map_err(StatsError::Build)?;
        // What the MCP server answers, shaped as rmcp shapes it for the version a session negotiates
        // in the `initialize` handshake (agents today): before 2026-07-28 without `resultType` and
        // without non-object output schemas; from 2026-07-28 (no handshake) with cache hints.
        let server = super::McpServer::new(
            app.gateway.clone(),
            super::Caller::Fixed(std::sync::Arc::new(crate::identity::Identity::named(
                "devgate-stats",
            ))),
            app.pending.clone(),
        );
        let info = rmcp::ServerHandler::get_info(&server);
        let version = rmcp::ServerHandler::supported_protocol_versions(&server)
            .iter()
            .filter(|v| v.has_initialize())
            .max_by(|a, b| a.as_str().cmp(b.as_str()))
            .cloned()
            .unwrap_or(info.protocol_version.clone());
        let listed = ListToolsResult::with_all_items(app.gateway.tools().as_ref().clone());
        let modern = version.as_str() >= ProtocolVersion::V_2026_07_28.as_str();
        let mut result = ServerResult::ListToolsResult(if modern {
            super::with_cache_hints(listed, false)
        } else {
            listed
        });
        if !modern {
            result.strip_result_type_for_legacy_peer();
            result.strip_non_object_output_for_legacy_peer();
        }
        let ServerResult::ListToolsResult(result) = result else {
            unreachable!("a tools/list result stays one")
        };
        let bytes = serde_json::to_vec(&result)?.len();
        let instructions_bytes = serde_json::to_vec(&info.instructions.unwrap_or_default())?.len();
        let listed = &result.tools;
        let toolset_of: std::collections::HashMap<&str, &str> = catalog
            .providers
            .iter()
            .flat_map(|p| p.tools.iter())
            .map(|t| (t.name.as_str(), t.spec.toolset.as_str()))
            .collect();
        let mut per_tool = Vec::new();
        for tool in listed.iter() {
            let size = serde_json::to_vec(tool)?.len();
            per_tool.push(ToolStat {
                name: tool.name.to_string(),
                toolset: toolset_of
                    .get(tool.name.as_ref())
                    .copied()
                    .unwrap_or("devgate")
                    .to_string(),
                bytes: size,
                approx_tokens: approx_tokens(size),
            });
        }
        per_tool.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
        let mut sets: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
        for t in &per_tool {
            let entry = sets.entry(t.toolset.as_str()).or_default();
            entry.0 += 1;
            entry.1 += t.bytes;
        }
        let mut toolsets: Vec<ToolsetStat> = sets
            .into_iter()
            .map(|(name, (tools, bytes))| ToolsetStat {
                name: name.to_string(),
                tools,
                bytes,
                approx_tokens: approx_tokens(bytes),
            })
            .collect();
        toolsets.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
        Ok(Self {
            tools: per_tool.len(),
            bytes,
            approx_tokens: approx_tokens(bytes),
            bytes_per_tool: bytes.checked_div(per_tool.len()).unwrap_or(0),
            instructions_bytes,
            toolsets,
            per_tool,
            protocol_version: version.to_string(),
        })
    }

    /// The figures as Markdown tables; `whole` says the config named no provider (the whole catalog).
    pub fn markdown(&self, config: &Config, whole: bool) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let source = if whole {
            "the whole catalog (no provider configured)".to_string()
        } else {
            config.origin.clone()
        };
        let _ = writeln!(
            out,
            "## What the offered tools cost an agent\n\n{source}; toolsets: {}; read-only: {}; \
as sent to an MCP {} client.\n",
            config.tools.toolsets.join(", "),
            if config.tools.read_only { "yes" } else { "no" },
            self.protocol_version,
        );
        let total = self.bytes + self.instructions_bytes;
        let _ = writeln!(
            out,
            "| Sent | Bytes | ≈ Tokens |\n|---|---:|---:|\n\
| `tools/list`: {} tools, {} bytes per tool | {} | {} |\n\
| Server instructions (once, in `initialize`) | {} | {} |\n\
| Total | {total} | {} |\n",
            self.tools,
            self.bytes_per_tool,
            self.bytes,
            self.approx_tokens,
            self.instructions_bytes,
            approx_tokens(self.instructions_bytes),
            approx_tokens(total),
        );
        let _ = writeln!(
            out,
            "≈ tokens = bytes / 4, rounded up: a rough rule for JSON; the agent's own tokenizer decides.\n"
        );
        let _ = writeln!(
            out,
            "### By toolset\n\n| Toolset | Tools | Bytes | ≈ Tokens |\n|---|---:|---:|---:|"
        );
        for t in &self.toolsets {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                t.name, t.tools, t.bytes, t.approx_tokens
            );
        }
        let _ = writeln!(
            out,
            "\n### By tool\n\n| Tool | Toolset | Bytes | ≈ Tokens |\n|---|---|---:|---:|"
        );
        for t in &self.per_tool {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} |",
                t.name, t.toolset, t.bytes, t.approx_tokens
            );
        }
        out
    }
}
