//! Every path the catalog reads, held to the published schemas or a citation; wait names.

use super::*;

/// Checks paths against one described body: its schema, and its cited paths (each must be used, and
/// must be missing from the schema, or it is stale).
struct PathCheck<'a> {
    schemas: &'a Schemas,
    what: String,
    roots: Vec<At<'a>>,
    cited: &'a BTreeMap<String, String>,
    used: BTreeSet<String>,
    problems: Vec<String>,
}

impl<'a> PathCheck<'a> {
    fn new(
        schemas: &'a Schemas,
        what: String,
        schema: &str,
        cited: &'a BTreeMap<String, String>,
    ) -> Self {
        let mut problems = Vec::new();
        let roots = match schemas.resolve("", schema) {
            Ok(at) => schemas.kinds(at),
            Err(e) => {
                problems.push(format!("{what}: schema {e}"));
                vec![]
            }
        };
        Self {
            schemas,
            what,
            roots,
            cited,
            used: BTreeSet::new(),
            problems,
        }
    }

    /// The cited key covering `path` (the path itself or one above it).
    fn cited_for(&self, path: &str) -> Option<String> {
        self.cited
            .keys()
            .find(|c| {
                path == c.as_str()
                    || path
                        .strip_prefix(c.as_str())
                        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with("[]"))
            })
            .cloned()
    }

    /// Follows dot-path segments (`(key, each)`) from `from`; reports where the path leaves the schema
    /// unless a citation covers it. Returns the schemas reached, or `None` when cited or missing.
    fn walk(
        &mut self,
        from: Vec<At<'a>>,
        base: &str,
        segments: &[(String, bool)],
        reading: &str,
    ) -> Option<(Vec<At<'a>>, String)> {
        let full = join_path(base, segments);
        if let Some(c) = self.cited_for(&full) {
            self.used.insert(c);
            return None;
        }
        let mut schemas = from;
        let mut path = base.to_string();
        for (key, each) in segments {
            path = join_path(&path, &[(key.clone(), false)]);
            let next = self.schemas.property(&schemas, key);
            if next.is_empty() {
                self.problems.push(format!(
                    "{}: `{path}` (read as `{reading}`) is not in the schema and not cited",
                    self.what
                ));
                return None;
            }
            schemas = next;
            if *each {
                path.push_str("[]");
                let items = self.schemas.items(&schemas);
                if items.is_empty() {
                    self.problems.push(format!(
                        "{}: `{path}` (read as `{reading}`) is not an array in the schema",
                        self.what
                    ));
                    return None;
                }
                schemas = items;
            }
        }
        Some((schemas, path))
    }

    /// A dot path as the catalog writes provider paths (`error.message`, `next`, `target.hash`).
    fn dot_path(&mut self, dot: &str, reading: &str) -> Option<(Vec<At<'a>>, String)> {
        let segments: Vec<(String, bool)> = dot
            .split('.')
            .filter(|s| !s.is_empty())
            .map(|s| (s.to_string(), false))
            .collect();
        self.walk(self.roots.clone(), "", &segments, reading)
    }

    /// Output fields (with their sub-fields) read from values of `from` at `base`.
    fn fields(&mut self, from: &[At<'a>], base: &str, fields: &[Field]) {
        for field in fields {
            let segments: Vec<(String, bool)> =
                field.path.iter().map(|s| (s.key.clone(), s.each)).collect();
            let reading = join_path(base, &segments);
            let Some((schemas, path)) = self.walk(from.to_vec(), base, &segments, &reading) else {
                continue;
            };
            if let Some(sub) = &field.sub {
                // A sub-projection applies to each item when the value is an array.
                let items = self.schemas.items(&schemas);
                let (targets, at) = if items.is_empty() {
                    (schemas, path)
                } else {
                    (items, format!("{path}[]"))
                };
                self.fields(&targets, &at, sub);
            }
        }
    }

    fn finish(mut self) -> Vec<String> {
        for (path, source) in self.cited {
            if source.trim().is_empty() {
                self.problems
                    .push(format!("{}: cited `{path}` names no source", self.what));
            } else if !self.used.contains(path) {
                self.problems.push(format!(
                    "{}: cited `{path}` is not read by the catalog, or the schema already has it",
                    self.what
                ));
            }
        }
        self.problems
    }
}

fn join_path(base: &str, segments: &[(String, bool)]) -> String {
    let mut out = base.to_string();
    for (key, each) in segments {
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(key);
        if *each {
            out.push_str("[]");
        }
    }
    out
}

/// What the catalog reads from a response must be in the schema (or cited): every problem found.
pub(super) fn check_paths(contract: &Contract) -> Vec<String> {
    let provider = &contract.provider;
    let id = &provider.spec.id;
    let mut problems = Vec::new();
    let mut entries: BTreeSet<&String> = contract.index.tools.keys().collect();
    let mut page_counts = 0;
    for tool in &provider.tools {
        let name = &tool.spec.name;
        let what = format!("{id}/{name}");
        let Some(entry) = contract.index.tools.get(name) else {
            problems.push(format!(
                "{what}: no entry in tests/contract/{id}/index.toml (every catalog tool needs one)"
            ));
            continue;
        };
        entries.remove(name);
        let kind = if tool.spec.response == ResponseKind::Json || tool.spec.text_lines.is_some() {
            BodyKind::Json
        } else if tool.spec.response == ResponseKind::Text {
            BodyKind::Text
        } else {
            BodyKind::Empty
        };
        if entry.body != kind {
            problems.push(format!(
                "{what}: the index says body = {:?}, the catalog's tool answers {kind:?}",
                entry.body
            ));
        }
        match (&entry.schema, kind) {
            (None, BodyKind::Json) => {
                problems.push(format!("{what}: a JSON body needs a `schema`"))
            }
            (Some(_), BodyKind::Text | BodyKind::Empty) => {
                problems.push(format!("{what}: a {kind:?} body names no schema"))
            }
            _ => {}
        }
        if let Some(schema) = &entry.schema {
            let mut check = PathCheck::new(&contract.schemas, what.clone(), schema, &entry.cited);
            let roots = check.roots.clone();
            if tool.paginated {
                match &provider.spec.pagination {
                    Pagination::NextUrl { next, numbered } => {
                        check.dot_path(next, "the next page's URL");
                        if let Some(numbered) = numbered {
                            check.dot_path(&numbered.page, "the page number");
                            check.dot_path(&numbered.pagelen, "the page length");
                            check.dot_path(&numbered.size, "the item count");
                        }
                    }
                    Pagination::Page {
                        total_pages: Some(total),
                        ..
                    } => {
                        // The engine reads a page count where a list has one and otherwise pages on
                        // while pages come full, so a list whose document shows none is not wrong;
                        // but some list must show it, or the catalog names a field nobody sends.
                        let before = check.problems.len();
                        check.dot_path(total, "the page count");
                        if check.problems.len() == before {
                            page_counts += 1;
                        } else {
                            check.problems.truncate(before);
                        }
                    }
                    Pagination::Page { .. } => {}
                }
            }
            if let Some(lines) = &tool.spec.text_lines {
                check.dot_path(lines, "the lines of text");
            }
            if let Some(total) = &tool.spec.text_total {
                check.dot_path(total, "the line count");
            }
            if let (Some(output), Some(fields)) = (&tool.spec.output, &tool.output) {
                match &output.list {
                    Some(list) => {
                        if let Some((schemas, path)) = check.dot_path(list, "the list") {
                            let items = contract.schemas.items(&schemas);
                            if items.is_empty() {
                                check.problems.push(format!(
                                    "{what}: the list `{path}` is not an array in the schema"
                                ));
                            } else {
                                check.fields(&items, &format!("{path}[]"), fields);
                            }
                        }
                    }
                    None => check.fields(&roots, "", fields),
                }
            }
            problems.extend(check.finish());
        } else if !entry.cited.is_empty() {
            problems.push(format!("{what}: `cited` without a schema"));
        }
        // Lookups: the value `take` reads.
        let mut resolves: BTreeSet<&String> = entry.resolve.keys().collect();
        for r in &tool.resolve {
            resolves.remove(&r.param);
            let Some(described) = entry
                .resolve
                .get(&r.param)
                .or_else(|| contract.index.resolve.get(&r.param))
            else {
                problems.push(format!(
                    "{what}: its lookup of `{}` has no `resolve.{}` entry",
                    r.param, r.param
                ));
                continue;
            };
            let what = format!("{what}: lookup of `{}`", r.param);
            let mut check =
                PathCheck::new(&contract.schemas, what, &described.schema, &described.cited);
            check.dot_path(&r.take, "the value taken");
            problems.extend(check.finish());
        }
        for param in resolves {
            problems.push(format!(
                "{what}: `resolve.{param}` names no lookup of the tool"
            ));
        }
        // The read behind keep_current.
        match (&tool.keep_current, &entry.current) {
            (Some(fields), Some(described)) => {
                let what = format!("{what}: current values");
                let mut check =
                    PathCheck::new(&contract.schemas, what, &described.schema, &described.cited);
                let roots = check.roots.clone();
                check.fields(&roots, "", fields);
                problems.extend(check.finish());
            }
            (Some(_), None) => problems.push(format!(
                "{what}: keep_current reads the current object: it needs a `current` entry"
            )),
            (None, Some(_)) => problems.push(format!("{what}: `current` without keep_current")),
            (None, None) => {}
        }
        problems.extend(check_wait_names(provider, tool));
    }
    for name in entries {
        problems.push(format!(
            "{id}/{name}: an index entry for a tool the catalog lacks"
        ));
    }
    if let Pagination::Page {
        total_pages: Some(total),
        ..
    } = &provider.spec.pagination
        && page_counts == 0
        && provider.tools.iter().any(|t| t.paginated)
    {
        problems.push(format!(
            "{id}: no list's schema has the page count `{total}` the catalog reads"
        ));
    }
    problems
}

/// `wait` reads its runs' steps by output field name: those names must be fields of the tool (or the
/// poll's list field) it reads them from, whose own paths `check_paths` holds to the schemas. (The
/// catalog checks `state`, `outcome`, `steps` and the `confirm` names at load.)
fn check_wait_names(provider: &Provider, tool: &Tool) -> Vec<String> {
    let Some(wait) = &tool.spec.wait else {
        return Vec::new();
    };
    let find = |name: &str| provider.tools.iter().find(|t| t.spec.name == name);
    let step_fields: Vec<String> = match &wait.steps_tool {
        Some(steps) => find(steps)
            .and_then(|t| t.output.as_ref())
            .map(|o| o.iter().map(|f| f.out.clone()).collect())
            .unwrap_or_default(),
        None => find(&wait.poll)
            .and_then(|t| t.output.as_ref())
            .and_then(|o| o.iter().find(|f| f.out == wait.steps))
            .and_then(|f| f.sub.as_ref())
            .map(|sub| sub.iter().map(|f| f.out.clone()).collect())
            .unwrap_or_default(),
    };
    let names = std::iter::once(&wait.step_name)
        .chain(&wait.step_state)
        .chain(wait.log_args.values());
    names
        .filter(|n| !step_fields.contains(n))
        .map(|n| {
            format!(
                "{}/{}: wait reads `{n}` from each step, which is not an output field of the steps",
                provider.spec.id, tool.spec.name
            )
        })
        .collect()
}

#[test]
fn every_path_the_catalog_reads_is_in_the_published_schemas_or_cited() {
    let catalog = Catalog::builtin().unwrap();
    let mut problems = Vec::new();
    for contract in contracts(&catalog) {
        problems.extend(check_paths(&contract));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------------
// Answers: does the simulator answer what the documents describe?
// ---------------------------------------------------------------------------------------------------
