//! The catalog as documentation: `devgate tools --format md|json` (and the README's tool table).

use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::{Value, json};

use super::{Catalog, Tool};

/// Hints as short words: `read-only`, `destructive`, `idempotent`.
fn hints(tool: &Tool) -> String {
    let a = tool.spec.annotations;
    let mut words = Vec::new();
    if a.read_only {
        words.push("read-only");
    } else {
        if a.destructive {
            words.push("destructive");
        }
        if a.idempotent() {
            words.push("idempotent");
        }
        if words.is_empty() {
            words.push("writes");
        }
    }
    words.join(", ")
}

/// One Markdown table per provider.
pub fn markdown(catalog: &Catalog, tools: &[&Arc<Tool>]) -> String {
    let mut out = String::new();
    for provider in &catalog.providers {
        let mine: Vec<&&Arc<Tool>> = tools
            .iter()
            .filter(|t| t.provider == provider.spec.id)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let _ = writeln!(out, "### {} ({} tools)\n", provider.spec.title, mine.len());
        out.push_str("| Tool | Toolset | Scopes | Hints | What it does |\n|---|---|---|---|---|\n");
        for tool in mine {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                tool.name,
                tool.spec.toolset,
                tool.spec
                    .scopes
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(" "),
                hints(tool),
                tool.spec.description.replace('|', "\\|"),
            );
        }
        out.push('\n');
    }
    out
}

/// The same as JSON, for scripts.
pub fn json(tools: &[&Arc<Tool>]) -> Value {
    Value::Array(
        tools
            .iter()
            .map(|t| {
                let a = t.spec.annotations;
                json!({
                    "name": t.name,
                    "title": t.spec.title,
                    "toolset": t.spec.toolset,
                    "scopes": t.spec.scopes,
                    "read_only": a.read_only,
                    "destructive": a.destructive,
                    "idempotent": a.idempotent(),
                    "description": t.spec.description,
                })
            })
            .collect(),
    )
}
