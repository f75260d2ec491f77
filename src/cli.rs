//! The command line (design §3): parse with clap, then run one command.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use devgate::catalog::Catalog;
use devgate::config::Config;
use devgate::gateway::{Gateway, is_offered};
use devgate::sandbox::{self, SandboxOptions};
use devgate::transport::http::{self, HttpOptions};
use devgate::transport::stdio;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(name = "devgate", version = version(), about = "An MCP gateway for Buddy.Works and Bitbucket Cloud")]
pub struct Cli {
    /// Config file (default: $DEVGATE_CONFIG, else ./devgate.toml when present).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Load tool catalogs from this directory instead of the built-in ones.
    #[arg(long, global = true)]
    pub tools_dir: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "DEVGATE_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start simulated Buddy and Bitbucket plus a gateway on loopback: try devgate without accounts.
    Sandbox {
        /// Address of the gateway's HTTP transport.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Address of the simulated Buddy API.
        #[arg(long, default_value = "127.0.0.1:8091")]
        buddy: SocketAddr,
        /// Address of the simulated Bitbucket API.
        #[arg(long, default_value = "127.0.0.1:8092")]
        bitbucket: SocketAddr,
        /// Where to write the sandbox config for stdio clients.
        #[arg(long)]
        write_config: Option<PathBuf>,
    },
    /// Serve MCP on stdin/stdout (for agents that start devgate themselves).
    Stdio {
        /// Who is calling (default: the local OS user).
        #[arg(long)]
        user: Option<String>,
    },
    /// Serve MCP over streamable HTTP at /mcp.
    Http {
        /// Address to listen on (default: http.listen from the config).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// No sessions: any instance can answer any request.
        #[arg(long)]
        stateless: bool,
    },
    /// Print the tools this config offers (names, scopes, hints).
    Tools {
        #[arg(long, value_enum, default_value = "md")]
        format: ToolsFormat,
        /// The whole catalog, whatever the config offers.
        #[arg(long)]
        all: bool,
    },
    /// Check the config and the catalogs; exit 1 listing every problem.
    Check,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ToolsFormat {
    Md,
    Json,
}

/// `devgate --version`: the binary's version and each catalog's.
fn version() -> &'static str {
    let catalogs: Vec<String> = Catalog::builtin()
        .map(|c| {
            c.providers
                .iter()
                .map(|p| format!("{} catalog {}", p.spec.id, p.version))
                .collect()
        })
        .unwrap_or_default();
    Box::leak(format!("{} ({})", env!("CARGO_PKG_VERSION"), catalogs.join(", ")).into_boxed_str())
}

fn load_catalog(dir: Option<&Path>) -> anyhow::Result<Catalog> {
    let loaded = match dir {
        Some(d) => Catalog::load_dir(d),
        None => Catalog::builtin(),
    };
    loaded.map_err(|errors| {
        let list: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
        anyhow::anyhow!("the tool catalog has problems:\n{}", list.join("\n"))
    })
}

/// Loads config and catalog and refuses to start when the config has problems.
fn load_checked(cli: &Cli) -> anyhow::Result<(Config, Catalog)> {
    let catalog = load_catalog(cli.tools_dir.as_deref())?;
    let config = Config::load(cli.config.as_deref())?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let problems = config.validate(&catalog);
    if !problems.is_empty() {
        bail!(
            "{} has problems:\n  {}",
            config.origin,
            problems.join("\n  ")
        );
    }
    Ok((config, catalog))
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Sandbox {
            listen,
            buddy,
            bitbucket,
            write_config,
        } => {
            let catalog = load_catalog(cli.tools_dir.as_deref())?;
            let config_path = write_config.clone().unwrap_or_else(|| {
                std::env::temp_dir()
                    .join("devgate-sandbox")
                    .join("devgate.toml")
            });
            let sandbox = sandbox::start(
                SandboxOptions {
                    listen: *listen,
                    buddy: *buddy,
                    bitbucket: *bitbucket,
                    config_path,
                },
                &catalog,
            )
            .await
            .map_err(anyhow::Error::msg)?;
            print_sandbox_banner(&sandbox);
            shutdown_signal().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Stdio { user } => {
            let (config, catalog) = load_checked(&cli)?;
            let gateway = Arc::new(Gateway::new(&config, &catalog).map_err(anyhow::Error::msg)?);
            let user = user.clone().unwrap_or_else(local_user);
            tracing::info!(user = %user, tools = gateway.tools().len(), "serving MCP on stdio");
            stdio::serve(gateway, user)
                .await
                .context("stdio transport")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Http { listen, stateless } => {
            let (config, catalog) = load_checked(&cli)?;
            let listen = match listen {
                Some(l) => *l,
                None => config.http.listen.parse().context("http.listen")?,
            };
            http::check_listen(&listen).map_err(anyhow::Error::msg)?;
            let stateless = *stateless || config.http.stateless;
            let gateway = Arc::new(Gateway::new(&config, &catalog).map_err(anyhow::Error::msg)?);
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            let bound = listener.local_addr()?;
            let shutdown = CancellationToken::new();
            let app = http::router(
                gateway.clone(),
                &config,
                &HttpOptions {
                    listen: bound,
                    stateless,
                },
                shutdown.clone(),
            );
            // The address line on stderr lets scripts and tests find an ephemeral port.
            eprintln!("devgate listening on http://{bound}/mcp");
            tracing::info!(%bound, stateless, tools = gateway.tools().len(), "serving MCP over HTTP");
            let token = shutdown.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                token.cancel();
            });
            http::serve(listener, app, shutdown).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Tools { format, all } => {
            let catalog = load_catalog(cli.tools_dir.as_deref())?;
            let config = if *all {
                Config::default()
            } else {
                Config::load(cli.config.as_deref())?
            };
            let whole = *all || config.providers.is_empty();
            let tools: Vec<_> = catalog
                .providers
                .iter()
                .flat_map(|p| p.tools.iter())
                .filter(|t| whole || is_offered(&config, &catalog, t))
                .collect();
            match format {
                ToolsFormat::Md => print!("{}", devgate::catalog::docs::markdown(&catalog, &tools)),
                ToolsFormat::Json => println!("{}", devgate::catalog::docs::json(&tools)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check => {
            let catalog = match load_catalog(cli.tools_dir.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let config = match Config::load(cli.config.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("config: {e}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            for warning in &config.warnings {
                eprintln!("warning: {warning}");
            }
            let problems = config.validate(&catalog);
            if problems.is_empty() {
                if let Err(e) = Gateway::new(&config, &catalog) {
                    eprintln!("{e}");
                    return Ok(ExitCode::FAILURE);
                }
                let offered = catalog
                    .providers
                    .iter()
                    .flat_map(|p| p.tools.iter())
                    .filter(|t| is_offered(&config, &catalog, t))
                    .count();
                println!("{}: ok ({offered} tools offered)", config.origin);
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("{} has problems:", config.origin);
                for p in problems {
                    eprintln!("  {p}");
                }
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

fn print_sandbox_banner(sandbox: &sandbox::Sandbox) {
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "devgate".into());
    let config = sandbox.config_path.display();
    println!(
        r#"devgate sandbox is running (Ctrl-C to stop).

  MCP over HTTP:   {mcp}
  Simulated Buddy: {buddy}
  Simulated Bitbucket: {bitbucket}
  Config written:  {config}

Point an agent at it:
  HTTP (Claude Code):  claude mcp add --transport http devgate {mcp}
  stdio (mcp.json):
    {{"mcpServers": {{"devgate": {{"command": "{exe}", "args": ["stdio", "--config", "{config}"]}}}}}}

Then ask it, for example: "List the open pull requests in acme/api" or "Run the build pipeline of the web project"."#,
        mcp = sandbox.mcp_url,
        buddy = sandbox.sim.buddy_url,
        bitbucket = sandbox.sim.bitbucket_url,
    );
}

fn local_user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "local".into())
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
