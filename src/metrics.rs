//! Prometheus metrics, served as text on `/metrics`: tool calls by tool and outcome, upstream request
//! latency by provider, token refreshes and their failures, calls in flight, live MCP sessions,
//! rate-limited calls.
//!
//! One registry per process ([`global`]), so the provider client and the token manager record without
//! being handed a handle.

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub tool: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefreshLabels {
    pub provider: String,
    pub result: &'static str,
}

/// Every metric devgate keeps.
pub struct Metrics {
    registry: Registry,
    pub calls: Family<CallLabels, Counter>,
    pub upstream_seconds: Family<ProviderLabels, Histogram>,
    pub refreshes: Family<RefreshLabels, Counter>,
    pub in_flight: Gauge,
    pub sessions: Gauge,
    pub rate_limited: Counter,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("devgate");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "tool_calls",
            "Tool calls by tool and outcome",
            calls.clone(),
        );
        // 1 ms to ~16 s.
        let upstream_seconds = Family::<ProviderLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 15))
        });
        registry.register(
            "upstream_request_seconds",
            "Provider API requests by provider: time to the response head",
            upstream_seconds.clone(),
        );
        let refreshes = Family::<RefreshLabels, Counter>::default();
        registry.register(
            "token_refreshes",
            "Token refreshes at the provider by result (ok, failed)",
            refreshes.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "calls_in_flight",
            "Tool calls being served now",
            in_flight.clone(),
        );
        let sessions = Gauge::default();
        registry.register(
            "mcp_sessions",
            "Live MCP connections: stdio clients, HTTP sessions, stateless requests being served",
            sessions.clone(),
        );
        let rate_limited = Counter::default();
        registry.register(
            "rate_limited_calls",
            "Tool calls refused by the per-user rate limit",
            rate_limited.clone(),
        );
        Self {
            registry,
            calls,
            upstream_seconds,
            refreshes,
            in_flight,
            sessions,
            rate_limited,
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn call(&self, tool: &str, outcome: &'static str) {
        self.calls
            .get_or_create(&CallLabels {
                tool: tool.to_string(),
                outcome,
            })
            .inc();
    }

    pub fn upstream(&self, provider: &str, seconds: f64) {
        self.upstream_seconds
            .get_or_create(&ProviderLabels {
                provider: provider.to_string(),
            })
            .observe(seconds);
    }

    pub fn refresh(&self, provider: &str, ok: bool) {
        self.refreshes
            .get_or_create(&RefreshLabels {
                provider: provider.to_string(),
                result: if ok { "ok" } else { "failed" },
            })
            .inc();
    }
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_recorded_values() {
        let m = Metrics::new();
        m.call("bitbucket_get_repository", "ok");
        m.call("bitbucket_get_repository", "ok");
        m.upstream("bitbucket", 0.003);
        m.refresh("buddy", false);
        let text = m.render();
        assert!(
            text.contains(
                "devgate_tool_calls_total{tool=\"bitbucket_get_repository\",outcome=\"ok\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("devgate_upstream_request_seconds_count{provider=\"bitbucket\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("devgate_token_refreshes_total{provider=\"buddy\",result=\"failed\"} 1"),
            "{text}"
        );
        assert!(text.contains("devgate_calls_in_flight 0"), "{text}");
    }
}
