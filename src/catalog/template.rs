//! Request templates: path, query and JSON body, filled from validated arguments.
//!
//! Placeholders:
//! - `{name}`: the argument. In a path it is exactly one segment, percent-encoded, so `a/b`, `?q=1`, `#f`,
//!   `%2F` or `{uuid}` can never become another path or query. A body string that is exactly `{name}`
//!   keeps the argument's JSON type; an absent optional argument removes its key.
//! - `{+name}` (path only): a value that may span segments (a file path); each segment is encoded on its
//!   own and `.`, `..` or empty segments are refused.
//! - `{name?text}` / `{name?yes:no}`: a literal chosen by whether the argument was given.
//! - `[{ key = "{name[]}" }]` (body only): one element per item of the array argument `name`.

use std::collections::BTreeSet;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value};

/// Everything but RFC 3986 unreserved characters is encoded in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A parsed `{…}` expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholder {
    /// `{name}`
    Value(String),
    /// `{+name}`
    Multi(String),
    /// `{name?yes:no}`; `no = None` removes the key when the argument is absent.
    Choice {
        name: String,
        yes: String,
        no: Option<String>,
    },
    /// `{name[]}`: the current item while mapping an array argument.
    Item(String),
}

impl Placeholder {
    pub fn name(&self) -> &str {
        match self {
            Placeholder::Value(n)
            | Placeholder::Multi(n)
            | Placeholder::Choice { name: n, .. }
            | Placeholder::Item(n) => n,
        }
    }
}

/// A piece of a template string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Lit(String),
    Hole(Placeholder),
}

/// Splits a template string into literal text and placeholders.
pub fn parse(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        if start > 0 {
            pieces.push(Piece::Lit(rest[..start].to_string()));
        }
        let end = rest[start..]
            .find('}')
            .map(|e| start + e)
            .ok_or_else(|| format!("unclosed `{{` in `{text}`"))?;
        pieces.push(Piece::Hole(parse_placeholder(&rest[start + 1..end])?));
        rest = &rest[end + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Lit(rest.to_string()));
    }
    Ok(pieces)
}

fn parse_placeholder(inner: &str) -> Result<Placeholder, String> {
    let valid =
        |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let placeholder = if let Some(name) = inner.strip_prefix('+') {
        Placeholder::Multi(name.to_string())
    } else if let Some(name) = inner.strip_suffix("[]") {
        Placeholder::Item(name.to_string())
    } else if let Some((name, choice)) = inner.split_once('?') {
        let (yes, no) = match choice.split_once(':') {
            Some((y, n)) => (y.to_string(), Some(n.to_string())),
            None => (choice.to_string(), None),
        };
        Placeholder::Choice {
            name: name.to_string(),
            yes,
            no,
        }
    } else {
        Placeholder::Value(inner.to_string())
    };
    if !valid(placeholder.name()) {
        return Err(format!("`{{{inner}}}` is not a placeholder"));
    }
    Ok(placeholder)
}

/// Every placeholder in a JSON body template.
pub fn body_placeholders(body: &Value, out: &mut Vec<Placeholder>) -> Result<(), String> {
    match body {
        Value::String(s) => {
            for piece in parse(s)? {
                if let Piece::Hole(p) = piece {
                    out.push(p);
                }
            }
        }
        Value::Array(items) => items.iter().try_for_each(|i| body_placeholders(i, out))?,
        Value::Object(map) => map.values().try_for_each(|v| body_placeholders(v, out))?,
        _ => {}
    }
    Ok(())
}

/// Why a value cannot fill a path placeholder; the caller names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathValueError {
    pub param: String,
    pub reason: &'static str,
}

/// A path template, parsed once at load.
#[derive(Debug, Clone)]
pub struct PathTemplate {
    segments: Vec<Vec<Piece>>,
}

impl PathTemplate {
    pub fn parse(path: &str) -> Result<Self, String> {
        let trimmed = path
            .strip_prefix('/')
            .ok_or_else(|| format!("path `{path}` must start with `/`"))?;
        let mut segments = Vec::new();
        for seg in trimmed.split('/') {
            let pieces = parse(seg)?;
            let multi = pieces
                .iter()
                .any(|p| matches!(p, Piece::Hole(Placeholder::Multi(_))));
            if multi && pieces.len() != 1 {
                return Err(format!("`{{+…}}` must fill a whole segment in `{path}`"));
            }
            if pieces.iter().any(|p| {
                matches!(
                    p,
                    Piece::Hole(Placeholder::Item(_) | Placeholder::Choice { .. })
                )
            }) {
                return Err(format!(
                    "only `{{name}}` and `{{+name}}` may appear in path `{path}`"
                ));
            }
            segments.push(pieces);
        }
        Ok(Self { segments })
    }

    pub fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.segments.iter().flatten().filter_map(|p| match p {
            Piece::Hole(h) => Some(h),
            Piece::Lit(_) => None,
        })
    }

    /// Renders the path with every argument percent-encoded per segment.
    pub fn render(&self, args: &Map<String, Value>) -> Result<String, PathValueError> {
        let mut out = String::new();
        for seg in &self.segments {
            out.push('/');
            for piece in seg {
                match piece {
                    Piece::Lit(text) => out.push_str(text),
                    Piece::Hole(Placeholder::Multi(name)) => {
                        let value = scalar(args.get(name)).ok_or_else(|| missing(name))?;
                        let mut first = true;
                        for part in value.split('/') {
                            check_segment(name, part)?;
                            if !first {
                                out.push('/');
                            }
                            first = false;
                            out.extend(utf8_percent_encode(part, SEGMENT));
                        }
                    }
                    Piece::Hole(h) => {
                        let name = h.name();
                        let value = scalar(args.get(name)).ok_or_else(|| missing(name))?;
                        check_segment(name, &value)?;
                        out.extend(utf8_percent_encode(&value, SEGMENT));
                    }
                }
            }
        }
        Ok(out)
    }
}

impl PathTemplate {
    /// Whether the template ends in `/`: it names the resources below a path, not the path itself.
    pub fn is_prefix(&self) -> bool {
        self.segments.last().is_some_and(Vec::is_empty)
    }

    /// For a prefix ([`Self::is_prefix`]): whether some path `other` renders could lie below it. A
    /// segment with a placeholder may take any value, so this errs towards "could".
    pub fn may_cover(&self, other: &PathTemplate) -> bool {
        let head = &self.segments[..self.segments.len().saturating_sub(1)];
        for (ours, theirs) in head.iter().zip(&other.segments) {
            let multi = |seg: &[Piece]| {
                seg.iter()
                    .any(|p| matches!(p, Piece::Hole(Placeholder::Multi(_))))
            };
            if multi(ours) || multi(theirs) {
                return true;
            }
            let literal = |seg: &[Piece]| seg.iter().all(|p| matches!(p, Piece::Lit(_)));
            if literal(ours) && literal(theirs) && ours != theirs {
                return false;
            }
        }
        other.segments.len() > head.len()
    }
}

fn missing(name: &str) -> PathValueError {
    PathValueError {
        param: name.to_string(),
        reason: "required",
    }
}

/// Dot segments would be removed by URL normalisation and empty ones would merge segments, so
/// both could move the request to another path: they are refused rather than encoded.
fn check_segment(name: &str, value: &str) -> Result<(), PathValueError> {
    let reason = if value.is_empty() {
        "must not be empty"
    } else if value == "." || value == ".." {
        "must not be `.` or `..`"
    } else {
        return Ok(());
    };
    Err(PathValueError {
        param: name.to_string(),
        reason,
    })
}

/// A scalar argument as it appears in a path or query string.
pub fn scalar(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Renders a query template into key/value pairs. An array argument repeats the key.
pub fn render_query(
    query: &[(String, Vec<Piece>)],
    args: &Map<String, Value>,
) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for (key, pieces) in query {
        if let [Piece::Hole(Placeholder::Value(name))] = pieces.as_slice()
            && let Some(Value::Array(items)) = args.get(name)
        {
            pairs.extend(
                items
                    .iter()
                    .filter_map(|i| scalar(Some(i)))
                    .map(|v| (key.clone(), v)),
            );
            continue;
        }
        if let Some(text) = render_string(pieces, args) {
            pairs.push((key.clone(), text));
        }
    }
    pairs
}

/// Interpolates a template string; `None` when a placeholder's argument is absent.
fn render_string(pieces: &[Piece], args: &Map<String, Value>) -> Option<String> {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Lit(text) => out.push_str(text),
            Piece::Hole(Placeholder::Choice { name, yes, no }) => {
                if args.get(name).is_some_and(|v| !v.is_null()) {
                    out.push_str(yes);
                } else {
                    out.push_str(no.as_deref()?);
                }
            }
            Piece::Hole(h) => out.push_str(&scalar(lookup(args, h))?),
        }
    }
    Some(out)
}

/// While an array argument is mapped, its current item sits in the scope under `name[]`.
fn item_key(name: &str) -> String {
    format!("{name}[]")
}

fn lookup<'a>(args: &'a Map<String, Value>, placeholder: &Placeholder) -> Option<&'a Value> {
    match placeholder {
        Placeholder::Item(name) => args.get(&item_key(name)),
        other => args.get(other.name()),
    }
}

/// Fills a JSON body template. Keys whose argument is absent disappear, and so do objects that
/// became empty because of that.
pub fn render_body(template: &Value, args: &Map<String, Value>) -> Option<Value> {
    match template {
        Value::String(s) => {
            let pieces = parse(s).ok()?;
            match pieces.as_slice() {
                [Piece::Hole(h @ (Placeholder::Value(_) | Placeholder::Item(_)))] => {
                    lookup(args, h).filter(|v| !v.is_null()).cloned()
                }
                _ => render_string(&pieces, args).map(Value::String),
            }
        }
        Value::Array(items) => {
            if let [item] = items.as_slice()
                && let Some(name) = item_placeholder(item)
            {
                let Value::Array(values) = args.get(&name)? else {
                    return None;
                };
                let mapped = values
                    .iter()
                    .filter_map(|v| {
                        let mut scope = args.clone();
                        scope.insert(item_key(&name), v.clone());
                        render_body(item, &scope)
                    })
                    .collect();
                return Some(Value::Array(mapped));
            }
            Some(Value::Array(
                items.iter().filter_map(|i| render_body(i, args)).collect(),
            ))
        }
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                if let Some(v) = render_body(value, args) {
                    out.insert(key.clone(), v);
                }
            }
            if out.is_empty() && !map.is_empty() {
                None
            } else {
                Some(Value::Object(out))
            }
        }
        other => Some(other.clone()),
    }
}

/// The array argument an item template maps over, if it has an `{x[]}` placeholder.
fn item_placeholder(item: &Value) -> Option<String> {
    let mut found = Vec::new();
    body_placeholders(item, &mut found).ok()?;
    found.into_iter().find_map(|p| match p {
        Placeholder::Item(name) => Some(name),
        _ => None,
    })
}

/// Names referenced by a set of pieces.
pub fn names<'a>(pieces: impl IntoIterator<Item = &'a Placeholder>) -> BTreeSet<String> {
    pieces.into_iter().map(|p| p.name().to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn hostile_values_stay_inside_one_segment() {
        let t = PathTemplate::parse("/repositories/{workspace}/{repo}/pullrequests").unwrap();
        for hostile in ["../x", "a/b", "?q=1", "#f", "%2F", "{uuid}", "a b"] {
            let path = t
                .render(&args(json!({"workspace": hostile, "repo": "r"})))
                .unwrap();
            let segs: Vec<&str> = path.split('/').collect();
            assert_eq!(segs.len(), 5, "{hostile} -> {path}");
            assert!(!segs[2].contains(['/', '?', '#', '{', '}']), "{path}");
            assert_eq!(segs[4], "pullrequests");
        }
    }

    #[test]
    fn dot_and_empty_segments_are_refused() {
        let t = PathTemplate::parse("/a/{x}/b").unwrap();
        for bad in ["..", ".", ""] {
            let err = t.render(&args(json!({"x": bad}))).unwrap_err();
            assert_eq!(err.param, "x");
        }
        let m = PathTemplate::parse("/src/{+path}").unwrap();
        assert_eq!(
            m.render(&args(json!({"path": "a b/c.rs"}))).unwrap(),
            "/src/a%20b/c.rs"
        );
        assert!(m.render(&args(json!({"path": "a/../../x"}))).is_err());
        assert!(m.render(&args(json!({"path": "a//x"}))).is_err());
    }

    #[test]
    fn body_keeps_types_and_drops_absent_keys() {
        let template = json!({
            "title": "{title}",
            "close": "{close}",
            "destination": {"branch": {"name": "{dest}"}},
            "reviewers": [{"uuid": "{reviewers[]}"}],
            "type": "{branch?ref:commit}",
            "ref_type": "{branch?branch}",
            "fixed": {}
        });
        let out = render_body(
            &template,
            &args(json!({"title": "T", "close": true, "reviewers": ["{a}", "{b}"]})),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"title": "T", "close": true, "reviewers": [{"uuid": "{a}"}, {"uuid": "{b}"}],
                   "type": "commit", "fixed": {}})
        );
    }

    #[test]
    fn query_repeats_arrays_and_skips_absent() {
        let q = vec![
            ("state".to_string(), parse("{state}").unwrap()),
            ("q".to_string(), parse("{query}").unwrap()),
            ("pagelen".to_string(), parse("{limit}").unwrap()),
        ];
        let pairs = render_query(&q, &args(json!({"state": ["OPEN", "MERGED"], "limit": 10})));
        assert_eq!(
            pairs,
            vec![
                ("state".into(), "OPEN".into()),
                ("state".into(), "MERGED".into()),
                ("pagelen".into(), "10".into())
            ]
        );
    }
}
