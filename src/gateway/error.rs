//! Why a tool call ended without a result ([`ToolError`]), and the closed set of ways a call ends
//! ([`Outcome`]) that metrics, the audit and the log line record.
//!
//! Each step of a call returns the error as data (which field, which provider, what the provider said);
//! the text an agent reads is made from it in one place, the `Display` below, which [`crate::mcp`]
//! puts into the result (or, for a connect or a confirmation, into the question it asks).

/// Why a tool call could not give its result.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ToolError {
    /// Not a tool this gateway offers: answered as a JSON-RPC error, not a tool result.
    #[error("unknown tool `{0}`; call tools/list for the tools this gateway offers")]
    UnknownTool(String),
    /// An argument the agent has to correct.
    #[error("{tool}: {field}: {reason}")]
    InvalidArgument {
        tool: String,
        field: String,
        reason: String,
    },
    /// The provider refused the request or failed to answer it; `detail` says what it said and what
    /// to do next.
    #[error("{tool}: {detail}")]
    Upstream {
        tool: String,
        detail: String,
        /// The provider is down, slow or rate limiting (5xx, 429, a timeout, a broken connection):
        /// trying later may work, unlike after a refusal.
        outage: bool,
    },
    /// The call cannot succeed as the target stands (devgate read it first), so nothing was sent.
    #[error("{tool}: {detail}")]
    Refused { tool: String, detail: String },
    /// The user has to connect (or reconnect) `provider` first; `reason` names the tool (and scopes).
    #[error("{reason}; see devgate_connections for the link")]
    NeedsConnect { provider: String, reason: String },
    /// The user has to confirm `summary`: the client asks them and calls again with the answer and
    /// this `request_state`.
    #[error("{summary} needs confirming")]
    NeedsConfirmation {
        summary: String,
        request_state: String,
    },
    /// The user did not confirm: they declined (`declined`), or they still have to approve on
    /// devgate's confirm page, which `detail` links.
    #[error("{tool}: {detail}")]
    NotConfirmed {
        tool: String,
        detail: String,
        declined: bool,
    },
    /// `[[policies]]` do not let the caller use this tool; the text names the rule and what to do.
    #[error("{0}")]
    Denied(String),
    /// The user is over the per-user call rate.
    #[error(
        "Rate limit: too many tool calls from {user} in the last minute. Wait {retry_after_secs} s, then call again; batch or narrow the work if you can."
    )]
    RateLimited { user: String, retry_after_secs: u64 },
    /// devgate's own failure (its database, an unusable stored token); the log has the cause.
    #[error("{tool}: {detail}")]
    Internal { tool: String, detail: String },
}

impl ToolError {
    /// The same failure, met while looking up `param` (given as `value`) before the call itself.
    pub(super) fn in_lookup(self, param: &str, value: &str) -> Self {
        let prefix = |detail: String| format!("could not look up {param} `{value}`: {detail}");
        match self {
            ToolError::Upstream {
                tool,
                detail,
                outage,
            } => ToolError::Upstream {
                tool,
                detail: prefix(detail),
                outage,
            },
            ToolError::Internal { tool, detail } => ToolError::Internal {
                tool,
                detail: prefix(detail),
            },
            other => other,
        }
    }

    /// How a call that failed like this ends.
    pub fn outcome(&self) -> Outcome {
        match self {
            ToolError::UnknownTool(_) => Outcome::UnknownTool,
            ToolError::InvalidArgument { .. } => Outcome::InvalidArguments,
            ToolError::Upstream { outage: false, .. } => Outcome::ProviderError,
            ToolError::Upstream { outage: true, .. } => Outcome::ProviderUnavailable,
            ToolError::Refused { .. } => Outcome::Refused,
            ToolError::NeedsConnect { .. } => Outcome::Connect,
            ToolError::NeedsConfirmation { .. } => Outcome::Confirm,
            ToolError::NotConfirmed { .. } => Outcome::NotConfirmed,
            ToolError::Denied(_) => Outcome::Denied,
            ToolError::RateLimited { .. } => Outcome::RateLimited,
            ToolError::Internal { .. } => Outcome::InternalError,
        }
    }
}

/// How a tool call ended: the label of `devgate_tool_calls_total`, the audit row's `outcome` and the
/// log line's `outcome`, all three written once per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A result.
    Ok,
    /// The agent sent an argument it has to correct.
    InvalidArguments,
    /// The provider refused the request (a 4xx other than 429, or a reply devgate cannot use).
    ProviderError,
    /// The provider is down, slow or rate limiting (5xx, 429, timeout, connection).
    ProviderUnavailable,
    /// devgate read the target and the call cannot succeed on it; nothing was sent.
    Refused,
    /// The user was asked to connect a provider.
    Connect,
    /// The client had answered the connect question, but the user has not finished connecting.
    ConnectPending,
    /// The user was asked to confirm, through the client.
    Confirm,
    /// The user declined, or has yet to approve on the confirm page.
    NotConfirmed,
    /// Refused by `[[policies]]`; nothing was sent.
    Denied,
    /// Over the per-user call rate.
    RateLimited,
    /// devgate's own failure.
    InternalError,
    /// The client cancelled the call.
    Cancelled,
    /// Not a tool this gateway offers.
    UnknownTool,
}

impl Outcome {
    /// The label, in metrics, the audit and logs.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::InvalidArguments => "invalid_arguments",
            Outcome::ProviderError => "provider_error",
            Outcome::ProviderUnavailable => "provider_unavailable",
            Outcome::Refused => "refused",
            Outcome::Connect => "connect",
            Outcome::ConnectPending => "connect_pending",
            Outcome::Confirm => "confirm",
            Outcome::NotConfirmed => "not_confirmed",
            Outcome::Denied => "denied",
            Outcome::RateLimited => "rate_limited",
            Outcome::InternalError => "internal_error",
            Outcome::Cancelled => "cancelled",
            Outcome::UnknownTool => "unknown_tool",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(outage: bool) -> ToolError {
        ToolError::Upstream {
            tool: "buddy_get_project".into(),
            detail: "Buddy answered 503: down.".into(),
            outage,
        }
    }

    #[test]
    fn bad_arguments_and_an_outage_end_apart() {
        let bad = ToolError::InvalidArgument {
            tool: "buddy_get_project".into(),
            field: "project".into(),
            reason: "required".into(),
        };
        assert_eq!(bad.to_string(), "buddy_get_project: project: required");
        assert_eq!(bad.outcome().label(), "invalid_arguments");
        assert_eq!(upstream(true).outcome().label(), "provider_unavailable");
        assert_eq!(upstream(false).outcome().label(), "provider_error");
        let limited = ToolError::RateLimited {
            user: "alice".into(),
            retry_after_secs: 3,
        };
        assert_eq!(limited.outcome(), Outcome::RateLimited);
    }

    #[test]
    fn a_failed_lookup_keeps_its_kind_and_says_what_was_looked_up() {
        let e = upstream(true).in_lookup("pipeline", "deploy");
        assert_eq!(
            e.to_string(),
            "buddy_get_project: could not look up pipeline `deploy`: Buddy answered 503: down."
        );
        assert_eq!(e.outcome(), Outcome::ProviderUnavailable);
    }
}
