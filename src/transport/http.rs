//! Streamable HTTP: `/mcp` (rmcp's service, stateful or stateless) and `/healthz`, on axum.
//!
//! Until API keys land, the HTTP transport has no authentication of its own, so it only listens on
//! loopback addresses (see [`check_listen`]); rmcp's Host check rejects DNS-rebinding requests.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::gateway::Gateway;
use crate::mcp::McpServer;

/// The user HTTP calls run as until the transport authenticates callers.
pub const HTTP_USER: &str = "http";

/// How to serve.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub listen: SocketAddr,
    /// No sessions: every request stands alone, so any instance can answer it.
    pub stateless: bool,
}

/// Refuses addresses other machines could reach: there is no caller authentication yet.
pub fn check_listen(addr: &SocketAddr) -> Result<(), String> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(format!(
            "refusing to listen on {addr}: the HTTP transport has no caller authentication yet, so it only serves loopback (127.0.0.1 or ::1)"
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

/// The axum app: `/mcp` and `/healthz`.
pub fn router(
    gateway: Arc<Gateway>,
    config: &Config,
    options: &HttpOptions,
    shutdown: CancellationToken,
) -> Router {
    let rmcp_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(allowed_hosts(config, &options.listen))
        .with_cancellation_token(shutdown)
        .with_legacy_session_mode(!options.stateless)
        .with_json_response(options.stateless);
    let factory = move || Ok(McpServer::new(gateway.clone(), HTTP_USER));
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
    };
    mcp.route("/healthz", get(|| async { "ok\n" }))
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
