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
/// no client can be built before it, and the process's one TLS configuration ([`tls_config`]).
pub fn http_client() -> reqwest::ClientBuilder {
    install_tls_provider();
    reqwest::Client::builder().tls_backend_preconfigured(tls_config())
}

/// TLS as reqwest would set it up (ring, TLS 1.2 and 1.3, HTTP/1.1 by ALPN, the system's roots), built
/// once per process. reqwest's own set-up reads the system's root certificates for every client it
/// builds; with `SSL_CERT_DIR` pointing at a hashed directory that is hundreds of files per client, and
/// reading them for the clients devgate builds was over half of its start-up (start to `tools/list`
/// answered: 22-30 ms, 8-13 ms without, on a 2-core VM). Here they are read once, by a thread of their
/// own, while devgate starts; a handshake that comes first waits for them.
fn tls_config() -> rustls::ClientConfig {
    static CONFIG: std::sync::OnceLock<rustls::ClientConfig> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let roots = Arc::new(SystemRoots {
                provider: provider.clone(),
                verifier: std::sync::OnceLock::new(),
            });
            let warm = roots.clone();
            // If the thread cannot start, the first handshake reads them instead.
            let _ = std::thread::Builder::new()
                .name("tls-roots".into())
                .spawn(move || drop(warm.verifier()));
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring offers TLS 1.2 and 1.3")
                .dangerous()
                .with_custom_certificate_verifier(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            config
        })
        .clone()
}

/// The platform's certificate verifier, made when first needed: its roots are read from disk then.
#[derive(Debug)]
struct SystemRoots {
    provider: Arc<rustls::crypto::CryptoProvider>,
    verifier: std::sync::OnceLock<Result<rustls_platform_verifier::Verifier, rustls::Error>>,
}

impl SystemRoots {
    fn verifier(&self) -> Result<&rustls_platform_verifier::Verifier, rustls::Error> {
        self.verifier
            .get_or_init(|| rustls_platform_verifier::Verifier::new(self.provider.clone()))
            .as_ref()
            .map_err(|e| rustls::Error::General(format!("the system's root certificates: {e}")))
    }
}

impl rustls::client::danger::ServerCertVerifier for SystemRoots {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.verifier()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    /// A self-signed certificate for `localhost` and its P-256 key, made for this test alone.
    const CERT: &str = "MIIBpzCCAU2gAwIBAgIUdAk7M0aiX3EVfJTPKjO5/Uqk9OMwCgYIKoZIzj0EAwIwFDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTIwMjAxNTcyNloYDzIxMjYxMTA4MDE1NzI2WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARd/aIl8xnPIix837a0d2vP6Xs1WfqOHj/3jhhPmGzqxwTGB2hAxQTEBNBmIX8Vh5SbZUx38Zpzb+apSo0Gnf/Qo3sweTAdBgNVHQ4EFgQUDjqtYS9uXU+Gm4P7gRUsP0qWa7YwHwYDVR0jBBgwFoAUDjqtYS9uXU+Gm4P7gRUsP0qWa7YwFAYDVR0RBA0wC4IJbG9jYWxob3N0MAwGA1UdEwEB/wQCMAAwEwYDVR0lBAwwCgYIKwYBBQUHAwEwCgYIKoZIzj0EAwIDSAAwRQIhANg9gT95VqSnRtQ3OU6j2FmOaMh9cJ+hz1M2YOUup3jEAiBz7sfkjFHqT/wdhfd4S25yAHUHDTor2f7r5/aaoYgeRg==";
    const KEY: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgkrFlOxEdeE88/TOYxjbye3em5TgbxTY3HbDb52Wc8H6hRANCAARd/aIl8xnPIix837a0d2vP6Xs1WfqOHj/3jhhPmGzqxwTGB2hAxQTEBNBmIX8Vh5SbZUx38Zpzb+apSo0Gnf/Q";

    /// The TLS set-up every upstream client shares still checks certificates against the system's
    /// roots: a server with a certificate none of them signed is refused during the handshake.
    #[tokio::test]
    async fn upstream_clients_refuse_a_certificate_no_system_root_signed() {
        super::install_tls_provider();
        let cert = CertificateDer::from(STANDARD.decode(CERT).unwrap());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(STANDARD.decode(KEY).unwrap()));
        let server = Arc::new(
            rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(vec![cert], key)
                .unwrap(),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((stream, _)) = listener.accept() {
                let connection = rustls::ServerConnection::new(server).unwrap();
                let mut tls = rustls::StreamOwned::new(connection, stream);
                let _ = std::io::Read::read(&mut tls, &mut [0; 64]);
            }
        });

        let client = super::http_client()
            .resolve("localhost", address)
            .build()
            .unwrap();
        let error = client
            .get(format!("https://localhost:{}/", address.port()))
            .send()
            .await
            .expect_err("a self-signed certificate is not trusted");
        let mut chain = String::new();
        let mut cause: Option<&dyn std::error::Error> = Some(&error);
        while let Some(e) = cause {
            chain.push_str(&format!("{e} / "));
            cause = e.source();
        }
        assert!(chain.contains("invalid peer certificate"), "{chain}");
    }
}
