//! Streamable HTTP: `/mcp` (rmcp's service, stateful or stateless) behind caller authentication, the
//! connect and confirm pages, `/.well-known/oauth-protected-resource` and `/healthz`, on axum.
//!
//! `auth = "none"` (no caller authentication) is only allowed on a loopback listen address
//! ([`check_listen`]); rmcp's Host check rejects DNS-rebinding requests.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, HttpAuth};
use crate::gateway::Gateway;
use crate::identity::{AuthLayer, authenticate, resource_metadata};
use crate::mcp::{Caller, McpServer, PendingElicitations};
use crate::transport::confirm_pages::{self, ConfirmPages};
use crate::transport::pages::{self, Pages};

/// How to serve.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub listen: SocketAddr,
    /// No sessions: every request stands alone, so any instance can answer it.
    pub stateless: bool,
}

/// Refuses `auth = "none"` on an address other machines could reach.
pub fn check_listen(addr: &SocketAddr, auth: HttpAuth) -> Result<(), String> {
    if auth != HttpAuth::None || addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(format!(
            "refusing to listen on {addr} with http.auth = \"none\": without caller authentication devgate only serves loopback (127.0.0.1 or ::1); use auth = \"api_key\" or \"jwt\""
        ))
    }
}

/// Host header values accepted on `/mcp`: loopback names, the listen address, the public URL's host and
/// any configured extras.
pub fn allowed_hosts(config: &Config, listen: &SocketAddr) -> Vec<String> {
    let mut hosts: Vec<String> = vec![
        "localhost".into(),
        "127.0.0.1".into(),
        "::1".into(),
        "[::1]".into(),
    ];
    hosts.push(listen.ip().to_string());
    hosts.push(listen.to_string());
    if let Some(host) = config
        .public_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(str::to_string))
    {
        hosts.push(host);
    }
    hosts.extend(config.http.allowed_hosts.iter().cloned());
    hosts.sort();
    hosts.dedup();
    hosts
}

/// What the HTTP app serves.
pub struct HttpParts {
    pub gateway: Arc<Gateway>,
    pub pending: Arc<PendingElicitations>,
    pub auth: AuthLayer,
    /// The connect pages, when any provider uses OAuth.
    pub pages: Option<Pages>,
    /// The store, whose answer `/readyz` reports.
    pub store: Arc<dyn crate::vault::Store>,
}

/// The axum app: `/mcp`, the connect pages, the resource metadata and `/healthz`. Cancelling `sessions`
/// ends every MCP session and request at once: do it after the server stopped (see [`serve_with_grace`]).
pub fn router(
    parts: HttpParts,
    config: &Config,
    options: &HttpOptions,
    sessions: CancellationToken,
) -> Router {
    let rmcp_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(allowed_hosts(config, &options.listen))
        .with_allowed_origins(allowed_origins(config))
        .with_max_request_body_bytes(config.limits.max_request_bytes)
        .with_cancellation_token(sessions)
        .with_legacy_session_mode(!options.stateless)
        .with_json_response(options.stateless);
    let gateway = parts.gateway.clone();
    let pending = parts.pending.clone();
    let factory = move || {
        Ok(McpServer::new(
            gateway.clone(),
            Caller::FromRequest,
            pending.clone(),
        ))
    };
    let mcp = if options.stateless {
        Router::new().nest_service(
            "/mcp",
            StreamableHttpService::new(
                factory,
                Arc::new(NeverSessionManager::default()),
                rmcp_config,
            ),
        )
    } else {
        Router::new().nest_service(
            "/mcp",
            StreamableHttpService::new(
                factory,
                Arc::new(LocalSessionManager::default()),
                rmcp_config,
            ),
        )
    }
    .layer(axum::middleware::from_fn_with_state(
        parts.auth.clone(),
        authenticate,
    ))
    .layer(axum::middleware::from_fn(session_ended));

    let public = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", options.listen));
    let metadata = axum::Json(resource_metadata(&public, &parts.auth.authenticator));
    let mut app = mcp
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(move || readiness(parts.store.clone())))
        .route(
            "/metrics",
            get(|| async {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    crate::metrics::global().render(),
                )
            }),
        )
        .route(
            "/.well-known/oauth-protected-resource",
            get({
                let m = metadata.clone();
                move || async move { m }
            }),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(move || async move { metadata }),
        );
    if let Some(p) = parts.pages {
        app = app.merge(pages::router(p));
    }
    // Confirm links of this process point here from now on.
    let confirmations = parts.gateway.confirmations().clone();
    confirmations.serve_pages_at(&public);
    app = app.merge(confirm_pages::router(ConfirmPages {
        confirmations,
        secure: public.starts_with("https://"),
    }));
    app.layer(axum::extract::DefaultBodyLimit::max(
        config.limits.max_request_bytes,
    ))
    .layer(axum::middleware::from_fn(crate::request_id::assign))
}

/// A session ended by `DELETE` answers 204 No Content. rmcp answers 202, which clients that expect
/// 200 or 204 (the official Python SDK) log as a failed termination.
async fn session_ended(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let delete = request.method() == axum::http::Method::DELETE;
    let mut response = next.run(request).await;
    if delete && response.status() == axum::http::StatusCode::ACCEPTED {
        *response.status_mut() = axum::http::StatusCode::NO_CONTENT;
    }
    response
}

/// `/readyz`: 200 when the store answers within two seconds, else 503 (the cause goes to the log only,
/// since a store error may name hosts an anonymous caller has no business knowing).
async fn readiness(store: Arc<dyn crate::vault::Store>) -> (axum::http::StatusCode, &'static str) {
    match tokio::time::timeout(std::time::Duration::from_secs(2), store.ping()).await {
        Ok(Ok(())) => (axum::http::StatusCode::OK, "ready\n"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: the store failed");
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the store failed\n",
            )
        }
        Err(_) => {
            tracing::warn!("not ready: the store did not answer within 2 s");
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the store did not answer\n",
            )
        }
    }
}

/// Browser origins allowed to call `/mcp` (a request without `Origin` is not a browser's and passes):
/// the public URL's, and loopback on any port. Anything else is a DNS-rebinding or cross-site attempt.
pub fn allowed_origins(config: &Config) -> Vec<String> {
    let mut origins = vec![
        "http://localhost:*".to_string(),
        "http://127.0.0.1:*".to_string(),
        "http://[::1]:*".to_string(),
    ];
    if let Some(origin) = config
        .public_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .map(|u| u.origin().ascii_serialization())
        .filter(|o| o != "null")
    {
        origins.push(origin);
    }
    origins
}

/// Serves until `shutdown` is cancelled, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// Like [`serve`], but once `shutdown` fires in-flight requests get at most `grace` to finish; then
/// `sessions` (the router's) is cancelled, ending what is left.
pub async fn serve_with_grace(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
    sessions: CancellationToken,
    grace: std::time::Duration,
) -> std::io::Result<()> {
    let server = serve(listener, app, shutdown.clone());
    tokio::pin!(server);
    let result = tokio::select! {
        result = &mut server => result,
        () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests did not finish in time; exiting");
            Ok(())
        }
    };
    sessions.cancel();
    result
}
