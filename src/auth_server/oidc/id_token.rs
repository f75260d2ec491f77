//! The ID token's validation (OpenID Connect Core 1.0, section 3.1.3.7) and the identity its claims name.

use std::str::FromStr;

use jsonwebtoken::{Algorithm, DecodingKey, decode, decode_header};
use serde_json::{Map, Value};

use super::{DEFAULT_USER_CLAIM, LoginConfig, OidcError, OidcIdentity, OidcLogin, now_secs};
use crate::identity::{AuthError, JWT_LEEWAY_SECS, algorithms_for, reason, validation};

/// The asymmetric algorithms among those the provider lists (`id_token_signing_alg_values_supported`);
/// every asymmetric one when it lists none. A symmetric (HS*) algorithm is never accepted: its key
/// would be the client secret, which this relying party does not sign with.
pub(super) fn algorithms(listed: Option<Vec<String>>) -> Vec<Algorithm> {
    use Algorithm::*;
    let asymmetric = [
        RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA,
    ];
    match listed {
        None => asymmetric.to_vec(),
        Some(names) => names
            .iter()
            .filter_map(|n| Algorithm::from_str(n).ok())
            .filter(|a| asymmetric.contains(a))
            .collect(),
    }
}

/// Checks the ID token and returns its claims.
pub(super) async fn validate(
    login: &OidcLogin,
    token: &str,
    nonce: &str,
) -> Result<Map<String, Value>, OidcError> {
    let invalid = |r: String| OidcError::IdToken(r);
    let header = decode_header(token).map_err(|e| invalid(reason(&e)))?;
    let jwk = login
        .keys
        .key_for(header.kid.as_deref())
        .await
        .map_err(|e| match e {
            AuthError::Jwks { retry_after } => OidcError::Keys { retry_after },
            AuthError::Invalid(r) => invalid(r),
            _ => invalid("its signing key cannot be looked up".into()),
        })?;
    let allowed = algorithms_for(&jwk, &login.algorithms);
    if !allowed.contains(&header.alg) {
        return Err(invalid(
            "signed with an algorithm its key is not for".into(),
        ));
    }
    let key = DecodingKey::from_jwk(&jwk)
        .map_err(|_| invalid("signed with a key devgate cannot use".into()))?;
    let validation = validation(
        header.alg,
        allowed,
        &login.config.issuer,
        &login.config.client_id,
    );
    let claims = decode::<Map<String, Value>>(token, &key, &validation)
        .map_err(|e| invalid(reason(&e)))?
        .claims;
    match claims.get("iat").and_then(Value::as_u64) {
        None => return Err(invalid("the `iat` claim is missing".into())),
        Some(iat) if iat > now_secs() + JWT_LEEWAY_SECS => {
            return Err(invalid("issued in the future (iat)".into()));
        }
        Some(_) => {}
    }
    match claims.get("nonce").and_then(Value::as_str) {
        None => return Err(invalid("the `nonce` claim is missing".into())),
        Some(n) if n != nonce => {
            return Err(invalid("its nonce is not this sign-in's".into()));
        }
        Some(_) => {}
    }
    // Several audiences: the token must say it was issued to devgate (azp).
    let audiences = match claims.get("aud") {
        Some(Value::Array(a)) => a.len(),
        _ => 1,
    };
    match claims.get("azp").and_then(Value::as_str) {
        Some(azp) if azp != login.config.client_id => {
            return Err(invalid(
                "issued to another client (azp is not login.client_id)".into(),
            ));
        }
        None if audiences > 1 => {
            return Err(invalid(
                "it has several audiences but no `azp` claim".into(),
            ));
        }
        _ => {}
    }
    Ok(claims)
}

/// The identity the claims name, by `login.user_claim` and `login.groups_claim`.
pub(super) fn identity(
    config: &LoginConfig,
    claims: &Map<String, Value>,
) -> Result<OidcIdentity, OidcError> {
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let subject = text("sub").ok_or_else(|| OidcError::MissingClaim {
        claim: "sub".into(),
        setting: "login.user_claim",
    })?;
    let user = match &config.user_claim {
        Some(claim) => text(claim).ok_or_else(|| OidcError::MissingClaim {
            claim: claim.clone(),
            setting: "login.user_claim",
        })?,
        None => text(DEFAULT_USER_CLAIM).unwrap_or_else(|| subject.clone()),
    };
    // The user names log lines, audit records and rate-limit keys: keep it bounded.
    if user.chars().count() > crate::audit::MAX_USER_CHARS {
        return Err(OidcError::IdToken(format!(
            "the user name is longer than {} characters",
            crate::audit::MAX_USER_CHARS
        )));
    }
    let groups = match claims.get(&config.groups_claim) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(Value::String(one)) => one.split_whitespace().map(str::to_string).collect(),
        _ => Vec::new(),
    };
    Ok(OidcIdentity {
        subject,
        user,
        groups,
    })
}
