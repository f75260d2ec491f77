//! The HTTP client for one provider: base URL, credentials, timeouts, bounded retries of idempotent
//! GETs, bounded body reads, and redirects kept inside the provider — except, for tools that declare
//! `redirects = "storage"`, one to the provider's long-term storage, fetched without credentials by a
//! second client that reaches only public https hosts (see `storage_target`).
//!
//! A request that changes something is sent exactly once: a 5xx or a timeout after it is reported,
//! never retried, because the change may already have happened.
//!
//! Beside the client: `error.rs` (what can go wrong, and reading a provider's error body once),
//! `body.rs` (bounded body reads, windows of text) and `storage.rs` (which storage redirects to follow).

mod body;
pub(crate) mod error;
mod pool;
pub(crate) mod storage;

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use url::Url;

pub use body::{TextWindow, tail_window};
use body::{read_limited, window};
pub use error::{ClientError, UpstreamError};
use error::{ErrorBody, redact};
use pool::UpstreamClient;
pub use pool::keep_own_connections;

use crate::catalog::{self, Redirects};
use crate::config::{ProviderConfig, UpstreamConfig};
use crate::shape::Reads;
use storage::{
    PublicOnly, RedirectTarget, is_loopback_host, origin_of, redirect_target, storage_target,
};

/// A successful JSON exchange.
#[derive(Debug)]
pub struct JsonReply {
    pub status: StatusCode,
    /// `Value::Null` for an empty body (204).
    pub body: Value,
    /// The `Location` header, resolved against the request URL (a 202's task, a 201's new object).
    pub location: Option<Url>,
}

/// One configured provider, ready to send requests.
pub struct ProviderClient {
    pub catalog: Arc<catalog::Provider>,
    /// The API base without a trailing slash, e.g. `https://api.bitbucket.org/2.0`.
    base: String,
    base_url: Url,
    /// The API client (per connection thread under `devgate http`: see `pool.rs`).
    http: UpstreamClient,
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
    ) -> Result<Self, ClientError> {
        let id = catalog.spec.id.clone();
        let base = config
            .api_base
            .clone()
            .unwrap_or_else(|| catalog.spec.api_base.clone())
            .trim_end_matches('/')
            .to_string();
        let base_url = Url::parse(&base).map_err(|source| ClientError::ApiBase {
            id: id.clone(),
            base: base.clone(),
            source,
        })?;
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
                // Config refuses a provider without credentials; a gateway built only to be listed
                // (`devgate tools --all`) has none, and a call through it would say so.
                _ => (None, Vec::new(), format!("providers.{id}.token")),
            };
        let static_auth = match static_auth {
            Some(value) => Some(
                sensitive(&value).ok_or_else(|| ClientError::UnusableToken { id: id.clone() })?,
            ),
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
        let timeouts = (
            Duration::from_millis(upstream.connect_timeout_ms),
            Duration::from_millis(upstream.timeout_ms),
        );
        let http = UpstreamClient::new(Box::new(move || {
            let allowed = allowed.clone();
            let policy = reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= 5 {
                    attempt.error("too many redirects")
                } else if allowed.contains(&origin_of(attempt.url())) {
                    attempt.follow()
                } else {
                    attempt.stop()
                }
            });
            crate::app::http_client()
                .connect_timeout(timeouts.0)
                .timeout(timeouts.1)
                .redirect(policy)
                .user_agent(concat!("devgate/", env!("CARGO_PKG_VERSION")))
                .build()
        }))
        .map_err(|source| ClientError::Http {
            id: id.clone(),
            source,
        })?;
        let loopback = is_loopback_host(&base_url);
        let mut storage = crate::app::http_client()
            .connect_timeout(timeouts.0)
            .timeout(timeouts.1)
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
        let storage = storage.build().map_err(|source| ClientError::Http {
            id: id.clone(),
            source,
        })?;
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
        let url = self.url(&self.catalog.spec.whoami.path, &[]);
        Ok(self.json(Method::GET, url, None, &auth, None).await?.body)
    }

    /// Where the credential is configured, e.g. `providers.buddy.token`.
    pub fn credential_setting(&self) -> &str {
        &self.credential_setting
    }

    /// An absolute URL for a path (already percent-encoded) and query pairs.
    /// The base's scheme and host were parsed once; only the path is parsed here (a whole parse per
    /// call, host and IDNA included, was a twentieth of devgate's CPU per call).
    pub fn url(&self, path: &str, query: &[(String, String)]) -> Url {
        let mut url = self.base_url.clone();
        url.set_path(&format!(
            "{}{path}",
            self.base_url.path().trim_end_matches('/')
        ));
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// The part of an absolute URL after the API base, if it is inside the API (same origin, under the
    /// base path). Used to turn a provider's `next` link into a cursor and back.
    pub fn relative(&self, absolute: &str) -> Option<String> {
        self.relative_of(&Url::parse(absolute).ok()?)
    }

    /// [`Self::relative`] of a URL already parsed (a parse costs more than the rest of this).
    pub fn relative_of(&self, parsed: &Url) -> Option<String> {
        // Same origin, compared part by part rather than as serialized origins (two strings per
        // call); the base is http(s), so a URL of the same scheme has a tuple origin too.
        let base = &self.base_url;
        if parsed.scheme() != base.scheme()
            || parsed.host() != base.host()
            || parsed.port_or_known_default() != base.port_or_known_default()
        {
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
        self.relative_of(&url).map(|_| url)
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
        // Ask for only what is read, where the provider takes partial-response requests.
        let url = match (&self.catalog.spec.partial_response, reads) {
            (Some(param), Some(reads)) if method == Method::GET => match reads.dot_paths() {
                Some(paths) => with_query(url, param, paths),
                None => url,
            },
            _ => url,
        };
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
                Some(reads) => reads.parse(&bytes).map_err(|e| e.to_string()),
                None => serde_json::from_slice(&bytes).map_err(|e| e.to_string()),
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
            let (id, title, retries) = (self.id(), self.title(), self.upstream.retries);
            crate::call_log::upstream_retry(id, title, &error, tries + 1, retries, wait);
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
            .get()
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
        let required_scopes = spec
            .error_scopes
            .as_deref()
            .map(|path| body.required_scopes(path))
            .unwrap_or_default();
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

/// `url` with `key` set to `value` (in place of any value it had). Plain text work, like
/// [`without_query`]: the query is not decoded, and its other parameters stay as they were written.
fn with_query(mut url: Url, key: &str, value: &str) -> Url {
    let mut query = String::new();
    for pair in other_pairs(url.query().unwrap_or_default(), key) {
        query.push_str(pair);
        query.push('&');
    }
    query.push_str(key);
    query.push('=');
    query.push_str(value);
    url.set_query(Some(&query));
    url
}

/// `link` without its `key` parameter (a partial-response list, which devgate adds to each request
/// itself and which would only lengthen the cursor an agent carries). Plain text work: the link's
/// other parameters stay exactly as the provider wrote them.
pub(crate) fn without_query(link: &str, key: &str) -> String {
    let Some((head, query)) = link.split_once('?') else {
        return link.to_string();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let mut out = String::with_capacity(link.len());
    out.push_str(head);
    for (i, pair) in other_pairs(query, key).enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(pair);
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// The `name=value` pairs of a query, as written, except those named `key`.
fn other_pairs<'a>(query: &'a str, key: &'a str) -> impl Iterator<Item = &'a str> {
    query
        .split('&')
        .filter(move |pair| !pair.is_empty() && pair.split('=').next() != Some(key))
}

#[cfg(test)]
mod query_tests {
    use super::*;

    #[test]
    fn the_partial_response_list_is_set_once_and_left_out_of_links() {
        let set =
            |u: &str| with_query(Url::parse(u).unwrap(), "fields", "values.id,next").to_string();
        assert_eq!(set("https://a/x"), "https://a/x?fields=values.id,next");
        assert_eq!(
            set("https://a/x?pagelen=10&q=state%3D%22OPEN%22"),
            "https://a/x?pagelen=10&q=state%3D%22OPEN%22&fields=values.id,next"
        );
        assert_eq!(
            set("https://a/x?fields=old&page=2"),
            "https://a/x?page=2&fields=values.id,next"
        );
        assert_eq!(
            without_query(
                "https://a/x?pagelen=10&fields=values.id%2Cnext&page=2",
                "fields"
            ),
            "https://a/x?pagelen=10&page=2"
        );
        assert_eq!(
            without_query("https://a/x?fields=a", "fields"),
            "https://a/x"
        );
        assert_eq!(
            without_query("https://a/x?fieldsx=1", "fields"),
            "https://a/x?fieldsx=1"
        );
        assert_eq!(without_query("https://a/x", "fields"), "https://a/x");
    }
}
