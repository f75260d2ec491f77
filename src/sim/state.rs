//! [`SimState`]: the providers' shared data and knobs, and the clock runs progress by.

use super::*;

/// Shared state of both simulated providers.
pub struct SimState {
    pub(super) requests: Mutex<Vec<Recorded>>,
    pub(super) faults: Mutex<Vec<Fault>>,
    pub(super) buddy_tokens: Mutex<Vec<String>>,
    pub(super) bitbucket_tokens: Mutex<Vec<String>>,
    pub(super) oauth: Mutex<oauth::OAuthState>,
    pub buddy: Mutex<buddy::Data>,
    pub bitbucket: Mutex<bitbucket::Data>,
    /// Base URLs as clients reach them (set once the listeners are bound).
    pub buddy_base: Mutex<String>,
    pub bitbucket_base: Mutex<String>,
    /// Bitbucket's long-term log storage, e.g. `http://127.0.0.1:41236`.
    pub storage_base: Mutex<String>,
    /// Bytes of `body_bytes` fault bodies actually sent.
    pub(super) streamed: std::sync::atomic::AtomicU64,
    /// Requests whose client went away before the answer was ready.
    pub(super) aborted: std::sync::atomic::AtomicU64,
    /// Requests waiting in a `hold` fault.
    pub(super) holding: std::sync::atomic::AtomicU64,
    pub(super) release: tokio::sync::Notify,
    /// Finished GET answers, so a benchmark measures devgate rather than the sim's JSON building.
    pub(super) answers: Mutex<AnswerCache>,
    /// The clock and pace of runs started through the API.
    pub(super) runs: Runs,
    /// Answers given while [`SimState::keep_answers`] is on (`None`: off, the default).
    pub(super) answered: Mutex<Option<Vec<Answered>>>,
}

/// How long one action (Buddy) or step (Bitbucket) of a run started through the API takes by default.
pub const DEFAULT_RUN_STEP_MS: u64 = 1000;

/// The clock runs started through the API progress by: real time since the sim started plus whatever
/// tests added with [`SimState::advance`], so tests move runs on without sleeping. With the wall time
/// at the start it is also the sim's clock ([`SimState::now_ms`]), which stamps every change.
pub(super) struct Runs {
    pub(super) started: Instant,
    /// Unix milliseconds when `started` was taken.
    pub(super) started_unix_ms: u64,
    pub(super) advanced_ms: AtomicU64,
    pub(super) step_ms: AtomicU64,
    /// How long a Bitbucket merge takes; above 0 it is answered 202 with a task to poll.
    pub(super) merge_ms: AtomicU64,
    /// Runs still progressing, per provider (Buddy, Bitbucket). While both are zero, a request pays one
    /// atomic load for all this.
    pub(super) live: [AtomicUsize; 2],
}

impl Runs {
    pub(super) fn new() -> Self {
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
    pub(super) fn progress(&self, which: Which) {
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

    pub(super) fn take_fault(&self, provider: Which, method: &str, path: &str) -> Option<Fault> {
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
    pub(super) fn resolve(
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
