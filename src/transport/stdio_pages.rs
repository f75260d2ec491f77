//! The connect and confirm pages beside a process without an HTTP transport (`devgate stdio`,
//! `devgate connect`): served on `public_url` when that is a free loopback address.

use tokio_util::sync::CancellationToken;

use crate::app::App;

/// Serves the connect and confirm pages on `public_url` when it is a loopback address and free, so a
/// link given to a stdio agent (or printed by `devgate connect`) works without a separate `devgate http`.
/// Like `devgate http`, it answers only to the allowed `Host` names and caps request bodies at
/// `limits.max_request_bytes`. Where another process serves `public_url`, confirm links point there only
/// if this process keeps confirmations in a store that process can share; otherwise no confirm page is
/// offered.
pub async fn serve_pages_for_stdio(app: &App) -> Option<CancellationToken> {
    let public_url = app.config.public_url.as_deref()?;
    let url = url::Url::parse(public_url).ok()?;
    let confirmations = app.gateway.confirmations().clone();
    let served_elsewhere = || {
        if confirmations.shared() {
            confirmations.serve_pages_at(public_url);
        }
    };
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    let addr: std::net::SocketAddr = format!("{}:{port}", host.trim_matches(['[', ']']))
        .parse()
        .ok()?;
    if !addr.ip().is_loopback() {
        served_elsewhere();
        return None;
    }
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(_) => {
            tracing::info!(%addr, "another process serves the connect and confirm pages");
            served_elsewhere();
            return None;
        }
    };
    let secure = url.scheme() == "https";
    let mut router =
        crate::transport::confirm_pages::router(crate::transport::confirm_pages::ConfirmPages {
            confirmations: confirmations.clone(),
            secure,
        });
    if let Some(connector) = app.connector.clone() {
        router = router.merge(crate::transport::pages::router(
            crate::transport::pages::Pages { connector, secure },
        ));
    }
    let allowed = std::sync::Arc::new(super::http::allowed_hosts(&app.config, &addr));
    let router = router
        .layer(axum::middleware::from_fn_with_state(
            allowed,
            crate::transport::pages::check_host,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(
            app.config.limits.max_request_bytes,
        ));
    confirmations.serve_pages_at(public_url);
    let token = CancellationToken::new();
    let stop = token.clone();
    tokio::spawn(async move {
        let _ = super::http::serve(listener, router, stop).await;
    });
    Some(token)
}
