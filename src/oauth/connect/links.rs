//! Connect links and their tickets: one live link per user and provider, marks, the bounded wait for a connection, and the pages for a used or expired link.

use super::*;

impl Connector {
    /// A connect link for `user`: the live one this process handed out for the same user and provider
    /// while it is unused and has at least `REUSE_MIN_SECS` left, else a fresh one. Reuse is safe: the
    /// link is bound to that same user and provider, and works once whoever asked for it.
    pub async fn link(&self, user: &str, provider: &str) -> Result<ConnectLink, StoreError> {
        let key = (user.to_string(), provider.to_string());
        let t = now();
        let live = {
            let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            live.get(&key)
                .filter(|l| l.expires_at - t >= REUSE_MIN_SECS)
                .map(|l| (l.link.clone(), l.ticket_hash.clone()))
        };
        if let Some((link, hash)) = live
            && self.vault.store.ticket(&hash, t).await?.is_some()
        {
            return Ok(link);
        }
        let link = self.fresh_link(user, provider).await?;
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|_, l| l.expires_at - t >= REUSE_MIN_SECS);
        if live.len() >= LIVE_LINKS_MAX {
            live.clear();
        }
        live.insert(key, link.clone());
        Ok(link.link)
    }

    /// A new ticket and its link.
    async fn fresh_link(&self, user: &str, provider: &str) -> Result<LiveLink, StoreError> {
        let scopes = self
            .providers
            .get(provider)
            .map(|p| p.scopes.join(" "))
            .unwrap_or_default();
        let ticket = random_token();
        let elicitation_id = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
        let row = TicketRow {
            ticket_hash: digest(&ticket),
            user: user.to_string(),
            provider: provider.to_string(),
            scopes,
            elicitation_id: Some(elicitation_id.clone()),
            expires_at: now() + TTL_SECS,
        };
        self.vault.store.put_ticket(&row).await?;
        Ok(LiveLink {
            link: ConnectLink {
                url: format!("{}/connect/{provider}?ticket={ticket}", self.public_url),
                elicitation_id,
            },
            ticket_hash: row.ticket_hash,
            expires_at: row.expires_at,
        })
    }

    /// Where the connection of (user, provider) stands now (`None`: there is none).
    pub async fn mark(
        &self,
        user: &str,
        provider: &str,
    ) -> Result<Option<ConnectionMark>, StoreError> {
        Ok(self
            .vault
            .store
            .connection(user, provider)
            .await?
            .map(|row| ConnectionMark {
                version: row.version,
                updated_at: row.updated_at,
            }))
    }

    /// Waits at most `timeout` for (user, provider) to have an active connection other than `before`
    /// (a connect completed meanwhile). Returns whether one appeared. A callback this process completes
    /// wakes the wait at once; one completed by another instance sharing the store is seen within
    /// `WAIT_POLL`.
    pub async fn wait_for_connection(
        &self,
        user: &str,
        provider: &str,
        before: Option<ConnectionMark>,
        timeout: Duration,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before reading, so a completion between the read and the wait still wakes it.
            let woken = self.completed.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            match self.vault.store.connection(user, provider).await {
                Ok(Some(row))
                    if row.status == ConnectionStatus::Active
                        && before
                            != Some(ConnectionMark {
                                version: row.version,
                                updated_at: row.updated_at,
                            }) =>
                {
                    return true;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the store while waiting for a connect")
                }
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return false;
            }
            let next = (now + WAIT_POLL).min(deadline);
            tokio::select! {
                () = &mut woken => {}
                () = tokio::time::sleep_until(next) => {}
            }
        }
    }

    fn expired_link(&self, provider: &str) -> PageError {
        PageError::new(
            StatusCode::GONE,
            "This link has expired",
            format!(
                "Connect links work once and for 10 minutes. Go back to your agent and ask again: it will give you a new link to connect {}.",
                self.title(provider)
            ),
        )
    }

    fn used_link(&self, provider: &str) -> PageError {
        let title = self.title(provider);
        PageError::new(
            StatusCode::GONE,
            "This link was already used",
            format!(
                "Each connect link works once, and this one has been opened and used. If you have just connected {title}, you are done: go back to your agent. \
Otherwise ask your agent again for a new link, or run `devgate connect {provider}` in a terminal."
            ),
        )
    }

    /// Why a ticket cannot be used: it was used, or it expired (or never existed).
    pub(super) async fn unusable(&self, provider: &str, ticket: &str) -> PageError {
        match self.vault.store.ticket_used(&digest(ticket)).await {
            Ok(true) => self.used_link(provider),
            Ok(false) => self.expired_link(provider),
            Err(e) => PageError::store(e),
        }
    }

    /// The ticket behind a connect page, without using it up.
    pub async fn ticket(&self, provider: &str, ticket: &str) -> Result<TicketRow, PageError> {
        self.provider(provider)?;
        if ticket.is_empty() {
            let title = self.title(provider);
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                &format!("Connect {title} from your agent or a terminal"),
                format!(
                    "This page works with the link your agent gives you when a tool needs {title}, and this address has none. \
Ask your agent to use a {title} tool (or its devgate_connections tool) and open the link it shows, \
or run `devgate connect {provider}` in a terminal on the machine devgate runs on."
                ),
            ));
        }
        let found = self
            .vault
            .store
            .ticket(&digest(ticket), now())
            .await
            .map_err(PageError::store)?
            .filter(|t| t.provider == provider);
        match found {
            Some(row) => Ok(row),
            None => Err(self.unusable(provider, ticket).await),
        }
    }
}
