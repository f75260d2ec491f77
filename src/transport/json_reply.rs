//! Plain JSON answers on stateful `/mcp`: a POST whose whole answer is one JSON-RPC response gets it as
//! `application/json` instead of an SSE stream, as rmcp's `json_response` does for stateless serving.
//!
//! rmcp answers every request of a session with an SSE stream: a priming event, then the messages, then
//! the end of a chunked body. For a call that sends nothing before its result (most calls) that is
//! three chunks where one body would do, and SDK clients pay for reading an event stream. [`json_reply`]
//! (an axum middleware around the session's service) reads the stream's first events: when the first
//! message is a response or an error, the answer is that message as one JSON body with a length. When
//! the first message is anything else (progress, an elicitation, a log message), or a keep-alive comment
//! comes first (a call quiet for `sse_keep_alive`), or the stream ends without a message, the events read
//! so far are replayed and the rest streams as before: a call that needs SSE still gets it.

use std::collections::VecDeque;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;

/// The first message of a stream, as far as the choice needs it.
#[derive(serde::Deserialize)]
struct Kind {
    /// Present on requests and notifications, absent on responses and errors.
    method: Option<serde::de::IgnoredAny>,
}

/// What the events read so far decide.
enum Read {
    /// Not yet: only priming events so far.
    More,
    /// The whole answer: this one JSON-RPC response or error.
    Json(Bytes),
    /// Stream it.
    Sse,
}

/// Axum middleware for stateful `/mcp`: see the module docs.
pub async fn json_reply(request: Request, next: Next) -> Response {
    let wants = request.method() == Method::POST && accepts_json(request.headers());
    let response = next.run(request).await;
    let is_sse = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !wants || !is_sse {
        return response;
    }
    let (mut parts, mut body) = response.into_parts();
    let mut seen: VecDeque<Bytes> = VecDeque::new();
    let mut pending = BytesMut::new();
    loop {
        let frame = match body.frame().await {
            Some(Ok(frame)) => frame,
            // A broken or finished stream: pass on what came, exactly as it came.
            Some(Err(_)) | None => break,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        seen.push_back(data);
        match decide(&mut pending) {
            Read::More => continue,
            Read::Sse => break,
            Read::Json(message) => {
                parts.headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                parts.headers.remove(header::CACHE_CONTROL);
                parts.headers.remove("x-accel-buffering");
                return Response::from_parts(parts, Body::from(message));
            }
        }
    }
    // Replay what was read, then go on with the rest of the stream.
    let replay = futures::stream::iter(seen.into_iter().map(Ok::<_, axum::Error>));
    let rest = body.into_data_stream();
    Response::from_parts(
        parts,
        Body::from_stream(futures::StreamExt::chain(replay, rest)),
    )
}

/// Whether the client takes `application/json` answers (MCP clients send both types; rmcp refuses one
/// that does not).
fn accepts_json(headers: &axum::http::HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',').any(|t| {
                t.split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
            })
        })
    })
}

/// Looks at the complete events in `pending` (consuming them), in order.
fn decide(pending: &mut BytesMut) -> Read {
    while let Some(end) = blank_line(pending) {
        let event = pending.split_to(end + 2).freeze();
        let mut data: Option<Vec<u8>> = None;
        for line in event[..end].split(|b| *b == b'\n') {
            if let Some(value) = line.strip_prefix(b"data:") {
                let value = value.strip_prefix(b" ").unwrap_or(value);
                let data = data.get_or_insert_with(Vec::new);
                if !data.is_empty() {
                    data.push(b'\n');
                }
                data.extend_from_slice(value);
            }
        }
        match data {
            // A priming event (empty data, an id and a retry time): the client needs it only to
            // resume a stream, and a JSON answer is never resumed.
            Some(d) if d.iter().all(u8::is_ascii_whitespace) => continue,
            Some(d) => {
                let terminal = serde_json::from_slice::<Kind>(&d).is_ok_and(|k| k.method.is_none());
                return if terminal && pending.is_empty() {
                    Read::Json(Bytes::from(d))
                } else {
                    Read::Sse
                };
            }
            // A keep-alive comment (the call is slow: keep the client's connection busy as before) or
            // an event of a kind rmcp does not send: stream.
            None => return Read::Sse,
        }
    }
    Read::More
}

/// Where the first event ends: the first `\n\n` (rmcp writes `\n` line ends).
fn blank_line(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(2)
        .position(|w| w[0] == b'\n' && w[1] == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&str]) -> Option<String> {
        let mut pending = BytesMut::new();
        for chunk in chunks {
            pending.extend_from_slice(chunk.as_bytes());
            match decide(&mut pending) {
                Read::More => continue,
                Read::Json(b) => return Some(String::from_utf8(b.to_vec()).unwrap()),
                Read::Sse => return None,
            }
        }
        Some("more".into())
    }

    #[test]
    fn a_response_after_priming_is_the_json_answer() {
        let priming = "data: \nid: 0\nretry: 3000\n\n";
        let result = "data: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}\nid: 1\n\n";
        assert_eq!(
            run(&[priming, result]).as_deref(),
            Some("{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}")
        );
        // One frame or split mid-event: the same.
        assert_eq!(
            run(&[&format!("{priming}{}", &result[..10]), &result[10..]]).as_deref(),
            Some("{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}")
        );
        let error = "data: {\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":-32602,\"message\":\"x\"}}\n\n";
        assert!(run(&[priming, error]).unwrap().contains("-32602"));
    }

    #[test]
    fn progress_elicitation_or_keep_alive_first_keeps_the_stream() {
        let priming = "data: \nid: 0\nretry: 3000\n\n";
        let progress =
            "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n";
        let elicit = "data: {\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"elicitation/create\",\"params\":{}}\n\n";
        assert_eq!(run(&[priming, progress]), None);
        assert_eq!(run(&[priming, elicit]), None);
        assert_eq!(run(&[priming, ":\n\n"]), None);
        assert_eq!(run(&[priming]).as_deref(), Some("more"));
    }

    #[test]
    fn only_clients_that_take_json_get_it() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream, application/json;q=0.9"),
        );
        assert!(accepts_json(&headers));
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        assert!(!accepts_json(&headers));
    }
}
