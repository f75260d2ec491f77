//! `[auth_server]`: how devgate acts as the authorization server of its own MCP endpoint when
//! `[http] auth = "oauth"` — who may register, clients known in advance, token lifetimes.

use serde::Deserialize;

use crate::config::Secret;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthServerConfig {
    /// Dynamic client registration (RFC 7591) at `/register`: `open` or `off`.
    pub registration: Registration,
    /// Dynamically registered clients at most (revoked ones do not count).
    pub max_clients: i64,
    /// Accept clients whose id is the https URL of their Client ID Metadata Document.
    pub metadata_documents: bool,
    /// How long an access token lives, in seconds.
    pub access_token_secs: i64,
    /// How long a refresh token lives unused, in seconds (each use rotates it).
    pub refresh_token_secs: i64,
    /// Clients known in advance.
    pub clients: Vec<ClientConfig>,
}

impl Default for AuthServerConfig {
    fn default() -> Self {
        Self {
            registration: Registration::Open,
            max_clients: 1000,
            metadata_documents: true,
            access_token_secs: 3600,
            refresh_token_secs: 30 * 24 * 3600,
            clients: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Registration {
    Open,
    Off,
}

/// A client registered in the config (`[[auth_server.clients]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub client_id: String,
    /// What the consent page calls it.
    pub name: String,
    /// Exact redirect URIs.
    pub redirect_uris: Vec<String>,
    /// For a confidential client (`${ENV}`); a public client has none and must use PKCE (all do).
    #[serde(default)]
    pub client_secret: Option<Secret>,
}

impl AuthServerConfig {
    /// Every problem with the section, named by its setting.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, value) in [
            ("access_token_secs", self.access_token_secs),
            ("refresh_token_secs", self.refresh_token_secs),
        ] {
            if value < 60 {
                problems.push(format!("auth_server.{name} must be at least 60"));
            }
        }
        if self.max_clients < 0 {
            problems.push("auth_server.max_clients must not be negative".into());
        }
        for (i, c) in self.clients.iter().enumerate() {
            if c.client_id.trim().is_empty() {
                problems.push(format!("auth_server.clients[{i}].client_id is empty"));
            }
            if c.redirect_uris.is_empty() {
                problems.push(format!(
                    "auth_server.clients[{i}] ({}): list at least one redirect_uris entry",
                    c.client_id
                ));
            }
            for uri in &c.redirect_uris {
                if let Err(why) = super::clients::check_redirect_uri(uri) {
                    problems.push(format!(
                        "auth_server.clients[{i}].redirect_uris: `{uri}` {why}"
                    ));
                }
            }
        }
        problems
    }
}
