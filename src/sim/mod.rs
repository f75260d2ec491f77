//! Simulated Buddy.Works and Bitbucket Cloud APIs, on loopback.
//!
//! The sim serves every endpoint the catalogs call with seeded data of the real shapes (Bitbucket's
//! `links` bloat, `{uuid}` braces and `next` URLs; Buddy's page-based lists and status values), checks
//! the bearer token, records every request so tests can assert what reached the provider, and has
//! fault knobs (a status N times, a delay, 429 with `Retry-After`). It lives in the crate, not only in
//! the tests, because `devgate sandbox` serves it to new users.
//!
//! Each provider listens on its own port, so the two have different origins as in real life; so does
//! Bitbucket's long-term storage of finished steps' logs ([`bitbucket::storage_router`]).
//! Knobs are reachable in-process ([`SimState`]) and over HTTP under `/_sim/` on either port.
//!
//! Pipeline runs started through the API progress with time (seeded runs never change): each Buddy
//! action / Bitbucket step takes [`SimState::run_step_ms`] (default [`DEFAULT_RUN_STEP_MS`]) on a clock
//! tests move with [`SimState::advance`]; `GET`/`POST /_sim/runs` (`{"step_ms": 50, "advance_ms": 1000}`)
//! do the same over HTTP. Bitbucket merges may take time on the same clock ([`SimState::set_merge_ms`],
//! `{"merge_ms": 5000}`), and are then answered 202 with a task to poll. A run waiting at creation
//! (Buddy `ENQUEUED`, Bitbucket `PENDING`) waits one step first. Runs on one branch per provider fail
//! deterministically, with the error at the end of the failing step's log: Buddy `fix/cart-rounding`
//! (its first test action, e.g. `Unit tests` of `acme/web/build-and-test`), Bitbucket `feature/login` of
//! `acme/api` (step `Test`). See [`buddy`] and [`bitbucket`] for the details.
//!
//! Each provider has two accounts ([`Account`]): the static tokens belong to the first, and the OAuth
//! side ([`oauth`]: consent page, token endpoint, refresh, revoke) issues tokens for either. Every request
//! passes the recorder (recording + faults); API routes then pass the bearer check, which resolves the
//! credential to an [`Account`] and puts it in the request extensions.

pub mod bitbucket;
pub mod buddy;
pub mod oauth;

pub use oauth::Account;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Static tokens the sim accepts unless told otherwise.
pub const BUDDY_TOKEN: &str = "sim-buddy-token";
pub const BITBUCKET_TOKEN: &str = "sim-bitbucket-token";
/// Atlassian email + API token pair the Bitbucket sim accepts as Basic auth.
pub const BITBUCKET_EMAIL: &str = "dev@example.com";
pub const BITBUCKET_API_TOKEN: &str = "sim-atlassian-api-token";

/// The OAuth client registered with the simulated Buddy (client_secret_post: both go in the form body).
pub const BUDDY_CLIENT_ID: &str = "sim-buddy-client";
pub const BUDDY_CLIENT_SECRET: &str = "sim-buddy-client-secret";
/// The OAuth consumer registered with the simulated Bitbucket (HTTP Basic client auth).
pub const BITBUCKET_CLIENT_ID: &str = "sim-bitbucket-consumer";
pub const BITBUCKET_CLIENT_SECRET: &str = "sim-bitbucket-consumer-secret";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Which {
    Buddy,
    Bitbucket,
}

/// One request as the sim received it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recorded {
    pub provider: Which,
    pub method: String,
    /// The path exactly as sent, still percent-encoded.
    pub path: String,
    pub query: Option<String>,
    pub body: Option<Value>,
    /// `Bearer`, `Basic` or `None`: the scheme only, never the credential.
    pub auth: String,
    /// The account the credential belongs to (`mike`, `nina`, `ann`, `ben`), if it is a valid one.
    #[serde(default)]
    pub account: Option<String>,
}

/// One answer the sim gave, kept while [`SimState::keep_answers`] is on: the contract tests
/// (`tests/contract.rs`) validate what the sim answered against the providers' published schemas.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answered {
    pub provider: Which,
    pub method: String,
    /// The path exactly as sent, still percent-encoded.
    pub path: String,
    pub status: u16,
    /// The body, when it was JSON.
    pub body: Option<Value>,
}

/// A fault the sim injects into matching requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fault {
    pub provider: Which,
    /// Matches when the raw request path contains this text.
    #[serde(default)]
    pub path_contains: String,
    #[serde(default)]
    pub method: Option<String>,
    /// How many matching requests it applies to.
    pub times: u32,
    /// Answer with this status instead of the real response.
    #[serde(default)]
    pub status: Option<u16>,
    /// Seconds for a `Retry-After` header.
    #[serde(default)]
    pub retry_after: Option<u64>,
    /// Wait this long before answering.
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// Answer with this raw body (e.g. malformed JSON) instead of the real response.
    #[serde(default)]
    pub body: Option<String>,
    /// Start a 200 answer, then break the connection in the middle of its body.
    #[serde(default)]
    pub reset: bool,
    /// Answer 200 with a JSON body this many bytes long, produced lazily as the client reads it (no
    /// `Content-Length`); [`SimState::streamed_bytes`] counts what was actually sent.
    #[serde(default)]
    pub body_bytes: Option<u64>,
    /// Hold the request until the test calls [`SimState::release_held`].
    #[serde(default)]
    pub hold: bool,
    /// Apply to each matching request with this probability (0..1) instead of always; `times` still
    /// caps how many it hits.
    #[serde(default)]
    pub chance: Option<f64>,
    /// With `status`: the error message repeats the request's `Authorization` header, as a careless
    /// provider might (what devgate must scrub before anyone sees it).
    #[serde(default)]
    pub echo_credential: bool,
}

impl Fault {
    pub fn status(provider: Which, path_contains: &str, status: u16, times: u32) -> Self {
        Self {
            provider,
            path_contains: path_contains.into(),
            method: None,
            times,
            status: Some(status),
            retry_after: None,
            delay_ms: None,
            body: None,
            reset: false,
            body_bytes: None,
            hold: false,
            chance: None,
            echo_credential: false,
        }
    }

    /// A fault that only does something else than a status (reset, huge body, hold).
    pub fn on(provider: Which, path_contains: &str, times: u32) -> Self {
        Self {
            status: None,
            ..Self::status(provider, path_contains, 200, times)
        }
    }

    pub fn delay(provider: Which, path_contains: &str, delay: Duration, times: u32) -> Self {
        Self {
            delay_ms: Some(delay.as_millis() as u64),
            status: None,
            ..Self::status(provider, path_contains, 200, times)
        }
    }
}

/// Shared state of both simulated providers.
pub struct SimState {
    requests: Mutex<Vec<Recorded>>,
    faults: Mutex<Vec<Fault>>,
    buddy_tokens: Mutex<Vec<String>>,
    bitbucket_tokens: Mutex<Vec<String>>,
    oauth: Mutex<oauth::OAuthState>,
    pub buddy: Mutex<buddy::Data>,
    pub bitbucket: Mutex<bitbucket::Data>,
    /// Base URLs as clients reach them (set once the listeners are bound).
    pub buddy_base: Mutex<String>,
    pub bitbucket_base: Mutex<String>,
    /// Bitbucket's long-term log storage, e.g. `http://127.0.0.1:41236`.
    pub storage_base: Mutex<String>,
    /// Bytes of `body_bytes` fault bodies actually sent.
    streamed: std::sync::atomic::AtomicU64,
    /// Requests whose client went away before the answer was ready.
    aborted: std::sync::atomic::AtomicU64,
    /// Requests waiting in a `hold` fault.
    holding: std::sync::atomic::AtomicU64,
    release: tokio::sync::Notify,
    /// Finished GET answers, so a benchmark measures devgate rather than the sim's JSON building.
    answers: Mutex<AnswerCache>,
    /// The clock and pace of runs started through the API.
    runs: Runs,
    /// Answers given while [`SimState::keep_answers`] is on (`None`: off, the default).
    answered: Mutex<Option<Vec<Answered>>>,
}

/// How long one action (Buddy) or step (Bitbucket) of a run started through the API takes by default.
pub const DEFAULT_RUN_STEP_MS: u64 = 1000;

/// The clock runs started through the API progress by: real time since the sim started plus whatever
/// tests added with [`SimState::advance`], so tests move runs on without sleeping. With the wall time
/// at the start it is also the sim's clock ([`SimState::now_ms`]), which stamps every change.
struct Runs {
    started: Instant,
    /// Unix milliseconds when `started` was taken.
    started_unix_ms: u64,
    advanced_ms: AtomicU64,
    step_ms: AtomicU64,
    /// How long a Bitbucket merge takes; above 0 it is answered 202 with a task to poll.
    merge_ms: AtomicU64,
    /// Runs still progressing, per provider (Buddy, Bitbucket). While both are zero, a request pays one
    /// atomic load for all this.
    live: [AtomicUsize; 2],
}

impl Runs {
    fn new() -> Self {
        let started_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self {
            started: Instant::now(),
            started_unix_ms,
            advanced_ms: AtomicU64::new(0),
            step_ms: AtomicU64::new(DEFAULT_RUN_STEP_MS),
            merge_ms: AtomicU64::new(0),
            live: Default::default(),
        }
    }
}

/// The index of a provider in the per-provider arrays here and in [`oauth`]: Buddy 0, Bitbucket 1.
fn slot(which: Which) -> usize {
    match which {
        Which::Buddy => 0,
        Which::Bitbucket => 1,
    }
}

/// Finished GET answers by (provider, account, URI), valid while no write has reached either provider:
/// every non-GET API request bumps `generation`, which empties the cache. The sim's data changes only
/// through such requests and through runs progressing with time, which bump it too when they change
/// something (see [`SimState::progress`], done before every API request while a run progresses), so a
/// cached answer is always the one the handler would give. Bounded: at `ANSWER_CACHE_ENTRIES` it starts
/// over.
#[derive(Default)]
struct AnswerCache {
    generation: u64,
    entries: std::collections::HashMap<(Which, Account, String), CachedAnswer>,
}

#[derive(Clone)]
struct CachedAnswer {
    generation: u64,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

const ANSWER_CACHE_ENTRIES: usize = 4096;
/// Bodies larger than this are not kept (logs and diffs of fault tests); they are rare and cheap to build.
const ANSWER_CACHE_BODY_BYTES: usize = 256 * 1024;

/// Locks a mutex, recovering the data if a panicking test poisoned it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SimState {
    pub fn new() -> Arc<Self> {
        let runs = Runs::new();
        let now = runs.started_unix_ms;
        Arc::new(Self {
            requests: Mutex::default(),
            faults: Mutex::default(),
            buddy_tokens: Mutex::new(vec![BUDDY_TOKEN.into()]),
            bitbucket_tokens: Mutex::new(vec![BITBUCKET_TOKEN.into()]),
            oauth: Mutex::new(oauth::OAuthState::new()),
            buddy: Mutex::new(buddy::Data::seed(now)),
            bitbucket: Mutex::new(bitbucket::Data::seed(now)),
            buddy_base: Mutex::default(),
            bitbucket_base: Mutex::default(),
            storage_base: Mutex::default(),
            streamed: Default::default(),
            aborted: Default::default(),
            holding: Default::default(),
            release: tokio::sync::Notify::new(),
            answers: Mutex::default(),
            runs,
            answered: Mutex::default(),
        })
    }

    /// The sim's clock, in Unix milliseconds: the time the sim started plus [`SimState::run_clock_ms`],
    /// so today's time, moving in real time and with [`SimState::advance`]. Changes are stamped with it.
    pub fn now_ms(&self) -> u64 {
        self.runs
            .started_unix_ms
            .saturating_add(self.run_clock_ms())
    }

    /// The run clock in milliseconds: time since the sim started plus every [`SimState::advance`].
    pub fn run_clock_ms(&self) -> u64 {
        let real = u64::try_from(self.runs.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        real.saturating_add(self.runs.advanced_ms.load(Ordering::SeqCst))
    }

    /// Moves the run clock forward (without sleeping) and brings every progressing run up to date.
    /// `advance(Duration::ZERO)` only does the latter, for tests that read [`SimState::buddy`] or
    /// [`SimState::bitbucket`] directly.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.runs.advanced_ms.fetch_add(ms, Ordering::SeqCst);
        self.progress(Which::Buddy);
        self.progress(Which::Bitbucket);
    }

    /// How long each action / step of a run started from now on takes (runs keep the pace they started
    /// with). At least 1 ms. Default: [`DEFAULT_RUN_STEP_MS`].
    pub fn set_run_step_ms(&self, ms: u64) {
        self.runs.step_ms.store(ms.max(1), Ordering::SeqCst);
    }

    pub fn run_step_ms(&self) -> u64 {
        self.runs.step_ms.load(Ordering::SeqCst)
    }

    /// How long a Bitbucket merge takes on the run clock. 0 (the default) merges at once (200); longer
    /// merges are answered 202 with a task-status URL, as Bitbucket answers merges that outlast its wait.
    pub fn set_merge_ms(&self, ms: u64) {
        self.runs.merge_ms.store(ms, Ordering::SeqCst);
    }

    pub fn merge_ms(&self) -> u64 {
        self.runs.merge_ms.load(Ordering::SeqCst)
    }

    /// Runs of the provider started through the API that are still queued or running (as of the last
    /// request or [`SimState::advance`]).
    pub fn live_runs(&self, which: Which) -> usize {
        self.runs.live[slot(which)].load(Ordering::SeqCst)
    }

    /// Handlers call this with the data lock held after changing runs (creating, stopping, retrying…).
    pub(crate) fn set_live_runs(&self, which: Which, live: usize) {
        self.runs.live[slot(which)].store(live, Ordering::SeqCst);
    }

    /// Brings the provider's progressing runs up to the run clock. Cheap when none progresses (one atomic
    /// load); when a run changed, cached answers are dropped, since a GET would now answer differently.
    fn progress(&self, which: Which) {
        if self.runs.live[slot(which)].load(Ordering::SeqCst) == 0 {
            return;
        }
        let now = self.run_clock_ms();
        let changed = match which {
            Which::Buddy => {
                let mut data = lock(&self.buddy);
                let (changed, live) = data.progress(now);
                self.set_live_runs(which, live);
                changed
            }
            Which::Bitbucket => {
                let mut data = lock(&self.bitbucket);
                let (changed, live) = data.progress(now);
                self.set_live_runs(which, live);
                changed
            }
        };
        if changed {
            lock(&self.answers).invalidate();
        }
    }

    /// Bytes of huge fault bodies the sim actually sent.
    pub fn streamed_bytes(&self) -> u64 {
        self.streamed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Requests abandoned by their client while the sim was still working on them.
    pub fn aborted_requests(&self) -> u64 {
        self.aborted.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Requests currently waiting in a `hold` fault.
    pub fn held_requests(&self) -> u64 {
        self.holding.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Lets every held request go on.
    pub fn release_held(&self) {
        self.release.notify_waiters();
    }

    /// Starts (or stops) keeping every answer with its status and JSON body ([`SimState::take_answers`]).
    /// Off by default: buffering each body costs the benchmarks what they measure.
    pub fn keep_answers(&self, on: bool) {
        *lock(&self.answered) = on.then(Vec::new);
    }

    /// The answers kept since the last call, oldest first.
    pub fn take_answers(&self) -> Vec<Answered> {
        lock(&self.answered)
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.requests).clone()
    }

    pub fn clear_requests(&self) {
        lock(&self.requests).clear();
    }

    pub fn add_fault(&self, fault: Fault) {
        lock(&self.faults).push(fault);
    }

    pub fn clear_faults(&self) {
        lock(&self.faults).clear();
    }

    /// Replaces the accepted static bearer tokens of a provider (e.g. to simulate a revoked token).
    /// They act as the provider's first account; tokens issued over OAuth are not affected.
    pub fn set_tokens(&self, provider: Which, tokens: Vec<String>) {
        match provider {
            Which::Buddy => *lock(&self.buddy_tokens) = tokens,
            Which::Bitbucket => *lock(&self.bitbucket_tokens) = tokens,
        }
    }

    fn take_fault(&self, provider: Which, method: &str, path: &str) -> Option<Fault> {
        let mut faults = lock(&self.faults);
        let index = faults.iter().position(|f| {
            f.provider == provider
                && f.times > 0
                && path.contains(&f.path_contains)
                && f.method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method))
        })?;
        if let Some(p) = faults[index].chance
            && rand::random::<f64>() >= p
        {
            return None;
        }
        faults[index].times -= 1;
        let fault = faults[index].clone();
        if faults[index].times == 0 {
            faults.remove(index);
        }
        Some(fault)
    }

    /// Resolves a request's credential to an account: the static tokens (and Bitbucket's email + API
    /// token) are the first account; tokens issued over OAuth are looked up.
    fn resolve(
        &self,
        provider: Which,
        headers: &HeaderMap,
    ) -> Result<oauth::Resolved, oauth::Denied> {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Err(oauth::Denied::Invalid);
        };
        let (scheme, credential) = value.split_once(' ').unwrap_or((value, ""));
        let static_ok = match (provider, scheme) {
            (Which::Buddy, "Bearer") => lock(&self.buddy_tokens).iter().any(|t| t == credential),
            (Which::Bitbucket, "Bearer") => {
                lock(&self.bitbucket_tokens).iter().any(|t| t == credential)
            }
            (Which::Bitbucket, "Basic") => {
                use base64::Engine;
                let expected = base64::engine::general_purpose::STANDARD
                    .encode(format!("{BITBUCKET_EMAIL}:{BITBUCKET_API_TOKEN}"));
                credential == expected
            }
            _ => false,
        };
        if static_ok {
            return Ok(oauth::Resolved {
                account: Account::first(provider),
                scopes: None,
            });
        }
        if scheme != "Bearer" {
            return Err(oauth::Denied::Invalid);
        }
        lock(&self.oauth).access(provider, credential)
    }
}

/// The scheme of a request's `Authorization` header (`Bearer`, `Basic`, …) or `None`.
fn scheme(headers: &HeaderMap) -> String {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map_or("None", |v| v.split_once(' ').map_or(v, |(s, _)| s))
        .to_string()
}

/// A running sim: both providers on loopback.
pub struct Sim {
    pub state: Arc<SimState>,
    /// Buddy API base, e.g. `http://127.0.0.1:41234`.
    pub buddy_url: String,
    /// Bitbucket API base, e.g. `http://127.0.0.1:41235/2.0`.
    pub bitbucket_url: String,
    /// Bitbucket's long-term storage of finished steps' logs, on a port of its own (another origin,
    /// as on Bitbucket), e.g. `http://127.0.0.1:41236`.
    pub storage_url: String,
    shutdown: CancellationToken,
}

impl Sim {
    /// Starts both providers on ephemeral loopback ports.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on(
            "127.0.0.1:0".parse().expect("literal"),
            "127.0.0.1:0".parse().expect("literal"),
        )
        .await
    }

    pub async fn start_on(
        buddy_addr: SocketAddr,
        bitbucket_addr: SocketAddr,
    ) -> std::io::Result<Self> {
        let state = SimState::new();
        let shutdown = CancellationToken::new();
        let buddy_listener = TcpListener::bind(buddy_addr).await?;
        let bitbucket_listener = TcpListener::bind(bitbucket_addr).await?;
        let storage_listener = TcpListener::bind(SocketAddr::new(bitbucket_addr.ip(), 0)).await?;
        let buddy_url = format!("http://{}", buddy_listener.local_addr()?);
        let bitbucket_url = format!("http://{}/2.0", bitbucket_listener.local_addr()?);
        let storage_url = format!("http://{}", storage_listener.local_addr()?);
        *lock(&state.buddy_base) = buddy_url.clone();
        *lock(&state.bitbucket_base) = bitbucket_url.clone();
        *lock(&state.storage_base) = storage_url.clone();

        let buddy_app = with_common(
            buddy::router(),
            oauth::router(Which::Buddy),
            Which::Buddy,
            state.clone(),
        );
        let bitbucket_app = with_common(
            Router::new().nest("/2.0", bitbucket::router()),
            oauth::router(Which::Bitbucket),
            Which::Bitbucket,
            state.clone(),
        );
        // Storage has no bearer check (it takes pre-signed URLs), but its requests are recorded.
        let storage_app = bitbucket::storage_router()
            .layer(middleware::from_fn_with_state(
                (Which::Bitbucket, state.clone()),
                recorder,
            ))
            .with_state(state.clone());
        for (listener, app) in [
            (buddy_listener, buddy_app),
            (bitbucket_listener, bitbucket_app),
            (storage_listener, storage_app),
        ] {
            let token = shutdown.clone();
            tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(token.cancelled_owned())
                    .await;
            });
        }
        Ok(Self {
            state,
            buddy_url,
            bitbucket_url,
            storage_url,
            shutdown,
        })
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Puts a provider together: the API routes behind the bearer check, the OAuth routes open, both
/// behind the recorder (recording + faults), and the `/_sim/` control routes (neither).
fn with_common(
    api: Router<Arc<SimState>>,
    oauth: Router<Arc<SimState>>,
    which: Which,
    state: Arc<SimState>,
) -> Router {
    let control = Router::new()
        .route("/_sim/requests", get(list_requests).delete(clear_requests))
        .route(
            "/_sim/faults",
            axum::routing::post(add_fault).delete(clear_faults),
        )
        .route("/_sim/oauth", get(oauth::get_knobs).post(oauth::post_knob))
        .route("/_sim/runs", get(get_runs).post(post_runs));
    let api = api
        .layer(middleware::from_fn_with_state(
            (which, state.clone()),
            cached,
        ))
        .layer(middleware::from_fn_with_state(
            (which, state.clone()),
            bearer,
        ));
    let served = api.merge(oauth).layer(middleware::from_fn_with_state(
        (which, state.clone()),
        recorder,
    ));
    control.merge(served).with_state(state)
}

async fn list_requests(State(state): State<Arc<SimState>>) -> axum::Json<Vec<Recorded>> {
    axum::Json(state.requests())
}

async fn clear_requests(State(state): State<Arc<SimState>>) -> StatusCode {
    state.clear_requests();
    StatusCode::NO_CONTENT
}

async fn add_fault(
    State(state): State<Arc<SimState>>,
    axum::Json(fault): axum::Json<Fault>,
) -> StatusCode {
    state.add_fault(fault);
    StatusCode::NO_CONTENT
}

async fn clear_faults(State(state): State<Arc<SimState>>) -> StatusCode {
    state.clear_faults();
    StatusCode::NO_CONTENT
}

/// `POST /_sim/runs` bodies: any of the fields (`{"step_ms": 50}`, `{"advance_ms": 3000}`,
/// `{"merge_ms": 5000}`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunsKnob {
    /// [`SimState::set_run_step_ms`].
    #[serde(default)]
    pub step_ms: Option<u64>,
    /// [`SimState::advance`] by this many milliseconds.
    #[serde(default)]
    pub advance_ms: Option<u64>,
    /// [`SimState::set_merge_ms`].
    #[serde(default)]
    pub merge_ms: Option<u64>,
}

async fn post_runs(
    State(state): State<Arc<SimState>>,
    axum::Json(knob): axum::Json<RunsKnob>,
) -> StatusCode {
    if let Some(ms) = knob.step_ms {
        state.set_run_step_ms(ms);
    }
    if let Some(ms) = knob.merge_ms {
        state.set_merge_ms(ms);
    }
    state.advance(Duration::from_millis(knob.advance_ms.unwrap_or(0)));
    StatusCode::NO_CONTENT
}

/// `GET /_sim/runs`: the step length, the run clock and how many runs progress per provider.
async fn get_runs(State(state): State<Arc<SimState>>) -> axum::Json<Value> {
    state.advance(Duration::ZERO);
    axum::Json(json!({
        "step_ms": state.run_step_ms(),
        "merge_ms": state.merge_ms(),
        "clock_ms": state.run_clock_ms(),
        "advanced_ms": state.runs.advanced_ms.load(Ordering::SeqCst),
        "live": {
            "buddy": state.live_runs(Which::Buddy),
            "bitbucket": state.live_runs(Which::Bitbucket),
        },
    }))
}

/// Records the request (form bodies as JSON with secrets redacted) and applies any matching fault.
async fn recorder(
    State((which, state)): State<(Which, Arc<SimState>)>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let method = parts.method.to_string();
    let path = parts.uri.path().to_string();
    let form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let body = if bytes.is_empty() {
        None
    } else if form {
        Some(oauth::redacted_form(&bytes))
    } else {
        serde_json::from_slice(&bytes)
            .ok()
            .map(|v| oauth::redacted_json(v, oauth::is_oauth_path(&path)))
    };
    lock(&state.requests).push(Recorded {
        provider: which,
        method: method.clone(),
        path: path.clone(),
        query: parts.uri.query().map(oauth::redacted_query),
        body,
        auth: scheme(&parts.headers),
        account: state
            .resolve(which, &parts.headers)
            .ok()
            .map(|r| r.account.login().to_string()),
    });
    let mut guard = AbortGuard {
        state: state.clone(),
        done: false,
    };
    let response = apply(&state, which, &method, &path, parts, bytes, next).await;
    let response = if lock(&state.answered).is_some() {
        keep_answer(&state, which, method, path, response).await
    } else {
        response
    };
    guard.done = true;
    response
}

/// Records an answer for [`SimState::take_answers`]; bodies of unknown length (streamed fault bodies) are
/// passed on unread.
async fn keep_answer(
    state: &SimState,
    provider: Which,
    method: String,
    path: String,
    response: Response,
) -> Response {
    use http_body::Body as _;
    if response.body().size_hint().exact().is_none() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let answer = Answered {
        provider,
        method,
        path,
        status: parts.status.as_u16(),
        body: json.then(|| serde_json::from_slice(&bytes).ok()).flatten(),
    };
    if let Some(kept) = lock(&state.answered).as_mut() {
        kept.push(answer);
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Counts a request as aborted when its handling is dropped before it finished (the client went away).
struct AbortGuard {
    state: Arc<SimState>,
    done: bool,
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if !self.done {
            self.state
                .aborted
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// A lazily produced JSON body of `total` bytes, counting what is sent.
fn huge_body(state: Arc<SimState>, total: u64) -> Body {
    const CHUNK: usize = 64 * 1024;
    let stream = futures::stream::unfold(0u64, move |sent| {
        let state = state.clone();
        async move {
            if sent >= total {
                return None;
            }
            let n = (total - sent).min(CHUNK as u64) as usize;
            let mut chunk = vec![b' '; n];
            if sent == 0 {
                chunk[0] = b'[';
            }
            state
                .streamed
                .fetch_add(n as u64, std::sync::atomic::Ordering::SeqCst);
            Some((Ok::<_, std::io::Error>(Bytes::from(chunk)), sent + n as u64))
        }
    });
    Body::from_stream(stream)
}

/// Applies the matching fault, if any, else passes the request on.
async fn apply(
    state: &Arc<SimState>,
    which: Which,
    method: &str,
    path: &str,
    parts: axum::http::request::Parts,
    bytes: Bytes,
    next: Next,
) -> Response {
    if let Some(fault) = state.take_fault(which, method, path) {
        if fault.hold {
            let released = state.release.notified();
            state
                .holding
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            released.await;
            state
                .holding
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
        if let Some(ms) = fault.delay_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if fault.reset {
            let broken = futures::stream::iter(vec![
                Ok(Bytes::from_static(b"{\"values\": [")),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "simulated reset",
                )),
            ]);
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                Body::from_stream(broken),
            )
                .into_response();
        }
        if let Some(total) = fault.body_bytes {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                huge_body(state.clone(), total),
            )
                .into_response();
        }
        if let Some(status) = fault.status {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = match fault.body {
                Some(raw) => (status, raw).into_response(),
                None if fault.echo_credential => {
                    let credential = parts
                        .headers
                        .get(header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("none");
                    error(
                        which,
                        status,
                        &format!("Simulated fault for the request authorized with {credential}"),
                    )
                }
                None => error(which, status, "Simulated fault"),
            };
            if let Some(secs) = fault.retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            return response;
        }
        if let Some(raw) = fault.body {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                raw,
            )
                .into_response();
        }
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The scopes an OAuth token was granted (`None`: a static credential, which may do everything), for
/// handlers whose answer depends on them (Buddy shows members' e-mails only with `MEMBER_EMAIL`).
#[derive(Debug, Clone)]
pub(crate) struct Granted(pub Option<Vec<String>>);

/// Checks the credential of an API request: an unknown, revoked or expired one is a 401 in the
/// provider's words; an OAuth token lacking the route's scope is a 403. The account and the granted
/// scopes go into the request extensions (`Extension<Account>`, `Extension<Granted>`); Bitbucket OAuth
/// answers carry `X-OAuth-Scopes`.
async fn bearer(
    State((which, state)): State<(Which, Arc<SimState>)>,
    mut request: Request,
    next: Next,
) -> Response {
    let resolved = match state.resolve(which, request.headers()) {
        Ok(r) => r,
        Err(denied) => return error(which, StatusCode::UNAUTHORIZED, denied.message(which)),
    };
    let (method, path) = (request.method(), request.uri().path());
    if let Some(scopes) = &resolved.scopes {
        match which {
            Which::Bitbucket => {
                if let Some(required) = oauth::required_scope(method, path)
                    && !oauth::grants_scope(scopes, required)
                {
                    let body = json!({"type": "error", "error": {
                        "message": "Your credentials lack one or more required privilege scopes.",
                        "detail": {"granted": scopes, "required": [required]},
                    }});
                    return (StatusCode::FORBIDDEN, axum::Json(body)).into_response();
                }
            }
            Which::Buddy => {
                if let Some(required) = buddy::required_scope(method, path)
                    && !buddy::grants_scope(scopes, required)
                {
                    return buddy::scope_denied(required);
                }
            }
        }
    }
    request.extensions_mut().insert(resolved.account);
    request
        .extensions_mut()
        .insert(Granted(resolved.scopes.clone()));
    let mut response = next.run(request).await;
    if which == Which::Bitbucket
        && let Some(scopes) = resolved.scopes
        && let Ok(value) = HeaderValue::from_str(&scopes.join(", "))
    {
        response.headers_mut().insert("x-oauth-scopes", value);
    }
    response
}

/// Serves a GET from the answer cache when nothing was written since it was built; any other method
/// invalidates the cache (before and after it runs, so a read racing a write never keeps a stale answer).
/// Progressing runs are brought up to date first (which invalidates the cache when one changed), so a
/// cached answer never shows a run as it was.
async fn cached(
    State((which, state)): State<(Which, Arc<SimState>)>,
    request: Request,
    next: Next,
) -> Response {
    state.progress(which);
    let account = request.extensions().get::<Account>().copied();
    let (Some(account), true) = (account, request.method() == axum::http::Method::GET) else {
        lock(&state.answers).invalidate();
        let response = next.run(request).await;
        lock(&state.answers).invalidate();
        return response;
    };
    // Answers differ by granted scopes (Buddy's members show e-mails only with `MEMBER_EMAIL`).
    let granted = request
        .extensions()
        .get::<Granted>()
        .and_then(|g| g.0.as_ref())
        .map(|s| s.join(" "))
        .unwrap_or_default();
    let key = (which, account, format!("{} {granted}", request.uri()));
    let generation = {
        let answers = lock(&state.answers);
        if let Some(hit) = answers.entries.get(&key)
            && hit.generation == answers.generation
        {
            let mut response = Response::new(Body::from(hit.body.clone()));
            *response.status_mut() = hit.status;
            *response.headers_mut() = hit.headers.clone();
            return response;
        }
        answers.generation
    };
    let (parts, body) = next.run(request).await.into_parts();
    // Handlers build their bodies in memory, so reading one whole cannot fail or grow unbounded.
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let mut answers = lock(&state.answers);
    if answers.generation == generation && body.len() <= ANSWER_CACHE_BODY_BYTES {
        if answers.entries.len() >= ANSWER_CACHE_ENTRIES {
            answers.entries.clear();
        }
        answers.entries.insert(
            key,
            CachedAnswer {
                generation,
                status: parts.status,
                headers: parts.headers.clone(),
                body: body.clone(),
            },
        );
    }
    Response::from_parts(parts, Body::from(body))
}

impl AnswerCache {
    fn invalidate(&mut self) {
        self.generation += 1;
        self.entries.clear();
    }
}

/// An error in the provider's own format.
pub fn error(which: Which, status: StatusCode, message: &str) -> Response {
    let body = match which {
        Which::Buddy => json!({"errors": [{"message": message}]}),
        Which::Bitbucket => json!({"type": "error", "error": {"message": message}}),
    };
    (status, axum::Json(body)).into_response()
}

/// A plain-text response (file contents, diffs, logs).
pub fn text(body: impl Into<Bytes>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

/// Query parameters as a list of pairs (Bitbucket repeats keys such as `state`).
pub type Query = Vec<(String, String)>;

/// The first value of a query parameter.
pub fn param<'a>(query: &'a Query, key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// One page of a Bitbucket collection: `{size, page, pagelen, next?, values}`. `pagelen` defaults to 10;
/// above `max_pagelen` Bitbucket answers 400 "Invalid pagelen", and so does the sim.
#[allow(clippy::result_large_err)]
pub fn bitbucket_page(
    state: &SimState,
    uri: &axum::http::Uri,
    query: &Query,
    values: Vec<Value>,
    max_pagelen: usize,
) -> Result<Value, Response> {
    let bad = |m: &str| error(Which::Bitbucket, StatusCode::BAD_REQUEST, m);
    let pagelen: usize = match param(query, "pagelen") {
        Some(p) => p.parse().map_err(|_| bad("Invalid pagelen"))?,
        None => 10,
    };
    if pagelen == 0 || pagelen > max_pagelen {
        return Err(bad("Invalid pagelen"));
    }
    let page: usize = match param(query, "page") {
        Some(p) => p.parse().map_err(|_| bad("Invalid page"))?,
        None => 1,
    };
    if page == 0 {
        return Err(bad("Invalid page"));
    }
    let size = values.len();
    let start = (page - 1).saturating_mul(pagelen).min(size);
    let end = (start + pagelen).min(size);
    let mut body = json!({
        "size": size,
        "page": page,
        "pagelen": pagelen,
        "values": values[start..end].to_vec(),
    });
    if end < size {
        let origin = lock(&state.bitbucket_base)
            .trim_end_matches("/2.0")
            .to_string();
        let mut next = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in query.iter().filter(|(k, _)| k != "page") {
            next.append_pair(k, v);
        }
        next.append_pair("page", &(page + 1).to_string());
        body["next"] = json!(format!("{origin}{}?{}", uri.path(), next.finish()));
    }
    Ok(body)
}

/// One page of a Buddy list: `page` (1-based) and `per_page` (default 20).
pub fn buddy_page(query: &Query, items: &[Value]) -> (Vec<Value>, usize, usize) {
    let per_page = param(query, "per_page")
        .and_then(|p| p.parse().ok())
        .filter(|p: &usize| *p > 0)
        .unwrap_or(20);
    let page = param(query, "page")
        .and_then(|p| p.parse().ok())
        .filter(|p: &usize| *p > 0)
        .unwrap_or(1);
    let start = (page - 1).saturating_mul(per_page).min(items.len());
    let end = (start + per_page).min(items.len());
    (items[start..end].to_vec(), page, per_page)
}

/// Test support: sends every catalog tool's example request of one provider straight to the sim
/// (no gateway in between) and returns the failures. It checks the catalog/sim contract: each tool's
/// path, query and body reach a route that answers 2xx.
#[cfg(test)]
pub(crate) async fn example_failures(provider_id: &str) -> Vec<String> {
    use crate::catalog::{Catalog, ResolveWhen, schema, template};

    let sim = Sim::start().await.expect("sim starts");
    let catalog = Catalog::builtin().expect("catalog loads");
    let provider = catalog.provider(provider_id).expect("provider exists");
    let (base, token) = match provider_id {
        "buddy" => (sim.buddy_url.clone(), BUDDY_TOKEN),
        _ => (sim.bitbucket_url.clone(), BITBUCKET_TOKEN),
    };
    crate::app::install_tls_provider();
    let client = reqwest::Client::new();
    let mut failures = Vec::new();
    for tool in &provider.tools {
        let mut args = match schema::validate(
            tool,
            tool.spec.example.as_ref(),
            &schema::Defaults::default(),
        ) {
            Ok(a) => a,
            Err(e) => {
                failures.push(format!("{}: example: {e}", tool.name));
                continue;
            }
        };
        for r in &tool.resolve {
            let value = template::scalar(args.get(&r.param)).unwrap_or_default();
            let needed = match r.when {
                ResolveWhen::NotNumeric => !value.bytes().all(|b| b.is_ascii_digit()),
                ResolveWhen::ContainsSlash => value.contains('/'),
            };
            if needed {
                let path = r.path.render(&args).expect("resolve path");
                let resp = client
                    .get(format!("{base}{path}"))
                    .query(&template::render_query(&r.query, &args))
                    .bearer_auth(token)
                    .send()
                    .await
                    .expect("sim answers");
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                match crate::shape::pointer(&body, &r.take) {
                    Some(v) => {
                        args.insert(r.param.clone(), v.clone());
                    }
                    None => failures.push(format!(
                        "{}: resolve of {} found nothing",
                        tool.name, r.param
                    )),
                }
            }
        }
        let path = match tool.path.render(&args) {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{}: path: {e:?}", tool.name));
                continue;
            }
        };
        let mut request = client
            .request(tool.spec.method.as_reqwest(), format!("{base}{path}"))
            .query(&template::render_query(&tool.query, &args))
            .bearer_auth(token);
        if let Some(body) = tool
            .spec
            .body
            .as_ref()
            .and_then(|b| template::render_body(b, &args))
        {
            request = request.json(&body);
        }
        let response = request.send().await.expect("sim answers");
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            failures.push(format!(
                "{}: {} {path} -> {status}: {text}",
                tool.name,
                tool.spec.method.as_reqwest()
            ));
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP_MS: u64 = 60_000;

    async fn send(
        method: reqwest::Method,
        url: String,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        crate::app::install_tls_provider();
        let mut request = reqwest::Client::new()
            .request(method, url)
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("sim answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The run clock moving alone (no request, no `advance`): the next GET still sees the progress
    /// although the same GET was answered from the cache before.
    #[tokio::test]
    async fn a_cached_get_follows_runs_progressing_with_time() {
        let sim = Sim::start().await.unwrap();
        sim.state.set_run_step_ms(STEP_MS);
        let runs = format!(
            "{}/workspaces/acme/projects/web/pipelines/3/executions",
            sim.buddy_url
        );
        let (_, run) = send(
            reqwest::Method::POST,
            runs.clone(),
            BUDDY_TOKEN,
            Some(json!({})),
        )
        .await;
        assert_eq!(run["status"], "INPROGRESS");
        let url = format!("{runs}/{}", run["id"]);
        let status_of = |run: &Value| {
            run["action_executions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["status"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        for _ in 0..2 {
            let (_, run) = send(reqwest::Method::GET, url.clone(), BUDDY_TOKEN, None).await;
            assert_eq!(status_of(&run), ["INPROGRESS", "ENQUEUED"]);
        }
        let generation = lock(&sim.state.answers).generation;
        sim.state
            .runs
            .advanced_ms
            .fetch_add(STEP_MS, Ordering::SeqCst);
        let (_, run) = send(reqwest::Method::GET, url.clone(), BUDDY_TOKEN, None).await;
        assert_eq!(status_of(&run), ["SUCCESSFUL", "INPROGRESS"]);
        assert!(
            lock(&sim.state.answers).generation > generation,
            "the cache was dropped"
        );
        sim.state
            .runs
            .advanced_ms
            .fetch_add(STEP_MS, Ordering::SeqCst);
        let (_, run) = send(reqwest::Method::GET, url.clone(), BUDDY_TOKEN, None).await;
        assert_eq!(run["status"], "SUCCESSFUL");
        assert_eq!(sim.state.live_runs(Which::Buddy), 0);

        // Nothing progresses any more: GETs are served from the cache again, generation unchanged.
        let generation = lock(&sim.state.answers).generation;
        sim.state
            .runs
            .advanced_ms
            .fetch_add(STEP_MS, Ordering::SeqCst);
        for _ in 0..2 {
            send(reqwest::Method::GET, url.clone(), BUDDY_TOKEN, None).await;
        }
        assert_eq!(lock(&sim.state.answers).generation, generation);
    }

    #[tokio::test]
    async fn runs_knob_over_http() {
        let sim = Sim::start().await.unwrap();
        let origin = sim.bitbucket_url.trim_end_matches("/2.0").to_string();
        let knob = |body: Value| {
            send(
                reqwest::Method::POST,
                format!("{origin}/_sim/runs"),
                "",
                Some(body),
            )
        };
        let read = || {
            send(
                reqwest::Method::GET,
                format!("{}/_sim/runs", sim.buddy_url),
                "",
                None,
            )
        };

        let (status, before) = read().await;
        assert_eq!(status, 200);
        assert_eq!(before["step_ms"], DEFAULT_RUN_STEP_MS);
        assert_eq!(before["live"], json!({"buddy": 0, "bitbucket": 0}));
        assert_eq!(knob(json!({"step_ms": STEP_MS})).await.0, 204);
        assert_eq!(sim.state.run_step_ms(), STEP_MS);
        assert_eq!(
            knob(json!({"step": 5})).await.0,
            422,
            "unknown fields are refused"
        );

        let (status, run) = send(
            reqwest::Method::POST,
            format!("{}/repositories/acme/api/pipelines", sim.bitbucket_url),
            BITBUCKET_TOKEN,
            Some(json!({"target": {"type": "pipeline_ref_target", "ref_type": "branch", "ref_name": "main"}})),
        )
        .await;
        assert_eq!(status, 201);
        assert_eq!(read().await.1["live"], json!({"buddy": 0, "bitbucket": 1}));

        assert_eq!(knob(json!({"advance_ms": STEP_MS * 2})).await.0, 204);
        let (_, now) = read().await;
        assert_eq!(now["advanced_ms"], STEP_MS * 2);
        assert!(now["clock_ms"].as_u64().unwrap() >= STEP_MS * 2);
        let url = format!(
            "{}/repositories/acme/api/pipelines/{}",
            sim.bitbucket_url,
            run["uuid"]
                .as_str()
                .unwrap()
                .replace('{', "%7B")
                .replace('}', "%7D")
        );
        let (_, p) = send(reqwest::Method::GET, url.clone(), BITBUCKET_TOKEN, None).await;
        assert_eq!(p["state"]["name"], "IN_PROGRESS");

        knob(json!({"advance_ms": STEP_MS * 3})).await;
        let (_, p) = send(reqwest::Method::GET, url, BITBUCKET_TOKEN, None).await;
        assert_eq!(p["state"]["result"]["name"], "SUCCESSFUL");
        assert_eq!(read().await.1["live"]["bitbucket"], 0);
    }
}
