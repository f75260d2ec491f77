//! `devgate stdio` and `devgate http`: serve MCP, and the connect and confirm pages beside it.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use devgate::app::App;
use devgate::identity::default_user;
use devgate::transport::http::{self, HttpOptions};
use devgate::transport::stdio;
use devgate::transport::stdio_pages::serve_pages_for_stdio;
use tokio_util::sync::CancellationToken;

use super::{Cli, ToolSelection, load_checked, shutdown_signal};

/// `devgate stdio`: one MCP client on stdin/stdout.
pub(super) async fn stdio(
    cli: &Cli,
    user: &Option<String>,
    groups: &[String],
    select: &ToolSelection,
) -> anyhow::Result<ExitCode> {
    let groups = super::keys::checked_groups(groups)?;
    let (config, catalog) = load_checked(cli, select)?;
    let app = App::build(config, &catalog, false)
        .await
        .map_err(anyhow::Error::msg)?;
    let user = user.clone().unwrap_or_else(|| default_user(&app.config));
    let _pages = serve_pages_for_stdio(&app).await;
    tracing::info!(user = %user, tools = app.gateway.tools().len(), "serving MCP on stdio");
    let identity = devgate::identity::Identity { user, groups };
    stdio::serve(app.gateway.clone(), identity, app.pending.clone())
        .await
        .context("stdio transport")?;
    Ok(ExitCode::SUCCESS)
}

/// `devgate http`: MCP over streamable HTTP, with the pages, until Ctrl-C or SIGTERM.
pub(super) async fn http(
    cli: &Cli,
    listen: &Option<SocketAddr>,
    stateless: &bool,
    threads: Option<u16>,
    select: &ToolSelection,
) -> anyhow::Result<ExitCode> {
    let (mut config, catalog) = load_checked(cli, select)?;
    let listen = match listen {
        Some(l) => *l,
        None => config.http.listen.parse().context("http.listen")?,
    };
    http::check_exposure(&config, &listen).map_err(anyhow::Error::msg)?;
    let stateless = *stateless || config.http.stateless;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let bound = listener.local_addr()?;
    if config.public_url.is_none() {
        config.public_url = Some(format!("http://{bound}"));
    }
    let app = App::build(config, &catalog, true)
        .await
        .map_err(anyhow::Error::msg)?;
    let shutdown = CancellationToken::new();
    let sessions = CancellationToken::new();
    let router = http::router(
        app.http_parts(bound).map_err(anyhow::Error::msg)?,
        &app.config,
        &HttpOptions {
            listen: bound,
            stateless,
        },
        sessions.clone(),
    );
    // The address line on stderr lets scripts and tests find an ephemeral port.
    eprintln!("devgate listening on http://{bound}/mcp");
    tracing::info!(%bound, stateless, tools = app.gateway.tools().len(), "serving MCP over HTTP");
    let token = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        token.cancel();
    });
    let grace = std::time::Duration::from_secs(app.config.limits.shutdown_grace_secs);
    let threads = threads.map(usize::from).unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let limits = http::EdgeLimits::new(&app.config.limits).with_connection_threads(threads);
    http::serve_with_grace(listener, router, limits, shutdown, sessions, grace).await?;
    app.gateway.close_audit().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
