//! What a devgate-issued token's scopes allow at `/mcp` ([`super::scopes`]): `tools/list` shows a token
//! without `tools:write` only the read-only tools ([`visible`]), and a `tools/call` of a tool that
//! changes things answers HTTP 403 with `WWW-Authenticate: Bearer error="insufficient_scope"` naming the
//! scopes to ask for ([`step_up`]), so the client can send the user back to consent to more. API keys and
//! JWTs carry no [`GrantedScopes`] and are not limited here.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::model::Tool;

use super::scopes;
use crate::gateway::Gateway;
use crate::identity::GrantedScopes;

/// Whether a token with `granted` scopes may use `tool` (read-only tools need `tools:read`, the others
/// `tools:write`).
pub fn allows(granted: &str, tool: &Tool) -> bool {
    let read_only = tool
        .annotations
        .as_ref()
        .and_then(|a| a.read_only_hint)
        .unwrap_or(false);
    scopes::covers(granted, &[scopes::needed_for(read_only).to_string()])
}

/// The tools a request may see: all of them, or those its token's scopes allow.
pub fn visible(tools: &[Tool], granted: Option<&GrantedScopes>) -> Vec<Tool> {
    match granted {
        None => tools.to_vec(),
        Some(GrantedScopes(g)) => tools.iter().filter(|t| allows(g, t)).cloned().collect(),
    }
}

/// What [`step_up`] needs.
#[derive(Clone)]
pub struct StepUp {
    pub gateway: Arc<Gateway>,
    /// The protected-resource metadata URL, for the challenge.
    pub metadata_url: String,
    /// Largest body read.
    pub max_body: usize,
}

/// The tools a JSON-RPC message (or batch) calls.
fn called_tools(body: &[u8]) -> Vec<String> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let messages = match value {
        serde_json::Value::Array(items) => items,
        one => vec![one],
    };
    messages
        .iter()
        .filter(|m| m["method"] == "tools/call")
        .filter_map(|m| m["params"]["name"].as_str().map(str::to_string))
        .collect()
}

/// Axum middleware inside authentication on `/mcp`: refuses a call its token's scopes do not cover.
pub async fn step_up(State(state): State<StepUp>, request: Request, next: Next) -> Response {
    let granted = match request.extensions().get::<GrantedScopes>() {
        Some(GrantedScopes(g))
            if request.method() == Method::POST && !scopes::covers(g, &[scopes::WRITE.into()]) =>
        {
            g.clone()
        }
        _ => return next.run(request).await,
    };
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, state.max_body).await {
        Ok(b) => b,
        Err(_) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is too large\n",
            )
                .into_response();
        }
    };
    let refused = called_tools(&bytes).into_iter().find(|name| {
        state
            .gateway
            .tool(name)
            .is_some_and(|tool| !allows(&granted, tool))
    });
    if let Some(tool) = refused {
        tracing::info!(tool = %tool, "refused a call the token's scopes do not cover");
        let challenge = format!(
            "Bearer error=\"insufficient_scope\", scope=\"{}\", resource_metadata=\"{}\", error_description=\"{tool} changes things and needs the {} scope\"",
            scopes::ALL.join(" "),
            state.metadata_url,
            scopes::WRITE
        );
        let mut response = (
            StatusCode::FORBIDDEN,
            format!(
                "{tool} changes things: sign in again and allow the {} scope\n",
                scopes::WRITE
            ),
        )
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        return response;
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_found_in_messages_and_batches() {
        let one = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}"#;
        assert_eq!(called_tools(one), ["a"]);
        let batch = br#"[{"method":"tools/list"},{"method":"tools/call","params":{"name":"b"}}]"#;
        assert_eq!(called_tools(batch), ["b"]);
        assert!(called_tools(b"not json").is_empty());
    }
}
