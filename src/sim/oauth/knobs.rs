//! Knobs tests turn (token lifetime, expiry, revocation, scopes) in Rust and over `/_sim/oauth`.

use super::*;

impl SimState {
    /// Sets the lifetime, in seconds, of access tokens the provider issues from now on (defaults:
    /// Buddy 3600, Bitbucket 7200). 0 issues tokens that are already expired. `expires_in` says the same.
    pub fn set_token_lifetime(&self, provider: Which, seconds: u64) {
        lock(&self.oauth).lifetime[slot(provider)] = seconds;
    }

    /// Whether access tokens the provider issues from now on expire (default: yes). With `false` they
    /// never do and token answers have no `expires_in` (nor Buddy's `refresh_token_expires_in`), like
    /// Buddy apps registered before 2022-03-29.
    pub fn set_expiring_tokens(&self, provider: Which, expiring: bool) {
        lock(&self.oauth).expiring[slot(provider)] = expiring;
    }

    /// Expires every access token issued to `account` so far, now: API calls with them get the
    /// provider's 401 "expired" answer. Refresh tokens stay good. Static tokens are not affected.
    pub fn expire_access_tokens(&self, account: Account) {
        let mut oauth = lock(&self.oauth);
        let now = Instant::now();
        let OAuthState { grants, tokens, .. } = &mut *oauth;
        for t in tokens.values_mut() {
            if t.kind == Kind::Access && grants[t.grant].account == account {
                t.expires_at = Some(now);
            }
        }
    }

    /// Revokes every grant of `account` (as when the user removes the app in the provider's settings):
    /// its access tokens stop working (401) and its refresh tokens get `invalid_grant`.
    pub fn revoke_grants(&self, account: Account) {
        let mut oauth = lock(&self.oauth);
        for g in oauth.grants.iter_mut().filter(|g| g.account == account) {
            g.revoked = true;
        }
    }

    /// Makes the provider's refresh answers leave out `refresh_token` (the old one then stays good, also
    /// on Bitbucket). Default: off.
    pub fn set_omit_refresh_token(&self, provider: Which, omit: bool) {
        lock(&self.oauth).omit_refresh[slot(provider)] = omit;
    }

    /// Sets the Bitbucket consumer's permissions: the scopes of grants the consent page gives from now
    /// on (earlier grants keep theirs, also across refreshes). Default: [`DEFAULT_BITBUCKET_SCOPES`].
    pub fn set_bitbucket_scopes<S: AsRef<str>>(&self, scopes: &[S]) {
        lock(&self.oauth).bitbucket_scopes =
            scopes.iter().map(|s| s.as_ref().to_string()).collect();
    }

    /// How many token-endpoint requests with this `grant_type` (`authorization_code`, `refresh_token`,
    /// …; `""` for none) the provider's handler got, successful or not. Requests a [`crate::sim::Fault`]
    /// answered never reach the handler; [`SimState::requests`] has those (with `grant_type` readable).
    pub fn token_requests(&self, provider: Which, grant_type: &str) -> usize {
        lock(&self.oauth).token_requests[slot(provider)]
            .get(grant_type)
            .copied()
            .unwrap_or(0)
    }

    /// Every authorization code, access and refresh token the provider issued and every PKCE verifier it
    /// received so far: what a leak search looks for.
    pub fn issued_secrets(&self) -> Vec<String> {
        let oauth = lock(&self.oauth);
        let mut all = oauth.secrets.clone();
        all.extend(oauth.tokens.keys().cloned());
        all
    }

    /// How many times a dead refresh token (rotated away, revoked) was presented to the provider.
    pub fn dead_refresh_token_uses(&self, provider: Which) -> usize {
        lock(&self.oauth).dead_refresh[slot(provider)]
    }

    /// Makes the provider's token-endpoint errors repeat the code or refresh token they were sent, as
    /// a careless provider might. Default: off.
    pub fn set_echo_secrets(&self, provider: Which, echo: bool) {
        lock(&self.oauth).echo_secrets[slot(provider)] = echo;
    }

    /// Every request the provider's revocation endpoint accepted, oldest first.
    pub fn revocations(&self, provider: Which) -> Vec<Revocation> {
        lock(&self.oauth).revocations[slot(provider)].clone()
    }

    /// How many unrevoked grants `account` has (one per completed code exchange).
    pub fn live_grants(&self, account: Account) -> usize {
        lock(&self.oauth)
            .grants
            .iter()
            .filter(|g| g.account == account && !g.revoked)
            .count()
    }
}

/// `POST /_sim/oauth` bodies: the knobs above over HTTP.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Knob {
    /// `{"op":"token_lifetime","provider":"bitbucket","seconds":60}`
    TokenLifetime { provider: Which, seconds: u64 },
    /// `{"op":"expiring_tokens","provider":"buddy","expiring":false}`
    ExpiringTokens { provider: Which, expiring: bool },
    /// `{"op":"expire_access_tokens","account":"ann"}`
    ExpireAccessTokens { account: Account },
    /// `{"op":"revoke_grants","account":"nina"}`
    RevokeGrants { account: Account },
    /// `{"op":"omit_refresh_token","provider":"buddy","omit":true}`
    OmitRefreshToken { provider: Which, omit: bool },
    /// `{"op":"bitbucket_scopes","scopes":["account","repository"]}`
    BitbucketScopes { scopes: Vec<String> },
    /// `{"op":"echo_secrets","provider":"bitbucket","echo":true}`
    EchoSecrets { provider: Which, echo: bool },
}

pub(crate) async fn post_knob(
    State(state): State<Arc<SimState>>,
    Json(knob): Json<Knob>,
) -> StatusCode {
    match knob {
        Knob::TokenLifetime { provider, seconds } => state.set_token_lifetime(provider, seconds),
        Knob::ExpiringTokens { provider, expiring } => {
            state.set_expiring_tokens(provider, expiring)
        }
        Knob::ExpireAccessTokens { account } => state.expire_access_tokens(account),
        Knob::RevokeGrants { account } => state.revoke_grants(account),
        Knob::OmitRefreshToken { provider, omit } => state.set_omit_refresh_token(provider, omit),
        Knob::BitbucketScopes { scopes } => state.set_bitbucket_scopes(&scopes),
        Knob::EchoSecrets { provider, echo } => state.set_echo_secrets(provider, echo),
    }
    StatusCode::NO_CONTENT
}

/// `GET /_sim/oauth`: settings and counters.
pub(crate) async fn get_knobs(State(state): State<Arc<SimState>>) -> Json<Value> {
    let oauth = lock(&state.oauth);
    let per = |f: &dyn Fn(usize) -> Value| json!({"buddy": f(0), "bitbucket": f(1)});
    let live = |a: Account| {
        oauth
            .grants
            .iter()
            .filter(|g| g.account == a && !g.revoked)
            .count()
    };
    Json(json!({
        "token_lifetime": per(&|i| json!(oauth.lifetime[i])),
        "expiring_tokens": per(&|i| json!(oauth.expiring[i])),
        "omit_refresh_token": per(&|i| json!(oauth.omit_refresh[i])),
        "bitbucket_scopes": oauth.bitbucket_scopes,
        "token_requests": per(&|i| json!(oauth.token_requests[i])),
        "dead_refresh_token_uses": per(&|i| json!(oauth.dead_refresh[i])),
        "echo_secrets": per(&|i| json!(oauth.echo_secrets[i])),
        "revocations": per(&|i| json!(oauth.revocations[i])),
        "live_grants": {
            "mike": live(Account::Mike), "nina": live(Account::Nina),
            "ann": live(Account::Ann), "ben": live(Account::Ben),
        },
    }))
}
