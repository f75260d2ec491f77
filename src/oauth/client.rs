//! One provider's OAuth client: the authorize URL (state, PKCE S256), the code exchange, refresh and
//! revocation, built on the `oauth2` crate with the provider's quirks taken from its catalog entry
//! (client authentication in the form body or as HTTP Basic, whether `scope` is sent, extra authorize
//! parameters, Bitbucket's plural `scopes`).
//!
//! Token requests go through devgate's own reqwest client; a 5xx, 429 or transport failure is
//! [`OAuthError::Unavailable`] (keep the tokens, retry later), a 4xx OAuth error is
//! [`OAuthError::Rejected`] (the grant is dead: reconnect).

use std::time::Duration;

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken,
    EndpointMaybeSet, EndpointNotSet, EndpointSet, ExtraTokenFields, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, RevocationUrl, Scope,
    StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::catalog::{ClientAuth, ProviderSpec};
use crate::config::{ProviderConfig, Secret};

/// Fields some providers add to the token response: Bitbucket's granted `scopes` (space-separated).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ProviderExtras {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<String>,
}

impl ExtraTokenFields for ProviderExtras {}

type TokenReply = StandardTokenResponse<ProviderExtras, BasicTokenType>;
type OAuth2Client = Client<
    BasicErrorResponse,
    TokenReply,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointSet,
>;

/// Tokens from a code exchange or a refresh.
#[derive(Clone)]
pub struct TokenSet {
    pub access_token: Secret,
    /// `None` when the provider sent no new refresh token (keep the old one).
    pub refresh_token: Option<Secret>,
    pub expires_in: Option<u64>,
    /// Granted scopes when the provider says them.
    pub scopes: Option<Vec<String>>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("expires_in", &self.expires_in)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum OAuthError {
    /// The provider refused (`invalid_grant`, `invalid_client`, …): this grant cannot be used again.
    #[error("{provider} refused: {code}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Rejected {
        provider: String,
        code: String,
        description: Option<String>,
    },
    /// The token endpoint failed or could not be reached: try again later.
    #[error("{provider}'s token endpoint is unavailable: {detail}")]
    Unavailable { provider: String, detail: String },
    /// devgate's own configuration is wrong (a malformed URL).
    #[error("{0}")]
    Config(String),
}

/// An authorize redirect: where to send the browser, and the secrets to keep for the callback.
pub struct Authorization {
    pub url: Url,
    pub state: String,
    pub pkce_verifier: String,
}

/// The OAuth client of one provider.
pub struct OAuthClient {
    provider: String,
    title: String,
    client: OAuth2Client,
    send_scope: bool,
    extra: Vec<(String, String)>,
    pkce: bool,
    http: TokenHttp,
    has_revoke: bool,
    revoke_url: Option<String>,
    client_auth: ClientAuth,
    client_id: String,
    client_secret: Secret,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

/// An endpoint from config, else from the catalog, relative ones resolved against the API base.
fn endpoint(configured: Option<&str>, catalog: Option<&str>, api_base: &str) -> Option<String> {
    let raw = configured.or(catalog)?;
    Some(if raw.starts_with('/') {
        format!("{}{raw}", api_base.trim_end_matches('/'))
    } else {
        raw.to_string()
    })
}

impl OAuthClient {
    pub fn new(
        spec: &ProviderSpec,
        config: &ProviderConfig,
        callback_url: &str,
        timeout: Duration,
    ) -> Result<Self, OAuthError> {
        let id = &spec.id;
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            OAuthError::Config(format!("providers.{id}.{what}: {e}"))
        };
        let client_id = config
            .client_id
            .clone()
            .ok_or_else(|| OAuthError::Config(format!("providers.{id}: no client_id")))?;
        let client_secret = config
            .client_secret
            .as_ref()
            .ok_or_else(|| OAuthError::Config(format!("providers.{id}: no client_secret")))?;
        let api_base = config.api_base.as_deref().unwrap_or(&spec.api_base);
        let authorize = endpoint(
            config.authorize_url.as_deref(),
            Some(&spec.authorize_url),
            api_base,
        )
        .unwrap_or_default();
        let token = endpoint(config.token_url.as_deref(), Some(&spec.token_url), api_base)
            .unwrap_or_default();
        let revoke = endpoint(
            config.revoke_url.as_deref(),
            spec.revoke_url.as_deref(),
            api_base,
        );

        let mut client = oauth2::Client::new(ClientId::new(client_id))
            .set_client_secret(ClientSecret::new(client_secret.expose().to_string()))
            .set_auth_uri(AuthUrl::new(authorize).map_err(|e| bad("authorize_url", &e))?)
            .set_token_uri(TokenUrl::new(token).map_err(|e| bad("token_url", &e))?)
            .set_redirect_uri(
                RedirectUrl::new(callback_url.to_string()).map_err(|e| bad("public_url", &e))?,
            )
            .set_revocation_url_option(
                revoke
                    .clone()
                    .map(RevocationUrl::new)
                    .transpose()
                    .map_err(|e| bad("revoke_url", &e))?,
            );
        client = client.set_auth_type(match spec.client_auth {
            ClientAuth::Basic => AuthType::BasicAuth,
            ClientAuth::Form => AuthType::RequestBody,
        });
        let http = crate::app::http_client()
            .timeout(timeout)
            // Token endpoints answer directly; following a redirect could carry the code elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("devgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| OAuthError::Config(e.to_string()))?;
        Ok(Self {
            provider: id.clone(),
            title: spec.title.clone(),
            client,
            send_scope: spec.send_scope,
            extra: spec
                .authorize_params
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            pkce: spec.pkce,
            http: TokenHttp(http),
            has_revoke: revoke.is_some(),
            revoke_url: revoke.clone(),
            client_auth: spec.client_auth,
            client_id: config.client_id.clone().unwrap_or_default(),
            client_secret: client_secret.clone(),
        })
    }

    pub fn provider(&self) -> &str {
        &self.provider
    }

    pub fn supports_revoke(&self) -> bool {
        self.has_revoke
    }

    /// A fresh authorize URL with a random `state` and (where the provider takes it) a PKCE challenge.
    pub fn authorize(&self, scopes: &[String]) -> Authorization {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = self.client.authorize_url(CsrfToken::new_random);
        if self.send_scope {
            request = request.add_scopes(scopes.iter().map(|s| Scope::new(s.clone())));
        }
        for (k, v) in &self.extra {
            request = request.add_extra_param(k.as_str(), v.as_str());
        }
        if self.pkce {
            request = request.set_pkce_challenge(challenge);
        }
        let (url, state) = request.url();
        Authorization {
            url,
            state: state.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        }
    }

    /// Exchanges an authorization code.
    pub async fn exchange(&self, code: &str, pkce_verifier: &str) -> Result<TokenSet, OAuthError> {
        let mut request = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()));
        if self.pkce {
            request = request.set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()));
        }
        let reply = request
            .request_async(&self.http)
            .await
            .map_err(|e| self.token_error(e, &[code, pkce_verifier]))?;
        Ok(self.token_set(reply))
    }

    /// Uses a refresh token. Bitbucket's rotate: the returned refresh token replaces the old one.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenSet, OAuthError> {
        let token = RefreshToken::new(refresh_token.to_string());
        let reply = self
            .client
            .exchange_refresh_token(&token)
            .request_async(&self.http)
            .await
            .map_err(|e| self.token_error(e, &[refresh_token]))?;
        Ok(self.token_set(reply))
    }

    /// Revokes a token (RFC 7009) where the provider has a revocation endpoint; `hint` says which kind
    /// it is, so the provider need not search both.
    pub async fn revoke(&self, token: &str, hint: TokenHint) -> Result<(), OAuthError> {
        // Sent by hand rather than through `oauth2`, which refuses plain-HTTP endpoints even on
        // loopback (the simulated providers); anything but loopback must still be HTTPS.
        let Some(url) = &self.revoke_url else {
            return Err(OAuthError::Config(format!(
                "{} has no revocation endpoint",
                self.title
            )));
        };
        let parsed = Url::parse(url).map_err(|e| OAuthError::Config(e.to_string()))?;
        let loopback = matches!(parsed.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
            || matches!(parsed.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
            || parsed.host_str() == Some("localhost");
        if parsed.scheme() != "https" && !loopback {
            return Err(OAuthError::Config(format!(
                "the revocation endpoint of {} must be HTTPS",
                self.title
            )));
        }
        let mut form = vec![("token", token), ("token_type_hint", hint.as_str())];
        let mut request = self.http.0.post(parsed);
        match self.client_auth {
            ClientAuth::Basic => {
                request = request.basic_auth(&self.client_id, Some(self.client_secret.expose()))
            }
            ClientAuth::Form => {
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", self.client_secret.expose()));
            }
        }
        let unavailable = |detail: String| OAuthError::Unavailable {
            provider: self.title.clone(),
            detail,
        };
        let response = request.form(&form).send().await.map_err(|e| {
            unavailable(if e.is_timeout() {
                "timed out".into()
            } else {
                "connection failed".into()
            })
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(unavailable(format!("HTTP {}", status.as_u16())));
        }
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let sent = [token, self.client_secret.expose()];
        Err(OAuthError::Rejected {
            provider: self.title.clone(),
            code: body["error"]
                .as_str()
                .map(|c| scrub(c, &sent))
                .unwrap_or_else(|| format!("HTTP {}", status.as_u16())),
            description: body["error_description"].as_str().map(|d| scrub(d, &sent)),
        })
    }

    fn token_set(&self, reply: TokenReply) -> TokenSet {
        let scopes = reply
            .extra_fields()
            .scopes
            .as_deref()
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .or_else(|| {
                reply
                    .scopes()
                    .map(|s| s.iter().map(|x| x.to_string()).collect())
            });
        TokenSet {
            access_token: Secret::new(reply.access_token().secret().clone()),
            refresh_token: reply
                .refresh_token()
                .map(|t| Secret::new(t.secret().clone())),
            expires_in: reply.expires_in().map(|d| d.as_secs()),
            scopes,
        }
    }

    /// A failed token request as an [`OAuthError`]. The provider's own words are scrubbed of what the
    /// request carried (`sent`: the code and verifier, or the refresh token; and the client secret), since
    /// they end up in pages, the connection's status and the agent's error text.
    fn token_error(
        &self,
        e: RequestTokenError<TransportError, BasicErrorResponse>,
        sent: &[&str],
    ) -> OAuthError {
        let mut sent = sent.to_vec();
        sent.push(self.client_secret.expose());
        match e {
            RequestTokenError::ServerResponse(r) => OAuthError::Rejected {
                provider: self.title.clone(),
                code: scrub(r.error().as_ref(), &sent),
                description: r.error_description().map(|d| scrub(d, &sent)),
            },
            RequestTokenError::Request(t) => OAuthError::Unavailable {
                provider: self.title.clone(),
                detail: t.to_string(),
            },
            RequestTokenError::Parse(_, _) => OAuthError::Unavailable {
                provider: self.title.clone(),
                detail: "the token endpoint sent a reply devgate cannot read".into(),
            },
            RequestTokenError::Other(detail) => OAuthError::Unavailable {
                provider: self.title.clone(),
                detail,
            },
        }
    }
}

/// Which kind of token a revocation is for (RFC 7009 `token_type_hint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenHint {
    Access,
    Refresh,
}

impl TokenHint {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenHint::Access => "access_token",
            TokenHint::Refresh => "refresh_token",
        }
    }
}

/// Provider text without any of the secrets a request carried.
pub(crate) fn scrub(text: &str, sent: &[&str]) -> String {
    let secrets: Vec<String> = sent.iter().map(|s| s.to_string()).collect();
    crate::provider::error::redact(text, &secrets)
}

/// The HTTP client token requests go through (devgate's reqwest, not the one `oauth2` would bring).
pub(crate) struct TokenHttp(pub(crate) reqwest::Client);

impl<'c> oauth2::AsyncHttpClient<'c> for TokenHttp {
    type Error = TransportError;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<oauth2::HttpResponse, TransportError>>
                + Send
                + 'c,
        >,
    >;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(send(&self.0, request))
    }
}

/// Sends one token-endpoint request. Server-side failures become transport errors so that they read
/// as "unavailable", not as a refused grant.
async fn send(
    http: &reqwest::Client,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, TransportError> {
    let (parts, body) = request.into_parts();
    let response = http
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            TransportError(if e.is_timeout() {
                "timed out".into()
            } else {
                "connection failed".into()
            })
        })?;
    let status = response.status();
    if status.is_server_error() || status.as_u16() == 429 {
        return Err(TransportError(format!("HTTP {}", status.as_u16())));
    }
    let headers = response.headers().clone();
    let bytes = response
        .bytes()
        .await
        .map_err(|_| TransportError("the reply broke off".into()))?;
    let mut out = http::Response::builder().status(status);
    if let Some(h) = out.headers_mut() {
        *h = headers;
    }
    out.body(bytes.to_vec())
        .map_err(|e| TransportError(e.to_string()))
}

/// Why a token request did not get an answer (never carries a secret).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(String);
