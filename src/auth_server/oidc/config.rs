//! `[login]`: the organisation's OpenID Connect provider users sign in with, and its checks.

use serde::Deserialize;

use crate::config::Secret;

/// The claim naming the user when `login.user_claim` is not set; `sub` when a token lacks it.
pub const DEFAULT_USER_CLAIM: &str = "preferred_username";
/// The claim listing the user's groups when `login.groups_claim` is not set.
pub const DEFAULT_GROUPS_CLAIM: &str = "groups";
/// The scopes asked for when `login.scopes` is not set.
pub const DEFAULT_SCOPES: &[&str] = &["openid", "profile", "email"];

/// `[login]`: devgate is registered with the organisation's OpenID Connect provider as a confidential
/// client whose redirect URI is `<public_url>/login/oidc/callback`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginConfig {
    /// The provider's issuer URL, exactly as its discovery document states it
    /// (`<issuer>/.well-known/openid-configuration` is fetched).
    pub issuer: String,
    /// devgate's client id at the provider.
    pub client_id: String,
    /// devgate's client secret at the provider; write it as `${LOGIN_CLIENT_SECRET}`.
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// The ID-token claim that names the user; default `preferred_username`, falling back to `sub`
    /// when a token lacks it. Once set, a token without this claim is refused.
    #[serde(default)]
    pub user_claim: Option<String>,
    /// The ID-token claim listing the user's groups (a list of strings, or one string).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// The scopes asked for; must include `openid`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
}

fn default_groups_claim() -> String {
    DEFAULT_GROUPS_CLAIM.into()
}

fn default_scopes() -> Vec<String> {
    DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect()
}

/// Whether a URL's host is a loopback address or `localhost` (where plain HTTP is allowed).
pub(crate) fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

impl LoginConfig {
    /// Every problem with `[login]`, each naming the setting and what to write instead.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match url::Url::parse(&self.issuer) {
            Ok(u) if u.scheme() == "https" || (u.scheme() == "http" && is_loopback(&u)) => {
                if u.query().is_some() || u.fragment().is_some() {
                    problems.push(format!(
                        "login.issuer `{}` has a query or fragment: write the issuer URL exactly as the provider's discovery document states it",
                        self.issuer
                    ));
                }
            }
            Ok(_) => problems.push(format!(
                "login.issuer `{}` must be an https URL (plain http only on loopback)",
                self.issuer
            )),
            Err(e) => problems.push(format!(
                "login.issuer `{}` is not a URL ({e}): write the provider's issuer, e.g. https://idp.example.com/realms/acme",
                self.issuer
            )),
        }
        if self.client_id.trim().is_empty() {
            problems.push(
                "login.client_id is empty: write the client id devgate is registered under at the identity provider".into(),
            );
        }
        match &self.client_secret {
            None => problems.push(
                "login.client_secret is missing: write client_secret = \"${LOGIN_CLIENT_SECRET}\" and set that variable to the secret the identity provider issued".into(),
            ),
            Some(s) if s.expose().is_empty() => {
                problems.push("login.client_secret is empty: set it to the secret the identity provider issued".into())
            }
            Some(_) => {}
        }
        if self
            .user_claim
            .as_deref()
            .is_some_and(|c| c.trim().is_empty())
        {
            problems.push(format!(
                "login.user_claim is empty: name an ID-token claim, or leave it out for `{DEFAULT_USER_CLAIM}` (falling back to `sub`)"
            ));
        }
        if self.groups_claim.trim().is_empty() {
            problems.push(format!(
                "login.groups_claim is empty: name an ID-token claim, or leave it out for `{DEFAULT_GROUPS_CLAIM}`"
            ));
        }
        if !self.scopes.iter().any(|s| s == "openid") {
            problems.push(format!(
                "login.scopes must include \"openid\" (default: {})",
                DEFAULT_SCOPES.join(" ")
            ));
        }
        if let Some(bad) = self
            .scopes
            .iter()
            .find(|s| s.is_empty() || s.chars().any(|c| c.is_whitespace() || c == '"'))
        {
            problems.push(format!(
                "login.scopes: `{bad}` is not one scope (write each as its own string)"
            ));
        }
        problems
    }
}
