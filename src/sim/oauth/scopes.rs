//! Which classic Bitbucket scope each sim API route needs, and whether a grant covers it.

use super::*;

/// The classic Bitbucket scope a sim API route needs (paths as received, under `/2.0`).
pub(crate) fn required_scope(method: &Method, path: &str) -> Option<&'static str> {
    let path = path.strip_prefix("/2.0")?;
    let read = method == Method::GET || method == Method::HEAD;
    if path == "/user" || path.starts_with("/user/") {
        return Some("account");
    }
    let rest = path.strip_prefix("/repositories/")?;
    let segments: Vec<&str> = rest.split('/').collect();
    let section = segments.get(2).copied().unwrap_or("");
    let last = segments.last().copied().unwrap_or("");
    Some(match (section, read) {
        ("pullrequests", true) => "pullrequest",
        // Commenting is a `pullrequest` right; creating, updating, approving, merging need write.
        ("pullrequests", false) if last == "comments" => "pullrequest",
        ("pullrequests", false) => "pullrequest:write",
        ("pipelines", true) => "pipeline",
        ("pipelines", false) => "pipeline:write",
        (_, true) => "repository",
        (_, false) => "repository:write",
    })
}

/// Whether granted scopes cover `required`, with Bitbucket's implications.
pub(crate) fn grants_scope(granted: &[String], required: &str) -> bool {
    fn implied(scope: &str) -> &'static [&'static str] {
        match scope {
            "pullrequest:write" => &["pullrequest", "repository:write", "repository"],
            "pullrequest" => &["repository"],
            "repository:write" => &["repository"],
            "project" => &["repository"],
            "snippet:write" => &["snippet"],
            _ => &[],
        }
    }
    granted
        .iter()
        .any(|g| g == required || implied(g).contains(&required))
}
