//! OAuth on the user's behalf: each provider's client ([`client`]).

pub mod client;
pub mod connect;
pub mod tokens;

pub use client::{Authorization, OAuthClient, OAuthError, TokenSet};
