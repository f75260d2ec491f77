//! The catalogs held to the providers' published documents (layout and rules: tests/contract/README.md).
//!
//! Per provider directory under `tests/contract/`: every catalog tool has an entry in `index.toml`; every
//! path the catalog reads from a response exists in the entry's schema or is cited; and every JSON answer
//! the simulator gives to the tools' examples, called through devgate over stdio, validates against the
//! schema of the request it answers. The validator is written here, for the keyword subset the README
//! lists, rather than taken from the `jsonschema` crate: the test also has to walk the catalog's paths
//! through the schemas (with OpenAPI's `discriminator` subtypes), which no validator crate offers, and
//! the subset is small. `jsonschema` 0.61 would add about 24 crates (regex engines, `num`, URI
//! handling), among them a second `bit-set`/`bit-vec` beside proptest's, for keywords these schemas
//! do not use.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::common::*;
use devgate::catalog::{Catalog, Method, Pagination, Provider, ResponseKind, Tool};
use devgate::shape::Field;
use devgate::sim::{Answered, Sim, Which};
use rmcp::model::CallToolRequestParams;
use serde::Deserialize;
use serde_json::Value;

const CONTRACTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/contract");

// ---------------------------------------------------------------------------------------------------
// index.toml
// ---------------------------------------------------------------------------------------------------

/// One provider's `index.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Index {
    source: Source,
    /// Set (to the evidence) when real responses carry properties the document's closed objects
    /// (`additionalProperties: false`) leave out: such properties are then not errors.
    #[serde(default)]
    additional_properties_ignored: Option<String>,
    /// Lookups the catalog's top-level `[[resolve]]` makes, by the parameter they rewrite.
    #[serde(default)]
    resolve: BTreeMap<String, Described>,
    tools: BTreeMap<String, Entry>,
}

/// Where the schemas come from: free text for people, two parts required.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read by people
struct Source {
    title: String,
    version: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    copy: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

/// A body described by a schema: a lookup's, or the read behind `keep_current`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Described {
    #[serde(default)]
    #[allow(dead_code)] // read by people
    operation: Option<String>,
    schema: String,
    /// When this schema comes from elsewhere than `[source]`.
    #[serde(default)]
    #[allow(dead_code)] // read by people
    source: Option<String>,
    #[serde(default)]
    cited: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum BodyKind {
    Json,
    Text,
    Empty,
}

/// One catalog tool's entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    #[serde(default)]
    #[allow(dead_code)] // read by people
    operation: Option<String>,
    #[serde(default)]
    schema: Option<String>,
    #[serde(default = "json_body")]
    body: BodyKind,
    #[serde(default)]
    #[allow(dead_code)] // read by people
    source: Option<String>,
    #[serde(default)]
    cited: BTreeMap<String, String>,
    #[serde(default)]
    resolve: BTreeMap<String, Described>,
    #[serde(default)]
    current: Option<Described>,
}

fn json_body() -> BodyKind {
    BodyKind::Json
}

/// A provider's contract: its index and every schema file of its directory.
struct Contract {
    provider: Arc<Provider>,
    index: Index,
    schemas: Schemas,
}

/// Every provider directory present, each checked to name a catalog provider.
fn contracts(catalog: &Catalog) -> Vec<Contract> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(CONTRACTS)
        .expect("tests/contract exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no provider directory under {CONTRACTS}");
    dirs.iter()
        .map(|dir| {
            let id = dir.file_name().unwrap().to_string_lossy().to_string();
            let provider = catalog
                .provider(&id)
                .unwrap_or_else(|| panic!("tests/contract/{id}: no catalog provider `{id}`"))
                .clone();
            let text = std::fs::read_to_string(dir.join("index.toml"))
                .unwrap_or_else(|e| panic!("tests/contract/{id}/index.toml: {e}"));
            let index: Index = toml::from_str(&text)
                .unwrap_or_else(|e| panic!("tests/contract/{id}/index.toml: {e}"));
            assert!(
                !index.source.title.trim().is_empty() && !index.source.version.trim().is_empty(),
                "tests/contract/{id}/index.toml: [source] needs a title and a version"
            );
            let mut schemas = Schemas::load(dir);
            schemas.closed_objects = index.additional_properties_ignored.is_none();
            Contract {
                provider,
                index,
                schemas,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------------
// Schemas: loading, references, subtypes
// ---------------------------------------------------------------------------------------------------

/// Keywords the validator implements; every other keyword but the annotations is an error.
const KEYWORDS: &[&str] = &[
    "$ref",
    "$defs",
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "const",
    "allOf",
    "anyOf",
    "oneOf",
    "discriminator",
];
const ANNOTATIONS: &[&str] = &[
    "title",
    "description",
    "format",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$schema",
    "$id",
    "$comment",
];

/// The JSON files of one provider directory, by file name.
struct Schemas {
    files: BTreeMap<String, Value>,
    /// Per file: which `$defs` entries extend each entry through `allOf` (direct children).
    children: BTreeMap<String, HashMap<String, Vec<String>>>,
    /// Whether `additionalProperties: false` is enforced (see `Index::additional_properties_ignored`).
    closed_objects: bool,
}

/// A schema fragment and where it is: the file (for relative `$ref`s) and, for a `$defs` entry, its name.
#[derive(Clone, Copy)]
struct At<'a> {
    file: &'a str,
    def: Option<&'a str>,
    node: &'a Value,
}

impl Schemas {
    fn load(dir: &Path) -> Self {
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                let value: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                files.insert(name, value);
            }
        }
        Self::from_files(files)
    }

    fn from_files(files: BTreeMap<String, Value>) -> Self {
        let mut children = BTreeMap::new();
        for (file, doc) in &files {
            let mut map: HashMap<String, Vec<String>> = HashMap::new();
            for (name, def) in doc["$defs"].as_object().into_iter().flatten() {
                for parent in def["allOf"].as_array().into_iter().flatten() {
                    if let Some(target) = parent["$ref"]
                        .as_str()
                        .and_then(|r| r.strip_prefix("#/$defs/"))
                    {
                        map.entry(target.to_string())
                            .or_default()
                            .push(name.clone());
                    }
                }
            }
            children.insert(file.clone(), map);
        }
        Self {
            files,
            children,
            closed_objects: true,
        }
    }

    /// The schema a reference like `file.json#/$defs/x` (or `#/…` within `from`) names.
    fn resolve<'a>(&'a self, from: &str, reference: &str) -> Result<At<'a>, String> {
        let (file, pointer) = reference.split_once('#').unwrap_or((reference, ""));
        let file = if file.is_empty() { from } else { file };
        let (file, doc) = self
            .files
            .get_key_value(file)
            .ok_or_else(|| format!("`{reference}`: no schema file `{file}`"))?;
        let node = doc
            .pointer(pointer)
            .ok_or_else(|| format!("`{reference}`: nothing at `{pointer}` in {file}"))?;
        let def = pointer
            .strip_prefix("/$defs/")
            .filter(|n| !n.contains('/'))
            .and_then(|n| doc["$defs"].as_object()?.get_key_value(n))
            .map(|(k, _)| k.as_str());
        Ok(At { file, def, node })
    }

    fn def<'a>(&'a self, file: &str, name: &str) -> Option<At<'a>> {
        let (file, doc) = self.files.get_key_value(file)?;
        let (def, node) = doc["$defs"].as_object()?.get_key_value(name)?;
        Some(At {
            file,
            def: Some(def),
            node,
        })
    }

    /// Whether a `$defs` entry, or one it extends, carries OpenAPI's `discriminator`.
    fn discriminated(&self, file: &str, name: &str) -> bool {
        let mut seen = BTreeSet::new();
        let mut todo = vec![name.to_string()];
        while let Some(n) = todo.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            let Some(at) = self.def(file, &n) else {
                continue;
            };
            if at.node.get("discriminator").is_some() {
                return true;
            }
            for parent in at.node["allOf"].as_array().into_iter().flatten() {
                if let Some(p) = parent["$ref"]
                    .as_str()
                    .and_then(|r| r.strip_prefix("#/$defs/"))
                {
                    todo.push(p.to_string());
                }
            }
        }
        false
    }

    /// The entry and every entry extending it, when a discriminator picks among them; else the entry.
    fn kinds<'a>(&'a self, at: At<'a>) -> Vec<At<'a>> {
        let Some(name) = at.def else { return vec![at] };
        if !self.discriminated(at.file, name) {
            return vec![at];
        }
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        let mut todo = vec![name.to_string()];
        while let Some(n) = todo.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            if let Some(kind) = self.def(at.file, &n) {
                out.push(kind);
            }
            if let Some(kids) = self.children[at.file].get(&n) {
                todo.extend(kids.iter().cloned());
            }
        }
        out
    }

    /// Whether entry `kind` is `base` or extends it (in one file).
    fn extends(&self, file: &str, kind: &str, base: &str) -> bool {
        self.kinds(self.def(file, base).expect("base exists"))
            .iter()
            .any(|k| k.def == Some(kind))
    }
}

// ---------------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------------

fn type_matches(name: &str, value: &Value) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => false,
    }
}

impl Schemas {
    /// Every way `value` fails `at`, each as "`$.path`: what".
    fn validate<'a>(&'a self, at: At<'a>, value: &Value, path: &str, errors: &mut Vec<String>) {
        match self.pick_kind(at, value) {
            Ok(kind) => self.check(kind, value, path, at.def.is_some(), errors),
            Err(e) => errors.push(format!("`{path}`: {e}")),
        }
    }

    /// `kind_chosen`: a discriminator already chose the value's schema, whose `allOf` leads back to the
    /// schema it was chosen for; that one then applies as it is.
    fn check<'a>(
        &'a self,
        at: At<'a>,
        value: &Value,
        path: &str,
        kind_chosen: bool,
        errors: &mut Vec<String>,
    ) {
        let Some(node) = at.node.as_object() else {
            if at.node == &Value::Bool(false) {
                errors.push(format!("`{path}`: no value is allowed here"));
            }
            return;
        };
        for key in node.keys() {
            if !KEYWORDS.contains(&key.as_str()) && !ANNOTATIONS.contains(&key.as_str()) {
                errors.push(format!(
                    "`{path}`: the schema uses `{key}`, which this validator does not implement"
                ));
            }
        }
        if let Some(reference) = node.get("$ref").and_then(Value::as_str) {
            match self.resolve(at.file, reference) {
                Ok(target) if kind_chosen => self.check(target, value, path, true, errors),
                Ok(target) => match self.pick_kind(target, value) {
                    Ok(kind) => self.check(kind, value, path, true, errors),
                    Err(e) => errors.push(format!("`{path}`: {e}")),
                },
                Err(e) => errors.push(format!("`{path}`: {e}")),
            }
        }
        let sub = |s: &'a Value| At {
            file: at.file,
            def: None,
            node: s,
        };
        for s in node
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.check(sub(s), value, path, kind_chosen, errors);
        }
        for (keyword, exactly_one) in [("anyOf", false), ("oneOf", true)] {
            if let Some(options) = node.get(keyword).and_then(Value::as_array) {
                let passing = options
                    .iter()
                    .filter(|s| {
                        let mut e = Vec::new();
                        self.check(sub(s), value, path, kind_chosen, &mut e);
                        e.is_empty()
                    })
                    .count();
                if passing == 0 || (exactly_one && passing > 1) {
                    errors.push(format!(
                        "`{path}`: {passing} of the `{keyword}` schemas match {}",
                        short(value)
                    ));
                }
            }
        }
        if let Some(types) = node.get("type") {
            let names: Vec<&str> = match types {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            if !names.iter().any(|t| type_matches(t, value)) {
                errors.push(format!(
                    "`{path}`: expected {}, got {}",
                    names.join(" or "),
                    short(value)
                ));
                return;
            }
        }
        if let Some(allowed) = node.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            errors.push(format!(
                "`{path}`: {} is not one of {allowed:?}",
                short(value)
            ));
        }
        if let Some(constant) = node.get("const")
            && constant != value
        {
            errors.push(format!("`{path}`: {} is not {constant}", short(value)));
        }
        if let Some(object) = value.as_object() {
            let required: Vec<&str> = node
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            for name in &required {
                if !object.contains_key(*name) {
                    errors.push(format!("`{path}`: `{name}` is required"));
                }
            }
            let properties = node.get("properties").and_then(Value::as_object);
            for (key, v) in object {
                let here = format!("{path}.{key}");
                match properties.and_then(|p| p.get(key)) {
                    // The one leniency: `null` for an optional property (README "Schemas").
                    Some(_) if v.is_null() && !required.contains(&key.as_str()) => {}
                    Some(s) => self.validate(sub(s), v, &here, errors),
                    None => match node.get("additionalProperties") {
                        Some(Value::Bool(false)) if self.closed_objects => {
                            errors.push(format!("`{here}`: not a property the schema allows"))
                        }
                        Some(s @ Value::Object(_)) => self.validate(sub(s), v, &here, errors),
                        _ => {}
                    },
                }
            }
        }
        if let (Some(items), Some(array)) = (node.get("items"), value.as_array()) {
            for (i, item) in array.iter().enumerate() {
                self.validate(sub(items), item, &format!("{path}[{i}]"), errors);
            }
        }
    }

    /// For a discriminated entry: the entry the value's `type` names, when it is this one or extends it.
    fn pick_kind<'a>(&'a self, target: At<'a>, value: &Value) -> Result<At<'a>, String> {
        let Some(name) = target.def else {
            return Ok(target);
        };
        if !self.discriminated(target.file, name) {
            return Ok(target);
        }
        let Some(kind) = value.get("type").and_then(Value::as_str) else {
            return Ok(target);
        };
        match self.def(target.file, kind) {
            Some(k) if self.extends(target.file, kind, name) => Ok(k),
            Some(_) => Err(format!(
                "`type` is `{kind}`, which is not a kind of `{name}`"
            )),
            // A `type` that names no schema here: the schema itself decides.
            None => Ok(target),
        }
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

// ---------------------------------------------------------------------------------------------------
// Paths: does the catalog read only what the schemas declare?
// ---------------------------------------------------------------------------------------------------

impl Schemas {
    /// Every fragment a value of `at` may have to satisfy: `$ref` targets (with their discriminated
    /// kinds) and `allOf`/`anyOf`/`oneOf` branches, depth first.
    /// `kinds`: whether a `$ref` here may stand for a discriminated subtype (true where a value's schema
    /// is named; false for an `allOf` parent, which a subtype only extends).
    fn fragments<'a>(
        &'a self,
        at: At<'a>,
        kinds: bool,
        out: &mut Vec<At<'a>>,
        seen: &mut BTreeSet<(&'a str, &'a str)>,
    ) {
        if let Some(def) = at.def
            && !seen.insert((at.file, def))
        {
            return;
        }
        out.push(at);
        if let Some(reference) = at.node.get("$ref").and_then(Value::as_str)
            && let Ok(target) = self.resolve(at.file, reference)
        {
            let targets = if kinds {
                self.kinds(target)
            } else {
                vec![target]
            };
            for t in targets {
                self.fragments(t, true, out, seen);
            }
        }
        for (keyword, alternatives) in [("allOf", false), ("anyOf", true), ("oneOf", true)] {
            for s in at
                .node
                .get(keyword)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let branch = At {
                    file: at.file,
                    def: None,
                    node: s,
                };
                self.fragments(branch, alternatives, out, seen);
            }
        }
    }

    fn all_fragments<'a>(&'a self, schemas: &[At<'a>]) -> Vec<At<'a>> {
        let (mut out, mut seen) = (Vec::new(), BTreeSet::new());
        for s in schemas {
            self.fragments(*s, true, &mut out, &mut seen);
        }
        out
    }

    /// The schemas of property `key` of a value of any of `schemas` (declared in `properties`, or a
    /// map's `additionalProperties` schema).
    fn property<'a>(&'a self, schemas: &[At<'a>], key: &str) -> Vec<At<'a>> {
        let mut out = Vec::new();
        for f in self.all_fragments(schemas) {
            let declared = f.node.get("properties").and_then(|p| p.get(key));
            let map = f.node.get("additionalProperties").filter(|a| a.is_object());
            if let Some(node) = declared.or(map) {
                out.push(At {
                    file: f.file,
                    def: None,
                    node,
                });
            }
        }
        out
    }

    fn items<'a>(&'a self, schemas: &[At<'a>]) -> Vec<At<'a>> {
        self.all_fragments(schemas)
            .into_iter()
            .filter_map(|f| {
                f.node.get("items").map(|node| At {
                    file: f.file,
                    def: None,
                    node,
                })
            })
            .collect()
    }
}

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
fn check_paths(contract: &Contract) -> Vec<String> {
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

/// Whether a request path (as sent, percent-encoded, without the API base's path) fits a catalog path
/// template: `{name}` is one segment, `{+name}` one or more.
fn fits(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.trim_start_matches('/').split('/').collect();
    let p: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    for (i, seg) in t.iter().enumerate() {
        if seg.starts_with("{+") {
            return p.len() > i;
        }
        let Some(actual) = p.get(i) else { return false };
        let placeholder = seg.starts_with('{') && seg.ends_with('}');
        if (placeholder && actual.is_empty()) || (!placeholder && seg != actual) {
            return false;
        }
    }
    t.len() == p.len()
}

/// Which description an answer to a request made for `tool` is held to.
fn described_for<'a>(
    contract: &'a Contract,
    tool: &Tool,
    method: &str,
    path: &str,
) -> Option<(String, Option<&'a String>)> {
    let index = &contract.index;
    let get = method == "GET";
    let own = index.tools.get(&tool.spec.name)?;
    if method == tool.spec.method.as_reqwest().as_str() && fits(&tool.spec.path, path) {
        return Some((tool.name.clone(), own.schema.as_ref()));
    }
    for r in tool.spec.resolve.iter().filter(|_| get) {
        if fits(&r.path, path) {
            let d = own
                .resolve
                .get(&r.param)
                .or_else(|| index.resolve.get(&r.param))?;
            return Some((
                format!("{}'s lookup of `{}`", tool.name, r.param),
                Some(&d.schema),
            ));
        }
    }
    if get && tool.keep_current.is_some() && fits(&tool.spec.path, path) {
        let d = own.current.as_ref()?;
        return Some((format!("{}'s current values", tool.name), Some(&d.schema)));
    }
    contract.provider.tools.iter().find_map(|other| {
        let fits_other = method == other.spec.method.as_reqwest().as_str()
            && fits(&other.spec.path, path)
            && other.spec.method == Method::Get;
        let entry = index.tools.get(&other.spec.name)?;
        fits_other.then(|| (other.name.clone(), entry.schema.as_ref()))
    })
}

/// Every problem with the simulator's answers to one tool call.
fn check_answers(
    contract: &Contract,
    tool: &Tool,
    base_path: &str,
    answers: &[Answered],
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut own_answered = false;
    let mut previous: Option<(String, Option<&String>, bool)> = None;
    for a in answers {
        let path = a.path.strip_prefix(base_path).unwrap_or(&a.path);
        let described = match &previous {
            // A redirect's target answers the request that was redirected.
            Some((what, schema, true)) => Some((what.clone(), *schema)),
            _ => described_for(contract, tool, &a.method, path),
        };
        let redirect = (300..400).contains(&a.status);
        let Some((what, schema)) = described else {
            if (200..300).contains(&a.status) && a.body.is_some() {
                problems.push(format!(
                    "{}: the sim answered {} {path} ({}), which no index entry describes",
                    tool.name, a.method, a.status
                ));
            }
            previous = None;
            continue;
        };
        if what == tool.name && (200..300).contains(&a.status) {
            own_answered = true;
        }
        if (200..300).contains(&a.status) {
            match (schema, &a.body) {
                (Some(schema), Some(body)) => {
                    match contract.schemas.resolve("", schema) {
                        Ok(at) => {
                            let mut errors = Vec::new();
                            contract.schemas.validate(at, body, "$", &mut errors);
                            problems.extend(errors.into_iter().map(|e| {
                                format!("{}: {} {path} ({what}): {e}", tool.name, a.method)
                            }));
                        }
                        Err(e) => problems.push(format!("{}: {what}: {e}", tool.name)),
                    }
                }
                (Some(_), None) if a.status != 204 && a.status != 202 => problems.push(format!(
                    "{}: {} {path} ({what}) answered {} without a JSON body",
                    tool.name, a.method, a.status
                )),
                (None, Some(_)) => problems.push(format!(
                    "{}: {} {path} ({what}) answered JSON, but its entry names no schema",
                    tool.name, a.method
                )),
                _ => {}
            }
        }
        previous = Some((what, schema, redirect));
    }
    if !own_answered {
        problems.push(format!(
            "{}: the sim never answered its own request with a success: {:?}",
            tool.name,
            answers
                .iter()
                .map(|a| format!("{} {} {}", a.method, a.path, a.status))
                .collect::<Vec<_>>()
        ));
    }
    problems
}

#[tokio::test(flavor = "multi_thread")]
async fn every_example_answer_validates_against_the_published_schemas() {
    let catalog = Catalog::builtin().unwrap();
    let contracts = contracts(&catalog);
    let sim = Sim::start().await.unwrap();
    sim.state.keep_answers(true);
    // Confirming is not what this test is about (tests/it/confirm.rs).
    let client = in_process_for(&sim, "\n[tools]\nconfirm_destructive = false").await;
    let mut problems = Vec::new();
    let mut validated = 0;
    for contract in &contracts {
        let (which, base) = match contract.provider.spec.id.as_str() {
            "buddy" => (Which::Buddy, &sim.buddy_url),
            "bitbucket" => (Which::Bitbucket, &sim.bitbucket_url),
            other => panic!("no simulator for `{other}`"),
        };
        let base_path = url::Url::parse(base)
            .unwrap()
            .path()
            .trim_end_matches('/')
            .to_string();
        for tool in &contract.provider.tools {
            sim.state.take_answers();
            let example = tool.spec.example.clone().unwrap_or_default();
            let result = client
                .call_tool(CallToolRequestParams::new(tool.name.clone()).with_arguments(example))
                .await
                .unwrap_or_else(|e| panic!("{}: {e}", tool.name));
            if is_error(&result) {
                problems.push(format!(
                    "{}: the example failed: {}",
                    tool.name,
                    text(&result)
                ));
                continue;
            }
            let answers: Vec<Answered> = sim
                .state
                .take_answers()
                .into_iter()
                .filter(|a| a.provider == which)
                .collect();
            validated += answers.iter().filter(|a| a.body.is_some()).count();
            problems.extend(check_answers(contract, tool, &base_path, &answers));
        }
    }
    client.cancel().await.unwrap();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(validated > 0, "no JSON answer was validated");
}

// ---------------------------------------------------------------------------------------------------
// The checks themselves fail when they should
// ---------------------------------------------------------------------------------------------------

fn bitbucket_contract(catalog: &Catalog) -> Contract {
    contracts(catalog)
        .into_iter()
        .find(|c| c.provider.spec.id == "bitbucket")
        .expect("the Bitbucket contract")
}

#[test]
fn a_tool_without_an_entry_and_an_uncited_path_fail() {
    let catalog = Catalog::builtin().unwrap();
    let mut contract = bitbucket_contract(&catalog);
    contract.index.tools.remove("get_commit");
    contract
        .index
        .tools
        .get_mut("list_repositories")
        .unwrap()
        .cited
        .clear();
    let problems = check_paths(&contract).join("\n");
    assert!(
        problems.contains("bitbucket/get_commit: no entry"),
        "{problems}"
    );
    assert!(
        problems.contains("bitbucket/list_repositories: `values[].slug`"),
        "{problems}"
    );
}

#[test]
fn the_validator_refuses_what_the_document_does_not_allow() {
    let catalog = Catalog::builtin().unwrap();
    let contract = bitbucket_contract(&catalog);
    let schemas = &contract.schemas;
    let pipeline = schemas.resolve("", "schemas.json#/$defs/pipeline").unwrap();
    let check = |value: Value| {
        let mut errors = Vec::new();
        schemas.validate(pipeline, &value, "$", &mut errors);
        errors
    };
    let good = serde_json::json!({"type": "pipeline", "uuid": "{1}", "build_number": 7, "completed_on": null,
        "state": {"type": "pipeline_state_completed", "name": "COMPLETED",
                  "result": {"type": "pipeline_state_completed_failed", "name": "FAILED"}}});
    assert_eq!(check(good.clone()), Vec::<String>::new());
    let mut wrong_kind = good.clone();
    wrong_kind["state"]["result"]["type"] = "pipeline_step_state_completed_failed".into();
    wrong_kind["state"]["result"]["name"] = "NOT_RUN".into();
    let errors = check(wrong_kind).join("\n");
    assert!(
        errors.contains("not a kind of `pipeline_state_completed_result`"),
        "{errors}"
    );
    let mut wrong_value = good;
    wrong_value["state"]["result"]["name"] = "RED".into();
    wrong_value["build_number"] = "7".into();
    let errors = check(wrong_value).join("\n");
    assert!(
        errors.contains("`$.state.result.name`: \"RED\" is not one of"),
        "{errors}"
    );
    assert!(
        errors.contains("`$.build_number`: expected integer"),
        "{errors}"
    );
    // Closed objects, where a provider's index does not say its document's are unreliable.
    let mut strict = Schemas::load(&Path::new(CONTRACTS).join("bitbucket"));
    strict.closed_objects = true;
    let page = strict
        .resolve("", "schemas.json#/$defs/paginated_repositories")
        .unwrap();
    let mut errors = Vec::new();
    strict.validate(
        page,
        &serde_json::json!({"values": [], "total": 3}),
        "$",
        &mut errors,
    );
    assert_eq!(errors, ["`$.total`: not a property the schema allows"]);
}
