//! The declarative tool catalog: `tools/*.toml` loaded, checked and compiled.
//!
//! Loading is strict: unknown keys, unknown scopes, placeholders without a parameter, parameters never
//! sent, duplicate names and malformed output specs are all load errors naming the file and the tool.
//! Every problem is collected, so `devgate check` can list them all at once.

mod checks;
mod compile;
pub mod docs;
pub mod engine_params;
pub mod model;
pub mod schema;
pub mod template;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

pub use engine_params::{
    CONFIRM_PARAM, CURSOR_PARAM, FIELDS_PARAM, MAX_WAIT_SECS, OFFSET_PARAM, PAGE_SIZE_PARAM,
    TAIL_PARAM, WAIT_PARAM, is_engine_param,
};
pub use model::*;
use template::{PathTemplate, Piece};

use crate::shape::Field;

/// The catalogs shipped inside the binary.
pub const BUILTIN: &[(&str, &str)] = &[
    ("tools/buddy.toml", include_str!("../../tools/buddy.toml")),
    (
        "tools/bitbucket.toml",
        include_str!("../../tools/bitbucket.toml"),
    ),
];

/// A catalog problem, with where it is.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}{}: {message}", tool.as_ref().map(|t| format!(": tool `{t}`")).unwrap_or_default())]
pub struct CatalogError {
    pub file: String,
    pub tool: Option<String>,
    pub message: String,
}

/// All providers and their compiled tools.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub providers: Vec<Arc<Provider>>,
}

#[derive(Debug)]
pub struct Provider {
    pub file: String,
    pub version: String,
    pub spec: ProviderSpec,
    pub scopes: Vec<ScopeSpec>,
    pub tools: Vec<Arc<Tool>>,
    pub retired: Vec<RetiredSpec>,
    implies: HashMap<String, Vec<String>>,
    /// Every scope name the provider accepts (names and aliases) to the name tools use.
    canonical: HashMap<String, String>,
}

/// A tool ready to be called.
#[derive(Debug)]
pub struct Tool {
    /// Exposed name: `<provider>_<tool>`.
    pub name: String,
    pub provider: String,
    pub spec: ToolSpec,
    pub path: PathTemplate,
    pub query: Vec<(String, Vec<Piece>)>,
    pub resolve: Vec<Resolve>,
    pub keep_current: Option<Vec<Field>>,
    pub output: Option<Vec<Field>>,
    pub cursor_prefix: Option<PathTemplate>,
    /// Where the tasks of a 202 answer live ([`AcceptedSpec::under`]).
    pub accepted_under: Option<PathTemplate>,
    pub errors: BTreeMap<u16, String>,
    /// Whether the engine adds a `cursor` parameter and returns `next_cursor`.
    pub paginated: bool,
}

#[derive(Debug)]
pub struct Resolve {
    pub param: String,
    pub when: ResolveWhen,
    pub path: PathTemplate,
    pub query: Vec<(String, Vec<Piece>)>,
    pub take: String,
}

impl Tool {
    pub fn is_text(&self) -> bool {
        self.spec.response == ResponseKind::Text
    }

    /// Whether the tool takes `fields`: a read tool whose JSON reply is projected.
    pub fn takes_fields(&self) -> bool {
        self.spec.annotations.read_only
            && self.spec.response == ResponseKind::Json
            && self.output.is_some()
    }
}

impl Catalog {
    /// The catalogs embedded in the binary.
    pub fn builtin() -> Result<Self, Vec<CatalogError>> {
        Self::from_sources(BUILTIN.iter().map(|(f, t)| (f.to_string(), t.to_string())))
    }

    /// Every `*.toml` in a directory (`--tools-dir`).
    pub fn load_dir(dir: &Path) -> Result<Self, Vec<CatalogError>> {
        let err = |message: String| {
            vec![CatalogError {
                file: dir.display().to_string(),
                tool: None,
                message,
            }]
        };
        let mut sources = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|e| err(e.to_string()))?;
        for entry in entries {
            let path = entry.map_err(|e| err(e.to_string()))?.path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).map_err(|e| err(e.to_string()))?;
                sources.push((path.display().to_string(), text));
            }
        }
        sources.sort();
        Self::from_sources(sources)
    }

    pub fn from_sources(
        sources: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, Vec<CatalogError>> {
        let mut errors = Vec::new();
        let mut providers: Vec<Arc<Provider>> = Vec::new();
        for (file, text) in sources {
            match compile::compile_file(&file, &text) {
                Ok(p) => {
                    if providers.iter().any(|q| q.spec.id == p.spec.id) {
                        errors.push(CatalogError {
                            file: file.clone(),
                            tool: None,
                            message: format!("provider `{}` is defined twice", p.spec.id),
                        });
                    } else {
                        providers.push(Arc::new(p));
                    }
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
        if errors.is_empty() {
            Ok(Self { providers })
        } else {
            Err(errors)
        }
    }

    pub fn provider(&self, id: &str) -> Option<&Arc<Provider>> {
        self.providers.iter().find(|p| p.spec.id == id)
    }
}

impl Provider {
    /// The scopes granted by `granted` (names or aliases), as the names tools use, with everything they
    /// imply.
    pub fn expand_scopes<'a>(
        &self,
        granted: impl IntoIterator<Item = &'a str>,
    ) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut stack: Vec<String> = granted
            .into_iter()
            .map(|s| self.canonical_scope(s).to_string())
            .collect();
        while let Some(scope) = stack.pop() {
            if out.insert(scope.clone())
                && let Some(implied) = self.implies.get(&scope)
            {
                stack.extend(implied.iter().cloned());
            }
        }
        out
    }

    /// Whether `scope` is a name or an alias the catalog declares.
    pub fn knows_scope(&self, scope: &str) -> bool {
        self.canonical.contains_key(scope)
    }

    /// The name tools use for `scope` (itself when it is no alias, or unknown).
    pub fn canonical_scope<'a>(&'a self, scope: &'a str) -> &'a str {
        self.canonical.get(scope).map_or(scope, String::as_str)
    }

    /// The name to ask the provider for `scope` (a name tools use): the one `configured` lists for it,
    /// else its first alias when `configured` names any alias at all (that family is what the
    /// provider's app was set up with), else the name itself.
    pub fn scope_to_request<'a>(
        &'a self,
        scope: &'a str,
        configured: Option<&'a [String]>,
    ) -> &'a str {
        let configured = configured.unwrap_or_default();
        if let Some(listed) = configured.iter().find(|c| self.canonical_scope(c) == scope) {
            return listed;
        }
        let aliases_configured = configured
            .iter()
            .any(|c| self.canonical_scope(c) != c.as_str());
        let spec = self.scopes.iter().find(|s| s.name == scope);
        match spec.and_then(|s| s.aliases.first()) {
            Some(alias) if aliases_configured => alias,
            _ => scope,
        }
    }

    /// A scope's name with its aliases, for messages: `` `EXECUTION_INFO` (or `PIPELINE_READ`) ``.
    pub fn scope_label(&self, scope: &str) -> String {
        let aliases = self
            .scopes
            .iter()
            .find(|s| s.name == scope)
            .map(|s| s.aliases.as_slice())
            .unwrap_or_default();
        let mut label = format!("`{scope}`");
        if !aliases.is_empty() {
            let others: Vec<String> = aliases.iter().map(|a| format!("`{a}`")).collect();
            label.push_str(&format!(" (or {})", others.join(" or ")));
        }
        label
    }

    /// The description of a scope, by name or alias.
    pub fn scope_description(&self, scope: &str) -> Option<&str> {
        let name = self.canonical_scope(scope);
        self.scopes
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.description.as_str())
    }

    /// Why `scope` is gone, if the provider retired it.
    pub fn retired_scope(&self, scope: &str) -> Option<&str> {
        let r = self
            .retired
            .iter()
            .find(|r| r.scopes.iter().any(|s| s == scope));
        r.map(|r| r.why.as_str())
    }

    /// Why the tool `name` (with the provider prefix) is gone, if the provider retired it.
    pub fn retired_tool(&self, name: &str) -> Option<&str> {
        let bare = name.strip_prefix(&format!("{}_", self.spec.id))?;
        let r = self
            .retired
            .iter()
            .find(|r| r.tools.iter().any(|t| t == bare));
        r.map(|r| r.why.as_str())
    }

    /// Why the toolset is gone, if the provider retired it.
    pub fn retired_toolset(&self, toolset: &str) -> Option<&str> {
        let r = self
            .retired
            .iter()
            .find(|r| r.toolsets.iter().any(|t| t == toolset));
        r.map(|r| r.why.as_str())
    }
}

impl Catalog {
    /// Why a toolset is gone, if a provider retired it and no provider still has it.
    pub fn retired_toolset(&self, toolset: &str) -> Option<&str> {
        let live = self
            .providers
            .iter()
            .any(|p| p.tools.iter().any(|t| t.spec.toolset == toolset));
        if live {
            return None;
        }
        self.providers
            .iter()
            .find_map(|p| p.retired_toolset(toolset))
    }

    /// Why a tool (full name) is gone, if its provider retired it.
    pub fn retired_tool(&self, name: &str) -> Option<&str> {
        self.providers.iter().find_map(|p| p.retired_tool(name))
    }
}
