//! The command line (design §3): the clap types, the loading every command shares, and the dispatch
//! to one module per command family.

mod audit;
mod check;
mod clients;
mod connect;
mod grants;
mod keys;
mod policy;
#[cfg(feature = "sandbox")]
mod sandbox;
mod serve;
mod tools;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use clap::{Parser, Subcommand, ValueEnum};
use devgate::catalog::Catalog;
use devgate::config::Config;

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
    #[cfg(feature = "sandbox")]
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
        /// Where to write the sandbox config for stdio clients (default: in the state directory).
        #[arg(long)]
        write_config: Option<PathBuf>,
        /// Directory for the sandbox's config, database and sealing key (default: a fresh temporary
        /// directory, removed when the sandbox stops; with --write-config: that file's directory).
        /// A database left there by an earlier sandbox is started afresh, as the simulator is.
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Make the MCP endpoint an OAuth-protected one, as a remote client (Claude's connectors, VS
        /// Code, the MCP SDKs) expects: the client registers itself and you sign in at the simulated
        /// identity provider (users ada, bob, cyd).
        #[arg(long)]
        oauth: bool,
        #[command(flatten)]
        select: ToolSelection,
    },
    /// Serve MCP on stdin/stdout (for agents that start devgate themselves).
    Stdio {
        /// Who is calling (default: the local OS user, or `local` when http.auth = "none").
        #[arg(long)]
        user: Option<String>,
        /// A group the user is in, for [[policies]] (repeat for several; default: none).
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
        #[command(flatten)]
        select: ToolSelection,
    },
    /// Serve MCP over streamable HTTP at /mcp.
    Http {
        /// Address to listen on (default: http.listen from the config).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// No sessions: any instance can answer any request.
        #[arg(long)]
        stateless: bool,
        /// Threads serving connections (default: one per CPU core), each on its own single-threaded
        /// runtime, so a request is answered on the thread that read it. 1 serves them on the thread that
        /// accepts them and runs the background work.
        #[arg(long, env = "DEVGATE_HTTP_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
        #[command(flatten)]
        select: ToolSelection,
    },
    /// Print the tools this config offers (names, scopes, hints), or with --stats what they cost an agent.
    Tools {
        /// Markdown tables, or JSON for scripts.
        #[arg(long, value_enum, default_value = "md")]
        format: ToolsFormat,
        /// The whole catalog, whatever the config offers.
        #[arg(long, conflicts_with_all = ["toolsets", "read_only"])]
        all: bool,
        /// The size of what an agent receives (tools/list and the instructions), in bytes and ≈ tokens,
        /// per toolset and per tool.
        #[arg(long)]
        stats: bool,
        #[command(flatten)]
        select: ToolSelection,
    },
    /// Check the config and the catalogs, reach the store and check the sealing key; exit 1 listing every problem.
    Check {
        #[command(flatten)]
        select: ToolSelection,
    },
    /// Connect your account at a provider from a terminal: prints the link and waits for the callback.
    Connect {
        /// The provider to connect: `buddy` or `bitbucket`.
        provider: String,
        /// The devgate user to connect (default: the local OS user, or `local` when
        /// http.auth = "none").
        #[arg(long)]
        user: Option<String>,
    },
    /// Forget your connection to a provider (revoked upstream where the provider allows).
    Disconnect {
        /// The provider to forget: `buddy` or `bitbucket`.
        provider: String,
        /// The devgate user to disconnect (default: as for `connect`).
        #[arg(long)]
        user: Option<String>,
    },
    /// Per provider: configured, connected, account, scopes, expiry. Never a secret; needs no client
    /// secret.
    Status {
        /// Whose connections (default: as for `connect`).
        #[arg(long)]
        user: Option<String>,
    },
    /// The audit log: every tool call (user, tool, resource, outcome, duration, request id), newest first.
    Audit {
        /// Only this user's calls (default: everyone's).
        #[arg(long)]
        user: Option<String>,
        /// Only calls since then: RFC 3339 (2026-11-23T10:00:00Z) or an age (90s, 30m, 2h, 7d).
        #[arg(long)]
        since: Option<String>,
        /// At most this many calls.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// One line per call, or JSON (times in RFC 3339).
        #[arg(long, value_enum, default_value = "text")]
        format: AuditFormat,
    },
    /// API keys for HTTP callers: the key is printed once and stored hashed.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Explain a [[policies]] decision: a user's groups, the rules that match a tool, the result.
    Policy {
        #[command(subcommand)]
        action: PolicyAction,
    },
    /// MCP clients of devgate's authorization server (`[http] auth = "oauth"`).
    Clients {
        #[command(subcommand)]
        action: clients::ClientsAction,
    },
    /// What users let MCP clients do; revoking a grant ends its tokens.
    Grants {
        #[command(subcommand)]
        action: grants::GrantsAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyAction {
    /// Whether a user may call a tool, and by which rules; exits 1 when the tool is not theirs to call.
    Check {
        /// The devgate user.
        user: String,
        /// The tool, by exposed name (e.g. bitbucket_merge_pull_request).
        tool: String,
        /// Decide for these groups (repeat for several) instead of those of the user's API keys.
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Create a key for a user and print it (once).
    Create {
        /// The devgate user the key authenticates as.
        user: String,
        /// A group the user is in with this key, for [[policies]] (repeat for several).
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
    },
    /// List keys (their public ids, never the keys): one user's, or everyone's.
    List {
        /// Only this user's keys (default: every user's).
        user: Option<String>,
    },
    /// Revoke a user's key by its public id.
    Revoke {
        /// The user the key belongs to.
        user: String,
        /// The key's public id, as `keys list` shows it.
        id: String,
    },
}

/// Which tools to offer, overriding the config's `[tools] toolsets` and `read_only`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ToolSelection {
    /// Offer only these toolsets, comma separated (overrides tools.toolsets; `all` for every one).
    #[arg(long, value_delimiter = ',', value_name = "TOOLSET,...")]
    pub toolsets: Option<Vec<String>>,
    /// Offer only tools that change nothing (overrides tools.read_only).
    #[arg(long)]
    pub read_only: bool,
}

impl ToolSelection {
    /// The `--toolsets` names, trimmed; an empty list is a mistake, not "offer nothing".
    fn toolsets(&self) -> anyhow::Result<Option<Vec<String>>> {
        let Some(sets) = &self.toolsets else {
            return Ok(None);
        };
        let sets: Vec<String> = sets
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if sets.is_empty() {
            bail!("--toolsets needs at least one toolset (or `all`)");
        }
        Ok(Some(sets))
    }

    /// Applies the flags to a loaded config, before it is validated.
    fn apply(&self, config: &mut Config) -> anyhow::Result<()> {
        if let Some(sets) = self.toolsets()? {
            config.tools.toolsets = sets;
        }
        if self.read_only {
            config.tools.read_only = true;
        }
        Ok(())
    }

    /// Where the checked settings came from, naming the flags, so a problem a flag causes is not blamed
    /// on the file alone.
    fn origin(&self, config: &Config) -> String {
        let mut flags = Vec::new();
        if self.toolsets.is_some() {
            flags.push("--toolsets");
        }
        if self.read_only {
            flags.push("--read-only");
        }
        match (flags.is_empty(), config.origin.as_str()) {
            (true, devgate::config::NO_FILE) => "the configuration".to_string(),
            (true, origin) => origin.to_string(),
            (false, devgate::config::NO_FILE) => flags.join(" "),
            (false, origin) => format!("{origin} with {}", flags.join(" ")),
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AuditFormat {
    Text,
    Json,
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

/// Loads config and catalog, applies the tool selection flags and refuses to start when the config has
/// problems.
fn load_checked(cli: &Cli, select: &ToolSelection) -> anyhow::Result<(Config, Catalog)> {
    let catalog = load_catalog(cli.tools_dir.as_deref())?;
    let mut config = Config::load(cli.config.as_deref())?;
    select.apply(&mut config)?;
    for warning in config
        .warnings
        .iter()
        .chain(&config.retired_names(&catalog))
    {
        tracing::warn!("{warning}");
    }
    let problems = config.validate(&catalog);
    if !problems.is_empty() {
        bail!(
            "{} has problems:\n  {}",
            select.origin(&config),
            problems.join("\n  ")
        );
    }
    Ok((config, catalog))
}

/// Loads the config for a command that only reads the store (`status`): an unset variable behind a
/// secret is no problem, since the command never sends the secret anywhere; every other one is.
fn load_for_reading(cli: &Cli) -> anyhow::Result<(Config, Catalog)> {
    let catalog = load_catalog(cli.tools_dir.as_deref())?;
    let config = store_config(cli)?;
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

/// The config of a command that works on the store alone (`audit`, `keys`, `status`), read past
/// unset secret variables. Without any config it stops: the default store would be a new
/// `devgate.db` (and `devgate.key`) in the current directory, not the one a gateway uses.
fn store_config(cli: &Cli) -> anyhow::Result<Config> {
    let (config, problems) = Config::load_all(cli.config.as_deref());
    let problems: Vec<String> = problems
        .iter()
        .filter(|p| !p.is_missing_secret())
        .map(ToString::to_string)
        .collect();
    let config = match config {
        Some(c) if problems.is_empty() => c,
        _ => bail!(
            "the configuration has problems:\n  {}",
            problems.join("\n  ")
        ),
    };
    if config.origin == devgate::config::NO_FILE
        && config.store.url == devgate::config::StoreConfig::default().url
    {
        bail!(
            "no configuration: there is no devgate.toml here and neither --config nor DEVGATE_CONFIG \
             names one, so there is no store to use; pass the config of the devgate whose store you mean"
        );
    }
    Ok(config)
}

/// A Unix time as people read it, in UTC: `2026-11-23 10:00:05 UTC`.
fn human_time(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| at.to_string())
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        #[cfg(feature = "sandbox")]
        Command::Sandbox {
            listen,
            buddy,
            bitbucket,
            write_config,
            state_dir,
            oauth,
            select,
        } => {
            sandbox::sandbox(
                &cli,
                listen,
                buddy,
                bitbucket,
                write_config,
                state_dir,
                *oauth,
                select,
            )
            .await
        }
        Command::Stdio {
            user,
            groups,
            select,
        } => serve::stdio(&cli, user, groups, select).await,
        Command::Http {
            listen,
            stateless,
            threads,
            select,
        } => serve::http(&cli, listen, stateless, *threads, select).await,
        Command::Connect { provider, user } => connect::connect(&cli, provider, user).await,
        Command::Disconnect { provider, user } => connect::disconnect(&cli, provider, user).await,
        Command::Status { user } => connect::status(&cli, user).await,
        Command::Audit {
            user,
            since,
            limit,
            format,
        } => audit::audit(&cli, user, since, limit, format).await,
        Command::Keys { action } => keys::keys(&cli, action).await,
        Command::Policy { action } => policy::policy(&cli, action).await,
        Command::Clients { action } => clients::clients(&cli, action).await,
        Command::Grants { action } => grants::grants(&cli, action).await,
        Command::Tools {
            format,
            all,
            stats,
            select,
        } => tools::tools(&cli, format, all, stats, select).await,
        Command::Check { select } => check::check(&cli, select).await,
    }
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

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// `--help` explains every option and argument of every command.
    #[test]
    fn every_command_and_argument_has_help() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            if command.get_about().is_none() && !path.is_empty() {
                missing.push(format!("`{path}` (the command)"));
            }
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("`{path}` {id}"));
                }
            }
            for sub in command.get_subcommands() {
                if sub.get_name() == "help" {
                    continue;
                }
                walk(sub, format!("{path} {}", sub.get_name()).trim(), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "", &mut missing);
        let missing: Vec<String> = missing.iter().map(|m| format!("devgate {m}")).collect();
        assert!(missing.is_empty(), "no help text: {}", missing.join(", "));
    }
}
