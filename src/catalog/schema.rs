//! JSON Schemas built from a tool's declared parameters and output, and the argument check that
//! enforces the same schema before anything goes upstream.
//!
//! The check is written against the catalog's own parameter model (not a general JSON Schema engine):
//! it is a few microseconds per call, and its messages name the field the model has to fix
//! (`variables[0].key: required`, `state: must be one of OPEN, MERGED`).

use serde_json::{Map, Value, json};

use super::engine_params::{Check, Listed, engine_params_of};
use super::{DefaultFrom, FIELDS_PARAM, ParamSpec, ParamType, Tool};

/// Values from the provider's config that parameters may default to.
#[derive(Debug, Clone, Default)]
pub struct Defaults {
    pub workspace: Option<String>,
}

impl Defaults {
    /// The config's value for a parameter declared with `default_from`.
    pub fn get(&self, from: DefaultFrom) -> Option<&str> {
        match from {
            DefaultFrom::Workspace => self.workspace.as_deref(),
        }
    }
}

/// An argument the model has to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ArgError {
    pub field: String,
    pub message: String,
}

fn arg_error(field: impl Into<String>, message: impl Into<String>) -> ArgError {
    ArgError {
        field: field.into(),
        message: message.into(),
    }
}

/// Load-time checks of one parameter declaration.
pub(crate) fn check_param(name: &str, param: &ParamSpec, problems: &mut Vec<String>) {
    if !param.listed && param.required {
        problems.push(format!(
            "parameter `{name}` is required, so it must be listed in the schema"
        ));
    }
    if param.required && (param.default.is_some() || param.default_from.is_some()) {
        // `default_from` may leave a parameter required when config has no value, so only a fixed
        // default contradicts `required`.
        if param.default.is_some() {
            problems.push(format!("parameter `{name}` is required and has a default"));
        }
    }
    if param.default_from.is_some() && param.ty != ParamType::String {
        problems.push(format!("parameter `{name}`: `default_from` needs a string"));
    }
    if let Some(values) = &param.enum_values {
        for v in values {
            if check_value(name, param, v).is_err() {
                problems.push(format!(
                    "parameter `{name}`: enum value {v} is not a {}",
                    param.ty.as_str()
                ));
            }
        }
    }
    if let Some(default) = &param.default
        && let Err(e) = check_value(name, param, default)
    {
        problems.push(format!(
            "parameter `{name}`: default {default}: {}",
            e.message
        ));
    }
    match param.ty {
        ParamType::Array if param.items.is_none() => {
            problems.push(format!("parameter `{name}`: an array needs `items`"))
        }
        ParamType::Array => {
            if let Some(items) = &param.items {
                check_param(&format!("{name}[]"), items, problems);
            }
        }
        ParamType::Object => match &param.properties {
            Some(props) => props
                .iter()
                .for_each(|(k, p)| check_param(&format!("{name}.{k}"), p, problems)),
            None => problems.push(format!("parameter `{name}`: an object needs `properties`")),
        },
        _ if param.items.is_some() || param.properties.is_some() => problems.push(format!(
            "parameter `{name}`: only arrays have `items` and objects `properties`"
        )),
        _ => {}
    }
    if param
        .description
        .as_deref()
        .is_some_and(|d| d.trim().is_empty())
    {
        problems.push(format!(
            "parameter `{name}` has an empty description (leave it out instead)"
        ));
    }
}

fn param_schema(param: &ParamSpec) -> Value {
    let mut s = Map::new();
    s.insert("type".into(), json!(param.ty.as_str()));
    if let Some(d) = &param.description {
        s.insert("description".into(), json!(d));
    }
    if let Some(e) = &param.enum_values {
        s.insert("enum".into(), json!(e));
    }
    if let Some(d) = &param.default {
        s.insert("default".into(), d.clone());
    }
    if let Some(m) = param.minimum {
        s.insert("minimum".into(), json!(m));
    }
    if let Some(m) = param.maximum {
        s.insert("maximum".into(), json!(m));
    }
    if let Some(m) = param.max_length {
        s.insert("maxLength".into(), json!(m));
    }
    if let Some(items) = &param.items {
        s.insert("items".into(), param_schema(items));
    }
    if let Some(props) = &param.properties {
        s.insert(
            "properties".into(),
            Value::Object(
                props
                    .iter()
                    .map(|(k, p)| (k.clone(), param_schema(p)))
                    .collect(),
            ),
        );
        let required: Vec<&String> = props
            .iter()
            .filter(|(_, p)| p.required)
            .map(|(k, _)| k)
            .collect();
        if !required.is_empty() {
            s.insert("required".into(), json!(required));
        }
    }
    Value::Object(s)
}

/// The tool's `inputSchema`, given the config defaults in force and whether devgate confirms its calls.
pub fn input_schema(tool: &Tool, defaults: &Defaults, confirmed: bool) -> Map<String, Value> {
    let mut props = Map::new();
    let mut required = Vec::new();
    for (name, param) in &tool.spec.params {
        // A parameter whose value config supplies (the workspace) is left out of the schema: the
        // server instructions name the default and say that it can still be passed to use another.
        // Nearly every tool takes one, so this keeps `tools/list` small.
        if !param.listed || param.default_from.and_then(|f| defaults.get(f)).is_some() {
            continue;
        }
        props.insert(name.clone(), param_schema(param));
        if param.required {
            required.push(name.clone());
        }
    }
    for param in engine_params_of(tool) {
        let listed = match param.listed {
            Listed::Always => true,
            Listed::WhenConfirmed => confirmed,
            Listed::Never => false,
        };
        if listed {
            props.insert(param.name.into(), json!({"type": param.json_type}));
        }
    }
    let mut schema = Map::new();
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), Value::Object(props));
    if !required.is_empty() {
        schema.insert("required".into(), json!(required));
    }
    schema
}

/// The tool's `outputSchema`. Every result's `structuredContent` is an object (`{items, next_cursor}` for
/// lists, `{text, next_offset}` for text, the projected fields otherwise); the schema says no more than
/// that, because `tools/list` is paid for in every agent session and the server instructions and
/// descriptions already name the envelope and the fields.
pub fn output_schema(_tool: &Tool) -> Map<String, Value> {
    let mut schema = Map::new();
    schema.insert("type".into(), json!("object"));
    schema
}

/// Checks arguments against the tool's parameters, fills defaults, and coerces numeric and boolean
/// strings that models often send (`"42"`, `"true"`).
pub fn validate(
    tool: &Tool,
    args: Option<&Map<String, Value>>,
    defaults: &Defaults,
) -> Result<Map<String, Value>, ArgError> {
    let empty = Map::new();
    let args = args.unwrap_or(&empty);
    for key in args.keys() {
        let engine = engine_params_of(tool).any(|p| p.name == key);
        if !engine && !tool.spec.params.contains_key(key) {
            let mut known: Vec<&str> = tool.spec.params.keys().map(String::as_str).collect();
            known.extend(
                engine_params_of(tool)
                    .filter(|p| p.suggested)
                    .map(|p| p.name),
            );
            return Err(arg_error(
                key.as_str(),
                if known.is_empty() {
                    "unknown argument; this tool takes none".to_string()
                } else {
                    format!("unknown argument; expected one of: {}", known.join(", "))
                },
            ));
        }
    }
    let mut out = Map::new();
    for (name, param) in &tool.spec.params {
        match args.get(name).filter(|v| !v.is_null()) {
            Some(value) => {
                out.insert(name.clone(), check_value(name, param, value)?);
            }
            None => {
                if let Some(d) = param.default_from.and_then(|f| defaults.get(f)) {
                    out.insert(name.clone(), json!(d));
                } else if let Some(d) = &param.default {
                    out.insert(name.clone(), d.clone());
                } else if param.required {
                    return Err(arg_error(name.as_str(), "required"));
                }
            }
        }
    }
    for param in engine_params_of(tool) {
        let Some(value) = args.get(param.name).filter(|v| !v.is_null()) else {
            continue;
        };
        let checked = match param.check {
            Check::Cursor if !value.is_string() => {
                return Err(arg_error(
                    param.name,
                    "must be a string (next_cursor of the previous page)",
                ));
            }
            Check::Cursor => value.clone(),
            Check::Integer { minimum, maximum } => {
                check_value(param.name, &integer(minimum, maximum), value)?
            }
            Check::Boolean => {
                let spec = ParamSpec {
                    ty: ParamType::Boolean,
                    ..integer(0, None)
                };
                check_value(param.name, &spec, value)?
            }
            Check::Fields => check_fields(value)?,
        };
        out.insert(param.name.into(), checked);
    }
    for group in &tool.spec.require_one_of {
        if !group.iter().any(|n| out.contains_key(n)) {
            return Err(arg_error(
                group.join(" | "),
                format!("give one of {}", group.join(", ")),
            ));
        }
    }
    for (name, others) in &tool.spec.requires {
        if out.contains_key(name) && !others.iter().any(|n| out.contains_key(n)) {
            let others: Vec<String> = others.iter().map(|n| format!("`{n}`")).collect();
            return Err(arg_error(
                name.as_str(),
                format!(
                    "needs {} with it (the provider accepts no request with it alone)",
                    others.join(" or ")
                ),
            ));
        }
    }
    Ok(out)
}

/// At most this many extra fields per call.
const MAX_FIELDS: usize = 20;

/// `fields`: a list of field specs in the projection language (one string is a list of one).
fn check_fields(value: &Value) -> Result<Value, ArgError> {
    let specs: Vec<String> = match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    arg_error(
                        format!("{FIELDS_PARAM}[{i}]"),
                        format!(
                            "must be a string (a dot path such as `links.html.href`), got {}",
                            type_name(v)
                        ),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(arg_error(
                FIELDS_PARAM,
                format!(
                    "must be an array of dot paths such as [\"links.html.href\"], got {}",
                    type_name(other)
                ),
            ));
        }
    };
    if specs.len() > MAX_FIELDS {
        return Err(arg_error(
            FIELDS_PARAM,
            format!("at most {MAX_FIELDS} fields per call, got {}", specs.len()),
        ));
    }
    for (i, spec) in specs.iter().enumerate() {
        if spec.len() > 200 {
            return Err(arg_error(
                format!("{FIELDS_PARAM}[{i}]"),
                "longer than 200 characters",
            ));
        }
        crate::shape::parse_fields(std::slice::from_ref(spec)).map_err(|e| {
            arg_error(
                format!("{FIELDS_PARAM}[{i}]"),
                format!("{e}; write a dot path in the provider's object, e.g. `links.html.href`, `name=path`, or `path|200`"),
            )
        })?;
    }
    Ok(json!(specs))
}

/// An integer parameter the engine adds (offset, tail).
fn integer(minimum: i64, maximum: Option<i64>) -> ParamSpec {
    ParamSpec {
        ty: ParamType::Integer,
        description: None,
        required: false,
        enum_values: None,
        default: None,
        default_from: None,
        minimum: Some(minimum),
        maximum,
        max_length: None,
        listed: true,
        items: None,
        properties: None,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn check_value(field: &str, param: &ParamSpec, value: &Value) -> Result<Value, ArgError> {
    let wrong = || {
        arg_error(
            field,
            format!(
                "must be {} {}, got {}",
                article(param.ty),
                param.ty.as_str(),
                type_name(value)
            ),
        )
    };
    let value = match (param.ty, value) {
        (ParamType::String, Value::String(_)) => value.clone(),
        // Numeric ids copied from a list (`"pipeline": 1`) are meant as their decimal text.
        (ParamType::String, Value::Number(n)) if n.is_i64() || n.is_u64() => json!(n.to_string()),
        (ParamType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => value.clone(),
        (ParamType::Integer, Value::Number(n)) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => json!(f as i64),
            _ => return Err(wrong()),
        },
        (ParamType::Integer, Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(|i| json!(i))
            .map_err(|_| wrong())?,
        (ParamType::Number, Value::Number(_)) => value.clone(),
        (ParamType::Number, Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .map(|f| json!(f))
            .map_err(|_| wrong())?,
        (ParamType::Boolean, Value::Bool(_)) => value.clone(),
        (ParamType::Boolean, Value::String(s)) => match s.as_str() {
            "true" => json!(true),
            "false" => json!(false),
            _ => return Err(wrong()),
        },
        // A single value where a list is expected (`"state": "OPEN"`) is a list of one.
        (ParamType::Array, single) if !single.is_array() && !single.is_object() => {
            let item_spec = param.items.as_deref().ok_or_else(wrong)?;
            Value::Array(vec![check_value(field, item_spec, single)?])
        }
        (ParamType::Array, Value::Array(items)) => {
            let item_spec = param.items.as_deref().ok_or_else(wrong)?;
            let checked = items
                .iter()
                .enumerate()
                .map(|(i, v)| check_value(&format!("{field}[{i}]"), item_spec, v))
                .collect::<Result<Vec<_>, _>>()?;
            Value::Array(checked)
        }
        (ParamType::Object, Value::Object(map)) => {
            let props = param.properties.as_ref().ok_or_else(wrong)?;
            for key in map.keys() {
                if !props.contains_key(key) {
                    let known: Vec<&str> = props.keys().map(String::as_str).collect();
                    return Err(arg_error(
                        format!("{field}.{key}"),
                        format!("unknown field; expected one of: {}", known.join(", ")),
                    ));
                }
            }
            let mut out = Map::new();
            for (key, spec) in props {
                let path = format!("{field}.{key}");
                match map.get(key).filter(|v| !v.is_null()) {
                    Some(v) => {
                        out.insert(key.clone(), check_value(&path, spec, v)?);
                    }
                    None if spec.required => return Err(arg_error(path, "required")),
                    None => {
                        if let Some(d) = &spec.default {
                            out.insert(key.clone(), d.clone());
                        }
                    }
                }
            }
            Value::Object(out)
        }
        _ => return Err(wrong()),
    };
    if let Some(allowed) = &param.enum_values
        && !allowed.contains(&value)
    {
        let list: Vec<String> = allowed
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
            .collect();
        return Err(arg_error(
            field,
            format!("must be one of {} (got {value})", list.join(", ")),
        ));
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = param.minimum
            && n < min as f64
        {
            return Err(arg_error(
                field,
                format!("must be at least {min} (got {value})"),
            ));
        }
        if let Some(max) = param.maximum
            && n > max as f64
        {
            return Err(arg_error(
                field,
                format!("must be at most {max} (got {value})"),
            ));
        }
    }
    if let (Some(max), Some(s)) = (param.max_length, value.as_str())
        && s.chars().count() > max
    {
        return Err(arg_error(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(value)
}

fn article(ty: ParamType) -> &'static str {
    match ty {
        ParamType::Integer | ParamType::Array | ParamType::Object => "an",
        _ => "a",
    }
}

#[cfg(test)]
#[path = "schema_tests.rs"]
mod tests;
