//! `devgate sandbox`: the simulated Buddy and Bitbucket plus a gateway in front of them, on loopback,
//! so a newcomer can point an agent at devgate without any account.
//!
//! The sandbox writes the config it uses to a file, so that `devgate stdio --config <file>` (started by an
//! agent) reaches the same simulated providers while the sandbox runs.
//!
//! Each sandbox has its own state directory (config, database, sealing key): a fresh temporary one
//! unless the user names one, so two sandboxes side by side share nothing. The simulator starts empty
//! every time, so a database an earlier sandbox left in a named directory is started afresh too: its
//! connections hold tokens the new simulator never issued.
//!
//! With `--oauth` the MCP endpoint is OAuth-protected (`http.auth = "oauth"`): a remote client registers
//! itself and its user signs in at the simulated identity provider (ada, bob, cyd). The default stays
//! `auth = "none"`, so the quickstart needs no sign-in.

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::identity::ANONYMOUS_USER;
use crate::sim::oidc::{Idp, login_config_text};
use crate::sim::{
    BITBUCKET_CLIENT_ID, BITBUCKET_CLIENT_SECRET, BUDDY_CLIENT_ID, BUDDY_CLIENT_SECRET, Sim,
};
use crate::transport::http::{self, HttpOptions};

#[derive(Debug)]
pub struct SandboxOptions {
    /// Where the gateway's HTTP transport listens.
    pub listen: SocketAddr,
    /// Where the simulated Buddy and Bitbucket listen.
    pub buddy: SocketAddr,
    pub bitbucket: SocketAddr,
    /// Where to write the config for stdio clients.
    pub config_path: PathBuf,
    /// Where the store and its key go.
    pub state_dir: StateDir,
    /// `--toolsets` and `--read-only`: written to the config's `[tools]`, so stdio clients get them too.
    pub toolsets: Option<Vec<String>>,
    pub read_only: bool,
    /// `--oauth`: `http.auth = "oauth"`, users sign in at the simulated identity provider.
    pub oauth: bool,
}

/// A running sandbox; dropping it stops everything.
pub struct Sandbox {
    pub sim: Sim,
    /// The simulated OpenID Connect provider users sign in with (`[login]` in the written config).
    pub idp: Idp,
    pub mcp_url: String,
    pub config_path: PathBuf,
    pub state_dir: StateDir,
    /// Links that connect the sandbox user to each simulated provider (valid 10 minutes); none with
    /// `--oauth`, where each signed-in user gets their own from the tools.
    pub connect_links: Vec<(String, String)>,
    /// Whether the MCP endpoint is OAuth-protected (`--oauth`).
    pub oauth: bool,
    shutdown: CancellationToken,
}

/// A sandbox's state directory; a temporary one is removed when this is dropped.
#[derive(Debug)]
pub struct StateDir {
    pub path: PathBuf,
    pub temporary: bool,
}

impl StateDir {
    /// A directory the user named (created if missing); kept after the sandbox stops.
    pub fn named(path: PathBuf) -> Self {
        Self {
            path,
            temporary: false,
        }
    }

    /// A new, empty directory under the system temp directory, readable by this user only.
    pub fn fresh() -> Result<Self, String> {
        let base = std::env::temp_dir();
        let mut last = None;
        for _ in 0..8 {
            let path = base.join(format!(
                "devgate-sandbox-{:012x}",
                rand::random::<u64>() >> 16
            ));
            let mut builder = std::fs::DirBuilder::new();
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            match builder.create(&path) {
                Ok(()) => {
                    return Ok(Self {
                        path,
                        temporary: true,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => {
                    return Err(format!(
                        "cannot create a directory in {}: {e}",
                        base.display()
                    ));
                }
            }
        }
        Err(format!(
            "cannot create a directory in {}: {}",
            base.display(),
            last.map(|e| e.to_string()).unwrap_or_default()
        ))
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The store's file in a state directory; with its SQLite companions, removed at start.
const DATABASE: &str = "devgate-sandbox.db";

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The config a sandbox gateway uses: both providers at the sim, users connecting through the sim's
/// OAuth pages, no caller authentication (loopback only), the store next to the config file.
pub fn config_text(sim: &Sim, public_url: &str, store: &str) -> String {
    let bitbucket_origin = sim.bitbucket_url.trim_end_matches("/2.0");
    format!(
        r#"# Written by `devgate sandbox`: both providers point at the simulated APIs on loopback, and users
# connect through the simulated OAuth pages. The sim-… client secrets are the sim's own and are public.
public_url = "{public_url}"

[http]
auth = "none"

[store]
url = "{store}"

[providers.buddy]
api_base = "{buddy}"
client_id = "{BUDDY_CLIENT_ID}"
client_secret = "{BUDDY_CLIENT_SECRET}"
workspace = "acme"

[providers.bitbucket]
api_base = "{bitbucket}"
authorize_url = "{bitbucket_origin}/site/oauth2/authorize"
token_url = "{bitbucket_origin}/site/oauth2/access_token"
client_id = "{BITBUCKET_CLIENT_ID}"
client_secret = "{BITBUCKET_CLIENT_SECRET}"
workspace = "acme"
"#,
        buddy = sim.buddy_url,
        bitbucket = sim.bitbucket_url,
    )
}

/// Starts the sim and the gateway and writes the config file. The gateway has no caller authentication,
/// so it only listens on loopback.
pub async fn start(options: SandboxOptions, catalog: &Catalog) -> Result<Sandbox, String> {
    if !options.listen.ip().is_loopback() {
        return Err(format!(
            "refusing --listen {}: the sandbox serves without caller authentication, so anyone who can reach that address could act as you; use --listen 127.0.0.1:{} (from another machine, reach it through an SSH tunnel)",
            options.listen,
            options.listen.port()
        ));
    }
    let sim = Sim::start_on(options.buddy, options.bitbucket)
        .await
        .map_err(|e| {
            format!(
                "cannot start the simulated providers on {} and {}: {e}",
                options.buddy, options.bitbucket
            )
        })?;
    let idp = Idp::start()
        .await
        .map_err(|e| format!("cannot start the simulated identity provider: {e}"))?;
    let listener = TcpListener::bind(options.listen).await.map_err(|e| {
        format!(
            "cannot listen on {}: {e} (pick another address with --listen)",
            options.listen
        )
    })?;
    let listen = listener.local_addr().map_err(|e| e.to_string())?;
    let public_url = format!("http://{listen}");
    let dir = &options.state_dir.path;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    if let Some(parent) = options
        .config_path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    // The new simulator knows none of an earlier sandbox's tokens: start the store afresh.
    for suffix in ["", "-wal", "-shm"] {
        let file = dir.join(format!("{DATABASE}{suffix}"));
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot remove {}: {e}", file.display())),
        }
    }
    let store = format!("sqlite://{}", dir.join(DATABASE).display());
    let mut text = config_text(&sim, &public_url, &store);
    if options.oauth {
        // devgate is the MCP endpoint's authorization server; users sign in at the simulated IdP.
        text = text.replacen("auth = \"none\"", "auth = \"oauth\"", 1);
    }
    text.push_str(&login_config_text(&idp.issuer));
    let mut tools = toml::Table::new();
    if let Some(sets) = &options.toolsets {
        tools.insert("toolsets".into(), sets.clone().into());
    }
    if options.read_only {
        tools.insert("read_only".into(), true.into());
    }
    if !tools.is_empty() {
        let section = toml::Table::from_iter([("tools".to_string(), tools.into())]);
        text.push('\n');
        text.push_str(&toml::to_string(&section).map_err(|e| e.to_string())?);
    }
    let mut config =
        Config::from_toml(&text, "sandbox", std::iter::empty()).map_err(|e| e.to_string())?;
    config.http.listen = listen.to_string();
    let problems = config.validate(catalog);
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    http::check_exposure(&config, &listen)?;
    std::fs::write(&options.config_path, &text)
        .map_err(|e| format!("cannot write {}: {e}", options.config_path.display()))?;
    let app = App::build(config, catalog, true).await?;
    let mut connect_links = Vec::new();
    if let Some(connector) = app.connector.as_ref().filter(|_| !options.oauth) {
        let mut ids: Vec<&String> = connector.provider_ids().collect();
        ids.sort();
        for id in ids {
            let link = connector
                .link(ANONYMOUS_USER, id)
                .await
                .map_err(|e| e.to_string())?;
            connect_links.push((connector.title(id), link.url));
        }
    }
    let shutdown = CancellationToken::new();
    let options_http = HttpOptions {
        listen,
        stateless: false,
    };
    let router = http::router(
        app.http_parts(listen)?,
        &app.config,
        &options_http,
        shutdown.clone(),
    );
    let token = shutdown.clone();
    let limits = http::EdgeLimits::new(&app.config.limits);
    tokio::spawn(async move {
        if let Err(e) = http::serve_limited(listener, router, token, limits).await {
            tracing::error!(error = %e, "sandbox gateway stopped");
        }
    });
    Ok(Sandbox {
        sim,
        idp,
        mcp_url: format!("{public_url}/mcp"),
        config_path: options.config_path,
        state_dir: options.state_dir,
        connect_links,
        oauth: options.oauth,
        shutdown,
    })
}
