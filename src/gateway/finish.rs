//! One call's bookkeeping: counted in flight while it runs, then one metric sample, one audit row and
//! one log line, all with the same [`Outcome`], written by [`InFlight::finish`].

use std::time::{Duration, Instant};

use rmcp::model::JsonObject;

use super::{Gateway, Outcome};
use crate::identity::Identity;

/// A tool call being served. It counts in `devgate_calls_in_flight` until dropped, so a call whose
/// future is dropped half-way (its client went away) leaves the gauge too; one that ends without
/// [`Self::finish`] is recorded as [`Outcome::Cancelled`].
pub struct InFlight<'a> {
    gateway: &'a Gateway,
    caller: &'a Identity,
    /// The tool's name, or `unknown` for a name the gateway does not offer.
    tool: &'a str,
    args: Option<&'a JsonObject>,
    request_id: &'a str,
    started: Instant,
    finished: bool,
}

impl Gateway {
    /// Starts the bookkeeping of one call (`tool` as it may appear in metrics: offered, or `unknown`).
    pub fn begin<'a>(
        &'a self,
        caller: &'a Identity,
        tool: &'a str,
        args: Option<&'a JsonObject>,
        request_id: &'a str,
    ) -> InFlight<'a> {
        crate::metrics::global().in_flight.inc();
        InFlight {
            gateway: self,
            caller,
            tool,
            args,
            request_id,
            started: Instant::now(),
            finished: false,
        }
    }
}

impl InFlight<'_> {
    /// How long the call has run.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Records how the call ended: the metric, the audit row and the log line (in the call's span).
    pub fn finish(mut self, outcome: Outcome) {
        self.record(outcome);
    }

    fn record(&mut self, outcome: Outcome) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let ms = self.started.elapsed().as_millis() as u64;
        crate::metrics::global().call(self.tool, outcome.label());
        let args = (outcome != Outcome::UnknownTool)
            .then_some(self.args)
            .flatten();
        self.gateway
            .audit(self.caller, self.tool, args, outcome, ms, self.request_id);
        tracing::info!(outcome = outcome.label(), ms, "call");
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.record(Outcome::Cancelled);
        crate::metrics::global().in_flight.dec();
    }
}
