//! Redaction of secrets in what the recorder keeps: forms, JSON bodies, query strings.

use super::*;

/// A form body as a JSON object for [`crate::sim::Recorded`], secret values replaced by `[redacted]`.
pub(crate) fn redacted_form(body: &[u8]) -> Value {
    let mut object = serde_json::Map::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        let value = if SECRET_FIELDS.contains(&k.as_ref()) {
            REDACTED.to_string()
        } else {
            v.into_owned()
        };
        object.entry(k.into_owned()).or_insert(Value::String(value));
    }
    Value::Object(object)
}

/// A JSON body for [`crate::sim::Recorded`]: on OAuth routes, top-level secret fields are redacted.
pub(crate) fn redacted_json(mut body: Value, oauth_route: bool) -> Value {
    if oauth_route && let Some(object) = body.as_object_mut() {
        for (k, v) in object.iter_mut() {
            if SECRET_FIELDS.contains(&k.as_str()) {
                *v = json!(REDACTED);
            }
        }
    }
    body
}

/// A raw query string for [`crate::sim::Recorded`]: values of secret parameters redacted, the rest as sent.
pub(crate) fn redacted_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| {
            let key = pair.split_once('=').map_or(pair, |(k, _)| k);
            let decoded = decode(key);
            if SECRET_FIELDS.contains(&decoded.as_str()) {
                format!("{key}={}", "%5Bredacted%5D")
            } else {
                pair.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}
