//! Streamable HTTP: `/mcp` (rmcp's service, stateful or stateless) behind caller authentication, the
//! connect and confirm pages, `/.well-known/oauth-protected-resource` and `/healthz`, on axum, served by
//! hyper.
//! A browser gets a page at `/` and a hint at `/mcp` ([`pages::home`], [`pages::mcp_hint`]).
//!
//! `auth = "none"` (no caller authentication) is only allowed where nobody else can reach devgate: a
//! loopback listen address, `public_url` and `http.allowed_hosts` ([`check_exposure`]); rmcp's Host check
//! rejects DNS-rebinding requests. Stateful sessions belong to their user and are capped
//! ([`super::sessions`]).
//!
//! [`serve_limited`] runs hyper's HTTP/1 connections itself rather than through `axum::serve`, which has
//! no timeouts: headers must arrive within `limits.header_timeout_ms` (also the idle limit of a kept-alive
//! connection), a body within `limits.body_timeout_ms`, at most `limits.max_connections` are open (more
//! wait in the listen backlog), and accepted sockets set `TCP_NODELAY`. With `connection_threads` above
//! one (`devgate http`'s default: one per core), accepted connections are served by
//! [`ConnectionThreads`], each a thread with its own single-threaded runtime and its own upstream
//! connections (`provider::keep_own_connections`).

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::TcpListener;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, HttpAuth, LimitsConfig};
use crate::gateway::Gateway;
use crate::identity::{AuthLayer, authenticate, resource_metadata};
use crate::mcp::{Caller, McpServer, PendingElicitations};
use crate::transport::confirm_pages::{self, ConfirmPages};
use crate::transport::json_reply;
use crate::transport::pages::{self, Pages};
use crate::transport::sessions::{self, BoundSessions, Guard, Sessions};

/// How to serve.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub listen: SocketAddr,
    /// No sessions: every request stands alone, so any instance can answer it.
    pub stateless: bool,
}

/// Refuses `auth = "none"` wherever someone other than the local user could reach devgate: a listen
/// address, a `public_url` host or an `http.allowed_hosts` entry that is not loopback. Names each one.
pub fn check_exposure(config: &Config, listen: &SocketAddr) -> Result<(), String> {
    if config.http.auth != HttpAuth::None {
        return Ok(());
    }
    let mut problems = Vec::new();
    if !listen.ip().is_loopback() {
        problems.push(format!(
            "the listen address {listen} is not loopback: listen on 127.0.0.1:{} or [::1]:{}",
            listen.port(),
            listen.port()
        ));
    }
    if let Some(url) = &config.public_url
        && let Some(host) = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
        && !is_loopback_host(&host)
    {
        problems.push(format!(
            "public_url `{url}` names {host}, which is not loopback: use http://127.0.0.1:<port> or remove public_url"
        ));
    }
    for entry in &config.http.allowed_hosts {
        if !is_loopback_host(host_of(entry)) {
            problems.push(format!(
                "http.allowed_hosts has `{entry}`, which is not loopback: remove it"
            ));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(format!(
        "refusing http.auth = \"none\" (no caller authentication) where other machines could reach devgate:\n  {}\nKeep all of these on loopback, or set http.auth = \"api_key\" (keys from `devgate keys create <user>`) or \"jwt\".",
        problems.join("\n  ")
    ))
}

/// The host of an `allowed_hosts` entry, which may carry a port (`localhost:8080`, `[::1]:8080`).
fn host_of(entry: &str) -> &str {
    if entry.parse::<IpAddr>().is_ok() {
        return entry;
    }
    match entry.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => entry,
    }
}

/// `localhost` or a loopback address (`127.0.0.0/8`, `::1`, bracketed or not).
fn is_loopback_host(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.trim_end_matches('.').eq_ignore_ascii_case("localhost"),
    }
}

/// Host header values accepted on `/mcp`: loopback names, the listen address, the public URL's host and
/// any configured extras.
pub fn allowed_hosts(config: &Config, listen: &SocketAddr) -> Vec<String> {
    let mut hosts: Vec<String> = vec![
        "localhost".into(),
        "127.0.0.1".into(),
        "::1".into(),
        "[::1]".into(),
    ];
    hosts.push(listen.ip().to_string());
    hosts.push(listen.to_string());
    if let Some(host) = config
        .public_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(str::to_string))
    {
        hosts.push(host);
    }
    hosts.extend(config.http.allowed_hosts.iter().cloned());
    hosts.sort();
    hosts.dedup();
    hosts
}

/// What the HTTP app serves.
pub struct HttpParts {
    pub gateway: Arc<Gateway>,
    pub pending: Arc<PendingElicitations>,
    pub auth: AuthLayer,
    /// The connect pages, when any provider uses OAuth.
    pub pages: Option<Pages>,
    /// The store, whose answer `/readyz` reports.
    pub store: Arc<dyn crate::vault::Store>,
    /// With `http.auth = "oauth"`: devgate as the authorization server of `/mcp`.
    pub auth_server: Option<Arc<crate::auth_server::AuthServer>>,
}

/// The axum app: `/mcp`, the connect pages, the resource metadata and `/healthz`. Cancelling `sessions`
/// ends every MCP session and request at once: do it after the server stopped (see [`serve_with_grace`]).
pub fn router(
    parts: HttpParts,
    config: &Config,
    options: &HttpOptions,
    sessions: CancellationToken,
) -> Router {
    let rmcp_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(allowed_hosts(config, &options.listen))
        .with_allowed_origins(allowed_origins(config))
        .with_max_request_body_bytes(config.limits.max_request_bytes)
        .with_cancellation_token(sessions)
        .with_legacy_session_mode(!options.stateless)
        .with_json_response(options.stateless);
    let gateway = parts.gateway.clone();
    let pending = parts.pending.clone();
    let factory = move || {
        Ok(McpServer::new(
            gateway.clone(),
            Caller::FromRequest,
            pending.clone(),
        ))
    };
    let mcp = if options.stateless {
        Router::new().nest_service(
            "/mcp",
            StreamableHttpService::new(
                factory,
                Arc::new(NeverSessionManager::default()),
                rmcp_config,
            ),
        )
    } else {
        let limits = &config.limits;
        let sessions = Sessions::new(limits.sessions_per_user, limits.max_sessions);
        let manager = BoundSessions::new(
            sessions.clone(),
            Duration::from_secs(limits.session_idle_secs),
        );
        let guard = Guard {
            sessions,
            gateway: parts.gateway.clone(),
            max_body: limits.max_request_bytes,
        };
        Router::new()
            .nest_service(
                "/mcp",
                StreamableHttpService::new(factory, Arc::new(manager), rmcp_config),
            )
            .layer(axum::middleware::from_fn(json_reply::json_reply))
            .layer(axum::middleware::from_fn_with_state(guard, sessions::guard))
    }
    .layer(axum::middleware::from_fn_with_state(
        crate::auth_server::step_up::StepUp {
            gateway: parts.gateway.clone(),
            metadata_url: parts.auth.metadata_url.clone(),
            max_body: config.limits.max_request_bytes,
        },
        crate::auth_server::step_up::step_up,
    ))
    .layer(axum::middleware::from_fn_with_state(
        parts.auth.clone(),
        authenticate,
    ))
    .layer(axum::middleware::from_fn(session_ended));

    let public = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", options.listen));
    let mut providers: Vec<(String, String)> = parts
        .gateway
        .clients()
        .iter()
        .map(|(id, c)| (id.clone(), c.title().to_string()))
        .collect();
    providers.sort();
    let home = Arc::new(pages::Home {
        mcp_url: format!("{}/mcp", public.trim_end_matches('/')),
        auth: config.http.auth,
        providers: providers.into_iter().map(|(_, title)| title).collect(),
    });
    let mcp = mcp.layer(axum::middleware::from_fn_with_state(
        home.clone(),
        pages::browser_hint,
    ));
    let site = Router::new()
        .route("/", get(move || async move { pages::home(&home) }))
        .route("/docs", get(|| async { pages::docs() }));
    let metadata = axum::Json(resource_metadata(&public, &parts.auth.authenticator));
    let mut app = mcp
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(move || readiness(parts.store.clone())))
        .route(
            "/metrics",
            get(|| async {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    crate::metrics::global().render(),
                )
            }),
        )
        .route(
            "/.well-known/oauth-protected-resource",
            get({
                let m = metadata.clone();
                move || async move { m }
            }),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(move || async move { metadata }),
        );
    // Confirm links of this process point here from now on.
    let confirmations = parts.gateway.confirmations().clone();
    confirmations.serve_pages_at(&public);
    let mut browser = confirm_pages::router(ConfirmPages {
        confirmations,
        secure: public.starts_with("https://"),
    })
    .merge(site);
    if let Some(p) = parts.pages {
        browser = browser.merge(pages::router(p));
    }
    if let Some(server) = parts.auth_server {
        browser = browser.merge(crate::auth_server::router(server));
    }
    // Every page gets the same Host check as `/mcp` (rmcp's covers only `/mcp`).
    let allowed = Arc::new(allowed_hosts(config, &options.listen));
    app = app.merge(browser.layer(axum::middleware::from_fn_with_state(
        allowed,
        pages::check_host,
    )));
    app.layer(axum::extract::DefaultBodyLimit::max(
        config.limits.max_request_bytes,
    ))
    .layer(axum::middleware::from_fn(crate::request_id::assign))
}

/// A session ended by `DELETE` answers 204 No Content. rmcp answers 202, which clients that expect
/// 200 or 204 (the official Python SDK) log as a failed termination.
async fn session_ended(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let delete = request.method() == axum::http::Method::DELETE;
    let mut response = next.run(request).await;
    if delete && response.status() == axum::http::StatusCode::ACCEPTED {
        *response.status_mut() = axum::http::StatusCode::NO_CONTENT;
    }
    response
}

/// `/readyz`: 200 when the store answers within two seconds, else 503 (the cause goes to the log only,
/// since a store error may name hosts an anonymous caller has no business knowing).
async fn readiness(store: Arc<dyn crate::vault::Store>) -> (axum::http::StatusCode, &'static str) {
    match tokio::time::timeout(std::time::Duration::from_secs(2), store.ping()).await {
        Ok(Ok(())) => (axum::http::StatusCode::OK, "ready\n"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: the store failed");
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the store failed\n",
            )
        }
        Err(_) => {
            tracing::warn!("not ready: the store did not answer within 2 s");
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the store did not answer\n",
            )
        }
    }
}

/// Browser origins allowed to call `/mcp` (a request without `Origin` is not a browser's and passes):
/// the public URL's, and loopback on any port. Anything else is a DNS-rebinding or cross-site attempt.
pub fn allowed_origins(config: &Config) -> Vec<String> {
    let mut origins = vec![
        "http://localhost:*".to_string(),
        "http://127.0.0.1:*".to_string(),
        "http://[::1]:*".to_string(),
    ];
    if let Some(origin) = config
        .public_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
        .map(|u| u.origin().ascii_serialization())
        .filter(|o| o != "null")
    {
        origins.push(origin);
    }
    origins
}

/// What each connection and request may take at the edge, before and around authentication.
#[derive(Debug, Clone)]
pub struct EdgeLimits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
    /// Threads that serve accepted connections, each on its own single-threaded runtime
    /// ([`ConnectionThreads`]); 1 serves them on the runtime that accepts.
    pub connection_threads: usize,
}

impl EdgeLimits {
    pub fn new(limits: &LimitsConfig) -> Self {
        Self {
            header_timeout: Duration::from_millis(limits.header_timeout_ms),
            body_timeout: Duration::from_millis(limits.body_timeout_ms),
            max_connections: limits.max_connections.max(1),
            connection_threads: 1,
        }
    }

    /// With `threads` connection threads.
    pub fn with_connection_threads(mut self, threads: usize) -> Self {
        self.connection_threads = threads.max(1);
        self
    }
}

impl Default for EdgeLimits {
    fn default() -> Self {
        Self::new(&LimitsConfig::default())
    }
}

/// Serves with the default [`EdgeLimits`] until `shutdown` is cancelled, then lets in-flight requests
/// finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_limited(listener, app, shutdown, EdgeLimits::default()).await
}

/// Serves HTTP/1 connections within `limits` until `shutdown` is cancelled; then stops accepting, closes
/// idle connections and waits for the others to finish their requests.
pub async fn serve_limited(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
    limits: EdgeLimits,
) -> std::io::Result<()> {
    let app = app.layer(axum::middleware::from_fn_with_state(
        limits.body_timeout,
        body_deadline,
    ));
    let service = TowerToHyperService::new(app);
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let threads = if limits.connection_threads > 1 {
        Some(ConnectionThreads::start(
            limits.connection_threads,
            &service,
            &http1,
        )?)
    } else {
        None
    };
    loop {
        // Take a place before accepting: over the cap, clients wait in the listen backlog instead of
        // being accepted and left unanswered.
        let place = tokio::select! {
            place = open.clone().acquire_owned() => place.expect("the semaphore is never closed"),
            () = shutdown.cancelled() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, or a connection reset while queued: pause, go on.
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        // Otherwise the last small write of each response waits for the client's delayed ACK (~40 ms).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        if let Some(threads) = &threads {
            threads.hand_over(stream, graceful.watcher(), place);
            continue;
        }
        spawn_connection(stream, graceful.watcher(), &http1, &service, move || {
            drop(place)
        });
    }
    drop(listener);
    graceful.shutdown().await;
    drop(threads);
    Ok(())
}

/// An accepted connection on its way to a connection thread, with its place under the connection cap.
struct Accepted {
    stream: std::net::TcpStream,
    watcher: Watcher,
    place: OwnedSemaphorePermit,
    /// The chosen thread's count of open connections, lowered when this one ends.
    open: Arc<AtomicUsize>,
}

/// Threads that serve HTTP connections, each on its own single-threaded tokio runtime, where a
/// multi-threaded runtime served them all. A request's work (hyper's connection task, rmcp's task for
/// the request, the tool call) then stays on one thread from the first byte read to the last written:
/// on a work-stealing runtime those tasks wake each other across workers, and memory allocated on one
/// worker is freed on the other, which cost about half again the CPU of the same request served on one
/// thread (README "Performance"). Each accepted connection goes to the thread with the fewest open.
struct ConnectionThreads {
    queues: Vec<(
        tokio::sync::mpsc::UnboundedSender<Accepted>,
        Arc<AtomicUsize>,
    )>,
}

impl ConnectionThreads {
    /// Starts `count` threads serving `service` with `http1`'s settings. The runtimes are built here,
    /// so a failure is this call's error rather than a thread's.
    fn start(
        count: usize,
        service: &TowerToHyperService<Router>,
        http1: &hyper::server::conn::http1::Builder,
    ) -> std::io::Result<Self> {
        let mut queues = Vec::with_capacity(count);
        for index in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<Accepted>();
            let service = service.clone();
            let http1 = http1.clone();
            std::thread::Builder::new()
                .name(format!("devgate-http-{index}"))
                .spawn(move || {
                    crate::provider::keep_own_connections();
                    runtime.block_on(async move {
                        while let Some(accepted) = receiver.recv().await {
                            serve_accepted(accepted, &http1, &service);
                        }
                    });
                })?;
            queues.push((sender, Arc::new(AtomicUsize::new(0))));
        }
        Ok(Self { queues })
    }

    /// Gives `stream` to the thread with the fewest open connections.
    fn hand_over(
        &self,
        stream: tokio::net::TcpStream,
        watcher: Watcher,
        place: OwnedSemaphorePermit,
    ) {
        // Deregistered from this runtime's reactor; the connection thread registers it with its own.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "could not hand over a connection");
                return;
            }
        };
        let Some((queue, open)) = self
            .queues
            .iter()
            .min_by_key(|(_, open)| open.load(Ordering::Relaxed))
        else {
            return;
        };
        open.fetch_add(1, Ordering::Relaxed);
        let accepted = Accepted {
            stream,
            watcher,
            place,
            open: open.clone(),
        };
        if let Err(lost) = queue.send(accepted) {
            lost.0.open.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!("a connection thread has stopped; closed a connection");
        }
    }
}

/// On a connection thread: serves one accepted connection as a task of this thread's runtime.
fn serve_accepted(
    accepted: Accepted,
    http1: &hyper::server::conn::http1::Builder,
    service: &TowerToHyperService<Router>,
) {
    let Accepted {
        stream,
        watcher,
        place,
        open,
    } = accepted;
    let stream = match tokio::net::TcpStream::from_std(stream) {
        Ok(stream) => stream,
        Err(e) => {
            tracing::warn!(error = %e, "could not take over a connection");
            open.fetch_sub(1, Ordering::Relaxed);
            return;
        }
    };
    spawn_connection(stream, watcher, http1, service, move || {
        open.fetch_sub(1, Ordering::Relaxed);
        drop(place);
    });
}

/// Serves one connection as a task of the current runtime, watched for graceful shutdown; `ended` runs
/// when it is over (giving back its place under the cap).
fn spawn_connection(
    stream: tokio::net::TcpStream,
    watcher: Watcher,
    http1: &hyper::server::conn::http1::Builder,
    service: &TowerToHyperService<Router>,
    ended: impl FnOnce() + Send + 'static,
) {
    let connection = watcher.watch(http1.serve_connection(TokioIo::new(stream), service.clone()));
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "an HTTP connection ended with an error");
        }
        ended();
    });
}

/// Gives a request's body `timeout` from its headers to arrive. One that does not is answered 408 and
/// its connection closed, whatever the handler made of the broken body.
async fn body_deadline(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    if http_body::Body::is_end_stream(request.body()) {
        return next.run(request).await;
    }
    let expired = Arc::new(AtomicBool::new(false));
    let request = request.map(|inner| {
        Body::new(DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            expired: expired.clone(),
        })
    });
    let response = next.run(request).await;
    if expired.load(Ordering::Relaxed) {
        tracing::info!(
            timeout_ms = timeout.as_millis() as u64,
            "a request body did not arrive in time"
        );
        return (
            StatusCode::REQUEST_TIMEOUT,
            [(header::CONNECTION, "close")],
            format!(
                "the request body did not arrive within {} ms\n",
                timeout.as_millis()
            ),
        )
            .into_response();
    }
    response
}

/// A request body that fails once its deadline has passed.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    expired: Arc<AtomicBool>,
}

impl http_body::Body for DeadlineBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.expired.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(axum::Error::new("the request body timed out"))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Like [`serve_limited`], but once `shutdown` fires in-flight requests get at most `grace` to finish;
/// then `sessions` (the router's) is cancelled, ending what is left.
pub async fn serve_with_grace(
    listener: TcpListener,
    app: Router,
    limits: EdgeLimits,
    shutdown: CancellationToken,
    sessions: CancellationToken,
    grace: std::time::Duration,
) -> std::io::Result<()> {
    let server = serve_limited(listener, app, shutdown.clone(), limits);
    tokio::pin!(server);
    let result = tokio::select! {
        result = &mut server => result,
        () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests did not finish in time; exiting");
            Ok(())
        }
    };
    sessions.cancel();
    result
}
