//! The recorder: every request recorded (secrets redacted), answers kept on request, and faults applied.

use super::*;

/// The scheme of a request's `Authorization` header (`Bearer`, `Basic`, …) or `None`.
pub(super) fn scheme(headers: &HeaderMap) -> String {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map_or("None", |v| v.split_once(' ').map_or(v, |(s, _)| s))
        .to_string()
}

/// Records the request (form bodies as JSON with secrets redacted) and applies any matching fault.
pub(super) async fn recorder(
    State((which, state)): State<(Which, Arc<SimState>)>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let method = parts.method.to_string();
    let path = parts.uri.path().to_string();
    let partial = super::bitbucket::asked_fields(&parts.uri).is_some();
    let form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let body = if bytes.is_empty() {
        None
    } else if form {
        Some(oauth::redacted_form(&bytes))
    } else {
        serde_json::from_slice(&bytes)
            .ok()
            .map(|v| oauth::redacted_json(v, oauth::is_oauth_path(&path)))
    };
    lock(&state.requests).push(Recorded {
        provider: which,
        method: method.clone(),
        path: path.clone(),
        query: parts.uri.query().map(oauth::redacted_query),
        body,
        auth: scheme(&parts.headers),
        account: state
            .resolve(which, &parts.headers)
            .ok()
            .map(|r| r.account.login().to_string()),
    });
    let mut guard = AbortGuard {
        state: state.clone(),
        done: false,
    };
    let response = apply(&state, which, &method, &path, parts, bytes, next).await;
    let response = if lock(&state.answered).is_some() {
        keep_answer(&state, which, method, path, partial, response).await
    } else {
        response
    };
    guard.done = true;
    response
}

/// Records an answer for [`SimState::take_answers`]; bodies of unknown length (streamed fault bodies) are
/// passed on unread.
pub(super) async fn keep_answer(
    state: &SimState,
    provider: Which,
    method: String,
    path: String,
    partial: bool,
    response: Response,
) -> Response {
    use http_body::Body as _;
    if response.body().size_hint().exact().is_none() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let answer = Answered {
        provider,
        method,
        path,
        status: parts.status.as_u16(),
        partial,
        body: json.then(|| serde_json::from_slice(&bytes).ok()).flatten(),
    };
    if let Some(kept) = lock(&state.answered).as_mut() {
        kept.push(answer);
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Counts a request as aborted when its handling is dropped before it finished (the client went away).
pub(super) struct AbortGuard {
    pub(super) state: Arc<SimState>,
    pub(super) done: bool,
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if !self.done {
            self.state
                .aborted
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// A lazily produced JSON body of `total` bytes, counting what is sent.
pub(super) fn huge_body(state: Arc<SimState>, total: u64) -> Body {
    const CHUNK: usize = 64 * 1024;
    let stream = futures::stream::unfold(0u64, move |sent| {
        let state = state.clone();
        async move {
            if sent >= total {
                return None;
            }
            let n = (total - sent).min(CHUNK as u64) as usize;
            let mut chunk = vec![b' '; n];
            if sent == 0 {
                chunk[0] = b'[';
            }
            state
                .streamed
                .fetch_add(n as u64, std::sync::atomic::Ordering::SeqCst);
            Some((Ok::<_, std::io::Error>(Bytes::from(chunk)), sent + n as u64))
        }
    });
    Body::from_stream(stream)
}

/// Applies the matching fault, if any, else passes the request on.
pub(super) async fn apply(
    state: &Arc<SimState>,
    which: Which,
    method: &str,
    path: &str,
    parts: axum::http::request::Parts,
    bytes: Bytes,
    next: Next,
) -> Response {
    if let Some(fault) = state.take_fault(which, method, path) {
        if fault.hold {
            let released = state.release.notified();
            state
                .holding
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            released.await;
            state
                .holding
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
        if let Some(ms) = fault.delay_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if fault.reset {
            let broken = futures::stream::iter(vec![
                Ok(Bytes::from_static(b"{\"values\": [")),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "simulated reset",
                )),
            ]);
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                Body::from_stream(broken),
            )
                .into_response();
        }
        if let Some(total) = fault.body_bytes {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                huge_body(state.clone(), total),
            )
                .into_response();
        }
        if let Some(status) = fault.status {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = match fault.body {
                Some(raw) => (status, raw).into_response(),
                None if fault.echo_credential => {
                    let credential = parts
                        .headers
                        .get(header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("none");
                    error(
                        which,
                        status,
                        &format!("Simulated fault for the request authorized with {credential}"),
                    )
                }
                None => error(which, status, "Simulated fault"),
            };
            if let Some(secs) = fault.retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            return response;
        }
        if let Some(raw) = fault.body {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                raw,
            )
                .into_response();
        }
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}
