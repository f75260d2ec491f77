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
//!
//! # Layout
//! One folder per provider, each with a router in its `mod.rs` and a file per concern: [`buddy`],
//! [`bitbucket`] (fixture texts under `src/sim/fixtures/`) and [`oauth`] (both providers' OAuth side);
//! [`oidc`] is a separate server, the organisation's simulated OpenID Connect provider ([`oidc::Idp`]).
//! Here: this file (the [`Sim`] and how each provider's app is put together), `state.rs` ([`SimState`]),
//! `recorder.rs` (recording and faults), `bearer.rs` (the bearer check), `cache.rs` (the answer cache),
//! `control.rs` (the `/_sim/` routes), `reply.rs` (errors, text and pages both providers use) and
//! `tests.rs`.

pub mod bitbucket;
pub mod buddy;
pub mod oauth;
pub mod oidc;

mod bearer;
mod cache;
mod control;
mod recorder;
mod reply;
mod state;
#[cfg(test)]
mod tests;

pub use oauth::Account;

pub(crate) use bearer::Granted;
pub use control::RunsKnob;
pub use reply::{Query, bitbucket_page, buddy_page, error, param, text};
pub(crate) use reply::{hidden_inputs, redirect_host};
pub use state::{DEFAULT_RUN_STEP_MS, SimState};
#[cfg(test)]
pub(crate) use tests::example_failures;

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

use bearer::*;
use cache::*;
use control::*;
use recorder::*;

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
/// (`tests/it/contract/`) validate what the sim answered against the providers' published schemas.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answered {
    pub provider: Which,
    pub method: String,
    /// The path exactly as sent, still percent-encoded.
    pub path: String,
    pub status: u16,
    /// The request asked for a partial response (Bitbucket's `fields`): the body leaves out what was
    /// not asked for, required or not.
    #[serde(default)]
    pub partial: bool,
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

/// The index of a provider in the per-provider arrays here and in [`oauth`]: Buddy 0, Bitbucket 1.
fn slot(which: Which) -> usize {
    match which {
        Which::Buddy => 0,
        Which::Bitbucket => 1,
    }
}

/// Locks a mutex, recovering the data if a panicking test poisoned it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
            Router::new().nest(
                "/2.0",
                bitbucket::router().layer(middleware::from_fn(bitbucket::partial_response)),
            ),
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
