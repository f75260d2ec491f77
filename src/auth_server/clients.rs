//! Who the MCP clients are: clients from the config, clients registered at `/register` (RFC 7591), and
//! clients whose id is the https URL of their Client ID Metadata Document, which devgate fetches (https
//! only, public addresses only unless devgate itself is on loopback, at most [`MAX_DOCUMENT_BYTES`]
//! within [`FETCH_TIMEOUT`]) and caches for as long as its `Cache-Control` allows.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use url::Url;

use super::AuthServer;
use super::config::Registration;
use crate::provider::storage::{PublicOnly, storage_target};
use crate::vault::auth::{ClientKind, ClientRow};
use crate::vault::{StoreError, digest, now};

/// A metadata document larger than this is refused.
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024;
/// How long fetching a metadata document may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A cached document is kept at least this long (and at most [`MAX_CACHE_SECS`]), whatever its headers
/// say, so a client cannot make devgate fetch on every request nor pin a copy for ever.
const MIN_CACHE_SECS: i64 = 60;
const MAX_CACHE_SECS: i64 = 24 * 3600;
/// Without caching headers, a document is kept this long.
const DEFAULT_CACHE_SECS: i64 = 3600;

/// A client as the authorization endpoints see it.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    /// SHA-256 of its secret, for a confidential client.
    pub secret_hash: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("unknown client `{0}`: register it first")]
    Unknown(String),
    #[error("the client `{0}` was revoked by an administrator")]
    Revoked(String),
    #[error("the client metadata document at {url} cannot be used: {why}")]
    Document { url: String, why: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether a redirect URI may be registered: an absolute URL without a fragment, https, http on
/// loopback, or an app's private scheme (`com.example.app:/callback`).
pub fn check_redirect_uri(uri: &str) -> Result<(), &'static str> {
    let url = Url::parse(uri).map_err(|_| "is not an absolute URL")?;
    if url.fragment().is_some() {
        return Err("has a fragment (#…)");
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if crate::provider::storage::is_loopback_host(&url) => Ok(()),
        "http" => Err("uses http on a host that is not loopback: use https"),
        "javascript" | "data" | "file" | "blob" | "about" => Err("uses a scheme browsers run"),
        _ => Ok(()),
    }
}

/// A `Cache-Control` header's freshness, clamped: `no-store`/`no-cache` ask for the minimum.
fn cache_secs(headers: &reqwest::header::HeaderMap) -> i64 {
    let Some(value) = headers
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
    else {
        return DEFAULT_CACHE_SECS;
    };
    let mut secs = DEFAULT_CACHE_SECS;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return MIN_CACHE_SECS;
        }
        if let Some(age) = lower.strip_prefix("max-age=")
            && let Ok(age) = age.trim_matches('"').parse::<i64>()
        {
            secs = age;
        }
    }
    secs.clamp(MIN_CACHE_SECS, MAX_CACHE_SECS)
}

#[derive(Deserialize)]
struct Document {
    client_id: String,
    #[serde(default)]
    client_name: Option<String>,
    redirect_uris: Vec<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
}

/// Fetches metadata documents.
pub struct MetadataFetcher {
    http: reqwest::Client,
    /// devgate's own public URL is on loopback (the sandbox, tests): documents on loopback are fine.
    loopback: bool,
}

impl MetadataFetcher {
    pub fn new(loopback: bool) -> Result<Self, String> {
        let mut builder = crate::app::http_client()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        if loopback {
            // Only loopback documents are allowed then (checked before each fetch), served by a test or
            // a local client with a certificate of its own: the same trust as plain http on loopback.
            // reqwest's own TLS set-up, not the shared one (which always verifies).
            builder = builder
                .tls_backend_rustls()
                .tls_danger_accept_invalid_certs(true);
        } else {
            builder = builder.dns_resolver(std::sync::Arc::new(PublicOnly));
        }
        Ok(Self {
            http: builder.build().map_err(|e| e.to_string())?,
            loopback,
        })
    }

    /// Fetches and checks the document at `url`, returning the client row to cache.
    pub async fn fetch(&self, url: &str) -> Result<ClientRow, ClientError> {
        let fail = |why: String| ClientError::Document {
            url: url.to_string(),
            why,
        };
        let parsed = Url::parse(url).map_err(|_| fail("it is not a URL".into()))?;
        if parsed.scheme() != "https" {
            return Err(fail("it is not an https URL".into()));
        }
        if parsed.path() == "/" || parsed.path().is_empty() {
            return Err(fail("the URL has no path".into()));
        }
        let loopback_target = crate::provider::storage::is_loopback_host(&parsed);
        if self.loopback && !loopback_target {
            return Err(fail(
                "devgate runs on loopback and fetches documents from loopback only".into(),
            ));
        }
        storage_target(&parsed, self.loopback).map_err(|why| fail(why.to_string()))?;
        let mut response = self
            .http
            .get(parsed)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                fail(if e.is_timeout() {
                    format!("it did not answer within {} s", FETCH_TIMEOUT.as_secs())
                } else {
                    "it could not be reached (or resolves to a private address)".into()
                })
            })?;
        if !response.status().is_success() {
            return Err(fail(format!(
                "it answered HTTP {}",
                response.status().as_u16()
            )));
        }
        if response
            .content_length()
            .is_some_and(|n| n as usize > MAX_DOCUMENT_BYTES)
        {
            return Err(fail(format!(
                "it is larger than {MAX_DOCUMENT_BYTES} bytes"
            )));
        }
        let cache = cache_secs(response.headers());
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|_| fail("its body did not arrive".into()))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_DOCUMENT_BYTES {
                return Err(fail(format!(
                    "it is larger than {MAX_DOCUMENT_BYTES} bytes"
                )));
            }
        }
        let doc: Document = serde_json::from_slice(&body)
            .map_err(|e| fail(format!("it is not a client metadata document ({e})")))?;
        if doc.client_id != url {
            return Err(fail(format!(
                "its client_id `{}` is not the document's URL",
                doc.client_id
            )));
        }
        if doc.redirect_uris.is_empty() {
            return Err(fail("it lists no redirect_uris".into()));
        }
        for uri in &doc.redirect_uris {
            check_redirect_uri(uri).map_err(|why| fail(format!("redirect URI `{uri}` {why}")))?;
        }
        if let Some(method) = doc.token_endpoint_auth_method.as_deref()
            && method != "none"
        {
            return Err(fail(format!(
                "token_endpoint_auth_method `{method}`: a document can only describe a public client (none)"
            )));
        }
        let host = Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        Ok(ClientRow {
            client_id: url.to_string(),
            kind: ClientKind::Metadata,
            name: doc
                .client_name
                .filter(|n| !n.trim().is_empty())
                .unwrap_or(host),
            redirect_uris: doc.redirect_uris,
            secret_hash: None,
            created_at: now(),
            expires_at: Some(now() + cache),
            revoked_at: None,
        })
    }
}

impl AuthServer {
    /// The client behind an id: from the config, the store, or its metadata document.
    pub async fn client(&self, id: &str) -> Result<Client, ClientError> {
        if let Some(c) = self.config.clients.iter().find(|c| c.client_id == id) {
            return Ok(Client {
                id: c.client_id.clone(),
                name: c.name.clone(),
                redirect_uris: c.redirect_uris.clone(),
                secret_hash: c.client_secret.as_ref().map(|s| digest(s.expose())),
            });
        }
        let stored = self.vault.store.client(id).await?;
        if let Some(row) = &stored
            && row.revoked_at.is_some()
        {
            return Err(ClientError::Revoked(id.to_string()));
        }
        let is_document = id.starts_with("https://") && self.config.metadata_documents;
        let row = match stored {
            Some(row) if row.kind == ClientKind::Dynamic => row,
            Some(row) if is_document && row.expires_at.is_some_and(|t| t > now()) => row,
            _ if is_document => {
                let row = self.fetcher.fetch(id).await?;
                self.vault.store.put_client(&row).await?;
                tracing::info!(client = %id, "fetched a client metadata document");
                row
            }
            _ => return Err(ClientError::Unknown(id.to_string())),
        };
        Ok(Client {
            id: row.client_id,
            name: row.name,
            redirect_uris: row.redirect_uris,
            secret_hash: row.secret_hash,
        })
    }
}

/// What `/register` accepts (RFC 7591 §2; other fields are ignored).
#[derive(Deserialize)]
pub struct RegistrationRequest {
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    client_name: Option<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    grant_types: Option<Vec<String>>,
}

fn registration_error(status: StatusCode, error: &str, description: String) -> Response {
    let mut response = (
        status,
        Json(serde_json::json!({"error": error, "error_description": description})),
    )
        .into_response();
    crate::transport::pages::security_headers(response.headers_mut());
    response
}

/// `POST /register`: RFC 7591 dynamic client registration.
pub async fn register(
    State(server): State<std::sync::Arc<AuthServer>>,
    _headers: HeaderMap,
    body: Result<Json<RegistrationRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if server.config.registration == Registration::Off {
        return registration_error(
            StatusCode::FORBIDDEN,
            "access_denied",
            "dynamic client registration is turned off here (auth_server.registration = \"off\"): ask the administrator to add the client to [[auth_server.clients]], or use a client metadata document".into(),
        );
    }
    let Json(request) = match body {
        Ok(b) => b,
        Err(e) => {
            return registration_error(
                StatusCode::BAD_REQUEST,
                "invalid_client_metadata",
                format!(
                    "the body is not a JSON registration request: {}",
                    e.body_text()
                ),
            );
        }
    };
    if request.redirect_uris.is_empty() {
        return registration_error(
            StatusCode::BAD_REQUEST,
            "invalid_redirect_uri",
            "redirect_uris: list at least one".into(),
        );
    }
    for uri in &request.redirect_uris {
        if let Err(why) = check_redirect_uri(uri) {
            return registration_error(
                StatusCode::BAD_REQUEST,
                "invalid_redirect_uri",
                format!("redirect_uris: `{uri}` {why}"),
            );
        }
    }
    if let Some(grants) = &request.grant_types
        && let Some(other) = grants
            .iter()
            .find(|g| !matches!(g.as_str(), "authorization_code" | "refresh_token"))
    {
        return registration_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            format!("grant_types: `{other}` is not supported (authorization_code, refresh_token)"),
        );
    }
    let method = request
        .token_endpoint_auth_method
        .clone()
        .unwrap_or_else(|| "none".into());
    if !matches!(
        method.as_str(),
        "none" | "client_secret_post" | "client_secret_basic"
    ) {
        return registration_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            format!(
                "token_endpoint_auth_method: `{method}` is not supported (none, client_secret_post, client_secret_basic)"
            ),
        );
    }
    match server.vault.store.dynamic_client_count().await {
        Ok(n) if n >= server.config.max_clients => {
            return registration_error(
                StatusCode::FORBIDDEN,
                "access_denied",
                format!(
                    "this devgate has {n} registered clients, its limit (auth_server.max_clients): ask the administrator to revoke unused ones (`devgate clients revoke`)"
                ),
            );
        }
        Ok(_) => {}
        Err(e) => return server.store_failed(e),
    }
    let client_id = format!("dgcl_{}", super::random_token(16));
    let secret = (method != "none").then(|| format!("dgcs_{}", super::random_token(32)));
    let name = request
        .client_name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| n.chars().take(100).collect::<String>())
        .unwrap_or_else(|| "An unnamed client".into());
    let row = ClientRow {
        client_id: client_id.clone(),
        kind: ClientKind::Dynamic,
        name: name.clone(),
        redirect_uris: request.redirect_uris.clone(),
        secret_hash: secret.as_deref().map(digest),
        created_at: now(),
        expires_at: None,
        revoked_at: None,
    };
    if let Err(e) = server.vault.store.put_client(&row).await {
        return server.store_failed(e);
    }
    tracing::info!(client = %client_id, name = %name, "registered a client");
    let mut body = serde_json::json!({
        "client_id": client_id,
        "client_id_issued_at": row.created_at,
        "client_name": name,
        "redirect_uris": row.redirect_uris,
        "token_endpoint_auth_method": method,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    });
    if let Some(secret) = secret {
        body["client_secret"] = secret.into();
        body["client_secret_expires_at"] = 0.into();
    }
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    crate::transport::pages::security_headers(response.headers_mut());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_https_loopback_http_or_private_schemes() {
        for ok in [
            "https://app.example/cb",
            "http://127.0.0.1:3000/callback",
            "http://localhost/cb",
            "com.example.app:/oauth",
        ] {
            assert!(check_redirect_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://app.example/cb",
            "https://app.example/cb#x",
            "/relative",
            "javascript:alert(1)",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    /// A devgate on a public URL fetches documents from public https addresses only; one on loopback
    /// (tests, the sandbox) from loopback only. Each refusal happens before any connection.
    #[tokio::test]
    async fn documents_on_private_addresses_or_over_http_are_refused() {
        crate::app::install_tls_provider();
        let public = MetadataFetcher::new(false).unwrap();
        for (url, why) in [
            ("https://127.0.0.1:1/client.json", "loopback or private"),
            ("https://10.1.2.3/client.json", "loopback or private"),
            (
                "https://169.254.169.254/latest/client.json",
                "loopback or private",
            ),
            ("https://[fd00::1]/client.json", "loopback or private"),
            ("https://localhost/client.json", "loopback or private"),
            ("http://app.example/client.json", "not an https URL"),
            ("https://app.example/", "no path"),
        ] {
            let err = public.fetch(url).await.unwrap_err().to_string();
            assert!(err.contains(why), "{url}: {err}");
        }
        let local = MetadataFetcher::new(true).unwrap();
        let err = local
            .fetch("https://app.example/client.json")
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("loopback only"), "{err}");
    }

    #[test]
    fn cache_lifetimes_follow_cache_control_within_bounds() {
        let headers = |v: &str| {
            let mut h = reqwest::header::HeaderMap::new();
            h.insert(reqwest::header::CACHE_CONTROL, v.parse().unwrap());
            h
        };
        assert_eq!(
            cache_secs(&reqwest::header::HeaderMap::new()),
            DEFAULT_CACHE_SECS
        );
        assert_eq!(cache_secs(&headers("public, max-age=600")), 600);
        assert_eq!(cache_secs(&headers("max-age=5")), MIN_CACHE_SECS);
        assert_eq!(cache_secs(&headers("max-age=99999999")), MAX_CACHE_SECS);
        assert_eq!(cache_secs(&headers("no-store")), MIN_CACHE_SECS);
    }
}
