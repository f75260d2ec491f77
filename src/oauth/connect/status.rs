//! Connections after the fact: disconnect with revocation, statuses, and checking a connection with its provider.

use super::*;

impl Connector {
    /// Forgets a user's connection, revoking it upstream where the provider allows: the refresh token
    /// first (RFC 7009 lets a provider end the whole grant with it, and it is the long-lived one), then
    /// the access token, each with its `token_type_hint`. Returns what to tell the user.
    pub async fn disconnect(&self, user: &str, provider: &str) -> Result<String, StoreError> {
        let title = self.title(provider);
        let Some(c) = self.vault.connection(user, provider).await? else {
            return Ok(format!("{user} was not connected to {title}."));
        };
        let revoked = match self.providers.get(provider) {
            Some(p) if p.client.supports_revoke() => {
                let mut tokens = Vec::new();
                if let Some(refresh) = &c.refresh_token {
                    tokens.push(("refresh", refresh.expose(), TokenHint::Refresh));
                }
                tokens.push(("access", c.access_token.expose(), TokenHint::Access));
                let mut failed = Vec::new();
                for (what, token, hint) in &tokens {
                    if let Err(e) = p.client.revoke(token, *hint).await {
                        tracing::warn!(user, provider, token = what, error = %e, "revoking at the provider failed");
                        failed.push(format!("the {what} token: {e}"));
                    }
                }
                let names = tokens
                    .iter()
                    .map(|(what, ..)| *what)
                    .collect::<Vec<_>>()
                    .join(" and ");
                let plural = if tokens.len() > 1 { "s" } else { "" };
                if failed.is_empty() {
                    format!("and revoked the {names} token{plural} at the provider")
                } else {
                    format!(
                        "but revoking at the provider failed ({}); revoke devgate's access in your {title} settings",
                        failed.join("; ")
                    )
                }
            }
            _ => format!(
                "; {title} has no revocation API, so also remove devgate's access in your {title} account settings"
            ),
        };
        self.vault.store.delete_connection(user, provider).await?;
        Ok(format!(
            "Disconnected {user} from {title} ({}) {revoked}.",
            c.row.account
        ))
    }

    /// Each OAuth provider's state for a user, with a connect link where one is needed.
    pub async fn statuses(
        &self,
        user: &str,
        with_links: bool,
    ) -> Result<Vec<ProviderStatus>, StoreError> {
        let mut out = Vec::new();
        let mut ids: Vec<&String> = self.providers.keys().collect();
        ids.sort();
        for id in ids {
            let row = self.vault.store.connection(user, id).await?;
            let needs_link = row
                .as_ref()
                .is_none_or(|r| r.status == ConnectionStatus::Broken);
            let connect_url = if needs_link && with_links {
                Some(self.link(user, id).await?.url)
            } else {
                None
            };
            out.push(match row {
                Some(r) => ProviderStatus {
                    provider: id.clone(),
                    state: if r.status == ConnectionStatus::Broken {
                        "broken"
                    } else {
                        "connected"
                    }
                    .into(),
                    account: Some(r.account),
                    scopes: r.scopes.split_whitespace().map(str::to_string).collect(),
                    expires_at: r.expires_at,
                    detail: r.status_detail,
                    connect_url,
                    verified: None,
                },
                None => ProviderStatus {
                    provider: id.clone(),
                    state: "not_connected".into(),
                    account: None,
                    scopes: Vec::new(),
                    expires_at: None,
                    detail: None,
                    connect_url,
                    verified: None,
                },
            });
        }
        Ok(out)
    }

    /// [`Connector::statuses`] with links, each stored connection checked with its provider: the
    /// token (refreshed if due) must open the account (`whoami`). All providers are asked at once, each
    /// within [`CHECK_TIMEOUT`], so one call tells every connection that needs renewing, not only the
    /// one a tool happened to hit.
    pub async fn checked_statuses(
        &self,
        user: &str,
        tokens: &TokenManager,
    ) -> Result<Vec<ProviderStatus>, StoreError> {
        let statuses = self.statuses(user, false).await?;
        let checks = statuses.into_iter().map(|status| async move {
            if status.state != "connected" {
                return self.with_link(user, status).await;
            }
            let outcome =
                tokio::time::timeout(CHECK_TIMEOUT, self.check(user, &status.provider, tokens))
                    .await
                    .unwrap_or_else(|_| {
                        Check::Unknown(format!(
                            "{} did not answer within {} s",
                            self.title(&status.provider),
                            CHECK_TIMEOUT.as_secs()
                        ))
                    });
            let status = match outcome {
                Check::Good => ProviderStatus {
                    verified: Some(true),
                    ..status
                },
                Check::Unknown(why) => ProviderStatus {
                    verified: Some(false),
                    detail: Some(format!("not checked: {why}; it may still work")),
                    ..status
                },
                Check::Dead(why) => ProviderStatus {
                    state: "broken".into(),
                    detail: Some(why),
                    ..status
                },
                Check::Gone => ProviderStatus {
                    state: "not_connected".into(),
                    account: None,
                    scopes: Vec::new(),
                    expires_at: None,
                    detail: None,
                    ..status
                },
            };
            self.with_link(user, status).await
        });
        futures::future::join_all(checks)
            .await
            .into_iter()
            .collect()
    }

    /// Adds the connect link to a status that needs one.
    async fn with_link(
        &self,
        user: &str,
        mut status: ProviderStatus,
    ) -> Result<ProviderStatus, StoreError> {
        if matches!(status.state.as_str(), "broken" | "not_connected") {
            status.connect_url = Some(self.link(user, &status.provider).await?.url);
        }
        Ok(status)
    }

    /// Asks the provider who the stored token belongs to; after a 401, refreshes once and asks again.
    async fn check(&self, user: &str, provider: &str, tokens: &TokenManager) -> Check {
        let Some(p) = self.providers.get(provider) else {
            return Check::Unknown("no such provider".into());
        };
        let title = p.api.title();
        let mut access = match tokens.token(user, provider).await {
            Ok(access) => access,
            Err(e) => return Check::from_token(e),
        };
        for attempt in 0..2 {
            match p.api.whoami(access.token.expose()).await {
                // A 403 still means the token was accepted (it may lack the account scope).
                Ok(_) | Err(UpstreamError::Status { status: 403, .. }) => return Check::Good,
                Err(UpstreamError::Status { status: 401, .. }) if attempt == 0 => {
                    access = match tokens.renew_rejected(user, provider, access.version).await {
                        Ok(access) => access,
                        Err(e) => return Check::from_token(e),
                    };
                }
                Err(UpstreamError::Status { status: 401, .. }) => {
                    return Check::Dead(format!(
                        "{title} refuses the stored token, also after renewing it"
                    ));
                }
                Err(e) => return Check::Unknown(format!("{title}: {e}")),
            }
        }
        Check::Unknown(format!("{title} gave no answer"))
    }
}

/// What checking a connection with its provider came to.
enum Check {
    Good,
    /// The provider could not be asked (timeout, 5xx, token endpoint down): the connection is kept.
    Unknown(String),
    /// The grant is dead: the user has to connect again.
    Dead(String),
    /// The connection was removed meanwhile.
    Gone,
}

impl Check {
    fn from_token(e: TokenError) -> Self {
        match e {
            TokenError::NotConnected => Check::Gone,
            TokenError::Broken(detail) => Check::Dead(detail),
            TokenError::Unavailable(detail) => Check::Unknown(detail),
            TokenError::Store(e) => Check::Unknown(e.to_string()),
        }
    }
}
