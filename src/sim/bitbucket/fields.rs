//! Partial responses, as Bitbucket serves them: `?fields=` on a GET limits a successful JSON reply to
//! the listed dot paths (`values.id,values.author.display_name,next`; arrays are transparent, so
//! `values.id` is each item's `id`), `-path` removes a path from the full reply, `+path` adds one to
//! it (the sim's replies already hold everything, so it changes nothing) and `*` stands for any key.
//! Errors and redirects are left whole. A `next` link keeps the query it was asked with, `fields`
//! included, as Bitbucket's do (`bitbucket_page`).

use super::*;

use axum::extract::Request;
use axum::middleware::Next;
use http_body_util::BodyExt;

/// Middleware on `/2.0`: applies `fields` to a GET's 200 JSON reply.
pub(crate) async fn partial_response(request: Request, next: Next) -> Response {
    let asked = (request.method() == axum::http::Method::GET)
        .then(|| asked_fields(request.uri()))
        .flatten();
    let response = next.run(request).await;
    let Some(asked) = asked else {
        return response;
    };
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status() != StatusCode::OK || !is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = body.collect().await.map(|b| b.to_bytes()) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Ok(value) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    };
    let filtered = apply(value, &asked);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(
        parts,
        axum::body::Body::from(serde_json::to_vec(&filtered).unwrap_or_default()),
    )
}

/// The `fields` list a request's query asks for, if any.
pub(crate) fn asked_fields(uri: &axum::http::Uri) -> Option<String> {
    let query = uri.query()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "fields")
        .map(|(_, v)| v.into_owned())
}

/// `value` as a `fields` list asks for it.
pub(crate) fn apply(value: Value, asked: &str) -> Value {
    let specs: Vec<&str> = asked
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let only: Vec<Vec<&str>> = specs
        .iter()
        .filter(|s| !s.starts_with(['-', '+']))
        .map(|s| s.split('.').collect())
        .collect();
    let mut value = if only.is_empty() || only.iter().any(|p| p == &["*"]) {
        value
    } else {
        keep(value, &only).unwrap_or(Value::Null)
    };
    for spec in specs.iter().filter_map(|s| s.strip_prefix('-')) {
        remove(&mut value, &spec.split('.').collect::<Vec<_>>());
    }
    value
}

/// Whether a path segment names `key`.
fn names(segment: &str, key: &str) -> bool {
    segment == "*" || segment == key
}

/// Only what `paths` reach; a path that ends here keeps the whole value, and one that goes on below a
/// plain value reaches nothing (the key is left out, as Bitbucket leaves it out).
fn keep(value: Value, paths: &[Vec<&str>]) -> Option<Value> {
    if paths.iter().any(Vec::is_empty) {
        return Some(value);
    }
    match value {
        Value::Array(items) => Some(Value::Array(
            items.into_iter().filter_map(|i| keep(i, paths)).collect(),
        )),
        Value::Object(map) => Some(Value::Object(
            map.into_iter()
                .filter_map(|(key, below)| {
                    let rest: Vec<Vec<&str>> = paths
                        .iter()
                        .filter(|p| names(p[0], &key))
                        .map(|p| p[1..].to_vec())
                        .collect();
                    if rest.is_empty() {
                        return None;
                    }
                    keep(below, &rest).map(|kept| (key, kept))
                })
                .collect(),
        )),
        _ => None,
    }
}

/// Removes what `path` reaches.
fn remove(value: &mut Value, path: &[&str]) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(|i| remove(i, path)),
        Value::Object(map) => match path {
            [] => {}
            [last] => map.retain(|key, _| !names(last, key)),
            [first, rest @ ..] => map
                .iter_mut()
                .filter(|(key, _)| names(first, key))
                .for_each(|(_, below)| remove(below, rest)),
        },
        _ => {}
    }
}

#[cfg(test)]
mod fields_tests {
    use super::*;

    fn page() -> Value {
        json!({
            "size": 2, "page": 1, "pagelen": 10, "next": "https://x/2.0/r?fields=values.id&page=2",
            "values": [
                {"type": "pullrequest", "id": 1, "title": "a", "author": {"display_name": "Ann", "uuid": "{1}"},
                 "links": {"html": {"href": "h1"}, "self": {"href": "s1"}}},
                {"type": "pullrequest", "id": 2, "title": "b", "author": {"display_name": "Ben", "uuid": "{2}"},
                 "links": {"html": {"href": "h2"}, "self": {"href": "s2"}}}
            ]
        })
    }

    #[test]
    fn a_list_of_paths_keeps_only_those_in_every_item() {
        let kept = apply(
            page(),
            "values.id,values.author.display_name,values.links.html.href,next",
        );
        assert_eq!(
            kept,
            json!({
                "next": "https://x/2.0/r?fields=values.id&page=2",
                "values": [
                    {"id": 1, "author": {"display_name": "Ann"}, "links": {"html": {"href": "h1"}}},
                    {"id": 2, "author": {"display_name": "Ben"}, "links": {"html": {"href": "h2"}}}
                ]
            })
        );
        // A path ending at an object keeps all of it; `*` stands for any key.
        let whole = apply(page(), "values.author,size");
        assert_eq!(whole["values"][1]["author"]["uuid"], "{2}");
        assert_eq!(whole["size"], 2);
        assert!(whole.get("page").is_none());
        assert_eq!(apply(page(), "*"), page());
    }

    #[test]
    fn minus_removes_from_the_whole_reply_and_plus_adds_nothing_here() {
        let trimmed = apply(page(), "-values.links,-next");
        assert!(trimmed.get("next").is_none());
        assert!(trimmed["values"][0].get("links").is_none());
        assert_eq!(trimmed["values"][0]["title"], "a");
        assert_eq!(apply(page(), "+values.participants"), page());
    }
}
