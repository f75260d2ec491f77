//! The command line (design §3): parse with clap, then run one command.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use devgate::app::App;
use devgate::catalog::Catalog;
use devgate::config::Config;
use devgate::gateway::is_offered;
use devgate::oauth::connect::Connector;
use devgate::sandbox::{self, SandboxOptions};
use devgate::transport::http::{self, HttpOptions};
use devgate::transport::stdio;
use rmcp::model::{ListToolsResult, ProtocolVersion, ServerResult};
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
        /// Where to write the sandbox config for stdio clients (default: in the state directory).
        #[arg(long)]
        write_config: Option<PathBuf>,
        /// Directory for the sandbox's config, database and sealing key (default: a fresh temporary
        /// directory, removed when the sandbox stops; with --write-config: that file's directory).
        /// A database left there by an earlier sandbox is started afresh, as the simulator is.
        #[arg(long)]
        state_dir: Option<PathBuf>,
        #[command(flatten)]
        select: ToolSelection,
    },
    /// Serve MCP on stdin/stdout (for agents that start devgate themselves).
    Stdio {
        /// Who is calling (default: the local OS user, or `local` when http.auth = "none").
        #[arg(long)]
        user: Option<String>,
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
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Create a key for a user and print it (once).
    Create {
        /// The devgate user the key authenticates as.
        user: String,
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

/// `--since`: an RFC 3339 time or an age before now, as a Unix time.
fn parse_since(text: &str, now: i64) -> anyhow::Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp());
    }
    let (number, unit) = text.split_at(text.trim_end_matches(char::is_alphabetic).len());
    let n: i64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("--since `{text}`: give a time such as 2026-11-23T10:00:00Z or an age such as 30m, 2h, 7d"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("--since `{text}`: the age's unit must be s, m, h or d"),
    };
    Ok(now - n * seconds)
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

/// Who the terminal commands and stdio act for by default. With `http.auth = "none"` every HTTP
/// caller is [`ANONYMOUS_USER`] (the sandbox's user too), so they act for that user as well; otherwise
/// for the local OS user.
fn default_user(config: &Config) -> String {
    if config.http.auth == devgate::config::HttpAuth::None {
        devgate::identity::ANONYMOUS_USER.to_string()
    } else {
        local_user()
    }
}

/// A Unix time as people read it, in UTC: `2026-11-23 10:00:05 UTC`.
fn human_time(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| at.to_string())
}

/// A Unix time in RFC 3339, for JSON output.
fn rfc3339(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| at.to_string())
}

/// How far a time is from now, roughly: `in 59 min`, `2 h ago`.
fn relative_time(at: i64, now: i64) -> String {
    let secs = (at - now).abs();
    let amount = match secs {
        0..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs / 60),
        7200..172_800 => format!("{} h", secs / 3600),
        _ => format!("{} days", secs / 86_400),
    };
    if at >= now {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Sandbox {
            listen,
            buddy,
            bitbucket,
            write_config,
            state_dir,
            select,
        } => {
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
                },
                &catalog,
            )
            .await
            .map_err(anyhow::Error::msg)?;
            print_sandbox_banner(&sandbox);
            shutdown_signal().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Stdio { user, select } => {
            let (config, catalog) = load_checked(&cli, select)?;
            let app = App::build(config, &catalog, false)
                .await
                .map_err(anyhow::Error::msg)?;
            let user = user.clone().unwrap_or_else(|| default_user(&app.config));
            let _pages = serve_pages_for_stdio(&app).await;
            tracing::info!(user = %user, tools = app.gateway.tools().len(), "serving MCP on stdio");
            stdio::serve(app.gateway.clone(), user, app.pending.clone())
                .await
                .context("stdio transport")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Http {
            listen,
            stateless,
            select,
        } => {
            let (mut config, catalog) = load_checked(&cli, select)?;
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
        Command::Connect { provider, user } => {
            let (config, catalog) = load_checked(&cli, &ToolSelection::default())?;
            let app = App::build(config, &catalog, true)
                .await
                .map_err(anyhow::Error::msg)?;
            let connector = connector_for(&app, &catalog, provider)?;
            let user = user.clone().unwrap_or_else(|| default_user(&app.config));
            let link = connector.link(&user, provider).await?;
            let server = serve_pages_for_stdio(&app).await;
            println!(
                "Open this link in a browser to connect {} for devgate user {user} (valid 10 minutes):\n\n  {}\n",
                connector.title(provider),
                link.url
            );
            if server.is_none() {
                println!(
                    "(devgate is not serving {} itself: keep the devgate that does running.)",
                    app.config.public_url.as_deref().unwrap_or("public_url")
                );
            }
            let before = connector
                .vault()
                .store
                .connection(&user, provider)
                .await?
                .map(|c| c.version);
            loop {
                tokio::select! {
                    () = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
                    () = shutdown_signal() => return Ok(ExitCode::FAILURE),
                }
                let now = connector.vault().store.connection(&user, provider).await?;
                if let Some(c) = now.filter(|c| Some(c.version) != before) {
                    println!(
                        "Connected {} account {} for {user}.",
                        connector.title(provider),
                        c.account
                    );
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
        Command::Disconnect { provider, user } => {
            let (config, catalog) = load_checked(&cli, &ToolSelection::default())?;
            let app = App::build(config, &catalog, true)
                .await
                .map_err(anyhow::Error::msg)?;
            let connector = connector_for(&app, &catalog, provider)?;
            let user = user.clone().unwrap_or_else(|| default_user(&app.config));
            println!("{}", connector.disconnect(&user, provider).await?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { user } => {
            let (mut config, catalog) = load_for_reading(&cli)?;
            // Only reads: no link is made, so any base serves where public_url is unset.
            config
                .public_url
                .get_or_insert_with(|| "http://127.0.0.1:8080".into());
            let app = App::build(config, &catalog, false)
                .await
                .map_err(anyhow::Error::msg)?;
            let user = user.clone().unwrap_or_else(|| default_user(&app.config));
            println!("devgate user: {user}");
            let statuses = match &app.connector {
                Some(c) => c.statuses(&user, false).await?,
                None => Vec::new(),
            };
            for (id, p) in &app.config.providers {
                if !p.uses_oauth() {
                    println!("{id}: configured with a static credential (every user shares it)");
                    continue;
                }
                let Some(s) = statuses.iter().find(|s| &s.provider == id) else {
                    continue;
                };
                let mut line = format!("{id}: {}", s.state.replace('_', " "));
                if let Some(account) = &s.account {
                    line.push_str(&format!(" as {account}"));
                }
                if !s.scopes.is_empty() {
                    line.push_str(&format!("; scopes: {}", s.scopes.join(" ")));
                }
                match s.expires_at {
                    Some(at) => {
                        let now = devgate::vault::now();
                        let verb = if at >= now { "expires" } else { "expired" };
                        line.push_str(&format!(
                            "; token {verb} {} ({})",
                            relative_time(at, now),
                            human_time(at)
                        ))
                    }
                    None if s.account.is_some() => line.push_str("; token does not expire"),
                    None => {}
                }
                if let Some(d) = &s.detail {
                    line.push_str(&format!(" ({d})"));
                }
                if s.state != "connected" {
                    line.push_str(&format!(" — run `devgate connect {id}`"));
                }
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit {
            user,
            since,
            limit,
            format,
        } => {
            let config = store_config(&cli)?;
            let vault = devgate::app::open_vault(&config)
                .await
                .map_err(anyhow::Error::msg)?;
            let now = devgate::vault::now();
            let since = match since {
                Some(s) => parse_since(s, now)?,
                None => 0,
            };
            let records = vault
                .store
                .audit(user.as_deref(), since, (*limit).max(1))
                .await?;
            match format {
                AuditFormat::Json => {
                    let mut rows = serde_json::to_value(&records)?;
                    for (row, r) in rows.as_array_mut().into_iter().flatten().zip(&records) {
                        row["at"] = rfc3339(r.at).into();
                    }
                    println!("{}", serde_json::to_string_pretty(&rows)?)
                }
                AuditFormat::Text => {
                    for r in &records {
                        let at = human_time(r.at);
                        println!(
                            "{at}  {}  {}  {}  {} ms  [{}]  request {}",
                            r.user, r.tool, r.outcome, r.duration_ms, r.target, r.request_id
                        );
                    }
                    if records.is_empty() {
                        eprintln!("no calls recorded for this selection");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { action } => {
            let config = store_config(&cli)?;
            let vault = devgate::app::open_vault(&config)
                .await
                .map_err(anyhow::Error::msg)?;
            match action {
                KeysAction::Create { user } => {
                    let (key, row) = devgate::identity::new_api_key(user);
                    vault.store.put_api_key(&row).await?;
                    eprintln!(
                        "API key {} for {user} (shown once; send it as Authorization: Bearer <key>):",
                        row.id
                    );
                    println!("{key}");
                }
                KeysAction::List { user } => {
                    let keys = match user {
                        Some(u) => vault.store.api_keys(u).await?,
                        None => vault.store.all_api_keys().await?,
                    };
                    for k in &keys {
                        println!("{}  {}  created {}", k.id, k.user, human_time(k.created_at));
                    }
                    if keys.is_empty() {
                        eprintln!(
                            "no API keys{}",
                            user.as_ref()
                                .map(|u| format!(" for {u}"))
                                .unwrap_or_default()
                        );
                    }
                }
                KeysAction::Revoke { user, id } => {
                    if vault.store.revoke_api_key(user, id).await? {
                        println!("revoked {id}");
                    } else {
                        eprintln!("{user} has no key {id}");
                        return Ok(ExitCode::FAILURE);
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Tools {
            format,
            all,
            stats,
            select,
        } => {
            let catalog = load_catalog(cli.tools_dir.as_deref())?;
            let mut config = if *all {
                Config::default()
            } else {
                Config::load(cli.config.as_deref())?
            };
            select.apply(&mut config)?;
            let problems = config.tool_problems(&catalog);
            if !problems.is_empty() {
                bail!(
                    "{} has problems:\n  {}",
                    select.origin(&config),
                    problems.join("\n  ")
                );
            }
            // Without providers (or with --all), the whole catalog: every provider as if configured.
            let whole = *all || config.providers.is_empty();
            if whole {
                for p in &catalog.providers {
                    config.providers.insert(
                        p.spec.id.clone(),
                        devgate::config::ProviderConfig {
                            token: Some(devgate::config::Secret::new("catalog")),
                            ..Default::default()
                        },
                    );
                }
            }
            if *stats {
                let stats = ToolStats::measure(&config, &catalog).await?;
                match format {
                    ToolsFormat::Md => print!("{}", stats.markdown(&config, whole)),
                    ToolsFormat::Json => println!("{}", serde_json::to_string_pretty(&stats)?),
                }
                return Ok(ExitCode::SUCCESS);
            }
            let tools: Vec<_> = catalog
                .providers
                .iter()
                .flat_map(|p| p.tools.iter())
                .filter(|t| is_offered(&config, &catalog, t))
                .collect();
            match format {
                ToolsFormat::Md => print!("{}", devgate::catalog::docs::markdown(&catalog, &tools)),
                ToolsFormat::Json => println!("{}", devgate::catalog::docs::json(&tools)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { select } => {
            // Every problem in one run: the catalogs', the config's (unset variables, unknown keys, bad
            // values, then what the settings mean together), and the store's.
            let mut problems = Vec::new();
            let catalog = load_catalog(cli.tools_dir.as_deref())
                .map_err(|e| problems.push(e.to_string()))
                .ok();
            let (config, load_problems) = Config::load_all(cli.config.as_deref());
            problems.extend(load_problems.iter().map(ToString::to_string));
            let origin = match &config {
                Some(c) => select.origin(c),
                None => "the configuration".to_string(),
            };
            if let Some(mut config) = config {
                if let Err(e) = select.apply(&mut config) {
                    problems.push(e.to_string());
                }
                for warning in &config.warnings {
                    eprintln!("warning: {warning}");
                }
                if let Some(catalog) = &catalog {
                    for warning in config.retired_names(catalog) {
                        eprintln!("warning: {warning}");
                    }
                    problems.extend(config.validate(catalog));
                    if problems.is_empty() {
                        let needs_store = config.providers.values().any(|p| p.uses_oauth());
                        match App::build(config.clone(), catalog, needs_store).await {
                            Err(e) => problems.push(e),
                            Ok(app) => {
                                // What an agent's tools/list holds, built-in tools included.
                                let tools = app.gateway.tools();
                                let builtin = tools
                                    .iter()
                                    .any(|t| t.name == devgate::gateway::CONNECTIONS_TOOL);
                                println!(
                                    "{}: ok ({} tools offered{})",
                                    config.origin,
                                    tools.len(),
                                    if builtin {
                                        format!(", {} included", devgate::gateway::CONNECTIONS_TOOL)
                                    } else {
                                        String::new()
                                    }
                                );
                                return Ok(ExitCode::SUCCESS);
                            }
                        }
                    }
                }
            }
            eprintln!("{origin} has problems:");
            for p in problems {
                eprintln!("  {p}");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// What an agent receives for a config (`devgate tools --stats`), measured as the JSON devgate sends.
#[derive(Debug, serde::Serialize)]
struct ToolStats {
    tools: usize,
    /// Bytes of the `tools/list` result.
    bytes: usize,
    approx_tokens: usize,
    bytes_per_tool: usize,
    /// Bytes of the server instructions as a JSON string (sent once per session, in `initialize`).
    instructions_bytes: usize,
    /// Largest first.
    toolsets: Vec<ToolsetStat>,
    /// Largest first.
    per_tool: Vec<ToolStat>,
    /// The MCP version the sizes are for (the newest with an `initialize` handshake).
    #[serde(skip)]
    protocol_version: String,
}

#[derive(Debug, serde::Serialize)]
struct ToolsetStat {
    name: String,
    tools: usize,
    bytes: usize,
    approx_tokens: usize,
}

#[derive(Debug, serde::Serialize)]
struct ToolStat {
    name: String,
    toolset: String,
    bytes: usize,
    approx_tokens: usize,
}

/// A rough token count for JSON text: a quarter of its bytes, rounded up.
fn approx_tokens(bytes: usize) -> usize {
    bytes.div_ceil(4)
}

/// A directory removed when dropped.
struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl ToolStats {
    /// Builds the gateway a session with this config talks to, the way `devgate stdio` does, and
    /// serializes its `tools/list` result and instructions. With OAuth providers (which add
    /// `devgate_connections`) it opens a throwaway store, so measuring never touches the real one.
    async fn measure(config: &Config, catalog: &Catalog) -> anyhow::Result<Self> {
        let mut config = config.clone();
        let mut _scratch = None;
        if config.providers.values().any(|p| p.uses_oauth()) {
            let dir = std::env::temp_dir().join(format!("devgate-stats-{}", std::process::id()));
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            config.store.url = format!("sqlite://{}", dir.join("devgate.db").display());
            config
                .public_url
                .get_or_insert_with(|| "http://127.0.0.1:8080".into());
            _scratch = Some(ScratchDir(dir));
        }
        let app = App::build(config, catalog, false)
            .await
            .map_err(anyhow::Error::msg)?;
        // What the MCP server answers, shaped as rmcp shapes it for the version a session negotiates
        // in the `initialize` handshake (agents today): before 2026-07-28 without `resultType` and
        // without non-object output schemas; from 2026-07-28 (no handshake) with cache hints.
        let server = devgate::mcp::McpServer::new(
            app.gateway.clone(),
            devgate::mcp::Caller::Fixed("devgate-stats".into()),
            app.pending.clone(),
        );
        let info = rmcp::ServerHandler::get_info(&server);
        let version = rmcp::ServerHandler::supported_protocol_versions(&server)
            .iter()
            .filter(|v| v.has_initialize())
            .max_by(|a, b| a.as_str().cmp(b.as_str()))
            .cloned()
            .unwrap_or(info.protocol_version.clone());
        let mut result = ServerResult::ListToolsResult(ListToolsResult::with_all_items(
            app.gateway.tools().as_ref().clone(),
        ));
        if version.as_str() >= ProtocolVersion::V_2026_07_28.as_str() {
            result.fill_missing_cache_hints();
        } else {
            result.strip_result_type_for_legacy_peer();
            result.strip_non_object_output_for_legacy_peer();
        }
        let ServerResult::ListToolsResult(result) = result else {
            unreachable!("a tools/list result stays one")
        };
        let bytes = serde_json::to_vec(&result)?.len();
        let instructions_bytes = serde_json::to_vec(&info.instructions.unwrap_or_default())?.len();
        let listed = &result.tools;
        let toolset_of: std::collections::HashMap<&str, &str> = catalog
            .providers
            .iter()
            .flat_map(|p| p.tools.iter())
            .map(|t| (t.name.as_str(), t.spec.toolset.as_str()))
            .collect();
        let mut per_tool = Vec::new();
        for tool in listed.iter() {
            let size = serde_json::to_vec(tool)?.len();
            per_tool.push(ToolStat {
                name: tool.name.to_string(),
                toolset: toolset_of
                    .get(tool.name.as_ref())
                    .copied()
                    .unwrap_or("devgate")
                    .to_string(),
                bytes: size,
                approx_tokens: approx_tokens(size),
            });
        }
        per_tool.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
        let mut sets: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
        for t in &per_tool {
            let entry = sets.entry(t.toolset.as_str()).or_default();
            entry.0 += 1;
            entry.1 += t.bytes;
        }
        let mut toolsets: Vec<ToolsetStat> = sets
            .into_iter()
            .map(|(name, (tools, bytes))| ToolsetStat {
                name: name.to_string(),
                tools,
                bytes,
                approx_tokens: approx_tokens(bytes),
            })
            .collect();
        toolsets.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
        Ok(Self {
            tools: per_tool.len(),
            bytes,
            approx_tokens: approx_tokens(bytes),
            bytes_per_tool: bytes.checked_div(per_tool.len()).unwrap_or(0),
            instructions_bytes,
            toolsets,
            per_tool,
            protocol_version: version.to_string(),
        })
    }

    fn markdown(&self, config: &Config, whole: bool) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let source = if whole {
            "the whole catalog (no provider configured)".to_string()
        } else {
            config.origin.clone()
        };
        let _ = writeln!(
            out,
            "## What the offered tools cost an agent\n\n{source}; toolsets: {}; read-only: {}; \
as sent to an MCP {} client.\n",
            config.tools.toolsets.join(", "),
            if config.tools.read_only { "yes" } else { "no" },
            self.protocol_version,
        );
        let total = self.bytes + self.instructions_bytes;
        let _ = writeln!(
            out,
            "| Sent | Bytes | ≈ Tokens |\n|---|---:|---:|\n\
| `tools/list`: {} tools, {} bytes per tool | {} | {} |\n\
| Server instructions (once, in `initialize`) | {} | {} |\n\
| Total | {total} | {} |\n",
            self.tools,
            self.bytes_per_tool,
            self.bytes,
            self.approx_tokens,
            self.instructions_bytes,
            approx_tokens(self.instructions_bytes),
            approx_tokens(total),
        );
        let _ = writeln!(
            out,
            "≈ tokens = bytes / 4, rounded up: a rough rule for JSON; the agent's own tokenizer decides.\n"
        );
        let _ = writeln!(
            out,
            "### By toolset\n\n| Toolset | Tools | Bytes | ≈ Tokens |\n|---|---:|---:|---:|"
        );
        for t in &self.toolsets {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                t.name, t.tools, t.bytes, t.approx_tokens
            );
        }
        let _ = writeln!(
            out,
            "\n### By tool\n\n| Tool | Toolset | Bytes | ≈ Tokens |\n|---|---|---:|---:|"
        );
        for t in &self.per_tool {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} |",
                t.name, t.toolset, t.bytes, t.approx_tokens
            );
        }
        out
    }
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
    );
}

fn connector_for<'a>(
    app: &'a App,
    catalog: &Catalog,
    provider: &str,
) -> anyhow::Result<&'a Connector> {
    if catalog.provider(provider).is_none() {
        let mut known: Vec<&str> = catalog
            .providers
            .iter()
            .map(|p| p.spec.id.as_str())
            .collect();
        known.sort_unstable();
        bail!(
            "unknown provider `{provider}` (known: {})",
            known.join(", ")
        );
    }
    match &app.connector {
        Some(c) if c.handles(provider) => Ok(c),
        _ => bail!(
            "providers.{provider} is not configured with an OAuth client (client_id + client_secret)"
        ),
    }
}

/// Serves the connect and confirm pages on `public_url` when it is a loopback address and free, so a
/// link given to a stdio agent (or printed by `devgate connect`) works without a separate `devgate http`.
/// Like `devgate http`, it answers only to the allowed `Host` names and caps request bodies at
/// `limits.max_request_bytes`. Where another process serves `public_url`, confirm links point there only
/// if this process keeps confirmations in a store that process can share; otherwise no confirm page is
/// offered.
async fn serve_pages_for_stdio(app: &App) -> Option<CancellationToken> {
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
    let mut router = devgate::transport::confirm_pages::router(
        devgate::transport::confirm_pages::ConfirmPages {
            confirmations: confirmations.clone(),
            secure,
        },
    );
    if let Some(connector) = app.connector.clone() {
        router = router.merge(devgate::transport::pages::router(
            devgate::transport::pages::Pages { connector, secure },
        ));
    }
    let allowed = std::sync::Arc::new(http::allowed_hosts(&app.config, &addr));
    let router = router
        .layer(axum::middleware::from_fn_with_state(
            allowed,
            devgate::transport::pages::check_host,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(
            app.config.limits.max_request_bytes,
        ));
    confirmations.serve_pages_at(public_url);
    let token = CancellationToken::new();
    let stop = token.clone();
    tokio::spawn(async move {
        let _ = http::serve(listener, router, stop).await;
    });
    Some(token)
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

#[cfg(test)]
mod tests {
    use super::{Cli, parse_since, relative_time};
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

    #[test]
    fn relative_times_read_naturally() {
        assert_eq!(relative_time(1_000 + 3599, 1_000), "in 59 min");
        assert_eq!(relative_time(1_000 - 30, 1_000), "30 s ago");
        assert_eq!(relative_time(1_000 + 3 * 86_400, 1_000), "in 3 days");
    }

    #[test]
    fn since_takes_a_time_or_an_age() {
        assert_eq!(
            parse_since("2026-11-23T10:00:00Z", 0).unwrap(),
            1_795_428_000
        );
        assert_eq!(parse_since("2h", 10_000).unwrap(), 10_000 - 7200);
        assert_eq!(
            parse_since("7d", 1_000_000).unwrap(),
            1_000_000 - 7 * 86_400
        );
        assert!(parse_since("yesterday", 0).is_err());
        assert!(parse_since("5w", 0).is_err());
    }
}
