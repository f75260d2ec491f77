//! Compiling one catalog file: its provider, scopes and tools parsed, templates compiled and every
//! cross-reference checked, with each problem named by file and tool.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::checks::{check_confirm, check_wait};
use super::template::{PathTemplate, Piece, Placeholder};
use super::*;
use crate::shape;

pub(super) fn compile_file(file: &str, text: &str) -> Result<Provider, Vec<CatalogError>> {
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
        if tool.spec.task && tool.spec.wait.is_none() && tool.spec.accepted.is_none() {
            push(
                Some(&tool.spec.name),
                "task: the tool starts nothing devgate follows; add [tools.wait] or [tools.accepted], or remove `task`".into(),
            );
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
        if is_engine_param(name) {
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
            .and_then(|fields| match shape::named_twice(&fields) {
                Some(name) => Err(format!("`{name}` names two fields")),
                None => Ok(fields),
            })
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
