//! Error texts: an upstream failure as a message the agent can act on (what the provider said, and
//! the next step: which argument to correct, what to read first, when to retry).

use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::call::Call;
use super::{Credentials, Offered, ToolError};
use crate::catalog::Provider;
use crate::catalog::template;
use crate::provider::UpstreamError;

impl Call<'_> {
    /// An upstream failure as what the agent gets: a connect link when the provider says a scope is
    /// missing from the user's grant, else a message.
    pub(super) fn stop(&self, e: &UpstreamError, args: &Map<String, Value>) -> ToolError {
        let o = self.offered;
        if let (
            UpstreamError::Status {
                status: 403,
                required_scopes,
                ..
            },
            Credentials::User(_),
        ) = (e, &o.credentials)
            && !required_scopes.is_empty()
        {
            return ToolError::NeedsConnect {
                provider: o.tool.provider.clone(),
                reason: format!(
                    "{} answered 403: {} needs the {} scope, which your connection lacks; reconnect to grant it",
                    o.client.title(),
                    o.tool.name,
                    required_scopes.join(", ")
                ),
            };
        }
        o.upstream_error(e, args)
    }
}

impl Offered {
    /// An upstream failure with a text the agent can act on.
    pub(super) fn upstream_error(
        &self,
        error: &UpstreamError,
        args: &Map<String, Value>,
    ) -> ToolError {
        ToolError::Upstream {
            tool: self.tool.name.clone(),
            detail: self.explain(error, args),
            outage: error.is_transient(),
        }
    }

    fn explain(&self, error: &UpstreamError, args: &Map<String, Value>) -> String {
        let provider = self.client.title();
        let tool = &self.tool;
        let changes = tool.spec.method != crate::catalog::Method::Get;
        let mut text = String::new();
        match error {
            UpstreamError::Status {
                status,
                message,
                retry_after,
                retries,
                fields,
                ..
            } => {
                let _ = write!(text, "{provider} answered {status}: {}", sentence(message));
                if let Some(extra) = tool.errors.get(status) {
                    let _ = write!(text, " {}", sentence(extra));
                }
                let hint = match status {
                    401 => format!(
                        " The configured credential was rejected: check {}{}.",
                        self.client.credential_setting(),
                        tool_token_help(&self.provider)
                    ),
                    403 => format!(
                        " The credential may lack a scope this tool needs ({}) or the account lacks permission: grant it{}, or ask the owner for access.",
                        tool.spec.scopes.join(", "),
                        tool_token_help(&self.provider)
                    ),
                    404 => format!(" Check {}.", self.path_values(args)),
                    400 | 422 => self.rejected_hint(fields, changes),
                    409 => format!(
                        " It conflicts with the current state: read it first{}, then decide.",
                        self.check_hint()
                    ),
                    429 => match retry_after {
                        Some(s) => format!(" Rate limited; wait {s} s before calling again."),
                        None => " Rate limited; wait a minute before calling again.".into(),
                    },
                    s if *s < 500 => {
                        " Check the arguments against the tool's description, then call again."
                            .into()
                    }
                    s if *s >= 500 && changes => format!(
                        " The change may or may not have happened: check its state before retrying{}.",
                        self.check_hint()
                    ),
                    s if *s >= 500 => {
                        format!(" devgate tried {} time(s); try again later.", retries + 1)
                    }
                    _ => String::new(),
                };
                text.push_str(&hint);
            }
            UpstreamError::Timeout { retries, .. } | UpstreamError::Connection { retries, .. } => {
                let _ = write!(text, "{provider} could not be reached ({error}).");
                if changes {
                    let _ = write!(
                        text,
                        " The change may or may not have happened: check its state before retrying{}.",
                        self.check_hint()
                    );
                } else {
                    let _ = write!(
                        text,
                        " devgate tried {} time(s); try again later.",
                        retries + 1
                    );
                }
            }
            UpstreamError::TooLarge { .. } => {
                let _ = write!(
                    text,
                    "{provider}'s {error}; narrow the request (a smaller limit or a filter)."
                );
            }
            UpstreamError::Malformed { .. } | UpstreamError::Redirect { .. } => {
                let _ = write!(
                    text,
                    "{} This is a provider fault; try again later.",
                    sentence(&error.to_string())
                );
            }
        }
        text
    }

    /// The hint after a 400 or 422. Only when the provider named the fields it rejected does it say
    /// which argument to correct; a change refused without one is more likely refused for the
    /// target's state than for an argument, so the agent is sent to read the target instead.
    fn rejected_hint(&self, fields: &[String], changes: bool) -> String {
        let params = self.params_behind(fields);
        if !params.is_empty() {
            return format!(" Correct {}, then call again.", params.join(", "));
        }
        if !fields.is_empty() {
            let named: Vec<String> = fields
                .iter()
                .map(|f| format!("`{}`", crate::confirm::summary::clean(f, 64)))
                .collect();
            return format!(
                " It names {}: check the arguments that set it against the tool's description, then call again.",
                named.join(", ")
            );
        }
        if changes {
            return format!(
                " No argument was named as wrong, so the target's current state may not allow this: read it first{}, then decide.",
                self.check_hint()
            );
        }
        " Check the arguments against the tool's description, then call again.".into()
    }

    /// The tool's arguments behind request fields a provider named (`destination` in the body is
    /// filled from the argument `destination`, `merge_strategy` from `strategy`), as `` `name` ``.
    fn params_behind(&self, fields: &[String]) -> Vec<String> {
        let spec = &self.tool.spec;
        let mut params = std::collections::BTreeSet::new();
        for field in fields {
            if spec.params.contains_key(field) {
                params.insert(field.clone());
                continue;
            }
            let mut templates: Vec<String> = Vec::new();
            if let Some(text) = spec.query.get(field) {
                templates.push(text.clone());
            }
            let mut node = spec.body.as_ref();
            for key in field.split('.') {
                node = node.and_then(|n| n.get(key));
            }
            if let Some(node) = node {
                collect_strings(node, &mut templates);
            }
            for text in &templates {
                for piece in template::parse(text).unwrap_or_default() {
                    if let template::Piece::Hole(p) = piece
                        && spec.params.contains_key(p.name())
                    {
                        params.insert(p.name().to_string());
                    }
                }
            }
        }
        params.into_iter().map(|p| format!("`{p}`")).collect()
    }

    /// `workspace=acme, repo_slug=api`: the path values a 404 is about.
    fn path_values(&self, args: &Map<String, Value>) -> String {
        let names: Vec<String> = self
            .tool
            .path
            .placeholders()
            .map(|p| p.name().to_string())
            .filter_map(|n| template::scalar(args.get(&n)).map(|v| format!("{n}={v}")))
            .collect();
        if names.is_empty() {
            "the arguments".into()
        } else {
            names.join(", ")
        }
    }

    /// A read-only tool of the same provider that looks at what this one changes, if the catalog has one.
    fn check_hint(&self) -> String {
        let path = &self.tool.spec.path;
        self.provider
            .tools
            .iter()
            .filter(|t| {
                t.spec.annotations.read_only && t.spec.method == crate::catalog::Method::Get
            })
            .filter(|t| path.starts_with(&t.spec.path) && t.spec.path.len() > 1)
            .max_by_key(|t| t.spec.path.len())
            .map(|t| format!(" (e.g. with {})", t.name))
            .unwrap_or_default()
    }
}

/// Provider text as one sentence: a full stop added only where it has no closing mark of its own.
fn sentence(text: &str) -> String {
    let text = text.trim_end();
    if text.ends_with(['.', '!', '?', '…']) {
        text.to_string()
    } else {
        format!("{text}.")
    }
}

/// Every string in a template value (a body template's leaves).
fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| collect_strings(i, out)),
        Value::Object(fields) => fields.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

fn tool_token_help(provider: &Provider) -> String {
    provider
        .spec
        .token_help
        .as_deref()
        .map(|h| format!("; a new token can be created at {h}"))
        .unwrap_or_default()
}
