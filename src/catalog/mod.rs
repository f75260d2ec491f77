//! The declarative tool catalog: `tools/*.toml` loaded, checked and compiled.
//!
//! Loading is strict: unknown keys, unknown scopes, placeholders without a parameter, parameters never
//! sent, duplicate names and malformed output specs are all load errors naming the file and the tool.
//! Every problem is collected, so `devgate check` can list them all at once.

pub mod docs;
pub mod model;
pub mod schema;
pub mod template;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

pub use model::*;
use template::{PathTemplate, Piece, Placeholder};

use crate::shape::{self, Field};

/// The catalogs shipped inside the binary.
pub const BUILTIN: &[(&str, &str)] = &[
    ("tools/buddy.toml", include_str!("../../tools/buddy.toml")),
    (
        "tools/bitbucket.toml",
        include_str!("../../tools/bitbucket.toml"),
    ),
];

/// Parameters the engine adds to tools on its own; a catalog may not declare them.
pub const CURSOR_PARAM: &str = "cursor";
pub const OFFSET_PARAM: &str = "offset";
pub const TAIL_PARAM: &str = "tail";
/// Extra output fields an agent asks for on a read tool (left out of schemas; the instructions say it).
pub const FIELDS_PARAM: &str = "fields";
/// Seconds a run tool waits for the run to finish.
pub const WAIT_PARAM: &str = "wait";
/// `confirm`: listed and accepted only on tools devgate confirms, where it is ignored: an agent's word
/// is never consent (see [`crate::confirm`]). It stays for agents written when it was how to confirm,
/// and its presence tells an agent that the user will be asked; the server instructions say so once.
pub const CONFIRM_PARAM: &str = "confirm";
/// The longest `wait`, in seconds.
pub const MAX_WAIT_SECS: i64 = 600;

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
            match compile_file(&file, &text) {
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

fn compile_file(file: &str, text: &str) -> Result<Provider, Vec<CatalogError>> {
    let parsed: CatalogFile = toml::from_str(text).map_err(|e| {
        vec![CatalogError {
            file: file.to_string(),
            tool: None,
            message: e.to_string().trim().replace('\n', " "),
        }]
    })?;
    let mut errors = Vec::new();
    let mut push = |tool: Option<&str>, message: String| {
        errors.push(CatalogError {
            file: file.to_string(),
            tool: tool.map(str::to_string),
            message,
        })
    };

    let pid = &parsed.provider.id;
    if pid.is_empty()
        || !pid
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        push(
            None,
            format!("provider id `{pid}` must be lowercase letters and digits"),
        );
    }
    let mut implies = HashMap::new();
    for scope in &parsed.scopes {
        if implies
            .insert(scope.name.clone(), scope.implies.clone())
            .is_some()
        {
            push(None, format!("scope `{}` is declared twice", scope.name));
        }
    }
    for scope in &parsed.scopes {
        for implied in &scope.implies {
            if !implies.contains_key(implied) {
                push(
                    None,
                    format!("scope `{}` implies unknown scope `{implied}`", scope.name),
                );
            }
        }
    }
    let mut canonical: HashMap<String, String> =
        implies.keys().map(|k| (k.clone(), k.clone())).collect();
    for scope in &parsed.scopes {
        for alias in &scope.aliases {
            if canonical
                .insert(alias.clone(), scope.name.clone())
                .is_some()
            {
                push(
                    None,
                    format!(
                        "scope alias `{alias}` (of `{}`) is already a scope name or alias",
                        scope.name
                    ),
                );
            }
        }
    }

    let mut tools = Vec::new();
    let mut seen = BTreeSet::new();
    for mut spec in parsed.tools {
        for name in placeholder_names(&spec, &parsed.resolve) {
            if !spec.params.contains_key(&name)
                && let Some(shared) = parsed.params.get(&name)
            {
                spec.params.insert(name, shared.clone());
            }
        }
        let shared = parsed
            .resolve
            .iter()
            .filter(|r| spec.params.contains_key(&r.param))
            .cloned();
        spec.resolve = shared.chain(std::mem::take(&mut spec.resolve)).collect();
        // A tool needs the scopes of its lookups as well.
        for scope in spec.resolve.iter().flat_map(|r| &r.scopes) {
            if !spec.scopes.contains(scope) {
                spec.scopes.push(scope.clone());
            }
        }
        let name = spec.name.clone();
        if !seen.insert(name.clone()) {
            push(Some(&name), "declared twice".into());
            continue;
        }
        match compile_tool(&parsed.provider, &implies, spec) {
            Ok(tool) => tools.push(Arc::new(tool)),
            Err(problems) => problems.into_iter().for_each(|m| push(Some(&name), m)),
        }
    }
    for tool in &tools {
        // A cursor may lead below its prefix only: the prefix must name a subtree (end in `/`) that
        // holds no other tool's resource, so following the provider's next link never reaches one.
        if let (Some(prefix), Some(text)) = (&tool.cursor_prefix, &tool.spec.cursor_prefix) {
            if !prefix.is_prefix() {
                push(
                    Some(&tool.spec.name),
                    format!("cursor_prefix `{text}` must end with `/`"),
                );
            } else if let Some(other) = tools
                .iter()
                .find(|t| t.name != tool.name && prefix.may_cover(&t.path))
            {
                push(
                    Some(&tool.spec.name),
                    format!(
                        "cursor_prefix `{text}` also covers tool `{}`'s path `{}`: a next page must stay under this tool's own resource",
                        other.spec.name, other.spec.path
                    ),
                );
            }
        }
        if let Some(confirm) = &tool.spec.confirm {
            for problem in check_confirm(tool, confirm, &tools) {
                push(Some(&tool.spec.name), format!("confirm: {problem}"));
            }
        }
        if let Some(wait) = &tool.spec.wait {
            for problem in check_wait(tool, wait, &tools) {
                push(Some(&tool.spec.name), format!("wait: {problem}"));
            }
        }
        if let Some(accepted) = &tool.spec.accepted {
            let check = tools.iter().find(|t| t.spec.name == accepted.check);
            if !check.is_some_and(|t| t.spec.annotations.read_only) {
                push(
                    Some(&tool.spec.name),
                    format!(
                        "accepted: check `{}` must be a read-only tool of this provider",
                        accepted.check
                    ),
                );
            }
            if tool.output.is_none() {
                push(
                    Some(&tool.spec.name),
                    "accepted: the tool needs an `output` to shape the task's result".into(),
                );
            }
        }
    }
    for retired in &parsed.retired {
        let live_scope = retired.scopes.iter().find(|s| implies.contains_key(*s));
        let live_tool = retired.tools.iter().find(|n| seen.contains(*n));
        let live_set = retired
            .toolsets
            .iter()
            .find(|set| tools.iter().any(|t| &t.spec.toolset == *set));
        for (what, name) in [
            ("scope", live_scope),
            ("tool", live_tool),
            ("toolset", live_set),
        ] {
            if let Some(name) = name {
                push(
                    None,
                    format!("retired {what} `{name}` is still in the catalog"),
                );
            }
        }
    }
    if errors.is_empty() {
        Ok(Provider {
            file: file.to_string(),
            version: parsed.version,
            spec: parsed.provider,
            scopes: parsed.scopes,
            tools,
            retired: parsed.retired,
            implies,
            canonical,
        })
    } else {
        Err(errors)
    }
}

/// Problems with a tool's `confirm` table: its read tool, and every name its template and `quote` use.
fn check_confirm(tool: &Tool, confirm: &ConfirmSpec, tools: &[Arc<Tool>]) -> Vec<String> {
    let mut problems = Vec::new();
    let read = match &confirm.read {
        Some(name) => match tools.iter().find(|t| &t.spec.name == name) {
            None => {
                problems.push(format!("read names unknown tool `{name}`"));
                None
            }
            Some(t) if !t.spec.annotations.read_only || t.output.is_none() => {
                problems.push(format!(
                    "read tool `{name}` must be read-only with an output"
                ));
                None
            }
            Some(t) => Some(t),
        },
        None => None,
    };
    let field = |name: &str| {
        read.and_then(|t| t.output.as_ref())
            .is_some_and(|fields| fields.iter().any(|f| f.out == name))
    };
    for placeholder in crate::confirm::summary::referenced(&confirm.summary) {
        if !tool.spec.params.contains_key(placeholder) && !field(placeholder) {
            problems.push(format!(
                "summary: `{{{placeholder}}}` is neither a parameter nor a field of the read tool's output"
            ));
        }
    }
    for entry in &confirm.quote {
        let (_, name) = crate::confirm::summary::quote_parts(entry);
        if !field(name) {
            problems.push(format!(
                "quote: `{name}` is not a field of the read tool's output"
            ));
        }
    }
    for name in confirm.refuse.keys() {
        if !field(name) {
            problems.push(format!(
                "refuse: `{name}` is not a field of the read tool's output"
            ));
        }
    }
    if tool.spec.annotations.read_only {
        problems.push("a read-only tool needs no confirmation".into());
    }
    problems
}

/// Checks a run tool's `wait` against the tools it names: they exist, read, take the arguments given
/// to them, and have the output fields the spec reads.
fn check_wait(run: &Tool, wait: &WaitSpec, tools: &[Arc<Tool>]) -> Vec<String> {
    let mut problems = Vec::new();
    let outputs = |t: &Tool| -> BTreeSet<String> {
        t.output.iter().flatten().map(|f| f.out.clone()).collect()
    };
    let find = |role: &str, name: &str, problems: &mut Vec<String>| -> Option<Arc<Tool>> {
        let found = tools.iter().find(|t| t.spec.name == name).cloned();
        match &found {
            None => problems.push(format!("{role} names unknown tool `{name}`")),
            Some(t) if !t.spec.annotations.read_only => {
                problems.push(format!("{role} tool `{name}` must be read-only"))
            }
            Some(_) => {}
        }
        found
    };
    if run.spec.annotations.read_only || run.output.is_none() {
        problems.push("only a tool that starts something and returns JSON can wait".into());
    }
    let run_out = outputs(run);
    for field in wait.args.values() {
        if !run_out.contains(field) {
            problems.push(format!(
                "args: `{field}` is not an output field of this tool"
            ));
        }
    }
    if let Some(poll) = find("poll", &wait.poll, &mut problems) {
        let out = outputs(&poll);
        for field in std::iter::once(&wait.state).chain(wait.outcome.iter()) {
            if !out.contains(field) {
                problems.push(format!(
                    "`{field}` is not an output field of `{}`",
                    wait.poll
                ));
            }
        }
        if wait.steps_tool.is_none() && !out.contains(&wait.steps) {
            problems.push(format!(
                "`{}` is not an output field of `{}`",
                wait.steps, wait.poll
            ));
        }
        for param in wait.args.keys() {
            if !poll.spec.params.contains_key(param) {
                problems.push(format!(
                    "args: `{}` takes no parameter `{param}`",
                    wait.poll
                ));
            }
        }
    }
    if let Some(steps) = &wait.steps_tool
        && let Some(tool) = find("steps_tool", steps, &mut problems)
        && (tool
            .spec
            .output
            .as_ref()
            .and_then(|o| o.list.as_ref())
            .is_none()
            || wait.steps != "items")
    {
        problems.push(format!(
            "steps_tool `{steps}` must be a list, read as `steps = \"items\"`"
        ));
    }
    if let Some(log) = find("log", &wait.log, &mut problems) {
        if !log.spec.text_tail {
            problems.push(format!("log tool `{}` must take `tail`", wait.log));
        }
        for param in wait.log_args.keys() {
            if !log.spec.params.contains_key(param) {
                problems.push(format!(
                    "log_args: `{}` takes no parameter `{param}`",
                    wait.log
                ));
            }
        }
    }
    for waiting in &wait.waiting {
        problems.extend(check_waiting(run, wait, waiting, tools));
    }
    if wait.running.is_empty() || wait.success.is_empty() || wait.step_state.is_empty() {
        problems.push("`running`, `success` and `step_state` must not be empty".into());
    }
    problems
}

/// Checks one waiting state of a run tool's `wait`: `poll` shows its field, and the tool that moves the
/// run on writes and gets every required argument from the run tool's arguments or the wait's `args`.
fn check_waiting(
    run: &Tool,
    wait: &WaitSpec,
    waiting: &WaitingSpec,
    tools: &[Arc<Tool>],
) -> Vec<String> {
    let mut problems = Vec::new();
    let field = waiting.field.as_ref().unwrap_or(&wait.state);
    let poll = tools.iter().find(|t| t.spec.name == wait.poll);
    if let Some(poll) = poll
        && !poll.output.iter().flatten().any(|f| &f.out == field)
    {
        problems.push(format!(
            "waiting: `{field}` is not an output field of `{}`",
            wait.poll
        ));
    }
    let Some(next) = &waiting.next else {
        return problems;
    };
    match tools.iter().find(|t| &t.spec.name == next) {
        None => problems.push(format!("waiting: next names unknown tool `{next}`")),
        Some(t) if t.spec.annotations.read_only => problems.push(format!(
            "waiting: next tool `{next}` changes nothing, so it cannot move the run on"
        )),
        Some(t) => {
            for (name, param) in &t.spec.params {
                let given = run.spec.params.contains_key(name) || wait.args.contains_key(name);
                if param.required && !given {
                    problems.push(format!(
                        "waiting: `{next}` needs `{name}`, which is neither a parameter of this tool nor in `args`"
                    ));
                }
            }
        }
    }
    problems
}

/// Names of every placeholder a tool's templates use, including those of the lookups that apply to it.
fn placeholder_names(spec: &ToolSpec, shared_resolve: &[ResolveSpec]) -> BTreeSet<String> {
    let names_in = |texts: &mut dyn Iterator<Item = &str>| -> BTreeSet<String> {
        let mut found = Vec::new();
        for text in texts {
            for piece in template::parse(text).unwrap_or_default() {
                if let Piece::Hole(p) = piece {
                    found.push(p);
                }
            }
        }
        template::names(&found)
    };
    let mut names = names_in(
        &mut std::iter::once(spec.path.as_str()).chain(spec.query.values().map(String::as_str)),
    );
    if let Some(body) = &spec.body {
        let mut found = Vec::new();
        let _ = template::body_placeholders(body, &mut found);
        names.extend(template::names(&found));
    }
    let applies = |r: &&ResolveSpec| names.contains(&r.param) || spec.params.contains_key(&r.param);
    let lookups: Vec<&ResolveSpec> = spec
        .resolve
        .iter()
        .chain(shared_resolve.iter())
        .filter(applies)
        .collect();
    for r in lookups {
        names.extend(names_in(
            &mut std::iter::once(r.path.as_str()).chain(r.query.values().map(String::as_str)),
        ));
    }
    names
}

fn compile_query(query: &BTreeMap<String, String>) -> Result<Vec<(String, Vec<Piece>)>, String> {
    query
        .iter()
        .map(|(k, v)| Ok((k.clone(), template::parse(v)?)))
        .collect()
}

fn query_placeholders(query: &[(String, Vec<Piece>)]) -> Vec<Placeholder> {
    query
        .iter()
        .flat_map(|(_, pieces)| pieces)
        .filter_map(|p| match p {
            Piece::Hole(h) => Some(h.clone()),
            Piece::Lit(_) => None,
        })
        .collect()
}

fn compile_tool(
    provider: &ProviderSpec,
    scopes: &HashMap<String, Vec<String>>,
    spec: ToolSpec,
) -> Result<Tool, Vec<String>> {
    let mut problems = Vec::new();
    if spec.name.is_empty()
        || !spec
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        problems.push("name must be lowercase letters, digits and `_`".to_string());
    }
    for field in [
        ("title", &spec.title),
        ("description", &spec.description),
        ("toolset", &spec.toolset),
    ] {
        if field.1.trim().is_empty() {
            problems.push(format!("`{}` must not be empty", field.0));
        }
    }
    if spec.scopes.is_empty() {
        problems.push("declares no scopes".into());
    }
    for scope in &spec.scopes {
        if !scopes.contains_key(scope) {
            problems.push(format!("unknown scope `{scope}`"));
        }
    }
    if spec.annotations.read_only && spec.method != Method::Get {
        problems.push(format!("is read_only but uses {:?}", spec.method));
    }
    if spec.method == Method::Get && spec.body.is_some() {
        problems.push("a GET has no body".into());
    }

    let path = PathTemplate::parse(&spec.path)
        .map_err(|e| problems.push(e))
        .ok();
    let query = compile_query(&spec.query)
        .map_err(|e| problems.push(e))
        .ok();
    let mut used: Vec<Placeholder> = Vec::new();
    if let Some(p) = &path {
        used.extend(p.placeholders().cloned());
    }
    if let Some(q) = &query {
        let placeholders = query_placeholders(q);
        if placeholders
            .iter()
            .any(|p| matches!(p, Placeholder::Multi(_) | Placeholder::Item(_)))
        {
            problems.push("`{+…}` and `{…[]}` are not allowed in a query".into());
        }
        used.extend(placeholders);
    }
    if let Some(body) = &spec.body
        && let Err(e) = template::body_placeholders(body, &mut used)
    {
        problems.push(e);
    }

    let mut resolve = Vec::new();
    for r in &spec.resolve {
        let rpath = PathTemplate::parse(&r.path)
            .map_err(|e| problems.push(e))
            .ok();
        let rquery = compile_query(&r.query).map_err(|e| problems.push(e)).ok();
        if let (Some(rpath), Some(rquery)) = (rpath, rquery) {
            used.extend(rpath.placeholders().cloned());
            used.extend(query_placeholders(&rquery));
            resolve.push(Resolve {
                param: r.param.clone(),
                when: r.when,
                path: rpath,
                query: rquery,
                take: r.take.clone(),
            });
        }
        if !spec.params.contains_key(&r.param) {
            problems.push(format!(
                "resolve rewrites undeclared parameter `{}`",
                r.param
            ));
        }
    }
    let cursor_prefix = spec
        .cursor_prefix
        .as_deref()
        .and_then(|p| PathTemplate::parse(p).map_err(|e| problems.push(e)).ok());
    let accepted_under = spec.accepted.as_ref().and_then(|a| {
        PathTemplate::parse(&a.under)
            .map_err(|e| problems.push(format!("accepted: under: {e}")))
            .ok()
    });
    if let (Some(under), Some(accepted)) = (&accepted_under, &spec.accepted) {
        if !under.is_prefix() {
            problems.push(format!(
                "accepted: under `{}` must end with `/`",
                accepted.under
            ));
        }
        for p in under.placeholders() {
            if !spec.params.contains_key(p.name()) {
                problems.push(format!(
                    "accepted: under: `{{{}}}` has no parameter",
                    p.name()
                ));
            }
        }
        if accepted.pending.is_empty() || accepted.seconds == 0 {
            problems.push("accepted: `pending` and `seconds` must not be empty".into());
        }
    }

    let declared: BTreeSet<String> = spec.params.keys().cloned().collect();
    let referenced = template::names(&used);
    for name in referenced.difference(&declared) {
        problems.push(format!("placeholder `{{{name}}}` has no parameter"));
    }
    for name in declared.difference(&referenced) {
        problems.push(format!("parameter `{name}` is declared but never sent"));
    }
    for group in &spec.require_one_of {
        for name in group {
            if !declared.contains(name) {
                problems.push(format!(
                    "require_one_of names undeclared parameter `{name}`"
                ));
            }
        }
    }
    for (name, others) in &spec.requires {
        for name in std::iter::once(name).chain(others) {
            if !declared.contains(name) {
                problems.push(format!("requires names undeclared parameter `{name}`"));
            }
        }
        if others.is_empty() {
            problems.push(format!(
                "requires: `{name}` needs at least one other parameter"
            ));
        }
    }
    for (name, param) in &spec.params {
        if [
            CURSOR_PARAM,
            OFFSET_PARAM,
            TAIL_PARAM,
            FIELDS_PARAM,
            WAIT_PARAM,
            CONFIRM_PARAM,
        ]
        .contains(&name.as_str())
        {
            problems.push(format!("parameter `{name}` is reserved for the engine"));
        }
        schema::check_param(name, param, &mut problems);
    }

    let paginated = match &provider.pagination {
        Pagination::Page { size_param, .. } => spec.query.contains_key(size_param),
        Pagination::NextUrl { .. } => spec.output.as_ref().is_some_and(|o| o.list.is_some()),
    };
    let output = match (&spec.response, &spec.output) {
        (ResponseKind::Json, Some(o)) => shape::parse_fields(&o.fields)
            .map_err(|e| problems.push(format!("output: {e}")))
            .ok(),
        (ResponseKind::Json, None) => {
            problems.push("a json tool needs an `output` projection".into());
            None
        }
        (_, Some(_)) => {
            problems.push("only json tools have an `output` projection".into());
            None
        }
        (_, None) => None,
    };
    if spec.text_lines.is_some() && spec.response != ResponseKind::Text {
        problems.push("`text_lines` needs `response = \"text\"`".into());
    }
    if spec.text_tail && spec.response != ResponseKind::Text {
        problems.push("`text_tail` needs `response = \"text\"`".into());
    }
    if spec.redirects == Redirects::Storage
        && (spec.response != ResponseKind::Text || spec.method != Method::Get)
    {
        problems
            .push("`redirects = \"storage\"` is for GET tools with `response = \"text\"`".into());
    }
    if (spec.text_total.is_some() || spec.text_start.is_some()) && spec.text_lines.is_none() {
        problems.push("`text_total` and `text_start` need `text_lines`".into());
    }
    if let Some(start) = &spec.text_start
        && !spec.params.contains_key(start)
    {
        problems.push(format!("text_start names undeclared parameter `{start}`"));
    }
    let keep_current = spec.keep_current.as_ref().and_then(|k| {
        shape::parse_fields(k)
            .map_err(|e| problems.push(format!("keep_current: {e}")))
            .ok()
    });
    let mut errors = BTreeMap::new();
    for (status, message) in &spec.errors {
        match status.parse::<u16>() {
            Ok(code) if (400..600).contains(&code) => {
                errors.insert(code, message.clone());
            }
            _ => problems.push(format!("errors: `{status}` is not an HTTP error status")),
        }
    }

    if spec.example.is_none() {
        problems.push("has no `example` arguments".into());
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let tool = Tool {
        name: format!("{}_{}", provider.id, spec.name),
        provider: provider.id.clone(),
        path: path.expect("checked above"),
        query: query.expect("checked above"),
        resolve,
        keep_current,
        output,
        cursor_prefix,
        accepted_under,
        errors,
        paginated,
        spec,
    };
    schema::validate(
        &tool,
        tool.spec.example.as_ref(),
        &schema::Defaults::default(),
    )
    .map_err(|e| vec![format!("example: {e}")])?;
    Ok(tool)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = r#"
version = "1"
[provider]
id = "demo"
title = "Demo"
api_base = "https://api.example.com"
authorize_url = "/oauth/authorize"
token_url = "/oauth/token"
client_auth = "form"
pagination = { style = "next_url", next = "next" }
error_message = ["error.message"]
whoami = { path = "/user", account = "name", id = "id" }
[[scopes]]
name = "read"
description = "Read"
[[scopes]]
name = "write"
description = "Write"
implies = ["read"]
"#;

    fn load(tools: &str) -> Result<Catalog, Vec<CatalogError>> {
        Catalog::from_sources([("tools/demo.toml".to_string(), format!("{HEAD}{tools}"))])
    }

    fn messages(tools: &str) -> Vec<String> {
        load(tools)
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    const GOOD: &str = r#"
[[tools]]
name = "get_thing"
title = "Get a thing"
description = "Returns one thing."
toolset = "things"
scopes = ["read"]
annotations = { read_only = true }
method = "GET"
path = "/things/{id}"
params.id = { type = "string", required = true, description = "Thing id" }
output.fields = ["id", "name"]
example = { id = "t1" }
"#;

    #[test]
    fn a_good_catalog_loads_and_expands_scopes() {
        let catalog = load(GOOD).unwrap();
        let provider = catalog.provider("demo").unwrap();
        assert_eq!(provider.tools[0].name, "demo_get_thing");
        let expanded = provider.expand_scopes(["write"]);
        assert!(expanded.contains("read") && expanded.contains("write"));
    }

    #[test]
    fn a_cursor_prefix_names_a_subtree_without_other_tools() {
        let list = |prefix: &str| {
            format!(
                r#"{GOOD}
[[tools]]
name = "list_parts"
title = "List parts"
description = "Lists a thing's parts."
toolset = "things"
scopes = ["read"]
annotations = {{ read_only = true }}
method = "GET"
path = "/things/{{id}}/parts"
cursor_prefix = "{prefix}"
params.id = {{ type = "string", required = true, description = "Thing id" }}
output = {{ list = "values", fields = ["id"] }}
example = {{ id = "t1" }}
"#
            )
        };
        assert!(load(&list("/things/{id}/parts/")).is_ok());
        assert!(load(&list("/parts/{id}/")).is_ok());
        let m = messages(&list("/things/"));
        assert!(
            m.iter().any(|m| m.contains("also covers tool `get_thing`")),
            "{m:?}"
        );
        let m = messages(&list("/{id}/"));
        assert!(
            m.iter().any(|m| m.contains("also covers tool `get_thing`")),
            "{m:?}"
        );
        let m = messages(&list("/things/{id}/parts"));
        assert!(m.iter().any(|m| m.contains("must end with `/`")), "{m:?}");
    }

    #[test]
    fn unknown_keys_scopes_placeholders_and_duplicates_are_named() {
        let typo = GOOD.replace("toolset =", "tooset = \"x\"\ntoolset =");
        let m = messages(&typo);
        assert!(
            m[0].starts_with("tools/demo.toml") && m[0].contains("tooset"),
            "{m:?}"
        );

        let m = messages(&GOOD.replace("[\"read\"]", "[\"admin\"]"));
        assert_eq!(
            m,
            ["tools/demo.toml: tool `get_thing`: unknown scope `admin`"]
        );

        let m = messages(&GOOD.replace("/things/{id}", "/things/{id}/{other}"));
        assert!(
            m.iter()
                .any(|e| e.contains("`get_thing`") && e.contains("`{other}` has no parameter")),
            "{m:?}"
        );

        let m = messages(&format!("{GOOD}{GOOD}"));
        assert!(
            m.iter().any(|e| e.contains("`get_thing`: declared twice")),
            "{m:?}"
        );

        let m = messages(&GOOD.replace("/things/{id}", "/things"));
        assert!(
            m.iter()
                .any(|e| e.contains("`id` is declared but never sent")),
            "{m:?}"
        );
    }

    #[test]
    fn a_retired_name_is_known_as_retired_and_gone_from_the_catalog() {
        let retired = r#"
[[retired]]
why = "Demo removed its archive"
scopes = ["archive"]
toolsets = ["archives"]
tools = ["list_archive"]
"#;
        let catalog = load(&format!("{GOOD}{retired}")).unwrap();
        let provider = catalog.provider("demo").unwrap();
        let why = Some("Demo removed its archive");
        assert_eq!(provider.retired_scope("archive"), why);
        assert_eq!(catalog.retired_tool("demo_list_archive"), why);
        assert_eq!(catalog.retired_toolset("archives"), why);
        assert_eq!(provider.retired_scope("read"), None);
        assert_eq!(
            catalog.retired_tool("list_archive"),
            None,
            "needs the prefix"
        );

        let still_there = retired
            .replace("[\"archive\"]", "[\"read\"]")
            .replace("[\"archives\"]", "[\"things\"]")
            .replace("[\"list_archive\"]", "[\"get_thing\"]");
        assert_eq!(
            messages(&format!("{GOOD}{still_there}")),
            [
                "tools/demo.toml: retired scope `read` is still in the catalog",
                "tools/demo.toml: retired tool `get_thing` is still in the catalog",
                "tools/demo.toml: retired toolset `things` is still in the catalog",
            ]
        );
    }

    #[test]
    fn a_confirm_table_names_only_parameters_and_read_fields() {
        let delete = r#"
[[tools]]
name = "delete_thing"
title = "Delete a thing"
description = "Deletes one thing."
toolset = "things"
scopes = ["write"]
annotations = { read_only = false, destructive = true }
method = "DELETE"
path = "/things/{id}"
response = "empty"
params.id = { type = "string", required = true }
example = { id = "t1" }
confirm.read = "get_thing"
confirm.summary = "Delete thing {id} ({current.name})"
confirm.quote = ["name"]
confirm.refuse = { name = ["GONE"] }
"#;
        load(&format!("{GOOD}{delete}")).unwrap();
        let m = messages(&format!(
            "{GOOD}{}",
            delete
                .replace("({current.name})", "({current.colour}, {size|?})")
                .replace("[\"name\"]", "[\"label=notes\"]")
                .replace("{ name = [", "{ state = [")
        ));
        assert_eq!(
            m,
            [
                "tools/demo.toml: tool `delete_thing`: confirm: summary: `{colour}` is neither a parameter nor a field of the read tool's output",
                "tools/demo.toml: tool `delete_thing`: confirm: summary: `{size}` is neither a parameter nor a field of the read tool's output",
                "tools/demo.toml: tool `delete_thing`: confirm: quote: `notes` is not a field of the read tool's output",
                "tools/demo.toml: tool `delete_thing`: confirm: refuse: `state` is not a field of the read tool's output",
            ]
        );
    }

    #[test]
    fn a_waiting_state_names_a_field_of_the_poll_and_a_tool_that_can_move_the_run() {
        let run = r#"
[[tools]]
name = "thing_log"
title = "Thing log"
description = "Returns a thing's log."
toolset = "things"
scopes = ["read"]
annotations = { read_only = true }
method = "GET"
path = "/things/{id}/log"
params.id = { type = "string", required = true }
response = "text"
text_tail = true
example = { id = "t1" }

[[tools]]
name = "poke_thing"
title = "Poke a thing"
description = "Moves a waiting thing on."
toolset = "things"
scopes = ["write"]
annotations = { read_only = false }
method = "POST"
path = "/things/{id}/poke"
params.id = { type = "string", required = true }
params.why = { type = "string", required = true }
body = { why = "{why}" }
response = "empty"
example = { id = "t1", why = "test" }

[[tools]]
name = "start_thing"
title = "Start a thing"
description = "Starts a thing."
toolset = "things"
scopes = ["write"]
annotations = { read_only = false }
method = "POST"
path = "/things"
body = { why = "{why}" }
params.why = { type = "string", required = true }
output.fields = ["id"]
example = { why = "test" }

[tools.wait]
poll = "get_thing"
args = { id = "id" }
state = "name"
running = ["RUNNING"]
success = ["DONE"]
steps = "name"
step_name = "name"
step_state = ["name"]
step_failed = ["FAILED"]
log = "thing_log"
log_args = {}

[[tools.wait.waiting]]
value = "WAITING"
waits_for = "a poke"
next = "poke_thing"
"#;
        load(&format!("{GOOD}{run}")).unwrap();
        let broken = run
            .replace(
                "value = \"WAITING\"",
                "field = \"colour\"\nvalue = \"WAITING\"",
            )
            .replace(
                "body = { why = \"{why}\" }\nparams.why = { type = \"string\", required = true }\n",
                "",
            )
            .replace("example = { why = \"test\" }", "example = {}");
        assert_eq!(
            messages(&format!("{GOOD}{broken}")),
            [
                "tools/demo.toml: tool `start_thing`: wait: waiting: `colour` is not an output field of `get_thing`",
                "tools/demo.toml: tool `start_thing`: wait: waiting: `poke_thing` needs `why`, which is neither a parameter of this tool nor in `args`",
            ]
        );
        let reads = run.replace("next = \"poke_thing\"", "next = \"get_thing\"");
        assert_eq!(
            messages(&format!("{GOOD}{reads}")),
            [
                "tools/demo.toml: tool `start_thing`: wait: waiting: next tool `get_thing` changes nothing, so it cannot move the run on"
            ]
        );
    }

    #[test]
    fn the_shipped_catalogs_load() {
        let catalog = Catalog::builtin().unwrap_or_else(|e| {
            panic!(
                "{}",
                e.iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
        assert_eq!(catalog.providers.len(), 2);
    }
}
