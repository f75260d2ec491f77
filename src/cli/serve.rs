//! `devgate sandbox`, `devgate stdio` and `devgate http`: serve MCP, and the connect and confirm pages beside it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use devgate::app::App;
use devgate::identity::default_user;
use devgate::sandbox::{self, SandboxOptions};
use devgate::transport::http::{self, HttpOptions};
use devgate::transport::stdio;
use devgate::transport::stdio_pages::serve_pages_for_stdio;
use tokio_util::sync::CancellationToken;

use super::{Cli, ToolSelection, load_catalog, load_checked, shutdown_signal};

/// `devgate sandbox`: simulated providers plus a gateway on loopback, until Ctrl-C.
#[allow(clippy::too_many_arguments)] // one per `devgate sandbox` flag, passed straight through
pub(super) async fn sandbox(
    cli: &Cli,
    listen: &SocketAddr,
    buddy: &SocketAddr,
    bitbucket: &SocketAddr,
    write_config: &Option<PathBuf>,
    state_dir: &Option<PathBuf>,
    oauth: bool,
    select: &ToolSelection,
) -> anyhow::Result<ExitCode> {
    let catalog = load_catalog(cli.tools_dir.as_deref())?;
    // Its own state per sandbox: what the user named, else a fresh temporary directory.
    let state_dir = match (state_dir, write_config) {
        (Some(dir), _) => sandbox::StateDir::named(dir.clone()),
        (None, Some(file)) => sandbox::StateDir::named(
            file.parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        ),
        (None, None) => sandbox::StateDir::fresh().map_err(anyhow::Error::msg)?,
    };
    let config_path = write_config
        .clone()
        .unwrap_or_else(|| state_dir.path.join("devgate.toml"));
    let sandbox = sandbox::start(
        SandboxOptions {
            listen: *listen,
            buddy: *buddy,
            bitbucket: *bitbucket,
            config_path,
            state_dir,
            toolsets: select.toolsets()?,
            read_only: select.read_only,
            oauth,
        },
        &catalog,
    )
    .await
    .map_err(anyhow::Error::msg)?;
    print_sandbox_banner(&sandbox);
    shutdown_signal().await;
    Ok(ExitCode::SUCCESS)
}

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
    let limits = http::EdgeLimits::new(&app.config.limits);
    http::serve_with_grace(listener, router, limits, shutdown, sessions, grace).await?;
    app.gateway.close_audit().await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

fn print_sandbox_banner(sandbox: &sandbox::Sandbox) {
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "devgate".into());
    let config = sandbox.config_path.display();
    let state = format!(
        "{}{}",
        sandbox.state_dir.path.display(),
        if sandbox.state_dir.temporary {
            " (removed when the sandbox stops)"
        } else {
            ""
        }
    );
    if sandbox.oauth {
        print_oauth_banner(sandbox, &config.to_string(), &state);
        return;
    }
    let links: String = sandbox
        .connect_links
        .iter()
        .map(|(title, url)| format!("  {title}: {url}\n"))
        .collect();
    println!(
        r#"devgate sandbox is running (Ctrl-C to stop).

  MCP over HTTP:   {mcp}
  Simulated Buddy: {buddy}
  Simulated Bitbucket: {bitbucket}
  Simulated sign-in (OpenID Connect): {idp} (users ada, bob, cyd)
  Config written:  {config}
  State (database, sealing key): {state}

1. Connect your (simulated) accounts in a browser; each link works once, for 10 minutes
   (your agent gets fresh ones from devgate_connections or when a tool needs a connection):
{links}
2. Point an agent at devgate:
  HTTP (Claude Code):  claude mcp add --transport http devgate {mcp}
  stdio (mcp.json):
    {{"mcpServers": {{"devgate": {{"command": "{exe}", "args": ["stdio", "--user", "local", "--config", "{config}"]}}}}}}

3. Ask it, for example: "List the open pull requests in acme/api" or "Run the build pipeline of the web project"."#,
        mcp = sandbox.mcp_url,
        buddy = sandbox.sim.buddy_url,
        bitbucket = sandbox.sim.bitbucket_url,
        idp = sandbox.idp.issuer,
    );
}

/// The banner of `devgate sandbox --oauth`: how to add devgate to a client that speaks MCP OAuth.
fn print_oauth_banner(sandbox: &sandbox::Sandbox, config: &str, state: &str) {
    println!(
        r#"devgate sandbox is running with OAuth sign-in (Ctrl-C to stop).

  MCP over HTTP:   {mcp}
  Simulated Buddy: {buddy}
  Simulated Bitbucket: {bitbucket}
  Simulated sign-in (OpenID Connect): {idp} (users ada, bob, cyd)
  Config written:  {config}
  State (database, sealing key): {state}

1. Add devgate to a client that speaks MCP OAuth, by its URL only: {mcp}
   e.g. Claude Code: claude mcp add --transport http devgate {mcp}
   The client registers itself (dynamic registration or its Client ID Metadata Document); no key to paste.
2. Your browser opens devgate's sign-in page: pick "Sign in with {idp_host}", then a user:
   ada (groups devs, admins), bob (devs) or cyd (contractors); then allow the client on the consent page.
3. The first tool call answers with a link that connects the simulated Bitbucket or Buddy account.
   Ask, for example: "List the open pull requests in acme/api"."#,
        mcp = sandbox.mcp_url,
        buddy = sandbox.sim.buddy_url,
        bitbucket = sandbox.sim.bitbucket_url,
        idp = sandbox.idp.issuer,
        idp_host = sandbox.idp.issuer.trim_start_matches("http://"),
    );
}
