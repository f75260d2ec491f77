//! Routes for commits, source files, diffs and diffstats.

use super::*;

pub(super) async fn list_commits(
    State(state): St,
    OriginalUri(uri): Uri,
    Path((w, r)): RepoPath,
    Query(query): Q,
) -> Reply {
    let items = {
        let data = lock(&state.bitbucket);
        let repo = data.repo(&w, &r)?;
        let refs = |key: &str| -> Result<Vec<String>, Response> {
            query
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| {
                    repo.resolve(v)
                        .map(|c| c.hash.clone())
                        .ok_or_else(|| not_found(&format!("Commit not found: {v}")))
                })
                .collect()
        };
        let mut heads = refs("include")?;
        if heads.is_empty() {
            heads = repo.branches.iter().map(|b| b.head.clone()).collect();
        }
        let excluded = reachable(repo, refs("exclude")?);
        let mut commits: Vec<&Commit> = reachable(repo, heads)
            .iter()
            .filter(|h| !excluded.contains(*h))
            .filter_map(|h| repo.commit(h))
            .collect();
        if let Some(path) = param(&query, "path") {
            let dir = format!("{}/", path.trim_end_matches('/'));
            commits.retain(|c| c.files.iter().any(|f| f == path || f.starts_with(&dir)));
        }
        commits.sort_by(|a, b| b.date.cmp(&a.date).then(a.hash.cmp(&b.hash)));
        commits.into_iter().map(|c| repo.commit_json(c)).collect()
    };
    page(&state, &uri, &query, items, 100)
}

/// Every commit reachable from `heads`.
pub(super) fn reachable(repo: &Repo, heads: Vec<String>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = heads;
    while let Some(h) = stack.pop() {
        if seen.insert(h.clone())
            && let Some(c) = repo.commit(&h)
        {
            stack.extend(c.parents.iter().cloned());
        }
    }
    seen
}

pub(super) async fn get_commit(State(state): St, Path((w, r, commit)): ItemPath) -> Reply {
    let data = lock(&state.bitbucket);
    let repo = data.repo(&w, &r)?;
    let c = repo
        .resolve(&commit)
        .ok_or_else(|| not_found(&format!("Commit not found: {commit}")))?;
    ok(repo.commit_json(c))
}

pub(super) async fn get_src(
    State(state): St,
    OriginalUri(uri): Uri,
    Path((w, r, commit, path)): Path<(String, String, String, String)>,
    Query(query): Q,
) -> Reply {
    // A decoded `%2F` makes `feature/login` look like ref `feature` and a path under `login/`: Bitbucket
    // reads it the same way, which is why callers resolve such branches to a hash first.
    let (revision, path) = match commit.split_once('/') {
        Some((rev, rest)) => (rev.to_string(), format!("{rest}/{path}")),
        None => (commit, path),
    };
    let path = path.trim_end_matches('/').to_string();
    let items = {
        let data = lock(&state.bitbucket);
        let repo = data.repo(&w, &r)?;
        let c = repo
            .resolve(&revision)
            .ok_or_else(|| not_found(&format!("Commit not found: {revision}")))?;
        if let Some(content) = repo.files.get(&path) {
            return Ok(crate::sim::text(content.clone()));
        }
        let dir = format!("{path}/");
        let mut entries: BTreeMap<String, Value> = BTreeMap::new();
        for (file, content) in repo
            .files
            .range(dir.clone()..)
            .take_while(|(f, _)| f.starts_with(&dir))
        {
            let rest = &file[dir.len()..];
            let commit = repo.commit_ref(&c.hash, false);
            let entry = match rest.split_once('/') {
                Some((sub, _)) => {
                    let p = format!("{dir}{sub}");
                    json!({"type": "commit_directory", "path": p, "commit": commit,
                           "links": links(&[("self", format!("{}/src/{}/{p}/", repo.api(), c.hash)), ("meta", format!("{}/src/{}/{p}/?format=meta", repo.api(), c.hash))])})
                }
                None => {
                    json!({"type": "commit_file", "path": file, "commit": commit, "attributes": [], "escaped_path": file,
                               "size": content.len(), "mimetype": null,
                               "links": links(&[("self", format!("{}/src/{}/{file}", repo.api(), c.hash)), ("meta", format!("{}/src/{}/{file}?format=meta", repo.api(), c.hash)), ("history", format!("{}/filehistory/{}/{file}", repo.api(), c.hash))])})
                }
            };
            entries
                .entry(entry["path"].as_str().unwrap_or_default().to_string())
                .or_insert(entry);
        }
        if entries.is_empty() {
            return Err(not_found(&format!("No such file or directory: {path}")));
        }
        entries.into_values().collect()
    };
    page(&state, &uri, &query, items, 100)
}

/// The diff between a spec's two commits: `w/r:src%0Ddst` (PR redirects), `src..dst`, or one hash.
pub(super) fn diff_for(repo: &Repo, spec: &str) -> Result<String, Response> {
    let spec = spec.rsplit_once(':').map(|(_, s)| s).unwrap_or(spec);
    let source = spec.split(['\r', '\n']).next().unwrap_or(spec);
    let source = source.split_once("..").map(|(a, _)| a).unwrap_or(source);
    if source.len() < 7 {
        return Err(not_found(&format!("Commit not found: {source}")));
    }
    if let Some(pr) = repo
        .pull_requests
        .iter()
        .find(|p| p.source_hash.starts_with(source))
    {
        return Ok(pr_diff(repo, pr));
    }
    let commit = repo
        .resolve(source)
        .ok_or_else(|| not_found(&format!("Commit not found: {source}")))?;
    Ok(small_diff(
        &commit.hash,
        commit.message.lines().next().unwrap_or_default(),
        &commit.files,
    ))
}

pub(super) async fn get_diff(State(state): St, Path((w, r, spec)): ItemPath) -> Reply {
    let data = lock(&state.bitbucket);
    let repo = data.repo(&w, &r)?;
    Ok(crate::sim::text(diff_for(repo, &spec)?))
}

pub(super) async fn get_diffstat(
    State(state): St,
    OriginalUri(uri): Uri,
    Path((w, r, spec)): ItemPath,
    Query(mut query): Q,
) -> Reply {
    let items = {
        let data = lock(&state.bitbucket);
        let repo = data.repo(&w, &r)?;
        let diff = diff_for(repo, &spec)?;
        diffstat(&diff)
            .into_iter()
            .map(|f| {
                let side = |p: Option<String>| {
                    p.map(|p| json!({"path": p, "type": "commit_file", "escaped_path": p,
                                     "links": links(&[("self", format!("{}/src/{}/{p}", repo.api(), &spec))])}))
                };
                json!({"type": "diffstat", "lines_added": f.added, "lines_removed": f.removed,
                       "status": f.status, "old": side(f.old), "new": side(f.new)})
            })
            .collect()
    };
    if param(&query, "pagelen").is_none() {
        query.push(("pagelen".into(), "500".into()));
    }
    page(&state, &uri, &query, items, 500)
}

/// One file of a diffstat.
pub(super) struct FileStat {
    /// `added`, `removed`, `modified` or `renamed`.
    status: &'static str,
    old: Option<String>,
    new: Option<String>,
    added: u64,
    removed: u64,
}

/// Parses a unified diff into per-file line counts.
pub(super) fn diffstat(diff: &str) -> Vec<FileStat> {
    let mut out: Vec<FileStat> = Vec::new();
    for line in diff.lines() {
        if let Some(rest) = line.strip_prefix("diff --git a/") {
            let (old, new) = rest.split_once(" b/").unwrap_or((rest, rest));
            out.push(FileStat {
                status: "modified",
                old: Some(old.to_string()),
                new: Some(new.to_string()),
                added: 0,
                removed: 0,
            });
            continue;
        }
        let Some(last) = out.last_mut() else { continue };
        if line.starts_with("new file mode") {
            (last.status, last.old) = ("added", None);
        } else if line.starts_with("deleted file mode") {
            (last.status, last.new) = ("removed", None);
        } else if line.starts_with("rename from") {
            last.status = "renamed";
        } else if line.starts_with('+') && !line.starts_with("+++") {
            last.added += 1;
        } else if line.starts_with('-') && !line.starts_with("---") {
            last.removed += 1;
        }
    }
    out
}
