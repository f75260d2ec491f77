//! Which scope each Buddy route needs, and the 403 Buddy answers without it.

use super::*;

/// Buddy's scopes as the sim enforces them: `(classic name, newer name, classic scopes it implies)`.
/// The newer names are those of Buddy's 2026 API pages (`PIPELINE_READ` for reading runs,
/// `PIPELINE_RUN` for starting them), of `bdy` 1.25 (`VARIABLE_READ`, `INTEGRATION_READ`) and of the Go
/// SDK's token scopes (`USER_READ`, `USER_PAT_READ`, `MEMBER_EMAIL_READ`); a grant in either name does
/// the same.
pub(super) const SCOPES: &[(&str, Option<&str>, &[&str])] = &[
    ("USER_INFO", Some("USER_READ"), &[]),
    ("TOKEN_INFO", Some("USER_PAT_READ"), &[]),
    ("MEMBER_EMAIL", Some("MEMBER_EMAIL_READ"), &[]),
    ("EXECUTION_INFO", Some("PIPELINE_READ"), &[]),
    ("EXECUTION_RUN", Some("PIPELINE_RUN"), &["EXECUTION_INFO"]),
    (
        "EXECUTION_MANAGE",
        None,
        &["EXECUTION_RUN", "EXECUTION_INFO"],
    ),
    ("VARIABLE_INFO", Some("VARIABLE_READ"), &[]),
    ("INTEGRATION_INFO", Some("INTEGRATION_READ"), &[]),
];

/// The (classic) scope a Buddy API route needs, per the "Required scopes" of Buddy's API pages: the
/// workspace routes and the identifiers lookup need `WORKSPACE`; pipelines and runs `EXECUTION_INFO`,
/// starting or changing a run `EXECUTION_RUN`.
pub(crate) fn required_scope(method: &axum::http::Method, path: &str) -> Option<&'static str> {
    let read = matches!(*method, axum::http::Method::GET | axum::http::Method::HEAD);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    Some(match segments.as_slice() {
        ["user", "tokens", ..] | ["user", "token"] => "TOKEN_INFO",
        ["user", ..] => "USER_INFO",
        [
            "workspaces",
            _,
            "projects",
            _,
            "pipelines",
            _,
            "executions",
            ..,
        ] if !read => "EXECUTION_RUN",
        ["workspaces", _, "projects", _, "pipelines", ..] => "EXECUTION_INFO",
        ["workspaces", _, "variables", ..] => "VARIABLE_INFO",
        ["workspaces", _, "integrations", ..] => "INTEGRATION_INFO",
        ["workspaces", ..] => "WORKSPACE",
        _ => return None,
    })
}

/// Whether granted scopes (in either name) cover `required` (a classic name).
pub(crate) fn grants_scope(granted: &[String], required: &str) -> bool {
    granted.iter().any(|g| {
        let row = SCOPES
            .iter()
            .find(|(c, n, _)| *c == g.as_str() || *n == Some(g.as_str()));
        match row {
            Some((classic, _, implies)) => *classic == required || implies.contains(&required),
            None => g == required,
        }
    })
}

/// A 403 for a token without the route's scope (the sim's wording; Buddy's own is not documented).
pub(crate) fn scope_denied(required: &str) -> Response {
    let newer = SCOPES
        .iter()
        .find(|(c, _, _)| *c == required)
        .and_then(|(_, n, _)| *n)
        .map(|n| format!(" (or {n})"))
        .unwrap_or_default();
    crate::sim::error(
        Which::Buddy,
        StatusCode::FORBIDDEN,
        &format!("Insufficient token scopes: this request needs {required}{newer}."),
    )
}
