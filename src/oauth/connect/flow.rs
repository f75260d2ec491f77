//! The flow itself: a ticket spent for a state, PKCE and a flow cookie; the sign-in start; the callback that exchanges the code and stores the connection.

use super::*;

impl Connector {
    /// The click on Connect: uses the ticket up and returns the provider's authorize URL and the flow
    /// cookie to give the browser.
    pub async fn begin(&self, provider: &str, ticket: &str) -> Result<Begun, PageError> {
        let p = self.provider(provider)?;
        let taken = self
            .vault
            .store
            .take_ticket(&digest(ticket), now())
            .await
            .map_err(PageError::store)?
            .filter(|t| t.provider == provider);
        let Some(row) = taken else {
            return Err(self.unusable(provider, ticket).await);
        };
        {
            let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            let key = (row.user.clone(), row.provider.clone());
            if live
                .get(&key)
                .is_some_and(|l| l.ticket_hash == row.ticket_hash)
            {
                live.remove(&key);
            }
        }
        tracing::info!(user = %row.user, provider, "sending a user to the provider to connect");
        self.start_flow(p, &row.user, provider, row.scopes, row.elicitation_id)
            .await
    }

    /// A fresh state (bound to `user`, the PKCE verifier, `scopes` and a new flow cookie) and the
    /// provider's authorize URL.
    async fn start_flow(
        &self,
        p: &ConnectProvider,
        user: &str,
        provider: &str,
        scopes: String,
        elicitation_id: Option<String>,
    ) -> Result<Begun, PageError> {
        let asked: Vec<String> = scopes.split_whitespace().map(str::to_string).collect();
        let authorization = p.client.authorize(&asked);
        let cookie = FlowCookie {
            name: FlowCookie::name_for(&authorization.state),
            value: random_token(),
        };
        self.vault
            .store
            .put_state(&StateRow {
                state_hash: digest(&authorization.state),
                user: user.to_string(),
                provider: provider.to_string(),
                pkce_verifier: self
                    .vault
                    .seal(user, provider, &authorization.pkce_verifier),
                scopes,
                elicitation_id,
                browser_hash: digest(&cookie.value),
                expires_at: now() + TTL_SECS,
            })
            .await
            .map_err(PageError::store)?;
        Ok(Begun {
            authorize_url: authorization.url,
            cookie,
        })
    }

    /// Starts a sign-in with a provider account (the authorization server's `/login`): the same flow as
    /// a connect, without a ticket; the callback makes the account the user (`<provider>:<account id>`)
    /// and stores its connection under that user.
    pub async fn begin_sign_in(&self, provider: &str) -> Result<Begun, PageError> {
        let p = self.provider(provider)?;
        tracing::info!(provider, "sending a browser to the provider to sign in");
        self.start_flow(p, SIGN_IN_USER, provider, p.scopes.join(" "), None)
            .await
    }

    /// `/integration-callback`: checks the state and that `flow_cookie` (the value of the cookie named
    /// [`FlowCookie::name_for`] the state, as the browser sent it) is the one the Connect click set,
    /// then exchanges the code and stores the connection. The state is used up whatever happens.
    pub async fn complete(
        &self,
        params: &CallbackParams,
        flow_cookie: Option<&str>,
    ) -> Result<Connected, PageError> {
        let state = params.state.as_deref().filter(|s| !s.is_empty()).ok_or_else(|| {
            PageError::new(
                StatusCode::BAD_REQUEST,
                "Missing state",
                "This address is where providers send you back after you approve devgate. It was opened without the `state` it needs, so nothing was connected.",
            )
        })?;
        let row = self
            .vault
            .store
            .take_state(&digest(state), now())
            .await
            .map_err(PageError::store)?
            .ok_or_else(|| {
                PageError::new(
                    StatusCode::BAD_REQUEST,
                    "This sign-in has already been used or has expired",
                    "Nothing was connected. Go back to your agent and ask again: it will give you a new link.",
                )
            })?;
        let p = self.provider(&row.provider)?;
        let title = p.api.title().to_string();
        // A plain comparison of hashes: its timing could at most tell how much of the stored hash the
        // hash of a guess matches, which does not help find the cookie.
        let same_browser = !row.browser_hash.is_empty()
            && flow_cookie.is_some_and(|c| !c.is_empty() && digest(c) == row.browser_hash);
        if !same_browser {
            tracing::warn!(
                user = %row.user,
                provider = %row.provider,
                cookie = if flow_cookie.is_some() { "wrong" } else { "missing" },
                "refused a callback from a browser that did not start this connect"
            );
            return Err(PageError::new(
                StatusCode::FORBIDDEN,
                "Finish connecting in the browser you started in",
                format!(
                    "Nothing was connected. devgate only completes a connection in the browser where the Connect button was clicked, and this browser is not that one (or its cookies were cleared). \
If you are connecting your own {title} account, go back to your agent, ask for a new link and open it in this browser. \
If someone sent you this {title} address, do not sign in for them: close this page."
                ),
            ));
        }
        if let Some(error) = &params.error {
            let (heading, message) = if error == "access_denied" {
                (
                    format!("You did not connect {title}"),
                    format!(
                        "You declined on {title}'s page, so nothing was connected. Your agent will ask again when it needs {title}."
                    ),
                )
            } else {
                (
                    format!("{title} did not connect"),
                    format!(
                        "{title} answered `{}`{}. Nothing was connected; go back to your agent and try again.",
                        short(error),
                        params
                            .error_description
                            .as_deref()
                            .map(|d| format!(": {}", short(d)))
                            .unwrap_or_default()
                    ),
                )
            };
            return Err(PageError::new(StatusCode::BAD_REQUEST, &heading, message)
                .ended(&row.user, &row.provider));
        }
        let code = params.code.as_deref().filter(|c| !c.is_empty()).ok_or_else(|| {
            PageError::new(
                StatusCode::BAD_REQUEST,
                "No authorization code",
                format!("{title} sent you back without a code, so nothing was connected. Go back to your agent and try again."),
            )
            .ended(&row.user, &row.provider)
        })?;
        let verifier = self
            .vault
            .open(&row.user, &row.provider, &row.pkce_verifier)
            .map_err(PageError::store)?;
        let ended = |e: PageError| e.ended(&row.user, &row.provider);
        let tokens = p.client.exchange(code, &verifier).await.map_err(|e| ended(match e {
            OAuthError::Rejected { code, .. } => PageError::new(
                StatusCode::BAD_GATEWAY,
                &format!("{title} refused the sign-in"),
                format!("{title} answered `{code}` when devgate redeemed the sign-in. Nothing was connected; go back to your agent and try again."),
            ),
            other => PageError::new(
                StatusCode::BAD_GATEWAY,
                &format!("{title} is not answering"),
                format!("{}. Nothing was connected; try again in a moment.", short(&other.to_string())),
            ),
        }))?;
        let who = p
            .api
            .whoami(tokens.access_token.expose())
            .await
            .map_err(|e| {
                ended(PageError::new(
                    StatusCode::BAD_GATEWAY,
                    &format!("{title} did not say who you are"),
                    format!("devgate got a token but could not read your {title} account ({e}). Nothing was connected; try again."),
                ))
            })?;
        let spec = &p.api.catalog.spec.whoami;
        let account = string_at(&who, &spec.account).unwrap_or_else(|| "your account".into());
        let account_id = string_at(&who, &spec.id).unwrap_or_default();
        let signed_in = row.user == SIGN_IN_USER;
        if signed_in && account_id.is_empty() {
            return Err(ended(PageError::new(
                StatusCode::BAD_GATEWAY,
                &format!("{title} did not say who you are"),
                format!(
                    "{title} answered without an account id, so devgate cannot sign you in. Try again."
                ),
            )));
        }
        // A sign-in makes the provider account the devgate user.
        let user = if signed_in {
            format!("{}:{account_id}", row.provider)
        } else {
            row.user.clone()
        };
        let scopes = tokens
            .scopes
            .as_ref()
            .map(|s| s.join(" "))
            .unwrap_or(row.scopes.clone());
        let connection = ConnectionRow {
            user: user.clone(),
            provider: row.provider.clone(),
            access_token: self
                .vault
                .seal(&user, &row.provider, tokens.access_token.expose()),
            refresh_token: tokens
                .refresh_token
                .as_ref()
                .map(|t| self.vault.seal(&user, &row.provider, t.expose())),
            expires_at: tokens.expires_in.map(|s| now() + s as i64),
            scopes,
            account: account.clone(),
            account_id,
            status: ConnectionStatus::Active,
            status_detail: None,
            version: 0,
            updated_at: now(),
        };
        self.vault
            .store
            .save_connection(&connection)
            .await
            .map_err(PageError::store)?;
        tracing::info!(user = %user, provider = %row.provider, signed_in, "connected");
        self.completed.notify_waiters();
        if let (Some(sink), Some(id)) = (&self.sink, &row.elicitation_id) {
            sink.completed(id);
        }
        Ok(Connected {
            user,
            provider: row.provider,
            provider_title: title,
            account,
            signed_in,
        })
    }
}
