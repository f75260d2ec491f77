//! The authorization server's state: codes, grants, tokens, revocations, and resolving a bearer token.

use super::*;

/// A credential the bearer check accepted.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub account: Account,
    /// An OAuth token's granted scopes; `None` for static credentials (which may do everything).
    pub scopes: Option<Vec<String>>,
}

/// Why the bearer check refused a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denied {
    /// Missing, unknown, revoked.
    Invalid,
    /// An issued access token past its lifetime.
    Expired,
}

impl Denied {
    pub(crate) fn message(self, which: Which) -> &'static str {
        match (which, self) {
            (Which::Buddy, Denied::Invalid) => "Invalid access token",
            (Which::Buddy, Denied::Expired) => "Access token expired",
            (Which::Bitbucket, Denied::Invalid) => {
                "Token is invalid, expired, or not supported for this endpoint."
            }
            (Which::Bitbucket, Denied::Expired) => {
                "Access token expired. Use your refresh token to obtain a new access token."
            }
        }
    }
}

pub(super) struct Code {
    pub(super) provider: Which,
    pub(super) client_id: String,
    pub(super) account: Account,
    pub(super) redirect_uri: String,
    pub(super) challenge: Option<String>,
    pub(super) scopes: Vec<String>,
    pub(super) issued: Instant,
}

/// One user's consent to one client: its access and refresh tokens live and die with it.
pub(super) struct Grant {
    pub(super) provider: Which,
    pub(super) account: Account,
    pub(super) client_id: String,
    pub(super) scopes: Vec<String>,
    pub(super) revoked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Access,
    Refresh,
}

pub(super) struct Token {
    pub(super) grant: usize,
    pub(super) kind: Kind,
    /// Access tokens only.
    pub(super) expires_at: Option<Instant>,
    /// Rotated away (Bitbucket refresh tokens) or revoked on its own.
    pub(super) dead: bool,
}

/// The OAuth half of [`SimState`].
pub(crate) struct OAuthState {
    pub(super) codes: HashMap<String, Code>,
    pub(super) grants: Vec<Grant>,
    pub(super) tokens: HashMap<String, Token>,
    pub(super) lifetime: [u64; 2],
    pub(super) expiring: [bool; 2],
    pub(super) omit_refresh: [bool; 2],
    pub(super) bitbucket_scopes: Vec<String>,
    pub(super) token_requests: [BTreeMap<String, usize>; 2],
    pub(super) dead_refresh: [usize; 2],
    /// Whether token-endpoint errors repeat the code or refresh token presented.
    pub(super) echo_secrets: [bool; 2],
    pub(super) revocations: [Vec<Revocation>; 2],
    /// Every code, token and PKCE verifier that passed through, for tests that search for leaks.
    pub(super) secrets: Vec<String>,
}

impl OAuthState {
    pub(crate) fn new() -> Self {
        Self {
            codes: HashMap::new(),
            grants: Vec::new(),
            tokens: HashMap::new(),
            lifetime: [
                DEFAULT_BUDDY_TOKEN_LIFETIME,
                DEFAULT_BITBUCKET_TOKEN_LIFETIME,
            ],
            expiring: [true; 2],
            secrets: Vec::new(),
            omit_refresh: [false; 2],
            bitbucket_scopes: DEFAULT_BITBUCKET_SCOPES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            token_requests: Default::default(),
            dead_refresh: [0; 2],
            echo_secrets: [false; 2],
            revocations: Default::default(),
        }
    }

    /// A token-endpoint error description, repeating what the client presented when the echo knob
    /// ([`SimState::set_echo_secrets`]) is on.
    pub(super) fn described(&self, which: Which, description: &str, presented: &str) -> String {
        if self.echo_secrets[slot(which)] {
            format!("{description} (presented: {presented})")
        } else {
            description.to_string()
        }
    }

    /// Looks up an issued access token for the bearer check.
    pub(crate) fn access(&self, provider: Which, token: &str) -> Result<Resolved, Denied> {
        let t = self
            .tokens
            .get(token)
            .filter(|t| t.kind == Kind::Access)
            .ok_or(Denied::Invalid)?;
        let grant = &self.grants[t.grant];
        if grant.provider != provider || grant.revoked || t.dead {
            return Err(Denied::Invalid);
        }
        if t.expires_at.is_some_and(|at| Instant::now() >= at) {
            return Err(Denied::Expired);
        }
        Ok(Resolved {
            account: grant.account,
            scopes: Some(grant.scopes.clone()),
        })
    }

    pub(super) fn new_token(&mut self, grant: usize, kind: Kind) -> String {
        let token = random_hex::<32>();
        let expires_at = match kind {
            Kind::Access => {
                let i = slot(self.grants[grant].provider);
                self.expiring[i].then(|| Instant::now() + Duration::from_secs(self.lifetime[i]))
            }
            Kind::Refresh => None,
        };
        self.tokens.insert(
            token.clone(),
            Token {
                grant,
                kind,
                expires_at,
                dead: false,
            },
        );
        token
    }

    pub(super) fn revoke_grant(&mut self, grant: usize) {
        self.grants[grant].revoked = true;
    }
}

pub(super) fn random_hex<const N: usize>() -> String {
    let bytes: [u8; N] = rand::random();
    let mut out = String::with_capacity(2 * N);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// One request to a revocation endpoint, as the provider understood it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// What the token was: `access_token`, `refresh_token` or `unknown`.
    pub kind: String,
    /// The `token_type_hint` the client sent, if any.
    pub hint: Option<String>,
    /// The account whose grant it was, if the token was known.
    pub account: Option<Account>,
}
