//! `devgate sandbox`: the simulated Buddy and Bitbucket plus a gateway in front of them, on loopback,
//! so a newcomer can point an agent at devgate without any account.
//!
//! The sandbox writes the config it uses to a file, so that `devgate stdio --config <file>` (started by an
//! agent) reaches the same simulated providers while the sandbox runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::gateway::Gateway;
use crate::sim::{BITBUCKET_TOKEN, BUDDY_TOKEN, Sim};
use crate::transport::http::{self, HttpOptions};

#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// Where the gateway's HTTP transport listens.
    pub listen: SocketAddr,
    /// Where the simulated Buddy and Bitbucket listen.
    pub buddy: SocketAddr,
    pub bitbucket: SocketAddr,
    /// Where to write the config for stdio clients.
    pub config_path: PathBuf,
}

/// A running sandbox; dropping it stops everything.
pub struct Sandbox {
    pub sim: Sim,
    pub mcp_url: String,
    pub config_path: PathBuf,
    shutdown: CancellationToken,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The config a sandbox gateway uses: both providers at the sim, with the sim's public tokens.
pub fn config_text(sim: &Sim, public_url: &str) -> String {
    format!(
        r#"# Written by `devgate sandbox`: both providers point at the simulated APIs on loopback.
# The sim-… tokens are the simulated providers' own and are public.
public_url = "{public_url}"

[providers.buddy]
api_base = "{buddy}"
token = "{BUDDY_TOKEN}"
workspace = "acme"

[providers.bitbucket]
api_base = "{bitbucket}"
token = "{BITBUCKET_TOKEN}"
workspace = "acme"
"#,
        buddy = sim.buddy_url,
        bitbucket = sim.bitbucket_url,
    )
}

/// Starts the sim and the gateway and writes the config file.
pub async fn start(options: SandboxOptions, catalog: &Catalog) -> Result<Sandbox, String> {
    let sim = Sim::start_on(options.buddy, options.bitbucket)
        .await
        .map_err(|e| {
            format!(
                "cannot start the simulated providers on {} and {}: {e}",
                options.buddy, options.bitbucket
            )
        })?;
    let listener = TcpListener::bind(options.listen).await.map_err(|e| {
        format!(
            "cannot listen on {}: {e} (pick another address with --listen)",
            options.listen
        )
    })?;
    let listen = listener.local_addr().map_err(|e| e.to_string())?;
    let public_url = format!("http://{listen}");
    let text = config_text(&sim, &public_url);
    let mut config =
        Config::from_toml(&text, "sandbox", std::iter::empty()).map_err(|e| e.to_string())?;
    config.http.listen = listen.to_string();
    let problems = config.validate(catalog);
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    if let Some(dir) = options
        .config_path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(&options.config_path, &text)
        .map_err(|e| format!("cannot write {}: {e}", options.config_path.display()))?;
    let gateway = Arc::new(Gateway::new(&config, catalog)?);
    let shutdown = CancellationToken::new();
    let app = http::router(
        gateway,
        &config,
        &HttpOptions {
            listen,
            stateless: false,
        },
        shutdown.clone(),
    );
    let token = shutdown.clone();
    tokio::spawn(async move {
        if let Err(e) = http::serve(listener, app, token).await {
            tracing::error!(error = %e, "sandbox gateway stopped");
        }
    });
    Ok(Sandbox {
        sim,
        mcp_url: format!("{public_url}/mcp"),
        config_path: options.config_path,
        shutdown,
    })
}
