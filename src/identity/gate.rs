//! The `/mcp` gate: the axum middleware that turns a bearer credential into an [`Identity`] or a challenge, and the protected-resource metadata it points to.

use super::*;

/// The state [`authenticate`] needs.
#[derive(Clone)]
pub struct AuthLayer {
    pub authenticator: Arc<Authenticator>,
    /// Where the protected-resource metadata is published (for the 401 challenge).
    pub metadata_url: String,
}

/// Axum middleware for `/mcp`: resolves the caller or answers 401 with the RFC 9728 challenge.
pub async fn authenticate(
    State(layer): State<AuthLayer>,
    mut request: Request,
    next: Next,
) -> Response {
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .map(str::to_string);
    match layer.authenticator.resolve(bearer.as_deref()).await {
        Ok(resolved) => {
            if let Some(scopes) = resolved.scopes {
                request.extensions_mut().insert(GrantedScopes(scopes));
            }
            request.extensions_mut().insert(Identity {
                user: resolved.user,
                groups: resolved.groups,
            });
            next.run(request).await
        }
        Err(AuthError::Store(e)) => {
            tracing::error!(error = %e, "authentication could not reach the store");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is unavailable; try again shortly\n",
            )
                .into_response()
        }
        // The token may be fine: a 401 would send the client to sign in again, which cannot help.
        Err(e @ AuthError::Jwks { retry_after }) => {
            let mut response = (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            response
        }
        Err(e) => {
            let error = match e {
                AuthError::Missing => String::new(),
                _ => ", error=\"invalid_token\"".to_string(),
            };
            tracing::info!(reason = %e, "rejected an HTTP caller");
            // Read a small body before refusing: hyper closes a connection whose request body was
            // left unread, and a client that reuses it at once (the MCP Python SDK's discovery after
            // this 401) then sees it drop without an answer.
            let _ = axum::body::to_bytes(std::mem::take(request.body_mut()), 64 * 1024).await;
            let scope = match &*layer.authenticator {
                Authenticator::OAuth { .. } => {
                    format!(", scope=\"{}\"", crate::auth_server::scopes::ALL.join(" "))
                }
                _ => String::new(),
            };
            let challenge = format!(
                "Bearer resource_metadata=\"{}\"{scope}{error}",
                layer.metadata_url
            );
            let mut response = (
                StatusCode::UNAUTHORIZED,
                format!("{e}: {}\n", layer.authenticator.hint()),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            response
        }
    }
}

/// RFC 9728 protected-resource metadata for `/mcp`.
pub fn resource_metadata(public_url: &str, authenticator: &Authenticator) -> serde_json::Value {
    let base = public_url.trim_end_matches('/');
    let mut doc = serde_json::json!({
        "resource": format!("{base}/mcp"),
        "bearer_methods_supported": ["header"],
        "resource_name": "devgate",
    });
    if let Some(issuer) = authenticator.issuer() {
        doc["authorization_servers"] = serde_json::json!([issuer]);
    }
    if let Authenticator::OAuth { .. } = authenticator {
        doc["scopes_supported"] = serde_json::json!(crate::auth_server::scopes::ALL);
    }
    doc
}
