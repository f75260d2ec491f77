//! devgate as the authorization server of its own MCP endpoint; here so far: the OpenID Connect
//! sign-in ([`oidc`]).

pub mod oidc;
