//! The credential a call goes out with: the provider's static one, or the user's own token with its
//! scopes checked, renewed once when the provider answers 401.

use reqwest::header::HeaderValue;
use serde_json::{Map, Value};

use std::sync::Arc;

use super::call::Call;
use super::{Connections, ToolError};
use crate::config::ProviderConfig;
use crate::oauth::tokens::{TokenError, TokenManager};
use crate::provider::{ProviderClient, UpstreamError};

/// How calls to one provider are authorised, worked out once from config when the gateway is built.
#[derive(Clone)]
pub enum Credentials {
    /// One configured credential for every user (a token, or an email and API token).
    Static(HeaderValue),
    /// Each user's own token, connected through OAuth and kept in the vault.
    User(Arc<TokenManager>),
    /// None: a gateway built only to be listed (`devgate tools --all`); config refuses this otherwise.
    None,
}

impl Credentials {
    /// The credentials of the provider `client` serves, as its config sets them.
    pub fn resolve(
        client: &ProviderClient,
        config: &ProviderConfig,
        connections: Option<&Connections>,
    ) -> Self {
        match (client.static_auth(), connections) {
            (Some(header), _) => Credentials::Static(header.clone()),
            (None, Some(c)) if config.uses_oauth() => Credentials::User(c.tokens.clone()),
            _ => Credentials::None,
        }
    }
}

/// The credential one call goes out with.
pub(super) enum Auth {
    Static(reqwest::header::HeaderValue),
    /// The user's own token; `version` tells a 401 retry whether someone refreshed since.
    User {
        header: reqwest::header::HeaderValue,
        version: i64,
    },
}

impl Auth {
    pub(super) fn header(&self) -> &reqwest::header::HeaderValue {
        match self {
            Auth::Static(h) | Auth::User { header: h, .. } => h,
        }
    }
}

impl Call<'_> {
    /// The credential for this call: the provider's static one, or the user's own token (refreshed
    /// if it is about to expire), after checking it carries the tool's scopes.
    pub(super) async fn auth(&self) -> Result<Auth, ToolError> {
        let o = self.offered;
        let tokens = match &o.credentials {
            Credentials::Static(header) => return Ok(Auth::Static(header.clone())),
            Credentials::User(tokens) => tokens,
            Credentials::None => {
                return Err(self.internal(format!(
                    "no credentials are configured for {}",
                    o.client.title()
                )));
            }
        };
        let access = tokens
            .token(self.user, &o.tool.provider)
            .await
            .map_err(|e| self.token_stop(e))?;
        let needed = &o.tool.spec.scopes;
        // A token granted each scope by name (the usual case) needs no set of aliases and implied
        // scopes worked out per call: scope names are never aliases, so nothing is missing.
        let missing: Vec<&String> = if needed.iter().all(|s| access.scopes.contains(s)) {
            Vec::new()
        } else {
            let granted = o
                .provider
                .expand_scopes(access.scopes.iter().map(String::as_str));
            needed.iter().filter(|s| !granted.contains(*s)).collect()
        };
        if !missing.is_empty() {
            let list = missing
                .iter()
                .map(|s| o.provider.scope_label(s))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ToolError::NeedsConnect {
                provider: o.tool.provider.clone(),
                reason: format!(
                    "{} needs the {list} scope, which your {} connection was not granted; reconnect to grant it",
                    o.tool.name,
                    o.client.title()
                ),
            });
        }
        let header = crate::provider::bearer(access.token.expose())
            .ok_or_else(|| self.internal("the stored token is unusable; reconnect"))?;
        Ok(Auth::User {
            header,
            version: access.version,
        })
    }

    /// devgate's own failure during this call.
    pub(super) fn internal(&self, detail: impl Into<String>) -> ToolError {
        ToolError::Internal {
            tool: self.offered.tool.name.clone(),
            detail: detail.into(),
        }
    }

    fn token_stop(&self, e: TokenError) -> ToolError {
        let o = self.offered;
        let title = o.client.title();
        match e {
            TokenError::NotConnected => ToolError::NeedsConnect {
                provider: o.tool.provider.clone(),
                reason: format!(
                    "{} needs your {title} account, which is not connected yet",
                    o.tool.name
                ),
            },
            TokenError::Broken(detail) => ToolError::NeedsConnect {
                provider: o.tool.provider.clone(),
                reason: format!("Your {title} connection has to be renewed ({detail})"),
            },
            TokenError::Unavailable(detail) => ToolError::Upstream {
                tool: o.tool.name.clone(),
                detail: format!(
                    "{title} could not renew your access ({detail}); your connection is kept, try again in a minute."
                ),
                outage: true,
            },
            TokenError::Store(e) => {
                tracing::error!(error = %e, "the store failed while reading tokens");
                self.internal("devgate could not read its database; try again shortly.")
            }
        }
    }

    /// Sends one request with `auth`; a 401 on a user token is answered by one refresh and one retry
    /// (the provider did not act on a request it refused to authenticate, so even a write is safe to
    /// resend). Any other failure, or a second one, is the agent's error ([`Self::stop`]). `send` gets
    /// the header by value (a reference count; the client copies it into the request anyway).
    pub(super) async fn with_renewal<T, F>(
        &self,
        auth: &mut Auth,
        args: &Map<String, Value>,
        send: impl Fn(HeaderValue) -> F,
    ) -> Result<T, ToolError>
    where
        F: Future<Output = Result<T, UpstreamError>>,
    {
        match send(auth.header().clone()).await {
            Err(e) if renewable(&e, auth) => {
                *auth = self.renew(auth).await?;
                send(auth.header().clone())
                    .await
                    .map_err(|e| self.stop(&e, args))
            }
            other => other.map_err(|e| self.stop(&e, args)),
        }
    }

    async fn renew(&self, auth: &Auth) -> Result<Auth, ToolError> {
        let Auth::User { version, .. } = auth else {
            return Err(self.internal("a static credential cannot be renewed"));
        };
        let o = self.offered;
        let Credentials::User(tokens) = &o.credentials else {
            return Err(self.internal("only a user's own token can be renewed"));
        };
        let access = tokens
            .renew_rejected(self.user, &o.tool.provider, *version)
            .await
            .map_err(|e| self.token_stop(e))?;
        let header = crate::provider::bearer(access.token.expose())
            .ok_or_else(|| self.internal("the renewed token is unusable; reconnect"))?;
        Ok(Auth::User {
            header,
            version: access.version,
        })
    }
}

/// Whether a failure is a 401 on a user token, which one refresh may cure.
fn renewable(e: &UpstreamError, auth: &Auth) -> bool {
    matches!(e, UpstreamError::Status { status: 401, .. }) && matches!(auth, Auth::User { .. })
}
