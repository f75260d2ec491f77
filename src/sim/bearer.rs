//! The bearer check of API requests: the credential resolved to an account and its granted scopes.

use super::*;

/// The scopes an OAuth token was granted (`None`: a static credential, which may do everything), for
/// handlers whose answer depends on them (Buddy shows members' e-mails only with `MEMBER_EMAIL`).
#[derive(Debug, Clone)]
pub(crate) struct Granted(pub Option<Vec<String>>);

/// Checks the credential of an API request: an unknown, revoked or expired one is a 401 in the
/// provider's words; an OAuth token lacking the route's scope is a 403. The account and the granted
/// scopes go into the request extensions (`Extension<Account>`, `Extension<Granted>`); Bitbucket OAuth
/// answers carry `X-OAuth-Scopes`.
pub(super) async fn bearer(
    State((which, state)): State<(Which, Arc<SimState>)>,
    mut request: Request,
    next: Next,
) -> Response {
    let resolved = match state.resolve(which, request.headers()) {
        Ok(r) => r,
        Err(denied) => return error(which, StatusCode::UNAUTHORIZED, denied.message(which)),
    };
    let (method, path) = (request.method(), request.uri().path());
    if let Some(scopes) = &resolved.scopes {
        match which {
            Which::Bitbucket => {
                if let Some(required) = oauth::required_scope(method, path)
                    && !oauth::grants_scope(scopes, required)
                {
                    let body = json!({"type": "error", "error": {
                        "message": "Your credentials lack one or more required privilege scopes.",
                        "detail": {"granted": scopes, "required": [required]},
                    }});
                    return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
                }
            }
            Which::Buddy => {
                if let Some(required) = buddy::required_scope(method, path)
                    && !buddy::grants_scope(scopes, required)
                {
                    return buddy::scope_denied(required);
                }
            }
        }
    }
    request.extensions_mut().insert(resolved.account);
    request
        .extensions_mut()
        .insert(Granted(resolved.scopes.clone()));
    let mut response = next.run(request).await;
    if which == Which::Bitbucket
        && let Some(scopes) = resolved.scopes
        && let Ok(value) = HeaderValue::from_str(&scopes.join(", "))
    {
        response.headers_mut().insert("x-oauth-scopes", value);
    }
    response
}
