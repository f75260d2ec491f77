//! `devgate sandbox` (feature `sandbox`, on by default): the simulated providers plus a gateway on
//! loopback, and the banner telling the user how to connect a client.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use devgate::sandbox::{self, SandboxOptions};

use super::{Cli, ToolSelection, load_catalog, shutdown_signal};

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
