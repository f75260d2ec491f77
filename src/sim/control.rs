//! The `/_sim/` routes: recorded requests, faults and the run clock, over HTTP.

use super::*;

pub(super) async fn list_requests(State(state): State<Arc<SimState>>) -> axum::Json<Vec<Recorded>> {
    axum::Json(state.requests())
}

pub(super) async fn clear_requests(State(state): State<Arc<SimState>>) -> StatusCode {
    state.clear_requests();
    StatusCode::NO_CONTENT
}

pub(super) async fn add_fault(
    State(state): State<Arc<SimState>>,
    axum::Json(fault): axum::Json<Fault>,
) -> StatusCode {
    state.add_fault(fault);
    StatusCode::NO_CONTENT
}

pub(super) async fn clear_faults(State(state): State<Arc<SimState>>) -> StatusCode {
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

pub(super) async fn post_runs(
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
pub(super) async fn get_runs(State(state): State<Arc<SimState>>) -> axum::Json<Value> {
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
