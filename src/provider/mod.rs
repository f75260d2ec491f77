//! The HTTP client for one provider: base URL, credentials, timeouts, bounded retries of idempotent
//! GETs, bounded body reads, and redirects kept inside the provider — except, for tools that declare
//! `redirects = "storage"`, one to the provider's long-term storage, fetched without credentials by a
//! second client that reaches only public https hosts (see [`storage_target`]).
//!
//! A request that changes something is sent exactly once: a 5xx or a timeout after it is reported,
//! never retried, because the change may already have happened.

pub(crate) mod error;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use url::Url;

pub use error::UpstreamError;
use error::{ErrorBody, redact};

use crate::catalog::{self, Redirects};
use crate::config::{ProviderConfig, UpstreamConfig};
use crate::shape::Reads;

/// A successful JSON exchange.
#[derive(Debug)]
pub struct JsonReply {
    pub status: StatusCode,
    /// `Value::Null` for an empty body (204).
    pub body: Value,
    /// The `Location` header, resolved against the request URL (a 202's task, a 201's new object).
    pub location: Option<Url>,
}

/// A window of a text response.
#[derive(Debug)]
pub struct TextWindow {
    pub text: String,
    /// Where to continue reading, when the text was cut.
    pub next_offset: Option<u64>,
    /// The full size, when the provider said it.
    pub total: Option<u64>,
}

/// One configured provider, ready to send requests.
pub struct ProviderClient {
    pub catalog: Arc<catalog::Provider>,
    /// The API base without a trailing slash, e.g. `https://api.bitbucket.org/2.0`.
    base: String,
    base_url: Url,
    http: reqwest::Client,
    /// For redirects to the provider's storage: never sends credentials, follows only
    /// [`storage_target`]s, and resolves names to public addresses only (unless `loopback`).
    storage: reqwest::Client,
    /// The API base is on loopback (the simulator, tests): storage may then be on loopback too.
    loopback: bool,
    /// The static credential (config `token`, or `email` + `api_token`); `None` when users connect
    /// their own accounts and each call brings its user's token.
    static_auth: Option<HeaderValue>,
    upstream: UpstreamConfig,
    secrets: Vec<String>,
    /// The config settings that hold the credential, for messages (`providers.buddy.token`).
    credential_setting: String,
}

impl std::fmt::Debug for ProviderClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl ProviderClient {
    pub fn new(
        catalog: Arc<catalog::Provider>,
        config: &ProviderConfig,
        upstream: &UpstreamConfig,
    ) -> Result<Self, String> {
        let id = catalog.spec.id.clone();
        let base = config
            .api_base
            .clone()
            .unwrap_or_else(|| catalog.spec.api_base.clone())
            .trim_end_matches('/')
            .to_string();
        let base_url =
            Url::parse(&base).map_err(|e| format!("providers.{id}.api_base `{base}`: {e}"))?;
        let (static_auth, secrets, credential_setting) =
            match (&config.token, &config.email, &config.api_token) {
                (Some(token), _, _) => (
                    Some(format!("Bearer {}", token.expose())),
                    vec![token.expose().to_string()],
                    format!("providers.{id}.token"),
                ),
                (None, Some(email), Some(api_token)) => {
                    use base64::Engine;
                    let pair = base64::engine::general_purpose::STANDARD
                        .encode(format!("{email}:{}", api_token.expose()));
                    (
                        Some(format!("Basic {pair}")),
                        vec![api_token.expose().to_string(), pair],
                        format!("providers.{id}.email and api_token"),
                    )
                }
                _ if config.client_id.is_some() => (
                    None,
                    Vec::new(),
                    format!("your {} connection", catalog.spec.title),
                ),
                _ => return Err(format!("providers.{id}: no credentials configured")),
            };
        let static_auth = match static_auth {
            Some(value) => Some(sensitive(&value).ok_or_else(|| {
                format!("providers.{id}: the token has characters a header cannot carry")
            })?),
            None => None,
        };

        let mut allowed = vec![origin_of(&base_url)];
        allowed.extend(
            catalog
                .spec
                .redirect_hosts
                .iter()
                .map(|h| format!("https://{h}")),
        );
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 {
                attempt.error("too many redirects")
            } else if allowed.contains(&origin_of(attempt.url())) {
                attempt.follow()
            } else {
                attempt.stop()
            }
        });
        crate::app::install_tls_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(upstream.connect_timeout_ms))
            .timeout(Duration::from_millis(upstream.timeout_ms))
            .redirect(policy)
            .user_agent(concat!("devgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("providers.{id}: HTTP client: {e}"))?;
        let loopback = is_loopback_host(&base_url);
        let mut storage = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(upstream.connect_timeout_ms))
            .timeout(Duration::from_millis(upstream.timeout_ms))
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= 3 {
                    attempt.error("too many redirects")
                } else if storage_target(attempt.url(), loopback).is_ok() {
                    attempt.follow()
                } else {
                    attempt.stop()
                }
            }))
            .user_agent(concat!("devgate/", env!("CARGO_PKG_VERSION")));
        if !loopback {
            storage = storage.dns_resolver(Arc::new(PublicOnly));
        }
        let storage = storage
            .build()
            .map_err(|e| format!("providers.{id}: HTTP client: {e}"))?;
        Ok(Self {
            catalog,
            base,
            base_url,
            http,
            storage,
            loopback,
            static_auth,
            upstream: upstream.clone(),
            secrets,
            credential_setting,
        })
    }

    pub fn id(&self) -> &str {
        &self.catalog.spec.id
    }

    pub fn title(&self) -> &str {
        &self.catalog.spec.title
    }

    /// The static credential's header, when the provider is configured with one.
    pub fn static_auth(&self) -> Option<&HeaderValue> {
        self.static_auth.as_ref()
    }

    /// Reads the account a token belongs to (the catalog's `whoami`).
    pub async fn whoami(&self, token: &str) -> Result<Value, UpstreamError> {
        let auth = bearer(token).ok_or_else(|| UpstreamError::Malformed {
            detail: "the provider issued a token a header cannot carry".into(),
        })?;
        let url = self.url(&self.catalog.spec.whoami.path, &[])?;
        Ok(self.json(Method::GET, url, None, &auth, None).await?.body)
    }

    /// Where the credential is configured, e.g. `providers.buddy.token`.
    pub fn credential_setting(&self) -> &str {
        &self.credential_setting
    }

    /// An absolute URL for a path (already percent-encoded) and query pairs.
    pub fn url(&self, path: &str, query: &[(String, String)]) -> Result<Url, UpstreamError> {
        let mut url =
            Url::parse(&format!("{}{path}", self.base)).map_err(|e| UpstreamError::Malformed {
                detail: format!("cannot build a URL: {e}"),
            })?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// The part of an absolute URL after the API base, if it is inside the API (same origin, under the
    /// base path). Used to turn a provider's `next` link into a cursor and back.
    pub fn relative(&self, absolute: &str) -> Option<String> {
        let parsed = Url::parse(absolute).ok()?;
        if origin_of(&parsed) != origin_of(&self.base_url) {
            return None;
        }
        let base_path = self.base_url.path().trim_end_matches('/');
        let rest = parsed.path().strip_prefix(base_path)?;
        if !rest.starts_with('/') {
            return None;
        }
        Some(match parsed.query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest.to_string(),
        })
    }

    /// A relative URL made by [`Self::relative`], back to an absolute one inside the API.
    pub fn absolute(&self, relative: &str) -> Option<Url> {
        if !relative.starts_with('/') || relative.starts_with("//") {
            return None;
        }
        let url = Url::parse(&format!("{}{relative}", self.base)).ok()?;
        self.relative(url.as_str()).map(|_| url)
    }

    /// Sends a request and reads a JSON reply (or nothing, for 204); with `reads`, only those parts of
    /// the reply are kept.
    pub async fn json(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
        auth: &HeaderValue,
        reads: Option<&Reads>,
    ) -> Result<JsonReply, UpstreamError> {
        self.retrying(&method, || async {
            let response = self.send_once(&method, &url, body, auth).await?;
            let status = response.status();
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| response.url().join(l).ok());
            let bytes = read_limited(
                response,
                self.upstream.max_body_bytes,
                self.upstream.timeout_ms,
            )
            .await?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(JsonReply {
                    status,
                    body: Value::Null,
                    location,
                });
            }
            let parsed = match reads {
                Some(reads) => reads.parse(&bytes),
                None => serde_json::from_slice(&bytes),
            };
            let body = parsed.map_err(|e| UpstreamError::Malformed {
                detail: format!("{} sent invalid JSON ({e})", self.title()),
            })?;
            Ok(JsonReply {
                status,
                body,
                location,
            })
        })
        .await
    }

    /// Sends a GET and reads a window of its text: `cap` bytes from `offset`, without reading further.
    /// With `lines`, the body is JSON and the text is that array of lines joined by newlines. The text
    /// may come from the provider's storage when `redirects` allows it, under the same caps.
    pub async fn text(
        &self,
        url: Url,
        offset: u64,
        cap: usize,
        lines: Option<&str>,
        auth: &HeaderValue,
        redirects: Redirects,
    ) -> Result<TextWindow, UpstreamError> {
        self.retrying(&Method::GET, || {
            self.text_once(&url, offset, cap, lines, auth, redirects)
        })
        .await
    }

    async fn text_once(
        &self,
        url: &Url,
        offset: u64,
        cap: usize,
        lines: Option<&str>,
        auth: &HeaderValue,
        redirects: Redirects,
    ) -> Result<TextWindow, UpstreamError> {
        let mut response = self.get_following(url, auth, redirects).await?;
        if let Some(path) = lines {
            let bytes = read_limited(
                response,
                self.upstream.max_body_bytes,
                self.upstream.timeout_ms,
            )
            .await?;
            let json: Value =
                serde_json::from_slice(&bytes).map_err(|e| UpstreamError::Malformed {
                    detail: format!("{} sent invalid JSON ({e})", self.title()),
                })?;
            let joined = crate::shape::pointer(&json, path)
                .and_then(Value::as_array)
                .map(|lines| {
                    lines
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .unwrap_or_default();
            return Ok(window(
                joined.as_bytes(),
                offset,
                cap,
                Some(joined.len() as u64),
            ));
        }
        let total = response.content_length();
        let mut skipped: u64 = 0;
        let mut kept = BytesMut::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(e))?
        {
            let mut chunk = &chunk[..];
            if skipped < offset {
                let skip = ((offset - skipped) as usize).min(chunk.len());
                skipped += skip as u64;
                chunk = &chunk[skip..];
            }
            kept.extend_from_slice(chunk);
            if kept.len() > cap + 4 {
                break;
            }
        }
        // Offsets in the window are relative to what was kept, which starts at `offset`.
        let mut w = window(&kept, 0, cap, total);
        w.next_offset = w.next_offset.map(|end| offset + end);
        Ok(w)
    }

    /// Sends a GET and keeps only the last `lines` lines of its text (at most `cap` bytes), reading the
    /// body through once with a bounded buffer however long it is.
    pub async fn text_tail(
        &self,
        url: Url,
        lines: usize,
        cap: usize,
        auth: &HeaderValue,
        redirects: Redirects,
    ) -> Result<TextWindow, UpstreamError> {
        self.retrying(&Method::GET, || async {
            let mut response = self.get_following(&url, auth, redirects).await?;
            let mut kept = BytesMut::new();
            let mut total: u64 = 0;
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| self.transport_error(e))?
            {
                total += chunk.len() as u64;
                kept.extend_from_slice(&chunk);
                if kept.len() > 2 * cap {
                    let excess = kept.len() - cap;
                    let _ = kept.split_to(excess);
                }
            }
            Ok(tail_window(&kept, lines, cap, total))
        })
        .await
    }

    /// Runs `attempt` (one request and the reading of its answer) and, for GETs, runs it again on
    /// transient failures — a refused or reset connection, a timeout, 429, 5xx, a body that broke off —
    /// with backoff and jitter, honouring `Retry-After`. Anything else runs once.
    async fn retrying<T, F, Fut>(&self, method: &Method, mut attempt: F) -> Result<T, UpstreamError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, UpstreamError>>,
    {
        let retry = method == Method::GET;
        let mut tries = 0;
        loop {
            let mut error = match attempt().await {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            tracing::debug!(provider = self.id(), %method, error = %error, attempt = tries, "upstream failed");
            let wait = if retry && error.is_transient() && tries < self.upstream.retries {
                self.backoff(tries, &error)
            } else {
                None
            };
            let Some(wait) = wait else {
                error.set_retries(tries);
                return Err(error);
            };
            tokio::time::sleep(wait).await;
            tries += 1;
        }
    }

    /// Sends one GET; a redirect that leaves the API leads to the provider's storage when `redirects`
    /// allows it (and the target passes [`storage_target`]), which is fetched without credentials.
    async fn get_following(
        &self,
        url: &Url,
        auth: &HeaderValue,
        redirects: Redirects,
    ) -> Result<reqwest::Response, UpstreamError> {
        if redirects != Redirects::Storage {
            return self.send_once(&Method::GET, url, None, auth).await;
        }
        let response = self.send_raw(&Method::GET, url, None, auth).await?;
        if !response.status().is_redirection() {
            return Ok(response);
        }
        match redirect_target(&response) {
            RedirectTarget {
                location: Some(location),
                ..
            } => self.fetch_storage(&location, auth).await,
            RedirectTarget { origin, .. } => Err(UpstreamError::Redirect {
                target: origin,
                why: "the provider named no place to go".into(),
            }),
        }
    }

    /// Fetches what a redirect to the provider's storage points at: no `Authorization` (a pre-signed URL
    /// carries its own; storage refuses both), the target checked first, errors without the URL (its
    /// query is the signature).
    async fn fetch_storage(
        &self,
        location: &Url,
        auth: &HeaderValue,
    ) -> Result<reqwest::Response, UpstreamError> {
        storage_target(location, self.loopback).map_err(|why| UpstreamError::Redirect {
            target: origin_of(location),
            why: why.into(),
        })?;
        let started = std::time::Instant::now();
        let sent = self.storage.get(location.clone()).send().await;
        crate::metrics::global().upstream(self.id(), started.elapsed().as_secs_f64());
        let origin = origin_of(location);
        match sent {
            Ok(response) if response.status().is_success() => {
                tracing::debug!(provider = self.id(), storage = %origin, status = response.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "upstream storage");
                Ok(response)
            }
            Ok(response) if response.status().is_redirection() => Err(UpstreamError::Redirect {
                target: redirect_target(&response).origin,
                why: "storage sent devgate on to a place storage cannot be".into(),
            }),
            Ok(response) => match self.status_error(response, auth).await {
                UpstreamError::Status {
                    status,
                    message,
                    retry_after,
                    retries,
                    required_scopes,
                    fields,
                } => Err(UpstreamError::Status {
                    status,
                    message: format!("its storage at {origin} said: {message}"),
                    retry_after,
                    retries,
                    required_scopes,
                    fields,
                }),
                other => Err(other),
            },
            Err(e) => Err(self.transport_error(e.without_url())),
        }
    }

    /// Sends one request; a non-success status is an error carrying the provider's message.
    async fn send_once(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
        auth: &HeaderValue,
    ) -> Result<reqwest::Response, UpstreamError> {
        let response = self.send_raw(method, url, body, auth).await?;
        if response.status().is_redirection() {
            return Err(UpstreamError::Redirect {
                target: redirect_target(&response).origin,
                why: "it leads outside the provider's API".into(),
            });
        }
        Ok(response)
    }

    /// Sends one request; a redirect the client did not follow (it leaves the API) comes back as it is.
    async fn send_raw(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
        auth: &HeaderValue,
    ) -> Result<reqwest::Response, UpstreamError> {
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .header(AUTHORIZATION, auth.clone())
            .header(ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.json(body);
        } else if method != Method::GET && method != Method::DELETE {
            // Bitbucket answers 411 to a bodiless POST/PUT without a length.
            request = request.header(reqwest::header::CONTENT_LENGTH, "0");
        }
        let started = std::time::Instant::now();
        let sent = request.send().await;
        crate::metrics::global().upstream(self.id(), started.elapsed().as_secs_f64());
        match sent {
            Ok(response) if response.status().is_success() => {
                tracing::debug!(provider = self.id(), %method, status = response.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "upstream");
                Ok(response)
            }
            Ok(response) if response.status().is_redirection() => Ok(response),
            Ok(response) => Err(self.status_error(response, auth).await),
            Err(e) => Err(self.transport_error(e)),
        }
    }

    /// How long to wait before the next attempt; `None` when the provider asks for longer than we wait.
    fn backoff(&self, attempt: u32, error: &UpstreamError) -> Option<Duration> {
        if let UpstreamError::Status {
            retry_after: Some(secs),
            ..
        } = error
        {
            let ms = secs.saturating_mul(1000);
            return (ms <= self.upstream.max_retry_after_ms).then(|| Duration::from_millis(ms));
        }
        let ceiling = self
            .upstream
            .backoff_ms
            .saturating_mul(1 << attempt.min(10));
        Some(Duration::from_millis(rand::random_range(
            ceiling / 2..=ceiling.max(1),
        )))
    }

    /// The provider's error answer, scrubbed of the configured credential and of the one this request
    /// carried (`auth`: a user's OAuth access token), so an error body that echoes it never reaches a
    /// log, an audit record or the agent.
    async fn status_error(&self, response: reqwest::Response, auth: &HeaderValue) -> UpstreamError {
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body = read_limited(response, 64 * 1024, self.upstream.timeout_ms)
            .await
            .unwrap_or_default();
        let spec = &self.catalog.spec;
        let mut secrets = self.secrets.clone();
        secrets.extend(error::credential_secrets(auth));
        // Scrubbed before it is parsed and the message is cut to length, so a token across the cut
        // leaves no prefix; parsed once for the message, the required scopes and the rejected fields.
        let body = ErrorBody::parse(redact(&String::from_utf8_lossy(&body), &secrets));
        let required_scopes = body.required_scopes();
        let fields = spec
            .error_fields
            .as_deref()
            .map(|path| body.rejected_fields(path))
            .unwrap_or_default();
        let message = redact(
            &body.message(&spec.error_message, &spec.error_detail),
            &secrets,
        );
        UpstreamError::Status {
            status,
            message,
            retry_after,
            retries: 0,
            required_scopes,
            fields: fields.iter().map(|f| redact(f, &secrets)).collect(),
        }
    }

    fn transport_error(&self, e: reqwest::Error) -> UpstreamError {
        if e.is_timeout() {
            return UpstreamError::Timeout {
                timeout_ms: self.upstream.timeout_ms,
                retries: 0,
            };
        }
        if e.is_redirect() {
            return UpstreamError::Redirect {
                target: e.url().map(origin_of).unwrap_or_default(),
                why: "too many redirects".into(),
            };
        }
        // reqwest's Display includes the URL, which holds no secret (credentials go in headers).
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            detail = format!("{detail}: {s}");
            source = s.source();
        }
        UpstreamError::Connection {
            detail: redact(&detail, &self.secrets),
            retries: 0,
        }
    }
}

/// A header value marked sensitive, so it is never printed.
fn sensitive(value: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(value).ok()?;
    v.set_sensitive(true);
    Some(v)
}

/// `Authorization: Bearer <token>`, marked sensitive.
pub fn bearer(token: &str) -> Option<HeaderValue> {
    sensitive(&format!("Bearer {token}"))
}

fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// Where a redirect leads: the whole URL (for following it) and its origin (all an error names).
struct RedirectTarget {
    location: Option<Url>,
    origin: String,
}

fn redirect_target(response: &reqwest::Response) -> RedirectTarget {
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|l| response.url().join(l).ok());
    let origin = location
        .as_ref()
        .map(origin_of)
        .unwrap_or_else(|| "an unknown place".into());
    RedirectTarget { location, origin }
}

/// Whether devgate follows a provider's redirect to `target` as its long-term storage, and if not, why:
/// https only, no credentials in the URL, and no loopback, private or otherwise non-public address —
/// unless the provider's own API base is on loopback (`loopback`: the simulator and tests), when a
/// loopback target is fine, over http too. Names are checked again when resolved ([`PublicOnly`]).
pub fn storage_target(target: &Url, loopback: bool) -> Result<(), &'static str> {
    if !target.username().is_empty() || target.password().is_some() {
        return Err("the URL carries credentials");
    }
    let local = is_loopback_host(target);
    match target.scheme() {
        "https" => {}
        "http" if loopback && local => {}
        _ => return Err("storage is reached over https only"),
    }
    if loopback && local {
        return Ok(());
    }
    match target.host() {
        Some(url::Host::Ipv4(ip)) if !is_public(IpAddr::V4(ip)) => {
            Err("it is a loopback or private address")
        }
        Some(url::Host::Ipv6(ip)) if !is_public(IpAddr::V6(ip)) => {
            Err("it is a loopback or private address")
        }
        Some(url::Host::Domain(name)) if name == "localhost" || name.ends_with(".localhost") => {
            Err("it is a loopback or private address")
        }
        Some(_) => Ok(()),
        None => Err("it names no host"),
    }
}

/// Whether a URL's host is loopback (`127.0.0.0/8`, `::1`, `localhost`).
fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name == "localhost" || name.ends_with(".localhost"),
        None => false,
    }
}

/// Whether an address is reachable on the public internet: not loopback, private, link-local, shared,
/// unspecified, documentation, benchmarking, multicast or reserved (IPv4 inside IPv6 checked as IPv4).
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            // NAT64 (64:ff9b::/96): the IPv4 address in its last 32 bits decides.
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return is_public(IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d)));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8))
        }
    }
}

/// A resolver for the storage client that keeps only public addresses, so a storage name that
/// resolves into the local network is refused, not reached.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!("{host} has no public address").into());
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Reads a body up to `limit` bytes; more is an error, found without reading it all. The body read
/// counts against the client's whole-request timeout, `timeout_ms`, which a stalled body reports.
async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
    timeout_ms: u64,
) -> Result<BytesMut, UpstreamError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(UpstreamError::TooLarge { limit });
    }
    let mut out = BytesMut::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if out.len() + chunk.len() > limit {
                    return Err(UpstreamError::TooLarge { limit });
                }
                out.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(out),
            Err(e) if e.is_timeout() => {
                return Err(UpstreamError::Timeout {
                    timeout_ms,
                    retries: 0,
                });
            }
            Err(e) => {
                return Err(UpstreamError::Connection {
                    detail: format!("the body broke off: {e}"),
                    retries: 0,
                });
            }
        }
    }
}

/// The last `lines` lines of `bytes` (a trailing newline does not count as a line), within `cap` bytes.
pub fn tail_window(bytes: &[u8], lines: usize, cap: usize, total: u64) -> TextWindow {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut start = body.len();
    let mut seen = 0;
    while start > 0 && seen < lines {
        start -= 1;
        if body[start] == b'\n' {
            seen += 1;
            if seen == lines {
                start += 1;
                break;
            }
        }
    }
    if body.len() - start > cap {
        start = body.len() - cap;
    }
    while start < body.len() && (body[start] & 0xC0) == 0x80 {
        start += 1;
    }
    TextWindow {
        text: String::from_utf8_lossy(&body[start..]).into_owned(),
        next_offset: None,
        total: Some(total),
    }
}

/// Cuts `cap` bytes out of `bytes` from `offset`, on UTF-8 character boundaries.
fn window(bytes: &[u8], offset: u64, cap: usize, total: Option<u64>) -> TextWindow {
    let mut start = (offset as usize).min(bytes.len());
    // An offset in the middle of a character moves forward to the next character.
    while start < bytes.len() && (bytes[start] & 0xC0) == 0x80 {
        start += 1;
    }
    let mut end = (start + cap).min(bytes.len());
    while end > start && end < bytes.len() && (bytes[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    let text = String::from_utf8_lossy(&bytes[start..end]).into_owned();
    TextWindow {
        text,
        next_offset: (end < bytes.len()).then_some(end as u64),
        total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_take_the_last_lines() {
        let log = b"one\ntwo\nthree\nfour\n";
        assert_eq!(tail_window(log, 2, 1000, 19).text, "three\nfour");
        assert_eq!(tail_window(log, 10, 1000, 19).text, "one\ntwo\nthree\nfour");
        assert_eq!(tail_window(log, 2, 3, 19).text, "our");
    }

    #[test]
    fn storage_is_public_https_unless_the_api_itself_is_on_loopback() {
        let url = |u: &str| Url::parse(u).unwrap();
        let ok = |u: &str, loopback: bool| storage_target(&url(u), loopback).is_ok();
        let signed = "https://bbuseruploads.s3.amazonaws.com/logs/1?X-Amz-Signature=abc";
        assert!(ok(signed, false) && ok(signed, true));
        for refused in [
            "http://bbuseruploads.s3.amazonaws.com/logs/1",
            "https://127.0.0.1/logs/1",
            "https://localhost:9000/logs/1",
            "https://10.1.2.3/logs/1",
            "https://192.168.0.10/logs/1",
            "https://172.16.5.4/logs/1",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/x",
            "https://0.0.0.0/x",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://[fe80::1]/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://[64:ff9b::a00:1]/x",
            "https://user:pass@bbuseruploads.s3.amazonaws.com/x",
            "ftp://bbuseruploads.s3.amazonaws.com/x",
        ] {
            assert!(!ok(refused, false), "{refused} must be refused");
        }
        assert!(
            ok("https://[64:ff9b::808:808]/x", false),
            "NAT64 of a public address"
        );
        // With the API on loopback (the sim), storage on loopback is fine, over http too; private
        // addresses elsewhere and plain http to other hosts still are not.
        assert!(ok("http://127.0.0.1:41000/step-logs/x", true));
        assert!(ok("https://localhost/x", true));
        assert!(!ok("http://10.1.2.3/x", true));
        assert!(!ok("https://10.1.2.3/x", true));
        assert!(!ok("http://bbuseruploads.s3.amazonaws.com/x", true));
    }

    #[tokio::test]
    async fn storage_names_resolve_to_public_addresses_only() {
        use reqwest::dns::Resolve;
        let name = |n: &str| n.parse::<reqwest::dns::Name>().unwrap();
        let refused = PublicOnly.resolve(name("localhost")).await;
        assert!(refused.is_err(), "localhost resolves to loopback only");
    }

    #[test]
    fn windows_respect_character_boundaries() {
        let text = "ab€cd".as_bytes(); // € is 3 bytes at 2..5
        let w = window(text, 0, 3, None);
        assert_eq!(w.text, "ab");
        assert_eq!(w.next_offset, Some(2));
        let w = window(text, 3, 10, None);
        assert_eq!(w.text, "cd");
        assert_eq!(w.next_offset, None);
    }
}
