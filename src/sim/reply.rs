//! Replies both providers share: errors in each provider's format, plain text, query parameters, pages.

use super::*;

/// An error in the provider's own format.
pub fn error(which: Which, status: StatusCode, message: &str) -> Response {
    let body = match which {
        Which::Buddy => json!({"errors": [{"message": message}]}),
        Which::Bitbucket => json!({"type": "error", "error": {"message": message}}),
    };
    (status, axum::Json(body)).into_response()
}

/// A plain-text response (file contents, diffs, logs).
pub fn text(body: impl Into<Bytes>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

/// Query parameters as a list of pairs (Bitbucket repeats keys such as `state`).
pub type Query = Vec<(String, String)>;

/// The first value of a query parameter.
pub fn param<'a>(query: &'a Query, key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A consent or sign-in form's hidden `<input>`s: each of `keys` the request carried, escaped.
pub(crate) fn hidden_inputs(params: &Query, keys: &[&str]) -> String {
    let mut out = String::new();
    for key in keys {
        if let Some(value) = param(params, key) {
            out.push_str(&format!(
                "<input type=\"hidden\" name=\"{key}\" value=\"{}\">\n",
                crate::transport::pages::escape(value)
            ));
        }
    }
    out
}

/// Where a redirect URI sends the browser back to, as a page shows it: `host[:port]`.
pub(crate) fn redirect_host(redirect_uri: &str) -> String {
    url::Url::parse(redirect_uri)
        .ok()
        .and_then(|u| {
            Some(format!(
                "{}{}",
                u.host_str()?,
                u.port().map(|p| format!(":{p}")).unwrap_or_default()
            ))
        })
        .unwrap_or_default()
}

/// One page of a Bitbucket collection: `{size, page, pagelen, next?, values}`. `pagelen` defaults to 10;
/// above `max_pagelen` Bitbucket answers 400 "Invalid pagelen", and so does the sim.
#[allow(clippy::result_large_err)]
pub fn bitbucket_page(
    state: &SimState,
    uri: &axum::http::Uri,
    query: &Query,
    values: Vec<Value>,
    max_pagelen: usize,
) -> Result<Value, Response> {
    let bad = |m: &str| error(Which::Bitbucket, StatusCode::BAD_REQUEST, m);
    let pagelen: usize = match param(query, "pagelen") {
        Some(p) => p.parse().map_err(|_| bad("Invalid pagelen"))?,
        None => 10,
    };
    if pagelen == 0 || pagelen > max_pagelen {
        return Err(bad("Invalid pagelen"));
    }
    let page: usize = match param(query, "page") {
        Some(p) => p.parse().map_err(|_| bad("Invalid page"))?,
        None => 1,
    };
    if page == 0 {
        return Err(bad("Invalid page"));
    }
    let size = values.len();
    let start = (page - 1).saturating_mul(pagelen).min(size);
    let end = (start + pagelen).min(size);
    let mut body = json!({
        "size": size,
        "page": page,
        "pagelen": pagelen,
        "values": values[start..end].to_vec(),
    });
    if end < size {
        let origin = lock(&state.bitbucket_base)
            .trim_end_matches("/2.0")
            .to_string();
        let mut next = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in query.iter().filter(|(k, _)| k != "page") {
            next.append_pair(k, v);
        }
        next.append_pair("page", &(page + 1).to_string());
        body["next"] = json!(format!("{origin}{}?{}", uri.path(), next.finish()));
    }
    Ok(body)
}

/// One page of a Buddy list: `page` (1-based) and `per_page` (default 20).
pub fn buddy_page(query: &Query, items: &[Value]) -> (Vec<Value>, usize, usize) {
    let per_page = param(query, "per_page")
        .and_then(|p| p.parse().ok())
        .filter(|p: &usize| *p > 0)
        .unwrap_or(20);
    let page = param(query, "page")
        .and_then(|p| p.parse().ok())
        .filter(|p: &usize| *p > 0)
        .unwrap_or(1);
    let start = (page - 1).saturating_mul(per_page).min(items.len());
    let end = (start + per_page).min(items.len());
    (items[start..end].to_vec(), page, per_page)
}
