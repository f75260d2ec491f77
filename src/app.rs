//! Wiring: from a checked config and catalog to the running parts (gateway, vault, connect flow,
//! HTTP authentication). The commands in the binary and the sandbox build through here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::confirm::Confirmations;
use crate::gateway::{Connections, Gateway, provider_clients};
use crate::identity::{AuthLayer, Authenticator};
use crate::mcp::PendingElicitations;
use crate::oauth::OAuthClient;
use crate::oauth::connect::{ConnectProvider, Connector};
use crate::oauth::tokens::TokenManager;
use crate::transport::http::HttpParts;
use crate::transport::pages::Pages;
use crate::vault::seal::Sealer;
use crate::vault::{Store, Vault, key};

/// Makes ring's primitives the process's rustls provider, once; later calls do nothing. reqwest is built
/// without a provider of its own (Cargo.toml: aws-lc's C build costs minutes) and panics when it builds
/// a client before one is installed: the library's clients come from [`http_client`], and `main`, the
/// test and the bench processes call this for clients built elsewhere (rmcp's, the tests' own).
pub fn install_tls_provider() {
    // An error only says a provider is already installed (by an earlier call, or by the embedder).
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Where every HTTP client of the library starts: a reqwest builder with the TLS provider installed, so
/// no client can be built before it.
pub fn http_client() -> reqwest::ClientBuilder {
    install_tls_provider();
    reqwest::Client::builder()
}

/// The label the cursor MAC key is derived under (see [`crate::vault::seal::Sealer::derive`]).
const CURSOR_KEY_LABEL: &[u8] = b"devgate cursor mac v1";

/// Everything a serving command needs.
pub struct App {
    pub config: Config,
    pub gateway: Arc<Gateway>,
    pub vault: Option<Arc<Vault>>,
    pub connector: Option<Arc<Connector>>,
    pub pending: Arc<PendingElicitations>,
}

/// Opens the store named by the config, runs its migrations and checks the sealing key.
pub async fn open_vault(config: &Config) -> Result<Vault, String> {
    let url = config.store_url();
    // SQLite keeps a key file next to the database when DEVGATE_SECRET_KEY is not set; PostgreSQL,
    // shared by several instances, needs the same key in every instance's environment. Said before
    // connecting, so a missing key is the first thing reported.
    let key_file = crate::vault::sqlite::sqlite_path(&url).map(|db| {
        db.parent()
            .map(|d| d.join(key::KEY_FILE_NAME))
            .unwrap_or_else(|| key::KEY_FILE_NAME.into())
    });
    let env_key = std::env::var(key::ENV_VAR).ok();
    if key_file.is_none() && env_key.is_none() {
        return Err(format!(
            "{} is not set: with a shared store every devgate instance needs the same sealing key (base64, 32 bytes)",
            key::ENV_VAR
        ));
    }
    let store = crate::vault::open_store(&url)
        .await
        .map_err(|e| e.to_string())?;
    // Two processes starting on one new SQLite database can race to apply the same migration; the
    // loser's second attempt finds it applied. (PostgreSQL serialises them with an advisory lock.)
    if store.migrate().await.is_err() {
        tokio::time::sleep(Duration::from_millis(300)).await;
        store.migrate().await.map_err(|e| e.to_string())?;
    }
    let (key, source) =
        key::load_key(env_key, key_file.as_deref(), true).map_err(|e| e.to_string())?;
    let vault = Vault::new(store, Sealer::new(key));
    vault.verify_key().await.map_err(|_| {
        format!(
            "the sealing key ({source:?}) is not the one the store at {} was created with: set DEVGATE_SECRET_KEY to that key, or move the store aside to start over",
            crate::vault::postgres::safe_url(&url)
        )
    })?;
    Ok(vault)
}

/// The scopes a connect link asks `provider` for: those of the tools this config offers, plus those of
/// the tool that reads the account (the catalog's `whoami` path), which the connect flow calls. Nothing a
/// user would grant for no tool. In the catalog's order, each under the name the config's `scopes` use
/// for it (a provider that renamed its scopes accepts either family; the app decides which one).
pub fn requested_scopes(config: &Config, catalog: &Catalog, provider: &str) -> Vec<String> {
    let Some(spec) = catalog.provider(provider) else {
        return Vec::new();
    };
    let whoami = &spec.spec.whoami.path;
    let needed: std::collections::BTreeSet<&str> = spec
        .tools
        .iter()
        .filter(|t| {
            crate::gateway::is_offered(config, catalog, t)
                || (t.spec.method == crate::catalog::Method::Get && &t.spec.path == whoami)
        })
        .flat_map(|t| t.spec.scopes.iter().map(String::as_str))
        .collect();
    let configured = config
        .providers
        .get(provider)
        .and_then(|p| p.scopes.as_deref());
    spec.scopes
        .iter()
        .filter(|s| needed.contains(s.name.as_str()))
        .map(|s| spec.scope_to_request(&s.name, configured).to_string())
        .collect()
}

impl App {
    /// Builds the parts, in one direction: the providers' clients, the vault, users' connections (the
    /// token manager and the connect flow, on those clients), then the gateway over all of them.
    /// `need_store` opens the vault even when no provider uses OAuth (HTTP with API keys needs it).
    pub async fn build(
        config: Config,
        catalog: &Catalog,
        need_store: bool,
    ) -> Result<Self, String> {
        let pending = Arc::new(PendingElicitations::default());
        let api_clients = provider_clients(&config, catalog).map_err(|e| e.to_string())?;
        let oauth: Vec<&String> = config
            .providers
            .iter()
            .filter(|(_, p)| p.uses_oauth())
            .map(|(id, _)| id)
            .collect();
        let vault = if need_store || !oauth.is_empty() {
            Some(Arc::new(open_vault(&config).await?))
        } else {
            None
        };
        let mut connections = None;
        if let (Some(vault), false) = (&vault, oauth.is_empty()) {
            let callback = config
                .callback_url()
                .ok_or("OAuth providers need public_url (the callback is {public_url}/integration-callback)")?;
            let public_url = config.public_url.clone().unwrap_or_default();
            let timeout = Duration::from_millis(config.upstream.timeout_ms);
            let mut clients = HashMap::new();
            let mut providers = HashMap::new();
            for id in oauth {
                let pconf = &config.providers[id];
                let spec = catalog
                    .provider(id)
                    .ok_or_else(|| format!("providers.{id}: unknown provider"))?;
                let client = Arc::new(
                    OAuthClient::new(&spec.spec, pconf, &callback, timeout)
                        .map_err(|e| e.to_string())?,
                );
                let api = api_clients
                    .get(id)
                    .cloned()
                    .ok_or_else(|| format!("providers.{id}: no API client"))?;
                let scopes = requested_scopes(&config, catalog, id);
                clients.insert(id.clone(), client.clone());
                providers.insert(
                    id.clone(),
                    ConnectProvider {
                        client,
                        api,
                        scopes,
                    },
                );
            }
            let c = Arc::new(
                Connector::new(vault.clone(), providers, &public_url)
                    .with_sink(pending.clone())
                    .with_connect_wait(Duration::from_secs(config.oauth.connect_wait_secs)),
            );
            let lease_secs = config
                .oauth
                .refresh_lease_secs
                .unwrap_or(config.upstream.timeout_ms / 1000 + 5);
            let tokens = Arc::new(TokenManager::new(
                vault.clone(),
                clients,
                config.oauth.refresh_margin_secs,
                lease_secs,
            ));
            connections = Some(Connections {
                tokens,
                connector: c,
            });
        }
        let connector = connections.as_ref().map(|c| c.connector.clone());
        let mut gateway = Gateway::new(&config, catalog, api_clients, connections);
        if let Some(vault) = &vault {
            gateway = gateway.with_audit(vault.store.clone());
            // Every instance sharing the store has the same sealing key, so each accepts the cursors
            // the others issued. Without a store, the gateway keeps its random per-process key.
            gateway = gateway.with_cursor_key(vault.derive_key(CURSOR_KEY_LABEL));
        }
        gateway = gateway.with_confirmations(Arc::new(Confirmations::new(vault.clone())));
        if let Some(vault) = &vault {
            let book = crate::gateway::tasks::book::TaskBook::new(vault.clone(), &config.tools);
            gateway = gateway.with_tasks(Arc::new(book));
        }
        Ok(Self {
            config,
            gateway: Arc::new(gateway),
            vault,
            connector,
            pending,
        })
    }

    /// What the HTTP transport serves.
    pub fn http_parts(&self, listen: std::net::SocketAddr) -> Result<HttpParts, String> {
        let store: Arc<dyn Store> = match &self.vault {
            Some(v) => v.store.clone(),
            None => return Err("the HTTP transport needs the store (API keys)".into()),
        };
        let public = self
            .config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{listen}"));
        let authenticator = Arc::new(Authenticator::new(
            self.config.http.auth,
            self.config.http.jwt.as_ref(),
            store.clone(),
            &public,
        )?);
        let auth_server = match (self.config.http.auth, &self.vault) {
            (crate::config::HttpAuth::OAuth, Some(vault)) => Some(Arc::new(
                crate::auth_server::AuthServer::new(
                    self.config.auth_server.clone(),
                    vault.clone(),
                    self.connector.clone(),
                    &public,
                )?
                .with_login(self.config.login.as_ref()),
            )),
            _ => None,
        };
        let metadata_url = format!(
            "{}/.well-known/oauth-protected-resource",
            public.trim_end_matches('/')
        );
        Ok(HttpParts {
            gateway: self.gateway.clone(),
            pending: self.pending.clone(),
            auth: AuthLayer {
                authenticator,
                metadata_url,
            },
            pages: self.connector.clone().map(|connector| Pages {
                connector,
                secure: public.starts_with("https://"),
            }),
            store,
            auth_server,
        })
    }
}
