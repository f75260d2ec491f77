//! The answer cache: finished GET answers served again while nothing was written.

use super::*;

/// Finished GET answers by (provider, account, URI), valid while no write has reached either provider:
/// every non-GET API request bumps `generation`, which empties the cache. The sim's data changes only
/// through such requests and through runs progressing with time, which bump it too when they change
/// something (see [`SimState::progress`], done before every API request while a run progresses), so a
/// cached answer is always the one the handler would give. Bounded: at `ANSWER_CACHE_ENTRIES` it starts
/// over.
#[derive(Default)]
pub(super) struct AnswerCache {
    pub(super) generation: u64,
    pub(super) entries: std::collections::HashMap<(Which, Account, String), CachedAnswer>,
}

#[derive(Clone)]
pub(super) struct CachedAnswer {
    pub(super) generation: u64,
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}

pub(super) const ANSWER_CACHE_ENTRIES: usize = 4096;

/// Bodies larger than this are not kept (logs and diffs of fault tests); they are rare and cheap to build.
pub(super) const ANSWER_CACHE_BODY_BYTES: usize = 256 * 1024;

/// Serves a GET from the answer cache when nothing was written since it was built; any other method
/// invalidates the cache (before and after it runs, so a read racing a write never keeps a stale answer).
/// Progressing runs are brought up to date first (which invalidates the cache when one changed), so a
/// cached answer never shows a run as it was.
pub(super) async fn cached(
    State((which, state)): State<(Which, Arc<SimState>)>,
    request: Request,
    next: Next,
) -> Response {
    state.progress(which);
    let account = request.extensions().get::<Account>().copied();
    let (Some(account), true) = (account, request.method() == axum::http::Method::GET) else {
        lock(&state.answers).invalidate();
        let response = next.run(request).await;
        lock(&state.answers).invalidate();
        return response;
    };
    // Answers differ by granted scopes (Buddy's members show e-mails only with `MEMBER_EMAIL`).
    let granted = request
        .extensions()
        .get::<Granted>()
        .and_then(|g| g.0.as_ref())
        .map(|s| s.join(" "))
        .unwrap_or_default();
    let key = (which, account, format!("{} {granted}", request.uri()));
    let generation = {
        let answers = lock(&state.answers);
        if let Some(hit) = answers.entries.get(&key)
            && hit.generation == answers.generation
        {
            let mut response = Response::new(Body::from(hit.body.clone()));
            *response.status_mut() = hit.status;
            *response.headers_mut() = hit.headers.clone();
            return response;
        }
        answers.generation
    };
    let (parts, body) = next.run(request).await.into_parts();
    // Handlers build their bodies in memory, so reading one whole cannot fail or grow unbounded.
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let mut answers = lock(&state.answers);
    if answers.generation == generation && body.len() <= ANSWER_CACHE_BODY_BYTES {
        if answers.entries.len() >= ANSWER_CACHE_ENTRIES {
            answers.entries.clear();
        }
        answers.entries.insert(
            key,
            CachedAnswer {
                generation,
                status: parts.status,
                headers: parts.headers.clone(),
                body: body.clone(),
            },
        );
    }
    Response::from_parts(parts, Body::from(body))
}

impl AnswerCache {
    pub(super) fn invalidate(&mut self) {
        self.generation += 1;
        self.entries.clear();
    }
}
