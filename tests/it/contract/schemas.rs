//! The published-schema validator: JSON Schema keywords, annotations and where a value sits.

use super::*;

/// The JSON files of one provider directory, by file name.
pub(super) struct Schemas {
    files: BTreeMap<String, Value>,
    /// Per file: which `$defs` entries extend each entry through `allOf` (direct children).
    children: BTreeMap<String, HashMap<String, Vec<String>>>,
    /// Whether `additionalProperties: false` is enforced (see `Index::additional_properties_ignored`).
    pub(super) closed_objects: bool,
}

/// A schema fragment and where it is: the file (for relative `$ref`s) and, for a `$defs` entry, its name.
#[derive(Clone, Copy)]
pub(super) struct At<'a> {
    file: &'a str,
    def: Option<&'a str>,
    node: &'a Value,
}

impl Schemas {
    pub(super) fn load(dir: &Path) -> Self {
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

    pub(super) fn from_files(files: BTreeMap<String, Value>) -> Self {
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
    pub(super) fn resolve<'a>(&'a self, from: &str, reference: &str) -> Result<At<'a>, String> {
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

    pub(super) fn def<'a>(&'a self, file: &str, name: &str) -> Option<At<'a>> {
        let (file, doc) = self.files.get_key_value(file)?;
        let (def, node) = doc["$defs"].as_object()?.get_key_value(name)?;
        Some(At {
            file,
            def: Some(def),
            node,
        })
    }

    /// Whether a `$defs` entry, or one it extends, carries OpenAPI's `discriminator`.
    pub(super) fn discriminated(&self, file: &str, name: &str) -> bool {
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
    pub(super) fn kinds<'a>(&'a self, at: At<'a>) -> Vec<At<'a>> {
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
    pub(super) fn extends(&self, file: &str, kind: &str, base: &str) -> bool {
        self.kinds(self.def(file, base).expect("base exists"))
            .iter()
            .any(|k| k.def == Some(kind))
    }
}

// ---------------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------------

pub(super) fn type_matches(name: &str, value: &Value) -> bool {
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
    pub(super) fn validate<'a>(
        &'a self,
        at: At<'a>,
        value: &Value,
        path: &str,
        errors: &mut Vec<String>,
    ) {
        match self.pick_kind(at, value) {
            Ok(kind) => self.check(kind, value, path, at.def.is_some(), errors),
            Err(e) => errors.push(format!("`{path}`: {e}")),
        }
    }

    /// `kind_chosen`: a discriminator already chose the value's schema, whose `allOf` leads back to the
    /// schema it was chosen for; that one then applies as it is.
    pub(super) fn check<'a>(
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
    pub(super) fn pick_kind<'a>(&'a self, target: At<'a>, value: &Value) -> Result<At<'a>, String> {
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

pub(super) fn short(value: &Value) -> String {
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
    pub(super) fn fragments<'a>(
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

    pub(super) fn all_fragments<'a>(&'a self, schemas: &[At<'a>]) -> Vec<At<'a>> {
        let (mut out, mut seen) = (Vec::new(), BTreeSet::new());
        for s in schemas {
            self.fragments(*s, true, &mut out, &mut seen);
        }
        out
    }

    /// The schemas of property `key` of a value of any of `schemas` (declared in `properties`, or a
    /// map's `additionalProperties` schema).
    pub(super) fn property<'a>(&'a self, schemas: &[At<'a>], key: &str) -> Vec<At<'a>> {
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

    pub(super) fn items<'a>(&'a self, schemas: &[At<'a>]) -> Vec<At<'a>> {
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
