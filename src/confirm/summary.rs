//! The sentence a user confirms: what will happen, built from the catalog's `confirm` table.
//!
//! Three parts, in this order, so nothing chosen by someone else can dress up as a fact:
//! 1. the facts: the catalog's `summary` template filled from the arguments and from devgate's own read
//!    of the target (`{name}`, `{current.name}`, `{name|fallback}`); a value that is not a plain
//!    identifier is quoted;
//! 2. every other argument that goes into the request, as `name: value` (free text quoted, lists and
//!    objects shortened), so nothing the agent chose is left out;
//! 3. the provider's free text named by `quote` (e.g. a PR title), quoted.
//!
//! Every value is cleaned first ([`clean`]): one line, no quotes or backticks that could close
//! devgate's own, no invisible or direction-changing characters, capped in length.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::catalog::{ParamSpec, ParamType, Tool};

/// Longest value shown, in characters, before it is cut with `…`.
const VALUE_CHARS: usize = 80;
/// Items of a list shown before "and N more".
const LIST_ITEMS: usize = 5;

/// Text from outside devgate made safe for a question: one line, without quote marks or backticks,
/// without control, invisible or bidirectional-override characters, at most `cap` characters.
pub fn clean(text: &str, cap: usize) -> String {
    let mut out = String::with_capacity(text.len().min(cap * 4));
    let mut space = false;
    for c in text.chars() {
        if is_quote(c) || is_invisible(c) {
            continue;
        }
        if c.is_whitespace() || c.is_control() {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.push(c);
    }
    match out.char_indices().nth(cap.saturating_sub(1)) {
        Some((cut, _)) if out.chars().count() > cap => format!("{}…", &out[..cut]),
        _ => out,
    }
}

fn is_quote(c: char) -> bool {
    matches!(
        c,
        '"' | '\''
            | '`'
            | '\u{00AB}'
            | '\u{00BB}'
            | '\u{02BB}'..='\u{02BC}'
            | '\u{2018}'..='\u{201F}'
            | '\u{2039}'..='\u{203A}'
            | '\u{FF02}'
            | '\u{FF07}'
            | '\u{FF40}'
    )
}

/// Zero-width and direction-changing characters, which can make text read other than it is.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{FEFF}'
    )
}

/// A value among the facts: bare when it is a plain identifier (a branch, a slug, a number), else
/// cleaned and quoted, so it reads as one value and cannot pass for more of the sentence.
fn fact(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    let plain = text.chars().count() <= VALUE_CHARS
        && text
            .chars()
            .all(|c| c.is_alphanumeric() || "._/-{}@+#:~^,=".contains(c));
    Some(if plain {
        text
    } else {
        format!("\"{}\"", clean(&text, VALUE_CHARS))
    })
}

/// An argument's value: free text quoted, lists and objects shortened.
fn shown(value: &Value, spec: Option<&ParamSpec>) -> String {
    match value {
        Value::String(s) if spec.is_some_and(|p| p.enum_values.is_some()) => {
            fact(value).unwrap_or_else(|| format!("\"{}\"", clean(s, VALUE_CHARS)))
        }
        Value::String(s) => format!("\"{}\"", clean(s, VALUE_CHARS)),
        Value::Array(items) if items.is_empty() => "none (empty list)".into(),
        Value::Array(items) => {
            let item_spec = spec.and_then(|p| p.items.as_deref());
            let mut parts: Vec<String> = items
                .iter()
                .take(LIST_ITEMS)
                .map(|i| shown(i, item_spec))
                .collect();
            if items.len() > LIST_ITEMS {
                parts.push(format!("and {} more", items.len() - LIST_ITEMS));
            }
            parts.join(", ")
        }
        Value::Object(fields) => {
            let parts: Vec<String> = fields
                .iter()
                .map(|(k, v)| {
                    let sub = spec
                        .and_then(|p| p.properties.as_ref())
                        .and_then(|p| p.get(k));
                    format!("{}: {}", clean(k, VALUE_CHARS), shown(v, sub))
                })
                .collect();
            format!("({})", parts.join(", "))
        }
        Value::Null => "null".into(),
        other => other.to_string(),
    }
}

/// The placeholders of a template, as written between braces (`name`, `current.name`, `name|text`).
fn placeholders(template: &str) -> impl Iterator<Item = &str> {
    template
        .split('{')
        .skip(1)
        .filter_map(|part| part.split_once('}').map(|(inner, _)| inner))
}

/// The argument and field names a template refers to, without `current.` and fallbacks.
pub fn referenced(template: &str) -> BTreeSet<&str> {
    placeholders(template)
        .map(|p| p.split_once('|').map_or(p, |(key, _)| key))
        .map(|key| key.strip_prefix("current.").unwrap_or(key))
        .collect()
}

/// Fills the facts template: `{name}` is the argument, else the target's field; `{current.name}`
/// always the target's field; `{name|text}` uses `text` when neither has a value.
fn fill(template: &str, given: &Map<String, Value>, current: &Value) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let inner = &rest[open + 1..open + close];
        let (key, fallback) = inner.split_once('|').unwrap_or((inner, "?"));
        let value = match key.strip_prefix("current.") {
            Some(field) => current.get(field).and_then(fact),
            None => given
                .get(key)
                .and_then(fact)
                .or_else(|| current.get(key).and_then(fact)),
        };
        out.push_str(value.as_deref().unwrap_or(fallback));
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

/// A `quote` entry: `label=field`, or `field` labelled by its own name.
pub fn quote_parts(entry: &str) -> (&str, &str) {
    entry.split_once('=').unwrap_or((entry, entry))
}

/// The sentence for a call of `tool` with the validated arguments `given`, the target as its read
/// tool shows it being `current` (`Null` without one). Without a `confirm` table the facts are the
/// tool's title and every argument follows.
pub fn render(tool: &Tool, given: &Map<String, Value>, current: &Value) -> String {
    let (facts, used, quote) = match &tool.spec.confirm {
        Some(spec) => (
            fill(&spec.summary, given, current),
            referenced(&spec.summary),
            spec.quote.as_slice(),
        ),
        None => (tool.spec.title.clone(), BTreeSet::new(), &[][..]),
    };
    let mut settings = Vec::new();
    let mut texts = Vec::new();
    for (name, value) in given {
        if used.contains(name.as_str()) || crate::catalog::is_engine_param(name) || value.is_null()
        {
            continue;
        }
        let spec = tool.spec.params.get(name);
        let line = format!("{name}: {}", shown(value, spec));
        let free_text = spec.is_some_and(|p| p.ty == ParamType::String && p.enum_values.is_none());
        if free_text {
            texts.push(line);
        } else {
            settings.push(line);
        }
    }
    for entry in quote {
        let (label, field) = quote_parts(entry);
        if let Some(text) = current.get(field).and_then(Value::as_str) {
            texts.push(format!("{label}: \"{}\"", clean(text, VALUE_CHARS)));
        }
    }
    let mut out = facts;
    for part in settings.into_iter().chain(texts) {
        out.push_str("; ");
        out.push_str(&part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cleaning_leaves_one_line_without_quotes_or_hidden_characters() {
        assert_eq!(
            clean(
                "Fix typo' from `docs/typo`\ninto \"sandbox\"\u{202E}  ok",
                80
            ),
            "Fix typo from docs/typo into sandbox ok"
        );
        assert_eq!(clean("“smart” ‘quotes’ «here»", 80), "smart quotes here");
        assert_eq!(clean(&"x".repeat(100), 10), format!("{}…", "x".repeat(9)));
        assert_eq!(clean("éé", 2), "éé");
    }

    #[test]
    fn facts_prefer_arguments_then_the_target_then_the_fallback() {
        let given = json!({"pull_request_id": 42, "branch": "a b"});
        let current = json!({"title": "Fix login", "source": "feature/x", "destination": "main"});
        let filled = fill(
            "PR #{pull_request_id} from `{source}` into `{destination}` on {branch} with {strategy|the default}",
            given.as_object().unwrap(),
            &current,
        );
        assert_eq!(
            filled,
            "PR #42 from `feature/x` into `main` on \"a b\" with the default"
        );
    }

    #[test]
    fn other_values_are_shown_shortened() {
        assert_eq!(shown(&json!([]), None), "none (empty list)");
        assert_eq!(
            shown(&json!(["a", "b", "c", "d", "e", "f", "g"]), None),
            "\"a\", \"b\", \"c\", \"d\", \"e\", and 2 more"
        );
        assert_eq!(
            shown(&json!([{"key": "K", "value": "v`"}]), None),
            "(key: \"K\", value: \"v\")"
        );
        assert_eq!(shown(&json!(true), None), "true");
    }
}
